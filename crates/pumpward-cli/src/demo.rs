//! `pumpward demo`: a sample hospital on a fresh data directory, with a
//! simulated fleet that enrolls through EST and speaks the device channel,
//! and a storyline that makes every detection rule fire through the real
//! paths (the pumps' own dose checks and library verification, the
//! gateway's checks, vulnerability matching):
//!
//! - vendor firmware digests on file for every model and version the fleet
//!   runs (so that a tampered image is noticed);
//! - the sample drug library published by two (demo) pharmacists and rolled
//!   out to every pump; a later version published but not released (a pump
//!   side-loads it);
//! - the CISA advisories and KEV catalogue shipped with Pumpward imported
//!   and matched; a minute later a simulated KEV addition for one CVE that
//!   affects the fleet;
//! - every simulator scenario, once the fleet is connected;
//! - a simulated network sensor that exports, over IPFIX to the server's
//!   flow collector, a pump talking to the internet, two pumps talking to
//!   each other and a device nobody registered in the pump zone.
//!
//! Everything is sample data, not for clinical use.

use crate::demo_library::Pharmacist;
use crate::{serve, Cli, Settings};
use anyhow::{bail, Context, Result};
use pumpward_core::access::{password, Permission, Role};
use pumpward_core::inventory::csv as invcsv;
use pumpward_pump::sim::ScenarioRequests;
use pumpward_store::{Actor, AssetFilter, NewRollout, Store};
use std::path::PathBuf;

/// The advisories Pumpward ships with (CISA CSAF 2.0 documents and an
/// excerpt of the KEV catalogue; see `crates/pumpward-vuln/tests/data`).
const ADVISORIES: &[(&str, &[u8])] = &[
    (
        "icsa-15-090-03",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsa-15-090-03.json"),
    ),
    (
        "icsa-15-125-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsa-15-125-01.json"),
    ),
    (
        "icsa-15-161-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsa-15-161-01.json"),
    ),
    (
        "icsa-15-174-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsa-15-174-01.json"),
    ),
    (
        "icsma-16-306-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-16-306-01.json"),
    ),
    (
        "icsma-17-017-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-17-017-01.json"),
    ),
    (
        "icsma-17-017-02",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-17-017-02.json"),
    ),
    (
        "icsma-17-250-02a",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-17-250-02a.json"),
    ),
    (
        "icsma-18-235-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-18-235-01.json"),
    ),
    (
        "icsma-19-164-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-19-164-01.json"),
    ),
    (
        "icsma-19-178-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-19-178-01.json"),
    ),
    (
        "icsma-20-170-06",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-20-170-06.json"),
    ),
    (
        "icsma-20-296-02",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-20-296-02.json"),
    ),
    (
        "icsma-20-317-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-20-317-01.json"),
    ),
    (
        "icsma-21-012-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-21-012-01.json"),
    ),
    (
        "icsma-22-263-01",
        include_bytes!("../../pumpward-vuln/tests/data/csaf/icsma-22-263-01.json"),
    ),
    (
        "kev",
        include_bytes!(
            "../../pumpward-vuln/tests/data/kev/known_exploited_vulnerabilities.trimmed.json"
        ),
    ),
];

/// How long after the start the simulated network sensor sends its flows.
const NETWORK_FLOWS_AFTER: std::time::Duration = std::time::Duration::from_secs(45);

/// How long after the start the simulated KEV addition comes.
const KEV_ADDITION_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

fn demo_actor() -> Actor {
    Actor {
        id: "system:demo".into(),
        source: None,
    }
}

