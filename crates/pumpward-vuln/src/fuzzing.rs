//! The bodies of the `csaf_json`, `cpe_purl_vers`, `vendor_version` and `remediation_step` fuzz
//! targets, here so that the committed seeds (`fuzz/seeds/<target>/`) are
//! replayed by a unit test on stable. Besides "never panics", each checks
//! what the crate promises: parsed values re-print to themselves, orders
//! are antisymmetric, errors stay short whatever the input's size, and an
//! unparsed rule never decides.

use crate::constraint::{Component, Decision, Installed, VersionConstraint};
use crate::cpe::{Cpe, CpeCriterion};
use crate::purl::Purl;
use crate::vers::VersRange;
use crate::version::{Comparison, Scheme, Version};

/// What one run saw (for the seed tests' expectations).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Inputs that parsed (as anything the target tries).
    pub parsed: usize,
    /// Inputs refused with an error.
    pub refused: usize,
    /// Matches that came out undecided.
    pub undecided: usize,
}

const SCHEMES: [Scheme; 3] = [Scheme::Generic, Scheme::DottedNumeric, Scheme::BBraunLine];

fn short_error(e: impl std::fmt::Display) {
    // Errors quote at most a short excerpt of the input.
    let s = e.to_string();
    assert!(!s.is_empty());
    assert!(s.len() < 2_000, "error of {} bytes", s.len());
}

/// Bytes as an importer receives a file: format detection, then every
/// parser of the crate (advisories, feeds, SBOMs). For a CSAF document that parses, every
/// product's version rule is read and matched, and the advisory compares as
/// the same revision of itself.
pub fn csaf_json(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let _ = crate::detect::detect(data);
    match crate::csaf::parse(data) {
        Err(e) => {
            short_error(e);
            out.refused += 1;
        }
        Ok(a) => {
            out.parsed += 1;
            assert_eq!(a.compare_revision(&a), crate::csaf::Supersession::Same);
            for p in a.product_tree.products.values() {
                let c = p.constraint();
                for scheme in SCHEMES {
                    let d = c.matches(
                        &Installed {
                            version: Some("1.0"),
                            model: None,
                            components: &[],
                        },
                        scheme,
                    );
                    if c.is_unparsed() {
                        assert!(matches!(d, Decision::Undecided(_)));
                    }
                    if matches!(d, Decision::Undecided(_)) {
                        out.undecided += 1;
                    }
                }
            }
            for v in &a.vulnerabilities {
                for r in &v.remediations {
                    let _ = a.expand_ids(&r.product_ids, &r.group_ids);
                }
            }
        }
    }
    // What the store keeps of an NVD record's configurations reads back
    // the same.
    if let Ok(feed) = crate::nvd::parse(data) {
        for c in &feed.cves {
            let kept = crate::nvd::configurations_json(&c.configurations).to_string();
            assert_eq!(
                crate::nvd::parse_configurations(kept.as_bytes())
                    .ok()
                    .as_ref(),
                Some(&c.configurations)
            );
        }
    }
    // Its reader takes stored text, but must not panic on any.
    let _ = crate::nvd::parse_configurations(data);
    for r in [
        crate::nvd::parse(data).map(|_| ()),
        crate::nvd::parse_transcription(data).map(|_| ()),
        crate::cve5::parse(data).map(|_| ()),
        crate::kev::parse(data).map(|_| ()),
        crate::epss::parse(data).map(|_| ()),
        crate::sbom::parse(data).map(|_| ()),
    ] {
        match r {
            Ok(()) => out.parsed += 1,
            Err(e) => {
                short_error(e);
                out.refused += 1;
            }
        }
    }
    out
}

