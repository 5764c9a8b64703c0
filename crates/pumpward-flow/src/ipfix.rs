//! IPFIX (RFC 7011) and NetFlow v9 (RFC 3954) messages, as switches,
//! routers and firewalls export them over UDP.
//!
//! [`Collector::handle_datagram`] is the whole collector minus the socket:
//! it takes one datagram and the exporter's address and returns the flows in
//! it. It keeps the template cache, keyed by exporter, observation domain
//! (v9: source id) and template id, because data sets only make sense
//! against the template their exporter sent earlier.
//!
//! Each datagram is all or nothing: a malformed message changes no template
//! and yields no flow, and the error names the byte offset. Data for a
//! template not (yet) known is counted and skipped (UDP may deliver it before
//! its template). Records that are not flows (options data, records with no
//! addresses or no start time) are counted and skipped. Enterprise-specific
//! elements are passed over by their length. The template cache is bounded,
//! so a flood of garbage from spoofed exporters cannot grow it without end.
//!
//! The source is the originator. IPFIX and v9 records are one-directional
//! (the responder's counters stay zero) unless the exporter sends RFC 5103
//! biflow records, whose reverse counters and MAC (enterprise 29305) fill
//! the responder's side.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{Flow, FlowSource, ObservedMac, Transport};

/// Templates kept for all exporters together; further templates are refused
/// (and counted) until old ones are withdrawn.
pub const MAX_TEMPLATES: usize = 16_384;

/// The two export protocols read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportProtocol {
    Ipfix,
    NetflowV9,
}

/// Information elements Pumpward maps onto a [`Flow`] (IANA numbers; NetFlow
/// v9 uses the same numbers for these).
pub mod ie {
    pub const OCTET_DELTA_COUNT: u16 = 1;
    pub const PACKET_DELTA_COUNT: u16 = 2;
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    pub const FLOW_END_SYS_UP_TIME: u16 = 21;
    pub const FLOW_START_SYS_UP_TIME: u16 = 22;
    pub const POST_OCTET_DELTA_COUNT: u16 = 23;
    pub const POST_PACKET_DELTA_COUNT: u16 = 24;
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    pub const ICMP_TYPE_CODE_IPV4: u16 = 32;
    pub const SOURCE_MAC_ADDRESS: u16 = 56;
    pub const POST_DESTINATION_MAC_ADDRESS: u16 = 57;
    pub const DESTINATION_MAC_ADDRESS: u16 = 80;
    pub const POST_SOURCE_MAC_ADDRESS: u16 = 81;
    pub const OCTET_TOTAL_COUNT: u16 = 85;
    pub const PACKET_TOTAL_COUNT: u16 = 86;
    pub const ICMP_TYPE_CODE_IPV6: u16 = 139;
    pub const FLOW_START_SECONDS: u16 = 150;
    pub const FLOW_END_SECONDS: u16 = 151;
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    pub const FLOW_END_MILLISECONDS: u16 = 153;
    pub const FLOW_START_MICROSECONDS: u16 = 154;
    pub const FLOW_END_MICROSECONDS: u16 = 155;
    pub const SYSTEM_INIT_TIME_MILLISECONDS: u16 = 160;
}

/// The IPFIX length that announces a variable-length field.
pub const VARIABLE_LENGTH: u16 = 0xffff;

/// One field of a template. `enterprise` is 0 for IANA elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub element: u16,
    pub enterprise: u32,
    pub length: u16,
}

impl FieldSpec {
    pub fn iana(element: u16, length: u16) -> FieldSpec {
        FieldSpec {
            element,
            enterprise: 0,
            length,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    fields: Vec<FieldSpec>,
    /// Options templates describe the exporter, not flows.
    options: bool,
    /// Shortest possible record (variable-length fields count one byte):
    /// fewer bytes left in a data set are padding.
    min_len: usize,
    /// Leading fields that are NetFlow v9 scope fields, numbered in their own
    /// space (1 = system, 2 = interface...), so never mapped as flow elements.
    v9_scope_fields: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TemplateKey {
    protocol: ExportProtocol,
    exporter: SocketAddr,
    domain: u32,
    template_id: u16,
}

/// Why a datagram was refused. Offsets count from the start of the datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("offset {offset}: truncated: {what} needs {needed} bytes, {available} left")]
    Truncated {
        offset: usize,
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("version {0} is neither IPFIX (10) nor NetFlow v9 (9)")]
    UnsupportedVersion(u16),
    #[error("IPFIX header says {declared} bytes, the datagram has {actual}")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("offset {offset}: set {set_id} declares length {length}, below the 4-byte set header")]
    SetTooShort {
        offset: usize,
        set_id: u16,
        length: usize,
    },
    #[error(
        "offset {offset}: template id {template_id} is reserved (data templates start at 256)"
    )]
    ReservedTemplateId { offset: usize, template_id: u16 },
    #[error("offset {offset}: template {template_id}: {problem}")]
    MalformedTemplate {
        offset: usize,
        template_id: u16,
        problem: String,
    },
    #[error("offset {offset}: data record for template {template_id}: {problem}")]
    MalformedRecord {
        offset: usize,
        template_id: u16,
        problem: String,
    },
}

