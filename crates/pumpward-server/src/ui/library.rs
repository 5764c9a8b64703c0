//! Drug-library pages: the rollout and compliance page (staged rollouts
//! with pause/resume/advance, share of pumps on the current version per
//! care area, stale pumps) and the CQI report with its chart.
//!
//! The chart is an inline SVG written by the template from numbers this
//! module computes; drug and care-area names are escaped like any text.

use super::{need, render, see_other, Fields, Nav, Opt, UiError, UiResult, UiResultExt, UiUser};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_store::{Compliance, CqiReport, LibraryAssignment, NewRollout, Rollout};
use time::OffsetDateTime;

const ROLLOUT: &str = "/rollout";
const CQI: &str = "/reports/cqi";

/// Query parameters of these pages.
fn query(uri: &Uri) -> Vec<(String, String)> {
    serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// A compliance bar: width in SVG units out of 200.
pub struct AreaRow {
    pub care_area: String,
    pub pumps: i64,
    pub current: i64,
    pub percent: String,
    pub bar: i64,
}

pub struct StaleRow {
    pub asset_id: String,
    pub care_area: String,
    pub reported_version: String,
    pub stale_since: String,
    pub stale_for: String,
}

#[derive(Template)]
#[template(path = "rollout.html")]
struct RolloutPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    libraries: Vec<Opt>,
    library: String,
    versions: Vec<i64>,
    compliance: Option<Compliance>,
    areas: Vec<AreaRow>,
    stale: Vec<StaleRow>,
    stale_more: usize,
    rollouts: Vec<Rollout>,
    can_publish: bool,
    /// Where the library goes (none: no library chosen).
    assignment: Option<LibraryAssignment>,
    /// Care areas of the newest published version, ticked when assigned.
    area_choices: Vec<Opt>,
    /// Pump groups ("name (n pumps)"), ticked when assigned.
    group_choices: Vec<Opt>,
}

/// "3 d 4 h", "5 h 12 min", "42 min".
pub fn duration_text(secs: i64) -> String {
    let (d, h, m) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    }
}

async fn rollout_page(
    st: &AppState,
    p: &crate::auth::Principal,
    library: Option<&str>,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> UiResult {
    let libs = st.store.list_libraries().await.ui(p, ROLLOUT)?;
    let chosen = library
        .map(str::to_owned)
        .or_else(|| libs.first().map(|l| l.library_id.clone()))
        .unwrap_or_default();
    let libraries = libs
        .iter()
        .map(|l| Opt::new(&l.library_id, &l.name, l.library_id == chosen))
        .collect();
    let (mut compliance, mut rollouts, mut versions) = (None, Vec::new(), Vec::new());
    let (mut assignment, mut area_choices, mut group_choices) = (None, Vec::new(), Vec::new());
    if libs.iter().any(|l| l.library_id == chosen) {
        let a = st.store.library_assignment(&chosen).await.ui(p, ROLLOUT)?;
        let assigned = |list: &[String], x: &str| list.iter().any(|y| y.eq_ignore_ascii_case(x));
        if let Some(v) = libs
            .iter()
            .find(|l| l.library_id == chosen)
            .and_then(|l| l.published_version)
        {
            let newest = st.store.library_version(&chosen, v).await.ui(p, ROLLOUT)?;
            let lib = crate::api_library::parse_stored(&newest).ui(p, ROLLOUT)?;
            area_choices = lib
                .care_areas
                .iter()
                .map(|c| Opt::new(&c.name, &c.name, assigned(&a.care_areas, &c.name)))
                .collect();
        }
        group_choices = st
            .store
            .pump_groups()
            .await
            .ui(p, ROLLOUT)?
            .into_iter()
            .map(|g| {
                let label = format!("{} ({} pumps)", g.name, g.members.len());
                let on = assigned(&a.pump_groups, &g.name);
                Opt::new(g.name, label, on)
            })
            .collect();
        assignment = Some(a);
        compliance = Some(
            st.store
                .library_compliance(&chosen, OffsetDateTime::now_utc())
                .await
                .ui(p, ROLLOUT)?,
        );
        rollouts = st.store.library_rollouts(&chosen).await.ui(p, ROLLOUT)?;
        versions = st
            .store
            .library_revisions(&chosen)
            .await
            .ui(p, ROLLOUT)?
            .iter()
            .filter_map(|r| r.version)
            .collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
    }
    let areas = compliance
        .as_ref()
        .map(|c| {
            c.areas
                .iter()
                .map(|a| AreaRow {
                    care_area: a.care_area.clone(),
                    pumps: a.pumps,
                    current: a.current,
                    percent: format!("{:.1}", a.percent),
                    bar: (a.percent * 2.0).round().clamp(0.0, 200.0) as i64,
                })
                .collect()
        })
        .unwrap_or_default();
    const SHOWN: usize = 200;
    let all_stale = compliance.as_ref().map_or(&[][..], |c| c.stale.as_slice());
    let stale = all_stale
        .iter()
        .take(SHOWN)
        .map(|s| StaleRow {
            asset_id: s.asset_id.clone(),
            care_area: s.care_area.clone().unwrap_or_default(),
            reported_version: s.reported_version.clone().unwrap_or_else(|| "none".into()),
            stale_since: s.stale_since.clone(),
            stale_for: duration_text(s.stale_seconds),
        })
        .collect();
    let stale_more = all_stale.len().saturating_sub(SHOWN);
    render(
        status,
        &RolloutPage {
            nav: Some(Nav::new(p, ROLLOUT)),
            notice,
            error,
            libraries,
            library: chosen,
            versions,
            compliance,
            areas,
            stale,
            stale_more,
            rollouts,
            can_publish: p.can(Permission::LibraryPublish),
            assignment,
            area_choices,
            group_choices,
        },
    )
}

/// `GET /rollout?library=ID`.
pub async fn rollout(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::LibraryRead, ROLLOUT).await?;
    let q = query(&uri);
    let notice = match param(&q, "done") {
        Some("created") => Some(
            "The rollout has started; the gateway announces it to the pumps of its first wave.",
        ),
        Some("pause") => Some("The rollout is paused: nothing more is announced."),
        Some("resume") => Some("The rollout continues."),
        Some("advance") => Some("The rollout now reaches every pump."),
        Some("assigned") => Some(
            "The assignment is saved: rollouts started from now on address only these pumps, and the compliance view counts only them.",
        ),
        _ => None,
    };
    rollout_page(&st, &p, param(&q, "library"), StatusCode::OK, notice, None).await
}

