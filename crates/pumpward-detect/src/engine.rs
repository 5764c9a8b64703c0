//! The rules engine: events in order, context from the store, alerts out.
//!
//! ```text
//! store ──(seq, Event)──► Engine::process ──► Vec<Alert> ──► store upsert by alert id
//! clock ──now──────────► Engine::tick     ──►  (unseen devices, default credentials)
//! ```
//!
//! **Restart without losing or duplicating alerts.** The engine's state
//! (windows, last-seen times, baselines, recently raised alert keys) is a
//! plain serde value, [`EngineState`], that carries a *watermark*: the store
//! sequence number of the last event processed. The lead persists a
//! snapshot (e.g. every minute, in the same transaction as the alerts it
//! produced) and, after a restart, restores it and replays the stored events
//! with a higher sequence number. Events at or below the watermark are
//! skipped ([`Processed::AlreadySeen`]), so nothing is counted twice; events
//! after it are processed, so nothing is lost. Should a snapshot be older
//! than alerts already written, the replay re-raises alerts with the *same*
//! deterministic ids ([`crate::alert::DedupKey::alert_id`]), which the
//! store's upsert absorbs. A snapshot was chosen over rebuilding by replay
//! because baselines learn over days: replaying a week of events at every
//! start would be slow, while a snapshot is one small JSON document.
//!
//! Hot path: an event that triggers nothing does not allocate once its
//! subjects (asset, address, care area) have been seen; windows are
//! bounded ring buffers ([`crate::window::Recent`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use pumpward_core::inventory::{AssetId, CredentialState, LifecycleState};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use crate::alert::{Alert, DedupKey};
use crate::baseline::{Anomaly, Baselines, Scope};
use crate::config::{DetectionConfig, RuleId, Severity};
use crate::event::{
    from_us, to_us, Body, CertificateAnomalyKind, DoseOutcome, Event, Source, ViolationKind,
};
use crate::expr::CustomRule;
use crate::window::Recent;

/// Dedup window of custom rules without a count.
pub const CUSTOM_DEDUP_WINDOW_S: u64 = 3600;

/// What the store knows about one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetFacts {
    /// Its model (firmware expectations and per-model baselines).
    pub model: String,
    /// Its care area.
    #[serde(default)]
    pub care_area: Option<String>,
    /// Where it is in its life.
    pub lifecycle: LifecycleState,
    /// The state of its service credentials, if recorded.
    #[serde(default)]
    pub credentials: Option<CredentialState>,
    /// Approved maintenance windows (vendor grants, biomed work orders).
    #[serde(default)]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// When the inventory last heard from it (heartbeats count, not only
    /// events): a pump that is connected but quiet is not unseen.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_seen: Option<OffsetDateTime>,
}

/// A time-boxed, approved maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

/// The drug library a pump should run: the newest one Pumpward announced
/// to it (a staged rollout reaches pumps at different times, so this is per
/// pump, not per care area).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedLibrary {
    pub version: String,
    pub digest: String,
}

/// What the rules need from the store, filled by the caller. Every map is
/// keyed by the store's plain string (asset id, care area, model).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Assets by id.
    pub assets: HashMap<String, AssetFacts>,
    /// The library each pump should run, by asset id.
    pub libraries: HashMap<String, ExpectedLibrary>,
    /// Vendor firmware digests: model → version → accepted digests.
    pub firmware: HashMap<String, HashMap<String, Vec<String>>>,
    /// How long a pump of each care area may stay unseen, in seconds
    /// (others use the `device_unseen` rule's window).
    pub unseen_after_s: HashMap<String, u64>,
    /// Open `vulnerability.affected` findings: vulnerability → asset ids
    /// (so that a KEV addition finds the pumps it concerns).
    pub affected: HashMap<String, Vec<String>>,
}

impl Context {
    fn in_service(&self, asset: &str) -> bool {
        self.assets
            .get(asset)
            .is_some_and(|a| a.lifecycle == LifecycleState::InService)
    }
}

