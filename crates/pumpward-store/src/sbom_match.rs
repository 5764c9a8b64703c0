//! What an attached SBOM raises for its model and firmware version beyond
//! NVD's CPE configurations (`vuln_match.rs`, `sbom_hits`):
//!
//! - **purl**: an advisory product whose `product_identification_helper`
//!   carries a purl names every SBOM component with the same package
//!   (type, namespace, name as the purl specification normalises them,
//!   [`pumpward_vuln::purl::Purl::same_package`]); the component's version
//!   is matched against the product's version or range
//!   ([`pumpward_vuln::purl::product_rule`]).
//! - **CPE**: an advisory product whose helper carries a CPE name names
//!   every SBOM component with a CPE name its attributes allow (equal, or
//!   ANY in the advisory's; [`pumpward_vuln::cpe::component_within`]); the
//!   version rule is the CPE's own version when it gives one, else the
//!   product's version or range ([`pumpward_vuln::cpe::product_rule`]).
//!   Where the product and the component both carry a purl, the purl
//!   decides and the CPE is not asked: a purl also names the ecosystem, so
//!   a different package under the same CPE vendor and product (a fork, a
//!   port) is not taken for it.
//! - **VEX**: the CycloneDX `vulnerabilities[].analysis` of the SBOMs
//!   attached to the model and version (embedded in an SBOM, or a VEX BOM
//!   attached on its own). A statement about the device itself (the BOM's
//!   `metadata.component`) decides the CVE for the device, over every
//!   advisory: it is the manufacturer's word on this very model and
//!   firmware. A statement about a component replaces what matching found
//!   for that component. `not_affected` and `false_positive` make the
//!   finding not affected, `resolved` fixed, `exploitable` affected,
//!   `in_triage` to review; a statement without a state says nothing.
//!
//! Pure functions over what the store read; the matching run calls them
//! once per model and version.

use crate::sbom::{component_evidence, StoredComponent};
use crate::vuln_match::{HitOutcome, SbomHit};
use crate::{Result, Store};
use pumpward_vuln::constraint::{Decision, VersionConstraint};
use pumpward_vuln::cpe::{self, Cpe};
use pumpward_vuln::json::excerpt;
use pumpward_vuln::purl::{self, Purl};
use pumpward_vuln::version::Scheme;
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::HashMap;

/// A current advisory's status for a product its identification helper
/// names by purl, by CPE, or both.
pub(crate) struct NamedProductStatus {
    advisory_id: i64,
    tracking_id: String,
    revision: String,
    cve: String,
    product_id: String,
    full_name: String,
    version_text: Option<String>,
    purl: Option<Named<Purl>>,
    cpe: Option<Named<Cpe>>,
    status: String,
    remediations: Value,
}

/// A product identifier as the advisory wrote it, parsed, with the version
/// rule it gives the product.
struct Named<T> {
    text: String,
    id: T,
    rule: VersionConstraint,
}

/// One stored VEX statement.
#[derive(Debug, Clone)]
pub(crate) struct StoredVex {
    sbom_id: i64,
    source: String,
    vulnerability: String,
    state: Option<String>,
    justification: Option<String>,
    responses: Vec<String>,
    detail: Option<String>,
    affects: Vec<String>,
}

/// CycloneDX's `analysis.state` values (1.4–1.6); another is not applied.
pub(crate) const VEX_STATES: [&str; 6] = [
    "resolved",
    "resolved_with_pedigree",
    "exploitable",
    "in_triage",
    "false_positive",
    "not_affected",
];

/// The VEX statements of one model and version, with the bom-refs of the
/// devices its SBOMs describe.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceVex {
    statements: Vec<StoredVex>,
    subject_refs: Vec<String>,
}

/// (model key, firmware key) → its VEX statements.
pub(crate) type VexIndex = HashMap<(String, String), DeviceVex>;

