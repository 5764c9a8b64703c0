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
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub orig_packets: u64,
    pub resp_packets: u64,
    pub source: FlowSource,
}
