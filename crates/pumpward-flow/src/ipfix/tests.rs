use super::*;
use proptest::prelude::*;

fn exporter(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 99, 0, n)), 4739)
}

fn pump_flow() -> Flow {
    Flow {
        start_us: 1_764_151_200_123_000,
        duration_us: Some(2_500_000),
        transport: Transport::Tcp,
        orig_addr: "10.20.0.15".parse().unwrap(),
        orig_port: 49152,
        resp_addr: "10.30.0.5".parse().unwrap(),
        resp_port: 443,
        orig_mac: Some(ObservedMac([0, 0x11, 0x22, 0x33, 0x44, 0x55])),
        resp_mac: Some(ObservedMac([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])),
        orig_bytes: 1720,
        resp_bytes: 0,
        orig_packets: 10,
        resp_packets: 0,
        source: FlowSource::Ipfix,
        sensor_uid: None,
        conn_state: None,
    }
}

fn message_with(b: &mut MessageBuilder, flows: &[Flow]) -> Vec<u8> {
    let t = b.flow_template(flows.first().is_some_and(|f| f.orig_addr.is_ipv6()));
    b.template(256, &t);
    let mut recs = Vec::new();
    for f in flows {
        b.flow_record(f, &mut recs);
    }
    b.data(256, &recs);
    b.build()
}

#[test]
fn an_ipfix_template_and_its_data_in_one_message_give_the_flow() {
    let mut b = MessageBuilder::ipfix(7, 1_764_151_300);
    let msg = message_with(&mut b, &[pump_flow()]);
    let mut c = Collector::new();
    let out = c.handle_datagram(exporter(1), &msg);
    assert_eq!(out.error, None);
    assert_eq!(out.protocol, Some(ExportProtocol::Ipfix));
    assert_eq!(out.templates_learned, 1);
    assert_eq!(out.flows, vec![pump_flow()]);
    assert_eq!(c.counts().flows, 1);
}

#[test]
fn data_before_its_template_is_counted_and_decoded_once_the_template_arrives() {
    let b = MessageBuilder::ipfix(7, 1_764_151_300);
    let mut recs = Vec::new();
    b.flow_record(&pump_flow(), &mut recs);
    let data_only = b.clone().data(256, &recs).build();
    let mut c = Collector::new();
    let out = c.handle_datagram(exporter(1), &data_only);
    assert_eq!(
        (out.error, out.flows.len(), out.unknown_template_sets),
        (None, 0, 1)
    );

    let template_only = b.clone().template(256, &b.flow_template(false)).build();
    assert_eq!(
        c.handle_datagram(exporter(1), &template_only)
            .templates_learned,
        1
    );
    assert_eq!(
        c.handle_datagram(exporter(1), &data_only).flows,
        vec![pump_flow()]
    );
    // Another exporter, or another observation domain, has its own templates.
    assert_eq!(
        c.handle_datagram(exporter(2), &data_only)
            .unknown_template_sets,
        1
    );
    let other_domain = MessageBuilder::ipfix(8, 1).data(256, &recs).build();
    assert_eq!(
        c.handle_datagram(exporter(1), &other_domain)
            .unknown_template_sets,
        1
    );
    assert_eq!(c.counts().unknown_template_sets, 3);

    // Withdrawn: back to unknown.
    let withdraw = MessageBuilder::ipfix(7, 1).withdraw(256).build();
    assert_eq!(
        c.handle_datagram(exporter(1), &withdraw)
            .templates_withdrawn,
        1
    );
    assert_eq!(
        c.handle_datagram(exporter(1), &data_only)
            .unknown_template_sets,
        1
    );
    assert_eq!(c.template_count(), 0);
}

#[test]
fn withdraw_all_removes_every_data_template_of_the_exporter_and_domain() {
    let mut c = Collector::new();
    let mut b = MessageBuilder::ipfix(7, 1);
    let t = b.flow_template(false);
    b.template(256, &t)
        .template(257, &t)
        .withdraw(2)
        .template(258, &t);
    let out = c.handle_datagram(exporter(1), &b.build());
    assert_eq!((out.templates_learned, out.templates_withdrawn), (3, 2));
    assert_eq!(c.template_count(), 1);
}

