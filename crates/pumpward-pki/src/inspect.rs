//! Reading certificates: what one says, for the UI, the audit trail and the
//! mTLS gateway's identity mapping.

use std::net::IpAddr;

use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer as _;

use crate::ca::{DEVICE_ASSET_URN_PREFIX, DEVICE_MAC_URN_PREFIX};
use crate::csr::strip_prefix_ci;
use crate::name::OID_SERIAL_NUMBER;
use crate::serial::serial_hex_from_der_content;
use crate::{PkiError, Result, MAX_INPUT_BYTES};

/// What a certificate says. Produced by [`inspect_certificate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, lowercase hex without leading zero bytes.
    pub serial_hex: String,
    /// Subject as an RFC 4514-style string.
    pub subject: String,
    /// Issuer as an RFC 4514-style string.
    pub issuer: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The asset id of a Pumpward device certificate, from its
    /// `urn:pumpward:asset:<id>` SAN URI (the first, if several).
    pub asset_id: Option<String>,
    /// The subject serialNumber attribute (a pump's serial number).
    pub device_serial: Option<String>,
    /// The MAC address from a `urn:pumpward:mac:<mac>` SAN URI.
    pub mac: Option<String>,
    /// DNS names in the subjectAltName.
    pub dns_names: Vec<String>,
    /// IP addresses in the subjectAltName.
    pub ip_addresses: Vec<IpAddr>,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// SHA-256 of the DER, lowercase hex (what `openssl x509 -fingerprint
    /// -sha256` prints, without colons).
    pub fingerprint: String,
    /// The subject's public key: DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// extendedKeyUsage includes codeSigning (the drug-library signer).
    pub code_signing: bool,
}

/// SHA-256 of `der`, lowercase hex.
pub(crate) fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>> {
    if der.len() > MAX_INPUT_BYTES {
        return Err(PkiError::CertificateMalformed("larger than 1 MiB".into()));
    }
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::CertificateMalformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(PkiError::CertificateMalformed(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

/// Reads a DER certificate. Any certificate is accepted, not only this CA's;
/// fields that are absent are `None`/empty. Malformed extensions are errors,
/// so that what this reports is what a TLS stack would see.
pub fn inspect_certificate(der: &[u8]) -> Result<CertInfo> {
    let cert = parse_cert(der)?;
    let bc = cert
        .basic_constraints()
        .map_err(|e| PkiError::CertificateMalformed(format!("basicConstraints: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::CertificateMalformed(format!("subjectAltName: {e}")))?;
    let mut asset_id = None;
    let mut mac = None;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    for n in san.iter().flat_map(|s| s.value.general_names.iter()) {
        match n {
            GeneralName::URI(u) => {
                if let Some(id) = strip_prefix_ci(u, DEVICE_ASSET_URN_PREFIX) {
                    asset_id.get_or_insert_with(|| id.to_owned());
                } else if let Some(m) = strip_prefix_ci(u, DEVICE_MAC_URN_PREFIX) {
                    mac.get_or_insert_with(|| m.to_owned());
                }
            }
            GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => ip_addresses.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                16 => ip_addresses.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                _ => {}
            },
            _ => {}
        }
    }
    let serial_oid = x509_parser::der_parser::oid::Oid::from(&OID_SERIAL_NUMBER[..])
        .map_err(|_| PkiError::CertificateMalformed("serialNumber OID".into()))?;
    let device_serial = cert
        .subject()
        .iter_by_oid(&serial_oid)
        .next()
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    Ok(CertInfo {
        serial_hex: serial_hex_from_der_content(cert.raw_serial()),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        asset_id,
        device_serial,
        mac,
        dns_names,
        ip_addresses,
        is_ca: bc.is_some_and(|b| b.value.ca),
        fingerprint: sha256_hex(der),
        spki_der: cert.public_key().raw.to_vec(),
        code_signing: cert
            .extended_key_usage()
            .map_err(|e| PkiError::CertificateMalformed(format!("extendedKeyUsage: {e}")))?
            .is_some_and(|e| e.value.code_signing),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::tests::new_ca;

    #[test]
    fn reads_ca_certificates_and_refuses_garbage() {
        let (ca, _) = new_ca();
        let root = inspect_certificate(ca.root_der().unwrap()).unwrap();
        assert!(root.is_ca);
        assert_eq!(root.subject, root.issuer);
        assert!(root.asset_id.is_none() && root.device_serial.is_none() && root.mac.is_none());
        assert_eq!(root.fingerprint.len(), 64);
        assert_eq!(root.serial_hex.len(), 32);
        let issuing = inspect_certificate(ca.issuing_der()).unwrap();
        assert_eq!(issuing.issuer, root.subject);
        assert!(issuing.not_before < issuing.not_after);

        assert!(matches!(
            inspect_certificate(b""),
            Err(PkiError::CertificateMalformed(_))
        ));
        assert!(matches!(
            inspect_certificate(b"junk"),
            Err(PkiError::CertificateMalformed(_))
        ));
        let mut trailing = ca.issuing_der().to_vec();
        trailing.push(0);
        assert!(
            matches!(inspect_certificate(&trailing), Err(PkiError::CertificateMalformed(m)) if m.contains("after"))
        );
        let d = ca.issuing_der();
        for cut in [1, d.len() / 2, d.len() - 1] {
            assert!(inspect_certificate(&d[..cut]).is_err());
        }
    }
}
