//! The delay from a pump event's acknowledgement to its alert, under a
//! steady background load: the measurement behind the target
//! ("under 1 s at 10,000 events/s").
//!
//! In one process, on the embedded SQLite store: the gateway's event writer
//! (group commits) and the detection engine task, exactly as `pumpward
//! serve` wires them; TLS and framing, which come before the
//! acknowledgement, are left out. Background pumps store `--rate` events/s
//! in batches of 10; every 250 ms a probe pump stores five hard-limit blocks
//! one batch at a time (the fifth completes a burst). The delay is from the
//! moment the fifth block's `store` returns (the gateway would send the ack
//! then) to the moment its alert can be read from the store. Prints the
//! median, p90, p99 and maximum delay, the achieved event rate, and the same
//! figures with no background load as the baseline of the same run.
//!
//! `cargo bench -p pumpward-server --bench alert_delay -- [--rate N] [--seconds S]`

use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_detect::DetectionConfig;
use pumpward_proto::message::{DoseCheck, DoseCheckResult, EventKind, PumpEvent};
use pumpward_server::detection::Detection;
use pumpward_server::device::EventWriter;
use pumpward_store::{Actor, AlertFilter, DeviceBatch, DeviceEventRecord, Store};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BACKGROUND_PUMPS: usize = 200;
const BATCH: usize = 10;

fn event(seq: u64, kind: EventKind) -> DeviceEventRecord {
    let at = time::OffsetDateTime::now_utc();
    let ev = PumpEvent {
        seq,
        at,
        kind,
        detail: BTreeMap::new(),
    };
    let json = serde_json::to_value(&ev).expect("an event serialises");
    DeviceEventRecord {
        seq: seq as i64,
        at: pumpward_core::timefmt::format(at),
        kind: json["kind"].as_str().unwrap_or_default().to_owned(),
        body: json.to_string(),
    }
}

fn hard_block() -> EventKind {
    EventKind::DoseCheck(DoseCheck {
        result: DoseCheckResult::HardBlock,
        drug: "heparin".into(),
        care_area: "Adult ICU".into(),
        dose: None,
        limit: None,
        limit_kind: None,
        infusion_id: None,
        library_version: None,
        override_reason: None,
    })
}

fn background() -> EventKind {
    EventKind::Other {
        name: "heartbeat_detail".into(),
    }
}

async fn pump(store: &Store, id: &str, area: &str) {
    let spec = AssetSpec::validate(&AssetDraft {
        asset_id: id.into(),
        kind: Some("pump".into()),
        manufacturer: "Baxter".into(),
        model: "Sigma Spectrum".into(),
        serial_number: format!("SN-{id}"),
        firmware_version: "8.00.01".into(),
        care_area: Some(area.into()),
        credential_state: Some("changed".into()),
        ..Default::default()
    })
    .expect("a valid asset");
    store
        .create_asset(&spec, Some(LifecycleState::InService), &Actor::system())
        .await
        .expect("asset created");
}

struct Figures {
    delays: Vec<Duration>,
    events_per_s: f64,
}

async fn run(rate: u64, seconds: u64) -> Figures {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_sqlite(dir.path()).await.expect("store");
    let probes = (seconds * 4) as usize;
    for i in 0..BACKGROUND_PUMPS {
        // Background pumps in their own care area, so that their events
        // never complete the probe's care-area burst.
        pump(&store, &format!("BG-{i:04}"), "Med-Surg").await;
    }
    for i in 0..probes {
        pump(&store, &format!("PROBE-{i:04}"), &format!("Probe area {i}")).await;
    }
    let detection = Detection::spawn(store.clone(), DetectionConfig::default());
    let writer = EventWriter::spawn(store.clone(), Some(detection.clone()));
    let stored = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(seconds);

    // Background: each pump sends a batch every `BACKGROUND_PUMPS * BATCH / rate` s.
    let mut load = Vec::new();
    if rate > 0 {
        let every = Duration::from_secs_f64((BACKGROUND_PUMPS * BATCH) as f64 / rate as f64);
        for i in 0..BACKGROUND_PUMPS {
            let (writer, stored) = (writer.clone(), stored.clone());
            load.push(tokio::spawn(async move {
                let id = format!("BG-{i:04}");
                let mut seq = 0u64;
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                // Spread the pumps over the period.
                tokio::time::sleep(every.mul_f64(i as f64 / BACKGROUND_PUMPS as f64)).await;
                while Instant::now() < stop {
                    tick.tick().await;
                    let events = (0..BATCH)
                        .map(|_| {
                            seq += 1;
                            event(seq, background())
                        })
                        .collect();
                    let b = DeviceBatch {
                        asset_id: id.clone(),
                        events,
                        ..Default::default()
                    };
                    if writer.store(b).await.is_ok() {
                        stored.fetch_add(BATCH as u64, Ordering::Relaxed);
                    }
                }
            }));
        }
    }

    let started = Instant::now();
    let mut delays = Vec::with_capacity(probes);
    let mut next = Instant::now() + Duration::from_millis(500);
    for p in 0..probes {
        tokio::time::sleep_until(next.into()).await;
        next += Duration::from_millis(250);
        let id = format!("PROBE-{p:04}");
        for seq in 1..=5 {
            let b = DeviceBatch {
                asset_id: id.clone(),
                events: vec![event(seq, hard_block())],
                ..Default::default()
            };
            writer.store(b).await.expect("probe stored");
        }
        let acked = Instant::now();
        let filter = AlertFilter {
            rule: Some("hard_limit_burst_pump".into()),
            asset_id: Some(id.clone()),
            ..Default::default()
        };
        loop {
            if !store
                .list_alerts(&filter)
                .await
                .expect("alerts")
                .0
                .is_empty()
            {
                delays.push(acked.elapsed());
                break;
            }
            if acked.elapsed() > Duration::from_secs(30) {
                eprintln!("{id}: no alert within 30 s");
                delays.push(Duration::from_secs(30));
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    for l in load {
        let _ = l.await;
    }
    if detection.dropped() > 0 {
        eprintln!("detection dropped {} events", detection.dropped());
    }
    Figures {
        delays,
        events_per_s: stored.load(Ordering::Relaxed) as f64 / elapsed,
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn report(label: &str, mut f: Figures) -> Duration {
    f.delays.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = quantile(&f.delays, 0.5);
    println!(
        "{label}: {:.0} background events/s; ack → alert over {} probes: median {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        f.events_per_s,
        f.delays.len(),
        ms(median),
        ms(quantile(&f.delays, 0.9)),
        ms(quantile(&f.delays, 0.99)),
        ms(f.delays.last().copied().unwrap_or_default()),
    );
    median
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    // `cargo test --benches` runs this with `--bench` absent: a short smoke run.
    let quick = !args.iter().any(|a| a == "--bench");
    let (rate, seconds) = if quick {
        (1_000, 2)
    } else {
        (arg("--rate", 10_000), arg("--seconds", 30))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let base = report("baseline (no load)", rt.block_on(run(0, seconds)));
    let loaded = report(
        &format!("under load (target {rate} events/s)"),
        rt.block_on(run(rate, seconds)),
    );
    println!(
        "median under load / baseline: {:.2}",
        loaded.as_secs_f64() / base.as_secs_f64().max(1e-9)
    );
}
