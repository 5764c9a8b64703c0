//! The matching run (issue 5): every pump and pump server that is
//! provisioned or in service against the current advisories, raising and
//! resolving findings (what a match means is in the `vuln` module's docs).
//!
//! A run is organised so that a fleet of 100,000 pumps costs about one read
//! of its assets and of their open findings, and a run after an import
//! about one read of what that import can change:
//!
//! - **Classes.** Assets with the same matching inputs (kind, manufacturer,
//!   model, firmware, software, CPE names, device type, care area,
//!   exposure, controls)
//!   get the same outcomes: a fleet has a few hundred such classes, each
//!   evaluated, and its evidence serialized and digested, once. An asset is
//!   only a class number and its id.
//! - **Digests.** An open finding is compared by the SHA-256 of its
//!   evidence and its priority (`findings.evidence_sha256`), read from the
//!   covering index `findings_match`: the evidence text is never read back.
//! - **CVE scope.** The outcome of one CVE on a class depends only on that
//!   CVE's product statuses, scores, KEV and EPSS entries and NVD
//!   configurations. A run after an import therefore evaluates and compares
//!   only the imported documents' CVEs (and those of the revisions they
//!   superseded), on the assets those documents can concern: no other
//!   finding can change. The store suite checks that such a run leaves
//!   exactly what a full run would.
//! - **Writes.** Only what changed is written, in one transaction: a run is
//!   all or nothing, and a re-match of an unchanged fleet only reads.

use crate::vuln::{json_col, MatchReport, KIND_AFFECTED, KIND_REVIEW};
use crate::{Actor, Result, Severity, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::inventory::SoftwareComponent;
use pumpward_core::timefmt;
use pumpward_vuln::constraint::{Component, Decision, Installed, VersionConstraint};
use pumpward_vuln::identity::{AliasTable, ProductMatch};
use pumpward_vuln::nvd;
use pumpward_vuln::priority::{
    priority, CareAcuity, Control, Cvss, DeviceClass, Epss, Exposure, Priority, PriorityInput,
    RemoteAccess,
};
use pumpward_vuln::version::Scheme;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};

// A run hashes every asset id and CVE of the fleet a few times: aHash,
// randomly keyed per process (keys come from imported documents, so a
// fixed-key hash would let a crafted document degrade a run), at a
// fraction of SipHash's cost.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
type HashSet<T> = std::collections::HashSet<T, ahash::RandomState>;
/// A run's CVEs, as `sbom_match` filters by them.
pub(crate) type CveSet = HashSet<String>;

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
/// advisory's purl or CPE name, a VEX statement: `sbom_match`), with the
/// rule as a finding cites it.
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
    use pumpward_vuln::cpe::Cpe;
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
    configuration_hits(&parsed, nvd_rows, |i, cpe| {
        let (sbom_id, comp) = components.get(i)?;
        let what = format!(
            "component {} {} of the model's SBOM ({cpe})",
            comp.name,
            comp.version.as_deref().unwrap_or("(no version)")
        );
        Some((
            what,
            json!({
                "source": "sbom",
                "component": crate::sbom::component_evidence(*sbom_id, comp),
            }),
        ))
    })
}

/// What the NVD records raise for an asset's own CPE names (`cpe`): exactly
/// as for an SBOM's components ([`sbom_hits`]), the asset's names the
/// platform, each name's own version attribute the version compared (as
/// NVD does; the asset's firmware field is not put in its place).
fn asset_cpe_hits(cpes: &[pumpward_vuln::cpe::Cpe], nvd_rows: &[NvdRow]) -> Vec<SbomHit> {
    let parsed: Vec<(usize, pumpward_vuln::cpe::Cpe)> = cpes.iter().cloned().enumerate().collect();
    let names: Vec<String> = cpes.iter().map(ToString::to_string).collect();
    configuration_hits(&parsed, nvd_rows, |_, cpe| {
        Some((
            format!("the asset's CPE name {cpe}"),
            json!({
                "source": "asset_cpe", "matched_by": "asset_cpe",
                "asset_cpe": cpe.to_string(), "cpes": names,
            }),
        ))
    })
}

