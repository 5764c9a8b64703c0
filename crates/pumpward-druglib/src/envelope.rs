//! Signed library envelopes (COSE_Sign1, RFC 9052) and the pump's install
//! decision.
//!
//! # The envelope
//!
//! A tagged `COSE_Sign1` (CBOR tag 18) whose payload is the library's
//! canonical JSON bytes ([`crate::json::to_canonical_json`]), signed with
//! ECDSA P-256 / SHA-256 (`alg` ES256, −7; the signature is the 64-byte
//! `r ‖ s` that RFC 9053 requires). Everything that decides whether a pump
//! installs the library is in the **protected** header, so it is covered by
//! the signature:
//!
//! | label | name | CBOR type | content |
//! |---|---|---|---|
//! | 1 | alg | int | −7 (ES256) |
//! | 2 | crit | array | the five private labels below (a verifier that does not know them must refuse) |
//! | 3 | content type | tstr | [`CONTENT_TYPE`] |
//! | 4 | kid | bstr | the signing key's id, looked up in the pump's trusted keys |
//! | −65537 | library id | tstr | must equal the payload's `id` |
//! | −65538 | library version | uint | must equal the payload's `version` |
//! | −65539 | content digest | bstr (32) | SHA-256 of the payload bytes |
//! | −65540 | published at | uint | publication time, seconds since 1970-01-01T00:00:00Z |
//! | −65541 | signer | tstr | who approved and published (e.g. the pharmacist's user name) |
//!
//! The labels are in COSE's private-use range (below −65536). The
//! unprotected header is empty and ignored. The external AAD is empty.
//!
//! # What a verifier checks, in order
//!
//! [`verify_envelope`]: size; CBOR structure (a truncated input is
//! [`EnvelopeError::Truncated`]); alg ES256; a kid in the protected header
//! that names a trusted key; the signature; the content type and every
//! header field with its type, and no unknown critical label; the digest
//! of the payload; the payload is a library in canonical form; its id and
//! version equal the header's; it validates. The first failure is
//! returned, so the error says exactly why.
//!
//! [`decide_install`] adds the pump's rules: the version must be strictly
//! higher than the installed one (anti-rollback: an old, validly signed
//! library with looser limits can never be replayed), and the library must
//! contain the pump's care area. Otherwise the pump keeps its last good
//! library.

use crate::json::{parse_library_json, to_canonical_json, JsonError, MAX_JSON_BYTES};
use crate::model::{Library, ValidationErrors};
use coset::cbor::value::Value;
use coset::iana;
use coset::{
    CoseError, CoseSign1, CoseSign1Builder, HeaderBuilder, Label, RegisteredLabelWithPrivate,
    TaggedCborSerializable,
};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use sha2::{Digest, Sha256};
use std::fmt;

/// The content type of the payload (protected header label 3).
pub const CONTENT_TYPE: &str = "application/vnd.pumpward.druglib.v1+json";
/// Protected header label of the library id (tstr).
pub const LABEL_LIBRARY_ID: i64 = -65537;
/// Protected header label of the library version (uint).
pub const LABEL_LIBRARY_VERSION: i64 = -65538;
/// Protected header label of the SHA-256 digest of the payload (bstr, 32 bytes).
pub const LABEL_CONTENT_DIGEST: i64 = -65539;
/// Protected header label of the publication time (uint, Unix seconds).
pub const LABEL_PUBLISHED_AT: i64 = -65540;
/// Protected header label of the signer's identity (tstr).
pub const LABEL_SIGNER: i64 = -65541;
/// All private labels, as listed in `crit`.
pub const PRIVATE_LABELS: [i64; 5] = [
    LABEL_LIBRARY_ID,
    LABEL_LIBRARY_VERSION,
    LABEL_CONTENT_DIGEST,
    LABEL_PUBLISHED_AT,
    LABEL_SIGNER,
];
/// Largest envelope accepted: the largest payload plus room for headers.
pub const MAX_ENVELOPE_BYTES: usize = MAX_JSON_BYTES + 64 * 1024;
/// Longest key id and signer identity accepted.
pub const MAX_HEADER_TEXT: usize = 256;

/// DER prefix of a P-256 SubjectPublicKeyInfo (id-ecPublicKey, prime256v1,
/// BIT STRING of 66 bytes); the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A key the pump trusts to sign libraries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// Key id, as in the envelope's `kid`.
    pub kid: Vec<u8>,
    /// The P-256 public key: the 65-byte uncompressed point, or its DER
    /// SubjectPublicKeyInfo (91 bytes).
    pub public_key: Vec<u8>,
}

