//! Wire protocol v1: framing, message types and their validation.
//!
//! A frame is a fixed 16-byte little-endian [`Header`] followed by `len` payload bytes. Nothing
//! that arrives from the network is trusted: [`Header::decode`] and [`Message::decode`] check
//! every field (magic, version, type, flags, reserved bits, exact or maximum length) before any
//! other code sees it, and return a [`ProtoError`] instead of panicking on any input.
//! docs/PROTOCOL.md is the human-readable form of this file.

use core::fmt;

/// First two bytes of every frame.
pub const MAGIC: u16 = 0xE05E;
/// Framing and message-set version carried in every header.
pub const VERSION: u8 = 1;
/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 16;
/// Size of the random nonces exchanged in the handshake.
pub const NONCE_LEN: usize = 32;
/// Size of an HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Largest payload any frame may carry; the receive buffer of a connection has this size.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// A node's identity in the cluster. Valid ids are `1..=MAX_NODE_ID`; 0 means "unset".
pub type NodeId = u16;
/// Largest valid node id.
pub const MAX_NODE_ID: NodeId = 1023;

/// Why a frame or message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// The header does not start with [`MAGIC`].
    BadMagic(u16),
    /// The header carries a version we do not speak.
    BadVersion(u8),
    /// The message type is not one we know.
    UnknownType(u8),
    /// Flags or reserved bits that must be zero are set.
    ReservedBits,
    /// The payload length is not valid for this message type.
    BadLength {
        /// Message type.
        ty: u8,
        /// Length found in the header.
        len: u32,
    },
    /// A field holds a value that is out of range.
    BadField(&'static str),
    /// The output buffer is too small to encode the message.
    BufferTooSmall,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic(m) => write!(f, "bad magic {m:#06x}"),
            Self::BadVersion(v) => write!(f, "unsupported frame version {v}"),
            Self::UnknownType(t) => write!(f, "unknown message type {t:#04x}"),
            Self::ReservedBits => write!(f, "reserved bits set"),
            Self::BadLength { ty, len } => write!(f, "bad length {len} for type {ty:#04x}"),
            Self::BadField(name) => write!(f, "invalid field {name}"),
            Self::BufferTooSmall => write!(f, "buffer too small"),
        }
    }
}

/// Message types of protocol v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MsgType {
    /// Initiator opens the handshake.
    Hello = 0x01,
    /// Responder proves it holds the cluster key and challenges the initiator.
    Challenge = 0x02,
    /// Initiator proves it holds the cluster key.
    Auth = 0x03,
    /// Responder accepts: the connection is up.
    Welcome = 0x04,
    /// The sender refuses or aborts; it closes the connection after sending.
    Error = 0x05,
    /// Liveness probe carrying the sender's clock.
    Ping = 0x10,
    /// Answer to a ping, echoing its clock value.
    Pong = 0x11,
    /// Orderly close.
    Bye = 0x12,
}

impl MsgType {
    /// Maps a wire byte to a type, rejecting unknown values.
    pub fn from_u8(v: u8) -> Result<Self, ProtoError> {
        Ok(match v {
            0x01 => Self::Hello,
            0x02 => Self::Challenge,
            0x03 => Self::Auth,
            0x04 => Self::Welcome,
            0x05 => Self::Error,
            0x10 => Self::Ping,
            0x11 => Self::Pong,
            0x12 => Self::Bye,
            _ => return Err(ProtoError::UnknownType(v)),
        })
    }

    /// Exact payload length of this type (all v1 messages have a fixed size).
    pub const fn payload_len(self) -> usize {
        match self {
            Self::Hello => HELLO_LEN,
            Self::Challenge => CHALLENGE_LEN,
            Self::Auth => MAC_LEN,
            Self::Welcome => 0,
            Self::Error | Self::Bye => 4,
            Self::Ping | Self::Pong => 8,
        }
    }

    /// Short name for logs and statistics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::Challenge => "challenge",
            Self::Auth => "auth",
            Self::Welcome => "welcome",
            Self::Error => "error",
            Self::Ping => "ping",
            Self::Pong => "pong",
            Self::Bye => "bye",
        }
    }
}

/// Payload size of [`Hello`].
pub const HELLO_LEN: usize = 12 + NONCE_LEN;
/// Payload size of [`Challenge`] (the MAC included).
pub const CHALLENGE_LEN: usize = 8 + NONCE_LEN + MAC_LEN;

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

