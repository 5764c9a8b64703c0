use super::*;
use proptest::prelude::*;

const HEADER: &str = "#separator \\x09
#set_separator\t,
#empty_field\t(empty)
#unset_field\t-
#path\tconn
#open\t2026-11-26-10-00-00
#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\torig_l2_addr\tresp_l2_addr
#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tstring\tstring
";

const LINE: &str = "1764151200.123456\tCHhAvVGS1DHFjwGM9\t10.20.0.15\t49152\t10.30.0.5\t443\ttcp\tssl\t1.500000\t1200\t3400\tSF\tT\tT\t0\tShADadFf\t10\t1720\t8\t3820\t(empty)\t00:11:22:33:44:55\taa:bb:cc:dd:ee:ff";

fn parse_all(text: &str) -> (Vec<Result<Flow, RecordError>>, ConnLogCounts) {
    let mut r = ConnLogReader::new(text.as_bytes());
    let items: Vec<_> = r.by_ref().collect();
    (items, r.counts().clone())
}

#[test]
fn a_full_tsv_line_becomes_a_flow_with_ip_bytes_macs_uid_and_state() {
    let (items, counts) = parse_all(&format!("{HEADER}{LINE}\n#close\t2026-11-26-11-00-00\n"));
    assert_eq!(items.len(), 1);
    let f = items[0].as_ref().unwrap();
    assert_eq!(f.start_us, 1_764_151_200_123_456);
    assert_eq!(f.duration_us, Some(1_500_000));
    assert_eq!(f.transport, Transport::Tcp);
    assert_eq!(f.orig_addr, "10.20.0.15".parse::<IpAddr>().unwrap());
    assert_eq!((f.orig_port, f.resp_port), (49152, 443));
    assert_eq!((f.orig_bytes, f.resp_bytes), (1720, 3820));
    assert_eq!((f.orig_packets, f.resp_packets), (10, 8));
    assert_eq!(
        f.orig_mac,
        Some(ObservedMac([0, 0x11, 0x22, 0x33, 0x44, 0x55]))
    );
    assert_eq!(f.resp_mac.unwrap().to_string(), "aa:bb:cc:dd:ee:ff");
    assert_eq!(f.sensor_uid.unwrap().as_str(), "CHhAvVGS1DHFjwGM9");
    assert_eq!(f.conn_state, Some(ConnState::SF));
    assert_eq!(f.source, FlowSource::ZeekConnLog);
    assert_eq!(counts.parsed, 1);
    assert_eq!(counts.total_skipped(), 0);
}

#[test]
fn reordered_and_missing_optional_columns_are_mapped_by_name() {
    let text = "#separator \\x09\n#fields\tproto\tid.resp_p\tid.resp_h\tid.orig_p\tid.orig_h\tts\n\
                udp\t53\tfd00::53\t5353\tfd00::15\t1764151200\n";
    let (items, _) = parse_all(text);
    let f = items[0].as_ref().unwrap();
    assert_eq!(f.transport, Transport::Udp);
    assert_eq!(f.resp_addr, "fd00::53".parse::<IpAddr>().unwrap());
    assert_eq!((f.orig_port, f.resp_port), (5353, 53));
    assert_eq!(f.start_us, 1_764_151_200_000_000);
    assert_eq!(f.duration_us, None);
    assert_eq!((f.orig_bytes, f.orig_packets, f.orig_mac), (0, 0, None));
    assert_eq!(f.sensor_uid, None);
}

#[test]
fn a_header_without_a_required_column_is_refused_naming_it_and_its_lines_skipped() {
    let text = "#separator \\x09\n#fields\tts\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n\
                1.0\t1\t10.0.0.1\t2\tudp\n";
    let (items, counts) = parse_all(text);
    assert_eq!(items.len(), 2);
    let header = items[0].as_ref().unwrap_err();
    assert_eq!((header.line, header.reason), (2, SkipReason::BadHeader));
    assert!(header.detail.contains("id.orig_h"), "{header}");
    let data = items[1].as_ref().unwrap_err();
    assert_eq!((data.line, data.reason), (3, SkipReason::NoHeader));
    assert!(data.detail.contains("line 2"), "{data}");
    assert_eq!(counts.skipped(SkipReason::BadHeader), 1);
    assert_eq!(counts.skipped(SkipReason::NoHeader), 1);
    assert_eq!(counts.parsed, 0);
}

