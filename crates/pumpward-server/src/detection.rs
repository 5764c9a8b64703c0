//! The detection engine inside the server: pump events, once they are
//! durably stored, go through `pumpward-detect`'s rules, and the alerts the
//! rules raise are recorded in the store.
//!
//! Why it is shaped like this:
//! - The device event writer hands over each committed group with
//!   [`Detection::feed`], and the gateway its refused connections with
//!   [`Detection::observe`] (recorded in `security_events`); neither waits: a busy or stopped engine must
//!   not hold back the acknowledgements pumps are waiting for. What cannot be
//!   queued is counted (`detection_events_dropped`), never hidden.
//! - One task owns the engine; events get consecutive sequence numbers from
//!   the engine's saved watermark, so a restored engine continues its count.
//! - The engine's state is saved every [`SAVE_EVERY`] and when the task
//!   ends; alert ids are deterministic, so an alert raised again after a
//!   restart lands on the same stored alert.
//! - What the rules need from the store (assets with their model, care area,
//!   lifecycle state and credentials; the library each pump was sent; the
//!   expected firmware digests; open vulnerability findings) is reloaded
//!   every [`REFRESH_EVERY`], and the time-driven rules (devices unseen too
//!   long, default credentials) run on the same tick.
//! - Vulnerability findings are not pushed: every [`POLL_EVERY`] the task
//!   reads the `vulnerability.affected` findings opened since the last one it
//!   saw (matching may run in another process, `pumpward advisories`), and
//!   notices CVEs of open findings that have joined the KEV list.
//! - Nothing is lost to a crash: the snapshot carries where each input
//!   resumes ([`Resume`]: the last committed group of pump events evaluated,
//!   the last security event, the last finding). At start, whatever was
//!   stored after those points is evaluated before anything new; a group
//!   that also arrives through [`Detection::feed`] is recognised by its
//!   commit time and skipped. This relies on two facts: one event writer
//!   commits pump events, with increasing `received_at`; and only this task
//!   writes `security_events`, evaluating each right after recording it.
//! - New alerts and the security events are handed to the SIEM feed
//!   ([`crate::siem`]) when one is configured; that never waits either.
//! - A new alert of a rule configured with an automatic response gets a
//!   pending response (see [`crate::response::on_new_alerts`]).

use std::time::Duration;

use std::collections::BTreeSet;

use crate::metrics::DetectionCounters;
use crate::siem::SiemOutput;
use prometheus_client::metrics::counter::Counter;