/// The engine's whole mutable state: snapshot it, restore it (see the module
/// docs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// Sequence number of the last event processed.
    pub watermark: u64,
    /// Time of the newest event or tick seen, µs.
    pub now_us: i64,
    hard_pump: HashMap<String, Recent>,
    hard_area: HashMap<String, Recent>,
    soft_pump: HashMap<String, Recent>,
    soft_area: HashMap<String, Recent>,
    auth: HashMap<IpAddr, Recent>,
    certificates: HashMap<String, CertSeen>,
    last_seen: HashMap<String, i64>,
    unseen: HashSet<String>,
    custom: BTreeMap<String, HashMap<String, Recent>>,
    baselines: Baselines,
    /// Alert ids raised, with the end of their window (µs): a repeat
    /// within the window is counted, not re-raised.
    raised: HashMap<String, i64>,
    /// Alerts suppressed as repeats.
    pub repeats: u64,
    /// Where the host's inputs resume after a restart (e.g. store cursors),
    /// saved atomically with the rest; opaque to the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CertSeen {
    addr: IpAddr,
    at_us: i64,
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// Evaluated; this many alerts were pushed.
    Evaluated(usize),
    /// At or below the watermark: already in the state.
    AlreadySeen,
}

/// The rules engine.
#[derive(Debug, Clone)]
pub struct Engine {
    config: DetectionConfig,
    state: EngineState,
    anomalies: Vec<Anomaly>,
}

/// Who a rule is, for raising.
#[derive(Clone, Copy)]
enum RuleRef<'a> {
    Builtin(RuleId),
    Custom(&'a CustomRule),
}

impl Engine {
    /// A fresh engine.
    pub fn new(config: DetectionConfig) -> Engine {
        Engine::restore(config, EngineState::default())
    }

    /// An engine resuming from a snapshot. Windows of custom rules no
    /// longer configured are dropped.
    pub fn restore(config: DetectionConfig, mut state: EngineState) -> Engine {
        state
            .custom
            .retain(|id, _| config.custom.iter().any(|c| &c.id == id));
        Engine {
            config,
            state,
            anomalies: Vec::new(),
        }
    }

    /// The state to persist.
    pub fn snapshot(&self) -> &EngineState {
        &self.state
    }

    /// The configuration in force.
    pub fn config(&self) -> &DetectionConfig {
        &self.config
    }

    /// Replaces the configuration (the UI's edit); windows are kept.
    pub fn set_config(&mut self, config: DetectionConfig) {
        let state = std::mem::take(&mut self.state);
        *self = Engine::restore(config, state);
    }

    /// Forgets the baseline of one asset (and not its model's).
    pub fn reset_baseline(&mut self, asset: &AssetId) -> bool {
        self.state.baselines.reset(Scope::Asset, asset.as_str())
    }

    /// The baselines (for the UI's evidence view).
    pub fn baselines(&self) -> &Baselines {
        &self.state.baselines
    }

    /// Evaluates one stored event (`seq` is the store's sequence number,
    /// strictly increasing). Alerts are appended to `out`.
    pub fn process(
        &mut self,
        ctx: &Context,
        seq: u64,
        ev: &Event,
        out: &mut Vec<Alert>,
    ) -> Processed {
        if seq <= self.state.watermark {
            return Processed::AlreadySeen;
        }
        self.state.watermark = seq;
        let before = out.len();
        let t = ev.received_us();
        if t > self.state.now_us {
            self.state.now_us = t;
        }
        let asset = ev.asset_id.as_ref().map(AssetId::as_str);
        let facts = asset.and_then(|a| ctx.assets.get(a));
        let area = ev
            .care_area
            .as_deref()
            .or_else(|| facts.and_then(|f| f.care_area.as_deref()));

        if let Some(a) = asset {
            if matches!(ev.source, Source::Pump | Source::Gateway | Source::Network) {
                match self.state.last_seen.get_mut(a) {
                    Some(v) => *v = (*v).max(t),
                    None => {
                        self.state.last_seen.insert(a.to_owned(), t);
                    }
                }
                if !self.state.unseen.is_empty() {
                    self.state.unseen.remove(a);
                }
            }
        }

        self.builtin(ctx, ev, t, asset, area, out);
        self.custom_rules(ev, t, out);
        self.baseline(ev, t, asset, facts.map(|f| f.model.as_str()), out);
        Processed::Evaluated(out.len() - before)
    }

