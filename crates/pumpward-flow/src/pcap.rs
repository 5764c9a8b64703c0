//! Packet captures (classic pcap and pcapng) turned into flows.
//!
//! [`read_capture`] streams a capture from any `Read`: classic pcap in either
//! byte order with microsecond or nanosecond timestamps, and pcapng (section
//! headers in either byte order, interface descriptions with `if_tsresol`,
//! enhanced and simple packet blocks; other blocks are passed over by their
//! length). Link types: Ethernet (1, with 802.1Q/802.1ad tags), raw IP
//! (101, 12, 14, 228, 229) and Linux cooked capture (113, 276).
//!
//! Packets are aggregated by [`Aggregator`] into flows much as Zeek builds
//! `conn.log`: one flow per 5-tuple until it has been idle longer than the
//! transport's timeout; the originator is the sender of the first packet,
//! unless the other side sent the first pure SYN; bytes are IP-level
//! (Zeek's `orig_ip_bytes`). ICMP flows are keyed by the two addresses only,
//! with the first packet's type and code as ports (Zeek pairs request and
//! reply types instead).
//!
//! A truncated or corrupt file does not lose what came before it: the
//! result holds the flows gathered so far *and* the error, with its byte offset.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{Flow, FlowSource, ObservedMac, Transport};

/// Captured packets longer than this are taken as corruption (pcap's own
/// maximum snapshot length is 262144).
pub const MAX_PACKET_BYTES: usize = 1 << 20;

/// Idle timeouts after which the next packet of a 5-tuple starts a new flow.
/// The defaults are Zeek's (`tcp_inactivity_timeout` 5 min, UDP and ICMP 1 min).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregatorConfig {
    pub tcp_idle_us: i64,
    pub udp_idle_us: i64,
    pub other_idle_us: i64,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            tcp_idle_us: 300_000_000,
            udp_idle_us: 60_000_000,
            other_idle_us: 60_000_000,
        }
    }
}

/// Why the capture could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("offset {offset}: truncated: {what} needs {needed} bytes, {available} left")]
    Truncated {
        offset: u64,
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("offset 0: not a pcap or pcapng file (first four bytes {magic:08x})")]
    NotACapture { magic: u32 },
    #[error("offset {offset}: {problem}")]
    Malformed { offset: u64, problem: String },
    #[error("offset {offset}: read error: {message}")]
    Io { offset: u64, message: String },
}

/// What happened to the packets of a capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureCounts {
    pub packets: u64,
    /// Packets that went into a flow.
    pub in_flows: u64,
    /// ARP, LLDP and the like.
    pub not_ip: u64,
    /// IP fragments after the first (they carry no ports).
    pub later_fragments: u64,
    /// Packets whose headers were cut short by the snapshot length or are malformed.
    pub bad_headers: u64,
    pub unsupported_link_type: u64,
    /// pcapng simple packet blocks, which carry no time.
    pub no_timestamp: u64,
    /// pcapng blocks of types not read here (name resolution, statistics...).
    pub blocks_skipped: u64,
}

/// The flows of a capture, and the error that stopped reading it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureFlows {
    /// Ordered by start time.
    pub flows: Vec<Flow>,
    pub counts: CaptureCounts,
    /// `Some` if the capture was truncated or corrupt; `flows` still holds
    /// everything before that point.
    pub error: Option<CaptureError>,
}

/// Reads a whole capture and aggregates its packets into flows. The
/// reader is read in small pieces: hand it a `BufReader` for a file.
pub fn read_capture<R: Read>(input: R, config: AggregatorConfig) -> CaptureFlows {
    let mut agg = Aggregator::new(config);
    let mut src = Source {
        input,
        offset: 0,
        buf: Vec::new(),
    };
    let error = read_into(&mut src, &mut agg).err();
    let (flows, counts) = agg.finish();
    CaptureFlows {
        flows,
        counts,
        error,
    }
}

struct Source<R> {
    input: R,
    offset: u64,
    buf: Vec<u8>,
}

