//! The one error type of the crate.

/// Everything that can go wrong in the CA.
///
/// Variants name *which* input was refused and why, so that the server can
/// answer an EST client precisely and the audit trail says what happened.
/// Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A key algorithm name that is not `p256`, `p384` or `ed25519`.
    #[error("unknown key algorithm {0:?}; use p256, p384 or ed25519")]
    UnknownAlgorithm(String),

    /// A revocation reason name that RFC 5280 does not define.
    #[error("unknown revocation reason {0:?}; use one of {names}", names = crate::crl::RevocationReason::NAMES.join(", "))]
    UnknownRevocationReason(String),

    /// A passphrase too short to protect the CA keys.
    #[error("the passphrase has {len} characters; at least {min} are required")]
    WeakPassphrase {
        /// Characters given.
        len: usize,
        /// Characters required.
        min: usize,
    },

    /// A key file that is not 32 raw bytes, 64 hex digits or base64 of 32 bytes.
    #[error("unusable key file: {0}")]
    BadKeyFile(String),

    /// The key-encryption key does not open the sealed key: wrong passphrase
    /// or key file (or the KDF parameters, salt or check value were altered).
    #[error("the key-encryption key does not open this sealed key (wrong passphrase or key file)")]
    WrongKek,

    /// The sealed key was made with the other kind of key-encryption key.
    #[error("this key was sealed with a {sealed_with}, but a {given} was given")]
    KekKindMismatch {
        /// What the blob says it was sealed with.
        sealed_with: &'static str,
        /// What the caller supplied.
        given: &'static str,
    },

    /// The sealed key text is not a well-formed sealed key.
    #[error("malformed sealed key: {0}")]
    SealedKeyMalformed(String),

    /// The KEK is right but the ciphertext or header fails authentication.
    #[error("the sealed key fails authentication: it was altered or corrupted")]
    SealedKeyTampered,

    /// A sealed key from a newer (or unknown) format version.
    #[error("unsupported sealed key format version {0}")]
    SealedKeyVersion(u8),

    /// The CSR is not DER PKCS#10 (or has trailing bytes).
    #[error("the CSR is not a valid DER PKCS#10 request: {0}")]
    CsrMalformed(String),

    /// The CSR's signature does not verify with its own public key: no proof
    /// of possession of the private key.
    #[error("the CSR signature does not verify with the CSR's public key")]
    CsrBadSignature,

    /// The CSR uses a key or signature algorithm the CA does not certify.
    #[error("the CSR uses an unsupported algorithm: {0}")]
    CsrUnsupportedAlgorithm(String),

    /// The CSR names a different device than the one enrolling.
    #[error("the CSR names {field} {requested:?}, but this enrollment is for {expected:?}")]
    CsrForAnotherAsset {
        /// `"serialNumber"`, `"asset"` or `"mac"`.
        field: &'static str,
        /// What the CSR asked for.
        requested: String,
        /// What the authenticated binding says.
        expected: String,
    },

    /// The device binding (asset id, serial number, MAC) is not valid.
    #[error("invalid device binding: {0}")]
    InvalidBinding(String),

    /// A server name that is neither an IP address nor a valid DNS name.
    #[error("invalid server name {name:?}: {reason}")]
    InvalidServerName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A certificate serial number that is not 1–20 bytes, positive, non-zero.
    #[error("invalid certificate serial number: {0}")]
    InvalidSerial(String),

    /// A CA configuration value out of range.
    #[error("invalid CA configuration: {0}")]
    InvalidConfig(String),

    /// A time out of the range certificates can express here (years 1950–9000).
    #[error("time {0} is out of range")]
    InvalidTime(String),

    /// The CA certificate is not valid at the time of issuance.
    #[error(
        "the issuing CA certificate is not valid at {now} (valid {not_before} to {not_after})"
    )]
    CaNotValidAt {
        /// The issuance time.
        now: String,
        /// Start of the CA's validity.
        not_before: String,
        /// End of the CA's validity.
        not_after: String,
    },

    /// A certificate that is not DER X.509 (or has trailing bytes).
    #[error("not a valid DER X.509 certificate: {0}")]
    CertificateMalformed(String),

    /// A PEM input that does not hold what it should.
    #[error("invalid PEM: {0}")]
    Pem(String),

    /// The imported certificate cannot act as the issuing CA.
    #[error("the certificate cannot act as an issuing CA: {0}")]
    NotAnIssuingCa(String),

    /// The certificates given as the chain do not link up.
    #[error("the CA chain is broken: {0}")]
    ChainBroken(String),

    /// The private key does not belong to the CA certificate.
    #[error("the private key does not match the CA certificate's public key")]
    KeyMismatch,

    /// A private key this crate cannot use.
    #[error("unusable private key: {0}")]
    InvalidPrivateKey(String),

    /// The issuing CA certificate lacks the cRLSign key usage.
    #[error("the issuing CA certificate does not allow CRL signing (no cRLSign key usage)")]
    CaCannotSignCrl,

    /// A revocation entry or CRL parameter out of range.
    #[error("invalid CRL request: {0}")]
    InvalidCrl(String),

    /// An EST body larger than [`crate::EST_MAX_BODY_BYTES`].
    #[error("EST body is {len} bytes; the limit is {max}")]
    EstBodyTooLarge {
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// An EST body with nothing but whitespace.
    #[error("EST body is empty")]
    EstBodyEmpty,

    /// An EST body with a byte outside the base64 alphabet and whitespace.
    #[error("EST body is not base64: byte 0x{byte:02x} at offset {offset}")]
    EstBodyNotBase64 {
        /// Offset of the byte in the body as received.
        offset: usize,
        /// The byte.
        byte: u8,
    },

    /// An EST body in PEM armour; RFC 7030 §4.2.1 wants bare base64 DER.
    #[error("EST body is PEM ({0}); send the base64 DER without the BEGIN/END lines")]
    EstBodyIsPem(String),

    /// Base64 alphabet only, but not a valid encoding (length, padding).
    #[error("EST body is malformed base64: {0}")]
    EstBodyBadBase64(String),

    /// PKCS#7 / CMS input that is not a certs-only SignedData.
    #[error("invalid PKCS#7 certs-only message: {0}")]
    Pkcs7(String),

    /// Certificate or CRL generation failed (a bug or an unusable CA key).
    #[error("signing failed: {0}")]
    Signing(String),

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Rng,

    /// PEM text without the expected certificate.
    #[error("no CERTIFICATE block in the PEM")]
    NoCertificate,

    /// A certificate offered as the drug-library signer that may not sign
    /// code.
    #[error("the certificate {0} is not a library-signing certificate (no codeSigning EKU)")]
    NotCodeSigning(String),

    /// A certificate that does not chain to the given CA certificates, or
    /// was not valid at the time asked.
    #[error("the certificate does not verify against the CA chain: {0}")]
    ChainInvalid(String),
}