    fn on(&self, r: RuleId) -> bool {
        self.config.rule(r).enabled
    }

    fn builtin(
        &mut self,
        ctx: &Context,
        ev: &Event,
        t: i64,
        asset: Option<&str>,
        area: Option<&str>,
        out: &mut Vec<Alert>,
    ) {
        match &ev.body {
            Body::LibraryInstalled { version, digest } => {
                let Some(a) = asset else {
                    return;
                };
                let Some(exp) = ctx.libraries.get(a) else {
                    return;
                };
                if self.on(RuleId::LibraryMismatch)
                    && (&exp.version != version || &exp.digest != digest)
                {
                    let evidence = json!({
                        "care_area": area,
                        "expected": {"version": exp.version, "digest": exp.digest},
                        "observed": {"version": version, "digest": digest},
                    });
                    self.raise(
                        RuleRef::Builtin(RuleId::LibraryMismatch),
                        a,
                        ev,
                        t,
                        evidence,
                        out,
                    );
                }
            }
            Body::LibraryRejected {
                version,
                digest,
                reason,
            } => {
                if let (true, Some(a)) = (self.on(RuleId::LibraryRejected), asset) {
                    let evidence = json!({"version": version, "digest": digest, "reason": reason});
                    self.raise(
                        RuleRef::Builtin(RuleId::LibraryRejected),
                        a,
                        ev,
                        t,
                        evidence,
                        out,
                    );
                }
            }
            Body::DoseCheck { result, .. } => {
                let (pump_rule, area_rule) = match result {
                    DoseOutcome::HardBlock => {
                        (RuleId::HardLimitBurstPump, RuleId::HardLimitBurstCareArea)
                    }
                    DoseOutcome::SoftOverride => (
                        RuleId::SoftOverrideBurstPump,
                        RuleId::SoftOverrideBurstCareArea,
                    ),
                    _ => return,
                };
                if let Some(a) = asset {
                    self.burst(pump_rule, a, ev, t, out);
                }
                if let Some(area) = area {
                    self.burst(area_rule, area, ev, t, out);
                }
            }
            Body::FirmwareChanged {
                model,
                version,
                digest,
            } => {
                let (true, Some(a)) = (self.on(RuleId::FirmwareDigestMismatch), asset) else {
                    return;
                };
                let Some(versions) = ctx.firmware.get(model) else {
                    return;
                };
                let expected = versions.get(version);
                if !expected.is_some_and(|d| d.iter().any(|x| x == digest)) {
                    let evidence = json!({
                        "model": model, "version": version, "observed_digest": digest,
                        "expected_digests": expected,
                    });
                    self.raise(
                        RuleRef::Builtin(RuleId::FirmwareDigestMismatch),
                        a,
                        ev,
                        t,
                        evidence,
                        out,
                    );
                }
            }
            Body::MaintenanceLogin {
                method,
                success,
                account,
            } => {
                let (true, Some(a)) = (self.on(RuleId::MaintenanceOutsideWindow), asset) else {
                    return;
                };
                let windows = ctx
                    .assets
                    .get(a)
                    .map(|f| f.maintenance_windows.as_slice())
                    .unwrap_or(&[]);
                let at = ev.occurred_at;
                if !windows.iter().any(|w| w.start <= at && at < w.end) {
                    let evidence = json!({
                        "method": method, "success": success, "account": account,
                        "occurred_at": fmt_time(at), "windows": windows,
                    });
                    self.raise(
                        RuleRef::Builtin(RuleId::MaintenanceOutsideWindow),
                        a,
                        ev,
                        t,
                        evidence,
                        out,
                    );
                }
            }
            Body::AuthFailure { peer, .. } => {
                let st = *self.config.rule(RuleId::AuthFailureBurst);
                if !st.enabled {
                    return;
                }
                let w = window_us(st.window_s);
                let r = self
                    .state
                    .auth
                    .entry(*peer)
                    .or_insert_with(|| Recent::new(st.threshold as usize));
                r.set_cap(st.threshold as usize);
                let n = r.push(t, w);
                if n >= st.threshold as usize {
                    let first = r.oldest().unwrap_or(t);
                    r.clear();
                    let evidence = burst_evidence(n, st.threshold, st.window_s, first);
                    let subject = peer.to_string();
                    self.raise(
                        RuleRef::Builtin(RuleId::AuthFailureBurst),
                        &subject,
                        ev,
                        t,
                        evidence,
                        out,
                    );
                }
            }
            Body::GatewayConnection { peer, certificate } => {
                let st = *self.config.rule(RuleId::CertificateConcurrentUse);
                if !st.enabled {
                    return;
                }
                let w = window_us(st.window_s);
                let previous = match self.state.certificates.get_mut(certificate.as_str()) {
                    Some(seen) => {
                        let prev = seen.clone();
                        seen.addr = *peer;
                        seen.at_us = t;
                        Some(prev)
                    }
                    None => {
                        self.state.certificates.insert(
                            certificate.clone(),
                            CertSeen {
                                addr: *peer,
                                at_us: t,
                            },
                        );
                        None
                    }
                };
                if let Some(prev) = previous {
                    if prev.addr != *peer && t - prev.at_us < w {
                        let evidence = json!({
                            "certificate": certificate,
                            "addresses": [prev.addr, peer],
                            "previous_at": fmt_time(from_us(prev.at_us)),
                        });
                        self.raise(
                            RuleRef::Builtin(RuleId::CertificateConcurrentUse),
                            certificate,
                            ev,
                            t,
                            evidence,
                            out,
                        );
                    }
                }
            }
            Body::CertificateAnomaly {
                anomaly: CertificateAnomalyKind::ConcurrentAddresses,
                certificate,
                addresses,
            } if self.on(RuleId::CertificateConcurrentUse) => {
                let evidence = json!({"certificate": certificate, "addresses": addresses});
                self.raise(
                    RuleRef::Builtin(RuleId::CertificateConcurrentUse),
                    certificate,
                    ev,
                    t,
                    evidence,
                    out,
                );
            }
            Body::PolicyViolation {
                rule,
                violation,
                flow,
                earlier_flow,
            } => {
                let id = match violation {
                    ViolationKind::Internet => RuleId::PumpToInternet,
                    ViolationKind::EastWest => RuleId::EastWestTraffic,
                    ViolationKind::DeviceInTwoPlaces => RuleId::DeviceInTwoPlaces,
                    ViolationKind::Other => return,
                };
                if !self.on(id) {
                    return;
                }
                // A cloned identity is one subject whatever address the
                // copy uses: the asset, else the MAC itself.
                let subject = match (asset, violation, flow.orig_mac) {
                    (Some(a), _, _) => a.to_owned(),
                    (None, ViolationKind::DeviceInTwoPlaces, Some(mac)) => mac.to_string(),
                    (None, _, _) => flow.orig_addr.to_string(),
                };
                let mut evidence = json!({"policy_rule": rule, "flow": flow});
                if let Some(e) = earlier_flow {
                    evidence["earlier_flow"] = json!(e);
                }
                self.raise(RuleRef::Builtin(id), &subject, ev, t, evidence, out);
            }
            Body::UnknownDevice {
                mac,
                ip,
                zone,
                device_zone: true,
            } if self.on(RuleId::UnknownDeviceInZone) => {
                let subject = mac.to_string();
                let evidence = json!({"mac": subject, "ip": ip, "zone": zone});
                self.raise(
                    RuleRef::Builtin(RuleId::UnknownDeviceInZone),
                    &subject,
                    ev,
                    t,
                    evidence,
                    out,
                );
            }
            Body::VulnerabilityAffected {
                vulnerability,
                kev: true,
            } => {
                if let (true, Some(a)) = (self.on(RuleId::KevFindingInService), asset) {
                    if ctx.in_service(a) {
                        let subject = format!("{a}:{vulnerability}");
                        let evidence =
                            json!({"asset": a, "vulnerability": vulnerability, "kev": true});
                        self.raise(
                            RuleRef::Builtin(RuleId::KevFindingInService),
                            &subject,
                            ev,
                            t,
                            evidence,
                            out,
                        );
                    }
                }
            }
            Body::KevAdded { vulnerability } => {
                if !self.on(RuleId::KevFindingInService) {
                    return;
                }
                let mut assets: Vec<&String> = ctx
                    .affected
                    .get(vulnerability)
                    .map(|v| v.iter().filter(|a| ctx.in_service(a)).collect())
                    .unwrap_or_default();
                assets.sort();
                assets.dedup();
                for a in assets {
                    let subject = format!("{a}:{vulnerability}");
                    let evidence = json!({"asset": a, "vulnerability": vulnerability, "kev": true});
                    let before = out.len();
                    self.raise(
                        RuleRef::Builtin(RuleId::KevFindingInService),
                        &subject,
                        ev,
                        t,
                        evidence,
                        out,
                    );
                    if let Some(alert) = out.get_mut(before) {
                        alert.asset_id = a.parse().ok();
                        alert.care_area =
                            ctx.assets.get(a.as_str()).and_then(|f| f.care_area.clone());
                    }
                }
            }
            _ => {}
        }
    }

