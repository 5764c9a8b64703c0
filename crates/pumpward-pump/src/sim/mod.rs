//! The fleet simulator: N virtual pumps in one process, each a
//! [`PumpAgent`] driven by a seeded [`model::PumpModel`], plus scenarios
//! that inject faults and attacks and report what they expected and what
//! happened.
//!
//! Scale: one tokio task per pump (its channel) and **one** driver task for
//! every model; queue writes run on the blocking pool; the TLS trust
//! anchors, server verifier and EST connection pool are shared; each pump's
//! client configuration is built lazily at its first connection; connects
//! are staggered over a ramp. Model state is ~100 bytes per pump.

pub mod model;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use pumpward_proto::message::{
    EventKind, Firmware, Hello, NetworkIdentity, RefusalCode, SUPPORTED_VERSIONS,
};
use pumpward_proto::{parse_gateway_message, GatewayMessage, PumpMessage, PROTOCOL_VERSION};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::agent::{AgentConfig, AgentEnv, PumpAgent};
use crate::api::{ApiClient, PumpAsset};
use crate::identity::{DeviceIdentity, TrustAnchors, DEVICE_ALPN};
use crate::AgentError;
use model::PumpModel;

/// A fault or attack to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// The network to the gateway is down for a while: agents keep queueing,
    /// then deliver everything.
    GatewayOutage,
    /// A pump's certificate is revoked mid-shift (through the API).
    CertificateRevoked,
    /// A device with a self-signed certificate tries to connect.
    RogueDevice,
    /// A device presents another pump's certificate from a new address,
    /// with fresh (empty) storage.
    ClonedCertificate,
    /// A pump resends a batch the gateway already acknowledged.
    ReplayBatch,
    /// A pump records a flood of events at once.
    EventFlood,
    /// Someone probes the limits: programmings above the hard maximum on
    /// one pump, each blocked by its dose check (needs a library).
    LimitProbing,
    /// Soft limits overridden again and again on one pump (needs a library).
    OverrideStorm,
    /// A library signed by a key the pumps do not trust is loaded through a
    /// pump's service port: the pump refuses it.
    ForgedLibrary,
    /// A validly signed library that was not released to this pump is
    /// loaded through its service port (needs `side_load_library`).
    SideLoadedLibrary,
    /// A login to a pump's maintenance menu outside any approved window.
    MaintenanceLogin,
    /// A pump reports a firmware image whose digest is not the vendor's.
    FirmwareTamper,
    /// Every pump with a library is offered tampered envelopes through its
    /// service port — its own with one byte flipped, a lower version
    /// (`rollback_library`), one signed by an untrusted key — and must
    /// refuse each and keep its library (needs a library).
    TamperedLibrary,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 13] = [
        Self::GatewayOutage,
        Self::CertificateRevoked,
        Self::RogueDevice,
        Self::ClonedCertificate,
        Self::ReplayBatch,
        Self::EventFlood,
        Self::LimitProbing,
        Self::OverrideStorm,
        Self::ForgedLibrary,
        Self::SideLoadedLibrary,
        Self::MaintenanceLogin,
        Self::FirmwareTamper,
        Self::TamperedLibrary,
    ];

    /// Whether it needs pumps with a drug library installed (a rollout by
    /// the server), or, for [`Scenario::SideLoadedLibrary`], a library to
    /// side-load: it fails, saying so, without.
    pub fn needs_library(self) -> bool {
        matches!(
            self,
            Self::LimitProbing
                | Self::OverrideStorm
                | Self::SideLoadedLibrary
                | Self::TamperedLibrary
        )
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GatewayOutage => "gateway-outage",
            Self::CertificateRevoked => "revoked-cert",
            Self::RogueDevice => "rogue-device",
            Self::ClonedCertificate => "cloned-cert",
            Self::ReplayBatch => "replay",
            Self::EventFlood => "event-flood",
            Self::LimitProbing => "limit-probing",
            Self::OverrideStorm => "override-storm",
            Self::ForgedLibrary => "forged-library",
            Self::SideLoadedLibrary => "side-loaded-library",
            Self::MaintenanceLogin => "maintenance-login",
            Self::FirmwareTamper => "firmware-tamper",
            Self::TamperedLibrary => "tampered-library",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|x| x.name()).collect();
                format!("unknown scenario {s:?}; one of {}", names.join(", "))
            })
    }
}

/// What a scenario expected and observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioOutcome {
    /// Which.
    pub scenario: Scenario,
    /// What should happen.
    pub expected: String,
    /// What happened.
    pub observed: String,
    /// Whether that is what should happen.
    pub passed: bool,
}

/// A scenario asked for while the fleet runs, and where its outcome goes.
type ScenarioRequest = (Scenario, tokio::sync::oneshot::Sender<ScenarioOutcome>);

/// The simulator's end of [`scenario_requests`]: it plays each scenario
/// asked for, one at a time, until the run ends.
#[derive(Clone)]
pub struct ScenarioRequests(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<ScenarioRequest>>>);

impl fmt::Debug for ScenarioRequests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScenarioRequests")
    }
}

/// The caller's end of [`scenario_requests`].
#[derive(Clone, Debug)]
pub struct ScenarioRequester(tokio::sync::mpsc::Sender<ScenarioRequest>);

impl ScenarioRequester {
    /// Plays `s` once the fleet is up and earlier scenarios are done;
    /// `None` if the simulator has stopped.
    pub async fn play(&self, s: Scenario) -> Option<ScenarioOutcome> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.send((s, tx)).await.ok()?;
        rx.await.ok()
    }
}

/// A channel to ask a running simulator for scenarios
/// ([`SimOptions::requests`]).
pub fn scenario_requests() -> (ScenarioRequester, ScenarioRequests) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    (
        ScenarioRequester(tx),
        ScenarioRequests(Arc::new(tokio::sync::Mutex::new(rx))),
    )
}

