//! REST handlers of drug-library distribution (issue 4, items 5 and 7):
//! staged rollouts with pause/resume/advance, the compliance view, and the
//! CQI report (JSON or CSV).
//!
//! A rollout is started explicitly for a published version (publishing does
//! not send anything by itself: the pharmacy chooses the pilot). What a
//! rollout shows per pump is only what the pump reported.

use crate::api::{parse_query, JsonBody};
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pumpward_store::NewRollout;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutBody {
    /// A published version of the library.
    pub version: i64,
    /// Wave 1: the pumps of this care area …
    #[serde(default)]
    pub pilot_care_area: Option<String>,
    /// … or this share of the fleet (0–100; 0 without a care area: everyone
    /// at once).
    #[serde(default)]
    pub pilot_percent: Option<u8>,
}

/// The rollout `rid` of library `id` (404 if it belongs to another).
async fn rollout_of(st: &AppState, id: &str, rid: i64) -> ApiResult<pumpward_store::Rollout> {
    let r = st.store.library_rollout(rid).await?;
    if r.library_id != id {
        return Err(ApiError::not_found(format!(
            "rollout {rid} of library {id}"
        )));
    }
    Ok(r)
}

/// `POST /api/v1/libraries/{id}/rollouts`: starts a staged rollout.
pub async fn create(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<RolloutBody>,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    let percent = b.pilot_percent.unwrap_or(0);
    if percent > 100 {
        return Err(ApiError::bad_request(format!(
            "pilot_percent {percent} is above 100"
        )));
    }
    let r = st
        .store
        .create_library_rollout(
            &NewRollout {
                library_id: id,
                version: b.version,
                pilot_care_area: b.pilot_care_area.filter(|a| !a.trim().is_empty()),
                pilot_percent: percent,
            },
            &p.actor(),
        )
        .await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({ "rollout": r })),
    ))
}

/// `GET /api/v1/libraries/{id}/rollouts`.
pub async fn list(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "items": st.store.library_rollouts(&id).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PumpsQuery {
    #[serde(default)]
    state: Option<String>,
}

/// `GET /api/v1/libraries/{id}/rollouts/{rollout}`: counts and every pump's
/// state (`?state=` filters).
pub async fn get(
    State(st): State<AppState>,
    _: Principal,
    Path((id, rid)): Path<(String, i64)>,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    let q: PumpsQuery = parse_query(uri.query())?;
    if let Some(s) = &q.state {
        if !["pending", "announced", "deferred", "installed", "rejected"].contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "state {s:?}: choose pending, announced, deferred, installed or rejected"
            )));
        }
    }
    let r = rollout_of(&st, &id, rid).await?;
    let pumps = st
        .store
        .library_rollout_pumps(rid, q.state.as_deref())
        .await?;
    Ok(Json(json!({ "rollout": r, "pumps": pumps })))
}

async fn act(
    st: &AppState,
    p: &Principal,
    id: &str,
    rid: i64,
    action: &str,
) -> ApiResult<Json<Value>> {
    rollout_of(st, id, rid).await?;
    let a = p.actor();
    let r = match action {
        "pause" => st.store.pause_library_rollout(rid, &a).await?,
        "resume" => st.store.resume_library_rollout(rid, &a).await?,
        _ => st.store.advance_library_rollout(rid, &a).await?,
    };
    Ok(Json(json!({ "rollout": r })))
}

/// `POST …/rollouts/{rollout}/pause`: nothing more is announced.
pub async fn pause(
    State(st): State<AppState>,
    p: Principal,
    Path((id, rid)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    act(&st, &p, &id, rid, "pause").await
}

/// `POST …/rollouts/{rollout}/resume`.
pub async fn resume(
    State(st): State<AppState>,
    p: Principal,
    Path((id, rid)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    act(&st, &p, &id, rid, "resume").await
}

/// `POST …/rollouts/{rollout}/advance`: from the pilot to every pump.
pub async fn advance(
    State(st): State<AppState>,
    p: Principal,
    Path((id, rid)): Path<(String, i64)>,
) -> ApiResult<Json<Value>> {
    act(&st, &p, &id, rid, "advance").await
}

/// `GET /api/v1/libraries/{id}/compliance`.
pub async fn compliance(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = st
        .store
        .library_compliance(&id, OffsetDateTime::now_utc())
        .await?;
    Ok(Json(serde_json::to_value(c).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CqiQuery {
    /// Start (RFC 3339, or a date `YYYY-MM-DD`); default 30 days ago.
    #[serde(default)]
    pub from: Option<String>,
    /// End, exclusive (a date: the end of that day); default now.
    #[serde(default)]
    pub to: Option<String>,
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// Reads a report bound: RFC 3339, or a date (midnight UTC).
pub fn parse_bound(what: &str, s: &str) -> ApiResult<OffsetDateTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    pumpward_core::timefmt::parse_date(s)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{what} {:?}: give a date (YYYY-MM-DD) or an RFC 3339 time",
                s.chars().take(40).collect::<String>()
            ))
        })
}

/// The report period of a query (defaults: the last 30 days).
pub fn period(from: Option<&str>, to: Option<&str>) -> ApiResult<(OffsetDateTime, OffsetDateTime)> {
    let now = OffsetDateTime::now_utc();
    let to = match to {
        // A date as the end means "to the end of that day".
        Some(t) if pumpward_core::timefmt::parse_date(t.trim()).is_ok() => {
            parse_bound("to", t)? + time::Duration::days(1)
        }
        Some(t) if !t.trim().is_empty() => parse_bound("to", t)?,
        _ => now,
    };
    let from = match from {
        Some(f) if !f.trim().is_empty() => parse_bound("from", f)?,
        _ => to - time::Duration::days(30),
    };
    if to <= from {
        return Err(ApiError::bad_request("the period must end after it starts"));
    }
    Ok((from, to))
}

/// `GET /api/v1/reports/cqi?from=&to=&format=json|csv`.
pub async fn cqi(
    State(st): State<AppState>,
    _: Principal,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let q: CqiQuery = parse_query(uri.query())?;
    let (from, to) = period(q.from.as_deref(), q.to.as_deref())?;
    let report = st.store.cqi_report(from, to).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(report).into_response()),
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"cqi-{}-{}.csv\"",
                        pumpward_core::timefmt::format_date(from.date()),
                        pumpward_core::timefmt::format_date(to.date())
                    ),
                ),
            ],
            report.to_csv(),
        )
            .into_response()),
        other => Err(ApiError::bad_request(format!(
            "format {:?}: choose json or csv",
            other.chars().take(20).collect::<String>()
        ))),
    }
}