/// Runs the demo until interrupted.
pub(crate) async fn run(
    cli: &Cli,
    s: Settings,
    listen: Option<std::net::SocketAddr>,
    gateway_listen: Option<std::net::SocketAddr>,
    seed: u64,
) -> Result<()> {
    let dir = demo_dir(cli)?;
    // The demo's key-encryption key sits beside its own directory.
    let mut pki = s.pki.clone();
    if let pumpward_server::pki::KekSource::KeyFile { path, .. } = &pki.kek {
        if let pumpward_server::pki::KekSource::KeyFile { path: default, .. } =
            pumpward_server::pki::KekSource::default_for(&s.data_dir)
        {
            if *path == default {
                pki.kek = pumpward_server::pki::KekSource::default_for(&dir);
            }
        }
    }
    let mut s = Settings {
        data_dir: dir,
        database_url: None,
        pki,
        ..s
    };
    // The flow collector, on a port of its own, for the simulated sensor.
    let flows = match s.network.flow_listen {
        Some(a) => a,
        None => {
            let a = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
            s.network.flow_listen = Some(a);
            a
        }
    };
    let started = time::OffsetDateTime::now_utc();
    let store = crate::open(&s).await?;
    load_hospital(&store, seed).await?;
    let prepared = prepare_story(&store, &s).await?;
    let token = sim_token(&store).await?;
    let listen = listen.unwrap_or_else(|| "127.0.0.1:8443".parse().expect("valid"));
    let gateway = gateway_listen.unwrap_or_else(|| "127.0.0.1:8444".parse().expect("valid"));
    let (requester, requests) = pumpward_pump::sim::scenario_requests();
    let fleet = tokio::spawn(fleet(
        s.data_dir.clone(),
        listen,
        gateway,
        token,
        requests,
        prepared.side_load,
        prepared.older,
    ));
    let story = tokio::spawn(
        crate::demo_library::Story {
            store: store.clone(),
            base_url: format!("https://{listen}"),
            ca_file: s.data_dir.join("tls/ca.pem"),
            library_id: prepared.library_id,
            author: prepared.author,
            approver: prepared.approver,
            scenarios: requester,
            started,
        }
        .play(),
    );
    let kev = tokio::spawn(kev_addition_later(store.clone()));
    let sensor = tokio::spawn(network_sensor_later(store.clone(), flows));
    let r = serve(&s, Some(listen), Some(gateway), store).await;
    fleet.abort();
    story.abort();
    kev.abort();
    sensor.abort();
    r
}

/// What the storyline's preparation leaves for the fleet and the story.
struct Prepared {
    library_id: String,
    /// The envelope a pump side-loads (published, not released).
    side_load: Vec<u8>,
    /// An older published envelope (the tampered-library scenario's lower
    /// version).
    older: Vec<u8>,
    author: Pharmacist,
    approver: Pharmacist,
}

/// A demo pharmacist with a random password (for re-authentication) and
/// an API token scoped to what their part of the story needs.
async fn demo_pharmacist(
    store: &Store,
    name: &str,
    full_name: &str,
    scopes: &[Permission],
) -> Result<Pharmacist> {
    let actor = demo_actor();
    let pass = pumpward_server::auth::random_token();
    let user = store
        .create_user(
            name,
            full_name,
            Role::Pharmacist,
            &password::hash_password(&pass),
            false,
            &actor,
        )
        .await?;
    let token = format!(
        "{}{}",
        pumpward_server::auth::TOKEN_PREFIX,
        pumpward_server::auth::random_token()
    );
    store
        .create_api_token(
            &user,
            "demo storyline",
            &pumpward_server::auth::token_hash(&token),
            scopes,
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
            &actor,
        )
        .await?;
    Ok(Pharmacist {
        name: name.to_owned(),
        password: pass,
        token,
    })
}

