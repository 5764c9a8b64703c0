//! Who is asking: sessions, API tokens, CSRF, login and MFA.
//!
//! The [`authenticate`] middleware runs first on every request. It resolves
//! the session cookie or bearer token into an [`Authn`] in the request's
//! extensions and enforces CSRF on every state-changing request that carries
//! ambient credentials (cookies). Handlers then ask for a [`Principal`]
//! (fully authenticated) and call [`Principal::require`] with the permission
//! the route table names.
//!
//! Security decisions:
//! - Session cookies are `__Host-` prefixed, `Secure`, `HttpOnly`,
//!   `SameSite=Strict`; the store keeps only the SHA-256 of the token.
//! - Bearer tokens are not ambient, so they need no CSRF token; cookie
//!   requests need the session's CSRF token in `X-CSRF-Token` or a `csrf`
//!   form field. Login and setup forms, before any session exists, use a
//!   double-submit cookie.
//! - A token can never do more than its owner's role allows, and its scopes
//!   narrow that further. Tokens cannot create tokens.
//! - Login failures for unknown users cost the same argon2 work as for known
//!   ones, and say the same thing.

use crate::problem::{ApiError, ApiResult, ErrorKind};
use crate::state::AppState;
use crate::tls::PeerAddr;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, request::Parts, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use pumpward_core::access::{password, totp, Permission};
use pumpward_core::audit::Outcome;
use pumpward_store::{Actor, NewSession, Session, SessionStage, User};
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub const SESSION_COOKIE: &str = "__Host-pw_session";
pub const PRELOGIN_COOKIE: &str = "__Host-pw_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const TOKEN_PREFIX: &str = "pw_";

/// A fresh 256-bit random token, URL-safe.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The form a random token is stored in.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares secrets without an early exit.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> String {
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}")
}

/// Enforces the route table: finds the route's [`Access`](crate::routes::Access)
/// by method and matched path and refuses callers who lack it. A route
/// missing from the table is refused for everyone (fail closed), so a new
/// route cannot go live without a stated permission.
pub async fn authorize(State(st): State<AppState>, req: Request, next: Next) -> Response {
    use crate::routes::{lookup, Access};
    use axum::response::IntoResponse;
    let Some(matched) = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    if matched == crate::API_FALLBACK {
        return next.run(req).await;
    }
    let is_api = matched.starts_with("/api/") || matched == "/metrics";
    let Some(spec) = lookup(req.method().as_str(), &matched) else {
        tracing::error!(route = %matched, method = %req.method(), "route is not in the route table; refusing");
        return ApiError::forbidden("this route has no stated permission").into_response();
    };
    if spec.access == Access::Public {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let principal = match Principal::from_request_parts(&mut parts, &st).await {
        Ok(p) => p,
        Err(e) if is_api => return e.into_response(),
        Err(_) => return axum::response::Redirect::to("/login").into_response(),
    };
    if let Access::Perm(p) = spec.access {
        if let Err(e) = principal.require(&st, p).await {
            return if is_api {
                e.into_response()
            } else {
                crate::ui::forbidden_page(&principal, &e.detail)
            };
        }
    }
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, body)).await
}

/// How the request authenticated, if at all.
#[derive(Debug, Clone)]
pub enum Authn {
    None,
    Session(Box<Session>),
    Token {
        id: i64,
        user: Box<User>,
        scopes: Vec<Permission>,
    },
}

/// The client's address as text, for the audit trail.
pub fn source_of(parts_ext: &axum::http::Extensions) -> Option<String> {
    parts_ext.get::<PeerAddr>().map(|p| p.0.ip().to_string())
}

