//! What the certificate authority keeps: its (sealed) material, every
//! certificate it issued, revocations, published CRLs and one-time EST
//! enrollment codes.
//!
//! The store knows nothing about X.509: certificates arrive already issued
//! (by `pumpward-pki`) and are kept as PEM with the facts the UI filters on.
//! What it guarantees is the bookkeeping: an issued certificate is recorded
//! and audited in the same transaction that spends the enrollment code that
//! authorised it, a code is spent at most once, revocations are final, and
//! CRL numbers only go up.

use crate::{Actor, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::inventory::LifecycleState;
use pumpward_core::timefmt;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

/// The CA's certificates and sealed keys, as `pumpward_pki::CaMaterial`
/// holds them, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCaMaterial {
    pub issuing_cert_pem: String,
    pub issuing_key_sealed: String,
    pub chain_pem: String,
    pub root_key_sealed: Option<String>,
    /// `created` (Pumpward made its own root) or `imported` (the hospital's CA).
    pub origin: String,
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertKind {
    Device,
    Server,
    /// The drug-library signing certificate (EKU codeSigning).
    LibrarySigning,
}

impl CertKind {
    fn as_str(self) -> &'static str {
        match self {
            CertKind::Device => "device",
            CertKind::Server => "server",
            CertKind::LibrarySigning => "library_signing",
        }
    }
}

/// A certificate the CA issued, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateRecord {
    /// Lower-case hex, as in `pumpward_pki::IssuedCertificate::serial_hex`.
    pub serial: String,
    pub kind: CertKind,
    pub asset_id: Option<String>,
    pub subject: String,
    pub device_serial: Option<String>,
    pub not_before: String,
    pub not_after: String,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    pub pem: String,
    pub issued_by: String,
    pub issued_at: String,
    pub revoked_at: Option<String>,
    pub revocation_reason: Option<String>,
    pub revoked_by: Option<String>,
}

impl CertificateRecord {
    /// Whether the certificate is unrevoked and inside its validity at `now`.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        let t = timefmt::format(now);
        self.revoked_at.is_none() && self.not_before <= t && t < self.not_after
    }
}

/// A certificate to record. Times are canonical UTC text (`timefmt`).
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub serial: String,
    pub kind: CertKind,
    pub asset_id: Option<String>,
    pub subject: String,
    pub device_serial: Option<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub fingerprint: String,
    pub pem: String,
}

/// Which certificates to list.
#[derive(Debug, Clone, Default)]
pub struct CertFilter {
    pub asset_id: Option<String>,
    pub kind: Option<CertKind>,
    /// Only unrevoked certificates that expire before this time (and have
    /// not expired before `now`, the second element).
    pub expiring: Option<(OffsetDateTime, OffsetDateTime)>,
    /// `Some(true)`: only revoked ones; `Some(false)`: only unrevoked ones.
    pub revoked: Option<bool>,
    /// Page cursor: certificates whose serial sorts after this one.
    pub after: Option<String>,
    /// At most 500; 0 means 50.
    pub limit: i64,
}

/// A revoked certificate, for the CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    pub serial: String,
    pub revoked_at: String,
    pub reason: String,
}

/// A published CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    pub crl_number: i64,
    pub this_update: String,
    pub next_update: String,
    pub pem: String,
}

/// An enrollment code, found by its hash and still usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentCode {
    pub asset_id: String,
    pub device_serial: String,
    pub expires_at: String,
}

/// Fleet-wide certificate counts for the fleet view (see
/// [`Store::fleet_certificate_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FleetCertificateCounts {
    /// Assets of kind `pump`.
    pub pumps: i64,
    /// Pumps that have a current device certificate (an unrevoked one).
    pub enrolled: i64,
    /// Pumps whose current device certificate expires before the given
    /// time (including those already expired).
    pub expiring: i64,
}

const CERT_COLUMNS: &str = "serial, kind, asset_id, subject, device_serial, not_before, \
     not_after, fingerprint, pem, issued_by, issued_at, revoked_at, revocation_reason, revoked_by";

