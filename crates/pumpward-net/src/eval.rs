//! Evaluating observed flows against the policy.
//!
//! An [`Evaluator`] is compiled once from a valid policy and the assets'
//! network identities, then answers [`Evaluator::evaluate`] for each flow
//! without allocating: address → zone is a binary search in sorted,
//! non-overlapping intervals (most specific subnet wins), address → asset a
//! binary search in a sorted table of address bindings checked against the
//! flow's time, and the conduits between two zones sit in a dense
//! zone-pair matrix. Results carry small ids ([`ZoneRef`], [`ConduitId`],
//! [`AssetRef`]) that the evaluator turns back into names for evidence.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use pumpward_flow::{Flow, Transport};
use serde::Serialize;

use crate::cidr::{is_local_segment, is_private, Cidr};
use crate::policy::{
    AssetIdentity, Conduit, Direction, Policy, PolicyError, PortRange, TransportRule, INTERNET,
};

/// A zone of the policy, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ZoneId(pub u16);

/// Where an address is: a zone, the internet (public and outside every
/// zone), or private but outside every zone (a gap in the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ZoneRef {
    Zone(ZoneId),
    Internet,
    Unzoned,
}

/// A conduit of the policy, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ConduitId(pub u32);

/// An asset of the evaluator's identity list, by position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct AssetRef(pub u32);

/// One side of a flow as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub zone: ZoneRef,
    /// The asset that held the address (or, failing that, the MAC) at the
    /// time of the flow.
    pub asset: Option<AssetRef>,
}

/// Which side of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Originator,
    Responder,
}

/// Why a flow was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allowance {
    Conduit(ConduitId),
    /// Inside one zone that is not a device zone: traffic that never crosses
    /// a zone boundary (a workstation to a printer on the same VLAN).
    WithinZone,
    /// To broadcast or multicast: stays on the segment (DHCP discovery).
    LocalSegment,
}

/// The rule a flow breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "violation")]
pub enum Violation {
    /// An address (and MAC) in a device zone that no registered asset held.
    UnknownDevice { side: Side, zone: ZoneId },
    /// A member of a device zone opened a connection to a public address.
    DeviceToInternet { zone: ZoneId },
    /// Two members of one device zone talking to each other (pump to pump).
    EastWest { zone: ZoneId },
    /// The conduit allows only the other side to open connections.
    WrongDirection { conduit: ConduitId },
    /// Conduits join the two zones, but none for this transport and port;
    /// `conduit` is the first of them, for the evidence.
    PortNotAllowed { conduit: ConduitId },
    /// No conduit joins the two zones at all (default deny).
    WrongDestinationZone { from: ZoneRef, to: ZoneRef },
}

impl Violation {
    /// Stable name for events and filters.
    pub fn kind(self) -> &'static str {
        match self {
            Violation::UnknownDevice { .. } => "unknown_device",
            Violation::DeviceToInternet { .. } => "device_to_internet",
            Violation::EastWest { .. } => "east_west",
            Violation::WrongDirection { .. } => "wrong_direction",
            Violation::PortNotAllowed { .. } => "port_not_allowed",
            Violation::WrongDestinationZone { .. } => "wrong_destination_zone",
        }
    }
}

/// The policy's answer for one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed(Allowance),
    Violation(Violation),
}

/// A flow's verdict with where its two ends were placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub orig: Endpoint,
    pub resp: Endpoint,
    pub verdict: Verdict,
}

/// Sorted, non-overlapping closed intervals of addresses, each with a value.
#[derive(Debug, Clone, Default)]
struct IntervalMap {
    starts: Vec<u128>,
    ends: Vec<u128>,
    values: Vec<u16>,
}

