//! REST handlers of alerts: what the detection rules raised, and the
//! analyst's workflow on them (acknowledge, resolve, false positive,
//! comment). The workflow's rules are `pumpward-detect`'s; a step it refuses
//! is answered 422 and changes nothing. Also the reset of an asset's
//! learned baseline, which decides what future anomaly alerts compare with.

use crate::api::{parse_query, JsonBody};
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use pumpward_store::{AlertFilter, StoredAlert};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    /// `new`, `acknowledged`, `resolved` or `false_positive`.
    state: Option<String>,
    severity: Option<String>,
    rule: Option<String>,
    asset_id: Option<String>,
    /// Page cursor: the `next_cursor` of the previous page.
    before: Option<String>,
    #[serde(default)]
    limit: i64,
}

fn view(a: &StoredAlert) -> Value {
    json!({
        "id": a.case.alert.id,
        "rule": a.case.alert.key.rule,
        "subject": a.case.alert.key.subject,
        "title": a.case.alert.title,
        "csf": a.case.alert.csf,
        "severity": a.case.alert.severity.as_str(),
        "asset_id": a.case.alert.asset_id,
        "care_area": a.case.alert.care_area,
        "raised_at": pumpward_core::timefmt::format(a.case.alert.raised_at),
        "state": a.case.state.as_str(),
        "owner": a.case.owner,
        "comments": a.case.comments.iter().map(|c| json!({
            "by": c.by, "at": pumpward_core::timefmt::format(c.at), "text": c.text,
        })).collect::<Vec<_>>(),
        "events": a.case.alert.events,
        "evidence": a.case.alert.evidence,
        "incident_id": a.incident_id,
        "updated_at": a.updated_at,
    })
}

pub async fn list_alerts(
    State(st): State<AppState>,
    _: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: AlertQuery = parse_query(q.as_deref())?;
    if let Some(s) = q.state.as_deref() {
        if !["new", "acknowledged", "resolved", "false_positive"].contains(&s) {
            return Err(ApiError::bad_request(format!(
                "state {s:?}: use new, acknowledged, resolved or false_positive"
            )));
        }
    }
    // The cursor is `<raised_at>|<id>` as the previous page gave it.
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => match b.split_once('|') {
            Some((at, id)) => Some((at.to_owned(), id.to_owned())),
            None => return Err(ApiError::bad_request("before: use the next_cursor given")),
        },
    };
    let filter = AlertFilter {
        state: q.state,
        severity: q.severity.filter(|s| !s.is_empty()),
        rule: q.rule.filter(|s| !s.is_empty()),
        asset_id: q.asset_id.filter(|s| !s.is_empty()),
        before,
        limit: q.limit,
    };
    let (items, next) = st.store.list_alerts(&filter).await?;
    Ok(Json(json!({
        "items": items.iter().map(view).collect::<Vec<_>>(),
        "next_cursor": next.map(|(at, id)| format!("{at}|{id}")),
    })))
}

pub async fn get_alert(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&st.store.alert(&id).await?)))
}

/// One workflow step: `{"action": "acknowledge"}` (the caller becomes the
/// owner), `{"action": "resolve", "note": …}`, `{"action":
/// "false_positive", "note": …}` or `{"action": "comment", "note": …}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertStep {
    action: String,
    #[serde(default)]
    note: String,
}

pub async fn alert_step(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(step): JsonBody<AlertStep>,
) -> ApiResult<Json<Value>> {
    let actor = p.actor();
    // The owner and comment author by name; the audit record keeps the
    // full actor (user and token).
    let who = p.user.username.clone();
    let now = time::OffsetDateTime::now_utc();
    let note = step.note;
    let stored = match step.action.as_str() {
        "acknowledge" => {
            st.store
                .update_alert(&id, "alert.acknowledge", &actor, |c| c.acknowledge(&who))
                .await?
        }
        "resolve" => {
            st.store
                .update_alert(&id, "alert.resolve", &actor, |c| {
                    c.resolve(&who, now, &note)
                })
                .await?
        }
        "false_positive" => {
            st.store
                .update_alert(&id, "alert.false_positive", &actor, |c| {
                    c.mark_false_positive(&who, now, &note)
                })
                .await?
        }
        "comment" => {
            st.store
                .update_alert(&id, "alert.comment", &actor, |c| {
                    c.comment(&who, now, &note)
                })
                .await?
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "action {other:?}: use acknowledge, resolve, false_positive or comment"
            )))
        }
    };
    if let (Some(siem), false) = (&st.siem, step.action == "comment") {
        siem.alert_changed(&stored);
    }
    Ok(Json(view(&stored)))
}

/// `POST /api/v1/assets/{id}/baseline/reset`: the engine forgets what it
/// learned about this asset's normal behaviour and learns again.
pub async fn reset_baseline(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let had = st.rules.reset_baseline(&st.store, &id, &p.actor()).await?;
    Ok(Json(json!({ "asset_id": id, "had_baseline": had })))
}
