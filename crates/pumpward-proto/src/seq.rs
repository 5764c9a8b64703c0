//! The gateway's per-device sequence bookkeeping (pure).
//!
//! The gateway stores, per device (as named by its certificate), the highest
//! sequence number durably stored: `last_stored`. For each incoming batch
//! [`SequenceTracker::plan`] says what to do:
//!
//! - events with `seq ≤ last_stored` are **duplicates** (a replay after a lost
//!   ack): dropped and counted, never stored again;
//! - the remaining events (a suffix, since seqs strictly increase) are
//!   **new**: store them;
//! - numbers skipped before or between new events are **gaps**: record each
//!   as a gap event, in the same transaction as the new events;
//! - the **ack** to send once that transaction commits: `up_to_seq` = the
//!   highest seq of the batch if it is new, else `last_stored`.
//!
//! Then [`SequenceTracker::commit`] (after the commit, never before) moves
//! `last_stored` and hands back the [`Ack`]. A batch whose seqs do not
//! strictly increase is refused whole; a batch entirely at or below
//! `last_stored` is acknowledged without storing anything.

use std::ops::Range;

use crate::message::{Ack, PumpEvent, Refusal, RefusalCode, MAX_EVENTS_PER_BATCH, MAX_SEQ};

/// A missing range of sequence numbers, inclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// First missing.
    pub from: u64,
    /// Last missing.
    pub to: u64,
}

impl Gap {
    /// How many numbers are missing.
    pub fn len(&self) -> u64 {
        self.to - self.from + 1
    }

    /// Never true: a gap has at least one number (present for clippy's sake).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `seq` is inside the gap.
    pub fn contains(&self, seq: u64) -> bool {
        (self.from..=self.to).contains(&seq)
    }
}

/// What to do with one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// The `last_stored` the plan was computed against.
    pub base: u64,
    /// Indices (into the batch) of the events to store.
    pub store: Range<usize>,
    /// Events dropped as already stored.
    pub duplicates: usize,
    /// Missing ranges to record, ascending.
    pub gaps: Vec<Gap>,
    /// The ack to send after the store commits.
    pub ack: Ack,
}

impl BatchPlan {
    /// Nothing to store: the whole batch was already stored.
    pub fn is_replay(&self) -> bool {
        self.store.is_empty()
    }

    /// `last_stored` after the commit.
    pub fn new_last_stored(&self) -> u64 {
        self.ack.up_to_seq
    }
}

/// Why a batch or hello is refused by the sequence rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeqError {
    /// A batch without events.
    #[error("a batch has at least one event")]
    Empty,
    /// A batch with more than [`MAX_EVENTS_PER_BATCH`] events.
    #[error("{0} events; at most {MAX_EVENTS_PER_BATCH} per batch")]
    TooMany(usize),
    /// A sequence number outside 1..=[`MAX_SEQ`].
    #[error("events[{index}]: sequence number {seq} is outside 1..={MAX_SEQ}")]
    OutOfRange {
        /// Position in the batch.
        index: usize,
        /// The number.
        seq: u64,
    },
    /// Sequence numbers inside the batch do not strictly increase.
    #[error(
        "events[{index}]: sequence number {seq} is not greater than the previous event's {prev}"
    )]
    NotIncreasing {
        /// Position in the batch.
        index: usize,
        /// The previous event's number.
        prev: u64,
        /// This event's number.
        seq: u64,
    },
    /// The pump's counter is behind what the gateway already stored: its
    /// queue was reset or restored, or another device holds its certificate.
    #[error(
        "the pump's next sequence number {pump_next_seq} is behind the {last_stored} events already stored"
    )]
    Regression {
        /// `next_seq` from the hello.
        pump_next_seq: u64,
        /// The gateway's `last_stored`.
        last_stored: u64,
    },
    /// [`SequenceTracker::commit`] with a plan made against another state.
    #[error("plan was made for last_stored={plan_base}, the tracker is at {last_stored}")]
    StalePlan {
        /// The plan's base.
        plan_base: u64,
        /// The tracker's state.
        last_stored: u64,
    },
}

