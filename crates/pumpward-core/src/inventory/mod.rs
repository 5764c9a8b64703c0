//! Inventory: assets, the device-model catalogue and the asset lifecycle.
//!
//! An [`AssetSpec`] is what a person or a CMMS file says about an asset; it is
//! only ever built through [`AssetSpec::validate`] (or the CSV reader), so every
//! value that reaches the store has already been parsed into its typed form.

pub mod csv;
mod lifecycle;
mod values;

pub use lifecycle::{LifecycleState, TransitionError};
pub use values::{
    check_cpe_list, format_cpe_list, parse_cpe_list, Answer, AssetId, AssetKind, CredentialState,
    DeviceType, MacAddress, RemoteServiceMethod, SoftwareComponent, ValueError, MAX_CPE_NAMES,
};

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use time::{Date, OffsetDateTime};

/// Everything a user may set on an asset, validated.
///
/// The lifecycle state is not here on purpose: it changes only through
/// [`LifecycleState::transition`], so that each change is checked and audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetSpec {
    pub asset_id: AssetId,
    pub kind: AssetKind,
    pub manufacturer: String,
    pub model: String,
    pub device_type: Option<DeviceType>,
    pub serial_number: String,
    pub udi: Option<String>,
    pub firmware_version: String,
    pub software: Vec<SoftwareComponent>,
    /// The device's own CPE 2.3 names (hardware, firmware), canonical, as
    /// its manufacturer or the hospital's asset system gives them; matched
    /// against NVD configurations and advisory product CPEs. Empty: none.
    #[serde(default)]
    pub cpe: Vec<String>,
    pub mac_address: Option<MacAddress>,
    pub ip_address: Option<IpAddr>,
    pub hostname: Option<String>,
    pub location: Option<String>,
    pub care_area: Option<String>,
    pub zone: Option<String>,
    pub owner: Option<String>,
    pub vendor_support_contact: Option<String>,
    #[serde(with = "opt_date")]
    pub end_of_support: Option<Date>,
    pub phi_stored: Answer,
    pub credential_state: CredentialState,
    pub notes: Option<String>,
}

/// An asset as stored: its spec plus the state the store keeps for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asset {
    #[serde(flatten)]
    pub spec: AssetSpec,
    pub lifecycle_state: LifecycleState,
    #[serde(with = "opt_time")]
    pub last_seen: Option<OffsetDateTime>,
    /// Incremented on every change; clients send it back to update (optimistic locking).
    pub version: i64,
    #[serde(with = "canonical_time")]
    pub created_at: OffsetDateTime,
    #[serde(with = "canonical_time")]
    pub updated_at: OffsetDateTime,
}

/// An asset as a client or file sends it: every value still a string.
///
/// `Default` gives an empty draft; [`AssetSpec::validate`] turns it into a spec
/// or says which fields are wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetDraft {
    pub asset_id: String,
    #[serde(default)]
    pub kind: Option<String>,
    pub manufacturer: String,
    pub model: String,
    #[serde(default)]
    pub device_type: Option<String>,
    pub serial_number: String,
    #[serde(default)]
    pub udi: Option<String>,
    pub firmware_version: String,
    /// `name=version` pairs separated by `;`, or a list of components.
    #[serde(default)]
    pub software: Option<SoftwareField>,
    /// CPE 2.3 names separated by whitespace, or a list of names.
    #[serde(default)]
    pub cpe: Option<CpeField>,
    #[serde(default)]
    pub mac_address: Option<String>,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub care_area: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub vendor_support_contact: Option<String>,
    #[serde(default)]
    pub end_of_support: Option<String>,
    #[serde(default)]
    pub phi_stored: Option<String>,
    #[serde(default)]
    pub credential_state: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// Software components as either the CSV string form or a JSON list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SoftwareField {
    Text(String),
    List(Vec<SoftwareComponent>),
}

/// CPE names as either the CSV string form (separated by whitespace) or a
/// JSON list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CpeField {
    Text(String),
    List(Vec<String>),
}

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All the fields of a draft that failed validation, in field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DraftErrors(pub Vec<FieldError>);

impl std::fmt::Display for DraftErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DraftErrors {}

/// Longest free-text value accepted in any single-line field.
pub const MAX_TEXT: usize = 256;
/// Longest notes value.
pub const MAX_NOTES: usize = 4096;

impl AssetSpec {
    /// Validates a draft; on failure lists every bad field, not just the first.
    pub fn validate(d: &AssetDraft) -> Result<AssetSpec, DraftErrors> {
        let mut errs = Vec::new();
        let mut check = |field: &'static str, r: Result<(), ValueError>| {
            if let Err(e) = r {
                errs.push(FieldError {
                    field,
                    message: e.to_string(),
                });
            }
        };
        macro_rules! req {
            ($field:literal, $expr:expr) => {
                match $expr {
                    Ok(v) => Some(v),
                    Err(e) => {
                        check($field, Err(e));
                        None
                    }
                }
            };
        }

