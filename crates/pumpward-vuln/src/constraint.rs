//! Version constraints as advisories write them, and matching an installed
//! version (and the asset's other components) against them.
//!
//! [`VersionConstraint::parse`] reads the textual forms found in the CISA
//! CSAF files' `product_version` / `product_version_range` branches and in
//! CVE records' affected versions:
//!
//! | text (real examples) | constraint |
//! |---|---|
//! | `vers:all/*`, `All versions` | [`VersionConstraint::Any`] |
//! | `vers:generic/>=1.0\|<2.0` | [`VersionConstraint::Vers`] |
//! | `9.7`, `1.1.3 MR Build 11` | [`VersionConstraint::Exact`] |
//! | `<=5.8`, `<= 9.33`, `< 3.0`, `>= 2.0` | [`VersionConstraint::Range`] |
//! | `2.3.6 and below`, `9.33.1 and earlier`, `2.6A or lower`, `prior to 3.0`, `2.0 and later` | [`VersionConstraint::Range`] |
//! | `v16 … v22D28`, `1.1 to 1.3.2` | [`VersionConstraint::Range`] (both ends included) |
//! | `6.x`, `2.X` | [`VersionConstraint::Wildcard`] |
//! | `9.13 \| 9.19 \| 9.33 \| 12.1`, `9.13 / 9.19`, `<= U61 \|<= L81`, `A10 \| A11` | [`VersionConstraint::AnyOf`] |
//! | `MMT-1715 \| MMT-1754` (model numbers where a version belongs, ICSMA-22-263-01) | [`VersionConstraint::Models`] |
//! | `v6.x with Wireless Battery Modules v16 … v22D28` | [`VersionConstraint::WithComponent`] |
//! | `6.05 (model 35700BAX)` | [`VersionConstraint::All`] of a version and a model |
//! | anything else (`Rev B-M`, `<  july 1 2017`, `IPv4`) | [`VersionConstraint::Unparsed`] |
//!
//! The invariant: **unparseable never matches silently.** An
//! [`VersionConstraint::Unparsed`] text, an installed version that cannot be
//! read, an ambiguous comparison, a missing model or component: each gives
//! [`Decision::Undecided`] with the reason, which the findings engine raises
//! as `review` with the advisory's own text. Nothing is guessed to match, and
//! nothing is guessed not to.

use crate::vers::{Contains, VersRange};
use crate::version::{Comparison, Scheme, Token, Version};
use std::cmp::Ordering;

/// The longest constraint text interpreted; longer text is kept unparsed.
pub const MAX_CONSTRAINT_LEN: usize = 512;

/// One end of a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The version.
    pub version: Version,
    /// Whether the bound itself is in the range.
    pub inclusive: bool,
}

/// A structured version rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionConstraint {
    /// Every version.
    Any,
    /// One version.
    Exact(Version),
    /// Between optional bounds.
    Range {
        /// Lower bound.
        lower: Option<Bound>,
        /// Upper bound.
        upper: Option<Bound>,
    },
    /// Every version starting with these tokens (`6.x`).
    Wildcard(Version),
    /// A `vers` range.
    Vers(VersRange),
    /// Any of these.
    AnyOf(Vec<VersionConstraint>),
    /// All of these.
    All(Vec<VersionConstraint>),
    /// The advisory names hardware model numbers where a version belongs;
    /// matched against the asset's model number, every version.
    Models(Vec<String>),
    /// A condition on the product and on a named second component of the
    /// asset (a battery module, a communication module).
    WithComponent {
        /// The product's own rule.
        main: Box<VersionConstraint>,
        /// The component's name as the advisory writes it.
        component: String,
        /// The component's rule.
        component_rule: Box<VersionConstraint>,
    },
    /// Text that could not be interpreted, kept as written.
    Unparsed(String),
}

/// A named software or hardware component installed in an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Name ("Wireless Battery Module").
    pub name: String,
    /// Version ("22D24").
    pub version: String,
}

/// What is known about the asset being matched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Installed<'a> {
    /// The product's firmware / software version.
    pub version: Option<&'a str>,
    /// The asset's model number.
    pub model: Option<&'a str>,
    /// Its other components.
    pub components: &'a [Component],
}

