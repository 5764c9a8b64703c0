//! The pumps' listener: EST enrollment (RFC 7030) and the device channel,
//! on one TLS port.
//!
//! TLS here is stricter than on the API listener. A client certificate is
//! *requested* on every connection and, when one is sent, it must chain to
//! the issuing CA, be in its validity period and not be on the current CRL;
//! rustls checks all of that during the handshake, and a failed handshake
//! is counted and recorded as a `gateway.auth_failure` event with the
//! source address and reason. A connection without a certificate may only
//! use the EST bootstrap routes (`cacerts`, `csrattrs`, `simpleenroll` with
//! a one-time code). The device channel is chosen by ALPN
//! (`pumpward-device/1`) and needs a certificate that the store knows,
//! unrevoked, for an asset whose lifecycle state may connect: the asset is
//! taken from the certificate, never from anything the pump says.
//!
//! Revocation rebuilds the TLS configuration (rustls fixes CRLs when the
//! verifier is built), so new handshakes see the new CRL at once; open
//! device sessions watch the same signal and close themselves.

use crate::pki::{CaService, EnrollError};
use crate::tls::PeerAddr;
use anyhow::{anyhow, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use pumpward_core::audit::Outcome;
use pumpward_store::{Actor, CertificateRecord, Store};
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The ALPN protocol id of the device channel, version 1.
pub const DEVICE_ALPN: &[u8] = b"pumpward-device/1";

/// The verified client certificate of a connection, if it sent one.
#[derive(Clone)]
pub struct ClientCert(pub Option<CertificateDer<'static>>);

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct GatewayState {
    pub ca: Arc<CaService>,
    pub store: Store,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub sessions: Arc<crate::device::Sessions>,
    pub events: crate::device::EventWriter,
    /// The detection engine, which sees every refused connection.
    pub detection: Option<crate::detection::Detection>,
}

/// Builds the gateway's TLS configuration from the CA's current CRL.
pub async fn tls_config(
    ca: &CaService,
    identity: &crate::tls::Identity,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    // The issuing CA itself is the trust anchor: only certificates it
    // issued are accepted, not anything else the hospital's root signed.
    roots
        .add(CertificateDer::from(ca.ca().issuing_der().to_vec()))
        .map_err(|e| anyhow!("issuing CA as trust anchor: {e}"))?;
    let crl = ca.current_crl_der().await?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls([crl])
        .only_check_end_entity_revocation()
        .allow_unauthenticated()
        .build()
        .map_err(|e| anyhow!("client certificate verifier: {e}"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.certs.clone(), identity.key.clone_key())?;
    cfg.alpn_protocols = vec![DEVICE_ALPN.to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The gateway's HTTP routes (EST and the CRL).
pub fn router(state: GatewayState) -> Router {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/csrattrs", get(csrattrs))
        .route("/.well-known/est/simpleenroll", post(simpleenroll))
        .route("/.well-known/est/simplereenroll", post(simplereenroll))
        .route(
            "/pki/crl",
            get(|State(st): State<GatewayState>| async move { crl_response(&st.ca, false).await }),
        )
        .route(
            "/pki/crl.pem",
            get(|State(st): State<GatewayState>| async move { crl_response(&st.ca, true).await }),
        )
        .route("/device/v1/library/{digest}", get(library_envelope))
        .route(
            "/pki/ca.pem",
            get(|State(st): State<GatewayState>| async move { ca_response(&st.ca) }),
        )
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            pumpward_pki::EST_MAX_BODY_BYTES,
        ))
        .with_state(state)
}

/// The current CRL, DER (`application/pkix-crl`, RFC 5280 §4.2.1.13) or PEM.
pub async fn crl_response(ca: &CaService, pem: bool) -> Response {
    use rustls::pki_types::pem::PemObject;
    let crl = match ca.current_crl().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot produce the CRL");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    if pem {
        return ([(header::CONTENT_TYPE, "application/x-pem-file")], crl.pem).into_response();
    }
    match rustls::pki_types::CertificateRevocationListDer::from_pem_slice(crl.pem.as_bytes()) {
        Ok(der) => (
            [(header::CONTENT_TYPE, "application/pkix-crl")],
            der.to_vec(),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The issuing CA and its chain, PEM, for clients to trust.
pub fn ca_response(ca: &CaService) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        ca.chain_pem(),
    )
        .into_response()
}

const PKCS7_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";

fn pkcs7_response(certs: &[Vec<u8>]) -> Response {
    match pumpward_pki::certs_only_pkcs7(certs) {
        Ok(der) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(PKCS7_CERTS_ONLY),
                ),
                (
                    header::HeaderName::from_static("content-transfer-encoding"),
                    HeaderValue::from_static("base64"),
                ),
            ],
            pumpward_pki::encode_est_body(&der),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode PKCS#7");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn cacerts(State(st): State<GatewayState>) -> Response {
    pkcs7_response(&st.ca.ca().ca_certs_der())
}

/// RFC 7030 §4.5: what the CA would like in a CSR. ecdsa-with-SHA256 as the
/// signature algorithm and the device's serialNumber in the subject; the CA
/// ignores everything else a CSR asks for anyway.
async fn csrattrs() -> Response {
    // SEQUENCE { OID 1.2.840.10045.4.3.2, OID 2.5.4.5 }
    const CSR_ATTRS: &[u8] = &[
        0x30, 0x0f, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x06, 0x03, 0x55,
        0x04, 0x05,
    ];
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/csrattrs"),
            ),
            (
                header::HeaderName::from_static("content-transfer-encoding"),
                HeaderValue::from_static("base64"),
            ),
        ],
        pumpward_pki::encode_est_body(CSR_ATTRS),
    )
        .into_response()
}

