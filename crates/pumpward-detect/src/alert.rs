//! Alerts, their deduplication key and deterministic id, and the alert and
//! incident workflows as pure state machines.
//!
//! An alert's identity is its [`DedupKey`]: the rule, the subject (an asset,
//! a care area, an address, a certificate) and the window the triggering
//! event fell in (`received_at` divided by the rule's window). The id is a
//! hash of that key, so the same events always yield the same ids: replaying
//! events after a restart can only produce alerts the store already has under
//! the same id (an upsert), never a second copy, and never skips one.
//!
//! Workflow (both machines refuse every transition not drawn here, with
//! [`TransitionError`], and change nothing when they refuse):
//!
//! ```text
//! alert:    new ──acknowledge──► acknowledged ──resolve──────────► resolved
//!                                             └─false_positive──► false_positive
//! incident: open ──contain──► contained ──close──► closed   (close needs the checklist done)
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::config::Severity;
use pumpward_core::inventory::AssetId;

/// What makes two alerts the same alert.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DedupKey {
    /// The rule's name.
    pub rule: String,
    /// What the alert is about.
    pub subject: String,
    /// The window index: `received_at` (µs) / the rule's window (µs).
    pub window: i64,
}

impl DedupKey {
    /// The alert id: the first 16 bytes of SHA-256 over the key, in hex.
    pub fn alert_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.rule.as_bytes());
        h.update([0u8]);
        h.update(self.subject.as_bytes());
        h.update([0u8]);
        h.update(self.window.to_be_bytes());
        let d = h.finalize();
        hex::encode(&d[..16])
    }
}

/// An alert as a rule raised it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic: [`DedupKey::alert_id`].
    pub id: String,
    /// Its identity.
    pub key: DedupKey,
    /// The rule's title.
    pub title: String,
    /// NIST CSF 2.0 subcategory of the rule (none for custom rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csf: Option<String>,
    /// How urgent.
    pub severity: Severity,
    /// The asset concerned, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_id: Option<AssetId>,
    /// Its care area, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub care_area: Option<String>,
    /// When the triggering event was received (or the tick that found it),
    /// never the wall clock: replays give identical alerts.
    #[serde(with = "time::serde::rfc3339")]
    pub raised_at: OffsetDateTime,
    /// Ids of the events that triggered it (the last one for bursts).
    pub events: Vec<String>,
    /// What the rule saw: expected and observed values, counts, the flow.
    pub evidence: serde_json::Value,
}

/// Where an alert is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    New,
    Acknowledged,
    Resolved,
    FalsePositive,
}

impl AlertState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::New => "new",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
            AlertState::FalsePositive => "false_positive",
        }
    }

    /// Whether no further transition is possible.
    pub fn is_closed(self) -> bool {
        matches!(self, AlertState::Resolved | AlertState::FalsePositive)
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("cannot {action} an alert that is {from}")]
    Alert {
        action: &'static str,
        from: AlertState,
    },
    #[error("cannot {action} an incident that is {from}")]
    Incident {
        action: &'static str,
        from: IncidentState,
    },
    #[error("cannot close the incident: checklist steps not done: {0}")]
    ChecklistOpen(String),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("the checklist has no step {0:?}")]
    NoSuchStep(PlaybookStep),
    #[error("alert {0} is already in the incident")]
    AlreadyGrouped(String),
}

/// A comment on an alert or an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub text: String,
}

/// An alert in the SOC's hands: the alert, its state, owner and comments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertCase {
    pub alert: Alert,
    pub state: AlertState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default)]
    pub comments: Vec<Comment>,
    /// How many times the same alert (same key) was raised again while open.
    #[serde(default)]
    pub repeats: u64,
}

fn non_empty(what: &'static str, s: &str) -> Result<(), TransitionError> {
    if s.trim().is_empty() {
        Err(TransitionError::Empty(what))
    } else {
        Ok(())
    }
}

impl AlertCase {
    /// A new alert, unowned.
    pub fn new(alert: Alert) -> AlertCase {
        AlertCase {
            alert,
            state: AlertState::New,
            owner: None,
            comments: Vec::new(),
            repeats: 0,
        }
    }

