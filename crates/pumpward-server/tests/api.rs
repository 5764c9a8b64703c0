//! REST API behaviour: inventory end to end, bad input, CSRF, tokens.

mod common;

use common::{asset_json, harness, harness_with, Cred};
use pumpward_core::access::{Permission, Role};
use pumpward_server::state::ServerSettings;
use serde_json::json;
use time::Duration;

#[tokio::test]
async fn asset_lifecycle_through_the_api() {
    let h = harness().await;
    let biomed = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    let r = h
        .json("POST", "/api/v1/assets", &biomed, asset_json("PUMP-1"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.headers["location"], "/api/v1/assets/PUMP-1");
    let a = r.json();
    assert_eq!(
        (a["lifecycle_state"].as_str(), a["version"].as_i64()),
        (Some("received"), Some(1))
    );

    let mut upd = asset_json("PUMP-1");
    upd["firmware_version"] = json!("15.12");
    upd["version"] = json!(1);
    let r = h
        .json("PUT", "/api/v1/assets/PUMP-1", &biomed, upd.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], 2);
    // Replaying the same stale write is a conflict, not a silent overwrite.
    let r = h.json("PUT", "/api/v1/assets/PUMP-1", &biomed, upd).await;
    assert_eq!((r.status.as_u16(), r.problem().as_str()), (409, "conflict"));

    for (to, reason) in [
        ("provisioned", "certificate issued"),
        ("in_service", "on the ward"),
    ] {
        let r = h
            .json(
                "POST",
                "/api/v1/assets/PUMP-1/transition",
                &biomed,
                json!({ "to": to, "reason": reason }),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = h
        .json(
            "POST",
            "/api/v1/assets/PUMP-1/transition",
            &biomed,
            json!({ "to": "disposed", "reason": "x" }),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (409, "illegal-lifecycle-transition")
    );
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("from in_service it can go to"));

    let hist = h.get("/api/v1/assets/PUMP-1/history", &biomed).await.json();
    let states: Vec<&str> = hist["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["received", "provisioned", "in_service"]);
    assert_eq!(
        h.get("/api/v1/assets/NOPE", &biomed).await.problem(),
        "not-found"
    );
}

#[tokio::test]
async fn list_filters_and_cursor() {
    let h = harness().await;
    let biomed = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    for i in 0..12 {
        let mut a = asset_json(&format!("P-{i:02}"));
        a["care_area"] = json!(if i < 8 { "NICU" } else { "Oncology" });
        assert_eq!(
            h.json("POST", "/api/v1/assets", &biomed, a).await.status,
            201
        );
    }
    let mut ids = Vec::new();
    let mut url = "/api/v1/assets?care_area=NICU&limit=3".to_string();
    loop {
        let page = h.get(&url, &biomed).await.json();
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["asset_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/assets?care_area=NICU&limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(ids, (0..8).map(|i| format!("P-{i:02}")).collect::<Vec<_>>());
    let r = h.get("/api/v1/assets?state=flying", &biomed).await;
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (400, "bad-request")
    );
    let r = h.get("/api/v1/assets?colour=red", &biomed).await;
    assert_eq!(r.status, 400);
    let dash = h.get("/api/v1/dashboard", &biomed).await.json();
    assert_eq!(dash["by_care_area"]["NICU"], 8);
}

#[tokio::test]
async fn bad_bodies_get_problems_and_change_nothing() {
    let h = harness_with(ServerSettings {
        max_body_bytes: 4096,
        ..Default::default()
    })
    .await;
    let biomed = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    let head = h.store.audit_head().await.unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{not json".to_vec(),
            400,
            "bad-request",
        ),
        ("application/json", b"[1,2]".to_vec(), 400, "bad-request"),
        (
            "text/plain",
            asset_json("X-1").to_string().into_bytes(),
            415,
            "unsupported-media-type",
        ),
        (
            "application/json",
            vec![b' '; 10_000],
            413,
            "payload-too-large",
        ),
        (
            "application/json",
            json!({ "asset_id": "X-1", "colour": "red" })
                .to_string()
                .into_bytes(),
            400,
            "bad-request",
        ),
        ("application/json", b"\xff\xfe".to_vec(), 400, "bad-request"),
    ];
    for (ct, body, status, slug) in cases {
        let r = h
            .call("POST", "/api/v1/assets", &biomed, Some((ct, body)))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.problem().as_str()),
            (status, slug),
            "{}",
            r.text()
        );
    }
    let mut bad = asset_json("X 1");
    bad["mac_address"] = json!("ff:ff:ff:ff:ff:ff");
    bad["ip_address"] = json!("999.1.1.1");
    let r = h.json("POST", "/api/v1/assets", &biomed, bad).await;
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (422, "validation-failed")
    );
    let fields: Vec<String> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, ["asset_id", "mac_address", "ip_address"]);
    assert!(h
        .store
        .list_assets(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(
        h.store.audit_head().await.unwrap(),
        head,
        "a refused request must not write"
    );
}

/// An asset's CPE names through the API: a bad one is a 422 naming the
/// name and attribute, with nothing stored; text or a list is accepted and
/// read back canonical; an update changes them.
#[tokio::test]
async fn asset_cpe_names_through_the_api() {
    let h = harness().await;
    let biomed = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    let head = h.store.audit_head().await.unwrap();
    let mut bad = asset_json("PUMP-C");
    bad["cpe"] = json!([
        "cpe:2.3:h:bd:alaris_8015_pc_unit:-:*:*:*:*:*:*:*",
        "cpe:2.3:o:bd:alaris_pc_unit_firmware:12.*:*:*:*:*:*:*:*"
    ]);
    let r = h.json("POST", "/api/v1/assets", &biomed, bad).await;
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (422, "validation-failed"),
        "{}",
        r.text()
    );
    let e = &r.json()["errors"][0];
    assert_eq!(e["field"], "cpe", "{}", r.text());
    let m = e["message"].as_str().unwrap();
    assert!(
        m.starts_with("CPE name 2 ") && m.contains("attribute version"),
        "{m}"
    );
    assert!(h.store.asset("PUMP-C").await.is_err());
    assert_eq!(h.store.audit_head().await.unwrap(), head);

    let mut good = asset_json("PUMP-C");
    good["cpe"] = json!("CPE:2.3:H:BD:Alaris_8015_PC_Unit:-:*:*:*:*:*:*:*");
    let r = h.json("POST", "/api/v1/assets", &biomed, good).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["cpe"],
        json!(["cpe:2.3:h:bd:alaris_8015_pc_unit:-:*:*:*:*:*:*:*"])
    );
    let mut upd = asset_json("PUMP-C");
    upd["cpe"] = json!([
        "cpe:2.3:h:bd:alaris_8015_pc_unit:-:*:*:*:*:*:*:*",
        "cpe:2.3:o:bd:alaris_pc_unit_firmware:12.1.2:*:*:*:*:*:*:*"
    ]);
    upd["version"] = json!(1);
    let r = h.json("PUT", "/api/v1/assets/PUMP-C", &biomed, upd).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = h.get("/api/v1/assets/PUMP-C", &biomed).await.json();
    assert_eq!(got["cpe"].as_array().unwrap().len(), 2, "{got}");
    assert_eq!(
        got["cpe"][1],
        "cpe:2.3:o:bd:alaris_pc_unit_firmware:12.1.2:*:*:*:*:*:*:*"
    );
}

