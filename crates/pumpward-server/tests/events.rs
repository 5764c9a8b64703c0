//! The event stream through the API (`GET /api/v1/events`), an asset's
//! baseline reset (API and asset page), and administrative actions reaching
//! detection as `admin_audit` events.

mod common;

use common::{Cred, Harness};
use pumpward_core::access::Role;
use pumpward_core::inventory::LifecycleState;
use pumpward_core::timefmt;
use pumpward_detect::event::{Body, Event};
use pumpward_detect::DetectionConfig;
use pumpward_proto::message::{EventKind, PumpEvent};
use pumpward_server::detection::Detection;
use pumpward_store::{Actor, AuditFilter, DeviceBatch, DeviceEventRecord};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use time::{OffsetDateTime, UtcOffset};

fn auth_failure(id: &str, asset: &str, at: OffsetDateTime) -> Event {
    let mut ev = Event::auth_failure(
        id.into(),
        at,
        "10.20.0.41".parse().unwrap(),
        "unknown_ca".into(),
    );
    ev.asset_id = Some(asset.parse().unwrap());
    ev
}

fn gateway_connection(id: &str, asset: &str, at: OffsetDateTime) -> Event {
    Event::observed(
        id.into(),
        at,
        Some(asset.parse().unwrap()),
        Body::GatewayConnection {
            peer: "10.20.0.41".parse().unwrap(),
            certificate: "ab".repeat(32),
        },
    )
}

fn pump_record(seq: u64, kind: EventKind) -> DeviceEventRecord {
    let at = OffsetDateTime::now_utc();
    let ev = PumpEvent {
        seq,
        at,
        kind,
        detail: BTreeMap::new(),
    };
    let json = serde_json::to_value(&ev).unwrap();
    DeviceEventRecord {
        seq: seq as i64,
        at: timefmt::format(at),
        kind: json["kind"].as_str().unwrap().to_owned(),
        body: json.to_string(),
    }
}

fn care_area(seq: u64) -> DeviceEventRecord {
    pump_record(
        seq,
        EventKind::CareAreaChanged {
            from: None,
            to: "Adult ICU".into(),
        },
    )
}

/// The `field` of every item of an events page.
fn field(page: &serde_json::Value, pointer: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| match i.pointer(pointer).unwrap() {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        })
        .collect()
}

async fn events(h: &Harness, token: &str, query: &str) -> serde_json::Value {
    let r = h
        .get(
            &format!("/api/v1/events?{query}"),
            &Cred::Bearer(token.into()),
        )
        .await;
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    r.json()
}