impl IntervalMap {
    /// Flattens possibly nested prefixes so that the most specific wins
    /// (ties: the earlier zone, which the check reports as an overlap).
    fn build(prefixes: &[(u128, u128, u8, u16)]) -> IntervalMap {
        let mut points: Vec<u128> = Vec::with_capacity(prefixes.len() * 2);
        for &(s, e, _, _) in prefixes {
            points.push(s);
            if let Some(n) = e.checked_add(1) {
                points.push(n);
            }
        }
        points.sort_unstable();
        points.dedup();
        let mut m = IntervalMap::default();
        for (i, &p) in points.iter().enumerate() {
            let seg_end = points.get(i + 1).map_or(u128::MAX, |n| n - 1);
            let best = prefixes
                .iter()
                .filter(|&&(s, e, _, _)| s <= p && p <= e)
                .max_by(|a, b| a.2.cmp(&b.2).then(b.3.cmp(&a.3)));
            let Some(&(_, _, _, v)) = best else { continue };
            if m.values.last() == Some(&v)
                && m.ends.last().and_then(|e| e.checked_add(1)) == Some(p)
            {
                if let Some(e) = m.ends.last_mut() {
                    *e = seg_end;
                }
                continue;
            }
            m.starts.push(p);
            m.ends.push(seg_end);
            m.values.push(v);
        }
        m
    }

    #[inline]
    fn get(&self, key: u128) -> Option<u16> {
        let i = self.starts.partition_point(|&s| s <= key);
        let i = i.checked_sub(1)?;
        (key <= *self.ends.get(i)?).then(|| self.values.get(i).copied())?
    }
}

/// A multiplicative hash for addresses and MACs. The keys come from the
/// hospital's own inventory, never from the wire, so the DoS resistance of
/// SipHash buys nothing here, while its cost would be most of a lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct AddrHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(v)).wrapping_mul(K);
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (self.0.rotate_left(5) ^ (v as u64) ^ ((v >> 64) as u64).rotate_left(32))
            .wrapping_mul(K);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

pub(crate) type BuildAddrHasher = BuildHasherDefault<AddrHasher>;

/// One address binding.
#[derive(Debug, Clone, Copy)]
struct Binding {
    key: (bool, u128),
    from: i64,
    until: i64,
    asset: u32,
}

#[derive(Debug, Clone)]
struct Compiled {
    conduit: u32,
    transport: TransportRule,
    ports: (u32, u32),
    /// Allowed from `to` to `from` because the conduit runs both ways.
    reversed: bool,
}

/// The compiled policy. Cheap to share (`&Evaluator` is all `evaluate` needs).
#[derive(Debug, Clone)]
pub struct Evaluator {
    zone_names: Vec<String>,
    device_zone: Vec<bool>,
    conduits: Vec<Conduit>,
    assets: Vec<AssetIdentity>,
    v4: IntervalMap,
    v6: IntervalMap,
    bindings: Vec<Binding>,
    /// Address → range of `bindings` holding it (sorted by start time).
    by_addr: HashMap<(bool, u128), (u32, u32), BuildAddrHasher>,
    macs: HashMap<[u8; 6], u32, BuildAddrHasher>,
    /// Per zone pair (row = originator zone ref, column = responder), the
    /// range of `compiled` entries.
    matrix: Vec<(u32, u32)>,
    compiled: Vec<Compiled>,
    ports: Vec<PortRange>,
}

