//! Exact quantities: [`Dec`] (a decimal as written in a library), [`Ratio`]
//! (an exact fraction, what arithmetic produces) and the checked operations
//! on them.
//!
//! No floating point anywhere: `0.1 mL/h × 16 mcg/mL` must be exactly
//! `1.6 mcg/h`, and a limit of `0.2` must compare equal to a programmed
//! `0.2`, so that a dose on the limit is never blocked or let through by a
//! rounding error. Every operation that could overflow is checked and
//! returns [`QuantityError::Overflow`]; comparisons never overflow (they use
//! 256-bit products).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Most digits after the decimal point a [`Dec`] may have.
pub const MAX_SCALE: u32 = 12;
/// Most significant digits a [`Dec`] may have (so that rescaling to
/// [`MAX_SCALE`] stays far inside `i128`).
pub const MAX_DIGITS: u32 = 24;
/// Longest decimal text accepted by [`Dec::from_str`].
pub const MAX_DEC_TEXT: usize = 40;

/// `10^MAX_DIGITS`: every mantissa is strictly smaller in magnitude.
const MANT_BOUND: i128 = 10i128.pow(MAX_DIGITS);

/// Why a quantity could not be parsed or computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text is not a decimal number.
    #[error(
        "{0:?} is not a decimal number (digits with an optional '.' and fraction, no exponent)"
    )]
    NotADecimal(String),
    /// Too many digits after the point.
    #[error("{0:?} has more than {MAX_SCALE} digits after the decimal point")]
    TooManyDecimals(String),
    /// Too many significant digits or too long a text.
    #[error("{0:?} is too long (at most {MAX_DIGITS} digits)")]
    TooLong(String),
    /// An intermediate result does not fit in 128 bits.
    #[error("arithmetic overflow: the value is too large to compute exactly")]
    Overflow,
    /// Division by zero (a zero concentration, weight or rate).
    #[error("division by zero")]
    DivisionByZero,
}

/// A decimal number `mant × 10^-scale`, always normalised (no trailing zero
/// in the fraction), so that equal values have equal representations and
/// the derived `Eq`/`Hash` are value equality.
///
/// Invariants: `scale <= MAX_SCALE`, `|mant| < 10^MAX_DIGITS`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dec {
    mant: i128,
    scale: u32,
}

impl Dec {
    /// Zero.
    pub const ZERO: Dec = Dec { mant: 0, scale: 0 };
    /// One.
    pub const ONE: Dec = Dec { mant: 1, scale: 0 };

    /// `mant × 10^-scale`, normalised; fails when outside the invariants.
    pub fn new(mant: i128, scale: u32) -> Result<Dec, QuantityError> {
        let (mut mant, mut scale) = (mant, scale);
        while scale > 0 && mant % 10 == 0 {
            mant /= 10;
            scale -= 1;
        }
        if scale > MAX_SCALE {
            return Err(QuantityError::TooManyDecimals(format!("{mant}e-{scale}")));
        }
        if mant.unsigned_abs() >= MANT_BOUND.unsigned_abs() {
            return Err(QuantityError::Overflow);
        }
        if mant == 0 {
            scale = 0;
        }
        Ok(Dec { mant, scale })
    }

    /// An integer value.
    pub fn from_int(v: i64) -> Dec {
        // |i64| < 10^19 < 10^24, so the invariants hold.
        Dec {
            mant: i128::from(v),
            scale: 0,
        }
    }

    /// The mantissa (normalised).
    pub fn mantissa(self) -> i128 {
        self.mant
    }

    /// Digits after the point (normalised).
    pub fn scale(self) -> u32 {
        self.scale
    }

    /// True for values above zero.
    pub fn is_positive(self) -> bool {
        self.mant > 0
    }

    /// True for values below zero.
    pub fn is_negative(self) -> bool {
        self.mant < 0
    }

    /// The exact fraction.
    pub fn to_ratio(self) -> Ratio {
        Ratio::new(self.mant, pow10(self.scale)).unwrap_or(Ratio::ZERO)
    }
}

