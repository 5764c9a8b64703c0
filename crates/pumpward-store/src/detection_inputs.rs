//! What the detection engine reads from the store besides its own records:
//! the facts its rules compare against (the library each pump was sent, the
//! expected firmware digests, open vulnerability findings, the KEV list),
//! and the inputs it resumes from after a restart (device events and
//! security events it had not yet evaluated, findings opened since).
//!
//! Every cursor here is a keyset: reading "after" a cursor neither skips nor
//! repeats a row, however many rows share a timestamp.

use crate::vuln::KIND_AFFECTED;
use crate::{DeviceEventRecord, Result, Store, StoreError};
use pumpward_detect::Event;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// Where a replay of stored pump events resumes: the last event evaluated,
/// in the order the event writer committed them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceEventCursor {
    /// The commit's `received_at` (canonical UTC text, which sorts as time).
    pub received_at: String,
    pub asset_id: String,
    pub seq: i64,
}

/// A stored pump event with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeviceEvent {
    pub cursor: DeviceEventCursor,
    pub record: DeviceEventRecord,
}

/// Which stored pump events to list, newest first; the filters combine.
/// Times are Pumpward's receipt times (`received_at`): a pump's own clock
/// may be wrong, and the event keeps it as `at`.
#[derive(Debug, Clone, Default)]
pub struct PumpEventFilter {
    pub asset_id: Option<String>,
    /// The pump's event kind, e.g. `dose_check`.
    pub kind: Option<String>,
    /// RFC 3339 bounds on `received_at`, inclusive from, exclusive to.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Page cursor: the last event of the previous page.
    pub before: Option<DeviceEventCursor>,
    /// At most 500; 0 means 50.
    pub limit: i64,
}

/// An open `vulnerability.affected` finding, as detection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedFinding {
    pub id: i64,
    pub vulnerability: String,
    pub asset_id: String,
    /// The CVE was on the KEV list when the finding was raised.
    pub kev: bool,
}

const DEVICE_EVENT_COLUMNS: &str =
    "SELECT asset_id, seq, at, kind, body, received_at FROM device_events";
const DEVICE_EVENT_ORDER: &str = "ORDER BY received_at, asset_id, seq LIMIT";

fn device_event(r: &sqlx::any::AnyRow) -> Result<StoredDeviceEvent> {
    let seq: i64 = r.try_get("seq")?;
    Ok(StoredDeviceEvent {
        cursor: DeviceEventCursor {
            received_at: r.try_get("received_at")?,
            asset_id: r.try_get("asset_id")?,
            seq,
        },
        record: DeviceEventRecord {
            seq,
            at: r.try_get("at")?,
            kind: r.try_get("kind")?,
            body: r.try_get("body")?,
        },
    })
}

/// The CVE of a finding's subject `cve:<CVE>:asset:<asset>`.
fn cve_of(subject: &str) -> Option<&str> {
    subject
        .strip_prefix("cve:")?
        .split_once(":asset:")
        .map(|(c, _)| c)
}

impl Store {
    /// The drug library each pump should run: per asset, the newest rollout
    /// announced to it (pending wave-2 pumps keep the one before), as
    /// (version, envelope SHA-256).
    pub async fn expected_pump_libraries(&self) -> Result<HashMap<String, (String, String)>> {
        let rows = sqlx::query(
            "SELECT p.asset_id, r.version, r.envelope_sha256 FROM library_rollout_pumps p \
             JOIN library_rollouts r ON r.id = p.rollout_id WHERE p.state <> 'pending' \
             ORDER BY r.id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in &rows {
            // Later rollouts overwrite earlier ones.
            out.insert(
                r.try_get::<String, _>("asset_id")?,
                (
                    r.try_get::<i64, _>("version")?.to_string(),
                    r.try_get::<String, _>("envelope_sha256")?,
                ),
            );
        }
        Ok(out)
    }

    /// Every expected firmware digest: model → version → SHA-256s.
    pub async fn expected_firmware_digests(
        &self,
    ) -> Result<HashMap<String, HashMap<String, Vec<String>>>> {
        let rows = sqlx::query("SELECT model, firmware_version, sha256 FROM firmware_digests")
            .fetch_all(self.pool())
            .await?;
        let mut out: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
        for r in &rows {
            out.entry(r.try_get("model")?)
                .or_default()
                .entry(r.try_get("firmware_version")?)
                .or_default()
                .push(r.try_get("sha256")?);
        }
        Ok(out)
    }

    /// Open `vulnerability.affected` findings with an id above `after_id`,
    /// oldest first, at most `limit`.
    pub async fn affected_findings_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<AffectedFinding>> {
        let rows = sqlx::query(
            "SELECT id, subject, asset_id, evidence FROM findings \
             WHERE kind = $1 AND state = 'open' AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(KIND_AFFECTED)
        .bind(after_id)
        .bind(limit.clamp(1, 100_000))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let subject: String = r.try_get("subject")?;
            let (Some(cve), Some(asset_id)) = (
                cve_of(&subject),
                r.try_get::<Option<String>, _>("asset_id")?,
            ) else {
                continue;
            };
            let evidence: String = r.try_get("evidence")?;
            let kev = serde_json::from_str::<serde_json::Value>(&evidence)
                .ok()
                .is_some_and(|e| !e["kev"].is_null());
            out.push(AffectedFinding {
                id: r.try_get("id")?,
                vulnerability: cve.to_owned(),
                asset_id,
                kev,
            });
        }
        Ok(out)
    }

