//! The drug library model and its validation.
//!
//! A [`Library`] holds [`CareArea`]s (profiles such as Adult ICU or NICU);
//! each care area holds [`Entry`]s: one drug at one concentration with its
//! dosing unit and limits. Struct fields are declared in ASCII order of
//! their JSON names: the canonical JSON form ([`crate::json`]) writes them
//! in declaration order, so the canonical form has sorted keys.
//!
//! [`Library::validate`] returns every problem found, each with a path such
//! as `care_areas[adult-icu].entries[3].hard_max`, not just the first.

use crate::quantity::{Dec, Ratio};
use crate::units::{BolusUnit, Concentration, DoseUnit};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// Longest library or care-area id.
pub const MAX_ID_CHARS: usize = 64;
/// Longest library, care-area or drug name.
pub const MAX_NAME_CHARS: usize = 120;
/// Longest library description.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Longest advisory text of an entry.
pub const MAX_ADVISORY_CHARS: usize = 500;
/// Longest drug code (an RxNorm CUI is a number of up to 8 digits today).
pub const MAX_CODE_CHARS: usize = 12;
/// Most care areas in a library.
pub const MAX_CARE_AREAS: usize = 64;
/// Most entries in one care area.
pub const MAX_ENTRIES_PER_CARE_AREA: usize = 2000;
/// Longest maximum duration of an infusion, in minutes (14 days).
pub const MAX_DURATION_LIMIT_MIN: u32 = 14 * 24 * 60;

/// A drug library: what a pharmacist authors, a second pharmacist approves
/// and the pumps enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Library {
    /// The care areas (profiles), in display order.
    pub care_areas: Vec<CareArea>,
    /// Free text shown with the library (may be empty).
    pub description: String,
    /// Stable identifier of the library across versions (`[a-z0-9-]`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Version, strictly increasing with each publication (anti-rollback).
    pub version: u32,
}

/// A care area (profile): the pumps of one clinical unit use its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareArea {
    /// The drug entries, in display order.
    pub entries: Vec<Entry>,
    /// Identifier (`[a-z0-9-]`, e.g. `adult-icu`), unique in the library.
    pub id: String,
    /// Display name (e.g. "Adult ICU").
    pub name: String,
    /// Patients' weight range, required when any entry is weight-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_kg: Option<WeightRange>,
}

/// An inclusive weight range in kg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightRange {
    /// Heaviest accepted patient.
    pub max: Dec,
    /// Lightest accepted patient.
    pub min: Dec,
}

impl WeightRange {
    /// True when `w` lies in the range (bounds included).
    pub fn contains(&self, w: Dec) -> bool {
        self.min <= w && w <= self.max
    }
}

/// Minimum and maximum limits, each optional. A value below a soft minimum
/// or above a soft maximum needs a clinician's override reason; a value
/// beyond a hard limit is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSet {
    /// Hard maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_max: Option<Dec>,
    /// Hard minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_min: Option<Dec>,
    /// Soft maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_max: Option<Dec>,
    /// Soft minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_min: Option<Dec>,
}

impl LimitSet {
    /// The limits in increasing order with their names, for checks that
    /// walk them.
    pub fn ordered(&self) -> [(&'static str, Option<Dec>); 4] {
        [
            ("hard_min", self.hard_min),
            ("soft_min", self.soft_min),
            ("soft_max", self.soft_max),
            ("hard_max", self.hard_max),
        ]
    }

    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        self.ordered().iter().all(|(_, v)| v.is_none())
    }
}

/// Bolus (single extra dose) limits of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bolus {
    /// Hard maximum of one bolus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_max: Option<Dec>,
    /// Hard minimum of one bolus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_min: Option<Dec>,
    /// Soft maximum of one bolus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_max: Option<Dec>,
    /// Soft minimum of one bolus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_min: Option<Dec>,
    /// Unit of the bolus limits (e.g. `units/kg`, `mg`).
    pub unit: BolusUnit,
}

impl Bolus {
    /// The limits without the unit.
    pub fn limits(&self) -> LimitSet {
        LimitSet {
            hard_max: self.hard_max,
            hard_min: self.hard_min,
            soft_max: self.soft_max,
            soft_min: self.soft_min,
        }
    }
}

