//! The audit trail: appends in the caller's transaction, queries, verification.

use crate::{Backend, Conn, Result, Store, StoreError};
use pumpward_core::audit::{AuditEntry, AuditRecord, ChainError, ChainHead, Outcome, Verifier};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyPool;
use sqlx::Row;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

/// What to show of the audit trail; all filters are optional and combine.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    /// Matches the action exactly or as a dotted prefix (`asset` matches `asset.update`).
    pub action: Option<String>,
    pub object: Option<String>,
    pub outcome: Option<Outcome>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Return records older than this sequence number (paging backwards).
    pub before_seq: Option<i64>,
    /// At most 1000; 0 means 100.
    pub limit: i64,
}

/// The result of verifying the whole chain.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub records: i64,
    pub head: ChainHead,
    pub error: Option<ChainError>,
}

/// Appends entries to the chain inside the caller's transaction.
pub(crate) async fn append(
    conn: &mut Conn,
    entries: Vec<AuditEntry>,
    at: OffsetDateTime,
) -> Result<Vec<AuditRecord>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut chain = Chain::lock(conn).await?;
    let out = chain.seal(entries, at);
    for chunk in out.chunks(INSERT_CHUNK) {
        let sql = insert_sql(conn, chunk.len());
        insert_query(&sql, chunk.to_vec())
            .execute(&mut *conn)
            .await?;
    }
    chain.finish(conn).await?;
    Ok(out)
}

/// Records per multi-row INSERT: 2,000 × 11 parameters stays below SQLite's
/// limit of 32,766 (and PostgreSQL's 65,535); fewer, larger statements also
/// spare SQLite's statement journal most of its page copies.
pub(crate) const INSERT_CHUNK: usize = 2000;

/// The end of the chain, held for one transaction that appends to it.
///
/// Locking the head row first means concurrent appenders on PostgreSQL
/// queue here instead of forking the chain; on SQLite the `BEGIN IMMEDIATE`
/// write lock already serialises them. The head is written back by
/// [`Chain::finish`], in the same transaction as the records.
pub(crate) struct Chain {
    last_seq: i64,
    prev_hash: String,
}

impl Chain {
    pub(crate) async fn lock(conn: &mut Conn) -> Result<Chain> {
        let sql = if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            "SELECT seq, hash FROM audit_head WHERE id = 1"
        } else {
            "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
        };
        let row = sqlx::query(sql).fetch_one(&mut *conn).await?;
        Ok(Chain {
            last_seq: row.try_get("seq")?,
            prev_hash: row.try_get("hash")?,
        })
    }

    /// Seals `entries`, in order, as the next records of the chain.
    pub(crate) fn seal(
        &mut self,
        entries: impl IntoIterator<Item = AuditEntry>,
        at: OffsetDateTime,
    ) -> Vec<AuditRecord> {
        entries
            .into_iter()
            .map(|e| {
                self.last_seq += 1;
                let rec = e.seal(self.last_seq, at, &self.prev_hash);
                self.prev_hash.clone_from(&rec.hash);
                rec
            })
            .collect()
    }

    /// Writes the new head. Call it after the last record is inserted.
    pub(crate) async fn finish(self, conn: &mut Conn) -> Result<()> {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(self.last_seq)
            .bind(self.prev_hash)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// The INSERT of `n` audit records.
pub(crate) fn insert_sql(conn: &Conn, n: usize) -> String {
    format!(
        "INSERT INTO audit_log ({COLUMNS}) VALUES {}",
        crate::value_groups(conn, n, 11)
    )
}

/// Binds `records` (moved, not copied) to [`insert_sql`] of their number.
pub(crate) fn insert_query(sql: &str, records: Vec<AuditRecord>) -> crate::assets::AnyQuery<'_> {
    let mut q = sqlx::query(sql);
    for rec in records {
        q = q
            .bind(rec.seq)
            .bind(rec.at)
            .bind(rec.entry.actor)
            .bind(rec.entry.action)
            .bind(rec.entry.object)
            .bind(rec.entry.outcome.as_str())
            .bind(rec.entry.reason)
            .bind(rec.entry.source)
            .bind(rec.entry.details)
            .bind(rec.prev_hash)
            .bind(rec.hash);
    }
    q
}

