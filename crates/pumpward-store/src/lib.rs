//! Pumpward's store: one repository layer over SQLite (the embedded default)
//! and PostgreSQL (for several server nodes).
//!
//! Both backends run through sqlx's `Any` driver with the same SQL, written to
//! the common subset of the two dialects (`$n` parameters, `RETURNING`,
//! integers for booleans, canonical UTC text for times). Only the migrations
//! differ, and they are versioned per backend under `migrations/`.
//!
//! # Invariants
//!
//! - Every method that changes state writes its audit record in the same
//!   transaction: a change is never committed without its record, and a
//!   record never describes a change that did not commit.
//! - A method returns only after its transaction has committed, so anything
//!   acknowledged to a client has reached the database (SQLite runs in WAL
//!   mode with `synchronous=FULL`).
//! - On SQLite every write transaction starts with `BEGIN IMMEDIATE`, which
//!   takes the write lock up front; a deferred transaction that upgrades later
//!   can fail with `SQLITE_BUSY` without waiting for the busy timeout.

mod assets;
mod assignment;
mod audit;
mod detection;
mod detection_inputs;
mod devices;
mod findings;
mod import;
mod incidents;
mod library;
mod network;
mod network_quarantine;
mod pki;
mod remediation;
mod responses;
mod rollout;
mod sbom;
mod sbom_match;
mod users;
mod vuln;
mod vuln_match;
mod vuln_pages;
mod vuln_vex;

pub use assets::{
    spec_diff, AssetFacet, AssetFilter, AssetPage, ImportOutcome, ImportSummary, LifecycleEvent,
    DEFAULT_INITIAL_STATE,
};
pub use assignment::{
    GroupPump, LibraryAssignment, PumpGroup, MAX_GROUP_DESCRIPTION_CHARS, MAX_GROUP_MEMBERS,
    MAX_TARGET_CHARS,
};
pub use audit::{AuditFilter, VerifyReport};
pub use detection::{AlertFilter, SecurityEventFilter, StoredAlert, StoredEvent};
pub use detection_inputs::{
    AffectedFinding, DeviceEventCursor, PumpEventFilter, StoredDeviceEvent,
};
pub use devices::{DeviceBatch, DeviceEventRecord, DeviceHello, FirmwareCheck};
pub use findings::{Finding, FindingFilter, NewFinding, Severity};
pub use import::{CsvImport, CsvImportError};
pub use incidents::{DetectionSettings, IncidentFilter, StoredIncident};
pub use library::{
    LibraryRevision, LibrarySummary, NewLibraryDraft, RevisionState, SignedLibrary,
    StoredLibrarySigner,
};
pub use network::{PolicyVersion, MAX_POLICY_COMMENT};
pub use network_quarantine::QuarantineRecord;
pub use pki::{
    CertFilter, CertKind, CertificateRecord, CrlRecord, EnrollmentCode, FleetCertificateCounts,
    NewCertificate, RevokedCertificate, StoredCaMaterial,
};
pub use remediation::AssetControl;
pub use responses::{ResponseFilter, ResponseRecord, ResponseRequest};
pub use rollout::{
    csv_cell, in_pilot_share, AreaCompliance, Compliance, CqiReport, CqiRow, DueAnnouncement,
    LibraryReport, NewRollout, Rollout, RolloutCounts, RolloutPump, StalePump,
};
pub use sbom::{cites_sbom, ModelSbom, SbomAttach, SbomVexStatement, StoredComponent};
pub use users::{ApiToken, NewSession, Session, SessionStage, User};
pub use vuln::{
    cited_advisories, csv_safe_cell, vulnerability_status, write_findings_csv, AdvisoryFilter,
    AdvisoryRecord, FindingRow, MatchReport, ProductStatusRecord, VulnImport, VulnerabilityRecord,
    KIND_AFFECTED, KIND_REVIEW,
};
pub use vuln_pages::TrendDay;
pub use vuln_vex::cited_remediations;

