//! REST handlers of SBOMs per device model and firmware version (issue 5,
//! item 7): attach a manufacturer's SBOM (CycloneDX JSON/XML, SPDX
//! JSON/tag-value, detected from the content; a CycloneDX VEX BOM too), list
//! them, and read one with its components, VEX statements and the open
//! findings its components decided. Attaching re-matches the pumps of that
//! model reporting that version at once, as `pumpward sbom attach` does.

use crate::api::{parse_query, read_body};
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult, ErrorKind, FieldProblem};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::Json;
use pumpward_store::FindingRow;
use serde::Deserialize;
use serde_json::{json, Value};

pub async fn list_sboms(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "items": st.store.list_model_sboms().await? })))
}

/// One SBOM, its components, its VEX statements and the open findings its
/// components or statements decided (as the findings list shows them).
pub async fn get_sbom(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let sbom = st.store.model_sbom(id).await?;
    let components = st.store.sbom_components(id).await?;
    let vex = st.store.sbom_vex_statements(id).await?;
    let findings: Vec<FindingRow> = st
        .store
        .sbom_findings(id)
        .await?
        .iter()
        .map(FindingRow::from)
        .collect();
    Ok(Json(json!({
        "sbom": sbom, "components": components, "vex": vex, "findings": findings,
    })))
}

/// Where an SBOM belongs: the query of `POST /api/v1/sboms`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachQuery {
    manufacturer: Option<String>,
    model: Option<String>,
    /// The firmware version the SBOM describes, as the pumps report it.
    version: Option<String>,
    /// The file's name, for display; `upload` when absent.
    source: Option<String>,
}

/// What an attach needs, each missing one named: (manufacturer, model,
/// version, source).
pub(crate) fn attach_target(
    manufacturer: Option<String>,
    model: Option<String>,
    version: Option<String>,
    source: Option<String>,
) -> ApiResult<(String, String, String, String)> {
    let mut problems = Vec::new();
    let mut take = |field: &str, v: Option<String>| {
        let v = v.map(|s| s.trim().to_owned()).unwrap_or_default();
        if v.is_empty() {
            problems.push(FieldProblem {
                field: field.into(),
                message: format!("the {field} is required"),
            });
        } else if v.chars().count() > 200 {
            problems.push(FieldProblem {
                field: field.into(),
                message: format!("the {field} is longer than 200 characters"),
            });
        }
        v
    };
    let (manufacturer, model, version) = (
        take("manufacturer", manufacturer),
        take("model", model),
        take("version", version),
    );
    if !problems.is_empty() {
        let mut e = ApiError::new(
            ErrorKind::Validation,
            problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        );
        e.errors = problems;
        return Err(e);
    }
    // A display name only: control characters and length cut.
    let source: String = source
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let source = if source.trim().is_empty() {
        "upload".to_owned()
    } else {
        source
    };
    Ok((manufacturer, model, version, source))
}

/// Attaches the body (the SBOM's bytes, any content type) to the model and
/// firmware version in the query. 201 when attached (with the re-match of
/// the pumps it concerns), 200 when the same file is already attached there,
/// 422 when the file is not an SBOM this parser reads (the parser's path or
/// line; nothing was stored).
pub async fn attach_sbom(
    State(st): State<AppState>,
    p: Principal,
    RawQuery(q): RawQuery,
    req: Request,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let q: AttachQuery = parse_query(q.as_deref())?;
    let (manufacturer, model, version, source) =
        attach_target(q.manufacturer, q.model, q.version, q.source)?;
    let bytes = read_body(req, None, st.settings.max_import_bytes).await?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorKind::Validation,
            "the body is empty: send the SBOM file's bytes",
        ));
    }
    let r = st
        .store
        .attach_sbom(&manufacturer, &model, &version, &source, &bytes, &p.actor())
        .await?;
    let status = if r.outcome == "attached" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(r))))
}
