//! Every built-in rule fires on the events it is about, and stays quiet
//! otherwise; restarts neither lose nor duplicate alerts.

use std::collections::HashMap;

use pumpward_core::inventory::{CredentialState, LifecycleState};
use pumpward_detect::engine::MaintenanceWindow;
use pumpward_detect::event::{
    Body, CertificateAnomalyKind, DoseOutcome, Event, Source, ViolationKind, SCHEMA_VERSION,
};
use pumpward_detect::{
    Alert, AssetFacts, Context, DetectionConfig, Engine, EngineState, ExpectedLibrary, Processed,
    RuleId,
};
use pumpward_flow::{Flow, FlowSource, ObservedMac, Transport};
use pumpward_proto::message::{LibraryRejectReason, LoginMethod};
use time::{Duration, OffsetDateTime};

const LIB_DIGEST: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER_DIGEST: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap()
}

fn ctx() -> Context {
    let mut c = Context::default();
    for (id, area, cred) in [
        ("pump-1", "ICU", CredentialState::Changed),
        ("pump-2", "ICU", CredentialState::Changed),
        ("pump-3", "NICU", CredentialState::DefaultUnchanged),
    ] {
        c.assets.insert(
            id.into(),
            AssetFacts {
                model: "Plum 360".into(),
                care_area: Some(area.into()),
                lifecycle: LifecycleState::InService,
                credentials: Some(cred),
                maintenance_windows: vec![MaintenanceWindow {
                    start: t0() + Duration::hours(10),
                    end: t0() + Duration::hours(11),
                }],
                last_seen: None,
            },
        );
    }
    for pump in ["pump-1", "pump-2"] {
        c.libraries.insert(
            pump.into(),
            ExpectedLibrary {
                version: "2026.11".into(),
                digest: LIB_DIGEST.into(),
            },
        );
    }
    let mut versions = HashMap::new();
    versions.insert("15.1".to_string(), vec![LIB_DIGEST.to_string()]);
    c.firmware.insert("Plum 360".into(), versions);
    c.unseen_after_s.insert("ICU".into(), 600);
    c.affected.insert(
        "CVE-2026-0001".into(),
        vec!["pump-1".into(), "pump-9".into()],
    );
    c
}

struct Run {
    engine: Engine,
    ctx: Context,
    seq: u64,
    alerts: Vec<Alert>,
}

impl Run {
    fn new() -> Run {
        Run {
            engine: Engine::new(DetectionConfig::default()),
            ctx: ctx(),
            seq: 0,
            alerts: Vec::new(),
        }
    }

    fn push(&mut self, secs: i64, source: Source, asset: Option<&str>, body: Body) -> Vec<Alert> {
        self.seq += 1;
        let at = t0() + Duration::seconds(secs);
        let ev = Event {
            schema_version: SCHEMA_VERSION,
            id: format!("ev-{}", self.seq),
            occurred_at: at,
            received_at: at,
            source,
            asset_id: asset.map(|a| a.parse().unwrap()),
            care_area: asset
                .and_then(|a| self.ctx.assets.get(a))
                .and_then(|f| f.care_area.clone()),
            body,
        };
        ev.validate().unwrap();
        let mut out = Vec::new();
        let p = self.engine.process(&self.ctx, self.seq, &ev, &mut out);
        assert_eq!(p, Processed::Evaluated(out.len()));
        self.alerts.extend(out.clone());
        out
    }

    fn rules(out: &[Alert]) -> Vec<String> {
        out.iter().map(|a| a.key.rule.clone()).collect()
    }
}

fn dose(result: DoseOutcome) -> Body {
    Body::DoseCheck {
        result,
        drug: Some("Heparin".into()),
        limit_kind: None,
        dose: None,
        limit: None,
        library_version: None,
        override_reason: None,
    }
}

