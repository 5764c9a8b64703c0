//! The generated FreeRADIUS files, loaded by the real FreeRADIUS:
//! MAB admits an authorised MAC with its VLAN (RFC 3580 tunnel attributes)
//! and rejects an unknown one and a quarantined one, as `radclient` shows; the EAP-TLS policy
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

/// Starts `freeradius -X` on a prepared directory and waits until it serves.
fn start(server_bin: &Path, dir: &Path) -> Server {
    let log = dir.join("server.log");
    let server = Server(
        Command::new(server_bin)
            .args(["-X", "-d"])
            .arg(dir)
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
            return server;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "FreeRADIUS did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn freeradius_binary() -> Option<std::path::PathBuf> {
    common::find("freeradius").or_else(|| common::find("radiusd"))
}

#[test]
fn mab_accepts_an_authorised_mac_with_its_vlan_and_rejects_unknown_and_quarantined_ones() {
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
        radius::mab_authorize(&d.policy, &d.assets, &common::quarantine()),
    )
    .unwrap();
    let port = free_udp_port();
    std::fs::write(
        dir.path().join("radiusd.conf"),
        radiusd_conf(dir.path(), port, None),
    )
    .unwrap();
    let server = start(&server_bin, dir.path());

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
        assert!(out.contains("not authorised by Pumpward"), "{out}");
    }
    // Quarantined: the unknown device on the list, and PUMP-0003's second
    // MAC (its first is still admitted: the quarantine is per MAC).
    for quarantined in ["021b00000099", "021b00000013"] {
        let out = radclient(port, quarantined);
        assert!(
            out.contains("Received Access-Reject"),
            "{quarantined}: {out}"
        );
        assert!(out.contains("Device quarantined by Pumpward"), "{out}");
        assert!(!out.contains("Tunnel-Private-Group-Id"), "{out}");
    }
    let out = radclient(port, "021b00000003");
    assert!(out.contains("Received Access-Accept"), "{out}");
    assert!(out.contains("Tunnel-Private-Group-Id:0 = \"20\""), "{out}");
    drop(server);
}

/// Makes a key and a certificate with openssl: self-signed when `issuer`
/// is None (a CA), else signed by `issuer` (its base name) with `ext`.
fn certificate(openssl: &Path, dir: &Path, name: &str, cn: &str, issuer: Option<&str>, ext: &str) {
    let p = |f: String| dir.join(f).display().to_string();
    let key = p(format!("{name}.key"));
    let cert = p(format!("{name}.pem"));
    let ext_file = p(format!("{name}.ext"));
    std::fs::write(&ext_file, ext).unwrap();
    let base = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key,
    ];
    let subj = format!("/CN={cn}");
    let (ok, out) = match issuer {
        None => common::run(
            Command::new(openssl)
                .arg("req")
                .arg("-x509")
                .args(base)
                .args([
                    "-out",
                    &cert,
                    "-days",
                    "2",
                    "-subj",
                    &subj,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ]),
        ),
        Some(ca) => {
            let csr = p(format!("{name}.csr"));
            let (ok, out) = common::run(
                Command::new(openssl)
                    .arg("req")
                    .arg("-new")
                    .args(base)
                    .args(["-out", &csr, "-subj", &subj]),
            );
            assert!(ok, "openssl req: {out}");
            common::run(Command::new(openssl).args([
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &p(format!("{ca}.pem")),
                "-CAkey",
                &p(format!("{ca}.key")),
                "-set_serial",
                "7",
                "-days",
                "2",
                "-out",
                &cert,
                "-extfile",
                &ext_file,
            ]))
        }
    };
    assert!(ok, "openssl for {name}: {out}");
}

const CLIENT_EXT: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n";
const SERVER_EXT: &str = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";

