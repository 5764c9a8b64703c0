//! Cisco ISE endpoint import (Administration → Identity Management →
//! Identities → Endpoints → Import from CSV file).
//!
//! The columns are named as in ISE's endpoint import template; columns the
//! template has and Pumpward does not fill are left out, which ISE accepts
//! as empty. Each endpoint is statically assigned to an endpoint identity
//! group `Pumpward-<zone>-<MAB|EAP-TLS>`, for authorisation rules that map
//! the group to the zone's VLAN or downloadable ACL. Quarantined devices go
//! to [`QUARANTINE_GROUP`] instead (an asset's MAC too, if it is on the
//! list), for a rule that denies access.

use crate::export::{csv_lines, csv_text};
use crate::policy::{Admission, AssetIdentity};
use crate::quarantine::{canonical, contains, QuarantinedDevice, QUARANTINE_GROUP};

/// The endpoint identity group name for a zone and admission method.
pub fn identity_group(zone: &str, admission: Admission) -> String {
    let a = match admission {
        Admission::Mab => "MAB",
        Admission::EapTls => "EAP-TLS",
    };
    format!("Pumpward-{zone}-{a}")
}

/// One row per MAC, sorted by MAC.
pub fn endpoints_csv(assets: &[AssetIdentity], quarantine: &[QuarantinedDevice]) -> String {
    let quarantine = canonical(quarantine);
    let mut rows: Vec<Vec<String>> = Vec::new();
    for d in &quarantine {
        rows.push(vec![
            d.mac.to_string().to_ascii_uppercase(),
            QUARANTINE_GROUP.into(),
            "TRUE".into(),
            csv_text(&format!("quarantined: {}", d.reason_line())),
        ]);
    }
    for a in assets {
        for m in a.macs.iter().filter(|m| !contains(&quarantine, **m)) {
            let mac = m.to_string().to_ascii_uppercase();
            let model = match (&a.manufacturer, &a.model) {
                (Some(x), Some(y)) => format!(" {x} {y}"),
                (Some(x), None) | (None, Some(x)) => format!(" {x}"),
                (None, None) => String::new(),
            };
            rows.push(vec![
                mac,
                identity_group(&a.zone, a.admission),
                "TRUE".into(),
                csv_text(&format!("{} ({}){model}", a.asset_id, a.zone)),
            ]);
        }
    }
    rows.sort();
    rows.dedup_by(|x, y| x.first() == y.first());
    rows.insert(
        0,
        [
            "MACAddress",
            "IdentityGroup",
            "StaticGroupAssignment",
            "Description",
        ]
        .map(String::from)
        .to_vec(),
    );
    csv_lines(&rows)
}
