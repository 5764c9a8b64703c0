//! The parsers, version rules and identity table against the real CISA,
//! NVD, KEV and SBOM files copied into `tests/data/` (provenance in
//! `tests/data/README.md`). Where the shared data folder sits beside the
//! repository (`../shared/data`), its whole csaf/, csaf-other/, cve/, kev/
//! and sbom/ folders are checked too.

use pumpward_vuln::constraint::{Component, Decision, Installed, VersionConstraint};
use pumpward_vuln::cpe::{Cpe, CpeMatch};
use pumpward_vuln::csaf::{self, Advisory, Supersession};
use pumpward_vuln::detect::{detect, Format};
use pumpward_vuln::identity::AliasTable;
use pumpward_vuln::version::Scheme;
use pumpward_vuln::{kev, nvd};
use std::path::{Path, PathBuf};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data");

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn load(rel: &str) -> Advisory {
    let p = Path::new(DATA).join(rel);
    csaf::parse(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// (file, tracking id, version, products, vulnerabilities, first CVE, its
/// first base score), read off the files independently of this crate.
const ADVISORIES: &[(&str, &str, &str, usize, usize, &str, f64)] = &[
    (
        "csaf/icsa-15-090-03.json",
        "ICSA-15-090-03",
        "2",
        1,
        1,
        "CVE-2014-5401",
        10.0,
    ),
    (
        "csaf/icsa-15-125-01.json",
        "ICSA-15-125-01",
        "2",
        1,
        1,
        "CVE-2015-3459",
        10.0,
    ),
    (
        "csaf/icsa-15-125-01b.json",
        "ICSA-15-125-01B",
        "2",
        1,
        7,
        "CVE-2014-5406",
        7.6,
    ),
    (
        "csaf/icsa-15-161-01.json",
        "ICSA-15-161-01",
        "2",
        3,
        7,
        "CVE-2015-3952",
        6.4,
    ),
    (
        "csaf/icsa-15-174-01.json",
        "ICSA-15-174-01",
        "2",
        1,
        1,
        "CVE-2015-3965",
        7.1,
    ),
    (
        "csaf/icsma-16-306-01.json",
        "ICSMA-16-306-01",
        "2",
        4,
        2,
        "CVE-2016-8358",
        8.5,
    ),
    (
        "csaf/icsma-17-017-01.json",
        "ICSMA-17-017-01",
        "2",
        1,
        1,
        "CVE-2016-8375",
        4.9,
    ),
    (
        "csaf/icsma-17-017-02.json",
        "ICSMA-17-017-02",
        "4",
        3,
        2,
        "CVE-2016-8375",
        4.9,
    ),
    (
        "csaf/icsma-17-250-02a.json",
        "ICSMA-17-250-02A",
        "2",
        3,
        8,
        "CVE-2017-12718",
        3.7,
    ),
    (
        "csaf/icsma-18-235-01.json",
        "ICSMA-18-235-01",
        "1",
        4,
        1,
        "CVE-2018-14786",
        9.4,
    ),
    (
        "csaf/icsma-19-164-01.json",
        "ICSMA-19-164-01",
        "1",
        11,
        2,
        "CVE-2019-10962",
        7.3,
    ),
    (
        "csaf/icsma-19-178-01.json",
        "ICSMA-19-178-01",
        "1",
        11,
        1,
        "CVE-2019-10964",
        7.1,
    ),
    (
        "csaf/icsma-20-170-06.json",
        "ICSMA-20-170-06",
        "2",
        1,
        1,
        "CVE-2019-11479",
        5.3,
    ),
    (
        "csaf/icsma-20-296-02.json",
        "ICSMA-20-296-02",
        "1",
        3,
        11,
        "CVE-2020-25158",
        7.6,
    ),
    (
        "csaf/icsma-20-317-01.json",
        "ICSMA-20-317-01",
        "1",
        2,
        1,
        "CVE-2020-25165",
        6.5,
    ),
    (
        "csaf/icsma-21-012-01.json",
        "ICSMA-21-012-01",
        "1",
        3,
        9,
        "CVE-2020-27256",
        4.6,
    ),
    (
        "csaf/icsma-22-263-01.json",
        "ICSMA-22-263-01",
        "1",
        4,
        1,
        "CVE-2022-32537",
        4.8,
    ),
    (
        "csaf-other/icsma-17-082-01.json",
        "ICSMA-17-082-01",
        "1",
        2,
        1,
        "CVE-2017-6022",
        7.3,
    ),
    (
        "csaf-other/icsma-17-227-01.json",
        "ICSMA-17-227-01",
        "1",
        1,
        1,
        "CVE-2017-12701",
        4.6,
    ),
    (
        "csaf-other/icsma-18-114-01.json",
        "ICSMA-18-114-01",
        "1",
        12,
        1,
        "CVE-2017-13077",
        6.8,
    ),
    (
        "csaf-other/icsma-18-144-01.json",
        "ICSMA-18-144-01",
        "1",
        1,
        2,
        "CVE-2018-7518",
        7.5,
    ),
    (
        "csaf-other/icsma-18-156-01.json",
        "ICSMA-18-156-01",
        "2",
        3,
        3,
        "CVE-2018-10597",
        8.3,
    ),
    (
        "csaf-other/icsma-19-022-01.json",
        "ICSMA-19-022-01",
        "1",
        4,
        3,
        "CVE-2018-19010",
        6.5,
    ),
    (
        "csaf-other/icsma-19-029-01.json",
        "ICSMA-19-029-01",
        "1",
        3,
        1,
        "CVE-2017-13077",
        6.8,
    ),
    (
        "csaf-other/icsma-19-311-01.json",
        "ICSMA-19-311-01",
        "1",
        3,
        2,
        "CVE-2019-13531",
        4.8,
    ),
    (
        "csaf-other/icsma-20-023-01.json",
        "ICSMA-20-023-01",
        "1",
        11,
        6,
        "CVE-2020-6961",
        10.0,
    ),
    (
        "csaf-other/icsma-20-091-01.json",
        "ICSMA-20-091-01",
        "1",
        2,
        1,
        "CVE-2020-10598",
        6.8,
    ),
    (
        "csaf-other/icsma-20-170-03.json",
        "ICSMA-20-170-03",
        "2",
        1,
        1,
        "CVE-2020-12048",
        7.5,
    ),
    (
        "csaf-other/icsma-22-062-02.json",
        "ICSMA-22-062-02",
        "1",
        1,
        1,
        "CVE-2022-22765",
        8.0,
    ),
];

#[test]
fn every_shipped_csaf_file_parses_to_what_it_says() {
    let on_disk = json_files(&Path::new(DATA).join("csaf")).len()
        + json_files(&Path::new(DATA).join("csaf-other")).len();
    assert_eq!(
        on_disk,
        ADVISORIES.len(),
        "a copied file has no row in the table"
    );
    for &(file, id, version, products, vulns, cve, score) in ADVISORIES {
        let a = load(file);
        assert!(a.warnings.is_empty(), "{file}: {:?}", a.warnings);
        assert_eq!(a.document.tracking.id, id, "{file}");
        assert_eq!(a.document.tracking.version, version, "{file}");
        assert_eq!(a.document.tracking.status, "final", "{file}");
        assert_eq!(a.document.csaf_version, "2.0", "{file}");
        assert_eq!(a.document.publisher.name, "CISA", "{file}");
        assert_eq!(a.product_tree.products.len(), products, "{file}");
        assert_eq!(a.vulnerabilities.len(), vulns, "{file}");
        let v = &a.vulnerabilities[0];
        assert_eq!(v.cve.as_deref(), Some(cve), "{file}");
        assert_eq!(v.scores[0].newest().unwrap().base_score, score, "{file}");
        // Every product id the vulnerabilities use resolves to a vendor and
        // a product name.
        for v in &a.vulnerabilities {
            for id in v.product_status.affected() {
                let p = &a.product_tree.products[id];
                assert!(p.vendor.is_some() && p.product.is_some(), "{file} {id}");
            }
        }
    }
}

#[test]
fn document_details() {
    let a = load("csaf/icsma-17-017-02.json");
    let t = &a.document.tracking;
    assert_eq!(t.revision_history.len(), 4);
    assert_eq!(t.revision_history[3].legacy_version.as_deref(), Some("C"));
    assert_eq!(
        t.current_release_date.as_deref(),
        Some("2021-03-16T00:00:00.000000Z")
    );
    assert_eq!(t.generator.as_deref(), Some("CISA CSAF Generator 1.0.0"));
    assert_eq!(a.document.tlp.as_deref(), Some("WHITE"));
    let v = &a.vulnerabilities[0];
    assert_eq!(
        v.cwe,
        Some((
            "CWE-522".into(),
            "Insufficiently Protected Credentials".into()
        ))
    );
    let s = v.scores[0].cvss_v3.as_ref().unwrap();
    assert_eq!(s.vector, "CVSS:3.0/AV:P/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N");
    assert_eq!(s.base_severity.as_deref(), Some("MEDIUM"));
    assert_eq!(v.remediations.len(), 5);
    assert!(v.remediations.iter().all(|r| r.category == "vendor_fix"));
    assert!(v.remediations[1]
        .details
        .contains("less than 9.19 are end of life"));
    // 2015 advisories carry CVSS v2 only.
    let a = load("csaf/icsa-15-090-03.json");
    let s = &a.vulnerabilities[0].scores[0];
    assert!(s.cvss_v3.is_none());
    assert_eq!(
        s.cvss_v2.as_ref().unwrap().vector,
        "AV:N/AC:L/Au:N/C:C/I:C/A:C"
    );
    assert_eq!(
        a.document.title, "Hospira MedNet Vulnerabilitie",
        "the typo is the source's"
    );
    // B. Braun: mitigations besides vendor fixes.
    let a = load("csaf/icsma-20-296-02.json");
    let cats: Vec<&str> = a.vulnerabilities[0]
        .remediations
        .iter()
        .map(|r| r.category.as_str())
        .collect();
    assert_eq!(
        cats,
        [
            "vendor_fix",
            "vendor_fix",
            "vendor_fix",
            "mitigation",
            "mitigation"
        ]
    );
}

#[test]
fn update_b_supersedes_the_original() {
    let orig = load("csaf/icsa-15-125-01.json");
    let upd = load("csaf/icsa-15-125-01b.json");
    assert_eq!(upd.compare_revision(&orig), Supersession::Supersedes);
    assert_eq!(orig.compare_revision(&upd), Supersession::SupersededBy);
    // Although the original's CSAF conversion is dated later:
    assert!(
        orig.document.tracking.current_release_date > upd.document.tracking.current_release_date
    );
    assert_eq!(upd.cves().len(), 7);
    assert!(upd.cves().contains(&"CVE-2015-3459"));
    let other = load("csaf/icsma-17-017-01.json");
    assert_eq!(
        other.compare_revision(&load("csaf/icsma-17-017-02.json")),
        Supersession::Unrelated
    );
    assert_eq!(orig.compare_revision(&orig), Supersession::Same);
}

/// Every version text in the shipped pump advisories and what it became.
const VERSION_TEXTS: &[(&str, &str, &str)] = &[
    ("<=5.8", "<= 5.8", "icsa-15-090-03 MedNet"),
    ("<=5.0", "<= 5.0", "icsa-15-125-01(b) LifeCare PCA"),
    ("<=13.4", "<= 13.4", "icsa-15-161-01 Plum A+"),
    ("<=13.6", "<= 13.6", "icsa-15-161-01 Plum A+3"),
    ("<=3.13", "<= 3.13", "icsa-15-161-01 / 15-174-01 Symbiq"),
    ("1.0", "= 1.0", "icsma-16-306-01 CADD-Solis MSS"),
    ("2.0", "= 2.0", "icsma-16-306-01"),
    ("3.0", "= 3.0", "icsma-16-306-01"),
    ("3.1", "= 3.1", "icsma-16-306-01"),
    ("vers:all/*", "all versions", "icsma-17-017-01 Alaris 8000, icsma-19-178-01 MiniMed"),
    ("9.7", "= 9.7", "icsma-17-017-02 Alaris 8015"),
    ("<= 9.33", "<= 9.33", "icsma-17-017-02"),
    ("<= 9.5", "<= 9.5", "icsma-17-017-02"),
    ("1.1", "= 1.1", "icsma-17-250-02a Medfusion 4000"),
    ("1.6", "= 1.6", "icsma-17-250-02a"),
    ("1.5", "= 1.5", "icsma-17-250-02a"),
    ("<= 2.3.6", "<= 2.3.6", "icsma-18-235-01 Alaris CC/TIVA/GH/GS"),
    ("2.3.6 and  below", "<= 2.3.6", "icsma-19-164-01 (two spaces in the source)"),
    ("1.1.6", "= 1.1.6", "icsma-19-164-01 Gateway Workstation"),
    ("1.1.5", "= 1.1.5", "icsma-19-164-01"),
    ("1.3.1 Build 13", "= 1.3.1 Build 13", "icsma-19-164-01"),
    ("1.1.3 MR Build 11", "= 1.1.3 MR Build 11", "icsma-19-164-01"),
    ("1.0.13", "= 1.0.13", "icsma-19-164-01"),
    ("1.3.0 Build 14", "= 1.3.0 Build 14", "icsma-19-164-01"),
    ("1.1.3 Build 10", "= 1.1.3 Build 10", "icsma-19-164-01"),
    ("<= 2.6A", "<= 2.6A", "icsma-19-178-01 Paradigm Veo 554/754"),
    ("<= 2.7A", "<= 2.7A", "icsma-19-178-01 Veo 554CM/754CM"),
    ("<= 2.4A", "<= 2.4A", "icsma-19-178-01 Paradigm 523/723(K)"),
    ("9.13 | 9.19 | 9.33 | 12.1", "(= 9.13) or (= 9.19) or (= 9.33) or (= 12.1)", "icsma-20-170-06 Alaris PC Unit"),
    ("<= U61 |<= L81", "(<= U61) or (<= L81)", "icsma-20-296-02 SpaceCom, Battery pack"),
    ("A10 | A11", "(= A10) or (= A11)", "icsma-20-296-02 Data module compactplus"),
    ("<= 9.33.1", "<= 9.33.1", "icsma-20-317-01 Alaris PC Unit 8015"),
    ("<= 4.33", "<= 4.33", "icsma-20-317-01 Alaris Systems Manager"),
    ("< 3.0", "< 3.0", "icsma-21-012-01 SOOIL"),
    ("MMT-1710", "model MMT-1710", "icsma-22-263-01 MiniMed 620G"),
    ("MMT-1715 | MMT-1754 | MMT-1755", "model MMT-1715 or MMT-1754 or MMT-1755", "icsma-22-263-01 630G"),
    ("MMT-1711 | MMT-1712 | MMT-1751 | MMT-1752", "model MMT-1711 or MMT-1712 or MMT-1751 or MMT-1752", "icsma-22-263-01 640G"),
    (
        "MMT-1740 | MMT-1741 | MMT-1742 | MMT-1760 | MMT-1762 | MMT-1762 | MMT-1780 | MMT-1781 | MMT-1782",
        "model MMT-1740 or MMT-1741 or MMT-1742 or MMT-1760 or MMT-1762 or MMT-1762 or MMT-1780 or MMT-1781 or MMT-1782",
        "icsma-22-263-01 670G",
    ),
    // Forms from the issue and from CVE/NVD text rather than the CSAF files:
    ("6.x", "6.*", "issue 5"),
    ("v16 … v22D28", ">= v16 and <= v22D28", "issue 5"),
    (
        "v6.x with Wireless Battery Modules v16 … v22D28",
        "(v6.*) with Wireless Battery Modules (>= v16 and <= v22D28)",
        "issue 5",
    ),
    (
        "6.05 (model 35700BAX) with wireless battery module (WBM) version 16",
        "((= 6.05) and (model 35700BAX)) with wireless battery module (WBM) (= 16)",
        "CVE-2014-5434 CNA affected version",
    ),
];

#[test]
fn every_version_text_in_the_pump_advisories_is_in_the_table() {
    let mut seen = std::collections::BTreeSet::new();
    for f in json_files(&Path::new(DATA).join("csaf")) {
        let a = csaf::parse(&std::fs::read(&f).unwrap()).unwrap();
        for p in a.product_tree.products.values() {
            let (_, text) = p
                .version
                .as_ref()
                .expect("every pump product has a version branch");
            seen.insert(text.clone());
            let row = VERSION_TEXTS
                .iter()
                .find(|r| r.0 == text)
                .unwrap_or_else(|| panic!("{}: {text:?} is not in VERSION_TEXTS", f.display()));
            assert_eq!(p.constraint().to_string(), row.1, "{text:?}");
            assert!(!p.constraint().is_unparsed(), "{text:?}");
        }
    }
    assert_eq!(seen.len(), 38, "distinct version texts in csaf/");
    for (text, want, why) in VERSION_TEXTS {
        assert_eq!(
            VersionConstraint::parse(text).to_string(),
            *want,
            "{text:?} ({why})"
        );
    }
}

#[test]
fn non_pump_version_texts_that_stay_unparsed() {
    let mut unparsed = Vec::new();
    for f in json_files(&Path::new(DATA).join("csaf-other")) {
        let a = csaf::parse(&std::fs::read(&f).unwrap()).unwrap();
        for p in a.product_tree.products.values() {
            if p.constraint().is_unparsed() {
                unparsed.push(p.version.as_ref().unwrap().1.clone());
            }
        }
    }
    unparsed.sort();
    assert_eq!(
        unparsed,
        [
            "<  july 1 2017",
            "F.0.G.0 | J.3",
            "Rev B-M",
            "Rev J-M | (X3/MX100 for Rev M only)"
        ]
    );
}

fn decide(file: &str, product_id: &str, version: &str, scheme: Scheme) -> Decision {
    let a = load(file);
    a.product_tree.products[product_id].constraint().matches(
        &Installed {
            version: Some(version),
            ..Installed::default()
        },
        scheme,
    )
}

#[test]
fn matching_against_the_real_rules() {
    let bd = Scheme::for_manufacturer("bd");
    let g = Scheme::Generic;
    let f = "csaf/icsma-20-317-01.json";
    assert_eq!(decide(f, "CSAFPID-0001", "9.33.1", bd), Decision::Yes);
    assert_eq!(decide(f, "CSAFPID-0001", "9.19", bd), Decision::Yes);
    assert_eq!(decide(f, "CSAFPID-0001", "12.1.3", bd), Decision::No);
    // Without BD's scheme, 9.19 vs 9.33.1 would be a guess.
    assert!(matches!(
        decide(f, "CSAFPID-0001", "9.7", g),
        Decision::Undecided(_)
    ));
    let f = "csaf/icsma-20-170-06.json";
    assert_eq!(decide(f, "CSAFPID-0001", "9.19", bd), Decision::Yes);
    assert_eq!(decide(f, "CSAFPID-0001", "9.19.0", bd), Decision::Yes);
    assert_eq!(decide(f, "CSAFPID-0001", "9.20", bd), Decision::No);
    let f = "csaf/icsma-20-296-02.json";
    let bb = Scheme::for_manufacturer("bbraun");
    assert_eq!(decide(f, "CSAFPID-0001", "U61", bb), Decision::Yes);
    assert_eq!(decide(f, "CSAFPID-0001", "L82", bb), Decision::No);
    assert_eq!(decide(f, "CSAFPID-0003", "A11", bb), Decision::Yes);
    assert_eq!(decide(f, "CSAFPID-0003", "A12", bb), Decision::No);
    let f = "csaf/icsma-19-178-01.json";
    let mdt = Scheme::for_manufacturer("medtronic");
    assert_eq!(decide(f, "CSAFPID-0005", "2.6A", mdt), Decision::Yes);
    assert_eq!(decide(f, "CSAFPID-0005", "2.5B", mdt), Decision::Yes);
    assert_eq!(decide(f, "CSAFPID-0005", "2.7A", mdt), Decision::No);
    assert_eq!(
        decide(f, "CSAFPID-0001", "anything at all", mdt),
        Decision::Yes
    );
    // Hospira's Plum A+ "<=13.4" against a pump reporting 13.40: review.
    let f = "csaf/icsa-15-161-01.json";
    let h = Scheme::for_manufacturer("hospira");
    assert!(matches!(
        decide(f, "CSAFPID-0001", "13.40", h),
        Decision::Undecided(_)
    ));
    assert_eq!(decide(f, "CSAFPID-0001", "13.3", h), Decision::Yes);
    assert_eq!(decide(f, "CSAFPID-0001", "13.5", h), Decision::No);
    let f = "csaf/icsma-19-164-01.json";
    assert_eq!(
        decide(f, "CSAFPID-0007", "1.1.3 MR Build 11", bd),
        Decision::Yes
    );
    assert_eq!(
        decide(f, "CSAFPID-0007", "1.1.3 Build 11", bd),
        Decision::No
    );
    // MiniMed 6xx: the model decides.
    let a = load("csaf/icsma-22-263-01.json");
    let c = a.product_tree.products["CSAFPID-0002"].constraint();
    let at = |m| Installed {
        version: Some("4.2"),
        model: m,
        components: &[],
    };
    assert_eq!(c.matches(&at(Some("MMT-1754")), mdt), Decision::Yes);
    assert_eq!(c.matches(&at(Some("MMT-1711")), mdt), Decision::No);
    assert!(matches!(c.matches(&at(None), mdt), Decision::Undecided(_)));
    // Baxter Spectrum with its battery module (issue 5's example).
    let c = VersionConstraint::parse("v6.x with Wireless Battery Modules v16 … v22D28");
    let wbm = [Component {
        name: "Wireless Battery Module".into(),
        version: "22D19".into(),
    }];
    let at = |v| Installed {
        version: Some(v),
        model: None,
        components: &wbm,
    };
    assert_eq!(c.matches(&at("6.05"), Scheme::Generic), Decision::Yes);
    assert_eq!(c.matches(&at("8.00.01"), Scheme::Generic), Decision::No);
}

/// Every pump product in csaf/ and its canonical key.
const PRODUCT_KEYS: &[(&str, &str, &str)] = &[
    ("icsa-15-090-03.json", "CSAFPID-0001", "hospira/mednet"),
    (
        "icsa-15-125-01.json",
        "CSAFPID-0001",
        "hospira/lifecare-pca",
    ),
    (
        "icsa-15-125-01b.json",
        "CSAFPID-0001",
        "hospira/lifecare-pca",
    ),
    ("icsa-15-161-01.json", "CSAFPID-0001", "hospira/plum-a-plus"),
    (
        "icsa-15-161-01.json",
        "CSAFPID-0002",
        "hospira/plum-a-plus-3",
    ),
    ("icsa-15-161-01.json", "CSAFPID-0003", "hospira/symbiq"),
    ("icsa-15-174-01.json", "CSAFPID-0001", "hospira/symbiq"),
    (
        "icsma-16-306-01.json",
        "CSAFPID-0001",
        "smiths-medical/cadd-solis-mss",
    ),
    (
        "icsma-16-306-01.json",
        "CSAFPID-0002",
        "smiths-medical/cadd-solis-mss",
    ),
    (
        "icsma-16-306-01.json",
        "CSAFPID-0003",
        "smiths-medical/cadd-solis-mss",
    ),
    (
        "icsma-16-306-01.json",
        "CSAFPID-0004",
        "smiths-medical/cadd-solis-mss",
    ),
    ("icsma-17-017-01.json", "CSAFPID-0001", "bd/alaris-pcu-8000"),
    ("icsma-17-017-02.json", "CSAFPID-0001", "bd/alaris-pcu-8015"),
    ("icsma-17-017-02.json", "CSAFPID-0002", "bd/alaris-pcu-8015"),
    ("icsma-17-017-02.json", "CSAFPID-0003", "bd/alaris-pcu-8015"),
    (
        "icsma-17-250-02a.json",
        "CSAFPID-0001",
        "smiths-medical/medfusion-4000",
    ),
    (
        "icsma-17-250-02a.json",
        "CSAFPID-0002",
        "smiths-medical/medfusion-4000",
    ),
    (
        "icsma-17-250-02a.json",
        "CSAFPID-0003",
        "smiths-medical/medfusion-4000",
    ),
    ("icsma-18-235-01.json", "CSAFPID-0001", "bd/alaris-cc"),
    ("icsma-18-235-01.json", "CSAFPID-0002", "bd/alaris-tiva"),
    ("icsma-18-235-01.json", "CSAFPID-0003", "bd/alaris-gh"),
    ("icsma-18-235-01.json", "CSAFPID-0004", "bd/alaris-gs"),
    ("icsma-19-164-01.json", "CSAFPID-0001", "bd/alaris-gs"),
    (
        "icsma-19-164-01.json",
        "CSAFPID-0002",
        "bd/alaris-gateway-workstation",
    ),
    (
        "icsma-19-164-01.json",
        "CSAFPID-0003",
        "bd/alaris-gateway-workstation",
    ),
    ("icsma-19-164-01.json", "CSAFPID-0004", "bd/alaris-gh"),
    ("icsma-19-164-01.json", "CSAFPID-0005", "bd/alaris-cc"),
    (
        "icsma-19-164-01.json",
        "CSAFPID-0006",
        "bd/alaris-gateway-workstation",
    ),
    (
        "icsma-19-164-01.json",
        "CSAFPID-0007",
        "bd/alaris-gateway-workstation",
    ),
    ("icsma-19-164-01.json", "CSAFPID-0008", "bd/alaris-tiva"),
    (
        "icsma-19-164-01.json",
        "CSAFPID-0009",
        "bd/alaris-gateway-workstation",
    ),
    (
        "icsma-19-164-01.json",
        "CSAFPID-00010",
        "bd/alaris-gateway-workstation",
    ),
    (
        "icsma-19-164-01.json",
        "CSAFPID-00011",
        "bd/alaris-gateway-workstation",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-0001",
        "medtronic/minimed-paradigm-522k-722k",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-0002",
        "medtronic/minimed-paradigm-515-715",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-0003",
        "medtronic/minimed-508",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-0004",
        "medtronic/minimed-paradigm-712e",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-0005",
        "medtronic/minimed-paradigm-veo-554-754",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-0006",
        "medtronic/minimed-paradigm-522-722",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-0007",
        "medtronic/minimed-paradigm-veo-554cm-754cm",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-0008",
        "medtronic/minimed-paradigm-523k-723k",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-0009",
        "medtronic/minimed-paradigm-523-723",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-00010",
        "medtronic/minimed-paradigm-511",
    ),
    (
        "icsma-19-178-01.json",
        "CSAFPID-00011",
        "medtronic/minimed-paradigm-512-712",
    ),
    ("icsma-20-170-06.json", "CSAFPID-0001", "bd/alaris-pcu"),
    ("icsma-20-296-02.json", "CSAFPID-0001", "bbraun/spacecom"),
    (
        "icsma-20-296-02.json",
        "CSAFPID-0002",
        "bbraun/battery-pack-sp-wifi",
    ),
    (
        "icsma-20-296-02.json",
        "CSAFPID-0003",
        "bbraun/data-module-compactplus",
    ),
    ("icsma-20-317-01.json", "CSAFPID-0001", "bd/alaris-pcu-8015"),
    (
        "icsma-20-317-01.json",
        "CSAFPID-0002",
        "bd/alaris-systems-manager",
    ),
    ("icsma-21-012-01.json", "CSAFPID-0001", "sooil/anydana-a"),
    (
        "icsma-21-012-01.json",
        "CSAFPID-0002",
        "sooil/dana-diabecare-rs",
    ),
    ("icsma-21-012-01.json", "CSAFPID-0003", "sooil/anydana-i"),
    (
        "icsma-22-263-01.json",
        "CSAFPID-0001",
        "medtronic/minimed-620g",
    ),
    (
        "icsma-22-263-01.json",
        "CSAFPID-0002",
        "medtronic/minimed-630g",
    ),
    (
        "icsma-22-263-01.json",
        "CSAFPID-0003",
        "medtronic/minimed-640g",
    ),
    (
        "icsma-22-263-01.json",
        "CSAFPID-0004",
        "medtronic/minimed-670g",
    ),
];

#[test]
fn every_pump_product_normalises_to_a_canonical_key() {
    let t = AliasTable::builtin();
    let mut unmapped = Vec::new();
    let mut n = 0;
    for f in json_files(&Path::new(DATA).join("csaf")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let a = csaf::parse(&std::fs::read(&f).unwrap()).unwrap();
        for (id, p) in &a.product_tree.products {
            n += 1;
            let got = t.product(
                p.vendor.as_deref().unwrap_or(""),
                p.product.as_deref().unwrap_or(""),
            );
            let want = PRODUCT_KEYS
                .iter()
                .find(|r| r.0 == name && r.1 == id)
                .map(|r| r.2);
            match (got, want) {
                (Some(g), Some(w)) => assert_eq!(g.product.key, w, "{name} {id}"),
                (None, _) => unmapped.push(format!("{name} {id} {:?}", p.product)),
                (Some(g), None) => panic!("{name} {id} mapped to {} but has no row", g.product.key),
            }
        }
    }
    assert!(unmapped.is_empty(), "unmapped pump products: {unmapped:#?}");
    assert_eq!(n, PRODUCT_KEYS.len());
}

#[test]
fn hard_negatives_do_not_map_to_any_product() {
    let t = AliasTable::builtin();
    for f in json_files(&Path::new(DATA).join("csaf-other")) {
        let a = csaf::parse(&std::fs::read(&f).unwrap()).unwrap();
        for (id, p) in &a.product_tree.products {
            let vendor = p.vendor.as_deref().unwrap_or("");
            assert!(
                t.product(vendor, p.product.as_deref().unwrap_or(""))
                    .is_none(),
                "{} {id} {:?} mapped to a pump product",
                f.display(),
                p.product
            );
            // Nor by the full product name.
            assert!(
                t.product(vendor, &p.full_name).is_none(),
                "{} {id}",
                f.display()
            );
        }
    }
    // Same-vendor traps resolve the vendor and nothing more.
    assert_eq!(
        t.manufacturer("Becton, Dickinson and Company (BD)")
            .unwrap()
            .key,
        "bd"
    );
    assert_eq!(t.manufacturer("Medtronic").unwrap().key, "medtronic");
    assert_eq!(t.manufacturer("Baxter").unwrap().key, "baxter");
    assert!(t.manufacturer("BMC Medical, 3B Medical").is_none());
}

#[test]
fn nvd_transcription_parses_and_its_cpe_names_map_to_products() {
    let feed = nvd::parse_transcription(
        &std::fs::read(Path::new(DATA).join("cve/nvd_pump_cpe_configurations.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(feed.cves.len(), 32);
    // Two long records were transcribed in part and say so.
    assert_eq!(feed.warnings.len(), 2, "{:?}", feed.warnings);
    assert!(feed.warnings.iter().all(|w| w
        .message
        .starts_with("configuration without nodes skipped: record continues")));
    let get = |id: &str| feed.cves.iter().find(|c| c.id == id).unwrap();
    let wbm = |v: &str| {
        Cpe::parse(&format!(
            "cpe:2.3:o:baxter:spectrum_wireless_battery_module_firmware:{v}:*:*:*:*:*:*:*"
        ))
        .unwrap()
    };
    let c = get("CVE-2022-26390");
    // A configuration may also require the pump hardware; the firmware
    // criteria themselves are ranges 20D29–20D32 and 22D19–22D28.
    let fw_node = c
        .configurations
        .iter()
        .flat_map(|x| &x.nodes)
        .find(|n| {
            n.matches
                .iter()
                .any(|m| m.start_including.as_deref() == Some("22d19"))
        })
        .unwrap();
    assert_eq!(
        fw_node.evaluate(&[wbm("22d24")], Scheme::Generic),
        CpeMatch::Match
    );
    assert_eq!(
        fw_node.evaluate(&[wbm("21d01")], Scheme::Generic),
        CpeMatch::NoMatch
    );
    // Every criterion's vendor:product that the alias table knows maps to
    // the same manufacturer's product family as the CSAF names.
    let t = AliasTable::builtin();
    let names = std::fs::read_to_string(Path::new(DATA).join("cve/pump_cpe_names.txt")).unwrap();
    let mut mapped = 0;
    for line in names.lines().filter(|l| !l.is_empty()) {
        let cpe = Cpe::parse(line).unwrap();
        if let Some(p) = t.product_by_cpe(&cpe) {
            mapped += 1;
            let vendor = cpe.vendor().value().unwrap();
            let m = t
                .manufacturer(vendor)
                .unwrap_or_else(|| panic!("CPE vendor {vendor} is not an alias"));
            assert_eq!(m.key, p.manufacturer, "{line}");
        }
    }
    // Every one of the 206 names (182 vendor:product pairs) is in the table.
    assert_eq!(mapped, 206);
}

#[test]
fn kev_has_none_of_the_pump_cves() {
    let shared_kev = Path::new(SHARED).join("kev/known_exploited_vulnerabilities.json");
    let path = if shared_kev.exists() {
        shared_kev
    } else {
        Path::new(DATA).join("kev/known_exploited_vulnerabilities.trimmed.json")
    };
    let k = kev::parse(&std::fs::read(&path).unwrap()).unwrap();
    let csv = std::fs::read_to_string(Path::new(DATA).join("cve/pump_cves.csv")).unwrap();
    let cves: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(cves.len(), 107);
    for c in cves {
        assert!(k.get(c).is_none(), "{c} is in KEV");
    }
    assert!(k.get("CVE-2023-43208").is_some());
}

/// Expected format of every file under the data folders, by file name.
fn expected_format(name: &str) -> Format {
    match name {
        n if n.starts_with("icsa") || n.starts_with("icsma") => Format::Csaf,
        "nvd_pump_cpe_configurations.json" => Format::NvdTranscription,
        "CVE-2020-25165.json" => Format::Unknown, // decided by folder below
        "known_exploited_vulnerabilities.json" | "known_exploited_vulnerabilities.trimmed.json" => {
            Format::KevCatalog
        }
        "synthetic-format-sample.csv" => Format::EpssCsv,
        n if n.ends_with(".cdx.json") => Format::CycloneDxJson,
        n if n.ends_with(".cdx.xml") => Format::CycloneDxXml,
        n if n.ends_with(".spdx.json") => Format::SpdxJson,
        "usbutils.spdx" => Format::SpdxTagValue,
        // Markdown, licences, CSV lists, the KEV JSON schema, the Buildroot
        // manifest: not inputs.
        _ => Format::Unknown,
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn check_detection(root: &Path, folders: &[&str]) -> usize {
    let mut files = Vec::new();
    for f in folders {
        walk(&root.join(f), &mut files);
    }
    for p in &files {
        let name = p.file_name().unwrap().to_string_lossy();
        let want = match (
            p.parent().unwrap().file_name().unwrap().to_str().unwrap(),
            name.as_ref(),
        ) {
            ("nvd", "CVE-2020-25165.json") => Format::NvdApi2,
            ("cve5", "CVE-2020-25165.json") => Format::CveJson5,
            _ => expected_format(&name),
        };
        assert_eq!(detect(&std::fs::read(p).unwrap()), want, "{}", p.display());
    }
    files.len()
}

#[test]
fn format_detection_over_every_data_file() {
    let n = check_detection(
        Path::new(DATA),
        &[
            "csaf",
            "csaf-other",
            "cve",
            "cve5",
            "nvd",
            "kev",
            "epss",
            "sbom",
        ],
    );
    assert_eq!(n, 46);
}

#[test]
fn the_shared_data_folder_when_present() {
    let root = Path::new(SHARED);
    if !root.exists() {
        eprintln!("{SHARED} not present; the copies in tests/data were checked");
        return;
    }
    let n = check_detection(root, &["csaf", "csaf-other", "cve", "kev", "sbom"]);
    assert!(n >= 45, "{n}");
    // Every CSAF file there parses, the supply-chain ones included.
    let mut parsed = 0;
    for dir in ["csaf", "csaf/component", "csaf-other"] {
        for f in json_files(&root.join(dir)) {
            let a = csaf::parse(&std::fs::read(&f).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert!(a.warnings.is_empty(), "{}: {:?}", f.display(), a.warnings);
            parsed += 1;
        }
    }
    assert_eq!(parsed, 31);
    let k =
        kev::parse(&std::fs::read(root.join("kev/known_exploited_vulnerabilities.json")).unwrap())
            .unwrap();
    assert_eq!(k.entries.len(), 1404);
    assert!(k.warnings.is_empty(), "{:?}", k.warnings);
}

mod mutated {
    use super::*;
    use proptest::prelude::*;

    fn corpus() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = json_files(&Path::new(DATA).join("csaf"))
            .into_iter()
            .chain(json_files(&Path::new(DATA).join("csaf-other")))
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        v.push(std::fs::read(Path::new(DATA).join("nvd/CVE-2020-25165.json")).unwrap());
        v.push(std::fs::read(Path::new(DATA).join("cve5/CVE-2020-25165.json")).unwrap());
        v.push(std::fs::read(Path::new(DATA).join("sbom/vex-cisa-use-case-2.cdx.json")).unwrap());
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Real documents truncated and with bytes overwritten: every parser
        /// returns a value or an error, and the fuzz body's checks hold.
        #[test]
        fn real_documents_with_damage(
            pick in 0usize..32,
            cut in 0.0f64..1.0,
            flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..6),
        ) {
            let docs = corpus();
            let mut d = docs[pick % docs.len()].clone();
            for (at, byte) in flips {
                let i = ((d.len() as f64) * at) as usize;
                if i < d.len() {
                    d[i] = byte;
                }
            }
            d.truncate(((d.len() as f64) * cut.max(0.05)) as usize + 1);
            pumpward_vuln::fuzzing::csaf_json(&d);
        }

        /// Values of the wrong type where the parser expects strings: an
        /// error naming the path, never a panic.
        #[test]
        fn real_documents_with_retyped_values(pick in 0usize..29, which in 0usize..400, replacement in prop_oneof![Just("null"), Just("7"), Just("[]"), Just("{}"), Just("true"), Just("\"\"")]) {
            let docs = corpus();
            let text = String::from_utf8(docs[pick % 29].clone()).unwrap();
            // Replace the `which`-th string value (after a colon) by another type.
            let starts: Vec<usize> = text.match_indices(": \"").map(|(i, _)| i + 2).collect();
            if starts.is_empty() { return Ok(()); }
            let s = starts[which % starts.len()];
            // The closing quote: the first one not escaped by a backslash.
            let bytes = text.as_bytes();
            let mut e = s + 1;
            while e < bytes.len() && bytes[e] != b'"' {
                e += if bytes[e] == b'\\' { 2 } else { 1 };
            }
            let end = (e + 1).min(text.len());
            let doc = format!("{}{}{}", &text[..s], replacement, &text[end..]);
            match csaf::parse(doc.as_bytes()) {
                Ok(_) => {}
                Err(e) => prop_assert!(e.to_string().starts_with("$"), "{e}"),
            }
        }
    }
}
