//! Formatting throughput: CEF and RFC 5424 (with a CEF body) per alert,
//! against serde_json of the same message as the same-run baseline.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pumpward_siem::syslog::{rfc5424_into, SyslogOptions};
use pumpward_siem::{cef, json_body, Severity, SiemMessage};

fn alert() -> SiemMessage {
    SiemMessage {
        id: "alert-000123".into(),
        time: time::macros::datetime!(2026-11-26 15:04:05.123456 UTC),
        severity: Severity::High,
        host: "pumpward-01.hospital.example".into(),
        app_name: "pumpward".into(),
        msg_id: "alert".into(),
        signature_id: "druglib.hash_mismatch".into(),
        name: "Drug library hash differs from the published one".into(),
        fields: vec![
            ("asset_id".into(), "PUMP-0042".into()),
            ("care_area".into(), "adult-icu".into()),
            ("expected".into(), "sha256:9f86d081884c7d65".into()),
            ("observed".into(), "sha256:2c26b46b68ffc68f".into()),
            ("rule".into(), "CSF DE.CM-09; a=b \\ c | d ] \"e\"".into()),
        ],
    }
}

fn bench(c: &mut Criterion) {
    let m = alert();
    let mut g = c.benchmark_group("siem_format");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cef", |b| {
        let mut out = String::with_capacity(1024);
        b.iter(|| {
            out.clear();
            cef::cef_into(black_box(&m), &mut out);
            black_box(out.len())
        })
    });
    let opts = SyslogOptions::default();
    g.bench_function("rfc5424_cef", |b| {
        let mut out = String::with_capacity(1024);
        b.iter(|| {
            out.clear();
            rfc5424_into(black_box(&m), &opts, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("json_body", |b| b.iter(|| json_body(black_box(&m)).len()));
    // Baseline: serde_json of a plain derived struct with the same content.
    #[derive(serde::Serialize)]
    struct Plain<'a> {
        id: &'a str,
        time: time::OffsetDateTime,
        severity: &'a str,
        host: &'a str,
        app: &'a str,
        msg_id: &'a str,
        signature_id: &'a str,
        name: &'a str,
        fields: &'a [(String, String)],
    }
    g.bench_function("baseline_serde_json", |b| {
        b.iter(|| {
            let p = Plain {
                id: &m.id,
                time: m.time,
                severity: m.severity.as_str(),
                host: &m.host,
                app: &m.app_name,
                msg_id: &m.msg_id,
                signature_id: &m.signature_id,
                name: &m.name,
                fields: &m.fields,
            };
            serde_json::to_vec(black_box(&p))
                .map(|v| v.len())
                .unwrap_or(0)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
