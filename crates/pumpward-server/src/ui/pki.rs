//! The device PKI and the fleet: which pumps are connected and how their
//! certificates stand, the certificate list and detail with revocation, and
//! one-time EST enrollment codes (shown once, with a QR code for the
//! biomedical engineer's scanner).
//!
//! Every page here needs the certificate authority; a server started
//! without one (`AppState::pki` is `None`) answers an HTML 503 page.

use super::inventory::asset_page;
use super::{
    done_param, need, or_dash, render, see_other, Fields, Nav, Opt, UiError, UiResult, UiResultExt,
    UiUser,
};
use crate::auth::Principal;
use crate::device::ConnectedPump;
use crate::pki::CaService;
use crate::problem::{ApiError, ErrorKind};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_core::inventory::{AssetKind, LifecycleState};
use pumpward_core::timefmt;
use pumpward_pki::RevocationReason;
use pumpward_store::{AssetFacet, AssetFilter, CertFilter, CertKind, CertificateRecord};
use std::collections::HashMap;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

const FLEET: &str = "/fleet";
const CERTS: &str = "/certificates";

/// Certificates that expire within this are flagged on every page.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// The fleet view walks at most this many pumps per page when an in-memory
/// filter (connection, certificate expiry) is set; the next page continues.
const FLEET_WALK: usize = 2_000;
/// The running CA, or the 503 page of a server started without one.
fn ca<'a>(st: &'a AppState, p: &Principal, here: &str) -> Result<&'a Arc<CaService>, UiError> {
    st.pki.as_ref().ok_or_else(|| {
        UiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Certificate authority unavailable",
            "This Pumpward server runs without its certificate authority, so device \
             certificates, enrollment codes and pump connections cannot be shown or changed \
             here. Ask your Pumpward administrator to start the server with its CA.",
        )
        .with_nav(p, here)
    })
}

/// A 400 page for a filter value that cannot be used.
pub(super) fn bad_filter(p: &Principal, here: &str, msg: String) -> UiError {
    UiError::from(ApiError::bad_request(msg)).with_nav(p, here)
}

/// The query string's pairs; empty values count as absent.
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    pub(super) fn parse(q: Option<&str>, p: &Principal, here: &str) -> Result<Query, UiError> {
        serde_urlencoded::from_str(q.unwrap_or(""))
            .map(Query)
            .map_err(|e| bad_filter(p, here, format!("The address is not valid: {e}.")))
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A number of days in 0..=3650, if given.
    fn days(
        &self,
        name: &str,
        label: &str,
        p: &Principal,
        here: &str,
    ) -> Result<Option<i64>, UiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(d) if (0..=3650).contains(&d) => Ok(Some(d)),
                _ => Err(bad_filter(
                    p,
                    here,
                    format!("{label}: give a whole number of days from 0 to 3650, not {v:?}."),
                )),
            },
        }
    }

    /// The page size: 1 to 500, by default 50.
    pub(super) fn limit(&self, p: &Principal, here: &str) -> Result<Option<usize>, UiError> {
        match self.get("limit") {
            None => Ok(None),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=500).contains(&n) => Ok(Some(n)),
                _ => Err(bad_filter(
                    p,
                    here,
                    format!("Page size: 1 to 500, not {v:?}."),
                )),
            },
        }
    }
}

/// A link to `here` with these query pairs.
pub(super) fn href(here: &str, pairs: &[(&str, String)]) -> String {
    let qs = serde_urlencoded::to_string(pairs).unwrap_or_default();
    if qs.is_empty() {
        here.to_owned()
    } else {
        format!("{here}?{qs}")
    }
}

/// Percent-encodes a path segment (serials and asset ids are URL-safe
/// already; this keeps a redirect header valid whatever arrives). Used by
/// every page that redirects to an asset or a certificate.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A stored time as people read it: `2026-11-26 06:32:16` (UTC).
fn shown(t: &str) -> String {
    match timefmt::parse(t) {
        Ok(t) => timefmt::format(t)[..19].replace('T', " "),
        Err(_) => t.to_owned(),
    }
}