#[test]
fn a_column_of_the_wrong_type_or_another_log_is_refused() {
    let text = "#separator \\x09\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n\
                #types\ttime\tstring\tport\taddr\tport\tenum\n";
    let (items, _) = parse_all(text);
    let e = items[0].as_ref().unwrap_err();
    assert_eq!(e.reason, SkipReason::BadHeader);
    assert!(
        e.detail.contains("id.orig_h") && e.detail.contains("addr"),
        "{e}"
    );

    let (items, _) = parse_all("#separator \\x09\n#path\tdns\n");
    assert!(items[0].as_ref().unwrap_err().detail.contains("dns"));
}

#[test]
fn each_bad_field_is_skipped_with_its_reason_line_and_column() {
    let good = LINE.to_owned();
    let cases: Vec<(String, SkipReason, Option<&str>)> = vec![
        (
            good.replace("10.20.0.15", "10.20.0.256"),
            SkipReason::UnparseableAddress,
            Some("id.orig_h"),
        ),
        (
            good.replace("\t49152\t", "\t65536\t"),
            SkipReason::BadPort,
            Some("id.orig_p"),
        ),
        (
            good.replace("\t1720\t", "\t17x0\t"),
            SkipReason::BadNumber,
            Some("orig_ip_bytes"),
        ),
        (
            good.replace("1764151200.123456", "XXXXXXXXXX.XXXXXX"),
            SkipReason::MaskedTimestamp,
            Some("ts"),
        ),
        (
            good.replace("1764151200.123456", "17641512OO"),
            SkipReason::BadTimestamp,
            Some("ts"),
        ),
        (
            good.replace("1764151200.123456", "-"),
            SkipReason::MissingValue,
            Some("ts"),
        ),
        (
            good.replace("\ttcp\t", "\tunknown_transport\t"),
            SkipReason::UnknownTransport,
            Some("proto"),
        ),
        (
            good.replace("00:11:22:33:44:55", "00:11:22:33:44"),
            SkipReason::BadMac,
            Some("orig_l2_addr"),
        ),
        (
            good.replace("\tSF\t", "\tSF\textra\t"),
            SkipReason::WrongFieldCount,
            None,
        ),
        (
            good.replace("\t(empty)\t", "\t"),
            SkipReason::WrongFieldCount,
            None,
        ),
    ];
    for (line, reason, column) in cases {
        let (items, counts) = parse_all(&format!("{HEADER}{LINE}\n{line}\n"));
        assert!(items[0].is_ok());
        let e = items[1].as_ref().unwrap_err();
        assert_eq!(e.line, 10, "{line}");
        assert_eq!(e.reason, reason, "{e}");
        assert_eq!(e.column.as_deref(), column, "{e}");
        assert_eq!((counts.parsed, counts.skipped(reason)), (1, 1));
    }
}

#[test]
fn the_real_bacnet_conn_log_is_refused_precisely_for_its_masked_timestamps() {
    let text = include_str!("../../tests/data/bacnet/bacnet_example.zeek-conn.log");
    let (items, counts) = parse_all(text);
    let data_lines = text.lines().filter(|l| !l.starts_with('#')).count() as u64;
    assert_eq!(data_lines, 357);
    assert_eq!(counts.skipped(SkipReason::MaskedTimestamp), data_lines);
    assert_eq!(counts.total_skipped(), data_lines);
    let first = items[0].as_ref().unwrap_err();
    assert_eq!((first.line, first.column.as_deref()), (10, Some("ts")));

    // With the mask replaced by a real time, every line parses: the header
    // handling and every other column agree with what Zeek wrote.
    let unmasked = text.replace("XXXXXXXXXX.XXXXXX", "1591367999.305988");
    let (items, counts) = parse_all(&unmasked);
    assert_eq!(
        counts.parsed,
        data_lines,
        "{:?}",
        items.iter().find(|i| i.is_err())
    );
    let f = items[0].as_ref().unwrap();
    assert_eq!(f.orig_addr.to_string(), "172.20.32.200");
    assert_eq!((f.orig_port, f.resp_port), (47808, 47808));
    assert_eq!(
        (f.orig_packets, f.orig_bytes, f.conn_state),
        (1, 40, Some(ConnState::S0))
    );
    assert_eq!(f.duration_us, None);
}