fn back(library: &str, done: &str) -> String {
    format!(
        "{ROLLOUT}?{}",
        serde_urlencoded::to_string([("library", library), ("done", done)]).unwrap_or_default()
    )
}

/// `POST /rollout`: starts a rollout (library, version, pilot).
pub async fn start(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::LibraryPublish, ROLLOUT).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, ROLLOUT))?;
    let library = f.get("library").to_owned();
    let again = |msg: String| {
        let (st, p, library) = (st.clone(), p.clone(), library.clone());
        async move {
            rollout_page(
                &st,
                &p,
                Some(&library),
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(msg),
            )
            .await
        }
    };
    let Ok(version) = f.get("version").trim().parse::<i64>() else {
        return again("Choose the published version to roll out.".into()).await;
    };
    let percent = match f.get("pilot_percent").trim() {
        "" => 0,
        s => match s.parse::<u8>() {
            Ok(n) if n <= 100 => n,
            _ => return again("Pilot share: a whole number from 0 to 100.".into()).await,
        },
    };
    let area = f.get("pilot_care_area").trim();
    let n = NewRollout {
        library_id: library.clone(),
        version,
        pilot_care_area: (!area.is_empty()).then(|| area.to_owned()),
        pilot_percent: percent,
    };
    match st.store.create_library_rollout(&n, &p.actor()).await {
        Ok(_) => Ok(see_other(&back(&library, "created"))),
        Err(e) => again(crate::problem::ApiError::from(e).detail).await,
    }
}

/// `POST /rollout/assignment`: the library's care areas and pump groups
/// (ticked boxes; none ticked: the whole fleet).
pub async fn assign(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::LibraryPublish, ROLLOUT).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, ROLLOUT))?;
    let library = f.get("library").to_owned();
    let areas: Vec<String> = f.all("care_area").map(str::to_owned).collect();
    let groups: Vec<String> = f.all("pump_group").map(str::to_owned).collect();
    match st
        .store
        .set_library_assignment(&library, &areas, &groups, &p.actor())
        .await
    {
        Ok(_) => Ok(see_other(&back(&library, "assigned"))),
        Err(e) => {
            let e = crate::problem::ApiError::from(e);
            rollout_page(
                &st,
                &p,
                Some(&library),
                e.kind.status(),
                None,
                Some(e.detail),
            )
            .await
        }
    }
}

