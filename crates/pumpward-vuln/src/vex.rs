//! A CSAF 2.0 VEX document (profile `csaf_vex`) for the hospital's fleet:
//! which of its device models and firmware versions each CVE affects, which
//! it does not and why, which run a fixed version and which are still under
//! review. Built from plain statements (the store derives them from the
//! findings); no I/O.
//!
//! The product tree has one branch per manufacturer, model and installed
//! version as the inventory records them (a version with software
//! components recorded names them, since a component can decide a match),
//! so one product id stands for every asset of that model and version.
//! Assets of one product that differ (one affected, one fixed) make the
//! product count in the worst status: affected, then under investigation,
//! then fixed, then not affected. A product is never listed in two
//! contradicting statuses (CSAF mandatory test 6.1.6).

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A model and installed version of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FleetProduct {
    /// As the inventory records it.
    pub manufacturer: String,
    /// As the inventory records it.
    pub model: String,
    /// Firmware version, then any software components (`name=version`).
    pub version: String,
}

/// What the fleet knows about one product and one CVE.
#[derive(Debug, Clone, PartialEq)]
pub enum FleetStatus {
    /// Within an advisory's affected versions; the remediation in hand.
    Affected(Vec<Remediation>),
    /// Undecidable from the advisories: the reason.
    UnderInvestigation(String),
    /// At or past the fix.
    Fixed,
    /// Listed not affected, or outside every affected range: the reason.
    NotAffected(String),
}

impl FleetStatus {
    /// Worse first: the status a product takes when its assets disagree.
    fn rank(&self) -> u8 {
        match self {
            FleetStatus::Affected(_) => 0,
            FleetStatus::UnderInvestigation(_) => 1,
            FleetStatus::Fixed => 2,
            FleetStatus::NotAffected(_) => 3,
        }
    }
}

/// A CSAF remediation (`category` is one of CSAF's: `mitigation`,
/// `no_fix_planned`, `none_available`, `vendor_fix`, `workaround`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Remediation {
    /// CSAF remediation category.
    pub category: String,
    /// What to do.
    pub details: String,
    /// Where the vendor says more.
    pub url: Option<String>,
}

/// One (asset's product, CVE) statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The CVE id.
    pub cve: String,
    /// The vulnerability's title, where an advisory gives one.
    pub title: Option<String>,
    /// The asset's model and version.
    pub product: FleetProduct,
    /// What is known.
    pub status: FleetStatus,
}

/// Who publishes the document, and its tracking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexHeader {
    /// The hospital.
    pub publisher: String,
    /// The hospital's URL (CSAF's publisher namespace).
    pub namespace: String,
    /// Tracking id of the document.
    pub tracking_id: String,
    /// Release date, RFC 3339.
    pub date: String,
}

const CSAF_CATEGORIES: [&str; 5] = [
    "mitigation",
    "no_fix_planned",
    "none_available",
    "vendor_fix",
    "workaround",
];

