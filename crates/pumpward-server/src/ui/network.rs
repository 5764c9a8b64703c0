//! The network pages: `/network` (the zone diagram with the observed
//! conduits beside the allowed ones, and the unknown devices) and
//! `/network/policy` (the policy in force, its editor and its versions).
//!
//! The diagram is SVG built by the template from numbers computed here and
//! names escaped as text, so nothing is marked safe.

use super::{done_param, need, render, see_other, Fields, Nav, UiResult, UiResultExt, UiUser};
use crate::api_network::{current_text, review};
use crate::auth::Principal;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_net::observed::ObservedConduit;
use pumpward_net::{Issue, Policy, PolicyDocument, Severity};
use pumpward_store::PolicyVersion;

const NETWORK: &str = "/network";
const POLICY: &str = "/network/policy";

/// A zone's box in the diagram.
struct ZoneBox {
    name: String,
    x: i32,
    y: i32,
    /// Text anchor: the box's centre.
    cx: i32,
    cy: i32,
    device_zone: bool,
    /// Not a zone of the policy (`internet`, `unzoned`).
    outside: bool,
}

/// A line of the diagram.
struct Line {
    x1: i32,
    y1: i32,
    x2: i32,
    y2: i32,
    /// `allowed` (a conduit), `observed-ok`, `observed-bad`.
    class: &'static str,
    colour: &'static str,
    dash: &'static str,
    width: u8,
    /// Label at the middle (observed: flow counts).
    label: String,
    lx: i32,
    ly: i32,
    title: String,
}

const BOX_W: i32 = 170;
const BOX_H: i32 = 40;
const WIDTH: i32 = 900;
const HEIGHT: i32 = 620;

/// Places zones on a circle (policy order, then `internet` and `unzoned`
/// when traffic was seen there) and draws allowed conduits as grey lines,
/// observed traffic as green (allowed) or red (violations) lines offset
/// beside them, each labelled with its flow count.
fn diagram(policy: &Policy, observed: &[ObservedConduit]) -> (Vec<ZoneBox>, Vec<Line>) {
    let mut names: Vec<(String, bool, bool)> = policy
        .zones
        .iter()
        .map(|z| (z.name.clone(), z.device_zone, false))
        .collect();
    for extra in ["internet", "unzoned"] {
        if observed
            .iter()
            .any(|o| o.from_zone == extra || o.to_zone == extra)
            || (extra == "internet"
                && policy
                    .conduits
                    .iter()
                    .any(|c| c.from == extra || c.to == extra))
        {
            names.push((extra.to_owned(), false, true));
        }
    }
    let n = names.len().max(1) as f64;
    let (cx, cy) = (f64::from(WIDTH) / 2.0, f64::from(HEIGHT) / 2.0);
    let (rx, ry) = (
        cx - f64::from(BOX_W) / 2.0 - 10.0,
        cy - f64::from(BOX_H) / 2.0 - 10.0,
    );
    let boxes: Vec<ZoneBox> = names
        .into_iter()
        .enumerate()
        .map(|(i, (name, device_zone, outside))| {
            let a = std::f64::consts::TAU * i as f64 / n - std::f64::consts::FRAC_PI_2;
            let (x, y) = ((cx + rx * a.cos()) as i32, (cy + ry * a.sin()) as i32);
            ZoneBox {
                name,
                x: x - BOX_W / 2,
                y: y - BOX_H / 2,
                cx: x,
                cy: y,
                device_zone,
                outside,
            }
        })
        .collect();
    let at = |name: &str| boxes.iter().find(|b| b.name == name).map(|b| (b.cx, b.cy));
    let mut lines = Vec::new();
    let mut push =
        |from: &str, to: &str, offset: i32, class: &'static str, label: String, title: String| {
            let (Some((x1, y1)), Some((x2, y2))) = (at(from), at(to)) else {
                return;
            };
            // Offset perpendicular to the line, so observed traffic sits beside
            // the allowed conduit it uses (or lacks).
            let (dx, dy) = (f64::from(x2 - x1), f64::from(y2 - y1));
            let len = (dx * dx + dy * dy).sqrt().max(1.0);
            let (ox, oy) = (
                (-dy / len * f64::from(offset)) as i32,
                (dx / len * f64::from(offset)) as i32,
            );
            let (colour, dash, width) = match class {
                "allowed" => ("#8a8f98", "6 4", 2),
                "observed-ok" => ("#1b7f3b", "", 3),
                _ => ("#c62828", "", 3),
            };
            lines.push(Line {
                x1: x1 + ox,
                y1: y1 + oy,
                x2: x2 + ox,
                y2: y2 + oy,
                class,
                colour,
                dash,
                width,
                lx: (x1 + x2) / 2 + ox * 2,
                ly: (y1 + y2) / 2 + oy * 2,
                label,
                title,
            });
        };
    for c in &policy.conduits {
        push(
            &c.from,
            &c.to,
            0,
            "allowed",
            String::new(),
            format!("allowed: {} ({} → {})", c.name, c.from, c.to),
        );
    }
    // One observed line per zone pair and verdict, with the summed counts.
    let mut pairs: std::collections::BTreeMap<(&str, &str, bool), (u64, u64)> =
        std::collections::BTreeMap::new();
    for o in observed {
        let bad = o.violations > 0;
        let e = pairs
            .entry((o.from_zone.as_str(), o.to_zone.as_str(), bad))
            .or_default();
        e.0 += o.flows;
        e.1 += o.violations;
    }
    for ((from, to, bad), (flows, violations)) in pairs {
        let (class, offset) = if bad {
            ("observed-bad", -7)
        } else {
            ("observed-ok", 7)
        };
        let label = if bad {
            format!("{violations} violating")
        } else {
            format!("{flows} flows")
        };
        let title = format!("observed {from} → {to}: {flows} flows, {violations} violations");
        push(from, to, offset, class, label, title);
    }
    (boxes, lines)
}