/// The asset id and code from `Authorization: Basic` (or a bearer code).
fn enrollment_credentials(headers: &HeaderMap) -> Option<(Option<String>, String)> {
    use base64::Engine;
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(b) = v.strip_prefix("Basic ") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, code) = text.split_once(':')?;
        let user = (!user.is_empty()).then(|| user.to_owned());
        return Some((user, code.to_owned()));
    }
    v.strip_prefix("Bearer ")
        .map(|c| (None, c.trim().to_owned()))
}

async fn simpleenroll(
    State(st): State<GatewayState>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = async {
        let Some((claimed, code)) = enrollment_credentials(&headers) else {
            return Err(EnrollError::Unauthorized(
                "enrollment needs a one-time code (HTTP Basic: <asset id>:<code>)".into(),
            ));
        };
        let csr = pumpward_pki::decode_est_csr(&body)?;
        let issued = st
            .ca
            .enroll_with_code(&code, &csr, claimed.as_deref(), Some(peer.ip().to_string()))
            .await?;
        Ok(issued)
    }
    .await;
    est_answer(&st, "est.enroll", peer, r).await
}

async fn simplereenroll(
    State(st): State<GatewayState>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    Extension(ClientCert(cert)): Extension<ClientCert>,
    body: Bytes,
) -> Response {
    let r = async {
        let current = match &cert {
            Some(c) => known_certificate(&st.store, c).await?,
            None => {
                return Err(EnrollError::Unauthorized(
                    "re-enrollment needs the current device certificate (mutual TLS)".into(),
                ))
            }
        };
        let csr = pumpward_pki::decode_est_csr(&body)?;
        st.ca
            .reenroll(&current, &csr, Some(peer.ip().to_string()))
            .await
    }
    .await;
    est_answer(&st, "est.reenroll", peer, r).await
}

