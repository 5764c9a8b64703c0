//! The policy as data: zones, conduits between them (default deny) and the
//! devices' network identities, read from and written to TOML.
//!
//! The TOML file is the exchange form (`pumpward net policy import|export`):
//! [`PolicyDocument::from_toml`] parses and validates it in one step, so a
//! document that exists is internally consistent (every name valid, every
//! zone a conduit or asset names exists, no name twice), and
//! [`PolicyDocument::to_toml`] writes the canonical text back, which parses
//! to the same document. Order is kept: conduits are read top to bottom, and
//! the check reports a conduit shadowed by an earlier broader one.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use pumpward_core::inventory::{AssetId, MacAddress};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cidr::Cidr;

/// The pseudo-zone of public addresses outside every zone. Conduits may name
/// it (`to = "internet"` for enterprise browsing, `from = "internet"` for the
/// vendors' VPN endpoint); a zone may not be called so.
pub const INTERNET: &str = "internet";

/// Largest policy text accepted; a real hospital's policy is a few hundred KB.
pub const MAX_POLICY_BYTES: usize = 8 << 20;

/// Most zones a policy may hold (zone ids are 16-bit in the evaluator).
pub const MAX_ZONES: usize = 1024;

/// A whole policy file: the zone policy and the devices' network identities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FileForm", into = "FileForm")]
pub struct PolicyDocument {
    pub policy: Policy,
    pub assets: Vec<AssetIdentity>,
}

/// The file's flat layout. Not `#[serde(flatten)]`: flattening buffers the
/// input and loses the line and column of errors inside it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    zone: Vec<Zone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    conduit: Vec<Conduit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    asset: Vec<AssetIdentity>,
}

impl From<FileForm> for PolicyDocument {
    fn from(f: FileForm) -> Self {
        PolicyDocument {
            policy: Policy {
                name: f.name,
                description: f.description,
                zones: f.zone,
                conduits: f.conduit,
            },
            assets: f.asset,
        }
    }
}

impl From<PolicyDocument> for FileForm {
    fn from(d: PolicyDocument) -> Self {
        FileForm {
            name: d.policy.name,
            description: d.policy.description,
            zone: d.policy.zones,
            conduit: d.policy.conduits,
            asset: d.assets,
        }
    }
}

/// Zones and the conduits allowed between them. Anything no conduit allows
/// is denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub conduits: Vec<Conduit>,
}

/// A network zone: a set of subnets (and the VLANs that carry them) whose
/// members share one purpose and one set of allowed conduits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub name: String,
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Cidr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlans: Vec<u16>,
    /// Every address in a device zone must belong to a registered asset
    /// (pumps, pump servers); an unknown one is reported. Traffic between
    /// two members of a device zone is east-west traffic and needs a conduit.
    #[serde(default, skip_serializing_if = "is_false")]
    pub device_zone: bool,
    /// No conduit may join this zone to another zone (guest networks).
    #[serde(default, skip_serializing_if = "is_false")]
    pub isolated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One allowed path between two zones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conduit {
    pub name: String,
    pub from: String,
    pub to: String,
    pub transport: TransportRule,
    /// Destination ports (TCP/UDP only); empty means every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Direction::is_default")]
    pub direction: Direction,
}

/// Which transport a conduit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportRule {
    Tcp,
    Udp,
    /// ICMP and ICMPv6 (echo, unreachable, neighbour discovery across a router).
    Icmp,
    Any,
}

impl TransportRule {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportRule::Tcp => "tcp",
            TransportRule::Udp => "udp",
            TransportRule::Icmp => "icmp",
            TransportRule::Any => "any",
        }
    }

    /// Whether the rule allows flows of this transport.
    pub fn matches(self, t: pumpward_flow::Transport) -> bool {
        use pumpward_flow::Transport as T;
        match self {
            TransportRule::Any => true,
            TransportRule::Tcp => t == T::Tcp,
            TransportRule::Udp => t == T::Udp,
            TransportRule::Icmp => matches!(t, T::Icmp | T::Icmpv6),
        }
    }

    /// Whether every flow this rule allows is also allowed by `other`.
    pub fn within(self, other: TransportRule) -> bool {
        other == TransportRule::Any || self == other
    }

    fn has_ports(self) -> bool {
        matches!(self, TransportRule::Tcp | TransportRule::Udp)
    }
}

