//! The SIEM feed of a running server: the `[[siem]]` sinks of the
//! configuration, each an `pumpward_siem::Exporter` with its durable queue
//! under `<data-dir>/siem/<name>/`, fed with every newly raised alert, every
//! alert state change (acknowledged, resolved, false positive) and, where a
//! sink asks for them, security events from a minimum severity on.
//!
//! Why it is shaped like this:
//! - **Detection never waits for the SIEM, nor for the SIEM's disk.** The
//!   producers ([`SiemOutput::alerts_raised`], [`SiemOutput::alert_changed`],
//!   [`SiemOutput::event_observed`]) only build the message and hand it to a
//!   bounded channel with `try_send`; one writer task appends to the queues
//!   (an `fdatasync` each) off the async threads. A full channel or a full
//!   queue is counted per sink (`pumpward_siem_dropped_total`) and logged;
//!   the alert itself stays in the store.
//! - **Delivery is the exporter's**: in order, at least once, retried with
//!   backoff for ever; what is queued survives a restart and is sent first.
//! - **Graceful shutdown drains what it can**: the writer enqueues what was
//!   handed over, delivery gets a grace period to empty the queues, and what
//!   is left is sent after the next start.
//! - A sink is checked twice: [`check_sinks`] when the configuration is
//!   read (pure: names, destinations, keys that belong together), and
//!   [`SiemOutput::start`] when the server starts (files readable, PEMs
//!   valid, queue directory usable). Either refuses the start with the sink
//!   and key at fault.
//!
//! The user documentation is `docs/SIEM.md`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use pumpward_detect::event::BodyKind;
use pumpward_detect::{Alert, AlertState, Event};
use pumpward_siem::queue::QueueConfig;
use pumpward_siem::syslog::{BodyFormat, SyslogOptions};
use pumpward_siem::transport::{client_config, TlsSettings, WebhookSettings};
use pumpward_siem::{
    Destination, ExportConfig, ExportMetrics, Exporter, RetryPolicy, Severity, SiemMessage,
};
use pumpward_store::StoredAlert;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Messages handed over but not yet queued on disk.
const HANDOVER: usize = 4096;
/// The longest evidence or event member copied into a message; the whole
/// alert is in Pumpward, the SIEM gets a summary that fits any collector.
const SUMMARY_BYTES: usize = 1024;

/// A message body format for syslog sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkFormat {
    /// ArcSight Common Event Format.
    Cef,
    /// Pumpward's JSON body (`pumpward.siem/1`).
    Json,
}

/// One `[[siem]]` table of the configuration file. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Names the sink in logs and metrics and its queue directory:
    /// 1–32 of `[a-z0-9_-]`, starting with a letter or digit.
    pub name: String,
    /// `syslog+tls://host:port` (RFC 5425, port 6514 if omitted),
    /// `syslog+udp://host:port` (RFC 5426, port 514 if omitted) or an
    /// `https://` webhook URL.
    pub destination: String,
    /// `cef` (default for syslog) or `json` (the only body of a webhook).
    pub format: Option<SinkFormat>,
    /// The CA that issued the collector's or receiver's certificate
    /// (required for TLS and webhooks; nothing else is trusted).
    pub ca_file: Option<PathBuf>,
    /// Our client certificate, for collectors that verify their peers.
    pub client_cert_file: Option<PathBuf>,
    /// Its key (PKCS#8, SEC1 or PKCS#1 PEM).
    pub client_key_file: Option<PathBuf>,
    /// The name the collector's certificate carries, when it is not the
    /// destination's host.
    pub server_name: Option<String>,
    /// The webhook's HMAC key (the whole file's bytes; required for webhooks).
    pub hmac_secret_file: Option<PathBuf>,
    /// Send alerts: raised, and each state change (default true).
    #[serde(default = "yes")]
    pub alerts: bool,
    /// Also send security events of at least this severity
    /// (`info`, `low`, `medium`, `high`, `critical`); none when absent.
    pub events_min_severity: Option<String>,
    /// The longest wait between delivery attempts, in seconds (default 30).
    pub retry_max_seconds: Option<u64>,
    /// How much undelivered data the queue may hold, in MiB (default 64).
    pub queue_max_mib: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Where a sink sends, as parsed from `destination`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Syslog over TLS.
    SyslogTls { host: String, port: u16 },
    /// Syslog over UDP.
    SyslogUdp { host: String, port: u16 },
    /// An HTTPS webhook.
    Webhook { url: String },
}

/// A sink that cannot be used: which one, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[[siem]] {sink:?}: {key}: {problem}")]
pub struct SinkError {
    /// The sink's name (or `#n` when the name itself is at fault).
    pub sink: String,
    /// The key at fault.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
}