impl Ord for Dec {
    fn cmp(&self, other: &Self) -> Ordering {
        // Both rescaled to the larger scale: |mant| < 10^24 and the factor is
        // at most 10^12, so the products stay below 10^36 < i128::MAX.
        let s = self.scale.max(other.scale);
        let a = self.mant * pow10(s - self.scale);
        let b = other.mant * pow10(s - other.scale);
        a.cmp(&b)
    }
}

impl PartialOrd for Dec {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.mant);
        }
        let digits = self.mant.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let sign = if self.mant < 0 { "-" } else { "" };
        if digits.len() > scale {
            let (i, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{i}.{frac}")
        } else {
            write!(f, "{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    }
}

impl fmt::Debug for Dec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Dec {
    type Err = QuantityError;

    /// Accepts `-?[0-9]+(\.[0-9]+)?`: no sign `+`, no exponent, no
    /// separators, no surrounding spaces. Leading zeros and trailing zeros
    /// in the fraction are accepted and dropped.
    fn from_str(s: &str) -> Result<Dec, QuantityError> {
        if s.len() > MAX_DEC_TEXT {
            return Err(QuantityError::TooLong(
                s.chars().take(MAX_DEC_TEXT).collect(),
            ));
        }
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        let digits_ok = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty()
            || !digits_ok(int)
            || !digits_ok(frac)
            || (body.contains('.') && frac.is_empty())
        {
            return Err(QuantityError::NotADecimal(s.to_owned()));
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > MAX_SCALE as usize {
            return Err(QuantityError::TooManyDecimals(s.to_owned()));
        }
        let int = int.trim_start_matches('0');
        if int.len() + frac.len() > MAX_DIGITS as usize {
            return Err(QuantityError::TooLong(s.to_owned()));
        }
        let mut mant: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            // At most 24 digits: cannot overflow.
            mant = mant * 10 + i128::from(b - b'0');
        }
        if neg {
            mant = -mant;
        }
        Dec::new(mant, frac.len() as u32)
    }
}

impl serde::Serialize for Dec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Dec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dec, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal number written as a string, such as \"2.5\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dec, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// `10^n` for `n <= 38`.
fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

/// An exact fraction `num / den` with `den > 0`, always reduced, so that the
/// derived `Eq`/`Hash` are value equality. Produced by unit conversions.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: i128,
    den: i128,
}

impl Ratio {
    /// Zero.
    pub const ZERO: Ratio = Ratio { num: 0, den: 1 };
    /// One.
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    /// `num / den`, reduced.
    pub fn new(num: i128, den: i128) -> Result<Ratio, QuantityError> {
        if den == 0 {
            return Err(QuantityError::DivisionByZero);
        }
        let g = gcd(num.unsigned_abs(), den.unsigned_abs());
        // g >= 1 because den != 0; dividing by it cannot overflow except for
        // i128::MIN / 1 negated below.
        let g = i128::try_from(g).map_err(|_| QuantityError::Overflow)?;
        let (mut num, mut den) = (num / g, den / g);
        if den < 0 {
            num = num.checked_neg().ok_or(QuantityError::Overflow)?;
            den = den.checked_neg().ok_or(QuantityError::Overflow)?;
        }
        Ok(Ratio { num, den })
    }

    /// An integer.
    pub fn from_int(v: i128) -> Ratio {
        Ratio { num: v, den: 1 }
    }

    /// Numerator (reduced).
    pub fn numer(self) -> i128 {
        self.num
    }

    /// Denominator (reduced, positive).
    pub fn denom(self) -> i128 {
        self.den
    }

    /// True for values above zero.
    pub fn is_positive(self) -> bool {
        self.num > 0
    }

    /// Exact product.
    pub fn checked_mul(self, o: Ratio) -> Result<Ratio, QuantityError> {
        // Cross-reduce first so that intermediate values stay small.
        let g1 = gcd(self.num.unsigned_abs(), o.den.unsigned_abs()).max(1);
        let g2 = gcd(o.num.unsigned_abs(), self.den.unsigned_abs()).max(1);
        let g1 = i128::try_from(g1).map_err(|_| QuantityError::Overflow)?;
        let g2 = i128::try_from(g2).map_err(|_| QuantityError::Overflow)?;
        let num = (self.num / g1)
            .checked_mul(o.num / g2)
            .ok_or(QuantityError::Overflow)?;
        let den = (self.den / g2)
            .checked_mul(o.den / g1)
            .ok_or(QuantityError::Overflow)?;
        Ratio::new(num, den)
    }

    /// Exact quotient.
    pub fn checked_div(self, o: Ratio) -> Result<Ratio, QuantityError> {
        self.checked_mul(o.recip()?)
    }

    /// `1 / self`.
    pub fn recip(self) -> Result<Ratio, QuantityError> {
        Ratio::new(self.den, self.num)
    }

    /// The value as a [`Dec`] when it has a finite decimal expansion within
    /// [`MAX_SCALE`] digits (and [`MAX_DIGITS`] significant digits).
    pub fn to_dec(self) -> Option<Dec> {
        for scale in 0..=MAX_SCALE {
            let p = pow10(scale);
            if let Some(n) = self.num.checked_mul(p) {
                if n % self.den == 0 {
                    return Dec::new(n / self.den, scale).ok();
                }
            } else {
                return None;
            }
        }
        None
    }

    /// Compares with a [`Dec`] without any overflow.
    pub fn cmp_dec(self, d: Dec) -> Ordering {
        // num / den  vs  mant / 10^scale  ⇔  num·10^scale vs mant·den.
        cmp_products(self.num, pow10(d.scale), d.mant, self.den)
    }
}

/// A fraction `num / den` (`den > 0`) that is **not** reduced: the dose
/// checker's fast path, where a gcd per operation would cost more than the
/// rest of a check. Compare with [`Frac::cmp_dec`]; reduce with
/// [`Frac::to_ratio`] only to report a value.
#[derive(Debug, Clone, Copy)]
pub struct Frac {
    num: i128,
    den: i128,
}

impl Frac {
    /// The exact product; unreduced while it fits, reduced (slow path) when
    /// the unreduced product would overflow.
    pub fn checked_mul(self, o: Frac) -> Result<Frac, QuantityError> {
        match (self.num.checked_mul(o.num), self.den.checked_mul(o.den)) {
            (Some(num), Some(den)) => Ok(Frac { num, den }),
            _ => Ok(self.to_ratio()?.checked_mul(o.to_ratio()?)?.into()),
        }
    }

    /// The exact quotient (`o` must not be zero).
    pub fn checked_div(self, o: Frac) -> Result<Frac, QuantityError> {
        if o.num == 0 {
            return Err(QuantityError::DivisionByZero);
        }
        // Keep the denominator positive.
        let (n, d) = if o.num < 0 {
            (
                o.den.checked_neg().ok_or(QuantityError::Overflow)?,
                o.num.checked_neg().ok_or(QuantityError::Overflow)?,
            )
        } else {
            (o.den, o.num)
        };
        self.checked_mul(Frac { num: n, den: d })
    }

    /// Compares with a [`Dec`] without any overflow.
    pub fn cmp_dec(self, d: Dec) -> Ordering {
        cmp_products(self.num, pow10(d.scale), d.mant, self.den)
    }

    /// The reduced fraction.
    pub fn to_ratio(self) -> Result<Ratio, QuantityError> {
        Ratio::new(self.num, self.den)
    }
}

impl From<Ratio> for Frac {
    fn from(r: Ratio) -> Frac {
        Frac {
            num: r.num,
            den: r.den,
        }
    }
}

impl From<Dec> for Frac {
    fn from(d: Dec) -> Frac {
        Frac {
            num: d.mant,
            den: pow10(d.scale),
        }
    }
}

impl Ord for Ratio {
    fn cmp(&self, o: &Self) -> Ordering {
        cmp_products(self.num, o.den, o.num, self.den)
    }
}

impl PartialOrd for Ratio {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<Dec> for Ratio {
    fn from(d: Dec) -> Ratio {
        d.to_ratio()
    }
}

impl fmt::Display for Ratio {
    /// The exact decimal when there is one, otherwise the value rounded to
    /// four decimals and marked `≈`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.to_dec() {
            return write!(f, "{d}");
        }
        let scaled = self.num.checked_mul(10_000).map(|n| {
            // Round half away from zero.
            let q = n / self.den;
            let r = (n % self.den).unsigned_abs() * 2;
            if r >= self.den.unsigned_abs() {
                q + n.signum()
            } else {
                q
            }
        });
        match scaled.and_then(|s| Dec::new(s, 4).ok()) {
            Some(d) => write!(f, "≈{d}"),
            None => write!(f, "{}/{}", self.num, self.den),
        }
    }
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// Greatest common divisor (binary algorithm: shifts and subtractions, no
/// 128-bit divisions, which are slow).
fn gcd(mut a: u128, mut b: u128) -> u128 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

/// Full 256-bit product of two `u128`, as (high, low).
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const M: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & M);
    let (b1, b0) = (b >> 64, b & M);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & M) + (p10 & M);
    let lo = (p00 & M) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// Compares `a·b` with `c·d` exactly.
