//! The pump agent: enrollment and renewal by EST, the mutually
//! authenticated device channel, and the durable event queue behind it.
//!
//! One [`PumpAgent`] is one pump. It runs as **one tokio task** (the
//! channel); writes to the durable queue run as short jobs on tokio's
//! blocking pool, started by [`PumpAgent::record`] when needed, so a fleet of
//! thousands of agents needs no thread of its own per pump.
//!
//! ```text
//! firmware / simulator ──record()──► pending (memory, bounded) ──blocking job──► DurableQueue (fsync)
//!                                                                                   │ unacked()
//!                    gateway ◄── hello, heartbeat, event_batch, command_result ◄── channel task
//!                    gateway ──► welcome, ack (queue.ack), command, refusal ──►      │
//! ```
//!
//! See the crate documentation for the invariants.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use pumpward_pki::{make_device_csr, KeyAlgorithm};
use pumpward_proto::message::{
    encode_batch, Command, CommandMessage, CommandResult, CommandStatus, EventBatch, EventKind,
    Firmware, Heartbeat, Hello, InfusionState, LibraryRef, NetworkIdentity, QuarantineState,
    Refusal, RefusalCode, SUPPORTED_VERSIONS,
};
use pumpward_proto::queue::{NewEvent, QueueConfig};
use pumpward_proto::{
    parse_gateway_message, DurableQueue, GatewayMessage, MessageError, PumpEvent, PumpMessage,
    QueueError, ValidationError, PROTOCOL_VERSION,
};
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, OnceCell};
use tokio::time::sleep_until;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

use crate::backoff::{Backoff, BackoffPolicy};
use crate::est::EstClient;
use crate::identity::{DeviceIdentity, TrustAnchors, DEVICE_ALPN};
use crate::library::{detail_error, PumpLibrary, Rejection};
use crate::rng::SplitMix64;
use crate::AgentError;
use pumpward_druglib::check::{CheckError, CheckOutcome, Programming};
use pumpward_druglib::envelope::TrustedKey;

/// Events held in memory waiting for the queue writer; beyond this,
/// [`PumpAgent::record`] refuses at once (and the loss is reported in
/// sequence by an `events_dropped` event) rather than grow without bound.
pub const MAX_PENDING_EVENTS: usize = 10_000;

/// Command results remembered for idempotency (a repeated command id is
/// answered again, not executed again).
const ANSWERED_MEMORY: usize = 64;

/// Agent software name sent in hello.
pub const AGENT_NAME: &str = concat!("pumpward-agent/", env!("CARGO_PKG_VERSION"));

/// Everything one agent needs to know.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The inventory asset id (what the certificate will bind).
    pub asset_id: String,
    /// The device's serial number (goes into the CSR's subject).
    pub device_serial: String,
    /// Directory of the identity file and the queue (one per pump).
    pub state_dir: PathBuf,
    /// Gateway `host:port` for the device channel.
    pub gateway_addr: String,
    /// The name the gateway's certificate must carry (SNI and verification).
    pub gateway_server_name: String,
    /// EST base URL, `https://<gateway>/.well-known/est/`.
    pub est_base_url: String,
    /// The CA chain PEM the gateway's certificate is verified against.
    pub ca_chain_pem: String,
    /// One-time enrollment code, used only when there is no identity yet.
    pub enrollment_code: Option<String>,
    /// Running firmware version.
    pub firmware_version: String,
    /// SHA-256 of the running firmware image (64 lowercase hex digits).
    pub firmware_digest: String,
    /// The drug library reported at start when none is installed through
    /// the agent (a library the pump got by other means); an installed one
    /// (kept in the state directory) always wins.
    pub library: Option<LibraryRef>,
    /// The library-signing keys this pump trusts (the hospital's, from
    /// `/pki/library-signing.pem`). Empty: no library can be installed.
    pub library_trust: Vec<TrustedKey>,
    /// Network identity reported in hello (an observation, never a credential).
    pub network: NetworkIdentity,
    /// Care area at start.
    pub care_area: Option<String>,
    /// Heartbeat interval; `None` uses the gateway's (`welcome`).
    pub heartbeat_interval: Option<Duration>,
    /// Reconnect back-off.
    pub backoff: BackoffPolicy,
    /// Wait before the first connection (fleets stagger their start).
    pub initial_delay: Duration,
    /// Key algorithm of the device key.
    pub key_algorithm: KeyAlgorithm,
    /// Renew once this fraction of the certificate's validity has passed.
    pub renew_fraction: f64,
    /// Size limits of the durable queue.
    pub queue: QueueConfig,
    /// Time allowed for TCP + TLS + hello/welcome.
    pub connect_timeout: Duration,
    /// A batch not acknowledged within this time ends the session (the
    /// events stay queued and are resent after the reconnect).
    pub ack_timeout: Duration,
    /// Keep the last acknowledged batch in memory so that a test or the
    /// simulator can replay it ([`PumpAgent::replay_last_acked_batch`]).
    pub keep_last_acked_batch: bool,
}

impl AgentConfig {
    /// A configuration with the protocol's defaults for everything not
    /// given.
    pub fn new(
        asset_id: impl Into<String>,
        device_serial: impl Into<String>,
        state_dir: impl Into<PathBuf>,
        gateway_addr: impl Into<String>,
        gateway_server_name: impl Into<String>,
        est_base_url: impl Into<String>,
        ca_chain_pem: impl Into<String>,
    ) -> Self {
        Self {
            asset_id: asset_id.into(),
            device_serial: device_serial.into(),
            state_dir: state_dir.into(),
            gateway_addr: gateway_addr.into(),
            gateway_server_name: gateway_server_name.into(),
            est_base_url: est_base_url.into(),
            ca_chain_pem: ca_chain_pem.into(),
            enrollment_code: None,
            firmware_version: "1.0.0".into(),
            firmware_digest: "0".repeat(64),
            library: None,
            library_trust: Vec::new(),
            network: NetworkIdentity {
                mac: "02:00:00:00:00:01".into(),
                ip: None,
                hostname: None,
                ssid: None,
                bssid: None,
                ap_name: None,
            },
            care_area: None,
            heartbeat_interval: None,
            backoff: BackoffPolicy::default(),
            initial_delay: Duration::ZERO,
            key_algorithm: KeyAlgorithm::EcdsaP256,
            renew_fraction: 2.0 / 3.0,
            queue: QueueConfig::default(),
            connect_timeout: Duration::from_secs(20),
            ack_timeout: Duration::from_secs(60),
            keep_last_acked_batch: false,
        }
    }
}

/// What the pump is doing clinically. Set only by the pump's firmware (or
/// the simulator) through [`PumpAgent::update_therapy`]; the channel reads
/// it for hello and heartbeats and **never writes it**: no network event,
/// refusal, revocation or quarantine changes therapy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TherapyState {
    /// Infusion state.
    pub infusion: InfusionState,
    /// Battery charge, 0–100.
    pub battery_pct: u8,
    /// On mains power.
    pub on_mains: bool,
    /// Care area setting.
    pub care_area: Option<String>,
    /// Active drug library.
    pub library: Option<LibraryRef>,
}

/// Where enrollment stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum EnrollmentState {
    /// No certificate and no enrollment code: a person must give one.
    #[default]
    NeedsCode,
    /// Enrolling or re-enrolling now.
    Enrolling,
    /// A certificate is in the state directory.
    Enrolled,
    /// The last enrollment attempt failed (the reason); retried with
    /// back-off if transient, else waits for a new code.
    Failed(String),
}

/// A quarantine notice the gateway sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineInfo {
    /// Quarantined or released.
    pub state: QuarantineState,
    /// Why.
    pub reason: String,
    /// Incident reference.
    pub incident: Option<String>,
}

/// What happened to a replayed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Sequence numbers replayed (first, last).
    pub seqs: (u64, u64),
    /// The ack that answered it.
    pub ack: Option<u64>,
    /// Or the refusal.
    pub refusal: Option<RefusalCode>,
}