/// Parses a `destination`.
pub fn parse_destination(s: &str) -> Result<Target, String> {
    if let Some(rest) = s.strip_prefix("syslog+tls://") {
        let (host, port) = host_port(rest, 6514)?;
        Ok(Target::SyslogTls { host, port })
    } else if let Some(rest) = s.strip_prefix("syslog+udp://") {
        let (host, port) = host_port(rest, 514)?;
        Ok(Target::SyslogUdp { host, port })
    } else if let Some(rest) = s.strip_prefix("https://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("{s:?}: the URL needs a host (and no user info)"));
        }
        host_port(authority, 443)?;
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{s:?}: the URL contains a space or control character"
            ));
        }
        Ok(Target::Webhook { url: s.to_owned() })
    } else {
        Err(format!(
            "{s:?}: use syslog+tls://host:port, syslog+udp://host:port or an https:// URL"
        ))
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; nothing after.
fn host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{s:?}: an IPv6 address needs its closing ]"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{s:?}: {h:?} is not an IPv6 address"));
        }
        match after {
            "" => (h, None),
            p => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(format!("{s:?}: unexpected {p:?} after the address")),
            },
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{s:?}: the host is missing"));
    }
    if let Some((at, c)) = host
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
    {
        return Err(format!(
            "{s:?}: character {c:?} at {at} cannot be in a host name"
        ));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("{s:?}: port {p:?} is not 1–65535")),
        },
    };
    Ok((host.to_owned(), port))
}

/// Parses a severity name as the configuration spells it.
pub fn parse_severity(s: &str) -> Option<Severity> {
    Severity::ALL.into_iter().find(|v| v.as_str() == s)
}

fn valid_name(n: &str) -> bool {
    (1..=32).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl SinkConfig {
    /// Everything that can be checked without touching files or the
    /// network; returns the parsed destination.
    pub fn check(&self) -> Result<Target, SinkError> {
        let fail = |key, problem: String| SinkError {
            sink: self.name.clone(),
            key,
            problem,
        };
        if !valid_name(&self.name) {
            return Err(fail(
                "name",
                format!(
                    "{:?} is not 1–32 of a-z, 0-9, _ and - starting with a letter or digit",
                    self.name
                ),
            ));
        }
        let target = parse_destination(&self.destination).map_err(|e| fail("destination", e))?;
        let scheme = match &target {
            Target::SyslogTls { .. } => "syslog+tls",
            Target::SyslogUdp { .. } => "syslog+udp",
            Target::Webhook { .. } => "https webhooks",
        };
        let required = |key, present: bool| {
            if present {
                Ok(())
            } else {
                Err(fail(key, format!("required for {scheme}")))
            }
        };
        let absent = |key, present: bool| {
            if present {
                Err(fail(key, format!("does not apply to {scheme}")))
            } else {
                Ok(())
            }
        };
        let client_auth = self.client_cert_file.is_some() || self.client_key_file.is_some();
        match &target {
            Target::SyslogTls { .. } => {
                required("ca_file", self.ca_file.is_some())?;
                absent("hmac_secret_file", self.hmac_secret_file.is_some())?;
            }
            Target::SyslogUdp { .. } => {
                absent("ca_file", self.ca_file.is_some())?;
                absent("client_cert_file", self.client_cert_file.is_some())?;
                absent("client_key_file", self.client_key_file.is_some())?;
                absent("server_name", self.server_name.is_some())?;
                absent("hmac_secret_file", self.hmac_secret_file.is_some())?;
            }
            Target::Webhook { .. } => {
                required("ca_file", self.ca_file.is_some())?;
                required("hmac_secret_file", self.hmac_secret_file.is_some())?;
                absent("server_name", self.server_name.is_some())?;
                if self.format == Some(SinkFormat::Cef) {
                    return Err(fail("format", "a webhook's body is always json".into()));
                }
            }
        }
        if client_auth {
            required("client_cert_file", self.client_cert_file.is_some())?;
            required("client_key_file", self.client_key_file.is_some())?;
        }
        if let Some(n) = &self.server_name {
            if n.is_empty() || n.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(fail("server_name", format!("{n:?} is not a host name")));
            }
        }
        if let Some(s) = &self.events_min_severity {
            if parse_severity(s).is_none() {
                return Err(fail(
                    "events_min_severity",
                    format!("{s:?}: use info, low, medium, high or critical"),
                ));
            }
        }
        if !self.alerts && self.events_min_severity.is_none() {
            return Err(fail(
                "alerts",
                "false with no events_min_severity: the sink would send nothing".into(),
            ));
        }
        if let Some(s) = self.retry_max_seconds {
            if !(1..=3600).contains(&s) {
                return Err(fail("retry_max_seconds", format!("{s}: use 1–3600")));
            }
        }
        if let Some(m) = self.queue_max_mib {
            if !(1..=4096).contains(&m) {
                return Err(fail("queue_max_mib", format!("{m}: use 1–4096")));
            }
        }
        Ok(target)
    }

    /// What the sink wants sent.
    fn wants(&self) -> Wants {
        Wants {
            alerts: self.alerts,
            events_from: self.events_min_severity.as_deref().and_then(parse_severity),
        }
    }
}

