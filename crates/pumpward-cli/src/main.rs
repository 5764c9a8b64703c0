//! `pumpward`: the one binary. Subcommands run the server, the demo, and the
//! local administration tools that work on `--data-dir` directly (also while
//! the server runs: SQLite's WAL lets them share the store).

mod config;
mod demo;
mod demo_library;
mod detect;
mod findings;
mod net;
mod sbom;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use config::Settings;
use indicatif::{ProgressBar, ProgressStyle};
use pumpward_core::access::{password, validate_username, Role};
use pumpward_core::inventory::csv::{self as invcsv, CsvLimits, ExportRow};
use pumpward_store::{Actor, AssetFilter, CsvImportError, Store};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "pumpward",
    version,
    about = "Security for a hospital's fleet of wireless infusion pumps (NIST SP 1800-8)"
)]
pub struct Cli {
    /// Data directory: the SQLite store, TLS material.
    #[arg(long, global = true, env = "PUMPWARD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file; command-line options and PUMPWARD_* variables override it.
    #[arg(long, global = true, env = "PUMPWARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Use PostgreSQL at this URL instead of SQLite in the data directory.
    #[arg(
        long,
        global = true,
        env = "PUMPWARD_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Log format.
    #[arg(long, global = true, env = "PUMPWARD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTPS server (REST API and web UI).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "PUMPWARD_LISTEN", value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Address of the pumps' gateway (EST and the device channel).
        #[arg(long, value_name = "ADDR")]
        gateway_listen: Option<std::net::SocketAddr>,
        /// UDP address to receive IPFIX and NetFlow v9 from the network's
        /// exporters (e.g. 0.0.0.0:4739); flows are evaluated against the
        /// stored network policy.
        #[arg(long, value_name = "ADDR")]
        flow_listen: Option<std::net::SocketAddr>,
        /// A Zeek conn.log (TSV or JSON) to follow while Zeek writes it,
        /// through rotation.
        #[arg(long, value_name = "PATH")]
        zeek_conn_log: Option<std::path::PathBuf>,
    },
    /// Run the server on a fresh data directory loaded with a sample hospital.
    Demo {
        #[arg(long, env = "PUMPWARD_LISTEN", value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        #[arg(long, value_name = "ADDR")]
        gateway_listen: Option<std::net::SocketAddr>,
        /// Seed of the sample hospital (same seed, same hospital).
        #[arg(long, default_value_t = pumpward_core::demo::DEFAULT_SEED)]
        seed: u64,
    },
    /// Asset inventory: CSV import and export, listing.
    #[command(subcommand)]
    Inventory(InventoryCmd),
    /// User accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// The tamper-evident audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// The certificate authority: set-up, issuance, revocation, CRL.
    #[command(subcommand)]
    Pki(PkiCmd),
    /// Drug libraries: the sample, offline verification of signed envelopes,
    /// conversion between JSON and CSV.
    #[command(subcommand)]
    Library(LibraryCmd),
    /// Vulnerability advisories: import (CSAF, KEV, NVD, CVE 5, EPSS) and matching.
    #[command(subcommand)]
    Advisories(AdvisoriesCmd),
    /// Findings: list and export (vulnerabilities with their priority), remediation steps.
    #[command(subcommand)]
    Findings(findings::FindingsCmd),
    /// SBOMs of device models: attach one to a model and firmware version, list them.
    #[command(subcommand)]
    Sbom(sbom::SbomCmd),
    /// Network zones: check the policy, export it to enforcement points
    /// (nftables, FreeRADIUS, Cisco ISE, ACL), evaluate observed flows.
    #[command(subcommand)]
    Net(net::NetCmd),
    /// Detection: the rules in effect, and checking a rules file.
    #[command(subcommand)]
    Detect(detect::DetectCmd),
    /// Run a fleet of simulated pumps against a running server.
    Sim {
        /// The server's REST API, e.g. https://127.0.0.1:8443
        #[arg(long, value_name = "URL")]
        server: String,
        /// The gateway, host:port.
        #[arg(long, default_value = "127.0.0.1:8444", value_name = "ADDR")]
        gateway: String,
        /// API token of a user who may create enrollment codes (biomed).
        #[arg(long, env = "PUMPWARD_SIM_TOKEN", hide_env_values = true)]
        token: String,
        /// The CA chain the server and gateway certificates verify against.
        #[arg(long, value_name = "FILE")]
        ca_file: PathBuf,
        /// How many pumps (at most the in-service pumps in the inventory).
        #[arg(long, default_value_t = 10)]
        pumps: usize,
        /// Simulated seconds per wall-clock second.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Fault or attack to inject (repeatable): gateway-outage, revoked-cert,
        /// rogue-device, cloned-cert, replay, event-flood; with a library
        /// rolled out also limit-probing, override-storm, forged-library,
        /// tampered-library (its older version comes from the published
        /// history: the token needs library.read).
        #[arg(long)]
        scenario: Vec<pumpward_pump::sim::Scenario>,
        /// Also simulate the pumps in maintenance (connected, no infusions),
        /// which library rollouts address too.
        #[arg(long)]
        include_maintenance: bool,
        /// Where the pumps keep their keys and queues (reuse to keep identities).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
enum AdvisoriesCmd {
    /// Import documents (files, or directories searched recursively); the
    /// format is detected from each file's content. One transaction per file;
    /// then the assets the stored documents concern are matched again.
    Import {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Do not match the concerned assets afterwards.
        #[arg(long)]
        no_match: bool,
    },
    /// Match the inventory against the current advisories, raising and
    /// resolving vulnerability findings.
    Match,
}

#[derive(Subcommand, Debug)]
enum PkiCmd {
    /// Create the CA (root and issuing CA), or import the hospital's issuing CA.
    Init {
        /// PEM certificate of an existing issuing CA (optionally followed by its chain).
        #[arg(long, requires = "import_key", value_name = "FILE")]
        import_cert: Option<PathBuf>,
        /// PKCS#8 PEM private key of that issuing CA.
        #[arg(long, requires = "import_cert", value_name = "FILE")]
        import_key: Option<PathBuf>,
    },
    /// Issue a device certificate for an asset from a CSR (PEM or DER).
    Issue {
        #[arg(long)]
        asset: String,
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        /// Write the certificate here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Create a one-time EST enrollment code for an asset (shown once).
    EnrollmentCode {
        #[arg(long)]
        asset: String,
    },
    /// Revoke a certificate (publishes a new CRL).
    Revoke {
        serial: String,
        /// RFC 5280 reason: key-compromise, affiliation-changed, superseded,
        /// cessation-of-operation, certificate-hold, unspecified …
        #[arg(long)]
        reason: String,
    },
    /// Publish a fresh CRL and print it (PEM).
    Crl {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// List certificates.
    List {
        #[arg(long)]
        asset: Option<String>,
        /// Only unrevoked certificates expiring within this many days.
        #[arg(long, value_name = "DAYS")]
        expiring: Option<i64>,
        /// Only revoked certificates.
        #[arg(long)]
        revoked: bool,
    },
}

#[derive(Subcommand, Debug)]
enum InventoryCmd {
    /// Import assets from a CSV file (upsert by asset_id; nothing is written if any row is bad).
    Import {
        file: PathBuf,
        /// Import the good rows and report the bad ones instead of importing nothing.
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Export all assets as CSV (re-importable).
    Export {
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Record the SHA-256 of the firmware image a model and version must run
    /// (from the vendor); a pump reporting another digest raises an
    /// integrity event when it connects.
    ExpectFirmware {
        #[arg(long)]
        manufacturer: String,
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        #[arg(long)]
        sha256: String,
    },
    /// List assets.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        #[arg(long)]
        manufacturer: Option<String>,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        care_area: Option<String>,
        #[arg(long)]
        zone: Option<String>,
        #[arg(long)]
        state: Option<String>,
        /// Free-text search.
        #[arg(long)]
        search: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    /// Add a user; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: Role,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
}

#[derive(Subcommand, Debug)]
enum LibraryCmd {
    /// Print the sample library (SAMPLE DATA – NOT FOR CLINICAL USE).
    Sample {
        #[arg(long, value_enum, default_value_t = LibraryFormat::Json)]
        format: LibraryFormat,
    },
    /// Verify a signed library envelope (.cose) offline against the
    /// published signing certificate; exit 0 with a summary, or exit 2 with
    /// the reason it is refused.
    Verify {
        /// The COSE_Sign1 envelope.
        file: PathBuf,
        /// The library-signing certificate (PEM, from /pki/library-signing.pem).
        #[arg(long, value_name = "SIGNING_CERT.pem")]
        cert: PathBuf,
        /// Refuse unless the version is higher than this (as a pump does).
        #[arg(long, value_name = "N")]
        installed_version: Option<u32>,
        /// Refuse unless the library has this care area (as a pump does).
        #[arg(long, value_name = "ID")]
        care_area: Option<String>,
        /// The CA chain (PEM: the issuing CA and its root, e.g. a server's
        /// `tls/ca.pem`): refuse unless the signing certificate chains to it
        /// with the codeSigning usage.
        #[arg(long, value_name = "CA.pem")]
        ca_file: Option<PathBuf>,
    },
    /// Convert a library (JSON, CSV, or a verified envelope with --cert) to
    /// JSON or CSV.
    Export {
        /// A library as JSON or CSV, or a .cose envelope.
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = LibraryFormat::Json)]
        format: LibraryFormat,
        /// For an envelope: the signing certificate to verify it against
        /// first (an unverified envelope is never exported).
        #[arg(long, value_name = "SIGNING_CERT.pem")]
        cert: Option<PathBuf>,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LibraryFormat {
    Json,
    Csv,
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Verify the hash chain; names the first bad record and exits 2 if broken.
    Verify,
    /// Write the audit trail as JSON lines (verifying it on the way).
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// jemalloc for the whole process, SQLite's allocations included (its
/// unprefixed `malloc`): a bulk import or a busy gateway allocates and frees
/// millions of short-lived buffers (bound parameters, frames, JSON), where
/// glibc's malloc spent close to a third of the CPU time in the profile
/// recorded in docs/PERFORMANCE.md ("Allocator").
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli) {
        Ok(s) => s,
        Err(e) => fail(&e),
    };
    init_logging(&cli, &settings);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli, settings)) {
        Ok(code) => std::process::exit(code),
        Err(e) => fail(&e),
    }
}

/// One clear line and a non-zero exit.
fn fail(e: &anyhow::Error) -> ! {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    eprintln!("error: {msg}");
    std::process::exit(1);
}

fn init_logging(cli: &Cli, s: &Settings) {
    let default = if matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if s.log_format == LogFormat::Json {
        b.json().init();
    } else {
        b.init();
    }
}

async fn open(s: &Settings) -> Result<Store> {
    Ok(Store::open(&s.data_dir, s.database_url.as_deref()).await?)
}

async fn run(cli: Cli, s: Settings) -> Result<i32> {
    match cli.command {
        Command::Serve {
            listen,
            gateway_listen,
            flow_listen,
            zeek_conn_log,
        } => {
            let mut s = s;
            if flow_listen.is_some() {
                s.network.flow_listen = flow_listen;
            }
            if zeek_conn_log.is_some() {
                s.network.zeek_conn_log = zeek_conn_log;
            }
            let store = open(&s).await?;
            serve(&s, listen, gateway_listen, store).await?;
        }
        Command::Demo {
            listen,
            gateway_listen,
            seed,
        } => demo::run(&cli, s, listen, gateway_listen, seed).await?,
        Command::Inventory(c) => return inventory(&s, c).await,
        Command::User(c) => return user(&s, c).await,
        Command::Audit(c) => return audit(&s, c).await,
        Command::Pki(c) => return pki(&s, c).await,
        Command::Library(c) => return library(c),
        Command::Advisories(c) => return advisories(&s, c).await,
        Command::Findings(c) => return findings::findings(&s, c).await,
        Command::Sbom(c) => return sbom::sbom(&s, c).await,
        Command::Net(c) => return net::net(&s, c).await,
        Command::Detect(c) => return detect::detect(c),
        Command::Sim {
            server,
            gateway,
            token,
            ca_file,
            pumps,
            speed,
            duration,
            scenario,
            include_maintenance,
            state_dir,
            seed,
        } => {
            let mut o =
                pumpward_pump::sim::SimOptions::new(&server, &gateway, &token, ca_file, pumps);
            o.speed = speed;
            o.duration = std::time::Duration::from_secs(duration);
            o.scenarios = scenario;
            o.include_maintenance = include_maintenance;
            o.state_dir = state_dir;
            o.seed = seed;
            let report = pumpward_pump::sim::run_sim(o).await?;
            println!("{report}");
            return Ok(if report.all_scenarios_passed() { 0 } else { 2 });
        }
    }
    Ok(0)
}

async fn serve(
    s: &Settings,
    listen: Option<std::net::SocketAddr>,
    gateway_listen: Option<std::net::SocketAddr>,
    store: Store,
) -> Result<()> {
    let opts = pumpward_server::ServeOptions {
        data_dir: s.data_dir.clone(),
        database_url: s.database_url.clone(),
        listen: listen
            .or(s.listen)
            .unwrap_or_else(|| "127.0.0.1:8443".parse().expect("valid default")),
        gateway_listen: gateway_listen
            .or(s.gateway_listen)
            .unwrap_or_else(|| "127.0.0.1:8444".parse().expect("valid default")),
        settings: s.server.clone(),
        pki: s.pki.clone(),
        detection_rules: s.detection_rules.clone(),
        siem: s.siem.clone(),
        network: s.network.clone(),
    };
    pumpward_server::run(opts, store).await
}

async fn inventory(s: &Settings, c: InventoryCmd) -> Result<i32> {
    match c {
        InventoryCmd::Import { file, skip_invalid } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let store = open(s).await?;
            // The file is parsed on its own thread while the store writes
            // the rows already parsed; nothing is committed until the end.
            let bar = progress(len, "importing");
            let done = store
                .import_assets_csv(
                    bar.wrap_read(f),
                    CsvLimits::default(),
                    skip_invalid,
                    &Actor::cli(),
                )
                .await;
            bar.finish_and_clear();
            let done = match done {
                Err(CsvImportError::Csv(e)) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("{} is not a usable asset CSV", file.display())))
                }
                other => other?,
            };
            for e in &done.invalid_rows {
                eprintln!("{}: {e}", file.display());
            }
            let sum = &done.summary;
            for (line, id, why) in &sum.refused {
                eprintln!("{}: line {line} (asset {id}): {why}", file.display());
            }
            if !done.committed {
                if !done.invalid_rows.is_empty() {
                    eprintln!("{} invalid rows; nothing was imported (use --skip-invalid to import the valid rows)", done.invalid_rows.len());
                }
                if !sum.refused.is_empty() {
                    eprintln!("{} rows refused; nothing was imported", sum.refused.len());
                }
                return Ok(1);
            }
            println!(
                "created {}, updated {}, unchanged {}, skipped {}",
                sum.created,
                sum.updated,
                sum.unchanged,
                done.invalid_rows.len() + sum.refused.len()
            );
            Ok(if done.invalid_rows.is_empty() && sum.refused.is_empty() {
                0
            } else {
                1
            })
        }
        InventoryCmd::Export { output } => {
            let store = open(s).await?;
            let assets = all_assets(&store, AssetFilter::default()).await?;
            let mut w: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            invcsv::write_assets_csv(
                &mut w,
                assets.iter().map(|a| ExportRow {
                    spec: &a.spec,
                    lifecycle_state: a.lifecycle_state,
                }),
            )?;
            w.flush()?;
            if let Some(p) = output {
                eprintln!("exported {} assets to {}", assets.len(), p.display());
            }
            Ok(0)
        }
        InventoryCmd::ExpectFirmware {
            manufacturer,
            model,
            version,
            sha256,
        } => {
            let store = open(s).await?;
            store
                .set_expected_firmware(&manufacturer, &model, &version, &sha256, &Actor::cli())
                .await?;
            println!("{manufacturer} {model} {version} must run the image with SHA-256 {sha256}");
            Ok(0)
        }
        InventoryCmd::List {
            format,
            manufacturer,
            model,
            care_area,
            zone,
            state,
            search,
        } => {
            let store = open(s).await?;
            let filter = AssetFilter {
                manufacturer,
                model,
                care_area,
                zone,
                state: state
                    .map(|s| s.parse())
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--state: {e}"))?,
                text: search,
                ..Default::default()
            };
            let assets = all_assets(&store, filter).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match format {
                ListFormat::Json => serde_json::to_writer_pretty(&mut out, &assets)?,
                ListFormat::Csv => invcsv::write_assets_csv(
                    &mut out,
                    assets.iter().map(|a| ExportRow {
                        spec: &a.spec,
                        lifecycle_state: a.lifecycle_state,
                    }),
                )?,
                ListFormat::Table => {
                    writeln!(
                        out,
                        "{:<14} {:<16} {:<24} {:<12} {:<20} {:<14}",
                        "ASSET", "MANUFACTURER", "MODEL", "FIRMWARE", "CARE AREA", "STATE"
                    )?;
                    for a in &assets {
                        let s = &a.spec;
                        writeln!(
                            out,
                            "{:<14} {:<16} {:<24} {:<12} {:<20} {:<14}",
                            s.asset_id.as_str(),
                            trunc(&s.manufacturer, 16),
                            trunc(&s.model, 24),
                            trunc(&s.firmware_version, 12),
                            trunc(s.care_area.as_deref().unwrap_or("-"), 20),
                            a.lifecycle_state
                        )?;
                    }
                    writeln!(out, "{} assets", assets.len())?;
                }
            }
            out.flush()?;
            Ok(0)
        }
    }
}

fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

async fn all_assets(
    store: &Store,
    mut f: AssetFilter,
) -> Result<Vec<pumpward_core::inventory::Asset>> {
    f.limit = 500;
    let mut out = Vec::new();
    loop {
        let page = store.list_assets(&f).await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => f.after = Some(c),
            None => return Ok(out),
        }
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .expect("valid template"),
    );
    b.set_message(what.to_owned());
    b
}

/// Every file under `path` (itself if a file), sorted so that reports and
/// the order of revisions are the same on every run.
fn files_under(path: &std::path::Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("{}", path.display()))?;
        entries.sort();
        for e in entries {
            files_under(&e, out)?;
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

fn print_match_report(what: &str, r: &pumpward_store::MatchReport) {
    println!(
        "{what}: {} assets, {} affected, {} to review open; {} raised, {} resolved",
        r.assets, r.affected_open, r.review_open, r.raised, r.resolved
    );
    for (id, manufacturer, model) in &r.unidentified {
        println!("  not identified (no alias-table product): {id} {manufacturer} {model}");
    }
}

async fn advisories(s: &Settings, c: AdvisoriesCmd) -> Result<i32> {
    let store = open(s).await?;
    let actor = Actor::cli();
    match c {
        AdvisoriesCmd::Import { paths, no_match } => {
            let mut files = Vec::new();
            for p in &paths {
                files_under(p, &mut files)?;
            }
            let bar = progress(files.len() as u64, "importing");
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} files ({eta})")
                    .expect("valid template"),
            );
            let mut lines = Vec::new();
            let (mut added, mut updated, mut skipped, mut refused) = (0, 0, 0, 0);
            // The documents stored by this run, whose assets are matched again.
            let mut stored = Vec::new();
            for f in &files {
                let r = match std::fs::read(f) {
                    Ok(bytes) => store.import_vuln_document(&bytes, &actor).await?,
                    Err(e) => pumpward_store::VulnImport {
                        outcome: "refused".into(),
                        format: None,
                        tracking_id: None,
                        revision: None,
                        advisory_id: None,
                        reason: Some(format!("cannot read the file: {e}")),
                        superseded: Vec::new(),
                    },
                };
                match r.outcome.as_str() {
                    "added" | "updated" => {
                        if r.outcome == "added" {
                            added += 1;
                        } else {
                            updated += 1;
                        }
                        stored.extend(r.advisory_id);
                    }
                    "skipped" => skipped += 1,
                    _ => refused += 1,
                }
                let what = match (&r.format, &r.tracking_id, &r.revision) {
                    (Some(fmt), Some(id), Some(rev)) => format!(" {fmt} {id} revision {rev}"),
                    (Some(fmt), _, _) => format!(" {fmt}"),
                    _ => String::new(),
                };
                let why = r
                    .reason
                    .as_deref()
                    .map(|x| format!(": {x}"))
                    .unwrap_or_default();
                lines.push(format!("{:<8} {}{what}{why}", r.outcome, f.display()));
                bar.inc(1);
            }
            bar.finish_and_clear();
            for l in &lines {
                println!("{l}");
            }
            println!(
                "{} files: {added} added, {updated} updated, {skipped} skipped, {refused} refused",
                files.len()
            );
            if !no_match && !stored.is_empty() {
                // Only the assets these documents concern: the rest of the
                // fleet's findings cannot change.
                print_match_report(
                    "re-matched the pumps and pump servers these documents concern",
                    &store.rematch_after_imports(&stored, &actor).await?,
                );
            }
            Ok(if refused > 0 { 1 } else { 0 })
        }
        AdvisoriesCmd::Match => {
            print_match_report(
                "matched every pump and pump server",
                &store.match_vulnerabilities(&actor).await?,
            );
            Ok(0)
        }
    }
}