    /// `owner` takes the alert: new → acknowledged.
    pub fn acknowledge(&mut self, owner: &str) -> Result<(), TransitionError> {
        non_empty("owner", owner)?;
        self.require(AlertState::New, "acknowledge")?;
        self.owner = Some(owner.to_owned());
        self.state = AlertState::Acknowledged;
        Ok(())
    }

    /// acknowledged → resolved, with what was done.
    pub fn resolve(
        &mut self,
        by: &str,
        at: OffsetDateTime,
        note: &str,
    ) -> Result<(), TransitionError> {
        self.close(by, at, note, AlertState::Resolved, "resolve")
    }

    /// acknowledged → false_positive, with why.
    pub fn mark_false_positive(
        &mut self,
        by: &str,
        at: OffsetDateTime,
        reason: &str,
    ) -> Result<(), TransitionError> {
        self.close(
            by,
            at,
            reason,
            AlertState::FalsePositive,
            "mark as false positive",
        )
    }

    /// Adds a comment (allowed in every state: notes after closing are
    /// part of the record).
    pub fn comment(
        &mut self,
        by: &str,
        at: OffsetDateTime,
        text: &str,
    ) -> Result<(), TransitionError> {
        non_empty("by", by)?;
        non_empty("comment", text)?;
        self.comments.push(Comment {
            by: by.to_owned(),
            at,
            text: text.to_owned(),
        });
        Ok(())
    }

    /// The same alert was raised again: counted, not duplicated.
    pub fn repeat(&mut self) {
        self.repeats = self.repeats.saturating_add(1);
    }

    fn require(&self, from: AlertState, action: &'static str) -> Result<(), TransitionError> {
        if self.state == from {
            Ok(())
        } else {
            Err(TransitionError::Alert {
                action,
                from: self.state,
            })
        }
    }

    fn close(
        &mut self,
        by: &str,
        at: OffsetDateTime,
        note: &str,
        to: AlertState,
        action: &'static str,
    ) -> Result<(), TransitionError> {
        non_empty("by", by)?;
        non_empty("note", note)?;
        self.require(AlertState::Acknowledged, action)?;
        self.comments.push(Comment {
            by: by.to_owned(),
            at,
            text: note.to_owned(),
        });
        self.state = to;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Incidents
// ---------------------------------------------------------------------------

/// Where an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Open,
    Contained,
    Closed,
}

impl fmt::Display for IncidentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IncidentState::Open => "open",
            IncidentState::Contained => "contained",
            IncidentState::Closed => "closed",
        })
    }
}

/// A step of the medical-device incident playbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybookStep {
    /// Nursing told; running infusions continue or move to a spare pump;
    /// no response may stop a running infusion.
    ClinicalContingency,
    /// Biomed swaps affected pumps and takes them out of service.
    BiomedSwap,
    /// The pump vendor's security contact informed (and the case number kept).
    VendorContact,
    /// Evidence kept: events, flows, pump logs, the pump itself if needed.
    EvidenceKept,
    /// Network access contained (certificate suspended, MAC out of the
    /// authorised list).
    NetworkContained,
    /// Patient safety reviewed: were doses delivered under wrong limits?
    PatientSafetyReview,
    /// Reporting decided (FDA MedWatch / MDR, HHS breach rules, ISAC).
    RegulatoryReporting,
}

impl PlaybookStep {
    /// The playbook, in the order it is worked.
    pub const PLAYBOOK: [PlaybookStep; 7] = [
        PlaybookStep::ClinicalContingency,
        PlaybookStep::BiomedSwap,
        PlaybookStep::NetworkContained,
        PlaybookStep::EvidenceKept,
        PlaybookStep::VendorContact,
        PlaybookStep::PatientSafetyReview,
        PlaybookStep::RegulatoryReporting,
    ];
}

/// One checklist line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub step: PlaybookStep,
    /// Who did it (or decided it does not apply) and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<Comment>,
    /// Marked not applicable rather than done.
    #[serde(default)]
    pub not_applicable: bool,
}

/// One line of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub by: String,
    pub what: String,
}

/// Alerts grouped into one case, with the playbook and a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub state: IncidentState,
    pub alerts: Vec<String>,
    pub checklist: Vec<ChecklistItem>,
    pub timeline: Vec<TimelineEntry>,
}

