//! Observed conduits: who actually talks to whom, aggregated per zone pair,
//! transport and destination port, for the "observed vs allowed" diagram.

use std::collections::HashMap;

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

/// The running aggregate. Memory grows with distinct (zone pair, transport,
/// port) combinations, not with flows.
#[derive(Debug, Clone, Default)]
pub struct ObservedConduits {
    // Keys are zone ids, transports and ports: a small, bounded space, so
    // the cheap hash of the evaluator serves here too.
    map: HashMap<Key, Stats, BuildAddrHasher>,
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
        let s = self.map.entry(key).or_insert(Stats {
            flows: 0,
            bytes: 0,
            first_us: f.start_us,
            last_us: end,
            allowed_by: None,
            violations: 0,
        });
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
