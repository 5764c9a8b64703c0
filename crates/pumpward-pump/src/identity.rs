//! The pump's cryptographic identity and its files, and the TLS client
//! configurations built from it.
//!
//! # The state directory
//!
//! ```text
//! <state_dir>/identity.pem   PKCS#8 private key, then the device certificate, then its CA chain (0600)
//! <state_dir>/queue/         the DurableQueue (pumpward_proto::queue)
//! ```
//!
//! Key and certificate live in **one** file, replaced atomically (write a
//! temporary file, fsync, rename, fsync the directory), so a crash during a
//! renewal leaves either the old pair or the new pair, never a new key with
//! an old certificate.
//!
//! **The key is stored as plain PKCS#8, readable by the owner only (0600).**
//! A real pump keeps its key in a secure element or TPM and never exports
//! it. Sealing the file here (as `pumpward_pki::seal_private_key` does for
//! the CA) would need a key-encryption key, and an agent has nowhere to keep
//! one except beside the sealed key, which adds nothing. The file mode is the
//! protection; a deployment on real hardware replaces [`DeviceIdentity::load`]
//! and [`DeviceIdentity::save`] with its secure element.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use pumpward_pki::{inspect_certificate, pem_encode, CertInfo, Zeroizing};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use crate::AgentError;

/// The ALPN protocol id of the device channel.
pub const DEVICE_ALPN: &[u8] = b"pumpward-device/1";

/// Name of the identity file in the state directory.
pub const IDENTITY_FILE: &str = "identity.pem";

/// The one crypto provider of the workspace: *ring*.
pub(crate) static PROVIDER: LazyLock<Arc<CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));

/// The certificates the agent trusts for the gateway's (and the EST
/// server's) TLS certificate: the CA chain PEM given out of band
/// (`--ca-file`). Built once and shared by every pump of a fleet.
#[derive(Clone)]
pub struct TrustAnchors {
    roots: Arc<RootCertStore>,
    verifier: Arc<WebPkiServerVerifier>,
    pem: Arc<str>,
}

impl std::fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("roots", &self.roots.len())
            .finish()
    }
}

impl TrustAnchors {
    /// Every `CERTIFICATE` in `pem` becomes a trust anchor (root or
    /// intermediate). At least one is required; verification is never
    /// disabled.
    pub fn from_pem(pem: &str) -> Result<Self, AgentError> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let c = c.map_err(|e| AgentError::Config(format!("CA chain PEM: {e}")))?;
            roots
                .add(c)
                .map_err(|e| AgentError::Config(format!("CA chain PEM: {e}")))?;
        }
        if roots.is_empty() {
            return Err(AgentError::Config(
                "the CA chain PEM holds no certificate".into(),
            ));
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), PROVIDER.clone())
            .build()
            .map_err(|e| AgentError::Config(format!("server verifier: {e}")))?;
        Ok(Self {
            roots,
            verifier,
            pem: pem.into(),
        })
    }

    /// The shared server-certificate verifier.
    pub(crate) fn verifier(&self) -> Arc<WebPkiServerVerifier> {
        self.verifier.clone()
    }

    /// The PEM these anchors were read from.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A client configuration offering `alpn`, with the device's
    /// certificate when `identity` is given. TLS 1.3 and 1.2 (rustls offers
    /// only ECDHE + AEAD suites); a small session cache, since each pump
    /// talks to one gateway.
    pub fn client_config(
        &self,
        identity: Option<&DeviceIdentity>,
        alpn: &[&[u8]],
    ) -> Result<ClientConfig, AgentError> {
        let b = ClientConfig::builder_with_provider(PROVIDER.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| AgentError::Tls(e.to_string()))?
            .with_webpki_verifier(self.verifier.clone());
        let mut cfg = match identity {
            Some(id) => b
                .with_client_auth_cert(id.tls_chain(), id.tls_key())
                .map_err(|e| AgentError::Tls(format!("client certificate: {e}")))?,
            None => b.with_no_client_auth(),
        };
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        cfg.resumption = rustls::client::Resumption::in_memory_sessions(2);
        Ok(cfg)
    }
}

