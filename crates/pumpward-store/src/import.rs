//! Bulk import of assets (CSV files, the demo hospital).
//!
//! An import of a whole CMMS export must be one transaction (all or nothing)
//! and fast: a statement costs tens of microseconds through the driver, so a
//! per-row read-check-insert loop spends minutes on 100,000 rows. Here the
//! store is read once up front (every asset id, MAC and serial in use, the
//! model catalogue), each row is checked against that in-memory picture —
//! which is updated as rows are accepted, so two rows of one file cannot
//! claim the same MAC either — and new assets, their first lifecycle events
//! and their audit records are written with large multi-row INSERTs. Rows
//! that change an existing asset take the ordinary one-asset path, which
//! re-checks in the database.
//!
//! The work is a pipeline over the machine's cores: a thread parses the file
//! ([`Store::import_assets_csv`]), the import task checks rows and binds the
//! next statement, and the database (SQLite's worker thread, or the
//! PostgreSQL server) executes the previous one. Rows are handled strictly in
//! file order; a row that needs the database (an existing asset, a model not
//! yet in the catalogue) first lets every queued statement run.

use crate::assets::{
    apply_transition, asset_from_row, bind_spec, create_entry, insert_model, new_model_entry,
    update_spec, AnyQuery, ImportSummary, ASSET_COLUMNS, DEFAULT_INITIAL_STATE,
};
use crate::audit::{self, Chain};
use crate::{Actor, Conn, Result, Store, StoreError};
use futures_util::future::join;
use futures_util::stream::{self, Stream, StreamExt};
use pumpward_core::audit::{AuditEntry, Outcome};
use pumpward_core::inventory::csv::{AssetCsvReader, CsvError, CsvLimits, ImportRow, RowError};
use pumpward_core::inventory::{Asset, AssetSpec, Capabilities, DeviceModel, LifecycleState};
use pumpward_core::timefmt;
use sqlx::Row;
use std::collections::{HashMap, HashSet, VecDeque};
use time::OffsetDateTime;

/// Assets per multi-row INSERT: 1,000 × 29 parameters stays below SQLite's
/// limit of 32,766 variables (and PostgreSQL's 65,535).
const ASSET_CHUNK: usize = 1000;

/// Rows per message from the parsing thread.
const BATCH: usize = 1000;

/// Statements built ahead of the one running: enough to keep the database
/// busy, few enough that a refusal wastes little work.
const READY_AHEAD: usize = 4;

/// The reason recorded on every change an import makes.
const REASON: &str = "CSV import";

/// What [`Store::import_assets_csv`] did with a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvImport {
    /// What the store did; all zero when nothing was committed.
    pub summary: ImportSummary,
    /// Rows the parser refused, in file order.
    pub invalid_rows: Vec<RowError>,
    /// Whether the import was committed. It is not when a row was invalid or
    /// refused and the caller did not ask to skip such rows.
    pub committed: bool,
}

/// Who holds each MAC and (manufacturer, serial), which asset ids exist, and
/// the catalogue's ids.
#[derive(Default)]
struct Index {
    ids: HashSet<String>,
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
                id.clone(),
            );
            idx.ids.insert(id);
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
        self.ids.insert(s.asset_id.to_string());
    }

    fn known_model(&self, s: &AssetSpec) -> Option<i64> {
        self.models
            .get(&(s.manufacturer.clone(), s.model.clone()))
            .copied()
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
        if let Some(id) = self.known_model(s) {
            return Ok(id);
        }
        let m = DeviceModel {
            manufacturer: s.manufacturer.clone(),
            model: s.model.clone(),
            device_type: s.device_type,
            capabilities: Capabilities::default(),
        };
        let id = insert_model(conn, &m, now).await?;
        self.models
            .insert((s.manufacturer.clone(), s.model.clone()), id);
        entries.extend(new_model_entry(actor, s, true));
        Ok(id)
    }
}

/// The stored assets among `ids`, by id.
async fn existing(conn: &mut Conn, ids: &[&str]) -> Result<HashMap<String, Asset>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE asset_id IN ({})",
            crate::value_groups(conn, 1, chunk.len())
                .trim_start_matches('(')
                .trim_end_matches(')')
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

