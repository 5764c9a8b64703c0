//! Every mutation of a real envelope is refused, with the expected reason.

use super::*;
use crate::sample::sample_library;
use std::collections::BTreeMap;

const KID: &[u8] = b"pharmacy-2026";
const PUBLISHED: u64 = 1_795_000_000;

fn new_key() -> Vec<u8> {
    let rng = SystemRandom::new();
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap()
        .as_ref()
        .to_vec()
}

struct Fixture {
    key: Vec<u8>,
    trusted: Vec<TrustedKey>,
    lib: Library,
    envelope: Vec<u8>,
}

fn fixture() -> Fixture {
    let mut lib = sample_library();
    lib.version = 7;
    fixture_with(lib)
}

fn fixture_with(lib: Library) -> Fixture {
    let key = new_key();
    let trusted = vec![TrustedKey {
        kid: KID.to_vec(),
        public_key: public_key_from_pkcs8(&key).unwrap(),
    }];
    let envelope = sign_library(&lib, &key, KID, "pharmacist.a", PUBLISHED).unwrap();
    Fixture {
        key,
        trusted,
        lib,
        envelope,
    }
}

fn fields(lib: &Library, payload: &[u8]) -> HeaderFields {
    HeaderFields {
        alg: iana::Algorithm::ES256,
        content_type: CONTENT_TYPE.to_owned(),
        kid: KID.to_vec(),
        id: lib.id.clone(),
        version: lib.version,
        digest: Sha256::digest(payload).into(),
        published_at: PUBLISHED,
        signer: "pharmacist.a".into(),
    }
}

fn installed(version: u32) -> InstalledLibrary {
    InstalledLibrary {
        id: "sample-library".into(),
        version,
        digest: [0; 32],
    }
}

fn reason(d: InstallDecision) -> RejectReason {
    match d {
        InstallDecision::Reject { reason } => reason,
        InstallDecision::Install(v) => panic!("installed {} v{}", v.library.id, v.library.version),
    }
}

#[test]
fn a_good_envelope_installs_and_carries_its_header() {
    let f = fixture();
    let v = verify_envelope(&f.envelope, &f.trusted).unwrap();
    assert_eq!(v.library, f.lib);
    assert_eq!(v.kid, KID);
    assert_eq!(v.signer, "pharmacist.a");
    assert_eq!(v.published_at, PUBLISHED);
    let canon = to_canonical_json(&f.lib);
    assert_eq!(v.digest, <[u8; 32]>::from(Sha256::digest(&canon)));
    // The payload is the canonical bytes, verbatim.
    assert!(f
        .envelope
        .windows(canon.len())
        .any(|w| w == canon.as_slice()));
    // Tagged COSE_Sign1: tag 18, array of 4.
    assert_eq!(&f.envelope[..2], &[0xd2, 0x84]);

    for ca in ["adult-icu", "nicu"] {
        let d = decide_install(Some(&installed(6)), &f.envelope, &f.trusted, ca);
        assert!(
            matches!(&d, InstallDecision::Install(v) if v.library.version == 7),
            "{d}"
        );
    }
    assert!(matches!(
        decide_install(None, &f.envelope, &f.trusted, "ed"),
        InstallDecision::Install(_)
    ));
    // The public key also works as a DER SubjectPublicKeyInfo.
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(&f.trusted[0].public_key);
    let t = [TrustedKey {
        kid: KID.to_vec(),
        public_key: spki,
    }];
    assert!(verify_envelope(&f.envelope, &t).is_ok());
}

#[test]
fn anti_rollback_and_care_area() {
    let f = fixture();
    for v in [7, 8, 100] {
        assert_eq!(
            reason(decide_install(
                Some(&installed(v)),
                &f.envelope,
                &f.trusted,
                "adult-icu"
            )),
            RejectReason::NotNewer {
                installed: v,
                offered: 7
            }
        );
    }
    assert_eq!(
        reason(decide_install(
            Some(&installed(1)),
            &f.envelope,
            &f.trusted,
            "burn-unit"
        )),
        RejectReason::CareAreaMissing("burn-unit".into())
    );
}

