//! The three ways out: syslog over UDP (RFC 5426), syslog over TLS
//! (RFC 5425) and signed HTTPS webhooks.
//!
//! A transport takes a batch of messages, already formatted, and either
//! accepts all of them or says how many of the first ones it accepted
//! before it failed. "Accepted" means:
//!
//! - UDP: the datagram was handed to the kernel (no delivery guarantee at
//!   all: UDP is for collectors that offer nothing else);
//! - TLS: the framed batch was written and flushed to the connection, and
//!   the connection was still open a short moment later (see
//!   [`TlsSettings::settle`]);
//! - webhook: the receiver answered 2xx.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::signature;
use crate::syslog::frame_into;

/// Why the configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SIEM destination: {0}")]
pub struct ConfigError(pub String);

/// How long to wait to connect, and for one write or request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    // The workspace's one provider (see pumpward-server's tls module).
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration that trusts only the certificates in
/// `ca_pem` (the collector's CA), optionally presenting a client
/// certificate (`cert_pem` chain, `key_pem` PKCS#8/SEC1/PKCS#1 key) for
/// collectors that verify their peers (rsyslog `x509/certvalid` or
/// `x509/name`).
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> Result<ClientConfig, ConfigError> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let c = c.map_err(|e| ConfigError(format!("CA certificate PEM: {e}")))?;
        roots
            .add(c)
            .map_err(|e| ConfigError(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ConfigError(
            "the CA PEM holds no certificate; verification is never turned off".into(),
        ));
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| ConfigError(format!("server verifier: {e}")))?;
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(e.to_string()))?
        .with_webpki_verifier(verifier);
    match client {
        None => Ok(b.with_no_client_auth()),
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ConfigError(format!("client certificate PEM: {e}")))?;
            if chain.is_empty() {
                return Err(ConfigError("the client certificate PEM is empty".into()));
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| ConfigError(format!("client key PEM: {e}")))?;
            b.with_client_auth_cert(chain, key)
                .map_err(|e| ConfigError(format!("client certificate: {e}")))
        }
    }
}

/// Syslog over TLS (RFC 5425).
#[derive(Clone)]
pub struct TlsSettings {
    /// Collector host (name or address) and port (6514 is the standard).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The name the collector's certificate must carry; the host when
    /// `None`.
    pub server_name: Option<String>,
    /// The TLS configuration ([`client_config`]).
    pub config: Arc<ClientConfig>,
    /// After a flushed write, how long to watch the connection before the
    /// batch counts as accepted. A collector that died or closed the
    /// connection answers a write with a reset; seeing it here means the
    /// batch is sent again instead of being lost in a dead socket. (RFC
    /// 5425 has no acknowledgements, so this narrows the window but cannot
    /// close it.) Default 20 ms.
    pub settle: Duration,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("server_name", &self.server_name)
            .field("settle", &self.settle)
            .finish_non_exhaustive()
    }
}