/// Up to three lines of text: the first two are each tried as a CPE name, a
/// purl and a vers range; what parses must print to text that parses to the
/// same value. When both are CPE names, the first is matched as a criterion
/// (with the third line, if any, as its inclusive upper version bound)
/// against the second; a vers range is asked about the other line as a
/// version. When both are purls, the first is an advisory's product (the
/// third line its version branch) deciding the second as a component.
pub fn cpe_purl_vers(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let a = lines.next().unwrap_or("");
    let b = lines.next().unwrap_or("");
    let bound = lines.next().filter(|l| !l.is_empty());
    // Two purls: the package comparison is symmetric, and a product purl
    // decides a component without panicking.
    if let (Ok(pa), Ok(pb)) = (Purl::parse(a), Purl::parse(b)) {
        assert_eq!(pa.same_package(&pb), pb.same_package(&pa));
        let rule = crate::purl::product_rule(&pa, bound, a);
        if let Some(crate::constraint::Decision::Undecided(_)) = crate::purl::component_within(
            &pa,
            &rule,
            &pb,
            None,
            crate::version::Scheme::DottedNumeric,
        ) {
            out.undecided += 1;
        }
    }
    for s in [a, b] {
        match Cpe::parse(s) {
            Ok(c) => {
                out.parsed += 1;
                let again = Cpe::parse(&c.to_string()).expect("a printed CPE parses");
                assert_eq!(again, c);
            }
            Err(e) => {
                short_error(e);
                out.refused += 1;
            }
        }
        match Purl::parse(s) {
            Ok(p) => {
                out.parsed += 1;
                let again = Purl::parse(&p.to_string()).expect("a printed purl parses");
                assert_eq!(again, p);
                // The package key is normalised once and for all.
                let key = p.package_key();
                let reparsed = Purl::parse(&key.to_string()).expect("a printed key parses");
                assert_eq!(reparsed.package_key(), key);
            }
            Err(e) => {
                short_error(e);
                out.refused += 1;
            }
        }
        match VersRange::parse(s) {
            Ok(r) => {
                out.parsed += 1;
                let printed = r.to_string();
                let again = VersRange::parse(&printed).expect("a printed vers parses");
                assert_eq!(again, r);
                assert_eq!(again.to_string(), printed);
                if let Ok(v) = Version::parse(if s == a { b } else { a }) {
                    for scheme in SCHEMES {
                        if matches!(r.contains(&v, scheme), crate::vers::Contains::Unknown(_)) {
                            out.undecided += 1;
                        }
                    }
                }
            }
            Err(e) => {
                short_error(e);
                out.refused += 1;
            }
        }
    }
    if let (Ok(crit), Ok(target)) = (Cpe::parse(a), Cpe::parse(b)) {
        let c = CpeCriterion {
            cpe: crit,
            vulnerable: true,
            start_including: None,
            start_excluding: None,
            end_including: bound.map(str::to_owned),
            end_excluding: None,
        };
        for scheme in SCHEMES {
            if matches!(
                c.matches(&target, scheme),
                crate::cpe::CpeMatch::Undecided(_)
            ) {
                out.undecided += 1;
            }
        }
    }
    out
}

/// Three lines: an advisory's version text, an installed version, a
/// component version. The text is read as a rule and matched under every
/// scheme; the two versions are compared both ways (the generic order must
/// be antisymmetric, and each scheme must agree with itself reversed).
pub fn vendor_version(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let rule = lines.next().unwrap_or("");
    let installed = lines.next().unwrap_or("");
    let component = lines.next().unwrap_or("");
    let c = VersionConstraint::parse(rule);
    let _ = c.to_string();
    let comps = [Component {
        name: "Wireless Battery Module".into(),
        version: component.into(),
    }];
    for scheme in SCHEMES {
        let d = c.matches(
            &Installed {
                version: Some(installed),
                model: Some(component),
                components: &comps,
            },
            scheme,
        );
        if c.is_unparsed() {
            assert!(matches!(d, Decision::Undecided(_)), "{rule:?} decided");
        }
        if matches!(d, Decision::Undecided(_)) {
            out.undecided += 1;
        }
    }
    match (Version::parse(installed), Version::parse(component)) {
        (Ok(x), Ok(y)) => {
            out.parsed += 1;
            assert_eq!(x.cmp(&y), y.cmp(&x).reverse());
            for scheme in SCHEMES {
                match (scheme.compare(&x, &y), scheme.compare(&y, &x)) {
                    (Comparison::Ordered(p), Comparison::Ordered(q)) => assert_eq!(p, q.reverse()),
                    (Comparison::Ambiguous(_), Comparison::Ambiguous(_))
                    | (Comparison::Incomparable(_), Comparison::Incomparable(_)) => {}
                    (p, q) => panic!("{scheme:?}: {p:?} but reversed {q:?}"),
                }
            }
        }
        (a, b) => {
            for e in [a.err(), b.err()].into_iter().flatten() {
                short_error(e);
                out.refused += 1;
            }
        }
    }
    out
}

