//! Durable audit appends per second on SQLite: `Store::audit` (one record,
//! one commit) and `Store::audit_many` (group commit of 10/100/1000 records),
//! from one task and from 8 concurrent tasks.
//!
//! Beside each, in the same run, a baseline without the chain: a plain
//! `INSERT` of the same row into a table shaped like `audit_log` (same
//! columns, same indexes), one statement per row, in the same kind of `BEGIN
//! IMMEDIATE` transaction on the same pool, with no head row and no SHA-256.
//! Two more variants of that baseline:
//! - `raw_multirow`: the batch as one multi-row `INSERT … VALUES (…), (…)`;
//! - `raw_serialized`: 8 tasks whose transactions queue on an async mutex
//!   in the process (as the store's own write transactions do) instead of in
//!   SQLite's busy handler (where `raw_insert`'s 8 tasks queue).
//!
//! The chain/baseline ratios come from a paired run after criterion's: the
//! baseline is `raw_insert` for one task and `raw_serialized` for 8 tasks, so
//! that both sides queue the same way.
//!
//! ```text
//! cargo bench -p pumpward-store --bench audit            # full run (~3 min)
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
/// Chain/baseline pairs of the paired run that gives the ratios.
const PAIRS: usize = 8;
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

const BASELINE_COLUMNS: &str = "INSERT INTO bench_audit_baseline (seq, at, actor, action, object, \
     outcome, reason, source, details, prev_hash, hash) VALUES ";

/// A 64-hex-digit stand-in for a hash: same size, never computed.
const FAKE_HASH: &str = "5f3c1e9a0b7d2c4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_row<'q>(q: AnyQuery<'q>, seq: i64, at: &str, e: AuditEntry) -> AnyQuery<'q> {
    q.bind(seq)
        .bind(at.to_owned())
        .bind(e.actor)
        .bind(e.action)
        .bind(e.object)
        .bind(e.outcome.as_str())
        .bind(e.reason)
        .bind(e.source)
        .bind(e.details)
        .bind(FAKE_HASH)
        .bind(FAKE_HASH)
}

/// `($k, …, $k+10)` for row `r` of a multi-row insert.
fn placeholders(r: usize) -> String {
    let p: Vec<String> = (1..=11).map(|c| format!("${}", r * 11 + c)).collect();
    format!("({})", p.join(", "))
}

/// Appends `entries` to the baseline table in one `BEGIN IMMEDIATE`
/// transaction: the store's transaction shape minus the chain. With
/// `multirow`, the whole batch is one statement.
async fn baseline_append(
    pool: &AnyPool,
    seq: &AtomicI64,
    entries: Vec<AuditEntry>,
    multirow: bool,
) {
    let at = pumpward_core::timefmt::format(time::OffsetDateTime::now_utc());
    let first = seq.fetch_add(entries.len() as i64, Ordering::Relaxed);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    if multirow {
        let values: Vec<String> = (0..entries.len()).map(placeholders).collect();
        let sql = format!("{BASELINE_COLUMNS}{}", values.join(", "));
        let mut q = sqlx::query(&sql);
        for (i, e) in entries.into_iter().enumerate() {
            q = bind_row(q, first + i as i64, &at, e);
        }
        q.execute(&mut *tx).await.expect("insert");
    } else {
        let sql = format!("{BASELINE_COLUMNS}{}", placeholders(0));
        for (i, e) in entries.into_iter().enumerate() {
            bind_row(sqlx::query(&sql), first + i as i64, &at, e)
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
    }
    tx.commit().await.expect("commit");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `Store::audit` / `Store::audit_many`.
    Chain,
    /// One `INSERT` per row, no chain.
    Raw,
    /// One multi-row `INSERT` per batch, no chain.
    RawMultirow,
    /// As `Raw`, with the transactions queued on an in-process mutex.
    RawSerialized,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Chain => "chain",
            Kind::Raw => "raw_insert",
            Kind::RawMultirow => "raw_multirow",
            Kind::RawSerialized => "raw_serialized",
        }
    }
}

