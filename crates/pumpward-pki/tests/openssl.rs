//! The CA's output as an independent implementation sees it: the `openssl`
//! command-line tool verifies chains, reads extensions, verifies CRLs and
//! reads the EST PKCS#7.
//!
//! Without `openssl` on PATH each test prints why and passes — except when
//! the `CI` environment variable is set, where a missing `openssl` fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use pumpward_pki::{
    certs_only_pkcs7, encode_est_body, inspect_certificate, parse_certs_only_pkcs7, pem_encode, Ca,
    CaConfig, CertSerial, DeviceBinding, IssuedCertificate, Kek, KeyAlgorithm, PkiError,
    RevocationReason, RevokedEntry, ServerKey,
};
use time::{Duration, OffsetDateTime};

/// Whether `openssl` can run; `false` means "skip" (never under `CI`).
fn have_openssl(test: &str) -> bool {
    match Command::new("openssl").arg("version").output() {
        Ok(o) if o.status.success() => true,
        other => {
            let why = match other {
                Ok(o) => format!("`openssl version` exited with {}", o.status),
                Err(e) => format!("`openssl` could not be run: {e}"),
            };
            if std::env::var_os("CI").is_some() {
                panic!("{test}: {why}; CI is set, so openssl is required");
            }
            eprintln!("SKIPPED {test}: {why} (install openssl to run it)");
            false
        }
    }
}

/// Runs openssl in `dir`; returns (success, stdout + stderr).
fn openssl(dir: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let (success, text) = openssl(dir, args);
    assert!(success, "openssl {}: {text}", args.join(" "));
    text
}

fn kek() -> Kek {
    Kek::from_key_file_bytes(Kek::generate_key_file().unwrap().as_bytes()).unwrap()
}

fn config() -> CaConfig {
    CaConfig {
        organization: "St. Example Hospital".into(),
        crl_url: Some("http://pumpward.example/pki/crl".into()),
        ..CaConfig::default()
    }
}