/// The result of a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The asset is within the rule.
    Yes,
    /// It is not.
    No,
    /// It cannot be decided; the reason says why. Never to be read as
    /// either answer.
    Undecided(String),
}

/// Internal outcome: a comparison across release lines is neither yes nor no
/// on its own; in a list it defers to the other members.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Yes,
    No,
    Undecided(String),
    OtherLine(String),
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strip_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let n = prefix.len();
    (s.len() >= n && s.is_char_boundary(n) && s[..n].eq_ignore_ascii_case(prefix))
        .then(|| s[n..].trim_start())
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let n = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(n) && s[n..].eq_ignore_ascii_case(suffix)).then(|| s[..n].trim_end())
}

/// Splits at the first case-insensitive occurrence of `sep`.
fn split_ci<'a>(s: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let lower = s.to_ascii_lowercase();
    let i = lower.find(sep)?;
    Some((s[..i].trim(), s[i + sep.len()..].trim()))
}

/// A model designation: letters, a hyphen, digits (`MMT-1710`), or letters
/// and digits ending in letters (`35700BAX`).
fn is_model(s: &str) -> bool {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        return (2..=5).contains(&a.len())
            && a.bytes().all(|c| c.is_ascii_alphabetic())
            && !b.is_empty()
            && b.bytes().all(|c| c.is_ascii_digit());
    }
    s.len() >= 4
        && s.bytes().take_while(u8::is_ascii_digit).count() >= 3
        && s.bytes()
            .skip_while(u8::is_ascii_digit)
            .all(|c| c.is_ascii_alphabetic())
        && s.bytes().last().is_some_and(|c| c.is_ascii_alphabetic())
}

fn version(s: &str) -> Option<Version> {
    let s = s.trim();
    let s = strip_ci(s, "versions ")
        .or_else(|| strip_ci(s, "version "))
        .or_else(|| strip_ci(s, "software versions "))
        .or_else(|| strip_ci(s, "software version "))
        .unwrap_or(s);
    Version::parse(s).ok()
}

fn bound(s: &str, inclusive: bool) -> Option<Bound> {
    version(s).map(|version| Bound { version, inclusive })
}

impl VersionConstraint {
    /// Interprets an advisory's version text. Never fails: what cannot be
    /// read is [`VersionConstraint::Unparsed`].
    pub fn parse(text: &str) -> VersionConstraint {
        if text.len() > MAX_CONSTRAINT_LEN {
            let mut t: String = text.chars().take(MAX_CONSTRAINT_LEN).collect();
            t.push('…');
            return VersionConstraint::Unparsed(t);
        }
        let t = collapse_ws(text);
        Self::parse_inner(&t).unwrap_or(VersionConstraint::Unparsed(t))
    }