/// One drug at one concentration in a care area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Clinical advisory shown when the drug is selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advisory: Option<String>,
    /// Bolus limits, when a bolus may be given from this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bolus: Option<Bolus>,
    /// Drug code (an RxNorm CUI: digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The concentration of the bag or syringe.
    pub concentration: Concentration,
    /// The unit of the continuous dose and its limits.
    pub dosing_unit: DoseUnit,
    /// Generic drug name (e.g. "heparin").
    pub drug: String,
    /// Hard maximum of the continuous dose (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_max: Option<Dec>,
    /// Hard minimum of the continuous dose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_min: Option<Dec>,
    /// High-alert medication (ISMP): pumps may ask for a second check.
    pub high_alert: bool,
    /// Longest infusion, in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_min: Option<u32>,
    /// Soft maximum of the continuous dose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_max: Option<Dec>,
    /// Soft minimum of the continuous dose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_min: Option<Dec>,
    /// Volume-to-be-infused limits (mL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtbi_ml: Option<LimitSet>,
}

impl Entry {
    /// The continuous-dose limits.
    pub fn limits(&self) -> LimitSet {
        LimitSet {
            hard_max: self.hard_max,
            hard_min: self.hard_min,
            soft_max: self.soft_max,
            soft_min: self.soft_min,
        }
    }

    /// True when the continuous dose or the bolus is per kg of weight
    /// (derived from the units, never stated separately, so it cannot
    /// disagree with them).
    pub fn is_weight_based(&self) -> bool {
        self.dosing_unit.per_kg || self.bolus.is_some_and(|b| b.unit.per_kg)
    }

    /// What identifies the entry in its care area: the drug name (case
    /// insensitive) and the concentration's value.
    pub fn key(&self) -> Option<EntryKey> {
        Some(EntryKey {
            drug: self.drug.to_lowercase(),
            per_ml: self.concentration.per_ml_base().ok()?,
            dimension: self.concentration.unit.dimension(),
        })
    }

    /// A label for messages and diffs: `heparin 25000 units/250 mL`.
    pub fn label(&self) -> String {
        format!("{} {}", self.drug, self.concentration)
    }
}

/// The identity of an entry within a care area: two entries with equal keys
/// are duplicates (the same drug at the same concentration, however the
/// concentration is written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryKey {
    /// Lower-cased drug name.
    pub drug: String,
    /// Base units per mL.
    pub per_ml: Ratio,
    /// Dimension of the amount.
    pub dimension: crate::units::Dimension,
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: e.g. `care_areas[adult-icu].entries[3].hard_max`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of an invalid library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the library is not valid ({} problem(s)): {}", .0.len(), join(.0))]
pub struct ValidationErrors(pub Vec<Problem>);

fn join(p: &[Problem]) -> String {
    let mut s = p
        .iter()
        .take(20)
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if p.len() > 20 {
        s.push_str(&format!("; … and {} more", p.len() - 20));
    }
    s
}

/// True for a valid id: 1–64 of `[a-z0-9-]`, not starting or ending with `-`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Free text: not empty (unless allowed), no surrounding whitespace, no
    /// control characters, bounded.
    fn text(&mut self, path: &str, v: &str, max: usize, allow_empty: bool) {
        if v.is_empty() {
            if !allow_empty {
                self.push(path, "must not be empty");
            }
            return;
        }
        if v.trim() != v {
            self.push(path, "must not start or end with white space");
        }
        if v.chars().any(char::is_control) {
            self.push(
                path,
                "must not contain control characters (line breaks, tabs)",
            );
        }
        let n = v.chars().count();
        if n > max {
            self.push(
                path,
                format!("is {n} characters long; at most {max} are allowed"),
            );
        }
    }

    fn limits(&mut self, base: &str, l: &LimitSet, require_hard_max: bool) {
        let ordered = l.ordered();
        for (name, v) in ordered {
            if let Some(v) = v {
                if v.is_negative() {
                    self.push(format!("{base}{name}"), format!("{v} is negative"));
                }
            }
        }
        // Every pair must be in the order hard_min ≤ soft_min ≤ soft_max ≤ hard_max.
        for i in 0..ordered.len() {
            for j in i + 1..ordered.len() {
                if let ((a, Some(va)), (b, Some(vb))) = (ordered[i], ordered[j]) {
                    if va > vb {
                        let msg = match (a, b) {
                            ("soft_min", "hard_min") | ("hard_min", "soft_min") => {
                                format!("soft_min {vb} is below hard_min {va}")
                            }
                            ("soft_max", "hard_max") => {
                                format!("soft_max {va} is above hard_max {vb}")
                            }
                            ("soft_min", "hard_max") => {
                                format!("soft_min {va} is above hard_max {vb}")
                            }
                            ("hard_min", "soft_max") => {
                                format!("soft_max {vb} is below hard_min {va}")
                            }
                            _ => format!("{a} {va} is above {b} {vb}"),
                        };
                        // The soft limit is the one to fix when a soft and a
                        // hard limit disagree.
                        let at = if a.starts_with("soft") { a } else { b };
                        self.push(format!("{base}{at}"), msg);
                    }
                }
            }
        }
        match l.hard_max {
            None if require_hard_max => self.push(format!("{base}hard_max"), "is required"),
            Some(v) if !v.is_positive() && !v.is_negative() => {
                self.push(format!("{base}hard_max"), "must be above 0")
            }
            _ => {}
        }
    }
}

