//! Package URLs: `pkg:type/namespace/name@version?qualifiers#subpath`.
//!
//! Parsing follows the purl specification's algorithm (subpath from the
//! right, then qualifiers, scheme, type, version, name, namespace), with
//! percent-decoding of every component. The type and qualifier keys are
//! lower-cased; qualifiers are kept sorted by key and empty values dropped,
//! so [`Purl`]'s `Display` is the canonical form and parse∘print is the
//! identity on what parse returns (property-tested).
//! Type-specific normalisations (PyPI's `_`→`-`, and so on) are not applied
//! by parsing: a purl prints as its producer wrote it. They are applied when
//! two purls are compared as packages ([`Purl::package_key`],
//! [`Purl::same_package`]), which is how an advisory's product purl finds
//! an SBOM component (`docs/vulnerability-matching.md`).

use std::collections::BTreeMap;

/// Why a purl was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurlError {
    /// Not `pkg:`.
    #[error("a purl starts with \"pkg:\"")]
    Scheme,
    /// No or invalid type.
    #[error("the purl type {0:?} is empty or has characters other than letters, digits, '.', '+' and '-'")]
    Type(String),
    /// No name.
    #[error("the purl has no name")]
    NoName,
    /// A qualifier without `=` or with an invalid key.
    #[error("qualifier {0:?} is not key=value with a key of letters, digits, '.', '-' and '_'")]
    Qualifier(String),
    /// Bad percent-encoding.
    #[error("{0}")]
    Encoding(String),
    /// Input too long.
    #[error("the purl is longer than 4096 characters")]
    TooLong,
}

/// A parsed package URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Purl {
    /// Package type (`npm`, `deb`, `generic`, …), lower case.
    pub ty: String,
    /// Namespace segments (decoded), possibly none.
    pub namespace: Vec<String>,
    /// Name (decoded).
    pub name: String,
    /// Version (decoded).
    pub version: Option<String>,
    /// Qualifiers (decoded values), sorted by key.
    pub qualifiers: BTreeMap<String, String>,
    /// Subpath segments (decoded).
    pub subpath: Vec<String>,
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub fn percent_decode(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "bad percent-escape at byte {i} of {:?}",
                        crate::json::excerpt(s)
                    )
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        format!(
            "percent-escapes in {:?} are not UTF-8",
            crate::json::excerpt(s)
        )
    })
}

/// Percent-encodes everything but ASCII letters, digits, `.-_~` and the
/// bytes in `keep`.
pub fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b".-_~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn segments(s: &str) -> Result<Vec<String>, PurlError> {
    s.split('/')
        .filter(|x| !x.is_empty())
        .map(|x| percent_decode(x).map_err(PurlError::Encoding))
        .collect()
}

impl Purl {
    /// Parses a purl.
    pub fn parse(s: &str) -> Result<Purl, PurlError> {
        if s.len() > 4096 {
            return Err(PurlError::TooLong);
        }
        let s = s.trim();
        let (rest, subpath) = match s.rsplit_once('#') {
            Some((r, sp)) => (
                r,
                segments(sp)?
                    .into_iter()
                    .filter(|x| x != "." && x != "..")
                    .collect(),
            ),
            None => (s, Vec::new()),
        };
        let (rest, qualifiers) = match rest.rsplit_once('?') {
            Some((r, q)) => {
                let mut map = BTreeMap::new();
                for pair in q.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| PurlError::Qualifier(crate::json::excerpt(pair)))?;
                    let k = k.to_ascii_lowercase();
                    if k.is_empty()
                        || !k
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                    {
                        return Err(PurlError::Qualifier(crate::json::excerpt(pair)));
                    }
                    let v = percent_decode(v).map_err(PurlError::Encoding)?;
                    if !v.is_empty() {
                        map.insert(k, v);
                    }
                }
                (r, map)
            }
            None => (rest, BTreeMap::new()),
        };
        let rest = rest
            .strip_prefix("pkg:")
            .or_else(|| rest.strip_prefix("PKG:"))
            .ok_or(PurlError::Scheme)?;
        let rest = rest.trim_start_matches('/');
        let (ty, rest) = rest
            .split_once('/')
            .ok_or_else(|| PurlError::Type(rest.chars().take(40).collect()))?;
        let ty = ty.to_ascii_lowercase();
        if ty.is_empty()
            || !ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
        {
            return Err(PurlError::Type(crate::json::excerpt(&ty)));
        }
        let rest = rest.trim_matches('/');
        let (rest, version) = match rest.rsplit_once('@') {
            Some((r, v)) => (
                r,
                Some(percent_decode(v).map_err(PurlError::Encoding)?).filter(|v| !v.is_empty()),
            ),
            None => (rest, None),
        };
        let (ns, name) = match rest.rsplit_once('/') {
            Some((ns, n)) => (segments(ns)?, n),
            None => (Vec::new(), rest),
        };
        let name = percent_decode(name).map_err(PurlError::Encoding)?;
        if name.is_empty() {
            return Err(PurlError::NoName);
        }
        Ok(Purl {
            ty,
            namespace: ns,
            name,
            version,
            qualifiers,
            subpath,
        })
    }
}

