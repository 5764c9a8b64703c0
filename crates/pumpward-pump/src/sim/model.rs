//! The pure, seeded model of one pump's clinical use. No I/O and no clock:
//! the runner passes the simulated time in, and the same seed and times give
//! the same events forever ([`crate::rng::SplitMix64`]).
//!
//! What it models:
//! - **Shifts**: activity follows the hour of the day — day shift (07–19)
//!   busiest, evening less, night least.
//! - **Infusions**: idle → programmed (+ dose check) → started → paused
//!   (by the user or an alarm) → resumed or stopped → completed. The
//!   clinician picks a drug of the installed library's profile for the care
//!   area and aims mostly within its limits, sometimes above a soft maximum
//!   (giving a realistic override reason), rarely above the hard maximum;
//!   occasionally a basic infusion (no drug selected). The **pump's own
//!   dose check** ([`PumpLibrary::check`], the engine the agent runs) decides
//!   and makes the `dose_check` event: a blocked dose never starts. Without
//!   a library every programming is a basic infusion.
//! - **Alarms**: occlusion, air in line (pausing the infusion), battery low
//!   when off mains, infusion complete.
//! - **Moves** between care areas while idle (unplugged for transport).

use pumpward_proto::message::{
    AlarmKind, DoseCheckResult, EventKind, Infusion, InfusionState, Quantity, StopCause,
};
use time::OffsetDateTime;

use crate::library::PumpLibrary;
use crate::rng::SplitMix64;
use pumpward_druglib::check::{CheckOutcome, DoseInput, DrugSelection, Programming};
use pumpward_druglib::quantity::Dec;

/// Care areas a pump may be moved between (the hospital's units, as the
/// inventory and the sample library's profiles name them).
pub const CARE_AREAS: &[&str] = &[
    "Adult ICU",
    "Med-Surg",
    "Oncology",
    "Pediatrics",
    "NICU",
    "Emergency Department",
    "Anesthesia / OR",
    "Labor & Delivery",
];

/// Reasons clinicians give for going past a soft limit (what a CQI report
/// groups).
pub const OVERRIDE_REASONS: &[&str] = &[
    "titrating to MAP goal per protocol",
    "physician order verified",
    "aPTT below target per nomogram",
    "opioid-tolerant patient",
    "blood glucose above 300 mg/dL per insulin protocol",
    "loading dose per prescriber",
];

fn dec(v: f64) -> Option<Dec> {
    format!("{:.4}", v.max(0.0001)).parse().ok()
}

fn f(d: Option<Dec>) -> Option<f64> {
    d.and_then(|d| d.to_string().parse().ok())
}

/// Where the pump is in its infusion cycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// No infusion.
    Idle,
    /// Programmed and dose-checked, about to start.
    Programming {
        /// Infusion id.
        id: u32,
        /// Seconds it will run.
        runtime_s: f64,
    },
    /// Infusing.
    Running {
        /// Infusion id.
        id: u32,
        /// Seconds of infusion left.
        remaining_s: f64,
        /// What happens at the next step.
        next: RunNext,
    },
    /// Paused by the user (`alarm: false`) or an alarm.
    Paused {
        /// Infusion id.
        id: u32,
        /// Seconds of infusion left.
        remaining_s: f64,
        /// Paused by an alarm.
        alarm: bool,
    },
}

/// What a running infusion does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNext {
    /// Draw the next happening.
    Decide,
    /// An occlusion or air-in-line alarm pauses it.
    Alarm,
    /// The user pauses it.
    UserPause,
    /// The volume is delivered.
    Complete,
}

/// One pump's model state (about 100 bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct PumpModel {
    rng: SplitMix64,
    phase: Phase,
    next_infusion: u32,
    /// Battery in tenths of a percent.
    battery: u16,
    on_mains: bool,
    battery_alarmed: bool,
    care_area: String,
    last: Option<OffsetDateTime>,
}

/// The activity factor of an hour of the day (1.0 = day shift).
pub fn activity(hour: u8) -> f64 {
    match hour {
        7..=18 => 1.0,
        19..=22 => 0.6,
        _ => 0.35,
    }
}

fn qty(v: f64, unit: &str) -> Quantity {
    let v = (v.max(0.0) * 100.0).round() / 100.0;
    Quantity {
        value: format!("{v:.2}"),
        unit: unit.into(),
    }
}

fn inf(id: u32, cause: Option<StopCause>) -> Infusion {
    Infusion {
        infusion_id: format!("inf-{id}"),
        drug: None,
        rate: None,
        vtbi: None,
        cause,
    }
}

