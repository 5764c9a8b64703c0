//! The CA's output as the mTLS gateway will judge it: rustls-webpki (what
//! rustls' `WebPkiClientVerifier` runs) with the CA's CRL.

use pumpward_pki::{
    make_device_csr, Ca, CaConfig, CertSerial, DeviceBinding, Kek, KeyAlgorithm, RevocationReason,
    RevokedEntry,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::{Duration, OffsetDateTime};
use webpki::{
    anchor_from_trusted_cert, CertRevocationList, EndEntityCert, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

#[test]
fn gateway_verifier_accepts_the_chain_and_refuses_the_revoked() {
    for alg in KeyAlgorithm::ALL {
        let kek = Kek::from_key_file_bytes(Kek::generate_key_file().unwrap().as_bytes()).unwrap();
        let config = CaConfig {
            algorithm: alg,
            crl_url: Some("http://pumpward.example/pki/crl".into()),
            ..CaConfig::default()
        };
        let now = OffsetDateTime::now_utc();
        let (first, material) = Ca::create(&config, &kek, now).unwrap();
        let issue = |asset: &str| {
            let (_, csr) = make_device_csr(alg, asset, "SN1").unwrap();
            let b = DeviceBinding {
                asset_id: asset.into(),
                serial_number: "SN1".into(),
                mac: None,
            };
            first
                .issue_device(&csr, &b, CertSerial::random().unwrap(), now)
                .unwrap()
        };
        let kept = issue("PUMP-1");
        let revoked = issue("PUMP-2");
        // The CRL comes from the same CA reloaded with a *changed* CRL URL:
        // certificates that name the old URL must still be covered.
        let moved = CaConfig {
            crl_url: Some("https://crl.pumpward.example/new".into()),
            ..config.clone()
        };
        let ca = Ca::load(&material, &moved, &kek).unwrap();
        let crl_der = ca
            .crl(
                &[RevokedEntry {
                    serial_hex: revoked.serial_hex.clone(),
                    revoked_at: now,
                    reason: RevocationReason::KeyCompromise,
                }],
                1,
                now - Duration::minutes(1),
                now + Duration::days(1),
            )
            .unwrap();

        let root = CertificateDer::from(ca.root_der().unwrap().to_vec());
        let anchors = [anchor_from_trusted_cert(&root).unwrap()];
        let intermediates = [CertificateDer::from(ca.issuing_der().to_vec())];
        let crl = CertRevocationList::from(OwnedCertRevocationList::from_der(&crl_der).unwrap());
        let crls = [&crl];
        let time =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(now.unix_timestamp() as u64));
        let verify = |der: &[u8]| {
            let leaf = CertificateDer::from(der.to_vec());
            let ee = EndEntityCert::try_from(&leaf).unwrap();
            let rev = RevocationOptionsBuilder::new(&crls)
                .unwrap()
                .with_depth(RevocationCheckDepth::EndEntity)
                .with_status_policy(UnknownStatusPolicy::Deny)
                .build();
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &intermediates,
                time,
                KeyUsage::client_auth(),
                Some(rev),
                None,
            )
            .map(|_| ())
        };
        verify(&kept.der).unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert!(
            matches!(verify(&revoked.der), Err(webpki::Error::CertRevoked)),
            "{alg}: {:?}",
            verify(&revoked.der)
        );
    }
}