/// Resolves credentials and enforces CSRF; see the module docs.
pub async fn authenticate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let now = OffsetDateTime::now_utc();
    let source = source_of(req.extensions());
    let headers = req.headers().clone();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let authn = if let Some(tok) = bearer {
        match resolve_token(&st, tok, now, source.clone()).await {
            Ok(a) => a,
            Err(e) => return axum::response::IntoResponse::into_response(e),
        }
    } else if let Some(c) = cookie(&headers, SESSION_COOKIE) {
        match st.store.session(&token_hash(c)).await {
            Ok(Some(s)) if session_live(&st, &s, now) => {
                if now - s.last_seen_at > time::Duration::seconds(60) {
                    // Coarse touch: one write a minute per session, not one per request.
                    let _ = st.store.touch_session(&s.token_hash, now).await;
                }
                Authn::Session(Box::new(s))
            }
            Ok(Some(s)) => {
                let _ = st.store.delete_session(&s.token_hash).await;
                Authn::None
            }
            Ok(None) => Authn::None,
            Err(e) => return axum::response::IntoResponse::into_response(ApiError::from(e)),
        }
    } else {
        Authn::None
    };

    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method && bearer.is_none() {
        let expected = match &authn {
            Authn::Session(s) => Some(s.csrf_token.clone()),
            _ => cookie(&headers, PRELOGIN_COOKIE).map(str::to_owned),
        };
        let has_cookie = cookie(&headers, SESSION_COOKIE).is_some()
            || cookie(&headers, PRELOGIN_COOKIE).is_some();
        if has_cookie {
            let (ok, rebuilt) =
                check_csrf(req, expected.as_deref(), st.settings.max_body_bytes).await;
            match (ok, rebuilt) {
                (true, Some(r)) => req = r,
                _ => {
                    return axum::response::IntoResponse::into_response(ApiError::new(
                        ErrorKind::CsrfFailed,
                        "send the CSRF token in the X-CSRF-Token header or the csrf form field",
                    ))
                }
            }
        }
    }
    req.extensions_mut().insert(authn);
    next.run(req).await
}

fn session_live(st: &AppState, s: &Session, now: OffsetDateTime) -> bool {
    now < s.expires_at && now - s.last_seen_at < st.settings.session_idle && !s.user.disabled
}

/// Checks the CSRF token of a cookie-authenticated request, reading a form
/// body if the header is absent; returns the request rebuilt with its body.
async fn check_csrf(req: Request, expected: Option<&str>, limit: usize) -> (bool, Option<Request>) {
    let Some(expected) = expected else {
        return (false, None);
    };
    if let Some(h) = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        return (same_secret(h, expected), Some(req));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_form = content_type.starts_with("application/x-www-form-urlencoded");
    // File uploads (the library pages) are multipart forms.
    let is_multipart = content_type.starts_with("multipart/form-data");
    if !is_form && !is_multipart {
        return (false, None);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return (false, None);
    };
    let token = if is_form {
        form_urlencoded_field(&bytes, "csrf")
    } else {
        multipart_field(&parts, &bytes, "csrf").await
    };
    let ok = token.is_some_and(|v| same_secret(&v, expected));
    (
        ok,
        Some(Request::from_parts(parts, axum::body::Body::from(bytes))),
    )
}

/// The text of field `name` of a multipart form (axum's own reader, on a
/// copy of the buffered request; the handler reads the form again).
async fn multipart_field(
    parts: &axum::http::request::Parts,
    body: &axum::body::Bytes,
    name: &str,
) -> Option<String> {
    use axum::extract::FromRequest;
    let mut copy = Request::new(axum::body::Body::from(body.clone()));
    *copy.headers_mut() = parts.headers.clone();
    let mut form = axum::extract::Multipart::from_request(copy, &())
        .await
        .ok()?;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some(name) {
            return field.text().await.ok();
        }
    }
    None
}

fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

async fn resolve_token(
    st: &AppState,
    tok: &str,
    now: OffsetDateTime,
    source: Option<String>,
) -> ApiResult<Authn> {
    let unauth = || {
        ApiError::new(
            ErrorKind::Unauthenticated,
            "the API token is invalid, expired or revoked",
        )
    };
    let Some((t, user)) = st.store.api_token_by_hash(&token_hash(tok)).await? else {
        return Err(unauth());
    };
    let expired = pumpward_core::timefmt::parse(&t.expires_at)
        .map(|e| e <= now)
        .unwrap_or(true);
    if t.revoked_at.is_some() || expired || user.disabled {
        st.store
            .audit(
                Actor {
                    id: format!("token:{}", t.id),
                    source,
                }
                .entry("auth.token", Outcome::Denied)
                .reason(if t.revoked_at.is_some() {
                    "revoked"
                } else if expired {
                    "expired"
                } else {
                    "owner disabled"
                }),
            )
            .await?;
        return Err(unauth());
    }
    if t.last_used_at
        .as_deref()
        .and_then(|l| pumpward_core::timefmt::parse(l).ok())
        .is_none_or(|l| now - l > time::Duration::seconds(60))
    {
        let _ = st.store.touch_api_token(t.id, now).await;
    }
    Ok(Authn::Token {
        id: t.id,
        user: Box::new(user),
        scopes: t.scopes,
    })
}

