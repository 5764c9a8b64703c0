//! The certificate authority in service: `pumpward-pki`'s pure CA joined to
//! the store, the key-encryption key and the clock.
//!
//! [`CaService`] is the one way the server, the gateway and the CLI issue,
//! revoke and publish. Every certificate it hands out has been recorded
//! (and audited) first, so the store's `certificates` table is the complete
//! list of what the CA ever signed. Every revocation publishes a new CRL and
//! bumps [`CaService::revocations`], which the gateway watches to rebuild its
//! TLS configuration and to close the revoked pump's open connections.

use anyhow::{anyhow, bail, Context};
use pumpward_pki::Zeroizing;
use pumpward_pki::{
    Ca, CaConfig, CaMaterial, CertSerial, DeviceBinding, IssuedCertificate, Kek, PkiError,
    RevocationReason, RevokedEntry, ServerKey,
};
use pumpward_store::{
    Actor, CertKind, CertificateRecord, CrlRecord, Finding, FindingFilter, NewCertificate,
    NewFinding, Severity, Store, StoreError, StoredCaMaterial,
};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// Where the key-encryption key comes from. It is never stored in the
/// database or the data directory, so that a copy of either (a backup, a
/// stolen disk image) does not open the CA's keys.
#[derive(Clone)]
pub enum KekSource {
    /// A passphrase (argon2id), e.g. from `PUMPWARD_CA_PASSPHRASE`.
    Passphrase(Zeroizing<String>),
    /// A file of 32 random bytes (raw, hex or base64), e.g. on a secrets
    /// mount. `create` makes it (mode 0600) on first start if it is missing.
    KeyFile { path: PathBuf, create: bool },
}

impl std::fmt::Debug for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KekSource::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            KekSource::KeyFile { path, create } => f
                .debug_struct("KeyFile")
                .field("path", path)
                .field("create", create)
                .finish(),
        }
    }
}

impl KekSource {
    /// The default key file for a data directory: a sibling file
    /// `<data-dir>.kek`, outside the directory that holds the sealed keys.
    pub fn default_for(data_dir: &Path) -> KekSource {
        let mut name = data_dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "pumpward-data".into());
        name.push(".kek");
        let path = match data_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.join(name),
            _ => PathBuf::from(name),
        };
        KekSource::KeyFile { path, create: true }
    }

    /// Reads (or creates) the key-encryption key.
    pub fn load(&self) -> anyhow::Result<Kek> {
        match self {
            KekSource::Passphrase(p) => Ok(Kek::from_passphrase(p)?),
            KekSource::KeyFile { path, create } => {
                if !path.exists() {
                    if !create {
                        bail!(
                            "the CA's key-encryption key file {} does not exist",
                            path.display()
                        );
                    }
                    let text = Kek::generate_key_file()?;
                    write_private(path, text.as_bytes())?;
                    tracing::warn!(
                        path = %path.display(),
                        "created the CA's key-encryption key; keep it apart from the data \
                         directory and its backups (ca_kek_file names where it is)"
                    );
                }
                let bytes = Zeroizing::new(
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                );
                Kek::from_key_file_bytes(&bytes)
                    .with_context(|| format!("the key file {}", path.display()))
            }
        }
    }
}

/// Writes a secret readable by the owner only, durably.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// The CA's policy as the server runs it.
#[derive(Debug, Clone)]
pub struct PkiSettings {
    pub kek: KekSource,
    pub ca: CaConfig,
    /// How long a published CRL is valid (its nextUpdate).
    pub crl_validity: Duration,
    /// A CRL is regenerated when it has less than this left.
    pub crl_refresh_before: Duration,
    /// How long a one-time enrollment code may be used.
    pub enrollment_code_ttl: Duration,
    /// Certificates expiring within this are flagged.
    pub expiry_warning: Duration,
}

impl PkiSettings {
    pub fn new(kek: KekSource) -> PkiSettings {
        PkiSettings {
            kek,
            ca: CaConfig::default(),
            crl_validity: Duration::days(7),
            crl_refresh_before: Duration::days(2),
            enrollment_code_ttl: Duration::hours(1),
            expiry_warning: Duration::days(30),
        }
    }
}