/// What the tasks share.
#[derive(Clone)]
struct Shared {
    store: Store,
    seq: Arc<AtomicI64>,
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// `iters` rounds: in each, every one of `tasks` tasks appends one batch of
/// `batch` records. Returns the wall time.
async fn run(s: &Shared, kind: Kind, batch: usize, tasks: usize, iters: u64) -> Duration {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..iters {
                let entries: Vec<AuditEntry> = (0..batch).map(entry).collect();
                let pool = s.store.raw_pool();
                match kind {
                    Kind::Chain if batch == 1 => {
                        let e = entries.into_iter().next().expect("one entry");
                        s.store.audit(e).await.expect("audit");
                    }
                    Kind::Chain => {
                        s.store.audit_many(entries).await.expect("audit_many");
                    }
                    Kind::Raw => baseline_append(pool, &s.seq, entries, false).await,
                    Kind::RawMultirow => baseline_append(pool, &s.seq, entries, true).await,
                    Kind::RawSerialized => {
                        let _turn = s.writer.lock().await;
                        baseline_append(pool, &s.seq, entries, false).await;
                    }
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("append task");
    }
    start.elapsed()
}

/// The benchmarks: (batch, tasks, kind).
fn cases() -> Vec<(usize, usize, Kind)> {
    let mut v = Vec::new();
    for &batch in BATCHES {
        for &tasks in TASKS {
            v.push((batch, tasks, Kind::Chain));
            v.push((batch, tasks, Kind::Raw));
            if tasks == 1 && batch > 1 {
                v.push((batch, tasks, Kind::RawMultirow));
            }
            if tasks > 1 {
                v.push((batch, tasks, Kind::RawSerialized));
            }
        }
    }
    v
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
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
    let shared = Shared {
        store: store.clone(),
        seq: Arc::new(AtomicI64::new(1)),
        writer: Arc::new(tokio::sync::Mutex::new(())),
    };

    // records/s of each call criterion made, by (batch, tasks, kind).
    let mut rates: BTreeMap<(usize, usize, Kind), Vec<f64>> = BTreeMap::new();
    let mut g = c.benchmark_group("audit_sqlite");
    g.sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(if full { 500 } else { 1 }))
        .measurement_time(Duration::from_millis(if full { 2500 } else { 1 }));
    for (batch, tasks, kind) in cases() {
        let per_iter = batch * tasks;
        g.throughput(Throughput::Elements(per_iter as u64));
        let r = rates.entry((batch, tasks, kind)).or_default();
        let id = BenchmarkId::new(kind.name(), format!("batch{batch}_tasks{tasks}"));
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let e = rt.block_on(run(&shared, kind, batch, tasks, iters));
                r.push(per_iter as f64 * iters as f64 / e.as_secs_f64());
                e
            })
        });
    }
    g.finish();

    // The ratios: chain and baseline alternate in short rounds (~0.25 s
    // each, order swapped every pair), so that a noisy second on this shared
    // machine hits both sides of a pair alike.
    let mut ratios: BTreeMap<(usize, usize), Vec<f64>> = BTreeMap::new();
    if full {
        for &batch in BATCHES {
            for &tasks in TASKS {
                let Some(rate) = rates.get(&(batch, tasks, Kind::Chain)).map(|v| median(v)) else {
                    continue;
                };
                let iters = ((rate * 0.25) / (batch * tasks) as f64).ceil().max(1.0) as u64;
                let per = |e: Duration| (batch * tasks) as f64 * iters as f64 / e.as_secs_f64();
                let base = if tasks == 1 {
                    Kind::Raw
                } else {
                    Kind::RawSerialized
                };
                let mut v = Vec::with_capacity(PAIRS);
                for p in 0..PAIRS {
                    let (chain, raw) = rt.block_on(async {
                        if p % 2 == 0 {
                            let a = run(&shared, Kind::Chain, batch, tasks, iters).await;
                            (a, run(&shared, base, batch, tasks, iters).await)
                        } else {
                            let b = run(&shared, base, batch, tasks, iters).await;
                            (run(&shared, Kind::Chain, batch, tasks, iters).await, b)
                        }
                    });
                    v.push(per(chain) / per(raw));
                }
                ratios.insert((batch, tasks), v);
            }
        }
    }

    // The chain must still verify after all those concurrent appends.
    let report = rt.block_on(store.audit_verify()).expect("verify");
    assert!(report.error.is_none(), "chain broken: {:?}", report.error);
    c.final_summary();
    if !full {
        return;
    }

    println!("\n== summary ==");
    println!(
        "audit appends, SQLite (WAL, synchronous=FULL), records/s: median of criterion's {SAMPLES} samples; \
         chain/base: median of {PAIRS} alternating pairs against raw (1 task) or serialized (8 tasks); \
         chain verified ({} records); target {TARGET:.0}/s",
        report.records
    );
    println!(
        "  {:>5} {:>5} {:>11} {:>11} {:>10} {:>11} {:>11} {:>10} {:>6}",
        "batch",
        "tasks",
        "chain",
        "raw",
        "chain/base",
        "multirow",
        "serialized",
        "calls/s",
        "target"
    );
    let last = |k: (usize, usize, Kind)| {
        rates
            .get(&k)
            .map(|v| median(&v[v.len().saturating_sub(SAMPLES)..]))
    };
    let show = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"));
    for &batch in BATCHES {
        for &tasks in TASKS {
            let chain = last((batch, tasks, Kind::Chain)).unwrap_or(f64::NAN);
            println!(
                "  {:>5} {:>5} {:>11.0} {:>11} {:>10.2} {:>11} {:>11} {:>10.0} {:>6}",
                batch,
                tasks,
                chain,
                show(last((batch, tasks, Kind::Raw))),
                ratios.get(&(batch, tasks)).map_or(f64::NAN, |v| median(v)),
                show(last((batch, tasks, Kind::RawMultirow))),
                show(last((batch, tasks, Kind::RawSerialized))),
                chain / batch as f64,
                if chain >= TARGET { "pass" } else { "FAIL" }
            );
        }
    }
    drop(shared);
    rt.block_on(store.close());
    drop(dir);
}
