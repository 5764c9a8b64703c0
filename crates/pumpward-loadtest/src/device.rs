//! A lean device-channel client: tokio-rustls and `pumpward_proto` frames,
//! no durable queue. One task per pump, so 10,000 sessions fit in one
//! process beside the server on two cores. It speaks the protocol as the
//! agent does (ALPN `pumpward-device/1`, hello → welcome, heartbeats at the
//! gateway's interval, event batches with one in flight, reconnects with
//! the agent's own back-off policy), but keeps its events in memory: the
//! benchmark counts what the gateway acknowledged and then checks the store.

use crate::fleet::{self, PumpId};
use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pumpward_proto::message::{
    self, Firmware, GatewayMessage, Heartbeat, Hello, InfusionState, NetworkIdentity, PumpMessage,
    Welcome,
};
use pumpward_proto::FrameDecoder;
use pumpward_pump::rng::SplitMix64;
use pumpward_pump::{Backoff, BackoffPolicy, DEVICE_ALPN};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::codec::Framed;

pub type Channel = Framed<TlsStream<TcpStream>, FrameDecoder>;

/// Where the pumps connect.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub name: ServerName<'static>,
    pub timeout: Duration,
}

/// One simulated pump.
pub struct Pump {
    pub index: usize,
    pub id: PumpId,
    pub tls: Arc<ClientConfig>,
}

/// What the fleet's tasks report.
pub struct Fleet {
    pub epoch: Instant,
    pub connected: AtomicUsize,
    pub welcomes: AtomicU64,
    pub failures: AtomicU64,
    pub refusals: AtomicU64,
    pub acked: AtomicU64,
    pub batches: AtomicU64,
    /// Successful sessions per pump.
    pub generation: Vec<AtomicU32>,
    /// When each pump's latest session was welcomed (µs since `epoch`).
    pub up_at_us: Vec<AtomicU64>,
    /// Connected now, per pump.
    pub up: Vec<AtomicBool>,
    /// The last sequence number the gateway acknowledged, per pump.
    pub last_acked: Vec<AtomicU64>,
    pub last_error: Mutex<Option<String>>,
    /// Open-loop runs: per acknowledged batch, when its ack came (ms since
    /// `epoch`) and how long its oldest event had waited since it happened
    /// (µs), gathered from each session when it ends.
    pub ack_delays: Mutex<Vec<(u32, u32)>>,
}

impl Fleet {
    pub fn new(n: usize) -> Arc<Fleet> {
        Arc::new(Fleet {
            epoch: Instant::now(),
            connected: AtomicUsize::new(0),
            welcomes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            refusals: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            generation: (0..n).map(|_| AtomicU32::new(0)).collect(),
            up_at_us: (0..n).map(|_| AtomicU64::new(0)).collect(),
            up: (0..n).map(|_| AtomicBool::new(false)).collect(),
            last_acked: (0..n).map(|_| AtomicU64::new(0)).collect(),
            last_error: Mutex::new(None),
            ack_delays: Mutex::new(Vec::new()),
        })
    }

    pub fn error(&self, e: impl std::fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().expect("lock") = Some(e.to_string());
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("lock").clone()
    }

