//! SBOMs per device model and firmware version (issue 5, item 7).
//!
//! A manufacturer's SBOM (CycloneDX or SPDX, parsed by `pumpward_vuln::sbom`)
//! is attached to a model at a firmware version; its components are kept
//! with their name, version, supplier, purl and CPE names, and a CycloneDX
//! BOM's VEX statements in `sbom_vex_statements`. Matching (`vuln_match.rs`)
//! evaluates the NVD CPE match configurations of the current NVD records
//! against the components' CPEs and the advisories' product purls against
//! their purls, then applies the VEX statements (`sbom_match`); every pump
//! of that model reporting that firmware inherits the findings, each naming
//! the component or the statement.
//!
//! The model is found through the alias table, so "BD" and "Becton
//! Dickinson" name one model; a model the table does not know is keyed by
//! its normalised manufacturer and model names ([`sbom_model_key`]).

use crate::{Actor, MatchReport, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use pumpward_vuln::identity::{normalise, AliasTable, ProductMatch};
use pumpward_vuln::sbom::{self, SbomFormat};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::collections::BTreeSet;

/// The key that ties an SBOM to the assets of its model: the alias table's
/// product key, or `unidentified:<manufacturer>/<model>` (normalised) for a
/// model the table does not know.
pub(crate) fn sbom_model_key(aliases: &AliasTable, manufacturer: &str, model: &str) -> String {
    sbom_model_key_of(
        aliases.product(manufacturer, model).as_ref(),
        manufacturer,
        model,
    )
}

/// [`sbom_model_key`] when the alias table was already asked.
pub(crate) fn sbom_model_key_of(
    pm: Option<&ProductMatch<'_>>,
    manufacturer: &str,
    model: &str,
) -> String {
    match pm {
        Some(pm) => pm.product.key.clone(),
        None => format!(
            "unidentified:{}/{}",
            normalise(manufacturer),
            normalise(model)
        ),
    }
}

/// A firmware version as an SBOM and an asset are compared: trimmed, case
/// folded ("V22D28" and "v22D28" are one build).
pub(crate) fn firmware_key(version: &str) -> String {
    version.trim().to_lowercase()
}

/// An attached SBOM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSbom {
    pub id: i64,
    pub manufacturer: String,
    pub model: String,
    pub model_key: String,
    pub firmware_version: String,
    pub format: String,
    pub spec_version: String,
    pub subject: Option<String>,
    pub sha256: String,
    pub source: String,
    pub warnings: Vec<String>,
    pub attached_by: String,
    pub attached_at: String,
    /// Components, and how many carry a CPE name or a purl.
    pub components: i64,
    pub with_cpe: i64,
    pub with_purl: i64,
}

/// One stored component of an SBOM.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredComponent {
    pub bom_ref: String,
    pub name: String,
    pub version: Option<String>,
    pub supplier: Option<String>,
    pub purl: Option<String>,
    pub cpes: Vec<String>,
}

/// A CycloneDX VEX statement of an attached SBOM, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SbomVexStatement {
    /// The vulnerability id, upper-cased (CVE-…).
    pub vulnerability: String,
    /// `analysis.state`.
    pub state: Option<String>,
    pub justification: Option<String>,
    pub responses: Vec<String>,
    pub detail: Option<String>,
    /// `affects[].ref` as written.
    pub affects: Vec<String>,
}

/// Whether a vulnerability finding's rules cite this SBOM (a component of
/// it, or one of its VEX statements).
pub fn cites_sbom(evidence: &Value, sbom_id: i64) -> bool {
    evidence["rules"].as_array().into_iter().flatten().any(|r| {
        r["component"]["sbom_id"].as_i64() == Some(sbom_id)
            || r["vex"]["sbom_id"].as_i64() == Some(sbom_id)
    })
}

/// What attaching an SBOM did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SbomAttach {
    /// `attached`, or `skipped` (the same file is already attached to this
    /// model and version).
    pub outcome: String,
    pub sbom: ModelSbom,
    /// The re-match of the assets of this model and version (none when
    /// skipped).
    pub matched: Option<MatchReport>,
}

fn format_name(f: SbomFormat) -> &'static str {
    match f {
        SbomFormat::CycloneDx => "cyclonedx-json",
        SbomFormat::CycloneDxXml => "cyclonedx-xml",
        SbomFormat::SpdxJson => "spdx-json",
        SbomFormat::SpdxTagValue => "spdx-tag-value",
    }
}

