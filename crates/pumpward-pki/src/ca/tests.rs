use time::macros::datetime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;
use x509_parser::revocation_list::CertificateRevocationList;

use super::*;
use crate::{make_device_csr, RevocationReason};

pub(crate) const NOW: OffsetDateTime = datetime!(2026-11-22 12:00:00 UTC);
const CRL_URL: &str = "http://pumpward.example/pki/crl";

pub(crate) fn kek() -> Kek {
    Kek::from_key_file_bytes(&[0xa5; 32]).unwrap()
}

pub(crate) fn config(alg: KeyAlgorithm) -> CaConfig {
    CaConfig {
        algorithm: alg,
        organization: "St. Example Hospital".into(),
        crl_url: Some(CRL_URL.into()),
        ..CaConfig::default()
    }
}

pub(crate) fn new_ca() -> (Ca, CaMaterial) {
    Ca::create(&config(KeyAlgorithm::EcdsaP256), &kek(), NOW).unwrap()
}

pub(crate) fn binding() -> DeviceBinding {
    DeviceBinding {
        asset_id: "PUMP-0001".into(),
        serial_number: "SN123".into(),
        mac: Some("AA-BB-CC-00-11-22".into()),
    }
}

fn cert(der: &[u8]) -> X509Certificate<'_> {
    parse_cert(der).unwrap()
}