/// How long a pump waits after a sequence regression before trying again.
pub const REGRESSION_RETRY_AFTER_S: u32 = 3600;

impl SeqError {
    /// The refusal the gateway sends for this error.
    pub fn refusal(&self) -> Refusal {
        let (code, seq, expected, retry) = match *self {
            Self::NotIncreasing { seq, .. } => {
                (RefusalCode::SequenceNotIncreasing, Some(seq), None, None)
            }
            Self::OutOfRange { .. } | Self::Empty | Self::TooMany(_) => {
                (RefusalCode::InvalidMessage, None, None, None)
            }
            Self::Regression { last_stored, .. } => (
                RefusalCode::SequenceRegression,
                None,
                Some(last_stored + 1),
                Some(REGRESSION_RETRY_AFTER_S),
            ),
            Self::StalePlan { .. } => (RefusalCode::Internal, None, None, Some(5)),
        };
        Refusal {
            code,
            reason: crate::message::refusal_reason(&self.to_string()),
            fatal: code.is_fatal(),
            retry_after_s: retry,
            supported_versions: Vec::new(),
            expected_next_seq: expected,
            seq: seq.filter(|s| (1..=MAX_SEQ).contains(s)),
        }
    }
}

/// Per-device sequence state: the highest durably stored sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SequenceTracker {
    last_stored: u64,
}

impl SequenceTracker {
    /// The state read from the store (0 for a device that never sent events).
    pub fn new(last_stored: u64) -> Self {
        Self { last_stored }
    }

    /// The highest durably stored sequence number.
    pub fn last_stored(&self) -> u64 {
        self.last_stored
    }

    /// The `expected_next_seq` for the welcome.
    pub fn expected_next_seq(&self) -> u64 {
        self.last_stored + 1
    }

    /// Checks a hello's `next_seq`: the pump must have assigned at least as
    /// many numbers as the gateway stored. Returns `expected_next_seq`.
    pub fn on_hello(&self, pump_next_seq: u64) -> Result<u64, SeqError> {
        if pump_next_seq.saturating_sub(1) < self.last_stored {
            return Err(SeqError::Regression {
                pump_next_seq,
                last_stored: self.last_stored,
            });
        }
        Ok(self.expected_next_seq())
    }

    /// Plans a batch of events (see the module documentation).
    pub fn plan(&self, events: &[PumpEvent]) -> Result<BatchPlan, SeqError> {
        self.plan_iter(events.iter().map(|e| e.seq), events.len())
    }

    /// [`SequenceTracker::plan`] over bare sequence numbers.
    pub fn plan_seqs(&self, seqs: &[u64]) -> Result<BatchPlan, SeqError> {
        self.plan_iter(seqs.iter().copied(), seqs.len())
    }

    fn plan_iter(
        &self,
        seqs: impl Iterator<Item = u64>,
        len: usize,
    ) -> Result<BatchPlan, SeqError> {
        if len == 0 {
            return Err(SeqError::Empty);
        }
        if len > MAX_EVENTS_PER_BATCH {
            return Err(SeqError::TooMany(len));
        }
        let mut prev = 0u64;
        let mut first_new = None;
        let mut gaps = Vec::new();
        for (index, seq) in seqs.enumerate() {
            if seq == 0 || seq > MAX_SEQ {
                return Err(SeqError::OutOfRange { index, seq });
            }
            if seq <= prev {
                return Err(SeqError::NotIncreasing { index, prev, seq });
            }
            if seq > self.last_stored {
                // The first new event is compared with last_stored, later
                // ones with their predecessor.
                let before = if first_new.is_none() {
                    self.last_stored
                } else {
                    prev
                };
                if seq > before + 1 {
                    gaps.push(Gap {
                        from: before + 1,
                        to: seq - 1,
                    });
                }
                first_new.get_or_insert(index);
            }
            prev = seq;
        }
        let (store, duplicates, up_to) = match first_new {
            Some(i) => (i..len, i, prev),
            None => (len..len, len, self.last_stored),
        };
        Ok(BatchPlan {
            base: self.last_stored,
            store,
            duplicates,
            gaps,
            ack: Ack { up_to_seq: up_to },
        })
    }

