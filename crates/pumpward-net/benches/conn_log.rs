//! Issue 6's combined figure: Zeek conn.log records parsed **and** evaluated
//! against the zone policy per second on one core, beside the floors any
//! line reader sits on, all in one run (see docs/PERFORMANCE.md, "conn.log
//! parsed and evaluated").
//!
//! The log: 1,000,000 TSV records as Zeek writes them with mac-logging on
//! (the generator of `pumpward-flow/benches/ingest.rs`, shared by path),
//! whose endpoints are the flow mix of `common/mod.rs`: the SP 1800-8
//! starter policy's zones, 5,020 registered assets, ~90 % allowed flows.
//! Pumps and servers carry their registered MACs, as a sensor on their VLAN
//! sees them.
//!
//! - `wc_l_file`: `wc -l` on the same bytes written to a file (page cache
//!   warm; includes starting the process, ~1 ms): the I/O floor.
//! - `newlines`: counting the in-memory buffer's newlines (what `wc -l`
//!   does, without I/O).
//! - `parse`: `ConnLogParser` over each line.
//! - `parse_evaluate`: the same, each flow through `Evaluator::evaluate`.
//! - `parse_evaluate_live`: plus what the server's evaluator task keeps per
//!   flow (observed conduits, the two-places presence tracker).
//! - `file_parse_evaluate`: `ConnLogReader` over the file (buffered reads,
//!   bounded line copy), each flow evaluated: the whole path from the file.
//!
//! Times are CPU time, not wall time ([`CpuTime`]): the bench's own thread
//! as the scheduler accounts it, plus the processes it waited for (`wc`).
//! On the shared, loaded machine a bench gets half a core or less, and "per
//! core" is what the figure is about.
//!
//! Run: `cargo bench -p pumpward-net --bench conn_log -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::io::BufReader;
use std::net::IpAddr;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pumpward_flow::zeek::{ConnLogParser, ConnLogReader};
use pumpward_flow::{Flow, Transport};
use pumpward_net::observed::ObservedConduits;
use pumpward_net::presence::PresenceTracker;
use pumpward_net::{starter_policy, Evaluator, Verdict};

mod common;
#[path = "../../pumpward-flow/benches/common/conn_log.rs"]
mod conn_log;
use conn_log::Line;

const LINES: u32 = 1_000_000;
/// The router's MAC: what a sensor sees as the far side of a routed flow.
const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];

/// The MAC a sensor on the originator's VLAN sees: a registered asset's own
/// (see `common::assets`), otherwise one derived from the address.
fn orig_mac(addr: IpAddr) -> [u8; 6] {
    let IpAddr::V4(v4) = addr else {
        return [0x02, 0x66, 0, 0, 0, 1];
    };
    let [a, b, c, d] = v4.octets();
    let n = u32::from(v4);
    let first_pump = u32::from_be_bytes([10, 20, 0, 16]);
    if (a, b) == (10, 20) && n >= first_pump && n < first_pump + 2 * common::PUMPS {
        let i = (n - first_pump) % common::PUMPS;
        return [0x02, 0x1b, 0x00, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    }
    if (a, b, c) == (10, 21, 0) && (10..30).contains(&d) {
        return [0x02, 0x21, 0, 0, 0, d - 10];
    }
    [0x02, 0x99, a, b, c, d]
}

/// CPU time: this thread's time on a CPU (`/proc/thread-self/schedstat`,
/// nanoseconds) plus that of the children it waited for (`/proc/self/stat`
/// cutime + cstime, in Linux's fixed 100 ticks a second).
struct CpuTime {
    wall: WallTime,
}

fn cpu_ns() -> u64 {
    let thread = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .expect("/proc/thread-self/schedstat");
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces): state is
    // field 3, cutime 16, cstime 17.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(13)
        .take(2)
        .map(|t| t.parse::<u64>().expect("a tick count"))
        .sum();
    thread + ticks * 10_000_000
}

impl Measurement for CpuTime {
    type Intermediate = u64;
    type Value = Duration;

    fn start(&self) -> u64 {
        cpu_ns()
    }

    fn end(&self, start: u64) -> Duration {
        Duration::from_nanos(cpu_ns().saturating_sub(start))
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, as wall time's.
        self.wall.formatter()
    }
}

