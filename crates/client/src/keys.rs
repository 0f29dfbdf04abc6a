//! Cache keys: which attributes (and which string-map keys) decide whether
//! two requests get the same answer.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use mixer_attributes::{AttrId, Bag, OwnedBag, ReferencedAttributes, Value, ValueRef};

use crate::error::Error;

/// One part of a cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyPart {
    /// A whole attribute (present with a value, or absent).
    Attribute(AttrId),
    /// One key of a string-map attribute (`request.headers/:method`).
    MapKey(AttrId, Arc<str>),
}

impl KeyPart {
    /// Parses `name` or `name/key`; the first `/` separates the map key, so
    /// `request.headers/:path` names header `:path`.
    pub fn parse(text: &str) -> Result<KeyPart, Error> {
        let bad = |reason| Error::InvalidCacheKey {
            key: text.to_string(),
            reason,
        };
        match text.split_once('/') {
            None if text.is_empty() => Err(bad("empty attribute name")),
            None => Ok(KeyPart::Attribute(AttrId::of(text))),
            Some(("", _)) => Err(bad("empty attribute name before `/`")),
            Some((_, "")) => Err(bad("empty map key after `/`")),
            Some((name, key)) => Ok(KeyPart::MapKey(AttrId::of(name), Arc::from(key))),
        }
    }

    fn order(&self) -> (u32, Option<&str>) {
        match self {
            KeyPart::Attribute(id) => (id.as_u32(), None),
            KeyPart::MapKey(id, k) => (id.as_u32(), Some(k)),
        }
    }

    fn read<'a, B: Bag + ?Sized>(&self, bag: &'a B) -> Option<ValueRef<'a>> {
        match self {
            KeyPart::Attribute(id) => bag.get(*id),
            KeyPart::MapKey(id, key) => match bag.get(*id) {
                Some(ValueRef::StringMap(m)) => m.get(key).map(ValueRef::String),
                _ => None,
            },
        }
    }
}

/// The attributes a cached answer depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum KeySet {
    /// Every attribute of the request: always correct, hits only on
    /// identical requests.
    WholeBag,
    /// These parts, each present with a value or absent.
    Parts(Vec<KeyPart>),
}

/// The values a cached answer was stored under.
#[derive(Debug)]
pub(crate) enum StoredKey {
    WholeBag(OwnedBag),
    Parts(Vec<Option<Value>>),
}

impl KeySet {
    /// The set a decision's referenced attributes describe: every `EXACT`
    /// entry must keep its value and every `ABSENCE` entry stay absent,
    /// which is what reading "value or absent" of each part checks.
    pub(crate) fn from_referenced(refs: &ReferencedAttributes) -> KeySet {
        let mut parts: Vec<KeyPart> = refs
            .attributes()
            .iter()
            .map(|(id, _)| KeyPart::Attribute(*id))
            .chain(
                refs.map_keys()
                    .iter()
                    .map(|(id, k, _)| KeyPart::MapKey(*id, k.clone())),
            )
            .collect();
        parts.sort_by(|a, b| a.order().cmp(&b.order()));
        parts.dedup();
        KeySet::Parts(parts)
    }

    /// A hash of what `bag` holds under this set; allocation-free.
    pub(crate) fn hash<B: Bag + ?Sized>(&self, bag: &B) -> u64 {
        match self {
            KeySet::WholeBag => {
                // Order-independent: bags iterate in no particular order.
                let mut sum = 0u64;
                let mut count = 0u64;
                bag.for_each(&mut |id, v| {
                    let mut h = FxHasher::default();
                    id.as_u32().hash(&mut h);
                    hash_value(v, &mut h);
                    sum = sum.wrapping_add(h.finish());
                    count += 1;
                });
                sum ^ count.rotate_left(32)
            }
            KeySet::Parts(parts) => {
                let mut h = FxHasher::default();
                for p in parts {
                    match p.read(bag) {
                        Some(v) => {
                            1u8.hash(&mut h);
                            hash_value(v, &mut h);
                        }
                        None => 0u8.hash(&mut h),
                    }
                }
                h.finish()
            }
        }
    }

    /// What to store to recognise `bag` again.
    pub(crate) fn store<B: Bag + ?Sized>(&self, bag: &B) -> StoredKey {
        match self {
            KeySet::WholeBag => StoredKey::WholeBag(OwnedBag::copy_of(bag)),
            KeySet::Parts(parts) => StoredKey::Parts(
                parts
                    .iter()
                    .map(|p| p.read(bag).map(|v| v.to_owned()))
                    .collect(),
            ),
        }
    }

