//! Time as handlers see it, so that tests can move it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use mixer_attributes::Timestamp;

/// A source of time. Handlers read time only through the clock of their
/// [`BuildEnv`](crate::BuildEnv), so that quota windows, list expiry and
/// series expiry can be tested by moving a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Monotonic now, for windows and expiry.
    fn now(&self) -> Instant;
    /// Wall-clock now, for timestamps written out.
    fn wall(&self) -> SystemTime;
    /// Wall-clock now as a [`Timestamp`].
    fn timestamp(&self) -> Timestamp {
        let d = self
            .wall()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::new(d.as_secs() as i64, d.subsec_nanos() as i32).unwrap_or_default()
    }
}

/// The real clock.
#[derive(Copy, Clone, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to: starts at the real time of its
/// creation and then advances by [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    wall_start: SystemTime,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the current time.
    pub fn new() -> ManualClock {
        ManualClock {
            start: Instant::now(),
            wall_start: SystemTime::now(),
            offset_nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// How far the clock has been moved since its creation.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }
    fn wall(&self) -> SystemTime {
        self.wall_start + self.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new();
        let (t0, w0) = (c.now(), c.wall());
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now() - t0, Duration::from_millis(1500));
        assert_eq!(
            c.wall().duration_since(w0).unwrap(),
            Duration::from_millis(1500)
        );
        assert!(c.timestamp().seconds() > 0);
    }
}
