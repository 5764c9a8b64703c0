//! CSAF 2.0 advisories (OASIS Common Security Advisory Framework).
//!
//! [`parse`] reads a document into an [`Advisory`]: the document metadata
//! (tracking id, version, status, dates, revision history, publisher, TLP,
//! notes, references), the whole product tree (branches to any depth, full
//! product names with their identification helpers, relationships such as
//! `default_component_of`, product groups) and the vulnerabilities (CVE, CWE,
//! CVSS v2/v3/v4 scores, every product_status list, remediations, threats).
//! Every product id is resolved to a [`ProductPath`]: vendor, product family,
//! product name and version (or version range) text, as the branches say.
//!
//! What is an error and what a warning: a value of the wrong type, or a
//! missing member the schema requires and the rest of the system needs
//! (`document.category`, `csaf_version`, `title`, `tracking.id`,
//! `tracking.version`, `tracking.status`), is an error naming the JSON path
//! and what was expected. A reference to an undefined product id, an
//! unknown product_status list, a score without any CVSS object, a duplicate
//! product id, a `csaf_version` other than 2.0: warnings on the advisory.
//! Unknown members are ignored (the schema allows extensions in places and
//! CISA's converter adds none, but other publishers do).
//!
//! Real-file messiness this accepts (see `tests/data/README.md`): version
//! ranges that are not `vers` (`"<=5.8"`, `"<= U61 |<= L81"`), lists written
//! as `"9.13 | 9.19 | 9.33 | 12.1"` in a `product_version`, a product name
//! holding a whole sentence (ICSA-15-161-01), the same vendor spelled in
//! several ways across files.

use crate::constraint::VersionConstraint;
use crate::json::{excerpt, parse_bytes, Node, ParseError, PathBuf, Walk, Warning};
use crate::version::Version;
use std::collections::{BTreeMap, BTreeSet};

/// A parsed CSAF document.
#[derive(Debug, Clone, PartialEq)]
pub struct Advisory {
    /// The `document` object.
    pub document: DocumentMeta,
    /// The `product_tree`, with every product id resolved.
    pub product_tree: ProductTree,
    /// The `vulnerabilities`.
    pub vulnerabilities: Vec<Vulnerability>,
    /// What was accepted but odd.
    pub warnings: Vec<Warning>,
}

/// Document-level metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentMeta {
    /// `category` (`csaf_security_advisory`, `csaf_vex`, `csaf_base`, …).
    pub category: String,
    /// `csaf_version`.
    pub csaf_version: String,
    /// `title`.
    pub title: String,
    /// `lang`.
    pub lang: Option<String>,
    /// `publisher`.
    pub publisher: Publisher,
    /// `distribution.tlp.label`.
    pub tlp: Option<String>,
    /// `aggregate_severity.text`.
    pub aggregate_severity: Option<String>,
    /// `tracking`.
    pub tracking: Tracking,
    /// `notes`.
    pub notes: Vec<Note>,
    /// `references`.
    pub references: Vec<Reference>,
}

/// `document.publisher`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publisher {
    /// `name`.
    pub name: String,
    /// `category` (`coordinator`, `vendor`, …).
    pub category: String,
    /// `namespace`.
    pub namespace: String,
}

/// `document.tracking`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// `id`, e.g. `ICSMA-17-017-02`.
    pub id: String,
    /// `version` (integer or semantic versioning).
    pub version: String,
    /// `status` (`draft`, `interim`, `final`).
    pub status: String,
    /// `initial_release_date`.
    pub initial_release_date: Option<String>,
    /// `current_release_date`.
    pub current_release_date: Option<String>,
    /// `revision_history`.
    pub revision_history: Vec<Revision>,
    /// `generator.engine.name` and version.
    pub generator: Option<String>,
}

/// One `revision_history` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// `number`.
    pub number: String,
    /// `date`.
    pub date: String,
    /// `summary`.
    pub summary: String,
    /// `legacy_version`.
    pub legacy_version: Option<String>,
}

/// A note (document or vulnerability).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `category`.
    pub category: String,
    /// `title`.
    pub title: Option<String>,
    /// `text`.
    pub text: String,
}

/// A reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `category` (`self`, `external`).
    pub category: Option<String>,
    /// `summary`.
    pub summary: String,
    /// `url`.
    pub url: String,
}

/// The product tree.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProductTree {
    /// `branches`, as written.
    pub branches: Vec<Branch>,
    /// `full_product_names` at the top level.
    pub full_product_names: Vec<FullProductName>,
    /// `relationships`.
    pub relationships: Vec<Relationship>,
    /// `product_groups`.
    pub product_groups: Vec<ProductGroup>,
    /// Every product id defined anywhere, resolved.
    pub products: BTreeMap<String, ProductPath>,
}