fn flow(resp: &str, port: u16) -> Flow {
    Flow {
        start_us: 0,
        duration_us: None,
        transport: Transport::Tcp,
        orig_addr: "10.20.0.5".parse().unwrap(),
        orig_port: 50000,
        resp_addr: resp.parse().unwrap(),
        resp_port: port,
        orig_mac: None,
        resp_mac: None,
        orig_bytes: 10,
        resp_bytes: 10,
        orig_packets: 1,
        resp_packets: 1,
        source: FlowSource::ZeekConnLog,
        sensor_uid: None,
        conn_state: None,
    }
}

#[test]
fn library_mismatch_only_when_it_differs_from_the_pump_s_expected_library() {
    let mut r = Run::new();
    let ok = Body::LibraryInstalled {
        version: "2026.11".into(),
        digest: LIB_DIGEST.into(),
    };
    assert!(r.push(0, Source::Pump, Some("pump-1"), ok).is_empty());
    let bad = Body::LibraryInstalled {
        version: "2026.11".into(),
        digest: OTHER_DIGEST.into(),
    };
    let out = r.push(1, Source::Pump, Some("pump-1"), bad);
    assert_eq!(Run::rules(&out), ["library_mismatch"]);
    assert_eq!(out[0].evidence["observed"]["digest"], OTHER_DIGEST);
    assert_eq!(out[0].csf.as_deref(), Some("DE.CM-09"));
    // pump-3 was never sent a library: nothing to compare with.
    let other = Body::LibraryInstalled {
        version: "1".into(),
        digest: OTHER_DIGEST.into(),
    };
    assert!(r.push(2, Source::Pump, Some("pump-3"), other).is_empty());
}

#[test]
fn library_rejected() {
    let mut r = Run::new();
    let body = Body::LibraryRejected {
        version: Some("2026.12".into()),
        digest: None,
        reason: LibraryRejectReason::SignatureInvalid,
    };
    let out = r.push(0, Source::Pump, Some("pump-1"), body);
    assert_eq!(Run::rules(&out), ["library_rejected"]);
    assert_eq!(out[0].evidence["reason"], "signature_invalid");
}

#[test]
fn hard_limit_bursts_per_pump_and_per_care_area() {
    let mut r = Run::new();
    // Default: 5 per pump in 10 min; 15 per care area in 30 min.
    for i in 0..4 {
        assert!(r
            .push(
                i,
                Source::Pump,
                Some("pump-1"),
                dose(DoseOutcome::HardBlock)
            )
            .is_empty());
    }
    let out = r.push(
        4,
        Source::Pump,
        Some("pump-1"),
        dose(DoseOutcome::HardBlock),
    );
    assert_eq!(Run::rules(&out), ["hard_limit_burst_pump"]);
    assert_eq!(out[0].evidence["count"], 5);
    // Within-limits checks never count.
    for i in 5..50 {
        assert!(r
            .push(
                i,
                Source::Pump,
                Some("pump-2"),
                dose(DoseOutcome::WithinLimits)
            )
            .is_empty());
    }
    // Spread over two pumps, 4 each per 10 min (never a pump burst) but
    // enough for the care area: 15th block in ICU within 30 min.
    let mut area = Vec::new();
    for i in 0..12 {
        let pump = if i % 2 == 0 { "pump-1" } else { "pump-2" };
        area.extend(r.push(
            100 + i * 150,
            Source::Pump,
            Some(pump),
            dose(DoseOutcome::HardBlock),
        ));
    }
    assert_eq!(
        Run::rules(&area),
        ["hard_limit_burst_care_area"],
        "{area:#?}"
    );
    // Slow blocks never burst.
    let mut r = Run::new();
    for i in 0..20 {
        assert!(r
            .push(
                i * 700,
                Source::Pump,
                Some("pump-3"),
                dose(DoseOutcome::HardBlock)
            )
            .is_empty());
    }
}

