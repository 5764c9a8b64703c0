//! Every mutation the issue names is refused: the pump keeps its last good
//! library (same version, same digest, same limits) and says why.

use super::*;
use pumpward_druglib::check::{DoseInput, DrugSelection};
use pumpward_druglib::envelope::public_key_from_pkcs8;
use pumpward_druglib::fuzzing::{new_test_signing_key, sign_without_validation};
use pumpward_druglib::quantity::Dec;
use pumpward_druglib::{sample_library, sign_library, Library};

const KID_A: &[u8] = b"hospital-a-library-2026";
const KID_B: &[u8] = b"hospital-b-library-2026";
const AREA: &str = "Adult ICU";

struct Hospital {
    key: Vec<u8>,
    kid: &'static [u8],
}

impl Hospital {
    fn new(kid: &'static [u8]) -> Self {
        Self {
            key: new_test_signing_key(),
            kid,
        }
    }
    fn trusted(&self) -> TrustedKey {
        TrustedKey {
            kid: self.kid.to_vec(),
            public_key: public_key_from_pkcs8(&self.key).unwrap(),
        }
    }
    fn sign(&self, version: u32) -> Vec<u8> {
        sign_library(
            &lib(version),
            &self.key,
            self.kid,
            "pharmacist.b",
            1_795_000_000,
        )
        .unwrap()
    }
}

fn lib(version: u32) -> Library {
    let mut l = sample_library();
    l.version = version;
    l
}

fn d(s: &str) -> Dec {
    s.parse().unwrap()
}

