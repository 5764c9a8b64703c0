//! The fleet's CSAF 2.0 VEX document (issue 5, exports), from the
//! vulnerability findings: per asset and CVE the latest finding says
//! affected, review (under investigation), fixed or not affected; the
//! document itself is `pumpward_vuln::vex`'s.
//!
//! Only pumps and pump servers provisioned or in service count, under their
//! current model and version. A (asset, CVE) pair that never had a finding
//! (no advisory named the asset's product) is not in the document: the VEX
//! speaks of the vulnerabilities the advisories on file tie to the fleet.

use crate::findings::{finding_from_row, COLUMNS};
use crate::vuln::{vulnerability_status, KIND_AFFECTED, KIND_REVIEW};
use crate::{Result, Store};
use pumpward_core::inventory::SoftwareComponent;
use pumpward_core::timefmt;
use pumpward_vuln::vex::{fleet_vex, FleetProduct, FleetStatus, Remediation, Statement, VexHeader};
use serde_json::Value;
use sqlx::Row;
use std::collections::HashMap;

impl Store {
    /// The fleet's VEX document, published by `publisher` (the hospital) at
    /// `namespace` (its URL).
    pub async fn fleet_vex(&self, publisher: &str, namespace: &str) -> Result<Value> {
        let mut products: HashMap<String, FleetProduct> = HashMap::new();
        for r in sqlx::query(
            "SELECT asset_id, manufacturer, model, firmware_version, software FROM assets \
             WHERE kind IN ('pump', 'pump_server') \
             AND lifecycle_state IN ('in_service', 'provisioned')",
        )
        .fetch_all(self.pool())
        .await?
        {
            let software: String = r.try_get("software")?;
            let software: Vec<SoftwareComponent> =
                serde_json::from_str(&software).unwrap_or_default();
            let firmware: String = r.try_get("firmware_version")?;
            // A component can decide a match, so it is part of what the
            // product is.
            let version = if software.is_empty() {
                firmware
            } else {
                let parts: Vec<String> = software
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.version))
                    .collect();
                format!("{firmware} ({})", parts.join(", "))
            };
            products.insert(
                r.try_get("asset_id")?,
                FleetProduct {
                    manufacturer: r.try_get("manufacturer")?,
                    model: r.try_get("model")?,
                    version,
                },
            );
        }
        let mut titles: HashMap<String, String> = HashMap::new();
        for (cve, title) in sqlx::query_as::<_, (String, String)>(
            "SELECT v.cve, v.title FROM vuln_vulnerabilities v \
             JOIN vuln_advisories a ON a.id = v.advisory_id \
             WHERE a.state = 'current' AND v.cve IS NOT NULL AND v.title IS NOT NULL ORDER BY v.id",
        )
        .fetch_all(self.pool())
        .await?
        {
            titles.entry(cve).or_insert(title);
        }
        // The latest finding per subject (asset and CVE), of either kind.
        let mut latest: HashMap<String, crate::Finding> = HashMap::new();
        for r in sqlx::query(&format!(
            "SELECT {COLUMNS} FROM findings WHERE kind IN ($1, $2) ORDER BY id"
        ))
        .bind(KIND_AFFECTED)
        .bind(KIND_REVIEW)
        .fetch_all(self.pool())
        .await?
        {
            let f = finding_from_row(&r)?;
            latest.insert(f.subject.clone(), f);
        }
        let mut statements = Vec::new();
        for f in latest.values() {
            let Some((cve, asset_id)) = f
                .subject
                .strip_prefix("cve:")
                .and_then(|s| s.split_once(":asset:"))
            else {
                continue;
            };
            let Some(product) = products.get(asset_id) else {
                continue;
            };
            let status = match vulnerability_status(f) {
                Some("affected") => FleetStatus::Affected(cited_remediations(&f.evidence)),
                Some("review") => FleetStatus::UnderInvestigation(
                    f.evidence["review_reason"]
                        .as_str()
                        .unwrap_or("to review")
                        .to_owned(),
                ),
                Some("fixed") => FleetStatus::Fixed,
                Some("not_affected") => FleetStatus::NotAffected(
                    f.resolution
                        .clone()
                        .unwrap_or_else(|| "not affected".into()),
                ),
                // Resolved for another reason (advisory superseded, …):
                // nothing to state.
                _ => continue,
            };
            statements.push(Statement {
                cve: cve.to_owned(),
                title: titles.get(cve).cloned(),
                product: product.clone(),
                status,
            });
        }
        let now = crate::now();
        Ok(fleet_vex(
            &VexHeader {
                publisher: publisher.to_owned(),
                namespace: namespace.to_owned(),
                tracking_id: format!("PUMPWARD-VEX-{}", timefmt::format_date(now.date())),
                date: timefmt::format(now),
            },
            &statements,
        ))
    }
}

/// The advisories' remediations cited by a vulnerability finding's rules
/// (the steps that apply to it; once each, sorted).
pub fn cited_remediations(evidence: &Value) -> Vec<Remediation> {
    let mut out: Vec<Remediation> = evidence["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["remediations"].as_array().into_iter().flatten())
        .filter_map(|r| {
            // CSAF wants details that say something and a URL that is one.
            let details = r["details"].as_str().filter(|d| !d.trim().is_empty())?;
            Some(Remediation {
                category: r["category"].as_str()?.to_owned(),
                details: details.to_owned(),
                url: r["url"]
                    .as_str()
                    .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                    .map(str::to_owned),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