#[test]
fn soft_override_burst() {
    let mut r = Run::new();
    let mut all = Vec::new();
    for i in 0..10 {
        all.extend(r.push(
            i * 60,
            Source::Pump,
            Some("pump-3"),
            dose(DoseOutcome::SoftOverride),
        ));
    }
    assert_eq!(Run::rules(&all), ["soft_override_burst_pump"]);
}

#[test]
fn firmware_digest_mismatch() {
    let mut r = Run::new();
    let fw = |v: &str, d: &str| Body::FirmwareChanged {
        model: "Plum 360".into(),
        version: v.into(),
        digest: d.into(),
    };
    assert!(r
        .push(0, Source::Pump, Some("pump-1"), fw("15.1", LIB_DIGEST))
        .is_empty());
    assert_eq!(
        Run::rules(&r.push(1, Source::Pump, Some("pump-1"), fw("15.1", OTHER_DIGEST))),
        ["firmware_digest_mismatch"]
    );
    // A version the vendor never published is not the expected image either.
    assert_eq!(
        Run::rules(&r.push(2, Source::Pump, Some("pump-2"), fw("99", LIB_DIGEST))),
        ["firmware_digest_mismatch"]
    );
    // Unknown model: nothing to judge against.
    let other = Body::FirmwareChanged {
        model: "Sigma".into(),
        version: "1".into(),
        digest: OTHER_DIGEST.into(),
    };
    assert!(r.push(3, Source::Pump, Some("pump-2"), other).is_empty());
}

#[test]
fn auth_failure_burst_per_address() {
    let mut r = Run::new();
    let fail = |ip: &str| Body::AuthFailure {
        peer: ip.parse().unwrap(),
        certificate: None,
        reason: "unknown_ca".into(),
    };
    for i in 0..4 {
        assert!(r
            .push(i, Source::Gateway, None, fail("10.9.9.9"))
            .is_empty());
        assert!(r
            .push(i, Source::Gateway, None, fail("10.9.9.8"))
            .is_empty());
    }
    let out = r.push(10, Source::Gateway, None, fail("10.9.9.9"));
    assert_eq!(Run::rules(&out), ["auth_failure_burst"]);
    assert_eq!(out[0].key.subject, "10.9.9.9");
}

#[test]
fn certificate_from_two_addresses() {
    let mut r = Run::new();
    let conn = |ip: &str| Body::GatewayConnection {
        peer: ip.parse().unwrap(),
        certificate: LIB_DIGEST.into(),
    };
    assert!(r
        .push(0, Source::Gateway, Some("pump-1"), conn("10.20.0.5"))
        .is_empty());
    assert!(r
        .push(60, Source::Gateway, Some("pump-1"), conn("10.20.0.5"))
        .is_empty());
    let out = r.push(61, Source::Gateway, Some("pump-1"), conn("10.20.0.99"));
    assert_eq!(Run::rules(&out), ["certificate_concurrent_use"]);
    // A move after the window (e.g. DHCP renewal overnight) is normal.
    assert!(r
        .push(10_000, Source::Gateway, Some("pump-1"), conn("10.20.0.7"))
        .is_empty());
    let anomaly = Body::CertificateAnomaly {
        anomaly: CertificateAnomalyKind::ConcurrentAddresses,
        certificate: OTHER_DIGEST.into(),
        addresses: vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
    };
    assert_eq!(
        Run::rules(&r.push(10_001, Source::Gateway, None, anomaly)),
        ["certificate_concurrent_use"]
    );
}

#[test]
fn maintenance_login_outside_window() {
    let mut r = Run::new();
    let login = Body::MaintenanceLogin {
        method: LoginMethod::Local,
        success: true,
        account: Some("svc".into()),
    };
    // Inside the window (t0 + 10h .. 11h): fine.
    assert!(r
        .push(10 * 3600 + 5, Source::Pump, Some("pump-1"), login.clone())
        .is_empty());
    assert_eq!(
        Run::rules(&r.push(12 * 3600, Source::Pump, Some("pump-1"), login)),
        ["maintenance_outside_window"]
    );
}

