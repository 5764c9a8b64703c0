//! The certificate authority: creation, import, loading, issuance, CRLs.

use std::fmt;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PublicKeyData as _, RevokedCertParams, SanType,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::PrivateKeyDer;
use time::{Duration, OffsetDateTime, UtcOffset};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use zeroize::{Zeroize as _, Zeroizing};

use crate::csr::{check_csr, strip_prefix_ci, KeyKind};
use crate::inspect::{inspect_certificate, parse_cert, sha256_hex};
use crate::name::{self, OID_SERIAL_NUMBER};
use crate::{
    open_private_key, pem_certs, pem_encode, seal_private_key, CertSerial, Kek, KeyAlgorithm,
    PkiError, Result, RevokedEntry, MAX_INPUT_BYTES,
};

/// SAN URI prefix naming the asset a device certificate belongs to:
/// `urn:pumpward:asset:<asset_id>`. This is the identity the mTLS gateway
/// maps a client certificate to.
pub const DEVICE_ASSET_URN_PREFIX: &str = "urn:pumpward:asset:";

/// SAN URI prefix recording the device's MAC address:
/// `urn:pumpward:mac:<aa:bb:cc:dd:ee:ff>`.
///
/// A URI rather than a subject attribute or a custom extension: SAN URIs
/// are carried and shown by every X.509 tool, rustls-webpki skips name
/// types it does not match against, and no private OID has to be
/// registered. The canonical lowercase colon form makes it comparable as a
/// string with the inventory's MAC.
pub const DEVICE_MAC_URN_PREFIX: &str = "urn:pumpward:mac:";

/// How far `notBefore` is set before the issuance time. Pump real-time
/// clocks drift and some are set by hand; a certificate that is "not yet
/// valid" on a pump whose clock is a few minutes behind fails enrollment in
/// a way bedside staff cannot diagnose. One hour covers that without
/// meaningfully extending validity.
const BACKDATE: Duration = Duration::hours(1);

/// Policy of the CA: algorithm for new CA keys, the organisation named in
/// every certificate, validity periods and the CRL location.
///
/// Policy is configuration, not key material: [`Ca::load`] takes it anew,
/// so validity periods or the CRL URL can change without re-keying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfig {
    /// Algorithm of the CA keys made by [`Ca::create`] (and of server keys
    /// when the caller asks for the default).
    pub algorithm: KeyAlgorithm,
    /// `O=` of every certificate (the hospital or health system).
    pub organization: String,
    /// Root CA validity (default 7305 days, 20 years).
    pub root_validity_days: u32,
    /// Issuing CA validity (default 3653 days, 10 years; never beyond the root).
    pub issuing_validity_days: u32,
    /// Device (pump) certificate validity (default 365 days).
    pub device_validity_days: u32,
    /// Server certificate validity (default 397 days, the CA/Browser Forum
    /// ceiling that browsers enforce even for private roots on some platforms).
    pub server_validity_days: u32,
    /// Where relying parties fetch this CA's CRL (`http://` or `https://`).
    /// Written as the CRL distribution point of every issued certificate
    /// (not into the CRLs, see [`Ca::crl`], so it may change). Plain HTTP is
    /// normal and safe for CRLs (they are signed) and avoids the circularity
    /// of checking the CRL server's certificate against the CRL.
    pub crl_url: Option<String>,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            algorithm: KeyAlgorithm::default(),
            organization: "Pumpward".into(),
            root_validity_days: 7305,
            issuing_validity_days: 3653,
            device_validity_days: 365,
            server_validity_days: 397,
            crl_url: None,
        }
    }
}

impl CaConfig {
    /// Checks every value; [`Ca::create`], [`Ca::load`] and
    /// [`Ca::import_issuing`] call this.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PkiError::InvalidConfig(m));
        let org = &self.organization;
        let n = org.chars().count();
        if n == 0 || n > 64 || org.trim() != org || org.chars().any(char::is_control) {
            return bad(format!(
                "organization {org:?} must be 1 to 64 characters, without control characters or surrounding spaces"
            ));
        }
        for (what, days) in [
            ("root_validity_days", self.root_validity_days),
            ("issuing_validity_days", self.issuing_validity_days),
            ("device_validity_days", self.device_validity_days),
            ("server_validity_days", self.server_validity_days),
        ] {
            if !(1..=36525).contains(&days) {
                return bad(format!(
                    "{what} is {days}; it must be 1 to 36525 (100 years)"
                ));
            }
        }
        if self.issuing_validity_days > self.root_validity_days {
            return bad("issuing_validity_days exceeds root_validity_days".into());
        }
        if let Some(url) = &self.crl_url {
            let scheme_ok = strip_prefix_ci(url, "http://").is_some()
                || strip_prefix_ci(url, "https://").is_some();
            if !scheme_ok
                || url.len() > 2048
                || !url.bytes().all(|b| b.is_ascii_graphic())
                || url.len() <= "https://".len()
            {
                return bad(format!(
                    "crl_url {url:?} must be an http:// or https:// URL of printable ASCII"
                ));
            }
        }
        Ok(())
    }
}

