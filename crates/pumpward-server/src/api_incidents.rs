//! REST handlers of incidents: alerts grouped into one case, worked through
//! the medical-device playbook (clinical contingency, biomed swap, network
//! containment, evidence, vendor contact, patient-safety review, reporting)
//! with a timeline.
//!
//! Incidents are the SOC's continuation of alert triage, so they use the
//! alert permissions: `alerts.read` to see them, `alerts.manage` to open and
//! work them. The workflow's rules are `pumpward-detect`'s [`Incident`]; a
//! step it refuses (closing with checklist steps open, containing twice,
//! changing a closed incident) is answered 422 and changes nothing.

use crate::api::{parse_query, JsonBody};
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult, ErrorKind, FieldProblem};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pumpward_detect::{Incident, PlaybookStep, Severity};
use pumpward_store::{IncidentFilter, StoredIncident};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

/// A new incident's id: `INC-<UTC date>-<6 random hex digits>`, readable
/// over the phone and unique without a counter to contend for.
pub fn new_incident_id() -> String {
    let mut b = [0u8; 3];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let d = time::OffsetDateTime::now_utc().date();
    format!(
        "INC-{:04}{:02}{:02}-{}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        hex::encode_upper(b)
    )
}

/// The playbook step's name as the API and forms write it.
pub fn step_name(s: PlaybookStep) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A playbook step from its name.
pub fn parse_step(s: &str) -> Option<PlaybookStep> {
    PlaybookStep::PLAYBOOK
        .into_iter()
        .find(|p| step_name(*p) == s)
}

/// A severity from its name.
pub fn parse_severity(s: &str) -> Option<Severity> {
    [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .find(|v| v.as_str() == s)
}

/// A 422 naming the field at fault.
fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    let mut e = ApiError::new(ErrorKind::Validation, format!("{field}: {message}"));
    e.errors.push(FieldProblem {
        field: field.to_owned(),
        message,
    });
    e
}

fn view(i: &Incident) -> Value {
    json!({
        "id": i.id,
        "title": i.title,
        "severity": i.severity.as_str(),
        "state": i.state.to_string(),
        "alerts": i.alerts,
        "checklist": i.checklist.iter().map(|c| json!({
            "step": step_name(c.step),
            "done": c.done.as_ref().map(|d| json!({
                "by": d.by, "at": pumpward_core::timefmt::format(d.at), "note": d.text,
            })),
            "not_applicable": c.not_applicable,
        })).collect::<Vec<_>>(),
        "timeline": i.timeline.iter().map(|t| json!({
            "at": pumpward_core::timefmt::format(t.at), "by": t.by, "what": t.what,
        })).collect::<Vec<_>>(),
    })
}

fn listed(s: &StoredIncident) -> Value {
    let mut v = view(&s.incident);
    v["opened_at"] = json!(s.opened_at);
    v["updated_at"] = json!(s.updated_at);
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    /// `open`, `contained` or `closed`.
    state: Option<String>,
    /// Page cursor: the `next_cursor` of the previous page.
    before: Option<String>,
    #[serde(default)]
    limit: i64,
}

/// The incident states, for filters.
pub const STATES: [&str; 3] = ["open", "contained", "closed"];

pub async fn list_incidents(
    State(st): State<AppState>,
    _: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: IncidentQuery = parse_query(q.as_deref())?;
    let state = q.state.filter(|s| !s.is_empty());
    if let Some(s) = state.as_deref() {
        if !STATES.contains(&s) {
            return Err(ApiError::bad_request(format!(
                "state {s:?}: use open, contained or closed"
            )));
        }
    }
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => match b.split_once('|') {
            Some((at, id)) => Some((at.to_owned(), id.to_owned())),
            None => return Err(ApiError::bad_request("before: use the next_cursor given")),
        },
    };
    let (items, next) = st
        .store
        .list_incidents(&IncidentFilter {
            state,
            before,
            limit: q.limit,
        })
        .await?;
    Ok(Json(json!({
        "items": items.iter().map(listed).collect::<Vec<_>>(),
        "next_cursor": next.map(|(at, id)| format!("{at}|{id}")),
    })))
}

/// `{"title": …, "alerts": [ids…], "severity": optional}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    title: String,
    alerts: Vec<String>,
    #[serde(default)]
    severity: Option<Severity>,
}

