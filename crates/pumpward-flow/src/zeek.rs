//! Zeek `conn.log`, in both forms Zeek writes: the default TSV with its
//! `#`-header block, and JSON (one object per line, `LogAscii::use_json=T`).
//!
//! The TSV form is driven by its header: `#separator` (written escaped,
//! `\x09`), `#set_separator`, `#empty_field`, `#unset_field`, `#fields`,
//! `#types` and `#close`. Columns are found by name, so a site that adds,
//! drops or reorders columns (`orig_l2_addr` from `policy/protocols/conn/mac-logging`,
//! say) is still read. A header without a required column (`ts`,
//! `id.orig_h`, `id.orig_p`, `id.resp_h`, `id.resp_p`, `proto`) is refused
//! with the column's name, and the data lines under it are skipped until the
//! next header block. A new header block (rotation, Zeek restarting) may come
//! at any line; a `#close` line ends the block.
//!
//! Parsing works on the line's bytes in place: no allocation per record on
//! the TSV path (errors allocate their detail text).
//!
//! Three ways in, one parser underneath:
//! - [`ConnLogParser::parse_line`] for callers that already have lines;
//! - [`ConnLogReader`], an iterator over any `BufRead`;
//! - [`ConnLogFollower`], fed byte chunks while Zeek is still writing the file.

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;
use std::net::IpAddr;

use serde::Deserialize;

use crate::{ConnState, Flow, FlowSource, ObservedMac, SensorUid, Transport};

/// Lines longer than this are refused (a Zeek conn.log line is a few hundred
/// bytes; a runaway line must not take the collector's memory).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Why a line was not turned into a flow. Every skipped line is counted
/// under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// `ts` masked as `XXXXXXXXXX.XXXXXX` (test baselines do this): the time
    /// is unknown and Pumpward does not invent one.
    MaskedTimestamp,
    BadTimestamp,
    UnparseableAddress,
    BadPort,
    BadNumber,
    BadMac,
    BadUid,
    /// Zeek's `unknown_transport`: no protocol number to keep.
    UnknownTransport,
    /// A required field is unset (`-`) or empty.
    MissingValue,
    /// The line has more or fewer fields than `#fields` names.
    WrongFieldCount,
    BadJson,
    /// A data line with no usable `#fields` header above it (none yet, refused, or after `#close`).
    NoHeader,
    /// A header line that was refused (missing required column, wrong type, not a conn log...).
    BadHeader,
    LineTooLong,
    NotUtf8,
    /// Reading the input failed; the reader stops.
    Io,
}

impl SkipReason {
    pub const ALL: [SkipReason; 16] = [
        SkipReason::MaskedTimestamp,
        SkipReason::BadTimestamp,
        SkipReason::UnparseableAddress,
        SkipReason::BadPort,
        SkipReason::BadNumber,
        SkipReason::BadMac,
        SkipReason::BadUid,
        SkipReason::UnknownTransport,
        SkipReason::MissingValue,
        SkipReason::WrongFieldCount,
        SkipReason::BadJson,
        SkipReason::NoHeader,
        SkipReason::BadHeader,
        SkipReason::LineTooLong,
        SkipReason::NotUtf8,
        SkipReason::Io,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::MaskedTimestamp => "masked timestamp",
            SkipReason::BadTimestamp => "bad timestamp",
            SkipReason::UnparseableAddress => "unparseable address",
            SkipReason::BadPort => "bad port",
            SkipReason::BadNumber => "bad number",
            SkipReason::BadMac => "bad MAC address",
            SkipReason::BadUid => "bad uid",
            SkipReason::UnknownTransport => "unknown transport",
            SkipReason::MissingValue => "missing value",
            SkipReason::WrongFieldCount => "wrong field count",
            SkipReason::BadJson => "bad JSON",
            SkipReason::NoHeader => "no usable header",
            SkipReason::BadHeader => "bad header",
            SkipReason::LineTooLong => "line too long",
            SkipReason::NotUtf8 => "not UTF-8",
            SkipReason::Io => "read error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line that gave no flow: where, why, and which column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}{}: {detail}", column.as_ref().map(|c| format!(" in column {c}")).unwrap_or_default())]