fn heparin(ml_per_h: &str, reason: Option<&'static str>) -> Programming<'static> {
    Programming {
        drug: Some(DrugSelection {
            drug: "heparin",
            concentration: "25000 units/250 mL".parse().unwrap(),
        }),
        dose: DoseInput::Rate {
            ml_per_h: d(ml_per_h),
        },
        weight_kg: Some(d("80")),
        bolus: None,
        vtbi_ml: None,
        override_reason: reason,
    }
}

/// A pump of hospital A with version 5 installed.
fn pump_with_v5(a: &Hospital) -> (PumpLibrary, LibraryRef) {
    let mut p = PumpLibrary::new(vec![a.trusted()]);
    let r = p.offer(&a.sign(5), None, AREA).unwrap();
    assert_eq!(r.version, "5");
    (p, r)
}

/// The pump still runs version 5: same report, and its limits still apply
/// (18 units/kg/h of heparin is within them, 50 is blocked).
fn assert_kept(p: &PumpLibrary, v5: &LibraryRef) {
    assert_eq!(p.active_ref().as_ref(), Some(v5));
    assert_eq!(p.installed().unwrap().version, 5);
    let ok = p.check(AREA, "inf-1", &heparin("14.4", None)).unwrap();
    assert_eq!(ok.outcome, CheckOutcome::WithinLimits);
    assert_eq!(ok.event.unwrap().library_version.as_deref(), Some("5"));
    let blocked = p.check(AREA, "inf-2", &heparin("50", None)).unwrap();
    assert!(matches!(
        blocked.outcome,
        CheckOutcome::HardLimitBlocked { .. }
    ));
}

fn refused(p: &mut PumpLibrary, env: &[u8], announced: Option<&str>) -> Rejection {
    match p.offer(env, announced, AREA) {
        Ok(r) => panic!("installed a mutated library: {r:?}"),
        Err(r) => {
            assert!(!r.error.is_empty());
            r
        }
    }
}

#[test]
fn a_valid_newer_library_installs_and_is_reported() {
    let a = Hospital::new(KID_A);
    let (mut p, _) = pump_with_v5(&a);
    let env6 = a.sign(6);
    let r = p.offer(&env6, Some(&sha256_hex(&env6)), AREA).unwrap();
    assert_eq!(r.version, "6");
    assert_eq!(r.digest, sha256_hex(&env6));
    assert_eq!(p.active_ref(), Some(r));
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let a = Hospital::new(KID_A);
    let (mut p, v5) = pump_with_v5(&a);
    let env = a.sign(6);
    // Every 97th byte, and the last: the header, the payload and the
    // signature are all covered.
    let mut positions: Vec<usize> = (0..env.len()).step_by(97).collect();
    positions.push(env.len() - 1);
    for i in positions {
        let mut m = env.clone();
        m[i] ^= 0x01;
        let r = refused(&mut p, &m, None);
        assert_ne!(r.reason, LibraryRejectReason::VersionRollback, "byte {i}");
        assert_kept(&p, &v5);
    }
    // A flip inside the payload is a signature failure, precisely.
    let mut m = env.clone();
    let mid = env.len() / 2;
    m[mid] ^= 0x20;
    let r = refused(&mut p, &m, None);
    assert_eq!(
        r.reason,
        LibraryRejectReason::SignatureInvalid,
        "{}",
        r.error
    );
    assert_kept(&p, &v5);
}

#[test]
fn the_wrong_key_under_the_trusted_key_id_is_refused() {
    let a = Hospital::new(KID_A);
    let (mut p, v5) = pump_with_v5(&a);
    let impostor = Hospital {
        key: new_test_signing_key(),
        kid: KID_A,
    };
    let r = refused(&mut p, &impostor.sign(6), None);
    assert_eq!(r.reason, LibraryRejectReason::SignatureInvalid);
    assert!(r.error.contains("signature"), "{}", r.error);
    assert_kept(&p, &v5);
}

#[test]
fn another_hospitals_key_is_refused() {
    let a = Hospital::new(KID_A);
    let b = Hospital::new(KID_B);
    let (mut p, v5) = pump_with_v5(&a);
    let r = refused(&mut p, &b.sign(9), None);
    assert_eq!(r.reason, LibraryRejectReason::UntrustedKey);
    assert!(r.error.contains("hospital-b"), "{}", r.error);
    assert_kept(&p, &v5);
}

#[test]
fn a_lower_or_equal_version_is_refused() {
    let a = Hospital::new(KID_A);
    let (mut p, v5) = pump_with_v5(&a);
    for v in [4, 5] {
        let r = refused(&mut p, &a.sign(v), None);
        assert_eq!(r.reason, LibraryRejectReason::VersionRollback);
        assert_eq!(r.version.as_deref(), Some(v.to_string().as_str()));
        assert!(r.error.contains("not newer"), "{}", r.error);
        assert_kept(&p, &v5);
    }
}

#[test]
fn a_truncated_file_is_refused() {
    let a = Hospital::new(KID_A);
    let (mut p, v5) = pump_with_v5(&a);
    let env = a.sign(6);
    for len in [0, 1, 10, env.len() / 2, env.len() - 1] {
        let r = refused(&mut p, &env[..len], None);
        assert_eq!(
            r.reason,
            LibraryRejectReason::MalformedEnvelope,
            "length {len}: {}",
            r.error
        );
        assert_kept(&p, &v5);
    }
}

#[test]
fn a_signed_payload_that_fails_validation_is_refused() {
    let a = Hospital::new(KID_A);
    let (mut p, v5) = pump_with_v5(&a);
    let mut bad = lib(6);
    // A soft maximum above the hard maximum: clinically incoherent.
    let e = &mut bad.care_areas[0].entries[0];
    e.soft_max = Some(d("100"));
    assert!(bad.validate().is_err());
    let env = sign_without_validation(&bad, &a.key, KID_A, "pharmacist.b", 1).unwrap();
    let r = refused(&mut p, &env, None);
    assert_eq!(r.reason, LibraryRejectReason::InvalidLibrary);
    assert!(r.error.contains("not valid"), "{}", r.error);
    assert_kept(&p, &v5);
}

#[test]
fn a_library_without_the_pumps_care_area_is_refused() {
    let a = Hospital::new(KID_A);
    let (mut p, v5) = pump_with_v5(&a);
    let r = p.offer(&a.sign(6), None, "Burn Unit").unwrap_err();
    assert_eq!(r.reason, LibraryRejectReason::WrongCareArea);
    assert_kept(&p, &v5);
}

#[test]
fn an_envelope_other_than_the_announced_one_is_refused() {
    let a = Hospital::new(KID_A);
    let (mut p, v5) = pump_with_v5(&a);
    let r = refused(&mut p, &a.sign(6), Some(&"ab".repeat(32)));
    assert_eq!(r.reason, LibraryRejectReason::DigestMismatch);
    assert_kept(&p, &v5);
}

#[test]
fn the_last_good_library_survives_a_restart_and_a_damaged_file_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let a = Hospital::new(KID_A);
    let (mut p, _) = PumpLibrary::open(dir.path(), vec![a.trusted()]);
    let r = p.offer(&a.sign(5), None, AREA).unwrap();
    let refused_one = p.offer(&a.sign(3), None, AREA);
    assert!(refused_one.is_err());
    let (again, warning) = PumpLibrary::open(dir.path(), vec![a.trusted()]);
    assert_eq!(warning, None);
    assert_eq!(again.active_ref(), Some(r.clone()));
    assert_kept(&again, &r);

    let path = dir.path().join(LIBRARY_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let (damaged, warning) = PumpLibrary::open(dir.path(), vec![a.trusted()]);
    assert!(warning.unwrap().contains("not used"));
    assert_eq!(damaged.active_ref(), None);
}

#[test]
fn dose_checks_become_events() {
    let a = Hospital::new(KID_A);
    let (p, _) = pump_with_v5(&a);
    // 14.4 mL/h × 100 units/mL ÷ 80 kg = 18 units/kg/h: within 5–25.
    let v = p.check(AREA, "inf-1", &heparin("14.4", None)).unwrap();
    let e = v.event.unwrap();
    assert_eq!(
        (e.result, e.drug.as_str(), e.care_area.as_str()),
        (DoseCheckResult::WithinLimits, "heparin", "adult-icu")
    );
    // 22.4 mL/h = 28 units/kg/h: above the soft maximum of 25.
    let v = p.check(AREA, "inf-2", &heparin("22.4", None)).unwrap();
    assert!(matches!(
        v.outcome,
        CheckOutcome::SoftLimitNeedsOverride { .. }
    ));
    assert_eq!(v.event, None);
    let v = p
        .check(AREA, "inf-2", &heparin("22.4", Some("aPTT below target")))
        .unwrap();
    let e = v.event.unwrap();
    assert_eq!(e.result, DoseCheckResult::SoftOverride);
    assert_eq!(e.override_reason.as_deref(), Some("aPTT below target"));
    assert_eq!(e.limit_kind, Some(LimitKind::SoftMax));
    assert_eq!(
        (e.dose.unwrap().value, e.limit.clone().unwrap().value),
        ("28".to_string(), "25".to_string())
    );
    assert_eq!(e.limit.unwrap().unit, "units/kg/h");
    // 50 mL/h = 62.5 units/kg/h: above the hard maximum of 40, whatever the reason.
    let v = p
        .check(AREA, "inf-3", &heparin("50", Some("bolus protocol")))
        .unwrap();
    assert!(!v.outcome.allows_start());
    let e = v.event.unwrap();
    assert_eq!(e.result, DoseCheckResult::HardBlock);
    assert_eq!(e.dose.unwrap().value, "62.5");
    assert_eq!(e.override_reason, None);
    // A drug the care area does not list: a basic infusion, flagged.
    let basic = Programming {
        drug: Some(DrugSelection {
            drug: "investigational drug x",
            concentration: "1 mg/mL".parse().unwrap(),
        }),
        dose: DoseInput::Rate { ml_per_h: d("5") },
        weight_kg: None,
        bolus: None,
        vtbi_ml: None,
        override_reason: None,
    };
    let v = p.check(AREA, "inf-4", &basic).unwrap();
    assert_eq!(v.outcome, CheckOutcome::BasicInfusion);
    let e = v.event.unwrap();
    assert_eq!(e.result, DoseCheckResult::BasicInfusion);
    assert_eq!(e.drug, "investigational drug x");
    assert_eq!(e.dose.unwrap().value, "5");
    // Every event passes the protocol's validation.
    for id in ["inf-1", "inf-4"] {
        let v = p.check(AREA, id, &heparin("14.4", None)).unwrap();
        pumpward_proto::message::EventKind::DoseCheck(v.event.unwrap())
            .validate()
            .unwrap();
    }
}

#[test]
fn without_a_library_every_programming_is_a_basic_infusion() {
    let p = PumpLibrary::new(Vec::new());
    let v = p.check(AREA, "inf-1", &heparin("14.4", None)).unwrap();
    assert_eq!(v.outcome, CheckOutcome::BasicInfusion);
    assert_eq!(v.event.unwrap().library_version, None);
    let mut by_dose = heparin("1", None);
    by_dose.dose = DoseInput::Dose {
        value: d("18"),
        unit: "units/kg/h".parse().unwrap(),
    };
    assert_eq!(
        p.check(AREA, "inf-2", &by_dose),
        Err(CheckError::BasicInfusionNeedsRate)
    );
}

#[test]
fn decimals_for_the_protocol() {
    assert_eq!(decimal6(&Ratio::new(28, 1).unwrap()), "28");
    assert_eq!(decimal6(&Ratio::new(1, 3).unwrap()), "0.333333");
    assert_eq!(decimal6(&Ratio::new(2, 3).unwrap()), "0.666667");
    assert_eq!(decimal6(&Ratio::new(125, 2).unwrap()), "62.5");
}
