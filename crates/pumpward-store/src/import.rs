//! Bulk import of assets (CSV files, the demo hospital).
//!
//! An import of a whole CMMS export must be one transaction (all or nothing)
//! and fast: a statement costs tens of microseconds through the driver, so a
//! per-row read-check-insert loop spends minutes on 100,000 rows. Here the
//! store is read once up front (the assets named in the file, every MAC and
//! serial in use, the model catalogue), each row is checked against that
//! in-memory picture — which is updated as rows are accepted, so two rows of
//! one file cannot claim the same MAC either — and new assets, their first
//! lifecycle events and their audit records are written with multi-row
//! INSERTs. Rows that change an existing asset take the ordinary one-asset
//! path, which re-checks in the database.

use crate::assets::{
    apply_transition, asset_from_row, bind_spec, create_entry, insert_model, new_model_entry,
    update_spec, ImportOutcome, ImportSummary, ASSET_COLUMNS, DEFAULT_INITIAL_STATE,
};
use crate::{Actor, Conn, Result, Store, StoreError};
use pumpward_core::audit::{AuditEntry, Outcome};
use pumpward_core::inventory::csv::ImportRow;
use pumpward_core::inventory::{Asset, AssetSpec, Capabilities, DeviceModel, LifecycleState};
use pumpward_core::timefmt;
use sqlx::Row;
use std::collections::HashMap;

/// Rows per multi-row INSERT: 100 assets × 28 parameters stays far below
/// both SQLite's (32,766) and PostgreSQL's (65,535) parameter limits.
const CHUNK: usize = 100;

/// Who holds each MAC and (manufacturer, serial), and the catalogue's ids.
#[derive(Default)]
struct Index {
    macs: HashMap<String, String>,
    serials: HashMap<(String, String), String>,
    models: HashMap<(String, String), i64>,
}

impl Index {
    async fn load(conn: &mut Conn) -> Result<Index> {
        let mut idx = Index::default();
        for r in
            sqlx::query("SELECT asset_id, mac_address, manufacturer, serial_number FROM assets")
                .fetch_all(&mut *conn)
                .await?
        {
            let id: String = r.try_get("asset_id")?;
            if let Some(m) = r.try_get::<Option<String>, _>("mac_address")? {
                idx.macs.insert(m, id.clone());
            }
            idx.serials.insert(
                (r.try_get("manufacturer")?, r.try_get("serial_number")?),
                id,
            );
        }
        for r in sqlx::query("SELECT id, manufacturer, model FROM device_models")
            .fetch_all(&mut *conn)
            .await?
        {
            idx.models.insert(
                (r.try_get("manufacturer")?, r.try_get("model")?),
                r.try_get("id")?,
            );
        }
        Ok(idx)
    }

    /// Why `s` cannot be stored, if another asset holds its MAC or serial.
    fn conflict(&self, s: &AssetSpec) -> Option<String> {
        let me = s.asset_id.as_str();
        if let Some(mac) = s.mac_address {
            if let Some(other) = self.macs.get(&mac.to_string()).filter(|o| *o != me) {
                return Some(format!(
                    "MAC address {mac} already belongs to asset {other}"
                ));
            }
        }
        let key = (s.manufacturer.clone(), s.serial_number.clone());
        if let Some(other) = self.serials.get(&key).filter(|o| *o != me) {
            return Some(format!(
                "{} serial number {} already belongs to asset {other}",
                s.manufacturer, s.serial_number
            ));
        }
        None
    }

    /// Records that `s` now holds its MAC and serial (and `old` no longer does).
    fn claim(&mut self, s: &AssetSpec, old: Option<&AssetSpec>) {
        if let Some(old) = old {
            if let Some(m) = old.mac_address {
                self.macs.remove(&m.to_string());
            }
            self.serials
                .remove(&(old.manufacturer.clone(), old.serial_number.clone()));
        }
        if let Some(m) = s.mac_address {
            self.macs.insert(m.to_string(), s.asset_id.to_string());
        }
        self.serials.insert(
            (s.manufacturer.clone(), s.serial_number.clone()),
            s.asset_id.to_string(),
        );
    }

    /// The catalogue id of `s`'s model, adding the model (with unknown
    /// capabilities) if it is new; a new model gets its own audit entry.
    async fn model_id(
        &mut self,
        conn: &mut Conn,
        s: &AssetSpec,
        now: &str,
        actor: &Actor,
        entries: &mut Vec<AuditEntry>,
    ) -> Result<i64> {
        let key = (s.manufacturer.clone(), s.model.clone());
        if let Some(&id) = self.models.get(&key) {
            return Ok(id);
        }
        let m = DeviceModel {
            manufacturer: s.manufacturer.clone(),
            model: s.model.clone(),
            device_type: s.device_type,
            capabilities: Capabilities::default(),
        };
        let id = insert_model(conn, &m, now).await?;
        self.models.insert(key, id);
        entries.extend(new_model_entry(actor, s, true));
        Ok(id)
    }
}

/// The stored assets among `ids`, by id.
async fn existing(conn: &mut Conn, ids: &[&str]) -> Result<HashMap<String, Asset>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE asset_id IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            let a = asset_from_row(&r)?;
            out.insert(a.spec.asset_id.to_string(), a);
        }
    }
    Ok(out)
}

/// A new asset waiting for the multi-row INSERT.
struct NewAsset<'a> {
    spec: &'a AssetSpec,
    state: LifecycleState,
    model_id: i64,
}

