use super::*;

fn draft() -> AssetDraft {
    AssetDraft {
        asset_id: "PUMP-0001".into(),
        manufacturer: "BD".into(),
        model: "Alaris 8015 PC Unit".into(),
        serial_number: "12345678".into(),
        firmware_version: "9.33.1".into(),
        ..Default::default()
    }
}

#[test]
fn minimal_draft_validates_with_pessimistic_defaults() {
    let s = AssetSpec::validate(&draft()).unwrap();
    assert_eq!(s.kind, AssetKind::Pump);
    assert_eq!(s.phi_stored, Answer::Unknown);
    assert_eq!(s.credential_state, CredentialState::DefaultUnchanged);
    assert!(s.software.is_empty());
}

#[test]
fn every_bad_field_is_reported() {
    let mut d = draft();
    d.mac_address = Some("01:00:5e:00:00:01".into());
    d.ip_address = Some("10.0.0.300".into());
    d.device_type = Some("balloon".into());
    d.software = Some(SoftwareField::Text("wbm".into()));
    let e = AssetSpec::validate(&d).unwrap_err();
    let fields: Vec<_> = e.0.iter().map(|f| f.field).collect();
    assert_eq!(
        fields,
        ["device_type", "software", "mac_address", "ip_address"]
    );
    assert!(e.to_string().contains("multicast"), "{e}");
}

#[test]
fn spec_round_trips_through_its_draft() {
    let mut d = draft();
    d.software = Some(SoftwareField::Text(
        "Wireless Battery Module=v22D28; PCU comms=1.2".into(),
    ));
    d.mac_address = Some("00-1A-2B-3C-4D-5E".into());
    d.end_of_support = Some("2029-12-31".into());
    d.hostname = Some("Pump-0001.icu.example.org".into());
    let s = AssetSpec::validate(&d).unwrap();
    assert_eq!(s.mac_address.unwrap().to_string(), "00:1a:2b:3c:4d:5e");
    assert_eq!(AssetSpec::validate(&s.to_draft()).unwrap(), s);
}

#[test]
fn mac_spellings() {
    for ok in [
        "00:1a:2b:3c:4d:5e",
        "00-1A-2B-3C-4D-5E",
        "001a.2b3c.4d5e",
        "001A2B3C4D5E",
    ] {
        assert_eq!(
            ok.parse::<MacAddress>().unwrap().to_string(),
            "00:1a:2b:3c:4d:5e",
            "{ok}"
        );
    }
    for bad in [
        "",
        "00:1a:2b:3c:4d",
        "00:1a:2b:3c:4d:5g",
        "ff:ff:ff:ff:ff:ff",
        "00:00:00:00:00:00",
        "00:1a-2b:3c:4d:5e",
        "0:1a:2b:3c:4d:5e:",
    ] {
        assert!(bad.parse::<MacAddress>().is_err(), "{bad}");
    }
}

#[test]
fn asset_ids_are_url_safe() {
    assert!("ICU-PUMP_01.a:b".parse::<AssetId>().is_ok());
    for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
        assert!(bad.parse::<AssetId>().is_err(), "{bad:?}");
    }
}

#[test]
fn text_fields_refuse_control_characters() {
    let mut d = draft();
    d.location = Some("ICU\u{7}bed 4".into());
    assert_eq!(AssetSpec::validate(&d).unwrap_err().0[0].field, "location");
    d.location = None;
    d.notes = Some("line one\nline two".into());
    assert!(AssetSpec::validate(&d).is_ok());
}