        let asset_id = req!("asset_id", d.asset_id.parse::<AssetId>());
        let kind = req!(
            "kind",
            opt_enum(d.kind.as_deref()).map(|k| k.unwrap_or(AssetKind::Pump))
        );
        let manufacturer = req!("manufacturer", required_text(&d.manufacturer, MAX_TEXT));
        let model = req!("model", required_text(&d.model, MAX_TEXT));
        let device_type = req!(
            "device_type",
            opt_enum::<DeviceType>(d.device_type.as_deref())
        );
        let serial_number = req!("serial_number", required_text(&d.serial_number, MAX_TEXT));
        let udi = req!("udi", optional_text(d.udi.as_deref(), MAX_TEXT));
        let firmware_version = req!(
            "firmware_version",
            required_text(&d.firmware_version, MAX_TEXT)
        );
        let software = req!(
            "software",
            match &d.software {
                None => Ok(Vec::new()),
                Some(SoftwareField::Text(t)) => SoftwareComponent::parse_list(t),
                Some(SoftwareField::List(l)) => SoftwareComponent::check_list(l.clone()),
            }
        );
        let cpe = req!(
            "cpe",
            match &d.cpe {
                None => Ok(Vec::new()),
                Some(CpeField::Text(t)) => parse_cpe_list(t),
                Some(CpeField::List(l)) => check_cpe_list(l.clone()),
            }
        );
        let mac_address = req!(
            "mac_address",
            non_empty(d.mac_address.as_deref())
                .map(str::parse::<MacAddress>)
                .transpose()
        );
        let ip_address = req!(
            "ip_address",
            non_empty(d.ip_address.as_deref())
                .map(|s| s
                    .parse::<IpAddr>()
                    .map_err(|_| ValueError::new(format!("{s:?} is not an IPv4 or IPv6 address"))))
                .transpose()
        );
        let hostname = req!("hostname", optional_hostname(d.hostname.as_deref()));
        let location = req!("location", optional_text(d.location.as_deref(), MAX_TEXT));
        let care_area = req!("care_area", optional_text(d.care_area.as_deref(), MAX_TEXT));
        let zone = req!("zone", optional_text(d.zone.as_deref(), MAX_TEXT));
        let owner = req!("owner", optional_text(d.owner.as_deref(), MAX_TEXT));
        let vendor_support_contact = req!(
            "vendor_support_contact",
            optional_text(d.vendor_support_contact.as_deref(), MAX_TEXT)
        );
        let end_of_support = req!(
            "end_of_support",
            non_empty(d.end_of_support.as_deref())
                .map(|s| crate::timefmt::parse_date(s)
                    .map_err(|_| ValueError::new(format!("{s:?} is not a date (YYYY-MM-DD)"))))
                .transpose()
        );
        let phi_stored = req!(
            "phi_stored",
            opt_enum::<Answer>(d.phi_stored.as_deref()).map(|a| a.unwrap_or(Answer::Unknown))
        );
        let credential_state = req!(
            "credential_state",
            // Unknown credentials are assumed unchanged: the pessimistic reading.
            opt_enum::<CredentialState>(d.credential_state.as_deref())
                .map(|c| c.unwrap_or(CredentialState::DefaultUnchanged))
        );
        let notes = req!(
            "notes",
            optional_text_multiline(d.notes.as_deref(), MAX_NOTES)
        );

        if !errs.is_empty() {
            return Err(DraftErrors(errs));
        }
        Ok(AssetSpec {
            asset_id: asset_id.unwrap(),
            kind: kind.unwrap(),
            manufacturer: manufacturer.unwrap(),
            model: model.unwrap(),
            device_type: device_type.unwrap(),
            serial_number: serial_number.unwrap(),
            udi: udi.unwrap(),
            firmware_version: firmware_version.unwrap(),
            software: software.unwrap(),
            cpe: cpe.unwrap(),
            mac_address: mac_address.unwrap(),
            ip_address: ip_address.unwrap(),
            hostname: hostname.unwrap(),
            location: location.unwrap(),
            care_area: care_area.unwrap(),
            zone: zone.unwrap(),
            owner: owner.unwrap(),
            vendor_support_contact: vendor_support_contact.unwrap(),
            end_of_support: end_of_support.unwrap(),
            phi_stored: phi_stored.unwrap(),
            credential_state: credential_state.unwrap(),
            notes: notes.unwrap(),
        })
    }

    /// The draft that validates back to this spec (used by export and the UI).
    pub fn to_draft(&self) -> AssetDraft {
        AssetDraft {
            asset_id: self.asset_id.to_string(),
            kind: Some(self.kind.as_str().into()),
            manufacturer: self.manufacturer.clone(),
            model: self.model.clone(),
            device_type: self.device_type.map(|d| d.as_str().into()),
            serial_number: self.serial_number.clone(),
            udi: self.udi.clone(),
            firmware_version: self.firmware_version.clone(),
            software: Some(SoftwareField::Text(SoftwareComponent::format_list(
                &self.software,
            ))),
            cpe: (!self.cpe.is_empty()).then(|| CpeField::Text(format_cpe_list(&self.cpe))),
            mac_address: self.mac_address.map(|m| m.to_string()),
            ip_address: self.ip_address.map(|i| i.to_string()),
            hostname: self.hostname.clone(),
            location: self.location.clone(),
            care_area: self.care_area.clone(),
            zone: self.zone.clone(),
            owner: self.owner.clone(),
            vendor_support_contact: self.vendor_support_contact.clone(),
            end_of_support: self.end_of_support.map(crate::timefmt::format_date),
            phi_stored: Some(self.phi_stored.as_str().into()),
            credential_state: Some(self.credential_state.as_str().into()),
            notes: self.notes.clone(),
        }
    }
}

