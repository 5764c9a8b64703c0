//! The bodies of the `druglib_json`, `druglib_csv` and `druglib_envelope`
//! fuzz targets, here so that the committed seeds (`fuzz/seeds/<target>/`)
//! are replayed by unit tests on stable.
//!
//! Besides "never panics", each checks what the crate promises: what parses
//! re-exports to itself, what validates can be compiled into a dose
//! checker, line numbers are inside the file, and an envelope that verifies
//! carries a valid library whose canonical bytes match the signed digest.

use crate::check::{DoseChecker, DoseInput, DrugSelection, Programming};
use crate::csv::{read_library_csv, write_library_csv, CsvError};
use crate::envelope::{decide_install, verify_envelope, InstallDecision, TrustedKey};
use crate::json::{parse_library_json, to_canonical_json};
use crate::model::Library;
use crate::quantity::Dec;
use sha2::{Digest, Sha256};

/// Key id of the fuzzing key.
pub const FUZZ_KID: &[u8] = b"fuzz-only";

/// A P-256 PKCS#8 key used **only** to sign the envelope fuzz seeds. It is
/// public (it is in the source), so no pump may ever trust it.
pub const FUZZ_SIGNING_KEY_PKCS8_HEX: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420876951e850542f15cbf1dfcd6d5e3460ae8a93de488843ed86c4f1d84e34bd0aa14403420004615df9e0fce11d9aaf7dc96c4b58dbf9b130d13fb5c3a2ba04caaac1b2eede62f242d6ab4874bda9307d54a772287f3300f6dd5a9f2c9574e7f0aa5fc4a33e6f";

/// The fuzzing key's public point (uncompressed).
pub const FUZZ_PUBLIC_KEY_HEX: &str = "04615df9e0fce11d9aaf7dc96c4b58dbf9b130d13fb5c3a2ba04caaac1b2eede62f242d6ab4874bda9307d54a772287f3300f6dd5a9f2c9574e7f0aa5fc4a33e6f";

/// The trusted keys the envelope target verifies against.
pub fn fuzz_trusted_keys() -> Vec<TrustedKey> {
    vec![TrustedKey {
        kid: FUZZ_KID.to_vec(),
        public_key: hex::decode(FUZZ_PUBLIC_KEY_HEX).unwrap_or_default(),
    }]
}

/// Checks a library that validated: exports re-read, the engine compiles,
/// and a few programmings derived from `salt` never panic.
fn exercise_valid(lib: &Library, salt: u64) {
    let canon = to_canonical_json(lib);
    let again = parse_library_json(&canon).expect("canonical JSON re-reads");
    assert_eq!(&again, lib);
    assert_eq!(to_canonical_json(&again), canon);
    let csv = write_library_csv(lib);
    let back = read_library_csv(&csv).expect("a valid library's CSV re-reads");
    assert_eq!(&back, lib);
    assert!(crate::diff::diff(lib, lib).is_empty());

    let checker = DoseChecker::new(lib).expect("a valid library compiles");
    for ca in &lib.care_areas {
        for e in ca.entries.iter().take(4) {
            let rate =
                Dec::new(i128::from(salt % 100_000) + 1, (salt % 4) as u32).unwrap_or(Dec::ONE);
            let weight = ca.weight_kg.map(|w| w.max);
            for dose in [
                DoseInput::Rate { ml_per_h: rate },
                DoseInput::Dose {
                    value: rate,
                    unit: e.dosing_unit,
                },
            ] {
                let p = Programming {
                    drug: Some(DrugSelection {
                        drug: &e.drug,
                        concentration: e.concentration,
                    }),
                    dose,
                    weight_kg: weight,
                    bolus: None,
                    vtbi_ml: None,
                    override_reason: None,
                };
                // Errors are allowed only for arithmetic at the extremes.
                if let Err(err) = checker.check(&ca.id, &p) {
                    assert!(
                        matches!(err, crate::check::CheckError::Arithmetic(_)),
                        "{err}"
                    );
                }
            }
        }
    }
}

fn salt(data: &[u8]) -> u64 {
    data.iter()
        .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// What the JSON target saw (for the seeds' expectations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonOutcome {
    /// Not a library.
    Refused,
    /// A library that does not validate.
    Invalid,
    /// A valid library.
    Valid,
}

