//! `pumpward findings`: the findings list (table, JSON, CSV) and the
//! remediation steps of vulnerability findings.

use crate::config::Settings;
use crate::{open, ListFormat};
use anyhow::{bail, Result};
use clap::Subcommand;
use pumpward_store::{write_findings_csv, Actor, FindingFilter, FindingRow};
use pumpward_vuln::remediation::Step;
use std::io::Write;

/// The statuses `--status` accepts.
const STATUSES: [&str; 8] = [
    "affected",
    "review",
    "fixed",
    "not_affected",
    "resolved",
    "open",
    "all",
    // Other kinds' open state is `open`; `resolved` covers theirs too.
    "unresolved",
];

#[derive(Subcommand, Debug)]
pub enum FindingsCmd {
    /// List findings, highest priority first. Without --status: the open
    /// ones (affected, review and other open findings).
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// affected, review, fixed, not_affected, resolved, open or all.
        #[arg(long)]
        status: Option<String>,
        /// Only this asset's findings.
        #[arg(long)]
        asset: Option<String>,
    },
    /// Take a remediation step on a vulnerability finding: vendor_patch_available
    /// (--vendor-reference), patch_validated (--validation-reference),
    /// scheduled (--date), deployed (--version, checked against the version
    /// the pump reports), risk_accepted (--control…, --owner, --review-date),
    /// reopen (--reason).
    Transition {
        /// The finding's id.
        id: i64,
        /// The state to go to.
        to: String,
        #[arg(long)]
        vendor_reference: Option<String>,
        #[arg(long)]
        validation_reference: Option<String>,
        /// YYYY-MM-DD.
        #[arg(long)]
        date: Option<String>,
        #[arg(long)]
        version: Option<String>,
        /// A compensating control (repeatable): network_isolated,
        /// wireless_disabled, vendor_access_disabled, monitored,
        /// physical_access_restricted.
        #[arg(long = "control")]
        controls: Vec<String>,
        #[arg(long)]
        owner: Option<String>,
        /// YYYY-MM-DD, after today.
        #[arg(long)]
        review_date: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Export the fleet's vulnerability status as a CSAF 2.0 VEX document
    /// (JSON) from the findings: affected, not affected (with the reason),
    /// fixed and under investigation, per model and version.
    Export {
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The publishing hospital's name.
        #[arg(long, default_value = "Hospital")]
        publisher: String,
        /// The hospital's URL (CSAF's publisher namespace).
        #[arg(long, default_value = "https://hospital.invalid")]
        namespace: String,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

/// The formats `findings export` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ExportFormat {
    /// CSAF 2.0, profile VEX (`csaf_vex`).
    CsafVex,
}

pub async fn findings(s: &Settings, c: FindingsCmd) -> Result<i32> {
    match c {
        FindingsCmd::Export {
            format: ExportFormat::CsafVex,
            publisher,
            namespace,
            out,
        } => {
            let store = open(s).await?;
            let doc = store.fleet_vex(&publisher, &namespace).await?;
            let problems = pumpward_vuln::vex::mandatory_problems(&doc);
            if !problems.is_empty() {
                bail!(
                    "the VEX document fails CSAF mandatory tests: {}",
                    problems.join("; ")
                );
            }
            let mut text = serde_json::to_vec_pretty(&doc)?;
            text.push(b'\n');
            match out {
                Some(p) => std::fs::write(&p, text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", p.display()))?,
                None => std::io::stdout().write_all(&text)?,
            }
            Ok(0)
        }
        FindingsCmd::List {
            format,
            status,
            asset,
        } => {
            let status = status.unwrap_or_else(|| "unresolved".into());
            if !STATUSES.contains(&status.as_str()) {
                bail!(
                    "--status: {status:?} is not one of {}",
                    STATUSES[..7].join(", ")
                );
            }
            let store = open(s).await?;
            let mut rows = Vec::new();
            let mut before = None;
            loop {
                let (page, next) = store
                    .list_findings(&FindingFilter {
                        asset_id: asset.clone(),
                        open: match status.as_str() {
                            "affected" | "review" | "open" | "unresolved" => Some(true),
                            "fixed" | "not_affected" | "resolved" => Some(false),
                            _ => None,
                        },
                        before_id: before,
                        limit: 500,
                        ..Default::default()
                    })
                    .await?;
                rows.extend(page.iter().map(FindingRow::from).filter(|r| {
                    match status.as_str() {
                        "all" | "open" | "unresolved" => true,
                        // Other kinds' resolved findings are `resolved` too.
                        s => r.status == s,
                    }
                }));
                match next {
                    Some(n) => before = Some(n),
                    None => break,
                }
            }
            // Highest priority first; findings without one (not
            // vulnerabilities) after, newest first.
            rows.sort_by(|a, b| {
                b.priority
                    .unwrap_or(-1.0)
                    .total_cmp(&a.priority.unwrap_or(-1.0))
                    .then(b.finding_id.cmp(&a.finding_id))
            });
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match format {
                ListFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &rows)?;
                    writeln!(out)?;
                }
                ListFormat::Csv => write_findings_csv(&mut out, &rows)?,
                ListFormat::Table => {
                    writeln!(
                        out,
                        "{:>6} {:<14} {:<16} {:<18} {:<12} {:>8} {:<9} {:<22}",
                        "ID",
                        "ASSET",
                        "CVE",
                        "ADVISORY",
                        "STATUS",
                        "PRIORITY",
                        "BAND",
                        "REMEDIATION"
                    )?;
                    for r in &rows {
                        writeln!(
                            out,
                            "{:>6} {:<14} {:<16} {:<18} {:<12} {:>8} {:<9} {:<22}",
                            r.finding_id,
                            r.asset_id.as_deref().unwrap_or("-"),
                            r.cve.as_deref().unwrap_or(&r.kind),
                            crate::trunc(r.advisory_id.as_deref().unwrap_or("-"), 18),
                            r.status,
                            r.priority
                                .map(|p| format!("{p:.1}"))
                                .unwrap_or_else(|| "-".into()),
                            r.priority_band.as_deref().unwrap_or("-"),
                            r.remediation.as_deref().unwrap_or("-"),
                        )?;
                    }
                    writeln!(out, "{} findings", rows.len())?;
                }
            }
            out.flush()?;
            Ok(0)
        }
        FindingsCmd::Transition {
            id,
            to,
            vendor_reference,
            validation_reference,
            date,
            version,
            controls,
            owner,
            review_date,
            reason,
        } => {
            // The options become the step's fields; serde names a missing
            // or misplaced one precisely.
            let mut step = serde_json::json!({ "to": to });
            for (k, v) in [
                ("vendor_reference", vendor_reference),
                ("validation_reference", validation_reference),
                ("date", date),
                ("version", version),
                ("owner", owner),
                ("review_date", review_date),
                ("reason", reason),
            ] {
                if let Some(v) = v {
                    step[k] = v.into();
                }
            }
            if !controls.is_empty() || to == "risk_accepted" {
                step["controls"] = controls.into();
            }
            let step: Step = serde_json::from_value(step)
                .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace('`', "")))?;
            let store = open(s).await?;
            let f = store.transition_finding(id, &step, &Actor::cli()).await?;
            println!(
                "finding {} ({}): remediation {}",
                f.id,
                f.title,
                f.remediation.as_deref().unwrap_or("-")
            );
            Ok(0)
        }
    }
}
