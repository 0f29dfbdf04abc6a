//! How a dispatcher behaves where the semantics leave a choice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::{Clock, SystemClock};

/// Dispatcher options. [`Options::default`] gives the original Mixer's
/// behaviour plus a check cache.
#[derive(Clone, Debug)]
pub struct Options {
    /// Validity of a check no handler answered (default 1 minute).
    pub default_valid_duration: Duration,
    /// Use count of a check no handler answered (default 10000).
    pub default_valid_use_count: i32,
    /// How long a check or quota handler's pending answer may take before
    /// it counts as `UNAVAILABLE` (default 1 s). Answers given inline are
    /// never timed.
    pub handler_timeout: Duration,
    /// Per-handler timeouts by fully-qualified handler name, overriding
    /// [`handler_timeout`](Options::handler_timeout).
    pub handler_timeouts: HashMap<String, Duration>,
    /// A check rule whose `match` fails at run time (an attribute it needs
    /// is absent, with no `|` default) denies the check with
    /// `PERMISSION_DENIED`, naming the rule, instead of counting as no
    /// match (default false, as the original). Quota and report rules
    /// always count such a failure as no match.
    pub fail_closed_on_match_error: bool,
    /// A quota no rule handles is denied (`RESOURCE_EXHAUSTED`, granted 0)
    /// instead of granted in full (default false, as the original).
    pub deny_unhandled_quotas: bool,
    /// Report batches each handler's queue holds before new ones are
    /// dropped and counted (default 1024).
    pub report_queue_capacity: usize,
    /// Decisions kept by the check cache; 0 turns it off (default 10000).
    pub check_cache_capacity: usize,
    /// The namespace whose rules apply to every request, for configs
    /// loaded with [`Dispatcher::load`](crate::Dispatcher::load)
    /// (default `istio-system`).
    pub default_namespace: String,
    /// Where handlers and the cache read time (a `ManualClock` in tests).
    pub clock: Arc<dyn Clock>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            default_valid_duration: Duration::from_secs(60),
            default_valid_use_count: 10_000,
            handler_timeout: Duration::from_secs(1),
            handler_timeouts: HashMap::new(),
            fail_closed_on_match_error: false,
            deny_unhandled_quotas: false,
            report_queue_capacity: 1024,
            check_cache_capacity: 10_000,
            default_namespace: "istio-system".to_string(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl Options {
    /// The same options without a check cache.
    pub fn without_cache(mut self) -> Options {
        self.check_cache_capacity = 0;
        self
    }

    pub(crate) fn timeout_of(&self, handler: &str) -> Duration {
        if self.handler_timeouts.is_empty() {
            return self.handler_timeout;
        }
        self.handler_timeouts
            .get(handler)
            .copied()
            .unwrap_or(self.handler_timeout)
    }
}
