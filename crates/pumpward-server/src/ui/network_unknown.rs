//! What the network page offers for an unknown device: quarantine it (and
//! release it), or register it as an asset.
//!
//! - Quarantine (`network.manage`, the zone policy's permission: the
//!   quarantine list is enforced by the same exports) takes the MAC from
//!   the row and every address the collectors saw it at
//!   ([`crate::api_network::quarantine`], the API's path too).
//! - Registering (`inventory.write`, since it creates an asset) is a form
//!   prefilled from the sighting: MAC, address, the zone of its subnet, and
//!   first/last seen in the notes. It validates and creates the asset
//!   through the same path as the API (`AssetSpec::validate`,
//!   `Store::create_asset`, audited there); the device then leaves the
//!   unknown list at once and the evaluator reloads the inventory.

use super::network::network_page;
use super::{need, render, see_other, Fields, Nav, Opt, UiResult, UiResultExt, UiUser};
use crate::auth::Principal;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_core::inventory::{
    AssetDraft, AssetKind, AssetSpec, CpeField, DeviceType, FieldError, LifecycleState, MacAddress,
};
use pumpward_store::StoreError;
use std::net::IpAddr;

const NETWORK: &str = "/network";
const REGISTER: &str = "/network/unknown/register";

/// The lifecycle states a registered device may start in: a device already
/// on the network was at least received.
const START_STATES: [LifecycleState; 3] = [
    LifecycleState::Received,
    LifecycleState::Provisioned,
    LifecycleState::InService,
];

/// A refused form: the network page again with the reason, or the error
/// page for what is not the user's input.
async fn again(st: &AppState, p: &Principal, e: crate::problem::ApiError) -> UiResult {
    use crate::problem::ErrorKind as K;
    match e.kind {
        K::Validation | K::Conflict | K::NotFound | K::BadRequest => {
            network_page(st, p, e.kind.status(), None, Some(e.detail)).await
        }
        _ => Err(super::UiError::from(e).with_nav(p, NETWORK)),
    }
}

/// `POST /network/quarantine`: `mac`, `reason`, optional `zone` and
/// `address` (default: where the collectors saw the MAC).
pub async fn quarantine(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::NetworkManage, NETWORK).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, NETWORK))?;
    let mac: MacAddress = match f.get("mac").parse() {
        Ok(m) => m,
        Err(e) => {
            return network_page(
                &st,
                &p,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(format!("MAC: {e}")),
            )
            .await
        }
    };
    let mut addresses = Vec::new();
    for a in f.all("address").filter(|a| !a.trim().is_empty()) {
        match a.trim().parse::<IpAddr>() {
            Ok(ip) => addresses.push(ip),
            Err(_) => {
                return network_page(
                    &st,
                    &p,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(format!("Address: {a:?} is not an IPv4 or IPv6 address")),
                )
                .await
            }
        }
    }
    // The row's address is one sighting; the collectors may know more.
    let seen: Vec<IpAddr> = st
        .network
        .sightings_of(mac.octets())
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    addresses.extend(seen);
    let zone = Some(f.get("zone").trim().to_owned()).filter(|z| !z.is_empty());
    match crate::api_network::quarantine(&st, &p, mac, Some(addresses), zone, f.get("reason")).await
    {
        Ok(_) => Ok(see_other("/network?done=device-quarantined")),
        Err(e) => again(&st, &p, e).await,
    }
}

/// `POST /network/quarantine/{id}/release`: `reason`.
pub async fn release(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::NetworkManage, NETWORK).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, NETWORK))?;
    let Ok(id) = id.parse::<i64>() else {
        return again(
            &st,
            &p,
            StoreError::NotFound {
                what: format!("quarantine {id:?}"),
            }
            .into(),
        )
        .await;
    };
    match st
        .store
        .release_quarantined_device(id, f.get("reason"), &p.actor())
        .await
    {
        Ok(_) => Ok(see_other("/network?done=device-released")),
        Err(e) => again(&st, &p, e.into()).await,
    }
}

#[derive(Template)]
#[template(path = "network_register.html")]
struct RegisterPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    /// What was seen: "MAC … at … in zone …, first seen …".
    sighting: Option<String>,
    problems: Vec<FieldError>,
    draft: AssetDraft,
    /// The draft's CPE names as typed (the form's one text field).
    cpe: String,
    kinds: Vec<Opt>,
    device_types: Vec<Opt>,
    states: Vec<Opt>,
    zones: Vec<Opt>,
    /// Manufacturer and model pairs of the device catalogue, as hints.
    models: Vec<(String, String)>,
}

fn opts<T: Copy + std::fmt::Display>(all: &[T], chosen: &str, blank: bool) -> Vec<Opt> {
    let mut v: Vec<Opt> = all
        .iter()
        .map(|x| Opt::new(x.to_string(), x.to_string(), x.to_string() == chosen))
        .collect();
    if blank {
        v.insert(0, Opt::new("", "—", chosen.is_empty()));
    }
    v
}

