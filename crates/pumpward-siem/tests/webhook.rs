//! Webhooks against a local HTTPS receiver (axum over rustls) that checks
//! every request's HMAC with `signature::verify`, fails some requests on
//! purpose, and records what it accepted.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{pki, sample_alert};
use pumpward_siem::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use pumpward_siem::transport::{client_config, WebhookSettings};
use pumpward_siem::{json_body, Destination, ExportConfig, Exporter, RetryPolicy};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

const SECRET: &[u8] = b"webhook secret shared with the SOC";

#[derive(Default)]
struct Receiver {
    accepted: Vec<Vec<u8>>,
    bad_signatures: usize,
    requests: usize,
}

/// Starts the receiver; every `fail_every`-th request is answered 503
/// before looking at it (a flapping SIEM).
async fn start_receiver(p: &pki::TestPki, fail_every: usize) -> (u16, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver::default()));
    let st = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let st = st.clone();
            async move {
                let mut r = st.lock().unwrap();
                r.requests += 1;
                if fail_every > 0 && r.requests % fail_every == 0 {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                match signature::verify(
                    SECRET,
                    &h(TIMESTAMP_HEADER),
                    &h(SIGNATURE_HEADER),
                    &body,
                    now,
                    300,
                ) {
                    Ok(()) => {
                        r.accepted.push(body.to_vec());
                        StatusCode::NO_CONTENT
                    }
                    Err(_) => {
                        r.bad_signatures += 1;
                        StatusCode::UNAUTHORIZED
                    }
                }
            }
        }),
    );
    let certs = vec![CertificateDer::from_pem_slice(p.server_cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(p.server_key_pem.as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(tls),
                        hyper_util::service::TowerToHyperService::new(app),
                    )
                    .await;
            });
        }
    });
    (port, state)
}

fn config(p: &pki::TestPki, port: u16, secret: &[u8], dir: &std::path::Path) -> ExportConfig {
    let mut cfg = ExportConfig::new(
        Destination::Webhook(WebhookSettings {
            url: format!("https://localhost:{port}/hook"),
            secret: secret.to_vec(),
            config: Arc::new(client_config(&p.ca_pem, None).unwrap()),
        }),
        dir,
    );
    cfg.retry = RetryPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    cfg
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_arrive_in_order_through_failures() {
    let p = pki::make();
    let (port, state) = start_receiver(&p, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let (exp, delivery) = Exporter::open(config(&p, port, SECRET, dir.path())).unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(delivery.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    const N: usize = 30;
    for n in 0..N {
        exp.enqueue(&sample_alert(n)).unwrap();
    }
    wait_for("delivery", || exp.metrics().delivered == N as u64).await;
    tx.send(true).unwrap();
    task.await.unwrap();

    let r = state.lock().unwrap();
    let want: Vec<Vec<u8>> = (0..N)
        .map(|n| json_body(&sample_alert(n)).into_bytes())
        .collect();
    assert_eq!(
        r.accepted, want,
        "every alert once, in order, byte for byte"
    );
    assert_eq!(r.bad_signatures, 0);
    let m = exp.metrics();
    assert!(m.retried >= (N / 4) as u64 - 1, "503s were retried: {m:?}");
    assert_eq!(m.queued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_nothing_is_lost() {
    let p = pki::make();
    let (port, state) = start_receiver(&p, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let (exp, delivery) = Exporter::open(config(&p, port, b"wrong secret", dir.path())).unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(delivery.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    exp.enqueue(&sample_alert(1)).unwrap();
    wait_for("refusals", || state.lock().unwrap().bad_signatures >= 2).await;
    tx.send(true).unwrap();
    task.await.unwrap();
    assert!(state.lock().unwrap().accepted.is_empty());
    let m = exp.metrics();
    assert_eq!((m.delivered, m.queued), (0, 1), "kept for a fixed secret");
    assert!(m.retried >= 2);
    drop(exp);

    // With the right secret the kept alert goes out after a restart.
    let (exp, delivery) = Exporter::open(config(&p, port, SECRET, dir.path())).unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(delivery.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    wait_for("delivery", || exp.metrics().delivered == 1).await;
    tx.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(
        state.lock().unwrap().accepted,
        vec![json_body(&sample_alert(1)).into_bytes()]
    );
}

#[tokio::test]
async fn a_receiver_with_an_untrusted_certificate_gets_nothing() {
    let p = pki::make();
    let other = pki::make();
    let (port, state) = start_receiver(&p, 0).await;
    let dir = tempfile::tempdir().unwrap();
    // The exporter trusts another CA than the one that signed the receiver.
    let mut cfg = config(&other, port, SECRET, dir.path());
    cfg.retry.max = Duration::from_millis(50);
    let (exp, delivery) = Exporter::open(cfg).unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(delivery.run(async move {
        let _ = rx.wait_for(|s| *s).await;
    }));
    exp.enqueue(&sample_alert(2)).unwrap();
    wait_for("failed attempts", || exp.metrics().retried >= 2).await;
    tx.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(state.lock().unwrap().requests, 0);
    assert_eq!(exp.metrics().queued, 1);
}