    fn parse_inner(t: &str) -> Option<VersionConstraint> {
        if t.is_empty() {
            return None;
        }
        if t.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("vers:")) {
            let r = VersRange::parse(t).ok()?;
            return Some(if r.constraints.is_none() {
                VersionConstraint::Any
            } else {
                VersionConstraint::Vers(r)
            });
        }
        let lower = t.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "*" | "all" | "all versions" | "any" | "any version" | "all devices"
        ) {
            return Some(VersionConstraint::Any);
        }
        if let Some((main, rest)) = split_ci(t, " with ") {
            let main = Self::parse_inner(main)?;
            let (component, rule) = split_component(rest)?;
            return Some(VersionConstraint::WithComponent {
                main: Box::new(main),
                component,
                component_rule: Box::new(Self::parse_inner(rule)?),
            });
        }
        for sep in ['|', ','] {
            if t.contains(sep) {
                return list(t.split(sep));
            }
        }
        if t.contains(" / ") {
            return list(t.split(" / "));
        }
        Self::simple(t)
    }

    fn simple(t: &str) -> Option<VersionConstraint> {
        let t = t.trim();
        // A parenthetical naming a model: "6.05 (model 35700BAX)".
        if let (Some(open), true) = (t.find('('), t.ends_with(')')) {
            let inner = &t[open + 1..t.len() - 1];
            let model = strip_ci(inner.trim(), "model ")?;
            if !is_model(model) {
                return None;
            }
            return Some(VersionConstraint::All(vec![
                Self::simple(&t[..open])?,
                VersionConstraint::Models(vec![model.trim().to_ascii_uppercase()]),
            ]));
        }
        for (op, incl, upper) in [
            ("<=", true, true),
            (">=", true, false),
            ("<", false, true),
            (">", false, false),
            ("=", true, true),
        ] {
            if let Some(rest) = t.strip_prefix(op) {
                let b = bound(rest, incl)?;
                return Some(if op == "=" {
                    VersionConstraint::Exact(b.version)
                } else if upper {
                    VersionConstraint::Range {
                        lower: None,
                        upper: Some(b),
                    }
                } else {
                    VersionConstraint::Range {
                        lower: Some(b),
                        upper: None,
                    }
                });
            }
        }
        for suffix in [
            "and below",
            "or below",
            "and prior versions",
            "and prior",
            "or prior",
            "and earlier",
            "or earlier",
            "and lower",
            "or lower",
            "and older",
            "or older",
        ] {
            if let Some(rest) = strip_suffix_ci(t, suffix) {
                return Some(VersionConstraint::Range {
                    lower: None,
                    upper: Some(bound(rest, true)?),
                });
            }
        }
        for suffix in [
            "and later",
            "or later",
            "and above",
            "or above",
            "and newer",
            "or newer",
        ] {
            if let Some(rest) = strip_suffix_ci(t, suffix) {
                return Some(VersionConstraint::Range {
                    lower: Some(bound(rest, true)?),
                    upper: None,
                });
            }
        }
        for prefix in [
            "all versions prior to",
            "all versions before",
            "versions prior to",
            "prior to",
            "before",
        ] {
            if let Some(rest) = strip_ci(t, prefix) {
                return Some(VersionConstraint::Range {
                    lower: None,
                    upper: Some(bound(rest, false)?),
                });
            }
        }
        for sep in [" … ", " ... ", " to ", " through ", " - "] {
            if let Some((a, b)) = split_ci(t, sep) {
                return Some(VersionConstraint::Range {
                    lower: Some(bound(a, true)?),
                    upper: Some(bound(b, true)?),
                });
            }
        }
        // "2131 and 2141" (ICSMA-19-029-01) is a list; the suffix forms
        // ("… and below") were handled above.
        for sep in [" and ", " or "] {
            if let Some((a, b)) = split_ci(t, sep) {
                return list([a, b].into_iter());
            }
        }
        if is_model(t) {
            return Some(VersionConstraint::Models(vec![t.to_ascii_uppercase()]));
        }
        if let Some(prefix) = t
            .strip_suffix(".x")
            .or_else(|| t.strip_suffix(".X"))
            .or_else(|| t.strip_suffix(".*"))
        {
            return version(prefix).map(VersionConstraint::Wildcard);
        }
        version(t).map(VersionConstraint::Exact)
    }

    /// Whether this constraint could not be interpreted (anywhere inside).
    pub fn is_unparsed(&self) -> bool {
        match self {
            VersionConstraint::Unparsed(_) => true,
            VersionConstraint::AnyOf(v) | VersionConstraint::All(v) => {
                v.iter().any(Self::is_unparsed)
            }
            VersionConstraint::WithComponent {
                main,
                component_rule,
                ..
            } => main.is_unparsed() || component_rule.is_unparsed(),
            _ => false,
        }
    }

    /// Matches the installed product against this rule, comparing versions
    /// with `scheme`.
    pub fn matches(&self, installed: &Installed<'_>, scheme: Scheme) -> Decision {
        // The installed version is read once, however many arms the rule has.
        let ctx = Ctx {
            version: match installed.version {
                None => Err("the asset's version is not known".into()),
                Some(v) => Version::parse(v)
                    .map_err(|e| format!("the asset's version {:?}: {e}", crate::json::excerpt(v))),
            },
            model: installed.model,
            components: installed.components,
        };
        match self.eval(&ctx, scheme) {
            Out::Yes => Decision::Yes,
            Out::No => Decision::No,
            Out::Undecided(r) | Out::OtherLine(r) => Decision::Undecided(r),
        }
    }

    fn eval(&self, inst: &Ctx<'_>, scheme: Scheme) -> Out {
        use VersionConstraint as C;
        let installed_version = || -> Result<&Version, Out> {
            inst.version.as_ref().map_err(|r| Out::Undecided(r.clone()))
        };
        match self {
            C::Any => Out::Yes,
            C::Unparsed(t) => Out::Undecided(format!(
                "the advisory's version text {:?} could not be interpreted",
                crate::json::excerpt(t)
            )),
            C::Models(models) => match inst.model {
                None => Out::Undecided(format!(
                    "the advisory names model numbers ({}) and the asset's model is not known",
                    models.join(", ")
                )),
                Some(m) => {
                    // The inventory often records the product's name ("MiniMed
                    // 670G") rather than its model number: a single word is
                    // the model number; in longer text only words shaped like
                    // the advisory's designations (MMT-1780 beside MMT-1740,
                    // not the "670G" of the name) can decide.
                    let m = m.trim();
                    let hyphenated = models.iter().any(|x| x.contains('-'));
                    let carried: Vec<String> = if m.split_whitespace().count() <= 1 {
                        vec![m.to_ascii_uppercase()]
                    } else {
                        m.split(|c: char| {
                            c.is_whitespace() || matches!(c, '/' | ',' | '(' | ')' | ';')
                        })
                        .filter(|w| is_model(w) && w.contains('-') == hyphenated)
                        .map(str::to_ascii_uppercase)
                        .collect()
                    };
                    if carried.is_empty() {
                        Out::Undecided(format!(
                            "the advisory names model numbers ({}) and the asset's model {m:?} carries none",
                            models.join(", ")
                        ))
                    } else if carried.iter().any(|c| models.contains(c)) {
                        Out::Yes
                    } else {
                        Out::No
                    }
                }
            },
            C::Exact(want) => match installed_version() {
                Err(o) => o,
                Ok(v) => from_cmp(scheme.compare(v, want), |o| o == Ordering::Equal),
            },
            C::Wildcard(prefix) => match installed_version() {
                Err(o) => o,
                Ok(v) => {
                    let p: &[Token] = prefix.tokens();
                    if v.starts_with(p) {
                        Out::Yes
                    } else {
                        Out::No
                    }
                }
            },
            C::Range { lower, upper } => match installed_version() {
                Err(o) => o,
                Ok(v) => {
                    let lo = lower.as_ref().map(|b| {
                        from_cmp(scheme.compare(v, &b.version), |o| {
                            o == Ordering::Greater || (b.inclusive && o == Ordering::Equal)
                        })
                    });
                    let hi = upper.as_ref().map(|b| {
                        from_cmp(scheme.compare(v, &b.version), |o| {
                            o == Ordering::Less || (b.inclusive && o == Ordering::Equal)
                        })
                    });
                    all([lo.unwrap_or(Out::Yes), hi.unwrap_or(Out::Yes)])
                }
            },
            C::Vers(r) => match installed_version() {
                Err(o) => o,
                Ok(v) => match r.contains(v, scheme) {
                    Contains::Yes => Out::Yes,
                    Contains::No => Out::No,
                    Contains::Unknown(why) => Out::Undecided(why),
                },
            },
            C::AnyOf(items) => {
                let outs: Vec<Out> = items.iter().map(|c| c.eval(inst, scheme)).collect();
                if outs.contains(&Out::Yes) {
                    return Out::Yes;
                }
                if let Some(u) = outs.iter().find(|o| matches!(o, Out::Undecided(_))) {
                    return u.clone();
                }
                if outs.contains(&Out::No) {
                    // A bound on another release line says nothing; a bound
                    // on this line said no.
                    return Out::No;
                }
                outs.into_iter()
                    .next()
                    .unwrap_or(Out::Undecided("empty list".into()))
            }
            C::All(items) => all(items.iter().map(|c| c.eval(inst, scheme))),
            C::WithComponent {
                main,
                component,
                component_rule,
            } => {
                let m = main.eval(inst, scheme);
                if m == Out::No {
                    return Out::No;
                }
                let Some(c) = inst
                    .components
                    .iter()
                    .find(|c| same_component(component, &c.name))
                else {
                    return all([
                        m,
                        Out::Undecided(format!(
                            "the rule needs the asset's {component:?} version, which is not recorded"
                        )),
                    ]);
                };
                // Components are compared with the generic scheme: their
                // numbering is the component maker's, not the pump's.
                let cm = component_rule.matches(
                    &Installed {
                        version: Some(&c.version),
                        model: None,
                        components: &[],
                    },
                    Scheme::Generic,
                );
                all([
                    m,
                    match cm {
                        Decision::Yes => Out::Yes,
                        Decision::No => Out::No,
                        Decision::Undecided(r) => Out::Undecided(r),
                    },
                ])
            }
        }
    }
}

