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
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mixer_adapters::Status;
use mixer_attributes::{Bag, Condition, ReferencedAttributes, Value, ValueRef};
use parking_lot::Mutex;

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
    entries: HashMap<u64, Vec<Entry>>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    shapes: Vec<Shape>,
    len: usize,
    seq: u64,
}

/// Bounded cache of check decisions.
pub(crate) struct CheckCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// Most shapes kept: each is one distinct set of looked-up attributes, and
/// a configuration yields few.
const MAX_SHAPES: usize = 64;

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
    let mut h = std::collections::hash_map::DefaultHasher::new();
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
    pub(crate) fn new(capacity: usize) -> CheckCache {
        CheckCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().len
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
            let Some(key) = key_of(&shape.refs, bag) else {
                continue;
            };
            let Some(bucket) = shape.entries.get_mut(&key) else {
                continue;
            };
            let Some(pos) = bucket
                .iter()
                .position(|e| same(&shape.refs, bag, &e.values))
            else {
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
                    entries: HashMap::new(),
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
