//! Drug-library distribution: rollouts in waves, per-pump state driven by
//! what the pumps report, the compliance view and the CQI report's data.
//!
//! A rollout sends one published version: wave 1 is a pilot (the pumps of
//! one care area, or a stable share of the fleet), wave 2 everyone else,
//! started by an explicit "advance" once the pilot looks right. A paused
//! rollout announces nothing. Creating a rollout supersedes the library's
//! earlier ones (a pump is only ever asked for the newest version).
//!
//! Per pump: `pending` → `announced` (the gateway sent
//! `drug_library_available`) → `installed` (the pump's `library_installed`
//! event with the rollout's envelope digest) or `rejected` (its
//! `library_rejected` event, with the reason) or `deferred` (it waits for
//! an infusion to end). What counts is only what the pump reports.

use crate::{Actor, Result, Store, StoreError};
use base64::Engine as _;
use pumpward_core::audit::Outcome;
use pumpward_core::timefmt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// What starts a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRollout {
    pub library_id: String,
    /// A published version of the library.
    pub version: i64,
    /// Wave 1: the pumps of this care area (as the inventory names it) …
    pub pilot_care_area: Option<String>,
    /// … or else this share of the fleet, 0–100 (0 and no care area: no
    /// pilot, everyone at once).
    pub pilot_percent: u8,
}

/// Pumps of a rollout per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RolloutCounts {
    pub total: i64,
    pub pending: i64,
    pub announced: i64,
    pub deferred: i64,
    pub installed: i64,
    pub rejected: i64,
}

/// A rollout and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollout {
    pub id: i64,
    pub library_id: String,
    pub version: i64,
    pub envelope_sha256: String,
    pub envelope_size: i64,
    pub pilot_care_area: Option<String>,
    pub pilot_percent: i64,
    pub current_wave: i64,
    /// `active`, `paused` or `superseded`.
    pub state: String,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// All pumps of the rollout.
    pub counts: RolloutCounts,
    /// The pilot wave's pumps.
    pub pilot: RolloutCounts,
}

/// One pump of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutPump {
    pub asset_id: String,
    pub care_area: Option<String>,
    pub wave: i64,
    pub state: String,
    pub announced_at: Option<String>,
    pub reported_at: Option<String>,
    pub reported_version: Option<String>,
    pub reason: Option<String>,
}

/// An announcement the gateway should send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAnnouncement {
    pub rollout_id: i64,
    pub asset_id: String,
    pub version: i64,
    pub envelope_sha256: String,
    pub envelope_size: i64,
}

/// What a pump reported about a library (from its events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibraryReport {
    /// `library_installed`.
    Installed { version: String, digest: String },
    /// `library_rejected`.
    Rejected {
        version: Option<String>,
        digest: Option<String>,
        /// The reason code and the pump's explanation.
        reason: String,
    },
    /// A `deferred` command result (installs when the infusion ends).
    Deferred,
}

/// Compliance of one care area.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AreaCompliance {
    pub care_area: String,
    pub pumps: i64,
    pub current: i64,
    /// `current / pumps`, 0–100.
    pub percent: f64,
}

/// A pump not on the current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StalePump {
    pub asset_id: String,
    pub care_area: Option<String>,
    /// The version the pump last reported (none: never reported one).
    pub reported_version: Option<String>,
    /// Since the first version newer than the pump's was published.
    pub stale_since: String,
    pub stale_seconds: i64,
}

/// The compliance view of a library.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compliance {
    pub library_id: String,
    /// The pumps counted: those the library is assigned to (every
    /// in-service and maintenance pump when it is assigned to none).
    pub assignment: crate::LibraryAssignment,
    pub current_version: Option<i64>,
    pub pumps: i64,
    pub current: i64,
    pub percent: f64,
    pub areas: Vec<AreaCompliance>,
    /// Longest stale first.
    pub stale: Vec<StalePump>,
}

const ROLLOUT_COLUMNS: &str = "id, library_id, version, envelope_sha256, envelope_size, \
     pilot_care_area, pilot_percent, current_wave, state, created_by, created_at, updated_at";

