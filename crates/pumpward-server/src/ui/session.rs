//! First-start setup, login, TOTP login and enrolment, logout.
//!
//! Forms shown before a session exists (setup, login) carry a double-submit
//! token: a random value in the `__Host-` [`PRELOGIN_COOKIE`] and the same in
//! the form's `csrf` field. The middleware compares the two when the cookie
//! is present; these handlers refuse a post that has neither that cookie nor
//! a session (whose own CSRF token the middleware checked), so a login form
//! on another site cannot log a victim's browser into the attacker's account.
//!
//! The TOTP pages work on a session at the `MfaPending` or `MfaEnroll` stage
//! (which [`Principal`](crate::auth::Principal) does not accept); passing
//! them replaces the session by a new `Active` one with a fresh token.

use super::{landing, render, see_other, with_cookie, Ctx, Fields, Nav, UiError, UiResult};
use crate::auth::{
    check_totp, cookie, password_login, promote_session, random_token, set_cookie, token_hash,
    Authn, LoginOutcome, PRELOGIN_COOKIE, SESSION_COOKIE,
};
use crate::state::AppState;
use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use pumpward_core::access::password;
use pumpward_core::access::totp::TotpSecret;
use pumpward_core::audit::Outcome;
use pumpward_store::{Actor, Session, SessionStage, StoreError};
use time::OffsetDateTime;

/// Issuer shown in authenticator apps.
const TOTP_ISSUER: &str = "Pumpward";

fn session_cookie(st: &AppState, value: &str) -> String {
    set_cookie(
        SESSION_COOKIE,
        value,
        st.settings.session_absolute.whole_seconds(),
    )
}

fn clear_cookie(name: &str) -> String {
    set_cookie(name, "", 0)
}

/// The CSRF token for a form shown before login, and the cookie to set if
/// the browser has none yet.
fn prelogin_token(ctx: &Ctx) -> (String, Option<String>) {
    if let Authn::Session(s) = &ctx.authn {
        // The middleware checks posts against the session's token when a
        // session cookie is present.
        return (s.csrf_token.clone(), None);
    }
    match cookie(&ctx.headers, PRELOGIN_COOKIE) {
        Some(v)
            if v.len() >= 32
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            (v.to_owned(), None)
        }
        _ => {
            let t = random_token();
            let c = set_cookie(PRELOGIN_COOKIE, &t, 3600);
            (t, Some(c))
        }
    }
}

/// Whether the middleware has checked this post's CSRF token: it does so
/// only when the request carries the pre-login cookie or a session.
fn csrf_was_checked(ctx: &Ctx) -> bool {
    matches!(ctx.authn, Authn::Session(_)) || cookie(&ctx.headers, PRELOGIN_COOKIE).is_some()
}

const NO_COOKIE: &str =
    "Your browser did not send this form's security cookie. Cookies must be enabled for this site; the form has been reloaded, please submit it again.";

fn query_value(uri: &Uri, name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

// ---------------------------------------------------------------- setup

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    token: String,
    username: String,
    display_name: String,
    min_password: usize,
}

fn setup_page(
    ctx: &Ctx,
    status: StatusCode,
    token: &str,
    username: &str,
    display_name: &str,
    error: Option<String>,
) -> UiResult {
    let (csrf, set) = prelogin_token(ctx);
    let page = SetupPage {
        nav: None,
        notice: None,
        error,
        csrf,
        token: token.to_owned(),
        username: username.to_owned(),
        display_name: display_name.to_owned(),
        min_password: password::MIN_PASSWORD_CHARS,
    };
    let res = render(status, &page)?;
    Ok(match set {
        Some(c) => with_cookie(res, c),
        None => res,
    })
}

fn setup_closed() -> UiError {
    UiError::new(
        StatusCode::GONE,
        "Setup is closed",
        "An administrator already exists. Log in, or ask an administrator for an account.",
    )
}

fn setup_link_invalid() -> UiError {
    UiError::new(
        StatusCode::NOT_FOUND,
        "This setup link does not work",
        "The setup link is invalid, expired (it is valid for 30 minutes) or already used. Restart the server to print a new one.",
    )
}

pub async fn setup_form(State(st): State<AppState>, ctx: Ctx, uri: Uri) -> UiResult {
    if st.store.admin_count().await? > 0 {
        return Err(setup_closed());
    }
    let token = query_value(&uri, "token").unwrap_or_default();
    if token.is_empty()
        || !st
            .store
            .setup_token_valid(&token_hash(&token), OffsetDateTime::now_utc())
            .await?
    {
        return Err(setup_link_invalid());
    }
    setup_page(&ctx, StatusCode::OK, &token, "", "", None)
}

