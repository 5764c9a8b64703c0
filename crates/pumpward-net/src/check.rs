//! `pumpward net policy check`: what is wrong or doubtful in a policy and
//! the devices' network identities, without touching the network.
//!
//! Errors are contradictions the enforcement points would resolve silently
//! and differently (overlapping zones, a guest conduit, an address two assets
//! hold at once, EAP-TLS on a model without it); warnings are rules that can
//! never take effect (shadowed) or facts that could not be checked (a model
//! missing from the catalogue).

use std::collections::BTreeMap;

use pumpward_core::inventory::{Answer, DeviceModel};
use serde::Serialize;

use crate::policy::{Admission, AssetIdentity, Conduit, Direction, Policy, PortRange, INTERNET};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// What kind of finding; stable names for the API and the CLI's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// A structural problem (bad name, duplicate name, bad value).
    Invalid,
    UnknownZone,
    OverlappingSubnets,
    IsolatedZoneConduit,
    DeviceZoneToInternet,
    DuplicateConduit,
    ShadowedConduit,
    AdmissionUnsupported,
    AdmissionUnverified,
    MabWithoutMac,
    MabWithoutVlan,
    AddressOutsideZone,
    AddressHeldTwice,
    MacHeldTwice,
}

/// One finding of the check, naming what it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub finding: Finding,
    /// What it is about: `conduit "pump-dns"`, `asset "PUMP-0001"`, `zone "guest"`.
    pub subject: String,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{s}: {}: {}", self.subject, self.message)
    }
}

fn diag(severity: Severity, finding: Finding, subject: String, message: String) -> Diagnostic {
    Diagnostic {
        severity,
        finding,
        subject,
        message,
    }
}

/// Checks a policy, the assets' network identities and, for their models,
/// the catalogue's capabilities. The result is in a stable order: policy
/// findings in file order, then assets in the given order.
pub fn check(policy: &Policy, assets: &[AssetIdentity], models: &[DeviceModel]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in crate::policy::problems(policy, assets) {
        let unknown = p.message.contains("is not a zone of this policy");
        out.push(diag(
            Severity::Error,
            if unknown {
                Finding::UnknownZone
            } else {
                Finding::Invalid
            },
            p.location,
            p.message,
        ));
    }
    overlapping_subnets(policy, &mut out);
    isolated_zones(policy, &mut out);
    duplicate_and_shadowed(policy, &mut out);
    for a in assets {
        asset(policy, a, models, &mut out);
    }
    shared_addresses(assets, &mut out);
    out
}

fn overlapping_subnets(policy: &Policy, out: &mut Vec<Diagnostic>) {
    for (i, a) in policy.zones.iter().enumerate() {
        for b in policy.zones.iter().skip(i + 1) {
            for sa in &a.subnets {
                for sb in &b.subnets {
                    if sa.overlaps(*sb) {
                        out.push(diag(
                            Severity::Error,
                            Finding::OverlappingSubnets,
                            format!("zone {:?}", b.name),
                            format!(
                                "subnet {sb} overlaps {sa} of zone {:?}: an address would be in two zones",
                                a.name
                            ),
                        ));
                    }
                }
            }
        }
    }
}

fn isolated_zones(policy: &Policy, out: &mut Vec<Diagnostic>) {
    for c in &policy.conduits {
        // SP 1800-8: pumps and pump servers never talk to the internet;
        // vendors come in through the remote-access zone.
        for (end, other) in [(&c.from, &c.to), (&c.to, &c.from)] {
            if other == INTERNET && policy.zone(end).is_some_and(|z| z.device_zone) {
                out.push(diag(
                    Severity::Error,
                    Finding::DeviceZoneToInternet,
                    format!("conduit {:?}", c.name),
                    format!(
                        "joins device zone {end:?} to the internet; route vendors through a remote-access zone"
                    ),
                ));
            }
        }
        for end in [&c.from, &c.to] {
            if end == INTERNET {
                continue;
            }
            if policy.zone(end).is_some_and(|z| z.isolated) {
                let other = if end == &c.from { &c.to } else { &c.from };
                if other == INTERNET {
                    continue;
                }
                out.push(diag(
                    Severity::Error,
                    Finding::IsolatedZoneConduit,
                    format!("conduit {:?}", c.name),
                    format!(
                        "joins isolated zone {end:?} to zone {other:?}; an isolated zone reaches no other zone"
                    ),
                ));
            }
        }
    }
}

