//! The agent against the in-test gateway and EST responder, over real TLS.

mod fixtures;

use std::time::Duration;

use fixtures::{Fixture, ToPump};
use pumpward_proto::message::EventKind;
use pumpward_proto::message::{AlarmKind, Command, CommandStatus, InfusionState, QuarantineState};
use pumpward_pump::{AgentConfig, BackoffPolicy, EnrollmentState, PumpAgent};

const T: Duration = Duration::from_secs(20);

fn config(fx: &Fixture, asset: &str, dir: &std::path::Path) -> AgentConfig {
    let mut c = AgentConfig::new(
        asset,
        format!("SN-{asset}"),
        dir.join(asset),
        fx.gateway_addr(),
        "localhost",
        fx.est_url(),
        fx.ca_pem.clone(),
    );
    c.backoff = BackoffPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(800),
        jitter: 0.2,
        reset_after: Duration::from_secs(60),
    };
    c.connect_timeout = Duration::from_secs(5);
    c
}

fn alarm(i: u64) -> EventKind {
    EventKind::Alarm {
        alarm: AlarmKind::Occlusion,
        infusion_id: Some(format!("inf-{i}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolls_connects_and_delivers_events_in_order() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fx, "PUMP-1", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-1"));
    let agent = PumpAgent::start(cfg.clone()).await.unwrap();
    assert!(
        agent.wait_for(T, |s| s.connected).await,
        "{:?}",
        agent.status()
    );
    let st = agent.status();
    assert_eq!(st.enrollment, EnrollmentState::Enrolled);
    let serial = st.cert_serial.clone().unwrap();
    assert_eq!(
        fx.inner().devices["PUMP-1"].serials_seen,
        vec![serial.clone()]
    );

    // The identity file is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let m = std::fs::metadata(dir.path().join("PUMP-1/identity.pem")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
    }

    for i in 0..25 {
        agent.record(alarm(i)).unwrap();
    }
    assert!(
        agent
            .wait_for(T, |s| s.last_ack == 25 && s.queue_depth == 0)
            .await,
        "{:?}",
        agent.status()
    );
    assert_eq!(fx.stored("PUMP-1"), (1..=25).collect::<Vec<_>>());
    assert_eq!(agent.status().events_acked, 25);
    agent.shutdown().await;

    // The code was one-time: a second enrollment with it is refused (401)
    // and the agent waits for a person instead of retrying.
    let mut again = config(&fx, "PUMP-1", dir.path());
    again.state_dir = dir.path().join("PUMP-1-copy");
    again.enrollment_code = cfg.enrollment_code.clone();
    let agent = PumpAgent::start(again).await.unwrap();
    assert!(
        agent
            .wait_for(
                T,
                |s| matches!(&s.enrollment, EnrollmentState::Failed(e) if e.contains("401"))
            )
            .await,
        "{:?}",
        agent.status()
    );

    // A restarted agent with the stored identity reconnects without a code
    // and continues its sequence.
    let agent = PumpAgent::start(config(&fx, "PUMP-1", dir.path()))
        .await
        .unwrap();
    assert!(agent.wait_for(T, |s| s.connected).await);
    assert_eq!(agent.status().cert_serial.as_deref(), Some(serial.as_str()));
    agent.record(alarm(99)).unwrap();
    assert!(agent.wait_for(T, |s| s.last_ack == 26).await);
    assert_eq!(fx.inner().enrollments, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_gateway_outage_and_an_agent_restart_exactly_once_in_order() {
    let mut fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fx, "PUMP-2", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-2"));
    let agent = PumpAgent::start(cfg.clone()).await.unwrap();
    assert!(agent.wait_for(T, |s| s.connected).await);
    for i in 0..10 {
        agent.record(alarm(i)).unwrap();
    }
    assert!(agent.wait_for(T, |s| s.last_ack == 10).await);

    fx.stop_gateway();
    assert!(agent.wait_for(T, |s| !s.connected).await);
    for i in 10..60 {
        agent.record(alarm(i)).unwrap();
    }
    agent.flush().await;
    let st = agent.status();
    assert_eq!((st.queue_depth, st.last_ack), (50, 10), "{st:?}");

    // The pump itself restarts during the outage: nothing is lost.
    agent.shutdown().await;
    let agent = PumpAgent::start(config(&fx, "PUMP-2", dir.path()))
        .await
        .unwrap();
    assert_eq!(agent.status().queue_depth, 50);
    for i in 60..70 {
        agent.record(alarm(i)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    fx.restart_gateway().await;
    assert!(
        agent
            .wait_for(T, |s| s.last_ack == 70 && s.queue_depth == 0)
            .await,
        "{:?}",
        agent.status()
    );
    assert_eq!(fx.stored("PUMP-2"), (1..=70).collect::<Vec<_>>());
    let i = fx.inner();
    let d = &i.devices["PUMP-2"];
    // Stored in the order they were recorded.
    let ids: Vec<String> = d
        .events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Alarm { infusion_id, .. } => infusion_id.clone().unwrap(),
            k => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(ids, (0..70).map(|i| format!("inf-{i}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_reopened_after_a_backoff() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fx, "PUMP-3", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-3"));
    let agent = PumpAgent::start(cfg).await.unwrap();
    assert!(agent.wait_for(T, |s| s.connected).await);
    for round in 1..=3u64 {
        let t0 = std::time::Instant::now();
        assert!(fx.to_pump("PUMP-3", ToPump::Close).await);
        assert!(agent.wait_for(T, |s| !s.connected).await);
        assert!(
            agent
                .wait_for(T, |s| s.connected && s.reconnects == round)
                .await
        );
        // At least the first back-off (100 ms − 20 %).
        assert!(
            t0.elapsed() >= Duration::from_millis(80),
            "{:?}",
            t0.elapsed()
        );
    }
    // Therapy was never touched by any of it.
    assert_eq!(agent.therapy().infusion, InfusionState::Idle);
    assert_eq!(fx.inner().devices["PUMP-3"].sessions, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_is_acknowledged_and_not_stored_twice() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fx, "PUMP-4", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-4"));
    cfg.keep_last_acked_batch = true;
    let agent = PumpAgent::start(cfg).await.unwrap();
    assert!(agent.wait_for(T, |s| s.connected).await);
    assert!(!agent.replay_last_acked_batch());
    for i in 0..8 {
        agent.record(alarm(i)).unwrap();
    }
    assert!(agent.wait_for(T, |s| s.last_ack == 8).await);
    assert!(agent.replay_last_acked_batch());
    assert!(agent.wait_for(T, |s| s.replay.is_some()).await);
    let r = agent.status().replay.unwrap();
    assert_eq!(agent.status().replays_answered, 1);
    assert_eq!(r.ack, Some(8), "{r:?}");
    assert_eq!(r.refusal, None);
    assert_eq!(fx.stored("PUMP-4"), (1..=8).collect::<Vec<_>>());
    assert_eq!(
        fx.inner().devices["PUMP-4"].duplicates,
        (r.seqs.1 - r.seqs.0 + 1)
    );
    // The channel goes on normally.
    agent.record(alarm(9)).unwrap();
    assert!(agent.wait_for(T, |s| s.last_ack == 9).await);
}

/// An event recorded while an ack is being applied is still sent: the
/// queue depth the session reads must not go stale. Answering a replay
/// publishes its outcome just before the ack is applied, so recording at
/// once lands in that window, where a depth published after unlocking the
/// queue used to overwrite the writer's newer one with 0 and leave the
/// event waiting for the next one (failed under load before the fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_recorded_while_an_ack_is_applied_is_sent() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fx, "PUMP-8", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-8"));
    cfg.keep_last_acked_batch = true;
    let agent = PumpAgent::start(cfg).await.unwrap();
    assert!(agent.wait_for(T, |s| s.connected).await);
    agent.record(alarm(0)).unwrap();
    assert!(agent.wait_for(T, |s| s.last_ack == 1).await);
    for round in 1..=40u64 {
        let answered = agent.status().replays_answered;
        assert!(agent.replay_last_acked_batch());
        assert!(agent.wait_for(T, |s| s.replays_answered > answered).await);
        agent.record(alarm(round)).unwrap();
        let delivered = agent
            .wait_for(Duration::from_secs(5), |s| s.last_ack == round + 1)
            .await;
        assert!(delivered, "round {round}: {:?}", agent.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_certificate_command_reenrolls_and_reconnects_with_the_new_certificate() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fx, "PUMP-5", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-5"));
    let agent = PumpAgent::start(cfg).await.unwrap();
    assert!(agent.wait_for(T, |s| s.connected).await);
    let old = agent.status().cert_serial.unwrap();
    agent.record(alarm(1)).unwrap();
    assert!(agent.wait_for(T, |s| s.last_ack == 1).await);

    let renew = Command::RenewCertificate {
        reason: Some("test".into()),
        before: None,
    };
    assert!(fx.command("PUMP-5", "cmd-1", renew).await);
    assert!(
        agent
            .wait_for(T, |s| s.renewals == 1
                && s.connected
                && s.cert_serial.as_deref() != Some(old.as_str()))
            .await,
        "{:?}",
        agent.status()
    );
    let new = agent.status().cert_serial.unwrap();
    assert!(
        agent
            .wait_for(T, |_| fx.inner().devices["PUMP-5"].serials_seen.len() == 2)
            .await
    );
    {
        let i = fx.inner();
        let d = &i.devices["PUMP-5"];
        assert_eq!(d.serials_seen, vec![old.clone(), new.clone()]);
        assert_eq!(d.results[0].id, "cmd-1");
        assert_eq!(d.results[0].status, CommandStatus::Completed);
        assert_eq!(i.reenrollments, 1);
    }
    // The sequence continues over the new certificate.
    agent.record(alarm(2)).unwrap();
    assert!(agent.wait_for(T, |s| s.last_ack == 2).await);
    assert_eq!(agent.identity().unwrap().serial_hex(), new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_answered_idempotently_and_never_touch_therapy() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fx, "PUMP-6", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-6"));
    let agent = PumpAgent::start(cfg).await.unwrap();
    agent.update_therapy(|t| t.infusion = InfusionState::Running);
    assert!(agent.wait_for(T, |s| s.connected).await);
    let hb0 = fx.inner().devices["PUMP-6"].heartbeats;

    assert!(
        fx.command("PUMP-6", "c-status", Command::RequestStatus)
            .await
    );
    let q = Command::QuarantineNotice {
        state: QuarantineState::Quarantined,
        reason: "test".into(),
        incident: Some("INC-1".into()),
    };
    assert!(fx.command("PUMP-6", "c-q", q.clone()).await);
    assert!(fx.command("PUMP-6", "c-q", q).await); // repeated id
    let lib = Command::DrugLibraryAvailable {
        version: "2025.04-1".into(),
        digest: "a".repeat(64),
        size: Some(10),
    };
    assert!(fx.command("PUMP-6", "c-lib", lib).await);
    let unknown = Command::Unsupported {
        original_kind: "self_destruct".into(),
    };
    assert!(fx.command("PUMP-6", "c-x", unknown).await);
    assert!(
        agent
            .wait_for(T, |_| fx.inner().devices["PUMP-6"].results.len() == 5)
            .await
    );
    {
        let i = fx.inner();
        let d = &i.devices["PUMP-6"];
        let got: Vec<(&str, CommandStatus)> = d
            .results
            .iter()
            .map(|r| (r.id.as_str(), r.status))
            .collect();
        assert_eq!(
            got,
            vec![
                ("c-status", CommandStatus::Completed),
                ("c-q", CommandStatus::Completed),
                ("c-q", CommandStatus::Completed),
                // No envelope under that digest: the download fails.
                ("c-lib", CommandStatus::Failed),
                ("c-x", CommandStatus::Unsupported),
            ]
        );
        assert!(d.heartbeats > hb0);
    }
    // The library refusal is an event, in sequence.
    assert!(agent.wait_for(T, |s| s.last_ack == 1).await);
    assert!(matches!(
        fx.inner().devices["PUMP-6"].events[0].kind,
        EventKind::LibraryRejected { .. }
    ));
    let st = agent.status();
    assert_eq!(st.quarantine.unwrap().state, QuarantineState::Quarantined);
    assert!(st.connected);
    assert_eq!(agent.therapy().infusion, InfusionState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_refusal_is_respected_and_events_are_kept() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&fx, "PUMP-7", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-7"));
    fx.inner().refuse_hello = Some(pumpward_proto::message::RefusalCode::ShuttingDown);
    let agent = PumpAgent::start(cfg).await.unwrap();
    agent.record(alarm(1)).unwrap();
    assert!(
        agent
            .wait_for(T, |s| s.refusals.get("shutting_down").copied().unwrap_or(0)
                >= 1)
            .await
    );
    assert!(!agent.status().connected);
    assert_eq!(agent.status().queue_depth, 1);
    fx.inner().refuse_hello = None;
    // retry_after_s = 1 is honoured, then the event goes through.
    assert!(agent.wait_for(T, |s| s.connected && s.last_ack == 1).await);
}

/// A signed sample library of `version` and its SHA-256 (hex).
fn signed(key: &[u8], kid: &[u8], version: u32) -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let mut lib = pumpward_druglib::sample_library();
    lib.version = version;
    let env =
        pumpward_druglib::sign_library(&lib, key, kid, "pharmacist.b", 1_795_000_000).unwrap();
    let d = hex::encode(sha2::Sha256::digest(&env));
    (env, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_libraries_are_fetched_over_mutual_tls_installed_or_refused_and_reported() {
    use pumpward_druglib::check::{CheckOutcome, DoseInput, DrugSelection, Programming};
    use pumpward_proto::message::{DoseCheckResult, LibraryRejectReason};
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = pumpward_druglib::fuzzing::new_test_signing_key();
    let kid = b"hospital-a".to_vec();
    let mut cfg = config(&fx, "PUMP-L", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-L"));
    cfg.care_area = Some("Adult ICU".into());
    cfg.library_trust = vec![pumpward_druglib::TrustedKey {
        kid: kid.clone(),
        public_key: pumpward_druglib::envelope::public_key_from_pkcs8(&key).unwrap(),
    }];
    let agent = PumpAgent::start(cfg).await.unwrap();
    assert!(agent.wait_for(T, |s| s.connected).await);

    let (v5, d5) = signed(&key, &kid, 5);
    let mut flipped = signed(&key, &kid, 6).0;
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let d_flipped = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&flipped))
    };
    let (v4, d4) = signed(&key, &kid, 4);
    let (v6, d6) = signed(&key, &kid, 6);
    {
        let mut i = fx.inner();
        for (d, e) in [(&d5, &v5), (&d_flipped, &flipped), (&d4, &v4), (&d6, &v6)] {
            i.libraries.insert(d.clone(), e.clone());
        }
    }
    let announce = |v: &str, d: &str| Command::DrugLibraryAvailable {
        version: v.into(),
        digest: d.into(),
        size: None,
    };
    // Installed: reported in the status, as an event and in the next heartbeat.
    assert!(fx.command("PUMP-L", "lib-5", announce("5", &d5)).await);
    assert!(agent.wait_for(T, |s| s.libraries_installed == 1).await);
    assert_eq!(agent.library().unwrap().version, "5");
    assert_eq!(agent.library().unwrap().digest, d5);
    assert_eq!(agent.therapy().library.unwrap().digest, d5);
    // A flipped byte and a lower version are refused; version 5 stays.
    assert!(
        fx.command("PUMP-L", "lib-x", announce("6", &d_flipped))
            .await
    );
    assert!(fx.command("PUMP-L", "lib-4", announce("4", &d4)).await);
    assert!(agent.wait_for(T, |s| s.libraries_rejected == 2).await);
    assert_eq!(agent.library().unwrap().digest, d5);
    // Every fetch was made with the pump's own certificate.
    assert!(fx
        .inner()
        .library_fetches
        .iter()
        .all(|(asset, _)| asset == "PUMP-L"));

    // While infusing, a good library waits; it installs once the pump is idle.
    agent.update_therapy(|t| t.infusion = InfusionState::Running);
    assert!(fx.command("PUMP-L", "lib-6", announce("6", &d6)).await);
    assert!(agent.wait_for(T, |s| s.library_pending.is_some()).await);
    assert_eq!(agent.library().unwrap().version, "5");
    agent.update_therapy(|t| t.infusion = InfusionState::Idle);
    assert!(agent.wait_for(T, |s| s.libraries_installed == 2).await);
    assert_eq!(agent.library().unwrap().digest, d6);

    // A programming goes through the installed library's dose check.
    let p = Programming {
        drug: Some(DrugSelection {
            drug: "heparin",
            concentration: "25000 units/250 mL".parse().unwrap(),
        }),
        dose: DoseInput::Rate {
            ml_per_h: "50".parse().unwrap(),
        },
        weight_kg: Some("80".parse().unwrap()),
        bolus: None,
        vtbi_ml: None,
        override_reason: Some("physician order"),
    };
    let out = agent
        .program_at(time::OffsetDateTime::now_utc(), "inf-9", &p)
        .unwrap();
    assert!(matches!(out, CheckOutcome::HardLimitBlocked { .. }));

    // The gateway received, in order: installed 5, two refusals with
    // their reasons, installed 6, the hard block.
    // And the deferred command's second result, once installed.
    assert!(
        agent
            .wait_for(T, |_| {
                let i = fx.inner();
                let d = &i.devices["PUMP-L"];
                d.events.len() >= 5 && d.results.len() >= 5
            })
            .await
    );
    let i = fx.inner();
    let d = &i.devices["PUMP-L"];
    let kinds: Vec<&EventKind> = d.events.iter().map(|e| &e.kind).collect();
    assert!(
        matches!(kinds[0], EventKind::LibraryInstalled { version, digest } if version == "5" && *digest == d5)
    );
    assert!(matches!(
        kinds[1],
        EventKind::LibraryRejected {
            reason: LibraryRejectReason::SignatureInvalid,
            ..
        }
    ));
    assert!(d.events[1].detail["error"].contains("signature"));
    assert!(matches!(
        kinds[2],
        EventKind::LibraryRejected { reason: LibraryRejectReason::VersionRollback, version: Some(v), .. } if v == "4"
    ));
    assert!(matches!(kinds[3], EventKind::LibraryInstalled { version, .. } if version == "6"));
    assert!(
        matches!(kinds[4], EventKind::DoseCheck(c) if c.result == DoseCheckResult::HardBlock && c.library_version.as_deref() == Some("6"))
    );
    let results: Vec<(&str, CommandStatus)> = d
        .results
        .iter()
        .map(|r| (r.id.as_str(), r.status))
        .collect();
    assert_eq!(
        results,
        vec![
            ("lib-5", CommandStatus::Completed),
            ("lib-x", CommandStatus::Rejected),
            ("lib-4", CommandStatus::Rejected),
            ("lib-6", CommandStatus::Deferred),
            ("lib-6", CommandStatus::Completed),
        ]
    );
    assert_eq!(
        d.results[4].detail.as_deref(),
        Some("library version 6 installed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_library_survives_a_restart_and_is_announced_in_hello() {
    let fx = Fixture::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key = pumpward_druglib::fuzzing::new_test_signing_key();
    let kid = b"hospital-a".to_vec();
    let trust = vec![pumpward_druglib::TrustedKey {
        kid: kid.clone(),
        public_key: pumpward_druglib::envelope::public_key_from_pkcs8(&key).unwrap(),
    }];
    let mut cfg = config(&fx, "PUMP-R", dir.path());
    cfg.enrollment_code = Some(fx.code_for("PUMP-R"));
    cfg.care_area = Some("Oncology".into());
    cfg.library_trust = trust;
    let (v3, d3) = signed(&key, &kid, 3);
    fx.inner().libraries.insert(d3.clone(), v3);
    let agent = PumpAgent::start(cfg.clone()).await.unwrap();
    assert!(agent.wait_for(T, |s| s.connected).await);
    let c = Command::DrugLibraryAvailable {
        version: "3".into(),
        digest: d3.clone(),
        size: None,
    };
    assert!(fx.command("PUMP-R", "lib-3", c).await);
    assert!(agent.wait_for(T, |s| s.libraries_installed == 1).await);
    agent.shutdown().await;

    cfg.enrollment_code = None;
    let again = PumpAgent::start(cfg).await.unwrap();
    assert_eq!(again.library().unwrap().digest, d3);
    assert!(again.wait_for(T, |s| s.connected).await);
    let i = fx.inner();
    let hello = i.devices["PUMP-R"].hellos.last().unwrap();
    assert_eq!(hello.library.as_ref().unwrap().version, "3");
    assert_eq!(hello.library.as_ref().unwrap().digest, d3);
}
