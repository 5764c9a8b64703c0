//! One's own account: profile, password, two-factor status, API tokens.

use super::{
    done_param, need, render, see_other, Fields, Nav, UiError, UiResult, UiResultExt, UiUser,
};
use crate::api::{make_token, NewToken};
use crate::auth::Principal;
use crate::problem::{ApiError, ErrorKind};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use pumpward_core::access::{password, Permission};

const HERE: &str = "/account";

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub scopes: String,
    pub created_at: String,
    pub expires_at: String,
    pub last_used_at: String,
    pub status: &'static str,
    pub active: bool,
}

pub struct ScopeOpt {
    pub value: &'static str,
    pub checked: bool,
}

/// A token just created: its secret is shown on this one page only.
pub struct NewSecret {
    pub name: String,
    pub secret: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    username: String,
    display_name: String,
    role: String,
    role_description: String,
    mfa: bool,
    permissions: Vec<&'static str>,
    min_password: usize,
    /// `None` when the role may not hold tokens.
    tokens: Option<Vec<TokenRow>>,
    scopes: Vec<ScopeOpt>,
    token_name: String,
    new_secret: Option<NewSecret>,
}

#[derive(Default)]
struct TokenForm<'a> {
    name: &'a str,
    scopes: Vec<&'a str>,
}

async fn account_page(
    st: &AppState,
    p: &Principal,
    status: StatusCode,
    notice: Option<&'static str>,
    error: Option<String>,
    form: TokenForm<'_>,
    new_secret: Option<NewSecret>,
) -> UiResult {
    let now = time::OffsetDateTime::now_utc();
    let tokens = if p.can(Permission::TokensOwn) {
        let list = st
            .store
            .list_api_tokens(Some(p.user.id))
            .await
            .ui(p, HERE)?;
        Some(
            list.into_iter()
                .rev()
                .map(|t| {
                    let expired = pumpward_core::timefmt::parse(&t.expires_at)
                        .map(|e| e <= now)
                        .unwrap_or(true);
                    let status = if t.revoked_at.is_some() {
                        "revoked"
                    } else if expired {
                        "expired"
                    } else {
                        "active"
                    };
                    TokenRow {
                        id: t.id,
                        name: t.name,
                        scopes: t
                            .scopes
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                        created_at: t.created_at,
                        expires_at: t.expires_at,
                        last_used_at: t.last_used_at.unwrap_or_else(|| "never".into()),
                        active: status == "active",
                        status,
                    }
                })
                .collect(),
        )
    } else {
        None
    };
    let allowed: Vec<&'static str> = Permission::ALL
        .iter()
        .filter(|&&x| p.user.role.allows(x))
        .map(|x| x.as_str())
        .collect();
    let scopes = allowed
        .iter()
        .map(|&s| ScopeOpt {
            value: s,
            checked: form.scopes.contains(&s),
        })
        .collect();
    render(
        status,
        &AccountPage {
            nav: Some(Nav::new(p, HERE)),
            notice,
            error,
            csrf: p.csrf().to_owned(),
            username: p.user.username.clone(),
            display_name: p.user.display_name.clone(),
            role: p.user.role.to_string(),
            role_description: p.user.role.description().to_owned(),
            mfa: p.user.mfa_enrolled(),
            permissions: allowed,
            min_password: password::MIN_PASSWORD_CHARS,
            tokens,
            scopes,
            token_name: form.name.to_owned(),
            new_secret,
        },
    )
}

pub async fn account(State(st): State<AppState>, UiUser(p): UiUser, uri: Uri) -> UiResult {
    account_page(
        &st,
        &p,
        StatusCode::OK,
        done_param(uri.query()),
        None,
        TokenForm::default(),
        None,
    )
    .await
}

pub async fn change_password(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    body: Bytes,
) -> UiResult {
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, HERE))?;
    let Some((session_hash, _)) = p.session.clone() else {
        return Err(UiError::from(ApiError::forbidden(
            "change your password from a browser session",
        ))
        .with_nav(&p, HERE));
    };
    let (current, new) = (f.get("current_password"), f.get("new_password"));
    let again = |status, msg: &str| {
        account_page(
            &st,
            &p,
            status,
            None,
            Some(msg.to_owned()),
            TokenForm::default(),
            None,
        )
    };
    if !password::verify_password(current, &p.user.password_hash) {
        // Counts towards the lockout like a failed login: a stolen session
        // must not become an unlimited password-guessing oracle.
        crate::auth::record_failed_login(
            &st,
            &p.user.username,
            p.source.clone(),
            "wrong current password on password change",
        )
        .await
        .ui(&p, HERE)?;
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Your current password is not correct.",
        )
        .await;
    }
    if new != f.get("new_password_confirm") {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two new passwords differ; type the same password twice.",
        )
        .await;
    }
    if let Err(e) = password::check_new_password(new, &p.user.username) {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("New password: {e}."),
        )
        .await;
    }
    st.store
        .set_password(
            p.user.id,
            &password::hash_password(new),
            Some(&session_hash),
            &p.actor(),
        )
        .await
        .ui(&p, HERE)?;
    Ok(see_other("/account?done=password"))
}

pub async fn create_token(State(st): State<AppState>, UiUser(p): UiUser, body: Bytes) -> UiResult {
    need(&st, &p, Permission::TokensOwn, HERE).await?;
    let f = Fields::parse(&body).map_err(|e| e.with_nav(&p, HERE))?;
    let days = f.get("expires_in_days").trim();
    let expires_in_days = if days.is_empty() {
        None
    } else {
        match days.parse::<i64>() {
            Ok(d) => Some(d),
            Err(_) => Some(0), // make_token refuses it with its own message
        }
    };
    let req = NewToken {
        name: f.get("name").to_owned(),
        scopes: f.all("scopes").map(str::to_owned).collect(),
        expires_in_days,
    };
    let form = TokenForm {
        name: f.get("name"),
        scopes: f.all("scopes").collect(),
    };
    match make_token(&st, &p, &req).await {
        Ok((secret, t)) => {
            let shown = NewSecret {
                name: t.name,
                secret,
            };
            account_page(
                &st,
                &p,
                StatusCode::OK,
                None,
                None,
                TokenForm::default(),
                Some(shown),
            )
            .await
        }
        Err(e) if e.kind == ErrorKind::Validation || e.kind == ErrorKind::Forbidden => {
            account_page(&st, &p, e.kind.status(), None, Some(e.detail), form, None).await
        }
        Err(e) => Err(UiError::from(e).with_nav(&p, HERE)),
    }
}

pub async fn revoke_token(
    State(st): State<AppState>,
    UiUser(p): UiUser,
    Path(id): Path<String>,
) -> UiResult {
    need(&st, &p, Permission::TokensOwn, HERE).await?;
    let Ok(id) = id.parse::<i64>() else {
        return Err(UiError::from(ApiError::not_found(format!("token {id}"))).with_nav(&p, HERE));
    };
    st.store
        .revoke_api_token(id, Some(p.user.id), &p.actor())
        .await
        .ui(&p, HERE)?;
    Ok(see_other("/account?done=token-revoked"))
}
