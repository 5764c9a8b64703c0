//! The findings page: conditions that someone has to act on, newest first,
//! filtered by state, kind and asset (today the certificate expiry watch's).

use super::pki::{bad_filter, href, Query};
use super::{need, render, Nav, Opt, UiResult, UiResultExt, UiUser};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_store::{Finding, FindingFilter};

const HERE: &str = "/findings";

/// A finding with its priority spelled out for the page.
pub(super) struct Row {
    pub(super) f: Finding,
    /// "55.0 (high)", for vulnerability findings.
    pub(super) priority: Option<String>,
    /// (factor, what was seen, points), in the formula's order.
    pub(super) factors: Vec<(String, String, String)>,
    /// The advisories the finding's rules cite: (advisory id, tracking id).
    pub(super) advisories: Vec<(i64, String)>,
    /// A resolved vulnerability finding: the advisories' remediations that
    /// applied to it, (category, details, URL).
    pub(super) applied: Vec<(String, String, Option<String>)>,
}

impl From<Finding> for Row {
    fn from(f: Finding) -> Row {
        let p = &f.evidence["priority"];
        let priority = f.priority.map(|s| {
            format!(
                "{} ({})",
                pumpward_vuln::priority::tenths(s as i32),
                p["band"].as_str().unwrap_or("-")
            )
        });
        let factors = p["factors"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|x| {
                (
                    x["factor"].as_str().unwrap_or("").to_owned(),
                    x["input"].as_str().unwrap_or("").to_owned(),
                    pumpward_vuln::priority::tenths(x["points"].as_i64().unwrap_or(0) as i32),
                )
            })
            .collect();
        let vulnerability = pumpward_store::vulnerability_status(&f).is_some();
        let advisories = if vulnerability {
            pumpward_store::cited_advisories(&f.evidence)
        } else {
            Vec::new()
        };
        let applied = if vulnerability && f.state == "resolved" {
            pumpward_store::cited_remediations(&f.evidence)
                .into_iter()
                .map(|r| (r.category, r.details, r.url))
                .collect()
        } else {
            Vec::new()
        };
        Row {
            f,
            priority,
            factors,
            advisories,
            applied,
        }
    }
}

#[derive(Template)]
#[template(path = "findings.html")]
struct FindingsPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    states: Vec<Opt>,
    kind: String,
    asset_id: String,
    rows: Vec<Row>,
    /// Whether asset pages may be linked (the user has inventory.read).
    link_assets: bool,
    /// Whether advisory pages may be linked (the user has vuln.read).
    link_advisories: bool,
    next_href: Option<String>,
    first_href: Option<String>,
    filtered: bool,
    /// The trend chart of open vulnerability findings (SVG), last 90 days.
    trend: String,
}

pub async fn findings(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::FindingsRead, HERE).await?;
    let q = Query::parse(uri.query(), &p, HERE)?;
    // Open findings unless the user asks for others.
    let state = q.get("state").unwrap_or("open").to_owned();
    let open = match state.as_str() {
        "open" => Some(true),
        "resolved" => Some(false),
        "all" => None,
        v => {
            return Err(bad_filter(
                &p,
                HERE,
                format!("State: choose open, resolved or all, not {v:?}."),
            ))
        }
    };
    let kind = q.get("kind").map(str::to_owned);
    let asset_id = q.get("asset_id").map(str::to_owned);
    for (label, v) in [("Kind", &kind), ("Asset ID", &asset_id)] {
        if v.as_ref().is_some_and(|v| v.len() > 200) {
            return Err(bad_filter(
                &p,
                HERE,
                format!("{label}: at most 200 characters."),
            ));
        }
    }
    let before =
        match q.get("cursor") {
            None => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                bad_filter(&p, HERE, format!("The page cursor {c:?} is not valid."))
            })?),
        };
    let limit = q.limit(&p, HERE)?;
    let (rows, next) = st
        .store
        .list_findings(&FindingFilter {
            kind: kind.clone(),
            asset_id: asset_id.clone(),
            open,
            before_id: before,
            limit: limit.unwrap_or(50) as i64,
        })
        .await
        .ui(&p, HERE)?;

    let mut keep: Vec<(&str, String)> = vec![("state", state.clone())];
    if let Some(k) = &kind {
        keep.push(("kind", k.clone()));
    }
    if let Some(a) = &asset_id {
        keep.push(("asset_id", a.clone()));
    }
    let filtered = keep.len() > 1 || state != "open";
    if let Some(l) = limit {
        keep.push(("limit", l.to_string()));
    }
    let next_href = next.map(|c| {
        let mut pairs = keep.clone();
        pairs.push(("cursor", c.to_string()));
        href(HERE, &pairs)
    });
    let first_href = before.is_some().then(|| href(HERE, &keep));
    let trend = super::advisories::trend_svg(&st.store.vulnerability_trend(90).await.ui(&p, HERE)?);
    let states = [("open", "Open"), ("resolved", "Resolved"), ("all", "All")]
        .into_iter()
        .map(|(v, l)| Opt::new(v, l, state == v))
        .collect();
    render(
        StatusCode::OK,
        &FindingsPage {
            nav: Some(Nav::new(&p, HERE)),
            notice: None,
            error: None,
            states,
            kind: kind.unwrap_or_default(),
            asset_id: asset_id.unwrap_or_default(),
            rows: rows.into_iter().map(Row::from).collect(),
            link_assets: p.can(Permission::InventoryRead),
            link_advisories: p.can(Permission::VulnRead),
            next_href,
            first_href,
            filtered,
            trend,
        },
    )
}