async fn user(s: &Settings, c: UserCmd) -> Result<i32> {
    match c {
        UserCmd::Add {
            username,
            role,
            display_name,
            password_stdin,
        } => {
            debug_assert!(password_stdin);
            let username =
                validate_username(&username).map_err(|e| anyhow::anyhow!("--username: {e}"))?;
            let mut pw = String::new();
            std::io::stdin()
                .lock()
                .take(4096)
                .read_to_string(&mut pw)
                .context("reading the password from standard input")?;
            let pw = pw
                .strip_suffix('\n')
                .map(|p| p.strip_suffix('\r').unwrap_or(p))
                .unwrap_or(&pw)
                .to_owned();
            password::check_new_password(&pw, &username)
                .map_err(|e| anyhow::anyhow!("password: {e}"))?;
            let store = open(s).await?;
            let display = display_name.unwrap_or_else(|| username.clone());
            let u = store
                .create_user(
                    &username,
                    &display,
                    role,
                    &password::hash_password(&pw),
                    false,
                    &Actor::cli(),
                )
                .await?;
            println!("created user {} with role {}", u.username, u.role);
            if store.mfa_required(role).await? {
                println!("the {role} role requires MFA: they will enrol a TOTP authenticator at first login");
            }
            Ok(0)
        }
        UserCmd::List => {
            let store = open(s).await?;
            for u in store.list_users().await? {
                println!(
                    "{:<24} {:<12} {}{}",
                    u.username,
                    u.role,
                    if u.mfa_enrolled() { "mfa" } else { "-" },
                    if u.disabled { " disabled" } else { "" }
                );
            }
            Ok(0)
        }
    }
}