const SBOM_COLUMNS: &str = "s.id, s.manufacturer, s.model, s.model_key, s.firmware_version, \
     s.format, s.spec_version, s.subject, s.sha256, s.source, s.warnings, s.attached_by, \
     s.attached_at, \
     (SELECT COUNT(*) FROM sbom_components c WHERE c.sbom_id = s.id) AS components, \
     (SELECT COUNT(*) FROM sbom_components c WHERE c.sbom_id = s.id AND c.cpes <> '[]') AS with_cpe, \
     (SELECT COUNT(*) FROM sbom_components c WHERE c.sbom_id = s.id AND c.purl IS NOT NULL) AS with_purl";

fn sbom_from_row(r: &sqlx::any::AnyRow) -> Result<ModelSbom> {
    let warnings: String = r.try_get("warnings")?;
    Ok(ModelSbom {
        id: r.try_get("id")?,
        manufacturer: r.try_get("manufacturer")?,
        model: r.try_get("model")?,
        model_key: r.try_get("model_key")?,
        firmware_version: r.try_get("firmware_version")?,
        format: r.try_get("format")?,
        spec_version: r.try_get("spec_version")?,
        subject: r.try_get("subject")?,
        sha256: r.try_get("sha256")?,
        source: r.try_get("source")?,
        warnings: serde_json::from_str(&warnings).unwrap_or_default(),
        attached_by: r.try_get("attached_by")?,
        attached_at: r.try_get("attached_at")?,
        components: r.try_get("components")?,
        with_cpe: r.try_get("with_cpe")?,
        with_purl: r.try_get("with_purl")?,
    })
}