use pumpward_core::inventory::{Asset, AssetId};
use pumpward_core::timefmt;
use pumpward_detect::event::{from_pump_event, Body};
use pumpward_detect::{
    Alert, AssetFacts, Context, DetectionConfig, Engine, Event, ExpectedLibrary,
};
use pumpward_proto::message::PumpEvent;
use pumpward_store::{AssetFilter, DeviceBatch, DeviceEventCursor, DeviceEventRecord, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// How often the engine's state is saved.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);
/// How often the context is reloaded and the time-driven rules run.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// How often new vulnerability findings, KEV additions and the libraries
/// announced to pumps are looked for.
pub const POLL_EVERY: Duration = Duration::from_secs(5);
/// Inputs taken from the queue at once.
const MAX_INPUTS_AT_ONCE: usize = 512;
/// Stored rows read per query when catching up.
const PAGE: i64 = 5_000;
/// Stored batches waiting for the engine.
const QUEUE: usize = 8192;

/// What the engine task receives.
enum Input {
    /// A committed group of pump events (already durable in `device_events`).
    Stored {
        batches: Vec<DeviceBatch>,
        received_at: OffsetDateTime,
    },
    /// An event from another part of the server (the gateway today): recorded
    /// in `security_events`, then evaluated.
    Event(Box<Event>),
    /// New rule settings (edited in the UI): the engine keeps its windows
    /// and baselines and judges the next events by these.
    Configure(Box<DetectionConfig>),
    /// Forget what was learned about one asset's normal behaviour (it was
    /// repaired, moved to another care area, or learned from a bad time);
    /// answers whether there was anything to forget.
    ResetBaseline {
        asset: AssetId,
        done: tokio::sync::oneshot::Sender<bool>,
    },
}

/// The handle the event writer feeds.
#[derive(Clone)]
pub struct Detection {
    tx: mpsc::Sender<Input>,
    dropped: Counter,
    /// Closed when the task has saved its state and ended.
    done: tokio::sync::watch::Receiver<bool>,
}

/// Where the engine task reports, besides the store.
#[derive(Clone, Default)]
pub struct Outputs {
    /// Its counters (the server's `/metrics` ones, or private ones).
    pub counters: DetectionCounters,
    /// The SIEM feed, if any sink is configured.
    pub siem: Option<SiemOutput>,
}

impl Detection {
    /// Starts the engine task on `store` with `config`.
    pub fn spawn(store: Store, config: DetectionConfig) -> Detection {
        Detection::spawn_with(store, config, Outputs::default())
    }

    /// [`Detection::spawn`], counting into `outputs.counters` and feeding
    /// new alerts and security events to `outputs.siem`.
    pub fn spawn_with(store: Store, config: DetectionConfig, outputs: Outputs) -> Detection {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = outputs.counters.events_dropped.clone();
        let (done_tx, done) = tokio::sync::watch::channel(false);
        let started = OffsetDateTime::now_utc();
        tokio::spawn(async move {
            run(store, config, rx, started, outputs).await;
            let _ = done_tx.send(true);
        });
        Detection { tx, dropped, done }
    }

    /// Lets the task finish what is queued, save its state and end, once
    /// every other handle (the event writer's, the gateway's) is dropped too.
    pub async fn stop(self) {
        let Detection { tx, mut done, .. } = self;
        drop(tx);
        let _ = done.wait_for(|d| *d).await;
    }

    /// Hands over a committed group of pump events; never waits.
    pub fn feed(&self, batches: &[DeviceBatch], received_at: OffsetDateTime) {
        let n: usize = batches.iter().map(|b| b.events.len()).sum();
        let stored = Input::Stored {
            batches: batches.to_vec(),
            received_at,
        };
        if self.tx.try_send(stored).is_err() {
            self.dropped.inc_by(n as u64);
            tracing::warn!(
                events = n,
                "detection is behind or stopped: events stored but not evaluated"
            );
        }
    }

    /// Hands over an event from elsewhere in the server (e.g. a refused
    /// gateway connection); never waits. An event that fails the envelope's
    /// validation is a bug of its producer: logged and counted.
    pub fn observe(&self, ev: Event) {
        if let Err(e) = ev.validate() {
            self.dropped.inc();
            tracing::error!(error = %e, id = %ev.id, "an invalid event for detection");
            return;
        }
        if self.tx.try_send(Input::Event(Box::new(ev))).is_err() {
            self.dropped.inc();
            tracing::warn!("detection is behind or stopped: an event was not evaluated");
        }
    }

    /// Hands the running engine new rule settings. Unlike events, a
    /// configuration must not be lost: this waits for room in the queue.
    /// Returns false when the engine task has stopped.
    pub async fn reconfigure(&self, config: DetectionConfig) -> bool {
        self.tx
            .send(Input::Configure(Box::new(config)))
            .await
            .is_ok()
    }

    /// Makes the running engine forget `asset`'s learned baseline; it learns
    /// again from the asset's next events. Waits until the engine has done
    /// it and saved its state, so that a restart does not bring the old
    /// baseline back. `None` when the engine task has stopped; otherwise
    /// whether a baseline had been learned.
    pub async fn reset_baseline(&self, asset: AssetId) -> Option<bool> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Input::ResetBaseline { asset, done })
            .await
            .ok()?;
        answer.await.ok()
    }

    /// Events not handed to the engine (queue full, stopped, or invalid).
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }
}

fn facts(a: &Asset) -> AssetFacts {
    AssetFacts {
        model: a.spec.model.clone(),
        care_area: a.spec.care_area.clone(),
        lifecycle: a.lifecycle_state,
        credentials: Some(a.spec.credential_state),
        maintenance_windows: Vec::new(),
        last_seen: a.last_seen,
    }
}

/// The rules' view of the store.
pub async fn load_context(store: &Store) -> pumpward_store::Result<Context> {
    let mut ctx = Context::default();
    let mut f = AssetFilter {
        limit: 500,
        ..Default::default()
    };
    loop {
        let page = store.list_assets(&f).await?;
        for a in &page.items {
            ctx.assets.insert(a.spec.asset_id.to_string(), facts(a));
        }
        match page.next_cursor {
            Some(c) => f.after = Some(c),
            None => break,
        }
    }
    ctx.libraries = expected_libraries(store).await?;
    ctx.firmware = store.expected_firmware_digests().await?;
    let mut after = 0;
    loop {
        let page = store.affected_findings_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for f in page {
            ctx.affected
                .entry(f.vulnerability)
                .or_default()
                .push(f.asset_id);
        }
    }
    Ok(ctx)
}

