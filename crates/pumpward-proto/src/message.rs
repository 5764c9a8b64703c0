//! The messages of protocol version 1, their parsing and their validation.
//!
//! Every message is one JSON object with a `"type"` (snake_case message name)
//! and a `"v"` (protocol version) member beside its own fields. Parse a
//! payload only with [`parse_pump_message`] / [`parse_gateway_message`]: they
//! distinguish malformed JSON, an unknown message type, a version problem and
//! an invalid field, map event and command kinds they do not know to
//! `unrecognized` / `unsupported` instead of failing, and run `validate()`.
//!
//! Forward compatibility rules (see `docs/device-protocol.md`):
//! - unknown members of a known message are ignored;
//! - an unknown message type is an error of that message only
//!   ([`MessageError::UnknownType`]), not of the connection;
//! - an unknown event kind is kept as [`EventKind::Unrecognized`] with its
//!   name, so no event is ever refused for its kind;
//! - an unknown command kind becomes [`Command::Unsupported`], which the pump
//!   answers with [`CommandStatus::Unsupported`];
//! - unknown enum values in fields (alarm kind, refusal code, …) map to an
//!   explicit `other`/`unknown` value.
//!
//! Exact quantities (doses, rates, limits) are decimal strings ([`Quantity`]),
//! never JSON floats, so what a pump displayed is what the gateway stores.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The protocol version this crate speaks natively.
pub const PROTOCOL_VERSION: u16 = 1;
/// Every version this crate can speak, lowest first.
pub const SUPPORTED_VERSIONS: &[u16] = &[1];

/// The most events one batch may carry (a batch must also fit in one frame).
pub const MAX_EVENTS_PER_BATCH: usize = 1000;
/// The highest sequence number: 2^53 − 1, so that every JSON reader
/// (including JavaScript's) reads it exactly.
pub const MAX_SEQ: u64 = (1 << 53) - 1;
/// Bytes of a name: versions, drug names, care areas, host names, ids.
pub const MAX_NAME_LEN: usize = 128;
/// Bytes of free text: reasons and explanations.
pub const MAX_TEXT_LEN: usize = 1024;
/// Entries of an event's `detail` map.
pub const MAX_DETAIL_ENTRIES: usize = 16;
/// Bytes of a `detail` key (`[a-z0-9_]`).
pub const MAX_DETAIL_KEY_LEN: usize = 64;
/// Bytes of a `detail` value.
pub const MAX_DETAIL_VALUE_LEN: usize = 256;
/// Versions a hello may offer.
pub const MAX_VERSIONS_OFFERED: usize = 16;
/// Bytes of one event serialised on its own (the queue's record limit). The
/// field limits above keep every valid event well below it.
pub const MAX_EVENT_BYTES: usize = 8 * 1024;
/// Bytes of a command id (`[A-Za-z0-9._:-]`).
pub const MAX_COMMAND_ID_LEN: usize = 64;
/// Heartbeat interval bounds the gateway may ask for, in seconds.
pub const HEARTBEAT_INTERVAL_RANGE_S: std::ops::RangeInclusive<u32> = 5..=3600;

/// The highest version both sides speak, if any.
pub fn negotiate(offered: &[u16], supported: &[u16]) -> Option<u16> {
    offered
        .iter()
        .copied()
        .filter(|v| supported.contains(v))
        .max()
}

// ---------------------------------------------------------------------------
// Pump → gateway
// ---------------------------------------------------------------------------

/// A message a pump sends.
// Hello is the large one and is sent once per connection; boxing it would
// only make construction and matching noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PumpMessage {
    /// First message of every connection.
    Hello(Hello),
    /// Periodic status.
    Heartbeat(Heartbeat),
    /// Events from the pump's durable queue, oldest first.
    EventBatch(EventBatch),
    /// The outcome of a [`GatewayMessage::Command`].
    CommandResult(CommandResult),
}

/// The pump's opening message. It carries no identity claim: who the pump
/// is comes from its client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol versions the pump speaks.
    pub versions: Vec<u16>,
    /// Running firmware.
    pub firmware: Firmware,
    /// Active drug library; `None` when none is installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<LibraryRef>,
    /// What the pump knows of its place in the network.
    pub network: NetworkIdentity,
    /// The care area the pump is set to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_area: Option<String>,
    /// The sequence number the pump will assign to its next event (one more
    /// than the highest it ever assigned).
    pub next_seq: u64,
    /// Agent software name and version, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// Firmware version and the SHA-256 of its image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmware {
    /// Vendor version string.
    pub version: String,
    /// SHA-256 of the running image, 64 lowercase hex digits.
    pub digest: String,
}

/// A drug library version and the SHA-256 of its signed envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryRef {
    /// Library version.
    pub version: String,
    /// 64 lowercase hex digits.
    pub digest: String,
}

/// The pump's network identity as the pump sees it (compared, never trusted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkIdentity {
    /// MAC address of the interface in use, `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    /// Address of that interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Wi-Fi network name (at most 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssid: Option<String>,
    /// MAC of the access point's radio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bssid: Option<String>,
    /// Access point name, if the pump learns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ap_name: Option<String>,
}

