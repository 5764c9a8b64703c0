//! `pumpward net`: the network zone policy (check, export to enforcement
//! points) and offline evaluation of observed flows (a Zeek `conn.log` or a
//! pcap/pcapng capture) against it, with the inventory of `--data-dir`.
//!
//! The policy is the current version stored with `net policy import` (or
//! through the API and the UI); `--policy FILE` uses a file instead, and
//! with nothing stored the SP 1800-8 starter policy shipped with Pumpward
//! applies.

use crate::config::Settings;
use crate::open;
use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use pumpward_core::inventory::DeviceModel;
use pumpward_flow::pcap::{read_capture, AggregatorConfig};
use pumpward_flow::zeek::ConnLogReader;
use pumpward_flow::Flow;
use pumpward_net::inventory::Listing;
use pumpward_net::{AssetIdentity, Evaluator, Policy, PolicyDocument, Severity, Verdict};
use pumpward_store::Actor;
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum NetCmd {
    /// The zone and conduit policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Evaluate observed flows (Zeek conn.log, TSV or JSON; pcap or pcapng)
    /// against the policy: counts per verdict and every violation.
    Flows {
        /// Capture or log files; the format is recognised from the content.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The policy (TOML); default: the stored policy (or the starter).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// At most this many violations printed (all are counted).
        #[arg(long, default_value_t = 50)]
        show: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCmd {
    /// Check a policy file against the inventory and store it as the next
    /// version; refused, changing nothing, if the check finds an error
    /// (exit 1, each error with its line).
    Import {
        file: PathBuf,
        /// What changed and why, kept with the version.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Check the policy and the inventory's network identities against it:
    /// contradictions, shadowed conduits, unknown zones, admission methods a
    /// model cannot support. Exit 1 if there is an error.
    Check {
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Write the policy for an enforcement point (deterministic, diffable);
    /// `--format toml` writes the stored version (or `--policy`'s file) as
    /// canonical TOML.
    Export {
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// The policy itself, canonical TOML.
    Toml,
    /// An nftables ruleset for `nft -f`.
    Nft,
    /// FreeRADIUS users file for MAC authentication bypass (RFC 3580 VLANs).
    FreeradiusMab,
    /// Cisco ISE endpoint import CSV.
    Ise,
    /// A plain ACL table, CSV.
    Acl,
}

/// The policy file's text, or the stored policy's (the starter when none is
/// stored).
async fn policy_text(s: &Settings, path: Option<&Path>) -> Result<String> {
    match path {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the policy {}", p.display())),
        None => {
            let store = open(s).await?;
            let v = store.current_network_policy().await?;
            store.close().await;
            Ok(v.map_or_else(|| pumpward_net::STARTER_POLICY_TOML.to_owned(), |v| v.toml))
        }
    }
}

async fn load_policy(s: &Settings, path: Option<&Path>) -> Result<Policy> {
    match path {
        None => {
            let text = policy_text(s, None).await?;
            PolicyDocument::from_toml(&text)
                .map(|d| d.policy)
                .map_err(|e| anyhow::anyhow!("the stored policy: {e}"))
        }
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the policy {}", p.display()))?;
            PolicyDocument::from_toml(&text)
                .map(|d| d.policy)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
        }
    }
}

/// The quarantine list in force (the exports refuse its devices).
async fn quarantine(s: &Settings) -> Result<Vec<pumpward_net::QuarantinedDevice>> {
    let store = open(s).await?;
    let got = store.quarantined_devices().await?;
    store.close().await;
    Ok(got)
}

async fn identities(s: &Settings) -> Result<(Vec<AssetIdentity>, Vec<DeviceModel>)> {
    identities_for(s, Listing::All).await
}

async fn identities_for(
    s: &Settings,
    listing: Listing,
) -> Result<(Vec<AssetIdentity>, Vec<DeviceModel>)> {
    let store = open(s).await?;
    let got = store.network_identities(listing).await?;
    store.close().await;
    Ok(got)
}

/// Runs one `net` command; returns the process exit code.
pub async fn net(s: &Settings, c: NetCmd) -> Result<i32> {
    match c {
        NetCmd::Policy(PolicyCmd::Import { file, comment }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the policy {}", file.display()))?;
            let store = open(s).await?;
            let (assets, models) = store.network_identities(Listing::All).await?;
            let review = pumpward_net::review(&text, &assets, &models);
            for i in &review.issues {
                println!("{}: {i}", file.display());
            }
            if !review.acceptable() {
                let n = review
                    .issues
                    .iter()
                    .filter(|i| i.severity == Severity::Error)
                    .count();
                println!("not imported: {n} error(s); the stored policy is unchanged");
                store.close().await;
                return Ok(1);
            }
            // The operator imports over whatever is current.
            let base = store.current_network_policy().await?.map(|v| v.version);
            let v = store
                .save_network_policy(&text, &comment, base, &Actor::cli())
                .await?;
            store.close().await;
            println!(
                "imported as version {} ({}, sha256 {}); a running server evaluates with it within a minute",
                v.version, v.name, v.digest
            );
        }
        NetCmd::Policy(PolicyCmd::Check { policy }) => {
            let policy = load_policy(s, policy.as_deref()).await?;
            let (assets, models) = identities(s).await?;
            let diags = pumpward_net::check(&policy, &assets, &models);
            let errors = diags
                .iter()
                .filter(|d| d.severity == pumpward_net::Severity::Error)
                .count();
            for d in &diags {
                println!("{d}");
            }
            println!(
                "{} zones, {} conduits, {} assets with a zone: {errors} errors, {} warnings",
                policy.zones.len(),
                policy.conduits.len(),
                assets.len(),
                diags.len() - errors
            );
            if errors > 0 {
                return Ok(1);
            }
        }
        NetCmd::Policy(PolicyCmd::Export {
            policy,
            format,
            output,
        }) => {
            let path = policy.as_deref();
            let text = match format {
                // The whole document (its own [[asset]] entries too), canonical.
                ExportFormat::Toml => {
                    let text = policy_text(s, path).await?;
                    PolicyDocument::from_toml(&text)
                        .map_err(|e| anyhow::anyhow!("the policy: {e}"))?
                        .to_toml()
                }
                // The enforcement exports refuse the stored quarantine list's
                // devices, whichever policy they were given.
                ExportFormat::Nft => pumpward_net::export::nft::ruleset(
                    &load_policy(s, path).await?,
                    &quarantine(s).await?,
                ),
                ExportFormat::Acl => pumpward_net::export::acl::acl_csv(
                    &load_policy(s, path).await?,
                    &quarantine(s).await?,
                ),
                ExportFormat::FreeradiusMab => {
                    let policy = load_policy(s, path).await?;
                    let (assets, _) = identities_for(s, Listing::Authorised).await?;
                    pumpward_net::export::radius::mab_authorize(
                        &policy,
                        &assets,
                        &quarantine(s).await?,
                    )
                }
                ExportFormat::Ise => {
                    let (assets, _) = identities_for(s, Listing::Authorised).await?;
                    pumpward_net::export::ise::endpoints_csv(&assets, &quarantine(s).await?)
                }
            };
            write_out(output.as_deref(), &text)?;
        }
        NetCmd::Flows {
            files,
            policy,
            show,
        } => {
            let policy = load_policy(s, policy.as_deref()).await?;
            let (assets, _) = identities(s).await?;
            let evaluator = Evaluator::new(&policy, &assets)
                .map_err(|e| anyhow::anyhow!("the policy cannot be evaluated: {e}"))?;
            let mut verdicts: BTreeMap<&'static str, u64> = BTreeMap::new();
            let mut shown = 0;
            for path in &files {
                let flows = read_flows(path)?;
                for f in &flows {
                    let e = evaluator.evaluate(f);
                    match e.verdict {
                        Verdict::Allowed(_) => *verdicts.entry("allowed").or_default() += 1,
                        Verdict::Violation(v) => {
                            *verdicts.entry(v.kind()).or_default() += 1;
                            if shown < show {
                                shown += 1;
                                println!("violation: {}", evaluator.describe(&e));
                            }
                        }
                    }
                }
            }
            for (k, n) in &verdicts {
                println!("{k}: {n}");
            }
        }
    }
    Ok(0)
}

fn write_out(output: Option<&Path>, text: &str) -> Result<()> {
    match output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// Every flow of one file: pcap/pcapng by its magic number, otherwise a Zeek
/// conn.log. Skipped records are reported on stderr with their reasons; a
/// truncated capture keeps the flows before the damage and says where.
fn read_flows(path: &Path) -> Result<Vec<Flow>> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let is_capture = n == 4
        && matches!(
            u32::from_le_bytes(magic),
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0x0a0d_0d0a
        );
    if is_capture {
        let got = read_capture(BufReader::new(file), AggregatorConfig::default());
        if let Some(e) = &got.error {
            eprintln!(
                "{}: {e} ({} flows read before it)",
                path.display(),
                got.flows.len()
            );
        }
        eprintln!(
            "{}: {} packets, {} flows",
            path.display(),
            got.counts.packets,
            got.flows.len()
        );
        return Ok(got.flows);
    }
    let mut reader = ConnLogReader::new(BufReader::new(file));
    let mut flows = Vec::new();
    let mut first_error = None;
    for r in reader.by_ref() {
        match r {
            Ok(f) => flows.push(f),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let counts = reader.counts();
    if counts.parsed == 0 && first_error.is_some() {
        if let Some(e) = first_error {
            bail!(
                "{}: not a pcap, pcapng or Zeek conn.log (line {}: {})",
                path.display(),
                e.line,
                e.detail
            );
        }
    }
    eprint!("{}: {} records", path.display(), counts.parsed);
    for (reason, n) in counts.skipped_by_reason() {
        eprint!(", {n} skipped ({reason})");
    }
    eprintln!();
    Ok(flows)
}
