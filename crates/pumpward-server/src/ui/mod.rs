//! The web UI: server-rendered HTML pages over the same store and access
//! rules as the API.
//!
//! - [`session`]: first-start setup, login, TOTP (login and enrolment), logout.
//! - [`inventory`]: dashboard, asset list, asset detail and lifecycle moves.
//! - [`admin`]: user administration, MFA policy, the audit trail.
//! - [`account`]: one's own profile, password and API tokens.
//! - [`pki`]: the fleet's connections and certificates, certificate detail
//!   and revocation, one-time enrollment codes (with a QR code).
//! - [`library`]: drug-library rollout and compliance, and the CQI report.
//! - [`pump_groups`]: biomed's pump groups (named lists of pumps that
//!   libraries can be assigned to): list, create/replace, delete.
//! - [`alerts`], [`alert_case`], [`incidents`], [`rules`]: the alerts list
//!   with bulk actions, one alert's page, incidents, the detection rules.
//! - [`network`]: the zone diagram (observed beside allowed conduits),
//!   unknown devices, and the network policy with its editor and versions.
//! - [`libraries`]: drug-library drafts, review (diff, approve, reject),
//!   publication and rollback.
//! - [`advisories`], [`sboms`]: an advisory's page; the SBOMs attached to
//!   device models (list, attach, one SBOM with its component findings).
//!
//! Pages are askama templates (`templates/`), escaped by default; nothing
//! from a user or the store is ever marked safe (the one `|safe` value is
//! the enrollment QR code's inline SVG, which [`pki::qr_svg`] builds from
//! numbers and fixed strings only). The only other asset is one style sheet
//! served from the binary; there is no JavaScript, so every page works with
//! the keyboard and without scripts, and the CSP stays `default-src 'self'`.
//!
//! Every page names the permission it needs in [`crate::routes::UI_ROUTES`] and
//! checks it with [`Principal::require`] (which audits refusals). A visitor
//! who is not logged in is sent to `/login`; a logged-in user without the
//! permission gets an HTML 403 page. Every state-changing form carries the
//! session's CSRF token in a hidden `csrf` field, which the
//! [`crate::auth::authenticate`] middleware checks before a handler runs.

pub mod account;
pub mod admin;
pub mod advisories;
pub mod alert_case;
pub mod alerts;
pub mod findings;
pub mod incidents;
pub mod inventory;
pub mod libraries;
pub mod library;
pub mod library_editor;
pub mod network;
pub mod network_unknown;
pub mod pki;
pub mod pump_groups;
pub mod responses;
pub mod rules;
pub mod sboms;
pub mod session;

use crate::auth::{source_of, Authn, Principal};
use crate::problem::{ApiError, ErrorKind};
use crate::state::AppState;
use askama::Template;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use pumpward_core::access::Permission;

