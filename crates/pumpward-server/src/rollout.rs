//! The drug-library rollout driver: announces due library versions to the
//! connected pumps (`drug_library_available` on their device channel) and
//! turns what the pumps report into per-pump rollout state.
//!
//! The store decides what is due (active rollout, started wave, not yet
//! announced or announced long ago without an answer); this task only sends
//! and records. A pump that is offline stays due and is announced when it
//! is next connected at a tick. Announcing is idempotent on the pump side
//! (it refuses a version not newer than its own), so a repeat is harmless.

use crate::device::Sessions;
use pumpward_proto::message::{self, EventKind, PumpEvent};
use pumpward_store::{LibraryReport, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How often due announcements are looked for.
pub const TICK: Duration = Duration::from_secs(2);
/// An announcement without an answer is repeated after this long.
pub const RETRY_AFTER: time::Duration = time::Duration::minutes(10);
/// Rows read per query (a tick pages through everything that is due).
pub const PER_TICK: i64 = 5000;

/// What a pump reported about libraries in these events.
pub fn library_reports(asset_id: &str, events: &[PumpEvent]) -> Vec<(String, LibraryReport)> {
    events
        .iter()
        .filter_map(|e| {
            let r = match &e.kind {
                EventKind::LibraryInstalled { version, digest } => LibraryReport::Installed {
                    version: version.clone(),
                    digest: digest.clone(),
                },
                EventKind::LibraryRejected {
                    version,
                    digest,
                    reason,
                } => {
                    let code = serde_json::to_value(reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| "other".into());
                    LibraryReport::Rejected {
                        version: version.clone(),
                        digest: digest.clone(),
                        reason: match e.detail.get("error") {
                            Some(why) => format!("{code}: {why}"),
                            None => code,
                        },
                    }
                }
                _ => return None,
            };
            Some((asset_id.to_owned(), r))
        })
        .collect()
}

/// Sends what is due now; returns how many pumps were announced to.
pub async fn announce_due(store: &Store, sessions: &Sessions) -> anyhow::Result<usize> {
    let now = time::OffsetDateTime::now_utc();
    let mut sent: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut after: Option<(String, i64)> = None;
    loop {
        let due = store
            .due_library_announcements(
                now,
                RETRY_AFTER,
                after.as_ref().map(|(a, r)| (a.as_str(), *r)),
                PER_TICK,
            )
            .await?;
        let Some(last) = due.last() else { break };
        after = Some((last.asset_id.clone(), last.rollout_id));
        let full = due.len() as i64 == PER_TICK;
        for d in due {
            let c = message::Command::DrugLibraryAvailable {
                version: d.version.to_string(),
                digest: d.envelope_sha256.clone(),
                size: u64::try_from(d.envelope_size).ok(),
            };
            // Only connected pumps can be told; the others stay due.
            if sessions.send_command(&d.asset_id, c) {
                sent.entry(d.rollout_id).or_default().push(d.asset_id);
            }
        }
        if !full {
            break;
        }
    }
    let mut n = 0;
    for (rollout, assets) in sent {
        n += assets.len();
        store.mark_library_announced(rollout, &assets, now).await?;
    }
    Ok(n)
}

/// Runs [`announce_due`] every [`TICK`].
pub fn spawn_driver(store: Store, sessions: Arc<Sessions>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(TICK).await;
            match announce_due(&store, &sessions).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pumps = n, "drug library announced"),
                Err(e) => tracing::warn!(error = %e, "library rollout tick failed"),
            }
        }
    })
}
