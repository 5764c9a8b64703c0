//! PKCS#10 certificate signing requests: reading them without trusting them,
//! and making them for agents.

use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry as oids;
use x509_parser::prelude::FromDer as _;
use x509_parser::public_key::PublicKey;
use zeroize::Zeroizing;

use crate::ca::DEVICE_ASSET_URN_PREFIX;
use crate::name::{self, OID_SERIAL_NUMBER};
use crate::{KeyAlgorithm, PkiError, Result};

/// Largest CSR accepted (DER). A CSR with an RSA-8192 key is under 2 KiB.
pub(crate) const MAX_CSR_BYTES: usize = 64 * 1024;

/// The kind of key a CSR carries, which decides the key usages granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Ec,
    Ed25519,
    Rsa,
}

/// What the CA takes from a CSR (the public key, after proof of possession)
/// and what it *checks* but never copies (the names the CSR claims).
pub(crate) struct CheckedCsr {
    pub spki: rcgen::SubjectPublicKeyInfo,
    pub kind: KeyKind,
    /// Every subject serialNumber attribute.
    pub subject_serials: Vec<String>,
    /// Every URI in a requested subjectAltName extension.
    pub san_uris: Vec<String>,
}

/// Parses a DER CSR, checks its algorithms and verifies its signature.
///
/// rcgen's `CertificateSigningRequestParams::from_der` is deliberately not
/// used: it turns the CSR's contents into certificate parameters (the wrong
/// default for a CA) and refuses any requested extension it does not model,
/// so a CSR that merely *asks* for `CA:TRUE` would be rejected instead of
/// being issued the CA's own `CA:FALSE`. Here the CSR is read with
/// x509-parser, its signature checked with *ring*, and only its public key
/// goes on.
pub(crate) fn check_csr(der: &[u8]) -> Result<CheckedCsr> {
    if der.is_empty() {
        return Err(PkiError::CsrMalformed("empty".into()));
    }
    if der.len() > MAX_CSR_BYTES {
        return Err(PkiError::CsrMalformed(format!(
            "{} bytes; the limit is {MAX_CSR_BYTES}",
            der.len()
        )));
    }
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| PkiError::CsrMalformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::CsrMalformed(format!(
            "{} bytes after the request",
            rest.len()
        )));
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(PkiError::CsrMalformed(format!(
            "version {} (only v1, encoded 0, exists)",
            info.version.0
        )));
    }

    // Signature algorithm: SHA-2 only. x509-parser's verifier would accept
    // SHA-1 RSA signatures (ring's legacy verifier); a CA must not.
    let sig = &csr.signature_algorithm.algorithm;
    let sig_ok = [
        oids::OID_SIG_ECDSA_WITH_SHA256,
        oids::OID_SIG_ECDSA_WITH_SHA384,
        oids::OID_SIG_ED25519,
        oids::OID_PKCS1_SHA256WITHRSA,
        oids::OID_PKCS1_SHA384WITHRSA,
        oids::OID_PKCS1_SHA512WITHRSA,
    ]
    .contains(sig);
    if !sig_ok {
        return Err(PkiError::CsrUnsupportedAlgorithm(format!(
            "signature algorithm {sig}; use ECDSA with SHA-256/384, Ed25519 or RSA PKCS#1 with SHA-2"
        )));
    }

    // Key algorithm: P-256, P-384, Ed25519, RSA 2048–8192.
    let spki = &info.subject_pki;
    let key_alg = &spki.algorithm.algorithm;
    let kind = if *key_alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == oids::OID_EC_P256 || c == oids::OID_NIST_EC_P384 => KeyKind::Ec,
            Some(c) => {
                return Err(PkiError::CsrUnsupportedAlgorithm(format!(
                    "EC curve {c}; use P-256 or P-384"
                )))
            }
            None => {
                return Err(PkiError::CsrUnsupportedAlgorithm(
                    "EC key without a named curve".into(),
                ))
            }
        }
    } else if *key_alg == oids::OID_SIG_ED25519 {
        KeyKind::Ed25519
    } else if *key_alg == oids::OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) if (2048..=8192).contains(&rsa.key_size()) => KeyKind::Rsa,
            Ok(PublicKey::RSA(rsa)) => {
                return Err(PkiError::CsrUnsupportedAlgorithm(format!(
                    "RSA key of {} bits; 2048 to 8192 are accepted",
                    rsa.key_size()
                )))
            }
            _ => return Err(PkiError::CsrMalformed("unreadable RSA public key".into())),
        }
    } else {
        return Err(PkiError::CsrUnsupportedAlgorithm(format!(
            "key algorithm {key_alg}; use EC P-256/P-384, Ed25519 or RSA"
        )));
    };

    // Proof of possession.
    csr.verify_signature().map_err(|e| match e {
        x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => {
            PkiError::CsrUnsupportedAlgorithm(format!(
                "signature algorithm {sig} does not fit the key"
            ))
        }
        _ => PkiError::CsrBadSignature,
    })?;

    let spki_rc = rcgen::SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|e| PkiError::CsrUnsupportedAlgorithm(format!("public key: {e}")))?;

    // Names the CSR claims. They are compared with the enrollment's binding,
    // never copied into the certificate.
    let serial_oid = x509_parser::der_parser::oid::Oid::from(&OID_SERIAL_NUMBER[..])
        .map_err(|_| PkiError::CsrMalformed("serialNumber OID".into()))?;
    let mut subject_serials = Vec::new();
    for attr in info.subject.iter_by_oid(&serial_oid) {
        let s = attr.as_str().map_err(|_| {
            PkiError::CsrMalformed("the subject serialNumber is not a readable string".into())
        })?;
        subject_serials.push(s.to_owned());
    }
    let mut san_uris = Vec::new();
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for n in &san.general_names {
                        if let GeneralName::URI(u) = n {
                            san_uris.push((*u).to_owned());
                        }
                    }
                }
                ParsedExtension::ParseError { error } => {
                    return Err(PkiError::CsrMalformed(format!(
                        "a requested extension is malformed: {error}"
                    )))
                }
                _ => {}
            }
        }
    }
    Ok(CheckedCsr {
        spki: spki_rc,
        kind,
        subject_serials,
        san_uris,
    })
}

