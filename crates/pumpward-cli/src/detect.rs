//! `pumpward detect`: the detection rules in effect, and checking a rules
//! file (thresholds, windows, severities, custom rules) before it is used.

use anyhow::Result;
use clap::Subcommand;
use pumpward_detect::{DetectionConfig, RuleId};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DetectCmd {
    /// Print the rules in effect: the shipped defaults, or a rules file read
    /// over them. A file that cannot be used is refused with the line and
    /// column of the problem (exit 1).
    Rules {
        /// A detection rules file (TOML). (`--config` is the server's
        /// configuration file, a global option.)
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// Print the shipped defaults as a TOML file to start from instead.
        #[arg(long, conflicts_with = "rules")]
        defaults: bool,
    },
}

/// Runs one `detect` command; returns the process exit code.
pub fn detect(c: DetectCmd) -> Result<i32> {
    let DetectCmd::Rules { rules, defaults } = c;
    if defaults {
        print!("{}", pumpward_detect::config::default_toml());
        return Ok(0);
    }
    let cfg = match &rules {
        None => DetectionConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            match DetectionConfig::from_toml(&text) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    return Ok(1);
                }
            }
        }
    };
    println!(
        "{:<30} {:<8} {:<9} {:>9} {:>9}  {:<9} title",
        "rule", "enabled", "severity", "threshold", "window_s", "csf"
    );
    for id in RuleId::ALL {
        let r = cfg.rule(id);
        let info = id.info();
        println!(
            "{:<30} {:<8} {:<9} {:>9} {:>9}  {:<9} {}",
            id.as_str(),
            r.enabled,
            r.severity.as_str(),
            r.threshold,
            r.window_s,
            info.csf,
            info.title
        );
    }
    for c in &cfg.custom {
        println!(
            "{:<30} {:<8} {:<9} {:>9} {:>9}  {:<9} {} (custom: {})",
            c.id,
            c.enabled,
            c.severity.as_str(),
            "-",
            "-",
            "-",
            c.title,
            c.source.replace('\n', " ")
        );
    }
    Ok(0)
}