/// The library each pump should run. Reloaded on every poll too: a pump
/// is announced a library at any moment, and what it installs next is
/// judged against that.
async fn expected_libraries(
    store: &Store,
) -> pumpward_store::Result<std::collections::HashMap<String, ExpectedLibrary>> {
    Ok(store
        .expected_pump_libraries()
        .await?
        .into_iter()
        .map(|(asset, (version, digest))| (asset, ExpectedLibrary { version, digest }))
        .collect())
}

/// Where the engine's inputs resume after a restart; saved inside the
/// engine's snapshot, so that it always matches the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// `received_at` of the last committed group of pump events evaluated.
    pub device_commit: Option<String>,
    /// The last security event evaluated.
    pub security_seq: i64,
    /// The last `vulnerability.affected` finding turned into an event.
    pub finding_id: i64,
    /// CVEs of open findings already known to be on the KEV list (`None`
    /// until first filled: what is on it at first start is not "new").
    pub kev_affected: Option<BTreeSet<String>>,
    /// The last audit-trail record turned into an event (`None` until first
    /// set: the trail before detection first ran is not replayed).
    pub audit_seq: Option<i64>,
}

/// The engine task's state.
struct Task {
    store: Store,
    outputs: Outputs,
    /// When [`Detection::spawn`] was called.
    started: OffsetDateTime,
    engine: Engine,
    ctx: Context,
    resume: Resume,
    seq: u64,
    alerts: Vec<Alert>,
    dirty: bool,
}

impl Task {
    fn eval(&mut self, ev: &Event) {
        self.seq += 1;
        self.engine
            .process(&self.ctx, self.seq, ev, &mut self.alerts);
        self.outputs.counters.events_evaluated.inc();
        self.dirty = true;
    }