fn rollout_from_row(r: &AnyRow) -> Result<Rollout> {
    Ok(Rollout {
        id: r.try_get("id")?,
        library_id: r.try_get("library_id")?,
        version: r.try_get("version")?,
        envelope_sha256: r.try_get("envelope_sha256")?,
        envelope_size: r.try_get("envelope_size")?,
        pilot_care_area: r.try_get("pilot_care_area")?,
        pilot_percent: r.try_get("pilot_percent")?,
        current_wave: r.try_get("current_wave")?,
        state: r.try_get("state")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        counts: RolloutCounts::default(),
        pilot: RolloutCounts::default(),
    })
}

/// Whether an asset is in a percentage pilot: a stable hash of its id, so
/// the same pumps are chosen on every server and every run.
pub fn in_pilot_share(asset_id: &str, percent: u8) -> bool {
    let h = Sha256::digest(asset_id.as_bytes());
    let bucket = u16::from_be_bytes([h[0], h[1]]) % 100;
    bucket < u16::from(percent.min(100))
}

/// Which wave a pump belongs to.
fn wave_of(n: &NewRollout, asset_id: &str, care_area: Option<&str>) -> i64 {
    let pilot = match &n.pilot_care_area {
        Some(a) => care_area.is_some_and(|c| c.trim().eq_ignore_ascii_case(a.trim())),
        None => in_pilot_share(asset_id, n.pilot_percent),
    };
    if pilot {
        1
    } else {
        2
    }
}

fn add_count(c: &mut RolloutCounts, state: &str, n: i64) {
    c.total += n;
    match state {
        "pending" => c.pending += n,
        "announced" => c.announced += n,
        "deferred" => c.deferred += n,
        "installed" => c.installed += n,
        "rejected" => c.rejected += n,
        _ => {}
    }
}

/// The pump's installed version as a number, if it reported one.
fn version_number(v: Option<&str>) -> Option<i64> {
    v.and_then(|s| s.trim().parse::<i64>().ok())
}

