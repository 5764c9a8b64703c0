//! Behavioural baselines per pump and per model: hourly event rate,
//! destinations and active hours, learned from the events themselves.
//!
//! Kept deliberately simple and explainable to a biomed or SOC reader:
//! - **rate**: an exponentially weighted mean and mean absolute deviation
//!   of events per clock hour (hours without events count as 0). Once
//!   learned, an hour whose count exceeds `mean + rate_factor × max(dev, 1)`
//!   *and* `mean + rate_min_excess` is anomalous; the alert fires as soon as
//!   the count crosses that line, once per hour.
//! - **destinations**: the `(address, port)` pairs the subject opened flows
//!   to while learning (at most [`MAX_DESTINATIONS`]); afterwards a new one
//!   is anomalous (and then learned, so it alerts once).
//! - **active hours**: the hours of the day (UTC) with any activity while
//!   learning; afterwards activity in another hour is anomalous.
//!
//! A baseline learns for `learning_hours` clock hours from its first event
//! and judges nothing before. [`Baselines::reset`] forgets one subject (after
//! a pump changes ward or role), which starts its learning again.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::BaselineSettings;

/// Destinations one baseline learns at most.
pub const MAX_DESTINATIONS: usize = 256;
/// Empty hours folded into the rate at most when time jumps (a week).
const MAX_GAP_HOURS: i64 = 24 * 7;
const HOUR_US: i64 = 3_600_000_000;

/// One subject's learned behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The hour (since the epoch) learning started.
    pub first_hour: i64,
    /// The current hour and its count so far.
    pub hour: i64,
    pub count: u64,
    /// Whether the current hour already raised a rate anomaly.
    pub rate_alerted: bool,
    /// EWMA of events per hour.
    pub mean: f64,
    /// EWMA of the absolute deviation from the mean.
    pub dev: f64,
    /// Closed hours folded into mean and dev.
    pub hours: u64,
    /// Bit h set: activity seen in hour-of-day h (UTC) while learning.
    pub active_hours: u32,
    /// Destinations seen while learning.
    pub destinations: HashSet<(IpAddr, u16)>,
}

/// What a baseline found unusual, with the baseline and the observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "anomaly", rename_all = "snake_case")]
pub enum Anomaly {
    Rate {
        hour: i64,
        observed: u64,
        mean: f64,
        dev: f64,
        limit: f64,
    },
    Destination {
        addr: IpAddr,
        port: u16,
        known: usize,
    },
    ActiveHour {
        hour_of_day: u32,
        active_hours: Vec<u32>,
    },
}

impl Baseline {
    fn new(hour: i64) -> Baseline {
        Baseline {
            first_hour: hour,
            hour,
            count: 0,
            rate_alerted: false,
            mean: 0.0,
            dev: 0.0,
            hours: 0,
            active_hours: 0,
            destinations: HashSet::new(),
        }
    }

    /// Whether learning is over at `hour`.
    pub fn learned(&self, s: &BaselineSettings, hour: i64) -> bool {
        hour.saturating_sub(self.first_hour) >= i64::from(s.learning_hours)
    }

    fn fold(&mut self, x: f64, alpha: f64) {
        if self.hours == 0 {
            self.mean = x;
            self.dev = 0.0;
        } else {
            let d = (x - self.mean).abs();
            self.mean += alpha * (x - self.mean);
            self.dev += alpha * (d - self.dev);
        }
        self.hours += 1;
    }

    /// The count above which an hour is anomalous.
    pub fn rate_limit(&self, s: &BaselineSettings) -> f64 {
        (self.mean + s.rate_factor * self.dev.max(1.0)).max(self.mean + s.rate_min_excess)
    }

    /// One event at `t_us`, with the destination of its flow if any.
    /// Pushes what it found unusual onto `out`.
    pub fn observe(
        &mut self,
        s: &BaselineSettings,
        t_us: i64,
        destination: Option<(IpAddr, u16)>,
        out: &mut Vec<Anomaly>,
    ) {
        let hour = t_us.div_euclid(HOUR_US);
        if hour > self.hour {
            self.fold(self.count as f64, s.alpha);
            let empty = (hour - self.hour - 1).min(MAX_GAP_HOURS);
            for _ in 0..empty {
                self.fold(0.0, s.alpha);
            }
            self.hour = hour;
            self.count = 0;
            self.rate_alerted = false;
        }
        self.count = self.count.saturating_add(1);
        let hod = hour.rem_euclid(24) as u32;
        if !self.learned(s, hour) {
            self.active_hours |= 1 << hod;
            if let Some(d) = destination {
                if self.destinations.len() < MAX_DESTINATIONS {
                    self.destinations.insert(d);
                }
            }
            return;
        }
        let limit = self.rate_limit(s);
        if !self.rate_alerted && self.count as f64 > limit {
            self.rate_alerted = true;
            out.push(Anomaly::Rate {
                hour,
                observed: self.count,
                mean: self.mean,
                dev: self.dev,
                limit,
            });
        }
        if self.active_hours & (1 << hod) == 0 {
            out.push(Anomaly::ActiveHour {
                hour_of_day: hod,
                active_hours: (0..24)
                    .filter(|h| self.active_hours & (1 << h) != 0)
                    .collect(),
            });
            // Learned once reported: one alert per new hour of day.
            self.active_hours |= 1 << hod;
        }
        if let Some(d) = destination {
            if !self.destinations.contains(&d) {
                out.push(Anomaly::Destination {
                    addr: d.0,
                    port: d.1,
                    known: self.destinations.len(),
                });
                if self.destinations.len() < MAX_DESTINATIONS {
                    self.destinations.insert(d);
                }
            }
        }
    }
}

