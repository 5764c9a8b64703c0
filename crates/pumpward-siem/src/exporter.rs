//! One SIEM destination: the producer's side ([`Exporter::enqueue`]) and
//! the delivery task ([`Delivery::run`]) joined by the durable queue.
//!
//! - **The producer never waits for the SIEM.** `enqueue` validates,
//!   formats and appends to the local queue (one `fdatasync`); it takes a
//!   lock that the delivery task holds only for local file operations,
//!   never across network I/O.
//! - **Nothing is dropped silently.** A message the queue cannot take
//!   (queue full, too large, invalid) is refused with an [`EnqueueError`]
//!   and counted (`refused`); the caller still holds the alert in its own
//!   store and can export it again. Refusing rather than spilling keeps
//!   one bounded store and puts the decision where the alert lives.
//! - **In order, at least once.** The delivery task sends the oldest
//!   messages in batches, and removes them from the queue only after the
//!   transport accepted them ([`crate::transport`]). Failures are retried
//!   after capped exponential backoff with jitter, for ever: a SIEM outage
//!   delays, never loses. A crash or restart may send the last accepted
//!   batch again; every message carries its id for deduplication.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::Notify;

use crate::message::{json_body_into, MessageError, SiemMessage};
use crate::queue::{DiskQueue, QueueConfig, QueueError};
use crate::syslog::{rfc5424_into, SyslogOptions};
use crate::transport::{ConfigError, Link, TlsSettings, WebhookSettings};

/// The largest UDP payload over IPv4 (65,535 − 8 − 20).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// Where messages go and in which format.
#[derive(Debug, Clone)]
pub enum Destination {
    /// RFC 5424 over UDP, one message per datagram (best effort: see
    /// [`crate::transport`]).
    SyslogUdp {
        /// The collector.
        addr: std::net::SocketAddr,
        /// Header fields and body format.
        options: SyslogOptions,
    },
    /// RFC 5424 over TLS with octet-counting framing (RFC 5425).
    SyslogTls {
        /// The collector and its TLS settings.
        tls: TlsSettings,
        /// Header fields and body format.
        options: SyslogOptions,
    },
    /// The JSON body POSTed over HTTPS, signed ([`crate::signature`]).
    Webhook(WebhookSettings),
}

impl Destination {
    /// The bytes queued and sent for `msg` (valid): the RFC 5424 message
    /// for syslog, the JSON body for a webhook.
    pub fn render(&self, msg: &SiemMessage) -> String {
        let mut out = String::with_capacity(512);
        match self {
            Destination::SyslogUdp { options, .. } | Destination::SyslogTls { options, .. } => {
                rfc5424_into(msg, options, &mut out)
            }
            Destination::Webhook(_) => json_body_into(msg, &mut out),
        }
        out
    }
}

/// Backoff between failed attempts: the n-th wait is drawn uniformly from
/// [c/2, c] with c = min(`max`, `initial` × 2ⁿ), so many exporters
/// recovering together do not hit the collector in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first ceiling (default 250 ms).
    pub initial: Duration,
    /// The cap (default 30 s).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The ceiling for attempt `n` (0-based).
    pub fn ceiling(&self, n: u32) -> Duration {
        self.initial
            .checked_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX))
            .map_or(self.max, |d| d.min(self.max))
    }

    /// A jittered wait for attempt `n`.
    pub fn wait(&self, n: u32) -> Duration {
        let c = self.ceiling(n);
        let half = c / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=c - half)
    }
}

/// One destination's settings.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Where and how.
    pub destination: Destination,
    /// The queue's own directory.
    pub queue_dir: PathBuf,
    /// Queue limits.
    pub queue: QueueConfig,
    /// Backoff.
    pub retry: RetryPolicy,
    /// Messages per send (default 256).
    pub batch: usize,
    /// The longest rendered message (default 8 KiB, rsyslog's default
    /// `maxMessageSize`; a UDP datagram must fit as well).
    pub max_message_bytes: usize,
}

impl ExportConfig {
    /// Defaults for everything but the destination and the directory.
    pub fn new(destination: Destination, queue_dir: impl Into<PathBuf>) -> Self {
        Self {
            destination,
            queue_dir: queue_dir.into(),
            queue: QueueConfig::default(),
            retry: RetryPolicy::default(),
            batch: 256,
            max_message_bytes: 8 * 1024,
        }
    }
}

/// Counters, read with [`Exporter::metrics`].
#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    retried: AtomicU64,
    refused: AtomicU64,
    enqueued: AtomicU64,
    queued: AtomicU64,
}