/// An allowed conduit for the tables.
struct ConduitRow {
    name: String,
    from: String,
    to: String,
    transport: &'static str,
    ports: String,
    both_ways: bool,
    purpose: String,
}

fn conduit_rows(p: &Policy) -> Vec<ConduitRow> {
    p.conduits
        .iter()
        .map(|c| ConduitRow {
            name: c.name.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
            transport: c.transport.as_str(),
            ports: if c.ports.is_empty() {
                "any".into()
            } else {
                c.ports
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            both_ways: c.direction == pumpward_net::Direction::Both,
            purpose: c.purpose.clone(),
        })
        .collect()
}

fn policy_of(text: &str) -> Policy {
    // The stored text was checked when it was saved; the starter is tested.
    PolicyDocument::from_toml(text)
        .map(|d| d.policy)
        .unwrap_or_else(|_| pumpward_net::starter_policy())
}

/// An unknown device as the page lists it, with what may be done to it.
struct UnknownRow {
    zone: String,
    address: String,
    mac: Option<String>,
    first_seen: String,
    last_seen: String,
    flows: u64,
    /// The quarantine in force on its MAC, if any.
    quarantined: Option<i64>,
    /// The MAC as text ("" without one), for the quarantine form.
    mac_text: String,
    /// The quarantine form is offered: the user may, the device has a MAC
    /// and is not quarantined (decided here, so the template stays flat).
    quarantine_form: bool,
    /// The user may quarantine, but the device was seen without a MAC.
    no_mac_hint: bool,
    /// The register form's query string (MAC, address, zone), encoded.
    register_query: String,
}

/// A quarantine in force, for the quarantined-devices table.
struct QuarantineRow {
    id: i64,
    mac: String,
    addresses: String,
    zone: String,
    reason: String,
    by: String,
    since: String,
}

#[derive(Template)]
#[template(path = "network.html")]
struct NetworkPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    can_quarantine: bool,
    can_register: bool,
    quarantine: Vec<QuarantineRow>,
    policy_name: String,
    policy_version: String,
    collectors: Vec<String>,
    width: i32,
    height: i32,
    box_w: i32,
    box_h: i32,
    boxes: Vec<ZoneBox>,
    lines: Vec<Line>,
    observed: Vec<ObservedConduit>,
    conduit_flows_not_listed: u64,
    unknown: Vec<UnknownRow>,
    unknown_not_listed: u64,
}

