//! Inventory benchmarks: importing a 100,000-asset CSV file, and listing
//! filtered pages out of 100,000 assets (criterion medians plus a latency
//! load run for p50/p95/p99/max).
//!
//! ```text
//! cargo bench -p pumpward-store --bench inventory            # full run (~100k rows)
//! cargo bench -p pumpward-store --bench inventory -- --test  # a quick smoke run
//! ```
//!
//! Method, figures and how to read them: `docs/PERFORMANCE.md`.
//!
//! Knobs (environment):
//! - `PUMPWARD_BENCH_ROWS`: assets in the generated file (default 100,000;
//!   500 when not benchmarking, e.g. under `cargo test --benches`).
//! - `PUMPWARD_BENCH_LOAD_N`: queries per load-run case (default 2,000).
//! - `PUMPWARD_TEST_DATABASE_URL`: also import once into a fresh PostgreSQL
//!   database (created, then dropped again).
//! - `PUMPWARD_BENCH_PG_ROWS`: import only the first rows of the file on
//!   PostgreSQL (default: all of them).
//! - `TMPDIR`: where the fresh SQLite stores are created.

use criterion::{Criterion, SamplingMode, Throughput};
use pumpward_core::inventory::csv::{read_assets_csv, write_assets_csv, CsvLimits, ExportRow};
use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState, SoftwareField};
use pumpward_store::{Actor, AssetFilter, Store};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Run settings

/// What this run does: a full benchmark under `cargo bench`, or a quick smoke
/// run (`cargo bench -- --test`, `cargo test --benches`, `--list`).
struct Settings {
    full: bool,
    rows: usize,
    load_n: usize,
    /// Criterion's positional filter, if any (matched as a substring here).
    filter: Option<String>,
}

impl Settings {
    fn from_args() -> Settings {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let has = |f: &str| args.iter().any(|a| a == f);
        let full = has("--bench") && !has("--test") && !has("--list");
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
        Settings {
            full,
            rows: env("PUMPWARD_BENCH_ROWS").unwrap_or(if full { 100_000 } else { 500 }),
            load_n: env("PUMPWARD_BENCH_LOAD_N").unwrap_or(if full { 2_000 } else { 16 }),
            filter: positional(&args),
        }
    }

    /// pass/FAIL against a target, which only means something for a full
    /// benchmark run over 100,000 assets.
    fn verdict(&self, met: bool) -> &'static str {
        match (self.full && self.rows == 100_000, met) {
            (false, _) => "(smoke run: no verdict)",
            (true, true) => "pass",
            (true, false) => "FAIL",
        }
    }

    /// Whether the filter mentions `part` (no filter: everything runs).
    fn mentions(&self, part: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| f.contains(part))
    }

    /// The import benchmarks run unless the filter names only listing ones.
    fn wants_import(&self) -> bool {
        self.mentions("import") || !self.mentions("list")
    }

    /// The listing benchmarks run unless the filter names only import ones.
    fn wants_list(&self) -> bool {
        self.mentions("list") || !self.mentions("import")
    }

    /// The load run runs with no filter, or with one that names it.
    fn wants_load_run(&self) -> bool {
        self.mentions("list_load")
    }
}

/// The first positional argument, skipping the values of criterion's options.
fn positional(args: &[String]) -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "-c",
        "--color",
        "--colour",
        "-s",
        "--save-baseline",
        "-b",
        "--baseline",
        "--baseline-lenient",
        "--format",
        "--profile-time",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--output-format",
    ];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            it.next();
        } else if !a.starts_with('-') {
            return Some(a.clone());
        }
    }
    None
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------------------
// A realistic asset file

/// SplitMix64: deterministic sample data, the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let mut r = self.below(items.iter().map(|&(_, w)| w).sum());
        for &(v, w) in items {
            if r < w {
                return v;
            }
            r -= w;
        }
        items[items.len() - 1].0
    }
}

/// (manufacturer, model, device type, firmware versions, software, weight)
type PumpModel = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
    &'static str,
    u64,
);

