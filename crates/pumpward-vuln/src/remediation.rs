//! The remediation workflow of a vulnerability finding, as a pure state
//! machine: which steps are allowed from which state, and what each step
//! must record. The store applies a step in one audited transaction.
//!
//! ```text
//! open ──► vendor_patch_available ──► patch_validated ──► scheduled ──► deployed
//!   │              │                        │                 │  ▲
//!   └──────────────┴────────────────────────┴─────────────────┴──┼──► risk_accepted
//!                                                       (reschedule)    │
//!                      open ◄── reopen (the review date came, or the ───┘
//!                               acceptance is withdrawn)
//! ```
//!
//! - **vendor_patch_available**: the vendor's reference (advisory, release
//!   note) for the fixed version.
//! - **patch_validated**: biomedical engineering validated the patch on a
//!   bench device; records the vendor's validation reference.
//! - **scheduled**: a date for the deployment (YYYY-MM-DD).
//! - **deployed**: the version deployed, which must be the version the
//!   pump itself reports (the inventory's firmware version), so "deployed"
//!   is verified, not declared.
//! - **risk_accepted**: at least one compensating control, an owner and a
//!   review date after today: an acceptance is never open-ended.

use crate::priority::Control;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a finding's remediation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemediationState {
    /// Nothing done yet.
    Open,
    /// The vendor has a fixed version.
    VendorPatchAvailable,
    /// Biomed validated the patch.
    PatchValidated,
    /// The deployment is scheduled.
    Scheduled,
    /// Deployed and verified by the version the pump reports.
    Deployed,
    /// The risk is accepted, with controls, an owner and a review date.
    RiskAccepted,
}

impl RemediationState {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RemediationState::Open => "open",
            RemediationState::VendorPatchAvailable => "vendor_patch_available",
            RemediationState::PatchValidated => "patch_validated",
            RemediationState::Scheduled => "scheduled",
            RemediationState::Deployed => "deployed",
            RemediationState::RiskAccepted => "risk_accepted",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<RemediationState> {
        [
            RemediationState::Open,
            RemediationState::VendorPatchAvailable,
            RemediationState::PatchValidated,
            RemediationState::Scheduled,
            RemediationState::Deployed,
            RemediationState::RiskAccepted,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// The states a step may lead to from here.
    pub fn next(self) -> &'static [RemediationState] {
        use RemediationState::*;
        match self {
            Open => &[VendorPatchAvailable, RiskAccepted],
            VendorPatchAvailable => &[PatchValidated, RiskAccepted],
            PatchValidated => &[Scheduled, RiskAccepted],
            Scheduled => &[Scheduled, Deployed, RiskAccepted],
            Deployed => &[],
            RiskAccepted => &[Open],
        }
    }
}

impl fmt::Display for RemediationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step, with what it must record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// To `vendor_patch_available`.
    VendorPatchAvailable {
        /// The vendor's advisory or release note for the fixed version.
        vendor_reference: String,
    },
    /// To `patch_validated`.
    PatchValidated {
        /// The vendor's validation reference (test report, validation id).
        validation_reference: String,
    },
    /// To `scheduled` (or a new date while scheduled).
    Scheduled {
        /// YYYY-MM-DD.
        date: String,
    },
    /// To `deployed`.
    Deployed {
        /// The firmware version deployed.
        version: String,
    },
    /// To `risk_accepted`.
    RiskAccepted {
        /// Compensating controls in place.
        controls: Vec<Control>,
        /// Who owns the accepted risk.
        owner: String,
        /// When it is reviewed, YYYY-MM-DD, after today.
        review_date: String,
    },
    /// From `risk_accepted` back to `open`.
    Reopen {
        /// Why.
        reason: String,
    },
}

impl Step {
    /// The state this step leads to.
    pub fn target(&self) -> RemediationState {
        match self {
            Step::VendorPatchAvailable { .. } => RemediationState::VendorPatchAvailable,
            Step::PatchValidated { .. } => RemediationState::PatchValidated,
            Step::Scheduled { .. } => RemediationState::Scheduled,
            Step::Deployed { .. } => RemediationState::Deployed,
            Step::RiskAccepted { .. } => RemediationState::RiskAccepted,
            Step::Reopen { .. } => RemediationState::Open,
        }
    }
}

/// Why a step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Not allowed from this state.
    #[error("a finding in state {from} cannot go to {to}; allowed from {from}: {allowed}")]
    Illegal {
        /// The current state.
        from: RemediationState,
        /// The state asked for.
        to: RemediationState,
        /// What is allowed, in words.
        allowed: String,
    },
    /// A required field is missing or malformed.
    #[error("{field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The pump does not report the version said to be deployed.
    #[error(
        "deployed version {claimed:?} is not verified: the pump reports firmware {reported:?}"
    )]
    NotVerified {
        /// The version said to be deployed.
        claimed: String,
        /// The version the pump reports.
        reported: String,
    },
}

fn required(field: &'static str, v: &str) -> Result<(), StepError> {
    if v.trim().is_empty() {
        return Err(StepError::Field {
            field,
            message: "is required".into(),
        });
    }
    if v.len() > 1000 {
        return Err(StepError::Field {
            field,
            message: "is longer than 1000 characters".into(),
        });
    }
    Ok(())
}