fn cmp_products(a: i128, b: i128, c: i128, d: i128) -> Ordering {
    let s1 = a.signum() * b.signum();
    let s2 = c.signum() * d.signum();
    if s1 != s2 {
        return s1.cmp(&s2);
    }
    let m1 = mul_wide(a.unsigned_abs(), b.unsigned_abs());
    let m2 = mul_wide(c.unsigned_abs(), d.unsigned_abs());
    match s1 {
        1 => m1.cmp(&m2),
        -1 => m2.cmp(&m1),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Dec {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_canonically() {
        assert_eq!(d("4.50").to_string(), "4.5");
        assert_eq!(d("007").to_string(), "7");
        assert_eq!(d("0.000").to_string(), "0");
        assert_eq!(d("-0.05").to_string(), "-0.05");
        assert_eq!(d("25000").to_string(), "25000");
        assert_eq!(d("0.000000000001").to_string(), "0.000000000001");
        for bad in [
            "", "-", ".5", "5.", "1e3", "+1", " 1", "1 ", "1,5", "0x10", "1.2.3", "--1",
        ] {
            assert!(
                matches!(bad.parse::<Dec>(), Err(QuantityError::NotADecimal(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            "0.0000000000001".parse::<Dec>(),
            Err(QuantityError::TooManyDecimals(_))
        ));
        assert!(matches!(
            "1234567890123456789012345".parse::<Dec>(),
            Err(QuantityError::TooLong(_))
        ));
        assert!(matches!(
            "1".repeat(41).parse::<Dec>(),
            Err(QuantityError::TooLong(_))
        ));
        // Normalisation makes equal values equal.
        assert_eq!(d("2.0"), d("2"));
        assert_eq!(Dec::new(2500, 2).unwrap(), d("25"));
    }

    #[test]
    fn ratio_reduces_and_compares() {
        let r = Ratio::new(10, -4).unwrap();
        assert_eq!((r.numer(), r.denom()), (-5, 2));
        assert_eq!(Ratio::new(1, 0), Err(QuantityError::DivisionByZero));
        assert!(Ratio::new(1, 3).unwrap() < Ratio::new(34, 100).unwrap());
        assert_eq!(
            Ratio::new(1, 3).unwrap().cmp_dec(d("0.333333")),
            Ordering::Greater
        );
        assert_eq!(Ratio::new(2, 5).unwrap().cmp_dec(d("0.4")), Ordering::Equal);
        assert_eq!(Ratio::new(1, 3).unwrap().to_string(), "≈0.3333");
        assert_eq!(Ratio::new(2, 3).unwrap().to_string(), "≈0.6667");
        assert_eq!(Ratio::new(1, 8).unwrap().to_string(), "0.125");
        // Huge values compare without overflow.
        let big = Ratio::from_int(i128::MAX);
        let big2 = Ratio::new(i128::MAX, 3).unwrap();
        assert!(big > big2);
        assert_eq!(big.checked_mul(big), Err(QuantityError::Overflow));
    }

    #[test]
    fn gcd_is_right() {
        assert_eq!(gcd(0, 0), 0);
        assert_eq!(gcd(12, 18), 6);
        assert_eq!(gcd(25_000_000, 250), 250);
        assert_eq!(gcd(17, 5), 1);
    }

    fn arb_dec() -> impl Strategy<Value = Dec> {
        (-(10i128.pow(20))..10i128.pow(20), 0u32..=MAX_SCALE)
            .prop_map(|(m, s)| Dec::new(m, s).unwrap())
    }

    proptest! {
        #[test]
        fn dec_text_round_trips(x in arb_dec()) {
            let text = x.to_string();
            prop_assert_eq!(text.parse::<Dec>().unwrap(), x);
            // The printed form is canonical: printing the parse gives it back.
            prop_assert_eq!(text.parse::<Dec>().unwrap().to_string(), text);
        }

        #[test]
        fn dec_order_matches_value_order(a in arb_dec(), b in arb_dec()) {
            // Value order computed independently, through exact fractions.
            let (ra, rb) = (a.to_ratio(), b.to_ratio());
            prop_assert_eq!(a.cmp(&b), ra.cmp(&rb));
            prop_assert_eq!(ra.cmp_dec(b), a.cmp(&b));
            prop_assert_eq!(a == b, a.cmp(&b) == Ordering::Equal);
            // And against the mantissas scaled to a common exponent.
            let s = MAX_SCALE;
            let ma = a.mantissa() * 10i128.pow(s - a.scale());
            let mb = b.mantissa() * 10i128.pow(s - b.scale());
            prop_assert_eq!(a.cmp(&b), ma.cmp(&mb));
        }

        #[test]
        fn ratio_dec_round_trip(x in arb_dec()) {
            prop_assert_eq!(x.to_ratio().to_dec(), Some(x));
        }

        #[test]
        fn ratio_mul_div_inverse(a in 1i128..1_000_000_000, b in 1i128..1_000_000_000,
                                 c in 1i128..1_000_000_000, e in 1i128..1_000_000_000) {
            let x = Ratio::new(a, b).unwrap();
            let y = Ratio::new(c, e).unwrap();
            prop_assert_eq!(x.checked_mul(y).unwrap().checked_div(y).unwrap(), x);
            // Order is consistent with cross multiplication.
            prop_assert_eq!(x.cmp(&y), (a * e).cmp(&(c * b)));
        }

        #[test]
        fn unreduced_fractions_agree_with_reduced(a in arb_dec(), b in arb_dec(), c in arb_dec()) {
            prop_assume!(b.mantissa() != 0);
            let f = Frac::from(a).checked_mul(Frac::from(c));
            let r = a.to_ratio().checked_mul(c.to_ratio());
            prop_assert_eq!(f.and_then(Frac::to_ratio), r);
            let fd = Frac::from(a).checked_div(Frac::from(b)).unwrap();
            let rd = a.to_ratio().checked_div(b.to_ratio()).unwrap();
            prop_assert_eq!(fd.to_ratio().unwrap(), rd);
            prop_assert_eq!(fd.cmp_dec(c), rd.cmp_dec(c));
        }

        #[test]
        fn wide_compare_matches_narrow(a in any::<i64>(), b in any::<i64>(), c in any::<i64>(), e in any::<i64>()) {
            let (a, b, c, e) = (a as i128, b as i128, c as i128, e as i128);
            prop_assert_eq!(cmp_products(a, b, c, e), (a * b).cmp(&(c * e)));
        }
    }
}