const PUMP_MODELS: &[PumpModel] = &[
    (
        "BD",
        "Alaris 8015 PC Unit",
        None,
        &["9.19", "9.33.1", "12.1.2", "12.1.3"],
        "Laird WB40N=4.4.97;Alaris PCU comms=1.2",
        30,
    ),
    (
        "Baxter",
        "Sigma Spectrum 35700BAX2",
        Some("lvp"),
        &["8.0", "8.01"],
        "Wireless Battery Module=v20D29",
        10,
    ),
    (
        "Baxter",
        "Spectrum IQ 35700BAX3",
        Some("lvp"),
        &["9.0", "9.02"],
        "Wireless Battery Module=v22D28",
        10,
    ),
    (
        "B. Braun",
        "Infusomat Space",
        Some("lvp"),
        &["586U"],
        "Battery Pack SP with Wi-Fi=054U000093",
        12,
    ),
    (
        "B. Braun",
        "Perfusor Space",
        Some("syringe"),
        &["588U"],
        "Battery Pack SP with Wi-Fi=054U000092",
        8,
    ),
    (
        "ICU Medical",
        "Plum 360",
        Some("lvp"),
        &["15.11", "15.20"],
        "",
        12,
    ),
    (
        "ICU Medical",
        "LifeCare PCA",
        Some("pca"),
        &["7.0"],
        "Communication Engine=1.0",
        3,
    ),
    (
        "Smiths Medical",
        "Medfusion 4000",
        Some("syringe"),
        &["1.6.1", "1.7.0"],
        "",
        5,
    ),
    (
        "Smiths Medical",
        "CADD-Solis",
        Some("pca"),
        &["5.2", "5.4"],
        "",
        3,
    ),
    (
        "Fresenius Kabi",
        "Agilia VP",
        Some("lvp"),
        &["4.1"],
        "Agilia Connect WiFi module=D25",
        4,
    ),
    (
        "Fresenius Kabi",
        "Agilia SP",
        Some("syringe"),
        &["4.1"],
        "Agilia Connect WiFi module=D23",
        3,
    ),
];

const CARE_AREAS: &[(&str, u64)] = &[
    ("Adult ICU", 14),
    ("Med-Surg", 30),
    ("Oncology", 12),
    ("Pediatrics", 8),
    ("NICU", 6),
    ("Emergency Department", 12),
    ("Anesthesia / OR", 12),
    ("Labor & Delivery", 6),
];

const STATES: &[(LifecycleState, u64)] = &[
    (LifecycleState::Procured, 2),
    (LifecycleState::Received, 3),
    (LifecycleState::Provisioned, 4),
    (LifecycleState::InService, 78),
    (LifecycleState::Maintenance, 6),
    (LifecycleState::Quarantined, 1),
    (LifecycleState::Decommissioned, 5),
    (LifecycleState::Disposed, 1),
];

const NOTES: &[&str] = &[
    "Door latch replaced, see work order WO-{n}.",
    "Battery swapped at PM; \"low battery\" alarm no longer reproducible.",
    "Loaner from vendor, return by end of quarter.",
    "Cracked housing reported by nursing, checked by biomed: cosmetic only.",
    "Wi-Fi module re-seated after drop test failure, passed PM afterwards.",
];

/// The digits of a serial number: unique for each `i` below 10^8, and not in
/// tag order (serials are not assigned in the order tags are).
fn serial_digits(i: u64) -> u64 {
    (i * 7_919 + 12_345_678) % 100_000_000
}