impl Store {
    /// Attaches an SBOM file to a device model at a firmware version, in
    /// one audited transaction, then re-matches the assets of that model
    /// reporting that version. A file that does not parse is refused
    /// ([`StoreError::Invalid`], with the parser's path or line) and
    /// changes nothing; the same file twice is skipped.
    pub async fn attach_sbom(
        &self,
        manufacturer: &str,
        model: &str,
        firmware_version: &str,
        source: &str,
        bytes: &[u8],
        actor: &Actor,
    ) -> Result<SbomAttach> {
        let (manufacturer, model, firmware_version) =
            (manufacturer.trim(), model.trim(), firmware_version.trim());
        for (what, v) in [
            ("manufacturer", manufacturer),
            ("model", model),
            ("firmware version", firmware_version),
        ] {
            if v.is_empty() {
                return Err(StoreError::Invalid(format!("the {what} is empty")));
            }
        }
        let parsed = sbom::parse(bytes).map_err(|e| StoreError::Invalid(format!("SBOM: {e}")))?;
        let aliases = AliasTable::builtin();
        let key = sbom_model_key(aliases, manufacturer, model);
        let sha = hex::encode(Sha256::digest(bytes));
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM model_sboms WHERE model_key = $1 AND firmware_version = $2 AND sha256 = $3",
        )
        .bind(key.clone())
        .bind(firmware_version.to_owned())
        .bind(sha.clone())
        .fetch_optional(self.pool())
        .await?;
        if let Some(id) = existing {
            return Ok(SbomAttach {
                outcome: "skipped".into(),
                sbom: self.model_sbom(id).await?,
                matched: None,
            });
        }
        let mut warnings: Vec<String> = parsed.warnings.iter().map(|w| w.to_string()).collect();
        warnings.extend(self.vex_warnings(&parsed, &key, firmware_version).await?);
        let now_at = crate::now();
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO model_sboms (manufacturer, model, model_key, firmware_version, format, \
             spec_version, subject, sha256, source, warnings, attached_by, attached_at, subject_ref) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(manufacturer.to_owned())
        .bind(model.to_owned())
        .bind(key.clone())
        .bind(firmware_version.to_owned())
        .bind(format_name(parsed.format))
        .bind(parsed.spec_version.clone())
        .bind(parsed.subject.as_ref().map(|s| s.name.clone()))
        .bind(sha.clone())
        .bind(source.to_owned())
        .bind(json!(warnings).to_string())
        .bind(actor.id.clone())
        .bind(timefmt::format(now_at))
        .bind(parsed.subject.as_ref().map(|s| s.id.clone()))
        .fetch_one(&mut *tx)
        .await?;
        for c in &parsed.components {
            sqlx::query(
                "INSERT INTO sbom_components (sbom_id, bom_ref, name, version, supplier, purl, cpes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(c.id.clone())
            .bind(c.name.clone())
            .bind(c.version.clone())
            .bind(c.supplier.clone())
            .bind(c.purl.clone())
            .bind(json!(c.cpes).to_string())
            .execute(&mut *tx)
            .await?;
        }
        for v in &parsed.vex {
            sqlx::query(
                "INSERT INTO sbom_vex_statements (sbom_id, vulnerability, state, justification, \
                 responses, detail, affects) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(v.id.trim().to_ascii_uppercase())
            .bind(v.state.clone())
            .bind(v.justification.clone())
            .bind(json!(v.response).to_string())
            .bind(v.detail.clone())
            .bind(json!(v.affects).to_string())
            .execute(&mut *tx)
            .await?;
        }
        let entry = actor
            .entry("sbom.attach", Outcome::Success)
            .object(format!("sbom:{id}"))
            .reason(format!(
                "{manufacturer} {model} firmware {firmware_version}: {} ({} components)",
                source,
                parsed.components.len()
            ))
            .details(&json!({
                "model_key": key, "sha256": sha, "format": format_name(parsed.format),
                "components": parsed.components.len(), "vex_statements": parsed.vex.len(),
                "warnings": warnings,
            }));
        tx.commit_audited(vec![entry], now_at).await?;

        // The assets of this model reporting this version inherit the
        // components' findings now, not at the next full match.
        let scope = self.assets_of_model_version(&key, firmware_version).await?;
        let matched = self.rematch_assets(scope, actor).await?;
        Ok(SbomAttach {
            outcome: "attached".into(),
            sbom: self.model_sbom(id).await?,
            matched: Some(matched),
        })
    }

    /// Warnings for the VEX statements matching will not apply
    /// (`sbom_match`), which a person should know: a state CycloneDX does
    /// not define, or `affects` refs naming nothing of this file nor of the
    /// SBOMs already attached to the model and version. At most 10.
    async fn vex_warnings(
        &self,
        parsed: &sbom::Sbom,
        model_key: &str,
        firmware_version: &str,
    ) -> Result<Vec<String>> {
        if parsed.vex.is_empty() {
            return Ok(Vec::new());
        }
        let mut known: BTreeSet<String> = parsed
            .components
            .iter()
            .flat_map(|c| std::iter::once(c.id.clone()).chain(c.purl.clone()))
            .chain(parsed.subject.as_ref().map(|s| s.id.clone()))
            .collect();
        let fw = firmware_key(firmware_version);
        for r in sqlx::query(
            "SELECT s.firmware_version, s.subject_ref, c.bom_ref, c.purl FROM model_sboms s \
             LEFT JOIN sbom_components c ON c.sbom_id = s.id WHERE s.model_key = $1",
        )
        .bind(model_key.to_owned())
        .fetch_all(self.pool())
        .await?
        {
            if firmware_key(&r.try_get::<String, _>("firmware_version")?) != fw {
                continue;
            }
            for col in ["subject_ref", "bom_ref", "purl"] {
                if let Some(v) = r.try_get::<Option<String>, _>(col)? {
                    known.insert(v);
                }
            }
        }
        let mut out = Vec::new();
        for (i, v) in parsed.vex.iter().enumerate() {
            if out.len() >= 10 {
                break;
            }
            let id = pumpward_vuln::json::excerpt(&v.id);
            if let Some(state) = v.state.as_deref() {
                if !crate::sbom_match::VEX_STATES.contains(&state) {
                    out.push(format!(
                        "vulnerabilities[{i}] ({id}): analysis.state {:?} is not a CycloneDX state ({}); the statement is not applied",
                        pumpward_vuln::json::excerpt(state),
                        crate::sbom_match::VEX_STATES.join(", ")
                    ));
                    continue;
                }
            }
            let unknown: Vec<&str> = v
                .affects
                .iter()
                .filter(|r| !known.contains(crate::sbom_match::bom_ref_of(r)))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                out.push(format!(
                    "vulnerabilities[{i}] ({id}): affects {} which name(s) no component of this model and version's SBOMs; the statement is not applied to them",
                    unknown
                        .iter()
                        .map(|r| pumpward_vuln::json::excerpt(r))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(out)
    }

    /// The assets of a model (by [`sbom_model_key`]) reporting a firmware
    /// version: those an SBOM attached there speaks of.
    async fn assets_of_model_version(
        &self,
        model_key: &str,
        firmware_version: &str,
    ) -> Result<BTreeSet<String>> {
        let aliases = AliasTable::builtin();
        let fw = firmware_key(firmware_version);
        let mut scope = BTreeSet::new();
        for r in sqlx::query("SELECT asset_id, manufacturer, model, firmware_version FROM assets")
            .fetch_all(self.pool())
            .await?
        {
            let (m, mo, v): (String, String, String) = (
                r.try_get("manufacturer")?,
                r.try_get("model")?,
                r.try_get("firmware_version")?,
            );
            if firmware_key(&v) == fw && sbom_model_key(aliases, &m, &mo) == model_key {
                scope.insert(r.try_get::<String, _>("asset_id")?);
            }
        }
        Ok(scope)
    }

    /// The open vulnerability findings that an attached SBOM's components or
    /// VEX statements decided (their rules cite it), highest priority first.
    pub async fn sbom_findings(&self, sbom_id: i64) -> Result<Vec<crate::Finding>> {
        let sbom = self.model_sbom(sbom_id).await?;
        let mut out = Vec::new();
        for asset_id in self
            .assets_of_model_version(&sbom.model_key, &sbom.firmware_version)
            .await?
        {
            for kind in [crate::KIND_AFFECTED, crate::KIND_REVIEW] {
                let (page, _) = self
                    .list_findings(&crate::FindingFilter {
                        kind: Some(kind.into()),
                        asset_id: Some(asset_id.clone()),
                        open: Some(true),
                        limit: 500,
                        ..Default::default()
                    })
                    .await?;
                out.extend(
                    page.into_iter()
                        .filter(|f| cites_sbom(&f.evidence, sbom_id)),
                );
            }
        }
        out.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.subject.cmp(&b.subject)));
        Ok(out)
    }

    /// The VEX statements of an attached SBOM, in document order.
    pub async fn sbom_vex_statements(&self, sbom_id: i64) -> Result<Vec<SbomVexStatement>> {
        sqlx::query(
            "SELECT vulnerability, state, justification, responses, detail, affects \
             FROM sbom_vex_statements WHERE sbom_id = $1 ORDER BY id",
        )
        .bind(sbom_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            let responses: String = r.try_get("responses")?;
            let affects: String = r.try_get("affects")?;
            Ok(SbomVexStatement {
                vulnerability: r.try_get("vulnerability")?,
                state: r.try_get("state")?,
                justification: r.try_get("justification")?,
                responses: serde_json::from_str(&responses).unwrap_or_default(),
                detail: r.try_get("detail")?,
                affects: serde_json::from_str(&affects).unwrap_or_default(),
            })
        })
        .collect()
    }

    /// One attached SBOM.
    pub async fn model_sbom(&self, id: i64) -> Result<ModelSbom> {
        let r = sqlx::query(&format!(
            "SELECT {SBOM_COLUMNS} FROM model_sboms s WHERE s.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("SBOM {id}"),
        })?;
        sbom_from_row(&r)
    }

    /// Every attached SBOM, by model and version.
    pub async fn list_model_sboms(&self) -> Result<Vec<ModelSbom>> {
        sqlx::query(&format!(
            "SELECT {SBOM_COLUMNS} FROM model_sboms s \
             ORDER BY s.manufacturer, s.model, s.firmware_version, s.id"
        ))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(sbom_from_row)
        .collect()
    }

    /// The components of an attached SBOM, in document order.
    pub async fn sbom_components(&self, sbom_id: i64) -> Result<Vec<StoredComponent>> {
        sqlx::query(
            "SELECT bom_ref, name, version, supplier, purl, cpes FROM sbom_components \
             WHERE sbom_id = $1 ORDER BY id",
        )
        .bind(sbom_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            let cpes: String = r.try_get("cpes")?;
            Ok(StoredComponent {
                bom_ref: r.try_get("bom_ref")?,
                name: r.try_get("name")?,
                version: r.try_get("version")?,
                supplier: r.try_get("supplier")?,
                purl: r.try_get("purl")?,
                cpes: serde_json::from_str(&cpes).unwrap_or_default(),
            })
        })
        .collect()
    }
}

