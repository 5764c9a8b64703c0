//! (issue 4) Rolling a new drug library out to the whole benchmark fleet
//! through the real server: the gateway's rollout driver announces it to
//! every connected pump, each pump fetches the signed envelope over mutual
//! TLS from the gateway (`GET /device/v1/library/<sha256>`), checks its
//! digest, and reports `library_installed` in an event batch, which the
//! server turns into the pump's rollout state. The figure is the time from
//! creating the rollout to the store showing every pump installed.
//!
//! The pumps here do not verify the COSE signature or run dose checks (that
//! is the pump's own CPU, measured by the druglib benches); they do
//! everything that loads the server.

use crate::device::{Channel, Fleet, Pump, Target};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pumpward_proto::message::{
    self, Command, CommandResult, CommandStatus, EventBatch, EventKind, GatewayMessage, PumpEvent,
    PumpMessage,
};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

/// What the pumps of a rollout run did, and the fetches they may have in
/// flight at once.
pub struct Counts {
    /// Envelopes fetched and matching their announced digest.
    pub fetched: AtomicUsize,
    /// `library_installed` events the gateway acknowledged.
    pub installed: AtomicUsize,
    /// Fetch attempts that failed (each is retried, up to five times).
    pub fetch_failures: AtomicUsize,
    /// Fetches in flight at most: 10,000 sessions and their fetches share
    /// this machine's limit of 20,000 open files, in the load generator and
    /// in the server alike.
    slots: tokio::sync::Semaphore,
}

impl Counts {
    pub fn new(max_fetches: usize) -> Counts {
        Counts {
            fetched: AtomicUsize::new(0),
            installed: AtomicUsize::new(0),
            fetch_failures: AtomicUsize::new(0),
            slots: tokio::sync::Semaphore::new(max_fetches),
        }
    }
}

/// A fetch as a pump would retry it: up to five attempts, one to five
/// seconds apart.
async fn fetch_with_retries(
    t: &Target,
    tls: &Arc<ClientConfig>,
    digest: &str,
    counts: &Counts,
) -> Result<Vec<u8>> {
    let mut attempt = 0;
    loop {
        let r = {
            let _slot = counts.slots.acquire().await?;
            fetch_envelope(t, tls.clone(), digest).await
        };
        match r {
            Ok(b) => return Ok(b),
            Err(e) => {
                counts.fetch_failures.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                if attempt == 5 {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_secs(attempt)).await;
            }
        }
    }
}

