//! The clock as the check cache reads it: an atomic refreshed by a ticker
//! task, because a clock read costs as much as the rest of a cache hit on
//! some virtual machines. The ticker parks while the cache goes unused, so
//! that an idle server (or an idle proxy embedding the dispatcher) is not
//! woken 200 times a second for nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mixer_adapters::Clock;
use tokio::runtime::Handle;
use tokio::sync::Notify;

/// How stale the cache's view of time may be: entries are served up to
/// this long past their expiry (validities are seconds; the client side
/// caches by them too).
pub(crate) const CLOCK_RESOLUTION: Duration = Duration::from_millis(5);

/// Ticks without a reading after which the ticker parks (one second).
const IDLE_TICKS: u32 = 200;

/// A point in time as the cache sees it: nanoseconds since its clock's
/// base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(pub(crate) u64);

pub(crate) struct CoarseClock {
    base: Instant,
    offset_nanos: AtomicU64,
    clock: Arc<dyn Clock>,
    /// Read since the ticker's last tick.
    used: AtomicBool,
    /// The ticker is parked: a reading refreshes the time itself and
    /// wakes it.
    parked: AtomicBool,
    /// Shared with the ticker apart from the clock, so that a parked ticker
    /// does not keep the clock alive; the clock's drop wakes it to end.
    wake: Arc<Notify>,
}

impl CoarseClock {
    /// A clock reading `clock`, refreshed every [`CLOCK_RESOLUTION`] by a
    /// task on `runtime` (which needs its time driver) while it is read.
    pub(crate) fn start(clock: Arc<dyn Clock>, runtime: &Handle) -> Arc<CoarseClock> {
        let coarse = Arc::new(CoarseClock {
            base: clock.now(),
            offset_nanos: AtomicU64::new(0),
            clock,
            used: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
        });
        drop(runtime.spawn(tick(Arc::downgrade(&coarse), coarse.wake.clone())));
        coarse
    }

    /// Now, at most [`CLOCK_RESOLUTION`] behind.
    #[inline]
    pub(crate) fn now(&self) -> Tick {
        // A store only on the first reading after a tick.
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
        if self.parked.load(Ordering::SeqCst) {
            self.unpark();
        }
        Tick(self.offset_nanos.load(Ordering::Relaxed))
    }

    /// The first reading after the ticker parked: the time is read here,
    /// and the ticker woken to keep it from then on.
    #[cold]
    fn unpark(&self) {
        self.refresh();
        if self.parked.swap(false, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    fn refresh(&self) {
        let n = u64::try_from(
            self.clock
                .now()
                .saturating_duration_since(self.base)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        self.offset_nanos.fetch_max(n, Ordering::Relaxed);
    }
}

impl Drop for CoarseClock {
    fn drop(&mut self) {
        // A parked ticker wakes, finds the clock gone, and ends.
        self.wake.notify_one();
    }
}

async fn tick(clock: std::sync::Weak<CoarseClock>, wake: Arc<Notify>) {
    let mut every = tokio::time::interval(CLOCK_RESOLUTION);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut idle = 0;
    loop {
        every.tick().await;
        // Ends with the cache.
        let Some(c) = clock.upgrade() else { break };
        c.refresh();
        if c.used.swap(false, Ordering::Relaxed) {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle < IDLE_TICKS {
            continue;
        }
        // Registered before `parked` is published, so that a reading's
        // wake-up cannot come between the two and be lost.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        c.parked.store(true, Ordering::SeqCst);
        drop(c);
        woken.await;
        idle = 0;
        every.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixer_adapters::ManualClock;

    fn parked(c: &CoarseClock) -> bool {
        c.parked.load(Ordering::SeqCst)
    }

    /// Lets the ticker run for `d` of (paused) runtime time.
    async fn run_for(d: Duration) {
        let end = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(CLOCK_RESOLUTION).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_while_read_parks_when_idle_and_a_reading_is_fresh_at_once() {
        let manual = Arc::new(ManualClock::new());
        let c = CoarseClock::start(manual.clone(), &Handle::current());
        let ms = |t: Tick| t.0 / 1_000_000;

        // Read now and then: the ticker keeps the time, never parks.
        for _ in 0..400 {
            manual.advance(CLOCK_RESOLUTION);
            run_for(CLOCK_RESOLUTION).await;
            c.now();
        }
        assert!(!parked(&c));
        assert!(ms(c.now()) >= 2000 - 5, "{:?}", c.now());

        // Not read for more than a second: parked, and the time it holds
        // goes stale.
        run_for(Duration::from_millis(1100)).await;
        assert!(parked(&c));
        manual.advance(Duration::from_secs(30));
        run_for(Duration::from_millis(100)).await;
        // The first reading is fresh anyway, and wakes the ticker.
        assert_eq!(ms(c.now()), 32_000);
        assert!(!parked(&c));
        manual.advance(Duration::from_millis(500));
        run_for(Duration::from_millis(10)).await;
        let t = ms(c.now());
        assert!((32_495..=32_500).contains(&t), "{t}: ticking again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_ticker_ends_with_its_clock() {
        let c = CoarseClock::start(Arc::new(ManualClock::new()), &Handle::current());
        run_for(Duration::from_millis(1100)).await;
        assert!(parked(&c));
        let wake = c.wake.clone();
        drop(c);
        run_for(Duration::from_millis(20)).await;
        // Only this test holds the Notify now: the task that shared it ended.
        assert_eq!(Arc::strong_count(&wake), 1);
    }
}
