//! The event envelope: one typed, versioned record for everything the
//! detection engine looks at, whichever part of Pumpward produced it.
//!
//! The JSON form is the envelope's fields beside a `body` object tagged by
//! `kind`:
//!
//! ```json
//! {"schema_version": 1, "id": "gw1:pump-0042:17",
//!  "occurred_at": "2026-11-26T10:00:00Z", "received_at": "2026-11-26T10:00:01Z",
//!  "source": "pump", "asset_id": "pump-0042", "care_area": "ICU",
//!  "body": {"kind": "dose_check", "result": "hard_block", "drug": "Heparin"}}
//! ```
//!
//! Unknown members are refused (`deny_unknown_fields`): unlike the device
//! protocol, which must accept newer pumps, every producer of these events is
//! Pumpward itself, so an unknown member is a bug or a forgery, and silently
//! dropping it could drop evidence a rule needs. Leaf types come from the
//! crates that own them: pump alarm kinds, limits and login methods from
//! `pumpward-proto`, the observed [`Flow`] from `pumpward-flow`, the audit
//! record from `pumpward-core`.
//!
//! Decode outside input only with [`decode_event`]: it parses, validates and
//! counts every refusal by its [`RejectReason`].

use std::fmt;
use std::net::IpAddr;

use pumpward_core::audit::AuditRecord;
use pumpward_core::inventory::AssetId;
use pumpward_flow::{Flow, ObservedMac};
use pumpward_proto::message::{
    self as proto, AlarmKind, EventKind, Infusion, LibraryRejectReason, LimitKind, LoginMethod,
    Quantity,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The envelope version this crate writes and reads.
pub const SCHEMA_VERSION: u16 = 1;
/// Bytes of one event's JSON form; larger input is refused before parsing.
pub const MAX_EVENT_JSON_BYTES: usize = 16 * 1024;
/// Bytes of an event id (`[A-Za-z0-9._:-]`).
pub const MAX_EVENT_ID_LEN: usize = 128;
/// Bytes of a name (care area, version, rule, zone, account).
pub const MAX_NAME_LEN: usize = proto::MAX_NAME_LEN;
/// Bytes of free text (reasons).
pub const MAX_TEXT_LEN: usize = proto::MAX_TEXT_LEN;
/// How far an event may claim to have happened after it was received: pump
/// clocks drift, but an event from the future beyond this is a broken clock
/// or a forgery, and would poison time windows.
pub const MAX_CLOCK_SKEW_S: i64 = 300;
/// Addresses a certificate anomaly may list.
pub const MAX_ANOMALY_ADDRESSES: usize = 16;

/// One thing that happened, as the detection engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u16,
    /// Unique and stable across replays (the producer derives it, e.g. from
    /// the device and its sequence number), so that replaying an event
    /// yields the same alert ids.
    pub id: String,
    /// When it happened, by the producer's clock.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When Pumpward received it; windows run on this clock, which is
    /// monotonic per pipeline, unlike pump clocks.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Which part of the ecosystem reported it.
    pub source: Source,
    /// The asset concerned, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<AssetId>,
    /// The care area of that asset, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_area: Option<String>,
    /// What happened.
    pub body: Body,
}

/// Which part of the ecosystem reported an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A pump, through its event queue.
    Pump,
    /// The device gateway.
    Gateway,
    /// A network sensor or policy evaluation.
    Network,
    /// The administrative audit trail.
    Admin,
    /// Vulnerability management.
    Vulnerability,
}

impl Source {
    /// Every source, in a fixed order (the expression language's names).
    pub const ALL: [Source; 5] = [
        Source::Pump,
        Source::Gateway,
        Source::Network,
        Source::Admin,
        Source::Vulnerability,
    ];

