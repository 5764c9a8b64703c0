//! Shared test helpers: sample alerts, a strategy for arbitrary valid
//! messages, the reference parsers, and the skip-or-fail rule for real
//! peers.

#![allow(dead_code)]

pub mod pki;
pub mod reference;
pub mod rsyslog;

use proptest::prelude::*;
use pumpward_siem::{Severity, SiemMessage};

/// A realistic alert, with characters every format must escape.
pub fn sample_alert(n: usize) -> SiemMessage {
    SiemMessage {
        id: format!("alert-{n:06}"),
        time: time::macros::datetime!(2026-11-26 15:04:05.123456 UTC)
            + time::Duration::milliseconds(n as i64),
        severity: Severity::ALL[n % 5],
        host: "pumpward-01.hospital.example".into(),
        app_name: "pumpward".into(),
        msg_id: "alert".into(),
        signature_id: "druglib.hash_mismatch".into(),
        name: format!("Drug library mismatch | pump {n} \\ ICU"),
        fields: vec![
            ("asset_id".into(), format!("PUMP-{n:04}")),
            ("care_area".into(), "adult-icu".into()),
            ("expected".into(), "sha256=9f86d081 \"quoted\" [x]".into()),
            ("note".into(), "line one\nline two = ok \\ done]".into()),
            ("seq".into(), n.to_string()),
        ],
    }
}

/// True when the real peer may be missing (prints why); panics under CI,
/// where a skipped peer would hide a broken export.
pub fn skip(what: &str, reason: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is required under CI: {reason}");
    }
    eprintln!("SKIPPED ({what}): {reason}");
    true
}

fn text(max: usize) -> impl Strategy<Value = String> {
    // Mostly the characters that need escaping, plus any Unicode.
    proptest::collection::vec(
        prop_oneof![
            3 => proptest::sample::select(vec!['\\', '|', '=', '"', ']', '[', '\n', '\r', ' ', 'a', 'Z', '0']),
            1 => any::<char>(),
        ],
        0..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn token(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::char::range('!', '~'), 1..max)
        .prop_map(|v| v.into_iter().collect())
}

/// Any message that passes `validate`.
pub fn any_message() -> impl Strategy<Value = SiemMessage> {
    (
        token(20),
        0i64..253_402_300_799,
        0u32..1_000_000,
        0usize..5,
        token(30),
        (token(10), token(10)),
        (
            text(30).prop_filter("non-empty", |s| !s.is_empty()),
            text(40).prop_filter("non-empty", |s| !s.is_empty()),
        ),
        proptest::collection::btree_map("[a-z][a-z0-9_]{0,10}", text(30), 0..6),
    )
        .prop_filter_map(
            "valid",
            |(id, secs, micros, sev, host, (app, msgid), (sig, name), fields)| {
                let time = time::OffsetDateTime::from_unix_timestamp(secs).ok()?
                    + time::Duration::microseconds(i64::from(micros));
                let m = SiemMessage {
                    id,
                    time,
                    severity: Severity::ALL[sev],
                    host,
                    app_name: app,
                    msg_id: msgid,
                    signature_id: sig,
                    name,
                    fields: fields
                        .into_iter()
                        .filter(|(k, _)| k != "rt" && k != "cat" && k != "msg")
                        .collect(),
                };
                m.validate().ok().map(|()| m)
            },
        )
}
