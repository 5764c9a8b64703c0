//! The pump-groups page (`/pump-groups`): biomed's named lists of pumps that
//! a drug library can be assigned to besides care areas (e.g. a loaner pool
//! whose care area says nothing). Each group shows its pumps as the
//! inventory knows them (model, care area, lifecycle state: a retired pump
//! in a group is visible) and the libraries assigned to it. Those who may
//! edit the inventory get the create/replace form and a delete button; the
//! store refuses to delete a group a library is assigned to, naming the
//! libraries, so no library silently widens to the whole fleet.

use super::{done_param, need, render, see_other, Fields, Nav, UiResult, UiResultExt, UiUser};
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use pumpward_core::access::Permission;
use pumpward_store::{GroupPump, MAX_GROUP_DESCRIPTION_CHARS, MAX_GROUP_MEMBERS, MAX_TARGET_CHARS};
use std::collections::BTreeMap;

const HERE: &str = "/pump-groups";
/// Pumps listed per group; the rest are counted.
const SHOWN: i64 = 200;

/// A library assigned to a group.
pub struct LibraryLink {
    pub id: String,
    pub name: String,
    /// Where its assignment is changed (`/rollout?library=…`).
    pub assignment_href: String,
}

pub struct GroupRow {
    pub name: String,
    pub description: String,
    pub members: usize,
    /// The first [`SHOWN`] members.
    pub pumps: Vec<GroupPump>,
    pub more: usize,
    pub libraries: Vec<LibraryLink>,
    pub updated_by: String,
    pub updated_at: String,
    /// The name as one path segment (a name may hold '/', '?' or spaces).
    pub segment: String,
    /// `/pump-groups?edit=…`: the form filled with this group.
    pub edit_href: String,
}

/// The form's values: as typed after a refusal, or a group to edit.
#[derive(Default)]
struct GroupForm {
    name: String,
    description: String,
    members: String,
}

#[derive(Template)]
#[template(path = "pump_groups.html")]
struct PumpGroupsPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    groups: Vec<GroupRow>,
    can_write: bool,
    form: GroupForm,
    max_members: usize,
    max_name: usize,
    max_description: usize,
}

/// Asset ids as typed in the members box: separated by newlines, commas or
/// spaces (a column pasted from a spreadsheet, or a list from an email).
pub fn member_ids(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn segment(name: &str) -> String {
    utf8_percent_encode(name, NON_ALPHANUMERIC).to_string()
}

async fn page(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
    form: GroupForm,
) -> UiResult {
    let groups = st.store.pump_groups().await.ui(p, HERE)?;
    let assigned = st.store.pump_group_libraries().await.ui(p, HERE)?;
    let library_names: BTreeMap<String, String> = st
        .store
        .list_libraries()
        .await
        .ui(p, HERE)?
        .into_iter()
        .map(|l| (l.library_id, l.name))
        .collect();
    let mut rows = Vec::with_capacity(groups.len());
    for g in groups {
        let pumps = st
            .store
            .pump_group_pumps(&g.name, SHOWN)
            .await
            .ui(p, HERE)?;
        let libraries = assigned
            .get(&g.name)
            .into_iter()
            .flatten()
            .map(|id| LibraryLink {
                id: id.clone(),
                name: library_names.get(id).cloned().unwrap_or_else(|| id.clone()),
                assignment_href: format!(
                    "/rollout?{}",
                    serde_urlencoded::to_string([("library", id)]).unwrap_or_default()
                ),
            })
            .collect();
        rows.push(GroupRow {
            members: g.members.len(),
            more: g.members.len().saturating_sub(pumps.len()),
            pumps,
            libraries,
            segment: segment(&g.name),
            edit_href: format!(
                "{HERE}?{}",
                serde_urlencoded::to_string([("edit", &g.name)]).unwrap_or_default()
            ),
            name: g.name,
            description: g.description,
            updated_by: g.updated_by,
            updated_at: g.updated_at,
        });
    }
    render(
        status,
        &PumpGroupsPage {
            nav: Some(Nav::new(p, HERE)),
            notice,
            error,
            groups: rows,
            can_write: p.can(Permission::InventoryWrite),
            form,
            max_members: MAX_GROUP_MEMBERS,
            max_name: MAX_TARGET_CHARS,
            max_description: MAX_GROUP_DESCRIPTION_CHARS,
        },
    )
}

/// `GET /pump-groups[?edit=NAME]`: every group; with `edit`, the form holds
/// that group so that it can be changed and saved back.
pub async fn pump_groups(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::InventoryRead, HERE).await?;
    let q: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    let mut form = GroupForm::default();
    let edit = q.iter().find(|(k, _)| k == "edit").map(|(_, v)| v.as_str());
    if let (Some(name), true) = (edit, p.can(Permission::InventoryWrite)) {
        // A group deleted meanwhile leaves the form empty.
        if let Ok(g) = st.store.pump_group(name).await {
            form = GroupForm {
                name: g.name,
                description: g.description,
                members: g.members.join("\n"),
            };
        }
    }
    page(&st, &p, StatusCode::OK, done_param(uri.query()), None, form).await
}

/// `POST /pump-groups`: creates the group, or replaces the one of that
/// name. A refusal (unknown asset, too many pumps, bad name) shows the
/// store's words above the form with the typed values kept; nothing is
/// stored.
pub async fn save(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::InventoryWrite, HERE).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, HERE))?;
    let form = GroupForm {
        name: f.get("name").to_owned(),
        description: f.get("description").to_owned(),
        members: f.get("members").to_owned(),
    };
    match st
        .store
        .set_pump_group(
            &form.name,
            &form.description,
            &member_ids(&form.members),
            &p.actor(),
        )
        .await
    {
        Ok(_) => Ok(see_other(&format!("{HERE}?done=pump-group-saved"))),
        Err(e) => {
            let e = ApiError::from(e);
            let msg = format!("The group was not saved: {}.", e.detail);
            page(&st, &p, e.kind.status(), None, Some(msg), form).await
        }
    }
}

/// `POST /pump-groups/{name}/delete`: refused (409, naming the libraries)
/// while a library is assigned to the group.
pub async fn delete(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(name): Path<String>,
) -> UiResult {
    need(&st, &p, Permission::InventoryWrite, HERE).await?;
    match st.store.delete_pump_group(&name, &p.actor()).await {
        Ok(()) => Ok(see_other(&format!("{HERE}?done=pump-group-deleted"))),
        Err(e) => {
            let e = ApiError::from(e);
            let msg = format!("The group was not deleted: {}.", e.detail);
            let status = e.kind.status();
            page(&st, &p, status, None, Some(msg), GroupForm::default()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn members_are_split_on_newlines_commas_and_spaces() {
        assert_eq!(
            member_ids("PUMP-1\r\nPUMP-2, PUMP-3,,\tPUMP-4 \n\n"),
            ["PUMP-1", "PUMP-2", "PUMP-3", "PUMP-4"]
        );
        assert!(member_ids(" ,\n ").is_empty());
    }

    proptest! {
        /// Whatever mix of separators joins them, the ids come back in order.
        #[test]
        fn ids_joined_by_any_separators_come_back(
            ids in prop::collection::vec("[A-Za-z0-9._-]{1,12}", 0..20),
            seps in prop::collection::vec(prop::sample::select(vec![",", " ", "\n", "\r\n", ", ", "\t", ",\n"]), 20),
        ) {
            let mut text = String::new();
            for (i, id) in ids.iter().enumerate() {
                text.push_str(id);
                text.push_str(seps[i]);
            }
            prop_assert_eq!(member_ids(&text), ids);
        }
    }
}
