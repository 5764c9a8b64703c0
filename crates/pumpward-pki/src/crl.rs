//! Revocation: reasons and entries for [`crate::Ca::crl`].

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::{PkiError, Result};

/// Why a certificate was revoked: the reason codes of RFC 5280 §5.3.1.
///
/// Text forms are kebab case (`key-compromise`); parsing also accepts
/// snake case, the RFC's camel case (`keyCompromise`) and any letter case.
/// [`RevocationReason::Unspecified`] is written to a CRL *without* a reason
/// code extension, as RFC 5280 asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// unspecified (0).
    Unspecified,
    /// keyCompromise (1): the device's private key is known or suspected lost.
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3): e.g. the pump moved to another organisation.
    AffiliationChanged,
    /// superseded (4): replaced by a newer certificate (re-enrollment).
    Superseded,
    /// cessationOfOperation (5): the pump was decommissioned.
    CessationOfOperation,
    /// certificateHold (6): suspended, e.g. a pump reported missing.
    CertificateHold,
    /// removeFromCRL (8): only meaningful in delta CRLs.
    RemoveFromCrl,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
    /// aACompromise (10).
    AaCompromise,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [RevocationReason; 10] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::RemoveFromCrl,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The kebab-case names, in the order of [`RevocationReason::ALL`].
    pub const NAMES: [&'static str; 10] = [
        "unspecified",
        "key-compromise",
        "ca-compromise",
        "affiliation-changed",
        "superseded",
        "cessation-of-operation",
        "certificate-hold",
        "remove-from-crl",
        "privilege-withdrawn",
        "aa-compromise",
    ];

    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[Self::ALL.iter().position(|&r| r == self).unwrap_or(0)]
    }

    /// The CRLReason code (RFC 5280 §5.3.1); 7 is unused.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::RemoveFromCrl => 8,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    /// The reason for a CRLReason code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub(crate) fn rcgen(self) -> Option<rcgen::RevocationReason> {
        use rcgen::RevocationReason as R;
        Some(match self {
            Self::Unspecified => return None,
            Self::KeyCompromise => R::KeyCompromise,
            Self::CaCompromise => R::CaCompromise,
            Self::AffiliationChanged => R::AffiliationChanged,
            Self::Superseded => R::Superseded,
            Self::CessationOfOperation => R::CessationOfOperation,
            Self::CertificateHold => R::CertificateHold,
            Self::RemoveFromCrl => R::RemoveFromCrl,
            Self::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
            Self::AaCompromise => R::AaCompromise,
        })
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RevocationReason {
    type Err = PkiError;
    fn from_str(s: &str) -> Result<Self> {
        // Compare with separators removed and letters folded, so that
        // key-compromise, key_compromise, keyCompromise and KEY-COMPROMISE
        // are one reason.
        let fold = |t: &str| -> String {
            t.chars()
                .filter(|c| !matches!(c, '-' | '_' | ' '))
                .flat_map(char::to_lowercase)
                .collect()
        };
        let want = fold(s.trim());
        Self::ALL
            .into_iter()
            .zip(Self::NAMES)
            .find(|(_, n)| fold(n) == want)
            .map(|(r, _)| r)
            .ok_or_else(|| PkiError::UnknownRevocationReason(s.to_owned()))
    }
}

/// One revoked certificate for [`crate::Ca::crl`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial number in hex (as [`crate::CertSerial`]
    /// prints it; upper case and `:` separators are accepted too).
    pub serial_hex: String,
    /// When the CA processed the revocation.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_and_spellings() {
        for (r, n) in RevocationReason::ALL
            .into_iter()
            .zip(RevocationReason::NAMES)
        {
            assert_eq!(r.to_string(), n);
            assert_eq!(n.parse::<RevocationReason>().unwrap(), r);
            assert_eq!(n.replace('-', "_").parse::<RevocationReason>().unwrap(), r);
            assert_eq!(n.to_uppercase().parse::<RevocationReason>().unwrap(), r);
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
        }
        assert_eq!(
            "keyCompromise".parse::<RevocationReason>().unwrap(),
            RevocationReason::KeyCompromise
        );
        assert_eq!(
            "cACompromise".parse::<RevocationReason>().unwrap(),
            RevocationReason::CaCompromise
        );
        assert_eq!(
            "removeFromCRL".parse::<RevocationReason>().unwrap(),
            RevocationReason::RemoveFromCrl
        );
        assert_eq!(RevocationReason::from_code(7), None);
        let e = "stolen".parse::<RevocationReason>().unwrap_err();
        assert!(e.to_string().contains("key-compromise"), "{e}");
        assert!(RevocationReason::Unspecified.rcgen().is_none());
        assert!(RevocationReason::Superseded.rcgen().is_some());
    }
}