/// Periodic status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Battery charge, 0–100.
    pub battery_pct: u8,
    /// On mains power.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_mains: Option<bool>,
    /// What the pump is doing.
    pub infusion: InfusionState,
    /// Active drug library version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library_version: Option<String>,
    /// Seconds since the pump started.
    pub uptime_s: u64,
    /// Events in the durable queue not yet acknowledged.
    pub queue_depth: u64,
    /// Events refused by a full queue since the agent started.
    #[serde(default)]
    pub dropped_events: u64,
}

/// Infusion state reported in heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InfusionState {
    /// No infusion programmed.
    Idle,
    /// An infusion is being programmed.
    Programming,
    /// Infusing.
    Running,
    /// Paused by the user.
    Paused,
    /// An alarm is active.
    Alarm,
    /// Any state this version does not name.
    #[serde(other)]
    Unknown,
}

/// Events, strictly increasing by `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// 1 to [`MAX_EVENTS_PER_BATCH`] events.
    pub events: Vec<PumpEvent>,
}

/// One event from the pump's queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PumpEvent {
    /// Per-device sequence number, 1 to [`MAX_SEQ`].
    pub seq: u64,
    /// When it happened, by the pump's clock (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened; its fields sit beside `seq` and `at`.
    #[serde(flatten)]
    pub kind: EventKind,
    /// Free key/value detail.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// An infusion was programmed (confirmed by the user).
    InfusionProgrammed(Infusion),
    /// An infusion started.
    InfusionStarted(Infusion),
    /// An infusion was paused.
    InfusionPaused(Infusion),
    /// An infusion stopped.
    InfusionStopped(Infusion),
    /// The dose-check engine judged a programmed dose.
    DoseCheck(DoseCheck),
    /// An alarm was raised.
    Alarm {
        /// Which alarm.
        alarm: AlarmKind,
        /// The infusion concerned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        infusion_id: Option<String>,
    },
    /// A drug library was verified and installed.
    LibraryInstalled {
        /// Its version.
        version: String,
        /// SHA-256 of its envelope.
        digest: String,
    },
    /// A drug library was refused; the previous one stays active.
    LibraryRejected {
        /// The version offered, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// Its digest, if computed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        /// Why.
        reason: LibraryRejectReason,
    },
    /// The firmware changed since the previous start.
    FirmwareChanged {
        /// Previous version, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// New version.
        to: String,
        /// SHA-256 of the new image.
        digest: String,
    },
    /// Someone logged in to the pump's service functions.
    MaintenanceLogin {
        /// How.
        method: LoginMethod,
        /// Whether it succeeded.
        success: bool,
        /// The account used, if the pump has accounts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
    },
    /// The care area setting changed.
    CareAreaChanged {
        /// Previous care area.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// New care area.
        to: String,
    },
    /// The durable queue refused `count` events because it was full (the
    /// agent pushes this once space is available again).
    EventsDropped {
        /// How many were lost.
        count: u64,
    },
    /// A pump-specific event this version does not name.
    Other {
        /// Its name, `[a-z0-9_]`.
        name: String,
    },
    /// Set by the parser for an event kind it does not know; never refused,
    /// so that no evidence is lost.
    Unrecognized {
        /// The kind as sent.
        original_kind: String,
    },
}

impl EventKind {
    /// The `kind` names this version knows.
    pub const KNOWN: &'static [&'static str] = &[
        "infusion_programmed",
        "infusion_started",
        "infusion_paused",
        "infusion_stopped",
        "dose_check",
        "alarm",
        "library_installed",
        "library_rejected",
        "firmware_changed",
        "maintenance_login",
        "care_area_changed",
        "events_dropped",
        "other",
        "unrecognized",
    ];
}

/// An infusion, without any patient identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Infusion {
    /// The pump's own id of the infusion.
    pub infusion_id: String,
    /// Drug name as in the library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drug: Option<String>,
    /// Rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Quantity>,
    /// Volume to be infused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtbi: Option<Quantity>,
    /// Why it stopped or paused (for `infusion_stopped` / `infusion_paused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<StopCause>,
}

/// Why an infusion stopped or paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopCause {
    /// Volume delivered.
    Completed,
    /// The user.
    User,
    /// An alarm.
    Alarm,
    /// Anything else.
    #[serde(other)]
    Other,
}

/// A dose-check outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoseCheck {
    /// The outcome.
    pub result: DoseCheckResult,
    /// Drug name as in the library.
    pub drug: String,
    /// Care area whose limits applied.
    pub care_area: String,
    /// The programmed dose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose: Option<Quantity>,
    /// The limit that was reached, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Quantity>,
    /// Which limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_kind: Option<LimitKind>,
    /// The infusion concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infusion_id: Option<String>,
    /// The library whose limits applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library_version: Option<String>,
    /// The clinician's reason for a soft-limit override (what the pharmacy
    /// committee reviews in its CQI report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
}

/// Dose-check outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseCheckResult {
    /// Within all limits.
    WithinLimits,
    /// A soft limit was exceeded and the clinician overrode it.
    SoftOverride,
    /// A hard limit refused the programming.
    HardBlock,
    /// The drug is not in the care area's library (or none was chosen): the
    /// infusion runs without dose limits, flagged.
    BasicInfusion,
}

/// Which limit a dose check reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Soft minimum.
    SoftMin,
    /// Soft maximum.
    SoftMax,
    /// Hard minimum.
    HardMin,
    /// Hard maximum.
    HardMax,
}

