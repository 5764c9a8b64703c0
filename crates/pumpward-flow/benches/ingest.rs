//! Flow ingestion throughput, with a same-run floor (see docs/PERFORMANCE.md,
//! "Flow ingestion").
//!
//! - `conn_log/newlines`: counting the newlines of the in-memory conn.log,
//!   what `wc -l` does: the I/O-free floor any line parser sits on.
//! - `conn_log/parse_tsv`: the same 1,000,000 lines through `ConnLogParser`.
//! - `conn_log/reader`: the same through `ConnLogReader` over a `&[u8]`
//!   (adds the bounded line copy a file reader does).
//! - `conn_log/parse_json`: 100,000 JSON lines.
//! - `ipfix/handle_datagram`: IPFIX datagrams of 30 records, template cached.
//! - `pcap/bacnet`: the bacnet capture aggregated into flows.
//!
//! Set `PUMPWARD_FLOW_BENCH_FILE=/tmp/conn.log` to also write the generated
//! conn.log there, for `wc -l` from the shell.
//!
//! Run: `cargo bench -p pumpward-flow --bench ingest -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pumpward_flow::ipfix::{Collector, MessageBuilder};
use pumpward_flow::pcap::{read_capture, AggregatorConfig};
use pumpward_flow::zeek::{ConnLogParser, ConnLogReader};
use pumpward_flow::{Flow, FlowSource, Transport};

const LINES: usize = 1_000_000;

mod common {
    pub mod conn_log;
}
use common::conn_log::{Line, Rng};

/// A conn.log as Zeek writes it with mac-logging on: a hospital network of
/// pumps, servers and clinical systems; TCP, UDP and ICMP; v4 and some v6;
/// established, rejected and unanswered connections.
fn conn_log(lines: usize) -> Vec<u8> {
    let mut ts: u64 = 1_764_151_200_000_000;
    common::conn_log::conn_log(lines, 0x9e37_79b9_7f4a_7c15, |r, _| {
        ts += r.below(2000);
        let kind = r.below(100);
        let v6 = r.below(10) == 0;
        let host = |r: &mut Rng, net: u64| -> IpAddr {
            if v6 {
                IpAddr::V6(Ipv6Addr::new(
                    0xfd00,
                    net as u16,
                    0,
                    0,
                    0,
                    0,
                    0,
                    r.below(4000) as u16 + 1,
                ))
            } else {
                IpAddr::V4(Ipv4Addr::new(
                    10,
                    net as u8,
                    r.below(16) as u8,
                    r.below(250) as u8 + 1,
                ))
            }
        };
        let orig = host(r, 20);
        let resp_net = 30 + r.below(3);
        let resp = host(r, resp_net);
        let (proto, resp_p, service) = match kind {
            0..=59 => ("tcp", [443u16, 2575, 8443, 22][r.below(4) as usize], "ssl"),
            60..=94 => ("udp", [53u16, 123, 67, 1812][r.below(4) as usize], "dns"),
            _ => ("icmp", 0, "-"),
        };
        let orig_p = if proto == "icmp" {
            8
        } else {
            1024 + r.below(60000) as u16
        };
        let mut mac = |prefix: [u8; 3]| {
            let [a, b, c] = prefix;
            [
                a,
                b,
                c,
                r.below(256) as u8,
                r.below(256) as u8,
                r.below(256) as u8,
            ]
        };
        let orig_mac = mac([0x00, 0x1b, 0x2c]);
        let resp_mac = mac([0x02, 0x00, 0x00]);
        Line {
            ts_us: ts,
            orig,
            orig_p,
            resp,
            resp_p,
            proto,
            service,
            orig_mac,
            resp_mac,
        }
    })
}

fn json_log(lines: usize) -> Vec<u8> {
    use std::fmt::Write;
    let mut s = String::new();
    let mut r = Rng(7);
    for i in 0..lines {
        let _ = writeln!(
            s,
            r#"{{"ts":{}.{:06},"uid":"C{:017x}","id.orig_h":"10.20.{}.{}","id.orig_p":{},"id.resp_h":"10.30.0.{}","id.resp_p":443,"proto":"tcp","service":"ssl","duration":1.25,"orig_bytes":1200,"resp_bytes":3400,"conn_state":"SF","missed_bytes":0,"history":"ShADadFf","orig_pkts":10,"orig_ip_bytes":1720,"resp_pkts":8,"resp_ip_bytes":3820,"orig_l2_addr":"00:1b:2c:3d:4e:5f","resp_l2_addr":"02:00:00:00:00:01"}}"#,
            1_764_151_200 + i / 1000,
            r.below(1_000_000),
            i,
            r.below(16),
            r.below(250) + 1,
            1024 + r.below(60000),
            r.below(250) + 1
        );
    }
    s.into_bytes()
}

