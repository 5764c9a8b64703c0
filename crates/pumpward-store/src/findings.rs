//! Findings: conditions about an asset that someone has to act on.
//!
//! A check (the certificate expiry watch today; vulnerability matching and
//! network policy later) calls [`Store::raise_finding`] every time it sees
//! the condition and [`Store::resolve_finding`] when the condition has gone.
//! Raising is idempotent: while a finding of the same kind and subject is
//! open, raising it again only updates when it was last seen, so an hourly
//! check does not flood the audit trail. Opening and resolving are audited.

use crate::{Actor, Result, Store};
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

pub use pumpward_core::severity::Severity;

/// A stored severity. Only this module writes the column; an unknown value
/// can only come from outside edits, and "medium" keeps it visible.
fn severity_column(s: &str) -> Severity {
    s.parse().unwrap_or(Severity::Medium)
}

/// What a check saw, to raise (or refresh) a finding.
#[derive(Debug, Clone)]
pub struct NewFinding {
    /// The kind of condition, e.g. `certificate.expiring`.
    pub kind: String,
    /// What it is about, unique per kind among open findings.
    pub subject: String,
    pub asset_id: Option<String>,
    pub severity: Severity,
    pub title: String,
    pub evidence: serde_json::Value,
}

/// A finding as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub asset_id: Option<String>,
    pub severity: Severity,
    pub title: String,
    pub evidence: serde_json::Value,
    /// `open` or `resolved`.
    pub state: String,
    pub raised_at: String,
    pub last_seen_at: String,
    pub resolved_at: Option<String>,
    pub resolution: Option<String>,
    /// Vulnerability findings: the priority score in tenths (0–1000); its
    /// factors are in the evidence (`priority`).
    pub priority: Option<i64>,
    /// Vulnerability findings: the remediation state
    /// (`pumpward_vuln::remediation::RemediationState`).
    pub remediation: Option<String>,
    /// What the last remediation step recorded.
    pub remediation_details: Option<serde_json::Value>,
}

/// Which findings to list; the filters combine.
#[derive(Debug, Clone, Default)]
pub struct FindingFilter {
    pub kind: Option<String>,
    pub asset_id: Option<String>,
    /// `Some(true)`: open only; `Some(false)`: resolved only.
    pub open: Option<bool>,
    /// Page cursor: findings with a smaller id (newest first).
    pub before_id: Option<i64>,
    /// At most 500; 0 means 50.
    pub limit: i64,
}

pub(crate) const COLUMNS: &str = "id, kind, subject, asset_id, severity, title, evidence, state, \
     raised_at, last_seen_at, resolved_at, resolution, priority, remediation, remediation_details";

pub(crate) fn finding_from_row(r: &AnyRow) -> Result<Finding> {
    let evidence: String = r.try_get("evidence")?;
    Ok(Finding {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        asset_id: r.try_get("asset_id")?,
        severity: severity_column(&r.try_get::<String, _>("severity")?),
        title: r.try_get("title")?,
        evidence: serde_json::from_str(&evidence).unwrap_or(serde_json::Value::String(evidence)),
        state: r.try_get("state")?,
        raised_at: r.try_get("raised_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        resolved_at: r.try_get("resolved_at")?,
        resolution: r.try_get("resolution")?,
        priority: r.try_get("priority")?,
        remediation: r.try_get("remediation")?,
        remediation_details: r
            .try_get::<Option<String>, _>("remediation_details")?
            .map(|d| serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))),
    })
}

