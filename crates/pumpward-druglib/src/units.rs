//! Typed units and the exact conversions between an infusion rate (mL/h) and
//! a dose (in the entry's dosing unit).
//!
//! Every unit has exactly one spelling (the one [`fmt::Display`] writes and
//! `FromStr` reads), so a unit in a library, a CSV file or a pump's
//! programming means one thing.
//!
//! | kind | spellings |
//! |---|---|
//! | drug amount ([`AmountUnit`]) | `g`, `mg`, `mcg` (mass), `units`, `milliunits` (international units), `mmol` |
//! | time ([`TimeUnit`]) | `h`, `min` |
//! | dosing unit ([`DoseUnit`]) | `<amount or mL>[/kg]/<time>`: `mL/h`, `mg/kg/h`, `mcg/kg/min`, `units/h`, `mmol/h`, … |
//! | bolus unit ([`BolusUnit`]) | `<amount or mL>[/kg]`: `mg`, `mcg/kg`, `units/kg`, `mL` … |
//! | concentration ([`Concentration`]) | `<amount> <unit>/<volume> mL` or `<amount> <unit>/mL` |
//!
//! The conversion is one exact factor ([`dose_per_rate`]): a dose is
//! `rate × factor`, a rate is `dose ÷ factor`, so converting back and forth
//! gives back exactly the value converted.

use crate::quantity::{Dec, QuantityError, Ratio};
use std::fmt;
use std::str::FromStr;

/// What a drug amount measures. Amounts of different dimensions never
/// convert into each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// g, mg, mcg.
    Mass,
    /// units, milliunits (international units).
    Units,
    /// mmol.
    Moles,
}

/// A unit of drug amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AmountUnit {
    /// gram
    G,
    /// milligram
    Mg,
    /// microgram
    Mcg,
    /// international units
    Units,
    /// thousandths of an international unit (oxytocin)
    Milliunits,
    /// millimole
    Mmol,
}

/// Every amount unit, in a fixed order.
pub const AMOUNT_UNITS: [AmountUnit; 6] = [
    AmountUnit::G,
    AmountUnit::Mg,
    AmountUnit::Mcg,
    AmountUnit::Units,
    AmountUnit::Milliunits,
    AmountUnit::Mmol,
];

impl AmountUnit {
    /// The one spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AmountUnit::G => "g",
            AmountUnit::Mg => "mg",
            AmountUnit::Mcg => "mcg",
            AmountUnit::Units => "units",
            AmountUnit::Milliunits => "milliunits",
            AmountUnit::Mmol => "mmol",
        }
    }

    /// What it measures.
    pub fn dimension(self) -> Dimension {
        match self {
            AmountUnit::G | AmountUnit::Mg | AmountUnit::Mcg => Dimension::Mass,
            AmountUnit::Units | AmountUnit::Milliunits => Dimension::Units,
            AmountUnit::Mmol => Dimension::Moles,
        }
    }

    /// How many base units (mcg, milliunits, mmol) one of this unit is.
    pub fn base_factor(self) -> i128 {
        match self {
            AmountUnit::G => 1_000_000,
            AmountUnit::Mg => 1_000,
            AmountUnit::Mcg => 1,
            AmountUnit::Units => 1_000,
            AmountUnit::Milliunits => 1,
            AmountUnit::Mmol => 1,
        }
    }
}

impl fmt::Display for AmountUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A unit the library does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not one of the spellings.
    #[error("unknown {kind} {text:?}; accepted: {accepted}")]
    Unknown {
        /// What was expected (e.g. "dosing unit").
        kind: &'static str,
        /// The text (shortened).
        text: String,
        /// The accepted spellings or their pattern.
        accepted: &'static str,
    },
    /// A number inside a concentration did not parse.
    #[error("concentration {text:?}: {source}")]
    Number {
        /// The text (shortened).
        text: String,
        /// Why the number was refused.
        source: QuantityError,
    },
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

const AMOUNT_ACCEPTED: &str = "g, mg, mcg, units, milliunits, mmol";

impl FromStr for AmountUnit {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        AMOUNT_UNITS
            .iter()
            .copied()
            .find(|u| u.as_str() == s)
            .ok_or_else(|| UnitError::Unknown {
                kind: "amount unit",
                text: short(s),
                accepted: AMOUNT_ACCEPTED,
            })
    }
}

