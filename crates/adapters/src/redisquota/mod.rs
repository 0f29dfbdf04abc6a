//! The `redisquota` adapter: rate limits shared by every Mixer replica,
//! kept in Redis (template `quota`).
//!
//! | param | default | rule |
//! |---|---|---|
//! | `quotas[].name` | required | the quota instance's fully-qualified name; unique; at least one quota |
//! | `quotas[].maxAmount` | required | >= 0 |
//! | `quotas[].validDuration` | required | > 0 |
//! | `quotas[].bucketDuration` | 0s | ROLLING_WINDOW: > 0 and < `validDuration` |
//! | `quotas[].rateLimitAlgorithm` | FIXED_WINDOW | or ROLLING_WINDOW |
//! | `quotas[].overrides[].dimensions` | required | non-empty map of strings |
//! | `quotas[].overrides[].maxAmount` | required | > 0 |
//! | `redisServerUrl` | `localhost:6379` | `host:port` or `redis://[user:pass@]host:port[/db]` |
//! | `connectionPoolSize` | 10 | 1 to 1000 connections, used round-robin |
//! | `failurePolicy` | `grant` | Better: `grant`, `deny` or `error`: the answer while Redis is down or slow |
//! | `callTimeout` | 500ms | Better: the longest one allocation may take, > 0 |
//!
//! Each allocation runs, atomically, in a server-side Lua script
//! (`allocate.lua`, fixed or rolling window) called with EVALSHA (loaded on
//! first use and again after NOSCRIPT, e.g. after a Redis restart).
//! Windows follow the Redis server's clock, so all replicas agree. Every key
//! the script writes has a TTL (Better: the original left the rolling
//! window's sorted set without one).
//!
//! Request coalescing (Better: the original made one call per allocation).
//! Callers are spread over the pooled connections round robin. A caller
//! that finds its connection free and nothing queued for it sends its
//! allocation at once, itself: a batch of one, no timer, no added latency.
//! Callers that find it busy queue (bounded), and the connection's worker,
//! as soon as the connection is free, sends what is queued, up to
//! [`MAX_BATCH`] allocations, as one script call that runs them in order,
//! each as if alone, and answers each caller; it keeps the connection while
//! callers keep queuing. So under load one round trip and one script call
//! serve many allocations. What stays per allocation:
//! - its decision, deduplication record, override and TTLs: a retry with
//!   the same id in the same batch gets the first answer;
//! - its failure: an item Redis refuses (a key of another type) fails
//!   alone; a batch that fails or takes longer than `callTimeout` fails its
//!   callers, each answered by `failurePolicy`;
//! - its timeout: each caller waits at most `callTimeout` from the moment it
//!   asks, however long the batch ahead of it takes; callers that gave up
//!   are dropped from the queue unsent, so Redis is not charged for them;
//! - bounded memory: at most [`MAX_QUEUED_PER_CONNECTION`] allocations
//!   wait per connection; beyond that a call is answered by
//!   `failurePolicy` at once (counter `queue_full`);
//! - liveness: the worker waits for a busy connection at most half of
//!   `callTimeout`, then sends anyway (the connection multiplexes), so a
//!   caller's future left unpolled while holding it stalls no one.
//!
//! The keys of a batch may live anywhere, so the adapter needs one Redis
//! server (or a primary), not Redis Cluster.
//!
//! Decisions:
//! - Exhausted: granted 0 and `RESOURCE_EXHAUSTED`; with best effort, what
//!   is left. A non-positive amount is granted 0 without a call.
//! - The first override whose every dimension matches (as strings) sets
//!   `maxAmount`.
//! - Deduplication by (id, quota key) for the rest of the window.
//! - Redis unreachable, failing, or slower than `callTimeout`: with
//!   `grant` the full amount is granted (valid for at most 1s, so the
//!   caller asks again soon); with `deny` granted 0 and `UNAVAILABLE`; with
//!   `error` an adapter error (`UNAVAILABLE`) so the client's fail policy
//!   decides. Connections re-establish by themselves.
//! - Validation needs no Redis: connections are made on first use.

