//! The alerts page: what the detection rules raised, newest first, filtered
//! by state, severity, rule and asset, with each alert's evidence. Analysts
//! select alerts for a bulk step (acknowledge, resolve, false positive, open
//! an incident; see [`super::alert_case::bulk`]); each alert's own page is
//! [`super::alert_case::alert`].

use super::pki::{bad_filter, href, Query};
use super::{need, render, Nav, Opt, UiResult, UiResultExt, UiUser};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_store::{AlertFilter, StoredAlert};

const HERE: &str = "/alerts";

/// One alert as the page shows it.
struct Row {
    id: String,
    title: String,
    rule: String,
    csf: String,
    severity: &'static str,
    subject: String,
    asset_id: Option<String>,
    raised_at: String,
    state: &'static str,
    owner: String,
    evidence: String,
    comments: Vec<(String, String, String)>,
}

impl From<StoredAlert> for Row {
    fn from(a: StoredAlert) -> Row {
        let c = a.case;
        Row {
            id: c.alert.id.clone(),
            title: c.alert.title,
            rule: c.alert.key.rule,
            csf: c.alert.csf.unwrap_or_default(),
            severity: c.alert.severity.as_str(),
            subject: c.alert.key.subject,
            asset_id: c.alert.asset_id.map(|x| x.to_string()),
            raised_at: pumpward_core::timefmt::format(c.alert.raised_at),
            state: c.state.as_str(),
            owner: c.owner.unwrap_or_default(),
            evidence: serde_json::to_string_pretty(&c.alert.evidence).unwrap_or_default(),
            comments: c
                .comments
                .into_iter()
                .map(|m| (m.by, pumpward_core::timefmt::format(m.at), m.text))
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    states: Vec<Opt>,
    severities: Vec<Opt>,
    rule: String,
    asset_id: String,
    rows: Vec<Row>,
    link_assets: bool,
    /// Offer the quarantine form beside an alert's asset (`response.manage`).
    respond: bool,
    next_href: Option<String>,
    first_href: Option<String>,
    filtered: bool,
    /// Whether the bulk actions are offered.
    can_manage: bool,
    csrf: String,
}

const STATES: [(&str, &str); 5] = [
    ("open", "Open (new or acknowledged)"),
    ("new", "New"),
    ("acknowledged", "Acknowledged"),
    ("resolved", "Resolved"),
    ("false_positive", "False positive"),
];

pub async fn alerts(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::AlertsRead, HERE).await?;
    let q = Query::parse(uri.query(), &p, HERE)?;
    let state = q.get("state").unwrap_or("open").to_owned();
    if !STATES.iter().any(|(v, _)| *v == state) && state != "all" {
        return Err(bad_filter(
            &p,
            HERE,
            format!("State: choose open, new, acknowledged, resolved, false_positive or all, not {state:?}."),
        ));
    }
    let severity = q.get("severity").map(str::to_owned);
    if let Some(s) = &severity {
        if !["low", "medium", "high", "critical"].contains(&s.as_str()) {
            return Err(bad_filter(
                &p,
                HERE,
                format!("Severity: choose low, medium, high or critical, not {s:?}."),
            ));
        }
    }
    let rule = q.get("rule").map(str::to_owned);
    let asset_id = q.get("asset_id").map(str::to_owned);
    for (label, v) in [("Rule", &rule), ("Asset ID", &asset_id)] {
        if v.as_ref().is_some_and(|v| v.len() > 200) {
            return Err(bad_filter(
                &p,
                HERE,
                format!("{label}: at most 200 characters."),
            ));
        }
    }
    let before = match q.get("cursor") {
        None => None,
        Some(c) => Some(
            c.split_once('|')
                .map(|(a, i)| (a.to_owned(), i.to_owned()))
                .ok_or_else(|| {
                    bad_filter(&p, HERE, format!("The page cursor {c:?} is not valid."))
                })?,
        ),
    };
    let limit = q.limit(&p, HERE)?;
    // "open" is two states: list each and merge, newest first.
    let states: Vec<Option<String>> = match state.as_str() {
        "open" => vec![Some("new".into()), Some("acknowledged".into())],
        "all" => vec![None],
        s => vec![Some(s.to_owned())],
    };
    let want = limit.unwrap_or(50) as i64;
    let mut rows: Vec<StoredAlert> = Vec::new();
    let mut more = false;
    for s in states {
        let (page, next) = st
            .store
            .list_alerts(&AlertFilter {
                state: s,
                severity: severity.clone(),
                rule: rule.clone(),
                asset_id: asset_id.clone(),
                before: before.clone(),
                limit: want,
            })
            .await
            .ui(&p, HERE)?;
        more |= next.is_some();
        rows.extend(page);
    }
    rows.sort_by(|a, b| {
        (b.case.alert.raised_at, &b.case.alert.id).cmp(&(a.case.alert.raised_at, &a.case.alert.id))
    });
    if rows.len() as i64 > want {
        rows.truncate(want as usize);
        more = true;
    }
    let next = more.then(|| rows.last()).flatten().map(|a| {
        format!(
            "{}|{}",
            pumpward_core::timefmt::format(a.case.alert.raised_at),
            a.case.alert.id
        )
    });

    let mut keep: Vec<(&str, String)> = vec![("state", state.clone())];
    for (k, v) in [
        ("severity", &severity),
        ("rule", &rule),
        ("asset_id", &asset_id),
    ] {
        if let Some(v) = v {
            keep.push((k, v.clone()));
        }
    }
    let filtered = keep.len() > 1 || state != "open";
    if let Some(l) = limit {
        keep.push(("limit", l.to_string()));
    }
    let next_href = next.map(|c| {
        let mut pairs = keep.clone();
        pairs.push(("cursor", c));
        href(HERE, &pairs)
    });
    let first_href = before.is_some().then(|| href(HERE, &keep));
    let states = STATES
        .iter()
        .copied()
        .chain([("all", "All")])
        .map(|(v, l)| Opt::new(v, l, state == v))
        .collect();
    let sev = severity.clone().unwrap_or_default();
    let severities = [
        ("", "Any"),
        ("critical", "Critical"),
        ("high", "High"),
        ("medium", "Medium"),
        ("low", "Low"),
    ]
    .into_iter()
    .map(|(v, l)| Opt::new(v, l, sev == v))
    .collect();
    render(
        StatusCode::OK,
        &AlertsPage {
            nav: Some(Nav::new(&p, HERE)),
            notice: (q.get("done") == Some("bulk")).then_some("The selected alerts were updated."),
            error: None,
            states,
            severities,
            rule: rule.unwrap_or_default(),
            asset_id: asset_id.unwrap_or_default(),
            rows: rows.into_iter().map(Row::from).collect(),
            link_assets: p.can(Permission::InventoryRead),
            respond: p.can(Permission::ResponseManage),
            next_href,
            first_href,
            filtered,
            can_manage: p.can(Permission::AlertsManage),
            csrf: p.csrf().to_owned(),
        },
    )
}
