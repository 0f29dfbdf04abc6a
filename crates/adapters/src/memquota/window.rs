//! One counter's state: a non-expiring counter, a fixed window or a
//! rolling window. Time is nanoseconds since the handler started.

use std::collections::VecDeque;

use super::{Algorithm, Limit};

/// The shortest rolling-window bucket, unless the window is shorter than
/// ten of them.
const MIN_BUCKET_NANOS: u64 = 100_000_000;
const MIN_BUCKETS: u64 = 10;
const MAX_BUCKETS: u64 = 600;

/// How a limit cuts time, worked out once per limit so that counters
/// need not carry it.
#[derive(Copy, Clone, Debug)]
pub(super) enum Shape {
    /// No window: a counter of units in flight.
    Counter,
    /// Windows of `window` nanoseconds.
    Fixed { window: u64 },
    /// Buckets of `bucket` nanoseconds; `span` buckets besides the current
    /// one are enough to cover a window.
    Rolling { bucket: u64, span: u64 },
}

impl Shape {
    pub(super) fn new(limit: &Limit, algorithm: Algorithm) -> Shape {
        let window = u64::try_from(limit.valid_duration.as_nanos()).unwrap_or(u64::MAX);
        if window == 0 {
            return Shape::Counter;
        }
        match algorithm {
            Algorithm::FixedWindow => Shape::Fixed { window },
            Algorithm::RollingWindow => {
                let n = (window / MIN_BUCKET_NANOS).clamp(MIN_BUCKETS, MAX_BUCKETS);
                let bucket = (window / n).max(1);
                Shape::Rolling {
                    bucket,
                    span: window.div_ceil(bucket),
                }
            }
        }
    }

    /// The window (fixed) or bucket (rolling) that `now` falls in.
    #[inline]
    pub(super) fn at(&self, now: u64) -> u64 {
        match *self {
            Shape::Counter => 0,
            Shape::Fixed { window } => now / window,
            Shape::Rolling { bucket, .. } => now / bucket,
        }
    }

    /// An empty window of this shape.
    pub(super) fn window(&self) -> Window {
        match self {
            Shape::Counter => Window::Counter { used: 0 },
            Shape::Fixed { .. } => Window::Fixed { index: 0, used: 0 },
            Shape::Rolling { .. } => Window::Rolling {
                newest: (0, 0),
                older: None,
                oldest: 0,
                used: 0,
            },
        }
    }

    fn span(&self) -> u64 {
        match *self {
            Shape::Rolling { span, .. } => span,
            _ => 0,
        }
    }
}

/// A rolling window's buckets before its newest, as (bucket index, units).
/// Boxed (one pointer, not a deque's four words): a window is mostly read
/// within its newest bucket, and the counter stays small.
#[allow(clippy::box_collection)]
type Older = Option<Box<VecDeque<(u64, i64)>>>;

/// A counter's state, small enough that a shard's table stays dense:
/// what every counter of a limit shares is in its [`Shape`].
#[derive(Debug)]
pub(super) enum Window {
    Counter {
        used: i64,
    },
    Fixed {
        index: u64,
        used: i64,
    },
    Rolling {
        /// The newest bucket holding units, as (bucket index, units), or
        /// units 0 when none does: kept inline, so that a call within one
        /// bucket touches no other memory.
        newest: (u64, i64),
        /// The buckets before `newest` holding units, oldest first.
        older: Older,
        /// The index of the oldest bucket holding units (meaningful while
        /// `used > 0`), so that [`Window::used`] reads `older` only when
        /// something has left the window.
        oldest: u64,
        used: i64,
    },
}

impl Window {
    /// Forgets what has left the window by `at` (from [`Shape::at`] of
    /// this window's shape); returns units in use.
    #[inline]
    pub(super) fn used(&mut self, at: u64, shape: &Shape) -> i64 {
        match self {
            Window::Counter { used } => *used,
            Window::Fixed { index, used } => {
                if at != *index {
                    *index = at;
                    *used = 0;
                }
                *used
            }
            Window::Rolling {
                newest,
                older,
                oldest,
                used,
            } => {
                let oldest_kept = at.saturating_sub(shape.span());
                if *used > 0 && *oldest < oldest_kept {
                    expire(newest, older, oldest, used, oldest_kept);
                }
                *used
            }
        }
    }