pub struct RecordError {
    /// 1-based line number in the input (across header blocks and chunks).
    pub line: u64,
    pub reason: SkipReason,
    pub column: Option<String>,
    pub detail: String,
}

/// What a parser has done so far: records parsed and lines skipped, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnLogCounts {
    pub parsed: u64,
    skipped: [u64; SkipReason::ALL.len()],
}

impl ConnLogCounts {
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped[reason.index()]
    }

    pub fn total_skipped(&self) -> u64 {
        self.skipped.iter().sum()
    }

    /// The reasons with a non-zero count, in a fixed order (for reports).
    pub fn skipped_by_reason(&self) -> impl Iterator<Item = (SkipReason, u64)> + '_ {
        SkipReason::ALL
            .iter()
            .map(|r| (*r, self.skipped[r.index()]))
            .filter(|(_, n)| *n > 0)
    }

    fn count(&mut self, reason: SkipReason) {
        self.skipped[reason.index()] += 1;
    }
}

/// The columns Pumpward reads; everything else in the line is passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ts,
    Uid,
    OrigH,
    OrigP,
    RespH,
    RespP,
    Proto,
    Duration,
    OrigBytes,
    RespBytes,
    OrigIpBytes,
    RespIpBytes,
    OrigPkts,
    RespPkts,
    ConnState,
    OrigL2,
    RespL2,
}

const SLOTS: usize = 17;

impl Slot {
    fn from_column(name: &[u8]) -> Option<Slot> {
        Some(match name {
            b"ts" => Slot::Ts,
            b"uid" => Slot::Uid,
            b"id.orig_h" => Slot::OrigH,
            b"id.orig_p" => Slot::OrigP,
            b"id.resp_h" => Slot::RespH,
            b"id.resp_p" => Slot::RespP,
            b"proto" => Slot::Proto,
            b"duration" => Slot::Duration,
            b"orig_bytes" => Slot::OrigBytes,
            b"resp_bytes" => Slot::RespBytes,
            b"orig_ip_bytes" => Slot::OrigIpBytes,
            b"resp_ip_bytes" => Slot::RespIpBytes,
            b"orig_pkts" => Slot::OrigPkts,
            b"resp_pkts" => Slot::RespPkts,
            b"conn_state" => Slot::ConnState,
            b"orig_l2_addr" => Slot::OrigL2,
            b"resp_l2_addr" => Slot::RespL2,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Slot::Ts => "ts",
            Slot::Uid => "uid",
            Slot::OrigH => "id.orig_h",
            Slot::OrigP => "id.orig_p",
            Slot::RespH => "id.resp_h",
            Slot::RespP => "id.resp_p",
            Slot::Proto => "proto",
            Slot::Duration => "duration",
            Slot::OrigBytes => "orig_bytes",
            Slot::RespBytes => "resp_bytes",
            Slot::OrigIpBytes => "orig_ip_bytes",
            Slot::RespIpBytes => "resp_ip_bytes",
            Slot::OrigPkts => "orig_pkts",
            Slot::RespPkts => "resp_pkts",
            Slot::ConnState => "conn_state",
            Slot::OrigL2 => "orig_l2_addr",
            Slot::RespL2 => "resp_l2_addr",
        }
    }

    /// The Zeek type the column must have where `#types` is given.
    fn zeek_type(self) -> &'static [u8] {
        match self {
            Slot::Ts => b"time",
            Slot::OrigH | Slot::RespH => b"addr",
            Slot::OrigP | Slot::RespP => b"port",
            Slot::Proto => b"enum",
            Slot::Duration => b"interval",
            Slot::Uid | Slot::ConnState | Slot::OrigL2 | Slot::RespL2 => b"string",
            _ => b"count",
        }
    }

    const REQUIRED: [Slot; 6] = [
        Slot::Ts,
        Slot::OrigH,
        Slot::OrigP,
        Slot::RespH,
        Slot::RespP,
        Slot::Proto,
    ];
}