/// A new asset waiting for its multi-row INSERT.
struct NewAsset {
    spec: AssetSpec,
    state: LifecycleState,
    model_id: i64,
}

/// The INSERTs of `rows` new assets and of their first lifecycle events.
struct AssetSql {
    assets: String,
    events: String,
}

impl AssetSql {
    fn new(conn: &Conn, rows: usize) -> AssetSql {
        AssetSql {
            assets: without_statement_journal(
                conn,
                format!(
                    "INSERT INTO assets ({ASSET_COLUMNS}) VALUES {}",
                    crate::value_groups(conn, rows, 29)
                ),
            ),
            events: without_statement_journal(
                conn,
                format!(
                    "INSERT INTO lifecycle_events (asset_id, from_state, to_state, actor, reason, at) VALUES {}",
                    crate::value_groups(conn, rows, 6)
                ),
            ),
        }
    }

    fn bind<'q>(
        &'q self,
        rows: &[NewAsset],
        actor: &Actor,
        now: &str,
    ) -> (AnyQuery<'q>, AnyQuery<'q>) {
        let mut assets = sqlx::query(&self.assets);
        let mut events = sqlx::query(&self.events);
        for r in rows {
            assets = bind_spec(
                assets.bind(r.spec.asset_id.to_string()),
                &r.spec,
                r.model_id,
            )
            .bind(r.state.as_str())
            .bind(None::<String>)
            .bind(1i64)
            .bind(now.to_owned())
            .bind(now.to_owned());
            events = events
                .bind(r.spec.asset_id.to_string())
                .bind(None::<String>)
                .bind(r.state.as_str())
                .bind(actor.id.clone())
                .bind(REASON)
                .bind(now.to_owned());
        }
        (assets, events)
    }
}

/// `INSERT OR FAIL` on SQLite. A multi-row INSERT that may abort halfway
/// makes SQLite copy every page it touches into a statement journal, to undo
/// just that statement; an import never needs that, because any failed
/// statement rolls the whole transaction back. With `OR FAIL` and foreign
/// keys deferred to the commit (`defer_foreign_keys`, which SQLite resets at
/// the end of the transaction) no statement can abort halfway.
fn without_statement_journal(conn: &Conn, insert: String) -> String {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        insert.replacen("INSERT INTO", "INSERT OR FAIL INTO", 1)
    } else {
        insert
    }
}

/// The statement texts of full chunks, built once per import.
struct FullChunkSql {
    assets: AssetSql,
    audit: String,
}

/// Everything an import has decided but not yet written.
struct Pending<'s> {
    actor: &'s Actor,
    now: String,
    at: OffsetDateTime,
    skip_refused: bool,
    idx: Index,
    chain: Chain,
    sum: ImportSummary,
    /// Accepted new assets not yet bound to a statement.
    creates: Vec<NewAsset>,
    /// Audit entries not yet sealed, in the order of the changes.
    entries: Vec<AuditEntry>,
    /// Statements bound and waiting to run, in order.
    ready: VecDeque<AnyQuery<'s>>,
    /// Rows that need the database before they can be checked, in order.
    blocked: VecDeque<ImportRow>,
    input_done: bool,
    /// A row was refused and refused rows are not skipped: stop, roll back.
    stop: bool,
}

