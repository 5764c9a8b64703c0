//! `GET /api/v1/events`: the stored event stream, queryable by asset, type
//! and time, newest first.
//!
//! Two streams are kept, and a query reads one of them:
//!
//! - `security` (the default): every event recorded for detection in the
//!   typed, versioned envelope (`pumpward_detect::Event`) — gateway,
//!   network, vulnerability and administrative events, and the pump
//!   events that detection derived from the pump's queue.
//! - `pump`: each pump's own event queue exactly as the pump sent it
//!   (infusion start/stop and every other kind, also those no rule reads),
//!   with the pump's clock (`at`) beside Pumpward's receipt time.
//!
//! Time bounds are RFC 3339 and compared as instants (a `+01:00` offset is
//! honoured); for the pump stream they bound the receipt time, because a
//! pump's own clock may be wrong.

use crate::api::parse_query;
use crate::auth::Principal;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::Json;
use pumpward_core::timefmt;
use pumpward_detect::event::BodyKind;
use pumpward_store::{DeviceEventCursor, PumpEventFilter, SecurityEventFilter};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// `security` (default) or `pump`.
    stream: Option<String>,
    asset_id: Option<String>,
    /// The event type: a body kind of the envelope (`auth_failure`, …) for
    /// the security stream, the pump's event kind (`dose_check`, …) for the
    /// pump stream.
    #[serde(rename = "type")]
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// Page cursor: the `next_cursor` of the previous page.
    before: Option<String>,
    #[serde(default)]
    limit: i64,
}

/// An RFC 3339 bound in the store's canonical UTC text, which sorts as time.
fn bound(name: &str, v: Option<String>) -> ApiResult<Option<String>> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => timefmt::parse(&s)
            .map(|t| Some(timefmt::format(t)))
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "{name} {s:?}: give an RFC 3339 time, e.g. 2026-11-26T08:00:00Z"
                ))
            }),
    }
}

fn security_kind(k: &str) -> ApiResult<String> {
    if BodyKind::ALL.iter().any(|b| b.as_str() == k) {
        return Ok(k.to_owned());
    }
    let names: Vec<&str> = BodyKind::ALL.iter().map(|b| b.as_str()).collect();
    Err(ApiError::bad_request(format!(
        "type {k:?}: the security stream's types are {}",
        names.join(", ")
    )))
}

/// A pump event kind is a snake_case name; pumps of newer protocol versions
/// may report kinds this server does not know, so it is not checked against
/// a list.
fn pump_kind(k: &str) -> ApiResult<String> {
    let ok = !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit());
    if ok {
        Ok(k.to_owned())
    } else {
        Err(ApiError::bad_request(format!(
            "type {k:?}: a pump event kind is a snake_case name such as dose_check"
        )))
    }
}

pub async fn list_events(
    State(st): State<AppState>,
    _: Principal,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q: EventQuery = parse_query(q.as_deref())?;
    let from = bound("from", q.from)?;
    let to = bound("to", q.to)?;
    let asset_id = q.asset_id.filter(|s| !s.is_empty());
    let kind = q.kind.filter(|s| !s.is_empty());
    let before = q.before.filter(|s| !s.is_empty());
    let bad_cursor = || ApiError::bad_request("before: use the next_cursor given");
    match q.stream.as_deref().unwrap_or("security") {
        "security" => {
            let filter = SecurityEventFilter {
                asset_id,
                kind: kind.as_deref().map(security_kind).transpose()?,
                from,
                to,
                before_seq: match before {
                    None => None,
                    Some(b) => Some(b.parse::<i64>().map_err(|_| bad_cursor())?),
                },
                limit: q.limit,
            };
            let (items, next) = st.store.list_security_events(&filter).await?;
            Ok(Json(json!({
                "stream": "security",
                "items": items.iter().map(|e| json!({"seq": e.seq, "event": e.event})).collect::<Vec<_>>(),
                "next_cursor": next.map(|s| s.to_string()),
            })))
        }
        "pump" => {
            // The cursor is `<received_at>|<asset_id>|<seq>` as the
            // previous page gave it.
            let before = match before {
                None => None,
                Some(b) => {
                    // An asset id may itself hold a `|`: the time is the
                    // first part and the sequence number the last.
                    let Some(((r, a), s)) = b
                        .split_once('|')
                        .and_then(|(r, rest)| rest.rsplit_once('|').map(|(a, s)| ((r, a), s)))
                    else {
                        return Err(bad_cursor());
                    };
                    Some(DeviceEventCursor {
                        received_at: r.to_owned(),
                        asset_id: a.to_owned(),
                        seq: s.parse().map_err(|_| bad_cursor())?,
                    })
                }
            };
            let filter = PumpEventFilter {
                asset_id,
                kind: kind.as_deref().map(pump_kind).transpose()?,
                from,
                to,
                before,
                limit: q.limit,
            };
            let (items, next) = st.store.list_pump_events(&filter).await?;
            let view = |e: &pumpward_store::StoredDeviceEvent| {
                json!({
                    "asset_id": e.cursor.asset_id,
                    "seq": e.cursor.seq,
                    "type": e.record.kind,
                    "at": e.record.at,
                    "received_at": e.cursor.received_at,
                    // Stored as the pump sent it; shown as JSON, or as the
                    // text it is if it somehow is not.
                    "event": serde_json::from_str::<Value>(&e.record.body)
                        .unwrap_or_else(|_| Value::String(e.record.body.clone())),
                })
            };
            Ok(Json(json!({
                "stream": "pump",
                "items": items.iter().map(view).collect::<Vec<_>>(),
                "next_cursor": next.map(|c| format!("{}|{}|{}", c.received_at, c.asset_id, c.seq)),
            })))
        }
        other => Err(ApiError::bad_request(format!(
            "stream {other:?}: use security or pump"
        ))),
    }
}
