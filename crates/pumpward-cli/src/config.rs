//! Settings from, in order of precedence: command-line options, `PUMPWARD_*`
//! environment variables (both through clap), the TOML file named by
//! `--config`, and built-in defaults.

use crate::{Cli, LogFormat};
use anyhow::{Context, Result};
use pumpward_server::pki::{KekSource, PkiSettings};
use pumpward_server::state::ServerSettings;
use serde::Deserialize;
use std::path::PathBuf;

/// The TOML file's keys. Unknown keys are an error, so a typo is not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<std::net::SocketAddr>,
    pub log_format: Option<LogFormat>,
    pub session_idle_minutes: Option<i64>,
    pub session_absolute_hours: Option<i64>,
    pub login_max_failures: Option<u32>,
    pub login_lockout_minutes: Option<i64>,
    /// The pumps' listener (EST and the device channel).
    pub gateway_listen: Option<std::net::SocketAddr>,
    /// The CA's key-encryption key file (default: `<data-dir>.kek`).
    pub ca_kek_file: Option<PathBuf>,
    /// `O=` of every certificate the CA issues.
    pub ca_organization: Option<String>,
    /// Validity of pump certificates, in days.
    pub device_certificate_days: Option<u32>,
    /// Key algorithm of the CA and server keys it makes: p256 (default), p384, ed25519.
    pub ca_algorithm: Option<String>,
    /// A detection rules file (TOML, the format of `pumpward detect rules`);
    /// a relative path is relative to the config file.
    pub detection_rules: Option<PathBuf>,
    /// SIEM sinks (`[[siem]]` tables; see docs/SIEM.md).
    #[serde(default)]
    pub siem: Vec<pumpward_server::siem::SinkConfig>,
    /// UDP address for IPFIX / NetFlow v9 (`serve --flow-listen`).
    pub flow_listen: Option<std::net::SocketAddr>,
    /// A Zeek conn.log to follow (`serve --zeek-conn-log`).
    pub zeek_conn_log: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub listen: Option<std::net::SocketAddr>,
    pub log_format: LogFormat,
    pub server: ServerSettings,
    pub gateway_listen: Option<std::net::SocketAddr>,
    pub pki: PkiSettings,
    /// The detection rules file's text, checked when the settings load.
    pub detection_rules: Option<String>,
    pub siem: Vec<pumpward_server::siem::SinkConfig>,
    /// The live flow collectors of `serve`.
    pub network: pumpward_server::network::NetworkOptions,
}

impl Settings {
    pub fn load(cli: &Cli) -> Result<Settings> {
        let mut file: FileConfig = match &cli.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read the config file {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        // The options that have no command-line flag still take a
        // PUMPWARD_* variable, which beats the file.
        env_override(
            "PUMPWARD_SESSION_IDLE_MINUTES",
            &mut file.session_idle_minutes,
        )?;
        env_override(
            "PUMPWARD_SESSION_ABSOLUTE_HOURS",
            &mut file.session_absolute_hours,
        )?;
        env_override("PUMPWARD_LOGIN_MAX_FAILURES", &mut file.login_max_failures)?;
        env_override(
            "PUMPWARD_LOGIN_LOCKOUT_MINUTES",
            &mut file.login_lockout_minutes,
        )?;
        let mut server = ServerSettings::default();
        if let Some(m) = file.session_idle_minutes {
            anyhow::ensure!(
                (1..=24 * 60).contains(&m),
                "session_idle_minutes must be between 1 and 1440"
            );
            server.session_idle = time::Duration::minutes(m);
        }
        if let Some(h) = file.session_absolute_hours {
            anyhow::ensure!(
                (1..=72).contains(&h),
                "session_absolute_hours must be between 1 and 72"
            );
            server.session_absolute = time::Duration::hours(h);
        }
        if let Some(n) = file.login_max_failures {
            anyhow::ensure!(
                (1..=100).contains(&n),
                "login_max_failures must be between 1 and 100"
            );
            server.throttle.max_failures = n;
        }
        if let Some(m) = file.login_lockout_minutes {
            anyhow::ensure!(
                (1..=24 * 60).contains(&m),
                "login_lockout_minutes must be between 1 and 1440"
            );
            server.throttle.lockout = time::Duration::minutes(m);
        }
        env_override("PUMPWARD_CA_KEK_FILE", &mut file.ca_kek_file)?;
        env_override("PUMPWARD_GATEWAY_LISTEN", &mut file.gateway_listen)?;
        let data_dir = cli
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("pumpward-data"));
        // A passphrase only ever comes from the environment: never from a
        // file that might sit next to the data it protects.
        let kek = match std::env::var("PUMPWARD_CA_PASSPHRASE") {
            Ok(p) => KekSource::Passphrase(p.into()),
            Err(_) => match file.ca_kek_file {
                Some(path) => KekSource::KeyFile { path, create: true },
                None => KekSource::default_for(&data_dir),
            },
        };
        let mut pki = PkiSettings::new(kek);
        if let Some(o) = file.ca_organization {
            pki.ca.organization = o;
        }
        if let Some(a) = file.ca_algorithm {
            pki.ca.algorithm = a
                .parse()
                .map_err(|e| anyhow::anyhow!("ca_algorithm: {e}"))?;
        }
        if let Some(d) = file.device_certificate_days {
            anyhow::ensure!(
                (1..=3650).contains(&d),
                "device_certificate_days must be between 1 and 3650"
            );
            pki.ca.device_validity_days = d;
        }
        let detection_rules = match &file.detection_rules {
            None => None,
            Some(path) => {
                let path = match cli.config.as_ref().and_then(|c| c.parent()) {
                    Some(dir) if path.is_relative() => dir.join(path),
                    _ => path.clone(),
                };
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("cannot read the detection rules file {}", path.display())
                })?;
                pumpward_detect::DetectionConfig::from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("detection rules file {}: {e}", path.display()))?;
                Some(text)
            }
        };
        pumpward_server::siem::check_sinks(&file.siem)?;
        Ok(Settings {
            data_dir,
            detection_rules,
            database_url: cli.database_url.clone().or(file.database_url),
            listen: file.listen,
            log_format: cli
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            server,
            gateway_listen: file.gateway_listen,
            pki,
            siem: file.siem,
            network: pumpward_server::network::NetworkOptions {
                flow_listen: file.flow_listen,
                zeek_conn_log: file.zeek_conn_log,
            },
        })
    }
}

fn env_override<T: std::str::FromStr>(name: &str, slot: &mut Option<T>) -> Result<()>
where
    T::Err: std::fmt::Display,
{
    if let Ok(v) = std::env::var(name) {
        *slot = Some(
            v.trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{name}={v:?}: {e}"))?,
        );
    }
    Ok(())
}