#[test]
fn variable_length_and_enterprise_fields_are_passed_over() {
    let mut fields = vec![
        FieldSpec {
            element: 100,
            enterprise: 9,
            length: VARIABLE_LENGTH,
        },
        FieldSpec::iana(82, VARIABLE_LENGTH), // interfaceName
    ];
    let b0 = MessageBuilder::ipfix(1, 1);
    fields.extend(b0.flow_template(false));
    fields.push(FieldSpec {
        element: 5,
        enterprise: 29305,
        length: 4,
    });
    let mut rec = vec![3, b'a', b'b', b'c', 255, 0x01, 0x00];
    rec.extend(std::iter::repeat_n(b'x', 256));
    b0.flow_record(&pump_flow(), &mut rec);
    rec.extend_from_slice(&[1, 2, 3, 4]);
    let msg = b0.clone().template(300, &fields).data(300, &rec).build();
    let out = Collector::new().handle_datagram(exporter(1), &msg);
    assert_eq!(out.error, None);
    assert_eq!(out.flows, vec![pump_flow()]);
}

#[test]
fn rfc5103_biflow_reverse_counters_fill_the_responder_side() {
    let b = MessageBuilder::ipfix(7, 1_764_151_300);
    let mut t = b.flow_template(false);
    let rev = |element, length| FieldSpec {
        element,
        enterprise: REVERSE_PEN,
        length,
    };
    t.extend([
        rev(ie::OCTET_DELTA_COUNT, 4),
        rev(ie::PACKET_DELTA_COUNT, 2),
    ]);
    let mut rec = Vec::new();
    b.flow_record(&pump_flow(), &mut rec);
    rec.extend_from_slice(&3820u32.to_be_bytes());
    rec.extend_from_slice(&8u16.to_be_bytes());
    let msg = b.clone().template(256, &t).data(256, &rec).build();
    let out = Collector::new().handle_datagram(exporter(1), &msg);
    assert_eq!(out.error, None);
    let mut expected = pump_flow();
    expected.resp_bytes = 3820;
    expected.resp_packets = 8;
    assert_eq!(out.flows, vec![expected]);

    // A reverse MAC of the wrong length is a malformed template like any other.
    let bad = b
        .clone()
        .template(256, &[rev(ie::SOURCE_MAC_ADDRESS, 4)])
        .build();
    let e = Collector::new()
        .handle_datagram(exporter(1), &bad)
        .error
        .unwrap();
    assert!(
        e.to_string().contains("length 4, expected one of [6]"),
        "{e}"
    );
}

#[test]
fn netflow_v9_options_templates_and_their_data_are_read_and_not_flows() {
    // Scope: System (type 1 in v9's scope numbering, not octetDeltaCount), 4
    // bytes; option: samplingInterval (34), 4 bytes.
    let mut b = MessageBuilder::netflow_v9(42, 1_764_151_300, 1000);
    b.options_template(300, 1, &[FieldSpec::iana(1, 4), FieldSpec::iana(34, 4)]);
    b.data(300, &[0, 0, 0, 1, 0, 0, 0, 100]);
    let mut c = Collector::new();
    let out = c.handle_datagram(exporter(1), &b.build());
    assert_eq!(out.error, None);
    assert_eq!(
        (
            out.templates_learned,
            out.records_not_flows,
            out.flows.len()
        ),
        (1, 1, 0)
    );

    // A scope length that is not a whole number of field specifiers is refused.
    let mut bad = MessageBuilder::netflow_v9(42, 1, 1).build();
    bad.extend_from_slice(&[0, 1, 0, 12, 1, 44, 0, 3, 0, 4, 0, 0]);
    let e = c.handle_datagram(exporter(1), &bad).error.unwrap();
    assert!(e.to_string().contains("multiples of 4"), "{e}");
}

#[test]
fn netflow_v9_times_are_made_absolute_from_sys_uptime() {
    let export_s = 1_764_151_300;
    let mut b = MessageBuilder::netflow_v9(42, export_s, 3_600_000);
    let mut f = pump_flow();
    f.source = FlowSource::NetflowV9;
    let msg = message_with(&mut b, &[f.clone()]);
    let out = Collector::new().handle_datagram(exporter(1), &msg);
    assert_eq!(out.error, None);
    assert_eq!(out.protocol, Some(ExportProtocol::NetflowV9));
    assert_eq!(out.flows, vec![f]);
}

