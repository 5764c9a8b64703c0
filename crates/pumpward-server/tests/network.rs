//! Live flows in the server: real IPFIX datagrams to the UDP collector and
//! lines appended to a Zeek conn.log are evaluated against the stored
//! policy; violations become security events and the detection rules'
//! alerts. Also the network pages and the policy API.

mod common;

use common::{harness, Cred};
use pumpward_core::access::Role;
use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_detect::DetectionConfig;
use pumpward_flow::ipfix::MessageBuilder;
use pumpward_flow::{Flow, FlowSource, ObservedMac, Transport};
use pumpward_server::detection::Detection;
use pumpward_server::network::{self, NetworkLive, NetworkMetrics, NetworkOptions};
use pumpward_store::{Actor, AlertFilter, SecurityEventFilter, Store};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Two pumps in the starter policy's infusion-pump zone, and the pump
/// server they talk to.
async fn fleet(store: &Store) {
    for (id, ip, mac, zone) in [
        ("P-1", "10.20.0.11", "02:00:00:00:00:01", "infusion-pump"),
        ("P-2", "10.20.0.12", "02:00:00:00:00:02", "infusion-pump"),
        ("PS-1", "10.21.0.10", "02:00:00:00:01:01", "pump-server"),
    ] {
        let spec = AssetSpec::validate(&AssetDraft {
            asset_id: id.into(),
            kind: Some("pump".into()),
            manufacturer: "ICU Medical".into(),
            model: "Plum 360".into(),
            serial_number: format!("SN-{id}"),
            firmware_version: "15.11".into(),
            care_area: Some("Adult ICU".into()),
            mac_address: Some(mac.into()),
            ip_address: Some(ip.into()),
            zone: Some(zone.into()),
            // Not the vendor's default, so the only alerts are the network's.
            credential_state: Some("changed".into()),
            ..Default::default()
        })
        .unwrap();
        store
            .create_asset(&spec, Some(LifecycleState::InService), &Actor::system())
            .await
            .unwrap();
    }
}

fn mac(s: &str) -> Option<ObservedMac> {
    let b: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    Some(ObservedMac(b.try_into().unwrap()))
}

fn flow(from: &str, from_mac: &str, to: &str, port: u16) -> Flow {
    Flow {
        start_us: (time::OffsetDateTime::now_utc().unix_timestamp() - 5) * 1_000_000,
        duration_us: Some(1_000_000),
        transport: Transport::Tcp,
        orig_addr: from.parse::<IpAddr>().unwrap(),
        orig_port: 40_000,
        resp_addr: to.parse().unwrap(),
        resp_port: port,
        orig_mac: mac(from_mac),
        resp_mac: None,
        orig_bytes: 1200,
        resp_bytes: 0,
        orig_packets: 3,
        resp_packets: 0,
        source: FlowSource::Ipfix,
        sensor_uid: None,
        conn_state: None,
    }
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn alert_keys(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = store
        .list_alerts(&AlertFilter::default())
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|a| format!("{}:{}", a.case.alert.key.rule, a.case.alert.key.subject))
        .collect();
    v.sort();
    v
}