/// The ports a conduit allows, merged into disjoint sorted ranges; `None`
/// means every port (or a transport without ports).
fn port_set(c: &Conduit) -> Option<Vec<PortRange>> {
    if c.ports.is_empty() {
        return None;
    }
    let mut v = c.ports.clone();
    v.sort();
    let mut merged: Vec<PortRange> = Vec::with_capacity(v.len());
    for r in v {
        match merged.last_mut() {
            Some(last) if u32::from(r.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(r.last);
            }
            _ => merged.push(r),
        }
    }
    Some(merged)
}

fn ports_within(inner: &Option<Vec<PortRange>>, outer: &Option<Vec<PortRange>>) -> bool {
    match (inner, outer) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(i), Some(o)) => i
            .iter()
            .all(|r| o.iter().any(|x| x.first <= r.first && r.last <= x.last)),
    }
}

/// Whether every flow `later` allows is already allowed by `earlier`.
fn covered_by(later: &Conduit, earlier: &Conduit) -> bool {
    let same = later.from == earlier.from && later.to == earlier.to;
    let reversed = later.from == earlier.to && later.to == earlier.from;
    let paths = match (earlier.direction, later.direction) {
        (Direction::Both, Direction::FromTo) => same || reversed,
        (Direction::Both, Direction::Both) => same || reversed,
        (Direction::FromTo, Direction::FromTo) => same,
        (Direction::FromTo, Direction::Both) => false,
    };
    paths
        && later.transport.within(earlier.transport)
        && ports_within(&port_set(later), &port_set(earlier))
}

fn duplicate_and_shadowed(policy: &Policy, out: &mut Vec<Diagnostic>) {
    for (j, later) in policy.conduits.iter().enumerate() {
        let Some(earlier) = policy.conduits[..j].iter().find(|e| covered_by(later, e)) else {
            continue;
        };
        let duplicate = covered_by(earlier, later);
        out.push(if duplicate {
            diag(
                Severity::Error,
                Finding::DuplicateConduit,
                format!("conduit {:?}", later.name),
                format!(
                    "allows exactly what conduit {:?} allows; remove one so each path has one purpose",
                    earlier.name
                ),
            )
        } else {
            diag(
                Severity::Warning,
                Finding::ShadowedConduit,
                format!("conduit {:?}", later.name),
                format!(
                    "never takes effect: the earlier, broader conduit {:?} already allows all of it",
                    earlier.name
                ),
            )
        });
    }
}

fn find_model<'a>(models: &'a [DeviceModel], a: &AssetIdentity) -> Option<&'a DeviceModel> {
    let (man, model) = (a.manufacturer.as_deref()?, a.model.as_deref()?);
    models
        .iter()
        .find(|m| m.manufacturer.eq_ignore_ascii_case(man) && m.model.eq_ignore_ascii_case(model))
}

