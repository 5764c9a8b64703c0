//! Matching the inventory against the advisories (issue 5), on SQLite.
//!
//! The fleet: the labelled test set's 38 real pump models and versions
//! (`tests/data/labelled/fleet.csv`) repeated to 100,000 assets (asset ids
//! and serials made unique). The advisories: every CSAF document of
//! `pumpward-vuln/tests/data` (pump and other), the labelled set's two
//! extra ones and the KEV catalog, except ICSA-15-125-01B, the update that
//! the incremental case imports.
//!
//! - `rematch/full`: `match_vulnerabilities` over the whole fleet, every
//!   finding already raised (the run that follows any change).
//! - `rematch/after_import`: `rematch_after_import` of ICSA-15-125-01B,
//!   already applied (its scope computed, its assets matched again).
//! - `rematch/baseline_list_all_assets`: the same-run baseline, every asset
//!   read once through `list_assets` in pages of 500.
//!
//! One-shot figures (printed, not criterion's): the bulk import of the
//! 100,000 assets (same-run baseline), the first full match that raises
//! every finding, and the import of ICSA-15-125-01B followed by its
//! incremental re-match.
//!
//! `cargo bench -p pumpward-store --bench vuln_match -- --warm-up-time 1 --measurement-time 5`
//! (`PUMPWARD_BENCH_ASSETS` sets another fleet size.)

use criterion::{criterion_group, criterion_main, Criterion};
use pumpward_core::inventory::csv::{read_assets_csv, CsvLimits};
use pumpward_store::{Actor, AssetFilter, Store};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The labelled fleet repeated to `n` assets, as one asset CSV.
fn fleet_csv(n: usize) -> Vec<u8> {
    let text =
        std::fs::read_to_string(here().join("tests/data/labelled/fleet.csv")).expect("fleet.csv");
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let header = rdr.headers().expect("header").clone();
    let id_col = header
        .iter()
        .position(|h| h == "asset_id")
        .expect("asset_id");
    let sn_col = header
        .iter()
        .position(|h| h == "serial_number")
        .expect("serial_number");
    let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.expect("row")).collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).expect("write");
    for i in 0..n {
        let r = &rows[i % rows.len()];
        let copy = i / rows.len();
        let fields: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == id_col || c == sn_col {
                    format!("{v}-{copy:05}")
                } else {
                    v.to_owned()
                }
            })
            .collect();
        w.write_record(&fields).expect("write");
    }
    w.into_inner().expect("csv")
}

fn documents() -> Vec<(String, Vec<u8>)> {
    let vuln = here().join("../pumpward-vuln/tests/data");
    let mut paths = Vec::new();
    for dir in ["csaf", "csaf-other", "kev"] {
        let mut names: Vec<_> = std::fs::read_dir(vuln.join(dir))
            .expect("data dir")
            .map(|e| e.expect("entry").path())
            .collect();
        names.sort();
        paths.extend(names);
    }
    for n in ["icsa-20-168-01.json", "icsa-22-067-01.json"] {
        paths.push(here().join("tests/data/labelled").join(n));
    }
    paths
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).expect("read"),
            )
        })
        .collect()
}

const UPDATE: &str = "icsa-15-125-01b.json";

/// The store with the fleet, the advisories and every finding raised;
/// returns the held-back update's bytes.
async fn setup(dir: &Path, n: usize) -> (Store, Vec<u8>) {
    let store = Store::open_sqlite(dir).await.expect("open SQLite");
    let parsed = read_assets_csv(&fleet_csv(n)[..], &CsvLimits::default()).expect("fleet");
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let actor = Actor::cli();
    let t = Instant::now();
    store
        .import_assets(&parsed.rows, false, &actor)
        .await
        .expect("import");
    eprintln!(
        "baseline: import of {n} assets took {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let mut update = Vec::new();
    for (name, bytes) in documents() {
        if name == UPDATE {
            update = bytes;
            continue;
        }
        let r = store
            .import_vuln_document(&bytes, &actor)
            .await
            .expect("import document");
        assert!(!r.is_refused(), "{name}: {r:?}");
    }
    let t = Instant::now();
    let r = store.match_vulnerabilities(&actor).await.expect("match");
    eprintln!(
        "first full match of {n} assets: {:.2} s ({} affected, {} review, {} raised)",
        t.elapsed().as_secs_f64(),
        r.affected_open,
        r.review_open,
        r.raised
    );
    (store, update)
}

fn rematch(c: &mut Criterion) {
    let n: usize = std::env::var("PUMPWARD_BENCH_ASSETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, update) = rt.block_on(setup(dir.path(), n));
    let actor = Actor::cli();

    let t = Instant::now();
    let (id, r) = rt.block_on(async {
        let imported = store
            .import_vuln_document(&update, &actor)
            .await
            .expect("import update");
        let id = imported.advisory_id.expect("stored");
        let r = store
            .rematch_after_import(id, &actor)
            .await
            .expect("rematch");
        (id, r)
    });
    eprintln!(
        "import of ICSA-15-125-01B + incremental re-match: {:.1} ms ({} assets in scope, {} raised, {} resolved)",
        t.elapsed().as_secs_f64() * 1e3,
        r.assets,
        r.raised,
        r.resolved
    );
    // The incremental run left what a full one would: nothing to change.
    let full = rt
        .block_on(store.match_vulnerabilities(&actor))
        .expect("match");
    assert_eq!((full.raised, full.resolved), (0, 0), "{full:?}");

    let mut g = c.benchmark_group("rematch");
    g.sample_size(10);
    // Same-run baseline: one read of the whole fleet through the store's
    // listing (pages of 500), the least any pass over every asset costs on
    // this machine at this moment.
    g.bench_function("baseline_list_all_assets", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut after = None;
                let mut n = 0;
                loop {
                    let page = store
                        .list_assets(&AssetFilter {
                            after,
                            limit: 500,
                            ..Default::default()
                        })
                        .await
                        .expect("list");
                    n += page.items.len();
                    match page.next_cursor {
                        Some(c) => after = Some(c),
                        None => break n,
                    }
                }
            })
        })
    });
    g.bench_function("full", |b| {
        b.iter(|| {
            rt.block_on(store.match_vulnerabilities(&actor))
                .expect("match")
        })
    });
    g.bench_function("after_import", |b| {
        b.iter(|| {
            rt.block_on(store.rematch_after_import(id, &actor))
                .expect("rematch")
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = rematch
}
criterion_main!(benches);
