//! Pumpward's built-in certificate authority.
//!
//! This crate is the CA behind the server's EST endpoint (RFC 7030) and the
//! mutual-TLS gateway for infusion pumps (NIST SP 1800-8, "PKI" build
//! capability). It is pure code: no database, no async, no network, no clock
//! (every function that depends on time takes `now`). The caller stores what
//! [`CaMaterial`] holds and records every [`IssuedCertificate`] it hands out.
//!
//! # What it provides
//!
//! - [`Ca::create`] — a self-signed root and an issuing CA signed by it;
//!   [`Ca::import_issuing`] — issue under a hospital's existing issuing CA;
//!   [`Ca::load`] — rebuild from stored PEMs and sealed keys.
//! - [`Ca::issue_device`] — a pump's client certificate from its PKCS#10
//!   CSR and the [`DeviceBinding`] the server authenticated;
//!   [`Ca::issue_server`] — TLS server certificates for the API/UI and
//!   gateway listeners; [`make_device_csr`] — the CSR an agent sends.
//! - [`Ca::crl`] — CRLs with RFC 5280 reason codes.
//! - [`seal_private_key`] / [`open_private_key`] — private keys at rest.
//! - [`inspect_certificate`] — what a certificate says, for the UI and audit.
//! - [`est`] — the EST wire formats: base64 bodies and certs-only PKCS#7.
//!
//! # Invariants
//!
//! - **What a CSR asks for is never trusted.** A CSR contributes exactly one
//!   thing to a certificate: its public key, and only after its signature
//!   verifies (proof of possession). Subject, SANs, key usages, basic
//!   constraints, validity and serial come from the CA's policy and the
//!   [`DeviceBinding`] — the identity the server authenticated (bootstrap
//!   token, existing mTLS certificate), never from the CSR. A CSR that *names*
//!   another asset (subject serialNumber, `urn:pumpward:asset:` or
//!   `urn:pumpward:mac:` SAN URI) is refused with
//!   [`PkiError::CsrForAnotherAsset`] rather than silently corrected, because
//!   such a CSR is either a misconfigured device or an impersonation attempt,
//!   and both deserve an audit record.
//! - **Private keys are never at rest unencrypted.** Every key in
//!   [`CaMaterial`] is sealed with AES-256-GCM under a key-encryption key
//!   ([`Kek`]) that is not stored beside it: a passphrase (argon2id) or a key
//!   file kept elsewhere (a mounted secret, an HSM-exported file). Keys in
//!   memory live in [`zeroize::Zeroizing`] buffers where this crate owns them.
//! - **The root key is not kept in memory.** [`Ca::create`] seals the root
//!   key and drops it; a loaded [`Ca`] holds only the issuing key, so a
//!   compromise of the running server does not expose the root.
//! - **Certificates chain by construction.** Loading or importing an issuing
//!   CA signs a probe certificate and checks, with the CA certificate's own
//!   public key, that the signature verifies (the key matches) and that the
//!   issuer name is reproduced byte for byte (so path builders such as
//!   rustls-webpki, which compare names as bytes, find the issuer).
//! - **Outside input never panics.** CSRs, EST bodies, PKCS#7, PEM, sealed
//!   keys and imported certificates are parsed with size limits and every
//!   failure is a typed [`PkiError`]. The `est_csr` fuzz target
//!   (`fuzz/fuzz_targets/est_csr.rs`) exercises these parsers.
//!
//! # Algorithms
//!
//! ECDSA P-256 (default), ECDSA P-384 and Ed25519 for keys this crate makes
//! ([`KeyAlgorithm`]). Devices may also present RSA keys of 2048–8192 bits,
//! because some pump TLS stacks support nothing else. SHA-1 signatures are
//! refused everywhere. The crypto provider is *ring*, the same one rustls uses
//! in this workspace.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod algorithm;
mod ca;
mod crl;
mod csr;
mod error;
pub mod est;
#[doc(hidden)]
pub mod fuzzing;
mod inspect;
mod name;
mod seal;
mod serial;
mod signing;

pub use algorithm::KeyAlgorithm;
pub use ca::{
    Ca, CaConfig, CaMaterial, DeviceBinding, IssuedCertificate, IssuedLibrarySigner,
    IssuedServerCertificate, ServerKey, DEVICE_ASSET_URN_PREFIX, DEVICE_MAC_URN_PREFIX,
    LIBRARY_SIGNER_VALIDITY_DAYS,
};
pub use crl::{RevocationReason, RevokedEntry};
pub use csr::make_device_csr;
pub use error::PkiError;
pub use est::{
    certs_only_pkcs7, decode_est_csr, encode_est_body, parse_certs_only_pkcs7, EST_MAX_BODY_BYTES,
};
pub use inspect::{inspect_certificate, CertInfo};
pub use seal::{open_private_key, seal_private_key, Kek, MIN_PASSPHRASE_CHARS, SEALED_KEY_LABEL};
pub use serial::CertSerial;
pub use signing::{library_signing_key, verify_library_signer, LibrarySigningKey};
pub use zeroize::Zeroizing;

/// Result type of this crate.
pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// Encodes DER as PEM with the given label (64-column base64, `\n` line ends).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Largest PEM or DER input any function of this crate accepts (1 MiB).
///
/// Certificates, chains and keys are a few kilobytes; the limit only bounds
/// the work done on hostile input.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Every certificate in `pem` (`CERTIFICATE` blocks; other blocks are skipped), as DER.
pub(crate) fn pem_certs(pem: &str, what: &'static str) -> Result<Vec<Vec<u8>>> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::CertificateDer;
    if pem.len() > MAX_INPUT_BYTES {
        return Err(PkiError::Pem(format!("{what} is larger than 1 MiB")));
    }
    let mut out = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let c = c.map_err(|e| PkiError::Pem(format!("{what}: {e}")))?;
        out.push(c.to_vec());
    }
    Ok(out)
}
