//! The check cache: answers of the server (allows and denials) reused for
//! requests that agree on the attributes the answer depends on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mixer_attributes::{Bag, ReferencedAttributes};
use mixer_proto::code;
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};

use crate::clock::Clock;
use crate::hash::KeyHasher;
use crate::keys::{KeyPart, KeySet, with_scratch};
use crate::lru::Lru;
use crate::status::{CheckResult, Source, Status};

/// At most this many distinct referenced sets are learned; the decisions of
/// one configuration read a handful, so more means churn, not hits.
pub const MAX_LEARNED_KEY_SETS: usize = 64;

/// The default bound on cached answers (the original's).
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// What a cached answer is keyed on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheKeys {
    /// No caching.
    Disabled,
    /// Every attribute of the request. Always correct (an answer can only
    /// depend on what the request holds), but hits only identical requests:
    /// per-request attributes such as `request.id` defeat it.
    #[default]
    WholeBag,
    /// The configured attributes and string-map keys (the original
    /// Generation-1 client's `cache_keys`, e.g. `request.headers/:method`).
    /// Correct only if the server's decisions read nothing else.
    Attributes(Vec<KeyPart>),
    /// Learned from the referenced attributes of each decision, inserted
    /// with [`CheckCache::insert_referenced`] by a host that runs the
    /// dispatcher in-process (the Generation-1 wire carries no referenced
    /// set).
    Learned,
}

impl CacheKeys {
    /// [`CacheKeys::Attributes`] from names like `request.headers/:method`.
    pub fn attributes<S: AsRef<str>>(
        names: impl IntoIterator<Item = S>,
    ) -> Result<CacheKeys, crate::Error> {
        names
            .into_iter()
            .map(|n| KeyPart::parse(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(CacheKeys::Attributes)
    }
}

struct Entry {
    /// The key's encoding, compared on every hit.
    stored: Box<[u8]>,
    status: Status,
    expires: Instant,
    /// `u32::MAX`: unlimited.
    uses_left: u32,
}

/// Which key set (its index), and the hash of the key's encoding.
type Slot = (u32, u64);

/// The key sets lookups try.
enum Sets {
    Disabled,
    /// Whole request or configured attributes: one set, fixed.
    Fixed(KeySet),
    /// Learned from referenced attributes, at most [`MAX_LEARNED_KEY_SETS`].
    Learned(RwLock<Vec<KeySet>>),
}

/// Caches smaller than this are one LRU; larger ones are sharded, with at
/// least half of this per shard.
const MIN_SHARDED: usize = 1024;
const MAX_SHARDS: usize = 16;

/// A bounded LRU of check answers, expiring by the server's valid duration
/// and by use count.
///
/// A lookup encodes the request's key attributes into a reusable buffer in
/// one pass, hashes the bytes with a random-keyed hash, and confirms a hit
/// by comparing them with the stored bytes. Caches of 1,024 entries or more
/// are split into up to 16 shards by hash, each its own LRU under its own
/// lock, so that concurrent checks rarely wait on each other; least
/// recently used is then decided per shard.
///
/// Both allows and denials are cached; an answer with a zero expiration,
/// and any transport failure or server-side error (`INTERNAL`,
/// `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `INVALID_ARGUMENT`) never is. A hit
/// allocates nothing.
///
/// ```
/// use mixer_attributes::{OwnedBag, Value};
/// use mixer_client::{CacheKeys, CheckCache, CheckResult, Source, Status, SystemClock};
/// use std::{sync::Arc, time::Duration};
///
/// let cache = CheckCache::new(
///     CacheKeys::attributes(["source.uid", "request.headers/:method"]).unwrap(),
///     1000,
///     Arc::new(SystemClock),
/// );
/// let bag = OwnedBag::new()
///     .with("source.uid", Value::String("pod-1".into()))
///     .with("request.size", Value::Int64(10));
/// let denied = CheckResult {
///     status: Status::new(7, "no"),
///     expiration: Duration::from_secs(5),
///     source: Source::Remote,
/// };
/// cache.insert(&bag, &denied, None);
/// // request.size is not part of the key.
/// let other = bag.clone().with("request.size", Value::Int64(99));
/// assert_eq!(cache.lookup(&other).unwrap().status.code, 7);
/// ```
pub struct CheckCache {
    keys: CacheKeys,
    clock: Arc<dyn Clock>,
    sets: Sets,
    hasher: KeyHasher,
    shards: Box<[Mutex<Lru<Slot, Entry>>]>,
}

impl std::fmt::Debug for CheckCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckCache")
            .field("keys", &self.keys)
            .field("len", &self.len())
            .finish()
    }
}

