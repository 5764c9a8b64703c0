//! The dose-check engine the pump runs for every programmed infusion.
//!
//! [`DoseChecker::new`] compiles a valid library once: per care area a
//! hash map from drug name to its concentrations, and per entry the factor
//! that turns a rate (mL/h) into the entry's dose unit. A check is then a
//! lookup and a few exact integer comparisons.
//!
//! Order of the decision, for a drug found in the care area:
//!
//! 1. the programming must be coherent (units that fit the concentration,
//!    a weight when the dose or the entry is weight-based, inside the care
//!    area's weight range, positive values) — otherwise [`CheckError`];
//! 2. any hard limit crossed (continuous dose, bolus, VTBI) →
//!    [`CheckOutcome::HardLimitBlocked`]; no override reason changes this;
//! 3. any soft limit crossed (including the entry's maximum duration, when
//!    a VTBI gives the duration) → [`CheckOutcome::SoftLimitOverride`] when
//!    the clinician gave a non-blank reason, otherwise
//!    [`CheckOutcome::SoftLimitNeedsOverride`];
//! 4. otherwise [`CheckOutcome::WithinLimits`].
//!
//! A drug not in the care area (or no drug selected) is a
//! [`CheckOutcome::BasicInfusion`], programmed in mL/h only, allowed and
//! flagged as real pumps do. A drug that is in the care area at a
//! concentration it does not list is refused
//! ([`CheckError::ConcentrationNotListed`]), never run without its limits.
//!
//! Speed: the lookup compares the programmed concentration with the
//! entries' as written first (the pump offers the library's own) and by
//! value only otherwise; doses are compared as unreduced exact fractions
//! ([`Frac`]). In the common case (the library's spelling of the drug and
//! concentration, no limit crossed) a check allocates nothing and computes
//! no gcd.
//!
//! Limits are inclusive: a dose equal to a limit is within it.

use crate::model::{CareArea, Entry, Library, LimitSet, ValidationErrors, WeightRange};
use crate::quantity::{Dec, Frac, QuantityError, Ratio};
use crate::units::{
    bolus_per_ml, dose_per_rate, BolusUnit, Concentration, ConversionError, Dimension, DoseUnit,
};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

/// Longest override reason kept (the rest is cut).
pub const MAX_OVERRIDE_REASON_CHARS: usize = 200;

/// What the clinician programmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Programming<'a> {
    /// The drug and concentration selected, or `None` for a basic infusion.
    pub drug: Option<DrugSelection<'a>>,
    /// The continuous dose or rate.
    pub dose: DoseInput,
    /// Patient weight in kg (needed for weight-based dosing).
    pub weight_kg: Option<Dec>,
    /// A bolus, if one is programmed.
    pub bolus: Option<BolusInput>,
    /// Volume to be infused (mL), if set.
    pub vtbi_ml: Option<Dec>,
    /// The clinician's reason for going beyond a soft limit, if given.
    pub override_reason: Option<&'a str>,
}

/// A drug chosen from the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrugSelection<'a> {
    /// Drug name (matched without regard to case).
    pub drug: &'a str,
    /// Concentration (matched by value: `4 mg/250 mL` is `16 mcg/mL`).
    pub concentration: Concentration,
}

/// The continuous part of a programming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoseInput {
    /// A rate in mL/h.
    Rate {
        /// mL per hour.
        ml_per_h: Dec,
    },
    /// A dose in a dosing unit.
    Dose {
        /// The amount.
        value: Dec,
        /// Its unit.
        unit: DoseUnit,
    },
}

/// A programmed bolus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BolusInput {
    /// The amount.
    pub amount: Dec,
    /// Its unit.
    pub unit: BolusUnit,
}

/// Which value a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The continuous dose, in the entry's dosing unit.
    Continuous,
    /// A bolus, in the entry's bolus unit.
    Bolus,
    /// The volume to be infused, in mL.
    Vtbi,
    /// The infusion's duration (VTBI ÷ rate), in minutes.
    Duration,
}

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// Soft minimum.
    SoftMin,
    /// Soft maximum.
    SoftMax,
    /// Hard minimum.
    HardMin,
    /// Hard maximum.
    HardMax,
}

/// A limit that was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// What it applies to.
    pub scope: Scope,
    /// Which limit.
    pub kind: LimitKind,
    /// Its value (in the scope's unit).
    pub bound: Dec,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            Scope::Continuous => "dose",
            Scope::Bolus => "bolus",
            Scope::Vtbi => "VTBI (mL)",
            Scope::Duration => "duration (min)",
        };
        let kind = match self.kind {
            LimitKind::SoftMin => "soft minimum",
            LimitKind::SoftMax => "soft maximum",
            LimitKind::HardMin => "hard minimum",
            LimitKind::HardMax => "hard maximum",
        };
        write!(f, "{scope} {kind} {}", self.bound)
    }
}