/// What the NVD records raise for the CPE names `parsed` (each with the
/// index of what holds it): all of them are the platform a configuration is
/// evaluated against, and each holder that a vulnerable criterion matches
/// is named once per CVE. `holder` gives the holder's words in a finding
/// and the fields its rule adds (`source`, what it is).
fn configuration_hits(
    parsed: &[(usize, pumpward_vuln::cpe::Cpe)],
    nvd_rows: &[NvdRow],
    holder: impl Fn(usize, &pumpward_vuln::cpe::Cpe) -> Option<(String, Value)>,
) -> Vec<SbomHit> {
    use pumpward_vuln::cpe::{Cpe, CpeMatch};
    let scheme = Scheme::DottedNumeric;
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
        for (i, cpe) in parsed {
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
                let Some((what, fields)) = holder(*i, cpe) else {
                    continue;
                };
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
                let mut rule = json!({
                    "advisory_id": row.advisory_id, "tracking_id": row.tracking_id,
                    "revision": row.revision,
                    "criteria": criterion_text(crit),
                    "why": why, "remediations": [],
                });
                if let (Some(rule), Value::Object(fields)) = (rule.as_object_mut(), fields) {
                    rule.extend(fields);
                }
                out.push(SbomHit {
                    cve: row.cve.clone(),
                    outcome: if decided {
                        HitOutcome::Affected
                    } else {
                        HitOutcome::Review
                    },
                    decisive: false,
                    rule,
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
/// Which assets and CVEs a run covers.
#[derive(Default)]
struct MatchScope {
    /// `None`: the whole inventory, and findings of assets no longer in it
    /// are resolved.
    assets: Option<AssetScope>,
    /// `None`: every CVE. Otherwise these only (a run after an import),
    /// and every asset with an open finding on one of them is in scope too.
    cves: Option<HashSet<String>>,
}

/// Some assets: by id (an asset changed, an SBOM of its model was
/// attached) and the assets of some models (an advisory naming their
/// product arrived).
#[derive(Default)]
struct AssetScope {
    ids: HashSet<String>,
    models: BTreeSet<i64>,
}

/// Above this many assets, a scoped run reads every open vulnerability
/// finding from the covering index and keeps its assets' ones: cheaper than
/// a lookup into the table per finding of each asset.
const SCAN_ABOVE: usize = 1_000;

/// Open findings read per query in a scan (see
/// `Store::scope_open_findings`); tiny in unit tests, so that a small
/// fleet crosses slices.
const SCAN_SLICE: usize = if cfg!(test) { 3 } else { 50_000 };

/// Up to this many CVEs, a CVE-scoped run reads each CVE's open findings
/// as a range of the subject index (`cve:<id>:asset:…`).
const CVE_RANGES_UP_TO: usize = 64;

/// Above this many CVEs (an EPSS file, the KEV catalog), the per-CVE
/// tables are read whole and filtered here rather than in chunks of
/// [`ID_CHUNK`].
const CVE_FILTER_IN_SQL_UP_TO: usize = 2_000;

/// Open vulnerability findings with the same kind, evidence digest,
/// priority and staleness of their `last_seen_at`: what a run compares a
/// finding by. A fleet's open findings fall into a few thousand such
/// groups.
struct OpenGroup {
    kind: &'static str,
    evidence_sha256: Option<String>,
    priority: Option<i64>,
    /// `last_seen_at` over an hour old: to be stamped when confirmed.
    stale: bool,
}

/// One open vulnerability finding: its id, its group, and where its
/// subject is in the text read ([`OpenFindings::subject`]).
struct OpenFinding {
    id: i64,
    group: usize,
    text: usize,
    at: std::ops::Range<usize>,
}

/// The open findings of a run's scope.
#[derive(Default)]
struct OpenFindings {
    /// The values read, which the findings' subjects are slices of.
    texts: Vec<String>,
    groups: Vec<OpenGroup>,
    findings: Vec<OpenFinding>,
}

impl OpenFindings {
    /// `cve:<cve>:asset:<asset id>`.
    fn subject(&self, f: &OpenFinding) -> &str {
        self.texts
            .get(f.text)
            .and_then(|t| t.get(f.at.clone()))
            .unwrap_or_default()
    }

    /// (CVE, asset id) of a finding.
    fn cve_and_asset(&self, f: &OpenFinding) -> Option<(&str, &str)> {
        cve_and_asset(self.subject(f))
    }
}

fn cve_and_asset(subject: &str) -> Option<(&str, &str)> {
    const SEP: &str = ":asset:";
    let s = subject.strip_prefix("cve:")?;
    // The first `:asset:` (a CVE id has no colon: this is the first one).
    let mut from = 0;
    while let Some(i) = s[from..].find(':') {
        let at = from + i;
        if s[at..].starts_with(SEP) {
            return Some((&s[..at], &s[at + SEP.len()..]));
        }
        from = at + 1;
    }
    None
}

/// The filter of open vulnerability findings. `state || ''` is for a few
/// assets: it keeps SQLite's planner (which has no statistics) off the
/// state index, which would scan every open finding of the fleet once per
/// chunk, and sends it to the asset index.
const OPEN_WHERE: &str =
    "state = 'open' AND kind IN ('vulnerability.affected', 'vulnerability.review')";
const OPEN_OF_ASSETS_WHERE: &str =
    "state || '' = 'open' AND kind IN ('vulnerability.affected', 'vulnerability.review')";

/// A reader of the lists the store's aggregates write (see
/// [`Store::joined`]): members separated by `,`, each a sequence of fields
/// that are either plain (up to the next `|`: digits, hex, flags, which
/// cannot hold one) or counted (`<length in characters>|<text>`, whatever
/// the text holds).
struct Joined<'a> {
    all: &'a str,
    rest: &'a str,
}

impl<'a> Joined<'a> {
    fn new(s: &'a str) -> Joined<'a> {
        Joined { all: s, rest: s }
    }

    fn bad(&self) -> StoreError {
        StoreError::Invalid(format!(
            "a list the store's aggregate wrote does not read back, at {:.60}",
            &self.all[self.all.len() - self.rest.len()..]
        ))
    }

    fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    /// A plain field and its `|`.
    fn plain(&mut self) -> Result<&'a str> {
        let (field, after) = self.rest.split_once('|').ok_or_else(|| self.bad())?;
        self.rest = after;
        Ok(field)
    }

    /// A counted field.
    fn counted(&mut self) -> Result<&'a str> {
        let n: usize = self.plain()?.parse().map_err(|_| self.bad())?;
        // `n` characters (what both databases' `length` counts); ASCII,
        // the usual case, is `n` bytes.
        let end = if self.rest.get(..n).is_some_and(|t| t.is_ascii()) {
            n
        } else if n == 0 {
            0
        } else {
            let (i, c) = self
                .rest
                .char_indices()
                .nth(n - 1)
                .ok_or_else(|| self.bad())?;
            i + c.len_utf8()
        };
        let text = &self.rest[..end];
        self.rest = &self.rest[end..];
        Ok(text)
    }

    /// The `,` after a member (none after the last).
    fn end_member(&mut self) -> Result<()> {
        if let Some(r) = self.rest.strip_prefix(',') {
            if r.is_empty() {
                return Err(self.bad());
            }
            self.rest = r;
        } else if !self.rest.is_empty() {
            return Err(self.bad());
        }
        Ok(())
    }
}

/// Splits a value of [`Store::joined`] back into its parts.
fn split_joined(s: &str) -> Result<Vec<&str>> {
    let mut j = Joined::new(s);
    let mut out = Vec::new();
    while !j.at_end() {
        out.push(j.counted()?);
        j.end_member()?;
    }
    Ok(out)
}

/// A current product status, as a class evaluation reads it.
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

/// What every class evaluation of a run reads, loaded once (limited to the
/// run's CVEs).
struct Knowledge {
    aliases: &'static AliasTable,
    /// Exploitation evidence and fallback scores, by CVE.
    kev: HashMap<String, Value>,
    epss: HashMap<String, Value>,
    epss_probability: HashMap<String, f64>,
    /// The highest score any current document gives a CVE, for advisories
    /// (old CISA conversions) that carry none of their own.
    other_scores: HashMap<String, (f64, String, String)>,
    /// Every current (CVSS version, base score) of a CVE, for the
    /// priority's newest-version rule.
    cvss_all: HashMap<String, Vec<(String, f64)>>,
    controls: HashMap<String, BTreeSet<Control>>,
    /// Current product statuses, by product key.
    by_key: HashMap<String, Vec<StatusRow>>,
    /// SBOM components by (model key, firmware key), and the NVD
    /// configurations they are matched with.
    sboms: crate::sbom::SbomIndex,
    nvd_rows: Vec<NvdRow>,
    /// Advisory products named by purl or CPE, and the SBOMs' VEX
    /// statements (`sbom_match`), of the run's CVEs.
    named_statuses: Vec<crate::sbom_match::NamedProductStatus>,
    vex: crate::sbom_match::VexIndex,
    /// Whether `nvd_rows` and `named_statuses` are loaded: for the SBOMs'
    /// components, or the assets' CPE names (only when a run meets one).
    named_loaded: bool,
    /// (model key, firmware key) → what its SBOM's components raise.
    sbom_cache: HashMap<(String, String), std::sync::Arc<Vec<SbomHit>>>,
    /// An asset's stored CPE names → what they raise.
    cpe_cache: HashMap<String, std::sync::Arc<Vec<SbomHit>>>,
    /// The alias table's answer per (manufacturer, model): the fleet
    /// repeats its models.
    products: HashMap<(String, String), Option<ProductMatch<'static>>>,
}

/// Assets alike in everything a class evaluation reads of them (their
/// controls apart).
struct AssetGroup {
    kind: String,
    manufacturer: String,
    model: String,
    firmware: String,
    /// The stored JSON text, parsed only when its class is new.
    software: String,
    /// The asset's CPE names as stored (space-separated, canonical; empty
    /// for most), parsed only when its class is new.
    cpe: String,
    lifecycle_state: String,
    device_type: Option<String>,
    care_area: Option<String>,
    zone_unrecorded: bool,
    network_reachable: bool,
    has_mac: bool,
    remote_service: String,
}

/// Asset groups as a run reads them: one row per model, kind,
/// manufacturer, model name, firmware, software, lifecycle, device type
/// and care area, its members (each with its zone, address and MAC flags)
/// joined.
struct AssetGroups {
    /// Each model's remote service.
    remote: HashMap<i64, String>,
    groups: Vec<AssetGroup>,
    members: Vec<(String, usize)>,
    /// (row's group columns, flags) → group: the same row can come back
    /// from two queries of one scope.
    by_key: HashMap<String, usize>,
}

impl AssetGroups {
    /// Takes the rows read, keeping the members `keep` says.
    fn take(&mut self, rows: &[AnyRow], keep: impl Fn(&str) -> bool) -> Result<()> {
        for r in rows {
            let model_id: i64 = r.try_get("model_id")?;
            let base = AssetGroup {
                kind: r.try_get("kind")?,
                manufacturer: r.try_get("manufacturer")?,
                model: r.try_get("model")?,
                firmware: r.try_get("firmware_version")?,
                software: r.try_get("software")?,
                cpe: r.try_get("cpe")?,
                lifecycle_state: r.try_get("lifecycle_state")?,
                device_type: r.try_get("device_type")?,
                care_area: r.try_get("care_area")?,
                zone_unrecorded: false,
                network_reachable: false,
                has_mac: false,
                remote_service: self.remote.get(&model_id).cloned().unwrap_or_default(),
            };
            // The class key, with what decides whether the asset is matched.
            let row_key = format!(
                "{model_id}\u{1f}{}\u{1f}{}",
                base.lifecycle_state,
                base.class_key(None)
            );
            let joined: String = r.try_get("members")?;
            let mut j = Joined::new(&joined);
            // This row's groups by flags (the key is formatted once each).
            let mut by_flags: [Option<usize>; 8] = [None; 8];
            while !j.at_end() {
                let flags = j.plain()?;
                let id = j.counted()?;
                j.end_member()?;
                if !keep(id) {
                    continue;
                }
                let &[zone, ip, mac] = flags.as_bytes() else {
                    return Err(j.bad());
                };
                let bit = |b: u8| usize::from(b == b'1');
                let slot = bit(zone) << 2 | bit(ip) << 1 | bit(mac);
                let key = match by_flags[slot] {
                    Some(g) => {
                        self.members.push((id.to_owned(), g));
                        continue;
                    }
                    None => format!("{row_key}\u{1f}{flags}"),
                };
                let group = match self.by_key.get(&key) {
                    Some(g) => *g,
                    None => {
                        self.groups.push(AssetGroup {
                            zone_unrecorded: zone == b'1',
                            network_reachable: ip == b'1',
                            has_mac: mac == b'1',
                            kind: base.kind.clone(),
                            manufacturer: base.manufacturer.clone(),
                            model: base.model.clone(),
                            firmware: base.firmware.clone(),
                            software: base.software.clone(),
                            cpe: base.cpe.clone(),
                            lifecycle_state: base.lifecycle_state.clone(),
                            device_type: base.device_type.clone(),
                            care_area: base.care_area.clone(),
                            remote_service: base.remote_service.clone(),
                        });
                        self.by_key.insert(key, self.groups.len() - 1);
                        self.groups.len() - 1
                    }
                };
                by_flags[slot] = Some(group);
                self.members.push((id.to_owned(), group));
            }
        }
        Ok(())
    }

    /// The groups, and the members in asset id order, each once.
    fn finish(mut self) -> (Vec<AssetGroup>, Vec<(String, usize)>) {
        self.members.sort_unstable();
        self.members.dedup_by(|a, b| a.0 == b.0);
        (self.groups, self.members)
    }
}

impl AssetGroup {
    fn eligible(&self) -> bool {
        matches!(self.kind.as_str(), "pump" | "pump_server")
            && matches!(self.lifecycle_state.as_str(), "in_service" | "provisioned")
    }

    /// Everything a class evaluation reads of an asset of the group with
    /// these controls, as one key: equal keys, equal outcomes. (Raw values:
    /// a finer partition than the evaluation needs costs a few more
    /// evaluations, never a wrong one.)
    fn class_key(&self, controls: Option<&BTreeSet<Control>>) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1f}{:?}\u{1f}{}{}{}\u{1f}{}\u{1f}{:?}",
            self.kind,
            self.manufacturer,
            self.model,
            self.firmware,
            self.software,
            self.cpe,
            self.device_type,
            self.care_area,
            u8::from(self.zone_unrecorded),
            u8::from(self.network_reachable),
            u8::from(self.has_mac),
            self.remote_service,
            controls
        )
    }
}

