//! Responses: a quarantine requested, confirmed, refused or released, each
//! with its lifecycle change and audit records in one transaction.
//!
//! The quarantine itself is the asset's lifecycle state `quarantined` (the
//! one mechanism the gateway, its sweep and the enforcement exports already
//! obey); this module adds who asked, who confirmed, why, for which alert,
//! and the state to return to on release.
//!
//! Invariants:
//! - A refused request or step changes nothing but the audit trail (a
//!   `Denied` record, because refused responses are security-relevant).
//! - At most one open (pending or applied) response per asset, enforced by
//!   a unique index as well as checked, so two nodes cannot both apply one.
//! - The requester never confirms their own request (compared by person:
//!   a user's API token is the same person as the user).

use crate::assets::{apply_transition, fetch_asset, require_reason};
use crate::{Actor, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::inventory::{Asset, LifecycleState};
use pumpward_core::timefmt;
use pumpward_detect::response::StepError;
use pumpward_detect::{ResponseKind, ResponseState};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One response as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResponseRecord {
    pub id: i64,
    pub asset_id: String,
    pub kind: ResponseKind,
    pub state: ResponseState,
    pub reason: String,
    /// The alert that caused it, if any.
    pub alert_id: Option<String>,
    /// Audit actor id: `system` for automatic ones, `user:<name>` (and
    /// token) for manual ones.
    pub requested_by: String,
    pub requested_at: String,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<String>,
    /// The lifecycle state the asset left when the response was applied.
    pub previous_state: Option<LifecycleState>,
    /// Who released or refused it, when and why.
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    pub close_reason: Option<String>,
    pub updated_at: String,
}

/// A response to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRequest {
    pub asset_id: String,
    pub kind: ResponseKind,
    pub reason: String,
    pub alert_id: Option<String>,
    /// Apply at once (a person's manual decision) or wait `pending` for a
    /// second person (automatic responses; a person asking a colleague).
    pub apply_now: bool,
}

/// Which responses to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct ResponseFilter {
    pub asset_id: Option<String>,
    pub state: Option<ResponseState>,
    /// At most 500; 0 means 50.
    pub limit: i64,
}

const COLUMNS: &str = "id, asset_id, kind, state, reason, alert_id, requested_by, requested_at, \
     confirmed_by, confirmed_at, previous_state, closed_by, closed_at, close_reason, updated_at";

fn invalid_column(what: &str, e: String) -> StoreError {
    StoreError::Invalid(format!("stored response {what} cannot be read: {e}"))
}