/// The time base of a dosing unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimeUnit {
    /// per hour
    H,
    /// per minute
    Min,
}

impl TimeUnit {
    /// The one spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::H => "h",
            TimeUnit::Min => "min",
        }
    }

    /// Minutes in one of this unit.
    pub fn minutes(self) -> i128 {
        match self {
            TimeUnit::H => 60,
            TimeUnit::Min => 1,
        }
    }
}

/// A dosing unit: an amount (or mL) per time, optionally per kg of patient
/// weight. `amount: None` means mL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DoseUnit {
    /// The drug amount; `None` for volume (mL).
    pub amount: Option<AmountUnit>,
    /// Per kg of patient weight (weight-based dosing).
    pub per_kg: bool,
    /// Per hour or per minute.
    pub time: TimeUnit,
}

impl DoseUnit {
    /// mL/h, the pump's native unit.
    pub const ML_PER_H: DoseUnit = DoseUnit {
        amount: None,
        per_kg: false,
        time: TimeUnit::H,
    };

    /// True when a dose in this unit needs the patient's weight.
    pub fn is_weight_based(self) -> bool {
        self.per_kg
    }

    /// True when a concentration in `unit` can deliver a dose in this unit
    /// (mL-based units fit every concentration).
    pub fn fits(self, unit: AmountUnit) -> bool {
        self.amount
            .is_none_or(|a| a.dimension() == unit.dimension())
    }
}

const DOSE_ACCEPTED: &str =
    "<amount>[/kg]/<h|min> with amount one of mL, g, mg, mcg, units, milliunits, mmol (e.g. mcg/kg/min)";

impl fmt::Display for DoseUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.amount.map_or("mL", AmountUnit::as_str);
        let kg = if self.per_kg { "/kg" } else { "" };
        write!(f, "{a}{kg}/{}", self.time.as_str())
    }
}

/// Splits `amount[/kg]` into its parts.
fn parse_amount_per_kg(s: &str) -> Option<(Option<AmountUnit>, bool)> {
    let (a, per_kg) = match s.strip_suffix("/kg") {
        Some(a) => (a, true),
        None => (s, false),
    };
    let amount = if a == "mL" {
        None
    } else {
        Some(a.parse::<AmountUnit>().ok()?)
    };
    Some((amount, per_kg))
}

impl FromStr for DoseUnit {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let err = || UnitError::Unknown {
            kind: "dosing unit",
            text: short(s),
            accepted: DOSE_ACCEPTED,
        };
        let (rest, time) = s.rsplit_once('/').ok_or_else(err)?;
        let time = match time {
            "h" => TimeUnit::H,
            "min" => TimeUnit::Min,
            _ => return Err(err()),
        };
        let (amount, per_kg) = parse_amount_per_kg(rest).ok_or_else(err)?;
        Ok(DoseUnit {
            amount,
            per_kg,
            time,
        })
    }
}

/// The unit of a bolus (a single dose): an amount (or mL), optionally per kg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BolusUnit {
    /// The drug amount; `None` for volume (mL).
    pub amount: Option<AmountUnit>,
    /// Per kg of patient weight.
    pub per_kg: bool,
}

impl BolusUnit {
    /// True when a concentration in `unit` can deliver a bolus in this unit.
    pub fn fits(self, unit: AmountUnit) -> bool {
        self.amount
            .is_none_or(|a| a.dimension() == unit.dimension())
    }
}

const BOLUS_ACCEPTED: &str =
    "<amount>[/kg] with amount one of mL, g, mg, mcg, units, milliunits, mmol (e.g. units/kg)";

impl fmt::Display for BolusUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.amount.map_or("mL", AmountUnit::as_str);
        let kg = if self.per_kg { "/kg" } else { "" };
        write!(f, "{a}{kg}")
    }
}

impl FromStr for BolusUnit {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let (amount, per_kg) = parse_amount_per_kg(s).ok_or_else(|| UnitError::Unknown {
            kind: "bolus unit",
            text: short(s),
            accepted: BOLUS_ACCEPTED,
        })?;
        Ok(BolusUnit { amount, per_kg })
    }
}