/// One branch.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// `category`: `vendor`, `product_family`, `product_name`,
    /// `product_version`, `product_version_range`, `architecture`,
    /// `host_name`, `language`, `legacy`, `patch_level`, `service_pack`,
    /// `specification`.
    pub category: String,
    /// `name`.
    pub name: String,
    /// `product`, at a leaf.
    pub product: Option<FullProductName>,
    /// Child `branches`.
    pub branches: Vec<Branch>,
}

/// A full product name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullProductName {
    /// `product_id`.
    pub product_id: String,
    /// `name`.
    pub name: String,
    /// `product_identification_helper`.
    pub helper: Helper,
}

/// `product_identification_helper`, the parts used for matching.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Helper {
    /// `cpe`.
    pub cpe: Option<String>,
    /// `purl`.
    pub purl: Option<String>,
    /// `model_numbers`.
    pub model_numbers: Vec<String>,
    /// `serial_numbers`.
    pub serial_numbers: Vec<String>,
    /// `skus`.
    pub skus: Vec<String>,
    /// `sbom_urls`.
    pub sbom_urls: Vec<String>,
}

/// A relationship between two products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    /// `category`: `default_component_of`, `external_component_of`,
    /// `installed_on`, `installed_with`, `optional_component_of`.
    pub category: String,
    /// `product_reference`: the component.
    pub product_reference: String,
    /// `relates_to_product_reference`: the product it belongs to.
    pub relates_to_product_reference: String,
    /// `full_product_name`: the combination.
    pub full_product_name: FullProductName,
}

/// A product group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductGroup {
    /// `group_id`.
    pub group_id: String,
    /// `product_ids`.
    pub product_ids: Vec<String>,
    /// `summary`.
    pub summary: Option<String>,
}

/// Whether a version text came from a `product_version` or a
/// `product_version_range` branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionKind {
    /// `product_version`.
    Version,
    /// `product_version_range`.
    Range,
}

/// What a product id stands for, read from the branches above it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductPath {
    /// The product id.
    pub product_id: String,
    /// The full product name.
    pub full_name: String,
    /// The `vendor` branch name.
    pub vendor: Option<String>,
    /// `product_family` branch names, outermost first.
    pub families: Vec<String>,
    /// The `product_name` branch name.
    pub product: Option<String>,
    /// The version or range text, and which kind of branch held it.
    pub version: Option<(VersionKind, String)>,
    /// Other branches on the way (category, name): architecture, patch level…
    pub other: Vec<(String, String)>,
    /// For a product defined by a relationship: (category, component id,
    /// parent id).
    pub relationship: Option<(String, String, String)>,
    /// The identification helper.
    pub helper: Helper,
}

impl ProductPath {
    /// The version rule of this product: the version or range branch's text,
    /// parsed (possibly [`VersionConstraint::Unparsed`]). Without a version
    /// branch the version can only be in the full product name ("Pump X
    /// 1.2"), which is not read as a rule: the result is
    /// [`VersionConstraint::Unparsed`] with that name, so a match goes to
    /// review instead of being assumed for every version.
    pub fn constraint(&self) -> VersionConstraint {
        match &self.version {
            None => VersionConstraint::Unparsed(self.full_name.clone()),
            Some((_, text)) => VersionConstraint::parse(text),
        }
    }
}

/// A vulnerability.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Vulnerability {
    /// `cve`.
    pub cve: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `cwe`: (id, name).
    pub cwe: Option<(String, String)>,
    /// `notes`.
    pub notes: Vec<Note>,
    /// `scores`.
    pub scores: Vec<Score>,
    /// `product_status`.
    pub product_status: ProductStatus,
    /// `remediations`.
    pub remediations: Vec<Remediation>,
    /// `threats`.
    pub threats: Vec<Threat>,
    /// `references`.
    pub references: Vec<Reference>,
    /// `discovery_date`.
    pub discovery_date: Option<String>,
    /// `release_date`.
    pub release_date: Option<String>,
}

/// The product_status lists. Absent lists are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductStatus {
    /// `first_affected`.
    pub first_affected: Vec<String>,
    /// `first_fixed`.
    pub first_fixed: Vec<String>,
    /// `fixed`.
    pub fixed: Vec<String>,
    /// `known_affected`.
    pub known_affected: Vec<String>,
    /// `known_not_affected`.
    pub known_not_affected: Vec<String>,
    /// `last_affected`.
    pub last_affected: Vec<String>,
    /// `recommended`.
    pub recommended: Vec<String>,
    /// `under_investigation`.
    pub under_investigation: Vec<String>,
}

impl ProductStatus {
    /// Every (list name, product id) pair.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("first_affected", &self.first_affected),
            ("first_fixed", &self.first_fixed),
            ("fixed", &self.fixed),
            ("known_affected", &self.known_affected),
            ("known_not_affected", &self.known_not_affected),
            ("last_affected", &self.last_affected),
            ("recommended", &self.recommended),
            ("under_investigation", &self.under_investigation),
        ]
        .into_iter()
        .flat_map(|(k, v)| v.iter().map(move |id| (k, id.as_str())))
    }

    /// The ids the advisory says are (or were) affected: known_affected,
    /// first_affected, last_affected.
    pub fn affected(&self) -> impl Iterator<Item = &str> {
        self.known_affected
            .iter()
            .chain(&self.first_affected)
            .chain(&self.last_affected)
            .map(String::as_str)
    }
}

