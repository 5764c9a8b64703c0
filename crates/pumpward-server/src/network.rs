//! Live network monitoring inside the server: flows from the sensors the
//! hospital already runs (IPFIX / NetFlow v9 over UDP, a Zeek `conn.log`
//! being written), evaluated against the stored zone policy, with the
//! violations handed to detection.
//!
//! Why it is shaped like this:
//! - Collectors only decode; one task owns the [`Evaluator`] and the running
//!   views. The UDP collector hands each datagram's flows over with
//!   `try_send`: a full queue drops them and counts the loss
//!   (`network_flows_dropped`), so a slow engine never stalls the socket
//!   (the kernel would drop datagrams silently instead). The Zeek follower
//!   waits instead: the file keeps what is not read yet, so waiting loses
//!   nothing.
//! - Flows are attributed to assets by the inventory's network identity
//!   (address at the time of the flow, else MAC), compiled with the current
//!   policy version into the evaluator. A saved version wakes the task
//!   ([`NetworkLive::policy_saved`]); the inventory is reloaded every
//!   [`REFRESH_EVERY`].
//! - Violations become `pumpward_detect` events ([`violation_event`]) with
//!   the flow as evidence, handed to [`Detection::observe`] (which records
//!   them in `security_events` and runs the rules, never waiting). The same
//!   tuple (violation, addresses, port) is reported at most once per
//!   [`REPORT_EVERY`]: a rogue device's every packet must not flood the
//!   engine. Event ids derive from the flow, so a re-read log yields the
//!   same ids (stored once).
//! - The observed conduits restart with each policy version, since their
//!   zones are the policy's.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use pumpward_detect::event::{from_us, ViolationKind};
use pumpward_detect::{Body, Event, Source};
use pumpward_flow::ipfix::Collector;
use pumpward_flow::zeek::ConnLogFollower;
use pumpward_flow::Flow;
use pumpward_net::eval::{Side, ZoneRef};
use pumpward_net::observed::{ObservedConduit, ObservedConduits, UnknownDevices};
use pumpward_net::presence::PresenceTracker;
use pumpward_net::{Evaluation, Evaluator, Policy, PolicyDocument, Verdict, Violation};
use pumpward_store::Store;
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::detection::Detection;

/// How often the inventory (and the policy) is reloaded without a save.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// The same violation tuple is reported to detection at most this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);
/// How often the Zeek follower looks at the file.
pub const ZEEK_POLL: Duration = Duration::from_millis(250);
/// Two sightings of one MAC from different places this close are "at once".
const PRESENCE_WINDOW_US: i64 = 60_000_000;
/// Batches of flows waiting for the evaluator.
const QUEUE: usize = 4096;
/// Violation tuples remembered for [`REPORT_EVERY`]; the memory is cleared
/// when it outgrows this (reporting a few again is harmless).
const MAX_REPORTED: usize = 100_000;
/// Bytes read from the conn.log per look, so one huge append cannot hold
/// the follower for long.
const ZEEK_READ_CHUNK: usize = 1 << 20;

/// Where the live collectors listen; both optional.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    /// UDP address for IPFIX and NetFlow v9 exporters.
    pub flow_listen: Option<SocketAddr>,
    /// A Zeek conn.log (TSV or JSON) to follow, through rotation.
    pub zeek_conn_log: Option<PathBuf>,
}

/// The counters on `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct NetworkMetrics {
    pub datagrams: Counter,
    pub malformed_datagrams: Counter,
    pub flows_received: Counter,
    pub flows_evaluated: Counter,
    pub flows_dropped: Counter,
    pub records_skipped: Counter,
    pub violations: Counter,
}

