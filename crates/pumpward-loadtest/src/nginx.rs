//! nginx (the Debian package) terminating mutual TLS with certificates from
//! the same Pumpward CA, as the baseline for the handshake benchmark.
//!
//! The files: a server certificate issued by the CA's issuing CA for
//! `localhost`/`127.0.0.1` (a fresh ECDSA P-256 key, as the gateway gets at
//! each start), the issuing CA and root as `ssl_client_certificate`, and as
//! `ssl_crl` the issuing CA's current CRL plus an (empty) CRL signed by the
//! root — nginx checks revocation for every certificate of the chain
//! (`X509_V_FLAG_CRL_CHECK_ALL`), so without a root CRL it refuses every
//! client. The gateway checks only the device certificate against the CRL
//! (its trust anchor is the issuing CA itself).
//!
//! [`Nginx`] stops the server (SIGTERM, then SIGKILL) when dropped, so a
//! benchmark never leaves it running.

use crate::util::{send_signal, Layout};
use anyhow::{anyhow, bail, Context, Result};
use pumpward_server::pki::CaService;
use pumpward_store::Store;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Writes the certificates, key, CRLs, document and configuration.
pub async fn prepare(layout: &Layout, listen: SocketAddr) -> Result<PathBuf> {
    let dir = layout.nginx();
    std::fs::create_dir_all(dir.join("html/pki"))?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    let store = Store::open_sqlite(&layout.data()).await?;
    let ca = CaService::open(store.clone(), crate::fleet::settings(layout), false).await?;
    let id = ca
        .server_identity(
            &["localhost".to_string(), "127.0.0.1".to_string()],
            "nginx (load test baseline)",
        )
        .await?;
    let key = match &id.key {
        rustls_pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        _ => bail!("unexpected server key format"),
    };
    write_private(
        &dir.join("server.key"),
        pumpward_pki::pem_encode("PRIVATE KEY", &key).as_bytes(),
    )?;
    std::fs::write(dir.join("server.pem"), &id.cert_pem)?;
    std::fs::write(dir.join("client-ca.pem"), ca.chain_pem())?;
    std::fs::write(dir.join("html/pki/ca.pem"), ca.chain_pem())?;
    let mut crls = ca.current_crl().await?.pem;
    crls.push_str(&root_crl(&store, &ca, layout).await?);
    std::fs::write(dir.join("crl.pem"), crls)?;
    store.close().await;
    let conf = config(&dir, listen);
    std::fs::write(dir.join("nginx.conf"), conf)?;
    Ok(dir)
}

/// An empty CRL signed by the root CA (whose key is opened here from its
/// sealed form with the KEK; the running CA never holds it).
async fn root_crl(store: &Store, ca: &CaService, layout: &Layout) -> Result<String> {
    let m = store
        .ca_material()
        .await?
        .ok_or_else(|| anyhow!("no CA in the store"))?;
    let sealed = m
        .root_key_sealed
        .ok_or_else(|| anyhow!("the CA has no root key (imported issuing CA)"))?;
    let kek = crate::fleet::settings(layout).kek.load()?;
    let pkcs8 = pumpward_pki::open_private_key(&sealed, &kek)?;
    let key = rcgen::KeyPair::try_from(pkcs8.as_slice())?;
    let root_der = ca
        .ca()
        .root_der()
        .ok_or_else(|| anyhow!("the chain has no root"))?
        .to_vec();
    let params = rcgen::CertificateParams::from_ca_cert_der(&root_der.into())?;
    let kid = params.key_identifier_method.clone();
    let root = params.self_signed(&key)?;
    let now = time::OffsetDateTime::now_utc();
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(7),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: kid,
    }
    .signed_by(&root, &key)?;
    Ok(crl.pem()?)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    Ok(())
}

/// The configuration: 2 workers (2 cores), mutual TLS required, the same
/// document the gateway serves at `/pki/ca.pem`, no access log (the gateway
/// writes none for a successful connection either).
pub fn config(dir: &Path, listen: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"# Written by pumpward-loadtest (handshakes baseline).
worker_processes 2;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/x-pem-file;
    server {{
        listen {listen} ssl;
        server_name localhost;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_client_certificate {d}/client-ca.pem;
        ssl_crl {d}/crl.pem;
        root {d}/html;
        location = /pki/ca.pem {{ }}
    }}
}}
"#
    )
}

/// A running nginx, stopped when dropped.
pub struct Nginx {
    child: Option<Child>,
    pub version: String,
}

impl Nginx {
    /// Starts `nginx -p <dir> -c <dir>/nginx.conf` in the foreground and
    /// waits for its port.
    pub async fn start(dir: &Path, listen: SocketAddr) -> Result<Nginx> {
        let bin = which_nginx()?;
        let out = Command::new(&bin).arg("-v").output()?;
        let version = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let test = Command::new(&bin)
            .arg("-t")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .output()?;
        if !test.status.success() {
            bail!(
                "nginx -t refused the configuration: {}",
                String::from_utf8_lossy(&test.stderr)
            );
        }
        let child = Command::new(&bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let mut n = Nginx {
            child: Some(child),
            version,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            if let Some(st) = n.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!(
                    "nginx exited at start ({st}); see {}/error.log",
                    dir.display()
                );
            }
            if Instant::now() > deadline {
                bail!("nginx did not start within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(n)
    }

    /// Fast shutdown (SIGTERM to the master, which stops its workers).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = send_signal(c.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

fn which_nginx() -> Result<PathBuf> {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    bail!("nginx is not installed (Debian: apt-get install -y nginx)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_the_mutual_tls_settings() {
        let c = config(Path::new("/x"), "127.0.0.1:9443".parse().unwrap());
        for needle in [
            "worker_processes 2;",
            "ssl_verify_client on;",
            "ssl_client_certificate /x/client-ca.pem;",
            "ssl_crl /x/crl.pem;",
            "listen 127.0.0.1:9443 ssl;",
        ] {
            assert!(c.contains(needle), "{needle}");
        }
    }
}