/// A concentration: `amount` of drug in `volume_ml` of solution, as the bag
/// or syringe is labelled (`25000 units/250 mL`), or a stated concentration
/// with `volume_ml = 1` (`4 mg/mL`). Kept as written (not reduced), so that
/// the label survives a round trip; compared by value with
/// [`Concentration::per_ml_base`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concentration {
    /// Drug amount in the container.
    pub amount: Dec,
    /// Unit of `amount`.
    pub unit: AmountUnit,
    /// Total volume in mL.
    pub volume_ml: Dec,
}

impl Concentration {
    /// Base units (mcg, milliunits, mmol) per mL, exact; the value by which
    /// two concentrations of the same drug are the same concentration.
    pub fn per_ml_base(&self) -> Result<Ratio, QuantityError> {
        Ratio::from(self.amount)
            .checked_mul(Ratio::from_int(self.unit.base_factor()))?
            .checked_div(Ratio::from(self.volume_ml))
    }
}

impl fmt::Display for Concentration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.volume_ml == Dec::ONE {
            write!(f, "{} {}/mL", self.amount, self.unit)
        } else {
            write!(f, "{} {}/{} mL", self.amount, self.unit, self.volume_ml)
        }
    }
}

const CONC_ACCEPTED: &str =
    "<amount> <unit>/<volume> mL or <amount> <unit>/mL (e.g. 25000 units/250 mL, 4 mg/mL)";

impl FromStr for Concentration {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, UnitError> {
        let err = || UnitError::Unknown {
            kind: "concentration",
            text: short(s),
            accepted: CONC_ACCEPTED,
        };
        let num = |t: &str| {
            t.parse::<Dec>().map_err(|source| UnitError::Number {
                text: short(s),
                source,
            })
        };
        let (amount, rest) = s.split_once(' ').ok_or_else(err)?;
        let (unit, vol) = rest.split_once('/').ok_or_else(err)?;
        let unit: AmountUnit = unit.parse().map_err(|_| err())?;
        let volume_ml = if vol == "mL" {
            Dec::ONE
        } else {
            let v = vol.strip_suffix(" mL").ok_or_else(err)?;
            num(v)?
        };
        Ok(Concentration {
            amount: num(amount)?,
            unit,
            volume_ml,
        })
    }
}

/// Why a conversion between rate and dose is impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// The dosing unit's amount does not fit the concentration's.
    #[error("dosing unit {dose} does not fit a concentration in {conc}")]
    IncompatibleUnits {
        /// The dosing unit.
        dose: String,
        /// The concentration's amount unit.
        conc: AmountUnit,
    },
    /// A weight-based unit without a weight.
    #[error("dosing unit {0} is weight-based: a patient weight is needed")]
    MissingWeight(String),
    /// Zero or negative weight.
    #[error("patient weight must be above 0 kg")]
    NonPositiveWeight,
    /// Zero or negative concentration.
    #[error("the concentration must be above zero")]
    NonPositiveConcentration,
    /// Arithmetic failure.
    #[error(transparent)]
    Quantity(#[from] QuantityError),
}

/// The exact factor `k` with `dose (in unit) = rate (mL/h) × k`, for a
/// solution of `conc` and a patient of `weight_kg` (needed only for
/// weight-based units).
pub fn dose_per_rate(
    unit: DoseUnit,
    conc: &Concentration,
    weight_kg: Option<Dec>,
) -> Result<Ratio, ConversionError> {
    // amount/h per mL/h: base units per mL, then in the unit's amount.
    let mut k = match unit.amount {
        None => Ratio::ONE,
        Some(a) => {
            if a.dimension() != conc.unit.dimension() {
                return Err(ConversionError::IncompatibleUnits {
                    dose: unit.to_string(),
                    conc: conc.unit,
                });
            }
            if !conc.amount.is_positive() || !conc.volume_ml.is_positive() {
                return Err(ConversionError::NonPositiveConcentration);
            }
            conc.per_ml_base()?
                .checked_div(Ratio::from_int(a.base_factor()))?
        }
    };
    if unit.per_kg {
        let w = weight_kg.ok_or_else(|| ConversionError::MissingWeight(unit.to_string()))?;
        if !w.is_positive() {
            return Err(ConversionError::NonPositiveWeight);
        }
        k = k.checked_div(Ratio::from(w))?;
    }
    // Per hour → per minute: a 60th.
    k = k
        .checked_mul(Ratio::from_int(unit.time.minutes()))?
        .checked_div(Ratio::from_int(60))?;
    Ok(k)
}

