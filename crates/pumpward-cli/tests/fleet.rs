//! The pump agent and fleet simulator against a real `pumpward serve`:
//! EST enrollment, the mutually authenticated device channel, events stored
//! before they are acknowledged, and every attack and fault scenario of the
//! simulator refused or survived as it should be.

mod common;

use common::{biomed_with_token, free_port};
use pumpward_pump::sim::{run_sim, Scenario, SimOptions};

use std::time::{Duration, Instant};

/// A data directory with a biomed token and `pumps` in-service pumps.
async fn prepare(data: &std::path::Path, secret: &str, pumps: usize) {
    let store = pumpward_store::Store::open_sqlite(data).await.unwrap();
    biomed_with_token(&store, secret, common::BIOMED_PKI).await;
    for i in 0..pumps {
        let mac = Some(format!("02:00:00:00:00:{i:02x}"));
        common::in_service_pump(&store, &format!("P-{i:03}"), &format!("SN{i:05}"), mac).await;
    }
    store.close().await;
}

fn start_server(t: &std::path::Path, port: u16, gport: u16) -> std::process::Child {
    common::start_server(&t.join("data"), &t.join("kek"), port, gport)
}

async fn wait_up(t: &std::path::Path, gport: u16) {
    let ca = t.join("data/tls/ca.pem");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ca.exists() || std::net::TcpStream::connect(("127.0.0.1", gport)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Killing the gateway (SIGKILL) while pumps send loses no acknowledged
/// event, and the fleet reconnects by itself when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_killed_and_restarted_loses_nothing() {
    let t = tempfile::tempdir().unwrap();
    let secret = "pw_fleet-restart-token-0123456789abcdef";
    const PUMPS: usize = 4;
    prepare(&t.path().join("data"), secret, PUMPS).await;
    let (port, gport) = (free_port(), free_port());
    let child = start_server(t.path(), port, gport);
    wait_up(t.path(), gport).await;
    let mut o = SimOptions::new(
        &format!("https://127.0.0.1:{port}"),
        &format!("127.0.0.1:{gport}"),
        secret,
        t.path().join("data/tls/ca.pem"),
        PUMPS,
    );
    o.speed = 1200.0;
    o.duration = Duration::from_secs(20);
    o.drain_timeout = Duration::from_secs(60);
    // Daytime on the simulated clock (activity follows the hour of day), so
    // that the traffic spans the outage whenever the test runs.
    o.clock_start =
        Some(time::OffsetDateTime::now_utc().replace_time(time::Time::from_hms(8, 0, 0).unwrap()));
    o.state_dir = Some(t.path().join("pumps"));
    let dir = t.path().to_path_buf();
    let chaos = tokio::spawn(async move {
        let mut child = child;
        tokio::time::sleep(Duration::from_secs(8)).await;
        child.kill().unwrap(); // SIGKILL, mid-traffic
        child.wait().unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        start_server(&dir, port, gport)
    });
    let report = run_sim(o).await.unwrap();
    let mut child = chaos.await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    println!("{report}");
    assert_eq!(report.enrolled, PUMPS, "{report}");
    assert!(
        report.reconnects >= PUMPS as u64,
        "every pump reconnected by itself: {report}"
    );
    assert_eq!(
        report.queued_at_end, 0,
        "everything queued was delivered after the restart: {report}"
    );
    assert_eq!(report.events_dropped, 0, "{report}");
    assert!(
        report.events_recorded >= 40,
        "enough traffic to span the outage: {report}"
    );
    let store = pumpward_store::Store::open_sqlite(&t.path().join("data"))
        .await
        .unwrap();
    let mut stored = 0u64;
    for i in 0..PUMPS {
        let id = format!("P-{i:03}");
        let events = store.device_events(&id, 0, 100_000).await.unwrap();
        assert!(
            store.device_gaps(&id).await.unwrap().is_empty(),
            "{id}: no gap"
        );
        for (k, e) in events.iter().enumerate() {
            assert_eq!(e.seq, k as i64 + 1, "{id}: every event once, in order");
        }
        stored += events.len() as u64;
    }
    assert_eq!(
        stored, report.events_acked,
        "stored exactly what was acknowledged"
    );
    assert_eq!(
        stored, report.events_recorded,
        "and that is everything the pumps recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_fleet_against_the_real_gateway() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let secret = "pw_fleet-integration-token-0123456789abc";
    const PUMPS: usize = 6;
    prepare(&data, secret, PUMPS).await;
    let (port, gport) = (free_port(), free_port());
    let mut child = start_server(t.path(), port, gport);
    wait_up(t.path(), gport).await;
    let ca = data.join("tls/ca.pem");
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
    // Mid-run, a biomed asks a connected pump for its status over the API.
    let (api, ca2) = (format!("https://127.0.0.1:{port}"), ca.clone());
    let command = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let c = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&ca2).unwrap()).unwrap(),
            )
            .build()
            .unwrap();
        let send = |asset: &'static str| {
            c.post(format!("{api}/api/v1/fleet/{asset}/commands"))
                .bearer_auth(secret)
                .json(&serde_json::json!({ "command": "request_status" }))
                .send()
        };
        let connected = send("P-004").await.unwrap().status().as_u16();
        let unknown = send("P-999").await.unwrap().status().as_u16();
        (connected, unknown)
    });
    let report = run_sim(o).await.unwrap();
    let (connected, unknown) = command.await.unwrap();
    assert_eq!(connected, 202, "a connected pump takes a command");
    assert_eq!(unknown, 404);
    // The attacks raise their alerts: the rogue device's repeated attempts,
    // and the cloned certificate used while its pump was connected.
    let alerts = {
        let store = pumpward_store::Store::open_sqlite(&data).await.unwrap();
        let want = ["auth_failure_burst", "certificate_concurrent_use"];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rules: Vec<String> = store
                .list_alerts(&pumpward_store::AlertFilter::default())
                .await
                .unwrap()
                .0
                .into_iter()
                .map(|a| a.case.alert.key.rule)
                .collect();
            if want.iter().all(|w| rules.iter().any(|r| r == w)) || Instant::now() > deadline {
                break rules;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    println!("{report}");
    for rule in ["auth_failure_burst", "certificate_concurrent_use"] {
        assert!(
            alerts.iter().any(|r| r == rule),
            "{rule} raised: {alerts:?}"
        );
    }
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
    // ... and reached the detection engine as a security event.
    let seen = store
        .list_security_events(&pumpward_store::SecurityEventFilter {
            kind: Some("auth_failure".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert!(!seen.is_empty(), "refusals are detection events");
    let revoked = store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("pki.certificate.revoke".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
    let commands = store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("device.command".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(commands.len(), 1);
    assert!(store.audit_verify().await.unwrap().error.is_none());
}

/// The rules the demo's storyline makes fire (`docs/demo.md`).
const DEMO_RULES: &[&str] = &[
    "library_mismatch",
    "library_rejected",
    "hard_limit_burst_pump",
    "hard_limit_burst_care_area",
    "soft_override_burst_pump",
    "soft_override_burst_care_area",
    "firmware_digest_mismatch",
    "auth_failure_burst",
    "certificate_concurrent_use",
    "device_unseen",
    "maintenance_outside_window",
    "default_credentials",
    "kev_finding_in_service",
    "pump_to_internet",
    "east_west_traffic",
    "unknown_device_in_zone",
    "device_in_two_places",
];

/// The README's first command: `pumpward demo` prints the setup link (its
/// fleet's service account does not close setup) and its simulated pumps
/// enroll through EST and deliver events over the device channel; every
/// rule of the storyline fires, and the drug-library story (issue 4's "done
/// when") leaves its outcome in the store (see [`LibraryStory`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_the_setup_link_its_fleet_comes_alive_and_every_rule_fires() {
    use std::io::BufRead;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("pumpward-demo");
    let t0 = time::OffsetDateTime::now_utc();
    let (port, gport) = (free_port(), free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pumpward"))
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--gateway-listen",
            &format!("127.0.0.1:{gport}"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read everything the demo prints (a closed pipe would fail its writes).
    let lines = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // The storyline's steps, in the test's output when it fails.
            .inspect(|l| {
                if l.starts_with("Story:") {
                    eprintln!("{l}");
                }
            })
            .filter(|l| l.contains("/setup?token="))
            .count()
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut delivering = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Ok(store) = pumpward_store::Store::open_sqlite(&dir).await {
            let (connected, _) = store
                .list_certificates(&pumpward_store::CertFilter {
                    kind: Some(pumpward_store::CertKind::Device),
                    limit: 500,
                    ..Default::default()
                })
                .await
                .unwrap();
            delivering = 0;
            for c in connected.iter().filter_map(|c| c.asset_id.clone()) {
                if store.device_last_seq(&c).await.unwrap_or(0) > 0 {
                    delivering += 1;
                }
            }
            store.close().await;
            if delivering >= 10 {
                break;
            }
        }
    }
    // The storyline: every rule the demo plays raises its alert.
    let mut missing: Vec<&str> = DEMO_RULES.to_vec();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !missing.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if let Ok(store) = pumpward_store::Store::open_sqlite(&dir).await {
            for rule in missing.clone() {
                let (found, _) = store
                    .list_alerts(&pumpward_store::AlertFilter {
                        rule: Some(rule.into()),
                        limit: 1,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                if !found.is_empty() {
                    missing.retain(|r| *r != rule);
                }
            }
            store.close().await;
        }
    }
    // The drug-library storyline, once the scenarios are played.
    let story = demo_library_story(&dir, t0).await;
    // The compliance view as the API serves it (an auditor's token).
    let compliance = demo_compliance_by_api(&dir, port).await;
    child.kill().unwrap();
    child.wait().unwrap();
    story.assert_done();
    assert_eq!(
        (
            compliance["current_version"].as_i64(),
            compliance["percent"].as_f64(),
            compliance["current"].as_i64(),
        ),
        (Some(3), Some(100.0), compliance["pumps"].as_i64()),
        "the compliance view reaches 100 % for the published version: {compliance}"
    );
    assert_eq!(
        compliance["assignment"]["care_areas"],
        serde_json::json!([])
    );
    assert!(compliance["stale"].as_array().unwrap().is_empty());
    assert!(
        lines.join().unwrap() > 0,
        "the demo printed its banner and a setup link"
    );
    assert!(
        delivering >= 10,
        "at least 10 simulated pumps enrolled and delivered events ({delivering})"
    );
    assert!(
        missing.is_empty(),
        "the demo raised no alert of {missing:?}"
    );
    assert!(
        t.path().join("pumpward-demo.kek").exists(),
        "the demo's KEK sits beside its directory"
    );
    assert!(!dir.join("pumpward-demo.kek").exists());
}

/// What the demo's drug-library storyline left in the store
/// (`crates/pumpward-cli/src/demo_library.rs`).
#[derive(Debug, Default)]
struct LibraryStory {
    /// The published revision pharmacist A drafted: (version, author,
    /// approver, publisher, the Adult ICU heparin hard maximum).
    change: Option<(i64, String, String, String, String)>,
    /// The newest rollout: (version, pilot percent, current wave, audit
    /// records of its advance).
    rollout: Option<(i64, i64, i64, usize)>,
    counts: pumpward_store::RolloutCounts,
    /// Pumps that installed the new version (the rollout says so).
    installed: Vec<String>,
    /// Pumps on the current version in the compliance view, of how many.
    compliant: i64,
    counted: i64,
    /// Installed pumps without three `library_rejected` reports since the
    /// start.
    not_refusing: Vec<String>,
    soft_overrides: i64,
    hard_blocks: i64,
    override_reasons: Vec<String>,
}

impl LibraryStory {
    fn finished(&self) -> bool {
        self.rollout.is_some_and(|r| r.2 == 2)
            && !self.installed.is_empty()
            && self.counts.announced == 0
            && self.counts.deferred == 0
            && self.not_refusing.is_empty()
            && self.counted > 0
            && self.compliant == self.counted
    }

    fn assert_done(&self) {
        let (version, author, approver, publisher, heparin) =
            self.change.clone().expect("a drafted change was published");
        assert_eq!(version, 3, "{self:?}");
        assert_eq!(author, "demo-ann");
        assert_eq!(approver, "demo-bea", "a second pharmacist approved");
        assert_eq!(publisher, "demo-bea");
        assert_eq!(heparin, "35", "the change tightened heparin's hard maximum");
        let (rv, pilot, wave, advances) = self.rollout.expect("a rollout");
        assert_eq!((rv, pilot, wave), (3, 25, 2), "pilot first, then everyone");
        assert_eq!(advances, 1, "advanced once, audited");
        // The whole fleet is simulated: every pump in service or in
        // maintenance installed it, the re-provisioned one included.
        let h = pumpward_core::demo::sample_hospital(pumpward_core::demo::DEFAULT_SEED);
        let fleet = h
            .pumps()
            .filter(|a| {
                matches!(
                    a.lifecycle_state,
                    pumpward_core::inventory::LifecycleState::InService
                        | pumpward_core::inventory::LifecycleState::Maintenance
                )
            })
            .count();
        assert_eq!(
            (self.installed.len(), self.counts.total as usize),
            (fleet, fleet),
            "every pump of the fleet installed it: {:?}",
            self.counts
        );
        assert_eq!(
            (self.compliant, self.counted),
            (fleet as i64, fleet as i64),
            "the compliance view: every pump current"
        );
        assert_eq!(
            (self.counts.announced, self.counts.deferred),
            (0, 0),
            "every pump the gateway reached answered and installed: {:?}",
            self.counts
        );
        assert!(
            self.compliant >= self.installed.len() as i64,
            "the compliance view counts every installing pump current, even after the tampered envelopes: {self:?}"
        );
        assert!(
            self.not_refusing.is_empty(),
            "every pump reported refusing the three tampered envelopes: {:?}",
            self.not_refusing
        );
        assert!(self.soft_overrides > 0 && self.hard_blocks > 0, "{self:?}");
        assert!(
            self.override_reasons
                .iter()
                .any(|r| r == "titrating to effect per protocol"),
            "the override storm's reason is in the CQI report: {:?}",
            self.override_reasons
        );
    }
}

async fn read_library_story(
    store: &pumpward_store::Store,
    since: time::OffsetDateTime,
) -> LibraryStory {
    let id = pumpward_druglib::sample_library().id;
    let mut s = LibraryStory::default();
    let revs = store.library_revisions(&id).await.unwrap();
    if let Some(r) = revs
        .iter()
        .find(|r| r.author == "demo-ann" && r.version.is_some_and(|v| v > 2))
    {
        let lib = pumpward_druglib::json::parse_library_json(r.content.as_bytes()).unwrap();
        let heparin = lib
            .care_areas
            .iter()
            .find(|a| a.name == "Adult ICU")
            .and_then(|a| a.entries.iter().find(|e| e.drug == "heparin"))
            .and_then(|e| e.hard_max)
            .map(|d| d.to_string())
            .unwrap_or_default();
        s.change = Some((
            r.version.unwrap_or(0),
            r.author.clone(),
            r.approved_by.clone().unwrap_or_default(),
            r.published_by.clone().unwrap_or_default(),
            heparin,
        ));
    }
    let rollouts = store.library_rollouts(&id).await.unwrap();
    if let Some(r) = rollouts.first().filter(|r| r.version > 1) {
        let advances = store
            .audit_list(&pumpward_store::AuditFilter {
                action: Some("library.rollout.advance".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .len();
        s.rollout = Some((r.version, r.pilot_percent, r.current_wave, advances));
        s.counts = r.counts.clone();
        s.installed = store
            .library_rollout_pumps(r.id, Some("installed"))
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.asset_id)
            .collect();
        let c = store
            .library_compliance(&id, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        (s.compliant, s.counted) = (c.current, c.pumps);
        let refusals: std::collections::BTreeMap<String, i64> = store
            .device_event_counts("library_rejected", since)
            .await
            .unwrap()
            .into_iter()
            .collect();
        s.not_refusing = s
            .installed
            .iter()
            .filter(|a| refusals.get(*a).copied().unwrap_or(0) < 3)
            .cloned()
            .collect();
    }
    let cqi = store
        .cqi_report(
            since - time::Duration::days(1),
            time::OffsetDateTime::now_utc() + time::Duration::days(365),
        )
        .await
        .unwrap();
    for r in &cqi.rows {
        s.soft_overrides += r.soft_overrides;
        s.hard_blocks += r.hard_blocks;
        s.override_reasons
            .extend(r.override_reasons.iter().map(|(why, _)| why.clone()));
    }
    s
}

/// `GET /api/v1/libraries/sample-library/compliance` from the running demo,
/// with a token of an auditor added to its store.
async fn demo_compliance_by_api(dir: &std::path::Path, port: u16) -> serde_json::Value {
    let secret = "pw_demo-test-auditor-token-0123456789abcd";
    let store = pumpward_store::Store::open_sqlite(dir).await.unwrap();
    let actor = pumpward_store::Actor::cli();
    let u = store
        .create_user(
            "demo-test-auditor",
            "Demo test auditor",
            pumpward_core::access::Role::Auditor,
            &pumpward_core::access::password::hash_password("Lantern-Tricycle-Harbour-42"),
            false,
            &actor,
        )
        .await
        .unwrap();
    store
        .create_api_token(
            &u,
            "demo test",
            &pumpward_server::auth::token_hash(secret),
            &[pumpward_core::access::Permission::LibraryRead],
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            &actor,
        )
        .await
        .unwrap();
    store.close().await;
    let ca = std::fs::read(dir.join("tls/ca.pem")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let r = http
        .get(format!(
            "https://127.0.0.1:{port}/api/v1/libraries/sample-library/compliance"
        ))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Waits (bounded) for the storyline to finish and returns what it left.
async fn demo_library_story(dir: &std::path::Path, since: time::OffsetDateTime) -> LibraryStory {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = LibraryStory::default();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if let Ok(store) = pumpward_store::Store::open_sqlite(dir).await {
            last = read_library_story(&store, since).await;
            store.close().await;
            if last.finished() {
                break;
            }
        }
    }
    last
}

/// Quarantining a connected pump through the API sends it a quarantine
/// notice, closes its connection within seconds and refuses it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_closes_the_pumps_connection() {
    use pumpward_pump::agent::{AgentConfig, PumpAgent};
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let secret = "pw_fleet-quarantine-token-0123456789abcd";
    prepare(&data, secret, 1).await;
    {
        // The biomed token may also move assets through the lifecycle.
        let store = pumpward_store::Store::open_sqlite(&data).await.unwrap();
        let u = store.user_by_name("bea").await.unwrap().unwrap();
        store
            .create_api_token(
                &u,
                "transition",
                &pumpward_server::auth::token_hash("pw_fleet-quarantine-transition-0123456789"),
                &[pumpward_core::access::Permission::InventoryTransition],
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                &pumpward_store::Actor::cli(),
            )
            .await
            .unwrap();
        store.close().await;
    }
    let (port, gport) = (free_port(), free_port());
    let mut child = start_server(t.path(), port, gport);
    wait_up(t.path(), gport).await;
    let ca_pem = std::fs::read_to_string(data.join("tls/ca.pem")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let code: serde_json::Value = http
        .post(format!("{base}/api/v1/assets/P-000/enrollment-codes"))
        .bearer_auth(secret)
        .json(&serde_json::json!({}))
        .send()
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
    let agent = PumpAgent::start(cfg).await.unwrap();
    assert!(
        agent
            .wait_for(Duration::from_secs(30), |s| s.connected)
            .await,
        "{:?}",
        agent.status()
    );
    let r = http
        .post(format!("{base}/api/v1/assets/P-000/transition"))
        .bearer_auth("pw_fleet-quarantine-transition-0123456789")
        .json(
            &serde_json::json!({ "to": "quarantined", "reason": "anomalous traffic, incident 42" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let closed = agent
        .wait_for(Duration::from_secs(5), |s| {
            !s.connected && s.quarantine.is_some()
        })
        .await;
    assert!(
        closed,
        "notice received and connection closed within 5 s: {:?}",
        agent.status()
    );
    // It stays off the network: new sessions are refused.
    let sessions = agent.status().sessions;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        agent.status().sessions,
        sessions,
        "no new session while quarantined"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The gateway's rollout driver with real agents: a staged rollout reaches
/// the pilot half of the fleet only, then, once advanced, every pump; each
/// pump fetches the signed envelope over mutual TLS, verifies and installs
/// it (or defers it until its infusion ends), and the rollout's per-pump
/// state comes from what the pumps report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_rollout_reaches_real_agents_through_the_gateway() {
    use pumpward_server::library::LibrarySigner;
    use pumpward_server::pki::{CaService, KekSource, PkiSettings};
    use pumpward_store::{Actor, NewRollout};
    const PUMPS: usize = 6;
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let secret = "pw_fleet-rollout-token-0123456789abcdefg";
    prepare(&data, secret, PUMPS).await;
    // The CA and its library-signing key, before the server starts (it
    // opens the same ones), and version 1 of the sample library.
    let store = pumpward_store::Store::open_sqlite(&data).await.unwrap();
    let ca = CaService::open(
        store.clone(),
        PkiSettings::new(KekSource::KeyFile {
            path: t.path().join("kek"),
            create: true,
        }),
        true,
    )
    .await
    .unwrap();
    let signer = LibrarySigner::load_or_create(&ca).await.unwrap();
    let lib = pumpward_druglib::sample_library();
    pumpward_server::library::publish_reviewed(&store, &signer, &lib, "ann", "bob")
        .await
        .unwrap();
    let bob = Actor::user("bob", None);
    let rollout = store
        .create_library_rollout(
            &NewRollout {
                library_id: lib.id.clone(),
                version: 1,
                pilot_care_area: None,
                pilot_percent: 50,
            },
            &bob,
        )
        .await
        .unwrap();
    assert_eq!(rollout.current_wave, 1);
    let pilot = rollout.pilot.total as usize;
    assert!(pilot > 0 && pilot < PUMPS, "a pilot of some pumps: {pilot}");

    let (port, gport) = (free_port(), free_port());
    let mut child = start_server(t.path(), port, gport);
    wait_up(t.path(), gport).await;
    let mut o = SimOptions::new(
        &format!("https://127.0.0.1:{port}"),
        &format!("127.0.0.1:{gport}"),
        secret,
        data.join("tls/ca.pem"),
        PUMPS,
    );
    // Fast: infusions that defer an install end within seconds.
    o.speed = 600.0;
    o.duration = Duration::from_secs(25);
    o.state_dir = Some(t.path().join("pumps"));
    let sim = tokio::spawn(run_sim(o));

    // Each pump's state as the store has it, by wave.
    let states = |store: pumpward_store::Store| async move {
        let mut by_wave = (Vec::new(), Vec::new());
        for p in store.library_rollout_pumps(rollout.id, None).await.unwrap() {
            if p.wave == 1 {
                by_wave.0.push(p.state);
            } else {
                by_wave.1.push(p.state);
            }
        }
        by_wave
    };
    // Answered: installed, or deferred until the pump's infusion ends (it
    // installs then; the simulated infusions may outlast the test).
    let settled = |s: &Vec<String>| s.iter().all(|x| x == "installed" || x == "deferred");
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut wave1, mut wave2) = states(store.clone()).await;
    while !settled(&wave1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        (wave1, wave2) = states(store.clone()).await;
    }
    assert!(
        settled(&wave1),
        "the pilot installed or deferred: {wave1:?}"
    );
    assert!(
        wave2.iter().all(|x| x == "pending"),
        "nothing announced beyond the pilot: {wave2:?}"
    );

    store
        .advance_library_rollout(rollout.id, &bob)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(settled(&wave1) && settled(&wave2)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        (wave1, wave2) = states(store.clone()).await;
    }
    assert!(settled(&wave2), "after advancing, every pump: {wave2:?}");
    let r = store.library_rollout(rollout.id).await.unwrap();
    assert_eq!(r.counts.installed + r.counts.deferred, PUMPS as i64);
    assert!(
        r.counts.installed > 0,
        "some pump installed it: {:?}",
        r.counts
    );
    // What the pumps said in their events is what the rollout shows.
    let fetched = store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("library.rollout.advance".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    let report = sim.await.unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(report.enrolled, PUMPS, "{report}");
}

/// `pumpward sim --scenario tampered-library` on its own, against a real
/// server: it fetches the older published version it offers from the
/// publication history through the API (nothing handed over). While the
/// pumps run version 1 it says precisely why it cannot run; once they run
/// version 2, every pump refuses the flipped byte, version 1 and the
/// untrusted key, keeps version 2, and the server records the refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_library_scenario_runs_standalone_from_the_published_history() {
    use pumpward_server::library::LibrarySigner;
    use pumpward_server::pki::{CaService, KekSource, PkiSettings};
    use pumpward_store::{Actor, NewRollout};
    const PUMPS: usize = 3;
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let secret = "pw_fleet-tampered-token-0123456789abcdef";
    {
        let store = pumpward_store::Store::open_sqlite(&data).await.unwrap();
        let mut perms = common::BIOMED_PKI.to_vec();
        perms.push(pumpward_core::access::Permission::LibraryRead);
        biomed_with_token(&store, secret, &perms).await;
        for i in 0..PUMPS {
            let mac = Some(format!("02:00:00:00:01:{i:02x}"));
            common::in_service_pump(&store, &format!("P-{i:03}"), &format!("SN{i:05}"), mac).await;
        }
        store.close().await;
    }
    let store = pumpward_store::Store::open_sqlite(&data).await.unwrap();
    let ca = CaService::open(
        store.clone(),
        PkiSettings::new(KekSource::KeyFile {
            path: t.path().join("kek"),
            create: true,
        }),
        true,
    )
    .await
    .unwrap();
    let signer = LibrarySigner::load_or_create(&ca).await.unwrap();
    let lib = pumpward_druglib::sample_library();
    for _ in 0..2 {
        pumpward_server::library::publish_reviewed(&store, &signer, &lib, "ann", "bob")
            .await
            .unwrap();
    }
    let bob = Actor::user("bob", None);
    let rollout = |version| NewRollout {
        library_id: lib.id.clone(),
        version,
        pilot_care_area: None,
        pilot_percent: 0,
    };
    let first = store
        .create_library_rollout(&rollout(1), &bob)
        .await
        .unwrap();

    let (port, gport) = (free_port(), free_port());
    let mut child = start_server(t.path(), port, gport);
    wait_up(t.path(), gport).await;
    let mut o = SimOptions::new(
        &format!("https://127.0.0.1:{port}"),
        &format!("127.0.0.1:{gport}"),
        secret,
        data.join("tls/ca.pem"),
        PUMPS,
    );
    o.speed = 600.0;
    // Long enough for both rollouts and both plays; aborted at the end.
    o.duration = Duration::from_secs(300);
    o.state_dir = Some(t.path().join("pumps"));
    let (requester, requests) = pumpward_pump::sim::scenario_requests();
    o.requests = Some(requests);
    assert!(o.rollback_library.is_none(), "nothing handed over");
    let sim = tokio::spawn(run_sim(o));
    let installed = |id: i64| {
        let store = store.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(45);
            loop {
                let r = store.library_rollout(id).await.unwrap();
                if r.counts.installed == PUMPS as i64 || Instant::now() > deadline {
                    return r.counts;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let c = installed(first.id).await;
    assert_eq!(c.installed, PUMPS as i64, "version 1 installed: {c:?}");
    let out = requester.play(Scenario::TamperedLibrary).await.unwrap();
    assert!(!out.passed, "{out:?}");
    assert!(
        out.observed.contains("no lower published version exists")
            && out.observed.contains("version 1 of library sample-library"),
        "{out:?}"
    );

    let second = store
        .create_library_rollout(&rollout(2), &bob)
        .await
        .unwrap();
    let c = installed(second.id).await;
    assert_eq!(c.installed, PUMPS as i64, "version 2 installed: {c:?}");
    let out = requester.play(Scenario::TamperedLibrary).await.unwrap();
    assert!(out.passed, "{out:?}");
    assert!(
        out.observed.starts_with(&format!(
            "{PUMPS} pumps: 9 of 9 envelopes refused, {PUMPS} kept"
        )),
        "{out:?}"
    );
    // The pumps report each refusal; the rollout still counts them current.
    let since = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut refusals = Vec::new();
    while Instant::now() < deadline {
        refusals = store
            .device_event_counts("library_rejected", since)
            .await
            .unwrap();
        if refusals.len() == PUMPS && refusals.iter().all(|(_, n)| *n >= 3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(refusals.len(), PUMPS, "{refusals:?}");
    assert!(refusals.iter().all(|(_, n)| *n >= 3), "{refusals:?}");
    let c = store
        .library_compliance(&lib.id, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!((c.current_version, c.current), (Some(2), PUMPS as i64));
    drop(requester);
    sim.abort();
    child.kill().unwrap();
    child.wait().unwrap();
}