/// A non-negative decimal with its unit: `{"value": "2.5", "unit": "mg/h"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantity {
    /// Up to 12 integer and 6 fraction digits, no sign, no exponent.
    pub value: String,
    /// Unit as the library spells it.
    pub unit: String,
}

/// Alarm kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// Occlusion (upstream or downstream).
    Occlusion,
    /// Air in line.
    AirInLine,
    /// Battery low.
    BatteryLow,
    /// Battery depleted.
    BatteryDepleted,
    /// Door or cassette open.
    DoorOpen,
    /// Volume to be infused reached.
    InfusionComplete,
    /// Device fault.
    DeviceFault,
    /// Any alarm this version does not name.
    #[serde(other)]
    Other,
}

/// Why a library was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LibraryRejectReason {
    /// The signature did not verify.
    SignatureInvalid,
    /// The content did not match the announced digest.
    DigestMismatch,
    /// The version is not newer than the active one.
    VersionRollback,
    /// The library does not fit this model or firmware.
    Incompatible,
    /// Download failed.
    DownloadFailed,
    /// Signed by a key the pump does not trust (another hospital's, or a
    /// retired one).
    UntrustedKey,
    /// Not a well-formed envelope (truncated, wrong structure or header).
    MalformedEnvelope,
    /// Signed, but the content is not a valid library.
    InvalidLibrary,
    /// The library has no profile for the pump's care area.
    WrongCareArea,
    /// Any reason this version does not name.
    #[serde(other)]
    Other,
}

/// How a maintenance login happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// At the pump's own keypad.
    Local,
    /// Over the network.
    Remote,
    /// Through a service port or cable.
    ServicePort,
    /// Any method this version does not name.
    #[serde(other)]
    Other,
}

/// The outcome of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command's id.
    pub id: String,
    /// The outcome.
    pub status: CommandStatus,
    /// Explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Command outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Done.
    Completed,
    /// Accepted, to be done when safe (for example after the running
    /// infusion); a second result follows.
    Deferred,
    /// Refused by the pump (for example a library that does not verify).
    Rejected,
    /// Tried and failed.
    Failed,
    /// The pump does not know this command kind.
    Unsupported,
    /// Any status this version does not name.
    #[serde(other)]
    Unknown,
}

// ---------------------------------------------------------------------------
// Gateway → pump
// ---------------------------------------------------------------------------

/// A message the gateway sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayMessage {
    /// Answer to hello: the session is open.
    Welcome(Welcome),
    /// Every event up to `up_to_seq` is durably stored.
    Ack(Ack),
    /// Something for the pump to do.
    Command(CommandMessage),
    /// A message or the session is refused.
    Refusal(Refusal),
}

/// The gateway's answer to hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Session id, for logs on both sides.
    pub session: String,
    /// The negotiated version; every later message of both sides carries it.
    pub version: u16,
    /// The gateway's clock, so the pump can report its drift.
    #[serde(with = "time::serde::rfc3339")]
    pub server_time: OffsetDateTime,
    /// Seconds between heartbeats.
    pub heartbeat_interval_s: u32,
    /// The lowest sequence number not yet stored; the pump treats everything
    /// below it as acknowledged.
    pub expected_next_seq: u64,
    /// Events per batch the gateway accepts (≤ [`MAX_EVENTS_PER_BATCH`]).
    pub max_batch_events: u32,
    /// Frame payload bytes the gateway accepts (≤ [`crate::frame::MAX_FRAME_LEN`]).
    pub max_frame_bytes: u32,
}

/// Durable acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Every event with `seq ≤ up_to_seq` is stored (or recorded as a gap).
    pub up_to_seq: u64,
}

/// A command and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMessage {
    /// Unique per device; the pump echoes it in [`CommandResult`] and
    /// ignores a repeated id it already answered (answering again).
    pub id: String,
    /// What to do.
    pub command: Command,
}

/// Commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Command {
    /// Renew the client certificate by EST re-enrollment.
    RenewCertificate {
        /// Why (expiry, key compromise, CA rollover).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Renew before this time.
        #[serde(
            default,
            with = "time::serde::rfc3339::option",
            skip_serializing_if = "Option::is_none"
        )]
        before: Option<OffsetDateTime>,
    },
    /// A new approved drug library can be fetched.
    DrugLibraryAvailable {
        /// Its version.
        version: String,
        /// SHA-256 of its signed envelope.
        digest: String,
        /// Envelope size in bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// The pump's network access is restricted (or restored). Infusions
    /// continue; the pump keeps its library and its events.
    QuarantineNotice {
        /// Quarantined or released.
        state: QuarantineState,
        /// Why, for the display and the log.
        reason: String,
        /// Incident reference.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incident: Option<String>,
    },
    /// Send a heartbeat now.
    RequestStatus,
    /// Set by the parser for a command kind it does not know; the pump
    /// answers [`CommandStatus::Unsupported`].
    Unsupported {
        /// The kind as sent.
        original_kind: String,
    },
}

impl Command {
    /// The `kind` names this version knows.
    pub const KNOWN: &'static [&'static str] = &[
        "renew_certificate",
        "drug_library_available",
        "quarantine_notice",
        "request_status",
        "unsupported",
    ];

    /// Whether carrying out this command could start, stop, pause or
    /// change an infusion. No command of this protocol can: the pump's
    /// therapy is set only at the bedside, and the channel's commands touch
    /// the certificate, the library offer, the network notice and status.
    /// The match names every command so that one added later must be judged
    /// here; the response path (quarantine) sends a command only after
    /// checking this, so a therapy command could never ride on it.
    pub fn changes_therapy(&self) -> bool {
        match self {
            // A library offer installs only when the pump is idle (the
            // agent keeps a verified library pending while infusing).
            Command::DrugLibraryAvailable { .. } => false,
            Command::RenewCertificate { .. }
            | Command::QuarantineNotice { .. }
            | Command::RequestStatus
            | Command::Unsupported { .. } => false,
        }
    }
}

