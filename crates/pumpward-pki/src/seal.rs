//! Private keys at rest: AES-256-GCM under a key-encryption key (KEK).
//!
//! # Format (version 1)
//!
//! ```text
//! -----BEGIN PUMPWARD ENCRYPTED KEY-----
//! base64( header || ciphertext || GCM tag )
//! -----END PUMPWARD ENCRYPTED KEY-----
//!
//! header (50 bytes):
//!   0      version      1
//!   1      kdf          1 = argon2id(passphrase), 2 = HKDF-SHA256(key file)
//!   2..14  kdf params   argon2id m_cost KiB, t_cost, p_cost (u32 BE each); zero for HKDF
//!   14..30 salt         16 random bytes, fresh for every seal
//!   30..38 check        HMAC-SHA256(blob key, "pumpward kek check v1")[..8]
//!   38..50 nonce        12 random bytes
//! ```
//!
//! Security decisions:
//! - **The whole header is the AEAD's associated data**, so a changed
//!   version, KDF, parameter, salt, check value or nonce makes opening fail;
//!   nothing in the header can be swapped without detection.
//! - **Every seal derives a fresh blob key** from the KEK and a random salt
//!   (argon2id for passphrases, HKDF for key files). Nonces therefore never
//!   repeat under one AES key, whatever the number of seals.
//! - **The KDF parameters are stored**, so raising the cost later still opens
//!   old blobs, and they are **bounded on open** (at most 1 GiB, 16 passes,
//!   16 lanes), so a doctored blob cannot make the server allocate or spin
//!   without limit.
//! - **The check value distinguishes "wrong KEK" from "tampered"**: a GCM
//!   failure alone cannot tell the two apart, and an operator who typed the
//!   wrong passphrase needs a different message from one whose key file was
//!   altered. The value is 64 bits of a PRF under the 256-bit blob key, so it
//!   reveals nothing usable about the key; an attacker who can alter the blob
//!   can at most turn "tampered" into "wrong KEK", never open it.
//! - The plaintext is returned in a [`Zeroizing`] buffer.

use std::fmt;

use base64::Engine as _;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::{PkiError, Result};

/// The PEM-style label of a sealed key.
pub const SEALED_KEY_LABEL: &str = "PUMPWARD ENCRYPTED KEY";

const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const KDF_HKDF_SHA256: u8 = 2;
const SALT_LEN: usize = 16;
const CHECK_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 2 + 12 + SALT_LEN + CHECK_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Largest private key sealed or opened (PKCS#8 of RSA-8192 is under 5 KiB).
const MAX_PLAINTEXT: usize = 16 * 1024;
const MAX_SEALED_TEXT: usize = 64 * 1024;

/// Argon2id cost for new seals: 64 MiB, 3 passes, 1 lane. Above OWASP's
/// minimum (19 MiB, t=2): the KEK is opened once at server start, so a
/// second of work is affordable and multiplies an offline attacker's cost.
const ARGON2_M_KIB: u32 = 64 * 1024;
const ARGON2_T: u32 = 3;
const ARGON2_P: u32 = 1;
const ARGON2_MAX_M_KIB: u32 = 1024 * 1024;
const ARGON2_MAX_T: u32 = 16;
const ARGON2_MAX_P: u32 = 16;

/// Shortest passphrase accepted. A passphrase protects the CA's keys against
/// anyone who copies the database or a backup; argon2id slows guessing, but
/// cannot make a short passphrase strong.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// A key-encryption key: what seals and opens private keys at rest.
///
/// It must not be stored beside the sealed keys — that is the point. A
/// passphrase is typed or injected at start; a key file lives on a
/// different volume (a mounted secret) from the database.
pub struct Kek(KekInner);

enum KekInner {
    Passphrase(Zeroizing<String>),
    KeyFile(Zeroizing<[u8; 32]>),
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.write_str(match self.0 {
            KekInner::Passphrase(_) => "Kek(passphrase)",
            KekInner::KeyFile(_) => "Kek(key file)",
        })
    }
}

impl Kek {
    /// A KEK from a passphrase of at least [`MIN_PASSPHRASE_CHARS`]
    /// characters. The passphrase is used as given (no trimming: a trailing
    /// space is part of it).
    pub fn from_passphrase(passphrase: &str) -> Result<Self> {
        let len = passphrase.chars().count();
        if len < MIN_PASSPHRASE_CHARS {
            return Err(PkiError::WeakPassphrase {
                len,
                min: MIN_PASSPHRASE_CHARS,
            });
        }
        Ok(Self(KekInner::Passphrase(Zeroizing::new(
            passphrase.to_owned(),
        ))))
    }