impl Store {
    /// The current advisories' statuses of products that carry a purl or
    /// a CPE name, of these CVEs (all when `None`: a run limited to an
    /// import's CVEs must not decide others).
    pub(crate) async fn named_product_statuses(
        &self,
        cves: Option<&crate::vuln_match::CveSet>,
    ) -> Result<Vec<NamedProductStatus>> {
        let mut out = Vec::new();
        for r in sqlx::query(
            "SELECT s.advisory_id, a.tracking_id, a.revision, v.cve, s.product_id, s.full_name, \
             s.version_text, s.status, s.remediations, s.purl, s.cpe \
             FROM vuln_product_statuses s \
             JOIN vuln_vulnerabilities v ON v.id = s.vulnerability_id \
             JOIN vuln_advisories a ON a.id = s.advisory_id \
             WHERE a.state = 'current' AND (s.purl IS NOT NULL OR s.cpe IS NOT NULL) \
             AND v.cve IS NOT NULL ORDER BY s.id",
        )
        .fetch_all(self.pool())
        .await?
        {
            let cve: String = r.try_get("cve")?;
            if cves.is_some_and(|c| !c.contains(&cve)) {
                continue;
            }
            let full_name: String = r.try_get("full_name")?;
            let version_text: Option<String> = r.try_get("version_text")?;
            let branch = version_text.as_deref();
            // An advisory's purl or CPE that does not parse names nothing:
            // it cannot match (the advisory page still shows it).
            let purl = r.try_get::<Option<String>, _>("purl")?.and_then(|text| {
                let id = Purl::parse(&text).ok()?;
                let rule = purl::product_rule(&id, branch, &full_name);
                Some(Named { text, id, rule })
            });
            let cpe = r.try_get::<Option<String>, _>("cpe")?.and_then(|text| {
                let id = Cpe::parse(&text).ok()?;
                let rule = cpe::product_rule(&id, branch, &full_name);
                Some(Named { text, id, rule })
            });
            if purl.is_none() && cpe.is_none() {
                continue;
            }
            let remediations: String = r.try_get("remediations")?;
            out.push(NamedProductStatus {
                advisory_id: r.try_get("advisory_id")?,
                tracking_id: r.try_get("tracking_id")?,
                revision: r.try_get("revision")?,
                cve,
                product_id: r.try_get("product_id")?,
                full_name,
                version_text,
                purl,
                cpe,
                status: r.try_get("status")?,
                remediations: serde_json::from_str(&remediations).unwrap_or(Value::Null),
            });
        }
        Ok(out)
    }

    /// Every stored VEX statement (of these CVEs, when given), by the model
    /// and version of its SBOM.
    pub(crate) async fn vex_index(
        &self,
        cves: Option<&crate::vuln_match::CveSet>,
    ) -> Result<VexIndex> {
        let mut out = VexIndex::new();
        for r in sqlx::query(
            "SELECT x.sbom_id, s.source, s.model_key, s.firmware_version, x.vulnerability, \
             x.state, x.justification, x.responses, x.detail, x.affects \
             FROM sbom_vex_statements x JOIN model_sboms s ON s.id = x.sbom_id ORDER BY x.id",
        )
        .fetch_all(self.pool())
        .await?
        {
            let fw: String = r.try_get("firmware_version")?;
            let key = (
                r.try_get::<String, _>("model_key")?,
                crate::sbom::firmware_key(&fw),
            );
            let vulnerability: String = r.try_get("vulnerability")?;
            if cves.is_some_and(|c| !c.contains(&vulnerability)) {
                continue;
            }
            let responses: String = r.try_get("responses")?;
            let affects: String = r.try_get("affects")?;
            out.entry(key).or_default().statements.push(StoredVex {
                sbom_id: r.try_get("sbom_id")?,
                source: r.try_get("source")?,
                vulnerability,
                state: r.try_get("state")?,
                justification: r.try_get("justification")?,
                responses: serde_json::from_str(&responses).unwrap_or_default(),
                detail: r.try_get("detail")?,
                affects: serde_json::from_str(&affects).unwrap_or_default(),
            });
        }
        if out.is_empty() {
            return Ok(out);
        }
        for (key, fw, subject_ref) in sqlx::query_as::<_, (String, String, String)>(
            "SELECT model_key, firmware_version, subject_ref FROM model_sboms \
             WHERE subject_ref IS NOT NULL",
        )
        .fetch_all(self.pool())
        .await?
        {
            if let Some(d) = out.get_mut(&(key, crate::sbom::firmware_key(&fw))) {
                d.subject_refs.push(subject_ref);
            }
        }
        Ok(out)
    }
}

