//! Incidents (API and pages), the alert detail and bulk actions, and the
//! rules page, whose edits change what the running engine raises.

mod common;

use common::{harness, Cred, Harness};
use pumpward_core::access::Role;
use pumpward_detect::event::Event;
use pumpward_detect::{Context, DetectionConfig, Engine};
use pumpward_store::AlertFilter;
use serde_json::json;
use std::time::{Duration, Instant};

/// Bursts of refused connections from `peers` (six each, one second
/// apart), recorded as security events, run through a default engine, and
/// the alerts stored. Returns the alert ids in `peers` order.
async fn raise(h: &Harness, peers: &[&str]) -> Vec<String> {
    let t0 = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let mut engine = Engine::new(DetectionConfig::default());
    let mut alerts = Vec::new();
    let mut events = Vec::new();
    for (n, peer) in peers.iter().enumerate() {
        for i in 0..6 {
            events.push(Event::auth_failure(
                format!("gw:refusal:{n}:{i}"),
                t0 + time::Duration::seconds(i),
                peer.parse().unwrap(),
                "unknown_ca".into(),
            ));
        }
    }
    h.store.record_security_events(&events).await.unwrap();
    for (i, e) in events.iter().enumerate() {
        engine.process(&Context::default(), i as u64 + 1, e, &mut alerts);
    }
    assert_eq!(alerts.len(), peers.len(), "{alerts:?}");
    h.store.record_alerts(&alerts).await.unwrap();
    alerts.into_iter().map(|a| a.id).collect()
}