/// The outcomes of one class of assets.
struct Class {
    /// The product's name, for finding titles.
    product: String,
    /// No alias-table product names the model (a person should know).
    unidentified: bool,
    /// (CVE, outcome), in CVE order.
    outcomes: Vec<(String, ClassOutcome)>,
    by_cve: HashMap<String, usize>,
}

/// An asset of a run: its id, its group (its lifecycle explains a
/// resolution) and its class (`None`: not matched, being retired, out of
/// service or not a pump).
struct RunAsset {
    id: String,
    group: usize,
    class: Option<usize>,
}

impl Knowledge {
    async fn load(store: &Store, scope: &MatchScope) -> Result<Knowledge> {
        let mut k = Knowledge {
            aliases: AliasTable::builtin(),
            kev: HashMap::default(),
            epss: HashMap::default(),
            epss_probability: HashMap::default(),
            other_scores: HashMap::default(),
            cvss_all: HashMap::default(),
            controls: HashMap::default(),
            by_key: HashMap::default(),
            sboms: store.sbom_index().await?,
            nvd_rows: Vec::new(),
            named_statuses: Vec::new(),
            vex: store.vex_index(scope.cves.as_ref()).await?,
            named_loaded: false,
            sbom_cache: HashMap::default(),
            cpe_cache: HashMap::default(),
            products: HashMap::default(),
        };
        let cves = scope.cves.as_ref();
        for r in store
            .rows_of_cves(
                "SELECT k.cve, k.date_added, k.due_date, k.ransomware, k.name FROM vuln_kev k \
                 JOIN vuln_advisories a ON a.id = k.advisory_id WHERE a.state = 'current'",
                "k.cve",
                "",
                cves,
            )
            .await?
        {
            let cve: String = r.try_get("cve")?;
            k.kev.insert(
                cve,
                json!({
                    "date_added": r.try_get::<String, _>("date_added")?,
                    "due_date": r.try_get::<String, _>("due_date")?,
                    "ransomware": r.try_get::<String, _>("ransomware")?,
                    "name": r.try_get::<String, _>("name")?,
                }),
            );
        }
        for r in store
            .rows_of_cves(
                "SELECT e.cve, e.epss, e.percentile FROM vuln_epss e \
                 JOIN vuln_advisories a ON a.id = e.advisory_id WHERE a.state = 'current'",
                "e.cve",
                "",
                cves,
            )
            .await?
        {
            let cve: String = r.try_get("cve")?;
            let (p, pct): (f64, f64) = (r.try_get("epss")?, r.try_get("percentile")?);
            k.epss_probability.insert(cve.clone(), p);
            k.epss
                .insert(cve, json!({"probability": p, "percentile": pct}));
        }
        for r in sqlx::query("SELECT asset_id, control FROM asset_controls")
            .fetch_all(store.pool())
            .await?
        {
            // Only `record_asset_control` writes the column, from the same list.
            if let Some(c) = Control::parse(&r.try_get::<String, _>("control")?) {
                k.controls
                    .entry(r.try_get("asset_id")?)
                    .or_default()
                    .insert(c);
            }
        }
        for r in store
            .rows_of_cves(
                "SELECT v.cve, v.base_score, v.cvss_version, a.tracking_id \
                 FROM vuln_vulnerabilities v JOIN vuln_advisories a ON a.id = v.advisory_id \
                 WHERE a.state = 'current' AND v.cve IS NOT NULL AND v.base_score IS NOT NULL",
                "v.cve",
                "ORDER BY v.id",
                cves,
            )
            .await?
        {
            let cve: String = r.try_get("cve")?;
            let score: f64 = r.try_get("base_score")?;
            let version: Option<String> = r.try_get("cvss_version")?;
            let source: String = r.try_get("tracking_id")?;
            if let Some(v) = &version {
                k.cvss_all
                    .entry(cve.clone())
                    .or_default()
                    .push((v.clone(), score));
            }
            let e = k.other_scores.entry(cve).or_insert((
                score,
                version.clone().unwrap_or_default(),
                source.clone(),
            ));
            if score > e.0 {
                *e = (score, version.unwrap_or_default(), source);
            }
        }
        for r in store
            .rows_of_cves(
                "SELECT s.advisory_id, a.tracking_id, a.revision, v.cve, v.base_score, \
                 v.cvss_version, s.product_key, s.product_id, s.full_name, s.version_text, \
                 s.status, s.remediations \
                 FROM vuln_product_statuses s \
                 JOIN vuln_vulnerabilities v ON v.id = s.vulnerability_id \
                 JOIN vuln_advisories a ON a.id = s.advisory_id \
                 WHERE a.state = 'current' AND s.product_key IS NOT NULL AND v.cve IS NOT NULL",
                "v.cve",
                "ORDER BY s.id",
                cves,
            )
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
            k.by_key.entry(key).or_default().push(StatusRow {
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
        if !k.sboms.is_empty() {
            k.load_named(store, scope).await?;
        }
        Ok(k)
    }

    /// Loads the NVD configurations and the advisory products named by purl
    /// or CPE (of the run's CVEs), once: what SBOM components and assets'
    /// CPE names are matched with.
    async fn load_named(&mut self, store: &Store, scope: &MatchScope) -> Result<()> {
        if self.named_loaded {
            return Ok(());
        }
        let k = self;
        let cves = scope.cves.as_ref();
        for r in store
            .rows_of_cves(
                "SELECT v.advisory_id, a.tracking_id, a.revision, v.cve, \
                 v.cpe_configurations \
                 FROM vuln_vulnerabilities v JOIN vuln_advisories a ON a.id = v.advisory_id \
                 WHERE a.state = 'current' AND v.cve IS NOT NULL \
                 AND v.cpe_configurations IS NOT NULL",
                "v.cve",
                "ORDER BY v.id",
                cves,
            )
            .await?
        {
            let text: String = r.try_get("cpe_configurations")?;
            // Written by the import from a parsed record: a failure here
            // is a damaged store, said as such rather than skipped.
            let configs = nvd::parse_configurations(text.as_bytes())
                .map_err(|e| StoreError::Invalid(format!("stored NVD configurations: {e}")))?;
            k.nvd_rows.push(NvdRow {
                advisory_id: r.try_get("advisory_id")?,
                tracking_id: r.try_get("tracking_id")?,
                revision: r.try_get("revision")?,
                cve: r.try_get("cve")?,
                configs,
            });
        }
        k.named_statuses = store.named_product_statuses(cves).await?;
        k.named_loaded = true;
        Ok(())
    }

    /// Evaluates one class of assets (represented by `a`) against every
    /// status of its products, per CVE.
    fn evaluate(&mut self, a: &AssetGroup, asset_controls: &BTreeSet<Control>) -> Class {
        let aliases = self.aliases;
        let (manufacturer, model, firmware) = (&a.manufacturer, &a.model, &a.firmware);
        let software: Vec<SoftwareComponent> =
            serde_json::from_str(&a.software).unwrap_or_default();
        let pm = self
            .products
            .entry((manufacturer.clone(), model.clone()))
            .or_insert_with(|| aliases.product(manufacturer, model))
            .clone();
        // The components of the SBOM attached to this model and version.
        let sbom_at = (
            crate::sbom::sbom_model_key_of(pm.as_ref(), manufacturer, model),
            crate::sbom::firmware_key(firmware),
        );
        let hits: std::sync::Arc<Vec<SbomHit>> =
            if self.sboms.contains_key(&sbom_at) || self.vex.contains_key(&sbom_at) {
                let (sboms, nvd_rows) = (&self.sboms, &self.nvd_rows);
                let (named_statuses, vex) = (&self.named_statuses, &self.vex);
                self.sbom_cache
                    .entry(sbom_at.clone())
                    .or_insert_with(|| {
                        let components = sboms.get(&sbom_at).map(Vec::as_slice).unwrap_or_default();
                        let mut hits = sbom_hits(components, nvd_rows);
                        hits.extend(crate::sbom_match::named_product_hits(
                            components,
                            named_statuses,
                        ));
                        std::sync::Arc::new(crate::sbom_match::apply_vex(
                            hits,
                            components,
                            vex.get(&sbom_at),
                        ))
                    })
                    .clone()
            } else {
                std::sync::Arc::new(Vec::new())
            };
        // The asset's own CPE names raise as an SBOM component's do; one
        // finding per CVE holds both (the verdict below weighs every rule).
        let hits = if a.cpe.is_empty() {
            hits
        } else {
            let (nvd_rows, named_statuses) = (&self.nvd_rows, &self.named_statuses);
            let own = self
                .cpe_cache
                .entry(a.cpe.clone())
                .or_insert_with(|| {
                    // Stored by `bind_spec` from validated names: one that
                    // no longer parses names nothing.
                    let cpes: Vec<(&str, pumpward_vuln::cpe::Cpe)> = a
                        .cpe
                        .split(' ')
                        .filter_map(|t| pumpward_vuln::cpe::Cpe::parse(t).ok().map(|c| (t, c)))
                        .collect();
                    let parsed: Vec<pumpward_vuln::cpe::Cpe> =
                        cpes.iter().map(|(_, c)| c.clone()).collect();
                    let mut own = asset_cpe_hits(&parsed, nvd_rows);
                    own.extend(crate::sbom_match::asset_cpe_named_hits(
                        &cpes,
                        named_statuses,
                    ));
                    std::sync::Arc::new(own)
                })
                .clone();
            if hits.is_empty() {
                own
            } else {
                std::sync::Arc::new(hits.iter().chain(own.iter()).cloned().collect())
            }
        };
        let product = pm
            .as_ref()
            .map_or(model.as_str(), |pm| pm.product.name.as_str())
            .to_owned();
        let mut class = Class {
            product,
            unidentified: pm.is_none(),
            outcomes: Vec::new(),
            by_cve: HashMap::default(),
        };
        // No advisory can name an unidentified model; its SBOM's components
        // still can.
        if pm.is_none() && hits.is_empty() {
            return class;
        }
        let key = pm
            .as_ref()
            .map_or_else(|| sbom_at.0.clone(), |pm| pm.product.key.clone());
        let is_pump = a.kind == "pump";
        let device = DeviceClass::from_inventory(a.device_type.as_deref(), is_pump);
        let care = CareAcuity::from_care_area(a.care_area.as_deref());
        let exposure = Exposure {
            zone_unrecorded: a.zone_unrecorded,
            network_reachable: a.network_reachable,
            // A pump with a MAC address recorded is on the wireless network
            // (SP 1800-8's pumps are wireless; the wired ones are docked
            // behind a gateway, which is its own asset).
            wireless: is_pump && a.has_mac,
            remote_access: RemoteAccess::from_inventory(Some(a.remote_service.as_str())),
        };
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
            version: Some(firmware),
            model: Some(model),
            components: &components,
        };
        let mut asset_ev = json!({
            "manufacturer": manufacturer, "model": model, "firmware_version": firmware,
            "software": software.iter().map(|c| format!("{}={}", c.name, c.version)).collect::<Vec<_>>(),
            "product_key": key, "alias_matched": pm.as_ref().map(|pm| pm.matched.clone()),
        });
        // Only when it has some: the evidence (and its digest) of an asset
        // without CPE names is what it was before assets carried them.
        if !a.cpe.is_empty() {
            asset_ev["cpe"] = json!(a.cpe.split(' ').collect::<Vec<_>>());
        }
        // What is matched: the asset itself, then each software component
        // the alias table knows as a product of the asset's manufacturer
        // (the SpaceCom module inside an Infusomat pump): an advisory about
        // the component is about the pump that carries it.
        let mut targets: Vec<(String, Installed, String)> =
            vec![(key.clone(), installed, format!("firmware {firmware}"))];
        // An advisory naming only the model's family (no model stated)
        // speaks of this model too.
        if let Some(family) = pm.as_ref().and_then(|pm| pm.product.family.as_ref()) {
            targets.push((
                family.clone(),
                Installed {
                    version: Some(firmware),
                    model: Some(model),
                    components: &components,
                },
                format!("firmware {firmware}"),
            ));
        }
        for c in &components {
            if let Some(cm) = aliases.product(manufacturer, &c.name) {
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
            for s in self.by_key.get(k).map(Vec::as_slice).unwrap_or_default() {
                per_cve.entry(s.cve.as_str()).or_default().push((s, t));
            }
        }
        for h in hits.iter() {
            per_cve.entry(h.cve.as_str()).or_default();
        }
        for (cve, rows) in per_cve {
            let mut affected = Vec::new();
            let mut clear = Vec::new();
            let mut undecided = Vec::new();
            for (s, t) in rows.iter().copied() {
                let Some(status) = status_class(&s.status) else {
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
                match (status, decision) {
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
            // purls and CPE names say affected, clear, or cannot decide (a version that
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
                self.other_scores
                    .get(cve)
                    .map(|(s, v, src)| (*s, v.clone(), src.clone()))
            });
            let kev_ev = self.kev.get(cve).cloned();
            let severity = severity_of(score.as_ref().map(|s| s.0), kev_ev.is_some());
            let evidence = |rules: Vec<Value>| {
                json!({
                    "cve": cve,
                    "asset": asset_ev,
                    "rules": rules,
                    "cvss": score.as_ref().map(|(s, v, src)| json!({"base_score": s, "version": v, "source": src})),
                    "kev": kev_ev,
                    "epss": self.epss.get(cve),
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
                    self.cvss_all
                        .get(cve)
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(|(v, s)| (v.as_str(), *s)),
                ),
                kev: kev_ev.is_some(),
                epss: self
                    .epss_probability
                    .get(cve)
                    .copied()
                    .and_then(Epss::from_probability),
                device,
                care,
                exposure,
                controls: asset_controls.clone(),
            });
            class.by_cve.insert(cve.to_owned(), class.outcomes.len());
            class
                .outcomes
                .push((cve.to_owned(), ClassOutcome::new(verdict, severity, prio)));
        }
        class
    }
}

impl Store {
    /// Matches every pump and pump server that is provisioned or in service
    /// against the current advisories, raising and resolving findings (see
    /// the module docs). Safe to run at any time: raising is idempotent.
    pub async fn match_vulnerabilities(&self, actor: &Actor) -> Result<MatchReport> {
        self.match_scope(MatchScope::default(), actor).await
    }

    /// Whether any current advisory, catalog or record is held (nothing
    /// to match against otherwise).
    pub(crate) async fn holds_current_advisories(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM vuln_advisories WHERE state = 'current' LIMIT 1) held",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    /// Matches one asset again (its firmware, model or software changed):
    /// the incremental form of [`Store::match_vulnerabilities`], which
    /// raises and resolves only this asset's findings. An asset now at or
    /// past the fix has its findings resolved, saying so.
    pub async fn rematch_asset(&self, asset_id: &str, actor: &Actor) -> Result<MatchReport> {
        self.rematch_assets([asset_id.to_owned()], actor).await
    }

    /// Matches these assets again (an SBOM of their model and version was
    /// attached).
    pub(crate) async fn rematch_assets(
        &self,
        asset_ids: impl IntoIterator<Item = String>,
        actor: &Actor,
    ) -> Result<MatchReport> {
        let scope = MatchScope {
            assets: Some(AssetScope {
                ids: asset_ids.into_iter().collect(),
                models: BTreeSet::new(),
            }),
            cves: None,
        };
        self.match_scope(scope, actor).await
    }

    /// Matches again after an advisory was imported (added, or superseding
    /// earlier revisions): only the CVEs this advisory and the revisions it
    /// superseded speak of, on the assets whose products (model, model
    /// family or a software component) they name and the assets with an
    /// open finding on one of those CVEs (a KEV listing, an EPSS score or
    /// another document's CVSS changes those). The findings come out as a
    /// full [`Store::match_vulnerabilities`] would leave them; the report's
    /// counts are of that scope.
    pub async fn rematch_after_import(
        &self,
        advisory_id: i64,
        actor: &Actor,
    ) -> Result<MatchReport> {
        self.rematch_after_imports(&[advisory_id], actor).await
    }

    /// [`Store::rematch_after_import`] of several imported documents at
    /// once (an import of a directory): the union of their CVEs and assets,
    /// each asset matched once.
    pub async fn rematch_after_imports(
        &self,
        advisory_ids: &[i64],
        actor: &Actor,
    ) -> Result<MatchReport> {
        let mut scope = MatchScope {
            assets: Some(AssetScope::default()),
            cves: Some(HashSet::default()),
        };
        for chunk in advisory_ids.chunks(ID_CHUNK) {
            self.concerned(chunk, &mut scope).await?;
        }
        self.match_scope(scope, actor).await
    }

    /// Rows of `sql` (whose last clause is a WHERE) limited to `cves` when
    /// given, by `cve_column`; `order` (an ORDER BY clause or empty) holds
    /// within each CVE.
    async fn rows_of_cves(
        &self,
        sql: &str,
        cve_column: &str,
        order: &str,
        cves: Option<&HashSet<String>>,
    ) -> Result<Vec<AnyRow>> {
        let Some(cves) = cves.filter(|c| c.len() <= CVE_FILTER_IN_SQL_UP_TO) else {
            let rows = sqlx::query(&format!("{sql} {order}"))
                .fetch_all(self.pool())
                .await?;
            let Some(cves) = cves else {
                return Ok(rows);
            };
            let mut kept = Vec::new();
            for r in rows {
                if cves.contains(&r.try_get::<String, _>("cve")?) {
                    kept.push(r);
                }
            }
            return Ok(kept);
        };
        let cves: Vec<&String> = cves.iter().collect();
        let mut out = Vec::new();
        for chunk in cves.chunks(ID_CHUNK) {
            let sql = format!(
                "{sql} AND {cve_column} IN ({}) {order}",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for cve in chunk {
                q = q.bind((*cve).clone());
            }
            out.extend(q.fetch_all(self.pool()).await?);
        }
        Ok(out)
    }

    /// Adds to `scope` the CVEs and assets these imported documents can
    /// change (see [`Store::rematch_after_import`]); at most [`ID_CHUNK`]
    /// documents.
    async fn concerned(&self, advisory_ids: &[i64], scope: &mut MatchScope) -> Result<()> {
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
        let mut keys: HashSet<String> = HashSet::default();
        let mut cves: HashSet<String> = HashSet::default();
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
        // Every product any document states something about for these CVEs:
        // an asset can only hold a finding on a CVE through such a status
        // (or its model's SBOM, below), so reading these products' assets
        // by model brings nearly every asset with an open finding on the
        // CVEs, which the run adds, without a lookup per asset.
        let listed: Vec<&String> = cves.iter().collect();
        for chunk in listed.chunks(ID_CHUNK) {
            let sql = format!(
                "SELECT DISTINCT s.product_key FROM vuln_product_statuses s \
                 JOIN vuln_vulnerabilities v ON v.id = s.vulnerability_id \
                 WHERE s.product_key IS NOT NULL AND v.cve IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for cve in chunk {
                q = q.bind((*cve).clone());
            }
            keys.extend(q.fetch_all(self.pool()).await?);
        }
        let assets = scope.assets.get_or_insert_with(AssetScope::default);
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
        assets.models.extend(models);
        // Assets carrying a named product as a software component.
        if !keys.is_empty() {
            let sql = format!(
                "SELECT manufacturer, software, {} AS members FROM assets \
                 WHERE software <> '[]' GROUP BY manufacturer, software",
                self.joined("asset_id")
            );
            for (manufacturer, software, members) in
                sqlx::query_as::<_, (String, String, String)>(&sql)
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
                    assets
                        .ids
                        .extend(split_joined(&members)?.into_iter().map(str::to_owned));
                }
            }
        }
        // The assets with an open finding on one of the CVEs are added by
        // the run, which reads those findings anyway.
        // NVD configurations and advisory products' purls and CPE names can
        // name a component of an attached SBOM: the assets of every model
        // and version with an SBOM.
        let with_configurations: i64 = {
            let sql = format!(
                "SELECT (SELECT COUNT(*) FROM vuln_vulnerabilities WHERE cpe_configurations IS NOT NULL \
                 AND advisory_id IN ({within})) + (SELECT COUNT(*) FROM vuln_product_statuses \
                 WHERE (purl IS NOT NULL OR cpe IS NOT NULL) AND advisory_id IN ({within}))"
            );
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            for d in &docs {
                q = q.bind(*d);
            }
            q.fetch_one(self.pool()).await?
        };
        if with_configurations > 0 {
            // And the assets that carry CPE names of their own (the partial
            // index `assets_with_cpe`: none read for a fleet without).
            assets.ids.extend(
                sqlx::query_scalar::<_, String>("SELECT asset_id FROM assets WHERE cpe <> ''")
                    .fetch_all(self.pool())
                    .await?,
            );
            let sboms: HashSet<(String, String)> = sqlx::query_as::<_, (String, String)>(
                "SELECT model_key, firmware_version FROM model_sboms",
            )
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .map(|(k, v)| (k, crate::sbom::firmware_key(&v)))
            .collect();
            if !sboms.is_empty() {
                let sql = format!(
                    "SELECT manufacturer, model, firmware_version, {} AS members FROM assets \
                     GROUP BY manufacturer, model, firmware_version",
                    self.joined("asset_id")
                );
                for (manufacturer, model, firmware, members) in
                    sqlx::query_as::<_, (String, String, String, String)>(&sql)
                        .fetch_all(self.pool())
                        .await?
                {
                    let key = crate::sbom::sbom_model_key(aliases, &manufacturer, &model);
                    if sboms.contains(&(key, crate::sbom::firmware_key(&firmware))) {
                        assets
                            .ids
                            .extend(split_joined(&members)?.into_iter().map(str::to_owned));
                    }
                }
            }
        }
        scope.cves.get_or_insert_with(HashSet::default).extend(cves);
        Ok(())
    }

    /// An aggregate joining the text expression `member` over a group's
    /// rows, separated by `,` (see [`Joined`]).
    fn aggregate(&self, member: &str) -> String {
        match self.backend() {
            crate::Backend::Sqlite => format!("group_concat({member}, ',')"),
            crate::Backend::Postgres => format!("string_agg({member}, ',')"),
        }
    }

    /// The expressions' values separated by `|`, built by one call (one
    /// string per row rather than one per `||`).
    fn format_sql(&self, exprs: &[&str]) -> String {
        let pattern = vec!["%s"; exprs.len()].join("|");
        let f = match self.backend() {
            crate::Backend::Sqlite => "printf",
            crate::Backend::Postgres => "format",
        };
        format!("{f}('{pattern}', {})", exprs.join(", "))
    }

    /// An aggregate joining the text expression `expr` over a group's rows,
    /// each prefixed by its length in characters so that [`split_joined`]
    /// splits it back whatever the parts hold.
    fn joined(&self, expr: &str) -> String {
        self.aggregate(&format!("length({expr}) || '|' || {expr}"))
    }

    /// The assets of the scope, grouped (see [`AssetGroup`]): the groups,
    /// and each asset id with its group, in asset id order (findings are
    /// raised in a stable order).
    async fn scope_assets(
        &self,
        scope: &MatchScope,
    ) -> Result<(Vec<AssetGroup>, Vec<(String, usize)>)> {
        // The GROUP BY is a prefix of the covering index `assets_match`:
        // the database streams the groups off the index, with no sort and
        // no lookup into the table.
        let member = self
            .format_sql(&[
                "CASE WHEN zone IS NULL THEN '1' ELSE '0' END",
                "CASE WHEN ip_address IS NULL THEN '0' ELSE '1' END",
                "CASE WHEN mac_address IS NULL THEN '0' ELSE '1' END",
                "length(asset_id)",
                "asset_id",
            ])
            .replacen("%s|%s|%s|", "%s%s%s|", 1);
        let member = member.as_str();
        let columns = "model_id, kind, manufacturer, model, firmware_version, software, cpe, \
             lifecycle_state, device_type, care_area";
        let select = |filter: &str| {
            format!(
                "SELECT {columns}, {} AS members FROM assets {filter} GROUP BY {columns}",
                self.aggregate(member)
            )
        };
        let remote: HashMap<i64, String> =
            sqlx::query_as::<_, (i64, String)>("SELECT id, remote_service FROM device_models")
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .collect();
        let mut read = AssetGroups {
            remote,
            groups: Vec::new(),
            members: Vec::new(),
            by_key: HashMap::default(),
        };
        let Some(assets) = &scope.assets else {
            let rows = sqlx::query(&select("")).fetch_all(self.pool()).await?;
            read.take(&rows, |_| true)?;
            return Ok(read.finish());
        };
        // A model's assets in one query; then those named by id that it
        // did not bring.
        let models: Vec<&i64> = assets.models.iter().collect();
        for chunk in models.chunks(ID_CHUNK) {
            let sql = select(&format!(
                "WHERE model_id IN ({})",
                placeholders(1, chunk.len())
            ));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(**id);
            }
            let rows = q.fetch_all(self.pool()).await?;
            read.take(&rows, |_| true)?;
        }
        let rest: HashSet<String> = {
            let done: HashSet<&str> = read.members.iter().map(|(id, _)| id.as_str()).collect();
            assets
                .ids
                .iter()
                .filter(|id| !done.contains(id.as_str()))
                .cloned()
                .collect()
        };
        if rest.len() > SCAN_ABOVE {
            // More than lookups pay for: one pass over the index.
            let rows = sqlx::query(&select("")).fetch_all(self.pool()).await?;
            read.take(&rows, |id| rest.contains(id))?;
        } else {
            let rest: Vec<&String> = rest.iter().collect();
            for chunk in rest.chunks(ID_CHUNK) {
                let sql = select(&format!(
                    "WHERE asset_id IN ({})",
                    placeholders(1, chunk.len())
                ));
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind((*id).clone());
                }
                let rows = q.fetch_all(self.pool()).await?;
                read.take(&rows, |_| true)?;
            }
        }
        Ok(read.finish())
    }

