//! The incident pages: `/incidents` (newest first, by state) and
//! `/incidents/{id}` with its alerts, the medical-device playbook checklist
//! (each step ticked off with a note, or marked not applicable), the
//! timeline, notes, containment and closing. Incidents are opened from the
//! alerts list's selection ([`super::alert_case::bulk`]).
//!
//! Steps go through [`crate::api_incidents::apply_step`], the API's own
//! code; a step the workflow refuses re-shows the page with the reason
//! (422) and changes nothing.

use super::pki::{bad_filter, href, segment, Query};
use super::{need, render, see_other, Fields, Nav, Opt, UiError, UiResult, UiResultExt, UiUser};
use crate::api_incidents::{apply_step, step_name, IncidentStep, STATES};
use crate::auth::Principal;
use crate::problem::ErrorKind;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_core::timefmt;
use pumpward_detect::alert::IncidentState;
use pumpward_detect::PlaybookStep;
use pumpward_store::IncidentFilter;

const LIST: &str = "/incidents";

struct ListRow {
    id: String,
    title: String,
    severity: &'static str,
    state: String,
    alerts: usize,
    open_steps: usize,
    opened_at: String,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    states: Vec<Opt>,
    rows: Vec<ListRow>,
    next_href: Option<String>,
    first_href: Option<String>,
}

pub async fn incidents(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::AlertsRead, LIST).await?;
    let q = Query::parse(uri.query(), &p, LIST)?;
    let state = q.get("state").unwrap_or("").to_owned();
    if !state.is_empty() && !STATES.contains(&state.as_str()) {
        return Err(bad_filter(
            &p,
            LIST,
            format!("State: choose open, contained or closed, not {state:?}."),
        ));
    }
    let before = match q.get("cursor") {
        None => None,
        Some(c) => Some(
            c.split_once('|')
                .map(|(a, i)| (a.to_owned(), i.to_owned()))
                .ok_or_else(|| {
                    bad_filter(&p, LIST, format!("The page cursor {c:?} is not valid."))
                })?,
        ),
    };
    let limit = q.limit(&p, LIST)?;
    let (items, next) = st
        .store
        .list_incidents(&IncidentFilter {
            state: (!state.is_empty()).then(|| state.clone()),
            before: before.clone(),
            limit: limit.unwrap_or(50) as i64,
        })
        .await
        .ui(&p, LIST)?;
    let mut keep: Vec<(&str, String)> = Vec::new();
    if !state.is_empty() {
        keep.push(("state", state.clone()));
    }
    if let Some(l) = limit {
        keep.push(("limit", l.to_string()));
    }
    let next_href = next.map(|(at, id)| {
        let mut pairs = keep.clone();
        pairs.push(("cursor", format!("{at}|{id}")));
        href(LIST, &pairs)
    });
    let first_href = before.is_some().then(|| href(LIST, &keep));
    let states = std::iter::once(("", "Any"))
        .chain([
            ("open", "Open"),
            ("contained", "Contained"),
            ("closed", "Closed"),
        ])
        .map(|(v, l)| Opt::new(v, l, state == v))
        .collect();
    render(
        StatusCode::OK,
        &IncidentsPage {
            nav: Some(Nav::new(&p, LIST)),
            notice: None,
            error: None,
            states,
            rows: items
                .into_iter()
                .map(|s| ListRow {
                    id: s.incident.id,
                    title: s.incident.title,
                    severity: s.incident.severity.as_str(),
                    state: s.incident.state.to_string(),
                    alerts: s.incident.alerts.len(),
                    open_steps: s
                        .incident
                        .checklist
                        .iter()
                        .filter(|c| c.done.is_none())
                        .count(),
                    opened_at: s.opened_at,
                })
                .collect(),
            next_href,
            first_href,
        },
    )
}

/// One playbook step as the page shows it.
struct StepRow {
    name: String,
    label: &'static str,
    hint: &'static str,
    done: Option<(String, String, String)>,
    not_applicable: bool,
}