/// How a certificate stands now, for a badge: (css class, words).
fn standing(c: &CertificateRecord, now: OffsetDateTime) -> (&'static str, String) {
    if let Some(r) = &c.revocation_reason {
        return ("revoked", format!("revoked ({r})"));
    }
    let Ok(end) = timefmt::parse(&c.not_after) else {
        return ("unknown", "validity unknown".into());
    };
    let left = end - now;
    if left <= Duration::ZERO {
        let ago = (-left).whole_days();
        return (
            "expired",
            match ago {
                0 => "expired today".into(),
                1 => "expired 1 day ago".into(),
                n => format!("expired {n} days ago"),
            },
        );
    }
    if timefmt::parse(&c.not_before).is_ok_and(|b| b > now) {
        return ("unknown", "not yet valid".into());
    }
    let days = left.whole_days();
    let words = match days {
        0 => "expires within a day".into(),
        1 => "expires in 1 day".into(),
        n => format!("expires in {n} days"),
    };
    if days < EXPIRY_WARNING_DAYS {
        ("expiring", words)
    } else {
        ("valid", format!("valid, {words}"))
    }
}

/// One certificate as a table row.
pub struct CertRow {
    pub serial: String,
    pub kind: &'static str,
    pub asset_id: Option<String>,
    pub subject: String,
    pub not_before: String,
    pub not_after: String,
    pub status: &'static str,
    pub status_label: String,
}

fn kind_str(k: CertKind) -> &'static str {
    match k {
        CertKind::Device => "device",
        CertKind::Server => "server",
        CertKind::LibrarySigning => "library signing",
    }
}

impl CertRow {
    pub fn new(c: &CertificateRecord, now: OffsetDateTime) -> CertRow {
        let (status, status_label) = standing(c, now);
        CertRow {
            serial: c.serial.clone(),
            kind: kind_str(c.kind),
            asset_id: c.asset_id.clone(),
            subject: c.subject.clone(),
            not_before: shown(&c.not_before),
            not_after: shown(&c.not_after),
            status,
            status_label,
        }
    }
}

// ---------------------------------------------------------------- fleet

pub struct FleetRow {
    pub id: String,
    /// Whether the asset page may be linked (the user has inventory.read).
    pub link: bool,
    pub connected: bool,
    pub peer: String,
    pub last_seen: String,
    pub firmware: String,
    pub care_area: String,
    pub state: String,
    pub cert: Option<CertRow>,
}

pub struct FleetCounts {
    pub pumps: i64,
    pub connected: i64,
    pub disconnected: i64,
    pub expiring: i64,
    pub not_enrolled: i64,
    pub connected_href: String,
    pub disconnected_href: String,
    pub expiring_href: String,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    counts: FleetCounts,
    connections: Vec<Opt>,
    care_areas: Vec<Opt>,
    states: Vec<Opt>,
    expiring: bool,
    warning_days: i64,
    rows: Vec<FleetRow>,
    next_href: Option<String>,
    first_href: Option<String>,
    /// Set when the walk stopped early: the last pump it looked at.
    walked_to: Option<String>,
    filtered: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Connection {
    Any,
    Connected,
    Disconnected,
}

pub async fn fleet(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::PkiRead, FLEET).await?;
    ca(&st, &p, FLEET)?;
    let q = Query::parse(uri.query(), &p, FLEET)?;
    let connection = match q.get("connection") {
        None => Connection::Any,
        Some("connected") => Connection::Connected,
        Some("disconnected") => Connection::Disconnected,
        Some(v) => {
            return Err(bad_filter(
                &p,
                FLEET,
                format!("Connection: choose connected or not connected, not {v:?}."),
            ))
        }
    };
    let care_area = q.get("care_area").map(str::to_owned);
    let state = match q.get("state") {
        None => None,
        Some(v) => Some(
            v.parse::<LifecycleState>()
                .map_err(|e| bad_filter(&p, FLEET, format!("Lifecycle state: {e}.")))?,
        ),
    };
    let expiring_days = q.days("expiring", "Certificate expiring within", &p, FLEET)?;
    let limit = q.limit(&p, FLEET)?;
    let cursor = q.get("cursor").map(str::to_owned);
    let page_size = limit.unwrap_or(50);

