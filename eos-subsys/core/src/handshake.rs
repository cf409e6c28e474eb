//! Mutual authentication of two nodes that share the cluster secret.
//!
//! ```text
//! initiator (lower node id)                  responder
//!   Hello{versions, id_i, caps_i, n_i}  ->
//!                                       <-  Challenge{v, id_r, caps_r, n_r, mac_r}
//!   Auth{mac_i}                         ->
//!                                       <-  Welcome
//! mac_r = HMAC(K, "EOS1-RESP" || hello || challenge-without-mac)
//! mac_i = HMAC(K, "EOS1-INIT" || hello || challenge-without-mac)
//! ```
//! Both MACs cover both fresh nonces and both identities, and the role labels differ, so a
//! recorded or reflected answer never verifies. The MAC itself is computed by the caller's
//! [`Mac`] (kernel crypto `hmac(sha256)` in the kernel, a software HMAC in host tests).

use crate::proto::{
    Challenge, Hello, Message, MsgType, NodeId, Reason, CHALLENGE_LEN, HELLO_LEN, MAC_LEN,
    NONCE_LEN,
};
use crate::record::{derive_keys, Keys};
use core::fmt;

/// Protocol versions this build speaks.
pub const MIN_VERSION: u16 = 8;
/// See [`MIN_VERSION`].
pub const MAX_VERSION: u16 = 8;

const LABEL_RESP: &[u8; 9] = b"EOS1-RESP";
const LABEL_INIT: &[u8; 9] = b"EOS1-INIT";
const TRANSCRIPT_LEN: usize = 9 + HELLO_LEN + CHALLENGE_LEN - MAC_LEN;

/// Keyed MAC over a message (HMAC-SHA256 with the cluster secret).
pub trait Mac {
    /// Computes the tag of `msg`, or `None` when the MAC is unavailable (no key set, crypto
    /// allocation failure).
    fn mac(&self, msg: &[u8]) -> Option<[u8; MAC_LEN]>;
}

/// Why a handshake failed; [`Self::reason`] is what we tell the peer before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// A message that is not valid at this step.
    Unexpected(MsgType),
    /// No protocol version in common.
    Version {
        /// Peer's lowest version.
        min: u16,
        /// Peer's highest version.
        max: u16,
    },
    /// The peer's node id is not a member of the cluster (or is our own id).
    UnknownNode(NodeId),
    /// The responder is not the node we dialled.
    WrongPeer {
        /// Who we dialled.
        expected: NodeId,
        /// Who answered.
        got: NodeId,
    },
    /// The peer's MAC did not verify: it does not hold the cluster secret.
    BadMac,
    /// The peer refused us.
    Refused(Reason),
    /// Our own MAC could not be computed.
    NoKey,
}

impl HandshakeError {
    /// The reason sent to the peer in an `Error` message.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Unexpected(_) => Reason::Unexpected,
            Self::Version { .. } => Reason::Version,
            Self::UnknownNode(_) | Self::WrongPeer { .. } => Reason::UnknownNode,
            Self::BadMac | Self::NoKey => Reason::BadAuth,
            Self::Refused(r) => *r,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unexpected(t) => write!(f, "unexpected {} message", t.name()),
            Self::Version { min, max } => {
                write!(f, "no common version (peer speaks {min}..={max})")
            }
            Self::UnknownNode(id) => write!(f, "node {id} is not a cluster member"),
            Self::WrongPeer { expected, got } => {
                write!(f, "dialled node {expected} but node {got} answered")
            }
            Self::BadMac => write!(f, "authentication failed (wrong cluster secret?)"),
            Self::Refused(r) => write!(f, "refused by peer: {}", r.name()),
            Self::NoKey => write!(f, "no cluster secret configured"),
        }
    }
}

/// Result of a successful handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Established {
    /// The authenticated peer.
    pub peer: NodeId,
    /// Negotiated protocol version.
    pub version: u16,
    /// Capabilities both sides support.
    pub caps: u32,
}

fn transcript(label: &[u8; 9], hello: &Hello, ch: &Challenge) -> [u8; TRANSCRIPT_LEN] {
    let mut t = [0u8; TRANSCRIPT_LEN];
    let mut buf = [0u8; crate::proto::HEADER_LEN + CHALLENGE_LEN];
    t[..9].copy_from_slice(label);
    // Encoding into a buffer of the right size cannot fail.
    let _ = Message::Hello(*hello).encode(0, &mut buf);
    t[9..9 + HELLO_LEN]
        .copy_from_slice(&buf[crate::proto::HEADER_LEN..crate::proto::HEADER_LEN + HELLO_LEN]);
    let _ = Message::Challenge(*ch).encode(0, &mut buf);
    t[9 + HELLO_LEN..].copy_from_slice(
        &buf[crate::proto::HEADER_LEN..crate::proto::HEADER_LEN + CHALLENGE_LEN - MAC_LEN],
    );
    t
}