impl Library {
    /// Checks everything that makes a library clinically incoherent; returns
    /// every problem found.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Checker {
            problems: Vec::new(),
        };
        if !is_valid_id(&self.id) {
            c.push(
                "id",
                format!(
                    "{:?} is not a valid id (1–{MAX_ID_CHARS} of a-z, 0-9, '-')",
                    short(&self.id)
                ),
            );
        }
        c.text("name", &self.name, MAX_NAME_CHARS, false);
        c.text(
            "description",
            &self.description,
            MAX_DESCRIPTION_CHARS,
            true,
        );
        if self.version == 0 {
            c.push("version", "must be at least 1");
        }
        if self.care_areas.is_empty() {
            c.push("care_areas", "a library needs at least one care area");
        }
        if self.care_areas.len() > MAX_CARE_AREAS {
            c.push(
                "care_areas",
                format!(
                    "{} care areas; at most {MAX_CARE_AREAS} are allowed",
                    self.care_areas.len()
                ),
            );
        }
        let mut seen_ids: HashMap<&str, usize> = HashMap::new();
        for (i, ca) in self.care_areas.iter().enumerate() {
            let base = care_area_path(i, &ca.id);
            if !is_valid_id(&ca.id) {
                c.push(
                    format!("{base}.id"),
                    format!(
                        "{:?} is not a valid id (1–{MAX_ID_CHARS} of a-z, 0-9, '-')",
                        short(&ca.id)
                    ),
                );
            } else if let Some(first) = seen_ids.insert(&ca.id, i) {
                c.push(
                    format!("{base}.id"),
                    format!("duplicate care area id (also care area #{})", first + 1),
                );
            }
            c.text(&format!("{base}.name"), &ca.name, MAX_NAME_CHARS, false);
            if let Some(w) = ca.weight_kg {
                if !w.min.is_positive() {
                    c.push(format!("{base}.weight_kg.min"), "must be above 0 kg");
                }
                if w.min > w.max {
                    c.push(
                        format!("{base}.weight_kg.min"),
                        format!("min {} is above max {}", w.min, w.max),
                    );
                }
            }
            if ca.entries.len() > MAX_ENTRIES_PER_CARE_AREA {
                c.push(
                    format!("{base}.entries"),
                    format!(
                        "{} entries; at most {MAX_ENTRIES_PER_CARE_AREA} are allowed",
                        ca.entries.len()
                    ),
                );
            }
            let mut seen: HashMap<EntryKey, usize> = HashMap::new();
            for (j, e) in ca.entries.iter().enumerate() {
                let eb = format!("{base}.entries[{j}]");
                validate_entry(&mut c, &eb, e, ca, &base);
                if let Some(k) = e.key() {
                    if let Some(first) = seen.insert(k, j) {
                        c.push(
                            format!("{eb}.concentration"),
                            format!(
                                "duplicate of entries[{first}]: {} is already in this care area at this concentration",
                                short(&e.drug)
                            ),
                        );
                    }
                }
            }
        }
        if c.problems.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(c.problems))
        }
    }

    /// The care area with this id.
    pub fn care_area(&self, id: &str) -> Option<&CareArea> {
        self.care_areas.iter().find(|c| c.id == id)
    }

    /// The care area a pump set to `setting` uses: the one with that id, or
    /// else the one with that display name (ignoring case and surrounding
    /// space), since pumps and the inventory name units as people do
    /// ("Adult ICU") while libraries key them by id ("adult-icu").
    pub fn resolve_care_area(&self, setting: &str) -> Option<&CareArea> {
        let s = setting.trim();
        self.care_area(s).or_else(|| {
            self.care_areas
                .iter()
                .find(|c| c.name.trim().eq_ignore_ascii_case(s))
        })
    }

    /// Number of entries over all care areas.
    pub fn entry_count(&self) -> usize {
        self.care_areas.iter().map(|c| c.entries.len()).sum()
    }
}