/// The storyline's preparation.
async fn prepare_story(store: &Store, s: &Settings) -> Result<Prepared> {
    let actor = demo_actor();
    // The vendor's firmware digests for every model and version in service
    // (the simulated pumps report `sha256("<manufacturer> <model> <version>")`).
    let mut seen = std::collections::BTreeSet::new();
    for a in crate::all_assets(store, AssetFilter::default()).await? {
        let (m, model, fw) = (
            &a.spec.manufacturer,
            &a.spec.model,
            &a.spec.firmware_version,
        );
        if seen.insert((m.clone(), model.clone(), fw.clone())) {
            let digest = pumpward_pump::sim::simulated_firmware_digest(m, model, fw);
            store
                .set_expected_firmware(m, model, fw, &digest, &actor)
                .await?;
        }
    }

    // The sample library, twice published by two pharmacists: version 1 is
    // rolled out to every pump; version 2 is published but not released.
    let ca = pumpward_server::pki::CaService::open(store.clone(), s.pki.clone(), true).await?;
    let signer = pumpward_server::library::LibrarySigner::load_or_create(&ca).await?;
    let (author, approver) = ("demo-ann", "demo-bea");
    let author_p = demo_pharmacist(
        store,
        author,
        "Ann (demo pharmacist)",
        &[Permission::LibraryRead, Permission::LibraryAuthor],
    )
    .await?;
    let approver_p = demo_pharmacist(
        store,
        approver,
        "Bea (demo pharmacist)",
        &[
            Permission::LibraryRead,
            Permission::LibraryApprove,
            Permission::LibraryPublish,
        ],
    )
    .await?;
    let lib = pumpward_druglib::sample_library();
    for _ in 0..2 {
        pumpward_server::library::publish_reviewed(store, &signer, &lib, author, approver).await?;
    }
    store
        .create_library_rollout(
            &NewRollout {
                library_id: lib.id.clone(),
                version: 1,
                pilot_care_area: None,
                pilot_percent: 0,
            },
            &Actor::user(approver, None),
        )
        .await?;
    let side_load = store.library_envelope(&lib.id, 2).await?;
    let older = store.library_envelope(&lib.id, 1).await?;

    // The advisories shipped with Pumpward, matched against the fleet as
    // an import does it: only the assets and CVEs the documents concern.
    let mut imported = Vec::new();
    for (name, bytes) in ADVISORIES {
        let r = store
            .import_vuln_document(bytes, &actor)
            .await
            .with_context(|| format!("importing the shipped advisory {name}"))?;
        imported.extend(r.advisory_id);
    }
    let m = store.rematch_after_imports(&imported, &actor).await?;
    println!(
        "Sample drug library v1 rolled out, v2 published; {} advisories matched: {} affected and {} to review.",
        ADVISORIES.len(),
        m.affected_open,
        m.review_open
    );
    Ok(Prepared {
        library_id: lib.id.clone(),
        side_load,
        older,
        author: author_p,
        approver: approver_p,
    })
}

/// A simulated network sensor: once, after [`NETWORK_FLOWS_AFTER`], it
/// exports four flows over IPFIX to the server's collector, which
/// attributes them to assets and evaluates them against the zone policy: an
/// in-service pump to an internet address, one pump to another over SSH,
/// a MAC nobody registered in the pump zone, and the pump's normal traffic
/// to its pump server (allowed: the observed conduits show both kinds),
/// also from a second address at the same time (a device in two places).
async fn network_sensor_later(store: Store, collector: std::net::SocketAddr) {
    use pumpward_flow::ipfix::MessageBuilder;
    use pumpward_flow::{Flow, FlowSource, ObservedMac, Transport};
    tokio::time::sleep(NETWORK_FLOWS_AFTER).await;
    let r = async {
        let pumps: Vec<(std::net::IpAddr, [u8; 6])> =
            crate::all_assets(&store, AssetFilter::default())
                .await?
                .into_iter()
                .filter(|a| {
                    a.lifecycle_state == pumpward_core::inventory::LifecycleState::InService
                        && a.spec.zone.as_deref() == Some("infusion-pump")
                })
                .filter_map(|a| {
                    let ip = a.spec.ip_address.filter(|ip| !ip.is_loopback())?;
                    Some((ip, a.spec.mac_address?.octets()))
                })
                .take(2)
                .collect();
        // A pump server for the pumps' normal traffic, which the policy allows.
        let server = crate::all_assets(&store, AssetFilter::default())
            .await?
            .into_iter()
            .find(|a| {
                a.lifecycle_state == pumpward_core::inventory::LifecycleState::InService
                    && a.spec.zone.as_deref() == Some("pump-server")
            })
            .and_then(|a| a.spec.ip_address);
        let [(a_ip, a_mac), (b_ip, _)] = pumps[..] else {
            anyhow::bail!(
                "the sample hospital has no two in-service pumps with an address and a MAC"
            );
        };
        let now_us = time::OffsetDateTime::now_utc().unix_timestamp() * 1_000_000;
        let flow = |from: std::net::IpAddr, mac: [u8; 6], to: std::net::IpAddr, port: u16| Flow {
            start_us: now_us - 5_000_000,
            duration_us: Some(1_000_000),
            transport: Transport::Tcp,
            orig_addr: from,
            orig_port: 40_000,
            resp_addr: to,
            resp_port: port,
            orig_mac: Some(ObservedMac(mac)),
            resp_mac: None,
            orig_bytes: 1_200,
            resp_bytes: 300,
            orig_packets: 4,
            resp_packets: 3,
            source: FlowSource::Ipfix,
            sensor_uid: None,
            conn_state: None,
        };
        let mut flows = vec![
            // 203.0.113.0/24 is TEST-NET-3: documentation, never routed.
            flow(a_ip, a_mac, "203.0.113.50".parse()?, 443),
            flow(a_ip, a_mac, b_ip, 22),
            flow(
                "10.20.250.99".parse()?,
                [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01],
                b_ip,
                443,
            ),
        ];
        if let Some(server) = server {
            flows.push(flow(a_ip, a_mac, server, 443));
            // The same pump's MAC, two seconds later, from another address
            // of the pump zone: a clone of it (or a spoofed MAC) on the
            // wireless network. The traffic itself is allowed; being in two
            // places at once is not.
            flows.push(Flow {
                start_us: now_us - 3_000_000,
                ..flow("10.20.250.77".parse()?, a_mac, server, 443)
            });
        }
        let export_s = u32::try_from(time::OffsetDateTime::now_utc().unix_timestamp())?;
        let mut m = MessageBuilder::ipfix(4242, export_s);
        let template = m.flow_template(false);
        m.template(256, &template);
        let mut records = Vec::new();
        for f in &flows {
            m.flow_record(f, &mut records);
        }
        m.data(256, &records);
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        sock.send_to(&m.build(), collector).await?;
        Ok(flows.len())
    }
    .await;
    match r {
        Ok(n) => {
            tracing::info!(flows = n, %collector, "demo: the simulated network sensor exported its flows")
        }
        Err(e) => tracing::error!(error = %e, "demo: the simulated network sensor failed"),
    }
}

