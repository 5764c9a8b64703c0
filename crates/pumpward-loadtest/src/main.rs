//! `pumpward-loadtest`: measures the pump gateway (issue 3) against a real
//! `pumpward serve` started as a subprocess from the release build.
//!
//! ```text
//! pumpward-loadtest setup       --pumps 10000     assets + CA in <state>/data
//! pumpward-loadtest est         …                 (d) EST enrollments/s; saves the pumps' identities
//! pumpward-loadtest connections …                 (a) concurrent idle sessions, server RSS per session
//! pumpward-loadtest handshakes  …                 (b) mutual-TLS handshakes/s, gateway vs nginx
//! pumpward-loadtest events      …                 (c) durably acknowledged events/s
//! pumpward-loadtest reconnect   …                 (e) whole-fleet reconnect after a restart
//! ```
//!
//! Every command prints its figures and a final `RESULT {json}` line. The
//! method is in `docs/PERFORMANCE.md`, "Device channel (issue 3)".

mod device;
mod fleet;
mod handshake;
mod nginx;
mod rollout;
mod tls;
mod util;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use device::{Fleet, Pump, Target};
use rustls_pki_types::ServerName;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{loadavg, median, percentile, Layout, ServerSpec};

#[derive(Parser)]
#[command(
    name = "pumpward-loadtest",
    about = "Load generators for the Pumpward pump gateway"
)]
struct Cli {
    /// Benchmark state: the server's data dir, the KEK file, the pumps' identities.
    #[arg(long, global = true, default_value = "/tmp/pumpward-loadtest")]
    state: PathBuf,
    /// The server binary (default: $CARGO_TARGET_DIR or ./target, then release/pumpward).
    #[arg(long, global = true)]
    bin: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates the store: in-service pumps LT-00000… and the CA.
    Setup {
        #[arg(long, default_value_t = 10_000)]
        pumps: usize,
    },
    /// (d) EST simpleenroll with one-time codes; keeps each pump's identity.
    Est {
        /// Fleet size (assets are taken round-robin from it).
        #[arg(long, default_value_t = 10_000)]
        pumps: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[arg(long, default_value_t = 2_000)]
        per_run: usize,
        /// Concurrent clients.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// First asset index.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Reuse keep-alive connections instead of one new TLS connection per enrollment.
        #[arg(long)]
        reuse_connections: bool,
    },
    /// (a) Concurrent idle device sessions and the server's memory per session.
    Connections {
        #[arg(long, default_value_t = 10_000)]
        pumps: usize,
        /// New sessions per second during the ramp.
        #[arg(long, default_value_t = 250.0)]
        ramp: f64,
        /// Seconds to hold every session open after the last one connected.
        #[arg(long, default_value_t = 70)]
        hold: u64,
        /// Let dropped sessions reconnect (with the agent's back-off).
        #[arg(long)]
        reconnect: bool,
    },
    /// (b) Full mutual-TLS handshakes per second: gateway vs nginx, alternating.
    Handshakes {
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds per round.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Pairs of rounds (gateway + nginx, order swapped every pair).
        #[arg(long, default_value_t = 5)]
        pairs: usize,
        #[arg(long, value_enum, default_value = "get")]
        mode: handshake::Mode,
    },
    /// (c) Durably acknowledged events per second from a fleet of sessions.
    Events {
        #[arg(long, default_value_t = 1_000)]
        sessions: usize,
        /// Events per batch (1–1000).
        #[arg(long, default_value_t = 10)]
        batch: usize,
        /// Measurement windows and their length.
        #[arg(long, default_value_t = 5)]
        windows: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Warm-up before the first window.
        #[arg(long, default_value_t = 5.0)]
        warmup: f64,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Events per second per pump, as the agent sends under a steady
        /// load (whatever queued goes as one batch, one in flight); 0 sends
        /// batches of `--batch` back to back.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// (issue 4) Time to roll a new drug library out to the whole fleet.
    Rollout {
        #[arg(long, default_value_t = 10_000)]
        pumps: usize,
        /// New sessions per second while the fleet connects.
        #[arg(long, default_value_t = 250.0)]
        ramp: f64,
        /// Give up after this many seconds of rollout.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// (e) Time for the whole fleet to reconnect after the server is killed and restarted.
    Reconnect {
        #[arg(long, default_value_t = 2_000)]
        pumps: usize,
        /// TERM (graceful) or KILL.
        #[arg(long, default_value = "TERM")]
        signal: String,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Seconds every session stays up before each kill (≥ 60 s resets the agent's back-off).
        #[arg(long, default_value_t = 65)]
        hold: u64,
        #[arg(long, default_value_t = 250.0)]
        ramp: f64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        tokio::select! {
            r = run(cli) => r,
            _ = tokio::signal::ctrl_c() => {
                // Dropping the futures stops the server and nginx (their guards).
                bail!("interrupted")
            }
        }
    })
}

fn default_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("release/pumpward")
}

fn server_spec(cli: &Cli, layout: &Layout) -> Result<ServerSpec> {
    Ok(ServerSpec {
        bin: cli.bin.clone().unwrap_or_else(default_bin),
        layout: layout.clone(),
        api: SocketAddr::from(([127, 0, 0, 1], util::free_port()?)),
        gateway: SocketAddr::from(([127, 0, 0, 1], util::free_port()?)),
    })
}

fn result(v: serde_json::Value) {
    println!("RESULT {v}");
}

async fn run(cli: Cli) -> Result<()> {
    let layout = Layout::new(&cli.state);
    println!("{}", util::machine_line());
    match &cli.cmd {
        Cmd::Setup { pumps } => fleet::setup(&layout, *pumps).await,
        Cmd::Est {
            pumps,
            runs,
            per_run,
            concurrency,
            offset,
            reuse_connections,
        } => {
            est(
                &cli,
                &layout,
                *pumps,
                *runs,
                *per_run,
                *concurrency,
                *offset,
                *reuse_connections,
            )
            .await
        }
        Cmd::Connections {
            pumps,
            ramp,
            hold,
            reconnect,
        } => connections(&cli, &layout, *pumps, *ramp, *hold, *reconnect).await,
        Cmd::Rollout {
            pumps,
            ramp,
            timeout,
        } => rollout(&cli, &layout, *pumps, *ramp, *timeout).await,
        Cmd::Handshakes {
            concurrency,
            seconds,
            pairs,
            mode,
        } => handshakes(&cli, &layout, *concurrency, *seconds, *pairs, *mode).await,
        Cmd::Events {
            sessions,
            batch,
            windows,
            seconds,
            warmup,
            offset,
            rate,
        } => {
            let load = if *rate > 0.0 {
                Load::Rate(*rate)
            } else {
                Load::BackToBack(*batch)
            };
            events(
                &cli, &layout, *sessions, load, *windows, *seconds, *warmup, *offset,
            )
            .await
        }
        Cmd::Reconnect {
            pumps,
            signal,
            runs,
            hold,
            ramp,
        } => reconnect(&cli, &layout, *pumps, signal, *runs, *hold, *ramp).await,
    }
}

fn gateway_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("name")
}

