//! The event envelope at the boundary: what is accepted, and every refusal
//! counted under its reason.

use std::collections::BTreeMap;

use pumpward_detect::event::{
    decode_event, from_pump_event, Body, DoseOutcome, RejectCounters, RejectReason, Source,
};
use pumpward_proto::message::{self as proto, DoseCheck, DoseCheckResult, EventKind, PumpEvent};
use serde_json::{json, Value};
use time::OffsetDateTime;

const DIGEST: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn good() -> Value {
    json!({
        "schema_version": 1,
        "id": "pump:pump-0042:17",
        "occurred_at": "2026-11-26T10:00:00Z",
        "received_at": "2026-11-26T10:00:01Z",
        "source": "pump",
        "asset_id": "pump-0042",
        "care_area": "ICU",
        "body": {"kind": "dose_check", "result": "soft_override", "drug": "Heparin",
                 "override_reason": "bolus per protocol"}
    })
}

fn decode(
    v: &Value,
    c: &mut RejectCounters,
) -> Result<pumpward_detect::Event, pumpward_detect::Invalid> {
    decode_event(&serde_json::to_vec(v).unwrap(), c)
}

#[test]
fn a_good_event_decodes_and_round_trips() {
    let mut c = RejectCounters::default();
    let ev = decode(&good(), &mut c).unwrap();
    assert_eq!(ev.source, Source::Pump);
    assert!(matches!(
        ev.body,
        Body::DoseCheck { result: DoseOutcome::SoftOverride, ref override_reason, .. }
            if override_reason.as_deref() == Some("bolus per protocol")
    ));
    let again = decode(&serde_json::to_value(&ev).unwrap(), &mut c).unwrap();
    assert_eq!(again, ev);
    assert_eq!(c.total(), 0);
}

#[test]
fn every_refusal_is_counted_under_its_reason() {
    let mut cases: Vec<(Value, RejectReason, &str)> = Vec::new();
    let mut v = good();
    v["colour"] = json!("red");
    cases.push((v, RejectReason::UnknownField, "colour"));
    let mut v = good();
    v["body"]["colour"] = json!("red");
    cases.push((v, RejectReason::UnknownField, "colour"));
    let mut v = good();
    v["body"] = json!({"kind": "teleport"});
    cases.push((v, RejectReason::UnknownKind, "teleport"));
    let mut v = good();
    v["schema_version"] = json!(2);
    cases.push((v, RejectReason::UnsupportedSchemaVersion, "version 2"));
    let mut v = good();
    v["id"] = json!("has space");
    cases.push((v, RejectReason::InvalidField, "' '"));
    let mut v = good();
    v["asset_id"] = json!("bad/asset");
    cases.push((v, RejectReason::InvalidField, "'/'"));
    let mut v = good();
    v["source"] = json!("network");
    cases.push((v, RejectReason::SourceMismatch, "dose_check"));
    let mut v = good();
    v.as_object_mut().unwrap().remove("asset_id");
    cases.push((v, RejectReason::MissingAsset, "asset"));
    let mut v = good();
    v["occurred_at"] = json!("2026-11-26T11:00:00Z");
    cases.push((v, RejectReason::ClockSkew, "3599 s"));
    let mut v = good();
    v["body"] = json!({"kind": "library_installed", "version": "1", "digest": "ABC"});
    cases.push((v, RejectReason::InvalidField, "64 hex"));
    let mut v = good();
    v["care_area"] = json!("x".repeat(200));
    cases.push((v, RejectReason::InvalidField, "1 to 128"));

    let mut c = RejectCounters::default();
    for (i, (v, reason, needle)) in cases.iter().enumerate() {
        let e = decode(v, &mut c).unwrap_err();
        assert_eq!(e.reason, *reason, "case {i}: {e}");
        assert!(e.to_string().contains(needle), "case {i}: {e}");
    }
    assert_eq!(c.total(), cases.len() as u64);
    assert_eq!(c.get(RejectReason::UnknownField), 2);

    let e = decode_event(b"{not json", &mut c).unwrap_err();
    assert_eq!(e.reason, RejectReason::MalformedJson);
    assert_eq!(e.path, "1:2");
    let big = vec![b' '; 20_000];
    assert_eq!(
        decode_event(&big, &mut c).unwrap_err().reason,
        RejectReason::TooLarge
    );
    assert_eq!(c.get(RejectReason::MalformedJson), 1);
    assert_eq!(c.get(RejectReason::TooLarge), 1);
}