/// Longest incident title.
pub const MAX_TITLE: usize = 200;

pub async fn create_incident(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(n): JsonBody<NewIncident>,
) -> ApiResult<Response> {
    let title = n.title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE {
        return Err(invalid("title", format!("1 to {MAX_TITLE} characters")));
    }
    if n.alerts.is_empty() || n.alerts.len() > 500 {
        return Err(invalid("alerts", "1 to 500 alert ids"));
    }
    let id = new_incident_id();
    let i = st
        .store
        .open_incident_from(&id, title, n.severity, &n.alerts, &p.actor())
        .await?;
    let loc = format!("/api/v1/incidents/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, loc)],
        Json(view(&i)),
    )
        .into_response())
}

pub async fn get_incident(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let i = st.store.incident(&id).await?;
    let mut v = view(&i);
    let mut alerts = Vec::new();
    for a in &i.alerts {
        let a = st.store.alert(a).await?;
        alerts.push(json!({
            "id": a.case.alert.id,
            "title": a.case.alert.title,
            "severity": a.case.alert.severity.as_str(),
            "state": a.case.state.as_str(),
            "rule": a.case.alert.key.rule,
            "asset_id": a.case.alert.asset_id,
            "raised_at": pumpward_core::timefmt::format(a.case.alert.raised_at),
        }));
    }
    v["alert_details"] = Value::Array(alerts);
    Ok(Json(v))
}

/// One step: `{"action": "add_alert", "alert": id}`, `{"action":
/// "complete_step", "step": "vendor_contact", "note": …, "not_applicable":
/// false}`, `{"action": "note", "note": …}`, `{"action": "contain"}`,
/// `{"action": "close", "note": summary}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentStep {
    pub action: String,
    #[serde(default)]
    pub alert: Option<String>,
    #[serde(default)]
    pub step: Option<String>,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub not_applicable: bool,
}

/// Applies one step (shared by the API and the incident page). Refusals
/// of the workflow are [`pumpward_store::StoreError::Invalid`] (422).
pub async fn apply_step(
    st: &AppState,
    p: &Principal,
    id: &str,
    s: &IncidentStep,
) -> ApiResult<Incident> {
    let actor = p.actor();
    let who = p.user.username.clone();
    let now = time::OffsetDateTime::now_utc();
    let note = s.note.trim();
    if note.chars().count() > 4000 {
        return Err(invalid("note", "at most 4000 characters"));
    }
    let i = match s.action.as_str() {
        "add_alert" => {
            let Some(a) = s.alert.as_deref().filter(|a| !a.is_empty()) else {
                return Err(invalid("alert", "name the alert to add"));
            };
            if let Some(other) = st.store.alert(a).await?.incident_id {
                return Err(invalid(
                    "alert",
                    format!("alert {a} already belongs to incident {other}"),
                ));
            }
            st.store
                .update_incident(
                    id,
                    "incident.add_alert",
                    Some(a),
                    &actor,
                    |i, al| match al {
                        Some(al) => i.add_alert(al, &who, now),
                        None => Ok(()),
                    },
                )
                .await?
        }
        "complete_step" => {
            let step = s
                .step
                .as_deref()
                .and_then(parse_step)
                .ok_or_else(|| {
                    invalid(
                        "step",
                        "one of clinical_contingency, biomed_swap, network_contained, \
                         evidence_kept, vendor_contact, patient_safety_review, regulatory_reporting",
                    )
                })?;
            st.store
                .update_incident(id, "incident.step", None, &actor, |i, _| {
                    i.complete_step(step, &who, now, note, s.not_applicable)
                })
                .await?
        }
        "note" => {
            st.store
                .update_incident(id, "incident.note", None, &actor, |i, _| {
                    i.note(&who, now, note)
                })
                .await?
        }
        "contain" => {
            st.store
                .update_incident(id, "incident.contain", None, &actor, |i, _| {
                    i.contain(&who, now)
                })
                .await?
        }
        "close" => {
            st.store
                .update_incident(id, "incident.close", None, &actor, |i, _| {
                    i.close(&who, now, note)
                })
                .await?
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "action {other:?}: use add_alert, complete_step, note, contain or close"
            )))
        }
    };
    Ok(i)
}

pub async fn incident_step(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(step): JsonBody<IncidentStep>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&apply_step(&st, &p, &id, &step).await?)))
}