/// `GET /network`.
pub async fn network(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::NetworkRead, NETWORK).await?;
    network_page(&st, &p, StatusCode::OK, done_param(uri.query()), None).await
}

/// The network page, with a notice or an error (a refused form).
pub async fn network_page(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> UiResult {
    let (v, text) = current_text(&st.store).await.ui(p, NETWORK)?;
    let in_force = st.store.network_quarantine(false).await.ui(p, NETWORK)?;
    let policy = policy_of(&text);
    let view = st.network.view();
    // Observations made under another version than the one shown would be
    // drawn against the wrong zones: show them only when they match.
    let observed = if view.policy_version == v.as_ref().map(|v| v.version) {
        view.conduits
    } else {
        Vec::new()
    };
    let (boxes, lines) = diagram(&policy, &observed);
    let unknown = view
        .unknown_devices
        .into_iter()
        .map(|u| {
            let quarantined = u.mac.as_deref().and_then(|m| {
                in_force
                    .iter()
                    .find(|q| q.mac.to_string() == m)
                    .map(|q| q.id)
            });
            let address = u.address.to_string();
            let mut query = vec![("address", address.as_str()), ("zone", u.zone.as_str())];
            if let Some(m) = u.mac.as_deref() {
                query.push(("mac", m));
            }
            let can_quarantine = p.can(Permission::NetworkManage);
            UnknownRow {
                register_query: serde_urlencoded::to_string(&query).unwrap_or_default(),
                mac_text: u.mac.clone().unwrap_or_default(),
                quarantine_form: can_quarantine && quarantined.is_none() && u.mac.is_some(),
                no_mac_hint: can_quarantine && u.mac.is_none(),
                zone: u.zone,
                address,
                mac: u.mac,
                first_seen: u.first_seen,
                last_seen: u.last_seen,
                flows: u.flows,
                quarantined,
            }
        })
        .collect();
    let quarantine = in_force
        .into_iter()
        .map(|q| QuarantineRow {
            id: q.id,
            mac: q.mac.to_string(),
            addresses: q
                .addresses
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            zone: q.zone.unwrap_or_default(),
            reason: q.reason,
            by: q.quarantined_by,
            since: q.quarantined_at,
        })
        .collect();
    render(
        status,
        &NetworkPage {
            nav: Some(Nav::new(p, NETWORK)),
            notice,
            error,
            csrf: p.csrf().to_owned(),
            can_quarantine: p.can(Permission::NetworkManage),
            can_register: p.can(Permission::InventoryWrite),
            quarantine,
            policy_name: policy.name.clone(),
            policy_version: v.map_or_else(
                || "the starter policy (no version saved)".to_owned(),
                |v| format!("version {}", v.version),
            ),
            collectors: view.collectors,
            width: WIDTH,
            height: HEIGHT,
            box_w: BOX_W,
            box_h: BOX_H,
            boxes,
            lines,
            observed,
            conduit_flows_not_listed: view.conduit_flows_not_listed,
            unknown,
            unknown_not_listed: view.unknown_not_listed,
        },
    )
}

struct ZoneRow {
    name: String,
    purpose: String,
    subnets: String,
    vlans: String,
    device_zone: bool,
    isolated: bool,
}

#[derive(Template)]
#[template(path = "network_policy.html")]
struct PolicyPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    policy_name: String,
    current: Option<PolicyVersion>,
    zones: Vec<ZoneRow>,
    conduits: Vec<ConduitRow>,
    versions: Vec<PolicyVersion>,
    can_edit: bool,
    text: String,
    comment: String,
    base_version: String,
    issues: Vec<Issue>,
}

