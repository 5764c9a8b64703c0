//! Pumpward's vulnerability intelligence, pure core: the parsers of what the
//! world publishes about pump vulnerabilities, the version and identity
//! rules that decide which pumps a publication is about, and nothing else.
//!
//! No I/O: every function takes bytes or strings and returns values. No
//! store, no clock, no network. Nothing panics on input: malformed input is
//! a [`json::ParseError`] (with the JSON path and what was expected there) or
//! a per-format error; oddities a person should see are
//! [`json::Warning`]s on the parsed value.
//!
//! # What each parser accepts
//!
//! | module | input |
//! |---|---|
//! | [`csaf`] | CSAF 2.0 advisories and VEX: document metadata, the full product tree (branches to any depth, relationships, groups) resolved per product id, vulnerabilities with CVE, CWE, CVSS v2/v3/v4, every product_status list, remediations, threats; revision comparison ([`csaf::Advisory::compare_revision`]). |
//! | [`nvd`] | NVD CVE API 2.0 JSON (response or single record): metrics, CWEs, CPE match configurations with AND/OR/negate and version bounds, evaluated against CPE names. |
//! | [`cve5`] | CVE JSON 5 records: metadata, descriptions, affected vendor/product/versions (`lessThan`, `lessThanOrEqual`, `status`), CWEs, CNA and ADP metrics. |
//! | [`kev`] | The CISA KEV catalog. |
//! | [`epss`] | FIRST EPSS CSV with its `#model_version` line. |
//! | [`sbom`] | CycloneDX JSON and XML, SPDX JSON and tag-value SBOMs: components with purl and CPEs, the dependency graph (cycles and dangling refs reported), CycloneDX VEX statements. |
//! | [`detect`] | Which of these (or CycloneDX JSON/XML, SPDX JSON/tag-value) a file is, from content. |
//! | [`cpe`] | CPE 2.3 formatted strings, and matching against NVD criteria with version bounds. |
//! | [`purl`] | Package URLs. |
//! | [`vers`] | `vers:` version ranges. |
//! | [`version`] | Vendor firmware versions and the per-vendor comparison schemes. |
//! | [`constraint`] | The version rules advisories write in prose and lists, and matching an asset against them. |
//! | [`priority`] | Not a parser: the published priority score of a finding, with its factors (`docs/vulnerability-priority.md`). |
//! | [`remediation`] | Not a parser: the remediation workflow of a finding, a pure state machine. |
//! | [`identity`] | Canonical manufacturer and product keys from the curated alias table `data/aliases.toml`. |
//!
//! # Version schemes
//!
//! Firmware versions are tokenised (numbers compared as numbers of any
//! length, words case-insensitively, a leading `v` dropped, trailing zeros
//! insignificant) into a total order; see [`version`]. Where a vendor's
//! numbering is evident from its advisories, [`version::Scheme`] says so,
//! citing the advisory:
//!
//! - **BD** ([`version::Scheme::DottedNumeric`]): each dotted number is an
//!   integer, 9.7 < 9.19 < 9.33 < 12.1 (ICSMA-17-017-02, ICSMA-20-170-06).
//! - **B. Braun** ([`version::Scheme::BBraunLine`]): a release-line letter and
//!   a build, U61 (US) and L81 (outside the US) are different lines
//!   (ICSMA-20-296-02); the long form 012U000062 (NVD CVE-2021-33886) is
//!   another numbering again.
//! - **everyone else** ([`version::Scheme::Generic`]): the generic order, but
//!   a comparison whose answer depends on whether "13.4" means 13.40 is
//!   *ambiguous* (Hospira Plum A+ "13.4 and prior", ICSA-15-161-01).
//!
//! # The invariant: unparseable never matches silently
//!
//! Text that cannot be interpreted stays [`constraint::VersionConstraint::Unparsed`]
//! with the advisory's words; an unreadable installed version, an ambiguous
//! or cross-line comparison, a rule on a model or component the asset does
//! not record: all give [`constraint::Decision::Undecided`] (and
//! [`cpe::CpeMatch::Undecided`] for CPE criteria) with the reason. Callers
//! raise those as `review`; this crate never turns them into a yes or a no.
//! Likewise an unknown manufacturer or product name is `None` from
//! [`identity::AliasTable`], never the nearest alias.

#![warn(missing_docs)]

pub mod constraint;
pub mod cpe;
pub mod csaf;
pub mod cve5;
pub mod detect;
pub mod epss;
pub mod fuzzing;
pub mod identity;
pub mod json;
pub mod kev;
pub mod nvd;
pub mod priority;
pub mod purl;
pub mod remediation;
pub mod sbom;
pub mod vers;
pub mod version;
pub mod vex;