mod properties {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn unicast_macs_round_trip_in_every_spelling(mut o in any::<[u8; 6]>()) {
            o[0] &= 0xfe;
            prop_assume!(o != [0; 6]);
            let colon = format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3], o[4], o[5]);
            let m: MacAddress = colon.parse().unwrap();
            prop_assert_eq!(m.octets(), o);
            prop_assert_eq!(m.to_string(), colon.clone());
            let hyphen = colon.replace(':', "-").to_uppercase();
            prop_assert_eq!(hyphen.parse::<MacAddress>().unwrap(), m);
            let bare = colon.replace(':', "");
            let cisco = format!("{}.{}.{}", &bare[0..4], &bare[4..8], &bare[8..12]);
            prop_assert_eq!(cisco.parse::<MacAddress>().unwrap(), m);
        }

        #[test]
        fn multicast_macs_are_always_refused(mut o in any::<[u8; 6]>()) {
            o[0] |= 1;
            let s = format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3], o[4], o[5]);
            prop_assert!(s.parse::<MacAddress>().is_err());
        }

        #[test]
        fn value_parsers_never_panic(s in ".{0,80}") {
            let _ = s.parse::<MacAddress>();
            let _ = s.parse::<AssetId>();
            let _ = s.parse::<LifecycleState>();
            let _ = SoftwareComponent::parse_list(&s);
            let _ = crate::timefmt::parse(&s);
            let _ = crate::timefmt::parse_date(&s);
        }

        #[test]
        fn software_lists_round_trip(
            list in proptest::collection::vec(("[A-Za-z][A-Za-z0-9 ._-]{0,20}[A-Za-z0-9]", "[A-Za-z0-9][A-Za-z0-9._-]{0,12}"), 0..6)
        ) {
            let mut seen = std::collections::HashSet::new();
            let comps: Vec<SoftwareComponent> = list
                .into_iter()
                .filter(|(n, _)| seen.insert(n.to_lowercase()))
                .map(|(name, version)| SoftwareComponent { name, version })
                .collect();
            let text = SoftwareComponent::format_list(&comps);
            prop_assert_eq!(SoftwareComponent::parse_list(&text).unwrap(), comps);
        }

        #[test]
        fn any_json_draft_validates_or_reports_and_valid_ones_round_trip(v in proptest::collection::hash_map(
            prop_oneof![Just("asset_id"), Just("manufacturer"), Just("model"), Just("serial_number"),
                        Just("firmware_version"), Just("mac_address"), Just("ip_address"), Just("end_of_support"),
                        Just("software"), Just("kind"), Just("device_type"), Just("hostname"), Just("notes")],
            "[ -~]{0,24}", 0..13)
        ) {
            let obj: serde_json::Map<String, serde_json::Value> =
                v.into_iter().map(|(k, s)| (k.to_string(), serde_json::Value::String(s))).collect();
            if let Ok(d) = serde_json::from_value::<AssetDraft>(serde_json::Value::Object(obj)) {
                match AssetSpec::validate(&d) {
                    Ok(spec) => prop_assert_eq!(AssetSpec::validate(&spec.to_draft()).unwrap(), spec),
                    Err(e) => prop_assert!(!e.0.is_empty()),
                }
            }
        }
    }
}

/// Replays the committed fuzz seeds of the `asset_json` target on stable.
#[test]
fn asset_json_fuzz_seeds_replay() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/asset_json");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let d: AssetDraft = serde_json::from_slice(&bytes).unwrap();
        let spec = AssetSpec::validate(&d).unwrap();
        assert_eq!(AssetSpec::validate(&spec.to_draft()).unwrap(), spec);
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn cpe_names_validate_to_their_canonical_form() {
    let mut d = draft();
    d.cpe = Some(CpeField::Text(
        "  cpe:2.3:h:BD:alaris_8015_pc_unit:-:*:*:*:*:*:*:*\n\tCPE:2.3:o:bd:alaris_pc_unit_firmware:12.1.2:*:*:*:*:*:*:* "
            .into(),
    ));
    let s = AssetSpec::validate(&d).unwrap();
    assert_eq!(
        s.cpe,
        [
            "cpe:2.3:h:bd:alaris_8015_pc_unit:-:*:*:*:*:*:*:*",
            "cpe:2.3:o:bd:alaris_pc_unit_firmware:12.1.2:*:*:*:*:*:*:*"
        ]
    );
    // The JSON list form gives the same spec, and the draft reads back.
    d.cpe = Some(CpeField::List(s.cpe.clone()));
    assert_eq!(AssetSpec::validate(&d).unwrap(), s);
    assert_eq!(AssetSpec::validate(&s.to_draft()).unwrap(), s);
    // Absent or blank: no names.
    d.cpe = Some(CpeField::Text("   ".into()));
    assert!(AssetSpec::validate(&d).unwrap().cpe.is_empty());
}

