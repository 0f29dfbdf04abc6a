//! Recording which attributes a decision read, for caching.

use std::cell::RefCell;
use std::sync::Arc;

use crate::bag::Bag;
use crate::intern::AttrId;
use crate::value::{StringMap, ValueRef};

/// How a referenced attribute (or map key) was found.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    /// It was looked up and was absent; a cached answer holds while it stays absent.
    Absence,
    /// It was present; a cached answer holds while it keeps this exact value.
    Exact,
}

/// The attributes (and string-map keys) one evaluation looked up.
///
/// Two requests that agree on every `Exact` entry's value and every
/// `Absence` give the same answer, which is what a check cache keys on.
/// Reused across requests with [`ReferencedAttributes::clear`] so that
/// recording allocates nothing in the steady state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferencedAttributes {
    attrs: Vec<(AttrId, Condition)>,
    keys: Vec<(AttrId, Arc<str>, Condition)>,
}

impl ReferencedAttributes {
    /// An empty set.
    pub fn new() -> ReferencedAttributes {
        ReferencedAttributes::default()
    }

    /// Records a lookup of a whole attribute. Recording the same attribute
    /// again keeps the first condition (the bag did not change in between).
    pub fn record(&mut self, id: AttrId, cond: Condition) {
        if !self.attrs.iter().any(|(a, _)| *a == id) {
            self.attrs.push((id, cond));
        }
    }

    /// Records a lookup of key `key` in the present map attribute `id`.
    pub fn record_key(&mut self, id: AttrId, key: &Arc<str>, cond: Condition) {
        if !self.keys.iter().any(|(a, k, _)| *a == id && k == key) {
            self.keys.push((id, key.clone(), cond));
        }
    }

    /// Adds everything `other` recorded.
    pub fn extend(&mut self, other: &ReferencedAttributes) {
        for (id, c) in &other.attrs {
            self.record(*id, *c);
        }
        for (id, k, c) in &other.keys {
            self.record_key(*id, k, *c);
        }
    }

    /// Whole attributes looked up, in first-lookup order.
    pub fn attributes(&self) -> &[(AttrId, Condition)] {
        &self.attrs
    }

    /// Map keys looked up, in first-lookup order.
    pub fn map_keys(&self) -> &[(AttrId, Arc<str>, Condition)] {
        &self.keys
    }

    /// Forgets everything, keeping the storage.
    pub fn clear(&mut self) {
        self.attrs.clear();
        self.keys.clear();
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty() && self.keys.is_empty()
    }
}

/// What looking a key up in a map attribute found.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum KeyLookup<'a> {
    /// The attribute is absent (or not a map).
    NoMap,
    /// The map is present but has no such key.
    NoKey,
    /// The key's value.
    Found(&'a str),
}

/// A view of a bag that records every lookup made through it.
///
/// ```
/// use mixer_attributes::{AttrId, Bag, Condition, OwnedBag, ReferencedAttributes, Tracking, Value};
///
/// let path = AttrId::of("request.path");
/// let host = AttrId::of("request.host");
/// let bag = OwnedBag::new().with("request.path", Value::String("/a".into()));
/// let mut refs = ReferencedAttributes::new();
/// {
///     let t = Tracking::new(&bag, &mut refs);
///     assert!(t.get(path).is_some());
///     assert!(t.get(host).is_none());
/// }
/// assert_eq!(refs.attributes(), &[(path, Condition::Exact), (host, Condition::Absence)]);
/// ```
pub struct Tracking<'a, B: ?Sized> {
    bag: &'a B,
    refs: RefCell<&'a mut ReferencedAttributes>,
}

impl<'a, B: Bag + ?Sized> Tracking<'a, B> {
    /// A recording view of `bag` that writes into `refs`.
    pub fn new(bag: &'a B, refs: &'a mut ReferencedAttributes) -> Self {
        Tracking {
            bag,
            refs: RefCell::new(refs),
        }
    }

    /// The bag underneath (reads through it are not recorded).
    pub fn inner(&self) -> &'a B {
        self.bag
    }

    /// Looks `key` up in map attribute `id`, recording the key (not the whole
    /// map) when the map is present and the attribute's absence otherwise.
    pub fn get_key(&self, id: AttrId, key: &Arc<str>) -> KeyLookup<'a> {
        match self.bag.get(id) {
            Some(ValueRef::StringMap(m)) => {
                let m: &'a StringMap = m;
                match m.get(key) {
                    Some(v) => {
                        self.refs.borrow_mut().record_key(id, key, Condition::Exact);
                        KeyLookup::Found(v)
                    }
                    None => {
                        self.refs
                            .borrow_mut()
                            .record_key(id, key, Condition::Absence);
                        KeyLookup::NoKey
                    }
                }
            }
            Some(_) => {
                self.refs.borrow_mut().record(id, Condition::Exact);
                KeyLookup::NoMap
            }
            None => {
                self.refs.borrow_mut().record(id, Condition::Absence);
                KeyLookup::NoMap
            }
        }
    }
}

impl<B: Bag + ?Sized> Bag for Tracking<'_, B> {
    fn get(&self, id: AttrId) -> Option<ValueRef<'_>> {
        let v = self.bag.get(id);
        let cond = if v.is_some() {
            Condition::Exact
        } else {
            Condition::Absence
        };
        self.refs.borrow_mut().record(id, cond);
        v
    }

    fn for_each(&self, f: &mut dyn FnMut(AttrId, ValueRef<'_>)) {
        self.bag.for_each(&mut |id, v| {
            self.refs.borrow_mut().record(id, Condition::Exact);
            f(id, v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OwnedBag, Value};

    #[test]
    fn keys_recorded_separately() {
        let headers = AttrId::of("request.headers");
        let labels = AttrId::of("source.labels");
        let m: StringMap = [("x", "1")].into_iter().collect();
        let bag = OwnedBag::new().with("request.headers", Value::StringMap(m));
        let mut refs = ReferencedAttributes::new();
        let (x, y): (Arc<str>, Arc<str>) = ("x".into(), "y".into());
        {
            let t = Tracking::new(&bag, &mut refs);
            assert_eq!(t.get_key(headers, &x), KeyLookup::Found("1"));
            assert_eq!(t.get_key(headers, &y), KeyLookup::NoKey);
            assert_eq!(t.get_key(labels, &x), KeyLookup::NoMap);
            assert_eq!(t.get_key(headers, &x), KeyLookup::Found("1"));
        }
        assert_eq!(refs.attributes(), &[(labels, Condition::Absence)]);
        assert_eq!(
            refs.map_keys(),
            &[
                (headers, x, Condition::Exact),
                (headers, y, Condition::Absence)
            ]
        );
    }
}
