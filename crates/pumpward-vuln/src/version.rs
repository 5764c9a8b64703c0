//! Vendor firmware versions: a tokenizing comparator and the per-vendor
//! schemes evident in the advisories.
//!
//! Pump firmware versions are not semver. The shipped advisories use
//! "9.33.1", "2.6A", "U61", "L81", "012U000040", "22D28", "13.40",
//! "1.1.3 MR Build 11". A [`Version`] is the string cut into tokens:
//! maximal runs of digits (compared as numbers of any length, so leading
//! zeros and 30-digit builds are fine) and maximal runs of letters
//! (compared case-insensitively); every other character separates. A
//! leading `v`/`V` before a digit is dropped ("v22D28" = "22D28").
//!
//! The generic order (`Ord` on [`Version`]) is a total order:
//! - trailing zero numbers do not count ("9.33" = "9.33.0");
//! - tokens are compared left to right; a number sorts after a word at the
//!   same position (rpm's rule: "1.0.1" > "1.0.a");
//! - a version that extends another sorts after it ("2.6A" > "2.6",
//!   "1.1.3 Build 10" > "1.1.3").
//!
//! Whether "13.4" means 13.40 or 13.04 cannot be known from the text; a
//! [`Scheme`] says how a vendor's numbers work, and where no scheme is
//! evident ([`Scheme::Generic`]) a comparison whose answer depends on it is
//! reported as [`Comparison::Ambiguous`] instead of being guessed.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// The longest version string accepted. Real firmware versions are under 30
/// characters; anything longer is a sentence or hostile.
pub const MAX_VERSION_LEN: usize = 128;

/// Why a string is not a version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Empty or only separators.
    #[error("the version is empty")]
    Empty,
    /// Longer than [`MAX_VERSION_LEN`].
    #[error("the version is {0} characters long (at most {MAX_VERSION_LEN})")]
    TooLong(usize),
    /// A character outside letters, digits and `. - _ + : ~` and space.
    #[error("the version contains {0:?}, which no firmware version scheme uses")]
    BadChar(char),
    /// Starts with a word that is not a short release-line prefix (such as
    /// "U61" or "A10"): most likely prose, a date or a model name.
    #[error("{0:?} does not start like a version (a digit, or one letter followed by digits)")]
    NotAVersion(String),
    /// Contains a word that joins or qualifies versions ("and", "prior",
    /// "to"…): the text is a rule or prose, not one version.
    #[error("{0:?} contains the word {1:?}: a rule or prose, not one version")]
    Prose(String, String),
}

/// One token of a version.
#[derive(Debug, Clone)]
pub enum Token {
    /// A run of digits.
    Num {
        /// The digits without leading zeros ("0" for zero).
        digits: String,
        /// How many digits were written (for the decimal reading, "40" vs "4").
        width: usize,
        /// Whether a `.` came right before it (a candidate decimal fraction).
        after_dot: bool,
    },
    /// A run of letters, lower-cased.
    Alpha(String),
}

impl Token {
    fn is_zero(&self) -> bool {
        matches!(self, Token::Num { digits, .. } if digits == "0")
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        cmp_token(self, other) == Ordering::Equal
    }
}
impl Eq for Token {}

