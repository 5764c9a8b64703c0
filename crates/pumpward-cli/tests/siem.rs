//! `pumpward serve` with a `[[siem]]` sink in its configuration file: an
//! administrative action through the API reaches the SIEM as a syslog
//! datagram (RFC 5424 over UDP, JSON body), through the audit trail and the
//! detection engine of the real binary.

mod common;

use common::{biomed_with_token, free_port};
use pumpward_core::access::Permission;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BEA: &str = "pw_siem-biomed-token-0123456789abcdefghij";

/// Kills the server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_sends_to_the_siem_sinks_of_its_config_file() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let store = pumpward_store::Store::open_sqlite(&data).await.unwrap();
    biomed_with_token(
        &store,
        BEA,
        &[Permission::InventoryWrite, Permission::InventoryRead],
    )
    .await;
    store.close().await;

    let soc = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    soc.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let config = t.path().join("pumpward.toml");
    std::fs::write(
        &config,
        format!(
            "[[siem]]\nname = \"soc\"\ndestination = \"syslog+udp://{}\"\nformat = \"json\"\n\
             events_min_severity = \"info\"\n",
            soc.local_addr().unwrap()
        ),
    )
    .unwrap();
    let (port, gport) = (free_port(), free_port());
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_pumpward"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .env("PUMPWARD_CA_KEK_FILE", t.path().join("kek"))
            .env_remove("PUMPWARD_DATABASE_URL")
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
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !data.join("tls/ca.pem").exists()
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ca_pem = std::fs::read(data.join("tls/ca.pem")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .build()
        .unwrap();
    // Detection starts with the server; give it a moment to take its
    // starting point in the audit trail, then act.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = http
        .post(format!("https://127.0.0.1:{port}/api/v1/assets"))
        .bearer_auth(BEA)
        .json(&serde_json::json!({
            "asset_id": "P-SIEM",
            "manufacturer": "ICU Medical",
            "model": "Plum 360",
            "serial_number": "SN-SIEM",
            "firmware_version": "15.11",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // The audit record of that creation, as a syslog message with a JSON
    // body naming the action, the asset and the token's user.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 65_536];
    let mut seen = Vec::new();
    let message = loop {
        assert!(
            Instant::now() < deadline,
            "no admin_audit message for the asset; received: {seen:#?}"
        );
        let Ok(n) = soc.recv(&mut buf) else { continue };
        let raw = String::from_utf8_lossy(&buf[..n]).into_owned();
        if raw.contains("admin_audit") && raw.contains("P-SIEM") {
            break raw;
        }
        seen.push(raw);
    };
    assert!(message.starts_with('<'), "an RFC 5424 PRI first: {message}");
    let body: serde_json::Value =
        serde_json::from_str(&message[message.find("{\"schema\"").unwrap()..]).unwrap();
    assert_eq!(body["msg_id"], "event", "{body}");
    assert_eq!(body["signature_id"], "admin_audit", "{body}");
    let text = body.to_string();
    assert!(text.contains("asset.create"), "{text}");
    assert!(text.contains("asset:P-SIEM"), "{text}");
}