    /// A KEK from the contents of a key file: exactly 32 raw bytes, or 64 hex
    /// digits, or the base64 of 32 bytes (text forms may end in a newline).
    ///
    /// Refused: anything else, an all-zero key, and 32 bytes that are all
    /// printable ASCII — that is a short text (a password in a file, or a
    /// 128-bit key in hex), not 256 random bits; a random key is all
    /// printable with probability about 10⁻¹⁴.
    pub fn from_key_file_bytes(bytes: &[u8]) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() == 32 {
            if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                return Err(PkiError::BadKeyFile(
                    "32 printable characters: a text, not 32 random bytes; \
                     use 64 hex digits or the base64 of 32 bytes"
                        .into(),
                ));
            }
            key.copy_from_slice(bytes);
        } else {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| {
                    PkiError::BadKeyFile(format!(
                        "{} bytes of binary data; a binary key file must be exactly 32 bytes",
                        bytes.len()
                    ))
                })?
                .trim_matches(|c: char| c.is_ascii_whitespace());
            let decoded = Zeroizing::new(if text.len() == 64 {
                hex::decode(text).map_err(|_| {
                    PkiError::BadKeyFile("64 characters that are not all hex digits".into())
                })?
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| {
                        PkiError::BadKeyFile(format!(
                            "{} characters that are neither 64 hex digits nor base64",
                            text.len()
                        ))
                    })?
            });
            if decoded.len() != 32 {
                return Err(PkiError::BadKeyFile(format!(
                    "base64 of {} bytes; 32 are required",
                    decoded.len()
                )));
            }
            key.copy_from_slice(&decoded);
        }
        if key.iter().all(|&b| b == 0) {
            return Err(PkiError::BadKeyFile("the key is all zeros".into()));
        }
        Ok(Self(KekInner::KeyFile(key)))
    }

    /// Contents for a new key file: 64 lowercase hex digits of 32 bytes from
    /// the system CSPRNG, and a newline.
    pub fn generate_key_file() -> Result<Zeroizing<String>> {
        let mut k = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(k.as_mut())
            .map_err(|_| PkiError::Rng)?;
        let mut s = Zeroizing::new(hex::encode(k.as_ref()));
        s.push('\n');
        Ok(s)
    }

    fn kind(&self) -> &'static str {
        kdf_name(self.kdf_id())
    }

    fn kdf_id(&self) -> u8 {
        match self.0 {
            KekInner::Passphrase(_) => KDF_ARGON2ID,
            KekInner::KeyFile(_) => KDF_HKDF_SHA256,
        }
    }

    /// The blob key for one sealed key.
    fn blob_key(&self, params: [u32; 3], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let mut out = Zeroizing::new([0u8; 32]);
        match &self.0 {
            KekInner::Passphrase(p) => {
                let [m, t, par] = params;
                if m > ARGON2_MAX_M_KIB || t > ARGON2_MAX_T || par > ARGON2_MAX_P {
                    return Err(PkiError::SealedKeyMalformed(format!(
                        "argon2id parameters m={m} KiB t={t} p={par} exceed the limits"
                    )));
                }
                let params = argon2::Params::new(m, t, par, Some(32)).map_err(|e| {
                    PkiError::SealedKeyMalformed(format!("argon2id parameters: {e}"))
                })?;
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(p.as_bytes(), salt, out.as_mut())
                    .map_err(|e| PkiError::SealedKeyMalformed(format!("argon2id: {e}")))?;
            }
            KekInner::KeyFile(k) => {
                if params != [0, 0, 0] {
                    return Err(PkiError::SealedKeyMalformed(
                        "KDF parameters set for HKDF".into(),
                    ));
                }
                hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
                    .extract(k.as_ref())
                    .expand(&[b"pumpward sealed key v1"], hkdf::HKDF_SHA256)
                    .and_then(|okm| okm.fill(out.as_mut()))
                    .map_err(|_| PkiError::SealedKeyMalformed("HKDF failed".into()))?;
            }
        }
        Ok(out)
    }
}

