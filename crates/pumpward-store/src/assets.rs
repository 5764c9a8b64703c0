//! Inventory persistence: the device-model catalogue, assets, lifecycle.

use crate::{audit, like_pattern, Actor, Backend, Conn, Result, Store, StoreError};
use pumpward_core::audit::{AuditEntry, Outcome};
use pumpward_core::inventory::{
    format_cpe_list, parse_cpe_list, Answer, Asset, AssetId, AssetKind, AssetSpec, Capabilities,
    CredentialState, DeviceModel, DeviceType, LifecycleState, MacAddress, RemoteServiceMethod,
    SoftwareComponent,
};
use pumpward_core::timefmt;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

/// Filters for listing assets; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AssetFilter {
    pub kind: Option<pumpward_core::inventory::AssetKind>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub care_area: Option<String>,
    pub zone: Option<String>,
    pub state: Option<LifecycleState>,
    /// Case-insensitive substring over ids, names, serials, addresses, location, notes.
    pub text: Option<String>,
    /// Return assets whose id sorts after this one (the page cursor).
    pub after: Option<String>,
    /// Page size, at most 500; 0 means 50.
    pub limit: i64,
}

/// One page of assets and the cursor of the next page, if any.
#[derive(Debug, Clone, Serialize)]
pub struct AssetPage {
    pub items: Vec<Asset>,
    pub next_cursor: Option<String>,
}

/// One move of an asset through its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifecycleEvent {
    pub from_state: Option<LifecycleState>,
    pub to_state: LifecycleState,
    pub actor: String,
    pub reason: String,
    pub at: String,
}

/// What happened to one imported row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportOutcome {
    Created,
    Updated,
    Unchanged,
}

/// Counts of an import, and the rows refused while writing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// (line, asset id, reason) of rows refused by the store (e.g. an illegal
    /// lifecycle change, a MAC address already used by another asset).
    pub refused: Vec<(u64, String, String)>,
}

/// The state a new asset starts in when none is given: it is physically at
/// the hospital but not yet provisioned or trusted on the network.
pub const DEFAULT_INITIAL_STATE: LifecycleState = LifecycleState::Received;

pub(crate) const ASSET_COLUMNS: &str = "asset_id, kind, model_id, manufacturer, model, device_type, serial_number, udi, \
     firmware_version, software, mac_address, ip_address, hostname, location, care_area, zone, owner, \
     vendor_support_contact, end_of_support, phi_stored, credential_state, notes, search_text, cpe, \
     lifecycle_state, last_seen, version, created_at, updated_at";

pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds the 23 spec columns that follow `asset_id`, in `ASSET_COLUMNS` order.
pub(crate) fn bind_spec<'q>(q: AnyQuery<'q>, s: &AssetSpec, model_id: i64) -> AnyQuery<'q> {
    q.bind(s.kind.as_str())
        .bind(model_id)
        .bind(s.manufacturer.clone())
        .bind(s.model.clone())
        .bind(s.device_type.map(|d| d.as_str()))
        .bind(s.serial_number.clone())
        .bind(s.udi.clone())
        .bind(s.firmware_version.clone())
        .bind(serde_json::to_string(&s.software).expect("components serialise"))
        .bind(s.mac_address.map(|m| m.to_string()))
        .bind(s.ip_address.map(|i| i.to_string()))
        .bind(s.hostname.clone())
        .bind(s.location.clone())
        .bind(s.care_area.clone())
        .bind(s.zone.clone())
        .bind(s.owner.clone())
        .bind(s.vendor_support_contact.clone())
        .bind(s.end_of_support.map(timefmt::format_date))
        .bind(s.phi_stored.as_str())
        .bind(s.credential_state.as_str())
        .bind(s.notes.clone())
        .bind(search_text(s))
        // Space-separated canonical names (`format_cpe_list`): one text the
        // matching run groups assets by, like `software`.
        .bind(format_cpe_list(&s.cpe))
}

fn search_text(s: &AssetSpec) -> String {
    let mut parts: Vec<String> = vec![
        s.asset_id.to_string(),
        s.manufacturer.clone(),
        s.model.clone(),
        s.serial_number.clone(),
        s.firmware_version.clone(),
    ];
    parts.extend(
        [
            &s.udi,
            &s.hostname,
            &s.location,
            &s.care_area,
            &s.zone,
            &s.owner,
            &s.notes,
        ]
        .into_iter()
        .flatten()
        .cloned(),
    );
    parts.extend(s.mac_address.map(|m| m.to_string()));
    parts.extend(s.ip_address.map(|i| i.to_string()));
    parts.join("\u{1f}").to_lowercase()
}