/// Checks every sink and that no two share a name (they would share a
/// queue).
pub fn check_sinks(sinks: &[SinkConfig]) -> Result<(), SinkError> {
    for (i, s) in sinks.iter().enumerate() {
        s.check()?;
        if sinks[..i].iter().any(|o| o.name == s.name) {
            return Err(SinkError {
                sink: s.name.clone(),
                key: "name",
                problem: format!("sink #{} has the same name", i + 1),
            });
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wants {
    alerts: bool,
    events_from: Option<Severity>,
}

/// What a message is, for routing to the sinks that want it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Alert,
    Event(Severity),
}

impl Wants {
    fn takes(&self, k: Kind) -> bool {
        match k {
            Kind::Alert => self.alerts,
            Kind::Event(s) => self.events_from.is_some_and(|from| s >= from),
        }
    }
}

fn severity(s: pumpward_detect::Severity) -> Severity {
    match s {
        pumpward_detect::Severity::Low => Severity::Low,
        pumpward_detect::Severity::Medium => Severity::Medium,
        pumpward_detect::Severity::High => Severity::High,
        pumpward_detect::Severity::Critical => Severity::Critical,
    }
}

/// How urgent a security event is on its own (an alert is how urgent its
/// rule says). A refused connection is common (a misconfigured pump); a
/// certificate used wrongly or a KEV-listed finding is not.
pub fn event_severity(kind: BodyKind) -> Severity {
    match kind {
        BodyKind::CertificateAnomaly | BodyKind::KevAdded => Severity::High,
        BodyKind::PolicyViolation
        | BodyKind::UnknownDevice
        | BodyKind::VulnerabilityAffected
        | BodyKind::LibraryRejected
        | BodyKind::FirmwareChanged => Severity::Medium,
        BodyKind::AuthFailure | BodyKind::MaintenanceLogin => Severity::Low,
        BodyKind::InfusionProgrammed
        | BodyKind::DoseCheck
        | BodyKind::Alarm
        | BodyKind::LibraryInstalled
        | BodyKind::GatewayConnection
        | BodyKind::FlowObserved
        | BodyKind::AdminAudit => Severity::Info,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, marked with
/// `…` when cut.
fn summary(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn alert_fields(a: &Alert, state: AlertState) -> Vec<(String, String)> {
    let mut f = vec![
        ("alert_id".to_owned(), a.id.clone()),
        ("rule".to_owned(), a.key.rule.clone()),
        ("subject".to_owned(), summary(&a.key.subject, SUMMARY_BYTES)),
        ("state".to_owned(), state.as_str().to_owned()),
    ];
    if let Some(x) = &a.asset_id {
        f.push(("asset_id".into(), x.as_str().to_owned()));
    }
    if let Some(x) = &a.care_area {
        f.push(("care_area".into(), summary(x, SUMMARY_BYTES)));
    }
    if let Some(x) = &a.csf {
        f.push(("csf".into(), summary(x, SUMMARY_BYTES)));
    }
    f.push((
        "evidence".into(),
        summary(&a.evidence.to_string(), SUMMARY_BYTES),
    ));
    f.push(("events".into(), summary(&a.events.join(","), SUMMARY_BYTES)));
    f
}

/// The message for a newly raised alert; its id is the alert's id.
pub fn alert_message(a: &Alert, host: &str) -> SiemMessage {
    SiemMessage {
        id: a.id.clone(),
        time: a.raised_at,
        severity: severity(a.severity),
        host: host.to_owned(),
        app_name: "pumpward".into(),
        msg_id: "alert".into(),
        signature_id: a.key.rule.clone(),
        name: summary(&a.title, SUMMARY_BYTES),
        fields: alert_fields(a, AlertState::New),
    }
}

/// The message for an alert's state change, at `at`; its id is
/// `<alert id>:<state>`, since a state is entered once.
pub fn alert_change_message(c: &StoredAlert, host: &str, at: OffsetDateTime) -> SiemMessage {
    let a = &c.case.alert;
    let mut fields = alert_fields(a, c.case.state);
    if let Some(o) = &c.case.owner {
        fields.insert(4, ("owner".into(), summary(o, SUMMARY_BYTES)));
    }
    SiemMessage {
        id: format!("{}:{}", a.id, c.case.state.as_str()),
        time: at,
        severity: severity(a.severity),
        host: host.to_owned(),
        app_name: "pumpward".into(),
        msg_id: "alert_update".into(),
        signature_id: a.key.rule.clone(),
        name: summary(&format!("{} ({})", a.title, c.case.state), SUMMARY_BYTES),
        fields,
    }
}

/// The message for a security event: the envelope's facts, then the body's
/// members (text as is, anything else as JSON).
pub fn event_message(ev: &Event, host: &str) -> SiemMessage {
    let kind = ev.body.kind();
    let mut fields = vec![("source".to_owned(), ev.source.as_str().to_owned())];
    if let Some(x) = &ev.asset_id {
        fields.push(("asset_id".into(), x.as_str().to_owned()));
    }
    if let Some(x) = &ev.care_area {
        fields.push(("care_area".into(), summary(x, SUMMARY_BYTES)));
    }
    if let Ok(serde_json::Value::Object(members)) = serde_json::to_value(&ev.body) {
        for (k, v) in members {
            if k == "kind" || fields.len() >= pumpward_siem::message::MAX_FIELDS {
                continue;
            }
            // Body members are snake_case names; one that a format reserves
            // or that is already taken is prefixed instead of dropped.
            let key = if pumpward_siem::message::valid_field_key(&k)
                && !pumpward_siem::message::RESERVED_KEYS.contains(&k.as_str())
                && !fields.iter().any(|(f, _)| *f == k)
            {
                k
            } else {
                format!(
                    "body_{}",
                    k.chars()
                        .filter(char::is_ascii_alphanumeric)
                        .take(20)
                        .collect::<String>()
                )
            };
            if fields.iter().any(|(f, _)| *f == key) {
                continue;
            }
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            fields.push((key, summary(&text, SUMMARY_BYTES)));
        }
    }
    SiemMessage {
        id: summary(&ev.id, SUMMARY_BYTES),
        time: ev.occurred_at,
        severity: event_severity(kind),
        host: host.to_owned(),
        app_name: "pumpward".into(),
        msg_id: "event".into(),
        signature_id: kind.as_str().to_owned(),
        name: format!(
            "{} ({})",
            kind.as_str().replace('_', " "),
            ev.source.as_str()
        ),
        fields,
    }
}

/// This machine's name for RFC 5424 HOSTNAME and CEF `dvchost`: the
/// kernel's host name, reduced to what the header allows.
pub fn local_host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| ('!'..='~').contains(c))
        .take(255)
        .collect();
    if name.is_empty() {
        "pumpward".into()
    } else {
        name
    }
}

/// One sink while the server runs.
struct Sink {
    name: String,
    exporter: Exporter,
    wants: Wants,
    /// Messages for this sink lost before its queue: handover full or
    /// stopped (the exporter counts its own refusals).
    lost: AtomicU64,
}

/// The running sinks, as `/metrics` reads them (a `Collector`: the values
/// are the exporters' own counters, read at each scrape).
#[derive(Clone, Default)]
pub struct SiemSinks(Arc<RwLock<Vec<Arc<Sink>>>>);

impl std::fmt::Debug for SiemSinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiemSinks")
    }
}

/// One sink's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkCounters {
    /// The sink's name.
    pub name: String,
    /// The exporter's counters.
    pub export: ExportMetrics,
    /// Lost before the queue (handover full or stopped) plus refused by
    /// the queue.
    pub dropped: u64,
}

