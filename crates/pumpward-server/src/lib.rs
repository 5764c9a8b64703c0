//! Pumpward's HTTPS server: the REST API and the web UI over one router.
//!
//! - [`routes`]: the route table (paths, permissions) and the OpenAPI document.
//! - [`auth`]: sessions, tokens, CSRF, login and MFA.
//! - [`api`]: JSON handlers; [`ui`]: server-rendered pages.
//! - [`tls`]: the one place TLS is configured, and the accept loop.
//! - [`problem`]: RFC 9457 errors.

pub mod api;
pub mod api_alerts;
pub mod api_assignment;
pub mod api_events;
pub mod api_findings;
pub mod api_incidents;
pub mod api_library;
pub mod api_network;
pub mod api_pki;
pub mod api_rollout;
pub mod api_sbom;
pub mod api_vuln;
pub mod auth;
pub mod detection;
pub mod detection_rules;
pub mod device;
pub mod gateway;
pub mod library;
pub mod metrics;
pub mod network;
pub mod pki;
pub mod problem;
pub mod response;
pub mod rollout;
pub mod routes;
pub mod siem;
pub mod state;
pub mod tls;
pub mod ui;

use anyhow::Context;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use pumpward_store::Store;
use state::{AppState, ServerSettings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

/// The catch-all under `/api/`, answering unknown API paths with a problem.
pub const API_FALLBACK: &str = "/api/{*rest}";

/// Builds the whole router: API, UI, middleware.
///
/// Order of the layers (outermost first): timeout, metrics and security
/// headers, authentication and CSRF, then per route the authorisation
/// against the route table.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/api/openapi.json", get(api::openapi))
        .route("/pki/ca.pem", get(api_pki::ca_pem))
        .route("/pki/crl", get(api_pki::crl_der))
        .route("/pki/crl.pem", get(api_pki::crl_pem))
        .route(
            "/pki/library-signing.pem",
            get(api_library::signing_cert_pem),
        )
        .route(
            "/api/v1/libraries",
            get(api_library::list_libraries).post(api_library::create_draft),
        )
        .route("/api/v1/libraries/{id}", get(api_library::get_library))
        .route("/api/v1/libraries/{id}/diff", get(api_library::diff))
        .route(
            "/api/v1/libraries/{id}/rollback",
            post(api_library::rollback),
        )
        .route(
            "/api/v1/libraries/{id}/revisions/{rev}",
            get(api_library::get_revision),
        )
        .route(
            "/api/v1/libraries/{id}/revisions/{rev}/export",
            get(api_library::export_revision),
        )
        .route(
            "/api/v1/libraries/{id}/revisions/{rev}/submit",
            post(api_library::submit),
        )
        .route(
            "/api/v1/libraries/{id}/revisions/{rev}/approve",
            post(api_library::approve),
        )
        .route(
            "/api/v1/libraries/{id}/revisions/{rev}/reject",
            post(api_library::reject),
        )
        .route(
            "/api/v1/libraries/{id}/revisions/{rev}/publish",
            post(api_library::publish),
        )
        .route(
            "/api/v1/libraries/{id}/versions/{version}/envelope",
            get(api_library::envelope),
        )
        .route(
            "/api/v1/libraries/{id}/rollouts",
            get(api_rollout::list).post(api_rollout::create),
        )
        .route(
            "/api/v1/libraries/{id}/rollouts/{rollout}",
            get(api_rollout::get),
        )
        .route(
            "/api/v1/libraries/{id}/rollouts/{rollout}/pause",
            post(api_rollout::pause),
        )
        .route(
            "/api/v1/libraries/{id}/rollouts/{rollout}/resume",
            post(api_rollout::resume),
        )
        .route(
            "/api/v1/libraries/{id}/rollouts/{rollout}/advance",
            post(api_rollout::advance),
        )
        .route(
            "/api/v1/libraries/{id}/compliance",
            get(api_rollout::compliance),
        )
        .route("/api/v1/reports/cqi", get(api_rollout::cqi))
        .route(
            "/api/v1/libraries/{id}/assignment",
            get(api_assignment::get).put(api_assignment::put),
        )
        .route("/api/v1/pump-groups", get(api_assignment::list_groups))
        .route(
            "/api/v1/pump-groups/{name}",
            axum::routing::put(api_assignment::put_group).delete(api_assignment::delete_group),
        )
        .route("/api/v1/certificates", get(api_pki::list_certificates))
        .route(
            "/api/v1/certificates/{serial}",
            get(api_pki::get_certificate),
        )
        .route(
            "/api/v1/certificates/{serial}/revoke",
            post(api_pki::revoke_certificate),
        )
        .route(
            "/api/v1/assets/{id}/enrollment-codes",
            post(api_pki::create_enrollment_code),
        )
        .route(
            "/api/v1/network/policy",
            get(api_network::get_policy).put(api_network::put_policy),
        )
        .route(
            "/api/v1/network/policy/versions",
            get(api_network::list_versions),
        )
        .route(
            "/api/v1/network/policy/versions/{version}",
            get(api_network::get_version),
        )
        .route("/api/v1/network/observed", get(api_network::observed))
        .route(
            "/api/v1/network/quarantine",
            get(api_network::list_quarantine).post(api_network::post_quarantine),
        )
        .route(
            "/api/v1/network/quarantine/{id}/release",
            post(api_network::release_quarantine),
        )
        .route("/api/v1/events", get(api_events::list_events))
        .route(
            "/api/v1/assets/{id}/baseline/reset",
            post(api_alerts::reset_baseline),
        )
        .route("/api/v1/alerts", get(api_alerts::list_alerts))
        .route(
            "/api/v1/alerts/{id}",
            get(api_alerts::get_alert).post(api_alerts::alert_step),
        )
        .route(
            "/api/v1/incidents",
            get(api_incidents::list_incidents).post(api_incidents::create_incident),
        )
        .route(
            "/api/v1/incidents/{id}",
            get(api_incidents::get_incident).post(api_incidents::incident_step),
        )
        .route("/api/v1/responses", get(response::api_list))
        .route("/api/v1/responses/{id}", get(response::api_get))
        .route(
            "/api/v1/responses/{id}/confirm",
            post(response::api_confirm),
        )
        .route("/api/v1/responses/{id}/refuse", post(response::api_refuse))
        .route(
            "/api/v1/assets/{id}/quarantine",
            post(response::api_quarantine),
        )
        .route("/api/v1/assets/{id}/release", post(response::api_release))
        .route("/api/v1/findings", get(api_findings::list_findings))
        .route(
            "/api/v1/findings/export",
            get(api_findings::export_findings),
        )
        .route("/api/v1/findings/vex", get(api_findings::vex_findings))
        .route("/api/v1/findings/{id}", get(api_findings::get_finding))
        .route(
            "/api/v1/findings/{id}/remediation",
            post(api_findings::remediate_finding),
        )
        .route(
            "/api/v1/assets/{id}/controls",
            get(api_findings::asset_controls).post(api_findings::record_control),
        )
        .route(
            "/api/v1/advisories",
            get(api_vuln::list_advisories).post(api_vuln::upload_advisory),
        )
        .route("/api/v1/advisories/{id}", get(api_vuln::get_advisory))
        .route(
            "/api/v1/sboms",
            get(api_sbom::list_sboms).post(api_sbom::attach_sbom),
        )
        .route("/api/v1/sboms/{id}", get(api_sbom::get_sbom))
        .route("/api/v1/fleet", get(api_pki::fleet))
        .route("/api/v1/fleet/{id}/commands", post(api_pki::send_command))
        .route("/api/v1/me", get(api::me))
        .route("/api/v1/dashboard", get(api::dashboard))
        .route(
            "/api/v1/assets",
            get(api::list_assets).post(api::create_asset),
        )
        .route("/api/v1/assets/export", get(api::export_assets))
        .route("/api/v1/assets/import", post(api::import_assets))
        .route(
            "/api/v1/assets/{id}",
            get(api::get_asset).put(api::update_asset),
        )
        .route("/api/v1/assets/{id}/history", get(api::asset_history))
        .route(
            "/api/v1/assets/{id}/transition",
            post(api::transition_asset),
        )
        .route("/api/v1/models", get(api::list_models).put(api::put_model))
        .route("/api/v1/users", get(api::list_users).post(api::create_user))
        .route("/api/v1/users/{id}", axum::routing::patch(api::patch_user))
        .route("/api/v1/users/{id}/mfa-reset", post(api::reset_mfa))
        .route(
            "/api/v1/mfa-policy",
            get(api::get_mfa_policy).put(api::put_mfa_policy),
        )
        .route(
            "/api/v1/tokens",
            get(api::list_tokens).post(api::create_token),
        )
        .route("/api/v1/tokens/{id}", delete(api::revoke_token))
        .route("/api/v1/audit", get(api::list_audit))
        .route("/api/v1/audit/verify", get(api::verify_audit))
        .route(API_FALLBACK, axum::routing::any(api::api_not_found));
    api.merge(ui::routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.settings.request_timeout,
        ))
        .with_state(state)
}

