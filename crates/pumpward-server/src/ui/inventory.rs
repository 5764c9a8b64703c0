//! Dashboard, asset list, asset detail and lifecycle transitions.

use super::{
    done_param, need, or_dash, render, see_other, Fields, Nav, Opt, UiResult, UiResultExt, UiUser,
};
use crate::api::{parse_query, ListQuery};
use crate::auth::Principal;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_core::inventory::{Asset, LifecycleState};
use pumpward_core::timefmt;
use pumpward_store::{AssetFacet, LifecycleEvent};

// ---------------------------------------------------------------- dashboard

/// One row of a count table.
pub struct CountRow {
    pub label: String,
    pub count: i64,
    /// The asset list filtered to this row, if it can be.
    pub href: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    by_state: Vec<CountRow>,
    by_care_area: Vec<CountRow>,
    total: i64,
    /// Open alerts (new or acknowledged) by severity, most severe first;
    /// `None` for users without `alerts.read`.
    open_alerts: Option<Vec<CountRow>>,
}

fn filter_href(field: &str, value: &str) -> String {
    format!(
        "/assets?{}",
        serde_urlencoded::to_string([(field, value)]).unwrap_or_default()
    )
}

pub async fn dashboard(State(st): State<AppState>, UiUser(p): UiUser) -> UiResult {
    need(&st, &p, Permission::InventoryRead, "/").await?;
    let (states, areas) = st.store.asset_counts().await.ui(&p, "/")?;
    let total = states.iter().map(|(_, n)| n).sum();
    // Every lifecycle state, in lifecycle order, zeros included.
    let mut by_state: Vec<CountRow> = LifecycleState::ALL
        .iter()
        .map(|s| CountRow {
            label: s.as_str().to_owned(),
            count: states
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map(|(_, n)| *n)
                .unwrap_or(0),
            href: Some(filter_href("state", s.as_str())),
        })
        .collect();
    by_state.extend(
        states
            .iter()
            .filter(|(k, _)| k.parse::<LifecycleState>().is_err())
            .map(|(k, n)| CountRow {
                label: k.clone(),
                count: *n,
                href: None,
            }),
    );
    let by_care_area = areas
        .into_iter()
        .map(|(k, n)| CountRow {
            href: (k != "(none)").then(|| filter_href("care_area", &k)),
            label: k,
            count: n,
        })
        .collect();
    let open_alerts = if p.can(Permission::AlertsRead) {
        let counts = st.store.open_alert_counts().await.ui(&p, "/")?;
        Some(
            ["critical", "high", "medium", "low"]
                .into_iter()
                .map(|sev| CountRow {
                    label: sev.to_owned(),
                    count: counts
                        .iter()
                        .find(|(k, _)| k == sev)
                        .map(|(_, n)| *n)
                        .unwrap_or(0),
                    href: Some(format!("/alerts?state=open&severity={sev}")),
                })
                .collect(),
        )
    } else {
        None
    };
    render(
        StatusCode::OK,
        &DashboardPage {
            nav: Some(Nav::new(&p, "/")),
            notice: None,
            error: None,
            by_state,
            by_care_area,
            total,
            open_alerts,
        },
    )
}

// ---------------------------------------------------------------- asset list

/// One `<select>` of the filter form.
pub struct Facet {
    pub name: &'static str,
    pub label: &'static str,
    pub options: Vec<Opt>,
}

pub struct AssetRow {
    pub id: String,
    pub kind: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub firmware: String,
    pub care_area: String,
    pub zone: String,
    pub location: String,
    pub state: String,
}

#[derive(Template)]
#[template(path = "assets.html")]
struct AssetsPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    facets: Vec<Facet>,
    q: String,
    rows: Vec<AssetRow>,
    next_href: Option<String>,
    first_href: Option<String>,
    filtered: bool,
}