fn asset(policy: &Policy, a: &AssetIdentity, models: &[DeviceModel], out: &mut Vec<Diagnostic>) {
    let subject = format!("asset {:?}", a.asset_id.as_str());
    // An unknown zone is already reported by the structural problems.
    let zone = policy.zone(&a.zone);
    match (a.admission, find_model(models, a)) {
        (Admission::EapTls, Some(m)) => match m.capabilities.eap_tls {
            Answer::Yes => {}
            Answer::No => out.push(diag(
                Severity::Error,
                Finding::AdmissionUnsupported,
                subject.clone(),
                format!(
                    "admission is eap_tls but model {} {} cannot do 802.1X EAP-TLS; use mab",
                    m.manufacturer, m.model
                ),
            )),
            Answer::Unknown => out.push(diag(
                Severity::Warning,
                Finding::AdmissionUnverified,
                subject.clone(),
                format!(
                    "admission is eap_tls but whether model {} {} supports 802.1X EAP-TLS is not known (catalogue answer: unknown)",
                    m.manufacturer, m.model
                ),
            )),
        },
        (Admission::EapTls, None) => out.push(diag(
            Severity::Warning,
            Finding::AdmissionUnverified,
            subject.clone(),
            match (&a.manufacturer, &a.model) {
                (Some(man), Some(model)) => format!(
                    "admission is eap_tls but model {man} {model} is not in the device catalogue"
                ),
                _ => "admission is eap_tls but the asset names no model to check".into(),
            },
        )),
        (Admission::Mab, _) => {
            if a.macs.is_empty() {
                out.push(diag(
                    Severity::Error,
                    Finding::MabWithoutMac,
                    subject.clone(),
                    "admission is mab but no MAC address is listed".into(),
                ));
            }
            if zone.is_some_and(|z| z.vlans.is_empty()) {
                out.push(diag(
                    Severity::Warning,
                    Finding::MabWithoutVlan,
                    subject.clone(),
                    format!(
                        "admission is mab but zone {:?} has no VLAN to assign; the RADIUS export skips it",
                        a.zone
                    ),
                ));
            }
        }
    }
    if let Some(z) = zone {
        for b in &a.addresses {
            if !z.subnets.iter().any(|s| s.contains(b.ip)) {
                out.push(diag(
                    Severity::Error,
                    Finding::AddressOutsideZone,
                    subject.clone(),
                    format!(
                        "address {} is outside every subnet of zone {:?}",
                        b.ip, z.name
                    ),
                ));
            }
        }
    }
}

/// The same address held by two assets at overlapping times, or the same
/// MAC listed for two assets: flows could not be attributed.
fn shared_addresses(assets: &[AssetIdentity], out: &mut Vec<Diagnostic>) {
    // Address → (asset index, valid from, valid until).
    type Holders = Vec<(usize, Option<i64>, Option<i64>)>;
    let mut by_ip: BTreeMap<std::net::IpAddr, Holders> = BTreeMap::new();
    let mut by_mac: BTreeMap<_, Vec<usize>> = BTreeMap::new();
    for (i, a) in assets.iter().enumerate() {
        for b in &a.addresses {
            by_ip
                .entry(b.ip)
                .or_default()
                .push((i, b.valid_from, b.valid_until));
        }
        for m in &a.macs {
            let v = by_mac.entry(*m).or_default();
            if !v.contains(&i) {
                v.push(i);
            }
        }
    }
    for (ip, holders) in &by_ip {
        for (k, &(i, f1, u1)) in holders.iter().enumerate() {
            for &(j, f2, u2) in &holders[k + 1..] {
                // None sorts first, so the later start wins and "always" loses.
                let start = f1.max(f2).unwrap_or(i64::MIN);
                let end = match (u1, u2) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => i64::MAX,
                };
                if i != j && start < end {
                    out.push(diag(
                        Severity::Error,
                        Finding::AddressHeldTwice,
                        format!("asset {:?}", assets[j].asset_id.as_str()),
                        format!(
                            "address {ip} is also held by asset {:?} at the same time",
                            assets[i].asset_id.as_str()
                        ),
                    ));
                }
            }
        }
    }
    for (mac, holders) in &by_mac {
        for &j in holders.iter().skip(1) {
            out.push(diag(
                Severity::Error,
                Finding::MacHeldTwice,
                format!("asset {:?}", assets[j].asset_id.as_str()),
                format!(
                    "MAC {mac} is also listed for asset {:?}",
                    assets[holders[0]].asset_id.as_str()
                ),
            ));
        }
    }
}