/// Counts and times requests, and sets the security headers every response carries.
async fn observe(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (k, v) in [
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    ] {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    let labels = metrics::RequestLabels {
        method,
        route,
        status: res.status().as_u16(),
    };
    st.metrics.requests.get_or_create(&labels).inc();
    st.metrics
        .request_seconds
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    res
}

/// How to run a server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub listen: SocketAddr,
    /// The pumps' listener (EST and the device channel).
    pub gateway_listen: SocketAddr,
    pub settings: ServerSettings,
    pub pki: pki::PkiSettings,
    /// The detection rules file's text (`detection_rules` in the config
    /// file); the settings saved from the rules page take precedence.
    pub detection_rules: Option<String>,
    /// The `[[siem]]` sinks (already checked with [`siem::check_sinks`]).
    pub siem: Vec<siem::SinkConfig>,
    /// Live flow collectors (`--flow-listen`, `--zeek-conn-log`).
    pub network: network::NetworkOptions,
}

/// Opens the store, prepares TLS, prints the setup link if no user exists,
/// and serves until SIGINT or SIGTERM.
pub async fn run(opts: ServeOptions, store: Store) -> anyhow::Result<()> {
    let ca = pki::CaService::open(store.clone(), opts.pki.clone(), true).await?;
    let names = vec!["localhost".to_string(), opts.listen.ip().to_string()];
    let identity = ca.server_identity(&names, "API/UI").await?;
    // Clients trust the CA, not a particular server certificate.
    let tls_dir = opts.data_dir.join("tls");
    std::fs::create_dir_all(&tls_dir)?;
    std::fs::write(tls_dir.join("ca.pem"), ca.chain_pem())?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen on {}", opts.listen))?;
    let gw_listener = tokio::net::TcpListener::bind(opts.gateway_listen)
        .await
        .with_context(|| format!("cannot listen on {} (gateway)", opts.gateway_listen))?;
    let gw_local = gw_listener.local_addr()?;
    let gw_names = vec!["localhost".to_string(), gw_local.ip().to_string()];
    let gw_identity = ca.server_identity(&gw_names, "gateway").await?;
    let local = listener.local_addr()?;
    let base = format!("https://{}", display_addr(local));
    println!(
        "Pumpward is serving on {base}/  (store: {:?})",
        store.backend()
    );
    println!(
        "Pump gateway (EST and device channel) on https://{}/.well-known/est/  (CA: {})",
        display_addr(gw_local),
        tls_dir.join("ca.pem").display()
    );
    if let Some(link) = setup_link(&store, &base).await? {
        println!(
            "No user exists yet. Create the first administrator within 30 minutes at:\n  {link}"
        );
    }
    let mut state = AppState::new(store.clone(), opts.settings).with_pki(ca.clone());
    state.gateway_port = gw_local.port();
    let rules_config =
        detection_rules::startup_config(&store, opts.detection_rules.as_deref()).await?;
    let siem = if opts.siem.is_empty() {
        None
    } else {
        Some(siem::SiemOutput::start(
            &opts.siem,
            &opts.data_dir,
            siem::local_host_name(),
            &state.metrics.siem,
        )?)
    };
    state.siem = siem.clone();
    let detection = detection::Detection::spawn_with(
        store.clone(),
        rules_config,
        detection::Outputs {
            counters: state.metrics.detection.clone(),
            siem: siem.clone(),
        },
    );
    state.rules = detection_rules::LiveRules {
        file: opts.detection_rules.clone(),
        detection: Some(detection.clone()),
    };
    let gw_state = gateway::GatewayState {
        ca: ca.clone(),
        store: store.clone(),
        metrics: state.metrics.clone(),
        sessions: state.sessions.clone(),
        events: device::EventWriter::spawn(store.clone(), Some(detection.clone())),
        detection: Some(detection.clone()),
    };
    let network = network::start(
        store.clone(),
        Some(detection),
        state.network.clone(),
        state.metrics.network.clone(),
        &opts.network,
    )
    .await?;
    if let Some(a) = network.flow_addr {
        println!("Flow collector (IPFIX, NetFlow v9) on udp {a}");
    }
    let cfg = tls::server_config(identity)?;
    let purge_store = store.clone();
    let idle = state.settings.session_idle;
    let purger = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(300)).await;
            let now = time::OffsetDateTime::now_utc();
            let _ = purge_store.purge_sessions(now, now - idle).await;
        }
    });
    let maintenance = ca.spawn_maintenance();
    let sweeper = state.sessions.spawn_sweeper(store.clone());
    let rollouts = rollout::spawn_driver(store.clone(), state.sessions.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let api = tls::serve(listener, cfg, app(state), stop.clone().cancelled_owned());
    let gw = gateway::serve(
        gw_listener,
        gw_state,
        gw_identity,
        stop.clone().cancelled_owned(),
    );
    let signal = async move {
        shutdown_signal().await;
        stop.cancel();
    };
    let (a, g, ()) = tokio::join!(api, gw, signal);
    a?;
    g?;
    purger.abort();
    maintenance.abort();
    sweeper.abort();
    rollouts.abort();
    if let Some(siem) = siem {
        // What the SIEM has not taken by then is sent after the next start.
        siem.shutdown(std::time::Duration::from_secs(10)).await;
    }
    network.stop();
    store.close().await;
    println!("Pumpward stopped.");
    Ok(())
}

fn display_addr(a: SocketAddr) -> String {
    if a.ip().is_unspecified() {
        format!("localhost:{}", a.port())
    } else {
        a.to_string()
    }
}

/// Creates a one-time setup token when there is no administrator, and
/// returns its link.
pub async fn setup_link(store: &Store, base: &str) -> anyhow::Result<Option<String>> {
    if store.admin_count().await? > 0 {
        return Ok(None);
    }
    let tok = auth::random_token();
    store
        .create_setup_token(
            &auth::token_hash(&tok),
            time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
        )
        .await?;
    Ok(Some(format!("{base}/setup?token={tok}")))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