    fn burst(&mut self, id: RuleId, subject: &str, ev: &Event, t: i64, out: &mut Vec<Alert>) {
        let st = *self.config.rule(id);
        if !st.enabled {
            return;
        }
        let map = match id {
            RuleId::HardLimitBurstPump => &mut self.state.hard_pump,
            RuleId::HardLimitBurstCareArea => &mut self.state.hard_area,
            RuleId::SoftOverrideBurstPump => &mut self.state.soft_pump,
            _ => &mut self.state.soft_area,
        };
        let r = match map.get_mut(subject) {
            Some(r) => r,
            None => map
                .entry(subject.to_owned())
                .or_insert_with(|| Recent::new(st.threshold as usize)),
        };
        r.set_cap(st.threshold as usize);
        let n = r.push(t, window_us(st.window_s));
        if n >= st.threshold as usize {
            let first = r.oldest().unwrap_or(t);
            r.clear();
            let evidence = burst_evidence(n, st.threshold, st.window_s, first);
            self.raise(RuleRef::Builtin(id), subject, ev, t, evidence, out);
        }
    }

    fn custom_rules(&mut self, ev: &Event, t: i64, out: &mut Vec<Alert>) {
        let rules = std::mem::take(&mut self.config.custom);
        for rule in rules.iter().filter(|r| r.enabled) {
            if !rule.rule.when.eval(ev) {
                continue;
            }
            let subject = rule.subject(ev);
            match &rule.rule.count {
                None => {
                    let evidence = json!({"rule": rule.source});
                    self.raise(RuleRef::Custom(rule), &subject, ev, t, evidence, out);
                }
                Some(c) => {
                    let windows = self.state.custom.entry(rule.id.clone()).or_default();
                    let r = windows
                        .entry(subject.clone())
                        .or_insert_with(|| Recent::new(c.at_least as usize));
                    r.set_cap(c.at_least as usize);
                    let n = r.push(t, window_us(c.within_s));
                    if n >= c.at_least as usize {
                        let first = r.oldest().unwrap_or(t);
                        r.clear();
                        let mut evidence = burst_evidence(n, c.at_least, c.within_s, first);
                        evidence["rule"] = json!(rule.source);
                        self.raise(RuleRef::Custom(rule), &subject, ev, t, evidence, out);
                    }
                }
            }
        }
        self.config.custom = rules;
    }