/// A registered MAC at two places at once (the server's presence tracker)
/// raises `device_in_two_places`: once per asset and hour, about the MAC
/// when no asset holds the address, and not when the rule is off.
#[test]
fn a_device_seen_in_two_places_raises_an_alert() {
    let two = |from: &str, mac: u8| Body::PolicyViolation {
        rule: "device_in_two_places".into(),
        violation: ViolationKind::DeviceInTwoPlaces,
        flow: Flow {
            orig_addr: from.parse().unwrap(),
            orig_mac: Some(ObservedMac([2, 0x1b, 0, 0, 0, mac])),
            ..flow("10.21.0.10", 443)
        },
        earlier_flow: Some(Box::new(Flow {
            orig_addr: "10.20.0.8".parse().unwrap(),
            orig_mac: Some(ObservedMac([2, 0x1b, 0, 0, 0, mac])),
            ..flow("10.21.0.10", 443)
        })),
    };
    let mut r = Run::new();
    let out = r.push(0, Source::Network, Some("pump-1"), two("10.20.0.9", 1));
    assert_eq!(Run::rules(&out), ["device_in_two_places"]);
    assert_eq!(out[0].key.subject, "pump-1");
    assert_eq!(out[0].severity, pumpward_detect::Severity::High);
    assert_eq!(out[0].csf.as_deref(), Some("DE.CM-01"));
    assert_eq!(out[0].evidence["flow"]["orig_addr"], "10.20.0.9");
    // Both sightings are the evidence.
    assert_eq!(out[0].evidence["earlier_flow"]["orig_addr"], "10.20.0.8");
    assert_eq!(out[0].evidence["policy_rule"], "device_in_two_places");
    // The copy keeps moving: the same alert, counted as a repeat.
    assert!(r
        .push(60, Source::Network, Some("pump-1"), two("10.20.0.10", 1))
        .is_empty());
    // An hour later it is news again.
    let out = r.push(3600, Source::Network, Some("pump-1"), two("10.20.0.9", 1));
    assert_eq!(Run::rules(&out), ["device_in_two_places"]);
    // Without an asset on the flow, the MAC is the subject.
    let out = r.push(3601, Source::Network, None, two("10.20.0.11", 2));
    assert_eq!(out[0].key.subject, "02:1b:00:00:00:02");

    // Configurable like the others: off means silent.
    let mut off = Run::new();
    off.engine = Engine::new(
        DetectionConfig::from_toml("[rules.device_in_two_places]\nenabled = false\n").unwrap(),
    );
    assert!(off
        .push(0, Source::Network, Some("pump-1"), two("10.20.0.9", 1))
        .is_empty());
}

#[test]
fn network_violations_and_unknown_devices() {
    let mut r = Run::new();
    let v = |k| Body::PolicyViolation {
        rule: "pumps-to-gateway-only".into(),
        violation: k,
        flow: flow("203.0.113.7", 443),
        earlier_flow: None,
    };
    assert_eq!(
        Run::rules(&r.push(
            0,
            Source::Network,
            Some("pump-1"),
            v(ViolationKind::Internet)
        )),
        ["pump_to_internet"]
    );
    assert_eq!(
        Run::rules(&r.push(1, Source::Network, None, v(ViolationKind::EastWest))),
        ["east_west_traffic"]
    );
    assert!(r
        .push(2, Source::Network, None, v(ViolationKind::Other))
        .is_empty());
    let dev = |zone_is_device| Body::UnknownDevice {
        mac: ObservedMac([2, 0, 0, 0, 0, 1]),
        ip: None,
        zone: "pumps-icu".into(),
        device_zone: zone_is_device,
    };
    assert!(r.push(3, Source::Network, None, dev(false)).is_empty());
    let out = r.push(4, Source::Network, None, dev(true));
    assert_eq!(Run::rules(&out), ["unknown_device_in_zone"]);
    assert_eq!(out[0].key.subject, "02:00:00:00:00:01");
}