impl Header {
    /// Decodes and validates a header. The payload length is checked against the type, so the
    /// caller may allocate or read exactly `len` bytes without further checks.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Self, ProtoError> {
        let magic = u16::from_le_bytes([b[0], b[1]]);
        if magic != MAGIC {
            return Err(ProtoError::BadMagic(magic));
        }
        if b[2] != VERSION {
            return Err(ProtoError::BadVersion(b[2]));
        }
        let ty = MsgType::from_u8(b[3])?;
        if b[4..8] != [0; 4] {
            return Err(ProtoError::ReservedBits);
        }
        let len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if len as usize != ty.payload_len() || len as usize > MAX_PAYLOAD {
            return Err(ProtoError::BadLength { ty: b[3], len });
        }
        let seq = u32::from_le_bytes([b[12], b[13], b[14], b[15]]);
        Ok(Self { ty, len, seq })
    }

    /// Encodes this header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        b[2] = VERSION;
        b[3] = self.ty as u8;
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..16].copy_from_slice(&self.seq.to_le_bytes());
        b
    }
}

/// Capability bits announced in the handshake.
pub mod caps {
    /// Ping/pong liveness.
    pub const HEARTBEAT: u32 = 1 << 0;
    /// Everything this build supports.
    pub const ALL: u32 = HEARTBEAT;
}

/// Handshake opening, initiator to responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Lowest protocol version the initiator speaks.
    pub min_version: u16,
    /// Highest protocol version the initiator speaks.
    pub max_version: u16,
    /// Initiator's node id.
    pub node: NodeId,
    /// Initiator's capabilities.
    pub caps: u32,
    /// Fresh random nonce.
    pub nonce: [u8; NONCE_LEN],
}

/// Responder's answer: its identity, its nonce and its proof of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// Negotiated version.
    pub version: u16,
    /// Responder's node id.
    pub node: NodeId,
    /// Responder's capabilities.
    pub caps: u32,
    /// Fresh random nonce.
    pub nonce: [u8; NONCE_LEN],
    /// HMAC over the transcript, see `handshake`.
    pub mac: [u8; MAC_LEN],
}

/// Reasons carried by `Error` and `Bye`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Reason {
    /// No reason given (orderly close).
    None = 0,
    /// No common protocol version.
    Version = 1,
    /// The node id is not a member of this cluster.
    UnknownNode = 2,
    /// Authentication failed.
    BadAuth = 3,
    /// A message arrived that is not valid in this state.
    Unexpected = 4,
    /// A malformed frame was received.
    Malformed = 5,
    /// The node is shutting down or the peer was removed.
    Shutdown = 6,
    /// The node has too many connections in progress.
    Busy = 7,
}

impl Reason {
    /// Maps a wire value; unknown values are rejected.
    pub fn from_u16(v: u16) -> Result<Self, ProtoError> {
        Ok(match v {
            0 => Self::None,
            1 => Self::Version,
            2 => Self::UnknownNode,
            3 => Self::BadAuth,
            4 => Self::Unexpected,
            5 => Self::Malformed,
            6 => Self::Shutdown,
            7 => Self::Busy,
            _ => return Err(ProtoError::BadField("reason")),
        })
    }

    /// Short name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Version => "version",
            Self::UnknownNode => "unknown-node",
            Self::BadAuth => "bad-auth",
            Self::Unexpected => "unexpected",
            Self::Malformed => "malformed",
            Self::Shutdown => "shutdown",
            Self::Busy => "busy",
        }
    }
}

/// A decoded, validated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Challenge`].
    Challenge(Challenge),
    /// Initiator's proof of the key.
    Auth([u8; MAC_LEN]),
    /// Handshake complete.
    Welcome,
    /// Refusal; the sender closes.
    Error(Reason),
    /// Liveness probe with the sender's monotonic clock in ns.
    Ping(u64),
    /// Echo of a ping's clock value.
    Pong(u64),
    /// Orderly close.
    Bye(Reason),
}

fn arr<const N: usize>(p: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&p[at..at + N]);
    a
}

fn le16(p: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(arr(p, at))
}

fn le32(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(arr(p, at))
}

fn le64(p: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(arr(p, at))
}