/// Quarantine state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuarantineState {
    /// Network access restricted.
    Quarantined,
    /// Restored.
    Released,
}

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Machine-readable reason.
    pub code: RefusalCode,
    /// Human-readable, precise reason.
    pub reason: String,
    /// The gateway closes the connection after a fatal refusal.
    pub fatal: bool,
    /// Wait at least this long before reconnecting or resending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u32>,
    /// For `unsupported_version`: what the gateway speaks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_versions: Vec<u16>,
    /// For sequence refusals: the gateway's next expected seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_next_seq: Option<u64>,
    /// The sequence number concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Refusal codes. See `docs/device-protocol.md` for what a pump does on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// Frame larger than the limit (fatal).
    FrameTooLarge,
    /// Empty or truncated frame (fatal).
    BadFrame,
    /// Not JSON, not an object, or no `type`/`v`.
    Malformed,
    /// A `type` the gateway does not know.
    UnknownMessageType,
    /// No common protocol version (fatal).
    UnsupportedVersion,
    /// `v` differs from the negotiated version (fatal).
    VersionMismatch,
    /// The first message was not hello (fatal).
    HelloRequired,
    /// A second hello in one session (fatal).
    DuplicateHello,
    /// A field is missing, of the wrong type or out of bounds.
    InvalidMessage,
    /// A batch's sequence numbers do not strictly increase.
    SequenceNotIncreasing,
    /// The pump's counter is behind what the gateway stored (fatal).
    SequenceRegression,
    /// Too many messages; wait `retry_after_s`.
    RateLimited,
    /// The gateway could not store the batch; nothing was acknowledged.
    StorageUnavailable,
    /// The gateway is shutting down (fatal).
    ShuttingDown,
    /// Any other gateway fault.
    Internal,
    /// A code this version does not know: act on `fatal` and `retry_after_s`.
    #[serde(other)]
    Unknown,
}

impl RefusalCode {
    /// Whether the gateway closes the connection after this refusal.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            Self::FrameTooLarge
                | Self::BadFrame
                | Self::UnsupportedVersion
                | Self::VersionMismatch
                | Self::HelloRequired
                | Self::DuplicateHello
                | Self::SequenceRegression
                | Self::ShuttingDown
        )
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A field that fails validation: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ValidationError {
    /// JSON path of the field, e.g. `events[3].drug`.
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
    /// The sequence number of the event concerned, when the field is in an
    /// event that has one.
    pub seq: Option<u64>,
    /// The batch's sequence numbers do not strictly increase (refused with
    /// [`RefusalCode::SequenceNotIncreasing`]).
    pub not_increasing: bool,
}

impl ValidationError {
    fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
            seq: None,
            not_increasing: false,
        }
    }

    fn at_seq(mut self, seq: Option<u64>) -> Self {
        if self.seq.is_none() {
            self.seq = seq;
        }
        self
    }
}

/// Why a payload is not an acceptable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Not JSON, not an object, or `type`/`v` missing or of the wrong type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A `type` this version does not know (the name, cut to 64 bytes).
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A non-hello message in a version this side does not speak.
    #[error("protocol version {got} is not supported (supported: {supported:?})")]
    UnsupportedVersion {
        /// The `v` sent.
        got: u64,
        /// What this side speaks.
        supported: Vec<u16>,
    },
    /// `v` differs from the session's negotiated version.
    #[error("message has v={got}, the session negotiated v={expected}")]
    VersionMismatch {
        /// The `v` sent.
        got: u64,
        /// The negotiated version.
        expected: u16,
    },
    /// A known message with a bad field.
    #[error("invalid message: {0}")]
    Invalid(#[from] ValidationError),
}

impl MessageError {
    /// The refusal the gateway sends for this error.
    pub fn refusal(&self) -> Refusal {
        let (code, seq) = match self {
            Self::Malformed(_) => (RefusalCode::Malformed, None),
            Self::UnknownType(_) => (RefusalCode::UnknownMessageType, None),
            Self::UnsupportedVersion { .. } => (RefusalCode::UnsupportedVersion, None),
            Self::VersionMismatch { .. } => (RefusalCode::VersionMismatch, None),
            Self::Invalid(v) if v.not_increasing => (RefusalCode::SequenceNotIncreasing, v.seq),
            Self::Invalid(v) => (RefusalCode::InvalidMessage, v.seq),
        };
        let supported_versions = match self {
            Self::UnsupportedVersion { supported, .. } => supported.clone(),
            _ => Vec::new(),
        };
        Refusal {
            code,
            reason: refusal_reason(&self.to_string()),
            fatal: code.is_fatal(),
            retry_after_s: None,
            supported_versions,
            expected_next_seq: None,
            // A refusal names only a valid sequence number (the offending
            // one may be 0 or out of range).
            seq: seq.filter(|s| (1..=MAX_SEQ).contains(s)),
        }
    }
}