/// The package types whose namespace and name are not case sensitive, per
/// the purl specification's type definitions (and NuGet's package ids,
/// which NuGet itself compares without case).
const CASE_INSENSITIVE_TYPES: [&str; 9] = [
    "alpm",
    "apk",
    "bitbucket",
    "composer",
    "deb",
    "github",
    "hex",
    "nuget",
    "pypi",
];

/// What identifies a package regardless of version, qualifiers and
/// subpath: the type, namespace and name, normalised as the purl
/// specification says for the type (see [`Purl::package_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackageKey {
    /// Type, lower case.
    pub ty: String,
    /// Namespace segments, normalised.
    pub namespace: Vec<String>,
    /// Name, normalised.
    pub name: String,
}

impl std::fmt::Display for PackageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Purl {
            ty: self.ty.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            version: None,
            qualifiers: BTreeMap::new(),
            subpath: Vec::new(),
        }
        .fmt(f)
    }
}

impl Purl {
    /// The package this purl names, normalised for comparison: types whose
    /// names are not case sensitive are lower-cased (GitHub's
    /// `wolfSSL/wolfssl` is `wolfssl/wolfssl`), and PyPI names also have
    /// `_` and `.` read as `-` (PEP 503). Other types compare exactly: a
    /// Maven or npm name in another case is another package.
    pub fn package_key(&self) -> PackageKey {
        let fold = CASE_INSENSITIVE_TYPES.contains(&self.ty.as_str());
        let norm = |s: &str| {
            if fold {
                s.to_lowercase()
            } else {
                s.to_owned()
            }
        };
        let mut name = norm(&self.name);
        if self.ty == "pypi" {
            name = name.replace(['_', '.'], "-");
        }
        PackageKey {
            ty: self.ty.clone(),
            namespace: self.namespace.iter().map(|s| norm(s)).collect(),
            name,
        }
    }

    /// Whether two purls name the same package (any version).
    pub fn same_package(&self, other: &Purl) -> bool {
        self.package_key() == other.package_key()
    }
}

/// The version rule of an advisory's product identified by a purl: the
/// version or range branch above it where there is one (`vers:generic/<5.2.0`,
/// `4.8.1 and earlier`); else the purl's own version (`…@4.8.1`: that
/// version only); else the product's full name, unparsed, so that a match
/// goes to review instead of being assumed for every version (as
/// `csaf::ProductPath::constraint`).
pub fn product_rule(
    product: &Purl,
    branch_version: Option<&str>,
    full_name: &str,
) -> crate::constraint::VersionConstraint {
    use crate::constraint::VersionConstraint;
    match (branch_version, &product.version) {
        (Some(text), _) => VersionConstraint::parse(text),
        (None, Some(v)) => VersionConstraint::parse(v),
        (None, None) => VersionConstraint::Unparsed(full_name.to_owned()),
    }
}

/// Whether an SBOM component is within an advisory's product identified by
/// a purl: `None` when they name different packages
/// ([`Purl::same_package`]); else the product's version rule
/// ([`product_rule`]) applied to the component's version (its `version`,
/// or its purl's where it has none), compared with `scheme`. A component
/// without any version is undecided, never assumed within.
pub fn component_within(
    product: &Purl,
    rule: &crate::constraint::VersionConstraint,
    component: &Purl,
    component_version: Option<&str>,
    scheme: crate::version::Scheme,
) -> Option<crate::constraint::Decision> {
    if !product.same_package(component) {
        return None;
    }
    let installed = crate::constraint::Installed {
        version: component_version.or(component.version.as_deref()),
        model: None,
        components: &[],
    };
    Some(rule.matches(&installed, scheme))
}

