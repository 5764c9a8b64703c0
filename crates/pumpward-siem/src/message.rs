//! What is handed to the exporter: one alert or event, already reduced to
//! the facts every SIEM format carries.
//!
//! The detection engine (or any other producer) builds a [`SiemMessage`]
//! and calls [`SiemMessage::validate`] (the exporter does it again before
//! queueing). The formatters never fail on a valid message, so an invalid
//! one is refused at the door with the field at fault, not half-way through
//! a delivery.

use serde::ser::{Serialize, SerializeMap, Serializer};
use time::OffsetDateTime;

/// How urgent the alert or event is, in the words the SOC uses. Each
/// format maps it to its own scale: [`Severity::syslog`] (RFC 5424, 0–7,
/// lower is worse) and [`Severity::cef`] (0–10, higher is worse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Informational: an event, no action expected.
    Info,
    /// Worth a look when convenient.
    Low,
    /// Needs review this shift.
    Medium,
    /// Needs action now (e.g. a library hash mismatch on a pump in use).
    High,
    /// Patient safety or the whole fleet at risk.
    Critical,
}

impl Severity {
    /// Every severity, least urgent first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The name used in JSON bodies and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// RFC 5424 severity: critical → 2 (Critical), high → 3 (Error),
    /// medium → 4 (Warning), low → 5 (Notice), info → 6 (Informational).
    /// Emergency (0) and Alert (1) are left to the host itself: a pump
    /// alert never means the SIEM's own system is unusable.
    pub fn syslog(self) -> u8 {
        match self {
            Severity::Critical => 2,
            Severity::High => 3,
            Severity::Medium => 4,
            Severity::Low => 5,
            Severity::Info => 6,
        }
    }

    /// CEF severity (0–10). ArcSight reads 0–3 as Low, 4–6 Medium, 7–8
    /// High and 9–10 Very-High; each of ours lands inside its band.
    pub fn cef(self) -> u8 {
        match self {
            Severity::Info => 0,
            Severity::Low => 3,
            Severity::Medium => 5,
            Severity::High => 8,
            Severity::Critical => 10,
        }
    }
}

/// One alert or event for the SIEM. See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiemMessage {
    /// Stable identifier (the alert or event id). The same message
    /// delivered twice carries the same id, so the SIEM can drop the
    /// duplicate that at-least-once delivery may produce.
    pub id: String,
    /// When it happened (not when it was sent).
    pub time: OffsetDateTime,
    /// How urgent.
    pub severity: Severity,
    /// The Pumpward server that raised it (RFC 5424 HOSTNAME, CEF
    /// `dvchost`): printable ASCII, no spaces, at most 255 bytes.
    pub host: String,
    /// The application (RFC 5424 APP-NAME), normally `pumpward`: printable
    /// ASCII, no spaces, at most 48 bytes.
    pub app_name: String,
    /// The kind of message (RFC 5424 MSGID, CEF `cat`), e.g. `alert` or
    /// `event`: printable ASCII, no spaces, at most 32 bytes.
    pub msg_id: String,
    /// What raised it: the rule id for an alert, the event type for an
    /// event (CEF Signature ID), e.g. `druglib.hash_mismatch`.
    pub signature_id: String,
    /// One line for a person: the alert's title (CEF Name).
    pub name: String,
    /// The evidence, in order: asset id, care area, observed and expected
    /// values … Keys are 1–32 characters of `[A-Za-z0-9_]` starting with a
    /// letter, unique, and not one of [`RESERVED_KEYS`]; values are any
    /// text.
    pub fields: Vec<(String, String)>,
}

/// Field keys the formats use for the message's own facts (CEF extension
/// keys), so a field may not take them.
pub const RESERVED_KEYS: [&str; 6] = [
    "rt",
    "dvchost",
    "deviceProcessName",
    "externalId",
    "cat",
    "msg",
];

/// The most fields a message may carry.
pub const MAX_FIELDS: usize = 64;

/// The longest text (id, signature id, name or field value), in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// Why a message cannot be exported; `field` names the member at fault
/// (`fields[3].key` for the fourth field's key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct MessageError {
    /// The member at fault.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

