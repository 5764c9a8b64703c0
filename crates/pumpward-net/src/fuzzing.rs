//! The body of the `net_policy_toml` fuzz target, here so that the committed
//! seeds (`fuzz/seeds/net_policy_toml/`) are replayed by a unit test on
//! stable.
//!
//! Besides "never panics", it checks what the crate promises for any policy
//! file that parses: export → import is the identity, the check and the
//! evaluator accept it, evaluation never panics, and every export runs.

use std::net::IpAddr;

use pumpward_flow::{Flow, FlowSource, Transport};

use crate::eval::Evaluator;
use crate::export::{acl, ise, nft, radius};
use crate::policy::PolicyDocument;
use crate::quarantine::QuarantinedDevice;

/// What the target saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    NotUtf8,
    Refused,
    Accepted,
}

/// Parses arbitrary bytes as a policy file and exercises everything after.
pub fn policy_toml(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::NotUtf8;
    };
    // The gate in front of the store (errors located by line) agrees with
    // the parser on what is refused.
    let review = crate::review(text, &[], &[]);
    let Ok(doc) = PolicyDocument::from_toml(text) else {
        assert!(review.document.is_none() && !review.issues.is_empty());
        return Outcome::Refused;
    };
    assert!(review.document.is_some());
    let out = doc.to_toml();
    match PolicyDocument::from_toml(&out) {
        Ok(again) => assert_eq!(again, doc, "export then import changed the document"),
        Err(e) => panic!("the export of a valid document does not import: {e}\n{out}"),
    }
    let _ = crate::check(&doc.policy, &doc.assets, &[]);
    let ev = match Evaluator::new(&doc.policy, &doc.assets) {
        Ok(ev) => ev,
        Err(e) => panic!("a parsed document is refused by the evaluator: {e}"),
    };
    let addrs: Vec<IpAddr> = doc
        .policy
        .zones
        .iter()
        .flat_map(|z| z.subnets.iter().map(|s| s.network()))
        .chain(
            doc.assets
                .iter()
                .flat_map(|a| a.addresses.iter().map(|b| b.ip)),
        )
        .chain(
            ["8.8.8.8".parse().ok(), "10.255.0.1".parse().ok()]
                .into_iter()
                .flatten(),
        )
        .take(16)
        .collect();
    for a in &addrs {
        for b in &addrs {
            for t in [Transport::Tcp, Transport::Udp, Transport::Icmp] {
                let f = Flow {
                    start_us: 0,
                    duration_us: None,
                    transport: t,
                    orig_addr: *a,
                    orig_port: 40000,
                    resp_addr: *b,
                    resp_port: 443,
                    orig_mac: None,
                    resp_mac: None,
                    orig_bytes: 0,
                    resp_bytes: 0,
                    orig_packets: 0,
                    resp_packets: 0,
                    source: FlowSource::Pcap,
                    sensor_uid: None,
                    conn_state: None,
                };
                let e = ev.evaluate(&f);
                let _ = ev.describe(&e);
            }
        }
    }
    // Every export, with and without the assets' MACs quarantined (half
    // of them: quarantined and authorised MACs side by side).
    let quarantine: Vec<QuarantinedDevice> = doc
        .assets
        .iter()
        .step_by(2)
        .flat_map(|a| {
            a.macs.iter().map(|m| QuarantinedDevice {
                mac: *m,
                addresses: a.addresses.iter().map(|b| b.ip).take(4).collect(),
                zone: Some(a.zone.clone()),
                reason: "fuzz\n=1".into(),
            })
        })
        .collect();
    for q in [&[][..], &quarantine[..]] {
        let _ = nft::ruleset(&doc.policy, q);
        let users = radius::mab_authorize(&doc.policy, &doc.assets, q);
        let _ = ise::endpoints_csv(&doc.assets, q);
        let _ = acl::acl_csv(&doc.policy, q);
        for d in q {
            let user: String = d.mac.octets().iter().map(|o| format!("{o:02x}")).collect();
            assert!(
                users.contains(&format!("{user}\tAuth-Type := Reject")),
                "quarantined MAC {user} not rejected"
            );
            assert!(
                !users.contains(&format!("{user}\tCleartext-Password")),
                "quarantined MAC {user} accepted"
            );
        }
    }
    Outcome::Accepted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Replays every committed seed on stable.
    #[test]
    fn net_policy_toml_seeds_replay() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/net_policy_toml");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let _ = policy_toml(&std::fs::read(&p).unwrap());
            n += 1;
        }
        assert!(n >= 3, "seeds missing in {}", dir.display());
        assert_eq!(
            policy_toml(crate::STARTER_POLICY_TOML.as_bytes()),
            Outcome::Accepted
        );
        assert_eq!(policy_toml(b"\xff"), Outcome::NotUtf8);
        assert_eq!(policy_toml(b"name = 1"), Outcome::Refused);
    }
}
