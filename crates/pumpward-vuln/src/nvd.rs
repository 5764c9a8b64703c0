//! NVD CVE API 2.0 JSON: CVE records with their CPE match configurations.
//!
//! [`parse`] accepts an API 2.0 response (`{"format": "NVD_CVE",
//! "vulnerabilities": [{"cve": {…}}]}`) or a single `cve` object as the
//! fkie-cad/nvd-json-data-feeds mirror stores it. Read: id, dates, status,
//! descriptions, CWE ids, CVSS v2/v3.0/v3.1/v4.0 metrics (base score, vector,
//! source, primary or secondary) and `configurations` (nodes with `operator`,
//! `negate` and `cpeMatch` entries: `vulnerable`, `criteria`,
//! `versionStart/EndIncluding/Excluding`).
//!
//! [`parse_transcription`] reads `shared/data/cve/nvd_pump_cpe_configurations.json`,
//! which holds NVD configurations transcribed into a reduced record shape
//! (`records[]` with `cve`, `nvd_cvss_v3`, `nvd_cvss_v2`, `nvd_cwe`,
//! `configurations`); a configuration that is only a `note` (where the
//! transcription stopped) is skipped with a warning.

use crate::cpe::{Cpe, CpeCriterion, CpeMatch};
use crate::json::{parse_bytes, Node, ParseError, PathBuf, Walk, Warning};
use crate::version::Scheme;

/// AND or OR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// All must match.
    And,
    /// One must match.
    Or,
}

/// A configuration node: criteria joined by an operator, optionally negated.
#[derive(Debug, Clone, PartialEq)]
pub struct CpeNode {
    /// `operator` (OR when absent).
    pub operator: Operator,
    /// `negate`.
    pub negate: bool,
    /// `cpeMatch`.
    pub matches: Vec<CpeCriterion>,
}

/// A configuration: nodes joined by an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    /// `operator` (OR when absent).
    pub operator: Operator,
    /// `negate`.
    pub negate: bool,
    /// `nodes`.
    pub nodes: Vec<CpeNode>,
}

/// A CVSS metric as NVD lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct NvdMetric {
    /// CVSS version (`2.0`, `3.0`, `3.1`, `4.0`).
    pub version: String,
    /// Base score.
    pub base_score: f64,
    /// Vector string.
    pub vector: String,
    /// Who scored it (`nvd@nist.gov`, a CNA).
    pub source: Option<String>,
    /// `Primary` or `Secondary`.
    pub kind: Option<String>,
}

/// One NVD CVE record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NvdCve {
    /// `id`.
    pub id: String,
    /// `published`.
    pub published: Option<String>,
    /// `lastModified`.
    pub last_modified: Option<String>,
    /// `vulnStatus`.
    pub vuln_status: Option<String>,
    /// `descriptions` (lang, text).
    pub descriptions: Vec<(String, String)>,
    /// CWE ids from `weaknesses`.
    pub cwes: Vec<String>,
    /// CVSS metrics, newest version first.
    pub metrics: Vec<NvdMetric>,
    /// `configurations`.
    pub configurations: Vec<Configuration>,
    /// `references`: (url, tags joined, e.g. "Patch, Vendor Advisory"),
    /// each URL once.
    pub references: Vec<(String, String)>,
}

/// A parsed NVD document and what was odd about it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NvdFeed {
    /// The records.
    pub cves: Vec<NvdCve>,
    /// Warnings.
    pub warnings: Vec<Warning>,
}

impl NvdCve {
    /// The English description.
    pub fn description(&self) -> Option<&str> {
        self.descriptions
            .iter()
            .find(|(l, _)| l.starts_with("en"))
            .map(|(_, t)| t.as_str())
    }

    /// Whether the products named by `cpes` (an asset's, or an SBOM's
    /// components') are vulnerable: some configuration evaluates to a match.
    pub fn evaluate(&self, cpes: &[Cpe], scheme: Scheme) -> CpeMatch {
        any(self.configurations.iter().map(|c| c.evaluate(cpes, scheme)))
    }
}