#[test]
fn options_data_is_not_a_flow_but_its_init_time_anchors_ipfix_sys_uptime() {
    use ie::*;
    let mut b = MessageBuilder::ipfix(7, 1_764_151_300);
    b.options_template(
        400,
        1,
        &[
            FieldSpec::iana(149, 4),
            FieldSpec::iana(SYSTEM_INIT_TIME_MILLISECONDS, 8),
        ],
    );
    let mut opt = 7u32.to_be_bytes().to_vec();
    opt.extend_from_slice(&1_764_000_000_000u64.to_be_bytes());
    b.data(400, &opt);
    let t = [
        FieldSpec::iana(SOURCE_IPV4_ADDRESS, 4),
        FieldSpec::iana(DESTINATION_IPV4_ADDRESS, 4),
        FieldSpec::iana(PROTOCOL_IDENTIFIER, 1),
        FieldSpec::iana(ICMP_TYPE_CODE_IPV4, 2),
        FieldSpec::iana(FLOW_START_SYS_UP_TIME, 4),
        FieldSpec::iana(OCTET_DELTA_COUNT, 4),
    ];
    b.template(256, &t);
    let mut rec = vec![10, 20, 0, 15, 10, 20, 0, 1, 1, 8, 0];
    rec.extend_from_slice(&5_000u32.to_be_bytes());
    rec.extend_from_slice(&84u32.to_be_bytes());
    b.data(256, &rec);
    let mut c = Collector::new();
    let out = c.handle_datagram(exporter(1), &b.build());
    assert_eq!(out.error, None);
    assert_eq!(out.records_not_flows, 1);
    let f = &out.flows[0];
    assert_eq!(f.start_us, 1_764_000_005_000_000);
    assert_eq!(
        (f.transport, f.orig_port, f.resp_port, f.orig_bytes),
        (Transport::Icmp, 8, 0, 84)
    );
    assert_eq!(f.duration_us, None);

    // An absurd init time gives no start rather than an overflow.
    let mut huge = MessageBuilder::ipfix(7, 1);
    huge.options_template(
        400,
        1,
        &[
            FieldSpec::iana(149, 4),
            FieldSpec::iana(SYSTEM_INIT_TIME_MILLISECONDS, 8),
        ],
    );
    let mut opt = 7u32.to_be_bytes().to_vec();
    opt.extend_from_slice(&(i64::MAX as u64).to_be_bytes());
    huge.data(400, &opt).template(256, &t).data(256, &rec);
    let out = Collector::new().handle_datagram(exporter(1), &huge.build());
    assert_eq!(
        (out.error, out.flows.len(), out.records_not_flows),
        (None, 0, 2)
    );

    // Without an init time, a sysUpTime-only record has no start: skipped, counted.
    let mut b2 = MessageBuilder::ipfix(7, 1);
    b2.template(256, &t).data(256, &rec);
    let out = Collector::new().handle_datagram(exporter(1), &b2.build());
    assert_eq!((out.flows.len(), out.records_not_flows), (0, 1));
}

#[test]
fn malformed_templates_are_refused_with_offsets_and_change_nothing() {
    let mut c = Collector::new();
    let good = MessageBuilder::ipfix(1, 1).flow_template(false);
    // A good template, then one whose IPv4 address is 6 bytes long.
    let mut b = MessageBuilder::ipfix(1, 1);
    b.template(256, &good)
        .template(257, &[FieldSpec::iana(ie::SOURCE_IPV4_ADDRESS, 6)]);
    let out = c.handle_datagram(exporter(1), &b.build());
    let header_and_first_set = 16 + 4 + 4 + good.len() * 4;
    assert_eq!(
        out.error,
        Some(DecodeError::MalformedTemplate {
            offset: header_and_first_set + 4,
            template_id: 257,
            problem: format!(
                "field 8 at offset {}: length 6, expected one of [4]",
                header_and_first_set + 8
            ),
        })
    );
    assert_eq!((out.templates_learned, c.template_count()), (0, 0));
    assert_eq!(c.counts().malformed_datagrams, 1);

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            MessageBuilder::ipfix(1, 1).template(12, &good).build(),
            "reserved",
        ),
        (
            MessageBuilder::ipfix(1, 1)
                .options_template(300, 0, &[FieldSpec::iana(149, 4)])
                .build(),
            "scope field count 0",
        ),
        (
            MessageBuilder::netflow_v9(1, 1, 1)
                .template(300, &[FieldSpec::iana(82, VARIABLE_LENGTH)])
                .build(),
            "no variable-length",
        ),
        (
            MessageBuilder::ipfix(1, 1)
                .template(300, &[FieldSpec::iana(82, 0)])
                .build(),
            "length 0",
        ),
    ];
    for (msg, needle) in cases {
        let e = c
            .handle_datagram(exporter(1), &msg)
            .error
            .expect(needle)
            .to_string();
        assert!(e.contains(needle), "{e}");
    }
    assert_eq!(c.template_count(), 0);
}

