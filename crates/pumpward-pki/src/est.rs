//! EST wire formats (RFC 7030).
//!
//! - Requests (`/simpleenroll`, `/simplereenroll`) carry a PKCS#10 CSR as
//!   base64 DER, content type `application/pkcs10` (§4.2.1):
//!   [`decode_est_csr`].
//! - Responses (`/cacerts`, enrollment) carry a certs-only CMS SignedData
//!   ("degenerate PKCS#7"), base64, content type
//!   `application/pkcs7-mime; smime-type=certs-only` (§4.1.3, §4.2.3):
//!   [`certs_only_pkcs7`] and [`encode_est_body`].
//!
//! RFC 7030 inherited a `Content-Transfer-Encoding: base64` header from
//! MIME; real clients send base64 with or without line breaks, CRLF or LF.
//! The decoder therefore ignores ASCII whitespace anywhere but nothing else.

use base64::Engine as _;
use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerInfos};
use der::asn1::SetOfVec;
use der::{Decode as _, Encode as _};

use crate::{PkiError, Result, MAX_INPUT_BYTES};

/// Largest EST request body accepted (64 KiB). A base64 CSR with an
/// RSA-8192 key is under 3 KiB; the limit bounds memory and work per
/// request before anything is parsed.
pub const EST_MAX_BODY_BYTES: usize = 64 * 1024;

const ID_DATA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// Decodes an EST `application/pkcs10` body to CSR DER.
///
/// Accepts standard-alphabet base64 with or without padding, with ASCII
/// whitespace (spaces, tabs, CR, LF) anywhere. Refuses, each with its own
/// error: a body over [`EST_MAX_BODY_BYTES`], an empty body, PEM armour, a
/// byte outside the base64 alphabet (with its offset), and malformed base64.
/// The result is only *decoded*; [`crate::Ca::issue_device`] parses and
/// verifies it.
pub fn decode_est_csr(body: &[u8]) -> Result<Vec<u8>> {
    if body.len() > EST_MAX_BODY_BYTES {
        return Err(PkiError::EstBodyTooLarge {
            len: body.len(),
            max: EST_MAX_BODY_BYTES,
        });
    }
    let mut compact = Vec::with_capacity(body.len());
    for (offset, &byte) in body.iter().enumerate() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => compact.push(byte),
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'-' if body[offset..].starts_with(b"-----BEGIN") => {
                let line = body[offset..]
                    .split(|&b| b == b'\n' || b == b'\r')
                    .next()
                    .unwrap_or_default();
                return Err(PkiError::EstBodyIsPem(
                    String::from_utf8_lossy(&line[..line.len().min(64)]).into_owned(),
                ));
            }
            _ => return Err(PkiError::EstBodyNotBase64 { offset, byte }),
        }
    }
    if compact.is_empty() {
        return Err(PkiError::EstBodyEmpty);
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(&compact)
        .map_err(|e| PkiError::EstBodyBadBase64(e.to_string()))
}

/// Encodes DER for an EST response body: base64 in 64-column lines, each
/// ending in CRLF (MIME's line end, which RFC 7030's base64 transfer
/// encoding inherits).
pub fn encode_est_body(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 32 + 2);
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// A certs-only CMS SignedData (RFC 5652 §5, the "degenerate" PKCS#7 of
/// RFC 7030 §4.1.3) holding `certs`, DER-encoded.
///
/// No content, no signers, an empty CRL set (as OpenSSL writes it). The
/// certificates form a DER `SET OF`, so they come out sorted by encoding,
/// not in the order given; EST clients must not rely on order (the RFC
/// does not promise one) and [`parse_certs_only_pkcs7`] does not. An empty
/// list and a duplicate certificate are errors.
pub fn certs_only_pkcs7(certs: &[Vec<u8>]) -> Result<Vec<u8>> {
    if certs.is_empty() {
        return Err(PkiError::Pkcs7("no certificates to send".into()));
    }
    let mut set = SetOfVec::new();
    for (i, der) in certs.iter().enumerate() {
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| PkiError::Pkcs7(format!("certificate {i}: {e}")))?;
        set.insert(CertificateChoices::Certificate(cert))
            .map_err(|e| PkiError::Pkcs7(format!("certificate {i}: {e}")))?;
    }
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(set)),
        crls: Some(cms::revocation::RevocationInfoChoices(SetOfVec::new())),
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    let content = der::Any::encode_from(&sd).map_err(|e| PkiError::Pkcs7(e.to_string()))?;
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content,
    }
    .to_der()
    .map_err(|e| PkiError::Pkcs7(e.to_string()))
}

