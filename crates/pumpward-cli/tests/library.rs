//! `pumpward library`: the sample, offline verification of an envelope
//! published through the store with the PKI's signing key, a tampered
//! envelope refused, and export.

use pumpward_server::library::LibrarySigner;
use pumpward_server::pki::{CaService, KekSource, PkiSettings};
use pumpward_store::Store;
use std::path::Path;
use std::process::Output;

mod common;

use common::{err, out};

fn pumpward(args: &[&str]) -> Output {
    common::run_pumpward(args)
}

/// Publishes the sample library as version 1 (two pharmacists) through the
/// store and the CA's signing key; returns (envelope, signing cert PEM).
async fn publish_sample(dir: &Path) -> (Vec<u8>, String) {
    let (env, cert, _) = publish_sample_with_chain(dir).await;
    (env, cert)
}

/// `publish_sample`, and the CA chain PEM.
async fn publish_sample_with_chain(dir: &Path) -> (Vec<u8>, String, String) {
    let store = Store::open_sqlite(&dir.join("data")).await.unwrap();
    let ca = CaService::open(
        store.clone(),
        PkiSettings::new(KekSource::KeyFile {
            path: dir.join("kek"),
            create: true,
        }),
        true,
    )
    .await
    .unwrap();
    let signer = LibrarySigner::load_or_create(&ca).await.unwrap();
    let lib = pumpward_druglib::sample_library();
    pumpward_server::library::publish_reviewed(&store, &signer, &lib, "ann", "bob")
        .await
        .unwrap();
    let env = store.library_envelope(&lib.id, 1).await.unwrap();
    store.close().await;
    (env, signer.cert_pem().to_owned(), ca.chain_pem())
}

/// With `--ca-file`, the signing certificate must chain to that CA: the
/// publishing hospital's chain passes, another CA's is refused.
#[test]
fn verify_checks_the_signing_certificate_against_the_ca_chain() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (env, cert, chain) = rt.block_on(publish_sample_with_chain(dir.path()));
    let (_, _, other_chain) = rt.block_on(publish_sample_with_chain(other.path()));
    let path = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (e, c) = (path("v1.cose", &env), path("signing.pem", cert.as_bytes()));
    let (good, bad) = (
        path("ca.pem", chain.as_bytes()),
        path("other-ca.pem", other_chain.as_bytes()),
    );
    let o = pumpward(&["library", "verify", &e, "--cert", &c, "--ca-file", &good]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("chain:        the signing certificate chains to"),
        "{}",
        out(&o)
    );
    let o = pumpward(&["library", "verify", &e, "--cert", &c, "--ca-file", &bad]);
    assert_eq!(o.status.code(), Some(2), "{}{}", out(&o), err(&o));
    assert!(
        err(&o).contains("does not verify against the CA chain"),
        "{}",
        err(&o)
    );
    // A server certificate from the same CA is not a library signer.
    let o = pumpward(&["library", "verify", &e, "--cert", &good]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        err(&o).contains("not a library-signing certificate"),
        "{}",
        err(&o)
    );
}

#[test]
fn sample_prints_a_valid_library() {
    let o = pumpward(&["library", "sample"]);
    assert!(o.status.success(), "{}", err(&o));
    let lib = pumpward_druglib::json::parse_library_json(&o.stdout).unwrap();
    lib.validate().unwrap();
    assert_eq!(lib, pumpward_druglib::sample_library());
    let o = pumpward(&["library", "sample", "--format", "csv"]);
    assert!(o.status.success());
    assert_eq!(
        pumpward_druglib::csv::read_library_csv(&o.stdout).unwrap(),
        lib
    );
}

#[test]
fn verify_accepts_the_published_envelope_and_refuses_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (env, cert) = rt.block_on(publish_sample(dir.path()));
    let env_path = dir.path().join("sample-v1.cose");
    let cert_path = dir.path().join("library-signing.pem");
    std::fs::write(&env_path, &env).unwrap();
    std::fs::write(&cert_path, &cert).unwrap();
    let (e, c) = (env_path.to_str().unwrap(), cert_path.to_str().unwrap());

    let o = pumpward(&["library", "verify", e, "--cert", c]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    let s = out(&o);
    assert!(s.contains("library:      sample-library"), "{s}");
    assert!(s.contains("version:      1"), "{s}");
    assert!(s.contains("signer:       user:bob"), "{s}");
    assert!(s.contains("published at: "), "{s}");
    let digest = hex::encode(sha2_digest(&pumpward_druglib::json::to_canonical_json(
        &pumpward_druglib::sample_library(),
    )));
    assert!(s.contains(&format!("sha256:       {digest}")), "{s}");

    // As a pump: a care area it has passes, one it lacks and an
    // installed version that is not lower are refused, with the reason.
    let o = pumpward(&[
        "library",
        "verify",
        e,
        "--cert",
        c,
        "--care-area",
        "adult-icu",
        "--installed-version",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = pumpward(&[
        "library",
        "verify",
        e,
        "--cert",
        c,
        "--care-area",
        "burn-unit",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("no care area \"burn-unit\""),
        "{}",
        err(&o)
    );
    let o = pumpward(&[
        "library",
        "verify",
        e,
        "--cert",
        c,
        "--installed-version",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("not newer than the installed version 1"),
        "{}",
        err(&o)
    );

    // One flipped byte in the payload: refused with the exact reason.
    let mut bad = env.clone();
    let i = bad
        .windows(b"heparin".len())
        .position(|w| w == b"heparin")
        .unwrap();
    bad[i] = b'H';
    let bad_path = dir.path().join("tampered.cose");
    std::fs::write(&bad_path, &bad).unwrap();
    let o = pumpward(&["library", "verify", bad_path.to_str().unwrap(), "--cert", c]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(err(&o).starts_with("REFUSED:"), "{}", err(&o));
    assert!(
        err(&o).contains("the signature does not verify"),
        "{}",
        err(&o)
    );
    assert!(out(&o).is_empty());
    // Truncated.
    std::fs::write(&bad_path, &env[..env.len() / 2]).unwrap();
    let o = pumpward(&["library", "verify", bad_path.to_str().unwrap(), "--cert", c]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("truncated"), "{}", err(&o));
    // Another signing key (another hospital's): unknown key id.
    let other = tempfile::tempdir().unwrap();
    let (_, other_cert) = rt.block_on(publish_sample(other.path()));
    let other_cert_path = dir.path().join("other.pem");
    std::fs::write(&other_cert_path, other_cert).unwrap();
    let o = pumpward(&[
        "library",
        "verify",
        e,
        "--cert",
        other_cert_path.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("unknown signing key id"), "{}", err(&o));
    // A certificate that is not a library-signing certificate is an error.
    let o = pumpward(&[
        "library",
        "verify",
        e,
        "--cert",
        dir.path().join("data/tls/none.pem").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));

    // Export: the verified envelope's library as CSV; an envelope without
    // --cert is not exported.
    let o = pumpward(&["library", "export", e, "--cert", c, "--format", "csv"]);
    assert!(o.status.success(), "{}", err(&o));
    let mut expected = pumpward_druglib::sample_library();
    expected.version = 1;
    assert_eq!(
        pumpward_druglib::csv::read_library_csv(&o.stdout).unwrap(),
        expected
    );
    let o = pumpward(&["library", "export", e]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("--cert"), "{}", err(&o));
}

fn sha2_digest(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}