/// `pumpward sim` options.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// REST API base URL (`--server`), `https://host:port`.
    pub server_url: String,
    /// Gateway `host:port` (`--gateway`).
    pub gateway: String,
    /// API token (`--token`).
    pub token: String,
    /// CA chain PEM file (`--ca-file`).
    pub ca_file: PathBuf,
    /// Number of pumps (`--pumps`); at most the in-service pumps the API lists.
    pub pumps: usize,
    /// Time compression (`--speed`): simulated seconds per wall second.
    pub speed: f64,
    /// How long to run, wall time (`--duration`).
    pub duration: Duration,
    /// Scenarios (`--scenario`, repeatable).
    pub scenarios: Vec<Scenario>,
    /// Where pump state lives (one directory per pump); default a
    /// directory under the system temp dir. Reusing it keeps identities and
    /// queues across runs (no new enrollment codes needed).
    pub state_dir: Option<PathBuf>,
    /// Model seed.
    pub seed: u64,
    /// TLS name of the gateway; default the host part of `gateway`.
    pub gateway_server_name: Option<String>,
    /// EST base URL; default `https://<gateway>/.well-known/est/`.
    pub est_base_url: Option<String>,
    /// Window over which first connections are spread; default
    /// `min(pumps × 10 ms, 60 s)`.
    pub ramp: Option<Duration>,
    /// After `duration`, how long to wait for queues to drain.
    pub drain_timeout: Duration,
    /// Library-signing keys the pumps trust; empty: the server's
    /// `/pki/library-signing.pem`, fetched at start.
    pub library_trust: Vec<pumpward_druglib::TrustedKey>,
    /// A signed library envelope for [`Scenario::SideLoadedLibrary`].
    pub side_load_library: Option<Vec<u8>>,
    /// An older, validly signed envelope for [`Scenario::TamperedLibrary`]'s
    /// anti-rollback case; without it, the scenario fetches the published
    /// version below the lowest one the pumps run through the API (the
    /// token then needs `library.read`).
    pub rollback_library: Option<Vec<u8>>,
    /// Scenarios asked for while the fleet runs, after `scenarios` (a
    /// program embedding the simulator, such as `pumpward demo`, plays
    /// them when its storyline is ready for them).
    pub requests: Option<ScenarioRequests>,
    /// Also simulate the pumps in maintenance (after the in-service ones,
    /// within `pumps`): docked in the biomed workshop, connected, on mains,
    /// programming no infusions. A rollout addresses them too, so a fleet
    /// that must cover every addressed pump includes them.
    pub include_maintenance: bool,
    /// [`Scenario::CertificateRevoked`] ends as biomed would: a new
    /// enrollment code (through the API) re-provisions the pump with a new
    /// certificate, and it must connect again.
    pub reprovision_revoked: bool,
    /// Where the simulated clock starts (default: now). Clinical activity
    /// follows the hour of day, so a run that must see traffic starts in
    /// the daytime.
    pub clock_start: Option<OffsetDateTime>,
}

impl SimOptions {
    /// Options with defaults for everything but the required flags.
    pub fn new(
        server_url: &str,
        gateway: &str,
        token: &str,
        ca_file: impl Into<PathBuf>,
        pumps: usize,
    ) -> Self {
        Self {
            server_url: server_url.into(),
            gateway: gateway.into(),
            token: token.into(),
            ca_file: ca_file.into(),
            pumps,
            speed: 1.0,
            duration: Duration::from_secs(60),
            scenarios: Vec::new(),
            side_load_library: None,
            rollback_library: None,
            requests: None,
            clock_start: None,
            include_maintenance: false,
            reprovision_revoked: false,
            state_dir: None,
            seed: 1,
            gateway_server_name: None,
            est_base_url: None,
            ramp: None,
            drain_timeout: Duration::from_secs(30),
            library_trust: Vec::new(),
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Pumps asked for.
    pub pumps_requested: usize,
    /// Pumps started (limited by the inventory).
    pub pumps_started: usize,
    /// Pumps with a certificate at the end.
    pub enrolled: usize,
    /// Pumps connected at the end.
    pub connected: usize,
    /// Pumps per "manufacturer model firmware".
    pub models: BTreeMap<String, usize>,
    /// Events recorded by the models (and scenarios).
    pub events_recorded: u64,
    /// Events acknowledged by the gateway.
    pub events_acked: u64,
    /// Events refused by full queues.
    pub events_dropped: u64,
    /// Events still queued at the end.
    pub queued_at_end: u64,
    /// Sessions opened.
    pub sessions: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Failed connection attempts.
    pub connect_failures: u64,
    /// Refusals by code.
    pub refusals: BTreeMap<String, u64>,
    /// Simulated time covered.
    pub simulated: Duration,
    /// Wall time.
    pub wall: Duration,
    /// Scenario outcomes.
    pub scenarios: Vec<ScenarioOutcome>,
    /// Problems setting up pumps (enrollment codes, state).
    pub errors: Vec<String>,
}

impl SimReport {
    /// Every scenario observed what it expected.
    pub fn all_scenarios_passed(&self) -> bool {
        self.scenarios.iter().all(|s| s.passed)
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pumps: {} started of {} requested; {} enrolled, {} connected at the end",
            self.pumps_started, self.pumps_requested, self.enrolled, self.connected
        )?;
        writeln!(
            f,
            "time: {:.0} s simulated in {:.1} s",
            self.simulated.as_secs_f64(),
            self.wall.as_secs_f64()
        )?;
        writeln!(
            f,
            "events: {} recorded, {} acknowledged, {} still queued, {} dropped",
            self.events_recorded, self.events_acked, self.queued_at_end, self.events_dropped
        )?;
        writeln!(
            f,
            "sessions: {} opened, {} reconnects, {} failed attempts",
            self.sessions, self.reconnects, self.connect_failures
        )?;
        if !self.refusals.is_empty() {
            let r: Vec<String> = self
                .refusals
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect();
            writeln!(f, "refusals: {}", r.join(", "))?;
        }
        for (m, n) in &self.models {
            writeln!(f, "  {n:>6} × {m}")?;
        }
        for s in &self.scenarios {
            writeln!(
                f,
                "scenario {}: {}\n  expected: {}\n  observed: {}",
                s.scenario,
                if s.passed { "PASS" } else { "FAIL" },
                s.expected,
                s.observed
            )?;
        }
        for e in self.errors.iter().take(10) {
            writeln!(f, "error: {e}")?;
        }
        if self.errors.len() > 10 {
            writeln!(f, "… and {} more errors", self.errors.len() - 10)?;
        }
        Ok(())
    }
}

/// The firmware image digest a simulated pump of this model and version
/// reports (the demo puts the same on file as the vendor's).
pub fn simulated_firmware_digest(manufacturer: &str, model: &str, version: &str) -> String {
    sha256_hex(&format!("{manufacturer} {model} {version}"))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn host_of(addr: &str) -> String {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_owned()
}

fn safe_dir_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn mac_for(asset: &PumpAsset, i: usize) -> String {
    let m = asset
        .mac_address
        .as_deref()
        .unwrap_or("")
        .replace('-', ":")
        .to_ascii_lowercase();
    let ok = m.len() == 17
        && m.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        m
    } else {
        format!(
            "02:50:57:{:02x}:{:02x}:{:02x}",
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        )
    }
}

/// The agent configuration of a simulated pump from its inventory record.
fn pump_config(
    o: &SimOptions,
    base: &std::path::Path,
    a: &PumpAsset,
    i: usize,
    ramp: Duration,
    n: usize,
) -> AgentConfig {
    let server_name = o
        .gateway_server_name
        .clone()
        .unwrap_or_else(|| host_of(&o.gateway));
    let est = o
        .est_base_url
        .clone()
        .unwrap_or_else(|| format!("https://{}/.well-known/est/", o.gateway));
    let serial = a
        .serial_number
        .clone()
        .unwrap_or_else(|| a.asset_id.clone());
    let mut c = AgentConfig::new(
        &a.asset_id,
        serial,
        base.join(safe_dir_name(&a.asset_id)),
        &o.gateway,
        server_name,
        est,
        "",
    );
    let fw = a
        .firmware_version
        .clone()
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| "1.0.0".into());
    c.firmware_digest = simulated_firmware_digest(
        a.manufacturer.as_deref().unwrap_or("?"),
        a.model.as_deref().unwrap_or("?"),
        &fw,
    );
    c.firmware_version = fw;
    c.library_trust = o.library_trust.clone();
    c.network = NetworkIdentity {
        mac: mac_for(a, i),
        ip: a.ip_address.as_deref().and_then(|s| s.parse().ok()),
        hostname: a.hostname.clone().filter(|h| {
            !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }),
        ssid: Some("CLIN-PUMPS".into()),
        bssid: None,
        ap_name: None,
    };
    c.care_area = a.care_area.clone().filter(|s| !s.trim().is_empty());
    c.initial_delay = if n > 1 {
        ramp.mul_f64(i as f64 / n as f64)
    } else {
        Duration::ZERO
    };
    c.keep_last_acked_batch = i == 0;
    c.ack_timeout = Duration::from_secs(60);
    c
}