use pumpward_core::audit::{AuditEntry, Outcome};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyConnection;
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A failure of the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {location}: {reason}")]
    Open { location: String, reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this to this record (e.g. review their own
    /// drug library: separation of duties).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Transition(#[from] pumpward_core::inventory::TransitionError),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound {
                what: "record".into(),
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(format!(
                "a record with the same key already exists ({})",
                d.message()
            )),
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
                StoreError::Conflict(format!(
                    "a referenced record is missing or still in use ({})",
                    d.message()
                ))
            }
            _ => StoreError::Db(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Who is acting, for the audit trail: an authenticated user, a token, the
/// system itself or a local CLI operator, and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `user:<name>`, `token:<id>`, `system` or `cli:<os user>`.
    pub id: String,
    /// Client address, or `cli`.
    pub source: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Actor {
            id: "system".into(),
            source: None,
        }
    }

    /// The operator running a local CLI command.
    pub fn cli() -> Self {
        let who = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        Actor {
            id: format!("cli:{who}"),
            source: Some("cli".into()),
        }
    }

    pub fn user(username: &str, source: Option<String>) -> Self {
        Actor {
            id: format!("user:{username}"),
            source,
        }
    }

    /// An audit entry by this actor.
    pub fn entry(&self, action: &str, outcome: Outcome) -> AuditEntry {
        AuditEntry::new(self.id.clone(), action, outcome).source(self.source.clone())
    }
}

/// The store: a connection pool and the backend it talks to.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Standalone audit records go through the group committer (see `audit`).
    committer: tokio::sync::mpsc::Sender<audit::Pending>,
    /// Serialises this process's write transactions (see [`WriteTx`]).
    writer: WriteLock,
}

/// One writer at a time, in this process. SQLite allows one writer anyway;
/// queueing on an async mutex wakes the next writer as soon as the last
/// commits, whereas SQLite's busy handler polls with sleeps of up to 100 ms.
/// Other processes (the CLI beside a running server) still meet SQLite's
/// lock and its busy timeout. PostgreSQL needs no such lock.
pub(crate) type WriteLock = std::sync::Arc<tokio::sync::Mutex<()>>;

