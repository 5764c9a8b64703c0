use super::*;
use crate::examples;
use proptest::prelude::*;
use serde_json::json;

fn pump(v: Value) -> Result<PumpMessage, MessageError> {
    parse_pump_message(v.to_string().as_bytes(), Some(1))
}

fn gateway(v: Value) -> Result<GatewayMessage, MessageError> {
    parse_gateway_message(v.to_string().as_bytes(), Some(1))
}

fn invalid(r: Result<impl std::fmt::Debug, MessageError>) -> ValidationError {
    match r {
        Err(MessageError::Invalid(v)) => v,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn hello_json() -> Value {
    let mut v = serde_json::to_value(PumpMessage::Hello(examples::hello())).unwrap();
    v["v"] = json!(1);
    v
}

fn batch_json(events: Value) -> Value {
    json!({"type": "event_batch", "v": 1, "events": events})
}

fn event(seq: u64) -> Value {
    json!({"seq": seq, "at": "2025-05-14T09:30:00Z", "kind": "alarm", "alarm": "occlusion"})
}

#[test]
fn every_sample_round_trips() {
    for m in examples::pump_messages() {
        m.validate().unwrap();
        let payload = m.to_payload(1).unwrap();
        assert!(
            payload.starts_with(b"{\"v\":1,\"type\":\""),
            "{}",
            String::from_utf8_lossy(&payload)
        );
        assert_eq!(parse_pump_message(&payload, Some(1)).unwrap(), m);
        assert_eq!(parse_pump_message(&payload, None).unwrap(), m);
    }
    for m in examples::gateway_messages() {
        m.validate().unwrap();
        let payload = m.to_payload(1).unwrap();
        assert_eq!(parse_gateway_message(&payload, Some(1)).unwrap(), m);
    }
}

#[test]
fn known_kind_lists_match_the_enums() {
    for e in examples::events(1) {
        let v = serde_json::to_value(&e).unwrap();
        assert!(EventKind::KNOWN.contains(&v["kind"].as_str().unwrap()));
    }
    assert_eq!(
        examples::events(1).len() + 1,
        EventKind::KNOWN.len(),
        "a sample per kind"
    );
    for m in examples::gateway_messages() {
        if let GatewayMessage::Command(c) = m {
            let v = serde_json::to_value(&c.command).unwrap();
            assert!(Command::KNOWN.contains(&v["kind"].as_str().unwrap()));
        }
    }
}

#[test]
fn envelope_errors_are_distinguished() {
    assert!(matches!(
        parse_pump_message(b"{", None),
        Err(MessageError::Malformed(_))
    ));
    assert!(
        matches!(parse_pump_message(b"[1]", None), Err(MessageError::Malformed(m)) if m == "not a JSON object")
    );
    assert!(matches!(pump(json!({"v": 1})), Err(MessageError::Malformed(m)) if m.contains("type")));
    assert!(matches!(
        pump(json!({"type": 3, "v": 1})),
        Err(MessageError::Malformed(_))
    ));
    assert!(
        matches!(pump(json!({"type": "heartbeat"})), Err(MessageError::Malformed(m)) if m.contains("\"v\""))
    );
    assert!(matches!(
        pump(json!({"type": "heartbeat", "v": 0})),
        Err(MessageError::Malformed(_))
    ));
    assert!(matches!(
        pump(json!({"type": "heartbeat", "v": 70000})),
        Err(MessageError::Malformed(_))
    ));
    assert!(matches!(
        pump(json!({"type": "heartbeat", "v": -1})),
        Err(MessageError::Malformed(_))
    ));
    assert_eq!(
        pump(json!({"type": "firmware_chunk", "v": 1})),
        Err(MessageError::UnknownType("firmware_chunk".into()))
    );
    let long = "x".repeat(500);
    assert!(
        matches!(pump(json!({"type": long, "v": 1})), Err(MessageError::UnknownType(t)) if t.len() == 64)
    );
    assert_eq!(
        pump(json!({"type": "heartbeat", "v": 2})),
        Err(MessageError::VersionMismatch {
            got: 2,
            expected: 1
        })
    );
    assert_eq!(
        parse_pump_message(br#"{"type":"heartbeat","v":2}"#, None),
        Err(MessageError::UnsupportedVersion {
            got: 2,
            supported: vec![1]
        })
    );
    let r = MessageError::UnsupportedVersion {
        got: 2,
        supported: vec![1],
    }
    .refusal();
    assert_eq!(
        (r.code, r.fatal, r.supported_versions),
        (RefusalCode::UnsupportedVersion, true, vec![1])
    );
}

#[test]
fn hello_is_read_in_any_version_and_negotiated() {
    let mut h = hello_json();
    h["v"] = json!(3);
    h["versions"] = json!([3, 2, 1]);
    h["new_field_of_v3"] = json!({"anything": [1, 2]});
    let PumpMessage::Hello(hello) = pump(h).unwrap() else {
        panic!()
    };
    assert_eq!(negotiate(&hello.versions, SUPPORTED_VERSIONS), Some(1));
    assert_eq!(negotiate(&[2, 3], SUPPORTED_VERSIONS), None);
    assert_eq!(negotiate(&[1, 2, 3], &[1, 2]), Some(2));
}

#[test]
fn hello_fields_are_checked_precisely() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/firmware/digest", json!("abc"), "firmware.digest"),
        (
            "/firmware/digest",
            json!(examples::DIGEST.to_uppercase()),
            "firmware.digest",
        ),
        (
            "/library/digest",
            json!(format!("{}0", examples::DIGEST)),
            "library.digest",
        ),
        ("/network/mac", json!("00-1b-44-11-3a-b7"), "network.mac"),
        ("/network/hostname", json!("pump_42"), "network.hostname"),
        ("/network/ssid", json!("x".repeat(33)), "network.ssid"),
        ("/care_area", json!(""), "care_area"),
        ("/care_area", json!("ICU\u{7}"), "care_area"),
        (
            "/firmware/version",
            json!("v".repeat(129)),
            "firmware.version",
        ),
        ("/versions", json!([]), "versions"),
        ("/versions", json!([1, 1]), "versions[1]"),
        ("/next_seq", json!(0), "next_seq"),
    ];
    for (ptr, value, path) in cases {
        let mut h = hello_json();
        *h.pointer_mut(ptr).unwrap() = value;
        assert_eq!(invalid(pump(h)).path, path, "{ptr}");
    }
    let mut h = hello_json();
    h["network"]["ip"] = json!("10.0.0.300");
    let e = invalid(pump(h));
    assert_eq!(e.path, "hello");
    assert!(e.problem.contains("invalid IP address"), "{e}");
    let mut h = hello_json();
    h.as_object_mut().unwrap().remove("firmware");
    assert!(invalid(pump(h))
        .problem
        .contains("missing field `firmware`"));
}

#[test]
fn heartbeat_bounds() {
    let mut h = serde_json::to_value(PumpMessage::Heartbeat(examples::heartbeat())).unwrap();
    h["v"] = json!(1);
    h["infusion"] = json!("priming");
    let PumpMessage::Heartbeat(hb) = pump(h.clone()).unwrap() else {
        panic!()
    };
    assert_eq!(hb.infusion, InfusionState::Unknown);
    h["battery_pct"] = json!(101);
    assert_eq!(invalid(pump(h.clone())).path, "battery_pct");
    h["battery_pct"] = json!(300);
    assert!(invalid(pump(h)).problem.contains("300"));
}

#[test]
fn batch_rules() {
    assert_eq!(invalid(pump(batch_json(json!([])))).path, "events");
    assert_eq!(
        invalid(pump(json!({"type": "event_batch", "v": 1}))).path,
        "events"
    );
    assert_eq!(invalid(pump(batch_json(json!({"0": 1})))).path, "events");
    let many: Vec<Value> = (1..=1001).map(event).collect();
    assert!(invalid(pump(batch_json(json!(many))))
        .problem
        .contains("1001 events"));

    let e = invalid(pump(batch_json(json!([event(5), event(7), event(7)]))));
    assert_eq!(
        (e.path.as_str(), e.seq, e.not_increasing),
        ("events[2].seq", Some(7), true)
    );
    let r = MessageError::Invalid(e).refusal();
    assert_eq!(
        (r.code, r.seq, r.fatal),
        (RefusalCode::SequenceNotIncreasing, Some(7), false)
    );

    let e = invalid(pump(batch_json(json!([event(0)]))));
    assert_eq!(e.path, "events[0].seq");
    // The refusal does not name an invalid number (found by the fuzzer).
    let r = MessageError::Invalid(e).refusal();
    assert_eq!(r.seq, None);
    GatewayMessage::Refusal(r).validate().unwrap();
    let e = invalid(pump(batch_json(json!([event(MAX_SEQ + 1)]))));
    assert_eq!(e.path, "events[0].seq");
    // Gaps inside a batch are allowed.
    pump(batch_json(json!([event(5), event(9)]))).unwrap();
}

#[test]
fn event_errors_name_the_event() {
    let mut bad = event(12);
    bad["kind"] = json!("dose_check");
    let e = invalid(pump(batch_json(json!([event(11), bad]))));
    assert_eq!((e.path.as_str(), e.seq), ("events[1]", Some(12)));
    assert!(e.problem.contains("missing field"), "{e}");
    let r = MessageError::Invalid(e).refusal();
    assert_eq!((r.code, r.seq), (RefusalCode::InvalidMessage, Some(12)));

    let mut bad = event(3);
    bad["at"] = json!("yesterday");
    assert_eq!(invalid(pump(batch_json(json!([bad])))).path, "events[0]");

    let bad = json!({"seq": 4, "at": "2025-05-14T09:30:00Z", "kind": "dose_check", "result": "hard_block",
        "drug": "insulin", "care_area": "ICU", "dose": {"value": "1e3", "unit": "U/h"}});
    let e = invalid(pump(batch_json(json!([bad]))));
    assert_eq!((e.path.as_str(), e.seq), ("events[0].dose.value", Some(4)));

    let mut bad = event(4);
    bad["detail"] = json!({"Bad Key": "x"});
    assert_eq!(
        invalid(pump(batch_json(json!([bad])))).path,
        "events[0].detail"
    );
    let mut bad = event(4);
    bad["detail"] = json!((0..17)
        .map(|i| (format!("k{i}"), json!("v")))
        .collect::<Map<_, _>>());
    assert!(invalid(pump(batch_json(json!([bad]))))
        .problem
        .contains("17 entries"));
}

#[test]
fn unknown_things_are_kept_not_refused() {
    let newer = json!({"seq": 9, "at": "2025-05-14T09:30:00+02:00", "kind": "bolus_delivered",
        "volume": {"value": "2", "unit": "mL"}, "unknown_member": true});
    let mut alarm = event(10);
    alarm["alarm"] = json!("low_reservoir");
    let PumpMessage::EventBatch(b) = pump(batch_json(json!([newer, alarm]))).unwrap() else {
        panic!()
    };
    assert_eq!(
        b.events[0].kind,
        EventKind::Unrecognized {
            original_kind: "bolus_delivered".into()
        }
    );
    assert!(matches!(
        b.events[1].kind,
        EventKind::Alarm {
            alarm: AlarmKind::Other,
            ..
        }
    ));
    // Re-encoding keeps the original name.
    let again = pump(
        serde_json::from_slice(&PumpMessage::EventBatch(b.clone()).to_payload(1).unwrap()).unwrap(),
    );
    assert_eq!(again.unwrap(), PumpMessage::EventBatch(b));

    // An unknown kind must still be a sane name.
    let weird = json!({"seq": 9, "at": "2025-05-14T09:30:00Z", "kind": "Bolus Delivered!"});
    assert_eq!(
        invalid(pump(batch_json(json!([weird])))).path,
        "events[0].kind"
    );

    let cmd = gateway(json!({"type": "command", "v": 1, "id": "c-1",
        "command": {"kind": "reboot", "delay_s": 5}}))
    .unwrap();
    assert_eq!(
        cmd,
        GatewayMessage::Command(CommandMessage {
            id: "c-1".into(),
            command: Command::Unsupported {
                original_kind: "reboot".into()
            }
        })
    );
    let r = gateway(
        json!({"type": "refusal", "v": 4, "code": "quota_exceeded", "reason": "x", "fatal": true}),
    )
    .unwrap();
    assert!(matches!(
        r,
        GatewayMessage::Refusal(Refusal {
            code: RefusalCode::Unknown,
            fatal: true,
            ..
        })
    ));
}

#[test]
fn gateway_message_bounds() {
    let mut w = serde_json::to_value(GatewayMessage::Welcome(examples::welcome())).unwrap();
    w["v"] = json!(1);
    w["heartbeat_interval_s"] = json!(1);
    assert_eq!(invalid(gateway(w.clone())).path, "heartbeat_interval_s");
    w["heartbeat_interval_s"] = json!(60);
    w["max_frame_bytes"] = json!(10_000_000);
    assert_eq!(invalid(gateway(w)).path, "max_frame_bytes");
    assert_eq!(
        invalid(gateway(json!({"type": "ack", "v": 1, "up_to_seq": 0}))).path,
        "up_to_seq"
    );
    assert_eq!(
        invalid(gateway(
            json!({"type": "command", "v": 1, "id": "a b", "command": {"kind": "request_status"}})
        ))
        .path,
        "id"
    );
    let lib = json!({"type": "command", "v": 1, "id": "c", "command":
        {"kind": "drug_library_available", "version": "1", "digest": "00"}});
    assert_eq!(invalid(gateway(lib)).path, "command.digest");
}

#[test]
fn encode_batch_fits_the_frame() {
    let events: Vec<PumpEvent> = (0..100)
        .flat_map(|i| examples::events(1 + i * 13))
        .collect();
    let (payload, n) = encode_batch(&events, 1, 1000, 4096).unwrap();
    assert!(n > 0 && n < events.len());
    assert!(payload.len() <= 4096);
    let PumpMessage::EventBatch(b) = parse_pump_message(&payload, Some(1)).unwrap() else {
        panic!()
    };
    assert_eq!(b.events, events[..n]);
    // The next event would not have fitted.
    let next = serde_json::to_vec(&events[n]).unwrap();
    assert!(payload.len() + next.len() + 1 > 4096);

    let (_, n) = encode_batch(&events, 1, 5, 1 << 20).unwrap();
    assert_eq!(n, 5);
    assert_eq!(encode_batch(&[], 1, 5, 1 << 20).unwrap().1, 0);
}

/// Every ```json block of docs/device-protocol.md is a valid message.
#[test]
fn protocol_document_examples_are_valid() {
    let doc = include_str!("../../../../docs/device-protocol.md");
    let mut n = 0;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```json" {
            continue;
        }
        let block: String = lines
            .by_ref()
            .take_while(|l| l.trim() != "```")
            .collect::<Vec<_>>()
            .join("\n");
        let v: Value = serde_json::from_str(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let ty = v["type"]
            .as_str()
            .unwrap_or_else(|| panic!("no type:\n{block}"));
        let ok = if PUMP_TYPES.contains(&ty) {
            parse_pump_message(block.as_bytes(), None).map(|_| ())
        } else {
            parse_gateway_message(block.as_bytes(), None).map(|_| ())
        };
        ok.unwrap_or_else(|e| panic!("{e}\n{block}"));
        n += 1;
    }
    assert!(n >= 12, "only {n} examples");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_pump_message(&bytes, None);
        let _ = parse_gateway_message(&bytes, Some(1));
    }

    /// Mutating one value of a valid message never panics, and whatever
    /// parses re-encodes to itself.
    #[test]
    fn mutated_samples_parse_or_refuse(idx in 0usize..11, which in 0usize..200, replacement in prop_oneof![
        Just(json!(null)), Just(json!(-1)), Just(json!(0)), Just(json!(u64::MAX)), Just(json!(1.5)),
        Just(json!("")), Just(json!("x")), Just(json!([])), Just(json!({})), Just(json!("\u{0}")),
        ".{0,40}".prop_map(Value::String),
    ]) {
        let pumps = examples::pump_messages();
        let gateways = examples::gateway_messages();
        let (mut v, is_pump) = if idx < pumps.len() {
            (serde_json::from_slice::<Value>(&pumps[idx].to_payload(1).unwrap()).unwrap(), true)
        } else {
            let g = &gateways[(idx - pumps.len()) % gateways.len()];
            (serde_json::from_slice::<Value>(&g.to_payload(1).unwrap()).unwrap(), false)
        };
        let mut pointers = Vec::new();
        collect_pointers(&v, String::new(), &mut pointers);
        let ptr = &pointers[which % pointers.len()];
        if let Some(slot) = v.pointer_mut(ptr) {
            *slot = replacement;
        }
        let bytes = v.to_string().into_bytes();
        if is_pump {
            if let Ok(m) = parse_pump_message(&bytes, Some(1)) {
                prop_assert_eq!(parse_pump_message(&m.to_payload(1).unwrap(), Some(1)).unwrap(), m);
            }
        } else if let Ok(m) = parse_gateway_message(&bytes, Some(1)) {
            prop_assert_eq!(parse_gateway_message(&m.to_payload(1).unwrap(), Some(1)).unwrap(), m);
        }
    }
}

fn collect_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, c)| collect_pointers(c, format!("{at}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| collect_pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}
