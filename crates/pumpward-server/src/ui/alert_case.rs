//! One alert's page (`/alerts/{id}`): its evidence, owner, comments, the
//! events that triggered it, and the analyst's buttons; and the bulk
//! actions of the alerts list (`POST /alerts/bulk`).
//!
//! The related events are looked up by the ids the rule recorded: pump
//! events (`pump:<asset>:<seq>`) in the pump's stored `device_events`, the
//! others (gateway refusals, …) in `security_events`. An id found in neither
//! is listed as not stored, rather than silently left out.
//!
//! A bulk action is checked against every selected alert's workflow first
//! and refused as a whole (naming each refusal) when any alert cannot take
//! it, so that a partly applied selection never has to be untangled.

use super::pki::segment;
use super::{need, render, see_other, Fields, Nav, UiError, UiResult, UiResultExt, UiUser};
use crate::api_incidents::{new_incident_id, parse_severity, MAX_TITLE};
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_core::timefmt;
use pumpward_detect::alert::TransitionError;
use pumpward_detect::{AlertCase, AlertState};
use pumpward_store::StoredAlert;
use time::OffsetDateTime;

const LIST: &str = "/alerts";

/// One event the alert names.
pub struct Related {
    pub id: String,
    /// `pump` or the security event's source; empty when not stored.
    pub source: String,
    pub at: String,
    pub kind: String,
    pub body: String,
    pub found: bool,
}

#[derive(Template)]
#[template(path = "alert.html")]
struct AlertPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    id: String,
    title: String,
    rule: String,
    csf: String,
    severity: &'static str,
    subject: String,
    asset_id: Option<String>,
    care_area: String,
    raised_at: String,
    state: &'static str,
    owner: String,
    repeats: u64,
    incident_id: Option<String>,
    evidence: String,
    comments: Vec<(String, String, String)>,
    related: Vec<Related>,
    can_manage: bool,
    can_ack: bool,
    can_close: bool,
    link_assets: bool,
}

/// A pump event's id split into its asset and sequence number.
fn pump_event_id(id: &str) -> Option<(&str, i64)> {
    let rest = id.strip_prefix("pump:")?;
    let (asset, seq) = rest.rsplit_once(':')?;
    Some((asset, seq.parse().ok()?))
}

async fn related(st: &AppState, ids: &[String]) -> Result<Vec<Related>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    let others: Vec<String> = ids
        .iter()
        .filter(|i| pump_event_id(i).is_none())
        .cloned()
        .collect();
    let security = st.store.security_events_by_ids(&others).await?;
    for id in ids.iter().take(200) {
        let r = if let Some((asset, seq)) = pump_event_id(id) {
            let rec = st
                .store
                .device_events(asset, seq.saturating_sub(1), 1)
                .await?
                .into_iter()
                .find(|r| r.seq == seq);
            match rec {
                Some(r) => Related {
                    id: id.clone(),
                    source: "pump".into(),
                    at: r.at,
                    kind: r.kind,
                    body: pretty(&r.body),
                    found: true,
                },
                None => missing(id),
            }
        } else {
            match security.iter().find(|e| &e.event.id == id) {
                Some(e) => Related {
                    id: id.clone(),
                    source: e.event.source.as_str().to_owned(),
                    at: timefmt::format(e.event.occurred_at),
                    kind: e.event.body.kind().as_str().to_owned(),
                    body: serde_json::to_string_pretty(&e.event.body).unwrap_or_default(),
                    found: true,
                },
                None => missing(id),
            }
        };
        out.push(r);
    }
    Ok(out)
}

fn missing(id: &str) -> Related {
    Related {
        id: id.to_owned(),
        source: String::new(),
        at: String::new(),
        kind: String::new(),
        body: String::new(),
        found: false,
    }
}

