//! What the gateway keeps about connected pumps: per-device sequence state,
//! the events themselves, gaps, and the expected firmware digests.
//!
//! Events are written many batches to a transaction (`store_device_batches`)
//! so that a fleet's traffic costs few commits; the gateway acknowledges a
//! batch only after that call returns. A batch re-sent after a lost ack is
//! harmless: `(asset_id, seq)` is the key and duplicates are ignored.

use crate::assets::{fetch_asset, update_spec};
use crate::{Actor, Result, Store, StoreError};
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use sqlx::Row;
use std::collections::HashSet;
use time::OffsetDateTime;

/// One event to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEventRecord {
    pub seq: i64,
    /// When the pump says it happened (canonical UTC text).
    pub at: String,
    pub kind: String,
    /// The event as the pump sent it, JSON.
    pub body: String,
}

/// One pump's accepted batch: its new events, the gaps it revealed, and
/// what its events report about drug libraries (applied to the rollout in
/// the same transaction as the events).
#[derive(Debug, Clone, Default)]
pub struct DeviceBatch {
    pub asset_id: String,
    pub events: Vec<DeviceEventRecord>,
    pub gaps: Vec<(u64, u64)>,
    pub library_reports: Vec<crate::LibraryReport>,
}

/// What a pump said in hello, with the certificate it connected with.
#[derive(Debug, Clone)]
pub struct DeviceHello {
    pub asset_id: String,
    pub certificate_serial: String,
    pub protocol_version: u16,
    pub firmware_version: String,
    pub firmware_digest: String,
    pub library_version: Option<String>,
    /// The network identity, JSON.
    pub network: String,
    pub ip: Option<std::net::IpAddr>,
    pub source: String,
}

/// The firmware digest check of a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirmwareCheck {
    /// The digest is the one expected for this model and version.
    Expected,
    /// No digest is on file for this model and version.
    Unknown,
    /// The pump runs an image other than the expected one.
    Mismatch { expected: String },
}

