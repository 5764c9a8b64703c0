//! The drug-library signing certificate as its users read it: the pumps
//! (which trust its key), the server (which signs with it) and `pumpward
//! library verify` (which checks an envelope offline).
//!
//! One reading for all three, so that what counts as "the signer's key" and
//! its key id cannot drift apart: the key is the certificate's
//! SubjectPublicKeyInfo, the key id (the envelope's COSE `kid`) is its
//! SHA-256, and only a certificate with the codeSigning extended key usage
//! qualifies, so that a device or server certificate cannot be passed off as
//! the library signer.

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::{inspect_certificate, CertInfo, PkiError, Result};

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER content octets.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// A library-signing certificate and the key it certifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibrarySigningKey {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// What it says.
    pub info: CertInfo,
    /// The key: DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// SHA-256 of the SubjectPublicKeyInfo: the envelope's key id.
    pub key_id: [u8; 32],
}

/// The first certificate of `pem`, if it is a library-signing certificate.
pub fn library_signing_key(pem: &str) -> Result<LibrarySigningKey> {
    let der = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or(PkiError::NoCertificate)?
        .map_err(|e| PkiError::CertificateMalformed(format!("PEM: {e}")))?;
    let info = inspect_certificate(&der)?;
    if !info.code_signing {
        return Err(PkiError::NotCodeSigning(info.subject));
    }
    Ok(LibrarySigningKey {
        cert_der: der.to_vec(),
        key_id: Sha256::digest(&info.spki_der).into(),
        spki_der: info.spki_der.clone(),
        info,
    })
}

/// Checks that the signing certificate chains to a self-signed root among
/// the certificates of `chain_pem` (any others are intermediates), carries
/// the codeSigning usage, and was valid at `at` (e.g. when an envelope was
/// published). Revocation is not checked here: that needs the CRL.
pub fn verify_library_signer(
    signer: &LibrarySigningKey,
    chain_pem: &str,
    at: OffsetDateTime,
) -> Result<()> {
    let mut roots = Vec::new();
    let mut intermediates = Vec::new();
    for der in CertificateDer::pem_slice_iter(chain_pem.as_bytes()) {
        let der = der.map_err(|e| PkiError::CertificateMalformed(format!("CA PEM: {e}")))?;
        let info = inspect_certificate(&der)?;
        if info.subject == info.issuer {
            roots.push(der);
        } else {
            intermediates.push(der);
        }
    }
    if roots.is_empty() {
        return Err(PkiError::ChainInvalid(
            "the CA file holds no self-signed root certificate".into(),
        ));
    }
    let anchors = roots
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).map(|a| a.to_owned()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| PkiError::ChainInvalid(format!("a root certificate: {e:?}")))?;
    let leaf = CertificateDer::from(signer.cert_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|e| PkiError::ChainInvalid(format!("the signing certificate: {e:?}")))?;
    let secs = u64::try_from(at.unix_timestamp())
        .map_err(|_| PkiError::ChainInvalid("a time before 1970".into()))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)),
        // Checked on every certificate of the path: CA certificates without
        // the extension are fine; the signer's own usage was required by
        // `library_signing_key`.
        webpki::KeyUsage::required_if_present(EKU_CODE_SIGNING),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| PkiError::ChainInvalid(format!("{e:?}")))
}
