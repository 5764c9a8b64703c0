//! Login throttling: when too many wrong passwords or codes lock an account.
//!
//! Online guessing is the attack a 12-character minimum and a breach list
//! cannot stop on their own; NIST SP 800-63B (rate limiting: rev. 3 §5.2.2,
//! rev. 4 §3.2.2) asks for a limit on consecutive failed attempts per
//! account. A per-account lockout is used rather than per-address throttling
//! because attackers rotate addresses and hospitals put whole wards behind
//! one NAT address.
//!
//! The policy is a pure function of the failure times so that the store only
//! has to keep those times (per account, since its last successful login) and
//! the rule can be tested at its boundaries without a clock.
//!
//! The lockout is temporary on purpose: a permanent lock would hand anyone who
//! knows a username a way to shut a pharmacist or a biomed engineer out of
//! the system during an incident.

use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// How many failures, over how long, lock an account, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures within `window` that lock the account. 0 is treated as 1.
    pub max_failures: u32,
    /// How close together the failures must be to count together.
    pub window: Duration,
    /// How long a lock lasts, counted from the failure that caused it.
    pub lockout: Duration,
}

impl Default for ThrottlePolicy {
    /// 5 failures within 15 minutes lock the account for 15 minutes, which
    /// allows an attacker at most about 20 guesses an hour per account.
    fn default() -> Self {
        ThrottlePolicy {
            max_failures: 5,
            window: Duration::minutes(15),
            lockout: Duration::minutes(15),
        }
    }
}

impl ThrottlePolicy {
    /// When the lockout ends, if the account is locked at `now`; else `None`.
    ///
    /// `recent_failures` are the times of the account's failed logins since
    /// its last successful one, in any order (duplicates count separately).
    ///
    /// The rule: a failure at time `f` *triggers* a lock when at least
    /// `max_failures` failures (itself included) fall in the window
    /// `(f - window, f]`, i.e. less than `window` before it. Each trigger
    /// locks the account until `f + lockout`. The account is locked at `now`
    /// when the latest such end is after `now` (the end instant itself is
    /// already unlocked).
    ///
    /// In the common case the trigger is the latest failure, and the answer
    /// is "latest failure + lockout". Taking the latest end over *all*
    /// triggers, not only over the latest failure, is what makes the rule
    /// monotone: a failure recorded while the account is locked can extend
    /// the lockout but never shortens it, even when older failures have
    /// meanwhile slid out of the window. (While locked, the caller refuses a
    /// login without checking its password; whether it records that refusal
    /// as a failure is its choice; recording it lets someone who keeps
    /// hammering keep the account locked, which they could do anyway with
    /// five guesses every `lockout`.)
    ///
    /// Times past the representable range saturate, so this never panics.
    pub fn locked_until(
        &self,
        recent_failures: &[OffsetDateTime],
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let needed = self.max_failures.max(1) as usize;
        if recent_failures.len() < needed {
            return None;
        }
        let mut times = recent_failures.to_vec();
        times.sort_unstable();
        // Two pointers: `start` is the first failure inside the window ending
        // at `times[i]`.
        let mut start = 0;
        let mut end: Option<OffsetDateTime> = None;
        for (i, &f) in times.iter().enumerate() {
            while f - times[start] >= self.window && start < i {
                start += 1;
            }
            let in_window = if f - times[start] < self.window {
                i - start + 1
            } else {
                // Only possible for a zero or negative window: nothing fits.
                0
            };
            if in_window >= needed {
                let until = saturating_add(f, self.lockout);
                end = Some(end.map_or(until, |e| e.max(until)));
            }
        }
        end.filter(|&e| now < e)
    }
}

