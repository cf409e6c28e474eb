//! The frame: a fixed 16-byte header ([`Header`]) and the reassembly of frames from a byte
//! stream ([`FrameReader`]).

use super::cursor::{fill, Reader, Writer};
use super::{MsgType, ProtoError, HEADER_LEN, MAGIC, MAX_PAYLOAD, VERSION};

/// A validated frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub ty: MsgType,
    /// Payload length, already checked against the type.
    pub len: u32,
    /// Sender's sequence number (per connection, wrapping); used to match replies later.
    pub seq: u32,
}

// Header: magic u16, version u8, type u8, flags u16 (=0), reserved u16 (=0), len u32, seq u32.
impl Header {
    /// Decodes and validates a header. The payload length is checked against the type, so the
    /// caller may allocate or read exactly `len` bytes without further checks.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, ProtoError> {
        let r = &mut Reader::new(b);
        let (magic, version, ty_byte) = (r.u16()?, r.u8()?, r.u8()?);
        let (flags, reserved, len, seq) = (r.u16()?, r.u16()?, r.u32()?, r.u32()?);
        if magic != MAGIC {
            return Err(ProtoError::BadMagic(magic));
        }
        if version != VERSION {
            return Err(ProtoError::BadVersion(version));
        }
        let ty = MsgType::from_u8(ty_byte)?;
        if flags != 0 || reserved != 0 {
            return Err(ProtoError::ReservedBits);
        }
        let (min, max) = ty.len_bounds();
        if (len as usize) < min || len as usize > max || len as usize > MAX_PAYLOAD {
            return Err(ProtoError::BadLength { ty: ty_byte, len });
        }
        Ok(Self { ty, len, seq })
    }

    /// Encodes this header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        fill(&mut b, HEADER_LEN, |w| self.write(w));
        b
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<(), ProtoError> {
        w.u16(MAGIC)?;
        w.u8(VERSION)?;
        w.u8(self.ty as u8)?;
        w.u16(0)?; // flags
        w.u16(0)?; // reserved
        w.u32(self.len)?;
        w.u32(self.seq)
    }
}

/// Reassembles frames from a byte stream that arrives in arbitrary pieces (a TCP socket read
/// with a timeout may return any amount). Sans-I/O: the caller reads into [`Self::want`] and
/// reports the count with [`Self::advance`].
///
/// Once the handshake is done the reader is [`Self::sealed`]: every frame then carries a
/// [`TAG_LEN`]-byte tag after its payload (the record layer, `record.rs`), read into the
/// payload buffer right after the payload, also for an empty payload.
#[derive(Debug, Default)]
pub struct FrameReader {
    hdr: [u8; HEADER_LEN],
    hdr_fill: usize,
    cur: Option<Header>,
    fill: usize,
    sealed: bool,
}

/// Size of the tag that follows each payload on a sealed connection (AES-GCM).
pub const TAG_LEN: usize = 16;

impl FrameReader {
    /// A reader at a frame boundary.
    pub const fn new() -> Self {
        Self {
            hdr: [0; HEADER_LEN],
            hdr_fill: 0,
            cur: None,
            fill: 0,
            sealed: false,
        }
    }

    /// From the next frame on, each payload is followed by its tag. Called at a frame
    /// boundary (right after the handshake's last frame).
    pub fn seal(&mut self) {
        self.sealed = true;
    }

    /// The header bytes of the frame [`Self::advance`] returned last, as received (what the
    /// record layer authenticates).
    pub fn header_bytes(&self) -> &[u8; HEADER_LEN] {
        &self.hdr
    }

    /// Bytes a frame with `len` bytes of payload takes in the payload buffer.
    fn body(&self, len: u32) -> usize {
        len as usize + if self.sealed { TAG_LEN } else { 0 }
    }

    /// The slice the next stream bytes must be read into: the rest of the header, or the rest
    /// of the payload (and tag) inside `payload` (which must be at least [`MAX_PAYLOAD`] +
    /// [`TAG_LEN`] long).
    pub fn want<'b>(&'b mut self, payload: &'b mut [u8]) -> &'b mut [u8] {
        match self.cur {
            None => &mut self.hdr[self.hdr_fill..],
            Some(h) => {
                let end = self.body(h.len);
                &mut payload[self.fill..end]
            }
        }
    }

    /// Accounts for `n` bytes written into the last [`Self::want`] slice. Returns the header
    /// of a complete frame, whose payload is then `payload[..len]`. A bad header is an error
    /// and the stream must be dropped: there is no way to resynchronise.
    pub fn advance(&mut self, n: usize) -> Result<Option<Header>, ProtoError> {
        match self.cur {
            None => {
                self.hdr_fill = (self.hdr_fill + n).min(HEADER_LEN);
                if self.hdr_fill < HEADER_LEN {
                    return Ok(None);
                }
                self.hdr_fill = 0;
                let h = Header::decode(&self.hdr)?;
                if self.body(h.len) == 0 {
                    return Ok(Some(h));
                }
                self.cur = Some(h);
                self.fill = 0;
                Ok(None)
            }
            Some(h) => {
                let end = self.body(h.len);
                self.fill = (self.fill + n).min(end);
                if self.fill < end {
                    return Ok(None);
                }
                self.cur = None;
                Ok(Some(h))
            }
        }
    }
}
