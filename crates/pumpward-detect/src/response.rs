//! Responses: what Pumpward does about an alert or an analyst's decision,
//! as a pure state machine.
//!
//! ```text
//! pending ──confirm (someone other than the requester)──→ applied ──release──→ released
//!    └──────refuse──────→ refused
//! ```
//!
//! A manual response by a person with `response.manage` is applied at once
//! (that person is the decision); an automatic one, requested by the
//! detection engine ("system") for a rule configured with a response, waits
//! `pending` for a person to confirm it, because a quarantine takes a pump
//! off the network: two parties, one of them human, decide together. A
//! person may also ask a colleague to confirm their own request; the
//! requester can never be the confirmer.
//!
//! The only kind today is [`ResponseKind::Quarantine`]. Why it is safe for
//! the patient is argued in `docs/detection-rules.md` ("Responses"): it
//! acts on the network (gateway session, enforcement exports) and sends the
//! pump nothing that changes therapy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a response does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseKind {
    /// Take the pump off the network: its gateway sessions closed and
    /// refused, its MAC out of the authorised lists; biomed swaps it.
    Quarantine,
}

impl ResponseKind {
    /// The snake_case name (configuration value, stored `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseKind::Quarantine => "quarantine",
        }
    }
}

impl fmt::Display for ResponseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResponseKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quarantine" => Ok(ResponseKind::Quarantine),
            other => Err(format!(
                "response {other:?}: the only response is quarantine"
            )),
        }
    }
}

/// Where a response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseState {
    /// Requested, waiting for a second person's confirmation.
    Pending,
    /// In effect.
    Applied,
    /// Undone: the asset is back in the state it was in.
    Released,
    /// Declined by the person asked to confirm it.
    Refused,
}

impl ResponseState {
    /// The snake_case name (stored `state`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseState::Pending => "pending",
            ResponseState::Applied => "applied",
            ResponseState::Released => "released",
            ResponseState::Refused => "refused",
        }
    }

    /// Whether the response still concerns its asset (one open response
    /// per asset at a time).
    pub fn is_open(self) -> bool {
        matches!(self, ResponseState::Pending | ResponseState::Applied)
    }

    /// Confirms a pending response: `confirmer` must not be `requester`
    /// (both audit actor ids, e.g. `user:ana`, `system`).
    pub fn confirm(self, requester: &str, confirmer: &str) -> Result<ResponseState, StepError> {
        if self != ResponseState::Pending {
            return Err(StepError::NotPending(self));
        }
        if requester == confirmer {
            return Err(StepError::OwnRequest);
        }
        Ok(ResponseState::Applied)
    }

    /// Declines a pending response; the requester may withdraw their own.
    pub fn refuse(self) -> Result<ResponseState, StepError> {
        match self {
            ResponseState::Pending => Ok(ResponseState::Refused),
            other => Err(StepError::NotPending(other)),
        }
    }

    /// Undoes an applied response.
    pub fn release(self) -> Result<ResponseState, StepError> {
        match self {
            ResponseState::Applied => Ok(ResponseState::Released),
            other => Err(StepError::NotApplied(other)),
        }
    }
}

impl fmt::Display for ResponseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResponseState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(ResponseState::Pending),
            "applied" => Ok(ResponseState::Applied),
            "released" => Ok(ResponseState::Released),
            "refused" => Ok(ResponseState::Refused),
            other => Err(format!(
                "response state {other:?}: use pending, applied, released or refused"
            )),
        }
    }
}

/// A refused step of the response workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("the response is {0}; only a pending response can be confirmed or refused")]
    NotPending(ResponseState),
    #[error("the response is {0}; only an applied response can be released")]
    NotApplied(ResponseState),
    #[error("a response must be confirmed by someone other than who requested it")]
    OwnRequest,
}

#[cfg(test)]
mod tests {
    use super::ResponseState::*;
    use super::*;

    const ALL: [ResponseState; 4] = [Pending, Applied, Released, Refused];

    #[test]
    fn only_a_second_party_confirms_a_pending_response() {
        assert_eq!(Pending.confirm("system", "user:ana"), Ok(Applied));
        assert_eq!(Pending.confirm("user:ana", "user:bo"), Ok(Applied));
        assert_eq!(
            Pending.confirm("user:ana", "user:ana"),
            Err(StepError::OwnRequest)
        );
        for s in [Applied, Released, Refused] {
            assert_eq!(
                s.confirm("system", "user:ana"),
                Err(StepError::NotPending(s))
            );
        }
    }

    #[test]
    fn every_step_is_legal_from_exactly_one_state() {
        for s in ALL {
            assert_eq!(s.refuse().is_ok(), s == Pending, "refuse from {s}");
            assert_eq!(s.release().is_ok(), s == Applied, "release from {s}");
            assert_eq!(s.is_open(), matches!(s, Pending | Applied), "{s}");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<ResponseState>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!("quarantine".parse(), Ok(ResponseKind::Quarantine));
        assert!("shutdown".parse::<ResponseKind>().is_err());
        assert!("Pending".parse::<ResponseState>().is_err());
    }
}
