//! A bounded least-recently-used map whose hits allocate nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash};

use crate::hash::FxHasher;

const NIL: u32 = u32::MAX;

struct Node<K, V> {
    key: K,
    value: V,
    prev: u32,
    next: u32,
}

/// Nodes live in a slab linked by index, so touching an entry moves two
/// indices instead of allocating.
pub(crate) struct Lru<K, V> {
    map: HashMap<K, u32, BuildHasherDefault<FxHasher>>,
    nodes: Vec<Node<K, V>>,
    head: u32,
    tail: u32,
    capacity: usize,
}

impl<K: Hash + Eq + Copy, V> Lru<K, V> {
    pub(crate) fn new(capacity: usize) -> Lru<K, V> {
        Lru {
            map: HashMap::default(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The entry under `key`, marked most recently used.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = *self.map.get(key)?;
        self.unlink(i);
        self.push_front(i);
        Some(&mut self.nodes[i as usize].value)
    }

    /// Inserts or replaces; evicts the least recently used entry when full.
    pub(crate) fn insert(&mut self, key: K, value: V) {
        if let Some(&i) = self.map.get(&key) {
            self.nodes[i as usize].value = value;
            self.unlink(i);
            self.push_front(i);
            return;
        }
        let i = if self.map.len() >= self.capacity {
            // Reuse the oldest node's slot.
            let i = self.tail;
            self.unlink(i);
            let old = self.nodes[i as usize].key;
            self.map.remove(&old);
            self.nodes[i as usize] = Node {
                key,
                value,
                prev: NIL,
                next: NIL,
            };
            i
        } else {
            self.nodes.push(Node {
                key,
                value,
                prev: NIL,
                next: NIL,
            });
            (self.nodes.len() - 1) as u32
        };
        self.map.insert(key, i);
        self.push_front(i);
    }

    /// Removes `key`. The slot is swapped with the last one so the slab
    /// stays dense.
    pub(crate) fn remove(&mut self, key: &K) {
        let Some(i) = self.map.remove(key) else {
            return;
        };
        self.unlink(i);
        let last = (self.nodes.len() - 1) as u32;
        self.nodes.swap_remove(i as usize);
        if i != last {
            // The last node now sits at `i`: point its neighbours there.
            let (prev, next, moved) = {
                let n = &self.nodes[i as usize];
                (n.prev, n.next, n.key)
            };
            if prev == NIL {
                self.head = i;
            } else {
                self.nodes[prev as usize].next = i;
            }
            if next == NIL {
                self.tail = i;
            } else {
                self.nodes[next as usize].prev = i;
            }
            self.map.insert(moved, i);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.nodes.clear();
        self.head = NIL;
        self.tail = NIL;
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        if prev == NIL {
            if self.head == i {
                self.head = next;
            }
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NIL {
            if self.tail == i {
                self.tail = prev;
            }
        } else {
            self.nodes[next as usize].prev = prev;
        }
        let n = &mut self.nodes[i as usize];
        n.prev = NIL;
        n.next = NIL;
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            self.nodes[old as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut lru = Lru::new(3);
        for k in 0..3 {
            lru.insert(k, k * 10);
        }
        assert_eq!(lru.get_mut(&0), Some(&mut 0));
        lru.insert(3, 30); // evicts 1, the oldest untouched
        assert!(lru.get_mut(&1).is_none());
        assert_eq!(lru.len(), 3);
        for k in [0, 2, 3] {
            assert!(lru.get_mut(&k).is_some(), "{k}");
        }
    }

    #[test]
    fn remove_keeps_order_consistent() {
        let mut lru = Lru::new(4);
        for k in 0..4 {
            lru.insert(k, k);
        }
        lru.remove(&0);
        lru.remove(&2);
        lru.insert(4, 4);
        lru.insert(5, 5);
        lru.insert(6, 6); // full at 4: evicts 1, the oldest left
        assert!(lru.get_mut(&1).is_none());
        for k in [3, 4, 5, 6] {
            assert_eq!(lru.get_mut(&k), Some(&mut { k }), "{k}");
        }
        // Against a reference model for a longer random-ish sequence.
        let mut model: Vec<u32> = Vec::new();
        let mut lru = Lru::new(5);
        let mut x = 7u32;
        for _ in 0..2000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let k = (x >> 16) % 9;
            match (x >> 8) % 3 {
                0 => {
                    lru.insert(k, k);
                    model.retain(|m| *m != k);
                    model.insert(0, k);
                    model.truncate(5);
                }
                1 => {
                    let hit = lru.get_mut(&k).is_some();
                    assert_eq!(hit, model.contains(&k));
                    if hit {
                        model.retain(|m| *m != k);
                        model.insert(0, k);
                    }
                }
                _ => {
                    lru.remove(&k);
                    model.retain(|m| *m != k);
                }
            }
            assert_eq!(lru.len(), model.len());
        }
    }
}
