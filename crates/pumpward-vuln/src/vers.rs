//! `vers` version range specifiers (`vers:generic/>=1.0|<2.0`, `vers:all/*`),
//! as in the purl project's VERS specification.
//!
//! Accepted: `vers:<scheme>/<constraint>|<constraint>…` where the scheme is
//! lower-case letters, digits, `.`, `-` or `+`, and a constraint is `*` (only
//! alone) or a comparator (`=` when omitted, `!=`, `<`, `<=`, `>`, `>=`)
//! followed by a percent-encoded version. Spaces are ignored, as the spec
//! says. Versions are compared with this crate's firmware comparator
//! ([`crate::version`]) whatever the scheme: the pump vendors' schemes are
//! not among vers' registered ones, and the generic order agrees with
//! semver on plain dotted numbers.

use crate::purl::{percent_decode, percent_encode};
use crate::version::{Comparison, Scheme, Version};
use std::cmp::Ordering;

/// Why a `vers` string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersError {
    /// Does not start with `vers:`.
    #[error("a vers range starts with \"vers:\"")]
    NoPrefix,
    /// No `/` after the scheme, or an empty or invalid scheme.
    #[error("a vers range needs a versioning scheme then '/' (e.g. vers:generic/…): {0:?}")]
    BadScheme(String),
    /// No constraints.
    #[error("a vers range needs at least one constraint after the '/'")]
    Empty,
    /// `*` combined with other constraints.
    #[error("'*' must be the only constraint")]
    StarNotAlone,
    /// A constraint with no version.
    #[error("constraint {0:?} has no version")]
    NoVersion(String),
    /// A version this crate cannot read.
    #[error("constraint {0:?}: {1}")]
    BadVersion(String, String),
    /// Input too long.
    #[error("the vers string is longer than 4096 characters")]
    TooLong,
}

/// A comparator of a `vers` constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparator {
    /// `=` (also written as nothing).
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Comparator {
    /// The operator as written in canonical form (`=` is printed as nothing).
    pub fn as_str(self) -> &'static str {
        match self {
            Comparator::Eq => "",
            Comparator::Ne => "!=",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
        }
    }
}

/// One constraint: comparator and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersConstraint {
    /// The comparator.
    pub op: Comparator,
    /// The version (decoded).
    pub version: Version,
}

/// A parsed `vers` range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersRange {
    /// The versioning scheme (`generic`, `semver`, `all`, …).
    pub scheme: String,
    /// `None` for `*` (all versions), otherwise the constraints sorted by
    /// version (the canonical order).
    pub constraints: Option<Vec<VersConstraint>>,
}

/// Three-valued membership: firmware comparisons can be undecidable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contains {
    /// The version is in the range.
    Yes,
    /// The version is not in the range.
    No,
    /// The comparison needed could not be decided (the reason is given).
    Unknown(String),
}

impl VersRange {
    /// Parses a `vers` string.
    pub fn parse(s: &str) -> Result<VersRange, VersError> {
        if s.len() > 4096 {
            return Err(VersError::TooLong);
        }
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let rest = s
            .strip_prefix("vers:")
            .or_else(|| s.strip_prefix("VERS:"))
            .ok_or(VersError::NoPrefix)?;
        let (scheme, body) = rest
            .split_once('/')
            .ok_or_else(|| VersError::BadScheme(rest.chars().take(40).collect()))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        {
            return Err(VersError::BadScheme(crate::json::excerpt(&scheme)));
        }
        let body = body.trim_matches('|');
        if body.is_empty() {
            return Err(VersError::Empty);
        }
        if body == "*" {
            return Ok(VersRange {
                scheme,
                constraints: None,
            });
        }
        let mut out = Vec::new();
        for c in body.split('|') {
            if c.is_empty() {
                continue;
            }
            if c == "*" {
                return Err(VersError::StarNotAlone);
            }
            let (op, v) = if let Some(v) = c.strip_prefix(">=") {
                (Comparator::Ge, v)
            } else if let Some(v) = c.strip_prefix("<=") {
                (Comparator::Le, v)
            } else if let Some(v) = c.strip_prefix("!=") {
                (Comparator::Ne, v)
            } else if let Some(v) = c.strip_prefix('<') {
                (Comparator::Lt, v)
            } else if let Some(v) = c.strip_prefix('>') {
                (Comparator::Gt, v)
            } else if let Some(v) = c.strip_prefix('=') {
                (Comparator::Eq, v)
            } else {
                (Comparator::Eq, c)
            };
            if v.is_empty() {
                return Err(VersError::NoVersion(crate::json::excerpt(c)));
            }
            let decoded =
                percent_decode(v).map_err(|e| VersError::BadVersion(crate::json::excerpt(c), e))?;
            let version = Version::parse(&decoded)
                .map_err(|e| VersError::BadVersion(crate::json::excerpt(c), e.to_string()))?;
            out.push(VersConstraint { op, version });
        }
        if out.is_empty() {
            return Err(VersError::Empty);
        }
        out.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(VersRange {
            scheme,
            constraints: Some(out),
        })
    }