/// One asset of the sample fleet, and its lifecycle state.
fn sample_asset(i: u64, rng: &mut Rng) -> (AssetSpec, LifecycleState) {
    let area_i = {
        let idx: Vec<(usize, u64)> = CARE_AREAS.iter().map(|a| a.1).enumerate().collect();
        rng.weighted(&idx)
    };
    let area = CARE_AREAS[area_i].0;
    let state = rng.weighted(STATES);
    // 97 % pumps, 2 % docking-station gateways, 1 % biomed workstations: the
    // tag prefixes make the file order differ from the id order.
    let roll = rng.below(100);
    let serial = serial_digits(i);
    // Locally administered unicast MACs, unique per `i` (a bijection of i).
    let scrambled = (i as u32).wrapping_mul(0x9E37_79B1) ^ 0x5A5A_0000;
    let s = scrambled.to_be_bytes();
    let mac = |oui: u8| {
        format!(
            "02:{oui:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            s[0], s[1], s[2], s[3]
        )
    };
    let ip = format!(
        "10.{}.{}.{}",
        16 + area_i * 16 + (i >> 16) as usize % 16,
        (i >> 8) & 255,
        i & 255
    );
    let building = ["A", "B", "C", "D"][area_i % 4];
    let location = format!(
        "{area}, Building {building}, Floor {}, Room {}",
        1 + area_i % 6,
        100 + rng.below(60)
    );
    let notes = (rng.below(100) < 30).then(|| {
        NOTES[rng.below(NOTES.len() as u64) as usize]
            .replace("{n}", &(100_000 + rng.below(900_000)).to_string())
    });
    let eos = ["2026-06-30", "2027-12-31", "2028-12-31", "2030-06-30"][rng.below(4) as usize];
    let phi = rng.weighted(&[("yes", 20), ("no", 50), ("unknown", 30)]);
    let cred = rng.weighted(&[
        ("default_unchanged", 25),
        ("changed", 70),
        ("hard_coded_known", 5),
    ]);
    let d = if roll < 97 {
        let (mfr, model, dtype, fws, sw, _) = PUMP_MODELS[rng.weighted(
            &PUMP_MODELS
                .iter()
                .enumerate()
                .map(|(k, m)| (k, m.5))
                .collect::<Vec<_>>(),
        )];
        AssetDraft {
            asset_id: format!("PUMP-{i:06}"),
            kind: Some("pump".into()),
            manufacturer: mfr.into(),
            model: model.into(),
            device_type: dtype.map(Into::into),
            serial_number: format!("{serial:08}"),
            udi: Some(format!("(01)0290000100{:02}(21){serial:08}", i % 97)),
            firmware_version: fws[rng.below(fws.len() as u64) as usize].into(),
            software: (!sw.is_empty()).then(|| SoftwareField::Text(sw.into())),
            cpe: None,
            mac_address: Some(mac(0x10 + (i % 7) as u8)),
            ip_address: Some(ip),
            hostname: Some(format!("pump-{i:06}.pumps.hospital.example")),
            location: Some(location),
            care_area: Some(area.into()),
            zone: Some("infusion-pump".into()),
            owner: Some("Clinical Engineering".into()),
            vendor_support_contact: Some(format!("{mfr} Technical Support")),
            end_of_support: Some(eos.into()),
            phi_stored: Some(phi.into()),
            credential_state: Some(cred.into()),
            notes,
        }
    } else if roll < 99 {
        AssetDraft {
            asset_id: format!("GW-{i:06}"),
            kind: Some("gateway".into()),
            manufacturer: "B. Braun".into(),
            model: "SpaceStation with SpaceCom 2".into(),
            serial_number: format!("SC{serial:08}"),
            firmware_version: "012U000093".into(),
            mac_address: Some(mac(0x20)),
            ip_address: Some(ip),
            hostname: Some(format!("gw-{i:06}.pumps.hospital.example")),
            location: Some(location),
            care_area: Some(area.into()),
            zone: Some("infusion-pump".into()),
            owner: Some("Clinical Engineering".into()),
            vendor_support_contact: Some("B. Braun Technical Support".into()),
            end_of_support: Some(eos.into()),
            phi_stored: Some(phi.into()),
            credential_state: Some(cred.into()),
            notes,
            ..AssetDraft::default()
        }
    } else {
        AssetDraft {
            asset_id: format!("WS-{i:06}"),
            kind: Some("workstation".into()),
            manufacturer: "Dell".into(),
            model: "OptiPlex 7090".into(),
            serial_number: format!("D{serial:08}"),
            firmware_version: "BIOS 1.21.0".into(),
            software: Some(SoftwareField::Text(
                "Windows 10 Enterprise LTSC=21H2;Alaris Systems Manager client=12.1.2".into(),
            )),
            mac_address: Some(mac(0x30)),
            ip_address: Some(ip),
            hostname: Some(format!("biomed-ws-{i:06}.hospital.example")),
            location: Some(location),
            care_area: Some(area.into()),
            zone: Some("biomed".into()),
            owner: Some("Clinical Engineering".into()),
            vendor_support_contact: Some("Dell Technical Support".into()),
            end_of_support: Some(eos.into()),
            phi_stored: Some(phi.into()),
            credential_state: Some(cred.into()),
            notes,
            ..AssetDraft::default()
        }
    };
    let spec = AssetSpec::validate(&d).unwrap_or_else(|e| panic!("sample asset {i}: {e}"));
    (spec, state)
}

