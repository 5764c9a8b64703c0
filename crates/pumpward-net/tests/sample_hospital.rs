//! The sample hospital (`pumpward demo`, `pumpward_core::demo`) fits the
//! starter policy it is shown with: every asset's address lies in its own
//! zone, the fleet's normal traffic is allowed, and only the demo's rogue
//! flows (its simulated network sensor, `pumpward-cli/src/demo.rs`) break
//! the policy.

use std::net::IpAddr;

use pumpward_core::demo::{sample_hospital, SampleHospital, DEFAULT_SEED};
use pumpward_core::inventory::{AssetKind, LifecycleState};
use pumpward_flow::{Flow, FlowSource, ObservedMac, Transport};
use pumpward_net::inventory::admission;
use pumpward_net::{check, starter_policy, AssetIdentity, Evaluator, Severity, Verdict, Violation};

fn identities(h: &SampleHospital) -> Vec<AssetIdentity> {
    h.assets
        .iter()
        .filter_map(|a| {
            let model = h
                .models
                .iter()
                .find(|m| m.manufacturer == a.spec.manufacturer && m.model == a.spec.model);
            AssetIdentity::from_spec(&a.spec, admission(model))
        })
        .collect()
}

fn tcp(from: IpAddr, mac: Option<[u8; 6]>, to: IpAddr, port: u16) -> Flow {
    Flow {
        start_us: 1_790_000_000_000_000,
        duration_us: Some(1_000_000),
        transport: Transport::Tcp,
        orig_addr: from,
        orig_port: 40_000,
        resp_addr: to,
        resp_port: port,
        orig_mac: mac.map(ObservedMac),
        resp_mac: None,
        orig_bytes: 1_200,
        resp_bytes: 300,
        orig_packets: 4,
        resp_packets: 3,
        source: FlowSource::Ipfix,
        sensor_uid: None,
        conn_state: None,
    }
}

/// Every addressed asset of the sample hospital, for several seeds, is in
/// the starter policy's zone it is registered in, and the policy check
/// finds no error in the inventory.
#[test]
fn every_sample_address_lies_in_its_zone() {
    let policy = starter_policy();
    for seed in [DEFAULT_SEED, 1, 2, 99] {
        let h = sample_hospital(seed);
        let ids = identities(&h);
        let ev = Evaluator::new(&policy, &ids).expect("the sample inventory fits the policy");
        let mut addressed = 0;
        for a in &h.assets {
            let Some(ip) = a.spec.ip_address else {
                continue;
            };
            addressed += 1;
            assert_eq!(
                Some(ev.zone_name(ev.zone_of(ip))),
                a.spec.zone.as_deref(),
                "{} at {ip} (seed {seed})",
                a.spec.asset_id
            );
        }
        assert!(addressed > 100, "seed {seed}: {addressed} addressed assets");
        let errors: Vec<_> = check(&policy, &ids, &h.models)
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "seed {seed}: {errors:?}");
    }
}

/// Each in-service pump to each in-service pump server on 443, and biomed
/// to the pump servers' console, are allowed; the demo's sensor flows (a
/// pump to the internet, pump to pump, an unregistered MAC in the pump
/// zone) are the violations the demo shows.
#[test]
fn the_fleet_s_normal_traffic_is_allowed_and_the_demo_s_rogue_flows_are_not() {
    let policy = starter_policy();
    let h = sample_hospital(DEFAULT_SEED);
    let ev = Evaluator::new(&policy, &identities(&h)).unwrap();
    let of = |kind: AssetKind| -> Vec<(IpAddr, Option<[u8; 6]>)> {
        h.assets
            .iter()
            .filter(|a| a.spec.kind == kind && a.lifecycle_state == LifecycleState::InService)
            .filter_map(|a| Some((a.spec.ip_address?, a.spec.mac_address.map(|m| m.octets()))))
            .collect()
    };
    let (pumps, servers, workstations) = (
        of(AssetKind::Pump),
        of(AssetKind::PumpServer),
        of(AssetKind::Workstation),
    );
    assert!(pumps.len() > 100 && !servers.is_empty() && !workstations.is_empty());
    for &(pump, mac) in &pumps {
        for &(server, _) in &servers {
            let e = ev.evaluate(&tcp(pump, mac, server, 443));
            assert!(
                matches!(e.verdict, Verdict::Allowed(_)),
                "{pump} → {server}: {}",
                ev.describe(&e)
            );
        }
    }
    for &(ws, mac) in &workstations {
        for &(server, _) in &servers {
            let e = ev.evaluate(&tcp(ws, mac, server, 443));
            assert!(
                matches!(e.verdict, Verdict::Allowed(_)),
                "{}",
                ev.describe(&e)
            );
        }
    }

    let (a, a_mac) = pumps[0];
    let (b, _) = pumps[1];
    let internet = ev.evaluate(&tcp(a, a_mac, "203.0.113.50".parse().unwrap(), 443));
    assert!(
        matches!(
            internet.verdict,
            Verdict::Violation(Violation::DeviceToInternet { .. })
        ),
        "{}",
        ev.describe(&internet)
    );
    let east_west = ev.evaluate(&tcp(a, a_mac, b, 22));
    assert!(
        matches!(
            east_west.verdict,
            Verdict::Violation(Violation::EastWest { .. })
        ),
        "{}",
        ev.describe(&east_west)
    );
    let rogue = ev.evaluate(&tcp(
        "10.20.250.99".parse().unwrap(),
        Some([0x02, 0xde, 0xad, 0xbe, 0xef, 0x01]),
        b,
        443,
    ));
    assert!(
        matches!(
            rogue.verdict,
            Verdict::Violation(Violation::UnknownDevice { .. })
        ),
        "{}",
        ev.describe(&rogue)
    );
}
