//! Vulnerability intelligence in the store (issue 5): imported documents
//! (CSAF advisories, the KEV catalog, NVD and CVE 5 records, EPSS scores),
//! their vulnerabilities and product statuses, and the matching of the
//! inventory against them, which raises and resolves findings.
//!
//! Parsing, version rules and product identity are `pumpward_vuln`'s; this
//! module only decides what to keep and what a match means for an asset.
//!
//! # Import
//!
//! One document, one transaction: a document that cannot be parsed changes
//! nothing. The same bytes twice are skipped (SHA-256). A later revision of
//! an advisory already stored supersedes it: the earlier one stays (for the
//! audit) in state `superseded` and is no longer matched. An earlier
//! revision arriving after a later one is skipped with the reason.
//!
//! # Matching
//!
//! Each pump or pump server that is provisioned or in service is mapped,
//! by manufacturer and model, through the alias table to a product key; every
//! status of a current advisory for that key is evaluated against the
//! asset's firmware version, model and software components. Per asset and
//! CVE: affected → finding `vulnerability.affected`; undecidable (a rule
//! that cannot be read, an ambiguous version, a component the asset does
//! not record, the vendor still investigating) → `vulnerability.review`
//! with the reason, never counted as affected; anything else resolves the
//! open finding with the reason.

use crate::{Actor, Result, Severity, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::inventory::SoftwareComponent;
use pumpward_core::timefmt;
use pumpward_vuln::constraint::{Component, Decision, Installed, VersionConstraint};
use pumpward_vuln::detect::{detect, Format};
use pumpward_vuln::identity::AliasTable;
use pumpward_vuln::priority::{
    priority, CareAcuity, Control, Cvss, DeviceClass, Epss, Exposure, Priority, PriorityInput,
    RemoteAccess,
};
use pumpward_vuln::version::{Scheme, Version};
use pumpward_vuln::{csaf, cve5, epss, kev, nvd};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Finding kind of an asset within an advisory's affected versions.
pub const KIND_AFFECTED: &str = "vulnerability.affected";
/// Finding kind of an asset whose status could not be decided.
pub const KIND_REVIEW: &str = "vulnerability.review";

/// The status of a vulnerability finding: `affected` and `review`
/// while open; once resolved, `fixed` (an advisory lists the asset's
/// firmware as fixed or recommended), `not_affected` (listed not affected,
/// or outside every affected range) or `resolved` (the advisory was
/// superseded, the asset retired, …: the resolution says which).
/// `None` for findings that are not vulnerabilities.
pub fn vulnerability_status(f: &crate::Finding) -> Option<&'static str> {
    if f.kind != KIND_AFFECTED && f.kind != KIND_REVIEW {
        return None;
    }
    if f.state == "open" {
        return Some(if f.kind == KIND_AFFECTED {
            "affected"
        } else {
            "review"
        });
    }
    // The resolutions are the matcher's own words (`Verdict::Clear`).
    let why = f.resolution.as_deref().unwrap_or("");
    Some(
        if [" as fixed ", " as first_fixed ", " as recommended "]
            .iter()
            .any(|w| why.contains(w))
        {
            "fixed"
        } else if why.starts_with("not affected:")
            || why.contains("outside every affected version range")
        {
            "not_affected"
        } else {
            "resolved"
        },
    )
}

/// The stored advisories a vulnerability finding's rules cite, (advisory
/// id, tracking id), once each in the rules' order: what its advisory
/// links point at.
pub fn cited_advisories(evidence: &Value) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for r in evidence["rules"].as_array().into_iter().flatten() {
        if let (Some(id), Some(t)) = (r["advisory_id"].as_i64(), r["tracking_id"].as_str()) {
            if !out.iter().any(|(i, _)| *i == id) {
                out.push((id, t.to_owned()));
            }
        }
    }
    out
}

/// A finding as the findings list and its exports show it (`pumpward
/// findings list`, the findings CSV): the fields first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingRow {
    pub finding_id: i64,
    pub asset_id: Option<String>,
    /// The tracking ids of the advisories whose rules gave the verdict.
    pub advisory_id: Option<String>,
    pub cve: Option<String>,
    /// [`vulnerability_status`], or the finding's state for other kinds.
    pub status: String,
    /// The priority score (0.0–100.0), exact to the tenth.
    pub priority: Option<f64>,
    pub priority_band: Option<String>,
    pub remediation: Option<String>,
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    /// Why: the affected rule's explanation, or the review reason, or the
    /// resolution.
    pub why: Option<String>,
    pub raised_at: String,
    pub evidence: Value,
}

impl From<&crate::Finding> for FindingRow {
    fn from(f: &crate::Finding) -> FindingRow {
        let ev = &f.evidence;
        let rules = ev["rules"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut advisories: Vec<&str> = rules
            .iter()
            .filter_map(|r| r["tracking_id"].as_str())
            .collect();
        advisories.dedup();
        let why = if f.state != "open" {
            f.resolution.clone()
        } else {
            ev["review_reason"]
                .as_str()
                .or_else(|| rules.first().and_then(|r| r["why"].as_str()))
                .map(str::to_owned)
        };
        FindingRow {
            finding_id: f.id,
            asset_id: f.asset_id.clone(),
            advisory_id: (!advisories.is_empty()).then(|| advisories.join(", ")),
            cve: ev["cve"].as_str().map(str::to_owned),
            status: vulnerability_status(f).unwrap_or(&f.state).to_owned(),
            // Tenths to a decimal: exact for every integer up to 1000.
            priority: f.priority.map(|p| p as f64 / 10.0),
            priority_band: ev["priority"]["band"].as_str().map(str::to_owned),
            remediation: f.remediation.clone(),
            kind: f.kind.clone(),
            severity: f.severity,
            title: f.title.clone(),
            why,
            raised_at: f.raised_at.clone(),
            evidence: f.evidence.clone(),
        }
    }
}

/// A CSV cell that a spreadsheet will not run: text starting with `=`,
/// `+`, `-`, `@` (or a tab or carriage return, which some spreadsheets
/// skip before reading a formula) gets a leading `'` (OWASP's CSV
/// injection advice).
pub fn csv_safe_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// The findings CSV: a header, then one row per finding, every cell made
/// safe with [`csv_safe_cell`] (advisory text and asset names are outside
/// input).
pub fn write_findings_csv(
    w: impl std::io::Write,
    rows: &[FindingRow],
) -> std::result::Result<(), csv::Error> {
    let mut wtr = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(w);
    wtr.write_record([
        "finding_id",
        "asset_id",
        "advisory_id",
        "cve",
        "status",
        "priority",
        "priority_band",
        "remediation",
        "kind",
        "severity",
        "title",
        "why",
        "raised_at",
    ])?;
    for r in rows {
        let cells = [
            r.finding_id.to_string(),
            r.asset_id.clone().unwrap_or_default(),
            r.advisory_id.clone().unwrap_or_default(),
            r.cve.clone().unwrap_or_default(),
            r.status.clone(),
            r.priority.map(|p| format!("{p:.1}")).unwrap_or_default(),
            r.priority_band.clone().unwrap_or_default(),
            r.remediation.clone().unwrap_or_default(),
            r.kind.clone(),
            r.severity.as_str().to_owned(),
            r.title.clone(),
            r.why.clone().unwrap_or_default(),
            r.raised_at.clone(),
        ];
        wtr.write_record(cells.iter().map(|c| csv_safe_cell(c).into_owned()))?;
    }
    wtr.flush()?;
    Ok(())
}

/// Whether an asset changed in what vulnerability matching reads (its
/// manufacturer, model, kind, firmware or software), so its findings must
/// be evaluated again.
pub(crate) fn identity_changed(
    old: &pumpward_core::inventory::AssetSpec,
    new: &pumpward_core::inventory::AssetSpec,
) -> bool {
    old.manufacturer != new.manufacturer
        || old.model != new.model
        || old.kind != new.kind
        || old.firmware_version != new.firmware_version
        || old.software != new.software
}

/// What happened to one imported document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VulnImport {
    /// `added`, `updated` (it superseded an earlier revision), `skipped`
    /// (nothing to do) or `refused` (the document is broken).
    pub outcome: String,
    /// The detected format, when one was.
    pub format: Option<String>,
    pub tracking_id: Option<String>,
    pub revision: Option<String>,
    /// The stored advisory (new, or the one that made this a skip).
    pub advisory_id: Option<i64>,
    /// Why it was skipped or refused, or what it superseded.
    pub reason: Option<String>,
    /// Ids of the advisories this one superseded.
    pub superseded: Vec<i64>,
}

impl VulnImport {
    /// Boxed: it travels as the error of `read_document`.
    fn not_stored(outcome: &str, format: Option<&str>, reason: String) -> Box<VulnImport> {
        Box::new(VulnImport {
            outcome: outcome.into(),
            format: format.map(str::to_owned),
            tracking_id: None,
            revision: None,
            advisory_id: None,
            reason: Some(reason),
            superseded: Vec::new(),
        })
    }

    /// Whether the document was refused as broken (the CLI's exit code).
    pub fn is_refused(&self) -> bool {
        self.outcome == "refused"
    }
}

/// An advisory as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisoryRecord {
    pub id: i64,
    pub format: String,
    pub tracking_id: String,
    pub revision: String,
    pub title: String,
    pub publisher: String,
    pub current_release_date: Option<String>,
    pub sha256: String,
    /// `current` or `superseded`.
    pub state: String,
    pub superseded_by: Option<i64>,
    pub imported_at: String,
    pub essentials: Value,
}

/// A vulnerability of an advisory, with the product statuses it gives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VulnerabilityRecord {
    pub id: i64,
    pub cve: Option<String>,
    pub cwe: Option<String>,
    pub title: Option<String>,
    pub base_score: Option<f64>,
    pub cvss_version: Option<String>,
    pub cvss: Value,
    pub product_statuses: Vec<ProductStatusRecord>,
}

/// One product's status for one vulnerability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductStatusRecord {
    pub product_id: String,
    pub full_name: String,
    pub vendor: Option<String>,
    pub product_name: Option<String>,
    pub product_key: Option<String>,
    pub version_text: Option<String>,
    pub version_rule: String,
    pub status: String,
    pub remediations: Value,
}

