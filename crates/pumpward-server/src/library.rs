//! The drug-library signing key, kept by the PKI.
//!
//! One ECDSA P-256 key signs every published library (COSE ES256). It is
//! made on first need: the issuing CA certifies it
//! ([`pumpward_pki::Ca::issue_library_signer`]: keyUsage digitalSignature,
//! extendedKeyUsage codeSigning only), the private key is sealed under the
//! CA's key-encryption key exactly like the CA's own keys, and the
//! certificate is recorded with the others. The certificate is public at
//! `GET /pki/library-signing.pem`; `pumpward library verify` checks
//! envelopes against it offline.
//!
//! **Key id** (the envelope's COSE `kid`): the 32-byte SHA-256 of the key's
//! DER SubjectPublicKeyInfo, shown as lower-case hex. It names the key, not
//! the certificate, so renewing the certificate of the same key keeps
//! envelopes verifiable, and anyone holding the certificate can compute it.

use crate::pki::CaService;
use anyhow::{anyhow, Context};
use pumpward_druglib::envelope::SignError;
use pumpward_druglib::json::{parse_library_json, to_canonical_json};
use pumpward_druglib::{Library, TrustedKey};
use pumpward_pki::{CertSerial, Zeroizing};
use pumpward_store::{Actor, CertKind, SignedLibrary, StoreError, StoredLibrarySigner};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use time::OffsetDateTime;

/// The opened signing key and its certificate.
pub struct LibrarySigner {
    pkcs8: Zeroizing<Vec<u8>>,
    cert_pem: String,
    trusted: TrustedKey,
}

