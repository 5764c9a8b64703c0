//! Prometheus metrics, served at `/metrics` to users with `metrics.read`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route template (`/api/v1/assets/{id}`), never the raw path, so
    /// the number of series stays bounded.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RequestLabels, Histogram>,
    pub logins: Family<OutcomeLabels, Counter>,
    pub assets: Family<StateLabels, Gauge>,
    pub audit_records: Gauge,
    /// Gateway connections refused in TLS or authentication.
    pub gateway_auth_failures: Counter,
    /// EST requests refused.
    pub est_refusals: Counter,
    /// Pumps with an open device session.
    pub devices_connected: Gauge,
    /// Device events durably stored and acknowledged.
    pub device_events_stored: Counter,
    /// Device events dropped as duplicates (replays, lost acks).
    pub device_events_duplicate: Counter,
    /// The detection engine's counters.
    pub detection: DetectionCounters,
    /// The SIEM sinks' counters, read from the exporters at each scrape.
    pub siem: crate::siem::SiemSinks,
    /// The live network collectors and the policy evaluation.
    pub network: crate::network::NetworkMetrics,
}

/// What the detection task counts (cheap to clone: the counters are shared).
#[derive(Clone, Debug, Default)]
pub struct DetectionCounters {
    /// Events run through the rules.
    pub events_evaluated: Counter,
    /// Alerts newly recorded (not repeats of a stored one).
    pub alerts_raised: Counter,
    /// Events not handed to the engine (queue full, stopped, or invalid).
    pub events_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pumpward");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let logins = Family::<OutcomeLabels, Counter>::default();
        let assets = Family::<StateLabels, Gauge>::default();
        let audit_records = Gauge::default();
        let gateway_auth_failures = Counter::default();
        let est_refusals = Counter::default();
        let devices_connected = Gauge::default();
        let device_events_stored = Counter::default();
        let device_events_duplicate = Counter::default();
        registry.register(
            "gateway_auth_failures",
            "Gateway connections refused in TLS or authentication",
            gateway_auth_failures.clone(),
        );
        registry.register("est_refusals", "EST requests refused", est_refusals.clone());
        registry.register(
            "devices_connected",
            "Pumps with an open device session",
            devices_connected.clone(),
        );
        registry.register(
            "device_events_stored",
            "Device events durably stored and acknowledged",
            device_events_stored.clone(),
        );
        registry.register(
            "device_events_duplicate",
            "Device events dropped as duplicates",
            device_events_duplicate.clone(),
        );
        let detection = DetectionCounters::default();
        registry.register(
            "detection_events_evaluated",
            "Events run through the detection rules",
            detection.events_evaluated.clone(),
        );
        registry.register(
            "detection_alerts_raised",
            "Alerts newly recorded by detection",
            detection.alerts_raised.clone(),
        );
        registry.register(
            "detection_events_dropped",
            "Events not handed to detection (queue full, stopped, or invalid)",
            detection.events_dropped.clone(),
        );
        let siem = crate::siem::SiemSinks::default();
        registry.register_collector(Box::new(siem.clone()));
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            request_seconds.clone(),
        );
        registry.register("logins", "Login attempts by outcome", logins.clone());
        registry.register("assets", "Assets by lifecycle state", assets.clone());
        registry.register(
            "audit_records",
            "Records in the audit chain",
            audit_records.clone(),
        );
        let network = crate::network::NetworkMetrics::registered(&mut registry);
        Metrics {
            network,
            registry,
            requests,
            request_seconds,
            logins,
            assets,
            audit_records,
            gateway_auth_failures,
            est_refusals,
            devices_connected,
            device_events_stored,
            device_events_duplicate,
            detection,
            siem,
        }
    }
}

impl Metrics {
    /// Counts a login attempt by its outcome (`success` or `failure`).
    pub fn count_login(&self, outcome: &str) {
        self.logins
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