#[tokio::test]
async fn events_are_queryable_by_asset_type_and_time_in_both_streams() {
    let h = common::harness().await;
    for id in ["P-1", "P-2"] {
        common::in_service_pump(&h.store, id).await;
    }
    let now = OffsetDateTime::now_utc();
    let hours = |n: i64| now - time::Duration::hours(n);
    h.store
        .record_security_events(&[
            auth_failure("gw:1", "P-1", hours(3)),
            gateway_connection("gw:2", "P-1", hours(1)),
            auth_failure("gw:3", "P-2", now),
        ])
        .await
        .unwrap();
    let ana = h.token_for("ana", Role::Security).await;

    // By asset, newest first; by type across assets.
    let p = events(&h, &ana, "asset_id=P-1").await;
    assert_eq!(p["stream"], "security");
    assert_eq!(field(&p, "/event/id"), ["gw:2", "gw:1"]);
    let p = events(&h, &ana, "type=auth_failure").await;
    assert_eq!(field(&p, "/event/id"), ["gw:3", "gw:1"]);
    // By time, given with an offset: two hours ago is 02:00 later in +02:00.
    let from = (hours(2)).to_offset(UtcOffset::from_hms(2, 0, 0).unwrap());
    let from = from
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .replace('+', "%2B");
    let p = events(&h, &ana, &format!("from={from}")).await;
    assert_eq!(field(&p, "/event/id"), ["gw:3", "gw:2"]);
    let to = timefmt::format(hours(2));
    let p = events(&h, &ana, &format!("to={to}&asset_id=P-1")).await;
    assert_eq!(field(&p, "/event/id"), ["gw:1"]);
    // Paged: every event once.
    let mut seen = Vec::new();
    let mut q = "limit=2".to_owned();
    loop {
        let p = events(&h, &ana, &q).await;
        seen.extend(field(&p, "/event/id"));
        match p["next_cursor"].as_str() {
            Some(c) => q = format!("limit=2&before={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["gw:3", "gw:2", "gw:1"]);

    // The pump stream: each pump's queue as sent.
    for (asset, seqs) in [("P-1", 1..4u64), ("P-2", 1..2)] {
        h.store
            .store_device_batches(
                &[DeviceBatch {
                    asset_id: asset.into(),
                    events: seqs.map(care_area).collect(),
                    ..Default::default()
                }],
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
    }
    let p = events(&h, &ana, "stream=pump&asset_id=P-1").await;
    assert_eq!(p["stream"], "pump");
    assert_eq!(field(&p, "/seq"), ["3", "2", "1"]);
    assert_eq!(field(&p, "/event/kind"), ["care_area_changed"; 3]);
    let p = events(&h, &ana, "stream=pump&type=care_area_changed").await;
    assert_eq!(p["items"].as_array().unwrap().len(), 4);
    assert!(
        events(&h, &ana, "stream=pump&type=dose_check").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let mut seen = Vec::new();
    let mut q = "stream=pump&limit=3".to_owned();
    loop {
        let p = events(&h, &ana, &q).await;
        let assets = field(&p, "/asset_id");
        let seqs = field(&p, "/seq");
        seen.extend(
            assets
                .into_iter()
                .zip(seqs)
                .map(|(a, s)| format!("{a}:{s}")),
        );
        match p["next_cursor"].as_str() {
            Some(c) => q = format!("stream=pump&limit=3&before={}", c.replace('+', "%2B")),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["P-1:1", "P-1:2", "P-1:3", "P-2:1"]);

    // Bad queries: a precise 400 each.
    for (q, says) in [
        ("type=nonsense", "auth_failure"),
        ("from=yesterday", "RFC 3339"),
        ("stream=everything", "security or pump"),
        ("before=abc", "next_cursor"),
        ("stream=pump&before=2026-01-01T00:00:00Z", "next_cursor"),
        ("stream=pump&type=Dose-Check", "snake_case"),
        ("colour=red", "colour"),
    ] {
        let r = h
            .get(&format!("/api/v1/events?{q}"), &Cred::Bearer(ana.clone()))
            .await;
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.text().contains(says), "{q}: {}", r.text());
    }
    // A pharmacist has no business with the event stream.
    let phil = h.token_for("phil", Role::Pharmacist).await;
    let r = h.get("/api/v1/events", &Cred::Bearer(phil)).await;
    assert_eq!(r.status, 403);
}

/// The harness with a running detection engine behind its routes.
async fn with_detection(config: DetectionConfig) -> (Harness, Detection) {
    let mut h = common::harness().await;
    let detection = Detection::spawn(h.store.clone(), config);
    h.state.rules.detection = Some(detection.clone());
    h.app = pumpward_server::app(h.state.clone());
    (h, detection)
}

#[tokio::test]
async fn an_assets_baseline_is_reset_through_the_api_and_the_asset_page() {
    let (h, detection) = with_detection(DetectionConfig::default()).await;
    common::in_service_pump(&h.store, "P-1").await;
    let ana = h.token_for("ana", Role::Security).await;
    let reset = |who: String, asset: &'static str| {
        let h = &h;
        async move {
            h.call(
                "POST",
                &format!("/api/v1/assets/{asset}/baseline/reset"),
                &Cred::Bearer(who),
                None,
            )
            .await
        }
    };

    // Nothing learned yet.
    let r = reset(ana.clone(), "P-1").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["had_baseline"], false);
    // The pump connects: the engine starts learning it. The reset is queued
    // behind the event, so it sees what the event taught.
    detection.observe(gateway_connection("gw:1", "P-1", OffsetDateTime::now_utc()));
    let r = reset(ana.clone(), "P-1").await;
    assert_eq!(r.json()["had_baseline"], true, "{}", r.text());
    let r = reset(ana.clone(), "P-1").await;
    assert_eq!(r.json()["had_baseline"], false, "forgotten");
    // The snapshot saved before answering has no baseline for it either.
    let saved = h.store.load_detection_state().await.unwrap().unwrap();
    let restored = pumpward_detect::Engine::restore(DetectionConfig::default(), saved);
    assert!(restored
        .baselines()
        .get(pumpward_detect::baseline::Scope::Asset, "P-1")
        .is_none());

    let audited = h
        .store
        .audit_list(&AuditFilter {
            action: Some("detection.baseline_reset".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let had: Vec<bool> = audited
        .iter()
        .rev()
        .map(|a| {
            assert_eq!(a.entry.object.as_deref(), Some("asset:P-1"));
            serde_json::from_str::<serde_json::Value>(a.entry.details.as_deref().unwrap()).unwrap()
                ["had_baseline"]
                .as_bool()
                .unwrap()
        })
        .collect();
    assert_eq!(had, [false, true, false]);

    // Refusals change nothing: no such asset; a biomed may not.
    let r = reset(ana.clone(), "P-404").await;
    assert_eq!(r.status, 404, "{}", r.text());
    let bea = h.token_for("bea", Role::Biomed).await;
    assert_eq!(reset(bea, "P-1").await.status, 403);

    // The asset page: the form for the SOC, not for biomed.
    let (soc, csrf) = h.session_for("sam", Role::Security).await;
    let page = h
        .get("/assets/P-1", &Cred::Session(soc.clone(), None))
        .await
        .text();
    assert!(page.contains("id=\"baseline-reset-form\""), "{page}");
    let (bio, _) = h.session_for("bob", Role::Biomed).await;
    let page = h.get("/assets/P-1", &Cred::Session(bio, None)).await.text();
    assert!(!page.contains("baseline-reset-form"), "{page}");
    let r = h
        .form("/assets/P-1/baseline/reset", &soc, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.headers["location"].to_str().unwrap();
    assert_eq!(to, "/assets/P-1?done=baseline-reset");
    // Without the CSRF token the form is refused.
    let r = h.form("/assets/P-1/baseline/reset", &soc, &[]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let n = h
        .store
        .audit_list(&AuditFilter {
            action: Some("detection.baseline_reset".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    assert_eq!(n, 4);

    // A server without a detection engine says so.
    let plain = common::harness().await;
    common::in_service_pump(&plain.store, "P-1").await;
    let ana = plain.token_for("ana", Role::Security).await;
    let r = plain
        .call(
            "POST",
            "/api/v1/assets/P-1/baseline/reset",
            &Cred::Bearer(ana),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("detection is not running"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn administrative_actions_reach_detection_as_audit_events() {
    let rules = r#"
[[custom]]
id = "pump_taken_out_of_service"
title = "A pump was taken out of service"
when = 'kind == "admin_audit" and action == "asset.transition"'
"#;
    let mut h = common::harness().await;
    common::in_service_pump(&h.store, "P-1").await;
    // Audited by a person before detection first runs: history, not news.
    h.user("early", Role::Biomed).await;
    let detection = Detection::spawn(h.store.clone(), DetectionConfig::from_toml(rules).unwrap());
    h.state.rules.detection = Some(detection.clone());
    h.app = pumpward_server::app(h.state.clone());
    // A round trip through the engine's queue: it has started.
    detection
        .reset_baseline("P-1".parse().unwrap())
        .await
        .unwrap();
    h.store
        .transition_asset(
            "P-1",
            LifecycleState::Maintenance,
            "battery swap",
            &Actor::cli(),
        )
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let (a, _) = h
            .store
            .list_alerts(&pumpward_store::AlertFilter::default())
            .await
            .unwrap();
        if !a.is_empty() || Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alerts.len(), 1, "one alert from the custom rule");
    assert_eq!(
        alerts[0].case.alert.key.rule,
        "custom.pump_taken_out_of_service"
    );
    assert_eq!(
        alerts[0].case.alert.asset_id.as_ref().map(|a| a.as_str()),
        Some("P-1")
    );

    // The record is in the event stream, tied to the asset.
    let ana = h.token_for("ana", Role::Security).await;
    let p = events(&h, &ana, "type=admin_audit&asset_id=P-1").await;
    assert_eq!(
        field(&p, "/event/body/record/action"),
        ["asset.transition"],
        "{p}"
    );
    // Pumpward's own actions (raising that alert) are not fed back, and
    // records from before the engine first ran are not replayed. Another
    // poll round has passed by then.
    tokio::time::sleep(pumpward_server::detection::POLL_EVERY + Duration::from_secs(1)).await;
    let p = events(&h, &ana, "type=admin_audit").await;
    let actions = field(&p, "/event/body/record/action");
    assert!(!actions.iter().any(|a| a == "alert.raise"), "{actions:?}");
    let objects = field(&p, "/event/body/record/object");
    assert!(!objects.iter().any(|o| o == "user:early"), "{objects:?}");
    // The analyst was added while it ran: that is news.
    assert!(objects.iter().any(|o| o == "user:ana"), "{objects:?}");
}

fn violation_flow(from: &str, to: &str, port: u16) -> pumpward_flow::Flow {
    pumpward_flow::Flow {
        start_us: (OffsetDateTime::now_utc().unix_timestamp() - 5) * 1_000_000,
        duration_us: Some(1_000_000),
        transport: pumpward_flow::Transport::Tcp,
        orig_addr: from.parse().unwrap(),
        orig_port: 40_000,
        resp_addr: to.parse().unwrap(),
        resp_port: port,
        orig_mac: Some(pumpward_flow::ObservedMac([2, 0, 0, 0, 0, 1])),
        resp_mac: None,
        orig_bytes: 1_234,
        resp_bytes: 56,
        orig_packets: 4,
        resp_packets: 1,
        source: pumpward_flow::FlowSource::Ipfix,
        sensor_uid: None,
        conn_state: None,
    }
}

#[tokio::test]
async fn the_violations_page_lists_what_the_collectors_reported_with_evidence() {
    use pumpward_detect::event::ViolationKind;
    let h = common::harness().await;
    for id in ["P-1", "P-2"] {
        common::in_service_pump(&h.store, id).await;
    }
    let now = OffsetDateTime::now_utc();
    h.store
        .record_security_events(&[
            Event::observed(
                "net:1".into(),
                now - time::Duration::hours(2),
                Some("P-1".parse().unwrap()),
                Body::PolicyViolation {
                    rule: "default_deny".into(),
                    violation: ViolationKind::Internet,
                    flow: violation_flow("10.20.0.11", "203.0.113.50", 443),
                    earlier_flow: None,
                },
            ),
            Event::observed(
                "net:2".into(),
                now,
                Some("P-2".parse().unwrap()),
                Body::PolicyViolation {
                    rule: "default_deny".into(),
                    violation: ViolationKind::EastWest,
                    flow: violation_flow("10.20.0.12", "10.20.0.11", 22),
                    earlier_flow: None,
                },
            ),
            Event::observed(
                "net:3".into(),
                now,
                None,
                Body::UnknownDevice {
                    mac: pumpward_flow::ObservedMac([2, 0xde, 0xad, 0xbe, 0xef, 1]),
                    ip: Some("10.20.250.99".parse().unwrap()),
                    zone: "infusion-pump".into(),
                    device_zone: true,
                },
            ),
        ])
        .await
        .unwrap();
    let (bea, _) = h.session_for("bea", Role::Biomed).await;
    let page = |q: &'static str| {
        let (h, bea) = (&h, bea.clone());
        async move {
            h.get(
                &format!("/network/violations{q}"),
                &Cred::Session(bea, None),
            )
            .await
        }
    };
    let all = page("").await;
    assert_eq!(all.status, 200, "{}", all.text());
    let text = all.text();
    assert!(
        text.contains("203.0.113.50:443") && text.contains("10.20.0.11:22"),
        "{text}"
    );
    assert!(
        text.contains("east_west") && text.contains("1234 / 56"),
        "{text}"
    );
    assert!(
        !text.contains("10.20.250.99"),
        "unknown devices are their own list"
    );
    // Newest first.
    assert!(text.find("10.20.0.11:22") < text.find("203.0.113.50:443"));
    let p1 = page("?asset_id=P-1").await.text();
    assert!(
        p1.contains("203.0.113.50") && !p1.contains("10.20.0.11:22"),
        "{p1}"
    );
    let recent = timefmt::format(now - time::Duration::hours(1));
    let r = h
        .get(
            &format!("/network/violations?from={recent}"),
            &Cred::Session(bea.clone(), None),
        )
        .await
        .text();
    assert!(
        r.contains("10.20.0.11:22") && !r.contains("203.0.113.50"),
        "{r}"
    );
    let unknown = page("?kind=unknown_device").await.text();
    assert!(
        unknown.contains("10.20.250.99") && unknown.contains("infusion-pump"),
        "{unknown}"
    );
    let bad = page("?from=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("RFC 3339"), "{}", bad.text());
    // The network page links here.
    let net = h.get("/network", &Cred::Session(bea.clone(), None)).await;
    assert!(
        net.text().contains("id=\"violations-link\""),
        "{}",
        net.text()
    );
    let (phil, _) = h.session_for("phil", Role::Pharmacist).await;
    let r = h
        .get("/network/violations", &Cred::Session(phil, None))
        .await;
    assert_eq!(r.status, 403);
}
