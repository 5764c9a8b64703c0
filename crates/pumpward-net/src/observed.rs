//! Observed conduits: who actually talks to whom, aggregated per zone pair,
//! transport and destination port, for the "observed vs allowed" diagram;
//! and the unknown devices seen in device zones.
//!
//! Both are bounded, because the traffic decides what they hold: a port
//! scan makes a row per port and zone pair, a rogue DHCP pool a device per
//! address. Beyond the bound new entries are counted, not listed; entries
//! already listed keep counting.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use pumpward_flow::{Flow, Transport};
use serde::Serialize;

use crate::eval::{Allowance, BuildAddrHasher, ConduitId, Evaluation, Evaluator, Verdict, ZoneRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    from: ZoneRef,
    to: ZoneRef,
    transport: Transport,
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stats {
    flows: u64,
    bytes: u64,
    first_us: i64,
    last_us: i64,
    allowed_by: Option<ConduitId>,
    violations: u64,
}

/// Observed-conduit rows kept by [`ObservedConduits::new`]: far more than a
/// hospital's real conduits (zone pairs × a few ports each), far fewer than
/// a scan of every port between every zone pair (~13 million rows, ~1 GB).
pub const MAX_OBSERVED_CONDUITS: usize = 10_000;

/// The running aggregate. Memory grows with distinct (zone pair, transport,
/// port) combinations, not with flows, up to its limit of rows.
#[derive(Debug, Clone)]
pub struct ObservedConduits {
    // Keys are zone ids, transports and ports: the cheap hash of the
    // evaluator serves here too.
    map: HashMap<Key, Stats, BuildAddrHasher>,
    limit: usize,
    flows_not_listed: u64,
}

impl Default for ObservedConduits {
    fn default() -> Self {
        ObservedConduits::with_limit(MAX_OBSERVED_CONDUITS)
    }
}

/// One line of the observed-conduits view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedConduit {
    pub from_zone: String,
    pub to_zone: String,
    pub transport: String,
    /// Destination port for TCP and UDP; 0 otherwise.
    pub port: u16,
    pub flows: u64,
    pub bytes: u64,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    /// The conduit that allows this traffic, if one does.
    pub allowed_by: Option<String>,
    /// Flows of this line that were violations (unknown devices included).
    pub violations: u64,
}

fn transport_name(t: Transport) -> String {
    match t {
        Transport::Tcp => "tcp".into(),
        Transport::Udp => "udp".into(),
        Transport::Icmp => "icmp".into(),
        Transport::Icmpv6 => "icmpv6".into(),
        Transport::Other(n) => format!("ip-proto-{n}"),
    }
}