#[test]
fn json_lines_with_epoch_or_iso_timestamps() {
    let text = r#"{"ts":1764151200.123456,"uid":"Cx1","id.orig_h":"10.20.0.15","id.orig_p":68,"id.resp_h":"255.255.255.255","id.resp_p":67,"proto":"udp","duration":0.25,"orig_bytes":300,"orig_ip_bytes":328,"orig_pkts":1,"resp_pkts":0,"conn_state":"S0","orig_l2_addr":"00:11:22:33:44:55"}
{"ts":"2025-11-26T10:00:00.5Z","id.orig_h":"fe80::1","id.orig_p":135,"id.resp_h":"ff02::1","id.resp_p":0,"proto":"icmp"}
{"ts":"yesterday","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":2,"proto":"tcp"}
{"ts":1.0,"id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_p":2,"proto":"tcp"}
{"ts":1.0,"id.orig_h":"pump-7","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":2,"proto":"tcp"}
"#;
    let (items, counts) = parse_all(text);
    let a = items[0].as_ref().unwrap();
    assert_eq!(a.start_us, 1_764_151_200_123_456);
    assert_eq!((a.orig_bytes, a.duration_us), (328, Some(250_000)));
    assert_eq!(a.orig_mac.unwrap().to_string(), "00:11:22:33:44:55");
    let b = items[1].as_ref().unwrap();
    assert_eq!(b.start_us, 1_764_151_200_500_000);
    assert_eq!(b.transport, Transport::Icmpv6);
    assert_eq!(
        items[2].as_ref().unwrap_err().reason,
        SkipReason::BadTimestamp
    );
    let missing = items[3].as_ref().unwrap_err();
    assert_eq!((missing.line, missing.reason), (4, SkipReason::BadJson));
    assert!(missing.detail.contains("id.resp_h"), "{missing}");
    let addr = items[4].as_ref().unwrap_err();
    assert_eq!(
        (addr.reason, addr.column.as_deref()),
        (SkipReason::UnparseableAddress, Some("id.orig_h"))
    );
    assert_eq!((counts.parsed, counts.total_skipped()), (2, 3));
}

#[test]
fn json_integer_timestamps_are_millis_or_whole_seconds() {
    let line = |ts: &str| {
        format!(
            r#"{{"ts":{ts},"id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":2,"proto":"udp"}}"#
        )
    };
    let (items, _) = parse_all(
        &[
            line("1764151200123"),
            line("1764151200"),
            line("1764151200.5"),
            line("9223372036854775807"),
        ]
        .join("\n"),
    );
    assert_eq!(items[0].as_ref().unwrap().start_us, 1_764_151_200_123_000);
    assert_eq!(items[1].as_ref().unwrap().start_us, 1_764_151_200_000_000);
    assert_eq!(items[2].as_ref().unwrap().start_us, 1_764_151_200_500_000);
    assert_eq!(
        items[3].as_ref().unwrap_err().reason,
        SkipReason::BadTimestamp
    );
}

#[test]
fn close_then_a_new_header_block_mid_stream_is_taken_up() {
    let text = format!(
        "{HEADER}{LINE}\n#close\tx\n{LINE}\n#separator \\x09\n#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n\
         5.0\t10.0.0.1\t1\t10.0.0.2\t2\tudp\n"
    );
    let (items, counts) = parse_all(&text);
    assert!(items[0].is_ok());
    assert_eq!(items[1].as_ref().unwrap_err().reason, SkipReason::NoHeader);
    assert_eq!(items[2].as_ref().unwrap().start_us, 5_000_000);
    assert_eq!(counts.parsed, 2);
}

#[test]
fn a_custom_separator_and_unset_marker_are_honoured() {
    let text = "#separator \\x7c\n#unset_field|NONE\n#fields|ts|id.orig_h|id.orig_p|id.resp_h|id.resp_p|proto|duration\n\
                2.5|10.0.0.1|1|10.0.0.2|2|tcp|NONE\n";
    let (items, _) = parse_all(text);
    let f = items[0].as_ref().unwrap();
    assert_eq!((f.start_us, f.duration_us), (2_500_000, None));
}