/// Compares two tags in time independent of where they differ.
pub fn ct_eq(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn refusal(m: &Message<'_>) -> HandshakeError {
    match m {
        Message::Error(r) => HandshakeError::Refused(*r),
        other => HandshakeError::Unexpected(other.ty()),
    }
}

/// The MAC an initiator's `Auth` carries for `hello` and `ch` under `mac`'s key, computed
/// without checking the challenge first: what a hostile initiator that lacks the right key
/// sends anyway (eos-badpeer), so tests see the responder refuse it.
// Used by eos-badpeer, not by the kernel.
#[allow(dead_code)]
pub fn initiator_mac(mac: &impl Mac, hello: &Hello, ch: &Challenge) -> Option<[u8; MAC_LEN]> {
    mac.mac(&transcript(LABEL_INIT, hello, ch))
}

/// The dialling side.
#[derive(Debug)]
pub struct Initiator {
    peer: NodeId,
    hello: Hello,
    done: Option<Established>,
    keys: Option<Keys>,
}

impl Initiator {
    /// Starts a handshake from `local` to `peer` with a fresh random `nonce`.
    pub fn new(local: NodeId, peer: NodeId, caps: u32, nonce: [u8; NONCE_LEN]) -> Self {
        Self {
            peer,
            hello: Hello {
                min_version: MIN_VERSION,
                max_version: MAX_VERSION,
                node: local,
                caps,
                nonce,
            },
            done: None,
            keys: None,
        }
    }

    /// The record layer's keys, once the responder's proof verified.
    pub fn keys(&self) -> Option<&Keys> {
        self.keys.as_ref()
    }

    /// The first message to send.
    pub fn hello(&self) -> Message<'static> {
        Message::Hello(self.hello)
    }

    /// Checks the responder's proof and returns our `Auth`.
    pub fn on_challenge(
        &mut self,
        m: &Message<'_>,
        mac: &impl Mac,
    ) -> Result<Message<'static>, HandshakeError> {
        let Message::Challenge(ch) = m else {
            return Err(refusal(m));
        };
        if ch.node != self.peer {
            return Err(HandshakeError::WrongPeer {
                expected: self.peer,
                got: ch.node,
            });
        }
        if ch.version < self.hello.min_version || ch.version > self.hello.max_version {
            return Err(HandshakeError::Version {
                min: ch.version,
                max: ch.version,
            });
        }
        let want = mac
            .mac(&transcript(LABEL_RESP, &self.hello, ch))
            .ok_or(HandshakeError::NoKey)?;
        if !ct_eq(&want, &ch.mac) {
            return Err(HandshakeError::BadMac);
        }
        let ours = mac
            .mac(&transcript(LABEL_INIT, &self.hello, ch))
            .ok_or(HandshakeError::NoKey)?;
        self.keys = Some(derive_keys(mac, &self.hello, ch).ok_or(HandshakeError::NoKey)?);
        self.done = Some(Established {
            peer: ch.node,
            version: ch.version,
            caps: ch.caps & self.hello.caps,
        });
        Ok(Message::Auth(ours))
    }

    /// The responder's final word.
    pub fn on_welcome(&mut self, m: &Message<'_>) -> Result<Established, HandshakeError> {
        match (m, self.done) {
            (Message::Welcome, Some(e)) => Ok(e),
            (Message::Welcome, None) => Err(HandshakeError::Unexpected(MsgType::Welcome)),
            _ => Err(refusal(m)),
        }
    }
}

/// The accepting side.
#[derive(Debug)]
pub struct Responder {
    local: NodeId,
    caps: u32,
    nonce: [u8; NONCE_LEN],
    state: Option<(Hello, Challenge)>,
    keys: Option<Keys>,
}

impl Responder {
    /// Prepares to answer a handshake with a fresh random `nonce`.
    pub fn new(local: NodeId, caps: u32, nonce: [u8; NONCE_LEN]) -> Self {
        Self {
            local,
            caps,
            nonce,
            state: None,
            keys: None,
        }
    }

    /// The record layer's keys, once the initiator's proof verified.
    pub fn keys(&self) -> Option<&Keys> {
        self.keys.as_ref()
    }