fn binding() -> DeviceBinding {
    DeviceBinding {
        asset_id: "PUMP-0001".into(),
        serial_number: "SN123".into(),
        mac: Some("aa:bb:cc:00:11:22".into()),
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = Ca::create(&config(), &kek(), OffsetDateTime::now_utc()).unwrap();
        std::fs::write(dir.path().join("root.pem"), ca.root_pem().unwrap()).unwrap();
        std::fs::write(dir.path().join("issuing.pem"), ca.issuing_pem()).unwrap();
        Fixture { dir, ca }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An openssl-made P-256 CSR (DER) with the given extra `req` arguments.
    fn openssl_csr(&self, name: &str, subj: &str, extra: &[&str]) -> Vec<u8> {
        let out = format!("{name}.der");
        let key = format!("{name}.key");
        let mut args = vec![
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            subj,
            "-outform",
            "DER",
            "-out",
            &out,
        ];
        args.extend_from_slice(extra);
        ok(self.path(), &args);
        std::fs::read(self.file(&out)).unwrap()
    }

    fn issue(&self, csr: &[u8], name: &str) -> IssuedCertificate {
        let c = self
            .ca
            .issue_device(
                csr,
                &binding(),
                CertSerial::random().unwrap(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        std::fs::write(self.file(name), &c.pem).unwrap();
        c
    }
}

#[test]
fn chain_verifies_and_extensions_are_the_cas() {
    if !have_openssl("chain_verifies_and_extensions_are_the_cas") {
        return;
    }
    let f = Fixture::new();
    let csr = f.openssl_csr("dev", "/serialNumber=SN123/CN=x", &[]);
    let leaf = f.issue(&csr, "leaf.pem");
    let out = ok(
        f.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-purpose",
            "sslclient",
            "leaf.pem",
        ],
    );
    assert!(out.contains("leaf.pem: OK"), "{out}");
    // A pump certificate is not a server certificate.
    let (server_ok, _) = openssl(
        f.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "issuing.pem",
            "-purpose",
            "sslserver",
            "leaf.pem",
        ],
    );
    assert!(!server_ok);

    let text = ok(f.path(), &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    for want in [
        "CA:FALSE",
        "Digital Signature, Key Agreement",
        "TLS Web Client Authentication",
        "URI:urn:pumpward:asset:PUMP-0001",
        "URI:urn:pumpward:mac:aa:bb:cc:00:11:22",
        "CN = PUMP-0001",
        "serialNumber = SN123",
        "O = St. Example Hospital",
        "URI:http://pumpward.example/pki/crl",
        "X509v3 Authority Key Identifier",
        "X509v3 Subject Key Identifier",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    for unwanted in ["CN = x", "Server Authentication", "Certificate Sign"] {
        assert!(
            !text.contains(unwanted),
            "unexpected {unwanted:?} in\n{text}"
        );
    }
    let serial = ok(f.path(), &["x509", "-in", "leaf.pem", "-noout", "-serial"]);
    assert_eq!(
        serial.trim().to_lowercase(),
        format!("serial={}", leaf.serial_hex)
    );
    let fp = ok(
        f.path(),
        &[
            "x509",
            "-in",
            "leaf.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    assert!(
        fp.to_lowercase()
            .replace(':', "")
            .contains(&leaf.sha256_fingerprint),
        "{fp}"
    );
}

#[test]
fn csr_asking_for_a_ca_gets_ca_false() {
    if !have_openssl("csr_asking_for_a_ca_gets_ca_false") {
        return;
    }
    let f = Fixture::new();
    let csr = f.openssl_csr(
        "greedy",
        "/serialNumber=SN123/CN=evil",
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "extendedKeyUsage=serverAuth,codeSigning",
            "-addext",
            "subjectAltName=DNS:evil.example,URI:urn:pumpward:asset:PUMP-0001",
        ],
    );
    // openssl itself shows what was asked for.
    let asked = ok(
        f.path(),
        &[
            "req",
            "-inform",
            "DER",
            "-in",
            "greedy.der",
            "-noout",
            "-text",
        ],
    );
    assert!(asked.contains("CA:TRUE"), "{asked}");
    let issued = f.issue(&csr, "greedy.pem");
    let text = ok(f.path(), &["x509", "-in", "greedy.pem", "-noout", "-text"]);
    assert!(text.contains("CA:FALSE"), "{text}");
    for unwanted in [
        "CA:TRUE",
        "evil",
        "Certificate Sign",
        "Server Authentication",
        "Code Signing",
    ] {
        assert!(
            !text.contains(unwanted),
            "unexpected {unwanted:?} in\n{text}"
        );
    }
    let info = inspect_certificate(&issued.der).unwrap();
    assert!(!info.is_ca && info.dns_names.is_empty());
    assert_eq!(info.asset_id.as_deref(), Some("PUMP-0001"));
}

#[test]
fn weak_and_foreign_csrs_are_refused() {
    if !have_openssl("weak_and_foreign_csrs_are_refused") {
        return;
    }
    let f = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let issue = |csr: &[u8]| {
        f.ca.issue_device(csr, &binding(), CertSerial::random().unwrap(), now)
    };
    // SHA-1 signature.
    ok(
        f.path(),
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "r.key", "-sha1", "-subj",
            "/CN=x", "-outform", "DER", "-out", "sha1.der",
        ],
    );
    let e = issue(&std::fs::read(f.file("sha1.der")).unwrap()).unwrap_err();
    assert!(matches!(e, PkiError::CsrUnsupportedAlgorithm(_)), "{e}");
    // RSA 1024.
    ok(
        f.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "r1.key",
            "-subj",
            "/CN=x",
            "-outform",
            "DER",
            "-out",
            "rsa1024.der",
        ],
    );
    let e = issue(&std::fs::read(f.file("rsa1024.der")).unwrap()).unwrap_err();
    assert!(
        matches!(e, PkiError::CsrUnsupportedAlgorithm(ref m) if m.contains("1024")),
        "{e}"
    );
    // RSA 2048 with SHA-256 is fine, and gets keyEncipherment instead of keyAgreement.
    ok(
        f.path(),
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "r2.key",
            "-subj",
            "/CN=x",
            "-outform",
            "DER",
            "-out",
            "rsa2048.der",
        ],
    );
    let c = issue(&std::fs::read(f.file("rsa2048.der")).unwrap()).unwrap();
    std::fs::write(f.file("rsa.pem"), &c.pem).unwrap();
    let text = ok(f.path(), &["x509", "-in", "rsa.pem", "-noout", "-text"]);
    assert!(
        text.contains("Digital Signature, Key Encipherment"),
        "{text}"
    );
    // A CSR for another pump.
    let csr = f.openssl_csr("other", "/serialNumber=SN999/CN=PUMP-0002", &[]);
    assert!(matches!(
        issue(&csr),
        Err(PkiError::CsrForAnotherAsset {
            field: "serialNumber",
            ..
        })
    ));
}