/// Which advisories to list; the filters combine.
#[derive(Debug, Clone, Default)]
pub struct AdvisoryFilter {
    pub format: Option<String>,
    /// `current` or `superseded`.
    pub state: Option<String>,
    /// Advisories naming this CVE.
    pub cve: Option<String>,
    /// Advisories with a status for this product key.
    pub product_key: Option<String>,
    /// At most 500; 0 means 100.
    pub limit: i64,
}

/// What a matching run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MatchReport {
    /// Pumps and pump servers provisioned or in service.
    pub assets: usize,
    /// Those whose manufacturer and model map to no product of the alias
    /// table (asset id, manufacturer, model): nothing can be matched for
    /// them, which a person should know.
    pub unidentified: Vec<(String, String, String)>,
    pub affected_open: usize,
    pub review_open: usize,
    /// Findings opened by this run.
    pub raised: usize,
    /// Findings resolved by this run.
    pub resolved: usize,
}

// ---------------------------------------------------------------------
// Parsing a document into what is stored
// ---------------------------------------------------------------------

struct Doc {
    format: &'static str,
    tracking_id: String,
    family: String,
    letter: Option<char>,
    revision: String,
    title: String,
    publisher: String,
    date: Option<String>,
    essentials: Value,
    vulns: Vec<NewVuln>,
    kev: Vec<kev::KevEntry>,
    epss: Vec<epss::EpssScore>,
}

struct NewVuln {
    cve: Option<String>,
    cwe: Option<String>,
    title: Option<String>,
    /// (CVSS version, base score, vector), newest version first.
    scores: Vec<(String, f64, String)>,
    statuses: Vec<NewStatus>,
    /// NVD records: the CPE match configurations (`nvd::configurations_json`).
    cpe_configurations: Option<String>,
}

struct NewStatus {
    product_id: String,
    full_name: String,
    vendor: Option<String>,
    product_name: Option<String>,
    product_key: Option<String>,
    version_text: Option<String>,
    rule: String,
    status: String,
    remediations: Value,
    /// `product_identification_helper.purl`.
    purl: Option<String>,
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Csaf => "csaf",
        Format::CveJson5 => "cve5",
        Format::NvdApi2 => "nvd",
        Format::NvdTranscription => "nvd-transcription",
        Format::KevCatalog => "kev",
        Format::EpssCsv => "epss",
        Format::CycloneDxJson => "cyclonedx-json",
        Format::CycloneDxXml => "cyclonedx-xml",
        Format::SpdxJson => "spdx-json",
        Format::SpdxTagValue => "spdx-tag-value",
        Format::Unknown => "unknown",
    }
}

fn sort_scores(scores: &mut [(String, f64, String)]) {
    // Newest CVSS version first: the one a person reads as "the" score.
    scores.sort_by(|a, b| b.0.cmp(&a.0));
}

fn csaf_doc(a: csaf::Advisory) -> Doc {
    let aliases = AliasTable::builtin();
    let t = &a.document.tracking;
    let (family, letter) = a.family();
    let mut vulns = Vec::new();
    for v in &a.vulnerabilities {
        let mut scores: Vec<(String, f64, String)> = Vec::new();
        for s in &v.scores {
            for c in [&s.cvss_v4, &s.cvss_v3, &s.cvss_v2].into_iter().flatten() {
                if !scores.iter().any(|x| x.0 == c.version && x.2 == c.vector) {
                    scores.push((c.version.clone(), c.base_score, c.vector.clone()));
                }
            }
        }
        sort_scores(&mut scores);
        let mut statuses = Vec::new();
        for (status, pid) in v.product_status.entries() {
            let path = a.product_tree.products.get(pid);
            let vendor = path.and_then(|p| p.vendor.clone());
            let product_name = path.and_then(|p| p.product.clone());
            let product_key = aliases
                .product(
                    vendor.as_deref().unwrap_or(""),
                    product_name.as_deref().unwrap_or(""),
                )
                .map(|m| m.product.key.clone());
            let rule = match path {
                Some(p) => p.constraint(),
                None => VersionConstraint::Unparsed(pid.to_owned()),
            };
            let remediations: Vec<Value> = v
                .remediations
                .iter()
                .filter(|r| {
                    a.expand_ids(&r.product_ids, &r.group_ids)
                        .iter()
                        .any(|x| x == pid)
                })
                .map(|r| json!({"category": r.category, "details": r.details, "url": r.url}))
                .collect();
            statuses.push(NewStatus {
                product_id: pid.to_owned(),
                full_name: path.map(|p| p.full_name.clone()).unwrap_or_default(),
                vendor,
                product_name,
                product_key,
                version_text: path.and_then(|p| p.version.as_ref().map(|(_, t)| t.clone())),
                rule: rule.to_string(),
                status: status.to_owned(),
                remediations: Value::Array(remediations),
                purl: path.and_then(|p| p.helper.purl.clone()),
            });
        }
        vulns.push(NewVuln {
            cve: v.cve.as_ref().map(|c| c.to_ascii_uppercase()),
            cwe: v.cwe.as_ref().map(|(id, name)| format!("{id} {name}")),
            title: v.title.clone(),
            scores,
            statuses,
            cpe_configurations: None,
        });
    }
    let essentials = json!({
        "category": a.document.category,
        "tlp": a.document.tlp,
        "aggregate_severity": a.document.aggregate_severity,
        "initial_release_date": t.initial_release_date,
        "status": t.status,
        "revision_history": t.revision_history.iter()
            .map(|r| json!({"number": r.number, "date": r.date, "summary": r.summary}))
            .collect::<Vec<_>>(),
        "notes": a.document.notes.iter()
            .map(|n| json!({"category": n.category, "title": n.title, "text": n.text}))
            .collect::<Vec<_>>(),
        "references": a.document.references.iter()
            .map(|r| json!({"summary": r.summary, "url": r.url}))
            .collect::<Vec<_>>(),
        "products": a.product_tree.products.len(),
        "warnings": a.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
    });
    Doc {
        format: "csaf",
        tracking_id: t.id.clone(),
        family,
        letter,
        revision: t.version.clone(),
        title: a.document.title.clone(),
        publisher: a.document.publisher.name.clone(),
        date: t.current_release_date.clone(),
        essentials,
        vulns,
        kev: Vec::new(),
        epss: Vec::new(),
    }
}

fn nvd_doc(feed: nvd::NvdFeed, format: &'static str, sha: &str) -> Doc {
    let vulns: Vec<NewVuln> = feed
        .cves
        .iter()
        .map(|c| {
            let mut scores: Vec<(String, f64, String)> = c
                .metrics
                .iter()
                .map(|m| (m.version.clone(), m.base_score, m.vector.clone()))
                .collect();
            sort_scores(&mut scores);
            NewVuln {
                cve: Some(c.id.to_ascii_uppercase()),
                cwe: (!c.cwes.is_empty()).then(|| c.cwes.join(", ")),
                title: c.descriptions.first().map(|(_, d)| d.clone()),
                scores,
                statuses: Vec::new(),
                // Kept so that SBOM components can be matched through CPE.
                cpe_configurations: (!c.configurations.is_empty())
                    .then(|| nvd::configurations_json(&c.configurations).to_string()),
            }
        })
        .collect();
    // A single record is its CVE's; a feed of many has no id of its own, so
    // its hash names it (and no later feed can supersede it by name).
    let tracking_id = match feed.cves.as_slice() {
        [one] => one.id.to_ascii_uppercase(),
        _ => format!("{}:{}", format.to_ascii_uppercase(), &sha[..12]),
    };
    let revision = feed
        .cves
        .iter()
        .filter_map(|c| c.last_modified.clone())
        .max()
        .unwrap_or_else(|| "0".into());
    Doc {
        format,
        family: tracking_id.clone(),
        letter: None,
        title: format!("NVD records of {} CVE(s)", feed.cves.len()),
        publisher: "NVD".into(),
        date: Some(revision.clone()).filter(|r| r.as_str() != "0"),
        revision,
        tracking_id,
        essentials: json!({
            "cves": feed.cves.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            "warnings": feed.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
            "references": feed.cves.iter().flat_map(|c| &c.references)
                .map(|(url, tags)| json!({"summary": tags, "url": url}))
                .collect::<Vec<_>>(),
        }),
        vulns,
        kev: Vec::new(),
        epss: Vec::new(),
    }
}

fn cve5_doc(r: cve5::CveRecord) -> Doc {
    let mut scores: Vec<(String, f64, String)> = r
        .metrics
        .iter()
        .map(|m| (m.version.clone(), m.base_score, m.vector.clone()))
        .collect();
    sort_scores(&mut scores);
    let id = r.cve_id.to_ascii_uppercase();
    Doc {
        format: "cve5",
        tracking_id: id.clone(),
        family: id.clone(),
        letter: None,
        revision: r
            .date_updated
            .clone()
            .or(r.date_published.clone())
            .unwrap_or_else(|| "0".into()),
        title: id.clone(),
        publisher: r.assigner.clone().unwrap_or_else(|| "CVE Program".into()),
        date: r.date_updated.clone(),
        essentials: json!({
            "state": r.state,
            "descriptions": r.descriptions.iter().map(|(l, d)| json!({"lang": l, "text": d})).collect::<Vec<_>>(),
            "affected": r.affected.iter().map(|a| json!({"vendor": a.vendor, "product": a.product})).collect::<Vec<_>>(),
            "references": r.references.iter()
                .map(|(url, name)| json!({"summary": name, "url": url}))
                .collect::<Vec<_>>(),
        }),
        vulns: vec![NewVuln {
            cve: Some(id),
            cwe: (!r.cwes.is_empty()).then(|| r.cwes.join(", ")),
            title: r.descriptions.first().map(|(_, d)| d.clone()),
            scores,
            statuses: Vec::new(),
            cpe_configurations: None,
        }],
        kev: Vec::new(),
        epss: Vec::new(),
    }
}

