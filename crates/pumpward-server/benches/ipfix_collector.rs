//! IPFIX records per second through the server's UDP flow collector, as
//! `pumpward serve --flow-listen` runs it: a real UDP socket on loopback,
//! the collector decoding templates and records, the evaluation task
//! attributing each flow to an asset and judging it against the stored
//! (starter) policy, violations handed to a running detection engine.
//!
//! A sender thread offers `--datagrams` IPFIX messages of 30 flow records
//! each (pumps of a 1,000-pump fleet to their pump server on 443, allowed;
//! one record in ten a violation: a pump to the internet or to another
//! pump) in bursts of 16, waiting whenever more
//! than `--window` datagrams are unread, as an exporter on a busy network
//! would be paced by nothing (the window only keeps the kernel's socket
//! buffer from overflowing, so that what is measured is the collector and
//! not the buffer). The figure is records evaluated per second, from the
//! first datagram sent to the last record evaluated; losses (queue full,
//! kernel drops) are counted and printed.
//!
//! Same-run baseline: the same datagrams into a plain UDP socket that only
//! receives them (the loopback I/O floor).
//!
//! `cargo bench -p pumpward-server --bench ipfix_collector -- [--datagrams N] [--runs R]`

use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_detect::DetectionConfig;
use pumpward_flow::ipfix::MessageBuilder;
use pumpward_flow::{Flow, FlowSource, ObservedMac, Transport};
use pumpward_server::detection::Detection;
use pumpward_server::network::{self, NetworkLive, NetworkMetrics, NetworkOptions};
use pumpward_store::{Actor, Store};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PUMPS: u32 = 1_000;
const RECORDS: usize = 30;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pump_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, (i / 250) as u8, (i % 250 + 2) as u8)
}

fn pump_mac(i: u32) -> [u8; 6] {
    [0x02, 0, 0, 0, (i >> 8) as u8, i as u8]
}

async fn fleet(store: &Store) {
    let mut rows = vec![(
        "PS-1".to_owned(),
        "10.21.0.10".to_owned(),
        "02:00:00:00:ff:01".to_owned(),
        "pump-server",
    )];
    for i in 0..PUMPS {
        let m = pump_mac(i);
        rows.push((
            format!("P-{i:04}"),
            pump_ip(i).to_string(),
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            "infusion-pump",
        ));
    }
    for (id, ip, mac, zone) in rows {
        let spec = AssetSpec::validate(&AssetDraft {
            asset_id: id.clone(),
            kind: Some("pump".into()),
            manufacturer: "ICU Medical".into(),
            model: "Plum 360".into(),
            serial_number: format!("SN-{id}"),
            firmware_version: "15.11".into(),
            care_area: Some("Adult ICU".into()),
            mac_address: Some(mac),
            ip_address: Some(ip),
            zone: Some(zone.into()),
            credential_state: Some("changed".into()),
            ..Default::default()
        })
        .expect("a valid asset");
        store
            .create_asset(&spec, Some(LifecycleState::InService), &Actor::system())
            .await
            .expect("stored");
    }
}

/// `n` IPFIX messages of [`RECORDS`] records, the template in each (as
/// exporters resend it; the collector caches it).
fn datagrams(n: usize) -> Vec<Vec<u8>> {
    let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
    let server: IpAddr = "10.21.0.10".parse().expect("address");
    let mut k: u32 = 0;
    (0..n)
        .map(|d| {
            let mut m = MessageBuilder::ipfix(7, now_s as u32);
            let template = m.flow_template(false);
            m.template(256, &template);
            let mut records = Vec::new();
            for _ in 0..RECORDS {
                k = k.wrapping_add(1);
                let i = k % PUMPS;
                let (to, port) = match k % 20 {
                    0 => ("203.0.113.50".parse().expect("address"), 443),
                    10 => (IpAddr::V4(pump_ip((i + 1) % PUMPS)), 22),
                    _ => (server, 443),
                };
                let f = Flow {
                    start_us: (now_s - 5) * 1_000_000 + (d as i64 % 1000),
                    duration_us: Some(1_000_000),
                    transport: Transport::Tcp,
                    orig_addr: IpAddr::V4(pump_ip(i)),
                    orig_port: 40_000 + (k % 20_000) as u16,
                    resp_addr: to,
                    resp_port: port,
                    orig_mac: Some(ObservedMac(pump_mac(i))),
                    resp_mac: None,
                    orig_bytes: 1_200,
                    resp_bytes: 300,
                    orig_packets: 4,
                    resp_packets: 3,
                    source: FlowSource::Ipfix,
                    sensor_uid: None,
                    conn_state: None,
                };
                m.flow_record(&f, &mut records);
            }
            m.data(256, &records);
            m.build()
        })
        .collect()
}