#[test]
fn the_follower_keeps_a_partial_line_until_its_newline() {
    let text = format!("{HEADER}{LINE}\n{LINE}\n");
    let mut f = ConnLogFollower::new();
    let mut out = Vec::new();
    let cut = text.len() - 30;
    f.feed(&text.as_bytes()[..cut], &mut |r| out.push(r));
    assert_eq!(out.len(), 1);
    assert_eq!(f.pending(), LINE.len() - 29);
    f.feed(&text.as_bytes()[cut..], &mut |r| out.push(r));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], out[1]);
    assert_eq!(f.pending(), 0);

    // A last line without newline only counts once the file is finished.
    f.feed(b"1.0\tC\t10.0.0.1\t1", &mut |r| out.push(r));
    assert_eq!(out.len(), 2);
    f.finish(&mut |r| out.push(r));
    let e = out[2].as_ref().unwrap_err();
    assert_eq!((e.line, e.reason), (11, SkipReason::WrongFieldCount));
}

#[test]
fn an_overlong_line_is_dropped_and_counted_once() {
    let mut f = ConnLogFollower::new();
    let mut out = Vec::new();
    f.feed(HEADER.as_bytes(), &mut |r| out.push(r));
    let junk = vec![b'a'; MAX_LINE_BYTES / 2 + 1];
    f.feed(&junk, &mut |r| out.push(r));
    f.feed(&junk, &mut |r| out.push(r));
    assert_eq!(f.pending(), 0);
    f.feed(format!("tail\n{LINE}\n").as_bytes(), &mut |r| out.push(r));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].as_ref().unwrap_err().reason, SkipReason::LineTooLong);
    assert!(out[1].is_ok());

    let text = format!("{HEADER}{}\n{LINE}\n", "b".repeat(MAX_LINE_BYTES + 5));
    let (items, counts) = parse_all(&text);
    assert_eq!(
        items[0].as_ref().unwrap_err().reason,
        SkipReason::LineTooLong
    );
    assert_eq!(items[0].as_ref().unwrap_err().line, 9);
    assert_eq!(items[1].as_ref().unwrap().orig_port, 49152);
    assert_eq!(counts.parsed, 1);
}

proptest! {
    /// The fast IPv4 path agrees with the standard parser on every input.
    #[test]
    fn fast_ipv4_agrees_with_std(a in any::<[u8; 4]>(), junk in "[0-9.]{0,16}") {
        let text = std::net::Ipv4Addr::from(a).to_string();
        prop_assert_eq!(parse_addr(text.as_bytes()), Some(IpAddr::V4(a.into())));
        prop_assert_eq!(parse_addr(junk.as_bytes()), junk.parse::<IpAddr>().ok());
    }

    /// Whatever the chunking, following a file gives what reading it whole gives.
    #[test]
    fn follower_matches_reader_for_any_chunking(cuts in proptest::collection::vec(0usize..2000, 0..8)) {
        let text = format!("{HEADER}{LINE}\nbad\n{LINE}\n#close\tx\n{HEADER}{LINE}\n");
        let (whole, counts) = parse_all(&text);
        let mut cuts = cuts.into_iter().map(|c| c % (text.len() + 1)).collect::<Vec<_>>();
        cuts.sort_unstable();
        let mut f = ConnLogFollower::new();
        let mut out = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([text.len()]) {
            f.feed(&text.as_bytes()[at..c], &mut |r| out.push(r));
            at = c;
        }
        f.finish(&mut |r| out.push(r));
        prop_assert_eq!(&out, &whole);
        prop_assert_eq!(f.counts(), &counts);
    }

    /// Timestamps round-trip through Zeek's six-decimal text exactly.
    #[test]
    fn epoch_text_round_trips(us in 0i64..4_000_000_000_000_000) {
        let text = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        prop_assert_eq!(parse_epoch_us(text.as_bytes()), Ok(us));
    }

    /// Any bytes: no panic, and parsed + skipped accounts for every item.
    #[test]
    fn arbitrary_lines_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut input = HEADER.as_bytes().to_vec();
        input.extend_from_slice(&body);
        let mut r = ConnLogReader::new(input.as_slice());
        let n = r.by_ref().count() as u64;
        prop_assert_eq!(r.counts().parsed + r.counts().total_skipped(), n);
    }
}
