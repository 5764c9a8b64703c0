//! `pumpward findings`: the list in its three formats and the remediation
//! steps, through the binary.

mod common;

use common::{err, out};

use common::pumpward_in as pumpward;

const FLEET: &str = "asset_id,manufacturer,model,device_type,serial_number,firmware_version,mac_address,care_area,lifecycle_state\n\
P-1,Hospira,Plum A+,pca,S1,13.3,02:00:00:00:00:01,NICU,in_service\n\
P-2,Hospira,Plum A+,lvp,S2,13.5,02:00:00:00:00:02,Med-Surg,in_service\n";

#[test]
fn findings_list_in_three_formats_and_transition() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let fleet = t.path().join("fleet.csv");
    std::fs::write(&fleet, FLEET).unwrap();
    let o = pumpward(&data, &["inventory", "import", fleet.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let adv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-vuln/tests/data/csaf/icsa-15-161-01.json"
    );
    // The import matches by itself the assets its advisory concerns: no
    // `advisories match` is run in this test.
    let o = pumpward(&data, &["advisories", "import", adv]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains(
            "re-matched the pumps and pump servers these documents concern: 2 assets, 7 affected, 0 to review open; 7 raised, 0 resolved"
        ),
        "{}",
        out(&o)
    );

    // JSON: the fields, highest priority first.
    let o = pumpward(&data, &["findings", "list", "--format", "json"]);
    assert!(o.status.success(), "{}", err(&o));
    let rows: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let rows = rows.as_array().unwrap();
    // 13.3 is within "<=13.4"; P-2's 13.5 is not.
    assert_eq!(rows.len(), 7, "{rows:#?}");
    for r in rows {
        assert_eq!(r["asset_id"], "P-1");
        assert_eq!(r["advisory_id"], "ICSA-15-161-01");
        assert!(r["cve"].as_str().unwrap().starts_with("CVE-2015-"));
        assert_eq!(r["status"], "affected");
        assert_eq!(r["remediation"], "open");
        // CVSS v2 base × 4, then PCA 12.0, NICU 8.0, no zone 6.0, Wi-Fi
        // 3.0, remote service not recorded 2.0.
        if r["cve"] == "CVE-2015-3958" {
            assert_eq!(r["priority"], 62.2, "{r:#}");
        }
        assert_eq!(
            r["evidence"]["priority"]["factors"]
                .as_array()
                .unwrap()
                .len(),
            9
        );
        assert_eq!(r["evidence"]["rules"][0]["version_text"], "<=13.4");
    }
    let fid = rows[0]["finding_id"].as_i64().unwrap();
    let id = fid.to_string();

    // CSV: a header and one line per finding.
    let o = pumpward(&data, &["findings", "list", "--format", "csv"]);
    assert!(o.status.success(), "{}", err(&o));
    let csv = out(&o);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 8, "{csv}");
    assert!(lines[0].starts_with(
        "finding_id,asset_id,advisory_id,cve,status,priority,priority_band,remediation"
    ));
    assert!(lines[1].contains(",P-1,ICSA-15-161-01,CVE-2015-"), "{csv}");
    assert!(
        csv.contains(",CVE-2015-3958,affected,62.2,high,open,"),
        "{csv}"
    );

    // Table, and the status filter.
    let o = pumpward(&data, &["findings", "list"]);
    assert!(out(&o).contains("7 findings"), "{}", out(&o));
    let o = pumpward(&data, &["findings", "list", "--status", "not_affected"]);
    assert!(out(&o).contains("0 findings"), "{}", out(&o));
    let o = pumpward(&data, &["findings", "list", "--status", "bogus"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("--status: \"bogus\" is not one of"),
        "{}",
        err(&o)
    );

    // Remediation: an illegal jump and a missing field are refused.
    let o = pumpward(
        &data,
        &[
            "findings",
            "transition",
            &id,
            "deployed",
            "--version",
            "13.5",
        ],
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("cannot go to deployed"), "{}", err(&o));
    let o = pumpward(
        &data,
        &["findings", "transition", &id, "vendor_patch_available"],
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("vendor_reference"), "{}", err(&o));
    let o = pumpward(
        &data,
        &[
            "findings",
            "transition",
            &id,
            "vendor_patch_available",
            "--vendor-reference",
            "ICSA-15-161-01",
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("remediation vendor_patch_available"),
        "{}",
        out(&o)
    );
    let o = pumpward(
        &data,
        &[
            "findings",
            "transition",
            &id,
            "risk_accepted",
            "--control",
            "monitored",
            "--review-date",
            "2099-01-01",
        ],
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("owner"), "{}", err(&o));
    let o = pumpward(
        &data,
        &[
            "findings", "list", "--format", "json", "--status", "affected",
        ],
    );
    let rows: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let r = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["finding_id"] == fid)
        .unwrap();
    assert_eq!(r["remediation"], "vendor_patch_available");
}

