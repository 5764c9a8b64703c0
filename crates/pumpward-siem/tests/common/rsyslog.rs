//! A private rsyslogd (Debian `rsyslog` + `rsyslog-gnutls`) in a temporary
//! directory, listening with TLS (gtls, `x509/name`: it verifies the
//! exporter's client certificate; `tls.log`) and UDP (`udp.log`), writing
//! every raw message it receives, JSON-escaped, one per line.
//!
//! Shared by this crate's tests and the server's SIEM wiring test
//! (`crates/pumpward-server/tests/siem_common`), which includes this file
//! by path; it needs `super::pki` and `super::skip` beside it.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{pki, skip};
use pumpward_siem::transport::{client_config, TlsSettings};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";
const GTLS: &str = "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Rsyslog {
    /// Where its configuration, certificates and output files are.
    pub dir: PathBuf,
    /// The TLS (imtcp) port.
    pub tcp: u16,
    /// The UDP port.
    pub udp: u16,
    child: Option<Child>,
}

impl Rsyslog {
    /// None (after printing or panicking per `skip`) when rsyslog or its
    /// TLS driver is not installed.
    pub fn prepare(dir: &Path) -> Option<Self> {
        if !Path::new(RSYSLOGD).exists() {
            skip(
                "rsyslog",
                "rsyslogd is not installed (apt-get install rsyslog)",
            );
            return None;
        }
        let gtls_present = Path::new(GTLS).exists()
            || Command::new("sh")
                .args(["-c", "ls /usr/lib/*/rsyslog/lmnsd_gtls.so"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if !gtls_present {
            skip(
                "rsyslog",
                "the gtls driver is not installed (apt-get install rsyslog-gnutls)",
            );
            return None;
        }
        let pki = pki::make();
        for (name, body) in [
            ("ca.pem", &pki.ca_pem),
            ("server.pem", &pki.server_cert_pem),
            ("server.key", &pki.server_key_pem),
            ("client.pem", &pki.client_cert_pem),
            ("client.key", &pki.client_key_pem),
        ] {
            std::fs::write(dir.join(name), body).unwrap();
        }
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let (tcp, udp) = (free_port(), free_port());
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}/work"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{d}/ca.pem"
       defaultNetstreamDriverCertFile="{d}/server.pem"
       defaultNetstreamDriverKeyFile="{d}/server.key"
       maxMessageSize="64k"
       net.enableDNS="off"
       parser.escapeControlCharactersOnReceive="off")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1"
       streamDriver.authMode="x509/name" permittedPeer=["{peer}"])
module(load="imudp")
template(name="raw" type="string" string="%rawmsg:::json%\n")
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="raw") }}
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="raw") }}
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tls")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
"#,
            peer = pki::CLIENT_NAME
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        Some(Self {
            dir: dir.to_owned(),
            tcp,
            udp,
            child: None,
        })
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rsyslogd.out"))
            .unwrap();
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.tcp)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "rsyslogd exited ({status}): {}",
                    std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "rsyslogd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait: rsyslog writes out what it has and exits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The raw messages rsyslog wrote to `file`, in order.
    pub fn received(&self, file: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        // Only complete lines: rsyslog may be half-way through writing one.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_str::<String>(&format!("\"{l}\""))
                    .unwrap_or_else(|e| panic!("rsyslog line {l:?}: {e}"))
            })
            .collect()
    }

    pub fn tls_settings(&self) -> TlsSettings {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap();
        let (cert, key) = (read("client.pem"), read("client.key"));
        TlsSettings {
            host: "127.0.0.1".into(),
            port: self.tcp,
            server_name: Some("localhost".into()),
            config: Arc::new(client_config(&read("ca.pem"), Some((&cert, &key))).unwrap()),
            settle: Duration::from_millis(20),
        }
    }

    pub fn udp_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.udp).into()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}
