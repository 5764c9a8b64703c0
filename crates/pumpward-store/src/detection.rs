//! Detection's records: security events from sources other than pumps, the
//! alerts the rules raise, incidents, and the engine's saved state.
//!
//! The workflow itself (which transitions are legal, what a checklist holds)
//! is pure logic in `pumpward-detect`; this module loads the document,
//! applies one transition, and saves it with its audit record in one
//! transaction, so that a refused transition changes nothing.
//!
//! Invariants:
//! - Recording the same event id or alert id twice changes nothing (insert
//!   or ignore): the engine's ids are deterministic, so a replay after a
//!   restart neither loses nor duplicates alerts.
//! - Every alert raised, every alert and incident transition is audited.

use crate::{Actor, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use pumpward_detect::alert::TransitionError;
use pumpward_detect::{Alert, AlertCase, EngineState, Event, Incident};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One stored security event and its position in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: Event,
}

/// Which security events to list; the filters combine.
#[derive(Debug, Clone, Default)]
pub struct SecurityEventFilter {
    pub asset_id: Option<String>,
    /// The body's kind, e.g. `auth_failure`.
    pub kind: Option<String>,
    /// RFC 3339 bounds on `occurred_at`, inclusive from, exclusive to.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Page cursor: events with a smaller seq (newest first).
    pub before_seq: Option<i64>,
    /// At most 500; 0 means 50.
    pub limit: i64,
}

/// Which alerts to list; the filters combine.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// `new`, `acknowledged`, `resolved` or `false_positive`.
    pub state: Option<String>,
    pub severity: Option<String>,
    pub rule: Option<String>,
    pub asset_id: Option<String>,
    /// Page cursor: alerts raised before this (RFC 3339), then by id.
    pub before: Option<(String, String)>,
    /// At most 500; 0 means 50.
    pub limit: i64,
}

/// An alert as stored: its case (workflow, owner, comments) and the incident
/// it belongs to, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub case: AlertCase,
    pub incident_id: Option<String>,
    pub updated_at: String,
}

/// Appends to a listing query the keyset cursor `before` (`(time, id)`
/// of the last row of the previous page), newest first by `time_col` then
/// id, and one row more than `limit` (to tell whether a next page exists).
pub(crate) fn newest_first_after(
    sql: &mut String,
    binds: &mut Vec<String>,
    time_col: &str,
    before: &Option<(String, String)>,
    limit: i64,
) {
    if let Some((at, id)) = before {
        binds.push(at.clone());
        binds.push(id.clone());
        let (a, i) = (binds.len() - 1, binds.len());
        sql.push_str(&format!(
            " AND ({time_col} < ${a} OR ({time_col} = ${a} AND id < ${i}))"
        ));
    }
    sql.push_str(&format!(
        " ORDER BY {time_col} DESC, id DESC LIMIT {}",
        limit + 1
    ));
}

fn page_limit(limit: i64) -> i64 {
    if limit <= 0 {
        50
    } else {
        limit.min(500)
    }
}

fn corrupt(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Invalid(format!("stored {what} cannot be read: {e}"))
}

fn refused(e: TransitionError) -> StoreError {
    StoreError::Invalid(e.to_string())
}

