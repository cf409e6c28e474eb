//! The checks behind the libFuzzer targets of eos-core (one module per target, each with
//! `check(data)`), shared by the fuzz binaries in fuzz_targets/ and by this crate's tests, which
//! replay the committed corpus on a plain `cargo test` (no libFuzzer, stable toolchain).
//!
//! A check panics when an invariant of eos-core does not hold; libFuzzer reports the panic as a
//! crash and saves the input. What each target checks: docs/FUZZING.md.

pub mod frame;
pub mod handshake;
pub mod layout;
pub mod peer;
pub mod seeds;

/// Reads fields from the front of a fuzz input; past its end every read gives zeroes, so any
/// input is a complete program.
pub(crate) struct Input<'a> {
    d: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(d: &'a [u8]) -> Self {
        Self { d }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.d.is_empty()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.d.split_at(n.min(self.d.len()));
        self.d = rest;
        head
    }

    pub(crate) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    pub(crate) fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

/// Builds a fuzz input field by field, the inverse of [`Input`] (for the seed corpus).
#[derive(Default)]
pub(crate) struct Script(pub(crate) Vec<u8>);

impl Script {
    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }

    pub(crate) fn bytes(mut self, v: &[u8]) -> Self {
        self.0.extend_from_slice(v);
        self
    }

    pub(crate) fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }
}
