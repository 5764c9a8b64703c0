//! CPE 2.3 formatted strings (NISTIR 7695) and matching of a CPE name against
//! an NVD match criterion with version bounds (the part of NISTIR 7696 that
//! NVD configurations use).
//!
//! Accepted: `cpe:2.3:` followed by exactly 11 colon-separated attributes
//! (part, vendor, product, version, update, edition, language, sw_edition,
//! target_sw, target_hw, other). `*` is ANY, `-` is NA, anything else is a
//! value in which `\` quotes the next character (`link\+_agilia`, `1\.0`).
//! Values are lower-cased (CPE comparison is case-insensitive). Wildcards
//! inside a value (`1.*`) are refused: NVD's pump records never use them and
//! a half-supported wildcard would match silently wrong.

use crate::version::{Comparison, Scheme, Version};
use std::cmp::Ordering;

/// Why a CPE string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpeError {
    /// Not `cpe:2.3:`.
    #[error("a CPE 2.3 name starts with \"cpe:2.3:\"")]
    Prefix,
    /// Wrong number of attributes.
    #[error("a CPE 2.3 name has 11 attributes after \"cpe:2.3:\", this one has {0}")]
    Arity(usize),
    /// Part is not a, o, h or ANY.
    #[error("the part must be 'a', 'o', 'h' or '*', not {0:?}")]
    Part(String),
    /// A trailing backslash.
    #[error("attribute {0} ends with a lone backslash")]
    Escape(&'static str),
    /// An unquoted `*` or `?` inside a value.
    #[error("attribute {0}: wildcards inside a value are not supported ({1:?})")]
    Wildcard(&'static str, String),
    /// Empty attribute.
    #[error("attribute {0} is empty (use '*' for ANY or '-' for NA)")]
    Empty(&'static str),
    /// Input too long.
    #[error("the CPE name is longer than 1024 characters")]
    TooLong,
}

/// The attribute names, in order.
pub const ATTRIBUTES: [&str; 11] = [
    "part",
    "vendor",
    "product",
    "version",
    "update",
    "edition",
    "language",
    "sw_edition",
    "target_sw",
    "target_hw",
    "other",
];

/// One attribute value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Attr {
    /// `*`: any value.
    #[default]
    Any,
    /// `-`: not applicable.
    Na,
    /// A value, unquoted and lower-cased.
    Value(String),
}

impl Attr {
    /// The value, if any.
    pub fn value(&self) -> Option<&str> {
        match self {
            Attr::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// A CPE 2.3 name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cpe {
    /// The 11 attributes in [`ATTRIBUTES`] order.
    pub attrs: [Attr; 11],
}

impl Cpe {
    /// Parses a formatted string.
    pub fn parse(s: &str) -> Result<Cpe, CpeError> {
        if s.len() > 1024 {
            return Err(CpeError::TooLong);
        }
        let body = s
            .trim()
            .strip_prefix("cpe:2.3:")
            .or_else(|| s.trim().strip_prefix("CPE:2.3:"))
            .ok_or(CpeError::Prefix)?;
        // Split on colons not quoted by a backslash.
        let mut fields: Vec<String> = vec![String::new()];
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let cur = fields.last_mut().expect("never empty");
                    cur.push('\\');
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' => fields.push(String::new()),
                _ => fields.last_mut().expect("never empty").push(c),
            }
        }
        if fields.len() != 11 {
            return Err(CpeError::Arity(fields.len()));
        }
        let mut attrs: [Attr; 11] = Default::default();
        for (i, f) in fields.iter().enumerate() {
            attrs[i] = parse_attr(ATTRIBUTES[i], f)?;
        }
        match &attrs[0] {
            Attr::Any => {}
            Attr::Value(p) if matches!(p.as_str(), "a" | "o" | "h") => {}
            Attr::Value(p) => return Err(CpeError::Part(crate::json::excerpt(p))),
            Attr::Na => return Err(CpeError::Part("-".into())),
        }
        Ok(Cpe { attrs })
    }

    /// The part (`a`, `o`, `h`).
    pub fn part(&self) -> &Attr {
        &self.attrs[0]
    }
    /// The vendor.
    pub fn vendor(&self) -> &Attr {
        &self.attrs[1]
    }
    /// The product.
    pub fn product(&self) -> &Attr {
        &self.attrs[2]
    }
    /// The version.
    pub fn version(&self) -> &Attr {
        &self.attrs[3]
    }

    /// Attribute-wise match of this name (the criterion) against `target`,
    /// ignoring the version: ANY in the criterion matches anything; NA
    /// matches only NA; a value matches only the same value. A target whose
    /// attribute is ANY where the criterion has a value does not match (the
    /// target is more general than the criterion: NISTIR 7696 SUPERSET).
    pub fn matches_except_version(&self, target: &Cpe) -> bool {
        self.attrs
            .iter()
            .zip(&target.attrs)
            .enumerate()
            .all(|(i, (c, t))| i == 3 || attr_matches(c, t))
    }
}

fn attr_matches(criterion: &Attr, target: &Attr) -> bool {
    match (criterion, target) {
        (Attr::Any, _) => true,
        (Attr::Na, Attr::Na) => true,
        (Attr::Value(a), Attr::Value(b)) => a == b,
        _ => false,
    }
}

fn parse_attr(name: &'static str, f: &str) -> Result<Attr, CpeError> {
    match f {
        "" => return Err(CpeError::Empty(name)),
        "*" => return Ok(Attr::Any),
        "-" => return Ok(Attr::Na),
        _ => {}
    }
    let mut out = String::with_capacity(f.len());
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push(n.to_ascii_lowercase()),
                None => return Err(CpeError::Escape(name)),
            },
            '*' | '?' => return Err(CpeError::Wildcard(name, f.chars().take(40).collect())),
            _ => out.push(c.to_ascii_lowercase()),
        }
    }
    Ok(Attr::Value(out))
}

fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        // '-' alone would read as NA, so a value "-" is quoted; elsewhere
        // '-', '.' and '_' are printed as they are, as NVD does.
        if c.is_ascii_alphanumeric() || c == '_' || ((c == '.' || c == '-') && v != "-") {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out
}

impl std::fmt::Display for Cpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cpe:2.3")?;
        for a in &self.attrs {
            match a {
                Attr::Any => f.write_str(":*")?,
                Attr::Na => f.write_str(":-")?,
                Attr::Value(v) => write!(f, ":{}", quote(v))?,
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Cpe {
    type Err = CpeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cpe::parse(s)
    }
}

/// An NVD `cpeMatch` criterion: a CPE name plus optional version bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct CpeCriterion {
    /// The criterion's CPE name.
    pub cpe: Cpe,
    /// Whether matching products are vulnerable (false: a platform condition).
    pub vulnerable: bool,
    /// `versionStartIncluding`.
    pub start_including: Option<String>,
    /// `versionStartExcluding`.
    pub start_excluding: Option<String>,
    /// `versionEndIncluding`.
    pub end_including: Option<String>,
    /// `versionEndExcluding`.
    pub end_excluding: Option<String>,
}

/// Three-valued result of a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpeMatch {
    /// The name matches the criterion.
    Match,
    /// It does not.
    NoMatch,
    /// It cannot be decided (the reason says why).
    Undecided(String),
}

impl CpeCriterion {
    /// Whether the CPE name `target` (an asset's or an SBOM component's)
    /// matches this criterion, comparing versions with `scheme`.
    ///
    /// Without bounds the version attribute follows the attribute rule. With
    /// bounds, the target's version must be a value; an ANY or NA version,
    /// an unreadable version or an ambiguous comparison gives
    /// [`CpeMatch::Undecided`], never a silent yes or no.
    pub fn matches(&self, target: &Cpe, scheme: Scheme) -> CpeMatch {
        if !self.cpe.matches_except_version(target) {
            return CpeMatch::NoMatch;
        }
        let bounds = [
            (&self.start_including, Bound::StartIncl),
            (&self.start_excluding, Bound::StartExcl),
            (&self.end_including, Bound::EndIncl),
            (&self.end_excluding, Bound::EndExcl),
        ];
        if bounds.iter().all(|(b, _)| b.is_none()) {
            return if attr_matches(self.cpe.version(), target.version()) {
                CpeMatch::Match
            } else {
                CpeMatch::NoMatch
            };
        }
        if !matches!(self.cpe.version(), Attr::Any) && self.cpe.version() != target.version() {
            return CpeMatch::NoMatch;
        }
        let Some(tv) = target.version().value() else {
            return CpeMatch::Undecided(format!(
                "the criterion has version bounds and {} has no version",
                crate::json::excerpt(&target.to_string())
            ));
        };
        let tv = match Version::parse(tv) {
            Ok(v) => v,
            Err(e) => {
                return CpeMatch::Undecided(format!("version {:?}: {e}", crate::json::excerpt(tv)))
            }
        };
        for (b, kind) in bounds {
            let Some(b) = b else { continue };
            let bv = match Version::parse(b) {
                Ok(v) => v,
                Err(e) => {
                    return CpeMatch::Undecided(format!("bound {:?}: {e}", crate::json::excerpt(b)))
                }
            };
            let o = match scheme.compare(&tv, &bv) {
                Comparison::Ordered(o) => o,
                Comparison::Ambiguous(r) | Comparison::Incomparable(r) => {
                    return CpeMatch::Undecided(r)
                }
            };
            let ok = match kind {
                Bound::StartIncl => o != Ordering::Less,
                Bound::StartExcl => o == Ordering::Greater,
                Bound::EndIncl => o != Ordering::Greater,
                Bound::EndExcl => o == Ordering::Less,
            };
            if !ok {
                return CpeMatch::NoMatch;
            }
        }
        CpeMatch::Match
    }
}

