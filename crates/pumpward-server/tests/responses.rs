//! Responses through the server: a rule's automatic quarantine waits for a
//! person's confirmation, the API and the UI (CSRF-protected forms) apply and
//! release it, and bad requests get precise errors and change nothing.

mod common;

use common::{harness, Cred, Harness};
use pumpward_core::access::Role;
use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_detect::DetectionConfig;
use pumpward_proto::message::{EventKind, LibraryRejectReason, PumpEvent};
use pumpward_server::detection::Detection;
use pumpward_server::device::EventWriter;
use pumpward_store::{Actor, DeviceBatch, DeviceEventRecord, ResponseFilter};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

async fn pump(h: &Harness, id: &str, state: LifecycleState) {
    let spec = AssetSpec::validate(&AssetDraft {
        asset_id: id.into(),
        kind: Some("pump".into()),
        manufacturer: "Baxter".into(),
        model: "Sigma Spectrum".into(),
        serial_number: format!("SN-{id}"),
        firmware_version: "8.00.01".into(),
        care_area: Some("Adult ICU".into()),
        location: Some("Bed 12".into()),
        credential_state: Some("changed".into()),
        ..Default::default()
    })
    .unwrap();
    h.store
        .create_asset(&spec, Some(state), &Actor::system())
        .await
        .unwrap();
}

async fn state_of(h: &Harness, id: &str) -> LifecycleState {
    h.store.asset(id).await.unwrap().lifecycle_state
}

fn library_rejected(seq: u64) -> DeviceEventRecord {
    let at = time::OffsetDateTime::now_utc();
    let ev = PumpEvent {
        seq,
        at,
        kind: EventKind::LibraryRejected {
            version: Some("7".into()),
            digest: None,
            reason: LibraryRejectReason::SignatureInvalid,
        },
        detail: BTreeMap::new(),
    };
    let v = serde_json::to_value(&ev).unwrap();
    DeviceEventRecord {
        seq: seq as i64,
        at: pumpward_core::timefmt::format(at),
        kind: v["kind"].as_str().unwrap().to_owned(),
        body: v.to_string(),
    }
}

#[tokio::test]
async fn a_rules_automatic_quarantine_waits_for_a_person_then_applies_and_releases() {
    let h = harness().await;
    pump(&h, "P-1", LifecycleState::InService).await;
    let cfg = DetectionConfig::from_toml("[rules.library_rejected]\nresponse = \"quarantine\"\n")
        .unwrap();
    let detection = Detection::spawn(h.store.clone(), cfg);
    let writer = EventWriter::spawn(h.store.clone(), Some(detection.clone()));
    writer
        .store(DeviceBatch {
            asset_id: "P-1".into(),
            events: vec![library_rejected(1)],
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let l = h
            .store
            .list_responses(&ResponseFilter::default())
            .await
            .unwrap();
        if let Some(r) = l.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "no automatic response");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pending.state.as_str(), "pending");
    assert_eq!(pending.requested_by, "system");
    assert!(pending.alert_id.as_deref().is_some_and(|a| !a.is_empty()));
    assert_eq!(
        state_of(&h, "P-1").await,
        LifecycleState::InService,
        "nothing applied before a person confirms"
    );

    // A clinician may see it, not confirm it; the SOC analyst confirms.
    let clin = Cred::Bearer(h.token_for("cleo", Role::Clinician).await);
    let sec = Cred::Bearer(h.token_for("sam", Role::Security).await);
    let path = format!("/api/v1/responses/{}/confirm", pending.id);
    let r = h.call("POST", &path, &clin, None).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = h.get("/api/v1/responses?asset_id=P-1", &clin).await;
    assert_eq!(r.json()["items"][0]["state"], "pending", "{}", r.text());
    let r = h.call("POST", &path, &sec, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "applied");
    assert_eq!(r.json()["previous_state"], "in_service");
    assert_eq!(state_of(&h, "P-1").await, LifecycleState::Quarantined);

    // Biomed's work list and the asset page show it, with the release form.
    let (cookie, csrf) = h.session_for("bea", Role::Biomed).await;
    let s = Cred::Session(cookie.clone(), None);
    let page = h.get("/responses", &s).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("Pumps to swap") && html.contains("P-1"),
        "{html}"
    );
    assert!(html.contains("Adult ICU, Bed 12"), "where to find it");
    assert!(html.contains("href=\"/responses\""), "in the navigation");
    let html = h.get("/assets/P-1", &s).await.text();
    assert!(html.contains("id=\"release-form\""), "{html}");
    assert!(!html.contains("class=\"quarantine-form\""));
    // The form without its CSRF token is refused and changes nothing.
    let r = h
        .form("/assets/P-1/release", &cookie, &[("reason", "inspected")])
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(state_of(&h, "P-1").await, LifecycleState::Quarantined);
    let r = h
        .form(
            "/assets/P-1/release",
            &cookie,
            &[
                ("csrf", csrf.as_str()),
                ("reason", "inspected, library reinstalled"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.headers["location"].to_str().unwrap(),
        "/assets/P-1?done=released"
    );
    assert_eq!(state_of(&h, "P-1").await, LifecycleState::InService);
    let html = h.get("/assets/P-1", &s).await.text();
    assert!(html.contains("class=\"quarantine-form\""), "offered again");

    // Every step is in the audit trail.
    for (action, actor) in [
        ("response.request", "system"),
        ("response.confirm", "user:sam token:"),
        ("response.release", "user:bea"),
    ] {
        let recs = h
            .store
            .audit_list(&pumpward_store::AuditFilter {
                action: Some(action.into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            recs.iter().any(|r| r.entry.actor.starts_with(actor)
                && r.entry.outcome == pumpward_core::audit::Outcome::Success),
            "{action} by {actor}: {recs:?}"
        );
    }
}

#[tokio::test]
async fn bad_quarantine_requests_are_refused_precisely() {
    let h = harness().await;
    pump(&h, "P-1", LifecycleState::InService).await;
    pump(&h, "P-D", LifecycleState::Decommissioned).await;
    let bio = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    let q = |id: &str| format!("/api/v1/assets/{id}/quarantine");
    let why = json!({ "reason": "anomalous traffic" });
    let r = h.json("POST", &q("P-404"), &bio, why.clone()).await;
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (404, "not-found")
    );
    let r = h.json("POST", &q("P-D"), &bio, why.clone()).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("decommissioned"), "{}", r.text());
    let r = h
        .json("POST", &q("P-1"), &bio, json!({ "reason": " " }))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = h
        .json("POST", &q("P-1"), &bio, json!({ "reason": "x", "to": "y" }))
        .await;
    assert_eq!(r.status, 400, "unknown field: {}", r.text());
    let r = h
        .json(
            "POST",
            &q("P-1"),
            &bio,
            json!({ "reason": "x", "alert_id": "nope" }),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(state_of(&h, "P-1").await, LifecycleState::InService);
    let r = h
        .json("POST", "/api/v1/assets/P-1/release", &bio, why.clone())
        .await;
    assert_eq!(r.status, 409, "nothing to release: {}", r.text());

    let r = h.json("POST", &q("P-1"), &bio, why.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["state"], "applied");
    let r = h.json("POST", &q("P-1"), &bio, why.clone()).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("already quarantined"), "{}", r.text());

    let r = h.get("/api/v1/responses?state=open", &bio).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = h.get("/api/v1/responses/abc", &bio).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = h.get("/api/v1/responses?state=applied", &bio).await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
}