/// Writes the sample fleet with the project's own CSV writer (so the file is
/// exactly what an export looks like) and returns the file's path.
fn write_sample_csv(dir: &Path, rows: usize) -> PathBuf {
    let mut rng = Rng(0x5075_6d70_7761_7264);
    let assets: Vec<_> = (0..rows as u64)
        .map(|i| sample_asset(i, &mut rng))
        .collect();
    let path = dir.join("assets.csv");
    let f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create the CSV file"));
    write_assets_csv(
        f,
        assets.iter().map(|(spec, state)| ExportRow {
            spec,
            lifecycle_state: *state,
        }),
    )
    .expect("write the CSV file");
    path
}

/// What `pumpward inventory import FILE` does before it opens the store.
fn parse_file(path: &Path) -> Vec<pumpward_core::inventory::csv::ImportRow> {
    let f = std::fs::File::open(path).expect("open the CSV file");
    let parsed = read_assets_csv(f, &CsvLimits::default()).expect("a usable CSV file");
    assert!(parsed.errors.is_empty(), "{:?}", &parsed.errors[..1]);
    parsed.rows
}

// ---------------------------------------------------------------------------
// Fresh stores (as tests/common does)

struct Fresh {
    store: Store,
    dir: Option<tempfile::TempDir>,
    /// (admin URL, database name) of a PostgreSQL database to drop afterwards.
    pg: Option<(String, String)>,
}

impl Fresh {
    async fn sqlite() -> Fresh {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open_sqlite(dir.path()).await.expect("open SQLite");
        Fresh {
            store,
            dir: Some(dir),
            pg: None,
        }
    }

    async fn postgres(url: &str) -> Fresh {
        let name = format!("pw_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(url)
            .await
            .expect("connect to PUMPWARD_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the benchmark database");
        admin.close().await.ok();
        let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
        let store = Store::open_postgres(&format!("{base}/{name}"))
            .await
            .expect("open PostgreSQL");
        Fresh {
            store,
            dir: None,
            pg: Some((url.to_owned(), name)),
        }
    }

    /// Closes the pool, then removes the directory or drops the database.
    async fn dispose(self) {
        self.store.close().await;
        if let Some((url, name)) = self.pg {
            // A closed pool's server processes may linger for a moment, and a
            // plain DROP would then fail: FORCE (PostgreSQL 13+) ends them.
            let dropped = match sqlx::PgConnection::connect(&url).await {
                Ok(mut admin) => {
                    let r = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                    admin.close().await.ok();
                    r.map(|_| ()).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = dropped {
                eprintln!("could not drop the benchmark database {name}: {e}");
            }
        }
        drop(self.dir);
    }
}

fn bench_actor() -> Actor {
    Actor {
        id: "cli:bench".into(),
        source: Some("cli".into()),
    }
}

/// The cost of one statement's round trip to the database, in microseconds:
/// the median of 5 runs of 2,000 `SELECT $1` inside one transaction. sqlx's
/// SQLite driver runs each connection on its own thread, so every statement
/// is a hand-off to that thread and back; this is the floor under any
/// statement-per-row loop, measured in the same run as the import.
async fn round_trip_us(store: &Store) -> f64 {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let mut tx = store.raw_pool().begin().await.expect("begin");
        let t = Instant::now();
        for i in 0..2_000i64 {
            sqlx::query("SELECT $1 AS x")
                .bind(i)
                .fetch_one(&mut *tx)
                .await
                .expect("select");
        }
        runs.push(t.elapsed().as_secs_f64() * 1e6 / 2_000.0);
        tx.rollback().await.expect("rollback");
    }
    median(&runs)
}

async fn rtt_on_fresh_store() -> f64 {
    let f = Fresh::sqlite().await;
    let us = round_trip_us(&f.store).await;
    f.dispose().await;
    us
}

/// Imports and checks that every row was created.
async fn import(store: &Store, rows: &[pumpward_core::inventory::csv::ImportRow]) {
    let sum = store
        .import_assets(rows, false, &bench_actor())
        .await
        .expect("import");
    assert!(sum.refused.is_empty(), "refused: {:?}", &sum.refused[..1]);
    assert_eq!(sum.created, rows.len());
}

// ---------------------------------------------------------------------------
// Statistics

fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile of unsorted values.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Lines of the end-of-run summary, printed after criterion's own output.
#[derive(Default)]
struct Summary(Vec<String>);

impl Summary {
    fn line(&mut self, s: String) {
        println!("{s}");
        self.0.push(s);
    }
}

// ---------------------------------------------------------------------------
// 1. CSV import

/// Per-sample timings of the whole import path, split in its two halves.
#[derive(Default)]
struct ImportTimes {
    parse: Vec<f64>,
    store: Vec<f64>,
    total: Vec<f64>,
}

fn bench_import(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    set: &Settings,
    csv: &Path,
    sum: &mut Summary,
) -> Option<Fresh> {
    let rows = set.rows as u64;
    let rtt_before = rt.block_on(rtt_on_fresh_store());
    let group = match set.rows {
        r if r % 1000 == 0 => format!("import_{}k", r / 1000),
        r => format!("import_{r}"),
    };
    let mut g = c.benchmark_group(group);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1))
        .throughput(Throughput::Elements(rows));

