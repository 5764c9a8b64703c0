//! The fleet VEX document validates against the official CSAF 2.0 JSON
//! schema (vendored under tests/data/csaf-schema, provenance in
//! tests/data/README.md), with format assertions on (date-time, uri), and
//! passes the cheap mandatory tests.

use pumpward_vuln::vex::{
    fleet_vex, mandatory_problems, FleetProduct, FleetStatus, Remediation, Statement, VexHeader,
};
use serde_json::{json, Value};

const CSAF: &str = "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json";

fn schema_file(name: &str) -> Value {
    let p = format!(
        "{}/tests/data/csaf-schema/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Validates, returning the validator's message on failure.
fn validate(doc: &Value) -> Result<(), String> {
    let mut compiler = boon::Compiler::new();
    compiler.enable_format_assertions();
    compiler
        .add_resource(CSAF, schema_file("csaf_json_schema.json"))
        .unwrap();
    for v in ["2.0", "3.0", "3.1"] {
        let mut s = schema_file(&format!("cvss-v{v}.json"));
        // The files' `$id` carries a date query that the CSAF schema's
        // `$ref` does not: registered under the URL the schema refers to.
        s.as_object_mut().unwrap().remove("$id");
        compiler
            .add_resource(&format!("https://www.first.org/cvss/cvss-v{v}.json"), s)
            .unwrap();
    }
    let mut schemas = boon::Schemas::new();
    let idx = compiler.compile(CSAF, &mut schemas).unwrap();
    schemas.validate(doc, idx).map_err(|e| format!("{e:#}"))
}

fn fleet() -> Value {
    let p = |manufacturer: &str, model: &str, version: &str| FleetProduct {
        manufacturer: manufacturer.into(),
        model: model.into(),
        version: version.into(),
    };
    fleet_vex(
        &VexHeader {
            publisher: "General Hospital".into(),
            namespace: "https://hospital.example".into(),
            tracking_id: "PUMPWARD-VEX-2026-11-26".into(),
            date: "2026-11-26T19:00:00Z".into(),
        },
        &[
            Statement {
                cve: "CVE-2015-3459".into(),
                title: Some("Improper authorization".into()),
                product: p("Hospira", "Plum A+", "13.3"),
                status: FleetStatus::Affected(vec![Remediation {
                    category: "vendor_fix".into(),
                    details: "Update to 15.0".into(),
                    url: Some("https://www.icumed.com/".into()),
                }]),
            },
            Statement {
                cve: "CVE-2015-3459".into(),
                title: None,
                product: p("Hospira", "Plum A+", "13.5"),
                status: FleetStatus::NotAffected(
                    "firmware 13.5 is outside every affected version range".into(),
                ),
            },
            Statement {
                cve: "CVE-2015-3459".into(),
                title: None,
                product: p("Hospira", "Plum A+", "13.40"),
                status: FleetStatus::UnderInvestigation("13.40 may be 13.4".into()),
            },
            Statement {
                cve: "CVE-2020-25165".into(),
                title: Some("Authentication bypass".into()),
                product: p("BD", "Alaris 8015 PC Unit", "9.33.1"),
                status: FleetStatus::Fixed,
            },
        ],
    )
}

#[test]
fn the_fleet_vex_validates_against_the_csaf_schema() {
    let doc = fleet();
    validate(&doc).unwrap();
    assert_eq!(mandatory_problems(&doc), Vec::<String>::new());
}

#[test]
fn the_schema_rejects_what_breaks_it() {
    // The validator is in force: a vulnerability without any status, a
    // remediation category outside the enum, a date that is not one.
    for (path, value) in [
        ("/vulnerabilities/0/product_status", json!({})),
        (
            "/vulnerabilities/0/remediations/0/category",
            json!("patch_it"),
        ),
        (
            "/document/tracking/current_release_date",
            json!("yesterday"),
        ),
    ] {
        let mut doc = fleet();
        let (parent, key) = path.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap()[key] = value;
        assert!(validate(&doc).is_err(), "{path} accepted");
    }
}