impl<R: Read> Source<R> {
    /// Reads exactly `n` bytes into `self.buf`; `Ok(false)` at a clean end of file.
    fn read(&mut self, n: usize, what: &'static str, eof_ok: bool) -> Result<bool, CaptureError> {
        self.buf.clear();
        self.buf.resize(n, 0);
        let mut got = 0;
        while got < n {
            match self.input.read(&mut self.buf[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(CaptureError::Io {
                        offset: self.offset + got as u64,
                        message: e.to_string(),
                    })
                }
            }
        }
        if got == 0 && eof_ok {
            return Ok(false);
        }
        if got < n {
            return Err(CaptureError::Truncated {
                offset: self.offset,
                what,
                needed: n,
                available: got,
            });
        }
        self.offset += n as u64;
        Ok(true)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8]) -> u16 {
        let a = [b[0], b[1]];
        match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        }
    }

    fn u32(self, b: &[u8]) -> u32 {
        let a = [b[0], b[1], b[2], b[3]];
        match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        }
    }
}

fn read_into<R: Read>(src: &mut Source<R>, agg: &mut Aggregator) -> Result<(), CaptureError> {
    src.read(4, "file header", false)?;
    let magic = [src.buf[0], src.buf[1], src.buf[2], src.buf[3]];
    match u32::from_le_bytes(magic) {
        0xa1b2_c3d4 => classic(src, agg, Endian::Little, false),
        0xa1b2_3c4d => classic(src, agg, Endian::Little, true),
        0x0a0d_0d0a => pcapng(src, agg),
        _ => match u32::from_be_bytes(magic) {
            0xa1b2_c3d4 => classic(src, agg, Endian::Big, false),
            0xa1b2_3c4d => classic(src, agg, Endian::Big, true),
            _ => Err(CaptureError::NotACapture {
                magic: u32::from_be_bytes(magic),
            }),
        },
    }
}

fn classic<R: Read>(
    src: &mut Source<R>,
    agg: &mut Aggregator,
    e: Endian,
    nanos: bool,
) -> Result<(), CaptureError> {
    src.read(20, "file header", false)?;
    let linktype = e.u32(&src.buf[16..20]) & 0x0fff_ffff;
    loop {
        let record_offset = src.offset;
        if !src.read(16, "packet record header", true)? {
            return Ok(());
        }
        let secs = i64::from(e.u32(&src.buf[0..4]));
        let frac = i64::from(e.u32(&src.buf[4..8]));
        let incl = e.u32(&src.buf[8..12]) as usize;
        if incl > MAX_PACKET_BYTES {
            return Err(CaptureError::Malformed {
                offset: record_offset,
                problem: format!("packet record claims {incl} captured bytes (corrupt file?)"),
            });
        }
        let ts_us = secs * 1_000_000 + if nanos { frac / 1000 } else { frac };
        src.read(incl, "packet data", false)?;
        agg.packet(ts_us, linktype, &src.buf);
    }
}

#[derive(Clone, Copy)]
struct Interface {
    linktype: u32,
    /// `if_tsresol`: units per second as 10^-n (false) or 2^-n (true).
    resol: (bool, u8),
}

impl Interface {
    fn ts_us(&self, units: u64) -> i64 {
        // Decimal resolutions finer than 10^-30 s are refused when the interface is read.
        let us = match self.resol {
            (false, n) if n >= 6 => 10u128
                .checked_pow(u32::from(n - 6))
                .map_or(0, |d| u128::from(units) / d),
            (false, n) => u128::from(units) * 10u128.pow(u32::from(6 - n)),
            (true, n) => (u128::from(units) * 1_000_000) >> n.min(127),
        };
        i64::try_from(us).unwrap_or(i64::MAX)
    }
}