fn corrupt(id: &str, field: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("stored asset {id} has an invalid {field}: {e}"))
}

pub(crate) fn asset_from_row(r: &AnyRow) -> Result<Asset> {
    let id: String = r.try_get("asset_id")?;
    let parse_opt =
        |field: &str| -> Result<Option<String>> { Ok(r.try_get::<Option<String>, _>(field)?) };
    let software: String = r.try_get("software")?;
    let cpe: String = r.try_get("cpe")?;
    let spec = AssetSpec {
        asset_id: id
            .parse::<AssetId>()
            .map_err(|e| corrupt(&id, "asset_id", e))?,
        kind: r
            .try_get::<String, _>("kind")?
            .parse::<AssetKind>()
            .map_err(|e| corrupt(&id, "kind", e))?,
        manufacturer: r.try_get("manufacturer")?,
        model: r.try_get("model")?,
        device_type: parse_opt("device_type")?
            .map(|s| s.parse::<DeviceType>())
            .transpose()
            .map_err(|e| corrupt(&id, "device_type", e))?,
        serial_number: r.try_get("serial_number")?,
        udi: parse_opt("udi")?,
        firmware_version: r.try_get("firmware_version")?,
        software: serde_json::from_str::<Vec<SoftwareComponent>>(&software)
            .map_err(|e| corrupt(&id, "software", e))?,
        cpe: parse_cpe_list(&cpe).map_err(|e| corrupt(&id, "cpe", e))?,
        mac_address: parse_opt("mac_address")?
            .map(|s| s.parse::<MacAddress>())
            .transpose()
            .map_err(|e| corrupt(&id, "mac_address", e))?,
        ip_address: parse_opt("ip_address")?
            .map(|s| s.parse())
            .transpose()
            .map_err(|e| corrupt(&id, "ip_address", e))?,
        hostname: parse_opt("hostname")?,
        location: parse_opt("location")?,
        care_area: parse_opt("care_area")?,
        zone: parse_opt("zone")?,
        owner: parse_opt("owner")?,
        vendor_support_contact: parse_opt("vendor_support_contact")?,
        end_of_support: parse_opt("end_of_support")?
            .map(|s| timefmt::parse_date(&s))
            .transpose()
            .map_err(|e| corrupt(&id, "end_of_support", e))?,
        phi_stored: r
            .try_get::<String, _>("phi_stored")?
            .parse::<Answer>()
            .map_err(|e| corrupt(&id, "phi_stored", e))?,
        credential_state: r
            .try_get::<String, _>("credential_state")?
            .parse::<CredentialState>()
            .map_err(|e| corrupt(&id, "credential_state", e))?,
        notes: parse_opt("notes")?,
    };
    let time = |field: &str| -> Result<OffsetDateTime> {
        timefmt::parse(&r.try_get::<String, _>(field)?).map_err(|e| corrupt(&id, field, e))
    };
    Ok(Asset {
        lifecycle_state: r
            .try_get::<String, _>("lifecycle_state")?
            .parse()
            .map_err(|e| corrupt(&id, "lifecycle_state", e))?,
        last_seen: parse_opt("last_seen")?
            .map(|s| timefmt::parse(&s))
            .transpose()
            .map_err(|e| corrupt(&id, "last_seen", e))?,
        version: r.try_get("version")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
        spec,
    })
}

fn model_from_row(r: &AnyRow) -> Result<(i64, DeviceModel)> {
    let bad = |f: &str, e: &dyn std::fmt::Display| {
        StoreError::Invalid(format!("stored device model has an invalid {f}: {e}"))
    };
    let ans =
        |f: &str| -> Result<Answer> { r.try_get::<String, _>(f)?.parse().map_err(|e| bad(f, &e)) };
    Ok((
        r.try_get("id")?,
        DeviceModel {
            manufacturer: r.try_get("manufacturer")?,
            model: r.try_get("model")?,
            device_type: r
                .try_get::<Option<String>, _>("device_type")?
                .map(|s| s.parse())
                .transpose()
                .map_err(|e| bad("device_type", &e))?,
            capabilities: Capabilities {
                eap_tls: ans("eap_tls")?,
                client_certificates: ans("client_certificates")?,
                encryption_at_rest: ans("encryption_at_rest")?,
                removable_media: ans("removable_media")?,
                remote_service: r
                    .try_get::<String, _>("remote_service")?
                    .parse::<RemoteServiceMethod>()
                    .map_err(|e| bad("remote_service", &e))?,
                mds2_on_file: r.try_get::<i64, _>("mds2_on_file")? != 0,
            },
        },
    ))
}