    // Parse alone: reading and validating the file (no store).
    let mut parse_only = Vec::new();
    g.bench_function("parse_csv", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                std::hint::black_box(parse_file(csv));
            }
            let e = t.elapsed();
            parse_only.push(e.as_secs_f64() / iters as f64);
            e
        })
    });

    // The baseline: parse the whole file, then import the rows into a fresh
    // store (opening it and running its migrations is not timed), one after
    // the other, as `pumpward inventory import` did before the streamed
    // import. The two halves are timed too.
    let mut whole = ImportTimes::default();
    let mut calls = 0;
    g.bench_function("baseline_parse_then_store", |b| {
        b.iter_custom(|iters| {
            calls += 1;
            if set.full && calls == 1 {
                // Criterion's warm-up call only sizes the samples: with flat
                // sampling and a 1 ms target, every sample is one import
                // whatever it measures. A token 2 ms ends the warm-up
                // without spending a whole 100k import on it.
                std::thread::sleep(Duration::from_millis(2));
                return Duration::from_millis(2);
            }
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(async {
                    let f = Fresh::sqlite().await;
                    let t0 = Instant::now();
                    let parsed = parse_file(csv);
                    let t1 = Instant::now();
                    import(&f.store, &parsed).await;
                    let t2 = Instant::now();
                    total += t2 - t0;
                    whole.parse.push((t1 - t0).as_secs_f64());
                    whole.store.push((t2 - t1).as_secs_f64());
                    f.dispose().await;
                });
            }
            total
        })
    });

    // The whole path a user runs now: `Store::import_assets_csv`, which
    // parses on a thread while the store writes. The last store is kept for
    // the listing benchmarks.
    let mut keep: Option<Fresh> = None;
    let mut calls = 0;
    g.bench_function("csv_to_store", |b| {
        b.iter_custom(|iters| {
            calls += 1;
            if set.full && calls == 1 {
                std::thread::sleep(Duration::from_millis(2));
                return Duration::from_millis(2);
            }
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                rt.block_on(async {
                    if let Some(old) = keep.take() {
                        old.dispose().await;
                    }
                    let f = Fresh::sqlite().await;
                    let t0 = Instant::now();
                    let file = std::fs::File::open(csv).expect("open the CSV file");
                    let done = f
                        .store
                        .import_assets_csv(file, CsvLimits::default(), false, &bench_actor())
                        .await
                        .expect("import");
                    let e = t0.elapsed();
                    assert!(done.committed && done.summary.created == set.rows);
                    total += e;
                    whole.total.push(e.as_secs_f64());
                    keep = Some(f);
                });
            }
            total
        })
    });
    g.finish();

    // Criterion's last `sample_size` calls are the measured samples; the
    // calls before them were warm-up.
    let last = |v: &[f64]| v[v.len().saturating_sub(10)..].to_vec();
    let n = set.rows;
    let rtt_after = rt.block_on(rtt_on_fresh_store());
    sum.line(format!(
        "statement round trip (SELECT $1 in a transaction, SQLite via sqlx Any; the baseline \
         of this run): {rtt_before:.1} us before the import samples, {rtt_after:.1} us after"
    ));
    if !parse_only.is_empty() {
        let p = last(&parse_only);
        sum.line(format!(
            "import {n} rows: parse alone (read_assets_csv), median of {} samples: {:.3} s",
            p.len(),
            median(&p)
        ));
    }
    if !whole.store.is_empty() {
        let s = last(&whole.store);
        let p = last(&whole.parse);
        sum.line(format!(
            "import {n} rows: baseline, parse then store (read_assets_csv + import_assets, SQLite), \
             median of {} samples: {:.2} s (parse {:.3} s + store {:.2} s)",
            s.len(),
            median(&p) + median(&s),
            median(&p),
            median(&s),
        ));
    }
    if !whole.total.is_empty() {
        let t = last(&whole.total);
        let base = last(&whole.parse)
            .iter()
            .zip(last(&whole.store))
            .map(|(p, s)| p + s)
            .collect::<Vec<_>>();
        sum.line(format!(
            "import {n} rows: whole path, streamed (import_assets_csv: file -> SQLite), median of {} \
             samples: {:.2} s (min {:.2} s, max {:.2} s) = {:.0} rows/s; {:.2}x the baseline's time; \
             target < 5 s: {}",
            t.len(),
            median(&t),
            percentile(&t, 0.0),
            percentile(&t, 100.0),
            n as f64 / median(&t),
            median(&t) / median(&base).max(f64::EPSILON),
            set.verdict(median(&t) < 5.0)
        ));
    }
    keep
}

