//! The pump's drug library: the last good library, the decision on an
//! offered envelope, and the dose check of every programmed infusion.
//!
//! - An offered envelope is installed only through
//!   [`pumpward_druglib::decide_install`]: its signature verifies against a
//!   trusted library-signing key, its version is strictly higher than the
//!   installed one, and it has a profile for the pump's care area. Before
//!   that, its SHA-256 must be the digest the gateway announced. Any failure
//!   leaves the installed library exactly as it was and yields a
//!   [`Rejection`] with the protocol's reason and the precise error.
//! - The installed envelope is kept in the state directory
//!   (`library.cose`, written to a temporary file, synced, then renamed) and
//!   verified again at start, so a restart keeps the last good library and
//!   its anti-rollback floor, and a file damaged on disk is not used.
//! - [`PumpLibrary::check`] runs [`DoseChecker`] for a programming and turns
//!   its outcome into the `dose_check` event the gateway stores. Without a
//!   library (or for a drug the care area does not list) a programming is a
//!   basic infusion: allowed, flagged, as real pumps do.

use std::path::{Path, PathBuf};

use pumpward_druglib::check::{CheckOutcome, Limit, Programming, Scope};
use pumpward_druglib::envelope::{RejectReason, TrustedKey};
use pumpward_druglib::quantity::Ratio;
use pumpward_druglib::{decide_install, CheckError, DoseChecker, EnvelopeError, InstallDecision};
use pumpward_druglib::{InstalledLibrary, VerifiedLibrary};
use pumpward_proto::message::{
    DoseCheck, DoseCheckResult, LibraryRef, LibraryRejectReason, LimitKind, Quantity,
    MAX_DETAIL_VALUE_LEN, MAX_TEXT_LEN,
};
use sha2::{Digest, Sha256};

use crate::AgentError;

/// File name of the installed envelope in the state directory.
pub const LIBRARY_FILE: &str = "library.cose";

/// Why an offered library was refused (the installed one stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The protocol's reason code.
    pub reason: LibraryRejectReason,
    /// The precise error, for the event's `detail.error` and the log.
    pub error: String,
    /// The version offered, when the envelope said (or the gateway
    /// announced) one.
    pub version: Option<String>,
    /// SHA-256 of what was received, lower-case hex.
    pub digest: Option<String>,
}

/// The installed library.
#[derive(Debug)]
struct Active {
    verified: VerifiedLibrary,
    /// SHA-256 of the envelope (what the gateway announces and the pump
    /// reports), lower-case hex.
    envelope_digest: String,
    checker: DoseChecker,
}

/// What a dose check decided, and the event it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoseVerdict {
    /// The checker's decision.
    pub outcome: CheckOutcome,
    /// The `dose_check` event, except for a soft limit still waiting for
    /// the clinician's reason (the pump asks; nothing is programmed yet).
    pub event: Option<DoseCheck>,
}

/// The pump's drug library state.
#[derive(Debug)]
pub struct PumpLibrary {
    trusted: Vec<TrustedKey>,
    dir: Option<PathBuf>,
    active: Option<Active>,
}