/// Serialising a message failed (only possible for messages built in code
/// with an unrepresentable timestamp).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode message: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

// ---------------------------------------------------------------------------
// Encoding and parsing
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct Envelope<'a, M: Serialize> {
    v: u16,
    #[serde(flatten)]
    msg: &'a M,
}

fn encode<M: Serialize>(msg: &M, v: u16) -> Result<Vec<u8>, EncodeError> {
    Ok(serde_json::to_vec(&Envelope { v, msg })?)
}

impl PumpMessage {
    /// The frame payload of this message at protocol version `v`.
    pub fn to_payload(&self, v: u16) -> Result<Vec<u8>, EncodeError> {
        encode(self, v)
    }

    /// The message's `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Heartbeat(_) => "heartbeat",
            Self::EventBatch(_) => "event_batch",
            Self::CommandResult(_) => "command_result",
        }
    }
}

impl GatewayMessage {
    /// The frame payload of this message at protocol version `v`.
    pub fn to_payload(&self, v: u16) -> Result<Vec<u8>, EncodeError> {
        encode(self, v)
    }

    /// The message's `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Welcome(_) => "welcome",
            Self::Ack(_) => "ack",
            Self::Command(_) => "command",
            Self::Refusal(_) => "refusal",
        }
    }
}

const PUMP_TYPES: &[&str] = &["hello", "heartbeat", "event_batch", "command_result"];
const GATEWAY_TYPES: &[&str] = &["welcome", "ack", "command", "refusal"];

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A refusal reason from an error message that may quote hostile input:
/// control characters replaced, cut to [`MAX_TEXT_LEN`], so the refusal
/// itself always validates.
pub fn refusal_reason(message: &str) -> String {
    let cleaned: String = message
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    truncate(&cleaned, MAX_TEXT_LEN).to_owned()
}

/// Reads the envelope: returns the object, its `type` and its `v`.
fn envelope(
    payload: &[u8],
    known: &[&str],
    session: Option<u16>,
    opening: &str,
) -> Result<(Map<String, Value>, String), MessageError> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| MessageError::Malformed(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(MessageError::Malformed("not a JSON object".into()));
    };
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(MessageError::Malformed("\"type\" is not a string".into())),
        None => return Err(MessageError::Malformed("no \"type\" member".into())),
    };
    let v = match obj.get("v") {
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| MessageError::Malformed("\"v\" is not a positive integer".into()))?,
        Some(_) => return Err(MessageError::Malformed("\"v\" is not a number".into())),
        None => return Err(MessageError::Malformed("no \"v\" member".into())),
    };
    if v == 0 || v > u64::from(u16::MAX) {
        return Err(MessageError::Malformed(format!(
            "\"v\" {v} is out of range 1..=65535"
        )));
    }
    // The opening message (hello / welcome or refusal) is read whatever its
    // version: its layout is frozen across versions.
    let frozen = ty == opening || ty == "refusal";
    if !frozen {
        match session {
            Some(expected) if v != u64::from(expected) => {
                return Err(MessageError::VersionMismatch { got: v, expected })
            }
            None if !SUPPORTED_VERSIONS.iter().any(|&s| u64::from(s) == v) => {
                return Err(MessageError::UnsupportedVersion {
                    got: v,
                    supported: SUPPORTED_VERSIONS.to_vec(),
                })
            }
            _ => {}
        }
    }
    if !known.contains(&ty.as_str()) {
        return Err(MessageError::UnknownType(truncate(&ty, 64).to_owned()));
    }
    Ok((obj, ty))
}

/// Rewrites `{"kind": "<unknown>", …}` to `{"kind": fallback, "original_kind": "<unknown>", …}`.
fn map_unknown_kind(obj: &mut Value, known: &[&str], fallback: &str) {
    let Value::Object(map) = obj else { return };
    let unknown = match map.get("kind") {
        Some(Value::String(k)) if !known.contains(&k.as_str()) => k.clone(),
        _ => return,
    };
    map.insert("kind".into(), Value::String(fallback.into()));
    map.insert("original_kind".into(), Value::String(unknown));
}

fn field_error(path: &str, e: serde_json::Error) -> MessageError {
    MessageError::Invalid(ValidationError::new(path, e.to_string()))
}

/// Parses and validates a payload a pump sent.
///
/// `session` is the negotiated version once the session is open (`None`
/// before): a non-hello message must carry exactly it. Hello is accepted in
/// any version (negotiation is the caller's, with [`negotiate`]). The
/// hello-first rule is the caller's too.
pub fn parse_pump_message(
    payload: &[u8],
    session: Option<u16>,
) -> Result<PumpMessage, MessageError> {
    let (mut obj, ty) = envelope(payload, PUMP_TYPES, session, "hello")?;
    let msg = if ty == "event_batch" {
        // Event by event, for a precise path and so unknown kinds are kept.
        let events = match obj.remove("events") {
            Some(Value::Array(events)) => events,
            Some(_) => return Err(ValidationError::new("events", "not an array").into()),
            None => return Err(ValidationError::new("events", "missing").into()),
        };
        if events.len() > MAX_EVENTS_PER_BATCH {
            return Err(ValidationError::new(
                "events",
                format!(
                    "{} events; at most {MAX_EVENTS_PER_BATCH} per batch",
                    events.len()
                ),
            )
            .into());
        }
        let mut parsed = Vec::with_capacity(events.len());
        for (i, mut e) in events.into_iter().enumerate() {
            let seq = e.get("seq").and_then(Value::as_u64);
            map_unknown_kind(&mut e, EventKind::KNOWN, "unrecognized");
            let event = serde_json::from_value::<PumpEvent>(e).map_err(|e| {
                MessageError::Invalid(
                    ValidationError::new(format!("events[{i}]"), e.to_string()).at_seq(seq),
                )
            })?;
            parsed.push(event);
        }
        PumpMessage::EventBatch(EventBatch { events: parsed })
    } else {
        serde_json::from_value(Value::Object(obj)).map_err(|e| field_error(&ty, e))?
    };
    msg.validate()?;
    Ok(msg)
}

