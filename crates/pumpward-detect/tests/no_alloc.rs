//! The engine's hot path: once its subjects are known, an event that
//! triggers nothing allocates nothing (counted by a global allocator that
//! wraps the system one; this test binary has only this test, so nothing
//! else allocates concurrently).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use pumpward_core::inventory::{CredentialState, LifecycleState};
use pumpward_detect::event::{Body, DoseOutcome, Event, Source, SCHEMA_VERSION};
use pumpward_detect::{AssetFacts, Context, DetectionConfig, Engine};
use pumpward_flow::{Flow, FlowSource, Transport};
use pumpward_proto::message::AlarmKind;
use time::{Duration, OffsetDateTime};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn quiet_events_do_not_allocate_once_warm() {
    let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let mut ctx = Context::default();
    ctx.assets.insert(
        "pump-1".into(),
        AssetFacts {
            model: "Plum 360".into(),
            care_area: Some("ICU".into()),
            lifecycle: LifecycleState::InService,
            credentials: Some(CredentialState::Changed),
            maintenance_windows: vec![],
            last_seen: None,
        },
    );
    let flow = Flow {
        start_us: 0,
        duration_us: None,
        transport: Transport::Tcp,
        orig_addr: "10.20.0.5".parse().unwrap(),
        orig_port: 50000,
        resp_addr: "10.1.0.10".parse().unwrap(),
        resp_port: 443,
        orig_mac: None,
        resp_mac: None,
        orig_bytes: 1,
        resp_bytes: 1,
        orig_packets: 1,
        resp_packets: 1,
        source: FlowSource::Pcap,
        sensor_uid: None,
        conn_state: None,
    };
    let bodies = [
        (
            Source::Pump,
            Body::Alarm {
                alarm: AlarmKind::Occlusion,
            },
        ),
        (
            Source::Pump,
            Body::DoseCheck {
                result: DoseOutcome::WithinLimits,
                drug: Some("Heparin".into()),
                limit_kind: None,
                dose: None,
                limit: None,
                library_version: None,
                override_reason: None,
            },
        ),
        (
            Source::Pump,
            Body::DoseCheck {
                result: DoseOutcome::SoftOverride,
                drug: Some("Heparin".into()),
                limit_kind: None,
                dose: None,
                limit: None,
                library_version: None,
                override_reason: None,
            },
        ),
        (Source::Network, Body::FlowObserved { flow }),
    ];
    // One event of each kind every 20 minutes for 3 days: learning ends,
    // every hour of the day and the destination are known, soft overrides
    // stay below the burst threshold (10 per hour).
    let events: Vec<Event> = (0..4 * 3 * 72)
        .map(|i: i64| {
            let (source, body) = bodies[(i % 4) as usize].clone();
            let at = t0 + Duration::seconds(i / 4 * 1200);
            Event {
                schema_version: SCHEMA_VERSION,
                id: format!("ev-{i}"),
                occurred_at: at,
                received_at: at,
                source,
                asset_id: Some("pump-1".parse().unwrap()),
                care_area: Some("ICU".into()),
                body,
            }
        })
        .collect();
    let mut engine = Engine::new(DetectionConfig::default());
    let mut out = Vec::with_capacity(64);
    let (warm, measured) = events.split_at(events.len() / 2);
    for (i, e) in warm.iter().enumerate() {
        engine.process(&ctx, i as u64 + 1, e, &mut out);
    }
    assert!(out.is_empty(), "the stream is quiet: {out:#?}");
    let before = ALLOCS.load(Ordering::Relaxed);
    // The counter works: warming up (new subjects, baselines) allocated.
    assert!(before > 100, "{before}");
    for (i, e) in measured.iter().enumerate() {
        engine.process(&ctx, (warm.len() + i) as u64 + 1, e, &mut out);
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(out.is_empty(), "{out:#?}");
    assert_eq!(
        allocs,
        0,
        "{} quiet events allocated {allocs} times",
        measured.len()
    );
}