impl Message {
    /// The wire type of this message.
    pub fn ty(&self) -> MsgType {
        match self {
            Self::Hello(_) => MsgType::Hello,
            Self::Challenge(_) => MsgType::Challenge,
            Self::Auth(_) => MsgType::Auth,
            Self::Welcome => MsgType::Welcome,
            Self::Error(_) => MsgType::Error,
            Self::Ping(_) => MsgType::Ping,
            Self::Pong(_) => MsgType::Pong,
            Self::Bye(_) => MsgType::Bye,
        }
    }

    /// Decodes the payload of a frame whose header was validated by [`Header::decode`].
    pub fn decode(h: &Header, p: &[u8]) -> Result<Self, ProtoError> {
        if p.len() != h.len as usize || p.len() != h.ty.payload_len() {
            return Err(ProtoError::BadLength {
                ty: h.ty as u8,
                len: p.len() as u32,
            });
        }
        Ok(match h.ty {
            MsgType::Hello => {
                let m = Hello {
                    min_version: le16(p, 0),
                    max_version: le16(p, 2),
                    node: le16(p, 4),
                    caps: le32(p, 8),
                    nonce: arr(p, 12),
                };
                if le16(p, 6) != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                if m.min_version == 0 || m.min_version > m.max_version {
                    return Err(ProtoError::BadField("version range"));
                }
                check_node(m.node)?;
                Self::Hello(m)
            }
            MsgType::Challenge => {
                let m = Challenge {
                    version: le16(p, 0),
                    node: le16(p, 2),
                    caps: le32(p, 4),
                    nonce: arr(p, 8),
                    mac: arr(p, 8 + NONCE_LEN),
                };
                if m.version == 0 {
                    return Err(ProtoError::BadField("version"));
                }
                check_node(m.node)?;
                Self::Challenge(m)
            }
            MsgType::Auth => Self::Auth(arr(p, 0)),
            MsgType::Welcome => Self::Welcome,
            MsgType::Error | MsgType::Bye => {
                if le16(p, 2) != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                let r = Reason::from_u16(le16(p, 0))?;
                if h.ty == MsgType::Error {
                    Self::Error(r)
                } else {
                    Self::Bye(r)
                }
            }
            MsgType::Ping => Self::Ping(le64(p, 0)),
            MsgType::Pong => Self::Pong(le64(p, 0)),
        })
    }

    /// Encodes header and payload into `out`, returning the frame length.
    pub fn encode(&self, seq: u32, out: &mut [u8]) -> Result<usize, ProtoError> {
        let len = self.ty().payload_len();
        if out.len() < HEADER_LEN + len {
            return Err(ProtoError::BufferTooSmall);
        }
        let h = Header {
            ty: self.ty(),
            len: len as u32,
            seq,
        };
        out[..HEADER_LEN].copy_from_slice(&h.encode());
        let p = &mut out[HEADER_LEN..HEADER_LEN + len];
        p.fill(0);
        match self {
            Self::Hello(m) => {
                p[0..2].copy_from_slice(&m.min_version.to_le_bytes());
                p[2..4].copy_from_slice(&m.max_version.to_le_bytes());
                p[4..6].copy_from_slice(&m.node.to_le_bytes());
                p[8..12].copy_from_slice(&m.caps.to_le_bytes());
                p[12..].copy_from_slice(&m.nonce);
            }
            Self::Challenge(m) => {
                p[0..2].copy_from_slice(&m.version.to_le_bytes());
                p[2..4].copy_from_slice(&m.node.to_le_bytes());
                p[4..8].copy_from_slice(&m.caps.to_le_bytes());
                p[8..8 + NONCE_LEN].copy_from_slice(&m.nonce);
                p[8 + NONCE_LEN..].copy_from_slice(&m.mac);
            }
            Self::Auth(mac) => p.copy_from_slice(mac),
            Self::Welcome => {}
            Self::Error(r) | Self::Bye(r) => p[0..2].copy_from_slice(&(*r as u16).to_le_bytes()),
            Self::Ping(t) | Self::Pong(t) => p.copy_from_slice(&t.to_le_bytes()),
        }
        Ok(HEADER_LEN + len)
    }
}

/// Checks that a node id received from the network is in the valid range.
pub fn check_node(id: NodeId) -> Result<NodeId, ProtoError> {
    if id == 0 || id > MAX_NODE_ID {
        Err(ProtoError::BadField("node id"))
    } else {
        Ok(id)
    }
}

