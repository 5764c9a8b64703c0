//! Proptest generators of valid libraries, and the round-trip properties
//! of the import/export formats over them.

use crate::model::{Bolus, CareArea, Entry, Library, LimitSet, WeightRange};
use crate::quantity::Dec;
use crate::units::{AmountUnit, BolusUnit, Concentration, DoseUnit, TimeUnit, AMOUNT_UNITS};
use proptest::prelude::*;

/// Text without surrounding white space or control characters, with the
/// characters that stress CSV and JSON: commas, quotes, backslashes,
/// non-ASCII.
fn arb_text(max: usize) -> impl Strategy<Value = String> {
    let re = format!("[A-Za-z0-9é–µ,\"'\\\\/;:()% .-]{{0,{max}}}");
    (prop::string::string_regex(&re).unwrap(), "[A-Za-z0-9é\"]")
        .prop_map(|(mid, end)| {
            let t = format!("{end}{}", mid.trim());
            t.trim().to_owned()
        })
        .prop_filter("non-empty", |t| !t.is_empty())
}

fn arb_pos() -> impl Strategy<Value = Dec> {
    (1i128..100_000_000, 0u32..=4).prop_map(|(m, s)| Dec::new(m, s).unwrap())
}

/// Four optional limits in order, with a hard max always present.
fn arb_limits() -> impl Strategy<Value = LimitSet> {
    (prop::collection::vec(arb_pos(), 4), any::<[bool; 3]>()).prop_map(|(mut v, on)| {
        v.sort();
        LimitSet {
            hard_min: on[0].then_some(v[0]),
            soft_min: on[1].then_some(v[1]),
            soft_max: on[2].then_some(v[2]),
            hard_max: Some(v[3]),
        }
    })
}

fn arb_amount() -> impl Strategy<Value = AmountUnit> {
    prop::sample::select(AMOUNT_UNITS.to_vec())
}

prop_compose! {
    fn arb_entry(i: usize)(
        drug in arb_text(30),
        code in prop::option::of("[0-9]{1,8}"),
        amount in arb_pos(), unit in arb_amount(), volume_ml in arb_pos(),
        pick in 0usize..4, per_kg in any::<bool>(), hour in any::<bool>(),
        limits in arb_limits(),
        bolus in prop::option::of((arb_limits(), any::<bool>(), any::<bool>())),
        vtbi_ml in prop::option::of(arb_limits()),
        max_duration_min in prop::option::of(1u32..20_000),
        advisory in prop::option::of(arb_text(80)),
        high_alert in any::<bool>(),
    ) -> Entry {
        let same: Vec<AmountUnit> = AMOUNT_UNITS.iter().copied().filter(|a| a.dimension() == unit.dimension()).collect();
        let dose_amount = if pick == 0 { None } else { Some(same[pick % same.len()]) };
        Entry {
            advisory,
            bolus: bolus.map(|(l, mass, kg)| Bolus {
                hard_max: l.hard_max, hard_min: l.hard_min, soft_max: l.soft_max, soft_min: l.soft_min,
                unit: BolusUnit { amount: if mass { Some(unit) } else { None }, per_kg: kg },
            }),
            code,
            concentration: Concentration { amount, unit, volume_ml },
            dosing_unit: DoseUnit { amount: dose_amount, per_kg, time: if hour { TimeUnit::H } else { TimeUnit::Min } },
            // Unique per care area, so that no two entries are duplicates.
            drug: format!("{drug} #{i}"),
            hard_max: limits.hard_max,
            hard_min: limits.hard_min,
            high_alert,
            max_duration_min: max_duration_min.filter(|m| *m <= crate::model::MAX_DURATION_LIMIT_MIN),
            soft_max: limits.soft_max,
            soft_min: limits.soft_min,
            vtbi_ml,
        }
    }
}

fn arb_care_area(i: usize) -> impl Strategy<Value = CareArea> {
    (
        "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        arb_text(40),
        prop::option::of((arb_pos(), arb_pos())),
        0usize..6,
    )
        .prop_flat_map(move |(id, name, w, n)| {
            let entries: Vec<_> = (0..n).map(arb_entry).collect();
            (Just(id), Just(name), Just(w), entries)
        })
        .prop_map(move |(id, name, w, entries)| {
            let any_kg = entries.iter().any(Entry::is_weight_based);
            // A weight range whenever an entry needs one (else optional).
            let w = match (w, any_kg) {
                (Some((a, b)), _) => Some(WeightRange {
                    min: a.min(b),
                    max: a.max(b),
                }),
                (None, true) => Some(WeightRange {
                    min: Dec::ONE,
                    max: Dec::from_int(200),
                }),
                (None, false) => None,
            };
            CareArea {
                entries,
                id: format!("{id}-{i}"),
                name,
                weight_kg: w,
            }
        })
}

/// A valid library (checked by the property below).
pub(crate) fn arb_library() -> impl Strategy<Value = Library> {
    (1usize..5)
        .prop_flat_map(|n| {
            let areas: Vec<_> = (0..n).map(arb_care_area).collect();
            (
                areas,
                "[a-z0-9]{1,10}",
                arb_text(60),
                prop::option::of(arb_text(200)),
                1u32..,
            )
        })
        .prop_map(|(care_areas, id, name, description, version)| Library {
            care_areas,
            description: description.unwrap_or_default(),
            id,
            name,
            version,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// JSON → model → CSV → model → JSON is lossless, and canonical bytes
    /// are a fixed point.
    #[test]
    fn json_csv_json_round_trip(lib in arb_library()) {
        prop_assert!(lib.validate().is_ok(), "{:?}", lib.validate());
        let canon = crate::json::to_canonical_json(&lib);
        let from_json = crate::json::parse_library_json(&canon).unwrap();
        prop_assert_eq!(&from_json, &lib);
        let csv = crate::csv::write_library_csv(&from_json);
        let from_csv = crate::csv::read_library_csv(&csv).unwrap();
        prop_assert_eq!(&from_csv, &lib);
        prop_assert_eq!(crate::json::to_canonical_json(&from_csv), canon.clone());
        // The pretty form reads back to the same canonical bytes.
        let pretty = crate::json::to_pretty_json(&lib);
        prop_assert_eq!(crate::json::to_canonical_json(&crate::json::parse_library_json(pretty.as_bytes()).unwrap()), canon);
    }

    /// Diffing a library with itself finds nothing; with an edited copy it
    /// finds exactly the edit.
    #[test]
    fn diff_finds_exactly_the_edit(lib in arb_library(), new_max in arb_pos()) {
        prop_assert!(crate::diff::diff(&lib, &lib).is_empty());
        let mut other = lib.clone();
        if let Some((ci, e)) = other.care_areas.iter_mut().enumerate().find_map(|(i, c)| c.entries.first_mut().map(|e| (i, e))) {
            let old = e.hard_max.unwrap();
            prop_assume!(old != new_max);
            e.hard_max = Some(new_max);
            let d = crate::diff::diff(&lib, &other);
            prop_assert_eq!(d.care_areas.len(), 1);
            prop_assert_eq!(&d.care_areas[0].id, &lib.care_areas[ci].id);
            prop_assert_eq!(d.care_areas[0].changed.len(), 1);
            let f = &d.care_areas[0].changed[0].fields;
            prop_assert_eq!(f.len(), 1);
            prop_assert_eq!(f[0].field, "hard_max");
            prop_assert_eq!(&f[0].old, &old.to_string());
            prop_assert_eq!(&f[0].new, &new_max.to_string());
        }
    }
}