/// The `druglib_json` target: arbitrary bytes as a library JSON document.
pub fn druglib_json(data: &[u8]) -> JsonOutcome {
    let Ok(lib) = parse_library_json(data) else {
        return JsonOutcome::Refused;
    };
    // Parsed libraries always re-serialise to something that parses back.
    let canon = to_canonical_json(&lib);
    assert_eq!(parse_library_json(&canon).as_ref(), Ok(&lib));
    if lib.validate().is_err() {
        assert!(DoseChecker::new(&lib).is_err());
        return JsonOutcome::Invalid;
    }
    exercise_valid(&lib, salt(data));
    JsonOutcome::Valid
}

/// What the CSV target saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvOutcome {
    /// The file as a whole was refused (empty, header, size, structure).
    Refused,
    /// Rows with problems.
    RowProblems,
    /// A valid library.
    Valid,
}

/// The `druglib_csv` target: arbitrary bytes as a library CSV file.
pub fn druglib_csv(data: &[u8]) -> CsvOutcome {
    // An upper bound whatever the line ends (LF, CRLF or a lone CR).
    let lines = data.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 1;
    match read_library_csv(data) {
        Ok(lib) => {
            lib.validate()
                .expect("what the CSV reader returns is valid");
            exercise_valid(&lib, salt(data));
            CsvOutcome::Valid
        }
        Err(CsvError::Rows(p)) => {
            assert!(!p.is_empty());
            for x in &p {
                assert!(
                    (1..=lines).contains(&x.line),
                    "line {} of {lines}: {x}",
                    x.line
                );
            }
            CsvOutcome::RowProblems
        }
        Err(_) => CsvOutcome::Refused,
    }
}

/// The `druglib_envelope` target: arbitrary bytes as a signed envelope,
/// verified against the fuzzing key and offered to a pump in `adult-icu`.
pub fn druglib_envelope(data: &[u8]) -> Result<u32, String> {
    let trusted = fuzz_trusted_keys();
    let verified = verify_envelope(data, &trusted);
    let decision = decide_install(None, data, &trusted, "adult-icu");
    match (&verified, &decision) {
        (Ok(v), _) => {
            v.library.validate().expect("a verified library is valid");
            let canon = to_canonical_json(&v.library);
            assert_eq!(<[u8; 32]>::from(Sha256::digest(&canon)), v.digest);
            // Anti-rollback: the same envelope is never installed over itself.
            let again = decide_install(Some(&v.into()), data, &trusted, "adult-icu");
            assert!(matches!(again, InstallDecision::Reject { .. }));
        }
        (Err(_), InstallDecision::Install(_)) => {
            panic!("installed an envelope that does not verify")
        }
        (Err(_), InstallDecision::Reject { .. }) => {}
    }
    verified
        .map(|v| v.library.version)
        .map_err(|e| e.to_string())
}

/// A fresh P-256 PKCS#8 signing key, for tests of other crates (a pump
/// trusting one hospital's key and refusing another's).
pub fn new_test_signing_key() -> Vec<u8> {
    use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map(|k| k.as_ref().to_vec())
        .unwrap_or_default()
}