    let now = OffsetDateTime::now_utc();
    let connected: HashMap<String, ConnectedPump> = st
        .sessions
        .connected()
        .into_iter()
        .map(|c| (c.asset_id.clone(), c))
        .collect();
    let totals = st
        .store
        .fleet_certificate_counts(now + Duration::days(EXPIRY_WARNING_DAYS))
        .await
        .ui(&p, FLEET)?;
    let connected_n = connected.len() as i64;
    let counts = FleetCounts {
        pumps: totals.pumps,
        connected: connected_n,
        disconnected: (totals.pumps - connected_n).max(0),
        expiring: totals.expiring,
        not_enrolled: (totals.pumps - totals.enrolled).max(0),
        connected_href: href(FLEET, &[("connection", "connected".into())]),
        disconnected_href: href(FLEET, &[("connection", "disconnected".into())]),
        expiring_href: href(FLEET, &[("expiring", EXPIRY_WARNING_DAYS.to_string())]),
    };

    // Walk the pumps in id order, keeping those the in-memory filters pass.
    let expiring_before = expiring_days.map(|d| timefmt::format(now + Duration::days(d)));
    let in_memory = connection != Connection::Any || expiring_before.is_some();
    let link = p.can(Permission::InventoryRead);
    let mut rows = Vec::new();
    let mut after = cursor.clone();
    let mut walked = 0usize;
    let mut next = None;
    let mut walked_to = None;
    'walk: loop {
        let page = st
            .store
            .list_assets(&AssetFilter {
                kind: Some(AssetKind::Pump),
                care_area: care_area.clone(),
                state,
                after: after.clone(),
                limit: if in_memory { 250 } else { page_size as i64 },
                ..Default::default()
            })
            .await
            .ui(&p, FLEET)?;
        let ids: Vec<String> = page
            .items
            .iter()
            .map(|a| a.spec.asset_id.to_string())
            .collect();
        let certs = st
            .store
            .current_device_certificates(&ids)
            .await
            .ui(&p, FLEET)?;
        for (i, a) in page.items.iter().enumerate() {
            walked += 1;
            let id = &ids[i];
            let conn = connected.get(id);
            let cert = certs.get(id);
            let keep = match connection {
                Connection::Any => true,
                Connection::Connected => conn.is_some(),
                Connection::Disconnected => conn.is_none(),
            } && expiring_before
                .as_ref()
                .is_none_or(|b| cert.is_some_and(|c| c.not_after < *b));
            if keep {
                let s = &a.spec;
                rows.push(FleetRow {
                    id: id.clone(),
                    link,
                    connected: conn.is_some(),
                    peer: conn.map(|c| c.peer.clone()).unwrap_or_default(),
                    last_seen: or_dash(a.last_seen.map(|t| shown(&timefmt::format(t)))),
                    firmware: s.firmware_version.clone(),
                    care_area: or_dash(s.care_area.as_deref()),
                    state: a.lifecycle_state.to_string(),
                    cert: cert.map(|c| CertRow::new(c, now)),
                });
            }
            let more = i + 1 < page.items.len() || page.next_cursor.is_some();
            if rows.len() >= page_size {
                next = more.then(|| id.clone());
                break 'walk;
            }
            if walked >= FLEET_WALK && more {
                next = Some(id.clone());
                walked_to = Some(id.clone());
                break 'walk;
            }
        }
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }

    // The filters as given, for the paging links.
    let mut keep: Vec<(&str, String)> = Vec::new();
    match connection {
        Connection::Any => {}
        Connection::Connected => keep.push(("connection", "connected".into())),
        Connection::Disconnected => keep.push(("connection", "disconnected".into())),
    }
    if let Some(c) = &care_area {
        keep.push(("care_area", c.clone()));
    }
    if let Some(s) = state {
        keep.push(("state", s.as_str().into()));
    }
    if let Some(d) = expiring_days {
        keep.push(("expiring", d.to_string()));
    }
    let filtered = !keep.is_empty();
    if let Some(l) = limit {
        keep.push(("limit", l.to_string()));
    }
    let with_cursor = |c: &str| {
        let mut pairs = keep.clone();
        pairs.push(("cursor", c.to_owned()));
        href(FLEET, &pairs)
    };
    let next_href = next.as_deref().map(with_cursor);
    let first_href = cursor.is_some().then(|| href(FLEET, &keep));

    let chosen = |v: &str| {
        matches!(
            (connection, v),
            (Connection::Connected, "connected")
                | (Connection::Disconnected, "disconnected")
                | (Connection::Any, "")
        )
    };
    let connections = [
        ("", "Any"),
        ("connected", "Connected now"),
        ("disconnected", "Not connected"),
    ]
    .into_iter()
    .map(|(v, l)| Opt::new(v, l, chosen(v)))
    .collect();
    let mut care_areas = vec![Opt::new("", "Any", care_area.is_none())];
    for a in st
        .store
        .asset_facet(AssetFacet::CareArea)
        .await
        .ui(&p, FLEET)?
    {
        let sel = care_area.as_deref() == Some(a.as_str());
        care_areas.push(Opt::new(a.clone(), a, sel));
    }
    let mut states = vec![Opt::new("", "Any", state.is_none())];
    states.extend(
        LifecycleState::ALL
            .iter()
            .map(|s| Opt::new(s.as_str(), s.as_str(), Some(*s) == state)),
    );
    render(
        StatusCode::OK,
        &FleetPage {
            nav: Some(Nav::new(&p, FLEET)),
            notice: None,
            error: None,
            counts,
            connections,
            care_areas,
            states,
            expiring: expiring_days.is_some(),
            warning_days: expiring_days.unwrap_or(EXPIRY_WARNING_DAYS),
            rows,
            next_href,
            first_href,
            walked_to,
            filtered,
        },
    )
}