/// The agent's status and counters, for the simulator, tests and a local
/// display.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentStatus {
    /// Enrollment.
    pub enrollment: EnrollmentState,
    /// Serial (hex) of the current certificate.
    pub cert_serial: Option<String>,
    /// Its end of validity.
    pub cert_not_after: Option<OffsetDateTime>,
    /// A session is open (welcome received).
    pub connected: bool,
    /// The gateway's session id.
    pub session: Option<String>,
    /// Sessions opened (welcomes received).
    pub sessions: u64,
    /// Sessions opened after the first.
    pub reconnects: u64,
    /// Connection attempts that did not reach welcome.
    pub connect_failures: u64,
    /// Highest acknowledged sequence number (the queue's watermark).
    pub last_ack: u64,
    /// When the last ack arrived.
    pub last_ack_at: Option<OffsetDateTime>,
    /// Events in the durable queue not yet acknowledged.
    pub queue_depth: u64,
    /// The number the next event will get.
    pub next_seq: u64,
    /// Events handed to [`PumpAgent::record`] and accepted.
    pub events_recorded: u64,
    /// Events written durably to the queue.
    pub events_durable: u64,
    /// Events sent in batches (resends counted again).
    pub events_sent: u64,
    /// Events removed from the queue by an acknowledgement.
    pub events_acked: u64,
    /// Batches sent.
    pub batches_sent: u64,
    /// Events refused because the queue (or the hand-off buffer) was full.
    pub dropped_events: u64,
    /// Events lost to a queue I/O failure (should stay 0).
    pub queue_failures: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Commands answered (repeats included).
    pub commands_answered: u64,
    /// Successful re-enrollments.
    pub renewals: u64,
    /// Refusals received, by code.
    pub refusals: BTreeMap<String, u64>,
    /// The last refusal.
    pub last_refusal: Option<Refusal>,
    /// The last quarantine notice.
    pub quarantine: Option<QuarantineInfo>,
    /// A condition a technician must look at (sequence regression, an
    /// unsupported protocol version).
    pub technical_alert: Option<String>,
    /// The last error (connection, TLS, EST, queue).
    pub last_error: Option<String>,
    /// Clock drift against the gateway at the last welcome (pump − gateway, s).
    pub clock_drift_s: Option<i64>,
    /// The outcome of the last replay.
    pub replay: Option<ReplayOutcome>,
    /// Replays answered since start (acknowledged or refused). A caller
    /// reads it before [`PumpAgent::replay_last_acked_batch`] and waits for
    /// it to grow: comparing outcomes instead races with an answer that
    /// arrives before the caller looks.
    pub replays_answered: u64,
    /// The drug library installed through the agent (version, envelope
    /// digest).
    pub library: Option<LibraryRef>,
    /// Libraries installed since start.
    pub libraries_installed: u64,
    /// Libraries refused since start.
    pub libraries_rejected: u64,
    /// Why the last library was refused.
    pub last_library_rejection: Option<String>,
    /// A verified library waiting for the running infusion to end.
    pub library_pending: Option<String>,
}

/// Why [`PumpAgent::record`] did not accept an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The event breaks the protocol's rules (it would be refused).
    #[error("invalid event: {0}")]
    Invalid(#[from] ValidationError),
    /// The hand-off buffer is full; the event is counted as dropped.
    #[error("event buffer full; event dropped and counted")]
    Full,
}

/// What a fleet of agents shares: the trust anchors, an EST client without
/// client certificate (connection pool included), the CA certificates once
/// fetched, and the simulated network link.
#[derive(Clone, Debug)]
pub struct AgentEnv {
    trust: TrustAnchors,
    est: EstClient,
    cacerts: Arc<OnceCell<Vec<Vec<u8>>>>,
    link: watch::Receiver<bool>,
    _link_tx: Arc<watch::Sender<bool>>,
}

impl AgentEnv {
    /// The shared environment for agents of one EST server and CA chain.
    pub fn new(est_base_url: &str, ca_chain_pem: &str) -> Result<Self, AgentError> {
        let trust = TrustAnchors::from_pem(ca_chain_pem)?;
        let est = EstClient::new(est_base_url, &trust, None)?;
        let (tx, rx) = watch::channel(true);
        Ok(Self {
            trust,
            est,
            cacerts: Arc::new(OnceCell::new()),
            link: rx,
            _link_tx: Arc::new(tx),
        })
    }

    /// Uses `link` as the network: while it reads `false` every agent of
    /// this environment is offline (a simulated outage; events queue up).
    pub fn with_link(mut self, link: watch::Receiver<bool>) -> Self {
        self.link = link;
        self
    }

    /// The trust anchors.
    pub fn trust(&self) -> &TrustAnchors {
        &self.trust
    }
}

#[derive(Default)]
struct Pending {
    events: Vec<NewEvent>,
    writer_active: bool,
    /// Refused by the hand-off bound, not yet reported in the queue.
    refused_unreported: u64,
}

#[derive(Default)]
struct Control {
    shutdown: bool,
    renew: bool,
    new_code: Option<String>,
    replay: bool,
    kick: bool,
    /// Final results of commands first answered `deferred`, to send (in the
    /// next session if none is open).
    late_results: Vec<CommandResult>,
}

struct Inner {
    cfg: AgentConfig,
    env: AgentEnv,
    queue: Arc<Mutex<DurableQueue>>,
    pending: Mutex<Pending>,
    therapy: Mutex<TherapyState>,
    control: Mutex<Control>,
    wake: Notify,
    status: watch::Sender<AgentStatus>,
    handle: tokio::runtime::Handle,
    started: Instant,
    tls: Mutex<Option<(String, Arc<rustls::ClientConfig>)>>,
    last_acked_batch: Mutex<Option<Vec<PumpEvent>>>,
    library: Mutex<PumpLibrary>,
    /// A verified envelope (its announced digest, and the id of the command
    /// answered `deferred`) to install once the pump is idle.
    pending_library: Mutex<Option<(Vec<u8>, String, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data
    // half-updated in a way that matters more than stopping would.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running pump agent. Dropping it stops the channel task; call
/// [`PumpAgent::shutdown`] to stop it cleanly and wait.
pub struct PumpAgent {
    inner: Arc<Inner>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for PumpAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PumpAgent")
            .field("asset_id", &self.inner.cfg.asset_id)
            .finish_non_exhaustive()
    }
}

impl Drop for PumpAgent {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl PumpAgent {
    /// Opens the state directory and starts the agent with its own
    /// environment.
    pub async fn start(config: AgentConfig) -> Result<Self, AgentError> {
        let env = AgentEnv::new(&config.est_base_url, &config.ca_chain_pem)?;
        Self::start_with(config, env).await
    }