/// Finds the catalogue entry for an asset's model, creating one with unknown
/// capabilities if the model is new (so every asset refers to a catalogue entry).
async fn ensure_model(conn: &mut Conn, s: &AssetSpec, now: &str) -> Result<(i64, bool)> {
    if let Some(r) =
        sqlx::query("SELECT id FROM device_models WHERE manufacturer = $1 AND model = $2")
            .bind(s.manufacturer.clone())
            .bind(s.model.clone())
            .fetch_optional(&mut *conn)
            .await?
    {
        return Ok((r.try_get("id")?, false));
    }
    let m = DeviceModel {
        manufacturer: s.manufacturer.clone(),
        model: s.model.clone(),
        device_type: s.device_type,
        capabilities: Capabilities::default(),
    };
    Ok((insert_model(conn, &m, now).await?, true))
}

/// Binds a model's device type and its six capabilities, in that order (the
/// column order of both the INSERT and the UPDATE of `device_models`).
fn bind_capabilities<'q>(q: AnyQuery<'q>, m: &DeviceModel) -> AnyQuery<'q> {
    let c = &m.capabilities;
    q.bind(m.device_type.map(|d| d.as_str()))
        .bind(c.eap_tls.as_str())
        .bind(c.client_certificates.as_str())
        .bind(c.encryption_at_rest.as_str())
        .bind(c.removable_media.as_str())
        .bind(c.remote_service.as_str())
        .bind(c.mds2_on_file as i64)
}

pub(crate) async fn insert_model(conn: &mut Conn, m: &DeviceModel, now: &str) -> Result<i64> {
    let q = sqlx::query(
        "INSERT INTO device_models (manufacturer, model, device_type, eap_tls, client_certificates, \
         encryption_at_rest, removable_media, remote_service, mds2_on_file, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
    )
    .bind(m.manufacturer.clone())
    .bind(m.model.clone());
    let r = bind_capabilities(q, m)
        .bind(now.to_owned())
        .fetch_one(&mut *conn)
        .await?;
    Ok(r.try_get("id")?)
}

pub(crate) async fn fetch_asset(conn: &mut Conn, id: &str) -> Result<Option<Asset>> {
    sqlx::query(&format!(
        "SELECT {ASSET_COLUMNS} FROM assets WHERE asset_id = $1"
    ))
    .bind(id.to_owned())
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(asset_from_row)
    .transpose()
}

/// Refuses a spec whose MAC or (manufacturer, serial) belongs to another asset,
/// with a message that names that asset (the unique indexes are the backstop).
async fn check_unique(conn: &mut Conn, s: &AssetSpec) -> Result<()> {
    if let Some(mac) = s.mac_address {
        if let Some(r) =
            sqlx::query("SELECT asset_id FROM assets WHERE mac_address = $1 AND asset_id <> $2")
                .bind(mac.to_string())
                .bind(s.asset_id.to_string())
                .fetch_optional(&mut *conn)
                .await?
        {
            let other: String = r.try_get("asset_id")?;
            return Err(StoreError::Conflict(format!(
                "MAC address {mac} already belongs to asset {other}"
            )));
        }
    }
    if let Some(r) = sqlx::query(
        "SELECT asset_id FROM assets WHERE manufacturer = $1 AND serial_number = $2 AND asset_id <> $3",
    )
    .bind(s.manufacturer.clone())
    .bind(s.serial_number.clone())
    .bind(s.asset_id.to_string())
    .fetch_optional(&mut *conn)
    .await?
    {
        let other: String = r.try_get("asset_id")?;
        return Err(StoreError::Conflict(format!(
            "{} serial number {} already belongs to asset {other}",
            s.manufacturer, s.serial_number
        )));
    }
    Ok(())
}

async fn insert_asset(
    conn: &mut Conn,
    s: &AssetSpec,
    state: LifecycleState,
    actor: &Actor,
    reason: &str,
    now: &str,
) -> Result<Vec<AuditEntry>> {
    check_unique(conn, s).await?;
    let (model_id, new_model) = ensure_model(conn, s, now).await?;
    let sql = format!(
        "INSERT INTO assets ({ASSET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, NULL, 1, $26, $26)"
    );
    let q = sqlx::query(&sql).bind(s.asset_id.to_string());
    bind_spec(q, s, model_id)
        .bind(state.as_str())
        .bind(now.to_owned())
        .execute(&mut *conn)
        .await?;
    record_transition(conn, s.asset_id.as_str(), None, state, actor, reason, now).await?;
    let mut audit = new_model_entry(actor, s, new_model);
    audit.push(create_entry(actor, s, state, reason));
    Ok(audit)
}