/// An [`Installed`] with its version read.
struct Ctx<'a> {
    version: Result<Version, String>,
    model: Option<&'a str>,
    components: &'a [Component],
}

fn from_cmp(c: Comparison, ok: impl Fn(Ordering) -> bool) -> Out {
    match c {
        Comparison::Ordered(o) => {
            if ok(o) {
                Out::Yes
            } else {
                Out::No
            }
        }
        Comparison::Ambiguous(r) => Out::Undecided(r),
        Comparison::Incomparable(r) => Out::OtherLine(r),
    }
}

/// Conjunction: any no is no; then any undecided is undecided.
fn all(outs: impl IntoIterator<Item = Out>) -> Out {
    let mut first_unknown = None;
    for o in outs {
        match o {
            Out::No => return Out::No,
            Out::Yes => {}
            other => {
                first_unknown.get_or_insert(other);
            }
        }
    }
    first_unknown.unwrap_or(Out::Yes)
}

fn list<'a>(parts: impl Iterator<Item = &'a str>) -> Option<VersionConstraint> {
    let items: Option<Vec<VersionConstraint>> = parts
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(VersionConstraint::simple)
        .collect();
    let mut items = items?;
    match items.len() {
        0 => None,
        1 => items.pop(),
        _ => {
            // A list of model numbers is one Models rule.
            if items
                .iter()
                .all(|i| matches!(i, VersionConstraint::Models(_)))
            {
                let models = items
                    .into_iter()
                    .flat_map(|i| match i {
                        VersionConstraint::Models(m) => m,
                        _ => Vec::new(),
                    })
                    .collect();
                Some(VersionConstraint::Models(models))
            } else {
                Some(VersionConstraint::AnyOf(items))
            }
        }
    }
}

