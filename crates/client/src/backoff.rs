//! Jittered exponential backoff, for retries and stream re-opens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Exponential backoff with full jitter between half and all of the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first step.
    pub base: Duration,
    /// No step is longer than this.
    pub max: Duration,
}

impl Backoff {
    /// The delay before attempt `attempt + 1` after `attempt` failures
    /// (`attempt` 0 is the first retry): `base * 2^attempt`, capped at `max`,
    /// then scaled by a random factor in [0.5, 1.0] so that many clients
    /// that failed together do not come back together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let step = self
            .base
            .checked_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = 0.5 + (next_random() as f64 / u64::MAX as f64) * 0.5;
        step.mul_f64(jitter)
    }
}

/// A xorshift generator seeded from the clock: jitter needs spread, not
/// cryptographic quality, and a dependency for it would be more than it is.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps_with_jitter() {
        let b = Backoff {
            base: Duration::from_millis(80),
            max: Duration::from_millis(1000),
        };
        for _ in 0..100 {
            let d0 = b.delay(0);
            assert!(d0 >= Duration::from_millis(40) && d0 <= Duration::from_millis(80));
            let d2 = b.delay(2);
            assert!(d2 >= Duration::from_millis(160) && d2 <= Duration::from_millis(320));
            let d10 = b.delay(10);
            assert!(d10 >= Duration::from_millis(500) && d10 <= Duration::from_millis(1000));
            assert!(b.delay(u32::MAX) <= Duration::from_millis(1000));
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| b.delay(3)).collect();
        assert!(spread.len() > 1, "jitter must vary delays");
    }
}
