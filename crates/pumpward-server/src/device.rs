//! Device sessions on the gateway: the server side of
//! `docs/device-protocol.md`.
//!
//! A session starts only after TLS verified the client certificate; here
//! the certificate must also be one the store recorded, unrevoked, for an
//! asset whose lifecycle state may connect. From then on the asset is the
//! certificate's — nothing the pump sends can change who it is.
//!
//! Events are acknowledged only after they are committed: each batch goes
//! to the [`EventWriter`], which commits many sessions' batches in one
//! transaction and answers each. A sweep every [`SWEEP`] re-checks every
//! open session against the store, so a revocation or a quarantine (from
//! the API, the CLI, or another server node) closes the pump's connection
//! within seconds.

use crate::gateway::{auth_failure, known_certificate, GatewayState};
use futures_util::{SinkExt, StreamExt};
use pumpward_proto::frame::FrameDecoder;
use pumpward_proto::message::{
    self, Ack, CommandMessage, GatewayMessage, PumpMessage, Refusal, RefusalCode, Welcome,
};
use pumpward_proto::seq::SequenceTracker;
use pumpward_store::{DeviceBatch, DeviceEventRecord, DeviceHello, FirmwareCheck, Store};
use rustls::pki_types::CertificateDer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::codec::Framed;

/// How often open sessions are re-checked against the store.
pub const SWEEP: Duration = Duration::from_secs(2);
/// The heartbeat interval the gateway asks for.
pub const HEARTBEAT_S: u32 = 30;
/// A session that sends nothing for this many heartbeat intervals is closed.
const MISSED_HEARTBEATS: u32 = 3;
/// Time allowed for the hello after the handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// An open session, as the registry sees it.
struct SessionHandle {
    id: u64,
    certificate_serial: String,
    peer: SocketAddr,
    /// Where the pump said it is in its hello.
    network: message::NetworkIdentity,
    close: watch::Sender<Option<String>>,
    commands: mpsc::Sender<message::Command>,
}

/// Every open device session, by asset.
#[derive(Default)]
pub struct Sessions {
    by_asset: Mutex<HashMap<String, Vec<SessionHandle>>>,
    next_id: AtomicU64,
    seen: Mutex<Vec<String>>,
}

/// One connected pump, for the fleet view.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectedPump {
    pub asset_id: String,
    pub certificate_serial: String,
    pub peer: String,
    pub sessions: usize,
}

impl Sessions {
    /// Asks every session of `asset_id` to close, with a reason.
    pub fn close_asset(&self, asset_id: &str, reason: &str) -> usize {
        let map = self.by_asset.lock().expect("sessions lock");
        map.get(asset_id).map_or(0, |v| {
            for s in v {
                let _ = s.close.send(Some(reason.to_owned()));
            }
            v.len()
        })
    }

