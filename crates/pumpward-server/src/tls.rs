//! The server's TLS: its certificate and key, the rustls configuration, and
//! the accept loop that serves the router over it.
//!
//! This is the one place TLS is set up. Until the PKI issue lands, the server
//! makes itself a self-signed ECDSA P-256 certificate on first start and
//! keeps it in `<data-dir>/tls/`; the built-in CA will replace
//! [`load_or_create_identity`] and nothing else.

use anyhow::{Context, Result};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The certificate chain and key the server presents.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_pem: String,
}

/// Loads `tls/server.crt` and `tls/server.key`, creating them if absent.
pub fn load_or_create_identity(data_dir: &Path, names: &[String]) -> Result<Identity> {
    let dir = data_dir.join("tls");
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    if !crt.exists() || !key.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut params =
            rcgen::CertificateParams::new(names.to_vec()).context("certificate names")?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Pumpward server (self-signed)");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Pumpward");
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(397);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&kp)?;
        write_private(&key, kp.serialize_pem().as_bytes())?;
        std::fs::write(&crt, cert.pem()).with_context(|| format!("writing {}", crt.display()))?;
        tracing::info!(path = %crt.display(), "created a self-signed server certificate");
    }
    let cert_pem =
        std::fs::read_to_string(&crt).with_context(|| format!("reading {}", crt.display()))?;
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", crt.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(&key).with_context(|| format!("reading {}", key.display()))?;
    Ok(Identity {
        certs,
        key,
        cert_pem,
    })
}

/// Writes a private key readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// TLS 1.3, or TLS 1.2 with ECDHE and AEAD suites only (rustls offers no
/// others), HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_config(id: Identity) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(id.certs, id.key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The client's address, put into every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The next connection, or `None` once `shutdown` resolves. A failed
/// accept (e.g. out of file descriptors) is logged and retried: it must not
/// end the server.
pub(crate) async fn next_connection(
    listener: &TcpListener,
    shutdown: std::pin::Pin<&mut (impl std::future::Future<Output = ()> + ?Sized)>,
) -> Option<(tokio::net::TcpStream, SocketAddr)> {
    let mut shutdown = shutdown;
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => return Some(x),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = &mut shutdown => return None,
        }
    }
}

/// Serves HTTP/1.1 and HTTP/2 on an established TLS stream until it ends
/// or a graceful shutdown finishes it; `extensions` go into every request
/// (the peer address, a verified client certificate).
pub(crate) async fn serve_http<S>(
    io: S,
    app: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
    peer: SocketAddr,
    extensions: axum::http::Extensions,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().extend(extensions.clone());
        let mut app = app.clone();
        async move {
            use tower::Service;
            app.call(req.map(axum::body::Body::new)).await
        }
    });
    let builder = Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then stops
/// accepting and waits (up to 10 s) for open connections to finish.
pub async fn serve(
    listener: TcpListener,
    cfg: rustls::ServerConfig,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(cfg));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    while let Some((tcp, peer)) = next_connection(&listener, shutdown.as_mut()).await {
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let mut ext = axum::http::Extensions::new();
            ext.insert(PeerAddr(peer));
            serve_http(tls, app, watcher, peer, ext).await;
        });
    }
    tracing::info!("shutting down: waiting for open connections");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; closing them");
        }
    }
    Ok(())
}