fn pcapng<R: Read>(src: &mut Source<R>, agg: &mut Aggregator) -> Result<(), CaptureError> {
    // The first block's type has been read already.
    let mut block_offset = 0u64;
    let mut block_type_read = true;
    let mut e = Endian::Little;
    let mut interfaces: Vec<Interface> = Vec::new();
    loop {
        let block_type_raw;
        if block_type_read {
            block_type_raw = [src.buf[0], src.buf[1], src.buf[2], src.buf[3]];
            block_type_read = false;
        } else {
            block_offset = src.offset;
            if !src.read(4, "block header", true)? {
                return Ok(());
            }
            block_type_raw = [src.buf[0], src.buf[1], src.buf[2], src.buf[3]];
        }
        src.read(4, "block header", false)?;
        let len_raw = [src.buf[0], src.buf[1], src.buf[2], src.buf[3]];
        let is_shb = u32::from_le_bytes(block_type_raw) == 0x0a0d_0d0a;
        if is_shb {
            // The byte-order magic decides how this section's numbers read.
            src.read(4, "section header", false)?;
            e = match u32::from_le_bytes([src.buf[0], src.buf[1], src.buf[2], src.buf[3]]) {
                0x1a2b_3c4d => Endian::Little,
                0x4d3c_2b1a => Endian::Big,
                m => {
                    return Err(CaptureError::Malformed {
                        offset: block_offset + 8,
                        problem: format!("section header byte-order magic {m:08x}"),
                    })
                }
            };
            interfaces.clear();
        }
        let total = e.u32(&len_raw) as usize;
        let consumed = if is_shb { 12 } else { 8 };
        if total % 4 != 0 || total < consumed + 4 || total > MAX_PACKET_BYTES + 64 {
            return Err(CaptureError::Malformed {
                offset: block_offset + 4,
                problem: format!(
                    "block total length {total} (must be a multiple of 4, at least 12)"
                ),
            });
        }
        src.read(total - consumed, "block body", false)?;
        let body_len = total - consumed - 4;
        let trailer = e.u32(&src.buf[body_len..]) as usize;
        if trailer != total {
            return Err(CaptureError::Malformed {
                offset: block_offset + total as u64 - 4,
                problem: format!(
                    "block trailing length {trailer} differs from its leading length {total}"
                ),
            });
        }
        let body = &src.buf[..body_len];
        let short = |what: &str| CaptureError::Malformed {
            offset: block_offset,
            problem: format!("{what} block too short ({total} bytes)"),
        };
        match e.u32(&block_type_raw) {
            0x0a0d_0d0a => {
                let major = e.u16(body.get(..2).ok_or_else(|| short("section header"))?);
                if major != 1 {
                    return Err(CaptureError::Malformed {
                        offset: block_offset + 12,
                        problem: format!("pcapng major version {major}"),
                    });
                }
            }
            1 => {
                if body.len() < 8 {
                    return Err(short("interface description"));
                }
                let mut iface = Interface {
                    linktype: u32::from(e.u16(&body[0..2])),
                    resol: (false, 6),
                };
                let mut opts = &body[8..];
                while opts.len() >= 4 {
                    let code = e.u16(&opts[0..2]);
                    let len = usize::from(e.u16(&opts[2..4]));
                    let padded = (len + 3) & !3;
                    let Some(value) = opts.get(4..4 + len) else {
                        break;
                    };
                    if code == 0 {
                        break;
                    }
                    if code == 9 && len == 1 {
                        iface.resol = (value[0] & 0x80 != 0, value[0] & 0x7f);
                        if !iface.resol.0 && iface.resol.1 > 30 {
                            return Err(CaptureError::Malformed {
                                offset: block_offset,
                                problem: format!(
                                    "if_tsresol 10^-{} is finer than any clock",
                                    iface.resol.1
                                ),
                            });
                        }
                    }
                    opts = opts.get(4 + padded..).unwrap_or_default();
                }
                interfaces.push(iface);
            }
            6 => {
                if body.len() < 20 {
                    return Err(short("enhanced packet"));
                }
                let id = e.u32(&body[0..4]) as usize;
                let Some(iface) = interfaces.get(id) else {
                    return Err(CaptureError::Malformed {
                        offset: block_offset + 8,
                        problem: format!(
                            "packet for interface {id}, of which {} are described",
                            interfaces.len()
                        ),
                    });
                };
                let ts = (u64::from(e.u32(&body[4..8])) << 32) | u64::from(e.u32(&body[8..12]));
                let cap = e.u32(&body[12..16]) as usize;
                let Some(data) = body.get(20..20 + cap) else {
                    return Err(CaptureError::Malformed {
                        offset: block_offset + 20,
                        problem: format!("captured length {cap} runs past the block"),
                    });
                };
                agg.packet(iface.ts_us(ts), iface.linktype, data);
            }
            3 => {
                if body.len() < 4 {
                    return Err(short("simple packet"));
                }
                let Some(iface) = interfaces.first() else {
                    return Err(CaptureError::Malformed {
                        offset: block_offset,
                        problem: "simple packet block before any interface description".into(),
                    });
                };
                // A simple packet block has no timestamp: Pumpward will not
                // invent one, so its packets are counted and cannot become flows.
                let _ = iface;
                agg.counts.packets += 1;
                agg.counts.no_timestamp += 1;
            }
            _ => agg.counts.blocks_skipped += 1,
        }
    }
}

