//! EST client (RFC 7030): `/cacerts`, `/simpleenroll` (HTTP Basic with the
//! one-time enrollment code) and `/simplereenroll` (mutual TLS with the
//! current certificate).
//!
//! Requests carry base64 DER PKCS#10 (`application/pkcs10`); responses are
//! base64 certs-only PKCS#7 (`application/pkcs7-mime; smime-type=certs-only`)
//! and are parsed with `pumpward_pki`, never trusted blindly: the caller
//! checks that the certificate names this pump
//! ([`crate::DeviceIdentity::from_parts`]).

use std::time::Duration;

use pumpward_pki::{decode_est_csr, encode_est_body, parse_certs_only_pkcs7};

use crate::identity::{DeviceIdentity, TrustAnchors};
use crate::AgentError;

/// Largest EST response read (certificates are a few KiB).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Why an EST request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EstError {
    /// 401: the enrollment code is wrong, used or expired (or the client
    /// certificate was not accepted for re-enrollment). A person must act.
    #[error("EST refused the credentials (401): {0}")]
    Unauthorized(String),
    /// 403: the CSR names another asset, or the asset may not enroll.
    #[error("EST forbade the enrollment (403): {0}")]
    Forbidden(String),
    /// 400: the server found the request malformed.
    #[error("EST found the request malformed (400): {0}")]
    BadRequest(String),
    /// Any other HTTP status.
    #[error("EST answered HTTP {0}: {1}")]
    Status(u16, String),
    /// No answer (connection, TLS, timeout).
    #[error("EST request failed: {0}")]
    Transport(String),
    /// An answer that is not a certs-only PKCS#7 body.
    #[error("EST response is unusable: {0}")]
    Body(String),
}

impl EstError {
    /// Whether retrying later with the same credentials may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Status(s, _) => *s >= 500 || *s == 429 || *s == 408,
            _ => false,
        }
    }
}

/// An EST client for one base URL (`https://<gateway>/.well-known/est/`).
#[derive(Clone, Debug)]
pub struct EstClient {
    base: reqwest::Url,
    http: reqwest::Client,
}

impl EstClient {
    /// A client that authenticates the server with `trust` and presents
    /// `identity` when given (for `/simplereenroll`). Without an identity the
    /// client can be shared by a whole fleet.
    pub fn new(
        base_url: &str,
        trust: &TrustAnchors,
        identity: Option<&DeviceIdentity>,
    ) -> Result<Self, AgentError> {
        let mut base = reqwest::Url::parse(base_url)
            .map_err(|e| AgentError::Config(format!("EST base URL {base_url:?}: {e}")))?;
        if base.scheme() != "https" {
            return Err(AgentError::Config(format!(
                "EST base URL {base_url:?} is not https"
            )));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let tls = trust.client_config(identity, &[b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(if identity.is_some() { 0 } else { 16 })
            .build()
            .map_err(|e| AgentError::Tls(format!("EST client: {e}")))?;
        Ok(Self { base, http })
    }

    fn url(&self, op: &str) -> reqwest::Url {
        self.base
            .join(op)
            .expect("a relative path joins any base URL")
    }

    /// `GET cacerts`: the issuing CA and its chain.
    pub async fn cacerts(&self) -> Result<Vec<Vec<u8>>, EstError> {
        let r = self.http.get(self.url("cacerts")).send().await;
        certs_response(r).await
    }

    /// `POST simpleenroll` with HTTP Basic `asset_id:code`.
    pub async fn simple_enroll(
        &self,
        asset_id: &str,
        code: &str,
        csr_der: &[u8],
    ) -> Result<Vec<Vec<u8>>, EstError> {
        let r = self
            .http
            .post(self.url("simpleenroll"))
            .basic_auth(asset_id, Some(code))
            .header(reqwest::header::CONTENT_TYPE, "application/pkcs10")
            .body(encode_est_body(csr_der))
            .send()
            .await;
        certs_response(r).await
    }

    /// `POST simplereenroll`, authenticated by this client's certificate.
    pub async fn simple_reenroll(&self, csr_der: &[u8]) -> Result<Vec<Vec<u8>>, EstError> {
        let r = self
            .http
            .post(self.url("simplereenroll"))
            .header(reqwest::header::CONTENT_TYPE, "application/pkcs10")
            .body(encode_est_body(csr_der))
            .send()
            .await;
        certs_response(r).await
    }
}

impl EstClient {
    /// `GET /device/v1/library/<digest>` on the same gateway: the signed
    /// library envelope the gateway announced, fetched over the pump's own
    /// mutually authenticated TLS (this client must carry the device
    /// identity). At most [`pumpward_druglib::envelope::MAX_ENVELOPE_BYTES`]
    /// are read; the caller verifies everything else.
    pub async fn library_envelope(&self, digest: &str) -> Result<Vec<u8>, EstError> {
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EstError::BadRequest(format!(
                "library digest {:?} is not 64 hex digits",
                digest.chars().take(80).collect::<String>()
            )));
        }
        let url = self.url(&format!(
            "/device/v1/library/{}",
            digest.to_ascii_lowercase()
        ));
        let mut r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| EstError::Transport(error_chain(&e)))?;
        let status = r.status().as_u16();
        let max = pumpward_druglib::envelope::MAX_ENVELOPE_BYTES;
        let mut body = Vec::new();
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|e| EstError::Transport(error_chain(&e)))?
        {
            if body.len() + chunk.len() > max {
                return Err(EstError::Body(format!("more than {max} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        if status != 200 {
            let text: String = String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            return Err(match status {
                401 => EstError::Unauthorized(text),
                403 => EstError::Forbidden(text),
                400 => EstError::BadRequest(text),
                s => EstError::Status(s, text),
            });
        }
        Ok(body)
    }
}

async fn certs_response(
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<Vec<Vec<u8>>, EstError> {
    let mut r = r.map_err(|e| EstError::Transport(error_chain(&e)))?;
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut body = Vec::new();
    while let Some(chunk) = r
        .chunk()
        .await
        .map_err(|e| EstError::Transport(error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(EstError::Body(format!(
                "more than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if status != 200 {
        let text: String = String::from_utf8_lossy(&body)
            .chars()
            .take(300)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        return Err(match status {
            401 => EstError::Unauthorized(text),
            403 => EstError::Forbidden(text),
            400 => EstError::BadRequest(text),
            s => EstError::Status(s, text),
        });
    }
    if !ctype.starts_with("application/pkcs7-mime") {
        return Err(EstError::Body(format!(
            "content type {ctype:?}, expected application/pkcs7-mime"
        )));
    }
    // The EST base64 body decoder (whitespace-tolerant, bounded) is shared
    // by requests and responses.
    let der = decode_est_csr(&body).map_err(|e| EstError::Body(e.to_string()))?;
    parse_certs_only_pkcs7(&der).map_err(|e| EstError::Body(e.to_string()))
}

/// An error with its sources, for logs (reqwest hides the TLS cause).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