impl SiemSinks {
    /// Every sink's counters, in configuration order.
    pub fn counters(&self) -> Vec<SinkCounters> {
        let sinks = self.0.read().unwrap_or_else(|p| p.into_inner());
        sinks
            .iter()
            .map(|s| {
                let export = s.exporter.metrics();
                SinkCounters {
                    name: s.name.clone(),
                    export,
                    dropped: s.lost.load(Ordering::Relaxed) + export.refused,
                }
            })
            .collect()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: String,
}

impl Collector for SiemSinks {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.counters();
        type Pick = fn(&SinkCounters) -> u64;
        let counters: [(&str, &str, Pick); 4] = [
            (
                "siem_queued",
                "SIEM messages queued durably, per sink",
                |c| c.export.enqueued,
            ),
            (
                "siem_delivered",
                "SIEM messages the destination accepted, per sink",
                |c| c.export.delivered,
            ),
            (
                "siem_failed_attempts",
                "Failed SIEM delivery attempts (each retried), per sink",
                |c| c.export.retried,
            ),
            (
                "siem_dropped",
                "SIEM messages not queued (handover or queue full, invalid), per sink",
                |c| c.dropped,
            ),
        ];
        for (name, help, pick) in counters {
            let metric = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            for c in &all {
                let label = SinkLabel {
                    sink: c.name.clone(),
                };
                ConstCounter::new(pick(c)).encode(family.encode_family(&label)?)?;
            }
        }
        let depth = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "siem_queue_depth",
            "SIEM messages waiting in the queue, per sink",
            None,
            depth.metric_type(),
        )?;
        for c in &all {
            let label = SinkLabel {
                sink: c.name.clone(),
            };
            ConstGauge::new(i64::try_from(c.export.queued).unwrap_or(i64::MAX))
                .encode(family.encode_family(&label)?)?;
        }
        Ok(())
    }
}

/// A message on its way to the queues.
struct Outgoing {
    kind: Kind,
    msg: SiemMessage,
}