/// Why an enrollment was refused, in terms the EST endpoint maps to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// No usable credential: unknown, used or expired code; revoked or
    /// unknown certificate (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The credential is fine but does not allow this (403): the CSR names
    /// another asset, or the asset may not be on the network.
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed (400): not base64, not a CSR, bad signature.
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<PkiError> for EnrollError {
    fn from(e: PkiError) -> Self {
        match e {
            PkiError::CsrForAnotherAsset { .. } => EnrollError::Forbidden(e.to_string()),
            PkiError::CsrMalformed(_)
            | PkiError::CsrBadSignature
            | PkiError::CsrUnsupportedAlgorithm(_)
            | PkiError::EstBodyTooLarge { .. }
            | PkiError::EstBodyEmpty
            | PkiError::EstBodyNotBase64 { .. }
            | PkiError::EstBodyIsPem(_)
            | PkiError::EstBodyBadBase64(_) => EnrollError::BadRequest(e.to_string()),
            other => EnrollError::Internal(other.into()),
        }
    }
}

impl From<StoreError> for EnrollError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => EnrollError::Unauthorized(m),
            other => EnrollError::Internal(other.into()),
        }
    }
}

/// A running CA.
pub struct CaService {
    store: Store,
    ca: Ca,
    settings: PkiSettings,
    /// Bumped after every revocation (and CRL), for the gateway to react.
    revocations: tokio::sync::watch::Sender<u64>,
    /// Serialises CRL publication so that numbers are taken in order.
    crl_lock: tokio::sync::Mutex<()>,
}

impl CaService {
    /// Loads the store's CA, creating one (root and issuing CA) if the store
    /// has none and `create` is set.
    pub async fn open(
        store: Store,
        settings: PkiSettings,
        create: bool,
    ) -> anyhow::Result<Arc<CaService>> {
        let kek = settings.kek.load()?;
        let ca = match store.ca_material().await? {
            Some(m) => Ca::load(&from_stored(&m), &settings.ca, &kek)
                .context("cannot load the certificate authority")?,
            None if create => {
                let (ca, m) = Ca::create(&settings.ca, &kek, OffsetDateTime::now_utc())?;
                store
                    .save_ca_material(&to_stored(&m, "created"), &Actor::system())
                    .await?;
                tracing::info!("created the certificate authority (root and issuing CA)");
                ca
            }
            None => bail!("this store has no certificate authority yet; run `pumpward pki init`"),
        };
        Ok(Arc::new(Self::with(store, ca, settings)))
    }

    /// Sets up the CA from the hospital's existing issuing CA (PEM
    /// certificate, optionally followed by its chain, and PKCS#8 key).
    pub async fn import(
        store: Store,
        settings: PkiSettings,
        cert_pem: &str,
        key_pem: &str,
        actor: &Actor,
    ) -> anyhow::Result<Arc<CaService>> {
        let kek = settings.kek.load()?;
        let (ca, m) = Ca::import_issuing(cert_pem, key_pem, &settings.ca, &kek)?;
        store
            .save_ca_material(&to_stored(&m, "imported"), actor)
            .await?;
        Ok(Arc::new(Self::with(store, ca, settings)))
    }