/// The playbook step in the hospital's words, and what doing it means.
fn describe(s: PlaybookStep) -> (&'static str, &'static str) {
    match s {
        PlaybookStep::ClinicalContingency => (
            "Clinical contingency",
            "Nursing told; running infusions continue or move to a spare pump. No response may stop a running infusion.",
        ),
        PlaybookStep::BiomedSwap => (
            "Biomed swap",
            "Biomed swaps the affected pumps and takes them out of service.",
        ),
        PlaybookStep::NetworkContained => (
            "Network contained",
            "Certificate suspended at the gateway, MAC out of the authorised list.",
        ),
        PlaybookStep::EvidenceKept => (
            "Evidence kept",
            "Events, flows, pump logs, and the pump itself if needed.",
        ),
        PlaybookStep::VendorContact => (
            "Vendor contact",
            "The pump vendor's security contact informed; keep their case number.",
        ),
        PlaybookStep::PatientSafetyReview => (
            "Patient-safety review",
            "Were doses delivered under wrong limits?",
        ),
        PlaybookStep::RegulatoryReporting => (
            "Regulatory reporting",
            "Decide on FDA MedWatch / MDR, HHS breach rules, ISAC sharing.",
        ),
    }
}

struct AlertRow {
    id: String,
    title: String,
    severity: &'static str,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    id: String,
    title: String,
    severity: &'static str,
    state: String,
    alerts: Vec<AlertRow>,
    checklist: Vec<StepRow>,
    timeline: Vec<(String, String, String)>,
    can_manage: bool,
    is_open: bool,
    is_closed: bool,
    can_close: bool,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "opened" => "The incident was opened from the selected alerts.",
        "complete_step" => "The checklist step was recorded.",
        "note" => "Your note was added to the timeline.",
        "contain" => "The incident is contained.",
        "close" => "The incident is closed.",
        "add_alert" => "The alert was added to the incident.",
        _ => return None,
    })
}

async fn incident_page(
    st: &AppState,
    p: &Principal,
    id: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> UiResult {
    let i = st.store.incident(id).await.ui(p, LIST)?;
    let mut alerts = Vec::with_capacity(i.alerts.len());
    for a in &i.alerts {
        let a = st.store.alert(a).await.ui(p, LIST)?;
        alerts.push(AlertRow {
            id: a.case.alert.id,
            title: a.case.alert.title,
            severity: a.case.alert.severity.as_str(),
            state: a.case.state.as_str(),
        });
    }
    let can_manage = p.can(Permission::AlertsManage);
    let checklist: Vec<StepRow> = i
        .checklist
        .iter()
        .map(|c| {
            let (label, hint) = describe(c.step);
            StepRow {
                name: step_name(c.step),
                label,
                hint,
                done: c
                    .done
                    .as_ref()
                    .map(|d| (d.by.clone(), timefmt::format(d.at), d.text.clone())),
                not_applicable: c.not_applicable,
            }
        })
        .collect();
    let all_done = checklist.iter().all(|c| c.done.is_some());
    render(
        status,
        &IncidentPage {
            nav: Some(Nav::new(p, LIST)),
            notice,
            error,
            csrf: p.csrf().to_owned(),
            id: i.id.clone(),
            title: i.title.clone(),
            severity: i.severity.as_str(),
            state: i.state.to_string(),
            alerts,
            checklist,
            timeline: i
                .timeline
                .iter()
                .map(|t| (timefmt::format(t.at), t.by.clone(), t.what.clone()))
                .collect(),
            can_manage,
            is_open: i.state == IncidentState::Open,
            is_closed: i.state == IncidentState::Closed,
            can_close: i.state == IncidentState::Contained && all_done,
        },
    )
}

pub async fn incident(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    uri: Uri,
) -> UiResult {
    need(&st, &p, Permission::AlertsRead, LIST).await?;
    let done = Query::parse(uri.query(), &p, LIST)?
        .get("done")
        .map(str::to_owned);
    incident_page(&st, &p, &id, StatusCode::OK, notice(done.as_deref()), None).await
}

/// `POST /incidents/{id}`: a checklist step, a note, contain, close, or an
/// alert added by id.
pub async fn act(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::AlertsManage, LIST).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, LIST))?;
    let step = IncidentStep {
        action: f.get("action").to_owned(),
        alert: Some(f.get("alert").trim().to_owned()).filter(|a| !a.is_empty()),
        step: Some(f.get("step").to_owned()).filter(|s| !s.is_empty()),
        note: f.get("note").to_owned(),
        not_applicable: f.get("not_applicable") == "yes",
    };
    match apply_step(&st, &p, &id, &step).await {
        Ok(_) => Ok(see_other(&format!(
            "/incidents/{}?done={}",
            segment(&id),
            step.action
        ))),
        Err(e) if matches!(e.kind, ErrorKind::Validation | ErrorKind::BadRequest) => {
            incident_page(
                &st,
                &p,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(format!("Not done: {}.", e.detail)),
            )
            .await
        }
        Err(e) => Err(UiError::from(e).with_nav(&p, LIST)),
    }
}