#[test]
fn kev_findings_on_in_service_pumps() {
    let mut r = Run::new();
    let aff = |kev| Body::VulnerabilityAffected {
        vulnerability: "CVE-2026-0002".into(),
        kev,
    };
    assert!(r
        .push(0, Source::Vulnerability, Some("pump-2"), aff(false))
        .is_empty());
    assert_eq!(
        Run::rules(&r.push(1, Source::Vulnerability, Some("pump-2"), aff(true))),
        ["kev_finding_in_service"]
    );
    // A KEV addition alerts for the in-service pumps its findings name
    // (pump-9 is not in service: not in the inventory at all here).
    let out = r.push(
        2,
        Source::Vulnerability,
        None,
        Body::KevAdded {
            vulnerability: "CVE-2026-0001".into(),
        },
    );
    assert_eq!(Run::rules(&out), ["kev_finding_in_service"]);
    assert_eq!(out[0].asset_id.as_ref().map(|a| a.as_str()), Some("pump-1"));
}

#[test]
fn tick_finds_unseen_pumps_once_and_default_credentials() {
    let mut r = Run::new();
    r.push(
        0,
        Source::Pump,
        Some("pump-1"),
        dose(DoseOutcome::WithinLimits),
    );
    r.push(
        0,
        Source::Pump,
        Some("pump-3"),
        dose(DoseOutcome::WithinLimits),
    );
    let mut out = Vec::new();
    r.engine
        .tick(&r.ctx, t0() + Duration::seconds(300), &mut out);
    assert_eq!(
        Run::rules(&out),
        ["default_credentials"],
        "pump-3 has default credentials"
    );
    out.clear();
    // ICU allows 10 minutes; NICU uses the rule's 4 hours.
    r.engine
        .tick(&r.ctx, t0() + Duration::seconds(700), &mut out);
    assert_eq!(Run::rules(&out), ["device_unseen"]);
    assert_eq!(out[0].key.subject, "pump-1");
    out.clear();
    r.engine
        .tick(&r.ctx, t0() + Duration::seconds(900), &mut out);
    assert!(out.is_empty(), "one alert per absence: {out:?}");
    // Seen again, then absent again: a new absence, a new alert.
    r.push(
        1000,
        Source::Pump,
        Some("pump-1"),
        dose(DoseOutcome::WithinLimits),
    );
    r.engine
        .tick(&r.ctx, t0() + Duration::seconds(1700), &mut out);
    assert_eq!(Run::rules(&out), ["device_unseen"]);
}

/// The inventory's last contact (heartbeats) counts as seen: a pump with no
/// events is unseen only once its heartbeats stop too.
#[test]
fn heartbeats_in_the_inventory_count_as_seen() {
    let mut r = Run::new();
    let heard = |r: &mut Run, s: i64| {
        r.ctx.assets.get_mut("pump-2").unwrap().last_seen = Some(t0() + Duration::seconds(s));
    };
    heard(&mut r, 100);
    let mut out = Vec::new();
    r.engine
        .tick(&r.ctx, t0() + Duration::seconds(600), &mut out);
    assert!(
        !out.iter().any(|a| a.key.rule == "device_unseen"),
        "{out:?}"
    );
    r.engine
        .tick(&r.ctx, t0() + Duration::seconds(800), &mut out);
    let unseen: Vec<&Alert> = out
        .iter()
        .filter(|a| a.key.rule == "device_unseen")
        .collect();
    assert_eq!(unseen.len(), 1);
    assert_eq!(unseen[0].key.subject, "pump-2");
    out.clear();
    // A heartbeat: back, and quiet about it; the next absence is new.
    heard(&mut r, 1000);
    r.engine
        .tick(&r.ctx, t0() + Duration::seconds(1100), &mut out);
    assert!(
        !out.iter().any(|a| a.key.rule == "device_unseen"),
        "{out:?}"
    );
    r.engine
        .tick(&r.ctx, t0() + Duration::seconds(1700), &mut out);
    assert_eq!(
        out.iter().filter(|a| a.key.rule == "device_unseen").count(),
        1,
        "{out:?}"
    );
}

