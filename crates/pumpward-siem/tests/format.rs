//! Formatting: golden messages, and properties through the reference
//! parsers (every field comes back exactly; framing lengths are exact).

mod common;

use common::reference::{parse_5424, parse_cef, split_frames};
use common::{any_message, sample_alert};
use proptest::prelude::*;
use pumpward_siem::syslog::{
    frame_into, rfc5424, write_timestamp, BodyFormat, Facility, SyslogOptions,
};
use pumpward_siem::{cef, json_body, Severity, SiemMessage};

fn golden() -> SiemMessage {
    SiemMessage {
        id: "a-17".into(),
        time: time::macros::datetime!(2026-11-26 15:04:05.000123 +01:00),
        severity: Severity::High,
        host: "pw1".into(),
        app_name: "pumpward".into(),
        msg_id: "alert".into(),
        signature_id: "druglib.hash_mismatch".into(),
        name: "Library | hash \\ mismatch".into(),
        fields: vec![
            ("asset_id".into(), "PUMP-0042".into()),
            ("detail".into(), "a=b \"q\" ]\nnext".into()),
        ],
    }
}

#[test]
fn golden_cef() {
    assert_eq!(
        cef::cef(&golden()),
        "CEF:0|Pumpward|Pumpward|0.1.0|druglib.hash_mismatch|Library \\| hash \\\\ mismatch|8|\
         rt=1795701845000 dvchost=pw1 deviceProcessName=pumpward externalId=a-17 cat=alert \
         asset_id=PUMP-0042 detail=a\\=b \"q\" ]\\nnext"
    );
}

#[test]
fn golden_rfc5424_with_cef_body() {
    // local4 (20) × 8 + Error (3) = 163; the time is converted to UTC.
    assert_eq!(
        rfc5424(&golden(), &SyslogOptions::default()),
        "<163>1 2026-11-26T14:04:05.000123Z pw1 pumpward - alert [pumpward@32473 id=\"a-17\" \
         signature=\"druglib.hash_mismatch\" severity=\"high\" asset_id=\"PUMP-0042\" \
         detail=\"a=b \\\"q\\\" \\]\nnext\"] \u{FEFF}CEF:0|Pumpward|Pumpward|0.1.0|\
         druglib.hash_mismatch|Library \\| hash \\\\ mismatch|8|rt=1795701845000 dvchost=pw1 \
         deviceProcessName=pumpward externalId=a-17 cat=alert asset_id=PUMP-0042 \
         detail=a\\=b \"q\" ]\\nnext"
    );
}

#[test]
fn golden_rfc5424_with_json_body_and_options() {
    let opts = SyslogOptions {
        facility: Facility::AUTH,
        procid: Some("4711".into()),
        sd_id: "pumpward@99999".into(),
        bom: false,
        body: BodyFormat::Json,
    };
    let mut m = golden();
    m.severity = Severity::Info;
    m.fields.truncate(1);
    assert_eq!(
        rfc5424(&m, &opts),
        "<38>1 2026-11-26T14:04:05.000123Z pw1 pumpward 4711 alert [pumpward@99999 id=\"a-17\" \
         signature=\"druglib.hash_mismatch\" severity=\"info\" asset_id=\"PUMP-0042\"] \
         {\"schema\":\"pumpward.siem/1\",\"id\":\"a-17\",\"time\":\"2026-11-26T14:04:05.000123Z\",\
         \"severity\":\"info\",\"host\":\"pw1\",\"app\":\"pumpward\",\"msg_id\":\"alert\",\
         \"signature_id\":\"druglib.hash_mismatch\",\"name\":\"Library | hash \\\\ mismatch\",\
         \"fields\":{\"asset_id\":\"PUMP-0042\"}}"
    );
}

#[test]
fn severity_scales() {
    let syslog: Vec<u8> = Severity::ALL.iter().map(|s| s.syslog()).collect();
    let cef: Vec<u8> = Severity::ALL.iter().map(|s| s.cef()).collect();
    assert_eq!(syslog, [6, 5, 4, 3, 2]);
    assert_eq!(cef, [0, 3, 5, 8, 10]);
    assert_eq!(Facility::from_name("local4"), Some(Facility::LOCAL4));
    assert_eq!(Facility::from_name("local7").map(Facility::code), Some(23));
    assert_eq!(Facility::new(24), None);
}

