//! Cache keys: which attributes (and which string-map keys) decide whether
//! two requests get the same answer.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;

use mixer_attributes::{AttrId, Bag, ReferencedAttributes, ValueRef};

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

/// Buffers a key is encoded into, reused from call to call so that a
/// lookup allocates nothing once they have grown to a request's size.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// The encoded key.
    pub(crate) key: Vec<u8>,
    ids: Vec<AttrId>,
}

impl Scratch {
    /// Past these sizes a buffer is dropped after use rather than kept
    /// for the thread's next request.
    const MAX_KEPT_BYTES: usize = 64 * 1024;
    const MAX_KEPT_IDS: usize = 4096;

    const fn new() -> Scratch {
        Scratch {
            key: Vec::new(),
            ids: Vec::new(),
        }
    }

    fn trim(&mut self) {
        if self.key.capacity() > Self::MAX_KEPT_BYTES {
            self.key = Vec::new();
        }
        if self.ids.capacity() > Self::MAX_KEPT_IDS {
            self.ids = Vec::new();
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

/// Runs `f` with this thread's scratch buffers, or with fresh ones when
/// they are in use (a bag calling back into the cache) or gone (thread
/// exit).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut f = Some(f);
    let done = SCRATCH.try_with(|cell| {
        let mut s = cell.try_borrow_mut().ok()?;
        let r = f.take().map(|f| f(&mut s));
        s.trim();
        r
    });
    if let Ok(Some(r)) = done {
        return r;
    }
    match f.take() {
        Some(f) => f(&mut Scratch::new()),
        None => unreachable!("`f` is taken only when it ran"),
    }
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

    /// Encodes what `bag` holds under this set into `scratch.key`, in one
    /// pass over the bag: two bags get the same bytes exactly when they
    /// hold the same values under the set (semantic strings as strings,
    /// doubles by their bits), so a stored key is recognised by comparing
    /// bytes.
    pub(crate) fn encode<B: Bag + ?Sized>(&self, bag: &B, scratch: &mut Scratch) {
        let out = &mut scratch.key;
        out.clear();
        match self {
            KeySet::WholeBag => {
                // Bags iterate in no particular order; the bags of this
                // workspace iterate in id order, and anything else is
                // sorted on a second pass.
                let mut last = -1i64;
                let mut sorted = true;
                bag.for_each(&mut |id, v| {
                    let id = id.as_u32();
                    sorted &= i64::from(id) > last;
                    last = i64::from(id);
                    put_value(out, id, v);
                });
                if !sorted {
                    out.clear();
                    let ids = &mut scratch.ids;
                    ids.clear();
                    bag.for_each(&mut |id, _| ids.push(id));
                    ids.sort_unstable_by_key(|id| id.as_u32());
                    ids.dedup();
                    for id in ids.iter() {
                        if let Some(v) = bag.get(*id) {
                            put_value(out, id.as_u32(), v);
                        }
                    }
                }
            }
            KeySet::Parts(parts) => {
                for p in parts {
                    match p.read(bag) {
                        Some(v) => put_value(out, 1, v),
                        None => out.extend_from_slice(&0u64.to_le_bytes()),
                    }
                }
            }
        }
    }
}

/// Appends `v` behind a header word: `prefix` (an attribute id, or 1 for
/// a present part) in the low 32 bits, the type tag in the next 8 and a
/// small field in the top 24 (a length, a count or a bool; lengths that do
/// not fit escape to a following u64). Fixed-size fields or the bytes
/// follow. Whole words keep the writes few: this runs on every cache
/// lookup.
// Inlined into the bag's callback: a call per value costs more than the
// value's own writes.
#[inline(always)]
fn put_value(out: &mut Vec<u8>, prefix: u32, v: ValueRef<'_>) {
    match v {
        // Semantic values travel as their wire type, so a URI and the same
        // string are the same key.
        ValueRef::String(s)
        | ValueRef::EmailAddress(s)
        | ValueRef::Uri(s)
        | ValueRef::DnsName(s) => put_var(out, prefix, 0, s.as_bytes()),
        ValueRef::Bytes(b) => put_var(out, prefix, 6, b),
        ValueRef::Int64(x) => {
            out.extend_from_slice(&head(prefix, 1, 0).to_le_bytes());
            out.extend_from_slice(&x.to_le_bytes());
        }
        ValueRef::Double(x) => {
            out.extend_from_slice(&head(prefix, 2, 0).to_le_bytes());
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        ValueRef::Bool(x) => out.extend_from_slice(&head(prefix, 3, u32::from(x)).to_le_bytes()),
        ValueRef::Timestamp(t) => {
            out.extend_from_slice(&head(prefix, 4, 0).to_le_bytes());
            out.extend_from_slice(&t.seconds().to_le_bytes());
            out.extend_from_slice(&t.nanos().to_le_bytes());
        }
        ValueRef::Duration(d) => {
            out.extend_from_slice(&head(prefix, 5, 0).to_le_bytes());
            out.extend_from_slice(&d.as_secs().to_le_bytes());
            out.extend_from_slice(&d.subsec_nanos().to_le_bytes());
        }
        ValueRef::IpAddress(IpAddr::V4(ip)) => {
            out.extend_from_slice(&head(prefix, 7, 0).to_le_bytes());
            out.extend_from_slice(&ip.octets());
        }
        ValueRef::IpAddress(IpAddr::V6(ip)) => {
            out.extend_from_slice(&head(prefix, 8, 0).to_le_bytes());
            out.extend_from_slice(&ip.octets());
        }
        ValueRef::StringMap(m) => {
            // Entries come in key order: equal maps encode alike.
            put_head(out, prefix, 9, m.len());
            for (k, v) in m.iter() {
                match (u32::try_from(k.len()), u32::try_from(v.len())) {
                    (Ok(kl), Ok(vl)) if kl != u32::MAX => {
                        out.extend_from_slice(&(u64::from(kl) | u64::from(vl) << 32).to_le_bytes());
                    }
                    _ => {
                        out.extend_from_slice(&u64::from(u32::MAX).to_le_bytes());
                        out.extend_from_slice(&(k.len() as u64).to_le_bytes());
                        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                    }
                }
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(v.as_bytes());
            }
        }
    }
}

/// The small field's escape: the length follows as a u64.
const ESCAPE: u32 = 0xFF_FFFF;

#[inline]
fn head(prefix: u32, tag: u8, small: u32) -> u64 {
    u64::from(prefix) | u64::from(tag) << 32 | u64::from(small) << 40
}

#[inline]
fn put_head(out: &mut Vec<u8>, prefix: u32, tag: u8, n: usize) {
    match u32::try_from(n) {
        Ok(small) if small < ESCAPE => {
            out.extend_from_slice(&head(prefix, tag, small).to_le_bytes())
        }
        _ => {
            out.extend_from_slice(&head(prefix, tag, ESCAPE).to_le_bytes());
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
    }
}

#[inline]
fn put_var(out: &mut Vec<u8>, prefix: u32, tag: u8, b: &[u8]) {
    put_head(out, prefix, tag, b.len());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixer_attributes::StringMap;
    use mixer_attributes::{OwnedBag, Value};
    use proptest::prelude::*;

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

    fn enc<B: Bag + ?Sized>(set: &KeySet, bag: &B) -> Vec<u8> {
        let mut s = Scratch::default();
        set.encode(bag, &mut s);
        s.key
    }

    #[test]
    fn map_key_parts_ignore_other_keys() {
        let set = KeySet::Parts(vec![KeyPart::parse("request.headers/:method").unwrap()]);
        let bag = |m: &str, other: &str| {
            let map: StringMap = [(":method", m), ("x-other", other)].into_iter().collect();
            OwnedBag::new().with("request.headers", Value::StringMap(map))
        };
        let stored = enc(&set, &bag("GET", "1"));
        assert_eq!(stored, enc(&set, &bag("GET", "2")));
        assert_ne!(stored, enc(&set, &bag("POST", "1")));
        assert_ne!(stored, enc(&set, &OwnedBag::new()));
    }

    #[test]
    fn whole_bag_needs_identical_bags() {
        let set = KeySet::WholeBag;
        let a = OwnedBag::new()
            .with("a", Value::Int64(1))
            .with("b", Value::String("x".into()));
        let stored = enc(&set, &a);
        assert_eq!(stored, enc(&set, &a.clone()));
        assert_ne!(stored, enc(&set, &a.clone().with("c", Value::Bool(true))));
        assert_ne!(stored, enc(&set, &a.clone().with("a", Value::Int64(2))));
    }

    /// A bag that iterates in reverse id order.
    struct Reversed(OwnedBag);

    impl Bag for Reversed {
        fn get(&self, id: AttrId) -> Option<ValueRef<'_>> {
            self.0.get(id)
        }
        fn for_each(&self, f: &mut dyn FnMut(AttrId, ValueRef<'_>)) {
            let all: Vec<_> = self.0.iter().collect();
            for (id, v) in all.into_iter().rev() {
                f(id, v.as_ref());
            }
        }
    }

    #[test]
    fn iteration_order_does_not_matter() {
        let a = OwnedBag::new()
            .with("keys.test.x", Value::Int64(1))
            .with("keys.test.y", Value::String("y".into()))
            .with("keys.test.z", Value::Bool(false));
        let mut s = Scratch::default();
        KeySet::WholeBag.encode(&Reversed(a.clone()), &mut s);
        assert_eq!(s.key, enc(&KeySet::WholeBag, &a));
    }

    #[test]
    fn semantic_strings_are_strings_and_doubles_compare_by_bits() {
        let set = KeySet::WholeBag;
        let with = |v| OwnedBag::new().with("keys.test.v", v);
        assert_eq!(
            enc(&set, &with(Value::Uri("http://x".into()))),
            enc(&set, &with(Value::String("http://x".into())))
        );
        assert_eq!(
            enc(&set, &with(Value::Double(f64::NAN))),
            enc(&set, &with(Value::Double(f64::NAN)))
        );
        assert_ne!(
            enc(&set, &with(Value::Double(0.0))),
            enc(&set, &with(Value::Double(-0.0)))
        );
        let v4: std::net::IpAddr = [10, 0, 0, 1].into();
        let mapped = std::net::IpAddr::V6(std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_ne!(
            enc(&set, &with(Value::IpAddress(v4))),
            enc(&set, &with(Value::IpAddress(mapped)))
        );
    }

    fn value() -> impl Strategy<Value = Value> {
        // Tiny alphabets, so that boundaries between fields are where two
        // different bags would most easily encode alike.
        let text = "[ab]{0,3}";
        prop_oneof![
            text.prop_map(Value::String),
            (-2i64..2).prop_map(Value::Int64),
            any::<bool>().prop_map(Value::Bool),
            proptest::collection::vec(0u8..2, 0..4).prop_map(Value::Bytes),
            proptest::collection::btree_map(text, text, 0..3).prop_map(|m| {
                Value::StringMap(m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            }),
        ]
    }

    fn bag() -> impl Strategy<Value = OwnedBag> {
        let names = ["keys.prop.a", "keys.prop.b", "keys.prop.c"];
        proptest::collection::vec(proptest::option::of(value()), 3).prop_map(move |vs| {
            let mut bag = OwnedBag::new();
            for (name, v) in names.iter().zip(vs) {
                if let Some(v) = v {
                    bag.set(AttrId::of(name), v);
                }
            }
            bag
        })
    }

    proptest! {
        /// Equal keys exactly when the bags are equal: the encoding is what
        /// a hit is confirmed by.
        #[test]
        fn encodings_are_equal_exactly_when_bags_are(a in bag(), b in bag()) {
            let same = a.iter().eq(b.iter());
            prop_assert_eq!(enc(&KeySet::WholeBag, &a) == enc(&KeySet::WholeBag, &b), same);
            let parts = KeySet::Parts(
                ["keys.prop.a", "keys.prop.b", "keys.prop.c"]
                    .iter()
                    .map(|n| KeyPart::parse(n).unwrap())
                    .collect(),
            );
            prop_assert_eq!(enc(&parts, &a) == enc(&parts, &b), same);
        }
    }
}