/// Where a packet's IP header starts, and the link's MACs where it has them.
struct Link<'a> {
    ip: &'a [u8],
    src_mac: Option<ObservedMac>,
    dst_mac: Option<ObservedMac>,
}

enum LinkOutcome<'a> {
    Ip(Link<'a>),
    NotIp,
    BadHeader,
    Unsupported,
}

fn mac(b: &[u8]) -> Option<ObservedMac> {
    <[u8; 6]>::try_from(b).ok().map(ObservedMac)
}

fn by_ethertype(
    ethertype: u16,
    ip: &[u8],
    src_mac: Option<ObservedMac>,
    dst_mac: Option<ObservedMac>,
) -> LinkOutcome<'_> {
    match ethertype {
        0x0800 | 0x86dd => LinkOutcome::Ip(Link {
            ip,
            src_mac,
            dst_mac,
        }),
        _ => LinkOutcome::NotIp,
    }
}

fn link(linktype: u32, p: &[u8]) -> LinkOutcome<'_> {
    match linktype {
        1 => {
            if p.len() < 14 {
                return LinkOutcome::BadHeader;
            }
            let (dst, src) = (mac(&p[0..6]), mac(&p[6..12]));
            let mut ethertype = u16::from_be_bytes([p[12], p[13]]);
            let mut at = 14;
            // 802.1Q and 802.1ad (QinQ) tags: the VLAN does not change the flow.
            while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
                let Some(t) = p.get(at + 2..at + 4) else {
                    return LinkOutcome::BadHeader;
                };
                ethertype = u16::from_be_bytes([t[0], t[1]]);
                at += 4;
            }
            by_ethertype(ethertype, &p[at..], src, dst)
        }
        101 | 12 | 14 | 228 | 229 => LinkOutcome::Ip(Link {
            ip: p,
            src_mac: None,
            dst_mac: None,
        }),
        113 => {
            if p.len() < 16 {
                return LinkOutcome::BadHeader;
            }
            let arphrd = u16::from_be_bytes([p[2], p[3]]);
            let alen = u16::from_be_bytes([p[4], p[5]]);
            // The cooked header carries the sender's link address only.
            let src = (arphrd == 1 && alen == 6).then(|| mac(&p[6..12])).flatten();
            by_ethertype(u16::from_be_bytes([p[14], p[15]]), &p[16..], src, None)
        }
        276 => {
            if p.len() < 20 {
                return LinkOutcome::BadHeader;
            }
            let arphrd = u16::from_be_bytes([p[8], p[9]]);
            let src = (arphrd == 1 && p[11] == 6)
                .then(|| mac(&p[12..18]))
                .flatten();
            by_ethertype(u16::from_be_bytes([p[0], p[1]]), &p[20..], src, None)
        }
        _ => LinkOutcome::Unsupported,
    }
}

/// The parts of an IP packet a flow is made of.
struct PacketSummary {
    transport: Transport,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    ip_bytes: u64,
    /// TCP SYN without ACK: who sends it opens the connection.
    pure_syn: bool,
}

enum IpOutcome {
    Packet(PacketSummary),
    LaterFragment,
    BadHeader,
}

