//! Drug libraries through the API: drafts from JSON and CSV, two-person
//! review with re-authentication, signing and publication, rollback,
//! diff and export, and the envelope verified against the served signing
//! certificate.

mod common;

use common::{harness, Cred, Harness};
use pumpward_core::access::Role;
use pumpward_druglib::json::to_canonical_json;
use pumpward_druglib::sample_library;
use rustls_pki_types::pem::PemObject;
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

struct Team {
    /// Authors the drafts.
    ann: Cred,
    /// The second pharmacist: reviews.
    bob: Cred,
    admin: Cred,
    clinician: Cred,
}

async fn team(h: &Harness) -> Team {
    Team {
        ann: Cred::Bearer(h.token_for("ann", Role::Pharmacist).await),
        bob: Cred::Bearer(h.token_for("bob", Role::Pharmacist).await),
        admin: Cred::Bearer(h.token_for("ada", Role::Admin).await),
        clinician: Cred::Bearer(h.token_for("cleo", Role::Clinician).await),
    }
}

async fn draft(h: &Harness, who: &Cred, lib: &pumpward_druglib::Library) -> Value {
    let r = h
        .call(
            "POST",
            "/api/v1/libraries",
            who,
            Some(("application/json", to_canonical_json(lib))),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

fn rev_path(lib: &str, rev: i64, action: &str) -> String {
    format!("/api/v1/libraries/{lib}/revisions/{rev}/{action}")
}

async fn post(h: &Harness, who: &Cred, path: &str, body: Value) -> common::Reply {
    h.json("POST", path, who, body).await
}

/// Draft → submit (ann) → approve (bob, re-authenticated) → publish.
async fn publish_new(h: &Harness, t: &Team, lib: &pumpward_druglib::Library) -> Value {
    let d = draft(h, &t.ann, lib).await;
    let rev = d["revision"]["id"].as_i64().unwrap();
    let r = h
        .call("POST", &rev_path(&lib.id, rev, "submit"), &t.ann, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        h,
        &t.bob,
        &rev_path(&lib.id, rev, "approve"),
        json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h
        .call("POST", &rev_path(&lib.id, rev, "publish"), &t.ann, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["revision"].clone()
}

async fn trusted_key(h: &Harness) -> pumpward_druglib::TrustedKey {
    let r = h.get("/pki/library-signing.pem", &Cred::None).await;
    assert_eq!(r.status, 200);
    pumpward_server::library::trusted_key_from_cert_pem(&r.text()).unwrap()
}

async fn envelope(h: &Harness, who: &Cred, lib: &str, version: i64) -> Vec<u8> {
    let r = h
        .get(
            &format!("/api/v1/libraries/{lib}/versions/{version}/envelope"),
            who,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/cose"));
    r.body
}

async fn audit_count(h: &Harness, action: &str, outcome: &str) -> usize {
    h.store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .filter(|r| r.entry.outcome.as_str() == outcome)
        .count()
}

#[tokio::test]
async fn draft_review_publish_and_the_envelope_verifies() {
    let h = harness().await;
    let t = team(&h).await;
    let lib = sample_library();
    let d = draft(&h, &t.ann, &lib).await;
    assert_eq!(d["valid"], true);
    assert_eq!(d["revision"]["state"], "draft");
    assert_eq!(d["revision"]["author"], "ann");
    let rev = d["revision"]["id"].as_i64().unwrap();

    // Submit; the author cannot approve their own (403, audited).
    let r = h
        .call("POST", &rev_path(&lib.id, rev, "submit"), &t.ann, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["revision"]["state"], "submitted");
    let r = post(
        &h,
        &t.ann,
        &rev_path(&lib.id, rev, "approve"),
        json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.problem(), "forbidden");
    assert_eq!(audit_count(&h, "library.approve", "denied").await, 1);
    let r = post(
        &h,
        &t.ann,
        &rev_path(&lib.id, rev, "reject"),
        json!({ "comment": "self" }),
    )
    .await;
    assert_eq!(r.status, 403);

    // Not yet approved: not publishable.
    let r = h
        .call("POST", &rev_path(&lib.id, rev, "publish"), &t.ann, None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // The second pharmacist approves with a wrong password: 401, audited,
    // counted as a failed login, and the revision stays submitted.
    let r = post(
        &h,
        &t.bob,
        &rev_path(&lib.id, rev, "approve"),
        json!({ "password": "wrong guess" }),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.problem(), "unauthenticated");
    assert_eq!(audit_count(&h, "library.approve", "denied").await, 2);
    assert_eq!(audit_count(&h, "auth.login", "failure").await, 1);
    assert_eq!(
        h.store.library_revision(rev).await.unwrap().state,
        pumpward_store::RevisionState::Submitted
    );
    // Missing password: a bad request, nothing changes.
    let r = post(&h, &t.bob, &rev_path(&lib.id, rev, "approve"), json!({})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // A clinician may read but not approve.
    let r = post(
        &h,
        &t.clinician,
        &rev_path(&lib.id, rev, "approve"),
        json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status, 403);

    let r = post(
        &h,
        &t.bob,
        &rev_path(&lib.id, rev, "approve"),
        json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["revision"]["approved_by"], "bob");
    assert_eq!(audit_count(&h, "library.approve", "success").await, 1);

    // The admin publishes (library.publish), as version 1.
    let r = h
        .call("POST", &rev_path(&lib.id, rev, "publish"), &t.admin, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let published = r.json()["revision"].clone();
    assert_eq!(published["state"], "published");
    assert_eq!(published["version"], 1);
    assert_eq!(published["published_by"], "ada");

    // The envelope verifies against the served signing certificate, and
    // says who, what and which key.
    let key = trusted_key(&h).await;
    assert_eq!(published["signing_key_id"], hex::encode(&key.kid));
    let env = envelope(&h, &t.clinician, &lib.id, 1).await;
    let v = pumpward_druglib::verify_envelope(&env, std::slice::from_ref(&key)).unwrap();
    assert_eq!(v.library.id, lib.id);
    assert_eq!(v.library.version, 1);
    assert_eq!(v.signer, "user:ada");
    assert_eq!(hex::encode(v.digest), published["sha256"].as_str().unwrap());
    let mut expected = lib.clone();
    expected.version = 1;
    assert_eq!(v.library, expected);
    // As a pump decides it.
    assert!(matches!(
        pumpward_druglib::decide_install(None, &env, std::slice::from_ref(&key), "adult-icu"),
        pumpward_druglib::InstallDecision::Install(_)
    ));
    // A flipped byte is refused.
    let mut bad = env.clone();
    let n = bad.len() - 10;
    bad[n] ^= 1;
    assert!(pumpward_druglib::verify_envelope(&bad, &[key]).is_err());

    // The signing certificate is a code-signing certificate issued by the CA
    // and recorded with the others.
    let certs = h
        .store
        .list_certificates(&pumpward_store::CertFilter {
            kind: Some(pumpward_store::CertKind::LibrarySigning),
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert_eq!(certs.len(), 1);

    // Published: no second publication, no approval.
    let r = h
        .call("POST", &rev_path(&lib.id, rev, "publish"), &t.ann, None)
        .await;
    assert_eq!(r.status, 409);
    let libs = h.get("/api/v1/libraries", &t.clinician).await.json();
    assert_eq!(libs["items"][0]["published_version"], 1);
    assert!(h.store.audit_verify().await.unwrap().error.is_none());
}

#[tokio::test]
async fn invalid_library_is_stored_as_draft_but_not_submittable() {
    let h = harness().await;
    let t = team(&h).await;
    let mut lib = sample_library();
    lib.care_areas[0].entries[0].soft_max =
        Some(pumpward_druglib::quantity::Dec::from_int(1_000_000));
    lib.care_areas[1].entries[0].hard_max = None;
    let d = draft(&h, &t.ann, &lib).await;
    assert_eq!(d["valid"], false);
    assert!(d["problems"].as_array().unwrap().len() >= 2);
    let rev = d["revision"]["id"].as_i64().unwrap();
    let r = h
        .call("POST", &rev_path(&lib.id, rev, "submit"), &t.ann, None)
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.problem(), "validation-failed");
    let errors = r.json()["errors"].as_array().unwrap().clone();
    assert!(errors.len() >= 2, "{errors:?}");
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("care_areas[adult-icu].entries[0]")),
        "{fields:?}"
    );
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with(&format!("care_areas[{}].entries[0]", lib.care_areas[1].id))),
        "{fields:?}"
    );
    assert_eq!(
        h.store.library_revision(rev).await.unwrap().state,
        pumpward_store::RevisionState::Draft
    );

    // Malformed bodies change nothing and say where.
    let r = h
        .call(
            "POST",
            "/api/v1/libraries",
            &t.ann,
            Some(("application/json", b"{\"id\": 1".to_vec())),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["errors"][0]["field"]
        .as_str()
        .unwrap()
        .starts_with("line 1"));
    let r = h
        .call(
            "POST",
            "/api/v1/libraries",
            &t.ann,
            Some(("text/plain", b"x".to_vec())),
        )
        .await;
    assert_eq!(r.status, 415);
    let r = h
        .call(
            "POST",
            "/api/v1/libraries",
            &t.ann,
            Some(("text/csv", b"library_id,nope\nx,y\n".to_vec())),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    // Only pharmacists author.
    let r = h
        .call(
            "POST",
            "/api/v1/libraries",
            &t.admin,
            Some(("application/json", to_canonical_json(&lib))),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(h.store.library_revisions(&lib.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn csv_drafts_rejection_with_comment_replacement_and_diff() {
    let h = harness().await;
    let t = team(&h).await;
    let lib = sample_library();
    let v1 = publish_new(&h, &t, &lib).await;
    assert_eq!(v1["version"], 1);

    // A change, sent as CSV: heparin's soft maximum in the adult ICU.
    let mut lib2 = lib.clone();
    let entry = lib2.care_areas[0]
        .entries
        .iter_mut()
        .find(|e| e.drug == "heparin")
        .unwrap();
    let old_soft_max = entry.soft_max.unwrap().to_string();
    entry.soft_max = Some("20".parse().unwrap());
    let csv = pumpward_druglib::csv::write_library_csv(&lib2);
    let r = h
        .call(
            "POST",
            "/api/v1/libraries",
            &t.ann,
            Some(("text/csv", csv.clone())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let rev = r.json()["revision"]["id"].as_i64().unwrap();
    assert_eq!(
        h.call("POST", &rev_path(&lib.id, rev, "submit"), &t.ann, None)
            .await
            .status,
        200
    );

    // The reviewer reads the diff against the published version.
    let r = h
        .get(
            &format!("/api/v1/libraries/{}/diff?from=v1&to={rev}", lib.id),
            &t.bob,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let d = r.json();
    assert_eq!(d["diff"]["empty"], false);
    let adult = d["diff"]["care_areas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "adult-icu")
        .unwrap()
        .clone();
    let change = &adult["changed"][0];
    assert!(
        change["entry"].as_str().unwrap().starts_with("heparin"),
        "{change}"
    );
    assert_eq!(change["fields"][0]["field"], "soft_max");
    assert_eq!(change["fields"][0]["old"], old_soft_max);
    assert_eq!(change["fields"][0]["new"], "20");
    let text = h
        .get(
            &format!(
                "/api/v1/libraries/{}/diff?from=v1&to={rev}&format=text",
                lib.id
            ),
            &t.bob,
        )
        .await
        .text();
    assert!(text.contains("care area adult-icu:"), "{text}");
    assert!(text.contains("heparin"), "{text}");
    assert_eq!(d["text"], text);
    // Both sides named for what they are: the draft is not "version 1".
    assert_eq!(
        text.lines().next(),
        Some(
            format!(
                "Library {0} version 1 → {0} revision {rev} (submitted)",
                lib.id
            )
            .as_str()
        ),
        "{text}"
    );
    assert_eq!(
        (d["from_label"].as_str(), d["to_label"].as_str()),
        (
            Some("version 1"),
            Some(format!("revision {rev} (submitted)").as_str())
        )
    );
    let r = h
        .get(
            &format!("/api/v1/libraries/{}/diff?from=v9&to={rev}", lib.id),
            &t.bob,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = h
        .get(
            &format!("/api/v1/libraries/{}/diff?from=x&to={rev}", lib.id),
            &t.bob,
        )
        .await;
    assert_eq!(r.status, 400);

    // Rejected, with a comment; an empty comment is refused.
    let r = post(
        &h,
        &t.bob,
        &rev_path(&lib.id, rev, "reject"),
        json!({ "comment": " " }),
    )
    .await;
    assert_eq!(r.status, 422);
    let r = post(
        &h,
        &t.bob,
        &rev_path(&lib.id, rev, "reject"),
        json!({ "comment": "20 units/kg/h is above our protocol" }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["revision"]["state"], "rejected");
    assert_eq!(
        j["revision"]["reject_comment"],
        "20 units/kg/h is above our protocol"
    );
    assert_eq!(j["revision"]["rejected_by"], "bob");

    // Only its author replaces a rejected revision; bob's attempt is refused.
    let r = h
        .call(
            "POST",
            &format!("/api/v1/libraries?replaces={rev}"),
            &t.bob,
            Some(("text/csv", csv.clone())),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = h
        .call(
            "POST",
            &format!("/api/v1/libraries?replaces={rev}"),
            &t.ann,
            Some(("application/json", to_canonical_json(&lib2))),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["revision"]["replaces"], rev);

    // Export of the published version: canonical JSON (the signed bytes)
    // and CSV that reads back as the same library.
    let v1_rev = v1["id"].as_i64().unwrap();
    let r = h
        .get(
            &format!(
                "/api/v1/libraries/{}/revisions/{v1_rev}/export?format=json",
                lib.id
            ),
            &t.clinician,
        )
        .await;
    assert_eq!(r.status, 200);
    let mut expected = lib.clone();
    expected.version = 1;
    assert_eq!(r.body, to_canonical_json(&expected));
    let r = h
        .get(
            &format!(
                "/api/v1/libraries/{}/revisions/{v1_rev}/export?format=csv",
                lib.id
            ),
            &t.clinician,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        pumpward_druglib::csv::read_library_csv(&r.body).unwrap(),
        expected
    );
    let r = h
        .get(
            &format!("/api/v1/libraries/{}/revisions/{v1_rev}", lib.id),
            &t.clinician,
        )
        .await
        .json();
    assert_eq!(r["library"]["version"], 1);
    assert_eq!(r["problems"].as_array().unwrap().len(), 0);
    // A revision of another library is not found under this one.
    let r = h
        .get(
            &format!("/api/v1/libraries/other-lib/revisions/{v1_rev}"),
            &t.clinician,
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn rollback_publishes_old_content_as_a_higher_version() {
    let h = harness().await;
    let t = team(&h).await;
    let lib = sample_library();
    publish_new(&h, &t, &lib).await;
    let mut lib2 = lib.clone();
    lib2.description = "edition 2".into();
    let v2 = publish_new(&h, &t, &lib2).await;
    assert_eq!(v2["version"], 2);

    // Clinicians cannot roll back; a version that does not exist is 404.
    let path = format!("/api/v1/libraries/{}/rollback", lib.id);
    assert_eq!(
        post(&h, &t.clinician, &path, json!({ "version": 1 }))
            .await
            .status,
        403
    );
    assert_eq!(
        post(&h, &t.ann, &path, json!({ "version": 7 }))
            .await
            .status,
        404
    );
    let r = post(&h, &t.ann, &path, json!({ "version": 1 })).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rb = r.json()["revision"].clone();
    assert_eq!(rb["version"], 3);
    assert_eq!(rb["rollback_of"], 1);

    let key = trusted_key(&h).await;
    let v = pumpward_druglib::verify_envelope(
        &envelope(&h, &t.ann, &lib.id, 3).await,
        std::slice::from_ref(&key),
    )
    .unwrap();
    let mut expected = lib.clone();
    expected.version = 3;
    assert_eq!(v.library, expected, "version 1's content, numbered 3");
    // A pump on version 2 installs it; the old version-1 envelope it refuses.
    let installed = pumpward_druglib::InstalledLibrary {
        id: lib.id.clone(),
        version: 2,
        digest: [0; 32],
    };
    let env3 = envelope(&h, &t.ann, &lib.id, 3).await;
    assert!(matches!(
        pumpward_druglib::decide_install(
            Some(&installed),
            &env3,
            std::slice::from_ref(&key),
            "adult-icu"
        ),
        pumpward_druglib::InstallDecision::Install(_)
    ));
    let env1 = envelope(&h, &t.ann, &lib.id, 1).await;
    assert!(matches!(
        pumpward_druglib::decide_install(Some(&installed), &env1, &[key], "adult-icu"),
        pumpward_druglib::InstallDecision::Reject { .. }
    ));
    // The diff of 1 and 3 is empty; of 2 and 3 shows the description.
    let d = h
        .get(
            &format!("/api/v1/libraries/{}/diff?from=v1&to=v3", lib.id),
            &t.ann,
        )
        .await
        .json();
    assert_eq!(d["diff"]["empty"], true);
    let d = h
        .get(
            &format!("/api/v1/libraries/{}/diff?from=v2&to=v3", lib.id),
            &t.ann,
        )
        .await
        .json();
    assert_eq!(d["diff"]["fields"][0]["field"], "description");
    assert_eq!(audit_count(&h, "library.rollback", "success").await, 1);
}

#[tokio::test]
async fn approval_with_mfa_needs_the_current_code_and_lockout_applies() {
    let h = harness().await;
    let t = team(&h).await;
    let bob = h.store.user_by_name("bob").await.unwrap().unwrap();
    let secret = pumpward_core::access::totp::TotpSecret::generate();
    h.store
        .set_totp(
            bob.id,
            Some(&secret.to_base32()),
            None,
            &pumpward_store::Actor::cli(),
        )
        .await
        .unwrap();
    let lib = sample_library();
    let rev = draft(&h, &t.ann, &lib).await["revision"]["id"]
        .as_i64()
        .unwrap();
    h.call("POST", &rev_path(&lib.id, rev, "submit"), &t.ann, None)
        .await;
    let approve = rev_path(&lib.id, rev, "approve");
    // Password alone is not enough for an enrolled user.
    let r = post(&h, &t.bob, &approve, json!({ "password": PASSWORD })).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = post(
        &h,
        &t.bob,
        &approve,
        json!({ "password": PASSWORD, "totp_code": "000000x" }),
    )
    .await;
    assert_eq!(r.status, 401);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let code = pumpward_core::access::totp::code_at(secret.as_bytes(), now, 6);
    let r = post(
        &h,
        &t.bob,
        &approve,
        json!({ "password": PASSWORD, "totp_code": code }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Repeated wrong passwords lock the account, as at login.
    let lib2 = pumpward_druglib::Library {
        description: "again".into(),
        ..lib.clone()
    };
    let rev = draft(&h, &t.bob, &lib2).await["revision"]["id"]
        .as_i64()
        .unwrap();
    h.call("POST", &rev_path(&lib.id, rev, "submit"), &t.bob, None)
        .await;
    let approve = rev_path(&lib.id, rev, "approve");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            post(&h, &t.ann, &approve, json!({ "password": "nope nope" }))
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let r = post(&h, &t.ann, &approve, json!({ "password": PASSWORD })).await;
    assert_eq!(r.status, 429, "locked even with the right password");
    assert_eq!(
        h.store.library_revision(rev).await.unwrap().state,
        pumpward_store::RevisionState::Submitted
    );
}

#[tokio::test]
async fn signing_certificate_is_public_and_stable() {
    let h = harness().await;
    let a = h.get("/pki/library-signing.pem", &Cred::None).await;
    assert_eq!(a.status, 200);
    let b = h.get("/pki/library-signing.pem", &Cred::None).await;
    assert_eq!(a.body, b.body, "made once, then served");
    let pem = a.text();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let info = pumpward_pki::inspect_certificate(&der).unwrap();
    assert!(info.code_signing && !info.is_ca);
    // A server certificate is not accepted as the library signer.
    assert!(pumpward_server::library::trusted_key_from_cert_pem(
        &h.state.pki.as_ref().unwrap().chain_pem()
    )
    .is_err());
    // Without a CA there is nothing to serve.
    let h = h.without_pki();
    assert_eq!(
        h.get("/pki/library-signing.pem", &Cred::None).await.status,
        503
    );
}

async fn pump(h: &Harness, id: &str, area: &str) {
    let mut a = common::asset_json(id);
    a["care_area"] = area.into();
    let draft: pumpward_core::inventory::AssetDraft = serde_json::from_value(a).unwrap();
    let spec = pumpward_core::inventory::AssetSpec::validate(&draft).unwrap();
    h.store
        .create_asset(
            &spec,
            Some(pumpward_core::inventory::LifecycleState::InService),
            &pumpward_store::Actor::cli(),
        )
        .await
        .unwrap();
}

fn installed(version: &str, digest: &str, seq: u64) -> pumpward_proto::PumpEvent {
    pumpward_proto::PumpEvent {
        seq,
        at: time::OffsetDateTime::now_utc(),
        kind: pumpward_proto::message::EventKind::LibraryInstalled {
            version: version.into(),
            digest: digest.into(),
        },
        detail: Default::default(),
    }
}

#[tokio::test]
async fn staged_rollout_pause_advance_compliance_and_pages() {
    let h = harness().await;
    let t = team(&h).await;
    let lib = sample_library();
    publish_new(&h, &t, &lib).await;
    for (id, area) in [
        ("PUMP-A1", "Adult ICU"),
        ("PUMP-A2", "Adult ICU"),
        ("PUMP-O1", "Oncology"),
    ] {
        pump(&h, id, area).await;
    }
    let base = format!("/api/v1/libraries/{}", lib.id);
    // Only a publisher starts a rollout; a bad version changes nothing.
    let body = json!({ "version": 1, "pilot_care_area": "Adult ICU" });
    let r = post(&h, &t.clinician, &format!("{base}/rollouts"), body.clone()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post(
        &h,
        &t.ann,
        &format!("{base}/rollouts"),
        json!({ "version": 9 }),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = post(
        &h,
        &t.ann,
        &format!("{base}/rollouts"),
        json!({ "version": 1, "pilot_percent": 101 }),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(&h, &t.ann, &format!("{base}/rollouts"), body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let ro = r.json()["rollout"].clone();
    let rid = ro["id"].as_i64().unwrap();
    assert_eq!(
        (
            ro["counts"]["total"].as_i64(),
            ro["pilot"]["total"].as_i64()
        ),
        (Some(3), Some(2))
    );
    let digest = ro["envelope_sha256"].as_str().unwrap().to_owned();
    // The digest is the published envelope's.
    let env = envelope(&h, &t.ann, &lib.id, 1).await;
    {
        use sha2::Digest as _;
        assert_eq!(hex::encode(sha2::Sha256::digest(&env)), digest);
    }

    // The pilot pumps report; the oncology pump is not yet asked.
    let rep = pumpward_server::rollout::library_reports("PUMP-A1", &[installed("1", &digest, 1)]);
    h.store
        .record_library_reports(&rep, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let r = h
        .get(
            &format!("{base}/rollouts/{rid}?state=installed"),
            &t.clinician,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let pumps = r.json()["pumps"].as_array().unwrap().clone();
    assert_eq!(pumps.len(), 1);
    assert_eq!(pumps[0]["asset_id"], "PUMP-A1");
    let r = h
        .get(
            &format!("{base}/rollouts/{rid}?state=nonsense"),
            &t.clinician,
        )
        .await;
    assert_eq!(r.status, 400);

    let act = |a: &'static str| format!("{base}/rollouts/{rid}/{a}");
    let r = h.call("POST", &act("pause"), &t.ann, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rollout"]["state"], "paused");
    let r = h.call("POST", &act("pause"), &t.ann, None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = h.call("POST", &act("resume"), &t.ann, None).await;
    assert_eq!(r.json()["rollout"]["state"], "active");
    let r = h.call("POST", &act("advance"), &t.ann, None).await;
    assert_eq!(r.json()["rollout"]["current_wave"], 2);
    assert_eq!(
        audit_count(&h, "library.rollout.advance", "success").await,
        1
    );

    // Compliance: one of three pumps on version 1.
    let r = h.get(&format!("{base}/compliance"), &t.clinician).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let c = r.json();
    assert_eq!(
        (
            c["current_version"].as_i64(),
            c["pumps"].as_i64(),
            c["current"].as_i64()
        ),
        (Some(1), Some(3), Some(1))
    );
    let stale: Vec<&str> = c["stale"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["asset_id"].as_str().unwrap())
        .collect();
    assert_eq!(stale.len(), 2);
    assert!(stale.contains(&"PUMP-A2") && stale.contains(&"PUMP-O1"));

    // The pages render for a reader, with the stale pumps and the rollout.
    let (cookie, csrf) = h.session_for("pia", Role::Pharmacist).await;
    let page = h
        .get(
            &format!("/rollout?library={}", lib.id),
            &Cred::Session(cookie.clone(), None),
        )
        .await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("PUMP-O1") && html.contains("id=\"rollouts\"") && html.contains("33.3%"),
        "{html}"
    );
    // Pause through the form (with the CSRF token).
    let r = h
        .form(
            &format!("/rollout/{rid}"),
            &cookie,
            &[("csrf", &csrf), ("action", "pause")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(h.store.library_rollout(rid).await.unwrap().state, "paused");
    let r = h
        .form(&format!("/rollout/{rid}"), &cookie, &[("action", "resume")])
        .await;
    assert_eq!(r.status, 403, "no CSRF token: {}", r.text());
    assert_eq!(h.store.library_rollout(rid).await.unwrap().state, "paused");
}

/// Assignment: biomed defines a pump group, a publisher assigns the library
/// to a care area and the group (API, audited; readers may read, not set);
/// the next rollout addresses only those pumps and the compliance view
/// counts only them; the rollout page says so and saves the assignment
/// through its form (CSRF-protected); unassigned, the page says "the whole
/// fleet".
#[tokio::test]
async fn library_assignment_scopes_the_rollout_through_api_and_page() {
    let h = harness().await;
    let t = team(&h).await;
    let biomed = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    let lib = sample_library();
    publish_new(&h, &t, &lib).await;
    for (id, area) in [
        ("PUMP-A1", "Adult ICU"),
        ("PUMP-O1", "Oncology"),
        ("PUMP-O2", "Oncology"),
        ("PUMP-M1", "Med-Surg"),
    ] {
        pump(&h, id, area).await;
    }
    let base = format!("/api/v1/libraries/{}", lib.id);
    let r = h.get(&format!("{base}/assignment"), &t.clinician).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["whole_fleet"], true);

    // A pump group (biomed's; a pharmacist may not write one).
    let group = json!({ "description": "oncology infusion chairs", "members": ["PUMP-O2"] });
    let r = h
        .json("PUT", "/api/v1/pump-groups/Chairs", &t.ann, group.clone())
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = h
        .json(
            "PUT",
            "/api/v1/pump-groups/Chairs",
            &biomed,
            json!({ "members": ["NOPE"] }),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("NOPE"), "{}", r.text());
    let r = h
        .json("PUT", "/api/v1/pump-groups/Chairs", &biomed, group)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h.get("/api/v1/pump-groups", &t.clinician).await;
    assert_eq!(r.json()["items"][0]["members"], json!(["PUMP-O2"]));

    // Assign: only a publisher; a care area the library lacks is refused.
    let body = json!({ "care_areas": ["Adult ICU"], "pump_groups": ["Chairs"] });
    let r = h
        .json(
            "PUT",
            &format!("{base}/assignment"),
            &t.clinician,
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = h
        .json(
            "PUT",
            &format!("{base}/assignment"),
            &t.ann,
            json!({ "care_areas": ["Burns"] }),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = h
        .json("PUT", &format!("{base}/assignment"), &t.ann, body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["whole_fleet"], false);
    assert_eq!(
        audit_count(&h, "library.assignment.set", "success").await,
        1
    );

    // The rollout addresses the Adult ICU pump and the group's pump only.
    let r = post(
        &h,
        &t.ann,
        &format!("{base}/rollouts"),
        json!({ "version": 1 }),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let rid = r.json()["rollout"]["id"].as_i64().unwrap();
    let r = h.get(&format!("{base}/rollouts/{rid}"), &t.clinician).await;
    let mut addressed: Vec<String> = r.json()["pumps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["asset_id"].as_str().unwrap().to_owned())
        .collect();
    addressed.sort();
    assert_eq!(addressed, ["PUMP-A1", "PUMP-O2"]);
    let digest = r.json()["rollout"]["envelope_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    for p in ["PUMP-A1", "PUMP-O2"] {
        let rep = pumpward_server::rollout::library_reports(p, &[installed("1", &digest, 1)]);
        h.store
            .record_library_reports(&rep, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
    }
    let c = h
        .get(&format!("{base}/compliance"), &t.clinician)
        .await
        .json();
    assert_eq!(
        (
            c["pumps"].as_i64(),
            c["current"].as_i64(),
            c["percent"].as_f64()
        ),
        (Some(2), Some(2), Some(100.0))
    );

    // The page states the scope and offers the form.
    let (cookie, csrf) = h.session_for("pia", Role::Pharmacist).await;
    let page = h
        .get(
            &format!("/rollout?library={}", lib.id),
            &Cred::Session(cookie.clone(), None),
        )
        .await;
    let html = page.text();
    assert!(
        html.contains("id=\"assignment-scope\"")
            && html.contains("<strong>Adult ICU</strong>")
            && html.contains("<strong>Chairs</strong>")
            && html.contains("100.0%</strong> of 2 pumps the library is assigned to")
            && html.contains("value=\"Chairs\" checked"),
        "{html}"
    );
    // Without the CSRF token nothing changes; with it, nothing ticked: the
    // whole fleet, and the page says so.
    let r = h
        .form("/rollout/assignment", &cookie, &[("library", &lib.id)])
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!h
        .store
        .library_assignment(&lib.id)
        .await
        .unwrap()
        .whole_fleet());
    let r = h
        .form(
            "/rollout/assignment",
            &cookie,
            &[
                ("csrf", &csrf),
                ("library", &lib.id),
                ("care_area", "Burns"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("Burns"), "{}", r.text());
    let r = h
        .form(
            "/rollout/assignment",
            &cookie,
            &[("csrf", &csrf), ("library", &lib.id)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(h
        .store
        .library_assignment(&lib.id)
        .await
        .unwrap()
        .whole_fleet());
    assert_eq!(
        audit_count(&h, "library.assignment.set", "success").await,
        2
    );
    let html = h
        .get(
            &format!("/rollout?library={}", lib.id),
            &Cred::Session(cookie, None),
        )
        .await
        .text();
    assert!(html.contains("<strong>the whole fleet</strong>"), "{html}");
    let c = h
        .get(&format!("{base}/compliance"), &t.clinician)
        .await
        .json();
    assert_eq!(c["pumps"].as_i64(), Some(4));
}

#[tokio::test]
async fn cqi_report_as_json_csv_and_a_page_with_a_chart() {
    use pumpward_proto::message::{DoseCheck, DoseCheckResult, EventKind, LimitKind, Quantity};
    let h = harness().await;
    let t = team(&h).await;
    let now = time::OffsetDateTime::now_utc();
    let check = |seq: i64, result, reason: Option<&str>| {
        let e = pumpward_proto::PumpEvent {
            seq: seq as u64,
            at: now,
            kind: EventKind::DoseCheck(DoseCheck {
                result,
                drug: "heparin".into(),
                care_area: "adult-icu".into(),
                dose: Some(Quantity {
                    value: "28".into(),
                    unit: "units/kg/h".into(),
                }),
                limit: Some(Quantity {
                    value: "25".into(),
                    unit: "units/kg/h".into(),
                }),
                limit_kind: Some(LimitKind::SoftMax),
                infusion_id: Some(format!("inf-{seq}")),
                library_version: Some("1".into()),
                override_reason: reason.map(Into::into),
            }),
            detail: Default::default(),
        };
        pumpward_store::DeviceEventRecord {
            seq,
            at: pumpward_core::timefmt::format(now),
            kind: "dose_check".into(),
            body: serde_json::to_string(&e).unwrap(),
        }
    };
    h.store
        .store_device_batches(
            &[pumpward_store::DeviceBatch {
                asset_id: "PUMP-Q".into(),
                events: vec![
                    check(1, DoseCheckResult::WithinLimits, None),
                    check(2, DoseCheckResult::SoftOverride, Some("@SUM(A1) aPTT low")),
                    check(3, DoseCheckResult::HardBlock, None),
                ],
                ..Default::default()
            }],
            now,
        )
        .await
        .unwrap();
    let r = h.get("/api/v1/reports/cqi", &t.clinician).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let row = r.json()["rows"][0].clone();
    assert_eq!(
        (
            row["programmings"].as_i64(),
            row["soft_overrides"].as_i64(),
            row["hard_blocks"].as_i64()
        ),
        (Some(3), Some(1), Some(1))
    );
    let r = h.get("/api/v1/reports/cqi?format=csv", &t.clinician).await;
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text();
    assert!(csv.contains(",'@SUM(A1) aPTT low (1)"), "{csv}");
    let r = h
        .get("/api/v1/reports/cqi?from=nonsense", &t.clinician)
        .await;
    assert_eq!(r.status, 400);
    let r = h
        .get(
            "/api/v1/reports/cqi?from=2026-01-02&to=2026-01-01",
            &t.clinician,
        )
        .await;
    assert_eq!(r.status, 400);

    let (cookie, _) = h.session_for("pia", Role::Pharmacist).await;
    let page = h.get("/reports/cqi", &Cred::Session(cookie, None)).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("<svg id=\"cqi-chart\""), "{html}");
    assert!(html.contains("heparin · adult-icu"));
    assert!(html.contains("@SUM(A1) aPTT low (1)"));
}
