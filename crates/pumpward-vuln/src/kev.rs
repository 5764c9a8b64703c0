//! The CISA Known Exploited Vulnerabilities catalog (JSON feed).
//!
//! Accepted: an object with `catalogVersion`, `dateReleased`, `count` and
//! `vulnerabilities[]`, each with `cveID`, `vendorProject`, `product`,
//! `vulnerabilityName`, `dateAdded`, `shortDescription`, `requiredAction`,
//! `dueDate`, `knownRansomwareCampaignUse`, `notes`, `cwes` (as in
//! cisagov/kev-data's schema). `cveID`, `dateAdded` and `dueDate` are
//! required of every entry; a `count` that differs from the entries, a
//! duplicate CVE or a ransomware value other than Known/Unknown is a warning.

use crate::csaf::is_cve_id;
use crate::json::{excerpt, parse_bytes, Node, ParseError, PathBuf, Walk, Warning};
use std::collections::HashSet;

/// `knownRansomwareCampaignUse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ransomware {
    /// "Known".
    Known,
    /// "Unknown".
    Unknown,
    /// Anything else, kept.
    Other(String),
}

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KevEntry {
    /// `cveID`.
    pub cve_id: String,
    /// `vendorProject`.
    pub vendor_project: String,
    /// `product`.
    pub product: String,
    /// `vulnerabilityName`.
    pub vulnerability_name: String,
    /// `dateAdded` (YYYY-MM-DD).
    pub date_added: String,
    /// `shortDescription`.
    pub short_description: String,
    /// `requiredAction`.
    pub required_action: String,
    /// `dueDate` (YYYY-MM-DD).
    pub due_date: String,
    /// `knownRansomwareCampaignUse`.
    pub known_ransomware: Ransomware,
    /// `notes`.
    pub notes: String,
    /// `cwes`.
    pub cwes: Vec<String>,
}

/// The catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KevCatalog {
    /// `title`.
    pub title: String,
    /// `catalogVersion`.
    pub catalog_version: String,
    /// `dateReleased`.
    pub date_released: String,
    /// `count` as declared.
    pub declared_count: Option<u64>,
    /// The entries.
    pub entries: Vec<KevEntry>,
    /// Warnings.
    pub warnings: Vec<Warning>,
}

impl KevCatalog {
    /// The entry for a CVE id.
    pub fn get(&self, cve: &str) -> Option<&KevEntry> {
        self.entries
            .iter()
            .find(|e| e.cve_id.eq_ignore_ascii_case(cve))
    }
}

fn date(n: Node<'_>, key: &str) -> Result<String, ParseError> {
    n.with_req(key, |d| {
        let s = d.str()?;
        let b = s.as_bytes();
        let ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if ok {
            Ok(s.to_owned())
        } else {
            Err(d.expected("a date YYYY-MM-DD"))
        }
    })
}

/// Parses the catalog.
pub fn parse(bytes: &[u8]) -> Result<KevCatalog, ParseError> {
    let value = parse_bytes(bytes)?;
    let root_path = PathBuf::root();
    let root = Node::new(&value, &root_path);
    let mut warnings = Vec::new();
    let mut seen = HashSet::new();
    let entries = {
        let w = &mut warnings;
        root.with_req("vulnerabilities", |v| {
            v.array()?;
            Ok(())
        })?;
        root.each("vulnerabilities", |_, e| {
            let cve_id = e.req_string("cveID")?;
            if !is_cve_id(&cve_id) {
                w.push(e.warning(format!(
                    "cveID {:?} is not of the form CVE-YYYY-NNNN",
                    excerpt(&cve_id)
                )));
            }
            if !seen.insert(cve_id.to_ascii_uppercase()) {
                w.push(e.warning(format!("{} is listed more than once", excerpt(&cve_id))));
            }
            let rw = e
                .opt_string("knownRansomwareCampaignUse")?
                .unwrap_or_default();
            let known_ransomware = match rw.as_str() {
                "Known" => Ransomware::Known,
                "Unknown" => Ransomware::Unknown,
                _ => {
                    w.push(e.warning(format!(
                        "knownRansomwareCampaignUse {:?} is neither Known nor Unknown",
                        excerpt(&rw)
                    )));
                    Ransomware::Other(rw)
                }
            };
            Ok(KevEntry {
                vendor_project: e.opt_string("vendorProject")?.unwrap_or_default(),
                product: e.opt_string("product")?.unwrap_or_default(),
                vulnerability_name: e.opt_string("vulnerabilityName")?.unwrap_or_default(),
                date_added: date(e, "dateAdded")?,
                short_description: e.opt_string("shortDescription")?.unwrap_or_default(),
                required_action: e.opt_string("requiredAction")?.unwrap_or_default(),
                due_date: date(e, "dueDate")?,
                known_ransomware,
                notes: e.opt_string("notes")?.unwrap_or_default(),
                cwes: e.strings("cwes")?,
                cve_id,
            })
        })?
    };
    let declared_count = root.with("count", |c| {
        c.value
            .as_u64()
            .ok_or_else(|| c.expected("a non-negative integer"))
    })?;
    if let Some(n) = declared_count {
        if n != entries.len() as u64 {
            warnings.push(Warning {
                path: "$.count".into(),
                message: format!("the catalog says {n} entries and lists {}", entries.len()),
            });
        }
    }
    Ok(KevCatalog {
        title: root.opt_string("title")?.unwrap_or_default(),
        catalog_version: root.req_string("catalogVersion")?,
        date_released: root.opt_string("dateReleased")?.unwrap_or_default(),
        declared_count,
        entries,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_real_catalog() {
        let k = parse(include_bytes!(
            "../tests/data/kev/known_exploited_vulnerabilities.trimmed.json"
        ))
        .unwrap();
        assert_eq!(k.catalog_version, "2025.08.25");
        assert_eq!(k.entries.len(), 6);
        // The copy is trimmed; the declared count is the original's.
        assert_eq!(k.declared_count, Some(1404));
        assert_eq!(k.warnings.len(), 1);
        assert_eq!(
            k.warnings[0].to_string(),
            "$.count: the catalog says 1404 entries and lists 6"
        );
        let git = k.get("CVE-2025-48384").unwrap();
        assert_eq!(git.vendor_project, "Git");
        assert_eq!(git.date_added, "2025-08-25");
        let mirth = k.get("cve-2023-43208").unwrap();
        assert_eq!(mirth.product, "Mirth Connect");
        assert_eq!(mirth.known_ransomware, Ransomware::Known);
        assert!(k.get("CVE-2020-25165").is_none());
    }

    #[test]
    fn errors() {
        let e = parse(br#"{"catalogVersion":"1","vulnerabilities":[{"cveID":"CVE-2020-1","dateAdded":"2020/01/01","dueDate":"2020-02-01"}]}"#).unwrap_err();
        assert_eq!(e.to_string(), "$.vulnerabilities[0].dateAdded: expected a date YYYY-MM-DD, found string \"2020/01/01\"");
        let e = parse(br#"{"catalogVersion":"1"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "$.vulnerabilities: expected a value (the member is required), found nothing"
        );
    }
}
