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
//! nothing. The same bytes twice are skipped (SHA-256), unless they carry
//! product CPE names that an import before migration 0019 did not keep:
//! those are filled (outcome `updated`). A later revision of
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
use pumpward_core::timefmt;
use pumpward_vuln::constraint::VersionConstraint;
use pumpward_vuln::detect::{detect, Format};
use pumpward_vuln::identity::AliasTable;
use pumpward_vuln::version::Version;
use pumpward_vuln::{csaf, cve5, epss, kev, nvd};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::cmp::Ordering;

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

/// Whether an asset changed in what vulnerability matching reads (what it
/// is: manufacturer, model, kind, firmware, software, CPE names; and what its
/// priority weighs: device type, care area, zone, address, MAC), so its
/// findings must be evaluated again.
pub(crate) fn match_inputs_changed(
    old: &pumpward_core::inventory::AssetSpec,
    new: &pumpward_core::inventory::AssetSpec,
) -> bool {
    old.manufacturer != new.manufacturer
        || old.model != new.model
        || old.kind != new.kind
        || old.firmware_version != new.firmware_version
        || old.software != new.software
        || old.cpe != new.cpe
        || old.device_type != new.device_type
        || old.care_area != new.care_area
        || old.zone != new.zone
        || old.ip_address != new.ip_address
        || old.mac_address != new.mac_address
}

/// What happened to one imported document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VulnImport {
    /// `added`, `updated` (it superseded an earlier revision, or the same
    /// document filled what an older import did not keep: product CPE
    /// names), `skipped` (nothing to do) or `refused` (the document is
    /// broken).
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
    /// `product_identification_helper.cpe`.
    cpe: Option<String>,
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
                cpe: path.and_then(|p| p.helper.cpe.clone()),
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

pub(crate) fn json_col(r: &AnyRow, col: &str) -> Result<Value> {
    let s: String = r.try_get(col)?;
    Ok(serde_json::from_str(&s).unwrap_or(Value::String(s)))
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
            let same =
                format!("same document already imported (advisory {id}, {tid} revision {rev})");
            // Product CPE names are stored since migration 0019: a document
            // imported before has them NULL, and these bytes fill them.
            // A product's name is the same in every vulnerability: once
            // filled, `cpe IS NULL` leaves it.
            let mut filled = 0;
            for s in doc.vulns.iter().flat_map(|v| &v.statuses) {
                let Some(cpe) = s.cpe.as_deref() else {
                    continue;
                };
                filled += sqlx::query(
                    "UPDATE vuln_product_statuses SET cpe = $1 \
                     WHERE advisory_id = $2 AND product_id = $3 AND cpe IS NULL",
                )
                .bind(cpe.to_owned())
                .bind(id)
                .bind(s.product_id.clone())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if filled == 0 {
                return Ok(stored("skipped", id, same));
            }
            let reason = format!(
                "{same}; filled the product CPE names of {filled} product statuses, imported before they were stored (migration 0019)"
            );
            let entry = actor
                .entry("advisory.import", Outcome::Success)
                .object(format!("advisory:{id}"))
                .reason(format!(
                    "{} {} revision {}: product CPE names filled",
                    doc.format, doc.tracking_id, doc.revision
                ))
                .details(&json!({"sha256": sha, "filled_cpes": filled}));
            tx.commit_audited(vec![entry], crate::now()).await?;
            return Ok(stored("updated", id, reason));
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
                     status, remediations, purl, cpe) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
                .bind(s.cpe.clone())
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
