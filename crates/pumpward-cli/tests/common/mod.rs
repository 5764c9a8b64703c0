//! What the binary's integration tests share: running the binary, ports, a
//! biomed user with an API token, and a `pumpward serve` child process.
#![allow(dead_code)]

use pumpward_core::access::{password, Permission, Role};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Runs the `pumpward` binary with `args`, without the database URL or
/// data directory of the shell that runs the tests.
pub fn run_pumpward<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_pumpward"))
        .args(args)
        .env_remove("PUMPWARD_DATABASE_URL")
        .env_remove("PUMPWARD_DATA_DIR")
        .output()
        .unwrap()
}

/// Runs `pumpward --data-dir DATA args…`.
pub fn pumpward_in(data: &Path, args: &[&str]) -> Output {
    let data = [OsStr::new("--data-dir"), data.as_os_str()];
    run_pumpward(data.into_iter().chain(args.iter().map(OsStr::new)))
}

/// A run's standard output.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A run's standard error.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a biomed's token needs to enroll, revoke and list pumps.
pub const BIOMED_PKI: &[Permission] = &[
    Permission::PkiEnroll,
    Permission::PkiRevoke,
    Permission::PkiRead,
    Permission::InventoryRead,
];

/// A biomedical engineer `bea` and an API token `secret` with `perms`.
pub async fn biomed_with_token(store: &pumpward_store::Store, secret: &str, perms: &[Permission]) {
    let actor = pumpward_store::Actor::cli();
    let u = store
        .create_user(
            "bea",
            "Bea",
            Role::Biomed,
            &password::hash_password("Tricycle-Harbour-Lantern-42"),
            false,
            &actor,
        )
        .await
        .unwrap();
    store
        .create_api_token(
            &u,
            "test",
            &pumpward_server::auth::token_hash(secret),
            perms,
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            &actor,
        )
        .await
        .unwrap();
}

/// `pumpward serve` on `data` with the CA's key-encryption key in `kek`.
pub fn start_server(data: &Path, kek: &Path, port: u16, gport: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_pumpward"))
        .arg("--data-dir")
        .arg(data)
        .env("PUMPWARD_CA_KEK_FILE", kek)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--gateway-listen",
            &format!("127.0.0.1:{gport}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Stores an in-service pump (Baxter Sigma Spectrum unless it matters).
pub async fn in_service_pump(
    store: &pumpward_store::Store,
    id: &str,
    serial: &str,
    mac: Option<String>,
) {
    use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
    let spec = AssetSpec::validate(&AssetDraft {
        asset_id: id.into(),
        kind: Some("pump".into()),
        manufacturer: "Baxter".into(),
        model: "Sigma Spectrum".into(),
        serial_number: serial.into(),
        firmware_version: "8.00.01".into(),
        mac_address: mac,
        care_area: Some("Adult ICU".into()),
        ..Default::default()
    })
    .unwrap();
    store
        .create_asset(
            &spec,
            Some(LifecycleState::InService),
            &pumpward_store::Actor::cli(),
        )
        .await
        .unwrap();
}
