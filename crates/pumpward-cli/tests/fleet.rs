//! The pump agent and fleet simulator against a real `pumpward serve`:
//! EST enrollment, the mutually authenticated device channel, events stored
//! before they are acknowledged, and every attack and fault scenario of the
//! simulator refused or survived as it should be.

use pumpward_pump::sim::{run_sim, Scenario, SimOptions};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_fleet_against_the_real_gateway() {
    use pumpward_core::access::{password, Permission, Role};
    use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let secret = "pw_fleet-integration-token-0123456789abc";
    const PUMPS: usize = 6;
    {
        let store = pumpward_store::Store::open_sqlite(&data).await.unwrap();
        let actor = pumpward_store::Actor::cli();
        let u = store
            .create_user(
                "bea",
                "Bea",
                Role::Biomed,
                &password::hash_password("Tricycle-Harbour-Lantern-42"),
                false,
                &actor,
            )
            .await
            .unwrap();
        store
            .create_api_token(
                &u,
                "sim",
                &pumpward_server::auth::token_hash(secret),
                &[
                    Permission::PkiEnroll,
                    Permission::PkiRevoke,
                    Permission::PkiRead,
                    Permission::InventoryRead,
                ],
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                &actor,
            )
            .await
            .unwrap();
        for i in 0..PUMPS {
            let spec = AssetSpec::validate(&AssetDraft {
                asset_id: format!("P-{i:03}"),
                kind: Some("pump".into()),
                manufacturer: "Baxter".into(),
                model: "Sigma Spectrum".into(),
                serial_number: format!("SN{i:05}"),
                firmware_version: "8.00.01".into(),
                mac_address: Some(format!("02:00:00:00:00:{i:02x}")),
                care_area: Some("Adult ICU".into()),
                ..Default::default()
            })
            .unwrap();
            store
                .create_asset(&spec, Some(LifecycleState::InService), &actor)
                .await
                .unwrap();
        }
        store.close().await;
    }
    let (port, gport) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_pumpward"))
        .arg("--data-dir")
        .arg(&data)
        .env("PUMPWARD_CA_KEK_FILE", t.path().join("kek"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--gateway-listen",
            &format!("127.0.0.1:{gport}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ca = data.join("tls/ca.pem");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ca.exists() || std::net::TcpStream::connect(("127.0.0.1", gport)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut o = SimOptions::new(
        &format!("https://127.0.0.1:{port}"),
        &format!("127.0.0.1:{gport}"),
        secret,
        &ca,
        PUMPS,
    );
    o.speed = 120.0;
    o.duration = Duration::from_secs(25);
    o.state_dir = Some(t.path().join("pumps"));
    o.scenarios = vec![
        Scenario::GatewayOutage,
        Scenario::RogueDevice,
        Scenario::ClonedCertificate,
        Scenario::ReplayBatch,
        Scenario::EventFlood,
        Scenario::CertificateRevoked,
    ];
    let report = run_sim(o).await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    println!("{report}");
    assert_eq!(report.pumps_started, PUMPS, "{report}");
    assert_eq!(
        report.enrolled, PUMPS,
        "every pump enrolled through EST: {report}"
    );
    assert!(report.events_acked > 0, "{report}");
    assert!(report.all_scenarios_passed(), "{report}");

    // What the gateway stored: for every pump, events 1..=n with no
    // duplicates, and what it acknowledged is what it stored.
    let store = pumpward_store::Store::open_sqlite(&data).await.unwrap();
    let mut stored = 0u64;
    for i in 0..PUMPS {
        let id = format!("P-{i:03}");
        let events = store.device_events(&id, 0, 10_000).await.unwrap();
        let gaps = store.device_gaps(&id).await.unwrap();
        let last = store.device_last_seq(&id).await.unwrap();
        let mut expect = 1i64;
        for e in &events {
            while gaps
                .iter()
                .any(|(f, t)| (*f as i64..=*t as i64).contains(&expect))
            {
                expect += 1;
            }
            assert_eq!(e.seq, expect, "{id}: events in order, each once");
            expect += 1;
        }
        assert!(events.len() as u64 <= last);
        stored += events.len() as u64;
        let a = store.asset(&id).await.unwrap();
        assert!(a.last_seen.is_some(), "{id} was seen");
    }
    assert!(
        stored >= report.events_acked,
        "acknowledged {} but stored {stored}",
        report.events_acked
    );
    // The attacks left their traces in the audit trail.
    let refused = store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("gateway.auth_failure".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !refused.is_empty(),
        "the rogue device's handshake is recorded"
    );
    let revoked = store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("pki.certificate.revoke".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert!(store.audit_verify().await.unwrap().error.is_none());
}
