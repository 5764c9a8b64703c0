//! Parsing and matching throughput on the real advisories.
//!
//! - `csaf/parse_all_pump_files`: the 17 pump CSAF files of `tests/data/csaf`
//!   (431 KB) parsed and resolved, one iteration = all 17.
//! - `match/constraint`: one asset version against one advisory rule, over a
//!   mix of every rule form found in those files (ranges, lists, letters,
//!   builds, models, release lines) and the issue's component condition.
//! - `match/parse_and_match`: the same, reading the rule text each time (what
//!   a matcher without a cache of parsed rules would pay).
//!
//! - `sbom/cyclonedx_10k`: a generated CycloneDX 1.6 JSON SBOM of 10,000
//!   components (bom-ref, type, name, version, supplier, purl, CPE; each
//!   depending on up to three later ones), parsed with its dependency graph
//!   checked; `sbom/json_only_10k` reads the same bytes as plain JSON
//!   (`serde_json::Value`), the same-run baseline.
//!
//! Run: `cargo bench -p pumpward-vuln --bench vuln`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pumpward_vuln::constraint::{Component, Installed, VersionConstraint};
use pumpward_vuln::version::Scheme;
use pumpward_vuln::{csaf, sbom};
use std::path::Path;

fn pump_files() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/csaf");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/csaf")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
}

/// (rule text, asset version, asset model, scheme).
const CASES: &[(&str, &str, Option<&str>, Scheme)] = &[
    ("<= 9.33.1", "9.19", None, Scheme::DottedNumeric),
    ("<= 9.33.1", "12.1.3", None, Scheme::DottedNumeric),
    (
        "9.13 | 9.19 | 9.33 | 12.1",
        "9.33",
        None,
        Scheme::DottedNumeric,
    ),
    ("<= U61 |<= L81", "L80", None, Scheme::BBraunLine),
    ("A10 | A11", "A12", None, Scheme::BBraunLine),
    ("<= 2.6A", "2.5B", None, Scheme::Generic),
    ("<=13.4", "13.40", None, Scheme::Generic),
    ("< 3.0", "2.9.1", None, Scheme::Generic),
    ("2.3.6 and  below", "2.3.7", None, Scheme::DottedNumeric),
    (
        "1.1.3 MR Build 11",
        "1.1.3 MR Build 11",
        None,
        Scheme::DottedNumeric,
    ),
    ("vers:all/*", "1.0", None, Scheme::Generic),
    (
        "MMT-1715 | MMT-1754 | MMT-1755",
        "4.0",
        Some("MMT-1754"),
        Scheme::Generic,
    ),
    (
        "v6.x with Wireless Battery Modules v16 … v22D28",
        "6.05",
        None,
        Scheme::Generic,
    ),
];

fn bench(c: &mut Criterion) {
    let files = pump_files();
    let bytes: usize = files.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("csaf");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("parse_all_pump_files", |b| {
        b.iter(|| {
            for f in &files {
                black_box(csaf::parse(black_box(f)).expect("parses"));
            }
        })
    });
    g.finish();

    let wbm = [Component {
        name: "Wireless Battery Module".into(),
        version: "22D24".into(),
    }];
    let parsed: Vec<(VersionConstraint, Installed<'_>, Scheme)> = CASES
        .iter()
        .map(|&(rule, version, model, scheme)| {
            (
                VersionConstraint::parse(rule),
                Installed {
                    version: Some(version),
                    model,
                    components: &wbm,
                },
                scheme,
            )
        })
        .collect();
    let mut g = c.benchmark_group("match");
    g.throughput(Throughput::Elements(CASES.len() as u64));
    g.bench_function("constraint", |b| {
        b.iter(|| {
            for (rule, inst, scheme) in &parsed {
                black_box(rule.matches(black_box(inst), *scheme));
            }
        })
    });
    g.bench_function("parse_and_match", |b| {
        b.iter(|| {
            for (&(text, ..), (_, inst, scheme)) in CASES.iter().zip(&parsed) {
                let rule = VersionConstraint::parse(black_box(text));
                black_box(rule.matches(inst, *scheme));
            }
        })
    });
    g.finish();
}

/// A CycloneDX 1.6 JSON SBOM of `n` components, as a pump vendor's
/// firmware SBOM looks (a library per component, a purl and a CPE each).
fn cyclonedx(n: usize) -> Vec<u8> {
    let comps: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"bom-ref":"c{i}","type":"library","name":"lib{i}","version":"1.{i}.0","supplier":{{"name":"Vendor {v}"}},"purl":"pkg:generic/vendor{v}/lib{i}@1.{i}.0","cpe":"cpe:2.3:a:vendor{v}:lib{i}:1.{i}.0:*:*:*:*:*:*:*"}}"#,
                v = i % 50
            )
        })
        .collect();
    let deps: Vec<String> = (0..n)
        .map(|i| {
            let on: Vec<String> = (i + 1..(i + 4).min(n))
                .map(|j| format!(r#""c{j}""#))
                .collect();
            format!(r#"{{"ref":"c{i}","dependsOn":[{}]}}"#, on.join(","))
        })
        .collect();
    format!(
        r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"metadata":{{"component":{{"bom-ref":"fw","type":"firmware","name":"Pump firmware","version":"9.33.1"}}}},"components":[{}],"dependencies":[{}]}}"#,
        comps.join(","),
        deps.join(",")
    )
    .into_bytes()
}

fn bench_sbom(c: &mut Criterion) {
    let doc = cyclonedx(10_000);
    let parsed = sbom::parse(&doc).expect("parses");
    assert_eq!(parsed.components.len(), 10_000);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let mut g = c.benchmark_group("sbom");
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("cyclonedx_10k", |b| {
        b.iter(|| black_box(sbom::parse(black_box(&doc)).expect("parses")))
    });
    g.bench_function("json_only_10k", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<serde_json::Value>(black_box(&doc)).expect("json"))
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_sbom);
criterion_main!(benches);
