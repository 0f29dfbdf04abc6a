//! Hashes for cache keys: a keyed one over a key's encoded bytes, and the
//! multiply-rotate one for maps whose keys are already such hashes.

use std::hash::{BuildHasher, Hasher, RandomState};

/// A keyed hash of a byte string, in the style of wyhash: two independent
/// lanes each fold a 128-bit product of 16 input bytes per step, so a
/// request's few hundred bytes hash in a few dozen multiplications.
///
/// A hash only picks a slot; every hit is confirmed by comparing the bytes,
/// so a collision costs a miss, never a wrong answer. The key is random per
/// hasher so that requests cannot be crafted to collide and evict each
/// other's answers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyHasher {
    seed: u64,
    k: [u64; 4],
    /// Every key hashes alike, to test that collisions cost misses only.
    #[cfg(test)]
    pub(crate) constant: bool,
}

impl KeyHasher {
    /// A hasher with a fresh random key.
    pub(crate) fn random() -> KeyHasher {
        let s = RandomState::new();
        KeyHasher {
            seed: s.hash_one(0u8),
            k: [1u8, 2, 3, 4].map(|i| s.hash_one(i) | 1),
            #[cfg(test)]
            constant: false,
        }
    }

    /// The hash of `bytes`.
    #[inline]
    pub(crate) fn hash(&self, bytes: &[u8]) -> u64 {
        #[cfg(test)]
        if self.constant {
            return 42;
        }
        let [k0, k1, k2, k3] = self.k;
        let mut a = self.seed;
        let mut b = self.seed ^ k3;
        let mut blocks = bytes.chunks_exact(32);
        for c in &mut blocks {
            a = fold(word(c, 0) ^ k0, word(c, 8) ^ a);
            b = fold(word(c, 16) ^ k1, word(c, 24) ^ b);
        }
        // The zero-padded tail; the length, mixed in last, tells padding
        // from data.
        let rest = blocks.remainder();
        let mut tail = [0u8; 32];
        tail[..rest.len()].copy_from_slice(rest);
        a = fold(word(&tail, 0) ^ k0, word(&tail, 8) ^ a);
        b = fold(word(&tail, 16) ^ k1, word(&tail, 24) ^ b);
        fold(a ^ k2, b ^ k3 ^ bytes.len() as u64)
    }
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline]
fn word(c: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&c[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The multiply-rotate hash of rustc (FxHash), for maps keyed by values
/// that are already well-mixed hashes.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(word(c, 0));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn same_bytes_same_hash_and_near_misses_spread() {
        let h = KeyHasher::random();
        let base: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(h.hash(&base), h.hash(&base.clone()));
        let mut seen = HashSet::new();
        // Every one-bit flip of every byte, every prefix (trailing zeros
        // included): no two of them collide.
        for i in 0..base.len() {
            for bit in 0..8 {
                let mut v = base.clone();
                v[i] ^= 1 << bit;
                assert!(seen.insert(h.hash(&v)), "flip {i}.{bit}");
            }
        }
        let zeros = [0u8; 100];
        for n in 0..=zeros.len() {
            assert!(seen.insert(h.hash(&zeros[..n])), "{n} zeros");
        }
    }

    #[test]
    fn keys_differ_between_hashers() {
        let (a, b) = (KeyHasher::random(), KeyHasher::random());
        assert_ne!(a.hash(b"request.path"), b.hash(b"request.path"));
    }
}
