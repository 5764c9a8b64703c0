//! The generated FreeRADIUS files, loaded by the real FreeRADIUS:
//! MAB admits an authorised MAC with its VLAN (RFC 3580 tunnel attributes)
//! and rejects an unknown one, as `radclient` shows; the EAP-TLS policy
//! passes FreeRADIUS's own configuration check.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pumpward_net::export::radius;
use pumpward_net::PolicyDocument;

const SECRET: &str = "pumpward-test-secret";

fn fixture() -> PolicyDocument {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/hospital.toml");
    PolicyDocument::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A minimal server: one client (localhost), the `files` module reading the
/// generated authorize file, PAP, and optionally the generated EAP module
/// and certificate-check virtual server.
fn radiusd_conf(dir: &Path, port: u16, eap: Option<(&str, &str)>) -> String {
    let d = dir.display();
    let (eap_module, eap_site, eap_call) = match eap {
        Some((m, s)) => (m, s, "\t\teap\n"),
        None => ("", "", ""),
    };
    format!(
        r#"prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = {d}
sbindir = /usr/sbin
logdir = {d}
raddbdir = {d}
radacctdir = {d}
name = freeradius
confdir = {d}
modconfdir = {d}
run_dir = {d}
db_dir = {d}
libdir = /usr/lib/freeradius
pidfile = {d}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
	destination = stdout
}}
security {{
	allow_core_dumps = no
}}
client localhost {{
	ipaddr = 127.0.0.1
	secret = {SECRET}
}}
modules {{
	files {{
		filename = {d}/authorize
	}}
	pap {{
	}}
{eap_module}
}}
server default {{
	listen {{
		type = auth
		ipaddr = 127.0.0.1
		port = {port}
	}}
	authorize {{
{eap_call}		files
		pap
	}}
	authenticate {{
{eap_call}		Auth-Type PAP {{
			pap
		}}
	}}
}}
{eap_site}
"#
    )
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn radclient(port: u16, mac_user: &str) -> String {
    let mut child = Command::new(common::find("radclient").unwrap())
        .args([
            "-x",
            "-r",
            "2",
            "-t",
            "2",
            &format!("127.0.0.1:{port}"),
            "auth",
            SECRET,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(
            stdin,
            "User-Name = \"{mac_user}\", User-Password = \"{mac_user}\", Calling-Station-Id = \"{mac_user}\""
        )
        .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn freeradius_binary() -> Option<std::path::PathBuf> {
    common::find("freeradius").or_else(|| common::find("radiusd"))
}

#[test]
fn mab_accepts_an_authorised_mac_with_its_vlan_and_rejects_an_unknown_one() {
    let (Some(server_bin), Some(_)) = (freeradius_binary(), common::find("radclient")) else {
        return common::skip(
            "FreeRADIUS MAB",
            "freeradius or radclient is not installed (Debian: freeradius, freeradius-utils)",
        );
    };
    let d = fixture();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("authorize"),
        radius::mab_authorize(&d.policy, &d.assets),
    )
    .unwrap();
    let port = free_udp_port();
    std::fs::write(
        dir.path().join("radiusd.conf"),
        radiusd_conf(dir.path(), port, None),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let server = Server(
        Command::new(server_bin)
            .args(["-X", "-d"])
            .arg(dir.path())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    loop {
        let mut text = String::new();
        let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
        if text.contains("Ready to process requests") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "FreeRADIUS did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // PUMP-0002 is admitted by MAB in zone infusion-pump (VLAN 20).
    let out = radclient(port, "021b00000002");
    assert!(out.contains("Received Access-Accept"), "{out}");
    assert!(out.contains("Tunnel-Type:0 = VLAN"), "{out}");
    assert!(out.contains("Tunnel-Medium-Type:0 = IEEE-802"), "{out}");
    assert!(out.contains("Tunnel-Private-Group-Id:0 = \"20\""), "{out}");
    // PS-01 lands in the pump-server VLAN.
    let out = radclient(port, "022100000001");
    assert!(out.contains("Received Access-Accept"), "{out}");
    assert!(out.contains("Tunnel-Private-Group-Id:0 = \"21\""), "{out}");
    // An unknown MAC, and PUMP-0001's MAC (admitted by EAP-TLS, never MAB).
    for unknown in ["021b000000ff", "021b00000001"] {
        let out = radclient(port, unknown);
        assert!(out.contains("Received Access-Reject"), "{unknown}: {out}");
        assert!(!out.contains("Tunnel-Private-Group-Id"), "{out}");
    }
    drop(server);
}

#[test]
fn eap_tls_policy_passes_freeradius_configuration_check() {
    let (Some(server_bin), Some(openssl)) = (freeradius_binary(), common::find("openssl")) else {
        return common::skip(
            "FreeRADIUS EAP-TLS configuration",
            "freeradius or openssl is not installed (Debian: freeradius, openssl)",
        );
    };
    let d = fixture();
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).display().to_string();
    for (key, cert, cn) in [
        ("ca.key", "ca.pem", "Pumpward Test CA"),
        ("srv.key", "srv.pem", "radius"),
    ] {
        let (ok, out) = common::run(Command::new(&openssl).args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &p(key),
            "-out",
            &p(cert),
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
        ]));
        assert!(ok, "openssl: {out}");
    }
    let files = radius::EapTlsFiles {
        ca_file: p("ca.pem"),
        server_certificate_file: p("srv.pem"),
        server_private_key_file: p("srv.key"),
    };
    let (eap, site) = radius::eap_tls(&d.policy, &d.assets, &files);
    std::fs::write(
        dir.path().join("authorize"),
        radius::mab_authorize(&d.policy, &d.assets),
    )
    .unwrap();
    let conf = radiusd_conf(dir.path(), free_udp_port(), Some((&eap, &site)));
    std::fs::write(dir.path().join("radiusd.conf"), &conf).unwrap();
    let (ok, out) = common::run(
        Command::new(&server_bin)
            .args(["-XC", "-d"])
            .arg(dir.path()),
    );
    assert!(
        ok && out.contains("Configuration appears to be OK"),
        "{out}"
    );
    assert!(out.contains("server pumpward-check-eap-tls"), "{out}");

    // The check is real: a CA file that is not there is refused.
    std::fs::remove_file(dir.path().join("ca.pem")).unwrap();
    let (ok, out) = common::run(
        Command::new(&server_bin)
            .args(["-XC", "-d"])
            .arg(dir.path()),
    );
    assert!(!ok, "FreeRADIUS accepted a missing CA file:\n{out}");
}