fn ip(p: &[u8]) -> IpOutcome {
    let Some(first) = p.first() else {
        return IpOutcome::BadHeader;
    };
    let (src, dst, proto, payload, ip_bytes) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if p.len() < 20 || ihl < 20 {
                return IpOutcome::BadHeader;
            }
            let total = u16::from_be_bytes([p[2], p[3]]);
            let frag_offset = u16::from_be_bytes([p[6], p[7]]) & 0x1fff;
            if frag_offset != 0 {
                return IpOutcome::LaterFragment;
            }
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
            let Some(payload) = p.get(ihl..) else {
                return IpOutcome::BadHeader;
            };
            (
                IpAddr::V4(src),
                IpAddr::V4(dst),
                p[9],
                payload,
                u64::from(total),
            )
        }
        6 => {
            if p.len() < 40 {
                return IpOutcome::BadHeader;
            }
            let payload_len = u16::from_be_bytes([p[4], p[5]]);
            let mut next = p[6];
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap_or([0; 16]));
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap_or([0; 16]));
            let mut at = 40;
            // Extension headers before the transport header.
            loop {
                match next {
                    0 | 43 | 60 => {
                        let Some(h) = p.get(at..at + 2) else {
                            return IpOutcome::BadHeader;
                        };
                        next = h[0];
                        at += (usize::from(h[1]) + 1) * 8;
                    }
                    44 => {
                        let Some(h) = p.get(at..at + 8) else {
                            return IpOutcome::BadHeader;
                        };
                        if u16::from_be_bytes([h[2], h[3]]) >> 3 != 0 {
                            return IpOutcome::LaterFragment;
                        }
                        next = h[0];
                        at += 8;
                    }
                    _ => break,
                }
            }
            let Some(payload) = p.get(at..) else {
                return IpOutcome::BadHeader;
            };
            (
                IpAddr::V6(src),
                IpAddr::V6(dst),
                next,
                payload,
                40 + u64::from(payload_len),
            )
        }
        _ => return IpOutcome::BadHeader,
    };
    let transport = match (Transport::from_iana(proto), src) {
        (Transport::Icmpv6, IpAddr::V4(_)) => Transport::Other(58),
        (t, _) => t,
    };
    let (src_port, dst_port, pure_syn) = match transport {
        Transport::Tcp => {
            let Some(h) = payload.get(..14) else {
                return IpOutcome::BadHeader;
            };
            let flags = h[13];
            (
                u16::from_be_bytes([h[0], h[1]]),
                u16::from_be_bytes([h[2], h[3]]),
                flags & 0x12 == 0x02,
            )
        }
        Transport::Udp => {
            let Some(h) = payload.get(..4) else {
                return IpOutcome::BadHeader;
            };
            (
                u16::from_be_bytes([h[0], h[1]]),
                u16::from_be_bytes([h[2], h[3]]),
                false,
            )
        }
        Transport::Icmp | Transport::Icmpv6 => {
            let Some(h) = payload.get(..2) else {
                return IpOutcome::BadHeader;
            };
            (u16::from(h[0]), u16::from(h[1]), false)
        }
        Transport::Other(_) => (0, 0, false),
    };
    IpOutcome::Packet(PacketSummary {
        transport,
        src,
        dst,
        src_port,
        dst_port,
        ip_bytes,
        pure_syn,
    })
}

type Endpoint = (IpAddr, u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    transport: Transport,
    low: Endpoint,
    high: Endpoint,
}

/// One direction of a tracked flow.
#[derive(Debug, Clone, Copy, Default)]
struct Side {
    bytes: u64,
    packets: u64,
    mac: Option<ObservedMac>,
    sent_pure_syn: bool,
}

#[derive(Debug, Clone)]
struct Tracked {
    /// The sender of the first packet, and its ports as seen then.
    first: Endpoint,
    other: Endpoint,
    first_us: i64,
    last_us: i64,
    first_side: Side,
    other_side: Side,
}

/// Builds flows from packets, in capture order. See the module docs for
/// how originators and timeouts are decided.
#[derive(Debug)]
pub struct Aggregator {
    config: AggregatorConfig,
    active: HashMap<FlowKey, Tracked>,
    done: Vec<Flow>,
    counts: CaptureCounts,
}

/// How often (in packets) idle flows are moved out of the active table, so
/// that a long capture does not keep every flow it ever saw in the map.
const SWEEP_EVERY: u64 = 1 << 16;

impl Aggregator {
    pub fn new(config: AggregatorConfig) -> Self {
        Aggregator {
            config,
            active: HashMap::new(),
            done: Vec::new(),
            counts: CaptureCounts::default(),
        }
    }

    fn idle_us(&self, t: Transport) -> i64 {
        match t {
            Transport::Tcp => self.config.tcp_idle_us,
            Transport::Udp => self.config.udp_idle_us,
            _ => self.config.other_idle_us,
        }
    }