impl NetworkMetrics {
    /// Registers the counters (`pumpward_network_*`).
    pub fn registered(registry: &mut Registry) -> NetworkMetrics {
        let m = NetworkMetrics::default();
        for (name, help, c) in [
            (
                "network_datagrams",
                "IPFIX/NetFlow datagrams received",
                &m.datagrams,
            ),
            (
                "network_malformed_datagrams",
                "IPFIX/NetFlow datagrams refused as malformed",
                &m.malformed_datagrams,
            ),
            (
                "network_flows_received",
                "Flows decoded from the live collectors",
                &m.flows_received,
            ),
            (
                "network_flows_evaluated",
                "Flows evaluated against the zone policy",
                &m.flows_evaluated,
            ),
            (
                "network_flows_dropped",
                "Flows dropped because the evaluator was behind",
                &m.flows_dropped,
            ),
            (
                "network_records_skipped",
                "Zeek conn.log records skipped (malformed or not flows)",
                &m.records_skipped,
            ),
            (
                "network_violations",
                "Flows that broke the zone policy",
                &m.violations,
            ),
        ] {
            registry.register(name, help, c.clone());
        }
        m
    }
}

/// A device seen in a device zone that no inventory asset holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownDevice {
    pub zone: String,
    pub mac: Option<String>,
    pub address: IpAddr,
    pub first_seen: String,
    pub last_seen: String,
    pub flows: u64,
}

/// What the views show: observed conduits and unknown devices.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObservedView {
    /// The policy version the observations were evaluated with (None: the
    /// starter policy).
    pub policy_version: Option<i64>,
    /// The collectors running, e.g. `IPFIX/NetFlow v9 on 0.0.0.0:4739`.
    pub collectors: Vec<String>,
    pub conduits: Vec<ObservedConduit>,
    /// Flows whose zone pair, transport and port made no row, the list
    /// being at its bound (`pumpward_net::observed::MAX_OBSERVED_CONDUITS`).
    pub conduit_flows_not_listed: u64,
    pub unknown_devices: Vec<UnknownDevice>,
    /// Sightings of unknown devices beyond the list's bound.
    pub unknown_not_listed: u64,
}

#[derive(Default)]
struct Live {
    evaluator: Option<Arc<Evaluator>>,
    policy_version: Option<i64>,
    collectors: Vec<String>,
    observed: ObservedConduits,
    unknown: UnknownDevices,
}

/// The running state shared with the pages and the API.
#[derive(Default)]
pub struct NetworkLive {
    live: Mutex<Live>,
    reload: Notify,
}

impl NetworkLive {
    fn lock(&self) -> MutexGuard<'_, Live> {
        // A panic while holding the lock leaves counters at worst; keep going.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new policy version was saved: the evaluator reloads it.
    pub fn policy_saved(&self) {
        self.reload.notify_one();
    }

    /// An asset was added or changed: the evaluator reloads the inventory
    /// now rather than at the next [`REFRESH_EVERY`].
    pub fn inventory_changed(&self) {
        self.reload.notify_one();
    }

    /// Where the unknown device with this MAC was seen: (zone, address),
    /// the latest sighting first.
    pub fn sightings_of(&self, mac: [u8; 6]) -> Vec<(String, IpAddr)> {
        let l = self.lock();
        let mut seen: Vec<(i64, String, IpAddr)> = l
            .unknown
            .iter()
            .filter(|(k, _)| k.mac == Some(mac))
            .map(|(k, s)| (s.last_us, k.zone.clone(), k.address))
            .collect();
        seen.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
        seen.into_iter().map(|(_, z, a)| (z, a)).collect()
    }

    /// Drops an unknown device from the list once it is registered: every
    /// sighting of its MAC, and sightings without a MAC at its address.
    pub fn forget_unknown(&self, mac: Option<[u8; 6]>, address: Option<IpAddr>) {
        self.lock().unknown.retain(|k, _| {
            let same_mac = mac.is_some() && k.mac == mac;
            let same_address = k.mac.is_none() && Some(k.address) == address;
            !(same_mac || same_address)
        });
    }

