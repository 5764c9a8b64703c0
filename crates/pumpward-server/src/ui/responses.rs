//! Responses in the UI: the biomed swap work list (`/responses`: pumps in
//! quarantine to swap, automatic quarantines waiting for a confirmation),
//! the responses section of the asset page with its quarantine and release
//! forms, and the quarantine form offered beside an alert. The logic is
//! `crate::response`'s; these handlers only read forms and pick pages.

use super::pki::segment;
use super::{need, render, see_other, Fields, Nav, UiError, UiResult, UiResultExt, UiUser};
use crate::auth::Principal;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::Permission;
use pumpward_core::inventory::LifecycleState;
use pumpward_detect::ResponseState;
use pumpward_store::{ResponseFilter, ResponseRecord, StoreError};

const HERE: &str = "/responses";

/// One response as the pages show it.
pub struct ResponseRow {
    pub id: i64,
    pub asset_id: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub reason: String,
    pub alert_id: String,
    pub requested_by: String,
    pub requested_at: String,
    pub confirmed_by: String,
    pub previous_state: String,
    pub closed: String,
    /// Where the pump is, for the biomed who goes to swap it.
    pub place: String,
}

impl From<ResponseRecord> for ResponseRow {
    fn from(r: ResponseRecord) -> Self {
        ResponseRow {
            id: r.id,
            asset_id: r.asset_id,
            kind: r.kind.as_str(),
            state: r.state.as_str(),
            reason: r.reason,
            alert_id: r.alert_id.unwrap_or_default(),
            requested_by: r.requested_by,
            requested_at: r.requested_at,
            confirmed_by: r.confirmed_by.unwrap_or_default(),
            previous_state: r.previous_state.map(|s| s.to_string()).unwrap_or_default(),
            closed: match (r.closed_by, r.closed_at, r.close_reason) {
                (Some(by), Some(at), Some(why)) => format!("{by}, {at}: {why}"),
                _ => String::new(),
            },
            place: String::new(),
        }
    }
}

/// The asset page's responses section.
pub struct AssetResponses {
    pub rows: Vec<ResponseRow>,
    /// The quarantine form is offered (the user may, and the asset can be).
    pub can_quarantine: bool,
    /// The release form is offered (an applied quarantine, and the user may).
    pub can_release: bool,
    /// A pending response the user may confirm or refuse.
    pub pending: Option<i64>,
}

/// What the asset page shows about responses to `asset_id`.
pub async fn asset_responses(
    st: &AppState,
    p: &Principal,
    asset_id: &str,
    state: LifecycleState,
) -> Result<AssetResponses, UiError> {
    let rows = st
        .store
        .list_responses(&ResponseFilter {
            asset_id: Some(asset_id.to_owned()),
            limit: 20,
            ..Default::default()
        })
        .await
        .ui(p, "/assets")?;
    let may = p.can(Permission::ResponseManage);
    let open = rows.iter().find(|r| r.state.is_open());
    Ok(AssetResponses {
        can_quarantine: may
            && open.is_none()
            && matches!(
                state,
                LifecycleState::InService | LifecycleState::Maintenance
            ),
        can_release: may && open.is_some_and(|r| r.state == ResponseState::Applied),
        pending: open
            .filter(|r| may && r.state == ResponseState::Pending)
            .map(|r| r.id),
        rows: rows.into_iter().map(ResponseRow::from).collect(),
    })
}

#[derive(Template)]
#[template(path = "responses.html")]
struct WorkList {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    /// Quarantined pumps to swap.
    applied: Vec<ResponseRow>,
    /// Automatic (or two-person) quarantines waiting for a confirmation.
    pending: Vec<ResponseRow>,
}