async fn policy_page(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    notice: Option<&'static str>,
    edit: Option<(String, String, String, Vec<Issue>, String)>,
) -> UiResult {
    let (v, text) = current_text(&st.store).await.ui(p, POLICY)?;
    let policy = policy_of(&text);
    let versions = st.store.network_policy_versions().await.ui(p, POLICY)?;
    let zones = policy
        .zones
        .iter()
        .map(|z| ZoneRow {
            name: z.name.clone(),
            purpose: z.purpose.clone(),
            subnets: z
                .subnets
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            vlans: z
                .vlans
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            device_zone: z.device_zone,
            isolated: z.isolated,
        })
        .collect();
    let base = v
        .as_ref()
        .map(|v| v.version.to_string())
        .unwrap_or_default();
    let (text, comment, base_version, issues, error) = match edit {
        Some((t, c, b, i, e)) => (t, c, b, i, Some(e)),
        None => (text, String::new(), base, Vec::new(), None),
    };
    render(
        status,
        &PolicyPage {
            nav: Some(Nav::new(p, POLICY)),
            notice,
            error,
            policy_name: policy.name.clone(),
            current: v,
            zones,
            conduits: conduit_rows(&policy),
            versions,
            can_edit: p.can(Permission::NetworkManage),
            text,
            comment,
            base_version,
            issues,
        },
    )
}

/// `GET /network/policy`.
pub async fn policy(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::NetworkRead, POLICY).await?;
    policy_page(&st, &p, StatusCode::OK, done_param(uri.query()), None).await
}

/// `POST /network/policy`: `toml`, `comment`, `base_version` (empty when
/// the edit started from the starter policy).
pub async fn save_policy(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::NetworkManage, POLICY).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, POLICY))?;
    // Browsers send CRLF line ends from a textarea; the stored text keeps LF.
    let text = f.get("toml").replace("\r\n", "\n");
    let comment = f.get("comment").to_owned();
    let base_field = f.get("base_version").trim().to_owned();
    let again = |issues: Vec<Issue>, msg: String| {
        let (text, comment, base_field) = (text.clone(), comment.clone(), base_field.clone());
        let (st, p) = (st.clone(), p.clone());
        async move {
            policy_page(
                &st,
                &p,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some((text, comment, base_field, issues, msg)),
            )
            .await
        }
    };
    let base = match base_field.as_str() {
        "" => None,
        s => match s.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return again(
                    Vec::new(),
                    "The base version is not a number; reload the page.".into(),
                )
                .await
            }
        },
    };
    let r = review(&st.store, &text).await.ui(&p, POLICY)?;
    if !r.acceptable() {
        let n = r
            .issues
            .iter()
            .filter(|i| i.severity == Severity::Error)
            .count();
        return again(
            r.issues,
            format!(
                "The policy has {n} error(s) and was not saved; each is listed below the editor."
            ),
        )
        .await;
    }
    match crate::api_network::save(&st, &p, &text, &comment, base).await {
        Ok(_) => Ok(see_other("/network/policy?done=policy-saved")),
        Err(e) => again(Vec::new(), e.detail).await,
    }
}

/// One row of the violations list.
struct ViolationRow {
    at: String,
    asset_id: Option<String>,
    what: String,
    rule: String,
    /// The flow tuple (or the unknown device's MAC, address and zone).
    evidence: String,
    bytes: String,
}

#[derive(Template)]
#[template(path = "network_violations.html")]
struct ViolationsPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    rows: Vec<ViolationRow>,
    kinds: Vec<super::Opt>,
    asset_id: String,
    from: String,
    to: String,
    next: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct ViolationQuery {
    kind: Option<String>,
    asset_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
}

/// A JSON string value as plain text (`"east_west"` → `east_west`).
fn plain<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A flow tuple for the evidence column.
fn flow_text(flow: &pumpward_flow::Flow) -> String {
    format!(
        "{} {}:{} → {}:{}{}",
        plain(&flow.transport),
        flow.orig_addr,
        flow.orig_port,
        flow.resp_addr,
        flow.resp_port,
        flow.orig_mac
            .map(|m| format!(" (MAC {})", plain(&m)))
            .unwrap_or_default()
    )
}