    /// One captured packet (link-layer bytes as captured).
    pub fn packet(&mut self, ts_us: i64, linktype: u32, data: &[u8]) {
        self.counts.packets += 1;
        if self.counts.packets % SWEEP_EVERY == 0 {
            self.sweep(ts_us);
        }
        let link = match link(linktype, data) {
            LinkOutcome::Ip(l) => l,
            LinkOutcome::NotIp => return self.counts.not_ip += 1,
            LinkOutcome::BadHeader => return self.counts.bad_headers += 1,
            LinkOutcome::Unsupported => return self.counts.unsupported_link_type += 1,
        };
        let p = match ip(link.ip) {
            IpOutcome::Packet(p) => p,
            IpOutcome::LaterFragment => return self.counts.later_fragments += 1,
            IpOutcome::BadHeader => return self.counts.bad_headers += 1,
        };
        self.counts.in_flows += 1;
        let (a, b) = match p.transport {
            // ICMP: keyed by the addresses alone (see the module docs).
            Transport::Icmp | Transport::Icmpv6 => ((p.src, 0), (p.dst, 0)),
            _ => ((p.src, p.src_port), (p.dst, p.dst_port)),
        };
        let key = FlowKey {
            transport: p.transport,
            low: a.min(b),
            high: a.max(b),
        };
        let idle = self.idle_us(p.transport);
        if let Some(t) = self.active.get(&key) {
            if ts_us.saturating_sub(t.last_us) > idle {
                if let Some(old) = self.active.remove(&key) {
                    self.done.push(to_flow(key.transport, old));
                }
            }
        }
        let t = self.active.entry(key).or_insert_with(|| Tracked {
            first: (p.src, p.src_port),
            other: (p.dst, p.dst_port),
            first_us: ts_us,
            last_us: ts_us,
            first_side: Side::default(),
            other_side: Side::default(),
        });
        t.last_us = t.last_us.max(ts_us);
        let from_first = match p.transport {
            Transport::Icmp | Transport::Icmpv6 => p.src == t.first.0,
            _ => (p.src, p.src_port) == t.first,
        };
        let (sender, receiver) = if from_first {
            (&mut t.first_side, &mut t.other_side)
        } else {
            (&mut t.other_side, &mut t.first_side)
        };
        sender.bytes += p.ip_bytes;
        sender.packets += 1;
        sender.sent_pure_syn |= p.pure_syn;
        if sender.mac.is_none() {
            sender.mac = link.src_mac;
        }
        if receiver.mac.is_none() {
            receiver.mac = link.dst_mac;
        }
    }

    fn sweep(&mut self, now_us: i64) {
        let config = self.config;
        let idle = |t: Transport| match t {
            Transport::Tcp => config.tcp_idle_us,
            Transport::Udp => config.udp_idle_us,
            _ => config.other_idle_us,
        };
        let expired: Vec<FlowKey> = self
            .active
            .iter()
            .filter(|(k, t)| now_us.saturating_sub(t.last_us) > idle(k.transport))
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(t) = self.active.remove(&k) {
                self.done.push(to_flow(k.transport, t));
            }
        }
    }

    /// All flows (finished and still open), ordered by start time, and the counts.
    pub fn finish(mut self) -> (Vec<Flow>, CaptureCounts) {
        let open: Vec<(FlowKey, Tracked)> = self.active.drain().collect();
        for (k, t) in open {
            self.done.push(to_flow(k.transport, t));
        }
        self.done.sort_by(|a, b| {
            (
                a.start_us,
                a.orig_addr,
                a.orig_port,
                a.resp_addr,
                a.resp_port,
            )
                .cmp(&(
                    b.start_us,
                    b.orig_addr,
                    b.orig_port,
                    b.resp_addr,
                    b.resp_port,
                ))
        });
        (self.done, self.counts)
    }
}

fn to_flow(transport: Transport, t: Tracked) -> Flow {
    // The side that sent the first pure SYN opened the connection, even if
    // the capture began with the other side's packet.
    let swap = t.other_side.sent_pure_syn && !t.first_side.sent_pure_syn;
    let (o, o_side, r, r_side) = if swap {
        (t.other, t.other_side, t.first, t.first_side)
    } else {
        (t.first, t.first_side, t.other, t.other_side)
    };
    Flow {
        start_us: t.first_us,
        duration_us: u64::try_from(t.last_us - t.first_us).ok(),
        transport,
        orig_addr: o.0,
        orig_port: o.1,
        resp_addr: r.0,
        resp_port: r.1,
        orig_mac: o_side.mac,
        resp_mac: r_side.mac,
        orig_bytes: o_side.bytes,
        resp_bytes: r_side.bytes,
        orig_packets: o_side.packets,
        resp_packets: r_side.packets,
        source: FlowSource::Pcap,
        sensor_uid: None,
        conn_state: None,
    }
}

#[cfg(test)]
mod tests;