fn key(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

impl Evaluator {
    /// Compiles a policy and identities; refuses an inconsistent pair (the
    /// same problems `PolicyDocument::from_toml` refuses).
    pub fn new(policy: &Policy, assets: &[AssetIdentity]) -> Result<Evaluator, PolicyError> {
        let problems = crate::policy::problems(policy, assets);
        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }
        let n = policy.zones.len();
        let zone_index = |name: &str| -> Option<usize> {
            if name == INTERNET {
                Some(n)
            } else {
                policy.zones.iter().position(|z| z.name == name)
            }
        };
        let (mut p4, mut p6) = (Vec::new(), Vec::new());
        for (i, z) in policy.zones.iter().enumerate() {
            for s in &z.subnets {
                let id = i as u16;
                match *s {
                    Cidr::V4 { len, .. } => {
                        if let Some((a, b)) = s.range_v4() {
                            p4.push((u128::from(a), u128::from(b), len, id));
                        }
                    }
                    Cidr::V6 { len, .. } => {
                        if let Some((a, b)) = s.range_v6() {
                            p6.push((a, b, len, id));
                        }
                    }
                }
            }
        }
        let mut bindings = Vec::new();
        let mut macs = Vec::new();
        for (i, a) in assets.iter().enumerate() {
            for b in &a.addresses {
                bindings.push(Binding {
                    key: key(b.ip),
                    from: b.valid_from.unwrap_or(i64::MIN),
                    until: b.valid_until.unwrap_or(i64::MAX),
                    asset: i as u32,
                });
            }
            for m in &a.macs {
                macs.push((m.octets(), i as u32));
            }
        }
        bindings.sort_by_key(|b| (b.key, b.from));
        let mut by_addr: HashMap<(bool, u128), (u32, u32), BuildAddrHasher> = HashMap::default();
        for (i, b) in bindings.iter().enumerate() {
            let e = by_addr.entry(b.key).or_insert((i as u32, i as u32));
            e.1 = i as u32 + 1;
        }
        // The check reports a MAC listed twice; the first asset keeps it.
        let mut mac_map: HashMap<[u8; 6], u32, BuildAddrHasher> = HashMap::default();
        for (m, i) in macs {
            mac_map.entry(m).or_insert(i);
        }

        // Rows and columns: zones, then internet (n), then unzoned (n + 1).
        let side = n + 2;
        let mut per_pair: Vec<Vec<Compiled>> = vec![Vec::new(); side * side];
        let mut ports = Vec::new();
        for (ci, c) in policy.conduits.iter().enumerate() {
            let (Some(f), Some(t)) = (zone_index(&c.from), zone_index(&c.to)) else {
                continue;
            };
            let start = ports.len() as u32;
            ports.extend_from_slice(&c.ports);
            let range = (start, ports.len() as u32);
            let entry = |reversed| Compiled {
                conduit: ci as u32,
                transport: c.transport,
                ports: range,
                reversed,
            };
            per_pair[f * side + t].push(entry(false));
            if c.direction == Direction::Both && f != t {
                per_pair[t * side + f].push(entry(true));
            }
        }
        let mut matrix = Vec::with_capacity(side * side);
        let mut compiled = Vec::new();
        for list in per_pair {
            let s = compiled.len() as u32;
            compiled.extend(list);
            matrix.push((s, compiled.len() as u32));
        }
        Ok(Evaluator {
            zone_names: policy.zones.iter().map(|z| z.name.clone()).collect(),
            device_zone: policy.zones.iter().map(|z| z.device_zone).collect(),
            conduits: policy.conduits.clone(),
            assets: assets.to_vec(),
            v4: IntervalMap::build(&p4),
            v6: IntervalMap::build(&p6),
            bindings,
            by_addr,
            macs: mac_map,
            matrix,
            compiled,
            ports,
        })
    }

    /// The zone an address belongs to.
    #[inline]
    pub fn zone_of(&self, addr: IpAddr) -> ZoneRef {
        let hit = match addr {
            IpAddr::V4(a) => self.v4.get(u128::from(u32::from(a))),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.v4.get(u128::from(u32::from(v4))),
                None => self.v6.get(u128::from(a)),
            },
        };
        match hit {
            Some(z) => ZoneRef::Zone(ZoneId(z)),
            None if is_private(addr) => ZoneRef::Unzoned,
            None => ZoneRef::Internet,
        }
    }

    /// The asset that held `addr` at `at_us`, else the one with this MAC.
    #[inline]
    pub fn asset_at(&self, addr: IpAddr, mac: Option<[u8; 6]>, at_us: i64) -> Option<AssetRef> {
        let by_addr = self.by_addr.get(&key(addr)).and_then(|&(s, e)| {
            self.bindings
                .get(s as usize..e as usize)?
                .iter()
                .find(|b| b.from <= at_us && at_us < b.until)
                .map(|b| AssetRef(b.asset))
        });
        by_addr.or_else(|| self.macs.get(&mac?).map(|&i| AssetRef(i)))
    }

    fn index(&self, z: ZoneRef) -> usize {
        let n = self.zone_names.len();
        match z {
            ZoneRef::Zone(ZoneId(i)) => usize::from(i),
            ZoneRef::Internet => n,
            ZoneRef::Unzoned => n + 1,
        }
    }

    fn pair(&self, from: ZoneRef, to: ZoneRef) -> &[Compiled] {
        let side = self.zone_names.len() + 2;
        let (s, e) = self
            .matrix
            .get(self.index(from) * side + self.index(to))
            .copied()
            .unwrap_or((0, 0));
        self.compiled.get(s as usize..e as usize).unwrap_or(&[])
    }

    fn allows(&self, c: &Compiled, t: Transport, port: u16) -> bool {
        if !c.transport.matches(t) {
            return false;
        }
        let ports = self
            .ports
            .get(c.ports.0 as usize..c.ports.1 as usize)
            .unwrap_or(&[]);
        ports.is_empty() || ports.iter().any(|r| r.contains(port))
    }

    fn is_device_zone(&self, z: ZoneRef) -> Option<ZoneId> {
        match z {
            ZoneRef::Zone(id) if self.device_zone.get(usize::from(id.0)) == Some(&true) => Some(id),
            _ => None,
        }
    }

    fn endpoint(&self, addr: IpAddr, mac: Option<pumpward_flow::ObservedMac>, at: i64) -> Endpoint {
        let mac = mac.filter(|m| !m.is_group()).map(|m| m.0);
        Endpoint {
            zone: self.zone_of(addr),
            asset: self.asset_at(addr, mac, at),
        }
    }

    /// The policy's verdict on one flow. Never allocates.
    pub fn evaluate(&self, f: &Flow) -> Evaluation {
        let orig = self.endpoint(f.orig_addr, f.orig_mac, f.start_us);
        let resp = self.endpoint(f.resp_addr, f.resp_mac, f.start_us);
        let verdict = self.judge(f, orig, resp);
        Evaluation {
            orig,
            resp,
            verdict,
        }
    }

    fn judge(&self, f: &Flow, orig: Endpoint, resp: Endpoint) -> Verdict {
        use Verdict::{Allowed, Violation as V};
        // A device nobody registered is the finding, whatever it talks to;
        // the originator first, since it chose to send.
        for (side, ep) in [(Side::Originator, orig), (Side::Responder, resp)] {
            // (A DHCP discovery from 0.0.0.0 is unzoned, so it never lands here.)
            if let (Some(zone), None) = (self.is_device_zone(ep.zone), ep.asset) {
                return V(Violation::UnknownDevice { side, zone });
            }
        }
        if is_local_segment(f.resp_addr) {
            return Allowed(Allowance::LocalSegment);
        }
        let pair = self.pair(orig.zone, resp.zone);
        if let Some(c) = pair
            .iter()
            .find(|c| self.allows(c, f.transport, f.resp_port))
        {
            return Allowed(Allowance::Conduit(ConduitId(c.conduit)));
        }
        if orig.zone == resp.zone {
            if let Some(zone) = self.is_device_zone(orig.zone) {
                return V(Violation::EastWest { zone });
            }
            if let ZoneRef::Zone(_) = orig.zone {
                return Allowed(Allowance::WithinZone);
            }
        }
        if resp.zone == ZoneRef::Internet {
            if let Some(zone) = self.is_device_zone(orig.zone) {
                return V(Violation::DeviceToInternet { zone });
            }
        }
        let reverse = self.pair(resp.zone, orig.zone);
        if let Some(c) = reverse.iter().find(|c| {
            !c.reversed
                && (self.allows(c, f.transport, f.resp_port)
                    || self.allows(c, f.transport, f.orig_port))
        }) {
            return V(Violation::WrongDirection {
                conduit: ConduitId(c.conduit),
            });
        }
        if let Some(c) = pair.first() {
            return V(Violation::PortNotAllowed {
                conduit: ConduitId(c.conduit),
            });
        }
        V(Violation::WrongDestinationZone {
            from: orig.zone,
            to: resp.zone,
        })
    }

    /// The name of a zone reference (`internet`, `unzoned` or the zone's).
    pub fn zone_name(&self, z: ZoneRef) -> &str {
        match z {
            ZoneRef::Zone(ZoneId(i)) => self
                .zone_names
                .get(usize::from(i))
                .map_or("unzoned", String::as_str),
            ZoneRef::Internet => INTERNET,
            ZoneRef::Unzoned => "unzoned",
        }
    }

    pub fn conduit(&self, c: ConduitId) -> Option<&Conduit> {
        self.conduits.get(c.0 as usize)
    }

    pub fn asset(&self, a: AssetRef) -> Option<&AssetIdentity> {
        self.assets.get(a.0 as usize)
    }

    /// A one-line explanation of a verdict for an event or a list.
    pub fn describe(&self, e: &Evaluation) -> String {
        let name = |c: ConduitId| self.conduit(c).map_or("?", |c| c.name.as_str());
        let z = |id: ZoneId| self.zone_name(ZoneRef::Zone(id));
        let (from, to) = (self.zone_name(e.orig.zone), self.zone_name(e.resp.zone));
        match e.verdict {
            Verdict::Allowed(Allowance::Conduit(c)) => format!("allowed by conduit {}", name(c)),
            Verdict::Allowed(Allowance::WithinZone) => format!("allowed within zone {from}"),
            Verdict::Allowed(Allowance::LocalSegment) => "allowed: stays on the local segment".into(),
            Verdict::Violation(v) => match v {
                Violation::UnknownDevice { side, zone } => format!(
                    "unknown device in device zone {} ({})",
                    z(zone),
                    match side {
                        Side::Originator => "originator",
                        Side::Responder => "responder",
                    }
                ),
                Violation::DeviceToInternet { zone } => {
                    format!("device in zone {} talking to the internet", z(zone))
                }
                Violation::EastWest { zone } => {
                    format!("east-west traffic inside device zone {}", z(zone))
                }
                Violation::WrongDirection { conduit } => format!(
                    "wrong direction: conduit {} lets only {} open connections to {}",
                    name(conduit),
                    to,
                    from
                ),
                Violation::PortNotAllowed { conduit } => format!(
                    "transport or port not allowed from {from} to {to} (conduit {} allows other ports)",
                    name(conduit)
                ),
                Violation::WrongDestinationZone { .. } => {
                    format!("no conduit from {from} to {to} (default deny)")
                }
            },
        }
    }
}

