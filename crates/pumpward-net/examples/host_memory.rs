//! Memory of the live network path for 100,000 tracked hosts, counted by a
//! global allocator (bytes allocated and not freed), per structure the
//! server's evaluator task keeps (`pumpward-server/src/network.rs`):
//!
//! - the attribution tables: the [`Evaluator`] compiled from 100,000
//!   registered assets' network identities (and the identities as the store
//!   hands them over, which the task drops after compiling);
//! - the presence tracker (device in two places) after each asset's MAC was
//!   seen once;
//! - the observed conduits after those 100,000 hosts' flows;
//! - the unknown-device list after 100,000 distinct unregistered hosts in
//!   the pump zone (bounded);
//! - the report limiter: the server's map of violation tuples reported in
//!   the last minute, `HashMap<(&'static str, IpAddr, IpAddr, u16),
//!   Instant>` (a private type there, built here the same way), after
//!   100,000 distinct tuples.
//!
//! Run: `cargo run --release -p pumpward-net --example host_memory`
//! (docs/PERFORMANCE.md, "Memory for 100,000 tracked hosts").

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use pumpward_flow::{Flow, FlowSource, ObservedMac, Transport};
use pumpward_net::observed::{ObservedConduits, UnknownDevices};
use pumpward_net::presence::PresenceTracker;
use pumpward_net::{starter_policy, AddressBinding, Admission, AssetIdentity, Evaluator, Verdict};

/// Bytes allocated and not yet freed.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc_zeroed(l)
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const HOSTS: u32 = 100_000;
const T0: i64 = 1_790_000_000_000_000;

/// Host `i` of the pump zone: 10.20.0.0/16 first, then fd00:20::/48.
fn host(i: u32) -> IpAddr {
    if i < 65_000 {
        IpAddr::V4(Ipv4Addr::from(0x0a14_0000 + 16 + i))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0x20,
            0,
            1,
            0,
            0,
            (i >> 16) as u16,
            i as u16,
        ))
    }
}

fn mac(i: u32) -> [u8; 6] {
    [0x02, 0x1b, 0x00, (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

fn flow(from: IpAddr, from_mac: [u8; 6], to: IpAddr, port: u16, at_us: i64) -> Flow {
    Flow {
        start_us: at_us,
        duration_us: Some(2_000),
        transport: Transport::Tcp,
        orig_addr: from,
        orig_port: 40_000,
        resp_addr: to,
        resp_port: port,
        orig_mac: Some(ObservedMac(from_mac)),
        resp_mac: None,
        orig_bytes: 600,
        resp_bytes: 1_400,
        orig_packets: 6,
        resp_packets: 5,
        source: FlowSource::ZeekConnLog,
        sensor_uid: None,
        conn_state: None,
    }
}

fn row(what: &str, bytes: isize, per: u32) {
    println!(
        "| {what} | {bytes} | {:.1} MiB | {:.0} |",
        bytes as f64 / 1_048_576.0,
        bytes as f64 / f64::from(per)
    );
}

fn main() {
    let policy = starter_policy();
    let server: IpAddr = "10.21.0.10".parse().expect("an address");

    let before = live();
    let mut identities: Vec<AssetIdentity> = (0..HOSTS)
        .map(|i| AssetIdentity {
            asset_id: format!("PUMP-{i:06}").parse().expect("a valid asset id"),
            zone: "infusion-pump".into(),
            manufacturer: Some("ICU Medical".into()),
            model: Some("Plum 360".into()),
            admission: Admission::Mab,
            macs: vec![{
                let [a, b, c, d, e, f] = mac(i);
                format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
                    .parse()
                    .expect("a valid MAC")
            }],
            addresses: vec![AddressBinding::always(host(i))],
        })
        .collect();
    // The pump server they talk to (a device zone holds registered devices only).
    identities.push(AssetIdentity {
        asset_id: "PS-01".parse().expect("a valid asset id"),
        zone: "pump-server".into(),
        manufacturer: None,
        model: None,
        admission: Admission::Mab,
        macs: vec!["02:21:00:00:00:01".parse().expect("a valid MAC")],
        addresses: vec![AddressBinding::always(server)],
    });
    let identities_bytes = live() - before;

    let before = live();
    let ev = Evaluator::new(&policy, &identities).expect("the hosts fit the policy");
    let evaluator_bytes = live() - before;
    drop(identities);

    // Every registered host talks to the pump server once.
    let flows: Vec<Flow> = (0..HOSTS)
        .map(|i| flow(host(i), mac(i), server, 443, T0 + i64::from(i)))
        .collect();

    let before = live();
    let mut presence = PresenceTracker::new(60_000_000);
    let mut observed = ObservedConduits::new();
    let mut allowed = 0u32;
    for f in &flows {
        let e = ev.evaluate(f);
        allowed += u32::from(matches!(e.verdict, Verdict::Allowed(_)));
        assert!(presence.observe_flow(&ev, f, &e).is_none());
    }
    let presence_bytes = live() - before;
    assert_eq!(
        allowed, HOSTS,
        "every registered host is allowed to its server"
    );
    assert_eq!(presence.len(), HOSTS as usize);

    let before = live();
    for f in &flows {
        observed.record(f, &ev.evaluate(f));
    }
    let observed_bytes = live() - before;

    // 100,000 unregistered hosts in the pump zone (addresses nobody holds).
    let before = live();
    let mut unknown = UnknownDevices::new();
    for i in 0..HOSTS {
        let addr = IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0x20,
            0,
            2,
            0,
            0,
            (i >> 16) as u16,
            i as u16,
        ));
        let f = flow(
            addr,
            [0x02, 0x99, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            server,
            443,
            T0,
        );
        if let Verdict::Violation(pumpward_net::Violation::UnknownDevice { zone, .. }) =
            ev.evaluate(&f).verdict
        {
            let name = ev.zone_name(pumpward_net::eval::ZoneRef::Zone(zone));
            unknown.record(name, addr, f.orig_mac.map(|m| m.0), f.start_us);
        }
    }
    let unknown_bytes = live() - before;
    assert_eq!(
        unknown.len() as u64 + unknown.not_listed(),
        u64::from(HOSTS)
    );

    let before = live();
    let now = Instant::now();
    let mut reported: HashMap<(&'static str, IpAddr, IpAddr, u16), Instant> = HashMap::new();
    for i in 0..HOSTS {
        reported.insert(("east_west", host(i), server, 22), now);
    }
    let reported_bytes = live() - before;

    println!("{HOSTS} hosts; bytes allocated and not freed, by the counting allocator:\n");
    println!("| structure | bytes | MiB | bytes per host |");
    println!("|---|---|---|---|");
    row(
        "registered identities as handed over by the store (dropped after compiling)",
        identities_bytes,
        HOSTS,
    );
    row(
        "evaluator (attribution tables, identities kept)",
        evaluator_bytes,
        HOSTS,
    );
    row("presence tracker (one MAC per host)", presence_bytes, HOSTS);
    row(
        &format!("observed conduits ({} rows)", observed.len()),
        observed_bytes,
        HOSTS,
    );
    row(
        &format!(
            "unknown devices ({} listed, {} sightings counted only)",
            unknown.len(),
            unknown.not_listed()
        ),
        unknown_bytes,
        HOSTS,
    );
    row(
        &format!("report limiter ({} tuples)", reported.len()),
        reported_bytes,
        HOSTS,
    );
    let kept = evaluator_bytes + presence_bytes + observed_bytes + unknown_bytes + reported_bytes;
    row("total kept by the evaluator task", kept, HOSTS);
    std::hint::black_box((&ev, &presence, &observed, &unknown, &reported));
}