/// A fully authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    /// The session's token hash, or `None` for an API token.
    pub session: Option<(String, String)>,
    pub token: Option<(i64, Vec<Permission>)>,
    pub source: Option<String>,
}

impl Principal {
    /// Whether the caller may do `p`: the role allows it and, for a token,
    /// the token's scopes include it.
    pub fn can(&self, p: Permission) -> bool {
        self.user.role.allows(p) && self.token.as_ref().is_none_or(|(_, s)| s.contains(&p))
    }

    /// Refuses, and records the refusal, unless the caller may do `p`.
    pub async fn require(&self, st: &AppState, p: Permission) -> ApiResult<()> {
        if self.can(p) {
            return Ok(());
        }
        st.store
            .audit(
                self.actor()
                    .entry("access.denied", Outcome::Denied)
                    .object(format!("permission:{p}")),
            )
            .await?;
        Err(ApiError::forbidden(format!(
            "the {} role{} does not allow {p}",
            self.user.role,
            if self.token.is_some() {
                " or this token's scopes"
            } else {
                ""
            }
        )))
    }

    pub fn actor(&self) -> Actor {
        match &self.token {
            Some((id, _)) => Actor {
                id: format!("user:{} token:{id}", self.user.username),
                source: self.source.clone(),
            },
            None => Actor::user(&self.user.username, self.source.clone()),
        }
    }

    pub fn csrf(&self) -> &str {
        self.session.as_ref().map(|(_, c)| c.as_str()).unwrap_or("")
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        _st: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(p.clone());
        }
        let source = source_of(&parts.extensions);
        match parts.extensions.get::<Authn>() {
            Some(Authn::Session(s)) if s.stage == SessionStage::Active => Ok(Principal {
                user: s.user.clone(),
                session: Some((s.token_hash.clone(), s.csrf_token.clone())),
                token: None,
                source,
            }),
            Some(Authn::Token { id, user, scopes }) => Ok(Principal {
                user: (**user).clone(),
                session: None,
                token: Some((*id, scopes.clone())),
                source,
            }),
            _ => Err(ApiError::new(
                ErrorKind::Unauthenticated,
                "log in, or send an API token as a Bearer token",
            )),
        }
    }
}

/// What happened to a password login.
pub enum LoginOutcome {
    /// A session was created at this stage; set this cookie.
    Session {
        cookie_value: String,
        stage: SessionStage,
    },
}

/// Why a login was refused; the message is safe to show.
#[derive(Debug)]
pub enum LoginRefusal {
    BadCredentials,
    Locked,
}

impl std::fmt::Display for LoginRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LoginRefusal::BadCredentials => "The username or password is wrong.",
            LoginRefusal::Locked => {
                "Too many failed attempts. Wait 15 minutes, or ask an administrator."
            }
        })
    }
}

pub(crate) async fn locked(st: &AppState, username: &str, now: OffsetDateTime) -> ApiResult<bool> {
    let p = &st.settings.throttle;
    let failures = st
        .store
        .login_failures_since(username, now - p.window - p.lockout)
        .await?;
    Ok(p.locked_until(&failures, now).is_some())
}

/// Records a failed authentication (password or second factor) for the
/// lockout count and the audit trail, and the lockout if it starts now.
pub async fn record_failed_login(
    st: &AppState,
    username: &str,
    source: Option<String>,
    why: &str,
) -> ApiResult<()> {
    let now = OffsetDateTime::now_utc();
    st.store.record_login_failure(username, now).await?;
    st.metrics.count_login("failure");
    let actor = Actor {
        id: format!("user:{username}"),
        source,
    };
    st.store
        .audit(actor.entry("auth.login", Outcome::Failure).reason(why))
        .await?;
    if locked(st, username, now).await? {
        st.store
            .audit(
                Actor::system()
                    .entry("auth.lockout", Outcome::Success)
                    .object(format!("user:{username}"))
                    .reason("repeated failed logins"),
            )
            .await?;
    }
    Ok(())
}