/// The state of one TSV header block.
#[derive(Debug, Clone)]
struct Header {
    separator: Vec<u8>,
    empty_field: Vec<u8>,
    unset_field: Vec<u8>,
    /// Per column of `#fields`: which slot it fills, if any.
    columns: Option<Vec<Option<Slot>>>,
    /// Line of the refused header, so that the lines under it say why they are skipped.
    refused_at: Option<u64>,
    closed: bool,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            separator: b"\t".to_vec(),
            empty_field: b"(empty)".to_vec(),
            unset_field: b"-".to_vec(),
            columns: None,
            refused_at: None,
            closed: false,
        }
    }
}

/// The line-level parser under every way of reading a conn.log.
#[derive(Debug, Clone, Default)]
pub struct ConnLogParser {
    header: Header,
    line: u64,
    counts: ConnLogCounts,
}

impl ConnLogParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counts(&self) -> &ConnLogCounts {
        &self.counts
    }

    /// Lines seen so far.
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// One line without its newline. `None` for header, comment and blank
    /// lines that were accepted; `Some(Err)` for a skipped line or a refused
    /// header, already counted.
    pub fn parse_line(&mut self, line: &[u8]) -> Option<Result<Flow, RecordError>> {
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let result = if line.len() > MAX_LINE_BYTES {
            Err(self.error(
                SkipReason::LineTooLong,
                None,
                format!("{} bytes", line.len()),
            ))
        } else if line.first() == Some(&b'#') {
            match self.header_line(line) {
                Ok(()) => return None,
                Err(e) => Err(e),
            }
        } else if line.first() == Some(&b'{') {
            self.json_line(line)
        } else if line.iter().all(|b| b.is_ascii_whitespace()) {
            return None;
        } else {
            self.tsv_line(line)
        };
        match &result {
            Ok(_) => self.counts.parsed += 1,
            Err(e) => self.counts.count(e.reason),
        }
        Some(result)
    }

    /// Counts a line that never reached `parse_line` (too long for the follower's buffer).
    fn skip_unparsed(&mut self, reason: SkipReason, detail: String) -> RecordError {
        self.line += 1;
        self.counts.count(reason);
        self.error(reason, None, detail)
    }

    fn error(&self, reason: SkipReason, column: Option<&str>, detail: String) -> RecordError {
        RecordError {
            line: self.line,
            reason,
            column: column.map(str::to_owned),
            detail,
        }
    }

    fn header_error(&mut self, detail: String) -> RecordError {
        self.header.columns = None;
        self.header.refused_at = Some(self.line);
        self.error(SkipReason::BadHeader, None, detail)
    }

    fn header_line(&mut self, line: &[u8]) -> Result<(), RecordError> {
        if let Some(rest) = line.strip_prefix(b"#separator ") {
            // The start of a header block: everything before it no longer applies.
            let sep = unescape(rest);
            self.header = Header::default();
            if sep.is_empty() {
                return Err(self.header_error("empty #separator".into()));
            }
            self.header.separator = sep;
            return Ok(());
        }
        let sep = self.header.separator.clone();
        let mut parts = split(line, &sep);
        let key = parts.next().unwrap_or_default();
        let value = &line[(key.len() + sep.len()).min(line.len())..];
        match key {
            b"#set_separator" => {} // Only sets use it; Pumpward reads no set column.
            b"#empty_field" => self.header.empty_field = unescape(value),
            b"#unset_field" => self.header.unset_field = unescape(value),
            b"#path" if value != b"conn" => {
                let path = String::from_utf8_lossy(value).into_owned();
                return Err(self.header_error(format!(
                    "#path is {path:?}: this is Zeek's {path} log, not conn.log"
                )));
            }
            b"#fields" => {
                let columns: Vec<Option<Slot>> = parts.map(Slot::from_column).collect();
                for required in Slot::REQUIRED {
                    if !columns.contains(&Some(required)) {
                        return Err(self.header_error(format!(
                            "#fields has no {} column, which every flow needs",
                            required.column()
                        )));
                    }
                }
                for (i, slot) in columns.iter().enumerate() {
                    if let Some(s) = slot {
                        if columns[..i].contains(slot) {
                            return Err(
                                self.header_error(format!("#fields names {} twice", s.column()))
                            );
                        }
                    }
                }
                self.header.columns = Some(columns);
                self.header.refused_at = None;
                self.header.closed = false;
            }
            b"#types" => {
                let Some(columns) = &self.header.columns else {
                    return Ok(()); // Types of a refused header: nothing to check.
                };
                let types: Vec<&[u8]> = parts.collect();
                if types.len() != columns.len() {
                    let detail = format!(
                        "#types has {} entries where #fields has {}",
                        types.len(),
                        columns.len()
                    );
                    return Err(self.header_error(detail));
                }
                for (slot, ty) in columns.iter().zip(&types) {
                    if let Some(s) = slot {
                        if *ty != s.zeek_type() {
                            let detail = format!(
                                "column {} has type {:?}, expected {}",
                                s.column(),
                                String::from_utf8_lossy(ty),
                                String::from_utf8_lossy(s.zeek_type())
                            );
                            return Err(self.header_error(detail));
                        }
                    }
                }
            }
            b"#close" => {
                self.header.closed = true;
            }
            _ => {} // #open, btest banners and other comments.
        }
        Ok(())
    }

    fn tsv_line(&self, line: &[u8]) -> Result<Flow, RecordError> {
        let columns = match (&self.header.columns, self.header.closed) {
            (Some(c), false) => c,
            (_, true) => {
                return Err(self.error(
                    SkipReason::NoHeader,
                    None,
                    "data line after #close and before a new header block".into(),
                ))
            }
            (None, false) => {
                let detail = match self.header.refused_at {
                    Some(at) => format!("the header at line {at} was refused"),
                    None => "data line before any #fields header".into(),
                };
                return Err(self.error(SkipReason::NoHeader, None, detail));
            }
        };
        let mut values: [Option<&[u8]>; SLOTS] = [None; SLOTS];
        let mut found = 0usize;
        for field in split(line, &self.header.separator) {
            if let Some(Some(slot)) = columns.get(found) {
                values[*slot as usize] = Some(field);
            }
            found += 1;
        }
        if found != columns.len() {
            return Err(self.error(
                SkipReason::WrongFieldCount,
                None,
                format!("{found} fields where #fields names {}", columns.len()),
            ));
        }
        let get = |slot: Slot| -> Option<&[u8]> {
            values[slot as usize].filter(|v| {
                *v != self.header.unset_field.as_slice() && *v != self.header.empty_field.as_slice()
            })
        };
        let required = |slot: Slot| -> Result<&[u8], RecordError> {
            get(slot).ok_or_else(|| {
                self.error(
                    SkipReason::MissingValue,
                    Some(slot.column()),
                    "unset".into(),
                )
            })
        };
        let field_error = |slot: Slot, reason: SkipReason, v: &[u8]| {
            self.error(
                reason,
                Some(slot.column()),
                format!("{:?}", String::from_utf8_lossy(v)),
            )
        };

        let ts = required(Slot::Ts)?;
        let start_us = parse_epoch_us(ts).map_err(|r| field_error(Slot::Ts, r, ts))?;
        let addr = |slot: Slot| -> Result<IpAddr, RecordError> {
            let v = required(slot)?;
            parse_addr(v).ok_or_else(|| field_error(slot, SkipReason::UnparseableAddress, v))
        };
        let port = |slot: Slot| -> Result<u16, RecordError> {
            let v = required(slot)?;
            parse_u64(v)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| field_error(slot, SkipReason::BadPort, v))
        };
        let count = |slot: Slot| -> Result<Option<u64>, RecordError> {
            match get(slot) {
                None => Ok(None),
                Some(v) => parse_u64(v)
                    .map(Some)
                    .ok_or_else(|| field_error(slot, SkipReason::BadNumber, v)),
            }
        };
        let mac = |slot: Slot| -> Result<Option<ObservedMac>, RecordError> {
            match get(slot) {
                None => Ok(None),
                Some(v) => parse_mac(v)
                    .map(Some)
                    .ok_or_else(|| field_error(slot, SkipReason::BadMac, v)),
            }
        };
        let orig_addr = addr(Slot::OrigH)?;
        let resp_addr = addr(Slot::RespH)?;
        let orig_port = port(Slot::OrigP)?;
        let resp_port = port(Slot::RespP)?;
        let proto = required(Slot::Proto)?;
        let transport = zeek_transport(proto, orig_addr)
            .ok_or_else(|| field_error(Slot::Proto, SkipReason::UnknownTransport, proto))?;
        let duration_us = match get(Slot::Duration) {
            None => None,
            Some(v) => Some(
                parse_epoch_us(v)
                    .ok()
                    .and_then(|d| u64::try_from(d).ok())
                    .ok_or_else(|| field_error(Slot::Duration, SkipReason::BadNumber, v))?,
            ),
        };
        // IP-level bytes where Zeek logged them, else the payload count (see the Flow docs).
        let orig_bytes = match count(Slot::OrigIpBytes)? {
            Some(n) => n,
            None => count(Slot::OrigBytes)?.unwrap_or(0),
        };
        let resp_bytes = match count(Slot::RespIpBytes)? {
            Some(n) => n,
            None => count(Slot::RespBytes)?.unwrap_or(0),
        };
        let sensor_uid = match get(Slot::Uid) {
            None => None,
            Some(v) => Some(
                std::str::from_utf8(v)
                    .ok()
                    .and_then(SensorUid::new)
                    .ok_or_else(|| field_error(Slot::Uid, SkipReason::BadUid, v))?,
            ),
        };
        Ok(Flow {
            start_us,
            duration_us,
            transport,
            orig_addr,
            orig_port,
            resp_addr,
            resp_port,
            orig_mac: mac(Slot::OrigL2)?,
            resp_mac: mac(Slot::RespL2)?,
            orig_bytes,
            resp_bytes,
            orig_packets: count(Slot::OrigPkts)?.unwrap_or(0),
            resp_packets: count(Slot::RespPkts)?.unwrap_or(0),
            source: FlowSource::ZeekConnLog,
            sensor_uid,
            conn_state: get(Slot::ConnState).and_then(ConnState::from_zeek),
        })
    }

    fn json_line(&self, line: &[u8]) -> Result<Flow, RecordError> {
        let rec: JsonConn<'_> = serde_json::from_slice(line)
            .map_err(|e| self.error(SkipReason::BadJson, None, e.to_string()))?;
        let field_error = |column: &str, reason: SkipReason, v: &str| {
            self.error(reason, Some(column), format!("{v:?}"))
        };
        let start_us = match &rec.ts {
            // JSON::TS_MILLIS writes integer milliseconds. An integer below
            // 10^11 can only be whole epoch seconds (10^11 ms is 1973, 10^11 s the year 5138).
            JsonTs::Integer(n) if n.unsigned_abs() >= 100_000_000_000 => n
                .checked_mul(1000)
                .ok_or_else(|| field_error("ts", SkipReason::BadTimestamp, &n.to_string()))?,
            JsonTs::Integer(n) => n * 1_000_000,
            JsonTs::Epoch(secs) => epoch_f64_us(*secs)
                .ok_or_else(|| field_error("ts", SkipReason::BadTimestamp, &secs.to_string()))?,
            JsonTs::Iso(s) => {
                parse_iso8601_us(s).ok_or_else(|| field_error("ts", SkipReason::BadTimestamp, s))?
            }
        };
        let addr = |column: &str, v: &str| {
            v.parse::<IpAddr>()
                .map_err(|_| field_error(column, SkipReason::UnparseableAddress, v))
        };
        let orig_addr = addr("id.orig_h", &rec.orig_h)?;
        let resp_addr = addr("id.resp_h", &rec.resp_h)?;
        let transport = zeek_transport(rec.proto.as_bytes(), orig_addr)
            .ok_or_else(|| field_error("proto", SkipReason::UnknownTransport, &rec.proto))?;
        let duration_us = match rec.duration {
            None => None,
            Some(d) => Some(
                epoch_f64_us(d)
                    .and_then(|us| u64::try_from(us).ok())
                    .ok_or_else(|| {
                        field_error("duration", SkipReason::BadNumber, &d.to_string())
                    })?,
            ),
        };
        let mac = |column: &str, v: &Option<Cow<'_, str>>| match v {
            None => Ok(None),
            Some(s) => parse_mac(s.as_bytes())
                .map(Some)
                .ok_or_else(|| field_error(column, SkipReason::BadMac, s)),
        };
        let sensor_uid = match &rec.uid {
            None => None,
            Some(u) => {
                Some(SensorUid::new(u).ok_or_else(|| field_error("uid", SkipReason::BadUid, u))?)
            }
        };
        Ok(Flow {
            start_us,
            duration_us,
            transport,
            orig_addr,
            orig_port: rec.orig_p,
            resp_addr,
            resp_port: rec.resp_p,
            orig_mac: mac("orig_l2_addr", &rec.orig_l2_addr)?,
            resp_mac: mac("resp_l2_addr", &rec.resp_l2_addr)?,
            orig_bytes: rec.orig_ip_bytes.or(rec.orig_bytes).unwrap_or(0),
            resp_bytes: rec.resp_ip_bytes.or(rec.resp_bytes).unwrap_or(0),
            orig_packets: rec.orig_pkts.unwrap_or(0),
            resp_packets: rec.resp_pkts.unwrap_or(0),
            source: FlowSource::ZeekConnLog,
            sensor_uid,
            conn_state: rec
                .conn_state
                .as_deref()
                .and_then(|s| ConnState::from_zeek(s.as_bytes())),
        })
    }
}