mod batch;
mod handler;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::params::{Fields, ParamErrors};
use crate::template::Template;
use crate::{Adapter, BuildEnv, Error, Handler, HandlerBuilder, Params};

pub use handler::{MAX_BATCH, MAX_QUEUED_PER_CONNECTION, RedisQuotaHandler};

/// The adapter's name.
pub const NAME: &str = "redisquota";

/// The `redisquota` adapter.
pub fn adapter() -> Arc<dyn Adapter> {
    Arc::new(RedisQuota)
}

#[derive(Debug)]
struct RedisQuota;

/// How a quota's window moves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Restarts when a window ends (the default).
    FixedWindow,
    /// Counts the last `validDuration`, in buckets of `bucketDuration`.
    RollingWindow,
}

/// What a call answers while Redis cannot.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Grant the full amount (fail open).
    Grant,
    /// Grant nothing, status `UNAVAILABLE` (fail closed).
    Deny,
    /// Return an adapter error; the client's policy decides.
    Error,
}

/// An override of `maxAmount` for some dimension values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// Dimension name -> value (as a string) that must all match.
    pub dimensions: BTreeMap<String, String>,
    /// The limit when they do.
    pub max_amount: i64,
}

/// One configured quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaConfig {
    /// The quota instance's fully-qualified name.
    pub name: String,
    /// Units per window.
    pub max_amount: i64,
    /// The window.
    pub valid_duration: Duration,
    /// The rolling window's bucket.
    pub bucket_duration: Duration,
    /// How the window moves.
    pub algorithm: Algorithm,
    /// Overrides, first match wins.
    pub overrides: Vec<Override>,
}

/// Validated redisquota params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisQuotaParams {
    /// The quotas.
    pub quotas: Vec<QuotaConfig>,
    /// Where Redis is, as a `redis://` URL.
    pub redis_url: String,
    /// Connections, used round-robin.
    pub connection_pool_size: usize,
    /// The answer while Redis cannot answer.
    pub failure_policy: FailurePolicy,
    /// The longest one allocation may take.
    pub call_timeout: Duration,
}

const ALGORITHMS: &[(&str, Algorithm)] = &[
    ("FIXED_WINDOW", Algorithm::FixedWindow),
    ("ROLLING_WINDOW", Algorithm::RollingWindow),
];

const POLICIES: &[(&str, FailurePolicy)] = &[
    ("grant", FailurePolicy::Grant),
    ("deny", FailurePolicy::Deny),
    ("error", FailurePolicy::Error),
];

/// The longest pool accepted.
pub const MAX_POOL_SIZE: i64 = 1000;

fn required_int(f: &Fields<'_>, key: &'static str, min: i64, errs: &mut ParamErrors) -> i64 {
    match f.int(key, errs) {
        Some(n) if n >= min => n,
        Some(n) => {
            let rule = if min == 0 { ">= 0" } else { "greater than 0" };
            errs.push(f.path_of(key), format!("must be {rule}, got {n}"));
            0
        }
        None => {
            if f.get(key).is_none() {
                errs.push(f.path_of(key), "is required");
            }
            0
        }
    }
}

/// Turns `host:port` or a `redis://` URL into a `redis://` URL, checking
/// it parses (no connection is made).
fn redis_url(s: &str) -> Result<String, String> {
    let url = if s.contains("://") {
        s.to_string()
    } else {
        format!("redis://{s}")
    };
    if !url.starts_with("redis://") {
        return Err(format!("{s:?}: only redis:// URLs are supported"));
    }
    redis::Client::open(url.as_str())
        .map(|_| url.clone())
        .map_err(|e| format!("{s:?} is not a Redis address: {e}"))
}

