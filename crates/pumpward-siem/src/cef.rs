//! ArcSight Common Event Format (CEF) bodies.
//!
//! ```text
//! CEF:0|Pumpward|Pumpward|0.1.0|druglib.hash_mismatch|Drug library mismatch|8|rt=1764169445000 dvchost=pw1 deviceProcessName=pumpward externalId=a-17 cat=alert asset_id=PUMP-0042 …
//! ```
//!
//! Escaping follows the CEF specification: in the header `\` and `|` are
//! escaped with a backslash; in the extension `\` and `=` are, and line
//! breaks become `\n` / `\r`. The header has no rule for line breaks (a
//! name never should have one); we write them as `\n` / `\r` as in the
//! extension rather than break the line. Extension keys are the field keys
//! ([`crate::message::valid_field_key`]), after five of CEF's own:
//! `rt` (event time, ms since the epoch), `dvchost`, `deviceProcessName`,
//! `externalId` (the message id, for deduplication) and `cat` (MSGID).

use std::fmt::Write as _;

use crate::message::SiemMessage;

/// CEF Device Vendor.
pub const DEVICE_VENDOR: &str = "Pumpward";
/// CEF Device Product.
pub const DEVICE_PRODUCT: &str = "Pumpward";
/// CEF Device Version: this crate's version.
pub const DEVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Appends `v` escaped as a CEF header field.
pub fn escape_header(v: &str, out: &mut String) {
    escape_with(v, out, |b| match b {
        b'\\' => Some("\\\\"),
        b'|' => Some("\\|"),
        b'\n' => Some("\\n"),
        b'\r' => Some("\\r"),
        _ => None,
    });
}

/// Appends `v` escaped as a CEF extension value.
pub fn escape_extension(v: &str, out: &mut String) {
    escape_with(v, out, |b| match b {
        b'\\' => Some("\\\\"),
        b'=' => Some("\\="),
        b'\n' => Some("\\n"),
        b'\r' => Some("\\r"),
        _ => None,
    });
}

/// Copies `v`, replacing the ASCII bytes `esc` maps (never inside a
/// multi-byte character, since those bytes are all ≥ 0x80).
fn escape_with(v: &str, out: &mut String, esc: impl Fn(u8) -> Option<&'static str>) {
    let mut start = 0;
    for (i, b) in v.bytes().enumerate() {
        if let Some(rep) = esc(b) {
            out.push_str(&v[start..i]);
            out.push_str(rep);
            start = i + 1;
        }
    }
    out.push_str(&v[start..]);
}

/// The CEF body for `msg` (which must be valid).
pub fn cef(msg: &SiemMessage) -> String {
    let mut out = String::with_capacity(384);
    cef_into(msg, &mut out);
    out
}

/// [`cef`] appended to `out`.
pub fn cef_into(msg: &SiemMessage, out: &mut String) {
    out.push_str("CEF:0|");
    for part in [DEVICE_VENDOR, DEVICE_PRODUCT, DEVICE_VERSION] {
        escape_header(part, out);
        out.push('|');
    }
    escape_header(&msg.signature_id, out);
    out.push('|');
    escape_header(&msg.name, out);
    let ms = msg.time.unix_timestamp_nanos() / 1_000_000;
    let _ = write!(out, "|{}|rt={ms}", msg.severity.cef());
    let mut ext = |k: &str, v: &str| {
        out.push(' ');
        out.push_str(k);
        out.push('=');
        escape_extension(v, out);
    };
    ext("dvchost", &msg.host);
    ext("deviceProcessName", &msg.app_name);
    ext("externalId", &msg.id);
    ext("cat", &msg.msg_id);
    for (k, v) in &msg.fields {
        ext(k, v);
    }
}