/// `GET /device/v1/library/<sha256>`: the signed drug-library envelope a
/// rollout announced under that digest, for a pump that authenticates with
/// its own valid device certificate (mutual TLS, as on the device channel).
/// The pump verifies the envelope itself; this only decides who may read it.
async fn library_envelope(
    State(st): State<GatewayState>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    Extension(ClientCert(cert)): Extension<ClientCert>,
    axum::extract::Path(digest): axum::extract::Path<String>,
) -> Response {
    let who = match &cert {
        None => Err("a library fetch needs the device certificate (mutual TLS)".to_owned()),
        Some(c) => match known_certificate(&st.store, c).await {
            Ok(r) if r.is_valid_at(time::OffsetDateTime::now_utc()) && r.asset_id.is_some() => {
                Ok(r)
            }
            Ok(r) => Err(format!(
                "certificate {} is revoked, expired or names no asset",
                r.serial
            )),
            Err(e) => Err(e.to_string()),
        },
    };
    if let Err(reason) = who {
        auth_failure(&st, peer, &format!("library fetch: {reason}")).await;
        return (StatusCode::UNAUTHORIZED, format!("{reason}\n")).into_response();
    }
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (
            StatusCode::BAD_REQUEST,
            "the library digest is 64 hex digits\n",
        )
            .into_response();
    }
    match st.store.library_envelope_by_digest(&digest).await {
        Ok(Some(bytes)) => (
            [(header::CONTENT_TYPE, crate::api_library::COSE_MEDIA_TYPE)],
            bytes,
        )
            .into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            "no rollout announced a library with this digest\n",
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read a library envelope");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// The store's record of a certificate the TLS layer verified.
pub async fn known_certificate(
    store: &Store,
    der: &CertificateDer<'_>,
) -> Result<CertificateRecord, EnrollError> {
    let info = pumpward_pki::inspect_certificate(der)
        .map_err(|e| EnrollError::Unauthorized(format!("unreadable client certificate: {e}")))?;
    match store.certificate(&info.serial_hex).await {
        Ok(c) if c.fingerprint == info.fingerprint => Ok(c),
        Ok(_) | Err(pumpward_store::StoreError::NotFound { .. }) => Err(EnrollError::Unauthorized(
            format!("certificate {} is not one this CA issued", info.serial_hex),
        )),
        Err(e) => Err(EnrollError::Internal(e.into())),
    }
}

/// Answers an EST request; a refusal is recorded with the source address
/// and reason (never the code or the CSR).
async fn est_answer(
    st: &GatewayState,
    action: &str,
    peer: SocketAddr,
    r: Result<pumpward_pki::IssuedCertificate, EnrollError>,
) -> Response {
    let (status, msg) = match r {
        Ok(issued) => return pkcs7_response(&[issued.der]),
        Err(EnrollError::Unauthorized(m)) => (StatusCode::UNAUTHORIZED, m),
        Err(EnrollError::Forbidden(m)) => (StatusCode::FORBIDDEN, m),
        Err(EnrollError::BadRequest(m)) => (StatusCode::BAD_REQUEST, m),
        Err(EnrollError::Internal(e)) => {
            tracing::error!(error = %e, "EST request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error".to_owned(),
            )
        }
    };
    st.metrics.est_refusals.inc();
    let entry = Actor {
        id: "device:unauthenticated".into(),
        source: Some(peer.ip().to_string()),
    }
    .entry(action, Outcome::Denied)
    .reason(msg.clone());
    if let Err(e) = st.store.audit(entry).await {
        tracing::error!(error = %e, "cannot record an EST refusal");
    }
    let mut res = (status, format!("{msg}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"pumpward-est\""),
        );
    }
    res
}

/// The gateway's current TLS configuration, replaced after each revocation.
pub type LiveConfig = Arc<RwLock<Arc<rustls::ServerConfig>>>;

/// Runs the gateway on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    st: GatewayState,
    identity: crate::tls::Identity,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let live: LiveConfig = Arc::new(RwLock::new(Arc::new(
        tls_config(&st.ca, &identity).await.context("gateway TLS")?,
    )));
    // Rebuild the TLS configuration whenever a certificate is revoked.
    let mut revocations = st.ca.revocations();
    let (ca, live2, id2) = (st.ca.clone(), live.clone(), identity);
    let rebuild = tokio::spawn(async move {
        while revocations.changed().await.is_ok() {
            match tls_config(&ca, &id2).await {
                Ok(c) => *live2.write().expect("config lock") = Arc::new(c),
                Err(e) => {
                    tracing::error!(error = %e, "cannot rebuild the gateway TLS configuration")
                }
            }
        }
    });
    let app = router(st.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    while let Some((tcp, peer)) = crate::tls::next_connection(&listener, shutdown.as_mut()).await {
        let _ = tcp.set_nodelay(true);
        let cfg = live.read().expect("config lock").clone();
        let (app, st, watcher) = (app.clone(), st.clone(), graceful.watcher());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                TlsAcceptor::from(cfg).accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return auth_failure(&st, peer, &e.to_string()).await,
                Err(_) => return auth_failure(&st, peer, "TLS handshake timed out").await,
            };
            let (_, conn) = tls.get_ref();
            let cert = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned());
            if conn.alpn_protocol() == Some(DEVICE_ALPN) {
                crate::device::run_session(st, tls, peer, cert).await;
                return;
            }
            let mut ext = axum::http::Extensions::new();
            ext.insert(PeerAddr(peer));
            ext.insert(ClientCert(cert));
            crate::tls::serve_http(tls, app, watcher, peer, ext).await;
        });
    }
    rebuild.abort();
    st.sessions.close_all();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
    }
    Ok(())
}