/// One import on PostgreSQL, if a server is configured: the same file, or
/// its first `PUMPWARD_BENCH_PG_ROWS` rows (a statement-per-row import took
/// minutes for 100k rows there).
fn import_postgres(rt: &tokio::runtime::Runtime, set: &Settings, csv: &Path, sum: &mut Summary) {
    let Ok(url) = std::env::var("PUMPWARD_TEST_DATABASE_URL") else {
        sum.line("import PostgreSQL: skipped (PUMPWARD_TEST_DATABASE_URL is not set)".into());
        return;
    };
    let n = std::env::var("PUMPWARD_BENCH_PG_ROWS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(set.rows)
        .min(set.rows);
    rt.block_on(async {
        let f = Fresh::postgres(&url).await;
        let t0 = Instant::now();
        let mut parsed = parse_file(csv);
        parsed.truncate(n);
        let t1 = Instant::now();
        import(&f.store, &parsed).await;
        let t2 = Instant::now();
        f.dispose().await;
        sum.line(format!(
            "import {n} rows: store alone (import_assets, PostgreSQL), one run: {:.2} s = {:.0} rows/s \
             (parsing the whole file took {:.3} s)",
            (t2 - t1).as_secs_f64(),
            n as f64 / (t2 - t1).as_secs_f64(),
            (t1 - t0).as_secs_f64(),
        ));
    });
}

// ---------------------------------------------------------------------------
// 2. Listing a filtered page

/// The listing cases, each a filter as the UI or API would send it (50 per page).
fn list_cases(store_ids: &[String], text: &str) -> Vec<(&'static str, AssetFilter)> {
    let page = |f: AssetFilter| AssetFilter { limit: 50, ..f };
    let deep = store_ids[store_ids.len() * 9 / 10].clone();
    vec![
        (
            "care_area_first_page",
            page(AssetFilter {
                care_area: Some("Adult ICU".into()),
                ..Default::default()
            }),
        ),
        (
            "care_area_and_state",
            page(AssetFilter {
                care_area: Some("Adult ICU".into()),
                state: Some(LifecycleState::InService),
                ..Default::default()
            }),
        ),
        (
            "care_area_and_rare_state",
            page(AssetFilter {
                care_area: Some("Adult ICU".into()),
                state: Some(LifecycleState::Quarantined),
                ..Default::default()
            }),
        ),
        (
            "deep_cursor_page",
            page(AssetFilter {
                after: Some(deep),
                ..Default::default()
            }),
        ),
        (
            "text_search_few_rows",
            page(AssetFilter {
                text: Some(text.into()),
                ..Default::default()
            }),
        ),
        (
            // About one asset in six: the bounded walk fills the page.
            "text_search_common",
            page(AssetFilter {
                text: Some("room 12".into()),
                ..Default::default()
            }),
        ),
        (
            // About one in 170 of the area's assets: the trigram index answers.
            "care_area_and_text",
            page(AssetFilter {
                care_area: Some("Adult ICU".into()),
                text: Some("cracked housing".into()),
                ..Default::default()
            }),
        ),
    ]
}

/// All asset ids in cursor order, and a serial number in the middle of the
/// file (searching for one serial is the typical free-text search).
async fn ids_and_needle(store: &Store, rows: usize) -> (Vec<String>, String) {
    let mut ids = Vec::with_capacity(rows);
    let mut after = None;
    loop {
        let p = store
            .list_assets(&AssetFilter {
                after: after.clone(),
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("list");
        ids.extend(p.items.iter().map(|a| a.spec.asset_id.to_string()));
        match p.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    (ids, format!("{:08}", serial_digits(rows as u64 * 3 / 4)))
}

fn bench_list(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    store: &Store,
    cases: &[(&'static str, AssetFilter)],
) {
    let mut g = c.benchmark_group("list_assets");
    g.sample_size(50)
        .sampling_mode(SamplingMode::Auto)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, f) in cases {
        g.bench_function(*name, |b| {
            b.iter(|| std::hint::black_box(rt.block_on(store.list_assets(f)).unwrap()))
        });
    }
    g.finish();
}

/// Latencies of one case: `n` queries back to back, or spread over `tasks`
/// concurrent tasks; stops early after `budget`. Returns (latencies in ms,
/// wall time).
async fn load_case(
    store: &Store,
    f: &AssetFilter,
    n: usize,
    tasks: usize,
    budget: Duration,
) -> (Vec<f64>, Duration) {
    let start = Instant::now();
    let deadline = start + budget;
    let mut handles = Vec::new();
    for k in 0..tasks {
        let (store, f) = (store.clone(), f.clone());
        let share = n / tasks + usize::from(k < n % tasks);
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(share);
            for _ in 0..share {
                if Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                std::hint::black_box(store.list_assets(&f).await.expect("list"));
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            lat
        }));
    }
    let mut all = Vec::with_capacity(n);
    for h in handles {
        all.extend(h.await.expect("load task"));
    }
    (all, start.elapsed())
}

fn load_run(
    rt: &tokio::runtime::Runtime,
    set: &Settings,
    store: &Store,
    cases: &[(&'static str, AssetFilter)],
    sum: &mut Summary,
) {
    let budget = Duration::from_secs(if set.full { 10 } else { 2 });
    sum.line(format!(
        "list_assets load run over {} assets (N = {} per case, at most {} s per case; latency in ms; target p99 < 20 ms):",
        set.rows,
        set.load_n,
        budget.as_secs()
    ));
    sum.line(format!(
        "  {:<26} {:>5} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "case", "tasks", "n", "p50", "p95", "p99", "max", "rows", "queries/s"
    ));
    for (name, f) in cases {
        let rows_returned = rt.block_on(store.list_assets(f)).expect("list").items.len();
        for tasks in [1, 8] {
            let (lat, wall) = rt.block_on(load_case(store, f, set.load_n, tasks, budget));
            let p99 = percentile(&lat, 99.0);
            sum.line(format!(
                "  {:<26} {:>5} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>9.0} {}",
                name,
                tasks,
                lat.len(),
                percentile(&lat, 50.0),
                percentile(&lat, 95.0),
                p99,
                percentile(&lat, 100.0),
                rows_returned,
                lat.len() as f64 / wall.as_secs_f64(),
                set.verdict(p99 < 20.0),
            ));
            if tasks == 1 {
                if let Some(needle) = f
                    .text
                    .as_deref()
                    .filter(|_| *name == "text_search_few_rows")
                {
                    // Same-run baseline: the search as it was before the
                    // trigram index, a LIKE scan in id order.
                    let n = set.load_n.min(200);
                    let base = rt.block_on(scan_baseline(store, needle, n));
                    let (b50, i50) = (percentile(&base, 50.0), percentile(&lat, 50.0));
                    sum.line(format!(
                        "  {:<26} {:>5} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2}    (scan baseline; indexed search is {:.1}x faster at p50, {:.1}x at p99)",
                        "  baseline: LIKE scan",
                        1,
                        base.len(),
                        b50,
                        percentile(&base, 95.0),
                        percentile(&base, 99.0),
                        percentile(&base, 100.0),
                        b50 / i50,
                        percentile(&base, 99.0) / p99,
                    ));
                }
            }
        }
    }
}

/// Latencies (ms) of the pre-index search: `LIKE '%needle%'` over every
/// asset in id order, first page.
async fn scan_baseline(store: &Store, needle: &str, n: usize) -> Vec<f64> {
    let pattern = format!("%{}%", needle.to_lowercase());
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT asset_id FROM assets WHERE search_text LIKE $1 ORDER BY asset_id LIMIT 51",
        )
        .bind(pattern.clone())
        .fetch_all(store.raw_pool())
        .await
        .expect("scan");
        std::hint::black_box(rows);
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    lat
}

// ---------------------------------------------------------------------------

fn main() {
    let set = Settings::from_args();
    let mut c = Criterion::default().configure_from_args();
    let rt = runtime();
    let mut sum = Summary::default();
    if !set.full {
        println!(
            "inventory benchmarks: smoke run with {} rows (run `cargo bench` for the real figures)",
            set.rows
        );
    }

    let work = tempfile::tempdir().expect("temporary directory");
    let t = Instant::now();
    let csv = write_sample_csv(work.path(), set.rows);
    println!(
        "generated {} ({} rows, {:.1} MB) in {:.1} s",
        csv.display(),
        set.rows,
        std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0) as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let wants_import = set.wants_import();
    let wants_list = set.wants_list();
    let mut loaded = if wants_import {
        bench_import(&mut c, &rt, &set, &csv, &mut sum)
    } else {
        None
    };
    if set.full && wants_import {
        import_postgres(&rt, &set, &csv, &mut sum);
    }

    if wants_list {
        let fresh = loaded.take().unwrap_or_else(|| {
            rt.block_on(async {
                let f = Fresh::sqlite().await;
                import(&f.store, &parse_file(&csv)).await;
                f
            })
        });
        // The import leaves SQLite's search index to a catch-up afterwards;
        // listing is measured on a store that has caught up.
        let started = std::time::Instant::now();
        let indexed = rt
            .block_on(fresh.store.catch_up_search_index())
            .expect("search index catch-up");
        sum.line(format!(
            "search index catch-up after the import: {indexed} assets in {:.2} s",
            started.elapsed().as_secs_f64()
        ));
        let (ids, needle) = rt.block_on(ids_and_needle(&fresh.store, set.rows));
        assert_eq!(ids.len(), set.rows);
        let cases = list_cases(&ids, &needle);
        bench_list(&mut c, &rt, &fresh.store, &cases);
        if set.wants_load_run() {
            load_run(&rt, &set, &fresh.store, &cases, &mut sum);
        }
        rt.block_on(fresh.dispose());
    } else if let Some(f) = loaded {
        rt.block_on(f.dispose());
    }

    c.final_summary();
    if !sum.0.is_empty() {
        println!("\n== summary ==");
        for l in &sum.0 {
            println!("{l}");
        }
    }
}