fn ski(c: &X509Certificate<'_>) -> Option<Vec<u8>> {
    c.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

fn aki(c: &X509Certificate<'_>) -> Option<Vec<u8>> {
    c.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(k) => {
                k.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

fn san_uris(c: &X509Certificate<'_>) -> Vec<String> {
    c.subject_alternative_name()
        .unwrap()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some(u.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The CA-side checks every issued end-entity certificate must pass.
fn assert_issued_by(ca: &Ca, leaf_der: &[u8]) {
    let issuing = cert(ca.issuing_der());
    let leaf = cert(leaf_der);
    assert_eq!(leaf.issuer().as_raw(), issuing.subject().as_raw());
    leaf.verify_signature(Some(issuing.public_key())).unwrap();
    assert_eq!(aki(&leaf), ski(&issuing));
    let bc = leaf.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca && bc.critical);
}

#[test]
fn create_makes_a_two_level_chain() {
    let (ca, material) = new_ca();
    let root_der = ca.root_der().unwrap();
    let root = cert(root_der);
    let issuing = cert(ca.issuing_der());
    // Root: self-signed, pathLen 1.
    assert_eq!(root.subject().as_raw(), root.issuer().as_raw());
    root.verify_signature(None).unwrap();
    let rbc = root.basic_constraints().unwrap().unwrap().value;
    assert!(rbc.ca);
    assert_eq!(rbc.path_len_constraint, Some(1));
    // Issuing: signed by the root, pathLen 0, keyCertSign + cRLSign only.
    issuing.verify_signature(Some(root.public_key())).unwrap();
    let ibc = issuing.basic_constraints().unwrap().unwrap();
    assert!(ibc.value.ca && ibc.critical);
    assert_eq!(ibc.value.path_len_constraint, Some(0));
    let ku = issuing.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
    assert_eq!(aki(&issuing), ski(&root));
    assert!(issuing
        .subject()
        .to_string()
        .contains("O=St. Example Hospital"));
    assert!(issuing
        .subject()
        .to_string()
        .contains("CN=Pumpward Issuing CA "));
    // Validity: backdated one hour, 20 and 10 years.
    assert_eq!(
        root.validity().not_before.to_datetime(),
        NOW - Duration::hours(1)
    );
    assert_eq!(
        root.validity().not_after.to_datetime(),
        NOW + Duration::days(7305)
    );
    assert_eq!(
        issuing.validity().not_after.to_datetime(),
        NOW + Duration::days(3653)
    );
    // Material: certificates in PEM, keys sealed, nothing in clear.
    assert_eq!(
        pem_certs(&material.issuing_cert_pem, "t").unwrap(),
        vec![ca.issuing_der().to_vec()]
    );
    assert_eq!(
        pem_certs(&material.chain_pem, "t").unwrap(),
        vec![root_der.to_vec()]
    );
    for sealed in [
        &material.issuing_key_sealed,
        material.root_key_sealed.as_ref().unwrap(),
    ] {
        assert!(sealed.starts_with("-----BEGIN PUMPWARD ENCRYPTED KEY-----"));
    }
    let all = format!("{material:?}");
    assert!(!all.contains("PRIVATE KEY"));
    // The sealed root key is the root certificate's key.
    let root_key = KeyPair::try_from(
        open_private_key(material.root_key_sealed.as_ref().unwrap(), &kek())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    assert_eq!(root_key.public_key_der(), root.public_key().raw);
    assert_eq!(
        ca.ca_certs_der(),
        vec![ca.issuing_der().to_vec(), root_der.to_vec()]
    );
    assert!(ca
        .root_pem()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(ca
        .issuing_pem()
        .starts_with("-----BEGIN CERTIFICATE-----\n"));
}

#[test]
fn recreated_cas_have_distinct_names() {
    let (a, _) = new_ca();
    let (b, _) = new_ca();
    assert_ne!(
        cert(a.issuing_der()).subject().as_raw(),
        cert(b.issuing_der()).subject().as_raw()
    );
}

#[test]
fn every_algorithm_issues_for_every_algorithm() {
    for ca_alg in KeyAlgorithm::ALL {
        let (_, material) = Ca::create(&config(ca_alg), &kek(), NOW).unwrap();
        let ca = Ca::load(&material, &config(ca_alg), &kek()).unwrap();
        for dev_alg in KeyAlgorithm::ALL {
            let (_, csr) = make_device_csr(dev_alg, "PUMP-0001", "SN123").unwrap();
            let issued = ca
                .issue_device(&csr, &binding(), CertSerial::random().unwrap(), NOW)
                .unwrap();
            assert_issued_by(&ca, &issued.der);
            let ku = *cert(&issued.der).key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature());
            assert_eq!(
                ku.key_agreement(),
                dev_alg != KeyAlgorithm::Ed25519,
                "{ca_alg}/{dev_alg}"
            );
            assert!(!ku.key_cert_sign() && !ku.crl_sign());
        }
    }
}

#[test]
fn device_certificate_is_built_from_the_binding() {
    let (ca, _) = new_ca();
    let (_, csr) = make_device_csr(KeyAlgorithm::EcdsaP256, "PUMP-0001", "SN123").unwrap();
    let serial = CertSerial::random().unwrap();
    let issued = ca
        .issue_device(&csr, &binding(), serial.clone(), NOW)
        .unwrap();
    assert_issued_by(&ca, &issued.der);
    let c = cert(&issued.der);
    assert_eq!(issued.serial_hex, serial.to_hex());
    assert_eq!(c.raw_serial(), serial.as_bytes());
    assert_eq!(issued.not_before, NOW - Duration::hours(1));
    assert_eq!(issued.not_after, NOW + Duration::days(365));
    assert_eq!(issued.sha256_fingerprint, sha256_hex(&issued.der));
    assert_eq!(
        pem_certs(&issued.pem, "t").unwrap(),
        vec![issued.der.clone()]
    );
    let subject = c.subject().to_string();
    assert!(subject.contains("O=St. Example Hospital"), "{subject}");
    assert!(subject.contains("CN=PUMP-0001"), "{subject}");
    assert_eq!(
        san_uris(&c),
        [
            "urn:pumpward:asset:PUMP-0001",
            "urn:pumpward:mac:aa:bb:cc:00:11:22"
        ]
    );
    let eku = c.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty());
    let cdp = c
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::CRLDistributionPoints(p) => Some(format!("{p:?}")),
            _ => None,
        })
        .unwrap();
    assert!(cdp.contains(CRL_URL), "{cdp}");
    assert!(ski(&c).is_some());

    let info = inspect_certificate(&issued.der).unwrap();
    assert_eq!(info.asset_id.as_deref(), Some("PUMP-0001"));
    assert_eq!(info.device_serial.as_deref(), Some("SN123"));
    assert_eq!(info.mac.as_deref(), Some("aa:bb:cc:00:11:22"));
    assert_eq!(info.serial_hex, serial.to_hex());
    assert_eq!(info.fingerprint, issued.sha256_fingerprint);
    assert!(!info.is_ca);
    assert!(info.issuer.contains("Pumpward Issuing CA"));

    // Without a MAC on record, no MAC URI.
    let b = DeviceBinding {
        mac: None,
        ..binding()
    };
    let issued = ca
        .issue_device(&csr, &b, CertSerial::random().unwrap(), NOW)
        .unwrap();
    assert_eq!(
        san_uris(&cert(&issued.der)),
        ["urn:pumpward:asset:PUMP-0001"]
    );
}

/// A CSR signed by `key` asking for everything a device must not get.
fn greedy_csr(key: &KeyPair, serial: Option<&str>, uris: &[&str]) -> Vec<u8> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "evil");
    if let Some(s) = serial {
        dn.push(DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()), s);
    }
    p.distinguished_name = dn;
    p.subject_alt_names = vec![SanType::DnsName("pumpward.example".try_into().unwrap())];
    for u in uris {
        p.subject_alt_names
            .push(SanType::URI((*u).try_into().unwrap()));
    }
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::Any,
    ];
    // basicConstraints CA:TRUE, pathLen 5, requested as a custom extension.
    let mut bc = rcgen::CustomExtension::from_oid_content(
        &[2, 5, 29, 19],
        vec![0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x05],
    );
    bc.set_criticality(true);
    p.custom_extensions = vec![bc];
    p.serialize_request(key).unwrap().der().to_vec()
}

