//! Observed network flows: what the pump network actually carried.
//!
//! Every source of traffic evidence (a Zeek `conn.log`, IPFIX or NetFlow v9
//! records from a switch or firewall, a pcap/pcapng capture) is turned into
//! the same [`Flow`] record, so that the policy evaluation in `pumpward-net`
//! and the detection engine see one shape whatever the sensor was.
//!
//! Invariants:
//! - A `Flow` is what was *observed*, not what was allowed: its MAC addresses
//!   are raw octets ([`ObservedMac`]) and may be broadcast or multicast (a
//!   pump's DHCPDISCOVER goes to `ff:ff:ff:ff:ff:ff`), unlike the inventory's
//!   `MacAddress`, which names one device.
//! - Times are microseconds since the Unix epoch, UTC. Parsers keep the
//!   sensor's precision and never invent a time that was not in the record.
//! - The originator is the side that started the connection as the sensor saw
//!   it (Zeek's `id.orig_h`, IPFIX's source); direction rules depend on this.
//! - Byte counts are IP-level (headers included) for every sensor.
//!
//! The parsers (pure: they are handed bytes or a reader, never open files
//! or sockets):
//! - [`zeek`]: Zeek `conn.log`, TSV and JSON, read whole or followed while
//!   Zeek writes it; skipped lines are counted by reason.
//! - [`ipfix`]: IPFIX and NetFlow v9 datagrams through a [`ipfix::Collector`]
//!   that keeps the exporters' templates; the UDP socket is the caller's.
//! - [`pcap`]: pcap/pcapng captures aggregated into flows.
//! - [`fuzzing`]: the fuzz targets' bodies (see `fuzz/`).
//!
//! User documentation: `docs/flow-ingestion.md`.

pub mod fuzzing;
pub mod ipfix;
pub mod pcap;
pub mod zeek;

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A MAC address as seen on the wire: any 48-bit value, including group
/// (multicast/broadcast) addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObservedMac(pub [u8; 6]);

impl ObservedMac {
    /// Group addresses (multicast and broadcast) never identify one device.
    pub fn is_group(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for ObservedMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

/// The transport protocol of a flow (IANA protocol number where it has no name here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    Other(u8),
}

impl Transport {
    pub fn from_iana(n: u8) -> Transport {
        match n {
            6 => Transport::Tcp,
            17 => Transport::Udp,
            1 => Transport::Icmp,
            58 => Transport::Icmpv6,
            other => Transport::Other(other),
        }
    }

    pub fn iana(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
            Transport::Icmp => 1,
            Transport::Icmpv6 => 58,
            Transport::Other(n) => n,
        }
    }
}

/// Which kind of sensor produced a flow; kept as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowSource {
    ZeekConnLog,
    Ipfix,
    NetflowV9,
    Pcap,
}

/// One observed conversation between two endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// First packet, microseconds since the Unix epoch (UTC).
    pub start_us: i64,
    /// Time from first to last packet, in microseconds, where the sensor knew it.
    pub duration_us: Option<u64>,
    pub transport: Transport,
    pub orig_addr: IpAddr,
    /// Port for TCP/UDP; for ICMP, Zeek's convention (type in orig, code in resp).
    pub orig_port: u16,
    pub resp_addr: IpAddr,
    pub resp_port: u16,
    pub orig_mac: Option<ObservedMac>,
    pub resp_mac: Option<ObservedMac>,
    /// Bytes at the IP layer, IP headers included (Zeek's `orig_ip_bytes`,
    /// IPFIX's `octetDeltaCount`), so that every sensor counts alike.
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub orig_packets: u64,
    pub resp_packets: u64,
    pub source: FlowSource,
    /// The sensor's own name for this connection (Zeek's `uid`), so an
    /// analyst can find it in the sensor's other logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor_uid: Option<SensorUid>,
    /// How the connection went, where the sensor judged it (Zeek's `conn_state`):
    /// a pump whose attempts are all `S0`/`REJ` is being refused, not talking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_state: Option<ConnState>,
}

/// A sensor's connection identifier, kept inline (no heap allocation per
/// flow): Zeek uids are 15–18 characters; longer names are refused by the parsers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SensorUid {
    len: u8,
    bytes: [u8; SensorUid::MAX],
}

impl SensorUid {
    pub const MAX: usize = 31;

    /// `None` when the name is empty, longer than [`SensorUid::MAX`] bytes or not printable ASCII.
    pub fn new(s: &str) -> Option<SensorUid> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > Self::MAX || !b.iter().all(|c| c.is_ascii_graphic()) {
            return None;
        }
        let mut bytes = [0u8; Self::MAX];
        bytes[..b.len()].copy_from_slice(b);
        Some(SensorUid {
            len: b.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored (see `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for SensorUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for SensorUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SensorUid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SensorUid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SensorUid::new(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "a sensor uid is 1 to {} printable ASCII characters",
                SensorUid::MAX
            ))
        })
    }
}

/// Zeek's summary of a connection's state (`conn_state` in `conn.log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnState {
    /// Attempt seen, no reply.
    S0,
    /// Established, not terminated.
    S1,
    /// Normal establishment and termination.
    SF,
    /// Attempt rejected.
    REJ,
    S2,
    S3,
    RSTO,
    RSTR,
    RSTOS0,
    RSTRH,
    SH,
    SHR,
    /// No SYN seen, midstream traffic.
    OTH,
}

impl ConnState {
    pub fn from_zeek(s: &[u8]) -> Option<ConnState> {
        Some(match s {
            b"S0" => ConnState::S0,
            b"S1" => ConnState::S1,
            b"SF" => ConnState::SF,
            b"REJ" => ConnState::REJ,
            b"S2" => ConnState::S2,
            b"S3" => ConnState::S3,
            b"RSTO" => ConnState::RSTO,
            b"RSTR" => ConnState::RSTR,
            b"RSTOS0" => ConnState::RSTOS0,
            b"RSTRH" => ConnState::RSTRH,
            b"SH" => ConnState::SH,
            b"SHR" => ConnState::SHR,
            b"OTH" => ConnState::OTH,
            _ => return None,
        })
    }
}
