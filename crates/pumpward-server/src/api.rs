//! REST API handlers. Each names its permission from the route table.

use crate::auth::{random_token, token_hash, Principal, TOKEN_PREFIX};
use crate::problem::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pumpward_core::access::{password, validate_username, Permission, Role};
use pumpward_core::inventory::{csv as invcsv, AssetDraft, AssetSpec, DeviceModel, LifecycleState};
use pumpward_store::{AssetFilter, AuditFilter};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// A JSON body parsed by serde, with problem+json errors for every way it
/// can be wrong (wrong type, too large, malformed, unknown fields).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, Some("application/json"), st.settings.max_body_bytes).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("the JSON body is not valid: {e}")))
    }
}

/// Reads a body of the given media type up to `limit` bytes.
pub async fn read_body(req: Request, media: Option<&str>, limit: usize) -> ApiResult<Bytes> {
    if let Some(m) = media {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case(m)
        {
            return Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                format!("send the body as {m}"),
            ));
        }
    }
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("the body is larger than {limit} bytes"),
            )
        })
}

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(st): State<AppState>) -> Response {
    match st.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub async fn metrics(State(st): State<AppState>, _: Principal) -> ApiResult<Response> {
    let (by_state, _) = st.store.asset_counts().await?;
    for s in LifecycleState::ALL {
        let n = by_state
            .iter()
            .find(|(k, _)| k == s.as_str())
            .map(|(_, n)| *n)
            .unwrap_or(0);
        st.metrics
            .assets
            .get_or_create(&crate::metrics::StateLabels {
                state: s.as_str().into(),
            })
            .set(n);
    }
    st.metrics
        .audit_records
        .set(st.store.audit_head().await?.seq);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response())
}

pub async fn openapi() -> Json<Value> {
    Json(crate::routes::openapi())
}

pub async fn me(p: Principal) -> Json<Value> {
    let perms: Vec<_> = Permission::ALL
        .iter()
        .filter(|&&x| p.can(x))
        .map(|x| x.as_str())
        .collect();
    Json(
        json!({ "user": p.user, "permissions": perms, "via": if p.token.is_some() { "token" } else { "session" } }),
    )
}

pub async fn dashboard(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    let (by_state, by_care_area) = st.store.asset_counts().await?;
    let obj = |v: Vec<(String, i64)>| {
        v.into_iter()
            .map(|(k, n)| (k, json!(n)))
            .collect::<serde_json::Map<_, _>>()
    };
    Ok(Json(
        json!({ "by_state": obj(by_state), "by_care_area": obj(by_care_area) }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub kind: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub care_area: Option<String>,
    pub zone: Option<String>,
    pub state: Option<String>,
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

impl ListQuery {
    pub fn to_filter(&self) -> ApiResult<AssetFilter> {
        let nonempty = |s: &Option<String>| {
            s.as_ref()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Ok(AssetFilter {
            kind: nonempty(&self.kind)
                .map(|s| s.parse::<pumpward_core::inventory::AssetKind>())
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("kind: {e}")))?,
            manufacturer: nonempty(&self.manufacturer),
            model: nonempty(&self.model),
            care_area: nonempty(&self.care_area),
            zone: nonempty(&self.zone),
            state: nonempty(&self.state)
                .map(|s| s.parse::<LifecycleState>())
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("state: {e}")))?,
            text: nonempty(&self.q),
            after: nonempty(&self.cursor),
            limit: self.limit.unwrap_or(50).clamp(1, 500),
        })
    }
}

/// Query strings go through serde_urlencoded; map its errors to problems.
pub fn parse_query<T: DeserializeOwned>(q: Option<&str>) -> ApiResult<T> {
    serde_urlencoded::from_str(q.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))
}

pub async fn list_assets(
    State(st): State<AppState>,
    _: Principal,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    let q: ListQuery = parse_query(uri.query())?;
    let page = st.store.list_assets(&q.to_filter()?).await?;
    Ok(Json(
        json!({ "items": page.items, "next_cursor": page.next_cursor }),
    ))
}