/// `care_areas[<id>]`, or `care_areas[#<n>]` (1-based) when the id is not
/// usable in a path.
pub fn care_area_path(index: usize, id: &str) -> String {
    if is_valid_id(id) {
        format!("care_areas[{id}]")
    } else {
        format!("care_areas[#{}]", index + 1)
    }
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

fn validate_entry(c: &mut Checker, eb: &str, e: &Entry, ca: &CareArea, ca_path: &str) {
    c.text(&format!("{eb}.drug"), &e.drug, MAX_NAME_CHARS, false);
    if let Some(code) = &e.code {
        if code.is_empty()
            || code.len() > MAX_CODE_CHARS
            || !code.bytes().all(|b| b.is_ascii_digit())
        {
            c.push(
                format!("{eb}.code"),
                format!(
                    "{:?} is not an RxNorm CUI (1–{MAX_CODE_CHARS} digits); omit it if unknown",
                    short(code)
                ),
            );
        }
    }
    if let Some(a) = &e.advisory {
        c.text(&format!("{eb}.advisory"), a, MAX_ADVISORY_CHARS, false);
    }
    let conc = e.concentration;
    if !conc.amount.is_positive() {
        c.push(
            format!("{eb}.concentration.amount"),
            format!("{} must be above 0", conc.amount),
        );
    }
    if !conc.volume_ml.is_positive() {
        c.push(
            format!("{eb}.concentration.volume_ml"),
            format!("{} must be above 0", conc.volume_ml),
        );
    }
    if !e.dosing_unit.fits(conc.unit) {
        c.push(
            format!("{eb}.dosing_unit"),
            format!(
                "{} does not fit a concentration in {} (amounts of different kinds never convert)",
                e.dosing_unit, conc.unit
            ),
        );
    }
    c.limits(&format!("{eb}."), &e.limits(), true);
    if let Some(b) = &e.bolus {
        if !b.unit.fits(conc.unit) {
            c.push(
                format!("{eb}.bolus.unit"),
                format!("{} does not fit a concentration in {}", b.unit, conc.unit),
            );
        }
        c.limits(&format!("{eb}.bolus."), &b.limits(), true);
    }
    if let Some(v) = &e.vtbi_ml {
        c.limits(&format!("{eb}.vtbi_ml."), v, true);
    }
    if let Some(m) = e.max_duration_min {
        if m == 0 || m > MAX_DURATION_LIMIT_MIN {
            c.push(
                format!("{eb}.max_duration_min"),
                format!("{m} is not between 1 and {MAX_DURATION_LIMIT_MIN} minutes"),
            );
        }
    }
    if e.is_weight_based() && ca.weight_kg.is_none() {
        let at = if e.dosing_unit.per_kg {
            "dosing_unit"
        } else {
            "bolus.unit"
        };
        c.push(
            format!("{eb}.{at}"),
            format!(
                "weight-based dosing needs a patient weight range on the care area ({ca_path}.weight_kg)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Dec {
        s.parse().unwrap()
    }

    pub(crate) fn entry(drug: &str, conc: &str, unit: &str) -> Entry {
        Entry {
            advisory: None,
            bolus: None,
            code: None,
            concentration: conc.parse().unwrap(),
            dosing_unit: unit.parse().unwrap(),
            drug: drug.into(),
            hard_max: Some(d("100")),
            hard_min: None,
            high_alert: false,
            max_duration_min: None,
            soft_max: Some(d("50")),
            soft_min: Some(d("1")),
            vtbi_ml: None,
        }
    }

    fn lib(entries: Vec<Entry>) -> Library {
        Library {
            care_areas: vec![CareArea {
                entries,
                id: "adult-icu".into(),
                name: "Adult ICU".into(),
                weight_kg: None,
            }],
            description: String::new(),
            id: "test".into(),
            name: "Test".into(),
            version: 1,
        }
    }

    fn paths(l: &Library) -> Vec<String> {
        match l.validate() {
            Ok(()) => vec![],
            Err(e) => e.0.iter().map(|p| p.path.clone()).collect(),
        }
    }

    #[test]
    fn a_coherent_library_validates() {
        assert_eq!(
            paths(&lib(vec![entry(
                "heparin",
                "25000 units/250 mL",
                "units/h"
            )])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut bad = entry("norepinephrine", "4 mg/250 mL", "units/h");
        bad.soft_max = Some(d("200"));
        bad.hard_min = Some(d("5"));
        let mut noweight = entry("propofol", "10 mg/mL", "mcg/kg/min");
        noweight.hard_max = None;
        let mut zero = entry("", "0 mg/0 mL", "mg/h");
        zero.code = Some("RX1".into());
        let dup1 = entry("Heparin", "25000 units/250 mL", "units/h");
        let dup2 = entry("heparin", "100 units/mL", "units/h");
        let mut l = lib(vec![bad, noweight, zero, dup1, dup2]);
        l.care_areas.push(l.care_areas[0].clone());
        l.care_areas[1].entries.clear();
        l.name = " x".into();
        let p = paths(&l);
        let want = [
            "name",
            "care_areas[adult-icu].entries[0].dosing_unit",
            "care_areas[adult-icu].entries[0].soft_max",
            "care_areas[adult-icu].entries[0].soft_min",
            "care_areas[adult-icu].entries[1].hard_max",
            "care_areas[adult-icu].entries[1].dosing_unit",
            "care_areas[adult-icu].entries[2].drug",
            "care_areas[adult-icu].entries[2].code",
            "care_areas[adult-icu].entries[2].concentration.amount",
            "care_areas[adult-icu].entries[2].concentration.volume_ml",
            "care_areas[adult-icu].entries[4].concentration",
            "care_areas[adult-icu].id",
        ];
        for w in want {
            assert!(p.contains(&w.to_string()), "missing {w} in {p:#?}");
        }
        let err = l.validate().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("soft_max 200 is above hard_max 100"),
            "{text}"
        );
        assert!(
            text.contains("units/h does not fit a concentration in mg"),
            "{text}"
        );
        assert!(text.contains("duplicate care area id"), "{text}");
        assert!(
            text.contains("weight-based dosing needs a patient weight range"),
            "{text}"
        );
    }

    #[test]
    fn limit_order_is_checked_pairwise() {
        let mut e = entry("x", "1 mg/mL", "mg/h");
        e.soft_min = Some(d("60"));
        let p = paths(&lib(vec![e]));
        assert_eq!(
            p,
            vec!["care_areas[adult-icu].entries[0].soft_min".to_string()]
        );
        let mut e = entry("x", "1 mg/mL", "mg/h");
        e.hard_min = Some(d("2"));
        e.soft_min = Some(d("1"));
        let err = lib(vec![e]).validate().unwrap_err();
        assert!(
            err.to_string().contains("soft_min 1 is below hard_min 2"),
            "{err}"
        );
        let mut e = entry("x", "1 mg/mL", "mg/h");
        e.hard_max = Some(Dec::ZERO);
        e.soft_max = None;
        e.soft_min = None;
        assert_eq!(
            paths(&lib(vec![e])),
            vec!["care_areas[adult-icu].entries[0].hard_max".to_string()]
        );
        let mut e = entry("x", "1 mg/mL", "mg/h");
        e.vtbi_ml = Some(LimitSet {
            soft_max: Some(d("5")),
            ..Default::default()
        });
        assert_eq!(
            paths(&lib(vec![e])),
            vec!["care_areas[adult-icu].entries[0].vtbi_ml.hard_max".to_string()]
        );
    }

    #[test]
    fn weight_range_and_ids() {
        let mut l = lib(vec![entry("propofol", "10 mg/mL", "mcg/kg/min")]);
        l.care_areas[0].weight_kg = Some(WeightRange {
            min: d("40"),
            max: d("30"),
        });
        l.id = "Bad Id".into();
        l.version = 0;
        let p = paths(&l);
        assert_eq!(
            p,
            vec!["id", "version", "care_areas[adult-icu].weight_kg.min"]
        );
        l.care_areas[0].weight_kg = Some(WeightRange {
            min: d("3"),
            max: d("300"),
        });
        l.id = "ok".into();
        l.version = 2;
        assert!(l.validate().is_ok());
        assert!(!is_valid_id("-a") && !is_valid_id("") && is_valid_id("nicu-2"));
    }
}
