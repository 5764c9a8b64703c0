//! Certificate serial numbers.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom as _, SystemRandom};

use crate::{PkiError, Result};

/// A certificate serial number: a positive, non-zero integer of at most 20
/// octets (RFC 5280 §4.1.2.2), held in its minimal big-endian form.
///
/// Serials are chosen by the caller so that it can record them (for
/// revocation and audit) before the certificate exists. Use
/// [`CertSerial::random`]: unpredictable serials are what stops the
/// chosen-prefix collision attacks that broke MD5 CAs, and CA/Browser Forum
/// rules ask for at least 64 random bits.
///
/// The text form ([`fmt::Display`], [`CertSerial::to_hex`]) is lowercase hex
/// without separators or leading zero bytes; it is the form stored, compared
/// and shown. [`CertSerial::from_hex`] also accepts upper case and `:`
/// separators as `openssl` prints them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertSerial(Vec<u8>);

impl CertSerial {
    /// 16 bytes from the system CSPRNG: the first byte is forced into
    /// `0x40..=0x7f` so the number is positive and always exactly 16 octets
    /// (126 random bits; the hex form is always 32 characters).
    pub fn random() -> Result<Self> {
        let mut b = [0u8; 16];
        SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| PkiError::Rng)?;
        b[0] = (b[0] & 0x3f) | 0x40;
        Ok(Self(b.to_vec()))
    }

    /// From the unsigned big-endian magnitude. Leading zero bytes are
    /// dropped; what remains must be 1–20 bytes and not zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let v = &bytes[start..];
        if v.is_empty() {
            return Err(PkiError::InvalidSerial("is zero".into()));
        }
        // DER adds a 0x00 octet when the top bit is set; that octet counts
        // toward RFC 5280's 20-octet limit.
        let encoded = v.len() + usize::from(v[0] & 0x80 != 0);
        if encoded > 20 {
            return Err(PkiError::InvalidSerial(format!(
                "is {encoded} octets when encoded; RFC 5280 allows at most 20"
            )));
        }
        Ok(Self(v.to_vec()))
    }

    /// From hex (either case; `:` separators and surrounding whitespace allowed).
    pub fn from_hex(s: &str) -> Result<Self> {
        let t: String = s.trim().chars().filter(|&c| c != ':').collect();
        if t.is_empty() {
            return Err(PkiError::InvalidSerial("is empty".into()));
        }
        if t.len() > 42 {
            return Err(PkiError::InvalidSerial(format!("{s:?} is too long")));
        }
        let t = if t.len() % 2 == 1 { format!("0{t}") } else { t };
        let bytes = hex::decode(&t)
            .map_err(|_| PkiError::InvalidSerial(format!("{s:?} is not hexadecimal")))?;
        Self::from_bytes(&bytes)
    }

    /// Lowercase hex of the minimal magnitude.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// The minimal big-endian magnitude.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn rcgen(&self) -> rcgen::SerialNumber {
        rcgen::SerialNumber::from_slice(&self.0)
    }
}

/// Canonical text of a serial read from a certificate (DER integer content
/// octets): leading zero octets dropped, lowercase hex.
pub(crate) fn serial_hex_from_der_content(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start.min(raw.len())..])
}

impl fmt::Display for CertSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CertSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertSerial({})", self.to_hex())
    }
}

impl FromStr for CertSerial {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_16_positive_octets_and_distinct() {
        let a = CertSerial::random().unwrap();
        let b = CertSerial::random().unwrap();
        assert_ne!(a, b);
        for s in [&a, &b] {
            assert_eq!(s.as_bytes().len(), 16);
            assert!((0x40..=0x7f).contains(&s.as_bytes()[0]));
            assert_eq!(s.to_hex().len(), 32);
            assert_eq!(CertSerial::from_hex(&s.to_hex()).unwrap(), *s);
        }
    }

    #[test]
    fn hex_forms() {
        let s = CertSerial::from_hex(" 00:0A:bc ").unwrap();
        assert_eq!(s.to_hex(), "0abc");
        assert_eq!(s.as_bytes(), &[0x0a, 0xbc]);
        assert_eq!("abc".parse::<CertSerial>().unwrap(), s);
        assert_eq!(format!("{s:?}"), "CertSerial(0abc)");
    }

    #[test]
    fn refuses_bad_serials() {
        for bad in [
            "",
            "00",
            "0",
            "xyz",
            "12345g",
            &"7f".repeat(21),
            &"ff".repeat(20),
        ] {
            assert!(
                matches!(CertSerial::from_hex(bad), Err(PkiError::InvalidSerial(_))),
                "{bad:?}"
            );
        }
        assert!(CertSerial::from_hex(&"7f".repeat(20)).is_ok());
        assert!(CertSerial::from_bytes(&[0, 0]).is_err());
    }

    #[test]
    fn der_content_text() {
        assert_eq!(serial_hex_from_der_content(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex_from_der_content(&[0x00]), "00");
        assert_eq!(serial_hex_from_der_content(&[]), "");
    }
}