#[allow(clippy::too_many_arguments)]
async fn register_page(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    draft: AssetDraft,
    state: &str,
    sighting: Option<String>,
    problems: Vec<FieldError>,
    error: Option<String>,
) -> UiResult {
    let (_, text) = crate::api_network::current_text(&st.store)
        .await
        .ui(p, NETWORK)?;
    let policy = pumpward_net::PolicyDocument::from_toml(&text)
        .map(|d| d.policy)
        .unwrap_or_else(|_| pumpward_net::starter_policy());
    let zone = draft.zone.clone().unwrap_or_default();
    let mut zones: Vec<Opt> = policy
        .zones
        .iter()
        .map(|z| Opt::new(z.name.clone(), z.name.clone(), z.name == zone))
        .collect();
    zones.insert(0, Opt::new("", "—", zone.is_empty()));
    let models = st
        .store
        .list_models()
        .await
        .ui(p, NETWORK)?
        .into_iter()
        .map(|(_, m)| (m.manufacturer, m.model))
        .collect();
    let kind = draft.kind.clone().unwrap_or_default();
    let device_type = draft.device_type.clone().unwrap_or_default();
    let cpe = match &draft.cpe {
        None => String::new(),
        Some(CpeField::Text(t)) => t.clone(),
        Some(CpeField::List(l)) => l.join(" "),
    };
    render(
        status,
        &RegisterPage {
            nav: Some(Nav::new(p, NETWORK)),
            notice: None,
            error,
            csrf: p.csrf().to_owned(),
            sighting,
            problems,
            kinds: opts(AssetKind::ALL, &kind, false),
            device_types: opts(DeviceType::ALL, &device_type, true),
            states: opts(&START_STATES, state, false),
            zones,
            models,
            draft,
            cpe,
        },
    )
}

#[derive(serde::Deserialize, Default)]
struct Sighting {
    mac: Option<String>,
    address: Option<String>,
    zone: Option<String>,
}

/// `GET /network/unknown/register?mac=…&address=…&zone=…`: the form,
/// prefilled from the unknown device's sighting.
pub async fn register_form(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::InventoryWrite, REGISTER).await?;
    let q: Sighting = serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let mac: Option<MacAddress> = q.mac.as_deref().and_then(|m| m.parse().ok());
    let address: Option<IpAddr> = q.address.as_deref().and_then(|a| a.parse().ok());
    // The live list's record of it: first and last seen, flows.
    let view = st.network.view();
    let seen = view.unknown_devices.iter().find(|u| {
        let mac_text = mac.map(|m| m.to_string());
        Some(u.address) == address && u.mac == mac_text
    });
    let sighting = seen.map(|u| {
        format!(
            "{} at {} in zone {}: first seen {}, last seen {}, {} flows",
            u.mac.as_deref().unwrap_or("no MAC"),
            u.address,
            u.zone,
            u.first_seen,
            u.last_seen,
            u.flows
        )
    });
    let draft = AssetDraft {
        kind: Some(AssetKind::Pump.to_string()),
        mac_address: mac.map(|m| m.to_string()),
        ip_address: address.map(|a| a.to_string()),
        zone: seen
            .map(|u| u.zone.clone())
            .or(q.zone.filter(|z| !z.is_empty())),
        notes: sighting
            .as_ref()
            .map(|s| format!("Registered from an unknown-device sighting: {s}.")),
        ..Default::default()
    };
    register_page(
        &st,
        &p,
        StatusCode::OK,
        draft,
        LifecycleState::Received.as_str(),
        sighting,
        Vec::new(),
        None,
    )
    .await
}

fn opt_field(f: &Fields, name: &str) -> Option<String> {
    Some(f.get(name).trim().to_owned()).filter(|s| !s.is_empty())
}

/// `POST /network/unknown/register`: creates the asset; refused with every
/// bad field named, nothing created.
pub async fn register(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::InventoryWrite, REGISTER).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, REGISTER))?;
    let draft = AssetDraft {
        asset_id: f.get("asset_id").trim().to_owned(),
        kind: opt_field(&f, "kind"),
        manufacturer: f.get("manufacturer").trim().to_owned(),
        model: f.get("model").trim().to_owned(),
        device_type: opt_field(&f, "device_type"),
        serial_number: f.get("serial_number").trim().to_owned(),
        firmware_version: f.get("firmware_version").trim().to_owned(),
        cpe: opt_field(&f, "cpe").map(CpeField::Text),
        mac_address: opt_field(&f, "mac_address"),
        ip_address: opt_field(&f, "ip_address"),
        location: opt_field(&f, "location"),
        care_area: opt_field(&f, "care_area"),
        zone: opt_field(&f, "zone"),
        // Browsers send CRLF from a textarea.
        notes: opt_field(&f, "notes").map(|n| n.replace("\r\n", "\n")),
        ..Default::default()
    };
    let state_text = f.get("lifecycle_state").to_owned();
    let sighting = opt_field(&f, "sighting");
    let state = START_STATES
        .iter()
        .copied()
        .find(|s| s.as_str() == state_text);
    let refuse = |status: StatusCode, problems: Vec<FieldError>, error: String| {
        let (st, p, draft, state_text, sighting) = (
            st.clone(),
            p.clone(),
            draft.clone(),
            state_text.clone(),
            sighting.clone(),
        );
        async move {
            register_page(
                &st,
                &p,
                status,
                draft,
                &state_text,
                sighting,
                problems,
                Some(error),
            )
            .await
        }
    };
    let Some(state) = state else {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            "Choose the state the device starts in.".into(),
        )
        .await;
    };
    let spec = match AssetSpec::validate(&draft) {
        Ok(s) => s,
        Err(e) => {
            let n = e.0.len();
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                e.0,
                format!("{n} field(s) are not valid; nothing was registered."),
            )
            .await;
        }
    };
    match st.store.create_asset(&spec, Some(state), &p.actor()).await {
        Ok(a) => {
            st.network
                .forget_unknown(a.spec.mac_address.map(|m| m.octets()), a.spec.ip_address);
            st.network.inventory_changed();
            Ok(see_other("/network?done=device-registered"))
        }
        Err(e) => {
            let e = crate::problem::ApiError::from(e);
            match e.kind {
                crate::problem::ErrorKind::Validation | crate::problem::ErrorKind::Conflict => {
                    refuse(e.kind.status(), Vec::new(), e.detail).await
                }
                _ => Err(super::UiError::from(e).with_nav(&p, REGISTER)),
            }
        }
    }
}