#[tokio::test]
async fn csv_import_and_export_round_trip() {
    let h = harness().await;
    let biomed = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    let csv = "asset_id,manufacturer,model,serial_number,firmware_version,software,care_area,lifecycle_state\n\
               A-1,Baxter,Sigma Spectrum,S1,8.00.01,Wireless Battery Module=v22D28,NICU,in_service\n\
               A-2,Baxter,Sigma Spectrum,S2,8.00.01,,NICU,received\n";
    let r = h
        .call(
            "POST",
            "/api/v1/assets/import",
            &biomed,
            Some(("text/csv", csv.into())),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["created"], 2);
    let export = h.get("/api/v1/assets/export", &biomed).await;
    assert!(export.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let r = h
        .call(
            "POST",
            "/api/v1/assets/import",
            &biomed,
            Some(("text/csv", export.body.clone())),
        )
        .await;
    assert_eq!(
        (r.json()["created"].as_i64(), r.json()["unchanged"].as_i64()),
        (Some(0), Some(2))
    );

    let bad = "asset_id,manufacturer,model,serial_number,firmware_version,mac_address\n\
               A-3,BD,Alaris 8015 PC Unit,S3,9.33.1,\n\
               A-4,BD,Alaris 8015 PC Unit,S4,9.33.1,not-a-mac\n";
    let r = h
        .call(
            "POST",
            "/api/v1/assets/import",
            &biomed,
            Some(("text/csv", bad.into())),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (422, "validation-failed")
    );
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("line 3"),
        "{}",
        r.text()
    );
    assert_eq!(
        h.store
            .list_assets(&Default::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let r = h
        .call(
            "POST",
            "/api/v1/assets/import?skip_invalid=true",
            &biomed,
            Some(("text/csv", bad.into())),
        )
        .await;
    assert_eq!(r.json()["created"], 1);
    assert_eq!(r.json()["invalid"][0]["line"], 3);
}

#[tokio::test]
async fn csrf_is_required_for_cookie_sessions_only() {
    let h = harness().await;
    let (cookie, csrf) = h.session_for("bea", Role::Biomed).await;
    let r = h
        .json(
            "POST",
            "/api/v1/assets",
            &Cred::Session(cookie.clone(), None),
            asset_json("C-1"),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.problem().as_str()),
        (403, "csrf-failed")
    );
    let r = h
        .json(
            "POST",
            "/api/v1/assets",
            &Cred::Session(cookie.clone(), Some("wrong".into())),
            asset_json("C-1"),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = h
        .json(
            "POST",
            "/api/v1/assets",
            &Cred::Session(cookie.clone(), Some(csrf)),
            asset_json("C-1"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    // Reads need no CSRF token.
    assert_eq!(
        h.get("/api/v1/assets/C-1", &Cred::Session(cookie, None))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn tokens_are_scoped_expire_and_revoke() {
    let h = harness().await;
    let bea = h.user("bea", Role::Biomed).await;
    let read_only = Cred::Bearer(
        h.token(&bea, &[Permission::InventoryRead], Duration::days(1))
            .await,
    );
    assert_eq!(h.get("/api/v1/assets", &read_only).await.status, 200);
    let r = h
        .json("POST", "/api/v1/assets", &read_only, asset_json("T-1"))
        .await;
    assert_eq!(r.status, 403, "a token's scopes narrow its owner's role");
    let expired = Cred::Bearer(
        h.token(&bea, &[Permission::InventoryRead], Duration::seconds(-1))
            .await,
    );
    assert_eq!(
        h.get("/api/v1/assets", &expired).await.problem(),
        "unauthenticated"
    );
    assert_eq!(
        h.get("/api/v1/assets", &Cred::Bearer("pw_forged".into()))
            .await
            .status,
        401
    );

    // Tokens are made from browser sessions, within the role.
    let (cookie, csrf) = h.session_for("ada", Role::Admin).await;
    let admin = Cred::Session(cookie, Some(csrf));
    let r = h
        .json(
            "POST",
            "/api/v1/tokens",
            &admin,
            json!({ "name": "cmms", "scopes": ["inventory.read"] }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["token"].as_str().unwrap().to_owned();
    let id = r.json()["info"]["id"].as_i64().unwrap();
    let tok = Cred::Bearer(secret);
    assert_eq!(
        h.get("/api/v1/me", &tok).await.json()["permissions"],
        json!(["inventory.read"])
    );
    let r = h
        .json(
            "POST",
            "/api/v1/tokens",
            &tok,
            json!({ "name": "x", "scopes": ["inventory.read"] }),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let (c2, x2) = h.session_for("cleo", Role::Clinician).await;
    let r = h
        .json(
            "POST",
            "/api/v1/tokens",
            &Cred::Session(c2, Some(x2)),
            json!({ "name": "x", "scopes": ["users.manage"] }),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        h.call("DELETE", &format!("/api/v1/tokens/{id}"), &admin, None)
            .await
            .status,
        204
    );
    assert_eq!(h.get("/api/v1/me", &tok).await.status, 401);
}

#[tokio::test]
async fn login_throttling_locks_and_is_audited() {
    let h = harness().await;
    h.user("bea", Role::Biomed).await;
    for _ in 0..5 {
        let r = pumpward_server::auth::password_login(&h.state, "bea", "wrong password!", None)
            .await
            .unwrap();
        assert!(r.is_err());
    }
    let r = pumpward_server::auth::password_login(
        &h.state,
        "bea",
        "correct horse battery staple",
        None,
    )
    .await
    .unwrap();
    assert!(matches!(
        r,
        Err(pumpward_server::auth::LoginRefusal::Locked)
    ));
    // Unknown users are refused the same way and also throttled.
    let r = pumpward_server::auth::password_login(&h.state, "nobody", "x", None)
        .await
        .unwrap();
    assert!(matches!(
        r,
        Err(pumpward_server::auth::LoginRefusal::BadCredentials)
    ));
    let lock = h
        .store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("auth.lockout".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(lock.len(), 1);
    assert_eq!(lock[0].entry.object.as_deref(), Some("user:bea"));
}

#[tokio::test]
async fn mfa_required_roles_start_at_enrolment() {
    let h = harness().await;
    h.user("sam", Role::Security).await;
    h.user("bea", Role::Biomed).await;
    let stage = |r: Result<pumpward_server::auth::LoginOutcome, _>| match r {
        Ok(pumpward_server::auth::LoginOutcome::Session { stage, .. }) => stage,
        Err(e) => panic!("{e}"),
    };
    let s = stage(
        pumpward_server::auth::password_login(
            &h.state,
            "sam",
            "correct horse battery staple",
            None,
        )
        .await
        .unwrap(),
    );
    assert_eq!(s, pumpward_store::SessionStage::MfaEnroll);
    let s = stage(
        pumpward_server::auth::password_login(
            &h.state,
            "bea",
            "correct horse battery staple",
            None,
        )
        .await
        .unwrap(),
    );
    assert_eq!(s, pumpward_store::SessionStage::Active);
}

#[tokio::test]
async fn health_metrics_and_audit_api() {
    let h = harness().await;
    assert_eq!(h.get("/healthz", &Cred::None).await.text(), "ok");
    assert_eq!(h.get("/readyz", &Cred::None).await.status, 200);
    let sec = Cred::Bearer(h.token_for("sam", Role::Security).await);
    let m = h.get("/metrics", &sec).await;
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(text.contains("pumpward_http_requests_total"), "{text}");
    assert!(text.contains("pumpward_audit_records"), "{text}");
    let aud = Cred::Bearer(h.token_for("audrey", Role::Auditor).await);
    let v = h.get("/api/v1/audit/verify", &aud).await.json();
    assert_eq!(v["intact"], true);
    let list = h
        .get("/api/v1/audit?action=user&limit=5", &aud)
        .await
        .json();
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["action"].as_str().unwrap().starts_with("user.")));
    let r = h.get("/api/v1/audit?since=yesterday", &aud).await;
    assert_eq!(r.status, 400);
    // Security headers on every answer.
    let r = h.get("/healthz", &Cred::None).await;
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert!(r.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
}

/// Uploading a real CISA advisory: security may, biomed may not; the
/// import answers what happened, a second upload is skipped, a broken one
/// is refused with its JSON path and stores nothing, and the matching it
/// triggers raises findings for an affected pump.
#[tokio::test]
async fn advisory_upload_matching_and_permissions() {
    let h = harness().await;
    let mut plum = asset_json("PUMP-9");
    plum["manufacturer"] = json!("Hospira");
    plum["model"] = json!("Plum A+");
    plum["firmware_version"] = json!("13.3");
    h.store
        .create_asset(
            &pumpward_core::inventory::AssetSpec::validate(&serde_json::from_value(plum).unwrap())
                .unwrap(),
            Some(pumpward_core::inventory::LifecycleState::InService),
            &pumpward_store::Actor::cli(),
        )
        .await
        .unwrap();
    let doc = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-vuln/tests/data/csaf/icsa-15-161-01.json"
    ))
    .unwrap();
    let security = Cred::Bearer(h.token_for("sam.security", Role::Security).await);
    let biomed = Cred::Bearer(h.token_for("bea.biomed", Role::Biomed).await);
    let clinician = Cred::Bearer(h.token_for("cai.clinician", Role::Clinician).await);

    let r = h
        .call(
            "POST",
            "/api/v1/advisories",
            &biomed,
            Some(("application/json", doc.clone())),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.problem(), "forbidden");

    let r = h
        .call(
            "POST",
            "/api/v1/advisories",
            &security,
            Some(("application/json", doc.clone())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["import"]["outcome"], "added");
    assert_eq!(v["import"]["tracking_id"], "ICSA-15-161-01");
    // The import matched by itself the assets the advisory concerns.
    assert_eq!(v["match"]["affected_open"], 7);
    assert_eq!(v["match"]["raised"], 7);
    let id = v["import"]["advisory_id"].as_i64().unwrap();

    let r = h
        .call(
            "POST",
            "/api/v1/advisories",
            &security,
            Some(("application/json", doc.clone())),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["import"]["outcome"], "skipped");
    assert!(r.json()["import"]["reason"]
        .as_str()
        .unwrap()
        .contains("same document"));

    let mut broken: serde_json::Value = serde_json::from_slice(&doc).unwrap();
    broken["product_tree"] = json!([]);
    let r = h
        .json("POST", "/api/v1/advisories", &security, broken)
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("$.product_tree"), "{}", r.text());

    // Clinicians read advisories; the list and the detail agree.
    let r = h.get("/api/v1/advisories?state=current", &clinician).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    let r = h.get(&format!("/api/v1/advisories/{id}"), &clinician).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["vulnerabilities"].as_array().unwrap().len(), 7);
    assert_eq!(
        v["vulnerabilities"][0]["product_statuses"][0]["product_key"],
        "hospira/plum-a-plus"
    );
    let r = h.get("/api/v1/advisories?state=bogus", &clinician).await;
    assert_eq!(r.status, 400);

    // The findings are where findings are.
    let r = h
        .get(
            "/api/v1/findings?kind=vulnerability.affected&asset_id=PUMP-9",
            &biomed,
        )
        .await;
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 7);
    // Each finding shows its priority and its factors.
    let f = &items[0];
    assert_eq!(f["priority"], f["evidence"]["priority"]["score"]);
    assert_eq!(
        f["evidence"]["priority"]["factors"]
            .as_array()
            .unwrap()
            .len(),
        9
    );
    assert_eq!(f["remediation"], "open");
    // Each links to its advisory's page and API resource.
    assert_eq!(f["advisories"][0]["tracking_id"], "ICSA-15-161-01");
    assert_eq!(f["advisories"][0]["href"], format!("/advisories/{id}"));
    assert_eq!(
        f["advisories"][0]["api"],
        format!("/api/v1/advisories/{id}")
    );
    assert!(f.get("applied_remediations").is_none(), "{f:#}");
    let fid = f["id"].as_i64().unwrap();
    let step = format!("/api/v1/findings/{fid}/remediation");

    // The remediation workflow: vuln.remediate, and patch validation is biomed's.
    let r = h
        .json(
            "POST",
            &step,
            &clinician,
            json!({"to": "vendor_patch_available", "vendor_reference": "ICSA-15-161-01"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = h
        .json(
            "POST",
            &step,
            &security,
            json!({"to": "vendor_patch_available", "vendor_reference": "ICSA-15-161-01"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["finding"]["remediation"], "vendor_patch_available");
    let validated = json!({"to": "patch_validated", "validation_reference": "HSP-VAL-7"});
    let r = h.json("POST", &step, &security, validated.clone()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = h.json("POST", &step, &biomed, validated).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h
        .json(
            "POST",
            &step,
            &biomed,
            json!({"to": "deployed", "version": "13.5"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text()
            .contains("allowed from patch_validated: scheduled, risk_accepted"),
        "{}",
        r.text()
    );
    let r = h
        .json(
            "POST",
            &step,
            &biomed,
            json!({"to": "scheduled", "date": "tomorrow"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = h
        .json(
            "POST",
            &step,
            &biomed,
            json!({"to": "scheduled", "date": "2030-01-01", "extra": 1}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());

    // Compensating controls on the asset.
    let r = h
        .json(
            "POST",
            "/api/v1/assets/PUMP-9/controls",
            &biomed,
            json!({"control": "monitored", "note": "IDS"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = h
        .json(
            "POST",
            "/api/v1/assets/PUMP-9/controls",
            &biomed,
            json!({"control": "monitored"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h
        .json(
            "POST",
            "/api/v1/assets/PUMP-9/controls",
            &biomed,
            json!({"control": "prayer"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = h.get("/api/v1/assets/PUMP-9/controls", &biomed).await;
    assert_eq!(r.json()["items"][0]["control"], "monitored");

    // The CSV export: a header and the 7 findings.
    let r = h
        .get(
            "/api/v1/findings/export?kind=vulnerability.affected",
            &biomed,
        )
        .await;
    assert_eq!(r.status, 200);
    let csv = r.text();
    assert!(
        csv.starts_with("finding_id,asset_id,advisory_id,cve,status,priority"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 8, "{csv}");
    assert!(csv.contains(",PUMP-9,ICSA-15-161-01,CVE-2015-"), "{csv}");

    // The fleet's CSAF VEX: PUMP-9's model and version known_affected by
    // the 7 CVEs, with an action statement each; a bad namespace is refused.
    let r = h
        .get(
            "/api/v1/findings/vex?publisher=General%20Hospital&namespace=https://hospital.example",
            &biomed,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let vex = r.json();
    assert_eq!(vex["document"]["category"], "csaf_vex");
    assert_eq!(vex["document"]["publisher"]["name"], "General Hospital");
    assert_eq!(
        pumpward_vuln::vex::mandatory_problems(&vex),
        Vec::<String>::new()
    );
    let vulns = vex["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulns.len(), 7, "{vex:#}");
    assert!(vulns.iter().all(|v| v["product_status"]["known_affected"]
        .as_array()
        .is_some_and(|a| a.len() == 1)));
    let r = h
        .get("/api/v1/findings/vex?namespace=ftp://x", &biomed)
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("namespace"), "{}", r.text());

    // PUMP-9 moves to 13.5, past "<=13.4": its findings resolve, and each
    // shows the advisory's remediations that applied (Hospira's two
    // mitigations: close FTP and Telnet, contact technical support).
    let version = h.get("/api/v1/assets/PUMP-9", &biomed).await.json()["version"].clone();
    let mut upd = asset_json("PUMP-9");
    upd["manufacturer"] = json!("Hospira");
    upd["model"] = json!("Plum A+");
    upd["firmware_version"] = json!("13.5");
    upd["version"] = version;
    let r = h.json("PUT", "/api/v1/assets/PUMP-9", &biomed, upd).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h.get(&format!("/api/v1/findings/{fid}"), &biomed).await;
    let f = r.json();
    assert_eq!(f["state"], "resolved", "{f:#}");
    assert_eq!(f["advisories"][0]["href"], format!("/advisories/{id}"));
    let applied = f["applied_remediations"].as_array().unwrap();
    assert_eq!(applied.len(), 2, "{f:#}");
    assert!(applied.iter().all(
        |r| r["category"] == "mitigation" && r["details"].as_str().unwrap().contains("Hospira")
    ));
}

/// Alerts: listed with filters and a cursor; the workflow through the API,
/// a refused step answered 422 and changing nothing; biomed reads, only the
/// SOC works them.
#[tokio::test]
async fn alerts_list_and_workflow() {
    use pumpward_detect::event::Event;
    use pumpward_detect::{Context, DetectionConfig, Engine};
    let h = harness().await;
    let biomed = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    let security = Cred::Bearer(h.token_for("sam", Role::Security).await);
    // Two bursts of authentication failures from two addresses.
    let t0 = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let mut engine = Engine::new(DetectionConfig::default());
    let mut alerts = Vec::new();
    for (i, peer) in ["10.9.9.9", "10.9.9.8"].iter().cycle().take(12).enumerate() {
        let at = t0 + Duration::seconds(i as i64);
        let ev = Event::auth_failure(
            format!("gw:{i}"),
            at,
            peer.parse().unwrap(),
            "unknown_ca".into(),
        );
        engine.process(&Context::default(), i as u64 + 1, &ev, &mut alerts);
    }
    assert_eq!(alerts.len(), 2);
    h.store.record_alerts(&alerts).await.unwrap();

    let r = h.get("/api/v1/alerts?limit=1", &biomed).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let first = page["items"][0].clone();
    assert_eq!(first["rule"], "auth_failure_burst");
    assert_eq!(first["state"], "new");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let r = h
        .get(
            &format!(
                "/api/v1/alerts?limit=1&before={}",
                cursor
                    .replace('|', "%7C")
                    .replace(':', "%3A")
                    .replace('+', "%2B")
            ),
            &biomed,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let second = r.json()["items"][0].clone();
    assert_ne!(second["id"], first["id"]);
    assert!(r.json()["next_cursor"].is_null());
    let r = h.get("/api/v1/alerts?state=bogus", &biomed).await;
    assert_eq!(r.status, 400);

    let path = format!("/api/v1/alerts/{}", first["id"].as_str().unwrap());
    // Biomed reads but does not triage.
    let r = h
        .json("POST", &path, &biomed, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // Resolving before acknowledging is refused and changes nothing.
    let r = h
        .json(
            "POST",
            &path,
            &security,
            json!({"action": "resolve", "note": "done"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(h.get(&path, &biomed).await.json()["state"], "new");
    let r = h
        .json("POST", &path, &security, json!({"action": "acknowledge"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["owner"], "sam");
    let r = h
        .json(
            "POST",
            &path,
            &security,
            json!({"action": "false_positive", "note": "penetration test"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = h.get(&path, &biomed).await.json();
    assert_eq!(got["state"], "false_positive");
    assert_eq!(
        h.get("/api/v1/alerts?state=new", &biomed).await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = h
        .json("POST", &path, &security, json!({"action": "reopen"}))
        .await;
    assert_eq!(r.status, 400);
}
