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
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::Clock;
use mixer_adapters::Status;
use mixer_attributes::{Bag, Condition, ReferencedAttributes, ValueRef};
use parking_lot::Mutex;

use crate::check::CheckDecision;
use crate::coarse_clock::{CoarseClock, Tick};
use tokio::runtime::Handle;

struct Entry {
    /// The request's values under the shape ([`encode`]d).
    key: Box<[u8]>,
    status: Status,
    /// Nanoseconds since the clock's base, as [`Tick`]s are: a hit
    /// compares and subtracts integers, not `Instant`s.
    expires: u64,
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
    /// A lookup's key block, kept here (used under the lock) rather than
    /// zeroed on the stack by every lookup.
    probe: Probe,
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
const K2: u64 = 0x9e37_79b9_7f4a_7c15;

impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(26) ^ w).wrapping_mul(K);
    }
}

impl Hasher for Fx {
    /// Whole words, then the tail read as one (overlapping) word: no
    /// byte-wise copy, whose store-to-load stall cost more than the rest
    /// of a hit's hashing. The length goes in too, so that the overlap
    /// cannot make two different lengths agree.
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if n >= 16 {
            // Two lanes, so that consecutive words do not wait on each
            // other's multiply: a key is mostly one long write.
            let word =
                |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
            let (mut a, mut b) = (self.0, self.0 ^ K2);
            let mut at = 0;
            while at + 16 <= n {
                a = (a.rotate_left(26) ^ word(at)).wrapping_mul(K);
                b = (b.rotate_left(26) ^ word(at + 8)).wrapping_mul(K2);
                at += 16;
            }
            if at < n {
                // The last 16 bytes, overlapping what came before.
                a = (a.rotate_left(26) ^ word(n - 16)).wrapping_mul(K);
                b = (b.rotate_left(26) ^ word(n - 8)).wrapping_mul(K2);
            }
            self.0 = a;
            self.add(b);
        } else if n >= 8 {
            let mut chunks = bytes.chunks_exact(8);
            for c in &mut chunks {
                self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
            }
            if !chunks.remainder().is_empty() {
                let tail = &bytes[n - 8..];
                self.add(u64::from_le_bytes(tail.try_into().expect("8 bytes")));
            }
        } else if n >= 4 {
            let lo = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
            let hi = u32::from_le_bytes(bytes[n - 4..].try_into().expect("4 bytes"));
            self.add(u64::from(lo) | (u64::from(hi) << 32));
        } else if n > 0 {
            let w = u64::from(bytes[0])
                | (u64::from(bytes[n / 2]) << 8)
                | (u64::from(bytes[n - 1]) << 16);
            self.add(w);
        }
        self.add(n as u64);
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

/// Most shapes kept: each is one distinct set of looked-up attributes, and
/// a configuration yields few.
const MAX_SHAPES: usize = 64;

/// Where an encoded key goes: stored ([`Vec`]), encoded and hashed on the
/// stack for a lookup ([`Probe`]) or compared with a stored one
/// ([`Compare`]), all from the same calls, so that a lookup allocates
/// nothing.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Bytes of a key a lookup encodes on the stack: a key this long or
/// shorter is looked up in one walk over the bag, hashed and compared as a
/// whole; a longer one needs a second walk to compare.
const BLOCK: usize = 256;

/// A lookup's key as it is encoded: its last block on the stack, the full
/// blocks before it already hashed. The hash depends only on the key's
/// bytes, not on how they came in, so [`hash_key`] gives a stored key the
/// same hash.
struct Probe {
    block: [u8; BLOCK],
    len: usize,
    /// Full blocks hashed into `h` so far (none when the key fits).
    blocks: usize,
    h: Fx,
}

impl Default for Probe {
    fn default() -> Probe {
        Probe::new()
    }
}

impl Probe {
    fn new() -> Probe {
        Probe {
            block: [0; BLOCK],
            len: 0,
            blocks: 0,
            h: Fx::default(),
        }
    }

    fn reset(&mut self) {
        self.len = 0;
        self.blocks = 0;
        self.h = Fx::default();
    }

    /// The key's hash: its full blocks word by word, then the rest as
    /// [`Fx::write`] takes bytes (with its length).
    fn finish(&self) -> u64 {
        let mut h = Fx(self.h.0);
        h.write(&self.block[..self.len]);
        h.finish()
    }