#[test]
fn disabled_rules_stay_quiet() {
    let cfg = DetectionConfig::from_toml("[rules.library_rejected]\nenabled = false\n").unwrap();
    let mut r = Run::new();
    r.engine = Engine::new(cfg);
    let body = Body::LibraryRejected {
        version: None,
        digest: None,
        reason: LibraryRejectReason::Other,
    };
    assert!(r.push(0, Source::Pump, Some("pump-1"), body).is_empty());
}

#[test]
fn repeats_in_the_same_window_are_one_alert() {
    let mut r = Run::new();
    let body = Body::LibraryRejected {
        version: None,
        digest: None,
        reason: LibraryRejectReason::Other,
    };
    assert_eq!(
        r.push(0, Source::Pump, Some("pump-1"), body.clone()).len(),
        1
    );
    assert!(r
        .push(10, Source::Pump, Some("pump-1"), body.clone())
        .is_empty());
    assert_eq!(r.engine.snapshot().repeats, 1);
    // Another pump is another alert.
    assert_eq!(r.push(11, Source::Pump, Some("pump-2"), body).len(), 1);
}

#[test]
fn custom_rule_with_windowed_count() {
    let cfg = DetectionConfig::from_toml(
        r#"
[[custom]]
id = "gateway_auth_storm"
title = "Authentication storm"
severity = "critical"
when = 'kind == "auth_failure" and reason in ["revoked", "expired"] with count(by peer within 1m) >= 3'
"#,
    )
    .unwrap();
    let mut r = Run::new();
    r.engine = Engine::new(cfg);
    let fail = |reason: &str| Body::AuthFailure {
        peer: "10.1.1.1".parse().unwrap(),
        certificate: None,
        reason: reason.into(),
    };
    let mut out = Vec::new();
    out.extend(r.push(0, Source::Gateway, None, fail("revoked")));
    out.extend(r.push(1, Source::Gateway, None, fail("unknown_ca")));
    out.extend(r.push(2, Source::Gateway, None, fail("expired")));
    assert!(out.is_empty());
    out.extend(r.push(3, Source::Gateway, None, fail("revoked")));
    let custom: Vec<_> = out
        .iter()
        .filter(|a| a.key.rule.starts_with("custom."))
        .collect();
    assert_eq!(custom.len(), 1, "{out:#?}");
    assert_eq!(custom[0].key.rule, "custom.gateway_auth_storm");
    assert_eq!(custom[0].key.subject, "10.1.1.1");
    assert_eq!(custom[0].severity, pumpward_detect::Severity::Critical);
}

#[test]
fn custom_rule_errors_name_the_rule_and_position() {
    let err = DetectionConfig::from_toml(
        "[[custom]]\nid = \"x\"\ntitle = \"t\"\nwhen = 'kind == \"alarm\" and colour == \"red\"'\n",
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("custom rule \"x\""), "{msg}");
    assert!(msg.contains("line 1, column 21"), "{msg}");
    assert!(msg.contains("unknown field \"colour\""), "{msg}");
}