/// The audit entry for a new asset.
pub(crate) fn create_entry(
    actor: &Actor,
    s: &AssetSpec,
    state: LifecycleState,
    reason: &str,
) -> AuditEntry {
    actor
        .entry("asset.create", Outcome::Success)
        .object(format!("asset:{}", s.asset_id))
        .reason(reason)
        .details_json(created_details(s, state))
}

/// The details of an `asset.create` record: the new asset's fields that
/// have a value, and its state. Serialised directly, without nulls: a bulk
/// import writes one of these per asset, and they were its largest part.
fn created_details(s: &AssetSpec, state: LifecycleState) -> String {
    #[derive(Serialize)]
    struct Created<'a> {
        asset_id: &'a str,
        lifecycle_state: &'a str,
        kind: &'a str,
        manufacturer: &'a str,
        model: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        device_type: Option<&'a str>,
        serial_number: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        udi: Option<&'a str>,
        firmware_version: &'a str,
        #[serde(skip_serializing_if = "String::is_empty")]
        software: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        cpe: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        mac_address: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ip_address: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        hostname: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        care_area: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        zone: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        vendor_support_contact: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        end_of_support: Option<String>,
        phi_stored: &'a str,
        credential_state: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        notes: Option<&'a str>,
    }
    serde_json::to_string(&Created {
        asset_id: s.asset_id.as_str(),
        lifecycle_state: state.as_str(),
        kind: s.kind.as_str(),
        manufacturer: &s.manufacturer,
        model: &s.model,
        device_type: s.device_type.map(|d| d.as_str()),
        serial_number: &s.serial_number,
        udi: s.udi.as_deref(),
        firmware_version: &s.firmware_version,
        software: SoftwareComponent::format_list(&s.software),
        cpe: format_cpe_list(&s.cpe),
        mac_address: s.mac_address.map(|m| m.to_string()),
        ip_address: s.ip_address.map(|i| i.to_string()),
        hostname: s.hostname.as_deref(),
        location: s.location.as_deref(),
        care_area: s.care_area.as_deref(),
        zone: s.zone.as_deref(),
        owner: s.owner.as_deref(),
        vendor_support_contact: s.vendor_support_contact.as_deref(),
        end_of_support: s.end_of_support.map(timefmt::format_date),
        phi_stored: s.phi_stored.as_str(),
        credential_state: s.credential_state.as_str(),
        notes: s.notes.as_deref(),
    })
    // Strings only: serialising cannot fail.
    .unwrap_or_else(|_| "{}".into())
}

/// The audit entry for a catalogue model created on the fly, if one was.
pub(crate) fn new_model_entry(actor: &Actor, s: &AssetSpec, created: bool) -> Vec<AuditEntry> {
    created
        .then(|| {
            actor
                .entry("model.create", Outcome::Success)
                .object(format!("model:{}/{}", s.manufacturer, s.model))
                .reason("first asset of this model")
        })
        .into_iter()
        .collect()
}

pub(crate) async fn update_spec(
    conn: &mut Conn,
    old: &Asset,
    s: &AssetSpec,
    actor: &Actor,
    reason: &str,
    now: &str,
) -> Result<Vec<AuditEntry>> {
    check_unique(conn, s).await?;
    let (model_id, new_model) = ensure_model(conn, s, now).await?;
    let q = sqlx::query(
        "UPDATE assets SET kind = $2, model_id = $3, manufacturer = $4, model = $5, device_type = $6, \
         serial_number = $7, udi = $8, firmware_version = $9, software = $10, mac_address = $11, \
         ip_address = $12, hostname = $13, location = $14, care_area = $15, zone = $16, owner = $17, \
         vendor_support_contact = $18, end_of_support = $19, phi_stored = $20, credential_state = $21, \
         notes = $22, search_text = $23, cpe = $24, version = version + 1, updated_at = $25 \
         WHERE asset_id = $1 AND version = $26",
    )
    .bind(s.asset_id.to_string());
    let done = bind_spec(q, s, model_id)
        .bind(now.to_owned())
        .bind(old.version)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "asset {} was changed by someone else; reload it and try again",
            s.asset_id
        )));
    }
    let mut audit = new_model_entry(actor, s, new_model);
    audit.push(
        actor
            .entry("asset.update", Outcome::Success)
            .object(format!("asset:{}", s.asset_id))
            .reason(reason)
            .details(&serde_json::json!({ "changed": spec_diff(&old.spec, s) })),
    );
    Ok(audit)
}

