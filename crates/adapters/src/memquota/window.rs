//! One counter's state: a non-expiring counter, a fixed window or a
//! rolling window. Time is nanoseconds since the handler started.

use std::collections::VecDeque;

use super::{Algorithm, Limit};

/// The shortest rolling-window bucket, unless the window is shorter than
/// ten of them.
const MIN_BUCKET_NANOS: u64 = 100_000_000;
const MIN_BUCKETS: u64 = 10;
const MAX_BUCKETS: u64 = 600;

#[derive(Debug)]
pub(super) enum Window {
    Counter {
        used: i64,
    },
    Fixed {
        window: u64,
        index: u64,
        used: i64,
    },
    Rolling {
        bucket: u64,
        /// Buckets kept besides the current one: enough to cover a window.
        span: u64,
        /// The newest bucket holding units, as (bucket index, units), or
        /// units 0 when none does: kept inline, so that a call within one
        /// bucket touches no other memory.
        newest: (u64, i64),
        /// The buckets before `newest` holding units, oldest first.
        older: VecDeque<(u64, i64)>,
        /// The index of the oldest bucket holding units (meaningful while
        /// `used > 0`), so that [`Window::used`] reads `older` only when
        /// something has left the window.
        oldest: u64,
        used: i64,
        /// The bucket of the last [`Window::used`], so that
        /// [`Window::take`] need not divide again.
        current: u64,
    },
}

impl Window {
    pub(super) fn new(limit: &Limit, algorithm: Algorithm) -> Window {
        let window = u64::try_from(limit.valid_duration.as_nanos()).unwrap_or(u64::MAX);
        if window == 0 {
            return Window::Counter { used: 0 };
        }
        match algorithm {
            Algorithm::FixedWindow => Window::Fixed {
                window,
                index: 0,
                used: 0,
            },
            Algorithm::RollingWindow => {
                let n = (window / MIN_BUCKET_NANOS).clamp(MIN_BUCKETS, MAX_BUCKETS);
                let bucket = (window / n).max(1);
                Window::Rolling {
                    bucket,
                    span: window.div_ceil(bucket),
                    newest: (0, 0),
                    older: VecDeque::new(),
                    oldest: 0,
                    used: 0,
                    current: 0,
                }
            }
        }
    }

    /// Forgets what has left the window at `now`; returns units in use.
    pub(super) fn used(&mut self, now: u64) -> i64 {
        match self {
            Window::Counter { used } => *used,
            Window::Fixed {
                window,
                index,
                used,
            } => {
                let current = now / *window;
                if current != *index {
                    *index = current;
                    *used = 0;
                }
                *used
            }
            Window::Rolling {
                bucket,
                span,
                newest,
                older,
                oldest,
                used,
                current,
            } => {
                *current = now / *bucket;
                let oldest_kept = current.saturating_sub(*span);
                if *used == 0 || *oldest >= oldest_kept {
                    return *used;
                }
                // Each bucket is pushed and popped once: O(1) amortised.
                while let Some(&(b, n)) = older.front() {
                    if b >= oldest_kept {
                        *oldest = b;
                        return *used;
                    }
                    *used -= n;
                    older.pop_front();
                }
                if newest.0 < oldest_kept {
                    *used -= newest.1;
                    newest.1 = 0;
                } else {
                    *oldest = newest.0;
                }
                *used
            }
        }
    }

    /// Takes `amount` (> 0) at the time of the last [`Window::used`],
    /// which must come first.
    pub(super) fn take(&mut self, amount: i64) {
        match self {
            Window::Counter { used } | Window::Fixed { used, .. } => *used += amount,
            Window::Rolling {
                newest,
                older,
                oldest,
                used,
                current,
                ..
            } => {
                let b = *current;
                if newest.1 > 0 && newest.0 == b {
                    newest.1 += amount;
                } else {
                    if newest.1 > 0 {
                        older.push_back(*newest);
                    }
                    *newest = (b, amount);
                }
                if *used == 0 {
                    *oldest = b;
                }
                *used += amount;
            }
        }
    }

