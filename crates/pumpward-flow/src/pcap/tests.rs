use super::*;
use proptest::prelude::*;

use crate::zeek::ConnLogReader;

const PUMP_MAC: [u8; 6] = [0x00, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f];
const SERVER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, flags: u8, payload: usize) -> Vec<u8> {
    let total = (20 + 20 + payload) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sp.to_be_bytes());
    p.extend_from_slice(&dp.to_be_bytes());
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend(std::iter::repeat_n(0xab, payload));
    p
}

fn ipv6_udp(src: u128, dst: u128, sp: u16, dp: u16, payload: usize) -> Vec<u8> {
    let plen = (8 + payload) as u16;
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[17, 64]);
    p.extend_from_slice(&src.to_be_bytes());
    p.extend_from_slice(&dst.to_be_bytes());
    p.extend_from_slice(&sp.to_be_bytes());
    p.extend_from_slice(&dp.to_be_bytes());
    p.extend_from_slice(&plen.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend(std::iter::repeat_n(0xcd, payload));
    p
}

fn ethernet(src: [u8; 6], dst: [u8; 6], vlan: Option<u16>, ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    if let Some(v) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// Classic pcap; `ts` in microseconds (written as nanoseconds if `nanos`).
fn classic(big: bool, nanos: bool, linktype: u32, packets: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut f = w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }).to_vec();
    f.extend_from_slice(&w16(2));
    f.extend_from_slice(&w16(4));
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&w32(65535));
    f.extend_from_slice(&w32(linktype));
    for (ts, p) in packets {
        f.extend_from_slice(&w32((ts / 1_000_000) as u32));
        let frac = ts % 1_000_000;
        f.extend_from_slice(&w32(if nanos { frac * 1000 } else { frac } as u32));
        f.extend_from_slice(&w32(p.len() as u32));
        f.extend_from_slice(&w32(p.len() as u32));
        f.extend_from_slice(p);
    }
    f
}

/// pcapng with one interface at `tsresol` (the if_tsresol byte).
fn pcapng(big: bool, linktype: u16, tsresol: u8, packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let block = |f: &mut Vec<u8>, ty: u32, body: &[u8]| {
        let total = (12 + body.len().div_ceil(4) * 4) as u32;
        f.extend_from_slice(&w32(ty));
        f.extend_from_slice(&w32(total));
        f.extend_from_slice(body);
        f.extend(std::iter::repeat_n(0, (4 - body.len() % 4) % 4));
        f.extend_from_slice(&w32(total));
    };
    let mut f = Vec::new();
    let mut shb = w32(0x1a2b_3c4d).to_vec();
    shb.extend_from_slice(&w16(1));
    shb.extend_from_slice(&w16(0));
    shb.extend_from_slice(&[0xff; 8]);
    block(&mut f, 0x0a0d_0d0a, &shb);
    let mut idb = w16(linktype).to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&w32(0));
    idb.extend_from_slice(&w16(9));
    idb.extend_from_slice(&w16(1));
    idb.extend_from_slice(&[tsresol, 0, 0, 0]);
    idb.extend_from_slice(&[0, 0, 0, 0]);
    block(&mut f, 1, &idb);
    // A name-resolution block: passed over.
    block(&mut f, 4, &[0, 0, 0, 0]);
    for (ts, p) in packets {
        let mut epb = w32(0).to_vec();
        epb.extend_from_slice(&w32((ts >> 32) as u32));
        epb.extend_from_slice(&w32(*ts as u32));
        epb.extend_from_slice(&w32(p.len() as u32));
        epb.extend_from_slice(&w32(p.len() as u32));
        epb.extend_from_slice(p);
        block(&mut f, 6, &epb);
    }
    f
}

const T0: i64 = 1_764_151_200_000_000;
const PUMP: [u8; 4] = [10, 20, 0, 15];
const SERVER: [u8; 4] = [10, 30, 0, 5];