/// The version rule of an advisory's product identified by a CPE name
/// (CSAF `product_identification_helper.cpe`): the CPE's own version when
/// it is a value (`…:wolfssl:5.2.0:…`: in a CPE name a value names that
/// version only, whatever branch holds the product); else the version or
/// range branch above the product (`vers:generic/<5.2.0`); else the
/// product's full name, unparsed, so that a match goes to review instead of
/// being assumed for every version (as [`crate::purl::product_rule`]).
/// ANY and NA versions name no version.
pub fn product_rule(
    product: &Cpe,
    branch_version: Option<&str>,
    full_name: &str,
) -> crate::constraint::VersionConstraint {
    use crate::constraint::VersionConstraint;
    match (product.version().value(), branch_version) {
        (Some(v), _) => VersionConstraint::parse(v),
        (None, Some(text)) => VersionConstraint::parse(text),
        (None, None) => VersionConstraint::Unparsed(full_name.to_owned()),
    }
}

/// Whether an SBOM component's CPE name is within an advisory's product
/// identified by a CPE name: `None` when they name different products
/// (every attribute but the version equal, or ANY in the advisory's:
/// [`Cpe::matches_except_version`]); else the product's version rule
/// ([`product_rule`]) applied to the component's version (its `version`,
/// or its CPE's where it has none), compared with `scheme`. A component
/// without any version is undecided, never assumed within (as
/// [`crate::purl::component_within`]).
pub fn component_within(
    product: &Cpe,
    rule: &crate::constraint::VersionConstraint,
    component: &Cpe,
    component_version: Option<&str>,
    scheme: Scheme,
) -> Option<crate::constraint::Decision> {
    if !product.matches_except_version(component) {
        return None;
    }
    let installed = crate::constraint::Installed {
        version: component_version.or(component.version().value()),
        model: None,
        components: &[],
    };
    Some(rule.matches(&installed, scheme))
}

#[derive(Clone, Copy)]
enum Bound {
    StartIncl,
    StartExcl,
    EndIncl,
    EndExcl,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn real_names_parse() {
        let c = Cpe::parse("cpe:2.3:o:fresenius-kabi:link\\+_agilia_firmware:3.0:d15:*:*:*:*:*:*")
            .unwrap();
        assert_eq!(c.product().value(), Some("link+_agilia_firmware"));
        assert_eq!(c.attrs[4], Attr::Value("d15".into()));
        assert_eq!(
            c.to_string(),
            "cpe:2.3:o:fresenius-kabi:link\\+_agilia_firmware:3.0:d15:*:*:*:*:*:*"
        );
        let h = Cpe::parse("cpe:2.3:h:bd:alaris_8015_pcu:-:*:*:*:*:*:*:*").unwrap();
        assert_eq!(h.version(), &Attr::Na);
        assert_eq!(Cpe::parse("cpe:2.3:a:b"), Err(CpeError::Arity(2)));
        assert_eq!(
            Cpe::parse("cpe:2.3:x:a:b:*:*:*:*:*:*:*:*"),
            Err(CpeError::Part("x".into()))
        );
        assert!(matches!(
            Cpe::parse("cpe:2.3:a:a:b:1.*:*:*:*:*:*:*:*"),
            Err(CpeError::Wildcard("version", _))
        ));
        assert_eq!(Cpe::parse("cpe:/a:hospira:mednet"), Err(CpeError::Prefix));
    }