/// Who may open a connection on a conduit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Only members of `from` may initiate; replies flow back.
    #[default]
    FromTo,
    /// Either side may initiate.
    Both,
}

impl Direction {
    fn is_default(&self) -> bool {
        *self == Direction::FromTo
    }
}

/// An inclusive range of destination ports; a single port is `first == last`.
/// Written as `443` or `"8000-8010"` in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(p: u16) -> PortRange {
        PortRange { first: p, last: p }
    }

    pub fn contains(self, p: u16) -> bool {
        self.first <= p && p <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<PortRange, String> {
        let bad = || format!("{:?} is not a port or a range like \"8000-8010\"", trunc(s));
        let num = |t: &str| -> Result<u16, String> {
            if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse::<u16>().map_err(|_| bad())
        };
        let r = match s.split_once('-') {
            Some((a, b)) => PortRange {
                first: num(a)?,
                last: num(b)?,
            },
            None => PortRange::single(num(s)?),
        };
        r.check()
    }
}

impl PortRange {
    fn check(self) -> Result<PortRange, String> {
        if self.first == 0 {
            return Err("port 0 is not a destination port".into());
        }
        if self.first > self.last {
            return Err(format!(
                "port range {}-{} is reversed",
                self.first, self.last
            ));
        }
        Ok(self)
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.first == self.last {
            s.serialize_u16(self.first)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PortRange, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => u16::try_from(n)
                .map_err(|_| serde::de::Error::custom(format!("port {n} is outside 1-65535")))
                .and_then(|p| {
                    PortRange::single(p)
                        .check()
                        .map_err(serde::de::Error::custom)
                }),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// How a device is admitted to its VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admission {
    /// 802.1X EAP-TLS with a certificate from Pumpward's CA (the SP 1800-8 way).
    EapTls,
    /// MAC authentication bypass, for models that cannot do 802.1X.
    Mab,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::EapTls => "eap_tls",
            Admission::Mab => "mab",
        }
    }
}

/// A device's network identity: where it belongs and how it is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetIdentity {
    pub asset_id: AssetId,
    pub zone: String,
    /// The model, to look up its capabilities in the device catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub admission: Admission,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macs: Vec<MacAddress>,
    #[serde(default, rename = "address", skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<AddressBinding>,
}

impl AssetIdentity {
    /// The network identity of an inventory asset, for the evaluator and
    /// the exports: its zone, MAC and address (held with no time limit; a
    /// store that keeps lease history passes those bindings instead). None
    /// when the asset has no zone. The admission method is not part of the
    /// inventory record, so the caller says it.
    pub fn from_spec(
        spec: &pumpward_core::inventory::AssetSpec,
        admission: Admission,
    ) -> Option<AssetIdentity> {
        Some(AssetIdentity {
            asset_id: spec.asset_id.clone(),
            zone: spec.zone.clone()?,
            manufacturer: Some(spec.manufacturer.clone()),
            model: Some(spec.model.clone()),
            admission,
            macs: spec.mac_address.into_iter().collect(),
            addresses: spec
                .ip_address
                .map(AddressBinding::always)
                .into_iter()
                .collect(),
        })
    }
}

impl AssetIdentity {
    /// The identity an enforcement export (RADIUS MAB `authorize`, EAP-TLS
    /// policy, ISE endpoints) lists as authorised: that of
    /// [`AssetIdentity::from_spec`], but None unless the asset's lifecycle
    /// state is admitted to the network. So a quarantined pump's MAC drops
    /// out of the authorised lists at the next export and falls through to
    /// the files' reject default, as a decommissioned one's does. (Flow
    /// evaluation keeps using `from_spec`: a quarantined pump's traffic
    /// must still be attributed to it.)
    pub fn authorised(
        asset: &pumpward_core::inventory::Asset,
        admission: Admission,
    ) -> Option<AssetIdentity> {
        if !asset.lifecycle_state.admitted_to_network() {
            return None;
        }
        AssetIdentity::from_spec(&asset.spec, admission)
    }
}

