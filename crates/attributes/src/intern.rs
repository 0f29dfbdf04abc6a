//! Attribute names interned to small integer ids.
//!
//! Names are interned once (when a stream's dictionary arrives, when config
//! compiles an expression), after which bags are read by [`AttrId`] without
//! hashing strings. The table is process-wide so that ids compiled into a
//! config snapshot mean the same attribute on every stream.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

/// The default bound on distinct names in the process-wide table.
///
/// Streams intern every name their dictionary carries, so without a bound a
/// client sending ever-new names would grow the table forever. Names from
/// streams may fill only part of it (see [`Interner::try_intern_from_peer`]),
/// so that peers cannot use up the ids a config reload needs.
pub const DEFAULT_MAX_NAMES: usize = 65_536;

/// A small integer standing for one attribute name.
///
/// Ids are dense (0, 1, 2, ...) so that per-context storage can be indexed by
/// them. They are stable for the life of the process.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttrId(u32);

impl AttrId {
    /// The id as an index into dense per-id storage.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The id at dense index `i` (the inverse of [`AttrId::index`]); only
    /// meaningful for indices below [`Interner::len`].
    #[inline]
    pub fn from_index(i: usize) -> AttrId {
        AttrId(i as u32)
    }

    /// The raw id.
    #[inline]
    pub fn as_u32(self) -> u32 {
        self.0
    }

    /// Interns `name` in the global table (see [`Interner::try_intern`]).
    ///
    /// # Panics
    ///
    /// Never for a name already interned; for a new name only if the table is
    /// full. Config and tests use this; code fed by the network uses
    /// [`Interner::try_intern`].
    pub fn of(name: &str) -> AttrId {
        Interner::global()
            .try_intern(name)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The name this id stands for.
    pub fn name(self) -> Arc<str> {
        Interner::global().name(self)
    }
}

impl fmt::Debug for AttrId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttrId({}: {})", self.0, self.name())
    }
}

impl fmt::Display for AttrId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The interning table is full: a new name could not be given an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many distinct attribute names: the limit is {limit} (name '{name}' refused)")]
pub struct InternerFull {
    /// The configured limit.
    pub limit: usize,
    /// The name that did not fit (truncated to 64 bytes).
    pub name: String,
}

#[derive(Default)]
struct Table {
    ids: HashMap<Arc<str>, AttrId>,
    names: Vec<Arc<str>>,
}

/// The process-wide name table.
pub struct Interner {
    table: RwLock<Table>,
    limit: RwLock<usize>,
}

impl Interner {
    /// The process-wide table, the one [`AttrId`]s refer to.
    pub fn global() -> &'static Interner {
        static GLOBAL: OnceLock<Interner> = OnceLock::new();
        GLOBAL.get_or_init(|| Interner::with_limit(DEFAULT_MAX_NAMES))
    }

    /// A private table (for tests of the bound; ids from it are not the
    /// global ones and must not be mixed with them).
    pub fn with_limit(limit: usize) -> Interner {
        Interner {
            table: RwLock::new(Table::default()),
            limit: RwLock::new(limit),
        }
    }

    /// Sets the bound on distinct names (default [`DEFAULT_MAX_NAMES`]).
    /// Names already interned keep their ids even above a lowered bound.
    pub fn set_limit(&self, limit: usize) {
        *self.limit.write() = limit;
    }

    /// The id of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<AttrId> {
        self.table.read().ids.get(name).copied()
    }

    /// The id of `name`, giving it one if it has none yet. For trusted
    /// sources (config, the embedding host): a new name may take any id up to
    /// the table's limit.
    pub fn try_intern(&self, name: &str) -> Result<AttrId, InternerFull> {
        let limit = *self.limit.read();
        self.intern_within(name, limit)
    }

    /// The id of `name` for a name that arrived from a peer (a stream's
    /// dictionary): a new name is refused once the table holds
    /// [`Interner::peer_limit`] names, three quarters of its limit.
    ///
    /// Ids are never freed, so without this share a client sending ever-new
    /// names could fill the table, and every later config reload that
    /// introduces a name would then fail. Names already interned (the
    /// vocabulary, names that config uses) are found whatever the fill.
    pub fn try_intern_from_peer(&self, name: &str) -> Result<AttrId, InternerFull> {
        self.intern_within(name, self.peer_limit())
    }

    /// How many names the table may hold before names from peers are
    /// refused: three quarters of the limit; the last quarter is kept for
    /// trusted sources.
    pub fn peer_limit(&self) -> usize {
        let limit = *self.limit.read();
        limit - limit / 4
    }

    fn intern_within(&self, name: &str, limit: usize) -> Result<AttrId, InternerFull> {
        if let Some(id) = self.get(name) {
            return Ok(id);
        }
        let mut t = self.table.write();
        if let Some(id) = t.ids.get(name) {
            return Ok(*id);
        }
        if t.names.len() >= limit || t.names.len() >= u32::MAX as usize {
            let mut end = name.len().min(64);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            return Err(InternerFull {
                limit,
                name: name[..end].to_string(),
            });
        }
        let id = AttrId(t.names.len() as u32);
        let name: Arc<str> = Arc::from(name);
        t.names.push(name.clone());
        t.ids.insert(name, id);
        Ok(id)
    }

    /// The name of `id`.
    ///
    /// # Panics
    ///
    /// If `id` was not made by this table (ids are only made here).
    pub fn name(&self, id: AttrId) -> Arc<str> {
        self.table.read().names[id.index()].clone()
    }

    /// How many names have ids: every id is below this.
    pub fn len(&self) -> usize {
        self.table.read().names.len()
    }

    /// True before any name is interned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_id() {
        let a = AttrId::of("test.intern.a");
        let b = AttrId::of("test.intern.b");
        assert_ne!(a, b);
        assert_eq!(AttrId::of("test.intern.a"), a);
        assert_eq!(&*a.name(), "test.intern.a");
        assert_eq!(Interner::global().get("test.intern.b"), Some(b));
        assert_eq!(Interner::global().get("test.intern.never"), None);
    }

    #[test]
    fn bounded() {
        let t = Interner::with_limit(2);
        t.try_intern("a").unwrap();
        t.try_intern("b").unwrap();
        assert_eq!(t.try_intern("a").unwrap().as_u32(), 0);
        let err = t.try_intern("c").unwrap_err();
        assert_eq!(
            err.to_string(),
            "too many distinct attribute names: the limit is 2 (name 'c' refused)"
        );
    }

    // Peers that fill their share cannot take the ids config needs, and
    // still find names already interned.
    #[test]
    fn peers_get_three_quarters() {
        let t = Interner::with_limit(8);
        assert_eq!(t.peer_limit(), 6);
        t.try_intern("config.name").unwrap();
        for i in 0..5 {
            t.try_intern_from_peer(&format!("peer.{i}")).unwrap();
        }
        let err = t.try_intern_from_peer("peer.5").unwrap_err();
        assert_eq!(
            err.to_string(),
            "too many distinct attribute names: the limit is 6 (name 'peer.5' refused)"
        );
        assert_eq!(t.try_intern_from_peer("config.name").unwrap().as_u32(), 0);
        assert_eq!(t.try_intern_from_peer("peer.4").unwrap().as_u32(), 5);
        t.try_intern("config.reload.a").unwrap();
        t.try_intern("config.reload.b").unwrap();
        assert!(t.try_intern("config.reload.c").is_err());
        assert_eq!(t.len(), 8);
    }
}