/// What one datagram gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatagramOutcome {
    pub protocol: Option<ExportProtocol>,
    pub flows: Vec<Flow>,
    pub templates_learned: u32,
    pub templates_withdrawn: u32,
    /// Data sets skipped because their template is not known (yet).
    pub unknown_template_sets: u32,
    /// Data records decoded that are not flows (options data, no addresses,
    /// no start time).
    pub records_not_flows: u32,
    /// Templates refused because the cache is full.
    pub templates_refused: u32,
    /// Set if the datagram was refused; then nothing else in the outcome took effect.
    pub error: Option<DecodeError>,
}

/// Running totals over every datagram the collector handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectorCounts {
    pub datagrams: u64,
    pub malformed_datagrams: u64,
    pub flows: u64,
    pub templates_learned: u64,
    pub templates_withdrawn: u64,
    pub unknown_template_sets: u64,
    pub records_not_flows: u64,
    pub templates_refused: u64,
}

/// The IPFIX / NetFlow v9 collector's state; see the module docs.
#[derive(Debug, Default)]
pub struct Collector {
    templates: HashMap<TemplateKey, Template>,
    /// IPFIX `systemInitTimeMilliseconds` per exporter and domain, from
    /// options data, so that `flowStartSysUpTime` can be made absolute.
    init_time_ms: HashMap<(SocketAddr, u32), i64>,
    counts: CollectorCounts,
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counts(&self) -> &CollectorCounts {
        &self.counts
    }

    pub fn template_count(&self) -> usize {
        self.templates.len()
    }