pub(crate) fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn cut(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// The protocol's reason for a refused envelope.
pub fn reject_code(r: &RejectReason) -> LibraryRejectReason {
    use EnvelopeError as E;
    match r {
        RejectReason::NotNewer { .. } => LibraryRejectReason::VersionRollback,
        RejectReason::CareAreaMissing(_) => LibraryRejectReason::WrongCareArea,
        RejectReason::Envelope(e) => match e {
            E::UnknownKeyId(_) => LibraryRejectReason::UntrustedKey,
            E::BadSignature | E::UnsupportedAlgorithm(_) | E::MissingKeyId => {
                LibraryRejectReason::SignatureInvalid
            }
            E::DigestMismatch => LibraryRejectReason::DigestMismatch,
            E::PayloadNotLibrary(_)
            | E::NonCanonicalPayload
            | E::HeaderPayloadMismatch { .. }
            | E::PayloadInvalid(_) => LibraryRejectReason::InvalidLibrary,
            E::TooLarge { .. }
            | E::Truncated
            | E::Malformed(_)
            | E::MissingPayload
            | E::UnsupportedContentType(_)
            | E::MalformedHeader(_) => LibraryRejectReason::MalformedEnvelope,
        },
    }
}

impl PumpLibrary {
    /// A pump without a library, trusting `trusted`, keeping nothing on disk.
    pub fn new(trusted: Vec<TrustedKey>) -> Self {
        Self {
            trusted,
            dir: None,
            active: None,
        }
    }

    /// Opens the library kept in `dir` (if any). An envelope that no longer
    /// verifies (damaged on disk, or its key no longer trusted) is not used:
    /// the pump starts without a library and says why in the returned
    /// warning.
    pub fn open(dir: &Path, trusted: Vec<TrustedKey>) -> (Self, Option<String>) {
        let mut lib = Self {
            trusted,
            dir: Some(dir.to_owned()),
            active: None,
        };
        let path = dir.join(LIBRARY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (lib, None),
            Err(e) => return (lib, Some(format!("reading {}: {e}", path.display()))),
        };
        match pumpward_druglib::verify_envelope(&bytes, &lib.trusted)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                let checker = DoseChecker::new(&v.library).map_err(|e| e.to_string())?;
                Ok(Active {
                    verified: v,
                    envelope_digest: sha256_hex(&bytes),
                    checker,
                })
            }) {
            Ok(a) => {
                lib.active = Some(a);
                (lib, None)
            }
            Err(e) => (
                lib,
                Some(format!(
                    "the stored library {} is not used: {e}",
                    path.display()
                )),
            ),
        }
    }

    /// The installed library as the pump reports it (hello, heartbeat):
    /// its version number and the SHA-256 of its envelope.
    pub fn active_ref(&self) -> Option<LibraryRef> {
        self.active.as_ref().map(|a| LibraryRef {
            version: a.verified.library.version.to_string(),
            digest: a.envelope_digest.clone(),
        })
    }

    /// The installed library's id, version and content digest.
    pub fn installed(&self) -> Option<InstalledLibrary> {
        self.active.as_ref().map(|a| (&a.verified).into())
    }

    /// The installed library's profile for a care area setting (id or
    /// display name).
    pub fn care_area(&self, setting: &str) -> Option<&pumpward_druglib::model::CareArea> {
        self.active
            .as_ref()
            .and_then(|a| a.verified.library.resolve_care_area(setting))
    }

    /// Decides on an offered envelope without changing anything: the
    /// announced digest (when given) must match, then
    /// [`decide_install`] for `care_area`.
    pub fn judge(
        &self,
        envelope: &[u8],
        announced: Option<&str>,
        care_area: &str,
    ) -> Result<(VerifiedLibrary, String), Rejection> {
        let digest = sha256_hex(envelope);
        if let Some(a) = announced {
            if !a.eq_ignore_ascii_case(&digest) {
                return Err(Rejection {
                    reason: LibraryRejectReason::DigestMismatch,
                    error: format!(
                        "the envelope's SHA-256 is {digest}, not the announced {}",
                        cut(a, 64)
                    ),
                    version: None,
                    digest: Some(digest),
                });
            }
        }
        let installed = self.installed();
        match decide_install(installed.as_ref(), envelope, &self.trusted, care_area) {
            InstallDecision::Install(v) => Ok((*v, digest)),
            InstallDecision::Reject { reason } => Err(Rejection {
                reason: reject_code(&reason),
                error: cut(&reason.to_string(), MAX_TEXT_LEN),
                version: match &reason {
                    RejectReason::NotNewer { offered, .. } => Some(offered.to_string()),
                    _ => None,
                },
                digest: Some(digest),
            }),
        }
    }

    /// Installs an offered envelope if [`PumpLibrary::judge`] accepts it and
    /// it can be kept durably; otherwise nothing changes.
    pub fn offer(
        &mut self,
        envelope: &[u8],
        announced: Option<&str>,
        care_area: &str,
    ) -> Result<LibraryRef, Rejection> {
        let (verified, digest) = self.judge(envelope, announced, care_area)?;
        let version = verified.library.version.to_string();
        let checker = DoseChecker::new(&verified.library).map_err(|e| Rejection {
            reason: LibraryRejectReason::InvalidLibrary,
            error: cut(&e.to_string(), MAX_TEXT_LEN),
            version: Some(version.clone()),
            digest: Some(digest.clone()),
        })?;
        if let Some(dir) = &self.dir {
            persist(dir, envelope).map_err(|e| Rejection {
                reason: LibraryRejectReason::Other,
                error: cut(&format!("cannot keep the library: {e}"), MAX_TEXT_LEN),
                version: Some(version.clone()),
                digest: Some(digest.clone()),
            })?;
        }
        self.active = Some(Active {
            verified,
            envelope_digest: digest.clone(),
            checker,
        });
        Ok(LibraryRef { version, digest })
    }

    /// Checks a programming for the pump's care area setting (a library
    /// care-area id or display name) and builds its event.
    pub fn check(
        &self,
        care_area: &str,
        infusion_id: &str,
        p: &Programming,
    ) -> Result<DoseVerdict, CheckError> {
        let drug_name = p.drug.map(|d| d.drug);
        let basic = |area: &str, version: Option<String>| DoseVerdict {
            outcome: CheckOutcome::BasicInfusion,
            event: Some(DoseCheck {
                result: DoseCheckResult::BasicInfusion,
                drug: cut(drug_name.unwrap_or("basic infusion"), 128),
                care_area: cut(area, 128),
                dose: rate_quantity(p),
                limit: None,
                limit_kind: None,
                infusion_id: Some(cut(infusion_id, 128)),
                library_version: version,
                override_reason: None,
            }),
        };
        let area_setting = if care_area.trim().is_empty() {
            "unassigned"
        } else {
            care_area
        };
        let Some(a) = &self.active else {
            // No library: the pump runs basic infusions only.
            if !matches!(p.dose, pumpward_druglib::check::DoseInput::Rate { .. }) {
                return Err(CheckError::BasicInfusionNeedsRate);
            }
            return Ok(basic(area_setting, None));
        };
        let version = Some(a.verified.library.version.to_string());
        let Some(area) = a.verified.library.resolve_care_area(care_area) else {
            return Err(CheckError::UnknownCareArea(cut(care_area, 64)));
        };
        let outcome = a.checker.check(&area.id, p)?;
        let entry = p.drug.and_then(|d| {
            a.checker
                .care_area(&area.id)?
                .find(d.drug, &d.concentration)
        });
        let drug = cut(
            entry.map_or(drug_name.unwrap_or("basic infusion"), |e| e.drug.as_str()),
            128,
        );
        let unit = |l: &Limit| match l.scope {
            Scope::Continuous => entry.map_or(String::new(), |e| e.dosing_unit.to_string()),
            Scope::Bolus => entry
                .and_then(|e| e.bolus.as_ref().map(|b| b.unit.to_string()))
                .unwrap_or_default(),
            Scope::Vtbi => "mL".into(),
            Scope::Duration => "min".into(),
        };
        let crossed = |result, l: &Limit, value: &Ratio, reason: Option<String>| DoseCheck {
            result,
            drug: drug.clone(),
            care_area: cut(&area.id, 128),
            dose: Some(Quantity {
                value: decimal6(value),
                unit: unit(l),
            }),
            limit: Some(Quantity {
                value: decimal6(&l.bound.to_ratio()),
                unit: unit(l),
            }),
            limit_kind: Some(match l.kind {
                pumpward_druglib::check::LimitKind::SoftMin => LimitKind::SoftMin,
                pumpward_druglib::check::LimitKind::SoftMax => LimitKind::SoftMax,
                pumpward_druglib::check::LimitKind::HardMin => LimitKind::HardMin,
                pumpward_druglib::check::LimitKind::HardMax => LimitKind::HardMax,
            }),
            infusion_id: Some(cut(infusion_id, 128)),
            library_version: version.clone(),
            override_reason: reason,
        };
        let event = match &outcome {
            CheckOutcome::BasicInfusion => return Ok(basic(&area.id, version)),
            CheckOutcome::WithinLimits => Some(DoseCheck {
                result: DoseCheckResult::WithinLimits,
                drug: drug.clone(),
                care_area: cut(&area.id, 128),
                dose: None,
                limit: None,
                limit_kind: None,
                infusion_id: Some(cut(infusion_id, 128)),
                library_version: version.clone(),
                override_reason: None,
            }),
            CheckOutcome::SoftLimitOverride {
                reason,
                limit,
                value,
            } => Some(crossed(
                DoseCheckResult::SoftOverride,
                limit,
                value,
                Some(cut(reason, MAX_TEXT_LEN)),
            )),
            CheckOutcome::HardLimitBlocked { limit, value } => {
                Some(crossed(DoseCheckResult::HardBlock, limit, value, None))
            }
            CheckOutcome::SoftLimitNeedsOverride { .. } => None,
        };
        Ok(DoseVerdict { outcome, event })
    }
}

