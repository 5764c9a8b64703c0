//! `pumpward sbom`: attach a manufacturer's SBOM to a device model and
//! firmware version, list the attached ones and their components.

use crate::config::Settings;
use crate::open;
use anyhow::{Context, Result};
use clap::Subcommand;
use pumpward_store::Actor;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum SbomCmd {
    /// Attach an SBOM (CycloneDX JSON/XML or SPDX JSON/tag-value, detected
    /// from the content) to a model at a firmware version; the pumps of that
    /// model reporting that version are matched again at once.
    Attach {
        #[arg(long)]
        manufacturer: String,
        #[arg(long)]
        model: String,
        /// The firmware version the SBOM describes, as the pumps report it.
        #[arg(long)]
        version: String,
        file: PathBuf,
    },
    /// List the attached SBOMs.
    List {
        /// The components (and CycloneDX VEX statements) of this SBOM (its
        /// id in the list).
        #[arg(long)]
        components: Option<i64>,
    },
}

pub async fn sbom(s: &Settings, c: SbomCmd) -> Result<i32> {
    let store = open(s).await?;
    match c {
        SbomCmd::Attach {
            manufacturer,
            model,
            version,
            file,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let source = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let r = store
                .attach_sbom(
                    &manufacturer,
                    &model,
                    &version,
                    &source,
                    &bytes,
                    &Actor::cli(),
                )
                .await?;
            let b = &r.sbom;
            println!(
                "{} SBOM {}: {} {} firmware {} ({} {}, {} components, {} with a CPE name, {} with a purl)",
                r.outcome,
                b.id,
                b.manufacturer,
                b.model,
                b.firmware_version,
                b.format,
                b.spec_version,
                b.components,
                b.with_cpe,
                b.with_purl
            );
            for w in &b.warnings {
                println!("  warning: {w}");
            }
            if let Some(m) = &r.matched {
                println!(
                    "re-matched the {} pumps of this model and version: {} affected, {} to review open; {} raised, {} resolved",
                    m.assets, m.affected_open, m.review_open, m.raised, m.resolved
                );
            }
            Ok(0)
        }
        SbomCmd::List { components: None } => {
            let all = store.list_model_sboms().await?;
            for b in &all {
                println!(
                    "{:>4}  {} {} firmware {}  {} ({}; {} components, {} with CPE, {} with purl)  {}",
                    b.id,
                    b.manufacturer,
                    b.model,
                    b.firmware_version,
                    b.source,
                    b.format,
                    b.components,
                    b.with_cpe,
                    b.with_purl,
                    b.attached_at
                );
            }
            println!("{} SBOMs", all.len());
            Ok(0)
        }
        SbomCmd::List {
            components: Some(id),
        } => {
            let b = store.model_sbom(id).await?;
            println!(
                "SBOM {id}: {} {} firmware {} ({})",
                b.manufacturer, b.model, b.firmware_version, b.source
            );
            for c in store.sbom_components(id).await? {
                println!(
                    "  {} {}  {}  {}",
                    c.name,
                    c.version.as_deref().unwrap_or("-"),
                    c.purl.as_deref().unwrap_or("-"),
                    if c.cpes.is_empty() {
                        "-".to_owned()
                    } else {
                        c.cpes.join(" ")
                    }
                );
            }
            // The manufacturer's VEX statements, as matching applies them.
            for v in store.sbom_vex_statements(id).await? {
                println!(
                    "  VEX {} {}{}: affects {}",
                    v.vulnerability,
                    v.state.as_deref().unwrap_or("(no state)"),
                    v.justification
                        .as_deref()
                        .map(|j| format!(" ({j})"))
                        .unwrap_or_default(),
                    v.affects.join(" ")
                );
            }
            Ok(0)
        }
    }
}