fn any(outs: impl Iterator<Item = CpeMatch>) -> CpeMatch {
    let mut undecided = None;
    for o in outs {
        match o {
            CpeMatch::Match => return CpeMatch::Match,
            CpeMatch::Undecided(r) => {
                undecided.get_or_insert(r);
            }
            CpeMatch::NoMatch => {}
        }
    }
    undecided.map_or(CpeMatch::NoMatch, CpeMatch::Undecided)
}

fn every(outs: impl Iterator<Item = CpeMatch>) -> CpeMatch {
    let mut undecided = None;
    for o in outs {
        match o {
            CpeMatch::NoMatch => return CpeMatch::NoMatch,
            CpeMatch::Undecided(r) => {
                undecided.get_or_insert(r);
            }
            CpeMatch::Match => {}
        }
    }
    undecided.map_or(CpeMatch::Match, CpeMatch::Undecided)
}

fn negate(o: CpeMatch, yes: bool) -> CpeMatch {
    match (o, yes) {
        (CpeMatch::Match, true) => CpeMatch::NoMatch,
        (CpeMatch::NoMatch, true) => CpeMatch::Match,
        (o, _) => o,
    }
}

fn join(op: Operator, outs: impl Iterator<Item = CpeMatch>) -> CpeMatch {
    match op {
        Operator::And => every(outs),
        Operator::Or => any(outs),
    }
}

impl CpeNode {
    /// A node matches when its criteria, joined by its operator, match one
    /// of `cpes` each (then `negate` applies).
    pub fn evaluate(&self, cpes: &[Cpe], scheme: Scheme) -> CpeMatch {
        let per_criterion = self
            .matches
            .iter()
            .map(|c| any(cpes.iter().map(|t| c.matches(t, scheme))));
        negate(join(self.operator, per_criterion), self.negate)
    }
}

impl Configuration {
    /// The configuration's nodes, joined by its operator.
    pub fn evaluate(&self, cpes: &[Cpe], scheme: Scheme) -> CpeMatch {
        let per_node = self.nodes.iter().map(|n| n.evaluate(cpes, scheme));
        negate(join(self.operator, per_node), self.negate)
    }
}

fn operator(n: &Node<'_>) -> Result<Operator, ParseError> {
    Ok(n.with("operator", |o| match o.str()? {
        "AND" | "and" => Ok(Operator::And),
        "OR" | "or" => Ok(Operator::Or),
        _ => Err(o.expected("\"AND\" or \"OR\"")),
    })?
    .unwrap_or(Operator::Or))
}

fn criterion(m: Node<'_>) -> Result<CpeCriterion, ParseError> {
    let cpe = m.with_req("criteria", |c| {
        Cpe::parse(c.str()?).map_err(|e| c.invalid(e.to_string()))
    })?;
    Ok(CpeCriterion {
        cpe,
        vulnerable: m.with_req("vulnerable", |v| v.bool())?,
        start_including: m.opt_string("versionStartIncluding")?,
        start_excluding: m.opt_string("versionStartExcluding")?,
        end_including: m.opt_string("versionEndIncluding")?,
        end_excluding: m.opt_string("versionEndExcluding")?,
    })
}

