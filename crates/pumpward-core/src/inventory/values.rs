//! The small typed values an asset is made of, each parsed from text once.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a single value was refused; the message names the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(String);

impl ValueError {
    pub fn new(msg: impl Into<String>) -> Self {
        ValueError(msg.into())
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

string_enum!(
    /// What role an asset plays on the pump network.
    AssetKind, "asset kind" {
        Pump = "pump",
        PumpServer = "pump_server",
        Gateway = "gateway",
        Workstation = "workstation",
        Other = "other",
    }
);

string_enum!(
    /// The clinical type of an infusion device.
    DeviceType, "device type" {
        /// Large-volume pump.
        Lvp = "lvp",
        Syringe = "syringe",
        /// Patient-controlled analgesia.
        Pca = "pca",
        Enteral = "enteral",
        Insulin = "insulin",
        Other = "other",
    }
);

string_enum!(
    /// A yes/no question whose honest answer may still be "not known".
    Answer, "yes/no/unknown answer" {
        Yes = "yes",
        No = "no",
        Unknown = "unknown",
    }
);

string_enum!(
    /// What is known about the device's local or service credentials.
    CredentialState, "credential state" {
        DefaultUnchanged = "default_unchanged",
        Changed = "changed",
        HardCodedKnown = "hard_coded_known",
    }
);

string_enum!(
    /// How the vendor services the model remotely, if at all.
    RemoteServiceMethod, "remote service method" {
        None = "none",
        Vpn = "vpn",
        VendorCloud = "vendor_cloud",
        Modem = "modem",
        OnSiteOnly = "on_site_only",
        Unknown = "unknown",
    }
);

/// The hospital's identifier for an asset (its tag number).
///
/// 1–64 characters of letters, digits, `.`, `_`, `-` and `:`, so it is safe in
/// URLs, file names, certificate SAN URIs and CSV without quoting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AssetId(String);

impl AssetId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AssetId {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ValueError::new("is required"));
        }
        if s.len() > 64 {
            return Err(ValueError::new("is longer than 64 characters"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
        {
            return Err(ValueError::new(format!(
                "{s:?} contains {c:?}; use letters, digits, '.', '_', '-' or ':'"
            )));
        }
        Ok(AssetId(s.to_owned()))
    }
}

impl TryFrom<String> for AssetId {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        s.parse()
    }
}

impl From<AssetId> for String {
    fn from(a: AssetId) -> String {
        a.0
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A unicast IEEE 802 MAC address, printed as lower-case `aa:bb:cc:dd:ee:ff`.
///
/// Accepts the colon, hyphen and Cisco dotted (`aabb.ccdd.eeff`) spellings that
/// CMMS exports, switches and RADIUS servers use. Multicast, broadcast and
/// all-zero addresses are refused: none of them can identify one device, and
/// a MAC allow-list entry that matches many devices would defeat MAC filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddress([u8; 6]);

impl MacAddress {
    pub fn octets(self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for MacAddress {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad = || ValueError::new(format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"));
        let t = s.trim();
        let hex: String = if t.len() == 14 && t.as_bytes()[4] == b'.' && t.as_bytes()[9] == b'.' {
            t.split('.').collect()
        } else if t.len() == 17 {
            let sep = t.as_bytes()[2];
            if sep != b':' && sep != b'-' {
                return Err(bad());
            }
            let parts: Vec<&str> = t.split(sep as char).collect();
            if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
                return Err(bad());
            }
            parts.concat()
        } else if t.len() == 12 {
            t.to_owned()
        } else {
            return Err(bad());
        };
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut o = [0u8; 6];
        for (i, b) in o.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        if o == [0; 6] {
            return Err(ValueError::new(format!(
                "{s:?} is the all-zero MAC address"
            )));
        }
        if o[0] & 1 == 1 {
            return Err(ValueError::new(format!(
                "{s:?} is a multicast or broadcast MAC address, not a device's"
            )));
        }
        Ok(MacAddress(o))
    }
}

impl TryFrom<String> for MacAddress {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, ValueError> {
        s.parse()
    }
}

impl From<MacAddress> for String {
    fn from(m: MacAddress) -> String {
        m.to_string()
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

/// A piece of software inside a device other than its main firmware, such as
/// a wireless battery module or a communication module, with its version.
/// Advisories often apply only to a combination of firmware and module.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SoftwareComponent {
    pub name: String,
    pub version: String,
}

impl SoftwareComponent {
    /// Parses `name=version;name=version`. Empty text is an empty list.
    pub fn parse_list(s: &str) -> Result<Vec<SoftwareComponent>, ValueError> {
        let mut out = Vec::new();
        for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, version)) = part.split_once('=') else {
                return Err(ValueError::new(format!(
                    "{part:?} is not name=version (components are separated by ';')"
                )));
            };
            out.push(SoftwareComponent {
                name: name.trim().to_owned(),
                version: version.trim().to_owned(),
            });
        }
        Self::check_list(out)
    }

    /// Checks a list: names and versions present, no name twice, no separators inside.
    pub fn check_list(list: Vec<SoftwareComponent>) -> Result<Vec<SoftwareComponent>, ValueError> {
        let mut seen = std::collections::HashSet::new();
        for c in &list {
            for (what, v) in [("name", &c.name), ("version", &c.version)] {
                if v.trim().is_empty() {
                    return Err(ValueError::new(format!("a component has an empty {what}")));
                }
                if v.trim() != v || v.contains([';', '=']) || v.chars().any(char::is_control) {
                    return Err(ValueError::new(format!(
                        "component {what} {v:?} has surrounding spaces, ';', '=' or a control character"
                    )));
                }
                if v.chars().count() > super::MAX_TEXT {
                    return Err(ValueError::new(format!("component {what} is too long")));
                }
            }
            if !seen.insert(c.name.to_lowercase()) {
                return Err(ValueError::new(format!(
                    "component {:?} is listed twice",
                    c.name
                )));
            }
        }
        Ok(list)
    }

    /// The `name=version;…` form that [`parse_list`](Self::parse_list) reads.
    pub fn format_list(list: &[SoftwareComponent]) -> String {
        list.iter()
            .map(|c| format!("{}={}", c.name, c.version))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Most CPE names one asset carries (hardware, firmware, a few modules).
pub const MAX_CPE_NAMES: usize = 16;

/// Parses an asset's CPE 2.3 formatted names, separated by whitespace (a
/// formatted string holds none: NISTIR 7695 quotes every other character),
/// into their canonical form. Empty text is an empty list. The one CPE
/// parser is [`pumpward_vuln::cpe::Cpe::parse`]; the error says which name
/// and, where it has one, which attribute.
pub fn parse_cpe_list(s: &str) -> Result<Vec<String>, ValueError> {
    check_cpe_list(s.split_whitespace().map(str::to_owned).collect())
}

/// Checks a list of CPE names (as a JSON client sends it) and returns their
/// canonical form (lower case, `\`-quoted as NVD writes them): CPE
/// comparison ignores case, so `BD` and `bd` are one name.
pub fn check_cpe_list(list: Vec<String>) -> Result<Vec<String>, ValueError> {
    if list.len() > MAX_CPE_NAMES {
        return Err(ValueError::new(format!(
            "at most {MAX_CPE_NAMES} CPE names, not {}",
            list.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, name) in list.iter().enumerate() {
        let shown: String = name.chars().take(80).collect();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValueError::new(format!(
                "CPE name {} {shown:?} is empty or holds whitespace or a control character (names are separated by spaces)",
                i + 1
            )));
        }
        let cpe = pumpward_vuln::cpe::Cpe::parse(name)
            .map_err(|e| ValueError::new(format!("CPE name {} {shown:?}: {e}", i + 1)))?;
        let canonical = cpe.to_string();
        if out.contains(&canonical) {
            return Err(ValueError::new(format!(
                "CPE name {} {shown:?} is listed twice",
                i + 1
            )));
        }
        out.push(canonical);
    }
    Ok(out)
}

/// The space-separated form [`parse_cpe_list`] reads (CSV cell, stored
/// column).
pub fn format_cpe_list(list: &[String]) -> String {
    list.join(" ")
}
