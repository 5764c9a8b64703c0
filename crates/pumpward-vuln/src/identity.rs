//! Product identity: one canonical key per manufacturer and product, however
//! an advisory spells them.
//!
//! The table is `data/aliases.toml`, compiled in ([`AliasTable::builtin`])
//! and loadable from a hospital's own edited copy
//! ([`AliasTable::from_toml`]). Lookups compare [`normalise`]d names for
//! equality only: no substring or fuzzy matching, because "Alaris GS" and
//! "Alaris Gateway Workstation", or "Medtronic MiniMed" and "Medtronic
//! Valleylab", must not be confused. A name that is not in the table is
//! reported as unknown (the caller raises it for review), never matched to
//! the nearest entry.

use crate::cpe::Cpe;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The shipped table's text.
pub const BUILTIN_TOML: &str = include_str!("../data/aliases.toml");

/// Why an alias table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// Not TOML, or not the table's shape.
    #[error("alias table: {0}")]
    Toml(String),
    /// A key defined twice.
    #[error("alias table: key {0:?} is defined more than once")]
    DuplicateKey(String),
    /// A product names a manufacturer that is not in the table, or its key
    /// does not start with the manufacturer's key.
    #[error("alias table: product {product:?}: {problem}")]
    Product {
        /// The product key.
        product: String,
        /// What is wrong.
        problem: String,
    },
    /// One normalised alias points at two entries.
    #[error(
        "alias table: {alias:?} (normalised {normalised:?}) names both {first:?} and {second:?}"
    )]
    Ambiguous {
        /// The alias as written.
        alias: String,
        /// Its normalised form.
        normalised: String,
        /// The entry it already named.
        first: String,
        /// The entry it would also name.
        second: String,
    },
}

/// A manufacturer entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manufacturer {
    /// Canonical key (`bd`, `hospira`, `bbraun`).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Names used for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Other manufacturers whose products it now sells.
    #[serde(default)]
    pub also: Vec<String>,
}

/// A product entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Canonical key (`bd/alaris-pcu-8015`).
    pub key: String,
    /// Manufacturer key.
    pub manufacturer: String,
    /// Display name.
    pub name: String,
    /// What it is (infusion pump, syringe pump, pump software…).
    #[serde(default)]
    pub kind: String,
    /// Names used for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// NVD CPE `vendor:product` pairs.
    #[serde(default)]
    pub cpe: Vec<String>,
    /// Why the entry is as it is.
    #[serde(default)]
    pub note: Option<String>,
    /// The key of the product family this model belongs to: an advisory
    /// that names only the family ("Alaris PC Unit", model not stated)
    /// speaks of this model too.
    #[serde(default)]
    pub family: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    manufacturer: Vec<Manufacturer>,
    #[serde(default)]
    product: Vec<Product>,
}

/// A product found by name, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductMatch<'a> {
    /// The product.
    pub product: &'a Product,
    /// The manufacturer as the lookup named it.
    pub manufacturer: &'a Manufacturer,
    /// The normalised name that matched an alias.
    pub matched: String,
}

/// The loaded alias table with its indexes.
#[derive(Debug, Clone)]
pub struct AliasTable {
    manufacturers: Vec<Manufacturer>,
    products: Vec<Product>,
    by_manufacturer_alias: HashMap<String, usize>,
    by_product_alias: HashMap<(String, String), usize>,
    by_cpe: HashMap<String, usize>,
}

/// Normalises a manufacturer or product name for lookup: lower case; ®, ™,
/// ©, "(R)", "(TM)" removed; "+" read as " plus " (so "Plum A+" and "Plum
/// A" stay apart) and "&" as " and "; every other non-alphanumeric
/// character a space; the word "model" dropped; whitespace collapsed.
pub fn normalise(s: &str) -> String {
    let mut t = s.to_lowercase();
    for mark in ["®", "™", "©", "(r)", "(tm)"] {
        t = t.replace(mark, " ");
    }
    let mut spaced = String::with_capacity(t.len() + 8);
    for c in t.chars() {
        match c {
            '+' => spaced.push_str(" plus "),
            '&' => spaced.push_str(" and "),
            c if c.is_alphanumeric() => spaced.push(c),
            _ => spaced.push(' '),
        }
    }
    spaced
        .split_whitespace()
        .filter(|w| *w != "model")
        .collect::<Vec<_>>()
        .join(" ")
}

