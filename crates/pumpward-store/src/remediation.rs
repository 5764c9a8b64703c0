//! The remediation of vulnerability findings (issue 5): steps through
//! `pumpward_vuln::remediation`'s state machine, each in one audited
//! transaction, and the compensating controls recorded on assets, which
//! lower the priority of their findings at the next matching run.

use crate::vuln::{KIND_AFFECTED, KIND_REVIEW};
use crate::{Actor, Finding, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use pumpward_vuln::priority::Control;
use pumpward_vuln::remediation::{apply, RemediationState, Step, StepError};
use serde::Serialize;
use serde_json::json;
use sqlx::Row;

/// A compensating control as recorded on an asset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssetControl {
    pub asset_id: String,
    pub control: Control,
    pub note: String,
    pub recorded_by: String,
    pub recorded_at: String,
}

impl Store {
    /// Takes one remediation step on a vulnerability finding: refused
    /// (changing nothing) when the workflow does not allow it or a required
    /// field is missing; `deployed` is checked against the firmware version
    /// the asset reports. A risk acceptance also records its controls on the
    /// asset. Audited as `finding.remediation`.
    pub async fn transition_finding(&self, id: i64, step: &Step, actor: &Actor) -> Result<Finding> {
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        let r = sqlx::query(
            "SELECT f.kind, f.asset_id, f.remediation, a.firmware_version FROM findings f \
             LEFT JOIN assets a ON a.asset_id = f.asset_id WHERE f.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("finding {id}"),
        })?;
        let kind: String = r.try_get("kind")?;
        if kind != KIND_AFFECTED && kind != KIND_REVIEW {
            return Err(StoreError::Invalid(format!(
                "finding {id} is a {kind} finding; only vulnerability findings have a remediation"
            )));
        }
        let asset_id: Option<String> = r.try_get("asset_id")?;
        let from = r
            .try_get::<Option<String>, _>("remediation")?
            .as_deref()
            .map_or(Some(RemediationState::Open), RemediationState::parse)
            .ok_or_else(|| {
                StoreError::Invalid(format!("finding {id} has an unknown remediation state"))
            })?;
        let reported: Option<String> = r.try_get("firmware_version")?;
        let today = timefmt::format_date(now.date());
        let to =
            apply(from, step, reported.as_deref().unwrap_or(""), &today).map_err(|e| match e {
                StepError::Illegal { .. } => StoreError::Conflict(e.to_string()),
                _ => StoreError::Invalid(e.to_string()),
            })?;
        let details = json!({
            "step": step, "from": from, "by": actor.id, "at": timefmt::format(now),
            "reported_version": reported,
        });
        sqlx::query("UPDATE findings SET remediation = $1, remediation_details = $2 WHERE id = $3")
            .bind(to.as_str())
            .bind(details.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let mut entries = vec![actor
            .entry("finding.remediation", Outcome::Success)
            .object(format!("finding:{id}"))
            .reason(format!("{from} → {to}"))
            .details(&details)];
        if let (
            Step::RiskAccepted {
                controls, owner, ..
            },
            Some(asset),
        ) = (step, &asset_id)
        {
            for c in controls {
                let note = format!("risk acceptance of finding {id} (owner {owner})");
                if self
                    .insert_control(&mut tx, asset, *c, &note, actor)
                    .await?
                {
                    entries.push(control_entry(actor, asset, *c, &note));
                }
            }
        }
        tx.commit_audited(entries, now).await?;
        self.finding(id).await
    }

    /// Records a compensating control on an asset (a second record of the
    /// same control is a no-op). Returns whether it was new. Audited as
    /// `asset.control`.
    pub async fn record_asset_control(
        &self,
        asset_id: &str,
        control: Control,
        note: &str,
        actor: &Actor,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let new = self
            .insert_control(&mut tx, asset_id, control, note, actor)
            .await?;
        if new {
            tx.commit_audited(
                vec![control_entry(actor, asset_id, control, note)],
                crate::now(),
            )
            .await?;
            // The control lowers the priority of the asset's findings now.
            self.rematch_asset(asset_id, actor).await?;
        }
        Ok(new)
    }

    /// The compensating controls recorded on an asset.
    pub async fn asset_controls(&self, asset_id: &str) -> Result<Vec<AssetControl>> {
        sqlx::query(
            "SELECT asset_id, control, note, recorded_by, recorded_at FROM asset_controls \
             WHERE asset_id = $1 ORDER BY control",
        )
        .bind(asset_id.to_owned())
        .fetch_all(self.pool())
        .await?
        .iter()
        .filter_map(|r| {
            let control: String = match r.try_get("control") {
                Ok(c) => c,
                Err(e) => return Some(Err(e.into())),
            };
            // Only this module writes the column, from the same list.
            let control = Control::parse(&control)?;
            Some((|| {
                Ok(AssetControl {
                    asset_id: r.try_get("asset_id")?,
                    control,
                    note: r.try_get("note")?,
                    recorded_by: r.try_get("recorded_by")?,
                    recorded_at: r.try_get("recorded_at")?,
                })
            })())
        })
        .collect()
    }

    async fn insert_control(
        &self,
        tx: &mut crate::WriteTx,
        asset_id: &str,
        control: Control,
        note: &str,
        actor: &Actor,
    ) -> Result<bool> {
        let exists = sqlx::query("SELECT 1 AS one FROM assets WHERE asset_id = $1")
            .bind(asset_id.to_owned())
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound {
                what: format!("asset {asset_id}"),
            });
        }
        let done = sqlx::query(
            "INSERT INTO asset_controls (asset_id, control, note, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (asset_id, control) DO NOTHING",
        )
        .bind(asset_id.to_owned())
        .bind(control.as_str())
        .bind(note.to_owned())
        .bind(actor.id.clone())
        .bind(timefmt::format(crate::now()))
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn control_entry(
    actor: &Actor,
    asset_id: &str,
    control: Control,
    note: &str,
) -> pumpward_core::audit::AuditEntry {
    actor
        .entry("asset.control", Outcome::Success)
        .object(format!("asset:{asset_id}"))
        .reason(format!(
            "compensating control {} recorded",
            control.as_str()
        ))
        .details(&json!({"control": control, "note": note}))
}