/// A realistic stream of everything the rules look at.
fn mixed_stream(n: usize) -> Vec<(i64, Source, Option<&'static str>, Body)> {
    let pumps = ["pump-1", "pump-2", "pump-3"];
    (0..n)
        .map(|i| {
            let p = pumps[i % 3];
            let secs = i as i64 * 7;
            match i % 9 {
                0 => (secs, Source::Pump, Some(p), dose(DoseOutcome::HardBlock)),
                1 => (secs, Source::Pump, Some(p), dose(DoseOutcome::SoftOverride)),
                2 => (
                    secs,
                    Source::Gateway,
                    None,
                    Body::AuthFailure {
                        peer: "10.9.9.9".parse().unwrap(),
                        certificate: None,
                        reason: "x".into(),
                    },
                ),
                3 => (
                    secs,
                    Source::Pump,
                    Some(p),
                    Body::LibraryRejected {
                        version: None,
                        digest: None,
                        reason: LibraryRejectReason::Other,
                    },
                ),
                4 => (
                    secs,
                    Source::Gateway,
                    Some(p),
                    Body::GatewayConnection {
                        peer: if i % 2 == 0 { "10.0.0.1" } else { "10.0.0.2" }
                            .parse()
                            .unwrap(),
                        certificate: LIB_DIGEST.into(),
                    },
                ),
                5 => (
                    secs,
                    Source::Network,
                    Some(p),
                    Body::FlowObserved {
                        flow: flow("10.50.0.1", (i % 5) as u16 + 1),
                    },
                ),
                _ => (secs, Source::Pump, Some(p), dose(DoseOutcome::WithinLimits)),
            }
        })
        .collect()
}

#[test]
fn restart_from_a_snapshot_neither_loses_nor_duplicates() {
    let stream = mixed_stream(3000);
    // Reference: one engine over everything.
    let mut whole = Run::new();
    for (s, src, a, b) in stream.clone() {
        whole.push(s, src, a, b);
    }
    let mut want: Vec<String> = whole.alerts.iter().map(|a| a.id.clone()).collect();
    assert!(
        want.len() > 50,
        "the stream must raise alerts: {}",
        want.len()
    );
    want.sort();
    let distinct = {
        let mut w = want.clone();
        w.dedup();
        w.len()
    };
    assert_eq!(distinct, want.len(), "no duplicate ids in one run");

    // Restarted: stop after 1234 events, snapshot through JSON, restore,
    // then replay everything from the start (as a store replay from an old
    // watermark would): already-seen events are skipped.
    let mut first = Run::new();
    for (s, src, a, b) in stream.iter().take(1234).cloned() {
        first.push(s, src, a, b);
    }
    let json = serde_json::to_string(first.engine.snapshot()).unwrap();
    let state: EngineState = serde_json::from_str(&json).unwrap();
    let mut second = Run::new();
    second.engine = Engine::restore(DetectionConfig::default(), state);
    let mut skipped = 0;
    for (i, (s, src, a, b)) in stream.iter().cloned().enumerate() {
        if i < 1234 {
            // Replaying below the watermark changes nothing.
            let ev = Event {
                schema_version: SCHEMA_VERSION,
                id: format!("ev-{}", i + 1),
                occurred_at: t0() + Duration::seconds(s),
                received_at: t0() + Duration::seconds(s),
                source: src,
                asset_id: a.map(|x| x.parse().unwrap()),
                care_area: None,
                body: b,
            };
            let mut out = Vec::new();
            assert_eq!(
                second
                    .engine
                    .process(&second.ctx, i as u64 + 1, &ev, &mut out),
                Processed::AlreadySeen
            );
            assert!(out.is_empty());
            skipped += 1;
            second.seq += 1;
        } else {
            second.push(s, src, a, b);
        }
    }
    assert_eq!(skipped, 1234);
    let mut got: Vec<String> = first
        .alerts
        .iter()
        .chain(&second.alerts)
        .map(|a| a.id.clone())
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(
        serde_json::to_value(
            first
                .alerts
                .iter()
                .chain(&second.alerts)
                .find(|a| a.key.rule == "library_rejected")
        )
        .unwrap(),
        serde_json::to_value(
            whole
                .alerts
                .iter()
                .find(|a| a.key.rule == "library_rejected")
        )
        .unwrap(),
        "alerts are identical, evidence included"
    );
}