    /// The CVEs on the KEV list (as imported).
    pub async fn kev_vulnerabilities(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query("SELECT DISTINCT cve FROM vuln_kev")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get("cve").map_err(StoreError::from))
            .collect()
    }

    /// `received_at` of the last committed group of pump events.
    pub async fn last_device_commit(&self) -> Result<Option<String>> {
        let r = sqlx::query("SELECT MAX(received_at) AS m FROM device_events")
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get("m")?)
    }

    /// `received_at` of the last group of pump events committed before
    /// `before` (canonical UTC text).
    pub async fn last_device_commit_before(&self, before: &str) -> Result<Option<String>> {
        let r =
            sqlx::query("SELECT MAX(received_at) AS m FROM device_events WHERE received_at < $1")
                .bind(before.to_owned())
                .fetch_one(self.pool())
                .await?;
        Ok(r.try_get("m")?)
    }

    /// Stored pump events of the groups committed after `commit` (all when
    /// `None`), in commit order, at most `limit`: the first page of a
    /// replay; continue with [`Store::device_events_after`].
    pub async fn device_events_after_commit(
        &self,
        commit: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredDeviceEvent>> {
        sqlx::query(&format!(
            "{DEVICE_EVENT_COLUMNS} WHERE ($1 IS NULL OR received_at > $1) {DEVICE_EVENT_ORDER} $2"
        ))
        .bind(commit.map(str::to_owned))
        .bind(limit.clamp(1, 100_000))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(device_event)
        .collect()
    }

    /// Stored pump events after `after` in commit order, at most `limit`.
    pub async fn device_events_after(
        &self,
        after: &DeviceEventCursor,
        limit: i64,
    ) -> Result<Vec<StoredDeviceEvent>> {
        // Spelled out rather than a row-value comparison, which older SQLite
        // builds lack; the first term uses the received_at index.
        sqlx::query(&format!(
            "{DEVICE_EVENT_COLUMNS} WHERE received_at >= $1 AND (received_at > $1 \
             OR asset_id > $2 OR (asset_id = $2 AND seq > $3)) {DEVICE_EVENT_ORDER} $4"
        ))
        .bind(after.received_at.clone())
        .bind(after.asset_id.clone())
        .bind(after.seq)
        .bind(limit.clamp(1, 100_000))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(device_event)
        .collect()
    }

    /// Stored pump events matching `f`, newest first, and the cursor of the
    /// next page when there is one.
    pub async fn list_pump_events(
        &self,
        f: &PumpEventFilter,
    ) -> Result<(Vec<StoredDeviceEvent>, Option<DeviceEventCursor>)> {
        let limit = if f.limit <= 0 { 50 } else { f.limit.min(500) };
        let mut sql = format!("{DEVICE_EVENT_COLUMNS} WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut clause = |col: &str, op: &str, v: Option<&String>| {
            if let Some(v) = v {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {col} {op} ${}", binds.len()));
            }
        };
        clause("asset_id", "=", f.asset_id.as_ref());
        clause("kind", "=", f.kind.as_ref());
        clause("received_at", ">=", f.from.as_ref());
        clause("received_at", "<", f.to.as_ref());
        if let Some(c) = &f.before {
            binds.push(c.received_at.clone());
            binds.push(c.asset_id.clone());
            let (r, a) = (binds.len() - 1, binds.len());
            // The sequence number is an integer the caller parsed, written
            // in place so that both databases compare it as one.
            sql.push_str(&format!(
                " AND received_at <= ${r} AND (received_at < ${r} OR asset_id < ${a} \
                 OR (asset_id = ${a} AND seq < {}))",
                c.seq
            ));
        }
        sql.push_str(&format!(
            " ORDER BY received_at DESC, asset_id DESC, seq DESC LIMIT {}",
            limit + 1
        ));
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let out = rows
            .iter()
            .take(limit as usize)
            .map(device_event)
            .collect::<Result<Vec<_>>>()?;
        let next = (rows.len() as i64 > limit)
            .then(|| out.last().map(|e| e.cursor.clone()))
            .flatten();
        Ok((out, next))
    }

    /// Security events with a seq above `after_seq`, oldest first, at most
    /// `limit`; events that no longer parse are skipped (and logged).
    pub async fn security_events_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Event)>> {
        let rows = sqlx::query(
            "SELECT seq, body FROM security_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(limit.clamp(1, 100_000))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq: i64 = r.try_get("seq")?;
            let body: String = r.try_get("body")?;
            match serde_json::from_str(&body) {
                Ok(e) => out.push((seq, e)),
                Err(e) => tracing::warn!(seq, error = %e, "a stored security event cannot be read"),
            }
        }
        Ok(out)
    }

    /// The highest security event seq (0 when there is none).
    pub async fn last_security_event_seq(&self) -> Result<i64> {
        let r = sqlx::query("SELECT MAX(seq) AS m FROM security_events")
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get::<Option<i64>, _>("m")?.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::cve_of;

    #[test]
    fn the_cve_of_a_finding_subject() {
        assert_eq!(
            cve_of("cve:CVE-2020-12040:asset:PUMP-1"),
            Some("CVE-2020-12040")
        );
        assert_eq!(cve_of("certificate:AB"), None);
        assert_eq!(cve_of("cve:CVE-1"), None);
    }
}
