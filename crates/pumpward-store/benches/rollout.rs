//! The server's share of rolling a drug library out to a 10,000-pump fleet,
//! on SQLite: create the rollout (every pump's row), announce it in the
//! driver's ticks of 5,000 (due query + marking), apply the 10,000
//! `library_installed` reports as the gateway does (one call per event
//! batch; here 100 reports per call), and read the compliance view, which
//! must then show 100 %. The pump side (fetch, verify, install) runs on the
//! pumps in parallel and is measured by the `druglib` bench (envelope
//! verification) and the loadtest (handshakes); see docs/PERFORMANCE.md.
//!
//! `cargo bench -p pumpward-store --bench rollout`

use criterion::{criterion_group, criterion_main, Criterion};
use pumpward_core::inventory::csv::ImportRow;
use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_store::{Actor, LibraryReport, NewLibraryDraft, NewRollout, SignedLibrary, Store};
use std::time::{Duration, Instant};

const PUMPS: usize = 10_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

const AREAS: [&str; 8] = [
    "Adult ICU",
    "Med-Surg",
    "Oncology",
    "Pediatrics",
    "NICU",
    "Emergency Department",
    "Anesthesia / OR",
    "Labor & Delivery",
];

/// A store with 10,000 in-service pumps and one published library.
async fn setup(dir: &std::path::Path) -> (Store, String) {
    let store = Store::open_sqlite(dir).await.expect("open SQLite");
    let rows: Vec<ImportRow> = (0..PUMPS)
        .map(|i| ImportRow {
            line: i as u64 + 2,
            spec: AssetSpec::validate(&AssetDraft {
                asset_id: format!("LT-{i:05}"),
                manufacturer: "Baxter".into(),
                model: "Sigma Spectrum".into(),
                serial_number: format!("SN-{i:05}"),
                firmware_version: "8.00.01".into(),
                care_area: Some(AREAS[i % AREAS.len()].into()),
                ..Default::default()
            })
            .expect("valid asset"),
            lifecycle_state: Some(LifecycleState::InService),
        })
        .collect();
    let actor = Actor::cli();
    // Same-run baseline: the store's bulk import of the same 10,000 pumps.
    let t = Instant::now();
    store
        .import_assets(&rows, false, &actor)
        .await
        .expect("import");
    eprintln!(
        "baseline: import of {PUMPS} pump assets took {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let lib = pumpward_druglib::sample_library();
    let content = String::from_utf8(pumpward_druglib::json::to_canonical_json(&lib)).unwrap();
    let (ann, bob) = (Actor::user("ann", None), Actor::user("bob", None));
    let d = store
        .create_library_draft(
            &NewLibraryDraft {
                library_id: lib.id.clone(),
                name: lib.name.clone(),
                content,
            },
            "ann",
            None,
            &ann,
        )
        .await
        .unwrap();
    store
        .submit_library_revision(d.id, "ann", &ann)
        .await
        .unwrap();
    store
        .approve_library_revision(d.id, "bob", &bob)
        .await
        .unwrap();
    let key = pumpward_druglib::fuzzing::new_test_signing_key();
    store
        .publish_library_revision(
            d.id,
            "bob",
            |v, c| {
                let mut l = pumpward_druglib::json::parse_library_json(c.as_bytes()).unwrap();
                l.version = v as u32;
                let envelope =
                    pumpward_druglib::sign_library(&l, &key, b"bench", "bob", 1).unwrap();
                Ok(SignedLibrary {
                    content: String::from_utf8(pumpward_druglib::json::to_canonical_json(&l))
                        .unwrap(),
                    envelope,
                    key_id: "62656e6368".into(),
                })
            },
            &bob,
        )
        .await
        .unwrap();
    (store, lib.id)
}

/// One whole rollout: create, announce, apply every install, check 100 %.
async fn rollout(store: &Store, library: &str) -> Duration {
    let t0 = Instant::now();
    let actor = Actor::user("bob", None);
    let r = store
        .create_library_rollout(
            &NewRollout {
                library_id: library.into(),
                version: 1,
                pilot_care_area: None,
                pilot_percent: 0,
            },
            &actor,
        )
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    loop {
        let due = store
            .due_library_announcements(now, time::Duration::minutes(10), None, 5000)
            .await
            .unwrap();
        if due.is_empty() {
            break;
        }
        let ids: Vec<String> = due.into_iter().map(|d| d.asset_id).collect();
        store.mark_library_announced(r.id, &ids, now).await.unwrap();
    }
    let reports: Vec<(String, LibraryReport)> = (0..PUMPS)
        .map(|i| {
            (
                format!("LT-{i:05}"),
                LibraryReport::Installed {
                    version: "1".into(),
                    digest: r.envelope_sha256.clone(),
                },
            )
        })
        .collect();
    for chunk in reports.chunks(100) {
        store.record_library_reports(chunk, now).await.unwrap();
    }
    let c = store.library_compliance(library, now).await.unwrap();
    assert_eq!((c.pumps, c.current), (PUMPS as i64, PUMPS as i64));
    assert_eq!(
        store.library_rollout(r.id).await.unwrap().counts.installed,
        PUMPS as i64
    );
    t0.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, library) = rt.block_on(setup(dir.path()));
    let mut g = c.benchmark_group("library_rollout");
    g.sample_size(10);
    g.bench_function("sqlite_10000_pumps_store_path", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += rt.block_on(rollout(&store, &library));
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