async fn audits(h: &Harness, action: &str) -> usize {
    h.store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn incidents_through_the_api() {
    let h = harness().await;
    let ids = raise(&h, &["10.9.9.1", "10.9.9.2", "10.9.9.3"]).await;
    let soc = Cred::Bearer(h.token_for("sam", Role::Security).await);
    let biomed = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    let pharmacist = Cred::Bearer(h.token_for("phil", Role::Pharmacist).await);

    // Biomed reads alerts but does not open incidents; pharmacists see neither.
    let body = json!({"title": "Certificate probing", "alerts": [ids[0], ids[1]]});
    let r = h
        .json("POST", "/api/v1/incidents", &biomed, body.clone())
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = h.get("/api/v1/incidents", &pharmacist).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Bad input: no title, no alerts, an unknown alert; nothing is opened.
    for bad in [
        json!({"title": " ", "alerts": [ids[0]]}),
        json!({"title": "x", "alerts": []}),
        json!({"title": "x", "alerts": [ids[0], "no-such-alert"]}),
        json!({"title": "x", "alerts": [ids[0]], "severity": "apocalyptic"}),
    ] {
        let r = h.json("POST", "/api/v1/incidents", &soc, bad.clone()).await;
        assert!(
            [400, 404, 422].contains(&r.status.as_u16()),
            "{bad}: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!(
        h.get("/api/v1/incidents", &biomed).await.json()["items"],
        json!([])
    );

    let r = h.json("POST", "/api/v1/incidents", &soc, body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let inc = r.json();
    let id = inc["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("INC-"), "{id}");
    assert_eq!(r.headers["location"], format!("/api/v1/incidents/{id}"));
    assert_eq!(inc["alerts"], json!([ids[0], ids[1]]));
    assert_eq!(inc["state"], "open");
    assert_eq!(inc["checklist"].as_array().unwrap().len(), 7);
    let path = format!("/api/v1/incidents/{id}");
    // An alert already in this incident cannot open another one.
    let r = h
        .json(
            "POST",
            "/api/v1/incidents",
            &soc,
            json!({"title": "again", "alerts": [ids[1]]}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());

    let step = |v: serde_json::Value| {
        let (h, path, soc) = (&h, path.clone(), soc.clone());
        async move { h.json("POST", &path, &soc, v).await }
    };
    // Closing while open: refused, nothing changes.
    let r = step(json!({"action": "close", "note": "done"})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = step(json!({"action": "add_alert", "alert": ids[2]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["alerts"].as_array().unwrap().len(), 3);
    let r = step(json!({"action": "add_alert", "alert": ids[2]})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = step(json!({"action": "complete_step", "step": "teleport", "note": "x"})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = step(json!({"action": "note", "note": "vendor called back"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = step(json!({"action": "contain"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = step(json!({"action": "contain"})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let before = h.get(&path, &biomed).await.json();
    let r = step(json!({"action": "close", "note": "done"})).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["detail"].as_str().unwrap().contains("checklist"));
    assert_eq!(h.get(&path, &biomed).await.json(), before);
    for s in [
        "clinical_contingency",
        "biomed_swap",
        "network_contained",
        "evidence_kept",
        "vendor_contact",
        "patient_safety_review",
    ] {
        let r = step(json!({"action": "complete_step", "step": s, "note": "ok"})).await;
        assert_eq!(r.status, 200, "{s}: {}", r.text());
    }
    let r = step(
        json!({"action": "complete_step", "step": "regulatory_reporting",
        "note": "no harm, no report", "not_applicable": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Biomed cannot take steps.
    let r = h
        .json(
            "POST",
            &path,
            &biomed,
            json!({"action": "close", "note": "x"}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = step(json!({"action": "close", "note": "certificate revoked, pump re-enrolled"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = h.get(&path, &biomed).await.json();
    assert_eq!(got["state"], "closed");
    assert_eq!(got["alert_details"].as_array().unwrap().len(), 3);
    assert!(got["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["what"] == "vendor called back"));
    let r = step(json!({"action": "note", "note": "late"})).await;
    assert_eq!(r.status, 200, "a note after closing is part of the record");

    let list = h
        .get("/api/v1/incidents?state=closed", &biomed)
        .await
        .json();
    assert_eq!(list["items"][0]["id"], id);
    assert_eq!(
        h.get("/api/v1/incidents?state=open", &biomed).await.json()["items"],
        json!([])
    );
    assert_eq!(
        h.get("/api/v1/incidents?state=x", &biomed).await.status,
        400
    );
    assert_eq!(audits(&h, "incident.open").await, 1);
    assert_eq!(audits(&h, "incident.close").await, 1);
}

#[tokio::test]
async fn alert_detail_and_bulk_actions_in_the_ui() {
    let h = harness().await;
    let ids = raise(&h, &["10.9.9.1", "10.9.9.2", "10.9.9.3"]).await;
    let (soc, csrf) = h.session_for("sam", Role::Security).await;
    let (bea, _) = h.session_for("bea", Role::Biomed).await;
    let s = Cred::Session(soc.clone(), None);

    // The detail page: the evidence, and the refusal that completed the
    // burst (the fifth), found among the stored security events.
    let r = h.get(&format!("/alerts/{}", ids[0]), &s).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    assert!(page.contains("id=\"alert-evidence\""), "{page}");
    assert!(
        page.contains("<code>gw:refusal:0:4</code></th>\n        <td>gateway</td>"),
        "{page}"
    );
    assert!(page.contains("id=\"acknowledge\""), "{page}");
    // Biomed sees it without buttons; an unknown alert is a 404 page.
    let r = h
        .get(
            &format!("/alerts/{}", ids[0]),
            &Cred::Session(bea.clone(), None),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("id=\"acknowledge\""));
    assert_eq!(h.get("/alerts/nope", &s).await.status, 404);

    // A form without the CSRF token is refused.
    let r = h
        .form(
            &format!("/alerts/{}", ids[0]),
            &soc,
            &[("action", "acknowledge")],
        )
        .await;
    assert_eq!(r.status, 403);
    // Resolving a new alert: refused on the page, nothing changed.
    let r = h
        .form(
            &format!("/alerts/{}", ids[0]),
            &soc,
            &[
                ("csrf", csrf.as_str()),
                ("action", "resolve"),
                ("note", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("cannot resolve"), "{}", r.text());
    assert_eq!(
        h.store.alert(&ids[0]).await.unwrap().case.state.as_str(),
        "new"
    );
    let r = h
        .form(
            &format!("/alerts/{}", ids[0]),
            &soc,
            &[("csrf", csrf.as_str()), ("action", "acknowledge")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = h
        .form(
            &format!("/alerts/{}", ids[0]),
            &soc,
            &[
                ("csrf", csrf.as_str()),
                ("action", "comment"),
                ("note", "looking"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let page = h.get(&format!("/alerts/{}", ids[0]), &s).await.text();
    assert!(
        page.contains("looking") && page.contains("id=\"resolve\""),
        "{page}"
    );

    // Bulk: resolving ids[0] (acknowledged) and ids[1] (new) is refused as a
    // whole; acknowledging ids[1] and ids[2] works.
    let r = h
        .form(
            "/alerts/bulk",
            &soc,
            &[
                ("csrf", csrf.as_str()),
                ("alert", ids[0].as_str()),
                ("alert", ids[1].as_str()),
                ("action", "resolve"),
                ("note", "fixed"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains(&ids[1]), "{}", r.text());
    assert_eq!(
        h.store.alert(&ids[0]).await.unwrap().case.state.as_str(),
        "acknowledged"
    );
    let r = h
        .form(
            "/alerts/bulk",
            &soc,
            &[
                ("csrf", csrf.as_str()),
                ("alert", ids[1].as_str()),
                ("alert", ids[2].as_str()),
                ("action", "acknowledge"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let (acked, _) = h
        .store
        .list_alerts(&AlertFilter {
            state: Some("acknowledged".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(acked.len(), 3);
    // Biomed cannot act in bulk.
    let r = h
        .form(
            "/alerts/bulk",
            &bea,
            &[("alert", ids[1].as_str()), ("action", "acknowledge")],
        )
        .await;
    assert_eq!(r.status, 403);

    // An incident from the selection, then worked on its page.
    let r = h
        .form(
            "/alerts/bulk",
            &soc,
            &[
                ("csrf", csrf.as_str()),
                ("alert", ids[0].as_str()),
                ("alert", ids[1].as_str()),
                ("action", "incident"),
                ("title", "Certificate probing"),
                ("severity", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.headers["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/incidents/INC-"), "{to}");
    let inc_path = to.split('?').next().unwrap().to_owned();
    let page = h.get(&to, &s).await.text();
    assert!(
        page.contains("Certificate probing") && page.contains("id=\"contain\""),
        "{page}"
    );
    assert!(h.get("/incidents", &s).await.text().contains(&inc_path));
    assert!(h
        .get(&format!("/alerts/{}", ids[0]), &s)
        .await
        .text()
        .contains(&inc_path));

    let post = |fields: Vec<(&'static str, String)>| {
        let (h, soc, csrf, inc_path) = (&h, soc.clone(), csrf.clone(), inc_path.clone());
        async move {
            let mut all: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
            all.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
            h.form(&inc_path, &soc, &all).await
        }
    };
    let r = post(vec![
        ("action", "complete_step".into()),
        ("step", "clinical_contingency".into()),
        ("note", "spare pumps on the ward".into()),
    ])
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let r = post(vec![("action", "contain".into())]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    // Closing with checklist steps open: refused with the reason, nothing changed.
    let r = post(vec![("action", "close".into()), ("note", "done".into())]).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("checklist steps not done"),
        "{}",
        r.text()
    );
    let page = h.get(&inc_path, &s).await.text();
    assert!(page.contains("spare pumps on the ward"), "{page}");
    assert!(page.contains(">contained<"), "{page}");
    // Biomed reads the incident but has no forms.
    let r = h.get(&inc_path, &Cred::Session(bea, None)).await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("id=\"close\""));
}

#[tokio::test]
async fn editing_a_rule_changes_what_the_running_engine_raises() {
    let mut h = harness().await;
    let detection =
        pumpward_server::detection::Detection::spawn(h.store.clone(), DetectionConfig::default());
    h.state.rules.detection = Some(detection.clone());
    h.app = pumpward_server::app(h.state.clone());
    let (soc, csrf) = h.session_for("sam", Role::Security).await;
    let (bea, bea_csrf) = h.session_for("bea", Role::Biomed).await;
    let s = Cred::Session(soc.clone(), None);

    let page = h.get("/detection/rules", &s).await.text();
    assert!(page.contains("id=\"rule-auth_failure_burst\""), "{page}");
    assert!(page.contains("DE.CM-01"), "{page}");
    assert!(page.contains("id=\"edit-auth_failure_burst\""), "{page}");
    let r = h
        .get("/detection/rules", &Cred::Session(bea.clone(), None))
        .await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("id=\"edit-auth_failure_burst\""));

    let edit = |fields: Vec<(&'static str, &'static str)>, who: &str, token: &str| {
        let (h, who, token) = (&h, who.to_owned(), token.to_owned());
        async move {
            let mut all: Vec<(&str, &str)> = vec![("csrf", token.as_str())];
            all.extend(fields);
            h.form("/detection/rules/auth_failure_burst", &who, &all)
                .await
        }
    };
    let good = vec![
        ("action", "save"),
        ("enabled", "yes"),
        ("severity", "critical"),
        ("threshold", "8"),
        ("window", "5m"),
    ];
    // Biomed may not change rules.
    let r = edit(good.clone(), &bea, &bea_csrf).await;
    assert_eq!(r.status, 403);
    // Bad values: refused with the field's error, nothing saved.
    for (field, value, says) in [
        ("threshold", "0", "Threshold: 0 is outside 1 to"),
        ("threshold", "many", "Threshold: give a whole number"),
        ("window", "5 minutes", "Window:"),
        ("window", "30d", "Window:"),
        ("severity", "dire", "Severity:"),
    ] {
        let fields: Vec<_> = good
            .iter()
            .map(|&(k, v)| if k == field { (k, value) } else { (k, v) })
            .collect();
        let r = edit(fields, &soc, &csrf).await;
        assert_eq!(r.status, 422, "{field}={value}: {}", r.text());
        assert!(r.text().contains(says), "{field}={value}: {}", r.text());
    }
    assert_eq!(h.store.detection_settings().await.unwrap(), None);
    assert_eq!(audits(&h, "detection.configure").await, 0);
    let r = h
        .form(
            "/detection/rules/no_such_rule",
            &soc,
            &[("csrf", csrf.as_str()), ("action", "save")],
        )
        .await;
    assert_eq!(r.status, 404);

    let r = edit(good.clone(), &soc, &csrf).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(audits(&h, "detection.configure").await, 1);
    let saved = h.store.detection_settings().await.unwrap().unwrap();
    assert!(saved.rules.contains("threshold = 8"), "{}", saved.rules);
    let page = h.get("/detection/rules", &s).await.text();
    let row = page
        .split("id=\"rule-auth_failure_burst\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains("<td class=\"rule-threshold\">8</td>"), "{row}");
    assert!(row.contains("this page"), "{row}");

    // The running engine: six refusals from one address no longer make a
    // burst; eight from another do, at the new severity.
    let now = time::OffsetDateTime::now_utc();
    let refusal = |i: u32, peer: &str| {
        Event::auth_failure(
            format!("gateway:refusal:t:{i}"),
            now,
            peer.parse().unwrap(),
            "unknown CA".into(),
        )
    };
    for i in 0..6 {
        detection.observe(refusal(i, "10.7.7.1"));
    }
    for i in 6..14 {
        detection.observe(refusal(i, "10.7.7.2"));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = h
            .store
            .list_alerts(&AlertFilter::default())
            .await
            .unwrap()
            .0;
    }
    // Events are evaluated in order, so once the second address's alert is
    // stored the first address's six have been judged too.
    let got: Vec<(String, &str)> = got
        .iter()
        .map(|a| {
            (
                a.case.alert.key.subject.clone(),
                a.case.alert.severity.as_str(),
            )
        })
        .collect();
    assert_eq!(got, [("10.7.7.2".to_owned(), "critical")]);

    // Back to the default: the saved override is gone, and audited.
    let r = edit(vec![("action", "reset")], &soc, &csrf).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        h.store
            .detection_settings()
            .await
            .unwrap()
            .unwrap()
            .rules
            .trim(),
        ""
    );
    assert_eq!(audits(&h, "detection.configure").await, 2);
}