pub async fn setup_submit(State(st): State<AppState>, ctx: Ctx, body: Bytes) -> UiResult {
    let f = Fields::parse(&body)?;
    let token = f.get("token");
    let (username_in, display_in, pw) =
        (f.get("username"), f.get("display_name"), f.get("password"));
    let again =
        |status, msg: String| setup_page(&ctx, status, token, username_in, display_in, Some(msg));
    if !csrf_was_checked(&ctx) {
        return again(StatusCode::FORBIDDEN, NO_COOKIE.into());
    }
    if st.store.admin_count().await? > 0 {
        return Err(setup_closed());
    }
    if pw != f.get("password_confirm") {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords differ; type the same password twice.".into(),
        );
    }
    let (username, display) = match crate::api::validate_new_user(username_in, Some(display_in), pw)
    {
        Ok(v) => v,
        Err(e) => return again(StatusCode::UNPROCESSABLE_ENTITY, format!("{}.", e.detail)),
    };
    let user = match st
        .store
        .complete_setup(
            &token_hash(token),
            &username,
            &display,
            &password::hash_password(pw),
            ctx.source.clone(),
        )
        .await
    {
        Ok(u) => u,
        Err(StoreError::Invalid(_)) => return Err(setup_link_invalid()),
        Err(e) => return Err(e.into()),
    };
    let (value, stage) = crate::auth::start_session(
        &st,
        &user,
        ctx.source.clone(),
        "first administrator created with the setup link",
    )
    .await?;
    let to = if stage == SessionStage::Active {
        landing(user.role)
    } else {
        "/mfa/enroll"
    };
    Ok(with_cookie(
        with_cookie(see_other(to), session_cookie(&st, &value)),
        clear_cookie(PRELOGIN_COOKIE),
    ))
}

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    username: String,
}

fn login_page(ctx: &Ctx, status: StatusCode, username: &str, error: Option<String>) -> UiResult {
    let (csrf, set) = prelogin_token(ctx);
    let page = LoginPage {
        nav: None,
        notice: None,
        error,
        csrf,
        username: username.to_owned(),
    };
    let res = render(status, &page)?;
    Ok(match set {
        Some(c) => with_cookie(res, c),
        None => res,
    })
}

/// Where a session at `stage` continues.
fn next_step(s: &Session) -> &'static str {
    match s.stage {
        SessionStage::Active => landing(s.user.role),
        SessionStage::MfaPending => "/login/mfa",
        SessionStage::MfaEnroll => "/mfa/enroll",
    }
}

pub async fn login_form(ctx: Ctx) -> UiResult {
    if let Authn::Session(s) = &ctx.authn {
        return Ok(see_other(next_step(s)));
    }
    login_page(&ctx, StatusCode::OK, "", None)
}

pub async fn login_submit(State(st): State<AppState>, ctx: Ctx, body: Bytes) -> UiResult {
    let f = Fields::parse(&body)?;
    let username = f.get("username");
    if !csrf_was_checked(&ctx) {
        return login_page(
            &ctx,
            StatusCode::FORBIDDEN,
            username,
            Some(NO_COOKIE.into()),
        );
    }
    match password_login(&st, username, f.get("password"), ctx.source.clone()).await? {
        Err(refusal) => login_page(
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            username,
            Some(refusal.to_string()),
        ),
        Ok(LoginOutcome::Session {
            cookie_value,
            stage,
        }) => {
            if let Authn::Session(old) = &ctx.authn {
                st.store.delete_session(&old.token_hash).await?;
            }
            let to = match stage {
                SessionStage::Active => match st.store.session(&token_hash(&cookie_value)).await? {
                    Some(s) => landing(s.user.role),
                    None => "/",
                },
                SessionStage::MfaPending => "/login/mfa",
                SessionStage::MfaEnroll => "/mfa/enroll",
            };
            Ok(with_cookie(
                with_cookie(see_other(to), session_cookie(&st, &cookie_value)),
                clear_cookie(PRELOGIN_COOKIE),
            ))
        }
    }
}

// ---------------------------------------------------------------- TOTP at login

#[derive(Template)]
#[template(path = "login_mfa.html")]
struct MfaPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    username: String,
}

/// The session if it is at `stage`, or where to send the browser instead.
fn session_at(ctx: &Ctx, stage: SessionStage) -> Result<&Session, &'static str> {
    match &ctx.authn {
        Authn::Session(s) if s.stage == stage => Ok(s),
        Authn::Session(s) => Err(next_step(s)),
        _ => Err("/login"),
    }
}

fn mfa_page(s: &Session, status: StatusCode, error: Option<String>) -> UiResult {
    render(
        status,
        &MfaPage {
            nav: None,
            notice: None,
            error,
            csrf: s.csrf_token.clone(),
            username: s.user.username.clone(),
        },
    )
}

pub async fn mfa_form(ctx: Ctx) -> UiResult {
    match session_at(&ctx, SessionStage::MfaPending) {
        Ok(s) => mfa_page(s, StatusCode::OK, None),
        Err(to) => Ok(see_other(to)),
    }
}

const BAD_CODE: &str =
    "That code is wrong, expired or was already used. Enter the current 6-digit code from your authenticator app.";