    /// Tells a pump it is quarantined (when it is) and closes its sessions
    /// a second later, so the notice can reach it. Infusions continue: only
    /// the network connection ends.
    pub fn notify_and_close(
        self: &Arc<Self>,
        asset_id: &str,
        state: pumpward_core::inventory::LifecycleState,
        reason: &str,
    ) {
        use pumpward_core::inventory::LifecycleState;
        let notified = state == LifecycleState::Quarantined
            && self.send_command(
                asset_id,
                message::Command::QuarantineNotice {
                    state: message::QuarantineState::Quarantined,
                    reason: message::refusal_reason(reason),
                    incident: None,
                },
            );
        let why = format!("the asset is now {state}");
        if !notified {
            self.close_asset(asset_id, &why);
            return;
        }
        let (me, id) = (self.clone(), asset_id.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            me.close_asset(&id, &why);
        });
    }

    /// The addresses from which `certificate_serial` is in use by open
    /// sessions of `asset_id` that are not the pump saying hello with
    /// `network` from `peer`: another peer address or another interface
    /// (MAC). A pump reconnecting after a roam, whose old session lingers,
    /// has the same MAC and is not listed.
    pub fn used_elsewhere(
        &self,
        asset_id: &str,
        certificate_serial: &str,
        peer: std::net::IpAddr,
        network: &message::NetworkIdentity,
    ) -> Vec<std::net::IpAddr> {
        let map = self.by_asset.lock().expect("sessions lock");
        let mut out = Vec::new();
        for s in map.get(asset_id).into_iter().flatten() {
            if s.certificate_serial == certificate_serial
                && (s.peer.ip() != peer || !s.network.mac.eq_ignore_ascii_case(&network.mac))
            {
                out.push(s.peer.ip());
                out.extend(s.network.ip);
            }
        }
        out
    }

    /// Closes every session (shutdown).
    pub fn close_all(&self) {
        for v in self.by_asset.lock().expect("sessions lock").values() {
            for s in v {
                let _ = s.close.send(Some("the gateway is shutting down".into()));
            }
        }
    }

    /// Sends a command to every session of an asset; false if none is open.
    /// A command that could change therapy is never sent (none exists in
    /// this protocol version; this is the one place every command passes).
    pub fn send_command(&self, asset_id: &str, c: message::Command) -> bool {
        if c.changes_therapy() {
            tracing::error!(asset = %asset_id, ?c, "refusing to send a command that changes therapy");
            return false;
        }
        let map = self.by_asset.lock().expect("sessions lock");
        let mut sent = false;
        for s in map.get(asset_id).into_iter().flatten() {
            sent |= s.commands.try_send(c.clone()).is_ok();
        }
        sent
    }

    /// The pumps connected now.
    pub fn connected(&self) -> Vec<ConnectedPump> {
        let map = self.by_asset.lock().expect("sessions lock");
        let mut v: Vec<ConnectedPump> = map
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(a, s)| ConnectedPump {
                asset_id: a.clone(),
                certificate_serial: s[0].certificate_serial.clone(),
                peer: s[0].peer.to_string(),
                sessions: s.len(),
            })
            .collect();
        v.sort_by(|a, b| a.asset_id.cmp(&b.asset_id));
        v
    }

    pub fn count(&self) -> usize {
        self.by_asset
            .lock()
            .expect("sessions lock")
            .values()
            .map(Vec::len)
            .sum()
    }

    fn register(&self, asset_id: &str, h: SessionHandle) {
        self.by_asset
            .lock()
            .expect("sessions lock")
            .entry(asset_id.to_owned())
            .or_default()
            .push(h);
    }

    fn unregister(&self, asset_id: &str, id: u64) {
        let mut map = self.by_asset.lock().expect("sessions lock");
        if let Some(v) = map.get_mut(asset_id) {
            v.retain(|s| s.id != id);
            if v.is_empty() {
                map.remove(asset_id);
            }
        }
    }

    fn heard_from(&self, asset_id: &str) {
        self.seen
            .lock()
            .expect("seen lock")
            .push(asset_id.to_owned());
    }

    /// Re-checks every open session against the store and closes those
    /// whose certificate was revoked or whose asset may no longer connect;
    /// writes the "last seen" times gathered since the previous sweep.
    pub async fn sweep(&self, store: &Store) -> anyhow::Result<usize> {
        let mut seen = std::mem::take(&mut *self.seen.lock().expect("seen lock"));
        seen.sort();
        seen.dedup();
        store
            .devices_seen(&seen, time::OffsetDateTime::now_utc())
            .await?;
        // A snapshot of the sessions open now; only these are judged, so a
        // pump that connects while the store answers is not closed by a
        // check that did not include it.
        let snapshot: Vec<(String, String, u64)> = {
            let map = self.by_asset.lock().expect("sessions lock");
            map.iter()
                .flat_map(|(a, v)| {
                    v.iter()
                        .map(move |s| (a.clone(), s.certificate_serial.clone(), s.id))
                })
                .collect()
        };
        if snapshot.is_empty() {
            return Ok(0);
        }
        let pairs: Vec<(String, String)> = snapshot
            .iter()
            .map(|(a, c, _)| (a.clone(), c.clone()))
            .collect();
        let ok = store.connectable(&pairs).await?;
        let map = self.by_asset.lock().expect("sessions lock");
        let mut closed = 0;
        for (asset, serial, id) in &snapshot {
            if ok.contains(&(asset.clone(), serial.clone())) {
                continue;
            }
            for s in map.get(asset).into_iter().flatten().filter(|s| s.id == *id) {
                let _ = s.close.send(Some(
                    "the certificate was revoked or the asset may no longer connect".into(),
                ));
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Runs [`Sessions::sweep`] every [`SWEEP`].
    pub fn spawn_sweeper(self: &Arc<Self>, store: Store) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SWEEP).await;
                if let Err(e) = me.sweep(&store).await {
                    tracing::warn!(error = %e, "device session sweep failed");
                }
            }
        })
    }
}