fn line(f: &Flow) -> Line {
    let (proto, service) = match (f.transport, f.resp_port) {
        (Transport::Tcp, 443 | 8444) => ("tcp", "ssl"),
        (Transport::Tcp, 22) => ("tcp", "ssh"),
        (Transport::Tcp, 80) => ("tcp", "http"),
        (Transport::Tcp, _) => ("tcp", "-"),
        (Transport::Udp, 53) => ("udp", "dns"),
        (Transport::Udp, 123) => ("udp", "ntp"),
        (Transport::Udp, _) => ("udp", "-"),
        _ => ("icmp", "-"),
    };
    Line {
        ts_us: u64::try_from(f.start_us).unwrap_or(0),
        orig: f.orig_addr,
        orig_p: f.orig_port,
        resp: f.resp_addr,
        resp_p: f.resp_port,
        proto,
        service,
        orig_mac: orig_mac(f.orig_addr),
        resp_mac: ROUTER_MAC,
    }
}

fn parse_each(log: &[u8], mut each: impl FnMut(&Flow)) -> u64 {
    let mut p = ConnLogParser::new();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', log) {
        if let Some(Ok(f)) = p.parse_line(log.get(start..end).unwrap_or(&[])) {
            each(&f);
        }
        start = end + 1;
    }
    p.counts().parsed
}

fn bench(c: &mut Criterion<CpuTime>) {
    let policy = starter_policy();
    let ev = Evaluator::new(&policy, &common::assets()).expect("the fleet fits the policy");
    let flows = common::flows(LINES);
    let log = conn_log::conn_log(flows.len(), 0x5eed, |_, i| line(&flows[i]));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("conn.log");
    std::fs::write(&path, &log).expect("write the conn.log");

    // The figure means something only if every line parses and the parsed
    // flows get the verdicts of the flows they were written from.
    let expected = flows
        .iter()
        .filter(|f| matches!(ev.evaluate(f).verdict, Verdict::Allowed(_)))
        .count();
    let mut got = 0;
    let parsed = parse_each(&log, |f| {
        got += usize::from(matches!(ev.evaluate(f).verdict, Verdict::Allowed(_)))
    });
    assert_eq!(parsed, u64::from(LINES));
    assert_eq!(
        got, expected,
        "parsed flows must be judged like their sources"
    );
    drop(flows);
    eprintln!(
        "conn.log: {LINES} records, {} bytes ({:.0} bytes a line), {got} allowed ({:.1} %), file {}",
        log.len(),
        log.len() as f64 / f64::from(LINES),
        100.0 * got as f64 / f64::from(LINES),
        path.display()
    );

    let mut g = c.benchmark_group("conn_log_evaluate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(u64::from(LINES)));
    g.bench_function("wc_l_file", |b| {
        b.iter(|| {
            let out = std::process::Command::new("wc")
                .arg("-l")
                .arg(&path)
                .output()
                .expect("run wc");
            assert!(out.status.success());
            black_box(out.stdout)
        })
    });
    g.bench_function("newlines", |b| {
        b.iter(|| memchr::memchr_iter(b'\n', black_box(&log)).count())
    });
    g.bench_function("parse", |b| {
        b.iter(|| {
            let mut bytes = 0u64;
            parse_each(black_box(&log), |f| bytes += f.orig_bytes);
            black_box(bytes)
        })
    });
    g.bench_function("parse_evaluate", |b| {
        b.iter(|| {
            let mut violations = 0u32;
            parse_each(black_box(&log), |f| {
                if let Verdict::Violation(_) = ev.evaluate(f).verdict {
                    violations += 1;
                }
            });
            black_box(violations)
        })
    });
    g.bench_function("parse_evaluate_live", |b| {
        b.iter(|| {
            let mut observed = ObservedConduits::new();
            let mut presence = PresenceTracker::new(60_000_000);
            let mut two_places = 0u32;
            parse_each(black_box(&log), |f| {
                let e = ev.evaluate(f);
                observed.record(f, &e);
                two_places += u32::from(presence.observe_flow(&ev, f, &e).is_some());
            });
            black_box((observed, two_places))
        })
    });
    g.bench_function("file_parse_evaluate", |b| {
        b.iter(|| {
            let file = std::fs::File::open(&path).expect("open the conn.log");
            let mut violations = 0u32;
            for f in ConnLogReader::new(BufReader::with_capacity(1 << 16, file)).flatten() {
                if let Verdict::Violation(_) = ev.evaluate(&f).verdict {
                    violations += 1;
                }
            }
            black_box(violations)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime { wall: WallTime });
    targets = bench
}
criterion_main!(benches);