/// What the caller stores to rebuild the CA with [`Ca::load`]. Everything
/// here may sit in the database: certificates are public and keys are
/// sealed under a [`Kek`] that is kept elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaMaterial {
    /// The issuing CA certificate (PEM, one certificate).
    pub issuing_cert_pem: String,
    /// The issuing CA's private key, sealed ([`seal_private_key`]).
    pub issuing_key_sealed: String,
    /// The certificates above the issuing CA, nearest first, ending with the
    /// root when it is known (PEM; empty for an imported CA given without
    /// its chain).
    pub chain_pem: String,
    /// The root CA's private key, sealed; `None` for an imported issuing CA.
    /// [`Ca::load`] does not open it: the running CA never holds the root
    /// key.
    pub root_key_sealed: Option<String>,
}

/// The identity an enrollment was authenticated for: the asset record the
/// server matched the bootstrap token or existing certificate to. This —
/// not the CSR — is what the device certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceBinding {
    /// The inventory's asset id (1–64 of `A-Z a-z 0-9 . _ - :`).
    pub asset_id: String,
    /// The pump's serial number (1–64 characters).
    pub serial_number: String,
    /// The pump's MAC address, if the inventory knows it.
    pub mac: Option<String>,
}

/// A certificate the CA issued. Record at least `serial_hex` and
/// `sha256_fingerprint` with the asset before handing `der`/`pem` out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// DER.
    pub der: Vec<u8>,
    /// PEM (`CERTIFICATE`).
    pub pem: String,
    /// Serial number, lowercase hex (as [`CertSerial::to_hex`]).
    pub serial_hex: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256_fingerprint: String,
}

impl IssuedCertificate {
    fn from_der(der: Vec<u8>) -> Result<Self> {
        let info = inspect_certificate(&der)?;
        Ok(Self {
            pem: pem_encode("CERTIFICATE", &der),
            serial_hex: info.serial_hex,
            not_before: info.not_before,
            not_after: info.not_after,
            sha256_fingerprint: sha256_hex(&der),
            der,
        })
    }
}

/// The key of a server certificate.
#[derive(Debug, Clone, Copy)]
pub enum ServerKey<'a> {
    /// The CA generates a key pair of this algorithm and returns the private
    /// key with the certificate (for the server's own listeners).
    Generate(KeyAlgorithm),
    /// Certify this public key (DER SubjectPublicKeyInfo), e.g. a gateway
    /// appliance whose key never leaves it.
    PublicKey(&'a [u8]),
}

