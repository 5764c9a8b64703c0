//! The vulnerability pages: one advisory (`/advisories/{id}`: tracking,
//! revision history, the affected-version rules in the advisory's own words,
//! remediations, the assets its rules affect), an asset's vulnerability
//! section on the asset page, and the trend chart of open vulnerability
//! findings on `/findings` (server-rendered SVG).

use super::findings::Row;
use super::{need, render, Nav, UiResult, UiResultExt, UiUser};
use crate::auth::Principal;
use crate::state::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use pumpward_core::access::Permission;
use pumpward_store::{AdvisoryRecord, FindingFilter, TrendDay, KIND_AFFECTED, KIND_REVIEW};

const HERE: &str = "/findings";

/// One product status of the advisory, as the advisory wrote it.
struct RuleLine {
    cve: String,
    product: String,
    /// The advisory's original version text.
    version_text: String,
    /// How Pumpward reads it.
    rule: String,
    status: String,
    remediations: Vec<String>,
}

#[derive(Template)]
#[template(path = "advisory.html")]
struct AdvisoryPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    a: AdvisoryRecord,
    /// (number, date, summary), as the advisory lists them.
    revisions: Vec<(String, String, String)>,
    rules: Vec<RuleLine>,
    /// `None` without findings.read.
    findings: Option<Vec<Row>>,
    link_assets: bool,
    /// Always: this page needs vuln.read.
    link_advisories: bool,
    /// The advisory's references (CSAF `document.references`, NVD and CVE
    /// records' references): (summary, URL), http(s) only.
    references: Vec<(String, String)>,
}

pub async fn advisory(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<i64>,
) -> UiResult {
    need(&st, &p, Permission::VulnRead, HERE).await?;
    let (a, vulns) = st.store.advisory(id).await.ui(&p, HERE)?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let revisions = a.essentials["revision_history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (text(&r["number"]), text(&r["date"]), text(&r["summary"])))
        .collect();
    let references = advisory_references(&a.essentials);
    let mut rules = Vec::new();
    for v in &vulns {
        for s in &v.product_statuses {
            rules.push(RuleLine {
                cve: v.cve.clone().unwrap_or_else(|| "—".into()),
                product: s.full_name.clone(),
                version_text: s.version_text.clone().unwrap_or_else(|| "—".into()),
                rule: s.version_rule.clone(),
                status: s.status.clone(),
                remediations: s
                    .remediations
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| format!("{}: {}", text(&r["category"]), text(&r["details"])))
                    .collect(),
            });
        }
    }
    let findings = if p.can(Permission::FindingsRead) {
        Some(
            st.store
                .advisory_findings(id)
                .await
                .ui(&p, HERE)?
                .into_iter()
                .map(Row::from)
                .collect(),
        )
    } else {
        None
    };
    render(
        StatusCode::OK,
        &AdvisoryPage {
            nav: Some(Nav::new(&p, HERE)),
            notice: None,
            error: None,
            a,
            revisions,
            rules,
            findings,
            link_assets: p.can(Permission::InventoryRead),
            link_advisories: true,
            references,
        },
    )
}

/// The references an advisory's stored essentials carry, (summary, URL):
/// only http(s) URLs become links; the others are dropped, not shown as
/// text either (a `javascript:` "reference" is no reference).
fn advisory_references(essentials: &serde_json::Value) -> Vec<(String, String)> {
    essentials["references"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let url = super::findings::web_link(r["url"].as_str()?)?;
            let summary = r["summary"].as_str().unwrap_or("").trim();
            Some((
                if summary.is_empty() {
                    url.clone()
                } else {
                    summary.to_owned()
                },
                url,
            ))
        })
        .collect()
}

/// An asset's open vulnerability findings, highest priority first, for
/// the asset page; `None` when the user may not read findings.
pub(super) async fn asset_vulns(
    st: &AppState,
    p: &Principal,
    asset_id: &str,
) -> Result<Option<Vec<Row>>, super::UiError> {
    if !p.can(Permission::FindingsRead) {
        return Ok(None);
    }
    let mut rows = Vec::new();
    for kind in [KIND_AFFECTED, KIND_REVIEW] {
        let (page, _) = st
            .store
            .list_findings(&FindingFilter {
                kind: Some(kind.into()),
                asset_id: Some(asset_id.into()),
                open: Some(true),
                limit: 500,
                ..Default::default()
            })
            .await
            .ui(p, "/assets")?;
        rows.extend(page.into_iter().map(Row::from));
    }
    rows.sort_by(|a, b| b.f.priority.cmp(&a.f.priority).then(a.f.id.cmp(&b.f.id)));
    Ok(Some(rows))
}