    /// The snake_case name used in JSON and in custom rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Pump => "pump",
            Source::Gateway => "gateway",
            Source::Network => "network",
            Source::Admin => "admin",
            Source::Vulnerability => "vulnerability",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened: one variant per event kind, tagged `kind` in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    // --- pump ---
    /// An infusion was programmed and confirmed.
    InfusionProgrammed {
        /// The infusion (no patient identifier).
        infusion: Infusion,
    },
    /// The dose-check engine judged a programming.
    DoseCheck {
        /// The outcome.
        result: DoseOutcome,
        /// Drug name as in the library (none for a basic infusion).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drug: Option<String>,
        /// The limit reached, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit_kind: Option<LimitKind>,
        /// The programmed dose.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dose: Option<Quantity>,
        /// The limit's value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<Quantity>,
        /// The library whose limits applied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        library_version: Option<String>,
        /// Why the clinician overrode a soft limit, when they gave a reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        override_reason: Option<String>,
    },
    /// An alarm was raised.
    Alarm {
        /// Which alarm.
        alarm: AlarmKind,
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
    /// The firmware changed.
    FirmwareChanged {
        /// The pump model (the expected digest depends on model and version).
        model: String,
        /// New version.
        version: String,
        /// SHA-256 of the new image.
        digest: String,
    },
    /// Someone logged in to the pump's service functions.
    MaintenanceLogin {
        /// How.
        method: LoginMethod,
        /// Whether it succeeded.
        success: bool,
        /// The account, if the pump has accounts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
    },
    // --- gateway ---
    /// A device connected to the gateway with a certificate.
    GatewayConnection {
        /// The peer's address.
        peer: IpAddr,
        /// SHA-256 fingerprint of the client certificate.
        certificate: String,
    },
    /// A connection failed to authenticate.
    AuthFailure {
        /// The peer's address.
        peer: IpAddr,
        /// The presented certificate's fingerprint, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<String>,
        /// Why (e.g. `unknown_ca`, `revoked`, `expired`).
        reason: String,
    },
    /// The gateway saw something wrong with a certificate's use.
    CertificateAnomaly {
        /// What.
        anomaly: CertificateAnomalyKind,
        /// SHA-256 fingerprint of the certificate.
        certificate: String,
        /// The addresses it was used from.
        addresses: Vec<IpAddr>,
    },
    // --- network ---
    /// A flow broke the zone policy.
    PolicyViolation {
        /// Which policy rule was broken (its name in the policy).
        rule: String,
        /// How.
        violation: ViolationKind,
        /// The evidence.
        flow: Flow,
        /// For `device_in_two_places`: the flow of the other, earlier
        /// sighting (`flow` is the later one), so both addresses, times and
        /// flows are the evidence. Boxed: absent from every other event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        earlier_flow: Option<Box<Flow>>,
    },
    /// A flow was observed (feeds destination baselines; no rule alerts on it).
    FlowObserved {
        /// The flow.
        flow: Flow,
    },
    /// A device not in the inventory appeared.
    UnknownDevice {
        /// Its MAC.
        mac: ObservedMac,
        /// Its address, if seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip: Option<IpAddr>,
        /// The network zone it appeared in.
        zone: String,
        /// Whether that zone is a medical-device zone.
        device_zone: bool,
    },
    // --- admin ---
    /// A record of the audit trail.
    AdminAudit {
        /// The sealed record.
        record: AuditRecord,
    },
    // --- vulnerability ---
    /// A new `vulnerability.affected` finding was opened.
    VulnerabilityAffected {
        /// The vulnerability (CVE or advisory id).
        vulnerability: String,
        /// Whether it is in CISA's Known Exploited Vulnerabilities catalogue.
        kev: bool,
    },
    /// A vulnerability was added to the KEV catalogue.
    KevAdded {
        /// The CVE.
        vulnerability: String,
    },
}

/// The result of a dose check, with what each outcome carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoseOutcome {
    /// Within every limit.
    WithinLimits,
    /// A soft limit was exceeded and the clinician overrode it.
    SoftOverride,
    /// A hard limit refused the programming.
    HardBlock,
    /// Programmed without the library ("basic infusion"): no limits applied.
    BasicInfusion,
}