#[test]
fn csr_requests_are_ignored() {
    let (ca, _) = new_ca();
    let key = KeyPair::generate().unwrap();
    let csr = greedy_csr(&key, Some("SN123"), &["urn:pumpward:asset:PUMP-0001"]);
    let issued = ca
        .issue_device(&csr, &binding(), CertSerial::random().unwrap(), NOW)
        .unwrap();
    assert_issued_by(&ca, &issued.der);
    let c = cert(&issued.der);
    assert_eq!(
        c.public_key().raw,
        key.public_key_der(),
        "the CSR's key is certified"
    );
    assert!(!c.is_ca());
    let ku = *c.key_usage().unwrap().unwrap().value;
    assert!(!ku.key_cert_sign() && !ku.crl_sign());
    let eku = c.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any);
    assert!(!c.subject().to_string().contains("evil"));
    let info = inspect_certificate(&issued.der).unwrap();
    assert!(info.dns_names.is_empty());
}

#[test]
fn csr_for_another_asset_is_refused() {
    let (ca, _) = new_ca();
    let key = KeyPair::generate().unwrap();
    let s = || CertSerial::random().unwrap();
    let cases: [(Option<&str>, &[&str], &str, &str); 5] = [
        (Some("SN999"), &[], "serialNumber", "SN999"),
        (
            None,
            &["urn:pumpward:asset:PUMP-0002"],
            "asset",
            "PUMP-0002",
        ),
        (
            None,
            &["URN:Pumpward:Asset:pump-0001"],
            "asset",
            "pump-0001",
        ),
        (
            None,
            &["urn:pumpward:mac:aa:bb:cc:00:11:23"],
            "mac",
            "aa:bb:cc:00:11:23",
        ),
        (None, &["urn:pumpward:mac:not-a-mac"], "mac", "not-a-mac"),
    ];
    for (serial, uris, field, requested) in cases {
        let csr = greedy_csr(&key, serial, uris);
        match ca.issue_device(&csr, &binding(), s(), NOW) {
            Err(PkiError::CsrForAnotherAsset {
                field: f,
                requested: r,
                ..
            }) => {
                assert_eq!((f, r.as_str()), (field, requested));
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    // A MAC claimed when none is on record.
    let csr = greedy_csr(&key, None, &["urn:pumpward:mac:aa:bb:cc:00:11:22"]);
    let b = DeviceBinding {
        mac: None,
        ..binding()
    };
    assert!(matches!(
        ca.issue_device(&csr, &b, s(), NOW),
        Err(PkiError::CsrForAnotherAsset { field: "mac", .. })
    ));
    // The same MAC in another spelling, and URIs of other schemes, are fine.
    let csr = greedy_csr(
        &key,
        Some("SN123"),
        &["urn:pumpward:mac:AA-BB-CC-00-11-22", "https://x.example/"],
    );
    ca.issue_device(&csr, &binding(), s(), NOW).unwrap();
    // An agent's CSR for another asset.
    let (_, csr) = make_device_csr(KeyAlgorithm::Ed25519, "PUMP-0002", "SN123").unwrap();
    let e = ca.issue_device(&csr, &binding(), s(), NOW).unwrap_err();
    assert!(
        e.to_string().contains("PUMP-0002") && e.to_string().contains("PUMP-0001"),
        "{e}"
    );
}

#[test]
fn bad_csrs_are_refused_with_precise_errors() {
    let (ca, _) = new_ca();
    let (_, good) = make_device_csr(KeyAlgorithm::EcdsaP256, "PUMP-0001", "SN123").unwrap();
    let issue = |der: &[u8]| ca.issue_device(der, &binding(), CertSerial::random().unwrap(), NOW);
    assert!(matches!(issue(b""), Err(PkiError::CsrMalformed(_))));
    assert!(matches!(issue(b"garbage"), Err(PkiError::CsrMalformed(_))));
    assert!(matches!(
        issue(&vec![0x30; 70_000]),
        Err(PkiError::CsrMalformed(_))
    ));
    for cut in [1, 10, good.len() / 2, good.len() - 1] {
        assert!(
            matches!(issue(&good[..cut]), Err(PkiError::CsrMalformed(_))),
            "cut {cut}"
        );
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(issue(&trailing), Err(PkiError::CsrMalformed(m)) if m.contains("after")));
    // Flip a bit in the last byte (the signature), and in the subject CN.
    let mut bad_sig = good.clone();
    *bad_sig.last_mut().unwrap() ^= 1;
    assert!(matches!(
        issue(&bad_sig),
        Err(PkiError::CsrBadSignature | PkiError::CsrMalformed(_))
    ));
    let pos = good.windows(9).position(|w| w == b"PUMP-0001").unwrap();
    let mut bad_body = good.clone();
    bad_body[pos] = b'Q';
    assert!(matches!(issue(&bad_body), Err(PkiError::CsrBadSignature)));
    // A certificate is not a CSR.
    assert!(matches!(
        issue(ca.issuing_der()),
        Err(PkiError::CsrMalformed(_))
    ));
    // Every single-byte corruption is refused or, if harmless, issues for the binding: never a panic.
    for i in 0..good.len() {
        let mut d = good.clone();
        d[i] ^= 0x80;
        if let Ok(c) = issue(&d) {
            assert_eq!(
                inspect_certificate(&c.der).unwrap().asset_id.as_deref(),
                Some("PUMP-0001")
            );
        }
    }
}

#[test]
fn bad_bindings_are_refused() {
    let (ca, _) = new_ca();
    let (_, csr) = make_device_csr(KeyAlgorithm::EcdsaP256, "PUMP-0001", "SN123").unwrap();
    for b in [
        DeviceBinding {
            asset_id: "PUMP 1".into(),
            ..binding()
        },
        DeviceBinding {
            asset_id: String::new(),
            ..binding()
        },
        DeviceBinding {
            serial_number: String::new(),
            ..binding()
        },
        DeviceBinding {
            serial_number: "SN\n1".into(),
            ..binding()
        },
        DeviceBinding {
            mac: Some("ff:ff:ff:ff:ff:ff".into()),
            ..binding()
        },
    ] {
        assert!(
            matches!(
                ca.issue_device(&csr, &b, CertSerial::random().unwrap(), NOW),
                Err(PkiError::InvalidBinding(_))
            ),
            "{b:?}"
        );
    }
    assert!(make_device_csr(KeyAlgorithm::EcdsaP256, "a/b", "SN").is_err());
}

#[test]
fn validity_is_clamped_to_the_ca() {
    let cfg = CaConfig {
        issuing_validity_days: 100,
        ..config(KeyAlgorithm::EcdsaP256)
    };
    let (ca, _) = Ca::create(&cfg, &kek(), NOW).unwrap();
    let (_, csr) = make_device_csr(KeyAlgorithm::EcdsaP256, "PUMP-0001", "SN123").unwrap();
    let later = NOW + Duration::days(90);
    let c = ca
        .issue_device(&csr, &binding(), CertSerial::random().unwrap(), later)
        .unwrap();
    assert_eq!(c.not_after, NOW + Duration::days(100));
    for when in [
        NOW - Duration::days(1),
        NOW + Duration::days(100),
        NOW + Duration::days(1000),
    ] {
        assert!(
            matches!(
                ca.issue_device(&csr, &binding(), CertSerial::random().unwrap(), when),
                Err(PkiError::CaNotValidAt { .. })
            ),
            "{when}"
        );
    }
    assert!(matches!(
        ca.issue_device(
            &csr,
            &binding(),
            CertSerial::random().unwrap(),
            datetime!(9999-01-01 0:00 UTC)
        ),
        Err(PkiError::InvalidTime(_))
    ));
}

#[test]
fn config_is_validated() {
    let base = CaConfig::default();
    assert!(base.validate().is_ok());
    for bad in [
        CaConfig {
            organization: String::new(),
            ..base.clone()
        },
        CaConfig {
            organization: " x".into(),
            ..base.clone()
        },
        CaConfig {
            organization: "x".repeat(65),
            ..base.clone()
        },
        CaConfig {
            device_validity_days: 0,
            ..base.clone()
        },
        CaConfig {
            root_validity_days: 40_000,
            ..base.clone()
        },
        CaConfig {
            issuing_validity_days: 8000,
            ..base.clone()
        },
        CaConfig {
            crl_url: Some("ldap://x".into()),
            ..base.clone()
        },
        CaConfig {
            crl_url: Some("http://a b".into()),
            ..base.clone()
        },
        CaConfig {
            crl_url: Some("http://".into()),
            ..base.clone()
        },
    ] {
        assert!(
            matches!(bad.validate(), Err(PkiError::InvalidConfig(_))),
            "{bad:?}"
        );
        assert!(Ca::create(&bad, &kek(), NOW).is_err());
    }
}

#[test]
fn load_round_trips_and_refuses_wrong_or_mismatched_keys() {
    let (ca, material) = new_ca();
    let cfg = config(KeyAlgorithm::EcdsaP256);
    let loaded = Ca::load(&material, &cfg, &kek()).unwrap();
    assert_eq!(loaded.issuing_der(), ca.issuing_der());
    assert_eq!(loaded.chain_der(), ca.chain_der());
    let (_, csr) = make_device_csr(KeyAlgorithm::EcdsaP256, "PUMP-0001", "SN123").unwrap();
    let issued = loaded
        .issue_device(&csr, &binding(), CertSerial::random().unwrap(), NOW)
        .unwrap();
    assert_issued_by(&ca, &issued.der);

    let other = Kek::from_key_file_bytes(&[0xc3; 32]).unwrap();
    assert!(matches!(
        Ca::load(&material, &cfg, &other),
        Err(PkiError::WrongKek)
    ));
    let swapped = CaMaterial {
        issuing_key_sealed: material.root_key_sealed.clone().unwrap(),
        ..material.clone()
    };
    assert!(matches!(
        Ca::load(&swapped, &cfg, &kek()),
        Err(PkiError::KeyMismatch)
    ));
    let two = CaMaterial {
        issuing_cert_pem: format!("{}{}", material.issuing_cert_pem, material.chain_pem),
        ..material.clone()
    };
    assert!(matches!(
        Ca::load(&two, &cfg, &kek()),
        Err(PkiError::Pem(_))
    ));
    let (other_ca, other_material) = new_ca();
    drop(other_ca);
    let wrong_chain = CaMaterial {
        chain_pem: other_material.chain_pem,
        ..material.clone()
    };
    assert!(matches!(
        Ca::load(&wrong_chain, &cfg, &kek()),
        Err(PkiError::ChainBroken(_))
    ));
    let no_chain = CaMaterial {
        chain_pem: String::new(),
        ..material
    };
    let ca2 = Ca::load(&no_chain, &cfg, &kek()).unwrap();
    assert!(ca2.root_der().is_none());
}

fn pkcs8_pem(sealed: &str) -> String {
    pem_encode("PRIVATE KEY", &open_private_key(sealed, &kek()).unwrap())
}

#[test]
fn import_issuing_validates_the_ca() {
    let (ca, material) = new_ca();
    let cfg = config(KeyAlgorithm::EcdsaP256);
    let key_pem = pkcs8_pem(&material.issuing_key_sealed);
    let bundle = format!("{}{}", material.issuing_cert_pem, material.chain_pem);
    let (imported, m2) = Ca::import_issuing(&bundle, &key_pem, &cfg, &kek()).unwrap();
    assert_eq!(imported.issuing_der(), ca.issuing_der());
    assert_eq!(imported.root_der(), ca.root_der());
    assert!(m2.root_key_sealed.is_none());
    assert!(!format!("{m2:?}").contains("PRIVATE KEY"));
    let reloaded = Ca::load(&m2, &cfg, &kek()).unwrap();
    let (_, csr) = make_device_csr(KeyAlgorithm::EcdsaP256, "PUMP-0001", "SN123").unwrap();
    let issued = reloaded
        .issue_device(&csr, &binding(), CertSerial::random().unwrap(), NOW)
        .unwrap();
    assert_issued_by(&ca, &issued.der);

    // Not a CA: a server certificate with its own key.
    let server = ca
        .issue_server(
            &["gw.example".into()],
            ServerKey::Generate(KeyAlgorithm::EcdsaP256),
            CertSerial::random().unwrap(),
            NOW,
        )
        .unwrap();
    let server_key = pem_encode("PRIVATE KEY", server.private_key_pkcs8.as_ref().unwrap());
    assert!(matches!(
        Ca::import_issuing(&server.certificate.pem, &server_key, &cfg, &kek()),
        Err(PkiError::NotAnIssuingCa(m)) if m.contains("CA:TRUE")
    ));
    // Key of another certificate.
    let root_key_pem = pkcs8_pem(material.root_key_sealed.as_ref().unwrap());
    assert!(matches!(
        Ca::import_issuing(&material.issuing_cert_pem, &root_key_pem, &cfg, &kek()),
        Err(PkiError::KeyMismatch)
    ));
    // Formats.
    assert!(matches!(
        Ca::import_issuing("", &key_pem, &cfg, &kek()),
        Err(PkiError::Pem(_))
    ));
    assert!(matches!(
        Ca::import_issuing(&bundle, "", &cfg, &kek()),
        Err(PkiError::Pem(_))
    ));
    let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n";
    assert!(matches!(
        Ca::import_issuing(&bundle, sec1, &cfg, &kek()),
        Err(PkiError::InvalidPrivateKey(m)) if m.contains("openssl pkcs8 -topk8")
    ));
    let garbage_key = pem_encode("PRIVATE KEY", b"not a key");
    assert!(matches!(
        Ca::import_issuing(&bundle, &garbage_key, &cfg, &kek()),
        Err(PkiError::InvalidPrivateKey(_))
    ));
    let garbage_cert = pem_encode("CERTIFICATE", b"not a cert");
    assert!(matches!(
        Ca::import_issuing(&garbage_cert, &key_pem, &cfg, &kek()),
        Err(PkiError::CertificateMalformed(_))
    ));
}

#[test]
fn server_certificates() {
    let (ca, _) = new_ca();
    let names = vec![
        "pumpward.example".to_string(),
        "10.0.0.5".into(),
        "::1".into(),
        "PUMPWARD.example".into(),
    ];
    let s = ca
        .issue_server(
            &names,
            ServerKey::Generate(KeyAlgorithm::EcdsaP384),
            CertSerial::random().unwrap(),
            NOW,
        )
        .unwrap();
    assert_issued_by(&ca, &s.certificate.der);
    let c = cert(&s.certificate.der);
    let eku = c.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let ku = c.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_agreement() && !ku.key_cert_sign());
    let info = inspect_certificate(&s.certificate.der).unwrap();
    assert_eq!(info.dns_names, ["pumpward.example"]);
    assert_eq!(
        info.ip_addresses,
        [
            "10.0.0.5".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert!(info.subject.contains("CN=pumpward.example"));
    assert_eq!(s.certificate.not_after, NOW + Duration::days(397));
    let key = KeyPair::try_from(s.private_key_pkcs8.as_ref().unwrap().as_slice()).unwrap();
    assert_eq!(key.public_key_der(), c.public_key().raw);
    assert!(format!("{s:?}").contains("<redacted>"));

    // Certify an existing public key.
    let kp = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let s2 = ca
        .issue_server(
            &["gw.example".into()],
            ServerKey::PublicKey(&kp.public_key_der()),
            CertSerial::random().unwrap(),
            NOW,
        )
        .unwrap();
    assert!(s2.private_key_pkcs8.is_none());
    assert_eq!(
        cert(&s2.certificate.der).public_key().raw,
        kp.public_key_der()
    );
    assert!(matches!(
        ca.issue_server(
            &["gw.example".into()],
            ServerKey::PublicKey(b"junk"),
            CertSerial::random().unwrap(),
            NOW
        ),
        Err(PkiError::InvalidPrivateKey(_))
    ));

    for bad in [
        vec![],
        vec!["*.example".to_string()],
        vec!["bad_name".into()],
        vec!["-x.example".into()],
        vec!["a..b".into()],
        vec!["1.2.3.999".into()],
        vec!["".into()],
        vec![format!("{}.example", "a".repeat(64))],
    ] {
        assert!(
            matches!(
                ca.issue_server(
                    &bad,
                    ServerKey::Generate(KeyAlgorithm::EcdsaP256),
                    CertSerial::random().unwrap(),
                    NOW
                ),
                Err(PkiError::InvalidServerName { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn crl_lists_revocations_with_reasons() {
    let (ca, _) = new_ca();
    let s1 = CertSerial::random().unwrap();
    let s2 = CertSerial::random().unwrap();
    let entries = [
        RevokedEntry {
            serial_hex: s1.to_hex(),
            revoked_at: NOW - Duration::days(1),
            reason: RevocationReason::KeyCompromise,
        },
        RevokedEntry {
            serial_hex: s2.to_hex().to_uppercase(),
            revoked_at: NOW,
            reason: RevocationReason::Unspecified,
        },
    ];
    let der = ca.crl(&entries, 42, NOW, NOW + Duration::days(7)).unwrap();
    let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
    assert!(rest.is_empty());
    let issuing = cert(ca.issuing_der());
    crl.verify_signature(issuing.public_key()).unwrap();
    assert_eq!(crl.issuer().as_raw(), issuing.subject().as_raw());
    assert_eq!(crl.crl_number().map(|n| n.to_string()), Some("42".into()));
    assert_eq!(crl.last_update().to_datetime(), NOW);
    assert_eq!(
        crl.next_update().unwrap().to_datetime(),
        NOW + Duration::days(7)
    );
    let revoked: Vec<_> = crl.iter_revoked_certificates().collect();
    assert_eq!(revoked.len(), 2);
    assert_eq!(revoked[0].raw_serial(), s1.as_bytes());
    assert_eq!(revoked[0].reason_code().map(|r| r.1 .0), Some(1));
    assert_eq!(revoked[1].raw_serial(), s2.as_bytes());
    assert!(
        revoked[1].reason_code().is_none(),
        "unspecified is written without a reason code"
    );
    let exts: Vec<_> = crl
        .extensions()
        .iter()
        .map(|e| e.parsed_extension())
        .collect();
    assert!(exts.iter().any(|e| matches!(e, ParsedExtension::AuthorityKeyIdentifier(a) if a.key_identifier.as_ref().map(|k| k.0.to_vec()) == ski(&issuing))));
    assert!(!exts
        .iter()
        .any(|e| matches!(e, ParsedExtension::IssuingDistributionPoint(_))));
    assert!(ca
        .crl_pem(&[], 1, NOW, NOW + Duration::days(1))
        .unwrap()
        .starts_with("-----BEGIN X509 CRL-----\n"));

    let e = |serial_hex: &str| RevokedEntry {
        serial_hex: serial_hex.into(),
        revoked_at: NOW,
        reason: RevocationReason::Superseded,
    };
    assert!(matches!(
        ca.crl(&[], 1, NOW, NOW),
        Err(PkiError::InvalidCrl(_))
    ));
    assert!(matches!(
        ca.crl(&[e("zz")], 1, NOW, NOW + Duration::days(1)),
        Err(PkiError::InvalidCrl(_))
    ));
    assert!(
        matches!(ca.crl(&[e("0a"), e("0A")], 1, NOW, NOW + Duration::days(1)), Err(PkiError::InvalidCrl(m)) if m.contains("twice"))
    );
}

#[test]
fn library_signer_is_a_code_signing_leaf_with_its_own_p256_key() {
    // Whatever the CA's own algorithm, the library signer is P-256 (ES256).
    let (ca, _) = Ca::create(&config(KeyAlgorithm::EcdsaP384), &kek(), NOW).unwrap();
    let s = ca
        .issue_library_signer(CertSerial::random().unwrap(), NOW)
        .unwrap();
    assert_issued_by(&ca, &s.certificate.der);
    let c = cert(&s.certificate.der);
    let eku = c.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.code_signing && !eku.server_auth && !eku.client_auth && !eku.any);
    let ku = c.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
    let info = inspect_certificate(&s.certificate.der).unwrap();
    assert!(info.code_signing && !info.is_ca);
    assert_eq!(info.spki_der, s.spki_der);
    assert!(info.subject.contains("Pumpward Drug Library Signing"));
    // The returned key is the certified one.
    let kp = KeyPair::try_from(s.private_key_pkcs8.as_slice()).unwrap();
    assert_eq!(kp.public_key_der(), s.spki_der);
    assert_eq!(
        kp.algorithm(),
        &rcgen::PKCS_ECDSA_P256_SHA256,
        "COSE ES256 needs P-256"
    );
    // A device or server certificate is not a code signer.
    let server = ca
        .issue_server(
            &["gw.example".into()],
            ServerKey::Generate(KeyAlgorithm::EcdsaP256),
            CertSerial::random().unwrap(),
            NOW,
        )
        .unwrap();
    assert!(
        !inspect_certificate(&server.certificate.der)
            .unwrap()
            .code_signing
    );
}