    /// The whole key, when it fitted in one block.
    fn key(&self) -> Option<&[u8]> {
        (self.blocks == 0).then(|| &self.block[..self.len])
    }
}

impl Sink for Probe {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if end <= BLOCK {
            copy_short(&mut self.block[self.len..end], bytes);
            self.len = end;
        } else {
            self.spill(bytes);
        }
    }
}

impl Probe {
    /// Fills the block, hashes it, and goes on with the rest. A full block
    /// is hashed only once more bytes follow it, so a key of exactly one
    /// block still compares in one piece.
    #[cold]
    fn spill(&mut self, mut bytes: &[u8]) {
        loop {
            let end = self.len + bytes.len();
            if end <= BLOCK {
                self.block[self.len..end].copy_from_slice(bytes);
                self.len = end;
                return;
            }
            let (head, tail) = bytes.split_at(BLOCK - self.len);
            self.block[self.len..].copy_from_slice(head);
            for c in self.block.chunks_exact(8) {
                self.h
                    .add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
            }
            self.blocks += 1;
            self.len = 0;
            bytes = tail;
        }
    }
}

/// `dst.copy_from_slice(src)` for the short pieces a key is made of, as
/// two overlapping moves of a fixed size rather than a call to `memcpy`
/// (which cost more than the copying).
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n > 32 {
        dst.copy_from_slice(src);
    } else if n >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[n - 16..].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// `a == b` for keys that fit a block, word by word inline rather than
/// through a call to `memcmp` (which cost more than comparing).
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n > BLOCK {
        return a == b;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    if n < 8 {
        return a == b;
    }
    let mut diff = 0;
    let mut at = 0;
    while at + 8 <= n {
        diff |= word(a, at) ^ word(b, at);
        at += 8;
    }
    // The last word, overlapping the one before.
    diff |= word(a, n - 8) ^ word(b, n - 8);
    diff == 0
}

/// The hash a lookup computes for the same bytes.
fn hash_key(key: &[u8]) -> u64 {
    let mut p = Probe::new();
    p.put(key);
    p.finish()
}

/// Compares the pieces, in order, with a stored key.
struct Compare<'k> {
    rest: &'k [u8],
    same: bool,
}

impl Sink for Compare<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        match self.rest.split_at_checked(bytes.len()) {
            Some((head, tail)) if self.same && head == bytes => self.rest = tail,
            _ => self.same = false,
        }
    }
}

/// A tag, the length, the bytes. A length under 255 takes one byte, a
/// longer one 255 and then eight: prefix-free either way, and the values
/// a check reads are mostly short.
#[inline]
fn bytes(key: &mut impl Sink, tag: u8, b: &[u8]) {
    let n = b.len();
    match u8::try_from(n) {
        // As one 16-bit value: two bytes stored apart and read back as
        // one piece stall the store buffer.
        Ok(short) if short < u8::MAX => {
            key.put(&(u16::from(tag) | u16::from(short) << 8).to_le_bytes());
        }
        _ => {
            key.put(&[tag, u8::MAX]);
            key.put(&(n as u64).to_le_bytes());
        }
    }
    key.put(b);
}