impl TrustedKey {
    /// The key of a signing certificate's SubjectPublicKeyInfo (DER), with
    /// its SHA-256 as key id: how Pumpward names its library-signing key.
    pub fn from_spki(spki_der: Vec<u8>) -> TrustedKey {
        TrustedKey {
            kid: Sha256::digest(&spki_der).to_vec(),
            public_key: spki_der,
        }
    }

    fn point(&self) -> &[u8] {
        self.public_key
            .strip_prefix(&P256_SPKI_PREFIX[..])
            .unwrap_or(&self.public_key)
    }
}

/// A library whose envelope verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLibrary {
    /// The library (valid).
    pub library: Library,
    /// The key that signed it.
    pub kid: Vec<u8>,
    /// Who signed it (header).
    pub signer: String,
    /// Publication time, Unix seconds (header).
    pub published_at: u64,
    /// SHA-256 of the canonical bytes.
    pub digest: [u8; 32],
}

/// What a pump remembers of its installed library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledLibrary {
    /// Library id.
    pub id: String,
    /// Version.
    pub version: u32,
    /// SHA-256 of its canonical bytes.
    pub digest: [u8; 32],
}

impl From<&VerifiedLibrary> for InstalledLibrary {
    fn from(v: &VerifiedLibrary) -> Self {
        InstalledLibrary {
            id: v.library.id.clone(),
            version: v.library.version,
            digest: v.digest,
        }
    }
}

/// Why signing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Only valid libraries are signed.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// The key is not a P-256 PKCS#8 key.
    #[error("the signing key is not an ECDSA P-256 PKCS#8 key: {0}")]
    Key(String),
    /// Key id or signer empty or too long.
    #[error("{0} must be 1–{MAX_HEADER_TEXT} bytes")]
    Header(&'static str),
    /// The signature could not be computed.
    #[error("signing failed")]
    Signing,
    /// CBOR encoding failed.
    #[error("encoding the envelope failed")]
    Encoding,
}

/// Why an envelope was refused (the first failed check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Larger than [`MAX_ENVELOPE_BYTES`].
    #[error("the envelope is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The CBOR ends early.
    #[error("the envelope is truncated")]
    Truncated,
    /// Not a tagged COSE_Sign1.
    #[error("not a COSE_Sign1 envelope: {0}")]
    Malformed(String),
    /// An algorithm other than ES256.
    #[error("unsupported signature algorithm {0} (only ES256 is accepted)")]
    UnsupportedAlgorithm(String),
    /// No key id in the protected header.
    #[error("the protected header has no key id")]
    MissingKeyId,
    /// The key id is not trusted.
    #[error("unknown signing key id {0:?}")]
    UnknownKeyId(String),
    /// The signature does not verify with the trusted key.
    #[error("the signature does not verify")]
    BadSignature,
    /// No payload (detached payloads are not used).
    #[error("the envelope has no payload")]
    MissingPayload,
    /// Wrong content type.
    #[error("unexpected content type {0:?}")]
    UnsupportedContentType(String),
    /// A required protected header field is missing or has the wrong type,
    /// or an unknown label is critical.
    #[error("protected header: {0}")]
    MalformedHeader(String),
    /// The payload's SHA-256 differs from the signed digest.
    #[error("the payload's SHA-256 does not match the signed digest")]
    DigestMismatch,
    /// The payload is not a library.
    #[error("the payload is not a library: {0}")]
    PayloadNotLibrary(JsonError),
    /// The payload is a library but not in canonical form.
    #[error("the payload is not in canonical form")]
    NonCanonicalPayload,
    /// Header and payload disagree.
    #[error("the header's {field} {header} differs from the payload's {payload}")]
    HeaderPayloadMismatch {
        /// `id` or `version`.
        field: &'static str,
        /// The header's value.
        header: String,
        /// The payload's value.
        payload: String,
    },
    /// The payload fails validation.
    #[error("the signed library is not valid: {0}")]
    PayloadInvalid(ValidationErrors),
}

/// The public key (65-byte uncompressed point) of a PKCS#8 signing key,
/// for the pumps' trusted keys.
pub fn public_key_from_pkcs8(pkcs8: &[u8]) -> Result<Vec<u8>, SignError> {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
        .map_err(|e| SignError::Key(e.to_string()))?;
    Ok(key.public_key().as_ref().to_vec())
}

