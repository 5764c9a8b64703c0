//! Network zone policy for the pump network, after NIST SP 1800-8: pumps and
//! pump servers in zones of their own, each zone allowed only the conduits
//! its work needs, everything else denied.
//!
//! Pure logic over plain types; no I/O, no clock (times come with the flows).
//!
//! - [`policy`] — the model ([`Policy`]: zones, conduits; [`AssetIdentity`]:
//!   a device's zone, MACs, addresses over time, admission method) and its
//!   TOML form ([`PolicyDocument::from_toml`] / [`PolicyDocument::to_toml`],
//!   a lossless round trip). [`starter_policy`] is the SP 1800-8 starting
//!   point shipped with Pumpward.
//! - [`check()`] — contradictions, shadowed and duplicate conduits, unknown
//!   zones, admission methods a model cannot support, addresses outside
//!   their zone.
//! - [`eval`] — the [`Evaluator`]: one [`Verdict`] per [`Flow`] (allowed by
//!   which conduit, or which rule it breaks), allocation-free.
//! - [`inventory`] — the inventory's assets as network identities.
//! - [`observed`] — observed conduits (zone pair, transport, port → flows,
//!   bytes, first/last seen) beside the allowed ones.
//! - [`presence`] — a device seen in two places at once.
//! - [`quarantine`] — the quarantine list of devices (MACs and addresses)
//!   the exports keep off the network.
//! - [`export`] — nftables, FreeRADIUS (MAB and EAP-TLS), Cisco ISE endpoint
//!   CSV, ACL table: deterministic text, diffable between versions.
//!
//! Invariants:
//! - A [`PolicyDocument`] from TOML is consistent: names valid and unique,
//!   every zone referred to exists, prefixes canonical (no host bits).
//! - Default deny: a flow is allowed only by a conduit, by staying inside a
//!   non-device zone, or by staying on its segment (broadcast, multicast).
//! - No input panics; errors name the line and column (TOML) or the conduit,
//!   zone or asset and field (consistency).
//!
//! [`Flow`]: pumpward_flow::Flow

pub mod check;
pub mod cidr;
pub mod eval;
pub mod export;
pub mod fuzzing;
pub mod inventory;
pub mod observed;
pub mod policy;
pub mod presence;
pub mod quarantine;

pub use check::{check, review, subject_line, Diagnostic, Finding, Issue, Review, Severity};
pub use cidr::Cidr;
pub use eval::{Evaluation, Evaluator, Verdict, Violation, ViolationEvidence};
pub use policy::{
    AddressBinding, Admission, AssetIdentity, Conduit, Direction, Policy, PolicyDocument,
    PolicyError, PortRange, TransportRule, Zone,
};
pub use quarantine::QuarantinedDevice;

/// The starter policy's TOML text, as shipped (`policy/starter.toml`).
pub const STARTER_POLICY_TOML: &str = include_str!("../policy/starter.toml");

/// The SP 1800-8 starter policy, parsed.
pub fn starter_policy() -> Policy {
    match PolicyDocument::from_toml(STARTER_POLICY_TOML) {
        Ok(d) => d.policy,
        // A unit test parses the shipped file, so this cannot be reached.
        Err(e) => unreachable!("the shipped starter policy is invalid: {e}"),
    }
}

#[cfg(test)]
mod tests;