/// The fields that differ between two specs, as `{field: [old, new]}`.
pub fn spec_diff(old: &AssetSpec, new: &AssetSpec) -> serde_json::Map<String, serde_json::Value> {
    let a = serde_json::to_value(old.to_draft()).expect("drafts serialise");
    let b = serde_json::to_value(new.to_draft()).expect("drafts serialise");
    let mut out = serde_json::Map::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, va) in a {
            let vb = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
            if *va != vb {
                out.insert(k.clone(), serde_json::json!([va, vb]));
            }
        }
    }
    out
}

async fn record_transition(
    conn: &mut Conn,
    id: &str,
    from: Option<LifecycleState>,
    to: LifecycleState,
    actor: &Actor,
    reason: &str,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO lifecycle_events (asset_id, from_state, to_state, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.to_owned())
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(actor.id.clone())
    .bind(reason.to_owned())
    .bind(now.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn apply_transition(
    conn: &mut Conn,
    asset: &Asset,
    to: LifecycleState,
    actor: &Actor,
    reason: &str,
    now: &str,
) -> Result<AuditEntry> {
    let from = asset.lifecycle_state;
    from.transition(to)?;
    let done = sqlx::query(
        "UPDATE assets SET lifecycle_state = $1, version = version + 1, updated_at = $2 WHERE asset_id = $3 AND lifecycle_state = $4",
    )
    .bind(to.as_str())
    .bind(now.to_owned())
    .bind(asset.spec.asset_id.to_string())
    .bind(from.as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "asset {} changed state meanwhile; reload it and try again",
            asset.spec.asset_id
        )));
    }
    record_transition(
        conn,
        asset.spec.asset_id.as_str(),
        Some(from),
        to,
        actor,
        reason,
        now,
    )
    .await?;
    Ok(actor
        .entry("asset.transition", Outcome::Success)
        .object(format!("asset:{}", asset.spec.asset_id))
        .reason(reason)
        .details(&serde_json::json!({ "from": from, "to": to })))
}

pub(crate) fn require_reason(reason: &str) -> Result<&str> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(StoreError::Invalid("a reason is required".into()));
    }
    if r.chars().count() > 1000 {
        return Err(StoreError::Invalid(
            "the reason is longer than 1000 characters".into(),
        ));
    }
    Ok(r)
}