/// The bom-ref a VEX `affects` ref names: a BOM-Link
/// (`urn:cdx:<serial>/<version>#<bom-ref>`) names the bom-ref after `#`.
pub(crate) fn bom_ref_of(affects_ref: &str) -> &str {
    match affects_ref.strip_prefix("urn:cdx:") {
        Some(rest) => rest.split_once('#').map_or(affects_ref, |(_, r)| r),
        None => affects_ref,
    }
}

/// How an advisory product named an SBOM component.
struct Naming<'a> {
    /// `purl` or `cpe`.
    by: &'static str,
    /// The advisory's identifier, as written.
    product: &'a str,
    /// The component's identifier that it named, as written.
    component: &'a str,
    rule: &'a VersionConstraint,
    decision: Decision,
}

/// Whether a product names a component, and the decision on its version:
/// by purl where both carry one (see the module docs); else by CPE, the
/// strongest answer of the component's CPE names (a component may carry
/// several: a yes over an undecided over a no).
fn naming<'a>(
    s: &'a NamedProductStatus,
    component: &'a StoredComponent,
    purl: Option<&Purl>,
    cpes: &[(&'a str, Cpe)],
) -> Option<Naming<'a>> {
    let scheme = Scheme::DottedNumeric;
    let version = component.version.as_deref();
    if let (Some(p), Some(cp)) = (&s.purl, purl) {
        let decision = purl::component_within(&p.id, &p.rule, cp, version, scheme)?;
        return Some(Naming {
            by: "purl",
            product: &p.text,
            component: component.purl.as_deref().unwrap_or_default(),
            rule: &p.rule,
            decision,
        });
    }
    cpe_naming(s, cpes, version)
}

/// Whether a product's CPE name names one of these CPE names (an SBOM
/// component's, or an asset's), and the strongest decision on its version
/// (a yes over an undecided over a no): `version` when given, else each
/// name's own version attribute.
fn cpe_naming<'a>(
    s: &'a NamedProductStatus,
    cpes: &[(&'a str, Cpe)],
    version: Option<&str>,
) -> Option<Naming<'a>> {
    let c = s.cpe.as_ref()?;
    let (text, decision) = cpes
        .iter()
        .filter_map(|(text, cc)| {
            cpe::component_within(&c.id, &c.rule, cc, version, Scheme::DottedNumeric)
                .map(|d| (*text, d))
        })
        .min_by_key(|(_, d)| match d {
            Decision::Yes => 0,
            Decision::Undecided(_) => 1,
            Decision::No => 2,
        })?;
    Some(Naming {
        by: "cpe",
        product: &c.text,
        component: text,
        rule: &c.rule,
        decision,
    })
}

/// What the advisories' product purls and CPE names raise for one model
/// and version's SBOM components. Component versions compare as dotted
/// integers, as for the NVD configurations: software libraries number
/// releases so.
pub(crate) fn named_product_hits(
    components: &[(i64, StoredComponent)],
    statuses: &[NamedProductStatus],
) -> Vec<SbomHit> {
    let mut out = Vec::new();
    if statuses.is_empty() {
        return out;
    }
    for (sbom_id, c) in components {
        // A purl or CPE name the SBOM writes wrongly names nothing: it
        // cannot match.
        let cp = c.purl.as_deref().and_then(|p| Purl::parse(p).ok());
        let cpes: Vec<(&str, Cpe)> = c
            .cpes
            .iter()
            .filter_map(|t| Cpe::parse(t).ok().map(|p| (t.as_str(), p)))
            .collect();
        if cp.is_none() && cpes.is_empty() {
            continue;
        }
        for s in statuses {
            let Some(n) = naming(s, c, cp.as_ref(), &cpes) else {
                continue;
            };
            let what = format!(
                "component {} {} of the model's SBOM ({})",
                c.name,
                c.version.as_deref().unwrap_or("(no version)"),
                n.component
            );
            let fields = json!({
                "source": "sbom", "matched_by": n.by,
                "component": component_evidence(*sbom_id, c),
            });
            out.extend(named_hit(s, &n, &what, fields));
        }
    }
    out
}