/// Checks a username and password and opens a session at the right stage.
pub async fn password_login(
    st: &AppState,
    username: &str,
    pw: &str,
    source: Option<String>,
) -> ApiResult<Result<LoginOutcome, LoginRefusal>> {
    let now = OffsetDateTime::now_utc();
    let username = username.trim().to_ascii_lowercase();
    if username.is_empty() || username.len() > 64 || pw.len() > 1024 {
        password::dummy_verify(pw);
        return Ok(Err(LoginRefusal::BadCredentials));
    }
    if locked(st, &username, now).await? {
        password::dummy_verify(pw);
        st.store
            .audit(
                Actor {
                    id: format!("user:{username}"),
                    source,
                }
                .entry("auth.login", Outcome::Denied)
                .reason("account locked"),
            )
            .await?;
        return Ok(Err(LoginRefusal::Locked));
    }
    let user = st.store.user_by_name(&username).await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        password::dummy_verify(pw);
        record_failed_login(st, &username, source, "unknown or disabled user").await?;
        return Ok(Err(LoginRefusal::BadCredentials));
    };
    if !password::verify_password(pw, &user.password_hash) {
        record_failed_login(st, &username, source, "wrong password").await?;
        return Ok(Err(LoginRefusal::BadCredentials));
    }
    st.store.clear_login_failures(&username).await?;
    if password::needs_rehash(&user.password_hash) {
        st.store
            .set_password(
                user.id,
                &password::hash_password(pw),
                None,
                &Actor::system(),
            )
            .await?;
    }
    let (cookie_value, stage) = start_session(st, &user, source, "password accepted").await?;
    Ok(Ok(LoginOutcome::Session {
        cookie_value,
        stage,
    }))
}

/// Opens a session for a user whose password was just proven: at the MFA
/// step if they have enrolled TOTP, at enrolment if their role requires MFA
/// and they have not, else fully logged in. Audits and counts the login.
/// Returns the cookie value and the stage.
pub async fn start_session(
    st: &AppState,
    user: &User,
    source: Option<String>,
    why: &str,
) -> ApiResult<(String, SessionStage)> {
    let stage = if user.mfa_enrolled() {
        SessionStage::MfaPending
    } else if st.store.mfa_required(user.role).await? {
        SessionStage::MfaEnroll
    } else {
        SessionStage::Active
    };
    let cookie_value = open_session(st, user, stage, source.clone()).await?;
    let action = if stage == SessionStage::Active {
        st.metrics.count_login("success");
        "auth.login"
    } else {
        "auth.password"
    };
    st.store
        .audit(
            Actor::user(&user.username, source)
                .entry(action, Outcome::Success)
                .reason(format!("{why}; session stage {stage:?}")),
        )
        .await?;
    Ok((cookie_value, stage))
}

/// Opens a new session and returns the cookie value.
pub async fn open_session(
    st: &AppState,
    user: &User,
    stage: SessionStage,
    source: Option<String>,
) -> ApiResult<String> {
    let tok = random_token();
    st.store
        .create_session(&NewSession {
            token_hash: token_hash(&tok),
            user_id: user.id,
            stage,
            csrf_token: random_token(),
            source,
            expires_at: OffsetDateTime::now_utc() + st.settings.session_absolute,
        })
        .await?;
    Ok(tok)
}

/// Verifies a TOTP code for `user` against `secret_b32` (the enrolled
/// secret, or the one being enrolled) and spends its time step. Returns the
/// step, which an enrolment stores as the last one used, so the enrolment
/// code cannot be replayed at the next login.
pub async fn check_totp(
    st: &AppState,
    user: &User,
    secret_b32: &str,
    code: &str,
    source: Option<String>,
) -> ApiResult<Option<i64>> {
    let now = OffsetDateTime::now_utc();
    if locked(st, &user.username, now).await? {
        return Ok(None);
    }
    let Ok(secret) = totp::TotpSecret::from_base32(secret_b32) else {
        return Ok(None);
    };
    let last = st.store.totp_last_step(user.id).await?;
    match totp::verify(secret.as_bytes(), code.trim(), now.unix_timestamp(), last) {
        Some(step) if st.store.claim_totp_step(user.id, step).await? => Ok(Some(step)),
        _ => {
            record_failed_login(st, &user.username, source, "wrong or reused TOTP code").await?;
            Ok(None)
        }
    }
}

/// Replaces a session by a new one at `stage` (a new token at every privilege
/// change, so a token seen before MFA is worthless after it).
pub async fn promote_session(
    st: &AppState,
    old: &Session,
    stage: SessionStage,
    source: Option<String>,
) -> ApiResult<String> {
    st.store.delete_session(&old.token_hash).await?;
    let v = open_session(st, &old.user, stage, source.clone()).await?;
    if stage == SessionStage::Active {
        st.metrics.count_login("success");
        st.store
            .audit(
                Actor::user(&old.user.username, source)
                    .entry("auth.login", Outcome::Success)
                    .reason("MFA passed"),
            )
            .await?;
    }
    Ok(v)
}