impl Store {
    /// Starts a rollout of a published version to the in-service and
    /// maintenance pumps the library is assigned to (every one without an
    /// assignment), superseding the library's earlier rollouts; audited.
    pub async fn create_library_rollout(&self, n: &NewRollout, actor: &Actor) -> Result<Rollout> {
        if n.pilot_percent > 100 {
            return Err(StoreError::Invalid(format!(
                "pilot_percent {} is above 100",
                n.pilot_percent
            )));
        }
        if let Some(a) = &n.pilot_care_area {
            if a.trim().is_empty() || a.len() > 200 {
                return Err(StoreError::Invalid(
                    "pilot_care_area must be 1 to 200 characters".into(),
                ));
            }
        }
        let now = crate::now();
        let now_s = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        let published = sqlx::query(
            "SELECT envelope, content FROM drug_library_revisions \
             WHERE library_id = $1 AND version = $2 AND state = 'published'",
        )
        .bind(n.library_id.clone())
        .bind(n.version)
        .fetch_optional(&mut *tx)
        .await?;
        let (Some(env), Some(content)) = (
            published
                .as_ref()
                .map(|r| r.try_get::<Option<String>, _>("envelope"))
                .transpose()?
                .flatten(),
            published
                .as_ref()
                .map(|r| r.try_get::<String, _>("content"))
                .transpose()?,
        ) else {
            return Err(StoreError::NotFound {
                what: format!(
                    "published version {} of library {}",
                    n.version, n.library_id
                ),
            });
        };
        // The version must have a profile for every assigned care area, or
        // the pumps there would refuse it.
        let assigned: Vec<String> = sqlx::query_scalar(
            "SELECT target FROM library_assignments WHERE library_id = $1 \
             AND kind = 'care_area' ORDER BY target",
        )
        .bind(n.library_id.clone())
        .fetch_all(&mut *tx)
        .await?;
        let missing = crate::assignment::missing_care_areas(&content, &assigned)?;
        if !missing.is_empty() {
            return Err(StoreError::Invalid(format!(
                "version {} of library {} has no care area {}, to which the library is assigned: \
                 its pumps would refuse it",
                n.version,
                n.library_id,
                missing.join(", ")
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(env.as_bytes())
            .map_err(|e| StoreError::Invalid(format!("stored envelope: {e}")))?;
        let sha = hex::encode(Sha256::digest(&bytes));
        sqlx::query(
            "UPDATE library_rollouts SET state = 'superseded', updated_at = $1 \
             WHERE library_id = $2 AND state <> 'superseded'",
        )
        .bind(now_s.clone())
        .bind(n.library_id.clone())
        .execute(&mut *tx)
        .await?;
        let everyone_at_once = n.pilot_care_area.is_none() && n.pilot_percent == 0;
        let row = sqlx::query(&format!(
            "INSERT INTO library_rollouts (library_id, version, envelope_sha256, envelope_size, \
             pilot_care_area, pilot_percent, current_wave, state, created_by, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $9) \
             RETURNING {ROLLOUT_COLUMNS}"
        ))
        .bind(n.library_id.clone())
        .bind(n.version)
        .bind(sha.clone())
        .bind(bytes.len() as i64)
        .bind(n.pilot_care_area.clone())
        .bind(i64::from(n.pilot_percent))
        .bind(if everyone_at_once { 2i64 } else { 1 })
        .bind(actor.id.clone())
        .bind(now_s.clone())
        .fetch_one(&mut *tx)
        .await?;
        let rollout = rollout_from_row(&row)?;
        // The pumps the library is assigned to (the whole fleet without an
        // assignment).
        let pumps = sqlx::query(&format!(
            "SELECT a.asset_id, a.care_area FROM assets a WHERE a.kind = 'pump' \
             AND a.lifecycle_state IN ('in_service', 'maintenance') AND {} ORDER BY a.asset_id",
            crate::assignment::in_scope(self.backend())
        ))
        .bind(n.library_id.clone())
        .fetch_all(&mut *tx)
        .await?;
        let mut pilot = 0i64;
        for chunk in pumps.chunks(200) {
            let mut q = String::from(
                "INSERT INTO library_rollout_pumps (rollout_id, asset_id, care_area, wave, state) VALUES ",
            );
            let mut rows = Vec::new();
            for (i, r) in chunk.iter().enumerate() {
                let asset: String = r.try_get("asset_id")?;
                let area: Option<String> = r.try_get("care_area")?;
                let wave = wave_of(n, &asset, area.as_deref());
                pilot += i64::from(wave == 1);
                if i > 0 {
                    q.push_str(", ");
                }
                let b = i * 4;
                q.push_str(&format!(
                    "(${}, ${}, ${}, ${}, 'pending')",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4
                ));
                rows.push((asset, area, wave));
            }
            let mut query = sqlx::query(&q);
            for (asset, area, wave) in rows {
                query = query.bind(rollout.id).bind(asset).bind(area).bind(wave);
            }
            query.execute(&mut *tx).await?;
        }
        let entry = actor
            .entry("library.rollout.create", Outcome::Success)
            .object(format!("library:{}", n.library_id))
            .details(&serde_json::json!({
                "rollout": rollout.id, "version": n.version, "envelope_sha256": sha,
                "pilot_care_area": n.pilot_care_area, "pilot_percent": n.pilot_percent,
                "pumps": pumps.len(), "pilot_pumps": pilot,
            }));
        tx.commit_audited(vec![entry], now).await?;
        self.library_rollout(rollout.id).await
    }

    /// One rollout with its counts.
    pub async fn library_rollout(&self, id: i64) -> Result<Rollout> {
        let row = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM library_rollouts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("library rollout {id}"),
        })?;
        let mut r = rollout_from_row(&row)?;
        let counts = sqlx::query(
            "SELECT wave, state, COUNT(*) AS n FROM library_rollout_pumps \
             WHERE rollout_id = $1 GROUP BY wave, state",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        for c in counts {
            let (wave, state, n): (i64, String, i64) =
                (c.try_get("wave")?, c.try_get("state")?, c.try_get("n")?);
            add_count(&mut r.counts, &state, n);
            if wave == 1 {
                add_count(&mut r.pilot, &state, n);
            }
        }
        Ok(r)
    }

    /// A library's rollouts, newest first.
    pub async fn library_rollouts(&self, library_id: &str) -> Result<Vec<Rollout>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM library_rollouts WHERE library_id = $1 ORDER BY id DESC",
        )
        .bind(library_id.to_owned())
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.library_rollout(id).await?);
        }
        Ok(out)
    }

    /// The pumps of a rollout (optionally only one state), by asset id.
    pub async fn library_rollout_pumps(
        &self,
        id: i64,
        state: Option<&str>,
    ) -> Result<Vec<RolloutPump>> {
        let rows = sqlx::query(
            "SELECT asset_id, care_area, wave, state, announced_at, reported_at, \
             reported_version, reason FROM library_rollout_pumps \
             WHERE rollout_id = $1 AND ($2 IS NULL OR state = $2) ORDER BY asset_id",
        )
        .bind(id)
        .bind(state.map(str::to_owned))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RolloutPump {
                    asset_id: r.try_get("asset_id")?,
                    care_area: r.try_get("care_area")?,
                    wave: r.try_get("wave")?,
                    state: r.try_get("state")?,
                    announced_at: r.try_get("announced_at")?,
                    reported_at: r.try_get("reported_at")?,
                    reported_version: r.try_get("reported_version")?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }

    async fn rollout_action(
        &self,
        id: i64,
        action: &str,
        from: &[&str],
        set: &str,
        actor: &Actor,
    ) -> Result<Rollout> {
        let r = self.library_rollout(id).await?;
        if !from.contains(&r.state.as_str()) {
            return Err(StoreError::Conflict(format!(
                "rollout {id} is {}; it cannot be {action}",
                r.state
            )));
        }
        let now = crate::now();
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(&format!(
            "UPDATE library_rollouts SET {set}, updated_at = $1 WHERE id = $2 AND state = $3"
        ))
        .bind(timefmt::format(now))
        .bind(id)
        .bind(r.state.clone())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::Conflict(format!(
                "rollout {id} changed meanwhile; try again"
            )));
        }
        let entry = actor
            .entry(&format!("library.rollout.{action}"), Outcome::Success)
            .object(format!("library:{}", r.library_id))
            .details(&serde_json::json!({ "rollout": id, "version": r.version }));
        tx.commit_audited(vec![entry], now).await?;
        self.library_rollout(id).await
    }

    /// Pauses an active rollout: nothing more is announced.
    pub async fn pause_library_rollout(&self, id: i64, actor: &Actor) -> Result<Rollout> {
        self.rollout_action(id, "pause", &["active"], "state = 'paused'", actor)
            .await
    }

    /// Resumes a paused rollout.
    pub async fn resume_library_rollout(&self, id: i64, actor: &Actor) -> Result<Rollout> {
        self.rollout_action(id, "resume", &["paused"], "state = 'active'", actor)
            .await
    }

    /// Starts wave 2 (everyone) after the pilot.
    pub async fn advance_library_rollout(&self, id: i64, actor: &Actor) -> Result<Rollout> {
        let r = self.library_rollout(id).await?;
        if r.current_wave >= 2 {
            return Err(StoreError::Conflict(format!(
                "rollout {id} already reaches every pump"
            )));
        }
        self.rollout_action(
            id,
            "advance",
            &["active", "paused"],
            "current_wave = 2",
            actor,
        )
        .await
    }

    /// Pumps to announce to now: in an active rollout, in a wave already
    /// started, not yet announced (or announced more than `retry_after`
    /// ago without an answer). Ordered by asset and rollout; pass the last
    /// row of a page as `after` for the next one, so that pumps that are
    /// offline (and stay due) never hide the ones behind them.
    pub async fn due_library_announcements(
        &self,
        now: OffsetDateTime,
        retry_after: time::Duration,
        after: Option<(&str, i64)>,
        limit: i64,
    ) -> Result<Vec<DueAnnouncement>> {
        let cutoff = timefmt::format(now - retry_after);
        let (a, r) = after.unwrap_or(("", 0));
        let rows = sqlx::query(
            "SELECT p.rollout_id, p.asset_id, r.version, r.envelope_sha256, r.envelope_size \
             FROM library_rollout_pumps p JOIN library_rollouts r ON r.id = p.rollout_id \
             WHERE r.state = 'active' AND p.wave <= r.current_wave \
             AND (p.state = 'pending' OR (p.state = 'announced' AND p.announced_at < $1)) \
             AND (p.asset_id > $3 OR (p.asset_id = $3 AND p.rollout_id > $4)) \
             ORDER BY p.asset_id, p.rollout_id LIMIT $2",
        )
        .bind(cutoff)
        .bind(limit)
        .bind(a.to_owned())
        .bind(r)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DueAnnouncement {
                    rollout_id: r.try_get("rollout_id")?,
                    asset_id: r.try_get("asset_id")?,
                    version: r.try_get("version")?,
                    envelope_sha256: r.try_get("envelope_sha256")?,
                    envelope_size: r.try_get("envelope_size")?,
                })
            })
            .collect()
    }

    /// Records that these pumps were sent the announcement.
    pub async fn mark_library_announced(
        &self,
        rollout_id: i64,
        asset_ids: &[String],
        now: OffsetDateTime,
    ) -> Result<()> {
        if asset_ids.is_empty() {
            return Ok(());
        }
        let now_s = timefmt::format(now);
        let mut tx = self.write_tx().await?;
        for chunk in asset_ids.chunks(500) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "UPDATE library_rollout_pumps SET state = 'announced', announced_at = $1 \
                 WHERE rollout_id = $2 AND state IN ('pending', 'announced') AND asset_id IN ({list})"
            );
            let mut u = sqlx::query(&sql).bind(now_s.clone()).bind(rollout_id);
            for a in chunk {
                u = u.bind(a.clone());
            }
            u.execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Applies what pumps reported (installed, rejected, deferred) to their
    /// rows in the current rollouts, and keeps the version they run in the
    /// device channel state. Returns the rows changed. (Reports carried by
    /// pump events are applied with the events themselves, by
    /// [`Store::store_device_batches`].)
    pub async fn record_library_reports(
        &self,
        reports: &[(String, LibraryReport)],
        now: OffsetDateTime,
    ) -> Result<u64> {
        if reports.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write_tx().await?;
        let reports: Vec<(&str, &LibraryReport)> =
            reports.iter().map(|(a, r)| (a.as_str(), r)).collect();
        let changed = apply_library_reports(&mut tx, &reports, &timefmt::format(now)).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// The envelope a rollout announced under this SHA-256 (what a pump
    /// fetches); `None` when no rollout announced it.
    pub async fn library_envelope_by_digest(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT library_id, version FROM library_rollouts WHERE envelope_sha256 = $1 \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(digest.to_ascii_lowercase())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (lib, v): (String, i64) = (row.try_get("library_id")?, row.try_get("version")?);
        let bytes = self.library_envelope(&lib, v).await?;
        // The stored envelope is immutable, but say so if it ever is not.
        if hex::encode(Sha256::digest(&bytes)) != digest.to_ascii_lowercase() {
            return Err(StoreError::Invalid(format!(
                "the envelope of {lib} v{v} no longer has the announced digest"
            )));
        }
        Ok(Some(bytes))
    }

    /// Share of pumps on the library's current (highest published) version
    /// per care area, and the pumps that are not, with how long: since the
    /// first version newer than theirs was published.
    pub async fn library_compliance(
        &self,
        library_id: &str,
        now: OffsetDateTime,
    ) -> Result<Compliance> {
        let versions = sqlx::query(
            "SELECT version, published_at FROM drug_library_revisions \
             WHERE library_id = $1 AND state = 'published' ORDER BY version",
        )
        .bind(library_id.to_owned())
        .fetch_all(self.pool())
        .await?;
        let mut published: Vec<(i64, String)> = Vec::new();
        for r in &versions {
            let v: Option<i64> = r.try_get("version")?;
            let at: Option<String> = r.try_get("published_at")?;
            if let (Some(v), Some(at)) = (v, at) {
                published.push((v, at));
            }
        }
        let current = published.last().map(|(v, _)| *v);
        let assignment = self.library_assignment(library_id).await?;
        // Only the pumps the library is assigned to count.
        let pumps = sqlx::query(&format!(
            "SELECT a.asset_id, a.care_area, d.library_version FROM assets a \
             LEFT JOIN device_channel d ON d.asset_id = a.asset_id WHERE a.kind = 'pump' \
             AND a.lifecycle_state IN ('in_service', 'maintenance') AND {} ORDER BY a.asset_id",
            crate::assignment::in_scope(self.backend())
        ))
        .bind(library_id.to_owned())
        .fetch_all(self.pool())
        .await?;
        let mut areas: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut stale = Vec::new();
        let (mut total, mut on_current) = (0i64, 0i64);
        for r in &pumps {
            let asset: String = r.try_get("asset_id")?;
            let area: Option<String> = r.try_get("care_area")?;
            let reported: Option<String> = r.try_get("library_version")?;
            let v = version_number(reported.as_deref());
            let ok = current.is_some() && v >= current;
            let e = areas
                .entry(area.clone().unwrap_or_else(|| "(no care area)".into()))
                .or_default();
            e.0 += 1;
            total += 1;
            if ok {
                e.1 += 1;
                on_current += 1;
                continue;
            }
            // Stale since the first publication newer than what it runs.
            let since = published
                .iter()
                .find(|(pv, _)| v.is_none_or(|mine| *pv > mine))
                .map(|(_, at)| at.clone());
            if let Some(since) = since {
                let secs = timefmt::parse(&since)
                    .map(|t| (now - t).whole_seconds().max(0))
                    .unwrap_or(0);
                stale.push(StalePump {
                    asset_id: asset,
                    care_area: area,
                    reported_version: reported,
                    stale_since: since,
                    stale_seconds: secs,
                });
            }
        }
        stale.sort_by(|a, b| {
            b.stale_seconds
                .cmp(&a.stale_seconds)
                .then(a.asset_id.cmp(&b.asset_id))
        });
        let pct = |n: i64, d: i64| {
            if d == 0 {
                0.0
            } else {
                (n as f64 * 1000.0 / d as f64).round() / 10.0
            }
        };
        Ok(Compliance {
            library_id: library_id.to_owned(),
            assignment,
            current_version: current,
            pumps: total,
            current: on_current,
            percent: pct(on_current, total),
            areas: areas
                .into_iter()
                .map(|(care_area, (n, c))| AreaCompliance {
                    care_area,
                    pumps: n,
                    current: c,
                    percent: pct(c, n),
                })
                .collect(),
            stale,
        })
    }
}