fn refuse(field: impl Into<String>, problem: impl Into<String>) -> MessageError {
    MessageError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// RFC 5424 header fields are 1*N PRINTUSASCII (33–126).
fn check_header_token(field: &str, value: &str, max: usize) -> Result<(), MessageError> {
    if value.is_empty() {
        return Err(refuse(field, "is empty"));
    }
    if value.len() > max {
        return Err(refuse(
            field,
            format!("is {} bytes; at most {max}", value.len()),
        ));
    }
    if let Some((at, c)) = value.char_indices().find(|(_, c)| !('!'..='~').contains(c)) {
        return Err(refuse(
            field,
            format!("character {c:?} at byte {at} is not printable ASCII without spaces"),
        ));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, may_be_empty: bool) -> Result<(), MessageError> {
    if !may_be_empty && value.is_empty() {
        return Err(refuse(field, "is empty"));
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(refuse(
            field,
            format!("is {} bytes; at most {MAX_TEXT_BYTES}", value.len()),
        ));
    }
    Ok(())
}

/// Whether `key` may name a field (the same rule for CEF extension keys,
/// RFC 5424 PARAM-NAMEs and JSON members).
pub fn valid_field_key(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl SiemMessage {
    /// Checks every member; the first problem is returned.
    pub fn validate(&self) -> Result<(), MessageError> {
        check_text("id", &self.id, false)?;
        if self.id.chars().any(char::is_control) {
            return Err(refuse("id", "contains a control character"));
        }
        check_header_token("host", &self.host, 255)?;
        check_header_token("app_name", &self.app_name, 48)?;
        check_header_token("msg_id", &self.msg_id, 32)?;
        check_text("signature_id", &self.signature_id, false)?;
        check_text("name", &self.name, false)?;
        if !(0..=9999).contains(&self.time.to_offset(time::UtcOffset::UTC).year()) {
            return Err(refuse("time", "year outside 0000–9999"));
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(refuse(
                "fields",
                format!("{} fields; at most {MAX_FIELDS}", self.fields.len()),
            ));
        }
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if !valid_field_key(k) {
                return Err(refuse(
                    format!("fields[{i}].key"),
                    format!("{k:?} is not 1–32 of [A-Za-z0-9_] starting with a letter"),
                ));
            }
            if RESERVED_KEYS.contains(&k.as_str()) {
                return Err(refuse(
                    format!("fields[{i}].key"),
                    format!("{k:?} is reserved for the message's own facts"),
                ));
            }
            if self.fields[..i].iter().any(|(earlier, _)| earlier == k) {
                return Err(refuse(
                    format!("fields[{i}].key"),
                    format!("{k:?} appears twice"),
                ));
            }
            check_text(&format!("fields[{i}].value"), v, true)?;
        }
        Ok(())
    }

    /// The value of field `key`, if present.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The JSON body's schema name; a receiver can route on it.
pub const JSON_SCHEMA: &str = "pumpward.siem/1";

/// The JSON body: one object, members in a fixed order, `fields` as an
/// object in the message's order, time in RFC 3339 UTC with microseconds.
///
/// ```text
/// {"schema":"pumpward.siem/1","id":"…","time":"2026-11-26T15:04:05.000123Z",
///  "severity":"high","host":"…","app":"pumpward","msg_id":"alert",
///  "signature_id":"…","name":"…","fields":{"asset_id":"…",…}}
/// ```
pub fn json_body(msg: &SiemMessage) -> String {
    let mut out = String::with_capacity(256);
    json_body_into(msg, &mut out);
    out
}

/// [`json_body`] appended to `out`.
pub fn json_body_into(msg: &SiemMessage, out: &mut String) {
    // serde_json writes valid UTF-8 into a Vec; moving it into the String
    // avoids a second copy.
    let mut buf = std::mem::take(out).into_bytes();
    // A Vec writer cannot fail and the view has no map with non-string keys.
    if serde_json::to_writer(&mut buf, &JsonView(msg)).is_err() {
        buf.extend_from_slice(b"{}");
    }
    *out = String::from_utf8(buf).unwrap_or_default();
}

struct JsonView<'a>(&'a SiemMessage);
struct FieldsView<'a>(&'a [(String, String)]);

impl Serialize for FieldsView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for JsonView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut ts = String::with_capacity(27);
        crate::syslog::write_timestamp(m.time, &mut ts);
        let mut o = s.serialize_map(Some(10))?;
        o.serialize_entry("schema", JSON_SCHEMA)?;
        o.serialize_entry("id", &m.id)?;
        o.serialize_entry("time", &ts)?;
        o.serialize_entry("severity", m.severity.as_str())?;
        o.serialize_entry("host", &m.host)?;
        o.serialize_entry("app", &m.app_name)?;
        o.serialize_entry("msg_id", &m.msg_id)?;
        o.serialize_entry("signature_id", &m.signature_id)?;
        o.serialize_entry("name", &m.name)?;
        o.serialize_entry("fields", &FieldsView(&m.fields))?;
        o.end()
    }
}
