//! The sample library shipped with the crate (`data/sample-library.json`).
//!
//! **SAMPLE DATA – NOT FOR CLINICAL USE.** Its concentrations and dosing
//! units follow publicly documented typical standard concentrations; its
//! limits are plausible illustrative values that no pharmacist has
//! reviewed (see the crate's README). It exists for demonstrations, tests,
//! the simulator and benchmarks.

use crate::json::parse_library_json;
use crate::model::Library;

/// The sample library's JSON text, as shipped.
pub const SAMPLE_LIBRARY_JSON: &str = include_str!("../data/sample-library.json");

/// The sample library (8 care areas, 78 entries; it validates, which a test
/// checks).
pub fn sample_library() -> Library {
    // The file is part of the crate, not outside input: the tests below
    // parse and validate it, so this cannot fail in a built crate.
    parse_library_json(SAMPLE_LIBRARY_JSON.as_bytes())
        .expect("the bundled sample library parses (checked by its test)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::{read_library_csv, write_library_csv};
    use crate::json::to_canonical_json;

    #[test]
    fn sample_is_marked_large_enough_and_valid() {
        let lib = sample_library();
        lib.validate().unwrap();
        assert!(lib.name.contains("SAMPLE DATA – NOT FOR CLINICAL USE"));
        assert!(lib
            .description
            .starts_with("SAMPLE DATA – NOT FOR CLINICAL USE"));
        assert!(lib.care_areas.len() >= 6, "{}", lib.care_areas.len());
        assert!(lib.entry_count() >= 45, "{}", lib.entry_count());
        let ids: Vec<&str> = lib.care_areas.iter().map(|c| c.id.as_str()).collect();
        for want in [
            "adult-icu",
            "med-surg",
            "oncology",
            "pediatrics",
            "nicu",
            "ed",
            "anesthesia",
        ] {
            assert!(ids.contains(&want), "{want}");
        }
    }

    #[test]
    fn sample_has_the_standard_concentrations() {
        let lib = sample_library();
        let icu = lib.care_area("adult-icu").unwrap();
        let find = |drug: &str| icu.entries.iter().find(|e| e.drug == drug).unwrap();
        let e = find("heparin");
        assert_eq!(
            (e.concentration.to_string(), e.dosing_unit.to_string()),
            ("25000 units/250 mL".into(), "units/kg/h".into())
        );
        let e = find("norepinephrine");
        assert_eq!(
            (e.concentration.to_string(), e.dosing_unit.to_string()),
            ("4 mg/250 mL".into(), "mcg/min".into())
        );
        let e = find("propofol");
        assert_eq!(
            (e.concentration.to_string(), e.dosing_unit.to_string()),
            ("10 mg/mL".into(), "mcg/kg/min".into())
        );
        let e = find("insulin regular");
        assert_eq!(
            (e.concentration.to_string(), e.dosing_unit.to_string()),
            ("100 units/100 mL".into(), "units/h".into())
        );
        let e = find("potassium chloride");
        assert_eq!(
            (e.concentration.to_string(), e.dosing_unit.to_string()),
            ("20 mmol/100 mL".into(), "mmol/h".into())
        );
        let e = find("vasopressin");
        assert_eq!(e.dosing_unit.to_string(), "units/min");
        let ld = lib.care_area("labor-delivery").unwrap();
        assert_eq!(ld.entries[0].dosing_unit.to_string(), "milliunits/min");
    }

    #[test]
    fn a_care_area_is_found_by_id_or_by_the_name_people_use() {
        let lib = sample_library();
        let id = |s: &str| lib.resolve_care_area(s).map(|c| c.id.as_str());
        assert_eq!(id("adult-icu"), Some("adult-icu"));
        assert_eq!(id("Adult ICU"), Some("adult-icu"));
        assert_eq!(id("  adult icu "), Some("adult-icu"));
        assert_eq!(id("Anesthesia / OR"), Some("anesthesia"));
        assert_eq!(id("Labor & Delivery"), Some("labor-delivery"));
        assert_eq!(id("Burn Unit"), None);
        assert_eq!(id(""), None);
    }

    #[test]
    fn sample_round_trips_through_csv_and_canonical_json() {
        let lib = sample_library();
        let canon = to_canonical_json(&lib);
        let csv = write_library_csv(&lib);
        let back = read_library_csv(&csv).unwrap();
        assert_eq!(back, lib);
        assert_eq!(to_canonical_json(&back), canon);
    }
}
