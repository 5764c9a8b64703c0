//! Access: roles, the permission matrix, password policy and TOTP.
//!
//! The matrix is the single source of truth for who may do what: every API
//! route and page names the [`Permission`] it needs, and a test walks every
//! route with every role against [`Role::allows`].

pub mod password;
pub mod throttle;
pub mod totp;

use crate::inventory::ValueError;

string_enum!(
    /// A user's job in the hospital, which decides what Pumpward lets them do.
    Role, "role" {
        Admin = "admin",
        Security = "security",
        Biomed = "biomed",
        Pharmacist = "pharmacist",
        Clinician = "clinician",
        Auditor = "auditor",
        Vendor = "vendor",
    }
);

string_enum!(
    /// One thing a user may be allowed to do.
    Permission, "permission" {
        /// See assets, models and their lifecycle history.
        InventoryRead = "inventory.read",
        /// Create and edit assets and models, import CSV.
        InventoryWrite = "inventory.write",
        /// Move an asset through its lifecycle (includes quarantine).
        InventoryTransition = "inventory.transition",
        /// Manage users, roles, MFA policy.
        UsersManage = "users.manage",
        /// Read the audit trail and verify its chain.
        AuditRead = "audit.read",
        /// Read Prometheus metrics.
        MetricsRead = "metrics.read",
        /// Create API tokens for oneself.
        TokensOwn = "tokens.own",
        /// See device certificates, CRLs and the connected fleet.
        PkiRead = "pki.read",
        /// Create one-time enrollment codes and issue device certificates.
        PkiEnroll = "pki.enroll",
        /// Revoke certificates.
        PkiRevoke = "pki.revoke",
        /// See findings (certificate expiry; later vulnerability and
        /// network findings) with their evidence.
        FindingsRead = "findings.read",
        /// See drug libraries, their versions, diffs and signed envelopes.
        LibraryRead = "library.read",
        /// Create and edit draft drug libraries, submit them for review.
        LibraryAuthor = "library.author",
        /// Approve or reject a submitted library (never one's own).
        LibraryApprove = "library.approve",
        /// Publish (sign) an approved library; roll back by republishing.
        LibraryPublish = "library.publish",
        /// See imported vulnerability advisories, their CVEs and product
        /// statuses.
        VulnRead = "vuln.read",
        /// Import vulnerability advisories (CSAF, KEV, NVD, CVE 5, EPSS).
        VulnManage = "vuln.manage",
        /// Take remediation steps on vulnerability findings and record
        /// compensating controls (vendor patch, schedule, deploy, accept a risk).
        VulnRemediate = "vuln.remediate",
        /// Record that a vendor patch was validated on a bench device.
        VulnValidatePatch = "vuln.validate_patch",
        /// See the alerts the detection rules raised, with their evidence.
        AlertsRead = "alerts.read",
        /// Work alerts: acknowledge, resolve, mark as false positive, comment.
        AlertsManage = "alerts.manage",
        /// Change the detection rules' settings (enabled, severity,
        /// threshold, window) that the running engine uses.
        DetectionConfigure = "detection.configure",
        /// See the network zone policy, its versions, the observed conduits
        /// and the unknown devices seen on the network.
        NetworkRead = "network.read",
        /// Save a new version of the network zone policy.
        NetworkManage = "network.manage",
        /// Take a response on an asset (quarantine, release), confirm or
        /// refuse a pending automatic one (never one's own request).
        ResponseManage = "response.manage",
    }
);