    /// The observed conduits and unknown devices so far.
    pub fn view(&self) -> ObservedView {
        let l = self.lock();
        let conduits = match &l.evaluator {
            Some(ev) => l.observed.rows(ev),
            None => Vec::new(),
        };
        let unknown_devices = l
            .unknown
            .iter()
            .map(|(k, seen)| UnknownDevice {
                zone: k.zone.clone(),
                mac: k.mac.map(|m| pumpward_flow::ObservedMac(m).to_string()),
                address: k.address,
                first_seen: pumpward_core::timefmt::format(from_us(seen.first_us)),
                last_seen: pumpward_core::timefmt::format(from_us(seen.last_us)),
                flows: seen.flows,
            })
            .collect();
        ObservedView {
            policy_version: l.policy_version,
            collectors: l.collectors.clone(),
            conduits,
            conduit_flows_not_listed: l.observed.flows_not_listed(),
            unknown_devices,
            unknown_not_listed: l.unknown.not_listed(),
        }
    }
}

/// The policy in force: the current stored version, or the starter policy
/// when none was saved. Returns the version with it.
pub async fn current_policy(store: &Store) -> anyhow::Result<(Option<i64>, Policy)> {
    match store.current_network_policy().await? {
        Some(v) => {
            let doc = PolicyDocument::from_toml(&v.toml).map_err(|e| {
                anyhow::anyhow!(
                    "stored network policy version {} is invalid: {e}",
                    v.version
                )
            })?;
            Ok((Some(v.version), doc.policy))
        }
        None => Ok((None, pumpward_net::starter_policy())),
    }
}

/// The running collectors; dropping it does not stop them, [`Running::stop`] does.
pub struct Running {
    tasks: Vec<JoinHandle<()>>,
    /// The UDP address actually bound (port 0 resolved).
    pub flow_addr: Option<SocketAddr>,
}

impl Running {
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts the evaluator and the configured collectors. Fails only if the
/// UDP address cannot be bound.
pub async fn start(
    store: Store,
    detection: Option<Detection>,
    live: Arc<NetworkLive>,
    metrics: NetworkMetrics,
    opts: &NetworkOptions,
) -> anyhow::Result<Running> {
    let (tx, rx) = mpsc::channel::<Vec<Flow>>(QUEUE);
    let mut tasks = Vec::new();
    let mut collectors = Vec::new();
    let mut flow_addr = None;
    if let Some(addr) = opts.flow_listen {
        let sock = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for flows on {addr}: {e}"))?;
        let local = sock.local_addr()?;
        flow_addr = Some(local);
        collectors.push(format!("IPFIX/NetFlow v9 on udp {local}"));
        tasks.push(tokio::spawn(udp_collector(
            sock,
            tx.clone(),
            metrics.clone(),
        )));
    }
    if let Some(path) = &opts.zeek_conn_log {
        collectors.push(format!("Zeek conn.log {}", path.display()));
        let (path, tx, m) = (path.clone(), tx.clone(), metrics.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            follow_conn_log(&path, &tx, &m)
        }));
    }
    drop(tx);
    live.lock().collectors = collectors;
    tasks.push(tokio::spawn(evaluate(store, detection, live, metrics, rx)));
    Ok(Running { tasks, flow_addr })
}

async fn udp_collector(
    sock: tokio::net::UdpSocket,
    tx: mpsc::Sender<Vec<Flow>>,
    m: NetworkMetrics,
) {
    let mut collector = Collector::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors surface here on some systems; the socket stays usable.
                tracing::debug!(error = %e, "flow socket");
                continue;
            }
        };
        m.datagrams.inc();
        let Some(datagram) = buf.get(..n) else {
            continue;
        };
        let out = collector.handle_datagram(from, datagram);
        if let Some(e) = &out.error {
            m.malformed_datagrams.inc();
            tracing::debug!(exporter = %from, error = %e, "malformed flow datagram");
            continue;
        }
        if out.flows.is_empty() {
            continue;
        }
        let count = out.flows.len() as u64;
        m.flows_received.inc_by(count);
        if tx.try_send(out.flows).is_err() {
            m.flows_dropped.inc_by(count);
        }
    }
}