async fn audit(s: &Settings, c: AuditCmd) -> Result<i32> {
    let store = open(s).await?;
    let (report, dest) = match c {
        AuditCmd::Verify => {
            let head = store.audit_head().await?;
            let bar = progress(head.seq as u64, "verifying");
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len}")
                    .expect("valid template"),
            );
            let r = store
                .audit_walk(|_| {
                    bar.inc(1);
                    Ok(())
                })
                .await?;
            bar.finish_and_clear();
            (r, None)
        }
        AuditCmd::Export { output } => {
            let mut w: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let r = store
                .audit_walk(|rec| {
                    serde_json::to_writer(&mut w, rec)?;
                    w.write_all(b"\n")
                })
                .await?;
            w.flush()?;
            (r, output)
        }
    };
    match &report.error {
        None => {
            // On stderr, so that `audit export` can stream records on stdout.
            eprintln!(
                "audit chain intact: {} records, head {} ({}…){}",
                report.records,
                report.head.seq,
                &report.head.hash[..16],
                dest.map(|d| format!(", written to {}", d.display()))
                    .unwrap_or_default()
            );
            Ok(0)
        }
        Some(e) => {
            eprintln!("AUDIT CHAIN BROKEN at record {}: {e}", e.first_bad_seq());
            Ok(2)
        }
    }
}

