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
                ("c-lib", CommandStatus::Rejected),
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