/// An address an asset held, and when: flows are attributed to the asset
/// that held the address at the time of the flow (DHCP leases move).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressBinding {
    pub ip: IpAddr,
    /// Inclusive start, microseconds since the Unix epoch; absent = always.
    #[serde(default, with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<i64>,
    /// Exclusive end; absent = still held.
    #[serde(default, with = "opt_time", skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
}

impl AddressBinding {
    pub fn always(ip: IpAddr) -> AddressBinding {
        AddressBinding {
            ip,
            valid_from: None,
            valid_until: None,
        }
    }

    pub fn holds_at(&self, at_us: i64) -> bool {
        self.valid_from.is_none_or(|f| f <= at_us) && self.valid_until.is_none_or(|u| at_us < u)
    }
}

/// RFC 3339 times in TOML strings, microseconds in memory; written in
/// Pumpward's one canonical form (`pumpward_core::timefmt`).
mod opt_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn to_text(us: i64) -> Option<String> {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()?;
        (1..=9999)
            .contains(&t.year())
            .then(|| pumpward_core::timefmt::format(t))
    }

    pub fn from_text(s: &str) -> Result<i64, String> {
        let t = pumpward_core::timefmt::parse(s)
            .map_err(|_| format!("{:?} is not an RFC 3339 time", super::trunc(s)))?;
        if !(1..=9999).contains(&t.year()) {
            return Err(format!("{:?} is outside years 1-9999", super::trunc(s)));
        }
        i64::try_from(t.unix_timestamp_nanos() / 1000)
            .map_err(|_| format!("{:?} is out of range", super::trunc(s)))
    }

    pub fn serialize<S: Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match t.map(|us| to_text(us).ok_or(us)) {
            Some(Ok(text)) => s.serialize_str(&text),
            Some(Err(us)) => Err(serde::ser::Error::custom(format!(
                "time {us} µs is outside years 1-9999"
            ))),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let s = String::deserialize(d)?;
        from_text(&s).map(Some).map_err(serde::de::Error::custom)
    }
}

pub(crate) fn trunc(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Why a policy file was refused. Nothing of a refused file is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file is {0} bytes; the limit is {MAX_POLICY_BYTES}")]
    TooLarge(usize),
    /// Syntax or a value of the wrong form; line and column are 1-based.
    #[error("line {line}, column {column}: {message}")]
    Toml {
        line: usize,
        column: usize,
        message: String,
    },
    /// The file parsed but contradicts itself; every problem is listed.
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
}

fn join(p: &[Problem]) -> String {
    p.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One problem in a parsed policy: where (`conduit "pump-dns" to`) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl PolicyDocument {
    /// Parses and validates a policy file.
    pub fn from_toml(text: &str) -> Result<PolicyDocument, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge(text.len()));
        }
        let doc: PolicyDocument = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_column(text, s.start))
                .unwrap_or((1, 1));
            PolicyError::Toml {
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        let problems = doc.problems();
        if problems.is_empty() {
            Ok(doc)
        } else {
            Err(PolicyError::Invalid(problems))
        }
    }

    /// The canonical TOML text of the document.
    pub fn to_toml(&self) -> String {
        // Serialising plain strings, numbers and tables cannot fail; a time
        // outside years 1-9999 cannot come from `from_toml`.
        toml::to_string(self).unwrap_or_else(|e| format!("# not exportable: {e}\n"))
    }

    /// Everything that makes the document inconsistent, in file order.
    pub fn problems(&self) -> Vec<Problem> {
        problems(&self.policy, &self.assets)
    }
}