/// A remediation step as the API and CLI receive it (JSON), applied from
/// every state with the input's text as the reported version and date; and
/// the free text the priority reads (care area, CVSS version, control
/// names). A step is accepted only along the workflow's edges, and never
/// without its required fields.
pub fn remediation_step(data: &[u8]) -> Outcome {
    use crate::priority::{CareAcuity, Control, CvssVersion};
    use crate::remediation::{apply, is_date, RemediationState, Step};
    let mut out = Outcome::default();
    let text = String::from_utf8_lossy(data);
    let _ = CareAcuity::from_care_area(Some(&text));
    let _ = CvssVersion::parse(&text);
    let _ = Control::parse(&text);
    let _ = RemediationState::parse(&text);
    let _ = is_date(&text);
    let Ok(step) = serde_json::from_slice::<Step>(data) else {
        out.refused += 1;
        return out;
    };
    out.parsed += 1;
    use RemediationState::*;
    for from in [
        Open,
        VendorPatchAvailable,
        PatchValidated,
        Scheduled,
        Deployed,
        RiskAccepted,
    ] {
        match apply(from, &step, &text, "2026-11-26") {
            Ok(to) => {
                assert!(from.next().contains(&to), "{from} -> {to} is not an edge");
                assert_eq!(to, step.target());
            }
            Err(e) => short_error(e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target);
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn seed(target: &str, name: &str) -> Vec<u8> {
        seeds(target)
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no seed {target}/{name}"))
            .1
    }

    /// Replays every committed seed of the three targets on stable.
    #[test]
    fn fuzz_seeds_replay() {
        let s = seeds("csaf_json");
        assert!(s.len() >= 8, "only {} csaf_json seeds", s.len());
        for (_, d) in &s {
            csaf_json(d);
        }
        let s = seeds("cpe_purl_vers");
        assert!(s.len() >= 8, "only {} cpe_purl_vers seeds", s.len());
        for (_, d) in &s {
            cpe_purl_vers(d);
        }
        let s = seeds("vendor_version");
        assert!(s.len() >= 8, "only {} vendor_version seeds", s.len());
        for (_, d) in &s {
            vendor_version(d);
        }
        let s = seeds("remediation_step");
        assert!(s.len() >= 4, "only {} remediation_step seeds", s.len());
        let parsed: usize = s.iter().map(|(_, d)| remediation_step(d).parsed).sum();
        assert_eq!(parsed, 4, "the four JSON seeds are steps");
    }

    #[test]
    fn seeds_do_what_their_names_say() {
        let o = csaf_json(&seed("csaf_json", "icsma-20-296-02.json"));
        assert_eq!(o.parsed, 1, "only the CSAF parser accepts a CSAF file");
        let o = csaf_json(&seed("csaf_json", "unparsed_versions.json"));
        assert_eq!(o.parsed, 1);
        assert!(o.undecided >= 3);
        let o = csaf_json(&seed("csaf_json", "truncated.json"));
        assert_eq!(o.parsed, 0);
        let o = csaf_json(&seed("csaf_json", "kev_two_entries.json"));
        assert_eq!(o.parsed, 1);
        let o = cpe_purl_vers(&seed("cpe_purl_vers", "escaped_cpe.txt"));
        assert_eq!(o.parsed, 2, "both lines are CPE names");
        let o = cpe_purl_vers(&seed("cpe_purl_vers", "ambiguous_bound.txt"));
        assert!(o.undecided >= 1);
        let o = vendor_version(&seed("vendor_version", "wbm_condition.txt"));
        assert_eq!(o.undecided, 0);
        let o = vendor_version(&seed("vendor_version", "prose.txt"));
        assert_eq!(o.undecided, 3);
        let o = vendor_version(&seed("vendor_version", "braun_lines.txt"));
        // Only the B. Braun scheme knows 012U000040 is on another numbering
        // than U61/L81; the generic orders read it as newer (no match).
        assert_eq!(o.undecided, 1);
    }
}