/// A snapshot of one destination's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportMetrics {
    /// Messages the transport accepted.
    pub delivered: u64,
    /// Failed delivery attempts (each is retried after a backoff).
    pub retried: u64,
    /// Messages refused by `enqueue` (full, too large, invalid, disk error).
    pub refused: u64,
    /// Messages accepted by `enqueue` since open.
    pub enqueued: u64,
    /// Messages waiting in the queue now.
    pub queued: u64,
}

/// Why `enqueue` refused a message. Every refusal is counted.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The message breaks [`SiemMessage::validate`].
    #[error("message refused: {0}")]
    Invalid(#[from] MessageError),
    /// The rendered message is longer than `max_message_bytes`.
    #[error("message is {bytes} bytes once formatted; at most {max}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The queue is full or the disk failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Opening a destination failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Bad settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The queue cannot be opened.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

struct Shared {
    queue: Mutex<DiskQueue>,
    counters: Counters,
    wake: Notify,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, DiskQueue> {
        // A panic while holding the lock cannot leave the queue
        // inconsistent with the disk: every method either completes its
        // file operation or returns before changing memory.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The producer's handle (cheap to clone).
#[derive(Clone)]
pub struct Exporter {
    shared: Arc<Shared>,
    destination: Arc<Destination>,
    max_message_bytes: usize,
}

/// The delivery task's state; run it with [`Delivery::run`].
pub struct Delivery {
    shared: Arc<Shared>,
    link: Link,
    retry: RetryPolicy,
    batch: usize,
}

impl Exporter {
    /// Opens the queue (recovering what a previous run left) and prepares
    /// the transport; nothing connects until [`Delivery::run`].
    pub fn open(cfg: ExportConfig) -> Result<(Exporter, Delivery), OpenError> {
        let link = match &cfg.destination {
            Destination::SyslogUdp { addr, .. } => Link::udp(*addr),
            Destination::SyslogTls { tls, .. } => Link::tls(tls.clone()),
            Destination::Webhook(w) => Link::webhook(w.clone())?,
        };
        if cfg.batch == 0 {
            return Err(ConfigError("batch must be at least 1".into()).into());
        }
        // A datagram that can never be sent would stall the queue for ever.
        if matches!(cfg.destination, Destination::SyslogUdp { .. })
            && cfg.max_message_bytes > MAX_UDP_PAYLOAD
        {
            return Err(ConfigError(format!(
                "max_message_bytes {} exceeds the largest UDP datagram ({MAX_UDP_PAYLOAD})",
                cfg.max_message_bytes
            ))
            .into());
        }
        let queue = DiskQueue::open(&cfg.queue_dir, cfg.queue)?;
        let recovery = queue.recovery();
        if recovery.torn_bytes > 0 || recovery.stale_logs > 0 {
            tracing::warn!(dir = %cfg.queue_dir.display(), torn_bytes = recovery.torn_bytes,
                stale_logs = recovery.stale_logs, "SIEM queue repaired after an unclean stop");
        }
        let counters = Counters::default();
        counters.queued.store(queue.len() as u64, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue),
            counters,
            wake: Notify::new(),
        });
        Ok((
            Exporter {
                shared: shared.clone(),
                destination: Arc::new(cfg.destination),
                max_message_bytes: cfg.max_message_bytes,
            },
            Delivery {
                shared,
                link,
                retry: cfg.retry,
                batch: cfg.batch,
            },
        ))
    }

    /// Formats `msg` and queues it durably; see the module documentation.
    pub fn enqueue(&self, msg: &SiemMessage) -> Result<(), EnqueueError> {
        let r = self.try_enqueue(msg);
        let c = &self.shared.counters;
        match &r {
            Ok(()) => {
                c.enqueued.fetch_add(1, Ordering::Relaxed);
                c.queued.fetch_add(1, Ordering::Relaxed);
                self.shared.wake.notify_one();
            }
            Err(e) => {
                c.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, id = %msg.id, "SIEM export refused a message");
            }
        }
        r
    }

    fn try_enqueue(&self, msg: &SiemMessage) -> Result<(), EnqueueError> {
        msg.validate()?;
        let bytes = self.destination.render(msg);
        if bytes.len() > self.max_message_bytes {
            return Err(EnqueueError::TooLarge {
                bytes: bytes.len(),
                max: self.max_message_bytes,
            });
        }
        self.shared.queue().push(bytes.as_bytes())?;
        Ok(())
    }

    /// The counters now.
    pub fn metrics(&self) -> ExportMetrics {
        let c = &self.shared.counters;
        ExportMetrics {
            delivered: c.delivered.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            enqueued: c.enqueued.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
        }
    }
}