async fn event_kinds(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = store
        .list_security_events(&SecurityEventFilter::default())
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|e| e.event.body.kind().as_str().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn ipfix_datagrams_raise_violations_security_events_and_alerts() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(t.path()).await.unwrap();
    fleet(&store).await;
    let detection = Detection::spawn(store.clone(), DetectionConfig::default());
    let live = Arc::new(NetworkLive::default());
    let metrics = NetworkMetrics::default();
    let running = network::start(
        store.clone(),
        Some(detection),
        live.clone(),
        metrics.clone(),
        &NetworkOptions {
            flow_listen: Some("127.0.0.1:0".parse().unwrap()),
            zeek_conn_log: None,
        },
    )
    .await
    .unwrap();
    let to = running.flow_addr.unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // Garbage first: counted, and the collector goes on.
    sock.send_to(b"\x00\x0agarbage", to).await.unwrap();

    let flows = [
        // Allowed: pump to its pump server on the device port.
        flow("10.20.0.11", "02:00:00:00:00:01", "10.21.0.10", 443),
        // Pump to the internet.
        flow("10.20.0.11", "02:00:00:00:00:01", "203.0.113.9", 443),
        // Pump to pump: east-west.
        flow("10.20.0.12", "02:00:00:00:00:02", "10.20.0.11", 22),
        // A MAC nobody registered, in the pump zone.
        flow("10.20.0.99", "02:00:00:00:00:99", "10.21.0.10", 443),
    ];
    let mut m = MessageBuilder::ipfix(7, time::OffsetDateTime::now_utc().unix_timestamp() as u32);
    let template = m.flow_template(false);
    m.template(256, &template);
    let mut records = Vec::new();
    for f in &flows {
        m.flow_record(f, &mut records);
    }
    m.data(256, &records);
    sock.send_to(&m.build(), to).await.unwrap();

    wait_for("the four flows to be evaluated", || {
        let n = metrics.flows_evaluated.get();
        async move { n >= 4 }
    })
    .await;
    assert_eq!(metrics.malformed_datagrams.get(), 1);
    assert_eq!(metrics.flows_received.get(), 4);
    assert_eq!(metrics.violations.get(), 3);

    let want_events = ["policy_violation", "policy_violation", "unknown_device"];
    wait_for("three security events", || {
        let s = store.clone();
        async move { event_kinds(&s).await.len() >= 3 }
    })
    .await;
    assert_eq!(event_kinds(&store).await, want_events);

    let want_alerts = [
        "east_west_traffic:P-2",
        "pump_to_internet:P-1",
        "unknown_device_in_zone:02:00:00:00:00:99",
    ];
    wait_for("the three alerts", || {
        let s = store.clone();
        async move { alert_keys(&s).await.len() >= 3 }
    })
    .await;
    assert_eq!(alert_keys(&store).await, want_alerts);

    // The view: the allowed conduit and the violations, and the rogue MAC.
    let view = live.view();
    assert_eq!(view.policy_version, None, "the starter policy");
    let ok = view
        .conduits
        .iter()
        .find(|c| c.from_zone == "infusion-pump" && c.to_zone == "pump-server")
        .unwrap();
    assert!(ok.allowed_by.is_some(), "{ok:?}");
    assert!(view
        .conduits
        .iter()
        .any(|c| c.to_zone == "internet" && c.violations == 1));
    assert_eq!(view.unknown_devices.len(), 1, "{:?}", view.unknown_devices);
    assert_eq!(
        view.unknown_devices[0].mac.as_deref(),
        Some("02:00:00:00:00:99")
    );

    running.stop();
}