/// Reads a document, or says why it is skipped or refused without
/// touching the store.
fn read_document(bytes: &[u8], sha: &str) -> std::result::Result<Doc, Box<VulnImport>> {
    let format = detect(bytes);
    let name = format_name(format);
    let refused = |e: pumpward_vuln::json::ParseError| {
        VulnImport::not_stored("refused", Some(name), format!("{name}: {e}"))
    };
    Ok(match format {
        Format::Csaf => csaf_doc(csaf::parse(bytes).map_err(refused)?),
        Format::NvdApi2 => nvd_doc(nvd::parse(bytes).map_err(refused)?, "nvd", sha),
        Format::NvdTranscription => nvd_doc(
            nvd::parse_transcription(bytes).map_err(refused)?,
            "nvd-transcription",
            sha,
        ),
        Format::CveJson5 => cve5_doc(cve5::parse(bytes).map_err(refused)?),
        Format::KevCatalog => {
            let c = kev::parse(bytes).map_err(refused)?;
            Doc {
                format: "kev",
                tracking_id: "CISA-KEV".into(),
                family: "CISA-KEV".into(),
                letter: None,
                revision: c.catalog_version.clone(),
                title: c.title.clone(),
                publisher: "CISA".into(),
                date: Some(c.date_released.clone()),
                essentials: json!({
                    "entries": c.entries.len(),
                    "declared_count": c.declared_count,
                    "warnings": c.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                }),
                vulns: Vec::new(),
                kev: c.entries,
                epss: Vec::new(),
            }
        }
        Format::EpssCsv => {
            let f = epss::parse(bytes).map_err(refused)?;
            let revision = f
                .score_date
                .clone()
                .or(f.model_version.clone())
                .unwrap_or_else(|| "0".into());
            Doc {
                format: "epss",
                tracking_id: "FIRST-EPSS".into(),
                family: "FIRST-EPSS".into(),
                letter: None,
                revision,
                title: "EPSS scores".into(),
                publisher: "FIRST".into(),
                date: f.score_date.clone(),
                essentials: json!({"model_version": f.model_version, "scores": f.scores.len()}),
                vulns: Vec::new(),
                kev: Vec::new(),
                epss: f.scores,
            }
        }
        Format::CycloneDxJson | Format::CycloneDxXml | Format::SpdxJson | Format::SpdxTagValue => {
            return Err(VulnImport::not_stored(
                "skipped",
                Some(name),
                format!("{name} SBOM: recognised; an SBOM belongs to a device model and firmware version: `pumpward sbom attach --manufacturer M --model M --version V FILE`"),
            ))
        }
        Format::Unknown => {
            // A document that looks like JSON but is not (a truncated
            // download) is broken, not merely of another kind.
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            if matches!(first, Some(b'{') | Some(b'[')) {
                if let Err(e) = pumpward_vuln::json::parse_bytes(bytes) {
                    return Err(VulnImport::not_stored("refused", None, e.to_string()));
                }
            }
            return Err(VulnImport::not_stored(
                "skipped",
                None,
                "not a recognised format (CSAF, CVE 5, NVD, KEV, EPSS or an SBOM)".into(),
            ));
        }
    })
}

/// How a new document's revision compares with a stored one of its family.
fn compare_revision(
    new: &Doc,
    tracking_id: &str,
    revision: &str,
    date: Option<&str>,
    letter: Option<char>,
) -> Ordering {
    if new.tracking_id.eq_ignore_ascii_case(tracking_id) {
        // As `csaf::Advisory::compare_revision`: the version, then the date.
        match (Version::parse(&new.revision), Version::parse(revision)) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            _ => new.revision.as_str().cmp(revision),
        }
        .then_with(|| new.date.as_deref().cmp(&date))
    } else {
        // CISA's update letters: ICSA-15-125-01B supersedes ICSA-15-125-01
        // whatever the dates say (see `csaf::Advisory::compare_revision`).
        new.letter.cmp(&letter)
    }
}

// ---------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------

const ADVISORY_COLUMNS: &str = "id, format, tracking_id, revision, title, publisher, \
     current_release_date, sha256, state, superseded_by, imported_at, essentials";

fn advisory_from_row(r: &AnyRow) -> Result<AdvisoryRecord> {
    let essentials: String = r.try_get("essentials")?;
    Ok(AdvisoryRecord {
        id: r.try_get("id")?,
        format: r.try_get("format")?,
        tracking_id: r.try_get("tracking_id")?,
        revision: r.try_get("revision")?,
        title: r.try_get("title")?,
        publisher: r.try_get("publisher")?,
        current_release_date: r.try_get("current_release_date")?,
        sha256: r.try_get("sha256")?,
        state: r.try_get("state")?,
        superseded_by: r.try_get("superseded_by")?,
        imported_at: r.try_get("imported_at")?,
        essentials: serde_json::from_str(&essentials).unwrap_or(Value::String(essentials)),
    })
}

fn json_col(r: &AnyRow, col: &str) -> Result<Value> {
    let s: String = r.try_get(col)?;
    Ok(serde_json::from_str(&s).unwrap_or(Value::String(s)))
}

fn severity_of(score: Option<f64>, kev: bool) -> Severity {
    // An advisory without a score is not known to be minor: medium keeps it
    // in view until someone scores it.
    let s = match score {
        Some(s) if s >= 9.0 => Severity::Critical,
        Some(s) if s >= 7.0 => Severity::High,
        Some(s) if s >= 4.0 => Severity::Medium,
        Some(_) => Severity::Low,
        None => Severity::Medium,
    };
    // Exploited in the wild: at least high, whatever the base score says.
    if kev {
        s.max(Severity::High)
    } else {
        s
    }
}

/// The status lists grouped by what they say about a matching version.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StatusClass {
    Affected,
    Clear,
    Investigating,
}

fn status_class(status: &str) -> Option<StatusClass> {
    match status {
        "known_affected" | "first_affected" | "last_affected" => Some(StatusClass::Affected),
        // `recommended` versions are the ones to move to: not affected.
        "fixed" | "first_fixed" | "known_not_affected" | "recommended" => Some(StatusClass::Clear),
        "under_investigation" => Some(StatusClass::Investigating),
        _ => None,
    }
}

/// A current NVD record's CPE match configurations, for SBOM components.
struct NvdRow {
    advisory_id: i64,
    tracking_id: String,
    revision: String,
    cve: String,
    configs: Vec<nvd::Configuration>,
}

/// A CVE that an SBOM's components raise (NVD's configurations, an
/// advisory's purl, a VEX statement: `sbom_match`), with the rule as a
/// finding cites it.
#[derive(Debug, Clone)]
pub(crate) struct SbomHit {
    pub(crate) cve: String,
    pub(crate) outcome: HitOutcome,
    /// A VEX statement about the device itself: it decides the CVE for the
    /// device over every other rule.
    pub(crate) decisive: bool,
    pub(crate) rule: Value,
}

/// What an [`SbomHit`] says of its CVE.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HitOutcome {
    Affected,
    Review,
    /// Not affected or fixed: the reason, in the matcher's words.
    Clear(String),
}

/// A criterion in words: its CPE name and its version bounds.
fn criterion_text(c: &pumpward_vuln::cpe::CpeCriterion) -> String {
    let mut out = c.cpe.to_string();
    for (word, bound) in [
        ("from", &c.start_including),
        ("after", &c.start_excluding),
        ("up to and including", &c.end_including),
        ("before", &c.end_excluding),
    ] {
        if let Some(b) = bound {
            out.push_str(&format!(" {word} {b}"));
        }
    }
    out
}

/// What the NVD records raise for one SBOM's components. Every component's
/// CPE names together are the platform NVD's configurations are evaluated
/// against (an AND configuration may need a library and its OS); the
/// finding names the components that a vulnerable criterion matches.
/// Component versions are compared as dotted integers (software libraries
/// number releases so: wolfSSL 4.8.1 < 5.2.0), and what does not compare is
/// raised as a review, never dropped.
fn sbom_hits(
    components: &[(i64, crate::sbom::StoredComponent)],
    nvd_rows: &[NvdRow],
) -> Vec<SbomHit> {
    use pumpward_vuln::cpe::{Cpe, CpeMatch};
    let scheme = Scheme::DottedNumeric;
    // A CPE the SBOM writes wrongly names nothing: it cannot match.
    let parsed: Vec<(usize, Cpe)> = components
        .iter()
        .enumerate()
        .flat_map(|(i, (_, c))| {
            c.cpes
                .iter()
                .filter_map(move |s| Cpe::parse(s).ok().map(|p| (i, p)))
        })
        .collect();
    if parsed.is_empty() {
        return Vec::new();
    }
    let platform: Vec<Cpe> = parsed.iter().map(|(_, c)| c.clone()).collect();
    let mut out = Vec::new();
    for row in nvd_rows {
        let mut outcome = CpeMatch::NoMatch;
        for c in &row.configs {
            match c.evaluate(&platform, scheme) {
                CpeMatch::Match => {
                    outcome = CpeMatch::Match;
                    break;
                }
                CpeMatch::Undecided(r) if outcome == CpeMatch::NoMatch => {
                    outcome = CpeMatch::Undecided(r);
                }
                _ => {}
            }
        }
        if outcome == CpeMatch::NoMatch {
            continue;
        }
        let mut named: Vec<usize> = Vec::new();
        for (i, cpe) in &parsed {
            let criteria = row
                .configs
                .iter()
                .flat_map(|c| &c.nodes)
                .flat_map(|n| &n.matches)
                .filter(|m| m.vulnerable);
            for crit in criteria {
                let m = crit.matches(cpe, scheme);
                if m == CpeMatch::NoMatch || named.contains(i) {
                    continue;
                }
                named.push(*i);
                let Some((sbom_id, comp)) = components.get(*i) else {
                    continue;
                };
                let what = format!(
                    "component {} {} of the model's SBOM ({cpe})",
                    comp.name,
                    comp.version.as_deref().unwrap_or("(no version)")
                );
                let (decided, why) = match (&outcome, &m) {
                    (CpeMatch::Match, CpeMatch::Match) => (
                        true,
                        format!(
                            "{what} is within NVD's configuration of {}: {}",
                            row.cve,
                            criterion_text(crit)
                        ),
                    ),
                    (_, CpeMatch::Undecided(r)) | (CpeMatch::Undecided(r), _) => (
                        false,
                        format!(
                            "{what} against NVD's configuration of {} ({}): {r}",
                            row.cve,
                            criterion_text(crit)
                        ),
                    ),
                    _ => continue,
                };
                out.push(SbomHit {
                    cve: row.cve.clone(),
                    outcome: if decided {
                        HitOutcome::Affected
                    } else {
                        HitOutcome::Review
                    },
                    decisive: false,
                    rule: json!({
                        "advisory_id": row.advisory_id, "tracking_id": row.tracking_id,
                        "revision": row.revision, "source": "sbom",
                        "component": crate::sbom::component_evidence(*sbom_id, comp),
                        "criteria": criterion_text(crit),
                        "why": why, "remediations": [],
                    }),
                });
            }
        }
    }
    out
}