/// `POST /rollout/{rollout}`: `action` = pause, resume or advance.
pub async fn act(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(rid): Path<i64>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::LibraryPublish, ROLLOUT).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, ROLLOUT))?;
    let r = st.store.library_rollout(rid).await.ui(&p, ROLLOUT)?;
    let a = p.actor();
    let action = f.get("action");
    let done = match action {
        "pause" => st.store.pause_library_rollout(rid, &a).await,
        "resume" => st.store.resume_library_rollout(rid, &a).await,
        "advance" => st.store.advance_library_rollout(rid, &a).await,
        _ => {
            return Err(UiError::new(
                StatusCode::BAD_REQUEST,
                "The request is not valid",
                "Choose pause, resume or advance.",
            )
            .with_nav(&p, ROLLOUT))
        }
    };
    match done {
        Ok(_) => Ok(see_other(&back(&r.library_id, action))),
        Err(e) => {
            rollout_page(
                &st,
                &p,
                Some(&r.library_id),
                StatusCode::CONFLICT,
                None,
                Some(crate::problem::ApiError::from(e).detail),
            )
            .await
        }
    }
}

/// One bar of the CQI chart (widths in SVG units out of 400).
pub struct ChartBar {
    pub label: String,
    pub y: i64,
    pub text_y: i64,
    pub x_soft: i64,
    pub w_within: i64,
    pub w_soft: i64,
    pub x_hard: i64,
    pub w_hard: i64,
    pub x_basic: i64,
    pub w_basic: i64,
    pub total: i64,
    pub total_x: i64,
}

#[derive(Template)]
#[template(path = "cqi.html")]
struct CqiPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    from: String,
    to: String,
    report: CqiReport,
    bars: Vec<ChartBar>,
    chart_height: i64,
    csv_href: String,
    totals: [i64; 5],
}

/// The chart: the 15 most programmed drug × care area rows, each bar split
/// into within limits, soft overrides, hard blocks and basic infusions.
pub fn chart(report: &CqiReport) -> Vec<ChartBar> {
    let mut rows: Vec<_> = report.rows.iter().collect();
    rows.sort_by(|a, b| {
        b.programmings
            .cmp(&a.programmings)
            .then(a.drug.cmp(&b.drug))
    });
    rows.truncate(15);
    let max = rows.first().map_or(1, |r| r.programmings.max(1));
    let w = |n: i64| n * 400 / max;
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let y = 10 + i as i64 * 24;
            let (a, b, c, d) = (
                w(r.within_limits),
                w(r.soft_overrides),
                w(r.hard_blocks),
                w(r.basic_infusions),
            );
            ChartBar {
                label: format!("{} · {}", r.drug, r.care_area),
                y,
                text_y: y + 14,
                x_soft: 260 + a,
                w_within: a,
                w_soft: b,
                x_hard: 260 + a + b,
                w_hard: c,
                x_basic: 260 + a + b + c,
                w_basic: d,
                total: r.programmings,
                total_x: 266 + a + b + c + d,
            }
        })
        .collect()
}

/// `GET /reports/cqi?from=&to=`.
pub async fn cqi(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::LibraryRead, CQI).await?;
    let q = query(&uri);
    let (from_s, to_s) = (
        param(&q, "from").unwrap_or("").to_owned(),
        param(&q, "to").unwrap_or("").to_owned(),
    );
    let (from, to) = crate::api_rollout::period(Some(&from_s), Some(&to_s))
        .map_err(|e| UiError::from(e).with_nav(&p, CQI))?;
    let report = st.store.cqi_report(from, to).await.ui(&p, CQI)?;
    let mut totals = [0i64; 5];
    for r in &report.rows {
        totals[0] += r.programmings;
        totals[1] += r.within_limits;
        totals[2] += r.soft_overrides;
        totals[3] += r.hard_blocks;
        totals[4] += r.basic_infusions;
    }
    let bars = chart(&report);
    let csv_href = format!(
        "/api/v1/reports/cqi?{}",
        serde_urlencoded::to_string([
            ("from", report.from.as_str()),
            ("to", report.to.as_str()),
            ("format", "csv"),
        ])
        .unwrap_or_default()
    );
    render(
        StatusCode::OK,
        &CqiPage {
            nav: Some(Nav::new(&p, CQI)),
            notice: None,
            error: None,
            from: pumpward_core::timefmt::format_date(from.date()),
            to: pumpward_core::timefmt::format_date(to.date()),
            chart_height: 20 + bars.len() as i64 * 24,
            bars,
            report,
            csv_href,
            totals,
        },
    )
}