#[derive(Deserialize)]
struct JsonConn<'a> {
    #[serde(borrow)]
    ts: JsonTs<'a>,
    #[serde(default, borrow)]
    uid: Option<Cow<'a, str>>,
    #[serde(rename = "id.orig_h", borrow)]
    orig_h: Cow<'a, str>,
    #[serde(rename = "id.orig_p")]
    orig_p: u16,
    #[serde(rename = "id.resp_h", borrow)]
    resp_h: Cow<'a, str>,
    #[serde(rename = "id.resp_p")]
    resp_p: u16,
    #[serde(borrow)]
    proto: Cow<'a, str>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    orig_bytes: Option<u64>,
    #[serde(default)]
    resp_bytes: Option<u64>,
    #[serde(default)]
    orig_ip_bytes: Option<u64>,
    #[serde(default)]
    resp_ip_bytes: Option<u64>,
    #[serde(default)]
    orig_pkts: Option<u64>,
    #[serde(default)]
    resp_pkts: Option<u64>,
    #[serde(default, borrow)]
    conn_state: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    orig_l2_addr: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    resp_l2_addr: Option<Cow<'a, str>>,
}

/// Zeek writes `ts` as epoch seconds by default (`JSON::TS_EPOCH`), as
/// integer milliseconds with `JSON::TS_MILLIS` and as ISO 8601 with
/// `JSON::TS_ISO8601`.
#[derive(Deserialize)]
#[serde(untagged)]
enum JsonTs<'a> {
    Integer(i64),
    Epoch(f64),
    Iso(#[serde(borrow)] Cow<'a, str>),
}

