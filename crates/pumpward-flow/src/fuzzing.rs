//! The bodies of the `zeek_conn_log`, `ipfix_netflow` and `pcap` fuzz
//! targets, here so that the committed seeds (`fuzz/seeds/<target>/`) are
//! replayed by unit tests on stable.
//!
//! Besides "never panics", each checks what the crate promises: every line
//! or packet is accounted for once, following a file in chunks gives what
//! reading it whole gives, a refused datagram changes no template and yields
//! no flow, and error offsets lie inside the input.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::ipfix::Collector;
use crate::pcap::{read_capture, AggregatorConfig, CaptureError};
use crate::zeek::{ConnLogFollower, ConnLogReader};

/// A conn.log (TSV or JSON). The first byte picks where the input is cut
/// in two for the follower. Returns the number of flows parsed.
pub fn zeek_conn_log(data: &[u8]) -> u64 {
    let mut reader = ConnLogReader::new(data);
    let whole: Vec<_> = reader.by_ref().collect();
    let counts = reader.counts().clone();
    assert_eq!(counts.parsed + counts.total_skipped(), whole.len() as u64);
    let lines = data.split(|b| *b == b'\n').count() as u64;
    for e in whole.iter().filter_map(|r| r.as_ref().err()) {
        assert!(e.line >= 1 && e.line <= lines, "{e} of {lines} lines");
    }

    let cut = data
        .first()
        .map_or(0, |b| data.len() * usize::from(*b) / 256);
    let mut follower = ConnLogFollower::new();
    let mut followed = Vec::new();
    follower.feed(&data[..cut], &mut |r| followed.push(r));
    follower.feed(&data[cut..], &mut |r| followed.push(r));
    follower.finish(&mut |r| followed.push(r));
    assert_eq!(followed, whole);
    assert_eq!(follower.counts(), &counts);
    counts.parsed
}

/// A sequence of datagrams, each preceded by its length (2 bytes, big
/// endian), all from one exporter. Returns the number of flows decoded.
pub fn ipfix_netflow(data: &[u8]) -> u64 {
    let exporter = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 2055);
    let mut c = Collector::new();
    let mut rest = data;
    let mut flows = 0u64;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let datagram = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let before = c.template_count();
        let out = c.handle_datagram(exporter, datagram);
        if out.error.is_some() {
            assert!(out.flows.is_empty());
            assert_eq!(c.template_count(), before);
            assert_eq!(out.templates_learned + out.templates_withdrawn, 0);
        }
        flows += out.flows.len() as u64;
    }
    assert_eq!(c.counts().flows, flows);
    flows
}