/// A server certificate, with its private key when the CA generated it.
pub struct IssuedServerCertificate {
    /// The certificate.
    pub certificate: IssuedCertificate,
    /// PKCS#8 DER of the generated key ([`ServerKey::Generate`]); `None`
    /// for [`ServerKey::PublicKey`]. Seal it before storing it.
    pub private_key_pkcs8: Option<Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for IssuedServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedServerCertificate")
            .field("certificate", &self.certificate)
            .field(
                "private_key_pkcs8",
                &self.private_key_pkcs8.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// How long a library-signing certificate is valid (two years). Pumps trust
/// the key they were given, so the certificate's end mostly tells operators
/// when to rotate.
pub const LIBRARY_SIGNER_VALIDITY_DAYS: u32 = 730;

/// The drug-library signing certificate and its freshly generated key.
pub struct IssuedLibrarySigner {
    /// The certificate (EKU codeSigning).
    pub certificate: IssuedCertificate,
    /// DER SubjectPublicKeyInfo of the key (P-256).
    pub spki_der: Vec<u8>,
    /// PKCS#8 DER of the key. Seal it before storing it.
    pub private_key_pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for IssuedLibrarySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedLibrarySigner")
            .field("certificate", &self.certificate)
            .field("private_key_pkcs8", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A loaded certificate authority: the issuing CA's certificate and key,
/// the chain above it, and the policy.
pub struct Ca {
    config: CaConfig,
    /// rcgen's view of the issuing CA (name, key identifier, key usages).
    /// Its own DER is a throwaway probe; `issuing_der` is the real one.
    issuer: rcgen::Certificate,
    issuer_key: KeyPair,
    issuing_der: Vec<u8>,
    chain_der: Vec<Vec<u8>>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    has_ski: bool,
    can_sign_crl: bool,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("issuing_fingerprint", &sha256_hex(&self.issuing_der))
            .field("chain_len", &self.chain_der.len())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        // Wipes rcgen's copy of the PKCS#8 bytes. (*ring*'s internal key
        // schedule is not reachable from here; it is freed, not wiped.)
        self.issuer_key.zeroize();
    }
}

/// `now` in UTC, whole seconds, within the years certificates can express
/// without surprises here.
fn normalize_time(t: OffsetDateTime) -> Result<OffsetDateTime> {
    let t = t.to_offset(UtcOffset::UTC);
    if !(1950..=9000).contains(&t.year()) {
        return Err(PkiError::InvalidTime(t.to_string()));
    }
    t.replace_nanosecond(0)
        .map_err(|_| PkiError::InvalidTime(t.to_string()))
}

fn signing(what: &str) -> impl Fn(rcgen::Error) -> PkiError + '_ {
    move |e| PkiError::Signing(format!("{what}: {e}"))
}

fn ca_params(
    organization: &str,
    common_name: String,
    path_len: u8,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    // A CA key signs certificates and CRLs, nothing else.
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = not_before;
    p.not_after = not_after;
    p.serial_number = Some(CertSerial::random()?.rcgen());
    p.key_identifier_method = KeyIdMethod::Sha256;
    Ok(p)
}

impl Ca {
    /// Creates a new two-level CA: a self-signed root (pathLen 1) and an
    /// issuing CA signed by it (pathLen 0: it can sign only end entities),
    /// both with keyUsage keyCertSign + cRLSign, of `config.algorithm`.
    ///
    /// Names are `O=<organization>, CN=Pumpward Root CA <id>` and
    /// `… CN=Pumpward Issuing CA <id>`, where `<id>` is 8 random hex digits
    /// shared by the pair, so that a re-created CA never has the same names
    /// as the one it replaces (path builders pick issuers by name).
    ///
    /// Both keys are sealed under `kek` in the returned [`CaMaterial`]; the
    /// root key is then dropped, and the returned [`Ca`] holds only the
    /// issuing key.
    pub fn create(config: &CaConfig, kek: &Kek, now: OffsetDateTime) -> Result<(Ca, CaMaterial)> {
        config.validate()?;
        let now = normalize_time(now)?;
        let id = &CertSerial::random()?.to_hex()[..8];
        let start = now - BACKDATE;

        let root_key = config.algorithm.generate()?;
        let root_end = now + Duration::days(config.root_validity_days.into());
        let root = ca_params(
            &config.organization,
            format!("Pumpward Root CA {id}"),
            1,
            start,
            root_end,
        )?
        .self_signed(&root_key)
        .map_err(signing("root CA certificate"))?;

        let issuing_key = config.algorithm.generate()?;
        let issuing_end = (now + Duration::days(config.issuing_validity_days.into())).min(root_end);
        let mut ip = ca_params(
            &config.organization,
            format!("Pumpward Issuing CA {id}"),
            0,
            start,
            issuing_end,
        )?;
        ip.use_authority_key_identifier_extension = true;
        let issuing = ip
            .signed_by(&issuing_key, &root, &root_key)
            .map_err(signing("issuing CA certificate"))?;

        let root_pkcs8 = Zeroizing::new(root_key.serialize_der());
        let issuing_pkcs8 = Zeroizing::new(issuing_key.serialize_der());
        let material = CaMaterial {
            issuing_cert_pem: pem_encode("CERTIFICATE", issuing.der()),
            issuing_key_sealed: seal_private_key(&issuing_pkcs8, kek)?,
            chain_pem: pem_encode("CERTIFICATE", root.der()),
            root_key_sealed: Some(seal_private_key(&root_pkcs8, kek)?),
        };
        let ca = Ca::from_parts(
            config.clone(),
            issuing.der().to_vec(),
            vec![root.der().to_vec()],
            issuing_key,
        )?;
        Ok((ca, material))
    }

    /// Uses a hospital's existing issuing CA.
    ///
    /// `cert_pem` holds the issuing CA certificate first, optionally followed
    /// by the certificates above it (nearest first, up to the root).
    /// `key_pem` is its unencrypted PKCS#8 private key (`PRIVATE KEY`); it
    /// is sealed under `kek` at once and the returned material holds only
    /// the sealed copy.
    ///
    /// Refused: a certificate that is not a CA (basicConstraints CA:TRUE) or
    /// lacks keyCertSign; a key that does not match the certificate; a chain
    /// whose links do not verify; a subject name that cannot be reproduced
    /// byte for byte; PKCS#1/SEC1 keys (with the `openssl` command that
    /// converts them).
    pub fn import_issuing(
        cert_pem: &str,
        key_pem: &str,
        config: &CaConfig,
        kek: &Kek,
    ) -> Result<(Ca, CaMaterial)> {
        config.validate()?;
        let mut certs = pem_certs(cert_pem, "the CA certificate PEM")?;
        if certs.is_empty() {
            return Err(PkiError::Pem(
                "the CA certificate PEM holds no CERTIFICATE block".into(),
            ));
        }
        if key_pem.len() > MAX_INPUT_BYTES {
            return Err(PkiError::Pem(
                "the private key PEM is larger than 1 MiB".into(),
            ));
        }
        let convert =
            "convert it with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem`";
        let pkcs8 = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) {
            Ok(PrivateKeyDer::Pkcs8(k)) => Zeroizing::new(k.secret_pkcs8_der().to_vec()),
            Ok(PrivateKeyDer::Pkcs1(_)) => {
                return Err(PkiError::InvalidPrivateKey(format!(
                    "an RSA PRIVATE KEY (PKCS#1); {convert}"
                )))
            }
            Ok(PrivateKeyDer::Sec1(_)) => {
                return Err(PkiError::InvalidPrivateKey(format!(
                    "an EC PRIVATE KEY (SEC1); {convert}"
                )))
            }
            Ok(_) => return Err(PkiError::InvalidPrivateKey("unknown key format".into())),
            Err(e) => {
                return Err(PkiError::Pem(format!(
                    "no unencrypted PRIVATE KEY block ({e}); an ENCRYPTED PRIVATE KEY must be decrypted first"
                )))
            }
        };
        let key = KeyPair::try_from(pkcs8.as_slice())
            .map_err(|e| PkiError::InvalidPrivateKey(e.to_string()))?;
        let issuing_der = certs.remove(0);
        let material = CaMaterial {
            issuing_cert_pem: pem_encode("CERTIFICATE", &issuing_der),
            issuing_key_sealed: seal_private_key(&pkcs8, kek)?,
            chain_pem: certs.iter().map(|c| pem_encode("CERTIFICATE", c)).collect(),
            root_key_sealed: None,
        };
        let ca = Ca::from_parts(config.clone(), issuing_der, certs, key)?;
        Ok((ca, material))
    }

    /// Rebuilds the CA from stored material: opens the issuing key with
    /// `kek` and re-runs every check of [`Ca::import_issuing`]. The root key
    /// is not opened.
    pub fn load(material: &CaMaterial, config: &CaConfig, kek: &Kek) -> Result<Ca> {
        config.validate()?;
        let mut issuing = pem_certs(&material.issuing_cert_pem, "issuing_cert_pem")?;
        if issuing.len() != 1 {
            return Err(PkiError::Pem(format!(
                "issuing_cert_pem holds {} certificates; expected 1",
                issuing.len()
            )));
        }
        let chain = pem_certs(&material.chain_pem, "chain_pem")?;
        let pkcs8 = open_private_key(&material.issuing_key_sealed, kek)?;
        let key = KeyPair::try_from(pkcs8.as_slice())
            .map_err(|e| PkiError::InvalidPrivateKey(e.to_string()))?;
        Ca::from_parts(config.clone(), issuing.remove(0), chain, key)
    }

    /// Validates an issuing CA and builds the signer.
    fn from_parts(
        config: CaConfig,
        issuing_der: Vec<u8>,
        chain_der: Vec<Vec<u8>>,
        key: KeyPair,
    ) -> Result<Ca> {
        let cert = parse_cert(&issuing_der)?;
        let not_ca = |m: &str| PkiError::NotAnIssuingCa(m.to_owned());
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            Ok(_) => return Err(not_ca("basicConstraints CA:TRUE is missing")),
            Err(e) => return Err(PkiError::NotAnIssuingCa(format!("basicConstraints: {e}"))),
        }
        let ku = match cert.key_usage() {
            Ok(Some(ku)) => *ku.value,
            Ok(None) => {
                return Err(not_ca(
                    "it has no keyUsage extension (keyCertSign is required)",
                ))
            }
            Err(e) => return Err(PkiError::NotAnIssuingCa(format!("keyUsage: {e}"))),
        };
        if !ku.key_cert_sign() {
            return Err(not_ca("its keyUsage lacks keyCertSign"));
        }
        let ski = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            });
        let dn = name::to_rcgen(cert.subject())
            .map_err(|e| PkiError::NotAnIssuingCa(format!("its subject name: {e}")))?;

        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        // Issued certificates' authorityKeyIdentifier must equal this CA's
        // subjectKeyIdentifier exactly, whatever method made it.
        params.key_identifier_method = match &ski {
            Some(k) => KeyIdMethod::PreSpecified(k.clone()),
            None => KeyIdMethod::Sha256,
        };
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        if ku.crl_sign() {
            params.key_usages.push(KeyUsagePurpose::CrlSign);
        }
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = cert.validity().not_before.to_datetime();
        params.not_after = cert.validity().not_after.to_datetime();
        params.serial_number = Some(CertSerial::random()?.rcgen());

        // The probe: rcgen signs with our key and writes our name as it
        // will in every certificate it issues. The CA certificate's public
        // key must verify it, and the name must come out identical.
        let issuer = params
            .self_signed(&key)
            .map_err(|e| PkiError::InvalidPrivateKey(format!("cannot sign with it: {e}")))?;
        let probe = parse_cert(issuer.der())?;
        probe
            .verify_signature(Some(cert.public_key()))
            .map_err(|_| PkiError::KeyMismatch)?;
        if probe.issuer().as_raw() != cert.subject().as_raw() {
            return Err(PkiError::NotAnIssuingCa(format!(
                "its subject name ({}) cannot be reproduced byte for byte, \
                 so certificates issued under it would not chain",
                cert.subject()
            )));
        }

        check_chain(&cert, &chain_der)?;

        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let can_sign_crl = ku.crl_sign();
        drop(probe);
        drop(cert);
        Ok(Ca {
            config,
            issuer,
            issuer_key: key,
            issuing_der,
            chain_der,
            not_before,
            not_after,
            has_ski: ski.is_some(),
            can_sign_crl,
        })
    }

    /// The policy in force.
    pub fn config(&self) -> &CaConfig {
        &self.config
    }

    /// The issuing CA certificate, DER.
    pub fn issuing_der(&self) -> &[u8] {
        &self.issuing_der
    }

    /// The issuing CA certificate, PEM.
    pub fn issuing_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.issuing_der)
    }

    /// The certificates above the issuing CA, nearest first, DER.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain_der
    }

    /// The root CA certificate, DER: the last certificate of the chain when
    /// it is self-issued. `None` for an imported CA given without its root.
    pub fn root_der(&self) -> Option<&[u8]> {
        let last = self.chain_der.last()?;
        let c = parse_cert(last).ok()?;
        (c.subject().as_raw() == c.issuer().as_raw()).then_some(last.as_slice())
    }

    /// The root CA certificate, PEM (see [`Ca::root_der`]).
    pub fn root_pem(&self) -> Option<String> {
        self.root_der().map(|d| pem_encode("CERTIFICATE", d))
    }

    /// The issuing CA and everything above it, DER: what EST `/cacerts`
    /// returns (RFC 7030 §4.1.3) and what a TLS peer sends after its leaf.
    pub fn ca_certs_der(&self) -> Vec<Vec<u8>> {
        std::iter::once(self.issuing_der.clone())
            .chain(self.chain_der.iter().cloned())
            .collect()
    }

    /// Validity for a new end-entity certificate issued at `now`: from
    /// `now - 1h` (see `BACKDATE`) for `days`, clamped to the issuing CA's
    /// own validity (a certificate cannot usefully outlive its issuer).
    fn validity(&self, now: OffsetDateTime, days: u32) -> Result<(OffsetDateTime, OffsetDateTime)> {
        let now = normalize_time(now)?;
        if now < self.not_before || now >= self.not_after {
            return Err(PkiError::CaNotValidAt {
                now: now.to_string(),
                not_before: self.not_before.to_string(),
                not_after: self.not_after.to_string(),
            });
        }
        let nb = (now - BACKDATE).max(self.not_before);
        let na = (now + Duration::days(days.into())).min(self.not_after);
        Ok((nb, na))
    }

    /// Parameters common to every end-entity certificate.
    fn leaf_params(
        &self,
        serial: &CertSerial,
        now: OffsetDateTime,
        days: u32,
    ) -> Result<CertificateParams> {
        let (nb, na) = self.validity(now, days)?;
        let mut p = CertificateParams::default();
        p.not_before = nb;
        p.not_after = na;
        p.serial_number = Some(serial.rcgen());
        // ExplicitNoCa writes basicConstraints CA:FALSE (critical) and a
        // subjectKeyIdentifier; NoCa would omit both.
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = self.has_ski;
        p.key_identifier_method = KeyIdMethod::Sha256;
        if let Some(url) = &self.config.crl_url {
            p.crl_distribution_points = vec![CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        Ok(p)
    }

    /// Issues a pump's client certificate.
    ///
    /// The CSR is parsed, its algorithms checked (SHA-2 signatures; P-256,
    /// P-384, Ed25519 or RSA 2048–8192 keys) and its signature verified.
    /// If it names a device — subject serialNumber, SAN URI
    /// `urn:pumpward:asset:…` or `urn:pumpward:mac:…` — that must be the
    /// device of `binding`, else [`PkiError::CsrForAnotherAsset`]. Nothing
    /// else in the CSR is looked at.
    ///
    /// The certificate is built from `binding` and policy alone:
    /// subject `O=<organization>, CN=<asset_id>, serialNumber=<serial>`;
    /// SAN URIs `urn:pumpward:asset:<asset_id>` and, when known,
    /// `urn:pumpward:mac:<mac>`; basicConstraints CA:FALSE; keyUsage
    /// digitalSignature (+ keyAgreement for EC keys, + keyEncipherment for
    /// RSA keys); extendedKeyUsage clientAuth only; validity
    /// `device_validity_days`; the CRL distribution point; the authority and
    /// subject key identifiers; `serial` as given.
    pub fn issue_device(
        &self,
        csr_der: &[u8],
        binding: &DeviceBinding,
        serial: CertSerial,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        name::check_asset_id(&binding.asset_id)?;
        name::check_device_serial(&binding.serial_number)?;
        let mac = match &binding.mac {
            None => None,
            Some(m) => Some(name::canonical_mac(m).ok_or_else(|| {
                PkiError::InvalidBinding(format!(
                    "MAC {m:?} is not a unicast device address (aa:bb:cc:dd:ee:ff)"
                ))
            })?),
        };

        let csr = check_csr(csr_der)?;
        for s in &csr.subject_serials {
            if *s != binding.serial_number {
                return Err(PkiError::CsrForAnotherAsset {
                    field: "serialNumber",
                    requested: s.clone(),
                    expected: binding.serial_number.clone(),
                });
            }
        }
        for uri in &csr.san_uris {
            if let Some(id) = strip_prefix_ci(uri, DEVICE_ASSET_URN_PREFIX) {
                if id != binding.asset_id {
                    return Err(PkiError::CsrForAnotherAsset {
                        field: "asset",
                        requested: id.to_owned(),
                        expected: binding.asset_id.clone(),
                    });
                }
            } else if let Some(m) = strip_prefix_ci(uri, DEVICE_MAC_URN_PREFIX) {
                let claimed = name::canonical_mac(m);
                if claimed.is_none() || claimed != mac {
                    return Err(PkiError::CsrForAnotherAsset {
                        field: "mac",
                        requested: m.to_owned(),
                        expected: mac.clone().unwrap_or_else(|| "(no MAC on record)".into()),
                    });
                }
            }
        }

        let mut p = self.leaf_params(&serial, now, self.config.device_validity_days)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, self.config.organization.as_str());
        dn.push(DnType::CommonName, binding.asset_id.as_str());
        dn.push(
            DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()),
            name::dn_value(&binding.serial_number),
        );
        p.distinguished_name = dn;
        let uri = |s: String| -> Result<SanType> {
            Ok(SanType::URI(s.try_into().map_err(|e| {
                PkiError::InvalidBinding(format!("SAN URI: {e}"))
            })?))
        };
        p.subject_alt_names = vec![uri(format!(
            "{DEVICE_ASSET_URN_PREFIX}{}",
            binding.asset_id
        ))?];
        if let Some(m) = &mac {
            p.subject_alt_names
                .push(uri(format!("{DEVICE_MAC_URN_PREFIX}{m}"))?);
        }
        p.key_usages = key_usages(csr.kind);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p
            .signed_by(&csr.spki, &self.issuer, &self.issuer_key)
            .map_err(signing("device certificate"))?;
        IssuedCertificate::from_der(cert.der().to_vec())
    }

    /// Issues a TLS server certificate (API/UI listener, mTLS gateway).
    ///
    /// `names` are DNS names or IP addresses (at least one; duplicates are
    /// dropped). Wildcards are refused: each listener gets its own names.
    /// Subject `O=<organization>, CN=<first name>` (CN only for names of at
    /// most 64 characters; clients use the SAN); SAN DNS/IP; CA:FALSE;
    /// keyUsage digitalSignature (+ keyEncipherment for RSA keys);
    /// extendedKeyUsage serverAuth only; validity `server_validity_days`.
    pub fn issue_server(
        &self,
        names: &[String],
        key: ServerKey<'_>,
        serial: CertSerial,
        now: OffsetDateTime,
    ) -> Result<IssuedServerCertificate> {
        let mut sans: Vec<SanType> = Vec::new();
        for n in names {
            let san = server_name(n)?;
            if !sans.contains(&san) {
                sans.push(san);
            }
        }
        if sans.is_empty() {
            return Err(PkiError::InvalidServerName {
                name: String::new(),
                reason: "a server certificate needs at least one DNS name or IP address",
            });
        }
        let mut p = self.leaf_params(&serial, now, self.config.server_validity_days)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, self.config.organization.as_str());
        if names[0].trim().len() <= 64 {
            dn.push(DnType::CommonName, names[0].trim());
        }
        p.distinguished_name = dn;
        p.subject_alt_names = sans;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];

        let (cert, private_key_pkcs8) = match key {
            ServerKey::Generate(alg) => {
                let kp = alg.generate()?;
                p.key_usages = key_usages(if alg == KeyAlgorithm::Ed25519 {
                    KeyKind::Ed25519
                } else {
                    KeyKind::Ec
                });
                // A server key needs no keyAgreement: TLS uses ephemeral ECDHE.
                p.key_usages.retain(|k| *k != KeyUsagePurpose::KeyAgreement);
                let c = p
                    .signed_by(&kp, &self.issuer, &self.issuer_key)
                    .map_err(signing("server certificate"))?;
                (c, Some(Zeroizing::new(kp.serialize_der())))
            }
            ServerKey::PublicKey(spki_der) => {
                if spki_der.len() > MAX_INPUT_BYTES {
                    return Err(PkiError::InvalidPrivateKey(
                        "public key larger than 1 MiB".into(),
                    ));
                }
                let spki = rcgen::SubjectPublicKeyInfo::from_der(spki_der)
                    .map_err(|e| PkiError::InvalidPrivateKey(format!("public key: {e}")))?;
                let kind = match spki.algorithm() {
                    a if a == &rcgen::PKCS_ED25519 => KeyKind::Ed25519,
                    a if a == &rcgen::PKCS_ECDSA_P256_SHA256
                        || a == &rcgen::PKCS_ECDSA_P384_SHA384 =>
                    {
                        KeyKind::Ec
                    }
                    _ => KeyKind::Rsa,
                };
                p.key_usages = key_usages(kind);
                p.key_usages.retain(|k| *k != KeyUsagePurpose::KeyAgreement);
                let c = p
                    .signed_by(&spki, &self.issuer, &self.issuer_key)
                    .map_err(signing("server certificate"))?;
                (c, None)
            }
        };
        Ok(IssuedServerCertificate {
            certificate: IssuedCertificate::from_der(cert.der().to_vec())?,
            private_key_pkcs8,
        })
    }

    /// Issues the certificate of Pumpward's drug-library signing key, with a
    /// fresh ECDSA P-256 key (the only algorithm of the library envelopes:
    /// COSE ES256), returned PKCS#8 for the caller to seal.
    ///
    /// Subject `O=<organization>, CN=Pumpward Drug Library Signing`;
    /// CA:FALSE; keyUsage digitalSignature only; extendedKeyUsage
    /// **codeSigning** only. A drug library is content a device executes
    /// decisions from, signed once and verified offline, which is what
    /// codeSigning (RFC 5280 §4.2.1.12: "signing of downloadable executable
    /// code") means to every X.509 tool; and because the certificate carries
    /// neither serverAuth nor clientAuth, no TLS stack that checks EKUs
    /// (rustls-webpki, the gateway) accepts it as a server or pump identity.
    /// A private Pumpward OID would say more, but no arc is registered for
    /// the project. Validity [`LIBRARY_SIGNER_VALIDITY_DAYS`], clamped to
    /// the issuing CA's.
    pub fn issue_library_signer(
        &self,
        serial: CertSerial,
        now: OffsetDateTime,
    ) -> Result<IssuedLibrarySigner> {
        let mut p = self.leaf_params(&serial, now, LIBRARY_SIGNER_VALIDITY_DAYS)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, self.config.organization.as_str());
        dn.push(DnType::CommonName, "Pumpward Drug Library Signing");
        p.distinguished_name = dn;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let kp = KeyAlgorithm::EcdsaP256.generate()?;
        let c = p
            .signed_by(&kp, &self.issuer, &self.issuer_key)
            .map_err(signing("library-signing certificate"))?;
        Ok(IssuedLibrarySigner {
            certificate: IssuedCertificate::from_der(c.der().to_vec())?,
            spki_der: kp.public_key_der(),
            private_key_pkcs8: Zeroizing::new(kp.serialize_der()),
        })
    }

    /// Signs a CRL (DER) listing `revoked`.
    ///
    /// RFC 5280 profile: version 2, authorityKeyIdentifier (this CA's
    /// subjectKeyIdentifier) and cRLNumber. `Unspecified` reasons are
    /// written without a reason code. `crl_number` must increase with every
    /// CRL the caller publishes.
    ///
    /// Deliberately **no issuingDistributionPoint**: this is one complete
    /// CRL for everything the issuing CA signed. With an IDP, relying
    /// parties (rustls-webpki, OpenSSL) treat the CRL as authoritative only
    /// for certificates whose CRL distribution point names the same URL, so
    /// changing `crl_url` would silently turn every older certificate's
    /// status into "unknown" — and the pump gateway refuses unknown status.
    ///
    /// Refused: `next_update` not after `this_update`, a malformed or
    /// repeated serial, a CA certificate without cRLSign.
    pub fn crl(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        if !self.can_sign_crl {
            return Err(PkiError::CaCannotSignCrl);
        }
        let this_update = normalize_time(this_update)?;
        let next_update = normalize_time(next_update)?;
        if next_update <= this_update {
            return Err(PkiError::InvalidCrl(
                "next_update must be after this_update".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for e in revoked {
            let serial = CertSerial::from_hex(&e.serial_hex)
                .map_err(|err| PkiError::InvalidCrl(format!("{:?}: {err}", e.serial_hex)))?;
            if !seen.insert(serial.clone()) {
                return Err(PkiError::InvalidCrl(format!(
                    "serial {serial} is listed twice"
                )));
            }
            revoked_certs.push(RevokedCertParams {
                serial_number: serial.rcgen(),
                revocation_time: normalize_time(e.revoked_at)?,
                reason_code: e.reason.rcgen(),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: rcgen::SerialNumber::from_slice(&crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            // With the CA's PreSpecified key identifier, the CRL's
            // authorityKeyIdentifier equals the CA certificate's SKI.
            key_identifier_method: self.issuer.params().key_identifier_method.clone(),
        };
        let crl = params
            .signed_by(&self.issuer, &self.issuer_key)
            .map_err(signing("CRL"))?;
        Ok(crl.der().to_vec())
    }

    /// [`Ca::crl`] as PEM (`X509 CRL`).
    pub fn crl_pem(
        &self,
        revoked: &[RevokedEntry],
        crl_number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<String> {
        let der = self.crl(revoked, crl_number, this_update, next_update)?;
        Ok(pem_encode("X509 CRL", &der))
    }
}

fn key_usages(kind: KeyKind) -> Vec<KeyUsagePurpose> {
    match kind {
        KeyKind::Ec => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ],
        KeyKind::Ed25519 => vec![KeyUsagePurpose::DigitalSignature],
        KeyKind::Rsa => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
    }
}

/// Each certificate of `issuing` + `chain` must be issued (name and
/// signature) by the next, and every certificate of `chain` must be a CA.
fn check_chain(issuing: &X509Certificate<'_>, chain: &[Vec<u8>]) -> Result<()> {
    let parsed = chain
        .iter()
        .enumerate()
        .map(|(i, d)| {
            parse_cert(d)
                .map_err(|e| PkiError::ChainBroken(format!("chain certificate {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut child = issuing;
    for (i, parent) in parsed.iter().enumerate() {
        if !matches!(parent.basic_constraints(), Ok(Some(bc)) if bc.value.ca) {
            return Err(PkiError::ChainBroken(format!(
                "chain certificate {} ({}) is not a CA",
                i + 1,
                parent.subject()
            )));
        }
        if child.issuer().as_raw() != parent.subject().as_raw()
            || child.verify_signature(Some(parent.public_key())).is_err()
        {
            return Err(PkiError::ChainBroken(format!(
                "{} was not issued by the next certificate, {}",
                child.subject(),
                parent.subject()
            )));
        }
        child = parent;
    }
    Ok(())
}

/// A server name as a SAN: an IP address, or a DNS name of LDH labels.
fn server_name(raw: &str) -> Result<SanType> {
    let n = raw.trim();
    let bad = |reason| {
        Err(PkiError::InvalidServerName {
            name: raw.to_owned(),
            reason,
        })
    };
    if let Ok(ip) = n.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if n.is_empty() {
        return bad("empty");
    }
    if n.contains('*') {
        return bad("wildcards are not issued");
    }
    let n = n.strip_suffix('.').unwrap_or(n);
    if n.len() > 253 {
        return bad("longer than 253 characters");
    }
    for label in n.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each label must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits, '-' and '.' are allowed (use punycode for IDNs)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
    }
    if n.rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad("looks like an IP address but is not one");
    }
    match n.to_ascii_lowercase().try_into() {
        Ok(ia5) => Ok(SanType::DnsName(ia5)),
        Err(_) => bad("not IA5"),
    }
}

#[cfg(test)]
pub(crate) mod tests;