// ---------------------------------------------------------------- certificate list

#[derive(Template)]
#[template(path = "certificates.html")]
struct CertificatesPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    asset_id: String,
    kinds: Vec<Opt>,
    statuses: Vec<Opt>,
    expiring_days: String,
    rows: Vec<CertRow>,
    /// Whether asset pages may be linked (the user has inventory.read).
    link_assets: bool,
    next_href: Option<String>,
    first_href: Option<String>,
    filtered: bool,
}

pub async fn certificates(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::PkiRead, FLEET).await?;
    ca(&st, &p, FLEET)?;
    let q = Query::parse(uri.query(), &p, FLEET)?;
    let asset_id = q.get("asset_id").map(str::to_owned);
    if asset_id.as_ref().is_some_and(|a| a.len() > 200) {
        return Err(bad_filter(
            &p,
            FLEET,
            "Asset ID: at most 200 characters.".into(),
        ));
    }
    let kind = match q.get("kind") {
        None => None,
        Some("device") => Some(CertKind::Device),
        Some("server") => Some(CertKind::Server),
        Some(v) => {
            return Err(bad_filter(
                &p,
                FLEET,
                format!("Kind: choose device or server, not {v:?}."),
            ))
        }
    };
    let revoked = match q.get("status") {
        None => None,
        Some("unrevoked") => Some(false),
        Some("revoked") => Some(true),
        Some(v) => {
            return Err(bad_filter(
                &p,
                FLEET,
                format!("Revocation: choose revoked or not revoked, not {v:?}."),
            ))
        }
    };
    let expiring_days = q.days("expiring_days", "Expiring within", &p, FLEET)?;
    let limit = q.limit(&p, FLEET)?;
    let cursor = q.get("cursor").map(str::to_owned);
    let now = OffsetDateTime::now_utc();
    let (items, next) = st
        .store
        .list_certificates(&CertFilter {
            asset_id: asset_id.clone(),
            kind,
            expiring: expiring_days.map(|d| (now + Duration::days(d), now)),
            revoked,
            after: cursor.clone(),
            limit: limit.unwrap_or(50) as i64,
        })
        .await
        .ui(&p, FLEET)?;

    let mut keep: Vec<(&str, String)> = Vec::new();
    if let Some(a) = &asset_id {
        keep.push(("asset_id", a.clone()));
    }
    if let Some(k) = kind {
        keep.push(("kind", kind_str(k).into()));
    }
    if let Some(r) = revoked {
        keep.push(("status", if r { "revoked" } else { "unrevoked" }.into()));
    }
    if let Some(d) = expiring_days {
        keep.push(("expiring_days", d.to_string()));
    }
    let filtered = !keep.is_empty();
    if let Some(l) = limit {
        keep.push(("limit", l.to_string()));
    }
    let next_href = next.as_deref().map(|c| {
        let mut pairs = keep.clone();
        pairs.push(("cursor", c.to_owned()));
        href(CERTS, &pairs)
    });
    let first_href = cursor.is_some().then(|| href(CERTS, &keep));
    let kinds = [
        ("", "Any"),
        ("device", "Pump (device)"),
        ("server", "Server"),
    ]
    .into_iter()
    .map(|(v, l)| Opt::new(v, l, kind.map_or("", kind_str) == v))
    .collect();
    let status_now = match revoked {
        None => "",
        Some(false) => "unrevoked",
        Some(true) => "revoked",
    };
    let statuses = [
        ("", "Any"),
        ("unrevoked", "Not revoked"),
        ("revoked", "Revoked"),
    ]
    .into_iter()
    .map(|(v, l)| Opt::new(v, l, status_now == v))
    .collect();
    render(
        StatusCode::OK,
        &CertificatesPage {
            nav: Some(Nav::new(&p, FLEET)),
            notice: None,
            error: None,
            asset_id: asset_id.unwrap_or_default(),
            kinds,
            statuses,
            expiring_days: expiring_days.map(|d| d.to_string()).unwrap_or_default(),
            rows: items.iter().map(|c| CertRow::new(c, now)).collect(),
            link_assets: p.can(Permission::InventoryRead),
            next_href,
            first_href,
            filtered,
        },
    )
}

