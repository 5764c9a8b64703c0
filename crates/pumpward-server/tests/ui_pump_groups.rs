//! The pump-groups page: biomed creates, edits and deletes a group through
//! the page (CSRF-protected); a refused save (unknown asset, too many pumps,
//! no name) answers 422 with the store's words, keeps what was typed and
//! stores nothing; deleting a group a library is assigned to is refused on
//! the page and in the API (naming the library) until the library is
//! unassigned; both steps are audited. Readers see the groups but neither
//! the form nor the delete buttons, and their posts are refused.

mod common;

use common::{harness, Cred, Harness, Reply};
use pumpward_core::access::Role;
use pumpward_core::inventory::{AssetSpec, LifecycleState};
use pumpward_store::{Actor, AuditFilter, NewLibraryDraft, StoreError};

/// A name with a space and a slash: it must survive the delete form's path.
const GROUP: &str = "Oncology / chairs";
const GROUP_SEGMENT: &str = "Oncology%20%2F%20chairs";

/// A browser session: the cookie, and the CSRF token its forms carry.
struct Browser {
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn new(h: &Harness, name: &str, role: Role) -> Browser {
        let (cookie, csrf) = h.session_for(name, role).await;
        Browser { cookie, csrf }
    }

    async fn get(&self, h: &Harness, path: &str) -> Reply {
        h.get(path, &Cred::Session(self.cookie.clone(), None)).await
    }

    /// Posts a form as the page does (the CSRF token in its field).
    async fn post(&self, h: &Harness, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        h.form(path, &self.cookie, &all).await
    }

    /// Posts the same form without the CSRF token.
    async fn post_without_csrf(&self, h: &Harness, path: &str, fields: &[(&str, &str)]) -> Reply {
        h.form(path, &self.cookie, fields).await
    }
}

fn location(r: &Reply) -> String {
    assert_eq!(r.status, 303, "{}", r.text());
    r.headers["location"].to_str().unwrap().to_owned()
}

/// PUMP-1 and PUMP-2: Baxter Sigma Spectrum in Adult ICU; PUMP-3: an ICU
/// Medical Plum 360 in Oncology.
async fn pumps(h: &Harness) {
    common::in_service_pump(&h.store, "PUMP-1").await;
    common::in_service_pump(&h.store, "PUMP-2").await;
    let mut j = common::asset_json("PUMP-3");
    j["care_area"] = "Oncology".into();
    h.store
        .create_asset(
            &AssetSpec::validate(&serde_json::from_value(j).unwrap()).unwrap(),
            Some(LifecycleState::InService),
            &Actor::cli(),
        )
        .await
        .unwrap();
}

/// A drug library (a draft is enough to be assigned to groups).
async fn library(h: &Harness) -> pumpward_druglib::Library {
    let lib = pumpward_druglib::sample_library();
    h.store
        .create_library_draft(
            &NewLibraryDraft {
                library_id: lib.id.clone(),
                name: lib.name.clone(),
                content: String::from_utf8(pumpward_druglib::json::to_canonical_json(&lib))
                    .unwrap(),
            },
            "ann",
            None,
            &Actor::user("ann", None),
        )
        .await
        .unwrap();
    lib
}

async fn assign(h: &Harness, library_id: &str, groups: &[&str]) {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    h.store
        .set_library_assignment(library_id, &[], &groups, &Actor::user("ann", None))
        .await
        .unwrap();
}