async fn work_list(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
) -> UiResult {
    let list = |state| ResponseFilter {
        state: Some(state),
        limit: 500,
        ..Default::default()
    };
    let mut applied: Vec<ResponseRow> = Vec::new();
    for r in st
        .store
        .list_responses(&list(ResponseState::Applied))
        .await
        .ui(p, HERE)?
    {
        let place = match st.store.asset(&r.asset_id).await {
            Ok(a) => [a.spec.care_area, a.spec.location]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", "),
            Err(_) => String::new(),
        };
        let mut row = ResponseRow::from(r);
        row.place = place;
        applied.push(row);
    }
    let pending = st
        .store
        .list_responses(&list(ResponseState::Pending))
        .await
        .ui(p, HERE)?
        .into_iter()
        .map(ResponseRow::from)
        .collect();
    render(
        status,
        &WorkList {
            nav: Some(Nav::new(p, HERE)),
            notice,
            error,
            csrf: p.csrf().to_owned(),
            applied,
            pending,
        },
    )
}

pub async fn responses(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::ResponseManage, HERE).await?;
    work_list(
        &st,
        &p,
        StatusCode::OK,
        super::done_param(uri.query()),
        None,
    )
    .await
}

/// A store refusal shown on the page it came from; a missing record is the
/// error page.
fn refusal(e: StoreError, p: &Principal, here: &str) -> Result<(StatusCode, String), UiError> {
    match e {
        e @ StoreError::NotFound { .. } => Err(e).ui(p, here),
        e => {
            let api = crate::problem::ApiError::from(e);
            Ok((api.kind.status(), api.detail))
        }
    }
}

fn response_id(id: &str, p: &Principal) -> Result<i64, UiError> {
    id.parse().map_err(|_| {
        UiError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no response {id}."),
        )
        .with_nav(p, HERE)
    })
}

/// Where a response form returns: the asset page when it came from there.
fn back_to(f: &Fields, asset_id: &str, done: &str) -> String {
    if f.get("back") == "asset" {
        format!("/assets/{}?done={done}", segment(asset_id))
    } else {
        format!("{HERE}?done={done}")
    }
}

pub async fn confirm(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::ResponseManage, HERE).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, HERE))?;
    let id = response_id(&id, &p)?;
    match crate::response::confirm(&st, id, &p.actor()).await {
        Ok(r) => Ok(see_other(&back_to(&f, &r.asset_id, "response-confirmed"))),
        Err(e) => {
            let (status, msg) = refusal(e, &p, HERE)?;
            work_list(&st, &p, status, None, Some(msg)).await
        }
    }
}

pub async fn refuse(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::ResponseManage, HERE).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, HERE))?;
    let id = response_id(&id, &p)?;
    match st
        .store
        .refuse_response(id, f.get("reason"), &p.actor())
        .await
    {
        Ok(r) => Ok(see_other(&back_to(&f, &r.asset_id, "response-refused"))),
        Err(e) => {
            let (status, msg) = refusal(e, &p, HERE)?;
            work_list(&st, &p, status, None, Some(msg)).await
        }
    }
}

/// The asset page again, with the refusal.
async fn asset_again(st: &AppState, p: &Principal, id: &str, e: StoreError) -> UiResult {
    let (status, msg) = refusal(e, p, "/assets")?;
    super::inventory::asset_page(st, p, id, status, None, Some(msg), None).await
}

pub async fn quarantine(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::ResponseManage, "/assets").await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, "/assets"))?;
    let alert = Some(f.get("alert_id").to_owned());
    let two_person = f.get("two_person") == "yes";
    match crate::response::quarantine(&st, &id, f.get("reason"), alert, two_person, &p.actor())
        .await
    {
        Ok(r) => Ok(see_other(&format!(
            "/assets/{}?done={}",
            segment(&r.asset_id),
            if r.state == ResponseState::Applied {
                "quarantined"
            } else {
                "quarantine-requested"
            }
        ))),
        Err(e) => asset_again(&st, &p, &id, e).await,
    }
}

pub async fn release(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::ResponseManage, "/assets").await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, "/assets"))?;
    match st
        .store
        .release_response(&id, f.get("reason"), &p.actor())
        .await
    {
        Ok(r) => Ok(see_other(&format!(
            "/assets/{}?done=released",
            segment(&r.asset_id)
        ))),
        Err(e) => asset_again(&st, &p, &id, e).await,
    }
}
