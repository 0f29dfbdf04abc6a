//! The [`Bag`] abstraction: what the expression evaluator and adapters read.

use crate::intern::AttrId;
use crate::slots::Slots;
use crate::value::{Value, ValueRef};

/// A read-only set of attributes, looked up by interned id.
///
/// Implemented by the stream decoder's contexts, by [`OwnedBag`], and by
/// [`crate::Tracking`], which records what was read.
pub trait Bag {
    /// The value of attribute `id`, if present.
    fn get(&self, id: AttrId) -> Option<ValueRef<'_>>;

    /// Calls `f` for every present attribute, in no particular order.
    fn for_each(&self, f: &mut dyn FnMut(AttrId, ValueRef<'_>));

    /// The value of the attribute called `name`, if the name is known and the
    /// attribute present. Hashes the name: for tools and tests, not hot paths.
    fn get_by_name(&self, name: &str) -> Option<ValueRef<'_>> {
        crate::Interner::global()
            .get(name)
            .and_then(|id| self.get(id))
    }
}

impl<B: Bag + ?Sized> Bag for &B {
    fn get(&self, id: AttrId) -> Option<ValueRef<'_>> {
        (**self).get(id)
    }
    fn for_each(&self, f: &mut dyn FnMut(AttrId, ValueRef<'_>)) {
        (**self).for_each(f)
    }
}

/// A bag that owns its values, indexed by id (densely for low ids, see
/// [`crate::DENSE_IDS`]). Handy for tests, tools
/// and hosts that build attributes themselves (an embedding proxy).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnedBag {
    values: Slots,
    len: usize,
}

impl OwnedBag {
    /// An empty bag.
    pub fn new() -> OwnedBag {
        OwnedBag::default()
    }

    /// Sets attribute `id`, returning the previous value.
    pub fn set(&mut self, id: AttrId, value: Value) -> Option<Value> {
        let old = self.values.slot(id).replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Sets the attribute called `name` (interning it).
    pub fn with(mut self, name: &str, value: Value) -> OwnedBag {
        self.set(AttrId::of(name), value);
        self
    }

    /// Removes attribute `id`.
    pub fn remove(&mut self, id: AttrId) -> Option<Value> {
        let old = self.values.remove(id);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// Empties the bag, keeping its storage.
    pub fn clear(&mut self) {
        self.values.clear();
        self.len = 0;
    }

    /// Number of present attributes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no attribute is present.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Present attributes in id order.
    pub fn iter(&self) -> impl Iterator<Item = (AttrId, &Value)> + '_ {
        self.values.iter()
    }

    /// A copy of any bag.
    pub fn copy_of<B: Bag + ?Sized>(bag: &B) -> OwnedBag {
        let mut out = OwnedBag::new();
        bag.for_each(&mut |id, v| {
            out.set(id, v.to_owned());
        });
        out
    }
}

impl Bag for OwnedBag {
    #[inline]
    fn get(&self, id: AttrId) -> Option<ValueRef<'_>> {
        self.values.get(id).map(Value::as_ref)
    }

    fn for_each(&self, f: &mut dyn FnMut(AttrId, ValueRef<'_>)) {
        for (id, v) in self.iter() {
            f(id, v.as_ref());
        }
    }
}