// ---------------------------------------------------------------- certificate detail

#[derive(Template)]
#[template(path = "certificate.html")]
struct CertificatePage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    cert: CertRow,
    /// Whether the asset page may be linked.
    link_asset: bool,
    /// The certificate list filtered to this certificate's asset.
    asset_certs_href: String,
    facts: Vec<(&'static str, String)>,
    fingerprint: String,
    pem: String,
    /// (when, reason, by) once revoked.
    revocation: Option<(String, String, String)>,
    /// The revocation form's reasons, when the user may revoke and the
    /// certificate is not revoked yet.
    reasons: Option<Vec<Opt>>,
    csrf: String,
}

/// The reasons offered in the revocation form (RFC 5280 names), with what
/// each means for a pump. `remove-from-crl` belongs to delta CRLs only and
/// is not offered.
fn reason_label(r: RevocationReason) -> &'static str {
    match r {
        RevocationReason::Unspecified => "no specific reason",
        RevocationReason::KeyCompromise => "the pump's private key is known or suspected lost",
        RevocationReason::CaCompromise => "the certificate authority's key was compromised",
        RevocationReason::AffiliationChanged => "the pump moved to another organisation",
        RevocationReason::Superseded => "replaced by a newer certificate",
        RevocationReason::CessationOfOperation => "the pump was taken out of service for good",
        RevocationReason::CertificateHold => "suspended, e.g. the pump is reported missing",
        RevocationReason::RemoveFromCrl => "only used in delta CRLs",
        RevocationReason::PrivilegeWithdrawn => "the pump may no longer use the network",
        RevocationReason::AaCompromise => "an attribute authority was compromised",
    }
}

fn offered_reasons() -> impl Iterator<Item = RevocationReason> {
    RevocationReason::ALL
        .into_iter()
        .filter(|r| *r != RevocationReason::RemoveFromCrl)
}