/// 802.1X EAP-TLS end to end: `eapol_test` (wpa_supplicant's test client)
/// against FreeRADIUS running the generated module and check server. Only a
/// certificate of the Pumpward device profile for a registered EAP-TLS
/// asset gets in.
#[test]
fn eap_tls_admits_only_the_pumpward_device_profile() {
    let (Some(server_bin), Some(openssl), Some(eapol_test)) = (
        freeradius_binary(),
        common::find("openssl"),
        common::find("eapol_test"),
    ) else {
        return common::skip(
            "FreeRADIUS EAP-TLS",
            "freeradius, openssl or eapol_test is not installed (Debian: freeradius, openssl, eapoltest)",
        );
    };
    let d = fixture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let p = |f: &str| path.join(f).display().to_string();
    certificate(&openssl, path, "ca", "Pumpward Test Issuing CA", None, "");
    certificate(&openssl, path, "other-ca", "Some Other CA", None, "");
    certificate(&openssl, path, "srv", "radius.test", Some("ca"), SERVER_EXT);
    certificate(&openssl, path, "pump1", "PUMP-0001", Some("ca"), CLIENT_EXT);
    certificate(&openssl, path, "pump2", "PUMP-0002", Some("ca"), CLIENT_EXT);
    certificate(
        &openssl,
        path,
        "noclient",
        "PUMP-0001",
        Some("ca"),
        SERVER_EXT,
    );
    certificate(
        &openssl,
        path,
        "foreign",
        "PUMP-0001",
        Some("other-ca"),
        CLIENT_EXT,
    );
    let files = radius::EapTlsFiles {
        ca_file: p("ca.pem"),
        server_certificate_file: p("srv.pem"),
        server_private_key_file: p("srv.key"),
    };
    let (eap, site) = radius::eap_tls(&d.policy, &d.assets, &files);
    std::fs::write(
        path.join("authorize"),
        radius::mab_authorize(&d.policy, &d.assets, &[]),
    )
    .unwrap();
    let port = free_udp_port();
    std::fs::write(
        path.join("radiusd.conf"),
        radiusd_conf(path, port, Some((&eap, &site))),
    )
    .unwrap();
    let server = start(&server_bin, path);

    let try_cert = |cert: &str, identity: &str| -> (bool, String) {
        let conf = path.join(format!("{cert}.eapol.conf"));
        std::fs::write(
            &conf,
            format!(
                "network={{\n\tkey_mgmt=WPA-EAP\n\teap=TLS\n\tidentity=\"{identity}\"\n\tca_cert=\"{}\"\n\tclient_cert=\"{}\"\n\tprivate_key=\"{}\"\n}}\n",
                p("ca.pem"),
                p(&format!("{cert}.pem")),
                p(&format!("{cert}.key"))
            ),
        )
        .unwrap();
        let (ok, out) = common::run(Command::new(&eapol_test).arg("-c").arg(&conf).args([
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-s",
            SECRET,
            "-t",
            "10",
        ]));
        (ok && out.contains("SUCCESS"), out)
    };
    let (ok, out) = try_cert("pump1", "PUMP-0001");
    assert!(ok, "the registered EAP-TLS pump is refused:\n{out}");
    for (cert, identity, why) in [
        (
            "pump2",
            "PUMP-0002",
            "an asset admitted by MAB, not EAP-TLS",
        ),
        (
            "noclient",
            "PUMP-0001",
            "a certificate without the client-authentication EKU",
        ),
        ("foreign", "PUMP-0001", "a certificate from another CA"),
        (
            "pump1",
            "PUMP-0002",
            "a certificate naming another identity",
        ),
    ] {
        let (ok, out) = try_cert(cert, identity);
        assert!(!ok, "{why} was admitted:\n{out}");
    }
    // MAB still works beside EAP-TLS on the same server.
    let out = radclient(port, "021b00000002");
    assert!(out.contains("Received Access-Accept"), "{out}");
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
        radius::mab_authorize(&d.policy, &d.assets, &[]),
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