/// Signs a valid library: see the module documentation for the envelope.
/// `published_at` is Unix seconds (the caller's clock; this crate has none).
pub fn sign_library(
    lib: &Library,
    signer_key_pkcs8: &[u8],
    kid: &[u8],
    signer: &str,
    published_at: u64,
) -> Result<Vec<u8>, SignError> {
    lib.validate()?;
    if kid.is_empty() || kid.len() > MAX_HEADER_TEXT {
        return Err(SignError::Header("the key id"));
    }
    if signer.is_empty() || signer.len() > MAX_HEADER_TEXT {
        return Err(SignError::Header("the signer"));
    }
    let payload = to_canonical_json(lib);
    let fields = HeaderFields {
        alg: iana::Algorithm::ES256,
        content_type: CONTENT_TYPE.to_owned(),
        kid: kid.to_vec(),
        id: lib.id.clone(),
        version: lib.version,
        digest: Sha256::digest(&payload).into(),
        published_at,
        signer: signer.to_owned(),
    };
    build_envelope(payload, &fields, signer_key_pkcs8)
}

/// The protected header's contents (also used by tests to build envelopes
/// that are validly signed but wrong in one respect).
#[derive(Debug, Clone)]
pub(crate) struct HeaderFields {
    pub alg: iana::Algorithm,
    pub content_type: String,
    pub kid: Vec<u8>,
    pub id: String,
    pub version: u32,
    pub digest: [u8; 32],
    pub published_at: u64,
    pub signer: String,
}

pub(crate) fn build_envelope(
    payload: Vec<u8>,
    h: &HeaderFields,
    pkcs8: &[u8],
) -> Result<Vec<u8>, SignError> {
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
        .map_err(|e| SignError::Key(e.to_string()))?;
    let mut hb = HeaderBuilder::new()
        .algorithm(h.alg)
        .content_type(h.content_type.clone())
        .key_id(h.kid.clone());
    for l in PRIVATE_LABELS {
        hb = hb.add_critical_label(RegisteredLabelWithPrivate::PrivateUse(l));
    }
    let protected = hb
        .value(LABEL_LIBRARY_ID, Value::Text(h.id.clone()))
        .value(LABEL_LIBRARY_VERSION, Value::Integer(h.version.into()))
        .value(LABEL_CONTENT_DIGEST, Value::Bytes(h.digest.to_vec()))
        .value(LABEL_PUBLISHED_AT, Value::Integer(h.published_at.into()))
        .value(LABEL_SIGNER, Value::Text(h.signer.clone()))
        .build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .try_create_signature(b"", |tbs| {
            key.sign(&rng, tbs)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Signing)
        })?
        .build();
    sign1.to_tagged_vec().map_err(|_| SignError::Encoding)
}

fn cose_error(e: CoseError) -> EnvelopeError {
    match e {
        CoseError::DecodeFailed(coset::cbor::de::Error::Io(_)) => EnvelopeError::Truncated,
        other => EnvelopeError::Malformed(other.to_string()),
    }
}

fn header_value(h: &coset::Header, label: i64) -> Option<&Value> {
    h.rest
        .iter()
        .find(|(l, _)| *l == Label::Int(label))
        .map(|(_, v)| v)
}

