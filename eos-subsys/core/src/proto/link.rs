//! The link family: the handshake (Hello, Challenge, Auth, Welcome), liveness (Ping, Pong) and
//! refusal or close (Error, Bye). Each message's layout, decoder and encoder sit together.

use super::cursor::{Reader, Writer};
use super::{check_node, Message, NodeId, ProtoError, MAC_LEN, NONCE_LEN};

/// Payload size of [`Hello`].
pub const HELLO_LEN: usize = 12 + NONCE_LEN;
/// Payload size of [`Challenge`] (the MAC included).
pub const CHALLENGE_LEN: usize = 8 + NONCE_LEN + MAC_LEN;
/// Payload size of `Auth`: the initiator's MAC.
pub(super) const AUTH_LEN: usize = MAC_LEN;
/// Payload size of `Error` and `Bye`.
pub(super) const REASON_LEN: usize = 4;
/// Payload size of `Ping` and `Pong`.
pub(super) const CLOCK_LEN: usize = 8;

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

// Hello: min_version u16, max_version u16, node u16, reserved u16, caps u32, nonce [32].
pub(super) fn decode_hello(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (min_version, max_version, node, reserved) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    let (caps, nonce) = (r.u32()?, r.array()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    if min_version == 0 || min_version > max_version {
        return Err(ProtoError::BadField("version range"));
    }
    check_node(node)?;
    Ok(Message::Hello(Hello {
        min_version,
        max_version,
        node,
        caps,
        nonce,
    }))
}

pub(super) fn encode_hello(w: &mut Writer<'_>, m: &Hello) -> Result<(), ProtoError> {
    w.u16(m.min_version)?;
    w.u16(m.max_version)?;
    w.u16(m.node)?;
    w.u16(0)?; // reserved
    w.u32(m.caps)?;
    w.bytes(&m.nonce)
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

// Challenge: version u16, node u16, caps u32, nonce [32], mac [32].
pub(super) fn decode_challenge(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (version, node, caps) = (r.u16()?, r.u16()?, r.u32()?);
    let (nonce, mac) = (r.array()?, r.array()?);
    if version == 0 {
        return Err(ProtoError::BadField("version"));
    }
    check_node(node)?;
    Ok(Message::Challenge(Challenge {
        version,
        node,
        caps,
        nonce,
        mac,
    }))
}

pub(super) fn encode_challenge(w: &mut Writer<'_>, m: &Challenge) -> Result<(), ProtoError> {
    w.u16(m.version)?;
    w.u16(m.node)?;
    w.u32(m.caps)?;
    w.bytes(&m.nonce)?;
    w.bytes(&m.mac)
}

// Auth: mac [32].
pub(super) fn decode_auth(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    r.array().map(Message::Auth)
}

pub(super) fn encode_auth(w: &mut Writer<'_>, mac: &[u8; MAC_LEN]) -> Result<(), ProtoError> {
    w.bytes(mac)
}

// Welcome: no payload.

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

// Error and Bye: reason u16, reserved u16.
fn decode_reason(r: &mut Reader<'_>) -> Result<Reason, ProtoError> {
    let (reason, reserved) = (r.u16()?, r.u16()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    Reason::from_u16(reason)
}

pub(super) fn decode_error(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    decode_reason(r).map(Message::Error)
}

pub(super) fn decode_bye(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    decode_reason(r).map(Message::Bye)
}

pub(super) fn encode_reason(w: &mut Writer<'_>, reason: Reason) -> Result<(), ProtoError> {
    w.u16(reason as u16)?;
    w.u16(0) // reserved
}

// Ping and Pong: clock u64 (the sender's monotonic clock in ns; a pong echoes the ping's).
pub(super) fn decode_ping(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    r.u64().map(Message::Ping)
}

pub(super) fn decode_pong(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    r.u64().map(Message::Pong)
}

pub(super) fn encode_clock(w: &mut Writer<'_>, clock: u64) -> Result<(), ProtoError> {
    w.u64(clock)
}
