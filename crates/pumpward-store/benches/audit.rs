//! Durable audit appends per second on SQLite: `Store::audit` (one record,
//! one commit) and `Store::audit_many` (group commit of 10/100/1000 records),
//! from one task and from 8 concurrent tasks, each beside a baseline measured
//! in the same run: a plain `INSERT` of the same row into a table shaped like
//! `audit_log` (same columns and indexes), in the same kind of `BEGIN
//! IMMEDIATE` transaction on the same pool, without the chain (no head row,
//! no SHA-256).
//!
//! ```text
//! cargo bench -p pumpward-store --bench audit            # full run
//! cargo bench -p pumpward-store --bench audit -- --test  # a quick smoke run
//! ```
//!
//! Method, figures and how to read them: `docs/PERFORMANCE.md`.

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use pumpward_core::audit::{AuditEntry, Outcome};
use pumpward_store::Store;
use sqlx::AnyPool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCHES: &[usize] = &[1, 10, 100, 1000];
const TASKS: &[usize] = &[1, 8];
const SAMPLES: usize = 10;
/// Records per second the issue asks for.
const TARGET: f64 = 10_000.0;

/// `cargo bench` passes `--bench`; `cargo bench -- --test`, `cargo test
/// --benches` and `--list` are smoke runs.
fn full_run() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    has("--bench") && !has("--test") && !has("--list")
}

/// A typical security-relevant record (~330 bytes): who moved which pump
/// where, from which address, with a small JSON detail.
fn entry(i: usize) -> AuditEntry {
    AuditEntry::new("user:biomed.alice", "asset.transition", Outcome::Success)
        .object(format!("asset:PUMP-{:06}", i % 100_000))
        .reason("Scheduled preventive maintenance, work order WO-2025-0412")
        .source(Some("10.20.30.40".into()))
        .details(&serde_json::json!({ "from": "in_service", "to": "maintenance" }))
}

/// The audit table's shape without the chain: same columns, same indexes.
const BASELINE_DDL: &[&str] = &[
    "CREATE TABLE bench_audit_baseline (seq BIGINT PRIMARY KEY NOT NULL, at TEXT NOT NULL, \
     actor TEXT NOT NULL, action TEXT NOT NULL, object TEXT, outcome TEXT NOT NULL, reason TEXT, \
     source TEXT, details TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE INDEX bench_audit_baseline_actor ON bench_audit_baseline (actor, seq)",
    "CREATE INDEX bench_audit_baseline_action ON bench_audit_baseline (action, seq)",
    "CREATE INDEX bench_audit_baseline_object ON bench_audit_baseline (object, seq)",
];

/// A 64-hex-digit stand-in for a hash: same size, never computed.
const FAKE_HASH: &str = "5f3c1e9a0b7d2c4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";

/// Appends `entries` to the baseline table in one `BEGIN IMMEDIATE`
/// transaction: the store's transaction shape minus the chain.
async fn baseline_append(pool: &AnyPool, seq: &AtomicI64, entries: Vec<AuditEntry>) {
    let at = pumpward_core::timefmt::format(time::OffsetDateTime::now_utc());
    let first = seq.fetch_add(entries.len() as i64, Ordering::Relaxed);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    for (i, e) in entries.into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO bench_audit_baseline (seq, at, actor, action, object, outcome, reason, \
             source, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(first + i as i64)
        .bind(at.clone())
        .bind(e.actor)
        .bind(e.action)
        .bind(e.object)
        .bind(e.outcome.as_str())
        .bind(e.reason)
        .bind(e.source)
        .bind(e.details)
        .bind(FAKE_HASH)
        .bind(FAKE_HASH)
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Chain,
    Baseline,
}

/// One iteration: each of `tasks` tasks appends one batch of `batch` records.
async fn one_round(
    store: &Store,
    seq: &Arc<AtomicI64>,
    kind: Kind,
    batch: usize,
    tasks: usize,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (store, seq) = (store.clone(), seq.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..iters {
                let entries: Vec<AuditEntry> = (0..batch).map(entry).collect();
                match (kind, batch) {
                    (Kind::Chain, 1) => {
                        let e = entries.into_iter().next().expect("one entry");
                        store.audit(e).await.expect("audit");
                    }
                    (Kind::Chain, _) => {
                        store.audit_many(entries).await.expect("audit_many");
                    }
                    (Kind::Baseline, _) => baseline_append(store.raw_pool(), &seq, entries).await,
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("append task");
    }
    start.elapsed()
}

fn main() {
    let full = full_run();
    let mut c = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = rt.block_on(async {
        let store = Store::open_sqlite(dir.path()).await.expect("open SQLite");
        for ddl in BASELINE_DDL {
            sqlx::query(ddl)
                .execute(store.raw_pool())
                .await
                .expect("baseline table");
        }
        store
    });
    let seq = Arc::new(AtomicI64::new(1));

    // records/s of each measured sample, by (batch, tasks, kind).
    let mut rates: BTreeMap<(usize, usize, Kind), Vec<f64>> = BTreeMap::new();
    let mut g = c.benchmark_group("audit_sqlite");
    g.sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(if full { 700 } else { 1 }))
        .measurement_time(Duration::from_secs(if full { 3 } else { 1 }));
    for &batch in BATCHES {
        for &tasks in TASKS {
            g.throughput(Throughput::Elements((batch * tasks) as u64));
            // Chain and baseline side by side, so that a noisy minute hits both.
            for (kind, name) in [(Kind::Chain, "chain"), (Kind::Baseline, "raw_insert")] {
                let param = format!("batch{batch}_tasks{tasks}");
                let r = rates.entry((batch, tasks, kind)).or_default();
                g.bench_function(BenchmarkId::new(name, param), |b| {
                    b.iter_custom(|iters| {
                        let e = rt.block_on(one_round(&store, &seq, kind, batch, tasks, iters));
                        r.push((batch * tasks) as f64 * iters as f64 / e.as_secs_f64());
                        e
                    })
                });
            }
        }
    }
    g.finish();

    // The chain must still verify after concurrent appends.
    let report = rt.block_on(store.audit_verify()).expect("verify");
    assert!(report.error.is_none(), "chain broken: {:?}", report.error);
    c.final_summary();

    if !full {
        return;
    }
    println!("\n== summary ==");
    println!(
        "audit appends, SQLite WAL synchronous=FULL; records/s, median of the last {SAMPLES} samples; \
         chain verified: {} records; target {TARGET:.0}/s",
        report.records
    );
    println!(
        "  {:>6} {:>6} {:>12} {:>12} {:>12} {:>10} {:>7}",
        "batch", "tasks", "chain rec/s", "raw rec/s", "chain/raw", "commits/s", "target"
    );
    let med = |v: &[f64]| {
        let mut s = v[v.len().saturating_sub(SAMPLES)..].to_vec();
        s.sort_by(f64::total_cmp);
        s[(s.len() - 1) / 2]
    };
    for &batch in BATCHES {
        for &tasks in TASKS {
            let chain = med(&rates[&(batch, tasks, Kind::Chain)]);
            let raw = med(&rates[&(batch, tasks, Kind::Baseline)]);
            println!(
                "  {:>6} {:>6} {:>12.0} {:>12.0} {:>12.2} {:>10.0} {:>7}",
                batch,
                tasks,
                chain,
                raw,
                chain / raw,
                chain / batch as f64,
                if chain >= TARGET { "pass" } else { "FAIL" }
            );
        }
    }
    drop(store);
    drop(dir);
}