fn kdf_name(id: u8) -> &'static str {
    match id {
        KDF_ARGON2ID => "passphrase",
        KDF_HKDF_SHA256 => "key file",
        _ => "unknown KDF",
    }
}

fn check_value(blob_key: &[u8; 32]) -> [u8; CHECK_LEN] {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, blob_key),
        b"pumpward kek check v1",
    );
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&tag.as_ref()[..CHECK_LEN]);
    out
}

fn aead_key(blob_key: &[u8; 32]) -> Result<LessSafeKey> {
    UnboundKey::new(&aead::AES_256_GCM, blob_key)
        .map(LessSafeKey::new)
        .map_err(|_| PkiError::Signing("AES-256-GCM key setup failed".into()))
}

/// Seals a PKCS#8 DER private key under `kek`; returns the PEM-style text.
pub fn seal_private_key(pkcs8_der: &[u8], kek: &Kek) -> Result<String> {
    if pkcs8_der.is_empty() || pkcs8_der.len() > MAX_PLAINTEXT {
        return Err(PkiError::InvalidPrivateKey(format!(
            "{} bytes; expected 1 to {MAX_PLAINTEXT}",
            pkcs8_der.len()
        )));
    }
    let rng = SystemRandom::new();
    let mut header = [0u8; HEADER_LEN];
    header[0] = VERSION;
    header[1] = kek.kdf_id();
    let params = match kek.0 {
        KekInner::Passphrase(_) => [ARGON2_M_KIB, ARGON2_T, ARGON2_P],
        KekInner::KeyFile(_) => [0, 0, 0],
    };
    for (i, p) in params.iter().enumerate() {
        header[2 + 4 * i..6 + 4 * i].copy_from_slice(&p.to_be_bytes());
    }
    rng.fill(&mut header[14..30]).map_err(|_| PkiError::Rng)?;
    rng.fill(&mut header[38..50]).map_err(|_| PkiError::Rng)?;
    let blob_key = kek.blob_key(params, &header[14..30])?;
    header[30..38].copy_from_slice(&check_value(&blob_key));

    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&header[38..50]);
    let mut buf = Zeroizing::new(Vec::with_capacity(HEADER_LEN + pkcs8_der.len() + TAG_LEN));
    buf.extend_from_slice(pkcs8_der);
    aead_key(&blob_key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header[..]),
            &mut *buf,
        )
        .map_err(|_| PkiError::Signing("AES-256-GCM seal failed".into()))?;
    let mut blob = header.to_vec();
    blob.extend_from_slice(&buf);
    Ok(crate::pem_encode(SEALED_KEY_LABEL, &blob))
}

/// Opens a key sealed by [`seal_private_key`]; returns the PKCS#8 DER.
///
/// Errors: [`PkiError::WrongKek`] for a wrong passphrase or key file,
/// [`PkiError::KekKindMismatch`] for a passphrase where a key file was used
/// (or the reverse), [`PkiError::SealedKeyTampered`] when the KEK is right
/// but the blob was altered, [`PkiError::SealedKeyMalformed`] or
/// [`PkiError::SealedKeyVersion`] for text that is not a sealed key.
pub fn open_private_key(sealed: &str, kek: &Kek) -> Result<Zeroizing<Vec<u8>>> {
    let blob = unarmor(sealed)?;
    if blob.len() < HEADER_LEN + TAG_LEN + 1 {
        return Err(PkiError::SealedKeyMalformed(format!(
            "{} bytes; too short",
            blob.len()
        )));
    }
    let (header, ct) = blob.split_at(HEADER_LEN);
    if header[0] != VERSION {
        return Err(PkiError::SealedKeyVersion(header[0]));
    }
    let kdf = header[1];
    if kdf != KDF_ARGON2ID && kdf != KDF_HKDF_SHA256 {
        return Err(PkiError::SealedKeyMalformed(format!(
            "unknown KDF id {kdf}"
        )));
    }
    if kdf != kek.kdf_id() {
        return Err(PkiError::KekKindMismatch {
            sealed_with: kdf_name(kdf),
            given: kek.kind(),
        });
    }
    let mut params = [0u32; 3];
    for (i, p) in params.iter_mut().enumerate() {
        let mut b = [0u8; 4];
        b.copy_from_slice(&header[2 + 4 * i..6 + 4 * i]);
        *p = u32::from_be_bytes(b);
    }
    let blob_key = kek.blob_key(params, &header[14..30])?;
    let expected = check_value(&blob_key);
    // Constant-time comparison, though the value is not secret in itself.
    let diff = expected
        .iter()
        .zip(&header[30..38])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(PkiError::WrongKek);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&header[38..50]);
    let mut buf = Zeroizing::new(ct.to_vec());
    let plain_len = aead_key(&blob_key)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut buf[..],
        )
        .map_err(|_| PkiError::SealedKeyTampered)?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