/// Case-insensitive prefix match for the `urn:pumpward:…:` prefixes (URN
/// scheme and namespace identifiers are case-insensitive, RFC 8141 §3.1).
pub(crate) fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Makes a key pair and a CSR as a Pumpward agent (or pump simulator) sends
/// it to the EST `simpleenroll` endpoint: subject CN = asset id and
/// serialNumber = device serial, SAN URI `urn:pumpward:asset:<asset_id>`,
/// signed with the new key. Returns `(PKCS#8 DER private key, CSR DER)`.
///
/// The CA does not need these names (it takes identity from the enrollment),
/// but they let it refuse a CSR generated for another device.
pub fn make_device_csr(
    algorithm: KeyAlgorithm,
    asset_id: &str,
    serial_number: &str,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    name::check_asset_id(asset_id)?;
    name::check_device_serial(serial_number)?;
    let key = algorithm.generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, asset_id);
    dn.push(
        DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()),
        name::dn_value(serial_number),
    );
    params.distinguished_name = dn;
    let uri = format!("{DEVICE_ASSET_URN_PREFIX}{asset_id}");
    params.subject_alt_names =
        vec![SanType::URI(uri.try_into().map_err(|e| {
            PkiError::InvalidBinding(format!("asset URI: {e}"))
        })?)];
    let csr = params
        .serialize_request(&key)
        .map_err(|e| PkiError::Signing(format!("CSR: {e}")))?;
    Ok((Zeroizing::new(key.serialize_der()), csr.der().to_vec()))
}