/// Sends `msgs` to `to`, never more than `window` ahead of `received()`.
fn send_paced(msgs: &[Vec<u8>], to: SocketAddr, window: u64, received: impl Fn() -> u64) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("a sender socket");
    for (i, chunk) in msgs.chunks(16).enumerate() {
        // Datagrams the kernel dropped never arrive: without progress for
        // 20 ms the sender goes on (the loss shows in the counts).
        let (mut seen, mut since) = (received(), Instant::now());
        while (i as u64) * 16 > received() + window && since.elapsed() < Duration::from_millis(20) {
            let now = received();
            if now != seen {
                (seen, since) = (now, Instant::now());
            }
            std::thread::yield_now();
        }
        for m in chunk {
            // A send error (buffer full) is a loss like any other.
            let _ = sock.send_to(m, to);
        }
    }
}

/// Waits until `done()` stops moving for 300 ms or reaches `all`; returns
/// when it last moved.
fn settle(done: impl Fn() -> u64, all: u64, started: Instant) -> (u64, Duration) {
    let mut last = (done(), started.elapsed());
    let mut still = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(2));
        let now = done();
        if now != last.0 {
            last = (now, started.elapsed());
            still = Instant::now();
        }
        if now >= all || still.elapsed() > Duration::from_millis(300) {
            return last;
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n = arg("--datagrams", 20_000);
    let runs = arg("--runs", 5);
    let window = arg("--window", 64) as u64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = rt.block_on(async {
        let s = Store::open_sqlite(dir.path()).await.expect("a store");
        fleet(&s).await;
        s
    });
    let msgs = datagrams(n);
    let records = (n * RECORDS) as u64;
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    println!(
        "{n} datagrams of {RECORDS} records ({bytes} bytes, {} per datagram), {runs} runs, window {window}",
        bytes / n
    );

    let mut floor = Vec::new();
    let mut collector = Vec::new();
    for run in 0..runs {
        // Baseline: a socket that only receives.
        let sink = UdpSocket::bind("127.0.0.1:0").expect("a sink");
        let to = sink.local_addr().expect("bound");
        let got = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let g = got.clone();
        sink.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let rx = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let mut idle = 0;
            while idle < 10 {
                match sink.recv(&mut buf) {
                    Ok(_) => {
                        idle = 0;
                        g.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => idle += 1,
                }
            }
        });
        let t0 = Instant::now();
        let g = got.clone();
        send_paced(&msgs, to, window, || {
            g.load(std::sync::atomic::Ordering::Relaxed)
        });
        let g = got.clone();
        let (dg, took) = settle(
            || g.load(std::sync::atomic::Ordering::Relaxed),
            n as u64,
            t0,
        );
        let _ = rx.join();
        let floor_rate = dg as f64 * RECORDS as f64 / took.as_secs_f64();

        // The collector, evaluation and detection as serve runs them.
        let metrics = NetworkMetrics::default();
        let running = rt.block_on(async {
            let detection = Detection::spawn(store.clone(), DetectionConfig::default());
            network::start(
                store.clone(),
                Some(detection),
                Arc::new(NetworkLive::default()),
                metrics.clone(),
                &NetworkOptions {
                    flow_listen: Some("127.0.0.1:0".parse().expect("address")),
                    zeek_conn_log: None,
                },
            )
            .await
            .expect("the collector starts")
        });
        let to = running.flow_addr.expect("listening");
        // Let the evaluator load the policy and the fleet.
        std::thread::sleep(Duration::from_millis(500));
        let t0 = Instant::now();
        let m = metrics.clone();
        send_paced(&msgs, to, window, || m.datagrams.get());
        let m = metrics.clone();
        let (evaluated, took) = settle(|| m.flows_evaluated.get(), records, t0);
        running.stop();
        let rate = evaluated as f64 / took.as_secs_f64();
        println!(
            "run {}: floor {:.2} M records/s ({dg} of {n} datagrams); collector {:.2} M records/s evaluated ({evaluated} of {records}; datagrams {}, malformed {}, dropped at the queue {}, violations {}); ratio {:.2}",
            run + 1,
            floor_rate / 1e6,
            rate / 1e6,
            metrics.datagrams.get(),
            metrics.malformed_datagrams.get(),
            metrics.flows_dropped.get(),
            metrics.violations.get(),
            rate / floor_rate
        );
        floor.push(floor_rate);
        collector.push(rate);
    }
    let (f, c) = (median(floor), median(collector));
    println!(
        "== summary == IPFIX through the UDP collector: median {:.2} M records/s evaluated; loopback floor {:.2} M records/s; ratio {:.2}",
        c / 1e6,
        f / 1e6,
        c / f
    );
}