impl DoseOutcome {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DoseOutcome::WithinLimits => "within_limits",
            DoseOutcome::SoftOverride => "soft_override",
            DoseOutcome::HardBlock => "hard_block",
            DoseOutcome::BasicInfusion => "basic_infusion",
        }
    }
}

/// A certificate anomaly seen by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateAnomalyKind {
    /// The same certificate connected from two addresses at once.
    ConcurrentAddresses,
    /// The certificate's subject does not match the inventory.
    SubjectMismatch,
    /// A revoked or suspended certificate was presented.
    Revoked,
}

impl CertificateAnomalyKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateAnomalyKind::ConcurrentAddresses => "concurrent_addresses",
            CertificateAnomalyKind::SubjectMismatch => "subject_mismatch",
            CertificateAnomalyKind::Revoked => "revoked",
        }
    }
}

/// How a flow broke the zone policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A pump talked to the internet.
    Internet,
    /// A pump talked to another device in a device zone.
    EastWest,
    /// A registered device's MAC seen at two addresses or zones at once;
    /// the flow is the later sighting.
    DeviceInTwoPlaces,
    /// Any other forbidden flow.
    Other,
}

impl ViolationKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::Internet => "internet",
            ViolationKind::EastWest => "east_west",
            ViolationKind::DeviceInTwoPlaces => "device_in_two_places",
            ViolationKind::Other => "other",
        }
    }
}

/// The kind of a body, as a small copyable value (for routing and counting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    InfusionProgrammed,
    DoseCheck,
    Alarm,
    LibraryInstalled,
    LibraryRejected,
    FirmwareChanged,
    MaintenanceLogin,
    GatewayConnection,
    AuthFailure,
    CertificateAnomaly,
    PolicyViolation,
    FlowObserved,
    UnknownDevice,
    AdminAudit,
    VulnerabilityAffected,
    KevAdded,
}

impl BodyKind {
    /// Every kind, in declaration order.
    pub const ALL: [BodyKind; 16] = [
        BodyKind::InfusionProgrammed,
        BodyKind::DoseCheck,
        BodyKind::Alarm,
        BodyKind::LibraryInstalled,
        BodyKind::LibraryRejected,
        BodyKind::FirmwareChanged,
        BodyKind::MaintenanceLogin,
        BodyKind::GatewayConnection,
        BodyKind::AuthFailure,
        BodyKind::CertificateAnomaly,
        BodyKind::PolicyViolation,
        BodyKind::FlowObserved,
        BodyKind::UnknownDevice,
        BodyKind::AdminAudit,
        BodyKind::VulnerabilityAffected,
        BodyKind::KevAdded,
    ];

    /// The `kind` name used in JSON and in custom rules.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyKind::InfusionProgrammed => "infusion_programmed",
            BodyKind::DoseCheck => "dose_check",
            BodyKind::Alarm => "alarm",
            BodyKind::LibraryInstalled => "library_installed",
            BodyKind::LibraryRejected => "library_rejected",
            BodyKind::FirmwareChanged => "firmware_changed",
            BodyKind::MaintenanceLogin => "maintenance_login",
            BodyKind::GatewayConnection => "gateway_connection",
            BodyKind::AuthFailure => "auth_failure",
            BodyKind::CertificateAnomaly => "certificate_anomaly",
            BodyKind::PolicyViolation => "policy_violation",
            BodyKind::FlowObserved => "flow_observed",
            BodyKind::UnknownDevice => "unknown_device",
            BodyKind::AdminAudit => "admin_audit",
            BodyKind::VulnerabilityAffected => "vulnerability_affected",
            BodyKind::KevAdded => "kev_added",
        }
    }

    /// The only source that may report this kind.
    pub fn source(self) -> Source {
        match self {
            BodyKind::InfusionProgrammed
            | BodyKind::DoseCheck
            | BodyKind::Alarm
            | BodyKind::LibraryInstalled
            | BodyKind::LibraryRejected
            | BodyKind::FirmwareChanged
            | BodyKind::MaintenanceLogin => Source::Pump,
            BodyKind::GatewayConnection | BodyKind::AuthFailure | BodyKind::CertificateAnomaly => {
                Source::Gateway
            }
            BodyKind::PolicyViolation | BodyKind::FlowObserved | BodyKind::UnknownDevice => {
                Source::Network
            }
            BodyKind::AdminAudit => Source::Admin,
            BodyKind::VulnerabilityAffected | BodyKind::KevAdded => Source::Vulnerability,
        }
    }
}