/// The dose delivered by `rate_ml_h` (exact).
pub fn rate_to_dose(
    rate_ml_h: Ratio,
    unit: DoseUnit,
    conc: &Concentration,
    weight_kg: Option<Dec>,
) -> Result<Ratio, ConversionError> {
    Ok(rate_ml_h.checked_mul(dose_per_rate(unit, conc, weight_kg)?)?)
}

/// The rate (mL/h) that delivers `dose` in `unit` (exact).
pub fn dose_to_rate(
    dose: Ratio,
    unit: DoseUnit,
    conc: &Concentration,
    weight_kg: Option<Dec>,
) -> Result<Ratio, ConversionError> {
    Ok(dose.checked_div(dose_per_rate(unit, conc, weight_kg)?)?)
}

/// A dose in one unit expressed in another (exact), through the rate; both
/// units must fit the concentration.
pub fn convert_dose(
    dose: Ratio,
    from: DoseUnit,
    to: DoseUnit,
    conc: &Concentration,
    weight_kg: Option<Dec>,
) -> Result<Ratio, ConversionError> {
    if from == to {
        return Ok(dose);
    }
    let rate = dose_to_rate(dose, from, conc, weight_kg)?;
    rate_to_dose(rate, to, conc, weight_kg)
}

/// The factor `k` with `bolus (in unit) = volume (mL) × k`.
pub fn bolus_per_ml(
    unit: BolusUnit,
    conc: &Concentration,
    weight_kg: Option<Dec>,
) -> Result<Ratio, ConversionError> {
    // A bolus is a dose without a time base: the same factor as a per-hour
    // dosing unit.
    dose_per_rate(
        DoseUnit {
            amount: unit.amount,
            per_kg: unit.per_kg,
            time: TimeUnit::H,
        },
        conc,
        weight_kg,
    )
}

