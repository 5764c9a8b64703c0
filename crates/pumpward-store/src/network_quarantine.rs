//! The network quarantine list (issue 6): devices kept off the network by
//! MAC and the addresses they were seen at, for the enforcement exports
//! (`pumpward_net::quarantine`).
//!
//! Invariants:
//! - At most one quarantine in force per MAC (checked, and enforced by a
//!   partial unique index, so two nodes cannot both add one).
//! - Quarantining and releasing are audited (`network.quarantine`,
//!   `network.quarantine.release`) in the same transaction; a refused
//!   request changes nothing.
//! - A release keeps the row: the table is the list's history.

use std::net::IpAddr;

use crate::assets::require_reason;
use crate::{Actor, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::inventory::MacAddress;
use pumpward_core::timefmt;
use pumpward_net::QuarantinedDevice;
use sqlx::any::AnyRow;
use sqlx::Row;

/// One quarantine as stored, in force or released.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuarantineRecord {
    pub id: i64,
    pub mac: MacAddress,
    pub addresses: Vec<IpAddr>,
    pub zone: Option<String>,
    pub reason: String,
    /// Audit actor id of who quarantined it.
    pub quarantined_by: String,
    pub quarantined_at: String,
    pub released_by: Option<String>,
    pub released_at: Option<String>,
    pub release_reason: Option<String>,
}

impl QuarantineRecord {
    /// Whether the quarantine is in force (not released).
    pub fn in_force(&self) -> bool {
        self.released_at.is_none()
    }

    /// The entry the exports take.
    pub fn device(&self) -> QuarantinedDevice {
        QuarantinedDevice {
            mac: self.mac,
            addresses: self.addresses.clone(),
            zone: self.zone.clone(),
            reason: self.reason.clone(),
        }
    }
}

const COLUMNS: &str = "id, mac, addresses, zone, reason, quarantined_by, quarantined_at, \
     released_by, released_at, release_reason";

fn unreadable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("stored quarantine {what} cannot be read: {e}"))
}

fn from_row(r: &AnyRow) -> Result<QuarantineRecord> {
    let mac: String = r.try_get("mac")?;
    let addresses: String = r.try_get("addresses")?;
    Ok(QuarantineRecord {
        id: r.try_get("id")?,
        mac: mac.parse().map_err(|e| unreadable("mac", e))?,
        addresses: serde_json::from_str(&addresses).map_err(|e| unreadable("addresses", e))?,
        zone: r.try_get("zone")?,
        reason: r.try_get("reason")?,
        quarantined_by: r.try_get("quarantined_by")?,
        quarantined_at: r.try_get("quarantined_at")?,
        released_by: r.try_get("released_by")?,
        released_at: r.try_get("released_at")?,
        release_reason: r.try_get("release_reason")?,
    })
}

async fn fetch(conn: &mut crate::Conn, id: i64) -> Result<QuarantineRecord> {
    let r = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM network_quarantine WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        what: format!("quarantine {id}"),
    })?;
    from_row(&r)
}

impl Store {
    /// Puts a device on the quarantine list. Refused (changing nothing)
    /// when the MAC is already quarantined, or the entry is not valid.
    pub async fn quarantine_device(
        &self,
        d: &QuarantinedDevice,
        actor: &Actor,
    ) -> Result<QuarantineRecord> {
        let reason = require_reason(&d.reason)?.to_owned();
        if let Some(p) = d.problem() {
            return Err(StoreError::Invalid(p));
        }
        let mut addresses = d.addresses.clone();
        addresses.sort();
        addresses.dedup();
        let mac = d.mac.to_string();
        let now = crate::now();
        let at = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let held = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM network_quarantine WHERE mac = $1 AND released_at IS NULL"
        ))
        .bind(mac.clone())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(r) = held {
            let r = from_row(&r)?;
            return Err(StoreError::Conflict(format!(
                "{mac} is already quarantined (since {} by {})",
                r.quarantined_at, r.quarantined_by
            )));
        }
        let addresses_json =
            serde_json::to_string(&addresses).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let id: i64 = sqlx::query(
            "INSERT INTO network_quarantine (mac, addresses, zone, reason, quarantined_by, quarantined_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(mac.clone())
        .bind(addresses_json)
        .bind(d.zone.clone())
        .bind(reason.clone())
        .bind(actor.id.clone())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        let entry = actor
            .entry("network.quarantine", Outcome::Success)
            .object(format!("mac:{mac}"))
            .details(&serde_json::json!({
                "quarantine": id,
                "mac": mac,
                "addresses": addresses,
                "zone": d.zone,
                "reason": reason,
            }));
        let record = fetch(&mut tx, id).await?;
        tx.commit_audited(vec![entry], now).await?;
        Ok(record)
    }

    /// Releases a quarantine in force; the row stays as history.
    pub async fn release_quarantined_device(
        &self,
        id: i64,
        reason: &str,
        actor: &Actor,
    ) -> Result<QuarantineRecord> {
        let reason = require_reason(reason)?.to_owned();
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        let r = fetch(&mut tx, id).await?;
        if !r.in_force() {
            return Err(StoreError::Conflict(format!(
                "quarantine {id} ({}) was already released",
                r.mac
            )));
        }
        sqlx::query(
            "UPDATE network_quarantine SET released_by = $1, released_at = $2, release_reason = $3 \
             WHERE id = $4 AND released_at IS NULL",
        )
        .bind(actor.id.clone())
        .bind(timefmt::format(now))
        .bind(reason.clone())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let entry = actor
            .entry("network.quarantine.release", Outcome::Success)
            .object(format!("mac:{}", r.mac))
            .details(&serde_json::json!({
                "quarantine": id,
                "mac": r.mac.to_string(),
                "reason": reason,
            }));
        let record = fetch(&mut tx, id).await?;
        tx.commit_audited(vec![entry], now).await?;
        Ok(record)
    }

    /// One quarantine, in force or released.
    pub async fn quarantine_record(&self, id: i64) -> Result<QuarantineRecord> {
        let mut conn = self.pool().acquire().await?;
        fetch(&mut conn, id).await
    }

    /// The quarantines in force, by MAC; with `released`, the released ones
    /// too (newest first after those in force).
    pub async fn network_quarantine(&self, released: bool) -> Result<Vec<QuarantineRecord>> {
        let filter = if released {
            ""
        } else {
            "WHERE released_at IS NULL"
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM network_quarantine {filter} \
             ORDER BY CASE WHEN released_at IS NULL THEN 0 ELSE 1 END, \
             CASE WHEN released_at IS NULL THEN mac ELSE '' END, id DESC"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The devices the enforcement exports refuse: every quarantine in force.
    pub async fn quarantined_devices(&self) -> Result<Vec<QuarantinedDevice>> {
        Ok(self
            .network_quarantine(false)
            .await?
            .iter()
            .map(QuarantineRecord::device)
            .collect())
    }
}