/// An HTTPS webhook.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The `https://` URL messages are POSTed to.
    pub url: String,
    /// The HMAC key ([`crate::signature`]).
    pub secret: Vec<u8>,
    /// The TLS configuration ([`client_config`] with the receiver's CA).
    pub config: Arc<ClientConfig>,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The first `accepted` messages of the batch went through; then `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (after {accepted} accepted)")]
pub struct DeliveryError {
    /// Messages accepted before the failure.
    pub accepted: usize,
    /// What failed.
    pub reason: String,
}

fn failed(accepted: usize, reason: impl Into<String>) -> DeliveryError {
    DeliveryError {
        accepted,
        reason: reason.into(),
    }
}

/// A transport with its connection state.
pub(crate) enum Link {
    Udp {
        addr: SocketAddr,
        socket: Option<UdpSocket>,
    },
    Tls {
        settings: TlsSettings,
        stream: Option<Box<TlsStream<TcpStream>>>,
    },
    Webhook {
        settings: WebhookSettings,
        client: reqwest::Client,
    },
}

impl Link {
    pub(crate) fn udp(addr: SocketAddr) -> Self {
        Link::Udp { addr, socket: None }
    }

    pub(crate) fn tls(settings: TlsSettings) -> Self {
        Link::Tls {
            settings,
            stream: None,
        }
    }

    pub(crate) fn webhook(settings: WebhookSettings) -> Result<Self, ConfigError> {
        let url = reqwest::Url::parse(&settings.url)
            .map_err(|e| ConfigError(format!("webhook URL {:?}: {e}", settings.url)))?;
        if url.scheme() != "https" {
            return Err(ConfigError(format!(
                "webhook URL {:?} is not https",
                settings.url
            )));
        }
        let mut tls = (*settings.config).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .http1_only()
            .timeout(IO_TIMEOUT)
            .connect_timeout(IO_TIMEOUT)
            .build()
            .map_err(|e| ConfigError(format!("webhook client: {e}")))?;
        Ok(Link::Webhook { settings, client })
    }

    /// Sends `batch` in order; see the module documentation for what
    /// counts as accepted.
    pub(crate) async fn deliver(&mut self, batch: &[Vec<u8>]) -> Result<(), DeliveryError> {
        match self {
            Link::Udp { addr, socket } => deliver_udp(*addr, socket, batch).await,
            Link::Tls { settings, stream } => deliver_tls(settings, stream, batch).await,
            Link::Webhook { settings, client } => deliver_webhook(settings, client, batch).await,
        }
    }
}

async fn deliver_udp(
    addr: SocketAddr,
    socket: &mut Option<UdpSocket>,
    batch: &[Vec<u8>],
) -> Result<(), DeliveryError> {
    if socket.is_none() {
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let s = UdpSocket::bind(local)
            .await
            .map_err(|e| failed(0, format!("UDP socket: {e}")))?;
        // Connected, so an ICMP port-unreachable from a stopped collector
        // comes back as an error on a later send.
        s.connect(addr)
            .await
            .map_err(|e| failed(0, format!("UDP connect {addr}: {e}")))?;
        *socket = Some(s);
    }
    let Some(s) = socket.as_ref() else {
        return Err(failed(0, "no UDP socket"));
    };
    for (i, m) in batch.iter().enumerate() {
        if let Err(e) = s.send(m).await {
            *socket = None;
            return Err(failed(i, format!("UDP send to {addr}: {e}")));
        }
    }
    Ok(())
}

/// `Some(reason)` if the collector has closed or reset the connection.
/// A syslog collector never sends anything, so anything readable is the
/// end of the connection (or stray bytes, ignored).
async fn closed_within(stream: &mut TlsStream<TcpStream>, wait: Duration) -> Option<String> {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Err(_) => None,
        Ok(Ok(0)) => Some("the collector closed the connection".into()),
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("connection failed: {e}")),
    }
}

async fn connect_tls(settings: &TlsSettings) -> Result<TlsStream<TcpStream>, String> {
    let name = settings.server_name.as_deref().unwrap_or(&settings.host);
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|e| format!("server name {name:?}: {e}"))?;
    let tcp = tokio::time::timeout(
        IO_TIMEOUT,
        TcpStream::connect((settings.host.as_str(), settings.port)),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("connect {}:{}: {e}", settings.host, settings.port))?;
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout(
        IO_TIMEOUT,
        TlsConnector::from(settings.config.clone()).connect(server_name, tcp),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_string())?
    .map_err(|e| format!("TLS handshake with {name}: {e}"))
}

async fn deliver_tls(
    settings: &TlsSettings,
    stream: &mut Option<Box<TlsStream<TcpStream>>>,
    batch: &[Vec<u8>],
) -> Result<(), DeliveryError> {
    // A connection the collector closed while idle is replaced before
    // anything is written into it.
    if let Some(s) = stream.as_mut() {
        if closed_within(s, Duration::ZERO).await.is_some() {
            *stream = None;
        }
    }
    if stream.is_none() {
        let mut fresh = connect_tls(settings).await.map_err(|r| failed(0, r))?;
        // With TLS 1.3 the client's handshake ends before the collector
        // has judged our certificate; a collector that refuses it closes
        // the connection right after. Give it the settle time to do so
        // before the first batch goes into a connection about to die.
        if let Some(reason) = closed_within(&mut fresh, settings.settle).await {
            return Err(failed(
                0,
                format!("collector refused the session: {reason}"),
            ));
        }
        *stream = Some(Box::new(fresh));
    }
    let Some(s) = stream.as_mut() else {
        return Err(failed(0, "no TLS connection"));
    };
    let mut buf = Vec::with_capacity(batch.iter().map(|m| m.len() + 8).sum());
    for m in batch {
        frame_into(m, &mut buf);
    }
    let written = tokio::time::timeout(IO_TIMEOUT, async {
        s.write_all(&buf).await?;
        s.flush().await
    })
    .await;
    let problem = match written {
        Err(_) => Some("write timed out".to_string()),
        Ok(Err(e)) => Some(format!("write failed: {e}")),
        Ok(Ok(())) => closed_within(s, settings.settle).await,
    };
    if let Some(reason) = problem {
        *stream = None;
        return Err(failed(0, reason));
    }
    Ok(())
}

async fn deliver_webhook(
    settings: &WebhookSettings,
    client: &reqwest::Client,
    batch: &[Vec<u8>],
) -> Result<(), DeliveryError> {
    for (i, body) in batch.iter().enumerate() {
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let r = client
            .post(&settings.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::TIMESTAMP_HEADER, ts.to_string())
            .header(
                signature::SIGNATURE_HEADER,
                signature::sign(&settings.secret, ts, body),
            )
            .body(body.clone())
            .send()
            .await;
        match r {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => return Err(failed(i, format!("webhook answered {}", resp.status()))),
            Err(e) => return Err(failed(i, format!("webhook request: {e}"))),
        }
    }
    Ok(())
}