/// A model in the device catalogue, with the security capabilities that
/// decide how it can be onboarded (EAP-TLS or MAC bypass, certificates, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceModel {
    pub manufacturer: String,
    pub model: String,
    pub device_type: Option<DeviceType>,
    pub capabilities: Capabilities,
}

/// What a device model can do, as its MDS2 form or the vendor states it.
/// `unknown` is the honest answer until someone has checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub eap_tls: Answer,
    pub client_certificates: Answer,
    pub encryption_at_rest: Answer,
    pub removable_media: Answer,
    pub remote_service: RemoteServiceMethod,
    pub mds2_on_file: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            eap_tls: Answer::Unknown,
            client_certificates: Answer::Unknown,
            encryption_at_rest: Answer::Unknown,
            removable_media: Answer::Unknown,
            remote_service: RemoteServiceMethod::Unknown,
            mds2_on_file: false,
        }
    }
}

impl DeviceModel {
    /// Validates a catalogue entry's names.
    pub fn new(
        manufacturer: &str,
        model: &str,
        device_type: Option<DeviceType>,
        capabilities: Capabilities,
    ) -> Result<Self, DraftErrors> {
        let mut errs = Vec::new();
        let m = required_text(manufacturer, MAX_TEXT).map_err(|e| FieldError {
            field: "manufacturer",
            message: e.to_string(),
        });
        let n = required_text(model, MAX_TEXT).map_err(|e| FieldError {
            field: "model",
            message: e.to_string(),
        });
        match (m, n) {
            (Ok(manufacturer), Ok(model)) => Ok(DeviceModel {
                manufacturer,
                model,
                device_type,
                capabilities,
            }),
            (m, n) => {
                errs.extend(m.err());
                errs.extend(n.err());
                Err(DraftErrors(errs))
            }
        }
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn opt_enum<T: std::str::FromStr<Err = ValueError>>(
    s: Option<&str>,
) -> Result<Option<T>, ValueError> {
    non_empty(s).map(str::parse).transpose()
}

/// A required single-line text: trimmed, not empty, no control characters.
pub fn required_text(s: &str, max: usize) -> Result<String, ValueError> {
    match optional_text(Some(s), max)? {
        Some(s) => Ok(s),
        None => Err(ValueError::new("is required")),
    }
}

/// An optional single-line text: empty means absent.
pub fn optional_text(s: Option<&str>, max: usize) -> Result<Option<String>, ValueError> {
    let Some(s) = non_empty(s) else {
        return Ok(None);
    };
    if s.chars().count() > max {
        return Err(ValueError::new(format!("is longer than {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(ValueError::new("contains a control character"));
    }
    Ok(Some(s.to_owned()))
}

fn optional_text_multiline(s: Option<&str>, max: usize) -> Result<Option<String>, ValueError> {
    // Browsers send textarea line breaks as CRLF; store LF only.
    let normalised = s.map(|s| s.replace("\r\n", "\n"));
    let Some(s) = non_empty(normalised.as_deref()) else {
        return Ok(None);
    };
    if s.chars().count() > max {
        return Err(ValueError::new(format!("is longer than {max} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ValueError::new("contains a control character"));
    }
    Ok(Some(s.to_owned()))
}

fn optional_hostname(s: Option<&str>) -> Result<Option<String>, ValueError> {
    let Some(s) = non_empty(s) else {
        return Ok(None);
    };
    // RFC 1123 host name: labels of letters, digits and hyphens, dots between.
    let ok = s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(Some(s.to_ascii_lowercase()))
    } else {
        Err(ValueError::new(format!("{s:?} is not a valid host name")))
    }
}

mod opt_date {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;

    pub fn serialize<S: Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&crate::timefmt::format_date(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| crate::timefmt::parse_date(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

pub(crate) mod canonical_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::timefmt::format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        crate::timefmt::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod opt_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&crate::timefmt::format(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| crate::timefmt::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests;