/// A TCP connection whose capture starts with the server's SYN-ACK, on a
/// tagged VLAN, then an ARP frame.
fn tcp_conversation() -> Vec<(i64, Vec<u8>)> {
    let eth = |from_pump: bool, flags: u8, payload: usize| {
        let ip = if from_pump {
            ipv4_tcp(PUMP, SERVER, 49152, 443, flags, payload)
        } else {
            ipv4_tcp(SERVER, PUMP, 443, 49152, flags, payload)
        };
        if from_pump {
            ethernet(PUMP_MAC, SERVER_MAC, Some(20), 0x0800, &ip)
        } else {
            ethernet(SERVER_MAC, PUMP_MAC, Some(20), 0x0800, &ip)
        }
    };
    vec![
        (T0, eth(false, 0x12, 0)),
        (T0 + 100, eth(true, 0x02, 0)),
        (T0 + 200, eth(true, 0x10, 100)),
        (T0 + 1_500_000, eth(false, 0x18, 300)),
        (
            T0 + 1_600_000,
            ethernet(PUMP_MAC, [0xff; 6], None, 0x0806, &[0; 28]),
        ),
    ]
}

fn expected_tcp_flow() -> Flow {
    Flow {
        start_us: T0,
        duration_us: Some(1_500_000),
        transport: Transport::Tcp,
        orig_addr: IpAddr::V4(PUMP.into()),
        orig_port: 49152,
        resp_addr: IpAddr::V4(SERVER.into()),
        resp_port: 443,
        orig_mac: Some(ObservedMac(PUMP_MAC)),
        resp_mac: Some(ObservedMac(SERVER_MAC)),
        orig_bytes: 40 + 140,
        resp_bytes: 40 + 340,
        orig_packets: 2,
        resp_packets: 2,
        source: FlowSource::Pcap,
        sensor_uid: None,
        conn_state: None,
    }
}

#[test]
fn classic_pcap_in_both_byte_orders_and_resolutions_gives_the_same_flows() {
    for (big, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
        let file = classic(big, nanos, 1, &tcp_conversation());
        let r = read_capture(file.as_slice(), AggregatorConfig::default());
        assert_eq!(r.error, None, "big={big} nanos={nanos}");
        // The pump sent the pure SYN, so it is the originator although the
        // capture began with the server's SYN-ACK.
        assert_eq!(
            r.flows,
            vec![expected_tcp_flow()],
            "big={big} nanos={nanos}"
        );
        assert_eq!(
            (r.counts.packets, r.counts.in_flows, r.counts.not_ip),
            (5, 4, 1)
        );
    }
}

#[test]
fn pcapng_in_both_byte_orders_with_decimal_and_binary_resolutions() {
    let packets = tcp_conversation();
    type ToUnits = fn(i64) -> u64;
    let cases: [(u8, ToUnits); 3] = [
        (6, |us| us as u64),
        (9, |us| us as u64 * 1000),
        (0x80 | 20, |us| {
            ((us as u128) << 20).div_ceil(1_000_000) as u64
        }),
    ];
    for big in [false, true] {
        for (resol, units) in cases {
            let p: Vec<(u64, Vec<u8>)> = packets
                .iter()
                .map(|(t, d)| (units(*t), d.clone()))
                .collect();
            let r = read_capture(
                pcapng(big, 1, resol, &p).as_slice(),
                AggregatorConfig::default(),
            );
            assert_eq!(r.error, None);
            assert_eq!(
                r.flows,
                vec![expected_tcp_flow()],
                "big={big} resol={resol:#x}"
            );
            assert_eq!(r.counts.blocks_skipped, 1);
        }
    }
}

