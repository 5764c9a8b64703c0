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
    /// applied to it, (category, details, URL); a URL that is not http(s)
    /// is dropped ([`web_link`]).
    pub(super) applied: Vec<(String, String, Option<String>)>,
    /// Inherited from the model's SBOM: (SBOM id, what of it decided: a
    /// component, or a VEX statement), once each.
    pub(super) inherited: Vec<(i64, String)>,
}

/// A link to outside the application, as pages show it: only an absolute
/// http or https URL (an advisory can carry `javascript:` or `data:`
/// "references"; askama escapes the text, not the scheme).
pub(super) fn web_link(url: &str) -> Option<String> {
    let u = url.trim();
    let lower = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
        && u.len() > lower.find("//").map_or(0, |i| i + 2)
        && !u.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then(|| u.to_owned())
}

/// What of a model's SBOM decided a finding: its rules citing a component
/// or a VEX statement of an attached SBOM.
fn inherited(evidence: &serde_json::Value) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for r in evidence["rules"].as_array().into_iter().flatten() {
        let c = &r["component"];
        let found = if let Some(id) = c["sbom_id"].as_i64() {
            let what = format!(
                "component {} {}",
                c["component"].as_str().unwrap_or("?"),
                c["version"].as_str().unwrap_or("(no version)")
            );
            Some((
                id,
                if r["source"] == "vex" {
                    format!("VEX statement on {what}")
                } else {
                    what
                },
            ))
        } else {
            r["vex"]["sbom_id"]
                .as_i64()
                .map(|id| (id, "VEX statement on the device".to_owned()))
        };
        if let Some(x) = found {
            if !out.contains(&x) {
                out.push(x);
            }
        }
    }
    out
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
                .map(|r| (r.category, r.details, r.url.as_deref().and_then(web_link)))
                .collect()
        } else {
            Vec::new()
        };
        let inherited = if vulnerability {
            inherited(&f.evidence)
        } else {
            Vec::new()
        };
        Row {
            f,
            priority,
            factors,
            advisories,
            applied,
            inherited,
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
