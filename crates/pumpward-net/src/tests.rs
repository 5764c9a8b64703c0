use std::net::IpAddr;

use proptest::prelude::*;
use pumpward_core::inventory::{Answer, Capabilities, DeviceModel, MacAddress};
use pumpward_flow::{Flow, FlowSource, ObservedMac, Transport};

use crate::eval::{Allowance, Side, ZoneRef};
use crate::observed::{ObservedConduits, UnknownDevices};
use crate::presence::{DeviceKey, PresenceTracker, Sighting};
use crate::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac(s: &str) -> MacAddress {
    s.parse().unwrap()
}

fn pump(id: &str, addr: &str, m: &str) -> AssetIdentity {
    AssetIdentity {
        asset_id: id.parse().unwrap(),
        zone: "infusion-pump".into(),
        manufacturer: Some("Acme".into()),
        model: Some("LVP-1".into()),
        admission: Admission::Mab,
        macs: vec![mac(m)],
        addresses: vec![AddressBinding::always(ip(addr))],
    }
}

fn server(id: &str, addr: &str) -> AssetIdentity {
    AssetIdentity {
        asset_id: id.parse().unwrap(),
        zone: "pump-server".into(),
        manufacturer: None,
        model: None,
        admission: Admission::Mab,
        macs: vec![mac("02:00:00:00:21:10")],
        addresses: vec![AddressBinding::always(ip(addr))],
    }
}

fn flow(t: Transport, from: &str, sport: u16, to: &str, dport: u16) -> Flow {
    Flow {
        start_us: 1_700_000_000_000_000,
        duration_us: Some(1000),
        transport: t,
        orig_addr: ip(from),
        orig_port: sport,
        resp_addr: ip(to),
        resp_port: dport,
        orig_mac: None,
        resp_mac: None,
        orig_bytes: 100,
        resp_bytes: 200,
        orig_packets: 1,
        resp_packets: 1,
        source: FlowSource::ZeekConnLog,
        sensor_uid: None,
        conn_state: None,
    }
}

fn fleet() -> Vec<AssetIdentity> {
    vec![
        pump("PUMP-1", "10.20.0.10", "02:00:00:00:20:10"),
        pump("PUMP-2", "10.20.0.11", "02:00:00:00:20:11"),
        server("PS-1", "10.21.0.10"),
    ]
}

#[test]
fn starter_policy_parses_and_is_clean() {
    let p = starter_policy();
    assert_eq!(p.zones.len(), 8);
    for z in [
        "infusion-pump",
        "pump-server",
        "biomed",
        "enterprise",
        "clinical-systems",
        "security-services",
        "vendor-remote-access",
        "guest",
    ] {
        assert!(p.zone(z).is_some(), "{z}");
    }
    let d = check(&p, &[], &[]);
    assert!(d.is_empty(), "{d:#?}");
    // Guest reaches nothing.
    assert!(!p
        .conduits
        .iter()
        .any(|c| c.from == "guest" || c.to == "guest"));
    // Pumps reach only the pump server and the security services.
    for c in p.conduits.iter().filter(|c| c.from == "infusion-pump") {
        assert!(
            c.to == "pump-server" || c.to == "security-services",
            "{}",
            c.name
        );
    }
}

#[test]
fn export_then_import_is_identity_for_the_starter() {
    let d = PolicyDocument::from_toml(STARTER_POLICY_TOML).unwrap();
    let text = d.to_toml();
    let again = PolicyDocument::from_toml(&text).unwrap();
    assert_eq!(again, d);
    assert_eq!(again.to_toml(), text, "export is canonical");
}