/// Follows a conn.log: reads what was appended, and when the file is
/// rotated (another file at the path) or truncated, finishes the old one
/// and starts the new one from its beginning (its header). Runs on a
/// blocking thread until the evaluator is gone.
fn follow_conn_log(path: &Path, tx: &mpsc::Sender<Vec<Flow>>, m: &NetworkMetrics) {
    use std::os::unix::fs::MetadataExt;
    let mut follower = ConnLogFollower::new();
    let mut open: Option<(std::fs::File, u64, u64)> = None; // file, inode, offset
    let mut buf = vec![0u8; ZEEK_READ_CHUNK];
    let mut warned = false;
    loop {
        if tx.is_closed() {
            return;
        }
        let mut flows = Vec::new();
        let mut sink = |r: Result<Flow, pumpward_flow::zeek::RecordError>| match r {
            Ok(f) => flows.push(f),
            Err(e) => {
                m.records_skipped.inc();
                tracing::debug!(line = e.line, detail = %e.detail, "conn.log record skipped");
            }
        };
        // Read what the open file has beyond our offset (also after a rename).
        let mut read_any = false;
        if let Some((file, _, offset)) = &mut open {
            match file.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    *offset += n as u64;
                    read_any = true;
                    follower.feed(buf.get(..n).unwrap_or(&[]), &mut sink);
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "cannot read conn.log")
                }
            }
        }
        if !read_any {
            // Caught up: has the path moved on to another file, or shrunk?
            match std::fs::metadata(path) {
                Ok(meta) => {
                    warned = false;
                    let replaced = match &open {
                        Some((_, ino, offset)) => meta.ino() != *ino || meta.len() < *offset,
                        None => true,
                    };
                    if replaced {
                        if open.is_some() {
                            follower.finish(&mut sink);
                            follower = ConnLogFollower::new();
                        }
                        open = match std::fs::File::open(path) {
                            Ok(mut f) => {
                                f.seek(SeekFrom::Start(0)).ok().map(|_| (f, meta.ino(), 0))
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, path = %path.display(), "cannot open conn.log");
                                None
                            }
                        };
                    }
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, path = %path.display(), "conn.log not readable yet; waiting");
                        warned = true;
                    }
                }
            }
        }
        if !flows.is_empty() {
            m.flows_received.inc_by(flows.len() as u64);
            // Waits when the evaluator is behind: the file keeps the rest.
            if tx.blocking_send(flows).is_err() {
                return;
            }
        }
        if !read_any {
            std::thread::sleep(ZEEK_POLL);
        }
    }
}

struct Engine {
    presence: PresenceTracker,
    reported: HashMap<(&'static str, IpAddr, IpAddr, u16), Instant>,
}

async fn load(store: &Store) -> anyhow::Result<(Option<i64>, Evaluator)> {
    let (version, policy) = current_policy(store).await?;
    let (assets, _) = store
        .network_identities(pumpward_net::inventory::Listing::All)
        .await?;
    // An inventory the policy does not fit (an asset in a zone the policy
    // lacks) must not stop monitoring: such assets are left out.
    let ev = match Evaluator::new(&policy, &assets) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(error = %e, "the inventory does not fit the network policy; evaluating without the assets that do not");
            let fitting: Vec<_> = assets
                .into_iter()
                .filter(|a| {
                    pumpward_net::policy::problems(&policy, std::slice::from_ref(a)).is_empty()
                })
                .collect();
            Evaluator::new(&policy, &fitting)
                .or_else(|_| Evaluator::new(&policy, &[]))
                .map_err(|e| anyhow::anyhow!("the network policy cannot be evaluated: {e}"))?
        }
    };
    Ok((version, ev))
}

