//! Little-endian cursors over a payload. Encoders and decoders name the fields in wire order,
//! so a layout is a sequence of reads or writes and no code carries byte offsets.

use super::ProtoError;

/// Error of a read past the end. Every decoder checks the lengths it depends on first, with
/// the error the protocol specifies, so this one only guards against a mistake here.
const SHORT: ProtoError = ProtoError::BadField("truncated");

/// Reads fields one after the other from a byte slice.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(super) const fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub(super) const fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The bytes not read yet, without consuming them (to validate a section in place).
    pub(super) const fn unread(&self) -> &'a [u8] {
        self.buf
    }

    /// The next `n` bytes.
    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let (head, rest) = self.buf.split_at_checked(n).ok_or(SHORT)?;
        self.buf = rest;
        Ok(head)
    }

    /// The next `N` bytes, copied (nonces, MACs, hashes).
    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let (head, rest) = self.buf.split_first_chunk::<N>().ok_or(SHORT)?;
        self.buf = rest;
        Ok(*head)
    }

    /// Everything not read yet.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    pub(super) fn u8(&mut self) -> Result<u8, ProtoError> {
        self.array().map(|[b]| b)
    }

    pub(super) fn u16(&mut self) -> Result<u16, ProtoError> {
        self.array().map(u16::from_le_bytes)
    }

    pub(super) fn u32(&mut self) -> Result<u32, ProtoError> {
        self.array().map(u32::from_le_bytes)
    }

    pub(super) fn i32(&mut self) -> Result<i32, ProtoError> {
        self.array().map(i32::from_le_bytes)
    }

    pub(super) fn u64(&mut self) -> Result<u64, ProtoError> {
        self.array().map(u64::from_le_bytes)
    }
}

/// Writes fields one after the other into a byte slice.
#[derive(Debug)]
pub(super) struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    /// A writer at the start of `buf`.
    pub(super) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, at: 0 }
    }

    /// Bytes written so far.
    pub(super) const fn written(&self) -> usize {
        self.at
    }

    /// Appends `b`; [`ProtoError::BufferTooSmall`] if it does not fit.
    pub(super) fn bytes(&mut self, b: &[u8]) -> Result<(), ProtoError> {
        let end = self
            .at
            .checked_add(b.len())
            .ok_or(ProtoError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.at..end)
            .ok_or(ProtoError::BufferTooSmall)?;
        dst.copy_from_slice(b);
        self.at = end;
        Ok(())
    }

    pub(super) fn u8(&mut self, v: u8) -> Result<(), ProtoError> {
        self.bytes(&[v])
    }

    pub(super) fn u16(&mut self, v: u16) -> Result<(), ProtoError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(super) fn u32(&mut self, v: u32) -> Result<(), ProtoError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(super) fn i32(&mut self, v: i32) -> Result<(), ProtoError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(super) fn u64(&mut self, v: u64) -> Result<(), ProtoError> {
        self.bytes(&v.to_le_bytes())
    }
}

/// Writes a record of exactly `len` bytes at the start of `out` with `write`, for the
/// encoders whose API takes a caller-sized buffer and returns nothing. Panics if `out` is
/// shorter, as slicing it would: the caller sized it.
pub(super) fn fill(
    out: &mut [u8],
    len: usize,
    write: impl FnOnce(&mut Writer<'_>) -> Result<(), ProtoError>,
) {
    let mut w = Writer::new(&mut out[..len]);
    let done = write(&mut w);
    debug_assert!(
        done.is_ok() && w.written() == len,
        "record layout != its length"
    );
}