impl PumpModel {
    /// A pump in `care_area`, idle, on mains, fully charged.
    pub fn new(seed: u64, care_area: &str) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            phase: Phase::Idle,
            next_infusion: 1,
            battery: 1000,
            on_mains: true,
            battery_alarmed: false,
            care_area: if care_area.trim().is_empty() {
                "Med-Surg".into()
            } else {
                care_area.into()
            },
            last: None,
        }
    }

    /// The phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The infusion state a heartbeat reports.
    pub fn infusion_state(&self) -> InfusionState {
        match self.phase {
            Phase::Idle => InfusionState::Idle,
            Phase::Programming { .. } => InfusionState::Programming,
            Phase::Running { .. } => InfusionState::Running,
            Phase::Paused { alarm: true, .. } => InfusionState::Alarm,
            Phase::Paused { alarm: false, .. } => InfusionState::Paused,
        }
    }

    /// Battery charge in percent.
    pub fn battery_pct(&self) -> u8 {
        (self.battery / 10).min(100) as u8
    }

    /// On mains power.
    pub fn on_mains(&self) -> bool {
        self.on_mains
    }

    /// The care area.
    pub fn care_area(&self) -> &str {
        &self.care_area
    }

    fn battery_tick(&mut self, dt_s: f64, out: &mut Vec<EventKind>, current: Option<u32>) {
        let tenths = (dt_s / 3600.0 * 100.0) as i64; // 10 %/h either way
        if self.on_mains {
            self.battery = (i64::from(self.battery) + tenths).min(1000) as u16;
            if self.battery > 300 {
                self.battery_alarmed = false;
            }
        } else {
            self.battery = (i64::from(self.battery) - tenths).max(0) as u16;
            if self.battery < 200 && !self.battery_alarmed {
                self.battery_alarmed = true;
                out.push(EventKind::Alarm {
                    alarm: AlarmKind::BatteryLow,
                    infusion_id: current.map(|id| format!("inf-{id}")),
                });
                // A nurse plugs it in.
                self.on_mains = true;
            }
        }
    }

    /// Advances the pump to simulated time `now` and returns what happened
    /// and how many simulated seconds until it should be asked again.
    pub fn step(&mut self, now: OffsetDateTime, lib: &PumpLibrary) -> (Vec<EventKind>, f64) {
        let dt = self
            .last
            .map_or(0.0, |l| (now - l).as_seconds_f64().max(0.0));
        self.last = Some(now);
        let act = activity(now.hour());
        let mut out = Vec::new();
        let current = match &self.phase {
            Phase::Idle => None,
            Phase::Programming { id, .. }
            | Phase::Running { id, .. }
            | Phase::Paused { id, .. } => Some(*id),
        };
        self.battery_tick(dt, &mut out, current);
        let r = &mut self.rng;
        let (phase, delay) = match self.phase.clone() {
            Phase::Idle => {
                if r.chance(0.06) {
                    // Moved to another area (unplugged for transport).
                    let to = (*r.pick(CARE_AREAS)).to_owned();
                    if to != self.care_area {
                        out.push(EventKind::CareAreaChanged {
                            from: Some(self.care_area.clone()),
                            to: to.clone(),
                        });
                        self.care_area = to;
                        self.on_mains = false;
                    }
                    (Phase::Idle, r.exp(1800.0 / act) + 60.0)
                } else if r.chance(0.5 * act) {
                    let id = self.next_infusion;
                    self.next_infusion += 1;
                    let runtime_s = 1800.0 + r.next_f64() * 6.0 * 3600.0;
                    let area = lib.care_area(&self.care_area);
                    let entries = area.map_or(&[][..], |a| a.entries.as_slice());
                    let weight = area.and_then(|a| a.weight_kg).map_or(70.0, |w| {
                        let (lo, hi) =
                            (f(Some(w.min)).unwrap_or(1.0), f(Some(w.max)).unwrap_or(1.0));
                        lo + (hi - lo) * (0.2 + 0.6 * r.next_f64())
                    });
                    let u = r.next_f64();
                    let basic = entries.is_empty() || u < 0.04;
                    let mut reason = None;
                    let (drug, dose) = if basic {
                        (
                            None,
                            DoseInput::Rate {
                                ml_per_h: dec(10.0 + r.next_f64() * 140.0).unwrap_or(Dec::ONE),
                            },
                        )
                    } else {
                        let e = r.pick(entries);
                        let (smin, smax) = (
                            f(e.soft_min).or(f(e.hard_min)),
                            f(e.soft_max).or(f(e.hard_max)),
                        );
                        let hmax = f(e.hard_max).or(smax).unwrap_or(1.0);
                        let smax = smax.unwrap_or(hmax);
                        let smin = smin.unwrap_or(smax * 0.1);
                        let target = if u < 0.90 {
                            smin + (smax - smin) * (0.2 + 0.6 * r.next_f64())
                        } else if u < 0.985 && hmax > smax {
                            reason = Some(*r.pick(OVERRIDE_REASONS));
                            smax + (hmax - smax) * (0.1 + 0.8 * r.next_f64())
                        } else if u >= 0.985 {
                            hmax * (1.1 + r.next_f64())
                        } else {
                            smin + (smax - smin) * 0.5
                        };
                        (
                            Some(DrugSelection {
                                drug: e.drug.as_str(),
                                concentration: e.concentration,
                            }),
                            DoseInput::Dose {
                                value: dec(target).unwrap_or(Dec::ONE),
                                unit: e.dosing_unit,
                            },
                        )
                    };
                    let iid = format!("inf-{id}");
                    let mut p = Programming {
                        drug,
                        dose,
                        weight_kg: dec((weight * 10.0).round() / 10.0),
                        bolus: None,
                        vtbi_ml: None,
                        override_reason: None,
                    };
                    // The pump asks for a reason only when a soft limit is crossed.
                    let mut verdict = lib.check(&self.care_area, &iid, &p);
                    if let Ok(v) = &verdict {
                        if matches!(v.outcome, CheckOutcome::SoftLimitNeedsOverride { .. }) {
                            p.override_reason = Some(reason.unwrap_or(OVERRIDE_REASONS[1]));
                            verdict = lib.check(&self.care_area, &iid, &p);
                        }
                    }
                    let Ok(verdict) = verdict else {
                        // An incoherent programming is refused at the keypad.
                        return (out, 60.0 + r.exp(300.0));
                    };
                    if verdict.event.is_none() {
                        return (out, 60.0 + r.exp(300.0));
                    }
                    let rate = match p.dose {
                        DoseInput::Rate { ml_per_h } => f(Some(ml_per_h)),
                        DoseInput::Dose { .. } => None,
                    };
                    out.push(EventKind::InfusionProgrammed(Infusion {
                        infusion_id: iid.clone(),
                        drug: p.drug.map(|d| d.drug.chars().take(128).collect()),
                        rate: rate.map(|v| qty(v, "mL/h")),
                        vtbi: rate.map(|v| qty(v * runtime_s / 3600.0, "mL")),
                        cause: None,
                    }));
                    let result = verdict.event.as_ref().map(|e| e.result);
                    if let Some(e) = verdict.event {
                        out.push(EventKind::DoseCheck(e));
                    }
                    if result == Some(DoseCheckResult::HardBlock) {
                        // The pump refuses; the clinician reprograms later.
                        (Phase::Idle, 60.0 + r.exp(600.0))
                    } else {
                        (Phase::Programming { id, runtime_s }, 20.0 + r.exp(60.0))
                    }
                } else {
                    (Phase::Idle, r.exp(2400.0 / act) + 60.0)
                }
            }
            Phase::Programming { id, runtime_s } => {
                out.push(EventKind::InfusionStarted(inf(id, None)));
                let p = Phase::Running {
                    id,
                    remaining_s: runtime_s,
                    next: RunNext::Decide,
                };
                (p, 0.0)
            }
            Phase::Running {
                id,
                remaining_s,
                next,
            } => {
                let remaining_s = (remaining_s - dt).max(0.0);
                match next {
                    RunNext::Decide => {
                        // Competing risks: an alarm, a user pause, or the end.
                        let to_alarm = r.exp(3.0 * 3600.0);
                        let to_pause = r.exp(6.0 * 3600.0 / act);
                        let (t, next) = if remaining_s <= to_alarm.min(to_pause) {
                            (remaining_s, RunNext::Complete)
                        } else if to_alarm <= to_pause {
                            (to_alarm, RunNext::Alarm)
                        } else {
                            (to_pause, RunNext::UserPause)
                        };
                        (
                            Phase::Running {
                                id,
                                remaining_s,
                                next,
                            },
                            t,
                        )
                    }
                    RunNext::Complete => {
                        out.push(EventKind::Alarm {
                            alarm: AlarmKind::InfusionComplete,
                            infusion_id: Some(format!("inf-{id}")),
                        });
                        out.push(EventKind::InfusionStopped(inf(
                            id,
                            Some(StopCause::Completed),
                        )));
                        (Phase::Idle, 60.0 + r.exp(900.0 / act))
                    }
                    RunNext::Alarm => {
                        let kind = if r.chance(0.75) {
                            AlarmKind::Occlusion
                        } else {
                            AlarmKind::AirInLine
                        };
                        out.push(EventKind::Alarm {
                            alarm: kind,
                            infusion_id: Some(format!("inf-{id}")),
                        });
                        out.push(EventKind::InfusionPaused(inf(id, Some(StopCause::Alarm))));
                        let p = Phase::Paused {
                            id,
                            remaining_s,
                            alarm: true,
                        };
                        (p, 30.0 + r.exp(240.0))
                    }
                    RunNext::UserPause => {
                        out.push(EventKind::InfusionPaused(inf(id, Some(StopCause::User))));
                        let p = Phase::Paused {
                            id,
                            remaining_s,
                            alarm: false,
                        };
                        (p, 60.0 + r.exp(600.0))
                    }
                }
            }
            Phase::Paused {
                id,
                remaining_s,
                alarm,
            } => {
                if r.chance(0.85) {
                    out.push(EventKind::InfusionStarted(inf(id, None)));
                    let p = Phase::Running {
                        id,
                        remaining_s,
                        next: RunNext::Decide,
                    };
                    (p, 0.0)
                } else {
                    let cause = if alarm {
                        StopCause::Alarm
                    } else {
                        StopCause::User
                    };
                    out.push(EventKind::InfusionStopped(inf(id, Some(cause))));
                    (Phase::Idle, 60.0 + r.exp(900.0 / act))
                }
            }
        };
        self.phase = phase;
        // Running re-decides right away after a start (delay 0 → 1 s).
        (out, delay.max(1.0))
    }
}