/// Splits `lifecycle_state` and `version` off a JSON object and parses the
/// rest as a draft (which refuses unknown fields).
fn draft_from(
    mut v: Value,
    path_id: Option<&str>,
) -> ApiResult<(AssetDraft, Option<LifecycleState>, Option<i64>)> {
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let state = match obj.remove("lifecycle_state") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            s.parse::<LifecycleState>()
                .map_err(|e| ApiError::bad_request(format!("lifecycle_state: {e}")))?,
        ),
        Some(_) => return Err(ApiError::bad_request("lifecycle_state must be a string")),
    };
    let version = match obj.remove("version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| ApiError::bad_request("version must be an integer"))?,
        ),
    };
    if let Some(id) = path_id {
        match obj.get("asset_id") {
            None => {
                obj.insert("asset_id".into(), Value::String(id.into()));
            }
            Some(Value::String(s)) if s == id => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "asset_id in the body differs from the URL; ids cannot be changed",
                ))
            }
        }
    }
    let draft: AssetDraft = serde_json::from_value(v)
        .map_err(|e| ApiError::bad_request(format!("the JSON body is not valid: {e}")))?;
    Ok((draft, state, version))
}

pub async fn create_asset(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(v): JsonBody<Value>,
) -> ApiResult<Response> {
    let (draft, state, _) = draft_from(v, None)?;
    let spec = AssetSpec::validate(&draft)?;
    let a = st.store.create_asset(&spec, state, &p.actor()).await?;
    let loc = format!("/api/v1/assets/{}", a.spec.asset_id);
    Ok((StatusCode::CREATED, [(header::LOCATION, loc)], Json(a)).into_response())
}

pub async fn get_asset(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        serde_json::to_value(st.store.asset(&id).await?).expect("assets serialise"),
    ))
}

