//! The check cache: decisions kept under the set of attributes they read.
//!
//! A decision depends only on the attributes (and map keys) the check
//! looked up, present ones by value and absent ones by absence. The cache
//! groups entries by that *shape* (which attributes, which conditions); a
//! lookup computes, for each known shape, a hash of the request's values
//! for those attributes and compares the values themselves on a hash hit,
//! so a collision can never hand out another request's answer. Entries
//! expire with the decision's validity: its duration and its use count.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mixer_adapters::Clock;
use mixer_adapters::Status;
use mixer_attributes::{Bag, Condition, ReferencedAttributes, Value, ValueRef};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::runtime::Handle;

/// A cached decision, what a hit hands back.
#[derive(Clone, Debug)]
pub(crate) struct Cached {
    pub(crate) status: Status,
    pub(crate) valid_duration: Duration,
    pub(crate) valid_use_count: i32,
    pub(crate) referenced: Arc<ReferencedAttributes>,
}

struct Entry {
    values: Vec<Value>,
    status: Status,
    expires: Instant,
    uses_left: i32,
    seq: u64,
}

struct Shape {
    refs: Arc<ReferencedAttributes>,
    entries: HashMap<u64, Vec<Entry>, BuildHasherDefault<Passthrough>>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    /// Hits by outcome (OK, not OK), counted under the lock a hit takes
    /// anyway rather than with atomics of their own.
    hits: [u64; 2],
    shapes: Vec<Shape>,
    len: usize,
    seq: u64,
}

/// How stale the cache's view of time may be: entries are served up to
/// this long past their expiry (validities are seconds; the client side
/// caches by them too).
pub(crate) const CLOCK_RESOLUTION: Duration = Duration::from_millis(5);

/// The clock as the cache reads it: an atomic refreshed by a ticker on the
/// runtime, because a clock read costs as much as the rest of a hit on
/// some virtual machines.
struct CoarseClock {
    base: Instant,
    offset_nanos: AtomicU64,
}

impl CoarseClock {
    fn now(&self) -> Instant {
        self.base + Duration::from_nanos(self.offset_nanos.load(Ordering::Relaxed))
    }

    fn set(&self, t: Instant) {
        let n =
            u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_max(n, Ordering::Relaxed);
    }
}

/// Bounded cache of check decisions.
pub(crate) struct CheckCache {
    inner: Mutex<Inner>,
    capacity: usize,
    clock: Arc<CoarseClock>,
}

/// A fast non-cryptographic hasher (the multiply-rotate of rustc's
/// FxHash). Collisions only cost a comparison: entries are matched on the
/// values themselves.
#[derive(Default)]
struct Fx(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(26) ^ w).wrapping_mul(K);
    }
}

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The bucket map's hasher: its keys are hashes already.
#[derive(Default)]
struct Passthrough(u64);