impl Delivery {
    /// Delivers until `shutdown` resolves (checked between attempts; an
    /// attempt in progress finishes or times out first). What is left stays
    /// queued for the next run.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let shared = self.shared.clone();
            let limit = self.batch;
            let batch = tokio::task::spawn_blocking(move || shared.queue().peek(limit)).await;
            let batch = match batch {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "SIEM queue unreadable; retrying");
                    failures = failures.saturating_add(1);
                    if self.pause(failures, &mut shutdown).await {
                        return;
                    }
                    continue;
                }
                Err(_) => return,
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = self.shared.wake.notified() => continue,
                    _ = &mut shutdown => return,
                }
            }
            let result = self.link.deliver(&batch).await;
            let accepted = match &result {
                Ok(()) => batch.len(),
                Err(e) => e.accepted,
            };
            if accepted > 0 {
                let shared = self.shared.clone();
                let acked = tokio::task::spawn_blocking(move || shared.queue().ack(accepted)).await;
                match acked {
                    Ok(Ok(())) => {
                        let c = &self.shared.counters;
                        c.delivered.fetch_add(accepted as u64, Ordering::Relaxed);
                        c.queued.fetch_sub(accepted as u64, Ordering::Relaxed);
                    }
                    // Not recorded: these are sent again (at least once).
                    Ok(Err(e)) => tracing::error!(error = %e, "SIEM queue ack failed"),
                    Err(_) => return,
                }
            }
            match result {
                Ok(()) => failures = 0,
                Err(e) => {
                    self.shared.counters.retried.fetch_add(1, Ordering::Relaxed);
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, attempt = failures, "SIEM delivery failed; will retry");
                    if self.pause(failures, &mut shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits the backoff for `failures`; true if shutdown came first.
    async fn pause(
        &self,
        failures: u32,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(self.retry.wait(failures - 1)) => false,
            _ = shutdown => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn alert(fields: usize, value: &str) -> SiemMessage {
        SiemMessage {
            id: "a-1".into(),
            time: time::OffsetDateTime::UNIX_EPOCH,
            severity: Severity::Medium,
            host: "pw1".into(),
            app_name: "pumpward".into(),
            msg_id: "alert".into(),
            signature_id: "test.rule".into(),
            name: "Test".into(),
            fields: (0..fields)
                .map(|i| (format!("f{i}"), value.to_owned()))
                .collect(),
        }
    }

    fn udp_exporter(dir: &std::path::Path, queue: QueueConfig) -> Exporter {
        let mut cfg = ExportConfig::new(
            Destination::SyslogUdp {
                addr: ([127, 0, 0, 1], 9).into(),
                options: SyslogOptions::default(),
            },
            dir,
        );
        cfg.queue = queue;
        Exporter::open(cfg).unwrap().0
    }

    #[test]
    fn refusals_are_counted_and_change_nothing() {
        let d = tempfile::tempdir().unwrap();
        let cap = QueueConfig {
            max_pending_bytes: (1 << 20) + 8 + 2000,
            compact_bytes: 1 << 20,
        };
        let exp = udp_exporter(d.path(), cap);
        // Invalid.
        let mut bad = alert(1, "x");
        bad.host = "has space".into();
        assert!(matches!(exp.enqueue(&bad), Err(EnqueueError::Invalid(e)) if e.field == "host"));
        // Too large once formatted (8 KiB default).
        assert!(matches!(
            exp.enqueue(&alert(3, &"v".repeat(4000))),
            Err(EnqueueError::TooLarge { max: 8192, .. })
        ));
        // Fill the queue, then one more is refused as full.
        let mut n = 0;
        let full = loop {
            match exp.enqueue(&alert(1, &"v".repeat(3000))) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
            assert!(n < 1000, "the queue never filled");
        };
        assert!(matches!(full, EnqueueError::Queue(QueueError::Full { .. })));
        let m = exp.metrics();
        assert_eq!((m.refused, m.enqueued, m.queued), (3, n, n));
        // Refusals leave the queue as it was: a reopen finds the n accepted.
        drop(exp);
        let again = udp_exporter(d.path(), cap);
        assert_eq!(again.metrics().queued, n);
    }

    #[test]
    fn a_udp_limit_beyond_a_datagram_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = ExportConfig::new(
            Destination::SyslogUdp {
                addr: ([127, 0, 0, 1], 9).into(),
                options: SyslogOptions::default(),
            },
            d.path(),
        );
        cfg.max_message_bytes = MAX_UDP_PAYLOAD + 1;
        assert!(matches!(Exporter::open(cfg), Err(OpenError::Config(_))));
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_inside_it() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let ceilings: Vec<u128> = (0..7).map(|n| p.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(2));
        for n in 0..40 {
            let w = p.wait(n);
            assert!(w >= p.ceiling(n) / 2 && w <= p.ceiling(n), "{n}: {w:?}");
        }
    }
}