    /// The open vulnerability findings of the scope, grouped (see
    /// [`OpenGroup`]): on the scope's CVEs, every asset's (read before the
    /// assets: their assets are in scope); otherwise the scope's assets'
    /// ones. `stale` is the bound of a `last_seen_at` to be stamped again.
    async fn scope_open_findings(&self, scope: &MatchScope, stale: &str) -> Result<OpenFindings> {
        // One text value per query, every finding a member `id|stale|
        // priority|digest|<length>|subject` (see `Joined`): the driver's
        // cost per row is most of what reading a large fleet costs.
        let member = self.format_sql(&[
            "id",
            "CASE WHEN last_seen_at < $1 THEN '1' ELSE '0' END",
            "COALESCE(CAST(priority AS TEXT), '~')",
            "COALESCE(evidence_sha256, '~')",
            "length(subject)",
            "subject",
        ]);
        let member = member.as_str();
        let select = |filter: &str| {
            format!(
                "SELECT kind, {} AS members FROM findings WHERE {filter} GROUP BY kind",
                self.aggregate(member)
            )
        };
        let mut rows: Vec<(String, String)> = Vec::new();
        let few_assets = scope
            .assets
            .as_ref()
            .is_some_and(|a| a.models.is_empty() && a.ids.len() <= SCAN_ABOVE);
        match &scope.cves {
            Some(cves) if cves.len() <= CVE_RANGES_UP_TO => {
                // A range of the subject index per CVE (`cve:<id>:asset:` …).
                let sql = select(&format!("{OPEN_WHERE} AND subject >= $2 AND subject < $3"));
                for cve in cves {
                    rows.extend(
                        sqlx::query_as::<_, (String, String)>(&sql)
                            .bind(stale.to_owned())
                            .bind(format!("cve:{cve}:asset:"))
                            .bind(format!("cve:{cve}:asset;"))
                            .fetch_all(self.pool())
                            .await?,
                    );
                }
            }
            None if few_assets => {
                let ids: Vec<&String> = scope
                    .assets
                    .as_ref()
                    .map(|a| a.ids.iter().collect())
                    .unwrap_or_default();
                for chunk in ids.chunks(ID_CHUNK) {
                    let sql = select(&format!(
                        "{OPEN_OF_ASSETS_WHERE} AND asset_id IN ({})",
                        placeholders(2, chunk.len())
                    ));
                    let mut q = sqlx::query_as::<_, (String, String)>(&sql).bind(stale.to_owned());
                    for id in chunk {
                        q = q.bind((*id).clone());
                    }
                    rows.extend(q.fetch_all(self.pool()).await?);
                }
            }
            // The whole fleet, a catalog's CVEs, or more assets than
            // lookups pay for: the covering index `findings_match` in
            // subject order, a slice at a time (the values stay small).
            _ => {
                let sql = format!(
                    "SELECT {}, MAX(subject) FROM (SELECT id, subject, priority, \
                     evidence_sha256, last_seen_at FROM findings \
                     WHERE state = 'open' AND kind = $2 AND subject > $3 \
                     ORDER BY subject LIMIT {SCAN_SLICE}) slice",
                    self.aggregate(member)
                );
                for kind in [KIND_AFFECTED, KIND_REVIEW] {
                    let mut after = String::new();
                    loop {
                        let (members, last) =
                            sqlx::query_as::<_, (Option<String>, Option<String>)>(&sql)
                                .bind(stale.to_owned())
                                .bind(kind)
                                .bind(after.clone())
                                .fetch_one(self.pool())
                                .await?;
                        let (Some(members), Some(last)) = (members, last) else {
                            break;
                        };
                        rows.push((kind.to_owned(), members));
                        after = last;
                    }
                }
            }
        }
        let mut groups: Vec<OpenGroup> = Vec::new();
        let mut findings = Vec::new();
        let (kinds, texts): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
        {
            let mut group_of: HashMap<(&str, &str, &str, bool), usize> = HashMap::default();
            for (t, text) in texts.iter().enumerate() {
                let mut j = Joined::new(text);
                let kind = if kinds[t] == KIND_AFFECTED {
                    KIND_AFFECTED
                } else {
                    KIND_REVIEW
                };
                while !j.at_end() {
                    let id = j.plain()?;
                    let stale = j.plain()? == "1";
                    let priority = j.plain()?;
                    let sha = j.plain()?;
                    let subject = j.counted()?;
                    j.end_member()?;
                    let Some((cve, asset_id)) = cve_and_asset(subject) else {
                        continue;
                    };
                    // A scan or a CVE's range reads more than the scope.
                    let in_scope = match (&scope.cves, &scope.assets) {
                        (Some(cves), _) => cves.contains(cve),
                        (None, Some(a)) => a.ids.contains(asset_id),
                        (None, None) => true,
                    };
                    if !in_scope {
                        continue;
                    }
                    let group = match group_of.get(&(kind, sha, priority, stale)) {
                        Some(g) => *g,
                        None => {
                            groups.push(OpenGroup {
                                kind,
                                evidence_sha256: (sha != "~").then(|| sha.to_owned()),
                                priority: match priority {
                                    "~" => None,
                                    p => Some(p.parse().map_err(|_| j.bad())?),
                                },
                                stale,
                            });
                            group_of.insert((kind, sha, priority, stale), groups.len() - 1);
                            groups.len() - 1
                        }
                    };
                    // `subject` is a slice of `text`.
                    let start = subject.as_ptr() as usize - text.as_ptr() as usize;
                    findings.push(OpenFinding {
                        id: id.parse().map_err(|_| j.bad())?,
                        group,
                        text: t,
                        at: start..start + subject.len(),
                    });
                }
            }
        }
        Ok(OpenFindings {
            texts,
            groups,
            findings,
        })
    }