fn cert_from_row(r: &AnyRow) -> Result<CertificateRecord> {
    let kind: String = r.try_get("kind")?;
    Ok(CertificateRecord {
        serial: r.try_get("serial")?,
        kind: match kind.as_str() {
            "device" => CertKind::Device,
            "server" => CertKind::Server,
            "library_signing" => CertKind::LibrarySigning,
            other => {
                return Err(StoreError::Invalid(format!(
                    "unknown certificate kind {other}"
                )))
            }
        },
        asset_id: r.try_get("asset_id")?,
        subject: r.try_get("subject")?,
        device_serial: r.try_get("device_serial")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        fingerprint: r.try_get("fingerprint")?,
        pem: r.try_get("pem")?,
        issued_by: r.try_get("issued_by")?,
        issued_at: r.try_get("issued_at")?,
        revoked_at: r.try_get("revoked_at")?,
        revocation_reason: r.try_get("revocation_reason")?,
        revoked_by: r.try_get("revoked_by")?,
    })
}

pub(crate) async fn insert_certificate(
    conn: &mut crate::Conn,
    c: &NewCertificate,
    actor: &Actor,
    now: &str,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO certificates ({CERT_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL)"
    ))
    .bind(c.serial.clone())
    .bind(c.kind.as_str())
    .bind(c.asset_id.clone())
    .bind(c.subject.clone())
    .bind(c.device_serial.clone())
    .bind(timefmt::format(c.not_before))
    .bind(timefmt::format(c.not_after))
    .bind(c.fingerprint.clone())
    .bind(c.pem.clone())
    .bind(actor.id.clone())
    .bind(now.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) fn issue_entry(
    actor: &Actor,
    c: &NewCertificate,
    how: &str,
) -> pumpward_core::audit::AuditEntry {
    actor
        .entry("pki.certificate.issue", Outcome::Success)
        .object(format!("certificate:{}", c.serial))
        .reason(how)
        .details(&serde_json::json!({
            "kind": c.kind, "asset_id": c.asset_id, "subject": c.subject,
            "not_after": timefmt::format(c.not_after), "fingerprint": c.fingerprint,
        }))
}

impl Store {
    /// The CA's stored material, if a CA has been set up.
    pub async fn ca_material(&self) -> Result<Option<StoredCaMaterial>> {
        let r = sqlx::query(
            "SELECT issuing_cert_pem, issuing_key_sealed, chain_pem, root_key_sealed, origin \
             FROM ca_material WHERE id = 1",
        )
        .fetch_optional(self.pool())
        .await?;
        r.map(|r| {
            Ok(StoredCaMaterial {
                issuing_cert_pem: r.try_get("issuing_cert_pem")?,
                issuing_key_sealed: r.try_get("issuing_key_sealed")?,
                chain_pem: r.try_get("chain_pem")?,
                root_key_sealed: r.try_get("root_key_sealed")?,
                origin: r.try_get("origin")?,
            })
        })
        .transpose()
    }

