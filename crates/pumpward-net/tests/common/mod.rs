//! Shared by the real-peer tests: finding programs and skipping honestly.
//!
//! A test whose peer (a program, or the right to make network namespaces)
//! is missing prints `SKIPPED (<what>): <reason>` and returns — but under CI
//! (`CI=true`, set by `.ci/run`) it fails instead, because a skipped peer
//! would hide a broken export.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Reports a missing peer: a panic under CI, a visible skip elsewhere.
pub fn skip(what: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} cannot run under CI: {reason}");
    }
    eprintln!("SKIPPED ({what}): {reason}");
}

/// The program's path, looking in PATH and the sbin directories (root's
/// tools such as `ip`, `nft` and `freeradius` live there).
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.is_file());
    found
}

/// Runs a command, returning (success, stdout + stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// A name unique to this process and call, short enough for an interface
/// name (15 bytes) once a one-letter role is appended.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{:x}{n:x}", std::process::id() % 0x10000)
}

/// The quarantine list the export tests use with `tests/golden/hospital.toml`:
/// an unknown device seen on the pump VLAN, and one of PUMP-0003's two MACs
/// (a registered asset's MAC on the list: the quarantine wins).
pub fn quarantine() -> Vec<pumpward_net::QuarantinedDevice> {
    vec![
        pumpward_net::QuarantinedDevice {
            mac: "02:1b:00:00:00:99".parse().unwrap(),
            addresses: vec![
                "10.20.0.99".parse().unwrap(),
                "fd00:20::99".parse().unwrap(),
            ],
            zone: Some("infusion-pump".into()),
            reason: "rogue laptop on the pump VLAN".into(),
        },
        pumpward_net::QuarantinedDevice {
            mac: "02:1b:00:00:00:13".parse().unwrap(),
            addresses: Vec::new(),
            zone: Some("infusion-pump".into()),
            reason: "cloned MAC seen in two places".into(),
        },
    ]
}