async fn insert_new(
    conn: &mut Conn,
    rows: &[NewAsset<'_>],
    actor: &Actor,
    now: &str,
) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO assets ({ASSET_COLUMNS}) VALUES {}",
            crate::value_groups(conn, chunk.len(), 28)
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = bind_spec(q.bind(r.spec.asset_id.to_string()), r.spec, r.model_id)
                .bind(r.state.as_str())
                .bind(None::<String>)
                .bind(1i64)
                .bind(now.to_owned())
                .bind(now.to_owned());
        }
        q.execute(&mut *conn).await?;

        let sql = format!(
            "INSERT INTO lifecycle_events (asset_id, from_state, to_state, actor, reason, at) VALUES {}",
            crate::value_groups(conn, chunk.len(), 6)
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.spec.asset_id.to_string())
                .bind(None::<String>)
                .bind(r.state.as_str())
                .bind(actor.id.clone())
                .bind("CSV import")
                .bind(now.to_owned());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// Imports rows in one transaction, upserting by asset id. A row whose
    /// spec and state match the store is left alone, so importing the same
    /// file twice changes nothing. With `skip_refused` false, any refused row
    /// (a MAC or serial of another asset, an illegal lifecycle change) rolls
    /// the whole import back and the summary lists it.
    pub async fn import_assets(
        &self,
        rows: &[ImportRow],
        skip_refused: bool,
        actor: &Actor,
    ) -> Result<ImportSummary> {
        const REASON: &str = "CSV import";
        // Where the time goes, for `RUST_LOG=pumpward_store=debug`.
        let t0 = std::time::Instant::now();
        let lap = |phase: &str| {
            let elapsed_ms = t0.elapsed().as_millis() as u64;
            tracing::debug!(phase, elapsed_ms, rows = rows.len(), "asset import");
        };
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let sqlite = self.backend() == crate::Backend::Sqlite;
        if sqlite {
            // New rows stay out of the search index until the catch-up after
            // commit: indexing 100,000 rows inline would cost seconds.
            sqlx::query("UPDATE asset_search_state SET deferring = 1")
                .execute(&mut *tx)
                .await?;
        }
        let mut idx = Index::load(&mut tx).await?;
        let ids: Vec<&str> = rows.iter().map(|r| r.spec.asset_id.as_str()).collect();
        let old = existing(&mut tx, &ids).await?;
        let mut sum = ImportSummary::default();
        let mut entries = Vec::new();
        let mut new_assets = Vec::new();
        for row in rows {
            let id = row.spec.asset_id.as_str();
            let r: Result<ImportOutcome> = async {
                match old.get(id) {
                    None => {
                        if let Some(msg) = idx.conflict(&row.spec) {
                            return Err(StoreError::Conflict(msg));
                        }
                        let state = row.lifecycle_state.unwrap_or(DEFAULT_INITIAL_STATE);
                        let model_id = idx
                            .model_id(&mut tx, &row.spec, &now, actor, &mut entries)
                            .await?;
                        idx.claim(&row.spec, None);
                        entries.push(create_entry(actor, &row.spec, state, REASON));
                        new_assets.push(NewAsset {
                            spec: &row.spec,
                            state,
                            model_id,
                        });
                        Ok(ImportOutcome::Created)
                    }
                    Some(old) => {
                        let to = row.lifecycle_state.filter(|&s| s != old.lifecycle_state);
                        if let Some(to) = to {
                            // Checked before anything is written for this row.
                            old.lifecycle_state.transition(to)?;
                        }
                        let mut changed = false;
                        if old.spec != row.spec {
                            if let Some(msg) = idx.conflict(&row.spec) {
                                return Err(StoreError::Conflict(msg));
                            }
                            idx.model_id(&mut tx, &row.spec, &now, actor, &mut entries)
                                .await?;
                            entries.extend(
                                update_spec(&mut tx, old, &row.spec, actor, REASON, &now).await?,
                            );
                            idx.claim(&row.spec, Some(&old.spec));
                            changed = true;
                        }
                        if let Some(to) = to {
                            // update_spec bumped the version; the transition
                            // checks the state, which it did not change.
                            entries.push(
                                apply_transition(&mut tx, old, to, actor, REASON, &now).await?,
                            );
                            changed = true;
                        }
                        Ok(if changed {
                            ImportOutcome::Updated
                        } else {
                            ImportOutcome::Unchanged
                        })
                    }
                }
            }
            .await;
            match r {
                Ok(ImportOutcome::Created) => sum.created += 1,
                Ok(ImportOutcome::Updated) => sum.updated += 1,
                Ok(ImportOutcome::Unchanged) => sum.unchanged += 1,
                Err(
                    e @ (StoreError::Conflict(_)
                    | StoreError::Transition(_)
                    | StoreError::Invalid(_)),
                ) => {
                    sum.refused.push((row.line, id.to_owned(), e.to_string()));
                    if !skip_refused {
                        // Nothing is written: the transaction rolls back on drop.
                        return Ok(ImportSummary {
                            created: 0,
                            updated: 0,
                            unchanged: 0,
                            ..sum
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        lap("checked");
        insert_new(&mut tx, &new_assets, actor, &now).await?;
        lap("inserted");
        entries.push(actor.entry("inventory.import", Outcome::Success).details(
            &serde_json::json!({
                "created": sum.created, "updated": sum.updated,
                "unchanged": sum.unchanged, "refused": sum.refused.len(),
            }),
        ));
        if sqlite {
            sqlx::query("UPDATE asset_search_state SET deferring = 0")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit_audited(entries, crate::now()).await?;
        lap("committed");
        if sum.created > 0 {
            self.spawn_search_catch_up();
        }
        Ok(sum)
    }
}
