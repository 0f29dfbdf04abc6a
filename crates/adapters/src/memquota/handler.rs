//! The memquota handler: sharded counters, overrides, deduplication.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mixer_proto::code;
use parking_lot::Mutex;

use super::window::{Shape, Window};
use super::{Limit, MemQuotaParams, NAME, QuotaConfig};
use crate::quota_key::{matches, write_dims};
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
    /// SipHash-1-3 under keys drawn at random per handler: quota keys come
    /// from request attributes, so a caller must not be able to pick keys
    /// that share a shard or a hash.
    seed: RandomState,
    /// All ones; tests clear it to force every key onto one hash.
    hash_mask: u64,
}

/// One quota's config and counters: each quota has its own shards, so
/// its keys need not carry its name.
struct Quota {
    config: QuotaConfig,
    /// The default limit, then each override's, in order.
    rules: Box<[Rule]>,
    shards: Box<[Mutex<Shard>]>,
}

/// A limit and how it cuts time.
struct Rule {
    limit: Limit,
    shape: Shape,
}

#[derive(Default)]
struct Dedup {
    answers: HashMap<Box<str>, QuotaResult>,
    /// (expiry, id) in the order the ids were recorded; expiries only grow.
    order: VecDeque<(u64, Box<str>)>,
}

/// Counters by the hash of their key, computed once per call and used
/// both to pick the shard and as the map's key (the map does not hash it
/// again); the key bytes are compared only for the slot the hash finds.
#[derive(Default)]
struct Shard {
    counters: HashMap<u64, Slot, BuildHasherDefault<Prehashed>>,
    /// Keys whose 64-bit hash another key in `counters` already has (by
    /// chance: about n²/2⁶⁵ for n keys).
    collided: Vec<(u64, Slot)>,
    sweep_at: usize,
}

impl Shard {
    fn len(&self) -> usize {
        self.counters.len() + self.collided.len()
    }

    #[inline]
    fn find(&mut self, hash: u64, key: &[u8]) -> Option<&mut Counter> {
        if let Some(s) = self.counters.get_mut(&hash)
            && *s.key == *key
        {
            return Some(&mut s.counter);
        }
        self.collided
            .iter_mut()
            .find(|(h, s)| *h == hash && *s.key == *key)
            .map(|(_, s)| &mut s.counter)
    }

    fn insert(&mut self, hash: u64, slot: Slot) -> &mut Counter {
        match self.counters.entry(hash) {
            Entry::Vacant(e) => &mut e.insert(slot).counter,
            Entry::Occupied(_) => {
                let at = self.collided.len();
                self.collided.push((hash, slot));
                &mut self.collided[at].1.counter
            }
        }
    }

    /// Drops idle counters.
    fn sweep(&mut self, now: u64, rules: &[Rule]) {
        self.counters.retain(|_, s| !s.counter.idle(now, rules));
        self.collided
            .retain_mut(|(_, s)| !s.counter.idle(now, rules));
    }
}

struct Slot {
    key: Box<[u8]>,
    counter: Counter,
}

/// The map's hasher for keys that are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is called for a `u64` key; fold anything else
        // rather than lose it.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, h: u64) {
        self.0 = h;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

struct Counter {
    window: Window,
    /// Which of the quota's rules applies.
    rule: u32,
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

/// The shard for a hash: bits the shard's map does not use to place
/// entries (it takes the low bits for the bucket, the top 7 as a tag).
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
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
                    rules: std::iter::once(&config.limit)
                        .chain(config.overrides.iter().map(|o| &o.limit))
                        .map(|limit| Rule {
                            limit: limit.clone(),
                            shape: Shape::new(limit, config.algorithm),
                        })
                        .collect(),
                    config,
                    shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
                })
                .collect(),
            min_dedup: params.min_deduplication_duration,
            clock,
            origin,
            seed: RandomState::new(),
            hash_mask: u64::MAX,
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
            .map(|s| s.lock().len())
            .sum()
    }

    /// Every key gets the same hash, so that all counters but one are
    /// kept as collided in one shard.
    #[cfg(test)]
    pub(super) fn with_colliding_hashes(mut self) -> MemQuotaHandler {
        self.hash_mask = 0;
        self
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
            write_dims(&mut key, &instance.dimensions);
            // The key is self-delimiting, so its bytes alone are hashed.
            let mut hasher = self.seed.build_hasher();
            hasher.write(&key);
            let hash = hasher.finish() & self.hash_mask;
            let mut shard = quota.shards[shard_of(hash)].lock();
            let shard = &mut *shard;
            let rules = &quota.rules;
            if let Some(counter) = shard.find(hash, &key) {
                return Ok(counter.decide(instance, args, now, rules, self.min_dedup));
            }
            if shard.len() >= shard.sweep_at.max(SWEEP_MIN) {
                shard.sweep(now, rules);
                shard.sweep_at = shard.len() * 2;
            }
            let rule = resolve(&quota.config, &instance.dimensions);
            let slot = Slot {
                key: Box::from(key.as_slice()),
                counter: Counter {
                    window: rules[rule].shape.window(),
                    rule: rule as u32,
                    dedup: None,
                    last: 0,
                },
            };
            let counter = shard.insert(hash, slot);
            Ok(counter.decide(instance, args, now, rules, self.min_dedup))
        })
    }
}

