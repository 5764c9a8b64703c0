//! Sliding-window counts: "at least N events within W".
//!
//! A [`Recent`] keeps the times of at most `cap` recent events, oldest
//! first, in a buffer allocated once. A rule with threshold N needs only the
//! N most recent times to know whether N happened within the window, so the
//! count it reports saturates at `cap` and memory per key stays bounded
//! whatever the event rate.
//!
//! Times are the engine's clock (microseconds of `received_at`). A time
//! earlier than the newest one kept is counted at the newest time: received
//! times are monotonic per pipeline, and clamping keeps the buffer sorted
//! instead of letting one late event shift every window.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The most times one window keeps (bounds a threshold and memory per key).
pub const MAX_WINDOW_CAP: usize = 10_000;

/// The recent times of one subject's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    cap: usize,
    times: VecDeque<i64>,
}

impl Recent {
    /// Keeps at most `cap` times (1 to [`MAX_WINDOW_CAP`]; clamped).
    pub fn new(cap: usize) -> Recent {
        let cap = cap.clamp(1, MAX_WINDOW_CAP);
        Recent {
            cap,
            times: VecDeque::with_capacity(cap),
        }
    }

    /// Changes the cap (a threshold edited in the configuration, or a
    /// snapshot restored under a new one), keeping the newest times.
    pub fn set_cap(&mut self, cap: usize) {
        let cap = cap.clamp(1, MAX_WINDOW_CAP);
        if cap == self.cap {
            return;
        }
        while self.times.len() > cap {
            self.times.pop_front();
        }
        self.times.reserve(cap.saturating_sub(self.times.len()));
        self.cap = cap;
    }

    /// Records an event at `t` and returns how many events (saturating at
    /// the cap) fall in `(t - window_us, t]`.
    pub fn push(&mut self, t: i64, window_us: i64) -> usize {
        let t = match self.times.back() {
            Some(&last) if t < last => last,
            _ => t,
        };
        if self.times.len() == self.cap {
            self.times.pop_front();
        }
        self.times.push_back(t);
        self.expire(t, window_us);
        self.times.len()
    }

    /// Drops times that have left the window ending at `now`.
    pub fn expire(&mut self, now: i64, window_us: i64) {
        let floor = now.saturating_sub(window_us);
        while let Some(&front) = self.times.front() {
            if front <= floor {
                self.times.pop_front();
            } else {
                break;
            }
        }
    }

    /// Times kept (after the last push or expiry).
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// Whether none are kept.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The oldest time kept: the start of the burst that was just counted.
    pub fn oldest(&self) -> Option<i64> {
        self.times.front().copied()
    }

    /// Forgets every time (after an alert, so that the next alert needs a
    /// fresh burst of N).
    pub fn clear(&mut self) {
        self.times.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_inside_the_window() {
        let mut r = Recent::new(10);
        assert_eq!(r.push(0, 100), 1);
        assert_eq!(r.push(50, 100), 2);
        // 0 is exactly window_us before 100: out (the window is half-open).
        assert_eq!(r.push(100, 100), 2);
        assert_eq!(r.push(151, 100), 2);
        assert_eq!(r.push(300, 100), 1);
    }

    #[test]
    fn saturates_at_the_cap() {
        let mut r = Recent::new(3);
        for t in 0..10 {
            r.push(t, 1000);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.oldest(), Some(7));
    }

    #[test]
    fn a_larger_cap_lets_the_count_reach_a_raised_threshold() {
        let mut r = Recent::new(2);
        r.push(1, 100);
        r.push(2, 100);
        r.set_cap(4);
        assert_eq!(r.push(3, 100), 3);
        assert_eq!(r.push(4, 100), 4);
        r.set_cap(1);
        assert_eq!(r.oldest(), Some(4));
    }

    #[test]
    fn a_late_time_counts_at_the_newest() {
        let mut r = Recent::new(5);
        r.push(100, 50);
        assert_eq!(r.push(10, 50), 2);
        assert_eq!(r.oldest(), Some(100));
    }
}