    /// Answers a `Hello` from a node that `is_member` accepts with our `Challenge`.
    pub fn on_hello(
        &mut self,
        m: &Message<'_>,
        is_member: impl Fn(NodeId) -> bool,
        mac: &impl Mac,
    ) -> Result<Message<'static>, HandshakeError> {
        let Message::Hello(h) = m else {
            return Err(refusal(m));
        };
        if h.min_version > MAX_VERSION || h.max_version < MIN_VERSION {
            return Err(HandshakeError::Version {
                min: h.min_version,
                max: h.max_version,
            });
        }
        if h.node == self.local || !is_member(h.node) {
            return Err(HandshakeError::UnknownNode(h.node));
        }
        let mut ch = Challenge {
            version: h.max_version.min(MAX_VERSION),
            node: self.local,
            caps: self.caps,
            nonce: self.nonce,
            mac: [0; MAC_LEN],
        };
        ch.mac = mac
            .mac(&transcript(LABEL_RESP, h, &ch))
            .ok_or(HandshakeError::NoKey)?;
        self.state = Some((*h, ch));
        Ok(Message::Challenge(ch))
    }

    /// Verifies the initiator's `Auth`; on success the caller sends `Welcome`.
    pub fn on_auth(
        &mut self,
        m: &Message<'_>,
        mac: &impl Mac,
    ) -> Result<Established, HandshakeError> {
        let Message::Auth(tag) = m else {
            return Err(refusal(m));
        };
        let Some((h, ch)) = self.state.take() else {
            return Err(HandshakeError::Unexpected(MsgType::Auth));
        };
        let want = mac
            .mac(&transcript(LABEL_INIT, &h, &ch))
            .ok_or(HandshakeError::NoKey)?;
        if !ct_eq(&want, tag) {
            return Err(HandshakeError::BadMac);
        }
        self.keys = Some(derive_keys(mac, &h, &ch).ok_or(HandshakeError::NoKey)?);
        Ok(Established {
            peer: h.node,
            version: ch.version,
            caps: ch.caps & h.caps,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::caps;
    use hmac::{Hmac, Mac as _};
    use sha2::Sha256;

    /// Software HMAC-SHA256, the host stand-in for kernel crypto.
    pub(crate) struct SoftMac(pub &'static [u8]);

    impl Mac for SoftMac {
        fn mac(&self, msg: &[u8]) -> Option<[u8; MAC_LEN]> {
            let mut m = Hmac::<Sha256>::new_from_slice(self.0).ok()?;
            m.update(msg);
            Some(m.finalize().into_bytes().into())
        }
    }

    struct NoMac;
    impl Mac for NoMac {
        fn mac(&self, _: &[u8]) -> Option<[u8; MAC_LEN]> {
            None
        }
    }

    fn wire(m: Message<'_>) -> Message<'static> {
        // Everything goes through the codec, as on a real link.
        let buf: &'static mut [u8] = std::boxed::Box::leak(std::vec![0u8; 256].into_boxed_slice());
        let n = m.encode(0, buf).unwrap();
        let h = crate::proto::Header::decode(buf[..16].try_into().unwrap()).unwrap();
        Message::decode(&h, &buf[16..n]).unwrap()
    }

    fn run(
        ki: &'static [u8],
        kr: &'static [u8],
        members: &'static [NodeId],
    ) -> (
        Result<Established, HandshakeError>,
        Result<Established, HandshakeError>,
    ) {
        let (mi, mr) = (SoftMac(ki), SoftMac(kr));
        let mut i = Initiator::new(1, 2, caps::ALL, [0xaa; NONCE_LEN]);
        let mut r = Responder::new(2, caps::ALL, [0xbb; NONCE_LEN]);
        let ch = match r.on_hello(&wire(i.hello()), |n| members.contains(&n), &mr) {
            Ok(c) => wire(c),
            Err(e) => return (Err(HandshakeError::Refused(e.reason())), Err(e)),
        };
        let auth = match i.on_challenge(&ch, &mi) {
            Ok(a) => wire(a),
            Err(e) => return (Err(e), Err(HandshakeError::Refused(e.reason()))),
        };
        match r.on_auth(&auth, &mr) {
            Ok(est) => (i.on_welcome(&wire(Message::Welcome)), Ok(est)),
            Err(e) => (i.on_welcome(&wire(Message::Error(e.reason()))), Err(e)),
        }
    }

    #[test]
    fn same_key_establishes_both_ways() {
        let (i, r) = run(b"cluster-key", b"cluster-key", &[1]);
        assert_eq!(i.unwrap().peer, 2);
        assert_eq!(r.unwrap().peer, 1);
    }

    #[test]
    fn wrong_key_is_refused_by_initiator() {
        // The responder answers first, so the initiator is the one that detects the mismatch.
        let (i, r) = run(b"key-a", b"key-b", &[1]);
        assert_eq!(i, Err(HandshakeError::BadMac));
        assert!(r.is_err());
    }

    #[test]
    fn unknown_node_is_refused() {
        let (i, r) = run(b"k", b"k", &[3, 4]);
        assert_eq!(r, Err(HandshakeError::UnknownNode(1)));
        assert_eq!(i, Err(HandshakeError::Refused(Reason::UnknownNode)));
    }

    #[test]
    fn forged_auth_is_refused_by_responder() {
        let m = SoftMac(b"k");
        let mut i = Initiator::new(1, 2, 0, [1; NONCE_LEN]);
        let mut r = Responder::new(2, 0, [2; NONCE_LEN]);
        r.on_hello(&i.hello(), |_| true, &m).unwrap();
        assert_eq!(
            r.on_auth(&Message::Auth([0; MAC_LEN]), &m),
            Err(HandshakeError::BadMac)
        );
        // A reflected responder MAC is not an initiator MAC.
        let mut r = Responder::new(2, 0, [2; NONCE_LEN]);
        let Message::Challenge(ch) = r.on_hello(&i.hello(), |_| true, &m).unwrap() else {
            panic!()
        };
        assert_eq!(
            r.on_auth(&Message::Auth(ch.mac), &m),
            Err(HandshakeError::BadMac)
        );
        // Auth before Hello.
        let mut r = Responder::new(2, 0, [2; NONCE_LEN]);
        assert!(r.on_auth(&Message::Auth([0; MAC_LEN]), &m).is_err());
        let _ = i.on_welcome(&Message::Welcome).unwrap_err();
    }

    #[test]
    fn replayed_challenge_fails_with_fresh_nonce() {
        let m = SoftMac(b"k");
        let i1 = Initiator::new(1, 2, 0, [1; NONCE_LEN]);
        let mut r = Responder::new(2, 0, [2; NONCE_LEN]);
        let ch = r.on_hello(&i1.hello(), |_| true, &m).unwrap();
        let mut i2 = Initiator::new(1, 2, 0, [3; NONCE_LEN]);
        assert_eq!(i2.on_challenge(&ch, &m), Err(HandshakeError::BadMac));
    }

    #[test]
    fn version_self_and_wrong_peer_checks() {
        let m = SoftMac(b"k");
        let mut r = Responder::new(2, 0, [2; NONCE_LEN]);
        let mut h = Hello {
            min_version: MAX_VERSION + 1,
            max_version: MAX_VERSION + 8,
            node: 1,
            caps: 0,
            nonce: [0; NONCE_LEN],
        };
        assert!(matches!(
            r.on_hello(&Message::Hello(h), |_| true, &m),
            Err(HandshakeError::Version { .. })
        ));
        h.min_version = 1;
        h.node = 2;
        assert_eq!(
            r.on_hello(&Message::Hello(h), |_| true, &m),
            Err(HandshakeError::UnknownNode(2))
        );
        let mut i = Initiator::new(1, 5, 0, [1; NONCE_LEN]);
        let mut r = Responder::new(2, 0, [2; NONCE_LEN]);
        let ch = r.on_hello(&i.hello(), |_| true, &m).unwrap();
        assert_eq!(
            i.on_challenge(&ch, &m),
            Err(HandshakeError::WrongPeer {
                expected: 5,
                got: 2
            })
        );
        assert_eq!(
            r.on_hello(&Message::Ping(1), |_| true, &m),
            Err(HandshakeError::Unexpected(MsgType::Ping))
        );
        let mut r = Responder::new(2, 0, [2; NONCE_LEN]);
        assert_eq!(
            r.on_hello(&i.hello(), |_| true, &NoMac),
            Err(HandshakeError::NoKey)
        );
    }

    #[test]
    fn rfc4231_case2_vector_for_soft_mac() {
        // Keeps the host stand-in honest; the kernel KUnit suite checks kernel crypto against
        // the same vector.
        let m = SoftMac(b"Jefe");
        let tag = m.mac(b"what do ya want for nothing?").unwrap();
        assert_eq!(tag[..4], [0x5b, 0xdc, 0xc1, 0x46]);
        assert_eq!(tag[28..], [0x64, 0xec, 0x38, 0x43]);
    }
}