    /// Evaluates one committed group's pump events.
    fn eval_pump_events<'a>(
        &mut self,
        asset_id: &str,
        records: impl Iterator<Item = &'a DeviceEventRecord>,
        received_at: OffsetDateTime,
    ) {
        let Ok(asset) = asset_id.parse::<AssetId>() else {
            return;
        };
        let facts = self.ctx.assets.get(asset_id);
        let model = facts.map(|f| f.model.clone()).unwrap_or_default();
        let area = facts.and_then(|f| f.care_area.clone());
        for rec in records {
            // The body is the event as the gateway stored it.
            let Ok(pe) = serde_json::from_str::<PumpEvent>(&rec.body) else {
                continue;
            };
            if let Some(ev) = from_pump_event(&pe, asset.clone(), &model, area.clone(), received_at)
            {
                self.eval(&ev);
            }
        }
    }

    /// A group the event writer committed: skipped if a replay already
    /// evaluated it.
    fn on_stored(&mut self, batches: &[DeviceBatch], received_at: OffsetDateTime) {
        let commit = timefmt::format(received_at);
        if self
            .resume
            .device_commit
            .as_ref()
            .is_some_and(|c| *c >= commit)
        {
            return;
        }
        for b in batches {
            self.eval_pump_events(&b.asset_id, b.events.iter(), received_at);
        }
        self.resume.device_commit = Some(commit);
    }

    /// Records events in `security_events`, then evaluates them.
    async fn record_and_eval(&mut self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.store.record_security_events(events).await {
            tracing::warn!(error = %e, "cannot record security events");
        }
        for ev in events {
            if let Some(siem) = &self.outputs.siem {
                siem.event_observed(ev);
            }
            self.eval(ev);
        }
    }

    /// Inputs in the order they came.
    async fn handle(&mut self, inputs: Vec<Input>) {
        let mut events = Vec::new();
        for input in inputs {
            match input {
                Input::Event(ev) => events.push(*ev),
                Input::Configure(config) => {
                    // Events before it are judged by the old settings.
                    self.record_and_eval(&std::mem::take(&mut events)).await;
                    self.engine.set_config(*config);
                    self.dirty = true;
                    tracing::info!("detection rule settings changed");
                }
                Input::Stored {
                    batches,
                    received_at,
                } => {
                    self.record_and_eval(&std::mem::take(&mut events)).await;
                    self.on_stored(&batches, received_at);
                }
                Input::ResetBaseline { asset, done } => {
                    self.record_and_eval(&std::mem::take(&mut events)).await;
                    let had = self.engine.reset_baseline(&asset);
                    self.dirty = true;
                    // Saved before answering: the caller audits the reset
                    // as done. Alerts still unrecorded postpone a save; they
                    // are recorded first.
                    self.flush_alerts().await;
                    self.save().await;
                    tracing::info!(asset = %asset, had, "baseline reset");
                    let _ = done.send(had);
                }
            }
        }
        self.record_and_eval(&events).await;
    }

    /// Evaluates what was stored after the resume points: at start, before
    /// anything new.
    async fn catch_up(&mut self) -> pumpward_store::Result<()> {
        if self.engine.snapshot().resume.is_none() {
            // A store that predates resume points (or a fresh one): history
            // is not re-evaluated; detection starts from when it was
            // started. What was committed since (also on its way through
            // the queue) is caught up below like after a restart.
            self.resume.device_commit = self
                .store
                .last_device_commit_before(&timefmt::format(self.started))
                .await?;
            self.resume.security_seq = self.store.last_security_event_seq().await?;
            self.resume.audit_seq = Some(self.store.audit_head().await?.seq);
        }
        let mut replayed = 0usize;
        loop {
            let page = self
                .store
                .security_events_after(self.resume.security_seq, PAGE)
                .await?;
            let Some(&(last, _)) = page.last() else { break };
            for (_, ev) in &page {
                self.eval(ev);
            }
            replayed += page.len();
            self.resume.security_seq = last;
        }
        let mut cursor: Option<DeviceEventCursor> = None;
        loop {
            let page = match &cursor {
                Some(c) => self.store.device_events_after(c, PAGE).await?,
                None => {
                    self.store
                        .device_events_after_commit(self.resume.device_commit.as_deref(), PAGE)
                        .await?
                }
            };
            let Some(last) = page.last() else { break };
            let last = last.cursor.clone();
            for e in &page {
                let at = timefmt::parse(&e.cursor.received_at)
                    .unwrap_or_else(|_| OffsetDateTime::now_utc());
                self.eval_pump_events(&e.cursor.asset_id, std::iter::once(&e.record), at);
            }
            replayed += page.len();
            cursor = Some(last);
        }
        if let Some(c) = cursor {
            self.resume.device_commit = Some(c.received_at);
        }
        if replayed > 0 {
            tracing::info!(
                events = replayed,
                "detection caught up with events stored before the restart"
            );
        }
        Ok(())
    }

    /// New `vulnerability.affected` findings, and CVEs of open findings that
    /// joined the KEV list, become events.
    async fn poll_vulnerabilities(&mut self) -> pumpward_store::Result<()> {
        let now = OffsetDateTime::now_utc();
        loop {
            let page = self
                .store
                .affected_findings_after(self.resume.finding_id, PAGE)
                .await?;
            let Some(last) = page.last().map(|f| f.id) else {
                break;
            };
            let mut events = Vec::with_capacity(page.len());
            for f in page {
                events.push(Event::observed(
                    format!("finding:{}", f.id),
                    now,
                    f.asset_id.parse().ok(),
                    Body::VulnerabilityAffected {
                        vulnerability: f.vulnerability.clone(),
                        kev: f.kev,
                    },
                ));
                // Already there when the context was loaded after the
                // finding was raised; the rule removes duplicates.
                self.ctx
                    .affected
                    .entry(f.vulnerability)
                    .or_default()
                    .push(f.asset_id);
            }
            self.record_and_eval(&events).await;
            self.resume.finding_id = last;
            self.dirty = true;
        }
        let kev = self.store.kev_vulnerabilities().await?;
        let now_kev: BTreeSet<String> = self
            .ctx
            .affected
            .keys()
            .filter(|v| kev.contains(*v))
            .cloned()
            .collect();
        let added: Vec<String> = match &self.resume.kev_affected {
            None => Vec::new(),
            Some(before) => now_kev.difference(before).cloned().collect(),
        };
        if self.resume.kev_affected.as_ref() != Some(&now_kev) {
            self.resume.kev_affected = Some(now_kev);
            self.dirty = true;
        }
        for v in added {
            let ev = Event::observed(
                format!("kev:{v}"),
                now,
                None,
                Body::KevAdded { vulnerability: v },
            );
            self.record_and_eval(std::slice::from_ref(&ev)).await;
        }
        Ok(())
    }

    /// New records of the audit trail become `admin_audit` events (custom
    /// rules count them, the SIEM receives them). Pumpward's own automatic
    /// actions (actor `system`: raising alerts, automatic responses) are not
    /// fed back to the rules that caused them.
    async fn poll_audit(&mut self) -> pumpward_store::Result<()> {
        let Some(mut after) = self.resume.audit_seq else {
            // A state saved before audit records were followed.
            self.resume.audit_seq = Some(self.store.audit_head().await?.seq);
            self.dirty = true;
            return Ok(());
        };
        loop {
            let page = self.store.audit_after(after, PAGE).await?;
            let Some(last) = page.last().map(|r| r.seq) else {
                break;
            };
            let now = OffsetDateTime::now_utc();
            let events: Vec<Event> = page
                .into_iter()
                .filter(|r| r.entry.actor != "system")
                .map(|r| {
                    let asset = r
                        .entry
                        .object
                        .as_deref()
                        .and_then(|o| o.strip_prefix("asset:"))
                        .and_then(|a| a.parse().ok());
                    let occurred = timefmt::parse(&r.at).unwrap_or(now);
                    let mut ev = Event::observed(
                        format!("audit:{}", r.seq),
                        now,
                        asset,
                        Body::AdminAudit { record: r },
                    );
                    ev.occurred_at = occurred;
                    ev
                })
                .collect();
            self.record_and_eval(&events).await;
            after = last;
            self.resume.audit_seq = Some(last);
            self.dirty = true;
        }
        Ok(())
    }

    async fn save(&mut self) {
        // A state that says events were evaluated must not outlive the
        // alerts they raised: those are recorded first.
        if !self.alerts.is_empty() {
            return;
        }
        let mut state = self.engine.snapshot().clone();
        match serde_json::to_string(&self.resume) {
            Ok(r) => state.resume = Some(r),
            Err(e) => tracing::error!(error = %e, "cannot encode the resume points"),
        }
        match self.store.save_detection_state(&state).await {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!(error = %e, "cannot save the detection state"),
        }
    }

    async fn flush_alerts(&mut self) {
        if self.alerts.is_empty() {
            return;
        }
        match self.store.record_alerts(&self.alerts).await {
            Ok(new) => {
                self.outputs.counters.alerts_raised.inc_by(new.len() as u64);
                if let Some(siem) = &self.outputs.siem {
                    siem.alerts_raised(&self.alerts, &new);
                }
                crate::response::on_new_alerts(
                    &self.store,
                    self.engine.config(),
                    &self.alerts,
                    &new,
                )
                .await;
                if !new.is_empty() {
                    tracing::info!(alerts = new.len(), first = %new[0], "alerts raised");
                }
                self.alerts.clear();
            }
            // Kept for the next round: the store may be back by then.
            Err(e) => tracing::warn!(error = %e, "cannot record alerts"),
        }
    }
}