fn cmp_digits(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_token(a: &Token, b: &Token) -> Ordering {
    match (a, b) {
        (Token::Num { digits: x, .. }, Token::Num { digits: y, .. }) => cmp_digits(x, y),
        (Token::Alpha(x), Token::Alpha(y)) => x.cmp(y),
        (Token::Num { .. }, Token::Alpha(_)) => Ordering::Greater,
        (Token::Alpha(_), Token::Num { .. }) => Ordering::Less,
    }
}

/// A parsed firmware version: the original text and its tokens.
#[derive(Debug, Clone)]
pub struct Version {
    raw: String,
    tokens: Vec<Token>,
}

impl Version {
    /// Parses a version. Accepts digits, letters and the separators
    /// `. - _ + : ~` and space; a leading `v` before a digit is dropped. The
    /// first token must be a number or a single letter directly followed by
    /// digits ("U61", "L81", "A10", "D25"), so that prose ("all devices
    /// released prior to July 1 2017"), model names ("MMT-1710", "IPv4") and
    /// revision words ("Rev J") are refused rather than read as versions.
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let t = s.trim();
        if t.chars().count() > MAX_VERSION_LEN {
            return Err(VersionError::TooLong(t.chars().count()));
        }
        let body = match t.strip_prefix(['v', 'V']) {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
            _ => t,
        };
        let mut tokens = Vec::new();
        let mut prev_sep: Option<char> = None;
        let mut chars = body.char_indices().peekable();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_ascii_digit() {
                let mut end = i;
                while let Some(&(j, d)) = chars.peek() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    end = j + 1;
                    chars.next();
                }
                let run = &body[i..end];
                let stripped = run.trim_start_matches('0');
                tokens.push(Token::Num {
                    digits: if stripped.is_empty() {
                        "0".into()
                    } else {
                        stripped.into()
                    },
                    width: run.len(),
                    after_dot: prev_sep == Some('.'),
                });
                prev_sep = None;
            } else if c.is_ascii_alphabetic() {
                let mut end = i;
                while let Some(&(j, d)) = chars.peek() {
                    if !d.is_ascii_alphabetic() {
                        break;
                    }
                    end = j + 1;
                    chars.next();
                }
                tokens.push(Token::Alpha(body[i..end].to_ascii_lowercase()));
                prev_sep = None;
            } else if matches!(c, '.' | '-' | '_' | '+' | ':' | '~' | ' ') {
                prev_sep = Some(c);
                chars.next();
            } else {
                return Err(VersionError::BadChar(c));
            }
        }
        // Words that join or qualify versions make the text a rule or prose
        // ("1.0 and 2.0", "2.3.6 and below"), not one version.
        const PROSE: [&str; 14] = [
            "and", "or", "to", "prior", "below", "earlier", "later", "before", "after", "through",
            "version", "versions", "all", "with",
        ];
        if let Some(Token::Alpha(w)) = tokens
            .iter()
            .find(|t| matches!(t, Token::Alpha(w) if PROSE.contains(&w.as_str())))
        {
            return Err(VersionError::Prose(t.chars().take(40).collect(), w.clone()));
        }
        match tokens.first() {
            None => return Err(VersionError::Empty),
            Some(Token::Alpha(w)) => {
                let glued_digit = body
                    .as_bytes()
                    .get(w.len())
                    .is_some_and(|b| b.is_ascii_digit());
                if w.len() != 1 || !glued_digit {
                    return Err(VersionError::NotAVersion(t.chars().take(40).collect()));
                }
            }
            Some(Token::Num { .. }) => {}
        }
        Ok(Version {
            raw: t.to_owned(),
            tokens,
        })
    }

    /// The text as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The tokens.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The tokens that take part in comparison: without trailing zeros.
    fn significant(&self) -> &[Token] {
        let mut n = self.tokens.len();
        while n > 0 && self.tokens[n - 1].is_zero() {
            n -= 1;
        }
        &self.tokens[..n]
    }

    /// Whether `prefix`'s tokens begin this version ("6.05" starts with "6").
    pub fn starts_with(&self, prefix: &[Token]) -> bool {
        prefix.len() <= self.tokens.len()
            && prefix
                .iter()
                .zip(&self.tokens)
                .all(|(a, b)| cmp_token(a, b) == Ordering::Equal)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        for (x, y) in a.iter().zip(b) {
            match cmp_token(x, y) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        a.len().cmp(&b.len())
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}
impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Consistent with Eq: only the significant tokens, by value.
        for t in self.significant() {
            match t {
                Token::Num { digits, .. } => {
                    0u8.hash(state);
                    digits.hash(state);
                }
                Token::Alpha(w) => {
                    1u8.hash(state);
                    w.hash(state);
                }
            }
        }
    }
}

/// How a vendor numbers its firmware. Each scheme names the advisory text it
/// was read from; [`Scheme::for_manufacturer`] picks one per canonical
/// manufacturer key (see `data/aliases.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// No scheme is evident: the generic order, but when the answer would
    /// change if "13.4" meant 13.40 (a decimal fraction) rather than 13.04,
    /// the comparison is [`Comparison::Ambiguous`]. Hospira's "Plum A+ 13.4
    /// and prior" (ICSA-15-161-01) against a pump reporting "13.40" is the
    /// case this exists for.
    Generic,
    /// Every dot-separated number is an integer: 9.7 < 9.19 < 9.33 < 12.1.
    /// BD Alaris: ICSMA-17-017-02 lists 9.7 beside "9.33 and prior" and says
    /// "All Alaris System software versions less than 9.19 are end of life";
    /// ICSMA-20-170-06 lists 9.13, 9.19, 9.33, 12.1 in that order.
    DottedNumeric,
    /// B. Braun SpaceCom / Battery Pack SP with Wi-Fi: a release-line letter
    /// then a build number. ICSMA-20-296-02: "U61 and earlier (United
    /// States), L81 and earlier (outside the United States)"; the long form
    /// in NVD (CVE-2021-33886, CVE-2023-0888) is "012U000062", "053L000092".
    /// Versions on different lines (U vs L, or short vs long form) are
    /// [`Comparison::Incomparable`]: a US build says nothing about the
    /// outside-US line.
    BBraunLine,
}

/// The result of comparing two versions under a scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// A definite order.
    Ordered(Ordering),
    /// The order depends on a reading the text does not settle.
    Ambiguous(String),
    /// The two versions are on different release lines.
    Incomparable(String),
}

