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