fn facet(
    name: &'static str,
    label: &'static str,
    values: Vec<(String, String)>,
    current: Option<&str>,
) -> Facet {
    let mut options = vec![Opt::new("", "Any", current.is_none())];
    options.extend(values.into_iter().map(|(v, l)| {
        let sel = current == Some(v.as_str());
        Opt::new(v, l, sel)
    }));
    Facet {
        name,
        label,
        options,
    }
}

pub async fn assets(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    const HERE: &str = "/assets";
    need(&st, &p, Permission::InventoryRead, HERE).await?;
    let q: ListQuery = parse_query(uri.query()).ui(&p, HERE)?;
    let filter = q.to_filter().ui(&p, HERE)?;
    let page = st.store.list_assets(&filter).await.ui(&p, HERE)?;
    let mut facets = Vec::new();
    for (col, name, label, current) in [
        (
            AssetFacet::Manufacturer,
            "manufacturer",
            "Manufacturer",
            filter.manufacturer.as_deref(),
        ),
        (AssetFacet::Model, "model", "Model", filter.model.as_deref()),
        (
            AssetFacet::CareArea,
            "care_area",
            "Care area",
            filter.care_area.as_deref(),
        ),
        (
            AssetFacet::Zone,
            "zone",
            "Network zone",
            filter.zone.as_deref(),
        ),
    ] {
        let values = st.store.asset_facet(col).await.ui(&p, HERE)?;
        facets.push(facet(
            name,
            label,
            values.into_iter().map(|v| (v.clone(), v)).collect(),
            current,
        ));
    }
    facets.push(facet(
        "state",
        "Lifecycle state",
        LifecycleState::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), s.as_str().to_owned()))
            .collect(),
        filter.state.map(|s| s.as_str()),
    ));
    // The filters as they were given, for the paging links.
    let mut keep: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("manufacturer", &filter.manufacturer),
        ("model", &filter.model),
        ("care_area", &filter.care_area),
        ("zone", &filter.zone),
        ("state", &filter.state.map(|s| s.as_str().to_owned())),
        ("q", &filter.text),
    ] {
        if let Some(v) = v {
            keep.push((k, v.clone()));
        }
    }
    if q.limit.is_some() {
        keep.push(("limit", filter.limit.to_string()));
    }
    let href = |extra: Option<&str>| {
        let mut pairs = keep.clone();
        if let Some(c) = extra {
            pairs.push(("cursor", c.to_owned()));
        }
        let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if qs.is_empty() {
            HERE.to_owned()
        } else {
            format!("{HERE}?{qs}")
        }
    };
    let next_href = page.next_cursor.as_deref().map(|c| href(Some(c)));
    let first_href = filter.after.is_some().then(|| href(None));
    let filtered = keep.iter().any(|(k, _)| *k != "limit");
    let rows = page.items.iter().map(asset_row).collect();
    render(
        StatusCode::OK,
        &AssetsPage {
            nav: Some(Nav::new(&p, HERE)),
            notice: None,
            error: None,
            facets,
            q: filter.text.clone().unwrap_or_default(),
            rows,
            next_href,
            first_href,
            filtered,
        },
    )
}

fn asset_row(a: &Asset) -> AssetRow {
    let s = &a.spec;
    AssetRow {
        id: s.asset_id.to_string(),
        kind: s.kind.to_string(),
        manufacturer: s.manufacturer.clone(),
        model: s.model.clone(),
        serial: s.serial_number.clone(),
        firmware: s.firmware_version.clone(),
        care_area: or_dash(s.care_area.as_deref()),
        zone: or_dash(s.zone.as_deref()),
        location: or_dash(s.location.as_deref()),
        state: a.lifecycle_state.to_string(),
    }
}

// ---------------------------------------------------------------- asset detail

pub struct HistoryRow {
    pub at: String,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub reason: String,
}

impl From<LifecycleEvent> for HistoryRow {
    fn from(e: LifecycleEvent) -> Self {
        HistoryRow {
            at: e.at,
            from: or_dash(e.from_state),
            to: e.to_state.to_string(),
            actor: e.actor,
            reason: e.reason,
        }
    }
}

