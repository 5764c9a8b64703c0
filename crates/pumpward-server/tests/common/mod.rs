//! An in-process server for API tests: the real router and a real SQLite
//! store, driven without TLS through `tower::ServiceExt::oneshot`.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use pumpward_core::access::{password, Permission, Role};
use pumpward_server::auth::{random_token, token_hash, TOKEN_PREFIX};
use pumpward_server::state::{AppState, ServerSettings};
use pumpward_store::{Actor, NewSession, SessionStage, Store, User};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

pub struct Harness {
    pub app: Router,
    pub store: Store,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The problem `type` slug, asserting the body is a problem document.
    pub fn problem(&self) -> String {
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "status {} body {}",
            self.status,
            self.text()
        );
        let v = self.json();
        assert_eq!(v["status"], self.status.as_u16(), "{v}");
        v["type"]
            .as_str()
            .unwrap()
            .strip_prefix("urn:pumpward:problem:")
            .unwrap()
            .to_owned()
    }
}

pub async fn harness() -> Harness {
    harness_with(ServerSettings::default()).await
}

pub async fn harness_with(settings: ServerSettings) -> Harness {
    harness_with_pki(settings, |_| {}).await
}

/// A harness whose CA has `tweak`ed settings.
pub async fn harness_with_pki(
    settings: ServerSettings,
    tweak: impl FnOnce(&mut pumpward_server::pki::PkiSettings),
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("data")).await.unwrap();
    // A real CA, its key-encryption key outside the data directory.
    let mut pki =
        pumpward_server::pki::PkiSettings::new(pumpward_server::pki::KekSource::KeyFile {
            path: dir.path().join("kek"),
            create: true,
        });
    tweak(&mut pki);
    let ca = pumpward_server::pki::CaService::open(store.clone(), pki, true)
        .await
        .unwrap();
    let state = AppState::new(store.clone(), settings).with_pki(ca);
    Harness {
        app: pumpward_server::app(state.clone()),
        store,
        state,
        _dir: dir,
    }
}

/// How a test request authenticates.
#[derive(Clone, Debug)]
pub enum Cred {
    None,
    Bearer(String),
    /// Session cookie value and its CSRF token (None: send no CSRF token).
    Session(String, Option<String>),
}

impl Harness {
    /// The same store (and users) served by a router without a certificate
    /// authority, as a server started without one.
    pub fn without_pki(mut self) -> Harness {
        self.state.pki = None;
        self.app = pumpward_server::app(self.state.clone());
        self
    }

    /// Posts an HTML form (`application/x-www-form-urlencoded`) with a
    /// browser session; the CSRF token, if any, goes in the `csrf` field.
    pub async fn form(&self, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Reply {
        let body = serde_urlencoded::to_string(fields).unwrap();
        self.call(
            "POST",
            path,
            &Cred::Session(cookie.to_owned(), None),
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
        )
        .await
    }

    pub async fn user(&self, name: &str, role: Role) -> User {
        self.store
            .create_user(
                name,
                name,
                role,
                &password::hash_password("correct horse battery staple"),
                false,
                &Actor::cli(),
            )
            .await
            .unwrap()
    }

    /// A user of `role` and a token carrying every permission the role has.
    pub async fn token_for(&self, name: &str, role: Role) -> String {
        let u = self.user(name, role).await;
        let scopes: Vec<Permission> = Permission::ALL
            .iter()
            .copied()
            .filter(|&p| role.allows(p))
            .collect();
        self.token(&u, &scopes, Duration::days(1)).await
    }

    pub async fn token(&self, u: &User, scopes: &[Permission], ttl: Duration) -> String {
        let secret = format!("{TOKEN_PREFIX}{}", random_token());
        self.store
            .create_api_token(
                u,
                "test",
                &token_hash(&secret),
                scopes,
                OffsetDateTime::now_utc() + ttl,
                &Actor::cli(),
            )
            .await
            .unwrap();
        secret
    }

    /// An active browser session for a new user of `role`: (cookie value, csrf token).
    pub async fn session_for(&self, name: &str, role: Role) -> (String, String) {
        let u = self.user(name, role).await;
        let (tok, csrf) = (random_token(), random_token());
        self.store
            .create_session(&NewSession {
                token_hash: token_hash(&tok),
                user_id: u.id,
                stage: SessionStage::Active,
                csrf_token: csrf.clone(),
                source: None,
                expires_at: OffsetDateTime::now_utc() + Duration::hours(1),
            })
            .await
            .unwrap();
        (tok, csrf)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        cred: &Cred,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path);
        match cred {
            Cred::None => {}
            Cred::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
            Cred::Session(c, csrf) => {
                b = b.header(
                    header::COOKIE,
                    format!("{}={c}", pumpward_server::auth::SESSION_COOKIE),
                );
                if let Some(x) = csrf {
                    b = b.header(pumpward_server::auth::CSRF_HEADER, x);
                }
            }
        }
        let req = match body {
            Some((ct, bytes)) => b
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(bytes))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, cred: &Cred) -> Reply {
        self.call("GET", path, cred, None).await
    }

    pub async fn json(&self, method: &str, path: &str, cred: &Cred, v: serde_json::Value) -> Reply {
        self.call(
            method,
            path,
            cred,
            Some(("application/json", v.to_string().into_bytes())),
        )
        .await
    }
}

pub fn asset_json(id: &str) -> serde_json::Value {
    serde_json::json!({
        "asset_id": id,
        "manufacturer": "ICU Medical",
        "model": "Plum 360",
        "serial_number": format!("SN-{id}"),
        "firmware_version": "15.11",
        "care_area": "Adult ICU",
        "device_type": "lvp",
    })
}

/// Stores an in-service pump (Baxter Sigma Spectrum, Adult ICU, vendor
/// credentials changed, so that only the rules a test exercises fire).
pub async fn in_service_pump(store: &Store, id: &str) {
    use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
    let spec = AssetSpec::validate(&AssetDraft {
        asset_id: id.into(),
        kind: Some("pump".into()),
        manufacturer: "Baxter".into(),
        model: "Sigma Spectrum".into(),
        serial_number: format!("SN-{id}"),
        firmware_version: "8.00.01".into(),
        care_area: Some("Adult ICU".into()),
        credential_state: Some("changed".into()),
        ..Default::default()
    })
    .unwrap();
    store
        .create_asset(&spec, Some(LifecycleState::InService), &Actor::system())
        .await
        .unwrap();
}