/// Stored JSON shown indented (as stored when it is not JSON).
fn pretty(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "acknowledge" => "You acknowledged the alert and own it now.",
        "resolve" => "The alert was resolved.",
        "false_positive" => "The alert was marked as a false positive.",
        "comment" => "Your comment was added.",
        "bulk" => "The selected alerts were updated.",
        _ => return None,
    })
}

fn here(id: &str) -> String {
    format!("/alerts/{}", segment(id))
}

async fn alert_page(
    st: &AppState,
    p: &Principal,
    id: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> UiResult {
    let a: StoredAlert = st.store.alert(id).await.ui(p, LIST)?;
    let related = related(st, &a.case.alert.events).await.ui(p, LIST)?;
    let c = a.case;
    let can_manage = p.can(Permission::AlertsManage);
    render(
        status,
        &AlertPage {
            nav: Some(Nav::new(p, LIST)),
            notice,
            error,
            csrf: p.csrf().to_owned(),
            id: c.alert.id,
            title: c.alert.title,
            rule: c.alert.key.rule,
            csf: c.alert.csf.unwrap_or_default(),
            severity: c.alert.severity.as_str(),
            subject: c.alert.key.subject,
            asset_id: c.alert.asset_id.map(|x| x.to_string()),
            care_area: c.alert.care_area.unwrap_or_default(),
            raised_at: timefmt::format(c.alert.raised_at),
            state: c.state.as_str(),
            owner: c.owner.unwrap_or_default(),
            repeats: c.repeats,
            incident_id: a.incident_id,
            evidence: serde_json::to_string_pretty(&c.alert.evidence).unwrap_or_default(),
            comments: c
                .comments
                .into_iter()
                .map(|m| (m.by, timefmt::format(m.at), m.text))
                .collect(),
            related,
            can_manage,
            can_ack: can_manage && c.state == AlertState::New,
            can_close: can_manage && c.state == AlertState::Acknowledged,
            link_assets: p.can(Permission::InventoryRead),
        },
    )
}

pub async fn alert(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    uri: Uri,
) -> UiResult {
    need(&st, &p, Permission::AlertsRead, LIST).await?;
    let done = super::pki::Query::parse(uri.query(), &p, LIST)?
        .get("done")
        .map(str::to_owned);
    alert_page(&st, &p, &id, StatusCode::OK, notice(done.as_deref()), None).await
}

/// The workflow step `action` as a function on an alert case, with the
/// audit action's name.
type Step<'a> = Box<dyn Fn(&mut AlertCase) -> Result<(), TransitionError> + Send + Sync + 'a>;

fn step<'a>(
    action: &str,
    who: &'a str,
    note: &'a str,
    now: OffsetDateTime,
) -> Option<(&'static str, Step<'a>)> {
    Some(match action {
        "acknowledge" => (
            "alert.acknowledge",
            Box::new(move |c: &mut AlertCase| c.acknowledge(who)),
        ),
        "resolve" => (
            "alert.resolve",
            Box::new(move |c: &mut AlertCase| c.resolve(who, now, note)),
        ),
        "false_positive" => (
            "alert.false_positive",
            Box::new(move |c: &mut AlertCase| c.mark_false_positive(who, now, note)),
        ),
        "comment" => (
            "alert.comment",
            Box::new(move |c: &mut AlertCase| c.comment(who, now, note)),
        ),
        _ => return None,
    })
}

fn bad_form(p: &Principal, here: &str, msg: &str) -> UiError {
    UiError::new(StatusCode::BAD_REQUEST, "The request is not valid", msg).with_nav(p, here)
}