struct Fleet {
    agents: Vec<PumpAgent>,
    models: Vec<String>,
}

/// Runs the simulation.
pub async fn run_sim(o: SimOptions) -> Result<SimReport, AgentError> {
    let wall0 = Instant::now();
    let pem = std::fs::read_to_string(&o.ca_file)
        .map_err(|e| AgentError::io(format!("reading {}", o.ca_file.display()), e))?;
    let est = o
        .est_base_url
        .clone()
        .unwrap_or_else(|| format!("https://{}/.well-known/est/", o.gateway));
    let (link_tx, link_rx) = watch::channel(true);
    // Held for the whole run: the agents' simulated network.
    let link_tx = Arc::new(link_tx);
    let env = AgentEnv::new(&est, &pem)?.with_link(link_rx);
    let api = ApiClient::new(&o.server_url, &o.token, env.trust())?;
    let mut assets = api.list_pumps(o.pumps).await?;
    // Maintenance pumps come last: they only connect (no infusions).
    let in_service = assets.len();
    if o.include_maintenance {
        assets.extend(
            api.list_pumps_in("maintenance", o.pumps.saturating_sub(in_service))
                .await?,
        );
    }
    let mut o = o;
    if o.library_trust.is_empty() {
        match api
            .library_signing_pem()
            .await
            .and_then(|pem| crate::library::trusted_key_from_cert_pem(&pem))
        {
            Ok(k) => o.library_trust = vec![k],
            Err(e) => {
                tracing::warn!(error = %e, "no library-signing key: the pumps will refuse every library")
            }
        }
    }
    let base = match &o.state_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("pumpward-sim-{}", std::process::id())),
    };
    let n = assets.len();
    let ramp = o
        .ramp
        .unwrap_or_else(|| Duration::from_millis(10 * n as u64).min(Duration::from_secs(60)));
    let mut report = SimReport {
        pumps_requested: o.pumps,
        ..SimReport::default()
    };

    // Start the agents: enrollment codes only for pumps without identity.
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut set = tokio::task::JoinSet::new();
    for (i, a) in assets.iter().enumerate() {
        let mut cfg = pump_config(&o, &base, a, i, ramp, n);
        let (api, env, sem) = (api.clone(), env.clone(), sem.clone());
        let label = format!(
            "{} {} {}",
            a.manufacturer.as_deref().unwrap_or("?"),
            a.model.as_deref().unwrap_or("?"),
            cfg.firmware_version
        );
        set.spawn(async move {
            let _permit = sem.acquire().await;
            let has_identity = DeviceIdentity::path(&cfg.state_dir).exists();
            if !has_identity {
                cfg.enrollment_code = Some(api.create_enrollment_code(&cfg.asset_id).await?.code);
            }
            let agent = PumpAgent::start_with(cfg, env).await?;
            Ok::<_, AgentError>((i, agent, label))
        });
    }
    let mut slots: Vec<Option<(PumpAgent, String)>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok((i, agent, label))) => slots[i] = Some((agent, label)),
            Ok(Err(e)) => report.errors.push(e.to_string()),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    let mut fleet = Fleet {
        agents: Vec::new(),
        models: Vec::new(),
    };
    let mut model_areas = Vec::new();
    for (i, s) in slots.into_iter().enumerate() {
        if let Some((agent, label)) = s {
            // No clinical model for a pump in maintenance.
            model_areas
                .push((i < in_service).then(|| assets[i].care_area.clone().unwrap_or_default()));
            fleet.agents.push(agent);
            fleet.models.push(label);
        }
    }
    for m in &fleet.models {
        *report.models.entry(m.clone()).or_default() += 1;
    }
    report.pumps_started = fleet.agents.len();
    let fleet = Arc::new(fleet);

    // The driver: one task steps every model when it is due.
    let sim0 = o.clock_start.unwrap_or_else(OffsetDateTime::now_utc);
    let speed = o.speed.max(0.001);
    let stop = Arc::new(tokio::sync::Notify::new());
    let driver = {
        let (fleet, stop, seed) = (fleet.clone(), stop.clone(), o.seed);
        tokio::spawn(async move { drive(fleet, model_areas, seed, sim0, speed, stop).await })
    };

    // Scenarios, after the fleet has had time to connect.
    let deadline = tokio::time::Instant::now() + o.duration;
    let mut outcomes = Vec::new();
    if (!o.scenarios.is_empty() || o.requests.is_some()) && !fleet.agents.is_empty() {
        let warm = ramp + Duration::from_secs(2);
        let _ = tokio::time::timeout(warm + Duration::from_secs(30), async {
            loop {
                let up = fleet.agents.iter().filter(|a| a.status().connected).count();
                if up * 10 >= fleet.agents.len() * 9 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        let ctx = ScenarioCtx {
            fleet: fleet.clone(),
            api: api.clone(),
            env: env.clone(),
            link: link_tx.clone(),
            opts: o.clone(),
        };
        let mut scen = o.scenarios.clone();
        scen.sort();
        scen.dedup();
        for s in scen {
            outcomes.push(ctx.run(s).await);
        }
        if let Some(requests) = &o.requests {
            let mut rx = requests.0.lock().await;
            loop {
                tokio::select! {
                    r = rx.recv() => match r {
                        Some((s, reply)) => {
                            let out = ctx.run(s).await;
                            outcomes.push(out.clone());
                            let _ = reply.send(out);
                        }
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
    }
    tokio::time::sleep_until(deadline).await;
    stop.notify_one();
    let _ = driver.await;
    let simulated = Duration::from_secs_f64(wall0.elapsed().as_secs_f64() * speed);

    // Let the queues drain (pumps whose certificate was revoked cannot).
    let _ = tokio::time::timeout(o.drain_timeout, async {
        loop {
            let busy = fleet.agents.iter().any(|a| {
                let s = a.status();
                s.queue_depth > 0 && s.connected
            });
            if !busy {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    for a in &fleet.agents {
        let s = a.status();
        report.enrolled += usize::from(s.cert_serial.is_some());
        report.connected += usize::from(s.connected);
        report.events_recorded += s.events_recorded;
        report.events_acked += s.events_acked;
        report.events_dropped += s.dropped_events;
        report.queued_at_end += s.queue_depth;
        report.sessions += s.sessions;
        report.reconnects += s.reconnects;
        report.connect_failures += s.connect_failures;
        for (k, v) in &s.refusals {
            *report.refusals.entry(k.clone()).or_default() += v;
        }
    }
    report.scenarios = outcomes;
    report.simulated = simulated;
    if let Ok(fleet) = Arc::try_unwrap(fleet) {
        let mut set = tokio::task::JoinSet::new();
        for a in fleet.agents {
            set.spawn(a.shutdown());
        }
        while set.join_next().await.is_some() {}
    }
    report.wall = wall0.elapsed();
    Ok(report)
}

async fn drive(
    fleet: Arc<Fleet>,
    areas: Vec<Option<String>>,
    seed: u64,
    sim0: OffsetDateTime,
    speed: f64,
    stop: Arc<tokio::sync::Notify>,
) {
    let t0 = tokio::time::Instant::now();
    let sim_now = |at: tokio::time::Instant| {
        sim0 + time::Duration::seconds_f64((at - t0).as_secs_f64() * speed)
    };
    let mut models: Vec<PumpModel> = areas
        .iter()
        .enumerate()
        .map(|(i, a)| {
            PumpModel::new(
                seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                a.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    // Due times in wall milliseconds since t0; every pump starts within its
    // first simulated minute. Pumps without a model (in maintenance) are
    // never stepped.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = (0..models.len())
        .filter(|&i| areas.get(i).is_some_and(Option::is_some))
        .map(|i| {
            let first_sim_ms = (i as u64).wrapping_mul(7919) % 60_000;
            Reverse(((first_sim_ms as f64 / speed) as u64 + 1, i))
        })
        .collect();
    while let Some(&Reverse((due_ms, i))) = heap.peek() {
        let due = t0 + Duration::from_millis(due_ms);
        tokio::select! {
            _ = stop.notified() => break,
            _ = tokio::time::sleep_until(due) => {}
        }
        heap.pop();
        let now = sim_now(tokio::time::Instant::now());
        let m = &mut models[i];
        let agent = &fleet.agents[i];
        let (events, delay_s) = agent.with_library(|lib| m.step(now, lib));
        for e in events {
            let _ = agent.record_at(now, e);
        }
        let (state, battery, mains, area) = (
            m.infusion_state(),
            m.battery_pct(),
            m.on_mains(),
            m.care_area().to_owned(),
        );
        agent.update_therapy(|t| {
            t.infusion = state;
            t.battery_pct = battery;
            t.on_mains = mains;
            t.care_area = Some(area);
        });
        let wall_ms = (delay_s / speed * 1000.0).max(1.0) as u64;
        let next = (tokio::time::Instant::now() - t0).as_millis() as u64 + wall_ms;
        heap.push(Reverse((next, i)));
    }
}

struct ScenarioCtx {
    fleet: Arc<Fleet>,
    api: ApiClient,
    env: AgentEnv,
    link: Arc<watch::Sender<bool>>,
    opts: SimOptions,
}

/// What a raw connection attempt (not an agent) met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The TLS handshake (or the first read, for TLS 1.3 client
    /// certificates) failed: the gateway refused the certificate.
    TlsRefused(String),
    /// The gateway refused the hello.
    Refused(RefusalCode),
    /// The gateway opened a session.
    Welcomed,
    /// The connection closed without an answer.
    Closed(String),
}

impl ProbeResult {
    fn refused(&self) -> bool {
        !matches!(self, Self::Welcomed)
    }
}

impl fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TlsRefused(e) => write!(f, "refused in TLS ({e})"),
            Self::Refused(c) => write!(f, "refused with {c}"),
            Self::Welcomed => f.write_str("accepted (welcome)"),
            Self::Closed(e) => write!(f, "closed without answer ({e})"),
        }
    }
}

/// Connects with `tls` (ALPN `pumpward-device/1`), sends `hello`, and
/// reports the gateway's answer.
pub async fn probe(
    gateway: &str,
    server_name: &str,
    tls: rustls::ClientConfig,
    hello: Hello,
) -> ProbeResult {
    let name = match rustls_pki_types::ServerName::try_from(server_name.to_owned()) {
        Ok(n) => n,
        Err(e) => return ProbeResult::Closed(e.to_string()),
    };
    let t = Duration::from_secs(10);
    let tcp = match tokio::time::timeout(t, tokio::net::TcpStream::connect(gateway)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return ProbeResult::Closed(format!("connect: {e}")),
        Err(_) => return ProbeResult::Closed("connect timed out".into()),
    };
    let stream = match tokio::time::timeout(
        t,
        tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return ProbeResult::TlsRefused(e.to_string()),
        Err(_) => return ProbeResult::Closed("TLS timed out".into()),
    };
    let mut ch = tokio_util::codec::Framed::new(stream, pumpward_proto::FrameDecoder::new());
    let payload = PumpMessage::Hello(hello)
        .to_payload(PROTOCOL_VERSION)
        .unwrap_or_default();
    if let Err(e) = ch.send(Bytes::from(payload)).await {
        return ProbeResult::TlsRefused(e.to_string());
    }
    match tokio::time::timeout(t, ch.next()).await {
        Err(_) => ProbeResult::Closed("no answer".into()),
        Ok(None) => ProbeResult::Closed("connection closed".into()),
        Ok(Some(Err(e))) => {
            let s = e.to_string();
            if s.contains("alert") || s.contains("certificate") {
                ProbeResult::TlsRefused(s)
            } else {
                ProbeResult::Closed(s)
            }
        }
        Ok(Some(Ok(p))) => match parse_gateway_message(&p, None) {
            Ok(GatewayMessage::Welcome(_)) => {
                let _ = ch.close().await;
                ProbeResult::Welcomed
            }
            Ok(GatewayMessage::Refusal(r)) => ProbeResult::Refused(r.code),
            Ok(m) => ProbeResult::Closed(format!("unexpected {}", m.type_name())),
            Err(e) => ProbeResult::Closed(e.to_string()),
        },
    }
}

fn probe_hello(mac: &str, ip: &str, next_seq: u64) -> Hello {
    Hello {
        versions: SUPPORTED_VERSIONS.to_vec(),
        firmware: Firmware {
            version: "9.9.9".into(),
            digest: sha256_hex("probe firmware"),
        },
        library: None,
        network: NetworkIdentity {
            mac: mac.into(),
            ip: ip.parse().ok(),
            hostname: Some("unknown-device".into()),
            ssid: Some("CLIN-PUMPS".into()),
            bssid: None,
            ap_name: None,
        },
        care_area: None,
        next_seq,
        agent: Some("pumpward-sim-probe".into()),
    }
}

/// The sample library signed by a freshly made key no pump trusts, with a
/// version above any real one.
fn forged_library_envelope() -> Result<Vec<u8>, String> {
    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut lib = pumpward_druglib::sample_library();
    lib.version = 9_999;
    let now = OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    pumpward_druglib::envelope::sign_library(&lib, &key.serialize_der(), b"rogue", "rogue", now)
        .map_err(|e| e.to_string())
}

/// Connection attempts of the rogue device.
const ROGUE_ATTEMPTS: usize = 6;

impl ScenarioCtx {
    fn agent(&self, k: usize) -> &PumpAgent {
        &self.fleet.agents[k % self.fleet.agents.len()]
    }

    fn server_name(&self) -> String {
        self.opts
            .gateway_server_name
            .clone()
            .unwrap_or_else(|| host_of(&self.opts.gateway))
    }

    async fn run(&self, s: Scenario) -> ScenarioOutcome {
        let (expected, observed, passed) = match s {
            Scenario::GatewayOutage => self.outage().await,
            Scenario::CertificateRevoked => self.revoked().await,
            Scenario::RogueDevice => self.rogue().await,
            Scenario::ClonedCertificate => self.cloned().await,
            Scenario::ReplayBatch => self.replay().await,
            Scenario::EventFlood => self.flood().await,
            Scenario::LimitProbing => self.limits(model::LimitCross::Hard).await,
            Scenario::OverrideStorm => self.limits(model::LimitCross::Soft).await,
            Scenario::ForgedLibrary => self.forged_library().await,
            Scenario::SideLoadedLibrary => self.side_loaded_library().await,
            Scenario::MaintenanceLogin => self.maintenance_login().await,
            Scenario::FirmwareTamper => self.firmware_tamper().await,
            Scenario::TamperedLibrary => self.tampered_library().await,
        };
        tracing::info!(scenario = %s, passed, %observed, "scenario done");
        ScenarioOutcome {
            scenario: s,
            expected: expected.into(),
            observed,
            passed,
        }
    }

    async fn outage(&self) -> (&'static str, String, bool) {
        let expected = "agents go offline and keep queueing; after the outage every event queued during it is acknowledged, none lost";
        let len = (self.opts.duration / 6).clamp(Duration::from_secs(2), Duration::from_secs(30));
        let _ = self.link.send(false);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let k = self.fleet.agents.len().min(20);
        for i in 0..k {
            let _ = self.agent(i).record(EventKind::Other {
                name: "sim_outage_marker".into(),
            });
        }
        tokio::time::sleep(len).await;
        let connected_during = self
            .fleet
            .agents
            .iter()
            .filter(|a| a.status().connected)
            .count();
        let mut targets = Vec::new();
        for i in 0..k {
            self.agent(i).flush().await;
            let s = self.agent(i).status();
            targets.push(s.next_seq.saturating_sub(1));
        }
        let queued: u64 = self
            .fleet
            .agents
            .iter()
            .map(|a| a.status().queue_depth)
            .sum();
        let _ = self.link.send(true);
        let mut delivered = 0;
        for (i, t) in targets.iter().enumerate() {
            if self
                .agent(i)
                .wait_for(Duration::from_secs(60), |s| s.last_ack >= *t)
                .await
            {
                delivered += 1;
            }
        }
        let passed = connected_during == 0 && delivered == k;
        (
            expected,
            format!("{connected_during} connected during a {len:?} outage, {queued} events queued fleet-wide; {delivered}/{k} marked pumps delivered everything afterwards"),
            passed,
        )
    }

    async fn revoked(&self) -> (&'static str, String, bool) {
        let expected = "the revoked pump's connection is closed and every reconnection is refused; its events stay queued";
        let a = self.agent(1);
        let Some(serial) = a.status().cert_serial else {
            return (expected, "target pump has no certificate".into(), false);
        };
        if let Err(e) = self.api.revoke_certificate(&serial, "key-compromise").await {
            return (
                expected,
                format!("revocation through the API failed: {e}"),
                false,
            );
        }
        let closed = a.wait_for(Duration::from_secs(30), |s| !s.connected).await;
        let sessions = a.status().sessions;
        let _ = a.record(EventKind::Other {
            name: "sim_after_revocation".into(),
        });
        a.disconnect();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let s = a.status();
        let refused = s.sessions == sessions;
        let mut observed = format!(
            "connection {}; {} new session(s) in 5 s, {} failed attempts, {} events queued; last error: {}",
            if closed { "closed" } else { "still open" },
            s.sessions - sessions,
            s.connect_failures,
            s.queue_depth,
            s.last_error.unwrap_or_default()
        );
        let mut back = true;
        if self.opts.reprovision_revoked {
            // Biomed re-provisions it: a new key and certificate.
            let id = a.config().asset_id.clone();
            back = match self.api.create_enrollment_code(&id).await {
                Ok(code) => {
                    a.set_enrollment_code(code.code);
                    a.wait_for(Duration::from_secs(60), |s| {
                        s.connected && s.cert_serial.as_deref() != Some(serial.as_str())
                    })
                    .await
                }
                Err(e) => {
                    observed.push_str(&format!("; re-provisioning failed: {e}"));
                    false
                }
            };
            observed.push_str(if back {
                "; re-provisioned with a new certificate, connected again"
            } else {
                "; NOT connected again after re-provisioning"
            });
        }
        (expected, observed, closed && refused && back)
    }

    /// Programmings through one pump's real dose check that cross a limit:
    /// six above the hard maximum (each blocked), or twelve between soft and
    /// hard maximum with a reason (each an override).
    async fn limits(&self, cross: model::LimitCross) -> (&'static str, String, bool) {
        use pumpward_druglib::check::{DoseInput, DrugSelection, Programming};
        // Per pump, above the pump rule's threshold; over up to three pumps
        // of one care area, above the care-area rule's.
        // In all, above the care-area rule's threshold (15 blocks, 30
        // overrides by default), spread over up to three pumps of one care
        // area, each above the pump rule's (5, 10).
        let (expected, total, k) = match cross {
            model::LimitCross::Hard => (
                "on up to three pumps of one care area, 18 programmings in all (at least 6 per pump) above a hard maximum, every one blocked by the pump's dose check",
                18,
                3,
            ),
            model::LimitCross::Soft => (
                "on up to three pumps of one care area, 36 programmings in all (at least 12 per pump) beyond a soft maximum, every one overridden with a reason",
                36,
                4,
            ),
        };
        // Pumps with a library: one busy with an infusion installs it
        // later, and a rollout may still be on its way.
        let n_agents = self.fleet.agents.len();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let first = loop {
            let found = (0..n_agents)
                .map(|i| self.agent(k + i))
                .find(|a| a.library().is_some());
            match found {
                Some(a) => break a,
                None if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                None => break self.agent(k),
            }
        };
        let area = first.therapy().care_area.unwrap_or_default();
        let Some((entry, dose, weight)) =
            first.with_library(|l| model::crossing_dose(l, &area, cross))
        else {
            return (
                expected,
                format!(
                    "{}: no library entry with the limits needed in {area:?} (is a library installed?)",
                    first.config().asset_id
                ),
                false,
            );
        };
        let version = first.library();
        let pumps: Vec<&PumpAgent> = (0..n_agents)
            .map(|i| self.agent(k + i))
            .filter(|a| {
                a.library() == version && a.therapy().care_area.as_deref() == Some(area.as_str())
            })
            .take(3)
            .collect();
        let per_pump = (total as usize).div_ceil(pumps.len().max(1));
        let (mut crossed, mut tried) = (0, 0);
        for a in &pumps {
            for i in 0..per_pump {
                let p = Programming {
                    drug: Some(DrugSelection {
                        drug: &entry.drug,
                        concentration: entry.concentration,
                    }),
                    dose: DoseInput::Dose {
                        value: dose,
                        unit: entry.dosing_unit,
                    },
                    weight_kg: weight,
                    bolus: None,
                    vtbi_ml: None,
                    override_reason: (cross == model::LimitCross::Soft)
                        .then_some("titrating to effect per protocol"),
                };
                let outcome =
                    a.program_at(OffsetDateTime::now_utc(), &format!("sim-limit-{i}"), &p);
                let ok = match (cross, outcome) {
                    (model::LimitCross::Hard, Ok(o)) => !o.allows_start(),
                    (model::LimitCross::Soft, Ok(o)) => o.allows_start(),
                    _ => false,
                };
                crossed += usize::from(ok);
                tried += 1;
            }
            a.flush().await;
        }
        let ids: Vec<&str> = pumps.iter().map(|a| a.config().asset_id.as_str()).collect();
        (
            expected,
            format!(
                "{} ({area}): {crossed} of {tried} at {dose} {} of {}",
                ids.join(", "),
                entry.dosing_unit,
                entry.drug
            ),
            tried > 0 && crossed == tried,
        )
    }

    async fn forged_library(&self) -> (&'static str, String, bool) {
        let expected = "a library signed by an unknown key, loaded through a pump's service port, is refused and the pump keeps its library";
        let a = self.agent(5);
        let id = a.config().asset_id.clone();
        let before = a.library();
        let envelope = match forged_library_envelope() {
            Ok(e) => e,
            Err(e) => return (expected, format!("could not forge: {e}"), false),
        };
        let r = a.load_library_locally(envelope).await;
        a.flush().await;
        let kept = a.library() == before;
        let shown = match &r {
            Ok(l) => format!("installed version {}", l.version),
            Err(e) => format!("refused: {e}"),
        };
        (expected, format!("{id}: {shown}"), r.is_err() && kept)
    }

    async fn side_loaded_library(&self) -> (&'static str, String, bool) {
        let expected = "a validly signed library that was not released to this pump installs through its service port (the server's library_mismatch rule must notice)";
        let Some(envelope) = self.opts.side_load_library.clone() else {
            return (expected, "no library to side-load was given".into(), false);
        };
        // A pump that installed the library it was sent: what it should
        // run is on record, so the side-loaded one is a mismatch.
        let a = (0..self.fleet.agents.len())
            .map(|i| self.agent(6 + i))
            .find(|a| a.library().is_some())
            .unwrap_or_else(|| self.agent(6));
        let id = a.config().asset_id.clone();
        let r = a.load_library_locally(envelope).await;
        a.flush().await;
        match r {
            Ok(l) => (
                expected,
                format!("{id}: installed version {}", l.version),
                true,
            ),
            Err(e) => (expected, format!("{id}: refused: {e}"), false),
        }
    }

    /// For [`Scenario::TamperedLibrary`] run on its own: the published
    /// version just below the lowest one a pump runs, from the server's
    /// publication history, so that every pump is offered a validly signed
    /// but older library. Says precisely why when there is none.
    async fn older_published_envelope(&self) -> Result<Vec<u8>, String> {
        let lowest = self
            .fleet
            .agents
            .iter()
            .filter_map(|a| a.installed_library())
            .min_by_key(|l| l.version)
            .ok_or_else(|| {
                "no pump has a drug library installed, so there is nothing to tamper with: \
                 roll a library out to the pumps first"
                    .to_owned()
            })?;
        if lowest.version <= 1 {
            return Err(format!(
                "a pump runs version {} of library {}: no lower published version exists to \
                 offer as the rollback case (publish and roll out version 2 first)",
                lowest.version, lowest.id
            ));
        }
        let v = lowest.version - 1;
        self.api.library_envelope(&lowest.id, v).await.map_err(|e| {
            format!(
                "fetching version {v} of library {} through the API (the token needs \
                     library.read) failed: {e}",
                lowest.id
            )
        })
    }

    async fn tampered_library(&self) -> (&'static str, String, bool) {
        let expected = "every pump with a library refuses its own envelope with a byte flipped, a lower version and a library signed by an untrusted key, and keeps its library";
        let older = match self.opts.rollback_library.clone() {
            Some(e) => e,
            None => match self.older_published_envelope().await {
                Ok(e) => e,
                Err(why) => return (expected, why, false),
            },
        };
        let forged = match forged_library_envelope() {
            Ok(e) => e,
            Err(e) => return (expected, format!("could not forge: {e}"), false),
        };
        let (mut pumps, mut offered, mut refused, mut kept) = (0usize, 0usize, 0usize, 0usize);
        let mut accepted = Vec::new();
        for a in &self.fleet.agents {
            let Some(before) = a.library() else { continue };
            let id = &a.config().asset_id;
            // The pump's own installed envelope, as stored on it.
            let file = a.config().state_dir.join(crate::library::LIBRARY_FILE);
            let Ok(mut flipped) = std::fs::read(&file) else {
                accepted.push(format!("{id}: cannot read {}", file.display()));
                continue;
            };
            let middle = flipped.len() / 2;
            if let Some(b) = flipped.get_mut(middle) {
                *b ^= 0x01;
            }
            pumps += 1;
            for (what, envelope) in [
                ("a flipped byte", flipped),
                ("a lower version", older.clone()),
                ("an untrusted key", forged.clone()),
            ] {
                offered += 1;
                match a.load_library_locally(envelope).await {
                    Err(_) => refused += 1,
                    Ok(l) => accepted.push(format!("{id}: {what} installed as {}", l.version)),
                }
            }
            kept += usize::from(a.library() == Some(before));
            a.flush().await;
        }
        let mut observed = format!(
            "{pumps} pumps: {refused} of {offered} envelopes refused, {kept} kept their library"
        );
        if !accepted.is_empty() {
            observed.push_str(&format!("; {}", accepted.join("; ")));
        }
        (
            expected,
            observed,
            pumps > 0 && refused == offered && kept == pumps && accepted.is_empty(),
        )
    }

    async fn maintenance_login(&self) -> (&'static str, String, bool) {
        let expected = "a successful login at a pump's service port is reported as an event";
        let a = self.agent(7);
        let id = a.config().asset_id.clone();
        let r = a.record(EventKind::MaintenanceLogin {
            method: pumpward_proto::message::LoginMethod::ServicePort,
            success: true,
            account: Some("service".into()),
        });
        a.flush().await;
        (expected, format!("{id}: {r:?}"), r.is_ok())
    }

    async fn firmware_tamper(&self) -> (&'static str, String, bool) {
        let expected = "a pump reports a firmware image whose digest is not the vendor's";
        let a = self.agent(8);
        let id = a.config().asset_id.clone();
        let version = a.config().firmware_version.clone();
        let r = a.record(EventKind::FirmwareChanged {
            from: Some(version.clone()),
            to: version.clone(),
            digest: sha256_hex(&format!("tampered image of {version}")),
        });
        a.flush().await;
        (expected, format!("{id}: {version}, {r:?}"), r.is_ok())
    }

    async fn rogue(&self) -> (&'static str, String, bool) {
        let expected = "a device with a self-signed certificate is refused, every time it tries";
        let victim = self.agent(0).config().asset_id.clone();
        let tls = match rogue_tls(self.env.trust(), &victim) {
            Ok(t) => t,
            Err(e) => {
                return (
                    expected,
                    format!("could not build the rogue certificate: {e}"),
                    false,
                )
            }
        };
        // Like any device it retries; every attempt must be refused (and
        // the attempts together are the gateway's burst of failures).
        let mut results = Vec::with_capacity(ROGUE_ATTEMPTS);
        for _ in 0..ROGUE_ATTEMPTS {
            results.push(
                probe(
                    &self.opts.gateway,
                    &self.server_name(),
                    tls.clone(),
                    probe_hello("02:66:66:00:00:01", "10.66.0.1", 1),
                )
                .await,
            );
        }
        let passed = results.iter().all(ProbeResult::refused);
        let shown: Vec<String> = results.iter().map(ToString::to_string).collect();
        (
            expected,
            format!(
                "claiming {victim}, {ROGUE_ATTEMPTS} attempts: {}",
                shown.join("; ")
            ),
            passed,
        )
    }

    async fn cloned(&self) -> (&'static str, String, bool) {
        let expected = "another pump's certificate with empty storage from a new address is refused (sequence_regression)";
        let a = self.agent(2);
        let _ = a.record(EventKind::Other {
            name: "sim_before_clone".into(),
        });
        let acked = a
            .wait_for(Duration::from_secs(30), |s| s.last_ack > 0)
            .await;
        let Some(id) = a.identity() else {
            return (expected, "target pump has no certificate".into(), false);
        };
        if !acked {
            return (
                expected,
                "target pump has nothing acknowledged yet".into(),
                false,
            );
        }
        let tls = match self.env.trust().client_config(Some(&id), &[DEVICE_ALPN]) {
            Ok(t) => t,
            Err(e) => return (expected, e.to_string(), false),
        };
        let r = probe(
            &self.opts.gateway,
            &self.server_name(),
            tls,
            probe_hello("02:66:66:00:00:02", "10.66.0.2", 1),
        )
        .await;
        let passed = matches!(r, ProbeResult::Refused(RefusalCode::SequenceRegression));
        (
            expected,
            format!("clone of {} from 10.66.0.2: {r}", a.config().asset_id),
            passed,
        )
    }

    async fn replay(&self) -> (&'static str, String, bool) {
        let expected = "an already acknowledged batch sent again is acknowledged without a refusal (duplicates dropped, not stored)";
        let a = self.agent(0);
        let _ = a.record(EventKind::Other {
            name: "sim_replay_marker".into(),
        });
        a.flush().await;
        let target = a.status().next_seq.saturating_sub(1);
        if !a
            .wait_for(Duration::from_secs(30), |s| s.last_ack >= target)
            .await
        {
            return (expected, "nothing acknowledged to replay".into(), false);
        }
        // Read before asking: the answer can arrive before this task runs again.
        let answered = a.status().replays_answered;
        if !a.replay_last_acked_batch() {
            return (expected, "no acknowledged batch kept".into(), false);
        }
        let got = a
            .wait_for(Duration::from_secs(30), |s| s.replays_answered > answered)
            .await;
        let r = a.status().replay;
        match (got, r) {
            (true, Some(r)) => {
                let passed = r.refusal.is_none() && r.ack.is_some_and(|ack| ack >= r.seqs.1);
                (
                    expected,
                    format!(
                        "replayed seq {}..={}: ack {:?}, refusal {:?}",
                        r.seqs.0, r.seqs.1, r.ack, r.refusal
                    ),
                    passed,
                )
            }
            _ => (expected, "no answer to the replay".into(), false),
        }
    }

    async fn flood(&self) -> (&'static str, String, bool) {
        let expected = "recording never blocks; the gateway acknowledges the flood or pushes back (rate_limited) while the pump keeps every accepted event";
        const N: usize = 5000;
        let a = self.agent(3);
        let t0 = Instant::now();
        let mut accepted = 0u64;
        for i in 0..N {
            let e = EventKind::Other {
                name: format!("sim_flood_{}", i % 100),
            };
            if a.record(e).is_ok() {
                accepted += 1;
            }
        }
        let took = t0.elapsed();
        a.flush().await;
        let target = a.status().next_seq.saturating_sub(1);
        let drained = a
            .wait_for(Duration::from_secs(60), |s| s.last_ack >= target)
            .await;
        let s = a.status();
        let limited = s.refusals.get("rate_limited").copied().unwrap_or(0);
        let lost = s.queue_failures;
        let passed = took < Duration::from_secs(2) && lost == 0 && (drained || limited > 0);
        (
            expected,
            format!(
                "{accepted}/{N} accepted in {took:?}; {} dropped; {} acknowledged up to seq {}, {} still queued; rate_limited ×{limited}",
                s.dropped_events, if drained { "all" } else { "not all" }, s.last_ack, s.queue_depth
            ),
            passed,
        )
    }
}

/// A client configuration with a fresh self-signed certificate claiming to
/// be `asset` (what a rogue device would present).
fn rogue_tls(trust: &TrustAnchors, asset: &str) -> Result<rustls::ClientConfig, String> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.distinguished_name.push(rcgen::DnType::CommonName, asset);
    p.subject_alt_names = vec![rcgen::SanType::URI(
        format!("urn:pumpward:asset:{asset}")
            .try_into()
            .map_err(|e: rcgen::Error| e.to_string())?,
    )];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let kp =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let cert = p.self_signed(&kp).map_err(|e| e.to_string())?;
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        kp.serialize_der(),
    ));
    let b = rustls::ClientConfig::builder_with_provider(crate::identity::PROVIDER.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut cfg = b
        .with_webpki_verifier(trust.verifier())
        .with_client_auth_cert(vec![cert.der().clone()], key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![DEVICE_ALPN.to_vec()];
    Ok(cfg)
}