    fn with(store: Store, ca: Ca, settings: PkiSettings) -> CaService {
        CaService {
            store,
            ca,
            settings,
            revocations: tokio::sync::watch::channel(0).0,
            crl_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    pub fn settings(&self) -> &PkiSettings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The issuing CA and the chain above it (up to the root), PEM, for
    /// clients to trust.
    pub fn chain_pem(&self) -> String {
        self.ca
            .ca_certs_der()
            .iter()
            .map(|d| pumpward_pki::pem_encode("CERTIFICATE", d))
            .collect()
    }

    /// Notified (with a growing counter) after every revocation.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    /// A fresh certificate and key for one of the server's own listeners.
    /// The key lives only in memory: a restart issues a new one.
    pub async fn server_identity(
        &self,
        names: &[String],
        listener: &str,
    ) -> anyhow::Result<crate::tls::Identity> {
        let issued = self.ca.issue_server(
            names,
            ServerKey::Generate(self.settings.ca.algorithm),
            CertSerial::random()?,
            OffsetDateTime::now_utc(),
        )?;
        let key = issued
            .private_key_pkcs8
            .as_ref()
            .ok_or_else(|| anyhow!("the CA did not return the generated key"))?;
        let c = &issued.certificate;
        self.store
            .record_certificate(
                &new_record(c, CertKind::Server, None, None),
                &format!("{listener} listener certificate at server start"),
                &Actor::system(),
            )
            .await?;
        let mut certs = vec![CertificateDer::from(c.der.clone())];
        certs.extend(
            self.ca
                .chain_der()
                .iter()
                .cloned()
                .map(CertificateDer::from),
        );
        let chain_pem = self.chain_pem();
        Ok(crate::tls::Identity {
            certs,
            key: PrivateKeyDer::try_from(key.to_vec()).map_err(|e| anyhow!("server key: {e}"))?,
            cert_pem: format!("{}{}", c.pem, chain_pem),
        })
    }

    /// EST bootstrap enrollment authorised by a one-time code: checks the
    /// code, issues for the code's asset, and spends the code in the same
    /// transaction that records the certificate.
    pub async fn enroll_with_code(
        &self,
        code: &str,
        csr_der: &[u8],
        claimed_asset: Option<&str>,
        source: Option<String>,
    ) -> Result<IssuedCertificate, EnrollError> {
        let now = OffsetDateTime::now_utc();
        let hash = crate::auth::token_hash(&normalize_enrollment_code(code));
        let enrollment =
            match self.store.usable_enrollment_code(&hash, now).await? {
                Some(e) if claimed_asset.is_none_or(|a| a == e.asset_id) => e,
                // A code presented for another asset is as good as unknown.
                _ => return Err(EnrollError::Unauthorized(
                    "the enrollment code is unknown, already used, expired or for another asset"
                        .into(),
                )),
            };
        let asset = self.store.asset(&enrollment.asset_id).await?;
        let binding = DeviceBinding {
            asset_id: enrollment.asset_id.clone(),
            serial_number: enrollment.device_serial.clone(),
            mac: asset.spec.mac_address.map(|m| m.to_string()),
        };
        let issued = self
            .ca
            .issue_device(csr_der, &binding, CertSerial::random()?, now)?;
        let actor = Actor {
            id: format!("device:{}", binding.asset_id),
            source,
        };
        self.store
            .enroll_with_code(
                &hash,
                &new_record(
                    &issued,
                    CertKind::Device,
                    Some(&binding.asset_id),
                    Some(&binding.serial_number),
                ),
                &actor,
            )
            .await?;
        Ok(issued)
    }

    /// EST re-enrollment authorised by the device's current certificate
    /// (already verified by TLS): same asset, same serial, new key allowed.
    pub async fn reenroll(
        &self,
        current: &CertificateRecord,
        csr_der: &[u8],
        source: Option<String>,
    ) -> Result<IssuedCertificate, EnrollError> {
        let now = OffsetDateTime::now_utc();
        if !current.is_valid_at(now) || current.kind != CertKind::Device {
            return Err(EnrollError::Unauthorized(format!(
                "certificate {} is revoked, expired or not a device certificate",
                current.serial
            )));
        }
        let asset_id = current
            .asset_id
            .clone()
            .ok_or_else(|| EnrollError::Unauthorized("the certificate names no asset".into()))?;
        let asset = self.store.asset(&asset_id).await?;
        if !asset.lifecycle_state.may_connect() {
            return Err(EnrollError::Forbidden(format!(
                "asset {asset_id} is {}; it may not renew its certificate",
                asset.lifecycle_state
            )));
        }
        let binding = DeviceBinding {
            asset_id: asset_id.clone(),
            serial_number: asset.spec.serial_number.clone(),
            mac: asset.spec.mac_address.map(|m| m.to_string()),
        };
        let issued = self
            .ca
            .issue_device(csr_der, &binding, CertSerial::random()?, now)?;
        let actor = Actor {
            id: format!("device:{asset_id}"),
            source,
        };
        self.store
            .record_certificate(
                &new_record(
                    &issued,
                    CertKind::Device,
                    Some(&asset_id),
                    Some(&binding.serial_number),
                ),
                &format!("EST re-enrollment with certificate {}", current.serial),
                &actor,
            )
            .await?;
        Ok(issued)
    }

    /// An operator issues a device certificate from a CSR (e.g. a pump
    /// whose key is made on a biomed workstation).
    pub async fn issue_for_asset(
        &self,
        asset_id: &str,
        csr_der: &[u8],
        actor: &Actor,
    ) -> anyhow::Result<IssuedCertificate> {
        let asset = self.store.asset(asset_id).await?;
        let binding = DeviceBinding {
            asset_id: asset_id.to_owned(),
            serial_number: asset.spec.serial_number.clone(),
            mac: asset.spec.mac_address.map(|m| m.to_string()),
        };
        let issued = self.ca.issue_device(
            csr_der,
            &binding,
            CertSerial::random()?,
            OffsetDateTime::now_utc(),
        )?;
        self.store
            .record_certificate(
                &new_record(
                    &issued,
                    CertKind::Device,
                    Some(asset_id),
                    Some(&binding.serial_number),
                ),
                "issued by an operator from a CSR",
                actor,
            )
            .await?;
        Ok(issued)
    }

    /// A new one-time enrollment code for an asset. Returns the code (shown
    /// once; only its hash is kept) and when it expires.
    pub async fn create_enrollment_code(
        &self,
        asset_id: &str,
        actor: &Actor,
    ) -> Result<(String, pumpward_store::EnrollmentCode), StoreError> {
        let code = enrollment_code();
        let expires = OffsetDateTime::now_utc() + self.settings.enrollment_code_ttl;
        let e = self
            .store
            .create_enrollment_code(asset_id, &crate::auth::token_hash(&code), expires, actor)
            .await?;
        Ok((code, e))
    }

    /// Revokes a certificate, publishes a new CRL and tells the gateway.
    pub async fn revoke(
        &self,
        serial: &str,
        reason: RevocationReason,
        actor: &Actor,
    ) -> anyhow::Result<CertificateRecord> {
        let rec = self
            .store
            .revoke_certificate(serial, reason.as_str(), actor)
            .await?;
        self.publish_crl().await?;
        self.revocations.send_modify(|n| *n += 1);
        Ok(rec)
    }

    /// Signs and publishes a CRL of every unexpired revoked certificate.
    pub async fn publish_crl(&self) -> anyhow::Result<CrlRecord> {
        let _turn = self.crl_lock.lock().await;
        let now = OffsetDateTime::now_utc();
        let revoked = self
            .store
            .revoked_certificates(now)
            .await?
            .into_iter()
            .map(|r| {
                Ok(RevokedEntry {
                    serial_hex: r.serial,
                    revoked_at: pumpward_core::timefmt::parse(&r.revoked_at)
                        .map_err(|e| anyhow!("revocation time {}: {e}", r.revoked_at))?,
                    reason: r.reason.parse()?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let number = self.store.next_crl_number().await?;
        let next = now + self.settings.crl_validity;
        let pem = self.ca.crl_pem(&revoked, number as u64, now, next)?;
        let rec = CrlRecord {
            crl_number: number,
            this_update: pumpward_core::timefmt::format(now),
            next_update: pumpward_core::timefmt::format(next),
            pem,
        };
        self.store.publish_crl(&rec).await?;
        Ok(rec)
    }

    /// The CRL to serve: the newest one, regenerated first if there is none
    /// or it is close to its nextUpdate.
    pub async fn current_crl(&self) -> anyhow::Result<CrlRecord> {
        if let Some(c) = self.store.latest_crl().await? {
            let next = pumpward_core::timefmt::parse(&c.next_update)
                .map_err(|e| anyhow!("CRL nextUpdate {}: {e}", c.next_update))?;
            if next - OffsetDateTime::now_utc() > self.settings.crl_refresh_before {
                return Ok(c);
            }
        }
        self.publish_crl().await
    }

    /// The current CRL as DER, for a TLS client-certificate verifier.
    pub async fn current_crl_der(&self) -> anyhow::Result<CertificateRevocationListDer<'static>> {
        use rustls::pki_types::pem::PemObject;
        let c = self.current_crl().await?;
        CertificateRevocationListDer::from_pem_slice(c.pem.as_bytes())
            .map_err(|e| anyhow!("stored CRL: {e}"))
    }

    /// Keeps the CRL fresh and watches certificate expiry, hourly.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.current_crl().await {
                    tracing::error!(error = %e, "cannot refresh the CRL");
                }
                if let Err(e) = me.watch_expiry().await {
                    tracing::error!(error = %e, "cannot check certificate expiry");
                }
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            }
        })
    }