fn from_row(r: &AnyRow) -> Result<ResponseRecord> {
    let kind: String = r.try_get("kind")?;
    let state: String = r.try_get("state")?;
    let previous: Option<String> = r.try_get("previous_state")?;
    Ok(ResponseRecord {
        id: r.try_get("id")?,
        asset_id: r.try_get("asset_id")?,
        kind: kind.parse().map_err(|e| invalid_column("kind", e))?,
        state: state.parse().map_err(|e| invalid_column("state", e))?,
        reason: r.try_get("reason")?,
        alert_id: r.try_get("alert_id")?,
        requested_by: r.try_get("requested_by")?,
        requested_at: r.try_get("requested_at")?,
        confirmed_by: r.try_get("confirmed_by")?,
        confirmed_at: r.try_get("confirmed_at")?,
        previous_state: previous
            .map(|p| p.parse::<LifecycleState>())
            .transpose()
            .map_err(|e| invalid_column("previous_state", e.to_string()))?,
        closed_by: r.try_get("closed_by")?,
        closed_at: r.try_get("closed_at")?,
        close_reason: r.try_get("close_reason")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The person behind an actor id: `user:ana token:7` acts as `user:ana`.
fn person(actor_id: &str) -> &str {
    actor_id.split(" token:").next().unwrap_or(actor_id)
}

fn step_refused(e: StepError) -> StoreError {
    match e {
        StepError::OwnRequest => StoreError::Forbidden(e.to_string()),
        _ => StoreError::Conflict(e.to_string()),
    }
}

/// Whether `asset` can be quarantined now; the refusal says why not.
fn check_quarantinable(asset: &Asset) -> Result<()> {
    let id = &asset.spec.asset_id;
    match asset.lifecycle_state {
        LifecycleState::Quarantined => Err(StoreError::Conflict(format!(
            "asset {id} is already quarantined"
        ))),
        s @ (LifecycleState::Decommissioned | LifecycleState::Disposed) => Err(
            StoreError::Invalid(format!("asset {id} is {s}: it is not on the network")),
        ),
        s => s
            .transition(LifecycleState::Quarantined)
            .map(|_| ())
            .map_err(|_| {
                StoreError::Invalid(format!(
                    "asset {id} is {s}; only an asset in service or in maintenance can be quarantined"
                ))
            }),
    }
}

async fn fetch_response(conn: &mut crate::Conn, id: i64) -> Result<ResponseRecord> {
    let r = sqlx::query(&format!("SELECT {COLUMNS} FROM responses WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("response {id}"),
        })?;
    from_row(&r)
}

async fn open_response(conn: &mut crate::Conn, asset_id: &str) -> Result<Option<ResponseRecord>> {
    let r = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM responses WHERE asset_id = $1 AND state IN ('pending', 'applied')"
    ))
    .bind(asset_id.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    r.as_ref().map(from_row).transpose()
}

async fn require_asset(conn: &mut crate::Conn, id: &str) -> Result<Asset> {
    fetch_asset(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("asset {id}"),
        })
}

impl Store {
    /// Records a refused response request or step in the audit trail and
    /// returns the refusal; a missing record is only returned.
    async fn refusal<T>(
        &self,
        actor: &Actor,
        action: &str,
        object: String,
        r: Result<T>,
    ) -> Result<T> {
        if let Err(e) = &r {
            if matches!(
                e,
                StoreError::Invalid(_)
                    | StoreError::Conflict(_)
                    | StoreError::Forbidden(_)
                    | StoreError::Transition(_)
            ) {
                self.audit(
                    actor
                        .entry(action, Outcome::Denied)
                        .object(object)
                        .reason(e.to_string()),
                )
                .await?;
            }
        }
        r
    }

    /// Requests a response; applied at once when `apply_now`, else pending.
    /// Refused (and nothing changed) for an unknown asset or alert, an asset
    /// already quarantined, decommissioned or not yet in service, or one
    /// with an open response.
    pub async fn request_response(
        &self,
        req: &ResponseRequest,
        actor: &Actor,
    ) -> Result<ResponseRecord> {
        let r = self.request_response_inner(req, actor).await;
        self.refusal(
            actor,
            "response.request",
            format!("asset:{}", req.asset_id),
            r,
        )
        .await
    }

    async fn request_response_inner(
        &self,
        req: &ResponseRequest,
        actor: &Actor,
    ) -> Result<ResponseRecord> {
        let reason = require_reason(&req.reason)?;
        let now = crate::now();
        let stamp = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let asset = require_asset(&mut tx, &req.asset_id).await?;
        check_quarantinable(&asset)?;
        if let Some(open) = open_response(&mut tx, &req.asset_id).await? {
            return Err(StoreError::Conflict(format!(
                "asset {} already has a {} response (#{})",
                req.asset_id, open.state, open.id
            )));
        }
        if let Some(alert) = &req.alert_id {
            sqlx::query("SELECT id FROM alerts WHERE id = $1")
                .bind(alert.clone())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("alert {alert}"),
                })?;
        }
        let mut entries = Vec::new();
        let (state, confirmed, previous) = if req.apply_now {
            entries.push(
                apply_transition(
                    &mut tx,
                    &asset,
                    LifecycleState::Quarantined,
                    actor,
                    reason,
                    &stamp,
                )
                .await?,
            );
            (
                ResponseState::Applied,
                Some(actor.id.clone()),
                Some(asset.lifecycle_state.as_str()),
            )
        } else {
            (ResponseState::Pending, None, None)
        };
        let row = sqlx::query(
            "INSERT INTO responses (asset_id, kind, state, reason, alert_id, requested_by, \
             requested_at, confirmed_by, confirmed_at, previous_state, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $7) RETURNING id",
        )
        .bind(req.asset_id.clone())
        .bind(req.kind.as_str())
        .bind(state.as_str())
        .bind(reason.to_owned())
        .bind(req.alert_id.clone())
        .bind(actor.id.clone())
        .bind(stamp.clone())
        .bind(confirmed)
        .bind(req.apply_now.then(|| stamp.clone()))
        .bind(previous)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        entries.push(
            actor
                .entry("response.request", Outcome::Success)
                .object(format!("asset:{}", req.asset_id))
                .reason(reason)
                .details(&serde_json::json!({
                    "response": id,
                    "kind": req.kind,
                    "state": state,
                    "alert": req.alert_id,
                })),
        );
        let record = fetch_response(&mut tx, id).await?;
        tx.commit_audited(entries, now).await?;
        Ok(record)
    }

    /// Confirms a pending response (someone other than its requester) and
    /// applies it: the asset is quarantined in the same transaction.
    pub async fn confirm_response(&self, id: i64, actor: &Actor) -> Result<ResponseRecord> {
        let r = self.confirm_response_inner(id, actor).await;
        self.refusal(actor, "response.confirm", format!("response:{id}"), r)
            .await
    }

    async fn confirm_response_inner(&self, id: i64, actor: &Actor) -> Result<ResponseRecord> {
        let now = crate::now();
        let stamp = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let resp = fetch_response(&mut tx, id).await?;
        let state = resp
            .state
            .confirm(person(&resp.requested_by), person(&actor.id))
            .map_err(step_refused)?;
        let asset = require_asset(&mut tx, &resp.asset_id).await?;
        // The asset may have moved since the request (retired, or
        // quarantined by hand): the request no longer fits.
        check_quarantinable(&asset)?;
        let transition = apply_transition(
            &mut tx,
            &asset,
            LifecycleState::Quarantined,
            actor,
            &resp.reason,
            &stamp,
        )
        .await?;
        sqlx::query(
            "UPDATE responses SET state = $1, confirmed_by = $2, confirmed_at = $3, \
             previous_state = $4, updated_at = $3 WHERE id = $5 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(actor.id.clone())
        .bind(stamp.clone())
        .bind(asset.lifecycle_state.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let entry = actor
            .entry("response.confirm", Outcome::Success)
            .object(format!("asset:{}", resp.asset_id))
            .reason(resp.reason.clone())
            .details(&serde_json::json!({
                "response": id,
                "kind": resp.kind,
                "requested_by": resp.requested_by,
            }));
        let record = fetch_response(&mut tx, id).await?;
        tx.commit_audited(vec![transition, entry], now).await?;
        Ok(record)
    }

    /// Declines a pending response (the requester may withdraw their own).
    pub async fn refuse_response(
        &self,
        id: i64,
        reason: &str,
        actor: &Actor,
    ) -> Result<ResponseRecord> {
        let r = self.refuse_response_inner(id, reason, actor).await;
        self.refusal(actor, "response.refuse", format!("response:{id}"), r)
            .await
    }

    async fn refuse_response_inner(
        &self,
        id: i64,
        reason: &str,
        actor: &Actor,
    ) -> Result<ResponseRecord> {
        let reason = require_reason(reason)?;
        let now = crate::now();
        let stamp = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let resp = fetch_response(&mut tx, id).await?;
        let state = resp.state.refuse().map_err(step_refused)?;
        close(&mut tx, id, state, actor, reason, &stamp).await?;
        let entry = actor
            .entry("response.refuse", Outcome::Success)
            .object(format!("asset:{}", resp.asset_id))
            .reason(reason)
            .details(&serde_json::json!({ "response": id, "kind": resp.kind }));
        let record = fetch_response(&mut tx, id).await?;
        tx.commit_audited(vec![entry], now).await?;
        Ok(record)
    }

    /// Releases the asset's applied quarantine: the asset returns to the
    /// state it was in before (in service or maintenance).
    pub async fn release_response(
        &self,
        asset_id: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<ResponseRecord> {
        let r = self.release_response_inner(asset_id, reason, actor).await;
        self.refusal(actor, "response.release", format!("asset:{asset_id}"), r)
            .await
    }

    async fn release_response_inner(
        &self,
        asset_id: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<ResponseRecord> {
        let reason = require_reason(reason)?;
        let now = crate::now();
        let stamp = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let asset = require_asset(&mut tx, asset_id).await?;
        let resp = open_response(&mut tx, asset_id).await?.ok_or_else(|| {
            StoreError::Conflict(format!(
                "asset {asset_id} has no applied response to release"
            ))
        })?;
        let state = resp.state.release().map_err(step_refused)?;
        if asset.lifecycle_state != LifecycleState::Quarantined {
            return Err(StoreError::Conflict(format!(
                "asset {asset_id} is {}, no longer quarantined; its lifecycle was changed by hand",
                asset.lifecycle_state
            )));
        }
        let back = resp.previous_state.unwrap_or(LifecycleState::InService);
        let transition = apply_transition(&mut tx, &asset, back, actor, reason, &stamp).await?;
        close(&mut tx, resp.id, state, actor, reason, &stamp).await?;
        let entry = actor
            .entry("response.release", Outcome::Success)
            .object(format!("asset:{asset_id}"))
            .reason(reason)
            .details(&serde_json::json!({ "response": resp.id, "kind": resp.kind, "to": back }));
        let record = fetch_response(&mut tx, resp.id).await?;
        tx.commit_audited(vec![transition, entry], now).await?;
        Ok(record)
    }

    /// One response.
    pub async fn response(&self, id: i64) -> Result<ResponseRecord> {
        let mut conn = self.pool().acquire().await?;
        fetch_response(&mut conn, id).await
    }

    /// Responses, newest first.
    pub async fn list_responses(&self, f: &ResponseFilter) -> Result<Vec<ResponseRecord>> {
        let limit = if f.limit <= 0 { 50 } else { f.limit.min(500) };
        let mut sql = format!("SELECT {COLUMNS} FROM responses WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        if let Some(a) = &f.asset_id {
            binds.push(a.clone());
            sql.push_str(&format!(" AND asset_id = ${}", binds.len()));
        }
        if let Some(s) = f.state {
            binds.push(s.as_str().to_owned());
            sql.push_str(&format!(" AND state = ${}", binds.len()));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }
}

async fn close(
    conn: &mut crate::Conn,
    id: i64,
    state: ResponseState,
    actor: &Actor,
    reason: &str,
    stamp: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE responses SET state = $1, closed_by = $2, closed_at = $3, close_reason = $4, \
         updated_at = $3 WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(actor.id.clone())
    .bind(stamp.to_owned())
    .bind(reason.to_owned())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
