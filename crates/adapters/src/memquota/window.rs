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
        /// (bucket index, units granted in it), oldest first, none empty.
        buckets: VecDeque<(u64, i64)>,
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
                    buckets: VecDeque::new(),
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
                buckets,
                used,
                current,
            } => {
                *current = now / *bucket;
                let oldest_kept = current.saturating_sub(*span);
                // Nothing to drop while the oldest bucket is still kept:
                // each bucket is pushed and popped once, O(1) amortised.
                while let Some(&(b, n)) = buckets.front() {
                    if b >= oldest_kept {
                        break;
                    }
                    *used -= n;
                    buckets.pop_front();
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
                buckets,
                used,
                current,
                ..
            } => {
                let b = *current;
                match buckets.back_mut() {
                    Some((last, n)) if *last == b => *n += amount,
                    _ => buckets.push_back((b, amount)),
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
            Window::Rolling { buckets, used, .. } => {
                let mut left = amount;
                while left > 0 {
                    let Some((_, n)) = buckets.back_mut() else {
                        break;
                    };
                    let r = left.min(*n);
                    *n -= r;
                    left -= r;
                    if *n == 0 {
                        buckets.pop_back();
                    }
                }
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
}