/// One CVSS object.
#[derive(Debug, Clone, PartialEq)]
pub struct Cvss {
    /// `version` (`2.0`, `3.0`, `3.1`, `4.0`).
    pub version: String,
    /// `baseScore`, 0.0–10.0.
    pub base_score: f64,
    /// `vectorString`.
    pub vector: String,
    /// `baseSeverity` (v3/v4).
    pub base_severity: Option<String>,
}

/// One `scores` entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Score {
    /// `products`.
    pub products: Vec<String>,
    /// `cvss_v2`.
    pub cvss_v2: Option<Cvss>,
    /// `cvss_v3`.
    pub cvss_v3: Option<Cvss>,
    /// `cvss_v4` (CSAF 2.1; accepted in 2.0 documents too).
    pub cvss_v4: Option<Cvss>,
}

impl Score {
    /// The newest CVSS version present.
    pub fn newest(&self) -> Option<&Cvss> {
        self.cvss_v4
            .as_ref()
            .or(self.cvss_v3.as_ref())
            .or(self.cvss_v2.as_ref())
    }
}

/// A remediation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remediation {
    /// `category`: `mitigation`, `no_fix_planned`, `none_available`,
    /// `vendor_fix`, `workaround`.
    pub category: String,
    /// `details`.
    pub details: String,
    /// `product_ids`.
    pub product_ids: Vec<String>,
    /// `group_ids`.
    pub group_ids: Vec<String>,
    /// `url`.
    pub url: Option<String>,
    /// `date`.
    pub date: Option<String>,
}

/// A threat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threat {
    /// `category`: `exploit_status`, `impact`, `target_set`.
    pub category: String,
    /// `details`.
    pub details: String,
    /// `product_ids`.
    pub product_ids: Vec<String>,
    /// `group_ids`.
    pub group_ids: Vec<String>,
    /// `date`.
    pub date: Option<String>,
}

/// How two advisories relate as revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supersession {
    /// `self` is a later revision of the same advisory: it replaces `other`.
    Supersedes,
    /// `other` is the later revision.
    SupersededBy,
    /// Same advisory, same revision.
    Same,
    /// Different advisories.
    Unrelated,
}

/// Parses a CSAF 2.0 document from bytes.
pub fn parse(bytes: &[u8]) -> Result<Advisory, ParseError> {
    let value = parse_bytes(bytes)?;
    let root_path = PathBuf::root();
    let root = Node::new(&value, &root_path);
    root.object()?;
    let mut warnings = Vec::new();
    let document = root.with_req("document", |d| document(d, &mut warnings))?;
    let mut product_tree = root
        .with("product_tree", |t| product_tree(t, &mut warnings))?
        .unwrap_or_default();
    resolve_relationships(&mut product_tree, &mut warnings);
    let vulnerabilities = root.each("vulnerabilities", |_, v| vulnerability(v, &mut warnings))?;
    let mut adv = Advisory {
        document,
        product_tree,
        vulnerabilities,
        warnings,
    };
    check_references(&mut adv);
    Ok(adv)
}

fn document(d: Node<'_>, warnings: &mut Vec<Warning>) -> Result<DocumentMeta, ParseError> {
    let csaf_version = d.req_string("csaf_version")?;
    if csaf_version != "2.0" {
        d.with_req("csaf_version", |n| {
            warnings.push(n.warning(format!(
                "csaf_version {csaf_version:?}: this parser implements 2.0; read as 2.0"
            )));
            Ok(())
        })?;
    }
    let publisher = d
        .with("publisher", |p| {
            Ok(Publisher {
                name: p.opt_string("name")?.unwrap_or_default(),
                category: p.opt_string("category")?.unwrap_or_default(),
                namespace: p.opt_string("namespace")?.unwrap_or_default(),
            })
        })?
        .unwrap_or_default();
    let tlp = d
        .with("distribution", |dist| {
            dist.with("tlp", |t| t.opt_string("label"))
                .map(Option::flatten)
        })?
        .flatten();
    let aggregate_severity = d
        .with("aggregate_severity", |a| a.opt_string("text"))?
        .flatten();
    let tracking = d.with_req("tracking", |t| {
        let generator = t
            .with("generator", |g| {
                g.with("engine", |e| {
                    let name = e.opt_string("name")?.unwrap_or_default();
                    Ok(match e.opt_string("version")? {
                        Some(v) => format!("{name} {v}"),
                        None => name,
                    })
                })
            })?
            .flatten();
        let id = t.req_string("id")?;
        if id.trim().is_empty() {
            return t.with_req("id", |n| Err(n.invalid("the tracking id is empty")));
        }
        Ok(Tracking {
            id,
            version: t.req_string("version")?,
            status: t.req_string("status")?,
            initial_release_date: t.opt_string("initial_release_date")?,
            current_release_date: t.opt_string("current_release_date")?,
            revision_history: t.each("revision_history", |_, r| {
                Ok(Revision {
                    number: r.req_string("number")?,
                    date: r.opt_string("date")?.unwrap_or_default(),
                    summary: r.opt_string("summary")?.unwrap_or_default(),
                    legacy_version: r.opt_string("legacy_version")?,
                })
            })?,
            generator,
        })
    })?;
    Ok(DocumentMeta {
        category: d.req_string("category")?,
        csaf_version,
        title: d.req_string("title")?,
        lang: d.opt_string("lang")?,
        publisher,
        tlp,
        aggregate_severity,
        tracking,
        notes: d.each("notes", |_, n| note(n))?,
        references: d.each("references", |_, r| reference(r))?,
    })
}

