//! TOTP second factor (RFC 6238 over RFC 4226 HOTP), as authenticator apps
//! implement it: HMAC-SHA1, 6 digits, 30-second steps.
//!
//! It is written out here instead of taken from a crate because it is a few
//! dozen lines over `hmac` and `sha1`, and because the two properties that
//! matter for a hospital's admin and security accounts live in the details:
//! codes are compared in constant time, and a code, once used, is refused
//! again ([`verify`] returns the step it accepted so that the caller can store
//! it), so a code read over someone's shoulder or captured by a phishing proxy
//! cannot be replayed within its validity window.
//!
//! The base32 codec (RFC 4648) is here too: it is only needed to show a secret
//! to an authenticator app and read it back, and is shorter than a dependency.

use crate::inventory::ValueError;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use std::fmt;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Seconds per time step (RFC 6238's default, and what every app assumes).
pub const PERIOD_SECS: i64 = 30;
/// Digits in the codes Pumpward issues and accepts.
pub const DIGITS: u32 = 6;
/// Bytes in a generated secret: 160 bits, the length RFC 4226 recommends and
/// the output size of SHA-1.
pub const SECRET_BYTES: usize = 20;
/// Shortest secret [`TotpSecret::from_base32`] accepts: 128 bits (RFC 4226 R6).
pub const MIN_SECRET_BYTES: usize = 16;

/// A user's shared TOTP key. `Debug` does not print it, so that it cannot end
/// up in a log line by accident.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A fresh random secret of [`SECRET_BYTES`] bytes from the operating
    /// system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    /// The raw key, for [`code_at`] and [`verify`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key as unpadded upper-case base32, the form authenticator apps
    /// accept for manual entry.
    pub fn to_base32(&self) -> String {
        base32_encode(&self.0)
    }

    /// Reads a key written by [`to_base32`](Self::to_base32) or typed by a
    /// person: case and spaces are ignored, trailing `=` padding is allowed.
    /// Refuses keys shorter than [`MIN_SECRET_BYTES`].
    pub fn from_base32(s: &str) -> Result<Self, ValueError> {
        let bytes = base32_decode(s)?;
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(ValueError::new(format!(
                "a TOTP secret has at least {MIN_SECRET_BYTES} bytes ({} base32 characters); this one has {}",
                (MIN_SECRET_BYTES * 8).div_ceil(5),
                bytes.len()
            )));
        }
        Ok(TotpSecret(bytes))
    }

    /// The Key URI that authenticator apps read from a QR code:
    /// `otpauth://totp/Issuer:account?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
    /// The issuer appears both in the label and as a parameter, as the Key URI
    /// Format asks, so that old and new apps both file the entry correctly.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let issuer = percent_encode(issuer);
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD_SECS}",
            account = percent_encode(account),
            secret = self.to_base32(),
        )
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so a space
/// becomes `%20`, never `+`, which some apps would show literally).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 §6 base32, upper case, without `=` padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buf: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32_ALPHABET[((buf >> bits) & 0x1f) as usize] as char);
        }
        buf &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(BASE32_ALPHABET[((buf << (5 - bits)) & 0x1f) as usize] as char);
    }
    out
}

/// RFC 4648 §6 base32 decoding, forgiving in what people type: lower case,
/// whitespace anywhere and trailing `=` padding are accepted. Refused: any
/// other character, a length no byte string encodes to, and non-zero unused
/// bits in the last character (so each byte string has exactly one spelling).
pub fn base32_decode(s: &str) -> Result<Vec<u8>, ValueError> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buf: u32 = 0;
    let mut bits = 0u32;
    let mut chars = 0usize;
    let mut padding = false;
    for c in s.chars() {
        if c.is_whitespace() {
            continue;
        }
        if c == '=' {
            padding = true;
            continue;
        }
        if padding {
            return Err(ValueError::new(
                "'=' may appear only at the end of a base32 string",
            ));
        }
        let v = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u32 - 'A' as u32,
            d @ '2'..='7' => d as u32 - '2' as u32 + 26,
            other => {
                return Err(ValueError::new(format!(
                    "{other:?} is not a base32 character (A–Z, 2–7)"
                )))
            }
        };
        chars += 1;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    if matches!(chars % 8, 1 | 3 | 6) {
        return Err(ValueError::new(format!(
            "a base32 string of {chars} characters is truncated"
        )));
    }
    if buf != 0 {
        return Err(ValueError::new(
            "the last base32 character has bits set past the end of the data",
        ));
    }
    Ok(out)
}

/// RFC 4226 HOTP: HMAC-SHA1 of the big-endian counter, dynamic truncation to
/// 31 bits, the low `digits` decimal digits with leading zeros. Meant for 6 to
/// 8 digits; up to 10 gives the whole truncated value, more only pads zeros.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[19] & 0x0f);
    let value = u64::from(u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]));
    let value = match 10u64.checked_pow(digits) {
        Some(m) => value % m,
        None => value,
    };
    format!("{value:0width$}", width = digits as usize)
}