/// `t + d`, clamped to the range `OffsetDateTime` can represent.
fn saturating_add(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.checked_add(d).unwrap_or_else(|| {
        let limit = if d.is_negative() {
            PrimitiveDateTime::MIN
        } else {
            PrimitiveDateTime::MAX
        };
        limit.assume_utc()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-03-01 09:00 UTC);

    fn at(minutes: i64) -> OffsetDateTime {
        T0 + Duration::minutes(minutes)
    }

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy::default()
    }

    #[test]
    fn defaults() {
        let p = policy();
        assert_eq!(p.max_failures, 5);
        assert_eq!(p.window, Duration::minutes(15));
        assert_eq!(p.lockout, Duration::minutes(15));
    }

    #[test]
    fn no_failures_no_lock() {
        assert_eq!(policy().locked_until(&[], T0), None);
    }

    #[test]
    fn four_failures_do_not_lock_five_do() {
        let four = [at(0), at(1), at(2), at(3)];
        assert_eq!(policy().locked_until(&four, at(3)), None);
        let five = [at(0), at(1), at(2), at(3), at(4)];
        assert_eq!(policy().locked_until(&five, at(4)), Some(at(19)));
    }

    #[test]
    fn order_does_not_matter() {
        let five = [at(4), at(0), at(3), at(1), at(2)];
        assert_eq!(policy().locked_until(&five, at(5)), Some(at(19)));
    }

    #[test]
    fn lock_ends_exactly_at_its_end() {
        let five = [at(0), at(1), at(2), at(3), at(4)];
        let p = policy();
        let just_before = at(19) - Duration::nanoseconds(1);
        assert_eq!(p.locked_until(&five, just_before), Some(at(19)));
        assert_eq!(p.locked_until(&five, at(19)), None);
        assert_eq!(p.locked_until(&five, at(60)), None);
    }

    #[test]
    fn window_is_half_open() {
        let p = policy();
        // First and fifth failure exactly 15 minutes apart: not within the window.
        let spread = [at(0), at(5), at(10), at(12), at(15)];
        assert_eq!(p.locked_until(&spread, at(15)), None);
        // One nanosecond closer: locked.
        let mut close = spread;
        close[0] += Duration::nanoseconds(1);
        assert_eq!(p.locked_until(&close, at(15)), Some(at(30)));
    }

    #[test]
    fn same_instant_failures_count_separately() {
        let burst = [at(0); 5];
        assert_eq!(policy().locked_until(&burst, at(0)), Some(at(15)));
    }

    #[test]
    fn slow_guessing_never_locks() {
        // One failure every 4 minutes: at most 4 in any 15-minute window.
        let slow: Vec<_> = (0..50).map(|i| at(4 * i)).collect();
        assert_eq!(policy().locked_until(&slow, at(200)), None);
    }

    #[test]
    fn failures_during_a_lock_extend_it_and_never_release_it() {
        let p = policy();
        let mut f = vec![at(0), at(1), at(2), at(3), at(4)];
        assert_eq!(p.locked_until(&f, at(5)), Some(at(19)));
        // A failure at minute 18 has only minute 4 with it in its window, so
        // it triggers nothing itself, but the lock from minute 4 holds.
        f.push(at(18));
        assert_eq!(p.locked_until(&f, at(18)), Some(at(19)));
        // Five more failures shortly after the lock ends lock again.
        f.extend([at(19), at(20), at(21)]);
        assert_eq!(p.locked_until(&f, at(21)), None);
        f.push(at(22));
        assert_eq!(p.locked_until(&f, at(22)), Some(at(37)));
    }

    #[test]
    fn burst_in_the_middle_of_a_long_history() {
        let p = policy();
        let mut f: Vec<_> = (0..10).map(|i| at(20 * i)).collect();
        f.extend([at(100), at(101), at(102), at(103)]); // with at(100) twice: 5 in window
        assert_eq!(p.locked_until(&f, at(104)), Some(at(118)));
        assert_eq!(p.locked_until(&f, at(118)), None);
    }

    #[test]
    fn zero_max_failures_means_one() {
        let p = ThrottlePolicy {
            max_failures: 0,
            ..policy()
        };
        assert_eq!(p.locked_until(&[at(0)], at(1)), Some(at(15)));
        assert_eq!(p.locked_until(&[], at(1)), None);
    }

    #[test]
    fn degenerate_durations_do_not_panic() {
        let f = [at(0); 6];
        let zero_window = ThrottlePolicy {
            window: Duration::ZERO,
            ..policy()
        };
        assert_eq!(zero_window.locked_until(&f, at(0)), None);
        let no_lockout = ThrottlePolicy {
            lockout: Duration::ZERO,
            ..policy()
        };
        assert_eq!(no_lockout.locked_until(&f, at(0)), None);
        let huge = ThrottlePolicy {
            lockout: Duration::MAX,
            ..policy()
        };
        let until = huge.locked_until(&f, at(0)).expect("locked");
        assert_eq!(until, PrimitiveDateTime::MAX.assume_utc());
        let negative = ThrottlePolicy {
            window: Duration::MIN,
            lockout: Duration::MIN,
            ..policy()
        };
        assert_eq!(negative.locked_until(&f, at(0)), None);
    }

    #[test]
    fn offsets_compare_as_instants() {
        let paris = time::UtcOffset::from_hms(1, 0, 0).unwrap();
        let f = [
            at(0),
            at(1).to_offset(paris),
            at(2),
            at(3).to_offset(paris),
            at(4),
        ];
        assert_eq!(policy().locked_until(&f, at(5)), Some(at(19)));
    }

    fn arb_policy() -> impl Strategy<Value = ThrottlePolicy> {
        (0u32..8, 0i64..3_600, 0i64..3_600).prop_map(|(n, w, l)| ThrottlePolicy {
            max_failures: n,
            window: Duration::seconds(w),
            lockout: Duration::seconds(l),
        })
    }

    proptest! {
        #[test]
        fn adding_a_failure_never_shortens_a_lockout(
            policy in arb_policy(),
            failures in proptest::collection::vec(0i64..3_600, 0..20),
            extra_after_latest in any::<bool>(),
            extra in 0i64..3_600,
            now in 0i64..3_600,
        ) {
            let secs = |s: i64| T0 + Duration::seconds(s);
            let before: Vec<_> = failures.iter().map(|&s| secs(s)).collect();
            let latest = failures.iter().copied().max().unwrap_or(0);
            // Half the cases add the new failure after all the others, and
            // look at a `now` after it: the case where older failures may
            // have slid out of the window while their lock still runs.
            let (extra, now) = if extra_after_latest {
                (latest + extra / 2, latest + extra / 2 + now / 2)
            } else {
                (extra, now)
            };
            let mut after = before.clone();
            after.push(secs(extra));
            let now = secs(now);
            let a = policy.locked_until(&before, now);
            let b = policy.locked_until(&after, now);
            // None < Some(_), and later ends compare greater.
            prop_assert!(b >= a, "before {:?}, after {:?}", a, b);
        }

        #[test]
        fn a_lock_ends_after_now_and_no_later_than_latest_failure_plus_lockout(
            policy in arb_policy(),
            failures in proptest::collection::vec(0i64..7_200, 0..20),
            now in 0i64..9_000,
        ) {
            let f: Vec<_> = failures.iter().map(|&s| T0 + Duration::seconds(s)).collect();
            let now = T0 + Duration::seconds(now);
            if let Some(until) = policy.locked_until(&f, now) {
                prop_assert!(until > now);
                let latest = *f.iter().max().unwrap();
                prop_assert!(until <= latest + policy.lockout);
                prop_assert!(f.len() >= policy.max_failures.max(1) as usize);
            }
        }

        #[test]
        fn matches_a_brute_force_count(
            policy in arb_policy(),
            failures in proptest::collection::vec(0i64..7_200, 0..20),
            now in 0i64..9_000,
        ) {
            let f: Vec<_> = failures.iter().map(|&s| T0 + Duration::seconds(s)).collect();
            let now = T0 + Duration::seconds(now);
            let needed = policy.max_failures.max(1) as usize;
            let expected = f
                .iter()
                .filter(|&&t| {
                    f.iter().filter(|&&g| g <= t && t - g < policy.window).count() >= needed
                })
                .map(|&t| t + policy.lockout)
                .max()
                .filter(|&e| now < e);
            prop_assert_eq!(policy.locked_until(&f, now), expected);
        }
    }
}