/// `pumpward sbom attach` and `list`: the real medical-device SBOM attached
/// to the Alaris 8015 at 12.1.2; the real NVD record of CVE-2022-25638
/// (wolfSSL before 5.2.0) imported afterwards gives that pump a finding
/// naming the component, with no `advisories match`.
#[test]
fn sbom_attach_list_and_the_component_finding() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let fleet = t.path().join("fleet.csv");
    std::fs::write(
        &fleet,
        "asset_id,manufacturer,model,serial_number,firmware_version,lifecycle_state\n\
         A-1,BD,Alaris 8015 PC Unit,S1,12.1.2,in_service\n\
         A-2,BD,Alaris 8015 PC Unit,S2,12.1.3,in_service\n",
    )
    .unwrap();
    let o = pumpward(&data, &["inventory", "import", fleet.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let sbom = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-vuln/tests/data/sbom/medical-device-casestudy-narrow.cdx.json"
    );
    let o = pumpward(
        &data,
        &[
            "sbom",
            "attach",
            "--manufacturer",
            "BD",
            "--model",
            "Alaris 8015 PC Unit",
            "--version",
            "12.1.2",
            sbom,
        ],
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).starts_with("attached SBOM 1: BD Alaris 8015 PC Unit firmware 12.1.2 (cyclonedx-json 1.4, 55 components, 55 with a CPE name, 55 with a purl)"),
        "{}",
        out(&o)
    );
    let o = pumpward(&data, &["sbom", "list"]);
    assert!(out(&o).contains("1 SBOMs"), "{}", out(&o));
    let o = pumpward(&data, &["sbom", "list", "--components", "1"]);
    assert!(
        out(&o).contains(
            "  WolfSSL 4.8.1  pkg:github/wolfssl/wolfssl  cpe:2.3:a:wolfssl:wolfssl:4.8.1:*:*:*:*:*:*:*"
        ),
        "{}",
        out(&o)
    );
    // A file that is not an SBOM: refused, nothing attached.
    let o = pumpward(
        &data,
        &[
            "sbom",
            "attach",
            "--manufacturer",
            "BD",
            "--model",
            "Alaris 8015 PC Unit",
            "--version",
            "12.1.3",
            fleet.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("SBOM"), "{}", err(&o));

    let nvd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-store/tests/data/sbom/CVE-2022-25638.json"
    );
    let o = pumpward(&data, &["advisories", "import", nvd]);
    assert!(out(&o).contains("1 raised"), "{}", out(&o));
    let o = pumpward(&data, &["findings", "list", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["asset_id"], "A-1");
    assert_eq!(rows[0]["cve"], "CVE-2022-25638");
    assert_eq!(rows[0]["advisory_id"], "CVE-2022-25638");
    assert_eq!(
        rows[0]["evidence"]["rules"][0]["component"]["component"],
        "WolfSSL"
    );

    // The manufacturer's VEX BOM for 12.1.2: the component is not affected
    // by CVE-2022-25638 (resolved), and exploitable by CVE-2021-3336 (raised).
    let vex = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-store/tests/data/sbom/wolfssl-not-affected.vex.cdx.json"
    );
    let o = pumpward(
        &data,
        &[
            "sbom",
            "attach",
            "--manufacturer",
            "BD",
            "--model",
            "Alaris 8015 PC Unit",
            "--version",
            "12.1.2",
            vex,
        ],
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("1 raised, 1 resolved"), "{}", out(&o));
    assert!(
        out(&o)
            .contains("warning: vulnerabilities[2] (CVE-2022-25640): analysis.state \"affected\""),
        "{}",
        out(&o)
    );
    let o = pumpward(&data, &["sbom", "list", "--components", "2"]);
    assert!(
        out(&o).contains(
            "  VEX CVE-2022-25638 not_affected (code_not_reachable): affects urn:cdx:02826796-d30c-4aa6-b0a8-44207a01cb6c/1#BomRef.6730320963532548.7863229239413411"
        ),
        "{}",
        out(&o)
    );
}