/// The programmed rate of a basic infusion, for the event.
fn rate_quantity(p: &Programming) -> Option<Quantity> {
    match p.dose {
        pumpward_druglib::check::DoseInput::Rate { ml_per_h } if !ml_per_h.is_negative() => {
            Some(Quantity {
                value: decimal6(&ml_per_h.to_ratio()),
                unit: "mL/h".into(),
            })
        }
        _ => None,
    }
}

/// A non-negative ratio as the protocol's decimal: at most 6 fraction
/// digits (rounded half up) and 12 integer digits (saturated; no infusion
/// value comes near).
fn decimal6(r: &Ratio) -> String {
    let (n, d) = (r.numer().max(0), r.denom().max(1));
    let scaled = n
        .checked_mul(1_000_000)
        .map_or(i128::MAX / 2, |m| (m + d / 2) / d);
    let max = 999_999_999_999_999_999i128;
    let v = scaled.min(max);
    let (int, frac) = (v / 1_000_000, v % 1_000_000);
    if frac == 0 {
        return int.to_string();
    }
    let f = format!("{frac:06}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

/// The trusted key of the hospital's library-signing certificate (the
/// first certificate of `pem`, as served at `/pki/library-signing.pem`); see
/// [`pumpward_pki::library_signing_key`] for what qualifies.
pub fn trusted_key_from_cert_pem(pem: &str) -> Result<TrustedKey, AgentError> {
    Ok(TrustedKey::from_spki(
        pumpward_pki::library_signing_key(pem)?.spki_der,
    ))
}

/// The `detail.error` text of a rejection event.
pub fn detail_error(r: &Rejection) -> String {
    cut(&r.error, MAX_DETAIL_VALUE_LEN)
}

/// Writes the envelope durably: a temporary file, synced, renamed over the
/// old one, and the directory synced, so a crash leaves the old or the new
/// library, never a torn file.
fn persist(dir: &Path, envelope: &[u8]) -> Result<(), AgentError> {
    use std::io::Write as _;
    let tmp = dir.join(format!("{LIBRARY_FILE}.tmp"));
    let path = dir.join(LIBRARY_FILE);
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| AgentError::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(envelope)
        .and_then(|_| f.sync_all())
        .map_err(|e| AgentError::io(format!("writing {}", tmp.display()), e))?;
    drop(f);
    std::fs::rename(&tmp, &path)
        .map_err(|e| AgentError::io(format!("renaming to {}", path.display()), e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