#[test]
fn snapshot_restore_drops_windows_of_removed_custom_rules() {
    let cfg = DetectionConfig::from_toml(
        "[[custom]]\nid = \"alarms\"\ntitle = \"t\"\nwhen = 'kind == \"alarm\" with count(within 1h) >= 100'\n",
    )
    .unwrap();
    let mut r = Run::new();
    r.engine = Engine::new(cfg);
    r.push(
        0,
        Source::Pump,
        Some("pump-1"),
        Body::Alarm {
            alarm: pumpward_proto::message::AlarmKind::Occlusion,
        },
    );
    let with = serde_json::to_value(r.engine.snapshot()).unwrap();
    assert!(with["custom"]["alarms"].is_object());
    let e = Engine::restore(DetectionConfig::default(), r.engine.snapshot().clone());
    let without = serde_json::to_value(e.snapshot()).unwrap();
    assert!(without["custom"].as_object().unwrap().is_empty());
    assert_eq!(without["watermark"], 1);
    let _ = RuleId::ALL;
}

#[test]
fn a_raised_threshold_applies_to_existing_windows() {
    let mut r = Run::new();
    r.engine = Engine::new(
        DetectionConfig::from_toml("[rules.hard_limit_burst_pump]\nthreshold = 2\n").unwrap(),
    );
    assert!(r
        .push(
            0,
            Source::Pump,
            Some("pump-3"),
            dose(DoseOutcome::HardBlock)
        )
        .is_empty());
    r.engine.set_config(
        DetectionConfig::from_toml("[rules.hard_limit_burst_pump]\nthreshold = 4\n").unwrap(),
    );
    assert!(r
        .push(
            1,
            Source::Pump,
            Some("pump-3"),
            dose(DoseOutcome::HardBlock)
        )
        .is_empty());
    assert!(r
        .push(
            2,
            Source::Pump,
            Some("pump-3"),
            dose(DoseOutcome::HardBlock)
        )
        .is_empty());
    let out = r.push(
        3,
        Source::Pump,
        Some("pump-3"),
        dose(DoseOutcome::HardBlock),
    );
    assert_eq!(Run::rules(&out), ["hard_limit_burst_pump"]);
    assert_eq!(out[0].evidence["count"], 4);
}

#[test]
fn baselines_raise_anomalies_with_their_evidence_and_reset_per_asset() {
    let mut r = Run::new();
    let alarm = || Body::Alarm {
        alarm: pumpward_proto::message::AlarmKind::Occlusion,
    };
    // Two alarms an hour for 30 hours: learning (24 h) is over.
    for i in 0..60 {
        assert!(r
            .push(i * 1800, Source::Pump, Some("pump-1"), alarm())
            .is_empty());
    }
    let mut out = Vec::new();
    for i in 0..40 {
        out.extend(r.push(30 * 3600 + i, Source::Pump, Some("pump-1"), alarm()));
    }
    let subjects: Vec<(String, String)> = out
        .iter()
        .map(|a| (a.key.rule.clone(), a.key.subject.clone()))
        .collect();
    assert_eq!(
        subjects,
        [
            ("baseline_rate".to_string(), "pump-1".to_string()),
            ("baseline_rate".to_string(), "model:Plum 360".to_string())
        ]
    );
    let ev = &out[0].evidence["baseline"];
    assert_eq!(ev["anomaly"], "rate");
    assert_eq!(ev["observed"], 23, "{ev}");
    assert!((ev["mean"].as_f64().unwrap() - 2.0).abs() < 1e-9, "{ev}");
    // Reset: the asset learns again and judges nothing, while its model's
    // baseline still knows the fleet.
    assert!(r.engine.reset_baseline(&"pump-1".parse().unwrap()));
    let out = r.push(40 * 3600, Source::Pump, Some("pump-1"), alarm());
    assert!(out.iter().all(|a| a.key.subject != "pump-1"), "{out:#?}");
}
