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
