//! `pumpward net`: checking the policy against the inventory, exporting it,
//! and evaluating a real capture, through the binary.

mod common;

use common::{err, out, pumpward_in as pumpward};

/// Two pumps inside the starter policy's infusion-pump subnet and one whose
/// address is outside it.
const FLEET: &str =
    "asset_id,manufacturer,model,serial_number,firmware_version,mac_address,ip_address,zone\n\
P-1,Hospira,Plum 360,S1,15.10,02:00:00:00:00:01,10.20.0.11,infusion-pump\n\
P-2,Hospira,Plum 360,S2,15.10,02:00:00:00:00:02,10.20.0.12,infusion-pump\n\
P-3,Hospira,Plum 360,S3,15.10,02:00:00:00:00:03,192.168.7.3,infusion-pump\n";

#[test]
fn check_export_and_flows() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let fleet = t.path().join("fleet.csv");
    std::fs::write(&fleet, FLEET).unwrap();
    let o = pumpward(&data, &["inventory", "import", fleet.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));

    // The address outside the zone is an error naming the asset: exit 1.
    let o = pumpward(&data, &["net", "policy", "check"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    let report = out(&o);
    assert!(
        report.contains("asset \"P-3\": address 192.168.7.3 is outside every subnet"),
        "{report}"
    );
    assert!(!report.contains("\"P-1\""), "{report}");
    assert!(
        report.contains("3 assets with a zone: 1 errors"),
        "{report}"
    );

    // A policy file that names an unknown zone is refused with the conduit.
    let bad = t.path().join("bad.toml");
    let starter = pumpward(&data, &["net", "policy", "export", "--format", "toml"]);
    assert!(starter.status.success(), "{}", err(&starter));
    let toml = out(&starter);
    assert!(toml.contains("infusion-pump"), "{toml}");
    std::fs::write(
        &bad,
        toml.replacen("to = \"pump-server\"", "to = \"pump-srv\"", 1),
    )
    .unwrap();
    let o = pumpward(
        &data,
        &["net", "policy", "check", "--policy", bad.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("pump-srv"), "{}", err(&o));

    // The round trip of the export is the same policy, byte for byte.
    let again = t.path().join("again.toml");
    std::fs::write(&again, &toml).unwrap();
    let o = pumpward(
        &data,
        &[
            "net",
            "policy",
            "export",
            "--format",
            "toml",
            "--policy",
            again.to_str().unwrap(),
        ],
    );
    assert_eq!(out(&o), toml);

    // MAB file: every pump's MAC, lower-case hex, with its zone's VLAN.
    let o = pumpward(
        &data,
        &["net", "policy", "export", "--format", "freeradius-mab"],
    );
    assert!(o.status.success(), "{}", err(&o));
    let mab = out(&o);
    for mac in ["020000000001", "020000000002", "020000000003"] {
        assert!(mab.contains(mac), "{mac} missing:\n{mab}");
    }
    assert!(mab.contains("Tunnel-Private-Group-Id"), "{mab}");
    let o = pumpward(&data, &["net", "policy", "export", "--format", "nft"]);
    assert!(out(&o).contains("table "), "{}", out(&o));

    // A quarantined MAC (P-2's, and where it was seen): every enforcement
    // export refuses it from the stored list.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = pumpward_store::Store::open_sqlite(&data).await.unwrap();
        store
            .quarantine_device(
                &pumpward_net::QuarantinedDevice {
                    mac: "02:00:00:00:00:02".parse().unwrap(),
                    addresses: vec!["10.20.0.12".parse().unwrap()],
                    zone: Some("infusion-pump".into()),
                    reason: "cloned".into(),
                },
                &pumpward_store::Actor::cli(),
            )
            .await
            .unwrap();
        store.close().await;
    });
    let export = |format: &str| {
        let o = pumpward(&data, &["net", "policy", "export", "--format", format]);
        assert!(o.status.success(), "{format}: {}", err(&o));
        out(&o)
    };
    let mab = export("freeradius-mab");
    assert!(mab.contains("020000000002\tAuth-Type := Reject"), "{mab}");
    assert!(!mab.contains("020000000002\tCleartext-Password"), "{mab}");
    assert!(mab.contains("020000000001\tCleartext-Password"), "{mab}");
    let nft = export("nft");
    assert!(nft.contains("elements = { 02:00:00:00:00:02 }"), "{nft}");
    assert!(nft.contains("elements = { 10.20.0.12 }"), "{nft}");
    assert!(
        export("ise").contains("02:00:00:00:00:02,Pumpward-Quarantine,TRUE,quarantined: cloned")
    );
    assert!(export("acl").contains("1,deny,infusion-pump,MAC 02:00:00:00:00:02,"));

    // A real capture: every flow counted; BACnet hosts are in no zone.
    let pcap = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-flow/tests/data/bacnet/bacnet_example.pcap"
    );
    let o = pumpward(&data, &["net", "flows", pcap, "--show", "1"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("3257 packets, 357 flows"), "{}", err(&o));
    let total: u64 = out(&o)
        .lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| !k.starts_with("violation"))
        .map(|(_, n)| n.trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 357, "{}", out(&o));
    assert_eq!(out(&o).matches("violation: ").count(), 1, "{}", out(&o));

    // Not a capture and not a conn.log: a precise error.
    let junk = t.path().join("junk.log");
    std::fs::write(&junk, "hello\n").unwrap();
    let o = pumpward(&data, &["net", "flows", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("not a pcap, pcapng or Zeek conn.log (line 1"),
        "{}",
        err(&o)
    );
}