impl CheckCache {
    /// A cache of at most `capacity` answers keyed on `keys`.
    pub fn new(keys: CacheKeys, capacity: usize, clock: Arc<dyn Clock>) -> CheckCache {
        let sets = match &keys {
            CacheKeys::Disabled => Sets::Disabled,
            CacheKeys::WholeBag => Sets::Fixed(KeySet::WholeBag),
            CacheKeys::Attributes(parts) => Sets::Fixed(KeySet::Parts(parts.clone())),
            CacheKeys::Learned => Sets::Learned(RwLock::new(Vec::new())),
        };
        let capacity = capacity.max(1);
        let n = if capacity < MIN_SHARDED {
            1
        } else {
            let most = (capacity / (MIN_SHARDED / 2)).min(MAX_SHARDS);
            1 << most.ilog2()
        };
        // Shard capacities add up to `capacity` exactly.
        let shards = (0..n)
            .map(|i| Mutex::new(Lru::new(capacity / n + usize::from(i < capacity % n))))
            .collect();
        CheckCache {
            keys,
            clock,
            sets,
            hasher: KeyHasher::random(),
            shards,
        }
    }

    /// What the cache keys on.
    pub fn keys(&self) -> &CacheKeys {
        &self.keys
    }

    /// Answers cached now (expired ones included until looked up or evicted).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every answer.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.lock().clear();
        }
    }

    /// The cached answer for `bag`, if one is valid; counts one use of it.
    pub fn lookup<B: Bag + ?Sized>(&self, bag: &B) -> Option<CheckResult> {
        match &self.sets {
            Sets::Disabled => None,
            Sets::Fixed(set) => with_scratch(|s| {
                set.encode(bag, s);
                self.probe(0, &s.key)
            }),
            Sets::Learned(sets) => {
                let sets = sets.read();
                if sets.is_empty() {
                    return None;
                }
                with_scratch(|s| {
                    sets.iter().enumerate().find_map(|(i, set)| {
                        set.encode(bag, s);
                        self.probe(i as u32, &s.key)
                    })
                })
            }
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<Lru<Slot, Entry>> {
        // The high bits: the shard's map hashes the whole slot again.
        &self.shards[(hash >> 40) as usize % self.shards.len()]
    }

    /// The answer stored under `key` of set `set`: one map probe (which
    /// also marks the entry used), one comparison of bytes.
    fn probe(&self, set: u32, key: &[u8]) -> Option<CheckResult> {
        let hash = self.hasher.hash(key);
        let slot = (set, hash);
        let mut lru = self.shard(hash).lock();
        let entry = lru.get_mut(&slot)?;
        if *entry.stored != *key {
            return None;
        }
        let now = self.clock.now();
        if entry.expires <= now || entry.uses_left == 0 {
            lru.remove(&slot);
            return None;
        }
        let result = CheckResult {
            status: entry.status.clone(),
            expiration: entry.expires - now,
            source: Source::Cache,
        };
        if entry.uses_left != u32::MAX {
            entry.uses_left -= 1;
            if entry.uses_left == 0 {
                lru.remove(&slot);
            }
        }
        Some(result)
    }

    /// Caches the server's `result` for `bag` under the configured keys
    /// (no-op for [`CacheKeys::Learned`] and [`CacheKeys::Disabled`]).
    /// `use_count` bounds how many lookups may reuse it (`None`: unlimited).
    pub fn insert<B: Bag + ?Sized>(&self, bag: &B, result: &CheckResult, use_count: Option<u32>) {
        if let Sets::Fixed(set) = &self.sets {
            self.store(0, set, bag, &result.status, result.expiration, use_count);
        }
    }

    /// Caches a decision keyed on the attributes it referenced (what the
    /// in-process dispatcher returns with each outcome). Only for
    /// [`CacheKeys::Learned`]; a use count of 0 or less means unlimited.
    pub fn insert_referenced<B: Bag + ?Sized>(
        &self,
        bag: &B,
        referenced: &ReferencedAttributes,
        status: &Status,
        valid_duration: Duration,
        valid_use_count: i32,
    ) {
        let Sets::Learned(sets) = &self.sets else {
            return;
        };
        let uses = u32::try_from(valid_use_count).ok().filter(|u| *u > 0);
        if !worth_storing(status, valid_duration, uses) {
            return;
        }
        let set = KeySet::from_referenced(referenced);
        let known = sets.read();
        if let Some(i) = known.iter().position(|s| *s == set) {
            self.store(i as u32, &known[i], bag, status, valid_duration, uses);
            return;
        }
        drop(known);
        let mut known = sets.write();
        // Another thread may have learned it meanwhile.
        let i = match known.iter().position(|s| *s == set) {
            Some(i) => i,
            None if known.len() < MAX_LEARNED_KEY_SETS => {
                known.push(set);
                known.len() - 1
            }
            None => return,
        };
        let known = RwLockWriteGuard::downgrade(known);
        self.store(i as u32, &known[i], bag, status, valid_duration, uses);
    }

    fn store<B: Bag + ?Sized>(
        &self,
        index: u32,
        set: &KeySet,
        bag: &B,
        status: &Status,
        valid: Duration,
        uses: Option<u32>,
    ) {
        if !worth_storing(status, valid, uses) {
            return;
        }
        let now = self.clock.now();
        with_scratch(|s| {
            set.encode(bag, s);
            let hash = self.hasher.hash(&s.key);
            let entry = Entry {
                stored: s.key.as_slice().into(),
                status: status.clone(),
                expires: now + valid,
                uses_left: uses.unwrap_or(u32::MAX),
            };
            self.shard(hash).lock().insert((index, hash), entry);
        });
    }
}

fn worth_storing(status: &Status, valid: Duration, uses: Option<u32>) -> bool {
    !valid.is_zero() && cacheable(status.code) && uses != Some(0)
}

/// Answers about the request, not about the server's health.
fn cacheable(c: i32) -> bool {
    !matches!(
        c,
        code::INTERNAL
            | code::UNAVAILABLE
            | code::DEADLINE_EXCEEDED
            | code::INVALID_ARGUMENT
            | code::UNKNOWN
            | code::CANCELLED
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use mixer_attributes::{AttrId, Condition, OwnedBag, Value};

    fn result(code: i32, secs: u64) -> CheckResult {
        CheckResult {
            status: Status::new(code, "m"),
            expiration: Duration::from_secs(secs),
            source: Source::Remote,
        }
    }

    fn bag(user: &str, size: i64) -> OwnedBag {
        OwnedBag::new()
            .with("source.user", Value::String(user.into()))
            .with("request.size", Value::Int64(size))
    }

    #[test]
    fn expires_by_duration_and_uses() {
        let clock = ManualClock::new();
        let cache = CheckCache::new(CacheKeys::WholeBag, 10, Arc::new(clock.clone()));
        cache.insert(&bag("a", 1), &result(0, 10), None);
        cache.insert(&bag("b", 1), &result(7, 10), Some(2));
        clock.advance(Duration::from_secs(9));
        let hit = cache.lookup(&bag("a", 1)).unwrap();
        assert_eq!(hit.source, Source::Cache);
        assert_eq!(hit.expiration, Duration::from_secs(1));
        assert_eq!(cache.lookup(&bag("b", 1)).unwrap().status.code, 7);
        assert_eq!(cache.lookup(&bag("b", 1)).unwrap().status.code, 7);
        assert!(cache.lookup(&bag("b", 1)).is_none(), "two uses only");
        clock.advance(Duration::from_secs(1));
        assert!(cache.lookup(&bag("a", 1)).is_none(), "expired");
        assert!(cache.is_empty());
    }

    #[test]
    fn never_caches_failures_or_zero_expiration() {
        let cache = CheckCache::new(CacheKeys::WholeBag, 10, Arc::new(ManualClock::new()));
        cache.insert(&bag("a", 1), &result(code::UNAVAILABLE, 10), None);
        cache.insert(&bag("b", 1), &result(code::INTERNAL, 10), None);
        cache.insert(&bag("c", 1), &result(0, 0), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded_lru() {
        let cache = CheckCache::new(CacheKeys::WholeBag, 3, Arc::new(ManualClock::new()));
        for i in 0..10 {
            cache.insert(&bag("a", i), &result(0, 10), None);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.lookup(&bag("a", 9)).is_some());
        assert!(cache.lookup(&bag("a", 0)).is_none());
    }

    #[test]
    fn a_hash_collision_is_a_miss_never_another_requests_answer() {
        let mut cache = CheckCache::new(CacheKeys::WholeBag, 10, Arc::new(ManualClock::new()));
        cache.hasher.constant = true;
        cache.insert(&bag("a", 1), &result(7, 10), None);
        assert!(cache.lookup(&bag("b", 1)).is_none(), "same slot, other key");
        assert_eq!(cache.lookup(&bag("a", 1)).unwrap().status.code, 7);
        // The later answer takes the slot.
        cache.insert(&bag("b", 1), &result(0, 10), None);
        assert!(cache.lookup(&bag("a", 1)).is_none());
        assert_eq!(cache.lookup(&bag("b", 1)).unwrap().status.code, 0);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn sharded_cache_stays_within_capacity_and_finds_its_entries() {
        let cache = CheckCache::new(CacheKeys::WholeBag, 10_000, Arc::new(ManualClock::new()));
        assert_eq!(cache.shards.len(), 16);
        std::thread::scope(|s| {
            for t in 0..4 {
                let cache = &cache;
                s.spawn(move || {
                    for i in 0..5_000 {
                        let b = bag(&format!("t{t}"), i);
                        cache.insert(&b, &result(0, 10), None);
                        assert!(cache.lookup(&b).is_some());
                    }
                });
            }
        });
        // 20,000 inserted, about 1,250 per shard of 625.
        assert_eq!(cache.len(), 10_000);
        // Which thread's entries survive depends on how the threads
        // interleaved; entries inserted after them all must all be found.
        for i in 0..500 {
            cache.insert(&bag("after", i), &result(0, 10), None);
        }
        assert_eq!(cache.len(), 10_000);
        for i in 0..500 {
            assert!(cache.lookup(&bag("after", i)).is_some(), "entry {i}");
        }
        let small = CheckCache::new(CacheKeys::WholeBag, 1_000, Arc::new(ManualClock::new()));
        assert_eq!(small.shards.len(), 1, "small caches keep one exact LRU");
    }

    #[test]
    fn learned_keys_follow_referenced_attributes() {
        let cache = CheckCache::new(CacheKeys::Learned, 10, Arc::new(ManualClock::new()));
        let mut refs = ReferencedAttributes::new();
        refs.record(AttrId::of("source.user"), Condition::Exact);
        refs.record(AttrId::of("source.namespace"), Condition::Absence);
        cache.insert_referenced(
            &bag("a", 1),
            &refs,
            &Status::new(7, "denied"),
            Duration::from_secs(5),
            0,
        );
        // request.size was not referenced.
        assert_eq!(cache.lookup(&bag("a", 2)).unwrap().status.code, 7);
        assert!(cache.lookup(&bag("b", 1)).is_none());
        // An absent attribute that appears breaks the match.
        let with_ns = bag("a", 1).with("source.namespace", Value::String("x".into()));
        assert!(cache.lookup(&with_ns).is_none());
        // Plain inserts do nothing in learned mode.
        cache.insert(&bag("z", 1), &result(0, 10), None);
        assert!(cache.lookup(&bag("z", 1)).is_none());
    }
}