/// A registered pump's MAC from its own address and, seconds later, from
/// another one (a clone on the pump VLAN): both flows are allowed, but the
/// presence tracker's event raises the `device_in_two_places` alert.
#[tokio::test]
async fn a_registered_mac_in_two_places_at_once_raises_an_alert() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(t.path()).await.unwrap();
    fleet(&store).await;
    let detection = Detection::spawn(store.clone(), DetectionConfig::default());
    let live = Arc::new(NetworkLive::default());
    let metrics = NetworkMetrics::default();
    let running = network::start(
        store.clone(),
        Some(detection),
        live.clone(),
        metrics.clone(),
        &NetworkOptions {
            flow_listen: Some("127.0.0.1:0".parse().unwrap()),
            zeek_conn_log: None,
        },
    )
    .await
    .unwrap();
    let to = running.flow_addr.unwrap();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let original = flow("10.20.0.11", "02:00:00:00:00:01", "10.21.0.10", 443);
    let clone = Flow {
        start_us: original.start_us + 2_000_000,
        ..flow("10.20.0.77", "02:00:00:00:00:01", "10.21.0.10", 443)
    };
    let mut m = MessageBuilder::ipfix(8, time::OffsetDateTime::now_utc().unix_timestamp() as u32);
    let template = m.flow_template(false);
    m.template(256, &template);
    let mut records = Vec::new();
    for f in [&original, &clone] {
        m.flow_record(f, &mut records);
    }
    m.data(256, &records);
    sock.send_to(&m.build(), to).await.unwrap();

    wait_for("the alert", || {
        let s = store.clone();
        async move { !alert_keys(&s).await.is_empty() }
    })
    .await;
    assert_eq!(alert_keys(&store).await, ["device_in_two_places:P-1"]);
    assert_eq!(metrics.flows_evaluated.get(), 2);
    assert_eq!(
        metrics.violations.get(),
        0,
        "both flows are allowed by the policy"
    );
    assert_eq!(event_kinds(&store).await, ["policy_violation"]);
    // Both sightings are the evidence: the event's flow is the clone's, its
    // earlier flow the original's (addresses, times, bytes); the alert too.
    let events = store
        .list_security_events(&SecurityEventFilter::default())
        .await
        .unwrap()
        .0;
    let pumpward_detect::Body::PolicyViolation {
        flow: later,
        earlier_flow: Some(earlier),
        ..
    } = &events[0].event.body
    else {
        panic!("{:?}", events[0].event.body);
    };
    assert_eq!(later.orig_addr, clone.orig_addr);
    assert_eq!(later.start_us, clone.start_us);
    assert_eq!(earlier.orig_addr, original.orig_addr);
    assert_eq!(earlier.start_us, original.start_us);
    assert_eq!(earlier.orig_bytes, original.orig_bytes);
    let alerts = store.list_alerts(&AlertFilter::default()).await.unwrap().0;
    let evidence = &alerts[0].case.alert.evidence;
    assert_eq!(evidence["flow"]["orig_addr"], "10.20.0.77", "{evidence}");
    assert_eq!(
        evidence["earlier_flow"]["orig_addr"], "10.20.0.11",
        "{evidence}"
    );
    running.stop();
}

const CONN_HEADER: &str = "#separator \\x09\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\torig_l2_addr\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\n";

fn conn_line(uid: &str, from: &str, mac: &str, to: &str, port: u16) -> String {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp() - 2;
    format!("{ts}.000000\t{uid}\t{from}\t40000\t{to}\t{port}\ttcp\t{mac}\n")
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::test]
async fn a_zeek_conn_log_is_followed_while_written_and_through_rotation() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::open_sqlite(&data).await.unwrap();
    fleet(&store).await;
    let log = t.path().join("conn.log");
    append(&log, CONN_HEADER);
    let live = Arc::new(NetworkLive::default());
    let metrics = NetworkMetrics::default();
    let detection = Detection::spawn(store.clone(), DetectionConfig::default());
    let running = network::start(
        store.clone(),
        Some(detection),
        live.clone(),
        metrics.clone(),
        &NetworkOptions {
            flow_listen: None,
            zeek_conn_log: Some(log.clone()),
        },
    )
    .await
    .unwrap();

    // Written after the server started, in two pieces (a line cut in half).
    let line = conn_line("C1", "10.20.0.11", "02:00:00:00:00:01", "10.21.0.10", 443);
    let (a, b) = line.split_at(20);
    append(&log, a);
    tokio::time::sleep(Duration::from_millis(600)).await;
    append(&log, b);
    wait_for("the first flow", || {
        let n = metrics.flows_evaluated.get();
        async move { n >= 1 }
    })
    .await;
    assert_eq!(metrics.violations.get(), 0);

    // Zeek rotates: the old file moves away, a new one starts with its header.
    std::fs::rename(&log, t.path().join("conn.2026-11-26.log")).unwrap();
    append(
        &log,
        &format!(
            "{CONN_HEADER}{}",
            conn_line(
                "C2",
                "10.20.0.11",
                "02:00:00:00:00:01",
                "198.51.100.7",
                8080
            )
        ),
    );
    wait_for("the flow of the new file", || {
        let n = metrics.flows_evaluated.get();
        async move { n >= 2 }
    })
    .await;
    assert_eq!(metrics.violations.get(), 1);
    wait_for("the pump-to-internet alert", || {
        let s = store.clone();
        async move { alert_keys(&s).await == ["pump_to_internet:P-1"] }
    })
    .await;
    // A malformed line is skipped and counted, not fatal.
    append(&log, "not\ta\tflow\n");
    append(
        &log,
        &conn_line("C3", "10.20.0.12", "02:00:00:00:00:02", "10.21.0.10", 443),
    );
    wait_for("the flow after the bad line", || {
        let n = metrics.flows_evaluated.get();
        async move { n >= 3 }
    })
    .await;
    assert_eq!(metrics.records_skipped.get(), 1);
    running.stop();
}