impl Store {
    /// Creates an asset in `state` (default [`DEFAULT_INITIAL_STATE`]).
    pub async fn create_asset(
        &self,
        spec: &AssetSpec,
        state: Option<LifecycleState>,
        actor: &Actor,
    ) -> Result<Asset> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        if fetch_asset(&mut tx, spec.asset_id.as_str())
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(format!(
                "asset {} already exists",
                spec.asset_id
            )));
        }
        let entries = insert_asset(
            &mut tx,
            spec,
            state.unwrap_or(DEFAULT_INITIAL_STATE),
            actor,
            "created",
            &now,
        )
        .await?;
        audit::append(&mut tx, entries, crate::now()).await?;
        let asset = fetch_asset(&mut tx, spec.asset_id.as_str())
            .await?
            .expect("just inserted");
        tx.commit().await?;
        // Matched at once: a pump added in service after an advisory has
        // its findings without waiting for the next import.
        self.rematch_asset(spec.asset_id.as_str(), actor).await?;
        Ok(asset)
    }

    /// Reads one asset.
    pub async fn asset(&self, id: &str) -> Result<Asset> {
        let mut conn = self.pool().acquire().await?;
        fetch_asset(&mut conn, id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("asset {id}"),
            })
    }

    /// Replaces an asset's spec if it is still at `expected_version`.
    pub async fn update_asset(
        &self,
        spec: &AssetSpec,
        expected_version: i64,
        actor: &Actor,
    ) -> Result<Asset> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let old = fetch_asset(&mut tx, spec.asset_id.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("asset {}", spec.asset_id),
            })?;
        if old.version != expected_version {
            return Err(StoreError::Conflict(format!(
                "asset {} is at version {}, not {expected_version}; reload it and try again",
                spec.asset_id, old.version
            )));
        }
        if old.spec == *spec {
            return Ok(old);
        }
        let entries = update_spec(&mut tx, &old, spec, actor, "updated", &now).await?;
        audit::append(&mut tx, entries, crate::now()).await?;
        let asset = fetch_asset(&mut tx, spec.asset_id.as_str())
            .await?
            .expect("exists");
        tx.commit().await?;
        if crate::vuln::match_inputs_changed(&old.spec, spec) {
            self.rematch_asset(spec.asset_id.as_str(), actor).await?;
        }
        Ok(asset)
    }

    /// Moves an asset through its lifecycle; `reason` is required and audited.
    pub async fn transition_asset(
        &self,
        id: &str,
        to: LifecycleState,
        reason: &str,
        actor: &Actor,
    ) -> Result<Asset> {
        let reason = require_reason(reason)?;
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let asset = fetch_asset(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("asset {id}"),
            })?;
        let entry = match apply_transition(&mut tx, &asset, to, actor, reason, &now).await {
            Ok(e) => e,
            Err(e @ StoreError::Transition(_)) => {
                // The refusal is itself security-relevant: record it.
                drop(tx);
                self.audit(
                    actor
                        .entry("asset.transition", Outcome::Denied)
                        .object(format!("asset:{id}"))
                        .reason(e.to_string()),
                )
                .await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        audit::append(&mut tx, vec![entry], crate::now()).await?;
        let after = fetch_asset(&mut tx, id).await?.expect("exists");
        tx.commit().await?;
        // Only provisioned and in-service assets are matched: entering or
        // leaving those states raises or resolves findings.
        let matched = |s: LifecycleState| {
            matches!(s, LifecycleState::Provisioned | LifecycleState::InService)
        };
        if matched(asset.lifecycle_state) != matched(after.lifecycle_state) {
            self.rematch_asset(id, actor).await?;
        }
        Ok(after)
    }

    /// The lifecycle history of an asset, oldest first.
    pub async fn lifecycle_history(&self, id: &str) -> Result<Vec<LifecycleEvent>> {
        let rows = sqlx::query(
            "SELECT from_state, to_state, actor, reason, at FROM lifecycle_events WHERE asset_id = $1 ORDER BY id",
        )
        .bind(id.to_owned())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let st = |s: String| {
                    s.parse::<LifecycleState>()
                        .map_err(|e| StoreError::Invalid(e.to_string()))
                };
                Ok(LifecycleEvent {
                    from_state: r
                        .try_get::<Option<String>, _>("from_state")?
                        .map(st)
                        .transpose()?,
                    to_state: st(r.try_get("to_state")?)?,
                    actor: r.try_get("actor")?,
                    reason: r.try_get("reason")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    /// Lists assets in asset-id order, one page at a time.
    pub async fn list_assets(&self, f: &AssetFilter) -> Result<AssetPage> {
        // A zero (default) limit means the default page size, not one row.
        let limit = if f.limit <= 0 { 50 } else { f.limit.min(500) };
        let mut q = PageQuery::default();
        q.eq("kind", &f.kind.map(|k| k.as_str().to_owned()));
        q.eq("manufacturer", &f.manufacturer);
        q.eq("model", &f.model);
        q.eq("care_area", &f.care_area);
        q.eq("zone", &f.zone);
        q.eq("lifecycle_state", &f.state.map(|s| s.as_str().to_owned()));
        let text = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let want = limit as usize + 1;
        let mut items = match text {
            None => {
                q.fetch(self, f.after.as_deref(), None, &Default::default(), want)
                    .await?
            }
            Some(t) => self.search_assets(&q, t, f.after.as_deref(), want).await?,
        };
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|a| a.spec.asset_id.to_string())
        } else {
            None
        };
        Ok(AssetPage { items, next_cursor })
    }

    /// The first `want` assets after `after` whose search text contains
    /// `needle`, in asset-id order.
    ///
    /// A common term is found fastest by walking the assets in order and
    /// testing each; a rare one by asking the trigram index which assets
    /// contain it and sorting those few. Which one a term is cannot be known
    /// beforehand, so the walk goes first but is bounded to [`SEARCH_WALK`]
    /// assets; if that does not fill the page, the index answers for the rest.
    /// On SQLite the index (FTS5) may lag behind a bulk import, so the assets
    /// above its watermark are scanned as well. PostgreSQL's planner makes the
    /// same choice by itself from the trigram index's statistics.
    async fn search_assets(
        &self,
        q: &PageQuery,
        needle: &str,
        after: Option<&str>,
        want: usize,
    ) -> Result<Vec<Asset>> {
        let like = like_pattern(needle);
        let cond = "search_text LIKE {} ESCAPE '\\'";
        if self.backend() == Backend::Postgres {
            return q
                .fetch(self, after, None, &with_arg(cond, &like), want)
                .await;
        }
        // The end of the bounded walk: the SEARCH_WALK-th asset after `after`.
        let boundary = q.nth_id(self, after, SEARCH_WALK).await?;
        let mut found = q
            .fetch(
                self,
                after,
                boundary.as_deref(),
                &with_arg(cond, &like),
                want,
            )
            .await?;
        let Some(boundary) = boundary.filter(|_| found.len() < want) else {
            return Ok(found);
        };
        let rest = want - found.len();
        let after = Some(boundary.as_str());
        let trigrams = match_trigrams(&needle.to_lowercase());
        let mut more = if trigrams.is_empty() {
            // Too short for the trigram index: such terms are so common that
            // the walk nearly always fills the page; scan for the rest.
            q.fetch(self, after, None, &with_arg(cond, &like), rest)
                .await?
        } else {
            let upto: i64 = sqlx::query_scalar("SELECT indexed_upto FROM asset_search_state")
                .fetch_one(self.pool())
                .await?;
            let indexed = format!(
                "rowid IN (SELECT rowid FROM asset_search WHERE asset_search MATCH {{}}) AND {cond}"
            );
            let extra = (indexed, vec![trigrams, like.clone()]);
            let mut rows = q.fetch(self, after, None, &extra, rest).await?;
            let tail = format!("rowid > {upto} AND {cond}");
            rows.extend(
                q.fetch(self, after, None, &with_arg(&tail, &like), rest)
                    .await?,
            );
            rows.sort_by(|a, b| a.spec.asset_id.cmp(&b.spec.asset_id));
            // An index catch-up between the two reads can return an asset twice.
            rows.dedup_by(|a, b| a.spec.asset_id == b.spec.asset_id);
            rows.truncate(rest);
            rows
        };
        found.append(&mut more);
        Ok(found)
    }

    /// Counts of assets by lifecycle state and by care area (for the dashboard).
    pub async fn asset_counts(&self) -> Result<(Vec<(String, i64)>, Vec<(String, i64)>)> {
        let by = |col: &'static str| async move {
            let rows = sqlx::query(&format!(
                "SELECT COALESCE({col}, '(none)') AS k, COUNT(*) AS n FROM assets GROUP BY {col} ORDER BY k"
            ))
            .fetch_all(self.pool())
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<String, _>("k")?, r.try_get::<i64, _>("n")?)))
                .collect::<Result<Vec<_>>>()
        };
        Ok((by("lifecycle_state").await?, by("care_area").await?))
    }

    /// Distinct values of a filterable column, for the UI's filter choices.
    pub async fn asset_facet(&self, column: AssetFacet) -> Result<Vec<String>> {
        let col = match column {
            AssetFacet::Manufacturer => "manufacturer",
            AssetFacet::Model => "model",
            AssetFacet::CareArea => "care_area",
            AssetFacet::Zone => "zone",
        };
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT {col} AS v FROM assets WHERE {col} IS NOT NULL ORDER BY v"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("v")?))
            .collect()
    }

    /// Records that a device was seen now (used by the gateway).
    pub async fn touch_asset(&self, id: &str, at: OffsetDateTime) -> Result<()> {
        sqlx::query("UPDATE assets SET last_seen = $1 WHERE asset_id = $2")
            .bind(timefmt::format(at))
            .bind(id.to_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The device-model catalogue.
    pub async fn list_models(&self) -> Result<Vec<(i64, DeviceModel)>> {
        let rows = sqlx::query("SELECT * FROM device_models ORDER BY manufacturer, model")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(model_from_row).collect()
    }

    /// Creates or replaces a catalogue entry by (manufacturer, model).
    pub async fn put_model(&self, m: &DeviceModel, actor: &Actor) -> Result<i64> {
        let now = timefmt::format(crate::now());
        let mut tx = self.write_tx().await?;
        let existing =
            sqlx::query("SELECT * FROM device_models WHERE manufacturer = $1 AND model = $2")
                .bind(m.manufacturer.clone())
                .bind(m.model.clone())
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(model_from_row)
                .transpose()?;
        let (id, action) = match existing {
            Some((id, ref old)) if old == m => return Ok(id),
            Some((id, _)) => {
                let q = sqlx::query(
                    "UPDATE device_models SET device_type = $1, eap_tls = $2, client_certificates = $3, \
                     encryption_at_rest = $4, removable_media = $5, remote_service = $6, mds2_on_file = $7, \
                     updated_at = $8 WHERE id = $9",
                );
                bind_capabilities(q, m)
                    .bind(now.clone())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                (id, "model.update")
            }
            None => (insert_model(&mut tx, m, &now).await?, "model.create"),
        };
        tx.commit_audited(
            vec![actor
                .entry(action, Outcome::Success)
                .object(format!("model:{}/{}", m.manufacturer, m.model))
                .details(&serde_json::to_value(m).expect("models serialise"))],
            crate::now(),
        )
        .await?;
        Ok(id)
    }
}

/// A column the asset list can be filtered on.
#[derive(Debug, Clone, Copy)]
pub enum AssetFacet {
    Manufacturer,
    Model,
    CareArea,
    Zone,
}

/// How many assets a free-text search walks in order before it asks the
/// trigram index instead (see `Store::search_assets`). At 2,000 the walk costs
/// about a millisecond, and a term it cannot fill a page from matches under
/// 2.5 % of the assets, which the index answers quickly.
const SEARCH_WALK: i64 = 2_000;

/// The equality filters of an asset listing, as SQL and its arguments.
#[derive(Default)]
struct PageQuery {
    conds: String,
    args: Vec<String>,
}

/// Replaces the one `{}` in `cond` with a placeholder for `arg`, numbered by
/// [`PageQuery::fetch`].
fn with_arg(cond: &str, arg: &str) -> (String, Vec<String>) {
    (cond.to_owned(), vec![arg.to_owned()])
}

impl PageQuery {
    fn eq(&mut self, col: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.args.push(v.clone());
            self.conds
                .push_str(&format!(" AND {col} = ${}", self.args.len()));
        }
    }

    /// Assets matching the filters and `extra`, with `after < asset_id <=
    /// upto`, in asset-id order, at most `want` of them.
    async fn fetch(
        &self,
        store: &Store,
        after: Option<&str>,
        upto: Option<&str>,
        extra: &(String, Vec<String>),
        want: usize,
    ) -> Result<Vec<Asset>> {
        let mut sql = format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE 1 = 1{}",
            self.conds
        );
        let mut args = self.args.clone();
        let mut add = |sql: &mut String, cond: &str, v: String| {
            args.push(v);
            sql.push_str(" AND ");
            sql.push_str(&cond.replacen("{}", &format!("${}", args.len()), 1));
        };
        if let Some(a) = after {
            add(&mut sql, "asset_id > {}", a.to_owned());
        }
        if let Some(u) = upto {
            add(&mut sql, "asset_id <= {}", u.to_owned());
        }
        let (cond, vals) = extra;
        if !cond.is_empty() {
            let mut cond = cond.clone();
            for v in vals {
                args.push(v.clone());
                cond = cond.replacen("{}", &format!("${}", args.len()), 1);
            }
            sql.push_str(" AND ");
            sql.push_str(&cond);
        }
        sql.push_str(&format!(" ORDER BY asset_id LIMIT {want}"));
        let mut q = sqlx::query(&sql);
        for a in args {
            q = q.bind(a);
        }
        q.fetch_all(store.pool())
            .await?
            .iter()
            .map(asset_from_row)
            .collect()
    }

    /// The id of the `n`-th asset after `after` matching the filters, if
    /// there are that many.
    async fn nth_id(&self, store: &Store, after: Option<&str>, n: i64) -> Result<Option<String>> {
        let mut sql = format!("SELECT asset_id FROM assets WHERE 1 = 1{}", self.conds);
        let mut args = self.args.clone();
        if let Some(a) = after {
            args.push(a.to_owned());
            sql.push_str(&format!(" AND asset_id > ${}", args.len()));
        }
        sql.push_str(&format!(" ORDER BY asset_id LIMIT 1 OFFSET {}", n - 1));
        let mut q = sqlx::query_scalar(&sql);
        for a in args {
            q = q.bind(a);
        }
        Ok(q.fetch_optional(store.pool()).await?)
    }
}