/// The UI's routes; [`crate::routes::UI_ROUTES`] lists the same paths.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(inventory::dashboard))
        .route("/static/pumpward.css", get(stylesheet))
        .route(
            "/setup",
            get(session::setup_form).post(session::setup_submit),
        )
        .route(
            "/login",
            get(session::login_form).post(session::login_submit),
        )
        .route(
            "/login/mfa",
            get(session::mfa_form).post(session::mfa_submit),
        )
        .route(
            "/mfa/enroll",
            get(session::enroll_form).post(session::enroll_submit),
        )
        .route("/logout", post(session::logout))
        .route("/assets", get(inventory::assets))
        .route("/assets/{id}", get(inventory::asset))
        .route("/assets/{id}/transition", post(inventory::transition))
        .route("/assets/{id}/enrollment-code", post(pki::enrollment_code))
        .route("/fleet", get(pki::fleet))
        .route("/certificates", get(pki::certificates))
        .route("/findings", get(findings::findings))
        .route("/advisories/{id}", get(advisories::advisory))
        .route("/sboms", get(sboms::sboms).post(sboms::attach))
        .route("/sboms/{id}", get(sboms::sbom))
        .route("/alerts", get(alerts::alerts))
        .route("/alerts/bulk", post(alert_case::bulk))
        .route("/alerts/{id}", get(alert_case::alert).post(alert_case::act))
        .route("/incidents", get(incidents::incidents))
        .route(
            "/incidents/{id}",
            get(incidents::incident).post(incidents::act),
        )
        .route("/detection/rules", get(rules::rules))
        .route("/detection/rules/{rule}", post(rules::edit))
        .route("/network", get(network::network))
        .route("/network/violations", get(network::violations))
        .route(
            "/network/policy",
            get(network::policy).post(network::save_policy),
        )
        .route("/network/quarantine", post(network_unknown::quarantine))
        .route(
            "/network/quarantine/{id}/release",
            post(network_unknown::release),
        )
        .route(
            "/network/unknown/register",
            get(network_unknown::register_form).post(network_unknown::register),
        )
        .route("/responses", get(responses::responses))
        .route("/responses/{id}/confirm", post(responses::confirm))
        .route("/responses/{id}/refuse", post(responses::refuse))
        .route("/assets/{id}/quarantine", post(responses::quarantine))
        .route("/assets/{id}/release", post(responses::release))
        .route(
            "/assets/{id}/baseline/reset",
            post(inventory::reset_baseline),
        )
        .route("/rollout", get(library::rollout).post(library::start))
        .route("/rollout/assignment", post(library::assign))
        .route("/rollout/{rollout}", post(library::act))
        .route("/reports/cqi", get(library::cqi))
        .route(
            "/pump-groups",
            get(pump_groups::pump_groups).post(pump_groups::save),
        )
        .route("/pump-groups/{name}/delete", post(pump_groups::delete))
        .route(
            "/libraries",
            get(libraries::libraries).post(libraries::upload_draft),
        )
        .route("/libraries/{id}", get(libraries::library))
        .route(
            "/libraries/{id}/drafts",
            post(libraries::draft_from_published),
        )
        .route("/libraries/{id}/rollback", post(libraries::rollback))
        .route("/libraries/{id}/diff", get(libraries::compare))
        .route(
            "/libraries/{id}/revisions/{rev}/edit",
            get(library_editor::editor).post(library_editor::edit),
        )
        .route("/libraries/{id}/revisions/{rev}", get(libraries::revision))
        .route(
            "/libraries/{id}/revisions/{rev}/submit",
            post(libraries::submit),
        )
        .route(
            "/libraries/{id}/revisions/{rev}/approve",
            post(libraries::approve),
        )
        .route(
            "/libraries/{id}/revisions/{rev}/reject",
            post(libraries::reject),
        )
        .route(
            "/libraries/{id}/revisions/{rev}/publish",
            post(libraries::publish),
        )
        .route("/certificates/{serial}", get(pki::certificate))
        .route("/certificates/{serial}/revoke", post(pki::revoke))
        .route("/users", get(admin::users).post(admin::add_user))
        .route("/users/mfa-policy", post(admin::mfa_policy))
        .route("/users/{id}", post(admin::change_user))
        .route("/audit", get(admin::audit))
        .route("/account", get(account::account))
        .route("/account/password", post(account::change_password))
        .route("/account/tokens", post(account::create_token))
        .route("/account/tokens/{id}/revoke", post(account::revoke_token))
        .fallback(not_found)
}