/// Signs `lib` **without validating it** (as a mistaken or compromised
/// signer could), so that tests of other crates can show a pump refusing a
/// validly signed but invalid library. Never used to publish.
pub fn sign_without_validation(
    lib: &Library,
    pkcs8: &[u8],
    kid: &[u8],
    signer: &str,
    published_at: u64,
) -> Result<Vec<u8>, crate::envelope::SignError> {
    let payload = to_canonical_json(lib);
    let fields = crate::envelope::HeaderFields {
        alg: coset::iana::Algorithm::ES256,
        content_type: crate::envelope::CONTENT_TYPE.to_owned(),
        kid: kid.to_vec(),
        id: lib.id.clone(),
        version: lib.version,
        digest: Sha256::digest(&payload).into(),
        published_at,
        signer: signer.to_owned(),
    };
    crate::envelope::build_envelope(payload, &fields, pkcs8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::sign_library;
    use crate::sample::sample_library;
    use std::path::{Path, PathBuf};

    fn seed_dir(target: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target)
    }

    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(seed_dir(target))
            .unwrap_or_else(|e| panic!("{target}: {e}"))
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn seed(target: &str, name: &str) -> Vec<u8> {
        std::fs::read(seed_dir(target).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn fuzz_key_matches_its_public_half() {
        let pkcs8 = hex::decode(FUZZ_SIGNING_KEY_PKCS8_HEX).unwrap();
        let public = crate::envelope::public_key_from_pkcs8(&pkcs8).unwrap();
        assert_eq!(hex::encode(public), FUZZ_PUBLIC_KEY_HEX);
    }

    /// Replays every committed seed of the three targets on stable.
    #[test]
    fn druglib_fuzz_seeds_replay() {
        for (target, run) in [
            (
                "druglib_json",
                (|d: &[u8]| {
                    let _ = druglib_json(d);
                }) as fn(&[u8]),
            ),
            ("druglib_csv", |d| {
                let _ = druglib_csv(d);
            }),
            ("druglib_envelope", |d| {
                let _ = druglib_envelope(d);
            }),
        ] {
            let s = seeds(target);
            assert!(s.len() >= 4, "{target}: only {} seeds", s.len());
            for (_, data) in &s {
                run(data);
            }
        }
    }

    #[test]
    fn seeds_do_what_their_names_say() {
        assert_eq!(
            druglib_json(&seed("druglib_json", "sample.json")),
            JsonOutcome::Valid
        );
        assert_eq!(
            druglib_json(&seed("druglib_json", "small.json")),
            JsonOutcome::Valid
        );
        assert_eq!(
            druglib_json(&seed("druglib_json", "soft_above_hard.json")),
            JsonOutcome::Invalid
        );
        assert_eq!(
            druglib_json(&seed("druglib_json", "unknown_unit.json")),
            JsonOutcome::Refused
        );
        assert_eq!(
            druglib_json(&seed("druglib_json", "truncated.json")),
            JsonOutcome::Refused
        );
        assert_eq!(
            druglib_csv(&seed("druglib_csv", "sample.csv")),
            CsvOutcome::Valid
        );
        assert_eq!(
            druglib_csv(&seed("druglib_csv", "bad_cells.csv")),
            CsvOutcome::RowProblems
        );
        assert_eq!(
            druglib_csv(&seed("druglib_csv", "bad_header.csv")),
            CsvOutcome::Refused
        );
        assert_eq!(
            druglib_csv(&seed("druglib_csv", "quoted_cells.csv")),
            CsvOutcome::Valid
        );
        assert_eq!(
            druglib_envelope(&seed("druglib_envelope", "sample.cose")),
            Ok(3)
        );
        assert_eq!(
            druglib_envelope(&seed("druglib_envelope", "small.cose")),
            Ok(2)
        );
        assert_eq!(
            druglib_envelope(&seed("druglib_envelope", "flipped_payload.cose")),
            Err("the signature does not verify".into())
        );
        assert_eq!(
            druglib_envelope(&seed("druglib_envelope", "truncated.cose")),
            Err("the envelope is truncated".into())
        );
        assert!(
            druglib_envelope(&seed("druglib_envelope", "other_key.cose"))
                .unwrap_err()
                .starts_with("unknown signing key id")
        );
    }

    /// A small fuzzer on stable: random edits of the committed seeds
    /// through the three targets' bodies (which assert the crate's
    /// promises), so CI exercises more than the seeds themselves.
    mod mutations {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Edit {
            Flip(usize, u8),
            Insert(usize, u8),
            Delete(usize),
            Truncate(usize),
            Duplicate(usize, usize),
        }

        fn arb_edits() -> impl Strategy<Value = Vec<Edit>> {
            let e = prop_oneof![
                (any::<usize>(), 1u8..).prop_map(|(i, b)| Edit::Flip(i, b)),
                (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
                any::<usize>().prop_map(Edit::Delete),
                any::<usize>().prop_map(Edit::Truncate),
                (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Duplicate(i, n)),
            ];
            prop::collection::vec(e, 1..4)
        }

        fn apply(mut d: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
            for e in edits {
                if d.is_empty() {
                    break;
                }
                let at = |i: usize| i % d.len();
                match *e {
                    Edit::Flip(i, b) => {
                        let i = at(i);
                        d[i] ^= b;
                    }
                    Edit::Insert(i, b) => {
                        let i = at(i);
                        d.insert(i, b);
                    }
                    Edit::Delete(i) => {
                        let i = at(i);
                        d.remove(i);
                    }
                    Edit::Truncate(i) => {
                        let i = at(i);
                        d.truncate(i);
                    }
                    Edit::Duplicate(i, n) => {
                        let i = at(i);
                        let end = (i + n).min(d.len());
                        let piece = d[i..end].to_vec();
                        d.splice(i..i, piece);
                    }
                }
            }
            d
        }

        fn small_seeds(target: &str) -> Vec<Vec<u8>> {
            // The large sample seeds make each case slow; the small ones
            // cover the same code.
            seeds(target)
                .into_iter()
                .filter(|(_, d)| d.len() < 8 * 1024)
                .map(|(_, d)| d)
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn mutated_json_seeds(pick in any::<usize>(), edits in arb_edits()) {
                let s = small_seeds("druglib_json");
                let _ = druglib_json(&apply(s[pick % s.len()].clone(), &edits));
            }

            #[test]
            fn mutated_csv_seeds(pick in any::<usize>(), edits in arb_edits()) {
                let s = small_seeds("druglib_csv");
                let _ = druglib_csv(&apply(s[pick % s.len()].clone(), &edits));
            }

            #[test]
            fn mutated_envelope_seeds(pick in any::<usize>(), edits in arb_edits()) {
                let s = small_seeds("druglib_envelope");
                let data = apply(s[pick % s.len()].clone(), &edits);
                let r = druglib_envelope(&data);
                // Only an unchanged valid envelope verifies.
                if r.is_ok() {
                    prop_assert!(s.contains(&data));
                }
            }
        }
    }

    /// Writes the seed files. Run by hand after a format change:
    /// `cargo test -p pumpward-druglib write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let w = |target: &str, name: &str, data: &[u8]| {
            std::fs::create_dir_all(seed_dir(target)).unwrap();
            std::fs::write(seed_dir(target).join(name), data).unwrap();
        };
        let mut lib = sample_library();
        lib.version = 3;
        let mut small = lib.clone();
        small.version = 2;
        small
            .care_areas
            .retain(|c| c.id == "adult-icu" || c.id == "labor-delivery");
        small.care_areas[0].entries.truncate(4);
        w(
            "druglib_json",
            "sample.json",
            crate::json::to_pretty_json(&lib).as_bytes(),
        );
        w("druglib_json", "small.json", &to_canonical_json(&small));
        let mut bad = small.clone();
        bad.care_areas[0].entries[1].soft_max = Some("500".parse().unwrap());
        w(
            "druglib_json",
            "soft_above_hard.json",
            &to_canonical_json(&bad),
        );
        let text = String::from_utf8(to_canonical_json(&small)).unwrap();
        w(
            "druglib_json",
            "unknown_unit.json",
            text.replacen("mcg/min", "mcg/minute", 1).as_bytes(),
        );
        w(
            "druglib_json",
            "truncated.json",
            &text.as_bytes()[..text.len() / 2],
        );

        w("druglib_csv", "sample.csv", &write_library_csv(&lib));
        let csv = String::from_utf8(write_library_csv(&small)).unwrap();
        let mut lines: Vec<String> = csv.split("\r\n").map(str::to_owned).collect();
        lines[1] = lines[1].replacen("units/kg/h", "units/kilo/h", 1);
        lines[2] = lines[2].replacen(",true,", ",maybe,", 1);
        lines[3] = lines[3].replacen("4,mg,250", "4,mg,-250", 1);
        w(
            "druglib_csv",
            "bad_cells.csv",
            lines.join("\r\n").as_bytes(),
        );
        w(
            "druglib_csv",
            "bad_header.csv",
            csv.replacen("hard_max", "hardmax", 1).as_bytes(),
        );
        let mut ml = small.clone();
        ml.care_areas[0].entries[0].advisory = Some("Line one, \"quoted\"; and more".into());
        ml.description = "A, B and \"C\"".into();
        w("druglib_csv", "quoted_cells.csv", &write_library_csv(&ml));

        let key = hex::decode(FUZZ_SIGNING_KEY_PKCS8_HEX).unwrap();
        let env = sign_library(&lib, &key, FUZZ_KID, "fuzz seed", 1_795_000_000).unwrap();
        w("druglib_envelope", "sample.cose", &env);
        let env_small = sign_library(&small, &key, FUZZ_KID, "fuzz seed", 1_795_000_000).unwrap();
        w("druglib_envelope", "small.cose", &env_small);
        let mut flipped = env_small.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0xff;
        w("druglib_envelope", "flipped_payload.cose", &flipped);
        w(
            "druglib_envelope",
            "truncated.cose",
            &env_small[..env_small.len() - 20],
        );
        let rng = ring::rand::SystemRandom::new();
        let other = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let env_other = sign_library(&small, other.as_ref(), b"another-hospital", "x", 1).unwrap();
        w("druglib_envelope", "other_key.cose", &env_other);
    }
}