    /// Stores the CA's material. There is one CA per store: a second call
    /// is refused rather than silently replacing the CA every pump trusts.
    pub async fn save_ca_material(&self, m: &StoredCaMaterial, actor: &Actor) -> Result<()> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 AS x FROM ca_material WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists {
            return Err(StoreError::Conflict(
                "this store already has a certificate authority; pumps trust it, so it is not replaced".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO ca_material (id, issuing_cert_pem, issuing_key_sealed, chain_pem, \
             root_key_sealed, origin, created_at) VALUES (1, $1, $2, $3, $4, $5, $6)",
        )
        .bind(m.issuing_cert_pem.clone())
        .bind(m.issuing_key_sealed.clone())
        .bind(m.chain_pem.clone())
        .bind(m.root_key_sealed.clone())
        .bind(m.origin.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let entry = actor
            .entry(&format!("pki.ca.{}", m.origin), Outcome::Success)
            .object("ca")
            .details(&serde_json::json!({ "issuing_cert_pem": m.issuing_cert_pem }));
        tx.commit_audited(vec![entry], crate::now()).await
    }

    /// Records a certificate issued by an operator or the server itself
    /// (`how` says why, for the audit trail).
    pub async fn record_certificate(
        &self,
        c: &NewCertificate,
        how: &str,
        actor: &Actor,
    ) -> Result<CertificateRecord> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        insert_certificate(&mut tx, c, actor, &now).await?;
        tx.commit_audited(vec![issue_entry(actor, c, how)], crate::now())
            .await?;
        self.certificate(&c.serial).await
    }

    /// One certificate by serial.
    pub async fn certificate(&self, serial: &str) -> Result<CertificateRecord> {
        let r = sqlx::query(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE serial = $1"
        ))
        .bind(serial.to_ascii_lowercase())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("certificate {serial}"),
        })?;
        cert_from_row(&r)
    }

    /// Certificates in serial order, one page at a time.
    pub async fn list_certificates(
        &self,
        f: &CertFilter,
    ) -> Result<(Vec<CertificateRecord>, Option<String>)> {
        let limit = if f.limit <= 0 { 50 } else { f.limit.min(500) };
        let mut sql = format!("SELECT {CERT_COLUMNS} FROM certificates WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut add = |sql: &mut String, cond: &str, v: String| {
            args.push(v);
            sql.push_str(&format!(" AND {cond} ${}", args.len()));
        };
        if let Some(a) = &f.asset_id {
            add(&mut sql, "asset_id =", a.clone());
        }
        if let Some(k) = f.kind {
            add(&mut sql, "kind =", k.as_str().into());
        }
        if let Some((before, now)) = f.expiring {
            sql.push_str(" AND revoked_at IS NULL");
            add(&mut sql, "not_after <", timefmt::format(before));
            add(&mut sql, "not_after >", timefmt::format(now));
        }
        match f.revoked {
            Some(true) => sql.push_str(" AND revoked_at IS NOT NULL"),
            Some(false) => sql.push_str(" AND revoked_at IS NULL"),
            None => {}
        }
        if let Some(a) = &f.after {
            add(&mut sql, "serial >", a.clone());
        }
        sql.push_str(&format!(" ORDER BY serial LIMIT {}", limit + 1));
        let mut q = sqlx::query(&sql);
        for a in args {
            q = q.bind(a);
        }
        let mut items = q
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(cert_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|c| c.serial.clone())
        } else {
            None
        };
        Ok((items, next))
    }

    /// Revokes a certificate. Revocation is final: revoking a revoked
    /// certificate is refused (and the first reason stands).
    pub async fn revoke_certificate(
        &self,
        serial: &str,
        reason: &str,
        actor: &Actor,
    ) -> Result<CertificateRecord> {
        let serial = serial.to_ascii_lowercase();
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2, revoked_by = $3 \
             WHERE serial = $4 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(reason.to_owned())
        .bind(actor.id.clone())
        .bind(serial.clone())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            drop(tx);
            let existing = self.certificate(&serial).await?;
            return Err(StoreError::Conflict(format!(
                "certificate {serial} was already revoked at {} ({})",
                existing.revoked_at.unwrap_or_default(),
                existing.revocation_reason.unwrap_or_default()
            )));
        }
        let entry = actor
            .entry("pki.certificate.revoke", Outcome::Success)
            .object(format!("certificate:{serial}"))
            .reason(reason);
        tx.commit_audited(vec![entry], crate::now()).await?;
        self.certificate(&serial).await
    }

    /// Every revoked certificate that has not yet expired (an expired
    /// certificate is refused anyway, so the CRL need not list it).
    pub async fn revoked_certificates(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<RevokedCertificate>> {
        sqlx::query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE revoked_at IS NOT NULL AND not_after > $1 ORDER BY serial",
        )
        .bind(timefmt::format(now))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(RevokedCertificate {
                serial: r.try_get("serial")?,
                revoked_at: r.try_get("revoked_at")?,
                reason: r.try_get("revocation_reason")?,
            })
        })
        .collect()
    }

    /// The number the next CRL must carry.
    pub async fn next_crl_number(&self) -> Result<i64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(crl_number) FROM crls")
            .fetch_one(self.pool())
            .await?;
        Ok(n.unwrap_or(0) + 1)
    }

    /// Publishes a CRL. Its number must be the next one: two publishers
    /// racing cannot both publish number n.
    pub async fn publish_crl(&self, crl: &CrlRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let max: Option<i64> = sqlx::query_scalar("SELECT MAX(crl_number) FROM crls")
            .fetch_one(&mut *tx)
            .await?;
        if crl.crl_number != max.unwrap_or(0) + 1 {
            return Err(StoreError::Conflict(format!(
                "CRL number {} is not the next one ({})",
                crl.crl_number,
                max.unwrap_or(0) + 1
            )));
        }
        sqlx::query(
            "INSERT INTO crls (crl_number, this_update, next_update, pem) VALUES ($1, $2, $3, $4)",
        )
        .bind(crl.crl_number)
        .bind(crl.this_update.clone())
        .bind(crl.next_update.clone())
        .bind(crl.pem.clone())
        .execute(&mut *tx)
        .await?;
        let entry = Actor::system()
            .entry("pki.crl.publish", Outcome::Success)
            .object(format!("crl:{}", crl.crl_number))
            .details(&serde_json::json!({ "next_update": crl.next_update }));
        tx.commit_audited(vec![entry], crate::now()).await
    }

    /// The newest published CRL.
    pub async fn latest_crl(&self) -> Result<Option<CrlRecord>> {
        let r = sqlx::query(
            "SELECT crl_number, this_update, next_update, pem FROM crls ORDER BY crl_number DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        r.map(|r| {
            Ok(CrlRecord {
                crl_number: r.try_get("crl_number")?,
                this_update: r.try_get("this_update")?,
                next_update: r.try_get("next_update")?,
                pem: r.try_get("pem")?,
            })
        })
        .transpose()
    }

    /// Stores a new one-time enrollment code (its hash) for an asset. Only
    /// assets that may be on the network (in service or in maintenance) or
    /// about to be (provisioned) can be enrolled.
    pub async fn create_enrollment_code(
        &self,
        asset_id: &str,
        code_hash: &str,
        expires_at: OffsetDateTime,
        actor: &Actor,
    ) -> Result<EnrollmentCode> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let r =
            sqlx::query("SELECT serial_number, lifecycle_state FROM assets WHERE asset_id = $1")
                .bind(asset_id.to_owned())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("asset {asset_id}"),
                })?;
        let serial: String = r.try_get("serial_number")?;
        let state: LifecycleState = r.try_get::<String, _>("lifecycle_state")?.parse().map_err(
            |e: pumpward_core::inventory::ValueError| StoreError::Invalid(e.to_string()),
        )?;
        if !(state.may_connect() || state == LifecycleState::Provisioned) {
            return Err(StoreError::Invalid(format!(
                "asset {asset_id} is {state}; only provisioned, in-service or maintenance assets can be enrolled"
            )));
        }
        let expires = timefmt::format(expires_at);
        sqlx::query(
            "INSERT INTO enrollment_codes (code_hash, asset_id, device_serial, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(code_hash.to_owned())
        .bind(asset_id.to_owned())
        .bind(serial.clone())
        .bind(actor.id.clone())
        .bind(now)
        .bind(expires.clone())
        .execute(&mut *tx)
        .await?;
        let entry = actor
            .entry("pki.enrollment_code.create", Outcome::Success)
            .object(format!("asset:{asset_id}"))
            .details(&serde_json::json!({ "expires_at": expires }));
        tx.commit_audited(vec![entry], crate::now()).await?;
        Ok(EnrollmentCode {
            asset_id: asset_id.to_owned(),
            device_serial: serial,
            expires_at: expires,
        })
    }

    /// The enrollment code with this hash, if it is unused and unexpired.
    pub async fn usable_enrollment_code(
        &self,
        code_hash: &str,
        now: OffsetDateTime,
    ) -> Result<Option<EnrollmentCode>> {
        let r = sqlx::query(
            "SELECT asset_id, device_serial, expires_at FROM enrollment_codes \
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(code_hash.to_owned())
        .bind(timefmt::format(now))
        .fetch_optional(self.pool())
        .await?;
        r.map(|r| {
            Ok(EnrollmentCode {
                asset_id: r.try_get("asset_id")?,
                device_serial: r.try_get("device_serial")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Spends an enrollment code on the certificate it authorised, and
    /// records that certificate, in one transaction: if the code was spent
    /// or expired in the meantime, nothing is recorded and the caller must
    /// not hand the certificate out.
    pub async fn enroll_with_code(
        &self,
        code_hash: &str,
        c: &NewCertificate,
        actor: &Actor,
    ) -> Result<CertificateRecord> {
        let now = crate::now();
        let now_s = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        insert_certificate(&mut tx, c, actor, &now_s).await?;
        let n = sqlx::query(
            "UPDATE enrollment_codes SET used_at = $1, certificate_serial = $2 \
             WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1 AND asset_id = $4",
        )
        .bind(now_s.clone())
        .bind(c.serial.clone())
        .bind(code_hash.to_owned())
        .bind(c.asset_id.clone().unwrap_or_default())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::Conflict(
                "the enrollment code is used, expired or for another asset".into(),
            ));
        }
        tx.commit_audited(
            vec![issue_entry(actor, c, "EST enrollment with a one-time code")],
            now,
        )
        .await?;
        self.certificate(&c.serial).await
    }

    /// The current device certificate of each of these assets, by asset:
    /// the unrevoked device certificate that expires last (ties: the one
    /// issued last, then the highest serial). An asset with no unrevoked
    /// device certificate has no entry. The certificate may have expired.
    pub async fn current_device_certificates(
        &self,
        asset_ids: &[String],
    ) -> Result<std::collections::HashMap<String, CertificateRecord>> {
        let mut out = std::collections::HashMap::new();
        for chunk in asset_ids.chunks(500) {
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {CERT_COLUMNS} FROM certificates \
                 WHERE kind = 'device' AND revoked_at IS NULL AND asset_id IN ({}) \
                 ORDER BY asset_id, not_after DESC, issued_at DESC, serial DESC",
                params.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for a in chunk {
                q = q.bind(a.clone());
            }
            for r in q.fetch_all(self.pool()).await? {
                let c = cert_from_row(&r)?;
                if let Some(a) = c.asset_id.clone() {
                    // Rows come newest first within each asset.
                    out.entry(a).or_insert(c);
                }
            }
        }
        Ok(out)
    }

    /// How many pumps there are, how many have a current device
    /// certificate, and how many of those expire before `expiring_before`.
    pub async fn fleet_certificate_counts(
        &self,
        expiring_before: OffsetDateTime,
    ) -> Result<FleetCertificateCounts> {
        let pumps: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assets WHERE kind = 'pump'")
            .fetch_one(self.pool())
            .await?;
        let r = sqlx::query(
            "SELECT COUNT(*) AS enrolled, \
             COALESCE(SUM(CASE WHEN t.last_not_after < $1 THEN 1 ELSE 0 END), 0) AS expiring \
             FROM (SELECT c.asset_id, MAX(c.not_after) AS last_not_after \
                   FROM certificates c JOIN assets a ON a.asset_id = c.asset_id \
                   WHERE c.kind = 'device' AND c.revoked_at IS NULL AND a.kind = 'pump' \
                   GROUP BY c.asset_id) t",
        )
        .bind(timefmt::format(expiring_before))
        .fetch_one(self.pool())
        .await?;
        Ok(FleetCertificateCounts {
            pumps,
            enrolled: r.try_get("enrolled")?,
            expiring: r.try_get("expiring")?,
        })
    }
}