/// Verifies an envelope against the trusted keys (see the module
/// documentation for the order of the checks).
pub fn verify_envelope(
    bytes: &[u8],
    trusted: &[TrustedKey],
) -> Result<VerifiedLibrary, EnvelopeError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::TooLarge {
            len: bytes.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(cose_error)?;
    let h = &sign1.protected.header;

    match &h.alg {
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) => {}
        Some(other) => return Err(EnvelopeError::UnsupportedAlgorithm(format!("{other:?}"))),
        None => return Err(EnvelopeError::UnsupportedAlgorithm("(none)".into())),
    }
    if h.key_id.is_empty() {
        return Err(EnvelopeError::MissingKeyId);
    }
    let key = trusted.iter().find(|k| k.kid == h.key_id).ok_or_else(|| {
        EnvelopeError::UnknownKeyId(
            String::from_utf8_lossy(&h.key_id)
                .chars()
                .take(64)
                .collect(),
        )
    })?;
    let Some(payload) = &sign1.payload else {
        return Err(EnvelopeError::MissingPayload);
    };
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.point());
    sign1
        .verify_signature(b"", |sig, data| public.verify(data, sig))
        .map_err(|_| EnvelopeError::BadSignature)?;

    // Signed from here on: what follows catches a signer's mistakes (or a
    // compromised signer's), and says which.
    match &h.content_type {
        Some(coset::ContentType::Text(t)) if t == CONTENT_TYPE => {}
        Some(other) => {
            return Err(EnvelopeError::UnsupportedContentType(
                format!("{other:?}").chars().take(100).collect(),
            ))
        }
        None => return Err(EnvelopeError::UnsupportedContentType("(none)".into())),
    }
    for c in &h.crit {
        let known =
            matches!(c, RegisteredLabelWithPrivate::PrivateUse(l) if PRIVATE_LABELS.contains(l));
        if !known {
            return Err(EnvelopeError::MalformedHeader(format!(
                "unknown critical label {c:?}"
            )));
        }
    }
    let bad = |what: &str| {
        EnvelopeError::MalformedHeader(format!("{what} is missing or has the wrong type"))
    };
    let id = match header_value(h, LABEL_LIBRARY_ID) {
        Some(Value::Text(t)) => t.clone(),
        _ => return Err(bad("the library id (-65537)")),
    };
    let version = match header_value(h, LABEL_LIBRARY_VERSION) {
        Some(Value::Integer(i)) => {
            u32::try_from(*i).map_err(|_| bad("the library version (-65538)"))?
        }
        _ => return Err(bad("the library version (-65538)")),
    };
    let digest: [u8; 32] = match header_value(h, LABEL_CONTENT_DIGEST) {
        Some(Value::Bytes(b)) => b
            .as_slice()
            .try_into()
            .map_err(|_| bad("the content digest (-65539)"))?,
        _ => return Err(bad("the content digest (-65539)")),
    };
    let published_at = match header_value(h, LABEL_PUBLISHED_AT) {
        Some(Value::Integer(i)) => {
            u64::try_from(*i).map_err(|_| bad("the publication time (-65540)"))?
        }
        _ => return Err(bad("the publication time (-65540)")),
    };
    let signer = match header_value(h, LABEL_SIGNER) {
        Some(Value::Text(t)) if !t.is_empty() && t.len() <= MAX_HEADER_TEXT => t.clone(),
        _ => return Err(bad("the signer (-65541)")),
    };

    let actual: [u8; 32] = Sha256::digest(payload).into();
    if actual != digest {
        return Err(EnvelopeError::DigestMismatch);
    }
    let library = parse_library_json(payload).map_err(EnvelopeError::PayloadNotLibrary)?;
    if to_canonical_json(&library) != *payload {
        return Err(EnvelopeError::NonCanonicalPayload);
    }
    if library.id != id {
        return Err(EnvelopeError::HeaderPayloadMismatch {
            field: "id",
            header: id.chars().take(64).collect(),
            payload: library.id.chars().take(64).collect(),
        });
    }
    if library.version != version {
        return Err(EnvelopeError::HeaderPayloadMismatch {
            field: "version",
            header: version.to_string(),
            payload: library.version.to_string(),
        });
    }
    library.validate().map_err(EnvelopeError::PayloadInvalid)?;
    Ok(VerifiedLibrary {
        library,
        kid: h.key_id.clone(),
        signer,
        published_at,
        digest,
    })
}

/// Why a pump refused a library (it keeps its last good one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The envelope did not verify.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// Not newer than the installed library (anti-rollback).
    #[error("version {offered} is not newer than the installed version {installed}")]
    NotNewer {
        /// Installed version.
        installed: u32,
        /// Offered version.
        offered: u32,
    },
    /// The library has no profile for this pump's care area.
    #[error("the library has no care area {0:?}")]
    CareAreaMissing(String),
}

/// The pump's decision about an offered library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallDecision {
    /// Install it (it verified, is newer and covers the care area).
    Install(Box<VerifiedLibrary>),
    /// Keep the installed library.
    Reject {
        /// Why.
        reason: RejectReason,
    },
}

impl fmt::Display for InstallDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallDecision::Install(v) => {
                write!(f, "install {} version {}", v.library.id, v.library.version)
            }
            InstallDecision::Reject { reason } => write!(f, "reject: {reason}"),
        }
    }
}

/// Decides whether a pump installs an offered envelope: it must verify
/// against `trusted`, its version must be strictly higher than the
/// installed one, and it must contain the pump's `care_area` (by id or
/// display name, [`Library::resolve_care_area`]). Versions are
/// compared whatever the library id: a hospital publishes one library (its
/// care areas cover every unit), numbered monotonically, so a pump never
/// steps back to a lower number even under another id. On a rejection the
/// caller keeps its installed library and reports the reason.
pub fn decide_install(
    installed: Option<&InstalledLibrary>,
    envelope: &[u8],
    trusted: &[TrustedKey],
    care_area: &str,
) -> InstallDecision {
    let reject = |reason| InstallDecision::Reject { reason };
    let v = match verify_envelope(envelope, trusted) {
        Ok(v) => v,
        Err(e) => return reject(RejectReason::Envelope(e)),
    };
    if let Some(i) = installed {
        if v.library.version <= i.version {
            return reject(RejectReason::NotNewer {
                installed: i.version,
                offered: v.library.version,
            });
        }
    }
    if v.library.resolve_care_area(care_area).is_none() {
        return reject(RejectReason::CareAreaMissing(
            care_area.chars().take(64).collect(),
        ));
    }
    InstallDecision::Install(Box::new(v))
}

#[cfg(test)]
mod tests;