/// Parses and validates a payload the gateway sent (the pump's side).
/// `session` as for [`parse_pump_message`]; welcome and refusal are accepted
/// in any version.
pub fn parse_gateway_message(
    payload: &[u8],
    session: Option<u16>,
) -> Result<GatewayMessage, MessageError> {
    let (mut obj, ty) = envelope(payload, GATEWAY_TYPES, session, "welcome")?;
    if ty == "command" {
        if let Some(c) = obj.get_mut("command") {
            map_unknown_kind(c, Command::KNOWN, "unsupported");
        }
    }
    let msg: GatewayMessage =
        serde_json::from_value(Value::Object(obj)).map_err(|e| field_error(&ty, e))?;
    msg.validate()?;
    Ok(msg)
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

type VResult = Result<(), ValidationError>;

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn check_text(path: &str, s: &str, max: usize, allow_empty: bool) -> VResult {
    if !allow_empty && s.trim().is_empty() {
        return Err(ValidationError::new(path, "empty"));
    }
    if s.len() > max {
        return Err(ValidationError::new(
            path,
            format!("{} bytes; at most {max}", s.len()),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(ValidationError::new(
            path,
            format!("contains control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

fn check_name(path: &str, s: &str) -> VResult {
    check_text(path, s, MAX_NAME_LEN, false)
}

fn check_opt_name(path: &str, s: &Option<String>) -> VResult {
    s.as_deref().map_or(Ok(()), |s| check_name(path, s))
}

fn check_ident(path: &str, s: &str, max: usize) -> VResult {
    if s.is_empty() || s.len() > max {
        return Err(ValidationError::new(
            path,
            format!("must be 1 to {max} bytes"),
        ));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ValidationError::new(
            path,
            "only a-z, 0-9 and _ are allowed",
        ));
    }
    Ok(())
}

/// A SHA-256 digest: 64 lowercase hex digits.
pub fn check_digest(path: &str, s: &str) -> Result<(), ValidationError> {
    if s.len() != 64 {
        return Err(ValidationError::new(
            path,
            format!("a SHA-256 digest is 64 hex digits, not {}", s.len()),
        ));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ValidationError::new(
            path,
            "only lowercase hex digits are allowed",
        ));
    }
    Ok(())
}

fn check_mac(path: &str, s: &str) -> VResult {
    let ok = s.len() == 17
        && s.split(':').count() == 6
        && s.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            path,
            "not a MAC address of the form aa:bb:cc:dd:ee:ff",
        ))
    }
}

fn check_hostname(path: &str, s: &str) -> VResult {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(path, "not a host name (RFC 1123)"))
    }
}

fn check_seq(path: &str, seq: u64) -> VResult {
    if seq == 0 || seq > MAX_SEQ {
        return Err(ValidationError::new(
            path,
            format!("sequence number {seq} is outside 1..={MAX_SEQ}"),
        ));
    }
    Ok(())
}

fn check_command_id(path: &str, s: &str) -> VResult {
    if s.is_empty() || s.len() > MAX_COMMAND_ID_LEN {
        return Err(ValidationError::new(
            path,
            format!("must be 1 to {MAX_COMMAND_ID_LEN} bytes"),
        ));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(ValidationError::new(
            path,
            "only A-Z, a-z, 0-9 and . _ : - are allowed",
        ));
    }
    Ok(())
}

fn check_quantity(path: &str, q: &Quantity) -> VResult {
    let (int, frac) = match q.value.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (q.value.as_str(), None),
    };
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(int, 12) || !frac.is_none_or(|f| digits(f, 6)) {
        return Err(ValidationError::new(
            join(path, "value"),
            "a non-negative decimal with at most 12 integer and 6 fraction digits",
        ));
    }
    check_text(&join(path, "unit"), &q.unit, 32, false)
}

fn check_opt_quantity(path: &str, q: &Option<Quantity>) -> VResult {
    q.as_ref().map_or(Ok(()), |q| check_quantity(path, q))
}

fn check_versions(path: &str, versions: &[u16]) -> VResult {
    if versions.is_empty() || versions.len() > MAX_VERSIONS_OFFERED {
        return Err(ValidationError::new(
            path,
            format!("must list 1 to {MAX_VERSIONS_OFFERED} versions"),
        ));
    }
    for (i, &v) in versions.iter().enumerate() {
        if v == 0 {
            return Err(ValidationError::new(
                format!("{path}[{i}]"),
                "version 0 does not exist",
            ));
        }
        if versions[..i].contains(&v) {
            return Err(ValidationError::new(
                format!("{path}[{i}]"),
                format!("version {v} listed twice"),
            ));
        }
    }
    Ok(())
}