/// Checks that an event stream describes possible therapy: the checker the
/// property tests use (and a reviewer can read as the state machine).
pub fn check_transitions(events: &[EventKind]) -> Result<(), String> {
    #[derive(PartialEq, Clone, Copy, Debug)]
    enum S {
        Idle,
        Programmed,
        Checked,
        Running,
        Paused,
    }
    let mut s = S::Idle;
    let mut current: Option<String> = None;
    for (i, e) in events.iter().enumerate() {
        let bad = |what: &str| Err(format!("event {i}: {what} in state {s:?}: {e:?}"));
        let same = |inf: &Infusion| current.as_deref() == Some(inf.infusion_id.as_str());
        match e {
            EventKind::InfusionProgrammed(inf) => {
                if s != S::Idle {
                    return bad("programming while not idle");
                }
                current = Some(inf.infusion_id.clone());
                s = S::Programmed;
            }
            EventKind::DoseCheck(d) => {
                if s != S::Programmed || d.infusion_id.as_ref() != current.as_ref() {
                    return bad("dose check without programming");
                }
                s = if d.result == DoseCheckResult::HardBlock {
                    current = None;
                    S::Idle
                } else {
                    S::Checked
                };
            }
            EventKind::InfusionStarted(inf) => {
                if !(matches!(s, S::Checked | S::Paused) && same(inf)) {
                    return bad("start without a passed dose check or a pause");
                }
                s = S::Running;
            }
            EventKind::InfusionPaused(inf) => {
                if !(s == S::Running && same(inf)) {
                    return bad("pause while not running");
                }
                s = S::Paused;
            }
            EventKind::InfusionStopped(inf) => {
                if !(matches!(s, S::Running | S::Paused) && same(inf)) {
                    return bad("stop while not infusing");
                }
                s = S::Idle;
                current = None;
            }
            EventKind::CareAreaChanged { .. } if s != S::Idle => {
                return bad("moved during an infusion");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Which limit a test programming crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitCross {
    /// Above the hard maximum: the pump blocks it.
    Hard,
    /// Between the soft and the hard maximum: needs an override reason.
    Soft,
}

/// A library entry of `care_area` with the limits `cross` needs, and the
/// dose (in its dosing unit) and weight that cross them: what the attack
/// scenarios program through the pump's real dose check.
pub(crate) fn crossing_dose(
    lib: &PumpLibrary,
    care_area: &str,
    cross: LimitCross,
) -> Option<(pumpward_druglib::model::Entry, Dec, Option<Dec>)> {
    let area = lib.care_area(care_area)?;
    let weight = area
        .weight_kg
        .and_then(|w| f(Some(w.min)).zip(f(Some(w.max))))
        .map(|(lo, hi)| (lo + hi) / 2.0);
    area.entries.iter().find_map(|e| {
        let hmax = f(e.hard_max)?;
        let target = match cross {
            LimitCross::Hard => hmax * 1.5,
            LimitCross::Soft => {
                let smax = f(e.soft_max)?;
                if smax >= hmax {
                    return None;
                }
                smax + (hmax - smax) / 2.0
            }
        };
        Some((e.clone(), dec(target)?, weight.and_then(dec)))
    })
}
