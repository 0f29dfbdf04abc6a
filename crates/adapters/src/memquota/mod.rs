//! The `memquota` adapter: rate limits and concurrency limits kept in this
//! process (template `quota`).
//!
//! | param | default | rule |
//! |---|---|---|
//! | `quotas[].name` | required | the quota instance's fully-qualified name; unique |
//! | `quotas[].maxAmount` | required | >= 0 |
//! | `quotas[].validDuration` | `0s` | `0s`: a non-expiring counter (allocate and release); else the window |
//! | `quotas[].rateLimitAlgorithm` | `ROLLING_WINDOW` | or `FIXED_WINDOW` (Better) |
//! | `quotas[].overrides[].dimensions` | required | non-empty map of strings |
//! | `quotas[].overrides[].maxAmount` | required | >= 0 |
//! | `quotas[].overrides[].validDuration` | the quota's | |
//! | `minDeduplicationDuration` | `1s` | > 0 |
//!
//! Decisions:
//! - The counter is per (quota, dimension values). The first override whose
//!   every dimension equals the instance's dimension rendered as a string
//!   wins.
//! - Windows are exact to the nanosecond (Better: the original rounded up to
//!   whole seconds). A fixed window restarts every `validDuration` from the
//!   handler's start. A rolling window counts what was granted in the last
//!   `validDuration`, kept in buckets of a tenth of the window (at least
//!   100 ms, at most 600 buckets); a unit is returned between one window
//!   and one bucket after it was granted, never earlier, so no span of
//!   `validDuration` ever holds more than `maxAmount`.
//! - A negative amount releases units (down to zero) and answers the amount
//!   released.
//! - Exhausted: granted 0 and `RESOURCE_EXHAUSTED`; with best effort, what
//!   is left (0 only when nothing is).
//! - Deduplication: a call repeating a deduplication id for the same quota
//!   key within `max(minDeduplicationDuration, validDuration)` gets the first
//!   answer and consumes nothing (Better: keyed by id *and* quota key).
//! - A quota instance not named in `quotas` is an adapter error.
//!
//! Exact under concurrency: counters live in shards each behind a mutex,
//! and a call holds its shard's lock for the whole decision. A counter is
//! found by one SipHash-1-3 of its dimensions under keys drawn at random
//! per handler, which picks the shard and keys the shard's map: request
//! attributes cannot be chosen to crowd one shard or one hash, and the key
//! bytes are compared only where the hash leads.
//!
//! Allocation: a call allocates only when it creates a counter (its key)
//! and, for a rolling window, while the counter's list of past buckets
//! grows towards its window's bucket count (a handful of times over the
//! counter's life); once grown, calls allocate nothing, bucket roll-over
//! and expiry included.

mod handler;
mod window;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::params::{Fields, ParamErrors};
use crate::template::Template;
use crate::{Adapter, BuildEnv, Error, Handler, HandlerBuilder, Params};

pub use handler::MemQuotaHandler;

/// The adapter's name.
pub const NAME: &str = "memquota";

/// The `memquota` adapter.
pub fn adapter() -> Arc<dyn Adapter> {
    Arc::new(MemQuota)
}

#[derive(Debug)]
struct MemQuota;

/// How a quota's window moves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Counts the last `validDuration` (the original's only algorithm).
    RollingWindow,
    /// Restarts every `validDuration`.
    FixedWindow,
}

/// A limit: how much per window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Units per window (or in flight, without a window).
    pub max_amount: i64,
    /// The window; zero for a non-expiring counter.
    pub valid_duration: Duration,
}

/// An override of a quota's limit for some dimension values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    /// Dimension name -> value (as a string) that must all match.
    pub dimensions: BTreeMap<String, String>,
    /// The limit that applies when they do.
    pub limit: Limit,
}

/// One configured quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaConfig {
    /// The quota instance's fully-qualified name.
    pub name: String,
    /// The default limit.
    pub limit: Limit,
    /// How the window moves.
    pub algorithm: Algorithm,
    /// Overrides, first match wins.
    pub overrides: Vec<Override>,
}

/// Validated memquota params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemQuotaParams {
    /// The quotas.
    pub quotas: Vec<QuotaConfig>,
    /// The shortest time a deduplication id is remembered.
    pub min_deduplication_duration: Duration,
}

const ALGORITHMS: &[(&str, Algorithm)] = &[
    ("ROLLING_WINDOW", Algorithm::RollingWindow),
    ("FIXED_WINDOW", Algorithm::FixedWindow),
];

fn amount(f: &Fields<'_>, key: &'static str, errs: &mut ParamErrors) -> i64 {
    match f.int(key, errs) {
        Some(n) if n >= 0 => n,
        Some(n) => {
            errs.push(f.path_of(key), format!("must be >= 0, got {n}"));
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

impl MemQuotaParams {
    /// Reads and validates params.
    pub fn parse(params: &Params) -> Result<MemQuotaParams, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let mut quotas: Vec<QuotaConfig> = Vec::new();
        for q in root.objects("quotas", &mut errs) {
            let name = q.string("name", &mut errs).unwrap_or_default();
            if name.is_empty() && q.get("name").is_none() {
                errs.push(q.path_of("name"), "is required");
            } else if name.is_empty() {
                errs.push(q.path_of("name"), "must not be empty");
            } else if quotas.iter().any(|o| o.name == name) {
                errs.push(q.path_of("name"), format!("duplicate quota {name:?}"));
            }
            let max_amount = amount(&q, "maxAmount", &mut errs);
            let valid_duration = q.duration("validDuration", &mut errs).unwrap_or_default();
            let algorithm = q
                .enumeration("rateLimitAlgorithm", ALGORITHMS, &mut errs)
                .unwrap_or(Algorithm::RollingWindow);
            let mut overrides = Vec::new();
            for o in q.objects("overrides", &mut errs) {
                let dimensions = o.string_map("dimensions", &mut errs).unwrap_or_default();
                if dimensions.is_empty() {
                    errs.push(o.path_of("dimensions"), "must name at least one dimension");
                }
                let max_amount = amount(&o, "maxAmount", &mut errs);
                let d = o
                    .duration("validDuration", &mut errs)
                    .unwrap_or(valid_duration);
                o.finish(&mut errs);
                overrides.push(Override {
                    dimensions,
                    limit: Limit {
                        max_amount,
                        valid_duration: d,
                    },
                });
            }
            q.finish(&mut errs);
            quotas.push(QuotaConfig {
                name,
                limit: Limit {
                    max_amount,
                    valid_duration,
                },
                algorithm,
                overrides,
            });
        }
        let min_dedup = root.duration("minDeduplicationDuration", &mut errs);
        if min_dedup == Some(Duration::ZERO) {
            errs.push("minDeduplicationDuration", "must be greater than 0");
        }
        root.finish(&mut errs);
        errs.into_result(
            NAME,
            MemQuotaParams {
                quotas,
                min_deduplication_duration: min_dedup.unwrap_or(Duration::from_secs(1)),
            },
        )
    }
}

impl Adapter for MemQuota {
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "in-process rate and concurrency limits"
    }
    fn templates(&self) -> &[Template] {
        &[Template::Quota]
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        Ok(Box::new(MemQuotaParams::parse(params)?))
    }
}

impl HandlerBuilder for MemQuotaParams {
    fn build(self: Box<Self>, env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        Ok(Arc::new(MemQuotaHandler::new(*self, env.clock().clone())))
    }
}
