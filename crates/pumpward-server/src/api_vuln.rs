//! REST handlers of vulnerability intelligence (issue 5): the imported
//! advisories and the upload of one document. The matches themselves are
//! findings (`GET /api/v1/findings?kind=vulnerability.affected`).

use crate::api::{parse_query, read_body};
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::Json;
use pumpward_store::AdvisoryFilter;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryQuery {
    /// `csaf`, `kev`, `nvd`, `nvd-transcription`, `cve5`, `epss`.
    format: Option<String>,
    /// `current` or `superseded`; both when absent.
    state: Option<String>,
    cve: Option<String>,
    product_key: Option<String>,
    #[serde(default)]
    limit: i64,
}

pub async fn list_advisories(
    State(st): State<AppState>,
    _: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: AdvisoryQuery = parse_query(q.as_deref())?;
    let state = match q.state.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s @ ("current" | "superseded")) => Some(s.to_owned()),
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "state {s:?}: use current, superseded or all"
            )))
        }
    };
    let items = st
        .store
        .list_advisories(&AdvisoryFilter {
            format: q.format.filter(|x| !x.is_empty()),
            state,
            cve: q.cve.filter(|x| !x.is_empty()),
            product_key: q.product_key.filter(|x| !x.is_empty()),
            limit: q.limit,
        })
        .await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn get_advisory(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let (advisory, vulnerabilities) = st.store.advisory(id).await?;
    Ok(Json(
        json!({ "advisory": advisory, "vulnerabilities": vulnerabilities }),
    ))
}

/// Imports one document, whatever its supported format (detected from the
/// content, so any content type is accepted), then re-matches the assets
/// it concerns (`match` in the answer: what that raised and resolved).
/// 201 when it was added or superseded an earlier revision, 200 when
/// skipped (with the reason), 422 when refused as broken (nothing was
/// stored).
pub async fn upload_advisory(
    State(st): State<AppState>,
    p: Principal,
    req: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let bytes = read_body(req, None, st.settings.max_import_bytes).await?;
    let actor = p.actor();
    let r = st.store.import_vuln_document(&bytes, &actor).await?;
    if r.is_refused() {
        return Err(ApiError::new(
            ErrorKind::Validation,
            r.reason
                .unwrap_or_else(|| "the document was refused".into()),
        ));
    }
    let changed = matches!(r.outcome.as_str(), "added" | "updated");
    // Only the assets this document concerns: the rest of the fleet's
    // findings cannot change.
    let matched = match (changed, r.advisory_id) {
        (true, Some(id)) => Some(st.store.rematch_after_import(id, &actor).await?),
        _ => None,
    };
    let status = if changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "import": r, "match": matched }))))
}
