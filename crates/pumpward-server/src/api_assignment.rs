//! REST handlers of drug-library assignment (issue 4, item 5): where a
//! library goes (care areas and/or pump groups), and the pump groups
//! themselves (a named list of pumps). A library assigned to nothing goes
//! to the whole fleet. See `pumpward_store`'s `assignment` module.

use crate::api::JsonBody;
use crate::auth::Principal;
use crate::problem::ApiResult;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentBody {
    /// Care areas as the inventory names them.
    #[serde(default)]
    pub care_areas: Vec<String>,
    /// Pump group names.
    #[serde(default)]
    pub pump_groups: Vec<String>,
}

/// `GET /api/v1/libraries/{id}/assignment`.
pub async fn get(
    State(st): State<AppState>,
    _: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let a = st.store.library_assignment(&id).await?;
    Ok(Json(
        json!({ "assignment": a, "whole_fleet": a.whole_fleet() }),
    ))
}

/// `PUT /api/v1/libraries/{id}/assignment`: replaces the assignment (both
/// lists empty: the whole fleet); for rollouts created from now on.
pub async fn put(
    State(st): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<AssignmentBody>,
) -> ApiResult<Json<Value>> {
    let a = st
        .store
        .set_library_assignment(&id, &b.care_areas, &b.pump_groups, &p.actor())
        .await?;
    Ok(Json(
        json!({ "assignment": a, "whole_fleet": a.whole_fleet() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    #[serde(default)]
    pub description: String,
    /// Asset ids of pumps in the inventory.
    pub members: Vec<String>,
}

/// `GET /api/v1/pump-groups`.
pub async fn list_groups(State(st): State<AppState>, _: Principal) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "items": st.store.pump_groups().await? })))
}

/// `PUT /api/v1/pump-groups/{name}`: creates or replaces a group.
pub async fn put_group(
    State(st): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
    JsonBody(b): JsonBody<GroupBody>,
) -> ApiResult<Json<Value>> {
    let g = st
        .store
        .set_pump_group(&name, &b.description, &b.members, &p.actor())
        .await?;
    Ok(Json(json!({ "group": g })))
}

/// `DELETE /api/v1/pump-groups/{name}`: 204; 409 naming the libraries
/// while any is assigned to the group (it would go to the whole fleet).
pub async fn delete_group(
    State(st): State<AppState>,
    p: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    st.store.delete_pump_group(&name, &p.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
