//! JSON import and the canonical byte form.
//!
//! # The canonical form
//!
//! Signatures and digests are computed over bytes, so one library must have
//! exactly one byte form. [`to_canonical_json`] writes:
//!
//! - UTF-8, no byte-order mark, no white space between tokens, no trailing
//!   newline;
//! - object members in ASCII order of their keys, at every level (the
//!   model's fields are declared in that order; a test checks the output);
//! - absent optional members omitted (never `null`); `high_alert` always
//!   present; arrays in the library's order (care areas and entries keep
//!   the author's display order);
//! - every decimal quantity as a JSON **string** in its canonical decimal
//!   form ([`crate::quantity::Dec`]: optional `-`, digits, and a fraction
//!   without trailing zeros; no exponent, no `+`, `0` for zero), so no
//!   reader ever turns a dose into a binary float; integers (`version`,
//!   `max_duration_min`) as JSON numbers in plain decimal digits;
//! - units in their one spelling (`mcg/kg/min`);
//! - strings escaped minimally: `"` and `\` with a backslash, the control
//!   characters U+0000–U+001F as `\b \f \n \r \t` or `\u00XX` (lower-case
//!   hex), everything else as raw UTF-8 (no `\u` escapes for non-ASCII and
//!   no escaping of `/`). Validation forbids control characters in the
//!   library's text, so valid libraries never contain escapes other than
//!   `\"` and `\\`.
//!
//! Reading is stricter than "any JSON": unknown members, duplicate members,
//! a number where a decimal string is expected and unknown units are
//! refused, with the line and column. [`parse_library_json`] accepts any
//! white space and member order; only [`to_canonical_json`]'s output is
//! canonical, and [`crate::envelope`] refuses a payload that is not.

use crate::model::Library;

/// Largest JSON document accepted (a large real library is well under 1 MiB).
pub const MAX_JSON_BYTES: usize = 4 * 1024 * 1024;

/// Why a JSON document is not a library.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The document is larger than [`MAX_JSON_BYTES`].
    #[error("the document is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON, or not the library's shape.
    #[error("line {line}, column {column}: {message}")]
    Invalid {
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Parses a library from JSON (any formatting). The result is not yet
/// validated: call [`Library::validate`].
pub fn parse_library_json(bytes: &[u8]) -> Result<Library, JsonError> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(JsonError::TooLarge {
            len: bytes.len(),
            max: MAX_JSON_BYTES,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| JsonError::Invalid {
        line: e.line(),
        column: e.column(),
        message: shorten(&e.to_string()),
    })
}

/// The canonical bytes of a library (see the module documentation). The
/// same library always gives the same bytes.
pub fn to_canonical_json(lib: &Library) -> Vec<u8> {
    // Serialising plain structs of strings, integers and booleans into a
    // Vec cannot fail; an error would be a bug in the model's Serialize.
    serde_json::to_vec(lib).unwrap_or_default()
}

/// The library as indented JSON for people (same members and values as the
/// canonical form; not for signing).
pub fn to_pretty_json(lib: &Library) -> String {
    serde_json::to_string_pretty(lib).unwrap_or_default()
}

fn shorten(s: &str) -> String {
    // serde_json quotes the offending value; do not echo megabytes back.
    match s.char_indices().nth(300) {
        None => s.to_owned(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"{
      "version": 3, "name": "Tiny", "id": "tiny", "description": "",
      "care_areas": [{"id": "icu", "name": "ICU", "weight_kg": {"min": "30", "max": "250.0"},
        "entries": [{"drug": "heparin", "concentration": {"amount": "25000", "unit": "units", "volume_ml": "250"},
          "dosing_unit": "units/kg/h", "hard_max": "40", "soft_max": "25.00", "high_alert": true,
          "bolus": {"unit": "units/kg", "hard_max": "80"}, "advisory": "Check aPTT \"6 h\" after start"}]}]
    }"#;

    #[test]
    fn canonical_bytes_are_sorted_compact_and_stable() {
        let lib = parse_library_json(SMALL.as_bytes()).unwrap();
        lib.validate().unwrap();
        let c = to_canonical_json(&lib);
        let text = std::str::from_utf8(&c).unwrap();
        assert_eq!(
            text,
            r#"{"care_areas":[{"entries":[{"advisory":"Check aPTT \"6 h\" after start","bolus":{"hard_max":"80","unit":"units/kg"},"concentration":{"amount":"25000","unit":"units","volume_ml":"250"},"dosing_unit":"units/kg/h","drug":"heparin","hard_max":"40","high_alert":true,"soft_max":"25"}],"id":"icu","name":"ICU","weight_kg":{"max":"250","min":"30"}}],"description":"","id":"tiny","name":"Tiny","version":3}"#
        );
        // Re-reading the canonical form gives the same library and bytes.
        let again = parse_library_json(&c).unwrap();
        assert_eq!(again, lib);
        assert_eq!(to_canonical_json(&again), c);
        // Keys sorted at every level: a BTreeMap-backed Value writes the same bytes.
        let v: serde_json::Value = serde_json::from_slice(&c).unwrap();
        assert_eq!(serde_json::to_vec(&v).unwrap(), c);
        // The pretty form reads back to the same library.
        assert_eq!(
            parse_library_json(to_pretty_json(&lib).as_bytes()).unwrap(),
            lib
        );
    }

    #[test]
    fn strict_reading_with_positions() {
        let err = |s: &str| parse_library_json(s.as_bytes()).unwrap_err().to_string();
        let unknown_unit = SMALL.replace("units/kg/h", "units/kilo/h");
        let e = err(&unknown_unit);
        assert!(
            e.contains("unknown dosing unit \"units/kilo/h\"") && e.starts_with("line 5,"),
            "{e}"
        );
        let e = err(&SMALL.replace("\"hard_max\": \"40\"", "\"hard_max\": 40"));
        assert!(e.contains("a decimal number written as a string"), "{e}");
        let e = err(&SMALL.replace(
            "\"high_alert\": true",
            "\"high_alert\": true, \"hihg_alert\": false",
        ));
        assert!(e.contains("unknown field `hihg_alert`"), "{e}");
        let e = err(&SMALL.replace("\"version\": 3,", "\"version\": 3, \"version\": 4,"));
        assert!(e.contains("duplicate field `version`"), "{e}");
        let e = err(&SMALL.replace("\"40\"", "\"4e1\""));
        assert!(e.contains("not a decimal number"), "{e}");
        let e = err(&SMALL.replace("\"version\": 3", "\"version\": -3"));
        assert!(e.contains("line 2"), "{e}");
        assert!(err("").contains("line 1"));
        assert!(err("[]").contains("expected struct Library"));
        let big = vec![b' '; MAX_JSON_BYTES + 1];
        assert!(matches!(
            parse_library_json(&big),
            Err(JsonError::TooLarge { .. })
        ));
    }
}