impl AliasTable {
    /// The shipped table (parsed once).
    pub fn builtin() -> &'static AliasTable {
        static TABLE: OnceLock<AliasTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            AliasTable::from_toml(BUILTIN_TOML).expect("the shipped alias table is valid (tested)")
        })
    }

    /// Loads a table from TOML text and checks it: unique keys, products
    /// under known manufacturers with keys prefixed by them, no alias naming
    /// two entries.
    pub fn from_toml(text: &str) -> Result<AliasTable, AliasError> {
        let file: File = toml::from_str(text).map_err(|e| AliasError::Toml(e.to_string()))?;
        let mut t = AliasTable {
            manufacturers: file.manufacturer,
            products: file.product,
            by_manufacturer_alias: HashMap::new(),
            by_product_alias: HashMap::new(),
            by_cpe: HashMap::new(),
        };
        let mut keys = std::collections::HashSet::new();
        for (i, m) in t.manufacturers.iter().enumerate() {
            if !keys.insert(m.key.clone()) {
                return Err(AliasError::DuplicateKey(m.key.clone()));
            }
            for a in m.aliases.iter().chain([&m.key, &m.name]) {
                let n = normalise(a);
                if let Some(&j) = t.by_manufacturer_alias.get(&n) {
                    if j != i {
                        return Err(AliasError::Ambiguous {
                            alias: a.clone(),
                            normalised: n,
                            first: t.manufacturers[j].key.clone(),
                            second: m.key.clone(),
                        });
                    }
                }
                t.by_manufacturer_alias.insert(n, i);
            }
        }
        for m in &t.manufacturers {
            for other in &m.also {
                if !keys.contains(other) {
                    return Err(AliasError::Toml(format!(
                        "manufacturer {:?}: `also` names unknown manufacturer {other:?}",
                        m.key
                    )));
                }
            }
        }
        for (i, p) in t.products.iter().enumerate() {
            if !keys.insert(p.key.clone()) {
                return Err(AliasError::DuplicateKey(p.key.clone()));
            }
            if !t.manufacturers.iter().any(|m| m.key == p.manufacturer) {
                return Err(AliasError::Product {
                    product: p.key.clone(),
                    problem: format!("unknown manufacturer {:?}", p.manufacturer),
                });
            }
            if !p.key.starts_with(&format!("{}/", p.manufacturer)) {
                return Err(AliasError::Product {
                    product: p.key.clone(),
                    problem: format!("the key must start with \"{}/\"", p.manufacturer),
                });
            }
            for a in p.aliases.iter().chain([&p.name]) {
                let n = normalise(a);
                let k = (p.manufacturer.clone(), n.clone());
                if let Some(&j) = t.by_product_alias.get(&k) {
                    if j != i {
                        return Err(AliasError::Ambiguous {
                            alias: a.clone(),
                            normalised: n,
                            first: t.products[j].key.clone(),
                            second: p.key.clone(),
                        });
                    }
                }
                t.by_product_alias.insert(k, i);
            }
            for c in &p.cpe {
                let c = c.to_ascii_lowercase();
                if let Some(&j) = t.by_cpe.get(&c) {
                    if j != i {
                        return Err(AliasError::Ambiguous {
                            alias: c.clone(),
                            normalised: c,
                            first: t.products[j].key.clone(),
                            second: p.key.clone(),
                        });
                    }
                }
                t.by_cpe.insert(c, i);
            }
        }
        for p in &t.products {
            if let Some(f) = &p.family {
                if f == &p.key || !t.products.iter().any(|q| &q.key == f) {
                    return Err(AliasError::Product {
                        product: p.key.clone(),
                        problem: format!("family {f:?} is not another product of the table"),
                    });
                }
            }
        }
        Ok(t)
    }

    /// Every manufacturer.
    pub fn manufacturers(&self) -> &[Manufacturer] {
        &self.manufacturers
    }

    /// Every product.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The manufacturer a name stands for.
    pub fn manufacturer(&self, name: &str) -> Option<&Manufacturer> {
        self.by_manufacturer_alias
            .get(&normalise(name))
            .map(|&i| &self.manufacturers[i])
    }

    /// The product a (manufacturer, product name) pair stands for. Also
    /// tries the name without a leading manufacturer name ("BD Alaris…",
    /// "Hospira MedNet") and the text before the first comma (ICSA-15-161-01
    /// writes "Symbiq Infusion System,As previously announced by Hospira…"),
    /// and the products of the manufacturers this one acquired (`also`).
    pub fn product(&self, manufacturer: &str, product: &str) -> Option<ProductMatch<'_>> {
        let m = self.manufacturer(manufacturer)?;
        let mut owners = vec![m.key.as_str()];
        owners.extend(m.also.iter().map(String::as_str));
        let mut candidates = vec![normalise(product)];
        if let Some((head, _)) = product.split_once(',') {
            candidates.push(normalise(head));
        }
        let prefixes: Vec<String> = owners
            .iter()
            .filter_map(|k| self.manufacturers.iter().find(|x| x.key == *k))
            .flat_map(|x| {
                x.aliases
                    .iter()
                    .chain([&x.name, &x.key])
                    .map(|a| normalise(a))
            })
            .filter(|p| !p.is_empty())
            .collect();
        for c in candidates.clone() {
            for p in &prefixes {
                if let Some(rest) = c.strip_prefix(p.as_str()).and_then(|r| r.strip_prefix(' ')) {
                    candidates.push(rest.to_owned());
                }
            }
        }
        for c in &candidates {
            for owner in &owners {
                if let Some(&i) = self.by_product_alias.get(&(owner.to_string(), c.clone())) {
                    return Some(ProductMatch {
                        product: &self.products[i],
                        manufacturer: m,
                        matched: c.clone(),
                    });
                }
            }
        }
        None
    }

    /// The product whose NVD CPE vendor:product pair is the CPE name's.
    pub fn product_by_cpe(&self, cpe: &Cpe) -> Option<&Product> {
        let key = format!("{}:{}", cpe.vendor().value()?, cpe.product().value()?);
        self.by_cpe.get(&key).map(|&i| &self.products[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normaliser() {
        assert_eq!(
            normalise("BD Alaris® Point-of-Care Unit (PCU) Model 8015"),
            "bd alaris point of care unit pcu 8015"
        );
        assert_eq!(
            normalise("Plum A+3 Infusion System"),
            "plum a plus 3 infusion system"
        );
        assert_eq!(normalise("  Alaris(TM)   PC unit "), "alaris pc unit");
        assert_eq!(
            normalise("Becton, Dickinson and Company (BD)"),
            "becton dickinson and company bd"
        );
        assert_eq!(normalise("Dräger"), "dräger");
        assert_eq!(normalise("®™"), "");
    }

    #[test]
    fn builtin_loads_and_every_product_is_reachable_by_its_name() {
        let t = AliasTable::builtin();
        assert!(t.products().len() > 40);
        for p in t.products() {
            let m = t
                .manufacturers()
                .iter()
                .find(|m| m.key == p.manufacturer)
                .unwrap();
            assert_eq!(
                t.product(&m.name, &p.name).map(|x| &x.product.key),
                Some(&p.key)
            );
            for a in &p.aliases {
                assert_eq!(
                    t.product(&m.name, a).map(|x| &x.product.key),
                    Some(&p.key),
                    "{a}"
                );
            }
        }
    }

    #[test]
    fn a_family_must_be_another_product_of_the_table() {
        let t = AliasTable::builtin();
        let m = t.product("BD", "Alaris 8015 PC Unit").unwrap();
        assert_eq!(m.product.family.as_deref(), Some("bd/alaris-pcu"));
        let bad = "[[manufacturer]]\nkey = \"bd\"\nname = \"BD\"\n\
                   [[product]]\nkey = \"bd/a\"\nmanufacturer = \"bd\"\nname = \"A\"\nfamily = \"bd/none\"\n";
        let e = AliasTable::from_toml(bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "alias table: product \"bd/a\": family \"bd/none\" is not another product of the table"
        );
    }

    #[test]
    fn manufacturer_variants() {
        let t = AliasTable::builtin();
        for (name, key) in [
            ("Hospira", "hospira"),
            ("ICU Medical", "hospira"),
            ("Pfizer", "hospira"),
            ("pifzer", "hospira"),
            ("BD", "bd"),
            ("Becton Dickinson", "bd"),
            ("Becton, Dickinson and Company (BD)", "bd"),
            ("CareFusion", "bd"),
            ("Cardinal Health", "bd"),
            ("B. Braun", "bbraun"),
            ("B. Braun Medical", "bbraun"),
            ("B. Braun Melsungen AG", "bbraun"),
            ("Smiths Medical", "smiths-medical"),
            ("Baxter", "baxter"),
            ("Fresenius Kabi", "fresenius-kabi"),
            ("Medtronic", "medtronic"),
            ("medtronicdiabetes", "medtronic"),
            ("SOOIL Developments Co, Ltd.", "sooil"),
        ] {
            assert_eq!(
                t.manufacturer(name).map(|m| m.key.as_str()),
                Some(key),
                "{name}"
            );
        }
        for trap in [
            "Braun",
            "Fresenius",
            "Fresenius Medical Care",
            "Johnson & Johnson",
            "Philips",
            "Dräger",
            "",
        ] {
            assert!(t.manufacturer(trap).is_none(), "{trap}");
        }
    }

    #[test]
    fn product_variants_and_traps() {
        let t = AliasTable::builtin();
        let key = |m: &str, p: &str| t.product(m, p).map(|x| x.product.key.clone());
        for name in [
            "Alaris 8015 PC unit",
            "Alaris PC Unit Model 8015",
            "BD Alaris Point-of-Care Unit (PCU) Model 8015",
            "BD Alaris™ PC Unit, Model 8015",
        ] {
            assert_eq!(
                key("BD", name).as_deref(),
                Some("bd/alaris-pcu-8015"),
                "{name}"
            );
        }
        assert_eq!(
            key("CareFusion", "Alaris 8015 PC Unit").as_deref(),
            Some("bd/alaris-pcu-8015")
        );
        assert_eq!(
            key("Hospira", "Plum A+ Infusion System").as_deref(),
            Some("hospira/plum-a-plus")
        );
        assert_eq!(
            key("Hospira", "Plum A+3 Infusion System").as_deref(),
            Some("hospira/plum-a-plus-3")
        );
        // ICU Medical sells Smiths Medical's pumps since 2022.
        assert_eq!(
            key("ICU Medical", "Medfusion 4000").as_deref(),
            Some("smiths-medical/medfusion-4000")
        );
        // Traps: same manufacturer, not a pump; a pump word inside another name.
        assert_eq!(key("BD", "BD Pyxis MedStation ES"), None);
        assert_eq!(
            key("Medtronic", "Valleylab FT10 Energy Platform (VLFT10GEN)"),
            None
        );
        assert_eq!(key("Baxter", "Phoenix Hemodialysis Delivery System"), None);
        assert_eq!(key("BD", "Alaris"), None);
        assert_eq!(key("Philips", "Alaris 8015 PC unit"), None);
        // An Alaris name under another vendor is not BD's pump.
        assert_eq!(key("Smiths Medical", "Alaris GS"), None);
    }

    #[test]
    fn cpe_lookup() {
        let t = AliasTable::builtin();
        let c = Cpe::parse("cpe:2.3:o:pifzer:plum_a\\+_infusion_system_firmware:*:*:*:*:*:*:*:*")
            .unwrap();
        assert_eq!(
            t.product_by_cpe(&c).map(|p| p.key.as_str()),
            Some("hospira/plum-a-plus")
        );
        let c = Cpe::parse("cpe:2.3:o:bd:alaris_8015_pcu_firmware:9.33.1:*:*:*:*:*:*:*").unwrap();
        assert_eq!(
            t.product_by_cpe(&c).map(|p| p.key.as_str()),
            Some("bd/alaris-pcu-8015")
        );
        let c = Cpe::parse("cpe:2.3:a:bd:pyxis:*:*:*:*:*:*:*:*").unwrap();
        assert_eq!(t.product_by_cpe(&c), None);
    }

    #[test]
    fn user_tables_are_checked() {
        let e = AliasTable::from_toml("[[manufacturer]]\nkey='a'\nname='A'\naliases=['X']\n[[manufacturer]]\nkey='b'\nname='B'\naliases=['x!']").unwrap_err();
        assert!(matches!(e, AliasError::Ambiguous { .. }), "{e}");
        let e = AliasTable::from_toml("[[product]]\nkey='a/b'\nmanufacturer='a'\nname='B'")
            .unwrap_err();
        assert!(e.to_string().contains("unknown manufacturer"), "{e}");
        let e = AliasTable::from_toml("[[manufacturer]]\nkey='a'\nname='A'\n[[product]]\nkey='c/b'\nmanufacturer='a'\nname='B'").unwrap_err();
        assert!(e.to_string().contains("must start with"), "{e}");
        let e = AliasTable::from_toml("[[manufacturer]]\nkey='a'\nnam='A'").unwrap_err();
        assert!(matches!(e, AliasError::Toml(_)), "{e}");
        let ok = AliasTable::from_toml("[[manufacturer]]\nkey='acme'\nname='Acme Pumps'\n[[product]]\nkey='acme/p1'\nmanufacturer='acme'\nname='P-1 Pump'\naliases=['P1']").unwrap();
        assert_eq!(
            ok.product("ACME PUMPS", "p-1 PUMP™")
                .map(|p| p.product.key.as_str()),
            Some("acme/p1")
        );
    }
}
