//! Keyed page hashes for clean copies: the home hands a page back to a member by reference
//! (no data) only when the page's hash equals the hash of the bytes it installed from that
//! member's answer (docs/ARCHITECTURE.md, "Clean copies"). The key is per boot and secret,
//! so a process cannot choose contents that collide with an earlier page of its own.
//!
//! SipHash-1-3 (one compression and three finalisation rounds, the variant Rust's standard
//! hash maps use): a keyed PRF with 64-bit output, about twice as fast as SipHash-2-4. The
//! hash is computed on the fault path (each pulled page), so speed counts.

/// A 128-bit SipHash key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key(pub [u64; 2]);

struct State {
    v: [u64; 4],
}

impl State {
    fn new(k: &Key) -> Self {
        Self {
            v: [
                k.0[0] ^ 0x736f_6d65_7073_6575,
                k.0[1] ^ 0x646f_7261_6e64_6f6d,
                k.0[0] ^ 0x6c79_6765_6e65_7261,
                k.0[1] ^ 0x7465_6462_7974_6573,
            ],
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        let v = &mut self.v;
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64, c: usize) {
        self.v[3] ^= m;
        for _ in 0..c {
            self.round();
        }
        self.v[0] ^= m;
    }
}

/// SipHash-c-d of `data` under `key`.
fn siphash(c: usize, d: usize, key: &Key, data: &[u8]) -> u64 {
    let mut s = State::new(key);
    let (words, tail) = data.as_chunks::<8>();
    for w in words {
        s.compress(u64::from_le_bytes(*w), c);
    }
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    last[7] = data.len() as u8;
    s.compress(u64::from_le_bytes(last), c);
    s.v[2] ^= 0xff;
    for _ in 0..d {
        s.round();
    }
    s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
}

/// The hash a clean copy is recognised by.
pub fn page_hash(key: &Key, page: &[u8]) -> u64 {
    siphash(1, 3, key, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper_key() -> Key {
        let b: [u8; 16] = core::array::from_fn(|i| i as u8);
        Key([
            u64::from_le_bytes(b[..8].try_into().unwrap()),
            u64::from_le_bytes(b[8..].try_into().unwrap()),
        ])
    }

    #[test]
    fn siphash_2_4_paper_vector() {
        // The SipHash paper's test vector: key 00..0f, message 00..0e.
        let msg: [u8; 15] = core::array::from_fn(|i| i as u8);
        assert_eq!(siphash(2, 4, &paper_key(), &msg), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn siphash_1_3_matches_std() {
        // std's DefaultHasher is SipHash-1-3 under the key (0, 0), and `write` feeds the raw
        // bytes: the same function, computed by another implementation.
        use std::hash::Hasher as _;
        for len in [0usize, 1, 7, 8, 15, 63, 4096] {
            let msg: std::vec::Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(&msg);
            assert_eq!(
                siphash(1, 3, &Key([0, 0]), &msg),
                h.finish(),
                "length {len}"
            );
        }
    }

    #[test]
    fn one_changed_bit_changes_the_hash() {
        let k = Key([1, 2]);
        let mut page = [7u8; 4096];
        let h = page_hash(&k, &page);
        for at in [0, 1, 4095, 2048] {
            page[at] ^= 1;
            assert_ne!(page_hash(&k, &page), h);
            page[at] ^= 1;
        }
        assert_eq!(page_hash(&k, &page), h);
        assert_ne!(page_hash(&Key([1, 3]), &page), h);
    }
}
