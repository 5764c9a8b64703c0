//! Drug libraries for smart infusion pumps: the pure core of Pumpward's
//! drug-library integrity path (SP 1800-8: "drug library dosing limits" are
//! an asset to protect). No I/O, no clock, no database, no async.
//!
//! - [`quantity`] — exact numbers: [`quantity::Dec`] (decimals as written)
//!   and [`quantity::Ratio`] (fractions that arithmetic produces).
//! - [`units`] — typed units (mass, international units, mmol, mL, h/min,
//!   per kg), concentrations, and the exact rate ↔ dose conversion.
//! - [`model`] — [`Library`] → [`model::CareArea`] → [`model::Entry`], and
//!   [`Library::validate`], which reports every problem with its path.
//! - [`json`] — reading JSON and the **canonical bytes** that are signed.
//! - [`csv`] — one row per care area × entry, line and column in errors.
//! - [`diff`] — what changed between two versions, for the reviewer.
//! - [`check`] — the dose-check engine the pump runs.
//! - [`envelope`] — COSE_Sign1 signing and verification, and the pump's
//!   install decision.
//! - [`sample`] — the bundled sample library (**SAMPLE DATA – NOT FOR
//!   CLINICAL USE**).
//!
//! # Invariants
//!
//! - **No floating point in dose arithmetic.** A limit of `0.2` and a
//!   programmed `0.2` must be equal, and `14.4 mL/h` of heparin 100
//!   units/mL for 80 kg must be exactly `18 units/kg/h`; a binary float
//!   would put a dose that sits on a limit on either side of it. Values are
//!   decimals (`i128` mantissa, ≤ 12 decimals), conversions are exact
//!   fractions over `i128` with every operation checked (overflow is an
//!   error, never a panic, never a wrap), and comparisons use exact 256-bit
//!   products. JSON carries decimals as strings so no reader turns them into
//!   floats either. Limits are inclusive.
//! - **Units are types.** Amounts of different kinds never convert (a mg
//!   concentration cannot deliver units/h); weight-based is derived from the
//!   dosing unit, never stated separately, so the two cannot disagree.
//! - **What is signed is the canonical JSON.** One library has exactly one
//!   byte form ([`json::to_canonical_json`]: sorted keys, no white space,
//!   decimals as canonical strings, documented in [`json`]), so the digest
//!   in the envelope names the content, two signers of the same library
//!   sign the same bytes, and a verifier refuses a payload that is not in
//!   canonical form.
//! - **Only valid libraries are signed, installed or enforced.**
//!   [`envelope::sign_library`] validates first; [`envelope::verify_envelope`]
//!   validates the signed payload again (a signer's mistake must not reach a
//!   pump); [`check::DoseChecker::new`] refuses an invalid library.
//! - **Anti-rollback.** A pump installs a library only if its version is
//!   strictly higher than the installed one ([`envelope::decide_install`]):
//!   an older, validly signed library with looser limits can never be
//!   replayed. "Rolling back" means publishing the old content as a new,
//!   higher version. Otherwise the pump keeps its last good library.
//! - **Identity from cryptography.** The library id, version, digest,
//!   publication time, signer and key id are in the COSE *protected* header
//!   (covered by the signature; the labels are documented in [`envelope`]);
//!   the unprotected header is ignored.
//! - **Hostile input never panics, and is bounded**: JSON ≤ 4 MiB, CSV ≤ 8
//!   MiB with records ≤ 16 KiB and cells ≤ 4 KiB, envelopes ≤ 4 MiB + 64
//!   KiB, text fields and counts limited by validation. Fuzzed by
//!   `druglib_json`, `druglib_csv` and `druglib_envelope`; the committed
//!   seeds are replayed by unit tests.
//! - **Hard limits are absolute.** An override reason lets a dose past a
//!   soft limit, never past a hard one (property-tested).
//!
//! # CSV header
//!
//! ```text
//! library_id,library_name,library_version,library_description,care_area_id,care_area_name,weight_min_kg,weight_max_kg,drug,code,concentration_amount,concentration_unit,concentration_volume_ml,dosing_unit,soft_min,soft_max,hard_min,hard_max,bolus_unit,bolus_soft_min,bolus_soft_max,bolus_hard_min,bolus_hard_max,vtbi_soft_min_ml,vtbi_soft_max_ml,vtbi_hard_min_ml,vtbi_hard_max_ml,max_duration_min,high_alert,advisory
//! ```
//!
//! See [`csv`] for the rules.
//!
//! # COSE protected header labels
//!
//! | label | content |
//! |---|---|
//! | 1 (alg) | −7, ES256 (ECDSA P-256, SHA-256, 64-byte `r ‖ s`) |
//! | 2 (crit) | the five private labels below |
//! | 3 (content type) | `application/vnd.pumpward.druglib.v1+json` |
//! | 4 (kid) | signing key id |
//! | −65537 | library id (tstr) |
//! | −65538 | library version (uint) |
//! | −65539 | SHA-256 of the payload (bstr, 32 bytes) |
//! | −65540 | publication time (uint, Unix seconds) |
//! | −65541 | signer identity (tstr) |
//!
//! # Example
//!
//! ```
//! use pumpward_druglib::check::{CheckOutcome, DoseChecker, DoseInput, DrugSelection, Programming};
//! use pumpward_druglib::sample::sample_library;
//!
//! let lib = sample_library();
//! let checker = DoseChecker::new(&lib).unwrap();
//! // Heparin 25,000 units/250 mL at 14.4 mL/h for 80 kg is 18 units/kg/h.
//! let p = Programming {
//!     drug: Some(DrugSelection { drug: "heparin", concentration: "25000 units/250 mL".parse().unwrap() }),
//!     dose: DoseInput::Rate { ml_per_h: "14.4".parse().unwrap() },
//!     weight_kg: Some("80".parse().unwrap()),
//!     bolus: None,
//!     vtbi_ml: None,
//!     override_reason: None,
//! };
//! assert_eq!(checker.check("adult-icu", &p), Ok(CheckOutcome::WithinLimits));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod csv;
pub mod diff;
pub mod envelope;
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod model;
pub mod quantity;
pub mod sample;
pub mod units;

#[cfg(test)]
mod testgen;

pub use check::{CheckError, CheckOutcome, DoseChecker, Programming};
pub use envelope::{
    decide_install, sign_library, verify_envelope, EnvelopeError, InstallDecision,
    InstalledLibrary, RejectReason, TrustedKey, VerifiedLibrary,
};
pub use model::{Library, Problem, ValidationErrors};
pub use sample::sample_library;
