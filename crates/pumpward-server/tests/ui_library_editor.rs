//! The library editor and the comparison of any two versions: an author
//! changes her own draft in the browser (entries and care areas), a change
//! that adds a validation problem comes back with the problem next to its
//! field and saves nothing, an accepted change is a new audited draft
//! replacing the old one; others cannot edit her draft; the library page
//! compares any two versions per care area.

mod common;

use common::{harness, Cred, Harness, Reply};
use pumpward_core::access::Role;
use pumpward_druglib::json::{parse_library_json, to_canonical_json};
use pumpward_druglib::{sample_library, Library};
use pumpward_store::RevisionState;

const PASSWORD: &str = "correct horse battery staple";

struct Browser {
    cookie: String,
    csrf: String,
}

async fn browser(h: &Harness, name: &str, role: Role) -> Browser {
    let (cookie, csrf) = h.session_for(name, role).await;
    Browser { cookie, csrf }
}

impl Browser {
    async fn get(&self, h: &Harness, path: &str) -> Reply {
        h.get(path, &Cred::Session(self.cookie.clone(), None)).await
    }

    async fn post(&self, h: &Harness, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        h.form(path, &self.cookie, &all).await
    }
}

fn location(r: &Reply) -> String {
    assert_eq!(r.status, 303, "{}", r.text());
    r.headers["location"].to_str().unwrap().to_owned()
}

fn revision_in(loc: &str) -> i64 {
    let rest = loc.split("/revisions/").nth(1).unwrap();
    rest.split(['/', '?']).next().unwrap().parse().unwrap()
}

/// A draft of `lib` by `author` (as an upload would store it).
async fn draft(h: &Harness, author: &str, lib: &Library) -> i64 {
    h.store
        .create_library_draft(
            &pumpward_store::NewLibraryDraft {
                library_id: lib.id.clone(),
                name: lib.name.clone(),
                content: String::from_utf8(to_canonical_json(lib)).unwrap(),
            },
            author,
            None,
            &pumpward_store::Actor::user(author, None),
        )
        .await
        .unwrap()
        .id
}

async fn content(h: &Harness, rev: i64) -> Library {
    parse_library_json(
        h.store
            .library_revision(rev)
            .await
            .unwrap()
            .content
            .as_bytes(),
    )
    .unwrap()
}

fn edit(rev: i64) -> String {
    format!("/libraries/sample-library/revisions/{rev}/edit")
}

/// The heparin entry of the Adult ICU as the form posts it, with `over`
/// replacing fields.
fn heparin_form<'a>(over: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("action", "entry_save"),
        ("area", "adult-icu"),
        ("entry", "0"),
        ("drug", "heparin"),
        ("code", "5224"),
        ("conc_amount", "25000"),
        ("conc_unit", "units"),
        ("conc_volume", "250"),
        ("dosing_unit", "units/kg/h"),
        ("soft_min", "5"),
        ("soft_max", "25"),
        ("hard_min", ""),
        ("hard_max", "40"),
        ("bolus_unit", "units/kg"),
        ("bolus_soft_min", ""),
        ("bolus_soft_max", "80"),
        ("bolus_hard_min", ""),
        ("bolus_hard_max", "100"),
        ("vtbi_soft_min", ""),
        ("vtbi_soft_max", ""),
        ("vtbi_hard_min", ""),
        ("vtbi_hard_max", ""),
        ("max_duration_min", ""),
        (
            "advisory",
            "Weight-based nomogram; check aPTT or anti-Xa 6 h after each rate change.",
        ),
        ("high_alert", "yes"),
    ];
    for (k, v) in over {
        if let Some(x) = f.iter_mut().find(|(n, _)| n == k) {
            x.1 = v;
        }
    }
    f
}

