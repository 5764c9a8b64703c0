//! REST handlers of findings: conditions that someone has to act on (today
//! the certificate expiry watch's; vulnerability and network findings use
//! the same model as they land).

use crate::api::parse_query;
use crate::auth::Principal;
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::Json;
use pumpward_store::{Finding, FindingFilter};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingQuery {
    kind: Option<String>,
    asset_id: Option<String>,
    /// `open` or `resolved`; both when absent.
    state: Option<String>,
    /// Page cursor: the `next_cursor` of the previous page.
    before: Option<i64>,
    #[serde(default)]
    limit: i64,
}

pub async fn list_findings(
    State(st): State<AppState>,
    _: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: FindingQuery = parse_query(q.as_deref())?;
    let filter = filter_of(q)?;
    let (items, next) = st.store.list_findings(&filter).await?;
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

pub async fn get_finding(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Finding>> {
    Ok(Json(st.store.finding(id).await?))
}

/// The store filter for a query; shared with the findings page.
pub(crate) fn filter_of(q: FindingQuery) -> ApiResult<FindingFilter> {
    let open = match q.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some("open") => Some(true),
        Some("resolved") => Some(false),
        Some(s) => {
            return Err(crate::problem::ApiError::bad_request(format!(
                "state {s:?}: use open, resolved or all"
            )))
        }
    };
    Ok(FindingFilter {
        kind: q.kind.filter(|k| !k.is_empty()),
        asset_id: q.asset_id.filter(|a| !a.is_empty()),
        open,
        before_id: q.before,
        limit: q.limit,
    })
}