fn note(n: Node<'_>) -> Result<Note, ParseError> {
    Ok(Note {
        category: n.opt_string("category")?.unwrap_or_default(),
        title: n.opt_string("title")?,
        text: n.opt_string("text")?.unwrap_or_default(),
    })
}

fn reference(r: Node<'_>) -> Result<Reference, ParseError> {
    Ok(Reference {
        category: r.opt_string("category")?,
        summary: r.opt_string("summary")?.unwrap_or_default(),
        url: r.req_string("url")?,
    })
}

fn helper(n: Node<'_>) -> Result<Helper, ParseError> {
    Ok(Helper {
        cpe: n.opt_string("cpe")?,
        purl: n.opt_string("purl")?,
        model_numbers: n.strings("model_numbers")?,
        serial_numbers: n.strings("serial_numbers")?,
        skus: n.strings("skus")?,
        sbom_urls: n.strings("sbom_urls")?,
    })
}

fn full_product_name(n: Node<'_>) -> Result<FullProductName, ParseError> {
    Ok(FullProductName {
        product_id: n.req_string("product_id")?,
        name: n.opt_string("name")?.unwrap_or_default(),
        helper: n
            .with("product_identification_helper", helper)?
            .unwrap_or_default(),
    })
}

fn product_tree(t: Node<'_>, warnings: &mut Vec<Warning>) -> Result<ProductTree, ParseError> {
    let mut tree = ProductTree {
        branches: t.each("branches", |_, b| branch(b))?,
        full_product_names: t.each("full_product_names", |_, n| full_product_name(n))?,
        relationships: t.each("relationships", |_, r| {
            Ok(Relationship {
                category: r.req_string("category")?,
                product_reference: r.req_string("product_reference")?,
                relates_to_product_reference: r.req_string("relates_to_product_reference")?,
                full_product_name: r.with_req("full_product_name", full_product_name)?,
            })
        })?,
        product_groups: t.each("product_groups", |_, g| {
            Ok(ProductGroup {
                group_id: g.req_string("group_id")?,
                product_ids: g.strings("product_ids")?,
                summary: g.opt_string("summary")?,
            })
        })?,
        products: BTreeMap::new(),
    };
    // Resolve the branches' leaves, then the top-level names.
    let mut found = Vec::new();
    for (i, b) in tree.branches.iter().enumerate() {
        collect(
            b,
            &ProductPath::default(),
            &format!("$.product_tree.branches[{i}]"),
            &mut found,
        );
    }
    for (i, f) in tree.full_product_names.iter().enumerate() {
        found.push((
            format!("$.product_tree.full_product_names[{i}]"),
            ProductPath {
                product_id: f.product_id.clone(),
                full_name: f.name.clone(),
                helper: f.helper.clone(),
                ..ProductPath::default()
            },
        ));
    }
    for (path, p) in found {
        insert_product(&mut tree.products, path, p, warnings);
    }
    Ok(tree)
}

fn insert_product(
    products: &mut BTreeMap<String, ProductPath>,
    path: String,
    p: ProductPath,
    warnings: &mut Vec<Warning>,
) {
    if products.contains_key(&p.product_id) {
        warnings.push(Warning {
            path,
            message: format!(
                "product id {:?} is defined more than once; the first definition is kept",
                excerpt(&p.product_id)
            ),
        });
    } else {
        products.insert(p.product_id.clone(), p);
    }
}

fn branch(b: Node<'_>) -> Result<Branch, ParseError> {
    Ok(Branch {
        category: b.req_string("category")?,
        name: b.req_string("name")?,
        product: b.with("product", full_product_name)?,
        branches: b.each("branches", |_, c| branch(c))?,
    })
}