/// Builds the document. Statements are merged per (product, CVE) as the
/// module says; the output is deterministic (sorted).
pub fn fleet_vex(header: &VexHeader, statements: &[Statement]) -> Value {
    let products: BTreeSet<&FleetProduct> = statements.iter().map(|s| &s.product).collect();
    let ids: BTreeMap<&FleetProduct, String> = products
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, format!("PUMPWARD-{:05}", i + 1)))
        .collect();

    // Manufacturer → model → version leaves.
    let mut tree: BTreeMap<&str, BTreeMap<&str, Vec<&FleetProduct>>> = BTreeMap::new();
    for p in products.iter().copied() {
        tree.entry(p.manufacturer.as_str())
            .or_default()
            .entry(p.model.as_str())
            .or_default()
            .push(p);
    }
    let branches: Vec<Value> = tree
        .iter()
        .map(|(vendor, models)| {
            json!({
                "category": "vendor",
                "name": vendor,
                "branches": models.iter().map(|(model, versions)| json!({
                    "category": "product_name",
                    "name": model,
                    "branches": versions.iter().map(|p| json!({
                        "category": "product_version",
                        "name": p.version,
                        "product": {
                            "name": format!("{} {} {}", p.manufacturer, p.model, p.version),
                            "product_id": ids[p],
                        },
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();

    // CVE → product → the worst status its assets have.
    let mut per_cve: BTreeMap<&str, (Option<&str>, BTreeMap<&FleetProduct, &FleetStatus>)> =
        BTreeMap::new();
    for s in statements {
        let e = per_cve.entry(s.cve.as_str()).or_default();
        if e.0.is_none() {
            e.0 = s.title.as_deref();
        }
        let cur = e.1.entry(&s.product).or_insert(&s.status);
        if s.status.rank() < cur.rank() {
            *cur = &s.status;
        }
    }
    let vulnerabilities: Vec<Value> = per_cve
        .iter()
        .map(|(cve, (title, by_product))| {
            let mut affected = Vec::new();
            let mut investigating = Vec::new();
            let mut fixed = Vec::new();
            let mut not_affected = Vec::new();
            // Remediation → products, and not-affected reason → products.
            let mut remediations: BTreeMap<Remediation, Vec<&str>> = BTreeMap::new();
            let mut impacts: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            let mut reviews: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (p, status) in by_product {
                let id = ids[p].as_str();
                match status {
                    FleetStatus::Affected(rs) => {
                        affected.push(id);
                        let usable: Vec<&Remediation> = rs
                            .iter()
                            .filter(|r| CSAF_CATEGORIES.contains(&r.category.as_str()))
                            .collect();
                        if usable.is_empty() {
                            // CSAF VEX wants an action statement for every
                            // affected product (mandatory test 6.1.27.10).
                            remediations
                                .entry(Remediation {
                                    category: "none_available".into(),
                                    details: "No remediation is stated by the advisories; the hospital tracks this finding in its remediation workflow.".into(),
                                    url: None,
                                })
                                .or_default()
                                .push(id);
                        }
                        for r in usable {
                            remediations.entry(r.clone()).or_default().push(id);
                        }
                    }
                    FleetStatus::UnderInvestigation(why) => {
                        investigating.push(id);
                        reviews.entry(why.as_str()).or_default().push(id);
                    }
                    FleetStatus::Fixed => fixed.push(id),
                    FleetStatus::NotAffected(why) => {
                        not_affected.push(id);
                        impacts.entry(why.as_str()).or_default().push(id);
                    }
                }
            }
            let mut status = serde_json::Map::new();
            for (name, list) in [
                ("known_affected", &affected),
                ("under_investigation", &investigating),
                ("fixed", &fixed),
                ("known_not_affected", &not_affected),
            ] {
                if !list.is_empty() {
                    status.insert(name.into(), json!(list));
                }
            }
            let mut v = json!({
                "cve": cve,
                "notes": [{
                    "category": "description",
                    "title": "Vulnerability",
                    "text": title.unwrap_or(cve),
                }],
                "product_status": status,
            });
            if !remediations.is_empty() {
                v["remediations"] = remediations
                    .iter()
                    .map(|(r, ids)| {
                        let mut x = json!({"category": r.category, "details": r.details, "product_ids": ids});
                        if let Some(u) = &r.url {
                            x["url"] = json!(u);
                        }
                        x
                    })
                    .collect();
            }
            if !not_affected.is_empty() {
                // The matcher knows why from the versions, not from the
                // vendor's code analysis: the version installed does not
                // carry the vulnerable code as the advisory states it.
                v["flags"] = json!([{"label": "vulnerable_code_not_present", "product_ids": not_affected}]);
            }
            let mut threats: Vec<Value> = impacts
                .iter()
                .map(|(why, ids)| json!({"category": "impact", "details": why, "product_ids": ids}))
                .collect();
            threats.extend(reviews.iter().map(|(why, ids)| {
                json!({"category": "impact", "details": format!("Under review: {why}"), "product_ids": ids})
            }));
            if !threats.is_empty() {
                v["threats"] = json!(threats);
            }
            v
        })
        .collect();

    json!({
        "document": {
            "category": "csaf_vex",
            "csaf_version": "2.0",
            "publisher": {
                "category": "user",
                "name": header.publisher,
                "namespace": header.namespace,
            },
            "title": format!("{}: vulnerability status of the infusion pump fleet", header.publisher),
            "notes": [{
                "category": "summary",
                "title": "Scope",
                "text": "Every device model and installed version of the fleet for which a vulnerability finding exists, with its status as matched against the advisories on file.",
            }],
            "tracking": {
                "current_release_date": header.date,
                "generator": {"engine": {"name": "Pumpward", "version": env!("CARGO_PKG_VERSION")}},
                "id": header.tracking_id,
                "initial_release_date": header.date,
                "revision_history": [{"date": header.date, "number": "1", "summary": "Generated from the current findings."}],
                "status": "final",
                "version": "1",
            },
        },
        "product_tree": {"branches": branches},
        "vulnerabilities": vulnerabilities,
    })
}

/// The CSAF 2.0 mandatory tests that are cheap to run on a VEX document:
/// 6.1.1 (every referenced product id is defined), 6.1.2 (no product id
/// defined twice), 6.1.6 (no product in contradicting statuses), 6.1.27.7
/// (each vulnerability has a VEX status), 6.1.27.8 (each has a CVE or id),
/// 6.1.27.9 (each not-affected product has an impact statement) and
/// 6.1.27.10 (each affected product has an action statement). Returns the
/// problems, each with its JSON path.
pub fn mandatory_problems(doc: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut defined: BTreeMap<String, usize> = BTreeMap::new();
    fn walk(branches: &Value, path: String, defined: &mut BTreeMap<String, usize>) {
        for (i, b) in branches.as_array().into_iter().flatten().enumerate() {
            if let Some(id) = b["product"]["product_id"].as_str() {
                *defined.entry(id.to_owned()).or_default() += 1;
            }
            walk(&b["branches"], format!("{path}/{i}/branches"), defined);
        }
    }
    walk(
        &doc["product_tree"]["branches"],
        "/product_tree/branches".into(),
        &mut defined,
    );
    for (id, n) in &defined {
        if *n > 1 {
            problems.push(format!(
                "6.1.2: product id {id} is defined {n} times in /product_tree"
            ));
        }
    }
    let ids_at = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect()
    };
    for (i, v) in doc["vulnerabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("/vulnerabilities/{i}");
        if v["cve"].as_str().is_none() && v["ids"].as_array().is_none_or(|a| a.is_empty()) {
            problems.push(format!("6.1.27.8: {at} has neither cve nor ids"));
        }
        let ps = &v["product_status"];
        let group = |name: &str| ids_at(&ps[name]);
        let (affected, investigating, fixed, not_affected) = (
            group("known_affected"),
            group("under_investigation"),
            group("fixed"),
            group("known_not_affected"),
        );
        if affected.is_empty()
            && investigating.is_empty()
            && fixed.is_empty()
            && not_affected.is_empty()
        {
            problems.push(format!("6.1.27.7: {at}/product_status has no VEX status"));
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, list) in [
            ("known_affected", &affected),
            ("under_investigation", &investigating),
            ("fixed", &fixed),
            ("known_not_affected", &not_affected),
        ] {
            for id in list {
                if let Some(other) = seen.insert(id, name) {
                    if other != name {
                        problems.push(format!(
                            "6.1.6: {at}: product {id} is both {other} and {name}"
                        ));
                    }
                }
            }
        }
        let mut referenced: Vec<(String, String)> = Vec::new();
        for (name, list) in [
            ("known_affected", &affected),
            ("under_investigation", &investigating),
            ("fixed", &fixed),
            ("known_not_affected", &not_affected),
        ] {
            referenced.extend(
                list.iter()
                    .map(|id| (format!("{at}/product_status/{name}"), id.clone())),
            );
        }
        let mut covered = |key: &str, pred: &dyn Fn(&Value) -> bool| -> BTreeSet<String> {
            let mut out = BTreeSet::new();
            for (j, x) in v[key].as_array().into_iter().flatten().enumerate() {
                let ids = ids_at(&x["product_ids"]);
                referenced.extend(
                    ids.iter()
                        .map(|id| (format!("{at}/{key}/{j}/product_ids"), id.clone())),
                );
                if pred(x) {
                    out.extend(ids);
                }
            }
            out
        };
        let actions = covered("remediations", &|_| true);
        let flagged = covered("flags", &|_| true);
        let impacts = covered("threats", &|t| t["category"] == "impact");
        for id in &not_affected {
            if !flagged.contains(id) && !impacts.contains(id) {
                problems.push(format!(
                    "6.1.27.9: {at}: known_not_affected product {id} has no flag and no impact threat"
                ));
            }
        }
        for id in &affected {
            if !actions.contains(id) {
                problems.push(format!(
                    "6.1.27.10: {at}: known_affected product {id} has no remediation"
                ));
            }
        }
        for (path, id) in referenced {
            if !defined.contains_key(&id) {
                problems.push(format!("6.1.1: {path} references undefined product {id}"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(model: &str, version: &str) -> FleetProduct {
        FleetProduct {
            manufacturer: "Hospira".into(),
            model: model.into(),
            version: version.into(),
        }
    }

    fn header() -> VexHeader {
        VexHeader {
            publisher: "General Hospital".into(),
            namespace: "https://hospital.example".into(),
            tracking_id: "PUMPWARD-VEX-1".into(),
            date: "2026-11-26T19:00:00Z".into(),
        }
    }

    #[test]
    fn statuses_merge_to_the_worst_per_product_and_pass_the_mandatory_tests() {
        let st = |version: &str, status: FleetStatus| Statement {
            cve: "CVE-2015-3459".into(),
            title: Some("Improper authorization".into()),
            product: product("Plum A+", version),
            status,
        };
        let doc = fleet_vex(
            &header(),
            &[
                st("13.3", FleetStatus::Affected(vec![])),
                st("13.3", FleetStatus::Fixed),
                st(
                    "13.5",
                    FleetStatus::NotAffected("outside every affected range".into()),
                ),
                st(
                    "13.40",
                    FleetStatus::UnderInvestigation("ambiguous version".into()),
                ),
                st("15.0", FleetStatus::Fixed),
            ],
        );
        assert_eq!(mandatory_problems(&doc), Vec::<String>::new());
        let v = &doc["vulnerabilities"][0];
        // Products are numbered in sorted order: 13.3, 13.40, 13.5, 15.0.
        assert_eq!(
            v["product_status"]["known_affected"],
            json!(["PUMPWARD-00001"])
        );
        assert_eq!(
            v["product_status"]["under_investigation"],
            json!(["PUMPWARD-00002"])
        );
        assert_eq!(
            v["product_status"]["known_not_affected"],
            json!(["PUMPWARD-00003"])
        );
        assert_eq!(v["product_status"]["fixed"], json!(["PUMPWARD-00004"]));
        assert_eq!(v["remediations"][0]["category"], "none_available");
        assert_eq!(v["flags"][0]["product_ids"], json!(["PUMPWARD-00003"]));
        assert_eq!(doc["document"]["category"], "csaf_vex");
    }

    #[test]
    fn the_mandatory_tests_catch_what_they_check() {
        let mut doc = fleet_vex(
            &header(),
            &[Statement {
                cve: "CVE-1".into(),
                title: None,
                product: product("Symbiq", "3.13"),
                status: FleetStatus::NotAffected("listed not affected".into()),
            }],
        );
        doc["vulnerabilities"][0]["flags"] = json!([]);
        doc["vulnerabilities"][0]["threats"] = json!([]);
        doc["vulnerabilities"][0]["product_status"]["known_affected"] =
            json!(["PUMPWARD-00001", "X-9"]);
        let p = mandatory_problems(&doc);
        for want in ["6.1.27.9", "6.1.27.10", "6.1.6", "6.1.1"] {
            assert!(p.iter().any(|x| x.starts_with(want)), "{want} in {p:?}");
        }
        doc["vulnerabilities"][0]["cve"] = Value::Null;
        doc["vulnerabilities"][0]["product_status"] = json!({});
        let p = mandatory_problems(&doc);
        assert!(p.iter().any(|x| x.starts_with("6.1.27.8")), "{p:?}");
        assert!(p.iter().any(|x| x.starts_with("6.1.27.7")), "{p:?}");
    }
}
