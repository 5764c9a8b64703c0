//! Full mutual-TLS handshakes per second, the same client against the
//! Pumpward gateway and against nginx.

use anyhow::{anyhow, bail, Result};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What a connection does after its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `GET /pki/ca.pem` with `Connection: close`, read the whole answer.
    Get,
    /// Send close_notify at once and wait for the server to close: the
    /// server must have processed the client's certificate and Finished.
    Close,
}

/// One round's result.
#[derive(Debug, Default)]
pub struct Round {
    pub connections: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Connect + handshake, ms.
    pub handshake_ms: Vec<f64>,
    pub first_error: Option<String>,
    pub negotiated: Option<String>,
}

impl Round {
    pub fn per_second(&self) -> f64 {
        self.connections as f64 / self.seconds
    }
}

/// One connection: TCP connect, full handshake, then `mode`. Returns the
/// time to the completed handshake and a description of what was negotiated.
pub async fn one(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
    name: &ServerName<'static>,
    mode: Mode,
) -> Result<(Duration, String)> {
    let t0 = Instant::now();
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = TlsConnector::from(cfg.clone())
        .connect(name.clone(), tcp)
        .await?;
    let hs = t0.elapsed();
    let c = tls.get_ref().1;
    let negotiated = format!(
        "{:?}, {:?}, {}, ALPN {}",
        c.protocol_version().ok_or_else(|| anyhow!("no version"))?,
        c.negotiated_cipher_suite()
            .ok_or_else(|| anyhow!("no suite"))?
            .suite(),
        c.negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()))
            .unwrap_or_else(|| "?".into()),
        c.alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_else(|| "none".into())
    );
    let mut buf = Vec::with_capacity(4096);
    match mode {
        Mode::Get => {
            tls.write_all(
                b"GET /pki/ca.pem HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
            .await?;
            tls.flush().await?;
            read_to_close(&mut tls, &mut buf).await?;
            if !buf.starts_with(b"HTTP/1.1 200") {
                bail!(
                    "unexpected answer: {:?}",
                    String::from_utf8_lossy(&buf[..buf.len().min(120)])
                );
            }
            let end = b"-----END CERTIFICATE-----";
            if !buf.windows(end.len()).any(|w| w == end) {
                bail!("incomplete answer ({} bytes)", buf.len());
            }
        }
        Mode::Close => {
            tls.shutdown().await?;
            read_to_close(&mut tls, &mut buf).await?;
            if !buf.is_empty() {
                bail!("unexpected data after close_notify: {} bytes", buf.len());
            }
        }
    }
    Ok((hs, negotiated))
}

/// Reads until the server closes; a TCP close without close_notify after
/// the answer is accepted (servers differ there), any other error is not.
async fn read_to_close<S: AsyncReadExt + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Result<()> {
    match tokio::time::timeout(Duration::from_secs(10), s.read_to_end(buf)).await {
        Err(_) => bail!("server did not close within 10 s"),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
        Ok(Err(e)) => Err(e.into()),
    }
}

/// `concurrency` workers open connections back to back for `seconds`.
pub async fn round(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    name: ServerName<'static>,
    mode: Mode,
    concurrency: usize,
    seconds: f64,
) -> Round {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (cfg, name) = (cfg.clone(), name.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = Round::default();
            while Instant::now() < deadline {
                match one(addr, &cfg, &name, mode).await {
                    Ok((hs, neg)) => {
                        r.connections += 1;
                        r.handshake_ms.push(hs.as_secs_f64() * 1000.0);
                        r.negotiated.get_or_insert(neg);
                    }
                    Err(e) => {
                        r.errors += 1;
                        r.first_error.get_or_insert(e.to_string());
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            r
        }));
    }
    let mut all = Round::default();
    for t in tasks {
        if let Ok(r) = t.await {
            all.connections += r.connections;
            all.errors += r.errors;
            all.handshake_ms.extend(r.handshake_ms);
            if all.first_error.is_none() {
                all.first_error = r.first_error;
            }
            if all.negotiated.is_none() {
                all.negotiated = r.negotiated;
            }
        }
    }
    all.seconds = start.elapsed().as_secs_f64();
    all
}