/// Everything that makes a policy and its assets inconsistent, in order.
pub fn problems(policy: &Policy, assets: &[AssetIdentity]) -> Vec<Problem> {
    let mut out = policy.problems();
    let zones: BTreeSet<&str> = policy.zones.iter().map(|z| z.name.as_str()).collect();
    let mut seen = BTreeSet::new();
    for a in assets {
        let loc = format!("asset {:?}", a.asset_id.as_str());
        let mut p = |m: String| {
            out.push(Problem {
                location: loc.clone(),
                message: m,
            })
        };
        if !seen.insert(a.asset_id.as_str()) {
            p("is listed twice".into());
        }
        if !zones.contains(a.zone.as_str()) {
            p(format!(
                "zone {:?} is not a zone of this policy",
                trunc(&a.zone)
            ));
        }
        for (what, v) in [("manufacturer", &a.manufacturer), ("model", &a.model)] {
            if let Some(v) = v {
                if let Err(e) = pumpward_core::inventory::required_text(v, 256) {
                    p(format!("{what} {e}"));
                }
            }
        }
        for b in &a.addresses {
            if let (Some(f), Some(u)) = (b.valid_from, b.valid_until) {
                if u <= f {
                    p(format!("address {} ends before it starts", b.ip));
                }
            }
        }
    }
    out
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Zone and conduit names: lower-case letters, digits and single hyphens,
/// starting with a letter, at most 40 characters. They appear unquoted in
/// nftables chain names (hyphens become underscores, hence no underscores
/// here, so the mapping stays one-to-one), RADIUS files and CSV.
pub fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.as_bytes()[0].is_ascii_lowercase()
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a name (lower-case letters, digits and single hyphens, starting with a letter, at most 40)",
            trunc(s)
        ))
    }
}

fn check_text(s: &str) -> Result<(), String> {
    pumpward_core::inventory::required_text(s, 256)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Policy {
    /// The zone of this name, if any.
    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name == name)
    }

    /// Structural problems: names, duplicates, references, value forms.
    /// Overlaps, shadowing and other judgement calls are [`crate::check`]'s.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |location: String, message: String| out.push(Problem { location, message });
        if let Err(e) = check_text(&self.name) {
            push("policy name".into(), e);
        }
        if self.zones.len() > MAX_ZONES {
            push(
                "policy".into(),
                format!("has {} zones; at most {MAX_ZONES}", self.zones.len()),
            );
        }
        let mut names = BTreeSet::new();
        for z in &self.zones {
            let loc = format!("zone {:?}", trunc(&z.name));
            if let Err(e) = check_name(&z.name) {
                push(loc.clone(), e);
            }
            if z.name == INTERNET {
                push(
                    loc.clone(),
                    "\"internet\" is reserved for addresses outside every zone".into(),
                );
            }
            if !names.insert(z.name.as_str()) {
                push(loc.clone(), "is defined twice".into());
            }
            if let Err(e) = check_text(&z.purpose) {
                push(format!("{loc} purpose"), e);
            }
            for v in &z.vlans {
                if !(1..=4094).contains(v) {
                    push(
                        format!("{loc} vlans"),
                        format!("VLAN {v} is outside 1-4094"),
                    );
                }
            }
            let mut subnets = BTreeSet::new();
            for s in &z.subnets {
                if !subnets.insert(*s) {
                    push(format!("{loc} subnets"), format!("{s} is listed twice"));
                }
            }
        }
        let mut cnames = BTreeSet::new();
        for c in &self.conduits {
            let loc = format!("conduit {:?}", trunc(&c.name));
            if let Err(e) = check_name(&c.name) {
                push(loc.clone(), e);
            }
            if !cnames.insert(c.name.as_str()) {
                push(loc.clone(), "is defined twice".into());
            }
            for (field, z) in [("from", &c.from), ("to", &c.to)] {
                if z != INTERNET && !names.contains(z.as_str()) {
                    push(
                        format!("{loc} {field}"),
                        format!("zone {:?} is not a zone of this policy", trunc(z)),
                    );
                }
            }
            if c.from == INTERNET && c.to == INTERNET {
                push(loc.clone(), "joins the internet to itself".into());
            }
            if let Err(e) = check_text(&c.purpose) {
                push(format!("{loc} purpose"), e);
            }
            if !c.transport.has_ports() && !c.ports.is_empty() {
                push(
                    format!("{loc} ports"),
                    format!(
                        "transport {} has no ports; list ports only with tcp or udp",
                        c.transport.as_str()
                    ),
                );
            }
        }
        out
    }
}
