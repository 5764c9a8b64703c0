//! Flows evaluated per second against the SP 1800-8 starter policy, over a
//! realistic mix, beside a same-run baseline that only hashes each flow's
//! 5-tuple (the least any per-flow work costs).
//!
//! The mix: 100,000 flows of the fleet in `common/mod.rs` (5,000 pumps and
//! 20 pump servers; ~90 % allowed, ~10 % violations of every kind).
//!
//! Run: `cargo bench -p pumpward-net --bench evaluate -- --warm-up-time 1 --measurement-time 5`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pumpward_net::observed::ObservedConduits;
use pumpward_net::{starter_policy, Evaluator, Verdict};

mod common;
use common::{assets, flows};

const FLOWS: u32 = 100_000;

fn bench(c: &mut Criterion) {
    let policy = starter_policy();
    let ev = Evaluator::new(&policy, &assets()).unwrap();
    let flows = flows(FLOWS);
    let allowed = flows
        .iter()
        .filter(|f| matches!(ev.evaluate(f).verdict, Verdict::Allowed(_)))
        .count();
    eprintln!(
        "mix: {} flows, {allowed} allowed ({:.1} %)",
        flows.len(),
        100.0 * allowed as f64 / flows.len() as f64
    );

    let mut g = c.benchmark_group("network_policy");
    g.throughput(Throughput::Elements(flows.len() as u64));
    g.bench_function("baseline_hash_5tuple", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for f in &flows {
                let mut h = DefaultHasher::new();
                (
                    f.orig_addr,
                    f.resp_addr,
                    f.orig_port,
                    f.resp_port,
                    f.transport,
                )
                    .hash(&mut h);
                acc ^= h.finish();
            }
            black_box(acc)
        })
    });
    g.bench_function("evaluate", |b| {
        b.iter(|| {
            let mut violations = 0u32;
            for f in &flows {
                if let Verdict::Violation(_) = ev.evaluate(black_box(f)).verdict {
                    violations += 1;
                }
            }
            black_box(violations)
        })
    });
    g.bench_function("evaluate_and_observe", |b| {
        b.iter(|| {
            let mut obs = ObservedConduits::new();
            for f in &flows {
                let e = ev.evaluate(black_box(f));
                obs.record(f, &e);
            }
            black_box(obs)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