struct Inner {
    host: String,
    sinks: Arc<Vec<Arc<Sink>>>,
    tx: mpsc::Sender<Outgoing>,
    stop_writer: CancellationToken,
    stop_delivery: CancellationToken,
    writer: Mutex<Option<JoinHandle<()>>>,
    deliveries: Mutex<Vec<JoinHandle<()>>>,
}

/// The server's SIEM feed (cheap to clone).
#[derive(Clone)]
pub struct SiemOutput {
    inner: Arc<Inner>,
}

fn read_file(sink: &str, key: &'static str, path: &Path) -> Result<Vec<u8>, SinkError> {
    std::fs::read(path).map_err(|e| SinkError {
        sink: sink.to_owned(),
        key,
        problem: format!("cannot read {}: {e}", path.display()),
    })
}

fn read_text(sink: &str, key: &'static str, path: &Path) -> Result<String, SinkError> {
    String::from_utf8(read_file(sink, key, path)?).map_err(|_| SinkError {
        sink: sink.to_owned(),
        key,
        problem: format!("{} is not UTF-8 PEM text", path.display()),
    })
}

/// Builds one sink's exporter settings (reads its files).
fn export_config(s: &SinkConfig, data_dir: &Path) -> Result<ExportConfig, SinkError> {
    let target = s.check()?;
    let fail = |key, problem: String| SinkError {
        sink: s.name.clone(),
        key,
        problem,
    };
    let tls_config = || -> Result<Arc<rustls::ClientConfig>, SinkError> {
        let ca_path = s
            .ca_file
            .as_deref()
            .ok_or_else(|| fail("ca_file", "required".into()))?;
        let ca = read_text(&s.name, "ca_file", ca_path)?;
        let client = match (&s.client_cert_file, &s.client_key_file) {
            (Some(c), Some(k)) => Some((
                read_text(&s.name, "client_cert_file", c)?,
                read_text(&s.name, "client_key_file", k)?,
            )),
            _ => None,
        };
        let cfg = client_config(&ca, client.as_ref().map(|(c, k)| (c.as_str(), k.as_str())))
            .map_err(|e| fail("ca_file", e.to_string()))?;
        Ok(Arc::new(cfg))
    };
    let options = SyslogOptions {
        body: match s.format.unwrap_or(SinkFormat::Cef) {
            SinkFormat::Cef => BodyFormat::Cef,
            SinkFormat::Json => BodyFormat::Json,
        },
        ..SyslogOptions::default()
    };
    let destination = match target {
        Target::SyslogTls { host, port } => Destination::SyslogTls {
            tls: TlsSettings {
                host,
                port,
                server_name: s.server_name.clone(),
                config: tls_config()?,
                settle: Duration::from_millis(20),
            },
            options,
        },
        Target::SyslogUdp { host, port } => {
            use std::net::ToSocketAddrs as _;
            let addr = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| fail("destination", format!("cannot resolve {host}: {e}")))?
                .next()
                .ok_or_else(|| fail("destination", format!("{host} has no address")))?;
            Destination::SyslogUdp { addr, options }
        }
        Target::Webhook { url } => {
            let path = s
                .hmac_secret_file
                .as_deref()
                .ok_or_else(|| fail("hmac_secret_file", "required".into()))?;
            let secret = read_file(&s.name, "hmac_secret_file", path)?;
            // A trailing newline from an editor is not part of the key.
            let secret = secret.trim_ascii_end().to_vec();
            if secret.len() < 16 {
                return Err(fail(
                    "hmac_secret_file",
                    format!("{}: the key must be at least 16 bytes", path.display()),
                ));
            }
            Destination::Webhook(WebhookSettings {
                url,
                secret,
                config: tls_config()?,
            })
        }
    };
    let mut cfg = ExportConfig::new(destination, data_dir.join("siem").join(&s.name));
    if let Some(secs) = s.retry_max_seconds {
        let max = Duration::from_secs(secs);
        cfg.retry = RetryPolicy {
            initial: RetryPolicy::default().initial.min(max),
            max,
        };
    }
    if let Some(mib) = s.queue_max_mib {
        cfg.queue = QueueConfig {
            max_pending_bytes: mib << 20,
            ..QueueConfig::default()
        };
    }
    Ok(cfg)
}

