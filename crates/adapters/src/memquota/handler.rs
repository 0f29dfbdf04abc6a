//! The memquota handler: sharded counters, overrides, deduplication.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
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
    quotas: Vec<Quota>,
    by_name: HashMap<String, usize>,
    min_dedup: Duration,
    clock: Arc<dyn Clock>,
    origin: Instant,
}

/// One quota's config and counters: each quota has its own shards, so
/// its keys need not carry its name.
struct Quota {
    config: QuotaConfig,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Dedup {
    answers: HashMap<Box<str>, QuotaResult>,
    /// (expiry, id) in the order the ids were recorded; expiries only grow.
    order: VecDeque<(u64, Box<str>)>,
}

#[derive(Default)]
struct Shard {
    counters: HashMap<Box<[u8]>, Counter>,
    sweep_at: usize,
}

struct Counter {
    window: Window,
    limit: Limit,
    /// Boxed: most counters never see a deduplication id, and a small
    /// counter keeps the shard's table dense.
    dedup: Option<Box<Dedup>>,
    /// The latest time seen: callers read the clock before taking the
    /// lock, so a late one may bring an earlier time; time never goes back
    /// for a counter.
    last: u64,
}

thread_local! {
    static KEY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Picks a shard: a word-at-a-time multiply-rotate hash (as FxHash). The
/// maps inside shards hash with SipHash, so a crafted key can crowd one
/// shard's lock but not degrade its map.
fn shard_of(key: &[u8]) -> usize {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    for &b in words.remainder() {
        h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
    }
    (h >> 32) as usize % SHARDS
}

impl MemQuotaHandler {
    /// A handler for validated params, reading time from `clock`.
    pub fn new(params: MemQuotaParams, clock: Arc<dyn Clock>) -> MemQuotaHandler {
        let origin = clock.now();
        MemQuotaHandler {
            by_name: params
                .quotas
                .iter()
                .enumerate()
                .map(|(i, q)| (q.name.clone(), i))
                .collect(),
            quotas: params
                .quotas
                .into_iter()
                .map(|config| Quota {
                    config,
                    shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
                })
                .collect(),
            min_dedup: params.min_deduplication_duration,
            clock,
            origin,
        }
    }

    fn quota(&self, name: &str) -> Option<&Quota> {
        // A handful of quotas is the rule: comparing names beats hashing one.
        if self.quotas.len() <= 8 {
            self.quotas.iter().find(|q| q.config.name == name)
        } else {
            self.by_name.get(name).map(|&i| &self.quotas[i])
        }
    }

    /// Counters currently held (one per quota key seen and not yet swept).
    pub fn live_keys(&self) -> usize {
        self.quotas
            .iter()
            .flat_map(|q| q.shards.iter())
            .map(|s| s.lock().counters.len())
            .sum()
    }

    fn allocate(&self, instance: &QuotaInstance, args: &QuotaArgs) -> Result<QuotaResult, Error> {
        let Some(quota) = self.quota(&instance.name) else {
            return Err(Error::Unsupported {
                adapter: NAME.into(),
                what: format!("quota {} (not in params.quotas)", instance.name),
            });
        };
        let now = nanos(self.clock.now().saturating_duration_since(self.origin));
        KEY.with(|buf| {
            let mut key = buf.borrow_mut();
            key.clear();
            write_key(&mut key, "", &instance.dimensions);
            let mut shard = quota.shards[shard_of(&key)].lock();
            let shard = &mut *shard;
            if let Some(counter) = shard.counters.get_mut(key.as_slice()) {
                return Ok(counter.decide(instance, args, now, self.min_dedup));
            }
            if shard.counters.len() >= shard.sweep_at.max(SWEEP_MIN) {
                sweep(&mut shard.counters, now);
                shard.sweep_at = shard.counters.len() * 2;
            }
            let limit = resolve(&quota.config, &instance.dimensions).clone();
            let counter = shard
                .counters
                .entry(Box::from(key.as_slice()))
                .or_insert(Counter {
                    window: Window::new(&limit, quota.config.algorithm),
                    limit,
                    dedup: None,
                    last: 0,
                });
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
        let now = now.max(self.last);
        self.last = now;
        if let Some(d) = &mut self.dedup {
            while let Some((expiry, _)) = d.order.front() {
                if *expiry > now {
                    break;
                }
                if let Some((_, id)) = d.order.pop_front() {
                    d.answers.remove(&id);
                }
            }
            if d.order.is_empty() {
                self.dedup = None;
            }
        }
        let dedup = !args.deduplication_id.is_empty();
        if dedup
            && let Some(r) = self
                .dedup
                .as_ref()
                .and_then(|d| d.answers.get(args.deduplication_id.as_str()))
        {
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
                self.window.take(granted);
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
            let d = self.dedup.get_or_insert_with(Box::default);
            d.order.push_back((now.saturating_add(window), id.clone()));
            d.answers.insert(id, result.clone());
        }
        result
    }

    fn idle(&mut self, now: u64) -> bool {
        let expired = self
            .dedup
            .as_ref()
            .is_none_or(|d| d.order.back().is_none_or(|(e, _)| *e <= now));
        expired && self.window.used(now) == 0
    }
}

fn sweep(counters: &mut HashMap<Box<[u8]>, Counter>, now: u64) {
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
