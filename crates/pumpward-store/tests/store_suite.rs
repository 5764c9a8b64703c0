//! The store test suite, run against both backends.

mod common;

use pumpward_core::access::{Permission, Role};
use pumpward_core::audit::{ChainError, Outcome};
use pumpward_core::inventory::csv::{read_assets_csv, CsvError, CsvLimits};
use pumpward_core::inventory::{AssetDraft, AssetSpec, LifecycleState};
use pumpward_store::{
    Actor, AssetFilter, AuditFilter, CsvImportError, NewSession, SessionStage, Store, StoreError,
};
use time::{Duration, OffsetDateTime};

fn spec(id: &str, care_area: &str, mac: Option<&str>) -> AssetSpec {
    AssetSpec::validate(&AssetDraft {
        asset_id: id.into(),
        manufacturer: "Baxter".into(),
        model: "Sigma Spectrum".into(),
        serial_number: format!("SN-{id}"),
        firmware_version: "8.00.01".into(),
        care_area: Some(care_area.into()),
        mac_address: mac.map(Into::into),
        software: Some(pumpward_core::inventory::SoftwareField::Text(
            "Wireless Battery Module=v22D28".into(),
        )),
        ..Default::default()
    })
    .unwrap()
}

fn biomed() -> Actor {
    Actor::user("bea.biomed", Some("192.0.2.10".into()))
}