/// A write transaction, holding the process's writer lock on SQLite until it
/// commits or is dropped (which rolls it back).
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Appends the audit entries that describe this transaction's change and
    /// commits both together (the store's first invariant).
    pub(crate) async fn commit_audited(
        mut self,
        entries: Vec<pumpward_core::audit::AuditEntry>,
        at: OffsetDateTime,
    ) -> Result<()> {
        audit::append(&mut self, entries, at).await?;
        self.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// The clock the store stamps records with. Tests may pin it.
pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl Store {
    /// Opens (creating if needed) the SQLite store `pumpward.db` in `data_dir`
    /// and runs its migrations.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let path = data_dir.join("pumpward.db");
        let location = path.display().to_string();
        let open_err = |reason: String| StoreError::Open {
            location: location.clone(),
            reason,
        };
        std::fs::create_dir_all(data_dir)
            .map_err(|e| open_err(format!("cannot create the data directory: {e}")))?;
        // Fail early and plainly on permissions rather than deep inside SQLite.
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| open_err(e.to_string()))?;
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                         PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; \
                         PRAGMA cache_spill = 65536; PRAGMA wal_autocheckpoint = 16384; \
                         PRAGMA journal_size_limit = 67108864;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let store = Store::with_pool(pool, Backend::Sqlite);
        store.spawn_checkpointer();
        store
            .migrate()
            .await
            .map_err(|e| open_err(format!("migration failed: {e}")))?;
        store.spawn_search_catch_up();
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` and runs its migrations.
    pub async fn open_postgres(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let location = redact_url(url);
        let open_err = |reason: String| StoreError::Open {
            location: location.clone(),
            reason,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let store = Store::with_pool(pool, Backend::Postgres);
        store
            .migrate()
            .await
            .map_err(|e| open_err(format!("migration failed: {e}")))?;
        Ok(store)
    }

    /// Opens PostgreSQL if `database_url` is given, else SQLite in `data_dir`.
    pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Store> {
        match database_url {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                Store::open_postgres(u).await
            }
            Some(u) => Err(StoreError::Open {
                location: redact_url(u),
                reason: "only postgres:// URLs are supported; omit --database-url for SQLite"
                    .into(),
            }),
            None => Store::open_sqlite(data_dir).await,
        }
    }

    fn with_pool(pool: AnyPool, backend: Backend) -> Store {
        let writer = WriteLock::default();
        let committer = audit::spawn_group_committer(pool.clone(), backend, writer.clone());
        Store {
            pool,
            backend,
            committer,
            writer,
        }
    }

    /// Checkpoints SQLite's WAL from a task of its own, every half second,
    /// so that committing writers do not. By default the commit that pushes
    /// the WAL past 1,000 pages copies it into the database and syncs it,
    /// inside that writer's latency: for the gateway's event writer that was
    /// 40 % of its time. `wal_autocheckpoint` (64 MiB) stays as a backstop if
    /// this task falls behind; `journal_size_limit` trims the WAL file after
    /// a burst. A PASSIVE checkpoint neither waits for nor blocks readers
    /// and writers. The task ends when the pool is closed.
    fn spawn_checkpointer(&self) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if pool.is_closed() {
                    return;
                }
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        });
    }

    async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&self.pool).await,
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Brings SQLite's free-text index up to date with the assets table (see
    /// `migrations/sqlite/0002_asset_search.sql`), a few thousand assets per
    /// transaction so that other writers wait milliseconds, not seconds.
    /// Returns how many assets it indexed; a no-op on PostgreSQL, whose index
    /// is always current. Searches are complete without it, only slower.
    pub async fn catch_up_search_index(&self) -> Result<u64> {
        const CHUNK: i64 = 5_000;
        if self.backend != Backend::Sqlite {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            // A read first, so that an idle store never takes the write lock.
            let behind: i64 = sqlx::query_scalar(
                "SELECT (SELECT COALESCE(MAX(rowid), 0) FROM assets) \
                 > (SELECT indexed_upto FROM asset_search_state)",
            )
            .fetch_one(self.pool())
            .await?;
            if behind == 0 {
                return Ok(total);
            }
            let mut tx = self.write_tx().await?;
            let upto: i64 = sqlx::query_scalar("SELECT indexed_upto FROM asset_search_state")
                .fetch_one(&mut *tx)
                .await?;
            let max: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM assets")
                .fetch_one(&mut *tx)
                .await?;
            let end = max.min(upto + CHUNK);
            let n = sqlx::query(
                "INSERT INTO asset_search (rowid, search_text) \
                 SELECT rowid, search_text FROM assets WHERE rowid > $1 AND rowid <= $2",
            )
            .bind(upto)
            .bind(end)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE asset_search_state SET indexed_upto = $1")
                .bind(end)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            total += n;
        }
    }

    /// Runs [`Store::catch_up_search_index`] in the background.
    pub(crate) fn spawn_search_catch_up(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match store.catch_up_search_index().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    assets = n,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "search index caught up"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "search index catch-up failed; searches stay complete but slower")
                }
            }
        });
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction (see the module docs for `BEGIN IMMEDIATE`).
    pub(crate) async fn write_tx(&self) -> Result<WriteTx> {
        begin_write(&self.pool, self.backend, &self.writer).await
    }

    /// The raw pool, for tests that must tamper with stored rows behind the
    /// repository layer (e.g. to prove the audit chain catches it).
    #[doc(hidden)]
    pub fn raw_pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Starts a write transaction on `pool` (see the module docs for `BEGIN IMMEDIATE`).
pub(crate) async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
    writer: &WriteLock,
) -> Result<WriteTx> {
    Ok(match backend {
        // `cache_spill` (pages): a big write transaction keeps up to 256 MiB
        // of changed pages in memory instead of writing them to the WAL
        // twice (once spilled, once committed); readers are unaffected.
        Backend::Sqlite => {
            let turn = writer.clone().lock_owned().await;
            WriteTx {
                tx: pool.begin_with("BEGIN IMMEDIATE").await?,
                _turn: Some(turn),
            }
        }
        Backend::Postgres => WriteTx {
            tx: pool.begin().await?,
            _turn: None,
        },
    })
}

/// The `(…), (…)` groups of a multi-row INSERT of `rows` rows with
/// `per_row` parameters each. SQLite gets anonymous `?` parameters: its sqlx
/// driver resolves every `$N` by name, which costs time quadratic in the
/// number of parameters and dominated bulk imports (see PERFORMANCE.md).
/// PostgreSQL needs `$N`.
pub(crate) fn value_groups(conn: &AnyConnection, rows: usize, per_row: usize) -> String {
    let sqlite = conn.backend_name().eq_ignore_ascii_case("sqlite");
    let mut out = String::with_capacity(rows * per_row * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for k in 0..per_row {
            if k > 0 {
                out.push_str(", ");
            }
            if sqlite {
                out.push('?');
            } else {
                out.push_str(&format!("${}", r * per_row + k + 1));
            }
        }
        out.push(')');
    }
    out
}

/// Hides the password in a database URL before it is printed or logged.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

pub(crate) type Conn = AnyConnection;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_hidden() {
        assert_eq!(
            redact_url("postgres://pw:s3cret@db:5432/pumpward"),
            "postgres://pw:***@db:5432/pumpward"
        );
        assert_eq!(
            redact_url("postgres://db/pumpward"),
            "postgres://db/pumpward"
        );
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(like_pattern("A_b%"), "%a\\_b\\%%");
    }
}