async fn certificate_page(
    st: &AppState,
    p: &Principal,
    serial: &str,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
    chosen_reason: &str,
) -> UiResult {
    ca(st, p, FLEET)?;
    let c = st.store.certificate(serial).await.ui(p, FLEET)?;
    let now = OffsetDateTime::now_utc();
    let info = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::CertificateDer::from_pem_slice(c.pem.as_bytes())
            .ok()
            .and_then(|der| pumpward_pki::inspect_certificate(&der).ok())
    };
    let mut facts = vec![
        ("Serial number", c.serial.clone()),
        ("Kind", kind_str(c.kind).to_owned()),
        ("Subject", c.subject.clone()),
        (
            "Issuer",
            info.as_ref()
                .map(|i| i.issuer.clone())
                .unwrap_or_else(|| "— (the stored PEM could not be read)".into()),
        ),
        ("Valid from (UTC)", shown(&c.not_before)),
        ("Valid until (UTC)", shown(&c.not_after)),
        ("Pump serial number", or_dash(c.device_serial.as_deref())),
    ];
    if let Some(i) = &info {
        if let Some(m) = &i.mac {
            facts.push(("MAC address", m.clone()));
        }
        if !i.dns_names.is_empty() {
            facts.push(("DNS names", i.dns_names.join(", ")));
        }
        if !i.ip_addresses.is_empty() {
            facts.push((
                "IP addresses",
                i.ip_addresses
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
    }
    facts.push(("Issued (UTC)", shown(&c.issued_at)));
    facts.push(("Issued by", c.issued_by.clone()));
    let revocation = c.revoked_at.as_ref().map(|at| {
        (
            shown(at),
            c.revocation_reason.clone().unwrap_or_default(),
            c.revoked_by.clone().unwrap_or_default(),
        )
    });
    let reasons = (p.can(Permission::PkiRevoke) && c.revoked_at.is_none()).then(|| {
        let mut v = vec![Opt::new("", "Choose a reason", chosen_reason.is_empty())];
        v.extend(offered_reasons().map(|r| {
            Opt::new(
                r.as_str(),
                format!("{} — {}", r.as_str(), reason_label(r)),
                r.as_str() == chosen_reason,
            )
        }));
        v
    });
    render(
        status,
        &CertificatePage {
            nav: Some(Nav::new(p, FLEET)),
            notice,
            error,
            cert: CertRow::new(&c, now),
            link_asset: p.can(Permission::InventoryRead),
            asset_certs_href: href(
                CERTS,
                &[("asset_id", c.asset_id.clone().unwrap_or_default())],
            ),
            facts,
            fingerprint: c.fingerprint.clone(),
            pem: c.pem.clone(),
            revocation,
            reasons,
            csrf: p.csrf().to_owned(),
        },
    )
}

pub async fn certificate(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(serial): Path<String>,
    uri: Uri,
) -> UiResult {
    need(&st, &p, Permission::PkiRead, FLEET).await?;
    certificate_page(
        &st,
        &p,
        &serial,
        StatusCode::OK,
        done_param(uri.query()),
        None,
        "",
    )
    .await
}

pub async fn revoke(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(serial): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::PkiRevoke, FLEET).await?;
    ca(&st, &p, FLEET)?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, FLEET))?;
    let chosen = f.get("reason");
    let again =
        |status, msg: String| certificate_page(&st, &p, &serial, status, None, Some(msg), chosen);
    let reason = match chosen.parse::<RevocationReason>() {
        Ok(r) if r != RevocationReason::RemoveFromCrl => r,
        _ => {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose the reason for the revocation; it is published in the CRL and kept in the audit trail."
                    .into(),
            )
            .await
        }
    };
    if f.get("confirm") != "yes" {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick the confirmation: revocation cannot be undone, and the pump loses its connection at once."
                .into(),
        )
        .await;
    }
    match crate::api_pki::revoke_and_disconnect(&st, &serial, reason, &p.actor()).await {
        Ok(rec) => Ok(see_other(&format!(
            "/certificates/{}?done=certificate-revoked",
            segment(&rec.serial)
        ))),
        Err(e) if e.kind == ErrorKind::Conflict => again(e.kind.status(), e.detail).await,
        Err(e) => Err(UiError::from(e).with_nav(&p, FLEET)),
    }
}

// ---------------------------------------------------------------- enrollment codes

/// A one-time code just created, shown on this one page only.
#[derive(Template)]
#[template(path = "enrollment_code.html")]
struct EnrollmentCodePage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    asset_id: String,
    device_serial: String,
    /// The code's groups of four, for reading aloud.
    groups: Vec<String>,
    code: String,
    expires_at: String,
    est_url: String,
    payload: String,
    /// Inline SVG made by [`qr_svg`]: markup built only from numbers and
    /// fixed strings, never from input text, so it is safe to embed.
    qr: String,
}