async fn audit_of(store: &Store, action: &str) -> Vec<pumpward_core::audit::AuditRecord> {
    store
        .audit_list(&AuditFilter {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

on_both_backends!(
    asset_create_read_update,
    lifecycle_is_enforced_and_audited,
    list_filters_and_cursor_paging,
    csv_import_is_idempotent_and_all_or_nothing,
    audit_chain_detects_tampering,
    concurrent_appends_keep_one_chain,
    users_sessions_tokens,
    setup_token_is_single_use,
    setup_stays_open_until_an_admin_exists,
    totp_steps_are_single_use,
    last_admin_cannot_be_demoted,
    import_checks_rows_against_each_other_and_new_models,
    streamed_csv_import_spans_batches,
    findings_are_raised_once_and_resolved,
    search_agrees_with_a_scan,
    pki_bookkeeping,
    device_channel_state,
    current_device_certificates_and_fleet_counts,
    library_review_workflow_and_numbering,
    library_publish_is_all_or_nothing,
    network_policy_versions,
    network_quarantine_list,
    advisories_import_idempotently_and_supersede,
    matching_raises_and_resolves_vulnerability_findings,
    inventory_changes_are_matched_without_a_run,
    vulnerability_priority_and_remediation,
    labelled_test_set_precision_and_recall,
    incremental_rematch_leaves_what_a_full_one_would,
    sbom_components_raise_findings_through_nvd_cpe,
    advisory_purls_and_cyclonedx_vex_decide_component_findings,
    advisory_product_cpes_decide_component_findings,
    asset_cpe_names_are_matched_like_sbom_components,
    fleet_vex_validates_and_states_the_findings,
    detection_records_events_alerts_and_incidents,
    incidents_open_from_alerts_list_and_rule_settings,
    library_rollout_waves_reports_and_compliance,
    library_assignment_scopes_rollouts_and_compliance,
    a_library_is_for_the_pumps_that_would_install_it,
    pump_group_delete_is_refused_while_a_library_is_assigned,
    cqi_report_counts_dose_checks_per_area_and_drug,
    detection_inputs_page_without_skipping_or_repeating,
);

fn cert(serial: &str, asset: Option<&str>, days: i64) -> pumpward_store::NewCertificate {
    let now = OffsetDateTime::now_utc();
    pumpward_store::NewCertificate {
        serial: serial.into(),
        kind: if asset.is_some() {
            pumpward_store::CertKind::Device
        } else {
            pumpward_store::CertKind::Server
        },
        asset_id: asset.map(Into::into),
        subject: format!("CN={}", asset.unwrap_or("server")),
        device_serial: asset.map(|a| format!("SN-{a}")),
        not_before: now - Duration::hours(1),
        not_after: now + Duration::days(days),
        fingerprint: format!("fp-{serial}"),
        pem: format!("-----BEGIN CERTIFICATE-----\n{serial}\n-----END CERTIFICATE-----\n"),
    }
}

/// The fleet view's queries: each asset's current device certificate (the
/// unrevoked one that expires last) and the fleet-wide counts over pumps.
async fn current_device_certificates_and_fleet_counts(store: &Store) {
    let admin = Actor::user("ada.admin", None);
    for id in ["P-1", "P-2", "P-3"] {
        store
            .create_asset(&spec(id, "ICU", None), None, &biomed())
            .await
            .unwrap();
    }
    let workstation = AssetSpec::validate(&AssetDraft {
        asset_id: "W-1".into(),
        kind: Some("workstation".into()),
        manufacturer: "Dell".into(),
        model: "OptiPlex".into(),
        serial_number: "SN-W-1".into(),
        firmware_version: "1.0".into(),
        ..Default::default()
    })
    .unwrap();
    store
        .create_asset(&workstation, None, &biomed())
        .await
        .unwrap();
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(store
        .current_device_certificates(&ids(&["P-1", "P-2", "P-3"]))
        .await
        .unwrap()
        .is_empty());
    let none = store
        .fleet_certificate_counts(OffsetDateTime::now_utc() + Duration::days(30))
        .await
        .unwrap();
    assert_eq!((none.pumps, none.enrolled, none.expiring), (3, 0, 0));

    // P-1: an old one, the current one, and a later one that was revoked.
    for (serial, asset, days) in [
        ("c101", "P-1", 10),
        ("c102", "P-1", 400),
        ("c103", "P-1", 500),
        ("c201", "P-2", 5),
        ("c901", "W-1", 3),
    ] {
        store
            .record_certificate(&cert(serial, Some(asset), days), "test", &admin)
            .await
            .unwrap();
    }
    store
        .record_certificate(&cert("c000", None, 3), "server start", &Actor::system())
        .await
        .unwrap();
    store
        .revoke_certificate("c103", "key-compromise", &admin)
        .await
        .unwrap();
    let current = store
        .current_device_certificates(&ids(&["P-1", "P-2", "P-3", "W-1", "P-9"]))
        .await
        .unwrap();
    let mut got: Vec<(&str, &str)> = current
        .iter()
        .map(|(a, c)| (a.as_str(), c.serial.as_str()))
        .collect();
    got.sort();
    assert_eq!(got, [("P-1", "c102"), ("P-2", "c201"), ("W-1", "c901")]);
    assert!(current.values().all(|c| c.revoked_at.is_none()));
    // Only the asked-for assets.
    let one = store
        .current_device_certificates(&ids(&["P-2"]))
        .await
        .unwrap();
    assert_eq!(one.keys().collect::<Vec<_>>(), ["P-2"]);
    assert!(store
        .current_device_certificates(&[])
        .await
        .unwrap()
        .is_empty());

    // Counts cover pumps only: the workstation's certificate and the
    // server certificate do not count.
    let soon = OffsetDateTime::now_utc() + Duration::days(30);
    let c = store.fleet_certificate_counts(soon).await.unwrap();
    assert_eq!((c.pumps, c.enrolled, c.expiring), (3, 2, 1));
    let c = store
        .fleet_certificate_counts(OffsetDateTime::now_utc() + Duration::days(450))
        .await
        .unwrap();
    assert_eq!(c.expiring, 2);
    // Revoking P-2's only certificate un-enrolls it.
    store
        .revoke_certificate("c201", "cessation-of-operation", &admin)
        .await
        .unwrap();
    let c = store.fleet_certificate_counts(soon).await.unwrap();
    assert_eq!((c.pumps, c.enrolled, c.expiring), (3, 1, 0));
}

/// The CA's bookkeeping: one CA, codes spent once and only on their asset,
/// revocation final, CRL numbers strictly increasing, all of it audited.
async fn pki_bookkeeping(store: &Store) {
    use pumpward_store::{CertFilter, CrlRecord, StoredCaMaterial};
    let admin = Actor::user("ada.admin", None);
    let m = StoredCaMaterial {
        issuing_cert_pem: "issuing".into(),
        issuing_key_sealed: "sealed".into(),
        chain_pem: "chain".into(),
        root_key_sealed: Some("root".into()),
        origin: "created".into(),
    };
    assert!(store.ca_material().await.unwrap().is_none());
    store.save_ca_material(&m, &admin).await.unwrap();
    assert_eq!(store.ca_material().await.unwrap(), Some(m.clone()));
    let again = StoredCaMaterial {
        issuing_cert_pem: "other".into(),
        ..m.clone()
    };
    assert!(matches!(
        store.save_ca_material(&again, &admin).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.ca_material().await.unwrap(), Some(m));

    for (id, state) in [
        ("P-1", LifecycleState::InService),
        ("P-2", LifecycleState::InService),
        ("P-3", LifecycleState::Decommissioned),
    ] {
        store
            .create_asset(&spec(id, "ICU", None), Some(state), &biomed())
            .await
            .unwrap();
    }
    let later = OffsetDateTime::now_utc() + Duration::minutes(30);
    // Decommissioned assets cannot be enrolled; unknown assets are not found.
    assert!(matches!(
        store
            .create_enrollment_code("P-3", "h3", later, &biomed())
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .create_enrollment_code("P-9", "h9", later, &biomed())
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let code = store
        .create_enrollment_code("P-1", "h1", later, &biomed())
        .await
        .unwrap();
    assert_eq!(code.device_serial, "SN-P-1");
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        store.usable_enrollment_code("h1", now).await.unwrap(),
        Some(code.clone())
    );
    assert_eq!(
        store
            .usable_enrollment_code("h1", later + Duration::seconds(1))
            .await
            .unwrap(),
        None
    );
    // A code is spent only on its own asset, and only once.
    assert!(matches!(
        store
            .enroll_with_code("h1", &cert("aa01", Some("P-2"), 365), &Actor::system())
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        matches!(
            store.certificate("aa01").await,
            Err(StoreError::NotFound { .. })
        ),
        "nothing recorded"
    );
    let issued = store
        .enroll_with_code("h1", &cert("aa02", Some("P-1"), 365), &Actor::system())
        .await
        .unwrap();
    assert_eq!(issued.asset_id.as_deref(), Some("P-1"));
    assert!(issued.is_valid_at(now));
    assert!(matches!(
        store
            .enroll_with_code("h1", &cert("aa03", Some("P-1"), 365), &Actor::system())
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store
        .usable_enrollment_code("h1", now)
        .await
        .unwrap()
        .is_none());
    // An expired code cannot be spent.
    store
        .create_enrollment_code("P-2", "h2", now + Duration::milliseconds(1), &biomed())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(matches!(
        store
            .enroll_with_code("h2", &cert("aa04", Some("P-2"), 365), &Actor::system())
            .await,
        Err(StoreError::Conflict(_))
    ));

    store
        .record_certificate(&cert("bb01", None, 397), "server start", &Actor::system())
        .await
        .unwrap();
    store
        .record_certificate(&cert("aa05", Some("P-2"), 10), "operator", &admin)
        .await
        .unwrap();
    // Filters: by asset, expiring within 30 days, revoked.
    let (p1, _) = store
        .list_certificates(&CertFilter {
            asset_id: Some("P-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        p1.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
        ["aa02"]
    );
    let soon = CertFilter {
        expiring: Some((now + Duration::days(30), now)),
        ..Default::default()
    };
    let (exp, _) = store.list_certificates(&soon).await.unwrap();
    assert_eq!(
        exp.iter().map(|c| c.serial.as_str()).collect::<Vec<_>>(),
        ["aa05"]
    );

    let r = store
        .revoke_certificate("AA02", "key-compromise", &admin)
        .await
        .unwrap();
    assert_eq!(r.revocation_reason.as_deref(), Some("key-compromise"));
    assert!(!r.is_valid_at(now));
    assert!(matches!(
        store.revoke_certificate("aa02", "superseded", &admin).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .certificate("aa02")
            .await
            .unwrap()
            .revocation_reason
            .as_deref(),
        Some("key-compromise")
    );
    let revoked = store.revoked_certificates(now).await.unwrap();
    assert_eq!(
        revoked
            .iter()
            .map(|c| c.serial.as_str())
            .collect::<Vec<_>>(),
        ["aa02"]
    );
    let (rv, _) = store
        .list_certificates(&CertFilter {
            revoked: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rv.len(), 1);
    // Paging: three certificates, two per page.
    let (page, next) = store
        .list_certificates(&CertFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let (rest, none) = store
        .list_certificates(&CertFilter {
            limit: 2,
            after: next,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((rest.len(), none), (1, None));

    // CRL numbers go up by one, never repeat.
    assert_eq!(store.next_crl_number().await.unwrap(), 1);
    let crl = |n: i64| CrlRecord {
        crl_number: n,
        this_update: "t".into(),
        next_update: "u".into(),
        pem: format!("crl {n}"),
    };
    assert!(matches!(
        store.publish_crl(&crl(2)).await,
        Err(StoreError::Conflict(_))
    ));
    store.publish_crl(&crl(1)).await.unwrap();
    assert!(matches!(
        store.publish_crl(&crl(1)).await,
        Err(StoreError::Conflict(_))
    ));
    store.publish_crl(&crl(2)).await.unwrap();
    assert_eq!(store.latest_crl().await.unwrap().unwrap().pem, "crl 2");

    for (action, n) in [
        ("pki.ca.created", 1),
        ("pki.enrollment_code.create", 2),
        ("pki.certificate.issue", 3),
        ("pki.certificate.revoke", 1),
        ("pki.crl.publish", 2),
    ] {
        assert_eq!(audit_of(store, action).await.len(), n, "{action}");
    }
    assert!(store.audit_verify().await.unwrap().error.is_none());
}

/// The asset ids whose search text contains `needle`, by the definition: a
/// scan with LIKE (what the store did before it had a search index).
async fn scan_for(store: &Store, needle: &str) -> Vec<String> {
    let mut pat = String::from("%");
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pat.push('\\');
        }
        pat.push(c);
    }
    pat.push('%');
    sqlx::query_scalar(
        "SELECT asset_id FROM assets WHERE search_text LIKE $1 ESCAPE '\\' ORDER BY asset_id",
    )
    .bind(pat)
    .fetch_all(store.raw_pool())
    .await
    .unwrap()
}

/// Every asset a search returns, following the cursor page by page.
async fn search_all(
    store: &Store,
    needle: &str,
    care_area: Option<&str>,
    limit: i64,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_assets(&AssetFilter {
                text: Some(needle.into()),
                care_area: care_area.map(Into::into),
                after: after.take(),
                limit,
                ..Default::default()
            })
            .await
            .unwrap();
        out.extend(page.items.iter().map(|a| a.spec.asset_id.to_string()));
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => return out,
        }
    }
}

/// Search walks the first assets in order and asks the trigram index for the
/// rest (SQLite's index may lag a bulk import); whatever path answers, the
/// result must be exactly what a scan finds.
async fn search_agrees_with_a_scan(store: &Store) {
    const N: usize = 2_600; // more than the search's bounded walk (2,000)
    let words = [
        "occlusion",
        "bezel",
        "ÉCRAN",
        "50%_off",
        "say \"hi\"",
        "tab\tstop",
        "loaner",
    ];
    let mut rows = Vec::new();
    for i in 0..N {
        let area = ["ICU", "NICU", "Oncology"][i % 3];
        let mut s = spec(&format!("P-{i:05}"), area, None);
        // Rare words, some of them only beyond the walk.
        let w = words[(i * 7919) % words.len()];
        s.notes = Some(if i % 97 == 0 || i > 2_550 {
            format!("{w} lot-{}", i % 13)
        } else {
            format!("lot-{}", i % 13)
        });
        rows.push(pumpward_core::inventory::csv::ImportRow {
            line: i as u64 + 2,
            spec: s,
            lifecycle_state: None,
        });
    }
    let sum = store
        .import_assets(&rows, false, &Actor::cli())
        .await
        .unwrap();
    assert_eq!(sum.created, N);
    let needles = [
        "occlusion",
        "OCCLUSION",
        "écran",
        "50%_",
        "%",
        "_",
        "say \"hi",
        "\"",
        "tab\tst",
        "loaner lot-1",
        "lot-12",
        "p-02599",
        "p-0259",
        "sn-p-01234",
        "zz",
        "x",
        "baxter",
        "no such thing here",
        "ré",
        "lot-",
    ];
    let check = |stage: &'static str| async move {
        for n in needles {
            let want = scan_for(store, n).await;
            assert_eq!(
                search_all(store, n, None, 500).await,
                want,
                "{stage}: {n:?}"
            );
            assert_eq!(
                search_all(store, n, None, 7).await.len(),
                want.len(),
                "{stage}, small pages: {n:?}"
            );
        }
        // With a filter the walk covers a third of the care area's assets.
        let icu: Vec<String> = scan_for(store, "loaner")
            .await
            .into_iter()
            .filter(|id| id[2..].parse::<usize>().unwrap() % 3 == 0)
            .collect();
        assert_eq!(
            search_all(store, "loaner", Some("ICU"), 3).await,
            icu,
            "{stage}"
        );
    };
    // Straight after the import the index may not have caught up yet.
    check("before catch-up").await;
    store.catch_up_search_index().await.unwrap();
    assert_eq!(
        store.catch_up_search_index().await.unwrap(),
        0,
        "idempotent"
    );
    check("after catch-up").await;
    // Single-asset writes keep the index current: an update and a create.
    let mut a = store.asset("P-02599").await.unwrap();
    a.spec.notes = Some("returned to vendor".into());
    store
        .update_asset(&a.spec, a.version, &biomed())
        .await
        .unwrap();
    store
        .create_asset(
            &{
                let mut s = spec("Q-00001", "ICU", None);
                s.notes = Some("Occlusion sensor replaced".into());
                s
            },
            None,
            &biomed(),
        )
        .await
        .unwrap();
    assert!(search_all(store, "returned to vendor", None, 50).await == ["P-02599"]);
    check("after single writes").await;
    assert!(scan_for(store, "occlusion")
        .await
        .contains(&"Q-00001".to_string()));
}

async fn import_checks_rows_against_each_other_and_new_models(store: &Store) {
    let head = "asset_id,manufacturer,model,serial_number,firmware_version,mac_address\n";
    let two_macs = format!(
        "{head}N-1,BD,Alaris 8015 PC Unit,S1,9.33.1,02:00:00:00:09:01\nN-2,BD,Alaris 8015 PC Unit,S2,9.33.1,02:00:00:00:09:01\n"
    );
    let parsed = read_assets_csv(two_macs.as_bytes(), &CsvLimits::default()).unwrap();
    let r = store
        .import_assets(&parsed.rows, false, &Actor::cli())
        .await
        .unwrap();
    assert_eq!(r.refused.len(), 1);
    assert_eq!(r.refused[0].0, 3);
    assert!(r.refused[0].2.contains("N-1"), "{:?}", r.refused);
    assert!(store
        .list_assets(&AssetFilter::default())
        .await
        .unwrap()
        .items
        .is_empty());

    // Swapping MACs between two stored assets in one file is refused, not half-done.
    let ok = format!("{head}N-1,BD,Alaris 8015 PC Unit,S1,9.33.1,02:00:00:00:09:01\nN-2,BD,Alaris 8015 PC Unit,S2,9.33.1,02:00:00:00:09:02\n");
    let parsed = read_assets_csv(ok.as_bytes(), &CsvLimits::default()).unwrap();
    assert_eq!(
        store
            .import_assets(&parsed.rows, false, &Actor::cli())
            .await
            .unwrap()
            .created,
        2
    );

    // An update moves N-1 to a new model, and a new row uses the same new model.
    let moved = format!("{head}N-1,BD,Alaris PC Unit 8015 (rebadged),S1,9.33.1,02:00:00:00:09:01\nN-3,BD,Alaris PC Unit 8015 (rebadged),S3,12.1.2,\n");
    let parsed = read_assets_csv(moved.as_bytes(), &CsvLimits::default()).unwrap();
    let r = store
        .import_assets(&parsed.rows, false, &Actor::cli())
        .await
        .unwrap();
    assert_eq!(
        (r.created, r.updated, r.refused.len()),
        (1, 1, 0),
        "{:?}",
        r.refused
    );
    let models = store.list_models().await.unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(
        store.asset("N-3").await.unwrap().spec.model,
        "Alaris PC Unit 8015 (rebadged)"
    );
    let history = store.lifecycle_history("N-3").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].to_state, LifecycleState::Received);
    assert!(store.audit_verify().await.unwrap().error.is_none());
    let creates = audit_of(store, "asset.create").await;
    assert_eq!(creates.len(), 3);
}

async fn asset_create_read_update(store: &Store) {
    let s = spec("PUMP-1", "Adult ICU", Some("02:00:00:00:00:01"));
    let a = store.create_asset(&s, None, &biomed()).await.unwrap();
    assert_eq!(a.lifecycle_state, LifecycleState::Received);
    assert_eq!(a.version, 1);
    assert_eq!(store.asset("PUMP-1").await.unwrap().spec, s);
    // The model was added to the catalogue.
    let models = store.list_models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].1.model, "Sigma Spectrum");

    // A duplicate id, MAC or serial is a conflict that names the other asset.
    assert!(matches!(
        store.create_asset(&s, None, &biomed()).await,
        Err(StoreError::Conflict(_))
    ));
    let clash = spec("PUMP-2", "Adult ICU", Some("02:00:00:00:00:01"));
    match store.create_asset(&clash, None, &biomed()).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("PUMP-1"), "{m}"),
        other => panic!("expected conflict, got {other:?}"),
    }

    let mut s2 = s.clone();
    s2.firmware_version = "8.01.00".into();
    let a2 = store.update_asset(&s2, 1, &biomed()).await.unwrap();
    assert_eq!(a2.version, 2);
    // A stale version is refused and changes nothing.
    let mut s3 = s.clone();
    s3.location = Some("4 West".into());
    assert!(matches!(
        store.update_asset(&s3, 1, &biomed()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.asset("PUMP-1").await.unwrap().spec.firmware_version,
        "8.01.00"
    );

    let upd = audit_of(store, "asset.update").await;
    assert_eq!(upd.len(), 1);
    let details: serde_json::Value =
        serde_json::from_str(upd[0].entry.details.as_deref().unwrap()).unwrap();
    assert_eq!(
        details["changed"]["firmware_version"],
        serde_json::json!(["8.00.01", "8.01.00"])
    );
    assert_eq!(upd[0].entry.actor, "user:bea.biomed");
    assert_eq!(upd[0].entry.source.as_deref(), Some("192.0.2.10"));
    assert!(matches!(
        store.asset("NOPE").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn lifecycle_is_enforced_and_audited(store: &Store) {
    let s = spec("PUMP-1", "NICU", None);
    store
        .create_asset(&s, Some(LifecycleState::Provisioned), &biomed())
        .await
        .unwrap();
    let a = store
        .transition_asset(
            "PUMP-1",
            LifecycleState::InService,
            "commissioned",
            &biomed(),
        )
        .await
        .unwrap();
    assert_eq!(a.lifecycle_state, LifecycleState::InService);

    let err = store
        .transition_asset("PUMP-1", LifecycleState::Disposed, "oops", &biomed())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Transition(_)), "{err}");
    assert_eq!(
        store.asset("PUMP-1").await.unwrap().lifecycle_state,
        LifecycleState::InService
    );
    assert!(matches!(
        store
            .transition_asset("PUMP-1", LifecycleState::Quarantined, "  ", &biomed())
            .await,
        Err(StoreError::Invalid(_))
    ));

    store
        .transition_asset("PUMP-1", LifecycleState::Quarantined, "alert 17", &biomed())
        .await
        .unwrap();
    let h = store.lifecycle_history("PUMP-1").await.unwrap();
    let path: Vec<_> = h
        .iter()
        .map(|e| (e.from_state, e.to_state, e.reason.as_str()))
        .collect();
    assert_eq!(
        path,
        [
            (None, LifecycleState::Provisioned, "created"),
            (
                Some(LifecycleState::Provisioned),
                LifecycleState::InService,
                "commissioned"
            ),
            (
                Some(LifecycleState::InService),
                LifecycleState::Quarantined,
                "alert 17"
            ),
        ]
    );
    let t = audit_of(store, "asset.transition").await;
    let outcomes: Vec<_> = t.iter().rev().map(|r| r.entry.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Success, Outcome::Denied, Outcome::Success]
    );
    assert!(store.audit_verify().await.unwrap().error.is_none());
}

async fn list_filters_and_cursor_paging(store: &Store) {
    for i in 0..25 {
        let area = if i % 2 == 0 { "Oncology" } else { "Pediatrics" };
        let mut s = spec(&format!("P-{i:03}"), area, None);
        if i == 7 {
            s.notes = Some("Cracked HOUSING, 50% bezel".into());
        }
        store.create_asset(&s, None, &biomed()).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_assets(&AssetFilter {
                care_area: Some("Oncology".into()),
                after: after.clone(),
                limit: 5,
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|a| a.spec.asset_id.to_string()));
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("P-{i:03}"))
        .collect();
    assert_eq!(seen, expected);

    let text = |t: &str| AssetFilter {
        text: Some(t.into()),
        limit: 50,
        ..Default::default()
    };
    let hits = store.list_assets(&text("housing")).await.unwrap();
    assert_eq!(hits.items.len(), 1);
    assert_eq!(hits.items[0].spec.asset_id.as_str(), "P-007");
    // LIKE metacharacters in the query are literal.
    assert_eq!(
        store.list_assets(&text("50%")).await.unwrap().items.len(),
        1
    );
    assert_eq!(
        store.list_assets(&text("5_%")).await.unwrap().items.len(),
        0
    );
    let st = AssetFilter {
        state: Some(LifecycleState::InService),
        limit: 50,
        ..Default::default()
    };
    assert!(store.list_assets(&st).await.unwrap().items.is_empty());
    let (by_state, by_area) = store.asset_counts().await.unwrap();
    assert_eq!(by_state, [("received".to_string(), 25)]);
    assert_eq!(
        by_area,
        [("Oncology".to_string(), 13), ("Pediatrics".to_string(), 12)]
    );
}

async fn csv_import_is_idempotent_and_all_or_nothing(store: &Store) {
    let csv =
        "asset_id,manufacturer,model,serial_number,firmware_version,mac_address,lifecycle_state\n\
               A-1,BD,Alaris 8015 PC Unit,S1,9.33.1,02:00:00:00:01:01,in_service\n\
               A-2,BD,Alaris 8015 PC Unit,S2,12.1.2,,received\n";
    let parsed = read_assets_csv(csv.as_bytes(), &CsvLimits::default()).unwrap();
    assert!(parsed.errors.is_empty());
    let first = store
        .import_assets(&parsed.rows, false, &Actor::cli())
        .await
        .unwrap();
    assert_eq!((first.created, first.updated, first.unchanged), (2, 0, 0));
    let head = store.audit_head().await.unwrap();
    let again = store
        .import_assets(&parsed.rows, false, &Actor::cli())
        .await
        .unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 2));
    // Only the import's own summary record was added.
    assert_eq!(store.audit_head().await.unwrap().seq, head.seq + 1);

    // A row the store refuses (MAC of another asset) rolls back the whole file.
    let bad = "asset_id,manufacturer,model,serial_number,firmware_version,mac_address\n\
               A-3,BD,Alaris 8015 PC Unit,S3,9.33.1,\n\
               A-4,BD,Alaris 8015 PC Unit,S4,9.33.1,02:00:00:00:01:01\n";
    let parsed = read_assets_csv(bad.as_bytes(), &CsvLimits::default()).unwrap();
    let head = store.audit_head().await.unwrap();
    let r = store
        .import_assets(&parsed.rows, false, &Actor::cli())
        .await
        .unwrap();
    assert_eq!(r.refused.len(), 1);
    assert_eq!(r.refused[0].0, 3);
    assert!(r.refused[0].2.contains("A-1"), "{:?}", r.refused);
    assert!(matches!(
        store.asset("A-3").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.audit_head().await.unwrap(), head);
    // With skip, the good row lands.
    let r = store
        .import_assets(&parsed.rows, true, &Actor::cli())
        .await
        .unwrap();
    assert_eq!((r.created, r.refused.len()), (1, 1));
    assert!(store.asset("A-3").await.is_ok());

    // An illegal lifecycle change in a file is refused, naming the line.
    let back = "asset_id,manufacturer,model,serial_number,firmware_version,lifecycle_state\n\
                A-1,BD,Alaris 8015 PC Unit,S1,9.33.1,procured\n";
    let parsed = read_assets_csv(back.as_bytes(), &CsvLimits::default()).unwrap();
    let r = store
        .import_assets(&parsed.rows, false, &Actor::cli())
        .await
        .unwrap();
    assert_eq!(r.refused.len(), 1);
    assert!(
        r.refused[0]
            .2
            .contains("cannot go from in_service to procured"),
        "{:?}",
        r.refused
    );
    assert_eq!(
        store.asset("A-1").await.unwrap().lifecycle_state,
        LifecycleState::InService
    );
}

async fn audit_chain_detects_tampering(store: &Store) {
    for i in 0..6 {
        store
            .create_asset(&spec(&format!("T-{i}"), "ED", None), None, &biomed())
            .await
            .unwrap();
    }
    let ok = store.audit_verify().await.unwrap();
    assert!(ok.error.is_none());
    assert_eq!(ok.records, ok.head.seq);
    assert!(ok.records >= 7);
    let pool = store.raw_pool();

    sqlx::query("UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 4")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        store.audit_verify().await.unwrap().error,
        Some(ChainError::Altered { seq: 4 })
    );
    sqlx::query("DELETE FROM audit_log WHERE seq = 4")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(
        store
            .audit_verify()
            .await
            .unwrap()
            .error
            .unwrap()
            .first_bad_seq(),
        5
    );
}

async fn concurrent_appends_keep_one_chain(store: &Store) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..15 {
                s.audit(
                    Actor::system()
                        .entry("test.concurrent", Outcome::Success)
                        .object(format!("t{t}-{i}")),
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = store.audit_verify().await.unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.records, 120);
}

async fn users_sessions_tokens(store: &Store) {
    let admin = store
        .create_user(
            "ada",
            "Ada Admin",
            Role::Admin,
            "$argon2id$fake",
            true,
            &Actor::cli(),
        )
        .await
        .unwrap();
    // Setup-style creation refuses once a user exists.
    assert!(matches!(
        store
            .create_user("eve", "Eve", Role::Admin, "x", true, &Actor::cli())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let bob = store
        .create_user("bob", "Bob Biomed", Role::Biomed, "h", false, &Actor::cli())
        .await
        .unwrap();
    assert!(store
        .create_user("bob", "Bob", Role::Biomed, "h", false, &Actor::cli())
        .await
        .is_err());

    let now = OffsetDateTime::now_utc();
    store
        .create_session(&NewSession {
            token_hash: "s1".into(),
            user_id: bob.id,
            stage: SessionStage::Active,
            csrf_token: "c".into(),
            source: None,
            expires_at: now + Duration::hours(8),
        })
        .await
        .unwrap();
    let s = store.session("s1").await.unwrap().unwrap();
    assert_eq!(
        (s.user.username.as_str(), s.stage),
        ("bob", SessionStage::Active)
    );
    // Changing the role ends the sessions opened under the old role.
    store
        .update_user(bob.id, Role::Clinician, false, &Actor::user("ada", None))
        .await
        .unwrap();
    assert!(store.session("s1").await.unwrap().is_none());

    let tok = store
        .create_api_token(
            &admin,
            "cmms sync",
            "th",
            &[Permission::InventoryRead],
            now + Duration::days(30),
            &Actor::user("ada", None),
        )
        .await
        .unwrap();
    let (t, u) = store.api_token_by_hash("th").await.unwrap().unwrap();
    assert_eq!(
        (t.id, u.id, t.scopes.clone()),
        (tok.id, admin.id, vec![Permission::InventoryRead])
    );
    // Someone else's token cannot be revoked as one's own.
    assert!(store
        .revoke_api_token(tok.id, Some(bob.id), &Actor::user("bob", None))
        .await
        .is_err());
    store
        .revoke_api_token(tok.id, Some(admin.id), &Actor::user("ada", None))
        .await
        .unwrap();
    assert!(store.api_token(tok.id).await.unwrap().revoked_at.is_some());

    let failures = [now - Duration::minutes(3), now - Duration::minutes(1)];
    for f in failures {
        store.record_login_failure("bob", f).await.unwrap();
    }
    assert_eq!(
        store
            .login_failures_since("bob", now - Duration::minutes(2))
            .await
            .unwrap()
            .len(),
        1
    );
    store.clear_login_failures("bob").await.unwrap();
    assert!(store
        .login_failures_since("bob", now - Duration::hours(1))
        .await
        .unwrap()
        .is_empty());
    assert!(store.mfa_required(Role::Admin).await.unwrap());
    assert!(!store.mfa_required(Role::Biomed).await.unwrap());
    store
        .set_mfa_required(Role::Biomed, true, &Actor::user("ada", None))
        .await
        .unwrap();
    assert!(store.mfa_required(Role::Biomed).await.unwrap());
    assert!(store.audit_verify().await.unwrap().error.is_none());
}

async fn setup_token_is_single_use(store: &Store) {
    let now = OffsetDateTime::now_utc();
    store
        .create_setup_token("expired", now - Duration::seconds(1))
        .await
        .unwrap();
    assert!(store
        .complete_setup("expired", "root", "Root", "h", None)
        .await
        .is_err());
    store
        .create_setup_token("st", now + Duration::minutes(30))
        .await
        .unwrap();
    assert!(store.setup_token_valid("st", now).await.unwrap());
    let u = store
        .complete_setup("st", "root", "Root", "h", Some("127.0.0.1".into()))
        .await
        .unwrap();
    assert_eq!(u.role, Role::Admin);
    assert!(!store.setup_token_valid("st", now).await.unwrap());
    assert!(store
        .complete_setup("st", "root2", "Root", "h", None)
        .await
        .is_err());
    assert_eq!(store.user_count().await.unwrap(), 1);
    assert_eq!(store.admin_count().await.unwrap(), 1);
    // With an administrator, a fresh token cannot make a second one.
    store
        .create_setup_token("st2", now + Duration::minutes(30))
        .await
        .unwrap();
    assert!(matches!(
        store
            .complete_setup("st2", "root3", "Root", "h", None)
            .await,
        Err(StoreError::Conflict(_))
    ));
}

/// A service account (the demo's simulated fleet) does not close
/// first-start setup; only an administrator does.
async fn setup_stays_open_until_an_admin_exists(store: &Store) {
    store
        .create_user("fleet", "Fleet", Role::Biomed, "h", false, &Actor::cli())
        .await
        .unwrap();
    assert_eq!(store.admin_count().await.unwrap(), 0);
    let now = OffsetDateTime::now_utc();
    store
        .create_setup_token("st", now + Duration::minutes(30))
        .await
        .unwrap();
    let u = store
        .complete_setup("st", "root", "Root", "h", None)
        .await
        .unwrap();
    assert_eq!(u.role, Role::Admin);
    assert_eq!(store.admin_count().await.unwrap(), 1);
}

async fn totp_steps_are_single_use(store: &Store) {
    let u = store
        .create_user("tess", "Tess", Role::Security, "h", false, &Actor::cli())
        .await
        .unwrap();
    store
        .set_totp(u.id, Some("JBSWY3DPEHPK3PXP"), Some(99), &Actor::cli())
        .await
        .unwrap();
    // The enrolment code's step counts as used.
    assert!(!store.claim_totp_step(u.id, 99).await.unwrap());
    assert!(store.claim_totp_step(u.id, 100).await.unwrap());
    assert!(!store.claim_totp_step(u.id, 100).await.unwrap());
    assert!(!store.claim_totp_step(u.id, 99).await.unwrap());
    assert!(store.claim_totp_step(u.id, 101).await.unwrap());
}

async fn last_admin_cannot_be_demoted(store: &Store) {
    let a = store
        .create_user("ada", "Ada", Role::Admin, "h", false, &Actor::cli())
        .await
        .unwrap();
    assert!(matches!(
        store
            .update_user(a.id, Role::Auditor, false, &Actor::cli())
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .update_user(a.id, Role::Admin, true, &Actor::cli())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let b = store
        .create_user("bea", "Bea", Role::Admin, "h", false, &Actor::cli())
        .await
        .unwrap();
    store
        .update_user(a.id, Role::Auditor, false, &Actor::cli())
        .await
        .unwrap();
    assert_eq!(
        store.user_by_id(b.id).await.unwrap().unwrap().role,
        Role::Admin
    );
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys_and_full_sync() {
    use sqlx::Row;
    let f = common::sqlite().await;
    let mut conn = f.store.raw_pool().acquire().await.unwrap();
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(fk, 1);
    let sync: i64 = sqlx::query("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        sync, 2,
        "FULL: a commit is on disk before it is acknowledged"
    );
    // A lifecycle event for a missing asset is refused by the foreign key.
    let r = sqlx::query("INSERT INTO lifecycle_events (asset_id, from_state, to_state, actor, reason, at) VALUES ('ghost', NULL, 'received', 'x', 'y', 'z')")
        .execute(&mut *conn)
        .await;
    assert!(r.is_err());
}

#[tokio::test]
async fn migrations_are_idempotent_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_sqlite(dir.path()).await.unwrap();
    s.create_asset(&spec("R-1", "ED", None), None, &biomed())
        .await
        .unwrap();
    s.close().await;
    let s = Store::open_sqlite(dir.path()).await.unwrap();
    assert!(s.asset("R-1").await.is_ok());
    assert!(s.audit_verify().await.unwrap().error.is_none());
}

/// What the gateway keeps: hello facts into the inventory (audited), the
/// firmware digest check, events stored once, the stored sequence only
/// moving forward, gaps, and who may stay connected.
async fn device_channel_state(store: &Store) {
    use pumpward_store::{DeviceBatch, DeviceEventRecord, DeviceHello, FirmwareCheck};
    store
        .create_asset(
            &spec("P-1", "ICU", None),
            Some(LifecycleState::InService),
            &biomed(),
        )
        .await
        .unwrap();
    let digest = "ab".repeat(32);
    assert!(matches!(
        store
            .set_expected_firmware("Baxter", "Sigma Spectrum", "8.00.01", "not-hex", &biomed())
            .await,
        Err(StoreError::Invalid(_))
    ));
    store
        .set_expected_firmware("Baxter", "Sigma Spectrum", "8.00.01", &digest, &biomed())
        .await
        .unwrap();
    let hello = |fw: &str, d: &str| DeviceHello {
        asset_id: "P-1".into(),
        certificate_serial: "c1".into(),
        protocol_version: 1,
        firmware_version: fw.into(),
        firmware_digest: d.into(),
        library_version: None,
        network: "{}".into(),
        ip: Some("10.1.2.3".parse().unwrap()),
        source: "10.1.2.3".into(),
    };
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        store
            .device_hello(&hello("8.00.01", &digest.to_uppercase()), now)
            .await
            .unwrap(),
        FirmwareCheck::Expected
    );
    let a = store.asset("P-1").await.unwrap();
    assert_eq!(
        a.spec.ip_address.map(|i| i.to_string()).as_deref(),
        Some("10.1.2.3")
    );
    assert!(a.last_seen.is_some());
    assert_eq!(
        store
            .device_hello(&hello("8.00.01", &"cd".repeat(32)), now)
            .await
            .unwrap(),
        FirmwareCheck::Mismatch {
            expected: digest.clone()
        }
    );
    assert_eq!(audit_of(store, "device.firmware_integrity").await.len(), 1);
    // A new firmware version is recorded in the inventory, audited.
    assert_eq!(
        store
            .device_hello(&hello("8.01.00", &"ef".repeat(32)), now)
            .await
            .unwrap(),
        FirmwareCheck::Unknown
    );
    assert_eq!(
        store.asset("P-1").await.unwrap().spec.firmware_version,
        "8.01.00"
    );
    assert!(audit_of(store, "asset.update")
        .await
        .iter()
        .any(|r| r.entry.actor == "device:P-1"));

    let ev = |seq: i64| DeviceEventRecord {
        seq,
        at: "2026-11-26T10:00:00.000000Z".into(),
        kind: "alarm".into(),
        body: format!("{{\"seq\":{seq}}}"),
    };
    let batch = |events: Vec<i64>, gaps: Vec<(u64, u64)>| DeviceBatch {
        asset_id: "P-1".into(),
        events: events.into_iter().map(ev).collect(),
        gaps,
        library_reports: Vec::new(),
    };
    store
        .store_device_batches(&[batch(vec![1, 2, 3], vec![])], now)
        .await
        .unwrap();
    // A replay (lost ack) stores nothing twice; a gap is recorded; the
    // stored sequence never goes back.
    store
        .store_device_batches(
            &[batch(vec![2, 3], vec![]), batch(vec![7], vec![(4, 6)])],
            now,
        )
        .await
        .unwrap();
    store
        .store_device_batches(&[batch(vec![], vec![])], now)
        .await
        .unwrap();
    let seqs: Vec<i64> = store
        .device_events("P-1", 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 7]);
    // Pumps with events of one kind since a time (by the pump's clock),
    // with their counts.
    let at = |s: &str| pumpward_core::timefmt::parse(s).unwrap();
    assert_eq!(
        store
            .device_event_counts("alarm", at("2026-11-26T10:00:00.000000Z"))
            .await
            .unwrap(),
        [("P-1".to_owned(), 4)]
    );
    assert!(store
        .device_event_counts("alarm", at("2026-11-26T10:00:01.000000Z"))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .device_event_counts("library_rejected", at("2026-11-26T09:00:00.000000Z"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.device_gaps("P-1").await.unwrap(), [(4, 6)]);
    assert_eq!(store.device_last_seq("P-1").await.unwrap(), 7);
    assert_eq!(store.device_last_seq("NO-SUCH-PUMP").await.unwrap(), 0);
    // device_channel.last_seq is a floor (what a retention job leaves
    // behind when it deletes events): a higher value there wins.
    sqlx::query("UPDATE device_channel SET last_seq = 100 WHERE asset_id = 'P-1'")
        .execute(store.raw_pool())
        .await
        .unwrap();
    assert_eq!(store.device_last_seq("P-1").await.unwrap(), 100);

    // Who may stay connected: an unrevoked certificate of an asset that may connect.
    let c = pumpward_store::NewCertificate {
        serial: "c1".into(),
        kind: pumpward_store::CertKind::Device,
        asset_id: Some("P-1".into()),
        subject: "CN=P-1".into(),
        device_serial: Some("SN-P-1".into()),
        not_before: now - Duration::hours(1),
        not_after: now + Duration::days(1),
        fingerprint: "fp-c1".into(),
        pem: "pem".into(),
    };
    store
        .record_certificate(&c, "test", &biomed())
        .await
        .unwrap();
    let pair = vec![("P-1".to_string(), "c1".to_string())];
    assert_eq!(store.connectable(&pair).await.unwrap().len(), 1);
    store
        .transition_asset(
            "P-1",
            LifecycleState::Quarantined,
            "suspected compromise",
            &biomed(),
        )
        .await
        .unwrap();
    assert!(
        store.connectable(&pair).await.unwrap().is_empty(),
        "quarantined"
    );
    store
        .transition_asset("P-1", LifecycleState::InService, "cleared", &biomed())
        .await
        .unwrap();
    assert_eq!(store.connectable(&pair).await.unwrap().len(), 1);
    store
        .revoke_certificate("c1", "key-compromise", &biomed())
        .await
        .unwrap();
    assert!(
        store.connectable(&pair).await.unwrap().is_empty(),
        "revoked"
    );
    assert!(store.audit_verify().await.unwrap().error.is_none());
}

/// How many assets the store holds (by care area counts).
async fn asset_total(store: &Store) -> i64 {
    store
        .asset_counts()
        .await
        .unwrap()
        .0
        .iter()
        .map(|(_, n)| n)
        .sum()
}

/// A CSV of `n` new pumps; row `i` (1-based) is on line `i + 1`. Rows from
/// `second_model_from` on are of a model the catalogue does not know yet.
fn fleet_csv(n: usize, second_model_from: usize, edit: impl Fn(usize, String) -> String) -> String {
    let mut out = String::from(
        "asset_id,manufacturer,model,serial_number,firmware_version,mac_address,care_area\n",
    );
    for i in 1..=n {
        let model = if i >= second_model_from {
            "Sigma Spectrum IQ"
        } else {
            "Sigma Spectrum"
        };
        let row = format!(
            "F-{i:05},Baxter,{model},SN{i:05},8.00.01,02:00:00:01:{:02x}:{:02x},Area {}\n",
            i / 256,
            i % 256,
            i % 7
        );
        out.push_str(&edit(i, row));
    }
    out
}

/// The streamed CSV import (a parsing thread feeding the store) across many
/// batches and statements: rows that need the database in mid-stream (a new
/// model, an existing asset), invalid rows, refused rows and a file that
/// breaks down halfway all leave the store as it was, or import exactly the
/// rows they should.
async fn streamed_csv_import_spans_batches(store: &Store) {
    let actor = Actor::cli();
    let import = |csv: String, skip: bool, limits: CsvLimits| {
        let actor = actor.clone();
        async move {
            store
                .import_assets_csv(std::io::Cursor::new(csv.into_bytes()), limits, skip, &actor)
                .await
        }
    };
    let n = 2500;
    // One invalid MAC on line 1801: nothing is imported, the row is named.
    let bad_row = |i: usize, row: String| {
        if i == 1800 {
            row.replace("02:00:00:01:07:08", "zz:zz")
        } else {
            row
        }
    };
    let r = import(fleet_csv(n, 1200, bad_row), false, CsvLimits::default())
        .await
        .unwrap();
    assert!(!r.committed);
    assert_eq!(r.invalid_rows.len(), 1, "{:?}", r.invalid_rows);
    assert_eq!(r.invalid_rows[0].line, 1801);
    assert_eq!(r.summary.created, 0);
    assert_eq!(asset_total(store).await, 0);
    assert!(store.list_models().await.unwrap().is_empty());
    assert!(audit_of(store, "asset.create").await.is_empty());

    // Skipping invalid rows imports the others, both models included.
    let r = import(fleet_csv(n, 1200, bad_row), true, CsvLimits::default())
        .await
        .unwrap();
    assert!(r.committed);
    assert_eq!((r.summary.created, r.invalid_rows.len()), (n - 1, 1));
    assert_eq!(asset_total(store).await, (n - 1) as i64);
    assert_eq!(store.list_models().await.unwrap().len(), 2);
    assert_eq!(
        store.asset("F-02000").await.unwrap().spec.model,
        "Sigma Spectrum IQ"
    );
    let report = store.audit_verify().await.unwrap();
    assert!(report.error.is_none(), "{:?}", report.error);
    // n - 1 assets, 2 models, the import itself.
    assert!(report.records >= (n + 2) as i64, "{}", report.records);
    let history = store.lifecycle_history("F-02500").await.unwrap();
    assert_eq!(history.len(), 1);

    // Again, with the skipped row fixed, one row changed in mid-stream and a
    // new row at the end.
    let changed = |i: usize, row: String| {
        if i == 1500 {
            row.replace("8.00.01", "8.00.02")
        } else {
            row
        }
    };
    let mut csv = fleet_csv(n, 1200, changed);
    csv.push_str("F-09999,Baxter,Sigma Spectrum,SN09999,8.00.01,,Area 1\n");
    let r = import(csv, false, CsvLimits::default()).await.unwrap();
    assert!(r.committed, "{:?}", r.summary.refused);
    assert_eq!(
        (r.summary.created, r.summary.updated, r.summary.unchanged),
        (2, 1, n - 2)
    );
    assert_eq!(
        store.asset("F-01500").await.unwrap().spec.firmware_version,
        "8.00.02"
    );
    let before = asset_total(store).await;

    // A new row claiming a stored asset's MAC on line 2001: nothing changes.
    let clash = |i: usize, row: String| {
        if i == 2000 {
            format!("X-00001,Baxter,Sigma Spectrum,SNX1,8.00.01,02:00:00:01:00:01,Area 1\n{row}")
        } else {
            row
        }
    };
    let r = import(fleet_csv(n, 1200, clash), false, CsvLimits::default())
        .await
        .unwrap();
    assert!(!r.committed);
    assert_eq!(r.summary.refused.len(), 1);
    assert_eq!(r.summary.refused[0].0, 2001);
    assert!(
        r.summary.refused[0].2.contains("F-00001"),
        "{:?}",
        r.summary.refused
    );
    assert_eq!(asset_total(store).await, before);
    assert!(matches!(
        store.asset("X-00001").await,
        Err(StoreError::NotFound { .. })
    ));

    // A record over the size limit on line 1502 makes the file unusable.
    let long = |i: usize, row: String| {
        if i == 1501 {
            row.replace("Area", &"A".repeat(400))
        } else {
            row
        }
    };
    let limits = CsvLimits {
        max_record_bytes: 200,
        ..CsvLimits::default()
    };
    let e = import(fleet_csv(n, 1200, long), false, limits)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            CsvImportError::Csv(CsvError::RecordTooLong { line: 1502, .. })
        ),
        "{e}"
    );
    assert_eq!(asset_total(store).await, before);
    assert!(store.audit_verify().await.unwrap().error.is_none());
}

/// A check that sees the same condition every hour raises one finding and
/// one audit record; resolving closes it, and a later recurrence is a new
/// finding.
async fn findings_are_raised_once_and_resolved(store: &Store) {
    use pumpward_store::{FindingFilter, NewFinding, Severity};
    let sys = Actor::system();
    let f = |days: i64| NewFinding {
        kind: "certificate.expiring".into(),
        subject: "certificate:0a1b".into(),
        asset_id: Some("PUMP-7".into()),
        severity: Severity::Medium,
        title: "Device certificate expires in 20 days".into(),
        evidence: serde_json::json!({ "days_left": days }),
    };
    let (first, new) = store.raise_finding(&f(20), &sys).await.unwrap();
    assert!(new);
    assert_eq!(first.state, "open");
    let (again, new) = store.raise_finding(&f(19), &sys).await.unwrap();
    assert!(!new);
    assert_eq!(again.id, first.id);
    assert_eq!(again.evidence["days_left"], 19, "the evidence is refreshed");
    assert_eq!(audit_of(store, "finding.raise").await.len(), 1);

    // Another subject is another finding; filters select.
    let mut other = f(5);
    other.subject = "certificate:ffff".into();
    other.asset_id = Some("PUMP-8".into());
    store.raise_finding(&other, &sys).await.unwrap();
    let (open, _) = store
        .list_findings(&FindingFilter {
            open: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
    let (mine, _) = store
        .list_findings(&FindingFilter {
            asset_id: Some("PUMP-7".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![first.id]
    );

    let done = store
        .resolve_finding("certificate.expiring", "certificate:0a1b", "renewed", &sys)
        .await
        .unwrap()
        .expect("an open finding");
    assert_eq!(
        (done.state.as_str(), done.resolution.as_deref()),
        ("resolved", Some("renewed"))
    );
    assert!(store
        .resolve_finding("certificate.expiring", "certificate:0a1b", "renewed", &sys)
        .await
        .unwrap()
        .is_none());
    assert_eq!(audit_of(store, "finding.resolve").await.len(), 1);

    // The condition comes back: a new finding, the old one stays resolved.
    let (back, new) = store.raise_finding(&f(3), &sys).await.unwrap();
    assert!(new);
    assert_ne!(back.id, first.id);
    assert_eq!(store.finding(first.id).await.unwrap().state, "resolved");
    let (page, next) = store
        .list_findings(&FindingFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].id, back.id, "newest first");
    let (rest, _) = store
        .list_findings(&FindingFilter {
            before_id: next,
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    assert!(store.audit_verify().await.unwrap().error.is_none());
}

// ---- drug libraries ----

fn pharmacist(name: &str) -> Actor {
    Actor::user(name, Some("192.0.2.20".into()))
}

fn library_draft(lib: &pumpward_druglib::Library) -> pumpward_store::NewLibraryDraft {
    pumpward_store::NewLibraryDraft {
        library_id: lib.id.clone(),
        name: lib.name.clone(),
        content: String::from_utf8(pumpward_druglib::json::to_canonical_json(lib)).unwrap(),
    }
}

/// The real NVD record of CVE-2022-25638 edited to another CVE whose
/// first vulnerable criterion is `criteria` before `end_excluding`.
fn edited_nvd_record(cve: &str, criteria: &str, end_excluding: &str) -> serde_json::Value {
    let mut nvd: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/sbom/CVE-2022-25638.json"
        ))
        .unwrap(),
    )
    .unwrap();
    nvd["id"] = cve.into();
    let m = &mut nvd["configurations"][0]["nodes"][0]["cpeMatch"][0];
    m["criteria"] = criteria.into();
    m["versionEndExcluding"] = end_excluding.into();
    nvd
}

/// Pharmacist ann drafts and submits `lib`; pharmacist bob approves and
/// publishes it (fake signature): the two-person path the library tests
/// start from.
async fn publish_by_ann_and_bob(store: &Store, lib: &pumpward_druglib::Library) {
    let (ann, bob) = (pharmacist("ann"), pharmacist("bob"));
    let d = store
        .create_library_draft(&library_draft(lib), "ann", None, &ann)
        .await
        .unwrap();
    store
        .submit_library_revision(d.id, "ann", &ann)
        .await
        .unwrap();
    store
        .approve_library_revision(d.id, "bob", &bob)
        .await
        .unwrap();
    store
        .publish_library_revision(d.id, "bob", fake_sign, &bob)
        .await
        .unwrap();
}

/// Rolls version `version` of library `id` out to the whole scope at once
/// (no pilot): the rollout and the pumps it addresses, in asset-id order.
async fn roll_out_at_once(
    store: &Store,
    id: &str,
    version: i64,
    by: &Actor,
) -> (pumpward_store::Rollout, Vec<String>) {
    let r = store
        .create_library_rollout(
            &pumpward_store::NewRollout {
                library_id: id.to_owned(),
                version,
                pilot_care_area: None,
                pilot_percent: 0,
            },
            by,
        )
        .await
        .unwrap();
    let addressed = store
        .library_rollout_pumps(r.id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.asset_id)
        .collect();
    (r, addressed)
}

/// What the server's signer does, without a key: sets the version and
/// returns the canonical bytes and a stand-in envelope.
fn fake_sign(version: i64, content: &str) -> pumpward_store::Result<pumpward_store::SignedLibrary> {
    let mut lib = pumpward_druglib::json::parse_library_json(content.as_bytes()).unwrap();
    lib.version = version as u32;
    let content = String::from_utf8(pumpward_druglib::json::to_canonical_json(&lib)).unwrap();
    Ok(pumpward_store::SignedLibrary {
        envelope: format!("envelope of v{version}").into_bytes(),
        content,
        key_id: "00ff".into(),
    })
}

fn published_version_of(rev: &pumpward_store::LibraryRevision) -> u32 {
    pumpward_druglib::json::parse_library_json(rev.content.as_bytes())
        .unwrap()
        .version
}

async fn library_review_workflow_and_numbering(store: &Store) {
    use pumpward_store::RevisionState as S;
    let (ann, bob) = (pharmacist("ann"), pharmacist("bob"));
    let lib = pumpward_druglib::sample_library();

    // A draft that does not validate is stored but cannot be submitted.
    let mut bad = lib.clone();
    bad.care_areas[0].entries[0].soft_max =
        Some(pumpward_druglib::quantity::Dec::from_int(1_000_000));
    assert!(bad.validate().is_err());
    let d0 = store
        .create_library_draft(&library_draft(&bad), "ann", None, &ann)
        .await
        .unwrap();
    assert_eq!(d0.state, S::Draft);
    let e = store.submit_library_revision(d0.id, "ann", &ann).await;
    assert!(matches!(e, Err(StoreError::Invalid(_))), "{e:?}");
    assert_eq!(store.library_revision(d0.id).await.unwrap().state, S::Draft);
    // Content naming another library, or an invalid id, is refused outright.
    let mut other = library_draft(&lib);
    other.library_id = "another-library".into();
    assert!(matches!(
        store.create_library_draft(&other, "ann", None, &ann).await,
        Err(StoreError::Invalid(_))
    ));

    // Only its author replaces a draft; the replaced draft is superseded.
    assert!(matches!(
        store
            .create_library_draft(&library_draft(&lib), "bob", Some(d0.id), &bob)
            .await,
        Err(StoreError::Forbidden(_))
    ));
    let d1 = store
        .create_library_draft(&library_draft(&lib), "ann", Some(d0.id), &ann)
        .await
        .unwrap();
    assert_eq!(d1.replaces, Some(d0.id));
    assert_eq!(
        store.library_revision(d0.id).await.unwrap().state,
        S::Superseded
    );

    // Draft → submitted; the author cannot approve (audited as denied).
    let s1 = store
        .submit_library_revision(d1.id, "ann", &ann)
        .await
        .unwrap();
    assert_eq!(
        (s1.state, s1.submitted_by.as_deref()),
        (S::Submitted, Some("ann"))
    );
    assert!(matches!(
        store.approve_library_revision(d1.id, "ann", &ann).await,
        Err(StoreError::Forbidden(_))
    ));
    let denied = audit_of(store, "library.approve").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].entry.outcome, Outcome::Denied);
    // Only an approved revision is published.
    assert!(matches!(
        store
            .publish_library_revision(d1.id, "bob", fake_sign, &bob)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let a1 = store
        .approve_library_revision(d1.id, "bob", &bob)
        .await
        .unwrap();
    assert_eq!(
        (a1.state, a1.approved_by.as_deref()),
        (S::Approved, Some("bob"))
    );
    assert!(matches!(
        store.approve_library_revision(d1.id, "bob", &bob).await,
        Err(StoreError::Conflict(_))
    ));
    let p1 = store
        .publish_library_revision(d1.id, "bob", fake_sign, &bob)
        .await
        .unwrap();
    assert_eq!((p1.state, p1.version), (S::Published, Some(1)));
    assert_eq!(published_version_of(&p1), 1);
    assert_eq!(
        store.library_envelope(&lib.id, 1).await.unwrap(),
        b"envelope of v1"
    );
    // Published is final: no second publication, and the database itself
    // refuses to change the row.
    assert!(store
        .publish_library_revision(d1.id, "bob", fake_sign, &bob)
        .await
        .is_err());
    let tamper = sqlx::query("UPDATE drug_library_revisions SET content = 'x' WHERE id = $1")
        .bind(d1.id)
        .execute(store.raw_pool())
        .await;
    assert!(tamper.is_err(), "a published version must be immutable");
    assert!(
        sqlx::query("DELETE FROM drug_library_revisions WHERE id = $1")
            .bind(d1.id)
            .execute(store.raw_pool())
            .await
            .is_err()
    );

    // A change: submitted, rejected with a comment, replaced, approved,
    // published as version 2.
    let mut lib2 = lib.clone();
    lib2.description = "second edition".into();
    let d2 = store
        .create_library_draft(&library_draft(&lib2), "ann", None, &ann)
        .await
        .unwrap();
    store
        .submit_library_revision(d2.id, "ann", &ann)
        .await
        .unwrap();
    assert!(matches!(
        store
            .reject_library_revision(d2.id, "bob", "  ", &bob)
            .await,
        Err(StoreError::Invalid(_))
    ));
    let r2 = store
        .reject_library_revision(d2.id, "bob", "heparin limits need a second look", &bob)
        .await
        .unwrap();
    assert_eq!(r2.state, S::Rejected);
    assert_eq!(
        r2.reject_comment.as_deref(),
        Some("heparin limits need a second look")
    );
    assert!(matches!(
        store.submit_library_revision(d2.id, "ann", &ann).await,
        Err(StoreError::Conflict(_))
    ));
    let d3 = store
        .create_library_draft(&library_draft(&lib2), "ann", Some(d2.id), &ann)
        .await
        .unwrap();
    assert_eq!(
        store.library_revision(d2.id).await.unwrap().state,
        S::Rejected
    );
    store
        .submit_library_revision(d3.id, "ann", &ann)
        .await
        .unwrap();
    store
        .approve_library_revision(d3.id, "bob", &bob)
        .await
        .unwrap();
    let p2 = store
        .publish_library_revision(d3.id, "ann", fake_sign, &ann)
        .await
        .unwrap();
    assert_eq!(p2.version, Some(2));

    // Rollback to 1: version 3 with version 1's content.
    let rb = store
        .rollback_library(&lib.id, 1, "bob", fake_sign, &bob)
        .await
        .unwrap();
    assert_eq!(
        (rb.state, rb.version, rb.rollback_of),
        (S::Published, Some(3), Some(1))
    );
    assert_eq!(published_version_of(&rb), 3);
    let mut v1 = pumpward_druglib::json::parse_library_json(p1.content.as_bytes()).unwrap();
    v1.version = 3;
    assert_eq!(
        rb.content.as_bytes(),
        pumpward_druglib::json::to_canonical_json(&v1)
    );
    assert!(matches!(
        store
            .rollback_library(&lib.id, 9, "bob", fake_sign, &bob)
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let libs = store.list_libraries().await.unwrap();
    assert_eq!(libs.len(), 1);
    assert_eq!(libs[0].published_version, Some(3));
    assert_eq!(libs[0].open_revisions, 0);
    for action in [
        "library.create",
        "library.submit",
        "library.reject",
        "library.publish",
        "library.rollback",
    ] {
        assert!(
            !audit_of(store, action).await.is_empty(),
            "{action} audited"
        );
    }
    assert_eq!(audit_of(store, "library.publish").await.len(), 2);
    assert!(store.audit_verify().await.unwrap().error.is_none());
}

async fn library_publish_is_all_or_nothing(store: &Store) {
    let (ann, bob) = (pharmacist("ann"), pharmacist("bob"));
    let lib = pumpward_druglib::sample_library();
    let d = store
        .create_library_draft(&library_draft(&lib), "ann", None, &ann)
        .await
        .unwrap();
    store
        .submit_library_revision(d.id, "ann", &ann)
        .await
        .unwrap();
    store
        .approve_library_revision(d.id, "bob", &bob)
        .await
        .unwrap();
    let before = store.audit_head().await.unwrap();

    // Signed and written, then a failure before the commit: nothing of it
    // remains (the state, the number, the envelope, the audit record).
    let signed = std::sync::atomic::AtomicBool::new(false);
    let e = store
        .publish_library_revision_failing_before_commit(
            d.id,
            "bob",
            |v, c| {
                signed.store(true, std::sync::atomic::Ordering::SeqCst);
                fake_sign(v, c)
            },
            &bob,
        )
        .await;
    assert!(e.is_err());
    assert!(
        signed.load(std::sync::atomic::Ordering::SeqCst),
        "the failure came after signing"
    );
    let after = store.library_revision(d.id).await.unwrap();
    assert_eq!(after.state, pumpward_store::RevisionState::Approved);
    assert_eq!((after.version, after.published_at), (None, None));
    assert_eq!(after.content, d.content);
    assert!(store.library_envelope(&lib.id, 1).await.is_err());
    assert!(audit_of(store, "library.publish").await.is_empty());
    assert_eq!(store.audit_head().await.unwrap(), before);

    // A signing failure leaves it approved too.
    let e = store
        .publish_library_revision(
            d.id,
            "bob",
            |_, _| Err(StoreError::Invalid("no key".into())),
            &bob,
        )
        .await;
    assert!(matches!(e, Err(StoreError::Invalid(_))));

    // The next attempt publishes version 1: no number was used up.
    let p = store
        .publish_library_revision(d.id, "bob", fake_sign, &bob)
        .await
        .unwrap();
    assert_eq!(p.version, Some(1));
    assert_eq!(audit_of(store, "library.publish").await.len(), 1);
}

// ---------------------------------------------------------------------
// Vulnerability intelligence: real CISA CSAF documents (copies in
// pumpward-vuln's tests/data; provenance in its README).
// ---------------------------------------------------------------------

fn vuln_data(rel: &str) -> Vec<u8> {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../pumpward-vuln/tests/data/");
    std::fs::read(format!("{p}{rel}")).unwrap()
}

/// A real document edited as JSON (a later or earlier revision, a broken
/// field), to exercise what the shipped files cannot.
fn edited(rel: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&vuln_data(rel)).unwrap();
    edit(&mut v);
    serde_json::to_vec_pretty(&v).unwrap()
}

async fn advisory_count(store: &Store) -> usize {
    store
        .list_advisories(&pumpward_store::AdvisoryFilter::default())
        .await
        .unwrap()
        .len()
}

async fn advisories_import_idempotently_and_supersede(store: &Store) {
    let cli = Actor::system();
    let plum = vuln_data("csaf/icsa-15-161-01.json");
    let first = store.import_vuln_document(&plum, &cli).await.unwrap();
    assert_eq!(first.outcome, "added", "{first:?}");
    assert_eq!(first.tracking_id.as_deref(), Some("ICSA-15-161-01"));
    assert_eq!(first.revision.as_deref(), Some("2"));
    let again = store.import_vuln_document(&plum, &cli).await.unwrap();
    assert_eq!(again.outcome, "skipped");
    assert!(
        again
            .reason
            .as_deref()
            .unwrap()
            .contains("same document already imported"),
        "{again:?}"
    );
    assert_eq!(again.advisory_id, first.advisory_id);

    // The stored advisory: 7 CVEs, 3 products each, keys from the alias table.
    let (adv, vulns) = store.advisory(first.advisory_id.unwrap()).await.unwrap();
    assert_eq!(adv.state, "current");
    assert_eq!(adv.publisher, "CISA");
    assert_eq!(adv.sha256.len(), 64);
    assert_eq!(vulns.len(), 7);
    assert_eq!(vulns[0].cve.as_deref(), Some("CVE-2015-3952"));
    let keys: Vec<_> = vulns[0]
        .product_statuses
        .iter()
        .map(|s| {
            (
                s.product_key.clone().unwrap(),
                s.status.clone(),
                s.version_text.clone(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            (
                "hospira/plum-a-plus".into(),
                "known_affected".into(),
                Some("<=13.4".into())
            ),
            (
                "hospira/plum-a-plus-3".into(),
                "known_affected".into(),
                Some("<=13.6".into())
            ),
            (
                "hospira/symbiq".into(),
                "known_affected".into(),
                Some("<=3.13".into())
            ),
        ]
    );
    assert_eq!(audit_of(store, "advisory.import").await.len(), 1);

    // Broken documents change nothing and say where they are broken.
    let n = advisory_count(store).await;
    let broken = edited("csaf/icsa-15-090-03.json", |v| {
        v["document"]["tracking"] = serde_json::json!(42)
    });
    let r = store.import_vuln_document(&broken, &cli).await.unwrap();
    assert!(r.is_refused(), "{r:?}");
    assert!(
        r.reason.as_deref().unwrap().contains("$.document.tracking"),
        "{r:?}"
    );
    let truncated = &plum[..plum.len() / 2];
    let r = store.import_vuln_document(truncated, &cli).await.unwrap();
    assert!(r.is_refused(), "{r:?}");
    assert!(
        r.reason.as_deref().unwrap().starts_with("not valid JSON"),
        "{r:?}"
    );
    let r = store
        .import_vuln_document(b"hello, not an advisory", &cli)
        .await
        .unwrap();
    assert_eq!(r.outcome, "skipped");
    assert!(r.reason.unwrap().contains("not a recognised format"));
    assert_eq!(advisory_count(store).await, n);
    assert_eq!(audit_of(store, "advisory.import").await.len(), 1);

    // CISA's update letter: ICSA-15-125-01B supersedes ICSA-15-125-01
    // although its CSAF conversion is dated earlier.
    let orig = store
        .import_vuln_document(&vuln_data("csaf/icsa-15-125-01.json"), &cli)
        .await
        .unwrap();
    assert_eq!(orig.outcome, "added");
    let upd = store
        .import_vuln_document(&vuln_data("csaf/icsa-15-125-01b.json"), &cli)
        .await
        .unwrap();
    assert_eq!(upd.outcome, "updated", "{upd:?}");
    assert_eq!(upd.superseded, vec![orig.advisory_id.unwrap()]);
    let (old, _) = store.advisory(orig.advisory_id.unwrap()).await.unwrap();
    assert_eq!(
        (old.state.as_str(), old.superseded_by),
        ("superseded", upd.advisory_id)
    );
    // The original, re-issued with other bytes, is still the older one.
    let reissued = edited("csaf/icsa-15-125-01.json", |v| {
        v["document"]["tracking"]["version"] = serde_json::json!("7")
    });
    let r = store.import_vuln_document(&reissued, &cli).await.unwrap();
    assert_eq!(r.outcome, "skipped");
    assert!(
        r.reason.as_deref().unwrap().starts_with("older revision"),
        "{r:?}"
    );

    // Same tracking id: the higher tracking.version wins, in either order.
    let v3 = edited("csaf/icsa-15-161-01.json", |v| {
        v["document"]["tracking"]["version"] = serde_json::json!("3")
    });
    let r = store.import_vuln_document(&v3, &cli).await.unwrap();
    assert_eq!(r.outcome, "updated");
    assert_eq!(r.superseded, vec![first.advisory_id.unwrap()]);
    let v1 = edited("csaf/icsa-15-161-01.json", |v| {
        v["document"]["tracking"]["version"] = serde_json::json!("1")
    });
    let r = store.import_vuln_document(&v1, &cli).await.unwrap();
    assert_eq!(r.outcome, "skipped");
    assert!(
        r.reason.as_deref().unwrap().contains("older revision"),
        "{r:?}"
    );

    let current = store
        .list_advisories(&pumpward_store::AdvisoryFilter {
            state: Some("current".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut ids: Vec<_> = current.iter().map(|a| a.tracking_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["ICSA-15-125-01B", "ICSA-15-161-01"]);
    let by_cve = store
        .list_advisories(&pumpward_store::AdvisoryFilter {
            cve: Some("cve-2015-3459".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_cve.len(), 2, "the original and its update both name it");

    // The KEV catalog (trimmed copy): stored, and a second import skipped.
    let kev = vuln_data("kev/known_exploited_vulnerabilities.trimmed.json");
    let r = store.import_vuln_document(&kev, &cli).await.unwrap();
    assert_eq!(
        (r.outcome.as_str(), r.format.as_deref()),
        ("added", Some("kev"))
    );
    let r = store.import_vuln_document(&kev, &cli).await.unwrap();
    assert_eq!(r.outcome, "skipped");
}

fn pump(id: &str, manufacturer: &str, model: &str, firmware: &str) -> AssetSpec {
    AssetSpec::validate(&AssetDraft {
        asset_id: id.into(),
        manufacturer: manufacturer.into(),
        model: model.into(),
        serial_number: format!("SN-{id}"),
        firmware_version: firmware.into(),
        ..Default::default()
    })
    .unwrap()
}

/// A full match after what a test did raises and resolves nothing, and
/// leaves `affected_open` affected findings open.
async fn full_match_changes_nothing(store: &Store, affected_open: usize) {
    let full = store.match_vulnerabilities(&Actor::system()).await.unwrap();
    assert_eq!(
        (full.raised, full.resolved, full.affected_open),
        (0, 0, affected_open),
        "{full:?}"
    );
}

async fn open_vuln_findings(
    store: &Store,
    kind: &str,
    asset: &str,
) -> Vec<pumpward_store::Finding> {
    store
        .list_findings(&pumpward_store::FindingFilter {
            kind: Some(kind.into()),
            asset_id: Some(asset.into()),
            open: Some(true),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .0
}

/// Re-matching follows the inventory: an asset created, commissioned,
/// taken out of service, edited or bulk-imported has its findings raised
/// or resolved by the change itself, with no matching run asked for.
async fn inventory_changes_are_matched_without_a_run(store: &Store) {
    use pumpward_store::KIND_AFFECTED;
    let sys = Actor::system();
    // Plum A+ "<=13.4" (ICSA-15-161-01).
    store
        .import_vuln_document(&vuln_data("csaf/icsa-15-161-01.json"), &sys)
        .await
        .unwrap();
    let open =
        |id: &'static str| async move { open_vuln_findings(store, KIND_AFFECTED, id).await.len() };
    store
        .create_asset(
            &pump("A-1", "Hospira", "Plum A+", "13.3"),
            Some(LifecycleState::InService),
            &biomed(),
        )
        .await
        .unwrap();
    assert!(open("A-1").await > 0, "created in service: matched");
    let raised = open("A-1").await;

    // Received: not matched until commissioned.
    store
        .create_asset(&pump("A-2", "Hospira", "Plum A+", "13.3"), None, &biomed())
        .await
        .unwrap();
    assert_eq!(open("A-2").await, 0);
    for to in [LifecycleState::Provisioned, LifecycleState::InService] {
        store
            .transition_asset("A-2", to, "commissioning", &biomed())
            .await
            .unwrap();
    }
    assert_eq!(open("A-2").await, raised);

    // Out of service: resolved, saying why; back in service: raised again.
    store
        .transition_asset("A-1", LifecycleState::Maintenance, "repair", &biomed())
        .await
        .unwrap();
    assert_eq!(open("A-1").await, 0);
    store
        .transition_asset("A-1", LifecycleState::InService, "repaired", &biomed())
        .await
        .unwrap();
    assert_eq!(open("A-1").await, raised);

    // A care area is weighed by the priority: editing it re-ranks at once.
    let before = open_vuln_findings(store, KIND_AFFECTED, "A-2").await[0].priority;
    let a = store.asset("A-2").await.unwrap();
    let mut spec = a.spec.clone();
    spec.care_area = Some("NICU".into());
    store
        .update_asset(&spec, a.version, &biomed())
        .await
        .unwrap();
    let after = open_vuln_findings(store, KIND_AFFECTED, "A-2").await[0].priority;
    assert!(after > before, "{before:?} -> {after:?}");

    // A bulk import matches what it brought.
    let csv = "asset_id,kind,manufacturer,model,serial_number,firmware_version,lifecycle_state\n\
               A-3,pump,Hospira,Plum A+,SN-A-3,13.3,in_service\n\
               A-4,pump,Hospira,Plum A+,SN-A-4,13.5,in_service\n";
    let parsed = read_assets_csv(csv.as_bytes(), &CsvLimits::default()).unwrap();
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    store
        .import_assets(&parsed.rows, false, &biomed())
        .await
        .unwrap();
    assert_eq!(open("A-3").await, raised);
    assert_eq!(open("A-4").await, 0, "13.5 is outside <=13.4");
}

async fn matching_raises_and_resolves_vulnerability_findings(store: &Store) {
    use pumpward_store::{KIND_AFFECTED, KIND_REVIEW};
    let sys = Actor::system();
    // Plum A+: "<=13.4" (ICSA-15-161-01). 13.3 is inside, 13.5 outside,
    // and 13.40 is the ambiguity the generic scheme refuses to guess.
    for (id, fw) in [("H-1", "13.3"), ("H-2", "13.5"), ("H-3", "13.40")] {
        store
            .create_asset(
                &pump(id, "Hospira", "Plum A+", fw),
                Some(LifecycleState::InService),
                &biomed(),
            )
            .await
            .unwrap();
    }
    store
        .create_asset(
            &pump("L-1", "ICU Medical", "LifeCare PCA", "5.0"),
            Some(LifecycleState::InService),
            &biomed(),
        )
        .await
        .unwrap();
    // Not in service yet: never matched.
    store
        .create_asset(&pump("H-9", "Hospira", "Plum A+", "13.3"), None, &biomed())
        .await
        .unwrap();
    // A pump the alias table does not know: reported, not guessed.
    store
        .create_asset(
            &pump("X-1", "Acme", "Infusomat 9000", "1.0"),
            Some(LifecycleState::InService),
            &biomed(),
        )
        .await
        .unwrap();

    store
        .import_vuln_document(&vuln_data("csaf/icsa-15-161-01.json"), &sys)
        .await
        .unwrap();
    store
        .import_vuln_document(&vuln_data("csaf/icsa-15-125-01.json"), &sys)
        .await
        .unwrap();
    let report = store.match_vulnerabilities(&sys).await.unwrap();
    assert_eq!(report.assets, 5);
    assert_eq!(
        report.unidentified,
        vec![(
            "X-1".to_string(),
            "Acme".to_string(),
            "Infusomat 9000".to_string()
        )]
    );
    // 7 CVEs on H-1, 1 on L-1 (the original advisory names one CVE); 7 reviews on H-3.
    assert_eq!(
        (report.affected_open, report.review_open, report.raised),
        (8, 7, 15)
    );
    let h1 = open_vuln_findings(store, KIND_AFFECTED, "H-1").await;
    assert_eq!(h1.len(), 7);
    let f = h1
        .iter()
        .find(|f| f.subject == "cve:CVE-2015-3952:asset:H-1")
        .unwrap();
    assert_eq!(f.evidence["rules"][0]["tracking_id"], "ICSA-15-161-01");
    assert_eq!(f.evidence["rules"][0]["version_text"], "<=13.4");
    assert!(f.evidence["rules"][0]["why"]
        .as_str()
        .unwrap()
        .contains("13.3"));
    assert_eq!(f.evidence["asset"]["product_key"], "hospira/plum-a-plus");
    assert!(!f.evidence["rules"][0]["remediations"]
        .as_array()
        .unwrap()
        .is_empty());
    // No CVSS in these 2015 conversions, not in the KEV: medium.
    assert_eq!(f.severity, pumpward_store::Severity::Medium);
    assert!(open_vuln_findings(store, KIND_AFFECTED, "H-2")
        .await
        .is_empty());
    assert!(open_vuln_findings(store, KIND_REVIEW, "H-2")
        .await
        .is_empty());
    assert!(open_vuln_findings(store, KIND_AFFECTED, "H-9")
        .await
        .is_empty());
    let h3 = open_vuln_findings(store, KIND_REVIEW, "H-3").await;
    assert_eq!(h3.len(), 7);
    assert!(open_vuln_findings(store, KIND_AFFECTED, "H-3")
        .await
        .is_empty());
    let why = h3[0].evidence["review_reason"].as_str().unwrap();
    assert!(why.contains("<=13.4"), "{why}");

    // Matching again changes nothing.
    let again = store.match_vulnerabilities(&sys).await.unwrap();
    assert_eq!((again.raised, again.resolved), (0, 0));

    // The update (01B) supersedes the original: L-1 now has its 7 CVEs,
    // the one it shared stays the same finding.
    let before = open_vuln_findings(store, KIND_AFFECTED, "L-1").await;
    assert_eq!(before.len(), 1);
    store
        .import_vuln_document(&vuln_data("csaf/icsa-15-125-01b.json"), &sys)
        .await
        .unwrap();
    let r = store.match_vulnerabilities(&sys).await.unwrap();
    assert_eq!((r.raised, r.resolved), (6, 0));
    let after = open_vuln_findings(store, KIND_AFFECTED, "L-1").await;
    assert_eq!(after.len(), 7);
    assert!(after.iter().any(|f| f.id == before[0].id));

    // A later revision that drops a CVE: its findings are resolved, saying so.
    let v3 = edited("csaf/icsa-15-161-01.json", |v| {
        v["document"]["tracking"]["version"] = serde_json::json!("3");
        v["vulnerabilities"]
            .as_array_mut()
            .unwrap()
            .retain(|x| x["cve"] != "CVE-2015-3958");
    });
    assert_eq!(
        store.import_vuln_document(&v3, &sys).await.unwrap().outcome,
        "updated"
    );
    let r = store.match_vulnerabilities(&sys).await.unwrap();
    assert_eq!(
        r.resolved, 2,
        "H-1's affected and H-3's review finding for CVE-2015-3958"
    );
    let gone = store
        .list_findings(&pumpward_store::FindingFilter {
            asset_id: Some("H-1".into()),
            open: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].subject, "cve:CVE-2015-3958:asset:H-1");
    assert!(
        gone[0]
            .resolution
            .as_deref()
            .unwrap()
            .contains("superseded"),
        "{:?}",
        gone[0].resolution
    );

    // The fixed firmware installed: every H-1 finding resolved with the reason.
    let h1 = store.asset("H-1").await.unwrap();
    let mut fixed = h1.spec.clone();
    fixed.firmware_version = "13.5".into();
    store
        .update_asset(&fixed, h1.version, &biomed())
        .await
        .unwrap();
    // The update itself re-matched the asset (incrementally): nothing is
    // left for a full run to do.
    assert!(open_vuln_findings(store, KIND_AFFECTED, "H-1")
        .await
        .is_empty());
    let r = store.match_vulnerabilities(&sys).await.unwrap();
    assert_eq!(r.resolved, 0);
    let closed = store
        .list_findings(&pumpward_store::FindingFilter {
            asset_id: Some("H-1".into()),
            open: Some(false),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert!(closed
        .iter()
        .filter(|f| f.subject != "cve:CVE-2015-3958:asset:H-1")
        .all(|f| f
            .resolution
            .as_deref()
            .unwrap()
            .contains("outside every affected version range")));

    // The asset retired: the transition itself resolves its 7 findings,
    // and a run after it finds nothing left to do.
    store
        .transition_asset("L-1", LifecycleState::Decommissioned, "replaced", &biomed())
        .await
        .unwrap();
    assert!(open_vuln_findings(store, KIND_AFFECTED, "L-1")
        .await
        .is_empty());
    let r = store.match_vulnerabilities(&sys).await.unwrap();
    assert_eq!((r.raised, r.resolved), (0, 0));
    let l1 = store
        .list_findings(&pumpward_store::FindingFilter {
            asset_id: Some("L-1".into()),
            open: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert!(l1
        .iter()
        .all(|f| f.resolution.as_deref().unwrap().contains("decommissioned")));
    assert_eq!(audit_of(store, "finding.resolve").await.len(), 15);
}

async fn vulnerability_priority_and_remediation(store: &Store) {
    use pumpward_store::{vulnerability_status, KIND_AFFECTED};
    use pumpward_vuln::priority::Control;
    use pumpward_vuln::remediation::Step;
    let sys = Actor::system();
    let spec = AssetSpec::validate(&AssetDraft {
        asset_id: "P-1".into(),
        manufacturer: "Hospira".into(),
        model: "Plum A+".into(),
        device_type: Some("pca".into()),
        care_area: Some("NICU".into()),
        mac_address: Some("00:11:22:33:44:55".into()),
        ip_address: Some("10.20.0.5".into()),
        serial_number: "SN-P-1".into(),
        firmware_version: "13.3".into(),
        ..Default::default()
    })
    .unwrap();
    store
        .create_asset(&spec, Some(LifecycleState::InService), &biomed())
        .await
        .unwrap();
    store
        .import_vuln_document(&vuln_data("csaf/icsa-15-161-01.json"), &sys)
        .await
        .unwrap();
    store.match_vulnerabilities(&sys).await.unwrap();
    let open = open_vuln_findings(store, KIND_AFFECTED, "P-1").await;
    assert_eq!(open.len(), 7);
    let f = open
        .iter()
        .find(|f| f.subject == "cve:CVE-2015-3958:asset:P-1")
        .unwrap();
    assert_eq!(f.remediation.as_deref(), Some("open"));
    assert_eq!(vulnerability_status(f), Some("affected"));
    // CVSS v2 7.8 (31.2), PCA 12.0, NICU 8.0, no zone 6.0, address 4.0,
    // Wi-Fi 3.0, remote service unknown 2.0.
    assert_eq!(f.priority, Some(662));
    assert_eq!(f.evidence["priority"]["score"], 662);
    assert_eq!(
        f.evidence["priority"]["factors"][0]["input"],
        "CVSS v2.0 base 7.8"
    );
    assert_eq!(f.evidence["priority"]["band"], "high");
    assert_eq!(
        f.evidence["priority"]["factors"].as_array().unwrap().len(),
        9
    );

    // A compensating control lowers the priority at once.
    assert!(store
        .record_asset_control(
            "P-1",
            Control::NetworkIsolated,
            "ACL to the pump server",
            &biomed()
        )
        .await
        .unwrap());
    assert!(!store
        .record_asset_control("P-1", Control::NetworkIsolated, "again", &biomed())
        .await
        .unwrap());
    let f = store.finding(f.id).await.unwrap();
    assert_eq!(f.priority, Some(562));
    assert_eq!(audit_of(store, "asset.control").await.len(), 1);

    // The workflow: illegal jumps and missing fields are refused, changing nothing.
    let id = f.id;
    let step = |s: serde_json::Value| serde_json::from_value::<Step>(s).unwrap();
    let e = store
        .transition_finding(
            id,
            &step(serde_json::json!({"to": "deployed", "version": "13.3"})),
            &biomed(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    store
        .transition_finding(id, &step(serde_json::json!({"to": "vendor_patch_available", "vendor_reference": "ICSA-15-161-01"})), &biomed())
        .await
        .unwrap();
    let e = store
        .transition_finding(
            id,
            &step(serde_json::json!({"to": "patch_validated", "validation_reference": " "})),
            &biomed(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "validation_reference: is required");
    assert_eq!(
        store.finding(id).await.unwrap().remediation.as_deref(),
        Some("vendor_patch_available")
    );
    for s in [
        serde_json::json!({"to": "patch_validated", "validation_reference": "HSP-VAL-0042"}),
        serde_json::json!({"to": "scheduled", "date": "2030-01-15"}),
    ] {
        store
            .transition_finding(id, &step(s), &biomed())
            .await
            .unwrap();
    }
    // Deployed is verified by the version the pump reports.
    let deployed = step(serde_json::json!({"to": "deployed", "version": "13.5"}));
    let e = store
        .transition_finding(id, &deployed, &biomed())
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("the pump reports firmware \"13.3\""),
        "{e}"
    );
    let a = store.asset("P-1").await.unwrap();
    let mut fixed = a.spec.clone();
    fixed.firmware_version = "13.5".into();
    store
        .update_asset(&fixed, a.version, &biomed())
        .await
        .unwrap();
    let f = store
        .transition_finding(id, &deployed, &biomed())
        .await
        .unwrap();
    assert_eq!(f.remediation.as_deref(), Some("deployed"));
    assert_eq!(
        f.remediation_details.as_ref().unwrap()["step"]["version"],
        "13.5"
    );
    assert_eq!(audit_of(store, "finding.remediation").await.len(), 4);

    // Risk acceptance needs controls, an owner and a future review date, and
    // records its controls on the asset.
    let other = open.iter().find(|g| g.id != id).unwrap().id;
    let e = store
        .transition_finding(other, &step(serde_json::json!({"to": "risk_accepted", "controls": [], "owner": "CE", "review_date": "2030-01-01"})), &biomed())
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("controls:"), "{e}");
    store
        .transition_finding(other, &step(serde_json::json!({"to": "risk_accepted", "controls": ["monitored"], "owner": "Clinical Engineering", "review_date": "2030-01-01"})), &biomed())
        .await
        .unwrap();
    let controls: Vec<Control> = store
        .asset_controls("P-1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.control)
        .collect();
    assert_eq!(controls, vec![Control::Monitored, Control::NetworkIsolated]);
    assert!(matches!(
        store.transition_finding(9_999, &deployed, &biomed()).await,
        Err(StoreError::NotFound { .. })
    ));

    // The fixed firmware: matching resolves the findings as not affected.
    store.match_vulnerabilities(&sys).await.unwrap();
    let f = store.finding(id).await.unwrap();
    assert_eq!(f.state, "resolved");
    assert_eq!(vulnerability_status(&f), Some("not_affected"));
}

/// The labelled test set (docs/vulnerability-matching.md): a fleet of real
/// pump models and versions, each asset's expected status for each advisory
/// worked out by hand from the advisory text (`labels.csv`; every pair not
/// listed is expected `not_affected`), matched against every real advisory
/// we hold: the pump advisories, the non-pump advisories of the same
/// vendors and the component advisories that cite pump vendors.
async fn labelled_test_set_precision_and_recall(store: &Store) {
    use pumpward_store::{KIND_AFFECTED, KIND_REVIEW};
    use std::collections::{BTreeMap, BTreeSet};
    let sys = Actor::system();
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/labelled/");
    let fleet = std::fs::read(format!("{here}fleet.csv")).unwrap();
    let parsed = read_assets_csv(&fleet[..], &CsvLimits::default()).unwrap();
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    store
        .import_assets(&parsed.rows, false, &biomed())
        .await
        .unwrap();
    let mut documents: Vec<Vec<u8>> = Vec::new();
    for dir in ["csaf", "csaf-other"] {
        let p = format!(
            "{}/../pumpward-vuln/tests/data/{dir}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut names: Vec<_> = std::fs::read_dir(&p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        documents.extend(names.iter().map(|n| std::fs::read(n).unwrap()));
    }
    for n in ["icsa-20-168-01.json", "icsa-22-067-01.json"] {
        documents.push(std::fs::read(format!("{here}{n}")).unwrap());
    }
    for d in &documents {
        let r = store.import_vuln_document(d, &sys).await.unwrap();
        assert!(!r.is_refused(), "{r:?}");
    }
    let report = store.match_vulnerabilities(&sys).await.unwrap();
    let advisories: Vec<String> = store
        .list_advisories(&pumpward_store::AdvisoryFilter {
            format: Some("csaf".into()),
            state: Some("current".into()),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.tracking_id)
        .collect();
    assert_eq!(advisories.len(), 30, "{advisories:?}");

    let mut expected: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut rdr = csv::Reader::from_path(format!("{here}labels.csv")).unwrap();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        assert!(
            advisories.iter().any(|a| a == &rec[1]),
            "unknown advisory {}",
            &rec[1]
        );
        expected.insert((rec[0].to_owned(), rec[1].to_owned()), rec[2].to_owned());
    }
    // What matching says per (asset, advisory): affected when an affected
    // finding cites the advisory, review when a review finding does.
    let mut predicted: BTreeMap<(String, String), &str> = BTreeMap::new();
    for (kind, label) in [(KIND_REVIEW, "review"), (KIND_AFFECTED, "affected")] {
        let (open, _) = store
            .list_findings(&pumpward_store::FindingFilter {
                kind: Some(kind.into()),
                open: Some(true),
                limit: 500,
                ..Default::default()
            })
            .await
            .unwrap();
        for f in open {
            for r in f.evidence["rules"].as_array().unwrap() {
                let adv = r["tracking_id"].as_str().unwrap().to_owned();
                predicted.insert((f.asset_id.clone().unwrap(), adv), label);
            }
        }
    }
    let assets: BTreeSet<String> = parsed
        .rows
        .iter()
        .map(|r| r.spec.asset_id.as_str().to_owned())
        .collect();
    let (mut tp, mut fp, mut fne, mut reviews, mut review_on_affected) = (0, 0, 0, 0, 0);
    let mut mismatches = Vec::new();
    for a in &assets {
        for adv in &advisories {
            let key = (a.clone(), adv.clone());
            let want = expected
                .get(&key)
                .map(String::as_str)
                .unwrap_or("not_affected");
            let got = predicted.get(&key).copied().unwrap_or("not_affected");
            match (want, got) {
                ("affected", "affected") => tp += 1,
                (_, "affected") => fp += 1,
                ("affected", _) => fne += 1,
                _ => {}
            }
            if got == "review" {
                reviews += 1;
                if want == "affected" {
                    review_on_affected += 1;
                }
            }
            if want != got {
                mismatches.push(format!("{a} × {adv}: expected {want}, matched {got}"));
            }
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fne).max(1) as f64;
    println!(
        "labelled test set: {} assets × {} advisories = {} pairs; {} labelled affected; \
         TP {tp}, FP {fp}, FN {fne}; precision {precision:.3}, recall {recall:.3}; \
         review {reviews} ({review_on_affected} of them truly affected); unidentified assets {}",
        assets.len(),
        advisories.len(),
        assets.len() * advisories.len(),
        expected.values().filter(|v| *v == "affected").count(),
        report.unidentified.len(),
    );
    for m in &mismatches {
        println!("  {m}");
    }
    for (id, manufacturer, model) in &report.unidentified {
        println!("  unidentified: {id} {manufacturer} {model}");
    }
    // Floors (docs/vulnerability-matching.md): no false positive at all, at
    // least 95 % recall, and no silent miss: every affected pair the
    // matcher does not call affected is a review a person sees.
    assert_eq!(fp, 0, "{mismatches:#?}");
    assert!(recall >= 0.95, "recall {recall}: {mismatches:#?}");
    assert_eq!(fne, review_on_affected, "a silent miss: {mismatches:#?}");
    assert!(reviews <= 2, "{reviews} reviews: {mismatches:#?}");
    assert_eq!(report.unidentified.len(), 5, "{:?}", report.unidentified);
}

/// Security events and alerts are recorded once whatever the replays; the
/// alert and incident workflows refuse illegal steps without changing
/// anything, and every step is audited.
async fn detection_records_events_alerts_and_incidents(store: &Store) {
    use pumpward_detect::alert::PlaybookStep;
    use pumpward_detect::event::Event;
    use pumpward_detect::{Context, DetectionConfig, Engine};

    let t0 = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    // Five authentication failures from one address: the engine's burst rule.
    let events: Vec<Event> = (0..5)
        .map(|i| {
            Event::auth_failure(
                format!("gw:auth:{i}"),
                t0 + time::Duration::seconds(i),
                "10.9.9.9".parse().unwrap(),
                "unknown_ca".into(),
            )
        })
        .collect();
    assert_eq!(store.record_security_events(&events).await.unwrap(), 5);
    assert_eq!(store.record_security_events(&events[3..]).await.unwrap(), 0);
    let (page, next) = store
        .list_security_events(&pumpward_store::SecurityEventFilter {
            kind: Some("auth_failure".into()),
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.event.id.as_str()).collect::<Vec<_>>(),
        ["gw:auth:4", "gw:auth:3", "gw:auth:2"]
    );
    assert_eq!(page[0].event, events[4]);
    let (rest, end) = store
        .list_security_events(&pumpward_store::SecurityEventFilter {
            kind: Some("auth_failure".into()),
            before_seq: next,
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(end, None);
    let none = store
        .list_security_events(&pumpward_store::SecurityEventFilter {
            kind: Some("policy_violation".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert!(none.is_empty());

    let mut engine = Engine::new(DetectionConfig::default());
    let ctx = Context::default();
    let mut alerts = Vec::new();
    for (i, e) in events.iter().enumerate() {
        engine.process(&ctx, i as u64 + 1, e, &mut alerts);
    }
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let id = alerts[0].id.clone();
    assert_eq!(
        store.record_alerts(&alerts).await.unwrap(),
        std::slice::from_ref(&id)
    );
    // A replay after a restart raises the same alert: nothing new.
    assert!(store.record_alerts(&alerts).await.unwrap().is_empty());
    assert_eq!(audit_of(store, "alert.raise").await.len(), 1);

    // The engine's state survives a save and a load.
    store.save_detection_state(engine.snapshot()).await.unwrap();
    store.save_detection_state(engine.snapshot()).await.unwrap();
    let loaded = store.load_detection_state().await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(&loaded).unwrap(),
        serde_json::to_value(engine.snapshot()).unwrap()
    );

    let sec = Actor {
        id: "user:sam".into(),
        source: Some("127.0.0.1".into()),
    };
    // Resolving a new alert is refused and changes nothing.
    let refused = store
        .update_alert(&id, "alert.resolve", &sec, |c| c.resolve("sam", t0, "done"))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Invalid(_))),
        "{refused:?}"
    );
    assert_eq!(store.alert(&id).await.unwrap().case.state.as_str(), "new");
    assert!(audit_of(store, "alert.resolve").await.is_empty());

    // Selected twice in a bulk step: one step, one audit record.
    let stepped = store
        .update_alerts(&[id.clone(), id.clone()], "alert.acknowledge", &sec, |c| {
            c.acknowledge("sam")
        })
        .await
        .unwrap();
    assert_eq!(stepped.len(), 1);
    assert_eq!(audit_of(store, "alert.acknowledge").await.len(), 1);
    let (open, _) = store
        .list_alerts(&pumpward_store::AlertFilter {
            state: Some("acknowledged".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].case.owner.as_deref(), Some("sam"));
    let counts = store.open_alert_counts().await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 1);

    let incident = store
        .open_incident("INC-1", "Certificate probing", &id, &sec)
        .await
        .unwrap();
    assert_eq!(incident.alerts, std::slice::from_ref(&id));
    assert_eq!(
        store.alert(&id).await.unwrap().incident_id.as_deref(),
        Some("INC-1")
    );
    // Closing before containment is refused and changes nothing.
    let early = store
        .update_incident("INC-1", "incident.close", None, &sec, |i, _| {
            i.close("sam", t0, "done")
        })
        .await;
    assert!(matches!(early, Err(StoreError::Invalid(_))), "{early:?}");
    store
        .update_incident("INC-1", "incident.step", None, &sec, |i, _| {
            i.complete_step(
                PlaybookStep::ClinicalContingency,
                "sam",
                t0,
                "spare pump",
                false,
            )
        })
        .await
        .unwrap();
    store
        .update_incident("INC-1", "incident.contain", None, &sec, |i, _| {
            i.contain("sam", t0)
        })
        .await
        .unwrap();
    let stored = store.incident("INC-1").await.unwrap();
    assert_eq!(stored.state.to_string(), "contained");
    assert!(stored
        .checklist
        .iter()
        .any(|c| c.step == PlaybookStep::ClinicalContingency && c.done.is_some()));
    assert_eq!(audit_of(store, "incident.contain").await.len(), 1);
    assert!(audit_of(store, "incident.close").await.is_empty());
    assert!(matches!(
        store.alert("nope").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn library_rollout_waves_reports_and_compliance(store: &Store) {
    use pumpward_store::{DeviceHello, LibraryReport, NewRollout};
    use sha2::Digest as _;
    for i in 0..10 {
        let area = if i < 3 { "Adult ICU" } else { "Oncology" };
        store
            .create_asset(
                &spec(&format!("RP-{i}"), area, None),
                Some(LifecycleState::InService),
                &biomed(),
            )
            .await
            .unwrap();
    }
    let bob = pharmacist("bob");
    let lib = pumpward_druglib::sample_library();
    for _ in 0..2 {
        publish_by_ann_and_bob(store, &lib).await;
    }
    let new = |version, area: Option<&str>, percent| NewRollout {
        library_id: lib.id.clone(),
        version,
        pilot_care_area: area.map(Into::into),
        pilot_percent: percent,
    };
    // Bad requests change nothing.
    assert!(matches!(
        store.create_library_rollout(&new(3, None, 0), &bob).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.create_library_rollout(&new(2, None, 101), &bob).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.library_rollouts(&lib.id).await.unwrap().is_empty());

    let first = store
        .create_library_rollout(&new(1, None, 0), &bob)
        .await
        .unwrap();
    assert_eq!(first.current_wave, 2, "no pilot: everyone at once");
    let r = store
        .create_library_rollout(&new(2, Some("adult icu"), 0), &bob)
        .await
        .unwrap();
    assert_eq!(
        store.library_rollout(first.id).await.unwrap().state,
        "superseded"
    );
    let digest = hex::encode(sha2::Sha256::digest(b"envelope of v2"));
    assert_eq!(r.envelope_sha256, digest);
    assert_eq!((r.counts.total, r.pilot.total, r.current_wave), (10, 3, 1));
    assert_eq!(audit_of(store, "library.rollout.create").await.len(), 2);

    // Wave 1 only: the pilot care area.
    let now = OffsetDateTime::now_utc();
    let hour = Duration::hours(1);
    let due = store
        .due_library_announcements(now, hour, None, 100)
        .await
        .unwrap();
    let ids: Vec<String> = due.iter().map(|d| d.asset_id.clone()).collect();
    assert_eq!(ids, ["RP-0", "RP-1", "RP-2"]);
    assert!(due.iter().all(|d| d.rollout_id == r.id
        && d.version == 2
        && d.envelope_sha256 == digest
        && d.envelope_size == 14));
    // Paging: the rows after the last one seen.
    let page = store
        .due_library_announcements(now, hour, None, 2)
        .await
        .unwrap();
    let last = page.last().unwrap();
    let rest = store
        .due_library_announcements(now, hour, Some((&last.asset_id, last.rollout_id)), 2)
        .await
        .unwrap();
    assert_eq!(
        (page.len(), rest.len(), rest[0].asset_id.as_str()),
        (2, 1, "RP-2")
    );
    assert!(store.expected_pump_libraries().await.unwrap().is_empty());
    store.mark_library_announced(r.id, &ids, now).await.unwrap();
    // What detection expects each pump to run: what was announced to it.
    let expected = store.expected_pump_libraries().await.unwrap();
    assert_eq!(expected.len(), 3);
    assert!(ids
        .iter()
        .all(|id| expected[id] == ("2".to_string(), digest.clone())));
    assert!(store
        .due_library_announcements(now, hour, None, 100)
        .await
        .unwrap()
        .is_empty());
    // Unanswered announcements are retried later.
    assert_eq!(
        store
            .due_library_announcements(now + Duration::hours(2), hour, None, 100)
            .await
            .unwrap()
            .len(),
        3
    );

    // What the pumps report drives their state.
    store
        .device_hello(
            &DeviceHello {
                asset_id: "RP-0".into(),
                certificate_serial: "c0".into(),
                protocol_version: 1,
                firmware_version: "8.00.01".into(),
                firmware_digest: "ab".repeat(32),
                library_version: Some("1".into()),
                network: "{}".into(),
                ip: None,
                source: "10.0.0.1".into(),
            },
            now,
        )
        .await
        .unwrap();
    // A report carried by a pump event commits with the event.
    store
        .store_device_batches(
            &[pumpward_store::DeviceBatch {
                asset_id: "RP-0".into(),
                events: vec![pumpward_store::DeviceEventRecord {
                    seq: 1,
                    at: pumpward_core::timefmt::format(now),
                    kind: "library_installed".into(),
                    body: "{}".into(),
                }],
                gaps: Vec::new(),
                library_reports: vec![LibraryReport::Installed {
                    version: "2".into(),
                    digest: digest.to_uppercase(),
                }],
            }],
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        store.library_rollout(r.id).await.unwrap().pilot.installed,
        1
    );
    let changed = store
        .record_library_reports(
            &[
                (
                    "RP-1".into(),
                    LibraryReport::Rejected {
                        version: Some("2".into()),
                        digest: Some(digest.clone()),
                        reason: "wrong_care_area: the library has no care area".into(),
                    },
                ),
                ("RP-2".into(), LibraryReport::Deferred),
                // Another library's digest changes nothing.
                (
                    "RP-3".into(),
                    LibraryReport::Installed {
                        version: "1".into(),
                        digest: "cd".repeat(32),
                    },
                ),
            ],
            now,
        )
        .await
        .unwrap();
    assert_eq!(changed, 2);
    let r2 = store.library_rollout(r.id).await.unwrap();
    assert_eq!(
        (
            r2.pilot.installed,
            r2.pilot.rejected,
            r2.pilot.deferred,
            r2.counts.pending
        ),
        (1, 1, 1, 7)
    );
    let rejected = store
        .library_rollout_pumps(r.id, Some("rejected"))
        .await
        .unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].asset_id, "RP-1");
    assert!(rejected[0]
        .reason
        .as_deref()
        .unwrap()
        .starts_with("wrong_care_area"));

    // Pause: nothing is due; resume and advance: the rest of the fleet.
    store.pause_library_rollout(r.id, &bob).await.unwrap();
    assert!(matches!(
        store.pause_library_rollout(r.id, &bob).await,
        Err(StoreError::Conflict(_))
    ));
    let later = now + Duration::hours(3);
    assert!(store
        .due_library_announcements(later, hour, None, 100)
        .await
        .unwrap()
        .is_empty());
    store.resume_library_rollout(r.id, &bob).await.unwrap();
    store.advance_library_rollout(r.id, &bob).await.unwrap();
    assert!(matches!(
        store.advance_library_rollout(r.id, &bob).await,
        Err(StoreError::Conflict(_))
    ));
    let due = store
        .due_library_announcements(now, hour, None, 100)
        .await
        .unwrap();
    assert_eq!(due.len(), 7);
    assert!(due.iter().all(|d| d.asset_id.as_str() >= "RP-3"));

    // The pump fetches the envelope by its digest; an unknown digest is none.
    assert_eq!(
        store.library_envelope_by_digest(&digest).await.unwrap(),
        Some(b"envelope of v2".to_vec())
    );
    assert_eq!(
        store
            .library_envelope_by_digest(&"00".repeat(32))
            .await
            .unwrap(),
        None
    );

    // Compliance: one pump of ten on version 2; the others stale since a
    // publication, the longest first.
    let c = store.library_compliance(&lib.id, later).await.unwrap();
    assert_eq!((c.current_version, c.pumps, c.current), (Some(2), 10, 1));
    assert_eq!(c.percent, 10.0);
    let icu = c.areas.iter().find(|a| a.care_area == "Adult ICU").unwrap();
    assert_eq!((icu.pumps, icu.current), (3, 1));
    assert!((icu.percent - 33.3).abs() < 0.01);
    assert_eq!(c.stale.len(), 9);
    assert!(c.stale.iter().all(|s| s.asset_id != "RP-0"));
    assert!(c.stale.iter().all(|s| s.stale_seconds >= 3 * 3600 - 5));
    assert!(c
        .stale
        .windows(2)
        .all(|w| w[0].stale_seconds >= w[1].stale_seconds));
}

/// A library assigned to a care area and a pump group: a rollout addresses,
/// and the compliance view counts, only those in-service/maintenance pumps;
/// without an assignment, the whole fleet. Bad assignments change nothing.
async fn library_assignment_scopes_rollouts_and_compliance(store: &Store) {
    use pumpward_store::{LibraryReport, NewRollout};
    // Adult ICU: AS-0..2 (AS-2 in maintenance); Oncology: AS-3..5 (AS-5
    // retired); Med-Surg: AS-6, AS-7.
    for i in 0..8 {
        let area = match i {
            0..=2 => "Adult ICU",
            3..=5 => "Oncology",
            _ => "Med-Surg",
        };
        let state = match i {
            2 => LifecycleState::Maintenance,
            5 => LifecycleState::Decommissioned,
            _ => LifecycleState::InService,
        };
        store
            .create_asset(
                &spec(&format!("AS-{i}"), area, None),
                Some(state),
                &biomed(),
            )
            .await
            .unwrap();
    }
    let bob = pharmacist("bob");
    let lib = pumpward_druglib::sample_library();
    // Before the library exists: not found.
    assert!(matches!(
        store.library_assignment(&lib.id).await,
        Err(StoreError::NotFound { .. })
    ));
    publish_by_ann_and_bob(store, &lib).await;
    let unassigned = store.library_assignment(&lib.id).await.unwrap();
    assert!(unassigned.whole_fleet() && unassigned.assigned_by.is_none());

    // Groups: members must be pumps in the inventory.
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(matches!(
        store
            .set_pump_group("Loaners", "", &names(&["AS-6", "NOPE-1"]), &biomed())
            .await,
        Err(StoreError::Invalid(m)) if m.contains("NOPE-1")
    ));
    assert!(matches!(
        store.set_pump_group("  ", "", &[], &biomed()).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.pump_groups().await.unwrap().is_empty());
    let g = store
        .set_pump_group(
            " Loaners ",
            "loaner pool",
            &names(&["AS-6", "AS-6", "AS-5"]),
            &biomed(),
        )
        .await
        .unwrap();
    assert_eq!(
        (g.name.as_str(), g.members.clone()),
        ("Loaners", names(&["AS-5", "AS-6"]))
    );
    assert_eq!(audit_of(store, "pump_group.set").await.len(), 1);

    // Bad assignments: unknown group, a care area the published version
    // lacks (its pumps would refuse the library), an empty name.
    for (areas, groups) in [
        (names(&["Adult ICU"]), names(&["Nobody"])),
        (names(&["Burns Unit"]), vec![]),
        (names(&[" "]), vec![]),
    ] {
        assert!(matches!(
            store
                .set_library_assignment(&lib.id, &areas, &groups, &bob)
                .await,
            Err(StoreError::Invalid(_))
        ));
    }
    assert!(store
        .library_assignment(&lib.id)
        .await
        .unwrap()
        .whole_fleet());
    assert!(audit_of(store, "library.assignment.set").await.is_empty());

    // Care area by the inventory's name, in any case, or the library's id.
    let a = store
        .set_library_assignment(
            &lib.id,
            &names(&["adult icu", "ADULT ICU"]),
            &names(&["Loaners"]),
            &bob,
        )
        .await
        .unwrap();
    assert_eq!(
        a.care_areas,
        names(&["Adult ICU"]),
        "kept as the profile names it, repeats dropped"
    );
    assert_eq!(a.pump_groups, names(&["Loaners"]));
    assert_eq!(a.assigned_by.as_deref(), Some(bob.id.as_str()));
    assert_eq!(audit_of(store, "library.assignment.set").await.len(), 1);

    // The rollout: Adult ICU (AS-0, AS-1 in service, AS-2 in maintenance)
    // and the group's pump in service (AS-6; AS-5 is retired). Oncology
    // and AS-7 are outside.
    let (r, addressed) = roll_out_at_once(store, &lib.id, 1, &bob).await;
    assert_eq!(addressed, names(&["AS-0", "AS-1", "AS-2", "AS-6"]));
    let due: Vec<String> = store
        .due_library_announcements(OffsetDateTime::now_utc(), Duration::hours(1), None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.asset_id)
        .collect();
    assert_eq!(
        due, addressed,
        "a pump outside the scope is not announced to"
    );

    // Compliance counts the scope only: 4 pumps; an installed report from a
    // pump outside it changes nothing.
    let digest = r.envelope_sha256.clone();
    let installed = |v: &str| LibraryReport::Installed {
        version: v.into(),
        digest: digest.clone(),
    };
    let now = OffsetDateTime::now_utc();
    store
        .record_library_reports(
            &[
                ("AS-0".into(), installed("1")),
                ("AS-3".into(), installed("1")),
            ],
            now,
        )
        .await
        .unwrap();
    let c = store.library_compliance(&lib.id, now).await.unwrap();
    assert_eq!((c.pumps, c.current, c.percent), (4, 1, 25.0));
    assert_eq!(c.assignment, a);
    let areas: Vec<(&str, i64)> = c
        .areas
        .iter()
        .map(|x| (x.care_area.as_str(), x.pumps))
        .collect();
    assert_eq!(areas, [("Adult ICU", 3), ("Med-Surg", 1)]);
    assert!(c.stale.iter().all(|s| s.asset_id != "AS-3"));
    for p in ["AS-1", "AS-2", "AS-6"] {
        store
            .record_library_reports(&[(p.into(), installed("1"))], now)
            .await
            .unwrap();
    }
    let c = store.library_compliance(&lib.id, now).await.unwrap();
    assert_eq!((c.pumps, c.current, c.percent), (4, 4, 100.0));
    assert!(c.stale.is_empty());

    // Unassigned again: the whole fleet (7 in service or maintenance).
    let a = store
        .set_library_assignment(&lib.id, &[], &[], &bob)
        .await
        .unwrap();
    assert!(a.whole_fleet());
    let c = store.library_compliance(&lib.id, now).await.unwrap();
    assert_eq!((c.pumps, c.current), (7, 5));

    store
        .set_library_assignment(&lib.id, &names(&["Adult ICU"]), &[], &bob)
        .await
        .unwrap();
    // A newer version without the assigned care area cannot be rolled out:
    // the pumps there would refuse it. Nothing changes.
    let mut without_icu = lib.clone();
    without_icu.care_areas.retain(|c| c.id != "adult-icu");
    publish_by_ann_and_bob(store, &without_icu).await;
    let v2 = NewRollout {
        library_id: lib.id.clone(),
        version: 2,
        pilot_care_area: None,
        pilot_percent: 0,
    };
    assert!(matches!(
        store.create_library_rollout(&v2, &bob).await,
        Err(StoreError::Invalid(m)) if m.contains("Adult ICU")
    ));
    assert_eq!(store.library_rollouts(&lib.id).await.unwrap().len(), 1);
}

/// The scope of an assignment agrees with the pump: a pump is addressed
/// exactly when its care area resolves to an assigned profile, as the
/// pump's own `resolve_care_area` decides when it installs (ignoring
/// surrounding space and ASCII case only; a non-ASCII letter in another
/// case is another care area on both backends). A care area given by the
/// profile's id is kept as its name, so it matches the inventory.
async fn a_library_is_for_the_pumps_that_would_install_it(store: &Store) {
    let mut lib = pumpward_druglib::sample_library();
    let nicu = lib
        .care_areas
        .iter_mut()
        .find(|c| c.id == "nicu")
        .expect("the sample library has a NICU profile");
    nicu.name = "Néonatologie".into();
    let spellings = [
        "Néonatologie",
        "NéONATOLOGIE",
        "NÉONATOLOGIE",
        "néonatologie",
        "Adult ICU",
        "Neonatologie",
    ];
    for (i, area) in spellings.iter().enumerate() {
        store
            .create_asset(
                &spec(&format!("NE-{i}"), area, None),
                Some(LifecycleState::InService),
                &biomed(),
            )
            .await
            .unwrap();
    }
    let bob = pharmacist("bob");
    publish_by_ann_and_bob(store, &lib).await;
    let a = store
        .set_library_assignment(&lib.id, &["nicu".to_owned()], &[], &bob)
        .await
        .unwrap();
    assert_eq!(a.care_areas, ["Néonatologie"], "the id is kept as the name");
    let (_, addressed) = roll_out_at_once(store, &lib.id, 1, &bob).await;
    let would_install: Vec<String> = spellings
        .iter()
        .enumerate()
        .filter(|(_, area)| lib.resolve_care_area(area).is_some_and(|c| c.id == "nicu"))
        .map(|(i, _)| format!("NE-{i}"))
        .collect();
    assert_eq!(would_install, ["NE-0", "NE-1", "NE-3"]);
    assert_eq!(addressed, would_install);
    let c = store
        .library_compliance(&lib.id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(c.pumps, 3);
}

/// A pump group lists its pumps with what the inventory says of them and
/// the libraries assigned to it; it cannot be deleted while a library is
/// assigned to it (that library would silently widen to the whole fleet):
/// the refusal names the library and changes nothing. Unassigned, the
/// delete removes the group and its members and is audited; the name can
/// be used again without the old members. A delete racing an assignment of
/// the group never lets both win (on PostgreSQL this needs the row locks).
async fn pump_group_delete_is_refused_while_a_library_is_assigned(store: &Store) {
    store
        .create_asset(
            &spec("GP-1", "Oncology", None),
            Some(LifecycleState::Decommissioned),
            &biomed(),
        )
        .await
        .unwrap();
    store
        .create_asset(
            &spec("GP-0", "Adult ICU", None),
            Some(LifecycleState::InService),
            &biomed(),
        )
        .await
        .unwrap();
    let bob = pharmacist("bob");
    let lib = pumpward_druglib::sample_library();
    publish_by_ann_and_bob(store, &lib).await;
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    store
        .set_pump_group(
            "Loaners",
            "loaner pool",
            &names(&["GP-1", "GP-0"]),
            &biomed(),
        )
        .await
        .unwrap();

    // The group's pumps, by asset id, with model, care area and state.
    let pumps = store.pump_group_pumps("Loaners", 10).await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>, &str)> = pumps
        .iter()
        .map(|p| {
            (
                p.asset_id.as_str(),
                p.model.as_str(),
                p.care_area.as_deref(),
                p.lifecycle_state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GP-0", "Sigma Spectrum", Some("Adult ICU"), "in_service"),
            ("GP-1", "Sigma Spectrum", Some("Oncology"), "decommissioned"),
        ]
    );
    assert_eq!(store.pump_group_pumps("Loaners", 1).await.unwrap().len(), 1);
    assert!(store
        .pump_group_pumps("Nobody", 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.pump_group_libraries().await.unwrap().is_empty());

    store
        .set_library_assignment(&lib.id, &[], &names(&["Loaners"]), &bob)
        .await
        .unwrap();
    let by_group = store.pump_group_libraries().await.unwrap();
    assert_eq!(
        by_group.into_iter().collect::<Vec<_>>(),
        [("Loaners".to_owned(), vec![lib.id.clone()])]
    );

    // Refused while assigned: the library is named, nothing changes.
    match store.delete_pump_group("Loaners", &biomed()).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains(&lib.id), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.pump_group("Loaners").await.unwrap().members,
        names(&["GP-0", "GP-1"])
    );
    assert_eq!(
        store.library_assignment(&lib.id).await.unwrap().pump_groups,
        names(&["Loaners"])
    );
    assert!(audit_of(store, "pump_group.delete").await.is_empty());
    assert!(matches!(
        store.delete_pump_group("Nobody", &biomed()).await,
        Err(StoreError::NotFound { .. })
    ));

    // Unassigned: deleted, members with it, audited.
    store
        .set_library_assignment(&lib.id, &[], &[], &bob)
        .await
        .unwrap();
    store
        .delete_pump_group(" Loaners ", &biomed())
        .await
        .unwrap();
    assert!(matches!(
        store.pump_group("Loaners").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(store.pump_groups().await.unwrap().is_empty());
    assert!(store
        .pump_group_pumps("Loaners", 10)
        .await
        .unwrap()
        .is_empty());
    let audit = audit_of(store, "pump_group.delete").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, biomed().id);
    assert_eq!(audit[0].entry.object.as_deref(), Some("pump_group:Loaners"));
    let details: serde_json::Value =
        serde_json::from_str(audit[0].entry.details.as_deref().unwrap()).unwrap();
    assert_eq!(details["pumps"], 2);
    assert_eq!(details["description"], "loaner pool");
    assert!(matches!(
        store.delete_pump_group("Loaners", &biomed()).await,
        Err(StoreError::NotFound { .. })
    ));
    let again = store
        .set_pump_group("Loaners", "", &names(&["GP-0"]), &biomed())
        .await
        .unwrap();
    assert_eq!(again.members, names(&["GP-0"]));

    // A delete racing an assignment of the same group: one of them loses,
    // never both win (an assignment naming a group that no longer exists).
    let bea = biomed();
    for i in 0..20 {
        let g = format!("Race {i}");
        store
            .set_pump_group(&g, "", &names(&["GP-0"]), &biomed())
            .await
            .unwrap();
        let groups = vec![g.clone()];
        let (deleted, assigned) = tokio::join!(
            store.delete_pump_group(&g, &bea),
            store.set_library_assignment(&lib.id, &[], &groups, &bob),
        );
        match (&deleted, &assigned) {
            (Ok(()), Err(StoreError::Invalid(_))) => {}
            (Err(StoreError::Conflict(_)), Ok(a)) => assert_eq!(a.pump_groups, groups),
            other => panic!("both or neither won the race for {g:?}: {other:?}"),
        }
        let now = store.library_assignment(&lib.id).await.unwrap();
        assert_eq!(
            group_gone(store, &g).await,
            now.pump_groups.is_empty(),
            "{g:?}: {now:?}"
        );
        store
            .set_library_assignment(&lib.id, &[], &[], &bob)
            .await
            .unwrap();
    }
}

async fn group_gone(store: &Store, name: &str) -> bool {
    matches!(
        store.pump_group(name).await,
        Err(StoreError::NotFound { .. })
    )
}

async fn cqi_report_counts_dose_checks_per_area_and_drug(store: &Store) {
    use pumpward_store::{DeviceBatch, DeviceEventRecord};
    let t0 = time::macros::datetime!(2026-03-02 08:00 UTC);
    let check = |seq: i64, minutes: i64, result: &str, drug: &str, reason: Option<&str>| {
        let at = pumpward_core::timefmt::format(t0 + Duration::minutes(minutes));
        let mut body = serde_json::json!({
            "seq": seq, "at": at, "kind": "dose_check", "result": result,
            "drug": drug, "care_area": "adult-icu",
        });
        if let Some(r) = reason {
            body["override_reason"] = r.into();
        }
        DeviceEventRecord {
            seq,
            at,
            kind: "dose_check".into(),
            body: body.to_string(),
        }
    };
    let events = vec![
        check(1, 0, "within_limits", "heparin", None),
        check(2, 1, "soft_override", "Heparin", Some("aPTT below target")),
        check(3, 2, "soft_override", "heparin", Some("=HYPERLINK(\"x\")")),
        check(4, 3, "soft_override", "heparin", Some("=HYPERLINK(\"x\")")),
        check(5, 4, "hard_block", "heparin", None),
        check(6, 5, "basic_infusion", "basic infusion", None),
        // Outside the period.
        check(7, 24 * 60, "hard_block", "heparin", None),
    ];
    store
        .store_device_batches(
            &[DeviceBatch {
                asset_id: "CQI-1".into(),
                events,
                ..Default::default()
            }],
            t0,
        )
        .await
        .unwrap();
    let r = store
        .cqi_report(t0, t0 + Duration::hours(12))
        .await
        .unwrap();
    assert_eq!(r.unreadable, 0);
    assert_eq!(r.rows.len(), 2);
    let h = r.rows.iter().find(|x| x.drug == "heparin").unwrap();
    assert_eq!(
        (
            h.programmings,
            h.within_limits,
            h.soft_overrides,
            h.hard_blocks,
            h.basic_infusions
        ),
        (5, 1, 3, 1, 0)
    );
    assert_eq!(h.override_reasons[0], ("=HYPERLINK(\"x\")".into(), 2));
    assert_eq!(h.override_reasons[1], ("aPTT below target".into(), 1));
    let b = r.rows.iter().find(|x| x.drug == "basic infusion").unwrap();
    assert_eq!(b.basic_infusions, 1);
    // The CSV never hands a spreadsheet a formula.
    let csv = r.to_csv();
    assert!(
        csv.contains(",\"'=HYPERLINK(\"\"x\"\") (2); aPTT below target (1)\""),
        "{csv}"
    );
    assert!(!csv.contains(",=") && !csv.contains("\"="), "{csv}");
    assert!(matches!(
        store.cqi_report(t0, t0).await,
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn csv_cells_are_formula_safe() {
    use pumpward_store::csv_cell;
    assert_eq!(csv_cell("heparin"), "heparin");
    assert_eq!(csv_cell("=1+1"), "'=1+1");
    assert_eq!(csv_cell("+1"), "'+1");
    assert_eq!(csv_cell("-1"), "'-1");
    assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
    assert_eq!(csv_cell("a,b"), "\"a,b\"");
    assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
}

/// What detection reads to resume after a restart and to compare against:
/// keyset paging over committed pump events, security events after a seq,
/// open affected findings, the KEV list, expected firmware.
async fn detection_inputs_page_without_skipping_or_repeating(store: &Store) {
    use pumpward_store::{DeviceBatch, DeviceEventRecord, NewFinding, Severity, KIND_AFFECTED};
    for id in ["DI-1", "DI-2"] {
        store
            .create_asset(
                &spec(id, "ICU", None),
                Some(LifecycleState::InService),
                &biomed(),
            )
            .await
            .unwrap();
    }
    assert_eq!(store.last_device_commit().await.unwrap(), None);
    let rec = |seq: i64| DeviceEventRecord {
        seq,
        at: "2026-11-26T10:00:00.000000Z".into(),
        kind: "alarm".into(),
        body: format!("{{\"seq\":{seq}}}"),
    };
    let t0 = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    // Three commits; the first and second hold both pumps.
    for (c, seqs) in [(0, 1..4), (1, 4..6), (2, 6..7)] {
        let batches: Vec<DeviceBatch> = ["DI-2", "DI-1"]
            .iter()
            .filter(|a| c < 2 || **a == "DI-1")
            .map(|a| DeviceBatch {
                asset_id: (*a).into(),
                events: seqs.clone().map(rec).collect(),
                ..Default::default()
            })
            .collect();
        store
            .store_device_batches(&batches, t0 + Duration::seconds(c))
            .await
            .unwrap();
    }
    let commits: Vec<String> = (0..3)
        .map(|c| pumpward_core::timefmt::format(t0 + Duration::seconds(c)))
        .collect();
    assert_eq!(
        store.last_device_commit().await.unwrap().as_ref(),
        Some(&commits[2])
    );
    // Everything, two at a time, in commit order.
    let mut all = Vec::new();
    let mut page = store.device_events_after_commit(None, 2).await.unwrap();
    while let Some(last) = page.last().map(|e| e.cursor.clone()) {
        all.extend(page);
        page = store.device_events_after(&last, 2).await.unwrap();
    }
    let seen: Vec<(String, i64)> = all
        .iter()
        .map(|e| (e.cursor.asset_id.clone(), e.record.seq))
        .collect();
    assert_eq!(seen.len(), 11, "{seen:?}");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 11, "nothing repeated");
    assert!(
        all.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "commit order"
    );
    assert_eq!(all[0].cursor.received_at, commits[0]);
    // After the second commit: only the third.
    let rest = store
        .device_events_after_commit(Some(&commits[1]), 100)
        .await
        .unwrap();
    assert_eq!(
        rest.iter()
            .map(|e| (e.cursor.asset_id.as_str(), e.record.seq))
            .collect::<Vec<_>>(),
        [("DI-1", 6)]
    );

    // Security events after a seq.
    let at = OffsetDateTime::now_utc();
    let evs: Vec<pumpward_detect::Event> = (0..3)
        .map(|i| {
            pumpward_detect::Event::auth_failure(
                format!("di:{i}"),
                at,
                "10.0.0.9".parse().unwrap(),
                "x".into(),
            )
        })
        .collect();
    store.record_security_events(&evs).await.unwrap();
    let last = store.last_security_event_seq().await.unwrap();
    let after = store.security_events_after(last - 2, 100).await.unwrap();
    assert_eq!(
        after.iter().map(|(_, e)| e.id.as_str()).collect::<Vec<_>>(),
        ["di:1", "di:2"]
    );
    assert_eq!(after[1].0, last);

    // Open affected findings, with whether the CVE was on the KEV list.
    let raise = |cve: &str, asset: &str, kev: bool| NewFinding {
        kind: KIND_AFFECTED.into(),
        subject: format!("cve:{cve}:asset:{asset}"),
        asset_id: Some(asset.into()),
        severity: Severity::High,
        title: format!("{cve} on {asset}"),
        evidence: serde_json::json!({"cve": cve, "kev": if kev { serde_json::json!({"date_added": "2026-01-01"}) } else { serde_json::Value::Null }}),
    };
    let sys = Actor::system();
    let (a, _) = store
        .raise_finding(&raise("CVE-2026-1", "DI-1", false), &sys)
        .await
        .unwrap();
    let (b, _) = store
        .raise_finding(&raise("CVE-2026-2", "DI-2", true), &sys)
        .await
        .unwrap();
    let (c, _) = store
        .raise_finding(&raise("CVE-2026-3", "DI-2", false), &sys)
        .await
        .unwrap();
    store
        .resolve_finding(KIND_AFFECTED, &c.subject, "fixed", &sys)
        .await
        .unwrap();
    let got = store.affected_findings_after(0, 100).await.unwrap();
    assert_eq!(
        got.iter()
            .map(|f| (f.vulnerability.as_str(), f.asset_id.as_str(), f.kev))
            .collect::<Vec<_>>(),
        [("CVE-2026-1", "DI-1", false), ("CVE-2026-2", "DI-2", true)]
    );
    assert_eq!(
        store.affected_findings_after(a.id, 100).await.unwrap()[0].id,
        b.id
    );
    assert!(store
        .affected_findings_after(b.id, 100)
        .await
        .unwrap()
        .is_empty());

    // The KEV list as imported.
    assert!(store.kev_vulnerabilities().await.unwrap().is_empty());
    store
        .import_vuln_document(
            &vuln_data("kev/known_exploited_vulnerabilities.trimmed.json"),
            &sys,
        )
        .await
        .unwrap();
    let kev = store.kev_vulnerabilities().await.unwrap();
    assert_eq!(kev.len(), 6);
    assert!(kev.contains("CVE-2025-48384"));

    // Expected firmware, by model and version.
    let digest = "cd".repeat(32);
    store
        .set_expected_firmware("Baxter", "Sigma Spectrum", "8.00.01", &digest, &biomed())
        .await
        .unwrap();
    let fw = store.expected_firmware_digests().await.unwrap();
    assert_eq!(fw["Sigma Spectrum"]["8.00.01"], [digest]);
}

/// An incident opened from several alerts is all or nothing; incidents list
/// by state with a cursor; the rule settings saved from the UI replace each
/// other and are audited; security events are found by id.
async fn incidents_open_from_alerts_list_and_rule_settings(store: &Store) {
    use pumpward_detect::event::Event;
    use pumpward_detect::{Context, DetectionConfig, Engine, Severity};

    let t0 = time::OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap();
    // Three bursts of authentication failures from three addresses: three alerts.
    let mut events = Vec::new();
    for (a, peer) in ["10.9.9.1", "10.9.9.2", "10.9.9.3"].iter().enumerate() {
        for i in 0..5 {
            events.push(Event::auth_failure(
                format!("gw:auth:{a}:{i}"),
                t0 + time::Duration::seconds(i),
                peer.parse().unwrap(),
                "unknown_ca".into(),
            ));
        }
    }
    store.record_security_events(&events).await.unwrap();
    let mut engine = Engine::new(DetectionConfig::default());
    let mut alerts = Vec::new();
    for (i, e) in events.iter().enumerate() {
        engine.process(&Context::default(), i as u64 + 1, e, &mut alerts);
    }
    assert_eq!(alerts.len(), 3, "{alerts:?}");
    store.record_alerts(&alerts).await.unwrap();
    let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
    let sec = Actor {
        id: "user:sam".into(),
        source: None,
    };

    // Refusals change nothing: no alert, an unknown alert, a repeated alert.
    for bad in [
        vec![],
        vec![ids[0].clone(), "nope".into()],
        vec![ids[0].clone(), ids[0].clone()],
    ] {
        let r = store
            .open_incident_from("INC-X", "Probing", None, &bad, &sec)
            .await;
        assert!(r.is_err(), "{bad:?}: {r:?}");
    }
    assert!(store.incident("INC-X").await.is_err());
    assert_eq!(store.alert(&ids[0]).await.unwrap().incident_id, None);
    assert!(audit_of(store, "incident.open").await.is_empty());

    let inc = store
        .open_incident_from("INC-A", "Probing", None, &ids[..2], &sec)
        .await
        .unwrap();
    assert_eq!(inc.alerts, ids[..2]);
    assert_eq!(inc.severity, alerts[0].severity);
    for id in &ids[..2] {
        assert_eq!(
            store.alert(id).await.unwrap().incident_id.as_deref(),
            Some("INC-A")
        );
    }
    // An alert already in an incident cannot open another.
    let again = store
        .open_incident_from("INC-B", "Again", None, &ids[1..], &sec)
        .await;
    assert!(
        matches!(again, Err(StoreError::Invalid(ref m)) if m.contains("INC-A")),
        "{again:?}"
    );
    assert_eq!(store.alert(&ids[2]).await.unwrap().incident_id, None);
    let b = store
        .open_incident_from("INC-B", "Third", Some(Severity::Low), &ids[2..], &sec)
        .await
        .unwrap();
    assert_eq!(b.severity, Severity::Low);
    assert_eq!(audit_of(store, "incident.open").await.len(), 2);
    store
        .update_incident("INC-B", "incident.contain", None, &sec, |i, _| {
            i.contain("sam", t0)
        })
        .await
        .unwrap();

    let (all, next) = store
        .list_incidents(&pumpward_store::IncidentFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    let (rest, end) = store
        .list_incidents(&pumpward_store::IncidentFilter {
            before: next.clone(),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(end, None);
    assert_ne!(all[0].incident.id, rest[0].incident.id);
    let (contained, _) = store
        .list_incidents(&pumpward_store::IncidentFilter {
            state: Some("contained".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        contained
            .iter()
            .map(|i| i.incident.id.as_str())
            .collect::<Vec<_>>(),
        ["INC-B"]
    );

    let found = store
        .security_events_by_ids(&["pump:P-1:3".into(), "gw:auth:1:4".into()])
        .await
        .unwrap();
    assert_eq!(
        found
            .iter()
            .map(|e| e.event.id.as_str())
            .collect::<Vec<_>>(),
        ["gw:auth:1:4"]
    );

    assert_eq!(store.detection_settings().await.unwrap(), None);
    let text = "[rules.auth_failure_burst]\nthreshold = 9\n";
    store
        .save_detection_settings(
            text,
            &serde_json::json!({"rule": "auth_failure_burst"}),
            &sec,
        )
        .await
        .unwrap();
    store
        .save_detection_settings("", &serde_json::json!({"reset": true}), &sec)
        .await
        .unwrap();
    store
        .save_detection_settings(
            text,
            &serde_json::json!({"rule": "auth_failure_burst"}),
            &sec,
        )
        .await
        .unwrap();
    let saved = store.detection_settings().await.unwrap().unwrap();
    assert_eq!(saved.rules, text);
    assert_eq!(saved.updated_by, "user:sam");
    assert_eq!(audit_of(store, "detection.configure").await.len(), 3);
}

async fn network_policy_versions(store: &Store) {
    let starter = pumpward_net::STARTER_POLICY_TOML;
    assert_eq!(store.current_network_policy().await.unwrap(), None);
    let analyst = Actor::user("sam.soc", None);
    let v1 = store
        .save_network_policy(starter, "first version", None, &analyst)
        .await
        .unwrap();
    assert_eq!((v1.version, v1.author.as_str()), (1, "user:sam.soc"));
    // A second editor who also started from the starter policy is refused.
    let stale = store
        .save_network_policy(starter, "again", None, &analyst)
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    // Invalid text is refused and changes nothing.
    let bad = starter.replace("to = \"clinical-systems\"", "to = \"ehr\"");
    let refused = store
        .save_network_policy(&bad, "typo", Some(1), &analyst)
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(m)) if m.contains("\"ehr\"")),
        "{refused:?}"
    );
    let edited = starter.replace("SP 1800-8 starter policy", "St. Elsewhere policy");
    let v2 = store
        .save_network_policy(&edited, "our name", Some(1), &analyst)
        .await
        .unwrap();
    assert_eq!((v2.version, v2.name.as_str()), (2, "St. Elsewhere policy"));
    let current = store.current_network_policy().await.unwrap().unwrap();
    assert_eq!(current.toml, edited);
    assert_eq!(current.comment, "our name");
    let list = store.network_policy_versions().await.unwrap();
    let versions: Vec<i64> = list.iter().map(|v| v.version).collect();
    assert_eq!(versions, [2, 1]);
    assert_ne!(list[0].digest, list[1].digest);
    assert_eq!(store.network_policy_version(1).await.unwrap().toml, starter);
    assert!(matches!(
        store.network_policy_version(3).await,
        Err(StoreError::NotFound { .. })
    ));
    let audited = audit_of(store, "network.policy.save").await;
    assert_eq!(audited.len(), 2);
}

async fn network_quarantine_list(store: &Store) {
    use pumpward_net::QuarantinedDevice;
    let analyst = Actor::user("sam.soc", None);
    let rogue = QuarantinedDevice {
        mac: "02:00:00:00:99:01".parse().unwrap(),
        addresses: vec![
            "fd00:20::99".parse().unwrap(),
            "10.20.0.99".parse().unwrap(),
            "10.20.0.99".parse().unwrap(),
        ],
        zone: Some("infusion-pump".into()),
        reason: "  rogue laptop on the pump VLAN ".into(),
    };
    assert!(store.network_quarantine(true).await.unwrap().is_empty());

    // Refused entries change nothing: no reason, a bad zone name.
    for (bad, why) in [
        (
            QuarantinedDevice {
                reason: " ".into(),
                ..rogue.clone()
            },
            "reason",
        ),
        (
            QuarantinedDevice {
                zone: Some("Pump Zone".into()),
                ..rogue.clone()
            },
            "zone",
        ),
    ] {
        let r = store.quarantine_device(&bad, &analyst).await;
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{why}: {r:?}");
    }
    assert!(store.network_quarantine(true).await.unwrap().is_empty());
    assert!(audit_of(store, "network.quarantine").await.is_empty());

    let q = store.quarantine_device(&rogue, &analyst).await.unwrap();
    assert!(q.in_force());
    assert_eq!(q.quarantined_by, "user:sam.soc");
    assert_eq!(q.reason, "rogue laptop on the pump VLAN");
    // Sorted and unique, v4 before v6.
    let addrs: Vec<String> = q.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(addrs, ["10.20.0.99", "fd00:20::99"]);
    // Twice is a conflict, and nothing more is stored.
    let again = store.quarantine_device(&rogue, &analyst).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let other = QuarantinedDevice {
        mac: "02:00:00:00:99:02".parse().unwrap(),
        addresses: Vec::new(),
        zone: None,
        reason: "cloned MAC".into(),
    };
    let q2 = store.quarantine_device(&other, &analyst).await.unwrap();
    let devices = store.quarantined_devices().await.unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(devices[0].mac, rogue.mac, "by MAC");
    assert_eq!(devices[0].addresses, q.addresses);

    // Released: out of the list in force, kept as history; not twice.
    let r = store
        .release_quarantined_device(q.id, "our new pump after all", &analyst)
        .await
        .unwrap();
    assert!(!r.in_force());
    assert_eq!(r.release_reason.as_deref(), Some("our new pump after all"));
    let twice = store
        .release_quarantined_device(q.id, "again", &analyst)
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    let missing = store.release_quarantined_device(999, "x", &analyst).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    let in_force = store.network_quarantine(false).await.unwrap();
    assert_eq!(in_force.iter().map(|r| r.id).collect::<Vec<_>>(), [q2.id]);
    let all = store.network_quarantine(true).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [q2.id, q.id]);
    // The same MAC may be quarantined again after its release.
    let q3 = store.quarantine_device(&rogue, &analyst).await.unwrap();
    assert_ne!(q3.id, q.id);
    assert_eq!(store.quarantine_record(q.id).await.unwrap(), r);

    // The action filter matches by prefix: the releases are among these.
    let audited = audit_of(store, "network.quarantine").await;
    let quarantined = audited
        .iter()
        .filter(|r| r.entry.action == "network.quarantine")
        .count();
    assert_eq!((quarantined, audited.len()), (3, 4));
    let released = audit_of(store, "network.quarantine.release").await;
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].entry.actor, "user:sam.soc");
}

/// Every vulnerability finding, open or not, as matching decides it (ids,
/// states, evidence, priority; not the `last_seen_at` stamp).
async fn vuln_findings_snapshot(
    store: &Store,
) -> Vec<(String, String, String, String, Option<i64>)> {
    use pumpward_store::{KIND_AFFECTED, KIND_REVIEW};
    let mut out = Vec::new();
    for kind in [KIND_AFFECTED, KIND_REVIEW] {
        let mut before = None;
        loop {
            let (page, next) = store
                .list_findings(&pumpward_store::FindingFilter {
                    kind: Some(kind.into()),
                    before_id: before,
                    limit: 500,
                    ..Default::default()
                })
                .await
                .unwrap();
            out.extend(page.into_iter().map(|f| {
                (
                    format!("{} {}", f.id, f.kind),
                    f.subject,
                    format!("{} {:?}", f.state, f.resolution),
                    f.evidence.to_string(),
                    f.priority,
                )
            }));
            match next {
                Some(n) => before = Some(n),
                None => break,
            }
        }
    }
    out.sort();
    out
}

/// The import of a directory's advisories re-matched by itself (no full
/// match), then after an advisory update and after a KEV catalog: the
/// incremental re-match (only the assets the documents concern) leaves the
/// findings exactly as a full re-match would: the full run that follows
/// finds nothing to raise, resolve or rewrite.
async fn incremental_rematch_leaves_what_a_full_one_would(store: &Store) {
    let sys = Actor::system();
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/labelled/");
    let fleet = std::fs::read(format!("{here}fleet.csv")).unwrap();
    let parsed = read_assets_csv(&fleet[..], &CsvLimits::default()).unwrap();
    store
        .import_assets(&parsed.rows, false, &biomed())
        .await
        .unwrap();
    let mut imported = Vec::new();
    for dir in ["csaf", "csaf-other"] {
        let p = format!(
            "{}/../pumpward-vuln/tests/data/{dir}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut names: Vec<_> = std::fs::read_dir(&p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|n| !n.ends_with("icsa-15-125-01b.json"))
            .collect();
        names.sort();
        for n in names {
            let r = store
                .import_vuln_document(&std::fs::read(n).unwrap(), &sys)
                .await
                .unwrap();
            assert!(!r.is_refused(), "{r:?}");
            imported.extend(r.advisory_id);
        }
    }
    // What an import of a directory does: one re-match of the assets the
    // documents concern raises the findings, with no full match run.
    let first = store.rematch_after_imports(&imported, &sys).await.unwrap();
    assert!(first.raised > 0, "{first:?}");
    let full = store.match_vulnerabilities(&sys).await.unwrap();
    assert_eq!((full.raised, full.resolved), (0, 0), "{full:?}");
    assert_eq!(
        (full.affected_open, full.review_open),
        (first.affected_open, first.review_open)
    );

    for (doc, changes) in [
        ("csaf/icsa-15-125-01b.json", true),
        ("kev/known_exploited_vulnerabilities.trimmed.json", false),
    ] {
        let imported = store
            .import_vuln_document(&vuln_data(doc), &sys)
            .await
            .unwrap();
        let id = imported.advisory_id.unwrap();
        let inc = store.rematch_after_import(id, &sys).await.unwrap();
        // Only the assets the document concerns were looked at.
        assert!(inc.assets < full.assets, "{doc}: {inc:?} vs {full:?}");
        if changes {
            // The update names the LifeCare PCA's six other CVEs.
            assert!(inc.raised >= 6, "{doc}: {inc:?}");
        }
        let after_incremental = vuln_findings_snapshot(store).await;
        let again = store.match_vulnerabilities(&sys).await.unwrap();
        assert_eq!((again.raised, again.resolved), (0, 0), "{doc}: {again:?}");
        assert_eq!(
            (again.affected_open, again.review_open),
            (
                after_incremental
                    .iter()
                    .filter(|f| f.0.ends_with("affected") && f.2.starts_with("open"))
                    .count(),
                after_incremental
                    .iter()
                    .filter(|f| f.0.ends_with("review") && f.2.starts_with("open"))
                    .count(),
            )
        );
        assert_eq!(
            vuln_findings_snapshot(store).await,
            after_incremental,
            "{doc}"
        );
    }
}

/// An SBOM per model: the real medical-device SBOM (55 components, WolfSSL
/// 4.8.1 among them) attached to the Alaris 8015 at firmware 12.1.2, and the
/// real NVD record of CVE-2022-25638 (wolfSSL before 5.2.0). The pump at
/// that version inherits the finding, naming the component, whichever of
/// the two arrives first; the pump at another version does not; a full
/// match afterwards changes nothing; a broken SBOM changes nothing.
async fn sbom_components_raise_findings_through_nvd_cpe(store: &Store) {
    use pumpward_store::KIND_AFFECTED;
    let sys = Actor::system();
    let fleet = "asset_id,manufacturer,model,serial_number,firmware_version,lifecycle_state\n\
        A-1,BD,Alaris 8015 PC Unit,S1,12.1.2,in_service\n\
        A-2,BD,Alaris 8015 PC Unit,S2,12.1.3,in_service\n\
        F-1,Fresenius Kabi,Agilia SP MC,S3,3.3,in_service\n";
    let parsed = read_assets_csv(fleet.as_bytes(), &CsvLimits::default()).unwrap();
    store
        .import_assets(&parsed.rows, false, &biomed())
        .await
        .unwrap();
    let sbom = vuln_data("sbom/medical-device-casestudy-narrow.cdx.json");
    let nvd = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sbom/CVE-2022-25638.json"
    ))
    .unwrap();

    // A broken SBOM is refused with the parser's words and stores nothing.
    let broken = store
        .attach_sbom(
            "BD",
            "Alaris 8015 PC Unit",
            "12.1.2",
            "x.json",
            b"{\"bomFormat\": 1}",
            &biomed(),
        )
        .await
        .unwrap_err();
    assert!(matches!(broken, StoreError::Invalid(_)), "{broken}");
    assert!(store.list_model_sboms().await.unwrap().is_empty());

    // The SBOM first, named the way another department writes the model:
    // the alias table makes it the same model.
    let a = store
        .attach_sbom(
            "Becton Dickinson",
            "Alaris PC Unit Model 8015",
            "12.1.2",
            "medical-device-casestudy-narrow.cdx.json",
            &sbom,
            &biomed(),
        )
        .await
        .unwrap();
    assert_eq!(a.outcome, "attached");
    assert_eq!(a.sbom.model_key, "bd/alaris-pcu-8015");
    assert_eq!(a.sbom.format, "cyclonedx-json");
    assert_eq!(
        (a.sbom.components, a.sbom.with_cpe, a.sbom.with_purl),
        (55, 55, 55)
    );
    // No NVD record yet: the pump at 12.1.2 was looked at, nothing raised.
    let m = a.matched.unwrap();
    assert_eq!((m.assets, m.raised), (1, 0), "{m:?}");
    let comps = store.sbom_components(a.sbom.id).await.unwrap();
    let wolf = comps.iter().find(|c| c.name == "WolfSSL").unwrap();
    assert_eq!(wolf.version.as_deref(), Some("4.8.1"));
    assert_eq!(wolf.purl.as_deref(), Some("pkg:github/wolfssl/wolfssl"));
    assert_eq!(wolf.cpes, ["cpe:2.3:a:wolfssl:wolfssl:4.8.1:*:*:*:*:*:*:*"]);
    assert_eq!(audit_of(store, "sbom.attach").await.len(), 1);
    // The same file again: skipped, nothing re-matched.
    let again = store
        .attach_sbom(
            "BD",
            "Alaris 8015 PC Unit",
            "12.1.2",
            "again.json",
            &sbom,
            &biomed(),
        )
        .await
        .unwrap();
    assert_eq!((again.outcome.as_str(), again.matched), ("skipped", None));

    // Then the NVD record: its import's re-match reaches the pump through
    // the SBOM (no full match).
    let imported = store.import_vuln_document(&nvd, &sys).await.unwrap();
    assert_eq!(imported.outcome, "added", "{imported:?}");
    let inc = store
        .rematch_after_import(imported.advisory_id.unwrap(), &sys)
        .await
        .unwrap();
    assert_eq!((inc.assets, inc.raised), (1, 1), "{inc:?}");
    let f = store
        .list_findings(&pumpward_store::FindingFilter {
            kind: Some(KIND_AFFECTED.into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].asset_id.as_deref(), Some("A-1"));
    assert_eq!(f[0].subject, "cve:CVE-2022-25638:asset:A-1");
    let rule = &f[0].evidence["rules"][0];
    assert_eq!(rule["source"], "sbom");
    assert_eq!(rule["tracking_id"], "CVE-2022-25638");
    assert_eq!(rule["component"]["component"], "WolfSSL");
    assert_eq!(rule["component"]["version"], "4.8.1");
    assert_eq!(
        rule["criteria"],
        "cpe:2.3:a:wolfssl:wolfssl:*:*:*:*:*:*:*:* before 5.2.0"
    );
    assert!(
        rule["why"]
            .as_str()
            .unwrap()
            .starts_with("component WolfSSL 4.8.1 of the model's SBOM"),
        "{rule:#}"
    );
    // NVD's own score, CVSS 3.1 6.5.
    assert_eq!(f[0].evidence["cvss"]["base_score"], 6.5);
    let row = pumpward_store::FindingRow::from(&f[0]);
    assert_eq!(row.advisory_id.as_deref(), Some("CVE-2022-25638"));
    assert_eq!(row.status, "affected");

    // A full match agrees: nothing to raise or resolve.
    full_match_changes_nothing(store, 1).await;

    // An SBOM for a model the alias table does not know still applies to
    // the assets of that model (keyed by its names).
    let b = store
        .attach_sbom(
            "Fresenius Kabi",
            "Agilia SP MC",
            "3.3",
            "agilia.json",
            &sbom,
            &biomed(),
        )
        .await
        .unwrap();
    assert!(
        b.sbom.model_key.starts_with("unidentified:"),
        "{:?}",
        b.sbom
    );
    let m = b.matched.unwrap();
    assert_eq!((m.assets, m.raised), (1, 1), "{m:?}");
    assert_eq!(store.list_model_sboms().await.unwrap().len(), 2);
    full_match_changes_nothing(store, 2).await;
}

/// An advisory's product purl names the real medical-device SBOM's WolfSSL
/// component (`pkg:github/wolfssl/wolfssl`, 4.8.1, within
/// `vers:generic/<5.2.0`), so the pump of that model and version inherits the
/// finding. Then the manufacturer's VEX takes effect: a standalone VEX BOM
/// stating the component `not_affected` (code_not_reachable) resolves it as
/// not affected with that justification, and its `exploitable` statement on
/// another CVE raises an affected finding that cites the statement; a VEX
/// embedded in an SBOM, about the device itself, `resolved`, makes the
/// finding of the pump at another version fixed, over the advisory.
async fn advisory_purls_and_cyclonedx_vex_decide_component_findings(store: &Store) {
    use pumpward_store::{FindingRow, KIND_AFFECTED};
    let sys = Actor::system();
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sbom/");
    let read = |n: &str| std::fs::read(format!("{here}{n}")).unwrap();
    let fleet = "asset_id,manufacturer,model,serial_number,firmware_version,lifecycle_state\n\
        A-1,BD,Alaris 8015 PC Unit,S1,12.1.2,in_service\n\
        A-2,BD,Alaris 8015 PC Unit,S2,12.1.3,in_service\n";
    let parsed = read_assets_csv(fleet.as_bytes(), &CsvLimits::default()).unwrap();
    store
        .import_assets(&parsed.rows, false, &biomed())
        .await
        .unwrap();
    let sbom = vuln_data("sbom/medical-device-casestudy-narrow.cdx.json");
    for version in ["12.1.2", "12.1.3"] {
        store
            .attach_sbom(
                "BD",
                "Alaris 8015 PC Unit",
                version,
                "narrow.cdx.json",
                &sbom,
                &biomed(),
            )
            .await
            .unwrap();
    }
    // The advisory names wolfSSL by purl only: no product of the alias table.
    let imported = store
        .import_vuln_document(&read("wolfssl-purl.csaf.json"), &sys)
        .await
        .unwrap();
    assert_eq!(imported.outcome, "added", "{imported:?}");
    let inc = store
        .rematch_after_import(imported.advisory_id.unwrap(), &sys)
        .await
        .unwrap();
    assert_eq!((inc.assets, inc.raised), (2, 2), "{inc:?}");
    let f = open_vuln_findings(store, KIND_AFFECTED, "A-1").await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].subject, "cve:CVE-2022-25638:asset:A-1");
    let rule = &f[0].evidence["rules"][0];
    assert_eq!(rule["matched_by"], "purl");
    assert_eq!(rule["purl"], "pkg:github/wolfSSL/wolfssl");
    assert_eq!(rule["tracking_id"], "EXMD-2022-0007");
    assert_eq!(rule["component"]["component"], "WolfSSL");
    assert_eq!(rule["remediations"][0]["category"], "vendor_fix");
    assert!(
        rule["why"]
            .as_str()
            .unwrap()
            .contains("within the affected versions \"vers:generic/<5.2.0\""),
        "{rule:#}"
    );
    assert_eq!(f[0].evidence["cvss"]["base_score"], 6.5);
    assert_eq!(
        FindingRow::from(&f[0]).advisory_id.as_deref(),
        Some("EXMD-2022-0007")
    );
    // A full match agrees.
    full_match_changes_nothing(store, 2).await;

    // The standalone VEX BOM for 12.1.2: the component is not affected.
    let vex = store
        .attach_sbom(
            "BD",
            "Alaris 8015 PC Unit",
            "12.1.2",
            "wolfssl.vex.cdx.json",
            &read("wolfssl-not-affected.vex.cdx.json"),
            &biomed(),
        )
        .await
        .unwrap();
    assert_eq!(vex.sbom.components, 0);
    // A state CycloneDX does not define, and a ref naming nothing here: said,
    // not applied.
    assert_eq!(vex.sbom.warnings.len(), 2, "{:?}", vex.sbom.warnings);
    assert!(
        vex.sbom.warnings[0].starts_with(
            "vulnerabilities[2] (CVE-2022-25640): analysis.state \"affected\" is not a CycloneDX state"
        ),
        "{:?}",
        vex.sbom.warnings
    );
    assert!(vex.sbom.warnings[1]
        .starts_with("vulnerabilities[3] (CVE-2020-11896): affects product-of-another-vendor"));
    let m = vex.matched.unwrap();
    assert_eq!((m.raised, m.resolved), (1, 1), "{m:?}");
    let all = store
        .list_findings(&pumpward_store::FindingFilter {
            asset_id: Some("A-1".into()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    let wolf = all
        .iter()
        .find(|f| f.subject == "cve:CVE-2022-25638:asset:A-1")
        .unwrap();
    let row = FindingRow::from(wolf);
    assert_eq!(row.status, "not_affected", "{row:#?}");
    let why = wolf.resolution.as_deref().unwrap();
    assert!(why.contains("VEX (SBOM"), "{why}");
    assert!(why.contains("component WolfSSL 4.8.1 not affected by CVE-2022-25638 (not_affected, justification code_not_reachable, response will_not_fix)"), "{why}");
    assert!(why.contains("WOLFSSL_TLS13 undefined"), "{why}");
    // Exploitable: affected, citing the statement (no advisory needed).
    let exploitable = all
        .iter()
        .find(|f| f.subject == "cve:CVE-2021-3336:asset:A-1")
        .unwrap();
    assert_eq!(FindingRow::from(exploitable).status, "affected");
    let rule = &exploitable.evidence["rules"][0];
    assert_eq!(rule["source"], "vex");
    assert_eq!(rule["vex"]["state"], "exploitable");
    assert_eq!(rule["vex"]["responses"][0], "update");
    assert_eq!(
        rule["component"]["bom_ref"],
        "BomRef.6730320963532548.7863229239413411"
    );
    // A-2 (12.1.3) is untouched by 12.1.2's VEX.
    assert_eq!(
        open_vuln_findings(store, KIND_AFFECTED, "A-2").await.len(),
        1
    );

    // 12.1.3: the SBOM again, with the manufacturer's VEX embedded, about
    // the device itself: resolved. The advisory still says the component
    // is affected; the device-level statement decides.
    let mut embedded: serde_json::Value = serde_json::from_slice(&sbom).unwrap();
    embedded["vulnerabilities"] = serde_json::json!([{
        "id": "CVE-2022-25638",
        "analysis": {"state": "resolved", "response": ["update"], "detail": "wolfSSL patched in firmware 12.1.3 (backport of 5.2.0's fix)."},
        "affects": [{"ref": "BomRef.8538684141258271.6150057962229712"}]
    }]);
    let b = store
        .attach_sbom(
            "BD",
            "Alaris 8015 PC Unit",
            "12.1.3",
            "narrow+vex.cdx.json",
            &serde_json::to_vec(&embedded).unwrap(),
            &biomed(),
        )
        .await
        .unwrap();
    assert!(b.sbom.warnings.is_empty(), "{:?}", b.sbom.warnings);
    assert_eq!(b.matched.unwrap().resolved, 1);
    assert!(open_vuln_findings(store, KIND_AFFECTED, "A-2")
        .await
        .is_empty());
    let a2 = store
        .list_findings(&pumpward_store::FindingFilter {
            asset_id: Some("A-2".into()),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .0;
    assert_eq!(a2.len(), 1);
    assert_eq!(
        FindingRow::from(&a2[0]).status,
        "fixed",
        "{:?}",
        a2[0].resolution
    );
    assert!(a2[0]
        .resolution
        .as_deref()
        .unwrap()
        .contains("states the device as fixed for CVE-2022-25638 (resolved, response update)"));
    // A full match leaves all of it as it is.
    full_match_changes_nothing(store, 1).await;
}

/// An advisory whose products carry only a CPE name (no purl, no product
/// of the alias table) names the real medical-device SBOM's WolfSSL
/// component (`cpe:2.3:a:wolfssl:wolfssl:4.8.1:…`) within
/// `vers:generic/<5.2.0`: the pump at 12.1.2 inherits the finding, citing
/// the CPE name. Negatives: the pump at 12.1.3, whose SBOM ships wolfSSL
/// 5.2.0 (out of the range, and listed fixed), gets none; an advisory whose
/// product CPE names wolfMQTT raises nothing on either. A full match
/// changes nothing. An advisory stored before product CPE names were kept
/// (the column NULL) is filled by importing the same file again, which
/// re-matches its assets; a third import is skipped.
async fn advisory_product_cpes_decide_component_findings(store: &Store) {
    use pumpward_store::{FindingRow, KIND_AFFECTED, KIND_REVIEW};
    let sys = Actor::system();
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sbom/");
    let advisory = std::fs::read(format!("{here}wolfssl-cpe.csaf.json")).unwrap();
    let fleet = "asset_id,manufacturer,model,serial_number,firmware_version,lifecycle_state\n\
        A-1,BD,Alaris 8015 PC Unit,S1,12.1.2,in_service\n\
        A-2,BD,Alaris 8015 PC Unit,S2,12.1.3,in_service\n";
    let parsed = read_assets_csv(fleet.as_bytes(), &CsvLimits::default()).unwrap();
    store
        .import_assets(&parsed.rows, false, &biomed())
        .await
        .unwrap();
    let sbom = vuln_data("sbom/medical-device-casestudy-narrow.cdx.json");
    // 12.1.3 ships wolfSSL 5.2.0: its component's version and CPE say so.
    let mut newer: serde_json::Value = serde_json::from_slice(&sbom).unwrap();
    for c in newer["components"].as_array_mut().unwrap() {
        if c["name"] == "WolfSSL" {
            c["version"] = "5.2.0".into();
            c["cpe"] = "cpe:2.3:a:wolfssl:wolfssl:5.2.0:*:*:*:*:*:*:*".into();
        }
    }
    for (version, bytes) in [
        ("12.1.2", sbom.clone()),
        ("12.1.3", serde_json::to_vec(&newer).unwrap()),
    ] {
        store
            .attach_sbom(
                "BD",
                "Alaris 8015 PC Unit",
                version,
                "narrow.cdx.json",
                &bytes,
                &biomed(),
            )
            .await
            .unwrap();
    }
    let open_on = |asset: &'static str| async move {
        let mut f = open_vuln_findings(store, KIND_AFFECTED, asset).await;
        f.extend(open_vuln_findings(store, KIND_REVIEW, asset).await);
        f
    };

    // Another product's CPE name (wolfMQTT): it names no component.
    let mut other: serde_json::Value = serde_json::from_slice(&advisory).unwrap();
    other["document"]["tracking"]["id"] = "EXMD-2022-0012".into();
    let mut text = serde_json::to_string(&other["product_tree"]).unwrap();
    text = text.replace("wolfssl:wolfssl", "wolfssl:wolfmqtt");
    other["product_tree"] = serde_json::from_str(&text).unwrap();
    let imported = store
        .import_vuln_document(&serde_json::to_vec(&other).unwrap(), &sys)
        .await
        .unwrap();
    assert_eq!(imported.outcome, "added", "{imported:?}");
    let inc = store
        .rematch_after_import(imported.advisory_id.unwrap(), &sys)
        .await
        .unwrap();
    assert_eq!((inc.assets, inc.raised), (2, 0), "{inc:?}");

    // The wolfSSL advisory: A-1 affected, A-2 (5.2.0) nothing.
    let imported = store.import_vuln_document(&advisory, &sys).await.unwrap();
    assert_eq!(imported.outcome, "added", "{imported:?}");
    let id = imported.advisory_id.unwrap();
    let inc = store.rematch_after_import(id, &sys).await.unwrap();
    assert_eq!((inc.assets, inc.raised), (2, 1), "{inc:?}");
    let f = open_vuln_findings(store, KIND_AFFECTED, "A-1").await;
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].subject, "cve:CVE-2022-25638:asset:A-1");
    let rule = &f[0].evidence["rules"][0];
    assert_eq!(rule["matched_by"], "cpe", "{rule:#}");
    assert_eq!(rule["cpe"], "cpe:2.3:a:wolfssl:wolfssl:*:*:*:*:*:*:*:*");
    assert!(rule.get("purl").is_none(), "{rule:#}");
    assert_eq!(rule["tracking_id"], "EXMD-2022-0011");
    assert_eq!(rule["product_id"], "WOLFSSL-LT-5.2.0");
    assert_eq!(rule["component"]["component"], "WolfSSL");
    assert_eq!(rule["remediations"][0]["category"], "vendor_fix");
    assert!(
        rule["why"].as_str().unwrap().starts_with(
            "component WolfSSL 4.8.1 of the model's SBOM (cpe:2.3:a:wolfssl:wolfssl:4.8.1:*:*:*:*:*:*:*) \
             is the advisory's product cpe:2.3:a:wolfssl:wolfssl:*:*:*:*:*:*:*:* \
             within the affected versions \"vers:generic/<5.2.0\""
        ),
        "{rule:#}"
    );
    assert_eq!(f[0].evidence["cvss"]["base_score"], 6.5);
    assert_eq!(
        FindingRow::from(&f[0]).advisory_id.as_deref(),
        Some("EXMD-2022-0011")
    );
    assert!(open_on("A-2").await.is_empty());
    full_match_changes_nothing(store, 1).await;

    // As stored before migration 0019: no product CPE names. A full match
    // then resolves the finding (nothing names the component any more).
    sqlx::query("UPDATE vuln_product_statuses SET cpe = NULL WHERE advisory_id = $1")
        .bind(id)
        .execute(store.raw_pool())
        .await
        .unwrap();
    let full = store.match_vulnerabilities(&sys).await.unwrap();
    assert_eq!((full.raised, full.resolved), (0, 1), "{full:?}");
    assert!(open_on("A-1").await.is_empty());
    // The same file again fills them, and its re-match raises the finding.
    let again = store.import_vuln_document(&advisory, &sys).await.unwrap();
    assert_eq!(
        (again.outcome.as_str(), again.advisory_id),
        ("updated", Some(id)),
        "{again:?}"
    );
    assert!(
        again
            .reason
            .as_deref()
            .unwrap()
            .ends_with("filled the product CPE names of 2 product statuses, imported before they were stored (migration 0019)"),
        "{again:?}"
    );
    let inc = store.rematch_after_import(id, &sys).await.unwrap();
    assert_eq!(inc.raised, 1, "{inc:?}");
    assert_eq!(
        open_vuln_findings(store, KIND_AFFECTED, "A-1").await.len(),
        1
    );
    assert!(open_on("A-2").await.is_empty());
    // A third time: nothing left to fill.
    let third = store.import_vuln_document(&advisory, &sys).await.unwrap();
    assert_eq!(third.outcome, "skipped", "{third:?}");
    full_match_changes_nothing(store, 1).await;
}

/// An asset's own CPE names (no alias-table product, no SBOM) are matched
/// against NVD configurations and advisory product CPE names as an SBOM
/// component's are, by the CPE's own version (not the firmware field); an
/// edit of them re-matches at once, and CSV carries them both ways.
async fn asset_cpe_names_are_matched_like_sbom_components(store: &Store) {
    use pumpward_core::inventory::csv::{write_assets_csv, ExportRow};
    use pumpward_store::{KIND_AFFECTED, KIND_REVIEW};
    let sys = Actor::system();
    const HW: &str = "cpe:2.3:h:acme:infusor_x:-:*:*:*:*:*:*:*";
    let fw = |v: &str| format!("cpe:2.3:o:acme:infusor_x_firmware:{v}:*:*:*:*:*:*:*");
    // The firmware field says 9.9 on purpose: the CPE names' versions are
    // what is compared. C-2 is past both ranges, C-3 another product, C-4
    // carries no CPE name.
    let fleet = format!(
        "asset_id,manufacturer,model,serial_number,firmware_version,lifecycle_state,cpe\n\
         C-1,Acme,Infusor X,S1,9.9,in_service,{HW} {}\n\
         C-2,Acme,Infusor X,S2,9.9,in_service,{}\n\
         C-3,Acme,Infusor X,S3,1.5,in_service,cpe:2.3:o:acme:other_pump_firmware:1.5:*:*:*:*:*:*:*\n\
         C-4,Acme,Infusor X,S4,1.5,in_service,\n",
        fw("1.5"),
        fw("5.3")
    );
    let parsed = read_assets_csv(fleet.as_bytes(), &CsvLimits::default()).unwrap();
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    store
        .import_assets(&parsed.rows, false, &biomed())
        .await
        .unwrap();
    let c1 = store.asset("C-1").await.unwrap();
    assert_eq!(c1.spec.cpe, [HW.to_owned(), fw("1.5")]);
    assert!(store.asset("C-4").await.unwrap().spec.cpe.is_empty());
    // CSV round trip through the store: the export reads back the same.
    let mut all = Vec::new();
    for id in ["C-1", "C-2", "C-3", "C-4"] {
        all.push(store.asset(id).await.unwrap());
    }
    let mut out = Vec::new();
    write_assets_csv(
        &mut out,
        all.iter().map(|a| ExportRow {
            spec: &a.spec,
            lifecycle_state: a.lifecycle_state,
        }),
    )
    .unwrap();
    let again = read_assets_csv(&out[..], &CsvLimits::default()).unwrap();
    assert!(again.errors.is_empty(), "{:?}", again.errors);
    for (r, a) in again.rows.iter().zip(&all) {
        assert_eq!(r.spec, a.spec);
    }

    // NVD: the firmware before 2.0 (an edited real record).
    let nvd = edited_nvd_record(
        "CVE-2024-10001",
        "cpe:2.3:o:acme:infusor_x_firmware:*:*:*:*:*:*:*:*",
        "2.0",
    );
    // CSAF: the firmware before 5.2.0 by its product CPE name, 5.2.0 fixed.
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sbom/");
    let mut csaf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{here}wolfssl-cpe.csaf.json")).unwrap())
            .unwrap();
    csaf["document"]["tracking"]["id"] = "ACME-2024-0001".into();
    csaf["vulnerabilities"][0]["cve"] = "CVE-2024-10002".into();
    let tree = serde_json::to_string(&csaf["product_tree"])
        .unwrap()
        .replace(
            "cpe:2.3:a:wolfssl:wolfssl",
            "cpe:2.3:o:acme:infusor_x_firmware",
        )
        .replace("wolfSSL Inc.", "Acme Medical")
        .replace("wolfSSL", "Infusor X firmware");
    csaf["product_tree"] = serde_json::from_str(&tree).unwrap();
    let mut raised = 0;
    for doc in [nvd, csaf] {
        let imported = store
            .import_vuln_document(&serde_json::to_vec(&doc).unwrap(), &sys)
            .await
            .unwrap();
        assert_eq!(imported.outcome, "added", "{imported:?}");
        // The import's own re-match reaches the assets by their CPE names.
        let inc = store
            .rematch_after_import(imported.advisory_id.unwrap(), &sys)
            .await
            .unwrap();
        raised += inc.raised;
    }
    assert_eq!(raised, 2);
    let open_on = |asset: &'static str| async move {
        let mut f = open_vuln_findings(store, KIND_AFFECTED, asset).await;
        f.extend(open_vuln_findings(store, KIND_REVIEW, asset).await);
        f
    };
    let mut f = open_vuln_findings(store, KIND_AFFECTED, "C-1").await;
    f.sort_by(|a, b| a.subject.cmp(&b.subject));
    assert_eq!(
        f.iter().map(|f| f.subject.as_str()).collect::<Vec<_>>(),
        [
            "cve:CVE-2024-10001:asset:C-1",
            "cve:CVE-2024-10002:asset:C-1"
        ]
    );
    let nvd_rule = &f[0].evidence["rules"][0];
    assert_eq!(nvd_rule["matched_by"], "asset_cpe", "{nvd_rule:#}");
    assert_eq!(nvd_rule["asset_cpe"], fw("1.5"));
    assert!(
        nvd_rule["why"].as_str().unwrap().starts_with(&format!(
            "the asset's CPE name {} is within NVD's configuration of CVE-2024-10001: \
             cpe:2.3:o:acme:infusor_x_firmware:*:*:*:*:*:*:*:* before 2.0",
            fw("1.5")
        )),
        "{nvd_rule:#}"
    );
    assert_eq!(
        f[0].evidence["asset"]["cpe"],
        serde_json::json!([HW, fw("1.5")])
    );
    let csaf_rule = &f[1].evidence["rules"][0];
    assert_eq!(csaf_rule["matched_by"], "asset_cpe", "{csaf_rule:#}");
    assert_eq!(csaf_rule["tracking_id"], "ACME-2024-0001");
    assert_eq!(
        csaf_rule["cpe"],
        "cpe:2.3:o:acme:infusor_x_firmware:*:*:*:*:*:*:*:*"
    );
    assert_eq!(csaf_rule["product_id"], "WOLFSSL-LT-5.2.0");
    for other in ["C-2", "C-3", "C-4"] {
        assert!(open_on(other).await.is_empty(), "{other}");
    }
    full_match_changes_nothing(store, 2).await;

    // Edits re-match at once: C-1's firmware CPE at 5.3 resolves both; C-2
    // at 1.9 is within both ranges; C-4 given the fixed 5.2.0 stays clear.
    for (id, names, open) in [
        ("C-1", vec![HW.to_owned(), fw("5.3")], 0),
        ("C-2", vec![fw("1.9")], 2),
        ("C-4", vec![fw("5.2.0")], 0),
    ] {
        let a = store.asset(id).await.unwrap();
        let mut spec = a.spec.clone();
        spec.cpe = names;
        store
            .update_asset(&spec, a.version, &biomed())
            .await
            .unwrap();
        assert_eq!(open_on(id).await.len(), open, "{id}");
    }
    full_match_changes_nothing(store, 2).await;
    assert!(open_on("C-1").await.is_empty());

    // A model the alias table knows (Plum A+ 13.3, affected by
    // ICSA-15-161-01) whose firmware CPE an NVD record of the same CVE also
    // names: one finding, holding both rules.
    let mut plum = pump("P-1", "Hospira", "Plum A+", "13.3");
    plum.cpe = vec!["cpe:2.3:o:hospira:plum_a\\+_firmware:13.3:*:*:*:*:*:*:*".into()];
    store
        .create_asset(&plum, Some(LifecycleState::InService), &biomed())
        .await
        .unwrap();
    let nvd = edited_nvd_record(
        "CVE-2015-3952",
        "cpe:2.3:o:hospira:plum_a\\+_firmware:*:*:*:*:*:*:*:*",
        "13.4",
    );
    for doc in [
        serde_json::to_vec(&nvd).unwrap(),
        vuln_data("csaf/icsa-15-161-01.json"),
    ] {
        let imported = store.import_vuln_document(&doc, &sys).await.unwrap();
        store
            .rematch_after_import(imported.advisory_id.unwrap(), &sys)
            .await
            .unwrap();
    }
    let f: Vec<_> = open_vuln_findings(store, KIND_AFFECTED, "P-1")
        .await
        .into_iter()
        .filter(|f| f.subject == "cve:CVE-2015-3952:asset:P-1")
        .collect();
    assert_eq!(f.len(), 1);
    let rules = f[0].evidence["rules"].as_array().unwrap();
    let by = |m: &str| rules.iter().filter(|r| r["matched_by"] == m).count();
    assert_eq!(by("asset_cpe"), 1, "{rules:#?}");
    assert!(
        rules
            .iter()
            .any(|r| r["tracking_id"] == "ICSA-15-161-01" && r.get("matched_by").is_none()),
        "{rules:#?}"
    );
    let n = store
        .list_findings(&pumpward_store::FindingFilter {
            kind: Some(KIND_AFFECTED.into()),
            open: Some(true),
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .0
        .len();
    full_match_changes_nothing(store, n).await;
}

/// The fleet's CSAF VEX from the labelled test set's findings: valid
/// against the official CSAF 2.0 schema (vendored in pumpward-vuln), the
/// cheap mandatory tests pass, and it says what the findings say.
async fn fleet_vex_validates_and_states_the_findings(store: &Store) {
    let sys = Actor::system();
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/labelled/");
    let fleet = std::fs::read(format!("{here}fleet.csv")).unwrap();
    let parsed = read_assets_csv(&fleet[..], &CsvLimits::default()).unwrap();
    store
        .import_assets(&parsed.rows, false, &biomed())
        .await
        .unwrap();
    for doc in ["csaf/icsa-15-161-01.json", "csaf/icsa-15-125-01b.json"] {
        store
            .import_vuln_document(&vuln_data(doc), &sys)
            .await
            .unwrap();
    }
    store
        .create_asset(
            &pump("HS-PLUM-9", "Hospira", "Plum A+", "13.3"),
            Some(LifecycleState::InService),
            &biomed(),
        )
        .await
        .unwrap();
    store.match_vulnerabilities(&sys).await.unwrap();
    // HS-PLUM-9's firmware moves past the affected range ("<=13.4") to
    // 13.6: its findings resolve as not affected (the update re-matches it).
    let mut plum = store.asset("HS-PLUM-9").await.unwrap();
    plum.spec.firmware_version = "13.6".into();
    store
        .update_asset(&plum.spec, plum.version, &biomed())
        .await
        .unwrap();
    let doc = store
        .fleet_vex("General Hospital", "https://hospital.example")
        .await
        .unwrap();
    assert_eq!(
        pumpward_vuln::vex::mandatory_problems(&doc),
        Vec::<String>::new()
    );
    // Valid against the CSAF 2.0 schema, formats asserted.
    let schema_dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../pumpward-vuln/tests/data/csaf-schema/"
    );
    let read = |n: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(format!("{schema_dir}{n}")).unwrap()).unwrap()
    };
    let csaf = "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json";
    let mut compiler = boon::Compiler::new();
    compiler.enable_format_assertions();
    compiler
        .add_resource(csaf, read("csaf_json_schema.json"))
        .unwrap();
    for v in ["2.0", "3.0", "3.1"] {
        let mut s = read(&format!("cvss-v{v}.json"));
        s.as_object_mut().unwrap().remove("$id");
        compiler
            .add_resource(&format!("https://www.first.org/cvss/cvss-v{v}.json"), s)
            .unwrap();
    }
    let mut schemas = boon::Schemas::new();
    let idx = compiler.compile(csaf, &mut schemas).unwrap();
    if let Err(e) = schemas.validate(&doc, idx) {
        panic!("{e:#}");
    }
    // Per the findings: the Hospira Plum A+ at 13.3 (HS-PLUM-1) is affected
    // by CVE-2015-3952, the one at 13.40 (HS-PLUM-4) under investigation
    // (13.40 may be 13.4), the one now at 13.6 (HS-PLUM-9) not affected.
    let product_id = |version: &str| -> String {
        let mut found = None;
        fn walk<'a>(b: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
            for x in b.as_array().into_iter().flatten() {
                if x.get("product").is_some() {
                    out.push(x);
                }
                walk(&x["branches"], out);
            }
        }
        let mut leaves = Vec::new();
        walk(&doc["product_tree"]["branches"], &mut leaves);
        for l in leaves {
            if l["product"]["name"] == format!("Hospira Plum A+ {version}") {
                found = Some(l["product"]["product_id"].as_str().unwrap().to_owned());
            }
        }
        found.unwrap_or_else(|| panic!("no Plum A+ {version} in the product tree"))
    };
    let v = doc["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["cve"] == "CVE-2015-3952")
        .unwrap();
    let listed = |status: &str, id: &str| {
        v["product_status"][status]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == id))
    };
    assert!(listed("known_affected", &product_id("13.3")), "{v:#}");
    assert!(listed("under_investigation", &product_id("13.40")), "{v:#}");
    let moved = product_id("13.6");
    assert!(listed("known_not_affected", &moved), "{v:#}");
    assert!(v["flags"][0]["product_ids"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == &moved));
    assert!(!listed("known_affected", &moved));
}
