//! Package URLs: `pkg:type/namespace/name@version?qualifiers#subpath`.
//!
//! Parsing follows the purl specification's algorithm (subpath from the
//! right, then qualifiers, scheme, type, version, name, namespace), with
//! percent-decoding of every component. The type and qualifier keys are
//! lower-cased; qualifiers are kept sorted by key and empty values dropped,
//! so [`Purl`]'s `Display` is the canonical form and parse∘print is the
//! identity on what parse returns (property-tested).
//! Type-specific normalisations (PyPI's `_`→`-`, and so on) are not applied:
//! SBOM components are compared on what their producer wrote.

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
        fn never_panics(s in "pkg:\\PC{0,60}") {
            let _ = Purl::parse(&s);
        }
    }
}
