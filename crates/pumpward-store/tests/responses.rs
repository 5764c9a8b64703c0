//! Responses (quarantine) in the store, on both backends: requested,
//! confirmed by a second person, refused, released back to the previous
//! state; every refusal changes nothing but the audit trail.

mod common;

use pumpward_core::audit::Outcome;
use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_detect::{ResponseKind, ResponseState};
use pumpward_store::{Actor, AuditFilter, ResponseFilter, ResponseRequest, Store, StoreError};

fn spec(id: &str) -> AssetSpec {
    AssetSpec::validate(&AssetDraft {
        asset_id: id.into(),
        manufacturer: "Baxter".into(),
        model: "Sigma Spectrum".into(),
        serial_number: format!("SN-{id}"),
        firmware_version: "8.00.01".into(),
        care_area: Some("Adult ICU".into()),
        ..Default::default()
    })
    .unwrap()
}

fn ana() -> Actor {
    Actor::user("ana.soc", Some("192.0.2.20".into()))
}

fn bea() -> Actor {
    Actor::user("bea.biomed", Some("192.0.2.10".into()))
}

fn quarantine(asset: &str, apply_now: bool) -> ResponseRequest {
    ResponseRequest {
        asset_id: asset.into(),
        kind: ResponseKind::Quarantine,
        reason: "certificate used from two addresses".into(),
        alert_id: None,
        apply_now,
    }
}

async fn state_of(store: &Store, id: &str) -> LifecycleState {
    store.asset(id).await.unwrap().lifecycle_state
}

async fn audit(store: &Store, action: &str) -> Vec<(String, Outcome)> {
    store
        .audit_list(&AuditFilter {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.entry.actor.clone(), r.entry.outcome))
        .collect()
}

async fn all_responses(store: &Store) -> usize {
    store
        .list_responses(&ResponseFilter::default())
        .await
        .unwrap()
        .len()
}

on_both_backends!(
    manual_quarantine_applies_at_once_and_release_restores_the_state,
    automatic_quarantine_waits_for_a_second_person,
    bad_requests_change_nothing,
);