    /// Opens the state directory (creating it), the queue and any stored
    /// identity, then starts the channel task on the current runtime.
    pub async fn start_with(config: AgentConfig, env: AgentEnv) -> Result<Self, AgentError> {
        check_config(&config)?;
        let dir = config.state_dir.clone();
        let qcfg = config.queue;
        let asset = config.asset_id.clone();
        let trust = config.library_trust.clone();
        let (queue, identity, (library, library_warning)) =
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| AgentError::io(format!("creating {}", dir.display()), e))?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
                }
                let q = DurableQueue::open_with(dir.join("queue"), qcfg)?;
                let id = DeviceIdentity::load(&dir, &asset)?;
                let lib = PumpLibrary::open(&dir, trust);
                Ok::<_, AgentError>((q, id, lib))
            })
            .await
            .map_err(|e| AgentError::State(format!("opening state: {e}")))??;

        let therapy = TherapyState {
            infusion: InfusionState::Idle,
            battery_pct: 100,
            on_mains: true,
            care_area: config.care_area.clone(),
            library: library.active_ref().or_else(|| config.library.clone()),
        };
        if let Some(w) = &library_warning {
            tracing::warn!(asset = %config.asset_id, warning = %w, "drug library");
        }
        let mut st = AgentStatus {
            next_seq: queue.next_seq(),
            last_ack: queue.acked(),
            queue_depth: queue.len() as u64,
            library: library.active_ref(),
            last_library_rejection: library_warning,
            ..AgentStatus::default()
        };
        if let Some(id) = &identity {
            st.enrollment = EnrollmentState::Enrolled;
            st.cert_serial = Some(id.serial_hex().to_owned());
            st.cert_not_after = Some(id.info().not_after);
        }
        let new_code = if identity.is_none() {
            config.enrollment_code.clone()
        } else {
            None
        };
        let (status, _) = watch::channel(st);
        let inner = Arc::new(Inner {
            cfg: config,
            env,
            queue: Arc::new(Mutex::new(queue)),
            pending: Mutex::new(Pending::default()),
            therapy: Mutex::new(therapy),
            control: Mutex::new(Control {
                new_code,
                ..Control::default()
            }),
            wake: Notify::new(),
            status,
            handle: tokio::runtime::Handle::current(),
            started: Instant::now(),
            tls: Mutex::new(None),
            last_acked_batch: Mutex::new(None),
            library: Mutex::new(library),
            pending_library: Mutex::new(None),
        });
        let task = tokio::spawn(run(inner.clone(), identity));
        Ok(Self {
            inner,
            task: Some(task),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.inner.cfg
    }

    /// Records an event now. Never waits for the network or the disk: the
    /// event goes to a bounded hand-off buffer and a blocking-pool job
    /// appends it to the durable queue (see [`PumpAgent::flush`]). Callable
    /// from any thread.
    pub fn record(&self, kind: EventKind) -> Result<(), RecordError> {
        self.record_event(NewEvent::new(OffsetDateTime::now_utc(), kind))
    }

    /// Records an event with the pump's own timestamp (the simulator's
    /// compressed clock).
    pub fn record_at(&self, at: OffsetDateTime, kind: EventKind) -> Result<(), RecordError> {
        self.record_event(NewEvent::new(at, kind))
    }

    /// Records an event with detail.
    pub fn record_event(&self, event: NewEvent) -> Result<(), RecordError> {
        // Validate now, so the firmware learns at once; the queue validates
        // again when it numbers the event.
        PumpEvent {
            seq: 1,
            at: event.at,
            kind: event.kind.clone(),
            detail: event.detail.clone(),
        }
        .validate()?;
        push_pending(&self.inner, event)
    }

    /// Waits until every event recorded so far is in the durable queue.
    pub async fn flush(&self) {
        let target = self.inner.status.borrow().events_recorded;
        let mut rx = self.inner.status.subscribe();
        let _ = rx
            .wait_for(|s| {
                s.events_durable + s.queue_failures >= target || {
                    // Events refused by a full queue count as settled too.
                    s.events_durable + s.queue_failures + s.dropped_events >= target
                }
            })
            .await;
    }

    /// The therapy state.
    pub fn therapy(&self) -> TherapyState {
        lock(&self.inner.therapy).clone()
    }

    /// Changes the therapy state (the firmware's or simulator's call only).
    /// A library that waited for the running infusion installs as soon as
    /// the pump is idle.
    pub fn update_therapy(&self, f: impl FnOnce(&mut TherapyState)) {
        let idle = {
            let mut t = lock(&self.inner.therapy);
            f(&mut t);
            t.infusion == InfusionState::Idle
        };
        if idle && lock(&self.inner.pending_library).is_some() {
            let inner = self.inner.clone();
            self.inner.handle.spawn_blocking(move || {
                let pending = lock(&inner.pending_library).take();
                if let Some((env, digest, command)) = pending {
                    // The outcome is reported as an event, in the status,
                    // and as the deferred command's second result.
                    let (status, detail) = install_outcome(install_library(&inner, &env, &digest));
                    lock(&inner.control).late_results.push(CommandResult {
                        id: command,
                        status,
                        detail,
                    });
                    inner.wake.notify_one();
                }
            });
        }
    }

    /// Checks a programmed infusion against the installed library for the
    /// pump's care area, records the `dose_check` event (with the pump's
    /// clock `at`) and returns the decision: start it only if
    /// [`CheckOutcome::allows_start`]. A soft limit without a reason records
    /// nothing yet (the pump asks the clinician); an incoherent programming
    /// is an error and records nothing.
    pub fn program_at(
        &self,
        at: OffsetDateTime,
        infusion_id: &str,
        p: &Programming,
    ) -> Result<CheckOutcome, CheckError> {
        let area = lock(&self.inner.therapy)
            .care_area
            .clone()
            .unwrap_or_default();
        let verdict = lock(&self.inner.library).check(&area, infusion_id, p)?;
        if let Some(e) = verdict.event {
            // A full buffer is counted and reported as events_dropped.
            let _ = self.record_at(at, EventKind::DoseCheck(e));
        }
        Ok(verdict.outcome)
    }

    /// Runs `f` with the pump's library (the simulator's clinician model
    /// programs through it, as the firmware does through
    /// [`PumpAgent::program_at`]).
    pub fn with_library<T>(&self, f: impl FnOnce(&PumpLibrary) -> T) -> T {
        f(&lock(&self.inner.library))
    }

    /// A library loaded through the pump's service port (a technician's
    /// USB stick) rather than announced by the gateway: verified exactly
    /// like an announced one, and reported the same way (an installed or
    /// rejected event), so the server sees what the pump now runs.
    pub async fn load_library_locally(&self, envelope: Vec<u8>) -> Result<LibraryRef, String> {
        let inner = self.inner.clone();
        let digest = crate::library::sha256_hex(&envelope);
        tokio::task::spawn_blocking(move || install_library(&inner, &envelope, &digest))
            .await
            .map_err(|e| e.to_string())?
    }

    /// The installed drug library (version, envelope digest).
    pub fn library(&self) -> Option<LibraryRef> {
        lock(&self.inner.library).active_ref()
    }

    /// The installed library's id, version and content digest.
    pub fn installed_library(&self) -> Option<pumpward_druglib::InstalledLibrary> {
        lock(&self.inner.library).installed()
    }

    /// A snapshot of the status.
    pub fn status(&self) -> AgentStatus {
        self.inner.status.borrow().clone()
    }

    /// A status receiver, to wait for changes.
    pub fn watch_status(&self) -> watch::Receiver<AgentStatus> {
        self.inner.status.subscribe()
    }

    /// Waits until `pred` holds for the status, at most `timeout`; returns
    /// whether it did.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&AgentStatus) -> bool,
    ) -> bool {
        let mut rx = self.inner.status.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| pred(s)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The current certificate, if enrolled.
    pub fn identity(&self) -> Option<DeviceIdentity> {
        DeviceIdentity::load(&self.inner.cfg.state_dir, &self.inner.cfg.asset_id)
            .ok()
            .flatten()
    }

    /// Gives a (new) enrollment code: the agent enrolls with it at once,
    /// replacing any identity it has (re-provisioning after revocation).
    pub fn set_enrollment_code(&self, code: impl Into<String>) {
        lock(&self.inner.control).new_code = Some(code.into());
        lock(&self.inner.control).kick = true;
        self.inner.wake.notify_one();
    }

    /// Re-enrolls now (as the `renew_certificate` command does) and
    /// reconnects with the new certificate.
    pub fn request_renewal(&self) {
        lock(&self.inner.control).renew = true;
        self.inner.wake.notify_one();
    }

    /// Closes the current session; the agent reconnects after its back-off.
    pub fn disconnect(&self) {
        lock(&self.inner.control).kick = true;
        self.inner.wake.notify_one();
    }

    /// Sends the last acknowledged batch again on the open session (a
    /// deliberate replay, for the simulator's scenario and tests; needs
    /// [`AgentConfig::keep_last_acked_batch`]). Returns false if there is
    /// no such batch.
    pub fn replay_last_acked_batch(&self) -> bool {
        if lock(&self.inner.last_acked_batch).is_none() {
            return false;
        }
        lock(&self.inner.control).replay = true;
        self.inner.wake.notify_one();
        true
    }

    /// Stops the agent: the session is closed (queued events stay on disk
    /// for the next start) and the task ends.
    pub async fn shutdown(mut self) {
        self.flush().await;
        lock(&self.inner.control).shutdown = true;
        self.inner.wake.notify_one();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

fn check_config(c: &AgentConfig) -> Result<(), AgentError> {
    let hello = Hello {
        versions: SUPPORTED_VERSIONS.to_vec(),
        firmware: Firmware {
            version: c.firmware_version.clone(),
            digest: c.firmware_digest.clone(),
        },
        library: c.library.clone(),
        network: c.network.clone(),
        care_area: c.care_area.clone(),
        next_seq: 1,
        agent: Some(AGENT_NAME.into()),
    };
    hello
        .validate()
        .map_err(|e| AgentError::Config(format!("hello would be refused: {e}")))?;
    rustls_pki_types::ServerName::try_from(c.gateway_server_name.clone())
        .map_err(|e| AgentError::Config(format!("gateway server name: {e}")))?;
    if c.asset_id.is_empty() || c.device_serial.is_empty() {
        return Err(AgentError::Config(
            "asset id and serial are required".into(),
        ));
    }
    Ok(())
}

/// The queue writer: drains the hand-off buffer into the durable queue,
/// one fsync per drained batch, until the buffer is empty.
fn writer_job(inner: &Arc<Inner>) {
    loop {
        let (mut events, refused) = {
            let mut p = lock(&inner.pending);
            if p.events.is_empty() && p.refused_unreported == 0 {
                p.writer_active = false;
                return;
            }
            (
                std::mem::take(&mut p.events),
                std::mem::take(&mut p.refused_unreported),
            )
        };
        let n = events.len() as u64;
        if refused > 0 {
            let at = events
                .first()
                .map_or_else(OffsetDateTime::now_utc, |e| e.at);
            events.insert(
                0,
                NewEvent::new(at, EventKind::EventsDropped { count: refused }),
            );
        }
        let mut q = lock(&inner.queue);
        let result = q.push_many(events);
        let (next_seq, depth, qdropped) = (q.next_seq(), q.len() as u64, q.dropped());
        // The depth is published while the queue is still locked, so it
        // cannot overwrite a newer one from an ack (see `apply_ack`).
        inner.status.send_modify(|s| {
            s.next_seq = next_seq;
            s.queue_depth = depth;
            match &result {
                Ok(_) => s.events_durable += n,
                // The queue counted them (reported as events_dropped later).
                Err(QueueError::Full { .. }) => s.dropped_events += n,
                Err(e) => {
                    s.queue_failures += n;
                    s.last_error = Some(format!("event queue: {e}"));
                }
            }
            let _ = qdropped;
        });
        drop(q);
        if let Err(e) = &result {
            tracing::warn!(asset = %inner.cfg.asset_id, error = %e, "event queue refused events");
            if refused > 0 && !matches!(e, QueueError::Full { .. }) {
                lock(&inner.pending).refused_unreported += refused;
            }
        }
        inner.wake.notify_one();
    }
}

/// How a session ended.
enum SessionEnd {
    Shutdown,
    Renewed(Box<DeviceIdentity>),
    Reconnect {
        floor: Option<Duration>,
        established: bool,
        reason: String,
    },
}

impl SessionEnd {
    fn failed(reason: impl Into<String>) -> Self {
        Self::Reconnect {
            floor: None,
            established: false,
            reason: reason.into(),
        }
    }
}

type Channel = Framed<tokio_rustls::client::TlsStream<TcpStream>, pumpward_proto::FrameDecoder>;

async fn run(inner: Arc<Inner>, mut identity: Option<DeviceIdentity>) {
    let seed = SplitMix64::from_entropy().next_u64()
        ^ inner
            .cfg
            .asset_id
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
    let mut backoff = Backoff::new(inner.cfg.backoff, SplitMix64::new(seed));
    let mut link = inner.env.link.clone();
    let mut renew_not_before = Instant::now();
    if !inner.cfg.initial_delay.is_zero() && inner.pause(inner.cfg.initial_delay, &mut link).await {
        return;
    }
    loop {
        if lock(&inner.control).shutdown {
            break;
        }
        if !*link.borrow_and_update() {
            tokio::select! {
                r = link.changed() => if r.is_err() {
                    // Nobody controls the link any more: it stays as it is.
                    inner.wake.notified().await;
                },
                _ = inner.wake.notified() => {}
            }
            continue;
        }
        // Enrollment: with a new code always, else only without identity.
        let code = lock(&inner.control).new_code.take();
        if identity.is_none() || code.is_some() {
            let Some(code) = code else {
                inner
                    .status
                    .send_modify(|s| s.enrollment = EnrollmentState::NeedsCode);
                inner.wake.notified().await;
                continue;
            };
            match inner.enroll(&code).await {
                Ok(id) => {
                    identity = Some(id);
                    backoff.reset();
                }
                Err(e) => {
                    let transient = matches!(&e, AgentError::Est(est) if est.is_transient());
                    tracing::warn!(asset = %inner.cfg.asset_id, error = %e, "enrollment failed");
                    inner.status.send_modify(|s| {
                        s.enrollment = EnrollmentState::Failed(e.to_string());
                        s.last_error = Some(e.to_string());
                    });
                    if transient {
                        // Keep the code for the retry.
                        lock(&inner.control).new_code.get_or_insert(code);
                        let d = backoff.next_delay(None);
                        if inner.pause(d, &mut link).await {
                            break;
                        }
                    } else if identity.is_none() {
                        inner.wake.notified().await;
                    }
                    continue;
                }
            }
        }
        let Some(id) = identity.clone() else { continue };
        let renew_requested = std::mem::take(&mut lock(&inner.control).renew);
        let due = OffsetDateTime::now_utc() >= id.renewal_due(inner.cfg.renew_fraction);
        if renew_requested || (due && Instant::now() >= renew_not_before) {
            match inner.renew(&id).await {
                Ok(new) => identity = Some(new),
                Err(e) => {
                    renew_not_before = Instant::now() + Duration::from_secs(300);
                    tracing::warn!(asset = %inner.cfg.asset_id, error = %e, "renewal failed");
                }
            }
            continue;
        }
        let started = Instant::now();
        match inner.session(&id, &mut link).await {
            SessionEnd::Shutdown => break,
            SessionEnd::Renewed(new) => {
                identity = Some(*new);
            }
            SessionEnd::Reconnect {
                floor,
                established,
                reason,
            } => {
                tracing::debug!(asset = %inner.cfg.asset_id, %reason, "session ended");
                inner.status.send_modify(|s| {
                    s.connected = false;
                    s.session = None;
                    if !established {
                        s.connect_failures += 1;
                    }
                    s.last_error = Some(reason);
                });
                if established {
                    backoff.session_ended(started.elapsed());
                }
                let d = backoff.next_delay(floor);
                if inner.pause(d, &mut link).await {
                    break;
                }
            }
        }
    }
    inner.status.send_modify(|s| {
        s.connected = false;
        s.session = None;
    });
}

impl Inner {
    /// Sleeps for `d` (woken early by a new code, a renewal request, a
    /// kick or the link coming back); true when the agent must stop.
    async fn pause(&self, d: Duration, link: &mut watch::Receiver<bool>) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        let mut link_open = link.has_changed().is_ok();
        loop {
            tokio::select! {
                _ = sleep_until(deadline) => return lock(&self.control).shutdown,
                _ = self.wake.notified() => {
                    let mut c = lock(&self.control);
                    if c.shutdown { return true; }
                    if c.new_code.is_some() || c.renew || std::mem::take(&mut c.kick) {
                        return false;
                    }
                }
                r = link.changed(), if link_open => {
                    if r.is_err() {
                        link_open = false;
                    } else if *link.borrow() {
                        // A link that just came back is worth trying at once.
                        return false;
                    }
                }
            }
        }
    }

    async fn cacerts(&self) -> Vec<Vec<u8>> {
        match self
            .env
            .cacerts
            .get_or_try_init(|| self.env.est.cacerts())
            .await
        {
            Ok(c) => c.clone(),
            Err(e) => {
                tracing::warn!(error = %e, "EST cacerts failed; presenting the certificate alone");
                Vec::new()
            }
        }
    }

    async fn new_csr(&self) -> Result<(pumpward_pki::Zeroizing<Vec<u8>>, Vec<u8>), AgentError> {
        let (alg, asset, serial) = (
            self.cfg.key_algorithm,
            self.cfg.asset_id.clone(),
            self.cfg.device_serial.clone(),
        );
        tokio::task::spawn_blocking(move || make_device_csr(alg, &asset, &serial))
            .await
            .map_err(|e| AgentError::State(format!("key generation: {e}")))?
            .map_err(AgentError::from)
    }

    async fn adopt(
        &self,
        key: pumpward_pki::Zeroizing<Vec<u8>>,
        mut certs: Vec<Vec<u8>>,
    ) -> Result<DeviceIdentity, AgentError> {
        for c in self.cacerts().await {
            if !certs.contains(&c) {
                certs.push(c);
            }
        }
        let id = DeviceIdentity::from_parts(key, &certs, &self.cfg.asset_id)?;
        let (id2, dir) = (id.clone(), self.cfg.state_dir.clone());
        tokio::task::spawn_blocking(move || id2.save(&dir))
            .await
            .map_err(|e| AgentError::State(format!("saving identity: {e}")))??;
        *lock(&self.tls) = None;
        self.status.send_modify(|s| {
            s.enrollment = EnrollmentState::Enrolled;
            s.cert_serial = Some(id.serial_hex().to_owned());
            s.cert_not_after = Some(id.info().not_after);
        });
        Ok(id)
    }

    async fn enroll(&self, code: &str) -> Result<DeviceIdentity, AgentError> {
        self.status
            .send_modify(|s| s.enrollment = EnrollmentState::Enrolling);
        let (key, csr) = self.new_csr().await?;
        let certs = self
            .env
            .est
            .simple_enroll(&self.cfg.asset_id, code, &csr)
            .await?;
        let id = self.adopt(key, certs).await?;
        tracing::info!(asset = %self.cfg.asset_id, serial = %id.serial_hex(), "enrolled");
        Ok(id)
    }

    async fn renew(&self, current: &DeviceIdentity) -> Result<DeviceIdentity, AgentError> {
        let (key, csr) = self.new_csr().await?;
        let est = EstClient::new(&self.cfg.est_base_url, &self.env.trust, Some(current))?;
        let certs = match est.simple_reenroll(&csr).await {
            Ok(c) => c,
            Err(e) => {
                self.status
                    .send_modify(|s| s.last_error = Some(format!("re-enrollment: {e}")));
                return Err(e.into());
            }
        };
        let id = self.adopt(key, certs).await?;
        self.status.send_modify(|s| s.renewals += 1);
        tracing::info!(asset = %self.cfg.asset_id, serial = %id.serial_hex(), "certificate renewed");
        Ok(id)
    }

    fn device_tls(&self, id: &DeviceIdentity) -> Result<Arc<rustls::ClientConfig>, AgentError> {
        let mut cache = lock(&self.tls);
        if let Some((serial, cfg)) = cache.as_ref() {
            if serial == id.serial_hex() {
                return Ok(cfg.clone());
            }
        }
        let cfg = Arc::new(self.env.trust.client_config(Some(id), &[DEVICE_ALPN])?);
        *cache = Some((id.serial_hex().to_owned(), cfg.clone()));
        Ok(cfg)
    }

    async fn queue_op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DurableQueue) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let q = self.queue.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&q)))
            .await
            .unwrap_or_else(|e| Err(QueueError::Config(format!("queue job failed: {e}"))))
    }

    fn hello(&self, next_seq: u64) -> Hello {
        let t = lock(&self.therapy);
        Hello {
            versions: SUPPORTED_VERSIONS.to_vec(),
            firmware: Firmware {
                version: self.cfg.firmware_version.clone(),
                digest: self.cfg.firmware_digest.clone(),
            },
            library: t.library.clone(),
            network: self.cfg.network.clone(),
            care_area: t.care_area.clone(),
            next_seq,
            agent: Some(AGENT_NAME.into()),
        }
    }

    fn heartbeat(&self) -> Heartbeat {
        let t = lock(&self.therapy).clone();
        let s = self.status.borrow();
        Heartbeat {
            battery_pct: t.battery_pct.min(100),
            on_mains: Some(t.on_mains),
            infusion: t.infusion,
            library_version: t.library.map(|l| l.version),
            uptime_s: self.started.elapsed().as_secs(),
            queue_depth: s.queue_depth,
            dropped_events: s.dropped_events,
        }
    }

    /// Applies an acknowledgement to the queue (durably) and the counters.
    /// Records an ack and publishes the queue's new depth while the queue
    /// is still locked. Published after unlocking, the depth could be
    /// stale: the writer may have queued an event (and published depth 1)
    /// in between, and this would then publish 0 over it, so the session
    /// would see nothing to send and the event would wait for the next
    /// one (seen under load in `a_replayed_batch_is_acknowledged…`).
    async fn apply_ack(self: &Arc<Self>, up_to: u64) -> Result<(), QueueError> {
        let inner = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut q = lock(&inner.queue);
            let before = q.len();
            q.ack(up_to)?;
            let (acked, depth) = (q.acked(), q.len());
            inner.status.send_modify(|s| {
                s.last_ack = acked;
                s.last_ack_at = Some(OffsetDateTime::now_utc());
                s.queue_depth = depth as u64;
                s.events_acked += (before - depth) as u64;
            });
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(QueueError::Config(format!("queue job failed: {e}"))))
    }

    async fn session(
        self: &Arc<Self>,
        id: &DeviceIdentity,
        link: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        let mut s = match self.open(id).await {
            Ok(s) => s,
            Err(end) => return end,
        };
        match s.run(self, link).await {
            SessionEnd::Shutdown => {
                let _ = s.ch.close().await;
                SessionEnd::Shutdown
            }
            end => end,
        }
    }

    /// TCP, TLS, hello, welcome.
    async fn open(self: &Arc<Self>, id: &DeviceIdentity) -> Result<Session, SessionEnd> {
        let cfg = self
            .device_tls(id)
            .map_err(|e| SessionEnd::failed(e.to_string()))?;
        let name = rustls_pki_types::ServerName::try_from(self.cfg.gateway_server_name.clone())
            .map_err(|e| SessionEnd::failed(e.to_string()))?;
        let t = self.cfg.connect_timeout;
        let tcp = tokio::time::timeout(t, TcpStream::connect(&self.cfg.gateway_addr))
            .await
            .map_err(|_| SessionEnd::failed("TCP connect timed out"))?
            .map_err(|e| SessionEnd::failed(format!("TCP connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio::time::timeout(t, TlsConnector::from(cfg).connect(name, tcp))
            .await
            .map_err(|_| SessionEnd::failed("TLS handshake timed out"))?
            .map_err(|e| SessionEnd::failed(format!("TLS handshake: {e}")))?;
        if tls.get_ref().1.alpn_protocol() != Some(DEVICE_ALPN) {
            return Err(SessionEnd::failed(
                "the gateway did not select ALPN pumpward-device/1",
            ));
        }
        let mut ch = Framed::new(tls, pumpward_proto::FrameDecoder::new());
        let next_seq = self
            .queue_op(|q| Ok(q.next_seq()))
            .await
            .map_err(|e| SessionEnd::failed(e.to_string()))?;
        let hello = PumpMessage::Hello(self.hello(next_seq));
        send(&mut ch, &hello, PROTOCOL_VERSION)
            .await
            .map_err(SessionEnd::failed)?;
        let deadline = tokio::time::Instant::now() + t;
        let welcome = loop {
            let frame = tokio::time::timeout_at(deadline, ch.next())
                .await
                .map_err(|_| SessionEnd::failed("no welcome in time"))?;
            let payload = match frame {
                None => {
                    return Err(SessionEnd::failed(
                        "gateway closed the connection before welcome",
                    ))
                }
                Some(Err(e)) => return Err(SessionEnd::failed(format!("before welcome: {e}"))),
                Some(Ok(p)) => p,
            };
            match parse_gateway_message(&payload, None) {
                Ok(GatewayMessage::Welcome(w)) => break w,
                Ok(GatewayMessage::Refusal(r)) => {
                    let end = self.on_refusal(&r, false);
                    return Err(end.unwrap_or_else(|| {
                        SessionEnd::failed(format!("refused before welcome: {}", r.code))
                    }));
                }
                Ok(other) => {
                    tracing::debug!(msg = other.type_name(), "ignoring a message before welcome")
                }
                Err(e) => tracing::debug!(error = %e, "unreadable message before welcome"),
            }
        };
        if !SUPPORTED_VERSIONS.contains(&welcome.version) {
            return Err(SessionEnd::failed(format!(
                "gateway chose protocol version {} which this agent does not speak",
                welcome.version
            )));
        }
        // Everything below expected_next_seq is stored: recover a lost ack.
        let stored = welcome.expected_next_seq.saturating_sub(1);
        if stored > 0 {
            if let Err(e) = self.apply_ack(stored.min(next_seq.saturating_sub(1))).await {
                tracing::warn!(error = %e, "applying welcome's expected_next_seq");
            }
        }
        let drift = (OffsetDateTime::now_utc() - welcome.server_time).whole_seconds();
        self.status.send_modify(|s| {
            s.connected = true;
            s.session = Some(welcome.session.clone());
            if s.sessions > 0 {
                s.reconnects += 1;
            }
            s.sessions += 1;
            s.clock_drift_s = Some(drift);
            s.last_error = None;
            if matches!(
                s.last_refusal.as_ref().map(|r| r.code),
                Some(RefusalCode::SequenceRegression | RefusalCode::UnsupportedVersion)
            ) {
                s.technical_alert = None;
            }
        });
        let hb = self.cfg.heartbeat_interval.unwrap_or_else(|| {
            Duration::from_secs(u64::from(welcome.heartbeat_interval_s.clamp(5, 3600)))
        });
        Ok(Session {
            ch,
            v: welcome.version,
            max_events: (welcome.max_batch_events as usize)
                .clamp(1, pumpward_proto::message::MAX_EVENTS_PER_BATCH),
            max_frame: (welcome.max_frame_bytes as usize)
                .clamp(1024, pumpward_proto::MAX_FRAME_LEN),
            heartbeat: hb,
            inflight: None,
            hold_until: None,
            disabled: Vec::new(),
            last_sent: "hello",
            answered: VecDeque::new(),
            replay_pending: None,
        })
    }

    /// Acts on a refusal; returns how the session ends if it is fatal.
    fn on_refusal(&self, r: &Refusal, in_session: bool) -> Option<SessionEnd> {
        tracing::info!(asset = %self.cfg.asset_id, code = %r.code, reason = %r.reason, "refusal");
        let fatal = r.fatal || r.code.is_fatal();
        let mut alert = None;
        let mut floor = r.retry_after_s.map(|s| Duration::from_secs(u64::from(s)));
        match r.code {
            RefusalCode::SequenceRegression => {
                floor = Some(floor.unwrap_or_default().max(Duration::from_secs(3600)));
                alert = Some(format!(
                    "sequence regression: the gateway has stored more events than this pump \
                     ever numbered ({}); every event is kept; a technician must re-provision",
                    r.reason
                ));
            }
            RefusalCode::UnsupportedVersion => {
                floor = Some(floor.unwrap_or_default().max(Duration::from_secs(3600)));
                alert = Some(format!(
                    "no common protocol version (gateway speaks {:?})",
                    r.supported_versions
                ));
            }
            _ => {}
        }
        self.status.send_modify(|s| {
            *s.refusals.entry(r.code.to_string()).or_default() += 1;
            s.last_refusal = Some(r.clone());
            if alert.is_some() {
                s.technical_alert = alert;
            }
        });
        fatal.then(|| SessionEnd::Reconnect {
            floor,
            established: in_session,
            reason: format!("refused: {} ({})", r.code, r.reason),
        })
    }
}

async fn send(ch: &mut Channel, msg: &PumpMessage, v: u16) -> Result<(), String> {
    let payload = msg.to_payload(v).map_err(|e| e.to_string())?;
    ch.send(Bytes::from(payload))
        .await
        .map_err(|e| format!("sending {}: {e}", msg.type_name()))
}

/// One open session.
struct Session {
    ch: Channel,
    v: u16,
    max_events: usize,
    max_frame: usize,
    heartbeat: Duration,
    /// Highest seq of the batch awaiting its ack, and when it was sent.
    inflight: Option<(u64, tokio::time::Instant, Vec<PumpEvent>)>,
    hold_until: Option<tokio::time::Instant>,
    /// Message types the gateway refused as unknown in this session.
    disabled: Vec<&'static str>,
    last_sent: &'static str,
    answered: VecDeque<CommandResult>,
    /// A replayed batch awaiting its answer: (first, last).
    replay_pending: Option<(u64, u64)>,
}

impl Session {
    async fn send(&mut self, msg: &PumpMessage) -> Result<bool, String> {
        let ty = msg.type_name();
        if self.disabled.contains(&ty) {
            return Ok(false);
        }
        send(&mut self.ch, msg, self.v).await?;
        self.last_sent = ty;
        Ok(true)
    }

    async fn send_heartbeat(&mut self, inner: &Arc<Inner>) -> Result<(), String> {
        if self
            .send(&PumpMessage::Heartbeat(inner.heartbeat()))
            .await?
        {
            inner.status.send_modify(|s| s.heartbeats_sent += 1);
        }
        Ok(())
    }

    async fn maybe_send_batch(&mut self, inner: &Arc<Inner>) -> Result<(), String> {
        if self.inflight.is_some()
            || self.replay_pending.is_some()
            || self.hold_until.is_some()
            || self.disabled.contains(&"event_batch")
            || inner.status.borrow().queue_depth == 0
        {
            return Ok(());
        }
        let max = self.max_events;
        let events = inner
            .queue_op(move |q| q.unacked(max))
            .await
            .map_err(|e| format!("reading the queue: {e}"))?;
        if events.is_empty() {
            return Ok(());
        }
        let (payload, n) = encode_batch(&events, self.v, self.max_events, self.max_frame)
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("an event does not fit the gateway's frame limit".into());
        }
        self.ch
            .send(Bytes::from(payload))
            .await
            .map_err(|e| format!("sending event_batch: {e}"))?;
        self.last_sent = "event_batch";
        let mut events = events;
        events.truncate(n);
        let last = events[n - 1].seq;
        let keep = if inner.cfg.keep_last_acked_batch {
            events
        } else {
            Vec::new()
        };
        self.inflight = Some((last, tokio::time::Instant::now(), keep));
        inner.status.send_modify(|s| {
            s.events_sent += n as u64;
            s.batches_sent += 1;
        });
        Ok(())
    }

    async fn on_ack(&mut self, inner: &Arc<Inner>, up_to: u64) -> Result<(), String> {
        if let Some((first, last)) = self.replay_pending {
            if self.inflight.is_none() {
                self.replay_pending = None;
                inner.status.send_modify(|s| {
                    s.replay = Some(ReplayOutcome {
                        seqs: (first, last),
                        ack: Some(up_to),
                        refusal: None,
                    });
                    s.replays_answered += 1;
                });
            }
        }
        let covers = self
            .inflight
            .as_ref()
            .is_some_and(|(last, _, _)| up_to >= *last);
        if covers && inner.cfg.keep_last_acked_batch {
            if let Some((_, _, events)) = &mut self.inflight {
                *lock(&inner.last_acked_batch) = Some(std::mem::take(events));
            }
        }
        match inner.apply_ack(up_to).await {
            Ok(()) => {}
            Err(QueueError::AckBeyondPushed { .. }) => {
                tracing::warn!(asset = %inner.cfg.asset_id, up_to, "ack beyond what this pump numbered; ignored");
                return Ok(());
            }
            Err(e) => return Err(format!("recording the ack: {e}")),
        }
        if covers {
            self.inflight = None;
        }
        Ok(())
    }

    async fn on_command(
        &mut self,
        inner: &Arc<Inner>,
        c: CommandMessage,
    ) -> Result<Option<SessionEnd>, String> {
        if let Some(prev) = self.answered.iter().find(|r| r.id == c.id).cloned() {
            self.send(&PumpMessage::CommandResult(prev)).await?;
            inner.status.send_modify(|s| s.commands_answered += 1);
            return Ok(None);
        }
        let mut end = None;
        let (status, detail) = match c.command {
            Command::RequestStatus => {
                self.send_heartbeat(inner).await?;
                (CommandStatus::Completed, None)
            }
            Command::QuarantineNotice {
                state,
                reason,
                incident,
            } => {
                tracing::warn!(asset = %inner.cfg.asset_id, ?state, %reason, "quarantine notice");
                inner.status.send_modify(|s| {
                    s.quarantine = Some(QuarantineInfo {
                        state,
                        reason,
                        incident,
                    })
                });
                // The network restricts the pump; the pump keeps infusing,
                // keeps its library and its events, and stays connectable.
                (
                    CommandStatus::Completed,
                    Some("notice shown; infusion, library and events unchanged".into()),
                )
            }
            Command::DrugLibraryAvailable {
                version,
                digest,
                size,
            } => on_library_available(inner, &c.id, version, digest, size).await,
            Command::RenewCertificate { .. } => {
                let current = DeviceIdentity::load(&inner.cfg.state_dir, &inner.cfg.asset_id)
                    .ok()
                    .flatten();
                match current {
                    None => (CommandStatus::Failed, Some("no current identity".into())),
                    Some(cur) => match inner.renew(&cur).await {
                        Ok(new) => {
                            end = Some(SessionEnd::Renewed(Box::new(new)));
                            (
                                CommandStatus::Completed,
                                Some("re-enrolled; reconnecting with the new certificate".into()),
                            )
                        }
                        Err(e) => (CommandStatus::Failed, Some(trim_text(&e.to_string()))),
                    },
                }
            }
            Command::Unsupported { original_kind } => (
                CommandStatus::Unsupported,
                Some(trim_text(&format!(
                    "unknown command kind {original_kind:?}"
                ))),
            ),
        };
        let result = CommandResult {
            id: c.id,
            status,
            detail,
        };
        if self.answered.len() >= ANSWERED_MEMORY {
            self.answered.pop_front();
        }
        self.answered.push_back(result.clone());
        self.send(&PumpMessage::CommandResult(result)).await?;
        inner.status.send_modify(|s| s.commands_answered += 1);
        Ok(end)
    }

    /// Sends the second results of deferred commands; a repeat of such a
    /// command is answered with its final result from then on. Those that
    /// cannot be sent wait for the next session.
    async fn send_late_results(&mut self, inner: &Arc<Inner>) -> Result<(), String> {
        let late = std::mem::take(&mut lock(&inner.control).late_results);
        let mut late = late.into_iter();
        while let Some(r) = late.next() {
            if let Err(e) = self.send(&PumpMessage::CommandResult(r.clone())).await {
                let mut c = lock(&inner.control);
                c.late_results.push(r);
                c.late_results.extend(late);
                return Err(e);
            }
            self.answered.retain(|a| a.id != r.id);
            if self.answered.len() >= ANSWERED_MEMORY {
                self.answered.pop_front();
            }
            self.answered.push_back(r);
            inner.status.send_modify(|s| s.commands_answered += 1);
        }
        Ok(())
    }

    async fn replay(&mut self, inner: &Arc<Inner>) -> Result<(), String> {
        let Some(events) = lock(&inner.last_acked_batch).clone() else {
            return Ok(());
        };
        if events.is_empty() {
            return Ok(());
        }
        let (first, last) = (events[0].seq, events[events.len() - 1].seq);
        let msg = PumpMessage::EventBatch(EventBatch { events });
        self.send(&msg).await?;
        self.replay_pending = Some((first, last));
        Ok(())
    }

    async fn run(&mut self, inner: &Arc<Inner>, link: &mut watch::Receiver<bool>) -> SessionEnd {
        match self.run_inner(inner, link).await {
            Ok(end) => end,
            Err(reason) => SessionEnd::Reconnect {
                floor: None,
                established: true,
                reason,
            },
        }
    }

    async fn run_inner(
        &mut self,
        inner: &Arc<Inner>,
        link: &mut watch::Receiver<bool>,
    ) -> Result<SessionEnd, String> {
        let mut hb = tokio::time::interval(self.heartbeat);
        hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut renew_at = {
            let id = DeviceIdentity::load(&inner.cfg.state_dir, &inner.cfg.asset_id)
                .ok()
                .flatten();
            let due = id.map(|i| i.renewal_due(inner.cfg.renew_fraction));
            let wait = due.map(|d| (d - OffsetDateTime::now_utc()).max(time::Duration::ZERO));
            let secs = wait.map_or(u64::MAX / 4, |w| w.whole_seconds().max(0) as u64);
            tokio::time::Instant::now() + Duration::from_secs(secs.min(86_400 * 365))
        };
        let mut link_open = link.has_changed().is_ok();
        self.send_late_results(inner).await?;
        self.maybe_send_batch(inner).await?;
        loop {
            let far = tokio::time::Instant::now() + Duration::from_secs(86_400);
            let ack_deadline = self
                .inflight
                .as_ref()
                .map_or(far, |(_, t, _)| *t + inner.cfg.ack_timeout);
            let hold = self.hold_until.unwrap_or(far);
            tokio::select! {
                frame = self.ch.next() => {
                    let payload = match frame {
                        None => return Err("the gateway closed the connection".into()),
                        Some(Err(e)) => return Err(format!("reading: {e}")),
                        Some(Ok(p)) => p,
                    };
                    match parse_gateway_message(&payload, Some(self.v)) {
                        Ok(GatewayMessage::Ack(a)) => self.on_ack(inner, a.up_to_seq).await?,
                        Ok(GatewayMessage::Command(c)) => {
                            if let Some(end) = self.on_command(inner, c).await? {
                                let _ = self.ch.close().await;
                                return Ok(end);
                            }
                        }
                        Ok(GatewayMessage::Refusal(r)) => {
                            if let Some((first, last)) = self.replay_pending.take() {
                                inner.status.send_modify(|s| {
                                    s.replay = Some(ReplayOutcome {
                                        seqs: (first, last), ack: None, refusal: Some(r.code),
                                    });
                                    s.replays_answered += 1;
                                });
                            }
                            if let Some(end) = inner.on_refusal(&r, true) {
                                return Ok(end);
                            }
                            self.on_soft_refusal(&r);
                        }
                        Ok(GatewayMessage::Welcome(_)) => {
                            tracing::debug!("ignoring a second welcome");
                        }
                        Err(MessageError::VersionMismatch { got, expected }) => {
                            return Err(format!("gateway sent v={got} in a v={expected} session"));
                        }
                        Err(e) => tracing::info!(asset = %inner.cfg.asset_id, error = %e, "ignoring a gateway message"),
                    }
                }
                _ = hb.tick() => self.send_heartbeat(inner).await?,
                _ = inner.wake.notified() => {
                    let (shutdown, kick, renew, replay) = {
                        let mut c = lock(&inner.control);
                        (c.shutdown, std::mem::take(&mut c.kick) || c.new_code.is_some(),
                         std::mem::take(&mut c.renew), std::mem::take(&mut c.replay))
                    };
                    if shutdown {
                        return Ok(SessionEnd::Shutdown);
                    }
                    if kick {
                        let _ = self.ch.close().await;
                        return Err("disconnected on request".into());
                    }
                    if renew {
                        let Some(cur) = DeviceIdentity::load(&inner.cfg.state_dir, &inner.cfg.asset_id).ok().flatten() else {
                            continue;
                        };
                        match inner.renew(&cur).await {
                            Ok(new) => {
                                let _ = self.ch.close().await;
                                return Ok(SessionEnd::Renewed(Box::new(new)));
                            }
                            Err(e) => tracing::warn!(error = %e, "renewal failed"),
                        }
                    }
                    if replay {
                        self.replay(inner).await?;
                    }
                    self.send_late_results(inner).await?;
                }
                r = link.changed(), if link_open => {
                    if r.is_err() {
                        link_open = false;
                    } else if !*link.borrow() {
                        return Err("network link down".into());
                    }
                }
                _ = sleep_until(ack_deadline), if self.inflight.is_some() => {
                    return Err(format!("no ack within {:?}", inner.cfg.ack_timeout));
                }
                _ = sleep_until(hold), if self.hold_until.is_some() => {
                    self.hold_until = None;
                }
                _ = sleep_until(renew_at) => {
                    // Retried at most every 5 minutes if it fails.
                    renew_at = tokio::time::Instant::now() + Duration::from_secs(300);
                    lock(&inner.control).renew = true;
                    inner.wake.notify_one();
                }
            }
            self.maybe_send_batch(inner).await?;
        }
    }

    /// Non-fatal refusals (docs/device-protocol.md §8).
    fn on_soft_refusal(&mut self, r: &Refusal) {
        let after = |default: u64| {
            tokio::time::Instant::now()
                + Duration::from_secs(r.retry_after_s.map_or(default, u64::from))
        };
        match r.code {
            RefusalCode::Malformed => {}
            RefusalCode::UnknownMessageType => {
                if !self.disabled.contains(&self.last_sent) {
                    self.disabled.push(self.last_sent);
                }
            }
            RefusalCode::SequenceNotIncreasing => {
                // Rebuild from the queue, in order, shortly.
                self.inflight = None;
                self.hold_until = Some(after(1));
            }
            RefusalCode::InvalidMessage
            | RefusalCode::StorageUnavailable
            | RefusalCode::Internal
            | RefusalCode::RateLimited => {
                // Nothing of the batch was stored: keep it, resend later.
                self.inflight = None;
                self.hold_until = Some(after(5));
            }
            _ => {
                if r.retry_after_s.is_some() {
                    self.inflight = None;
                    self.hold_until = Some(after(5));
                }
            }
        }
    }
}

/// Fetches an announced library over the device's mutually authenticated
/// HTTPS (the gateway's `/device/v1/library/<digest>`, same port as EST)
/// and installs it, or defers it while an infusion runs, or refuses it:
/// the installed library stays and a `library_rejected` event says why.
async fn on_library_available(
    inner: &Arc<Inner>,
    command: &str,
    version: String,
    digest: String,
    size: Option<u64>,
) -> (CommandStatus, Option<String>) {
    let max = pumpward_druglib::envelope::MAX_ENVELOPE_BYTES as u64;
    let fetched = match size {
        Some(n) if n > max => Err(format!("announced size {n} exceeds {max} bytes")),
        _ => match DeviceIdentity::load(&inner.cfg.state_dir, &inner.cfg.asset_id)
            .ok()
            .flatten()
        {
            None => Err("no device identity to fetch with".into()),
            Some(id) => {
                match EstClient::new(&inner.cfg.est_base_url, &inner.env.trust, Some(&id)) {
                    Err(e) => Err(e.to_string()),
                    Ok(c) => c.library_envelope(&digest).await.map_err(|e| e.to_string()),
                }
            }
        },
    };
    let envelope = match fetched {
        Ok(b) => b,
        Err(e) => {
            let r = Rejection {
                reason: pumpward_proto::message::LibraryRejectReason::DownloadFailed,
                error: format!("fetching the library: {e}"),
                version: Some(version),
                digest: Some(digest),
            };
            report_rejection(inner, &r);
            return (CommandStatus::Failed, Some(trim_text(&r.error)));
        }
    };
    let busy = lock(&inner.therapy).infusion != InfusionState::Idle;
    if busy {
        // Verify now (a bad library is refused at once), install later.
        let area = lock(&inner.therapy).care_area.clone().unwrap_or_default();
        let judged = lock(&inner.library)
            .judge(&envelope, Some(&digest), &area)
            .map(|_| ());
        return match judged {
            Ok(()) => {
                *lock(&inner.pending_library) = Some((envelope, digest, command.to_owned()));
                inner
                    .status
                    .send_modify(|s| s.library_pending = Some(version.clone()));
                (
                    CommandStatus::Deferred,
                    Some("infusion running; library installs when it ends".into()),
                )
            }
            Err(r) => {
                let r = Rejection {
                    version: r.version.or(Some(version)),
                    ..r
                };
                report_rejection(inner, &r);
                (CommandStatus::Rejected, Some(trim_text(&r.error)))
            }
        };
    }
    let job = inner.clone();
    let outcome = tokio::task::spawn_blocking(move || install_library(&job, &envelope, &digest))
        .await
        .unwrap_or_else(|e| Err(format!("install job failed: {e}")));
    install_outcome(outcome)
}

/// A library install as a command's result.
fn install_outcome(outcome: Result<LibraryRef, String>) -> (CommandStatus, Option<String>) {
    match outcome {
        Ok(r) => (
            CommandStatus::Completed,
            Some(format!("library version {} installed", r.version)),
        ),
        Err(e) => (CommandStatus::Rejected, Some(trim_text(&e))),
    }
}

/// Offers an envelope to the pump's library (blocking: it syncs the file)
/// and reports the outcome as an event, in the status and the therapy
/// state (hello and heartbeats carry the installed version).
fn install_library(
    inner: &Arc<Inner>,
    envelope: &[u8],
    digest: &str,
) -> Result<LibraryRef, String> {
    let area = lock(&inner.therapy).care_area.clone().unwrap_or_default();
    let result = lock(&inner.library).offer(envelope, Some(digest), &area);
    match result {
        Ok(r) => {
            lock(&inner.therapy).library = Some(r.clone());
            let _ = push_pending(
                inner,
                NewEvent::new(
                    OffsetDateTime::now_utc(),
                    EventKind::LibraryInstalled {
                        version: r.version.clone(),
                        digest: r.digest.clone(),
                    },
                ),
            );
            inner.status.send_modify(|s| {
                s.library = Some(r.clone());
                s.libraries_installed += 1;
                s.library_pending = None;
            });
            tracing::info!(asset = %inner.cfg.asset_id, version = %r.version, "drug library installed");
            Ok(r)
        }
        Err(r) => {
            report_rejection(inner, &r);
            inner.status.send_modify(|s| s.library_pending = None);
            Err(r.error)
        }
    }
}

fn report_rejection(inner: &Arc<Inner>, r: &Rejection) {
    tracing::warn!(asset = %inner.cfg.asset_id, reason = ?r.reason, error = %r.error, "drug library refused; the installed one stays");
    let mut e = NewEvent::new(
        OffsetDateTime::now_utc(),
        EventKind::LibraryRejected {
            version: r
                .version
                .as_deref()
                .filter(|v| !v.is_empty() && v.len() <= pumpward_proto::message::MAX_NAME_LEN)
                .map(str::to_owned),
            digest: r
                .digest
                .as_deref()
                .filter(|d| {
                    d.len() == 64 && d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                })
                .map(str::to_owned),
            reason: r.reason,
        },
    );
    e.detail.insert("error".into(), detail_error(r));
    let _ = push_pending(inner, e);
    inner.status.send_modify(|s| {
        s.libraries_rejected += 1;
        s.last_library_rejection = Some(r.error.clone());
    });
}

/// Hands an event to the queue writer (starting it if idle).
fn push_pending(inner: &Arc<Inner>, event: NewEvent) -> Result<(), RecordError> {
    let start_writer = {
        let mut p = lock(&inner.pending);
        if p.events.len() >= MAX_PENDING_EVENTS {
            p.refused_unreported += 1;
            drop(p);
            inner.status.send_modify(|s| s.dropped_events += 1);
            return Err(RecordError::Full);
        }
        p.events.push(event);
        let start = !p.writer_active;
        p.writer_active = true;
        start
    };
    inner.status.send_modify(|s| s.events_recorded += 1);
    if start_writer {
        let job = inner.clone();
        inner.handle.spawn_blocking(move || writer_job(&job));
    }
    Ok(())
}

fn trim_text(s: &str) -> String {
    pumpward_proto::message::refusal_reason(s)
}