    /// Records that the plan's events (and gaps) are durably stored; returns
    /// the ack to send. Call only after the store's commit.
    pub fn commit(&mut self, plan: &BatchPlan) -> Result<Ack, SeqError> {
        if plan.base != self.last_stored {
            return Err(SeqError::StalePlan {
                plan_base: plan.base,
                last_stored: self.last_stored,
            });
        }
        self.last_stored = self.last_stored.max(plan.ack.up_to_seq);
        Ok(Ack {
            up_to_seq: self.last_stored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn new_duplicate_and_gap() {
        let t = SequenceTracker::new(5);
        let p = t.plan_seqs(&[4, 5, 6, 9, 10, 12]).unwrap();
        assert_eq!(p.store, 2..6);
        assert_eq!(p.duplicates, 2);
        assert_eq!(
            p.gaps,
            vec![Gap { from: 7, to: 8 }, Gap { from: 11, to: 11 }]
        );
        assert_eq!(p.ack.up_to_seq, 12);
    }

    #[test]
    fn gap_before_the_first_new_event() {
        let p = SequenceTracker::new(0).plan_seqs(&[3, 4]).unwrap();
        assert_eq!(p.gaps, vec![Gap { from: 1, to: 2 }]);
        let p = SequenceTracker::new(2).plan_seqs(&[1, 5]).unwrap();
        assert_eq!((p.duplicates, p.store.clone()), (1, 1..2));
        assert_eq!(p.gaps, vec![Gap { from: 3, to: 4 }]);
    }

    #[test]
    fn replay_is_acknowledged_without_storing() {
        let mut t = SequenceTracker::new(10);
        let p = t.plan_seqs(&[3, 7, 10]).unwrap();
        assert!(p.is_replay());
        assert_eq!(p.duplicates, 3);
        assert!(p.gaps.is_empty());
        assert_eq!(t.commit(&p).unwrap().up_to_seq, 10);
        assert_eq!(t.last_stored(), 10);
    }

    #[test]
    fn refusals_are_precise() {
        let t = SequenceTracker::new(0);
        assert_eq!(t.plan_seqs(&[]), Err(SeqError::Empty));
        assert_eq!(
            t.plan_seqs(&[1, 3, 3]),
            Err(SeqError::NotIncreasing {
                index: 2,
                prev: 3,
                seq: 3
            })
        );
        assert_eq!(
            t.plan_seqs(&[2, 1]),
            Err(SeqError::NotIncreasing {
                index: 1,
                prev: 2,
                seq: 1
            })
        );
        assert_eq!(
            t.plan_seqs(&[0]),
            Err(SeqError::OutOfRange { index: 0, seq: 0 })
        );
        assert_eq!(
            t.plan_seqs(&[u64::MAX]),
            Err(SeqError::OutOfRange {
                index: 0,
                seq: u64::MAX
            })
        );
        assert_eq!(t.plan_seqs(&vec![1; 1001]), Err(SeqError::TooMany(1001)));
        let r = SeqError::NotIncreasing {
            index: 1,
            prev: 2,
            seq: 1,
        }
        .refusal();
        assert_eq!(
            (r.code, r.seq, r.fatal),
            (RefusalCode::SequenceNotIncreasing, Some(1), false)
        );
    }

    #[test]
    fn hello_regression() {
        let t = SequenceTracker::new(10);
        assert_eq!(t.on_hello(11), Ok(11));
        assert_eq!(t.on_hello(50), Ok(11));
        assert_eq!(
            t.on_hello(10),
            Err(SeqError::Regression {
                pump_next_seq: 10,
                last_stored: 10
            })
        );
        let r = t.on_hello(1).unwrap_err().refusal();
        assert_eq!(r.code, RefusalCode::SequenceRegression);
        assert!(r.fatal);
        assert_eq!(r.expected_next_seq, Some(11));
        assert_eq!(SequenceTracker::new(0).on_hello(1), Ok(1));
    }

    #[test]
    fn stale_plan_is_refused() {
        let mut t = SequenceTracker::new(0);
        let p1 = t.plan_seqs(&[1, 2]).unwrap();
        let p2 = t.plan_seqs(&[1, 2, 3]).unwrap();
        t.commit(&p1).unwrap();
        assert_eq!(
            t.commit(&p2),
            Err(SeqError::StalePlan {
                plan_base: 0,
                last_stored: 2
            })
        );
    }

    /// Strictly increasing batches of seqs in 1..=60.
    fn batches() -> impl Strategy<Value = Vec<Vec<u64>>> {
        proptest::collection::vec(proptest::collection::btree_set(1u64..=60, 1..12), 0..20)
            .prop_map(|v| v.into_iter().map(|s| s.into_iter().collect()).collect())
    }

    proptest! {
        /// Any order of any batches: nothing stored twice, the ack never goes
        /// down, and every delivered seq is stored or inside a recorded gap.
        #[test]
        fn arbitrary_delivery_accounts_for_everything(batches in batches()) {
            let mut t = SequenceTracker::new(0);
            let mut stored = BTreeSet::new();
            let mut gaps: Vec<Gap> = Vec::new();
            let mut last_ack = 0;
            for b in &batches {
                let plan = t.plan_seqs(b).unwrap();
                prop_assert_eq!(plan.duplicates + plan.store.len(), b.len());
                for &s in &b[plan.store.clone()] {
                    prop_assert!(stored.insert(s), "seq {} stored twice", s);
                    prop_assert!(!gaps.iter().any(|g| g.contains(s)));
                }
                for g in &plan.gaps {
                    prop_assert!(g.from <= g.to);
                    prop_assert!(!stored.iter().any(|&s| g.contains(s)));
                }
                gaps.extend(plan.gaps.iter().copied());
                let ack = t.commit(&plan).unwrap();
                prop_assert!(ack.up_to_seq >= last_ack);
                last_ack = ack.up_to_seq;
                prop_assert_eq!(Some(&last_ack).filter(|_| !stored.is_empty()), stored.iter().next_back());
                // Everything up to the ack is accounted for exactly once.
                for s in 1..=last_ack {
                    let n = usize::from(stored.contains(&s)) + gaps.iter().filter(|g| g.contains(s)).count();
                    prop_assert_eq!(n, 1, "seq {} accounted {} times", s, n);
                }
            }
            for b in &batches {
                for s in b {
                    prop_assert!(stored.contains(s) || gaps.iter().any(|g| g.contains(*s)));
                }
            }
        }

        /// A pump that resends from its oldest unacknowledged event, over a
        /// network that loses acks and replays old batches: every event is
        /// stored exactly once, in order, with no gap.
        #[test]
        fn pump_with_lost_acks_and_replays_loses_nothing(
            n in 1u64..200,
            steps in proptest::collection::vec((1usize..20, any::<bool>(), any::<bool>()), 1..200),
        ) {
            let mut t = SequenceTracker::new(0);
            let mut stored = Vec::new();
            let mut pump_acked = 0u64;
            let mut sent: Vec<Vec<u64>> = Vec::new();
            let mut last_ack = 0;
            // The given steps, then a network that delivers every ack.
            let mut step = steps.iter().copied().chain(std::iter::repeat((7, false, false)));
            while pump_acked < n {
                let (size, lose_ack, replay) = step.next().unwrap();
                let batch: Vec<u64> = if replay && !sent.is_empty() {
                    sent[size % sent.len()].clone()
                } else {
                    (pump_acked + 1..=n).take(size).collect()
                };
                sent.push(batch.clone());
                let plan = t.plan_seqs(&batch).unwrap();
                prop_assert!(plan.gaps.is_empty(), "gap {:?}", plan.gaps);
                stored.extend_from_slice(&batch[plan.store.clone()]);
                let ack = t.commit(&plan).unwrap();
                prop_assert!(ack.up_to_seq >= last_ack);
                last_ack = ack.up_to_seq;
                if !lose_ack {
                    pump_acked = pump_acked.max(ack.up_to_seq);
                }
            }
            prop_assert_eq!(stored, (1..=n).collect::<Vec<_>>());
        }
    }
}