/// A minute in, a simulated KEV catalogue lists the CVE of one open
/// affected finding, as if CISA had just added it: the KEV rule raises an
/// alert for every in-service pump it affects. The catalogue says it is
/// simulated.
async fn kev_addition_later(store: Store) {
    tokio::time::sleep(KEV_ADDITION_AFTER).await;
    let r = async {
        let page = store.affected_findings_after(0, 1).await?;
        let Some(f) = page.first() else {
            return Ok::<_, anyhow::Error>(None);
        };
        let today = pumpward_core::timefmt::format_date(time::OffsetDateTime::now_utc().date());
        let doc = serde_json::json!({
            "title": "Pumpward demo: a simulated KEV addition (not CISA data)",
            "catalogVersion": "demo",
            "dateReleased": pumpward_core::timefmt::format(time::OffsetDateTime::now_utc()),
            "count": 1,
            "vulnerabilities": [{
                "cveID": f.vulnerability,
                "vendorProject": "Demo",
                "product": "Infusion pump (simulated listing)",
                "vulnerabilityName": "Simulated KEV listing for the Pumpward demo",
                "dateAdded": today,
                "shortDescription": "Not a CISA listing: the Pumpward demo pretends this CVE was added to the KEV catalogue.",
                "requiredAction": "Demo only.",
                "dueDate": today,
                "knownRansomwareCampaignUse": "Unknown",
                "notes": "",
                "cwes": []
            }]
        });
        store
            .import_vuln_document(&serde_json::to_vec(&doc)?, &demo_actor())
            .await?;
        Ok(Some(f.vulnerability.clone()))
    }
    .await;
    match r {
        Ok(Some(cve)) => tracing::info!(%cve, "demo: simulated a KEV addition"),
        Ok(None) => tracing::info!("demo: no affected finding to simulate a KEV addition for"),
        Err(e) => tracing::error!(error = %e, "demo: the simulated KEV addition failed"),
    }
}