/// A titled group of an asset's fields.
pub struct FactGroup {
    pub title: &'static str,
    pub slug: String,
    pub rows: Vec<(&'static str, String)>,
}

impl FactGroup {
    fn new(title: &'static str, rows: Vec<(&'static str, String)>) -> Self {
        FactGroup {
            title,
            slug: title.to_ascii_lowercase().replace(' ', "-"),
            rows,
        }
    }
}

#[derive(Template)]
#[template(path = "asset.html")]
struct AssetPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    id: String,
    title: String,
    state: String,
    facts: Vec<FactGroup>,
    notes: Option<String>,
    software: Vec<(String, String)>,
    history: Vec<HistoryRow>,
    /// Present when the user may move the asset and it has somewhere to go.
    successors: Option<Vec<Opt>>,
    reason: String,
    csrf: String,
    /// Certificates and enrollment (see [`super::pki::asset_pki`]).
    pki: super::pki::AssetPki,
    /// Quarantines of this asset, with their forms.
    responses: super::responses::AssetResponses,
    /// Open vulnerability findings (see [`super::advisories::asset_vulns`]).
    vulns: Option<Vec<super::findings::Row>>,
    /// Whether asset pages may be linked (always: this is one).
    link_assets: bool,
    /// Whether advisory and SBOM pages may be linked (vuln.read).
    link_advisories: bool,
    /// Whether the user may reset the asset's learned detection baseline.
    reset_baseline: bool,
}

pub(super) async fn asset_page(
    st: &AppState,
    p: &Principal,
    id: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
    form: Option<(&str, &str)>,
) -> UiResult {
    const HERE: &str = "/assets";
    let a = st.store.asset(id).await.ui(p, HERE)?;
    let history = st.store.lifecycle_history(id).await.ui(p, HERE)?;
    let s = &a.spec;
    let facts: Vec<FactGroup> = vec![
        FactGroup::new(
            "Device",
            vec![
                ("Asset ID", s.asset_id.to_string()),
                ("Kind", s.kind.to_string()),
                ("Manufacturer", s.manufacturer.clone()),
                ("Model", s.model.clone()),
                ("Device type", or_dash(s.device_type)),
                ("Serial number", s.serial_number.clone()),
                ("UDI", or_dash(s.udi.as_deref())),
                ("Firmware version", s.firmware_version.clone()),
                (
                    "CPE names",
                    or_dash(
                        (!s.cpe.is_empty())
                            .then(|| pumpward_core::inventory::format_cpe_list(&s.cpe)),
                    ),
                ),
            ],
        ),
        FactGroup::new(
            "Network",
            vec![
                ("Network zone", or_dash(s.zone.as_deref())),
                ("MAC address", or_dash(s.mac_address)),
                ("IP address", or_dash(s.ip_address)),
                ("Host name", or_dash(s.hostname.as_deref())),
                ("Last seen", or_dash(a.last_seen.map(timefmt::format))),
            ],
        ),
        FactGroup::new(
            "Place and support",
            vec![
                ("Care area", or_dash(s.care_area.as_deref())),
                ("Location", or_dash(s.location.as_deref())),
                ("Owner", or_dash(s.owner.as_deref())),
                (
                    "Vendor support contact",
                    or_dash(s.vendor_support_contact.as_deref()),
                ),
                (
                    "End of support",
                    or_dash(s.end_of_support.map(timefmt::format_date)),
                ),
            ],
        ),
        FactGroup::new(
            "Security and record",
            vec![
                ("Lifecycle state", a.lifecycle_state.to_string()),
                ("Stores PHI", s.phi_stored.to_string()),
                ("Credentials", s.credential_state.to_string()),
                ("Created", timefmt::format(a.created_at)),
                ("Updated", timefmt::format(a.updated_at)),
                ("Record version", a.version.to_string()),
            ],
        ),
    ];
    let (chosen, reason) = form.unwrap_or(("", ""));
    let next = a.lifecycle_state.successors();
    let pki = super::pki::asset_pki(st, p, &s.asset_id.to_string(), a.lifecycle_state).await?;
    let responses =
        super::responses::asset_responses(st, p, s.asset_id.as_str(), a.lifecycle_state).await?;
    let vulns = super::advisories::asset_vulns(st, p, &s.asset_id.to_string()).await?;
    let successors = (p.can(Permission::InventoryTransition) && !next.is_empty()).then(|| {
        next.iter()
            .map(|s| Opt::new(s.as_str(), s.as_str(), s.as_str() == chosen))
            .collect()
    });
    render(
        status,
        &AssetPage {
            nav: Some(Nav::new(p, HERE)),
            notice,
            error,
            id: s.asset_id.to_string(),
            title: format!("{} {} {}", s.asset_id, s.manufacturer, s.model),
            state: a.lifecycle_state.to_string(),
            facts,
            notes: s.notes.clone(),
            software: s
                .software
                .iter()
                .map(|c| (c.name.clone(), c.version.clone()))
                .collect(),
            history: history.into_iter().map(HistoryRow::from).collect(),
            successors,
            reason: reason.to_owned(),
            csrf: p.csrf().to_owned(),
            pki,
            responses,
            vulns,
            link_assets: true,
            link_advisories: p.can(Permission::VulnRead),
            reset_baseline: p.can(Permission::DetectionConfigure),
        },
    )
}