async fn manual_quarantine_applies_at_once_and_release_restores_the_state(store: &Store) {
    for (id, state) in [
        ("P-1", LifecycleState::InService),
        ("P-2", LifecycleState::Maintenance),
    ] {
        store
            .create_asset(&spec(id), Some(state), &Actor::system())
            .await
            .unwrap();
        let r = store
            .request_response(&quarantine(id, true), &ana())
            .await
            .unwrap();
        assert_eq!(r.state, ResponseState::Applied);
        assert_eq!(r.previous_state, Some(state));
        assert_eq!(r.confirmed_by.as_deref(), Some("user:ana.soc"));
        assert_eq!(state_of(store, id).await, LifecycleState::Quarantined);

        let released = store
            .release_response(id, "pump inspected and reflashed", &bea())
            .await
            .unwrap();
        assert_eq!(released.state, ResponseState::Released);
        assert_eq!(released.closed_by.as_deref(), Some("user:bea.biomed"));
        assert_eq!(state_of(store, id).await, state, "back to where it was");
        // Releasing again: nothing open.
        let e = store
            .release_response(id, "again", &bea())
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    }
    // The lifecycle history shows both moves, with the reasons.
    let h = store.lifecycle_history("P-2").await.unwrap();
    let moves: Vec<(Option<LifecycleState>, LifecycleState)> =
        h.iter().map(|e| (e.from_state, e.to_state)).collect();
    assert_eq!(
        &moves[moves.len() - 2..],
        [
            (
                Some(LifecycleState::Maintenance),
                LifecycleState::Quarantined
            ),
            (
                Some(LifecycleState::Quarantined),
                LifecycleState::Maintenance
            ),
        ]
    );
    assert_eq!(
        audit(store, "response.request").await,
        vec![
            ("user:ana.soc".to_owned(), Outcome::Success),
            ("user:ana.soc".to_owned(), Outcome::Success)
        ]
    );
    assert_eq!(audit(store, "response.release").await.len(), 4); // 2 done, 2 denied
    let list = store
        .list_responses(&ResponseFilter {
            asset_id: Some("P-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].state, ResponseState::Released);
    assert!(store.audit_verify().await.unwrap().error.is_none());
}

async fn automatic_quarantine_waits_for_a_second_person(store: &Store) {
    store
        .create_asset(
            &spec("P-1"),
            Some(LifecycleState::InService),
            &Actor::system(),
        )
        .await
        .unwrap();
    store
        .create_asset(
            &spec("P-2"),
            Some(LifecycleState::InService),
            &Actor::system(),
        )
        .await
        .unwrap();
    let auto = store
        .request_response(&quarantine("P-1", false), &Actor::system())
        .await
        .unwrap();
    assert_eq!(auto.state, ResponseState::Pending);
    assert_eq!(auto.requested_by, "system");
    assert_eq!(auto.previous_state, None);
    assert_eq!(
        state_of(store, "P-1").await,
        LifecycleState::InService,
        "nothing applied before the confirmation"
    );
    // A second request while one is open is refused.
    let e = store
        .request_response(&quarantine("P-1", true), &ana())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("already has a pending response"),
        "{e}"
    );
    assert_eq!(state_of(store, "P-1").await, LifecycleState::InService);

    let done = store.confirm_response(auto.id, &ana()).await.unwrap();
    assert_eq!(done.state, ResponseState::Applied);
    assert_eq!(done.confirmed_by.as_deref(), Some("user:ana.soc"));
    assert_eq!(done.previous_state, Some(LifecycleState::InService));
    assert_eq!(state_of(store, "P-1").await, LifecycleState::Quarantined);
    // Confirming twice: no longer pending.
    let e = store.confirm_response(auto.id, &bea()).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");

    // A person's two-person request: never confirmed by the same person,
    // not even through their API token.
    let mine = store
        .request_response(&quarantine("P-2", false), &ana())
        .await
        .unwrap();
    let token = Actor {
        id: "user:ana.soc token:7".into(),
        source: None,
    };
    for who in [ana(), token] {
        let e = store.confirm_response(mine.id, &who).await.unwrap_err();
        assert!(matches!(e, StoreError::Forbidden(_)), "{e}");
        assert!(e.to_string().contains("someone other"), "{e}");
    }
    assert_eq!(state_of(store, "P-2").await, LifecycleState::InService);
    assert_eq!(
        store.response(mine.id).await.unwrap().state,
        ResponseState::Pending
    );
    // Refused by a colleague: nothing happens to the pump.
    let refused = store
        .refuse_response(
            mine.id,
            "the pump is in a running infusion on a critical drip; swap first",
            &bea(),
        )
        .await
        .unwrap();
    assert_eq!(refused.state, ResponseState::Refused);
    assert_eq!(state_of(store, "P-2").await, LifecycleState::InService);
    let e = store
        .refuse_response(mine.id, "again", &bea())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");

    let confirms = audit(store, "response.confirm").await;
    assert_eq!(
        confirms
            .iter()
            .filter(|(_, o)| *o == Outcome::Denied)
            .count(),
        3,
        "{confirms:?}"
    );
    assert!(confirms.contains(&("user:ana.soc".to_owned(), Outcome::Success)));
    assert_eq!(
        audit(store, "response.refuse").await,
        vec![
            ("user:bea.biomed".to_owned(), Outcome::Denied),
            ("user:bea.biomed".to_owned(), Outcome::Success)
        ]
    );
    let pending = store
        .list_responses(&ResponseFilter {
            state: Some(ResponseState::Pending),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(pending.is_empty());
}

async fn bad_requests_change_nothing(store: &Store) {
    for (id, state) in [
        ("P-Q", LifecycleState::Quarantined),
        ("P-D", LifecycleState::Decommissioned),
        ("P-P", LifecycleState::Procured),
        ("P-S", LifecycleState::InService),
    ] {
        store
            .create_asset(&spec(id), Some(state), &Actor::system())
            .await
            .unwrap();
    }
    let cases: [(ResponseRequest, &str); 6] = [
        (quarantine("P-404", true), "asset P-404 not found"),
        (quarantine("P-Q", true), "already quarantined"),
        (quarantine("P-D", true), "decommissioned"),
        (
            quarantine("P-P", false),
            "only an asset in service or in maintenance",
        ),
        (
            ResponseRequest {
                reason: "   ".into(),
                ..quarantine("P-S", true)
            },
            "a reason is required",
        ),
        (
            ResponseRequest {
                alert_id: Some("no-such-alert".into()),
                ..quarantine("P-S", true)
            },
            "alert no-such-alert not found",
        ),
    ];
    for (req, want) in cases {
        let e = store.request_response(&req, &ana()).await.unwrap_err();
        assert!(e.to_string().contains(want), "{e} (wanted {want})");
    }
    assert_eq!(all_responses(store).await, 0);
    for (id, state) in [
        ("P-Q", LifecycleState::Quarantined),
        ("P-D", LifecycleState::Decommissioned),
        ("P-P", LifecycleState::Procured),
        ("P-S", LifecycleState::InService),
    ] {
        assert_eq!(state_of(store, id).await, state, "{id} unchanged");
    }
    // Refusals are audited as denied; the missing asset and alert are not
    // refusals of a response, only errors.
    let denied = audit(store, "response.request").await;
    assert_eq!(denied.len(), 4, "{denied:?}");
    assert!(denied.iter().all(|(_, o)| *o == Outcome::Denied));
    // Releasing a pump quarantined by hand (no response) is refused.
    let e = store
        .release_response("P-Q", "inspected", &bea())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no applied response"), "{e}");
    assert_eq!(state_of(store, "P-Q").await, LifecycleState::Quarantined);
    let e = store.confirm_response(999, &bea()).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
}