/// What the advisories' product CPE names raise for an asset's own CPE
/// names (`cpe`), exactly as for an SBOM component's
/// ([`named_product_hits`]): each name's own version attribute is the
/// version compared (the asset's firmware field is not put in its place).
pub(crate) fn asset_cpe_named_hits(
    cpes: &[(&str, Cpe)],
    statuses: &[NamedProductStatus],
) -> Vec<SbomHit> {
    let names: Vec<&str> = cpes.iter().map(|(t, _)| *t).collect();
    statuses
        .iter()
        .filter_map(|s| {
            let n = cpe_naming(s, cpes, None)?;
            let what = format!("the asset's CPE name {}", n.component);
            let fields = json!({
                "source": "asset_cpe", "matched_by": "asset_cpe",
                "asset_cpe": n.component, "cpes": names,
            });
            named_hit(s, &n, &what, fields)
        })
        .collect()
}

/// The hit of a product that names `what` (`n`), with the rule's fields
/// `fields` add (where the name was found); `None` when its version is
/// outside the product's or its status says nothing.
fn named_hit(s: &NamedProductStatus, n: &Naming, what: &str, fields: Value) -> Option<SbomHit> {
    // A purl names a package, a CPE name a product.
    let named = match n.by {
        "purl" => format!("package {}", n.product),
        _ => format!("product {}", n.product),
    };
    let text = s.version_text.as_deref().unwrap_or(&s.full_name);
    let affected = matches!(
        s.status.as_str(),
        "known_affected" | "first_affected" | "last_affected"
    );
    let clear = matches!(
        s.status.as_str(),
        "fixed" | "first_fixed" | "known_not_affected" | "recommended"
    );
    let investigating = s.status == "under_investigation";
    let (outcome, why) = match &n.decision {
        Decision::Yes if affected => (
            HitOutcome::Affected,
            format!(
                "{what} is the advisory's {named} within the affected versions \"{text}\" (read as {})",
                n.rule
            ),
        ),
        Decision::Yes if clear => {
            // The matcher's own words for a clear status
            // (`vulnerability_status` reads " as <status> ").
            let why = format!(
                "{} revision {} lists {what} as {} ({named}, \"{text}\")",
                s.tracking_id, s.revision, s.status
            );
            (HitOutcome::Clear(why.clone()), why)
        }
        Decision::Yes if investigating => (
            HitOutcome::Review,
            format!("the vendor is still investigating {named} versions \"{text}\" ({what})"),
        ),
        Decision::Undecided(reason) => (
            HitOutcome::Review,
            format!(
                "{what} against the advisory's {named} {} versions \"{text}\": {reason}",
                s.status
            ),
        ),
        _ => return None,
    };
    let mut rule = json!({
        "advisory_id": s.advisory_id, "tracking_id": s.tracking_id,
        "revision": s.revision, "product_id": s.product_id,
        "product": s.full_name, "status": s.status,
        "version_text": s.version_text, "rule": n.rule.to_string(),
        "why": why, "remediations": s.remediations,
    });
    if let (Some(rule), Value::Object(fields)) = (rule.as_object_mut(), fields) {
        rule.extend(fields);
    }
    // `purl` or `cpe`: the advisory's identifier that matched.
    rule[n.by] = json!(n.product);
    Some(SbomHit {
        cve: s.cve.clone(),
        outcome,
        decisive: false,
        rule,
    })
}

/// Whose word a VEX statement is, as a resolution or evidence says it.
fn vex_words(v: &StoredVex, about: &str) -> String {
    let mut out = format!(
        "the manufacturer's VEX (SBOM {}, {:?}) states {about}",
        v.sbom_id,
        excerpt(&v.source)
    );
    let state = v.state.as_deref().unwrap_or_default();
    match state {
        "not_affected" | "false_positive" => {
            out.push_str(&format!(" not affected by {} ({state}", v.vulnerability))
        }
        // `vulnerability_status` reads " as fixed " as the fixed status.
        "resolved" | "resolved_with_pedigree" => {
            out.push_str(&format!(" as fixed for {} ({state}", v.vulnerability))
        }
        _ => out.push_str(&format!(" {state} for {} (", v.vulnerability)),
    }
    if let Some(j) = &v.justification {
        out.push_str(&format!(", justification {j}"));
    }
    if !v.responses.is_empty() {
        out.push_str(&format!(", response {}", v.responses.join(", ")));
    }
    out.push(')');
    if let Some(d) = v.detail.as_deref().filter(|d| !d.trim().is_empty()) {
        // The detail is the manufacturer's prose: its words must not read
        // as the matcher's status phrases (" as fixed ").
        // At most 300 characters of it: a resolution is a line, not a file.
        let mut d: String = d.chars().take(300).collect();
        if d.len() < v.detail.as_deref().map_or(0, str::len) {
            d.push('…');
        }
        out.push_str(&format!(": \"{}\"", d.replace(" as ", " as\u{a0}")));
    }
    out
}