#[test]
fn wrong_and_foreign_keys_are_refused() {
    let f = fixture();
    // Same kid, another key (e.g. another hospital reusing the name).
    let other = new_key();
    let env = sign_library(&f.lib, &other, KID, "pharmacist.a", PUBLISHED).unwrap();
    assert_eq!(
        reason(decide_install(None, &env, &f.trusted, "adult-icu")),
        RejectReason::Envelope(EnvelopeError::BadSignature)
    );
    // Another hospital's key under its own kid.
    let env = sign_library(&f.lib, &other, b"other-hospital", "x", PUBLISHED).unwrap();
    assert_eq!(
        reason(decide_install(None, &env, &f.trusted, "adult-icu")),
        RejectReason::Envelope(EnvelopeError::UnknownKeyId("other-hospital".into()))
    );
    // Trusting the other key too does not make the first hospital's kid map to it.
    let mut both = f.trusted.clone();
    both.push(TrustedKey {
        kid: b"other-hospital".to_vec(),
        public_key: public_key_from_pkcs8(&other).unwrap(),
    });
    assert!(verify_envelope(&env, &both).is_ok());
    assert!(verify_envelope(&f.envelope, &both).is_ok());
    // No trusted keys at all.
    assert!(matches!(
        verify_envelope(&f.envelope, &[]),
        Err(EnvelopeError::UnknownKeyId(_))
    ));
    // A garbage trusted key refuses, never panics.
    let junk = [TrustedKey {
        kid: KID.to_vec(),
        public_key: vec![4; 10],
    }];
    assert_eq!(
        verify_envelope(&f.envelope, &junk),
        Err(EnvelopeError::BadSignature)
    );
}

/// Every byte of a small real envelope (the sample's labour and delivery
/// and NICU care areas), each flipped.
#[test]
fn every_flipped_byte_of_a_small_envelope_is_refused() {
    let mut lib = sample_library();
    lib.version = 7;
    lib.care_areas
        .retain(|c| c.id == "labor-delivery" || c.id == "adult-icu");
    lib.care_areas[0].entries.truncate(3);
    let f = fixture_with(lib);
    let n = flip_and_check(&f, 1);
    assert_eq!(n, f.envelope.len());
}

/// The full sample envelope: every byte outside the payload (tag, array,
/// protected header, the unprotected map, length prefixes, signature) and a
/// dense sample of the payload, at least 2,000 positions.
#[test]
fn flipped_bytes_of_the_full_sample_envelope_are_refused() {
    let f = fixture();
    let n = flip_and_check(&f, 10);
    eprintln!(
        "full sample envelope: {} bytes, {n} positions flipped",
        f.envelope.len()
    );
    assert!(n >= 2000, "{n}");
}