    pub fn mark_up(&self, i: usize) {
        self.welcomes.fetch_add(1, Ordering::Relaxed);
        self.up_at_us[i].store(self.epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.generation[i].fetch_add(1, Ordering::Release);
        self.up[i].store(true, Ordering::Release);
        self.connected.fetch_add(1, Ordering::AcqRel);
    }

    pub fn mark_down(&self, i: usize) {
        if self.up[i].swap(false, Ordering::AcqRel) {
            self.connected.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Pumps whose session count is at least `g` and that are up now.
    pub fn up_with_generation(&self, g: u32) -> usize {
        (0..self.up.len())
            .filter(|&i| {
                self.up[i].load(Ordering::Acquire)
                    && self.generation[i].load(Ordering::Acquire) >= g
            })
            .count()
    }
}

/// Why opening a session failed, and the floor for the next attempt.
struct OpenError {
    reason: String,
    retry_after: Option<Duration>,
}

impl<E: std::fmt::Display> From<E> for OpenError {
    fn from(e: E) -> Self {
        OpenError {
            reason: e.to_string(),
            retry_after: None,
        }
    }
}

fn hello(p: &Pump, next_seq: u64) -> Hello {
    Hello {
        versions: message::SUPPORTED_VERSIONS.to_vec(),
        firmware: Firmware {
            version: fleet::FIRMWARE_VERSION.into(),
            digest: fleet::FIRMWARE_DIGEST.into(),
        },
        library: None,
        network: NetworkIdentity {
            mac: fleet::mac(p.index),
            ip: Some("127.0.0.1".parse().expect("address")),
            hostname: Some(format!("pump-{:05}", p.index)),
            ssid: Some("CLIN-PUMPS".into()),
            bssid: None,
            ap_name: None,
        },
        care_area: Some("ICU".into()),
        next_seq,
        agent: Some("pumpward-loadtest/0.1".into()),
    }
}

async fn send(ch: &mut Channel, m: &PumpMessage, v: u16) -> Result<()> {
    let p = m.to_payload(v)?;
    ch.send(Bytes::from(p)).await?;
    Ok(())
}

/// [`open`], with the reason of a failure.
pub async fn open_session(
    p: &Pump,
    next_seq: u64,
    t: &Target,
) -> Result<(Channel, Welcome), String> {
    open(p, next_seq, t).await.map_err(|e| e.reason)
}

/// TCP, TLS (client certificate, ALPN `pumpward-device/1`), hello, welcome.
async fn open(p: &Pump, next_seq: u64, t: &Target) -> Result<(Channel, Welcome), OpenError> {
    let tcp = tokio::time::timeout(t.timeout, TcpStream::connect(t.addr))
        .await
        .map_err(|_| anyhow!("TCP connect timed out"))??;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(
        t.timeout,
        TlsConnector::from(p.tls.clone()).connect(t.name.clone(), tcp),
    )
    .await
    .map_err(|_| anyhow!("TLS handshake timed out"))??;
    if tls.get_ref().1.alpn_protocol() != Some(DEVICE_ALPN) {
        return Err(anyhow!("the gateway did not select pumpward-device/1").into());
    }
    let mut ch = Framed::new(tls, FrameDecoder::new());
    send(
        &mut ch,
        &PumpMessage::Hello(hello(p, next_seq)),
        message::PROTOCOL_VERSION,
    )
    .await?;
    let deadline = tokio::time::Instant::now() + t.timeout;
    loop {
        let frame = tokio::time::timeout_at(deadline, ch.next())
            .await
            .map_err(|_| anyhow!("no welcome in time"))?;
        let payload = match frame {
            None => return Err(anyhow!("closed before welcome").into()),
            Some(r) => r?,
        };
        match message::parse_gateway_message(&payload, None)? {
            GatewayMessage::Welcome(w) => return Ok((ch, w)),
            GatewayMessage::Refusal(r) => {
                return Err(OpenError {
                    reason: format!("refused before welcome: {} ({})", r.code, r.reason),
                    retry_after: r.retry_after_s.map(|s| Duration::from_secs(s.into())),
                })
            }
            _ => {}
        }
    }
}

pub fn heartbeat(uptime: Duration) -> PumpMessage {
    PumpMessage::Heartbeat(Heartbeat {
        battery_pct: 90,
        on_mains: Some(true),
        infusion: InfusionState::Idle,
        library_version: None,
        uptime_s: uptime.as_secs(),
        queue_depth: 0,
        dropped_events: 0,
    })
}

/// An idle session: heartbeats at the gateway's interval (the first one
/// after a random fraction of it, as independent pumps would), everything
/// the gateway sends read and ignored. Returns why it ended and whether the
/// benchmark asked it to stop.
async fn idle(
    ch: &mut Channel,
    w: &Welcome,
    rng: &mut SplitMix64,
    stop: &mut watch::Receiver<bool>,
) -> (String, Option<Duration>, bool) {
    let every = Duration::from_secs(u64::from(w.heartbeat_interval_s.clamp(5, 3600)));
    let started = Instant::now();
    let mut next = tokio::time::Instant::now() + every.mul_f64(0.5 + 0.5 * rng.next_f64());
    loop {
        tokio::select! {
            _ = stop.changed() => return ("stopped".into(), None, true),
            _ = tokio::time::sleep_until(next) => {
                if let Err(e) = send(ch, &heartbeat(started.elapsed()), w.version).await {
                    return (format!("heartbeat: {e}"), None, false);
                }
                next += every;
            }
            f = ch.next() => match f {
                None => return ("closed by the gateway".into(), None, false),
                Some(Err(e)) => return (format!("read: {e}"), None, false),
                Some(Ok(p)) => {
                    if let Ok(GatewayMessage::Refusal(r)) = message::parse_gateway_message(&p, Some(w.version)) {
                        if r.fatal {
                            return (format!("refused: {}", r.code), r.retry_after_s.map(|s| Duration::from_secs(s.into())), false);
                        }
                    }
                }
            }
        }
    }
}

/// Runs one idle pump until `stop`: opens a session, idles in it, and (if
/// `reconnect`) reconnects after the agent's back-off (`BackoffPolicy`
/// default: 1 s doubling to 5 min, ±20 % jitter, reset after a 60 s session).
pub async fn run_idle(
    p: Arc<Pump>,
    next_seq: u64,
    t: Arc<Target>,
    f: Arc<Fleet>,
    reconnect: bool,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = SplitMix64::new(0x5eed ^ (p.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut backoff = Backoff::new(BackoffPolicy::default(), SplitMix64::new(rng.next_u64()));
    loop {
        if *stop.borrow() {
            return;
        }
        let started = Instant::now();
        let floor = match open(&p, next_seq, &t).await {
            Ok((mut ch, w)) => {
                f.mark_up(p.index);
                let (why, floor, stopped) = idle(&mut ch, &w, &mut rng, &mut stop).await;
                f.mark_down(p.index);
                if stopped {
                    let _ = tokio::time::timeout(Duration::from_secs(2), ch.close()).await;
                    return;
                }
                f.error(format!("{}: session ended: {why}", p.id.asset));
                backoff.session_ended(started.elapsed());
                floor
            }
            Err(e) => {
                f.error(format!("{}: {}", p.id.asset, e.reason));
                e.retry_after
            }
        };
        if !reconnect {
            return;
        }
        let d = backoff.next_delay(floor);
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Event bodies (after `seq` and `at`) cycled through by [`batch_payload`]:
/// the kinds of the protocol's own example batch, 96–289 bytes each.
const EVENT_BODIES: &[&str] = &[
    r#""kind":"infusion_programmed","infusion_id":"inf-{n}","drug":"heparin","rate":{"value":"12.5","unit":"mL/h"},"vtbi":{"value":"250","unit":"mL"},"detail":{"channel":"A"}"#,
    r#""kind":"dose_check","result":"within_limits","drug":"heparin","care_area":"ICU","dose":{"value":"18","unit":"units/kg/h"},"limit":{"value":"25","unit":"units/kg/h"},"limit_kind":"soft_max","infusion_id":"inf-{n}","library_version":"2025.03-2""#,
    r#""kind":"infusion_started","infusion_id":"inf-{n}""#,
    r#""kind":"alarm","alarm":"occlusion","infusion_id":"inf-{n}""#,
    r#""kind":"infusion_paused","infusion_id":"inf-{n}","cause":"alarm""#,
    r#""kind":"infusion_stopped","infusion_id":"inf-{n}","cause":"completed""#,
];

/// An `event_batch` payload of `n` events numbered from `first`.
pub fn batch_payload(first: u64, n: usize, at: &str) -> Vec<u8> {
    let mut s = String::with_capacity(64 + n * 220);
    s.push_str(r#"{"v":1,"type":"event_batch","events":["#);
    for k in 0..n as u64 {
        let seq = first + k;
        if k > 0 {
            s.push(',');
        }
        let body = EVENT_BODIES[(seq % EVENT_BODIES.len() as u64) as usize]
            .replace("{n}", &(seq / EVENT_BODIES.len() as u64).to_string());
        s.push_str(&format!(r#"{{"seq":{seq},"at":"{at}",{body}}}"#));
    }
    s.push_str("]}");
    s.into_bytes()
}

fn now_rfc3339() -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_else(|_| "2026-01-01T00:00:00Z".into())
}

/// Sends `batch` events at a time, the next batch as soon as the previous
/// one is acknowledged, from `go` until `stop`; then waits for the last ack.
pub async fn run_events(
    p: Arc<Pump>,
    next_seq: u64,
    batch: usize,
    t: Arc<Target>,
    f: Arc<Fleet>,
    mut go: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let (mut ch, w) = match open(&p, next_seq, &t).await {
        Ok(x) => x,
        Err(e) => {
            f.error(format!("{}: {}", p.id.asset, e.reason));
            bail!("{}: {}", p.id.asset, e.reason);
        }
    };
    f.mark_up(p.index);
    let v = w.version;
    let batch = batch.clamp(1, w.max_batch_events as usize);
    let mut seq = w.expected_next_seq.max(next_seq);
    while !*go.borrow_and_update() {
        if go.changed().await.is_err() {
            return Ok(());
        }
    }
    let r = async {
        while !*stop.borrow() {
            let payload = batch_payload(seq, batch, &now_rfc3339());
            if payload.len() > w.max_frame_bytes as usize {
                bail!(
                    "a batch of {batch} is {} bytes, over the frame limit",
                    payload.len()
                );
            }
            ch.send(Bytes::from(payload)).await?;
            let last = seq + batch as u64 - 1;
            loop {
                let frame = tokio::time::timeout(Duration::from_secs(120), ch.next())
                    .await
                    .map_err(|_| anyhow!("no ack within 120 s"))?
                    .ok_or_else(|| anyhow!("closed by the gateway"))??;
                match message::parse_gateway_message(&frame, Some(v))? {
                    GatewayMessage::Ack(a) if a.up_to_seq >= last => break,
                    GatewayMessage::Refusal(r) => {
                        f.refusals.fetch_add(1, Ordering::Relaxed);
                        bail!("refused: {} ({})", r.code, r.reason)
                    }
                    _ => {}
                }
            }
            f.acked.fetch_add(batch as u64, Ordering::Relaxed);
            f.batches.fetch_add(1, Ordering::Relaxed);
            f.last_acked[p.index].store(last, Ordering::Relaxed);
            seq = last + 1;
        }
        anyhow::Ok(())
    }
    .await;
    f.mark_down(p.index);
    let _ = tokio::time::timeout(Duration::from_secs(2), ch.close()).await;
    if let Err(e) = &r {
        f.error(format!("{}: {e}", p.id.asset));
    }
    r
}

/// The pump agent's way under a steady load, rather than back to back:
/// events happen at `rate` per second (evenly spaced, the phase spread over
/// the fleet); whatever has queued goes out as one batch (up to the
/// gateway's maximum) as soon as no batch is in flight, as the agent drains
/// its queue. Records, per batch, how long its oldest event waited for the
/// ack.
#[allow(clippy::too_many_arguments)]
pub async fn run_events_at_rate(
    p: Arc<Pump>,
    next_seq: u64,
    rate: f64,
    t: Arc<Target>,
    f: Arc<Fleet>,
    mut go: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let (mut ch, w) = match open(&p, next_seq, &t).await {
        Ok(x) => x,
        Err(e) => {
            f.error(format!("{}: {}", p.id.asset, e.reason));
            bail!("{}: {}", p.id.asset, e.reason);
        }
    };
    f.mark_up(p.index);
    let v = w.version;
    let max = (w.max_batch_events as usize).max(1);
    let mut seq = w.expected_next_seq.max(next_seq);
    while !*go.borrow_and_update() {
        if go.changed().await.is_err() {
            return Ok(());
        }
    }
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    // Spread the pumps' phases so that the fleet's events are even in time.
    let phase = period.mul_f64((p.index as f64 * 0.618_033_988_7).fract());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // When each queued event happened; the in-flight batch's oldest.
    let mut queued: std::collections::VecDeque<Instant> = Default::default();
    let mut in_flight: Option<(u64, usize, Instant)> = None;
    let mut delays = Vec::new();
    let r = async {
        loop {
            if in_flight.is_none() && !queued.is_empty() {
                let n = queued.len().min(max);
                let payload = batch_payload(seq, n, &now_rfc3339());
                if payload.len() > w.max_frame_bytes as usize {
                    bail!("a batch of {n} is {} bytes, over the frame limit", payload.len());
                }
                let oldest = queued[0];
                queued.drain(..n);
                ch.send(Bytes::from(payload)).await?;
                in_flight = Some((seq + n as u64 - 1, n, oldest));
            }
            if *stop.borrow() && in_flight.is_none() {
                break;
            }
            tokio::select! {
                _ = tick.tick(), if !*stop.borrow() => queued.push_back(Instant::now()),
                frame = tokio::time::timeout(Duration::from_secs(120), ch.next()), if in_flight.is_some() => {
                    let frame = frame
                        .map_err(|_| anyhow!("no ack within 120 s"))?
                        .ok_or_else(|| anyhow!("closed by the gateway"))??;
                    match message::parse_gateway_message(&frame, Some(v))? {
                        GatewayMessage::Ack(a) => {
                            if let Some((last, n, oldest)) = in_flight {
                                if a.up_to_seq >= last {
                                    let now = Instant::now();
                                    delays.push((
                                        now.duration_since(f.epoch).as_millis() as u32,
                                        now.duration_since(oldest).as_micros().min(u32::MAX as u128) as u32,
                                    ));
                                    f.acked.fetch_add(n as u64, Ordering::Relaxed);
                                    f.batches.fetch_add(1, Ordering::Relaxed);
                                    f.last_acked[p.index].store(last, Ordering::Relaxed);
                                    seq = last + 1;
                                    in_flight = None;
                                }
                            }
                        }
                        GatewayMessage::Refusal(r) => {
                            f.refusals.fetch_add(1, Ordering::Relaxed);
                            bail!("refused: {} ({})", r.code, r.reason)
                        }
                        _ => {}
                    }
                }
                // Stopping with nothing in flight ends the loop above.
                _ = tokio::time::sleep(Duration::from_millis(50)), if *stop.borrow() => {}
            }
        }
        anyhow::Ok(())
    }
    .await;
    f.ack_delays.lock().expect("lock").extend(delays);
    f.mark_down(p.index);
    let _ = tokio::time::timeout(Duration::from_secs(2), ch.close()).await;
    if let Err(e) = &r {
        f.error(format!("{}: {e}", p.id.asset));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_valid_protocol_messages_and_fit_a_frame() {
        let at = now_rfc3339();
        for n in [1usize, 10, 100, 1000] {
            let p = batch_payload(41, n, &at);
            assert!(
                p.len() <= pumpward_proto::MAX_FRAME_LEN,
                "{n}: {} bytes",
                p.len()
            );
            match message::parse_pump_message(&p, Some(1)) {
                Ok(PumpMessage::EventBatch(b)) => {
                    assert_eq!(b.events.len(), n);
                    assert_eq!(b.events[0].seq, 41);
                    assert_eq!(b.events[n - 1].seq, 41 + n as u64 - 1);
                }
                other => panic!("{n}: {other:?}"),
            }
        }
    }
}
