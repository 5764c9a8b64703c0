//! The drug-library authoring and review pages: a pharmacist uploads a
//! draft and submits it, cannot approve it herself; a second pharmacist
//! reads the diff against the published version and approves with her
//! password (a wrong one is refused and changes nothing); publication,
//! rejection with a comment, rollback with confirmation; a nurse manager
//! reads but cannot author, review or publish.

mod common;

use common::{harness, Cred, Harness, Reply};
use pumpward_core::access::Role;
use pumpward_druglib::json::to_canonical_json;
use pumpward_druglib::{sample_library, Library};
use pumpward_store::RevisionState;

const PASSWORD: &str = "correct horse battery staple";
const BOUNDARY: &str = "pumpward-test-boundary-7d1f";

/// A browser session: the cookie, and the CSRF token its forms carry.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn browser(h: &Harness, name: &str, role: Role) -> Browser {
    let (cookie, csrf) = h.session_for(name, role).await;
    Browser { cookie, csrf }
}

impl Browser {
    fn cred(&self) -> Cred {
        Cred::Session(self.cookie.clone(), None)
    }

    async fn get(&self, h: &Harness, path: &str) -> Reply {
        h.get(path, &self.cred()).await
    }

    /// Posts a form as the page does (the CSRF token in its field).
    async fn post(&self, h: &Harness, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        h.form(path, &self.cookie, &all).await
    }

    /// Uploads a file through the draft form (multipart, as a browser
    /// sends it); `csrf: false` leaves the token out.
    async fn upload(&self, h: &Harness, file_name: &str, bytes: &[u8], csrf: bool) -> Reply {
        let mut body = Vec::new();
        if csrf {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{}\r\n",
                    self.csrf
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        h.call(
            "POST",
            "/libraries",
            &self.cred(),
            Some((&format!("multipart/form-data; boundary={BOUNDARY}"), body)),
        )
        .await
    }
}

/// Text as the templates escape it.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn location(r: &Reply) -> String {
    assert_eq!(r.status, 303, "{}", r.text());
    r.headers["location"].to_str().unwrap().to_owned()
}

/// The revision number in a `/libraries/{id}/revisions/{rev}?…` location.
fn revision_in(loc: &str) -> i64 {
    let rest = loc.split("/revisions/").nth(1).unwrap();
    rest.split('?').next().unwrap().parse().unwrap()
}

async fn state_of(h: &Harness, rev: i64) -> RevisionState {
    h.store.library_revision(rev).await.unwrap().state
}

fn rev_path(lib: &str, rev: i64, action: &str) -> String {
    format!("/libraries/{lib}/revisions/{rev}/{action}")
}

/// The sample library with two reviewable changes in its first care area:
/// its last entry removed and its first entry's high-alert flag flipped.
fn changed(lib: &Library) -> (Library, String, String) {
    let mut next = lib.clone();
    let area = &mut next.care_areas[0];
    let removed = area.entries.pop().unwrap().label();
    area.entries[0].high_alert = !area.entries[0].high_alert;
    let flipped = area.entries[0].label();
    (next, removed, flipped)
}

/// Ann uploads `lib` and submits it; the revision number.
async fn upload_and_submit(h: &Harness, ann: &Browser, lib: &Library) -> i64 {
    let loc = location(
        &ann.upload(h, "library.json", &to_canonical_json(lib), true)
            .await,
    );
    assert!(loc.ends_with("?done=draft"), "{loc}");
    let rev = revision_in(&loc);
    let r = ann.post(h, &rev_path(&lib.id, rev, "submit"), &[]).await;
    assert_eq!(
        location(&r),
        format!("/libraries/{}/revisions/{rev}?done=submitted", lib.id)
    );
    assert_eq!(state_of(h, rev).await, RevisionState::Submitted);
    rev
}