#[test]
fn crl_verifies_and_revokes() {
    if !have_openssl("crl_verifies_and_revokes") {
        return;
    }
    let f = Fixture::new();
    let csr = f.openssl_csr("dev", "/serialNumber=SN123/CN=x", &[]);
    let revoked = f.issue(&csr, "revoked.pem");
    let kept = f.issue(&csr, "kept.pem");
    let now = OffsetDateTime::now_utc();
    let crl =
        f.ca.crl_pem(
            &[RevokedEntry {
                serial_hex: revoked.serial_hex.clone(),
                revoked_at: now,
                reason: RevocationReason::KeyCompromise,
            }],
            7,
            now - Duration::minutes(1),
            now + Duration::days(7),
        )
        .unwrap();
    std::fs::write(f.file("crl.pem"), crl).unwrap();
    let text = ok(
        f.path(),
        &[
            "crl",
            "-in",
            "crl.pem",
            "-CAfile",
            "issuing.pem",
            "-verify",
            "-noout",
            "-text",
        ],
    );
    assert!(text.contains("verify OK"), "{text}");
    assert!(
        text.to_lowercase()
            .contains(&format!("serial number: {}", revoked.serial_hex)),
        "{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(
        text.contains("X509v3 CRL Number") && text.contains("7"),
        "{text}"
    );
    assert!(!text.contains("Issuing Distribution Point"), "{text}");
    assert!(!text.to_lowercase().contains(&kept.serial_hex), "{text}");

    let verify = |leaf: &str| {
        openssl(
            f.path(),
            &[
                "verify",
                "-crl_check",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "issuing.pem",
                "-CRLfile",
                "crl.pem",
                leaf,
            ],
        )
    };
    let (good, out) = verify("kept.pem");
    assert!(good, "the unrevoked certificate passes a CRL check: {out}");
    let (good, out) = verify("revoked.pem");
    assert!(!good && out.contains("certificate revoked"), "{out}");
}

#[test]
fn pkcs7_is_read_by_openssl_and_openssls_by_us() {
    if !have_openssl("pkcs7_is_read_by_openssl_and_openssls_by_us") {
        return;
    }
    let f = Fixture::new();
    let p7 = certs_only_pkcs7(&f.ca.ca_certs_der()).unwrap();
    std::fs::write(f.file("cacerts.p7"), &p7).unwrap();
    let out = ok(
        f.path(),
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "cacerts.p7",
            "-print_certs",
        ],
    );
    assert_eq!(
        out.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("Pumpward Root CA") && out.contains("Pumpward Issuing CA"),
        "{out}"
    );
    // The EST body decodes with openssl's base64 too.
    std::fs::write(f.file("cacerts.b64"), encode_est_body(&p7)).unwrap();
    ok(
        f.path(),
        &[
            "base64",
            "-d",
            "-in",
            "cacerts.b64",
            "-out",
            "cacerts.p7.again",
        ],
    );
    assert_eq!(std::fs::read(f.file("cacerts.p7.again")).unwrap(), p7);
    // openssl's certs-only output parses here.
    ok(
        f.path(),
        &[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "root.pem",
            "-certfile",
            "issuing.pem",
            "-outform",
            "DER",
            "-out",
            "theirs.p7",
        ],
    );
    let mut certs = parse_certs_only_pkcs7(&std::fs::read(f.file("theirs.p7")).unwrap()).unwrap();
    let mut want = f.ca.ca_certs_der();
    certs.sort();
    want.sort();
    assert_eq!(certs, want);
}