    /// Decodes one datagram from `exporter`. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, exporter: SocketAddr, datagram: &[u8]) -> DatagramOutcome {
        self.counts.datagrams += 1;
        let mut staged = Staged::default();
        let result = self.decode(exporter, datagram, &mut staged);
        let mut outcome = DatagramOutcome {
            protocol: staged.protocol,
            ..DatagramOutcome::default()
        };
        match result {
            Err(e) => {
                self.counts.malformed_datagrams += 1;
                outcome.error = Some(e);
            }
            Ok(()) => {
                for change in staged.templates {
                    match change {
                        (key, TemplateChange::Define(t)) => {
                            if self.templates.len() >= MAX_TEMPLATES
                                && !self.templates.contains_key(&key)
                            {
                                outcome.templates_refused += 1;
                                continue;
                            }
                            self.templates.insert(key, t);
                            outcome.templates_learned += 1;
                        }
                        (key, TemplateChange::Withdraw) => {
                            if self.templates.remove(&key).is_some() {
                                outcome.templates_withdrawn += 1;
                            }
                        }
                        (key, TemplateChange::WithdrawAll { options }) => {
                            let before = self.templates.len();
                            self.templates.retain(|k, t| {
                                !(k.protocol == key.protocol
                                    && k.exporter == key.exporter
                                    && k.domain == key.domain
                                    && t.options == options)
                            });
                            outcome.templates_withdrawn += (before - self.templates.len()) as u32;
                        }
                    }
                }
                if let Some((k, v)) = staged.init_time {
                    if self.init_time_ms.len() < MAX_TEMPLATES || self.init_time_ms.contains_key(&k)
                    {
                        self.init_time_ms.insert(k, v);
                    }
                }
                outcome.flows = staged.flows;
                outcome.unknown_template_sets = staged.unknown_template_sets;
                outcome.records_not_flows = staged.records_not_flows;
            }
        }
        let c = &mut self.counts;
        c.flows += outcome.flows.len() as u64;
        c.templates_learned += u64::from(outcome.templates_learned);
        c.templates_withdrawn += u64::from(outcome.templates_withdrawn);
        c.unknown_template_sets += u64::from(outcome.unknown_template_sets);
        c.records_not_flows += u64::from(outcome.records_not_flows);
        c.templates_refused += u64::from(outcome.templates_refused);
        outcome
    }

    fn decode(
        &self,
        exporter: SocketAddr,
        d: &[u8],
        staged: &mut Staged,
    ) -> Result<(), DecodeError> {
        let mut r = Reader::new(d, 0);
        let version = r.u16("message header")?;
        let (protocol, header) = match version {
            10 => {
                let declared = usize::from(r.u16("IPFIX header")?);
                if declared != d.len() {
                    return Err(DecodeError::LengthMismatch {
                        declared,
                        actual: d.len(),
                    });
                }
                let export_s = r.u32("IPFIX header")?;
                let _sequence = r.u32("IPFIX header")?;
                let domain = r.u32("IPFIX header")?;
                (
                    ExportProtocol::Ipfix,
                    MessageHeader {
                        export_s,
                        sys_uptime_ms: None,
                        domain,
                    },
                )
            }
            9 => {
                let _count = r.u16("NetFlow v9 header")?;
                let sys_uptime_ms = r.u32("NetFlow v9 header")?;
                let export_s = r.u32("NetFlow v9 header")?;
                let _sequence = r.u32("NetFlow v9 header")?;
                let domain = r.u32("NetFlow v9 header")?;
                (
                    ExportProtocol::NetflowV9,
                    MessageHeader {
                        export_s,
                        sys_uptime_ms: Some(sys_uptime_ms),
                        domain,
                    },
                )
            }
            other => return Err(DecodeError::UnsupportedVersion(other)),
        };
        staged.protocol = Some(protocol);
        let (template_set, options_set) = match protocol {
            ExportProtocol::Ipfix => (2, 3),
            ExportProtocol::NetflowV9 => (0, 1),
        };
        while r.remaining() > 0 {
            let set_offset = r.offset();
            // v9 exporters may pad the datagram's end.
            if protocol == ExportProtocol::NetflowV9 && r.remaining() < 4 {
                break;
            }
            let set_id = r.u16("set header")?;
            let length = usize::from(r.u16("set header")?);
            if length < 4 {
                return Err(DecodeError::SetTooShort {
                    offset: set_offset,
                    set_id,
                    length,
                });
            }
            let body = r.take(length - 4, "set body")?;
            let mut body = Reader::new(body, set_offset + 4);
            let key = |template_id| TemplateKey {
                protocol,
                exporter,
                domain: header.domain,
                template_id,
            };
            if set_id == template_set || set_id == options_set {
                let options = set_id == options_set;
                while body.remaining() >= 4 {
                    let at = body.offset();
                    match parse_template(&mut body, protocol, options)? {
                        TemplateRecord::Define(id, t) => {
                            staged.templates.push((key(id), TemplateChange::Define(t)));
                        }
                        TemplateRecord::Withdraw(id) if id == set_id => {
                            staged
                                .templates
                                .push((key(id), TemplateChange::WithdrawAll { options }));
                        }
                        TemplateRecord::Withdraw(id) if id < 256 => {
                            return Err(DecodeError::ReservedTemplateId {
                                offset: at,
                                template_id: id,
                            });
                        }
                        TemplateRecord::Withdraw(id) => {
                            staged.templates.push((key(id), TemplateChange::Withdraw))
                        }
                    }
                }
            } else if set_id >= 256 {
                // A template defined earlier in this same datagram counts.
                let earlier = staged
                    .templates
                    .iter()
                    .rev()
                    .find_map(|(k, change)| match change {
                        TemplateChange::Define(t) if k.template_id == set_id => {
                            Some(Some(std::borrow::Cow::Owned(t.clone())))
                        }
                        TemplateChange::Withdraw if k.template_id == set_id => Some(None),
                        TemplateChange::WithdrawAll { options } if !options => Some(None),
                        _ => None,
                    });
                let template = match earlier {
                    Some(t) => t,
                    None => self
                        .templates
                        .get(&key(set_id))
                        .map(std::borrow::Cow::Borrowed),
                };
                match template {
                    None => staged.unknown_template_sets += 1,
                    Some(t) => decode_data_set(
                        &mut body, set_id, &t, protocol, &header, exporter, self, staged,
                    )?,
                }
            }
            // Set ids 4..=255 (IPFIX) and 2..=255 (v9) are reserved: passed over by length.
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct MessageHeader {
    export_s: u32,
    sys_uptime_ms: Option<u32>,
    domain: u32,
}

/// Changes one datagram would make, applied only if all of it decodes.
#[derive(Default)]
struct Staged {
    protocol: Option<ExportProtocol>,
    /// Definitions and withdrawals, in message order.
    templates: Vec<(TemplateKey, TemplateChange)>,
    init_time: Option<((SocketAddr, u32), i64)>,
    flows: Vec<Flow>,
    unknown_template_sets: u32,
    records_not_flows: u32,
}

enum TemplateChange {
    Define(Template),
    Withdraw,
    /// Template id equal to the set id: every (options) template of the
    /// exporter and domain.
    WithdrawAll {
        options: bool,
    },
}

enum TemplateRecord {
    Define(u16, Template),
    Withdraw(u16),
}

fn parse_template(
    r: &mut Reader<'_>,
    protocol: ExportProtocol,
    options: bool,
) -> Result<TemplateRecord, DecodeError> {
    let offset = r.offset();
    let template_id = r.u16("template header")?;
    let malformed = |problem: String| DecodeError::MalformedTemplate {
        offset,
        template_id,
        problem,
    };
    let (field_count, scope_count) = match (protocol, options) {
        (ExportProtocol::Ipfix, false) => {
            let n = r.u16("template header")?;
            if n == 0 {
                return Ok(TemplateRecord::Withdraw(template_id));
            }
            (usize::from(n), 0)
        }
        (ExportProtocol::Ipfix, true) => {
            let n = r.u16("options template header")?;
            if n == 0 {
                return Ok(TemplateRecord::Withdraw(template_id));
            }
            let scope = r.u16("options template header")?;
            if scope == 0 || scope > n {
                return Err(malformed(format!(
                    "scope field count {scope} must be 1 to the field count {n}"
                )));
            }
            (usize::from(n), usize::from(scope))
        }
        (ExportProtocol::NetflowV9, false) => (usize::from(r.u16("template header")?), 0),
        (ExportProtocol::NetflowV9, true) => {
            let scope_len = r.u16("options template header")?;
            let option_len = r.u16("options template header")?;
            if scope_len % 4 != 0 || option_len % 4 != 0 {
                return Err(malformed(format!(
                    "scope length {scope_len} and option length {option_len} must be multiples of 4"
                )));
            }
            let scope = usize::from(scope_len / 4);
            (scope + usize::from(option_len / 4), scope)
        }
    };
    if template_id < 256 {
        return Err(DecodeError::ReservedTemplateId {
            offset,
            template_id,
        });
    }
    if field_count == 0 {
        return Err(malformed("no fields".into()));
    }
    let mut fields = Vec::with_capacity(field_count.min(r.remaining() / 4));
    let mut min_len = 0usize;
    for i in 0..field_count {
        let field_offset = r.offset();
        let raw = r.u16("field specifier")?;
        let length = r.u16("field specifier")?;
        let (element, enterprise) = if protocol == ExportProtocol::Ipfix && raw & 0x8000 != 0 {
            (raw & 0x7fff, r.u32("enterprise number")?)
        } else {
            (raw, 0)
        };
        let field = FieldSpec {
            element,
            enterprise,
            length,
        };
        if length == VARIABLE_LENGTH && protocol == ExportProtocol::NetflowV9 {
            return Err(malformed(format!(
                "field {element} at offset {field_offset}: NetFlow v9 has no variable-length fields"
            )));
        }
        // v9 scope fields use their own numbering: nothing to check.
        let is_scope_v9 = protocol == ExportProtocol::NetflowV9 && i < scope_count;
        if (enterprise == 0 || (enterprise == REVERSE_PEN && is_reverse_mapped(element)))
            && !is_scope_v9
        {
            if let Some(problem) = check_length(element, length) {
                return Err(malformed(format!(
                    "field {element} at offset {field_offset}: {problem}"
                )));
            }
        }
        min_len += if length == VARIABLE_LENGTH {
            1
        } else {
            usize::from(length)
        };
        fields.push(field);
    }
    if min_len == 0 {
        return Err(malformed("every field has length 0".into()));
    }
    Ok(TemplateRecord::Define(
        template_id,
        Template {
            fields,
            options,
            min_len,
            v9_scope_fields: if protocol == ExportProtocol::NetflowV9 {
                scope_count
            } else {
                0
            },
        },
    ))
}

/// The lengths Pumpward can decode for the elements it maps; others are
/// passed over whatever their length.
fn check_length(element: u16, length: u16) -> Option<String> {
    use ie::*;
    let ok: &[u16] = match element {
        OCTET_DELTA_COUNT
        | PACKET_DELTA_COUNT
        | POST_OCTET_DELTA_COUNT
        | POST_PACKET_DELTA_COUNT
        | OCTET_TOTAL_COUNT
        | PACKET_TOTAL_COUNT => &[1, 2, 3, 4, 5, 6, 7, 8],
        PROTOCOL_IDENTIFIER => &[1],
        SOURCE_TRANSPORT_PORT
        | DESTINATION_TRANSPORT_PORT
        | ICMP_TYPE_CODE_IPV4
        | ICMP_TYPE_CODE_IPV6 => &[1, 2],
        SOURCE_IPV4_ADDRESS | DESTINATION_IPV4_ADDRESS => &[4],
        SOURCE_IPV6_ADDRESS | DESTINATION_IPV6_ADDRESS => &[16],
        SOURCE_MAC_ADDRESS
        | DESTINATION_MAC_ADDRESS
        | POST_SOURCE_MAC_ADDRESS
        | POST_DESTINATION_MAC_ADDRESS => &[6],
        FLOW_START_SYS_UP_TIME | FLOW_END_SYS_UP_TIME | FLOW_START_SECONDS | FLOW_END_SECONDS => {
            &[4]
        }
        FLOW_START_MILLISECONDS | FLOW_END_MILLISECONDS | SYSTEM_INIT_TIME_MILLISECONDS => {
            &[4, 5, 6, 7, 8]
        }
        FLOW_START_MICROSECONDS | FLOW_END_MICROSECONDS => &[8],
        _ => return None,
    };
    (!ok.contains(&length)).then(|| format!("length {length}, expected one of {ok:?}"))
}

/// The mapped elements of one data record.
#[derive(Default)]
struct RecordFields {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    proto: Option<u8>,
    octets: Option<u64>,
    packets: Option<u64>,
    post_octets: Option<u64>,
    post_packets: Option<u64>,
    icmp_type_code: Option<u16>,
    src_mac: Option<ObservedMac>,
    dst_mac: Option<ObservedMac>,
    post_src_mac: Option<ObservedMac>,
    post_dst_mac: Option<ObservedMac>,
    /// RFC 5103 biflow: the responder's counters and link address.
    reverse_octets: Option<u64>,
    reverse_packets: Option<u64>,
    reverse_src_mac: Option<ObservedMac>,
    /// Start and end, microseconds since the epoch where absolute.
    start_us: Option<i64>,
    end_us: Option<i64>,
    start_uptime_ms: Option<u32>,
    end_uptime_ms: Option<u32>,
    init_time_ms: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
fn decode_data_set(
    r: &mut Reader<'_>,
    template_id: u16,
    t: &Template,
    protocol: ExportProtocol,
    header: &MessageHeader,
    exporter: SocketAddr,
    collector: &Collector,
    staged: &mut Staged,
) -> Result<(), DecodeError> {
    while r.remaining() >= t.min_len {
        let offset = r.offset();
        let malformed = |problem: String| DecodeError::MalformedRecord {
            offset,
            template_id,
            problem,
        };
        let mut rec = RecordFields::default();
        for (i, f) in t.fields.iter().enumerate() {
            let len = if f.length == VARIABLE_LENGTH {
                let first = r
                    .u8("variable-length field")
                    .map_err(|e| malformed(e.to_string()))?;
                if first < 255 {
                    usize::from(first)
                } else {
                    usize::from(
                        r.u16("variable-length field")
                            .map_err(|e| malformed(e.to_string()))?,
                    )
                }
            } else {
                usize::from(f.length)
            };
            let v = r.take(len, "field").map_err(|e| malformed(e.to_string()))?;
            match f.enterprise {
                _ if i < t.v9_scope_fields => {}
                0 => set_field(&mut rec, f.element, v),
                REVERSE_PEN => set_reverse_field(&mut rec, f.element, v),
                _ => {}
            }
        }
        if let Some(init) = rec.init_time_ms {
            staged.init_time = Some(((exporter, header.domain), init));
        }
        match to_flow(&rec, protocol, header, exporter, collector, staged) {
            Some(flow) if !t.options => staged.flows.push(flow),
            _ => staged.records_not_flows += 1,
        }
    }
    Ok(())
}

fn be(v: &[u8]) -> u64 {
    v.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))
}

fn set_field(rec: &mut RecordFields, element: u16, v: &[u8]) {
    use ie::*;
    let mac = |v: &[u8]| <[u8; 6]>::try_from(v).ok().map(ObservedMac);
    match element {
        SOURCE_IPV4_ADDRESS => {
            rec.src = <[u8; 4]>::try_from(v)
                .ok()
                .map(|a| Ipv4Addr::from(a).into())
        }
        DESTINATION_IPV4_ADDRESS => {
            rec.dst = <[u8; 4]>::try_from(v)
                .ok()
                .map(|a| Ipv4Addr::from(a).into())
        }
        SOURCE_IPV6_ADDRESS => {
            rec.src = <[u8; 16]>::try_from(v)
                .ok()
                .map(|a| Ipv6Addr::from(a).into())
        }
        DESTINATION_IPV6_ADDRESS => {
            rec.dst = <[u8; 16]>::try_from(v)
                .ok()
                .map(|a| Ipv6Addr::from(a).into())
        }
        SOURCE_TRANSPORT_PORT => rec.src_port = Some(be(v) as u16),
        DESTINATION_TRANSPORT_PORT => rec.dst_port = Some(be(v) as u16),
        PROTOCOL_IDENTIFIER => rec.proto = Some(be(v) as u8),
        OCTET_DELTA_COUNT | OCTET_TOTAL_COUNT => rec.octets = Some(be(v)),
        PACKET_DELTA_COUNT | PACKET_TOTAL_COUNT => rec.packets = Some(be(v)),
        POST_OCTET_DELTA_COUNT => rec.post_octets = Some(be(v)),
        POST_PACKET_DELTA_COUNT => rec.post_packets = Some(be(v)),
        ICMP_TYPE_CODE_IPV4 | ICMP_TYPE_CODE_IPV6 => rec.icmp_type_code = Some(be(v) as u16),
        SOURCE_MAC_ADDRESS => rec.src_mac = mac(v),
        DESTINATION_MAC_ADDRESS => rec.dst_mac = mac(v),
        POST_SOURCE_MAC_ADDRESS => rec.post_src_mac = mac(v),
        POST_DESTINATION_MAC_ADDRESS => rec.post_dst_mac = mac(v),
        FLOW_START_SECONDS => rec.start_us = Some(be(v) as i64 * 1_000_000),
        FLOW_END_SECONDS => rec.end_us = Some(be(v) as i64 * 1_000_000),
        FLOW_START_MILLISECONDS => rec.start_us = ms_to_us(be(v)),
        FLOW_END_MILLISECONDS => rec.end_us = ms_to_us(be(v)),
        FLOW_START_MICROSECONDS => rec.start_us = ntp_to_us(be(v)),
        FLOW_END_MICROSECONDS => rec.end_us = ntp_to_us(be(v)),
        FLOW_START_SYS_UP_TIME => rec.start_uptime_ms = Some(be(v) as u32),
        FLOW_END_SYS_UP_TIME => rec.end_uptime_ms = Some(be(v) as u32),
        SYSTEM_INIT_TIME_MILLISECONDS => rec.init_time_ms = i64::try_from(be(v)).ok(),
        _ => {}
    }
}

/// RFC 5103 bidirectional flows: the reverse of IANA element N is element
/// N under this private enterprise number.
pub const REVERSE_PEN: u32 = 29305;

fn is_reverse_mapped(element: u16) -> bool {
    use ie::*;
    matches!(
        element,
        OCTET_DELTA_COUNT
            | PACKET_DELTA_COUNT
            | OCTET_TOTAL_COUNT
            | PACKET_TOTAL_COUNT
            | SOURCE_MAC_ADDRESS
    )
}

fn set_reverse_field(rec: &mut RecordFields, element: u16, v: &[u8]) {
    use ie::*;
    match element {
        OCTET_DELTA_COUNT | OCTET_TOTAL_COUNT => rec.reverse_octets = Some(be(v)),
        PACKET_DELTA_COUNT | PACKET_TOTAL_COUNT => rec.reverse_packets = Some(be(v)),
        SOURCE_MAC_ADDRESS => rec.reverse_src_mac = <[u8; 6]>::try_from(v).ok().map(ObservedMac),
        _ => {}
    }
}

fn ms_to_us(ms: u64) -> Option<i64> {
    i64::try_from(ms).ok()?.checked_mul(1000)
}

/// NTP 64-bit timestamp (seconds since 1900, 2^-32 fractions) to Unix microseconds.
fn ntp_to_us(v: u64) -> Option<i64> {
    const NTP_TO_UNIX_S: i64 = 2_208_988_800;
    let secs = (v >> 32) as i64 - NTP_TO_UNIX_S;
    let frac_us = ((v & 0xffff_ffff) * 1_000_000) >> 32;
    secs.checked_mul(1_000_000)?.checked_add(frac_us as i64)
}

fn to_flow(
    rec: &RecordFields,
    protocol: ExportProtocol,
    header: &MessageHeader,
    exporter: SocketAddr,
    collector: &Collector,
    staged: &Staged,
) -> Option<Flow> {
    let (orig_addr, resp_addr) = match (rec.src?, rec.dst?) {
        (a @ IpAddr::V4(_), b @ IpAddr::V4(_)) | (a @ IpAddr::V6(_), b @ IpAddr::V6(_)) => (a, b),
        _ => return None,
    };
    let transport = Transport::from_iana(rec.proto?);
    // sysUpTime-relative times: v9 against the header's uptime and export
    // time, IPFIX against the exporter's systemInitTimeMilliseconds.
    let uptime_base_ms = match protocol {
        ExportProtocol::NetflowV9 => header
            .sys_uptime_ms
            .map(|up| i64::from(header.export_s) * 1000 - i64::from(up)),
        ExportProtocol::Ipfix => rec.init_time_ms.or_else(|| {
            staged
                .init_time
                .filter(|(k, _)| *k == (exporter, header.domain))
                .map(|(_, v)| v)
                .or_else(|| {
                    collector
                        .init_time_ms
                        .get(&(exporter, header.domain))
                        .copied()
                })
        }),
    };
    let from_uptime = |ms: Option<u32>| {
        uptime_base_ms?
            .checked_add(i64::from(ms?))?
            .checked_mul(1000)
    };
    let start_us = rec.start_us.or_else(|| from_uptime(rec.start_uptime_ms))?;
    let end_us = rec.end_us.or_else(|| from_uptime(rec.end_uptime_ms));
    let duration_us = end_us.and_then(|e| u64::try_from(e.checked_sub(start_us)?).ok());
    let (orig_port, resp_port) = match transport {
        // Zeek's convention: ICMP type in the originator port, code in the
        // responder port. Exporters without icmpTypeCode put type*256+code in the
        // destination port.
        Transport::Icmp | Transport::Icmpv6 => {
            let tc = rec.icmp_type_code.or(rec.dst_port).unwrap_or(0);
            (tc >> 8, tc & 0xff)
        }
        _ => (rec.src_port.unwrap_or(0), rec.dst_port.unwrap_or(0)),
    };
    Some(Flow {
        start_us,
        duration_us,
        transport,
        orig_addr,
        orig_port,
        resp_addr,
        resp_port,
        orig_mac: rec.src_mac.or(rec.post_src_mac),
        resp_mac: rec.dst_mac.or(rec.post_dst_mac).or(rec.reverse_src_mac),
        orig_bytes: rec.octets.or(rec.post_octets).unwrap_or(0),
        resp_bytes: rec.reverse_octets.unwrap_or(0),
        orig_packets: rec.packets.or(rec.post_packets).unwrap_or(0),
        resp_packets: rec.reverse_packets.unwrap_or(0),
        source: match protocol {
            ExportProtocol::Ipfix => FlowSource::Ipfix,
            ExportProtocol::NetflowV9 => FlowSource::NetflowV9,
        },
        sensor_uid: None,
        conn_state: None,
    })
}

/// Bounds-checked big-endian reading that knows its offset in the datagram.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let available = self.remaining();
        if n > available {
            return Err(DecodeError::Truncated {
                offset: self.offset(),
                what,
                needed: n,
                available,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Builds IPFIX and NetFlow v9 messages: for tests, benches, fuzz seeds and
/// the fleet simulator. Not a full exporter (no sequence bookkeeping, no MTU
/// splitting).
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    protocol: ExportProtocol,
    export_s: u32,
    sys_uptime_ms: u32,
    domain: u32,
    sets: Vec<u8>,
}

impl MessageBuilder {
    pub fn ipfix(domain: u32, export_s: u32) -> Self {
        MessageBuilder {
            protocol: ExportProtocol::Ipfix,
            export_s,
            sys_uptime_ms: 0,
            domain,
            sets: Vec::new(),
        }
    }

    pub fn netflow_v9(source_id: u32, unix_s: u32, sys_uptime_ms: u32) -> Self {
        MessageBuilder {
            protocol: ExportProtocol::NetflowV9,
            export_s: unix_s,
            sys_uptime_ms,
            domain: source_id,
            sets: Vec::new(),
        }
    }

    fn set(&mut self, id: u16, body: &[u8]) -> &mut Self {
        // v9 flowsets are padded to 4 bytes; IPFIX needs no padding.
        let pad = match self.protocol {
            ExportProtocol::NetflowV9 => (4 - body.len() % 4) % 4,
            ExportProtocol::Ipfix => 0,
        };
        let len = (4 + body.len() + pad) as u16;
        self.sets.extend_from_slice(&id.to_be_bytes());
        self.sets.extend_from_slice(&len.to_be_bytes());
        self.sets.extend_from_slice(body);
        self.sets.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// A (data) template set with one template.
    pub fn template(&mut self, template_id: u16, fields: &[FieldSpec]) -> &mut Self {
        let mut body = Vec::new();
        body.extend_from_slice(&template_id.to_be_bytes());
        body.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for f in fields {
            push_field(&mut body, f, self.protocol);
        }
        let id = match self.protocol {
            ExportProtocol::Ipfix => 2,
            ExportProtocol::NetflowV9 => 0,
        };
        self.set(id, &body)
    }

    /// An options template set with one template; the first `scope` fields are scope fields.
    pub fn options_template(
        &mut self,
        template_id: u16,
        scope: usize,
        fields: &[FieldSpec],
    ) -> &mut Self {
        let mut body = Vec::new();
        body.extend_from_slice(&template_id.to_be_bytes());
        match self.protocol {
            ExportProtocol::Ipfix => {
                body.extend_from_slice(&(fields.len() as u16).to_be_bytes());
                body.extend_from_slice(&(scope as u16).to_be_bytes());
            }
            ExportProtocol::NetflowV9 => {
                body.extend_from_slice(&((scope * 4) as u16).to_be_bytes());
                body.extend_from_slice(
                    &(((fields.len() - scope.min(fields.len())) * 4) as u16).to_be_bytes(),
                );
            }
        }
        for f in fields {
            push_field(&mut body, f, self.protocol);
        }
        let id = match self.protocol {
            ExportProtocol::Ipfix => 3,
            ExportProtocol::NetflowV9 => 1,
        };
        self.set(id, &body)
    }

    /// IPFIX template withdrawal (field count 0).
    pub fn withdraw(&mut self, template_id: u16) -> &mut Self {
        let mut body = template_id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        self.set(2, &body)
    }

    /// A data set; `records` is the records' bytes, already encoded.
    pub fn data(&mut self, template_id: u16, records: &[u8]) -> &mut Self {
        self.set(template_id, records)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(20 + self.sets.len());
        match self.protocol {
            ExportProtocol::Ipfix => {
                m.extend_from_slice(&10u16.to_be_bytes());
                m.extend_from_slice(&((16 + self.sets.len()) as u16).to_be_bytes());
                m.extend_from_slice(&self.export_s.to_be_bytes());
                m.extend_from_slice(&0u32.to_be_bytes());
                m.extend_from_slice(&self.domain.to_be_bytes());
            }
            ExportProtocol::NetflowV9 => {
                m.extend_from_slice(&9u16.to_be_bytes());
                m.extend_from_slice(&0u16.to_be_bytes());
                m.extend_from_slice(&self.sys_uptime_ms.to_be_bytes());
                m.extend_from_slice(&self.export_s.to_be_bytes());
                m.extend_from_slice(&0u32.to_be_bytes());
                m.extend_from_slice(&self.domain.to_be_bytes());
            }
        }
        m.extend_from_slice(&self.sets);
        m
    }

    /// The template [`MessageBuilder::flow_record`] encodes against: v4 or v6
    /// addresses, ports, protocol, 8-byte counters, MACs and times
    /// (milliseconds since the epoch for IPFIX, sysUpTime for v9).
    pub fn flow_template(&self, ipv6: bool) -> Vec<FieldSpec> {
        use ie::*;
        let (src, dst, alen) = if ipv6 {
            (SOURCE_IPV6_ADDRESS, DESTINATION_IPV6_ADDRESS, 16)
        } else {
            (SOURCE_IPV4_ADDRESS, DESTINATION_IPV4_ADDRESS, 4)
        };
        let times = match self.protocol {
            ExportProtocol::Ipfix => [
                FieldSpec::iana(FLOW_START_MILLISECONDS, 8),
                FieldSpec::iana(FLOW_END_MILLISECONDS, 8),
            ],
            ExportProtocol::NetflowV9 => [
                FieldSpec::iana(FLOW_START_SYS_UP_TIME, 4),
                FieldSpec::iana(FLOW_END_SYS_UP_TIME, 4),
            ],
        };
        let mut t = vec![
            FieldSpec::iana(src, alen),
            FieldSpec::iana(dst, alen),
            FieldSpec::iana(SOURCE_TRANSPORT_PORT, 2),
            FieldSpec::iana(DESTINATION_TRANSPORT_PORT, 2),
            FieldSpec::iana(PROTOCOL_IDENTIFIER, 1),
            FieldSpec::iana(OCTET_DELTA_COUNT, 8),
            FieldSpec::iana(PACKET_DELTA_COUNT, 8),
            FieldSpec::iana(SOURCE_MAC_ADDRESS, 6),
            FieldSpec::iana(DESTINATION_MAC_ADDRESS, 6),
        ];
        t.extend(times);
        t
    }

    /// One record of `flow` against [`MessageBuilder::flow_template`]. Only
    /// what a one-directional record can carry is encoded: the originator's
    /// counters, whole milliseconds, MACs (zero when absent). For ICMP the
    /// destination port carries type*256+code.
    pub fn flow_record(&self, flow: &Flow, out: &mut Vec<u8>) {
        match (flow.orig_addr, flow.resp_addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&b.octets());
            }
            (a, b) => {
                out.extend_from_slice(&to_v6(a).octets());
                out.extend_from_slice(&to_v6(b).octets());
            }
        }
        let (sp, dp) = match flow.transport {
            Transport::Icmp | Transport::Icmpv6 => {
                (0, (flow.orig_port << 8) | (flow.resp_port & 0xff))
            }
            _ => (flow.orig_port, flow.resp_port),
        };
        out.extend_from_slice(&sp.to_be_bytes());
        out.extend_from_slice(&dp.to_be_bytes());
        out.push(flow.transport.iana());
        out.extend_from_slice(&flow.orig_bytes.to_be_bytes());
        out.extend_from_slice(&flow.orig_packets.to_be_bytes());
        out.extend_from_slice(&flow.orig_mac.map(|m| m.0).unwrap_or_default());
        out.extend_from_slice(&flow.resp_mac.map(|m| m.0).unwrap_or_default());
        let start_ms = flow.start_us.div_euclid(1000);
        let end_ms = start_ms.saturating_add(flow.duration_us.map_or(0, |d| (d / 1000) as i64));
        match self.protocol {
            ExportProtocol::Ipfix => {
                out.extend_from_slice(&(start_ms as u64).to_be_bytes());
                out.extend_from_slice(&(end_ms as u64).to_be_bytes());
            }
            ExportProtocol::NetflowV9 => {
                let base = i64::from(self.export_s) * 1000 - i64::from(self.sys_uptime_ms);
                out.extend_from_slice(&((start_ms - base) as u32).to_be_bytes());
                out.extend_from_slice(&((end_ms - base) as u32).to_be_bytes());
            }
        }
    }
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn push_field(body: &mut Vec<u8>, f: &FieldSpec, protocol: ExportProtocol) {
    if f.enterprise != 0 && protocol == ExportProtocol::Ipfix {
        body.extend_from_slice(&(f.element | 0x8000).to_be_bytes());
        body.extend_from_slice(&f.length.to_be_bytes());
        body.extend_from_slice(&f.enterprise.to_be_bytes());
    } else {
        body.extend_from_slice(&f.element.to_be_bytes());
        body.extend_from_slice(&f.length.to_be_bytes());
    }
}

impl fmt::Display for ExportProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExportProtocol::Ipfix => "IPFIX",
            ExportProtocol::NetflowV9 => "NetFlow v9",
        })
    }
}

#[cfg(test)]
mod tests;