/// One drug in one care area of a CQI report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CqiRow {
    pub care_area: String,
    pub drug: String,
    /// Every dose check (each programming that reached the check).
    pub programmings: i64,
    pub within_limits: i64,
    pub soft_overrides: i64,
    pub hard_blocks: i64,
    pub basic_infusions: i64,
    /// Override reasons with their counts, most frequent first.
    pub override_reasons: Vec<(String, i64)>,
}

/// The CQI report of a period: per care area and drug.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CqiReport {
    pub from: String,
    pub to: String,
    pub rows: Vec<CqiRow>,
    /// Events that were not readable dose checks (should stay 0).
    pub unreadable: i64,
}

/// Adds one stored `dose_check` event body to the report's counters.
/// Returns false if it is not a readable dose check.
fn cqi_add(
    acc: &mut BTreeMap<(String, String), CqiRow>,
    reasons: &mut BTreeMap<(String, String), BTreeMap<String, i64>>,
    body: &str,
) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let (Some(result), Some(drug), Some(area)) = (text("result"), text("drug"), text("care_area"))
    else {
        return false;
    };
    // Drug names are matched without regard to case, as the pump does.
    let key = (area, drug.to_lowercase());
    let row = acc.entry(key.clone()).or_insert_with(|| CqiRow {
        care_area: key.0.clone(),
        drug: drug.clone(),
        ..CqiRow::default()
    });
    row.programmings += 1;
    match result.as_str() {
        "within_limits" => row.within_limits += 1,
        "soft_override" => {
            row.soft_overrides += 1;
            let why = text("override_reason").unwrap_or_else(|| "(no reason recorded)".into());
            *reasons.entry(key).or_default().entry(why).or_default() += 1;
        }
        "hard_block" => row.hard_blocks += 1,
        "basic_infusion" => row.basic_infusions += 1,
        _ => {}
    }
    true
}