impl Store {
    /// The highest sequence number stored for a pump (0 if none): the
    /// highest of its stored events (an index seek on the `(asset_id, seq)`
    /// key) or `device_channel.last_seq`, whichever is higher. The column is
    /// a floor kept for stores written before the events alone decided it,
    /// and for a future retention job, which must raise it to the pump's
    /// highest sequence before deleting that pump's events, so the
    /// watermark never goes back and old events are never taken again.
    pub async fn device_last_seq(&self, asset_id: &str) -> Result<u64> {
        let n: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(s) FROM (\
             SELECT MAX(seq) AS s FROM device_events WHERE asset_id = $1 \
             UNION ALL SELECT last_seq AS s FROM device_channel WHERE asset_id = $1) AS w",
        )
        .bind(asset_id.to_owned())
        .fetch_one(self.pool())
        .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Records a hello: the channel state, and in the inventory the time
    /// seen, the firmware version and the address (audited as observations
    /// when they change). Checks the firmware digest against the expected
    /// one; a mismatch is recorded as an integrity failure.
    pub async fn device_hello(
        &self,
        h: &DeviceHello,
        now: OffsetDateTime,
    ) -> Result<FirmwareCheck> {
        let now_s = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let asset =
            fetch_asset(&mut tx, &h.asset_id)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("asset {}", h.asset_id),
                })?;
        let actor = Actor {
            id: format!("device:{}", h.asset_id),
            source: Some(h.source.clone()),
        };
        let mut entries = Vec::new();
        let mut spec = asset.spec.clone();
        spec.firmware_version = h.firmware_version.clone();
        if h.ip.is_some() {
            spec.ip_address = h.ip;
        }
        if spec != asset.spec {
            entries.extend(
                update_spec(
                    &mut tx,
                    &asset,
                    &spec,
                    &actor,
                    "reported by the device in hello",
                    &now_s,
                )
                .await?,
            );
        }
        sqlx::query("UPDATE assets SET last_seen = $1 WHERE asset_id = $2")
            .bind(now_s.clone())
            .bind(h.asset_id.clone())
            .execute(&mut *tx)
            .await?;
        let expected: Option<String> = sqlx::query_scalar(
            "SELECT sha256 FROM firmware_digests WHERE manufacturer = $1 AND model = $2 AND firmware_version = $3",
        )
        .bind(asset.spec.manufacturer.clone())
        .bind(asset.spec.model.clone())
        .bind(h.firmware_version.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let check = match expected {
            None => FirmwareCheck::Unknown,
            Some(e) if e.eq_ignore_ascii_case(&h.firmware_digest) => FirmwareCheck::Expected,
            Some(e) => FirmwareCheck::Mismatch { expected: e },
        };
        if let FirmwareCheck::Mismatch { expected } = &check {
            entries.push(
                actor
                    .entry("device.firmware_integrity", Outcome::Failure)
                    .object(format!("asset:{}", h.asset_id))
                    .reason("the firmware image digest is not the one expected for this model and version")
                    .details(&serde_json::json!({
                        "firmware_version": h.firmware_version,
                        "reported": h.firmware_digest, "expected": expected,
                    })),
            );
        }
        sqlx::query(
            "INSERT INTO device_channel (asset_id, last_seq, certificate_serial, protocol_version, \
             firmware_version, firmware_digest, library_version, network, source, connected_at) \
             VALUES ($1, 0, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (asset_id) DO UPDATE SET certificate_serial = $2, protocol_version = $3, \
             firmware_version = $4, firmware_digest = $5, library_version = $6, network = $7, \
             source = $8, connected_at = $9, disconnected_at = NULL",
        )
        .bind(h.asset_id.clone())
        .bind(h.certificate_serial.clone())
        .bind(h.protocol_version as i64)
        .bind(h.firmware_version.clone())
        .bind(h.firmware_digest.clone())
        .bind(h.library_version.clone())
        .bind(h.network.clone())
        .bind(h.source.clone())
        .bind(now_s)
        .execute(&mut *tx)
        .await?;
        if entries.is_empty() {
            tx.commit().await?;
        } else {
            tx.commit_audited(entries, now).await?;
        }
        // The firmware the pump itself reports is what its vulnerability
        // findings are decided on (and what verifies a deployed patch).
        if crate::vuln::match_inputs_changed(&asset.spec, &spec) {
            self.rematch_asset(&h.asset_id, &actor).await?;
        }
        Ok(check)
    }

    /// Stores several pumps' batches in one transaction. Returns only after
    /// the commit: the caller may then acknowledge every batch.
    pub async fn store_device_batches(
        &self,
        batches: &[DeviceBatch],
        now: OffsetDateTime,
    ) -> Result<()> {
        const CHUNK: usize = 200;
        let now_s = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let rows: Vec<(&str, &DeviceEventRecord)> = batches
            .iter()
            .flat_map(|b| b.events.iter().map(move |e| (b.asset_id.as_str(), e)))
            .collect();
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO device_events (asset_id, seq, at, kind, body, received_at) VALUES {} \
                 ON CONFLICT (asset_id, seq) DO NOTHING",
                crate::value_groups(&tx, chunk.len(), 6)
            );
            let mut q = sqlx::query(&sql);
            for (asset, e) in chunk {
                q = q
                    .bind(asset.to_string())
                    .bind(e.seq)
                    .bind(e.at.clone())
                    .bind(e.kind.clone())
                    .bind(e.body.clone())
                    .bind(now_s.clone());
            }
            q.execute(&mut *tx).await?;
        }
        for b in batches {
            for (from, to) in &b.gaps {
                sqlx::query(
                    "INSERT INTO device_gaps (asset_id, from_seq, to_seq, detected_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(b.asset_id.clone())
                .bind(*from as i64)
                .bind(*to as i64)
                .bind(now_s.clone())
                .execute(&mut *tx)
                .await?;
            }
        }
        // The rollout state follows the reports the events carry, in the
        // same commit: many pumps' installs cost one transaction.
        let reports: Vec<(&str, &crate::LibraryReport)> = batches
            .iter()
            .flat_map(|b| b.library_reports.iter().map(|r| (b.asset_id.as_str(), r)))
            .collect();
        crate::rollout::apply_library_reports(&mut tx, &reports, &now_s).await?;
        // No per-pump watermark row is written here: the highest stored
        // sequence is `MAX(seq)` of the pump's events (see
        // `device_last_seq`). Upserting `device_channel.last_seq` for every
        // pump of every group dirtied one more random page per event and
        // cost a third of the writer's time with single-event batches.
        tx.commit().await
    }

    /// Records that pumps were heard from (heartbeats), in one transaction.
    pub async fn devices_seen(&self, asset_ids: &[String], now: OffsetDateTime) -> Result<()> {
        if asset_ids.is_empty() {
            return Ok(());
        }
        let now_s = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        for chunk in asset_ids.chunks(500) {
            let marks: Vec<String> = (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
            let list = marks.join(", ");
            for table_sql in [
                format!("UPDATE assets SET last_seen = $1 WHERE asset_id IN ({list})"),
                format!("UPDATE device_channel SET last_heartbeat = $1 WHERE asset_id IN ({list})"),
            ] {
                let mut q = sqlx::query(&table_sql).bind(now_s.clone());
                for id in chunk {
                    q = q.bind(id.clone());
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await
    }

    /// Records that a pump's session ended.
    pub async fn device_disconnected(&self, asset_id: &str, now: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE device_channel SET disconnected_at = $1 WHERE asset_id = $2")
            .bind(timefmt::format(now))
            .bind(asset_id.to_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Of the given (asset, certificate serial) pairs, those that may stay
    /// connected: the asset's lifecycle state allows it and the certificate
    /// is not revoked.
    pub async fn connectable(
        &self,
        pairs: &[(String, String)],
    ) -> Result<HashSet<(String, String)>> {
        let mut ok = HashSet::new();
        for chunk in pairs.chunks(400) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT a.asset_id AS asset_id, c.serial AS serial, a.lifecycle_state AS state \
                 FROM certificates c JOIN assets a ON a.asset_id = c.asset_id \
                 WHERE c.revoked_at IS NULL AND c.serial IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (_, serial) in chunk {
                q = q.bind(serial.clone());
            }
            for r in q.fetch_all(self.pool()).await? {
                let state: String = r.try_get("state")?;
                let may = state
                    .parse::<pumpward_core::inventory::LifecycleState>()
                    .map(|s| s.may_connect())
                    .unwrap_or(false);
                if may {
                    ok.insert((r.try_get("asset_id")?, r.try_get("serial")?));
                }
            }
        }
        Ok(ok)
    }

    /// A pump's stored events after `after_seq`, in sequence order.
    pub async fn device_events(
        &self,
        asset_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<DeviceEventRecord>> {
        sqlx::query(
            "SELECT seq, at, kind, body FROM device_events WHERE asset_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(asset_id.to_owned())
        .bind(after_seq)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(DeviceEventRecord {
                seq: r.try_get("seq")?,
                at: r.try_get("at")?,
                kind: r.try_get("kind")?,
                body: r.try_get("body")?,
            })
        })
        .collect()
    }

    /// The pumps that recorded events of `kind` at or after `since` (by
    /// their own clock), with how many each, by asset id.
    pub async fn device_event_counts(
        &self,
        kind: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<(String, i64)>> {
        sqlx::query(
            "SELECT asset_id, COUNT(*) AS n FROM device_events WHERE kind = $1 AND at >= $2 \
             GROUP BY asset_id ORDER BY asset_id",
        )
        .bind(kind.to_owned())
        .bind(pumpward_core::timefmt::format(since))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok((r.try_get("asset_id")?, r.try_get("n")?)))
        .collect()
    }

    /// A pump's recorded sequence gaps, oldest first.
    pub async fn device_gaps(&self, asset_id: &str) -> Result<Vec<(u64, u64)>> {
        sqlx::query("SELECT from_seq, to_seq FROM device_gaps WHERE asset_id = $1 ORDER BY id")
            .bind(asset_id.to_owned())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("from_seq")? as u64,
                    r.try_get::<i64, _>("to_seq")? as u64,
                ))
            })
            .collect()
    }

    /// Sets the firmware image digest expected for a model and version.
    pub async fn set_expected_firmware(
        &self,
        manufacturer: &str,
        model: &str,
        firmware_version: &str,
        sha256: &str,
        actor: &Actor,
    ) -> Result<()> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(
                "a firmware digest is 64 hexadecimal characters (SHA-256)".into(),
            ));
        }
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO firmware_digests (manufacturer, model, firmware_version, sha256, set_by, set_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (manufacturer, model, firmware_version) \
             DO UPDATE SET sha256 = $4, set_by = $5, set_at = $6",
        )
        .bind(manufacturer.to_owned())
        .bind(model.to_owned())
        .bind(firmware_version.to_owned())
        .bind(sha256.to_ascii_lowercase())
        .bind(actor.id.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let entry = actor
            .entry("firmware.expected_digest.set", Outcome::Success)
            .object(format!("model:{manufacturer}/{model}"))
            .details(
                &serde_json::json!({ "firmware_version": firmware_version, "sha256": sha256 }),
            );
        tx.commit_audited(vec![entry], crate::now()).await
    }
}
