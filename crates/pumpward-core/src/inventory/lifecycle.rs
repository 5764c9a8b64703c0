//! The asset lifecycle, from procurement to disposal.
//!
//! ```text
//! procured → received → provisioned → in_service ⇄ maintenance
//!                                     in_service ⇄ quarantined
//!                                    maintenance ⇄ quarantined
//! any state before decommissioned → decommissioned → disposed
//! ```
//!
//! Only `in_service` and `maintenance` assets may connect to the gateway
//! (biomed tests a pump's communication during maintenance); a quarantined
//! pump is off the network until someone returns it to service. A pump in
//! maintenance can be quarantined directly, so that a detection response
//! never has to pass through `in_service`, and released back to
//! maintenance, so that releasing a quarantine returns the pump to the state
//! it was in.
//! `disposed` is final: a disposed pump's record is kept for the audit only.

string_enum!(
    /// Where an asset is in its life at the hospital.
    LifecycleState, "lifecycle state" {
        Procured = "procured",
        Received = "received",
        Provisioned = "provisioned",
        InService = "in_service",
        Maintenance = "maintenance",
        Quarantined = "quarantined",
        Decommissioned = "decommissioned",
        Disposed = "disposed",
    }
);

/// A refused lifecycle change, with the states it could have gone to instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an asset cannot go from {from} to {to}; from {from} it can go to: {allowed}")]
pub struct TransitionError {
    pub from: LifecycleState,
    pub to: LifecycleState,
    pub allowed: String,
}

impl LifecycleState {
    /// The states this one may move to.
    pub fn successors(self) -> &'static [LifecycleState] {
        use LifecycleState::*;
        match self {
            Procured => &[Received, Decommissioned],
            Received => &[Provisioned, Decommissioned],
            Provisioned => &[InService, Decommissioned],
            InService => &[Maintenance, Quarantined, Decommissioned],
            Maintenance => &[InService, Quarantined, Decommissioned],
            Quarantined => &[InService, Maintenance, Decommissioned],
            Decommissioned => &[Disposed],
            Disposed => &[],
        }
    }

    /// Checks a move from `self` to `to`; staying put is not a transition.
    pub fn transition(self, to: LifecycleState) -> Result<LifecycleState, TransitionError> {
        if self.successors().contains(&to) {
            Ok(to)
        } else {
            let allowed = self
                .successors()
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>();
            Err(TransitionError {
                from: self,
                to,
                allowed: if allowed.is_empty() {
                    "nothing (final state)".into()
                } else {
                    allowed.join(", ")
                },
            })
        }
    }

    /// Whether the network's enforcement points (RADIUS MAB, 802.1X policy,
    /// ISE) list an asset in this state as authorised: every pump from
    /// arrival to retirement (onboarding needs the network to reach EST),
    /// except a quarantined one, which a response took off the network, and
    /// a retired one.
    pub fn admitted_to_network(self) -> bool {
        !matches!(
            self,
            LifecycleState::Quarantined | LifecycleState::Decommissioned | LifecycleState::Disposed
        )
    }

    /// Whether an asset in this state may hold a network session at the gateway.
    pub fn may_connect(self) -> bool {
        matches!(
            self,
            LifecycleState::InService | LifecycleState::Maintenance
        )
    }
}

#[cfg(test)]
mod tests {
    use super::LifecycleState::{self, *};

    #[test]
    fn the_documented_path_is_legal() {
        let path = [
            Procured,
            Received,
            Provisioned,
            InService,
            Maintenance,
            InService,
            Quarantined,
            InService,
            Decommissioned,
            Disposed,
        ];
        for w in path.windows(2) {
            assert_eq!(w[0].transition(w[1]), Ok(w[1]), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn exactly_the_listed_transitions_are_legal() {
        // Every pair is checked against an independent statement of the rules.
        let legal = |a: LifecycleState, b: LifecycleState| -> bool {
            matches!(
                (a, b),
                (Procured, Received)
                    | (Received, Provisioned)
                    | (Provisioned, InService)
                    | (InService, Maintenance)
                    | (Maintenance, InService)
                    | (Maintenance, Quarantined)
                    | (InService, Quarantined)
                    | (Quarantined, InService)
                    | (Quarantined, Maintenance)
                    | (Decommissioned, Disposed)
            ) || (b == Decommissioned && !matches!(a, Decommissioned | Disposed))
        };
        for &a in LifecycleState::ALL {
            for &b in LifecycleState::ALL {
                assert_eq!(a.transition(b).is_ok(), legal(a, b), "{a} -> {b}");
            }
        }
    }

    #[test]
    fn refusal_names_the_alternatives() {
        let e = Disposed.transition(InService).unwrap_err();
        assert!(e.to_string().contains("final state"), "{e}");
        let e = Procured.transition(InService).unwrap_err();
        assert_eq!(
            e.to_string(),
            "an asset cannot go from procured to in_service; from procured it can go to: received, decommissioned"
        );
    }

    #[test]
    fn quarantined_pumps_may_not_connect() {
        assert!(!Quarantined.may_connect());
        assert!(InService.may_connect());
        assert!(!Decommissioned.may_connect());
    }

    #[test]
    fn quarantined_and_retired_pumps_are_not_admitted_to_the_network() {
        for &s in LifecycleState::ALL {
            assert_eq!(
                s.admitted_to_network(),
                !matches!(s, Quarantined | Decommissioned | Disposed),
                "{s}"
            );
        }
        // Whoever may hold a gateway session is admitted to the network.
        for &s in LifecycleState::ALL {
            assert!(!s.may_connect() || s.admitted_to_network(), "{s}");
        }
    }
}
