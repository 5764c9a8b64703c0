//! Golden files: each export of a fixed hospital policy is compared byte for
//! byte with the committed file, so any change to an export shows up as a
//! reviewable diff. `PUMPWARD_UPDATE_GOLDEN=1 cargo test -p pumpward-net
//! --test golden` rewrites them after an intended change.
//!
//! The exports run with the fixed quarantine list of `common::quarantine`,
//! so the files show the quarantine's entries too.

mod common;

use std::path::PathBuf;

use pumpward_net::export::{acl, ise, nft, radius};
use pumpward_net::PolicyDocument;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn fixture() -> PolicyDocument {
    let text = std::fs::read_to_string(dir().join("hospital.toml")).unwrap();
    PolicyDocument::from_toml(&text).unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = dir().join(name);
    if std::env::var("PUMPWARD_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (PUMPWARD_UPDATE_GOLDEN=1 creates it)",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or(
                expected.lines().count().min(actual.lines().count()) + 1,
                |i| i + 1,
            );
        panic!("{name} differs from the golden file from line {line}:\n{actual}");
    }
}

fn eap_files() -> radius::EapTlsFiles {
    radius::EapTlsFiles {
        ca_file: "/etc/freeradius/3.0/certs/pumpward-ca.pem".into(),
        server_certificate_file: "/etc/freeradius/3.0/certs/radius.pem".into(),
        server_private_key_file: "/etc/freeradius/3.0/certs/radius.key".into(),
    }
}

#[test]
fn nftables_ruleset() {
    let d = fixture();
    golden(
        "hospital.nft",
        &nft::ruleset(&d.policy, &common::quarantine()),
    );
}

#[test]
fn freeradius_mab_authorize() {
    let d = fixture();
    let text = radius::mab_authorize(&d.policy, &d.assets, &common::quarantine());
    // EAP-TLS assets never get a MAB entry.
    assert!(!text.contains("021b00000001"));
    assert!(text.contains("021b00000003\tCleartext-Password"), "{text}");
    // PUMP-0003's other MAC is quarantined: rejected, never accepted.
    assert!(text.contains("021b00000013\tAuth-Type := Reject"), "{text}");
    assert!(!text.contains("021b00000013\tCleartext-Password"), "{text}");
    golden("hospital.authorize", &text);
}

#[test]
fn freeradius_eap_tls() {
    let d = fixture();
    let (eap, site) = radius::eap_tls(&d.policy, &d.assets, &eap_files());
    assert!(site.contains("case \"PUMP-0001\""));
    assert!(
        !site.contains("PUMP-0002"),
        "MAB assets are not admitted by certificate"
    );
    golden("hospital.eap", &eap);
    golden("hospital.check-eap-tls", &site);
}

#[test]
fn ise_endpoints() {
    let d = fixture();
    let text = ise::endpoints_csv(&d.assets, &common::quarantine());
    assert!(
        text.contains("02:1B:00:00:00:13,Pumpward-Quarantine,TRUE,"),
        "{text}"
    );
    assert!(
        text.contains("\"PUMP-0003 (infusion-pump) =Evil, \"\"Corp\"\" SYR-20\""),
        "{text}"
    );
    golden("hospital.ise.csv", &text);
}

#[test]
fn acl_table() {
    let d = fixture();
    golden(
        "hospital.acl.csv",
        &acl::acl_csv(&d.policy, &common::quarantine()),
    );
}

#[test]
fn exports_do_not_depend_on_input_order() {
    let d = fixture();
    let mut r = d.clone();
    r.policy.zones.reverse();
    r.assets.reverse();
    for a in &mut r.assets {
        a.macs.reverse();
    }
    let q = common::quarantine();
    let mut rq = q.clone();
    rq.reverse();
    for x in &mut rq {
        x.addresses.reverse();
    }
    assert_eq!(nft::ruleset(&d.policy, &q), nft::ruleset(&r.policy, &rq));
    assert_eq!(acl::acl_csv(&d.policy, &q), acl::acl_csv(&d.policy, &rq));
    assert_eq!(
        radius::mab_authorize(&d.policy, &d.assets, &q),
        radius::mab_authorize(&r.policy, &r.assets, &rq)
    );
    assert_eq!(
        ise::endpoints_csv(&d.assets, &q),
        ise::endpoints_csv(&r.assets, &rq)
    );
    assert_eq!(
        radius::eap_tls(&d.policy, &d.assets, &eap_files()),
        radius::eap_tls(&r.policy, &r.assets, &eap_files())
    );
}

#[test]
fn fixture_round_trips_and_checks_clean() {
    let d = fixture();
    assert_eq!(PolicyDocument::from_toml(&d.to_toml()).unwrap(), d);
    let diags = pumpward_net::check(&d.policy, &d.assets, &[]);
    // Only the expected warning: PUMP-0001's model is not in an (empty) catalogue.
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].finding, pumpward_net::Finding::AdmissionUnverified);
}
