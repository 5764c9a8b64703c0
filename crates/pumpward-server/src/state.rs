//! What every handler shares.

use crate::metrics::Metrics;
use pumpward_core::access::throttle::ThrottlePolicy;
use pumpward_store::Store;
use std::sync::Arc;
use time::Duration;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, used or not.
    pub session_absolute: Duration,
    pub throttle: ThrottlePolicy,
    /// Longest accepted JSON body.
    pub max_body_bytes: usize,
    /// Longest accepted CSV import body.
    pub max_import_bytes: usize,
    /// Longest time a request may take.
    pub request_timeout: std::time::Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            session_idle: Duration::minutes(30),
            session_absolute: Duration::hours(12),
            throttle: ThrottlePolicy::default(),
            max_body_bytes: 1 << 20,
            max_import_bytes: 64 << 20,
            request_timeout: std::time::Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<ServerSettings>,
    /// The certificate authority; `None` in tests that do not need one.
    pub pki: Option<Arc<crate::pki::CaService>>,
    /// The gateway's open device sessions.
    pub sessions: Arc<crate::device::Sessions>,
    /// The gateway's port, for the EST address shown with enrollment codes.
    pub gateway_port: u16,
    /// The drug-library signing key, opened (or made) on first use.
    pub library_signer: Arc<crate::library::SignerCell>,
    /// The rules file and the running detection engine, for the rules page.
    pub rules: crate::detection_rules::LiveRules,
    /// The SIEM feed; `None` when no `[[siem]]` sink is configured.
    pub siem: Option<crate::siem::SiemOutput>,
    /// Live flows: observed conduits, unknown devices, policy reloads.
    pub network: Arc<crate::network::NetworkLive>,
}

impl AppState {
    pub fn new(store: Store, settings: ServerSettings) -> Self {
        AppState {
            store,
            metrics: Arc::new(Metrics::default()),
            settings: Arc::new(settings),
            pki: None,
            sessions: Arc::default(),
            gateway_port: 8444,
            library_signer: Arc::default(),
            rules: crate::detection_rules::LiveRules {
                file: None,
                detection: None,
            },
            siem: None,
            network: Arc::default(),
        }
    }

    /// The same state with a certificate authority.
    pub fn with_pki(mut self, ca: Arc<crate::pki::CaService>) -> Self {
        self.pki = Some(ca);
        self
    }
}