#[test]
fn toml_errors_keep_line_and_column() {
    let text =
        "name = \"x\"\n\n[[zone]]\nname = \"a\"\npurpose = \"p\"\nsubnets = [\"10.0.0.1/8\"]\n";
    match PolicyDocument::from_toml(text) {
        Err(PolicyError::Toml {
            line,
            column,
            message,
        }) => {
            assert_eq!(line, 6, "{message}");
            assert!(column > 1);
            assert!(message.contains("did you mean 10.0.0.0/8"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match PolicyDocument::from_toml("name = \"x\"\n[[zone]]\nnmae = \"a\"\n") {
        Err(PolicyError::Toml { line, message, .. }) => {
            assert_eq!(line, 3, "{message}");
            assert!(message.contains("nmae"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_zone_names_the_conduit_and_the_zone() {
    let text = STARTER_POLICY_TOML.replace("to = \"clinical-systems\"", "to = \"ehr\"");
    let e = PolicyDocument::from_toml(&text).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("conduit \"pump-server-to-ehr\" to: zone \"ehr\" is not a zone of this policy"),
        "{s}"
    );
}

#[test]
fn bad_values_are_refused_with_their_place() {
    let base = "name = \"x\"\n[[zone]]\nname = \"a\"\npurpose = \"p\"\n[[conduit]]\nname = \"c\"\nfrom = \"a\"\nto = \"a\"\npurpose = \"p\"\n";
    for (extra, want) in [
        ("transport = \"tcp\"\nports = [0]\n", "port 0"),
        ("transport = \"tcp\"\nports = [70000]\n", "outside 1-65535"),
        ("transport = \"tcp\"\nports = [\"9-3\"]\n", "reversed"),
        ("transport = \"sctp\"\n", "sctp"),
        ("transport = \"icmp\"\nports = [1]\n", "has no ports"),
        (
            "transport = \"tcp\"\ndirection = \"sideways\"\n",
            "sideways",
        ),
    ] {
        let e = PolicyDocument::from_toml(&format!("{base}{extra}")).unwrap_err();
        assert!(e.to_string().contains(want), "{extra}: {e}");
    }
    let e = PolicyDocument::from_toml(
        "name = \"x\"\n[[zone]]\nname = \"Pumps_A\"\npurpose = \"p\"\nvlans = [5000]\n[[zone]]\nname = \"internet\"\npurpose = \"p\"\n",
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(s.contains("\"Pumps_A\" is not a name"), "{s}");
    assert!(s.contains("VLAN 5000"), "{s}");
    assert!(s.contains("reserved"), "{s}");
    assert!(matches!(
        PolicyDocument::from_toml(&" ".repeat(policy::MAX_POLICY_BYTES + 1)),
        Err(PolicyError::TooLarge(_))
    ));
}

#[test]
fn assets_round_trip_with_times() {
    let mut d = PolicyDocument::from_toml(STARTER_POLICY_TOML).unwrap();
    let mut p = pump("PUMP-1", "10.20.0.10", "02:00:00:00:20:10");
    p.addresses.push(AddressBinding {
        ip: ip("fd00:20::10"),
        valid_from: Some(1_700_000_000_123_456),
        valid_until: Some(1_800_000_000_000_000),
    });
    p.admission = Admission::EapTls;
    d.assets.push(p);
    let text = d.to_toml();
    assert!(text.contains("2023-11-14T22:13:20.123456Z"), "{text}");
    assert_eq!(PolicyDocument::from_toml(&text).unwrap(), d);
}

fn model(eap: Answer) -> DeviceModel {
    DeviceModel::new(
        "Acme",
        "LVP-1",
        None,
        Capabilities {
            eap_tls: eap,
            ..Capabilities::default()
        },
    )
    .unwrap()
}

fn findings(d: &[Diagnostic]) -> Vec<(Finding, String)> {
    d.iter().map(|d| (d.finding, d.subject.clone())).collect()
}

#[test]
fn check_reports_admission_the_model_cannot_do() {
    let p = starter_policy();
    let mut a = pump("PUMP-1", "10.20.0.10", "02:00:00:00:20:10");
    a.admission = Admission::EapTls;
    let d = check(&p, std::slice::from_ref(&a), &[model(Answer::No)]);
    assert_eq!(
        findings(&d),
        vec![(Finding::AdmissionUnsupported, "asset \"PUMP-1\"".into())]
    );
    assert_eq!(d[0].severity, Severity::Error);
    assert!(check(&p, std::slice::from_ref(&a), &[model(Answer::Yes)]).is_empty());
    let d = check(&p, std::slice::from_ref(&a), &[model(Answer::Unknown)]);
    assert_eq!(d[0].finding, Finding::AdmissionUnverified);
    assert_eq!(d[0].severity, Severity::Warning);
    let d = check(&p, std::slice::from_ref(&a), &[]);
    assert!(
        d[0].message.contains("not in the device catalogue"),
        "{d:?}"
    );
    // MAB needs no capability, but a MAC.
    a.admission = Admission::Mab;
    a.macs.clear();
    assert_eq!(check(&p, &[a], &[])[0].finding, Finding::MabWithoutMac);
}

#[test]
fn check_reports_addresses_outside_zone_and_held_twice() {
    let p = starter_policy();
    let mut a = pump("PUMP-1", "10.21.0.99", "02:00:00:00:20:10");
    let b = pump("PUMP-2", "10.20.0.10", "02:00:00:00:20:10");
    let mut c = pump("PUMP-3", "10.20.0.10", "02:00:00:00:20:13");
    c.addresses[0].valid_from = Some(5);
    a.addresses.push(AddressBinding::always(ip("10.20.0.10")));
    let d = check(&p, &[a, b, c], &[]);
    let f = findings(&d);
    assert!(
        f.contains(&(Finding::AddressOutsideZone, "asset \"PUMP-1\"".into())),
        "{f:?}"
    );
    assert!(
        f.contains(&(Finding::AddressHeldTwice, "asset \"PUMP-2\"".into())),
        "{f:?}"
    );
    assert!(
        f.contains(&(Finding::AddressHeldTwice, "asset \"PUMP-3\"".into())),
        "{f:?}"
    );
    assert!(
        f.contains(&(Finding::MacHeldTwice, "asset \"PUMP-2\"".into())),
        "{f:?}"
    );
    // Consecutive leases of one address are not a conflict.
    let mut x = pump("PUMP-4", "10.20.0.50", "02:00:00:00:20:50");
    let mut y = pump("PUMP-5", "10.20.0.50", "02:00:00:00:20:51");
    x.addresses[0].valid_until = Some(100);
    y.addresses[0].valid_from = Some(100);
    assert!(check(&p, &[x, y], &[]).is_empty());
}

#[test]
fn check_reports_overlaps_guest_conduits_duplicates_and_shadowing() {
    let mut p = starter_policy();
    p.zones[2].subnets.push("10.20.128.0/17".parse().unwrap());
    let mut guest = p.conduits[0].clone();
    guest.name = "guest-to-pumps".into();
    guest.from = "guest".into();
    guest.to = "infusion-pump".into();
    let mut dup = p.conduits[0].clone();
    dup.name = "again".into();
    let mut broad = p.conduits[0].clone();
    broad.name = "broad".into();
    broad.transport = TransportRule::Any;
    broad.ports.clear();
    let mut narrow = p.conduits[0].clone();
    narrow.name = "narrow".into();
    narrow.ports = vec![PortRange {
        first: 443,
        last: 443,
    }];
    narrow.transport = TransportRule::Tcp;
    let mut out = p.conduits[0].clone();
    out.name = "pump-cloud".into();
    out.to = "internet".into();
    p.conduits.push(guest);
    p.conduits.push(out);
    p.conduits.push(dup);
    p.conduits.insert(0, broad);
    p.conduits.push(narrow);
    let f = findings(&check(&p, &[], &[]));
    assert!(
        f.contains(&(Finding::OverlappingSubnets, "zone \"biomed\"".into())),
        "{f:?}"
    );
    assert!(
        f.contains(&(
            Finding::IsolatedZoneConduit,
            "conduit \"guest-to-pumps\"".into()
        )),
        "{f:?}"
    );
    assert!(
        f.contains(&(
            Finding::ShadowedConduit,
            "conduit \"pump-to-pump-server\"".into()
        )),
        "{f:?}"
    );
    assert!(
        f.contains(&(Finding::ShadowedConduit, "conduit \"narrow\"".into())),
        "{f:?}"
    );
    assert!(
        f.contains(&(
            Finding::DeviceZoneToInternet,
            "conduit \"pump-cloud\"".into()
        )),
        "{f:?}"
    );
    // "again" equals the original but is first covered by "broad".
    assert!(f.iter().any(|x| x.1 == "conduit \"again\""), "{f:?}");
    // Exact duplicates without a broader one before them.
    let mut q = starter_policy();
    let mut d2 = q.conduits[0].clone();
    d2.name = "copy".into();
    q.conduits.push(d2);
    assert_eq!(
        findings(&check(&q, &[], &[])),
        vec![(Finding::DuplicateConduit, "conduit \"copy\"".into())]
    );
    // A subset of ports in a later conduit is shadowed; a superset is not.
    let mut r = starter_policy();
    r.conduits[0].ports = vec!["400-500".parse().unwrap()];
    let mut sub = starter_policy().conduits[0].clone();
    sub.name = "sub".into();
    sub.ports = vec![PortRange::single(450)];
    let mut sup = sub.clone();
    sup.name = "sup".into();
    sup.ports = vec!["300-600".parse().unwrap()];
    r.conduits.push(sub);
    r.conduits.push(sup);
    assert_eq!(
        findings(&check(&r, &[], &[])),
        vec![(Finding::ShadowedConduit, "conduit \"sub\"".into())]
    );
}

#[test]
fn evaluation_verdicts() {
    let p = starter_policy();
    let ev = Evaluator::new(&p, &fleet()).unwrap();
    let name = |e: &Evaluation| match e.verdict {
        Verdict::Allowed(Allowance::Conduit(c)) => ev.conduit(c).unwrap().name.clone(),
        Verdict::Allowed(a) => format!("{a:?}"),
        Verdict::Violation(v) => v.kind().into(),
    };
    let cases = [
        (
            flow(Transport::Tcp, "10.20.0.10", 50000, "10.21.0.10", 443),
            "pump-to-pump-server",
        ),
        (
            flow(Transport::Tcp, "10.20.0.10", 50000, "10.40.0.5", 8444),
            "pump-to-gateway",
        ),
        (
            flow(Transport::Udp, "10.20.0.10", 5353, "10.40.0.5", 53),
            "pump-dns",
        ),
        (
            flow(Transport::Udp, "10.20.0.10", 123, "10.40.0.5", 123),
            "pump-ntp",
        ),
        (
            flow(Transport::Udp, "10.20.0.10", 1000, "10.40.0.5", 1813),
            "pump-radius",
        ),
        (
            flow(Transport::Tcp, "10.21.0.10", 40000, "10.30.1.2", 2575),
            "pump-server-to-ehr",
        ),
        (
            flow(Transport::Tcp, "10.20.0.10", 50000, "10.21.0.10", 22),
            "port_not_allowed",
        ),
        (
            flow(Transport::Udp, "10.20.0.10", 50000, "10.21.0.10", 443),
            "port_not_allowed",
        ),
        (
            flow(Transport::Tcp, "10.21.0.10", 443, "10.20.0.10", 50000),
            "wrong_direction",
        ),
        (
            flow(Transport::Tcp, "10.20.0.10", 50000, "10.30.1.2", 2575),
            "wrong_destination_zone",
        ),
        (
            flow(Transport::Tcp, "10.20.0.10", 50000, "93.184.216.34", 443),
            "device_to_internet",
        ),
        (
            flow(Transport::Tcp, "10.20.0.10", 50000, "10.20.0.11", 80),
            "east_west",
        ),
        (
            flow(Transport::Tcp, "10.20.0.99", 50000, "10.21.0.10", 443),
            "unknown_device",
        ),
        (
            flow(Transport::Tcp, "172.16.4.4", 50000, "10.40.0.5", 443),
            "wrong_destination_zone",
        ),
        (
            flow(Transport::Tcp, "10.50.1.1", 50000, "10.50.2.2", 445),
            "WithinZone",
        ),
        (
            flow(Transport::Tcp, "10.50.1.1", 50000, "93.184.216.34", 443),
            "enterprise-to-internet",
        ),
        (
            flow(Transport::Udp, "93.184.216.34", 500, "10.60.0.4", 500),
            "vendor-vpn",
        ),
        (
            flow(Transport::Udp, "0.0.0.0", 68, "255.255.255.255", 67),
            "LocalSegment",
        ),
        (
            flow(Transport::Tcp, "10.99.0.1", 50000, "10.40.0.5", 443),
            "wrong_destination_zone",
        ),
    ];
    for (f, want) in cases {
        let e = ev.evaluate(&f);
        assert_eq!(
            name(&e),
            want,
            "{} -> {}:{}",
            f.orig_addr,
            f.resp_addr,
            f.resp_port
        );
        assert!(!ev.describe(&e).is_empty());
    }
    let e = ev.evaluate(&flow(Transport::Tcp, "10.20.0.99", 1, "10.21.0.10", 443));
    assert!(matches!(
        e.verdict,
        Verdict::Violation(Violation::UnknownDevice {
            side: Side::Originator,
            ..
        })
    ));
    let e = ev.evaluate(&flow(Transport::Tcp, "10.99.0.1", 1, "10.40.0.5", 443));
    assert_eq!(e.orig.zone, ZoneRef::Unzoned);
    assert_eq!(
        ev.describe(&e),
        "no conduit from unzoned to security-services (default deny)"
    );
}

#[test]
fn flows_are_attributed_at_the_time_of_the_flow() {
    let p = starter_policy();
    let mut a = pump("PUMP-1", "10.20.0.10", "02:00:00:00:20:10");
    a.addresses[0].valid_until = Some(2_000);
    let mut b = pump("PUMP-2", "10.20.0.10", "02:00:00:00:20:11");
    b.addresses[0].valid_from = Some(2_000);
    let ev = Evaluator::new(&p, &[a, b]).unwrap();
    let mut f = flow(Transport::Tcp, "10.20.0.10", 1, "10.21.0.10", 443);
    f.start_us = 1_999;
    let who = |e: Evaluation| {
        ev.asset(e.orig.asset.unwrap())
            .unwrap()
            .asset_id
            .to_string()
    };
    assert_eq!(who(ev.evaluate(&f)), "PUMP-1");
    f.start_us = 2_000;
    assert_eq!(who(ev.evaluate(&f)), "PUMP-2");
    // An unknown address but a registered MAC: attributed by MAC.
    f.orig_addr = ip("10.20.7.7");
    f.orig_mac = Some(ObservedMac([2, 0, 0, 0, 0x20, 0x11]));
    assert_eq!(who(ev.evaluate(&f)), "PUMP-2");
}

#[test]
fn most_specific_subnet_wins_and_v6_works() {
    let mut p = starter_policy();
    p.zones[2].subnets.push("10.20.5.0/24".parse().unwrap());
    let ev = Evaluator::new(&p, &[]).unwrap();
    let z = |s: &str| ev.zone_name(ev.zone_of(ip(s))).to_owned();
    assert_eq!(z("10.20.5.9"), "biomed");
    assert_eq!(z("10.20.4.255"), "infusion-pump");
    assert_eq!(z("10.20.6.0"), "infusion-pump");
    assert_eq!(z("fd00:20::1"), "infusion-pump");
    assert_eq!(z("::ffff:10.21.0.3"), "pump-server");
    assert_eq!(z("fd99::1"), "unzoned");
    assert_eq!(z("2001:db8::1"), "internet");
}

#[test]
fn evaluator_refuses_an_inconsistent_policy() {
    let mut p = starter_policy();
    p.conduits[0].to = "nowhere".into();
    assert!(matches!(
        Evaluator::new(&p, &[]),
        Err(PolicyError::Invalid(_))
    ));
}

#[test]
fn observed_conduits_aggregate_and_sort() {
    let ev = Evaluator::new(&starter_policy(), &fleet()).unwrap();
    let mut o = ObservedConduits::new();
    for (i, f) in [
        flow(Transport::Tcp, "10.20.0.10", 1, "10.21.0.10", 443),
        flow(Transport::Tcp, "10.20.0.11", 2, "10.21.0.10", 443),
        flow(Transport::Tcp, "10.20.0.10", 3, "10.21.0.10", 22),
    ]
    .into_iter()
    .enumerate()
    {
        let mut f = f;
        f.start_us += i as i64 * 10;
        let e = ev.evaluate(&f);
        o.record(&f, &e);
    }
    let rows = o.rows(&ev);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].port, rows[0].flows, rows[0].violations),
        (22, 1, 1)
    );
    assert_eq!(rows[0].allowed_by, None);
    assert_eq!((rows[1].port, rows[1].flows, rows[1].bytes), (443, 2, 600));
    assert_eq!(rows[1].allowed_by.as_deref(), Some("pump-to-pump-server"));
    assert_eq!(rows[1].first_seen_us, 1_700_000_000_000_000);
    assert_eq!(rows[1].last_seen_us, 1_700_000_000_000_000 + 10 + 1000);
}

/// A port scan across zones cannot grow the observed conduits without
/// bound: beyond the limit, new rows are counted, and rows already listed
/// keep counting.
#[test]
fn observed_conduits_are_bounded_under_a_port_scan() {
    let ev = Evaluator::new(&starter_policy(), &fleet()).unwrap();
    let mut o = ObservedConduits::with_limit(100);
    let allowed = flow(Transport::Tcp, "10.20.0.10", 1, "10.21.0.10", 443);
    o.record(&allowed, &ev.evaluate(&allowed));
    for port in 1..=1000u16 {
        let f = flow(Transport::Tcp, "10.20.0.66", 5, "10.21.0.10", port);
        o.record(&f, &ev.evaluate(&f));
    }
    assert_eq!(o.len(), 100);
    // 443 and ports 1-99 were listed; ports 100-1000 but 443 were not.
    assert_eq!(o.flows_not_listed(), 900);
    o.record(&allowed, &ev.evaluate(&allowed));
    let rows = o.rows(&ev);
    let https = rows.iter().find(|r| r.port == 443).unwrap();
    assert_eq!(https.flows, 3);
    assert_eq!(o.flows_not_listed(), 900);
}

#[test]
fn unknown_devices_are_bounded_and_keep_counting_those_listed() {
    let mut u = UnknownDevices::with_limit(2);
    let m = Some([2, 0, 0, 0, 0, 9]);
    u.record("infusion-pump", ip("10.20.9.1"), m, 50);
    u.record("infusion-pump", ip("10.20.9.1"), m, 10);
    u.record("infusion-pump", ip("10.20.9.2"), None, 20);
    u.record("infusion-pump", ip("10.20.9.3"), None, 30);
    u.record("pump-server", ip("10.20.9.1"), m, 40);
    assert_eq!((u.len(), u.not_listed()), (2, 2));
    let (k, seen) = u.iter().next().unwrap();
    assert_eq!((k.address, k.mac), (ip("10.20.9.1"), m));
    assert_eq!((seen.first_us, seen.last_us, seen.flows), (10, 50, 2));
}

#[test]
fn a_device_in_two_places_at_once() {
    let ev = Evaluator::new(&starter_policy(), &fleet()).unwrap();
    let mut t = PresenceTracker::new(60_000_000);
    let m = ObservedMac([2, 0, 0, 0, 0x20, 0x10]);
    let mut f = flow(Transport::Tcp, "10.20.0.10", 1, "10.21.0.10", 443);
    f.orig_mac = Some(m);
    assert!(t.observe_flow(&ev, &f, &ev.evaluate(&f)).is_none());
    f.start_us += 1_000_000;
    assert!(
        t.observe_flow(&ev, &f, &ev.evaluate(&f)).is_none(),
        "same place"
    );
    let mut g = f.clone();
    g.orig_addr = ip("10.20.3.3");
    g.start_us += 1_000_000;
    let c = t
        .observe_flow(&ev, &g, &ev.evaluate(&g))
        .expect("two places");
    assert_eq!(c.earlier.addr, ip("10.20.0.10"));
    assert_eq!(c.later.addr, ip("10.20.3.3"));
    // The earlier sighting's own flow is the evidence beside the later one.
    assert_eq!(c.earlier_flow.as_ref(), Some(&f), "{c:?}");
    assert_eq!(c.earlier.at_us, f.start_us);
    assert_eq!(c.later.at_us, g.start_us);
    // A move after the window is a move.
    g.orig_addr = ip("10.20.4.4");
    g.start_us += 120_000_000;
    assert!(t.observe_flow(&ev, &g, &ev.evaluate(&g)).is_none());
    // Unregistered MACs (a router's) are not tracked.
    let mut r = flow(Transport::Tcp, "10.20.0.10", 1, "10.21.0.10", 443);
    r.orig_mac = Some(ObservedMac([2, 9, 9, 9, 9, 9]));
    assert!(t.observe_flow(&ev, &r, &ev.evaluate(&r)).is_none());
    assert_eq!(t.len(), 1, "only the pump's MAC is tracked");
    // Certificate identities from the gateway.
    let k = DeviceKey::Certificate("PUMP-1".parse().unwrap());
    let s = |a: &str, at| Sighting {
        addr: ip(a),
        zone: ZoneRef::Internet,
        at_us: at,
    };
    assert!(t.observe(k.clone(), s("10.20.0.10", 0)).is_none());
    let c = t.observe(k, s("10.20.0.12", 5)).expect("two places");
    assert_eq!(c.earlier_flow, None, "a gateway sighting has no flow");
    t.prune(i64::MAX);
    assert!(t.is_empty());
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z]{1,6}(-[a-z0-9]{1,4}){0,2}"
}

prop_compose! {
    fn arb_doc()(
        zones in proptest::collection::btree_map(arb_name(), (0u8..3, any::<bool>(), any::<bool>(), proptest::collection::btree_set(1u16..4095, 0..3)), 1..5),
        conduits in proptest::collection::vec((arb_name(), 0usize..10, 0usize..10, 0u8..4, proptest::collection::vec((1u16..65535, 0u16..20), 0..4), any::<bool>()), 0..6),
        times in proptest::collection::vec((any::<bool>(), 0i64..253_402_300_799_000_000), 0..3),
        purpose in "[ -~]{1,30}",
    ) -> PolicyDocument {
        let names: Vec<String> = zones.keys().filter(|n| n.as_str() != "internet").cloned().collect();
        let zones: Vec<Zone> = zones.into_iter().filter(|(n, _)| n != "internet").enumerate().map(|(i, (name, (ns, dz, iso, vlans)))| Zone {
            name,
            purpose: purpose.trim().to_string() + "x",
            subnets: (0..ns).map(|k| format!("10.{i}.{k}.0/24").parse().unwrap()).collect(),
            vlans: vlans.into_iter().collect(),
            device_zone: dz,
            isolated: iso,
        }).collect();
        let mut seen = std::collections::BTreeSet::new();
        let conduits = conduits.into_iter().filter(|c| seen.insert(c.0.clone()) && !names.is_empty()).map(|(name, f, t, tr, ports, both)| {
            let transport = [TransportRule::Tcp, TransportRule::Udp, TransportRule::Icmp, TransportRule::Any][tr as usize];
            Conduit {
                name,
                from: if f == 9 { "internet".into() } else { names[f % names.len()].clone() },
                to: names[t % names.len()].clone(),
                transport,
                ports: if matches!(transport, TransportRule::Tcp | TransportRule::Udp) {
                    ports.into_iter().map(|(a, w)| PortRange { first: a, last: a.saturating_add(w) }).collect()
                } else { vec![] },
                purpose: "p".into(),
                direction: if both { Direction::Both } else { Direction::FromTo },
            }
        }).collect();
        let assets = if names.is_empty() { vec![] } else {
            vec![AssetIdentity {
                asset_id: "A-1".parse().unwrap(),
                zone: names[0].clone(),
                manufacturer: Some("M".into()),
                model: None,
                admission: Admission::EapTls,
                macs: vec![mac("02:00:00:00:00:01")],
                addresses: times.into_iter().map(|(v6, t)| AddressBinding {
                    ip: if v6 { ip("fd00::1") } else { ip("10.0.0.1") },
                    valid_from: Some(t),
                    valid_until: None,
                }).collect(),
            }]
        };
        PolicyDocument {
            policy: Policy { name: "generated".into(), description: Some(purpose.trim().to_string() + "\"\\'"), zones, conduits },
            assets,
        }
    }
}

proptest! {
    #[test]
    fn import_export_import_is_identity(doc in arb_doc()) {
        prop_assume!(doc.problems().is_empty());
        let text = doc.to_toml();
        let back = PolicyDocument::from_toml(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &doc);
        prop_assert_eq!(back.to_toml(), text);
    }

    #[test]
    fn parser_never_panics(s in "\\PC{0,300}") {
        let _ = PolicyDocument::from_toml(&s);
    }

    #[test]
    fn mutated_starter_never_panics(cut in 0usize..6000, junk in "[\\[\\]=\"a-z0-9./ \n-]{0,12}") {
        let mut t = STARTER_POLICY_TOML.to_string();
        let at = (0..=cut.min(t.len())).rev().find(|i| t.is_char_boundary(*i)).unwrap_or(0);
        t.insert_str(at, &junk);
        if let Ok(d) = PolicyDocument::from_toml(&t) {
            let _ = check(&d.policy, &d.assets, &[]);
            let ev = Evaluator::new(&d.policy, &d.assets).unwrap();
            let _ = ev.evaluate(&flow(Transport::Tcp, "10.20.0.10", 1, "10.21.0.10", 443));
        }
    }

    #[test]
    fn evaluation_agrees_with_a_plain_scan(a: [u8; 4], b: [u8; 4], port in 1u16..3000, t in 0u8..3) {
        // Every allowed verdict names a conduit that really allows the flow.
        let ev = Evaluator::new(&starter_policy(), &fleet()).unwrap();
        let transport = [Transport::Tcp, Transport::Udp, Transport::Icmp][t as usize];
        let mut f = flow(transport, "10.20.0.10", 1, "10.21.0.10", port);
        f.orig_addr = IpAddr::from([10, a[1] % 64, a[2], a[3]]);
        f.resp_addr = IpAddr::from(b);
        let e = ev.evaluate(&f);
        if let Verdict::Allowed(Allowance::Conduit(c)) = e.verdict {
            let c = ev.conduit(c).unwrap();
            prop_assert_eq!(ev.zone_name(e.orig.zone), c.from.as_str());
            prop_assert_eq!(ev.zone_name(e.resp.zone), c.to.as_str());
            prop_assert!(c.transport.matches(transport));
            prop_assert!(c.ports.is_empty() || c.ports.iter().any(|r| r.contains(port)));
        }
        // The zone lookup agrees with scanning the subnets.
        let p = starter_policy();
        let scan = p.zones.iter().find(|z| z.subnets.iter().any(|s| s.contains(f.resp_addr))).map(|z| z.name.as_str());
        let got = ev.zone_name(ev.zone_of(f.resp_addr));
        match scan {
            Some(n) => prop_assert_eq!(got, n),
            None => prop_assert!(got == "internet" || got == "unzoned"),
        }
    }
}

#[test]
fn identity_from_an_inventory_asset() {
    let draft = pumpward_core::inventory::AssetDraft {
        asset_id: "PUMP-9".into(),
        manufacturer: "Acme".into(),
        model: "LVP-1".into(),
        serial_number: "S9".into(),
        firmware_version: "1.0".into(),
        mac_address: Some("02-00-00-00-20-99".into()),
        ip_address: Some("10.20.0.99".into()),
        zone: Some("infusion-pump".into()),
        ..Default::default()
    };
    let spec = pumpward_core::inventory::AssetSpec::validate(&draft).unwrap();
    let a = AssetIdentity::from_spec(&spec, Admission::EapTls).unwrap();
    assert_eq!(a.zone, "infusion-pump");
    assert_eq!(a.macs, vec![mac("02:00:00:00:20:99")]);
    assert_eq!(a.addresses, vec![AddressBinding::always(ip("10.20.0.99"))]);
    assert!(check(&starter_policy(), &[a], &[model(Answer::Yes)]).is_empty());
    let mut no_zone = spec.clone();
    no_zone.zone = None;
    assert!(AssetIdentity::from_spec(&no_zone, Admission::Mab).is_none());
}

#[test]
fn violations_carry_their_evidence() {
    let ev = Evaluator::new(&starter_policy(), &fleet()).unwrap();
    let ok = flow(Transport::Tcp, "10.20.0.10", 1, "10.21.0.10", 443);
    assert!(ev.evidence(&ok, &ev.evaluate(&ok)).is_none());
    let bad = flow(Transport::Tcp, "10.21.0.10", 443, "10.20.0.10", 50000);
    let e = ev.evidence(&bad, &ev.evaluate(&bad)).unwrap();
    assert_eq!(e.kind, "wrong_direction");
    assert_eq!(e.conduit.as_deref(), Some("pump-to-pump-server"));
    assert_eq!(
        (e.from_zone.as_str(), e.to_zone.as_str()),
        ("pump-server", "infusion-pump")
    );
    assert_eq!(e.orig_asset.as_deref(), Some("PS-1"));
    assert_eq!(e.resp_asset.as_deref(), Some("PUMP-1"));
    assert_eq!((e.transport, e.orig_port, e.resp_port), (6, 443, 50000));
    assert_eq!(
        (e.orig_bytes, e.resp_bytes, e.start_us),
        (100, 200, bad.start_us)
    );
    assert!(e.message.contains("wrong direction"), "{}", e.message);
}

#[test]
fn a_problem_is_located_on_the_line_naming_its_subject() {
    let text = "name = \"p\"\n\n[[zone]]\nname = \"pumps\"\npurpose = \"z\"\nsubnets = [\"10.0.0.0/8\"]\n\n[[conduit]]\nname = \"pumps\" # same name as the zone\nfrom = \"pumps\"\nto = \"nowhere\"\ntransport = \"tcp\"\npurpose = \"c\"\n";
    let Err(PolicyError::Invalid(problems)) = PolicyDocument::from_toml(text) else {
        panic!("a conduit to an unknown zone must be refused");
    };
    let lines: Vec<Option<usize>> = problems
        .iter()
        .map(|p| subject_line(text, &p.location))
        .collect();
    assert!(lines.contains(&Some(9)), "{problems:?} → {lines:?}");
    assert_eq!(subject_line(text, "zone \"pumps\""), Some(4));
    assert_eq!(subject_line(text, "zone \"absent\""), None);
    assert_eq!(subject_line(text, "policy"), None);
}

#[test]
fn quarantined_assets_are_not_authorised_in_the_enforcement_exports() {
    use pumpward_core::inventory::{Asset, AssetDraft, AssetSpec, LifecycleState};
    let asset = |id: &str, m: &str, state: LifecycleState| Asset {
        spec: AssetSpec::validate(&AssetDraft {
            asset_id: id.into(),
            manufacturer: "Acme".into(),
            model: "LVP-1".into(),
            serial_number: format!("S-{id}"),
            firmware_version: "1.0".into(),
            mac_address: Some(m.into()),
            zone: Some("infusion-pump".into()),
            ..Default::default()
        })
        .unwrap(),
        lifecycle_state: state,
        last_seen: None,
        version: 1,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        updated_at: time::OffsetDateTime::UNIX_EPOCH,
    };
    let fleet = [
        asset("PUMP-1", "02:00:00:00:30:01", LifecycleState::InService),
        asset("PUMP-2", "02:00:00:00:30:02", LifecycleState::Quarantined),
        asset("PUMP-3", "02:00:00:00:30:03", LifecycleState::Maintenance),
        asset(
            "PUMP-4",
            "02:00:00:00:30:04",
            LifecycleState::Decommissioned,
        ),
        asset("PUMP-5", "02:00:00:00:30:05", LifecycleState::Received),
    ];
    let policy = starter_policy();
    for admission in [Admission::Mab, Admission::EapTls] {
        let ids: Vec<AssetIdentity> = fleet
            .iter()
            .filter_map(|a| AssetIdentity::authorised(a, admission))
            .collect();
        let listed: Vec<&str> = ids.iter().map(|i| i.asset_id.as_str()).collect();
        assert_eq!(listed, ["PUMP-1", "PUMP-3", "PUMP-5"]);
        let ise = crate::export::ise::endpoints_csv(&ids, &[]);
        assert!(ise.contains("PUMP-1 ("), "{ise}");
        assert!(
            !ise.contains("PUMP-2"),
            "quarantined endpoint listed: {ise}"
        );
        if admission == Admission::Mab {
            let users = crate::export::radius::mab_authorize(&policy, &ids, &[]);
            assert!(users.contains("020000003001\t"), "{users}");
            assert!(
                !users.contains("020000003002"),
                "quarantined MAC listed: {users}"
            );
            assert!(!users.contains("PUMP-2"), "{users}");
        }
    }
    // The same asset back in service is authorised again.
    let mut released = fleet[1].clone();
    released.lifecycle_state = LifecycleState::InService;
    assert!(AssetIdentity::authorised(&released, Admission::Mab).is_some());
}

fn quarantined(mac: &str, addresses: &[&str], reason: &str) -> crate::QuarantinedDevice {
    crate::QuarantinedDevice {
        mac: mac.parse().unwrap(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        zone: Some("infusion-pump".into()),
        reason: reason.into(),
    }
}

#[test]
fn quarantined_devices_are_refused_by_every_export() {
    use crate::export::{acl, ise, nft, radius};
    let policy = starter_policy();
    let pump = AssetIdentity {
        asset_id: "PUMP-9".parse().unwrap(),
        zone: "infusion-pump".into(),
        manufacturer: None,
        model: None,
        admission: Admission::Mab,
        macs: vec!["02:00:00:00:40:01".parse().unwrap()],
        addresses: Vec::new(),
    };
    let q = [
        quarantined(
            "02:00:00:00:99:01",
            &["10.20.0.99", "fd00:20::99"],
            "rogue\nlaptop",
        ),
        // A registered pump's MAC on the list: the quarantine wins.
        quarantined("02:00:00:00:40:01", &[], "=cloned MAC"),
    ];

    let rules = nft::ruleset(&policy, &q);
    assert!(
        rules.contains("elements = { 02:00:00:00:40:01, 02:00:00:00:99:01 }"),
        "{rules}"
    );
    assert!(rules.contains("elements = { 10.20.0.99 }"), "{rules}");
    assert!(rules.contains("elements = { fd00:20::99 }"), "{rules}");
    for rule in [
        "ether saddr @quarantine_mac drop",
        "ip saddr @quarantine_v4 drop",
        "ip daddr @quarantine_v4 drop",
        "ip6 saddr @quarantine_v6 drop",
        "ip6 daddr @quarantine_v6 drop",
    ] {
        let at = rules
            .find(rule)
            .unwrap_or_else(|| panic!("{rule}: {rules}"));
        // Before established connections are let through.
        assert!(at < rules.find("ct state established").unwrap(), "{rule}");
    }
    // Without a quarantine the sets are declared but empty.
    let empty = nft::ruleset(&policy, &[]);
    assert!(
        empty.contains("set quarantine_mac {\n\t\ttype ether_addr\n\t}"),
        "{empty}"
    );

    let users = radius::mab_authorize(&policy, std::slice::from_ref(&pump), &q);
    assert!(
        users.contains("020000009901\tAuth-Type := Reject"),
        "{users}"
    );
    assert!(
        users.contains("020000004001\tAuth-Type := Reject"),
        "{users}"
    );
    assert!(
        !users.contains("020000004001\tCleartext-Password"),
        "{users}"
    );
    assert!(
        !users.contains("rogue"),
        "no free text in configuration: {users}"
    );
    let free = radius::mab_authorize(&policy, std::slice::from_ref(&pump), &[]);
    assert!(free.contains("020000004001\tCleartext-Password"), "{free}");

    let ise = ise::endpoints_csv(std::slice::from_ref(&pump), &q);
    assert_eq!(
        ise,
        "MACAddress,IdentityGroup,StaticGroupAssignment,Description\r\n\
         02:00:00:00:40:01,Pumpward-Quarantine,TRUE,quarantined: =cloned MAC\r\n\
         02:00:00:00:99:01,Pumpward-Quarantine,TRUE,quarantined: rogue laptop\r\n"
    );

    let table = acl::acl_csv(&policy, &q);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[1..4],
        [
            "1,deny,infusion-pump,MAC 02:00:00:00:40:01,any,any,any,,,quarantined: =cloned MAC",
            "2,deny,infusion-pump,MAC 02:00:00:00:99:01,any,any,any,,,quarantined: rogue laptop",
            "3,deny,infusion-pump,10.20.0.99,any,any,any,,,quarantined: rogue laptop",
        ]
    );
    assert!(
        table.contains("6,deny,any,any,infusion-pump,fd00:20::99,any,,,quarantined: rogue laptop"),
        "{table}"
    );
    assert!(rows[7].contains(",allow,"), "{table}");
}

#[test]
fn quarantine_exports_do_not_depend_on_list_order_or_duplicates() {
    use crate::export::{acl, ise, nft, radius};
    let policy = starter_policy();
    let a = quarantined("02:00:00:00:99:01", &["10.20.0.99"], "rogue");
    let b = quarantined("02:00:00:00:99:02", &["10.20.0.98"], "rogue");
    let a_again = quarantined("02:00:00:00:99:01", &["10.20.0.97", "10.20.0.99"], "rogue");
    let one = [a.clone(), b.clone()];
    let other = [b, a_again.clone(), a];
    let merged = crate::quarantine::canonical(&other);
    assert_eq!(merged.len(), 2);
    assert_eq!(merged[0].addresses.len(), 2, "{merged:?}");
    let one = [one.as_slice(), std::slice::from_ref(&a_again)].concat();
    assert_eq!(nft::ruleset(&policy, &one), nft::ruleset(&policy, &other));
    assert_eq!(
        radius::mab_authorize(&policy, &[], &one),
        radius::mab_authorize(&policy, &[], &other)
    );
    assert_eq!(
        ise::endpoints_csv(&[], &one),
        ise::endpoints_csv(&[], &other)
    );
    assert_eq!(acl::acl_csv(&policy, &one), acl::acl_csv(&policy, &other));
}

#[test]
fn a_quarantine_entry_names_its_problem() {
    let mut d = quarantined("02:00:00:00:99:01", &[], "rogue");
    assert_eq!(d.problem(), None);
    d.zone = Some("Not A Zone".into());
    assert!(d.problem().unwrap().starts_with("zone: "));
    d.zone = None;
    d.addresses =
        vec!["10.0.0.1".parse().unwrap(); crate::quarantine::MAX_QUARANTINE_ADDRESSES + 1];
    assert!(d.problem().unwrap().starts_with("addresses: "));
}
