//! How a client behaves.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::cache::{CacheKeys, DEFAULT_CACHE_CAPACITY};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::keys::KeyPart;
use crate::prefetch::PrefetchOptions;

/// What the client answers when the server cannot be reached (or answers
/// `INTERNAL`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailPolicy {
    /// Let the request through (the original's default).
    #[default]
    Open,
    /// Deny it with `UNAVAILABLE` (or `DEADLINE_EXCEEDED` on a timeout).
    Close,
}

/// Retries of calls that failed for transport reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 0: none).
    pub max_retries: u32,
    /// Jittered exponential backoff between attempts (default 80 ms up to
    /// 1000 ms).
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            backoff: Backoff {
                base: Duration::from_millis(80),
                max: Duration::from_millis(1000),
            },
        }
    }
}

/// Report batching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportOptions {
    /// Send when this many reports are buffered (default 100).
    pub batch_size: usize,
    /// Send when the oldest buffered report is this old (default 1 s).
    pub max_age: Duration,
    /// Reports buffered at most; more are dropped and counted (default
    /// 10,000).
    pub max_buffered: usize,
}

impl Default for ReportOptions {
    fn default() -> ReportOptions {
        ReportOptions {
            batch_size: 100,
            max_age: Duration::from_secs(1),
            max_buffered: 10_000,
        }
    }
}

/// Quota handling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaOptions {
    /// Decide from prefetched tokens (default) or ask the server every time.
    pub prefetch: bool,
    /// The prefetch algorithm's parameters.
    pub params: PrefetchOptions,
    /// Attributes (and map keys) that, with the quota name, select a pool
    /// of tokens (default none: one pool per quota name). Must include
    /// every attribute the quota's dimensions read.
    pub keys: Vec<KeyPart>,
    /// Pools kept at most (default 10,000); the least recently used is
    /// dropped past it.
    pub max_pools: usize,
}

impl Default for QuotaOptions {
    fn default() -> QuotaOptions {
        QuotaOptions {
            prefetch: true,
            params: PrefetchOptions::default(),
            keys: Vec::new(),
            max_pools: 10_000,
        }
    }
}

/// Everything a [`crate::Client`] is built from; `Options::new(address)`
/// gives the defaults of the spec.
#[derive(Clone, Debug)]
pub struct Options {
    /// `host:port` of the Mixer (or an `http://` URI).
    pub address: String,
    /// Time allowed per remote call (default 1 s).
    pub timeout: Duration,
    /// Time allowed to connect (default 1 s).
    pub connect_timeout: Duration,
    /// Failure policy (default fail open).
    pub fail_policy: FailPolicy,
    /// Retries (default none).
    pub retry: RetryPolicy,
    /// Backoff between re-opens of a stream that broke without answering
    /// (default 50 ms up to 2 s).
    pub reopen_backoff: Backoff,
    /// Attribute contexts per stream (default 8; servers allow 64).
    pub contexts: usize,
    /// Calls waiting for an answer per stream at most (default 10,000).
    pub max_in_flight: usize,
    /// What checks are cached on (default the whole bag).
    pub cache_keys: CacheKeys,
    /// Cached answers at most (default 10,000).
    pub cache_capacity: usize,
    /// Uses of one cached answer at most (default unlimited; the
    /// Generation-1 wire carries no use count).
    pub cache_use_count: Option<u32>,
    /// Quota handling.
    pub quota: QuotaOptions,
    /// Report batching.
    pub report: ReportOptions,
    /// The clock of the cache and the quota prefetch.
    pub clock: Arc<dyn Clock>,
}

impl Options {
    /// The defaults, talking to `address`.
    pub fn new(address: impl Into<String>) -> Options {
        Options {
            address: address.into(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            fail_policy: FailPolicy::Open,
            retry: RetryPolicy::default(),
            reopen_backoff: Backoff {
                base: Duration::from_millis(50),
                max: Duration::from_secs(2),
            },
            contexts: 8,
            max_in_flight: 10_000,
            cache_keys: CacheKeys::WholeBag,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            cache_use_count: None,
            quota: QuotaOptions::default(),
            report: ReportOptions::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Every option problem, the first one found.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let bad = |field, reason: &str| {
            Err(Error::InvalidOption {
                field,
                reason: reason.to_string(),
            })
        };
        if self.timeout.is_zero() {
            return bad("timeout", "must be positive");
        }
        if self.contexts == 0 || self.contexts > 64 {
            return bad("contexts", "must be 1 to 64 (the server's default bound)");
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight", "must be positive");
        }
        if self.report.batch_size == 0 || self.report.max_buffered < self.report.batch_size {
            return bad(
                "report.batch_size",
                "must be positive and at most report.max_buffered",
            );
        }
        if self.quota.params.window.is_zero() || self.quota.params.slots == 0 {
            return bad("quota.params.window", "window and slots must be positive");
        }
        if self.quota.params.min_prefetch < 1 {
            return bad("quota.params.min_prefetch", "must be at least 1");
        }
        Ok(())
    }
}