async fn pki(s: &Settings, c: PkiCmd) -> Result<i32> {
    use pumpward_server::pki::CaService;
    let store = open(s).await?;
    let actor = Actor::cli();
    match c {
        PkiCmd::Init {
            import_cert,
            import_key,
        } => {
            if store.ca_material().await?.is_some() {
                bail!("this store already has a certificate authority");
            }
            let ca = match (import_cert, import_key) {
                (Some(c), Some(k)) => {
                    let cert = std::fs::read_to_string(&c)
                        .with_context(|| format!("reading {}", c.display()))?;
                    let key = pumpward_pki::Zeroizing::new(
                        std::fs::read_to_string(&k)
                            .with_context(|| format!("reading {}", k.display()))?,
                    );
                    CaService::import(store.clone(), s.pki.clone(), &cert, &key, &actor).await?
                }
                _ => CaService::open(store.clone(), s.pki.clone(), true).await?,
            };
            ca.publish_crl().await?;
            print!("{}", ca.chain_pem());
            eprintln!(
                "certificate authority ready; its chain is above (give it to clients to trust)"
            );
        }
        PkiCmd::Issue { asset, csr, output } => {
            let ca = CaService::open(store.clone(), s.pki.clone(), false).await?;
            let bytes =
                std::fs::read(&csr).with_context(|| format!("reading {}", csr.display()))?;
            let der = match std::str::from_utf8(&bytes) {
                Ok(t) if t.contains("-----BEGIN") => {
                    use rustls_pki_types::pem::PemObject;
                    rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(t.as_bytes())
                        .map_err(|e| anyhow::anyhow!("{}: {e}", csr.display()))?
                        .as_ref()
                        .to_vec()
                }
                _ => bytes,
            };
            let issued = ca.issue_for_asset(&asset, &der, &actor).await?;
            write_out(output.as_deref(), issued.pem.as_bytes())?;
            eprintln!(
                "issued certificate {} for asset {asset}, valid until {}",
                issued.serial_hex, issued.not_after
            );
        }
        PkiCmd::EnrollmentCode { asset } => {
            let ca = CaService::open(store.clone(), s.pki.clone(), false).await?;
            let (code, e) = ca.create_enrollment_code(&asset, &actor).await?;
            println!("{code}");
            eprintln!(
                "one-time enrollment code for asset {} (serial {}), valid until {}; it is shown only now",
                e.asset_id, e.device_serial, e.expires_at
            );
        }
        PkiCmd::Revoke { serial, reason } => {
            let ca = CaService::open(store.clone(), s.pki.clone(), false).await?;
            let reason: pumpward_pki::RevocationReason = reason.parse()?;
            let rec = ca.revoke(&serial, reason, &actor).await?;
            println!(
                "revoked {} ({}) at {}",
                rec.serial,
                reason,
                rec.revoked_at.unwrap_or_default()
            );
        }
        PkiCmd::Crl { output } => {
            let ca = CaService::open(store.clone(), s.pki.clone(), false).await?;
            let crl = ca.publish_crl().await?;
            write_out(output.as_deref(), crl.pem.as_bytes())?;
        }
        PkiCmd::List {
            asset,
            expiring,
            revoked,
        } => {
            let now = time::OffsetDateTime::now_utc();
            let mut after = None;
            println!(
                "{:<34} {:<7} {:<14} {:<28} {:<28} revoked",
                "serial", "kind", "asset", "not_before", "not_after"
            );
            loop {
                let (page, next) = store
                    .list_certificates(&pumpward_store::CertFilter {
                        asset_id: asset.clone(),
                        expiring: expiring.map(|d| (now + time::Duration::days(d), now)),
                        revoked: revoked.then_some(true),
                        after: after.take(),
                        limit: 500,
                        ..Default::default()
                    })
                    .await?;
                for c in page {
                    println!(
                        "{:<34} {:<7} {:<14} {:<28} {:<28} {}",
                        c.serial,
                        format!("{:?}", c.kind).to_lowercase(),
                        c.asset_id.unwrap_or_else(|| "-".into()),
                        c.not_before,
                        c.not_after,
                        c.revocation_reason.unwrap_or_else(|| "-".into())
                    );
                }
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
    }
    Ok(0)
}

fn write_out(path: Option<&std::path::Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display())),
        None => {
            std::io::stdout().write_all(bytes)?;
            Ok(())
        }
    }
}