/// The RFC 6238 time step containing `unix_time` (floor division, so times
/// before 1970 fall in negative steps rather than step 0).
pub fn step_at(unix_time: i64) -> i64 {
    unix_time.div_euclid(PERIOD_SECS)
}

/// The TOTP code at `unix_time`: [`hotp`] of the 30-second step. A negative
/// step is used as its two's-complement counter; no real clock gets there.
pub fn code_at(secret: &[u8], unix_time: i64, digits: u32) -> String {
    hotp(secret, step_at(unix_time) as u64, digits)
}

/// Checks a 6-digit code typed by the user at `unix_time` and returns the
/// step it matched, which the caller must store as the new `last_used_step`.
///
/// - The step before and after the current one are accepted too, for clock
///   drift and for the seconds the user took to type (RFC 6238 §5.2).
/// - Any step `<= last_used_step` is refused, even if its code matches: a code
///   works once, and after a newer one was used older ones are dead too.
/// - The code must be exactly 6 ASCII digits (no spaces, no signs).
/// - All three candidates are computed and compared in constant time, so the
///   response time says nothing about how close a guess was.
///
/// If the code matches more than one step (a one-in-a-million coincidence),
/// the latest is returned, so that the same code cannot be used twice.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_time: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_time);
    let mut found = Choice::from(0);
    let mut step: i64 = 0;
    for candidate in [now.saturating_sub(1), now, now.saturating_add(1)] {
        let fresh = last_used_step.is_none_or(|last| candidate > last);
        let expected = hotp(secret, candidate as u64, DIGITS);
        let hit = expected.as_bytes().ct_eq(code.as_bytes()) & Choice::from(u8::from(fresh));
        step.conditional_assign(&candidate, hit);
        found |= hit;
    }
    bool::from(found).then_some(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_appendix_b_sha1() {
        for (t, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(RFC_SECRET, t, 8), code, "T = {t}");
        }
    }

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            (1_284_755_224, "755224"),
            (1_094_287_082, "287082"),
            (137_359_152, "359152"),
            (1_726_969_429, "969429"),
            (1_640_338_314, "338314"),
            (868_254_676, "254676"),
            (1_918_287_922, "287922"),
            (82_162_583, "162583"),
            (673_399_871, "399871"),
            (645_520_489, "520489"),
        ];
        for (counter, (truncated, code)) in expected.into_iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), code, "count {counter}");
            // With 10 digits the whole 31-bit truncated value shows, zero-padded.
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 10),
                format!("{truncated:010}"),
                "count {counter}"
            );
        }
    }

    #[test]
    fn digits_outside_the_usual_range_do_not_panic() {
        assert_eq!(hotp(RFC_SECRET, 0, 0), "0");
        assert_eq!(hotp(RFC_SECRET, 0, 25).len(), 25);
        assert_eq!(code_at(RFC_SECRET, i64::MIN, 6).len(), 6);
    }

    #[test]
    fn steps_are_floored() {
        assert_eq!(step_at(0), 0);
        assert_eq!(step_at(29), 0);
        assert_eq!(step_at(30), 1);
        assert_eq!(step_at(-1), -1);
    }

    #[test]
    fn window_accepts_previous_current_and_next_step_only() {
        let t = 1_700_000_015; // step 56_666_667
        let now = step_at(t);
        for d in [-1, 0, 1] {
            let code = code_at(RFC_SECRET, t + d * PERIOD_SECS, 6);
            assert_eq!(
                verify(RFC_SECRET, &code, t, None),
                Some(now + d),
                "offset {d}"
            );
        }
        for d in [-3, -2, 2, 3] {
            let code = code_at(RFC_SECRET, t + d * PERIOD_SECS, 6);
            assert_eq!(verify(RFC_SECRET, &code, t, None), None, "offset {d}");
        }
    }

    #[test]
    fn a_code_is_accepted_once() {
        let t = 1_700_000_015;
        let code = code_at(RFC_SECRET, t, 6);
        let used = verify(RFC_SECRET, &code, t, None).expect("first use");
        assert_eq!(verify(RFC_SECRET, &code, t, Some(used)), None);
        assert_eq!(verify(RFC_SECRET, &code, t + 20, Some(used)), None);
        // The next step's code still works, and then the current one is dead.
        let next = code_at(RFC_SECRET, t + PERIOD_SECS, 6);
        let used2 = verify(RFC_SECRET, &next, t, Some(used)).expect("next step");
        assert_eq!(used2, used + 1);
        let prev = code_at(RFC_SECRET, t - PERIOD_SECS, 6);
        assert_eq!(verify(RFC_SECRET, &prev, t, None), Some(used - 1));
        assert_eq!(verify(RFC_SECRET, &prev, t, Some(used)), None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let t = 1_700_000_015;
        let code = code_at(RFC_SECRET, t, 6);
        let eight = code_at(RFC_SECRET, t, 8);
        for bad in [
            String::new(),
            code[..5].to_string(),
            format!("{code}0"),
            format!(" {code}"),
            format!("{} {}", &code[..3], &code[3..]),
            format!("+{}", &code[1..]),
            eight,
            "１２３４５６".to_string(), // full-width digits
            "abcdef".to_string(),
        ] {
            assert_eq!(verify(RFC_SECRET, &bad, t, None), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc4648_base32_vectors() {
        for (plain, padded) in [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ] {
            let unpadded = padded.trim_end_matches('=');
            assert_eq!(base32_encode(plain.as_bytes()), unpadded);
            assert_eq!(base32_decode(padded).unwrap(), plain.as_bytes(), "{padded}");
            assert_eq!(
                base32_decode(unpadded).unwrap(),
                plain.as_bytes(),
                "{unpadded}"
            );
            assert_eq!(
                base32_decode(&unpadded.to_lowercase()).unwrap(),
                plain.as_bytes()
            );
        }
        assert_eq!(
            base32_encode(RFC_SECRET),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn base32_input_forgives_case_and_spaces_only() {
        assert_eq!(
            base32_decode("gezd gnbv gy3t qojq GEZD GNBV GY3T QOJQ").unwrap(),
            RFC_SECRET
        );
        assert!(base32_decode("MZXW1").is_err(), "1 is not base32");
        assert!(base32_decode("MZXW6-YTB").is_err(), "hyphen");
        assert!(base32_decode("MY=A").is_err(), "data after padding");
        assert!(base32_decode("M").is_err(), "1 character encodes nothing");
        assert!(base32_decode("MZX").is_err(), "3 characters encode nothing");
        assert!(
            base32_decode("MZXW6Y").is_err(),
            "6 characters encode nothing"
        );
        assert!(base32_decode("MZ").is_err(), "non-zero unused bits");
        assert!(base32_decode("é").is_err());
    }

    #[test]
    fn secrets() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.as_bytes().len(), SECRET_BYTES);
        assert_ne!(a.as_bytes(), b.as_bytes());
        let b32 = a.to_base32();
        assert_eq!(b32.len(), 32);
        assert_eq!(
            TotpSecret::from_base32(&b32).unwrap().as_bytes(),
            a.as_bytes()
        );
        assert_eq!(format!("{a:?}"), "TotpSecret(<redacted>)");
        assert!(TotpSecret::from_base32("MZXW6YTB").is_err(), "40-bit key");
        assert!(TotpSecret::from_base32("").is_err());
    }

    #[test]
    fn otpauth_uri_is_percent_encoded() {
        let s = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(
            s.otpauth_uri("Pumpward", "alice"),
            "otpauth://totp/Pumpward:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Pumpward&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            s.otpauth_uri("St. Mary's Hospital", "j.doe@ward 4&5"),
            "otpauth://totp/St.%20Mary%27s%20Hospital:j.doe%40ward%204%265\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=St.%20Mary%27s%20Hospital\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert!(s.otpauth_uri("Krankenhaus Köln", "x").contains("K%C3%B6ln"));
        assert!(s
            .otpauth_uri("a:b", "c")
            .starts_with("otpauth://totp/a%3Ab:c?"));
    }

    proptest! {
        #[test]
        fn base32_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = base32_encode(&bytes);
            prop_assert_eq!(s.len(), (bytes.len() * 8).div_ceil(5));
            prop_assert_eq!(base32_decode(&s).unwrap(), bytes.clone());
            prop_assert_eq!(base32_decode(&s.to_lowercase()).unwrap(), bytes);
        }

        #[test]
        fn base32_decode_never_panics(s in "\\PC{0,80}") {
            let _ = base32_decode(&s);
        }

        #[test]
        fn verify_accepts_own_code_and_never_panics(
            secret in proptest::collection::vec(any::<u8>(), 0..40),
            t in -4_000_000_000i64..40_000_000_000,
            code in "\\PC{0,8}",
        ) {
            let own = code_at(&secret, t, DIGITS);
            let got = verify(&secret, &own, t, None);
            // The next step's code may coincide (one in a million); then the
            // later step is returned.
            prop_assert!(got == Some(step_at(t)) || got == Some(step_at(t) + 1), "{:?}", got);
            prop_assert_eq!(verify(&secret, &own, t, got), None, "replay");
            let _ = verify(&secret, &code, t, Some(step_at(t)));
        }
    }
}
