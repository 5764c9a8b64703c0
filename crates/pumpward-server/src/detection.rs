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
//!   lifecycle state and credentials; vendor firmware digests are not loaded
//!   yet) is reloaded every [`REFRESH_EVERY`], and the time-driven rules
//!   (devices unseen too long, default credentials) run on the same tick.
//!
//! - A new alert of a rule configured with an automatic response gets a
//!   pending response (see [`crate::response::on_new_alerts`]).
//!
//! Known gap: events stored but not yet processed when the server is killed
//! are not replayed into the engine after the restart (they stay in
//! `device_events`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pumpward_core::inventory::Asset;
use pumpward_detect::event::from_pump_event;
use pumpward_detect::{AssetFacts, Context, DetectionConfig, Engine, Event};
use pumpward_proto::message::PumpEvent;
use pumpward_store::{AssetFilter, DeviceBatch, Store};
use time::OffsetDateTime;
use tokio::sync::mpsc;

/// How often the engine's state is saved.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);
/// How often the context is reloaded and the time-driven rules run.
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);
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
}

/// The handle the event writer feeds.
#[derive(Clone)]
pub struct Detection {
    tx: mpsc::Sender<Input>,
    dropped: Arc<AtomicU64>,
}

impl Detection {
    /// Starts the engine task on `store` with `config`.
    pub fn spawn(store: Store, config: DetectionConfig) -> Detection {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, config, rx));
        Detection {
            tx,
            dropped: Arc::default(),
        }
    }

    /// Hands over a committed group of pump events; never waits.
    pub fn feed(&self, batches: &[DeviceBatch], received_at: OffsetDateTime) {
        let n: usize = batches.iter().map(|b| b.events.len()).sum();
        let stored = Input::Stored {
            batches: batches.to_vec(),
            received_at,
        };
        if self.tx.try_send(stored).is_err() {
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
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
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, id = %ev.id, "an invalid event for detection");
            return;
        }
        if self.tx.try_send(Input::Event(Box::new(ev))).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("detection is behind or stopped: an event was not evaluated");
        }
    }

    /// Events not handed to the engine (queue full, stopped, or invalid).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn facts(a: &Asset) -> AssetFacts {
    AssetFacts {
        model: a.spec.model.clone(),
        care_area: a.spec.care_area.clone(),
        lifecycle: a.lifecycle_state,
        credentials: Some(a.spec.credential_state),
        maintenance_windows: Vec::new(),
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
            None => return Ok(ctx),
        }
    }
}

async fn run(store: Store, config: DetectionConfig, mut rx: mpsc::Receiver<Input>) {
    let mut engine = match store.load_detection_state().await {
        Ok(Some(state)) => Engine::restore(config, state),
        Ok(None) => Engine::new(config),
        Err(e) => {
            tracing::error!(error = %e, "cannot load the detection state; starting afresh");
            Engine::new(config)
        }
    };
    let mut seq = engine.snapshot().watermark;
    let mut ctx = load_context(&store).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot load the detection context");
        Context::default()
    });
    let mut save = tokio::time::interval(SAVE_EVERY);
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    let mut alerts = Vec::new();
    let mut dirty = false;
    loop {
        tokio::select! {
            got = rx.recv() => {
                let (batches, received_at) = match got {
                    None => break,
                    Some(Input::Event(ev)) => {
                        if let Err(e) = store.record_security_events(std::slice::from_ref(&ev)).await {
                            tracing::warn!(error = %e, "cannot record a security event");
                        }
                        seq += 1;
                        engine.process(&ctx, seq, &ev, &mut alerts);
                        dirty = true;
                        (Vec::new(), OffsetDateTime::now_utc())
                    }
                    Some(Input::Stored { batches, received_at }) => (batches, received_at),
                };
                for b in &batches {
                    let Ok(asset) = b.asset_id.parse::<pumpward_core::inventory::AssetId>() else { continue };
                    let facts = ctx.assets.get(&b.asset_id);
                    let model = facts.map(|f| f.model.as_str()).unwrap_or("");
                    let area = facts.and_then(|f| f.care_area.clone());
                    for rec in &b.events {
                        // The body is the event as the gateway stored it.
                        let Ok(pe) = serde_json::from_str::<PumpEvent>(&rec.body) else { continue };
                        let Some(ev) = from_pump_event(&pe, asset.clone(), model, area.clone(), received_at) else { continue };
                        seq += 1;
                        engine.process(&ctx, seq, &ev, &mut alerts);
                        dirty = true;
                    }
                }
            }
            _ = refresh.tick() => {
                match load_context(&store).await {
                    Ok(c) => ctx = c,
                    Err(e) => tracing::warn!(error = %e, "cannot reload the detection context"),
                }
                engine.tick(&ctx, OffsetDateTime::now_utc(), &mut alerts);
                dirty = true;
            }
            _ = save.tick() => {
                if dirty {
                    if let Err(e) = store.save_detection_state(engine.snapshot()).await {
                        tracing::warn!(error = %e, "cannot save the detection state");
                    }
                    dirty = false;
                }
            }
        }
        if !alerts.is_empty() {
            match store.record_alerts(&alerts).await {
                Ok(new) => {
                    for id in &new {
                        tracing::info!(alert = %id, "alert raised");
                    }
                    crate::response::on_new_alerts(&store, engine.config(), &alerts, &new).await;
                    alerts.clear();
                }
                // Kept for the next round: the store may be back by then.
                Err(e) => tracing::warn!(error = %e, "cannot record alerts"),
            }
        }
    }
    if let Err(e) = store.save_detection_state(engine.snapshot()).await {
        tracing::warn!(error = %e, "cannot save the detection state");
    }
}