    async fn match_scope(&self, mut scope: MatchScope, actor: &Actor) -> Result<MatchReport> {
        let started = std::time::Instant::now();
        let mut report = MatchReport::default();
        let mut k = Knowledge::load(self, &scope).await?;
        let now_at = crate::now();
        let now = timefmt::format(now_at);
        let stale = timefmt::format(now_at - time::Duration::hours(1));

        // Each asset's class, each class evaluated once.
        // After an import, the open findings on its CVEs first: their
        // assets are in scope.
        let mut open = None;
        if scope.cves.is_some() {
            let read = self.scope_open_findings(&scope, &stale).await?;
            if let Some(a) = &mut scope.assets {
                for f in &read.findings {
                    if let Some((_, asset)) = read.cve_and_asset(f) {
                        if !a.ids.contains(asset) {
                            a.ids.insert(asset.to_owned());
                        }
                    }
                }
            }
            open = Some(read);
        }
        let (groups, members) = self.scope_assets(&scope).await?;
        // Assets' CPE names are matched with what SBOMs are: read only when
        // a matched asset carries one (most fleets: none, at no cost).
        if groups.iter().any(|g| !g.cpe.is_empty() && g.eligible()) {
            k.load_named(self, &scope).await?;
        }
        let none = BTreeSet::new();
        let mut assets: Vec<RunAsset> = Vec::with_capacity(members.len());
        let mut classes: Vec<Class> = Vec::new();
        let mut class_of: HashMap<String, usize> = HashMap::default();
        // The class of a group's assets without controls (most of them).
        let mut plain: Vec<Option<usize>> = vec![None; groups.len()];
        for (id, g) in members {
            let group = &groups[g];
            let class = if group.eligible() {
                report.assets += 1;
                let controls = if k.controls.is_empty() {
                    None
                } else {
                    k.controls.get(&id).cloned()
                };
                match (&controls, plain[g]) {
                    (None, Some(c)) => Some(c),
                    _ => {
                        let key = group.class_key(controls.as_ref());
                        let c = match class_of.get(&key) {
                            Some(c) => *c,
                            None => {
                                classes.push(k.evaluate(group, controls.as_ref().unwrap_or(&none)));
                                class_of.insert(key, classes.len() - 1);
                                classes.len() - 1
                            }
                        };
                        if controls.is_none() {
                            plain[g] = Some(c);
                        }
                        Some(c)
                    }
                }
            } else {
                None
            };
            assets.push(RunAsset {
                id,
                group: g,
                class,
            });
        }
        drop(class_of);
        let index: HashMap<&str, usize> = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.as_str(), i))
            .collect();
        // Where each asset's outcomes start in `seen`.
        let mut offsets = Vec::with_capacity(assets.len());
        let mut total = 0usize;
        for a in &assets {
            offsets.push(total);
            total += a.class.map_or(0, |c| classes[c].outcomes.len());
        }
        // Which (asset, outcome) has its open finding already.
        let mut seen = vec![false; total];

        let open = match open {
            Some(o) => o,
            None => self.scope_open_findings(&scope, &stale).await?,
        };

        // Write what changed, in one transaction: a run is all or nothing,
        // and a finding whose evidence and priority are unchanged costs no
        // write (a re-match of an unchanged fleet only reads).
        let mut tx = self.write_tx().await?;
        let mut entries = Vec::new();
        // Confirmed unchanged, last seen over an hour ago: stamped below.
        let mut confirmed: Vec<i64> = Vec::new();
        for o in &open.findings {
            let Some((cve, asset_id)) = open.cve_and_asset(o) else {
                continue;
            };
            let og = &open.groups[o.group];
            let asset = index.get(asset_id).copied();
            let class = asset.and_then(|i| assets[i].class.map(|c| (i, c)));
            let outcome = class.and_then(|(i, c)| {
                let at = *classes[c].by_cve.get(cve)?;
                Some((offsets[i] + at, &classes[c].outcomes[at].1))
            });
            if let Some((at, out)) = outcome {
                if let Some((kind, _, text, sha)) = &out.finding {
                    if *kind == og.kind {
                        seen[at] = true;
                        let score = i64::from(out.prio.score);
                        if og.evidence_sha256.as_deref() == Some(sha.as_str())
                            && og.priority == Some(score)
                        {
                            if og.stale {
                                confirmed.push(o.id);
                            }
                        } else {
                            // The priority moves with the inputs (a KEV
                            // listing, a control recorded); the column is for
                            // sorting, the factors are in the evidence. Every
                            // vulnerability finding starts its remediation at
                            // `open`.
                            sqlx::query(
                                "UPDATE findings SET last_seen_at = $1, evidence = $2, \
                                 priority = $3, remediation = COALESCE(remediation, 'open'), \
                                 evidence_sha256 = $4 WHERE id = $5",
                            )
                            .bind(now.clone())
                            .bind(text.clone())
                            .bind(score)
                            .bind(sha.clone())
                            .bind(o.id)
                            .execute(&mut *tx)
                            .await?;
                        }
                        continue;
                    }
                }
            }
            // Resolve what no longer holds, saying why.
            let reason = match outcome.map(|(_, out)| &out.verdict) {
                Some(Verdict::Clear(why)) => why.clone(),
                Some(Verdict::Affected(_)) => {
                    "decided: the asset is affected (see its vulnerability.affected finding)".into()
                }
                Some(Verdict::Review(why, _)) => {
                    format!("no longer decidable, to review: {why}")
                }
                None => match asset.map(|i| &groups[assets[i].group]) {
                    None => "the asset is no longer in the inventory".into(),
                    Some(g) if !g.eligible() => format!(
                        "the asset is no longer matched ({}, {}): retired or out of service",
                        g.kind, g.lifecycle_state
                    ),
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

        // Raise what holds and has no open finding yet.
        for (i, a) in assets.iter().enumerate() {
            let Some(c) = a.class else {
                continue;
            };
            let class = &classes[c];
            if class.unidentified {
                let g = &groups[a.group];
                report
                    .unidentified
                    .push((a.id.clone(), g.manufacturer.clone(), g.model.clone()));
            }
            for (at, (cve, out)) in class.outcomes.iter().enumerate() {
                let Some((kind, evidence, text, sha)) = &out.finding else {
                    continue;
                };
                let kind = *kind;
                if kind == KIND_AFFECTED {
                    report.affected_open += 1;
                } else {
                    report.review_open += 1;
                }
                if seen[offsets[i] + at] {
                    continue;
                }
                let subject = format!("cve:{cve}:asset:{}", a.id);
                let title = format!(
                    "{cve} on {} ({}): {}",
                    a.id,
                    class.product,
                    if kind == KIND_AFFECTED {
                        "affected"
                    } else {
                        "to review"
                    }
                );
                let severity = out.severity;
                let score = i64::from(out.prio.score);
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO findings (kind, subject, asset_id, severity, title, evidence, \
                     state, raised_at, last_seen_at, priority, remediation, evidence_sha256) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $7, $8, 'open', $9) RETURNING id",
                )
                .bind(kind)
                .bind(subject.clone())
                .bind(a.id.clone())
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
                            "kind": kind, "subject": subject, "asset_id": a.id,
                            "severity": severity, "evidence": evidence,
                        })),
                );
                report.raised += 1;
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
        tracing::debug!(
            assets = report.assets,
            classes = classes.len(),
            open_read = open.findings.len(),
            raised = report.raised,
            resolved = report.resolved,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "vulnerability matching run"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the databases' aggregate of [`Store::joined`] writes.
    fn join(parts: &[String]) -> String {
        parts
            .iter()
            .map(|p| format!("{}|{p}", p.chars().count()))
            .collect::<Vec<_>>()
            .join(",")
    }

    proptest! {
        #[test]
        fn joined_parts_split_back_whatever_they_hold(
            parts in proptest::collection::vec(".{0,12}", 1..20),
        ) {
            let joined = join(&parts);
            let split = split_joined(&joined).unwrap();
            prop_assert_eq!(split, parts.iter().map(String::as_str).collect::<Vec<_>>());
        }

        #[test]
        fn a_subject_splits_at_its_first_asset_marker(s in "[a-z:C0-9-]{0,30}") {
            let subject = format!("cve:{s}");
            prop_assert_eq!(cve_and_asset(&subject), s.split_once(":asset:"));
            prop_assert_eq!(cve_and_asset(&s), s.strip_prefix("cve:").and_then(|r| r.split_once(":asset:")));
        }

        #[test]
        fn a_damaged_list_is_an_error_not_a_panic(s in ".{0,40}") {
            let _ = split_joined(&s);
        }
    }

    #[test]
    fn separators_inside_parts_do_not_split_them() {
        let parts = vec!["a,b|c".to_owned(), String::new(), "é,|".to_owned()];
        assert_eq!(split_joined(&join(&parts)).unwrap(), ["a,b|c", "", "é,|"]);
        assert_eq!(split_joined("").unwrap(), Vec::<&str>::new());
        for bad in ["3|ab", "x|a", "1|a,", "1|ab", "2|a"] {
            assert!(split_joined(bad).is_err(), "{bad}");
        }
    }

    /// A full run over findings read in slices of three (both kinds, many
    /// slices) sees every open finding: a second run changes nothing, and
    /// one with a finding's asset retired resolves exactly its findings.
    #[tokio::test]
    async fn a_scan_in_slices_reads_every_open_finding() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let fleet = std::fs::read(here.join("tests/data/labelled/fleet.csv")).unwrap();
        let parsed = pumpward_core::inventory::csv::read_assets_csv(
            &fleet[..],
            &pumpward_core::inventory::csv::CsvLimits::default(),
        )
        .unwrap();
        let actor = Actor::cli();
        store
            .import_assets(&parsed.rows, false, &actor)
            .await
            .unwrap();
        for name in [
            "icsa-15-125-01b.json",
            "icsa-15-161-01.json",
            "icsa-20-168-01.json",
        ] {
            let path = here.join("../pumpward-vuln/tests/data/csaf").join(name);
            let bytes = std::fs::read(&path)
                .or_else(|_| std::fs::read(here.join("tests/data/labelled").join(name)))
                .unwrap();
            assert!(!store
                .import_vuln_document(&bytes, &actor)
                .await
                .unwrap()
                .is_refused());
        }
        let first = store.match_vulnerabilities(&actor).await.unwrap();
        let open = first.affected_open + first.review_open;
        assert!(
            open > 4 * SCAN_SLICE && first.review_open > SCAN_SLICE,
            "{first:?}"
        );
        assert_eq!(first.raised, open);
        let again = store.match_vulnerabilities(&actor).await.unwrap();
        assert_eq!((again.raised, again.resolved), (0, 0), "{again:?}");
        assert_eq!(again.affected_open + again.review_open, open);
        // The last asset in subject order is in the last slice.
        let last: String = sqlx::query_scalar(
            "SELECT asset_id FROM findings WHERE state = 'open' ORDER BY subject DESC LIMIT 1",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        let its: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM findings WHERE state = 'open' AND asset_id = $1",
        )
        .bind(last.clone())
        .fetch_one(store.pool())
        .await
        .unwrap();
        sqlx::query("UPDATE assets SET lifecycle_state = 'retired' WHERE asset_id = $1")
            .bind(last)
            .execute(store.pool())
            .await
            .unwrap();
        let after = store.match_vulnerabilities(&actor).await.unwrap();
        assert_eq!((after.raised, after.resolved as i64), (0, its), "{after:?}");
    }
}
