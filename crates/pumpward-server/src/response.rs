//! Responses (issue 7, item 5): quarantining a pump, manually or as a
//! rule's automatic response, and releasing it.
//!
//! What a quarantine does, and only this:
//! - the asset's lifecycle state becomes `quarantined` (the store, with the
//!   response record and audit entries in one transaction). That one state
//!   is what every enforcement point already obeys: the gateway refuses new
//!   sessions of an asset that may not connect and its sweep closes open
//!   ones within [`crate::device::SWEEP`] (on every server node), and the
//!   RADIUS/ISE exports list only assets admitted to the network
//!   (`AssetIdentity::authorised`), so the MAC drops out of MAB and the
//!   802.1X policy at the next export;
//! - on this node, the pump is sent a `quarantine_notice` and its sessions
//!   are closed at once ([`cut_off`]);
//! - biomed sees the pump on the swap work list (`/responses`) and on the
//!   asset page until someone releases it.
//!
//! **Why this never stops a running infusion.** An infusion runs on the
//! pump, programmed at the bedside; the pump needs no network to continue
//! it (the agent's `TherapyState` is written only by the firmware, never by
//! the channel). The device protocol has no command that starts, stops,
//! pauses or changes an infusion (`Command::changes_therapy` is false for
//! every command, and names each so that a new one must be judged), and
//! [`cut_off`] sends exactly one command, the notice, after checking that.
//! Closing a TLS session is the network going away, which pumps are built
//! to survive: events queue durably on the pump until it is back.
//!
//! Automatic responses: when a rule configured with `response =
//! "quarantine"` records a new alert about an asset, [`on_new_alerts`]
//! creates a `pending` response requested by `system`; a person with
//! `response.manage` confirms (applies) or refuses it. Nothing reaches the
//! gateway before that confirmation.

use crate::api::{parse_query, JsonBody};
use crate::auth::Principal;
use crate::device::Sessions;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use pumpward_detect::{Alert, DetectionConfig, ResponseKind, ResponseState};
use pumpward_proto::message::{self, QuarantineState};
use pumpward_store::{Actor, ResponseFilter, ResponseRecord, ResponseRequest, Store, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Takes a quarantined pump off this gateway now: a quarantine notice (for
/// its display and log), then its sessions closed. The sweep does the same
/// on every node within seconds, so this is speed, not correctness.
pub fn cut_off(sessions: &Arc<Sessions>, asset_id: &str, reason: &str) {
    let notice = message::Command::QuarantineNotice {
        state: QuarantineState::Quarantined,
        reason: message::refusal_reason(reason),
        incident: None,
    };
    // The one command a response sends; see the module docs.
    if notice.changes_therapy() {
        tracing::error!(asset = %asset_id, "a response command would change therapy; not sent");
        sessions.close_asset(asset_id, "the asset is now quarantined");
        return;
    }
    sessions.notify_and_close(
        asset_id,
        pumpward_core::inventory::LifecycleState::Quarantined,
        reason,
    );
}

/// Creates the pending automatic responses for newly recorded alerts whose
/// rule has one configured. A request the store refuses (the asset is
/// already quarantined, has an open response, is retired) is logged and
/// skipped: the store audits the refusal.
pub async fn on_new_alerts(
    store: &Store,
    config: &DetectionConfig,
    alerts: &[Alert],
    new_ids: &[String],
) {
    for a in alerts.iter().filter(|a| new_ids.contains(&a.id)) {
        let (Some(kind), Some(asset)) = (config.response_for(&a.key.rule), a.asset_id.as_ref())
        else {
            continue;
        };
        let req = ResponseRequest {
            asset_id: asset.to_string(),
            kind,
            reason: format!("automatic response to alert {}: {}", a.id, a.title),
            alert_id: Some(a.id.clone()),
            apply_now: false,
        };
        match store.request_response(&req, &Actor::system()).await {
            Ok(r) => tracing::warn!(
                response = r.id, asset = %asset, alert = %a.id,
                "automatic {kind} pending confirmation"
            ),
            Err(e) => tracing::info!(asset = %asset, alert = %a.id, error = %e,
                "automatic {kind} not requested"),
        }
    }
}

/// `POST /api/v1/assets/{id}/quarantine`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantineBody {
    pub reason: String,
    /// The alert this answers, if any.
    #[serde(default)]
    pub alert_id: Option<String>,
    /// Ask a colleague to confirm instead of applying at once.
    #[serde(default)]
    pub two_person: bool,
}

/// A reason, for release and refusal.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseQuery {
    asset_id: Option<String>,
    state: Option<String>,
    #[serde(default)]
    limit: i64,
}

/// Requests a quarantine of `asset_id` for `actor`; applied at once (and
/// the pump cut off) unless `two_person`. Shared by the API and the UI.
pub async fn quarantine(
    st: &AppState,
    asset_id: &str,
    reason: &str,
    alert_id: Option<String>,
    two_person: bool,
    actor: &Actor,
) -> Result<ResponseRecord, StoreError> {
    let req = ResponseRequest {
        asset_id: asset_id.to_owned(),
        kind: ResponseKind::Quarantine,
        reason: reason.to_owned(),
        alert_id: alert_id.filter(|a| !a.trim().is_empty()),
        apply_now: !two_person,
    };
    let r = st.store.request_response(&req, actor).await?;
    if r.state == ResponseState::Applied {
        cut_off(&st.sessions, &r.asset_id, &r.reason);
    }
    Ok(r)
}

/// Confirms a pending response and cuts the pump off. Shared by the API and
/// the UI.
pub async fn confirm(st: &AppState, id: i64, actor: &Actor) -> Result<ResponseRecord, StoreError> {
    let r = st.store.confirm_response(id, actor).await?;
    cut_off(&st.sessions, &r.asset_id, &r.reason);
    Ok(r)
}

pub async fn api_quarantine(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<QuarantineBody>,
) -> ApiResult<(StatusCode, Json<ResponseRecord>)> {
    let r = quarantine(&st, &id, &b.reason, b.alert_id, b.two_person, &p.actor()).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

pub async fn api_release(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ReasonBody>,
) -> ApiResult<Json<ResponseRecord>> {
    Ok(Json(
        st.store
            .release_response(&id, &b.reason, &p.actor())
            .await?,
    ))
}

fn response_id(id: &str) -> ApiResult<i64> {
    id.parse()
        .map_err(|_| ApiError::not_found(format!("response {id}")))
}

pub async fn api_confirm(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ResponseRecord>> {
    Ok(Json(confirm(&st, response_id(&id)?, &p.actor()).await?))
}

pub async fn api_refuse(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ReasonBody>,
) -> ApiResult<Json<ResponseRecord>> {
    Ok(Json(
        st.store
            .refuse_response(response_id(&id)?, &b.reason, &p.actor())
            .await?,
    ))
}

pub async fn api_get(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ResponseRecord>> {
    Ok(Json(st.store.response(response_id(&id)?).await?))
}

pub async fn api_list(
    State(st): State<AppState>,
    _: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: ResponseQuery = parse_query(q.as_deref())?;
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<ResponseState>().map_err(ApiError::bad_request)?),
    };
    let items = st
        .store
        .list_responses(&ResponseFilter {
            asset_id: q.asset_id.filter(|a| !a.is_empty()),
            state,
            limit: q.limit,
        })
        .await?;
    Ok(Json(json!({ "items": items })))
}