impl Body {
    /// Its kind.
    pub fn kind(&self) -> BodyKind {
        match self {
            Body::InfusionProgrammed { .. } => BodyKind::InfusionProgrammed,
            Body::DoseCheck { .. } => BodyKind::DoseCheck,
            Body::Alarm { .. } => BodyKind::Alarm,
            Body::LibraryInstalled { .. } => BodyKind::LibraryInstalled,
            Body::LibraryRejected { .. } => BodyKind::LibraryRejected,
            Body::FirmwareChanged { .. } => BodyKind::FirmwareChanged,
            Body::MaintenanceLogin { .. } => BodyKind::MaintenanceLogin,
            Body::GatewayConnection { .. } => BodyKind::GatewayConnection,
            Body::AuthFailure { .. } => BodyKind::AuthFailure,
            Body::CertificateAnomaly { .. } => BodyKind::CertificateAnomaly,
            Body::PolicyViolation { .. } => BodyKind::PolicyViolation,
            Body::FlowObserved { .. } => BodyKind::FlowObserved,
            Body::UnknownDevice { .. } => BodyKind::UnknownDevice,
            Body::AdminAudit { .. } => BodyKind::AdminAudit,
            Body::VulnerabilityAffected { .. } => BodyKind::VulnerabilityAffected,
            Body::KevAdded { .. } => BodyKind::KevAdded,
        }
    }
}

impl Event {
    /// Something Pumpward observed itself at `at` (occurred and received at
    /// once: its own clock); the source is the one the body's kind requires.
    pub fn observed(
        id: String,
        at: OffsetDateTime,
        asset_id: Option<AssetId>,
        body: Body,
    ) -> Event {
        Event {
            schema_version: SCHEMA_VERSION,
            id,
            occurred_at: at,
            received_at: at,
            source: body.kind().source(),
            asset_id,
            care_area: None,
            body,
        }
    }

    /// A refused gateway connection from `peer` at `at`.
    pub fn auth_failure(id: String, at: OffsetDateTime, peer: IpAddr, reason: String) -> Event {
        Event::observed(
            id,
            at,
            None,
            Body::AuthFailure {
                peer,
                certificate: None,
                reason,
            },
        )
    }

    /// `received_at` in microseconds since the Unix epoch: the engine's clock.
    pub fn received_us(&self) -> i64 {
        to_us(self.received_at)
    }

    /// Checks what the types cannot: the version, the id, lengths, digests,
    /// the clock, and that the source may report this kind.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(Invalid::new(
                RejectReason::UnsupportedSchemaVersion,
                "schema_version",
                format!(
                    "version {} is not supported; this engine reads {SCHEMA_VERSION}",
                    self.schema_version
                ),
            ));
        }
        check_id("id", &self.id)?;
        let skew = (self.occurred_at - self.received_at).whole_seconds();
        if skew > MAX_CLOCK_SKEW_S {
            return Err(Invalid::new(
                RejectReason::ClockSkew,
                "occurred_at",
                format!(
                    "is {skew} s after received_at; at most {MAX_CLOCK_SKEW_S} s of clock skew is accepted"
                ),
            ));
        }
        if let Some(area) = &self.care_area {
            check_name("care_area", area)?;
        }
        let kind = self.body.kind();
        if kind.source() != self.source {
            return Err(Invalid::new(
                RejectReason::SourceMismatch,
                "source",
                format!(
                    "a {} event comes from the {}, not from {}",
                    kind.as_str(),
                    kind.source(),
                    self.source
                ),
            ));
        }
        if self.source == Source::Pump && self.asset_id.is_none() {
            return Err(Invalid::new(
                RejectReason::MissingAsset,
                "asset_id",
                "a pump event must name its asset",
            ));
        }
        self.body.validate()
    }
}