/// The EST base URL pumps use: the host name this page was reached by, on
/// the gateway's port (`--gateway-listen`).
pub fn est_base_url(headers: &HeaderMap, uri: &Uri, gateway_port: u16) -> String {
    let authority = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let host = host_of(&authority).unwrap_or("localhost");
    format!("https://{host}:{gateway_port}/.well-known/est/")
}

/// The host part of an authority (`name`, `name:port`, `[v6]:port`), if it
/// is made only of the characters a host name or address may have.
fn host_of(authority: &str) -> Option<&str> {
    let host = if authority.starts_with('[') {
        &authority[..=authority.find(']')?]
    } else {
        match authority.split_once(':') {
            Some((h, _)) => h,
            None => authority,
        }
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then_some(host)
}

/// What the QR code says (documented in `docs/device-protocol.md`, §1.1):
/// `PUMPWARD-ENROLL:v1:<asset id>:<code>:<EST base URL>`. An asset id may
/// contain `:`, so it is written with `:` as `%3A` (asset ids have no `%`);
/// a reader splits on the first four colons and takes the rest as the URL.
pub fn enrollment_payload(asset_id: &str, code: &str, est_url: &str) -> String {
    format!(
        "PUMPWARD-ENROLL:v1:{}:{code}:{est_url}",
        asset_id.replace(':', "%3A")
    )
}

/// The QR code of `payload` as an inline `<svg>` element (no XML
/// declaration), labelled by the element with id `qr-caption`.
pub fn qr_svg(payload: &str) -> Result<String, UiError> {
    use qrcode::render::svg;
    let code =
        qrcode::QrCode::with_error_correction_level(payload, qrcode::EcLevel::M).map_err(|e| {
            tracing::error!(error = %e, "cannot make the enrollment QR code");
            UiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The QR code could not be made; type the code instead.",
            )
        })?;
    let image = code
        .render::<svg::Color>()
        .min_dimensions(240, 240)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .quiet_zone(true)
        .build();
    let start = image.find("<svg").unwrap_or(0);
    Ok(image[start..].replacen(
        "<svg ",
        r#"<svg class="qr" role="img" aria-labelledby="qr-caption" focusable="false" "#,
        1,
    ))
}

pub async fn enrollment_code(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> UiResult {
    const HERE: &str = "/assets";
    need(&st, &p, Permission::PkiEnroll, HERE).await?;
    let ca = ca(&st, &p, HERE)?;
    let (code, e) = match ca.create_enrollment_code(&id, &p.actor()).await {
        Ok(x) => x,
        Err(e @ pumpward_store::StoreError::Invalid(_)) => {
            let api = ApiError::from(e);
            return asset_page(
                &st,
                &p,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(api.detail),
                None,
            )
            .await;
        }
        Err(e) => return Err(e).ui(&p, HERE),
    };
    let est_url = est_base_url(&headers, &uri, st.gateway_port);
    let payload = enrollment_payload(&e.asset_id, &code, &est_url);
    let qr = qr_svg(&payload).map_err(|e| e.with_nav(&p, HERE))?;
    render(
        StatusCode::OK,
        &EnrollmentCodePage {
            nav: Some(Nav::new(&p, HERE)),
            notice: None,
            error: None,
            asset_id: e.asset_id.clone(),
            device_serial: e.device_serial.clone(),
            groups: code.split('-').map(str::to_owned).collect(),
            code,
            expires_at: shown(&e.expires_at),
            est_url,
            payload,
            qr,
        },
    )
}

// ---------------------------------------------------------------- on the asset page

/// The certificate part of the asset page.
pub struct AssetPki {
    /// Present when the user may read certificates: the newest first.
    pub certs: Option<Vec<CertRow>>,
    /// More certificates than shown.
    pub more: bool,
    pub list_href: String,
    /// Present when the user may create enrollment codes: `Ok(how long a
    /// code lasts)` when the form is offered, `Err(why not)` otherwise.
    pub enroll: Option<Result<String, String>>,
}

/// A code's lifetime in words: "1 hour", "90 minutes", "2 days".
fn lifetime(d: Duration) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if d.whole_days() > 0 && d == Duration::days(d.whole_days()) {
        plural(d.whole_days(), "day")
    } else if d.whole_hours() > 0 && d == Duration::hours(d.whole_hours()) {
        plural(d.whole_hours(), "hour")
    } else {
        plural(d.whole_minutes().max(1), "minute")
    }
}