/// Applies the VEX statements of a model and version to what its SBOM
/// components raised (see the module docs). Statements whose refs name
/// neither the device nor a component of the model's SBOMs are ignored:
/// they are about something else.
pub(crate) fn apply_vex(
    mut hits: Vec<SbomHit>,
    components: &[(i64, StoredComponent)],
    vex: Option<&DeviceVex>,
) -> Vec<SbomHit> {
    let Some(vex) = vex else {
        return hits;
    };
    for v in &vex.statements {
        let outcome = match v.state.as_deref() {
            Some("not_affected" | "false_positive" | "resolved" | "resolved_with_pedigree") => None,
            Some("exploitable") => Some(HitOutcome::Affected),
            Some("in_triage") => Some(HitOutcome::Review),
            _ => continue,
        };
        let refs: Vec<&str> = v.affects.iter().map(|r| bom_ref_of(r)).collect();
        let statement = json!({
            "sbom_id": v.sbom_id, "sbom_source": v.source, "vulnerability": v.vulnerability,
            "state": v.state, "justification": v.justification, "responses": v.responses,
            "detail": v.detail, "affects": v.affects,
        });
        let hit = |about: &str, component: Option<Value>, decisive: bool| {
            let why = vex_words(v, about);
            SbomHit {
                cve: v.vulnerability.clone(),
                outcome: outcome
                    .clone()
                    .unwrap_or_else(|| HitOutcome::Clear(why.clone())),
                decisive,
                rule: json!({
                    "source": "vex", "vex": statement, "component": component,
                    "why": why, "remediations": [],
                }),
            }
        };
        if refs
            .iter()
            .any(|r| vex.subject_refs.iter().any(|s| s.as_str() == *r))
        {
            hits.push(hit("the device", None, true));
            continue;
        }
        for (sbom_id, c) in components {
            let named = refs
                .iter()
                .any(|r| *r == c.bom_ref || c.purl.as_deref() == Some(*r));
            if !named {
                continue;
            }
            // The statement replaces what matching found for this component.
            hits.retain(|h| {
                !(h.cve == v.vulnerability
                    && h.rule["component"]["sbom_id"].as_i64() == Some(*sbom_id)
                    && h.rule["component"]["bom_ref"].as_str() == Some(c.bom_ref.as_str()))
            });
            let about = format!(
                "component {} {}",
                c.name,
                c.version.as_deref().unwrap_or("(no version)")
            );
            hits.push(hit(&about, Some(component_evidence(*sbom_id, c)), false));
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comp(bom_ref: &str, name: &str, version: &str, purl: &str) -> (i64, StoredComponent) {
        (
            1,
            StoredComponent {
                bom_ref: bom_ref.into(),
                name: name.into(),
                version: Some(version.into()),
                supplier: None,
                purl: Some(purl.into()),
                cpes: Vec::new(),
            },
        )
    }

    fn named(
        status: &str,
        purl: Option<&str>,
        cpe: Option<&str>,
        version_text: Option<&str>,
    ) -> NamedProductStatus {
        NamedProductStatus {
            advisory_id: 9,
            tracking_id: "VENDOR-2022-01".into(),
            revision: "1".into(),
            cve: "CVE-2022-25638".into(),
            product_id: "WOLF-1".into(),
            full_name: "wolfSSL".into(),
            version_text: version_text.map(str::to_owned),
            purl: purl.map(|text| {
                let id = Purl::parse(text).unwrap();
                Named {
                    rule: purl::product_rule(&id, version_text, "wolfSSL"),
                    text: text.into(),
                    id,
                }
            }),
            cpe: cpe.map(|text| {
                let id = Cpe::parse(text).unwrap();
                Named {
                    rule: cpe::product_rule(&id, version_text, "wolfSSL"),
                    text: text.into(),
                    id,
                }
            }),
            status: status.into(),
            remediations: json!([]),
        }
    }

    fn status(status: &str, purl: &str, version_text: Option<&str>) -> NamedProductStatus {
        named(status, Some(purl), None, version_text)
    }

    fn vex(state: &str, affects: &[&str]) -> StoredVex {
        StoredVex {
            sbom_id: 2,
            source: "vex.cdx.json".into(),
            vulnerability: "CVE-2022-25638".into(),
            state: Some(state.into()),
            justification: Some("code_not_reachable".into()),
            responses: vec![],
            detail: Some("TLS 1.3 is disabled as shipped".into()),
            affects: affects.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn purls_raise_by_package_and_version() {
        let comps = [
            comp(
                "wolf",
                "wolfssl",
                "4.8.1",
                "pkg:github/wolfSSL/wolfssl@4.8.1",
            ),
            comp("mqtt", "wolfmqtt", "1.0", "pkg:github/wolfssl/wolfmqtt@1.0"),
        ];
        let hits = named_product_hits(
            &comps,
            &[status(
                "known_affected",
                "pkg:github/wolfssl/wolfssl",
                Some("vers:generic/<5.2.0"),
            )],
        );
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].outcome, HitOutcome::Affected);
        assert_eq!(hits[0].rule["matched_by"], "purl");
        assert_eq!(hits[0].rule["component"]["bom_ref"], "wolf");
        // Fixed at the installed version: a clear, in the matcher's words.
        let hits = named_product_hits(
            &comps,
            &[status("fixed", "pkg:github/wolfssl/wolfssl", Some("4.8.1"))],
        );
        assert!(matches!(&hits[0].outcome, HitOutcome::Clear(w) if w.contains(" as fixed ")));
        // Outside the range, or another package: nothing.
        assert!(named_product_hits(
            &comps,
            &[status(
                "known_affected",
                "pkg:github/wolfssl/wolfssl",
                Some("<4.0")
            )]
        )
        .is_empty());
        assert!(named_product_hits(
            &comps,
            &[status(
                "known_affected",
                "pkg:generic/wolfssl",
                Some("<5.2.0")
            )]
        )
        .is_empty());
        // No version anywhere: review, never assumed.
        let hits = named_product_hits(
            &comps,
            &[status("known_affected", "pkg:github/wolfssl/wolfssl", None)],
        );
        assert_eq!(hits[0].outcome, HitOutcome::Review);
    }

    #[test]
    fn product_cpes_raise_by_attributes_and_version_and_purls_go_first() {
        let with_cpes = |purl: Option<&str>, version: Option<&str>, cpes: &[&str]| {
            (
                1,
                StoredComponent {
                    bom_ref: "wolf".into(),
                    name: "WolfSSL".into(),
                    version: version.map(str::to_owned),
                    supplier: None,
                    purl: purl.map(str::to_owned),
                    cpes: cpes.iter().map(|c| (*c).to_owned()).collect(),
                },
            )
        };
        let wolf_cpe = "cpe:2.3:a:wolfssl:wolfssl:4.8.1:*:*:*:*:*:*:*";
        let comps = [with_cpes(
            Some("pkg:github/wolfssl/wolfssl"),
            Some("4.8.1"),
            &["not a cpe", wolf_cpe],
        )];
        let any = "cpe:2.3:a:wolfssl:wolfssl:*:*:*:*:*:*:*:*";
        let by_cpe = |status: &str, cpe: &str, text: Option<&str>| {
            named_product_hits(&comps, &[named(status, None, Some(cpe), text)])
        };
        let hits = by_cpe("known_affected", any, Some("vers:generic/<5.2.0"));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].outcome, HitOutcome::Affected);
        assert_eq!(hits[0].rule["matched_by"], "cpe");
        assert_eq!(hits[0].rule["cpe"], any);
        assert!(hits[0].rule.get("purl").is_none());
        let why = hits[0].rule["why"].as_str().unwrap();
        assert!(
            why.starts_with(&format!("component WolfSSL 4.8.1 of the model's SBOM ({wolf_cpe}) is the advisory's product {any} within")),
            "{why}"
        );
        // The CPE's own version is the rule: fixed at 4.8.1 is a clear.
        let hits = by_cpe(
            "fixed",
            "cpe:2.3:a:wolfssl:wolfssl:4.8.1:*:*:*:*:*:*:*",
            None,
        );
        assert!(matches!(&hits[0].outcome, HitOutcome::Clear(w) if w.contains(" as fixed ")));
        // Investigating: review.
        let hits = by_cpe("under_investigation", any, Some("<5.2.0"));
        assert_eq!(hits[0].outcome, HitOutcome::Review);
        // Out of range, another product, another part: nothing.
        assert!(by_cpe("known_affected", any, Some("<4.0")).is_empty());
        assert!(by_cpe(
            "known_affected",
            "cpe:2.3:a:wolfssl:wolfmqtt:*:*:*:*:*:*:*:*",
            Some("<5.2.0")
        )
        .is_empty());
        assert!(by_cpe(
            "known_affected",
            "cpe:2.3:o:wolfssl:wolfssl:*:*:*:*:*:*:*:*",
            Some("<5.2.0")
        )
        .is_empty());
        // No version anywhere: review, never assumed.
        let bare = [with_cpes(None, None, &[any])];
        let hits = named_product_hits(&bare, &[named("known_affected", None, Some(any), None)]);
        assert_eq!(hits[0].outcome, HitOutcome::Review);
        // Both sides carry a purl: the purl decides, a different package
        // under the same CPE product is not named.
        let both = named(
            "known_affected",
            Some("pkg:generic/wolfssl"),
            Some(any),
            Some("<5.2.0"),
        );
        assert!(named_product_hits(&comps, &[both]).is_empty());
        // Without a component purl the product's CPE still names it.
        let no_purl = [with_cpes(None, Some("4.8.1"), &[wolf_cpe])];
        let both = named(
            "known_affected",
            Some("pkg:generic/wolfssl"),
            Some(any),
            Some("<5.2.0"),
        );
        let hits = named_product_hits(&no_purl, &[both]);
        assert_eq!(hits[0].rule["matched_by"], "cpe");
        assert_eq!(hits[0].outcome, HitOutcome::Affected);
    }

    #[test]
    fn vex_on_a_component_replaces_its_hits_and_on_the_device_decides() {
        let comps = [comp(
            "wolf",
            "wolfssl",
            "4.8.1",
            "pkg:github/wolfssl/wolfssl@4.8.1",
        )];
        let hits = named_product_hits(
            &comps,
            &[status(
                "known_affected",
                "pkg:github/wolfssl/wolfssl",
                Some("<5.2.0"),
            )],
        );
        let device = |statements: Vec<StoredVex>| DeviceVex {
            statements,
            subject_refs: vec!["pump-fw".into()],
        };
        let out = apply_vex(
            hits.clone(),
            &comps,
            Some(&device(vec![vex(
                "not_affected",
                &["urn:cdx:3e67-1/1#wolf"],
            )])),
        );
        assert_eq!(out.len(), 1);
        let HitOutcome::Clear(why) = &out[0].outcome else {
            panic!("{:?}", out[0].outcome)
        };
        assert!(
            why.contains(
                "not affected by CVE-2022-25638 (not_affected, justification code_not_reachable)"
            ),
            "{why}"
        );
        assert!(
            !why.contains(" as fixed "),
            "the detail's words are defused: {why}"
        );
        assert!(!out[0].decisive);
        let out = apply_vex(
            hits.clone(),
            &comps,
            Some(&device(vec![vex("resolved", &["pump-fw"])])),
        );
        assert_eq!(out.len(), 2);
        assert!(out[1].decisive);
        assert!(
            matches!(&out[1].outcome, HitOutcome::Clear(w) if w.contains(" as fixed for CVE-2022-25638"))
        );
        let out = apply_vex(
            Vec::new(),
            &comps,
            Some(&device(vec![vex(
                "exploitable",
                &["pkg:github/wolfssl/wolfssl@4.8.1"],
            )])),
        );
        assert_eq!(out[0].outcome, HitOutcome::Affected);
        assert_eq!(out[0].rule["vex"]["state"], "exploitable");
        // A ref naming nothing of this model, or no state: nothing.
        assert_eq!(
            apply_vex(
                hits.clone(),
                &comps,
                Some(&device(vec![vex("not_affected", &["other"])]))
            )
            .len(),
            1
        );
        let mut silent = vex("not_affected", &["wolf"]);
        silent.state = None;
        assert_eq!(
            apply_vex(hits.clone(), &comps, Some(&device(vec![silent])))[0].outcome,
            HitOutcome::Affected
        );
    }
}
