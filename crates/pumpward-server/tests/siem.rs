//! The server's SIEM feed against a real rsyslog listening with TLS (it
//! verifies our client certificate): a pump's event, stored by the
//! gateway's event writer, raises an alert in detection; the alert (and its
//! acknowledgement through the API) arrives in rsyslog as CEF and as JSON,
//! carrying the alert's id, rule and asset. And a SIEM outage across a
//! restart loses nothing while event ingestion carries on.

mod common;
mod siem_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Cred;
use pumpward_core::access::Role;
use pumpward_detect::DetectionConfig;
use pumpward_proto::message::{EventKind, LibraryRejectReason, PumpEvent};
use pumpward_server::detection::{Detection, Outputs};
use pumpward_server::device::EventWriter;
use pumpward_server::metrics::DetectionCounters;
use pumpward_server::siem::{SiemOutput, SiemSinks, SinkConfig, SinkFormat};
use pumpward_store::{AlertFilter, DeviceBatch, DeviceEventRecord, Store};
use siem_common::rsyslog::Rsyslog;

/// What a pump that refused a library sends (the `library_rejected` rule).
fn library_rejected(asset: &str, seq: u64) -> DeviceBatch {
    let ev = PumpEvent {
        seq,
        at: time::OffsetDateTime::now_utc(),
        kind: EventKind::LibraryRejected {
            version: Some("7".into()),
            digest: None,
            reason: LibraryRejectReason::SignatureInvalid,
        },
        detail: BTreeMap::new(),
    };
    let json = serde_json::to_value(&ev).unwrap();
    DeviceBatch {
        asset_id: asset.into(),
        events: vec![DeviceEventRecord {
            seq: seq as i64,
            at: pumpward_core::timefmt::format(ev.at),
            kind: json["kind"].as_str().unwrap().to_owned(),
            body: json.to_string(),
        }],
        ..Default::default()
    }
}

/// A sink to the private rsyslog's TLS input, with our client certificate.
fn tls_sink(rs: &Rsyslog, name: &str, format: SinkFormat) -> SinkConfig {
    SinkConfig {
        name: name.into(),
        destination: format!("syslog+tls://127.0.0.1:{}", rs.tcp),
        format: Some(format),
        ca_file: Some(rs.dir.join("ca.pem")),
        client_cert_file: Some(rs.dir.join("client.pem")),
        client_key_file: Some(rs.dir.join("client.key")),
        server_name: Some("localhost".into()),
        hmac_secret_file: None,
        alerts: true,
        events_min_severity: None,
        retry_max_seconds: Some(1),
        queue_max_mib: None,
    }
}

