//! REST handlers of the certificate authority and the fleet's connections.

use crate::api::{parse_query, JsonBody};
use crate::auth::Principal;
use crate::pki::CaService;
use crate::problem::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pumpward_pki::RevocationReason;
use pumpward_store::{CertFilter, CertKind, CertificateRecord};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

fn ca(st: &AppState) -> ApiResult<&Arc<CaService>> {
    st.pki.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorKind::Unavailable,
            "this server runs without its certificate authority",
        )
    })
}

pub async fn ca_pem(State(st): State<AppState>) -> Response {
    match &st.pki {
        Some(c) => crate::gateway::ca_response(c),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

pub async fn crl_der(State(st): State<AppState>) -> Response {
    match &st.pki {
        Some(c) => crate::gateway::crl_response(c, false).await,
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

pub async fn crl_pem(State(st): State<AppState>) -> Response {
    match &st.pki {
        Some(c) => crate::gateway::crl_response(c, true).await,
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CertQuery {
    asset_id: Option<String>,
    kind: Option<String>,
    revoked: Option<bool>,
    /// Only unrevoked certificates expiring within this many days.
    expiring_days: Option<i64>,
    after: Option<String>,
    #[serde(default)]
    limit: i64,
}

pub async fn list_certificates(
    State(st): State<AppState>,
    _: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: CertQuery = parse_query(q.as_deref())?;
    let kind = match q.kind.as_deref() {
        None => None,
        Some("device") => Some(CertKind::Device),
        Some("server") => Some(CertKind::Server),
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "kind {k:?}: use device or server"
            )))
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let expiring = match q.expiring_days {
        None => None,
        Some(d) if (0..=3650).contains(&d) => Some((now + time::Duration::days(d), now)),
        Some(_) => return Err(ApiError::bad_request("expiring_days must be 0 to 3650")),
    };
    let (items, next) = st
        .store
        .list_certificates(&CertFilter {
            asset_id: q.asset_id,
            kind,
            expiring,
            revoked: q.revoked,
            after: q.after,
            limit: q.limit,
        })
        .await?;
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

pub async fn get_certificate(
    State(st): State<AppState>,
    _: Principal,
    Path(serial): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = st.store.certificate(&serial).await?;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(c.pem.as_bytes())
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("stored certificate: {e}")))?;
    let info = pumpward_pki::inspect_certificate(&der).ok();
    Ok(Json(json!({
        "certificate": c,
        "issuer": info.as_ref().map(|i| i.issuer.clone()),
        "mac": info.as_ref().and_then(|i| i.mac.clone()),
        "dns_names": info.as_ref().map(|i| i.dns_names.clone()),
        "is_ca": info.as_ref().map(|i| i.is_ca),
    })))
}

use rustls::pki_types::pem::PemObject;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    reason: String,
}

pub async fn revoke_certificate(
    State(st): State<AppState>,
    p: Principal,
    Path(serial): Path<String>,
    JsonBody(b): JsonBody<RevokeBody>,
) -> ApiResult<Json<Value>> {
    let reason: RevocationReason = b
        .reason
        .parse()
        .map_err(|e: pumpward_pki::PkiError| ApiError::bad_request(format!("reason: {e}")))?;
    let rec = revoke_and_disconnect(&st, &serial, reason, &p.actor()).await?;
    Ok(Json(json!({ "certificate": rec })))
}

/// Revokes a certificate through the CA (which records it, publishes a new
/// CRL and tells the gateway) and closes the asset's open device sessions
/// at once. The one revocation path of the API and the web UI.
pub async fn revoke_and_disconnect(
    st: &AppState,
    serial: &str,
    reason: RevocationReason,
    actor: &pumpward_store::Actor,
) -> ApiResult<CertificateRecord> {
    let ca = ca(st)?;
    let rec = ca.revoke(serial, reason, actor).await.map_err(|e| match e
        .downcast::<pumpward_store::StoreError>()
    {
        Ok(s) => ApiError::from(s),
        Err(e) => ApiError::new(ErrorKind::Internal, e.to_string()),
    })?;
    if let Some(asset) = &rec.asset_id {
        st.sessions
            .close_asset(asset, "the certificate was revoked");
    }
    Ok(rec)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentCodeBody {}

pub async fn create_enrollment_code(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(_): JsonBody<EnrollmentCodeBody>,
) -> ApiResult<Response> {
    let ca = ca(&st)?;
    let (code, e) = ca.create_enrollment_code(&id, &p.actor()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "code": code,
            "asset_id": e.asset_id,
            "device_serial": e.device_serial,
            "expires_at": e.expires_at,
        })),
    )
        .into_response())
}

pub async fn fleet(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "connected": st.sessions.connected() })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// `request_status` or `renew_certificate`.
    command: String,
    reason: Option<String>,
}

/// Sends a command to a connected pump (202), or says it is not connected (409).
pub async fn send_command(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CommandBody>,
) -> ApiResult<Response> {
    use pumpward_proto::message::Command;
    let command = match b.command.as_str() {
        "request_status" => Command::RequestStatus,
        "renew_certificate" => Command::RenewCertificate {
            reason: b.reason.clone(),
            before: None,
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "command {other:?}: use request_status or renew_certificate"
            )))
        }
    };
    st.store.asset(&id).await?;
    if !st.sessions.send_command(&id, command) {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            format!("asset {id} is not connected to the gateway"),
        ));
    }
    st.store
        .audit(
            p.actor()
                .entry("device.command", pumpward_core::audit::Outcome::Success)
                .object(format!("asset:{id}"))
                .reason(b.command.clone()),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "sent": b.command, "asset_id": id })),
    )
        .into_response())
}