pub async fn mfa_submit(State(st): State<AppState>, ctx: Ctx, body: Bytes) -> UiResult {
    let s = match session_at(&ctx, SessionStage::MfaPending) {
        Ok(s) => s,
        Err(to) => return Ok(see_other(to)),
    };
    let f = Fields::parse(&body)?;
    let Some(secret) = s.user.totp_secret.as_deref() else {
        // Enrolment was reset since the password step: start again.
        st.store.delete_session(&s.token_hash).await?;
        return Ok(with_cookie(
            see_other("/login"),
            clear_cookie(SESSION_COOKIE),
        ));
    };
    if check_totp(&st, &s.user, secret, f.get("code"), ctx.source.clone())
        .await?
        .is_none()
    {
        return mfa_page(s, StatusCode::UNPROCESSABLE_ENTITY, Some(BAD_CODE.into()));
    }
    let value = promote_session(&st, s, SessionStage::Active, ctx.source.clone()).await?;
    Ok(with_cookie(
        see_other(landing(s.user.role)),
        session_cookie(&st, &value),
    ))
}

// ---------------------------------------------------------------- TOTP enrolment

#[derive(Template)]
#[template(path = "mfa_enroll.html")]
struct EnrollPage {
    nav: Option<Nav>,
    notice: Option<&'static str>,
    error: Option<String>,
    csrf: String,
    username: String,
    /// Required by the role (a pre-login session) or chosen (an active one).
    required: bool,
    secret: String,
    secret_grouped: String,
    uri: String,
}

/// A session that may enrol: one at the `MfaEnroll` stage, or an active one
/// whose user has no TOTP yet.
fn enrolling(ctx: &Ctx) -> Result<&Session, &'static str> {
    match &ctx.authn {
        Authn::Session(s) if s.stage == SessionStage::MfaEnroll => Ok(s),
        Authn::Session(s) if s.stage == SessionStage::Active && !s.user.mfa_enrolled() => Ok(s),
        Authn::Session(s) if s.stage == SessionStage::Active => Err("/account"),
        Authn::Session(s) => Err(next_step(s)),
        _ => Err("/login"),
    }
}

fn enroll_page(
    s: &Session,
    secret: &TotpSecret,
    status: StatusCode,
    error: Option<String>,
) -> UiResult {
    let b32 = secret.to_base32();
    let grouped = b32
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    render(
        status,
        &EnrollPage {
            nav: None,
            notice: None,
            error,
            csrf: s.csrf_token.clone(),
            username: s.user.username.clone(),
            required: s.stage == SessionStage::MfaEnroll,
            uri: secret.otpauth_uri(TOTP_ISSUER, &s.user.username),
            secret: b32,
            secret_grouped: grouped,
        },
    )
}

pub async fn enroll_form(ctx: Ctx) -> UiResult {
    match enrolling(&ctx) {
        Ok(s) => enroll_page(s, &TotpSecret::generate(), StatusCode::OK, None),
        Err(to) => Ok(see_other(to)),
    }
}

pub async fn enroll_submit(State(st): State<AppState>, ctx: Ctx, body: Bytes) -> UiResult {
    let s = match enrolling(&ctx) {
        Ok(s) => s,
        Err(to) => return Ok(see_other(to)),
    };
    let f = Fields::parse(&body)?;
    // The secret comes back from the form: the user proves with a code that
    // their app holds it before it is stored.
    let secret = match TotpSecret::from_base32(f.get("secret")) {
        Ok(x) => x,
        Err(_) => {
            return enroll_page(
                s,
                &TotpSecret::generate(),
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("The form's secret was damaged; here is a new one. Add it to your app and enter its code.".into()),
            )
        }
    };
    let b32 = secret.to_base32();
    let code = f.get("code").trim();
    let Some(step) = check_totp(&st, &s.user, &b32, code, ctx.source.clone()).await? else {
        return enroll_page(
            s,
            &secret,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(BAD_CODE.into()),
        );
    };
    let actor = Actor::user(&s.user.username, ctx.source.clone());
    st.store
        .set_totp(s.user.id, Some(&b32), Some(step), &actor)
        .await?;
    if s.stage == SessionStage::Active {
        return Ok(see_other("/account?done=mfa"));
    }
    let value = promote_session(&st, s, SessionStage::Active, ctx.source.clone()).await?;
    Ok(with_cookie(
        see_other(landing(s.user.role)),
        session_cookie(&st, &value),
    ))
}

// ---------------------------------------------------------------- logout

pub async fn logout(State(st): State<AppState>, ctx: Ctx) -> UiResult {
    if let Authn::Session(s) = &ctx.authn {
        st.store.delete_session(&s.token_hash).await?;
        st.store
            .audit(
                Actor::user(&s.user.username, ctx.source.clone())
                    .entry("auth.logout", Outcome::Success),
            )
            .await?;
    }
    Ok(with_cookie(
        see_other("/login"),
        clear_cookie(SESSION_COOKIE),
    ))
}
