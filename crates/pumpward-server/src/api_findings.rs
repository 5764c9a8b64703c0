//! REST handlers of findings: conditions that someone has to act on (today
//! the certificate expiry watch's; vulnerability and network findings use
//! the same model as they land).

use crate::api::{parse_query, JsonBody};
use crate::auth::Principal;
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pumpward_core::access::Permission;
use pumpward_store::{Finding, FindingFilter};
use pumpward_vuln::priority::Control;
use pumpward_vuln::remediation::Step;
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
    let items: Vec<Value> = items.iter().map(with_advisories).collect();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

pub async fn get_finding(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(with_advisories(&st.store.finding(id).await?)))
}

/// A finding with, for vulnerability findings, `advisories`: the advisories
/// its rules cite, each with its page and its API resource; and, once
/// resolved, `applied_remediations`: those advisories' remediations that
/// applied to it.
fn with_advisories(f: &Finding) -> Value {
    let mut v = json!(f);
    if pumpward_store::vulnerability_status(f).is_none() {
        return v;
    }
    v["advisories"] = pumpward_store::cited_advisories(&f.evidence)
        .into_iter()
        .map(|(id, tracking_id)| {
            json!({
                "id": id, "tracking_id": tracking_id,
                "href": format!("/advisories/{id}"),
                "api": format!("/api/v1/advisories/{id}"),
            })
        })
        .collect();
    if f.state == "resolved" {
        v["applied_remediations"] = pumpward_store::cited_remediations(&f.evidence)
            .into_iter()
            .map(|r| json!({"category": r.category, "details": r.details, "url": r.url}))
            .collect();
    }
    v
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

/// Takes one remediation step (the body is the step: `{"to":
/// "scheduled", "date": "2026-12-03"}`); 409 when the workflow does not
/// allow it from the finding's state, 422 when a field is missing or the
/// deployed version is not the one the pump reports.
pub async fn remediate_finding(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    JsonBody(step): JsonBody<Step>,
) -> ApiResult<Json<Value>> {
    if matches!(step, Step::PatchValidated { .. }) && !p.can(Permission::VulnValidatePatch) {
        return Err(crate::problem::ApiError::forbidden(
            "validating a vendor patch is biomedical engineering's (vuln.validate_patch)",
        ));
    }
    let finding = st.store.transition_finding(id, &step, &p.actor()).await?;
    Ok(Json(json!({ "finding": finding })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlBody {
    control: Control,
    #[serde(default)]
    note: String,
}

pub async fn asset_controls(
    State(st): State<AppState>,
    _: Principal,
    Path(asset): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "items": st.store.asset_controls(&asset).await? }),
    ))
}

/// Records a compensating control: 201 when new, 200 when already recorded.
pub async fn record_control(
    State(st): State<AppState>,
    p: Principal,
    Path(asset): Path<String>,
    JsonBody(b): JsonBody<ControlBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = st
        .store
        .record_asset_control(&asset, b.control, &b.note, &p.actor())
        .await?;
    let items = st.store.asset_controls(&asset).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "items": items }))))
}

/// The findings as CSV (same filters as the list, every page; highest
/// priority first), safe to open in a spreadsheet
/// (`pumpward_store::csv_safe_cell`).
pub async fn export_findings(
    State(st): State<AppState>,
    _: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q: FindingQuery = parse_query(q.as_deref())?;
    let mut filter = filter_of(q)?;
    filter.limit = 500;
    let mut rows = Vec::new();
    loop {
        let (page, next) = st.store.list_findings(&filter).await?;
        rows.extend(page.iter().map(pumpward_store::FindingRow::from));
        match next {
            Some(n) => filter.before_id = Some(n),
            None => break,
        }
    }
    rows.sort_by(|a, b| {
        b.priority
            .unwrap_or(-1.0)
            .total_cmp(&a.priority.unwrap_or(-1.0))
            .then(b.finding_id.cmp(&a.finding_id))
    });
    let mut out = Vec::new();
    pumpward_store::write_findings_csv(&mut out, &rows).map_err(|e| {
        crate::problem::ApiError::new(crate::problem::ErrorKind::Internal, e.to_string())
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"pumpward-findings.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VexQuery {
    /// The publishing hospital's name.
    publisher: Option<String>,
    /// The hospital's URL (CSAF's publisher namespace).
    namespace: Option<String>,
}

/// The fleet's vulnerability status as a CSAF 2.0 VEX document
/// (`pumpward_store::Store::fleet_vex`), checked against the CSAF
/// mandatory tests it can run before it is served.
pub async fn vex_findings(
    State(st): State<AppState>,
    _: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q: VexQuery = parse_query(q.as_deref())?;
    let namespace = q
        .namespace
        .unwrap_or_else(|| "https://hospital.invalid".into());
    if !(namespace.starts_with("https://") || namespace.starts_with("http://")) {
        return Err(crate::problem::ApiError::new(
            crate::problem::ErrorKind::Validation,
            format!("namespace: {namespace:?} is not an http(s) URL"),
        ));
    }
    let doc = st
        .store
        .fleet_vex(q.publisher.as_deref().unwrap_or("Hospital"), &namespace)
        .await?;
    let problems = pumpward_vuln::vex::mandatory_problems(&doc);
    if !problems.is_empty() {
        return Err(crate::problem::ApiError::new(
            crate::problem::ErrorKind::Internal,
            format!(
                "the VEX document fails CSAF mandatory tests: {}",
                problems.join("; ")
            ),
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"pumpward-fleet-vex.json\"",
            ),
        ],
        Json(doc),
    )
        .into_response())
}