fn collect(b: &Branch, above: &ProductPath, path: &str, out: &mut Vec<(String, ProductPath)>) {
    let mut here = above.clone();
    match b.category.as_str() {
        "vendor" => here.vendor = Some(b.name.clone()),
        "product_family" => here.families.push(b.name.clone()),
        "product_name" => here.product = Some(b.name.clone()),
        "product_version" => here.version = Some((VersionKind::Version, b.name.clone())),
        "product_version_range" => here.version = Some((VersionKind::Range, b.name.clone())),
        other => here.other.push((other.to_owned(), b.name.clone())),
    }
    if let Some(p) = &b.product {
        let mut leaf = here.clone();
        leaf.product_id = p.product_id.clone();
        leaf.full_name = p.name.clone();
        leaf.helper = p.helper.clone();
        out.push((format!("{path}.product"), leaf));
    }
    for (i, c) in b.branches.iter().enumerate() {
        collect(c, &here, &format!("{path}.branches[{i}]"), out);
    }
}

fn resolve_relationships(tree: &mut ProductTree, warnings: &mut Vec<Warning>) {
    for (i, r) in tree.relationships.iter().enumerate() {
        let path = format!("$.product_tree.relationships[{i}]");
        for id in [&r.product_reference, &r.relates_to_product_reference] {
            if !tree.products.contains_key(id) {
                warnings.push(Warning {
                    path: path.clone(),
                    message: format!(
                        "relationship refers to undefined product id {:?}",
                        excerpt(id)
                    ),
                });
            }
        }
        // The combination is the component, as part of its parent: the
        // component's vendor/product/version with the relationship recorded.
        let base = tree
            .products
            .get(&r.product_reference)
            .cloned()
            .unwrap_or_default();
        let p = ProductPath {
            product_id: r.full_product_name.product_id.clone(),
            full_name: r.full_product_name.name.clone(),
            helper: r.full_product_name.helper.clone(),
            relationship: Some((
                r.category.clone(),
                r.product_reference.clone(),
                r.relates_to_product_reference.clone(),
            )),
            ..base
        };
        insert_product(
            &mut tree.products,
            format!("{path}.full_product_name"),
            p,
            warnings,
        );
    }
}

const STATUS_KEYS: [&str; 8] = [
    "first_affected",
    "first_fixed",
    "fixed",
    "known_affected",
    "known_not_affected",
    "last_affected",
    "recommended",
    "under_investigation",
];

fn cvss(n: Node<'_>, default_version: &str) -> Result<Cvss, ParseError> {
    let base_score = n.with_req("baseScore", |s| {
        let x = s.f64()?;
        if !(0.0..=10.0).contains(&x) {
            return Err(s.invalid(format!("a CVSS base score is 0.0–10.0, not {x}")));
        }
        Ok(x)
    })?;
    Ok(Cvss {
        version: n
            .opt_string("version")?
            .unwrap_or_else(|| default_version.into()),
        base_score,
        vector: n.opt_string("vectorString")?.unwrap_or_default(),
        base_severity: n.opt_string("baseSeverity")?,
    })
}

fn vulnerability(v: Node<'_>, warnings: &mut Vec<Warning>) -> Result<Vulnerability, ParseError> {
    let product_status = v
        .with("product_status", |ps| {
            let obj = ps.object()?;
            for k in obj.keys() {
                if !STATUS_KEYS.contains(&k.as_str()) {
                    warnings.push(ps.warning(format!(
                        "unknown product_status list {:?} ignored (known: {})",
                        excerpt(k),
                        STATUS_KEYS.join(", ")
                    )));
                }
            }
            Ok(ProductStatus {
                first_affected: ps.strings("first_affected")?,
                first_fixed: ps.strings("first_fixed")?,
                fixed: ps.strings("fixed")?,
                known_affected: ps.strings("known_affected")?,
                known_not_affected: ps.strings("known_not_affected")?,
                last_affected: ps.strings("last_affected")?,
                recommended: ps.strings("recommended")?,
                under_investigation: ps.strings("under_investigation")?,
            })
        })?
        .unwrap_or_default();
    let scores = v.each("scores", |_, s| {
        let sc = Score {
            products: s.strings("products")?,
            cvss_v2: s.with("cvss_v2", |c| cvss(c, "2.0"))?,
            cvss_v3: s.with("cvss_v3", |c| cvss(c, "3.1"))?,
            cvss_v4: s.with("cvss_v4", |c| cvss(c, "4.0"))?,
        };
        if sc.newest().is_none() {
            warnings.push(s.warning("score without cvss_v2, cvss_v3 or cvss_v4"));
        }
        Ok(sc)
    })?;
    let cve = v.opt_string("cve")?;
    if let Some(c) = &cve {
        if !is_cve_id(c) {
            v.with("cve", |n| {
                warnings
                    .push(n.warning(format!("{:?} is not of the form CVE-YYYY-NNNN", excerpt(c))));
                Ok(())
            })?;
        }
    }
    Ok(Vulnerability {
        cve,
        title: v.opt_string("title")?,
        cwe: v.with("cwe", |c| {
            Ok((
                c.opt_string("id")?.unwrap_or_default(),
                c.opt_string("name")?.unwrap_or_default(),
            ))
        })?,
        notes: v.each("notes", |_, n| note(n))?,
        scores,
        product_status,
        remediations: v.each("remediations", |_, r| {
            Ok(Remediation {
                category: r.req_string("category")?,
                details: r.opt_string("details")?.unwrap_or_default(),
                product_ids: r.strings("product_ids")?,
                group_ids: r.strings("group_ids")?,
                url: r.opt_string("url")?,
                date: r.opt_string("date")?,
            })
        })?,
        threats: v.each("threats", |_, t| {
            Ok(Threat {
                category: t.req_string("category")?,
                details: t.opt_string("details")?.unwrap_or_default(),
                product_ids: t.strings("product_ids")?,
                group_ids: t.strings("group_ids")?,
                date: t.opt_string("date")?,
            })
        })?,
        references: v.each("references", |_, r| reference(r))?,
        discovery_date: v.opt_string("discovery_date")?,
        release_date: v.opt_string("release_date")?,
    })
}