/// Writes `v` to `key` self-delimited (a tag, then fixed-size bytes or a
/// length and the bytes, see [`bytes`]), so that two keys of a shape are equal exactly
/// when their values are (floats by their bits).
#[inline]
fn encode(v: ValueRef<'_>, key: &mut impl Sink) {
    match v {
        ValueRef::String(s) => bytes(key, 0, s.as_bytes()),
        ValueRef::Int64(i) => {
            key.put(&[1]);
            key.put(&i.to_le_bytes());
        }
        ValueRef::Double(d) => {
            key.put(&[2]);
            key.put(&d.to_bits().to_le_bytes());
        }
        ValueRef::Bool(b) => key.put(&[3, u8::from(b)]),
        ValueRef::Timestamp(t) => {
            key.put(&[4]);
            key.put(&t.seconds().to_le_bytes());
            key.put(&t.nanos().to_le_bytes());
        }
        ValueRef::Duration(d) => {
            key.put(&[5]);
            key.put(&d.as_secs().to_le_bytes());
            key.put(&d.subsec_nanos().to_le_bytes());
        }
        ValueRef::Bytes(b) => bytes(key, 6, b),
        ValueRef::StringMap(m) => {
            key.put(&[7]);
            key.put(&(m.len() as u64).to_le_bytes());
            for (k, v) in m.iter() {
                bytes(key, 0, k.as_bytes());
                bytes(key, 0, v.as_bytes());
            }
        }
        ValueRef::IpAddress(IpAddr::V4(ip)) => {
            key.put(&[8]);
            key.put(&ip.octets());
        }
        ValueRef::IpAddress(IpAddr::V6(ip)) => {
            key.put(&[9]);
            key.put(&ip.octets());
        }
        ValueRef::EmailAddress(s) => bytes(key, 10, s.as_bytes()),
        ValueRef::Uri(s) => bytes(key, 11, s.as_bytes()),
        ValueRef::DnsName(s) => bytes(key, 12, s.as_bytes()),
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

/// Encodes `bag` under the shape `refs` into `key`; false when the bag
/// does not fit the shape.
#[inline]
fn encode_bag<B: Bag + ?Sized>(refs: &ReferencedAttributes, bag: &B, key: &mut impl Sink) -> bool {
    walk(refs, bag, |v| {
        encode(v, key);
        true
    })
}

impl CheckCache {
    /// A cache of at most `capacity` decisions, reading time from `clock`
    /// every [`CLOCK_RESOLUTION`](crate::coarse_clock::CLOCK_RESOLUTION) on `runtime` (which needs its time
    /// driver, as handler timeouts do) while the cache is used.
    pub(crate) fn new(capacity: usize, clock: Arc<dyn Clock>, runtime: &Handle) -> CheckCache {
        CheckCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            clock: CoarseClock::start(clock, runtime),
        }
    }

    /// Now, as the cache sees it (at most [`CLOCK_RESOLUTION`](crate::coarse_clock::CLOCK_RESOLUTION) behind).
    pub(crate) fn now(&self) -> Tick {
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

    /// The cached decision for `bag`, using it once, with what `refs`
    /// makes of the attributes it read (a caller that does not want them
    /// pays nothing for them).
    pub(crate) fn get<B: Bag + ?Sized, R>(
        &self,
        bag: &B,
        now: Tick,
        refs: impl FnOnce(&Arc<ReferencedAttributes>) -> R,
    ) -> Option<(CheckDecision, R)> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let probe = &mut inner.probe;
        for shape in &mut inner.shapes {
            // One walk over the bag encodes the key on the stack; a key
            // longer than a block is compared in a second walk rather
            // than collected on the heap.
            probe.reset();
            if !encode_bag(&shape.refs, bag, probe) {
                continue;
            }
            let hash = probe.finish();
            let Some(bucket) = shape.entries.get_mut(&hash) else {
                continue;
            };
            // The whole key compared: a hash collision is only a miss.
            let found = match probe.key() {
                Some(key) => bucket.iter().position(|e| same(&e.key, key)),
                None => bucket.iter().position(|e| {
                    let mut c = Compare {
                        rest: &e.key,
                        same: true,
                    };
                    encode_bag(&shape.refs, bag, &mut c) && c.same && c.rest.is_empty()
                }),
            };
            let Some(pos) = found else {
                continue;
            };
            let e = &mut bucket[pos];
            if e.expires <= now.0 || e.uses_left <= 0 {
                bucket.swap_remove(pos);
                if bucket.is_empty() {
                    shape.entries.remove(&hash);
                }
                inner.len -= 1;
                return None;
            }
            let status = if e.status.message.is_empty() {
                // No call to clone an empty string (most answers are OK).
                Status {
                    code: e.status.code,
                    message: String::new(),
                }
            } else {
                e.status.clone()
            };
            let out = CheckDecision {
                status,
                valid_duration: Duration::from_nanos(e.expires - now.0),
                valid_use_count: e.uses_left,
            };
            e.uses_left -= 1;
            inner.hits[usize::from(!out.status.is_ok())] += 1;
            return Some((out, refs(&shape.refs)));
        }
        None
    }

    /// Keeps a fresh decision, which has been used once already, made
    /// under configuration `generation` reading `referenced`.
    pub(crate) fn insert<B: Bag + ?Sized>(
        &self,
        bag: &B,
        now: Tick,
        generation: u64,
        referenced: &ReferencedAttributes,
        decision: &CheckDecision,
    ) {
        let uses_left = decision.valid_use_count.saturating_sub(1);
        if decision.valid_duration.is_zero() || uses_left <= 0 {
            return;
        }
        let mut key = Vec::new();
        if !encode_bag(referenced, bag, &mut key) {
            return;
        }
        let hash = hash_key(&key);
        let mut inner = self.inner.lock();
        if inner.generation != generation {
            return;
        }
        if inner.len >= self.capacity {
            evict(&mut inner, now, self.capacity);
        }
        inner.seq += 1;
        let entry = Entry {
            key: key.into_boxed_slice(),
            status: decision.status.clone(),
            expires: now.0.saturating_add(
                u64::try_from(decision.valid_duration.as_nanos()).unwrap_or(u64::MAX),
            ),
            uses_left,
            seq: inner.seq,
        };
        let idx = match inner.shapes.iter().position(|s| *s.refs == *referenced) {
            Some(i) => i,
            None if inner.shapes.len() < MAX_SHAPES => {
                inner.shapes.push(Shape {
                    refs: Arc::new(referenced.clone()),
                    entries: HashMap::default(),
                });
                inner.shapes.len() - 1
            }
            None => return,
        };
        let bucket = inner.shapes[idx].entries.entry(hash).or_default();
        // The same request raced in twice: keep one entry.
        if let Some(e) = bucket.iter_mut().find(|e| e.key == entry.key) {
            *e = entry;
            return;
        }
        bucket.push(entry);
        inner.len += 1;
    }
}

/// Drops expired entries; if still full, the oldest eighth.
fn evict(inner: &mut Inner, now: Tick, capacity: usize) {
    let mut len = 0;
    for shape in &mut inner.shapes {
        shape.entries.retain(|_, b| {
            b.retain(|e| e.expires > now.0 && e.uses_left > 0);
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
    use mixer_attributes::{AttrId, OwnedBag, StringMap, Value};
    use std::sync::atomic::Ordering;

    struct Cached {
        refs: ReferencedAttributes,
        decision: CheckDecision,
    }

    fn decision(refs: ReferencedAttributes) -> Cached {
        Cached {
            refs,
            decision: CheckDecision {
                status: Status::OK,
                valid_duration: Duration::from_secs(60),
                valid_use_count: 100,
            },
        }
    }

    fn insert(cache: &CheckCache, bag: &OwnedBag, generation: u64, d: &Cached) {
        cache.insert(bag, cache.now(), generation, &d.refs, &d.decision);
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
        insert(&cache, &alice, 0, &decision(refs));
        assert!(cache.get(&alice, cache.now(), |_| ()).is_some());
        // Same user, but the attribute recorded absent is now present.
        let with_path = alice
            .clone()
            .with("request.path", Value::String("/".into()));
        assert!(cache.get(&with_path, cache.now(), |_| ()).is_none());
        // Another value of an EXACT attribute.
        let bob = OwnedBag::new().with("source.user", Value::String("bob".into()));
        assert!(cache.get(&bob, cache.now(), |_| ()).is_none());
        // An unreferenced attribute does not matter.
        let other = alice.with("request.host", Value::String("h".into()));
        assert!(cache.get(&other, cache.now(), |_| ()).is_some());
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
            insert(&cache, &b, 0, &d);
            assert!(cache.len() <= 8);
        }
        // The newest survive eviction.
        let last = OwnedBag::new().with("source.user", Value::String("u99".into()));
        assert!(cache.get(&last, cache.now(), |_| ()).is_some());
        // A decision of an older configuration is not taken in.
        cache.clear(2);
        insert(&cache, &last, 1, &d);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn values_are_delimited_in_the_key() {
        let cache = CheckCache::new(16, Arc::new(ManualClock::new()), &Handle::current());
        let mut refs = ReferencedAttributes::new();
        refs.record(AttrId::of("source.user"), Condition::Exact);
        refs.record(AttrId::of("request.path"), Condition::Exact);
        refs.record(AttrId::of("request.headers"), Condition::Exact);
        let bag = |user: &str, path: &str, headers: &[(&str, &str)]| {
            OwnedBag::new()
                .with("source.user", Value::String(user.into()))
                .with("request.path", Value::String(path.into()))
                .with(
                    "request.headers",
                    Value::StringMap(headers.iter().copied().collect::<StringMap>()),
                )
        };
        let stored = bag("ab", "c", &[("k", "vw")]);
        insert(&cache, &stored, 0, &decision(refs));
        assert!(cache.get(&stored, cache.now(), |_| ()).is_some());
        // The same bytes split differently between values, or between a
        // map's key and value, are other requests.
        assert!(
            cache
                .get(&bag("a", "bc", &[("k", "vw")]), cache.now(), |_| ())
                .is_none()
        );
        assert!(
            cache
                .get(&bag("ab", "c", &[("kv", "w")]), cache.now(), |_| ())
                .is_none()
        );
        assert!(
            cache
                .get(
                    &bag("ab", "c", &[("k", "vw"), ("", "")]),
                    cache.now(),
                    |_| ()
                )
                .is_none()
        );
        let typed = OwnedBag::new()
            .with("source.user", Value::String("ab".into()))
            .with("request.path", Value::Bytes(b"c".to_vec()))
            .with(
                "request.headers",
                Value::StringMap([("k", "vw")].into_iter().collect()),
            );
        assert!(cache.get(&typed, cache.now(), |_| ()).is_none());
    }

    #[test]
    fn a_key_hashes_the_same_however_it_is_split() {
        let bytes: Vec<u8> = (0..3 * BLOCK as u32 + 5)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for len in 0..bytes.len() {
            let key = &bytes[..len];
            for step in [
                1,
                3,
                4,
                7,
                8,
                13,
                16,
                17,
                31,
                32,
                33,
                BLOCK - 1,
                BLOCK,
                BLOCK + 3,
            ] {
                let mut p = Probe::new();
                for piece in key.chunks(step) {
                    p.put(piece);
                }
                assert_eq!(p.finish(), hash_key(key), "len {len} step {step}");
                assert_eq!(p.key().is_some(), len <= BLOCK);
                if let Some(k) = p.key() {
                    assert_eq!(k, key);
                }
            }
        }
    }

    #[test]
    fn keys_compare_as_slices_do() {
        let a: Vec<u8> = (0..BLOCK as u32 + 9).map(|i| (i * 7) as u8).collect();
        for n in 0..a.len() {
            let key = &a[..n];
            assert!(same(key, key), "len {n}");
            assert!(!same(key, &a[..n + 1]), "len {n}");
            for at in 0..n {
                let mut other = key.to_vec();
                other[at] ^= 0x40;
                assert!(!same(key, &other), "len {n}, byte {at}");
            }
        }
    }

    #[tokio::test]
    async fn keys_around_and_past_the_stack_block() {
        let cache = CheckCache::new(1024, Arc::new(ManualClock::new()), &Handle::current());
        let mut refs = ReferencedAttributes::new();
        refs.record(AttrId::of("request.path"), Condition::Exact);
        refs.record(AttrId::of("source.user"), Condition::Exact);
        let d = decision(refs);
        let bag = |path: &str, user: &str| {
            OwnedBag::new()
                .with("request.path", Value::String(path.into()))
                .with("source.user", Value::String(user.into()))
        };
        // Each string takes 9 bytes besides its own: keys from well inside
        // one block to several blocks long, one exactly a block.
        for n in (BLOCK - 40..BLOCK + 40).chain([3 * BLOCK, 5000]) {
            let path = "p".repeat(n);
            insert(&cache, &bag(&path, "alice"), 0, &d);
            assert!(
                cache
                    .get(&bag(&path, "alice"), cache.now(), |_| ())
                    .is_some()
            );
            // Differing only after the first block, or only in its last
            // byte, or by a byte moved from one value to the other.
            assert!(
                cache
                    .get(&bag(&path, "alicf"), cache.now(), |_| ())
                    .is_none()
            );
            let mut other = path.clone();
            other.replace_range(n - 1.., "q");
            assert!(
                cache
                    .get(&bag(&other, "alice"), cache.now(), |_| ())
                    .is_none()
            );
            assert!(
                cache
                    .get(&bag(&path[1..], "palice"), cache.now(), |_| ())
                    .is_none()
            );
        }
    }

    #[test]
    fn use_count_is_exact_under_concurrency() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let cache = CheckCache::new(16, Arc::new(ManualClock::new()), rt.handle());
        let mut refs = ReferencedAttributes::new();
        refs.record(AttrId::of("source.user"), Condition::Exact);
        let mut d = decision(refs);
        d.decision.valid_use_count = 1001;
        let bag = OwnedBag::new().with("source.user", Value::String("alice".into()));
        // Used once by the check that made it: 1000 uses left.
        insert(&cache, &bag, 0, &d);
        let served = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        if cache.get(&bag, cache.now(), |_| ()).is_some() {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(served.into_inner(), 1000);
        assert_eq!(cache.hits(), (1000, 0));
    }
}