#[tokio::test]
async fn draft_review_approve_publish_reject_and_rollback_through_the_pages() {
    let h = harness().await;
    let ann = browser(&h, "ann", Role::Pharmacist).await;
    let bob = browser(&h, "bob", Role::Pharmacist).await;
    let lib = sample_library();

    // The list page: empty, with the upload form; in the navigation.
    let page = ann.get(&h, "/libraries").await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(text.contains(r#"<a href="/libraries" aria-current="page">Libraries</a>"#));
    assert!(text.contains(r#"id="no-libraries""#));
    assert!(text.contains(r#"enctype="multipart/form-data""#));

    // Version 1: draft, submit; ann cannot approve her own revision.
    let rev1 = upload_and_submit(&h, &ann, &lib).await;
    let own = ann
        .get(&h, &format!("/libraries/{}/revisions/{rev1}", lib.id))
        .await
        .text();
    assert!(
        own.contains(r#"id="own-revision""#),
        "the author is told why she has no form"
    );
    assert!(!own.contains(r#"id="approve""#));
    let r = ann
        .post(
            &h,
            &rev_path(&lib.id, rev1, "approve"),
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("a second pharmacist must review it"),
        "{}",
        r.text()
    );
    assert_eq!(state_of(&h, rev1).await, RevisionState::Submitted);

    // Bob approves with his password; ann publishes.
    let r = bob
        .post(
            &h,
            &rev_path(&lib.id, rev1, "approve"),
            &[("password", PASSWORD)],
        )
        .await;
    assert!(location(&r).ends_with("?done=approved"));
    let r = ann.post(&h, &rev_path(&lib.id, rev1, "publish"), &[]).await;
    assert!(location(&r).ends_with("?done=published"));
    let published = h.store.library_revision(rev1).await.unwrap();
    assert_eq!(published.version, Some(1));

    // Version 2: a change, reviewed with its diff against version 1.
    let (next, removed, flipped) = changed(&lib);
    let rev2 = upload_and_submit(&h, &ann, &next).await;
    let review = bob
        .get(&h, &format!("/libraries/{}/revisions/{rev2}", lib.id))
        .await;
    assert_eq!(review.status, 200);
    let review = review.text();
    assert!(
        review.contains("Changes against published version 1"),
        "{review}"
    );
    let area = &lib.care_areas[0].id;
    assert!(
        review.contains(&format!("<h3>Care area {area}</h3>")),
        "{review}"
    );
    assert!(
        review.contains(&format!("<li>− {}</li>", esc(&removed))),
        "{review}"
    );
    assert!(
        review.contains(&format!(
            r#"rowspan="1">{}</th><td>high_alert</td>"#,
            esc(&flipped)
        )),
        "{review}"
    );
    assert!(review.contains(r#"id="approve""#) && review.contains(r#"id="reject""#));

    // A wrong password is refused, audited, and changes nothing.
    let r = bob
        .post(
            &h,
            &rev_path(&lib.id, rev2, "approve"),
            &[("password", "wrong password")],
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.text().contains("Re-authentication failed"),
        "{}",
        r.text()
    );
    assert_eq!(state_of(&h, rev2).await, RevisionState::Submitted);
    let r = bob
        .post(
            &h,
            &rev_path(&lib.id, rev2, "approve"),
            &[("password", PASSWORD)],
        )
        .await;
    assert!(location(&r).ends_with("?done=approved"));
    let r = bob.post(&h, &rev_path(&lib.id, rev2, "publish"), &[]).await;
    assert!(location(&r).ends_with("?done=published"));
    assert_eq!(
        h.store.library_revision(rev2).await.unwrap().version,
        Some(2)
    );

    // A third draft is rejected: not without a comment, then with one.
    let rev3 = upload_and_submit(&h, &ann, &lib).await;
    let r = bob
        .post(&h, &rev_path(&lib.id, rev3, "reject"), &[("comment", "  ")])
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(state_of(&h, rev3).await, RevisionState::Submitted);
    let r = bob
        .post(
            &h,
            &rev_path(&lib.id, rev3, "reject"),
            &[("comment", "Keep the heparin change <b>for now</b>")],
        )
        .await;
    assert!(location(&r).ends_with("?done=rejected"));
    assert_eq!(state_of(&h, rev3).await, RevisionState::Rejected);

    // The library page: every revision with its state, publication and
    // digest; the reviewer's comment escaped.
    let page = ann.get(&h, &format!("/libraries/{}", lib.id)).await.text();
    assert!(
        page.contains(r#"<strong id="current-version">2</strong>"#),
        "{page}"
    );
    // The comment is shown, escaped (whatever entity form the template
    // engine uses): never as markup.
    assert!(page.contains("Keep the heparin change"), "{page}");
    assert!(!page.contains("<b>for now</b>"), "{page}");
    assert!(
        page.contains("<strong>version 1</strong>") && page.contains("<strong>version 2</strong>")
    );
    assert!(page.contains(&format!("sha256:{}", published.sha256)));
    assert!(page.contains(&format!(
        "signed by {}",
        published.published_by.clone().unwrap()
    )));
    assert!(page.contains(&format!(
        "/api/v1/libraries/{}/revisions/{rev1}/export?format=csv",
        lib.id
    )));

    // The export link works with the browser session.
    let csv = ann
        .get(
            &h,
            &format!(
                "/api/v1/libraries/{}/revisions/{rev1}/export?format=csv",
                lib.id
            ),
        )
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.text().lines().count() > 40);

    // Rollback: refused without the confirmation, then version 3 = 1.
    let r = ann
        .post(
            &h,
            &format!("/libraries/{}/rollback", lib.id),
            &[("version", "1")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("Tick the confirmation"));
    assert_eq!(
        h.store.list_libraries().await.unwrap()[0].published_version,
        Some(2)
    );
    let r = ann
        .post(
            &h,
            &format!("/libraries/{}/rollback", lib.id),
            &[("version", "1"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(location(&r), format!("/libraries/{}?done=rollback", lib.id));
    let v3 = h.store.library_version(&lib.id, 3).await.unwrap();
    assert_eq!(v3.rollback_of, Some(1));
    let page = ann
        .get(&h, &format!("/libraries/{}?done=rollback", lib.id))
        .await
        .text();
    assert!(page.contains("(rollback to version 1)"));
    assert!(page.contains("The older version was signed and published again"));

    // The list shows the current version and the draft to start from.
    let list = ann.get(&h, "/libraries").await.text();
    assert!(list.contains("Start from version 3"), "{list}");
    let r = ann
        .post(&h, &format!("/libraries/{}/drafts", lib.id), &[])
        .await;
    let rev = revision_in(&location(&r));
    let copy = h.store.library_revision(rev).await.unwrap();
    assert_eq!(copy.state, RevisionState::Draft);
    assert_eq!(copy.author, "ann");
}

#[tokio::test]
async fn a_refused_file_shows_its_line_numbered_problems_and_stores_nothing() {
    let h = harness().await;
    let ann = browser(&h, "ann", Role::Pharmacist).await;
    let lib = sample_library();
    let csv = String::from_utf8(pumpward_druglib::csv::write_library_csv(&lib)).unwrap();
    // Line 3 gets an unknown dosing unit.
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    lines[2] = lines[2].replacen("mcg/kg/min", "furlongs/fortnight", 1);
    lines[2] = lines[2].replacen("units/kg/h", "furlongs/fortnight", 1);
    lines[2] = lines[2].replacen("mL/h", "furlongs/fortnight", 1);
    lines[2] = lines[2].replacen("mg/h", "furlongs/fortnight", 1);
    lines[2] = lines[2].replacen("mcg/min", "furlongs/fortnight", 1);
    assert!(lines[2].contains("furlongs"), "{}", lines[2]);
    let bad = lines.join("\n");
    let r = ann.upload(&h, "library.csv", bad.as_bytes(), true).await;
    assert_eq!(r.status, 422, "{}", r.text());
    let page = r.text();
    assert!(page.contains(r#"id="refused-problems""#), "{page}");
    assert!(page.contains("<strong>line 3"), "{page}");
    assert!(h.store.list_libraries().await.unwrap().is_empty());

    // Broken JSON: its line and column.
    let r = ann
        .upload(&h, "library.json", b"{\n  \"id\": \n", true)
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("<strong>line "), "{}", r.text());

    // Neither .json nor .csv; no file at all.
    let r = ann.upload(&h, "library.txt", csv.as_bytes(), true).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("ends in neither .json nor .csv"));
    let r = ann.upload(&h, "", b"", true).await;
    assert_eq!(r.status, 422);
    assert!(
        r.text().contains("choose a library file") || r.text().contains("Choose a library file")
    );

    // Without the CSRF token the upload is refused before it is read.
    let r = ann.upload(&h, "library.csv", csv.as_bytes(), false).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(h.store.list_libraries().await.unwrap().is_empty());

    // The valid CSV is accepted.
    let r = ann.upload(&h, "library.csv", csv.as_bytes(), true).await;
    assert!(location(&r).ends_with("?done=draft"));
    assert_eq!(h.store.list_libraries().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_nurse_manager_reads_but_cannot_author_review_or_publish() {
    let h = harness().await;
    let ann = browser(&h, "ann", Role::Pharmacist).await;
    let nurse = browser(&h, "nora", Role::Clinician).await;
    let vendor = browser(&h, "vic", Role::Vendor).await;
    let lib = sample_library();
    let rev = upload_and_submit(&h, &ann, &lib).await;

    let list = nurse.get(&h, "/libraries").await;
    assert_eq!(list.status, 200);
    let list = list.text();
    assert!(list.contains(r#"href="/libraries""#));
    assert!(!list.contains("multipart/form-data"), "no upload form");
    let page = nurse
        .get(&h, &format!("/libraries/{}/revisions/{rev}", lib.id))
        .await
        .text();
    assert!(!page.contains(r#"id="approve""#) && !page.contains(r#"id="reject""#));

    let csv = String::from_utf8(pumpward_druglib::csv::write_library_csv(&lib)).unwrap();
    assert_eq!(
        nurse
            .upload(&h, "library.csv", csv.as_bytes(), true)
            .await
            .status,
        403
    );
    for (action, fields) in [
        ("approve", vec![("password", PASSWORD)]),
        ("reject", vec![("comment", "no")]),
        ("publish", vec![]),
    ] {
        let r = nurse
            .post(&h, &rev_path(&lib.id, rev, action), &fields)
            .await;
        assert_eq!(r.status, 403, "{action}: {}", r.text());
    }
    assert_eq!(state_of(&h, rev).await, RevisionState::Submitted);

    // A vendor engineer has no library access: no link, no page.
    let r = vendor.get(&h, "/libraries").await;
    assert_eq!(r.status, 403);
    assert!(!r.text().contains(r#"href="/libraries""#));
}