    fn baseline(
        &mut self,
        ev: &Event,
        t: i64,
        asset: Option<&str>,
        model: Option<&str>,
        out: &mut Vec<Alert>,
    ) {
        let Some(a) = asset else { return };
        // Baselines are of device behaviour: what people do to a record
        // (admin events) or what is known of it (findings) is not.
        if !matches!(ev.source, Source::Pump | Source::Gateway | Source::Network) {
            return;
        }
        let any = [
            RuleId::BaselineRate,
            RuleId::BaselineDestination,
            RuleId::BaselineActiveHours,
        ]
        .iter()
        .any(|r| self.on(*r));
        if !any {
            return;
        }
        let destination = match &ev.body {
            Body::FlowObserved { flow } | Body::PolicyViolation { flow, .. } => {
                Some((flow.resp_addr, flow.resp_port))
            }
            _ => None,
        };
        let s = self.config.baseline;
        let mut anomalies = std::mem::take(&mut self.anomalies);
        anomalies.clear();
        self.state
            .baselines
            .observe(&s, Scope::Asset, a, t, destination, &mut anomalies);
        let from_asset = anomalies.len();
        if let Some(m) = model {
            self.state
                .baselines
                .observe(&s, Scope::Model, m, t, destination, &mut anomalies);
        }
        for (i, an) in anomalies.iter().enumerate() {
            let id = match an {
                Anomaly::Rate { .. } => RuleId::BaselineRate,
                Anomaly::Destination { .. } => RuleId::BaselineDestination,
                Anomaly::ActiveHour { .. } => RuleId::BaselineActiveHours,
            };
            if !self.on(id) {
                continue;
            }
            let subject = if i < from_asset {
                a.to_owned()
            } else {
                format!("model:{}", model.unwrap_or(""))
            };
            let evidence = json!({"subject": subject, "baseline": an});
            self.raise(RuleRef::Builtin(id), &subject, ev, t, evidence, out);
        }
        self.anomalies = anomalies;
    }