/// `net policy import`: a good file becomes version 1 and the default of
/// every other command; a bad one is refused with its line and changes
/// nothing.
#[test]
fn import_stores_versions_and_refuses_errors() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let starter = pumpward(&data, &["net", "policy", "export", "--format", "toml"]);
    assert!(starter.status.success(), "{}", err(&starter));
    let toml = out(&starter);

    // Our own name, and a conduit the check refuses: a guest conduit.
    let ours = toml.replacen("SP 1800-8 starter policy", "St. Elsewhere", 1);
    let good = t.path().join("good.toml");
    std::fs::write(&good, &ours).unwrap();
    let o = pumpward(
        &data,
        &[
            "net",
            "policy",
            "import",
            good.to_str().unwrap(),
            "--comment",
            "our name",
        ],
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("imported as version 1"), "{}", out(&o));

    // A conduit to a zone that does not exist, on a known line.
    let bad_text = ours.replacen("to = \"pump-server\"", "to = \"pump-srv\"", 1);
    let line = bad_text
        .lines()
        .position(|l| l.contains("pump-srv"))
        .unwrap();
    let bad = t.path().join("bad.toml");
    std::fs::write(&bad, &bad_text).unwrap();
    let o = pumpward(&data, &["net", "policy", "import", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    let report = out(&o);
    assert!(report.contains("pump-srv"), "{report}");
    assert!(report.contains("not imported: 1 error(s)"), "{report}");
    // The conduit's `name = …` line is a few lines above its `to = …`.
    let named = report
        .lines()
        .find(|l| l.contains("pump-srv"))
        .and_then(|l| l.split("line ").nth(1))
        .and_then(|l| l.split(':').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no line number in {report}"));
    assert!(
        named <= line + 1 && named + 10 > line,
        "{named} vs {line}: {report}"
    );

    // Still version 1, and it is what export and check use by default.
    let o = pumpward(&data, &["net", "policy", "export", "--format", "toml"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("name = \"St. Elsewhere\""), "{}", out(&o));
    assert!(!out(&o).contains("pump-srv"), "{}", out(&o));
    let o = pumpward(&data, &["net", "policy", "check"]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));

    // Not TOML at all: the line and column.
    std::fs::write(&bad, "name = \"x\"\n[[zone]\n").unwrap();
    let o = pumpward(&data, &["net", "policy", "import", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("line 2: error: column"), "{}", out(&o));
}