    /// Gives back up to `amount` (> 0), newest units first; returns what
    /// was given back. Call [`Window::used`] first.
    pub(super) fn release(&mut self, amount: i64) -> i64 {
        match self {
            Window::Counter { used } | Window::Fixed { used, .. } => {
                let r = amount.min(*used);
                *used -= r;
                r
            }
            Window::Rolling {
                newest,
                older,
                used,
                ..
            } => {
                let mut left = amount;
                while left > 0 && newest.1 > 0 {
                    let r = left.min(newest.1);
                    newest.1 -= r;
                    left -= r;
                    if newest.1 == 0
                        && let Some(b) = older.pop_back()
                    {
                        *newest = b;
                    }
                }
                // What is left still starts at `oldest`: only the newest
                // units went back.
                *used -= amount - left;
                amount - left
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    fn limit(ms: u64) -> Limit {
        Limit {
            max_amount: 10,
            valid_duration: Duration::from_millis(ms),
        }
    }

    #[test]
    fn fixed_window_restarts_exactly() {
        let mut w = Window::new(&limit(250), Algorithm::FixedWindow);
        w.used(0);
        w.take(7);
        assert_eq!(w.used(249 * MS), 7);
        assert_eq!(w.used(250 * MS), 0);
    }

    #[test]
    fn rolling_window_never_returns_units_early() {
        // 1 s window: 10 buckets of 100 ms.
        let mut w = Window::new(&limit(1000), Algorithm::RollingWindow);
        w.used(50 * MS);
        w.take(3);
        w.used(950 * MS);
        w.take(4);
        // Still inside a window of the first grant.
        assert_eq!(w.used(1049 * MS), 7);
        // The first grant's bucket [0, 100ms) has fully left the window.
        assert_eq!(w.used(1100 * MS), 4);
        assert_eq!(w.used(2000 * MS), 0);
        // Sub-second windows are not rounded up.
        let mut w = Window::new(&limit(200), Algorithm::RollingWindow);
        w.used(0);
        w.take(5);
        assert_eq!(w.used(199 * MS), 5);
        assert_eq!(w.used(220 * MS), 0);
    }

    #[test]
    fn release_newest_first() {
        let mut w = Window::new(&limit(1000), Algorithm::RollingWindow);
        w.used(0);
        w.take(3);
        w.used(500 * MS);
        w.take(2);
        assert_eq!(w.release(4), 4);
        assert_eq!(w.used(500 * MS), 1);
        assert_eq!(w.release(5), 1);
        let mut c = Window::new(&limit(0), Algorithm::RollingWindow);
        c.take(2);
        assert_eq!(c.release(5), 2);
        assert_eq!(c.used(u64::MAX), 0);
    }

    /// A plain list of buckets, oldest first, none empty: what the
    /// rolling window must agree with.
    #[derive(Default)]
    struct Model(Vec<(u64, i64)>);

    impl Model {
        fn used(&mut self, now: u64, bucket: u64, span: u64) -> i64 {
            let oldest_kept = (now / bucket).saturating_sub(span);
            self.0.retain(|&(b, _)| b >= oldest_kept);
            self.0.iter().map(|&(_, n)| n).sum()
        }
        fn take(&mut self, now: u64, bucket: u64, amount: i64) {
            match self.0.last_mut() {
                Some((b, n)) if *b == now / bucket => *n += amount,
                _ => self.0.push((now / bucket, amount)),
            }
        }
        fn release(&mut self, amount: i64) -> i64 {
            let mut left = amount;
            while left > 0 {
                let Some((_, n)) = self.0.last_mut() else {
                    break;
                };
                let r = left.min(*n);
                *n -= r;
                left -= r;
                if *n == 0 {
                    self.0.pop();
                }
            }
            amount - left
        }
    }

    proptest::proptest! {
        #[test]
        fn rolling_window_agrees_with_a_list_of_buckets(
            ops in proptest::collection::vec((0u64..400, -6i64..8), 1..200)
        ) {
            // 1 s window: buckets of 100 ms, 10 kept besides the current.
            let mut w = Window::new(&limit(1000), Algorithm::RollingWindow);
            let mut m = Model::default();
            let mut now = 0;
            for (step_ms, amount) in ops {
                now += step_ms * MS;
                let used = w.used(now);
                proptest::prop_assert_eq!(used, m.used(now, 100 * MS, 10));
                if amount > 0 {
                    w.take(amount);
                    m.take(now, 100 * MS, amount);
                } else if amount < 0 {
                    proptest::prop_assert_eq!(w.release(-amount), m.release(-amount));
                }
            }
        }
    }
}
