//! The memquota handler: sharded counters, overrides, deduplication.

use std::cell::RefCell;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mixer_proto::code;
use parking_lot::Mutex;

use super::window::Window;
use super::{Limit, MemQuotaParams, NAME, QuotaConfig};
use crate::quota_key::{matches, write_key};
use crate::template::{Dimensions, QuotaInstance};
use crate::{Answer, Clock, Error, Handler, QuotaArgs, QuotaResult, Status};

const SHARDS: usize = 32;

/// Counters not touched since they emptied are dropped once a shard grows
/// past this (then past twice its size after the last sweep).
const SWEEP_MIN: usize = 1024;

/// A memquota handler.
pub struct MemQuotaHandler {
    quotas: HashMap<String, QuotaConfig>,
    min_dedup: Duration,
    clock: Arc<dyn Clock>,
    origin: Instant,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    counters: HashMap<Box<str>, Counter>,
    sweep_at: usize,
}

struct Counter {
    window: Window,
    limit: Limit,
    dedup: HashMap<Box<str>, QuotaResult>,
    /// (expiry, id) in the order the ids were recorded; expiries only grow.
    dedup_order: VecDeque<(u64, Box<str>)>,
}

thread_local! {
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

impl MemQuotaHandler {
    /// A handler for validated params, reading time from `clock`.
    pub fn new(params: MemQuotaParams, clock: Arc<dyn Clock>) -> MemQuotaHandler {
        let origin = clock.now();
        MemQuotaHandler {
            quotas: params
                .quotas
                .into_iter()
                .map(|q| (q.name.clone(), q))
                .collect(),
            min_dedup: params.min_deduplication_duration,
            clock,
            origin,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    /// Counters currently held (one per quota key seen and not yet swept).
    pub fn live_keys(&self) -> usize {
        self.shards.iter().map(|s| s.lock().counters.len()).sum()
    }

    fn allocate(&self, instance: &QuotaInstance, args: &QuotaArgs) -> Result<QuotaResult, Error> {
        let Some(quota) = self.quotas.get(&*instance.name) else {
            return Err(Error::Unsupported {
                adapter: NAME.into(),
                what: format!("quota {} (not in params.quotas)", instance.name),
            });
        };
        let now = nanos(self.clock.now().saturating_duration_since(self.origin));
        KEY.with(|buf| {
            let mut key = buf.borrow_mut();
            key.clear();
            write_key(&mut key, &instance.name, &instance.dimensions);
            let mut h = DefaultHasher::new();
            key.hash(&mut h);
            let mut shard = self.shards[h.finish() as usize % SHARDS].lock();
            let shard = &mut *shard;
            if !shard.counters.contains_key(key.as_str()) {
                if shard.counters.len() >= shard.sweep_at.max(SWEEP_MIN) {
                    sweep(&mut shard.counters, now);
                    shard.sweep_at = shard.counters.len() * 2;
                }
                let limit = resolve(quota, &instance.dimensions).clone();
                let counter = Counter {
                    window: Window::new(&limit, quota.algorithm),
                    limit,
                    dedup: HashMap::new(),
                    dedup_order: VecDeque::new(),
                };
                shard.counters.insert(Box::from(key.as_str()), counter);
            }
            let Some(counter) = shard.counters.get_mut(key.as_str()) else {
                return Err(Error::Internal("memquota counter vanished".into()));
            };
            Ok(counter.decide(instance, args, now, self.min_dedup))
        })
    }
}

impl Counter {
    fn decide(
        &mut self,
        instance: &QuotaInstance,
        args: &QuotaArgs,
        now: u64,
        min_dedup: Duration,
    ) -> QuotaResult {
        while let Some((expiry, _)) = self.dedup_order.front() {
            if *expiry > now {
                break;
            }
            if let Some((_, id)) = self.dedup_order.pop_front() {
                self.dedup.remove(&id);
            }
        }
        let dedup = !args.deduplication_id.is_empty();
        if dedup && let Some(r) = self.dedup.get(args.deduplication_id.as_str()) {
            return r.clone();
        }
        let used = self.window.used(now);
        let valid_duration = self.limit.valid_duration;
        let result = if args.amount < 0 {
            let released = self.window.release(args.amount.saturating_neg());
            QuotaResult {
                granted: released,
                valid_duration,
                status: Status::OK,
            }
        } else {
            let left = (self.limit.max_amount - used).max(0);
            let granted = if args.amount <= left {
                args.amount
            } else if args.best_effort {
                left
            } else {
                0
            };
            if granted > 0 {
                self.window.take(now, granted);
            }
            let status = if granted == 0 && args.amount > 0 {
                Status::new(
                    code::RESOURCE_EXHAUSTED,
                    format!("quota {} is exhausted", instance.name),
                )
            } else {
                Status::OK
            };
            QuotaResult {
                granted,
                valid_duration,
                status,
            }
        };
        if dedup {
            let window = nanos(min_dedup.max(valid_duration));
            let id: Box<str> = args.deduplication_id.as_str().into();
            self.dedup_order
                .push_back((now.saturating_add(window), id.clone()));
            self.dedup.insert(id, result.clone());
        }
        result
    }

    fn idle(&mut self, now: u64) -> bool {
        let expired = self.dedup_order.back().is_none_or(|(e, _)| *e <= now);
        expired && self.window.used(now) == 0
    }
}

fn sweep(counters: &mut HashMap<Box<str>, Counter>, now: u64) {
    counters.retain(|_, c| !c.idle(now));
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The limit for these dimensions: the first override whose every
/// dimension matches the instance's value rendered as a string.
fn resolve<'q>(quota: &'q QuotaConfig, dims: &Dimensions) -> &'q Limit {
    quota
        .overrides
        .iter()
        .find(|o| matches(&o.dimensions, dims))
        .map_or(&quota.limit, |o| &o.limit)
}

impl Handler for MemQuotaHandler {
    fn quota<'a>(
        &'a self,
        instance: &'a QuotaInstance,
        args: &'a QuotaArgs,
    ) -> Answer<'a, QuotaResult> {
        Answer::Ready(self.allocate(instance, args))
    }
}

impl std::fmt::Debug for MemQuotaHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemQuotaHandler")
            .field("quotas", &self.quotas.len())
            .finish_non_exhaustive()
    }
}