#[test]
fn invalid_messages_name_the_field() {
    type Breakage = fn(&mut SiemMessage);
    let cases: Vec<(Breakage, &str)> = vec![
        (|m| m.host = "pw 1".into(), "host"),
        (|m| m.host.clear(), "host"),
        (|m| m.msg_id = "x".repeat(33), "msg_id"),
        (|m| m.app_name = "pumpwärd".into(), "app_name"),
        (|m| m.id = "a\nb".into(), "id"),
        (|m| m.name.clear(), "name"),
        (
            |m| m.fields.push(("bad key".into(), "v".into())),
            "fields[2].key",
        ),
        (
            |m| m.fields.push(("rt".into(), "v".into())),
            "fields[2].key",
        ),
        (
            |m| m.fields.push(("asset_id".into(), "v".into())),
            "fields[2].key",
        ),
        (
            |m| m.fields.push(("big".into(), "v".repeat(4097))),
            "fields[2].value",
        ),
        (
            |m| m.time = time::macros::datetime!(-0001-01-01 0:00 UTC),
            "time",
        ),
    ];
    for (break_it, field) in cases {
        let mut m = golden();
        break_it(&mut m);
        let e = m.validate().unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
    assert_eq!(golden().validate(), Ok(()));
}

#[test]
fn timestamp_is_fixed_width_utc() {
    let mut s = String::new();
    write_timestamp(time::macros::datetime!(0001-02-03 04:05:06 -02:30), &mut s);
    assert_eq!(s, "0001-02-03T06:35:06.000000Z");
}

#[test]
fn the_sample_alert_round_trips() {
    let m = sample_alert(3);
    let s = parse_5424(&rfc5424(&m, &SyslogOptions::default())).unwrap();
    assert_eq!(s.params[3..], m.fields[..]);
    let c = parse_cef(&s.msg).unwrap();
    assert_eq!(c.name, m.name);
}

fn check_round_trip(m: &SiemMessage, opts: &SyslogOptions) -> Result<(), TestCaseError> {
    let text = rfc5424(m, opts);
    let s = parse_5424(&text).map_err(TestCaseError::fail)?;
    prop_assert_eq!(
        s.pri,
        u16::from(opts.facility.code()) * 8 + u16::from(m.severity.syslog())
    );
    prop_assert_eq!(s.version, 1);
    let parsed_time =
        time::OffsetDateTime::parse(&s.timestamp, &time::format_description::well_known::Rfc3339)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(parsed_time, m.time);
    prop_assert_eq!(&s.hostname, &m.host);
    prop_assert_eq!(&s.app_name, &m.app_name);
    prop_assert_eq!(&s.msgid, &m.msg_id);
    prop_assert_eq!(&s.sd_id, &opts.sd_id);
    let mut want = vec![
        ("id".to_string(), m.id.clone()),
        ("signature".to_string(), m.signature_id.clone()),
        ("severity".to_string(), m.severity.as_str().to_string()),
    ];
    want.extend(m.fields.iter().cloned());
    prop_assert_eq!(&s.params, &want);
    prop_assert_eq!(s.bom, opts.bom);
    match opts.body {
        BodyFormat::Cef => {
            let c = parse_cef(&s.msg).map_err(TestCaseError::fail)?;
            prop_assert_eq!(&c.vendor, "Pumpward");
            prop_assert_eq!(&c.signature_id, &m.signature_id);
            prop_assert_eq!(&c.name, &m.name);
            prop_assert_eq!(c.severity, m.severity.cef().to_string());
            let mut want = vec![
                (
                    "rt".to_string(),
                    (m.time.unix_timestamp_nanos() / 1_000_000).to_string(),
                ),
                ("dvchost".to_string(), m.host.clone()),
                ("deviceProcessName".to_string(), m.app_name.clone()),
                ("externalId".to_string(), m.id.clone()),
                ("cat".to_string(), m.msg_id.clone()),
            ];
            want.extend(m.fields.iter().cloned());
            prop_assert_eq!(c.extension, want);
            // A CEF body is one line whatever the fields hold.
            prop_assert!(!s.msg.contains('\n') && !s.msg.contains('\r'));
        }
        BodyFormat::Json => {
            let v: serde_json::Value =
                serde_json::from_str(&s.msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(v["id"].as_str(), Some(m.id.as_str()));
            prop_assert_eq!(v["name"].as_str(), Some(m.name.as_str()));
            let fields = v["fields"].as_object().cloned().unwrap_or_default();
            let got: Vec<(String, String)> = fields
                .into_iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
                .collect();
            let mut sorted = m.fields.clone();
            sorted.sort();
            prop_assert_eq!(got, sorted);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn rfc5424_and_cef_round_trip(m in any_message(), bom: bool) {
        check_round_trip(&m, &SyslogOptions { bom, ..SyslogOptions::default() })?;
    }

    #[test]
    fn rfc5424_and_json_round_trip(m in any_message(), bom: bool) {
        check_round_trip(&m, &SyslogOptions { bom, body: BodyFormat::Json, ..SyslogOptions::default() })?;
    }

    #[test]
    fn json_body_matches_serde(m in any_message()) {
        let v: serde_json::Value = serde_json::from_str(&json_body(&m)).unwrap();
        prop_assert_eq!(v["schema"].as_str(), Some("pumpward.siem/1"));
        prop_assert_eq!(v["severity"].as_str(), Some(m.severity.as_str()));
        prop_assert_eq!(v["host"].as_str(), Some(m.host.as_str()));
    }

    /// `LEN SP MSG` with LEN the exact byte count, for any bytes, and a
    /// stream of frames splits back into the same messages.
    #[test]
    fn framing_lengths_are_exact(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut stream = Vec::new();
        for m in &msgs {
            let mut one = Vec::new();
            frame_into(m, &mut one);
            let digits = m.len().to_string();
            prop_assert_eq!(one.len(), digits.len() + 1 + m.len());
            prop_assert_eq!(&one[..digits.len()], digits.as_bytes());
            prop_assert_eq!(one[digits.len()], b' ');
            stream.extend_from_slice(&one);
        }
        let split = split_frames(&stream).unwrap();
        prop_assert_eq!(split, msgs.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }
}