impl SiemOutput {
    /// Opens every sink's queue (what a previous run left is sent first)
    /// and starts delivery; registers the sinks in `metrics`. Refuses the
    /// whole start if any sink cannot be used.
    pub fn start(
        sinks: &[SinkConfig],
        data_dir: &Path,
        host: String,
        metrics: &SiemSinks,
    ) -> Result<SiemOutput, SinkError> {
        check_sinks(sinks)?;
        // Every message carries the host: an unusable one is refused here,
        // not at each enqueue.
        let probe = SiemMessage {
            id: "probe".into(),
            time: OffsetDateTime::UNIX_EPOCH,
            severity: Severity::Info,
            host: host.clone(),
            app_name: "pumpward".into(),
            msg_id: "alert".into(),
            signature_id: "probe".into(),
            name: "probe".into(),
            fields: Vec::new(),
        };
        if let Err(e) = probe.validate() {
            return Err(SinkError {
                sink: "*".into(),
                key: "host",
                problem: e.to_string(),
            });
        }
        let stop_delivery = CancellationToken::new();
        let mut opened = Vec::with_capacity(sinks.len());
        let mut deliveries = Vec::with_capacity(sinks.len());
        for s in sinks {
            let cfg = export_config(s, data_dir)?;
            let (exporter, delivery) = Exporter::open(cfg).map_err(|e| SinkError {
                sink: s.name.clone(),
                key: "destination",
                problem: e.to_string(),
            })?;
            let waiting = exporter.metrics().queued;
            if waiting > 0 {
                tracing::info!(sink = %s.name, waiting, "SIEM messages from the last run are sent first");
            }
            deliveries.push((s.name.clone(), delivery));
            opened.push(Arc::new(Sink {
                name: s.name.clone(),
                exporter,
                wants: s.wants(),
                lost: AtomicU64::new(0),
            }));
        }
        // Delivery starts only once every sink opened: a refused start
        // leaves no task behind.
        let deliveries = deliveries
            .into_iter()
            .map(|(name, d)| {
                let stop = stop_delivery.clone().cancelled_owned();
                tokio::spawn(async move {
                    d.run(stop).await;
                    tracing::debug!(sink = %name, "SIEM delivery stopped");
                })
            })
            .collect();
        let sinks = Arc::new(opened);
        *metrics.0.write().unwrap_or_else(|p| p.into_inner()) = sinks.to_vec();
        let (tx, rx) = mpsc::channel(HANDOVER);
        let stop_writer = CancellationToken::new();
        let writer = tokio::spawn(write(rx, sinks.clone(), stop_writer.clone()));
        Ok(SiemOutput {
            inner: Arc::new(Inner {
                host,
                sinks,
                tx,
                stop_writer,
                stop_delivery,
                writer: Mutex::new(Some(writer)),
                deliveries: Mutex::new(deliveries),
            }),
        })
    }

    fn wanted(&self, kind: Kind) -> bool {
        self.inner.sinks.iter().any(|s| s.wants.takes(kind))
    }