fn configurations(
    n: Node<'_>,
    key: &str,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Configuration>, ParseError> {
    let mut out = Vec::new();
    n.each(key, |_, c| {
        let obj = c.object()?;
        if !obj.contains_key("nodes") {
            warnings.push(c.warning(match obj.get("note").and_then(|x| x.as_str()) {
                Some(note) => format!("configuration without nodes skipped: {note}"),
                None => "configuration without nodes skipped".into(),
            }));
            return Ok(());
        }
        out.push(Configuration {
            operator: operator(&c)?,
            negate: c.with("negate", |x| x.bool())?.unwrap_or(false),
            nodes: c.each("nodes", |_, node| {
                Ok(CpeNode {
                    operator: operator(&node)?,
                    negate: node.with("negate", |x| x.bool())?.unwrap_or(false),
                    matches: node.each("cpeMatch", |_, m| criterion(m))?,
                })
            })?,
        });
        Ok(())
    })?;
    Ok(out)
}

fn metric_list(n: Node<'_>, key: &str, out: &mut Vec<NvdMetric>) -> Result<(), ParseError> {
    n.each(key, |_, m| {
        let (version, base_score, vector) = m.with_req("cvssData", |d| {
            Ok((
                d.req_string("version")?,
                d.with_req("baseScore", |s| s.f64())?,
                d.opt_string("vectorString")?.unwrap_or_default(),
            ))
        })?;
        out.push(NvdMetric {
            version,
            base_score,
            vector,
            source: m.opt_string("source")?,
            kind: m.opt_string("type")?,
        });
        Ok(())
    })?;
    Ok(())
}

fn record(c: Node<'_>, warnings: &mut Vec<Warning>) -> Result<NvdCve, ParseError> {
    let mut metrics = Vec::new();
    c.with("metrics", |m| {
        for key in [
            "cvssMetricV40",
            "cvssMetricV31",
            "cvssMetricV30",
            "cvssMetricV2",
        ] {
            metric_list(m, key, &mut metrics)?;
        }
        Ok(())
    })?;
    let mut cwes = Vec::new();
    c.each("weaknesses", |_, w| {
        w.each("description", |_, d| {
            let v = d.req_string("value")?;
            if !cwes.contains(&v) {
                cwes.push(v);
            }
            Ok(())
        })
    })?;
    Ok(NvdCve {
        id: c.req_string("id")?,
        published: c.opt_string("published")?,
        last_modified: c.opt_string("lastModified")?,
        vuln_status: c.opt_string("vulnStatus")?,
        descriptions: c.each("descriptions", |_, d| {
            Ok((d.req_string("lang")?, d.req_string("value")?))
        })?,
        cwes,
        metrics,
        configurations: configurations(c, "configurations", warnings)?,
        references: {
            let mut refs: Vec<(String, String)> = Vec::new();
            // NVD lists a URL once per source that cited it: once is enough.
            for (url, tags) in c.each("references", |_, r| {
                Ok((r.req_string("url")?, r.strings("tags")?.join(", ")))
            })? {
                if !refs.iter().any(|(u, _)| *u == url) {
                    refs.push((url, tags));
                }
            }
            refs
        },
    })
}

/// Parses an NVD CVE API 2.0 response or a single `cve` record.
pub fn parse(bytes: &[u8]) -> Result<NvdFeed, ParseError> {
    let value = parse_bytes(bytes)?;
    let root_path = PathBuf::root();
    let root = Node::new(&value, &root_path);
    let obj = root.object()?;
    let mut feed = NvdFeed::default();
    if obj.contains_key("vulnerabilities") {
        if let Some(f) = obj.get("format").and_then(|f| f.as_str()) {
            if f != "NVD_CVE" {
                root.with("format", |n| {
                    feed.warnings
                        .push(n.warning(format!("format {f:?}, expected \"NVD_CVE\"")));
                    Ok(())
                })?;
            }
        }
        let mut warnings = Vec::new();
        feed.cves = root.each("vulnerabilities", |_, v| {
            v.with_req("cve", |c| record(c, &mut warnings))
        })?;
        feed.warnings.extend(warnings);
    } else {
        let mut warnings = Vec::new();
        feed.cves = vec![record(root, &mut warnings)?];
        feed.warnings = warnings;
    }
    Ok(feed)
}

/// The configurations in NVD API 2.0's shape (`{"configurations": [...]}`),
/// as the store keeps them; [`parse_configurations`] reads them back.
pub fn configurations_json(configs: &[Configuration]) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let op = |o: Operator| match o {
        Operator::And => "AND",
        Operator::Or => "OR",
    };
    let criterion = |c: &CpeCriterion| {
        let mut m = Map::new();
        m.insert("vulnerable".into(), Value::Bool(c.vulnerable));
        m.insert("criteria".into(), Value::String(c.cpe.to_string()));
        for (key, bound) in [
            ("versionStartIncluding", &c.start_including),
            ("versionStartExcluding", &c.start_excluding),
            ("versionEndIncluding", &c.end_including),
            ("versionEndExcluding", &c.end_excluding),
        ] {
            if let Some(b) = bound {
                m.insert(key.into(), Value::String(b.clone()));
            }
        }
        Value::Object(m)
    };
    json!({
        "configurations": configs.iter().map(|c| json!({
            "operator": op(c.operator),
            "negate": c.negate,
            "nodes": c.nodes.iter().map(|n| json!({
                "operator": op(n.operator),
                "negate": n.negate,
                "cpeMatch": n.matches.iter().map(criterion).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Reads what [`configurations_json`] wrote.
pub fn parse_configurations(bytes: &[u8]) -> Result<Vec<Configuration>, ParseError> {
    let value = parse_bytes(bytes)?;
    let root_path = PathBuf::root();
    let root = Node::new(&value, &root_path);
    root.with_req("configurations", |_| Ok(()))?;
    let mut warnings = Vec::new();
    configurations(root, "configurations", &mut warnings)
}

/// Parses the transcribed configurations file of the shared test data.
pub fn parse_transcription(bytes: &[u8]) -> Result<NvdFeed, ParseError> {
    let value = parse_bytes(bytes)?;
    let root_path = PathBuf::root();
    let root = Node::new(&value, &root_path);
    let mut warnings = Vec::new();
    let cves = root.with_req("records", |r| {
        let mut out = Vec::new();
        for (i, item) in r.array()?.iter().enumerate() {
            let p = r.path().index(i);
            let c = Node::new(item, &p);
            let mut metrics = Vec::new();
            for (key, default) in [("nvd_cvss_v3", "3.x"), ("nvd_cvss_v2", "2.0")] {
                c.with(key, |m| {
                    metrics.push(NvdMetric {
                        version: m.opt_string("version")?.unwrap_or_else(|| default.into()),
                        base_score: m.with_req("baseScore", |s| s.f64())?,
                        vector: m.opt_string("vectorString")?.unwrap_or_default(),
                        source: Some("nvd@nist.gov".into()),
                        kind: Some("Primary".into()),
                    });
                    Ok(())
                })?;
            }
            out.push(NvdCve {
                id: c.req_string("cve")?,
                last_modified: c.opt_string("lastModified")?,
                vuln_status: c.opt_string("vulnStatus")?,
                cwes: c.strings("nvd_cwe")?,
                metrics,
                configurations: configurations(c, "configurations", &mut warnings)?,
                ..NvdCve::default()
            });
        }
        Ok(out)
    })?;
    Ok(NvdFeed { cves, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &[u8] = include_bytes!("../tests/data/nvd/CVE-2020-25165.json");

    #[test]
    fn real_record() {
        let f = parse(RECORD).unwrap();
        assert!(f.warnings.is_empty());
        let c = &f.cves[0];
        assert_eq!(c.id, "CVE-2020-25165");
        assert_eq!(c.cwes, ["CWE-287"]);
        assert_eq!(c.metrics[0].version, "3.1");
        assert_eq!(c.metrics[0].base_score, 7.5);
        assert_eq!(c.metrics[1].version, "2.0");
        assert_eq!(c.configurations.len(), 2);
        assert_eq!(
            c.references,
            [(
                "https://us-cert.cisa.gov/ics/advisories/icsma-20-317-01".to_owned(),
                "Third Party Advisory, US Government Resource".to_owned()
            )]
        );
        assert_eq!(c.configurations[0].operator, Operator::And);
        assert!(!c.configurations[0].nodes[1].matches[0].vulnerable);
        assert!(c
            .description()
            .unwrap()
            .starts_with("BD Alaris PC Unit, Model 8015"));

        let fw = |v: &str| {
            Cpe::parse(&format!(
                "cpe:2.3:o:bd:alaris_8015_pcu_firmware:{v}:*:*:*:*:*:*:*"
            ))
            .unwrap()
        };
        let hw = Cpe::parse("cpe:2.3:h:bd:alaris_8015_pcu:-:*:*:*:*:*:*:*").unwrap();
        let bd = Scheme::DottedNumeric;
        assert_eq!(c.evaluate(&[fw("9.33.1"), hw.clone()], bd), CpeMatch::Match);
        assert_eq!(
            c.evaluate(&[fw("12.1.3"), hw.clone()], bd),
            CpeMatch::NoMatch
        );
        // The firmware alone does not satisfy the AND with the hardware.
        assert_eq!(c.evaluate(&[fw("9.33.1")], bd), CpeMatch::NoMatch);
        let asm = Cpe::parse("cpe:2.3:a:bd:alaris_systems_manager:4.33:*:*:*:*:*:*:*").unwrap();
        assert_eq!(c.evaluate(&[asm], bd), CpeMatch::Match);
    }

    #[test]
    fn api_response_wrapper_and_negation() {
        let rec = std::str::from_utf8(RECORD).unwrap();
        let wrapped = format!(
            r#"{{"resultsPerPage":1,"startIndex":0,"totalResults":1,"format":"NVD_CVE","version":"2.0","vulnerabilities":[{{"cve":{rec}}}]}}"#
        );
        let f = parse(wrapped.as_bytes()).unwrap();
        assert_eq!(f.cves.len(), 1);
        let neg = rec.replacen(r#""negate": false"#, r#""negate": true"#, 1);
        let f = parse(neg.as_bytes()).unwrap();
        let hw = Cpe::parse("cpe:2.3:h:bd:alaris_8015_pcu:-:*:*:*:*:*:*:*").unwrap();
        let fw = Cpe::parse("cpe:2.3:o:bd:alaris_8015_pcu_firmware:12.1.3:*:*:*:*:*:*:*").unwrap();
        assert_eq!(
            f.cves[0].evaluate(&[fw, hw], Scheme::DottedNumeric),
            CpeMatch::Match
        );
    }

    #[test]
    fn configurations_survive_the_round_trip_through_the_store() {
        let f = parse(RECORD).unwrap();
        let c = &f.cves[0].configurations;
        let text = configurations_json(c).to_string();
        assert_eq!(&parse_configurations(text.as_bytes()).unwrap(), c);
        assert_eq!(
            parse_configurations(br#"{"configurations":[{"nodes":[{"operator":"NOT"}]}]}"#)
                .unwrap_err()
                .to_string(),
            "$.configurations[0].nodes[0].operator: expected \"AND\" or \"OR\", found string \"NOT\""
        );
    }

    #[test]
    fn errors() {
        let e = parse(br#"{"vulnerabilities":[{"cve":{"id":"CVE-1","configurations":[{"nodes":[{"operator":"XOR","cpeMatch":[]}]}]}}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "$.vulnerabilities[0].cve.configurations[0].nodes[0].operator: expected \"AND\" or \"OR\", found string \"XOR\"");
        let e = parse(br#"{"id":"CVE-1","configurations":[{"nodes":[{"cpeMatch":[{"vulnerable":true,"criteria":"cpe:2.3:a"}]}]}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "$.configurations[0].nodes[0].cpeMatch[0].criteria: a CPE 2.3 name has 11 attributes after \"cpe:2.3:\", this one has 1");
    }
}
