//! Webhook signatures: HMAC-SHA256 over the timestamp and the body.
//!
//! Every webhook request carries two headers:
//!
//! ```text
//! Pumpward-Timestamp: 1764169445
//! Pumpward-Signature: v1=5d0f…(64 hex digits)
//! ```
//!
//! The signature is `hex(HMAC-SHA256(secret, timestamp + "." + body))`,
//! over the exact body bytes. A receiver recomputes it, compares in
//! constant time and refuses a timestamp further than its tolerance from
//! its own clock (five minutes is usual), which bounds replays;
//! [`verify`] does all three. The `v1=` prefix leaves room for another
//! scheme later without ambiguity.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header with the Unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "Pumpward-Timestamp";
/// The header with `v1=<hex signature>`.
pub const SIGNATURE_HEADER: &str = "Pumpward-Signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `Pumpward-Signature` header value for `body` signed at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

/// Why a webhook request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The timestamp header is not a decimal number of seconds.
    #[error("Pumpward-Timestamp is not a Unix time in seconds")]
    BadTimestamp,
    /// The timestamp is further than the tolerance from now.
    #[error("Pumpward-Timestamp is {skew} s away from now; at most {tolerance} s allowed")]
    Stale {
        /// |now − timestamp| in seconds.
        skew: u64,
        /// The tolerance.
        tolerance: u64,
    },
    /// The signature header is not `v1=` and 64 hex digits.
    #[error("Pumpward-Signature is not v1=<64 hex digits>")]
    BadFormat,
    /// The signature does not match.
    #[error("Pumpward-Signature does not match the body")]
    Mismatch,
}

/// Checks a received request: the timestamp is within `tolerance_secs` of
/// `now` (Unix seconds) and the signature matches `body`, compared in
/// constant time (`hmac`'s `verify_slice`).
pub fn verify(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    if timestamp_header.is_empty()
        || timestamp_header.len() > 19
        || !timestamp_header.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SignatureError::BadTimestamp);
    }
    let ts: i64 = timestamp_header
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now.abs_diff(ts);
    if skew > tolerance_secs {
        return Err(SignatureError::Stale {
            skew,
            tolerance: tolerance_secs,
        });
    }
    let hex_sig = signature_header
        .strip_prefix("v1=")
        .filter(|h| h.len() == 64)
        .ok_or(SignatureError::BadFormat)?;
    let given = hex::decode(hex_sig).map_err(|_| SignatureError::BadFormat)?;
    mac(secret, ts, body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Computed independently with:
        // printf '1764169445.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            sign(b"secret", 1_764_169_445, br#"{"a":1}"#),
            "v1=7827a10bafdf9f6139fa34c5637c22b7d0d47c8432ae40e0a4a6ac77c466c819"
        );
    }

    #[test]
    fn verify_accepts_own_signature_and_refuses_changes() {
        let body = br#"{"id":"a-1"}"#;
        let sig = sign(b"k", 1000, body);
        assert_eq!(verify(b"k", "1000", &sig, body, 1100, 300), Ok(()));
        assert_eq!(
            verify(b"k", "1000", &sig, br#"{"id":"a-2"}"#, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", "1000", &sig, body, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        assert_eq!(
            verify(b"k", "1001", &sig, body, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k", "1000", &sig, body, 1301, 300),
            Err(SignatureError::Stale {
                skew: 301,
                tolerance: 300
            })
        );
        assert_eq!(
            verify(b"k", "-5", &sig, body, 1000, 300),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(b"k", "1000", &sig[3..], body, 1000, 300),
            Err(SignatureError::BadFormat)
        );
        assert_eq!(
            verify(b"k", "1000", "v1=zz", body, 1000, 300),
            Err(SignatureError::BadFormat)
        );
    }
}
