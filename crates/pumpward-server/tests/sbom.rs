//! SBOMs through the API and the UI: attach (format detected, precise
//! errors, nothing stored on error, audited, `vuln.manage`), list, one SBOM
//! with its components and the findings they decided; the advisory page's
//! references (http(s) links only) and the asset page's links from each
//! finding to its advisory and SBOM.

mod common;

use common::{harness, Cred, Harness};
use pumpward_core::access::Role;
use pumpward_core::inventory::{AssetSpec, LifecycleState};
use pumpward_store::{Actor, AuditFilter};

const BOUNDARY: &str = "----pumpward-sbom-test";

fn sbom_bytes() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-vuln/tests/data/sbom/medical-device-casestudy-narrow.cdx.json"
    ))
    .unwrap()
}

fn purl_advisory() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-store/tests/data/sbom/wolfssl-purl.csaf.json"
    ))
    .unwrap()
}

async fn alaris(h: &Harness, id: &str, firmware: &str) {
    let mut j = common::asset_json(id);
    j["manufacturer"] = "BD".into();
    j["model"] = "Alaris 8015 PC Unit".into();
    j["firmware_version"] = firmware.into();
    h.store
        .create_asset(
            &AssetSpec::validate(&serde_json::from_value(j).unwrap()).unwrap(),
            Some(LifecycleState::InService),
            &Actor::cli(),
        )
        .await
        .unwrap();
}

/// A browser session for page views (GETs need no CSRF token).
fn session(cookie: &str) -> Cred {
    Cred::Session(cookie.to_owned(), None)
}

fn html(r: &common::Reply) -> String {
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{} {:?}",
        r.status,
        r.text()
    );
    r.text()
}