fn session(c: &str) -> Cred {
    Cred::Session(c.to_owned(), None)
}

#[tokio::test]
async fn policy_pages_editor_versions_and_api() {
    let h = harness().await;
    let (sec, csrf) = h.session_for("sam", Role::Security).await;

    // Nothing saved: the starter policy, its zones and conduits.
    let page = h.get("/network/policy", &session(&sec)).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains("SP 1800-8 starter policy"), "{html}");
    assert!(html.contains("<td>infusion-pump</td>"), "{html}");
    assert!(html.contains(r#"id="policy-editor""#), "{html}");
    assert!(html.contains(r#"id="no-versions""#), "{html}");

    // An error: refused with its line, nothing saved, the text kept.
    let starter = pumpward_net::STARTER_POLICY_TOML;
    let bad = starter.replacen("to = \"pump-server\"", "to = \"pump-srv\"", 1);
    let r = h
        .form(
            "/network/policy",
            &sec,
            &[("csrf", &csrf), ("toml", &bad), ("base_version", "")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let html = r.text();
    assert!(html.contains(r#"id="policy-issues""#), "{html}");
    assert!(html.contains("Line "), "{html}");
    assert!(html.contains("pump-srv"), "{html}");
    assert!(h.store.current_network_policy().await.unwrap().is_none());

    // Without the CSRF token: refused before anything happens.
    let r = h
        .form(
            "/network/policy",
            &sec,
            &[("toml", starter), ("base_version", "")],
        )
        .await;
    assert_eq!(r.status, 403);

    // A good one: saved as version 1, listed, audited.
    let ours = starter.replacen("SP 1800-8 starter policy", "St. Elsewhere", 1);
    let r = h
        .form(
            "/network/policy",
            &sec,
            &[
                ("csrf", &csrf),
                ("toml", &ours),
                ("comment", "our name"),
                ("base_version", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let html = h
        .get("/network/policy?done=policy-saved", &session(&sec))
        .await
        .text();
    assert!(html.contains("St. Elsewhere"), "{html}");
    assert!(html.contains("<td>user:sam</td>"), "{html}");
    assert!(html.contains("<td>our name</td>"), "{html}");

    // The API: current, versions; a stale base is 409, errors 422 with lines.
    let tok = h.token_for("sec-api", Role::Security).await;
    let bearer = Cred::Bearer(tok);
    let cur = h.get("/api/v1/network/policy", &bearer).await.json();
    assert_eq!(cur["version"], 1);
    assert_eq!(cur["name"], "St. Elsewhere");
    let stale = h
        .json(
            "PUT",
            "/api/v1/network/policy",
            &bearer,
            serde_json::json!({"toml": starter, "base_version": null}),
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.text());
    let invalid = h
        .json(
            "PUT",
            "/api/v1/network/policy",
            &bearer,
            serde_json::json!({"toml": bad, "base_version": 1}),
        )
        .await;
    assert_eq!(invalid.status, 422, "{}", invalid.text());
    let field = invalid.json()["errors"][0]["field"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(field.starts_with("line "), "{field}");
    let saved = h
        .json(
            "PUT",
            "/api/v1/network/policy",
            &bearer,
            serde_json::json!({"toml": starter, "comment": "back to the starter", "base_version": 1}),
        )
        .await;
    assert_eq!(saved.status, 201, "{}", saved.text());
    assert_eq!(saved.json()["version"], 2);
    let list = h
        .get("/api/v1/network/policy/versions", &bearer)
        .await
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        h.get("/api/v1/network/policy/versions/1", &bearer)
            .await
            .json()["toml"],
        ours
    );

    // An auditor reads but cannot edit: no editor, and the POST is refused.
    let (aud, acsrf) = h.session_for("ann", Role::Auditor).await;
    let html = h.get("/network/policy", &session(&aud)).await.text();
    assert!(!html.contains(r#"id="policy-editor""#), "{html}");
    let r = h
        .form(
            "/network/policy",
            &aud,
            &[("csrf", &acsrf), ("toml", starter), ("base_version", "2")],
        )
        .await;
    assert_eq!(r.status, 403);
    // A pharmacist does not see network pages at all.
    let (ph, _) = h.session_for("phil", Role::Pharmacist).await;
    assert_eq!(h.get("/network", &session(&ph)).await.status, 403);
}

#[tokio::test]
async fn network_page_draws_the_zone_diagram() {
    let h = harness().await;
    let (sec, _) = h.session_for("sam", Role::Security).await;
    let page = h.get("/network", &session(&sec)).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains(r#"<svg id="zone-diagram""#), "{html}");
    // Every starter zone is a box; allowed conduits are dashed grey lines.
    for z in pumpward_net::starter_policy().zones {
        assert!(
            html.contains(&format!(">{}</text>", z.name)),
            "{}: {html}",
            z.name
        );
    }
    assert!(html.contains(r#"<g class="allowed">"#), "{html}");
    assert!(html.contains(r#"id="no-collectors""#), "{html}");
    assert!(html.contains(r#"id="no-unknown""#), "{html}");
    // The observed view is in the API too.
    let tok = h.token_for("sec-api", Role::Security).await;
    let v = h
        .get("/api/v1/network/observed", &Cred::Bearer(tok))
        .await
        .json();
    assert_eq!(v["conduits"], serde_json::json!([]));
}

/// Posts a form whose values are owned strings.
async fn post(
    h: &common::Harness,
    path: &str,
    cookie: &str,
    f: Vec<(&str, String)>,
) -> common::Reply {
    let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    h.form(path, cookie, &refs).await
}

/// Sends flows to the live collector as one IPFIX message.
async fn send_flows(to: std::net::SocketAddr, domain: u32, flows: &[Flow]) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut m = MessageBuilder::ipfix(
        domain,
        time::OffsetDateTime::now_utc().unix_timestamp() as u32,
    );
    let template = m.flow_template(false);
    m.template(256, &template);
    let mut records = Vec::new();
    for f in flows {
        m.flow_record(f, &mut records);
    }
    m.data(256, &records);
    sock.send_to(&m.build(), to).await.unwrap();
}

/// The unknown-devices list on `/network` with its two buttons: a security
/// analyst quarantines one device (its MAC and where it was seen go on the
/// list the exports refuse) and releases it; a biomed registers the other
/// as an asset from a prefilled form, and it leaves the list. Each button
/// only for the role allowed; the POSTs refused (403) otherwise.
#[tokio::test]
async fn unknown_devices_are_quarantined_or_registered_from_the_network_page() {
    let h = harness().await;
    fleet(&h.store).await;
    let metrics = NetworkMetrics::default();
    let running = network::start(
        h.store.clone(),
        None,
        h.state.network.clone(),
        metrics.clone(),
        &NetworkOptions {
            flow_listen: Some("127.0.0.1:0".parse().unwrap()),
            zeek_conn_log: None,
        },
    )
    .await
    .unwrap();
    let to = running.flow_addr.unwrap();
    send_flows(
        to,
        9,
        &[
            flow("10.20.0.99", "02:00:00:00:00:99", "10.21.0.10", 443),
            flow("10.20.0.98", "02:00:00:00:00:98", "10.21.0.10", 443),
        ],
    )
    .await;
    let live = h.state.network.clone();
    wait_for("two unknown devices", || {
        let n = live.view().unknown_devices.len();
        async move { n == 2 }
    })
    .await;

    let (sec, sec_csrf) = h.session_for("sam", Role::Security).await;
    let (bio, bio_csrf) = h.session_for("bea", Role::Biomed).await;
    let (aud, aud_csrf) = h.session_for("ann", Role::Auditor).await;

    // Security: the quarantine form, no register link (not theirs).
    let html = h.get("/network", &session(&sec)).await.text();
    assert!(html.contains(r#"id="unknown-devices""#), "{html}");
    assert_eq!(
        html.matches(r#"action="/network/quarantine""#).count(),
        2,
        "{html}"
    );
    assert!(!html.contains("/network/unknown/register"), "{html}");
    assert!(html.contains(r#"id="no-quarantine""#), "{html}");
    // Biomed: the register link, no quarantine form.
    let html = h.get("/network", &session(&bio)).await.text();
    assert!(
        html.contains("/network/unknown/register?address=10.20.0.98&#38;zone=infusion-pump&#38;mac=02%3A00%3A00%3A00%3A00%3A98"),
        "{html}"
    );
    assert!(!html.contains(r#"action="/network/quarantine""#), "{html}");
    // An auditor reads the list and can do neither.
    let html = h.get("/network", &session(&aud)).await.text();
    assert!(html.contains(r#"id="unknown-devices""#), "{html}");
    assert!(!html.contains(r#"action="/network/quarantine""#), "{html}");
    assert!(!html.contains("/network/unknown/register"), "{html}");

    let quarantine = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("mac", "02:00:00:00:00:99".to_owned()),
            ("zone", "infusion-pump".to_owned()),
            ("reason", "laptop on the pump VLAN".to_owned()),
        ]
    };
    // Refused: the wrong roles, and without the CSRF token.
    for (cookie, csrf) in [(&bio, &bio_csrf), (&aud, &aud_csrf)] {
        let r = post(&h, "/network/quarantine", cookie, quarantine(csrf)).await;
        assert_eq!(r.status, 403, "{}", r.text());
    }
    let mut no_csrf = quarantine(&sec_csrf);
    no_csrf.remove(0);
    let r = post(&h, "/network/quarantine", &sec, no_csrf).await;
    assert_eq!(r.status, 403);
    assert!(h.store.network_quarantine(true).await.unwrap().is_empty());
    // A MAC that is not one: the page again with the reason.
    let mut bad = quarantine(&sec_csrf);
    bad[1].1 = "02:00:00:00:00".into();
    let r = post(&h, "/network/quarantine", &sec, bad).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("is not a MAC address"), "{}", r.text());

    // Quarantined: stored with the address it was seen at, audited, shown.
    let r = post(&h, "/network/quarantine", &sec, quarantine(&sec_csrf)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let list = h.store.network_quarantine(false).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].mac.to_string(), "02:00:00:00:00:99");
    assert_eq!(list[0].addresses, ["10.20.0.99".parse::<IpAddr>().unwrap()]);
    assert_eq!(list[0].zone.as_deref(), Some("infusion-pump"));
    assert_eq!(list[0].quarantined_by, "user:sam");
    let audited = h
        .store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("network.quarantine".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audited.len(), 1);
    let html = h
        .get("/network?done=device-quarantined", &session(&sec))
        .await
        .text();
    assert!(html.contains("The device is quarantined"), "{html}");
    assert!(
        html.contains(&format!(r#"id="quarantined-{}""#, list[0].id)),
        "{html}"
    );
    assert!(html.contains(r#"id="quarantined-devices""#), "{html}");
    assert_eq!(
        html.matches(r#"action="/network/quarantine""#).count(),
        1,
        "{html}"
    );
    // Twice: refused, nothing more stored.
    let r = post(&h, "/network/quarantine", &sec, quarantine(&sec_csrf)).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("already quarantined"), "{}", r.text());
    assert_eq!(h.store.network_quarantine(true).await.unwrap().len(), 1);

    // The exports refuse it.
    let (policy, assets) = (
        pumpward_net::starter_policy(),
        h.store
            .network_identities(pumpward_net::inventory::Listing::Authorised)
            .await
            .unwrap()
            .0,
    );
    let devices = h.store.quarantined_devices().await.unwrap();
    let users = pumpward_net::export::radius::mab_authorize(&policy, &assets, &devices);
    assert!(
        users.contains("020000000099\tAuth-Type := Reject"),
        "{users}"
    );
    let rules = pumpward_net::export::nft::ruleset(&policy, &devices);
    assert!(rules.contains("elements = { 10.20.0.99 }"), "{rules}");

    // Released by the analyst (the auditor may not).
    let release = format!("/network/quarantine/{}/release", list[0].id);
    let r = post(
        &h,
        &release,
        &aud,
        vec![("csrf", aud_csrf.clone()), ("reason", "x".into())],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = post(
        &h,
        &release,
        &sec,
        vec![
            ("csrf", sec_csrf.clone()),
            ("reason", "a visitor's laptop, gone".into()),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(h.store.quarantined_devices().await.unwrap().is_empty());
    let r = post(
        &h,
        &release,
        &sec,
        vec![("csrf", sec_csrf.clone()), ("reason", "again".into())],
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // Register: a biomed's form, prefilled from the sighting.
    let form_path = "/network/unknown/register?address=10.20.0.98&zone=infusion-pump&mac=02%3A00%3A00%3A00%3A00%3A98";
    assert_eq!(h.get(form_path, &session(&sec)).await.status, 403);
    let page = h.get(form_path, &session(&bio)).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(html.contains(r#"value="02:00:00:00:00:98""#), "{html}");
    assert!(html.contains(r#"value="10.20.0.98""#), "{html}");
    assert!(
        html.contains(r#"<option value="infusion-pump" selected>"#),
        "{html}"
    );
    assert!(html.contains("first seen "), "{html}");
    let register = |csrf: &str, serial: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("asset_id", "P-98".to_owned()),
            ("kind", "pump".to_owned()),
            ("manufacturer", "ICU Medical".to_owned()),
            ("model", "Plum 360".to_owned()),
            ("serial_number", serial.to_owned()),
            ("firmware_version", "15.11".to_owned()),
            ("care_area", "Adult ICU".to_owned()),
            ("mac_address", "02:00:00:00:00:98".to_owned()),
            ("ip_address", "10.20.0.98".to_owned()),
            ("zone", "infusion-pump".to_owned()),
            ("lifecycle_state", "in_service".to_owned()),
            (
                "notes",
                "Registered from an unknown-device sighting.".to_owned(),
            ),
        ]
    };
    let r = post(
        &h,
        "/network/unknown/register",
        &sec,
        register(&sec_csrf, "S98"),
    )
    .await;
    assert_eq!(r.status, 403);
    // A missing serial number: every bad field named, nothing created.
    let r = post(
        &h,
        "/network/unknown/register",
        &bio,
        register(&bio_csrf, ""),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains(r#"id="register-problems""#),
        "{}",
        r.text()
    );
    assert!(r.text().contains("serial_number: "), "{}", r.text());
    assert!(h.store.asset("P-98").await.is_err());
    // A bad CPE name: refused with the name and attribute, nothing created.
    let mut with_cpe = register(&bio_csrf, "S98");
    with_cpe.push(("cpe", "cpe:2.3:h:icu_medical:plum_360".to_owned()));
    let r = post(&h, "/network/unknown/register", &bio, with_cpe).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("cpe: CPE name 1 ") && r.text().contains("11 attributes"),
        "{}",
        r.text()
    );
    // The typed value is kept in the form for correction.
    assert!(
        r.text()
            .contains(r#"name="cpe" value="cpe:2.3:h:icu_medical:plum_360""#),
        "{}",
        r.text()
    );
    assert!(h.store.asset("P-98").await.is_err());
    let mut with_cpe = register(&bio_csrf, "S98");
    with_cpe.push((
        "cpe",
        "cpe:2.3:h:icu_medical:plum_360:-:*:*:*:*:*:*:*".to_owned(),
    ));
    let r = post(&h, "/network/unknown/register", &bio, with_cpe).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let a = h.store.asset("P-98").await.unwrap();
    assert_eq!(
        a.spec.cpe,
        ["cpe:2.3:h:icu_medical:plum_360:-:*:*:*:*:*:*:*"]
    );
    // The asset page shows them.
    let page = h.get("/assets/P-98", &session(&bio)).await.text();
    assert!(
        page.contains("<th scope=\"row\">CPE names</th><td>cpe:2.3:h:icu_medical:plum_360:-:*:*:*:*:*:*:*</td>"),
        "{page}"
    );
    assert_eq!(a.lifecycle_state, LifecycleState::InService);
    assert_eq!(a.spec.zone.as_deref(), Some("infusion-pump"));
    assert_eq!(
        a.spec.mac_address.map(|m| m.to_string()).as_deref(),
        Some("02:00:00:00:00:98")
    );
    // It left the unknown list; the other device is still there.
    let html = h
        .get("/network?done=device-registered", &session(&bio))
        .await
        .text();
    assert!(html.contains("registered as an asset"), "{html}");
    assert!(!html.contains("10.20.0.98"), "{html}");
    assert!(html.contains("10.20.0.99"), "{html}");
    // The same id again: a conflict, shown on the form.
    let r = post(
        &h,
        "/network/unknown/register",
        &bio,
        register(&bio_csrf, "S98b"),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    running.stop();
}

/// The quarantine API: addresses default to the sightings, refusals are
/// precise, release keeps the history.
#[tokio::test]
async fn quarantine_api() {
    let h = harness().await;
    let sec = Cred::Bearer(h.token_for("sec-api", Role::Security).await);
    let aud = Cred::Bearer(h.token_for("aud-api", Role::Auditor).await);
    let body = serde_json::json!({
        "mac": "02:00:00:00:00:77",
        "addresses": ["10.20.0.77"],
        "zone": "infusion-pump",
        "reason": "rogue",
    });
    let r = h
        .json("POST", "/api/v1/network/quarantine", &aud, body.clone())
        .await;
    assert_eq!(r.status, 403);
    let mut bad = body.clone();
    bad["mac"] = "ff:ff:ff:ff:ff:ff".into();
    let r = h
        .json("POST", "/api/v1/network/quarantine", &sec, bad)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("broadcast"), "{}", r.text());
    let mut no_reason = body.clone();
    no_reason["reason"] = "".into();
    let r = h
        .json("POST", "/api/v1/network/quarantine", &sec, no_reason)
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = h
        .json("POST", "/api/v1/network/quarantine", &sec, body.clone())
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let q = r.json();
    assert_eq!(q["mac"], "02:00:00:00:00:77");
    assert_eq!(q["addresses"], serde_json::json!(["10.20.0.77"]));
    let r = h
        .json("POST", "/api/v1/network/quarantine", &sec, body)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    // Without addresses and not seen by any collector: the MAC alone.
    let r = h
        .json(
            "POST",
            "/api/v1/network/quarantine",
            &sec,
            serde_json::json!({"mac": "02-00-00-00-00-78", "reason": "cloned"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["addresses"], serde_json::json!([]));
    let list = h.get("/api/v1/network/quarantine", &aud).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    let id = q["id"].as_i64().unwrap();
    let path = format!("/api/v1/network/quarantine/{id}/release");
    let release = serde_json::json!({"reason": "confirmed benign"});
    assert_eq!(
        h.json("POST", &path, &aud, release.clone()).await.status,
        403
    );
    let r = h.json("POST", &path, &sec, release.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["released_by"], "user:sec-api token:1");
    assert_eq!(
        h.json("POST", &path, &sec, release.clone()).await.status,
        409
    );
    let r = h
        .json(
            "POST",
            "/api/v1/network/quarantine/999/release",
            &sec,
            release,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let now = h.get("/api/v1/network/quarantine", &sec).await.json();
    assert_eq!(now["items"].as_array().unwrap().len(), 1);
    let all = h
        .get("/api/v1/network/quarantine?released=true", &sec)
        .await
        .json();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        h.get("/api/v1/network/quarantine?released=maybe", &sec)
            .await
            .status,
        400
    );
}
