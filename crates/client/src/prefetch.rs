//! Quota prefetch: the original's "predicted window" algorithm, with a
//! bounded optimistic grant.
//!
//! The client keeps a pool of tokens the server granted (slots with an
//! amount and an expiry) and the amounts requested over the last prediction
//! window. Requests are decided locally from the pool; the pool is refilled
//! in the background with `max(amount, requested in the last window,
//! minimum)` asked with best effort.
//!
//! # Overshoot bound
//!
//! With an empty pool in open mode a request is granted optimistically and
//! the shortfall is subtracted from the next grants ("debt"). The debt is
//! capped at `min_prefetch`, so at every moment, per quota key,
//!
//! `granted locally <= granted by the server + min_prefetch`
//!
//! as long as the server answers. Under fail open, while the server cannot
//! be reached, requests are granted without a bound (as the original did).
//!
//! Over time: a token stays usable for the validity the server gave it (a
//! rate limit's window), so in theory one window's span can see the grants
//! of two windows. At steady load tokens are spent as they arrive; measured
//! against memquota's exact rolling window at 100/s with twice that asked,
//! no one-second span admitted more than 100 (the original admitted about
//! 130). With the default 500 ms closed-mode wait the prefetches alias with
//! the server's window and the client admits about 75/s; a 100 ms wait
//! admits the full 100/s for five times the prefetch calls (see
//! `BENCHMARKS.md`, "Client").

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Parameters of the prefetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefetchOptions {
    /// How far back requests are counted to predict demand (default 1 s).
    pub window: Duration,
    /// How many slots the window is counted in (default 20, 50 ms each).
    pub slots: usize,
    /// The least amount asked for at a time, and the cap on optimistic
    /// grants not yet covered by the server (default 10).
    pub min_prefetch: i64,
    /// After a partial grant, at most one prefetch per this long (default
    /// 500 ms).
    pub closed_wait: Duration,
}

impl Default for PrefetchOptions {
    fn default() -> PrefetchOptions {
        PrefetchOptions {
            window: Duration::from_millis(1000),
            slots: 20,
            min_prefetch: 10,
            closed_wait: Duration::from_millis(500),
        }
    }
}

/// The local decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    /// Granted locally.
    pub(crate) granted: bool,
    /// Ask the server for this much in the background.
    pub(crate) fetch: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Closed,
}

/// The prefetch state of one quota key.
#[derive(Debug)]
pub(crate) struct Prefetch {
    opts: PrefetchOptions,
    slot_len: Duration,
    base: Instant,
    pool: VecDeque<(i64, Instant)>,
    window: Vec<(u64, i64)>,
    mode: Mode,
    in_flight: bool,
    last_fetch: Option<Instant>,
    debt: i64,
    unreachable: bool,
    /// Totals, for the bound and for tests.
    pub(crate) local_granted: i64,
    pub(crate) server_granted: i64,
}

impl Prefetch {
    pub(crate) fn new(opts: PrefetchOptions, now: Instant) -> Prefetch {
        let slots = opts.slots.max(1);
        let slot_len = (opts.window / slots as u32).max(Duration::from_millis(1));
        Prefetch {
            slot_len,
            base: now,
            pool: VecDeque::new(),
            window: vec![(u64::MAX, 0); slots],
            mode: Mode::Open,
            in_flight: false,
            last_fetch: None,
            debt: 0,
            unreachable: false,
            local_granted: 0,
            server_granted: 0,
            opts,
        }
    }