async fn evaluate(
    store: Store,
    detection: Option<Detection>,
    live: Arc<NetworkLive>,
    m: NetworkMetrics,
    mut rx: mpsc::Receiver<Vec<Flow>>,
) {
    let mut engine = Engine {
        presence: PresenceTracker::new(PRESENCE_WINDOW_US),
        reported: HashMap::new(),
    };
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reload_now = |live: &NetworkLive, version: Option<i64>, ev: Evaluator| {
        let mut l = live.lock();
        if l.policy_version != version || l.evaluator.is_none() {
            l.observed = ObservedConduits::new();
        }
        // Devices registered meanwhile (by any path: the page, the API, a
        // CSV import) leave the unknown list.
        l.unknown
            .retain(|k, s| ev.asset_at(k.address, k.mac, s.last_us).is_none());
        l.policy_version = version;
        l.evaluator = Some(Arc::new(ev));
    };
    match load(&store).await {
        Ok((v, ev)) => reload_now(&live, v, ev),
        Err(e) => tracing::error!(error = %e, "cannot load the network policy"),
    }
    refresh.tick().await;
    loop {
        tokio::select! {
            got = rx.recv() => {
                let Some(flows) = got else { return };
                let mut events = Vec::new();
                {
                    let mut l = live.lock();
                    let Some(ev) = l.evaluator.clone() else {
                        // Not loaded yet (store unavailable at start): counted as dropped.
                        m.flows_dropped.inc_by(flows.len() as u64);
                        continue;
                    };
                    let now = OffsetDateTime::now_utc();
                    for f in &flows {
                        m.flows_evaluated.inc();
                        let e = ev.evaluate(f);
                        l.observed.record(f, &e);
                        if let Some(two) = engine.presence.observe_flow(&ev, f, &e) {
                            let asset = e.orig.asset.and_then(|a| ev.asset(a)).map(|a| a.asset_id.clone());
                            events.push(two_places_event(f, asset, &two, now));
                        }
                        if let Verdict::Violation(v) = e.verdict {
                            m.violations.inc();
                            if let Violation::UnknownDevice { side, zone } = v {
                                note_unknown(&mut l, &ev, f, side, zone);
                            }
                            if engine.first_report(v.kind(), f) {
                                if let Some(x) = violation_event(&ev, f, &e, now) {
                                    events.push(x);
                                }
                            }
                        }
                    }
                    engine.presence.prune(pumpward_detect::event::to_us(now) - 10 * PRESENCE_WINDOW_US);
                }
                if let Some(d) = &detection {
                    for x in events {
                        d.observe(x);
                    }
                }
            }
            _ = live.reload.notified() => match load(&store).await {
                Ok((v, ev)) => reload_now(&live, v, ev),
                Err(e) => tracing::error!(error = %e, "cannot reload the network policy"),
            },
            _ = refresh.tick() => match load(&store).await {
                Ok((v, ev)) => reload_now(&live, v, ev),
                Err(e) => tracing::error!(error = %e, "cannot load the network policy"),
            },
        }
    }
}

impl Engine {
    /// Whether this violation tuple was not reported within [`REPORT_EVERY`].
    fn first_report(&mut self, kind: &'static str, f: &Flow) -> bool {
        let now = Instant::now();
        if self.reported.len() > MAX_REPORTED {
            self.reported.clear();
        }
        let key = (kind, f.orig_addr, f.resp_addr, f.resp_port);
        match self.reported.get(&key) {
            Some(t) if now.duration_since(*t) < REPORT_EVERY => false,
            _ => {
                self.reported.insert(key, now);
                true
            }
        }
    }
}

fn note_unknown(
    l: &mut Live,
    ev: &Evaluator,
    f: &Flow,
    side: Side,
    zone: pumpward_net::eval::ZoneId,
) {
    let (addr, mac) = match side {
        Side::Originator => (f.orig_addr, f.orig_mac),
        Side::Responder => (f.resp_addr, f.resp_mac),
    };
    let mac = mac.filter(|m| !m.is_group()).map(|m| m.0);
    l.unknown
        .record(ev.zone_name(ZoneRef::Zone(zone)), addr, mac, f.start_us);
}