fn alert_from_row(r: &AnyRow) -> Result<StoredAlert> {
    let body: String = r.try_get("body")?;
    Ok(StoredAlert {
        case: serde_json::from_str(&body).map_err(|e| corrupt("alert", e))?,
        incident_id: r.try_get("incident_id")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const ALERT_COLUMNS: &str = "body, incident_id, updated_at";

impl Store {
    /// Stores security events; an event whose id is already stored is
    /// skipped. Returns how many were new.
    pub async fn record_security_events(&self, events: &[Event]) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        let mut new = 0;
        for e in events {
            let body = serde_json::to_string(e).map_err(|e| corrupt("event", e))?;
            let done = sqlx::query(
                "INSERT INTO security_events (event_id, occurred_at, received_at, source, kind, \
                 asset_id, body) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(e.id.clone())
            .bind(timefmt::format(e.occurred_at))
            .bind(timefmt::format(e.received_at))
            .bind(e.source.as_str())
            .bind(e.body.kind().as_str())
            .bind(e.asset_id.as_ref().map(|a| a.as_str().to_owned()))
            .bind(body)
            .execute(&mut *tx)
            .await?;
            new += done.rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Security events, newest first, one page at a time; the cursor is the
    /// last seq of the page.
    pub async fn list_security_events(
        &self,
        f: &SecurityEventFilter,
    ) -> Result<(Vec<StoredEvent>, Option<i64>)> {
        let limit = page_limit(f.limit);
        let mut sql = String::from("SELECT seq, body FROM security_events WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut clause = |col: &str, op: &str, v: &Option<String>| {
            if let Some(v) = v {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {col} {op} ${}", binds.len()));
            }
        };
        clause("asset_id", "=", &f.asset_id);
        clause("kind", "=", &f.kind);
        clause("occurred_at", ">=", &f.from);
        clause("occurred_at", "<", &f.to);
        if let Some(before) = f.before_seq {
            sql.push_str(&format!(" AND seq < {before}"));
        }
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", limit + 1));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows.iter().take(limit as usize) {
            let body: String = r.try_get("body")?;
            out.push(StoredEvent {
                seq: r.try_get("seq")?,
                event: serde_json::from_str(&body).map_err(|e| corrupt("event", e))?,
            });
        }
        let next = (rows.len() as i64 > limit)
            .then(|| out.last().map(|e| e.seq))
            .flatten();
        Ok((out, next))
    }

    /// Stores alerts the engine raised; an alert whose id is already stored
    /// (the same rule, subject and window) is left as it is. Returns the ids
    /// of the new ones, each audited as `alert.raise`.
    pub async fn record_alerts(&self, alerts: &[Alert]) -> Result<Vec<String>> {
        let now = crate::now();
        let stamp = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let mut new = Vec::new();
        let mut entries = Vec::new();
        for a in alerts {
            let case = AlertCase::new(a.clone());
            let body = serde_json::to_string(&case).map_err(|e| corrupt("alert", e))?;
            let done = sqlx::query(
                "INSERT INTO alerts (id, rule, subject, asset_id, care_area, severity, state, \
                 raised_at, updated_at, body) VALUES ($1, $2, $3, $4, $5, $6, 'new', $7, $8, $9) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(a.id.clone())
            .bind(a.key.rule.clone())
            .bind(a.key.subject.clone())
            .bind(a.asset_id.as_ref().map(|x| x.as_str().to_owned()))
            .bind(a.care_area.clone())
            .bind(a.severity.as_str())
            .bind(timefmt::format(a.raised_at))
            .bind(stamp.clone())
            .bind(body)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                new.push(a.id.clone());
                entries.push(
                    Actor::system()
                        .entry("alert.raise", Outcome::Success)
                        .object(format!("alert:{}", a.id))
                        .reason(a.title.clone())
                        .details(&serde_json::json!({
                            "rule": a.key.rule, "subject": a.key.subject,
                            "severity": a.severity.as_str(), "asset_id": a.asset_id,
                        })),
                );
            }
        }
        tx.commit_audited(entries, now).await?;
        Ok(new)
    }

    /// One alert by id.
    pub async fn alert(&self, id: &str) -> Result<StoredAlert> {
        let r = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("alert {id}"),
            })?;
        alert_from_row(&r)
    }

    /// Alerts, newest first, one page at a time; the cursor is the last
    /// alert's (raised_at, id).
    pub async fn list_alerts(
        &self,
        f: &AlertFilter,
    ) -> Result<(Vec<StoredAlert>, Option<(String, String)>)> {
        let limit = page_limit(f.limit);
        let mut sql = format!("SELECT {ALERT_COLUMNS}, raised_at, id FROM alerts WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        for (col, v) in [
            ("state", &f.state),
            ("severity", &f.severity),
            ("rule", &f.rule),
            ("asset_id", &f.asset_id),
        ] {
            if let Some(v) = v {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        newest_first_after(&mut sql, &mut binds, "raised_at", &f.before, limit);
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut last = None;
        for r in rows.iter().take(limit as usize) {
            out.push(alert_from_row(r)?);
            last = Some((r.try_get("raised_at")?, r.try_get("id")?));
        }
        let next = if rows.len() as i64 > limit {
            last
        } else {
            None
        };
        Ok((out, next))
    }

    /// Counts of alerts that are not closed, by severity (the dashboard's
    /// tiles), as (severity, count) pairs.
    pub async fn open_alert_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT severity, COUNT(*) AS n FROM alerts \
             WHERE state IN ('new', 'acknowledged') GROUP BY severity ORDER BY severity",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("severity")?, r.try_get("n")?)))
            .collect()
    }

    /// Applies one workflow step to an alert (`action` names it in the audit
    /// trail, e.g. `alert.acknowledge`). A step the workflow refuses changes
    /// nothing and is returned as [`StoreError::Invalid`].
    pub async fn update_alert<F>(
        &self,
        id: &str,
        action: &str,
        actor: &Actor,
        step: F,
    ) -> Result<StoredAlert>
    where
        F: Fn(&mut AlertCase) -> std::result::Result<(), TransitionError>,
    {
        let mut done = self
            .update_alerts(&[id.to_owned()], action, actor, step)
            .await?;
        done.pop().ok_or_else(|| StoreError::NotFound {
            what: format!("alert {id}"),
        })
    }

    /// Takes the same workflow step on every alert of `ids`, all or none:
    /// if one is missing or its workflow refuses the step, nothing changes
    /// and the error names every alert that refused (a bulk action in the UI
    /// must not leave half the selection changed). One audit record per
    /// alert, in the same transaction.
    pub async fn update_alerts<F>(
        &self,
        ids: &[String],
        action: &str,
        actor: &Actor,
        step: F,
    ) -> Result<Vec<StoredAlert>>
    where
        F: Fn(&mut AlertCase) -> std::result::Result<(), TransitionError>,
    {
        let now = crate::now();
        let stamp = timefmt::format(now);
        // The same alert selected twice is one step, not two.
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<&String> = ids.iter().filter(|id| seen.insert(id.as_str())).collect();
        let mut tx = self.write_tx().await?;
        let mut changed = Vec::with_capacity(ids.len());
        let mut refusals = Vec::new();
        for id in ids.iter().copied() {
            let r = sqlx::query(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"))
                .bind(id.to_owned())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(r) = r else {
                if ids.len() == 1 {
                    return Err(StoreError::NotFound {
                        what: format!("alert {id}"),
                    });
                }
                refusals.push(format!("{id}: no such alert"));
                continue;
            };
            let mut stored = alert_from_row(&r)?;
            match step(&mut stored.case) {
                Ok(()) => changed.push(stored),
                Err(e) if ids.len() == 1 => return Err(refused(e)),
                Err(e) => refusals.push(format!("{id}: {e}")),
            }
        }
        if !refusals.is_empty() {
            // Dropping the transaction rolls it back: nothing was written.
            return Err(StoreError::Invalid(format!(
                "{} of the {} alerts cannot take this step ({})",
                refusals.len(),
                ids.len(),
                refusals.join("; ")
            )));
        }
        let mut entries = Vec::with_capacity(changed.len());
        for stored in &mut changed {
            stored.updated_at = stamp.clone();
            let body = serde_json::to_string(&stored.case).map_err(|e| corrupt("alert", e))?;
            let id = stored.case.alert.id.clone();
            sqlx::query(
                "UPDATE alerts SET state = $1, owner = $2, updated_at = $3, body = $4 WHERE id = $5",
            )
            .bind(stored.case.state.as_str())
            .bind(stored.case.owner.clone())
            .bind(stored.updated_at.clone())
            .bind(body)
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
            entries.push(
                actor
                    .entry(action, Outcome::Success)
                    .object(format!("alert:{id}"))
                    .details(&serde_json::json!({ "state": stored.case.state.as_str() })),
            );
        }
        tx.commit_audited(entries, now).await?;
        Ok(changed)
    }

    /// Opens an incident for `first_alert`, which joins it.
    pub async fn open_incident(
        &self,
        id: &str,
        title: &str,
        first_alert: &str,
        actor: &Actor,
    ) -> Result<Incident> {
        let now = crate::now();
        let stamp = timefmt::format(now);
        let alert = self.alert(first_alert).await?;
        let incident =
            Incident::open(id, title, &alert.case.alert, &actor.id, now).map_err(refused)?;
        let body = serde_json::to_string(&incident).map_err(|e| corrupt("incident", e))?;
        let mut tx = self.write_tx().await?;
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
        link_alert(&mut tx, first_alert, id, &stamp).await?;
        let entry = actor
            .entry("incident.open", Outcome::Success)
            .object(format!("incident:{id}"))
            .reason(title.to_owned())
            .details(&serde_json::json!({ "alert": first_alert }));
        tx.commit_audited(vec![entry], now).await?;
        Ok(incident)
    }

    /// One incident by id.
    pub async fn incident(&self, id: &str) -> Result<Incident> {
        let r = sqlx::query("SELECT body FROM incidents WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("incident {id}"),
            })?;
        let body: String = r.try_get("body")?;
        serde_json::from_str(&body).map_err(|e| corrupt("incident", e))
    }

    /// Applies one step to an incident (`action` names it in the audit
    /// trail). `alert`, when given, is loaded and passed to the step (to add
    /// it to the incident) and linked to the incident if the step succeeds.
    pub async fn update_incident<F>(
        &self,
        id: &str,
        action: &str,
        alert: Option<&str>,
        actor: &Actor,
        step: F,
    ) -> Result<Incident>
    where
        F: FnOnce(&mut Incident, Option<&Alert>) -> std::result::Result<(), TransitionError>,
    {
        let now = crate::now();
        let stamp = timefmt::format(now);
        let joining = match alert {
            Some(a) => Some(self.alert(a).await?.case.alert),
            None => None,
        };
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("SELECT body FROM incidents WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("incident {id}"),
            })?;
        let body: String = r.try_get("body")?;
        let mut incident: Incident =
            serde_json::from_str(&body).map_err(|e| corrupt("incident", e))?;
        step(&mut incident, joining.as_ref()).map_err(refused)?;
        let body = serde_json::to_string(&incident).map_err(|e| corrupt("incident", e))?;
        sqlx::query("UPDATE incidents SET state = $1, updated_at = $2, body = $3 WHERE id = $4")
            .bind(incident.state.to_string())
            .bind(stamp.clone())
            .bind(body)
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        if let Some(a) = alert {
            link_alert(&mut tx, a, id, &stamp).await?;
        }
        let entry = actor
            .entry(action, Outcome::Success)
            .object(format!("incident:{id}"))
            .details(&serde_json::json!({ "state": incident.state.to_string(), "alert": alert }));
        tx.commit_audited(vec![entry], now).await?;
        Ok(incident)
    }

    /// Saves the engine's state (replacing the previous one).
    pub async fn save_detection_state(&self, state: &EngineState) -> Result<()> {
        let snapshot = serde_json::to_string(state).map_err(|e| corrupt("engine state", e))?;
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO detection_state (id, saved_at, snapshot) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET saved_at = excluded.saved_at, \
             snapshot = excluded.snapshot",
        )
        .bind(timefmt::format(crate::now()))
        .bind(snapshot)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The engine's last saved state, if any.
    pub async fn load_detection_state(&self) -> Result<Option<EngineState>> {
        let r = sqlx::query("SELECT snapshot FROM detection_state WHERE id = 1")
            .fetch_optional(self.pool())
            .await?;
        match r {
            None => Ok(None),
            Some(r) => {
                let s: String = r.try_get("snapshot")?;
                serde_json::from_str(&s)
                    .map(Some)
                    .map_err(|e| corrupt("engine state", e))
            }
        }
    }
}

async fn link_alert(
    tx: &mut crate::WriteTx,
    alert: &str,
    incident: &str,
    stamp: &str,
) -> Result<()> {
    sqlx::query("UPDATE alerts SET incident_id = $1, updated_at = $2 WHERE id = $3")
        .bind(incident.to_owned())
        .bind(stamp.to_owned())
        .bind(alert.to_owned())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