impl Scheme {
    /// The scheme for a canonical manufacturer key (`bd`, `bbraun`, …);
    /// [`Scheme::Generic`] when none is evident.
    pub fn for_manufacturer(key: &str) -> Scheme {
        match key {
            "bd" => Scheme::DottedNumeric,
            "bbraun" => Scheme::BBraunLine,
            _ => Scheme::Generic,
        }
    }

    /// Compares `a` with `b` under this scheme.
    pub fn compare(self, a: &Version, b: &Version) -> Comparison {
        match self {
            Scheme::DottedNumeric => Comparison::Ordered(a.cmp(b)),
            Scheme::Generic => {
                let plain = a.cmp(b);
                match decimal_cmp(a, b) {
                    Some(d) if d != plain => Comparison::Ambiguous(format!(
                        "{a} vs {b}: {} if dot-separated numbers are integers, {} if they are decimal fractions",
                        word(plain),
                        word(d)
                    )),
                    _ => Comparison::Ordered(plain),
                }
            }
            Scheme::BBraunLine => match (braun_line(a), braun_line(b)) {
                (Some(la), Some(lb)) if la == lb => Comparison::Ordered(a.cmp(b)),
                (Some(la), Some(lb)) => Comparison::Incomparable(format!(
                    "{a} is on B. Braun release line {la}, {b} on line {lb}"
                )),
                _ => Comparison::Ordered(a.cmp(b)),
            },
        }
    }
}

fn word(o: Ordering) -> &'static str {
    match o {
        Ordering::Less => "older",
        Ordering::Equal => "the same",
        Ordering::Greater => "newer",
    }
}

/// The B. Braun release line of a version: its letter and whether it is the
/// long (9-digit-build) form. `None` when the version is not of that shape.
fn braun_line(v: &Version) -> Option<String> {
    match v.tokens.as_slice() {
        [Token::Alpha(l), Token::Num { .. }] if l.len() == 1 => Some(l.to_ascii_uppercase()),
        [Token::Num { width: 3, .. }, Token::Alpha(l), Token::Num { width: 6, .. }]
            if l.len() == 1 =>
        {
            Some(format!("{} (long form)", l.to_ascii_uppercase()))
        }
        _ => None,
    }
}