#[test]
fn simple_packet_blocks_are_counted_but_make_no_flow_and_bad_blocks_name_their_offset() {
    let mut file = pcapng(false, 1, 6, &[]);
    let start = file.len();
    let frame = ethernet(
        PUMP_MAC,
        SERVER_MAC,
        None,
        0x0800,
        &ipv4_tcp(PUMP, SERVER, 1, 2, 0x02, 2),
    );
    let padded = frame.len().div_ceil(4) * 4;
    let total = (16 + padded) as u32;
    file.extend_from_slice(&3u32.to_le_bytes());
    file.extend_from_slice(&total.to_le_bytes());
    file.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    file.extend_from_slice(&frame);
    file.extend(std::iter::repeat_n(0, padded - frame.len()));
    file.extend_from_slice(&total.to_le_bytes());
    let r = read_capture(file.as_slice(), AggregatorConfig::default());
    assert_eq!(r.error, None);
    assert_eq!(
        (r.counts.packets, r.counts.no_timestamp, r.flows.len()),
        (1, 1, 0)
    );

    // The same block with a trailing length that disagrees.
    let last = file.len() - 4;
    file[last..].copy_from_slice(&(total + 4).to_le_bytes());
    let r = read_capture(file.as_slice(), AggregatorConfig::default());
    assert_eq!(
        r.error,
        Some(CaptureError::Malformed {
            offset: (start + total as usize - 4) as u64,
            problem: format!(
                "block trailing length {} differs from its leading length {total}",
                total + 4
            ),
        })
    );

    // An enhanced packet for an interface never described.
    let mut file = pcapng(false, 1, 6, &[(1, frame.clone())]);
    let epb = file.len() - (32 + padded);
    file[epb + 8..epb + 12].copy_from_slice(&5u32.to_le_bytes());
    let r = read_capture(file.as_slice(), AggregatorConfig::default());
    assert_eq!(
        r.error,
        Some(CaptureError::Malformed {
            offset: (epb + 8) as u64,
            problem: "packet for interface 5, of which 1 are described".into(),
        })
    );
}

#[test]
fn raw_ip_and_linux_cooked_captures_and_ipv6() {
    let a = 0xfd00_0000_0000_0000_0000_0000_0000_0015u128;
    let b = 0xfd00_0000_0000_0000_0000_0000_0000_0053u128;
    let raw = classic(
        false,
        false,
        101,
        &[
            (T0, ipv6_udp(a, b, 5353, 53, 20)),
            (T0 + 10, ipv6_udp(b, a, 53, 5353, 60)),
        ],
    );
    let r = read_capture(raw.as_slice(), AggregatorConfig::default());
    assert_eq!(r.error, None);
    let f = &r.flows[0];
    assert_eq!(
        (f.transport, f.orig_port, f.resp_port),
        (Transport::Udp, 5353, 53)
    );
    assert_eq!((f.orig_bytes, f.resp_bytes, f.orig_mac), (68, 108, None));

    let mut sll = vec![0, 4, 0, 1, 0, 6];
    sll.extend_from_slice(&PUMP_MAC);
    sll.extend_from_slice(&[0, 0, 0x08, 0x00]);
    sll.extend_from_slice(&ipv4_tcp(PUMP, SERVER, 1000, 2575, 0x02, 0));
    let r = read_capture(
        classic(false, false, 113, &[(T0, sll)]).as_slice(),
        AggregatorConfig::default(),
    );
    let f = &r.flows[0];
    assert_eq!(
        (f.orig_mac, f.resp_mac, f.resp_port),
        (Some(ObservedMac(PUMP_MAC)), None, 2575)
    );
}

#[test]
fn an_idle_gap_longer_than_the_timeout_starts_a_new_flow() {
    let p = |t| {
        (
            t,
            ethernet(
                PUMP_MAC,
                SERVER_MAC,
                None,
                0x0800,
                &ipv4_tcp(PUMP, SERVER, 5, 6, 0x10, 0),
            ),
        )
    };
    let file = classic(
        false,
        false,
        1,
        &[p(T0), p(T0 + 299_000_000), p(T0 + 600_000_000)],
    );
    let r = read_capture(file.as_slice(), AggregatorConfig::default());
    assert_eq!(r.flows.len(), 2);
    assert_eq!(
        (r.flows[0].orig_packets, r.flows[0].duration_us),
        (2, Some(299_000_000))
    );
    assert_eq!(r.flows[1].start_us, T0 + 600_000_000);
}