fn at_text(us: i64) -> String {
    pumpward_core::timefmt::format(pumpward_detect::event::from_us(us))
}

/// `/network/violations`: the policy violations and unknown devices the
/// live collectors reported (kept as security events), newest first, by
/// asset and time, each with its evidence.
pub async fn violations(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    const HERE: &str = "/network/violations";
    need(&st, &p, Permission::NetworkRead, NETWORK).await?;
    let q: ViolationQuery =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let kind = match q.kind.as_deref() {
        Some("unknown_device") => "unknown_device",
        _ => "policy_violation",
    };
    let mut error = None;
    let mut bound = |name: &str, v: &Option<String>| match v.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match pumpward_core::timefmt::parse(s) {
            Ok(t) => Some(pumpward_core::timefmt::format(t)),
            Err(_) => {
                error = Some(format!(
                    "{name}: give an RFC 3339 time, e.g. 2026-11-26T08:00:00Z."
                ));
                None
            }
        },
    };
    let (from, to) = (bound("From", &q.from), bound("To", &q.to));
    let filter = pumpward_store::SecurityEventFilter {
        asset_id: q.asset_id.clone().filter(|s| !s.is_empty()),
        kind: Some(kind.into()),
        from,
        to,
        before_seq: q.before.as_deref().and_then(|b| b.parse().ok()),
        limit: 100,
    };
    let (events, next) = st.store.list_security_events(&filter).await.ui(&p, HERE)?;
    let rows = events
        .into_iter()
        .map(|e| {
            let ev = e.event;
            let (what, rule, evidence, bytes) = match &ev.body {
                pumpward_detect::Body::PolicyViolation {
                    rule,
                    violation,
                    flow,
                    earlier_flow,
                } => (
                    plain(violation),
                    rule.clone(),
                    match earlier_flow {
                        // A device in two places: both sightings.
                        Some(e) => format!(
                            "{} at {}; earlier {} at {}",
                            flow_text(flow),
                            at_text(flow.start_us),
                            flow_text(e),
                            at_text(e.start_us)
                        ),
                        None => flow_text(flow),
                    },
                    format!("{} / {}", flow.orig_bytes, flow.resp_bytes),
                ),
                pumpward_detect::Body::UnknownDevice { mac, ip, zone, .. } => (
                    "unknown_device".into(),
                    String::new(),
                    format!(
                        "MAC {}{} in zone {zone}",
                        plain(mac),
                        ip.map(|i| format!(" at {i}")).unwrap_or_default()
                    ),
                    String::new(),
                ),
                other => (
                    plain(&other.kind()),
                    String::new(),
                    String::new(),
                    String::new(),
                ),
            };
            ViolationRow {
                at: pumpward_core::timefmt::format(ev.occurred_at),
                asset_id: ev.asset_id.map(|a| a.to_string()),
                what,
                rule,
                evidence,
                bytes,
            }
        })
        .collect();
    let keep = |k: &str, v: &Option<String>| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| format!("&{k}={}", super::pki::segment(s)))
            .unwrap_or_default()
    };
    let next = next.map(|seq| {
        format!(
            "{HERE}?kind={kind}{}{}{}&before={seq}",
            keep("asset_id", &q.asset_id),
            keep("from", &q.from),
            keep("to", &q.to)
        )
    });
    render(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        &ViolationsPage {
            nav: Some(Nav::new(&p, NETWORK)),
            notice: None,
            error,
            rows,
            kinds: vec![
                super::Opt::new(
                    "policy_violation",
                    "Policy violations",
                    kind == "policy_violation",
                ),
                super::Opt::new(
                    "unknown_device",
                    "Unknown devices",
                    kind == "unknown_device",
                ),
            ],
            asset_id: q.asset_id.unwrap_or_default(),
            from: q.from.unwrap_or_default(),
            to: q.to.unwrap_or_default(),
            next,
        },
    )
}