impl Store {
    /// Raises a finding, or refreshes the open one of the same kind and
    /// subject. Returns it, and whether it is new.
    pub async fn raise_finding(&self, f: &NewFinding, actor: &Actor) -> Result<(Finding, bool)> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let open = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM findings WHERE kind = $1 AND subject = $2 AND state = 'open'"
        ))
        .bind(f.kind.clone())
        .bind(f.subject.clone())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = open {
            let id: i64 = r.try_get("id")?;
            sqlx::query("UPDATE findings SET last_seen_at = $1, evidence = $2 WHERE id = $3")
                .bind(now)
                .bind(f.evidence.to_string())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok((self.finding(id).await?, false));
        }
        let r = sqlx::query(&format!(
            "INSERT INTO findings (kind, subject, asset_id, severity, title, evidence, state, \
             raised_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $7) \
             RETURNING {COLUMNS}"
        ))
        .bind(f.kind.clone())
        .bind(f.subject.clone())
        .bind(f.asset_id.clone())
        .bind(f.severity.as_str())
        .bind(f.title.clone())
        .bind(f.evidence.to_string())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let finding = finding_from_row(&r)?;
        let entry = actor
            .entry("finding.raise", Outcome::Success)
            .object(format!("finding:{}", finding.id))
            .reason(f.title.clone())
            .details(&serde_json::json!({
                "kind": f.kind, "subject": f.subject, "asset_id": f.asset_id,
                "severity": f.severity, "evidence": f.evidence,
            }));
        tx.commit_audited(vec![entry], crate::now()).await?;
        Ok((finding, true))
    }

    /// Resolves the open finding of this kind and subject, if there is one,
    /// saying why. Returns it.
    pub async fn resolve_finding(
        &self,
        kind: &str,
        subject: &str,
        resolution: &str,
        actor: &Actor,
    ) -> Result<Option<Finding>> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let r = sqlx::query(&format!(
            "UPDATE findings SET state = 'resolved', resolved_at = $1, resolution = $2 \
             WHERE kind = $3 AND subject = $4 AND state = 'open' RETURNING {COLUMNS}"
        ))
        .bind(now)
        .bind(resolution.to_owned())
        .bind(kind.to_owned())
        .bind(subject.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = r else {
            return Ok(None);
        };
        let finding = finding_from_row(&r)?;
        let entry = actor
            .entry("finding.resolve", Outcome::Success)
            .object(format!("finding:{}", finding.id))
            .reason(resolution.to_owned());
        tx.commit_audited(vec![entry], crate::now()).await?;
        Ok(Some(finding))
    }

    /// One finding by id.
    pub async fn finding(&self, id: i64) -> Result<Finding> {
        let r = sqlx::query(&format!("SELECT {COLUMNS} FROM findings WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| crate::StoreError::NotFound {
                what: format!("finding {id}"),
            })?;
        finding_from_row(&r)
    }

    /// Findings, newest first, one page at a time; the cursor is the last
    /// id of the page.
    pub async fn list_findings(&self, f: &FindingFilter) -> Result<(Vec<Finding>, Option<i64>)> {
        let limit = if f.limit <= 0 { 50 } else { f.limit.min(500) };
        let mut sql = format!("SELECT {COLUMNS} FROM findings WHERE 1 = 1");
        let mut n = 0;
        let mut next = |sql: &mut String, cond: &str| {
            n += 1;
            sql.push_str(&format!(" AND {cond} ${n}"));
        };
        if f.kind.is_some() {
            next(&mut sql, "kind =");
        }
        if f.asset_id.is_some() {
            next(&mut sql, "asset_id =");
        }
        if f.before_id.is_some() {
            next(&mut sql, "id <");
        }
        match f.open {
            Some(true) => sql.push_str(" AND state = 'open'"),
            Some(false) => sql.push_str(" AND state <> 'open'"),
            None => {}
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit + 1));
        let mut q = sqlx::query(&sql);
        if let Some(k) = &f.kind {
            q = q.bind(k.clone());
        }
        if let Some(a) = &f.asset_id {
            q = q.bind(a.clone());
        }
        if let Some(b) = f.before_id {
            q = q.bind(b);
        }
        let mut items = q
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(finding_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|f| f.id)
        } else {
            None
        };
        Ok((items, next))
    }
}