/// Flips each byte outside the payload and every `stride`-th payload byte;
/// returns how many positions were tried.
fn flip_and_check(f: &Fixture, stride: usize) -> usize {
    let env = &f.envelope;
    let canon = to_canonical_json(&f.lib);
    let start = env
        .windows(canon.len())
        .position(|w| w == canon.as_slice())
        .unwrap();
    let payload = start..start + canon.len();
    let signature = env.len() - 64..env.len();
    // Every byte outside the payload (tag, array, protected header, the
    // unprotected map, length prefixes, signature), and a dense sample of
    // the payload, so that at least 2,000 positions are flipped.
    let positions: Vec<usize> = (0..env.len())
        .filter(|i| !payload.contains(i) || (i - start) % stride == 0)
        .collect();
    assert!(start > 150, "the protected header is covered: {start}");

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for &i in &positions {
        let mut m = env.clone();
        m[i] ^= 0xff;
        let r = reason(decide_install(
            Some(&installed(1)),
            &m,
            &f.trusted,
            "adult-icu",
        ));
        let RejectReason::Envelope(e) = &r else {
            panic!("byte {i}: {r}");
        };
        if payload.contains(&i) || signature.contains(&i) {
            assert_eq!(e, &EnvelopeError::BadSignature, "byte {i}");
        } else {
            // Structure, algorithm, key id or signature: never a later check,
            // because everything after the signature check is signed.
            assert!(
                matches!(
                    e,
                    EnvelopeError::Truncated
                        | EnvelopeError::Malformed(_)
                        | EnvelopeError::UnsupportedAlgorithm(_)
                        | EnvelopeError::MissingKeyId
                        | EnvelopeError::UnknownKeyId(_)
                        | EnvelopeError::MissingPayload
                        | EnvelopeError::BadSignature
                ),
                "byte {i}: {e}"
            );
        }
        let name = format!("{e:?}");
        *seen
            .entry(name.split(['(', ' ']).next().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    // The mutations reach the different checks, not just one.
    for k in ["BadSignature", "Malformed", "UnknownKeyId"] {
        assert!(seen.get(k).copied().unwrap_or(0) > 0, "{seen:?}");
    }
    positions.len()
}

#[test]
fn truncation_and_framing_are_refused() {
    let f = fixture();
    let env = &f.envelope;
    let mut lengths: Vec<usize> = (0..300).collect();
    lengths.extend((300..env.len()).step_by(97));
    lengths.push(env.len() - 1);
    let mut truncated = 0;
    for n in lengths {
        let r = verify_envelope(&env[..n], &f.trusted).unwrap_err();
        assert!(
            matches!(r, EnvelopeError::Truncated | EnvelopeError::Malformed(_)),
            "{n}: {r}"
        );
        truncated += usize::from(r == EnvelopeError::Truncated);
    }
    assert!(truncated > 300, "{truncated}");
    assert_eq!(
        verify_envelope(&[], &f.trusted),
        Err(EnvelopeError::Truncated)
    );
    // Trailing bytes.
    let mut longer = env.clone();
    longer.push(0);
    assert!(matches!(
        verify_envelope(&longer, &f.trusted),
        Err(EnvelopeError::Malformed(_))
    ));
    // Untagged COSE_Sign1 is not accepted.
    assert!(matches!(
        verify_envelope(&env[1..], &f.trusted),
        Err(EnvelopeError::Malformed(_))
    ));
    // Too large, refused before parsing.
    let big = vec![0u8; MAX_ENVELOPE_BYTES + 1];
    assert!(matches!(
        verify_envelope(&big, &f.trusted),
        Err(EnvelopeError::TooLarge { .. })
    ));
}

/// Envelopes signed by the trusted key whose content is wrong in one way.
#[test]
fn validly_signed_but_wrong_content_is_refused() {
    let f = fixture();
    let lib = &f.lib;
    let canon = to_canonical_json(lib);
    let check = |payload: Vec<u8>, h: HeaderFields| {
        let env = build_envelope(payload, &h, &f.key).unwrap();
        reason(decide_install(
            Some(&installed(1)),
            &env,
            &f.trusted,
            "adult-icu",
        ))
    };
    let env_err = |e| RejectReason::Envelope(e);

    // A payload that fails validation (soft max above hard max), signed by the right key.
    let mut bad = lib.clone();
    bad.care_areas[0].entries[1].soft_max = Some("500".parse().unwrap());
    let p = to_canonical_json(&bad);
    let r = check(p.clone(), fields(&bad, &p));
    assert!(
        matches!(&r, RejectReason::Envelope(EnvelopeError::PayloadInvalid(v)) if v.0[0].path == "care_areas[adult-icu].entries[1].soft_max"),
        "{r}"
    );
    // sign_library refuses to sign it in the first place.
    assert!(matches!(
        sign_library(&bad, &f.key, KID, "x", 0),
        Err(SignError::Invalid(_))
    ));

    // Digest of other bytes.
    let mut h = fields(lib, &canon);
    h.digest[0] ^= 1;
    assert_eq!(
        check(canon.clone(), h),
        env_err(EnvelopeError::DigestMismatch)
    );
    // Header and payload disagree on version and on id.
    let mut h = fields(lib, &canon);
    h.version = 8;
    assert!(matches!(
        check(canon.clone(), h),
        RejectReason::Envelope(EnvelopeError::HeaderPayloadMismatch {
            field: "version",
            ..
        })
    ));
    let mut h = fields(lib, &canon);
    h.id = "other-library".into();
    assert!(matches!(
        check(canon.clone(), h),
        RejectReason::Envelope(EnvelopeError::HeaderPayloadMismatch { field: "id", .. })
    ));
    // Not canonical (pretty-printed), digest right.
    let pretty = crate::json::to_pretty_json(lib).into_bytes();
    assert_eq!(
        check(pretty.clone(), fields(lib, &pretty)),
        env_err(EnvelopeError::NonCanonicalPayload)
    );
    // Not a library at all.
    let junk = b"{\"hello\":1}".to_vec();
    assert!(matches!(
        check(junk.clone(), fields(lib, &junk)),
        RejectReason::Envelope(EnvelopeError::PayloadNotLibrary(_))
    ));
    // Wrong content type, wrong algorithm label.
    let mut h = fields(lib, &canon);
    h.content_type = "application/json".into();
    assert!(matches!(
        check(canon.clone(), h),
        RejectReason::Envelope(EnvelopeError::UnsupportedContentType(_))
    ));
    let mut h = fields(lib, &canon);
    h.alg = iana::Algorithm::EdDSA;
    assert!(matches!(
        check(canon.clone(), h),
        RejectReason::Envelope(EnvelopeError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn header_fields_are_type_checked() {
    // Build protected headers by hand, signed with the trusted key.
    let f = fixture();
    let canon = to_canonical_json(&f.lib);
    let rng = SystemRandom::new();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &f.key, &rng).unwrap();
    let sign = |hb: HeaderBuilder| {
        CoseSign1Builder::new()
            .protected(hb.build())
            .payload(canon.clone())
            .create_signature(b"", |tbs| key.sign(&rng, tbs).unwrap().as_ref().to_vec())
            .build()
            .to_tagged_vec()
            .unwrap()
    };
    let base = || {
        HeaderBuilder::new()
            .algorithm(iana::Algorithm::ES256)
            .content_type(CONTENT_TYPE.into())
            .key_id(KID.to_vec())
    };
    let full = |hb: HeaderBuilder, skip: i64, replace: Option<Value>| {
        let mut hb = hb;
        let vals = [
            (LABEL_LIBRARY_ID, Value::Text(f.lib.id.clone())),
            (LABEL_LIBRARY_VERSION, Value::Integer(f.lib.version.into())),
            (
                LABEL_CONTENT_DIGEST,
                Value::Bytes(Sha256::digest(&canon).to_vec()),
            ),
            (LABEL_PUBLISHED_AT, Value::Integer(PUBLISHED.into())),
            (LABEL_SIGNER, Value::Text("p".into())),
        ];
        for (l, v) in vals {
            if l == skip {
                if let Some(r) = &replace {
                    hb = hb.value(l, r.clone());
                }
            } else {
                hb = hb.value(l, v);
            }
        }
        hb
    };
    // All fields present, no crit: accepted.
    assert!(verify_envelope(&sign(full(base(), 0, None)), &f.trusted).is_ok());
    for l in PRIVATE_LABELS {
        let e = verify_envelope(&sign(full(base(), l, None)), &f.trusted).unwrap_err();
        assert!(matches!(e, EnvelopeError::MalformedHeader(_)), "{l}: {e}");
        let e = verify_envelope(&sign(full(base(), l, Some(Value::Bool(true)))), &f.trusted)
            .unwrap_err();
        assert!(matches!(e, EnvelopeError::MalformedHeader(_)), "{l}: {e}");
    }
    let e = verify_envelope(
        &sign(full(
            base(),
            LABEL_LIBRARY_VERSION,
            Some(Value::Integer((-1).into())),
        )),
        &f.trusted,
    )
    .unwrap_err();
    assert!(matches!(e, EnvelopeError::MalformedHeader(_)), "{e}");
    let e = verify_envelope(
        &sign(full(
            base(),
            LABEL_CONTENT_DIGEST,
            Some(Value::Bytes(vec![0; 31])),
        )),
        &f.trusted,
    )
    .unwrap_err();
    assert!(matches!(e, EnvelopeError::MalformedHeader(_)), "{e}");
    // An unknown critical label.
    let hb =
        full(base(), 0, None).add_critical_label(RegisteredLabelWithPrivate::PrivateUse(-70000));
    let e = verify_envelope(&sign(hb), &f.trusted).unwrap_err();
    assert!(
        matches!(e, EnvelopeError::MalformedHeader(ref m) if m.contains("critical")),
        "{e}"
    );
    // A kid only in the unprotected header does not count.
    let sign1 = CoseSign1Builder::new()
        .protected(
            full(
                HeaderBuilder::new()
                    .algorithm(iana::Algorithm::ES256)
                    .content_type(CONTENT_TYPE.into()),
                0,
                None,
            )
            .build(),
        )
        .unprotected(HeaderBuilder::new().key_id(KID.to_vec()).build())
        .payload(canon.clone())
        .create_signature(b"", |tbs| key.sign(&rng, tbs).unwrap().as_ref().to_vec())
        .build()
        .to_tagged_vec()
        .unwrap();
    assert_eq!(
        verify_envelope(&sign1, &f.trusted),
        Err(EnvelopeError::MissingKeyId)
    );
}

#[test]
fn signing_refuses_bad_keys_and_headers() {
    let f = fixture();
    assert!(matches!(
        sign_library(&f.lib, b"not a key", KID, "p", 0),
        Err(SignError::Key(_))
    ));
    assert_eq!(
        sign_library(&f.lib, &f.key, b"", "p", 0),
        Err(SignError::Header("the key id"))
    );
    assert_eq!(
        sign_library(&f.lib, &f.key, KID, "", 0),
        Err(SignError::Header("the signer"))
    );
    // Two signatures of the same library differ (ECDSA is randomised) but
    // carry the same payload and digest.
    let a = verify_envelope(
        &sign_library(&f.lib, &f.key, KID, "p", 1).unwrap(),
        &f.trusted,
    )
    .unwrap();
    let b = verify_envelope(
        &sign_library(&f.lib, &f.key, KID, "p", 1).unwrap(),
        &f.trusted,
    )
    .unwrap();
    assert_eq!(a, b);
}
