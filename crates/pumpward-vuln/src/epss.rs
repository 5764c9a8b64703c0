//! FIRST EPSS scores, CSV as published daily (`epss_scores-YYYY-MM-DD.csv`).
//!
//! Accepted: an optional first comment line
//! `#model_version:v2023.03.01,score_date:2023-04-01T00:00:00+0000`, a header
//! naming `cve`, `epss` and `percentile` (any order, other columns ignored),
//! then one row per CVE. Probabilities and percentiles must be numbers in
//! 0–1; errors name the physical line. No real EPSS file is in the test data
//! (see `tests/data/README.md`); the format is FIRST's documented one.

use crate::json::ParseError;

/// One score.
#[derive(Debug, Clone, PartialEq)]
pub struct EpssScore {
    /// CVE id.
    pub cve: String,
    /// Probability of exploitation activity in the next 30 days, 0–1.
    pub epss: f64,
    /// Percentile among all scored CVEs, 0–1.
    pub percentile: f64,
}

/// A parsed EPSS file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EpssFile {
    /// `model_version` from the comment line.
    pub model_version: Option<String>,
    /// `score_date` from the comment line.
    pub score_date: Option<String>,
    /// The scores, in file order.
    pub scores: Vec<EpssScore>,
}

impl EpssFile {
    /// The score of a CVE.
    pub fn get(&self, cve: &str) -> Option<&EpssScore> {
        self.scores.iter().find(|s| s.cve.eq_ignore_ascii_case(cve))
    }
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        path: format!("line {line}"),
        message: message.into(),
    }
}

/// Parses EPSS CSV text.
pub fn parse(bytes: &[u8]) -> Result<EpssFile, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| err(0, format!("not UTF-8: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = EpssFile::default();
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let mut header = None;
    for (n, line) in lines.by_ref() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(meta) = line.strip_prefix('#') {
            for part in meta.split(',') {
                match part.split_once(':') {
                    Some(("model_version", v)) => out.model_version = Some(v.trim().into()),
                    Some(("score_date", v)) => out.score_date = Some(v.trim().into()),
                    _ => {}
                }
            }
            continue;
        }
        header = Some((n, line));
        break;
    }
    let (hn, header) =
        header.ok_or_else(|| err(1, "no header line (expected cve,epss,percentile)"))?;
    let cols: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| {
        cols.iter().position(|c| c == name).ok_or_else(|| {
            err(
                hn,
                format!(
                    "the header lacks the column {name:?} (found: {})",
                    crate::json::excerpt(header)
                ),
            )
        })
    };
    let (ci, ei, pi) = (col("cve")?, col("epss")?, col("percentile")?);
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize, what: &str| {
            f.get(i)
                .copied()
                .ok_or_else(|| err(n, format!("missing the {what} column")))
        };
        let num = |i: usize, what: &str| -> Result<f64, ParseError> {
            let s = get(i, what)?;
            let x: f64 = s.parse().map_err(|_| {
                err(
                    n,
                    format!("{what} {:?} is not a number", crate::json::excerpt(s)),
                )
            })?;
            if !(0.0..=1.0).contains(&x) {
                return Err(err(n, format!("{what} {x} is outside 0–1")));
            }
            Ok(x)
        };
        out.scores.push(EpssScore {
            cve: get(ci, "cve")?.to_owned(),
            epss: num(ei, "epss")?,
            percentile: num(pi, "percentile")?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_sample() {
        let f = parse(include_bytes!(
            "../tests/data/epss/synthetic-format-sample.csv"
        ))
        .unwrap();
        assert_eq!(f.model_version.as_deref(), Some("v2023.03.01"));
        assert_eq!(f.score_date.as_deref(), Some("2025-08-25T00:00:00+0000"));
        assert_eq!(f.scores.len(), 3);
        assert_eq!(f.get("CVE-2023-43208").unwrap().epss, 0.94);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(b"#model_version:v1\ncve,epss,percentile\nCVE-2020-1,1.5,0.2\n").unwrap_err();
        assert_eq!(e.to_string(), "line 3: epss 1.5 is outside 0–1");
        let e = parse(b"cve,score\nCVE-1,0.1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: the header lacks the column \"epss\" (found: cve,score)"
        );
        let e = parse(b"cve,epss,percentile\nCVE-1,x,0.1\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: epss \"x\" is not a number");
        assert!(parse(b"").is_err());
        assert!(parse(&[0xff, 0xfe]).is_err());
    }
}