    /// Whether `v` is in the range, comparing with `scheme`. Follows the
    /// spec's algorithm: `!=` excludes, `=` includes, and the remaining
    /// comparators, in version order, form intervals (a `>`/`>=` opens one,
    /// the next `<`/`<=` closes it; a leading `<`/`<=` is open below and a
    /// trailing `>`/`>=` open above).
    pub fn contains(&self, v: &Version, scheme: Scheme) -> Contains {
        let Some(cs) = &self.constraints else {
            return Contains::Yes;
        };
        let mut unknown: Option<String> = None;
        let mut cmp = |bound: &Version| -> Option<Ordering> {
            match scheme.compare(v, bound) {
                Comparison::Ordered(o) => Some(o),
                Comparison::Ambiguous(r) | Comparison::Incomparable(r) => {
                    unknown.get_or_insert(r);
                    None
                }
            }
        };
        for c in cs {
            match (c.op, cmp(&c.version)) {
                (Comparator::Ne, Some(Ordering::Equal)) => return Contains::No,
                (Comparator::Eq, Some(Ordering::Equal)) => return Contains::Yes,
                _ => {}
            }
        }
        let ranged: Vec<&VersConstraint> = cs
            .iter()
            .filter(|c| !matches!(c.op, Comparator::Eq | Comparator::Ne))
            .collect();
        let mut i = 0;
        while i < ranged.len() {
            let c = ranged[i];
            let (lower, upper) = match c.op {
                Comparator::Gt | Comparator::Ge => {
                    let up = ranged
                        .get(i + 1)
                        .filter(|n| matches!(n.op, Comparator::Lt | Comparator::Le));
                    i += if up.is_some() { 2 } else { 1 };
                    (Some(c), up.copied())
                }
                _ => {
                    i += 1;
                    (None, Some(c))
                }
            };
            let lower_ok = match lower {
                None => Some(true),
                Some(b) => cmp(&b.version).map(|o| match b.op {
                    Comparator::Gt => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                }),
            };
            let upper_ok = match upper {
                None => Some(true),
                Some(b) => cmp(&b.version).map(|o| match b.op {
                    Comparator::Lt => o == Ordering::Less,
                    _ => o != Ordering::Greater,
                }),
            };
            if lower_ok == Some(true) && upper_ok == Some(true) {
                return Contains::Yes;
            }
        }
        match unknown {
            Some(r) => Contains::Unknown(r),
            None => Contains::No,
        }
    }
}

impl std::fmt::Display for VersRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "vers:{}/", self.scheme)?;
        match &self.constraints {
            None => f.write_str("*"),
            Some(cs) => {
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    write!(
                        f,
                        "{}{}",
                        c.op.as_str(),
                        percent_encode(c.version.as_str(), b"")
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let r = VersRange::parse("vers:all/*").unwrap();
        assert_eq!(r.constraints, None);
        assert_eq!(r.to_string(), "vers:all/*");
        let r = VersRange::parse("vers:generic/ <2.0 | >=1.0").unwrap();
        assert_eq!(r.to_string(), "vers:generic/>=1.0|<2.0");
        assert_eq!(
            VersRange::parse("vers:generic/*|>1"),
            Err(VersError::StarNotAlone)
        );
        assert_eq!(VersRange::parse("generic/>1"), Err(VersError::NoPrefix));
        assert!(matches!(
            VersRange::parse("vers:generic/>="),
            Err(VersError::NoVersion(_))
        ));
        assert!(matches!(
            VersRange::parse("vers:/1.0"),
            Err(VersError::BadScheme(_))
        ));
    }

    #[test]
    fn containment() {
        let g = Scheme::DottedNumeric;
        let r = VersRange::parse("vers:generic/>=1.0|<2.0").unwrap();
        assert_eq!(r.contains(&v("1.5"), g), Contains::Yes);
        assert_eq!(r.contains(&v("2.0"), g), Contains::No);
        assert_eq!(r.contains(&v("0.9"), g), Contains::No);
        let r = VersRange::parse("vers:generic/<=1.0|>=2.0|<3.0|!=2.5").unwrap();
        assert_eq!(r.contains(&v("0.1"), g), Contains::Yes);
        assert_eq!(r.contains(&v("1.5"), g), Contains::No);
        assert_eq!(r.contains(&v("2.2"), g), Contains::Yes);
        assert_eq!(r.contains(&v("2.5"), g), Contains::No);
        let r = VersRange::parse("vers:generic/1.0|1.2").unwrap();
        assert_eq!(r.contains(&v("1.2"), g), Contains::Yes);
        assert_eq!(r.contains(&v("1.1"), g), Contains::No);
        let r = VersRange::parse("vers:generic/<=13.4").unwrap();
        assert!(matches!(
            r.contains(&v("13.40"), Scheme::Generic),
            Contains::Unknown(_)
        ));
        let r = VersRange::parse("vers:all/*").unwrap();
        assert_eq!(r.contains(&v("1"), g), Contains::Yes);
    }

    fn arb_range() -> impl Strategy<Value = String> {
        let op = prop_oneof![
            Just(""),
            Just("!="),
            Just("<"),
            Just("<="),
            Just(">"),
            Just(">=")
        ];
        // Letters only as a one-letter suffix: a word such as "to" or "or"
        // would make the version prose (refused by design).
        let ver = "[0-9]{1,3}(\\.[0-9]{1,3}[a-z]?){0,3}";
        prop_oneof![
            Just("vers:all/*".to_string()),
            ("[a-z]{2,8}", proptest::collection::vec((op, ver), 1..5)).prop_map(|(s, cs)| {
                let body: Vec<String> = cs.into_iter().map(|(o, v)| format!("{o}{v}")).collect();
                format!("vers:{s}/{}", body.join("|"))
            })
        ]
    }

    proptest! {
        #[test]
        fn parse_print_round_trip(s in arb_range()) {
            let r = VersRange::parse(&s).unwrap();
            let printed = r.to_string();
            let again = VersRange::parse(&printed).unwrap();
            prop_assert_eq!(&again, &r);
            prop_assert_eq!(again.to_string(), printed);
        }

        #[test]
        fn never_panics(s in "vers:\\PC{0,40}", x in "[0-9.a-z]{1,8}") {
            if let Ok(r) = VersRange::parse(&s) {
                if let Ok(v) = Version::parse(&x) {
                    let _ = r.contains(&v, Scheme::Generic);
                }
            }
        }
    }
}
