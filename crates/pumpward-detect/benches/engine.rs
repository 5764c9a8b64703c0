//! Detection engine throughput: a realistic event mix through every
//! built-in rule and the baselines, with same-run baselines (routing only,
//! and JSON decoding) so that the ratio survives a loaded machine.
//!
//! The mix, per 1000 events: 700 dose checks within limits, 50 soft
//! overrides, 10 hard blocks, 60 alarms, 100 observed flows, 40 gateway
//! connections, 20 authentication failures, 10 admin audit records, 5
//! library installs, 3 policy violations, 2 unknown devices, over 300 pumps
//! in 6 care areas and about 3 hours. The engine runs in steady state: it
//! keeps its state across iterations (sequence numbers keep rising; times
//! repeat, which windows clamp), so per-subject maps are warm, as they are
//! in production.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pumpward_core::audit::{AuditEntry, Outcome};
use pumpward_core::inventory::{CredentialState, LifecycleState};
use pumpward_detect::engine::ExpectedLibrary;
use pumpward_detect::event::{
    decode_event, Body, BodyKind, DoseOutcome, Event, RejectCounters, Source, ViolationKind,
    SCHEMA_VERSION,
};
use pumpward_detect::{AssetFacts, Context, DetectionConfig, Engine};
use pumpward_flow::{Flow, FlowSource, ObservedMac, Transport};
use pumpward_proto::message::AlarmKind;
use time::{Duration, OffsetDateTime};

const N: usize = 10_000;
const PUMPS: usize = 300;
const AREAS: [&str; 6] = ["ICU", "NICU", "ED", "ONC", "MED", "SURG"];
const DIGEST: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn context() -> Context {
    let mut c = Context::default();
    for p in 0..PUMPS {
        c.assets.insert(
            format!("pump-{p:04}"),
            AssetFacts {
                model: if p % 2 == 0 {
                    "Plum 360"
                } else {
                    "Spectrum IQ"
                }
                .into(),
                care_area: Some(AREAS[p % AREAS.len()].into()),
                lifecycle: LifecycleState::InService,
                credentials: Some(CredentialState::Changed),
                maintenance_windows: vec![],
                last_seen: None,
            },
        );
    }
    for p in 0..PUMPS {
        c.libraries.insert(
            format!("pump-{p:04}"),
            ExpectedLibrary {
                version: "2026.11".into(),
                digest: DIGEST.into(),
            },
        );
    }
    c
}

fn flow(p: usize, i: usize) -> Flow {
    Flow {
        start_us: 0,
        duration_us: Some(1000),
        transport: Transport::Tcp,
        orig_addr: format!("10.20.{}.{}", p / 250, p % 250 + 1)
            .parse()
            .unwrap(),
        orig_port: 40000 + (i % 1000) as u16,
        resp_addr: "10.1.0.10".parse().unwrap(),
        resp_port: 443,
        orig_mac: Some(ObservedMac([2, 0, 0, 0, (p / 256) as u8, p as u8])),
        resp_mac: None,
        orig_bytes: 1200,
        resp_bytes: 800,
        orig_packets: 8,
        resp_packets: 6,
        source: FlowSource::ZeekConnLog,
        sensor_uid: None,
        conn_state: None,
    }
}

fn dose(result: DoseOutcome) -> Body {
    Body::DoseCheck {
        result,
        drug: Some("Heparin".into()),
        limit_kind: None,
        dose: None,
        limit: None,
        library_version: Some("2026.11".into()),
        override_reason: None,
    }
}

fn events() -> Vec<Event> {
    let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    (0..N)
        .map(|i| {
            // A fixed pseudo-random walk over pumps, so bursts are rare.
            let p = (i * 7919) % PUMPS;
            let asset = format!("pump-{p:04}");
            let r = (i * 104_729) % 1000;
            let (source, body) = match r {
                0..=699 => (Source::Pump, dose(DoseOutcome::WithinLimits)),
                700..=749 => (Source::Pump, dose(DoseOutcome::SoftOverride)),
                750..=759 => (Source::Pump, dose(DoseOutcome::HardBlock)),
                760..=819 => (
                    Source::Pump,
                    Body::Alarm {
                        alarm: AlarmKind::Occlusion,
                    },
                ),
                820..=919 => (Source::Network, Body::FlowObserved { flow: flow(p, i) }),
                920..=959 => (
                    Source::Gateway,
                    Body::GatewayConnection {
                        peer: flow(p, i).orig_addr,
                        certificate: format!("{:064x}", p),
                    },
                ),
                960..=979 => (
                    Source::Gateway,
                    Body::AuthFailure {
                        peer: format!("10.99.0.{}", i % 200).parse().unwrap(),
                        certificate: None,
                        reason: "unknown_ca".into(),
                    },
                ),
                980..=989 => (
                    Source::Admin,
                    Body::AdminAudit {
                        record: AuditEntry::new("pharm.lee", "library.publish", Outcome::Success)
                            .seal(i as i64, t0, pumpward_core::audit::GENESIS_HASH),
                    },
                ),
                990..=994 => (
                    Source::Pump,
                    Body::LibraryInstalled {
                        version: "2026.11".into(),
                        digest: DIGEST.into(),
                    },
                ),
                995..=997 => (
                    Source::Network,
                    Body::PolicyViolation {
                        rule: "pumps-gateway-only".into(),
                        violation: ViolationKind::EastWest,
                        flow: flow(p, i),
                        earlier_flow: None,
                    },
                ),
                _ => (
                    Source::Network,
                    Body::UnknownDevice {
                        mac: ObservedMac([2, 1, 2, 3, 4, (i % 256) as u8]),
                        ip: None,
                        zone: "pumps".into(),
                        device_zone: true,
                    },
                ),
            };
            let at = t0 + Duration::milliseconds(i as i64 * 1100);
            let has_asset = !matches!(
                body.kind(),
                BodyKind::AuthFailure | BodyKind::AdminAudit | BodyKind::UnknownDevice
            );
            Event {
                schema_version: SCHEMA_VERSION,
                id: format!("ev-{i}"),
                occurred_at: at,
                received_at: at,
                source,
                care_area: has_asset.then(|| AREAS[p % AREAS.len()].to_string()),
                asset_id: has_asset.then(|| asset.parse().unwrap()),
                body,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let evs = events();
    for e in &evs {
        e.validate().expect("bench events are valid");
    }
    let json: Vec<Vec<u8>> = evs.iter().map(|e| serde_json::to_vec(e).unwrap()).collect();
    let ctx = context();

    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(N as u64));

    // Baseline 1: only route each event by kind (the floor of any engine).
    g.bench_function("route_only", |b| {
        let mut counts: HashMap<BodyKind, u64> = HashMap::new();
        b.iter(|| {
            for e in &evs {
                *counts.entry(black_box(e).body.kind()).or_default() += 1;
            }
        })
    });

    // All built-in rules and baselines, steady state.
    let mut engine = Engine::new(DetectionConfig::default());
    let mut seq = 0u64;
    let mut out = Vec::new();
    g.bench_function("engine_all_rules", |b| {
        b.iter(|| {
            for e in &evs {
                seq += 1;
                engine.process(&ctx, seq, black_box(e), &mut out);
            }
            out.clear();
        })
    });

    // Baseline 2: decoding and validating the same events from JSON.
    g.bench_function("decode_json", |b| {
        let mut counters = RejectCounters::default();
        b.iter_batched(
            || (),
            |_| {
                for j in &json {
                    black_box(decode_event(black_box(j), &mut counters).unwrap());
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
