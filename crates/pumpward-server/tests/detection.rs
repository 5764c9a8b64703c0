//! Pump events, once the gateway's event writer has stored them, reach the
//! detection engine, and the alerts its rules raise are in the store.

use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_detect::DetectionConfig;
use pumpward_proto::message::{EventKind, LibraryRejectReason, PumpEvent};
use pumpward_server::detection::Detection;
use pumpward_server::device::EventWriter;
use pumpward_store::{Actor, AlertFilter, DeviceBatch, DeviceEventRecord, Store};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn record(seq: u64, kind: EventKind) -> DeviceEventRecord {
    let at = time::OffsetDateTime::now_utc();
    let ev = PumpEvent {
        seq,
        at,
        kind,
        detail: BTreeMap::new(),
    };
    let json = serde_json::to_value(&ev).unwrap();
    DeviceEventRecord {
        seq: seq as i64,
        at: pumpward_core::timefmt::format(at),
        kind: json["kind"].as_str().unwrap().to_owned(),
        body: json.to_string(),
    }
}

/// Stored alerts as `rule:subject`.
async fn alerts(store: &Store) -> Vec<String> {
    store
        .list_alerts(&AlertFilter::default())
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|a| format!("{}:{}", a.case.alert.key.rule, a.case.alert.key.subject))
        .collect()
}

#[tokio::test]
async fn stored_pump_events_raise_alerts() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(t.path()).await.unwrap();
    // P-1's service credentials were changed; P-2 still has the vendor's.
    for (id, credentials) in [("P-1", "changed"), ("P-2", "default_unchanged")] {
        let spec = AssetSpec::validate(&AssetDraft {
            asset_id: id.into(),
            kind: Some("pump".into()),
            manufacturer: "Baxter".into(),
            model: "Sigma Spectrum".into(),
            serial_number: format!("SN-{id}"),
            firmware_version: "8.00.01".into(),
            care_area: Some("Adult ICU".into()),
            credential_state: Some(credentials.into()),
            ..Default::default()
        })
        .unwrap();
        store
            .create_asset(&spec, Some(LifecycleState::InService), &Actor::system())
            .await
            .unwrap();
    }

    let detection = Detection::spawn(store.clone(), DetectionConfig::default());
    let writer = EventWriter::spawn(store.clone(), Some(detection.clone()));

    // A harmless event first: nothing to raise.
    writer
        .store(DeviceBatch {
            asset_id: "P-1".into(),
            events: vec![record(
                1,
                EventKind::CareAreaChanged {
                    from: None,
                    to: "Adult ICU".into(),
                },
            )],
            gaps: Vec::new(),
        })
        .await
        .unwrap();
    // The pump refuses a library: the `library_rejected` rule.
    writer
        .store(DeviceBatch {
            asset_id: "P-1".into(),
            events: vec![record(
                2,
                EventKind::LibraryRejected {
                    version: Some("7".into()),
                    digest: None,
                    reason: LibraryRejectReason::SignatureInvalid,
                },
            )],
            gaps: Vec::new(),
        })
        .await
        .unwrap();

    // The time-driven rules run when the engine starts: P-2's default
    // credentials. The pump events: only P-1's refusal.
    let want = ["default_credentials:P-2", "library_rejected:P-1"];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = alerts(&store).await;
    while got.len() < want.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = alerts(&store).await;
    }
    got.sort();
    assert_eq!(got, want);
    let raised = store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("alert.raise".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(raised.len(), 2);
    assert_eq!(detection.dropped(), 0);
}

/// Events from elsewhere in the server (the gateway's refusals) are kept in
/// `security_events` and evaluated: a burst from one address is an alert.
#[tokio::test]
async fn observed_gateway_refusals_are_kept_and_raise_a_burst_alert() {
    use pumpward_detect::event::Event;
    let t = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(t.path()).await.unwrap();
    let detection = Detection::spawn(store.clone(), DetectionConfig::default());
    let now = time::OffsetDateTime::now_utc();
    let refusal = |i: u32, peer: &str| {
        Event::auth_failure(
            format!("gateway:refusal:test:{i}"),
            now,
            peer.parse().unwrap(),
            "unknown CA".into(),
        )
    };
    // Four from one address and six from another: only the second is a burst.
    for i in 0..4 {
        detection.observe(refusal(i, "10.9.9.8"));
    }
    for i in 4..10 {
        detection.observe(refusal(i, "10.9.9.9"));
    }
    // An invalid event (an id with a space) is refused and counted.
    let mut bad = refusal(99, "10.9.9.7");
    bad.id = "not valid".into();
    detection.observe(bad);

    let want = ["auth_failure_burst:10.9.9.9"];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = alerts(&store).await;
    while got.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = alerts(&store).await;
    }
    assert_eq!(got, want);
    let kept = store
        .list_security_events(&pumpward_store::SecurityEventFilter {
            kind: Some("auth_failure".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert_eq!(kept.len(), 10);
    assert_eq!(detection.dropped(), 1);
}
