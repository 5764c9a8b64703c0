//! The server under test as a subprocess, the machine's state (`/proc`),
//! and small statistics.

use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where a benchmark keeps its server, identities and logs.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
        }
    }
    /// The server's `--data-dir`.
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
    /// The CA's key-encryption key file, beside (not inside) the data dir.
    pub fn kek(&self) -> PathBuf {
        self.root.join("ca.kek")
    }
    /// One PEM file per enrolled pump: key, certificate, chain.
    pub fn pumps(&self) -> PathBuf {
        self.root.join("pumps")
    }
    pub fn nginx(&self) -> PathBuf {
        self.root.join("nginx")
    }
    pub fn ca_pem(&self) -> PathBuf {
        self.data().join("tls/ca.pem")
    }
    pub fn server_log(&self) -> PathBuf {
        self.root.join("server.log")
    }
}

/// A running `pumpward serve`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    child: Option<Child>,
    pub pid: u32,
    pub gateway: SocketAddr,
    /// From spawn to the gateway port accepting.
    pub startup: Duration,
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub bin: PathBuf,
    pub layout: Layout,
    pub api: SocketAddr,
    pub gateway: SocketAddr,
}

impl ServerSpec {
    /// Starts the server and waits until the gateway accepts connections.
    pub async fn start(&self) -> Result<Server> {
        if !self.bin.exists() {
            bail!(
                "{} does not exist; run `cargo build --release --bin pumpward` first (or pass --bin)",
                self.bin.display()
            );
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.layout.server_log())
            .context("server log")?;
        let t0 = Instant::now();
        let child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.layout.data())
            .env("PUMPWARD_CA_KEK_FILE", self.layout.kek())
            .env(
                "RUST_LOG",
                std::env::var("PUMPWARD_LOADTEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .args([
                "serve",
                "--listen",
                &self.api.to_string(),
                "--gateway-listen",
                &self.gateway.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let pid = child.id();
        let mut s = Server {
            child: Some(child),
            pid,
            gateway: self.gateway,
            startup: Duration::ZERO,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = s.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!(
                    "the server exited at start ({st}); see {}",
                    self.layout.server_log().display()
                );
            }
            if tokio::net::TcpStream::connect(self.gateway).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("the server did not start within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        s.startup = t0.elapsed();
        Ok(s)
    }
}

impl Server {
    /// Sends a signal (`TERM`, `KILL`) and waits for the process to end.
    pub fn stop_with(&mut self, signal: &str) -> Result<Duration> {
        let t0 = Instant::now();
        if let Some(mut c) = self.child.take() {
            send_signal(c.id(), signal)?;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    c.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(t0.elapsed())
    }

    pub fn stop(&mut self) -> Result<Duration> {
        self.stop_with("TERM")
    }

    /// VmRSS in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        proc_status_kib(self.pid, "VmRSS")
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// User + system CPU time consumed so far.
    pub fn cpu(&self) -> Duration {
        proc_cpu(self.pid).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// `kill -<signal> <pid>` (no libc binding needed).
pub fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !st.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

pub fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let n = rest.split_whitespace().next().unwrap_or("0");
            return Ok(n.parse()?);
        }
    }
    bail!("{field} not in /proc/{pid}/status")
}

/// User + system time of a process (clock ticks at 100 Hz, the Linux default).
pub fn proc_cpu(pid: u32) -> Result<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is index 0, utime 11, stime 12.
    let ticks: u64 =
        f.get(11).unwrap_or(&"0").parse::<u64>()? + f.get(12).unwrap_or(&"0").parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}

/// This process's CPU time.
pub fn self_cpu() -> Duration {
    proc_cpu(std::process::id()).unwrap_or_default()
}

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The open-file limit of this process (inherited by the server).
pub fn nofile_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| {
                    l.split_whitespace()
                        .skip(3)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("/")
                })
        })
        .unwrap_or_else(|| "?".into())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Median of a sample (mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of a sample.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

/// A line of the machine's state, printed before each benchmark.
pub fn machine_line() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .unwrap_or_default();
    format!(
        "machine: {cpus} CPUs, MemTotal {mem} kB, nofile {}, loadavg {}",
        nofile_limit(),
        loadavg()
    )
}

/// SHA-256 of `b`, lowercase hex.
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
    }

    #[test]
    fn reads_its_own_proc_entries() {
        assert!(proc_status_kib(std::process::id(), "VmRSS").unwrap() > 0);
        let _ = self_cpu();
        assert!(!loadavg().is_empty());
    }
}
