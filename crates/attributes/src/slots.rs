//! Value storage by [`AttrId`], shared by [`crate::Context`] and
//! [`crate::OwnedBag`]: dense for low ids, sorted and sparse above.

use crate::intern::AttrId;
use crate::value::Value;

/// Ids below this are stored densely: one 32-byte slot per id up to the
/// highest low id present, so a lookup is a bounds check and a load. Ids at
/// or above it are kept in a sorted list of present values only.
///
/// Why: ids are process-wide and handed out in order. The vocabulary and
/// config names are interned first and get low ids; names that clients
/// invent get high ones. Dense storage up to a high id would let one
/// attribute with such a name cost a context a slot for every id below it
/// (about 1.5 MiB at the peers' share of the default name table); here it
/// costs one entry.
pub const DENSE_IDS: usize = 1024;

#[derive(Clone, Debug, Default)]
pub(crate) struct Slots {
    dense: Vec<Option<Value>>,
    /// Sorted by id; every entry holds a value once its caller is done
    /// (entries are removed, not emptied).
    sparse: Vec<(AttrId, Option<Value>)>,
}

impl Slots {
    #[inline]
    pub(crate) fn get(&self, id: AttrId) -> Option<&Value> {
        let i = id.index();
        if i < DENSE_IDS {
            self.dense.get(i)?.as_ref()
        } else {
            let at = self.sparse.binary_search_by_key(&id, |e| e.0).ok()?;
            self.sparse[at].1.as_ref()
        }
    }

    /// The slot of `id`, made if missing. The caller must leave a value in
    /// a slot it made (a sparse slot left empty would hold memory for an
    /// absent attribute until [`Slots::clear`]).
    #[inline]
    pub(crate) fn slot(&mut self, id: AttrId) -> &mut Option<Value> {
        let i = id.index();
        if i < DENSE_IDS {
            if i >= self.dense.len() {
                self.dense.resize(i + 1, None);
            }
            return &mut self.dense[i];
        }
        let at = match self.sparse.binary_search_by_key(&id, |e| e.0) {
            Ok(at) => at,
            Err(at) => {
                self.sparse.insert(at, (id, None));
                at
            }
        };
        &mut self.sparse[at].1
    }

    pub(crate) fn remove(&mut self, id: AttrId) -> Option<Value> {
        let i = id.index();
        if i < DENSE_IDS {
            self.dense.get_mut(i).and_then(Option::take)
        } else {
            let at = self.sparse.binary_search_by_key(&id, |e| e.0).ok()?;
            self.sparse.remove(at).1
        }
    }

    /// Empties every slot, keeping the dense storage.
    pub(crate) fn clear(&mut self) {
        self.dense.iter_mut().for_each(|v| *v = None);
        self.sparse.clear();
    }

    /// Present values in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (AttrId, &Value)> + '_ {
        let dense = self
            .dense
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (AttrId::from_index(i), v)));
        let sparse = self
            .sparse
            .iter()
            .filter_map(|(id, v)| v.as_ref().map(|v| (*id, v)));
        dense.chain(sparse)
    }
}

/// Equal when the same attributes hold the same values, however the
/// storage grew.
impl PartialEq for Slots {
    fn eq(&self, other: &Slots) -> bool {
        self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_ids_cost_one_entry_each() {
        let low = AttrId::from_index(3);
        let high = AttrId::from_index(DENSE_IDS + 50_000);
        let higher = AttrId::from_index(DENSE_IDS + 60_000);
        let mut s = Slots::default();
        *s.slot(higher) = Some(Value::Int64(2));
        *s.slot(high) = Some(Value::Int64(1));
        *s.slot(low) = Some(Value::Bool(true));
        assert_eq!(s.dense.len(), 4);
        assert_eq!(s.sparse.len(), 2);
        assert_eq!(s.get(high), Some(&Value::Int64(1)));
        let order: Vec<AttrId> = s.iter().map(|(id, _)| id).collect();
        assert_eq!(order, [low, high, higher]);

        assert_eq!(s.remove(high), Some(Value::Int64(1)));
        assert_eq!(s.remove(high), None);
        assert_eq!(s.get(high), None);
        assert_eq!(s.sparse.len(), 1);

        let mut t = Slots::default();
        *t.slot(low) = Some(Value::Bool(true));
        *t.slot(higher) = Some(Value::Int64(2));
        assert_eq!(s, t);
        s.clear();
        assert_eq!(s, Slots::default());
        assert!(s.sparse.is_empty());
    }
}