impl<'s> Pending<'s> {
    /// Takes the next batch from `rows` and checks what it can without the
    /// database. Runs while the database executes the statement before.
    async fn feed<S>(&mut self, rows: &mut S, sql: &'s FullChunkSql)
    where
        S: Stream<Item = Vec<ImportRow>> + Unpin,
    {
        let Some(batch) = rows.next().await else {
            self.input_done = true;
            return;
        };
        let mut batch = batch.into_iter();
        while let Some(row) = batch.next() {
            let model_id = match self.idx.known_model(&row.spec) {
                Some(id) if !self.idx.ids.contains(row.spec.asset_id.as_str()) => id,
                // An existing asset or a new model: the database first.
                _ => {
                    self.blocked.push_back(row);
                    self.blocked.extend(batch);
                    break;
                }
            };
            if !self.create(row, model_id) {
                return;
            }
        }
        self.bind_full_chunks(sql);
    }

    /// Checks a new row; accepts it (true) or records its refusal (false
    /// when that stops the import).
    fn create(&mut self, row: ImportRow, model_id: i64) -> bool {
        if let Some(msg) = self.idx.conflict(&row.spec) {
            return self.refuse(&row, msg);
        }
        let state = row.lifecycle_state.unwrap_or(DEFAULT_INITIAL_STATE);
        self.idx.claim(&row.spec, None);
        self.entries
            .push(create_entry(self.actor, &row.spec, state, REASON));
        self.creates.push(NewAsset {
            spec: row.spec,
            state,
            model_id,
        });
        self.sum.created += 1;
        true
    }

    fn refuse(&mut self, row: &ImportRow, why: String) -> bool {
        self.sum
            .refused
            .push((row.line, row.spec.asset_id.to_string(), why));
        if !self.skip_refused {
            self.stop = true;
        }
        !self.stop
    }

    /// Checks the blocked rows, using the database where they need it. The
    /// caller has run every queued statement first, so the database holds
    /// every earlier row.
    async fn unblock(&mut self, conn: &mut Conn, sql: &'s FullChunkSql) -> Result<()> {
        let rows: Vec<ImportRow> = self.blocked.drain(..).collect();
        let ids: Vec<&str> = rows
            .iter()
            .map(|r| r.spec.asset_id.as_str())
            .filter(|id| self.idx.ids.contains(*id))
            .collect();
        let old = existing(conn, &ids).await?;
        for row in rows {
            let Some(old) = old.get(row.spec.asset_id.as_str()) else {
                // A new asset: checked before its model is added.
                if let Some(msg) = self.idx.conflict(&row.spec) {
                    if !self.refuse(&row, msg) {
                        return Ok(());
                    }
                    continue;
                }
                let model_id = self
                    .idx
                    .model_id(conn, &row.spec, &self.now, self.actor, &mut self.entries)
                    .await?;
                if !self.create(row, model_id) {
                    return Ok(());
                }
                continue;
            };
            match self.change(conn, old, &row).await {
                Ok(true) => self.sum.updated += 1,
                Ok(false) => self.sum.unchanged += 1,
                Err(
                    e @ (StoreError::Conflict(_)
                    | StoreError::Transition(_)
                    | StoreError::Invalid(_)),
                ) => {
                    if !self.refuse(&row, e.to_string()) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.bind_full_chunks(sql);
        Ok(())
    }

    /// Applies a row to an asset that already exists; true if it changed.
    async fn change(&mut self, conn: &mut Conn, old: &Asset, row: &ImportRow) -> Result<bool> {
        let to = row.lifecycle_state.filter(|&s| s != old.lifecycle_state);
        if let Some(to) = to {
            // Checked before anything is written for this row.
            old.lifecycle_state.transition(to)?;
        }
        let mut changed = false;
        if old.spec != row.spec {
            if let Some(msg) = self.idx.conflict(&row.spec) {
                return Err(StoreError::Conflict(msg));
            }
            self.idx
                .model_id(conn, &row.spec, &self.now, self.actor, &mut self.entries)
                .await?;
            let audit = update_spec(conn, old, &row.spec, self.actor, REASON, &self.now).await?;
            self.entries.extend(audit);
            self.idx.claim(&row.spec, Some(&old.spec));
            changed = true;
        }
        if let Some(to) = to {
            // update_spec bumped the version; the transition checks the
            // state, which it did not change.
            let entry = apply_transition(conn, old, to, self.actor, REASON, &self.now).await?;
            self.entries.push(entry);
            changed = true;
        }
        Ok(changed)
    }

    /// Binds statements for every full chunk of creations and of audit
    /// entries. Partial chunks wait for more rows or for [`Pending::finish`].
    fn bind_full_chunks(&mut self, sql: &'s FullChunkSql) {
        while self.creates.len() >= ASSET_CHUNK {
            let chunk: Vec<NewAsset> = self.creates.drain(..ASSET_CHUNK).collect();
            let (assets, events) = sql.assets.bind(&chunk, self.actor, &self.now);
            self.ready.push_back(assets);
            self.ready.push_back(events);
        }
        while self.entries.len() >= audit::INSERT_CHUNK {
            let records = self
                .chain
                .seal(self.entries.drain(..audit::INSERT_CHUNK), self.at);
            self.ready
                .push_back(audit::insert_query(&sql.audit, records));
        }
    }

    /// Writes what is left, the import's own audit record and the chain's
    /// new head. The transaction is still open.
    async fn finish(mut self, conn: &mut Conn) -> Result<ImportSummary> {
        if !self.creates.is_empty() {
            let sql = AssetSql::new(conn, self.creates.len());
            let (assets, events) = sql.bind(&self.creates, self.actor, &self.now);
            assets.execute(&mut *conn).await?;
            events.execute(&mut *conn).await?;
        }
        self.entries.push(
            self.actor
                .entry("inventory.import", Outcome::Success)
                .details(&serde_json::json!({
                    "created": self.sum.created, "updated": self.sum.updated,
                    "unchanged": self.sum.unchanged, "refused": self.sum.refused.len(),
                })),
        );
        while !self.entries.is_empty() {
            let n = self.entries.len().min(audit::INSERT_CHUNK);
            let records = self.chain.seal(self.entries.drain(..n), self.at);
            let sql = audit::insert_sql(conn, records.len());
            audit::insert_query(&sql, records)
                .execute(&mut *conn)
                .await?;
        }
        self.chain.finish(conn).await?;
        Ok(self.sum)
    }
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
        let batches = stream::iter(rows.chunks(BATCH).map(<[ImportRow]>::to_vec));
        let (sum, _) = self
            .import_batches(batches, skip_refused, actor, || true)
            .await?;
        Ok(sum)
    }

    /// Imports an asset CSV file while a thread parses it (see
    /// [`pumpward_core::inventory::csv`] for the format). Rows the parser
    /// refuses are listed; they, and rows the store refuses, roll the whole
    /// import back unless `skip_invalid` is set, in which case the other rows
    /// are imported. Returns an error if the file as a whole is unusable (no
    /// header, a record over the size limit, …); then nothing is imported.
    pub async fn import_assets_csv<R>(
        &self,
        file: R,
        limits: CsvLimits,
        skip_invalid: bool,
        actor: &Actor,
    ) -> std::result::Result<CsvImport, CsvImportError>
    where
        R: std::io::Read + Send + 'static,
    {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<ImportRow>>(4);
        let parser = std::thread::Builder::new()
            .name("csv-import".into())
            .spawn(move || -> std::result::Result<Vec<RowError>, CsvError> {
                let mut reader = AssetCsvReader::new(file, &limits)?;
                let mut invalid = Vec::new();
                let mut batch = Vec::with_capacity(BATCH);
                while let Some(row) = reader.next_row()? {
                    match row {
                        Ok(row) => batch.push(row),
                        Err(e) => invalid.push(e),
                    }
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        if tx.blocking_send(full).is_err() {
                            // The import has failed in the store.
                            return Ok(invalid);
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.blocking_send(batch);
                }
                Ok(invalid)
            })
            .map_err(|e| CsvImportError::Csv(CsvError::Io(e)))?;
        let rows = stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut parsed = None;
        let result = self
            .import_batches(rows, skip_invalid, actor, || {
                // The stream has ended, so the parser has returned.
                let outcome = parser.join().unwrap_or_else(|_| {
                    Err(CsvError::Io(std::io::Error::other(
                        "the CSV parser thread panicked",
                    )))
                });
                let commit = matches!(&outcome, Ok(invalid) if invalid.is_empty() || skip_invalid);
                parsed = Some(outcome);
                commit
            })
            .await;
        let (summary, committed) = result?;
        let invalid_rows = match parsed {
            Some(outcome) => outcome?,
            None => Vec::new(),
        };
        Ok(CsvImport {
            summary,
            invalid_rows,
            committed,
        })
    }

    /// The import pipeline. `commit` is asked, once every row has been read,
    /// whether to commit; rows refused by the store decide that themselves
    /// when they are not skipped.
    async fn import_batches<S>(
        &self,
        mut rows: S,
        skip_refused: bool,
        actor: &Actor,
        commit: impl FnOnce() -> bool,
    ) -> Result<(ImportSummary, bool)>
    where
        S: Stream<Item = Vec<ImportRow>> + Unpin,
    {
        // Where the time goes, for `RUST_LOG=pumpward_store=debug`.
        let t0 = std::time::Instant::now();
        let lap = |phase: &str, rows: usize| {
            let elapsed_ms = t0.elapsed().as_millis() as u64;
            tracing::debug!(phase, elapsed_ms, rows, "asset import");
        };
        let at = crate::now();
        let mut tx = self.write_tx().await?;
        let sqlite = self.backend() == crate::Backend::Sqlite;
        if sqlite {
            // New rows stay out of the search index until the catch-up after
            // commit: indexing 100,000 rows inline would cost seconds.
            sqlx::query("UPDATE asset_search_state SET deferring = 1")
                .execute(&mut *tx)
                .await?;
            sqlx::query("PRAGMA defer_foreign_keys = ON")
                .execute(&mut *tx)
                .await?;
        }
        let sql = FullChunkSql {
            assets: AssetSql::new(&tx, ASSET_CHUNK),
            audit: without_statement_journal(&tx, audit::insert_sql(&tx, audit::INSERT_CHUNK)),
        };
        let mut p = Pending {
            actor,
            now: timefmt::format(at),
            at,
            skip_refused,
            idx: Index::load(&mut tx).await?,
            chain: Chain::lock(&mut tx).await?,
            sum: ImportSummary::default(),
            creates: Vec::new(),
            entries: Vec::new(),
            ready: VecDeque::new(),
            blocked: VecDeque::new(),
            input_done: false,
            stop: false,
        };
        lap("loaded", 0);
        loop {
            if p.stop {
                // Nothing is written: the transaction rolls back on drop.
                // The rest of the file is still read, so that every invalid
                // row is reported along with the refused one.
                while rows.next().await.is_some() {}
                commit();
                let refused = std::mem::take(&mut p.sum.refused);
                return Ok((
                    ImportSummary {
                        refused,
                        ..ImportSummary::default()
                    },
                    false,
                ));
            }
            if let Some(q) = p.ready.pop_front() {
                let more = p.ready.len() < READY_AHEAD && p.blocked.is_empty() && !p.input_done;
                let (done, ()) = join(q.execute(&mut *tx), async {
                    if more {
                        p.feed(&mut rows, &sql).await;
                    }
                })
                .await;
                done?;
            } else if !p.blocked.is_empty() {
                p.unblock(&mut tx, &sql).await?;
            } else if !p.input_done {
                p.feed(&mut rows, &sql).await;
            } else {
                break;
            }
        }
        lap("inserted", p.sum.created);
        let sum = p.finish(&mut tx).await?;
        if sqlite {
            sqlx::query("UPDATE asset_search_state SET deferring = 0")
                .execute(&mut *tx)
                .await?;
        }
        if !commit() {
            return Ok((
                ImportSummary {
                    refused: sum.refused,
                    ..ImportSummary::default()
                },
                false,
            ));
        }
        tx.commit().await?;
        lap("committed", sum.created);
        if sum.created > 0 {
            self.spawn_search_catch_up();
        }
        // New and changed assets are matched against the advisories held:
        // one run over the fleet (a few hundred milliseconds for 100,000
        // unchanged assets; raising many new findings costs more).
        if sum.created + sum.updated > 0 && self.holds_current_advisories().await? {
            self.match_vulnerabilities(actor).await?;
            lap("matched", sum.created + sum.updated);
        }
        Ok((sum, true))
    }
}

/// Why [`Store::import_assets_csv`] imported nothing at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvImportError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error(transparent)]
    Store(#[from] StoreError),
}