macro_rules! serde_via_str {
    ($t:ty, $expecting:expr) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

serde_via_str!(AmountUnit, "an amount unit such as \"mg\"");
serde_via_str!(DoseUnit, "a dosing unit such as \"mcg/kg/min\"");
serde_via_str!(BolusUnit, "a bolus unit such as \"units/kg\"");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Dec {
        s.parse().unwrap()
    }
    fn c(s: &str) -> Concentration {
        s.parse().unwrap()
    }
    fn u(s: &str) -> DoseUnit {
        s.parse().unwrap()
    }

    #[test]
    fn units_parse_and_print() {
        for s in [
            "mL/h",
            "mL/kg/h",
            "mg/h",
            "mg/kg/h",
            "mcg/min",
            "mcg/kg/min",
            "units/h",
            "units/kg/h",
            "mmol/h",
            "mcg/h",
            "mcg/kg/h",
            "mg/min",
            "mg/kg/min",
            "units/min",
            "milliunits/min",
            "g/h",
        ] {
            assert_eq!(u(s).to_string(), s);
        }
        for bad in [
            "ml/h", "mg/hr", "mg", "mg/kg", "ug/min", "mg/h/kg", "", "/h", "mg//h", "kg/h",
        ] {
            assert!(bad.parse::<DoseUnit>().is_err(), "{bad}");
        }
        assert!(u("mcg/kg/min").is_weight_based());
        assert!(!u("mcg/min").is_weight_based());
        for s in ["mg", "mcg/kg", "units/kg", "mL", "mmol"] {
            assert_eq!(s.parse::<BolusUnit>().unwrap().to_string(), s);
        }
        assert!("mg/h".parse::<BolusUnit>().is_err());
        assert_eq!(c("25000 units/250 mL").to_string(), "25000 units/250 mL");
        assert_eq!(c("4 mg/mL").to_string(), "4 mg/mL");
        assert_eq!(c("4 mg/1 mL"), c("4 mg/mL"));
        for bad in [
            "4mg/mL",
            "4 mg/250mL",
            "4 mg per mL",
            "4 mgs/mL",
            "x mg/mL",
            "4 mg/ mL",
        ] {
            assert!(bad.parse::<Concentration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn known_conversions_are_exact() {
        // Heparin 25,000 units/250 mL = 100 units/mL; 18 units/kg/h for 80 kg
        // is 1440 units/h = 14.4 mL/h.
        let rate = dose_to_rate(
            Ratio::from(d("18")),
            u("units/kg/h"),
            &c("25000 units/250 mL"),
            Some(d("80")),
        )
        .unwrap();
        assert_eq!(rate.to_dec(), Some(d("14.4")));
        // Norepinephrine 4 mg/250 mL = 16 mcg/mL; 8 mcg/min = 30 mL/h.
        let rate =
            dose_to_rate(Ratio::from(d("8")), u("mcg/min"), &c("4 mg/250 mL"), None).unwrap();
        assert_eq!(rate.to_dec(), Some(d("30")));
        // Propofol 10 mg/mL, 50 mcg/kg/min, 70 kg: 3500 mcg/min = 210 mg/h = 21 mL/h.
        let rate = dose_to_rate(
            Ratio::from(d("50")),
            u("mcg/kg/min"),
            &c("10 mg/mL"),
            Some(d("70")),
        )
        .unwrap();
        assert_eq!(rate.to_dec(), Some(d("21")));
        // Vasopressin 20 units/100 mL, 0.04 units/min = 2.4 units/h = 12 mL/h.
        let rate = dose_to_rate(
            Ratio::from(d("0.04")),
            u("units/min"),
            &c("20 units/100 mL"),
            None,
        )
        .unwrap();
        assert_eq!(rate.to_dec(), Some(d("12")));
        // 1 mcg/min ↔ 0.06 mg/h.
        let mgh =
            convert_dose(Ratio::ONE, u("mcg/min"), u("mg/h"), &c("4 mg/250 mL"), None).unwrap();
        assert_eq!(mgh.to_dec(), Some(d("0.06")));
        // Non-terminating results stay exact.
        let dose = rate_to_dose(
            Ratio::from(d("10")),
            u("mcg/kg/min"),
            &c("4 mg/250 mL"),
            Some(d("70")),
        )
        .unwrap();
        // 10 mL/h × 16 mcg/mL = 160 mcg/h = 160 / (70 × 60) mcg/kg/min.
        assert_eq!(dose, Ratio::new(160, 4200).unwrap());
        assert_eq!(dose.to_dec(), None);
    }

    #[test]
    fn incoherent_conversions_are_errors() {
        assert!(matches!(
            dose_to_rate(Ratio::ONE, u("units/h"), &c("4 mg/250 mL"), None),
            Err(ConversionError::IncompatibleUnits { .. })
        ));
        assert!(matches!(
            dose_to_rate(Ratio::ONE, u("mcg/kg/min"), &c("4 mg/250 mL"), None),
            Err(ConversionError::MissingWeight(_))
        ));
        assert!(matches!(
            dose_to_rate(
                Ratio::ONE,
                u("mcg/kg/min"),
                &c("4 mg/250 mL"),
                Some(Dec::ZERO)
            ),
            Err(ConversionError::NonPositiveWeight)
        ));
        assert!(matches!(
            dose_to_rate(Ratio::ONE, u("mg/h"), &c("0 mg/250 mL"), None),
            Err(ConversionError::NonPositiveConcentration)
        ));
        // mL/h needs no concentration at all.
        assert_eq!(
            dose_to_rate(Ratio::ONE, DoseUnit::ML_PER_H, &c("0 mg/250 mL"), None),
            Ok(Ratio::ONE)
        );
    }

    fn arb_amount() -> impl Strategy<Value = AmountUnit> {
        prop::sample::select(AMOUNT_UNITS.to_vec())
    }
    fn arb_time() -> impl Strategy<Value = TimeUnit> {
        prop::sample::select(vec![TimeUnit::H, TimeUnit::Min])
    }
    /// A positive decimal from 0.001 to 10,000,000 with up to 3 decimals:
    /// well beyond any clinical amount, volume, weight or rate. Within it,
    /// no conversion may overflow.
    fn arb_pos() -> impl Strategy<Value = Dec> {
        (1i128..10_000_000, 0u32..=3).prop_map(|(m, s)| Dec::new(m, s).unwrap())
    }
    prop_compose! {
        fn arb_conc()(amount in arb_pos(), unit in arb_amount(), volume_ml in arb_pos()) -> Concentration {
            Concentration { amount, unit, volume_ml }
        }
    }
    prop_compose! {
        fn arb_dose_unit_for(conc_unit: AmountUnit)(
            pick in 0usize..4, per_kg in any::<bool>(), time in arb_time()
        ) -> DoseUnit {
            let same_dim: Vec<AmountUnit> = AMOUNT_UNITS.iter().copied()
                .filter(|a| a.dimension() == conc_unit.dimension()).collect();
            let amount = if pick == 0 { None } else { Some(same_dim[pick % same_dim.len()]) };
            DoseUnit { amount, per_kg, time }
        }
    }

    proptest! {
        #[test]
        fn rate_dose_rate_round_trips(
            (conc, unit) in arb_conc().prop_flat_map(|c| (Just(c), arb_dose_unit_for(c.unit))),
            rate in arb_pos(),
            weight in arb_pos(),
        ) {
            let w = Some(weight);
            let dose = rate_to_dose(rate.to_ratio(), unit, &conc, w).unwrap();
            prop_assert!(dose.is_positive());
            let back = dose_to_rate(dose, unit, &conc, w).unwrap();
            prop_assert_eq!(back, rate.to_ratio());
            // And dose → rate → dose.
            let again = rate_to_dose(back, unit, &conc, w).unwrap();
            prop_assert_eq!(again, dose);
        }

        #[test]
        fn unit_conversions_are_consistent(
            (conc, a, b, e) in arb_conc().prop_flat_map(|c| (Just(c), arb_dose_unit_for(c.unit),
                arb_dose_unit_for(c.unit), arb_dose_unit_for(c.unit))),
            dose in arb_pos(),
            weight in arb_pos(),
        ) {
            let w = Some(weight);
            let x = dose.to_ratio();
            // a → b → a is the identity, and a → b → e equals a → e.
            let ab = convert_dose(x, a, b, &conc, w).unwrap();
            prop_assert_eq!(convert_dose(ab, b, a, &conc, w).unwrap(), x);
            let abe = convert_dose(ab, b, e, &conc, w).unwrap();
            prop_assert_eq!(abe, convert_dose(x, a, e, &conc, w).unwrap());
            // Mass units scale by powers of 1000, time by 60, independently of the drug.
            if a.amount.is_some() && a.per_kg == b.per_kg && b.amount.is_some() {
                let fa = a.amount.unwrap().base_factor() * 60 / a.time.minutes();
                let fb = b.amount.unwrap().base_factor() * 60 / b.time.minutes();
                prop_assert_eq!(ab, x.checked_mul(Ratio::new(fa, fb).unwrap()).unwrap());
            }
        }

        #[test]
        fn conversion_preserves_order(
            (conc, unit) in arb_conc().prop_flat_map(|c| (Just(c), arb_dose_unit_for(c.unit))),
            r1 in arb_pos(), r2 in arb_pos(), weight in arb_pos(),
        ) {
            let w = Some(weight);
            let d1 = rate_to_dose(r1.to_ratio(), unit, &conc, w).unwrap();
            let d2 = rate_to_dose(r2.to_ratio(), unit, &conc, w).unwrap();
            prop_assert_eq!(d1.cmp(&d2), r1.cmp(&r2));
        }

        #[test]
        fn unit_text_round_trips(amount in prop::option::of(arb_amount()), per_kg in any::<bool>(), time in arb_time(),
                                 conc in arb_conc()) {
            let du = DoseUnit { amount, per_kg, time };
            prop_assert_eq!(du.to_string().parse::<DoseUnit>().unwrap(), du);
            let bu = BolusUnit { amount, per_kg };
            prop_assert_eq!(bu.to_string().parse::<BolusUnit>().unwrap(), bu);
            prop_assert_eq!(conc.to_string().parse::<Concentration>().unwrap(), conc);
        }
    }
}