/// The decision for one programming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Every value is within the soft limits.
    WithinLimits,
    /// A soft limit is crossed and the clinician gave this reason: allowed.
    SoftLimitOverride {
        /// The reason (trimmed, at most [`MAX_OVERRIDE_REASON_CHARS`]).
        reason: String,
        /// The first soft limit crossed.
        limit: Limit,
        /// The programmed value in the limit's unit.
        value: Ratio,
    },
    /// A soft limit is crossed and no reason was given: not allowed yet.
    SoftLimitNeedsOverride {
        /// The first soft limit crossed.
        limit: Limit,
        /// The programmed value in the limit's unit.
        value: Ratio,
    },
    /// A hard limit is crossed: refused, whatever the reason.
    HardLimitBlocked {
        /// The first hard limit crossed.
        limit: Limit,
        /// The programmed value in the limit's unit.
        value: Ratio,
    },
    /// The drug is not in the care area's library (or none was chosen):
    /// allowed without dose limits, and flagged.
    BasicInfusion,
}

impl CheckOutcome {
    /// True when the pump may start the infusion.
    pub fn allows_start(&self) -> bool {
        matches!(
            self,
            CheckOutcome::WithinLimits
                | CheckOutcome::SoftLimitOverride { .. }
                | CheckOutcome::BasicInfusion
        )
    }
}