/// The 1-based line of `text` (a policy file) where the zone, conduit or
/// asset a diagnostic or problem is about is named, so that an editor can
/// point at it: `subject` reads `conduit "pump-dns"` (possibly followed by
/// a field). None when the subject names nothing in the text.
pub fn subject_line(text: &str, subject: &str) -> Option<usize> {
    let (table, rest) = subject.split_once(' ')?;
    let (header, key) = match table {
        "zone" => ("[[zone]]", "name"),
        "conduit" => ("[[conduit]]", "name"),
        "asset" => ("[[asset]]", "asset_id"),
        _ => return None,
    };
    // The quoted name as Debug wrote it; for the names the policy allows
    // (letters, digits, `-`, `_`, `.`) that is also its TOML form.
    let quoted = rest.strip_prefix('"')?;
    let name = &quoted[..quoted.find('"')?];
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == header;
            continue;
        }
        if !inside {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v.split_once('#').map_or(v, |(v, _)| v).trim();
        if k.trim() == key && (v == format!("\"{name}\"") || v == format!("'{name}'")) {
            return Some(i + 1);
        }
    }
    None
}

/// One issue of [`review`], ready for an editor: its line in the text where
/// known, its severity and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub line: Option<usize>,
    pub severity: Severity,
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.line {
            Some(l) => write!(f, "line {l}: {s}: {}", self.message),
            None => write!(f, "{s}: {}", self.message),
        }
    }
}

/// What [`review`] found in a policy text: the document when it parsed, and
/// every issue, errors first, each with its line where it has one.
#[derive(Debug, Clone)]
pub struct Review {
    pub document: Option<crate::PolicyDocument>,
    pub issues: Vec<Issue>,
}

impl Review {
    /// Whether the text may be saved: it parsed and the check found no error.
    pub fn acceptable(&self) -> bool {
        self.document.is_some() && !self.issues.iter().any(|i| i.severity == Severity::Error)
    }
}

/// The gate in front of a stored policy: parses `text` and runs [`check`]
/// against the inventory's identities and the device catalogue. The
/// document's own `[[asset]]` entries are checked too.
pub fn review(text: &str, assets: &[AssetIdentity], models: &[DeviceModel]) -> Review {
    use crate::policy::PolicyError;
    let doc = match crate::PolicyDocument::from_toml(text) {
        Ok(d) => d,
        Err(PolicyError::Toml {
            line,
            column,
            message,
        }) => {
            return Review {
                document: None,
                issues: vec![Issue {
                    line: Some(line),
                    severity: Severity::Error,
                    message: format!("column {column}: {message}"),
                }],
            }
        }
        Err(PolicyError::Invalid(problems)) => {
            return Review {
                document: None,
                issues: problems
                    .iter()
                    .map(|p| Issue {
                        line: subject_line(text, &p.location),
                        severity: Severity::Error,
                        message: p.to_string(),
                    })
                    .collect(),
            }
        }
        Err(e @ PolicyError::TooLarge(_)) => {
            return Review {
                document: None,
                issues: vec![Issue {
                    line: None,
                    severity: Severity::Error,
                    message: e.to_string(),
                }],
            }
        }
    };
    let mut all: Vec<AssetIdentity> = doc.assets.clone();
    all.extend(
        assets
            .iter()
            .filter(|a| !doc.assets.iter().any(|d| d.asset_id == a.asset_id))
            .cloned(),
    );
    let mut issues: Vec<Issue> = check(&doc.policy, &all, models)
        .into_iter()
        .map(|d| Issue {
            line: subject_line(text, &d.subject),
            severity: d.severity,
            message: format!("{}: {}", d.subject, d.message),
        })
        .collect();
    issues.sort_by_key(|i| i.severity);
    Review {
        document: Some(doc),
        issues,
    }
}
