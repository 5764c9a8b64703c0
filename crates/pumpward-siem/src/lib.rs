//! SIEM export: alerts and events out of Pumpward into the hospital's SOC.
//!
//! - [`SiemMessage`] — what a producer (the detection engine) hands over:
//!   id, time, severity, host, app name, message id, signature id, name and
//!   ordered fields. [`SiemMessage::validate`] refuses what no format could
//!   carry, naming the field.
//! - Pure formatting: [`syslog`] (RFC 5424 with structured data, octet
//!   counting framing), [`cef`] (ArcSight CEF), [`json_body`], and
//!   [`signature`] (the webhooks' HMAC-SHA256 and its constant-time
//!   verification, for receivers).
//! - Delivery: [`Exporter`] (one per destination) queues each message
//!   durably in a [`queue::DiskQueue`]; its [`Delivery`] task sends in
//!   order over a [`transport`] (syslog over UDP or TLS, HTTPS webhook),
//!   retrying with capped, jittered exponential backoff, and forgets a
//!   message only once the transport accepted it. At least once, in order,
//!   across restarts; a slow or dead SIEM never blocks the producer.
//!
//! The user documentation is `docs/siem-export.md`.

pub mod cef;
mod exporter;
pub mod message;
pub mod queue;
pub mod signature;
pub mod syslog;
pub mod transport;

pub use exporter::{
    Delivery, Destination, EnqueueError, ExportConfig, ExportMetrics, Exporter, OpenError,
    RetryPolicy,
};
pub use message::{json_body, MessageError, Severity, SiemMessage};
