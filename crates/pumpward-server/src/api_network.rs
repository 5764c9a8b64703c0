//! REST handlers of the network zone policy (versioned in the store) and
//! of the live observations (observed conduits, unknown devices).
//!
//! A new version is checked first ([`pumpward_net::review`]: the TOML, the
//! policy's consistency, and the inventory's assets against it); any error
//! refuses it with 422, each error with its line, and nothing is stored.
//! Warnings are returned with a saved version.

use crate::api::JsonBody;
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult, ErrorKind, FieldProblem};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pumpward_net::{Issue, Review, Severity};
use pumpward_store::{PolicyVersion, Store};
use serde::Deserialize;
use serde_json::{json, Value};

fn version_view(v: &PolicyVersion, with_text: bool) -> Value {
    let mut j = json!({
        "version": v.version,
        "name": v.name,
        "digest": v.digest,
        "author": v.author,
        "created_at": v.created_at,
        "comment": v.comment,
    });
    if with_text {
        j["toml"] = json!(v.toml);
    }
    j
}

/// The current policy text and its version (None: the starter policy,
/// nothing saved yet).
pub async fn current_text(
    store: &Store,
) -> pumpward_store::Result<(Option<PolicyVersion>, String)> {
    Ok(match store.current_network_policy().await? {
        Some(v) => {
            let text = v.toml.clone();
            (Some(v), text)
        }
        None => (None, pumpward_net::STARTER_POLICY_TOML.to_owned()),
    })
}

/// Checks `text` against the inventory.
pub async fn review(store: &Store, text: &str) -> pumpward_store::Result<Review> {
    let (assets, models) = store
        .network_identities(pumpward_net::inventory::Listing::All)
        .await?;
    Ok(pumpward_net::review(text, &assets, &models))
}

fn issue_view(i: &Issue) -> Value {
    json!({
        "line": i.line,
        "severity": match i.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "message": i.message,
    })
}

/// `GET /api/v1/network/policy`: the policy in force.
pub async fn get_policy(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    let (v, text) = current_text(&st.store).await?;
    Ok(Json(match v {
        Some(v) => {
            let mut j = version_view(&v, true);
            j["starter"] = json!(false);
            j
        }
        None => json!({
            "version": null,
            "name": pumpward_net::starter_policy().name,
            "starter": true,
            "toml": text,
        }),
    }))
}

/// `GET /api/v1/network/policy/versions`: every saved version, newest first.
pub async fn list_versions(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    let vs = st.store.network_policy_versions().await?;
    Ok(Json(json!({
        "items": vs.iter().map(|v| version_view(v, false)).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/network/policy/versions/{version}`: one version with its text.
pub async fn get_version(
    State(st): State<AppState>,
    _: Principal,
    Path(version): Path<i64>,
) -> ApiResult<Json<Value>> {
    Ok(Json(version_view(
        &st.store.network_policy_version(version).await?,
        true,
    )))
}

/// The body of `PUT /api/v1/network/policy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPolicy {
    /// The whole policy document, TOML.
    toml: String,
    #[serde(default)]
    comment: String,
    /// The version the edit started from; absent or null when it started
    /// from the starter policy. A save on an outdated base is 409.
    #[serde(default)]
    base_version: Option<i64>,
}

/// `PUT /api/v1/network/policy`: checks and saves a new version.
pub async fn put_policy(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(n): JsonBody<NewPolicy>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let saved = save(&st, &p, &n.toml, &n.comment, n.base_version).await?;
    Ok((StatusCode::CREATED, Json(saved)))
}

/// The one path that saves a version (API and editor page): review, refuse
/// with every error, or store and make the evaluator reload.
pub async fn save(
    st: &AppState,
    p: &Principal,
    text: &str,
    comment: &str,
    base: Option<i64>,
) -> ApiResult<Value> {
    let r = review(&st.store, text).await?;
    if !r.acceptable() {
        return Err(refusal(&r));
    }
    let v = st
        .store
        .save_network_policy(text, comment, base, &p.actor())
        .await?;
    st.network.policy_saved();
    let mut j = version_view(&v, false);
    j["warnings"] = json!(r.issues.iter().map(issue_view).collect::<Vec<_>>());
    Ok(j)
}

/// A 422 naming every error of a review, `field` = `line N` where known.
pub fn refusal(r: &Review) -> ApiError {
    let errors: Vec<FieldProblem> = r
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
        .map(|i| FieldProblem {
            field: i
                .line
                .map_or_else(|| "policy".to_owned(), |l| format!("line {l}")),
            message: i.message.clone(),
        })
        .collect();
    ApiError {
        kind: ErrorKind::Validation,
        detail: format!("the policy has {} error(s) and was not saved", errors.len()),
        errors,
    }
}

/// `GET /api/v1/network/observed`: observed conduits and unknown devices.
pub async fn observed(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(json!(st.network.view())))
}

/// The body of `POST /api/v1/network/quarantine`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewQuarantine {
    mac: pumpward_core::inventory::MacAddress,
    /// Absent: the addresses the live collectors saw the MAC at.
    #[serde(default)]
    addresses: Option<Vec<std::net::IpAddr>>,
    /// Absent: the zone the live collectors saw the MAC in.
    #[serde(default)]
    zone: Option<String>,
    reason: String,
}

/// The one path that quarantines a device (API and page): the addresses
/// and zone given, or else those of the MAC's sightings among the unknown
/// devices; stored and audited by the store.
pub async fn quarantine(
    st: &AppState,
    p: &Principal,
    mac: pumpward_core::inventory::MacAddress,
    addresses: Option<Vec<std::net::IpAddr>>,
    zone: Option<String>,
    reason: &str,
) -> ApiResult<pumpward_store::QuarantineRecord> {
    let seen = st.network.sightings_of(mac.octets());
    let addresses = addresses.unwrap_or_else(|| seen.iter().map(|(_, a)| *a).collect::<Vec<_>>());
    let zone = zone
        .filter(|z| !z.trim().is_empty())
        .or_else(|| seen.first().map(|(z, _)| z.clone()));
    let d = pumpward_net::QuarantinedDevice {
        mac,
        addresses,
        zone,
        reason: reason.to_owned(),
    };
    Ok(st.store.quarantine_device(&d, &p.actor()).await?)
}

/// `GET /api/v1/network/quarantine`: the quarantine list in force
/// (`?released=true`: with the released entries, as history).
pub async fn list_quarantine(
    State(st): State<AppState>,
    _: Principal,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let released = match q.get("released").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "released: {other:?} is not true or false"
            )))
        }
    };
    Ok(Json(json!({
        "items": st.store.network_quarantine(released).await?,
    })))
}

/// `POST /api/v1/network/quarantine`: quarantines a device.
pub async fn post_quarantine(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(n): JsonBody<NewQuarantine>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let r = quarantine(&st, &p, n.mac, n.addresses, n.zone, &n.reason).await?;
    Ok((StatusCode::CREATED, Json(json!(r))))
}

/// The body of `POST /api/v1/network/quarantine/{id}/release`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    reason: String,
}

/// `POST /api/v1/network/quarantine/{id}/release`.
pub async fn release_quarantine(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<Release>,
) -> ApiResult<Json<Value>> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a quarantine id")))?;
    let r = st
        .store
        .release_quarantined_device(id, &b.reason, &p.actor())
        .await?;
    Ok(Json(json!(r)))
}