fn conn_log_benches(c: &mut Criterion) {
    let log = conn_log(LINES);
    if let Ok(path) = std::env::var("PUMPWARD_FLOW_BENCH_FILE") {
        std::fs::write(&path, &log).expect("write the bench file");
        eprintln!("wrote {} bytes, {LINES} records, to {path}", log.len());
    }
    // The parser must accept every generated line, or the figure means nothing.
    let mut p = ConnLogParser::new();
    for line in log.split(|b| *b == b'\n') {
        let _ = p.parse_line(line);
    }
    assert_eq!(p.counts().parsed, LINES as u64, "{:?}", p.counts());

    let mut g = c.benchmark_group("conn_log");
    g.sample_size(10);
    g.throughput(Throughput::Elements(LINES as u64));
    g.bench_function("newlines", |b| {
        b.iter(|| memchr::memchr_iter(b'\n', black_box(&log)).count())
    });
    g.bench_function("parse_tsv", |b| {
        b.iter(|| {
            let mut p = ConnLogParser::new();
            let mut bytes = 0u64;
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', &log) {
                if let Some(Ok(f)) = p.parse_line(&log[start..end]) {
                    bytes += f.orig_bytes;
                }
                start = end + 1;
            }
            black_box(bytes)
        })
    });
    g.bench_function("reader", |b| {
        b.iter(|| {
            ConnLogReader::new(black_box(log.as_slice()))
                .filter(|r| r.is_ok())
                .count()
        })
    });
    g.finish();

    let json = json_log(LINES / 10);
    let mut g = c.benchmark_group("conn_log_json");
    g.sample_size(10);
    g.throughput(Throughput::Elements((LINES / 10) as u64));
    g.bench_function("parse_json", |b| {
        b.iter(|| {
            ConnLogReader::new(black_box(json.as_slice()))
                .filter(|r| r.is_ok())
                .count()
        })
    });
    g.finish();
}

fn ipfix_benches(c: &mut Criterion) {
    const PER_DATAGRAM: usize = 30;
    const DATAGRAMS: usize = 1000;
    let exporter = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)), 4739);
    let b = MessageBuilder::ipfix(1, 1_764_151_300);
    let template = b.flow_template(false);
    let mut r = Rng(99);
    let datagrams: Vec<Vec<u8>> = (0..DATAGRAMS)
        .map(|_| {
            let mut recs = Vec::new();
            for _ in 0..PER_DATAGRAM {
                let f = Flow {
                    start_us: 1_764_151_200_000_000 + r.below(1 << 30) as i64 * 1000,
                    duration_us: Some(r.below(1 << 20) * 1000),
                    transport: Transport::Tcp,
                    orig_addr: IpAddr::V4(Ipv4Addr::from(0x0a14_0000 | r.below(1 << 16) as u32)),
                    orig_port: r.below(65536) as u16,
                    resp_addr: IpAddr::V4(Ipv4Addr::new(10, 30, 0, 5)),
                    resp_port: 443,
                    orig_mac: None,
                    resp_mac: None,
                    orig_bytes: r.below(1 << 20),
                    resp_bytes: 0,
                    orig_packets: r.below(1000),
                    resp_packets: 0,
                    source: FlowSource::Ipfix,
                    sensor_uid: None,
                    conn_state: None,
                };
                b.flow_record(&f, &mut recs);
            }
            b.clone().data(256, &recs).build()
        })
        .collect();
    let mut collector = Collector::new();
    collector.handle_datagram(exporter, &b.clone().template(256, &template).build());
    assert_eq!(
        collector
            .handle_datagram(exporter, &datagrams[0])
            .flows
            .len(),
        PER_DATAGRAM
    );

    let mut g = c.benchmark_group("ipfix");
    g.sample_size(20);
    g.throughput(Throughput::Elements((PER_DATAGRAM * DATAGRAMS) as u64));
    g.bench_function("handle_datagram", |bch| {
        bch.iter(|| {
            let mut n = 0;
            for d in &datagrams {
                n += collector
                    .handle_datagram(exporter, black_box(d))
                    .flows
                    .len();
            }
            n
        })
    });
    g.finish();
}

fn pcap_benches(c: &mut Criterion) {
    let capture = include_bytes!("../tests/data/bacnet/bacnet_example.pcap");
    let mut g = c.benchmark_group("pcap");
    g.sample_size(20);
    g.throughput(Throughput::Elements(3257));
    g.bench_function("bacnet", |b| {
        b.iter(|| {
            read_capture(black_box(&capture[..]), AggregatorConfig::default())
                .flows
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, conn_log_benches, ipfix_benches, pcap_benches);
criterion_main!(benches);