/// The device's key and certificate (with the CA certificates to present
/// after it).
#[derive(Clone)]
pub struct DeviceIdentity {
    key_pkcs8: Arc<Zeroizing<Vec<u8>>>,
    cert_der: Vec<u8>,
    chain_der: Vec<Vec<u8>>,
    info: CertInfo,
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("serial", &self.info.serial_hex)
            .field("asset_id", &self.info.asset_id)
            .field("not_after", &self.info.not_after)
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// An identity from a PKCS#8 key and the certificates an EST response
    /// (plus `/cacerts`) returned: the end-entity certificate (not a CA)
    /// becomes the device certificate, the CA certificates that are not
    /// self-signed are presented after it. `expected_asset` must be the
    /// asset the certificate names (`urn:pumpward:asset:<id>`): an agent
    /// never adopts another device's identity.
    pub fn from_parts(
        key_pkcs8: Zeroizing<Vec<u8>>,
        certs: &[Vec<u8>],
        expected_asset: &str,
    ) -> Result<Self, AgentError> {
        let mut leaf = None;
        let mut chain = Vec::new();
        for der in certs {
            let info = inspect_certificate(der)?;
            if info.is_ca {
                if info.subject != info.issuer && !chain.contains(der) {
                    chain.push(der.clone());
                }
            } else if leaf.is_none() {
                leaf = Some((der.clone(), info));
            } else {
                return Err(AgentError::State(
                    "more than one end-entity certificate".into(),
                ));
            }
        }
        let (cert_der, info) =
            leaf.ok_or_else(|| AgentError::State("no device certificate".into()))?;
        if info.asset_id.as_deref() != Some(expected_asset) {
            return Err(AgentError::State(format!(
                "the certificate names asset {:?}, this pump is {expected_asset:?}",
                info.asset_id
            )));
        }
        let id = Self {
            key_pkcs8: Arc::new(key_pkcs8),
            cert_der,
            chain_der: chain,
            info,
        };
        // The key must be the certificate's: rustls checks the pair.
        let key = PROVIDER
            .key_provider
            .load_private_key(id.tls_key())
            .map_err(|e| AgentError::State(format!("device key: {e}")))?;
        rustls::sign::CertifiedKey::new(id.tls_chain(), key)
            .keys_match()
            .map_err(|e| AgentError::State(format!("key and certificate: {e}")))?;
        Ok(id)
    }

    /// The identity file's path.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(IDENTITY_FILE)
    }

    /// Reads the identity from the state directory; `None` when the pump
    /// has not enrolled yet.
    pub fn load(state_dir: &Path, expected_asset: &str) -> Result<Option<Self>, AgentError> {
        let path = Self::path(state_dir);
        let pem = match std::fs::read(&path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(AgentError::io(format!("reading {}", path.display()), e)),
        };
        let key = PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .map_err(|e| AgentError::State(format!("{}: private key: {e}", path.display())))?;
        let key = Zeroizing::new(key.secret_pkcs8_der().to_vec());
        let certs = CertificateDer::pem_slice_iter(&pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AgentError::State(format!("{}: certificates: {e}", path.display())))?;
        Self::from_parts(key, &certs, expected_asset).map(Some)
    }

    /// Writes the identity atomically, readable by the owner only.
    pub fn save(&self, state_dir: &Path) -> Result<(), AgentError> {
        let mut text = Zeroizing::new(pem_encode("PRIVATE KEY", &self.key_pkcs8));
        text.push_str(&pem_encode("CERTIFICATE", &self.cert_der));
        for c in &self.chain_der {
            text.push_str(&pem_encode("CERTIFICATE", c));
        }
        write_private_atomic(&Self::path(state_dir), text.as_bytes())
    }

    /// What the certificate says.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// The certificate's serial (lowercase hex), as the CA recorded it.
    pub fn serial_hex(&self) -> &str {
        &self.info.serial_hex
    }

    /// The device certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// When renewal is due: once `fraction` (2/3 by default) of the
    /// validity has passed.
    pub fn renewal_due(&self, fraction: f64) -> OffsetDateTime {
        let nb = self.info.not_before;
        let span = self.info.not_after - nb;
        nb + span * fraction.clamp(0.0, 1.0)
    }

    pub(crate) fn tls_chain(&self) -> Vec<CertificateDer<'static>> {
        std::iter::once(CertificateDer::from(self.cert_der.clone()))
            .chain(
                self.chain_der
                    .iter()
                    .map(|c| CertificateDer::from(c.clone())),
            )
            .collect()
    }

    pub(crate) fn tls_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.to_vec()))
    }
}

/// Writes `bytes` to `path` via a temporary file (mode 0600), fsyncs it,
/// renames it over `path` and fsyncs the directory.
pub(crate) fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let dir = path
        .parent()
        .ok_or_else(|| AgentError::State(format!("{} has no directory", path.display())))?;
    let tmp = path.with_extension("tmp");
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let ctx = |what: &str| format!("{what} {}", tmp.display());
    let mut f = o
        .open(&tmp)
        .map_err(|e| AgentError::io(ctx("creating"), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| AgentError::io(ctx("writing"), e))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .map_err(|e| AgentError::io(format!("replacing {}", path.display()), e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AgentError::io(format!("syncing {}", dir.display()), e))
}
