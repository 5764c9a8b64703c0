//! The vulnerability pages: an advisory's page, an asset's vulnerability
//! section and the trend chart of open findings on /findings.

mod common;

use common::{harness, Cred};
use pumpward_core::access::Role;
use pumpward_core::inventory::{AssetSpec, LifecycleState};
use pumpward_store::{Actor, AdvisoryFilter};

fn session(c: &str) -> Cred {
    Cred::Session(c.to_owned(), None)
}

fn html(r: &common::Reply) -> String {
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        r.text()
    );
    r.text()
}

/// A Plum A+ at 13.3 matched against ICSA-15-161-01: the advisory page
/// shows its tracking, revisions, the original rule text and the affected
/// asset with its priority; the asset page lists the findings; /findings
/// draws today's count in the trend chart. Pharmacists see none of it.
#[tokio::test]
async fn advisory_asset_and_trend_pages() {
    let h = harness().await;
    let mut j = common::asset_json("PUMP-7");
    j["manufacturer"] = "Hospira".into();
    j["model"] = "Plum A+".into();
    j["firmware_version"] = "13.3".into();
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
    let m = h.store.match_vulnerabilities(&Actor::cli()).await.unwrap();
    assert_eq!(m.affected_open, 7);
    let id = h
        .store
        .list_advisories(&AdvisoryFilter::default())
        .await
        .unwrap()[0]
        .id;
    let (biomed, _) = h.session_for("bea", Role::Biomed).await;

    let page = html(&h.get(&format!("/advisories/{id}"), &session(&biomed)).await);
    assert!(page.contains("ICSA-15-161-01"), "{page}");
    assert!(page.contains("id=\"revisions\""), "{page}");
    // The rule in the advisory's words, and how it is read.
    assert!(page.contains("<q>&#60;=13.4</q>"), "{page}");
    assert!(page.contains("CVE-2015-3958"), "{page}");
    // The affected asset, linked, with its priority factors.
    assert!(
        page.contains("<a href=\"/assets/PUMP-7\">PUMP-7</a>"),
        "{page}"
    );
    assert!(
        page.contains("<details class=\"priority-factors\">"),
        "{page}"
    );
    let unknown = h.get("/advisories/999999", &session(&biomed)).await;
    assert_eq!(unknown.status, 404);

    let page = html(&h.get("/assets/PUMP-7", &session(&biomed)).await);
    assert!(page.contains("id=\"vulns-heading\""), "{page}");
    assert_eq!(page.matches("CVE-2015-").count(), 7, "{page}");

    let page = html(&h.get("/findings", &session(&biomed)).await);
    assert!(page.contains("<svg id=\"trend-chart\""), "{page}");
    assert!(page.contains(": 7 affected, 0 to review;"), "{page}");
    // Each finding links to its advisory's page.
    let link = format!(
        "<small class=\"finding-advisory\">advisory <a href=\"/advisories/{id}\">ICSA-15-161-01</a></small>"
    );
    assert_eq!(page.matches(&link).count(), 7, "{page}");
    assert!(!page.contains("Remediations that applied"), "{page}");

    // At 13.5 the findings resolve; each resolved one shows the advisory's
    // remediations that applied to it.
    let a = h.store.asset("PUMP-7").await.unwrap();
    let mut j = common::asset_json("PUMP-7");
    j["manufacturer"] = "Hospira".into();
    j["model"] = "Plum A+".into();
    j["firmware_version"] = "13.5".into();
    h.store
        .update_asset(
            &AssetSpec::validate(&serde_json::from_value(j).unwrap()).unwrap(),
            a.version,
            &Actor::cli(),
        )
        .await
        .unwrap();
    let page = html(&h.get("/findings?state=resolved", &session(&biomed)).await);
    assert_eq!(
        page.matches("Remediations that applied").count(),
        7,
        "{page}"
    );
    assert!(
        page.contains("<code>mitigation</code>: Hospira is communicating with customers"),
        "{page}"
    );
    assert_eq!(page.matches(&link).count(), 7, "{page}");

    let (pharmacist, _) = h.session_for("phil", Role::Pharmacist).await;
    assert_eq!(
        h.get(&format!("/advisories/{id}"), &session(&pharmacist))
            .await
            .status,
        403
    );
}