/// An FTS5 query for the trigram index that every text containing `needle`
/// matches: all of its distinct three-character windows, ANDed (the index has
/// no positions, so a phrase query is not available; the LIKE decides).
/// Empty if `needle` is shorter than three characters.
pub(crate) fn match_trigrams(needle: &str) -> String {
    let chars: Vec<char> = needle.chars().collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut terms = Vec::new();
    for w in chars.windows(3) {
        let t: String = w.iter().collect();
        if seen.insert(t.clone()) {
            terms.push(format!("\"{}\"", t.replace('"', "\"\"")));
        }
    }
    terms.join(" AND ")
}

#[cfg(test)]
mod tests {
    use super::match_trigrams;

    #[test]
    fn trigram_queries_quote_each_distinct_window() {
        assert_eq!(match_trigrams("ab"), "");
        assert_eq!(match_trigrams("abc"), "\"abc\"");
        assert_eq!(match_trigrams("abcd"), "\"abc\" AND \"bcd\"");
        // Repeated windows once; quotes doubled (FTS5 string syntax).
        assert_eq!(match_trigrams("aaaa"), "\"aaa\"");
        assert_eq!(match_trigrams("a\"b"), "\"a\"\"b\"");
        // Windows are of characters, not bytes.
        assert_eq!(match_trigrams("éçà"), "\"éçà\"");
    }
}