/// An incoherent programming (nothing was checked against limits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The pump's care area is not in the library.
    #[error("care area {0:?} is not in the installed library")]
    UnknownCareArea(String),
    /// The dose's unit does not fit the entry (or its concentration).
    #[error("dosing unit {programmed} cannot be used for this entry (dosed in {entry}, concentration in {conc})")]
    UnitMismatch {
        /// What was programmed.
        programmed: DoseUnit,
        /// The entry's dosing unit.
        entry: DoseUnit,
        /// The concentration's amount unit.
        conc: crate::units::AmountUnit,
    },
    /// The bolus unit does not fit the entry.
    #[error("bolus unit {programmed} cannot be used for this entry (bolus in {entry})")]
    BolusUnitMismatch {
        /// What was programmed.
        programmed: BolusUnit,
        /// The entry's bolus unit.
        entry: BolusUnit,
    },
    /// A bolus for an entry without bolus limits.
    #[error("this entry does not allow a bolus")]
    BolusNotAllowed,
    /// Weight-based dosing without a weight.
    #[error("a patient weight is required for weight-based dosing")]
    MissingWeight,
    /// The weight is outside the care area's range.
    #[error("patient weight {weight} kg is outside the care area's range {min}–{max} kg")]
    WeightOutOfRange {
        /// The weight programmed.
        weight: Dec,
        /// The care area's minimum.
        min: Dec,
        /// The care area's maximum.
        max: Dec,
    },
    /// Zero or negative weight, dose, rate, bolus or VTBI.
    #[error("the {0} must be above zero")]
    NotPositive(&'static str),
    /// The drug is in the care area, but not at this concentration. A
    /// pump offers only listed concentrations; a mismatch (for example from
    /// auto-programming) is refused rather than silently run without
    /// limits: the clinician picks a listed concentration, or deliberately
    /// programs a basic infusion without selecting the drug.
    #[error("{drug} is in this care area's library, but not at {concentration}: choose a listed concentration, or program a basic infusion without selecting a drug")]
    ConcentrationNotListed {
        /// The drug as programmed (shortened).
        drug: String,
        /// The concentration as programmed.
        concentration: String,
    },
    /// The units cannot be converted into each other.
    #[error("{0}")]
    IncompatibleUnits(String),
    /// A basic infusion (drug not in the library) is programmed in mL/h only.
    #[error("a drug that is not in the library can only be programmed as a rate in mL/h (basic infusion)")]
    BasicInfusionNeedsRate,
    /// The values are too large to compute exactly.
    #[error(transparent)]
    Arithmetic(#[from] QuantityError),
}

impl From<ConversionError> for CheckError {
    fn from(e: ConversionError) -> Self {
        match e {
            ConversionError::MissingWeight(_) => CheckError::MissingWeight,
            ConversionError::NonPositiveWeight => CheckError::NotPositive("weight"),
            ConversionError::NonPositiveConcentration => CheckError::NotPositive("concentration"),
            ConversionError::Quantity(q) => CheckError::Arithmetic(q),
            e @ ConversionError::IncompatibleUnits { .. } => {
                CheckError::IncompatibleUnits(e.to_string())
            }
        }
    }
}

/// What a drug and concentration are in a care area.
enum Lookup {
    Found(usize),
    /// The drug is not in the care area: a basic infusion.
    DrugNotListed,
    /// The drug is, but not at this concentration: refused.
    ConcentrationNotListed,
}

/// One compiled entry.
#[derive(Debug, Clone)]
struct Compiled {
    entry: Entry,
    limits: LimitSet,
    bolus_limits: Option<LimitSet>,
    /// Dose per mL/h without the weight division (when weight-based).
    k_no_weight: Ratio,
    /// Per-mL in base units, for matching a programmed concentration.
    per_ml: Ratio,
    dimension: Dimension,
    max_duration: Option<Dec>,
}

/// The compiled entries of one care area.
#[derive(Debug, Clone)]
pub struct AreaChecker {
    id: String,
    weight: Option<WeightRange>,
    /// Lower-cased drug name → indices into `entries`.
    by_drug: HashMap<String, Vec<usize>>,
    entries: Vec<Compiled>,
}

/// The dose-check engine for one installed library.
#[derive(Debug, Clone)]
pub struct DoseChecker {
    areas: Vec<AreaChecker>,
    by_id: HashMap<String, usize>,
}

impl DoseChecker {
    /// Compiles a library; refuses one that does not validate (the pump
    /// only ever installs valid libraries, and the engine relies on it:
    /// soft limits inside hard ones, weight ranges where needed).
    pub fn new(lib: &Library) -> Result<DoseChecker, ValidationErrors> {
        lib.validate()?;
        let mut areas = Vec::with_capacity(lib.care_areas.len());
        let mut by_id = HashMap::new();
        for ca in &lib.care_areas {
            by_id.insert(ca.id.clone(), areas.len());
            areas.push(AreaChecker::compile(ca).map_err(|e| {
                ValidationErrors(vec![crate::model::Problem {
                    path: format!("care_areas[{}]", ca.id),
                    message: e.to_string(),
                }])
            })?);
        }
        Ok(DoseChecker { areas, by_id })
    }

    /// The compiled care area (a pump keeps this for its own care area).
    pub fn care_area(&self, id: &str) -> Option<&AreaChecker> {
        self.by_id.get(id).map(|&i| &self.areas[i])
    }

    /// Checks a programming for the pump's care area.
    pub fn check(&self, care_area: &str, p: &Programming) -> Result<CheckOutcome, CheckError> {
        self.care_area(care_area)
            .ok_or_else(|| CheckError::UnknownCareArea(care_area.chars().take(64).collect()))?
            .check(p)
    }
}

/// Compares a programmed value with a limit without overflow.
trait CmpDec: Copy {
    fn cmp_dec(self, d: Dec) -> Ordering;
    fn to_frac(self) -> Frac;
}

impl CmpDec for Dec {
    fn cmp_dec(self, d: Dec) -> Ordering {
        self.cmp(&d)
    }
    fn to_frac(self) -> Frac {
        Frac::from(self)
    }
}

impl CmpDec for Frac {
    fn cmp_dec(self, d: Dec) -> Ordering {
        Frac::cmp_dec(self, d)
    }
    fn to_frac(self) -> Frac {
        self
    }
}

/// The hard and the soft limit a value crosses, if any.
fn classify<V: CmpDec>(v: V, l: &LimitSet, scope: Scope) -> (Option<Limit>, Option<Limit>) {
    let lim = |kind, bound| Some(Limit { scope, kind, bound });
    let hard = match (l.hard_max, l.hard_min) {
        (Some(m), _) if v.cmp_dec(m) == Ordering::Greater => lim(LimitKind::HardMax, m),
        (_, Some(m)) if v.cmp_dec(m) == Ordering::Less => lim(LimitKind::HardMin, m),
        _ => None,
    };
    let soft = match (l.soft_max, l.soft_min) {
        (Some(m), _) if v.cmp_dec(m) == Ordering::Greater => lim(LimitKind::SoftMax, m),
        (_, Some(m)) if v.cmp_dec(m) == Ordering::Less => lim(LimitKind::SoftMin, m),
        _ => None,
    };
    (hard, soft)
}

/// What has been found so far: the first hard and the first soft limit.
#[derive(Default)]
struct Findings {
    hard: Option<(Limit, Frac)>,
    soft: Option<(Limit, Frac)>,
}

impl Findings {
    fn add<V: CmpDec>(&mut self, v: V, l: &LimitSet, scope: Scope) {
        let (h, s) = classify(v, l, scope);
        if self.hard.is_none() {
            self.hard = h.map(|h| (h, v.to_frac()));
        }
        if self.soft.is_none() {
            self.soft = s.map(|s| (s, v.to_frac()));
        }
    }
}

impl AreaChecker {
    fn compile(ca: &CareArea) -> Result<AreaChecker, ConversionError> {
        let mut by_drug: HashMap<String, Vec<usize>> = HashMap::new();
        let mut entries = Vec::with_capacity(ca.entries.len());
        for e in &ca.entries {
            let unit = DoseUnit {
                per_kg: false,
                ..e.dosing_unit
            };
            let k_no_weight = dose_per_rate(unit, &e.concentration, None)?;
            by_drug
                .entry(e.drug.to_lowercase())
                .or_default()
                .push(entries.len());
            entries.push(Compiled {
                entry: e.clone(),
                limits: e.limits(),
                bolus_limits: e.bolus.map(|b| b.limits()),
                k_no_weight,
                per_ml: e.concentration.per_ml_base()?,
                dimension: e.concentration.unit.dimension(),
                max_duration: e.max_duration_min.map(|m| Dec::from_int(i64::from(m))),
            });
        }
        Ok(AreaChecker {
            id: ca.id.clone(),
            weight: ca.weight_kg,
            by_drug,
            entries,
        })
    }

    /// The care area's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The entry a pump shows for this drug and concentration, if any.
    pub fn find(&self, drug: &str, conc: &Concentration) -> Option<&Entry> {
        match self.lookup(drug, conc) {
            Lookup::Found(i) => Some(&self.entries[i].entry),
            Lookup::DrugNotListed | Lookup::ConcentrationNotListed => None,
        }
    }

    fn lookup(&self, drug: &str, conc: &Concentration) -> Lookup {
        // Names in the index are lower case; most programmings use the
        // library's own spelling, so avoid allocating when possible.
        let list = if drug.chars().any(char::is_uppercase) {
            self.by_drug.get(&drug.to_lowercase())
        } else {
            self.by_drug.get(drug)
        };
        let Some(list) = list else {
            return Lookup::DrugNotListed;
        };
        // As written first (no arithmetic), then by value.
        if let Some(&i) = list
            .iter()
            .find(|&&i| self.entries[i].entry.concentration == *conc)
        {
            return Lookup::Found(i);
        }
        let dim = conc.unit.dimension();
        let Ok(per_ml) = conc.per_ml_base() else {
            return Lookup::ConcentrationNotListed;
        };
        list.iter()
            .copied()
            .find(|&i| self.entries[i].dimension == dim && self.entries[i].per_ml == per_ml)
            .map_or(Lookup::ConcentrationNotListed, Lookup::Found)
    }

    /// Checks one programming (see the module documentation).
    pub fn check(&self, p: &Programming) -> Result<CheckOutcome, CheckError> {
        let found = p.drug.map(|d| (d, self.lookup(d.drug, &d.concentration)));
        let i = match found {
            Some((_, Lookup::Found(i))) => i,
            Some((d, Lookup::ConcentrationNotListed)) => {
                return Err(CheckError::ConcentrationNotListed {
                    drug: d.drug.chars().take(64).collect(),
                    concentration: d.concentration.to_string(),
                })
            }
            None | Some((_, Lookup::DrugNotListed)) => {
                return match p.dose {
                    DoseInput::Rate { ml_per_h } if ml_per_h.is_positive() => {
                        Ok(CheckOutcome::BasicInfusion)
                    }
                    DoseInput::Rate { .. } => Err(CheckError::NotPositive("rate")),
                    DoseInput::Dose { .. } => Err(CheckError::BasicInfusionNeedsRate),
                }
            }
        };
        let c = &self.entries[i];
        let e = &c.entry;
        let conc = &e.concentration;

        // Weight: needed when the entry or the programmed units use it.
        let programmed_per_kg = matches!(p.dose, DoseInput::Dose { unit, .. } if unit.per_kg)
            || p.bolus.is_some_and(|b| b.unit.per_kg);
        let needs_weight = e.is_weight_based() || programmed_per_kg;
        let weight = if needs_weight {
            let w = p.weight_kg.ok_or(CheckError::MissingWeight)?;
            if !w.is_positive() {
                return Err(CheckError::NotPositive("weight"));
            }
            if let Some(r) = self.weight {
                if !r.contains(w) {
                    return Err(CheckError::WeightOutOfRange {
                        weight: w,
                        min: r.min,
                        max: r.max,
                    });
                }
            }
            Some(w)
        } else {
            None
        };

        // The rate-to-dose factor for this patient.
        let k = match (e.dosing_unit.per_kg, weight) {
            (true, Some(w)) => Frac::from(c.k_no_weight).checked_div(Frac::from(w))?,
            (true, None) => return Err(CheckError::MissingWeight),
            (false, _) => Frac::from(c.k_no_weight),
        };

        let mut f = Findings::default();
        // The continuous dose, in the entry's unit; also the rate, when a
        // duration is to be checked.
        let rate: Option<Frac>;
        match p.dose {
            DoseInput::Dose { value, unit } => {
                if !value.is_positive() {
                    return Err(CheckError::NotPositive("dose"));
                }
                if unit == e.dosing_unit {
                    f.add(value, &c.limits, Scope::Continuous);
                    rate = None;
                } else {
                    if !unit.fits(conc.unit) {
                        return Err(CheckError::UnitMismatch {
                            programmed: unit,
                            entry: e.dosing_unit,
                            conc: conc.unit,
                        });
                    }
                    let r = Frac::from(value)
                        .checked_div(Frac::from(dose_per_rate(unit, conc, weight)?))?;
                    f.add(r.checked_mul(k)?, &c.limits, Scope::Continuous);
                    rate = Some(r);
                }
            }
            DoseInput::Rate { ml_per_h } => {
                if !ml_per_h.is_positive() {
                    return Err(CheckError::NotPositive("rate"));
                }
                let r = Frac::from(ml_per_h);
                f.add(r.checked_mul(k)?, &c.limits, Scope::Continuous);
                rate = Some(r);
            }
        }

        if let Some(b) = p.bolus {
            let (Some(bl), Some(eb)) = (&c.bolus_limits, &e.bolus) else {
                return Err(CheckError::BolusNotAllowed);
            };
            if !b.amount.is_positive() {
                return Err(CheckError::NotPositive("bolus"));
            }
            if b.unit == eb.unit {
                f.add(b.amount, bl, Scope::Bolus);
            } else {
                if !b.unit.fits(conc.unit) {
                    return Err(CheckError::BolusUnitMismatch {
                        programmed: b.unit,
                        entry: eb.unit,
                    });
                }
                let ml = Frac::from(b.amount)
                    .checked_div(Frac::from(bolus_per_ml(b.unit, conc, weight)?))?;
                f.add(
                    ml.checked_mul(Frac::from(bolus_per_ml(eb.unit, conc, weight)?))?,
                    bl,
                    Scope::Bolus,
                );
            }
        }

        if let Some(v) = p.vtbi_ml {
            if !v.is_positive() {
                return Err(CheckError::NotPositive("VTBI"));
            }
            if let Some(vl) = &e.vtbi_ml {
                f.add(v, vl, Scope::Vtbi);
            }
            if let Some(max) = c.max_duration {
                let rate = match rate {
                    Some(r) => r,
                    None => match p.dose {
                        DoseInput::Dose { value, .. } => Frac::from(value).checked_div(k)?,
                        DoseInput::Rate { ml_per_h } => Frac::from(ml_per_h),
                    },
                };
                // minutes = VTBI / rate × 60; over the maximum is a soft limit.
                let minutes = Frac::from(v)
                    .checked_div(rate)?
                    .checked_mul(Frac::from(Dec::from_int(60)))?;
                let dl = LimitSet {
                    soft_max: Some(max),
                    ..LimitSet::default()
                };
                f.add(minutes, &dl, Scope::Duration);
            }
        }

        Ok(match (f.hard, f.soft) {
            (Some((limit, value)), _) => CheckOutcome::HardLimitBlocked {
                limit,
                value: value.to_ratio()?,
            },
            (None, Some((limit, value))) => {
                let value = value.to_ratio()?;
                match p.override_reason.map(str::trim).filter(|r| !r.is_empty()) {
                    Some(r) => CheckOutcome::SoftLimitOverride {
                        // Kept for reports and events: bounded, one line.
                        reason: r
                            .chars()
                            .filter(|c| !c.is_control())
                            .take(MAX_OVERRIDE_REASON_CHARS)
                            .collect(),
                        limit,
                        value,
                    },
                    None => CheckOutcome::SoftLimitNeedsOverride { limit, value },
                }
            }
            (None, None) => CheckOutcome::WithinLimits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::sample_library;
    use proptest::prelude::*;

    fn d(s: &str) -> Dec {
        s.parse().unwrap()
    }

    fn prog<'a>(drug: &'a str, conc: &str, dose: DoseInput) -> Programming<'a> {
        Programming {
            drug: Some(DrugSelection {
                drug,
                concentration: conc.parse().unwrap(),
            }),
            dose,
            weight_kg: None,
            bolus: None,
            vtbi_ml: None,
            override_reason: None,
        }
    }

    fn dose(v: &str, unit: &str) -> DoseInput {
        DoseInput::Dose {
            value: d(v),
            unit: unit.parse().unwrap(),
        }
    }

    fn rate(v: &str) -> DoseInput {
        DoseInput::Rate { ml_per_h: d(v) }
    }

    fn checker() -> DoseChecker {
        DoseChecker::new(&sample_library()).unwrap()
    }

    #[test]
    fn outcomes_for_norepinephrine_in_adult_icu() {
        let c = checker();
        let ck = |p: &Programming| c.check("adult-icu", p);
        // 4 mg/250 mL, mcg/min: soft 1–30, hard max 80.
        let ne = |v| prog("norepinephrine", "4 mg/250 mL", dose(v, "mcg/min"));
        assert_eq!(ck(&ne("8")), Ok(CheckOutcome::WithinLimits));
        assert_eq!(
            ck(&ne("30")),
            Ok(CheckOutcome::WithinLimits),
            "limits are inclusive"
        );
        let r = ck(&ne("40")).unwrap();
        assert_eq!(
            r,
            CheckOutcome::SoftLimitNeedsOverride {
                limit: Limit {
                    scope: Scope::Continuous,
                    kind: LimitKind::SoftMax,
                    bound: d("30")
                },
                value: Ratio::from_int(40)
            }
        );
        assert!(!r.allows_start());
        let mut p = ne("40");
        p.override_reason = Some("  septic shock, per intensivist  ");
        let r = ck(&p).unwrap();
        assert!(
            matches!(&r, CheckOutcome::SoftLimitOverride { reason, .. } if reason == "septic shock, per intensivist")
        );
        assert!(r.allows_start());
        p.override_reason = Some("line one\nline two\t!");
        assert!(
            matches!(ck(&p).unwrap(), CheckOutcome::SoftLimitOverride { reason, .. } if reason == "line oneline two!")
        );
        p.override_reason = Some("   ");
        assert!(matches!(
            ck(&p).unwrap(),
            CheckOutcome::SoftLimitNeedsOverride { .. }
        ));
        let mut p = ne("81");
        p.override_reason = Some("really needed");
        assert!(matches!(
            ck(&p).unwrap(),
            CheckOutcome::HardLimitBlocked {
                limit: Limit {
                    kind: LimitKind::HardMax,
                    ..
                },
                ..
            }
        ));
        assert!(matches!(
            ck(&ne("0.5")).unwrap(),
            CheckOutcome::SoftLimitNeedsOverride {
                limit: Limit {
                    kind: LimitKind::SoftMin,
                    ..
                },
                ..
            }
        ));
        // By rate: 30 mL/h × 16 mcg/mL = 8 mcg/min; 300 mL/h = 80 mcg/min (on the hard max).
        assert_eq!(
            ck(&prog("norepinephrine", "4 mg/250 mL", rate("30"))),
            Ok(CheckOutcome::WithinLimits)
        );
        assert!(matches!(
            ck(&prog("norepinephrine", "4 mg/250 mL", rate("300"))).unwrap(),
            CheckOutcome::SoftLimitNeedsOverride { .. }
        ));
        assert!(matches!(
            ck(&prog("norepinephrine", "4 mg/250 mL", rate("300.1"))).unwrap(),
            CheckOutcome::HardLimitBlocked { .. }
        ));
        // Same concentration written differently, other case, other compatible unit.
        assert_eq!(
            ck(&prog("Norepinephrine", "16 mcg/mL", dose("0.48", "mg/h"))),
            Ok(CheckOutcome::WithinLimits)
        );
    }

    #[test]
    fn weight_based_entries_need_a_weight_in_range() {
        let c = checker();
        let ck = |p: &Programming| c.check("adult-icu", p);
        let mut p = prog("heparin", "25000 units/250 mL", dose("18", "units/kg/h"));
        assert_eq!(ck(&p), Err(CheckError::MissingWeight));
        p.weight_kg = Some(d("80"));
        assert_eq!(ck(&p), Ok(CheckOutcome::WithinLimits));
        p.weight_kg = Some(d("20"));
        assert!(matches!(ck(&p), Err(CheckError::WeightOutOfRange { .. })));
        p.weight_kg = Some(d("0"));
        assert_eq!(ck(&p), Err(CheckError::NotPositive("weight")));
        // 14.4 mL/h for 80 kg is exactly 18 units/kg/h.
        let mut p = prog("heparin", "25000 units/250 mL", rate("14.4"));
        p.weight_kg = Some(d("80"));
        assert_eq!(ck(&p), Ok(CheckOutcome::WithinLimits));
        // 32 mL/h = 40 units/kg/h (hard max, inclusive); 32.1 mL/h is over it.
        p.dose = rate("32");
        assert!(matches!(
            ck(&p).unwrap(),
            CheckOutcome::SoftLimitNeedsOverride { .. }
        ));
        p.dose = rate("32.1");
        assert!(matches!(
            ck(&p).unwrap(),
            CheckOutcome::HardLimitBlocked { .. }
        ));
        // Bolus: units/kg, soft max 80, hard max 100.
        p.dose = rate("14.4");
        p.bolus = Some(BolusInput {
            amount: d("80"),
            unit: "units/kg".parse().unwrap(),
        });
        assert_eq!(ck(&p), Ok(CheckOutcome::WithinLimits));
        p.bolus = Some(BolusInput {
            amount: d("8001"),
            unit: "units".parse().unwrap(),
        });
        assert!(matches!(
            ck(&p).unwrap(),
            CheckOutcome::HardLimitBlocked {
                limit: Limit {
                    scope: Scope::Bolus,
                    ..
                },
                ..
            }
        ));
        p.bolus = Some(BolusInput {
            amount: d("1"),
            unit: "mg".parse().unwrap(),
        });
        assert!(matches!(ck(&p), Err(CheckError::BolusUnitMismatch { .. })));
    }

    #[test]
    fn incoherent_programmings_are_errors() {
        let c = checker();
        let ck = |p: &Programming| c.check("adult-icu", p);
        assert!(matches!(
            ck(&prog(
                "norepinephrine",
                "4 mg/250 mL",
                dose("8", "units/min")
            )),
            Err(CheckError::UnitMismatch { .. })
        ));
        assert_eq!(
            ck(&prog("norepinephrine", "4 mg/250 mL", dose("0", "mcg/min"))),
            Err(CheckError::NotPositive("dose"))
        );
        assert_eq!(
            ck(&prog("norepinephrine", "4 mg/250 mL", rate("-1"))),
            Err(CheckError::NotPositive("rate"))
        );
        let mut p = prog("norepinephrine", "4 mg/250 mL", dose("8", "mcg/min"));
        p.bolus = Some(BolusInput {
            amount: d("1"),
            unit: "mcg".parse().unwrap(),
        });
        assert_eq!(ck(&p), Err(CheckError::BolusNotAllowed));
        assert_eq!(
            c.check("mars", &p),
            Err(CheckError::UnknownCareArea("mars".into()))
        );
        // Not in the library: basic infusion in mL/h only.
        assert_eq!(
            ck(&prog("unobtainium", "1 mg/mL", rate("10"))),
            Ok(CheckOutcome::BasicInfusion)
        );
        assert_eq!(
            ck(&prog("Norepinephrine", "8 mg/250 mL", rate("10"))),
            Err(CheckError::ConcentrationNotListed {
                drug: "Norepinephrine".into(),
                concentration: "8 mg/250 mL".into()
            })
        );
        assert!(matches!(
            ck(&prog("norepinephrine", "4 mg/0 mL", rate("10"))),
            Err(CheckError::ConcentrationNotListed { .. })
        ));
        assert_eq!(
            ck(&prog("unobtainium", "1 mg/mL", dose("1", "mg/h"))),
            Err(CheckError::BasicInfusionNeedsRate)
        );
        let mut p = prog("x", "1 mg/mL", rate("10"));
        p.drug = None;
        assert_eq!(ck(&p), Ok(CheckOutcome::BasicInfusion));
    }

    #[test]
    fn vtbi_and_duration() {
        let c = checker();
        // Vancomycin 1 g/250 mL in mg/min: soft max 10, hard 15; VTBI hard 250; max 240 min.
        let mut p = prog("vancomycin", "1 g/250 mL", rate("125"));
        p.vtbi_ml = Some(d("250"));
        assert_eq!(c.check("med-surg", &p), Ok(CheckOutcome::WithinLimits));
        p.vtbi_ml = Some(d("251"));
        assert!(matches!(
            c.check("med-surg", &p).unwrap(),
            CheckOutcome::HardLimitBlocked {
                limit: Limit {
                    scope: Scope::Vtbi,
                    ..
                },
                ..
            }
        ));
        // 250 mL at 50 mL/h is 300 min > 240: soft.
        p.vtbi_ml = Some(d("250"));
        p.dose = rate("50");
        assert!(matches!(
            c.check("med-surg", &p).unwrap(),
            CheckOutcome::SoftLimitNeedsOverride {
                limit: Limit {
                    scope: Scope::Duration,
                    ..
                },
                ..
            }
        ));
        // Same, programmed as a dose: 50 mL/h × 4 mg/mL = 200 mg/h = 3.3333 mg/min.
        p.dose = DoseInput::Dose {
            value: d("3.5"),
            unit: "mg/min".parse().unwrap(),
        };
        assert!(matches!(
            c.check("med-surg", &p).unwrap(),
            CheckOutcome::SoftLimitNeedsOverride {
                limit: Limit {
                    scope: Scope::Duration,
                    ..
                },
                ..
            }
        ));
    }

    #[test]
    fn invalid_library_is_refused() {
        let mut lib = sample_library();
        lib.care_areas[0].entries[0].soft_max = Some(d("1000"));
        assert!(DoseChecker::new(&lib).is_err());
    }

    /// Any entry of the sample, with a weight inside its care area's range.
    fn arb_case() -> impl Strategy<Value = (String, usize, Dec)> {
        let lib = sample_library();
        let cases: Vec<(String, usize, Dec, Dec)> = lib
            .care_areas
            .iter()
            .flat_map(|ca| {
                let w = ca.weight_kg.unwrap();
                (0..ca.entries.len()).map(move |i| (ca.id.clone(), i, w.min, w.max))
            })
            .collect();
        prop::sample::select(cases).prop_flat_map(|(ca, i, min, max)| {
            let (lo, hi) = (
                min.mantissa() * 10i128.pow(3 - min.scale()),
                max.mantissa() * 10i128.pow(3 - max.scale()),
            );
            (
                Just(ca),
                Just(i),
                (lo..=hi).prop_map(|m| Dec::new(m, 3).unwrap()),
            )
        })
    }

    fn entry(ca: &str, i: usize) -> Entry {
        sample_library().care_area(ca).unwrap().entries[i].clone()
    }

    /// `lo + (hi − lo) × t/1000`, rounded down to 6 decimals (library
    /// values have fewer), so it lies in [lo, hi].
    fn between(lo: Dec, hi: Dec, t: u32) -> Dec {
        let at6 = |x: Dec| x.mantissa() * 10i128.pow(6 - x.scale());
        let (a, b) = (at6(lo), at6(hi));
        Dec::new(a + (b - a) * i128::from(t) / 1000, 6).unwrap()
    }

    proptest! {
        #[test]
        fn within_soft_limits_is_never_blocked((ca, i, w) in arb_case(), t in 0u32..=1000, by_rate in any::<bool>()) {
            let c = checker();
            let e = entry(&ca, i);
            let lo = e.soft_min.or(e.hard_min).unwrap_or(Dec::new(1, 3).unwrap());
            let hi = e.soft_max.or(e.hard_max).unwrap();
            let v = between(lo, hi, t);
            prop_assume!(v.is_positive());
            let mut p = prog(&e.drug, "1 mg/mL", dose(&v.to_string(), &e.dosing_unit.to_string()));
            p.drug = Some(DrugSelection { drug: &e.drug, concentration: e.concentration });
            p.weight_kg = Some(w);
            let out = c.check(&ca, &p).unwrap();
            prop_assert_eq!(&out, &CheckOutcome::WithinLimits);
            if by_rate {
                // The same dose as a rate, when that rate is a finite decimal.
                let r = crate::units::dose_to_rate(v.to_ratio(), e.dosing_unit, &e.concentration, Some(w)).unwrap();
                if let Some(rd) = r.to_dec() {
                    p.dose = DoseInput::Rate { ml_per_h: rd };
                    prop_assert_eq!(c.check(&ca, &p).unwrap(), CheckOutcome::WithinLimits);
                }
            }
        }

        #[test]
        fn above_hard_max_is_always_blocked((ca, i, w) in arb_case(), extra in 1i128..1_000_000, reason in prop::option::of("[a-z ]{0,20}"), by_rate in any::<bool>()) {
            let c = checker();
            let e = entry(&ca, i);
            let hm = e.hard_max.unwrap();
            let mut p = prog(&e.drug, "1 mg/mL", rate("1"));
            p.drug = Some(DrugSelection { drug: &e.drug, concentration: e.concentration });
            p.weight_kg = Some(w);
            p.override_reason = reason.as_deref();
            if by_rate {
                // A rate just above the one that gives the hard max.
                let r = crate::units::dose_to_rate(hm.to_ratio(), e.dosing_unit, &e.concentration, Some(w)).unwrap();
                let above = Dec::new(r.numer() * 10_000 / r.denom() + extra, 4).unwrap();
                p.dose = DoseInput::Rate { ml_per_h: above };
            } else {
                let above = Dec::new(hm.mantissa() * 10i128.pow(6 - hm.scale()) + extra, 6).unwrap();
                p.dose = DoseInput::Dose { value: above, unit: e.dosing_unit };
            }
            let out = c.check(&ca, &p).unwrap();
            let blocked = matches!(out, CheckOutcome::HardLimitBlocked { limit: Limit { kind: LimitKind::HardMax, scope: Scope::Continuous, .. }, .. });
            prop_assert!(blocked, "{:?}", out);
            prop_assert!(!out.allows_start());
        }

        /// A rate is judged exactly as the dose it delivers, computed
        /// independently with reduced fractions.
        #[test]
        fn rate_checks_agree_with_exact_doses((ca, i, w) in arb_case(), m in 1i128..100_000, s in 0u32..=4) {
            let c = checker();
            let e = entry(&ca, i);
            let r = Dec::new(m, s).unwrap();
            let mut p = prog(&e.drug, "1 mg/mL", DoseInput::Rate { ml_per_h: r });
            p.drug = Some(DrugSelection { drug: &e.drug, concentration: e.concentration });
            p.weight_kg = Some(w);
            let out = c.check(&ca, &p).unwrap();
            let dose = crate::units::rate_to_dose(r.to_ratio(), e.dosing_unit, &e.concentration, Some(w)).unwrap();
            let gt = |l: Option<Dec>| l.is_some_and(|l| dose.cmp_dec(l) == Ordering::Greater);
            let lt = |l: Option<Dec>| l.is_some_and(|l| dose.cmp_dec(l) == Ordering::Less);
            let want = if gt(e.hard_max) || lt(e.hard_min) {
                "hard"
            } else if gt(e.soft_max) || lt(e.soft_min) {
                "soft"
            } else {
                "within"
            };
            let got = match &out {
                CheckOutcome::HardLimitBlocked { value, .. } => { prop_assert_eq!(*value, dose); "hard" }
                CheckOutcome::SoftLimitNeedsOverride { value, .. } => { prop_assert_eq!(*value, dose); "soft" }
                CheckOutcome::WithinLimits => "within",
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert_eq!(got, want);
        }

        #[test]
        fn overriding_never_allows_beyond_hard_limits((ca, i, w) in arb_case(), m in 1i128..100_000_000, s in 0u32..=6, reason in "[a-z]{1,20}") {
            let c = checker();
            let e = entry(&ca, i);
            let v = Dec::new(m, s).unwrap();
            let mut p = prog(&e.drug, "1 mg/mL", DoseInput::Dose { value: v, unit: e.dosing_unit });
            p.drug = Some(DrugSelection { drug: &e.drug, concentration: e.concentration });
            p.weight_kg = Some(w);
            p.override_reason = Some(&reason);
            let out = c.check(&ca, &p).unwrap();
            let beyond_hard = e.hard_max.is_some_and(|h| v > h) || e.hard_min.is_some_and(|h| v < h);
            let beyond_soft = e.soft_max.is_some_and(|h| v > h) || e.soft_min.is_some_and(|h| v < h);
            if beyond_hard {
                prop_assert!(matches!(out, CheckOutcome::HardLimitBlocked { .. }), "{:?}", out);
            } else if beyond_soft {
                prop_assert!(matches!(&out, CheckOutcome::SoftLimitOverride { reason: r, .. } if *r == reason), "{:?}", out);
            } else {
                prop_assert_eq!(&out, &CheckOutcome::WithinLimits);
            }
            prop_assert_eq!(out.allows_start(), !beyond_hard);
        }
    }
}