#[test]
fn pump_events_convert_from_the_device_protocol() {
    let at = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let mut detail = BTreeMap::new();
    detail.insert("override_reason".to_string(), "titration".to_string());
    let pe = PumpEvent {
        seq: 17,
        at,
        kind: EventKind::DoseCheck(DoseCheck {
            result: DoseCheckResult::SoftOverride,
            drug: "Heparin".into(),
            care_area: "ICU".into(),
            dose: None,
            limit: None,
            limit_kind: None,
            infusion_id: None,
            library_version: Some("2026.11".into()),
            override_reason: None,
        }),
        detail,
    };
    let ev = from_pump_event(
        &pe,
        "pump-0042".parse().unwrap(),
        "Plum 360",
        // The inventory still says NICU; the pump's dose check applied ICU.
        Some("NICU".into()),
        at,
    )
    .unwrap();
    assert_eq!(ev.id, "pump:pump-0042:17");
    assert_eq!(ev.care_area.as_deref(), Some("ICU"));
    ev.validate().unwrap();
    assert!(
        matches!(ev.body, Body::DoseCheck { result: DoseOutcome::SoftOverride, ref override_reason, .. } if override_reason.as_deref() == Some("titration"))
    );

    // A programming without a drug stays a programming; the pump's dose
    // check says "basic infusion" (counted once, not twice).
    let programmed = PumpEvent {
        seq: 18,
        at,
        kind: EventKind::InfusionProgrammed(proto::Infusion {
            infusion_id: "inf-1".into(),
            drug: None,
            rate: None,
            vtbi: None,
            cause: None,
        }),
        detail: BTreeMap::new(),
    };
    let ev = from_pump_event(
        &programmed,
        "pump-0042".parse().unwrap(),
        "Plum 360",
        Some("NICU".into()),
        at,
    )
    .unwrap();
    assert!(matches!(ev.body, Body::InfusionProgrammed { .. }));
    // Other events keep the inventory's care area.
    assert_eq!(ev.care_area.as_deref(), Some("NICU"));
    let basic = PumpEvent {
        seq: 18,
        at,
        kind: EventKind::DoseCheck(DoseCheck {
            result: DoseCheckResult::BasicInfusion,
            drug: "Morphine".into(),
            care_area: "ICU".into(),
            dose: None,
            limit: None,
            limit_kind: None,
            infusion_id: None,
            library_version: None,
            override_reason: Some("not in library".into()),
        }),
        detail: BTreeMap::new(),
    };
    let ev = from_pump_event(&basic, "pump-0042".parse().unwrap(), "Plum 360", None, at).unwrap();
    assert!(matches!(
        ev.body,
        Body::DoseCheck {
            result: DoseOutcome::BasicInfusion,
            ref override_reason,
            ..
        } if override_reason.as_deref() == Some("not in library")
    ));

    let fw = PumpEvent {
        seq: 19,
        at,
        kind: EventKind::FirmwareChanged {
            from: None,
            to: "15.1".into(),
            digest: DIGEST.into(),
        },
        detail: BTreeMap::new(),
    };
    let ev = from_pump_event(&fw, "pump-0042".parse().unwrap(), "Plum 360", None, at).unwrap();
    assert!(matches!(ev.body, Body::FirmwareChanged { ref model, .. } if model == "Plum 360"));

    let dropped = PumpEvent {
        seq: 20,
        at,
        kind: EventKind::EventsDropped { count: 3 },
        detail: BTreeMap::new(),
    };
    assert!(from_pump_event(&dropped, "pump-0042".parse().unwrap(), "m", None, at).is_none());
}
