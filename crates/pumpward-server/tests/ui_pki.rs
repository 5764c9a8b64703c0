//! The web UI of the device PKI and the fleet: the fleet view, the
//! certificate list and detail, revocation through the form, and one-time
//! enrollment codes on the asset page (shown once, with a QR code).

mod common;

use common::{harness, Cred, Harness};
use pumpward_core::access::Role;
use pumpward_core::inventory::{AssetSpec, LifecycleState};
use pumpward_server::auth::token_hash;
use pumpward_server::pki::normalize_enrollment_code;
use pumpward_store::{Actor, AuditFilter};
use time::OffsetDateTime;

async fn asset(h: &Harness, id: &str, care_area: &str, state: LifecycleState) {
    let mut j = common::asset_json(id);
    j["care_area"] = care_area.into();
    h.store
        .create_asset(
            &AssetSpec::validate(&serde_json::from_value(j).unwrap()).unwrap(),
            Some(state),
            &Actor::cli(),
        )
        .await
        .unwrap();
}

/// Issues a real device certificate for an asset through the CA; its serial.
async fn issue(h: &Harness, id: &str) -> String {
    let (_key, csr) = pumpward_pki::make_device_csr(
        pumpward_pki::KeyAlgorithm::default(),
        id,
        &format!("SN-{id}"),
    )
    .unwrap();
    h.state
        .pki
        .as_ref()
        .unwrap()
        .issue_for_asset(id, &csr, &Actor::cli())
        .await
        .unwrap()
        .serial_hex
}

/// Two pumps, the first with a certificate.
async fn fleet(h: &Harness) -> String {
    asset(h, "PUMP-1", "Adult ICU", LifecycleState::InService).await;
    asset(h, "PUMP-2", "Oncology", LifecycleState::Provisioned).await;
    issue(h, "PUMP-1").await
}

fn session(c: &str) -> Cred {
    Cred::Session(c.to_owned(), None)
}

/// The text of the element with this id (up to its first `<`).
fn by_id(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[start..];
    let open = rest.find('>')? + 1;
    let end = rest[open..].find('<')?;
    Some(rest[open..open + end].trim().to_owned())
}

fn html(r: &common::Reply) -> String {
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        r.headers
    );
    r.text()
}