async fn wait_for(what: &str, secs: u64, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn alert_ids(store: &Store) -> Vec<String> {
    let mut ids: Vec<String> = store
        .list_alerts(&AlertFilter {
            rule: Some("library_rejected".into()),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|a| a.case.alert.id)
        .collect();
    ids.sort();
    ids
}

/// The JSON body of a syslog message (after the header, SD and BOM).
fn json_of(raw: &str) -> Option<serde_json::Value> {
    let at = raw.find("{\"schema\"")?;
    serde_json::from_str(&raw[at..]).ok()
}

/// The CEF extension value of `key` (values here need no unescaping).
fn cef_value<'a>(raw: &'a str, key: &str) -> Option<&'a str> {
    let ext = &raw[raw.find("CEF:0|")?..];
    let start = ext.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &ext[start..];
    // The next ` word=` ends this value.
    let end = rest
        .match_indices(' ')
        .find(|(i, _)| {
            let next = &rest[i + 1..];
            next.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .map_or(rest.len(), |(i, _)| i);
    Some(&rest[..end])
}

#[tokio::test]
async fn a_raised_and_acknowledged_alert_reaches_rsyslog_as_cef_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("rsyslog")).unwrap();
    let Some(mut rs) = Rsyslog::prepare(&tmp.path().join("rsyslog")) else {
        return;
    };
    rs.start();
    let mut h = common::harness().await;
    common::in_service_pump(&h.store, "P-1").await;
    let siem = SiemOutput::start(
        &[
            tls_sink(&rs, "soc-cef", SinkFormat::Cef),
            tls_sink(&rs, "soc-json", SinkFormat::Json),
        ],
        &tmp.path().join("data"),
        "pumpward-test".into(),
        &h.state.metrics.siem,
    )
    .unwrap();
    h.state.siem = Some(siem.clone());
    h.app = pumpward_server::app(h.state.clone());
    let detection = Detection::spawn_with(
        h.store.clone(),
        DetectionConfig::default(),
        Outputs {
            counters: h.state.metrics.detection.clone(),
            siem: Some(siem.clone()),
        },
    );
    let writer = EventWriter::spawn(h.store.clone(), Some(detection.clone()));

    writer.store(library_rejected("P-1", 1)).await.unwrap();
    wait_for("the alert in the store", 20, async || {
        !alert_ids(&h.store).await.is_empty()
    })
    .await;
    let id = alert_ids(&h.store).await.remove(0);
    let received = |rs: &Rsyslog, id: &str| -> Vec<String> {
        rs.received("tls.log")
            .into_iter()
            .filter(|l| l.contains(id))
            .collect()
    };
    wait_for("both formats of the alert in rsyslog", 20, async || {
        received(&rs, &id).len() >= 2
    })
    .await;

    let lines = received(&rs, &id);
    let cef = lines
        .iter()
        .find(|l| l.contains("CEF:0|"))
        .unwrap_or_else(|| panic!("no CEF line: {lines:?}"));
    assert!(cef.contains("|library_rejected|"), "{cef}");
    assert_eq!(cef_value(cef, "externalId"), Some(id.as_str()), "{cef}");
    assert_eq!(cef_value(cef, "alert_id"), Some(id.as_str()), "{cef}");
    assert_eq!(cef_value(cef, "rule"), Some("library_rejected"), "{cef}");
    assert_eq!(cef_value(cef, "asset_id"), Some("P-1"), "{cef}");
    assert_eq!(cef_value(cef, "care_area"), Some("Adult ICU"), "{cef}");
    assert_eq!(cef_value(cef, "state"), Some("new"), "{cef}");
    assert_eq!(cef_value(cef, "dvchost"), Some("pumpward-test"), "{cef}");
    assert!(
        cef_value(cef, "csf").is_some_and(|c| !c.is_empty()),
        "{cef}"
    );
    assert!(cef_value(cef, "evidence").is_some(), "{cef}");
    let json = lines
        .iter()
        .find_map(|l| json_of(l))
        .unwrap_or_else(|| panic!("no JSON line: {lines:?}"));
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["msg_id"], "alert");
    assert_eq!(json["signature_id"], "library_rejected");
    assert_eq!(json["fields"]["alert_id"], id.as_str());
    assert_eq!(json["fields"]["rule"], "library_rejected");
    assert_eq!(json["fields"]["asset_id"], "P-1");
    assert_eq!(json["fields"]["state"], "new");
    // The stored alert's facts, not the rule's defaults.
    let stored = h.store.alert(&id).await.unwrap();
    assert_eq!(json["severity"], stored.case.alert.severity.as_str());
    assert_eq!(
        json["fields"]["csf"].as_str(),
        stored.case.alert.csf.as_deref()
    );

    // An analyst acknowledges it: the state change follows, as its own message.
    let token = h.token_for("ana", Role::Security).await;
    let r = h
        .json(
            "POST",
            &format!("/api/v1/alerts/{id}"),
            &Cred::Bearer(token.clone()),
            serde_json::json!({"action": "acknowledge"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A comment is not a state change: nothing is sent for it.
    let r = h
        .json(
            "POST",
            &format!("/api/v1/alerts/{id}"),
            &Cred::Bearer(token.clone()),
            serde_json::json!({"action": "comment", "note": "swapping the pump"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ack = format!("{id}:acknowledged");
    wait_for("the acknowledgement in rsyslog", 20, async || {
        received(&rs, &ack).len() >= 2
    })
    .await;
    let lines = received(&rs, &ack);
    let json = lines.iter().find_map(|l| json_of(l)).unwrap();
    assert_eq!(json["msg_id"], "alert_update");
    assert_eq!(json["fields"]["state"], "acknowledged");
    assert_eq!(json["fields"]["owner"], "ana");
    let cef = lines.iter().find(|l| l.contains("CEF:0|")).unwrap();
    assert_eq!(cef_value(cef, "state"), Some("acknowledged"), "{cef}");

    // The counters on /metrics: two messages per sink, all delivered.
    let admin = h.token_for("root", Role::Admin).await;
    let want = [
        "pumpward_siem_queued_total{sink=\"soc-cef\"} 2",
        "pumpward_siem_delivered_total{sink=\"soc-cef\"} 2",
        "pumpward_siem_delivered_total{sink=\"soc-json\"} 2",
        "pumpward_siem_dropped_total{sink=\"soc-json\"} 0",
        "pumpward_siem_failed_attempts_total{sink=\"soc-cef\"} 0",
        "pumpward_siem_queue_depth{sink=\"soc-cef\"} 0",
        "pumpward_detection_alerts_raised_total 1",
        "pumpward_detection_events_dropped_total 0",
    ];
    let mut text = String::new();
    wait_for("the counters", 10, async || {
        text = h.get("/metrics", &Cred::Bearer(admin.clone())).await.text();
        want.iter().all(|w| text.contains(w))
    })
    .await;
    assert!(
        text.lines().any(|l| l
            .strip_prefix("pumpward_detection_events_evaluated_total ")
            .is_some_and(|n| n.parse::<u64>().unwrap() >= 1)),
        "{text}"
    );
    // Exactly one copy of each message per format (no resend on a healthy link).
    rs.stop();
    let all = rs.received("tls.log");
    assert_eq!(all.len(), 4, "{all:#?}");
    siem.shutdown(Duration::from_secs(1)).await;
}

fn counters(sinks: &SiemSinks) -> pumpward_server::siem::SinkCounters {
    sinks.counters().remove(0)
}

#[tokio::test]
async fn a_siem_outage_across_a_restart_loses_nothing_and_ingestion_carries_on() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("rsyslog")).unwrap();
    // Prepared (port chosen) but not started: the SIEM is down.
    let Some(mut rs) = Rsyslog::prepare(&tmp.path().join("rsyslog")) else {
        return;
    };
    let data = tmp.path().join("data");
    let store = Store::open_sqlite(&tmp.path().join("store")).await.unwrap();
    for i in 1..=6 {
        common::in_service_pump(&store, &format!("P-{i}")).await;
    }
    let sinks = [tls_sink(&rs, "soc", SinkFormat::Cef)];

    // First run: three alerts raised while rsyslog is down.
    let metrics = SiemSinks::default();
    let counted = DetectionCounters::default();
    let first = SiemOutput::start(&sinks, &data, "pumpward-test".into(), &metrics).unwrap();
    let detection = Detection::spawn_with(
        store.clone(),
        DetectionConfig::default(),
        Outputs {
            counters: counted.clone(),
            siem: Some(first.clone()),
        },
    );
    let writer = EventWriter::spawn(store.clone(), Some(detection));
    for i in 1..=3 {
        writer
            .store(library_rejected(&format!("P-{i}"), 1))
            .await
            .unwrap();
    }
    // Ingestion went on: every event is stored, evaluated and its alert
    // recorded, while the SIEM refuses every attempt.
    wait_for("three alerts recorded and queued", 20, async || {
        alert_ids(&store).await.len() == 3 && counters(&metrics).export.queued == 3
    })
    .await;
    wait_for("failed delivery attempts", 20, async || {
        counters(&metrics).export.retried > 0
    })
    .await;
    assert_eq!(counters(&metrics).export.delivered, 0);
    assert_eq!(counted.events_dropped.get(), 0);
    assert_eq!(counted.alerts_raised.get(), 3);
    // A graceful stop cannot deliver: the three stay queued on disk.
    first.shutdown(Duration::from_millis(300)).await;
    assert_eq!(counters(&metrics).export.queued, 3);
    drop(writer);

    // Second run on the same data directory: three more, still down.
    let metrics = SiemSinks::default();
    let second = SiemOutput::start(&sinks, &data, "pumpward-test".into(), &metrics).unwrap();
    assert_eq!(counters(&metrics).export.queued, 3, "the queue survived");
    let detection = Detection::spawn_with(
        store.clone(),
        DetectionConfig::default(),
        Outputs {
            counters: DetectionCounters::default(),
            siem: Some(second.clone()),
        },
    );
    let writer = EventWriter::spawn(store.clone(), Some(detection));
    for i in 4..=6 {
        writer
            .store(library_rejected(&format!("P-{i}"), 1))
            .await
            .unwrap();
    }
    wait_for("six alerts recorded and queued", 20, async || {
        alert_ids(&store).await.len() == 6 && counters(&metrics).export.queued == 6
    })
    .await;

    // The SIEM comes back: every alert arrives, the queue empties.
    rs.start();
    let want = alert_ids(&store).await;
    wait_for("all six alerts in rsyslog", 30, async || {
        let got = rs.received("tls.log");
        want.iter()
            .all(|id| got.iter().any(|l| l.contains(id.as_str())))
    })
    .await;
    wait_for("the queue to empty", 10, async || {
        counters(&metrics).export.queued == 0
    })
    .await;
    let got = rs.received("tls.log");
    for id in &want {
        let line = got.iter().find(|l| l.contains(id.as_str())).unwrap();
        assert_eq!(cef_value(line, "externalId"), Some(id.as_str()), "{line}");
        assert_eq!(cef_value(line, "rule"), Some("library_rejected"), "{line}");
    }
    // In order: the first run's three before the second's.
    let order: Vec<&str> = got
        .iter()
        .filter_map(|l| cef_value(l, "asset_id"))
        .collect();
    let first_of = |p: &str| order.iter().position(|a| *a == p).unwrap();
    assert!(
        ["P-1", "P-2", "P-3"].into_iter().map(first_of).max()
            < ["P-4", "P-5", "P-6"].into_iter().map(first_of).min(),
        "{order:?}"
    );
    second.shutdown(Duration::from_secs(2)).await;
    assert_eq!(counters(&metrics).dropped, 0);
}

#[tokio::test]
async fn a_sink_that_cannot_be_used_refuses_the_start_with_the_file_at_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = SinkConfig {
        name: "soc".into(),
        destination: "syslog+tls://127.0.0.1:6514".into(),
        format: None,
        ca_file: Some(tmp.path().join("missing-ca.pem")),
        client_cert_file: None,
        client_key_file: None,
        server_name: None,
        hmac_secret_file: None,
        alerts: true,
        events_min_severity: None,
        retry_max_seconds: None,
        queue_max_mib: None,
    };
    let e = SiemOutput::start(
        std::slice::from_ref(&sink),
        tmp.path(),
        "pw1".into(),
        &SiemSinks::default(),
    )
    .err()
    .unwrap();
    assert_eq!((e.sink.as_str(), e.key), ("soc", "ca_file"));
    assert!(e.problem.contains("missing-ca.pem"), "{e}");
    // A file that holds no certificate is refused too: verification is
    // never turned off.
    std::fs::write(tmp.path().join("missing-ca.pem"), "not a PEM\n").unwrap();
    let e = SiemOutput::start(&[sink], tmp.path(), "pw1".into(), &SiemSinks::default())
        .err()
        .unwrap();
    assert_eq!(e.key, "ca_file", "{e}");
    // A host name the syslog header cannot carry.
    let e = SiemOutput::start(&[], tmp.path(), "has space".into(), &SiemSinks::default())
        .err()
        .unwrap();
    assert_eq!(e.key, "host", "{e}");
    // Refused before anything was made: no queue directory.
    assert!(!tmp.path().join("siem").join("soc").exists());
}

/// Every `(alert id, state)` the SIEM received as JSON over UDP, until
/// `want` of them arrived or 20 s passed, then whatever else comes within
/// half a second (so that an extra message is seen, not missed).
async fn udp_alert_states(sock: &tokio::net::UdpSocket, want: usize) -> Vec<(String, String)> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let wait = if got.len() >= want {
            Duration::from_millis(500)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let raw = String::from_utf8_lossy(&buf[..n]).into_owned();
                if let Some(j) = json_of(&raw) {
                    got.push((
                        j["fields"]["alert_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        j["fields"]["state"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
            _ => return got,
        }
    }
}

/// The alert pages' steps (one alert, and bulk) reach the SIEM like the
/// API's; a refused bulk step sends nothing, and a comment is not a change.
#[tokio::test]
async fn alert_steps_taken_in_the_ui_reach_the_siem() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sink = SinkConfig {
        name: "soc-udp".into(),
        destination: format!("syslog+udp://{}", sock.local_addr().unwrap()),
        format: Some(SinkFormat::Json),
        ca_file: None,
        client_cert_file: None,
        client_key_file: None,
        server_name: None,
        hmac_secret_file: None,
        alerts: true,
        events_min_severity: None,
        retry_max_seconds: Some(1),
        queue_max_mib: None,
    };
    let mut h = common::harness().await;
    for id in ["P-1", "P-2"] {
        common::in_service_pump(&h.store, id).await;
    }
    let siem = SiemOutput::start(
        &[sink],
        &tmp.path().join("data"),
        "pumpward-test".into(),
        &h.state.metrics.siem,
    )
    .unwrap();
    h.state.siem = Some(siem.clone());
    h.app = pumpward_server::app(h.state.clone());
    let detection = Detection::spawn_with(
        h.store.clone(),
        DetectionConfig::default(),
        Outputs {
            counters: h.state.metrics.detection.clone(),
            siem: Some(siem.clone()),
        },
    );
    let writer = EventWriter::spawn(h.store.clone(), Some(detection.clone()));
    writer.store(library_rejected("P-1", 1)).await.unwrap();
    writer.store(library_rejected("P-2", 1)).await.unwrap();
    wait_for("two alerts", 20, async || {
        alert_ids(&h.store).await.len() == 2
    })
    .await;
    let ids = alert_ids(&h.store).await;
    let mut raised = udp_alert_states(&sock, 2).await;
    raised.sort();
    assert_eq!(
        raised,
        [
            (ids[0].clone(), "new".into()),
            (ids[1].clone(), "new".into())
        ]
    );

    let (soc, csrf) = h.session_for("sam", Role::Security).await;
    let step = |path: String, fields: Vec<(&'static str, String)>| {
        let (h, soc, csrf) = (&h, soc.clone(), csrf.clone());
        async move {
            let mut f: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
            f.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
            h.form(&path, &soc, &f).await
        }
    };
    let r = step(
        format!("/alerts/{}", ids[0]),
        vec![("action", "acknowledge".into())],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = step(
        format!("/alerts/{}", ids[0]),
        vec![("action", "comment".into()), ("note", "swapping".into())],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        udp_alert_states(&sock, 1).await,
        [(ids[0].clone(), "acknowledged".into())]
    );
    // Resolving both is refused as a whole (ids[1] is still new): nothing
    // is sent or changed.
    let both = |action: &str| {
        vec![
            ("alert", ids[0].clone()),
            ("alert", ids[1].clone()),
            ("action", action.to_owned()),
            ("note", "pump swapped".into()),
        ]
    };
    let r = step("/alerts/bulk".into(), both("resolve")).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("Nothing was changed"), "{}", r.text());
    assert!(udp_alert_states(&sock, 0).await.is_empty());
    assert_eq!(
        h.store.alert(&ids[0]).await.unwrap().case.state.as_str(),
        "acknowledged"
    );
    let r = step(
        "/alerts/bulk".into(),
        vec![("alert", ids[1].clone()), ("action", "acknowledge".into())],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        udp_alert_states(&sock, 1).await,
        [(ids[1].clone(), "acknowledged".into())]
    );
    let r = step("/alerts/bulk".into(), both("resolve")).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let mut changed = udp_alert_states(&sock, 2).await;
    changed.sort();
    assert_eq!(
        changed,
        [
            (ids[0].clone(), "resolved".into()),
            (ids[1].clone(), "resolved".into())
        ]
    );
    siem.shutdown(Duration::from_secs(1)).await;
}