/// A service account for the demo's simulated fleet, and its API token
/// (enrollment codes and the pump list): the fleet enrolls through EST like
/// real pumps would.
async fn sim_token(store: &Store) -> Result<String> {
    let secret = pumpward_server::auth::random_token();
    let secret = format!("{}{secret}", pumpward_server::auth::TOKEN_PREFIX);
    let actor = Actor {
        id: "system:demo".into(),
        source: None,
    };
    let unusable = password::hash_password(&pumpward_server::auth::random_token());
    let u = store
        .create_user(
            "demo-fleet",
            "Demo fleet simulator",
            Role::Biomed,
            &unusable,
            false,
            &actor,
        )
        .await?;
    store
        .create_api_token(
            &u,
            "demo fleet",
            &pumpward_server::auth::token_hash(&secret),
            // Revoking is the `revoked-cert` scenario's.
            &[
                Permission::InventoryRead,
                Permission::PkiEnroll,
                Permission::PkiRevoke,
            ],
            time::OffsetDateTime::now_utc() + time::Duration::days(1),
            &actor,
        )
        .await?;
    Ok(secret)
}

/// Runs the demo's simulated fleet once the server answers.
async fn fleet(
    data_dir: PathBuf,
    listen: std::net::SocketAddr,
    gateway: std::net::SocketAddr,
    token: String,
    requests: ScenarioRequests,
    side_load_library: Vec<u8>,
    older_library: Vec<u8>,
) {
    let ca = data_dir.join("tls/ca.pem");
    let server = format!("https://{listen}");
    for _ in 0..600 {
        if ca.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut o = pumpward_pump::sim::SimOptions::new(&server, &gateway.to_string(), &token, ca, 60);
    o.duration = std::time::Duration::from_secs(7 * 24 * 3600);
    // Fast enough that an infusion which defers a library install ends
    // within minutes (30 min to 6.5 h simulated).
    o.speed = 120.0;
    o.state_dir = Some(data_dir.join("sim"));
    // Every attack and fault scenario, played by the storyline once the
    // fleet is up: each raises its alert (see `docs/demo.md`).
    o.requests = Some(requests);
    o.side_load_library = Some(side_load_library);
    o.rollback_library = Some(older_library);
    tracing::info!(
        "starting a simulated fleet of 60 pumps (EST enrollment, then the device channel)"
    );
    if let Err(e) = pumpward_pump::sim::run_sim(o).await {
        tracing::error!(error = %e, "the simulated fleet stopped");
    }
}

/// The demo always starts fresh: it uses `./pumpward-demo` (or --data-dir)
/// and recreates it, but only if it is empty or was made by an earlier demo.
pub(crate) fn demo_dir(cli: &Cli) -> Result<PathBuf> {
    let dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("pumpward-demo"));
    let marker = dir.join(".pumpward-demo");
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)?.next().is_none();
        if !empty && !marker.exists() {
            bail!(
                "{} exists and was not made by `pumpward demo`; choose another --data-dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("removing the old demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        &marker,
        "This directory was made by `pumpward demo` and is recreated at every demo start.\n",
    )?;
    Ok(dir)
}

async fn load_hospital(store: &Store, seed: u64) -> Result<()> {
    let h = pumpward_core::demo::sample_hospital(seed);
    let actor = Actor {
        id: "system:demo".into(),
        source: None,
    };
    for m in &h.models {
        store.put_model(m, &actor).await?;
    }
    let rows: Vec<invcsv::ImportRow> = h
        .assets
        .iter()
        .enumerate()
        .map(|(i, a)| invcsv::ImportRow {
            line: i as u64 + 1,
            spec: a.spec.clone(),
            lifecycle_state: Some(a.lifecycle_state),
        })
        .collect();
    let sum = store.import_assets(&rows, false, &actor).await?;
    if !sum.refused.is_empty() {
        bail!("the sample hospital did not load: {:?}", sum.refused);
    }
    let now = time::OffsetDateTime::now_utc();
    for a in &h.assets {
        if let Some(secs) = a.last_seen_secs_ago {
            store
                .touch_asset(
                    a.spec.asset_id.as_str(),
                    now - time::Duration::seconds(secs.into()),
                )
                .await?;
        }
    }
    println!(
        "{}: loaded {} assets ({} pumps) of {} models. Sample data, not for clinical use.",
        h.name,
        h.assets.len(),
        h.pumps().count(),
        h.models.len()
    );
    Ok(())
}