#[tokio::test]
async fn fleet_view_lists_pumps_with_connection_and_certificate_expiry() {
    let h = harness().await;
    let serial = fleet(&h).await;
    let (auditor, _) = h.session_for("aud", Role::Auditor).await;
    let r = h.get("/fleet", &session(&auditor)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page = html(&r);
    assert!(page.contains(r#"<a href="/fleet" aria-current="page">Fleet</a>"#));
    for (id, want) in [
        ("count-connected", "0"),
        ("count-disconnected", "2"),
        ("count-expiring", "0"),
        ("count-not-enrolled", "1"),
    ] {
        assert_eq!(by_id(&page, id).as_deref(), Some(want), "{id}");
    }
    assert!(page.contains(r#"<a href="/assets/PUMP-1">PUMP-1</a>"#));
    assert!(page.contains(&format!(r#"<a href="/certificates/{serial}""#)));
    assert!(
        page.contains("valid, expires in 36"),
        "a one-year certificate"
    );
    assert!(page.contains("no certificate"), "PUMP-2 is not enrolled");
    assert!(page.contains("not connected"));
    assert!(page.contains("15.11"), "firmware");

    // Filters: care area, connection, expiry.
    let p = h
        .get("/fleet?care_area=Oncology", &session(&auditor))
        .await
        .text();
    assert!(p.contains("PUMP-2") && !p.contains(">PUMP-1<"), "{p}");
    let p = h
        .get("/fleet?connection=connected", &session(&auditor))
        .await
        .text();
    assert!(p.contains(r#"id="no-pumps""#), "nothing is connected");
    let p = h
        .get("/fleet?connection=disconnected", &session(&auditor))
        .await
        .text();
    assert!(p.contains(">PUMP-1<") && p.contains(">PUMP-2<"));
    let p = h.get("/fleet?expiring=30", &session(&auditor)).await.text();
    assert!(p.contains(r#"id="no-pumps""#));
    let p = h
        .get("/fleet?expiring=400", &session(&auditor))
        .await
        .text();
    assert!(p.contains(">PUMP-1<") && !p.contains(">PUMP-2<"));
    assert_eq!(
        h.get("/fleet?connection=maybe", &session(&auditor))
            .await
            .status,
        400
    );
    assert_eq!(
        h.get("/fleet?expiring=soon", &session(&auditor))
            .await
            .status,
        400
    );

    // Cursor paging keeps the filters.
    for i in 3..=5 {
        asset(
            &h,
            &format!("PUMP-{i}"),
            "Oncology",
            LifecycleState::InService,
        )
        .await;
    }
    let p = h
        .get("/fleet?care_area=Oncology&limit=2", &session(&auditor))
        .await
        .text();
    assert!(p.contains(">PUMP-2<") && p.contains(">PUMP-3<") && !p.contains(">PUMP-4<"));
    let next = by_attr_href(&p, "next-page").expect("a next page");
    let next = next.replace("&#38;", "&");
    assert_eq!(next, "/fleet?care_area=Oncology&limit=2&cursor=PUMP-3");
    let p = h.get(&next, &session(&auditor)).await.text();
    assert!(p.contains(">PUMP-4<") && p.contains(">PUMP-5<") && !p.contains(">PUMP-3<"));
    assert!(by_attr_href(&p, "next-page").is_none());

    // Roles without pki.read get the 403 page and no Fleet link.
    let (clinician, _) = h.session_for("cli", Role::Clinician).await;
    assert_eq!(h.get("/fleet", &session(&clinician)).await.status, 403);
    let dash = h.get("/", &session(&clinician)).await.text();
    assert!(!dash.contains(r#"href="/fleet""#));
}

/// The `href` of the element with this id.
fn by_attr_href(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..at + html[at..].find('>')?];
    let h = tag.find("href=\"")? + 6;
    Some(tag[h..h + tag[h..].find('"')?].to_owned())
}

#[tokio::test]
async fn certificate_list_and_detail() {
    let h = harness().await;
    let serial = fleet(&h).await;
    let (security, _) = h.session_for("sec", Role::Security).await;
    let cred = session(&security);
    let list = |q: &'static str| {
        let cred = cred.clone();
        let h = &h;
        async move {
            let r = h.get(&format!("/certificates{q}"), &cred).await;
            assert_eq!(r.status, 200, "{q}: {}", r.text());
            r.text()
        }
    };
    let all = list("").await;
    assert!(all.contains(&serial));
    assert!(list("?asset_id=PUMP-1").await.contains(&serial));
    assert!(!list("?asset_id=PUMP-2").await.contains(&serial));
    assert!(!list("?kind=server").await.contains(&serial));
    assert!(list("?kind=device&status=unrevoked")
        .await
        .contains(&serial));
    assert!(!list("?status=revoked").await.contains(&serial));
    assert!(list("?expiring_days=400").await.contains(&serial));
    assert!(!list("?expiring_days=30").await.contains(&serial));
    assert_eq!(
        h.get("/certificates?expiring_days=x", &cred).await.status,
        400
    );
    assert_eq!(h.get("/certificates?kind=root", &cred).await.status, 400);

    let r = h.get(&format!("/certificates/{serial}"), &cred).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page = html(&r);
    let rec = h.store.certificate(&serial).await.unwrap();
    assert!(page.contains("-----BEGIN CERTIFICATE-----"));
    assert_eq!(by_id(&page, "cert-fingerprint"), Some(rec.fingerprint));
    assert!(page.contains(r#"<a href="/assets/PUMP-1" id="cert-asset">PUMP-1</a>"#));
    assert!(
        page.contains("CN=Pumpward Issuing CA"),
        "the issuer, read from the PEM"
    );
    assert!(page.contains(r#"id="revoke-form""#), "security may revoke");
    // The auditor reads but may not revoke.
    let (auditor, _) = h.session_for("aud", Role::Auditor).await;
    let page = h
        .get(&format!("/certificates/{serial}"), &session(&auditor))
        .await
        .text();
    assert!(!page.contains(r#"id="revoke-form""#));
    // Unknown serials are an HTML 404.
    let r = h.get("/certificates/00ff", &cred).await;
    assert_eq!(r.status, 404);
    html(&r);
}

#[tokio::test]
async fn revoking_through_the_form_needs_csrf_a_reason_and_confirmation() {
    let h = harness().await;
    let serial = fleet(&h).await;
    let (biomed, csrf) = h.session_for("bea", Role::Biomed).await;
    let path = format!("/certificates/{serial}/revoke");
    let page = h
        .get(&format!("/certificates/{serial}"), &session(&biomed))
        .await
        .text();
    assert!(page.contains(&format!(r#"name="csrf" value="{csrf}""#)));
    assert!(page.contains(r#"<option value="key-compromise">"#));
    assert!(!page.contains(r#"value="remove-from-crl""#));

    // Without the CSRF token: refused before anything happens.
    let r = h
        .form(
            &path,
            &biomed,
            &[("reason", "key-compromise"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(r.status, 403);
    // Without a reason, or without the confirmation: the page again, with the error.
    let r = h
        .form(&path, &biomed, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Choose the reason"));
    let r = h
        .form(
            &path,
            &biomed,
            &[("csrf", &csrf), ("reason", "key-compromise")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Tick the confirmation"));
    assert!(r
        .text()
        .contains(r#"<option value="key-compromise" selected>"#));
    let r = h
        .form(
            &path,
            &biomed,
            &[
                ("csrf", &csrf),
                ("reason", "remove-from-crl"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(h
        .store
        .certificate(&serial)
        .await
        .unwrap()
        .revoked_at
        .is_none());
    let crls_before = h.store.next_crl_number().await.unwrap();

    let r = h
        .form(
            &path,
            &biomed,
            &[
                ("csrf", &csrf),
                ("reason", "key-compromise"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let to = r.headers["location"].to_str().unwrap().to_owned();
    assert_eq!(
        to,
        format!("/certificates/{serial}?done=certificate-revoked")
    );
    let rec = h.store.certificate(&serial).await.unwrap();
    assert_eq!(rec.revocation_reason.as_deref(), Some("key-compromise"));
    assert_eq!(rec.revoked_by.as_deref(), Some("user:bea"));
    assert!(
        h.store.next_crl_number().await.unwrap() > crls_before,
        "a new CRL was published"
    );

    let page = h.get(&to, &session(&biomed)).await.text();
    assert_eq!(
        by_id(&page, "revocation-reason").as_deref(),
        Some("key-compromise")
    );
    assert!(page.contains("The certificate was revoked."));
    assert!(page.contains("revoked (key-compromise)"));
    assert!(
        !page.contains(r#"id="revoke-form""#),
        "nothing left to revoke"
    );
    // The fleet no longer counts PUMP-1 as enrolled.
    let fleet = h.get("/fleet", &session(&biomed)).await.text();
    assert_eq!(by_id(&fleet, "count-not-enrolled").as_deref(), Some("2"));

    // Revocation is final: a second one is refused in the page.
    let r = h
        .form(
            &path,
            &biomed,
            &[
                ("csrf", &csrf),
                ("reason", "superseded"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(r.text().contains("already revoked"));
    let audit = h
        .store
        .audit_list(&AuditFilter {
            action: Some("pki.certificate.revoke".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    // Roles without pki.revoke are refused.
    let (auditor, acsrf) = h.session_for("aud", Role::Auditor).await;
    let r = h
        .form(
            &path,
            &auditor,
            &[
                ("csrf", &acsrf),
                ("reason", "superseded"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn enrollment_code_is_shown_once_with_a_qr_code_and_never_audited() {
    let h = harness().await;
    let serial = fleet(&h).await;
    let (biomed, csrf) = h.session_for("bea", Role::Biomed).await;

    // The asset page lists the pump's certificates and offers the form.
    let page = h.get("/assets/PUMP-1", &session(&biomed)).await.text();
    assert!(page.contains(&format!(r#"<a href="/certificates/{serial}">"#)));
    assert!(page.contains(r#"href="/certificates?asset_id=PUMP-1""#));
    assert!(page.contains(r#"action="/assets/PUMP-1/enrollment-code""#));
    let page2 = h.get("/assets/PUMP-2", &session(&biomed)).await.text();
    assert!(page2.contains(r#"id="no-asset-certificates""#));

    let r = h
        .form(
            "/assets/PUMP-1/enrollment-code",
            &biomed,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["cache-control"], "no-store");
    let page = html(&r);
    assert!(page.contains("<svg"), "an inline QR code");
    assert!(!page.contains("<?xml"));
    assert!(!page.contains("<img"));
    let code = by_id(&page, "enrollment-code").expect("the code");
    assert_eq!(code.len(), 24, "{code}");
    let groups: Vec<&str> = code.split('-').collect();
    for g in &groups {
        assert!(page.contains(&format!(r#"<span class="code-group">{g}</span>"#)));
    }
    let est = by_id(&page, "est-url").unwrap();
    assert!(
        est.starts_with("https://") && est.ends_with("/.well-known/est/"),
        "{est}"
    );
    assert_eq!(
        by_id(&page, "qr-payload").unwrap(),
        format!("PUMPWARD-ENROLL:v1:PUMP-1:{code}:{est}")
    );
    // The store accepts it, as typed on a pump's keypad.
    let typed = code.to_lowercase().replace('-', " ");
    let usable = h
        .store
        .usable_enrollment_code(
            &token_hash(&normalize_enrollment_code(&typed)),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap()
        .expect("a usable code");
    assert_eq!(usable.asset_id, "PUMP-1");
    assert_eq!(usable.device_serial, "SN-PUMP-1");
    // The code is nowhere in the audit trail (only that one was made).
    let audit = h
        .store
        .audit_list(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(audit
        .iter()
        .any(|a| a.entry.action == "pki.enrollment_code.create"
            && a.entry.object.as_deref() == Some("asset:PUMP-1")));
    let trail = format!("{audit:?}");
    for needle in [code.clone(), code.replace('-', ""), code.to_lowercase()] {
        assert!(!trail.contains(&needle), "{needle} is in the audit trail");
    }

    // Without the CSRF token: refused.
    let r = h.form("/assets/PUMP-1/enrollment-code", &biomed, &[]).await;
    assert_eq!(r.status, 403);
    // An unknown asset: 404; a decommissioned one: the asset page with the reason.
    let r = h
        .form("/assets/NOPE/enrollment-code", &biomed, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 404);
    asset(&h, "PUMP-9", "Oncology", LifecycleState::Decommissioned).await;
    let page = h.get("/assets/PUMP-9", &session(&biomed)).await.text();
    assert!(page.contains(r#"id="enroll-unavailable""#));
    let r = h
        .form(
            "/assets/PUMP-9/enrollment-code",
            &biomed,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("decommissioned"));

    // Security may read certificates but not enroll: no form, and a 403.
    let (security, scsrf) = h.session_for("sec", Role::Security).await;
    let page = h.get("/assets/PUMP-1", &session(&security)).await.text();
    assert!(page.contains(r#"id="asset-certificates""#));
    assert!(!page.contains("enrollment-code"));
    let r = h
        .form(
            "/assets/PUMP-1/enrollment-code",
            &security,
            &[("csrf", &scsrf)],
        )
        .await;
    assert_eq!(r.status, 403);
    // A pharmacist sees no certificates on the asset page.
    let (pharm, _) = h.session_for("phil", Role::Pharmacist).await;
    let page = h.get("/assets/PUMP-1", &session(&pharm)).await.text();
    assert!(!page.contains("Device certificates"));
}

#[tokio::test]
async fn without_a_ca_the_pages_answer_503() {
    let h = harness().await;
    let serial = fleet(&h).await;
    let h = h.without_pki();
    let (admin, csrf) = h.session_for("ada", Role::Admin).await;
    for path in [
        "/fleet".to_owned(),
        "/certificates".to_owned(),
        format!("/certificates/{serial}"),
    ] {
        let r = h.get(&path, &session(&admin)).await;
        assert_eq!(r.status, 503, "{path}");
        assert!(html(&r).contains("Certificate authority unavailable"));
    }
    for path in [
        format!("/certificates/{serial}/revoke"),
        "/assets/PUMP-1/enrollment-code".to_owned(),
    ] {
        let r = h
            .form(
                &path,
                &admin,
                &[
                    ("csrf", &csrf),
                    ("reason", "superseded"),
                    ("confirm", "yes"),
                ],
            )
            .await;
        assert_eq!(r.status, 503, "{path}");
    }
    assert!(h
        .store
        .certificate(&serial)
        .await
        .unwrap()
        .revoked_at
        .is_none());
    // The asset page still works and says why there is no form.
    let r = h.get("/assets/PUMP-1", &session(&admin)).await;
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains(r#"id="enroll-unavailable""#));
    assert!(page.contains("without its certificate authority"));
}

/// The expiry watch raises one finding per certificate that needs action,
/// refreshes it on later runs without new audit records, and resolves it
/// when the pump renews its certificate or the certificate is revoked; the
/// findings page and API show them.
#[tokio::test]
async fn expiry_watch_raises_findings_once_and_resolves_them() {
    // A warning period longer than a device certificate's year: every
    // certificate issued here needs action.
    let h = common::harness_with_pki(Default::default(), |s| {
        s.expiry_warning = time::Duration::days(400)
    })
    .await;
    asset(&h, "PUMP-1", "Adult ICU", LifecycleState::InService).await;
    asset(&h, "PUMP-2", "Oncology", LifecycleState::InService).await;
    let first = issue(&h, "PUMP-1").await;
    let second = issue(&h, "PUMP-2").await;
    let ca = h.state.pki.as_ref().unwrap();

    let open = ca.watch_expiry().await.unwrap();
    let mut subjects: Vec<_> = open.iter().map(|f| f.subject.clone()).collect();
    subjects.sort();
    let mut want = vec![
        format!("certificate:{first}"),
        format!("certificate:{second}"),
    ];
    want.sort();
    assert_eq!(subjects, want);
    assert!(open
        .iter()
        .all(|f| f.severity == pumpward_store::Severity::Medium));
    assert!(open[0].title.contains("expires in 36"), "{}", open[0].title);
    let again = ca.watch_expiry().await.unwrap();
    assert_eq!(
        again.iter().map(|f| f.id).collect::<Vec<_>>(),
        open.iter().map(|f| f.id).collect::<Vec<_>>()
    );
    let raised = h
        .store
        .audit_list(&AuditFilter {
            action: Some("finding.raise".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(raised.len(), 2, "a second run raises nothing new");

    // PUMP-1 renews; PUMP-2's certificate is revoked.
    let renewed = issue(&h, "PUMP-1").await;
    ca.revoke(
        &second,
        pumpward_pki::RevocationReason::KeyCompromise,
        &Actor::cli(),
    )
    .await
    .unwrap();
    let open = ca.watch_expiry().await.unwrap();
    assert_eq!(
        open.iter().map(|f| f.subject.clone()).collect::<Vec<_>>(),
        vec![format!("certificate:{renewed}")],
        "only the renewed certificate still needs action (it is within 400 days too)"
    );
    let (resolved, _) = h
        .store
        .list_findings(&pumpward_store::FindingFilter {
            open: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    let why = |serial: &str| {
        resolved
            .iter()
            .find(|f| f.subject == format!("certificate:{serial}"))
            .and_then(|f| f.resolution.clone())
            .unwrap_or_default()
    };
    assert!(
        why(&first).starts_with(&format!("renewed: certificate {renewed}")),
        "{}",
        why(&first)
    );
    assert_eq!(why(&second), "certificate revoked");

    // The page and the API, for a biomedical engineer; not for a pharmacist.
    let (biomed, _) = h.session_for("bea", Role::Biomed).await;
    let page = html(&h.get("/findings", &session(&biomed)).await);
    assert!(
        page.contains("Device certificate of PUMP-1 expires in"),
        "{page}"
    );
    assert!(
        !page.contains("PUMP-2"),
        "resolved findings are not listed by default"
    );
    let page = html(&h.get("/findings?state=resolved", &session(&biomed)).await);
    assert!(page.contains("resolved: certificate revoked"), "{page}");
    let api = h
        .get(
            "/api/v1/findings?state=open&asset_id=PUMP-1",
            &session(&biomed),
        )
        .await
        .json();
    assert_eq!(api["items"].as_array().unwrap().len(), 1, "{api}");
    assert_eq!(api["items"][0]["evidence"]["serial"], renewed.as_str());
    let bad = h
        .get("/api/v1/findings?state=lost", &session(&biomed))
        .await;
    assert_eq!(bad.status.as_u16(), 400);
    let (pharmacist, _) = h.session_for("phil", Role::Pharmacist).await;
    assert_eq!(
        h.get("/findings", &session(&pharmacist))
            .await
            .status
            .as_u16(),
        403
    );
}

/// A vulnerability finding on the findings page shows its priority, the
/// factors that made it, and where its remediation stands.
#[tokio::test]
async fn findings_page_shows_the_priority_and_its_factors() {
    let h = harness().await;
    let mut j = common::asset_json("PUMP-7");
    j["manufacturer"] = "Hospira".into();
    j["model"] = "Plum A+".into();
    j["firmware_version"] = "13.3".into();
    j["care_area"] = "NICU".into();
    h.store
        .create_asset(
            &AssetSpec::validate(&serde_json::from_value(j).unwrap()).unwrap(),
            Some(LifecycleState::InService),
            &Actor::cli(),
        )
        .await
        .unwrap();
    let doc = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-vuln/tests/data/csaf/icsa-15-161-01.json"
    ))
    .unwrap();
    h.store
        .import_vuln_document(&doc, &Actor::cli())
        .await
        .unwrap();
    h.store.match_vulnerabilities(&Actor::cli()).await.unwrap();
    let (biomed, _) = h.session_for("bea", Role::Biomed).await;
    let page = html(&h.get("/findings", &session(&biomed)).await);
    assert!(page.contains("CVE-2015-3958 on PUMP-7"), "{page}");
    assert!(page.contains("remediation: open"), "{page}");
    assert!(
        page.contains("<details class=\"priority-factors\">"),
        "{page}"
    );
    assert!(page.contains("CVSS v2.0 base 7.8"), "{page}");
    assert!(
        page.contains("<code>care_area</code></th><td>neonatal ICU</td><td class=\"num\">8.0</td>"),
        "{page}"
    );
}

/// The alerts page lists open alerts with their rule, CSF category and
/// evidence; filters narrow it; a bad filter is a 400 page; pharmacists do
/// not see it.
#[tokio::test]
async fn alerts_page_lists_and_filters() {
    use pumpward_detect::event::Event;
    use pumpward_detect::{Context, DetectionConfig, Engine};
    let h = harness().await;
    let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    let mut engine = Engine::new(DetectionConfig::default());
    let mut alerts = Vec::new();
    for i in 0..6 {
        let at = t0 + time::Duration::seconds(i);
        let ev = Event::auth_failure(
            format!("gw:{i}"),
            at,
            "10.9.9.9".parse().unwrap(),
            "unknown_ca".into(),
        );
        engine.process(&Context::default(), i as u64 + 1, &ev, &mut alerts);
    }
    assert_eq!(alerts.len(), 1);
    h.store.record_alerts(&alerts).await.unwrap();

    let (biomed, _) = h.session_for("bea", Role::Biomed).await;
    let page = html(&h.get("/alerts", &session(&biomed)).await);
    assert!(page.contains("<code>auth_failure_burst</code>"), "{page}");
    assert!(page.contains("10.9.9.9"), "{page}");
    assert!(page.contains("DE."), "the CSF category is shown: {page}");
    assert!(page.contains("href=\"/alerts\""), "the nav links the page");
    let page = html(
        &h.get("/alerts?state=false_positive", &session(&biomed))
            .await,
    );
    assert!(page.contains("id=\"no-alerts\""), "{page}");
    let page = html(
        &h.get(
            "/alerts?severity=low&rule=auth_failure_burst",
            &session(&biomed),
        )
        .await,
    );
    let is_low = alerts[0].severity.as_str() == "low";
    assert_eq!(page.contains("id=\"no-alerts\""), !is_low, "{page}");
    // The dashboard's tile counts it under its severity and links the list.
    let sev = alerts[0].severity.as_str();
    let dash = html(&h.get("/", &session(&biomed)).await);
    let link = format!("severity={sev}\">{sev}</a></th>");
    let at = dash
        .find(&link)
        .unwrap_or_else(|| panic!("{link} not in {dash}"));
    let count = dash[at + link.len()..].trim_start();
    assert!(count.starts_with("<td class=\"num\">1</td>"), "{count}");
    let bad = h.get("/alerts?severity=urgent", &session(&biomed)).await;
    assert_eq!(bad.status.as_u16(), 400);
    let (pharmacist, _) = h.session_for("phil", Role::Pharmacist).await;
    assert_eq!(
        h.get("/alerts", &session(&pharmacist))
            .await
            .status
            .as_u16(),
        403
    );
}