/// The components of every attached SBOM, by (model key, firmware key), as
/// matching reads them: (SBOM id, component) pairs.
pub(crate) type SbomIndex =
    std::collections::HashMap<(String, String), Vec<(i64, StoredComponent)>>;

impl Store {
    pub(crate) async fn sbom_index(&self) -> Result<SbomIndex> {
        let mut out = SbomIndex::new();
        for r in sqlx::query(
            "SELECT s.id, s.model_key, s.firmware_version, c.bom_ref, c.name, c.version, \
             c.supplier, c.purl, c.cpes FROM sbom_components c \
             JOIN model_sboms s ON s.id = c.sbom_id ORDER BY s.id, c.id",
        )
        .fetch_all(self.pool())
        .await?
        {
            let cpes: String = r.try_get("cpes")?;
            let fw: String = r.try_get("firmware_version")?;
            out.entry((r.try_get("model_key")?, firmware_key(&fw)))
                .or_default()
                .push((
                    r.try_get("id")?,
                    StoredComponent {
                        bom_ref: r.try_get("bom_ref")?,
                        name: r.try_get("name")?,
                        version: r.try_get("version")?,
                        supplier: r.try_get("supplier")?,
                        purl: r.try_get("purl")?,
                        cpes: serde_json::from_str(&cpes).unwrap_or_default(),
                    },
                ));
        }
        Ok(out)
    }
}

/// A component as a finding's evidence names it.
pub(crate) fn component_evidence(sbom_id: i64, c: &StoredComponent) -> Value {
    json!({
        "sbom_id": sbom_id, "component": c.name, "version": c.version,
        "bom_ref": c.bom_ref, "purl": c.purl, "cpes": c.cpes,
    })
}