    /// Time-driven rules: devices unseen too long, default credentials on
    /// in-service pumps. Call it periodically (every minute is plenty): it
    /// also forgets the dedup keys whose window is over, which keeps the
    /// state small. `now` is the wall clock, but only moves the engine's
    /// clock forward.
    pub fn tick(&mut self, ctx: &Context, now: OffsetDateTime, out: &mut Vec<Alert>) {
        let now_us = to_us(now).max(self.state.now_us);
        self.state.now_us = now_us;
        let start = out.len();

        let st = *self.config.rule(RuleId::DeviceUnseen);
        if st.enabled {
            let mut due: Vec<(String, i64, Option<String>)> = Vec::new();
            let mut back: Vec<&String> = Vec::new();
            for (asset, f) in &ctx.assets {
                if f.lifecycle != LifecycleState::InService {
                    continue;
                }
                // The later of its last event and the inventory's last
                // contact; never heard from at all is not "unseen".
                let last = self
                    .state
                    .last_seen
                    .get(asset)
                    .copied()
                    .max(f.last_seen.map(to_us));
                let Some(last) = last else {
                    continue;
                };
                let limit_s = f
                    .care_area
                    .as_ref()
                    .and_then(|a| ctx.unseen_after_s.get(a))
                    .copied()
                    .unwrap_or(st.window_s);
                let overdue = now_us - last > window_us(limit_s);
                match (overdue, self.state.unseen.contains(asset)) {
                    (true, false) => due.push((asset.clone(), last, f.care_area.clone())),
                    // Heard from again (a heartbeat, with no event): the
                    // next absence is a new alert.
                    (false, true) => back.push(asset),
                    _ => {}
                }
            }
            for asset in back {
                self.state.unseen.remove(asset);
            }
            due.sort();
            for (asset, last, area) in due {
                self.state.unseen.insert(asset.clone());
                // One alert per absence: the window index is the last-seen time.
                let key = DedupKey {
                    rule: RuleId::DeviceUnseen.as_str().to_owned(),
                    subject: asset.clone(),
                    window: last,
                };
                let evidence = json!({
                    "last_seen": fmt_time(from_us(last)),
                    "unseen_for_s": (now_us - last) / 1_000_000,
                });
                self.push_alert(
                    RuleRef::Builtin(RuleId::DeviceUnseen),
                    key,
                    Some(&asset),
                    area,
                    vec![],
                    now_us,
                    evidence,
                    out,
                );
            }
        }

        let st = *self.config.rule(RuleId::DefaultCredentials);
        if st.enabled {
            let mut hits: Vec<(&String, &AssetFacts)> = ctx
                .assets
                .iter()
                .filter(|(_, f)| {
                    f.lifecycle == LifecycleState::InService
                        && f.credentials == Some(CredentialState::DefaultUnchanged)
                })
                .collect();
            hits.sort_by(|a, b| a.0.cmp(b.0));
            for (asset, f) in hits {
                let key = DedupKey {
                    rule: RuleId::DefaultCredentials.as_str().to_owned(),
                    subject: asset.clone(),
                    window: now_us.div_euclid(window_us(st.window_s)),
                };
                let evidence = json!({"model": f.model, "credentials": "default_unchanged"});
                self.push_alert(
                    RuleRef::Builtin(RuleId::DefaultCredentials),
                    key,
                    Some(asset),
                    f.care_area.clone(),
                    vec![],
                    now_us,
                    evidence,
                    out,
                );
            }
        }

        self.state.raised.retain(|_, end| *end > now_us);
        out[start..].sort_by(|a, b| a.id.cmp(&b.id));
    }