/// Reads a file of at most `max` bytes (hostile input is bounded before
/// it is parsed).
fn read_bounded(path: &std::path::Path, max: usize) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > max {
        bail!("{} is larger than {max} bytes", path.display());
    }
    Ok(bytes)
}

fn library_bytes(lib: &pumpward_druglib::Library, format: LibraryFormat) -> Vec<u8> {
    match format {
        LibraryFormat::Json => {
            let mut s = pumpward_druglib::json::to_pretty_json(lib);
            s.push('\n');
            s.into_bytes()
        }
        LibraryFormat::Csv => pumpward_druglib::csv::write_library_csv(lib),
    }
}

fn signing_key(cert: &std::path::Path) -> Result<pumpward_pki::LibrarySigningKey> {
    let pem = String::from_utf8(read_bounded(cert, 1 << 20)?)
        .with_context(|| format!("{} is not PEM text", cert.display()))?;
    pumpward_pki::library_signing_key(&pem)
        .with_context(|| format!("the signing certificate {}", cert.display()))
}

fn trusted_key(cert: &std::path::Path) -> Result<pumpward_druglib::TrustedKey> {
    Ok(pumpward_druglib::TrustedKey::from_spki(
        signing_key(cert)?.spki_der,
    ))
}

/// `pumpward library …`. Exit 2 when an envelope is refused.
fn library(c: LibraryCmd) -> Result<i32> {
    use pumpward_druglib::envelope::MAX_ENVELOPE_BYTES;
    match c {
        LibraryCmd::Sample { format } => {
            write_out(
                None,
                &library_bytes(&pumpward_druglib::sample_library(), format),
            )?;
        }
        LibraryCmd::Verify {
            file,
            cert,
            installed_version,
            care_area,
            ca_file,
        } => {
            let signer = signing_key(&cert)?;
            let key = pumpward_druglib::TrustedKey::from_spki(signer.spki_der.clone());
            let bytes = read_bounded(&file, MAX_ENVELOPE_BYTES + 1)?;
            let refuse = |why: String| {
                eprintln!("REFUSED: {}: {why}", file.display());
                Ok(2)
            };
            let v = match pumpward_druglib::verify_envelope(&bytes, std::slice::from_ref(&key)) {
                Ok(v) => v,
                Err(e) => return refuse(e.to_string()),
            };
            // The signer must have been valid when it signed, and, given the
            // CA, chain to it.
            let Ok(published_at) = time::OffsetDateTime::from_unix_timestamp(v.published_at as i64)
            else {
                return refuse(format!(
                    "publication time {} is out of range",
                    v.published_at
                ));
            };
            let valid = signer.info.not_before..=signer.info.not_after;
            if !valid.contains(&published_at) {
                return refuse(format!(
                    "published at {}, outside the signing certificate's validity ({} to {})",
                    pumpward_core::timefmt::format(published_at),
                    pumpward_core::timefmt::format(signer.info.not_before),
                    pumpward_core::timefmt::format(signer.info.not_after)
                ));
            }
            if let Some(ca) = &ca_file {
                let chain = String::from_utf8(read_bounded(ca, 1 << 20)?)
                    .with_context(|| format!("{} is not PEM text", ca.display()))?;
                if let Err(e) = pumpward_pki::verify_library_signer(&signer, &chain, published_at) {
                    return refuse(format!("{} against {}", e, ca.display()));
                }
            }
            // The pump's own rules, when asked: the same decision function.
            if let Some(area) = &care_area {
                let installed = installed_version.map(|n| pumpward_druglib::InstalledLibrary {
                    id: v.library.id.clone(),
                    version: n,
                    digest: [0; 32],
                });
                if let pumpward_druglib::InstallDecision::Reject { reason } =
                    pumpward_druglib::decide_install(installed.as_ref(), &bytes, &[key], area)
                {
                    return refuse(reason.to_string());
                }
            } else if let Some(n) = installed_version {
                if v.library.version <= n {
                    return refuse(
                        pumpward_druglib::RejectReason::NotNewer {
                            installed: n,
                            offered: v.library.version,
                        }
                        .to_string(),
                    );
                }
            }
            let published = time::OffsetDateTime::from_unix_timestamp(v.published_at as i64)
                .map(pumpward_core::timefmt::format)
                .unwrap_or_else(|_| v.published_at.to_string());
            println!("OK: the envelope verifies against {}", cert.display());
            if let Some(ca) = &ca_file {
                println!(
                    "chain:        the signing certificate chains to {}",
                    ca.display()
                );
            }
            if signer.info.not_after < time::OffsetDateTime::now_utc() {
                println!(
                    "note:         the signing certificate has expired since ({}); it was valid at publication",
                    pumpward_core::timefmt::format(signer.info.not_after)
                );
            }
            println!("library:      {} ({})", v.library.id, v.library.name);
            println!("version:      {}", v.library.version);
            println!("sha256:       {}", hex_lower(&v.digest));
            println!("signer:       {}", v.signer);
            println!("key id:       {}", hex_lower(&v.kid));
            println!("published at: {published}");
            println!(
                "content:      {} care areas, {} entries",
                v.library.care_areas.len(),
                v.library.entry_count()
            );
        }
        LibraryCmd::Export {
            file,
            format,
            cert,
            output,
        } => {
            let bytes = read_bounded(&file, MAX_ENVELOPE_BYTES + 1)?;
            let lib = match &cert {
                Some(cert) => {
                    let key = trusted_key(cert)?;
                    match pumpward_druglib::verify_envelope(&bytes, &[key]) {
                        Ok(v) => v.library,
                        Err(e) => {
                            eprintln!("REFUSED: {}: {e}", file.display());
                            return Ok(2);
                        }
                    }
                }
                None => {
                    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
                    let lib = if first == Some(&b'{') {
                        pumpward_druglib::json::parse_library_json(&bytes)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
                    } else if bytes.first().is_some_and(|b| *b >= 0x80) {
                        bail!(
                            "{} looks like a signed envelope; give --cert to verify it first",
                            file.display()
                        );
                    } else {
                        pumpward_druglib::csv::read_library_csv(&bytes)
                            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
                    };
                    lib.validate()
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                    lib
                }
            };
            write_out(output.as_deref(), &library_bytes(&lib, format))?;
        }
    }
    Ok(0)
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