/// The trend of open vulnerability findings as an SVG line chart (affected
/// and review per day), with its own title and description for screen
/// readers; only numbers and dates go into it.
pub(super) fn trend_svg(days: &[TrendDay]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 180.0;
    const PAD: f64 = 32.0;
    let max = days
        .iter()
        .map(|d| d.affected.max(d.review))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = days.len().max(2) - 1;
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / n as f64;
    let y = |v: u32| H - PAD - (H - 2.0 * PAD) * f64::from(v) / f64::from(max);
    let line = |f: &dyn Fn(&TrendDay) -> u32| {
        days.iter()
            .enumerate()
            .map(|(i, d)| format!("{:.1},{:.1}", x(i), y(f(d))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (first, last) = match (days.first(), days.last()) {
        (Some(f), Some(l)) => (f.date.as_str(), l.date.as_str()),
        _ => ("", ""),
    };
    let now = days
        .last()
        .map(|d| (d.affected, d.review))
        .unwrap_or((0, 0));
    format!(
        concat!(
            r#"<svg id="trend-chart" role="img" aria-labelledby="trend-title trend-desc" viewBox="0 0 {w} {h}" width="100%" style="max-width:{w}px">"#,
            r#"<title id="trend-title">Open vulnerability findings per day</title>"#,
            r#"<desc id="trend-desc">From {first} to {last}; on {last}: {na} affected, {nr} to review; at most {max} on one day.</desc>"#,
            r#"<line x1="{p}" y1="{b}" x2="{r}" y2="{b}" stroke="currentColor" stroke-width="1"/>"#,
            r#"<line x1="{p}" y1="{p}" x2="{p}" y2="{b}" stroke="currentColor" stroke-width="1"/>"#,
            r#"<text x="{p}" y="{ty}" font-size="11">{first}</text>"#,
            r#"<text x="{r}" y="{ty}" font-size="11" text-anchor="end">{last}</text>"#,
            r#"<text x="4" y="{p}" font-size="11">{max}</text>"#,
            r##"<polyline id="trend-affected" fill="none" stroke="#b00020" stroke-width="2" points="{a}"/>"##,
            r##"<polyline id="trend-review" fill="none" stroke="#8a6d00" stroke-width="2" stroke-dasharray="5 3" points="{v}"/>"##,
            r#"</svg>"#
        ),
        w = W,
        h = H,
        p = PAD,
        b = H - PAD,
        r = W - PAD,
        ty = H - 8.0,
        first = first,
        last = last,
        na = now.0,
        nr = now.1,
        max = max,
        a = line(&|d| d.affected),
        v = line(&|d| d.review),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_http_links_only() {
        let e = serde_json::json!({"references": [
            {"summary": "CISA advisory", "url": "https://www.cisa.gov/news-events/ics-medical-advisories/icsma-20-170-06"},
            {"summary": "", "url": "http://example.org/a?b=1&c=\"d\""},
            {"summary": "evil", "url": "javascript:alert(1)"},
            {"summary": "evil too", "url": " JAVASCRIPT://x%0aalert(1)"},
            {"summary": "data", "url": "data:text/html,<script>alert(1)</script>"},
            {"summary": "no host", "url": "https://"},
            {"summary": "space", "url": "https://a.example/ b"},
            {"summary": "no url"}
        ]});
        assert_eq!(
            advisory_references(&e),
            [
                (
                    "CISA advisory".to_owned(),
                    "https://www.cisa.gov/news-events/ics-medical-advisories/icsma-20-170-06"
                        .to_owned()
                ),
                (
                    "http://example.org/a?b=1&c=\"d\"".to_owned(),
                    "http://example.org/a?b=1&c=\"d\"".to_owned()
                ),
            ]
        );
        assert!(advisory_references(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn the_chart_scales_to_the_highest_day_and_says_the_latest() {
        let day = |date: &str, affected, review| TrendDay {
            date: date.into(),
            affected,
            review,
        };
        let svg = trend_svg(&[day("2026-11-01", 0, 2), day("2026-11-02", 4, 1)]);
        // The highest value (4) sits on the top margin, zero on the axis.
        assert!(svg.contains(r#"points="32.0,148.0 688.0,32.0""#), "{svg}");
        assert!(svg.contains(r#"points="32.0,90.0 688.0,119.0""#), "{svg}");
        assert!(
            svg.contains("on 2026-11-02: 4 affected, 1 to review"),
            "{svg}"
        );
        // An empty history draws without dividing by zero.
        let empty = trend_svg(&[]);
        assert!(empty.contains("<svg") && !empty.contains("NaN"), "{empty}");
    }
}