impl PumpMessage {
    /// Checks every field against the protocol's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Hello(h) => h.validate(),
            Self::Heartbeat(h) => h.validate(),
            Self::EventBatch(b) => b.validate(),
            Self::CommandResult(r) => r.validate(),
        }
    }
}

impl Hello {
    /// See [`PumpMessage::validate`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_versions("versions", &self.versions)?;
        check_name("firmware.version", &self.firmware.version)?;
        check_digest("firmware.digest", &self.firmware.digest)?;
        if let Some(l) = &self.library {
            check_name("library.version", &l.version)?;
            check_digest("library.digest", &l.digest)?;
        }
        let n = &self.network;
        check_mac("network.mac", &n.mac)?;
        if let Some(h) = &n.hostname {
            check_hostname("network.hostname", h)?;
        }
        if let Some(s) = &n.ssid {
            check_text("network.ssid", s, 32, false)?;
        }
        if let Some(b) = &n.bssid {
            check_mac("network.bssid", b)?;
        }
        check_opt_name("network.ap_name", &n.ap_name)?;
        check_opt_name("care_area", &self.care_area)?;
        if self.next_seq == 0 || self.next_seq > MAX_SEQ + 1 {
            return Err(ValidationError::new(
                "next_seq",
                format!("{} is outside 1..={}", self.next_seq, MAX_SEQ + 1),
            ));
        }
        check_opt_name("agent", &self.agent)
    }
}

impl Heartbeat {
    /// See [`PumpMessage::validate`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.battery_pct > 100 {
            return Err(ValidationError::new(
                "battery_pct",
                format!("{} is above 100", self.battery_pct),
            ));
        }
        check_opt_name("library_version", &self.library_version)
    }
}

impl EventBatch {
    /// See [`PumpMessage::validate`]: 1 to [`MAX_EVENTS_PER_BATCH`] valid
    /// events whose sequence numbers strictly increase (gaps are allowed).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.events.is_empty() {
            return Err(ValidationError::new(
                "events",
                "a batch has at least one event",
            ));
        }
        if self.events.len() > MAX_EVENTS_PER_BATCH {
            return Err(ValidationError::new(
                "events",
                format!(
                    "{} events; at most {MAX_EVENTS_PER_BATCH} per batch",
                    self.events.len()
                ),
            ));
        }
        let mut prev = 0;
        for (i, e) in self.events.iter().enumerate() {
            let path = format!("events[{i}]");
            e.validate_at(&path)
                .map_err(|err| err.at_seq(Some(e.seq)))?;
            if e.seq <= prev {
                let mut err = ValidationError::new(
                    join(&path, "seq"),
                    format!("{} is not greater than the previous event's {prev}", e.seq),
                )
                .at_seq(Some(e.seq));
                err.not_increasing = true;
                return Err(err);
            }
            prev = e.seq;
        }
        Ok(())
    }
}

impl PumpEvent {
    /// Checks the event's fields.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_at("")
    }

    fn validate_at(&self, path: &str) -> VResult {
        check_seq(&join(path, "seq"), self.seq)?;
        if self.detail.len() > MAX_DETAIL_ENTRIES {
            return Err(ValidationError::new(
                join(path, "detail"),
                format!(
                    "{} entries; at most {MAX_DETAIL_ENTRIES}",
                    self.detail.len()
                ),
            ));
        }
        for (k, v) in &self.detail {
            check_ident(&join(path, "detail"), k, MAX_DETAIL_KEY_LEN)?;
            check_text(
                &format!("{}.{k}", join(path, "detail")),
                v,
                MAX_DETAIL_VALUE_LEN,
                true,
            )?;
        }
        self.kind.validate_at(path)
    }
}

impl EventKind {
    /// Checks the kind's fields (paths relative to the event).
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_at("")
    }

    fn validate_at(&self, path: &str) -> VResult {
        let p = |f: &str| join(path, f);
        match self {
            Self::InfusionProgrammed(i)
            | Self::InfusionStarted(i)
            | Self::InfusionPaused(i)
            | Self::InfusionStopped(i) => {
                check_name(&p("infusion_id"), &i.infusion_id)?;
                check_opt_name(&p("drug"), &i.drug)?;
                check_opt_quantity(&p("rate"), &i.rate)?;
                check_opt_quantity(&p("vtbi"), &i.vtbi)
            }
            Self::DoseCheck(d) => {
                check_name(&p("drug"), &d.drug)?;
                check_name(&p("care_area"), &d.care_area)?;
                check_opt_quantity(&p("dose"), &d.dose)?;
                check_opt_quantity(&p("limit"), &d.limit)?;
                check_opt_name(&p("infusion_id"), &d.infusion_id)?;
                check_opt_name(&p("library_version"), &d.library_version)?;
                d.override_reason.as_deref().map_or(Ok(()), |r| {
                    check_text(&p("override_reason"), r, MAX_TEXT_LEN, false)
                })
            }
            Self::Alarm { infusion_id, .. } => check_opt_name(&p("infusion_id"), infusion_id),
            Self::LibraryInstalled { version, digest } => {
                check_name(&p("version"), version)?;
                check_digest(&p("digest"), digest)
            }
            Self::LibraryRejected {
                version, digest, ..
            } => {
                check_opt_name(&p("version"), version)?;
                digest
                    .as_deref()
                    .map_or(Ok(()), |d| check_digest(&p("digest"), d))
            }
            Self::FirmwareChanged { from, to, digest } => {
                check_opt_name(&p("from"), from)?;
                check_name(&p("to"), to)?;
                check_digest(&p("digest"), digest)
            }
            Self::MaintenanceLogin { account, .. } => check_opt_name(&p("account"), account),
            Self::CareAreaChanged { from, to } => {
                check_opt_name(&p("from"), from)?;
                check_name(&p("to"), to)
            }
            Self::EventsDropped { count } => {
                if *count == 0 {
                    Err(ValidationError::new(p("count"), "must be at least 1"))
                } else {
                    Ok(())
                }
            }
            Self::Other { name } => check_ident(&p("name"), name, 64),
            Self::Unrecognized { original_kind } => check_ident(&p("kind"), original_kind, 64),
        }
    }
}

