//! Walks every route of the route table with a user of every role and
//! checks allow/deny against the permission matrix (`Role::allows`).

mod common;

use common::{harness, Cred};
use pumpward_core::access::Role;
use pumpward_server::routes::{Access, API_ROUTES, UI_ROUTES};

fn concrete(path: &str, user_id: i64) -> String {
    path.replace(
        "{id}",
        if path.starts_with("/api/v1/users") || path.starts_with("/users") {
            "USER"
        } else {
            "PUMP-1"
        },
    )
    .replace("USER", &user_id.to_string())
}

#[tokio::test]
async fn every_api_route_with_every_role_matches_the_matrix() {
    let h = harness().await;
    h.store
        .create_asset(
            &pumpward_core::inventory::AssetSpec::validate(
                &serde_json::from_value(common::asset_json("PUMP-1")).unwrap(),
            )
            .unwrap(),
            None,
            &pumpward_store::Actor::cli(),
        )
        .await
        .unwrap();
    let target = h.user("target.user", Role::Clinician).await;
    let mut checked = 0;
    for &role in Role::ALL {
        let cred = Cred::Bearer(h.token_for(&format!("{role}.walker"), role).await);
        for rt in API_ROUTES {
            let path = concrete(rt.path, target.id);
            let body = rt.body.map(|ct| (ct, b"{}".to_vec()));
            let r = h.call(rt.method, &path, &cred, body).await;
            let allowed = match rt.access {
                Access::Public | Access::Authenticated => true,
                Access::Perm(p) => role.allows(p),
            };
            if allowed {
                assert!(
                    !matches!(r.status.as_u16(), 401 | 403 | 405) && r.status.as_u16() < 500,
                    "{role} should be allowed {} {path} but got {} {}",
                    rt.method,
                    r.status,
                    r.text()
                );
            } else {
                assert_eq!(
                    r.status,
                    403,
                    "{role} must be refused {} {path}: {}",
                    rt.method,
                    r.text()
                );
                assert_eq!(r.problem(), "forbidden");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, API_ROUTES.len() * Role::ALL.len());
    // Every refusal was audited.
    let denied = h
        .store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("access.denied".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!denied.is_empty());
}

#[tokio::test]
async fn every_ui_route_with_every_role_matches_the_matrix() {
    let h = harness().await;
    let target = h.user("target.user", Role::Clinician).await;
    for &role in Role::ALL {
        let (cookie, csrf) = h.session_for(&format!("{role}.browser"), role).await;
        let cred = Cred::Session(cookie, Some(csrf));
        // Logging out ends the session, so it is walked last.
        let mut routes: Vec<_> = UI_ROUTES.iter().collect();
        routes.sort_by_key(|r| r.path == "/logout");
        for rt in routes {
            let path = concrete(rt.path, target.id);
            let body = rt.body.map(|ct| (ct, Vec::new()));
            let r = h.call(rt.method, &path, &cred, body).await;
            match rt.access {
                Access::Perm(p) if !role.allows(p) => {
                    assert_eq!(
                        r.status,
                        403,
                        "{role} must be refused {} {path}: {}",
                        rt.method,
                        r.text()
                    )
                }
                _ => assert!(
                    r.status != 403 && r.status != 401 && r.status.as_u16() < 500,
                    "{role} should reach {} {path} but got {} {}",
                    rt.method,
                    r.status,
                    r.text()
                ),
            }
        }
    }
}

#[tokio::test]
async fn without_credentials_only_public_routes_answer() {
    let h = harness().await;
    for rt in API_ROUTES {
        let r = h
            .call(
                rt.method,
                &concrete(rt.path, 1),
                &Cred::None,
                rt.body.map(|ct| (ct, b"{}".to_vec())),
            )
            .await;
        if rt.access == Access::Public {
            assert!(
                r.status.is_success(),
                "{} {} -> {}",
                rt.method,
                rt.path,
                r.status
            );
        } else {
            assert_eq!(r.status, 401, "{} {}", rt.method, rt.path);
            assert_eq!(r.problem(), "unauthenticated");
            assert!(r.headers.contains_key("www-authenticate"));
        }
    }
    for rt in UI_ROUTES
        .iter()
        .filter(|r| r.method == "GET" && r.access != Access::Public)
    {
        let r = h.get(rt.path, &Cred::None).await;
        assert!(r.status.is_redirection(), "{} -> {}", rt.path, r.status);
        assert_eq!(r.headers["location"], "/login");
    }
}

#[tokio::test]
async fn openapi_document_lists_exactly_the_api_routes() {
    let h = harness().await;
    let doc = h.get("/api/openapi.json", &Cred::None).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    let mut table: Vec<(String, String)> = API_ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    documented.sort();
    table.sort();
    assert_eq!(documented, table);
    // And every documented route is served by the router (not the /api fallback).
    let admin = Cred::Bearer(h.token_for("ada", Role::Admin).await);
    for (m, p) in &table {
        let r = h.call(m, &concrete(p, 1), &admin, None).await;
        let fallback = r.status == 404 && r.text().contains("this API route");
        assert!(!fallback, "{m} {p} is documented but not routed");
    }
    assert_eq!(h.get("/api/v1/nope", &admin).await.problem(), "not-found");
}