/// What the detection engine receives for a violation: the rule broken,
/// where both ends were, and the flow's own evidence (tuple, times, bytes).
/// Built only for violations, so allowed flows stay allocation-free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViolationEvidence {
    /// `Violation::kind`: `unknown_device`, `east_west`, …
    pub kind: &'static str,
    pub message: String,
    pub from_zone: String,
    pub to_zone: String,
    pub orig_asset: Option<String>,
    pub resp_asset: Option<String>,
    /// The conduit concerned (wrong direction, port not allowed).
    pub conduit: Option<String>,
    pub transport: u8,
    pub orig_addr: IpAddr,
    pub orig_port: u16,
    pub resp_addr: IpAddr,
    pub resp_port: u16,
    pub start_us: i64,
    pub duration_us: Option<u64>,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
}

impl Evaluator {
    /// The evidence of a violation; None when the flow was allowed.
    pub fn evidence(&self, f: &Flow, e: &Evaluation) -> Option<ViolationEvidence> {
        let Verdict::Violation(v) = e.verdict else {
            return None;
        };
        let asset = |a: Option<AssetRef>| {
            a.and_then(|a| self.asset(a))
                .map(|a| a.asset_id.to_string())
        };
        let conduit = match v {
            Violation::WrongDirection { conduit } | Violation::PortNotAllowed { conduit } => {
                self.conduit(conduit).map(|c| c.name.clone())
            }
            _ => None,
        };
        Some(ViolationEvidence {
            kind: v.kind(),
            message: self.describe(e),
            from_zone: self.zone_name(e.orig.zone).to_owned(),
            to_zone: self.zone_name(e.resp.zone).to_owned(),
            orig_asset: asset(e.orig.asset),
            resp_asset: asset(e.resp.asset),
            conduit,
            transport: f.transport.iana(),
            orig_addr: f.orig_addr,
            orig_port: f.orig_port,
            resp_addr: f.resp_addr,
            resp_port: f.resp_port,
            start_us: f.start_us,
            duration_us: f.duration_us,
            orig_bytes: f.orig_bytes,
            resp_bytes: f.resp_bytes,
        })
    }
}