pub async fn update_asset(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(v): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    let (draft, state, version) = draft_from(v, Some(&id))?;
    if state.is_some() {
        return Err(ApiError::bad_request(
            "change lifecycle_state with POST /api/v1/assets/{id}/transition",
        ));
    }
    let version = version.ok_or_else(|| {
        ApiError::bad_request("send the version you read, for optimistic locking")
    })?;
    let spec = AssetSpec::validate(&draft)?;
    Ok(Json(
        serde_json::to_value(st.store.update_asset(&spec, version, &p.actor()).await?)
            .expect("assets serialise"),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    pub to: String,
    pub reason: String,
}

pub async fn transition_asset(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<TransitionBody>,
) -> ApiResult<Json<Value>> {
    let to: LifecycleState =
        b.to.parse()
            .map_err(|e| ApiError::bad_request(format!("to: {e}")))?;
    let a = st
        .store
        .transition_asset(&id, to, &b.reason, &p.actor())
        .await?;
    if !a.lifecycle_state.may_connect() {
        st.sessions
            .notify_and_close(&id, a.lifecycle_state, &b.reason);
    }
    Ok(Json(serde_json::to_value(a).expect("assets serialise")))
}

pub async fn asset_history(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    st.store.asset(&id).await?;
    Ok(Json(
        json!({ "events": st.store.lifecycle_history(&id).await? }),
    ))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    pub skip_invalid: bool,
}

pub async fn import_assets(
    State(st): State<AppState>,
    p: Principal,
    req: Request,
) -> ApiResult<Json<Value>> {
    let q: ImportQuery = parse_query(req.uri().query())?;
    let bytes = read_body(req, Some("text/csv"), st.settings.max_import_bytes).await?;
    let parsed = invcsv::read_assets_csv(&bytes[..], &invcsv::CsvLimits::default())
        .map_err(|e| ApiError::new(ErrorKind::Validation, e.to_string()))?;
    let invalid: Vec<Value> = parsed
        .errors
        .iter()
        .map(|e| json!({ "line": e.line, "asset_id": e.asset_id, "message": e.message }))
        .collect();
    if !invalid.is_empty() && !q.skip_invalid {
        let mut err = ApiError::new(
            ErrorKind::Validation,
            format!("{} rows are invalid; nothing was imported", invalid.len()),
        );
        err.errors = parsed
            .errors
            .iter()
            .map(|e| crate::problem::FieldProblem {
                field: format!("line {}", e.line),
                message: e.to_string(),
            })
            .collect();
        return Err(err);
    }
    let sum = st
        .store
        .import_assets(&parsed.rows, q.skip_invalid, &p.actor())
        .await?;
    if !sum.refused.is_empty() && !q.skip_invalid {
        let mut err = ApiError::new(
            ErrorKind::Conflict,
            format!(
                "{} rows were refused; nothing was imported",
                sum.refused.len()
            ),
        );
        err.errors = sum
            .refused
            .iter()
            .map(|(l, id, m)| crate::problem::FieldProblem {
                field: format!("line {l}"),
                message: format!("asset {id}: {m}"),
            })
            .collect();
        return Err(err);
    }
    Ok(Json(json!({
        "created": sum.created, "updated": sum.updated, "unchanged": sum.unchanged,
        "invalid": invalid,
        "refused": sum.refused.iter().map(|(l, id, m)| json!({ "line": l, "asset_id": id, "message": m })).collect::<Vec<_>>(),
    })))
}

pub async fn export_assets(State(st): State<AppState>, _: Principal) -> ApiResult<Response> {
    let mut out = Vec::new();
    let mut assets = Vec::new();
    let mut after = None;
    loop {
        let page = st
            .store
            .list_assets(&AssetFilter {
                after: after.clone(),
                limit: 500,
                ..Default::default()
            })
            .await?;
        assets.extend(page.items);
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    invcsv::write_assets_csv(
        &mut out,
        assets.iter().map(|a| invcsv::ExportRow {
            spec: &a.spec,
            lifecycle_state: a.lifecycle_state,
        }),
    )
    .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"pumpward-assets.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

pub async fn list_models(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    let models: Vec<Value> = st
        .store
        .list_models()
        .await?
        .into_iter()
        .map(|(id, m)| json!({ "id": id, "model": m }))
        .collect();
    Ok(Json(json!({ "items": models })))
}

pub async fn put_model(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(m): JsonBody<DeviceModel>,
) -> ApiResult<Json<Value>> {
    let m = DeviceModel::new(&m.manufacturer, &m.model, m.device_type, m.capabilities)?;
    let id = st.store.put_model(&m, &p.actor()).await?;
    Ok(Json(json!({ "id": id, "model": m })))
}

pub async fn list_users(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    let users: Vec<Value> = st
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| {
            let mfa = u.mfa_enrolled();
            let mut v = serde_json::to_value(u).expect("users serialise");
            v["mfa_enrolled"] = json!(mfa);
            v
        })
        .collect();
    Ok(Json(json!({ "items": users })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub role: String,
    pub password: String,
}

/// Checks a new account's username, display name and password (API, UI and
/// first-start setup share this); returns the normalised username and
/// display name.
pub fn validate_new_user(
    username: &str,
    display_name: Option<&str>,
    password: &str,
) -> ApiResult<(String, String)> {
    let invalid = |field: &str, e: &dyn std::fmt::Display| {
        ApiError::new(ErrorKind::Validation, format!("{field}: {e}"))
    };
    let username = validate_username(username).map_err(|e| invalid("username", &e))?;
    password::check_new_password(password, &username).map_err(|e| invalid("password", &e))?;
    let display = display_name
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(&username);
    let display = pumpward_core::inventory::required_text(display, 128)
        .map_err(|e| invalid("display_name", &e))?;
    Ok((username, display))
}

/// Validates and creates a user (API and UI share this).
pub async fn add_user(
    st: &AppState,
    p: &Principal,
    u: &NewUser,
) -> ApiResult<pumpward_store::User> {
    let role: Role = u
        .role
        .parse()
        .map_err(|e| ApiError::new(ErrorKind::Validation, format!("role: {e}")))?;
    let (username, display) =
        validate_new_user(&u.username, u.display_name.as_deref(), &u.password)?;
    Ok(st
        .store
        .create_user(
            &username,
            &display,
            role,
            &password::hash_password(&u.password),
            false,
            &p.actor(),
        )
        .await?)
}

pub async fn create_user(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(u): JsonBody<NewUser>,
) -> ApiResult<Response> {
    let user = add_user(&st, &p, &u).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

pub async fn patch_user(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
    JsonBody(b): JsonBody<UserPatch>,
) -> ApiResult<Json<Value>> {
    let cur = st
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id}")))?;
    let role = match b.role {
        Some(r) => r
            .parse::<Role>()
            .map_err(|e| ApiError::new(ErrorKind::Validation, format!("role: {e}")))?,
        None => cur.role,
    };
    let u = st
        .store
        .update_user(id, role, b.disabled.unwrap_or(cur.disabled), &p.actor())
        .await?;
    Ok(Json(serde_json::to_value(u).expect("users serialise")))
}

pub async fn reset_mfa(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    st.store.set_totp(id, None, None, &p.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_mfa_policy(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    let m: serde_json::Map<_, _> = st
        .store
        .mfa_policy()
        .await?
        .into_iter()
        .map(|(r, b)| (r.as_str().to_owned(), json!(b)))
        .collect();
    Ok(Json(Value::Object(m)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaPolicyBody {
    pub role: String,
    pub required: bool,
}

pub async fn put_mfa_policy(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<MfaPolicyBody>,
) -> ApiResult<StatusCode> {
    let role: Role = b
        .role
        .parse()
        .map_err(|e| ApiError::new(ErrorKind::Validation, format!("role: {e}")))?;
    st.store
        .set_mfa_required(role, b.required, &p.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_tokens(State(st): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "items": st.store.list_api_tokens(Some(p.user.id)).await? }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<String>,
    /// Days until expiry, 1–365 (default 90).
    pub expires_in_days: Option<i64>,
}

/// Creates a token for the caller; only from a browser session, and only
/// with scopes the caller's role has.
pub async fn make_token(
    st: &AppState,
    p: &Principal,
    b: &NewToken,
) -> ApiResult<(String, pumpward_store::ApiToken)> {
    if p.token.is_some() {
        return Err(ApiError::forbidden(
            "an API token cannot create tokens; use a browser session",
        ));
    }
    let name = pumpward_core::inventory::required_text(&b.name, 100)
        .map_err(|e| ApiError::new(ErrorKind::Validation, format!("name: {e}")))?;
    let mut scopes = Vec::new();
    for s in &b.scopes {
        let perm: Permission = s
            .parse()
            .map_err(|e| ApiError::new(ErrorKind::Validation, format!("scopes: {e}")))?;
        if !p.user.role.allows(perm) {
            return Err(ApiError::forbidden(format!(
                "your role does not have {perm}, so a token of yours cannot"
            )));
        }
        scopes.push(perm);
    }
    if scopes.is_empty() {
        return Err(ApiError::new(
            ErrorKind::Validation,
            "scopes: name at least one permission",
        ));
    }
    let days = b.expires_in_days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(ApiError::new(
            ErrorKind::Validation,
            "expires_in_days: between 1 and 365",
        ));
    }
    let secret = format!("{TOKEN_PREFIX}{}", random_token());
    let t = st
        .store
        .create_api_token(
            &p.user,
            &name,
            &token_hash(&secret),
            &scopes,
            time::OffsetDateTime::now_utc() + time::Duration::days(days),
            &p.actor(),
        )
        .await?;
    Ok((secret, t))
}

pub async fn create_token(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(b): JsonBody<NewToken>,
) -> ApiResult<Response> {
    let (secret, t) = make_token(&st, &p, &b).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": secret, "info": t, "note": "shown once; store it now" })),
    )
        .into_response())
}

pub async fn revoke_token(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    st.store
        .revoke_api_token(id, Some(p.user.id), &p.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub object: Option<String>,
    pub outcome: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

impl AuditQuery {
    pub fn to_filter(&self) -> ApiResult<AuditFilter> {
        let ne = |s: &Option<String>| {
            s.as_ref()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let time = |s: &Option<String>, f: &str| {
            ne(s)
                .map(|v| {
                    pumpward_core::timefmt::parse(&v).map_err(|_| {
                        ApiError::bad_request(format!("{f}: {v:?} is not an RFC 3339 time"))
                    })
                })
                .transpose()
        };
        Ok(AuditFilter {
            actor: ne(&self.actor),
            action: ne(&self.action),
            object: ne(&self.object),
            outcome: ne(&self.outcome)
                .map(|o| o.parse())
                .transpose()
                .map_err(|e| ApiError::bad_request(format!("outcome: {e}")))?,
            since: time(&self.since, "since")?,
            until: time(&self.until, "until")?,
            before_seq: self.before,
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
        })
    }
}

pub async fn list_audit(
    State(st): State<AppState>,
    _: Principal,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    let q: AuditQuery = parse_query(uri.query())?;
    let items = st.store.audit_list(&q.to_filter()?).await?;
    let next = items.last().map(|r| r.seq).filter(|&s| s > 1);
    Ok(Json(json!({ "items": items, "next_before": next })))
}

pub async fn verify_audit(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    let r = st.store.audit_verify().await?;
    let msg = r.error.as_ref().map(|e| e.to_string());
    let first_bad = r.error.as_ref().map(|e| e.first_bad_seq());
    Ok(Json(
        json!({ "intact": r.error.is_none(), "records": r.records, "head": r.head, "error": msg, "first_bad_seq": first_bad }),
    ))
}

/// Answers unknown paths under /api with a problem, not an HTML page.
pub async fn api_not_found(headers: HeaderMap) -> ApiError {
    let _ = headers;
    ApiError::not_found("this API route")
}