impl std::fmt::Debug for LibrarySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibrarySigner")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl LibrarySigner {
    /// Opens the store's signing key, or makes one (certified by the CA,
    /// sealed under its KEK) if there is none yet.
    pub async fn load_or_create(ca: &CaService) -> anyhow::Result<LibrarySigner> {
        let store = ca.store();
        if let Some(s) = store.library_signer().await? {
            return Self::open(ca, &s);
        }
        let kek = ca.settings().kek.load()?;
        let issued = ca
            .ca()
            .issue_library_signer(CertSerial::random()?, OffsetDateTime::now_utc())?;
        let key_id = hex::encode(Sha256::digest(issued.spki_der.as_slice()));
        let stored = StoredLibrarySigner {
            cert_pem: issued.certificate.pem.clone(),
            key_sealed: pumpward_pki::seal_private_key(&issued.private_key_pkcs8, &kek)?,
            key_id,
        };
        let record =
            crate::pki::new_record(&issued.certificate, CertKind::LibrarySigning, None, None);
        match store
            .save_library_signer(&stored, &record, &Actor::system())
            .await
        {
            Ok(()) => {
                tracing::info!(key_id = %stored.key_id, "created the drug-library signing key");
                Self::open(ca, &stored)
            }
            // Another server made one first: use that one.
            Err(StoreError::Conflict(_)) => {
                let s = store
                    .library_signer()
                    .await?
                    .ok_or_else(|| anyhow!("the library-signing key vanished"))?;
                Self::open(ca, &s)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn open(ca: &CaService, s: &StoredLibrarySigner) -> anyhow::Result<LibrarySigner> {
        let kek = ca.settings().kek.load()?;
        let pkcs8 = pumpward_pki::open_private_key(&s.key_sealed, &kek)
            .context("cannot open the library-signing key")?;
        let trusted = trusted_key_from_cert_pem(&s.cert_pem)?;
        // The stored key must be the certified one: a mismatch would
        // publish envelopes nobody can verify.
        let point = pumpward_druglib::envelope::public_key_from_pkcs8(&pkcs8)
            .map_err(|e| anyhow!("library-signing key: {e}"))?;
        if !trusted.public_key.ends_with(&point) || hex::encode(&trusted.kid) != s.key_id {
            anyhow::bail!("the library-signing key does not match its certificate");
        }
        Ok(LibrarySigner {
            pkcs8,
            cert_pem: s.cert_pem.clone(),
            trusted,
        })
    }

    /// The key id, lower-case hex (see the module docs).
    pub fn key_id(&self) -> String {
        hex::encode(&self.trusted.kid)
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The key as pumps trust it.
    pub fn trusted_key(&self) -> &TrustedKey {
        &self.trusted
    }

    /// Signs a library (which must be valid) into a COSE_Sign1 envelope.
    pub fn sign(
        &self,
        lib: &Library,
        signer: &str,
        published_at: OffsetDateTime,
    ) -> Result<Vec<u8>, SignError> {
        pumpward_druglib::sign_library(
            lib,
            &self.pkcs8,
            &self.trusted.kid,
            signer,
            published_at.unix_timestamp().max(0) as u64,
        )
    }
}

impl LibrarySigner {
    /// The signing step of a publication, run inside the store's publish
    /// transaction ([`pumpward_store::Store::publish_library_revision`]):
    /// sets the library's version to the number the store took, and signs
    /// it as `identity`.
    pub fn publication(
        &self,
        identity: &str,
        version: i64,
        content: &str,
    ) -> Result<SignedLibrary, StoreError> {
        let mut lib = parse_library_json(content.as_bytes()).map_err(|e| {
            StoreError::Invalid(format!("the approved library is not readable: {e}"))
        })?;
        lib.version = u32::try_from(version)
            .map_err(|_| StoreError::Invalid(format!("version {version} is out of range")))?;
        let envelope = self
            .sign(&lib, identity, OffsetDateTime::now_utc())
            .map_err(|e| StoreError::Invalid(format!("cannot sign the library: {e}")))?;
        Ok(SignedLibrary {
            content: String::from_utf8(to_canonical_json(&lib))
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
            envelope,
            key_id: self.key_id(),
        })
    }
}

/// Publishes `lib` as its next version through the whole two-person
/// workflow — drafted and submitted by `author`, approved by `approver`
/// (who must differ), published and signed as `approver` — without the
/// API's re-authentication: for seeding a store (the demo, load runs,
/// tests), never for a person's action. Returns the published revision.
pub async fn publish_reviewed(
    store: &pumpward_store::Store,
    signer: &LibrarySigner,
    lib: &Library,
    author: &str,
    approver: &str,
) -> anyhow::Result<pumpward_store::LibraryRevision> {
    let (a, b) = (Actor::user(author, None), Actor::user(approver, None));
    let draft = pumpward_store::NewLibraryDraft {
        library_id: lib.id.clone(),
        name: lib.name.clone(),
        content: String::from_utf8(to_canonical_json(lib))?,
    };
    let d = store.create_library_draft(&draft, author, None, &a).await?;
    store.submit_library_revision(d.id, author, &a).await?;
    store.approve_library_revision(d.id, approver, &b).await?;
    let identity = format!("user:{approver}");
    Ok(store
        .publish_library_revision(
            d.id,
            approver,
            |v, c| signer.publication(&identity, v, c),
            &b,
        )
        .await?)
}

/// The trusted key of a library-signing certificate (the first certificate
/// in `pem`); see [`pumpward_pki::library_signing_key`] for what qualifies.
pub fn trusted_key_from_cert_pem(pem: &str) -> anyhow::Result<TrustedKey> {
    Ok(TrustedKey::from_spki(
        pumpward_pki::library_signing_key(pem)?.spki_der,
    ))
}

/// The signer of a running server, made or opened on first use.
#[derive(Default)]
pub struct SignerCell(tokio::sync::OnceCell<Arc<LibrarySigner>>);

impl SignerCell {
    pub async fn get(&self, ca: &CaService) -> anyhow::Result<Arc<LibrarySigner>> {
        self.0
            .get_or_try_init(|| async { LibrarySigner::load_or_create(ca).await.map(Arc::new) })
            .await
            .cloned()
    }
}