async fn revisions(h: &Harness) -> usize {
    h.store
        .library_revisions("sample-library")
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn an_author_edits_her_draft_with_problems_shown_next_to_the_field() {
    let h = harness().await;
    let ann = browser(&h, "ann", Role::Pharmacist).await;
    let lib = sample_library();
    let rev1 = draft(&h, "ann", &lib).await;

    // The revision page links to the editor for its author.
    let page = ann
        .get(&h, &format!("/libraries/sample-library/revisions/{rev1}"))
        .await
        .text();
    assert!(page.contains(r#"id="edit-draft""#), "{page}");

    // The editor lists care areas; an entry's form is filled in.
    let r = ann
        .get(&h, &format!("{}?area=adult-icu&entry=0", edit(rev1)))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.contains(r#"id="area-adult-icu""#), "{text}");
    assert!(text.contains(r#"id="entry-form""#));
    assert!(
        text.contains(r#"id="entry-hard_max" name="hard_max" value="40""#),
        "{text}"
    );

    // Soft above hard: refused, the problem next to soft_max, nothing saved.
    let before = revisions(&h).await;
    let r = ann
        .post(&h, &edit(rev1), &heparin_form(&[("soft_max", "50")]))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let text = r.text();
    assert!(
        text.contains(
            r#"id="entry-soft_max-error" role="alert">soft_max 50 is above hard_max 40</p>"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"name="soft_max" value="50" maxlength="4000" aria-invalid="true""#),
        "the typed value comes back: {text}"
    );
    // Not a number and an unknown unit: each at its field.
    let r = ann
        .post(
            &h,
            &edit(rev1),
            &heparin_form(&[("hard_max", "forty"), ("dosing_unit", "units/fortnight")]),
        )
        .await;
    assert_eq!(r.status, 422);
    let text = r.text();
    assert!(text.contains(r#"id="entry-hard_max-error""#), "{text}");
    assert!(text.contains(r#"id="entry-dosing_unit-error""#), "{text}");
    assert_eq!(
        revisions(&h).await,
        before,
        "a refused change saves nothing"
    );
    assert_eq!(
        h.store.library_revision(rev1).await.unwrap().state,
        RevisionState::Draft
    );

    // A valid change: a new draft replacing the old one, audited.
    let loc = location(
        &ann.post(&h, &edit(rev1), &heparin_form(&[("hard_max", "35")]))
            .await,
    );
    let rev2 = revision_in(&loc);
    assert!(
        loc.contains("done=saved") && loc.contains("area=adult-icu"),
        "{loc}"
    );
    assert_eq!(
        h.store.library_revision(rev1).await.unwrap().state,
        RevisionState::Superseded
    );
    let r2 = h.store.library_revision(rev2).await.unwrap();
    assert_eq!((r2.replaces, r2.author.as_str()), (Some(rev1), "ann"));
    let l2 = content(&h, rev2).await;
    assert_eq!(
        l2.care_areas[0].entries[0].hard_max.unwrap().to_string(),
        "35"
    );
    assert_eq!(
        l2.care_areas[0].entries[0].bolus, lib.care_areas[0].entries[0].bolus,
        "the bolus limits, as the form carries them, are kept"
    );
    assert_eq!(
        l2.care_areas[0].entries.len(),
        lib.care_areas[0].entries.len()
    );
    let audit = h
        .store
        .audit_list(&pumpward_store::AuditFilter {
            action: Some("library.draft".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 2, "the seed draft and the edit");

    // The old page's forms are stale: refused, nothing saved.
    let r = ann
        .post(&h, &edit(rev1), &heparin_form(&[("hard_max", "30")]))
        .await;
    assert_eq!(r.status, 409, "{}", r.text());

    // A new care area, with a weight range; then an entry in it.
    let r = ann
        .post(
            &h,
            &edit(rev2),
            &[
                ("action", "area_add"),
                ("area", ""),
                ("entry", ""),
                ("area_id", "burn-unit"),
                ("area_name", "Burn Unit"),
                ("weight_min", "30"),
                ("weight_max", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "one weight without the other");
    assert!(
        r.text().contains(r#"id="new-area-weight_max-error""#),
        "{}",
        r.text()
    );
    let rev3 = revision_in(&location(
        &ann.post(
            &h,
            &edit(rev2),
            &[
                ("action", "area_add"),
                ("area", ""),
                ("entry", ""),
                ("area_id", "burn-unit"),
                ("area_name", "Burn Unit"),
                ("weight_min", "30"),
                ("weight_max", "200"),
            ],
        )
        .await,
    ));
    let mut morphine = vec![
        ("action", "entry_save"),
        ("area", "burn-unit"),
        ("entry", "new"),
        ("drug", "morphine"),
        ("code", ""),
        ("conc_amount", "100"),
        ("conc_unit", "mg"),
        ("conc_volume", "100"),
        ("dosing_unit", "mg/h"),
        ("soft_min", ""),
        ("soft_max", "10"),
        ("hard_min", ""),
        ("hard_max", ""),
        ("max_duration_min", ""),
        ("advisory", ""),
    ];
    // No hard maximum: the validator's "is required", at the field.
    let r = ann.post(&h, &edit(rev3), &morphine).await;
    assert_eq!(r.status, 422);
    assert!(
        r.text()
            .contains(r#"id="entry-hard_max-error" role="alert">is required</p>"#),
        "{}",
        r.text()
    );
    if let Some(x) = morphine.iter_mut().find(|(k, _)| *k == "hard_max") {
        x.1 = "15";
    }
    let rev4 = revision_in(&location(&ann.post(&h, &edit(rev3), &morphine).await));
    let l4 = content(&h, rev4).await;
    let burn = l4.care_area("burn-unit").unwrap();
    assert_eq!((burn.name.as_str(), burn.entries.len()), ("Burn Unit", 1));
    assert_eq!(burn.entries[0].drug, "morphine");
    assert!(!burn.entries[0].high_alert);

    // Removing: an entry at once, a care area only when confirmed.
    let rev5 = revision_in(&location(
        &ann.post(
            &h,
            &edit(rev4),
            &[
                ("action", "entry_remove"),
                ("area", "burn-unit"),
                ("entry", "0"),
            ],
        )
        .await,
    ));
    assert!(content(&h, rev5)
        .await
        .care_area("burn-unit")
        .unwrap()
        .entries
        .is_empty());
    let r = ann
        .post(
            &h,
            &edit(rev5),
            &[("action", "area_remove"), ("area", "burn-unit")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("Tick the confirmation"));
    let rev6 = revision_in(&location(
        &ann.post(
            &h,
            &edit(rev5),
            &[
                ("action", "area_remove"),
                ("area", "burn-unit"),
                ("confirm", "yes"),
            ],
        )
        .await,
    ));
    let l6 = content(&h, rev6).await;
    assert!(l6.care_area("burn-unit").is_none());
    assert_eq!(l6.care_areas.len(), lib.care_areas.len());

    // The edited draft is valid: it can be submitted.
    let r = ann
        .post(
            &h,
            &format!("/libraries/sample-library/revisions/{rev6}/submit"),
            &[],
        )
        .await;
    assert!(location(&r).ends_with("?done=submitted"));
}

/// Bolus dose and VTBI limits are edited in the form like the other limits:
/// shown filled in, refused with the problem next to its field (soft above
/// hard, a unit that does not fit the concentration, limits without a
/// unit, not a number), saved when valid, and removed by emptying them.
#[tokio::test]
async fn bolus_and_vtbi_limits_are_edited_with_problems_inline() {
    let h = harness().await;
    let ann = browser(&h, "ann", Role::Pharmacist).await;
    let lib = sample_library();
    let rev1 = draft(&h, "ann", &lib).await;
    let text = ann
        .get(&h, &format!("{}?area=adult-icu&entry=0", edit(rev1)))
        .await
        .text();
    assert!(
        text.contains(r#"id="entry-bolus_unit" name="bolus_unit" value="units/kg""#)
            && text.contains(r#"id="entry-bolus_hard_max" name="bolus_hard_max" value="100""#)
            && text.contains(r#"id="entry-vtbi_hard_max" name="vtbi_hard_max" value="""#),
        "{text}"
    );
    let before = revisions(&h).await;
    for (over, field, message) in [
        (
            vec![("bolus_soft_max", "120")],
            "bolus_soft_max",
            "soft_max 120 is above hard_max 100",
        ),
        (
            vec![("bolus_unit", "mg/kg")],
            "bolus_unit",
            "mg/kg does not fit a concentration in units",
        ),
        (
            vec![("bolus_unit", "")],
            "bolus_unit",
            "give the bolus unit",
        ),
        (vec![("bolus_unit", "furlongs")], "bolus_unit", "furlongs"),
        (
            vec![("vtbi_hard_max", "lots")],
            "vtbi_hard_max",
            "is not a number",
        ),
        (
            vec![("vtbi_soft_max", "600"), ("vtbi_hard_max", "500")],
            "vtbi_soft_max",
            "soft_max 600 is above hard_max 500",
        ),
        (
            vec![("vtbi_soft_max", "200")],
            "vtbi_hard_max",
            "is required",
        ),
    ] {
        let r = ann.post(&h, &edit(rev1), &heparin_form(&over)).await;
        assert_eq!(r.status, 422, "{over:?}: {}", r.text());
        let text = r.text();
        let at = format!(r#"id="entry-{field}-error" role="alert">"#);
        let shown = text
            .split(&at)
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap_or_else(|| panic!("{over:?}: no error at {field}: {text}"));
        assert!(shown.contains(message), "{over:?}: {shown:?}");
    }
    assert_eq!(
        revisions(&h).await,
        before,
        "a refused change saves nothing"
    );

    // Valid: a tighter bolus and a VTBI range, saved as typed.
    let rev2 = revision_in(&location(
        &ann.post(
            &h,
            &edit(rev1),
            &heparin_form(&[
                ("bolus_soft_max", "70"),
                ("bolus_hard_max", "90"),
                ("vtbi_soft_max", "250"),
                ("vtbi_hard_max", "500"),
            ]),
        )
        .await,
    ));
    let e = content(&h, rev2).await.care_areas[0].entries[0].clone();
    let b = e.bolus.unwrap();
    assert_eq!(
        (
            b.unit.to_string(),
            b.soft_max.unwrap().to_string(),
            b.hard_max.unwrap().to_string()
        ),
        ("units/kg".into(), "70".into(), "90".into())
    );
    let v = e.vtbi_ml.unwrap();
    assert_eq!(
        (
            v.soft_max.unwrap().to_string(),
            v.hard_max.unwrap().to_string(),
            v.soft_min
        ),
        ("250".into(), "500".into(), None)
    );
    // Emptied: no bolus, no VTBI limit.
    let rev3 = revision_in(&location(
        &ann.post(
            &h,
            &edit(rev2),
            &heparin_form(&[
                ("bolus_unit", ""),
                ("bolus_soft_max", ""),
                ("bolus_hard_max", ""),
            ]),
        )
        .await,
    ));
    let e = content(&h, rev3).await.care_areas[0].entries[0].clone();
    assert_eq!((e.bolus, e.vtbi_ml), (None, None));
}

#[tokio::test]
async fn only_the_author_edits_and_every_change_needs_the_csrf_token() {
    let h = harness().await;
    let ann = browser(&h, "ann", Role::Pharmacist).await;
    let bob = browser(&h, "bob", Role::Pharmacist).await;
    let nurse = browser(&h, "nora", Role::Clinician).await;
    let rev = draft(&h, "ann", &sample_library()).await;
    let before = revisions(&h).await;

    // Another pharmacist: no link, no page, no change.
    let page = bob
        .get(&h, &format!("/libraries/sample-library/revisions/{rev}"))
        .await
        .text();
    assert!(!page.contains(r#"id="edit-draft""#));
    assert_eq!(bob.get(&h, &edit(rev)).await.status, 403);
    let r = bob
        .post(&h, &edit(rev), &heparin_form(&[("hard_max", "35")]))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    // A clinician reads libraries but does not author them.
    assert_eq!(nurse.get(&h, &edit(rev)).await.status, 403);
    // Without the CSRF token the author's own change is refused.
    let body = serde_urlencoded::to_string(heparin_form(&[("hard_max", "35")])).unwrap();
    let r = h
        .call(
            "POST",
            &edit(rev),
            &Cred::Session(ann.cookie.clone(), None),
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(revisions(&h).await, before);
    assert_eq!(
        content(&h, rev).await.care_areas[0].entries[0]
            .hard_max
            .unwrap()
            .to_string(),
        "40"
    );
    // A submitted revision is not edited any more.
    ann.post(
        &h,
        &format!("/libraries/sample-library/revisions/{rev}/submit"),
        &[],
    )
    .await;
    assert_eq!(ann.get(&h, &edit(rev)).await.status, 409);
}

/// Publishes `lib` through the pages: ann drafts and submits, bob approves
/// with his password and publishes.
async fn publish(h: &Harness, ann: &Browser, bob: &Browser, lib: &Library) {
    let rev = draft(h, "ann", lib).await;
    let base = format!("/libraries/sample-library/revisions/{rev}");
    location(&ann.post(h, &format!("{base}/submit"), &[]).await);
    location(
        &bob.post(h, &format!("{base}/approve"), &[("password", PASSWORD)])
            .await,
    );
    location(&bob.post(h, &format!("{base}/publish"), &[]).await);
}

#[tokio::test]
async fn any_two_versions_are_compared_per_care_area() {
    let h = harness().await;
    let ann = browser(&h, "ann", Role::Pharmacist).await;
    let bob = browser(&h, "bob", Role::Pharmacist).await;
    let nurse = browser(&h, "nora", Role::Clinician).await;
    let v1 = sample_library();
    let mut v2 = v1.clone();
    v2.care_areas[0].entries[0].hard_max = Some("35".parse().unwrap());
    let mut v3 = v2.clone();
    let removed = v3.care_areas[1].entries.pop().unwrap().label();
    for l in [&v1, &v2, &v3] {
        publish(&h, &ann, &bob, l).await;
    }

    // The library page offers the comparison, the two newest preselected.
    let page = nurse.get(&h, "/libraries/sample-library").await.text();
    assert!(page.contains(r#"id="compare-form""#), "{page}");
    assert!(
        page.contains(r#"<option value="v2" selected>version 2</option>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<option value="v3" selected>version 3</option>"#),
        "{page}"
    );

    // Version 1 against version 3: both changes, each in its care area.
    let r = nurse
        .get(&h, "/libraries/sample-library/diff?from=v1&to=v3")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(
        text.contains("Changes from version 1 to version 3"),
        "{text}"
    );
    assert!(text.contains("<h3>Care area adult-icu</h3>"), "{text}");
    assert!(
        text.contains("<td>hard_max</td><td>40</td><td>35</td>"),
        "{text}"
    );
    assert!(text.contains("<h3>Care area med-surg</h3>"), "{text}");
    assert!(
        text.contains(&format!("<li>− {}</li>", removed.replace('&', "&amp;"))),
        "{text}"
    );
    // Version 2 against 3: only the removal.
    let text = nurse
        .get(&h, "/libraries/sample-library/diff?from=v2&to=v3")
        .await
        .text();
    assert!(!text.contains("Care area adult-icu"), "{text}");
    assert!(text.contains("<h3>Care area med-surg</h3>"));
    // The same version twice; an unknown version; not a version.
    let text = nurse
        .get(&h, "/libraries/sample-library/diff?from=v3&to=v3")
        .await
        .text();
    assert!(text.contains(r#"id="no-changes""#), "{text}");
    let r = nurse
        .get(&h, "/libraries/sample-library/diff?from=v9&to=v1")
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(!r.text().contains(r#"id="diff""#));
    let r = nurse
        .get(&h, "/libraries/sample-library/diff?from=latest&to=v1")
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // A library that does not exist.
    assert_eq!(nurse.get(&h, "/libraries/nope/diff").await.status, 404);
}
