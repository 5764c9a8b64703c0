//! Incidents as the SOC works them (opened from a selection of alerts,
//! listed by state), the security events an alert names, and the detection
//! rule settings edited in the UI.
//!
//! The incident workflow is `pumpward-detect`'s [`Incident`]; opening one
//! from several alerts applies [`Incident::open`] and [`Incident::add_alert`]
//! in one transaction, so a refusal (an alert unknown or already in an
//! incident) leaves no half-made incident behind.

use crate::{Actor, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use pumpward_detect::{Incident, Severity};
use sqlx::Row;

/// Which incidents to list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// `open`, `contained` or `closed`.
    pub state: Option<String>,
    /// Page cursor: incidents opened before this (RFC 3339), then by id.
    pub before: Option<(String, String)>,
    /// At most 500; 0 means 50.
    pub limit: i64,
}

/// An incident as listed: the document and when it was opened and changed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredIncident {
    pub incident: Incident,
    pub opened_at: String,
    pub updated_at: String,
}

/// The rule settings saved from the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionSettings {
    /// TOML in the format of `pumpward detect rules` (overrides only).
    pub rules: String,
    pub updated_by: String,
    pub updated_at: String,
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Invalid(format!("stored {what} cannot be read: {e}"))
}

impl Store {
    /// Opens incident `id` from `alerts` (at least one, each at most once,
    /// none already in an incident). The severity is `severity` when given,
    /// else the highest of the alerts'. All or nothing, audited as
    /// `incident.open`.
    pub async fn open_incident_from(
        &self,
        id: &str,
        title: &str,
        severity: Option<Severity>,
        alerts: &[String],
        actor: &Actor,
    ) -> Result<Incident> {
        if alerts.is_empty() {
            return Err(StoreError::Invalid("choose at least one alert".into()));
        }
        let now = crate::now();
        let stamp = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let mut cases = Vec::with_capacity(alerts.len());
        for a in alerts {
            let r = sqlx::query("SELECT body, incident_id FROM alerts WHERE id = $1")
                .bind(a.clone())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("alert {a}"),
                })?;
            if let Some(other) = r.try_get::<Option<String>, _>("incident_id")? {
                return Err(StoreError::Invalid(format!(
                    "alert {a} already belongs to incident {other}"
                )));
            }
            let body: String = r.try_get("body")?;
            let case: pumpward_detect::AlertCase =
                serde_json::from_str(&body).map_err(|e| corrupt("alert", e))?;
            cases.push(case.alert);
        }
        let refused =
            |e: pumpward_detect::alert::TransitionError| StoreError::Invalid(e.to_string());
        let first_alert = cases
            .first()
            .ok_or_else(|| StoreError::Invalid("choose at least one alert".into()))?;
        let mut incident =
            Incident::open(id, title, first_alert, &actor.id, now).map_err(refused)?;
        for a in cases.iter().skip(1) {
            incident.add_alert(a, &actor.id, now).map_err(refused)?;
        }
        if let Some(s) = severity {
            incident.severity = s;
        }
        let body = serde_json::to_string(&incident).map_err(|e| corrupt("incident", e))?;
        sqlx::query(
            "INSERT INTO incidents (id, title, severity, state, opened_at, updated_at, body) \
             VALUES ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(id.to_owned())
        .bind(title.to_owned())
        .bind(incident.severity.as_str())
        .bind(incident.state.to_string())
        .bind(stamp.clone())
        .bind(body)
        .execute(&mut *tx)
        .await?;
        for a in alerts {
            sqlx::query("UPDATE alerts SET incident_id = $1, updated_at = $2 WHERE id = $3")
                .bind(id.to_owned())
                .bind(stamp.clone())
                .bind(a.clone())
                .execute(&mut *tx)
                .await?;
        }
        let entry = actor
            .entry("incident.open", Outcome::Success)
            .object(format!("incident:{id}"))
            .reason(title.to_owned())
            .details(&serde_json::json!({
                "alerts": alerts, "severity": incident.severity.as_str(),
            }));
        tx.commit_audited(vec![entry], now).await?;
        Ok(incident)
    }

    /// Incidents, newest first, one page at a time; the cursor is the last
    /// incident's (opened_at, id).
    pub async fn list_incidents(
        &self,
        f: &IncidentFilter,
    ) -> Result<(Vec<StoredIncident>, Option<(String, String)>)> {
        let limit = if f.limit <= 0 { 50 } else { f.limit.min(500) };
        let mut sql =
            String::from("SELECT id, opened_at, updated_at, body FROM incidents WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        if let Some(s) = &f.state {
            binds.push(s.clone());
            sql.push_str(" AND state = $1");
        }
        crate::detection::newest_first_after(&mut sql, &mut binds, "opened_at", &f.before, limit);
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut last = None;
        for r in rows.iter().take(limit as usize) {
            let body: String = r.try_get("body")?;
            let opened_at: String = r.try_get("opened_at")?;
            let id: String = r.try_get("id")?;
            out.push(StoredIncident {
                incident: serde_json::from_str(&body).map_err(|e| corrupt("incident", e))?,
                opened_at: opened_at.clone(),
                updated_at: r.try_get("updated_at")?,
            });
            last = Some((opened_at, id));
        }
        let next = if rows.len() as i64 > limit {
            last
        } else {
            None
        };
        Ok((out, next))
    }

    /// The stored security events among `ids` (those that are not security
    /// events, e.g. pump events, are simply absent), in the order given.
    pub async fn security_events_by_ids(&self, ids: &[String]) -> Result<Vec<crate::StoredEvent>> {
        let mut out = Vec::new();
        for id in ids.iter().take(500) {
            let r = sqlx::query("SELECT seq, body FROM security_events WHERE event_id = $1")
                .bind(id.clone())
                .fetch_optional(self.pool())
                .await?;
            if let Some(r) = r {
                let body: String = r.try_get("body")?;
                out.push(crate::StoredEvent {
                    seq: r.try_get("seq")?,
                    event: serde_json::from_str(&body).map_err(|e| corrupt("event", e))?,
                });
            }
        }
        Ok(out)
    }

    /// The rule settings saved from the UI, if any.
    pub async fn detection_settings(&self) -> Result<Option<DetectionSettings>> {
        let r = sqlx::query(
            "SELECT rules, updated_by, updated_at FROM detection_settings WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await?;
        match r {
            None => Ok(None),
            Some(r) => Ok(Some(DetectionSettings {
                rules: r.try_get("rules")?,
                updated_by: r.try_get("updated_by")?,
                updated_at: r.try_get("updated_at")?,
            })),
        }
    }

    /// Replaces the saved rule settings with `rules` (already validated by
    /// the caller), audited as `detection.configure` with `change` as the
    /// record's details (what was edited).
    pub async fn save_detection_settings(
        &self,
        rules: &str,
        change: &serde_json::Value,
        actor: &Actor,
    ) -> Result<DetectionSettings> {
        let now = crate::now();
        let stamp = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO detection_settings (id, rules, updated_by, updated_at) \
             VALUES (1, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET rules = excluded.rules, \
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(rules.to_owned())
        .bind(actor.id.clone())
        .bind(stamp.clone())
        .execute(&mut *tx)
        .await?;
        let entry = actor
            .entry("detection.configure", Outcome::Success)
            .object("detection:rules".to_owned())
            .details(change);
        tx.commit_audited(vec![entry], now).await?;
        Ok(DetectionSettings {
            rules: rules.to_owned(),
            updated_by: actor.id.clone(),
            updated_at: stamp,
        })
    }
}