/// The bytes inside the BEGIN/END lines. Strict about the label and the
/// base64; lenient about line lengths, CRLF and surrounding whitespace.
fn unarmor(text: &str) -> Result<Vec<u8>> {
    if text.len() > MAX_SEALED_TEXT {
        return Err(PkiError::SealedKeyMalformed("larger than 64 KiB".into()));
    }
    let begin = format!("-----BEGIN {SEALED_KEY_LABEL}-----");
    let end = format!("-----END {SEALED_KEY_LABEL}-----");
    let t = text.trim();
    let body = t
        .strip_prefix(begin.as_str())
        .ok_or_else(|| PkiError::SealedKeyMalformed(format!("does not start with {begin}")))?
        .strip_suffix(end.as_str())
        .ok_or_else(|| PkiError::SealedKeyMalformed(format!("does not end with {end}")))?;
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| PkiError::SealedKeyMalformed(format!("base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASS: &str = "correct horse battery staple";

    fn key_file_kek() -> Kek {
        Kek::from_key_file_bytes(Kek::generate_key_file().unwrap().as_bytes()).unwrap()
    }

    #[test]
    fn passphrase_round_trip_and_wrong_passphrase() {
        let kek = Kek::from_passphrase(PASS).unwrap();
        let sealed = seal_private_key(b"secret pkcs8", &kek).unwrap();
        assert!(sealed.starts_with("-----BEGIN PUMPWARD ENCRYPTED KEY-----\n"));
        assert!(sealed.ends_with("-----END PUMPWARD ENCRYPTED KEY-----\n"));
        assert!(!sealed.contains("secret"));
        assert_eq!(
            &open_private_key(&sealed, &kek).unwrap()[..],
            b"secret pkcs8"
        );
        let wrong = Kek::from_passphrase("correct horse battery stapler").unwrap();
        assert!(matches!(
            open_private_key(&sealed, &wrong),
            Err(PkiError::WrongKek)
        ));
        // CRLF line ends and surrounding whitespace still open.
        let crlf = format!("\n  {}  \n", sealed.replace('\n', "\r\n"));
        assert_eq!(&open_private_key(&crlf, &kek).unwrap()[..], b"secret pkcs8");
    }

    #[test]
    fn key_file_round_trip_fresh_salt_and_nonce() {
        let kek = key_file_kek();
        let a = seal_private_key(b"k", &kek).unwrap();
        let b = seal_private_key(b"k", &kek).unwrap();
        assert_ne!(a, b, "salt and nonce are fresh for every seal");
        assert_eq!(&open_private_key(&a, &kek).unwrap()[..], b"k");
        assert!(matches!(
            open_private_key(&a, &key_file_kek()),
            Err(PkiError::WrongKek)
        ));
    }

    #[test]
    fn kind_mismatch_is_named() {
        let sealed = seal_private_key(b"k", &key_file_kek()).unwrap();
        let e = open_private_key(&sealed, &Kek::from_passphrase(PASS).unwrap()).unwrap_err();
        assert!(matches!(
            e,
            PkiError::KekKindMismatch {
                sealed_with: "key file",
                given: "passphrase"
            }
        ));
    }

    fn blob_of(sealed: &str) -> Vec<u8> {
        unarmor(sealed).unwrap()
    }

    fn rearmor(blob: &[u8]) -> String {
        crate::pem_encode(SEALED_KEY_LABEL, blob)
    }

    #[test]
    fn tampering_is_detected_for_every_byte_region() {
        let kek = key_file_kek();
        let sealed = seal_private_key(&[7u8; 40], &kek).unwrap();
        let blob = blob_of(&sealed);
        for i in 0..blob.len() {
            let mut b = blob.clone();
            b[i] ^= 0x01;
            let r = open_private_key(&rearmor(&b), &kek);
            let e = r.expect_err("a flipped bit must not open");
            match i {
                0 => assert!(matches!(e, PkiError::SealedKeyVersion(0)), "{i}: {e}"),
                1 => assert!(
                    matches!(
                        e,
                        PkiError::SealedKeyMalformed(_) | PkiError::KekKindMismatch { .. }
                    ),
                    "{i}: {e}"
                ),
                2..=13 => assert!(matches!(e, PkiError::SealedKeyMalformed(_)), "{i}: {e}"),
                // A changed salt or check value derives/compares a different key.
                14..=37 => assert!(matches!(e, PkiError::WrongKek), "{i}: {e}"),
                _ => assert!(matches!(e, PkiError::SealedKeyTampered), "{i}: {e}"),
            }
        }
        // Truncation, extension, garbage.
        assert!(open_private_key(&rearmor(&blob[..blob.len() - 1]), &kek).is_err());
        let mut longer = blob.clone();
        longer.push(0);
        assert!(matches!(
            open_private_key(&rearmor(&longer), &kek),
            Err(PkiError::SealedKeyTampered)
        ));
        assert!(matches!(
            open_private_key(&rearmor(&blob[..20]), &kek),
            Err(PkiError::SealedKeyMalformed(_))
        ));
        for bad in [
            "",
            "garbage",
            "-----BEGIN PUMPWARD ENCRYPTED KEY-----\n!!!!\n-----END PUMPWARD ENCRYPTED KEY-----",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            &sealed.replace("-----END", "-----FIN"),
        ] {
            assert!(
                matches!(
                    open_private_key(bad, &kek),
                    Err(PkiError::SealedKeyMalformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn doctored_argon2_cost_is_refused_without_running_it() {
        let kek = Kek::from_passphrase(PASS).unwrap();
        let mut blob = blob_of(&seal_private_key(b"k", &kek).unwrap());
        blob[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        let e = open_private_key(&rearmor(&blob), &kek).unwrap_err();
        assert!(
            matches!(e, PkiError::SealedKeyMalformed(ref m) if m.contains("limits")),
            "{e}"
        );
    }

    #[test]
    fn passphrase_rules() {
        assert!(matches!(
            Kek::from_passphrase("short"),
            Err(PkiError::WeakPassphrase { len: 5, min: 12 })
        ));
        assert!(Kek::from_passphrase("").is_err());
        // Characters, not bytes.
        assert!(Kek::from_passphrase("ééééééééééé").is_err());
        assert_eq!(
            format!("{:?}", Kek::from_passphrase(PASS).unwrap()),
            "Kek(passphrase)"
        );
    }

    #[test]
    fn key_file_forms() {
        let raw: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0x80).collect();
        let hex_form = format!("{}\n", hex::encode(&raw));
        let b64_form = format!(
            "{}\r\n",
            base64::engine::general_purpose::STANDARD.encode(&raw)
        );
        let sealed = seal_private_key(b"k", &Kek::from_key_file_bytes(&raw).unwrap()).unwrap();
        for form in [
            &raw[..],
            hex_form.as_bytes(),
            b64_form.as_bytes(),
            hex_form.to_uppercase().as_bytes(),
        ] {
            let kek = Kek::from_key_file_bytes(form).unwrap();
            assert_eq!(&open_private_key(&sealed, &kek).unwrap()[..], b"k");
        }
        for bad in [
            &b""[..],
            &[1u8; 31][..],
            &[0u8; 32][..],
            b"0123456789abcdef0123456789abcdef", // 32 printable characters
            &b"zz".repeat(32)[..],
            b"aGVsbG8=",
            &[0xffu8; 40][..],
        ] {
            assert!(
                matches!(Kek::from_key_file_bytes(bad), Err(PkiError::BadKeyFile(_))),
                "{bad:?}"
            );
        }
        let generated = Kek::generate_key_file().unwrap();
        assert_eq!(generated.len(), 65);
        assert_eq!(
            format!(
                "{:?}",
                Kek::from_key_file_bytes(generated.as_bytes()).unwrap()
            ),
            "Kek(key file)"
        );
    }

    #[test]
    fn plaintext_size_limits() {
        let kek = key_file_kek();
        assert!(matches!(
            seal_private_key(b"", &kek),
            Err(PkiError::InvalidPrivateKey(_))
        ));
        assert!(seal_private_key(&vec![1u8; MAX_PLAINTEXT + 1], &kek).is_err());
        assert!(seal_private_key(&vec![1u8; MAX_PLAINTEXT], &kek).is_ok());
    }
}