/// The certificates of a certs-only SignedData (DER), each as DER, in the
/// order encoded.
///
/// Refused: anything but DER `ContentInfo { signedData }`, a SignedData
/// with encapsulated content or signers (that is a signed message, not a
/// certificate bag), non-X.509 certificate choices, and no certificates.
/// Input over 1 MiB is refused before parsing.
pub fn parse_certs_only_pkcs7(der: &[u8]) -> Result<Vec<Vec<u8>>> {
    if der.len() > MAX_INPUT_BYTES {
        return Err(PkiError::Pkcs7("larger than 1 MiB".into()));
    }
    let ci =
        ContentInfo::from_der(der).map_err(|e| PkiError::Pkcs7(format!("ContentInfo: {e}")))?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(PkiError::Pkcs7(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| PkiError::Pkcs7(format!("SignedData: {e}")))?;
    if sd.encap_content_info.econtent.is_some() || !sd.signer_infos.0.is_empty() {
        return Err(PkiError::Pkcs7(
            "has content or signers; expected certs-only".into(),
        ));
    }
    let mut out = Vec::new();
    for choice in sd.certificates.iter().flat_map(|s| s.0.iter()) {
        match choice {
            CertificateChoices::Certificate(c) => {
                out.push(c.to_der().map_err(|e| PkiError::Pkcs7(e.to_string()))?)
            }
            CertificateChoices::Other(_) => {
                return Err(PkiError::Pkcs7("holds a non-X.509 certificate".into()))
            }
        }
    }
    if out.is_empty() {
        return Err(PkiError::Pkcs7("holds no certificates".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::tests::new_ca;
    use proptest::prelude::*;

    #[test]
    fn body_round_trip_with_line_breaks() {
        let der: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let body = encode_est_body(&der);
        assert!(body.lines().all(|l| l.trim_end().len() <= 64));
        assert!(body.ends_with("\r\n"));
        assert_eq!(decode_est_csr(body.as_bytes()).unwrap(), der);
        let lf = body.replace("\r\n", "\n");
        assert_eq!(decode_est_csr(lf.as_bytes()).unwrap(), der);
        let spaced = format!("  \t{}\n\n", body.replace('\n', "\n "));
        assert_eq!(decode_est_csr(spaced.as_bytes()).unwrap(), der);
        // Unpadded base64 is accepted too.
        assert_eq!(decode_est_csr(b"AAE").unwrap(), [0, 1]);
    }

    #[test]
    fn body_errors_are_precise() {
        assert!(matches!(
            decode_est_csr(&vec![b'A'; EST_MAX_BODY_BYTES + 1]),
            Err(PkiError::EstBodyTooLarge { len, max }) if len == EST_MAX_BODY_BYTES + 1 && max == EST_MAX_BODY_BYTES
        ));
        assert!(decode_est_csr(&vec![b'A'; EST_MAX_BODY_BYTES]).is_ok());
        assert!(matches!(decode_est_csr(b""), Err(PkiError::EstBodyEmpty)));
        assert!(matches!(
            decode_est_csr(b" \r\n\t"),
            Err(PkiError::EstBodyEmpty)
        ));
        assert!(matches!(
            decode_est_csr(b"MIIB\nAB*C"),
            Err(PkiError::EstBodyNotBase64 {
                offset: 7,
                byte: b'*'
            })
        ));
        assert!(matches!(
            decode_est_csr("MIIBé".as_bytes()),
            Err(PkiError::EstBodyNotBase64 {
                offset: 4,
                byte: 0xc3
            })
        ));
        assert!(matches!(
            decode_est_csr(b"AB-C"),
            Err(PkiError::EstBodyNotBase64 {
                offset: 2,
                byte: b'-'
            })
        ));
        assert!(matches!(
            decode_est_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"),
            Err(PkiError::EstBodyIsPem(l)) if l == "-----BEGIN CERTIFICATE REQUEST-----"
        ));
        for bad in [&b"A"[..], b"AB=C", b"A===", b"ABC=D"] {
            assert!(
                matches!(decode_est_csr(bad), Err(PkiError::EstBodyBadBase64(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn pkcs7_round_trip_is_read_by_the_parser() {
        let (ca, _) = new_ca();
        let certs = ca.ca_certs_der();
        let p7 = certs_only_pkcs7(&certs).unwrap();
        let mut back = parse_certs_only_pkcs7(&p7).unwrap();
        let mut want = certs.clone();
        back.sort();
        want.sort();
        assert_eq!(back, want);
        // Over base64, as EST sends it.
        let body = encode_est_body(&p7);
        assert_eq!(decode_est_csr(body.as_bytes()).unwrap(), p7);
        // One certificate.
        let one = parse_certs_only_pkcs7(&certs_only_pkcs7(&certs[..1]).unwrap()).unwrap();
        assert_eq!(one, &certs[..1]);
    }

    #[test]
    fn pkcs7_errors() {
        let (ca, _) = new_ca();
        let c = ca.issuing_der().to_vec();
        assert!(matches!(certs_only_pkcs7(&[]), Err(PkiError::Pkcs7(_))));
        assert!(matches!(
            certs_only_pkcs7(&[b"junk".to_vec()]),
            Err(PkiError::Pkcs7(_))
        ));
        assert!(matches!(
            certs_only_pkcs7(&[c.clone(), c.clone()]),
            Err(PkiError::Pkcs7(_))
        ));
        for bad in [&b""[..], b"junk", &c, &[0x30, 0x80, 0, 0][..]] {
            assert!(
                matches!(parse_certs_only_pkcs7(bad), Err(PkiError::Pkcs7(_))),
                "{bad:?}"
            );
        }
        // ContentInfo of another type (id-data).
        let other = ContentInfo {
            content_type: ID_DATA,
            content: der::Any::encode_from(&der::asn1::OctetString::new(vec![1]).unwrap()).unwrap(),
        };
        assert!(
            matches!(parse_certs_only_pkcs7(&other.to_der().unwrap()), Err(PkiError::Pkcs7(m)) if m.contains("not signedData"))
        );
        let p7 = certs_only_pkcs7(&[c]).unwrap();
        for cut in 0..p7.len() {
            assert!(parse_certs_only_pkcs7(&p7[..cut]).is_err());
        }
        let mut trailing = p7.clone();
        trailing.push(0);
        assert!(parse_certs_only_pkcs7(&trailing).is_err());
        assert!(parse_certs_only_pkcs7(&vec![0u8; MAX_INPUT_BYTES + 1]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn base64_body_round_trip(der in proptest::collection::vec(any::<u8>(), 1..4096), crlf in any::<bool>()) {
            let body = encode_est_body(&der);
            let body = if crlf { body } else { body.replace("\r\n", "\n") };
            prop_assert_eq!(decode_est_csr(body.as_bytes()).unwrap(), der);
        }

        #[test]
        fn decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_est_csr(&body);
            let _ = parse_certs_only_pkcs7(&body);
        }
    }

    #[test]
    fn pkcs7_round_trip_property() {
        // Subsets of a pool of certificates (making certificates inside a
        // proptest case would dominate its run time).
        let (ca, _) = new_ca();
        let mut pool = ca.ca_certs_der();
        for i in 0..4 {
            let (_, csr) =
                crate::make_device_csr(crate::KeyAlgorithm::Ed25519, &format!("P-{i}"), "S")
                    .unwrap();
            let b = crate::DeviceBinding {
                asset_id: format!("P-{i}"),
                serial_number: "S".into(),
                mac: None,
            };
            pool.push(
                ca.issue_device(
                    &csr,
                    &b,
                    crate::CertSerial::random().unwrap(),
                    crate::ca::tests::NOW,
                )
                .unwrap()
                .der,
            );
        }
        proptest!(|(mask in 1u8..64)| {
            let chosen: Vec<Vec<u8>> = pool.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, c)| c.clone()).collect();
            let p7 = certs_only_pkcs7(&chosen).unwrap();
            let body = encode_est_body(&p7);
            let mut back = parse_certs_only_pkcs7(&decode_est_csr(body.as_bytes()).unwrap()).unwrap();
            let mut want = chosen.clone();
            back.sort();
            want.sort();
            prop_assert_eq!(back, want);
        });
    }
}
