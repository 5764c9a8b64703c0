//! Distinguished names and device identity values.

use rcgen::{DistinguishedName, DnType, DnValue};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::X509Name;

use crate::{PkiError, Result};

/// X.520 serialNumber (2.5.4.5).
pub(crate) const OID_SERIAL_NUMBER: [u64; 4] = [2, 5, 4, 5];

/// A DN value as PrintableString when the text allows it (what X.520 asks
/// for serialNumber and what older TLS stacks parse best), else UTF8String.
pub(crate) fn dn_value(s: &str) -> DnValue {
    match rcgen::PrintableString::try_from(s) {
        Ok(p) => DnValue::PrintableString(p),
        Err(_) => DnValue::Utf8String(s.to_owned()),
    }
}

/// Converts a parsed name to rcgen's model, keeping every attribute's string
/// type so that rcgen writes the same bytes. Refuses what rcgen cannot
/// represent (multi-valued RDNs, a repeated attribute type, non-string
/// values); the probe in `Ca::from_parts` catches anything else.
pub(crate) fn to_rcgen(name: &X509Name<'_>) -> std::result::Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    let mut seen = Vec::new();
    for rdn in name.iter() {
        let attrs: Vec<_> = rdn.iter().collect();
        let [attr] = attrs[..] else {
            return Err("it has a multi-valued RDN".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("it has an attribute type OID with an arc beyond 64 bits")?
            .collect();
        let ty = DnType::from_oid(&oid);
        if seen.contains(&ty) {
            return Err(format!("attribute {} appears twice", attr.attr_type()));
        }
        seen.push(ty.clone());
        let v = attr.attr_value();
        let text = || std::str::from_utf8(v.data).map_err(|_| "a string attribute is not UTF-8");
        let value = match v.header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::PrintableString => DnValue::PrintableString(
                text()?
                    .try_into()
                    .map_err(|e| format!("PrintableString: {e}"))?,
            ),
            Tag::Ia5String => {
                DnValue::Ia5String(text()?.try_into().map_err(|e| format!("IA5String: {e}"))?)
            }
            Tag::T61String => DnValue::TeletexString(
                text()?
                    .try_into()
                    .map_err(|e| format!("TeletexString: {e}"))?,
            ),
            Tag::BmpString => DnValue::BmpString(
                rcgen::BmpString::from_utf16be(v.data.to_vec())
                    .map_err(|e| format!("BMPString: {e}"))?,
            ),
            Tag::UniversalString => DnValue::UniversalString(
                rcgen::UniversalString::from_utf32be(v.data.to_vec())
                    .map_err(|e| format!("UniversalString: {e}"))?,
            ),
            t => return Err(format!("attribute value of type {t} is not a string")),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// Asset ids as `pumpward-core` spells them: 1–64 of `A-Z a-z 0-9 . _ - :`.
/// Checked here too because the id goes into a URN and a CN.
pub(crate) fn check_asset_id(s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 64 {
        return Err(PkiError::InvalidBinding(format!(
            "asset id {s:?} must be 1 to 64 characters"
        )));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
    {
        return Err(PkiError::InvalidBinding(format!(
            "asset id {s:?} contains {c:?}; use letters, digits, '.', '_', '-' or ':'"
        )));
    }
    Ok(())
}

/// Device serial numbers: 1–64 characters (X.520's upper bound), no
/// control characters, no surrounding whitespace.
pub(crate) fn check_device_serial(s: &str) -> Result<()> {
    let n = s.chars().count();
    if n == 0 || n > 64 {
        return Err(PkiError::InvalidBinding(format!(
            "serial number {s:?} must be 1 to 64 characters"
        )));
    }
    if s.chars().any(char::is_control) || s.trim() != s {
        return Err(PkiError::InvalidBinding(format!(
            "serial number {s:?} has control characters or surrounding whitespace"
        )));
    }
    Ok(())
}

/// Parses a MAC address (`aa:bb:cc:dd:ee:ff`, `aa-bb-…`, `aabb.ccdd.eeff`
/// or 12 hex digits) into the canonical lowercase colon form. Refuses the
/// all-zero and multicast addresses, as `pumpward-core` does.
pub(crate) fn canonical_mac(s: &str) -> Option<String> {
    let t = s.trim();
    let hex: String = match t.len() {
        17 => {
            let sep = t.as_bytes()[2];
            if sep != b':' && sep != b'-' {
                return None;
            }
            let parts: Vec<&str> = t.split(sep as char).collect();
            if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
                return None;
            }
            parts.concat()
        }
        14 if t.as_bytes()[4] == b'.' && t.as_bytes()[9] == b'.' => t.split('.').collect(),
        12 => t.to_owned(),
        _ => return None,
    };
    if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let o = hex::decode(&hex).ok()?;
    if o.iter().all(|&b| b == 0) || o[0] & 1 == 1 {
        return None;
    }
    Some(
        o.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        for ok in [
            "AA:BB:CC:DD:EE:F0",
            "aa-bb-cc-dd-ee-f0",
            "aabb.ccdd.eef0",
            "aabbccddeef0",
        ] {
            assert_eq!(
                canonical_mac(ok).as_deref(),
                Some("aa:bb:cc:dd:ee:f0"),
                "{ok}"
            );
        }
        for bad in [
            "",
            "00:00:00:00:00:00",
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:gg",
            "aa.bb.cc.dd.ee.f0",
            "é1:bb:cc:dd:ee:f0",
        ] {
            assert_eq!(canonical_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn asset_ids_and_serials() {
        assert!(check_asset_id("PUMP-0001").is_ok());
        assert!(check_asset_id("a.b_c-d:e").is_ok());
        for bad in ["", "has space", "a/b", &"x".repeat(65), "ünï"] {
            assert!(check_asset_id(bad).is_err(), "{bad}");
        }
        assert!(check_device_serial("SN 123_#").is_ok());
        for bad in ["", " SN1", "SN1\n", &"9".repeat(65)] {
            assert!(check_device_serial(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn printable_when_possible() {
        assert!(matches!(dn_value("SN-123"), DnValue::PrintableString(_)));
        assert!(matches!(dn_value("SN_123"), DnValue::Utf8String(_)));
    }
}