/// Whether `s` looks like a CVE id (`CVE-` year `-` at least four digits).
pub fn is_cve_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, num)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && num.len() >= 4
        && num.bytes().all(|b| b.is_ascii_digit())
}

/// Warns about every product or group id used but not defined.
fn check_references(adv: &mut Advisory) {
    let groups: BTreeSet<&str> = adv
        .product_tree
        .product_groups
        .iter()
        .map(|g| g.group_id.as_str())
        .collect();
    let mut w = Vec::new();
    let products = &adv.product_tree.products;
    let mut check = |path: String, id: &str, what: &str| {
        let known = if what == "group" {
            groups.contains(id)
        } else {
            products.contains_key(id)
        };
        if !known {
            w.push(Warning {
                path,
                message: format!(
                    "{what} id {:?} is not defined in the product tree",
                    excerpt(id)
                ),
            });
        }
    };
    for (gi, g) in adv.product_tree.product_groups.iter().enumerate() {
        for id in &g.product_ids {
            check(
                format!("$.product_tree.product_groups[{gi}]"),
                id,
                "product",
            );
        }
    }
    for (vi, v) in adv.vulnerabilities.iter().enumerate() {
        for (list, id) in v.product_status.entries() {
            check(
                format!("$.vulnerabilities[{vi}].product_status.{list}"),
                id,
                "product",
            );
        }
        for (si, s) in v.scores.iter().enumerate() {
            for id in &s.products {
                check(
                    format!("$.vulnerabilities[{vi}].scores[{si}]"),
                    id,
                    "product",
                );
            }
        }
        for (ri, r) in v.remediations.iter().enumerate() {
            for id in &r.product_ids {
                check(
                    format!("$.vulnerabilities[{vi}].remediations[{ri}]"),
                    id,
                    "product",
                );
            }
            for id in &r.group_ids {
                check(
                    format!("$.vulnerabilities[{vi}].remediations[{ri}]"),
                    id,
                    "group",
                );
            }
        }
        for (ti, t) in v.threats.iter().enumerate() {
            for id in &t.product_ids {
                check(
                    format!("$.vulnerabilities[{vi}].threats[{ti}]"),
                    id,
                    "product",
                );
            }
            for id in &t.group_ids {
                check(
                    format!("$.vulnerabilities[{vi}].threats[{ti}]"),
                    id,
                    "group",
                );
            }
        }
    }
    adv.warnings.extend(w);
}