impl Store {
    /// The CQI report over `[from, to)` (by the pumps' event time): dose
    /// checks per care area and drug, with override reasons. Streams the
    /// events, so a long period costs time, not memory.
    pub async fn cqi_report(&self, from: OffsetDateTime, to: OffsetDateTime) -> Result<CqiReport> {
        use futures_util::TryStreamExt as _;
        if to <= from {
            return Err(StoreError::Invalid(
                "the report period must end after it starts".into(),
            ));
        }
        let (f, t) = (timefmt::format(from), timefmt::format(to));
        let mut acc = BTreeMap::new();
        let mut reasons = BTreeMap::new();
        let mut unreadable = 0;
        let mut rows = sqlx::query(
            "SELECT body FROM device_events WHERE kind = 'dose_check' AND at >= $1 AND at < $2",
        )
        .bind(f.clone())
        .bind(t.clone())
        .fetch(self.pool());
        while let Some(r) = rows.try_next().await? {
            let body: String = r.try_get("body")?;
            if !cqi_add(&mut acc, &mut reasons, &body) {
                unreadable += 1;
            }
        }
        let rows = acc
            .into_iter()
            .map(|(k, mut row)| {
                let mut rs: Vec<(String, i64)> =
                    reasons.remove(&k).unwrap_or_default().into_iter().collect();
                rs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                row.override_reasons = rs;
                row
            })
            .collect();
        Ok(CqiReport {
            from: f,
            to: t,
            rows,
            unreadable,
        })
    }
}