impl CommandResult {
    /// See [`PumpMessage::validate`].
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_command_id("id", &self.id)?;
        if let Some(d) = &self.detail {
            check_text("detail", d, MAX_TEXT_LEN, true)?;
        }
        Ok(())
    }
}

impl GatewayMessage {
    /// Checks every field against the protocol's rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Welcome(w) => {
                check_command_id("session", &w.session)?;
                if w.version == 0 {
                    return Err(ValidationError::new("version", "version 0 does not exist"));
                }
                if !HEARTBEAT_INTERVAL_RANGE_S.contains(&w.heartbeat_interval_s) {
                    return Err(ValidationError::new(
                        "heartbeat_interval_s",
                        format!(
                            "{} is outside {}..={}",
                            w.heartbeat_interval_s,
                            HEARTBEAT_INTERVAL_RANGE_S.start(),
                            HEARTBEAT_INTERVAL_RANGE_S.end()
                        ),
                    ));
                }
                if w.expected_next_seq == 0 || w.expected_next_seq > MAX_SEQ + 1 {
                    return Err(ValidationError::new(
                        "expected_next_seq",
                        format!("{} is outside 1..={}", w.expected_next_seq, MAX_SEQ + 1),
                    ));
                }
                if w.max_batch_events == 0 || w.max_batch_events as usize > MAX_EVENTS_PER_BATCH {
                    return Err(ValidationError::new(
                        "max_batch_events",
                        format!("must be 1 to {MAX_EVENTS_PER_BATCH}"),
                    ));
                }
                if (w.max_frame_bytes as usize) < 1024
                    || w.max_frame_bytes as usize > crate::frame::MAX_FRAME_LEN
                {
                    return Err(ValidationError::new(
                        "max_frame_bytes",
                        format!("must be 1024 to {}", crate::frame::MAX_FRAME_LEN),
                    ));
                }
                Ok(())
            }
            Self::Ack(a) => check_seq("up_to_seq", a.up_to_seq),
            Self::Command(c) => {
                check_command_id("id", &c.id)?;
                match &c.command {
                    Command::RenewCertificate { reason, .. } => {
                        reason.as_deref().map_or(Ok(()), |r| {
                            check_text("command.reason", r, MAX_TEXT_LEN, false)
                        })
                    }
                    Command::DrugLibraryAvailable {
                        version, digest, ..
                    } => {
                        check_name("command.version", version)?;
                        check_digest("command.digest", digest)
                    }
                    Command::QuarantineNotice {
                        reason, incident, ..
                    } => {
                        check_text("command.reason", reason, MAX_TEXT_LEN, false)?;
                        check_opt_name("command.incident", incident)
                    }
                    Command::RequestStatus => Ok(()),
                    Command::Unsupported { original_kind } => {
                        check_ident("command.kind", original_kind, 64)
                    }
                }
            }
            Self::Refusal(r) => {
                check_text("reason", &r.reason, MAX_TEXT_LEN, true)?;
                if r.supported_versions.len() > MAX_VERSIONS_OFFERED {
                    return Err(ValidationError::new(
                        "supported_versions",
                        format!("at most {MAX_VERSIONS_OFFERED} versions"),
                    ));
                }
                if let Some(s) = r.seq {
                    check_seq("seq", s)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.write_str(v.as_str().unwrap_or("unknown"))
    }
}

// ---------------------------------------------------------------------------
// Batching helper for the agent
// ---------------------------------------------------------------------------

/// Encodes the longest prefix of `events` that fits both `max_events` and a
/// frame of `max_frame_bytes`, as one `event_batch` payload at version `v`.
/// Returns the payload and how many events it holds (0 only when `events` is
/// empty or the first event alone does not fit, which a queue that validates
/// on push cannot produce).
pub fn encode_batch(
    events: &[PumpEvent],
    v: u16,
    max_events: usize,
    max_frame_bytes: usize,
) -> Result<(Vec<u8>, usize), EncodeError> {
    let head = format!("{{\"v\":{v},\"type\":\"event_batch\",\"events\":[");
    let mut out = head.into_bytes();
    let mut n = 0;
    for e in events.iter().take(max_events.min(MAX_EVENTS_PER_BATCH)) {
        let json = serde_json::to_vec(e)?;
        let extra = json.len() + usize::from(n > 0) + 2; // separator, then "]}"
        if out.len() + extra > max_frame_bytes {
            break;
        }
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&json);
        n += 1;
    }
    if n == 0 {
        return Ok((Vec::new(), 0));
    }
    out.extend_from_slice(b"]}");
    Ok((out, n))
}

#[cfg(test)]
mod tests;