#[test]
fn server_certificate_verifies_for_its_names() {
    if !have_openssl("server_certificate_verifies_for_its_names") {
        return;
    }
    let f = Fixture::new();
    let s =
        f.ca.issue_server(
            &["pumpward.example".into(), "10.1.2.3".into()],
            ServerKey::Generate(KeyAlgorithm::EcdsaP256),
            CertSerial::random().unwrap(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    std::fs::write(f.file("server.pem"), &s.certificate.pem).unwrap();
    let base = [
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "issuing.pem",
        "-purpose",
        "sslserver",
    ];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        a.push("server.pem");
        openssl(f.path(), &a)
    };
    assert!(run(&["-verify_hostname", "pumpward.example"]).0);
    assert!(run(&["-verify_ip", "10.1.2.3"]).0);
    assert!(!run(&["-verify_hostname", "other.example"]).0);
}

/// A hospital's own issuing CA made by openssl: SHA-1 key identifiers,
/// several name attributes, PKCS#8 key.
#[test]
fn imported_openssl_ca_issues_verifiable_certificates() {
    if !have_openssl("imported_openssl_ca_issues_verifiable_certificates") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("ext.cnf"),
        "[ica]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n\
         [nokeysign]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,cRLSign\n",
    )
    .unwrap();
    ok(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "root.key",
        ],
    );
    ok(
        d,
        &[
            "req",
            "-x509",
            "-key",
            "root.key",
            "-subj",
            "/C=US/O=Hospital/OU=IT Security/CN=Hospital Root",
            "-days",
            "3650",
            "-out",
            "root.pem",
        ],
    );
    ok(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ica.key",
        ],
    );
    ok(
        d,
        &[
            "req",
            "-new",
            "-key",
            "ica.key",
            "-subj",
            "/C=US/O=Hospital/OU=IT Security/CN=Hospital Devices CA",
            "-out",
            "ica.csr",
        ],
    );
    ok(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "ica.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "1825",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "ica",
            "-out",
            "ica.pem",
        ],
    );

    let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
    let bundle = format!("{}{}", read("ica.pem"), read("root.pem"));
    let (ca, material) = Ca::import_issuing(&bundle, &read("ica.key"), &config(), &kek()).unwrap();
    assert!(material.root_key_sealed.is_none());
    assert_eq!(
        pem_encode("CERTIFICATE", ca.root_der().unwrap()).trim(),
        read("root.pem").trim()
    );

    let (_, csr) =
        pumpward_pki::make_device_csr(KeyAlgorithm::EcdsaP256, "PUMP-0001", "SN123").unwrap();
    let now = OffsetDateTime::now_utc();
    let leaf = ca
        .issue_device(&csr, &binding(), CertSerial::random().unwrap(), now)
        .unwrap();
    std::fs::write(d.join("leaf.pem"), &leaf.pem).unwrap();
    let crl = ca
        .crl_pem(
            &[RevokedEntry {
                serial_hex: leaf.serial_hex.clone(),
                revoked_at: now,
                reason: RevocationReason::CessationOfOperation,
            }],
            1,
            now - Duration::minutes(1),
            now + Duration::days(1),
        )
        .unwrap();
    std::fs::write(d.join("crl.pem"), crl).unwrap();
    let out = ok(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "ica.pem",
            "leaf.pem",
        ],
    );
    assert!(out.contains("leaf.pem: OK"), "{out}");
    let text = ok(
        d,
        &[
            "crl", "-in", "crl.pem", "-CAfile", "ica.pem", "-verify", "-noout", "-text",
        ],
    );
    assert!(
        text.contains("verify OK") && text.contains("Cessation Of Operation"),
        "{text}"
    );
    let (good, out) = openssl(
        d,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "ica.pem",
            "-CRLfile",
            "crl.pem",
            "leaf.pem",
        ],
    );
    assert!(!good && out.contains("certificate revoked"), "{out}");

    // SEC1 keys are refused with the conversion command.
    ok(d, &["ec", "-in", "ica.key", "-out", "ica-sec1.key"]);
    let e = Ca::import_issuing(&bundle, &read("ica-sec1.key"), &config(), &kek()).unwrap_err();
    assert!(e.to_string().contains("openssl pkcs8 -topk8"), "{e}");
    // A CA certificate without keyCertSign is refused.
    ok(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "ica.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "nokeysign",
            "-out",
            "nokeysign.pem",
        ],
    );
    let e = Ca::import_issuing(&read("nokeysign.pem"), &read("ica.key"), &config(), &kek())
        .unwrap_err();
    assert!(
        matches!(e, PkiError::NotAnIssuingCa(ref m) if m.contains("keyCertSign")),
        "{e}"
    );
    // The issuing CA with a chain that does not lead to it.
    let wrong = format!("{}{}", read("ica.pem"), read("nokeysign.pem"));
    assert!(matches!(
        Ca::import_issuing(&wrong, &read("ica.key"), &config(), &kek()),
        Err(PkiError::ChainBroken(_))
    ));
}