    #[test]
    fn every_shipped_cpe_name_parses_and_round_trips() {
        let text = include_str!("../tests/data/cve/pump_cpe_names.txt");
        let mut n = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let c = Cpe::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(c.to_string(), line);
            n += 1;
        }
        assert_eq!(n, 206);
    }

    fn crit(cpe: &str) -> CpeCriterion {
        CpeCriterion {
            cpe: Cpe::parse(cpe).unwrap(),
            vulnerable: true,
            start_including: None,
            start_excluding: None,
            end_including: None,
            end_excluding: None,
        }
    }

    #[test]
    fn criterion_matching() {
        // CVE-2020-25165: alaris_8015_pcu_firmware versionEndIncluding 9.33.1
        let mut c = crit("cpe:2.3:o:bd:alaris_8015_pcu_firmware:*:*:*:*:*:*:*:*");
        c.end_including = Some("9.33.1".into());
        let t = |v: &str| {
            Cpe::parse(&format!(
                "cpe:2.3:o:bd:alaris_8015_pcu_firmware:{v}:*:*:*:*:*:*:*"
            ))
            .unwrap()
        };
        let bd = Scheme::DottedNumeric;
        assert_eq!(c.matches(&t("9.33.1"), bd), CpeMatch::Match);
        assert_eq!(c.matches(&t("9.7"), bd), CpeMatch::Match);
        assert_eq!(c.matches(&t("12.1.3"), bd), CpeMatch::NoMatch);
        assert!(matches!(c.matches(&t("*"), bd), CpeMatch::Undecided(_)));
        let other = Cpe::parse("cpe:2.3:o:bd:alaris_gs_firmware:2.3.6:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.matches(&other, bd), CpeMatch::NoMatch);
        // CVE-2022-26390: Baxter WBM 22d19 ..= 22d28
        let mut w =
            crit("cpe:2.3:o:baxter:spectrum_wireless_battery_module_firmware:*:*:*:*:*:*:*:*");
        w.start_including = Some("22d19".into());
        w.end_including = Some("22d28".into());
        let wt = |v: &str| {
            Cpe::parse(&format!(
                "cpe:2.3:o:baxter:spectrum_wireless_battery_module_firmware:{v}:*:*:*:*:*:*:*"
            ))
            .unwrap()
        };
        assert_eq!(w.matches(&wt("22d24"), Scheme::Generic), CpeMatch::Match);
        assert_eq!(w.matches(&wt("20d32"), Scheme::Generic), CpeMatch::NoMatch);
        assert_eq!(w.matches(&wt("22d30"), Scheme::Generic), CpeMatch::NoMatch);
        // No bounds: the version attribute rule.
        let h = crit("cpe:2.3:h:bd:alaris_8015_pcu:-:*:*:*:*:*:*:*");
        assert_eq!(
            h.matches(
                &Cpe::parse("cpe:2.3:h:bd:alaris_8015_pcu:-:*:*:*:*:*:*:*").unwrap(),
                bd
            ),
            CpeMatch::Match
        );
        // Hospira's "13.4" vs a pump's "13.40": undecided under the generic scheme.
        let mut p = crit("cpe:2.3:o:pifzer:plum_a\\+_infusion_system_firmware:*:*:*:*:*:*:*:*");
        p.end_including = Some("13.4".into());
        let pt =
            Cpe::parse("cpe:2.3:o:pifzer:plum_a\\+_infusion_system_firmware:13.40:*:*:*:*:*:*:*")
                .unwrap();
        assert!(matches!(
            p.matches(&pt, Scheme::Generic),
            CpeMatch::Undecided(_)
        ));
    }

    #[test]
    fn an_advisory_product_cpe_and_its_versions_decide_a_component() {
        use crate::constraint::Decision;
        let p = |s: &str| Cpe::parse(s).unwrap();
        let dotted = Scheme::DottedNumeric;
        // Baxter's Wireless Battery Module as a CSAF product: the CPE's
        // version is ANY, so the range branch above it is the rule.
        let wbm = p("cpe:2.3:o:baxter:spectrum_wireless_battery_module_firmware:*:*:*:*:*:*:*:*");
        let range = product_rule(
            &wbm,
            Some("vers:generic/>=22D19|<=22D28"),
            "WBM 22D19-22D28",
        );
        assert!(!range.is_unparsed(), "{range}");
        let at =
            |c: &str, v: Option<&str>| component_within(&wbm, &range, &p(c), v, Scheme::Generic);
        let fw = "cpe:2.3:o:baxter:spectrum_wireless_battery_module_firmware";
        assert_eq!(
            at(&format!("{fw}:22d24:*:*:*:*:*:*:*"), None),
            Some(Decision::Yes)
        );
        assert_eq!(
            at(&format!("{fw}:*:*:*:*:*:*:*:*"), Some("22D24")),
            Some(Decision::Yes)
        );
        assert_eq!(
            at(&format!("{fw}:22d30:*:*:*:*:*:*:*"), None),
            Some(Decision::No)
        );
        // No version anywhere: undecided, never assumed.
        assert!(matches!(
            at(&format!("{fw}:*:*:*:*:*:*:*:*"), None),
            Some(Decision::Undecided(_))
        ));
        // Another product, another part, another vendor: not named.
        assert_eq!(
            at(
                "cpe:2.3:o:baxter:sigma_spectrum_firmware:22d24:*:*:*:*:*:*:*",
                None
            ),
            None
        );
        assert_eq!(
            at(
                "cpe:2.3:h:baxter:spectrum_wireless_battery_module_firmware:22d24:*:*:*:*:*:*:*",
                None
            ),
            None
        );
        assert_eq!(
            at(
                "cpe:2.3:o:bd:spectrum_wireless_battery_module_firmware:22d24:*:*:*:*:*:*:*",
                None
            ),
            None
        );
        // A component CPE more general than the product's (vendor ANY) is
        // not taken as naming it.
        assert_eq!(
            at(
                "cpe:2.3:o:*:spectrum_wireless_battery_module_firmware:22d24:*:*:*:*:*:*:*",
                None
            ),
            None
        );
        // A specific version in the advisory's CPE is that version only,
        // over a wider branch.
        let exact = p("cpe:2.3:a:wolfssl:wolfssl:5.2.0:*:*:*:*:*:*:*");
        let rule = product_rule(&exact, Some("vers:generic/<=5.2.0"), "wolfSSL 5.2.0");
        let comp = p("cpe:2.3:a:wolfssl:wolfssl:*:*:*:*:*:*:*:*");
        assert_eq!(
            component_within(&exact, &rule, &comp, Some("5.2.0"), dotted),
            Some(Decision::Yes)
        );
        assert_eq!(
            component_within(&exact, &rule, &comp, Some("4.8.1"), dotted),
            Some(Decision::No)
        );
        // Neither a version nor a branch: the name, unparsed (review).
        let none = product_rule(
            &p("cpe:2.3:h:bd:alaris_8015_pcu:-:*:*:*:*:*:*:*"),
            None,
            "Alaris 8015 PC Unit",
        );
        assert_eq!(
            none,
            crate::constraint::VersionConstraint::Unparsed("Alaris 8015 PC Unit".into())
        );
    }

    fn arb_attr() -> impl Strategy<Value = Attr> {
        prop_oneof![
            Just(Attr::Any),
            Just(Attr::Na),
            "[a-z0-9._+!@#$%^&()~-]{1,10}".prop_map(Attr::Value),
        ]
    }

    proptest! {
        #[test]
        fn print_parse_round_trip(
            part in prop_oneof![Just(Attr::Any), Just(Attr::Value("a".into())), Just(Attr::Value("o".into())), Just(Attr::Value("h".into()))],
            rest in proptest::collection::vec(arb_attr(), 10),
        ) {
            let mut attrs: [Attr; 11] = Default::default();
            attrs[0] = part;
            for (i, a) in rest.into_iter().enumerate() { attrs[i + 1] = a; }
            let c = Cpe { attrs };
            let text = c.to_string();
            let back = Cpe::parse(&text).unwrap();
            prop_assert_eq!(&back, &c, "{}", text);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn a_product_cpe_names_exactly_the_components_its_attributes_allow(
            rest in proptest::collection::vec(arb_attr(), 10),
            other in "[a-z0-9]{1,6}",
            major in 0u32..20, minor in 0u32..20, bound in 0u32..20,
        ) {
            use crate::constraint::Decision;
            let mut attrs: [Attr; 11] = Default::default();
            attrs[0] = Attr::Value("a".into());
            for (i, a) in rest.into_iter().enumerate() { attrs[i + 1] = a; }
            attrs[3] = Attr::Any;
            let product = Cpe { attrs };
            let rule = product_rule(&product, Some(&format!("vers:generic/<{bound}.0")), "x");
            let mut component = product.clone();
            let version = format!("{major}.{minor}");
            component.attrs[3] = Attr::Value(version.clone());
            // The same name at any version is named, and the range decides.
            let d = component_within(&product, &rule, &component, None, Scheme::DottedNumeric);
            let within = if major < bound { Decision::Yes } else { Decision::No };
            prop_assert_eq!(d, Some(within));
            // A vendor the product's CPE does not allow is never named.
            if let Attr::Value(v) = product.vendor() {
                let mut elsewhere = component.clone();
                elsewhere.attrs[1] = Attr::Value(format!("{v}{other}"));
                prop_assert_eq!(
                    component_within(&product, &rule, &elsewhere, None, Scheme::DottedNumeric),
                    None
                );
            }
        }

        #[test]
        fn never_panics(s in "cpe:2\\.3:\\PC{0,80}") {
            let _ = Cpe::parse(&s);
        }
    }
}
