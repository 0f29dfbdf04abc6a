//! The memquota handler: sharded counters, overrides, deduplication.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
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
    shards: Box<[Mutex<Shard>]>,
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
    /// Counters held, chained ones included.
    len: usize,
    sweep_at: usize,
}

/// A counter and its key; keys whose 64-bit hashes are equal (by chance:
/// about n²/2⁶⁵ for n keys) are chained behind the first.
struct Slot {
    key: Box<[u8]>,
    counter: Counter,
    next: Option<Box<Slot>>,
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

/// The shard for a hash: bits the shard's map does not use to place
/// entries (it takes the low bits for the bucket, the top 7 as a tag).
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

/// The counter for `key` in a chain, if any.
fn find<'a>(mut slot: Option<&'a mut Slot>, key: &[u8]) -> Option<&'a mut Counter> {
    while let Some(s) = slot {
        if *s.key == *key {
            return Some(&mut s.counter);
        }
        slot = s.next.as_deref_mut();
    }
    None
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
            .map(|s| s.lock().len)
            .sum()
    }

    /// Every key gets the same hash, so that all counters chain in one
    /// slot of one shard.
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
            write_key(&mut key, "", &instance.dimensions);
            // The key is self-delimiting, so its bytes alone are hashed.
            let mut hasher = self.seed.build_hasher();
            hasher.write(&key);
            let hash = hasher.finish() & self.hash_mask;
            let mut shard = quota.shards[shard_of(hash)].lock();
            let shard = &mut *shard;
            if let Some(counter) = find(shard.counters.get_mut(&hash), &key) {
                return Ok(counter.decide(instance, args, now, self.min_dedup));
            }
            if shard.len >= shard.sweep_at.max(SWEEP_MIN) {
                shard.len = sweep(&mut shard.counters, now);
                shard.sweep_at = shard.len * 2;
            }
            let limit = resolve(&quota.config, &instance.dimensions).clone();
            let slot = Slot {
                key: Box::from(key.as_slice()),
                counter: Counter {
                    window: Window::new(&limit, quota.config.algorithm),
                    limit,
                    dedup: None,
                    last: 0,
                },
                next: None,
            };
            shard.len += 1;
            let head = match shard.counters.entry(hash) {
                Entry::Vacant(e) => e.insert(slot),
                Entry::Occupied(e) => {
                    // The newcomer goes first: the chain keeps its order
                    // otherwise and no walk is needed.
                    let head = e.into_mut();
                    let old = std::mem::replace(head, slot);
                    head.next = Some(Box::new(old));
                    head
                }
            };
            Ok(head.counter.decide(instance, args, now, self.min_dedup))
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

/// Drops idle counters; returns how many are left.
fn sweep(counters: &mut HashMap<u64, Slot, BuildHasherDefault<Prehashed>>, now: u64) -> usize {
    let mut left = 0;
    counters.retain(|_, head| {
        let mut rest = head.next.take();
        let mut tail = &mut head.next;
        while let Some(mut s) = rest {
            rest = s.next.take();
            if !s.counter.idle(now) {
                left += 1;
                tail = &mut tail.insert(s).next;
            }
        }
        if !head.counter.idle(now) {
            left += 1;
            return true;
        }
        match head.next.take() {
            Some(next) => {
                *head = *next;
                true
            }
            None => false,
        }
    });
    left
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memquota::Algorithm;

    fn slot(key: &str, used: i64, next: Option<Box<Slot>>) -> Slot {
        let limit = Limit {
            max_amount: 10,
            valid_duration: Duration::ZERO,
        };
        let mut window = Window::new(&limit, Algorithm::FixedWindow);
        if used > 0 {
            window.take(used);
        }
        Slot {
            key: key.as_bytes().into(),
            counter: Counter {
                window,
                limit,
                dedup: None,
                last: 0,
            },
            next,
        }
    }

    fn keys(mut s: Option<&Slot>) -> Vec<&str> {
        let mut v = Vec::new();
        while let Some(x) = s {
            v.push(std::str::from_utf8(&x.key).unwrap());
            s = x.next.as_deref();
        }
        v
    }

    #[test]
    fn sweep_unlinks_idle_counters_anywhere_in_a_chain() {
        let mut m: HashMap<u64, Slot, BuildHasherDefault<Prehashed>> = HashMap::default();
        // idle head, live, idle, live.
        let chain = slot("d", 1, None);
        let chain = slot("c", 0, Some(Box::new(chain)));
        let chain = slot("b", 2, Some(Box::new(chain)));
        m.insert(1, slot("a", 0, Some(Box::new(chain))));
        // A live head with an idle tail, and a chain with nothing live.
        m.insert(2, slot("e", 1, Some(Box::new(slot("f", 0, None)))));
        m.insert(3, slot("g", 0, Some(Box::new(slot("h", 0, None)))));
        assert_eq!(sweep(&mut m, 0), 3);
        assert_eq!(keys(m.get(&1)), ["b", "d"]);
        assert_eq!(keys(m.get(&2)), ["e"]);
        assert!(!m.contains_key(&3));
        assert!(find(m.get_mut(&1), b"d").is_some());
        assert!(find(m.get_mut(&1), b"a").is_none());
    }
}
