//! CVE JSON 5 records (CVE Record Format 5.x, as in CVEProject/cvelistV5).
//!
//! Read: `cveMetadata` (cveId, state, assigner, dates), the CNA container's
//! `descriptions`, `affected` (vendor, product, defaultStatus, cpes, and
//! `versions[]` with `version`, `status`, `lessThan`, `lessThanOrEqual`,
//! `versionType`), `problemTypes` CWE ids and `metrics` (cvssV2_0, cvssV3_0,
//! cvssV3_1, cvssV4_0) from the CNA and every ADP container. A rejected
//! record (state REJECTED) parses with no affected products.

use crate::constraint::{Bound, VersionConstraint};
use crate::json::{parse_bytes, Node, ParseError, PathBuf, Walk};
use crate::version::Version;

/// One `versions[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedVersion {
    /// `version`.
    pub version: String,
    /// `status` (`affected`, `unaffected`, `unknown`).
    pub status: String,
    /// `lessThan`.
    pub less_than: Option<String>,
    /// `lessThanOrEqual`.
    pub less_than_or_equal: Option<String>,
    /// `versionType`.
    pub version_type: Option<String>,
}

impl AffectedVersion {
    /// The versions this entry is about (whether they are affected is
    /// `status`, which the caller reads). With `lessThan`/`lessThanOrEqual` it is a
    /// range from `version` (unbounded below when `version` is `0`, `*` or
    /// empty); otherwise `version` is read as text, which is where CNAs put
    /// prose such as "Versions 9.33.1 and earlier" (kept
    /// [`VersionConstraint::Unparsed`] when it cannot be read).
    pub fn constraint(&self) -> VersionConstraint {
        let upper = match (&self.less_than, &self.less_than_or_equal) {
            (Some(lt), _) if lt != "*" => Some((lt, false)),
            (_, Some(le)) if le != "*" => Some((le, true)),
            (Some(_), _) | (_, Some(_)) => {
                // "lessThan": "*" means every version from `version` on.
                return match Version::parse(&self.version) {
                    Ok(v) => VersionConstraint::Range {
                        lower: Some(Bound {
                            version: v,
                            inclusive: true,
                        }),
                        upper: None,
                    },
                    Err(_) if matches!(self.version.trim(), "" | "0" | "*") => {
                        VersionConstraint::Any
                    }
                    Err(_) => VersionConstraint::Unparsed(self.version.clone()),
                };
            }
            (None, None) => return VersionConstraint::parse(&self.version),
        };
        let Some((text, inclusive)) = upper else {
            return VersionConstraint::parse(&self.version);
        };
        let Ok(hi) = Version::parse(text) else {
            return VersionConstraint::Unparsed(format!(
                "{} < {}",
                crate::json::excerpt(&self.version),
                crate::json::excerpt(text)
            ));
        };
        let lower = match self.version.trim() {
            "" | "0" | "*" => None,
            v => match Version::parse(v) {
                Ok(lo) => Some(Bound {
                    version: lo,
                    inclusive: true,
                }),
                Err(_) => {
                    return VersionConstraint::Unparsed(format!(
                        "{} .. {}",
                        crate::json::excerpt(v),
                        crate::json::excerpt(text)
                    ))
                }
            },
        };
        VersionConstraint::Range {
            lower,
            upper: Some(Bound {
                version: hi,
                inclusive,
            }),
        }
    }
}

/// One `affected[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affected {
    /// `vendor`.
    pub vendor: String,
    /// `product`.
    pub product: String,
    /// `defaultStatus`.
    pub default_status: Option<String>,
    /// `cpes`.
    pub cpes: Vec<String>,
    /// `versions`.
    pub versions: Vec<AffectedVersion>,
}

/// A CVSS metric from a CVE record.
#[derive(Debug, Clone, PartialEq)]
pub struct Cve5Metric {
    /// CVSS version.
    pub version: String,
    /// `baseScore`.
    pub base_score: f64,
    /// `vectorString`.
    pub vector: String,
    /// Which container it came from (`cna` or the ADP's short name).
    pub provider: String,
}

/// A CVE record.
#[derive(Debug, Clone, PartialEq)]
pub struct CveRecord {
    /// `cveMetadata.cveId`.
    pub cve_id: String,
    /// `cveMetadata.state`.
    pub state: String,
    /// `cveMetadata.assignerShortName`.
    pub assigner: Option<String>,
    /// `cveMetadata.datePublished`.
    pub date_published: Option<String>,
    /// `cveMetadata.dateUpdated`.
    pub date_updated: Option<String>,
    /// The CNA's descriptions (lang, text).
    pub descriptions: Vec<(String, String)>,
    /// The CNA's affected products.
    pub affected: Vec<Affected>,
    /// CWE ids.
    pub cwes: Vec<String>,
    /// CVSS metrics.
    pub metrics: Vec<Cve5Metric>,
    /// The CNA's `references`: (url, name or tags joined).
    pub references: Vec<(String, String)>,
}