/// A stable event id from what identifies a flow.
fn event_id(kind: &str, f: &Flow) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update(f.start_us.to_be_bytes());
    h.update([f.transport.iana()]);
    h.update(f.orig_addr.to_string().as_bytes());
    h.update(f.orig_port.to_be_bytes());
    h.update(f.resp_addr.to_string().as_bytes());
    h.update(f.resp_port.to_be_bytes());
    let d = h.finalize();
    format!("net:{kind}:{}", hex::encode(d.get(..16).unwrap_or(&[])))
}

fn envelope(
    id: String,
    f: &Flow,
    asset: Option<pumpward_core::inventory::AssetId>,
    body: Body,
    now: OffsetDateTime,
) -> Event {
    // A sensor's clock ahead of ours must not make the event invalid.
    let occurred = from_us(f.start_us).min(now);
    Event {
        schema_version: pumpward_detect::event::SCHEMA_VERSION,
        id,
        occurred_at: occurred,
        received_at: now,
        source: Source::Network,
        asset_id: asset,
        care_area: None,
        body,
    }
}

/// The detection event for a flow that broke the policy: `unknown_device`
/// for an unregistered MAC in a device zone (without a MAC, a policy
/// violation named `unknown_device`), otherwise a policy violation whose
/// rule is the conduit concerned or the kind of breach, with the flow as
/// evidence. None for an allowed flow.
pub fn violation_event(
    ev: &Evaluator,
    f: &Flow,
    e: &Evaluation,
    now: OffsetDateTime,
) -> Option<Event> {
    let Verdict::Violation(v) = e.verdict else {
        return None;
    };
    let asset = |a: Option<pumpward_net::eval::AssetRef>| {
        a.and_then(|a| ev.asset(a)).map(|a| a.asset_id.clone())
    };
    let id = event_id(v.kind(), f);
    if let Violation::UnknownDevice { side, zone } = v {
        let (addr, mac) = match side {
            Side::Originator => (f.orig_addr, f.orig_mac),
            Side::Responder => (f.resp_addr, f.resp_mac),
        };
        if let Some(mac) = mac.filter(|m| !m.is_group() && m.0 != [0; 6]) {
            let body = Body::UnknownDevice {
                mac,
                ip: Some(addr),
                zone: ev.zone_name(ZoneRef::Zone(zone)).to_owned(),
                device_zone: true,
            };
            return Some(envelope(id, f, None, body, now));
        }
    }
    let (violation, rule) = match v {
        Violation::DeviceToInternet { .. } => (ViolationKind::Internet, v.kind().to_owned()),
        Violation::EastWest { .. } => (ViolationKind::EastWest, v.kind().to_owned()),
        Violation::WrongDirection { conduit } | Violation::PortNotAllowed { conduit } => (
            ViolationKind::Other,
            ev.conduit(conduit)
                .map_or_else(|| v.kind().to_owned(), |c| c.name.clone()),
        ),
        Violation::UnknownDevice { .. } | Violation::WrongDestinationZone { .. } => {
            (ViolationKind::Other, v.kind().to_owned())
        }
    };
    let body = Body::PolicyViolation {
        rule,
        violation,
        flow: f.clone(),
        earlier_flow: None,
    };
    Some(envelope(
        id,
        f,
        asset(e.orig.asset).or(asset(e.resp.asset)),
        body,
        now,
    ))
}

/// A registered device's MAC seen at two places at once: a policy
/// violation of kind `device_in_two_places` (the rule of that name alerts;
/// the envelope's certificate anomaly needs a certificate, which a flow
/// does not carry). Both sightings are the evidence: the flow is the later
/// one, `earlier_flow` the one before it (the tracker here is fed by flows
/// only, so it has one).
fn two_places_event(
    f: &Flow,
    asset: Option<pumpward_core::inventory::AssetId>,
    two: &pumpward_net::presence::TwoPlaces,
    now: OffsetDateTime,
) -> Event {
    let body = Body::PolicyViolation {
        rule: "device_in_two_places".into(),
        violation: ViolationKind::DeviceInTwoPlaces,
        flow: f.clone(),
        earlier_flow: two.earlier_flow.clone().map(Box::new),
    };
    envelope(event_id("two_places", f), f, asset, body, now)
}
