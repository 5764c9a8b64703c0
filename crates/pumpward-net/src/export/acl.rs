//! A plain access-control table (CSV) for firewalls configured by hand or
//! by their own import tools: one row per source subnet, destination subnet
//! and conduit, in evaluation order, ending with the default deny. The
//! quarantined devices' deny rows come first: from the MAC, and from and to
//! each address it was seen at.

use crate::export::{csv_lines, csv_text};
use crate::policy::{Direction, Policy, TransportRule, INTERNET};
use crate::quarantine::{canonical, QuarantinedDevice};

pub fn acl_csv(policy: &Policy, quarantine: &[QuarantinedDevice]) -> String {
    // (address family, text); the internet pairs with either family.
    let subnets = |zone: &str| -> Vec<(Option<bool>, String)> {
        if zone == INTERNET {
            return vec![(None, "internet (public, outside every zone)".into())];
        }
        let mut v: Vec<_> = policy
            .zone(zone)
            .map(|z| z.subnets.clone())
            .unwrap_or_default();
        v.sort();
        v.into_iter()
            .map(|s| (Some(s.is_v4()), s.to_string()))
            .collect()
    };
    let mut paths = Vec::new();
    for c in &policy.conduits {
        paths.push((c, c.from.as_str(), c.to.as_str()));
        if c.direction == Direction::Both && c.from != c.to {
            paths.push((c, c.to.as_str(), c.from.as_str()));
        }
    }
    let mut rows = vec![[
        "rule",
        "action",
        "from_zone",
        "source",
        "to_zone",
        "destination",
        "transport",
        "destination_ports",
        "conduit",
        "purpose",
    ]
    .map(String::from)
    .to_vec()];
    let mut n = 0;
    for d in canonical(quarantine) {
        let zone = d.zone.clone().unwrap_or_else(|| "any".into());
        let purpose = csv_text(&format!("quarantined: {}", d.reason_line()));
        let mut deny = |from_zone: &str, source: String, to_zone: &str, destination: String| {
            n += 1;
            rows.push(vec![
                n.to_string(),
                "deny".into(),
                from_zone.into(),
                source,
                to_zone.into(),
                destination,
                "any".into(),
                String::new(),
                String::new(),
                purpose.clone(),
            ]);
        };
        deny(&zone, format!("MAC {}", d.mac), "any", "any".into());
        for a in &d.addresses {
            deny(&zone, a.to_string(), "any", "any".into());
            deny("any", "any".into(), &zone, a.to_string());
        }
    }
    for (c, from, to) in paths {
        let ports = if c.ports.is_empty() {
            match c.transport {
                TransportRule::Tcp | TransportRule::Udp => "any".to_string(),
                _ => String::new(),
            }
        } else {
            c.ports
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (sf, s) in subnets(from) {
            for (df, d) in subnets(to) {
                if sf.is_some() && df.is_some() && sf != df {
                    continue;
                }
                n += 1;
                rows.push(vec![
                    n.to_string(),
                    "allow".into(),
                    from.into(),
                    s.clone(),
                    to.into(),
                    d,
                    c.transport.as_str().into(),
                    ports.clone(),
                    c.name.clone(),
                    csv_text(&c.purpose),
                ]);
            }
        }
    }
    rows.push(vec![
        (n + 1).to_string(),
        "deny".into(),
        "any".into(),
        "any".into(),
        "any".into(),
        "any".into(),
        "any".into(),
        String::new(),
        String::new(),
        "default deny".into(),
    ]);
    csv_lines(&rows)
}