impl Role {
    /// The permission matrix. Kept as one `match` so it reads as the table in
    /// `docs/PERMISSIONS.md`; a test checks the two agree.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match p {
            InventoryRead => matches!(
                self,
                Admin | Security | Biomed | Pharmacist | Clinician | Auditor
            ),
            InventoryWrite => matches!(self, Admin | Biomed),
            InventoryTransition => matches!(self, Admin | Biomed | Security),
            UsersManage => matches!(self, Admin),
            AuditRead => matches!(self, Admin | Security | Auditor),
            MetricsRead => matches!(self, Admin | Security),
            TokensOwn => matches!(self, Admin | Security | Biomed | Pharmacist | Auditor),
            PkiRead => matches!(self, Admin | Security | Biomed | Auditor),
            PkiEnroll => matches!(self, Admin | Biomed),
            PkiRevoke => matches!(self, Admin | Security | Biomed),
            FindingsRead => matches!(self, Admin | Security | Biomed | Auditor),
            LibraryRead => matches!(
                self,
                Admin | Security | Biomed | Pharmacist | Clinician | Auditor
            ),
            LibraryAuthor => matches!(self, Pharmacist),
            LibraryApprove => matches!(self, Pharmacist),
            LibraryPublish => matches!(self, Pharmacist | Admin),
            // Clinicians see which advisories concern their pumps; only
            // security and admins change the advisory set.
            VulnRead => matches!(self, Admin | Security | Biomed | Auditor | Clinician),
            VulnManage => matches!(self, Admin | Security),
            VulnRemediate => matches!(self, Admin | Security | Biomed),
            // Validating a patch on the bench is biomedical engineering's.
            VulnValidatePatch => matches!(self, Biomed),
            AlertsRead => matches!(self, Admin | Security | Biomed | Auditor),
            // Triage is the SOC's; biomed sees alerts to swap pumps.
            AlertsManage => matches!(self, Admin | Security),
            // Turning a rule off blinds the SOC to an attack: a permission
            // of its own, so that working alerts does not imply it.
            DetectionConfigure => matches!(self, Admin | Security),
            NetworkRead => matches!(self, Admin | Security | Biomed | Auditor),
            // The zone policy is the firewall's and the NAC's: security's.
            NetworkManage => matches!(self, Admin | Security),
            // The SOC quarantines on evidence; biomed, who swaps the pump
            // and knows the clinical situation, may too, and may release.
            ResponseManage => matches!(self, Admin | Security | Biomed),
        }
    }

    /// Roles whose members must enrol TOTP unless an admin changes the policy.
    pub fn mfa_required_by_default(self) -> bool {
        matches!(self, Role::Admin | Role::Security)
    }

    /// What the role is for, in a sentence, for the user-administration page.
    pub fn description(self) -> &'static str {
        match self {
            Role::Admin => "Manages users, roles and settings; full access.",
            Role::Security => "IT security / SOC analyst: findings, network policy, alerts, audit.",
            Role::Biomed => {
                "Biomedical / clinical engineer: onboards, maintains and retires pumps."
            }
            Role::Pharmacist => "Authors and approves drug libraries; reads the inventory.",
            Role::Clinician => "Nurse manager / safety officer: dashboards, read-only inventory.",
            Role::Auditor => "Compliance officer: read-only inventory and audit trail.",
            Role::Vendor => "Pump vendor service engineer: time-boxed, approved access only.",
        }
    }
}

/// Checks a username: 3–64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_username(s: &str) -> Result<String, ValueError> {
    let s = s.trim();
    if !(3..=64).contains(&s.len()) {
        return Err(ValueError::new("a username has 3 to 64 characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err(ValueError::new(
            "a username uses only letters, digits, '.', '_', '-' and '@'",
        ));
    }
    Ok(s.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_see_nothing_by_default() {
        for &p in Permission::ALL {
            assert!(!Role::Vendor.allows(p), "{p}");
        }
    }

    #[test]
    fn auditors_only_read() {
        for &p in Permission::ALL {
            let read_only = matches!(
                p,
                Permission::InventoryRead
                    | Permission::AuditRead
                    | Permission::TokensOwn
                    | Permission::PkiRead
                    | Permission::FindingsRead
                    | Permission::LibraryRead
                    | Permission::VulnRead
                    | Permission::AlertsRead
                    | Permission::NetworkRead
            );
            assert_eq!(Role::Auditor.allows(p), read_only, "{p}");
        }
    }

    #[test]
    fn matrix_document_matches_code() {
        // docs/PERMISSIONS.md holds the same table; a row reads `| perm | ✔ | · | …`.
        let doc = include_str!("../../../../docs/PERMISSIONS.md");
        for &p in Permission::ALL {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` ", p.as_str())))
                .unwrap_or_else(|| panic!("docs/PERMISSIONS.md has no row for {p}"));
            let cells: Vec<&str> = row
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            for (i, &r) in Role::ALL.iter().enumerate() {
                let documented = cells[i + 1] == "✔";
                assert_eq!(
                    documented,
                    r.allows(p),
                    "{p} for {r} in docs/PERMISSIONS.md"
                );
            }
        }
    }

    #[test]
    fn usernames() {
        assert_eq!(validate_username(" Alice.B ").unwrap(), "alice.b");
        assert!(validate_username("ab").is_err());
        assert!(validate_username("a b c").is_err());
    }
}
