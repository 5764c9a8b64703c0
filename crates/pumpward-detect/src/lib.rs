//! Detection, pure core: what Pumpward watches for in the pump ecosystem,
//! because pumps cannot run anti-malware agents (NIST SP 1800-8).
//!
//! - [`event`]: the typed, versioned event envelope every producer (pumps,
//!   gateway, network sensors, the audit trail, vulnerability management)
//!   feeds in, and its validation at the boundary with counted refusals.
//! - [`config`]: the built-in rules' catalogue (rationale, NIST CSF 2.0
//!   category, defaults) and the TOML file that tunes them.
//! - [`engine`]: the rules engine over events in order, with the
//!   [`engine::Context`] the store fills, a clock tick for time-driven rules,
//!   and a snapshot/watermark for restarts.
//! - [`expr`]: the sandboxed expression language of custom rules.
//! - [`window`]: bounded sliding-window counts.
//! - [`baseline`]: per-pump and per-model behavioural baselines.
//! - [`response`]: the response workflow (quarantine; two-person rule for
//!   automatic ones) as a pure state machine.
//! - [`alert`]: deduplication keys, deterministic alert ids, and the alert
//!   and incident workflows as pure state machines.
//!
//! No I/O and no clock: the caller passes events, context and the time.
//! `docs/detection-rules.md` documents every rule and the expression
//! grammar for the hospital's SOC.

pub mod alert;
pub mod baseline;
pub mod config;
pub mod engine;
pub mod event;
pub mod expr;
#[doc(hidden)]
pub mod fuzzing;
pub mod response;
pub mod window;

pub use alert::{Alert, AlertCase, AlertState, DedupKey, Incident, PlaybookStep};
pub use config::{ConfigError, DetectionConfig, RuleId, Severity};
pub use engine::{AssetFacts, Context, Engine, EngineState, ExpectedLibrary, Processed};
pub use event::{decode_event, Body, Event, Invalid, RejectCounters, RejectReason, Source};
pub use expr::{parse_rule, CustomRule, ParseError};
pub use response::{ResponseKind, ResponseState};
