//! The device side of Pumpward: the **pump agent** library and the **fleet
//! simulator** built on it (NIST SP 1800-8: the pumps themselves).
//!
//! - [`agent`] — [`PumpAgent`]: EST enrollment with a one-time code,
//!   renewal (`simplereenroll`) at 2/3 of the validity or on command, the
//!   mutually authenticated device channel (TLS, ALPN `pumpward-device/1`,
//!   `docs/device-protocol.md`), heartbeats, event batches from the durable
//!   queue, commands, refusals and jittered reconnects.
//! - [`identity`] — the device key and certificate in the state directory,
//!   the trust anchors (`--ca-file`) and the TLS client configurations.
//! - [`est`] — the EST client (RFC 7030).
//! - [`api`] — the three REST API calls the simulator needs.
//! - [`backoff`] — reconnect back-off.
//! - [`sim`] — the fleet simulator: a pure seeded model of clinical use
//!   ([`sim::model`]), the fleet runner ([`run_sim`]) and attack/fault
//!   scenarios.
//!
//! # Invariants
//!
//! - **A queued event is never lost.** [`PumpAgent::record`] hands the event
//!   to the [`pumpward_proto::DurableQueue`], which returns only after
//!   `fsync`; from then on the event stays on disk, across crashes,
//!   restarts, refusals, revocation and outages, until the gateway
//!   acknowledges it. When the queue is full the event is refused at once
//!   and counted, and the loss is reported to the gateway in sequence
//!   (`events_dropped`); it is never silently discarded. Recording never
//!   waits for the network or the disk.
//! - **Removed only after the gateway's ack.** Events leave the queue only
//!   through `queue.ack(up_to)` for an `ack` message or a welcome's
//!   `expected_next_seq` — both the gateway's statement that it committed
//!   them. Unacknowledged events are resent from the oldest after every
//!   reconnect, so the gateway receives each at least once and, by sequence
//!   number, stores it exactly once.
//! - **Therapy is never affected by the network.** [`TherapyState`] is
//!   written only by the pump's firmware (or the simulator) through
//!   [`PumpAgent::update_therapy`]; the channel only reads it. No refusal,
//!   disconnect, revocation, quarantine notice or library offer stops or
//!   changes an infusion or the active library.
//! - **Identity only from the certificate.** The agent never sends an
//!   identity claim; the gateway learns who it is from the client
//!   certificate, whose key never leaves the state directory. The agent
//!   adopts a certificate only if it names its own asset
//!   (`urn:pumpward:asset:<id>`), and verifies the gateway against the CA
//!   chain it was given — never with verification disabled.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod api;
pub mod backoff;
pub mod est;
pub mod identity;
pub mod library;
pub mod rng;
pub mod sim;

pub use agent::{
    AgentConfig, AgentEnv, AgentStatus, EnrollmentState, PumpAgent, RecordError, TherapyState,
};
pub use backoff::{Backoff, BackoffPolicy};
pub use est::{EstClient, EstError};
pub use identity::{DeviceIdentity, TrustAnchors, DEVICE_ALPN};
pub use sim::{run_sim, Scenario, ScenarioOutcome, SimOptions, SimReport};

/// Errors of the agent and the simulator.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The state directory holds something unusable.
    #[error("state: {0}")]
    State(String),
    /// File system.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The durable queue.
    #[error("event queue: {0}")]
    Queue(#[from] pumpward_proto::QueueError),
    /// Certificates, CSRs, PKCS#7.
    #[error("pki: {0}")]
    Pki(#[from] pumpward_pki::PkiError),
    /// TLS configuration.
    #[error("tls: {0}")]
    Tls(String),
    /// EST.
    #[error(transparent)]
    Est(#[from] EstError),
    /// The REST API.
    #[error("API: {0}")]
    Api(String),
}

impl AgentError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