/// The attach form as a browser sends it.
async fn upload(
    h: &Harness,
    cookie: &str,
    csrf: Option<&str>,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> common::Reply {
    let mut body = Vec::new();
    let mut part = |head: String, value: &[u8]| {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n{head}\r\n\r\n").as_bytes());
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    };
    if let Some(c) = csrf {
        part(
            "Content-Disposition: form-data; name=\"csrf\"".into(),
            c.as_bytes(),
        );
    }
    for (k, v) in fields {
        part(
            format!("Content-Disposition: form-data; name=\"{k}\""),
            v.as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        part(
            format!(
                "Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream"
            ),
            bytes,
        );
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    h.call(
        "POST",
        "/sboms",
        &Cred::Session(cookie.to_owned(), None),
        Some((&format!("multipart/form-data; boundary={BOUNDARY}"), body)),
    )
    .await
}

#[tokio::test]
async fn sboms_through_the_api() {
    let h = harness().await;
    alaris(&h, "PUMP-1", "12.1.2").await;
    let security = Cred::Bearer(h.token_for("sam", Role::Security).await);
    let biomed = Cred::Bearer(h.token_for("bea", Role::Biomed).await);
    let to = "/api/v1/sboms?manufacturer=BD&model=Alaris%208015%20PC%20Unit&version=12.1.2&source=narrow.cdx.json";
    let post = |cred: &Cred, path: &str, bytes: Vec<u8>| {
        let (h, cred, path) = (&h, cred.clone(), path.to_owned());
        async move {
            h.call(
                "POST",
                &path,
                &cred,
                Some(("application/vnd.cyclonedx+json", bytes)),
            )
            .await
        }
    };

    // Reading is vuln.read; attaching is vuln.manage.
    assert_eq!(post(&biomed, to, sbom_bytes()).await.status, 403);
    // Broken files and missing fields: precise errors, nothing stored.
    let r = post(
        &security,
        to,
        br#"{"bomFormat":"CycloneDX","components":[{"name":3}]}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.problem(), "validation-failed");
    assert_eq!(
        r.json()["detail"],
        "SBOM: $.components[0].name: expected a string, found number 3"
    );
    let r = post(
        &security,
        "/api/v1/sboms?manufacturer=BD&model=x",
        sbom_bytes(),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"][0]["field"], "version", "{}", r.text());
    let r = post(&security, to, Vec::new()).await;
    assert_eq!(r.status, 422);
    let r = post(&security, &format!("{to}&colour=red"), sbom_bytes()).await;
    assert_eq!(r.status, 400, "unknown query fields are refused");
    let list = h.get("/api/v1/sboms", &biomed).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["items"], serde_json::json!([]));

    // Attached (201), then the same file again (200, skipped).
    let r = post(&security, to, sbom_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let a = r.json();
    assert_eq!(a["outcome"], "attached");
    assert_eq!(a["sbom"]["components"], 55);
    assert_eq!(a["sbom"]["source"], "narrow.cdx.json");
    assert_eq!(a["matched"]["assets"], 1);
    let id = a["sbom"]["id"].as_i64().unwrap();
    let r = post(&security, to, sbom_bytes()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["outcome"], "skipped");
    let audit = h
        .store
        .audit_list(&AuditFilter {
            action: Some("sbom.attach".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(
        audit[0].entry.actor.starts_with("user:sam token:"),
        "{:?}",
        audit[0]
    );

    // An advisory naming wolfSSL by purl: the pump inherits the finding.
    let r = h
        .call(
            "POST",
            "/api/v1/advisories",
            &security,
            Some(("application/json", purl_advisory())),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["match"]["raised"], 1, "{}", r.text());
    let one = h.get(&format!("/api/v1/sboms/{id}"), &biomed).await;
    assert_eq!(one.status, 200);
    let one = one.json();
    assert_eq!(one["components"].as_array().unwrap().len(), 55);
    assert_eq!(one["vex"], serde_json::json!([]));
    let f = &one["findings"][0];
    assert_eq!(f["asset_id"], "PUMP-1");
    assert_eq!(f["cve"], "CVE-2022-25638");
    assert_eq!(f["status"], "affected");
    assert_eq!(f["advisory_id"], "EXMD-2022-0007");
    assert_eq!(f["evidence"]["rules"][0]["matched_by"], "purl");
    assert_eq!(h.get("/api/v1/sboms/999", &biomed).await.status, 404);

    // The OpenAPI document names the routes and their permissions.
    let doc = h.get("/api/openapi.json", &Cred::None).await.json();
    let post_op = &doc["paths"]["/api/v1/sboms"]["post"];
    assert_eq!(
        post_op["description"],
        "Requires the `vuln.manage` permission."
    );
    assert!(post_op["requestBody"]["content"]["application/octet-stream"].is_object());
    assert!(doc["paths"]["/api/v1/sboms/{id}"]["get"].is_object());
}

#[tokio::test]
async fn sbom_pages_and_advisory_links() {
    let h = harness().await;
    alaris(&h, "PUMP-1", "12.1.2").await;
    let (sec, sec_csrf) = h.session_for("sam", Role::Security).await;
    let (bea, _) = h.session_for("bea", Role::Biomed).await;
    let fields = [
        ("manufacturer", "BD"),
        ("model", "Alaris 8015 PC Unit"),
        ("version", "12.1.2"),
    ];

    // Biomed reads the list but has no attach form.
    let page = html(&h.get("/sboms", &Cred::Session(bea.clone(), None)).await);
    assert!(page.contains("id=\"no-sboms\""), "{page}");
    assert!(!page.contains("multipart/form-data"), "{page}");
    let page = html(&h.get("/sboms", &Cred::Session(sec.clone(), None)).await);
    assert!(page.contains("enctype=\"multipart/form-data\""), "{page}");

    // Without the CSRF token: refused before the handler.
    let r = upload(
        &h,
        &sec,
        None,
        &fields,
        Some(("narrow.cdx.json", &sbom_bytes())),
    )
    .await;
    assert_eq!(r.status, 403);
    // Not an SBOM: the page again with the parser's words and the typed
    // values kept; nothing stored.
    let r = upload(
        &h,
        &sec,
        Some(&sec_csrf),
        &fields,
        Some((
            "notes.txt",
            b"SPDXVersion: SPDX-2.3\nthis is not a tag line\n",
        )),
    )
    .await;
    assert_eq!(r.status, 422);
    let page = html(&r);
    assert!(
        page.contains("line 2: expected &#34;Tag: value&#34;"),
        "{page}"
    );
    assert!(page.contains("value=\"Alaris 8015 PC Unit\""), "{page}");
    assert!(h.store.list_model_sboms().await.unwrap().is_empty());
    // A missing version is named.
    let r = upload(
        &h,
        &sec,
        Some(&sec_csrf),
        &fields[..2],
        Some(("narrow.cdx.json", &sbom_bytes())),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(html(&r).contains("<strong>version</strong>: the version is required"));
    // A biomed may not attach.
    let (bea2, bea2_csrf) = h.session_for("ben", Role::Biomed).await;
    let r = upload(
        &h,
        &bea2,
        Some(&bea2_csrf),
        &fields,
        Some(("narrow.cdx.json", &sbom_bytes())),
    )
    .await;
    assert_eq!(r.status, 403);

    // Attached: to the SBOM's page.
    let r = upload(
        &h,
        &sec,
        Some(&sec_csrf),
        &fields,
        Some(("narrow.cdx.json", &sbom_bytes())),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.headers["location"].to_str().unwrap().to_owned();
    assert!(to.ends_with("?done=attached"), "{to}");
    let id = h.store.list_model_sboms().await.unwrap()[0].id;
    assert_eq!(to, format!("/sboms/{id}?done=attached"));

    // The advisory (by purl) arrives, with a reference that is no link.
    let mut doc: serde_json::Value = serde_json::from_slice(&purl_advisory()).unwrap();
    doc["document"]["references"].as_array_mut().unwrap().push(
        serde_json::json!({"summary": "click me", "url": "javascript:alert(document.cookie)"}),
    );
    let imported = h
        .store
        .import_vuln_document(&serde_json::to_vec(&doc).unwrap(), &Actor::cli())
        .await
        .unwrap();
    h.store
        .rematch_after_import(imported.advisory_id.unwrap(), &Actor::cli())
        .await
        .unwrap();
    let adv = imported.advisory_id.unwrap();

    let page = html(&h.get(&to, &session(&bea)).await);
    assert!(page.contains("The SBOM was attached"), "{page}");
    assert!(
        page.contains("55 (55 with a CPE name, 55 with a purl)"),
        "{page}"
    );
    assert!(
        page.contains("<code>pkg:github/wolfssl/wolfssl</code>"),
        "{page}"
    );
    // The finding its component decided, linked to the asset, the advisory
    // and back to this SBOM.
    assert!(
        page.contains("<a href=\"/assets/PUMP-1\">PUMP-1</a>"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "advisory <a href=\"/advisories/{adv}\">EXMD-2022-0007</a>"
        )),
        "{page}"
    );
    let inherited = format!(
        "inherited from the model's SBOM: <a href=\"/sboms/{id}\">component WolfSSL 4.8.1</a>"
    );
    assert!(page.contains(&inherited), "{page}");

    // The asset's vulnerability section: the same links.
    let page = html(&h.get("/assets/PUMP-1", &session(&bea)).await);
    assert!(page.contains(&inherited), "{page}");
    assert!(
        page.contains(&format!("<a href=\"/advisories/{adv}\">EXMD-2022-0007</a>")),
        "{page}"
    );

    // The advisory page: its references as links, http(s) only.
    let page = html(&h.get(&format!("/advisories/{adv}"), &session(&bea)).await);
    assert!(
        page.contains("<a href=\"https://nvd.nist.gov/vuln/detail/CVE-2022-25638\" rel=\"noopener noreferrer\">NVD CVE-2022-25638</a>"),
        "{page}"
    );
    assert!(!page.contains("javascript:"), "{page}");
    assert!(!page.contains("click me"), "{page}");

    // /findings points to the SBOM list.
    let page = html(&h.get("/findings", &session(&bea)).await);
    assert!(page.contains("<a href=\"/sboms\">"), "{page}");

    // A pharmacist sees none of it.
    let (phil, _) = h.session_for("phil", Role::Pharmacist).await;
    assert_eq!(h.get("/sboms", &session(&phil)).await.status, 403);
    assert_eq!(h.get(&to, &session(&phil)).await.status, 403);
}
