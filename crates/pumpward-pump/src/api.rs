//! The few Pumpward REST API calls the simulator needs, in one place so
//! they are easy to adjust: list in-service pumps, create an enrollment
//! code, revoke a certificate. Bearer-token authenticated, over TLS verified
//! against the same CA chain as the gateway.

use std::time::Duration;

use serde::Deserialize;

use crate::est::error_chain;
use crate::identity::TrustAnchors;
use crate::AgentError;

/// An asset as the inventory API returns it (only the fields used here;
/// any of the optional ones may be missing or null).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PumpAsset {
    /// Inventory id (what the certificate binds).
    pub asset_id: String,
    /// Manufacturer.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// Device serial number.
    #[serde(default)]
    pub serial_number: Option<String>,
    /// Firmware version on record.
    #[serde(default)]
    pub firmware_version: Option<String>,
    /// MAC address on record.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// IP address on record.
    #[serde(default)]
    pub ip_address: Option<String>,
    /// Host name on record.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Care area.
    #[serde(default)]
    pub care_area: Option<String>,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<PumpAsset>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// A one-time enrollment code.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnrollmentCode {
    /// The code (the password of EST Basic authentication).
    pub code: String,
    /// The asset it is for.
    pub asset_id: String,
    /// Expiry, as the server wrote it.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The REST API client.
#[derive(Clone, Debug)]
pub struct ApiClient {
    base: reqwest::Url,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// `server_url` is the API listener (`https://host:port`), `token` an API
    /// token with inventory and PKI rights.
    pub fn new(server_url: &str, token: &str, trust: &TrustAnchors) -> Result<Self, AgentError> {
        let base = reqwest::Url::parse(server_url)
            .map_err(|e| AgentError::Config(format!("server URL {server_url:?}: {e}")))?;
        if base.scheme() != "https" {
            return Err(AgentError::Config(format!(
                "server URL {server_url:?} is not https"
            )));
        }
        let tls = trust.client_config(None, &[b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| AgentError::Tls(format!("API client: {e}")))?;
        Ok(Self {
            base,
            token: token.to_owned(),
            http,
        })
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut u = self.base.clone();
        u.set_path(path);
        u
    }

    async fn send(&self, req: reqwest::RequestBuilder, want: u16) -> Result<String, AgentError> {
        let r = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| AgentError::Api(error_chain(&e)))?;
        let status = r.status().as_u16();
        let text = r
            .text()
            .await
            .map_err(|e| AgentError::Api(error_chain(&e)))?;
        if status != want {
            let short: String = text.chars().take(300).collect();
            return Err(AgentError::Api(format!("HTTP {status}: {short}")));
        }
        Ok(text)
    }

    /// In-service pumps, following `next_cursor`, at most `max`.
    pub async fn list_pumps(&self, max: usize) -> Result<Vec<PumpAsset>, AgentError> {
        self.list_pumps_in("in_service", max).await
    }

    /// Pumps in one lifecycle state (`in_service`, `maintenance`, …),
    /// following `next_cursor`, at most `max`.
    pub async fn list_pumps_in(
        &self,
        state: &str,
        max: usize,
    ) -> Result<Vec<PumpAsset>, AgentError> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url("/api/v1/assets");
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("kind", "pump")
                    .append_pair("state", state)
                    .append_pair("limit", "500");
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let text = self.send(self.http.get(url), 200).await?;
            let page: Page = serde_json::from_str(&text)
                .map_err(|e| AgentError::Api(format!("asset list: {e}")))?;
            let n = page.items.len();
            out.extend(page.items);
            if out.len() >= max {
                out.truncate(max);
                return Ok(out);
            }
            match page.next_cursor {
                Some(c) if n > 0 && cursor.as_deref() != Some(c.as_str()) => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// The hospital's library-signing certificate (PEM), which the pumps
    /// trust for drug libraries.
    pub async fn library_signing_pem(&self) -> Result<String, AgentError> {
        let url = self.url("/pki/library-signing.pem");
        self.send(self.http.get(url), 200).await
    }

    /// The signed envelope of a published library version, from the
    /// publication history (`GET /api/v1/libraries/{id}/versions/{v}/envelope`;
    /// the token needs `library.read`).
    pub async fn library_envelope(
        &self,
        library_id: &str,
        version: u32,
    ) -> Result<Vec<u8>, AgentError> {
        let url = self.url(&format!(
            "/api/v1/libraries/{}/versions/{version}/envelope",
            path_seg(library_id)
        ));
        let r = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| AgentError::Api(error_chain(&e)))?;
        let status = r.status().as_u16();
        let body = r
            .bytes()
            .await
            .map_err(|e| AgentError::Api(error_chain(&e)))?;
        if status != 200 {
            let short: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(AgentError::Api(format!("HTTP {status}: {short}")));
        }
        Ok(body.to_vec())
    }

    /// A new one-time enrollment code for `asset_id`.
    pub async fn create_enrollment_code(
        &self,
        asset_id: &str,
    ) -> Result<EnrollmentCode, AgentError> {
        let url = self.url(&format!(
            "/api/v1/assets/{}/enrollment-codes",
            path_seg(asset_id)
        ));
        let text = self
            .send(self.http.post(url).json(&serde_json::json!({})), 201)
            .await?;
        serde_json::from_str(&text).map_err(|e| AgentError::Api(format!("enrollment code: {e}")))
    }

    /// Revokes the certificate with this serial (hex).
    pub async fn revoke_certificate(
        &self,
        serial_hex: &str,
        reason: &str,
    ) -> Result<(), AgentError> {
        let url = self.url(&format!(
            "/api/v1/certificates/{}/revoke",
            path_seg(serial_hex)
        ));
        let r = self
            .http
            .post(url)
            .json(&serde_json::json!({ "reason": reason }))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| AgentError::Api(error_chain(&e)))?;
        let status = r.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            let t = r.text().await.unwrap_or_default();
            Err(AgentError::Api(format!(
                "revoke: HTTP {status}: {}",
                t.chars().take(300).collect::<String>()
            )))
        }
    }
}

/// Percent-encodes a path segment (asset ids may contain `:`).
fn path_seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