#[test]
fn a_bad_cpe_name_says_which_name_and_which_attribute() {
    let mut d = draft();
    d.cpe = Some(CpeField::Text(
        "cpe:2.3:h:bd:alaris_8015_pc_unit:-:*:*:*:*:*:*:* cpe:2.3:o:bd:alaris_pc_unit_firmware:12.*:*:*:*:*:*:*:*".into(),
    ));
    let e = AssetSpec::validate(&d).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].field, "cpe");
    let m = &e.0[0].message;
    assert!(m.starts_with("CPE name 2 "), "{m}");
    assert!(m.contains("attribute version"), "{m}");
    for (bad, says) in [
        ("cpe:/h:bd:alaris", "CPE name 1"),
        ("cpe:2.3:h:bd:alaris", "11 attributes"),
        ("cpe:2.3:x:bd:a:-:*:*:*:*:*:*:*", "part"),
        (
            "cpe:2.3:h:bd:a:-:*:*:*:*:*:*:* CPE:2.3:H:BD:A:-:*:*:*:*:*:*:*",
            "listed twice",
        ),
    ] {
        d.cpe = Some(CpeField::Text(bad.into()));
        let e = AssetSpec::validate(&d).unwrap_err();
        assert!(e.to_string().contains(says), "{bad}: {e}");
    }
    d.cpe = Some(CpeField::List(vec![
        "cpe:2.3:h:bd:a b:-:*:*:*:*:*:*:*".into()
    ]));
    assert!(AssetSpec::validate(&d)
        .unwrap_err()
        .to_string()
        .contains("whitespace"));
    d.cpe = Some(CpeField::List(
        (0..=MAX_CPE_NAMES)
            .map(|i| format!("cpe:2.3:h:bd:p{i}:-:*:*:*:*:*:*:*"))
            .collect(),
    ));
    assert!(AssetSpec::validate(&d)
        .unwrap_err()
        .to_string()
        .contains("at most"));
}

mod cpe_props {
    use super::super::{check_cpe_list, format_cpe_list, parse_cpe_list};
    use proptest::prelude::*;

    fn attr() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_owned()),
            Just("-".to_owned()),
            "[a-zA-Z0-9_]{1,6}",
            "[a-z0-9]{1,3}\\\\[.+!:][a-z0-9]{1,3}",
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["a", "o", "h", "*"]),
            prop::collection::vec(attr(), 10),
        )
            .prop_map(|(part, rest)| format!("cpe:2.3:{part}:{}", rest.join(":")))
    }

    proptest! {
        /// Valid names: the canonical list reads back to itself.
        #[test]
        fn cpe_lists_round_trip(names in prop::collection::vec(name(), 0..5)) {
            let mut unique = Vec::new();
            for n in names {
                let c = pumpward_vuln::cpe::Cpe::parse(&n).unwrap().to_string();
                if !unique.contains(&c) {
                    unique.push(c);
                }
            }
            let parsed = check_cpe_list(unique.clone()).unwrap();
            prop_assert_eq!(&parsed, &unique);
            prop_assert_eq!(parse_cpe_list(&format_cpe_list(&parsed)).unwrap(), parsed);
        }

        /// Anything: an error or a list that reads back, never a panic.
        #[test]
        fn any_text_is_a_list_or_an_error(s in "\\PC{0,200}|(cpe:2\\.3:[a-z*\\\\:. -]{0,60})") {
            if let Ok(list) = parse_cpe_list(&s) {
                prop_assert_eq!(parse_cpe_list(&format_cpe_list(&list)).unwrap(), list);
            }
        }
    }
}
