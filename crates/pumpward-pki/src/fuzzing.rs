//! The body of the `est_csr` fuzz target (`fuzz/fuzz_targets/est_csr.rs`).
//!
//! It lives here, not in the target, so that the seed-replay unit test runs
//! exactly what the fuzzer runs, on stable, in CI. Not part of the API.

use std::sync::OnceLock;

use time::macros::datetime;

use crate::{
    certs_only_pkcs7, decode_est_csr, encode_est_body, inspect_certificate, parse_certs_only_pkcs7,
    Ca, CaConfig, CertSerial, DeviceBinding, Kek, EST_MAX_BODY_BYTES,
};

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let kek = Kek::from_key_file_bytes(&[0xa5; 32]).expect("fixed key");
        Ca::create(&CaConfig::default(), &kek, datetime!(2026-01-01 0:00 UTC))
            .expect("CA")
            .0
    })
}

fn issue(der: &[u8]) -> crate::Result<crate::IssuedCertificate> {
    let binding = DeviceBinding {
        asset_id: "PUMP-0001".into(),
        serial_number: "SN123".into(),
        mac: Some("02:00:00:00:00:01".into()),
    };
    let serial = CertSerial::from_bytes(&[0x42; 16]).expect("serial");
    let r = ca().issue_device(der, &binding, serial, datetime!(2026-06-01 0:00 UTC));
    if let Ok(c) = &r {
        // Whatever the CSR said, the certificate names the binding and is
        // not a CA.
        let info = inspect_certificate(&c.der).expect("issued certificates parse");
        assert_eq!(info.asset_id.as_deref(), Some("PUMP-0001"));
        assert_eq!(info.device_serial.as_deref(), Some("SN123"));
        assert!(!info.is_ca);
    }
    r
}

/// Feeds `data` to every parser of EST input. Panics only on a broken
/// invariant.
pub fn est_csr(data: &[u8]) {
    // 1. As an EST request body (base64), then as the CSR inside.
    if let Ok(der) = decode_est_csr(data) {
        let again = encode_est_body(&der);
        if again.len() <= EST_MAX_BODY_BYTES {
            assert_eq!(decode_est_csr(again.as_bytes()).expect("re-decodes"), der);
        }
        let _ = issue(&der);
    }
    // 2. As a DER CSR.
    let _ = issue(data);
    // 3. As a certs-only PKCS#7; what parses re-encodes to the same set.
    if let Ok(certs) = parse_certs_only_pkcs7(data) {
        if let Ok(p7) = certs_only_pkcs7(&certs) {
            let mut back = parse_certs_only_pkcs7(&p7).expect("own PKCS#7 parses");
            let mut want = certs;
            back.sort();
            want.sort();
            assert_eq!(back, want);
        }
    }
    // 4. As a certificate.
    let _ = inspect_certificate(data);
}

#[cfg(test)]
mod tests {
    /// Replays the committed seeds of the `est_csr` fuzz target on stable.
    #[test]
    fn est_csr_fuzz_seeds_replay() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/est_csr");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("fuzz seeds directory") {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            super::est_csr(&bytes);
            n += 1;
            // Beyond "no panic": what each seed is for.
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let csr = if name.ends_with(".b64") {
                crate::decode_est_csr(&bytes).map_err(|e| e.to_string())
            } else {
                Ok(bytes.clone())
            };
            if name.starts_with("good") || name.starts_with("greedy") {
                super::issue(&csr.unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
            } else if name.starts_with("another_asset") {
                assert!(matches!(
                    super::issue(&csr.unwrap()),
                    Err(crate::PkiError::CsrForAnotherAsset { .. })
                ));
            } else if name.ends_with(".p7b") {
                assert_eq!(crate::parse_certs_only_pkcs7(&bytes).unwrap().len(), 2);
            } else {
                assert!(crate::decode_est_csr(&bytes).is_err(), "{name}");
            }
        }
        assert!(n >= 2);
    }
}