impl Body {
    fn validate(&self) -> Result<(), Invalid> {
        match self {
            Body::InfusionProgrammed { infusion } => {
                check_name("body.infusion.infusion_id", &infusion.infusion_id)?;
                opt(check_name, "body.infusion.drug", &infusion.drug)
            }
            Body::DoseCheck {
                drug,
                library_version,
                override_reason,
                ..
            } => {
                opt(check_name, "body.drug", drug)?;
                opt(check_name, "body.library_version", library_version)?;
                opt(check_text, "body.override_reason", override_reason)
            }
            Body::Alarm { .. } => Ok(()),
            Body::LibraryInstalled { version, digest } => {
                check_name("body.version", version)?;
                check_digest("body.digest", digest)
            }
            Body::LibraryRejected {
                version, digest, ..
            } => {
                opt(check_name, "body.version", version)?;
                opt(check_digest, "body.digest", digest)
            }
            Body::FirmwareChanged {
                model,
                version,
                digest,
            } => {
                check_name("body.model", model)?;
                check_name("body.version", version)?;
                check_digest("body.digest", digest)
            }
            Body::MaintenanceLogin { account, .. } => opt(check_name, "body.account", account),
            Body::GatewayConnection { certificate, .. } => {
                check_digest("body.certificate", certificate)
            }
            Body::AuthFailure {
                certificate,
                reason,
                ..
            } => {
                opt(check_digest, "body.certificate", certificate)?;
                check_name("body.reason", reason)
            }
            Body::CertificateAnomaly {
                certificate,
                addresses,
                ..
            } => {
                check_digest("body.certificate", certificate)?;
                if addresses.is_empty() || addresses.len() > MAX_ANOMALY_ADDRESSES {
                    return Err(Invalid::new(
                        RejectReason::InvalidField,
                        "body.addresses",
                        format!(
                            "lists {} addresses; 1 to {MAX_ANOMALY_ADDRESSES} are allowed",
                            addresses.len()
                        ),
                    ));
                }
                Ok(())
            }
            Body::PolicyViolation { rule, .. } => check_name("body.rule", rule),
            Body::FlowObserved { .. } => Ok(()),
            Body::UnknownDevice { zone, .. } => check_name("body.zone", zone),
            Body::AdminAudit { record } => {
                check_name("body.record.actor", &record.entry.actor)?;
                check_name("body.record.action", &record.entry.action)
            }
            Body::VulnerabilityAffected { vulnerability, .. }
            | Body::KevAdded { vulnerability } => check_name("body.vulnerability", vulnerability),
        }
    }
}