    /// True when `bag` holds exactly what `stored` recorded; allocation-free.
    pub(crate) fn matches<B: Bag + ?Sized>(&self, stored: &StoredKey, bag: &B) -> bool {
        match (self, stored) {
            (KeySet::WholeBag, StoredKey::WholeBag(s)) => {
                let mut count = 0usize;
                let mut same = true;
                bag.for_each(&mut |id, v| {
                    count += 1;
                    if same && !s.get(id).is_some_and(|sv| equal(sv, v)) {
                        same = false;
                    }
                });
                same && count == s.len()
            }
            (KeySet::Parts(parts), StoredKey::Parts(values)) => {
                parts.len() == values.len()
                    && parts
                        .iter()
                        .zip(values)
                        .all(|(p, sv)| match (p.read(bag), sv) {
                            (None, None) => true,
                            (Some(v), Some(sv)) => equal(sv.as_ref(), v),
                            _ => false,
                        })
            }
            _ => false,
        }
    }
}

/// The multiply-rotate hash of rustc (FxHash): a cache key's hash only
/// picks a slot, every hit is confirmed by comparing the values, so speed
/// matters more than resistance to crafted collisions.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        for b in chunks.remainder() {
            self.add(u64::from(*b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Semantic values travel as their wire type, so a URI and the same
/// string are the same key.
fn equal(a: ValueRef<'_>, b: ValueRef<'_>) -> bool {
    match (a, b) {
        (ValueRef::Double(x), ValueRef::Double(y)) => x.to_bits() == y.to_bits(),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

fn hash_value<H: Hasher>(v: ValueRef<'_>, h: &mut H) {
    if let Some(s) = v.as_str() {
        0u8.hash(h);
        s.hash(h);
        return;
    }
    match v {
        ValueRef::Int64(x) => (1u8, x).hash(h),
        ValueRef::Double(x) => (2u8, x.to_bits()).hash(h),
        ValueRef::Bool(x) => (3u8, x).hash(h),
        ValueRef::Timestamp(t) => (4u8, t.seconds(), t.nanos()).hash(h),
        ValueRef::Duration(d) => (5u8, d).hash(h),
        ValueRef::Bytes(b) => (6u8, b).hash(h),
        ValueRef::IpAddress(ip) => (7u8, ip).hash(h),
        ValueRef::StringMap(m) => {
            8u8.hash(h);
            for (k, v) in m.iter() {
                (k, v).hash(h);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixer_attributes::StringMap;

    #[test]
    fn parses_names_and_map_keys() {
        assert_eq!(
            KeyPart::parse("request.headers/:method").unwrap(),
            KeyPart::MapKey(AttrId::of("request.headers"), Arc::from(":method"))
        );
        assert_eq!(
            KeyPart::parse("a/b/c").unwrap(),
            KeyPart::MapKey(AttrId::of("a"), Arc::from("b/c"))
        );
        for bad in ["", "/x", "x/"] {
            assert!(KeyPart::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn map_key_parts_ignore_other_keys() {
        let set = KeySet::Parts(vec![KeyPart::parse("request.headers/:method").unwrap()]);
        let bag = |m: &str, other: &str| {
            let map: StringMap = [(":method", m), ("x-other", other)].into_iter().collect();
            OwnedBag::new().with("request.headers", Value::StringMap(map))
        };
        let stored = set.store(&bag("GET", "1"));
        assert!(set.matches(&stored, &bag("GET", "2")));
        assert_eq!(set.hash(&bag("GET", "1")), set.hash(&bag("GET", "2")));
        assert!(!set.matches(&stored, &bag("POST", "1")));
        assert!(!set.matches(&stored, &OwnedBag::new()));
    }

    #[test]
    fn whole_bag_needs_identical_bags() {
        let set = KeySet::WholeBag;
        let a = OwnedBag::new()
            .with("a", Value::Int64(1))
            .with("b", Value::String("x".into()));
        let stored = set.store(&a);
        assert!(set.matches(&stored, &a.clone()));
        assert!(!set.matches(&stored, &a.clone().with("c", Value::Bool(true))));
        assert!(!set.matches(&stored, &a.clone().with("a", Value::Int64(2))));
    }
}