/// The order if every number written after a dot is a decimal fraction
/// ("13.4" = "13.40"). `None` when the reading does not apply.
fn decimal_cmp(a: &Version, b: &Version) -> Option<Ordering> {
    let (x, y) = (a.significant(), b.significant());
    let mut applied = false;
    for (s, t) in x.iter().zip(y) {
        let o = match (s, t) {
            (
                Token::Num {
                    digits: d1,
                    width: w1,
                    after_dot: true,
                },
                Token::Num {
                    digits: d2,
                    width: w2,
                    after_dot: true,
                },
            ) if w1 != w2 => {
                applied = true;
                // Written digits (with their leading zeros), padded right.
                let f1 = format!("{d1:0>w1$}");
                let f2 = format!("{d2:0>w2$}");
                let n = f1.len().max(f2.len());
                format!("{f1:0<n$}").cmp(&format!("{f2:0<n$}"))
            }
            _ => cmp_token(s, t),
        };
        if o != Ordering::Equal {
            return applied.then_some(o);
        }
    }
    if !applied {
        return None;
    }
    // Equal on the common part: under the decimal reading a shorter version
    // whose extension is all zeros is equal; otherwise the longer is newer.
    Some(x.len().cmp(&y.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn real_versions_parse() {
        for s in [
            "9.33.1",
            "v22D28",
            "L81",
            "U61",
            "012U000040",
            "2.6A",
            "13.40",
            "1.1.3 MR Build 11",
            "1.3.0 Build 14",
            "4107600010.23",
            "053l000092",
            "20d29",
            "3.0",
            "A10",
            "d25",
        ] {
            v(s);
        }
    }

    #[test]
    fn prose_dates_and_models_are_not_versions() {
        for s in [
            "july 1 2017",
            "MMT-1710",
            "IPv4",
            "Rev J-M",
            "all versions",
            "",
            "  ",
            "9.33 (US)",
            "1.0 and 2.0",
            "2.3.6 and below",
        ] {
            assert!(Version::parse(s).is_err(), "{s:?} parsed");
        }
        assert_eq!(
            Version::parse(&"1".repeat(10_000_000)),
            Err(VersionError::TooLong(10_000_000))
        );
    }

    #[test]
    fn generic_order() {
        assert!(v("9.7") < v("9.33"));
        assert!(v("9.33") < v("9.33.1"));
        assert_eq!(v("9.33"), v("9.33.0"));
        assert_eq!(v("v22D28"), v("22d28"));
        assert!(v("22D19") < v("22D28"));
        assert!(v("20D32") < v("22D19"));
        assert!(v("2.4A") < v("2.6A"));
        assert!(v("2.6") < v("2.6A"));
        assert!(v("2.6A") < v("2.7"));
        assert!(v("1.1.3 Build 10") < v("1.1.3 MR Build 11"));
        assert!(v("1.1.3") < v("1.1.3 Build 10"));
        assert!(v("012U000040") < v("012U000062"));
        assert_eq!(v("012U000040"), v("12u40"));
        assert!(v("99999999999999999999999999.1") > v("99999999999999999999999998.9"));
    }

    #[test]
    fn schemes() {
        use Comparison::*;
        let g = Scheme::Generic;
        assert!(matches!(g.compare(&v("13.40"), &v("13.4")), Ambiguous(_)));
        assert!(matches!(g.compare(&v("9.7"), &v("9.33")), Ambiguous(_)));
        assert_eq!(g.compare(&v("13.3"), &v("13.4")), Ordered(Ordering::Less));
        assert_eq!(g.compare(&v("5.8"), &v("5.10.1")), Ambiguous(
            "5.8 vs 5.10.1: older if dot-separated numbers are integers, newer if they are decimal fractions".into()
        ));
        assert_eq!(
            g.compare(&v("2.6A"), &v("2.4A")),
            Ordered(Ordering::Greater)
        );
        let bd = Scheme::for_manufacturer("bd");
        assert_eq!(bd.compare(&v("9.7"), &v("9.33")), Ordered(Ordering::Less));
        assert_eq!(
            bd.compare(&v("12.1"), &v("9.33")),
            Ordered(Ordering::Greater)
        );
        let bb = Scheme::for_manufacturer("bbraun");
        assert_eq!(bb.compare(&v("U55"), &v("U61")), Ordered(Ordering::Less));
        assert!(matches!(bb.compare(&v("U55"), &v("L81")), Incomparable(_)));
        assert!(matches!(
            bb.compare(&v("012U000040"), &v("U61")),
            Incomparable(_)
        ));
        assert_eq!(
            bb.compare(&v("053L000092"), &v("053L000100")),
            Ordered(Ordering::Less)
        );
    }

    fn arb_version() -> impl Strategy<Value = String> {
        let tok = prop_oneof![
            "[0-9]{1,4}".prop_map(|s| s),
            "[a-dA-D]{1,2}".prop_map(|s| s),
        ];
        let sep = prop_oneof![Just("."), Just("-"), Just(""), Just(" ")];
        ("[0-9]{1,3}", proptest::collection::vec((sep, tok), 0..5)).prop_map(|(first, rest)| {
            let mut s = first;
            for (sep, t) in rest {
                s.push_str(sep);
                s.push_str(&t);
            }
            s
        })
    }

    proptest! {
        #[test]
        fn generated_versions_parse(s in arb_version()) {
            prop_assert!(Version::parse(&s).is_ok());
        }

        #[test]
        fn antisymmetric(a in arb_version(), b in arb_version()) {
            let (x, y) = (v(&a), v(&b));
            prop_assert_eq!(x.cmp(&y), y.cmp(&x).reverse());
            prop_assert_eq!(x == y, x.cmp(&y) == Ordering::Equal);
        }

        #[test]
        fn transitive(a in arb_version(), b in arb_version(), c in arb_version()) {
            let mut vs = [v(&a), v(&b), v(&c)];
            vs.sort();
            prop_assert!(vs[0] <= vs[1] && vs[1] <= vs[2] && vs[0] <= vs[2]);
        }

        #[test]
        fn equal_versions_hash_equal(a in arb_version()) {
            use std::collections::hash_map::DefaultHasher;
            let x = v(&a);
            let y = v(&format!("{a}.0"));
            prop_assert_eq!(&x, &y);
            let h = |v: &Version| { let mut s = DefaultHasher::new(); v.hash(&mut s); s.finish() };
            prop_assert_eq!(h(&x), h(&y));
        }

        #[test]
        fn scheme_comparisons_agree_with_reverse(a in arb_version(), b in arb_version()) {
            for s in [Scheme::Generic, Scheme::DottedNumeric, Scheme::BBraunLine] {
                let (x, y) = (v(&a), v(&b));
                match (s.compare(&x, &y), s.compare(&y, &x)) {
                    (Comparison::Ordered(p), Comparison::Ordered(q)) => prop_assert_eq!(p, q.reverse()),
                    (Comparison::Ambiguous(_), Comparison::Ambiguous(_)) => {}
                    (Comparison::Incomparable(_), Comparison::Incomparable(_)) => {}
                    (p, q) => prop_assert!(false, "{s:?}: {p:?} vs {q:?}"),
                }
            }
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = Version::parse(&s);
        }
    }
}