impl RedisQuotaParams {
    /// Reads and validates params. Never connects to Redis.
    pub fn parse(params: &Params) -> Result<RedisQuotaParams, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let mut quotas: Vec<QuotaConfig> = Vec::new();
        let list = root.objects("quotas", &mut errs);
        if list.is_empty() && errs.is_empty() {
            errs.push("quotas", "at least one quota is required");
        }
        for q in list {
            let name = q.string("name", &mut errs).unwrap_or_default();
            if q.get("name").is_none() {
                errs.push(q.path_of("name"), "is required");
            } else if name.is_empty() {
                errs.push(q.path_of("name"), "must not be empty");
            } else if quotas.iter().any(|o| o.name == name) {
                errs.push(q.path_of("name"), format!("duplicate quota {name:?}"));
            }
            let max_amount = required_int(&q, "maxAmount", 0, &mut errs);
            let present = q.get("validDuration").is_some();
            let valid_duration = q.duration("validDuration", &mut errs);
            if valid_duration.is_none_or(|d| d.is_zero()) && (valid_duration.is_some() || !present)
            {
                errs.push(q.path_of("validDuration"), "must be greater than 0");
            }
            let valid_duration = valid_duration.unwrap_or_default();
            let bucket_duration = q.duration("bucketDuration", &mut errs).unwrap_or_default();
            let algorithm = q
                .enumeration("rateLimitAlgorithm", ALGORITHMS, &mut errs)
                .unwrap_or(Algorithm::FixedWindow);
            if algorithm == Algorithm::RollingWindow {
                if bucket_duration.is_zero() {
                    errs.push(
                        q.path_of("bucketDuration"),
                        "must be greater than 0 for ROLLING_WINDOW",
                    );
                } else if valid_duration <= bucket_duration {
                    errs.push(
                        q.path_of("validDuration"),
                        "must be greater than bucketDuration for ROLLING_WINDOW",
                    );
                }
            }
            let mut overrides = Vec::new();
            for o in q.objects("overrides", &mut errs) {
                let dimensions = o.string_map("dimensions", &mut errs).unwrap_or_default();
                if dimensions.is_empty() {
                    errs.push(o.path_of("dimensions"), "must name at least one dimension");
                }
                let max_amount = required_int(&o, "maxAmount", 1, &mut errs);
                o.finish(&mut errs);
                overrides.push(Override {
                    dimensions,
                    max_amount,
                });
            }
            q.finish(&mut errs);
            quotas.push(QuotaConfig {
                name,
                max_amount,
                valid_duration,
                bucket_duration,
                algorithm,
                overrides,
            });
        }
        let url = root
            .string("redisServerUrl", &mut errs)
            .unwrap_or_else(|| "localhost:6379".into());
        let redis_url = redis_url(&url).unwrap_or_else(|m| {
            errs.push("redisServerUrl", m);
            String::new()
        });
        let connection_pool_size = match root.int("connectionPoolSize", &mut errs) {
            None => 10,
            Some(n) if (1..=MAX_POOL_SIZE).contains(&n) => n as usize,
            Some(n) => {
                errs.push(
                    "connectionPoolSize",
                    format!("must be between 1 and {MAX_POOL_SIZE}, got {n}"),
                );
                1
            }
        };
        let failure_policy = root
            .enumeration("failurePolicy", POLICIES, &mut errs)
            .unwrap_or(FailurePolicy::Grant);
        let call_timeout = root
            .duration("callTimeout", &mut errs)
            .unwrap_or(Duration::from_millis(500));
        if call_timeout.is_zero() {
            errs.push("callTimeout", "must be greater than 0");
        }
        root.finish(&mut errs);
        errs.into_result(
            NAME,
            RedisQuotaParams {
                quotas,
                redis_url,
                connection_pool_size,
                failure_policy,
                call_timeout,
            },
        )
    }
}

impl Adapter for RedisQuota {
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "rate limits shared across replicas, in Redis"
    }
    fn templates(&self) -> &[Template] {
        &[Template::Quota]
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        Ok(Box::new(RedisQuotaParams::parse(params)?))
    }
}

impl HandlerBuilder for RedisQuotaParams {
    fn build(self: Box<Self>, env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        Ok(Arc::new(RedisQuotaHandler::new(*self, env)?))
    }
}