/// Splits "Wireless Battery Modules v16 … v22D28" into the component name
/// and its rule: the name is the words before the first word that starts a
/// version, an operator or the word "version".
fn split_component(rest: &str) -> Option<(String, &str)> {
    let mut offset = 0;
    for w in rest.split(' ') {
        let lw = w.to_ascii_lowercase();
        let starts_rule = lw == "version"
            || lw == "versions"
            || w.starts_with(['<', '>', '='])
            || w.starts_with(|c: char| c.is_ascii_digit())
            || (w.len() > 1
                && (w.starts_with('v') || w.starts_with('V'))
                && w[1..].starts_with(|c: char| c.is_ascii_digit()));
        if starts_rule && offset > 0 {
            let name = rest[..offset].trim().to_owned();
            return Some((name, rest[offset..].trim()));
        }
        offset += w.len() + 1;
    }
    None
}

fn name_words(s: &str) -> (Vec<String>, Option<String>) {
    let mut abbrev = None;
    let mut plain = String::new();
    let mut depth = 0;
    let mut inner = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => {
                depth -= 1;
                abbrev = Some(inner.trim().to_ascii_lowercase());
                inner.clear();
            }
            _ if depth > 0 => inner.push(c),
            _ => plain.push(c),
        }
    }
    let words = plain
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let w = w.to_lowercase();
            // "Modules" names the same thing as "Module".
            match w.strip_suffix('s') {
                Some(stem) if stem.len() > 2 => stem.to_owned(),
                _ => w,
            }
        })
        .collect();
    (words, abbrev)
}