/// `POST /alerts/{id}`: acknowledge, resolve, false positive or comment.
pub async fn act(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    let back = here(&id);
    need(&st, &p, Permission::AlertsManage, LIST).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, LIST))?;
    let action = f.get("action");
    let note = f.get("note").trim();
    if note.chars().count() > 4000 {
        return alert_page(
            &st,
            &p,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some("Note: at most 4000 characters.".into()),
        )
        .await;
    }
    let who = p.user.username.clone();
    let Some((audit, f)) = step(action, &who, note, OffsetDateTime::now_utc()) else {
        return Err(bad_form(
            &p,
            LIST,
            "Choose acknowledge, resolve, false positive or comment.",
        ));
    };
    match st.store.update_alert(&id, audit, &p.actor(), f).await {
        Ok(changed) => {
            // A comment is not a state change: the SIEM hears of changes only.
            if let (Some(siem), false) = (&st.siem, action == "comment") {
                siem.alert_changed(&changed);
            }
            Ok(see_other(&format!("{back}?done={action}")))
        }
        Err(pumpward_store::StoreError::Invalid(m)) => {
            alert_page(
                &st,
                &p,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(format!("Not done: {m}.")),
            )
            .await
        }
        Err(e) => Err(UiError::from(ApiError::from(e)).with_nav(&p, LIST)),
    }
}

/// `POST /alerts/bulk`: one action on every selected alert (`alert` fields),
/// or a new incident from the selection.
pub async fn bulk(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::AlertsManage, LIST).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, LIST))?;
    let ids: Vec<String> = f.all("alert").map(str::to_owned).collect();
    let refuse = |msg: String| {
        UiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "That cannot be done now",
            msg,
        )
        .with_nav(&p, LIST)
    };
    if ids.is_empty() {
        return Err(refuse(
            "Select at least one alert (the boxes in the first column), then choose the action."
                .into(),
        ));
    }
    if ids.len() > 500 {
        return Err(refuse("Select at most 500 alerts at a time.".into()));
    }
    let action = f.get("action");
    let note = f.get("note").trim();
    if action == "incident" {
        let title = f.get("title").trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            return Err(refuse(format!(
                "Incident title: give 1 to {MAX_TITLE} characters."
            )));
        }
        let severity = match f.get("severity") {
            "" => None,
            s => Some(parse_severity(s).ok_or_else(|| {
                refuse(format!(
                    "Severity: choose low, medium, high or critical, not {s:?}."
                ))
            })?),
        };
        let id = new_incident_id();
        return match st
            .store
            .open_incident_from(&id, title, severity, &ids, &p.actor())
            .await
        {
            Ok(_) => Ok(see_other(&format!(
                "/incidents/{}?done=opened",
                segment(&id)
            ))),
            Err(pumpward_store::StoreError::Invalid(m)) => {
                Err(refuse(format!("No incident was opened: {m}.")))
            }
            Err(e) => Err(UiError::from(ApiError::from(e)).with_nav(&p, LIST)),
        };
    }
    if note.chars().count() > 4000 {
        return Err(refuse("Note: at most 4000 characters.".into()));
    }
    let who = p.user.username.clone();
    let now = OffsetDateTime::now_utc();
    let Some((audit, apply)) = step(action, &who, note, now).filter(|_| action != "comment") else {
        return Err(bad_form(
            &p,
            LIST,
            "Choose acknowledge, resolve, false positive or open an incident.",
        ));
    };
    // All or none: the store checks every alert before it changes any.
    match st
        .store
        .update_alerts(&ids, audit, &p.actor(), &apply)
        .await
    {
        Ok(changed) => {
            if let Some(siem) = &st.siem {
                changed.iter().for_each(|a| siem.alert_changed(a));
            }
        }
        Err(pumpward_store::StoreError::Invalid(m)) => {
            return Err(refuse(format!("Nothing was changed: {m}.")));
        }
        Err(e) => return Err(UiError::from(ApiError::from(e)).with_nav(&p, LIST)),
    }
    Ok(see_other("/alerts?done=bulk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_event_ids_split_at_the_last_colon() {
        assert_eq!(pump_event_id("pump:P-1:17"), Some(("P-1", 17)));
        assert_eq!(pump_event_id("pump:P-1:x"), None);
        assert_eq!(pump_event_id("gateway:refusal:1"), None);
        assert_eq!(pump_event_id("pump:17"), None);
    }
}
