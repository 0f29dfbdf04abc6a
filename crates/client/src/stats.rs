//! The client's counters.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// A snapshot of the client's counters (each monotonic since creation).
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct Statistics {
            $( $(#[$doc])* pub $name: u64, )*
        }

        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $( pub(crate) $name: AtomicU64, )*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> Statistics {
                Statistics { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }
    };
}

counters! {
    /// Checks asked of the client.
    checks,
    /// Checks answered OK from the cache.
    check_cache_hits_allow,
    /// Checks answered with a denial from the cache.
    check_cache_hits_deny,
    /// Checks not in the cache that the server allowed.
    check_cache_misses_allow,
    /// Checks not in the cache that the server denied (or the policy
    /// decided, when it could not be reached).
    check_cache_misses_deny,
    /// Check requests sent to the server (retries included).
    remote_check_calls,
    /// Quota allocations asked of the client.
    quotas,
    /// Quota allocations decided from prefetched tokens.
    quota_cache_hits,
    /// Quota allocations sent to the server directly (no prefetch).
    remote_quota_calls,
    /// Prefetch requests sent to the server.
    prefetch_calls,
    /// Remote calls answered by the server.
    remote_successes,
    /// Remote calls that timed out.
    remote_timeouts,
    /// Remote calls that could not be sent (no stream, stream broke).
    remote_send_errors,
    /// Remote calls that failed otherwise (attributes not encodable).
    remote_other_errors,
    /// Retries of remote calls after a transport error.
    remote_retries,
    /// Reports asked of the client.
    reports,
    /// Report requests sent to the server.
    remote_report_calls,
    /// Reports dropped: buffer full, or the batch could not be delivered.
    report_drops,
    /// Streams opened (first opens and re-opens).
    streams_opened,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}