/// Whether the advisory's component name and the asset's name the same
/// thing: the same words (ignoring case, punctuation and a plural s), or one
/// is the other's parenthesised abbreviation ("wireless battery module
/// (WBM)" and "WBM").
pub fn same_component(advisory: &str, asset: &str) -> bool {
    let (aw, aabbr) = name_words(advisory);
    let (bw, babbr) = name_words(asset);
    if aw.is_empty() && bw.is_empty() {
        return false;
    }
    let joined = |w: &[String]| w.join(" ");
    aw == bw
        || aabbr.as_deref().is_some_and(|x| x == joined(&bw))
        || babbr.as_deref().is_some_and(|x| x == joined(&aw))
}

impl std::fmt::Display for VersionConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use VersionConstraint as C;
        match self {
            C::Any => f.write_str("all versions"),
            C::Exact(v) => write!(f, "= {v}"),
            C::Range { lower, upper } => {
                let mut parts = Vec::new();
                if let Some(b) = lower {
                    parts.push(format!(
                        "{} {}",
                        if b.inclusive { ">=" } else { ">" },
                        b.version
                    ));
                }
                if let Some(b) = upper {
                    parts.push(format!(
                        "{} {}",
                        if b.inclusive { "<=" } else { "<" },
                        b.version
                    ));
                }
                f.write_str(&parts.join(" and "))
            }
            C::Wildcard(v) => write!(f, "{v}.*"),
            C::Vers(r) => write!(f, "{r}"),
            C::AnyOf(items) | C::All(items) => {
                let sep = if matches!(self, C::AnyOf(_)) {
                    " or "
                } else {
                    " and "
                };
                let parts: Vec<String> = items.iter().map(|i| format!("({i})")).collect();
                f.write_str(&parts.join(sep))
            }
            C::Models(m) => write!(f, "model {}", m.join(" or ")),
            C::WithComponent {
                main,
                component,
                component_rule,
            } => write!(f, "({main}) with {component} ({component_rule})"),
            C::Unparsed(t) => write!(f, "unparsed: {t:?}"),
        }
    }
}