fn record_from_row(r: &AnyRow) -> Result<AuditRecord> {
    let outcome: String = r.try_get("outcome")?;
    Ok(AuditRecord {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        entry: AuditEntry {
            actor: r.try_get("actor")?,
            action: r.try_get("action")?,
            object: r.try_get("object")?,
            // An unknown outcome string can only come from tampering; keep the
            // record readable and let verification flag it.
            outcome: outcome.parse().unwrap_or(Outcome::Failure),
            reason: r.try_get("reason")?,
            source: r.try_get("source")?,
            details: r.try_get("details")?,
        },
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

const COLUMNS: &str =
    "seq, at, actor, action, object, outcome, reason, source, details, prev_hash, hash";

/// A standalone entry waiting for the group committer, and where to answer.
pub(crate) type Pending = (AuditEntry, oneshot::Sender<Result<AuditRecord>>);

/// Most entries the group committer puts in one transaction.
const MAX_GROUP: usize = 1024;

/// Starts the group committer for standalone audit records.
///
/// Logins, refusals and other records that do not ride on a state change's
/// transaction arrive one at a time from many requests. Committing each alone
/// costs a disk flush; the committer instead takes everything that is waiting
/// when it starts a transaction (up to [`MAX_GROUP`]) and commits it once.
/// Each caller is still answered only after its own record has committed, so
/// "durable before acknowledged" holds; under load, N callers share one flush.
pub(crate) fn spawn_group_committer(
    pool: AnyPool,
    backend: Backend,
    writer: crate::WriteLock,
) -> mpsc::Sender<Pending> {
    let (tx, mut rx) = mpsc::channel::<Pending>(4 * MAX_GROUP);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            let (entries, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let written = async {
                let mut t = crate::begin_write(&pool, backend, &writer).await?;
                let recs = append(&mut t, entries, crate::now()).await?;
                t.commit().await?;
                Ok::<_, StoreError>(recs)
            }
            .await;
            match written {
                Ok(recs) => {
                    for (rec, reply) in recs.into_iter().zip(replies) {
                        let _ = reply.send(Ok(rec));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit group commit failed");
                    let msg = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Unavailable(msg.clone())));
                    }
                }
            }
        }
    });
    tx
}

impl Store {
    /// Records one entry on its own (authentication events, refusals),
    /// through the group committer; returns once it has committed.
    pub async fn audit(&self, entry: AuditEntry) -> Result<AuditRecord> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the audit writer has stopped".into());
        self.committer
            .send((entry, reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Records several entries in one transaction (one commit, one fsync).
    pub async fn audit_many(&self, entries: Vec<AuditEntry>) -> Result<Vec<AuditRecord>> {
        let mut tx = self.write_tx().await?;
        let recs = append(&mut tx, entries, crate::now()).await?;
        tx.commit().await?;
        Ok(recs)
    }

    /// The newest records matching `f`, newest first.
    pub async fn audit_list(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, v: String| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(a) = &f.actor {
            push(&mut sql, " AND actor = ?", a.clone());
        }
        if let Some(a) = &f.action {
            push(&mut sql, " AND (action = ?", a.clone());
            push(
                &mut sql,
                " OR action LIKE ? ESCAPE '\\')",
                format!("{}.%", escape_like(a)),
            );
        }
        if let Some(o) = &f.object {
            push(&mut sql, " AND object = ?", o.clone());
        }
        if let Some(o) = f.outcome {
            push(&mut sql, " AND outcome = ?", o.as_str().into());
        }
        if let Some(t) = f.since {
            push(&mut sql, " AND at >= ?", pumpward_core::timefmt::format(t));
        }
        if let Some(t) = f.until {
            push(&mut sql, " AND at < ?", pumpward_core::timefmt::format(t));
        }
        let mut q_sql = sql;
        if f.before_seq.is_some() {
            q_sql.push_str(&format!(" AND seq < ${}", args.len() + 1));
        }
        q_sql.push_str(&format!(
            " ORDER BY seq DESC LIMIT {}",
            if f.limit <= 0 { 100 } else { f.limit.min(1000) }
        ));
        let mut q = sqlx::query(&q_sql);
        for a in &args {
            q = q.bind(a.clone());
        }
        if let Some(b) = f.before_seq {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter().map(record_from_row).collect()
    }

    /// Records with a sequence number above `after_seq`, oldest first, at
    /// most `limit` (detection follows the trail with this).
    pub async fn audit_after(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(limit.clamp(1, 100_000))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    /// The chain head as stored.
    pub async fn audit_head(&self) -> Result<ChainHead> {
        let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(ChainHead {
            seq: r.try_get("seq")?,
            hash: r.try_get("hash")?,
        })
    }

    /// Walks the whole chain in sequence order, in pages, and reports the
    /// first bad record if any. `each` sees every record that was read (for
    /// export and progress bars).
    pub async fn audit_walk(
        &self,
        mut each: impl FnMut(&AuditRecord) -> std::io::Result<()>,
    ) -> Result<VerifyReport> {
        // Read the head first: records appended while we walk are beyond it
        // and are not part of this verification.
        let head = self.audit_head().await?;
        let mut v = Verifier::default();
        let mut after = 0i64;
        let mut count = 0i64;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT 5000"
            ))
            .bind(after)
            .bind(head.seq)
            .fetch_all(self.pool())
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let rec = record_from_row(r)?;
                if let Err(e) = v.push(&rec) {
                    return Ok(VerifyReport {
                        records: count,
                        head,
                        error: Some(e),
                    });
                }
                each(&rec).map_err(|e| crate::StoreError::Invalid(format!("writing: {e}")))?;
                count += 1;
                after = rec.seq;
            }
        }
        let error = v.finish(Some(&head)).err();
        Ok(VerifyReport {
            records: count,
            head,
            error,
        })
    }

    /// Verifies the chain.
    pub async fn audit_verify(&self) -> Result<VerifyReport> {
        self.audit_walk(|_| Ok(())).await
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