/// Converts a pump's queued event into an envelope. `None` for the kinds
/// the engine does not use (infusion start/pause/stop, care-area change,
/// dropped-events notices, unrecognised kinds): they stay in the device
/// event store but carry nothing a rule needs.
///
/// The soft-override reason comes from the dose check's `override_reason`
/// field (or, from older agents, its detail); a basic infusion is the
/// dose check's `basic_infusion` result.
pub fn from_pump_event(
    ev: &proto::PumpEvent,
    asset_id: AssetId,
    model: &str,
    care_area: Option<String>,
    received_at: OffsetDateTime,
) -> Option<Event> {
    let body = match &ev.kind {
        EventKind::InfusionProgrammed(inf) => Body::InfusionProgrammed {
            infusion: inf.clone(),
        },
        EventKind::DoseCheck(dc) => Body::DoseCheck {
            result: match dc.result {
                proto::DoseCheckResult::WithinLimits => DoseOutcome::WithinLimits,
                proto::DoseCheckResult::SoftOverride => DoseOutcome::SoftOverride,
                proto::DoseCheckResult::HardBlock => DoseOutcome::HardBlock,
                proto::DoseCheckResult::BasicInfusion => DoseOutcome::BasicInfusion,
            },
            drug: Some(dc.drug.clone()),
            limit_kind: dc.limit_kind,
            dose: dc.dose.clone(),
            limit: dc.limit.clone(),
            library_version: dc.library_version.clone(),
            // The field since the pump's dose checks carry it; the detail
            // entry from agents before it.
            override_reason: dc
                .override_reason
                .clone()
                .or_else(|| ev.detail.get("override_reason").cloned()),
        },
        EventKind::Alarm { alarm, .. } => Body::Alarm { alarm: *alarm },
        EventKind::LibraryInstalled { version, digest } => Body::LibraryInstalled {
            version: version.clone(),
            digest: digest.clone(),
        },
        EventKind::LibraryRejected {
            version,
            digest,
            reason,
        } => Body::LibraryRejected {
            version: version.clone(),
            digest: digest.clone(),
            reason: *reason,
        },
        EventKind::FirmwareChanged { to, digest, .. } => Body::FirmwareChanged {
            model: model.to_owned(),
            version: to.clone(),
            digest: digest.clone(),
        },
        EventKind::MaintenanceLogin {
            method,
            success,
            account,
        } => Body::MaintenanceLogin {
            method: *method,
            success: *success,
            account: account.clone(),
        },
        _ => return None,
    };
    let id = format!("pump:{}:{}", asset_id.as_str(), ev.seq);
    // A dose check names the care area whose limits applied: the pump's
    // setting at that moment, which is what care-area bursts are about
    // (the inventory's may be stale after a pump moved ward).
    let care_area = match &ev.kind {
        EventKind::DoseCheck(dc) if !dc.care_area.is_empty() => Some(dc.care_area.clone()),
        _ => care_area,
    };
    Some(Event {
        schema_version: SCHEMA_VERSION,
        id,
        occurred_at: ev.at,
        received_at,
        source: Source::Pump,
        asset_id: Some(asset_id),
        care_area,
        body,
    })
}

// ---------------------------------------------------------------------------
// Boundary: decoding and counted refusals
// ---------------------------------------------------------------------------

/// Why an event was refused at the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Larger than [`MAX_EVENT_JSON_BYTES`].
    TooLarge,
    /// Not JSON, or not an object of the right shape.
    MalformedJson,
    /// A member this schema does not have.
    UnknownField,
    /// A `body.kind` this schema does not have.
    UnknownKind,
    /// `schema_version` is not [`SCHEMA_VERSION`].
    UnsupportedSchemaVersion,
    /// A field's value is out of bounds (length, characters, digest).
    InvalidField,
    /// The source may not report this kind.
    SourceMismatch,
    /// A pump event without an asset.
    MissingAsset,
    /// `occurred_at` too far after `received_at`.
    ClockSkew,
}

impl RejectReason {
    /// Every reason, in counter order.
    pub const ALL: [RejectReason; 9] = [
        RejectReason::TooLarge,
        RejectReason::MalformedJson,
        RejectReason::UnknownField,
        RejectReason::UnknownKind,
        RejectReason::UnsupportedSchemaVersion,
        RejectReason::InvalidField,
        RejectReason::SourceMismatch,
        RejectReason::MissingAsset,
        RejectReason::ClockSkew,
    ];

    /// The snake_case name (metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooLarge => "too_large",
            RejectReason::MalformedJson => "malformed_json",
            RejectReason::UnknownField => "unknown_field",
            RejectReason::UnknownKind => "unknown_kind",
            RejectReason::UnsupportedSchemaVersion => "unsupported_schema_version",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::SourceMismatch => "source_mismatch",
            RejectReason::MissingAsset => "missing_asset",
            RejectReason::ClockSkew => "clock_skew",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A refused event: the counted reason, where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason_name}: {path}: {problem}", reason_name = reason.as_str())]