    /// Takes `amount` (> 0) at `at`, the value given to the
    /// [`Window::used`] that must come first.
    #[inline]
    pub(super) fn take(&mut self, amount: i64, at: u64) {
        match self {
            Window::Counter { used } | Window::Fixed { used, .. } => *used += amount,
            Window::Rolling {
                newest,
                older,
                oldest,
                used,
            } => {
                if newest.1 > 0 && newest.0 == at {
                    newest.1 += amount;
                } else {
                    start_bucket(newest, older, at, amount);
                }
                if *used == 0 {
                    *oldest = at;
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
                        && let Some(b) = older.as_mut().and_then(|o| o.pop_back())
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

/// Drops the buckets before `oldest_kept` (the oldest holding units is
/// before it). Each bucket is pushed and popped once: O(1) amortised.
#[cold]
fn expire(
    newest: &mut (u64, i64),
    older: &mut Older,
    oldest: &mut u64,
    used: &mut i64,
    oldest_kept: u64,
) {
    if let Some(older) = older {
        while let Some(&(b, n)) = older.front() {
            if b >= oldest_kept {
                *oldest = b;
                return;
            }
            *used -= n;
            older.pop_front();
        }
    }
    if newest.0 < oldest_kept {
        *used -= newest.1;
        newest.1 = 0;
    } else {
        *oldest = newest.0;
    }
}

/// Makes bucket `at` the newest, holding `amount`.
#[cold]
fn start_bucket(newest: &mut (u64, i64), older: &mut Older, at: u64, amount: i64) {
    if newest.1 > 0 {
        older.get_or_insert_default().push_back(*newest);
    }
    *newest = (at, amount);
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

    /// A window with its shape, driven by time as the handler does.
    struct W(Window, Shape);

    impl W {
        fn new(ms: u64, algorithm: Algorithm) -> W {
            let shape = Shape::new(&limit(ms), algorithm);
            W(shape.window(), shape)
        }
        fn used(&mut self, now: u64) -> i64 {
            self.0.used(self.1.at(now), &self.1)
        }
        fn take(&mut self, now: u64, amount: i64) {
            self.used(now);
            self.0.take(amount, self.1.at(now));
        }
        fn release(&mut self, amount: i64) -> i64 {
            self.0.release(amount)
        }
    }

    #[test]
    fn fixed_window_restarts_exactly() {
        let mut w = W::new(250, Algorithm::FixedWindow);
        w.take(0, 7);
        assert_eq!(w.used(249 * MS), 7);
        assert_eq!(w.used(250 * MS), 0);
    }

    #[test]
    fn rolling_window_never_returns_units_early() {
        // 1 s window: 10 buckets of 100 ms.
        let mut w = W::new(1000, Algorithm::RollingWindow);
        w.take(50 * MS, 3);
        w.take(950 * MS, 4);
        // Still inside a window of the first grant.
        assert_eq!(w.used(1049 * MS), 7);
        // The first grant's bucket [0, 100ms) has fully left the window.
        assert_eq!(w.used(1100 * MS), 4);
        assert_eq!(w.used(2000 * MS), 0);
        // Sub-second windows are not rounded up.
        let mut w = W::new(200, Algorithm::RollingWindow);
        w.take(0, 5);
        assert_eq!(w.used(199 * MS), 5);
        assert_eq!(w.used(220 * MS), 0);
    }

    #[test]
    fn release_newest_first() {
        let mut w = W::new(1000, Algorithm::RollingWindow);
        w.take(0, 3);
        w.take(500 * MS, 2);
        assert_eq!(w.release(4), 4);
        assert_eq!(w.used(500 * MS), 1);
        assert_eq!(w.release(5), 1);
        let mut c = W::new(0, Algorithm::RollingWindow);
        c.take(0, 2);
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
            let mut w = W::new(1000, Algorithm::RollingWindow);
            let mut m = Model::default();
            let mut now = 0;
            for (step_ms, amount) in ops {
                now += step_ms * MS;
                let used = w.used(now);
                proptest::prop_assert_eq!(used, m.used(now, 100 * MS, 10));
                if amount > 0 {
                    w.take(now, amount);
                    m.take(now, 100 * MS, amount);
                } else if amount < 0 {
                    proptest::prop_assert_eq!(w.release(-amount), m.release(-amount));
                }
            }
        }
    }
}
