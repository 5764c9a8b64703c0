//! Pump events, once the gateway's event writer has stored them, reach the
//! detection engine, and the alerts its rules raise are in the store.

mod common;

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
            ..Default::default()
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
            ..Default::default()
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

fn hard_block(seq: u64) -> DeviceEventRecord {
    use pumpward_proto::message::{DoseCheck, DoseCheckResult};
    record(
        seq,
        EventKind::DoseCheck(DoseCheck {
            result: DoseCheckResult::HardBlock,
            drug: "heparin".into(),
            care_area: "Adult ICU".into(),
            dose: None,
            limit: None,
            limit_kind: None,
            infusion_id: None,
            library_version: None,
            override_reason: None,
        }),
    )
}

async fn store_blocks(writer: &EventWriter, asset: &str, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        writer
            .store(DeviceBatch {
                asset_id: asset.into(),
                events: vec![hard_block(seq)],
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// Waits until the engine's saved resume point has reached the last
/// committed group of pump events.
async fn until_caught_up(store: &Store) {
    let last = store.last_device_commit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resume = store
            .load_detection_state()
            .await
            .unwrap()
            .and_then(|s| s.resume)
            .unwrap_or_default();
        if last.as_ref().is_some_and(|l| resume.contains(l.as_str())) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the engine did not catch up: {resume}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Events stored while the engine was not running (a crash between the
/// commit and the evaluation) are evaluated at the next start, once: five
/// hard-limit blocks make a burst, and the three evaluated before the
/// restart are not counted again.
#[tokio::test]
async fn events_stored_while_detection_was_down_are_evaluated_once_after_restart() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(t.path()).await.unwrap();
    common::in_service_pump(&store, "P-1").await;

    // Three blocks evaluated live, then a clean stop (state saved).
    let detection = Detection::spawn(store.clone(), DetectionConfig::default());
    let writer = EventWriter::spawn(store.clone(), Some(detection.clone()));
    store_blocks(&writer, "P-1", 1..4).await;
    drop(writer);
    detection.stop().await;
    until_caught_up(&store).await;

    // The fourth is stored with no engine to hand it to.
    let writer = EventWriter::spawn(store.clone(), None);
    store_blocks(&writer, "P-1", 4..5).await;
    drop(writer);

    // At start, the engine evaluates the fourth: four blocks, no burst
    // (seven, and an alert, if the first three were evaluated again).
    let detection = Detection::spawn(store.clone(), DetectionConfig::default());
    until_caught_up(&store).await;
    assert_eq!(alerts(&store).await, Vec::<String>::new());

    // The fifth, live: the burst.
    let writer = EventWriter::spawn(store.clone(), Some(detection.clone()));
    store_blocks(&writer, "P-1", 5..6).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = alerts(&store).await;
    while got.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = alerts(&store).await;
    }
    assert_eq!(got, ["hard_limit_burst_pump:P-1"]);
    assert_eq!(detection.dropped(), 0);
}

/// A `vulnerability.affected` finding on a KEV-listed CVE raises the KEV
/// rule's alert for an in-service pump; a CVE of an open finding that joins
/// the KEV list later raises it for every pump it affects.
#[tokio::test]
async fn affected_findings_and_kev_additions_raise_alerts() {
    use pumpward_store::{NewFinding, Severity, KIND_AFFECTED};
    let t = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(t.path()).await.unwrap();
    for id in ["P-1", "P-2"] {
        common::in_service_pump(&store, id).await;
    }
    let sys = Actor::system();
    let finding = |cve: &str, asset: &str, kev: bool| NewFinding {
        kind: KIND_AFFECTED.into(),
        subject: format!("cve:{cve}:asset:{asset}"),
        asset_id: Some(asset.into()),
        severity: Severity::High,
        title: format!("{cve} on {asset}"),
        evidence: serde_json::json!({
            "cve": cve,
            "kev": if kev { serde_json::json!({"date_added": "2025-07-01"}) } else { serde_json::Value::Null },
        }),
    };
    // Open before the engine first starts: evaluated at its first poll.
    store
        .raise_finding(&finding("CVE-2024-0001", "P-1", true), &sys)
        .await
        .unwrap();
    // Not KEV-listed (yet): no alert.
    store
        .raise_finding(&finding("CVE-2025-48384", "P-2", false), &sys)
        .await
        .unwrap();
    let detection = Detection::spawn(store.clone(), DetectionConfig::default());
    let wait_for = |n: usize| {
        let store = store.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut got = alerts(&store).await;
            while got.len() < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
                got = alerts(&store).await;
            }
            got.sort();
            got
        }
    };
    assert_eq!(
        wait_for(1).await,
        ["kev_finding_in_service:P-1:CVE-2024-0001"]
    );
    // The KEV catalogue now lists CVE-2025-48384.
    let kev = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-vuln/tests/data/kev/known_exploited_vulnerabilities.trimmed.json"
    ))
    .unwrap();
    store.import_vuln_document(&kev, &sys).await.unwrap();
    assert_eq!(
        wait_for(2).await,
        [
            "kev_finding_in_service:P-1:CVE-2024-0001",
            "kev_finding_in_service:P-2:CVE-2025-48384"
        ]
    );
    let kept = store
        .list_security_events(&pumpward_store::SecurityEventFilter {
            kind: Some("kev_added".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert_eq!(kept.len(), 1);
    drop(detection);
}