/// `GET /device/v1/library/<digest>` over a new mutually authenticated TLS
/// connection (ALPN http/1.1); returns the body once its SHA-256 is the
/// digest.
pub async fn fetch_envelope(t: &Target, tls: Arc<ClientConfig>, digest: &str) -> Result<Vec<u8>> {
    let tcp = tokio::time::timeout(t.timeout, TcpStream::connect(t.addr))
        .await
        .map_err(|_| anyhow!("TCP connect timed out"))??;
    let mut s = tokio::time::timeout(
        t.timeout,
        TlsConnector::from(tls).connect(t.name.clone(), tcp),
    )
    .await
    .map_err(|_| anyhow!("TLS handshake timed out"))??;
    let host = match &t.name {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        _ => t.addr.ip().to_string(),
    };
    s.write_all(
        format!(
            "GET /device/v1/library/{digest} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut raw = Vec::new();
    // A peer that closes without close_notify ends the read with an error
    // after the whole response: judged by Content-Length below.
    let _ = tokio::time::timeout(t.timeout, s.read_to_end(&mut raw)).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP response head"))?;
    let head = std::str::from_utf8(&raw[..split]).context("response head")?;
    let body = &raw[split + 4..];
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{}", head.lines().next().unwrap_or_default());
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .ok_or_else(|| anyhow!("no Content-Length"))?;
    let body = body.get(..len).ok_or_else(|| anyhow!("short body"))?;
    let got = crate::util::sha256_hex(body);
    if got != digest {
        bail!("the envelope's SHA-256 {got} is not the announced {digest}");
    }
    Ok(body.to_vec())
}

async fn send(ch: &mut Channel, m: &PumpMessage, v: u16) -> Result<()> {
    ch.send(Bytes::from(m.to_payload(v)?)).await?;
    Ok(())
}

/// One pump for the length of the run: connects, heartbeats, and installs
/// what it is announced (fetch, then a `library_installed` event and the
/// command's result). Reconnects after a failure, one second later.
pub async fn run_pump(
    p: Arc<Pump>,
    http: Arc<ClientConfig>,
    mut next_seq: u64,
    t: Arc<Target>,
    f: Arc<Fleet>,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<bool>,
) {
    let mut installed: Option<u64> = None;
    let mut done = false;
    while !*stop.borrow() {
        let (mut ch, w) = match crate::device::open_session(&p, next_seq, &t).await {
            Ok(x) => x,
            Err(e) => {
                f.error(format!("{}: {e}", p.id.asset));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        f.mark_up(p.index);
        let every = Duration::from_secs(u64::from(w.heartbeat_interval_s.clamp(5, 3600)));
        let mut hb = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let why = loop {
            tokio::select! {
                _ = stop.changed() => break None,
                _ = hb.tick() => {
                    if let Err(e) = send(&mut ch, &crate::device::heartbeat(f.epoch.elapsed()), w.version).await {
                        break Some(format!("heartbeat: {e}"));
                    }
                }
                frame = ch.next() => {
                    let payload = match frame {
                        None => break Some("closed by the gateway".into()),
                        Some(Err(e)) => break Some(format!("read: {e}")),
                        Some(Ok(p)) => p,
                    };
                    match message::parse_gateway_message(&payload, Some(w.version)) {
                        Ok(GatewayMessage::Ack(a)) => {
                            if let Some(seq) = installed {
                                if a.up_to_seq >= seq && !done {
                                    done = true;
                                    counts.installed.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Ok(GatewayMessage::Command(c)) => {
                            let (status, detail) = match &c.command {
                                Command::DrugLibraryAvailable { version, digest, .. } => {
                                    match fetch_with_retries(&t, &http, digest, &counts).await {
                                        Ok(_) => {
                                            counts.fetched.fetch_add(1, Ordering::Relaxed);
                                            let seq = next_seq;
                                            next_seq += 1;
                                            installed = Some(seq);
                                            let batch = PumpMessage::EventBatch(EventBatch {
                                                events: vec![PumpEvent {
                                                    seq,
                                                    at: time::OffsetDateTime::now_utc(),
                                                    kind: EventKind::LibraryInstalled {
                                                        version: version.clone(),
                                                        digest: digest.clone(),
                                                    },
                                                    detail: BTreeMap::new(),
                                                }],
                                            });
                                            if let Err(e) = send(&mut ch, &batch, w.version).await {
                                                break Some(format!("event batch: {e}"));
                                            }
                                            (CommandStatus::Completed, None)
                                        }
                                        Err(e) => {
                                            f.error(format!("{}: fetch: {e}", p.id.asset));
                                            (CommandStatus::Failed, Some(e.to_string().chars().take(200).collect()))
                                        }
                                    }
                                }
                                _ => (CommandStatus::Completed, None),
                            };
                            let r = PumpMessage::CommandResult(CommandResult { id: c.id, status, detail });
                            if let Err(e) = send(&mut ch, &r, w.version).await {
                                break Some(format!("command result: {e}"));
                            }
                        }
                        Ok(GatewayMessage::Refusal(r)) if r.fatal => break Some(format!("refused: {}", r.code)),
                        _ => {}
                    }
                }
            }
        };
        f.mark_down(p.index);
        match why {
            None => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ch.close()).await;
                return;
            }
            Some(e) => f.error(format!("{}: session ended: {e}", p.id.asset)),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}