/// What matching concluded for one (asset, CVE).
enum Verdict {
    Affected(Value),
    Review(String, Value),
    Clear(String),
}

/// Which assets a matching run covers.
enum MatchScope {
    /// The whole inventory: findings of assets no longer in it are resolved.
    All,
    /// These assets only (an asset changed, or an advisory naming their
    /// products arrived).
    Assets(BTreeSet<String>),
}

/// An open vulnerability finding as a matching run compares it: by the
/// SHA-256 of its evidence, so that a run over a large fleet does not read
/// every finding's evidence text back.
struct OpenFinding {
    id: i64,
    evidence_sha256: Option<String>,
    priority: Option<i64>,
    last_seen_at: String,
}

/// Above this many assets, a scoped run reads every open vulnerability
/// finding from the covering index and keeps its assets' ones: cheaper than
/// a lookup into the table per finding of each asset.
const SCAN_ABOVE: usize = 1_000;

/// What matching concluded for one CVE on one class of assets (every asset
/// with the same matching inputs): the verdict, and for an open finding its
/// kind and evidence, serialized once with its digest.
struct ClassOutcome {
    verdict: Verdict,
    severity: Severity,
    prio: Priority,
    /// (kind, evidence, its text, SHA-256 of the text); `None` for a clear
    /// verdict.
    finding: Option<(&'static str, Value, String, String)>,
}

impl ClassOutcome {
    fn new(verdict: Verdict, severity: Severity, prio: Priority) -> ClassOutcome {
        let finding = match &verdict {
            Verdict::Affected(ev) => {
                let mut ev = ev.clone();
                ev["priority"] = json!(prio);
                Some((KIND_AFFECTED, ev))
            }
            Verdict::Review(why, ev) => {
                let mut ev = ev.clone();
                ev["review_reason"] = Value::String(why.clone());
                ev["priority"] = json!(prio);
                Some((KIND_REVIEW, ev))
            }
            Verdict::Clear(_) => None,
        }
        .map(|(kind, ev)| {
            let text = ev.to_string();
            let sha = hex::encode(Sha256::digest(text.as_bytes()));
            (kind, ev, text, sha)
        });
        ClassOutcome {
            verdict,
            severity,
            prio,
            finding,
        }
    }
}

/// Ids bound per statement, well under SQLite's and PostgreSQL's limits on
/// parameters.
const ID_CHUNK: usize = 500;

/// `$first, $first+1, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Imports one document (any supported format, detected from content)
    /// in one transaction, and says what happened. A broken document is a
    /// `refused` outcome, not an error: errors are the store's own.
    pub async fn import_vuln_document(&self, bytes: &[u8], actor: &Actor) -> Result<VulnImport> {
        let sha = hex::encode(Sha256::digest(bytes));
        let doc = match read_document(bytes, &sha) {
            Ok(d) => d,
            Err(outcome) => return Ok(*outcome),
        };
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let same: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT id, tracking_id, revision FROM vuln_advisories WHERE sha256 = $1",
        )
        .bind(sha.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let stored = |outcome: &str, id: i64, reason: String| VulnImport {
            outcome: outcome.into(),
            format: Some(doc.format.into()),
            tracking_id: Some(doc.tracking_id.clone()),
            revision: Some(doc.revision.clone()),
            advisory_id: Some(id),
            reason: Some(reason),
            superseded: Vec::new(),
        };
        if let Some((id, tid, rev)) = same {
            return Ok(stored(
                "skipped",
                id,
                format!("same document already imported (advisory {id}, {tid} revision {rev})"),
            ));
        }
        let family = sqlx::query(
            "SELECT id, tracking_id, revision, current_release_date, update_letter \
             FROM vuln_advisories WHERE format = $1 AND family = $2 AND state = 'current'",
        )
        .bind(doc.format)
        .bind(doc.family.clone())
        .fetch_all(&mut *tx)
        .await?;
        let mut superseded = Vec::new();
        for r in &family {
            let id: i64 = r.try_get("id")?;
            let tid: String = r.try_get("tracking_id")?;
            let rev: String = r.try_get("revision")?;
            let date: Option<String> = r.try_get("current_release_date")?;
            let letter: Option<String> = r.try_get("update_letter")?;
            let letter = letter.and_then(|l| l.chars().next());
            match compare_revision(&doc, &tid, &rev, date.as_deref(), letter) {
                Ordering::Greater => superseded.push((id, tid, rev)),
                Ordering::Less => {
                    return Ok(stored(
                        "skipped",
                        id,
                        format!(
                            "older revision: {} revision {} is superseded by the stored {tid} revision {rev} (advisory {id})",
                            doc.tracking_id, doc.revision
                        ),
                    ))
                }
                Ordering::Equal => {
                    return Ok(stored(
                        "skipped",
                        id,
                        format!(
                            "same revision as the stored {tid} revision {rev} (advisory {id}), with different bytes; the stored one is kept"
                        ),
                    ))
                }
            }
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO vuln_advisories (format, tracking_id, family, update_letter, revision, \
             title, publisher, current_release_date, sha256, essentials, state, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'current', $11) RETURNING id",
        )
        .bind(doc.format)
        .bind(doc.tracking_id.clone())
        .bind(doc.family.clone())
        .bind(doc.letter.map(String::from))
        .bind(doc.revision.clone())
        .bind(doc.title.clone())
        .bind(doc.publisher.clone())
        .bind(doc.date.clone())
        .bind(sha.clone())
        .bind(doc.essentials.to_string())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        for (old, _, _) in &superseded {
            sqlx::query(
                "UPDATE vuln_advisories SET state = 'superseded', superseded_by = $1 WHERE id = $2",
            )
            .bind(id)
            .bind(*old)
            .execute(&mut *tx)
            .await?;
        }
        for v in &doc.vulns {
            let newest = v.scores.first();
            let vid: i64 = sqlx::query_scalar(
                "INSERT INTO vuln_vulnerabilities (advisory_id, cve, cwe, title, base_score, \
                 cvss_version, cvss, cpe_configurations) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 RETURNING id",
            )
            .bind(id)
            .bind(v.cve.clone())
            .bind(v.cwe.clone())
            .bind(v.title.clone())
            .bind(newest.map(|s| s.1))
            .bind(newest.map(|s| s.0.clone()))
            .bind(
                Value::Array(
                    v.scores
                        .iter()
                        .map(|(ver, score, vector)| {
                            json!({"version": ver, "base_score": score, "vector": vector})
                        })
                        .collect(),
                )
                .to_string(),
            )
            .bind(v.cpe_configurations.clone())
            .fetch_one(&mut *tx)
            .await?;
            for s in &v.statuses {
                sqlx::query(
                    "INSERT INTO vuln_product_statuses (advisory_id, vulnerability_id, product_id, \
                     full_name, vendor, product_name, product_key, version_text, version_rule, \
                     status, remediations, purl) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(id)
                .bind(vid)
                .bind(s.product_id.clone())
                .bind(s.full_name.clone())
                .bind(s.vendor.clone())
                .bind(s.product_name.clone())
                .bind(s.product_key.clone())
                .bind(s.version_text.clone())
                .bind(s.rule.clone())
                .bind(s.status.clone())
                .bind(s.remediations.to_string())
                .bind(s.purl.clone())
                .execute(&mut *tx)
                .await?;
            }
        }
        for e in &doc.kev {
            let ransomware = match &e.known_ransomware {
                kev::Ransomware::Known => "known".to_owned(),
                kev::Ransomware::Unknown => "unknown".to_owned(),
                kev::Ransomware::Other(s) => s.clone(),
            };
            // The catalog lists each CVE once; a duplicate would be a
            // broken catalog, and the first entry is kept.
            sqlx::query(
                "INSERT INTO vuln_kev (advisory_id, cve, vendor_project, product, name, \
                 date_added, due_date, ransomware) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(e.cve_id.to_ascii_uppercase())
            .bind(e.vendor_project.clone())
            .bind(e.product.clone())
            .bind(e.vulnerability_name.clone())
            .bind(e.date_added.clone())
            .bind(e.due_date.clone())
            .bind(ransomware)
            .execute(&mut *tx)
            .await?;
        }
        for e in &doc.epss {
            sqlx::query(
                "INSERT INTO vuln_epss (advisory_id, cve, epss, percentile) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(e.cve.to_ascii_uppercase())
            .bind(e.epss)
            .bind(e.percentile)
            .execute(&mut *tx)
            .await?;
        }
        let reason = (!superseded.is_empty()).then(|| {
            format!(
                "supersedes {}",
                superseded
                    .iter()
                    .map(|(i, t, r)| format!("{t} revision {r} (advisory {i})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        let entry = actor
            .entry("advisory.import", Outcome::Success)
            .object(format!("advisory:{id}"))
            .reason(format!(
                "{} {} revision {}",
                doc.format, doc.tracking_id, doc.revision
            ))
            .details(&json!({
                "sha256": sha, "vulnerabilities": doc.vulns.len(), "kev_entries": doc.kev.len(),
                "epss_scores": doc.epss.len(),
                "superseded": superseded.iter().map(|s| s.0).collect::<Vec<_>>(),
            }));
        tx.commit_audited(vec![entry], crate::now()).await?;
        let outcome = if superseded.is_empty() {
            "added"
        } else {
            "updated"
        };
        let mut out = stored(outcome, id, reason.unwrap_or_default());
        if out.reason.as_deref() == Some("") {
            out.reason = None;
        }
        out.superseded = superseded.into_iter().map(|s| s.0).collect();
        Ok(out)
    }

    /// Advisories, newest import first.
    pub async fn list_advisories(&self, f: &AdvisoryFilter) -> Result<Vec<AdvisoryRecord>> {
        let limit = if f.limit <= 0 { 100 } else { f.limit.min(500) };
        let mut sql = format!("SELECT {ADVISORY_COLUMNS} FROM vuln_advisories a WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut push = |sql: &mut String, cond: &str, v: String| {
            binds.push(v);
            sql.push_str(&cond.replace("$?", &format!("${}", binds.len())));
        };
        if let Some(x) = &f.format {
            push(&mut sql, " AND format = $?", x.clone());
        }
        if let Some(x) = &f.state {
            push(&mut sql, " AND state = $?", x.clone());
        }
        if let Some(x) = &f.cve {
            push(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM vuln_vulnerabilities v WHERE v.advisory_id = a.id AND v.cve = $?)",
                x.to_ascii_uppercase(),
            );
        }
        if let Some(x) = &f.product_key {
            push(
                &mut sql,
                " AND EXISTS (SELECT 1 FROM vuln_product_statuses s WHERE s.advisory_id = a.id AND s.product_key = $?)",
                x.clone(),
            );
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        q.fetch_all(self.pool())
            .await?
            .iter()
            .map(advisory_from_row)
            .collect()
    }

    /// One advisory with its vulnerabilities and their product statuses.
    pub async fn advisory(&self, id: i64) -> Result<(AdvisoryRecord, Vec<VulnerabilityRecord>)> {
        let r = sqlx::query(&format!(
            "SELECT {ADVISORY_COLUMNS} FROM vuln_advisories WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("advisory {id}"),
        })?;
        let adv = advisory_from_row(&r)?;
        let mut vulns = Vec::new();
        for r in sqlx::query(
            "SELECT id, cve, cwe, title, base_score, cvss_version, cvss FROM vuln_vulnerabilities \
             WHERE advisory_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        {
            vulns.push(VulnerabilityRecord {
                id: r.try_get("id")?,
                cve: r.try_get("cve")?,
                cwe: r.try_get("cwe")?,
                title: r.try_get("title")?,
                base_score: r.try_get("base_score")?,
                cvss_version: r.try_get("cvss_version")?,
                cvss: json_col(&r, "cvss")?,
                product_statuses: Vec::new(),
            });
        }
        for r in sqlx::query(
            "SELECT vulnerability_id, product_id, full_name, vendor, product_name, product_key, \
             version_text, version_rule, status, remediations FROM vuln_product_statuses \
             WHERE advisory_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        {
            let vid: i64 = r.try_get("vulnerability_id")?;
            let s = ProductStatusRecord {
                product_id: r.try_get("product_id")?,
                full_name: r.try_get("full_name")?,
                vendor: r.try_get("vendor")?,
                product_name: r.try_get("product_name")?,
                product_key: r.try_get("product_key")?,
                version_text: r.try_get("version_text")?,
                version_rule: r.try_get("version_rule")?,
                status: r.try_get("status")?,
                remediations: json_col(&r, "remediations")?,
            };
            if let Some(v) = vulns.iter_mut().find(|v| v.id == vid) {
                v.product_statuses.push(s);
            }
        }
        Ok((adv, vulns))
    }

    /// Matches every pump and pump server that is provisioned or in service
    /// against the current advisories, raising and resolving findings (see
    /// the module docs). Safe to run at any time: raising is idempotent.
    pub async fn match_vulnerabilities(&self, actor: &Actor) -> Result<MatchReport> {
        self.match_scope(MatchScope::All, actor).await
    }

    /// Matches one asset again (its firmware, model or software changed):
    /// the incremental form of [`Store::match_vulnerabilities`], which
    /// raises and resolves only this asset's findings. An asset now at or
    /// past the fix has its findings resolved, saying so.
    pub async fn rematch_asset(&self, asset_id: &str, actor: &Actor) -> Result<MatchReport> {
        self.match_scope(
            MatchScope::Assets(BTreeSet::from([asset_id.to_owned()])),
            actor,
        )
        .await
    }

    /// Matches these assets again (an SBOM of their model and version was
    /// attached).
    pub(crate) async fn rematch_assets(
        &self,
        asset_ids: BTreeSet<String>,
        actor: &Actor,
    ) -> Result<MatchReport> {
        self.match_scope(MatchScope::Assets(asset_ids), actor).await
    }

    /// Matches again after an advisory was imported (added, or superseding
    /// earlier revisions): only the assets whose products (model, model
    /// family or a software component) this advisory or the revisions it
    /// superseded name, and the assets with an open finding on one of
    /// their CVEs (a KEV listing, an EPSS score or another document's CVSS
    /// changes those). The findings come out as a full
    /// [`Store::match_vulnerabilities`] would leave them.
    pub async fn rematch_after_import(
        &self,
        advisory_id: i64,
        actor: &Actor,
    ) -> Result<MatchReport> {
        self.rematch_after_imports(&[advisory_id], actor).await
    }

    /// [`Store::rematch_after_import`] of several imported documents at
    /// once (an import of a directory): the union of their assets, each
    /// matched once.
    pub async fn rematch_after_imports(
        &self,
        advisory_ids: &[i64],
        actor: &Actor,
    ) -> Result<MatchReport> {
        let mut scope = BTreeSet::new();
        for chunk in advisory_ids.chunks(ID_CHUNK) {
            scope.extend(self.concerned_assets(chunk).await?);
        }
        self.match_scope(MatchScope::Assets(scope), actor).await
    }

    /// The assets whose findings these imported documents can change (see
    /// [`Store::rematch_after_import`]); at most [`ID_CHUNK`] documents.
    async fn concerned_assets(&self, advisory_ids: &[i64]) -> Result<BTreeSet<String>> {
        let aliases = AliasTable::builtin();
        let sql = format!(
            "SELECT id FROM vuln_advisories WHERE superseded_by IN ({})",
            placeholders(1, advisory_ids.len())
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql);
        for id in advisory_ids {
            q = q.bind(*id);
        }
        let mut docs: Vec<i64> = q.fetch_all(self.pool()).await?;
        docs.extend_from_slice(advisory_ids);
        let within = placeholders(1, docs.len());
        let mut keys: HashSet<String> = HashSet::new();
        let mut cves: HashSet<String> = HashSet::new();
        for (sql, into_keys) in [
            (
                format!("SELECT product_key FROM vuln_product_statuses WHERE product_key IS NOT NULL AND advisory_id IN ({within})"),
                true,
            ),
            (
                format!("SELECT cve FROM vuln_vulnerabilities WHERE cve IS NOT NULL AND advisory_id IN ({within})"),
                false,
            ),
            (format!("SELECT cve FROM vuln_kev WHERE advisory_id IN ({within})"), false),
            (format!("SELECT cve FROM vuln_epss WHERE advisory_id IN ({within})"), false),
        ] {
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for d in &docs {
                q = q.bind(*d);
            }
            let found = q.fetch_all(self.pool()).await?;
            if into_keys {
                keys.extend(found);
            } else {
                cves.extend(found);
            }
        }
        let mut scope: BTreeSet<String> = BTreeSet::new();
        // Assets of a model whose product or family is named.
        let mut models = Vec::new();
        for (id, manufacturer, model) in sqlx::query_as::<_, (i64, String, String)>(
            "SELECT id, manufacturer, model FROM device_models",
        )
        .fetch_all(self.pool())
        .await?
        {
            if let Some(pm) = aliases.product(&manufacturer, &model) {
                if keys.contains(&pm.product.key)
                    || pm.product.family.as_ref().is_some_and(|f| keys.contains(f))
                {
                    models.push(id);
                }
            }
        }
        for chunk in models.chunks(ID_CHUNK) {
            let sql = format!(
                "SELECT asset_id FROM assets WHERE model_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            scope.extend(q.fetch_all(self.pool()).await?);
        }
        // Assets carrying a named product as a software component.
        for (asset_id, manufacturer, software) in sqlx::query_as::<_, (String, String, String)>(
            "SELECT asset_id, manufacturer, software FROM assets WHERE software <> '[]'",
        )
        .fetch_all(self.pool())
        .await?
        {
            let software: Vec<SoftwareComponent> =
                serde_json::from_str(&software).unwrap_or_default();
            if software.iter().any(|c| {
                aliases
                    .product(&manufacturer, &c.name)
                    .is_some_and(|cm| keys.contains(&cm.product.key))
            }) {
                scope.insert(asset_id);
            }
        }
        // Assets with an open finding on one of the CVEs.
        let open_sql = "SELECT subject FROM findings WHERE state = 'open' \
             AND kind IN ('vulnerability.affected', 'vulnerability.review')";
        let subjects: Vec<String> = if cves.len() > ID_CHUNK {
            // A catalog (KEV, EPSS): one pass over the open findings.
            sqlx::query_scalar(open_sql).fetch_all(self.pool()).await?
        } else {
            let mut all = Vec::new();
            for cve in &cves {
                // A range over the subject index (`cve:<id>:asset:` …).
                all.extend(
                    sqlx::query_scalar::<_, String>(&format!(
                        "{open_sql} AND subject >= $1 AND subject < $2"
                    ))
                    .bind(format!("cve:{cve}:asset:"))
                    .bind(format!("cve:{cve}:asset;"))
                    .fetch_all(self.pool())
                    .await?,
                );
            }
            all
        };
        for s in subjects {
            if let Some((cve, asset_id)) =
                s.strip_prefix("cve:").and_then(|s| s.split_once(":asset:"))
            {
                if cves.contains(cve) {
                    scope.insert(asset_id.to_owned());
                }
            }
        }
        // NVD configurations and advisory products' purls can name a
        // component of an attached SBOM: the assets of every model and
        // version with an SBOM.
        let with_configurations: i64 = {
            let sql = format!(
                "SELECT (SELECT COUNT(*) FROM vuln_vulnerabilities WHERE cpe_configurations IS NOT NULL \
                 AND advisory_id IN ({within})) + (SELECT COUNT(*) FROM vuln_product_statuses \
                 WHERE purl IS NOT NULL AND advisory_id IN ({within}))"
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            for d in &docs {
                q = q.bind(*d);
            }
            q.fetch_one(self.pool()).await?
        };
        if with_configurations > 0 {
            let sboms: HashSet<(String, String)> = sqlx::query_as::<_, (String, String)>(
                "SELECT model_key, firmware_version FROM model_sboms",
            )
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(|(k, v)| (k, crate::sbom::firmware_key(&v)))
            .collect();
            if !sboms.is_empty() {
                for (asset_id, manufacturer, model, firmware) in
                    sqlx::query_as::<_, (String, String, String, String)>(
                        "SELECT asset_id, manufacturer, model, firmware_version FROM assets",
                    )
                    .fetch_all(self.pool())
                    .await?
                {
                    let key = crate::sbom::sbom_model_key(aliases, &manufacturer, &model);
                    if sboms.contains(&(key, crate::sbom::firmware_key(&firmware))) {
                        scope.insert(asset_id);
                    }
                }
            }
        }
        Ok(scope)
    }

    async fn match_scope(&self, scope: MatchScope, actor: &Actor) -> Result<MatchReport> {
        let aliases = AliasTable::builtin();
        let mut report = MatchReport::default();

        // Exploitation evidence and fallback scores, by CVE.
        let mut kev: HashMap<String, Value> = HashMap::new();
        for r in sqlx::query(
            "SELECT k.cve, k.date_added, k.due_date, k.ransomware, k.name FROM vuln_kev k \
             JOIN vuln_advisories a ON a.id = k.advisory_id WHERE a.state = 'current'",
        )
        .fetch_all(self.pool())
        .await?
        {
            let cve: String = r.try_get("cve")?;
            kev.insert(
                cve,
                json!({
                    "date_added": r.try_get::<String, _>("date_added")?,
                    "due_date": r.try_get::<String, _>("due_date")?,
                    "ransomware": r.try_get::<String, _>("ransomware")?,
                    "name": r.try_get::<String, _>("name")?,
                }),
            );
        }
        let mut epss: HashMap<String, Value> = HashMap::new();
        let mut epss_probability: HashMap<String, f64> = HashMap::new();
        for r in sqlx::query(
            "SELECT e.cve, e.epss, e.percentile FROM vuln_epss e \
             JOIN vuln_advisories a ON a.id = e.advisory_id WHERE a.state = 'current'",
        )
        .fetch_all(self.pool())
        .await?
        {
            let cve: String = r.try_get("cve")?;
            let (p, pct): (f64, f64) = (r.try_get("epss")?, r.try_get("percentile")?);
            epss_probability.insert(cve.clone(), p);
            epss.insert(cve, json!({"probability": p, "percentile": pct}));
        }
        // The highest score any current document gives a CVE, for advisories
        // (old CISA conversions) that carry none of their own.
        let mut other_scores: HashMap<String, (f64, String, String)> = HashMap::new();
        // Every current (CVSS version, base score) of a CVE, for the priority's
        // newest-version rule.
        let mut cvss_all: HashMap<String, Vec<(String, f64)>> = HashMap::new();
        let mut controls: HashMap<String, BTreeSet<Control>> = HashMap::new();
        for r in sqlx::query("SELECT asset_id, control FROM asset_controls")
            .fetch_all(self.pool())
            .await?
        {
            // Only `record_asset_control` writes the column, from the same list.
            if let Some(c) = Control::parse(&r.try_get::<String, _>("control")?) {
                controls
                    .entry(r.try_get("asset_id")?)
                    .or_default()
                    .insert(c);
            }
        }
        for r in sqlx::query(
            "SELECT v.cve, v.base_score, v.cvss_version, a.tracking_id FROM vuln_vulnerabilities v \
             JOIN vuln_advisories a ON a.id = v.advisory_id \
             WHERE a.state = 'current' AND v.cve IS NOT NULL AND v.base_score IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?
        {
            let cve: String = r.try_get("cve")?;
            let score: f64 = r.try_get("base_score")?;
            let version: Option<String> = r.try_get("cvss_version")?;
            let source: String = r.try_get("tracking_id")?;
            if let Some(v) = &version {
                cvss_all
                    .entry(cve.clone())
                    .or_default()
                    .push((v.clone(), score));
            }
            let e = other_scores
                .entry(cve)
                .or_insert((score, version.clone().unwrap_or_default(), source.clone()));
            if score > e.0 {
                *e = (score, version.unwrap_or_default(), source);
            }
        }

        // Current product statuses, by product key.
        struct StatusRow {
            advisory_id: i64,
            tracking_id: String,
            revision: String,
            cve: String,
            base_score: Option<f64>,
            cvss_version: Option<String>,
            product_id: String,
            full_name: String,
            version_text: Option<String>,
            rule: VersionConstraint,
            status: String,
            remediations: Value,
        }
        let mut by_key: HashMap<String, Vec<StatusRow>> = HashMap::new();
        for r in sqlx::query(
            "SELECT s.advisory_id, a.tracking_id, a.revision, v.cve, v.base_score, v.cvss_version, \
             s.product_key, s.product_id, s.full_name, s.version_text, s.status, s.remediations \
             FROM vuln_product_statuses s \
             JOIN vuln_vulnerabilities v ON v.id = s.vulnerability_id \
             JOIN vuln_advisories a ON a.id = s.advisory_id \
             WHERE a.state = 'current' AND s.product_key IS NOT NULL AND v.cve IS NOT NULL \
             ORDER BY s.id",
        )
        .fetch_all(self.pool())
        .await?
        {
            let full_name: String = r.try_get("full_name")?;
            let version_text: Option<String> = r.try_get("version_text")?;
            // Parsed again from the advisory's words, exactly as at import
            // (`ProductPath::constraint`): no version branch means the rule
            // is the full name, unparsed, so it goes to review.
            let rule = match &version_text {
                Some(t) => VersionConstraint::parse(t),
                None => VersionConstraint::Unparsed(full_name.clone()),
            };
            let key: String = r.try_get("product_key")?;
            by_key.entry(key).or_default().push(StatusRow {
                advisory_id: r.try_get("advisory_id")?,
                tracking_id: r.try_get("tracking_id")?,
                revision: r.try_get("revision")?,
                cve: r.try_get("cve")?,
                base_score: r.try_get("base_score")?,
                cvss_version: r.try_get("cvss_version")?,
                product_id: r.try_get("product_id")?,
                full_name,
                version_text,
                rule,
                status: r.try_get("status")?,
                remediations: json_col(&r, "remediations")?,
            });
        }

        // SBOM components and the NVD configurations they are matched with.
        let sboms = self.sbom_index().await?;
        let mut nvd_rows: Vec<NvdRow> = Vec::new();
        if !sboms.is_empty() {
            for r in sqlx::query(
                "SELECT v.advisory_id, a.tracking_id, a.revision, v.cve, v.cpe_configurations \
                 FROM vuln_vulnerabilities v JOIN vuln_advisories a ON a.id = v.advisory_id \
                 WHERE a.state = 'current' AND v.cve IS NOT NULL \
                 AND v.cpe_configurations IS NOT NULL ORDER BY v.id",
            )
            .fetch_all(self.pool())
            .await?
            {
                let text: String = r.try_get("cpe_configurations")?;
                // Written by the import from a parsed record: a failure here
                // is a damaged store, said as such rather than skipped.
                let configs = nvd::parse_configurations(text.as_bytes())
                    .map_err(|e| StoreError::Invalid(format!("stored NVD configurations: {e}")))?;
                nvd_rows.push(NvdRow {
                    advisory_id: r.try_get("advisory_id")?,
                    tracking_id: r.try_get("tracking_id")?,
                    revision: r.try_get("revision")?,
                    cve: r.try_get("cve")?,
                    configs,
                });
            }
        }
        // Advisory products named by purl, and the SBOMs' VEX statements.
        let purl_statuses = if sboms.is_empty() {
            Vec::new()
        } else {
            self.purl_statuses().await?
        };
        let vex = self.vex_index().await?;
        // (model key, firmware key) → what its SBOM's components raise.
        let mut sbom_cache: HashMap<(String, String), Vec<SbomHit>> = HashMap::new();

        // Every asset's state, to explain why a finding no longer holds.
        let mut asset_state: HashMap<String, String> = HashMap::new();
        // (asset id, CVE) → verdict, for the eligible assets.
        // (asset id, CVE) → the outcome of its class and the finding's title.
        let mut verdicts: BTreeMap<(String, String), (std::sync::Arc<ClassOutcome>, String)> =
            BTreeMap::new();
        // Assets with the same matching inputs (model, firmware, software,
        // device type, care area, exposure, controls) get the same outcomes:
        // a fleet of 100,000 pumps has a few hundred such classes, each
        // evaluated, and its evidence serialized, once.
        let mut classes: HashMap<String, Vec<(String, std::sync::Arc<ClassOutcome>)>> =
            HashMap::new();
        let mut products: HashMap<(String, String), Option<pumpward_vuln::identity::ProductMatch>> =
            HashMap::new();
        let asset_sql = "SELECT a.asset_id, a.kind, a.manufacturer, a.model, a.firmware_version, \
             a.software, a.lifecycle_state, a.device_type, a.care_area, a.zone, a.ip_address, \
             a.mac_address, m.remote_service FROM assets a JOIN device_models m ON m.id = a.model_id";
        // The open vulnerability findings in scope, to compare with what
        // this run concludes.
        // Both read from the covering index `findings_match` alone.
        let open_sql = "SELECT id, kind, subject, evidence_sha256, priority, last_seen_at \
             FROM findings \
             WHERE state = 'open' AND kind IN ('vulnerability.affected', 'vulnerability.review')";
        // For a few assets: `state || ''` keeps SQLite's planner (which has
        // no statistics) off the state index, which would scan every open
        // finding of the fleet once per chunk; it takes the asset index.
        let open_of_assets = "SELECT id, kind, subject, evidence_sha256, priority, last_seen_at \
             FROM findings WHERE state || '' = 'open' \
             AND kind IN ('vulnerability.affected', 'vulnerability.review')";
        let mut asset_rows = Vec::new();
        let mut open_rows = Vec::new();
        match &scope {
            MatchScope::All => {
                asset_rows = sqlx::query(&format!("{asset_sql} ORDER BY a.asset_id"))
                    .fetch_all(self.pool())
                    .await?;
                open_rows = sqlx::query(open_sql).fetch_all(self.pool()).await?;
            }
            MatchScope::Assets(ids) => {
                let scan = ids.len() > SCAN_ABOVE;
                if scan {
                    open_rows = sqlx::query(open_sql).fetch_all(self.pool()).await?;
                }
                let ids: Vec<&String> = ids.iter().collect();
                for chunk in ids.chunks(ID_CHUNK) {
                    let within = placeholders(1, chunk.len());
                    let sql = format!("{asset_sql} WHERE a.asset_id IN ({within})");
                    let mut q = sqlx::query(&sql);
                    for id in chunk {
                        q = q.bind((*id).clone());
                    }
                    asset_rows.extend(q.fetch_all(self.pool()).await?);
                    if scan {
                        continue;
                    }
                    let sql = format!("{open_of_assets} AND asset_id IN ({within})");
                    let mut q = sqlx::query(&sql);
                    for id in chunk {
                        q = q.bind((*id).clone());
                    }
                    open_rows.extend(q.fetch_all(self.pool()).await?);
                }
            }
        }
        let mut open: HashMap<(&'static str, String), OpenFinding> = HashMap::new();
        for r in &open_rows {
            let subject: String = r.try_get("subject")?;
            if let MatchScope::Assets(ids) = &scope {
                // The whole index was read: only the scope's findings count.
                let asset = subject.split_once(":asset:").map(|(_, a)| a);
                if !asset.is_some_and(|a| ids.contains(a)) {
                    continue;
                }
            }
            let kind: String = r.try_get("kind")?;
            let kind = if kind == KIND_AFFECTED {
                KIND_AFFECTED
            } else {
                KIND_REVIEW
            };
            open.insert(
                (kind, subject),
                OpenFinding {
                    id: r.try_get("id")?,
                    evidence_sha256: r.try_get("evidence_sha256")?,
                    priority: r.try_get("priority")?,
                    last_seen_at: r.try_get("last_seen_at")?,
                },
            );
        }
        for r in &asset_rows {
            let asset_id: String = r.try_get("asset_id")?;
            let kind: String = r.try_get("kind")?;
            let state: String = r.try_get("lifecycle_state")?;
            let eligible = matches!(kind.as_str(), "pump" | "pump_server")
                && matches!(state.as_str(), "in_service" | "provisioned");
            asset_state.insert(asset_id.clone(), format!("{kind}, {state}"));
            if !eligible {
                continue;
            }
            report.assets += 1;
            let manufacturer: String = r.try_get("manufacturer")?;
            let model: String = r.try_get("model")?;
            let firmware: String = r.try_get("firmware_version")?;
            let software: String = r.try_get("software")?;
            let software: Vec<SoftwareComponent> =
                serde_json::from_str(&software).unwrap_or_default();
            // Asked once per model in a run: the fleet repeats its models.
            let pm = products
                .entry((manufacturer.clone(), model.clone()))
                .or_insert_with(|| aliases.product(&manufacturer, &model))
                .clone();
            // The components of the SBOM attached to this model and version.
            let sbom_at = (
                crate::sbom::sbom_model_key_of(pm.as_ref(), &manufacturer, &model),
                crate::sbom::firmware_key(&firmware),
            );
            let hits: &[SbomHit] = if sboms.contains_key(&sbom_at) || vex.contains_key(&sbom_at) {
                sbom_cache
                    .entry(sbom_at.clone())
                    .or_insert_with(|| {
                        let components = sboms.get(&sbom_at).map(Vec::as_slice).unwrap_or_default();
                        let mut hits = sbom_hits(components, &nvd_rows);
                        hits.extend(crate::sbom_match::purl_hits(components, &purl_statuses));
                        crate::sbom_match::apply_vex(hits, components, vex.get(&sbom_at))
                    })
                    .as_slice()
            } else {
                &[]
            };
            if pm.is_none() {
                report
                    .unidentified
                    .push((asset_id.clone(), manufacturer.clone(), model.clone()));
                // No advisory can name it; its SBOM's components still can.
                if hits.is_empty() {
                    continue;
                }
            }
            let key = pm
                .as_ref()
                .map_or_else(|| sbom_at.0.clone(), |pm| pm.product.key.clone());
            let is_pump = kind == "pump";
            let device = DeviceClass::from_inventory(
                r.try_get::<Option<String>, _>("device_type")?.as_deref(),
                is_pump,
            );
            let care =
                CareAcuity::from_care_area(r.try_get::<Option<String>, _>("care_area")?.as_deref());
            let exposure = Exposure {
                zone_unrecorded: r.try_get::<Option<String>, _>("zone")?.is_none(),
                network_reachable: r.try_get::<Option<String>, _>("ip_address")?.is_some(),
                // A pump with a MAC address recorded is on the wireless network
                // (SP 1800-8's pumps are wireless; the wired ones are docked
                // behind a gateway, which is its own asset).
                wireless: is_pump && r.try_get::<Option<String>, _>("mac_address")?.is_some(),
                remote_access: RemoteAccess::from_inventory(Some(
                    r.try_get::<String, _>("remote_service")?.as_str(),
                )),
            };
            let asset_controls = controls.get(&asset_id).cloned().unwrap_or_default();
            let product = pm
                .as_ref()
                .map_or(model.as_str(), |pm| pm.product.name.as_str())
                .to_owned();
            let class = format!(
                "{kind}\u{1f}{manufacturer}\u{1f}{model}\u{1f}{firmware}\u{1f}{software:?}\u{1f}{device:?}\u{1f}{care:?}\u{1f}{exposure:?}\u{1f}{asset_controls:?}"
            );
            if let Some(outcomes) = classes.get(&class) {
                for (cve, o) in outcomes {
                    verdicts.insert(
                        (asset_id.clone(), cve.clone()),
                        (o.clone(), format!("{cve} on {asset_id} ({product})")),
                    );
                }
                continue;
            }
            let mut outcomes: Vec<(String, std::sync::Arc<ClassOutcome>)> = Vec::new();
            let scheme = pm.as_ref().map_or(Scheme::Generic, |pm| {
                Scheme::for_manufacturer(&pm.product.manufacturer)
            });
            let components: Vec<Component> = software
                .iter()
                .map(|c| Component {
                    name: c.name.clone(),
                    version: c.version.clone(),
                })
                .collect();
            let installed = Installed {
                version: Some(&firmware),
                model: Some(&model),
                components: &components,
            };
            let asset_ev = json!({
                "manufacturer": manufacturer, "model": model, "firmware_version": firmware,
                "software": software.iter().map(|c| format!("{}={}", c.name, c.version)).collect::<Vec<_>>(),
                "product_key": key, "alias_matched": pm.as_ref().map(|pm| pm.matched.clone()),
            });
            // What is matched: the asset itself, then each software
            // component the alias table knows as a product of the asset's
            // manufacturer (the SpaceCom module inside an Infusomat pump): an
            // advisory about the component is about the pump that carries it.
            let mut targets: Vec<(String, Installed, String)> =
                vec![(key.clone(), installed, format!("firmware {firmware}"))];
            // An advisory naming only the model's family (no model stated)
            // speaks of this model too.
            if let Some(family) = pm.as_ref().and_then(|pm| pm.product.family.as_ref()) {
                targets.push((
                    family.clone(),
                    Installed {
                        version: Some(&firmware),
                        model: Some(&model),
                        components: &components,
                    },
                    format!("firmware {firmware}"),
                ));
            }
            for c in &components {
                if let Some(cm) = aliases.product(&manufacturer, &c.name) {
                    if cm.product.key != key {
                        targets.push((
                            cm.product.key.clone(),
                            Installed {
                                version: Some(&c.version),
                                model: None,
                                components: &[],
                            },
                            format!("component {} {}", c.name, c.version),
                        ));
                    }
                }
            }
            // Group the statuses of these products by CVE, in a stable order.
            let mut per_cve: BTreeMap<&str, Vec<(&StatusRow, usize)>> = BTreeMap::new();
            for (t, (k, ..)) in targets.iter().enumerate() {
                for s in by_key.get(k).map(Vec::as_slice).unwrap_or_default() {
                    per_cve.entry(s.cve.as_str()).or_default().push((s, t));
                }
            }
            for h in hits {
                per_cve.entry(h.cve.as_str()).or_default();
            }
            for (cve, rows) in per_cve {
                let mut affected = Vec::new();
                let mut clear = Vec::new();
                let mut undecided = Vec::new();
                for (s, t) in rows.iter().copied() {
                    let Some(class) = status_class(&s.status) else {
                        continue;
                    };
                    let (_, installed, what) = &targets[t];
                    let decision = s.rule.matches(installed, scheme);
                    let rule_ev = |why: String| {
                        json!({
                            "advisory_id": s.advisory_id, "tracking_id": s.tracking_id,
                            "revision": s.revision, "product_id": s.product_id,
                            "product": s.full_name, "status": s.status,
                            "version_text": s.version_text, "rule": s.rule.to_string(),
                            "why": why, "remediations": s.remediations,
                        })
                    };
                    let text = s.version_text.as_deref().unwrap_or(&s.full_name);
                    match (class, decision) {
                        (StatusClass::Affected, Decision::Yes) => affected.push(rule_ev(format!(
                            "{what} is within the affected versions \"{text}\" (read as {})",
                            s.rule
                        ))),
                        (StatusClass::Clear, Decision::Yes) => clear.push(format!(
                            "{} revision {} lists {what} as {} (\"{text}\")",
                            s.tracking_id, s.revision, s.status
                        )),
                        (StatusClass::Investigating, Decision::Yes) => undecided.push(rule_ev(
                            format!("the vendor is still investigating versions \"{text}\""),
                        )),
                        (_, Decision::Undecided(reason)) => undecided.push(rule_ev(format!(
                            "{} versions \"{text}\": {reason}",
                            s.status
                        ))),
                        (_, Decision::No) => {}
                    }
                }
                // The SBOM's components: NVD's configurations and advisories'
                // purls say affected, clear, or cannot decide (a version that
                // does not compare); VEX statements replace them
                // (`sbom_match`). One about the device decides alone.
                let decisive = hits.iter().any(|h| h.cve == cve && h.decisive);
                if decisive {
                    affected.clear();
                    clear.clear();
                    undecided.clear();
                }
                for h in hits
                    .iter()
                    .filter(|h| h.cve == cve && (h.decisive || !decisive))
                {
                    match &h.outcome {
                        HitOutcome::Affected => affected.push(h.rule.clone()),
                        HitOutcome::Review => undecided.push(h.rule.clone()),
                        HitOutcome::Clear(why) => clear.push(why.clone()),
                    }
                }
                // The advisory's own score where the matching rules' advisories
                // give one; else the highest any current document gives.
                let ids: Vec<i64> = affected
                    .iter()
                    .chain(&undecided)
                    .filter_map(|r| r["advisory_id"].as_i64())
                    .collect();
                let mut own: Option<(f64, String, String)> = None;
                for (s, _) in rows.iter().filter(|(s, _)| ids.contains(&s.advisory_id)) {
                    if let Some(b) = s.base_score {
                        if own.as_ref().is_none_or(|o| b > o.0) {
                            own = Some((
                                b,
                                s.cvss_version.clone().unwrap_or_default(),
                                s.tracking_id.clone(),
                            ));
                        }
                    }
                }
                let score = own.or_else(|| {
                    other_scores
                        .get(cve)
                        .map(|(s, v, src)| (*s, v.clone(), src.clone()))
                });
                let kev_ev = kev.get(cve).cloned();
                let severity = severity_of(score.as_ref().map(|s| s.0), kev_ev.is_some());
                let evidence = |rules: Vec<Value>| {
                    json!({
                        "cve": cve,
                        "asset": asset_ev,
                        "rules": rules,
                        "cvss": score.as_ref().map(|(s, v, src)| json!({"base_score": s, "version": v, "source": src})),
                        "kev": kev_ev,
                        "epss": epss.get(cve),
                    })
                };
                let verdict = if !affected.is_empty() && !clear.is_empty() {
                    let why = format!(
                        "the advisories contradict each other: affected per {}, but {}",
                        affected.len(),
                        clear.join("; ")
                    );
                    let mut rules = affected;
                    rules.extend(undecided);
                    Verdict::Review(why, evidence(rules))
                } else if !affected.is_empty() {
                    Verdict::Affected(evidence(affected))
                } else if !clear.is_empty() {
                    Verdict::Clear(format!("not affected: {}", clear.join("; ")))
                } else if !undecided.is_empty() {
                    let why = undecided
                        .iter()
                        .filter_map(|r| r["why"].as_str())
                        .collect::<Vec<_>>()
                        .join("; ");
                    Verdict::Review(why, evidence(undecided))
                } else {
                    Verdict::Clear(format!(
                        "firmware {firmware} is outside every affected version range of the current advisories"
                    ))
                };
                let prio = priority(&PriorityInput {
                    cvss: Cvss::newest(
                        cvss_all
                            .get(cve)
                            .map(Vec::as_slice)
                            .unwrap_or_default()
                            .iter()
                            .map(|(v, s)| (v.as_str(), *s)),
                    ),
                    kev: kev_ev.is_some(),
                    epss: epss_probability
                        .get(cve)
                        .copied()
                        .and_then(Epss::from_probability),
                    device,
                    care,
                    exposure,
                    controls: asset_controls.clone(),
                });
                outcomes.push((
                    cve.to_owned(),
                    std::sync::Arc::new(ClassOutcome::new(verdict, severity, prio)),
                ));
            }
            for (cve, o) in &outcomes {
                verdicts.insert(
                    (asset_id.clone(), cve.clone()),
                    (o.clone(), format!("{cve} on {asset_id} ({product})")),
                );
            }
            classes.insert(class, outcomes);
        }

        // Write what changed, in one transaction: a run is all or nothing,
        // and a finding whose evidence and priority are unchanged costs no
        // write (a re-match of an unchanged fleet only reads).
        let now_at = crate::now();
        let now = timefmt::format(now_at);
        let mut tx = self.write_tx().await?;
        let mut entries = Vec::new();
        let mut wanted: HashSet<(&'static str, String)> = HashSet::new();
        // Confirmed unchanged, last seen over an hour ago: stamped below.
        let mut confirmed: Vec<i64> = Vec::new();
        let stale = timefmt::format(now_at - time::Duration::hours(1));
        for ((asset_id, cve), (outcome, title)) in &verdicts {
            let Some((kind, evidence, text, sha)) = &outcome.finding else {
                continue;
            };
            let kind = *kind;
            let severity = outcome.severity;
            let subject = format!("cve:{cve}:asset:{asset_id}");
            let title = if kind == KIND_AFFECTED {
                report.affected_open += 1;
                format!("{title}: affected")
            } else {
                report.review_open += 1;
                format!("{title}: to review")
            };
            let score = i64::from(outcome.prio.score);
            match open.get(&(kind, subject.clone())) {
                Some(o)
                    if o.evidence_sha256.as_deref() == Some(sha.as_str())
                        && o.priority == Some(score) =>
                {
                    if o.last_seen_at < stale {
                        confirmed.push(o.id);
                    }
                }
                // The priority moves with the inputs (a KEV listing, a
                // control recorded); the column is for sorting, the factors
                // are in the evidence. Every vulnerability finding starts its
                // remediation at `open`.
                Some(o) => {
                    sqlx::query(
                        "UPDATE findings SET last_seen_at = $1, evidence = $2, priority = $3, \
                         remediation = COALESCE(remediation, 'open'), evidence_sha256 = $4 \
                         WHERE id = $5",
                    )
                    .bind(now.clone())
                    .bind(text.clone())
                    .bind(score)
                    .bind(sha.clone())
                    .bind(o.id)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO findings (kind, subject, asset_id, severity, title, evidence, \
                         state, raised_at, last_seen_at, priority, remediation, evidence_sha256) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $7, $8, 'open', $9) RETURNING id",
                    )
                    .bind(kind)
                    .bind(subject.clone())
                    .bind(asset_id.clone())
                    .bind(severity.as_str())
                    .bind(title.clone())
                    .bind(text.clone())
                    .bind(now.clone())
                    .bind(score)
                    .bind(sha.clone())
                    .fetch_one(&mut *tx)
                    .await?;
                    entries.push(
                        actor
                            .entry("finding.raise", Outcome::Success)
                            .object(format!("finding:{id}"))
                            .reason(title)
                            .details(&json!({
                                "kind": kind, "subject": subject, "asset_id": asset_id,
                                "severity": severity, "evidence": evidence,
                            })),
                    );
                    report.raised += 1;
                }
            }
            wanted.insert((kind, subject));
        }

        // Resolve what no longer holds, saying why.
        for ((kind, subject), o) in &open {
            if wanted.contains(&(*kind, subject.clone())) {
                continue;
            }
            let parsed = subject
                .strip_prefix("cve:")
                .and_then(|s| s.split_once(":asset:"));
            let Some((cve, asset_id)) = parsed else {
                continue;
            };
            let reason = match verdicts
                .get(&(asset_id.to_owned(), cve.to_owned()))
                .map(|(o, _)| &o.verdict)
            {
                Some(Verdict::Clear(why)) => why.clone(),
                Some(Verdict::Affected(_)) => {
                    "decided: the asset is affected (see its vulnerability.affected finding)".into()
                }
                Some(Verdict::Review(why, _)) => {
                    format!("no longer decidable, to review: {why}")
                }
                None => match asset_state.get(asset_id) {
                    None => "the asset is no longer in the inventory".into(),
                    Some(st)
                        if !(st.ends_with(", in_service") || st.ends_with(", provisioned")) =>
                    {
                        format!("the asset is no longer matched ({st}): retired or out of service")
                    }
                    Some(_) => format!(
                        "no current advisory names this asset's product for {cve} (the advisory was superseded, or the asset's model changed)"
                    ),
                },
            };
            let done = sqlx::query(
                "UPDATE findings SET state = 'resolved', resolved_at = $1, resolution = $2 \
                 WHERE id = $3 AND state = 'open'",
            )
            .bind(now.clone())
            .bind(reason.clone())
            .bind(o.id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                entries.push(
                    actor
                        .entry("finding.resolve", Outcome::Success)
                        .object(format!("finding:{}", o.id))
                        .reason(reason),
                );
                report.resolved += 1;
            }
        }
        // Every finding this run confirmed unchanged was seen now, to the
        // hour: a finding stamped within the last hour keeps its stamp, so
        // that re-matches seconds apart (imports, inventory changes) do not
        // rewrite every open finding of the fleet each time.
        for chunk in confirmed.chunks(ID_CHUNK) {
            let sql = format!(
                "UPDATE findings SET last_seen_at = $1 WHERE id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(now.clone());
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        if entries.is_empty() {
            tx.commit().await?;
        } else {
            tx.commit_audited(entries, now_at).await?;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused_and_others_untouched() {
        for (cell, want) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("CVE-2015-3952", "CVE-2015-3952"),
            ("", ""),
        ] {
            assert_eq!(csv_safe_cell(cell), want);
        }
    }

    #[test]
    fn the_csv_quotes_and_defuses() {
        let row = FindingRow {
            finding_id: 7,
            asset_id: Some("P-1".into()),
            advisory_id: Some("ICSA-15-161-01".into()),
            cve: Some("CVE-2015-3952".into()),
            status: "affected".into(),
            priority: Some(55.0),
            priority_band: Some("high".into()),
            remediation: Some("open".into()),
            kind: KIND_AFFECTED.into(),
            severity: Severity::Medium,
            title: "=cmd|' /C calc'!A0, \"quoted\"".into(),
            why: None,
            raised_at: "2026-11-26T00:00:00Z".into(),
            evidence: Value::Null,
        };
        let mut out = Vec::new();
        write_findings_csv(&mut out, &[row]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "7,P-1,ICSA-15-161-01,CVE-2015-3952,affected,55.0,high,open,vulnerability.affected,medium,\"'=cmd|' /C calc'!A0, \"\"quoted\"\"\",,2026-11-26T00:00:00Z"
        );
    }
}