impl Advisory {
    /// The product ids a remediation or threat applies to, with its groups
    /// expanded.
    pub fn expand_ids(&self, product_ids: &[String], group_ids: &[String]) -> Vec<String> {
        let mut out: Vec<String> = product_ids.to_vec();
        for g in group_ids {
            if let Some(group) = self
                .product_tree
                .product_groups
                .iter()
                .find(|x| &x.group_id == g)
            {
                out.extend(group.product_ids.iter().cloned());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Every CVE id named, in document order.
    pub fn cves(&self) -> Vec<&str> {
        self.vulnerabilities
            .iter()
            .filter_map(|v| v.cve.as_deref())
            .collect()
    }

    /// The advisory family and update rank: for CISA ids
    /// (`ICSA-15-125-01B`, `ICSMA-17-250-02A`) the id without the update
    /// letter and the letter; for other ids the whole id, upper-cased, and
    /// `None`.
    pub fn family(&self) -> (String, Option<char>) {
        family_of(&self.document.tracking.id)
    }

    /// How `self` relates to `other` as revisions of one advisory.
    ///
    /// Same tracking id (case-insensitive): the higher `tracking.version`
    /// is the later revision (integer or semantic versioning, compared
    /// numerically), then the later `current_release_date`.
    ///
    /// Different ids of one CISA family: CISA published updates of an
    /// advisory under the id with a letter appended (ICSA-15-125-01 →
    /// ICSA-15-125-01B "Update B"); the later letter supersedes. The dates
    /// cannot decide here: in the shipped CSAF conversions the original
    /// ICSA-15-125-01 has the *later* current_release_date (2025-06-06
    /// 21:41 vs 16:07 for 01B), because both were converted to CSAF in
    /// 2025 and the original was converted last.
    pub fn compare_revision(&self, other: &Advisory) -> Supersession {
        let (a, b) = (&self.document.tracking, &other.document.tracking);
        if a.id.eq_ignore_ascii_case(&b.id) {
            let order = match (Version::parse(&a.version), Version::parse(&b.version)) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => a.version.cmp(&b.version),
            }
            .then_with(|| a.current_release_date.cmp(&b.current_release_date));
            return match order {
                std::cmp::Ordering::Greater => Supersession::Supersedes,
                std::cmp::Ordering::Less => Supersession::SupersededBy,
                std::cmp::Ordering::Equal => Supersession::Same,
            };
        }
        let ((fa, la), (fb, lb)) = (self.family(), other.family());
        if fa != fb {
            return Supersession::Unrelated;
        }
        match la.cmp(&lb) {
            std::cmp::Ordering::Greater => Supersession::Supersedes,
            std::cmp::Ordering::Less => Supersession::SupersededBy,
            std::cmp::Ordering::Equal => Supersession::Same,
        }
    }
}

fn family_of(id: &str) -> (String, Option<char>) {
    let up = id.trim().to_ascii_uppercase();
    // ICS[M]A-YY-DDD-NN with an optional update letter.
    let parts: Vec<&str> = up.split('-').collect();
    if parts.len() == 4
        && (parts[0] == "ICSA" || parts[0] == "ICSMA")
        && parts[1].len() == 2
        && parts[2].len() == 3
        && parts[1]
            .bytes()
            .chain(parts[2].bytes())
            .all(|b| b.is_ascii_digit())
    {
        let last = parts[3];
        let (num, letter) = match last.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() && i == 2 => (&last[..2], Some(c)),
            _ => (last, None),
        };
        if num.len() == 2 && num.bytes().all(|b| b.is_ascii_digit()) {
            return (
                format!("{}-{}-{}-{num}", parts[0], parts[1], parts[2]),
                letter,
            );
        }
    }
    (up, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"document": {"category": "csaf_vex", "csaf_version": "2.0",
        "title": "t", "publisher": {"category": "vendor", "name": "Hospital", "namespace": "https://h.example"},
        "tracking": {"id": "H-1", "version": "1", "status": "final",
          "initial_release_date": "2024-01-01T00:00:00Z", "current_release_date": "2024-01-01T00:00:00Z",
          "revision_history": [{"number": "1", "date": "2024-01-01T00:00:00Z", "summary": "first"}]}},
      "product_tree": {
        "branches": [{"category": "vendor", "name": "Baxter", "branches": [
          {"category": "product_family", "name": "SIGMA Spectrum", "branches": [
            {"category": "product_name", "name": "Spectrum Infusion System", "branches": [
              {"category": "product_version", "name": "8.00.01", "product": {"product_id": "SPEC-8", "name": "Spectrum 8.00.01"}}]},
            {"category": "product_name", "name": "Wireless Battery Module", "branches": [
              {"category": "product_version_range", "name": "vers:generic/>=22D19|<=22D28",
               "product": {"product_id": "WBM", "name": "WBM 22D19-22D28",
                 "product_identification_helper": {"cpe": "cpe:2.3:o:baxter:spectrum_wireless_battery_module_firmware:*:*:*:*:*:*:*:*"}}}]}]}]}],
        "relationships": [{"category": "default_component_of", "product_reference": "WBM",
          "relates_to_product_reference": "SPEC-8",
          "full_product_name": {"product_id": "SPEC-8-WBM", "name": "Spectrum 8.00.01 with WBM"}}],
        "product_groups": [{"group_id": "G1", "product_ids": ["SPEC-8", "SPEC-8-WBM"]}]},
      "vulnerabilities": [{"cve": "CVE-2022-26390",
        "product_status": {"known_affected": ["SPEC-8-WBM"], "known_not_affected": ["SPEC-8"],
                           "under_investigation": ["NOPE"], "surprise": ["SPEC-8"]},
        "scores": [{"products": ["SPEC-8-WBM"], "cvss_v3": {"version": "3.1", "baseScore": 4.2,
           "vectorString": "CVSS:3.1/AV:A/AC:H/PR:N/UI:N/S:U/C:L/I:L/A:N", "baseSeverity": "MEDIUM"}},
           {"products": ["SPEC-8-WBM"], "cvss_v4": {"version": "4.0", "baseScore": 5.3, "vectorString": "CVSS:4.0/AV:A"}}],
        "remediations": [{"category": "vendor_fix", "details": "update", "group_ids": ["G1"]}],
        "threats": [{"category": "exploit_status", "details": "none known", "product_ids": ["SPEC-8-WBM"]}]}]}"#;

    #[test]
    fn minimal_document_with_every_part() {
        let a = parse(MINIMAL.as_bytes()).unwrap();
        let wbm = &a.product_tree.products["WBM"];
        assert_eq!(wbm.vendor.as_deref(), Some("Baxter"));
        assert_eq!(wbm.families, ["SIGMA Spectrum"]);
        assert_eq!(wbm.product.as_deref(), Some("Wireless Battery Module"));
        assert_eq!(
            wbm.version,
            Some((VersionKind::Range, "vers:generic/>=22D19|<=22D28".into()))
        );
        assert!(wbm.helper.cpe.is_some());
        assert!(matches!(wbm.constraint(), VersionConstraint::Vers(_)));
        // A product without a version branch is not assumed to be every version.
        let mut bare = wbm.clone();
        bare.version = None;
        assert_eq!(
            bare.constraint(),
            VersionConstraint::Unparsed("WBM 22D19-22D28".into())
        );
        let combo = &a.product_tree.products["SPEC-8-WBM"];
        assert_eq!(
            combo.relationship,
            Some(("default_component_of".into(), "WBM".into(), "SPEC-8".into()))
        );
        assert_eq!(combo.product.as_deref(), Some("Wireless Battery Module"));
        let v = &a.vulnerabilities[0];
        assert_eq!(v.product_status.known_not_affected, ["SPEC-8"]);
        assert_eq!(v.scores[1].newest().unwrap().version, "4.0");
        assert_eq!(
            a.expand_ids(&v.remediations[0].product_ids, &v.remediations[0].group_ids),
            ["SPEC-8", "SPEC-8-WBM"]
        );
        assert_eq!(v.threats[0].category, "exploit_status");
        let w: Vec<String> = a.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(w[0].starts_with(
            "$.vulnerabilities[0].product_status: unknown product_status list \"surprise\""
        ));
        assert_eq!(w[1], "$.vulnerabilities[0].product_status.under_investigation: product id \"NOPE\" is not defined in the product tree");
    }

    #[test]
    fn precise_errors() {
        let e = |s: &str| parse(s.as_bytes()).unwrap_err().to_string();
        assert!(
            e("{").starts_with("not valid JSON: EOF while parsing an object at line 1 column 1")
        );
        assert_eq!(
            e("[]"),
            "$: expected an object, found an array of 0 item(s)"
        );
        assert_eq!(
            e("{}"),
            "$.document: expected a value (the member is required), found nothing"
        );
        let broken = MINIMAL.replace(r#""baseScore": 4.2"#, r#""baseScore": "high""#);
        assert_eq!(
            e(&broken),
            "$.vulnerabilities[0].scores[0].cvss_v3.baseScore: expected a number, found string \"high\""
        );
        let broken = MINIMAL.replace(r#""baseScore": 4.2"#, r#""baseScore": 42"#);
        assert_eq!(
            e(&broken),
            "$.vulnerabilities[0].scores[0].cvss_v3.baseScore: a CVSS base score is 0.0–10.0, not 42"
        );
        let broken = MINIMAL.replace(r#""id": "H-1""#, r#""id": 7"#);
        assert_eq!(
            e(&broken),
            "$.document.tracking.id: expected a string, found number 7"
        );
        let broken = MINIMAL.replace(
            r#""category": "product_family", "name": "SIGMA Spectrum""#,
            r#""category": "product_family""#,
        );
        assert_eq!(
            e(&broken),
            "$.product_tree.branches[0].branches[0].name: expected a value (the member is required), found nothing"
        );
    }

    #[test]
    fn cisa_families() {
        assert_eq!(
            family_of("ICSA-15-125-01B"),
            ("ICSA-15-125-01".into(), Some('B'))
        );
        assert_eq!(
            family_of("icsma-17-250-02a"),
            ("ICSMA-17-250-02".into(), Some('A'))
        );
        assert_eq!(
            family_of("ICSMA-17-017-02"),
            ("ICSMA-17-017-02".into(), None)
        );
        assert_eq!(family_of("RHSA-2024:1"), ("RHSA-2024:1".into(), None));
    }

    #[test]
    fn same_id_higher_version_supersedes() {
        let a = parse(MINIMAL.as_bytes()).unwrap();
        let b = parse(
            MINIMAL
                .replace(r#""version": "1""#, r#""version": "2""#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(b.compare_revision(&a), Supersession::Supersedes);
        assert_eq!(a.compare_revision(&b), Supersession::SupersededBy);
        assert_eq!(a.compare_revision(&a), Supersession::Same);
        let c = parse(
            MINIMAL
                .replace(r#""version": "1""#, r#""version": "10""#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            c.compare_revision(&b),
            Supersession::Supersedes,
            "10 > 2 numerically"
        );
        let d = parse(MINIMAL.replace("H-1", "H-2").as_bytes()).unwrap();
        assert_eq!(d.compare_revision(&a), Supersession::Unrelated);
    }
}