/// Reassembles frames from a byte stream that arrives in arbitrary pieces (a TCP socket read
/// with a timeout may return any amount). Sans-I/O: the caller reads into [`Self::want`] and
/// reports the count with [`Self::advance`].
#[derive(Debug, Default)]
pub struct FrameReader {
    hdr: [u8; HEADER_LEN],
    hdr_fill: usize,
    cur: Option<Header>,
    fill: usize,
}

impl FrameReader {
    /// A reader at a frame boundary.
    pub const fn new() -> Self {
        Self {
            hdr: [0; HEADER_LEN],
            hdr_fill: 0,
            cur: None,
            fill: 0,
        }
    }

    /// The slice the next stream bytes must be read into: the rest of the header, or the rest
    /// of the payload inside `payload` (which must be at least [`MAX_PAYLOAD`] long).
    pub fn want<'b>(&'b mut self, payload: &'b mut [u8]) -> &'b mut [u8] {
        match self.cur {
            None => &mut self.hdr[self.hdr_fill..],
            Some(h) => &mut payload[self.fill..h.len as usize],
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
                if h.len == 0 {
                    return Ok(Some(h));
                }
                self.cur = Some(h);
                self.fill = 0;
                Ok(None)
            }
            Some(h) => {
                self.fill = (self.fill + n).min(h.len as usize);
                if self.fill < h.len as usize {
                    return Ok(None);
                }
                self.cur = None;
                Ok(Some(h))
            }
        }
    }

    /// True when no partial frame is buffered.
    pub fn at_boundary(&self) -> bool {
        self.cur.is_none() && self.hdr_fill == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn samples() -> Vec<Message> {
        std::vec![
            Message::Hello(Hello {
                min_version: 1,
                max_version: 3,
                node: 7,
                caps: caps::ALL,
                nonce: [9; NONCE_LEN],
            }),
            Message::Challenge(Challenge {
                version: 1,
                node: MAX_NODE_ID,
                caps: caps::ALL,
                nonce: [1; NONCE_LEN],
                mac: [2; MAC_LEN],
            }),
            Message::Auth([3; MAC_LEN]),
            Message::Welcome,
            Message::Error(Reason::BadAuth),
            Message::Ping(u64::MAX),
            Message::Pong(42),
            Message::Bye(Reason::Shutdown),
        ]
    }

    fn roundtrip(m: &Message) -> Message {
        let mut buf = [0u8; 256];
        let n = m.encode(77, &mut buf).unwrap();
        let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(h.seq, 77);
        assert_eq!(h.len as usize, n - HEADER_LEN);
        Message::decode(&h, &buf[HEADER_LEN..n]).unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            assert_eq!(roundtrip(&m), m);
        }
    }

    #[test]
    fn header_rejects_each_bad_field() {
        let mut buf = [0u8; 64];
        Message::Ping(5).encode(1, &mut buf).unwrap();
        let good: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().unwrap();
        assert!(Header::decode(&good).is_ok());

        let mut b = good;
        b[0] ^= 1;
        assert!(matches!(Header::decode(&b), Err(ProtoError::BadMagic(_))));
        let mut b = good;
        b[2] = 2;
        assert_eq!(Header::decode(&b), Err(ProtoError::BadVersion(2)));
        let mut b = good;
        b[3] = 0x7f;
        assert_eq!(Header::decode(&b), Err(ProtoError::UnknownType(0x7f)));
        for i in 4..8 {
            let mut b = good;
            b[i] = 1;
            assert_eq!(Header::decode(&b), Err(ProtoError::ReservedBits));
        }
        let mut b = good;
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Header::decode(&b),
            Err(ProtoError::BadLength { .. })
        ));
        let mut b = good;
        b[8..12].copy_from_slice(&7u32.to_le_bytes());
        assert!(matches!(
            Header::decode(&b),
            Err(ProtoError::BadLength { .. })
        ));
    }

    #[test]
    fn payload_fields_are_validated() {
        let mut buf = [0u8; 256];
        let hello = Message::Hello(Hello {
            min_version: 1,
            max_version: 1,
            node: 1,
            caps: 0,
            nonce: [0; NONCE_LEN],
        });
        let n = hello.encode(0, &mut buf).unwrap();
        let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
        let p = &mut buf[HEADER_LEN..n];
        // node id 0 and above MAX_NODE_ID
        p[4..6].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(Message::decode(&h, p), Err(ProtoError::BadField("node id")));
        p[4..6].copy_from_slice(&(MAX_NODE_ID + 1).to_le_bytes());
        assert!(Message::decode(&h, p).is_err());
        p[4..6].copy_from_slice(&1u16.to_le_bytes());
        // inverted version range
        p[0..2].copy_from_slice(&5u16.to_le_bytes());
        assert!(Message::decode(&h, p).is_err());
        // payload shorter than the header says
        assert!(Message::decode(&h, &p[..4]).is_err());

        let n = Message::Error(Reason::Busy).encode(0, &mut buf).unwrap();
        let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
        buf[HEADER_LEN] = 200;
        assert_eq!(
            Message::decode(&h, &buf[HEADER_LEN..n]),
            Err(ProtoError::BadField("reason"))
        );
    }

    #[test]
    fn encode_refuses_small_buffer() {
        let mut buf = [0u8; 20];
        assert_eq!(
            Message::Auth([0; MAC_LEN]).encode(0, &mut buf),
            Err(ProtoError::BufferTooSmall)
        );
    }

    /// Feeds `stream` to a reader in pieces of the given sizes; returns decoded messages or the
    /// first error.
    fn read_all(stream: &[u8], pieces: &[usize]) -> Result<Vec<Message>, ProtoError> {
        let mut r = FrameReader::new();
        let mut payload = std::vec![0u8; MAX_PAYLOAD];
        let mut out = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < stream.len() {
            let want = r.want(&mut payload);
            let step = pieces[i % pieces.len()].max(1);
            i += 1;
            let n = step.min(want.len()).min(stream.len() - pos);
            want[..n].copy_from_slice(&stream[pos..pos + n]);
            pos += n;
            if let Some(h) = r.advance(n)? {
                out.push(Message::decode(&h, &payload[..h.len as usize])?);
            }
        }
        Ok(out)
    }

    #[test]
    fn reader_reassembles_byte_by_byte() {
        let mut stream = Vec::new();
        for (i, m) in samples().iter().enumerate() {
            let mut buf = [0u8; 256];
            let n = m.encode(i as u32, &mut buf).unwrap();
            stream.extend_from_slice(&buf[..n]);
        }
        assert_eq!(read_all(&stream, &[1]).unwrap(), samples());
        assert_eq!(read_all(&stream, &[3, 17, 1, 64]).unwrap(), samples());
    }

    #[test]
    fn reader_stops_at_garbage() {
        let garbage = [0x41u8; 64];
        assert!(read_all(&garbage, &[5]).is_err());
    }

    proptest! {
        #[test]
        fn random_headers_never_panic(b in proptest::array::uniform16(any::<u8>())) {
            if let Ok(h) = Header::decode(&b) {
                prop_assert_eq!(h.len as usize, h.ty.payload_len());
                prop_assert_eq!(h.encode(), b);
            }
        }

        #[test]
        fn random_payloads_never_panic(ty in any::<u8>(), p in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(t) = MsgType::from_u8(ty) {
                let h = Header { ty: t, len: p.len() as u32, seq: 0 };
                if let Ok(m) = Message::decode(&h, &p) {
                    // whatever decodes must re-encode to the same bytes
                    let mut buf = [0u8; 256];
                    let n = m.encode(0, &mut buf).unwrap();
                    prop_assert_eq!(&buf[HEADER_LEN..n], &p[..]);
                }
            }
        }

        #[test]
        fn random_streams_never_panic(s in proptest::collection::vec(any::<u8>(), 0..512),
                                      pieces in proptest::collection::vec(1usize..40, 1..8)) {
            let _ = read_all(&s, &pieces);
        }

        #[test]
        fn valid_streams_survive_any_split(pieces in proptest::collection::vec(1usize..40, 1..8)) {
            let mut stream = Vec::new();
            for m in samples() {
                let mut buf = [0u8; 256];
                let n = m.encode(0, &mut buf).unwrap();
                stream.extend_from_slice(&buf[..n]);
            }
            prop_assert_eq!(read_all(&stream, &pieces).unwrap(), samples());
        }
    }
}