/// Reads a whole conn.log from any `BufRead`, one item per data line (and
/// per refused header). Stops after an I/O error, which it yields once.
pub struct ConnLogReader<R> {
    input: R,
    parser: ConnLogParser,
    line: Vec<u8>,
    failed: bool,
}

impl<R: BufRead> ConnLogReader<R> {
    pub fn new(input: R) -> Self {
        ConnLogReader {
            input,
            parser: ConnLogParser::new(),
            line: Vec::with_capacity(512),
            failed: false,
        }
    }

    pub fn counts(&self) -> &ConnLogCounts {
        self.parser.counts()
    }

    /// Reads up to the next newline into `self.line`, never holding more than
    /// `MAX_LINE_BYTES` (the rest of an overlong line is dropped). `Ok(None)` at EOF.
    fn next_line(&mut self) -> std::io::Result<Option<bool>> {
        self.line.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let avail = self.input.fill_buf()?;
            if avail.is_empty() {
                return Ok(any.then_some(too_long));
            }
            any = true;
            let (take, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if self.line.len() + take <= MAX_LINE_BYTES {
                self.line.extend_from_slice(&avail[..take]);
            } else {
                too_long = true;
            }
            let consumed = if done { take + 1 } else { take };
            self.input.consume(consumed);
            if done {
                return Ok(Some(too_long));
            }
        }
    }
}