/// The one style sheet, compiled into the binary.
pub const STYLESHEET: &str = include_str!("../../static/pumpward.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The HTML 403 page for a logged-in user whose role lacks a page's
/// permission (used by [`crate::auth::authorize`]).
pub fn forbidden_page(p: &Principal, detail: &str) -> Response {
    UiError::new(
        StatusCode::FORBIDDEN,
        "Access denied",
        format!("Your account cannot open this page: {detail}."),
    )
    .with_nav(p, "")
    .into_response()
}

/// Unknown paths outside `/api`: an HTML 404 page.
async fn not_found(user: Option<UiUser>) -> UiError {
    let e = UiError::new(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
    );
    match user {
        Some(UiUser(p)) => e.with_nav(&p, ""),
        None => e,
    }
}

/// One link of the navigation bar.
#[derive(Debug, Clone)]
pub struct NavLink {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// What the page header shows a logged-in user.
#[derive(Debug, Clone)]
pub struct Nav {
    pub username: String,
    pub role: String,
    pub csrf: String,
    pub links: Vec<NavLink>,
    /// Where this user starts: see [`landing`].
    pub home: &'static str,
}

impl Nav {
    /// The links `p`'s role allows, with `current` (a path) marked.
    pub fn new(p: &Principal, current: &str) -> Nav {
        let all: [(&'static str, &'static str, Option<Permission>); 15] = [
            ("/", "Dashboard", Some(Permission::InventoryRead)),
            ("/assets", "Assets", Some(Permission::InventoryRead)),
            ("/fleet", "Fleet", Some(Permission::PkiRead)),
            ("/findings", "Findings", Some(Permission::FindingsRead)),
            ("/alerts", "Alerts", Some(Permission::AlertsRead)),
            ("/incidents", "Incidents", Some(Permission::AlertsRead)),
            ("/network", "Network", Some(Permission::NetworkRead)),
            ("/responses", "Quarantine", Some(Permission::ResponseManage)),
            ("/libraries", "Libraries", Some(Permission::LibraryRead)),
            ("/rollout", "Library rollout", Some(Permission::LibraryRead)),
            (
                "/pump-groups",
                "Pump groups",
                Some(Permission::InventoryRead),
            ),
            ("/reports/cqi", "CQI report", Some(Permission::LibraryRead)),
            ("/users", "Users", Some(Permission::UsersManage)),
            ("/audit", "Audit", Some(Permission::AuditRead)),
            ("/account", "Account", None),
        ];
        Nav {
            username: p.user.username.clone(),
            role: p.user.role.to_string(),
            csrf: p.csrf().to_owned(),
            home: landing(p.user.role),
            links: all
                .into_iter()
                .filter(|(_, _, perm)| perm.is_none_or(|x| p.can(x)))
                .map(|(href, label, _)| NavLink {
                    href,
                    label,
                    current: href == current
                        || (href != "/" && current.starts_with(&format!("{href}/"))),
                })
                .collect(),
        }
    }
}

/// A page that could not be shown: rendered as an HTML error page (with the
/// navigation when the user is known), or a redirect to the login page.
/// Boxed, so that `Result<_, UiError>` stays small.
#[derive(Debug)]
pub struct UiError(Box<ErrorInfo>);

#[derive(Debug)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    pub nav: Option<Nav>,
    pub redirect: Option<&'static str>,
}

impl UiError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        UiError(Box::new(ErrorInfo {
            status,
            title: title.into(),
            message: message.into(),
            nav: None,
            redirect: None,
        }))
    }

    /// A redirect to the login page (for visitors who are not logged in).
    pub fn login() -> Self {
        let mut e = UiError::new(StatusCode::SEE_OTHER, "Log in", "");
        e.0.redirect = Some("/login");
        e
    }

    pub fn with_nav(mut self, p: &Principal, current: &str) -> Self {
        self.0.nav = Some(Nav::new(p, current));
        self
    }
}

fn title_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Forbidden | ErrorKind::CsrfFailed => "Access denied",
        ErrorKind::NotFound => "Not found",
        ErrorKind::BadRequest | ErrorKind::Validation => "The request is not valid",
        ErrorKind::Conflict | ErrorKind::IllegalTransition => "That cannot be done now",
        ErrorKind::Locked => "Too many attempts",
        ErrorKind::Unavailable => "Temporarily unavailable",
        _ => "Something went wrong",
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        if e.kind == ErrorKind::Unauthenticated {
            return UiError::login();
        }
        UiError::new(e.kind.status(), title_of(e.kind), e.detail)
    }
}

impl From<pumpward_store::StoreError> for UiError {
    fn from(e: pumpward_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<askama::Error> for UiError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "template rendering failed");
        UiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The page could not be rendered; the error has been logged.",
        )
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    nav: Option<Nav>,
    title: &'a str,
    message: &'a str,
    status: u16,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let e = *self.0;
        if let Some(to) = e.redirect {
            return Redirect::to(to).into_response();
        }
        let page = ErrorPage {
            nav: e.nav,
            title: &e.title,
            message: &e.message,
            status: e.status.as_u16(),
        };
        match page.render() {
            Ok(html) => (e.status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "error page rendering failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

pub type UiResult = Result<Response, UiError>;

/// Converts store and API errors into error pages that keep the navigation.
pub trait UiResultExt<T> {
    fn ui(self, p: &Principal, current: &str) -> Result<T, UiError>;
}

impl<T, E: Into<ApiError>> UiResultExt<T> for Result<T, E> {
    fn ui(self, p: &Principal, current: &str) -> Result<T, UiError> {
        self.map_err(|e| UiError::from(e.into()).with_nav(p, current))
    }
}

/// A fully logged-in user of a page; anyone else is sent to `/login`.
pub struct UiUser(pub Principal);

impl FromRequestParts<AppState> for UiUser {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, UiError> {
        Principal::from_request_parts(parts, st)
            .await
            .map(UiUser)
            .map_err(|_| UiError::login())
    }
}

impl OptionalFromRequestParts<AppState> for UiUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Principal as FromRequestParts<AppState>>::from_request_parts(parts, st)
                .await
                .ok()
                .map(UiUser),
        )
    }
}

