//! The exporter against a real rsyslog (Debian `rsyslog` + `rsyslog-gnutls`):
//! a private rsyslogd ([`common::rsyslog`]) listening with TLS (it verifies
//! our client certificate) and UDP.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::reference::{parse_5424, parse_cef};
use common::rsyslog::Rsyslog;
use common::{pki, sample_alert};
use pumpward_siem::syslog::{BodyFormat, SyslogOptions};
use pumpward_siem::transport::{client_config, TlsSettings};
use pumpward_siem::{Destination, ExportConfig, Exporter, RetryPolicy};

fn options(body: BodyFormat) -> SyslogOptions {
    SyslogOptions {
        body,
        ..SyslogOptions::default()
    }
}

fn fast_retry(mut cfg: ExportConfig) -> ExportConfig {
    cfg.retry = RetryPolicy {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
    };
    cfg
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks a received raw message against the alert it came from, field by
/// field through the reference parsers, and byte for byte.
fn assert_intact(raw: &str, dest: &Destination, n: usize) {
    let m = sample_alert(n);
    assert_eq!(raw, dest.render(&m), "message {n} arrived changed");
    let s = parse_5424(raw).unwrap();
    assert_eq!(s.params[0], ("id".to_string(), m.id.clone()));
    assert_eq!(s.params[3..], m.fields[..]);
    if s.msg.starts_with("CEF:") {
        let c = parse_cef(&s.msg).unwrap();
        assert_eq!(c.name, m.name);
        assert_eq!(c.extension[5..], m.fields[..]);
    } else {
        let v: serde_json::Value = serde_json::from_str(&s.msg).unwrap();
        assert_eq!(v["fields"]["note"].as_str(), m.field("note"));
        assert_eq!(v["name"].as_str(), Some(m.name.as_str()));
    }
}

/// The alert number a received message carries (its `seq` field).
fn seq_of(raw: &str) -> usize {
    let s = parse_5424(raw).unwrap();
    s.params
        .iter()
        .find(|(k, _)| k == "seq")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cef_and_json_over_tls_and_udp_arrive_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut rs) = Rsyslog::prepare(tmp.path()) else {
        return;
    };
    rs.start();
    const N: usize = 60;
    let dests = [
        Destination::SyslogTls {
            tls: rs.tls_settings(),
            options: options(BodyFormat::Cef),
        },
        Destination::SyslogTls {
            tls: rs.tls_settings(),
            options: options(BodyFormat::Json),
        },
        Destination::SyslogUdp {
            addr: rs.udp_addr(),
            options: options(BodyFormat::Cef),
        },
        Destination::SyslogUdp {
            addr: rs.udp_addr(),
            options: options(BodyFormat::Json),
        },
    ];
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut exporters = Vec::new();
    let mut tasks = Vec::new();
    for (i, d) in dests.iter().enumerate() {
        let cfg = fast_retry(ExportConfig::new(
            d.clone(),
            tmp.path().join(format!("q{i}")),
        ));
        let (exp, delivery) = Exporter::open(cfg).unwrap();
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(delivery.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        })));
        exporters.push(exp);
    }
    for n in 0..N {
        for e in &exporters {
            e.enqueue(&sample_alert(n)).unwrap();
        }
        if n % 7 == 0 {
            // Some messages alone, some in batches.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    for e in &exporters {
        wait_for("delivery", || e.metrics().delivered == N as u64).await;
        let m = e.metrics();
        assert_eq!((m.queued, m.refused, m.enqueued), (0, 0, N as u64));
    }
    wait_for("rsyslog to write", || {
        rs.received("tls.log").len() >= 2 * N && rs.received("udp.log").len() >= 2 * N
    })
    .await;
    rs.stop();

    for (file, cef_dest, json_dest) in [
        ("tls.log", &dests[0], &dests[1]),
        ("udp.log", &dests[2], &dests[3]),
    ] {
        let got = rs.received(file);
        assert_eq!(got.len(), 2 * N, "{file}: every message exactly once");
        let (cef, json): (Vec<&String>, Vec<&String>) = got
            .iter()
            .partition(|r| parse_5424(r).unwrap().msg.starts_with("CEF:"));
        for (list, dest) in [(cef, cef_dest), (json, json_dest)] {
            let seqs: Vec<usize> = list.iter().map(|r| seq_of(r)).collect();
            if file == "tls.log" {
                assert_eq!(seqs, (0..N).collect::<Vec<_>>(), "{file}: in order");
            } else {
                let mut sorted = seqs.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..N).collect::<Vec<_>>(), "{file}: all arrived");
            }
            for r in list {
                assert_intact(r, dest, seq_of(r));
            }
        }
    }
    stop_tx.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_and_a_restart_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut rs) = Rsyslog::prepare(tmp.path()) else {
        return;
    };
    rs.start();
    let dest = Destination::SyslogTls {
        tls: rs.tls_settings(),
        options: options(BodyFormat::Cef),
    };
    let cfg = fast_retry(ExportConfig::new(dest.clone(), tmp.path().join("queue")));

    // Phase 1: the collector is up.
    let (exp, delivery) = Exporter::open(cfg.clone()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx = stop_rx.clone();
    let task = tokio::spawn(delivery.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    for n in 0..20 {
        exp.enqueue(&sample_alert(n)).unwrap();
    }
    wait_for("the first 20", || exp.metrics().delivered == 20).await;
    wait_for("rsyslog to write 20", || rs.received("tls.log").len() == 20).await;

    // Phase 2: the collector stops mid-stream; the producer is not held up.
    rs.stop();
    let started = Instant::now();
    for n in 20..35 {
        exp.enqueue(&sample_alert(n)).unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "enqueue waited for the dead collector: {:?}",
        started.elapsed()
    );
    wait_for("failed attempts", || exp.metrics().retried >= 2).await;
    assert_eq!(exp.metrics().delivered, 20);

    // Phase 3: Pumpward restarts while the collector is still down.
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    drop(exp);
    let (exp, delivery) = Exporter::open(cfg).unwrap();
    assert_eq!(
        exp.metrics().queued,
        15,
        "the undelivered 15 survived the restart"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rx = stop_rx.clone();
    let task = tokio::spawn(delivery.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    for n in 35..50 {
        exp.enqueue(&sample_alert(n)).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Phase 4: the collector comes back on the same port.
    rs.start();
    wait_for("the backlog", || exp.metrics().delivered == 30).await;
    wait_for("rsyslog to write all", || {
        let got = rs.received("tls.log");
        got.iter().map(|r| seq_of(r)).max() == Some(49)
    })
    .await;
    rs.stop();
    stop_tx.send(true).unwrap();
    task.await.unwrap();

    let got = rs.received("tls.log");
    let mut first_seen = Vec::new();
    for r in &got {
        let s = seq_of(r);
        assert_intact(r, &dest, s);
        if !first_seen.contains(&s) {
            first_seen.push(s);
        }
    }
    assert_eq!(
        first_seen,
        (0..50).collect::<Vec<_>>(),
        "every alert arrived, in order"
    );
    // At least once: a duplicate is possible only for a batch in flight
    // when the collector stopped, never more than one batch's worth.
    assert!(got.len() - 50 <= 15, "{} duplicates", got.len() - 50);
    eprintln!(
        "outage test: {} messages received for 50 alerts ({} duplicates)",
        got.len(),
        got.len() - 50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_collector_or_client_gets_nothing_through() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(mut rs) = Rsyslog::prepare(tmp.path()) else {
        return;
    };
    rs.start();
    let good = rs.tls_settings();
    let other = pki::make();

    // 1. The collector's certificate is not from the CA we were given.
    let impostor = TlsSettings {
        config: Arc::new(
            client_config(
                &other.ca_pem,
                Some((&other.client_cert_pem, &other.client_key_pem)),
            )
            .unwrap(),
        ),
        ..good.clone()
    };
    // 2. Our CA is right but we present no client certificate, which
    //    rsyslog's x509/name mode requires.
    let anonymous = TlsSettings {
        config: Arc::new(
            client_config(
                &std::fs::read_to_string(tmp.path().join("ca.pem")).unwrap(),
                None,
            )
            .unwrap(),
        ),
        ..good
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut exporters = Vec::new();
    for (i, tls) in [impostor, anonymous].into_iter().enumerate() {
        let dest = Destination::SyslogTls {
            tls,
            options: options(BodyFormat::Cef),
        };
        let cfg = fast_retry(ExportConfig::new(dest, tmp.path().join(format!("q{i}"))));
        let (exp, delivery) = Exporter::open(cfg).unwrap();
        let mut rx = stop_rx.clone();
        let task = tokio::spawn(delivery.run(async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        exp.enqueue(&sample_alert(i)).unwrap();
        exporters.push((exp, task));
    }
    // The impostor fails its handshake on our side every time.
    wait_for("refused handshakes", || {
        exporters[0].0.metrics().retried >= 2
    })
    .await;
    assert_eq!(exporters[0].0.metrics().delivered, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // rsyslog closes the session after judging the (missing) certificate;
    // the exporter sees that before writing and keeps the alert.
    let anon = exporters[1].0.metrics();
    assert_eq!((anon.delivered, anon.queued), (0, 1), "{anon:?}");
    assert!(anon.retried >= 1, "{anon:?}");
    rs.stop();
    stop_tx.send(true).unwrap();
    for (_, t) in exporters {
        t.await.unwrap();
    }
    assert!(
        rs.received("tls.log").is_empty(),
        "rsyslog wrote a message from an unauthenticated client"
    );
}