pub struct Invalid {
    /// The counted reason.
    pub reason: RejectReason,
    /// JSON path, or `line:column` for a parse error.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

impl Invalid {
    fn new(reason: RejectReason, path: &str, problem: impl Into<String>) -> Invalid {
        Invalid {
            reason,
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Refusals by reason since the counters were created (exported as metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectCounters {
    counts: [u64; RejectReason::ALL.len()],
}

impl RejectCounters {
    /// Counts one refusal.
    pub fn count(&mut self, reason: RejectReason) {
        let c = &mut self.counts[reason.index()];
        *c = c.saturating_add(1);
    }

    /// Refusals for one reason.
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.counts[reason.index()]
    }

    /// Every refusal.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        RejectReason::ALL.iter().map(|r| (*r, self.get(*r)))
    }
}

/// Parses and validates one event's JSON; a refusal is counted.
pub fn decode_event(bytes: &[u8], counters: &mut RejectCounters) -> Result<Event, Invalid> {
    let r = decode_uncounted(bytes);
    if let Err(e) = &r {
        counters.count(e.reason);
    }
    r
}

fn decode_uncounted(bytes: &[u8]) -> Result<Event, Invalid> {
    if bytes.len() > MAX_EVENT_JSON_BYTES {
        return Err(Invalid::new(
            RejectReason::TooLarge,
            "",
            format!(
                "{} bytes; an event is at most {MAX_EVENT_JSON_BYTES}",
                bytes.len()
            ),
        ));
    }
    let ev: Event = serde_json::from_slice(bytes).map_err(|e| {
        let msg = e.to_string();
        let reason = if msg.starts_with("unknown field") {
            RejectReason::UnknownField
        } else if msg.starts_with("unknown variant") && msg.contains("infusion_programmed") {
            // serde names every expected variant; the body kinds' list is
            // the one that starts with infusion_programmed.
            RejectReason::UnknownKind
        } else if e.is_data() {
            RejectReason::InvalidField
        } else {
            RejectReason::MalformedJson
        };
        Invalid {
            reason,
            path: format!("{}:{}", e.line(), e.column()),
            problem: msg,
        }
    })?;
    ev.validate()?;
    Ok(ev)
}

fn check_id(path: &str, s: &str) -> Result<(), Invalid> {
    if s.is_empty() || s.len() > MAX_EVENT_ID_LEN {
        return Err(Invalid::new(
            RejectReason::InvalidField,
            path,
            format!("must be 1 to {MAX_EVENT_ID_LEN} bytes, not {}", s.len()),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
    {
        return Err(Invalid::new(
            RejectReason::InvalidField,
            path,
            format!("contains {c:?}; use letters, digits, '.', '_', '-' or ':'"),
        ));
    }
    Ok(())
}

fn check_len(path: &str, s: &str, max: usize) -> Result<(), Invalid> {
    if s.is_empty() || s.len() > max {
        return Err(Invalid::new(
            RejectReason::InvalidField,
            path,
            format!("must be 1 to {max} bytes, not {}", s.len()),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Invalid::new(
            RejectReason::InvalidField,
            path,
            "control characters are not allowed",
        ));
    }
    Ok(())
}

fn check_name(path: &str, s: &str) -> Result<(), Invalid> {
    check_len(path, s, MAX_NAME_LEN)
}

fn check_text(path: &str, s: &str) -> Result<(), Invalid> {
    check_len(path, s, MAX_TEXT_LEN)
}

fn check_digest(path: &str, s: &str) -> Result<(), Invalid> {
    proto::check_digest(path, s)
        .map_err(|e| Invalid::new(RejectReason::InvalidField, path, e.problem))
}

fn opt(
    f: fn(&str, &str) -> Result<(), Invalid>,
    path: &str,
    v: &Option<String>,
) -> Result<(), Invalid> {
    match v {
        Some(s) => f(path, s),
        None => Ok(()),
    }
}

/// Microseconds since the Unix epoch, saturating (the engine's time unit).
pub fn to_us(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos() / 1000;
    n.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// The inverse of [`to_us`] (the Unix epoch for out-of-range values).
pub fn from_us(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