/// Commits device batches from many sessions together.
#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<(DeviceBatch, oneshot::Sender<Result<(), String>>)>,
}

impl EventWriter {
    /// Most events in one transaction.
    const MAX_EVENTS: usize = 20_000;

    /// Starts the writer; committed groups are handed to `detection`.
    pub fn spawn(store: Store, detection: Option<crate::detection::Detection>) -> EventWriter {
        let (tx, mut rx) =
            mpsc::channel::<(DeviceBatch, oneshot::Sender<Result<(), String>>)>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                let mut n = group[0].0.events.len();
                while n < Self::MAX_EVENTS {
                    match rx.try_recv() {
                        Ok(x) => {
                            n += x.0.events.len();
                            group.push(x);
                        }
                        Err(_) => break,
                    }
                }
                let (batches, answers): (Vec<DeviceBatch>, Vec<_>) = group.into_iter().unzip();
                let received_at = time::OffsetDateTime::now_utc();
                let r = store
                    .store_device_batches(&batches, received_at)
                    .await
                    .map_err(|e| e.to_string());
                if let (Ok(()), Some(d)) = (&r, &detection) {
                    d.feed(&batches, received_at);
                }
                for answer in answers {
                    let _ = answer.send(r.clone());
                }
            }
        });
        EventWriter { tx }
    }

    /// Stores one batch; returns after the commit.
    pub async fn store(&self, b: DeviceBatch) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((b, tx))
            .await
            .map_err(|_| "the event writer stopped".to_string())?;
        rx.await
            .map_err(|_| "the event writer stopped".to_string())?
    }
}

type Stream = Framed<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, FrameDecoder>;

async fn send(framed: &mut Stream, m: &GatewayMessage, v: u16) -> bool {
    match m.to_payload(v) {
        Ok(p) => framed.send(p.into()).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a gateway message");
            false
        }
    }
}

/// Sends a refusal; true if it ends the session.
/// Refusals of one session recorded as events; later ones are only
/// counted, so a misbehaving pump cannot flood the audit trail.
const RECORDED_REFUSALS: u32 = 5;

/// Who a session is, for recording what it did wrong.
struct Offender<'a> {
    store: &'a Store,
    asset_id: &'a str,
    peer: SocketAddr,
    refusals: u32,
}

/// Sends a refusal and records it (the first few per session) as a
/// `device.protocol_refusal` event with its code and reason; true if it
/// ends the session.
async fn refuse(framed: &mut Stream, r: Refusal, v: u16, who: &mut Offender<'_>) -> bool {
    let fatal = r.fatal;
    who.refusals += 1;
    if who.refusals <= RECORDED_REFUSALS {
        let code = serde_json::to_value(r.code)
            .ok()
            .and_then(|c| c.as_str().map(str::to_owned))
            .unwrap_or_default();
        record_event(
            who.store,
            who.asset_id,
            who.peer,
            "device.protocol_refusal",
            &format!("{code}: {}", r.reason),
        )
        .await;
    }
    send(framed, &GatewayMessage::Refusal(r), v).await;
    fatal
}

fn refusal(code: RefusalCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: message::refusal_reason(&reason.into()),
        fatal: code.is_fatal(),
        retry_after_s: None,
        supported_versions: Vec::new(),
        expected_next_seq: None,
        seq: None,
    }
}