async fn audit(h: &Harness, action: &str) -> Vec<pumpward_core::audit::AuditRecord> {
    h.store
        .audit_list(&AuditFilter {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn group_exists(h: &Harness, name: &str) -> bool {
    match h.store.pump_group(name).await {
        Ok(_) => true,
        Err(StoreError::NotFound { .. }) => false,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn biomed_creates_edits_and_deletes_a_group_through_the_page() {
    let h = harness().await;
    pumps(&h).await;
    let bea = Browser::new(&h, "bea", Role::Biomed).await;

    // Empty state, the form, and the nav link.
    let r = bea.get(&h, "/pump-groups").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert!(html.contains("id=\"no-groups\""), "{html}");
    assert!(html.contains("id=\"save-group\""), "{html}");
    assert!(
        html.contains("<a href=\"/pump-groups\" aria-current=\"page\">Pump groups</a>"),
        "{html}"
    );

    // Without the CSRF token: refused, nothing stored.
    let fields = [
        ("name", GROUP),
        ("description", "Infusion chairs, 3rd floor"),
        ("members", "PUMP-1, PUMP-3\nPUMP-1"),
    ];
    let r = bea.post_without_csrf(&h, "/pump-groups", &fields).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(h.store.pump_groups().await.unwrap().is_empty());

    // Refusals: 422 with the store's words and the typed values kept;
    // nothing stored, nothing audited.
    let r = bea
        .post(
            &h,
            "/pump-groups",
            &[
                ("name", GROUP),
                ("description", "chairs"),
                ("members", "PUMP-1\nNOPE-9"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let html = r.text();
    assert!(
        html.contains("The group was not saved: not pumps in the inventory: NOPE-9."),
        "{html}"
    );
    assert!(html.contains(&format!("value=\"{GROUP}\"")), "{html}");
    assert!(html.contains("value=\"chairs\""), "{html}");
    assert!(html.contains(">PUMP-1\nNOPE-9</textarea>"), "{html}");
    let too_many = vec!["PUMP-1"; pumpward_store::MAX_GROUP_MEMBERS + 1].join("\n");
    for (name, members, words) in [
        ("  ", "PUMP-1", "pump group name"),
        (GROUP, too_many.as_str(), "at most 20000 pumps per group"),
    ] {
        let r = bea
            .post(&h, "/pump-groups", &[("name", name), ("members", members)])
            .await;
        assert_eq!(r.status, 422, "{}", r.text());
        assert!(r.text().contains(words), "{}", r.text());
    }
    assert!(h.store.pump_groups().await.unwrap().is_empty());
    assert!(audit(&h, "pump_group.set").await.is_empty());

    // Saved: ids separated by commas and newlines, the repeat dropped.
    let r = bea.post(&h, "/pump-groups", &fields).await;
    assert_eq!(location(&r), "/pump-groups?done=pump-group-saved");
    let g = h.store.pump_group(GROUP).await.unwrap();
    assert_eq!(g.members, ["PUMP-1", "PUMP-3"]);
    assert_eq!(g.description, "Infusion chairs, 3rd floor");
    let set = audit(&h, "pump_group.set").await;
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].entry.actor, "user:bea");

    // The page lists the group with its pumps as the inventory has them.
    let html = bea
        .get(&h, "/pump-groups?done=pump-group-saved")
        .await
        .text();
    assert!(html.contains("The pump group was saved."), "{html}");
    assert!(!html.contains("id=\"no-groups\""), "{html}");
    assert!(html.contains(&format!(">{GROUP}</h3>")), "{html}");
    assert!(html.contains("<strong>2</strong> pumps"), "{html}");
    assert!(
        html.contains(
            "<a href=\"/assets/PUMP-3\">PUMP-3</a></th><td>ICU Medical Plum 360</td><td>Oncology</td><td><span class=\"state state-in_service\">in_service</span></td>"
        ),
        "{html}"
    );
    assert!(html.contains("<a href=\"/assets/PUMP-1\">"), "{html}");
    assert!(!html.contains("<a href=\"/assets/PUMP-2\">"), "{html}");
    assert!(
        html.contains("No drug library is assigned to this group."),
        "{html}"
    );
    assert!(
        html.contains(&format!("action=\"/pump-groups/{GROUP_SEGMENT}/delete\"")),
        "{html}"
    );

    // Edit: the form holds the group; saving replaces its pumps.
    let html = bea
        .get(&h, &format!("/pump-groups?edit={GROUP_SEGMENT}"))
        .await
        .text();
    assert!(html.contains(">PUMP-1\nPUMP-3</textarea>"), "{html}");
    let r = bea
        .post(
            &h,
            "/pump-groups",
            &[("name", GROUP), ("members", "PUMP-2 PUMP-3")],
        )
        .await;
    assert_eq!(location(&r), "/pump-groups?done=pump-group-saved");
    assert_eq!(
        h.store.pump_group(GROUP).await.unwrap().members,
        ["PUMP-2", "PUMP-3"]
    );

    // Assigned to a library: the page links it, and deleting is refused
    // (page and API), naming the library; the group stays.
    let lib = library(&h).await;
    assign(&h, &lib.id, &[GROUP]).await;
    let html = bea.get(&h, "/pump-groups").await.text();
    assert!(
        html.contains(&format!("<a href=\"/libraries/{}\">", lib.id)),
        "{html}"
    );
    let delete = format!("/pump-groups/{GROUP_SEGMENT}/delete");
    let r = bea.post(&h, &delete, &[]).await;
    assert_eq!(r.status, 409, "{}", r.text());
    let html = r.text();
    assert!(html.contains("The group was not deleted"), "{html}");
    assert!(html.contains(&lib.id), "{html}");
    assert!(group_exists(&h, GROUP).await);
    let biomed_api = Cred::Bearer(h.token_for("bea.api", Role::Biomed).await);
    let api_path = format!("/api/v1/pump-groups/{GROUP_SEGMENT}");
    let r = h.call("DELETE", &api_path, &biomed_api, None).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.problem(), "conflict");
    assert!(r.json()["detail"].as_str().unwrap().contains(&lib.id));
    assert!(group_exists(&h, GROUP).await);
    assert_eq!(
        h.store
            .library_assignment(&lib.id)
            .await
            .unwrap()
            .pump_groups,
        [GROUP]
    );
    assert!(audit(&h, "pump_group.delete").await.is_empty());

    // Unassigned: a delete without the CSRF token is still refused; with
    // it the group goes, and the page is empty again.
    assign(&h, &lib.id, &[]).await;
    let r = bea.post_without_csrf(&h, &delete, &[]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(group_exists(&h, GROUP).await);
    let r = bea.post(&h, &delete, &[]).await;
    assert_eq!(location(&r), "/pump-groups?done=pump-group-deleted");
    assert!(!group_exists(&h, GROUP).await);
    let html = bea
        .get(&h, "/pump-groups?done=pump-group-deleted")
        .await
        .text();
    assert!(html.contains("The pump group was deleted."), "{html}");
    assert!(html.contains("id=\"no-groups\""), "{html}");
    let deleted = audit(&h, "pump_group.delete").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].entry.actor, "user:bea");
    assert_eq!(
        deleted[0].entry.object.as_deref(),
        Some(format!("pump_group:{GROUP}").as_str())
    );

    // The API deletes an unassigned group (204), then does not find it.
    h.store
        .set_pump_group("Loaners", "", &["PUMP-1".into()], &Actor::cli())
        .await
        .unwrap();
    let r = h
        .call("DELETE", "/api/v1/pump-groups/Loaners", &biomed_api, None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(!group_exists(&h, "Loaners").await);
    let r = h
        .call("DELETE", "/api/v1/pump-groups/Loaners", &biomed_api, None)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(audit(&h, "pump_group.delete").await.len(), 2);
}

#[tokio::test]
async fn readers_see_groups_but_cannot_change_them() {
    let h = harness().await;
    pumps(&h).await;
    h.store
        .set_pump_group("Loaners", "loaner pool", &["PUMP-1".into()], &Actor::cli())
        .await
        .unwrap();
    let pia = Browser::new(&h, "pia", Role::Pharmacist).await;

    // A pharmacist reads the group, without the form or delete buttons.
    let r = pia.get(&h, "/pump-groups").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert!(html.contains(">Loaners</h3>"), "{html}");
    assert!(html.contains("loaner pool"), "{html}");
    assert!(!html.contains("id=\"save-group\""), "{html}");
    assert!(!html.contains("/delete\""), "{html}");
    assert!(!html.contains("Edit Loaners"), "{html}");
    // ?edit= fills nothing for a reader.
    let html = pia.get(&h, "/pump-groups?edit=Loaners").await.text();
    assert!(!html.contains("<textarea"), "{html}");

    // Posting anyway is refused and changes nothing.
    let r = pia
        .post(
            &h,
            "/pump-groups",
            &[("name", "Loaners"), ("members", "PUMP-2")],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = pia.post(&h, "/pump-groups/Loaners/delete", &[]).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let pharmacist_api = Cred::Bearer(h.token_for("pia.api", Role::Pharmacist).await);
    let r = h
        .call(
            "DELETE",
            "/api/v1/pump-groups/Loaners",
            &pharmacist_api,
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let g = h.store.pump_group("Loaners").await.unwrap();
    assert_eq!(g.members, ["PUMP-1"]);
    assert!(audit(&h, "pump_group.delete").await.is_empty());

    // A vendor may not see the inventory: no page, no nav link.
    let vic = Browser::new(&h, "vic", Role::Vendor).await;
    assert_eq!(vic.get(&h, "/pump-groups").await.status, 403);
    let html = vic.get(&h, "/account").await.text();
    assert!(!html.contains("href=\"/pump-groups\""), "{html}");
}