/// Whether `s` is a calendar date YYYY-MM-DD (so dates compare as text).
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        s.get(r)?.bytes().try_fold(0u32, |a, c| {
            c.is_ascii_digit().then(|| a * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// Checks a step from `from`, given the firmware version the pump reports
/// and today's date (YYYY-MM-DD); returns the new state.
pub fn apply(
    from: RemediationState,
    step: &Step,
    reported_version: &str,
    today: &str,
) -> Result<RemediationState, StepError> {
    let to = step.target();
    if !from.next().contains(&to) {
        let allowed = match from.next() {
            [] => "nothing (final state)".to_owned(),
            n => n.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
        };
        return Err(StepError::Illegal { from, to, allowed });
    }
    match step {
        Step::VendorPatchAvailable { vendor_reference } => {
            required("vendor_reference", vendor_reference)?
        }
        Step::PatchValidated {
            validation_reference,
        } => required("validation_reference", validation_reference)?,
        Step::Scheduled { date } => {
            if !is_date(date) {
                return Err(StepError::Field {
                    field: "date",
                    message: format!("{date:?} is not a date YYYY-MM-DD"),
                });
            }
        }
        Step::Deployed { version } => {
            required("version", version)?;
            // The pump's own report is the proof: the same version text
            // (case and surrounding spaces aside).
            if !version.trim().eq_ignore_ascii_case(reported_version.trim()) {
                return Err(StepError::NotVerified {
                    claimed: version.clone(),
                    reported: reported_version.to_owned(),
                });
            }
        }
        Step::RiskAccepted {
            controls,
            owner,
            review_date,
        } => {
            if controls.is_empty() {
                return Err(StepError::Field {
                    field: "controls",
                    message: format!(
                        "at least one compensating control is required ({})",
                        Control::ALL.map(Control::as_str).join(", ")
                    ),
                });
            }
            required("owner", owner)?;
            if !is_date(review_date) {
                return Err(StepError::Field {
                    field: "review_date",
                    message: format!("{review_date:?} is not a date YYYY-MM-DD"),
                });
            }
            if review_date.as_str() <= today {
                return Err(StepError::Field {
                    field: "review_date",
                    message: format!("{review_date} is not after today ({today})"),
                });
            }
        }
        Step::Reopen { reason } => required("reason", reason)?,
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RemediationState::*;

    const TODAY: &str = "2026-11-26";

    fn steps() -> Vec<Step> {
        vec![
            Step::VendorPatchAvailable {
                vendor_reference: "ICSMA-20-296-02".into(),
            },
            Step::PatchValidated {
                validation_reference: "BBMC-VAL-2021-07".into(),
            },
            Step::Scheduled {
                date: "2026-12-03".into(),
            },
            Step::Deployed {
                version: "L82".into(),
            },
            Step::RiskAccepted {
                controls: vec![Control::NetworkIsolated],
                owner: "Clinical Engineering".into(),
                review_date: "2027-03-01".into(),
            },
            Step::Reopen {
                reason: "review date".into(),
            },
        ]
    }

    #[test]
    fn the_patch_path_runs_to_deployed() {
        let mut s = Open;
        for step in &steps()[..4] {
            s = apply(s, step, "l82 ", TODAY).unwrap();
        }
        assert_eq!(s, Deployed);
        assert!(matches!(
            apply(s, &steps()[4], "L82", TODAY),
            Err(StepError::Illegal { .. })
        ));
    }

    #[test]
    fn deployed_is_verified_by_the_reported_version() {
        let e = apply(Scheduled, &steps()[3], "L81", TODAY).unwrap_err();
        assert_eq!(
            e.to_string(),
            "deployed version \"L82\" is not verified: the pump reports firmware \"L81\""
        );
    }

    #[test]
    fn risk_acceptance_needs_controls_owner_and_a_future_review() {
        let acc = |controls: Vec<Control>, owner: &str, date: &str| {
            apply(
                VendorPatchAvailable,
                &Step::RiskAccepted {
                    controls,
                    owner: owner.into(),
                    review_date: date.into(),
                },
                "",
                TODAY,
            )
        };
        assert_eq!(
            acc(vec![Control::Monitored], "CE", "2027-01-01"),
            Ok(RiskAccepted)
        );
        let field = |r: Result<RemediationState, StepError>| match r {
            Err(StepError::Field { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(acc(vec![], "CE", "2027-01-01")), "controls");
        assert_eq!(
            field(acc(vec![Control::Monitored], " ", "2027-01-01")),
            "owner"
        );
        assert_eq!(
            field(acc(vec![Control::Monitored], "CE", TODAY)),
            "review_date"
        );
        assert_eq!(
            field(acc(vec![Control::Monitored], "CE", "2027-02-30")),
            "review_date"
        );
    }

    #[test]
    fn illegal_jumps_are_refused_with_what_is_allowed() {
        let e = apply(Open, &steps()[3], "L82", TODAY).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a finding in state open cannot go to deployed; allowed from open: vendor_patch_available, risk_accepted"
        );
        assert!(apply(Open, &steps()[1], "", TODAY).is_err());
        assert!(apply(PatchValidated, &steps()[5], "", TODAY).is_err());
    }

    #[test]
    fn dates() {
        assert!(is_date("2028-02-29"));
        assert!(!is_date("2027-02-29"));
        assert!(!is_date("2027-1-01"));
        assert!(!is_date("2027-13-01"));
        assert!(!is_date("２０２７-01-01"));
    }

    proptest! {
        #[test]
        fn only_listed_transitions_succeed(from in 0usize..6, step in 0usize..6) {
            let states = [Open, VendorPatchAvailable, PatchValidated, Scheduled, Deployed, RiskAccepted];
            let from = states[from];
            let step = &steps()[step];
            let r = apply(from, step, "L82", TODAY);
            prop_assert_eq!(r.is_ok(), from.next().contains(&step.target()));
            if let Ok(to) = r { prop_assert_eq!(to, step.target()); }
        }

        #[test]
        fn is_date_never_panics(s in "\\PC{0,12}") {
            let _ = is_date(&s);
        }
    }
}