    fn raise(
        &mut self,
        rule: RuleRef<'_>,
        subject: &str,
        ev: &Event,
        t: i64,
        evidence: serde_json::Value,
        out: &mut Vec<Alert>,
    ) {
        let window_s = match rule {
            RuleRef::Builtin(id) => self.config.rule(id).window_s,
            RuleRef::Custom(c) => c
                .rule
                .count
                .as_ref()
                .map(|c| c.within_s)
                .unwrap_or(CUSTOM_DEDUP_WINDOW_S),
        };
        let name = match rule {
            RuleRef::Builtin(id) => id.as_str().to_owned(),
            RuleRef::Custom(c) => format!("custom.{}", c.id),
        };
        let key = DedupKey {
            rule: name,
            subject: subject.to_owned(),
            window: t.div_euclid(window_us(window_s)),
        };
        let asset = ev.asset_id.as_ref().map(|a| a.as_str());
        self.push_alert(
            rule,
            key,
            asset,
            ev.care_area.clone(),
            vec![ev.id.clone()],
            t,
            evidence,
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn push_alert(
        &mut self,
        rule: RuleRef<'_>,
        key: DedupKey,
        asset: Option<&str>,
        care_area: Option<String>,
        events: Vec<String>,
        t: i64,
        evidence: serde_json::Value,
        out: &mut Vec<Alert>,
    ) {
        let id = key.alert_id();
        if self.state.raised.contains_key(&id) {
            self.state.repeats = self.state.repeats.saturating_add(1);
            return;
        }
        let (title, csf, severity, window_s): (String, Option<String>, Severity, u64) = match rule {
            RuleRef::Builtin(r) => {
                let i = r.info();
                let st = self.config.rule(r);
                (
                    i.title.to_owned(),
                    Some(i.csf.to_owned()),
                    st.severity,
                    st.window_s,
                )
            }
            RuleRef::Custom(c) => (
                c.title.clone(),
                None,
                c.severity,
                c.rule
                    .count
                    .as_ref()
                    .map(|c| c.within_s)
                    .unwrap_or(CUSTOM_DEDUP_WINDOW_S),
            ),
        };
        // Remember the key until its window is over (then it can never
        // recur, since time only moves forward).
        let end = if key.rule == RuleId::DeviceUnseen.as_str() {
            // Keyed by the absence (last-seen time), not by a window.
            t.saturating_add(window_us(window_s))
        } else {
            (key.window.saturating_add(1)).saturating_mul(window_us(window_s))
        };
        self.state.raised.insert(id.clone(), end);
        out.push(Alert {
            id,
            key,
            title,
            csf,
            severity,
            asset_id: asset.and_then(|a| a.parse().ok()),
            care_area,
            raised_at: from_us(t),
            events,
            evidence,
        });
    }
}

fn window_us(s: u64) -> i64 {
    i64::try_from(s)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000)
}

fn burst_evidence(n: usize, threshold: u32, window_s: u64, first_us: i64) -> serde_json::Value {
    json!({
        "count": n, "threshold": threshold, "window_s": window_s,
        "first_at": fmt_time(from_us(first_us)),
    })
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
