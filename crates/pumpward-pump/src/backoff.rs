//! Reconnect back-off: exponential, jittered, bounded, and never shorter
//! than what the gateway asked for (`retry_after_s`).
//!
//! Defaults follow `docs/device-protocol.md` §8: from 1 s doubling to
//! 5 min with ±20 % jitter, reset after a session that lasted a minute.
//! Jitter matters more than the exact curve: after a gateway restart every
//! pump of a hospital reconnects at once, and jitter spreads them out.

use std::time::Duration;

use crate::rng::SplitMix64;

/// Back-off policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay (before jitter).
    pub max: Duration,
    /// Jitter as a fraction of the delay: the delay is drawn uniformly from
    /// `[d·(1−jitter), d·(1+jitter)]`. 0.2 is the protocol's ±20 %; 1.0 is
    /// "full jitter" (0 to 2d).
    pub jitter: f64,
    /// A session that lasted at least this long resets the delay.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.2,
            reset_after: Duration::from_secs(60),
        }
    }
}

/// Back-off state of one agent.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    /// A fresh back-off with its own jitter source.
    pub fn new(policy: BackoffPolicy, rng: SplitMix64) -> Self {
        Self {
            policy,
            attempt: 0,
            rng,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// Failures since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forget past failures (after a long enough session).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Called when a session ends: resets if it lasted long enough.
    pub fn session_ended(&mut self, lasted: Duration) {
        if lasted >= self.policy.reset_after {
            self.reset();
        }
    }

    /// The delay before the next attempt, at least `floor` (a refusal's
    /// `retry_after_s`), and counts the attempt.
    pub fn next_delay(&mut self, floor: Option<Duration>) -> Duration {
        let p = &self.policy;
        let base = (p.initial.as_secs_f64() * 2f64.powi(self.attempt.min(30) as i32))
            .min(p.max.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let j = p.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - j + 2.0 * j * self.rng.next_f64();
        let d = Duration::from_secs_f64((base * factor).max(0.0));
        match floor {
            Some(f) if f > d => f,
            _ => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_jitters_and_resets() {
        let policy = BackoffPolicy::default();
        let mut b = Backoff::new(policy, SplitMix64::new(1));
        let mut prev_base = 0.0;
        for i in 0..20 {
            let d = b.next_delay(None).as_secs_f64();
            let base = (2f64.powi(i)).min(300.0);
            assert!(d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9, "{i}: {d}");
            assert!(base >= prev_base);
            prev_base = base;
        }
        b.session_ended(Duration::from_secs(59));
        assert_eq!(b.attempt(), 20);
        b.session_ended(Duration::from_secs(60));
        assert_eq!(b.attempt(), 0);
        let d = b.next_delay(Some(Duration::from_secs(3600)));
        assert_eq!(d, Duration::from_secs(3600));
    }
}