impl Hasher for Passthrough {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Most values a lookup collects on the stack (and so compares without a
/// second walk over the bag).
const INLINE_VALUES: usize = 16;

/// Most shapes kept: each is one distinct set of looked-up attributes, and
/// a configuration yields few.
const MAX_SHAPES: usize = 64;

#[inline]
fn hash_value(v: ValueRef<'_>, h: &mut impl Hasher) {
    match v {
        ValueRef::String(s)
        | ValueRef::EmailAddress(s)
        | ValueRef::Uri(s)
        | ValueRef::DnsName(s) => s.hash(h),
        ValueRef::Int64(i) => i.hash(h),
        ValueRef::Double(d) => d.to_bits().hash(h),
        ValueRef::Bool(b) => b.hash(h),
        ValueRef::Timestamp(t) => t.hash(h),
        ValueRef::Duration(d) => d.hash(h),
        ValueRef::Bytes(b) => b.hash(h),
        ValueRef::StringMap(m) => {
            for (k, v) in m.iter() {
                k.hash(h);
                v.hash(h);
            }
        }
        ValueRef::IpAddress(ip) => ip.hash(h),
    }
}

/// Walks the shape over `bag`: `f` gets each present value in shape order.
/// False when the bag disagrees with a condition (present where the shape
/// recorded absence, or the reverse).
#[inline]
fn walk<'b, B: Bag + ?Sized>(
    refs: &ReferencedAttributes,
    bag: &'b B,
    mut f: impl FnMut(ValueRef<'b>) -> bool,
) -> bool {
    for &(id, cond) in refs.attributes() {
        match (bag.get(id), cond) {
            (None, Condition::Absence) => {}
            (Some(v), Condition::Exact) => {
                if !f(v) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    for (id, key, cond) in refs.map_keys() {
        let v = match bag.get(*id) {
            Some(ValueRef::StringMap(m)) => m.get(key),
            _ => return false,
        };
        match (v, cond) {
            (None, Condition::Absence) => {}
            (Some(s), Condition::Exact) => {
                if !f(ValueRef::String(s)) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

fn key_of<B: Bag + ?Sized>(refs: &ReferencedAttributes, bag: &B) -> Option<u64> {
    let mut h = Fx::default();
    walk(refs, bag, |v| {
        hash_value(v, &mut h);
        true
    })
    .then(|| h.finish())
}

fn same<B: Bag + ?Sized>(refs: &ReferencedAttributes, bag: &B, values: &[Value]) -> bool {
    let mut i = 0;
    walk(refs, bag, |v| {
        let ok = values.get(i).is_some_and(|s| s.as_ref() == v);
        i += 1;
        ok
    }) && i == values.len()
}

impl CheckCache {
    /// A cache of at most `capacity` decisions, reading time from `clock`
    /// every [`CLOCK_RESOLUTION`] on `runtime` (which needs its time
    /// driver, as handler timeouts do).
    pub(crate) fn new(capacity: usize, clock: Arc<dyn Clock>, runtime: &Handle) -> CheckCache {
        let coarse = Arc::new(CoarseClock {
            base: clock.now(),
            offset_nanos: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&coarse);
        drop(runtime.spawn(async move {
            let mut tick = tokio::time::interval(CLOCK_RESOLUTION);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                // Ends with the cache.
                let Some(c) = weak.upgrade() else { break };
                c.set(clock.now());
            }
        }));
        CheckCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            clock: coarse,
        }
    }

    /// Now, as the cache sees it (at most [`CLOCK_RESOLUTION`] behind).
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().len
    }

    /// Hits so far that answered OK, and that answered a denial.
    pub(crate) fn hits(&self) -> (u64, u64) {
        let h = self.inner.lock().hits;
        (h[0], h[1])
    }

    /// Forgets everything: a new configuration (`generation`) is running,
    /// and decisions of older ones are not taken in any more.
    pub(crate) fn clear(&self, generation: u64) {
        let mut inner = self.inner.lock();
        inner.generation = generation;
        inner.shapes.clear();
        inner.len = 0;
    }

    /// The cached decision for `bag`, using it once.
    pub(crate) fn get<B: Bag + ?Sized>(&self, bag: &B, now: Instant) -> Option<Cached> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        for shape in &mut inner.shapes {
            // One walk: hash the values and keep them for the comparison.
            let mut h = Fx::default();
            let mut values: [Option<ValueRef<'_>>; INLINE_VALUES] = [None; INLINE_VALUES];
            let mut n = 0;
            let fits = walk(&shape.refs, bag, |v| {
                hash_value(v, &mut h);
                if n < INLINE_VALUES {
                    values[n] = Some(v);
                }
                n += 1;
                true
            });
            if !fits {
                continue;
            }
            let key = h.finish();
            let Some(bucket) = shape.entries.get_mut(&key) else {
                continue;
            };
            let found = bucket.iter().position(|e| {
                if n <= INLINE_VALUES {
                    e.values.len() == n
                        && e.values
                            .iter()
                            .zip(&values)
                            .all(|(s, v)| Some(s.as_ref()) == *v)
                } else {
                    same(&shape.refs, bag, &e.values)
                }
            });
            let Some(pos) = found else {
                continue;
            };
            let e = &mut bucket[pos];
            if e.expires <= now || e.uses_left <= 0 {
                bucket.swap_remove(pos);
                if bucket.is_empty() {
                    shape.entries.remove(&key);
                }
                inner.len -= 1;
                return None;
            }
            let out = Cached {
                status: e.status.clone(),
                valid_duration: e.expires - now,
                valid_use_count: e.uses_left,
                referenced: shape.refs.clone(),
            };
            e.uses_left -= 1;
            inner.hits[usize::from(!out.status.is_ok())] += 1;
            return Some(out);
        }
        None
    }

    /// Keeps a fresh decision, which has been used once already, made
    /// under configuration `generation`.
    pub(crate) fn insert<B: Bag + ?Sized>(
        &self,
        bag: &B,
        now: Instant,
        generation: u64,
        decision: &Cached,
    ) {
        let uses_left = decision.valid_use_count.saturating_sub(1);
        if decision.valid_duration.is_zero() || uses_left <= 0 {
            return;
        }
        let mut values = Vec::new();
        let ok = walk(&decision.referenced, bag, |v| {
            values.push(v.to_owned());
            true
        });
        let Some(key) = key_of(&decision.referenced, bag) else {
            return;
        };
        if !ok {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.generation != generation {
            return;
        }
        if inner.len >= self.capacity {
            evict(&mut inner, now, self.capacity);
        }
        inner.seq += 1;
        let entry = Entry {
            values,
            status: decision.status.clone(),
            expires: now + decision.valid_duration,
            uses_left,
            seq: inner.seq,
        };
        let idx = match inner
            .shapes
            .iter()
            .position(|s| *s.refs == *decision.referenced)
        {
            Some(i) => i,
            None if inner.shapes.len() < MAX_SHAPES => {
                inner.shapes.push(Shape {
                    refs: decision.referenced.clone(),
                    entries: HashMap::default(),
                });
                inner.shapes.len() - 1
            }
            None => return,
        };
        let bucket = inner.shapes[idx].entries.entry(key).or_default();
        // The same request raced in twice: keep one entry.
        if let Some(e) = bucket.iter_mut().find(|e| e.values == entry.values) {
            *e = entry;
            return;
        }
        bucket.push(entry);
        inner.len += 1;
    }
}

/// Drops expired entries; if still full, the oldest eighth.
fn evict(inner: &mut Inner, now: Instant, capacity: usize) {
    let mut len = 0;
    for shape in &mut inner.shapes {
        shape.entries.retain(|_, b| {
            b.retain(|e| e.expires > now && e.uses_left > 0);
            len += b.len();
            !b.is_empty()
        });
    }
    inner.len = len;
    if len >= capacity {
        let mut seqs: Vec<u64> = inner
            .shapes
            .iter()
            .flat_map(|s| s.entries.values().flatten().map(|e| e.seq))
            .collect();
        let cut = (seqs.len() / 8).max(1);
        let (_, &mut threshold, _) = seqs.select_nth_unstable(cut - 1);
        let mut len = 0;
        for shape in &mut inner.shapes {
            shape.entries.retain(|_, b| {
                b.retain(|e| e.seq > threshold);
                len += b.len();
                !b.is_empty()
            });
        }
        inner.len = len;
    }
    inner.shapes.retain(|s| !s.entries.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixer_adapters::ManualClock;
    use mixer_attributes::{AttrId, OwnedBag};

    fn decision(refs: ReferencedAttributes) -> Cached {
        Cached {
            status: Status::OK,
            valid_duration: Duration::from_secs(60),
            valid_use_count: 100,
            referenced: Arc::new(refs),
        }
    }

    #[tokio::test]
    async fn absence_and_presence_are_part_of_the_key() {
        let clock = Arc::new(ManualClock::new());
        let cache = CheckCache::new(16, clock, &Handle::current());
        let (user, path) = (AttrId::of("source.user"), AttrId::of("request.path"));
        let mut refs = ReferencedAttributes::new();
        refs.record(user, Condition::Exact);
        refs.record(path, Condition::Absence);
        let alice = OwnedBag::new().with("source.user", Value::String("alice".into()));
        cache.insert(&alice, cache.now(), 0, &decision(refs));
        assert!(cache.get(&alice, cache.now()).is_some());
        // Same user, but the attribute recorded absent is now present.
        let with_path = alice
            .clone()
            .with("request.path", Value::String("/".into()));
        assert!(cache.get(&with_path, cache.now()).is_none());
        // Another value of an EXACT attribute.
        let bob = OwnedBag::new().with("source.user", Value::String("bob".into()));
        assert!(cache.get(&bob, cache.now()).is_none());
        // An unreferenced attribute does not matter.
        let other = alice.with("request.host", Value::String("h".into()));
        assert!(cache.get(&other, cache.now()).is_some());
    }

    #[tokio::test]
    async fn bounded_and_generation_checked() {
        let cache = CheckCache::new(8, Arc::new(ManualClock::new()), &Handle::current());
        let user = AttrId::of("source.user");
        let mut refs = ReferencedAttributes::new();
        refs.record(user, Condition::Exact);
        let d = decision(refs);
        for i in 0..100 {
            let b = OwnedBag::new().with("source.user", Value::String(format!("u{i}")));
            cache.insert(&b, cache.now(), 0, &d);
            assert!(cache.len() <= 8);
        }
        // The newest survive eviction.
        let last = OwnedBag::new().with("source.user", Value::String("u99".into()));
        assert!(cache.get(&last, cache.now()).is_some());
        // A decision of an older configuration is not taken in.
        cache.clear(2);
        cache.insert(&last, cache.now(), 1, &d);
        assert_eq!(cache.len(), 0);
    }
}
