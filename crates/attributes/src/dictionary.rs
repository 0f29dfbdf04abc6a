//! A stream's dictionary: wire index -> (name, interned id).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Error;
use crate::intern::{AttrId, Interner};

/// One word of the dictionary.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub(crate) index: i32,
    pub(crate) name: Arc<str>,
    pub(crate) id: AttrId,
}

/// Indices below this many (times the entry count) are looked up in a dense
/// table; a client that picks huge or negative indices still works, through
/// a hash map.
const DENSE_FACTOR: usize = 4;

/// The words of one dictionary, looked up by wire index in O(1).
///
/// Names are unique within a dictionary, so an entry's position (its slot)
/// identifies the attribute: the decoder's per-update scratch state is
/// indexed by slot and stays as small as the dictionary.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dictionary {
    entries: Vec<Entry>,
    /// `dense[i]` is slot + 1 of index `i`, 0 when absent.
    dense: Vec<u32>,
    sparse: HashMap<i32, u32>,
}

impl Dictionary {
    /// Builds a dictionary from `(index, name)` pairs in wire order (a
    /// repeated index keeps its last name, as protobuf maps do), interning
    /// every name in the global table.
    pub(crate) fn build<'a>(
        pairs: impl Iterator<Item = (i32, &'a str)>,
        max_entries: usize,
        max_name_bytes: usize,
    ) -> Result<Dictionary, Error> {
        let mut by_index: HashMap<i32, &str> = HashMap::new();
        for (i, name) in pairs {
            by_index.insert(i, name);
            if by_index.len() > max_entries {
                return Err(Error::TooManyDictionaryEntries {
                    count: by_index.len(),
                    limit: max_entries,
                });
            }
        }
        // Sorted, so that errors do not depend on hash order.
        let mut pairs: Vec<(i32, &str)> = by_index.into_iter().collect();
        pairs.sort_unstable_by_key(|(i, _)| *i);

        let mut first_at: HashMap<&str, i32> = HashMap::with_capacity(pairs.len());
        let mut d = Dictionary {
            entries: Vec::with_capacity(pairs.len()),
            ..Dictionary::default()
        };
        let dense_len = pairs
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| *i >= 0 && (*i as usize) < pairs.len() * DENSE_FACTOR + 64)
            .max()
            .map_or(0, |m| m as usize + 1);
        d.dense = vec![0; dense_len];
        for (index, name) in pairs {
            if name.len() > max_name_bytes {
                return Err(Error::NameTooLarge {
                    index,
                    len: name.len(),
                    limit: max_name_bytes,
                });
            }
            if let Some(first) = first_at.insert(name, index) {
                return Err(Error::DuplicateName {
                    index,
                    first,
                    name: name.to_string(),
                });
            }
            let id = Interner::global()
                .try_intern_from_peer(name)
                .map_err(|source| Error::InternerFull { index, source })?;
            let slot = d.entries.len() as u32 + 1;
            match usize::try_from(index) {
                Ok(i) if i < d.dense.len() => d.dense[i] = slot,
                _ => {
                    d.sparse.insert(index, slot);
                }
            }
            d.entries.push(Entry {
                index,
                name: id.name(),
                id,
            });
        }
        Ok(d)
    }

    /// The slot of wire index `index`.
    #[inline]
    pub(crate) fn slot(&self, index: i32) -> Option<usize> {
        let s = match usize::try_from(index) {
            Ok(i) if i < self.dense.len() => self.dense[i],
            _ if self.sparse.is_empty() => 0,
            _ => self.sparse.get(&index).copied().unwrap_or(0),
        };
        (s as usize).checked_sub(1)
    }

    /// The entry in `slot`.
    #[inline]
    pub(crate) fn entry(&self, slot: usize) -> &Entry {
        &self.entries[slot]
    }

    /// The entry of wire index `index`.
    #[inline]
    pub(crate) fn get(&self, index: i32) -> Option<&Entry> {
        self.slot(index).map(|s| &self.entries[s])
    }

    /// Number of words.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Words in index order.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_indices() {
        let d = Dictionary::build(
            [
                (0, "dict.a"),
                (5, "dict.b"),
                (-3, "dict.c"),
                (1 << 30, "dict.d"),
            ]
            .into_iter(),
            10,
            100,
        )
        .unwrap();
        assert_eq!(d.len(), 4);
        for (i, n) in [
            (0, "dict.a"),
            (5, "dict.b"),
            (-3, "dict.c"),
            (1 << 30, "dict.d"),
        ] {
            let e = d.get(i).unwrap();
            assert_eq!((&*e.name, e.index), (n, i));
            assert_eq!(e.id, AttrId::of(n));
        }
        assert!(d.get(1).is_none());
        assert!(d.get(-1).is_none());
        assert!(d.get(i32::MAX).is_none());
    }

    #[test]
    fn repeated_index_keeps_last_name() {
        let d = Dictionary::build([(1, "dict.x"), (1, "dict.y")].into_iter(), 10, 100).unwrap();
        assert_eq!(&*d.get(1).unwrap().name, "dict.y");
        assert_eq!(d.len(), 1);
    }
}