/// Runs one device session to its end.
pub async fn run_session(
    st: GatewayState,
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: SocketAddr,
    cert: Option<CertificateDer<'static>>,
) {
    let v = message::PROTOCOL_VERSION;
    let mut framed = Framed::new(tls, FrameDecoder::new());
    // Who: from the certificate only.
    let Some(cert) = cert else {
        auth_failure(&st, peer, "device channel without a client certificate").await;
        return;
    };
    let record = match known_certificate(&st.store, &cert).await {
        Ok(r) if r.is_valid_at(time::OffsetDateTime::now_utc()) && r.asset_id.is_some() => r,
        Ok(r) => {
            auth_failure(
                &st,
                peer,
                &format!(
                    "certificate {} is revoked, expired or names no asset",
                    r.serial
                ),
            )
            .await;
            return;
        }
        Err(e) => {
            auth_failure(&st, peer, &e.to_string()).await;
            return;
        }
    };
    let asset_id = record.asset_id.clone().expect("checked");
    let model = match st.store.asset(&asset_id).await {
        Ok(a) if a.lifecycle_state.may_connect() => a.spec.model,
        Ok(a) => {
            auth_failure(
                &st,
                peer,
                &format!(
                    "asset {asset_id} is {}; it may not connect",
                    a.lifecycle_state
                ),
            )
            .await;
            return;
        }
        Err(e) => {
            auth_failure(&st, peer, &format!("asset {asset_id}: {e}")).await;
            return;
        }
    };

    // Hello.
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, framed.next()).await {
        Ok(Some(Ok(bytes))) => match message::parse_pump_message(&bytes, None) {
            Ok(PumpMessage::Hello(h)) => h,
            Ok(_) => {
                send(
                    &mut framed,
                    &GatewayMessage::Refusal(refusal(
                        RefusalCode::HelloRequired,
                        "the first message must be hello",
                    )),
                    v,
                )
                .await;
                return;
            }
            Err(e) => {
                send(&mut framed, &GatewayMessage::Refusal(e.refusal()), v).await;
                return;
            }
        },
        Ok(Some(Err(e))) => {
            tracing::debug!(%peer, error = %e, "bad frame before hello");
            return;
        }
        _ => return,
    };
    let Some(version) = message::negotiate(&hello.versions, message::SUPPORTED_VERSIONS) else {
        let mut r = refusal(
            RefusalCode::UnsupportedVersion,
            "no common protocol version",
        );
        r.supported_versions = message::SUPPORTED_VERSIONS.to_vec();
        send(&mut framed, &GatewayMessage::Refusal(r), v).await;
        return;
    };
    let last = match st.store.device_last_seq(&asset_id).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot read device sequence state");
            send(
                &mut framed,
                &GatewayMessage::Refusal(refusal(
                    RefusalCode::StorageUnavailable,
                    "storage unavailable",
                )),
                version,
            )
            .await;
            return;
        }
    };
    // One certificate, two pumps at once: a clone (whatever becomes of
    // this session below).
    let elsewhere =
        st.sessions
            .used_elsewhere(&asset_id, &record.serial, peer.ip(), &hello.network);
    if !elsewhere.is_empty() {
        tracing::warn!(%asset_id, %peer, ?elsewhere, "a certificate in use by two devices at once");
        if let Some(d) = &st.detection {
            let mut addresses = elsewhere;
            addresses.push(peer.ip());
            addresses.extend(hello.network.ip);
            d.observe(crate::gateway::concurrent_use_event(
                &asset_id,
                &record.fingerprint,
                addresses,
            ));
        }
    }
    let mut tracker = SequenceTracker::new(last);
    if let Err(e) = tracker.on_hello(hello.next_seq) {
        send(&mut framed, &GatewayMessage::Refusal(e.refusal()), version).await;
        record_event(
            &st.store,
            &asset_id,
            peer,
            "device.sequence_regression",
            &e.to_string(),
        )
        .await;
        return;
    }
    let h = DeviceHello {
        asset_id: asset_id.clone(),
        certificate_serial: record.serial.clone(),
        protocol_version: version,
        firmware_version: hello.firmware.version.clone(),
        firmware_digest: hello.firmware.digest.clone(),
        library_version: hello.library.as_ref().map(|l| l.version.clone()),
        network: serde_json::to_string(&hello.network).unwrap_or_default(),
        ip: Some(peer.ip()),
        source: peer.ip().to_string(),
    };
    match st
        .store
        .device_hello(&h, time::OffsetDateTime::now_utc())
        .await
    {
        Ok(FirmwareCheck::Mismatch { expected }) => {
            tracing::warn!(%asset_id, reported = %h.firmware_digest, %expected, "firmware digest mismatch");
            if let Some(d) = &st.detection {
                d.observe(crate::gateway::firmware_event(
                    &asset_id,
                    &model,
                    &h.firmware_version,
                    &h.firmware_digest,
                ));
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot record hello");
            send(
                &mut framed,
                &GatewayMessage::Refusal(refusal(
                    RefusalCode::StorageUnavailable,
                    "storage unavailable",
                )),
                version,
            )
            .await;
            return;
        }
    }
    let id = st.sessions.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let welcome = GatewayMessage::Welcome(Welcome {
        session: format!("s-{id}"),
        version,
        server_time: time::OffsetDateTime::now_utc(),
        heartbeat_interval_s: HEARTBEAT_S,
        expected_next_seq: tracker.expected_next_seq(),
        max_batch_events: message::MAX_EVENTS_PER_BATCH as u32,
        max_frame_bytes: pumpward_proto::frame::MAX_FRAME_LEN as u32,
    });
    if !send(&mut framed, &welcome, version).await {
        return;
    }
    let (close_tx, mut close_rx) = watch::channel(None::<String>);
    let (cmd_tx, mut cmd_rx) = mpsc::channel(16);
    st.sessions.register(
        &asset_id,
        SessionHandle {
            id,
            certificate_serial: record.serial.clone(),
            peer,
            network: hello.network.clone(),
            close: close_tx,
            commands: cmd_tx,
        },
    );
    st.metrics.devices_connected.inc();
    tracing::debug!(%asset_id, %peer, "device session open");
    if let Some(d) = &st.detection {
        d.observe(crate::gateway::connection_event(
            &asset_id,
            peer,
            &record.fingerprint,
        ));
    }
    let idle = Duration::from_secs(u64::from(HEARTBEAT_S * MISSED_HEARTBEATS));
    let mut who = Offender {
        store: &st.store,
        asset_id: &asset_id,
        peer,
        refusals: 0,
    };
    let mut command_no = 0u64;
    let mut library_commands = std::collections::HashSet::new();
    let why = loop {
        tokio::select! {
            _ = close_rx.changed() => {
                let reason = close_rx.borrow().clone().unwrap_or_default();
                break reason;
            }
            Some(c) = cmd_rx.recv() => {
                command_no += 1;
                let cid = format!("c-{id}-{command_no}");
                if matches!(c, message::Command::DrugLibraryAvailable { .. }) {
                    // Its `deferred` result moves the pump's rollout state.
                    if library_commands.len() >= 64 { library_commands.clear(); }
                    library_commands.insert(cid.clone());
                }
                let m = GatewayMessage::Command(CommandMessage { id: cid, command: c });
                if !send(&mut framed, &m, version).await { break "send failed".into(); }
            }
            next = tokio::time::timeout(idle, framed.next()) => {
                let bytes = match next {
                    Err(_) => break "no message for three heartbeat intervals".into(),
                    Ok(None) => break "closed by the pump".into(),
                    Ok(Some(Err(e))) => {
                        let code = match &e {
                            pumpward_proto::frame::CodecError::Frame(f) => f.refusal().code,
                            _ => RefusalCode::BadFrame,
                        };
                        refuse(&mut framed, refusal(code, e.to_string()), version, &mut who).await;
                        break format!("bad frame: {e}");
                    }
                    Ok(Some(Ok(b))) => b,
                };
                st.sessions.heard_from(&asset_id);
                let msg = match message::parse_pump_message(&bytes, Some(version)) {
                    Ok(m) => m,
                    Err(e) => {
                        if refuse(&mut framed, e.refusal(), version, &mut who).await { break format!("refused: {e}"); }
                        continue;
                    }
                };
                match msg {
                    PumpMessage::Hello(_) => {
                        send(&mut framed, &GatewayMessage::Refusal(refusal(RefusalCode::DuplicateHello, "hello was already sent in this session")), version).await;
                        break "duplicate hello".into();
                    }
                    PumpMessage::Heartbeat(_) => {}
                    PumpMessage::CommandResult(r) => {
                        tracing::debug!(%asset_id, id = %r.id, status = ?r.status, "command result");
                        if r.status == message::CommandStatus::Deferred && library_commands.contains(&r.id) {
                            let rep = [(asset_id.clone(), pumpward_store::LibraryReport::Deferred)];
                            if let Err(e) = st.store.record_library_reports(&rep, time::OffsetDateTime::now_utc()).await {
                                tracing::warn!(%asset_id, error = %e, "cannot record a deferred library");
                            }
                        }
                    }
                    PumpMessage::EventBatch(b) => {
                        let plan = match tracker.plan(&b.events) {
                            Ok(p) => p,
                            Err(e) => {
                                if refuse(&mut framed, e.refusal(), version, &mut who).await { break format!("refused: {e}"); }
                                continue;
                            }
                        };
                        st.metrics.device_events_duplicate.inc_by(plan.duplicates as u64);
                        let reports = crate::rollout::library_reports(&asset_id, &b.events[plan.store.clone()]);
                        if !plan.is_replay() || !plan.gaps.is_empty() {
                            let events = b.events[plan.store.clone()].iter().map(|e| DeviceEventRecord {
                                seq: e.seq as i64,
                                at: pumpward_core::timefmt::format(e.at),
                                kind: serde_json::to_value(&e.kind).ok()
                                    .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                                    .unwrap_or_else(|| "unrecognized".into()),
                                body: serde_json::to_string(e).unwrap_or_default(),
                            }).collect::<Vec<_>>();
                            let n = events.len() as u64;
                            let batch = DeviceBatch {
                                asset_id: asset_id.clone(),
                                events,
                                gaps: plan.gaps.iter().map(|g| (g.from, g.to)).collect(),
                                // The rollout state follows the events, in their commit.
                                library_reports: reports.into_iter().map(|(_, r)| r).collect(),
                            };
                            if let Err(e) = st.events.store(batch).await {
                                tracing::error!(error = %e, "cannot store device events");
                                send(&mut framed, &GatewayMessage::Refusal(refusal(RefusalCode::StorageUnavailable, "storage unavailable; nothing was acknowledged")), version).await;
                                continue;
                            }
                            st.metrics.device_events_stored.inc_by(n);
                        }
                        let ack = match tracker.commit(&plan) {
                            Ok(a) => a,
                            Err(e) => break format!("sequence state: {e}"),
                        };
                        if !send(&mut framed, &GatewayMessage::Ack(Ack { up_to_seq: ack.up_to_seq }), version).await {
                            break "send failed".into();
                        }
                    }
                }
            }
        }
    };
    st.sessions.unregister(&asset_id, id);
    st.metrics.devices_connected.dec();
    let _ = st
        .store
        .device_disconnected(&asset_id, time::OffsetDateTime::now_utc())
        .await;
    tracing::debug!(%asset_id, %peer, reason = %why, "device session closed");
    let _ = framed.close().await;
}

async fn record_event(store: &Store, asset_id: &str, peer: SocketAddr, action: &str, reason: &str) {
    let entry = pumpward_store::Actor {
        id: format!("device:{asset_id}"),
        source: Some(peer.ip().to_string()),
    }
    .entry(action, pumpward_core::audit::Outcome::Failure)
    .object(format!("asset:{asset_id}"))
    .reason(reason.to_owned());
    if let Err(e) = store.audit(entry).await {
        tracing::error!(error = %e, "cannot record a device event");
    }
}