fn metrics(c: Node<'_>, provider: &str, out: &mut Vec<Cve5Metric>) -> Result<(), ParseError> {
    c.each("metrics", |_, m| {
        for (key, v) in [
            ("cvssV4_0", "4.0"),
            ("cvssV3_1", "3.1"),
            ("cvssV3_0", "3.0"),
            ("cvssV2_0", "2.0"),
        ] {
            m.with(key, |x| {
                out.push(Cve5Metric {
                    version: x.opt_string("version")?.unwrap_or_else(|| v.into()),
                    base_score: x.with_req("baseScore", |s| s.f64())?,
                    vector: x.opt_string("vectorString")?.unwrap_or_default(),
                    provider: provider.into(),
                });
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Parses a CVE JSON 5 record.
pub fn parse(bytes: &[u8]) -> Result<CveRecord, ParseError> {
    let value = parse_bytes(bytes)?;
    let root_path = PathBuf::root();
    let root = Node::new(&value, &root_path);
    let (cve_id, state, assigner, date_published, date_updated) =
        root.with_req("cveMetadata", |m| {
            Ok((
                m.req_string("cveId")?,
                m.req_string("state")?,
                m.opt_string("assignerShortName")?,
                m.opt_string("datePublished")?,
                m.opt_string("dateUpdated")?,
            ))
        })?;
    let mut out = CveRecord {
        cve_id,
        state,
        assigner,
        date_published,
        date_updated,
        descriptions: Vec::new(),
        affected: Vec::new(),
        cwes: Vec::new(),
        metrics: Vec::new(),
        references: Vec::new(),
    };
    root.with_req("containers", |c| {
        c.with("cna", |cna| {
            out.descriptions = cna.each("descriptions", |_, d| {
                Ok((d.req_string("lang")?, d.req_string("value")?))
            })?;
            out.affected = cna.each("affected", |_, a| {
                Ok(Affected {
                    vendor: a.opt_string("vendor")?.unwrap_or_default(),
                    product: a.opt_string("product")?.unwrap_or_default(),
                    default_status: a.opt_string("defaultStatus")?,
                    cpes: a.strings("cpes")?,
                    versions: a.each("versions", |_, v| {
                        Ok(AffectedVersion {
                            version: v.req_string("version")?,
                            status: v.req_string("status")?,
                            less_than: v.opt_string("lessThan")?,
                            less_than_or_equal: v.opt_string("lessThanOrEqual")?,
                            version_type: v.opt_string("versionType")?,
                        })
                    })?,
                })
            })?;
            cna.each("problemTypes", |_, p| {
                p.each("descriptions", |_, d| {
                    if let Some(id) = d.opt_string("cweId")? {
                        if !out.cwes.contains(&id) {
                            out.cwes.push(id);
                        }
                    }
                    Ok(())
                })
            })?;
            out.references = cna.each("references", |_, r| {
                let name = match r.opt_string("name")? {
                    Some(n) => n,
                    None => r.strings("tags")?.join(", "),
                };
                Ok((r.req_string("url")?, name))
            })?;
            metrics(cna, "cna", &mut out.metrics)
        })?;
        c.each("adp", |_, adp| {
            let name = adp
                .with("providerMetadata", |p| p.opt_string("shortName"))?
                .flatten()
                .unwrap_or_else(|| "adp".into());
            metrics(adp, &name, &mut out.metrics)
        })?;
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constraint::{matches, Decision};

    #[test]
    fn real_record() {
        let r = parse(include_bytes!("../tests/data/cve5/CVE-2020-25165.json")).unwrap();
        assert_eq!(r.cve_id, "CVE-2020-25165");
        assert_eq!(r.state, "PUBLISHED");
        assert_eq!(r.assigner.as_deref(), Some("icscert"));
        assert_eq!(r.cwes, ["CWE-287"]);
        assert_eq!(
            r.references,
            [(
                "https://us-cert.cisa.gov/ics/advisories/icsma-20-317-01".to_owned(),
                "x_refsource_MISC".to_owned()
            )]
        );
        assert_eq!(
            r.affected[0].product,
            "BD Alaris PC Unit and BD Alaris Systems Manager"
        );
        // The CNA wrote the whole sentence into "version": kept, not guessed.
        let c = r.affected[0].versions[0].constraint();
        assert!(c.is_unparsed(), "{c:?}");
        assert!(matches!(matches(&c, "9.33.1", &[]), Decision::Undecided(_)));
    }

    #[test]
    fn structured_versions() {
        let v = |version: &str, lt: Option<&str>, le: Option<&str>| AffectedVersion {
            version: version.into(),
            status: "affected".into(),
            less_than: lt.map(Into::into),
            less_than_or_equal: le.map(Into::into),
            version_type: Some("custom".into()),
        };
        let c = v("0", Some("3.0"), None).constraint();
        assert_eq!(matches(&c, "2.9", &[]), Decision::Yes);
        assert_eq!(matches(&c, "3.0", &[]), Decision::No);
        let c = v("1.1", None, Some("1.3.2")).constraint();
        assert_eq!(matches(&c, "1.3.2", &[]), Decision::Yes);
        assert_eq!(matches(&c, "1.0", &[]), Decision::No);
        let c = v("6.0", Some("*"), None).constraint();
        assert_eq!(matches(&c, "9", &[]), Decision::Yes);
        assert_eq!(
            v("9.7", None, None).constraint(),
            VersionConstraint::parse("9.7")
        );
    }

    #[test]
    fn errors() {
        let e = parse(br#"{"cveMetadata":{"cveId":"CVE-2020-1","state":"PUBLISHED"},"containers":{"cna":{"affected":[{"versions":[{"version":"1"}]}]}}}"#).unwrap_err();
        assert_eq!(e.to_string(), "$.containers.cna.affected[0].versions[0].status: expected a value (the member is required), found nothing");
    }
}