/// Refuses (with an audited, HTML 403) unless `p` may do `perm`.
pub async fn need(
    st: &AppState,
    p: &Principal,
    perm: Permission,
    current: &str,
) -> Result<(), UiError> {
    p.require(st, perm).await.ui(p, current)
}

/// What every pre-login handler needs of the request.
pub struct Ctx {
    pub authn: Authn,
    pub source: Option<String>,
    pub headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _st: &S) -> Result<Self, Self::Rejection> {
        Ok(Ctx {
            authn: parts
                .extensions
                .get::<Authn>()
                .cloned()
                .unwrap_or(Authn::None),
            source: source_of(&parts.extensions),
            headers: parts.headers.clone(),
        })
    }
}

/// Renders a template as a page with `status`.
pub fn render(status: StatusCode, t: &impl Template) -> UiResult {
    Ok((status, Html(t.render()?)).into_response())
}

/// A 303 redirect (the answer to every successful form post).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Adds a `Set-Cookie` header.
pub fn with_cookie(mut res: Response, cookie: String) -> Response {
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The fields of an `application/x-www-form-urlencoded` body, in order,
/// repeated names kept (checkbox groups).
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Fields, UiError> {
        serde_urlencoded::from_bytes(body).map(Fields).map_err(|_| {
            UiError::new(
                StatusCode::BAD_REQUEST,
                "The request is not valid",
                "The form could not be read; reload the page and try again.",
            )
        })
    }

    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An option of a `<select>`.
#[derive(Debug, Clone)]
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Opt {
    pub fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> Self {
        Opt {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// Where a user lands after logging in: the dashboard, or for roles that
/// may not see the inventory, their account page.
pub fn landing(role: pumpward_core::access::Role) -> &'static str {
    if role.allows(Permission::InventoryRead) {
        "/"
    } else {
        "/account"
    }
}

/// A value for display, or an em dash when absent.
pub fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "—".into())
}

/// Fixed confirmation messages, chosen by a `done` query parameter after a
/// redirect (so nothing from the query string is echoed into the page).
pub fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "transitioned" => "The lifecycle state was changed.",
        "baseline-reset" => "Detection forgot this asset's learned behaviour; it learns again from the pump's next events, and anomaly alerts wait until it has learned enough.",
        "quarantined" => "The pump is quarantined: its gateway connections are closed and refused, its MAC leaves the authorised lists at the next export, and it is on biomed's swap list. A running infusion continues.",
        "quarantine-requested" => "The quarantine was requested; it takes effect when a colleague confirms it.",
        "response-confirmed" => "The quarantine was confirmed and applied. A running infusion continues.",
        "response-refused" => "The pending quarantine was refused; nothing changed on the pump.",
        "released" => "The quarantine was released: the pump is back in the state it was in and may connect again.",
        "user-added" => "The user was added.",
        "user-changed" => "The user was changed.",
        "mfa-reset" => "The user's two-factor enrolment was removed; they will enrol again at their next login if their role requires it.",
        "mfa-policy" => "The MFA policy was saved.",
        "password" => "Your password was changed. Your other sessions were ended.",
        "mfa" => "Two-factor authentication is now set up for your account.",
        "token-revoked" => "The token was revoked.",
        "device-quarantined" => "The device is quarantined: the next exports (nftables, FreeRADIUS MAB, ISE, ACL table) refuse its MAC and addresses. Export and load them to enforce it.",
        "device-released" => "The device was released from quarantine: the next exports no longer refuse it.",
        "device-registered" => "The device was registered as an asset and left the unknown devices.",
        "policy-saved" => "The network policy was checked and saved as a new version; the live evaluation uses it now.",
        "pump-group-saved" => "The pump group was saved. Libraries assigned to it address its pumps in rollouts started from now on.",
        "pump-group-deleted" => "The pump group was deleted.",
        "certificate-revoked" => "The certificate was revoked. A new CRL was published and the pump's connections to the gateway were closed; it cannot connect with this certificate again.",
        _ => return None,
    })
}

/// Reads `?done=` from a query string (ignoring anything else).
pub fn done_param(q: Option<&str>) -> Option<&'static str> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(q.unwrap_or("")).unwrap_or_default();
    notice(
        pairs
            .iter()
            .find(|(k, _)| k == "done")
            .map(|(_, v)| v.as_str()),
    )
}