impl Incident {
    /// Opens an incident from its first alert, with the full playbook.
    pub fn open(
        id: &str,
        title: &str,
        first: &Alert,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<Incident, TransitionError> {
        non_empty("id", id)?;
        non_empty("title", title)?;
        non_empty("by", by)?;
        Ok(Incident {
            id: id.to_owned(),
            title: title.to_owned(),
            severity: first.severity,
            state: IncidentState::Open,
            alerts: vec![first.id.clone()],
            checklist: PlaybookStep::PLAYBOOK
                .iter()
                .map(|s| ChecklistItem {
                    step: *s,
                    done: None,
                    not_applicable: false,
                })
                .collect(),
            timeline: vec![TimelineEntry {
                at,
                by: by.to_owned(),
                what: format!("opened from alert {} ({})", first.id, first.title),
            }],
        })
    }

    fn log(&mut self, at: OffsetDateTime, by: &str, what: String) {
        self.timeline.push(TimelineEntry {
            at,
            by: by.to_owned(),
            what,
        });
    }

    fn not_closed(&self, action: &'static str) -> Result<(), TransitionError> {
        if self.state == IncidentState::Closed {
            Err(TransitionError::Incident {
                action,
                from: self.state,
            })
        } else {
            Ok(())
        }
    }

    /// Groups another alert in; its severity raises the incident's.
    pub fn add_alert(
        &mut self,
        alert: &Alert,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<(), TransitionError> {
        non_empty("by", by)?;
        self.not_closed("add an alert to")?;
        if self.alerts.contains(&alert.id) {
            return Err(TransitionError::AlreadyGrouped(alert.id.clone()));
        }
        self.alerts.push(alert.id.clone());
        self.severity = self.severity.max(alert.severity);
        self.log(
            at,
            by,
            format!("alert {} added ({})", alert.id, alert.title),
        );
        Ok(())
    }

    /// Ticks a checklist step (done, or not applicable with a reason).
    pub fn complete_step(
        &mut self,
        step: PlaybookStep,
        by: &str,
        at: OffsetDateTime,
        note: &str,
        not_applicable: bool,
    ) -> Result<(), TransitionError> {
        non_empty("by", by)?;
        non_empty("note", note)?;
        self.not_closed("update the checklist of")?;
        let item = self
            .checklist
            .iter_mut()
            .find(|i| i.step == step)
            .ok_or(TransitionError::NoSuchStep(step))?;
        item.done = Some(Comment {
            by: by.to_owned(),
            at,
            text: note.to_owned(),
        });
        item.not_applicable = not_applicable;
        let how = if not_applicable {
            "not applicable"
        } else {
            "done"
        };
        self.log(at, by, format!("{step:?}: {how}: {note}"));
        Ok(())
    }

    /// Adds a free note to the timeline.
    pub fn note(
        &mut self,
        by: &str,
        at: OffsetDateTime,
        text: &str,
    ) -> Result<(), TransitionError> {
        non_empty("by", by)?;
        non_empty("note", text)?;
        self.log(at, by, text.to_owned());
        Ok(())
    }

    /// open → contained.
    pub fn contain(&mut self, by: &str, at: OffsetDateTime) -> Result<(), TransitionError> {
        non_empty("by", by)?;
        if self.state != IncidentState::Open {
            return Err(TransitionError::Incident {
                action: "contain",
                from: self.state,
            });
        }
        self.state = IncidentState::Contained;
        self.log(at, by, "contained".into());
        Ok(())
    }

    /// contained → closed, only once every checklist step is done or not
    /// applicable.
    pub fn close(
        &mut self,
        by: &str,
        at: OffsetDateTime,
        summary: &str,
    ) -> Result<(), TransitionError> {
        non_empty("by", by)?;
        non_empty("summary", summary)?;
        if self.state != IncidentState::Contained {
            return Err(TransitionError::Incident {
                action: "close",
                from: self.state,
            });
        }
        let open: Vec<String> = self
            .checklist
            .iter()
            .filter(|i| i.done.is_none())
            .map(|i| format!("{:?}", i.step))
            .collect();
        if !open.is_empty() {
            return Err(TransitionError::ChecklistOpen(open.join(", ")));
        }
        self.state = IncidentState::Closed;
        self.log(at, by, format!("closed: {summary}"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, sev: Severity) -> Alert {
        let key = DedupKey {
            rule: "library_rejected".into(),
            subject: id.into(),
            window: 1,
        };
        Alert {
            id: key.alert_id(),
            key,
            title: "t".into(),
            csf: None,
            severity: sev,
            asset_id: None,
            care_area: None,
            raised_at: OffsetDateTime::UNIX_EPOCH,
            events: vec![],
            evidence: serde_json::Value::Null,
        }
    }

    const T: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    #[test]
    fn ids_are_deterministic_and_distinguish_keys() {
        let a = DedupKey {
            rule: "r".into(),
            subject: "s".into(),
            window: 7,
        };
        assert_eq!(a.alert_id(), a.clone().alert_id());
        assert_eq!(a.alert_id().len(), 32);
        let mut b = a.clone();
        b.window = 8;
        assert_ne!(a.alert_id(), b.alert_id());
        // The separator keeps ("ab","c") and ("a","bc") apart.
        let c = DedupKey {
            rule: "ab".into(),
            subject: "c".into(),
            window: 7,
        };
        let d = DedupKey {
            rule: "a".into(),
            subject: "bc".into(),
            window: 7,
        };
        assert_ne!(c.alert_id(), d.alert_id());
    }

    #[test]
    fn alert_happy_path() {
        let mut c = AlertCase::new(alert("p1", Severity::High));
        c.acknowledge("soc.ana").unwrap();
        assert_eq!(c.owner.as_deref(), Some("soc.ana"));
        c.resolve("soc.ana", T, "library re-pushed").unwrap();
        assert_eq!(c.state, AlertState::Resolved);
        assert_eq!(c.comments.len(), 1);
    }

    #[test]
    fn illegal_alert_transitions_change_nothing() {
        let mut c = AlertCase::new(alert("p1", Severity::High));
        let before = c.clone();
        assert_eq!(
            c.resolve("x", T, "n"),
            Err(TransitionError::Alert {
                action: "resolve",
                from: AlertState::New
            })
        );
        assert!(c.mark_false_positive("x", T, "n").is_err());
        assert_eq!(c, before);
        assert_eq!(c.acknowledge(" "), Err(TransitionError::Empty("owner")));
        c.acknowledge("a").unwrap();
        assert!(c.acknowledge("b").is_err());
        assert_eq!(c.owner.as_deref(), Some("a"));
        c.mark_false_positive("a", T, "biomed test").unwrap();
        for r in [
            c.clone().acknowledge("a"),
            c.clone().resolve("a", T, "n"),
            c.clone().mark_false_positive("a", T, "n"),
        ] {
            assert!(r.is_err());
        }
        // Comments are still allowed after closing.
        c.comment("auditor", T, "checked").unwrap();
    }

    #[test]
    fn incident_needs_its_checklist_before_closing() {
        let a = alert("p1", Severity::Medium);
        let mut i = Incident::open("INC-1", "Forged library", &a, "soc", T).unwrap();
        assert_eq!(i.checklist.len(), PlaybookStep::PLAYBOOK.len());
        i.add_alert(&alert("p2", Severity::Critical), "soc", T)
            .unwrap();
        assert_eq!(i.severity, Severity::Critical);
        assert!(matches!(
            i.add_alert(&a, "soc", T),
            Err(TransitionError::AlreadyGrouped(_))
        ));
        assert!(
            i.close("soc", T, "done").is_err(),
            "cannot close while open"
        );
        i.contain("soc", T).unwrap();
        assert!(i.contain("soc", T).is_err());
        let err = i.close("soc", T, "done").unwrap_err();
        assert!(
            matches!(err, TransitionError::ChecklistOpen(ref s) if s.contains("ClinicalContingency"))
        );
        for s in PlaybookStep::PLAYBOOK {
            i.complete_step(s, "soc", T, "ok", s == PlaybookStep::RegulatoryReporting)
                .unwrap();
        }
        i.close("soc", T, "library restored").unwrap();
        assert_eq!(i.state, IncidentState::Closed);
        assert!(i.add_alert(&alert("p3", Severity::Low), "soc", T).is_err());
        assert!(i
            .complete_step(PlaybookStep::VendorContact, "soc", T, "x", false)
            .is_err());
        // opened + 1 added + contained + 7 steps + closed
        assert_eq!(i.timeline.len(), 11);
    }
}