#[test]
fn truncated_and_inconsistent_messages_name_the_offset() {
    let mut c = Collector::new();
    let mut b = MessageBuilder::ipfix(7, 1);
    let msg = message_with(&mut b, &[pump_flow()]);
    let cut = &msg[..msg.len() - 3];
    assert_eq!(
        c.handle_datagram(exporter(1), cut).error,
        Some(DecodeError::LengthMismatch {
            declared: msg.len(),
            actual: msg.len() - 3
        })
    );
    // A set claiming more bytes than the message holds.
    let mut bad = msg.clone();
    bad[18..20].copy_from_slice(&2000u16.to_be_bytes());
    match c.handle_datagram(exporter(1), &bad).error {
        Some(DecodeError::Truncated {
            offset: 20,
            what: "set body",
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.handle_datagram(exporter(1), &[0, 5, 0, 0]).error,
        Some(DecodeError::UnsupportedVersion(5))
    );
    // A variable-length field running past its set.
    let mut b = MessageBuilder::ipfix(1, 1);
    b.template(256, &[FieldSpec::iana(82, VARIABLE_LENGTH)])
        .data(256, &[200, 1, 2]);
    match c.handle_datagram(exporter(1), &b.build()).error {
        Some(DecodeError::MalformedRecord {
            template_id: 256,
            problem,
            ..
        }) => {
            assert!(problem.contains("needs 200 bytes, 2 left"), "{problem}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.counts().flows, 0);
    assert_eq!(c.template_count(), 0);
}

#[test]
fn the_template_cache_is_bounded_against_floods() {
    let mut c = Collector::new();
    let t = [FieldSpec::iana(ie::SOURCE_IPV4_ADDRESS, 4)];
    let mut refused = 0;
    for i in 0..(MAX_TEMPLATES + 10) {
        let msg = MessageBuilder::ipfix(i as u32, 1).template(256, &t).build();
        refused += c.handle_datagram(exporter(1), &msg).templates_refused;
    }
    assert_eq!(c.template_count(), MAX_TEMPLATES);
    assert_eq!(refused, 10);
    assert_eq!(c.counts().templates_refused, 10);
}

fn arb_flow(v6: bool, protocol: ExportProtocol) -> impl Strategy<Value = Flow> {
    let addr = move || {
        if v6 {
            any::<u128>()
                .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                .boxed()
        } else {
            any::<u32>()
                .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                .boxed()
        }
    };
    (
        (1_000_000_000i64..1_764_151_300).prop_map(|s| s * 1000),
        proptest::option::of(0u64..3_000_000),
        prop_oneof![Just(6u8), Just(17u8), Just(1u8), Just(132u8)],
        addr(),
        addr(),
        any::<u16>(),
        any::<u16>(),
        proptest::option::of(any::<[u8; 6]>().prop_filter("non-zero", |m| *m != [0; 6])),
        proptest::option::of(any::<[u8; 6]>().prop_filter("non-zero", |m| *m != [0; 6])),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            move |(ms, dur_ms, proto, a, b, p1, p2, m1, m2, bytes, pkts)| {
                let transport = match (proto, v6) {
                    (1, true) => Transport::Icmpv6,
                    (n, _) => Transport::from_iana(n),
                };
                let (orig_port, resp_port) = match transport {
                    Transport::Icmp | Transport::Icmpv6 => (p1 & 0xff, p2 & 0xff),
                    _ => (p1, p2),
                };
                Flow {
                    start_us: ms * 1000,
                    duration_us: dur_ms.map(|d| d * 1000),
                    transport,
                    orig_addr: a,
                    orig_port,
                    resp_addr: b,
                    resp_port,
                    orig_mac: m1.map(ObservedMac),
                    resp_mac: m2.map(ObservedMac),
                    orig_bytes: bytes,
                    resp_bytes: 0,
                    orig_packets: pkts,
                    resp_packets: 0,
                    source: match protocol {
                        ExportProtocol::Ipfix => FlowSource::Ipfix,
                        ExportProtocol::NetflowV9 => FlowSource::NetflowV9,
                    },
                    sensor_uid: None,
                    conn_state: None,
                }
            },
        )
}

/// The encoder writes zero MACs for absent ones; the decoder reads them back as
/// the zero address, which is what the wire said.
fn as_decoded(mut f: Flow) -> Flow {
    f.orig_mac = Some(f.orig_mac.unwrap_or(ObservedMac([0; 6])));
    f.resp_mac = Some(f.resp_mac.unwrap_or(ObservedMac([0; 6])));
    f.duration_us = Some(f.duration_us.unwrap_or(0));
    f
}

proptest! {
    #[test]
    fn random_flows_survive_ipfix_encoding(
        flows in (any::<bool>()).prop_flat_map(|v6| proptest::collection::vec(arb_flow(v6, ExportProtocol::Ipfix), 1..20).prop_map(move |f| (v6, f))),
    ) {
        let (v6_flows, flows) = flows;
        let mut b = MessageBuilder::ipfix(3, 1_764_151_300);
        let t = b.flow_template(v6_flows);
        b.template(256, &t);
        let mut recs = Vec::new();
        for f in &flows { b.flow_record(f, &mut recs); }
        b.data(256, &recs);
        let out = Collector::new().handle_datagram(exporter(1), &b.build());
        prop_assert_eq!(out.error, None);
        prop_assert_eq!(out.flows, flows.into_iter().map(as_decoded).collect::<Vec<_>>());
    }

    #[test]
    fn random_flows_survive_netflow_v9_encoding(
        flows in proptest::collection::vec(arb_flow(false, ExportProtocol::NetflowV9), 1..20),
    ) {
        // The exporter's uptime must reach back to the oldest flow (v9 times are u32 ms of uptime).
        let export_s = 1_764_151_400u32;
        // Within the last ~35 days of the export time.
        let flows: Vec<Flow> = flows.into_iter().map(|mut f| {
            f.start_us = (i64::from(export_s) * 1000 - (f.start_us / 1000) % 3_000_000_000) * 1000;
            f
        }).collect();
        let oldest_ms = flows.iter().map(|f| f.start_us / 1000).min().unwrap_or(0);
        let uptime = u32::try_from(i64::from(export_s) * 1000 - oldest_ms).ok();
        prop_assert!(uptime.is_some());
        let mut b = MessageBuilder::netflow_v9(9, export_s, uptime.unwrap_or(0));
        let t = b.flow_template(false);
        b.template(256, &t);
        let mut recs = Vec::new();
        for f in &flows { b.flow_record(f, &mut recs); }
        b.data(256, &recs);
        let out = Collector::new().handle_datagram(exporter(1), &b.build());
        prop_assert_eq!(out.error, None);
        prop_assert_eq!(out.flows, flows.into_iter().map(as_decoded).collect::<Vec<_>>());
    }

    /// Garbage, or garbage after a valid template, never panics, and a refused
    /// datagram leaves the cache as it was.
    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), v9 in any::<bool>()) {
        let mut c = Collector::new();
        let mut b = if v9 { MessageBuilder::netflow_v9(1, 1, 1) } else { MessageBuilder::ipfix(1, 1) };
        let t = b.flow_template(false);
        c.handle_datagram(exporter(1), &b.template(256, &t).build());
        let before = c.template_count();
        let out = c.handle_datagram(exporter(1), &bytes);
        if out.error.is_some() {
            prop_assert_eq!(c.template_count(), before);
            prop_assert!(out.flows.is_empty());
        }
        // The same bytes behind a valid header.
        let mut framed = if v9 { MessageBuilder::netflow_v9(1, 1, 1) } else { MessageBuilder::ipfix(1, 1) }.build();
        framed.extend_from_slice(&bytes);
        if !v9 {
            let len = framed.len().min(65535) as u16;
            framed[2..4].copy_from_slice(&len.to_be_bytes());
        }
        let _ = c.handle_datagram(exporter(1), &framed);
    }
}
