//! The sample fleet and flow mix of the network benches (shared by
//! `evaluate.rs` and `conn_log.rs`): the SP 1800-8 starter policy's zones
//! with 5,000 registered pumps (half with a DHCP lease that moved at noon,
//! so attribution checks times) and 20 pump servers; flows over a day, ~90 %
//! allowed (pump → pump server 443, → gateway 8444, DNS, NTP; pump server →
//! EHR 2575; staff → Pumpward UI) and ~10 % violations (wrong port,
//! east-west, internet, unknown device, wrong direction, guest probing).

// Each including bench uses a different part of this module.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use pumpward_flow::{Flow, FlowSource, Transport};
use pumpward_net::{AddressBinding, Admission, AssetIdentity};

pub const PUMPS: u32 = 5_000;
pub const DAY_US: i64 = 86_400_000_000;
pub const T0: i64 = 1_790_000_000_000_000;

pub fn pump_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a14_0000 + 16 + i))
}

pub fn assets() -> Vec<AssetIdentity> {
    let mut v = Vec::new();
    for i in 0..PUMPS {
        let mac = format!(
            "02:1b:00:{:02x}:{:02x}:{:02x}",
            i >> 16 & 0xff,
            i >> 8 & 0xff,
            i & 0xff
        );
        let mut addresses = vec![AddressBinding::always(pump_ip(i))];
        if i % 2 == 1 {
            // A lease that moved at noon: the old address until then.
            addresses[0].valid_from = Some(T0 + DAY_US / 2);
            addresses.push(AddressBinding {
                ip: pump_ip(i + PUMPS),
                valid_from: Some(T0),
                valid_until: Some(T0 + DAY_US / 2),
            });
        }
        v.push(AssetIdentity {
            asset_id: format!("PUMP-{i:05}").parse().unwrap(),
            zone: "infusion-pump".into(),
            manufacturer: None,
            model: None,
            admission: if i % 3 == 0 {
                Admission::Mab
            } else {
                Admission::EapTls
            },
            macs: vec![mac.parse().unwrap()],
            addresses,
        });
    }
    for s in 0..20u32 {
        v.push(AssetIdentity {
            asset_id: format!("PS-{s:02}").parse().unwrap(),
            zone: "pump-server".into(),
            manufacturer: None,
            model: None,
            admission: Admission::Mab,
            macs: vec![format!("02:21:00:00:00:{s:02x}").parse().unwrap()],
            addresses: vec![AddressBinding::always(IpAddr::V4(Ipv4Addr::new(
                10,
                21,
                0,
                10 + s as u8,
            )))],
        });
    }
    v
}

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::from(a)
}

/// `n` flows spread evenly over the day.
pub fn flows(n: u32) -> Vec<Flow> {
    let mut out = Vec::with_capacity(n as usize);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        // xorshift: deterministic, no rand dependency in the bench.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pump = (x % u64::from(PUMPS)) as u32;
        let t = T0 + (i64::from(i) * DAY_US / i64::from(n));
        let held = if pump % 2 == 1 && t < T0 + DAY_US / 2 {
            pump_ip(pump + PUMPS)
        } else {
            pump_ip(pump)
        };
        let server = ip([10, 21, 0, 10 + (x >> 32) as u8 % 20]);
        let (transport, from, to, port) = match (x >> 40) % 100 {
            0..=39 => (Transport::Tcp, held, server, 443),
            40..=59 => (Transport::Tcp, held, ip([10, 40, 0, 5]), 8444),
            60..=71 => (Transport::Udp, held, ip([10, 40, 0, 2]), 53),
            72..=79 => (Transport::Udp, held, ip([10, 40, 0, 3]), 123),
            80..=85 => (Transport::Tcp, server, ip([10, 30, 1, 20]), 2575),
            86..=89 => (Transport::Tcp, ip([10, 50, 3, 3]), ip([10, 40, 0, 5]), 443),
            90..=91 => (Transport::Tcp, held, server, 22),
            92 => (Transport::Tcp, held, pump_ip((pump + 1) % PUMPS), 80),
            93 => (Transport::Tcp, held, ip([93, 184, 216, 34]), 443),
            94..=95 => (Transport::Tcp, ip([10, 20, 200, 9]), server, 443),
            96..=97 => (Transport::Tcp, server, held, 443),
            _ => (Transport::Tcp, ip([172, 16, 5, 5]), server, 443),
        };
        out.push(Flow {
            start_us: t,
            duration_us: Some(2_000),
            transport,
            orig_addr: from,
            orig_port: 40_000 + (i % 20_000) as u16,
            resp_addr: to,
            resp_port: port,
            orig_mac: None,
            resp_mac: None,
            orig_bytes: 600,
            resp_bytes: 1_400,
            orig_packets: 6,
            resp_packets: 5,
            source: FlowSource::ZeekConnLog,
            sensor_uid: None,
            conn_state: None,
        });
    }
    out
}