// ---------------------------------------------------------------------------
// (d) EST enrollments per second
// ---------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
async fn est(
    cli: &Cli,
    layout: &Layout,
    pumps: usize,
    runs: usize,
    per_run: usize,
    concurrency: usize,
    offset: usize,
    reuse: bool,
) -> Result<()> {
    let plan: Vec<Vec<usize>> = (0..runs)
        .map(|r| {
            (0..per_run)
                .map(|k| (offset + r * per_run + k) % pumps)
                .collect()
        })
        .collect();
    let assets: Vec<String> = plan.iter().flatten().map(|&i| fleet::asset_id(i)).collect();
    let codes = fleet::create_codes(layout, &assets, 8).await?;
    let spec = server_spec(cli, layout)?;
    let mut server = spec.start().await?;
    println!(
        "server pid {} up in {:.2} s; gateway {}",
        server.pid,
        server.startup.as_secs_f64(),
        server.gateway
    );
    let ca_pem = std::fs::read_to_string(layout.ca_pem())?;
    let trust = pumpward_pump::TrustAnchors::from_pem(&ca_pem)?;
    let issuing: Vec<u8> = {
        use rustls_pki_types::pem::PemObject as _;
        rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .next()
            .context("ca.pem holds no certificate")??
            .to_vec()
    };
    let base = format!("https://127.0.0.1:{}/.well-known/est/", spec.gateway.port());
    let shared = pumpward_pump::EstClient::new(&base, &trust, None)?;
    let mut rates = Vec::new();
    let mut lat_all = Vec::new();
    let mut runs_json = Vec::new();
    let mut code_iter = codes.into_iter();
    for (r, idx) in plan.iter().enumerate() {
        // Keys and CSRs are made before the clock starts (client-side work).
        let t_csr = Instant::now();
        let mut jobs = Vec::with_capacity(idx.len());
        for &i in idx {
            let (asset, code) = code_iter.next().context("codes")?;
            let (key, csr) = pumpward_pki::make_device_csr(
                pumpward_pki::KeyAlgorithm::default(),
                &asset,
                &fleet::serial(i),
            )?;
            jobs.push((asset, code, key, csr));
        }
        let csr_s = t_csr.elapsed().as_secs_f64();
        let jobs = Arc::new(std::sync::Mutex::new(jobs.into_iter().collect::<Vec<_>>()));
        let load0 = loadavg();
        let cpu0 = server.cpu();
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (jobs, base, trust, shared) =
                (jobs.clone(), base.clone(), trust.clone(), shared.clone());
            tasks.push(tokio::spawn(async move {
                let mut done = Vec::new();
                let mut errors = Vec::new();
                loop {
                    let job = jobs.lock().expect("jobs").pop();
                    let Some((asset, code, key, csr)) = job else {
                        break;
                    };
                    let t = Instant::now();
                    let client = if reuse {
                        shared.clone()
                    } else {
                        pumpward_pump::EstClient::new(&base, &trust, None)?
                    };
                    match client.simple_enroll(&asset, &code, &csr).await {
                        Ok(certs) => {
                            done.push((asset, key, certs, t.elapsed().as_secs_f64() * 1000.0))
                        }
                        Err(e) => errors.push(format!("{asset}: {e}")),
                    }
                }
                anyhow::Ok((done, errors))
            }));
        }
        let mut done = Vec::new();
        let mut errors = Vec::new();
        for t in tasks {
            let (d, e) = t.await??;
            done.extend(d);
            errors.extend(e);
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = (server.cpu() - cpu0).as_secs_f64();
        let load1 = loadavg();
        let rate = done.len() as f64 / secs;
        let lat: Vec<f64> = done.iter().map(|d| d.3).collect();
        println!(
            "run {}: {} enrolled, {} failed in {:.2} s = {:.1} enrollments/s (latency p50 {:.1} ms, p99 {:.1} ms; server CPU {:.2} ms/enrollment; loadavg {} -> {}; CSRs made beforehand in {:.1} s)",
            r + 1,
            done.len(),
            errors.len(),
            secs,
            rate,
            median(&lat),
            percentile(&lat, 99.0),
            cpu * 1000.0 / done.len().max(1) as f64,
            load0,
            load1,
            csr_s
        );
        if let Some(e) = errors.first() {
            println!("  first error: {e}");
        }
        // Keep the identities (untimed), checked by the agent's own rules.
        for (asset, key, certs, _) in &done {
            let mut all = certs.clone();
            all.push(issuing.clone());
            pumpward_pump::DeviceIdentity::from_parts(key.clone(), &all, asset)?;
            fleet::save_identity(layout, asset, key, &all)?;
        }
        rates.push(rate);
        lat_all.extend(lat);
        runs_json.push(
            json!({"enrolled": done.len(), "failed": errors.len(), "seconds": secs,
            "per_s": rate, "server_cpu_ms_per_enrollment": cpu * 1000.0 / done.len().max(1) as f64,
            "loadavg_before": load0, "loadavg_after": load1}),
        );
    }
    server.stop()?;
    println!(
        "EST enrollments/s: median {:.1} over {} runs of {} (concurrency {}, {}); latency p50 {:.1} ms, p99 {:.1} ms",
        median(&rates),
        runs,
        per_run,
        concurrency,
        if reuse { "keep-alive connections" } else { "a new TLS connection per enrollment" },
        median(&lat_all),
        percentile(&lat_all, 99.0)
    );
    result(
        json!({"measure": "est", "median_per_s": median(&rates), "concurrency": concurrency,
        "per_run": per_run, "reuse_connections": reuse, "runs": runs_json,
        "p50_ms": median(&lat_all), "p99_ms": percentile(&lat_all, 99.0)}),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Shared: a fleet of lean device clients
// ---------------------------------------------------------------------------

async fn load_pumps(layout: &Layout, indices: &[usize], ca_pem: &str) -> Result<Vec<Arc<Pump>>> {
    let trust = tls::Trust::from_pem(ca_pem)?;
    let t0 = Instant::now();
    let mut out = Vec::with_capacity(indices.len());
    for (k, &i) in indices.iter().enumerate() {
        let id = fleet::load_identity(layout, &fleet::asset_id(i))?;
        let cfg = trust.client(&id, &[pumpward_pump::DEVICE_ALPN])?;
        out.push(Arc::new(Pump {
            index: k,
            id,
            tls: cfg,
        }));
    }
    println!(
        "{} pump identities loaded in {:.1} s",
        out.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(out)
}

fn target(spec: &ServerSpec) -> Arc<Target> {
    Arc::new(Target {
        addr: spec.gateway,
        name: gateway_name(),
        timeout: Duration::from_secs(60),
    })
}

/// Waits until `done()` or `limit`, printing progress every 5 s.
async fn wait_until(
    what: &str,
    limit: Duration,
    f: &Fleet,
    mut done: impl FnMut() -> bool,
) -> bool {
    let t0 = Instant::now();
    let mut next_print = Duration::from_secs(5);
    loop {
        if done() {
            return true;
        }
        if t0.elapsed() > limit {
            return false;
        }
        if t0.elapsed() > next_print {
            println!(
                "  {what}: {:.0} s, {} connected, {} failures, loadavg {}",
                t0.elapsed().as_secs_f64(),
                f.connected.load(Ordering::Relaxed),
                f.failures.load(Ordering::Relaxed),
                loadavg()
            );
            next_print += Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// (a) concurrent idle sessions
// ---------------------------------------------------------------------------

async fn connections(
    cli: &Cli,
    layout: &Layout,
    n: usize,
    ramp: f64,
    hold: u64,
    reconnect: bool,
) -> Result<()> {
    let indices: Vec<usize> = (0..n).collect();
    let assets: Vec<String> = indices.iter().map(|&i| fleet::asset_id(i)).collect();
    let seqs = fleet::last_seqs(layout, &assets).await?;
    let ca_pem = std::fs::read_to_string(layout.ca_pem())?;
    let pumps = load_pumps(layout, &indices, &ca_pem).await?;
    let spec = server_spec(cli, layout)?;
    let mut server = spec.start().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (rss0, fds0) = (server.rss_kib()?, server.fds());
    println!(
        "server pid {} up in {:.2} s; idle: VmRSS {} KiB, {} fds; loadavg {}",
        server.pid,
        server.startup.as_secs_f64(),
        rss0,
        fds0,
        loadavg()
    );
    let f = Fleet::new(n);
    let t = target(&spec);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let t_ramp = Instant::now();
    let ramp_cpu0 = server.cpu();
    let spawner = {
        let (f, t, stop_rx) = (f.clone(), t.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let mut handles = Vec::with_capacity(pumps.len());
            for (k, p) in pumps.into_iter().enumerate() {
                let due = Duration::from_secs_f64(k as f64 / ramp);
                if let Some(w) = due.checked_sub(t_ramp.elapsed()) {
                    tokio::time::sleep(w).await;
                }
                handles.push(tokio::spawn(device::run_idle(
                    p,
                    seqs[k] + 1,
                    t.clone(),
                    f.clone(),
                    reconnect,
                    stop_rx.clone(),
                )));
            }
            handles
        })
    };
    let limit = Duration::from_secs_f64(n as f64 / ramp + 180.0);
    // Without reconnects every pump either connects or fails once.
    let all = wait_until("ramp", limit, &f, || {
        let c = f.connected.load(Ordering::Relaxed);
        c >= n || (!reconnect && c + f.failures.load(Ordering::Relaxed) as usize >= n)
    })
    .await
        && f.connected.load(Ordering::Relaxed) >= n;
    let ramp_s = t_ramp.elapsed().as_secs_f64();
    let ramp_cpu = (server.cpu() - ramp_cpu0).as_secs_f64();
    let reached = f.connected.load(Ordering::Relaxed);
    println!(
        "ramp: {reached}/{n} connected after {ramp_s:.1} s ({}); server CPU {:.1} s = {:.2} ms per session opened; failures {}; last error {:?}",
        if all { "all" } else { "NOT all" },
        ramp_cpu,
        ramp_cpu * 1000.0 / reached.max(1) as f64,
        f.failures.load(Ordering::Relaxed),
        f.last_error()
    );
    // Hold: every session idle with heartbeats; sample the server.
    let mut samples = Vec::new();
    let hold_cpu0 = server.cpu();
    let t_hold = Instant::now();
    let mut min_connected = reached;
    while t_hold.elapsed() < Duration::from_secs(hold) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let c = f.connected.load(Ordering::Relaxed);
        min_connected = min_connected.min(c);
        let s = (
            t_hold.elapsed().as_secs(),
            c,
            server.rss_kib()?,
            server.fds(),
            loadavg(),
        );
        println!(
            "  hold {:>3} s: {} connected, VmRSS {} KiB, {} fds, loadavg {}",
            s.0, s.1, s.2, s.3, s.4
        );
        samples.push(s);
    }
    let hold_cpu = (server.cpu() - hold_cpu0).as_secs_f64() / t_hold.elapsed().as_secs_f64();
    let end = f.connected.load(Ordering::Relaxed);
    let (rss1, fds1) = (server.rss_kib()?, server.fds());
    let per = (rss1 as f64 - rss0 as f64) / end.max(1) as f64;
    println!(
        "held {hold} s: {end} connected at the end (minimum {min_connected}); VmRSS {rss0} -> {rss1} KiB = {per:.1} KiB per idle session; fds {fds0} -> {fds1}; server CPU while idle {:.1} % of one core; failures {}",
        hold_cpu * 100.0,
        f.failures.load(Ordering::Relaxed)
    );
    let _ = stop_tx.send(true);
    let handles = spawner.await?;
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(handles),
    )
    .await;
    server.stop()?;
    result(
        json!({"measure": "connections", "target": n, "ramp_per_s": ramp,
        "connected_after_ramp": reached, "ramp_seconds": ramp_s, "connected_at_end": end,
        "min_connected_during_hold": min_connected, "hold_s": hold,
        "rss_before_kib": rss0, "rss_after_kib": rss1, "rss_per_session_kib": per,
        "fds_before": fds0, "fds_after": fds1, "server_cpu_ms_per_session_opened": ramp_cpu * 1000.0 / reached.max(1) as f64,
        "server_cpu_idle_fraction": hold_cpu, "failures": f.failures.load(Ordering::Relaxed),
        "last_error": f.last_error(), "loadavg_end": loadavg()}),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// (b) handshakes per second, gateway vs nginx
// ---------------------------------------------------------------------------

/// CPU time of a process and its children (nginx's workers).
fn tree_cpu(pid: u32) -> Duration {
    let mut t = util::proc_cpu(pid).unwrap_or_default();
    if let Ok(kids) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
        for k in kids
            .split_whitespace()
            .filter_map(|k| k.parse::<u32>().ok())
        {
            t += util::proc_cpu(k).unwrap_or_default();
        }
    }
    t
}

async fn handshakes(
    cli: &Cli,
    layout: &Layout,
    concurrency: usize,
    seconds: f64,
    pairs: usize,
    mode: handshake::Mode,
) -> Result<()> {
    let nginx_addr = SocketAddr::from(([127, 0, 0, 1], util::free_port()?));
    let dir = nginx::prepare(layout, nginx_addr).await?;
    let spec = server_spec(cli, layout)?;
    let server = spec.start().await?;
    let mut ngx = nginx::Nginx::start(&dir, nginx_addr).await?;
    let nginx_pid = std::fs::read_to_string(dir.join("nginx.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    println!(
        "{}; gateway {} (pid {}), nginx {} (pid {nginx_pid})",
        ngx.version, spec.gateway, server.pid, nginx_addr
    );
    let ca_pem = std::fs::read_to_string(layout.ca_pem())?;
    let trust = tls::Trust::from_pem(&ca_pem)?;
    let id = fleet::load_identity(layout, &fleet::asset_id(0))?;
    let cfg = trust.client(&id, &[b"http/1.1"])?;
    let name = gateway_name();
    // Each side once, to check it works and what is negotiated.
    let mut negotiated = Vec::new();
    for (label, addr) in [("pumpward", spec.gateway), ("nginx", nginx_addr)] {
        let (_, neg) = handshake::one(addr, &cfg, &name, mode)
            .await
            .with_context(|| format!("a first connection to {label}"))?;
        println!("{label}: {neg}");
        negotiated.push(json!({"server": label, "negotiated": neg}));
    }
    // Warm-up, one short round each.
    for addr in [spec.gateway, nginx_addr] {
        handshake::round(addr, cfg.clone(), name.clone(), mode, concurrency, 1.0).await;
    }
    let mut pw = Vec::new();
    let mut ng = Vec::new();
    let mut ratios = Vec::new();
    let mut lat_pw = Vec::new();
    let mut lat_ng = Vec::new();
    let mut rounds_json = Vec::new();
    for p in 0..pairs {
        let order: [(&str, SocketAddr); 2] = if p % 2 == 0 {
            [("pumpward", spec.gateway), ("nginx", nginx_addr)]
        } else {
            [("nginx", nginx_addr), ("pumpward", spec.gateway)]
        };
        let mut pair = [0.0f64; 2];
        for (label, addr) in order {
            let load0 = loadavg();
            let pid = if label == "pumpward" {
                server.pid
            } else {
                nginx_pid
            };
            let (scpu0, ccpu0) = (tree_cpu(pid), util::self_cpu());
            let r =
                handshake::round(addr, cfg.clone(), name.clone(), mode, concurrency, seconds).await;
            let (scpu, ccpu) = (
                (tree_cpu(pid) - scpu0).as_secs_f64(),
                (util::self_cpu() - ccpu0).as_secs_f64(),
            );
            let rate = r.per_second();
            println!(
                "pair {} {label:>8}: {:>7.1} handshakes/s ({} in {:.1} s, {} errors{}), handshake p50 {:.2} ms p99 {:.2} ms; server CPU {:.3} ms/conn, client CPU {:.3} ms/conn; loadavg {load0} -> {}",
                p + 1,
                rate,
                r.connections,
                r.seconds,
                r.errors,
                r.first_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default(),
                median(&r.handshake_ms),
                percentile(&r.handshake_ms, 99.0),
                scpu * 1000.0 / r.connections.max(1) as f64,
                ccpu * 1000.0 / r.connections.max(1) as f64,
                loadavg()
            );
            rounds_json.push(
                json!({"pair": p + 1, "server": label, "per_s": rate, "errors": r.errors,
                "p50_ms": median(&r.handshake_ms), "p99_ms": percentile(&r.handshake_ms, 99.0),
                "server_cpu_ms_per_conn": scpu * 1000.0 / r.connections.max(1) as f64,
                "client_cpu_ms_per_conn": ccpu * 1000.0 / r.connections.max(1) as f64,
                "loadavg_before": load0}),
            );
            if label == "pumpward" {
                pw.push(rate);
                pair[0] = rate;
                lat_pw.extend(r.handshake_ms);
            } else {
                ng.push(rate);
                pair[1] = rate;
                lat_ng.extend(r.handshake_ms);
            }
        }
        ratios.push(pair[0] / pair[1]);
    }
    ngx.stop();
    drop(server);
    println!(
        "handshakes/s ({mode:?}, concurrency {concurrency}, {pairs} pairs of {seconds} s): pumpward median {:.1}, nginx median {:.1}; ratio of medians {:.2}, median of paired ratios {:.2}",
        median(&pw),
        median(&ng),
        median(&pw) / median(&ng),
        median(&ratios)
    );
    result(
        json!({"measure": "handshakes", "mode": format!("{mode:?}"), "concurrency": concurrency,
        "seconds": seconds, "pumpward_median": median(&pw), "nginx_median": median(&ng),
        "ratio_of_medians": median(&pw) / median(&ng), "median_paired_ratio": median(&ratios),
        "pumpward_p50_ms": median(&lat_pw), "nginx_p50_ms": median(&lat_ng),
        "negotiated": negotiated, "nginx_version": ngx.version, "rounds": rounds_json}),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// (c) durably acknowledged events per second
// ---------------------------------------------------------------------------

/// How the sessions of an events run send.
#[derive(Clone, Copy)]
enum Load {
    /// Batches of this many events, the next as soon as one is acknowledged.
    BackToBack(usize),
    /// Events at this rate per pump, sent as the agent does.
    Rate(f64),
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Load::BackToBack(b) => write!(f, "batches of {b} back to back"),
            Load::Rate(r) => write!(f, "{r} events/s per pump, batched as the agent does"),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn events(
    cli: &Cli,
    layout: &Layout,
    sessions: usize,
    load: Load,
    windows: usize,
    seconds: f64,
    warmup: f64,
    offset: usize,
) -> Result<()> {
    let indices: Vec<usize> = (offset..offset + sessions).collect();
    let assets: Vec<String> = indices.iter().map(|&i| fleet::asset_id(i)).collect();
    let seqs = fleet::last_seqs(layout, &assets).await?;
    let stored0 = fleet::stored_event_count(layout).await?;
    let gaps0 = fleet::stored_gap_count(layout).await?;
    let ca_pem = std::fs::read_to_string(layout.ca_pem())?;
    let pumps = load_pumps(layout, &indices, &ca_pem).await?;
    let spec = server_spec(cli, layout)?;
    let mut server = spec.start().await?;
    let f = Fleet::new(sessions);
    let t = target(&spec);
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    for (k, p) in pumps.into_iter().enumerate() {
        if k % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        handles.push(match load {
            Load::BackToBack(batch) => tokio::spawn(device::run_events(
                p,
                seqs[k] + 1,
                batch,
                t.clone(),
                f.clone(),
                go_rx.clone(),
                stop_rx.clone(),
            )),
            Load::Rate(rate) => tokio::spawn(device::run_events_at_rate(
                p,
                seqs[k] + 1,
                rate,
                t.clone(),
                f.clone(),
                go_rx.clone(),
                stop_rx.clone(),
            )),
        });
    }
    if !wait_until("connect", Duration::from_secs(300), &f, || {
        f.connected.load(Ordering::Relaxed) >= sessions
    })
    .await
    {
        bail!(
            "only {} of {sessions} sessions connected; last error {:?}",
            f.connected.load(Ordering::Relaxed),
            f.last_error()
        );
    }
    println!("{sessions} sessions open; {load}; warm-up {warmup} s");
    let _ = go_tx.send(true);
    tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
    let measured_from_ms = f.epoch.elapsed().as_millis() as u32;
    let mut rates = Vec::new();
    let mut win_json = Vec::new();
    for w in 0..windows {
        let (a0, b0, c0, load0) = (
            f.acked.load(Ordering::Relaxed),
            f.batches.load(Ordering::Relaxed),
            server.cpu(),
            loadavg(),
        );
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        let secs = t0.elapsed().as_secs_f64();
        let (a1, b1) = (
            f.acked.load(Ordering::Relaxed),
            f.batches.load(Ordering::Relaxed),
        );
        let cpu = (server.cpu() - c0).as_secs_f64() / secs;
        let rate = (a1 - a0) as f64 / secs;
        println!(
            "window {}: {:.0} events/s acknowledged ({:.0} batches/s), server CPU {:.0} % of one core, {} connected, loadavg {load0} -> {}",
            w + 1,
            rate,
            (b1 - b0) as f64 / secs,
            cpu * 100.0,
            f.connected.load(Ordering::Relaxed),
            loadavg()
        );
        win_json.push(
            json!({"window": w + 1, "events_per_s": rate, "batches_per_s": (b1 - b0) as f64 / secs,
            "server_cpu_cores": cpu, "loadavg_before": load0}),
        );
        rates.push(rate);
    }
    let measured_to_ms = f.epoch.elapsed().as_millis() as u32;
    let _ = stop_tx.send(true);
    let mut failed = 0;
    for h in handles {
        if !matches!(h.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let acked = f.acked.load(Ordering::Relaxed);
    server.stop()?;
    let stored = fleet::stored_event_count(layout).await? - stored0;
    let gaps = fleet::stored_gap_count(layout).await? - gaps0;
    println!(
        "events/s acknowledged: median {:.0} over {windows} windows of {seconds} s ({sessions} sessions, {load}); acknowledged in all {acked}, new rows in device_events {stored}, new gaps {gaps}, sessions ended with an error {failed}, refusals {}",
        median(&rates),
        f.refusals.load(Ordering::Relaxed)
    );
    // Open loop: how long events waited for their ack within the windows
    // (per batch, its oldest event: an upper bound for the others).
    let mut delays_ms: Vec<f64> = f
        .ack_delays
        .lock()
        .expect("lock")
        .iter()
        .filter(|(at, _)| (measured_from_ms..measured_to_ms).contains(at))
        .map(|(_, d)| *d as f64 / 1000.0)
        .collect();
    delays_ms.sort_by(f64::total_cmp);
    let delay = (!delays_ms.is_empty()).then(|| {
        json!({"p50_ms": percentile(&delays_ms, 50.0), "p99_ms": percentile(&delays_ms, 99.0),
               "max_ms": delays_ms.last().copied().unwrap_or(0.0),
               "mean_batch": acked as f64 / f.batches.load(Ordering::Relaxed).max(1) as f64})
    });
    if let Some(d) = &delay {
        println!(
            "  event -> ack delay (oldest event of each batch): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; mean batch {:.2} events",
            d["p50_ms"].as_f64().unwrap_or(0.0),
            d["p99_ms"].as_f64().unwrap_or(0.0),
            d["max_ms"].as_f64().unwrap_or(0.0),
            d["mean_batch"].as_f64().unwrap_or(0.0)
        );
    }
    let verified = stored == acked as i64 && gaps == 0;
    if !verified {
        println!("  VERIFY FAILED: stored {stored} != acknowledged {acked} or gaps {gaps}; last error {:?}", f.last_error());
    }
    result(
        json!({"measure": "events", "sessions": sessions, "load": load.to_string(), "delay": delay,
        "median_per_s": median(&rates), "windows": win_json, "acked_total": acked,
        "stored_rows": stored, "gaps": gaps, "verified": verified, "failed_sessions": failed}),
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// (e) reconnect after a restart
// ---------------------------------------------------------------------------

async fn reconnect(
    cli: &Cli,
    layout: &Layout,
    n: usize,
    signal: &str,
    runs: usize,
    hold: u64,
    ramp: f64,
) -> Result<()> {
    let indices: Vec<usize> = (0..n).collect();
    let assets: Vec<String> = indices.iter().map(|&i| fleet::asset_id(i)).collect();
    let seqs = fleet::last_seqs(layout, &assets).await?;
    let ca_pem = std::fs::read_to_string(layout.ca_pem())?;
    let pumps = load_pumps(layout, &indices, &ca_pem).await?;
    let spec = server_spec(cli, layout)?;
    let mut server = spec.start().await?;
    let f = Fleet::new(n);
    let t = target(&spec);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    let t_ramp = Instant::now();
    for (k, p) in pumps.into_iter().enumerate() {
        let due = Duration::from_secs_f64(k as f64 / ramp);
        if let Some(w) = due.checked_sub(t_ramp.elapsed()) {
            tokio::time::sleep(w).await;
        }
        handles.push(tokio::spawn(device::run_idle(
            p,
            seqs[k] + 1,
            t.clone(),
            f.clone(),
            true,
            stop_rx.clone(),
        )));
    }
    if !wait_until("ramp", Duration::from_secs(600), &f, || {
        f.up_with_generation(1) >= n
    })
    .await
    {
        bail!(
            "only {} of {n} connected; last error {:?}",
            f.connected.load(Ordering::Relaxed),
            f.last_error()
        );
    }
    println!(
        "{n} sessions up after {:.1} s",
        t_ramp.elapsed().as_secs_f64()
    );
    let mut all_s = Vec::new();
    let mut from_up_s = Vec::new();
    let mut runs_json = Vec::new();
    for r in 0..runs {
        let gen = r as u32 + 2;
        tokio::time::sleep(Duration::from_secs(hold)).await;
        let before = f.connected.load(Ordering::Relaxed);
        let fail0 = f.failures.load(Ordering::Relaxed);
        let load0 = loadavg();
        let t_kill = Instant::now();
        let kill_us = f.epoch.elapsed().as_micros() as u64;
        let stopped_in = server.stop_with(signal)?;
        server = spec.start().await?;
        let up_after = t_kill.elapsed();
        let ok = wait_until("reconnect", Duration::from_secs(900), &f, || {
            f.up_with_generation(gen) >= n
        })
        .await;
        let total = t_kill.elapsed().as_secs_f64();
        let mut per: Vec<f64> = f
            .up_at_us
            .iter()
            .map(|u| (u.load(Ordering::Relaxed).saturating_sub(kill_us)) as f64 / 1e6)
            .collect();
        per.sort_by(|a, b| a.total_cmp(b));
        let attempts = f.failures.load(Ordering::Relaxed) - fail0;
        println!(
            "run {}: {before} connected; SIGKILL/TERM={signal}: old server gone in {:.2} s, new one listening {:.2} s after the signal (startup {:.2} s); all {} back {} {:.1} s after the signal ({:.1} s after listening); per pump p50 {:.1} s, p90 {:.1} s, max {:.1} s; {attempts} failed attempts or ended sessions; loadavg {load0} -> {}",
            r + 1,
            stopped_in.as_secs_f64(),
            up_after.as_secs_f64(),
            server.startup.as_secs_f64(),
            n,
            if ok { "were" } else { "were NOT" },
            total,
            total - up_after.as_secs_f64(),
            percentile(&per, 50.0),
            percentile(&per, 90.0),
            percentile(&per, 100.0),
            loadavg()
        );
        all_s.push(total);
        from_up_s.push(total - up_after.as_secs_f64());
        runs_json.push(json!({"run": r + 1, "all_back": ok, "seconds_after_signal": total,
            "seconds_after_listening": total - up_after.as_secs_f64(), "old_gone_s": stopped_in.as_secs_f64(),
            "listening_after_signal_s": up_after.as_secs_f64(), "p50_s": percentile(&per, 50.0),
            "p90_s": percentile(&per, 90.0), "max_s": percentile(&per, 100.0),
            "failed_attempts": attempts, "loadavg_before": load0}));
        if !ok {
            break;
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        futures_util::future::join_all(handles),
    )
    .await;
    server.stop()?;
    println!(
        "reconnect of {n} pumps after SIG{signal}: median {:.1} s from the signal to every session re-established ({:.1} s from the new server listening), over {} runs",
        median(&all_s),
        median(&from_up_s),
        all_s.len()
    );
    result(json!({"measure": "reconnect", "pumps": n, "signal": signal,
        "median_s_after_signal": median(&all_s), "median_s_after_listening": median(&from_up_s),
        "runs": runs_json}));
    Ok(())
}

// ---------------------------------------------------------------------------
// (issue 4) A library rolled out to the whole fleet
// ---------------------------------------------------------------------------

/// Publishes a new version of the sample library (two pharmacists, the CA's
/// signing key), connects the fleet, creates a rollout to everyone and
/// measures until the store shows every pump installed.
async fn rollout(cli: &Cli, layout: &Layout, n: usize, ramp: f64, timeout: u64) -> Result<()> {
    use pumpward_server::library::LibrarySigner;
    use pumpward_server::pki::CaService;
    use pumpward_store::{Actor, NewRollout, Store};
    let store = Store::open_sqlite(&layout.data()).await?;
    let ca = CaService::open(store.clone(), fleet::settings(layout), false).await?;
    let signer = LibrarySigner::load_or_create(&ca).await?;
    let mut lib = pumpward_druglib::sample_library();
    // A new version each run: the same content under another name.
    lib.name = format!(
        "{} (load run {})",
        lib.name,
        time::OffsetDateTime::now_utc().unix_timestamp()
    );
    let bob = Actor::user("lt-bob", None);
    let published =
        pumpward_server::library::publish_reviewed(&store, &signer, &lib, "lt-ann", "lt-bob")
            .await?;
    let version = store
        .library_revisions(&lib.id)
        .await?
        .iter()
        .filter_map(|r| r.version)
        .max()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no published version after publishing revision {}",
                published.id
            )
        })?;
    let envelope = store.library_envelope(&lib.id, version).await?;
    println!(
        "published {} version {version}: envelope {} bytes",
        lib.id,
        envelope.len()
    );

    let indices: Vec<usize> = (0..n).collect();
    let assets: Vec<String> = indices.iter().map(|&i| fleet::asset_id(i)).collect();
    let seqs = fleet::last_seqs(layout, &assets).await?;
    let ca_pem = std::fs::read_to_string(layout.ca_pem())?;
    let pumps = load_pumps(layout, &indices, &ca_pem).await?;
    let trust = tls::Trust::from_pem(&ca_pem)?;
    let http: Vec<_> = pumps
        .iter()
        .map(|p| trust.client(&p.id, &[b"http/1.1"]))
        .collect::<Result<_>>()?;
    let spec = server_spec(cli, layout)?;
    let mut server = spec.start().await?;
    let f = Fleet::new(n);
    let t = target(&spec);
    let counts = Arc::new(rollout::Counts::new(2_000));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let t_ramp = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for (k, (p, h)) in pumps.into_iter().zip(http).enumerate() {
        let due = Duration::from_secs_f64(k as f64 / ramp);
        if let Some(w) = due.checked_sub(t_ramp.elapsed()) {
            tokio::time::sleep(w).await;
        }
        handles.push(tokio::spawn(rollout::run_pump(
            p,
            h,
            seqs[k] + 1,
            t.clone(),
            f.clone(),
            counts.clone(),
            stop_rx.clone(),
        )));
    }
    let all = wait_until(
        "ramp",
        Duration::from_secs_f64(n as f64 / ramp + 180.0),
        &f,
        || f.connected.load(Ordering::Relaxed) >= n,
    )
    .await;
    println!(
        "ramp: {}/{n} connected after {:.1} s{}; loadavg {}",
        f.connected.load(Ordering::Relaxed),
        t_ramp.elapsed().as_secs_f64(),
        if all { "" } else { " (NOT all)" },
        loadavg()
    );

    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let r = store
        .create_library_rollout(
            &NewRollout {
                library_id: lib.id.clone(),
                version,
                pilot_care_area: None,
                pilot_percent: 0,
            },
            &bob,
        )
        .await?;
    let mut in_store = 0i64;
    let mut first_full: Option<f64> = None;
    let mut next_print = Duration::from_secs(5);
    while t0.elapsed() < Duration::from_secs(timeout) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        in_store = store.library_rollout(r.id).await?.counts.installed;
        if in_store >= n as i64 {
            first_full = Some(t0.elapsed().as_secs_f64());
            break;
        }
        if t0.elapsed() >= next_print {
            next_print += Duration::from_secs(5);
            println!(
                "  {:>3.0} s: {in_store} installed in the store; {} fetched, {} acknowledged by the gateway, {} failed fetch attempts; loadavg {}",
                t0.elapsed().as_secs_f64(),
                counts.fetched.load(Ordering::Relaxed),
                counts.installed.load(Ordering::Relaxed),
                counts.fetch_failures.load(Ordering::Relaxed),
                loadavg()
            );
        }
    }
    let elapsed = first_full.unwrap_or_else(|| t0.elapsed().as_secs_f64());
    let cpu = (server.cpu() - cpu0).as_secs_f64();
    println!(
        "rollout to {n} pumps: {in_store} installed in the store after {elapsed:.1} s{}; server CPU {cpu:.1} s; {} envelopes fetched ({} bytes each), {} failed fetch attempts (retried); last error {:?}",
        if first_full.is_some() { "" } else { " (NOT all: timed out)" },
        counts.fetched.load(Ordering::Relaxed),
        envelope.len(),
        counts.fetch_failures.load(Ordering::Relaxed),
        f.last_error()
    );
    result(json!({
        "bench": "rollout", "pumps": n, "installed": in_store, "seconds": elapsed,
        "complete": first_full.is_some(), "server_cpu_s": cpu,
        "envelope_bytes": envelope.len(), "loadavg": loadavg(),
    }));
    let _ = stop_tx.send(true);
    for h in handles {
        let _ = h.await;
    }
    server.stop()?;
    store.close().await;
    Ok(())
}
