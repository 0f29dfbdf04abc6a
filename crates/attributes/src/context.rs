//! One attribute context of a stream: the bag that deltas update.

use std::sync::Arc;

use crate::bag::{Bag, OwnedBag};
use crate::intern::AttrId;
use crate::slots::Slots;
use crate::value::{StringMap, Value, ValueRef};

/// The attributes of one `attribute_context` of a stream, as the deltas
/// applied so far leave them.
///
/// Values are stored by [`AttrId`], densely for the ids the vocabulary and
/// config get (see [`crate::DENSE_IDS`]), so [`Bag::get`] is usually one
/// bounds check and one load. Overwriting a string, bytes or map value reuses the
/// storage already held, so a steady-state update allocates only when a
/// value outgrows its predecessor.
///
/// Cloning is copy-on-write: a clone shares the values until one side is
/// updated, and only an update made while a clone is still alive copies
/// them. A server hands a check its own copy of the context this way (the
/// next request of the stream may update the context while the check
/// waits on a handler), and pays for a real copy only when a check is
/// still running when that next update comes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    values: Arc<Slots>,
    len: usize,
}

/// A context opened for one update: its values unshared once, up front,
/// rather than at every value written.
pub(crate) struct Edit<'c> {
    values: &'c mut Slots,
    len: &'c mut usize,
}

impl Context {
    /// Number of attributes present.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no attribute is present.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when attribute `id` is present.
    #[inline]
    pub fn contains(&self, id: AttrId) -> bool {
        self.values.get(id).is_some()
    }

    /// Present attributes in id order.
    pub fn iter(&self) -> impl Iterator<Item = (AttrId, ValueRef<'_>)> + '_ {
        self.values.iter().map(|(id, v)| (id, v.as_ref()))
    }

    /// An owned copy of the attributes.
    pub fn to_owned_bag(&self) -> OwnedBag {
        OwnedBag::copy_of(self)
    }

    /// Opens the context for an update (copying its values first if a
    /// clone still shares them).
    pub(crate) fn edit(&mut self) -> Edit<'_> {
        Edit {
            values: Arc::make_mut(&mut self.values),
            len: &mut self.len,
        }
    }
}

impl Edit<'_> {
    pub(crate) fn clear(&mut self) {
        if *self.len > 0 {
            self.values.clear();
            *self.len = 0;
        }
    }

    pub(crate) fn remove(&mut self, id: AttrId) {
        if self.values.remove(id).is_some() {
            *self.len -= 1;
        }
    }

    /// Sets a scalar value (nothing to reuse).
    pub(crate) fn set(&mut self, id: AttrId, value: Value) {
        if self.values.slot(id).replace(value).is_none() {
            *self.len += 1;
        }
    }

    /// Sets a string, reusing the old string's buffer.
    pub(crate) fn set_str(&mut self, id: AttrId, s: &str) {
        let slot = self.values.slot(id);
        match slot {
            Some(Value::String(old)) => {
                old.clear();
                old.push_str(s);
            }
            _ => {
                let was = slot.replace(Value::String(s.to_owned()));
                if was.is_none() {
                    *self.len += 1;
                }
            }
        }
    }

    /// Sets bytes, reusing the old buffer.
    pub(crate) fn set_bytes(&mut self, id: AttrId, b: &[u8]) {
        let slot = self.values.slot(id);
        match slot {
            Some(Value::Bytes(old)) => {
                old.clear();
                old.extend_from_slice(b);
            }
            _ => {
                let was = slot.replace(Value::Bytes(b.to_vec()));
                if was.is_none() {
                    *self.len += 1;
                }
            }
        }
    }

    /// The map of attribute `id`, created empty (replacing a value of another
    /// type) if needed, to merge keys into.
    pub(crate) fn map_mut(&mut self, id: AttrId) -> &mut StringMap {
        let slot = self.values.slot(id);
        if slot.is_none() {
            *self.len += 1;
        }
        if !matches!(slot, Some(Value::StringMap(_))) {
            *slot = Some(Value::StringMap(StringMap::new()));
        }
        match slot {
            Some(Value::StringMap(m)) => m,
            _ => unreachable!("just set to a map"),
        }
    }
}

/// Merges one key into a map, reusing the old value's buffer.
pub(crate) fn merge_key(m: &mut StringMap, key: &Arc<str>, value: &str) {
    match m.get_mut(key) {
        Some(old) => {
            old.clear();
            old.push_str(value);
        }
        None => {
            m.insert(key.clone(), value.to_owned());
        }
    }
}

impl Bag for Context {
    #[inline]
    fn get(&self, id: AttrId) -> Option<ValueRef<'_>> {
        self.values.get(id).map(Value::as_ref)
    }

    fn for_each(&self, f: &mut dyn FnMut(AttrId, ValueRef<'_>)) {
        for (id, v) in self.iter() {
            f(id, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_32_bytes_as_the_limits_document() {
        assert_eq!(std::mem::size_of::<Option<Value>>(), 32);
    }

    #[test]
    fn map_mut_replaces_other_types_and_counts_once() {
        let id = AttrId::of("context.test.m");
        let mut c = Context::default();
        c.edit().set_str(id, "x");
        assert_eq!(c.len(), 1);
        merge_key(c.edit().map_mut(id), &Arc::from("k"), "v");
        assert_eq!(c.len(), 1);
        let want: StringMap = [("k", "v")].into_iter().collect();
        assert_eq!(c.get(id), Some(ValueRef::StringMap(&want)));
        c.edit().remove(id);
        assert!(c.is_empty() && !c.contains(id));
    }

    #[test]
    fn a_clone_keeps_its_values_when_the_original_is_updated() {
        let (a, b) = (AttrId::of("context.test.a"), AttrId::of("context.test.b"));
        let mut c = Context::default();
        c.edit().set_str(a, "before");
        let copy = c.clone();
        // Shared until one side is updated.
        assert!(Arc::ptr_eq(&c.values, &copy.values));
        {
            let mut e = c.edit();
            e.set_str(a, "after");
            e.set(b, Value::Int64(7));
        }
        assert!(!Arc::ptr_eq(&c.values, &copy.values));
        assert_eq!(copy.get(a), Some(ValueRef::String("before")));
        assert_eq!((copy.get(b), copy.len()), (None, 1));
        assert_eq!(c.get(a), Some(ValueRef::String("after")));
        assert_eq!((c.get(b), c.len()), (Some(ValueRef::Int64(7)), 2));
        // Once the clone is gone, updates write in place again.
        drop(copy);
        let before = Arc::as_ptr(&c.values);
        c.edit().set_str(a, "again");
        assert_eq!(Arc::as_ptr(&c.values), before);
    }
}
