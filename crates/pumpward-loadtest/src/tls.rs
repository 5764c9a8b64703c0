//! The load generator's TLS client configurations (rustls, *ring* only).

use crate::fleet::PumpId;
use anyhow::{anyhow, Result};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use std::sync::Arc;

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies the servers (the gateway and nginx) against the CA chain PEM.
#[derive(Clone)]
pub struct Trust {
    verifier: Arc<WebPkiServerVerifier>,
}

impl Trust {
    pub fn from_pem(pem: &str) -> Result<Trust> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(c.map_err(|e| anyhow!("CA PEM: {e}"))?)?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
        Ok(Trust { verifier })
    }

    /// TLS 1.3 only, the pump's certificate, no session resumption (every
    /// connection is a full handshake), the given ALPN ids.
    pub fn client(&self, id: &PumpId, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>> {
        let mut cfg = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_webpki_verifier(self.verifier.clone())
            .with_client_auth_cert(id.chain.clone(), id.key())?;
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        cfg.resumption = Resumption::disabled();
        Ok(Arc::new(cfg))
    }
}