/// Counts and records a connection that failed TLS or authentication.
pub(crate) async fn auth_failure(st: &GatewayState, peer: SocketAddr, reason: &str) {
    st.metrics.gateway_auth_failures.inc();
    tracing::info!(%peer, reason, "gateway connection refused");
    let entry = Actor {
        id: "device:unauthenticated".into(),
        source: Some(peer.ip().to_string()),
    }
    .entry("gateway.auth_failure", Outcome::Denied)
    .reason(reason.to_owned());
    if let Err(e) = st.store.audit(entry).await {
        tracing::error!(error = %e, "cannot record a gateway refusal");
    }
    if let Some(d) = &st.detection {
        d.observe(refusal_event(peer, reason));
    }
}

/// A unique id for an event the gateway observes now: its clock in
/// nanoseconds and a counter (the id is stored with the event, so a replay
/// after a restart reuses it).
fn gateway_event_id(what: &str, now: time::OffsetDateTime) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("gateway:{what}:{}:{n}", now.unix_timestamp_nanos())
}

/// A pump's accepted connection as a detection event (a certificate used
/// from two addresses at once is seen across these).
pub(crate) fn connection_event(
    asset_id: &str,
    peer: SocketAddr,
    fingerprint: &str,
) -> pumpward_detect::Event {
    let now = time::OffsetDateTime::now_utc();
    pumpward_detect::Event::observed(
        gateway_event_id("connection", now),
        now,
        asset_id.parse().ok(),
        pumpward_detect::event::Body::GatewayConnection {
            peer: peer.ip(),
            certificate: fingerprint.to_owned(),
        },
    )
}

/// A certificate in use by two devices at once.
pub(crate) fn concurrent_use_event(
    asset_id: &str,
    fingerprint: &str,
    mut addresses: Vec<std::net::IpAddr>,
) -> pumpward_detect::Event {
    use pumpward_detect::event::{Body, CertificateAnomalyKind, MAX_ANOMALY_ADDRESSES};
    addresses.sort();
    addresses.dedup();
    addresses.truncate(MAX_ANOMALY_ADDRESSES);
    let now = time::OffsetDateTime::now_utc();
    pumpward_detect::Event::observed(
        gateway_event_id("concurrent", now),
        now,
        asset_id.parse().ok(),
        Body::CertificateAnomaly {
            anomaly: CertificateAnomalyKind::ConcurrentAddresses,
            certificate: fingerprint.to_owned(),
            addresses,
        },
    )
}

/// The firmware a pump reported in its hello, as a detection event, when
/// its digest is not the one expected for its model and version.
pub(crate) fn firmware_event(
    asset_id: &str,
    model: &str,
    version: &str,
    digest: &str,
) -> pumpward_detect::Event {
    let now = time::OffsetDateTime::now_utc();
    pumpward_detect::Event::observed(
        gateway_event_id("firmware", now),
        now,
        asset_id.parse().ok(),
        pumpward_detect::event::Body::FirmwareChanged {
            model: model.to_owned(),
            version: version.to_owned(),
            digest: digest.to_owned(),
        },
    )
}

/// A refused connection as a detection event.
fn refusal_event(peer: SocketAddr, reason: &str) -> pumpward_detect::Event {
    use pumpward_detect::event::MAX_TEXT_LEN;
    let now = time::OffsetDateTime::now_utc();
    let mut reason = reason.to_owned();
    if reason.len() > MAX_TEXT_LEN {
        let mut cut = MAX_TEXT_LEN;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    pumpward_detect::Event::auth_failure(gateway_event_id("refusal", now), now, peer.ip(), reason)
}