/// A CSV cell that a spreadsheet will not run: text starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP
/// "CSV injection"), and the cell is quoted when it must be.
pub fn csv_cell(s: &str) -> String {
    let s = match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_owned(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

impl CqiReport {
    /// The report as CSV (CRLF lines, one row per care area and drug;
    /// reasons as `reason (count)` joined by `; `), safe to open in a
    /// spreadsheet.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "period_from,period_to,care_area,drug,programmings,within_limits,soft_overrides,\
             hard_blocks,basic_infusions,override_reasons\r\n",
        );
        for r in &self.rows {
            let reasons = r
                .override_reasons
                .iter()
                .map(|(why, n)| format!("{why} ({n})"))
                .collect::<Vec<_>>()
                .join("; ");
            let cells = [
                csv_cell(&self.from),
                csv_cell(&self.to),
                csv_cell(&r.care_area),
                csv_cell(&r.drug),
                r.programmings.to_string(),
                r.within_limits.to_string(),
                r.soft_overrides.to_string(),
                r.hard_blocks.to_string(),
                r.basic_infusions.to_string(),
                csv_cell(&reasons),
            ];
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// The rollout side of pump reports, inside the caller's transaction.
pub(crate) async fn apply_library_reports(
    tx: &mut crate::WriteTx,
    reports: &[(&str, &LibraryReport)],
    now_s: &str,
) -> Result<u64> {
    let now_s = now_s.to_owned();
    let mut changed = 0;
    for &(asset, rep) in reports {
        let n = match rep {
            LibraryReport::Installed { version, digest } => {
                // The version it runs, even if its hello predates the store.
                sqlx::query(
                        "INSERT INTO device_channel (asset_id, last_seq, library_version)                          SELECT $2, 0, $1 WHERE EXISTS (SELECT 1 FROM assets WHERE asset_id = $2)                          ON CONFLICT (asset_id) DO UPDATE SET library_version = excluded.library_version",
                    )
                    .bind(version.clone())
                    .bind(asset.to_owned())
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                        "UPDATE library_rollout_pumps SET state = 'installed', reported_at = $1, \
                         reported_version = $2, reason = NULL WHERE asset_id = $3 AND rollout_id IN \
                         (SELECT id FROM library_rollouts WHERE envelope_sha256 = $4 \
                          AND state <> 'superseded')",
                    )
                    .bind(now_s.clone())
                    .bind(version.clone())
                    .bind(asset.to_owned())
                    .bind(digest.to_ascii_lowercase())
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
            LibraryReport::Rejected {
                version,
                digest,
                reason,
            } => {
                // Matched by digest when the pump computed one, else
                // by the version it was offered.
                sqlx::query(
                        "UPDATE library_rollout_pumps SET state = 'rejected', reported_at = $1, \
                         reported_version = $2, reason = $3 WHERE asset_id = $4 \
                         AND state IN ('pending', 'announced', 'deferred') AND rollout_id IN \
                         (SELECT id FROM library_rollouts WHERE state <> 'superseded' \
                          AND (envelope_sha256 = $5 OR ($5 IS NULL AND CAST(version AS TEXT) = $2)))",
                    )
                    .bind(now_s.clone())
                    .bind(version.clone())
                    .bind(reason.chars().take(1000).collect::<String>())
                    .bind(asset.to_owned())
                    .bind(digest.as_ref().map(|d| d.to_ascii_lowercase()))
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
            }
            LibraryReport::Deferred => sqlx::query(
                "UPDATE library_rollout_pumps SET state = 'deferred', reported_at = $1 \
                     WHERE asset_id = $2 AND state = 'announced' AND rollout_id IN \
                     (SELECT id FROM library_rollouts WHERE state <> 'superseded')",
            )
            .bind(now_s.clone())
            .bind(asset.to_owned())
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        };
        changed += n;
    }
    Ok(changed)
}