async fn run(
    store: Store,
    config: DetectionConfig,
    mut rx: mpsc::Receiver<Input>,
    started: OffsetDateTime,
    outputs: Outputs,
) {
    let engine = match store.load_detection_state().await {
        Ok(Some(state)) => Engine::restore(config, state),
        Ok(None) => Engine::new(config),
        Err(e) => {
            tracing::error!(error = %e, "cannot load the detection state; starting afresh");
            Engine::new(config)
        }
    };
    let resume = engine
        .snapshot()
        .resume
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default();
    let ctx = load_context(&store).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot load the detection context");
        Context::default()
    });
    let mut task = Task {
        outputs,
        started,
        seq: engine.snapshot().watermark,
        store,
        engine,
        ctx,
        resume,
        alerts: Vec::new(),
        dirty: false,
    };
    if let Err(e) = task.catch_up().await {
        tracing::error!(error = %e, "cannot replay the events stored before the restart");
    }
    task.flush_alerts().await;
    task.save().await;
    let mut save = tokio::time::interval(SAVE_EVERY);
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    let mut poll = tokio::time::interval(POLL_EVERY);
    loop {
        tokio::select! {
            got = rx.recv() => {
                let Some(first) = got else { break };
                // What else is waiting, so that a run of events from
                // elsewhere costs one transaction, not one each.
                let mut inputs = vec![first];
                while inputs.len() < MAX_INPUTS_AT_ONCE {
                    match rx.try_recv() {
                        Ok(i) => inputs.push(i),
                        Err(_) => break,
                    }
                }
                task.handle(inputs).await;
            }
            _ = refresh.tick() => {
                match load_context(&task.store).await {
                    Ok(c) => task.ctx = c,
                    Err(e) => tracing::warn!(error = %e, "cannot reload the detection context"),
                }
                task.engine.tick(&task.ctx, OffsetDateTime::now_utc(), &mut task.alerts);
                task.dirty = true;
            }
            _ = poll.tick() => {
                if let Err(e) = task.poll_vulnerabilities().await {
                    tracing::warn!(error = %e, "cannot read new vulnerability findings");
                }
                if let Err(e) = task.poll_audit().await {
                    tracing::warn!(error = %e, "cannot read new audit records");
                }
                match expected_libraries(&task.store).await {
                    Ok(l) => task.ctx.libraries = l,
                    Err(e) => tracing::warn!(error = %e, "cannot read the pumps' expected libraries"),
                }
            }
            _ = save.tick() => {
                if task.dirty {
                    task.save().await;
                }
            }
        }
        task.flush_alerts().await;
    }
    task.save().await;
}