    /// Decides a request of `amount` locally. `fail_open` allows granting
    /// while the server is known to be unreachable.
    pub(crate) fn request(&mut self, amount: i64, now: Instant, fail_open: bool) -> Step {
        let amount = amount.max(0);
        let requested = self.record(amount, now);
        self.pool.retain(|(_, exp)| *exp > now);
        let available: i64 = self.pool.iter().map(|(a, _)| *a).sum();
        let desired = requested.max(self.opts.min_prefetch);
        let wants = available < desired / 2 || available < amount;
        let may = !self.in_flight
            && (self.mode == Mode::Open
                || self
                    .last_fetch
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.opts.closed_wait));
        let fetch = (wants && may).then(|| {
            self.in_flight = true;
            self.last_fetch = Some(now);
            amount.max(desired)
        });
        let granted = if available >= amount {
            let mut need = amount;
            while need > 0 {
                let Some(front) = self.pool.front_mut() else {
                    break;
                };
                let take = front.0.min(need);
                front.0 -= take;
                need -= take;
                if front.0 == 0 {
                    self.pool.pop_front();
                }
            }
            true
        } else if self.unreachable && fail_open {
            true
        } else if self.mode == Mode::Open
            && available == 0
            && self.debt + amount <= self.opts.min_prefetch
        {
            // Cold start: grant now, take it out of the next grant.
            self.debt += amount;
            true
        } else {
            false
        };
        if granted && !(self.unreachable && fail_open) {
            self.local_granted += amount;
        }
        Step { granted, fetch }
    }

    /// The server granted `granted` of the `asked`, valid for `valid`.
    pub(crate) fn answered(&mut self, asked: i64, granted: i64, valid: Duration, now: Instant) {
        self.in_flight = false;
        self.unreachable = false;
        let granted = granted.max(0);
        self.server_granted += granted;
        self.mode = if granted >= asked {
            Mode::Open
        } else {
            Mode::Closed
        };
        let cover = granted.min(self.debt);
        self.debt -= cover;
        let left = granted - cover;
        // A grant with no stated lifetime is good for one prediction window.
        let valid = if valid.is_zero() {
            self.opts.window
        } else {
            valid
        };
        if left > 0 {
            self.pool.push_back((left, now + valid));
        }
    }

    /// The prefetch failed; `transport` when the server could not be reached.
    pub(crate) fn failed(&mut self, transport: bool) {
        self.in_flight = false;
        self.unreachable = transport;
    }

    /// Adds `amount` to the current slot; returns the window's total.
    fn record(&mut self, amount: i64, now: Instant) -> i64 {
        let slot =
            (now.saturating_duration_since(self.base).as_nanos() / self.slot_len.as_nanos()) as u64;
        let n = self.window.len() as u64;
        let cell = &mut self.window[(slot % n) as usize];
        if cell.0 != slot {
            *cell = (slot, 0);
        }
        cell.1 = cell.1.saturating_add(amount);
        self.window
            .iter()
            .filter(|(s, _)| *s != u64::MAX && *s + n > slot)
            .map(|(_, a)| *a)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn cold_start_grants_optimistically_and_reconciles() {
        let t0 = Instant::now();
        let mut p = Prefetch::new(PrefetchOptions::default(), t0);
        let s = p.request(1, t0, true);
        assert!(s.granted);
        assert_eq!(s.fetch, Some(10));
        // Debt capped at min_prefetch (10): nine more optimistic, then refused.
        for _ in 0..9 {
            let s = p.request(1, t0, true);
            assert!(s.granted);
            assert_eq!(s.fetch, None, "one prefetch in flight at a time");
        }
        assert!(!p.request(1, t0, true).granted);
        // The server grants 15: 10 cover the debt, 5 go to the pool.
        p.answered(10, 15, ms(1000), t0);
        for _ in 0..5 {
            assert!(p.request(1, t0 + ms(1), true).granted);
        }
        assert_eq!(p.local_granted, 15);
        assert!(p.local_granted <= p.server_granted + 10);
    }

    #[test]
    fn partial_grant_closes_and_limits_prefetch_rate() {
        let t0 = Instant::now();
        let mut p = Prefetch::new(PrefetchOptions::default(), t0);
        assert_eq!(p.request(1, t0, true).fetch, Some(10));
        p.answered(10, 3, ms(1000), t0); // partial: closed mode
        // Pool has 3-1 (debt 1 covered) = 2.
        assert!(p.request(1, t0 + ms(10), true).granted);
        assert!(p.request(1, t0 + ms(10), true).granted);
        // Empty pool in closed mode: refused, and no prefetch before 500 ms.
        let s = p.request(1, t0 + ms(100), true);
        assert!(!s.granted);
        assert_eq!(s.fetch, None);
        let s = p.request(1, t0 + ms(500), true);
        assert!(!s.granted, "closed mode never grants optimistically");
        assert!(s.fetch.is_some());
        p.answered(s.fetch.unwrap(), s.fetch.unwrap(), ms(1000), t0 + ms(510));
        assert!(
            p.request(1, t0 + ms(520), true).granted,
            "full grant reopens"
        );
    }

    #[test]
    fn expired_tokens_are_dropped() {
        let t0 = Instant::now();
        let mut p = Prefetch::new(PrefetchOptions::default(), t0);
        p.request(1, t0, true);
        p.answered(10, 20, ms(100), t0);
        assert!(p.request(5, t0 + ms(50), true).granted);
        p.request(0, t0 + ms(50), true);
        // Tokens expired; pool empty, mode open, debt 1 + 9 -> still optimistic up to the cap.
        let before = p.local_granted;
        let s = p.request(20, t0 + ms(200), true);
        assert!(!s.granted, "more than the optimistic cap");
        assert_eq!(p.local_granted, before);
    }

    #[test]
    fn demand_in_the_window_sizes_the_prefetch() {
        let t0 = Instant::now();
        let mut p = Prefetch::new(PrefetchOptions::default(), t0);
        p.request(1, t0, true);
        p.answered(10, 1000, ms(10_000), t0);
        // 100 requests over 500 ms, then the pool runs low.
        for i in 0..100 {
            p.request(1, t0 + ms(5 * i), true);
        }
        p.pool.clear();
        let s = p.request(1, t0 + ms(600), true);
        assert_eq!(s.fetch, Some(102), "the window's demand, not the minimum");
        // Old demand leaves the window.
        p.answered(102, 0, ms(1000), t0 + ms(600));
        let s = p.request(1, t0 + ms(3000), true);
        assert_eq!(s.fetch, Some(10));
    }

    #[test]
    fn unreachable_server_fails_open_only_when_asked() {
        let t0 = Instant::now();
        let mut p = Prefetch::new(PrefetchOptions::default(), t0);
        p.request(1, t0, true);
        p.failed(true);
        for _ in 0..50 {
            assert!(p.request(1, t0, true).granted);
        }
        let mut q = Prefetch::new(PrefetchOptions::default(), t0);
        q.request(10, t0, false);
        q.failed(true);
        assert!(!q.request(1, t0, false).granted);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Request(i64),
        Answer(i64),
        Fail,
        Advance(u64),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (1i64..6).prop_map(Op::Request),
            2 => (0i64..40).prop_map(Op::Answer),
            1 => Just(Op::Fail),
            2 => (0u64..400).prop_map(Op::Advance),
        ]
    }

    proptest::proptest! {
        /// The documented bound, against any interleaving of requests,
        /// grants (full, partial or none), failures and time: per key, the
        /// client never grants more than the server did plus `min_prefetch`.
        #[test]
        fn never_grants_more_than_the_server_plus_min_prefetch(
            ops in proptest::collection::vec(op(), 1..300),
            min_prefetch in 1i64..30,
        ) {
            let opts = PrefetchOptions { min_prefetch, ..PrefetchOptions::default() };
            let t0 = Instant::now();
            let mut now = t0;
            let mut p = Prefetch::new(opts, t0);
            let mut asked: Option<i64> = None;
            let mut local = 0i64;
            let mut server = 0i64;
            for op in ops {
                match op {
                    Op::Request(n) => {
                        let s = p.request(n, now, false);
                        if s.granted {
                            local += n;
                        }
                        if let Some(a) = s.fetch {
                            proptest::prop_assert!(asked.is_none(), "one prefetch in flight");
                            asked = Some(a);
                        }
                    }
                    Op::Answer(g) => {
                        if let Some(a) = asked.take() {
                            let g = g.min(a);
                            server += g;
                            p.answered(a, g, ms(1000), now);
                        }
                    }
                    Op::Fail => {
                        if asked.take().is_some() {
                            p.failed(false);
                        }
                    }
                    Op::Advance(d) => now += ms(d),
                }
                proptest::prop_assert!(
                    local <= server + min_prefetch,
                    "local {} server {} bound {}", local, server, min_prefetch
                );
                proptest::prop_assert_eq!(local, p.local_granted);
            }
        }
    }
}
