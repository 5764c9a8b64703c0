//! User administration, the MFA policy, and the audit trail.

use super::{
    done_param, need, or_dash, render, see_other, Fields, Nav, Opt, UiError, UiResult, UiResultExt,
    UiUser,
};
use crate::api::{parse_query, AuditQuery, NewUser};
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::{Permission, Role};
use pumpward_core::audit::Outcome;

// ---------------------------------------------------------------- users

pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub roles: Vec<Opt>,
    pub mfa: bool,
    pub disabled: bool,
    pub created_at: String,
    pub is_self: bool,
}

pub struct PolicyRow {
    pub role: String,
    pub description: String,
    pub required: bool,
}

/// What the add-user form had, to show it again after an error.
#[derive(Default)]
pub struct NewUserForm {
    pub username: String,
    pub display_name: String,
    pub role: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    users: Vec<UserRow>,
    new_roles: Vec<Opt>,
    form: NewUserForm,
    policy: Vec<PolicyRow>,
    min_password: usize,
}

fn role_options(current: &str) -> Vec<Opt> {
    Role::ALL
        .iter()
        .map(|r| Opt::new(r.as_str(), r.as_str(), r.as_str() == current))
        .collect()
}

async fn users_page(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
    form: NewUserForm,
) -> UiResult {
    const HERE: &str = "/users";
    let users = st
        .store
        .list_users()
        .await
        .ui(p, HERE)?
        .into_iter()
        .map(|u| UserRow {
            id: u.id,
            roles: role_options(u.role.as_str()),
            role: u.role.to_string(),
            mfa: u.mfa_enrolled(),
            disabled: u.disabled,
            created_at: u.created_at.get(..10).unwrap_or(&u.created_at).to_owned(),
            is_self: u.id == p.user.id,
            username: u.username,
            display_name: u.display_name,
        })
        .collect();
    let mut policy = Vec::new();
    for &r in Role::ALL {
        policy.push(PolicyRow {
            role: r.to_string(),
            description: r.description().to_owned(),
            required: st.store.mfa_required(r).await.ui(p, HERE)?,
        });
    }
    let new_role = if form.role.is_empty() {
        Role::Clinician.as_str().to_owned()
    } else {
        form.role.clone()
    };
    render(
        status,
        &UsersPage {
            nav: Some(Nav::new(p, HERE)),
            notice,
            error,
            csrf: p.csrf().to_owned(),
            users,
            new_roles: role_options(&new_role),
            form,
            policy,
            min_password: pumpward_core::access::password::MIN_PASSWORD_CHARS,
        },
    )
}

pub async fn users(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    need(&st, &p, Permission::UsersManage, "/users").await?;
    users_page(
        &st,
        &p,
        StatusCode::OK,
        done_param(uri.query()),
        None,
        NewUserForm::default(),
    )
    .await
}

/// Shows the users page again with an API error as its alert.
async fn users_error(st: &AppState, p: &Principal, e: ApiError, form: NewUserForm) -> UiResult {
    if e.kind == crate::problem::ErrorKind::NotFound {
        return Err(UiError::from(e).with_nav(p, "/users"));
    }
    users_page(st, p, e.kind.status(), None, Some(e.detail), form).await
}

pub async fn add_user(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::UsersManage, "/users").await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, "/users"))?;
    let new = NewUser {
        username: f.get("username").to_owned(),
        display_name: Some(f.get("display_name").to_owned()),
        role: f.get("role").to_owned(),
        password: f.get("password").to_owned(),
    };
    match crate::api::add_user(&st, &p, &new).await {
        Ok(_) => Ok(see_other("/users?done=user-added")),
        Err(e) => {
            let form = NewUserForm {
                username: new.username,
                display_name: new.display_name.unwrap_or_default(),
                role: new.role,
            };
            users_error(&st, &p, e, form).await
        }
    }
}

pub async fn change_user(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
    body: Bytes,
) -> UiResult {
    need(&st, &p, Permission::UsersManage, "/users").await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, "/users"))?;
    let user = id.parse::<i64>().ok();
    let Some((id, cur)) = (match user {
        Some(id) => st
            .store
            .user_by_id(id)
            .await
            .ui(&p, "/users")?
            .map(|u| (id, u)),
        None => None,
    }) else {
        return Err(UiError::from(ApiError::not_found(format!("user {id}"))).with_nav(&p, "/users"));
    };
    let result: Result<&str, ApiError> = async {
        match f.get("action") {
            "role" => {
                let role: Role = f.get("role").parse().map_err(|e| {
                    ApiError::new(crate::problem::ErrorKind::Validation, format!("role: {e}"))
                })?;
                st.store
                    .update_user(id, role, cur.disabled, &p.actor())
                    .await?;
                Ok("user-changed")
            }
            "disable" | "enable" => {
                st.store
                    .update_user(id, cur.role, f.get("action") == "disable", &p.actor())
                    .await?;
                Ok("user-changed")
            }
            "mfa_reset" => {
                st.store.set_totp(id, None, None, &p.actor()).await?;
                Ok("mfa-reset")
            }
            _ => Err(ApiError::bad_request(
                "unknown action; use role, disable, enable or mfa_reset",
            )),
        }
    }
    .await;
    match result {
        Ok(done) => Ok(see_other(&format!("/users?done={done}"))),
        Err(e) => users_error(&st, &p, e, NewUserForm::default()).await,
    }
}