impl Counter {
    #[inline]
    fn decide(
        &mut self,
        instance: &QuotaInstance,
        args: &QuotaArgs,
        now: u64,
        rules: &[Rule],
        min_dedup: Duration,
    ) -> QuotaResult {
        let rule = &rules[self.rule as usize];
        let now = now.max(self.last);
        self.last = now;
        if self.dedup.is_none() && args.deduplication_id.is_empty() {
            return self.apply(instance, args, now, rule);
        }
        self.decide_once(instance, args, now, rule, min_dedup)
    }

    /// [`Counter::decide`] with deduplication ids, kept out of line: it
    /// allocates anyway, and the call without one stays short.
    #[inline(never)]
    fn decide_once(
        &mut self,
        instance: &QuotaInstance,
        args: &QuotaArgs,
        now: u64,
        rule: &Rule,
        min_dedup: Duration,
    ) -> QuotaResult {
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
        if args.deduplication_id.is_empty() {
            return self.apply(instance, args, now, rule);
        }
        if let Some(r) = self
            .dedup
            .as_ref()
            .and_then(|d| d.answers.get(args.deduplication_id.as_str()))
        {
            return r.clone();
        }
        let result = self.apply(instance, args, now, rule);
        let window = nanos(min_dedup.max(rule.limit.valid_duration));
        let id: Box<str> = args.deduplication_id.as_str().into();
        let d = self.dedup.get_or_insert_with(Box::default);
        d.order.push_back((now.saturating_add(window), id.clone()));
        d.answers.insert(id, result.clone());
        result
    }

    /// Grants, refuses or releases at `now`.
    #[inline]
    fn apply(
        &mut self,
        instance: &QuotaInstance,
        args: &QuotaArgs,
        now: u64,
        rule: &Rule,
    ) -> QuotaResult {
        let at = rule.shape.at(now);
        let used = self.window.used(at, &rule.shape);
        let valid_duration = rule.limit.valid_duration;
        if args.amount < 0 {
            return QuotaResult {
                granted: self.window.release(args.amount.saturating_neg()),
                valid_duration,
                status: Status::OK,
            };
        }
        let left = (rule.limit.max_amount - used).max(0);
        let granted = if args.amount <= left {
            args.amount
        } else if args.best_effort {
            left
        } else {
            0
        };
        if granted > 0 {
            self.window.take(granted, at);
        } else if args.amount > 0 {
            return exhausted(&instance.name, valid_duration);
        }
        QuotaResult {
            granted,
            valid_duration,
            status: Status::OK,
        }
    }

    fn idle(&mut self, now: u64, rules: &[Rule]) -> bool {
        let expired = self
            .dedup
            .as_ref()
            .is_none_or(|d| d.order.back().is_none_or(|(e, _)| *e <= now));
        let shape = &rules[self.rule as usize].shape;
        expired && self.window.used(shape.at(now), shape) == 0
    }
}

/// Nothing granted: formats its message, so kept off the granting path.
#[cold]
fn exhausted(quota: &str, valid_duration: Duration) -> QuotaResult {
    QuotaResult {
        granted: 0,
        valid_duration,
        status: Status::new(
            code::RESOURCE_EXHAUSTED,
            format!("quota {quota} is exhausted"),
        ),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The rule for these dimensions (0: the default, i + 1: override i):
/// the first override whose every dimension matches the instance's value
/// rendered as a string.
fn resolve(quota: &QuotaConfig, dims: &Dimensions) -> usize {
    quota
        .overrides
        .iter()
        .position(|o| matches(&o.dimensions, dims))
        .map_or(0, |i| i + 1)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memquota::Algorithm;

    fn slot(key: &str, used: i64) -> Slot {
        let shape = Shape::new(
            &Limit {
                max_amount: 10,
                valid_duration: Duration::ZERO,
            },
            Algorithm::FixedWindow,
        );
        let mut window = shape.window();
        if used > 0 {
            window.take(used, 0);
        }
        Slot {
            key: key.as_bytes().into(),
            counter: Counter {
                window,
                rule: 0,
                dedup: None,
                last: 0,
            },
        }
    }

    #[test]
    fn a_shard_entry_stays_within_a_cache_line_and_a_half() {
        // What a hit reads sits in one or two cache lines, not three.
        assert!(
            size_of::<(u64, Slot)>() <= 96,
            "{}",
            size_of::<(u64, Slot)>()
        );
    }

    #[test]
    fn collided_keys_are_found_inserted_and_swept() {
        let rules = [Rule {
            limit: Limit {
                max_amount: 10,
                valid_duration: Duration::ZERO,
            },
            shape: Shape::Counter,
        }];
        let mut shard = Shard::default();
        shard.insert(1, slot("a", 0));
        shard.insert(1, slot("b", 2));
        shard.insert(1, slot("c", 0));
        shard.insert(2, slot("d", 1));
        assert_eq!((shard.counters.len(), shard.collided.len()), (2, 2));
        for k in ["a", "b", "c"] {
            assert!(shard.find(1, k.as_bytes()).is_some(), "{k}");
        }
        assert!(shard.find(2, b"a").is_none());
        assert!(shard.find(1, b"d").is_none());
        shard.sweep(0, &rules);
        // "a" (in the map) and "c" (collided) were idle.
        assert_eq!(shard.len(), 2);
        assert!(shard.find(1, b"b").is_some());
        assert!(shard.find(1, b"a").is_none());
        // The hash's map slot is free again: a new key takes it, and the
        // collided one is still found.
        shard.insert(1, slot("e", 1));
        assert_eq!(shard.counters.len(), 2);
        assert!(shard.find(1, b"b").is_some() && shard.find(1, b"e").is_some());
    }
}