pub async fn asset(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    uri: Uri,
) -> UiResult {
    need(&st, &p, Permission::InventoryRead, "/assets").await?;
    asset_page(
        &st,
        &p,
        &id,
        StatusCode::OK,
        done_param(uri.query()),
        None,
        None,
    )
    .await
}

pub async fn transition(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::InventoryTransition, "/assets").await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, "/assets"))?;
    let (to, reason) = (f.get("to"), f.get("reason"));
    let again =
        |status, msg: String| asset_page(&st, &p, &id, status, None, Some(msg), Some((to, reason)));
    let to_state: LifecycleState = match to.parse() {
        Ok(s) => s,
        Err(e) => return again(StatusCode::UNPROCESSABLE_ENTITY, format!("New state: {e}.")).await,
    };
    if reason.trim().is_empty() {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Give a reason for the change; it is kept in the asset's history and the audit trail."
                .into(),
        )
        .await;
    }
    match st
        .store
        .transition_asset(&id, to_state, reason, &p.actor())
        .await
    {
        Ok(_) => Ok(see_other(&format!(
            "/assets/{}?done=transitioned",
            super::pki::segment(&id)
        ))),
        Err(e @ pumpward_store::StoreError::NotFound { .. }) => Err(e).ui(&p, "/assets"),
        Err(e) => {
            let api = crate::problem::ApiError::from(e);
            again(api.kind.status(), api.detail).await
        }
    }
}

/// `POST /assets/{id}/baseline/reset`: detection forgets what it learned
/// about the asset's normal behaviour (see
/// [`crate::detection_rules::LiveRules::reset_baseline`]).
pub async fn reset_baseline(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
) -> UiResult {
    // The CSRF token was checked by the middleware; the form has no fields.
    need(&st, &p, Permission::DetectionConfigure, "/assets").await?;
    match st.rules.reset_baseline(&st.store, &id, &p.actor()).await {
        Ok(_) => Ok(see_other(&format!(
            "/assets/{}?done=baseline-reset",
            super::pki::segment(&id)
        ))),
        Err(e) if e.kind == crate::problem::ErrorKind::NotFound => {
            Err(super::UiError::from(e).with_nav(&p, "/assets"))
        }
        Err(e) => asset_page(&st, &p, &id, e.kind.status(), None, Some(e.detail), None).await,
    }
}