impl<R: BufRead> Iterator for ConnLogReader<R> {
    type Item = Result<Flow, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            match self.next_line() {
                Ok(None) => return None,
                Ok(Some(true)) => {
                    return Some(Err(self.parser.skip_unparsed(
                        SkipReason::LineTooLong,
                        format!("longer than {MAX_LINE_BYTES} bytes"),
                    )))
                }
                Ok(Some(false)) => {
                    if let Some(item) = self.parser.parse_line(&self.line) {
                        return Some(item);
                    }
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(self
                        .parser
                        .skip_unparsed(SkipReason::Io, e.to_string())));
                }
            }
        }
        None
    }
}

/// Follows a conn.log while Zeek writes it: feed it whatever bytes the
/// file grew by; it keeps a partial last line until its newline arrives.
/// A new header block (rotation, restart) is taken up wherever it appears.
#[derive(Debug, Clone, Default)]
pub struct ConnLogFollower {
    parser: ConnLogParser,
    partial: Vec<u8>,
    /// The partial line outgrew `MAX_LINE_BYTES`: drop bytes until its newline.
    discarding: bool,
}

impl ConnLogFollower {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counts(&self) -> &ConnLogCounts {
        self.parser.counts()
    }

    /// Bytes held back waiting for their newline.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Parses every complete line in `chunk` (joined to what was held back)
    /// and hands each result to `sink`.
    pub fn feed(&mut self, mut chunk: &[u8], sink: &mut impl FnMut(Result<Flow, RecordError>)) {
        while let Some(i) = memchr::memchr(b'\n', chunk) {
            let (head, rest) = (&chunk[..i], &chunk[i + 1..]);
            if self.discarding {
                self.discarding = false;
                sink(Err(self.parser.skip_unparsed(
                    SkipReason::LineTooLong,
                    format!("longer than {MAX_LINE_BYTES} bytes"),
                )));
            } else if self.partial.is_empty() {
                if let Some(item) = self.parser.parse_line(head) {
                    sink(item);
                }
            } else {
                self.partial.extend_from_slice(head);
                let line = std::mem::take(&mut self.partial);
                if let Some(item) = self.parser.parse_line(&line) {
                    sink(item);
                }
                self.partial = line;
                self.partial.clear();
            }
            chunk = rest;
        }
        if !self.discarding {
            if self.partial.len() + chunk.len() > MAX_LINE_BYTES {
                self.discarding = true;
                self.partial.clear();
            } else {
                self.partial.extend_from_slice(chunk);
            }
        }
    }

