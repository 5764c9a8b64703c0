//! The quarantine response end to end against a real `pumpward serve`: a
//! pump agent with an infusion running is quarantined through the API (a
//! two-person request, confirmed by a colleague); its connection is closed
//! and refused, its MAC leaves the RADIUS MAB and ISE exports, and its
//! infusion is exactly as it was. Released, it is authorised and connects
//! again.

mod common;

use common::{biomed_with_token, err, free_port, out, pumpward_in, BIOMED_PKI};
use pumpward_core::access::{password, Permission, Role};
use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_proto::message::{InfusionState, QuarantineState};
use pumpward_pump::agent::{AgentConfig, PumpAgent};
use std::time::{Duration, Instant};

const BEA: &str = "pw_quarantine-biomed-token-0123456789abcd";
const SAM: &str = "pw_quarantine-soc-token-0123456789abcdefg";
const MAC_USER: &str = "020000000a01";

async fn prepare(data: &std::path::Path) {
    let store = pumpward_store::Store::open_sqlite(data).await.unwrap();
    let mut perms = BIOMED_PKI.to_vec();
    perms.push(Permission::ResponseManage);
    biomed_with_token(&store, BEA, &perms).await;
    let actor = pumpward_store::Actor::cli();
    let sam = store
        .create_user(
            "sam",
            "Sam",
            Role::Security,
            &password::hash_password("Tricycle-Harbour-Lantern-43"),
            false,
            &actor,
        )
        .await
        .unwrap();
    store
        .create_api_token(
            &sam,
            "test",
            &pumpward_server::auth::token_hash(SAM),
            &[Permission::ResponseManage, Permission::InventoryRead],
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            &actor,
        )
        .await
        .unwrap();
    let spec = AssetSpec::validate(&AssetDraft {
        asset_id: "P-000".into(),
        kind: Some("pump".into()),
        manufacturer: "Baxter".into(),
        model: "Sigma Spectrum".into(),
        serial_number: "SN00000".into(),
        firmware_version: "8.00.01".into(),
        mac_address: Some("02:00:00:00:0a:01".into()),
        ip_address: Some("10.20.0.41".into()),
        zone: Some("infusion-pump".into()),
        care_area: Some("Adult ICU".into()),
        ..Default::default()
    })
    .unwrap();
    store
        .create_asset(&spec, Some(LifecycleState::InService), &actor)
        .await
        .unwrap();
    store.close().await;
}

fn export(data: &std::path::Path, format: &str) -> String {
    let o = pumpward_in(data, &["net", "policy", "export", "--format", format]);
    assert!(o.status.success(), "{}", err(&o));
    out(&o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_cuts_the_pump_off_the_network_and_never_touches_therapy() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    prepare(&data).await;
    assert!(export(&data, "freeradius-mab").contains(MAC_USER));
    assert!(export(&data, "ise").contains("P-000 ("));

    let (port, gport) = (free_port(), free_port());
    let mut child = common::start_server(&data, &t.path().join("kek"), port, gport);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !data.join("tls/ca.pem").exists()
        || std::net::TcpStream::connect(("127.0.0.1", gport)).is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ca_pem = std::fs::read_to_string(data.join("tls/ca.pem")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let post = |path: &str, token: &'static str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    let code: serde_json::Value = post(
        "/api/v1/assets/P-000/enrollment-codes",
        BEA,
        serde_json::json!({}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let mut cfg = AgentConfig::new(
        "P-000",
        "SN00000",
        t.path().join("pump"),
        format!("127.0.0.1:{gport}"),
        "127.0.0.1",
        format!("https://127.0.0.1:{gport}/.well-known/est/"),
        ca_pem.clone(),
    );
    cfg.enrollment_code = Some(code["code"].as_str().unwrap().to_owned());
    // Reconnect quickly once released.
    cfg.backoff.max = Duration::from_secs(2);
    let agent = PumpAgent::start(cfg).await.unwrap();
    // The bedside programmed an infusion; it is running.
    agent.update_therapy(|t| {
        t.infusion = InfusionState::Running;
        t.care_area = Some("Adult ICU".into());
        t.battery_pct = 80;
    });
    let therapy = agent.therapy();
    assert!(
        agent
            .wait_for(Duration::from_secs(30), |s| s.connected)
            .await,
        "{:?}",
        agent.status()
    );

    // Bea asks a colleague to confirm: nothing happens to the pump yet.
    let r = post(
        "/api/v1/assets/P-000/quarantine",
        BEA,
        serde_json::json!({ "reason": "east-west traffic, incident 7", "two_person": true }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let pending: serde_json::Value = r.json().await.unwrap();
    assert_eq!(pending["state"], "pending");
    let id = pending["id"].as_i64().unwrap();
    let r = post(
        &format!("/api/v1/responses/{id}/confirm"),
        BEA,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        403,
        "her own request: {}",
        r.text().await.unwrap()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(agent.status().connected, "still connected while pending");

    // Sam confirms: the pump is cut off within seconds.
    let r = post(
        &format!("/api/v1/responses/{id}/confirm"),
        SAM,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(
        agent
            .wait_for(Duration::from_secs(5), |s| !s.connected
                && s.quarantine
                    .as_ref()
                    .is_some_and(|q| q.state == QuarantineState::Quarantined))
            .await,
        "notice received and connection closed within 5 s: {:?}",
        agent.status()
    );
    let sessions = agent.status().sessions;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        agent.status().sessions,
        sessions,
        "no new session while quarantined"
    );
    assert!(
        agent.status().connect_failures > 0,
        "it tried and was refused"
    );
    // Therapy: exactly as the bedside left it.
    assert_eq!(agent.therapy(), therapy);
    assert_eq!(agent.therapy().infusion, InfusionState::Running);

    // The enforcement exports no longer authorise its MAC.
    let mab = export(&data, "freeradius-mab");
    assert!(
        !mab.contains(MAC_USER),
        "quarantined MAC authorised:\n{mab}"
    );
    assert!(!export(&data, "ise").contains("P-000"));

    // Quarantining it again is refused and changes nothing.
    let r = post(
        "/api/v1/assets/P-000/quarantine",
        SAM,
        serde_json::json!({ "reason": "again" }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 409, "{}", r.text().await.unwrap());

    // The swap list shows it; release returns it to service.
    let list: serde_json::Value = http
        .get(format!("{base}/api/v1/responses?state=applied"))
        .bearer_auth(BEA)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["asset_id"], "P-000", "{list}");
    let r = post(
        "/api/v1/assets/P-000/release",
        BEA,
        serde_json::json!({ "reason": "inspected; no sign of compromise" }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(
        agent
            .wait_for(Duration::from_secs(30), |s| s.connected
                && s.sessions > sessions)
            .await,
        "reconnects after the release: {:?}",
        agent.status()
    );
    assert_eq!(agent.therapy(), therapy);
    assert!(export(&data, "freeradius-mab").contains(MAC_USER));

    child.kill().unwrap();
    child.wait().unwrap();
}
