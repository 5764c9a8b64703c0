//! Key algorithms for keys this crate generates.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::{PkiError, Result};

/// The algorithm of a key pair the CA generates (CA keys, server keys, agent
/// keys made by [`crate::make_device_csr`]).
///
/// ECDSA P-256 is the default: every TLS stack on pumps and gateways we
/// target verifies it, signatures are small, and it is the curve NIST SP
/// 1800-8's reference build uses. P-384 is offered for sites whose policy
/// asks for 192-bit strength; Ed25519 for modern agents. RSA is deliberately
/// not generated (slow, large), though RSA device keys are certified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (`p256`).
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384 (`p384`).
    EcdsaP384,
    /// Ed25519 (`ed25519`).
    Ed25519,
}

impl KeyAlgorithm {
    /// Every algorithm, in the order shown to users.
    pub const ALL: [KeyAlgorithm; 3] = [Self::EcdsaP256, Self::EcdsaP384, Self::Ed25519];

    /// The one spelling used in configuration, CLI and API: `p256`, `p384`, `ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "p256",
            Self::EcdsaP384 => "p384",
            Self::Ed25519 => "ed25519",
        }
    }

    pub(crate) fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    pub(crate) fn generate(self) -> Result<rcgen::KeyPair> {
        rcgen::KeyPair::generate_for(self.rcgen())
            .map_err(|e| PkiError::Signing(format!("generating a {self} key: {e}")))
    }

    /// Generates a fresh key pair; returns its PKCS#8 DER (zeroized on drop).
    pub fn generate_pkcs8(self) -> Result<Zeroizing<Vec<u8>>> {
        let kp = self.generate()?;
        Ok(Zeroizing::new(kp.serialize_der()))
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = PkiError;

    /// Accepts the canonical names case-insensitively, plus the common
    /// spellings `p-256`, `p-384`, `ecdsa-p256`, `ecdsa-p384`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa-p256" => Ok(Self::EcdsaP256),
            "p384" | "p-384" | "ecdsa-p384" => Ok(Self::EcdsaP384),
            "ed25519" => Ok(Self::Ed25519),
            _ => Err(PkiError::UnknownAlgorithm(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in KeyAlgorithm::ALL {
            assert_eq!(a.to_string().parse::<KeyAlgorithm>().unwrap(), a);
            assert_eq!(
                a.as_str().to_uppercase().parse::<KeyAlgorithm>().unwrap(),
                a
            );
        }
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::EcdsaP256);
        assert_eq!(
            "P-384".parse::<KeyAlgorithm>().unwrap(),
            KeyAlgorithm::EcdsaP384
        );
        assert!(
            matches!("rsa".parse::<KeyAlgorithm>(), Err(PkiError::UnknownAlgorithm(s)) if s == "rsa")
        );
        assert!("".parse::<KeyAlgorithm>().is_err());
    }

    #[test]
    fn generates_loadable_pkcs8() {
        for a in KeyAlgorithm::ALL {
            let der = a.generate_pkcs8().unwrap();
            let kp = rcgen::KeyPair::try_from(der.as_slice()).unwrap();
            assert_eq!(kp.algorithm(), a.rcgen());
        }
    }
}