/// How many of an asset's certificates its page lists.
const ASSET_PAGE_CERTS: usize = 5;

pub async fn asset_pki(
    st: &AppState,
    p: &Principal,
    asset_id: &str,
    state: LifecycleState,
) -> Result<AssetPki, UiError> {
    let now = OffsetDateTime::now_utc();
    let mut more = false;
    let certs = if p.can(Permission::PkiRead) && st.pki.is_some() {
        let (mut items, next) = st
            .store
            .list_certificates(&CertFilter {
                asset_id: Some(asset_id.to_owned()),
                limit: 500,
                ..Default::default()
            })
            .await
            .ui(p, "/assets")?;
        items.sort_by(|a, b| b.issued_at.cmp(&a.issued_at).then(b.serial.cmp(&a.serial)));
        more = next.is_some() || items.len() > ASSET_PAGE_CERTS;
        items.truncate(ASSET_PAGE_CERTS);
        Some(items.iter().map(|c| CertRow::new(c, now)).collect())
    } else {
        None
    };
    let enroll = p.can(Permission::PkiEnroll).then(|| match &st.pki {
        None => Err("This server runs without its certificate authority, so no enrollment code can be made here.".into()),
        Some(ca) if state.may_connect() || state == LifecycleState::Provisioned => {
            Ok(lifetime(ca.settings().enrollment_code_ttl))
        }
        Some(_) => {
            Err(format!(
                "This asset is {state}; only provisioned, in-service or maintenance pumps can be enrolled."
            ))
        }
    });
    Ok(AssetPki {
        certs,
        more,
        list_href: href(CERTS, &[("asset_id", asset_id.to_owned())]),
        enroll,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_keeps_only_host_names_and_addresses() {
        assert_eq!(
            host_of("pumpward.hospital.example:8443"),
            Some("pumpward.hospital.example")
        );
        assert_eq!(host_of("10.0.0.5"), Some("10.0.0.5"));
        assert_eq!(host_of("[2001:db8::1]:8443"), Some("[2001:db8::1]"));
        assert_eq!(host_of(""), None);
        assert_eq!(host_of("evil\"><x"), None);
        assert_eq!(host_of("a b:1"), None);
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "pw.example:8443".parse().unwrap());
        assert_eq!(
            est_base_url(&h, &Uri::from_static("/assets/P-1/enrollment-code"), 8444),
            "https://pw.example:8444/.well-known/est/"
        );
    }

    #[test]
    fn lifetimes_in_words() {
        assert_eq!(lifetime(Duration::hours(1)), "1 hour");
        assert_eq!(lifetime(Duration::minutes(90)), "90 minutes");
        assert_eq!(lifetime(Duration::days(2)), "2 days");
        assert_eq!(lifetime(Duration::seconds(10)), "1 minute");
    }

    #[test]
    fn payload_escapes_colons_of_the_asset_id() {
        let p = enrollment_payload(
            "ICU:PUMP-7",
            "ABCD-EFGH",
            "https://gw:8444/.well-known/est/",
        );
        assert_eq!(
            p,
            "PUMPWARD-ENROLL:v1:ICU%3APUMP-7:ABCD-EFGH:https://gw:8444/.well-known/est/"
        );
        let parts: Vec<&str> = p.splitn(5, ':').collect();
        assert_eq!(parts[2].replace("%3A", ":"), "ICU:PUMP-7");
        assert_eq!(parts[4], "https://gw:8444/.well-known/est/");
    }

    #[test]
    fn qr_is_a_bare_labelled_svg_element() {
        let svg = qr_svg(
            "PUMPWARD-ENROLL:v1:P-1:ABCD-EFGH-JKMN-PQRS-TVWX:https://h:8444/.well-known/est/",
        )
        .unwrap();
        assert!(svg.starts_with(r#"<svg class="qr" role="img" aria-labelledby="qr-caption""#));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
        // Numbers and fixed words only: nothing of the payload is in it.
        assert!(!svg.contains("ABCD"));
    }
}
