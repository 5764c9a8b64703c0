//! Which format a file is in, from its content alone (never its name).
//!
//! JSON documents are recognised by their defining members:
//! CSAF (`document.csaf_version`), CVE JSON 5 (`dataType: CVE_RECORD` or
//! `cveMetadata` + `containers`), NVD API 2.0 (`format: NVD_CVE`, or
//! `vulnerabilities[].cve`, or a single record with `id` CVE-… and
//! `vulnStatus`/`configurations`), the KEV catalog (`catalogVersion` +
//! `vulnerabilities`), CycloneDX (`bomFormat: CycloneDX`), SPDX
//! (`spdxVersion`), and the test data's NVD transcription (`records[]` with
//! `cve` + `configurations`). Text: CycloneDX XML (a `bom` element in the
//! CycloneDX namespace), SPDX tag-value (`SPDXVersion:`), EPSS CSV (the
//! `#model_version` comment or a `cve,epss,percentile` header).

use serde_json::Value;

/// A recognised input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// CSAF 2.0 advisory or VEX.
    Csaf,
    /// CVE JSON 5 record.
    CveJson5,
    /// NVD CVE API 2.0 (response or single record).
    NvdApi2,
    /// The test data's reduced transcription of NVD configurations.
    NvdTranscription,
    /// CISA KEV catalog.
    KevCatalog,
    /// FIRST EPSS CSV.
    EpssCsv,
    /// CycloneDX JSON (SBOM, HBOM or VEX).
    CycloneDxJson,
    /// CycloneDX XML.
    CycloneDxXml,
    /// SPDX JSON.
    SpdxJson,
    /// SPDX tag-value.
    SpdxTagValue,
    /// None of these.
    Unknown,
}

fn first_non_ws(bytes: &[u8]) -> Option<u8> {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    b.iter().copied().find(|c| !c.is_ascii_whitespace())
}

/// Detects the format of `bytes`.
pub fn detect(bytes: &[u8]) -> Format {
    match first_non_ws(bytes) {
        Some(b'{') => json_format(bytes),
        Some(b'<') => xml_format(bytes),
        Some(_) => text_format(bytes),
        None => Format::Unknown,
    }
}

fn json_format(bytes: &[u8]) -> Format {
    let Ok(v) = crate::json::parse_bytes(bytes) else {
        return Format::Unknown;
    };
    let Some(o) = v.as_object() else {
        return Format::Unknown;
    };
    let s = |k: &str| o.get(k).and_then(Value::as_str);
    if o.get("document")
        .and_then(|d| d.get("csaf_version"))
        .is_some()
    {
        return Format::Csaf;
    }
    if s("dataType") == Some("CVE_RECORD")
        || (o.contains_key("cveMetadata") && o.contains_key("containers"))
    {
        return Format::CveJson5;
    }
    if s("bomFormat").is_some_and(|f| f.eq_ignore_ascii_case("CycloneDX")) {
        return Format::CycloneDxJson;
    }
    if o.contains_key("spdxVersion") {
        return Format::SpdxJson;
    }
    if o.contains_key("catalogVersion") && o.contains_key("vulnerabilities") {
        return Format::KevCatalog;
    }
    let vulns_have_cve = o
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|x| x.get("cve").is_some_and(Value::is_object));
    if s("format") == Some("NVD_CVE") || vulns_have_cve {
        return Format::NvdApi2;
    }
    if s("id").is_some_and(|id| id.starts_with("CVE-"))
        && (o.contains_key("vulnStatus") || o.contains_key("configurations"))
    {
        return Format::NvdApi2;
    }
    let transcription = o
        .get("records")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|r| r.get("cve").is_some() && r.get("configurations").is_some());
    if transcription {
        return Format::NvdTranscription;
    }
    Format::Unknown
}

fn head(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned()
}

fn xml_format(bytes: &[u8]) -> Format {
    let h = head(bytes);
    if h.contains("<bom") && h.contains("cyclonedx.org/schema/bom") {
        Format::CycloneDxXml
    } else {
        Format::Unknown
    }
}

fn text_format(bytes: &[u8]) -> Format {
    let h = head(bytes);
    let mut lines = h.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return Format::Unknown;
    };
    if first.starts_with("#model_version") {
        return Format::EpssCsv;
    }
    let cols: Vec<String> = first
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    if ["cve", "epss", "percentile"]
        .iter()
        .all(|c| cols.iter().any(|x| x == c))
    {
        return Format::EpssCsv;
    }
    if h.lines()
        .any(|l| l.trim_start().starts_with("SPDXVersion:"))
    {
        return Format::SpdxTagValue;
    }
    Format::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_inputs() {
        assert_eq!(detect(b""), Format::Unknown);
        assert_eq!(detect(b"   \n"), Format::Unknown);
        assert_eq!(detect(b"{not json"), Format::Unknown);
        assert_eq!(detect(b"[1,2]"), Format::Unknown);
        assert_eq!(
            detect(br#"<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.5" version="1"/>"#),
            Format::CycloneDxXml
        );
        assert_eq!(detect(b"<html></html>"), Format::Unknown);
        assert_eq!(
            detect(b"cve,epss,percentile\nCVE-1,0.1,0.2\n"),
            Format::EpssCsv
        );
        assert_eq!(
            detect(b"\xEF\xBB\xBF{\"spdxVersion\":\"SPDX-2.3\"}"),
            Format::SpdxJson
        );
        assert_eq!(
            detect(br#"{"vulnerabilities":[{"cve":{"id":"CVE-1"}}]}"#),
            Format::NvdApi2
        );
    }
}