#[test]
fn a_truncated_capture_reports_the_offset_and_keeps_the_flows_before_it() {
    let file = classic(false, false, 1, &tcp_conversation());
    // Cut in the middle of the last packet's data.
    let cut = file.len() - 10;
    let r = read_capture(&file[..cut], AggregatorConfig::default());
    let last_len = tcp_conversation()[4].1.len();
    assert_eq!(
        r.error,
        Some(CaptureError::Truncated {
            offset: (file.len() - last_len) as u64,
            what: "packet data",
            needed: last_len,
            available: last_len - 10,
        })
    );
    assert_eq!(r.flows, vec![expected_tcp_flow()]);

    // Cut inside a pcapng block.
    let p: Vec<(u64, Vec<u8>)> = tcp_conversation()
        .into_iter()
        .map(|(t, d)| (t as u64, d))
        .collect();
    let ng = pcapng(false, 1, 6, &p);
    let r = read_capture(&ng[..ng.len() - 5], AggregatorConfig::default());
    match r.error {
        Some(CaptureError::Truncated {
            what: "block body", ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(r.flows.len(), 1);
    assert_eq!(r.flows[0].orig_packets + r.flows[0].resp_packets, 4);

    let r = read_capture(&b"GIF89a..."[..], AggregatorConfig::default());
    assert_eq!(
        r.error,
        Some(CaptureError::NotACapture { magic: 0x4749_4638 })
    );
}

#[test]
fn the_bacnet_capture_gives_exactly_the_flows_zeek_logged_for_it() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/bacnet/");
    let pcap = std::fs::read(format!("{dir}bacnet_example.pcap")).unwrap();
    let ours = read_capture(pcap.as_slice(), AggregatorConfig::default());
    assert_eq!(ours.error, None);
    assert_eq!(ours.counts.packets, 3257);
    assert_eq!(ours.counts.in_flows, 3257);

    // Zeek's conn.log for the same capture, its masked times replaced (only
    // the times; everything compared below is as Zeek wrote it).
    let log = std::fs::read_to_string(format!("{dir}bacnet_example.zeek-conn.log"))
        .unwrap()
        .replace("XXXXXXXXXX.XXXXXX", "0.0");
    let zeek: Vec<Flow> = ConnLogReader::new(log.as_bytes())
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(zeek.len(), 357);

    // Zeek counts what Pumpward counts (IP-level bytes, packets per
    // direction, 1-minute UDP inactivity timeout), so the 357 connections
    // match one for one: 5-tuple, originator, packets and bytes. Times are
    // masked in the log and cannot be compared.
    let key = |f: &Flow| {
        (
            f.orig_addr,
            f.orig_port,
            f.resp_addr,
            f.resp_port,
            f.transport,
            f.orig_packets,
            f.orig_bytes,
            f.resp_packets,
            f.resp_bytes,
        )
    };
    let mut a: Vec<_> = ours.flows.iter().map(key).collect();
    let mut b: Vec<_> = zeek.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn the_medical_device_captures_read_whole() {
    let dir = "/work/shared/data/pcap/iotsec-lab-medical/";
    for (file, linktype_raw) in [
        ("kardiamobile_2_3.pcap", true),
        ("withings_wifi_02_01.pcap", false),
    ] {
        let Ok(bytes) = std::fs::read(format!("{dir}{file}")) else {
            // Not redistributable (no licence), so not copied into the repository.
            eprintln!("SKIPPED (iotsec-lab-medical capture): {dir}{file} is not on this machine");
            return;
        };
        let r = read_capture(bytes.as_slice(), AggregatorConfig::default());
        assert_eq!(r.error, None, "{file}");
        assert!(r.counts.in_flows > 100, "{file}: {:?}", r.counts);
        assert_eq!(r.counts.bad_headers, 0, "{file}: {:?}", r.counts);
        let packets: u64 = r
            .flows
            .iter()
            .map(|f| f.orig_packets + f.resp_packets)
            .sum();
        assert_eq!(packets, r.counts.in_flows);
        // Raw-IP captures carry no MACs; Ethernet ones do.
        assert_eq!(
            r.flows.iter().all(|f| f.orig_mac.is_none()),
            linktype_raw,
            "{file}"
        );
    }
}

fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, payload: usize) -> Vec<u8> {
    let total = (20 + 8 + payload) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sp.to_be_bytes());
    p.extend_from_slice(&dp.to_be_bytes());
    p.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend(std::iter::repeat_n(0x11, payload));
    p
}

proptest! {
    /// Random traffic among a few hosts: every packet and every byte lands
    /// in exactly one flow, each flow's originator sent its first packet, and
    /// two flows of one 5-tuple are separated by more than the idle timeout.
    #[test]
    fn every_packet_lands_in_one_flow(
        packets in proptest::collection::vec(
            (0u8..3, 0u8..3, 0usize..3, any::<bool>(), 0usize..300, 0i64..90_000_000),
            1..80,
        )
    ) {
        let ports = [1000u16, 2575, 53];
        let mut ts = T0;
        let mut records = Vec::new();
        let mut total_bytes = 0u64;
        for (a, b, port, udp, payload, gap) in packets {
            ts += gap;
            let (src, dst) = ([10, 20, 0, a + 1], [10, 20, 0, b + 4]);
            let ip = if udp {
                ipv4_udp(src, dst, ports[port], 53, payload)
            } else {
                ipv4_tcp(src, dst, ports[port], 443, 0x18, payload)
            };
            total_bytes += ip.len() as u64;
            records.push((ts, ip));
        }
        let n = records.len() as u64;
        let r = read_capture(classic(false, false, 101, &records).as_slice(), AggregatorConfig::default());
        prop_assert_eq!(r.error, None);
        prop_assert_eq!(r.flows.iter().map(|f| f.orig_packets + f.resp_packets).sum::<u64>(), n);
        prop_assert_eq!(r.flows.iter().map(|f| f.orig_bytes + f.resp_bytes).sum::<u64>(), total_bytes);
        let config = AggregatorConfig::default();
        for f in &r.flows {
            prop_assert!(f.orig_packets >= 1);
            let idle = if f.transport == Transport::Udp { config.udp_idle_us } else { config.tcp_idle_us };
            for g in &r.flows {
                let same = (f.transport, f.orig_addr, f.orig_port, f.resp_addr, f.resp_port)
                    == (g.transport, g.orig_addr, g.orig_port, g.resp_addr, g.resp_port);
                if same && g.start_us > f.start_us {
                    let f_end = f.start_us + f.duration_us.unwrap_or(0) as i64;
                    prop_assert!(g.start_us - f_end > idle);
                }
            }
        }
    }

    /// Arbitrary bytes after a valid header never panic, and every packet is
    /// accounted for exactly once.
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600), ng in any::<bool>(), linktype in prop_oneof![Just(1u32), Just(101), Just(113), Just(276), Just(9)]) {
        let mut file = if ng { pcapng(false, linktype as u16, 6, &[]) } else { classic(false, false, linktype, &[]) };
        file.extend_from_slice(&body);
        let r = read_capture(file.as_slice(), AggregatorConfig::default());
        let c = &r.counts;
        prop_assert_eq!(c.packets, c.in_flows + c.not_ip + c.later_fragments + c.bad_headers + c.unsupported_link_type + c.no_timestamp);
        let in_flows: u64 = r.flows.iter().map(|f| f.orig_packets + f.resp_packets).sum();
        prop_assert_eq!(in_flows, c.in_flows);
    }

    /// Any prefix of a good capture gives a subset of its packets and, unless
    /// it ends on a record boundary, a truncation error at or below the cut.
    #[test]
    fn any_prefix_is_read_up_to_the_cut(cut in 0usize..400) {
        let file = classic(false, false, 1, &tcp_conversation());
        let cut = cut.min(file.len());
        let r = read_capture(&file[..cut], AggregatorConfig::default());
        prop_assert!(r.counts.packets <= 5);
        if let Some(CaptureError::Truncated { offset, .. }) = r.error {
            prop_assert!(offset as usize <= cut);
        }
    }
}
