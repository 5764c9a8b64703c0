//! Dose checks per second over the sample library (mixed programmings),
//! envelope verification and signing, canonical serialisation.
//!
//! Run: `cargo bench -p pumpward-druglib --bench druglib`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pumpward_druglib::check::{BolusInput, DoseChecker, DoseInput, DrugSelection, Programming};
use pumpward_druglib::envelope::{
    public_key_from_pkcs8, sign_library, verify_envelope, TrustedKey,
};
use pumpward_druglib::json::to_canonical_json;
use pumpward_druglib::quantity::Dec;
use pumpward_druglib::sample::sample_library;
use pumpward_druglib::units::Concentration;

/// One programming, owned.
struct Case {
    care_area: String,
    drug: Option<(String, Concentration)>,
    dose: DoseInput,
    weight: Option<Dec>,
    bolus: Option<BolusInput>,
    reason: Option<&'static str>,
}

/// A deterministic mix over every entry of the sample: doses in the
/// entry's unit at 20 %, 60 %, 120 % and 200 % of the soft maximum (within,
/// soft override with and without a reason, hard block), rates in mL/h, a
/// bolus where allowed, and a basic infusion every tenth case.
fn cases() -> Vec<Case> {
    let lib = sample_library();
    let mut out = Vec::new();
    let mut n = 0u32;
    for ca in &lib.care_areas {
        let weight = ca
            .weight_kg
            .map(|w| w.max.min(Dec::from_int(70)).max(w.min));
        for e in &ca.entries {
            let top = e.soft_max.or(e.hard_max).unwrap_or(Dec::ONE);
            for pct in [20i128, 60, 120, 200] {
                n += 1;
                let value = Dec::new(top.mantissa() * pct, top.scale() + 2).unwrap_or(Dec::ONE);
                let dose = if n % 3 == 0 {
                    DoseInput::Rate {
                        ml_per_h: Dec::new(i128::from(n % 500) + 5, 1).unwrap_or(Dec::ONE),
                    }
                } else {
                    DoseInput::Dose {
                        value,
                        unit: e.dosing_unit,
                    }
                };
                // A basic infusion (no drug chosen) is programmed in mL/h.
                let basic = n % 10 == 0;
                let (drug, dose) = if basic {
                    (
                        None,
                        DoseInput::Rate {
                            ml_per_h: Dec::from_int(50),
                        },
                    )
                } else {
                    (Some((e.drug.clone(), e.concentration)), dose)
                };
                let bolus = e.bolus.filter(|_| n % 4 == 1).map(|b| BolusInput {
                    amount: b.soft_max.or(b.hard_max).unwrap_or(Dec::ONE),
                    unit: b.unit,
                });
                out.push(Case {
                    care_area: ca.id.clone(),
                    drug,
                    dose,
                    weight,
                    bolus,
                    reason: (n % 2 == 0).then_some("titrating per order"),
                });
            }
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let lib = sample_library();
    let checker = DoseChecker::new(&lib).expect("the sample validates");
    let cases = cases();
    let progs: Vec<(&str, Programming)> = cases
        .iter()
        .map(|k| {
            (
                k.care_area.as_str(),
                Programming {
                    drug: k.drug.as_ref().map(|(d, c)| DrugSelection {
                        drug: d,
                        concentration: *c,
                    }),
                    dose: k.dose,
                    weight_kg: k.weight,
                    bolus: k.bolus,
                    vtbi_ml: None,
                    override_reason: k.reason,
                },
            )
        })
        .collect();
    // Every case is coherent: the bench measures decisions, not errors.
    let mut tally = std::collections::BTreeMap::new();
    for (ca, p) in &progs {
        let out = checker.check(ca, p).expect("coherent programming");
        let name = format!("{out:?}");
        *tally
            .entry(name.split([' ', '{']).next().unwrap_or("").to_owned())
            .or_insert(0) += 1;
    }
    eprintln!("{} programmings: {tally:?}", progs.len());

    let mut g = c.benchmark_group("dose_check");
    g.throughput(Throughput::Elements(progs.len() as u64));
    g.bench_function("mixed_sample_programmings", |b| {
        b.iter(|| {
            let mut allowed = 0usize;
            for (ca, p) in &progs {
                if let Ok(o) = checker.check(black_box(ca), black_box(p)) {
                    allowed += usize::from(o.allows_start());
                }
            }
            allowed
        })
    });
    g.finish();

    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .expect("key generation");
    let trusted = [TrustedKey {
        kid: b"bench".to_vec(),
        public_key: public_key_from_pkcs8(pkcs8.as_ref()).expect("public key"),
    }];
    let envelope =
        sign_library(&lib, pkcs8.as_ref(), b"bench", "bench", 1_795_000_000).expect("sign");
    eprintln!("sample envelope: {} bytes", envelope.len());
    let mut g = c.benchmark_group("envelope");
    g.bench_function("verify_sample", |b| {
        b.iter(|| verify_envelope(black_box(&envelope), &trusted).expect("verifies"))
    });
    g.bench_function("sign_sample", |b| {
        b.iter(|| {
            sign_library(black_box(&lib), pkcs8.as_ref(), b"bench", "bench", 1).expect("sign")
        })
    });
    g.finish();

    let mut g = c.benchmark_group("canonical");
    g.bench_function("to_canonical_json_sample", |b| {
        b.iter(|| to_canonical_json(black_box(&lib)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