/// [`VersionConstraint::matches`] with the generic scheme and no model: the
/// short form for a version and its components.
pub fn matches(
    constraint: &VersionConstraint,
    version: &str,
    components: &[Component],
) -> Decision {
    constraint.matches(
        &Installed {
            version: Some(version),
            model: None,
            components,
        },
        Scheme::Generic,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use VersionConstraint as C;

    fn p(s: &str) -> VersionConstraint {
        VersionConstraint::parse(s)
    }
    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    fn le(s: &str) -> VersionConstraint {
        C::Range {
            lower: None,
            upper: Some(Bound {
                version: v(s),
                inclusive: true,
            }),
        }
    }

    #[test]
    fn forms() {
        assert_eq!(p("vers:all/*"), C::Any);
        assert_eq!(p("<=5.8"), le("5.8"));
        assert_eq!(p("<= 9.33"), le("9.33"));
        assert_eq!(p("2.3.6 and  below"), le("2.3.6"));
        assert_eq!(p("Versions 9.33.1 and earlier"), le("9.33.1"));
        assert_eq!(p("2.6A or lower"), le("2.6A"));
        assert_eq!(
            p("< 3.0"),
            C::Range {
                lower: None,
                upper: Some(Bound {
                    version: v("3.0"),
                    inclusive: false
                })
            }
        );
        assert_eq!(p("1.1.3 MR Build 11"), C::Exact(v("1.1.3 MR Build 11")));
        assert_eq!(p("6.x"), C::Wildcard(v("6")));
        assert_eq!(
            p("9.13 | 9.19 | 9.33 | 12.1"),
            C::AnyOf(
                ["9.13", "9.19", "9.33", "12.1"]
                    .map(|s| C::Exact(v(s)))
                    .to_vec()
            )
        );
        assert_eq!(
            p("9.13 / 9.19 / 9.33 / 12.1"),
            p("9.13 | 9.19 | 9.33 | 12.1")
        );
        assert_eq!(p("<= U61 |<= L81"), C::AnyOf(vec![le("U61"), le("L81")]));
        assert_eq!(
            p("MMT-1715 | MMT-1754 | MMT-1755"),
            C::Models(vec![
                "MMT-1715".into(),
                "MMT-1754".into(),
                "MMT-1755".into()
            ])
        );
        assert_eq!(
            p("v16 … v22D28"),
            C::Range {
                lower: Some(Bound {
                    version: v("16"),
                    inclusive: true
                }),
                upper: Some(Bound {
                    version: v("22D28"),
                    inclusive: true
                })
            }
        );
        let w = p("v6.x with Wireless Battery Modules v16 … v22D28");
        assert_eq!(
            w,
            C::WithComponent {
                main: Box::new(C::Wildcard(v("6"))),
                component: "Wireless Battery Modules".into(),
                component_rule: Box::new(p("v16 … v22D28")),
            }
        );
        let b = p("6.05 (model 35700BAX) with wireless battery module (WBM) version 16");
        assert_eq!(
            b,
            C::WithComponent {
                main: Box::new(C::All(vec![
                    C::Exact(v("6.05")),
                    C::Models(vec!["35700BAX".into()])
                ])),
                component: "wireless battery module (WBM)".into(),
                component_rule: Box::new(C::Exact(v("16"))),
            }
        );
        assert_eq!(
            p("2131 and 2141"),
            C::AnyOf(vec![C::Exact(v("2131")), C::Exact(v("2141"))])
        );
        assert!(p("1.0 and 2.0 and later").is_unparsed());
        for junk in [
            "Rev B-M",
            "<  july 1 2017",
            "IPv4",
            "F.0.G.0 | J.3",
            "",
            "Rev J-M | (X3/MX100 for Rev M only)",
        ] {
            assert!(p(junk).is_unparsed(), "{junk:?} → {:?}", p(junk));
        }
        assert!(matches!(p(&"9".repeat(100_000)), C::Unparsed(t) if t.len() < 600));
    }

    #[test]
    fn matching() {
        let none: &[Component] = &[];
        assert_eq!(matches(&p("<=5.8"), "5.8", none), Decision::Yes);
        assert_eq!(matches(&p("<=5.8"), "5.7.2", none), Decision::Yes);
        assert_eq!(matches(&p("<=5.8"), "6.0", none), Decision::No);
        assert_eq!(matches(&p("< 3.0"), "3.0", none), Decision::No);
        assert_eq!(matches(&p("6.x"), "6.05", none), Decision::Yes);
        assert_eq!(matches(&p("6.x"), "7.0", none), Decision::No);
        assert_eq!(matches(&p("vers:all/*"), "whatever", none), Decision::Yes);
        assert!(matches!(
            matches(&p("Rev B-M"), "J", none),
            Decision::Undecided(_)
        ));
        assert!(matches!(
            matches(&p("<= 13.4"), "13.40", none),
            Decision::Undecided(_)
        ));
        assert!(matches!(
            matches(&p("<= 9.33"), "not a version!", none),
            Decision::Undecided(_)
        ));
    }

    #[test]
    fn bd_scheme_decides_where_generic_cannot() {
        let c = p("<= 9.33");
        let at = |ver| Installed {
            version: Some(ver),
            ..Installed::default()
        };
        assert!(matches!(
            c.matches(&at("9.7"), Scheme::Generic),
            Decision::Undecided(_)
        ));
        assert_eq!(c.matches(&at("9.7"), Scheme::DottedNumeric), Decision::Yes);
        assert_eq!(c.matches(&at("12.1"), Scheme::DottedNumeric), Decision::No);
    }

    #[test]
    fn braun_release_lines() {
        let c = p("<= U61 |<= L81");
        let at = |ver| Installed {
            version: Some(ver),
            ..Installed::default()
        };
        let s = Scheme::BBraunLine;
        assert_eq!(c.matches(&at("U55"), s), Decision::Yes);
        assert_eq!(c.matches(&at("L81"), s), Decision::Yes);
        assert_eq!(c.matches(&at("U62"), s), Decision::No);
        assert_eq!(c.matches(&at("L82"), s), Decision::No);
        // The long form is another numbering: neither bound applies.
        assert!(matches!(
            c.matches(&at("012U000062"), s),
            Decision::Undecided(_)
        ));
    }

    #[test]
    fn component_condition() {
        let c = p("v6.x with Wireless Battery Modules v16 … v22D28");
        let wbm = |ver: &str| {
            vec![Component {
                name: "Wireless Battery Module".into(),
                version: ver.into(),
            }]
        };
        assert_eq!(matches(&c, "6.05", &wbm("22D24")), Decision::Yes);
        assert_eq!(matches(&c, "6.05", &wbm("v16")), Decision::Yes);
        assert_eq!(matches(&c, "6.05", &wbm("23D1")), Decision::No);
        assert_eq!(matches(&c, "8.00", &wbm("22D24")), Decision::No);
        assert!(
            matches!(matches(&c, "6.05", &[]), Decision::Undecided(r) if r.contains("Wireless Battery Modules"))
        );
        let b = p("6.05 (model 35700BAX) with wireless battery module (WBM) version 16");
        let wbm16 = [Component {
            name: "WBM".into(),
            version: "16".into(),
        }];
        let inst = |model| Installed {
            version: Some("6.05"),
            model,
            components: &wbm16,
        };
        assert_eq!(
            b.matches(&inst(Some("35700bax")), Scheme::Generic),
            Decision::Yes
        );
        assert_eq!(
            b.matches(&inst(Some("35700BAX2")), Scheme::Generic),
            Decision::No
        );
        assert!(matches!(
            b.matches(&inst(None), Scheme::Generic),
            Decision::Undecided(_)
        ));
    }

    #[test]
    fn models() {
        let c = p("MMT-1715 | MMT-1754 | MMT-1755");
        let at = |m| Installed {
            version: Some("1.0"),
            model: m,
            components: &[],
        };
        assert_eq!(
            c.matches(&at(Some("mmt-1754")), Scheme::Generic),
            Decision::Yes
        );
        assert_eq!(
            c.matches(&at(Some("MMT-1780")), Scheme::Generic),
            Decision::No
        );
        assert!(matches!(
            c.matches(&at(None), Scheme::Generic),
            Decision::Undecided(_)
        ));
        // The product's name with its model number, and without one.
        assert_eq!(
            c.matches(&at(Some("MiniMed 630G MMT-1754")), Scheme::Generic),
            Decision::Yes
        );
        assert_eq!(
            c.matches(&at(Some("MiniMed 630G (MMT-1780)")), Scheme::Generic),
            Decision::No
        );
        assert!(matches!(
            c.matches(&at(Some("MiniMed 630G")), Scheme::Generic),
            Decision::Undecided(_)
        ));
    }

    proptest::proptest! {
        #[test]
        fn parse_and_match_never_panic(s in "\\PC{0,60}", ver in "\\PC{0,12}", model in "\\PC{0,8}") {
            let c = VersionConstraint::parse(&s);
            let comps = [Component { name: "Wireless Battery Module".into(), version: ver.clone() }];
            for scheme in [Scheme::Generic, Scheme::DottedNumeric, Scheme::BBraunLine] {
                let _ = c.matches(&Installed { version: Some(&ver), model: Some(&model), components: &comps }, scheme);
            }
            let _ = c.to_string();
        }

        #[test]
        fn structured_forms_never_panic(
            op in proptest::sample::select(vec!["", "<=", "<", ">=", ">", "="]),
            a in "[vV]?[0-9]{1,3}(\\.[0-9A-Za-z]{1,3}){0,3}",
            joiner in proptest::sample::select(vec![" | ", " / ", " … ", " to ", " and below", " with WBM ", "|", ".x"]),
            b in "[vV]?[0-9]{1,3}(\\.[0-9A-Za-z]{1,3}){0,3}",
        ) {
            let c = VersionConstraint::parse(&format!("{op}{a}{joiner}{b}"));
            let _ = matches(&c, &b, &[]);
        }
    }

    #[test]
    fn component_names() {
        assert!(same_component(
            "Wireless Battery Modules",
            "wireless battery module"
        ));
        assert!(same_component("wireless battery module (WBM)", "WBM"));
        assert!(!same_component("Wireless Battery Modules", "Battery"));
        assert!(!same_component("", ""));
    }
}