pub async fn mfa_policy(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::UsersManage, "/users").await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, "/users"))?;
    // Unticked boxes are not sent, so an empty body would mean "no role needs
    // MFA"; the form's marker field tells a real submission from a stray post.
    if f.get("form") != "mfa-policy" {
        let e = ApiError::bad_request(
            "the MFA policy form is incomplete; reload the page and try again",
        );
        return users_error(&st, &p, e, NewUserForm::default()).await;
    }
    let wanted: Vec<&str> = f.all("required").collect();
    if let Some(bad) = wanted.iter().find(|r| r.parse::<Role>().is_err()) {
        let e = ApiError::bad_request(format!("{bad:?} is not a role"));
        return users_error(&st, &p, e, NewUserForm::default()).await;
    }
    for &r in Role::ALL {
        let want = wanted.contains(&r.as_str());
        if st.store.mfa_required(r).await.ui(&p, "/users")? != want {
            st.store
                .set_mfa_required(r, want, &p.actor())
                .await
                .ui(&p, "/users")?;
        }
    }
    Ok(see_other("/users?done=mfa-policy"))
}

// ---------------------------------------------------------------- audit

pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
    pub reason: String,
    pub source: String,
    pub details: String,
}

/// Audit details are canonical (compact) JSON; indent them for reading.
fn pretty_json(s: &str) -> String {
    serde_json::from_str::<serde_json::Value>(s)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| s.to_owned())
}

pub struct ChainStatus {
    pub intact: bool,
    pub records: i64,
    pub head_seq: i64,
    pub head_hash: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    actor: String,
    action: String,
    object: String,
    outcomes: Vec<Opt>,
    since: String,
    until: String,
    rows: Vec<AuditRow>,
    older_href: Option<String>,
    newest_href: Option<String>,
    filtered: bool,
    chain: ChainStatus,
}

pub async fn audit(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    const HERE: &str = "/audit";
    need(&st, &p, Permission::AuditRead, HERE).await?;
    let q: AuditQuery = parse_query(uri.query()).ui(&p, HERE)?;
    let filter = q.to_filter().ui(&p, HERE)?;
    let items = st.store.audit_list(&filter).await.ui(&p, HERE)?;
    let report = st.store.audit_verify().await.ui(&p, HERE)?;
    let text = |s: &Option<String>| s.as_deref().map(str::trim).unwrap_or("").to_owned();
    let mut keep: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("object", &q.object),
        ("outcome", &q.outcome),
        ("since", &q.since),
        ("until", &q.until),
    ] {
        let v = text(v);
        if !v.is_empty() {
            keep.push((k, v));
        }
    }
    if q.limit.is_some() {
        keep.push(("limit", filter.limit.to_string()));
    }
    let href = |before: Option<i64>| {
        let mut pairs = keep.clone();
        if let Some(b) = before {
            pairs.push(("before", b.to_string()));
        }
        let qs = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if qs.is_empty() {
            HERE.to_owned()
        } else {
            format!("{HERE}?{qs}")
        }
    };
    // Same rule as the API: a full page whose last record is not the first
    // one may have older records.
    let older_href = items
        .last()
        .map(|r| r.seq)
        .filter(|&s| s > 1 && items.len() as i64 >= filter.limit)
        .map(|s| href(Some(s)));
    let newest_href = q.before.is_some().then(|| href(None));
    let current_outcome = filter.outcome.map(|o| o.as_str()).unwrap_or("");
    let mut outcomes = vec![Opt::new("", "Any", current_outcome.is_empty())];
    outcomes.extend(
        Outcome::ALL
            .iter()
            .map(|o| Opt::new(o.as_str(), o.as_str(), o.as_str() == current_outcome)),
    );
    let rows = items
        .into_iter()
        .map(|r| AuditRow {
            seq: r.seq,
            at: r.at,
            actor: r.entry.actor,
            action: r.entry.action,
            object: or_dash(r.entry.object),
            outcome: r.entry.outcome.to_string(),
            reason: r.entry.reason.unwrap_or_default(),
            source: or_dash(r.entry.source),
            details: r
                .entry
                .details
                .as_deref()
                .map(pretty_json)
                .unwrap_or_default(),
        })
        .collect();
    render(
        StatusCode::OK,
        &AuditPage {
            nav: Some(Nav::new(&p, HERE)),
            notice: None,
            error: None,
            actor: text(&q.actor),
            action: text(&q.action),
            object: text(&q.object),
            outcomes,
            since: text(&q.since),
            until: text(&q.until),
            rows,
            older_href,
            newest_href,
            filtered: keep.iter().any(|(k, _)| *k != "limit"),
            chain: ChainStatus {
                intact: report.error.is_none(),
                records: report.records,
                head_seq: report.head.seq,
                head_hash: report.head.hash.clone(),
                error: report.error.as_ref().map(|e| e.to_string()),
            },
        },
    )
}