/// Whose baseline: one pump, or all pumps of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Asset,
    Model,
}

/// Baselines by asset id and by model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    assets: HashMap<String, Baseline>,
    models: HashMap<String, Baseline>,
}

impl Baselines {
    fn map(&mut self, scope: Scope) -> &mut HashMap<String, Baseline> {
        match scope {
            Scope::Asset => &mut self.assets,
            Scope::Model => &mut self.models,
        }
    }

    /// Observes one event for `subject`.
    pub fn observe(
        &mut self,
        s: &BaselineSettings,
        scope: Scope,
        subject: &str,
        t_us: i64,
        destination: Option<(IpAddr, u16)>,
        out: &mut Vec<Anomaly>,
    ) {
        let map = self.map(scope);
        let b = match map.get_mut(subject) {
            Some(b) => b,
            None => map
                .entry(subject.to_owned())
                .or_insert_with(|| Baseline::new(t_us.div_euclid(HOUR_US))),
        };
        b.observe(s, t_us, destination, out);
    }

    /// One subject's baseline.
    pub fn get(&self, scope: Scope, subject: &str) -> Option<&Baseline> {
        match scope {
            Scope::Asset => self.assets.get(subject),
            Scope::Model => self.models.get(subject),
        }
    }

    /// Forgets a subject: it learns again from its next event.
    pub fn reset(&mut self, scope: Scope, subject: &str) -> bool {
        self.map(scope).remove(subject).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BaselineSettings {
        BaselineSettings {
            learning_hours: 24,
            rate_factor: 4.0,
            rate_min_excess: 20.0,
            alpha: 0.1,
        }
    }

    /// `per_hour` events in each of `hours` hours starting at hour 0, at minute 0..
    fn learn(b: &mut Baselines, s: &BaselineSettings, hours: i64, per_hour: i64) {
        let mut out = Vec::new();
        for h in 0..hours {
            for i in 0..per_hour {
                b.observe(
                    s,
                    Scope::Asset,
                    "p1",
                    h * HOUR_US + i * 1_000_000,
                    None,
                    &mut out,
                );
            }
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn nothing_is_judged_while_learning() {
        let s = settings();
        let mut b = Baselines::default();
        let mut out = Vec::new();
        for i in 0..1000 {
            b.observe(
                &s,
                Scope::Asset,
                "p1",
                i * 1_000_000,
                Some(("10.0.0.1".parse().unwrap(), 443)),
                &mut out,
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn a_burst_after_learning_raises_one_rate_anomaly_with_evidence() {
        let s = settings();
        let mut b = Baselines::default();
        learn(&mut b, &s, 30, 10);
        let mut out = Vec::new();
        let h = 30 * HOUR_US;
        for i in 0..100 {
            b.observe(&s, Scope::Asset, "p1", h + i * 1_000_000, None, &mut out);
        }
        let rates: Vec<_> = out
            .iter()
            .filter(|a| matches!(a, Anomaly::Rate { .. }))
            .collect();
        assert_eq!(rates.len(), 1, "{out:?}");
        match rates[0] {
            Anomaly::Rate {
                observed,
                mean,
                limit,
                ..
            } => {
                assert!((*mean - 10.0).abs() < 1e-9);
                assert_eq!(*observed, 31, "first count above mean + 20 excess");
                assert!((*limit - 30.0).abs() < 1e-9);
            }
            _ => unreachable!(),
        }
        // Normal rate in the next hour: nothing.
        let mut out = Vec::new();
        for i in 0..10 {
            b.observe(&s, Scope::Asset, "p1", 31 * HOUR_US + i, None, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn new_destination_and_new_hour_alert_once_and_reset_relearns() {
        let s = settings();
        let mut b = Baselines::default();
        let known = ("10.0.0.1".parse().unwrap(), 443);
        let mut out = Vec::new();
        // Active only in hours 0..12 of each day, over two days.
        for h in 0..48i64 {
            if h % 24 < 12 {
                b.observe(&s, Scope::Asset, "p1", h * HOUR_US, Some(known), &mut out);
            }
        }
        assert!(out.is_empty());
        let t = 48 * HOUR_US + 5; // hour of day 0: known
        let new = ("203.0.113.9".parse().unwrap(), 8443);
        b.observe(&s, Scope::Asset, "p1", t, Some(new), &mut out);
        b.observe(&s, Scope::Asset, "p1", t + 1, Some(new), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(
            out[0],
            Anomaly::Destination {
                port: 8443,
                known: 1,
                ..
            }
        ));
        out.clear();
        b.observe(
            &s,
            Scope::Asset,
            "p1",
            48 * HOUR_US + 20 * HOUR_US,
            None,
            &mut out,
        );
        assert!(
            matches!(
                out[0],
                Anomaly::ActiveHour {
                    hour_of_day: 20,
                    ..
                }
            ),
            "{out:?}"
        );
        assert!(b.reset(Scope::Asset, "p1"));
        out.clear();
        b.observe(
            &s,
            Scope::Asset,
            "p1",
            100 * HOUR_US,
            Some(("198.51.100.1".parse().unwrap(), 1)),
            &mut out,
        );
        assert!(out.is_empty());
        assert!(!b.reset(Scope::Asset, "nobody"));
    }
}