    /// The certificate expiry watch. Raises a `certificate.expiring` finding
    /// for each unrevoked device certificate that expires within the warning
    /// period (or has expired) and has no newer unrevoked certificate for
    /// the same asset, and resolves such findings once the certificate has
    /// been renewed or revoked. Findings are raised once and refreshed on
    /// later runs (see `pumpward_store::findings`). Returns the findings
    /// open after the run.
    pub async fn watch_expiry(&self) -> anyhow::Result<Vec<Finding>> {
        let now = OffsetDateTime::now_utc();
        let sys = Actor::system();
        // Resolve first: a renewed or revoked certificate needs no action.
        for f in self.open_expiry_findings().await? {
            let serial = f.subject.trim_start_matches("certificate:");
            let cert = match self.store.certificate(serial).await {
                Ok(c) => c,
                Err(StoreError::NotFound { .. }) => {
                    self.store
                        .resolve_finding(
                            EXPIRING,
                            &f.subject,
                            "certificate no longer on record",
                            &sys,
                        )
                        .await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let why = if cert.revoked_at.is_some() {
                Some("certificate revoked".to_owned())
            } else {
                self.successor(&cert).await?.map(|n| {
                    format!(
                        "renewed: certificate {} valid until {}",
                        n.serial, n.not_after
                    )
                })
            };
            if let Some(why) = why {
                self.store
                    .resolve_finding(EXPIRING, &f.subject, &why, &sys)
                    .await?;
            }
        }
        // Then raise (or refresh) one for each certificate that needs action,
        // including those already expired without a successor.
        let mut after = None;
        loop {
            let (page, next) = self
                .store
                .list_certificates(&pumpward_store::CertFilter {
                    kind: Some(CertKind::Device),
                    revoked: Some(false),
                    after: after.take(),
                    limit: 500,
                    ..Default::default()
                })
                .await?;
            for c in page {
                let Some(asset) = c.asset_id.clone() else {
                    continue;
                };
                let Ok(not_after) = pumpward_core::timefmt::parse(&c.not_after) else {
                    continue;
                };
                if not_after > now + self.settings.expiry_warning {
                    continue;
                }
                if self.successor(&c).await?.is_some() {
                    continue;
                }
                let left = not_after - now;
                let (severity, title) = if left.is_negative() {
                    (
                        Severity::High,
                        format!("Device certificate of {asset} expired on {}", c.not_after),
                    )
                } else {
                    (
                        if left <= Duration::days(7) {
                            Severity::High
                        } else {
                            Severity::Medium
                        },
                        format!(
                            "Device certificate of {asset} expires in {} days",
                            left.whole_days()
                        ),
                    )
                };
                self.store
                    .raise_finding(
                        &NewFinding {
                            kind: EXPIRING.into(),
                            subject: format!("certificate:{}", c.serial),
                            asset_id: Some(asset.clone()),
                            severity,
                            title,
                            evidence: serde_json::json!({
                                "serial": c.serial,
                                "subject": c.subject,
                                "not_after": c.not_after,
                                "days_left": left.whole_days(),
                            }),
                        },
                        &sys,
                    )
                    .await?;
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        self.open_expiry_findings().await
    }

    async fn open_expiry_findings(&self) -> anyhow::Result<Vec<Finding>> {
        let mut out = Vec::new();
        let mut before_id = None;
        loop {
            let (page, next) = self
                .store
                .list_findings(&FindingFilter {
                    kind: Some(EXPIRING.into()),
                    open: Some(true),
                    before_id,
                    limit: 500,
                    ..Default::default()
                })
                .await?;
            out.extend(page);
            match next {
                Some(n) => before_id = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// A newer unrevoked certificate for the same asset, if there is one.
    /// Times are canonical UTC text, so they compare as strings.
    async fn successor(&self, c: &CertificateRecord) -> anyhow::Result<Option<CertificateRecord>> {
        let Some(asset) = c.asset_id.clone() else {
            return Ok(None);
        };
        let (certs, _) = self
            .store
            .list_certificates(&pumpward_store::CertFilter {
                asset_id: Some(asset),
                revoked: Some(false),
                limit: 500,
                ..Default::default()
            })
            .await?;
        // Later expiry, or the same expiry (to the second) and issued later.
        let key = |x: &CertificateRecord| (x.not_after.clone(), x.issued_at.clone());
        Ok(certs
            .into_iter()
            .find(|n| n.serial != c.serial && key(n) > key(c)))
    }
}

/// The finding kind of the certificate expiry watch.
pub const EXPIRING: &str = "certificate.expiring";

pub(crate) fn new_record(
    c: &IssuedCertificate,
    kind: CertKind,
    asset_id: Option<&str>,
    device_serial: Option<&str>,
) -> NewCertificate {
    let subject = pumpward_pki::inspect_certificate(&c.der)
        .map(|i| i.subject)
        .unwrap_or_default();
    NewCertificate {
        serial: c.serial_hex.clone(),
        kind,
        asset_id: asset_id.map(Into::into),
        subject,
        device_serial: device_serial.map(Into::into),
        not_before: c.not_before,
        not_after: c.not_after,
        fingerprint: c.sha256_fingerprint.clone(),
        pem: c.pem.clone(),
    }
}

fn to_stored(m: &CaMaterial, origin: &str) -> StoredCaMaterial {
    StoredCaMaterial {
        issuing_cert_pem: m.issuing_cert_pem.clone(),
        issuing_key_sealed: m.issuing_key_sealed.clone(),
        chain_pem: m.chain_pem.clone(),
        root_key_sealed: m.root_key_sealed.clone(),
        origin: origin.into(),
    }
}

fn from_stored(m: &StoredCaMaterial) -> CaMaterial {
    CaMaterial {
        issuing_cert_pem: m.issuing_cert_pem.clone(),
        issuing_key_sealed: m.issuing_key_sealed.clone(),
        chain_pem: m.chain_pem.clone(),
        root_key_sealed: m.root_key_sealed.clone(),
    }
}

/// A one-time enrollment code: 20 characters of Crockford base32 (100
/// bits), in groups of four for reading aloud or typing on a pump's keypad.
/// No 0/O or 1/I/L confusion.
pub fn enrollment_code() -> String {
    use rand::RngCore;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut b = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let chars: Vec<char> = b
        .iter()
        .map(|x| ALPHABET[(x & 31) as usize] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Normalises a code as typed (case, spaces, dashes, the look-alikes) to
/// the form whose hash is stored.
pub fn normalize_enrollment_code(typed: &str) -> String {
    let mut s = String::new();
    for c in typed.chars().filter(|c| !c.is_whitespace() && *c != '-') {
        let c = match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        s.push(c);
    }
    s.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_100_bits_and_survive_retyping() {
        let c = enrollment_code();
        assert_eq!(c.len(), 24);
        assert_eq!(c.split('-').count(), 5);
        assert_ne!(c, enrollment_code());
        let typed = c.to_lowercase().replace('-', " ");
        assert_eq!(normalize_enrollment_code(&typed), c);
        assert_eq!(normalize_enrollment_code("o1il-2345"), "0111-2345");
    }

    #[test]
    fn default_kek_file_is_beside_not_inside_the_data_dir() {
        let KekSource::KeyFile { path, .. } =
            KekSource::default_for(Path::new("/srv/pumpward-data"))
        else {
            panic!()
        };
        assert_eq!(path, Path::new("/srv/pumpward-data.kek"));
        let KekSource::KeyFile { path, .. } = KekSource::default_for(Path::new("data")) else {
            panic!()
        };
        assert_eq!(path, Path::new("data.kek"));
    }
}