    fn hand_over(&self, kind: Kind, msg: SiemMessage) {
        if let Err(e) = self.inner.tx.try_send(Outgoing { kind, msg }) {
            let (why, out) = match e {
                mpsc::error::TrySendError::Full(o) => ("the SIEM writer is behind", o),
                mpsc::error::TrySendError::Closed(o) => ("the SIEM output is stopped", o),
            };
            for s in self.inner.sinks.iter().filter(|s| s.wants.takes(kind)) {
                s.lost.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(id = %out.msg.id, "{why}: a message was not queued (the alert stays in the store)");
        }
    }

    /// Newly recorded alerts: those of `alerts` whose id is in `new` (what
    /// `record_alerts` returned). Never waits.
    pub fn alerts_raised(&self, alerts: &[Alert], new: &[String]) {
        if !self.wanted(Kind::Alert) {
            return;
        }
        for id in new {
            if let Some(a) = alerts.iter().find(|a| &a.id == id) {
                self.hand_over(Kind::Alert, alert_message(a, &self.inner.host));
            }
        }
    }

    /// An alert after a workflow step that changed its state (acknowledge,
    /// resolve, false positive; not a comment). Never waits.
    pub fn alert_changed(&self, after: &StoredAlert) {
        if after.case.state == AlertState::New || !self.wanted(Kind::Alert) {
            return;
        }
        let msg = alert_change_message(after, &self.inner.host, OffsetDateTime::now_utc());
        self.hand_over(Kind::Alert, msg);
    }

    /// A security event (recorded in `security_events`), for the sinks
    /// that asked for its severity. Never waits.
    pub fn event_observed(&self, ev: &Event) {
        let kind = Kind::Event(event_severity(ev.body.kind()));
        if self.wanted(kind) {
            self.hand_over(kind, event_message(ev, &self.inner.host));
        }
    }

    /// Every sink's counters.
    pub fn counters(&self) -> Vec<SinkCounters> {
        SiemSinks(Arc::new(RwLock::new(self.inner.sinks.to_vec()))).counters()
    }

    /// Stops: queues what was handed over, lets delivery empty the queues
    /// for up to `grace`, then stops delivery. What is still queued is sent
    /// after the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stop_writer.cancel();
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = writer {
            let _ = w.await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self
            .inner
            .sinks
            .iter()
            .any(|s| s.exporter.metrics().queued > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.stop_delivery.cancel();
        let tasks = std::mem::take(
            &mut *self
                .inner
                .deliveries
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for t in tasks {
            let _ = t.await;
        }
        for s in self.inner.sinks.iter() {
            let left = s.exporter.metrics().queued;
            if left > 0 {
                tracing::warn!(sink = %s.name, left, "SIEM messages kept for the next start");
            }
        }
    }
}

/// The writer task: appends what is handed over to the queues of the sinks
/// that want it, in batches, off the async threads.
async fn write(
    mut rx: mpsc::Receiver<Outgoing>,
    sinks: Arc<Vec<Arc<Sink>>>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            biased;
            m = rx.recv() => m,
            _ = stop.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        enqueue(&sinks, batch).await;
    }
    // What was handed over before the stop is still queued.
    let mut rest = Vec::new();
    while let Ok(m) = rx.try_recv() {
        rest.push(m);
    }
    if !rest.is_empty() {
        enqueue(&sinks, rest).await;
    }
}

async fn enqueue(sinks: &Arc<Vec<Arc<Sink>>>, batch: Vec<Outgoing>) {
    let sinks = sinks.clone();
    // The exporter counts and logs its refusals (full, too large, invalid).
    let _ = tokio::task::spawn_blocking(move || {
        for o in &batch {
            for s in sinks.iter().filter(|s| s.wants.takes(o.kind)) {
                let _ = s.exporter.enqueue(&o.msg);
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(destination: &str) -> SinkConfig {
        SinkConfig {
            name: "soc".into(),
            destination: destination.into(),
            format: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            server_name: None,
            hmac_secret_file: None,
            alerts: true,
            events_min_severity: None,
            retry_max_seconds: None,
            queue_max_mib: None,
        }
    }

    #[test]
    fn destinations_parse_with_default_ports() {
        assert_eq!(
            parse_destination("syslog+tls://siem.hospital.example"),
            Ok(Target::SyslogTls {
                host: "siem.hospital.example".into(),
                port: 6514
            })
        );
        assert_eq!(
            parse_destination("syslog+udp://10.1.2.3:5514"),
            Ok(Target::SyslogUdp {
                host: "10.1.2.3".into(),
                port: 5514
            })
        );
        assert_eq!(
            parse_destination("syslog+tls://[::1]:6514"),
            Ok(Target::SyslogTls {
                host: "::1".into(),
                port: 6514
            })
        );
        assert!(matches!(
            parse_destination("https://soc.example/hooks/pumpward?x=1"),
            Ok(Target::Webhook { .. })
        ));
        for bad in [
            "syslog://x:514",
            "http://soc.example/",
            "syslog+tls://",
            "syslog+tls://host:0",
            "syslog+tls://host:99999",
            "syslog+tls://host:514/path",
            "syslog+tls://[::1",
            "syslog+tls://[nope]:1",
            "https://user@soc.example/",
            "https:///path",
            "https://soc.example/a b",
        ] {
            assert!(parse_destination(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sinks_are_refused_with_the_key_at_fault() {
        let key = |s: SinkConfig| s.check().unwrap_err().key;
        assert_eq!(key(sink("syslog+tls://h:6514")), "ca_file");
        let mut s = sink("syslog+udp://h:514");
        s.ca_file = Some("ca.pem".into());
        assert_eq!(key(s), "ca_file");
        let mut s = sink("https://soc.example/hook");
        s.ca_file = Some("ca.pem".into());
        assert_eq!(key(s.clone()), "hmac_secret_file");
        s.hmac_secret_file = Some("k".into());
        s.format = Some(SinkFormat::Cef);
        assert_eq!(key(s.clone()), "format");
        s.format = Some(SinkFormat::Json);
        assert!(s.check().is_ok());
        let mut s = sink("syslog+tls://h");
        s.ca_file = Some("ca.pem".into());
        s.client_cert_file = Some("c.pem".into());
        assert_eq!(key(s.clone()), "client_key_file");
        s.client_key_file = Some("c.key".into());
        assert!(s.check().is_ok());
        s.events_min_severity = Some("severe".into());
        assert_eq!(key(s.clone()), "events_min_severity");
        s.events_min_severity = None;
        s.alerts = false;
        assert_eq!(key(s.clone()), "alerts");
        s.alerts = true;
        s.name = "SOC 1".into();
        assert_eq!(key(s.clone()), "name");
        s.name = "soc".into();
        s.retry_max_seconds = Some(0);
        assert_eq!(key(s.clone()), "retry_max_seconds");
        s.retry_max_seconds = None;
        assert_eq!(
            check_sinks(&[s.clone(), s.clone()]).unwrap_err().problem,
            "sink #2 has the same name"
        );
        let e = sink("ftp://x").check().unwrap_err();
        assert!(
            e.to_string().starts_with("[[siem]] \"soc\": destination: "),
            "{e}"
        );
    }

    #[test]
    fn routing_follows_what_each_sink_asked_for() {
        let w = Wants {
            alerts: false,
            events_from: Some(Severity::Medium),
        };
        assert!(!w.takes(Kind::Alert));
        assert!(!w.takes(Kind::Event(Severity::Low)));
        assert!(w.takes(Kind::Event(Severity::Medium)));
        assert!(w.takes(Kind::Event(Severity::Critical)));
        let alerts_only = Wants {
            alerts: true,
            events_from: None,
        };
        assert!(alerts_only.takes(Kind::Alert));
        assert!(!alerts_only.takes(Kind::Event(Severity::Critical)));
    }

    fn sample_alert() -> Alert {
        let key = pumpward_detect::DedupKey {
            rule: "library_rejected".into(),
            subject: "P-1".into(),
            window: 7,
        };
        Alert {
            id: key.alert_id(),
            key,
            title: "Drug library rejected by a pump".into(),
            csf: Some("DE.CM-09".into()),
            severity: pumpward_detect::Severity::High,
            asset_id: Some("P-1".parse().unwrap()),
            care_area: Some("Adult ICU".into()),
            raised_at: OffsetDateTime::UNIX_EPOCH,
            events: vec!["P-1:2".into()],
            evidence: serde_json::json!({"reason": "signature_invalid", "note": "x".repeat(5000)}),
        }
    }

    #[test]
    fn an_alert_becomes_a_valid_message_with_its_facts() {
        let a = sample_alert();
        let m = alert_message(&a, "pw1");
        m.validate().unwrap();
        assert_eq!(m.id, a.id);
        assert_eq!(m.signature_id, "library_rejected");
        assert_eq!(m.severity, Severity::High);
        assert_eq!(m.msg_id, "alert");
        assert_eq!(m.field("alert_id"), Some(a.id.as_str()));
        assert_eq!(m.field("asset_id"), Some("P-1"));
        assert_eq!(m.field("care_area"), Some("Adult ICU"));
        assert_eq!(m.field("csf"), Some("DE.CM-09"));
        assert_eq!(m.field("state"), Some("new"));
        // The evidence is summarised, cut at a character boundary.
        let ev = m.field("evidence").unwrap();
        assert!(
            ev.len() <= SUMMARY_BYTES && ev.ends_with('…'),
            "{}",
            ev.len()
        );

        let mut case = pumpward_detect::AlertCase::new(a.clone());
        case.acknowledge("ana").unwrap();
        let stored = StoredAlert {
            case,
            incident_id: None,
            updated_at: String::new(),
        };
        let u = alert_change_message(&stored, "pw1", OffsetDateTime::UNIX_EPOCH);
        u.validate().unwrap();
        assert_eq!(u.id, format!("{}:acknowledged", a.id));
        assert_eq!(u.msg_id, "alert_update");
        assert_eq!(u.field("state"), Some("acknowledged"));
        assert_eq!(u.field("owner"), Some("ana"));
    }

    #[test]
    fn a_security_event_becomes_a_valid_message() {
        let ev = Event::auth_failure(
            "gateway:refusal:1".into(),
            OffsetDateTime::UNIX_EPOCH,
            "10.9.9.9".parse().unwrap(),
            "unknown CA".into(),
        );
        let m = event_message(&ev, "pw1");
        m.validate().unwrap();
        assert_eq!(m.signature_id, "auth_failure");
        assert_eq!(m.severity, Severity::Low);
        assert_eq!(m.field("source"), Some("gateway"));
        assert_eq!(m.field("peer"), Some("10.9.9.9"));
        assert_eq!(m.field("reason"), Some("unknown CA"));
    }

    proptest::proptest! {
        /// Any text is parsed or refused, never a panic; what parses is
        /// exactly what was written.
        #[test]
        fn any_destination_is_parsed_or_refused(s in "(syslog\\+(tls|udp)://|https://)?[a-z0-9.:\\[\\]/@ -]{0,30}") {
            match parse_destination(&s) {
                Ok(Target::Webhook { url }) => proptest::prop_assert_eq!(url, s),
                Ok(Target::SyslogTls { host, port } | Target::SyslogUdp { host, port }) => {
                    proptest::prop_assert!(port > 0);
                    proptest::prop_assert!(s.contains(host.as_str()));
                }
                Err(e) => proptest::prop_assert!(!e.is_empty()),
            }
        }

        #[test]
        fn host_and_port_round_trip(host in "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9-]{1,10}){0,3}", port in 1u16..) {
            proptest::prop_assert_eq!(
                parse_destination(&format!("syslog+udp://{host}:{port}")),
                Ok(Target::SyslogUdp { host: host.clone(), port })
            );
        }
    }

    #[test]
    fn summaries_never_split_a_character() {
        let s = "é".repeat(100);
        for max in 0..50 {
            let out = summary(&s, max.max(3));
            assert!(out.len() <= max.max(3));
        }
        assert_eq!(summary("short", 10), "short");
    }
}
