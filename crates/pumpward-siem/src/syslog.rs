//! RFC 5424 syslog messages and RFC 6587 / RFC 5425 octet-counting framing.
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID k="v" …] BOM MSG
//! ```
//!
//! - PRI = facility × 8 + severity ([`crate::Severity::syslog`]).
//! - TIMESTAMP is RFC 3339 in UTC with six fraction digits (the most RFC
//!   5424 allows), so every message has the same width there.
//! - The structured data element carries the message id, signature id,
//!   severity name and every field; PARAM-VALUEs escape `"`, `\` and `]`
//!   with a backslash (RFC 5424 §6.3.3). Nothing else is escaped: a
//!   newline in a value stays a newline, which octet-counting framing
//!   carries intact.
//! - MSG is the CEF or JSON body, preceded by the UTF-8 BOM as RFC 5424
//!   §6.4 asks for UTF-8 text (can be turned off for collectors whose CEF
//!   parser trips over it).

use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::cef;
use crate::message::{json_body_into, SiemMessage};

/// The UTF-8 byte order mark that starts an RFC 5424 MSG in UTF-8.
pub const BOM: &str = "\u{FEFF}";

/// The structured data id when none is configured. 32473 is the private
/// enterprise number IANA reserves for documentation (RFC 5612); a
/// hospital with its own number sets [`SyslogOptions::sd_id`].
pub const DEFAULT_SD_ID: &str = "pumpward@32473";

/// A syslog facility (0–23). Pumpward defaults to `local4` (20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    /// local4, the default.
    pub const LOCAL4: Facility = Facility(20);
    /// security/authorization messages (4).
    pub const AUTH: Facility = Facility(4);

    /// A facility code; `None` above 23.
    pub fn new(code: u8) -> Option<Self> {
        (code <= 23).then_some(Facility(code))
    }

    /// The facility by its usual name (`auth`, `local0` … `local7`, …).
    pub fn from_name(name: &str) -> Option<Self> {
        const NAMES: [&str; 24] = [
            "kern",
            "user",
            "mail",
            "daemon",
            "auth",
            "syslog",
            "lpr",
            "news",
            "uucp",
            "cron",
            "authpriv",
            "ftp",
            "ntp",
            "security",
            "console",
            "solaris-cron",
            "local0",
            "local1",
            "local2",
            "local3",
            "local4",
            "local5",
            "local6",
            "local7",
        ];
        NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Facility(i as u8))
    }

    /// The code.
    pub fn code(self) -> u8 {
        self.0
    }
}

/// What goes into MSG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// ArcSight Common Event Format ([`crate::cef`]).
    Cef,
    /// The JSON body ([`crate::json_body`]).
    Json,
}

/// The parts of an RFC 5424 message that come from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogOptions {
    /// The facility.
    pub facility: Facility,
    /// PROCID; `None` writes the nil value `-`.
    pub procid: Option<String>,
    /// The SD-ID of the structured data element (`name@PEN`).
    pub sd_id: String,
    /// Prefix MSG with the UTF-8 BOM (RFC 5424 §6.4). On by default.
    pub bom: bool,
    /// MSG's format.
    pub body: BodyFormat,
}

impl Default for SyslogOptions {
    fn default() -> Self {
        Self {
            facility: Facility::LOCAL4,
            procid: None,
            sd_id: DEFAULT_SD_ID.to_owned(),
            bom: true,
            body: BodyFormat::Cef,
        }
    }
}

/// Writes `t` as `YYYY-MM-DDThh:mm:ss.ffffffZ` (UTC).
pub fn write_timestamp(t: OffsetDateTime, out: &mut String) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    );
}

/// Appends `v` escaped as an RFC 5424 PARAM-VALUE (without the quotes).
pub fn escape_param_value(v: &str, out: &mut String) {
    let mut start = 0;
    for (i, b) in v.bytes().enumerate() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push_str(&v[start..i]);
            out.push('\\');
            start = i;
        }
    }
    out.push_str(&v[start..]);
}

/// The RFC 5424 message for `msg` (without framing). `msg` must be valid
/// ([`SiemMessage::validate`]); the exporter checks before calling.
pub fn rfc5424(msg: &SiemMessage, opts: &SyslogOptions) -> String {
    let mut out = String::with_capacity(512);
    rfc5424_into(msg, opts, &mut out);
    out
}

/// [`rfc5424`] appended to `out`.
pub fn rfc5424_into(msg: &SiemMessage, opts: &SyslogOptions, out: &mut String) {
    let pri = u16::from(opts.facility.0) * 8 + u16::from(msg.severity.syslog());
    let _ = write!(out, "<{pri}>1 ");
    write_timestamp(msg.time, out);
    out.push(' ');
    out.push_str(&msg.host);
    out.push(' ');
    out.push_str(&msg.app_name);
    out.push(' ');
    out.push_str(opts.procid.as_deref().unwrap_or("-"));
    out.push(' ');
    out.push_str(&msg.msg_id);
    out.push_str(" [");
    out.push_str(&opts.sd_id);
    let mut param = |name: &str, value: &str| {
        out.push(' ');
        out.push_str(name);
        out.push_str("=\"");
        escape_param_value(value, out);
        out.push('"');
    };
    param("id", &msg.id);
    param("signature", &msg.signature_id);
    param("severity", msg.severity.as_str());
    for (k, v) in &msg.fields {
        param(k, v);
    }
    out.push_str("] ");
    if opts.bom {
        out.push_str(BOM);
    }
    match opts.body {
        BodyFormat::Cef => cef::cef_into(msg, out),
        BodyFormat::Json => json_body_into(msg, out),
    }
}

/// Octet-counting framing (RFC 6587 §3.4.1, RFC 5425 §4.3): `LEN SP MSG`,
/// LEN the decimal byte count of MSG. Appended to `out`.
pub fn frame_into(msg: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg);
}