    /// The file is finished (closed or rotated away): parse a last line that
    /// never got its newline.
    pub fn finish(&mut self, sink: &mut impl FnMut(Result<Flow, RecordError>)) {
        if self.discarding {
            self.discarding = false;
            sink(Err(self.parser.skip_unparsed(
                SkipReason::LineTooLong,
                format!("longer than {MAX_LINE_BYTES} bytes"),
            )));
        } else if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            if let Some(item) = self.parser.parse_line(&line) {
                sink(item);
            }
        }
    }
}

/// Splits on a separator of any length (Zeek's is one byte, `\t`).
fn split<'a>(line: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let r = rest?;
        // Fields are a few bytes long: a plain scan beats memchr's per-call setup.
        let found = if let [one] = sep {
            r.iter().position(|b| b == one)
        } else {
            r.windows(sep.len()).position(|w| w == sep)
        };
        match found {
            Some(i) => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// Zeek escapes header values as `\xHH`.
fn unescape(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && v.get(i + 1) == Some(&b'x') {
            if let (Some(h), Some(l)) = (
                v.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
                v.get(i + 3).and_then(|c| (*c as char).to_digit(16)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

fn zeek_transport(proto: &[u8], orig: IpAddr) -> Option<Transport> {
    match proto {
        b"tcp" => Some(Transport::Tcp),
        b"udp" => Some(Transport::Udp),
        // Zeek logs ICMPv6 as "icmp" too; the address family tells them apart.
        b"icmp" if orig.is_ipv6() => Some(Transport::Icmpv6),
        b"icmp" => Some(Transport::Icmp),
        _ => None,
    }
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in v {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// `[-]seconds[.fraction]` to microseconds; digits past the sixth are
/// dropped (Zeek writes six).
pub(crate) fn parse_epoch_us(v: &[u8]) -> Result<i64, SkipReason> {
    if v.contains(&b'X') {
        return Err(SkipReason::MaskedTimestamp);
    }
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    let secs = parse_u64(int).ok_or(SkipReason::BadTimestamp)?;
    let mut micros: u64 = 0;
    for i in 0..6 {
        let d = match frac.get(i) {
            Some(c) if c.is_ascii_digit() => u64::from(c - b'0'),
            Some(_) => return Err(SkipReason::BadTimestamp),
            None => 0,
        };
        micros = micros * 10 + d;
    }
    if frac.iter().skip(6).any(|c| !c.is_ascii_digit()) {
        return Err(SkipReason::BadTimestamp);
    }
    let us = secs
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(micros))
        .and_then(|us| i64::try_from(us).ok())
        .ok_or(SkipReason::BadTimestamp)?;
    Ok(if neg { -us } else { us })
}

fn epoch_f64_us(secs: f64) -> Option<i64> {
    let us = (secs * 1e6).round();
    // Finite and inside i64 (both bounds are exact powers of two in f64).
    (us.is_finite() && (-9.2e18..=9.2e18).contains(&us)).then_some(us as i64)
}

fn parse_iso8601_us(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

fn parse_addr(v: &[u8]) -> Option<IpAddr> {
    if let Some(a) = parse_ipv4_fast(v) {
        return Some(IpAddr::V4(a));
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Dotted-quad IPv4 in canonical form (what Zeek writes); anything else
/// (leading zeros, IPv6) is left to the standard parser.
fn parse_ipv4_fast(v: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, o) in octets.iter_mut().enumerate() {
        let start = i;
        let mut val: u16 = 0;
        while let Some(c) = v.get(i).filter(|c| c.is_ascii_digit()) {
            val = val * 10 + u16::from(c - b'0');
            i += 1;
            if i - start > 3 {
                return None;
            }
        }
        let len = i - start;
        if len == 0 || val > 255 || (len > 1 && v[start] == b'0') {
            return None;
        }
        *o = val as u8;
        if n < 3 {
            if v.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == v.len()).then_some(std::net::Ipv4Addr::from(octets))
}

pub(crate) fn parse_mac(v: &[u8]) -> Option<ObservedMac> {
    if v.len() != 17 {
        return None;
    }
    let mut out = [0u8; 6];
    for (i, o) in out.iter_mut().enumerate() {
        let p = &v[i * 3..i * 3 + 2];
        if i < 5 && v[i * 3 + 2] != b':' {
            return None;
        }
        let h = (p[0] as char).to_digit(16)?;
        let l = (p[1] as char).to_digit(16)?;
        *o = (h * 16 + l) as u8;
    }
    Some(ObservedMac(out))
}

#[cfg(test)]
mod tests;