impl std::fmt::Display for Purl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pkg:{}/", self.ty)?;
        for seg in &self.namespace {
            write!(f, "{}/", percent_encode(seg, b""))?;
        }
        f.write_str(&percent_encode(&self.name, b""))?;
        if let Some(v) = &self.version {
            write!(f, "@{}", percent_encode(v, b":"))?;
        }
        for (i, (k, v)) in self.qualifiers.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{k}={}", percent_encode(v, b":/"))?;
        }
        if !self.subpath.is_empty() {
            let parts: Vec<String> = self
                .subpath
                .iter()
                .map(|s| percent_encode(s, b""))
                .collect();
            write!(f, "#{}", parts.join("/"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_examples() {
        let p = Purl::parse("pkg:deb/debian/curl@7.50.3-1?arch=i386&distro=jessie").unwrap();
        assert_eq!(p.ty, "deb");
        assert_eq!(p.namespace, ["debian"]);
        assert_eq!(p.name, "curl");
        assert_eq!(p.version.as_deref(), Some("7.50.3-1"));
        assert_eq!(p.qualifiers["arch"], "i386");
        let p = Purl::parse("pkg:npm/%40angular/animation@12.3.1").unwrap();
        assert_eq!(p.namespace, ["@angular"]);
        assert_eq!(p.to_string(), "pkg:npm/%40angular/animation@12.3.1");
        let p = Purl::parse("pkg:golang/google.golang.org/genproto#googleapis/api/annotations")
            .unwrap();
        assert_eq!(p.subpath, ["googleapis", "api", "annotations"]);
        let p = Purl::parse("pkg:GitHub/package-url/purl-spec@244fd47e07d1004f0aed9c").unwrap();
        assert_eq!(p.ty, "github");
        assert_eq!(Purl::parse("http://x/y"), Err(PurlError::Scheme));
        assert_eq!(Purl::parse("pkg:npm/@1.0"), Err(PurlError::NoName));
        assert!(matches!(
            Purl::parse("pkg:npm/a%zz"),
            Err(PurlError::Encoding(_))
        ));
        assert!(matches!(
            Purl::parse("pkg:npm/a?novalue"),
            Err(PurlError::Qualifier(_))
        ));
    }

    #[test]
    fn packages_compare_as_their_type_says() {
        let key = |s: &str| Purl::parse(s).unwrap().package_key();
        assert_eq!(
            key("pkg:github/wolfSSL/WolfSSL@v5.2.0-stable"),
            key("pkg:GITHUB/wolfssl/wolfssl")
        );
        assert_eq!(
            key("pkg:pypi/Django_Rest.Framework@3.0"),
            key("pkg:pypi/django-rest-framework")
        );
        assert_eq!(key("pkg:nuget/jQuery@3.1.1"), key("pkg:nuget/jquery@1.0"));
        // Maven and npm names are case sensitive: another case is another
        // package, never the nearest one.
        assert_ne!(
            key("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"),
            key("pkg:maven/org.apache.logging.log4j/Log4j-Core@2.14.1")
        );
        assert_ne!(key("pkg:npm/lodash"), key("pkg:npm/LoDash"));
        // Type, namespace and name all count.
        assert_ne!(
            key("pkg:github/wolfssl/wolfssl"),
            key("pkg:generic/wolfssl/wolfssl")
        );
        assert_ne!(
            key("pkg:github/wolfssl/wolfssl"),
            key("pkg:github/wolfssl/wolfmqtt")
        );
        assert_ne!(key("pkg:github/a/x"), key("pkg:github/b/x"));
        assert_ne!(key("pkg:generic/x"), key("pkg:generic/a/x"));
        assert_eq!(
            key("pkg:github/wolfSSL/wolfssl@5.0?arch=x86#src").to_string(),
            "pkg:github/wolfssl/wolfssl"
        );
    }

    #[test]
    fn a_product_purl_and_its_versions_decide_a_component() {
        use crate::constraint::Decision;
        use crate::version::Scheme;
        let p = |s: &str| Purl::parse(s).unwrap();
        let wolf = p("pkg:github/wolfssl/wolfssl");
        let range = product_rule(&wolf, Some("vers:generic/<5.2.0"), "wolfSSL < 5.2.0");
        let at = |c: &str, v: Option<&str>| {
            component_within(&wolf, &range, &p(c), v, Scheme::DottedNumeric)
        };
        assert_eq!(
            at("pkg:github/wolfSSL/wolfssl", Some("4.8.1")),
            Some(Decision::Yes)
        );
        assert_eq!(
            at("pkg:github/wolfssl/wolfssl@4.8.1", None),
            Some(Decision::Yes)
        );
        assert_eq!(
            at("pkg:github/wolfssl/wolfssl", Some("5.2.0")),
            Some(Decision::No)
        );
        assert_eq!(
            at("pkg:github/wolfssl/wolfssl", Some("5.10.0")),
            Some(Decision::No)
        );
        assert!(matches!(
            at("pkg:github/wolfssl/wolfssl", None),
            Some(Decision::Undecided(_))
        ));
        assert_eq!(at("pkg:github/wolfssl/wolfmqtt", Some("1.0")), None);
        // No version branch: the purl's version is the one version named.
        let exact = product_rule(&p("pkg:nuget/log4net@2.0.8"), None, "log4net 2.0.8");
        let log4net = p("pkg:nuget/log4net@2.0.8");
        assert_eq!(
            component_within(
                &log4net,
                &exact,
                &p("pkg:nuget/Log4Net"),
                Some("2.0.8"),
                Scheme::DottedNumeric
            ),
            Some(Decision::Yes)
        );
        assert_eq!(
            component_within(
                &log4net,
                &exact,
                &p("pkg:nuget/log4net"),
                Some("2.0.10"),
                Scheme::DottedNumeric
            ),
            Some(Decision::No)
        );
        // Neither: the name is kept unparsed, and the match is undecided.
        let none = product_rule(&wolf, None, "wolfSSL (all supported releases)");
        assert!(none.is_unparsed());
        assert!(matches!(
            component_within(
                &wolf,
                &none,
                &p("pkg:github/wolfssl/wolfssl"),
                Some("4.8.1"),
                Scheme::DottedNumeric
            ),
            Some(Decision::Undecided(_))
        ));
    }

    fn arb_purl() -> impl Strategy<Value = Purl> {
        let seg = "[a-zA-Z0-9 @%/:?#&=+._~-]{1,8}";
        (
            "[a-z][a-z0-9.+-]{0,6}",
            proptest::collection::vec(seg, 0..3),
            seg,
            proptest::option::of(seg),
            proptest::collection::btree_map("[a-z][a-z0-9._-]{0,5}", seg, 0..3),
            proptest::collection::vec(seg, 0..3),
        )
            .prop_map(|(ty, namespace, name, version, qualifiers, subpath)| Purl {
                ty,
                namespace,
                name,
                version,
                qualifiers,
                subpath: subpath
                    .into_iter()
                    .filter(|s| s != "." && s != "..")
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn print_parse_round_trip(p in arb_purl()) {
            let text = p.to_string();
            let back = Purl::parse(&text).unwrap();
            prop_assert_eq!(&back, &p, "{}", text);
            prop_assert_eq!(back.to_string(), text);
        }

        #[test]
        fn package_keys_ignore_version_qualifiers_and_subpath(
            p in arb_purl(),
            version in proptest::option::of("[a-z0-9.]{1,6}"),
            sub in proptest::collection::vec("[a-z]{1,4}", 0..2),
        ) {
            let mut q = p.clone();
            q.version = version;
            q.qualifiers.clear();
            q.subpath = sub;
            prop_assert!(p.same_package(&q));
            // The key is already normalised, and survives printing.
            let k = p.package_key();
            let printed = Purl::parse(&k.to_string()).unwrap();
            prop_assert_eq!(printed.package_key(), k);
        }

        #[test]
        fn case_folds_exactly_for_the_insensitive_types(
            mut p in arb_purl(),
            ty in prop_oneof![Just("github"), Just("pypi"), Just("nuget"), Just("maven"), Just("npm"), Just("generic")],
            upper in any::<bool>(),
        ) {
            p.ty = ty.to_owned();
            let mut q = p.clone();
            q.name = if upper { p.name.to_uppercase() } else { p.name.to_lowercase() };
            let folded = CASE_INSENSITIVE_TYPES.contains(&p.ty.as_str());
            if folded {
                prop_assert!(p.same_package(&q));
            } else {
                prop_assert_eq!(p.same_package(&q), p.name == q.name);
            }
        }

        #[test]
        fn never_panics(s in "pkg:\\PC{0,60}") {
            let _ = Purl::parse(&s);
        }
    }
}