impl ObservedConduits {
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `limit` rows; flows of further rows are only counted.
    pub fn with_limit(limit: usize) -> Self {
        ObservedConduits {
            map: HashMap::default(),
            limit,
            flows_not_listed: 0,
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Flows that would have made a new row beyond the limit.
    pub fn flows_not_listed(&self) -> u64 {
        self.flows_not_listed
    }

    /// Adds one evaluated flow.
    pub fn record(&mut self, f: &Flow, e: &Evaluation) {
        let port = match f.transport {
            Transport::Tcp | Transport::Udp => f.resp_port,
            _ => 0,
        };
        let key = Key {
            from: e.orig.zone,
            to: e.resp.zone,
            transport: f.transport,
            port,
        };
        let end = f.start_us.saturating_add(
            f.duration_us
                .map_or(0, |d| i64::try_from(d).unwrap_or(i64::MAX)),
        );
        let full = self.map.len() >= self.limit;
        let s = match self.map.entry(key) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(_) if full => {
                self.flows_not_listed = self.flows_not_listed.saturating_add(1);
                return;
            }
            Entry::Vacant(v) => v.insert(Stats {
                flows: 0,
                bytes: 0,
                first_us: f.start_us,
                last_us: end,
                allowed_by: None,
                violations: 0,
            }),
        };
        s.flows += 1;
        s.bytes = s
            .bytes
            .saturating_add(f.orig_bytes.saturating_add(f.resp_bytes));
        s.first_us = s.first_us.min(f.start_us);
        s.last_us = s.last_us.max(end);
        match e.verdict {
            Verdict::Allowed(Allowance::Conduit(c)) => s.allowed_by = s.allowed_by.or(Some(c)),
            Verdict::Allowed(_) => {}
            Verdict::Violation(_) => s.violations += 1,
        }
    }

    /// The view, sorted by zone names, transport and port (stable output).
    pub fn rows(&self, ev: &Evaluator) -> Vec<ObservedConduit> {
        let mut rows: Vec<ObservedConduit> = self
            .map
            .iter()
            .map(|(k, s)| ObservedConduit {
                from_zone: ev.zone_name(k.from).to_owned(),
                to_zone: ev.zone_name(k.to).to_owned(),
                transport: transport_name(k.transport),
                port: k.port,
                flows: s.flows,
                bytes: s.bytes,
                first_seen_us: s.first_us,
                last_seen_us: s.last_us,
                allowed_by: s
                    .allowed_by
                    .and_then(|c| ev.conduit(c))
                    .map(|c| c.name.clone()),
                violations: s.violations,
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.from_zone, &a.to_zone, &a.transport, a.port).cmp(&(
                &b.from_zone,
                &b.to_zone,
                &b.transport,
                b.port,
            ))
        });
        rows
    }
}

/// Unknown devices kept by [`UnknownDevices::new`].
pub const MAX_UNKNOWN_DEVICES: usize = 10_000;

/// An unknown device: the zone it was seen in (by name, so that the list
/// outlives a policy version), its address and its MAC if the flow had one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnknownKey {
    pub zone: String,
    pub address: IpAddr,
    pub mac: Option<[u8; 6]>,
}

/// When an unknown device was first and last seen (µs), in how many flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSeen {
    pub first_us: i64,
    pub last_us: i64,
    pub flows: u64,
}

/// The devices seen in a device zone that no registered asset held, in
/// (zone, address, MAC) order, up to a limit.
#[derive(Debug, Clone)]
pub struct UnknownDevices {
    map: BTreeMap<UnknownKey, UnknownSeen>,
    limit: usize,
    not_listed: u64,
}

impl Default for UnknownDevices {
    fn default() -> Self {
        UnknownDevices::with_limit(MAX_UNKNOWN_DEVICES)
    }
}

impl UnknownDevices {
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `limit` devices; sightings of further ones are only counted.
    pub fn with_limit(limit: usize) -> Self {
        UnknownDevices {
            map: BTreeMap::new(),
            limit,
            not_listed: 0,
        }
    }

    /// A sighting at `at_us`.
    pub fn record(&mut self, zone: &str, address: IpAddr, mac: Option<[u8; 6]>, at_us: i64) {
        let key = UnknownKey {
            zone: zone.to_owned(),
            address,
            mac,
        };
        let full = self.map.len() >= self.limit;
        match self.map.get_mut(&key) {
            Some(s) => {
                s.first_us = s.first_us.min(at_us);
                s.last_us = s.last_us.max(at_us);
                s.flows = s.flows.saturating_add(1);
            }
            None if full => self.not_listed = self.not_listed.saturating_add(1),
            None => {
                self.map.insert(
                    key,
                    UnknownSeen {
                        first_us: at_us,
                        last_us: at_us,
                        flows: 1,
                    },
                );
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&UnknownKey, &UnknownSeen)> {
        self.map.iter()
    }

    /// Keeps only the devices `keep` accepts: a device registered as an
    /// asset is unknown no more.
    pub fn retain(&mut self, mut keep: impl FnMut(&UnknownKey, &UnknownSeen) -> bool) {
        self.map.retain(|k, s| keep(k, s));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sightings of devices beyond the limit.
    pub fn not_listed(&self) -> u64 {
        self.not_listed
    }
}