/// A capture file. Returns the number of flows.
pub fn pcap(data: &[u8]) -> usize {
    let r = read_capture(data, AggregatorConfig::default());
    let c = &r.counts;
    assert_eq!(
        c.packets,
        c.in_flows
            + c.not_ip
            + c.later_fragments
            + c.bad_headers
            + c.unsupported_link_type
            + c.no_timestamp
    );
    let in_flows: u64 = r
        .flows
        .iter()
        .map(|f| f.orig_packets + f.resp_packets)
        .sum();
    assert_eq!(in_flows, c.in_flows);
    match r.error {
        Some(CaptureError::Truncated { offset, .. })
        | Some(CaptureError::Malformed { offset, .. }) => {
            assert!(offset as usize <= data.len())
        }
        _ => {}
    }
    r.flows.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipfix::{FieldSpec, MessageBuilder};
    use crate::{Flow, FlowSource, ObservedMac, Transport};
    use std::path::{Path, PathBuf};

    const TARGETS: [&str; 3] = ["zeek_conn_log", "ipfix_netflow", "pcap"];

    fn seed_dir(target: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target)
    }

    fn seed(target: &str, name: &str) -> Vec<u8> {
        std::fs::read(seed_dir(target).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn seeds(target: &str) -> Vec<Vec<u8>> {
        let mut v: Vec<_> = std::fs::read_dir(seed_dir(target))
            .unwrap_or_else(|e| panic!("{target}: {e}"))
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    fn run(target: &str, data: &[u8]) -> u64 {
        match target {
            "zeek_conn_log" => zeek_conn_log(data),
            "ipfix_netflow" => ipfix_netflow(data),
            _ => pcap(data) as u64,
        }
    }

    #[test]
    fn flow_fuzz_seeds_replay_and_do_what_their_names_say() {
        for target in TARGETS {
            let s = seeds(target);
            assert!(s.len() >= 3, "{target}: only {} seeds", s.len());
            for data in &s {
                run(target, data);
            }
        }
        assert_eq!(
            zeek_conn_log(&seed("zeek_conn_log", "bacnet_unmasked.log")),
            20
        );
        assert_eq!(zeek_conn_log(&seed("zeek_conn_log", "json.log")), 2);
        assert_eq!(
            zeek_conn_log(&seed("zeek_conn_log", "missing_column.log")),
            0
        );
        assert_eq!(
            ipfix_netflow(&seed("ipfix_netflow", "ipfix_template_and_data.bin")),
            2
        );
        assert_eq!(
            ipfix_netflow(&seed("ipfix_netflow", "v9_template_and_data.bin")),
            2
        );
        assert_eq!(
            ipfix_netflow(&seed("ipfix_netflow", "data_before_template.bin")),
            2
        );
        assert_eq!(ipfix_netflow(&seed("ipfix_netflow", "bad_template.bin")), 0);
        assert_eq!(pcap(&seed("pcap", "bacnet_head.pcap")), 28);
        assert_eq!(pcap(&seed("pcap", "truncated.pcap")), 28);
        // Written by hand (Python) from the capture's first five packets.
        assert_eq!(
            pcap(&seed("pcap", "le.pcapng")),
            pcap(&seed("pcap", "be.pcapng"))
        );
        assert!(pcap(&seed("pcap", "le.pcapng")) > 0);
    }

    /// Random edits of the committed seeds through the bodies above, so CI
    /// exercises more than the seeds themselves.
    mod mutations {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            #[test]
            fn edited_seeds_keep_the_promises(
                target in 0usize..3,
                pick in any::<usize>(),
                edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
            ) {
                let target = TARGETS[target];
                let s = seeds(target);
                let mut d = s[pick % s.len()].clone();
                for (at, byte, kind) in edits {
                    if d.is_empty() { break; }
                    let i = at % d.len();
                    match kind {
                        0 => d[i] ^= byte | 1,
                        1 => d.insert(i, byte),
                        _ => d.truncate(i),
                    }
                }
                run(target, &d);
            }
        }
    }

    fn framed(datagrams: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for d in datagrams {
            out.extend_from_slice(&(d.len() as u16).to_be_bytes());
            out.extend_from_slice(d);
        }
        out
    }

    fn sample_flows() -> Vec<Flow> {
        (0..2u8)
            .map(|i| Flow {
                start_us: 1_764_151_200_000_000 + i64::from(i) * 1000,
                duration_us: Some(5000),
                transport: Transport::Udp,
                orig_addr: IpAddr::V4(Ipv4Addr::new(10, 20, 0, 10 + i)),
                orig_port: 123,
                resp_addr: IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)),
                resp_port: 123,
                orig_mac: Some(ObservedMac([0, 0x1b, 0x2c, 0, 0, i])),
                resp_mac: None,
                orig_bytes: 76,
                resp_bytes: 0,
                orig_packets: 1,
                resp_packets: 0,
                source: FlowSource::Ipfix,
                sensor_uid: None,
                conn_state: None,
            })
            .collect()
    }

    /// Writes the seeds. Run once with `--ignored` after changing the formats.
    #[test]
    #[ignore]
    fn regenerate_seeds() {
        for t in TARGETS {
            std::fs::create_dir_all(seed_dir(t)).unwrap();
        }
        let write = |t: &str, name: &str, data: &[u8]| {
            std::fs::write(seed_dir(t).join(name), data).unwrap()
        };

        let log = include_str!("../tests/data/bacnet/bacnet_example.zeek-conn.log");
        let head: Vec<&str> = log.lines().take(29).collect();
        let text = format!("{}\n#close\tXXXX\n", head.join("\n"))
            .replace("XXXXXXXXXX.XXXXXX", "1591367999.305988");
        write("zeek_conn_log", "bacnet_unmasked.log", text.as_bytes());
        write("zeek_conn_log", "json.log", br#"{"ts":1764151200.5,"uid":"C1","id.orig_h":"10.20.0.15","id.orig_p":68,"id.resp_h":"255.255.255.255","id.resp_p":67,"proto":"udp","orig_ip_bytes":328,"orig_pkts":1}
{"ts":"2025-11-26T10:00:00Z","id.orig_h":"fd00::1","id.orig_p":1,"id.resp_h":"fd00::2","id.resp_p":443,"proto":"tcp","duration":1.5,"orig_l2_addr":"00:1b:2c:3d:4e:5f"}
{"ts":1.0,"id.orig_h":"pump","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":2,"proto":"tcp"}
"#);
        write("zeek_conn_log", "missing_column.log", b"#separator \\x09\n#fields\tts\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n1.0\t1\t10.0.0.1\t2\tudp\n");

        let flows = sample_flows();
        let b = MessageBuilder::ipfix(1, 1_764_151_300);
        let t = b.flow_template(false);
        let mut recs = Vec::new();
        for f in &flows {
            b.flow_record(f, &mut recs);
        }
        let template = b.clone().template(256, &t).build();
        let data = b.clone().data(256, &recs).build();
        let both = b.clone().template(256, &t).data(256, &recs).build();
        write(
            "ipfix_netflow",
            "ipfix_template_and_data.bin",
            &framed(&[both]),
        );
        write(
            "ipfix_netflow",
            "data_before_template.bin",
            &framed(&[data.clone(), template, data]),
        );
        let mut v9 = MessageBuilder::netflow_v9(7, 1_764_151_300, 3_600_000);
        let t9 = v9.flow_template(false);
        let mut recs9 = Vec::new();
        for f in &flows {
            v9.flow_record(f, &mut recs9);
        }
        write(
            "ipfix_netflow",
            "v9_template_and_data.bin",
            &framed(&[v9.template(256, &t9).data(256, &recs9).build()]),
        );
        let bad = MessageBuilder::ipfix(1, 1)
            .template(256, &[FieldSpec::iana(8, 6)])
            .data(256, &[0; 6])
            .build();
        write("ipfix_netflow", "bad_template.bin", &framed(&[bad]));

        // The bacnet capture's first 100 packets, and the same cut mid-packet.
        let pcap_bytes = include_bytes!("../tests/data/bacnet/bacnet_example.pcap");
        let mut end = 24;
        for _ in 0..100 {
            let incl =
                u32::from_le_bytes(pcap_bytes[end + 8..end + 12].try_into().unwrap()) as usize;
            end += 16 + incl;
        }
        write("pcap", "bacnet_head.pcap", &pcap_bytes[..end]);
        write("pcap", "truncated.pcap", &pcap_bytes[..end + 30]);
        write("pcap", "not_a_capture.pcap", b"GIF89a");
    }
}
