//! "A device seen in two places at once": the same MAC or certificate
//! identity from two addresses or zones within a short window, the mark of
//! a cloned identity (or a spoofed MAC bypassing MAB).
//!
//! Only identities that belong to a registered asset are tracked from flows:
//! a flow captured across a router carries the router's MAC for the far
//! side, which would otherwise "be" in every zone at once.

use std::collections::HashMap;
use std::net::IpAddr;

use pumpward_core::inventory::AssetId;
use pumpward_flow::Flow;
use serde::Serialize;

use crate::eval::{BuildAddrHasher, Evaluation, Evaluator, ZoneRef};

/// What identifies a device on the network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKey {
    Mac([u8; 6]),
    /// The asset a client certificate names (`urn:pumpward:asset:<id>`), as
    /// the gateway saw it on a TLS connection.
    Certificate(AssetId),
}

/// Where and when an identity was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sighting {
    pub addr: IpAddr,
    pub zone: ZoneRef,
    pub at_us: i64,
}

/// Two sightings of one identity too close in time to be a move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TwoPlaces {
    pub key: DeviceKey,
    pub earlier: Sighting,
    pub later: Sighting,
    /// The flow of the earlier sighting, when it came from a flow: the
    /// evidence beside the later one (which the caller holds).
    pub earlier_flow: Option<Flow>,
}

/// The last sighting of an identity, with its flow when it came from one.
#[derive(Debug, Clone)]
struct Seen {
    sighting: Sighting,
    flow: Option<Flow>,
}

/// Remembers the last sighting of each identity.
#[derive(Debug, Clone)]
pub struct PresenceTracker {
    window_us: i64,
    // Keys are registered identities only (see the module docs), so no
    // sender can flood the map with chosen keys: the evaluator's cheap hash
    // serves (it is looked up for most flows). One flow is kept per
    // identity (a copy, no heap), so memory stays bounded by the inventory.
    last: HashMap<DeviceKey, Seen, BuildAddrHasher>,
}

impl PresenceTracker {
    /// `window_us`: how close two sightings from different places must be to
    /// count as "at once" (a DHCP renumbering or a roam takes longer).
    pub fn new(window_us: i64) -> Self {
        PresenceTracker {
            window_us: window_us.max(0),
            last: HashMap::default(),
        }
    }

    /// Records a sighting; returns the conflict if the same identity was seen
    /// at another address or zone within the window.
    pub fn observe(&mut self, key: DeviceKey, s: Sighting) -> Option<TwoPlaces> {
        self.observe_seen(key, s, None)
    }

    fn observe_seen(
        &mut self,
        key: DeviceKey,
        s: Sighting,
        flow: Option<&Flow>,
    ) -> Option<TwoPlaces> {
        match self.last.get_mut(&key) {
            Some(prev) => {
                let p = prev.sighting;
                let close = s.at_us.abs_diff(p.at_us) <= self.window_us.unsigned_abs();
                let elsewhere = p.addr != s.addr || p.zone != s.zone;
                let conflict = (close && elsewhere).then(|| TwoPlaces {
                    key: key.clone(),
                    earlier: p,
                    later: s,
                    earlier_flow: prev.flow.clone(),
                });
                if s.at_us >= p.at_us {
                    prev.sighting = s;
                    prev.flow = flow.cloned();
                }
                conflict
            }
            None => {
                self.last.insert(
                    key,
                    Seen {
                        sighting: s,
                        flow: flow.cloned(),
                    },
                );
                None
            }
        }
    }

    /// Feeds the originator's MAC of an evaluated flow, when it is a
    /// registered asset's.
    pub fn observe_flow(&mut self, ev: &Evaluator, f: &Flow, e: &Evaluation) -> Option<TwoPlaces> {
        let mac = f.orig_mac.filter(|m| !m.is_group())?;
        let asset = ev.asset(e.orig.asset?)?;
        if !asset.macs.iter().any(|m| m.octets() == mac.0) {
            return None;
        }
        self.observe_seen(
            DeviceKey::Mac(mac.0),
            Sighting {
                addr: f.orig_addr,
                zone: e.orig.zone,
                at_us: f.start_us,
            },
            Some(f),
        )
    }

    /// Forgets sightings older than `before_us`, to bound memory.
    pub fn prune(&mut self, before_us: i64) {
        self.last.retain(|_, s| s.sighting.at_us >= before_us);
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
