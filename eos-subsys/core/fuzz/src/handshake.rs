//! Target `handshake`: both state machines of `eos_core::handshake` driven by an attacker who
//! sits on the wire and does not hold the key.
//!
//! The input is a small program. Its head sets the scene: the initiator's and the responder's
//! keys (the same, different, or none), node ids (few, so they collide), capabilities, nonces
//! and who the responder counts as a member. Then each operation is one of: the initiator
//! sends its hello; a message from the wire log is delivered to `Responder::on_hello`,
//! `Initiator::on_challenge`, `Responder::on_auth` or `Initiator::on_welcome`; the attacker adds
//! a message to the log (decoded from bytes of the input, a logged one with a byte flipped, a
//! reflected MAC, a forged field); a side starts a new session (a fresh nonce). Whatever an
//! honest side answers goes to the log too (its reply, or the `Error` it would send).
//!
//! Invariants: nothing panics; every message goes through the codec unchanged; a side only
//! authenticates when both hold the same key, and then only on the genuine answer of the
//! other side to its own hello or challenge (no forged, replayed, reflected or tampered message
//! passes); every MAC is the one the module's doc specifies; every result, success or refusal,
//! is the one the protocol prescribes for that message in that state (a refusal carries the
//! right reason, a failed `Auth` consumes the responder's state, `Welcome` before a verified
//! challenge is refused).

use crate::Input;
use eos_core::handshake::{
    ct_eq, Established, HandshakeError, Initiator, Mac, Responder, MAX_VERSION, MIN_VERSION,
};
use eos_core::proto::{
    Challenge, Header, Hello, Message, MsgType, NodeId, Reason, CHALLENGE_LEN, HEADER_LEN,
    HELLO_LEN, MAC_LEN, MAX_NODE_ID, NONCE_LEN,
};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// A node's cluster secret, or none (the MAC is unavailable).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(Option<[u8; 32]>);

impl Mac for Key {
    fn mac(&self, msg: &[u8]) -> Option<[u8; MAC_LEN]> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0?).ok()?;
        m.update(msg);
        Some(m.finalize().into_bytes().into())
    }
}

/// The MAC as the doc of `eos_core::handshake` defines it:
/// HMAC(K, label || hello || challenge-without-mac), each as its wire payload.
fn spec_mac(k: &Key, label: &[u8], h: &Hello, ch: &Challenge) -> Option<[u8; MAC_LEN]> {
    let mut buf = [0u8; HEADER_LEN + CHALLENGE_LEN];
    let mut t = label.to_vec();
    Message::Hello(*h).encode(0, &mut buf).unwrap();
    t.extend_from_slice(&buf[HEADER_LEN..HEADER_LEN + HELLO_LEN]);
    Message::Challenge(*ch).encode(0, &mut buf).unwrap();
    t.extend_from_slice(&buf[HEADER_LEN..HEADER_LEN + CHALLENGE_LEN - MAC_LEN]);
    k.mac(&t)
}

const RESP: &[u8] = b"EOS1-RESP";
const INIT: &[u8] = b"EOS1-INIT";

/// A node id: few distinct ones (so they collide), and the largest.
fn node(b: u8) -> NodeId {
    if b == 0xff {
        MAX_NODE_ID
    } else {
        1 + NodeId::from(b % 6)
    }
}

/// Who the responder counts as a cluster member, by `mode`: everyone, nobody, only the
/// initiator, everyone but the initiator.
fn member(mode: u8, initiator: NodeId, n: NodeId) -> bool {
    match mode {
        0 => true,
        1 => false,
        2 => n == initiator,
        _ => n != initiator,
    }
}

/// Encodes and decodes `m` as a link would; `None` if the decoder refuses it.
fn wire<'a>(m: &Message<'a>, buf: &'a mut [u8]) -> Option<Message<'a>> {
    let n = m.encode(7, buf).ok()?;
    let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).ok()?;
    Message::decode(&h, &buf[HEADER_LEN..n]).ok()
}

/// Only handshake messages are kept in the log as owned values; any other type stands for
/// "some other message" (its type is all the state machines look at).
fn owned(m: &Message<'_>) -> Message<'static> {
    match *m {
        Message::Hello(h) => Message::Hello(h),
        Message::Challenge(c) => Message::Challenge(c),
        Message::Auth(a) => Message::Auth(a),
        Message::Welcome => Message::Welcome,
        Message::Error(r) => Message::Error(r),
        Message::Ping(c) => Message::Ping(c),
        Message::Pong(c) => Message::Pong(c),
        Message::Bye(r) => Message::Bye(r),
        Message::Release { pid } => Message::Release { pid },
        Message::Recall { pid } => Message::Recall { pid },
        Message::Gone { pid, signal } => Message::Gone { pid, signal },
        _ => Message::Recall { pid: 0 },
    }
}

/// A message of the wrong type is refused as unexpected, an `Error` as the peer's refusal.
fn check_refusal(m: &Message<'_>, e: HandshakeError) {
    match m {
        Message::Error(r) => assert_eq!(e, HandshakeError::Refused(*r)),
        other => assert_eq!(e, HandshakeError::Unexpected(other.ty())),
    }
}

struct World {
    ki: Key,
    kr: Key,
    local_i: NodeId,
    peer_i: NodeId,
    caps_i: u32,
    local_r: NodeId,
    caps_r: u32,
    members: u8,
    init: Initiator,
    hello_i: Hello,
    /// The challenge the initiator verified, and what it then holds as established.
    init_done: Option<Established>,
    resp: Responder,
    nonce_r: [u8; NONCE_LEN],
    /// What the responder's `on_auth` will check against.
    resp_state: Option<(Hello, Challenge)>,
    /// Every challenge an honest responder made, with the hello it answered.
    challenges: Vec<(Hello, Challenge)>,
    /// Every Auth an honest initiator made, with its hello and the challenge it answered.
    auths: Vec<(Hello, Challenge, [u8; MAC_LEN])>,
    log: Vec<Message<'static>>,
    /// Handshakes completed: by the initiator (`on_welcome`), by the responder (`on_auth`).
    established: (u32, u32),
}

impl World {
    fn new(inp: &mut Input<'_>) -> Self {
        let modes = inp.u8();
        let key: [u8; 32] = inp.array();
        let ki = Key((modes & 3 != 2).then_some(key));
        let mut other = key;
        other[usize::from(modes >> 4) % 32] ^= 1 << (modes % 8);
        let kr = Key(match (modes >> 2) & 3 {
            1 => Some(other),
            2 => None,
            _ => Some(key),
        });
        let (local_i, peer_i, local_r) = (node(inp.u8()), node(inp.u8()), node(inp.u8()));
        let (caps_i, caps_r) = (inp.u32(), inp.u32());
        let (nonce_i, nonce_r) = ([inp.u8(); NONCE_LEN], [inp.u8(); NONCE_LEN]);
        let init = Initiator::new(local_i, peer_i, caps_i, nonce_i);
        let Message::Hello(hello_i) = init.hello() else {
            panic!("hello() is not a Hello")
        };
        World {
            ki,
            kr,
            local_i,
            peer_i,
            caps_i,
            local_r,
            caps_r,
            members: inp.u8() % 4,
            init,
            hello_i,
            init_done: None,
            resp: Responder::new(local_r, caps_r, nonce_r),
            nonce_r,
            resp_state: None,
            challenges: Vec::new(),
            auths: Vec::new(),
            log: Vec::new(),
            established: (0, 0),
        }
    }

    fn is_member(&self, n: NodeId) -> bool {
        member(self.members, self.local_i, n)
    }

    fn same_key(&self) -> bool {
        self.ki.0.is_some() && self.ki == self.kr
    }

    fn pick(&self, inp: &mut Input<'_>) -> Message<'static> {
        let b = usize::from(inp.u8());
        if self.log.is_empty() {
            Message::Welcome
        } else {
            self.log[b % self.log.len()]
        }
    }

    /// Adds a message to the log if it survives the codec (as anything on a link must).
    fn post(&mut self, m: &Message<'_>) -> bool {
        let mut buf = [0u8; 512];
        let Some(back) = wire(m, &mut buf) else {
            return false;
        };
        assert_eq!(&back, m, "handshake message changed on the wire");
        self.log.push(owned(&back));
        true
    }

    /// Posts a message an honest side produced: it must survive the codec.
    fn honest(&mut self, m: &Message<'_>) {
        assert!(self.post(m), "an honest side made an undecodable {m:?}");
    }

    fn step(&mut self, inp: &mut Input<'_>) {
        match inp.u8() % 12 {
            0 => {
                let m = self.init.hello();
                assert_eq!(m, Message::Hello(self.hello_i));
                assert!(self.hello_i.min_version == MIN_VERSION);
                assert!(self.hello_i.max_version == MAX_VERSION);
                self.honest(&m);
            }
            1 => {
                let m = self.pick(inp);
                self.on_hello(&m);
            }
            2 => {
                let m = self.pick(inp);
                self.on_challenge(&m);
            }
            3 => {
                let m = self.pick(inp);
                self.on_auth(&m);
            }
            4 => {
                let m = self.pick(inp);
                self.on_welcome(&m);
            }
            5 => {
                // Bytes of the input as a payload of some type.
                let ty = inp.u8();
                let len = usize::from(inp.u8());
                let p = inp.bytes(len);
                if let Ok(ty) = MsgType::from_u8(ty) {
                    let h = Header {
                        ty,
                        len: p.len() as u32,
                        seq: 0,
                    };
                    if let Ok(m) = Message::decode(&h, p) {
                        self.post(&m);
                    }
                }
            }
            6 => {
                // A logged message with one byte changed.
                let m = self.pick(inp);
                let (at, x) = (usize::from(inp.u8()), inp.u8() | 1);
                let mut buf = [0u8; 512];
                let Ok(n) = m.encode(0, &mut buf) else { return };
                buf[at % n] ^= x;
                let Ok(h) = Header::decode(buf[..HEADER_LEN].try_into().unwrap()) else {
                    return;
                };
                if let Ok(m) = Message::decode(&h, &buf[HEADER_LEN..n]) {
                    let m = owned(&m);
                    self.post(&m);
                }
            }
            7 => {
                // A logged message with one field replaced by the attacker.
                let m = self.pick(inp);
                let v = inp.u32();
                let forged = match m {
                    Message::Hello(mut h) => {
                        match v % 4 {
                            0 => h.node = node(v as u8 >> 2),
                            1 => h.caps ^= v,
                            2 => h.max_version = (v >> 16) as u16,
                            _ => h.nonce[v as usize % NONCE_LEN] ^= 1,
                        }
                        Message::Hello(h)
                    }
                    Message::Challenge(mut c) => {
                        match v % 4 {
                            0 => c.node = node(v as u8 >> 2),
                            1 => c.caps ^= v,
                            2 => c.version = (v >> 16) as u16,
                            _ => c.mac[v as usize % MAC_LEN] ^= 1,
                        }
                        Message::Challenge(c)
                    }
                    // Reflection: the responder's own proof sent back as the initiator's.
                    Message::Auth(mut a) => {
                        a[v as usize % MAC_LEN] ^= (v >> 8) as u8;
                        Message::Auth(a)
                    }
                    _ => Message::Error(Reason::from_u16((v % 8) as u16).unwrap()),
                };
                self.post(&forged);
            }
            8 => {
                // Reflection: a challenge's MAC presented as an Auth, a hello's nonce as a MAC.
                let m = self.pick(inp);
                let forged = match m {
                    Message::Challenge(c) => Message::Auth(c.mac),
                    Message::Hello(h) => Message::Auth(h.nonce),
                    _ => Message::Welcome,
                };
                self.post(&forged);
            }
            9 => {
                // A new session of the initiator (a reconnect), maybe with a reused nonce.
                self.init = Initiator::new(self.local_i, self.peer_i, self.caps_i, [inp.u8(); 32]);
                let Message::Hello(h) = self.init.hello() else {
                    panic!()
                };
                self.hello_i = h;
                self.init_done = None;
            }
            10 => {
                self.nonce_r = [inp.u8(); NONCE_LEN];
                self.resp = Responder::new(self.local_r, self.caps_r, self.nonce_r);
                self.resp_state = None;
            }
            _ => {
                let (a, b) = (inp.array::<MAC_LEN>(), inp.array::<MAC_LEN>());
                assert_eq!(ct_eq(&a, &b), a == b);
                assert!(ct_eq(&a, &a));
            }
        }
    }

    fn on_hello(&mut self, m: &Message<'_>) {
        let (mode, initiator) = (self.members, self.local_i);
        let r = self
            .resp
            .on_hello(m, |n| member(mode, initiator, n), &self.kr)
            .map(|c| owned(&c));
        let Message::Hello(h) = *m else {
            check_refusal(m, r.expect_err("on_hello accepted a non-hello"));
            return;
        };
        let expected = if h.min_version > MAX_VERSION || h.max_version < MIN_VERSION {
            Err(HandshakeError::Version {
                min: h.min_version,
                max: h.max_version,
            })
        } else if h.node == self.local_r || !self.is_member(h.node) {
            Err(HandshakeError::UnknownNode(h.node))
        } else if self.kr.0.is_none() {
            Err(HandshakeError::NoKey)
        } else {
            Ok(())
        };
        match r {
            Ok(Message::Challenge(ch)) => {
                assert_eq!(expected, Ok(()), "on_hello accepted {h:?}");
                assert_eq!(
                    (ch.node, ch.caps, ch.nonce),
                    (self.local_r, self.caps_r, self.nonce_r)
                );
                assert!(ch.version >= h.min_version.max(MIN_VERSION));
                assert!(ch.version <= h.max_version.min(MAX_VERSION));
                assert_eq!(Some(ch.mac), spec_mac(&self.kr, RESP, &h, &ch));
                self.resp_state = Some((h, ch));
                self.challenges.push((h, ch));
                self.honest(&Message::Challenge(ch));
            }
            Ok(other) => panic!("on_hello answered {other:?}"),
            Err(e) => {
                assert_eq!(Err(e), expected, "on_hello refused {h:?}");
                self.honest(&Message::Error(e.reason()));
            }
        }
    }

    fn on_challenge(&mut self, m: &Message<'_>) {
        let r = self.init.on_challenge(m, &self.ki);
        let Message::Challenge(ch) = *m else {
            check_refusal(m, r.expect_err("on_challenge accepted a non-challenge"));
            return;
        };
        let h = self.hello_i;
        let genuine = spec_mac(&self.ki, RESP, &h, &ch);
        let expected = if ch.node != self.peer_i {
            Err(HandshakeError::WrongPeer {
                expected: self.peer_i,
                got: ch.node,
            })
        } else if ch.version < MIN_VERSION || ch.version > MAX_VERSION {
            Err(HandshakeError::Version {
                min: ch.version,
                max: ch.version,
            })
        } else if genuine.is_none() {
            Err(HandshakeError::NoKey)
        } else if genuine != Some(ch.mac) {
            Err(HandshakeError::BadMac)
        } else {
            Ok(())
        };
        match r {
            Ok(Message::Auth(tag)) => {
                assert_eq!(expected, Ok(()), "on_challenge accepted {ch:?}");
                assert!(
                    self.same_key(),
                    "initiator verified a responder without the key"
                );
                assert!(
                    self.challenges.contains(&(h, ch)),
                    "initiator accepted a challenge no responder made for its hello"
                );
                assert_eq!(Some(tag), spec_mac(&self.ki, INIT, &h, &ch));
                self.init_done = Some(Established {
                    peer: ch.node,
                    version: ch.version,
                    caps: ch.caps & h.caps,
                });
                self.auths.push((h, ch, tag));
                self.honest(&Message::Auth(tag));
            }
            Ok(other) => panic!("on_challenge answered {other:?}"),
            Err(e) => {
                assert_eq!(Err(e), expected, "on_challenge refused {ch:?}");
                self.honest(&Message::Error(e.reason()));
            }
        }
    }

    fn on_auth(&mut self, m: &Message<'_>) {
        let r = self.resp.on_auth(m, &self.kr);
        let Message::Auth(tag) = *m else {
            check_refusal(m, r.expect_err("on_auth accepted a non-auth"));
            // The responder still waits for its Auth.
            return;
        };
        // An Auth, good or bad, ends the responder's handshake.
        let state = self.resp_state.take();
        let expected = match state {
            None => Err(HandshakeError::Unexpected(MsgType::Auth)),
            Some((h, ch)) => match spec_mac(&self.kr, INIT, &h, &ch) {
                None => Err(HandshakeError::NoKey),
                Some(want) if want != tag => Err(HandshakeError::BadMac),
                Some(_) => Ok(Established {
                    peer: h.node,
                    version: ch.version,
                    caps: ch.caps & h.caps,
                }),
            },
        };
        assert_eq!(r, expected, "on_auth of {tag:02x?}");
        if r.is_ok() {
            let (h, ch) = state.unwrap();
            assert!(
                self.same_key(),
                "responder verified an initiator without the key"
            );
            assert!(
                self.auths.contains(&(h, ch, tag)),
                "responder accepted an Auth no initiator made for its challenge"
            );
            self.established.1 += 1;
            self.honest(&Message::Welcome);
        } else if let Err(e) = r {
            self.honest(&Message::Error(e.reason()));
        }
    }

    fn on_welcome(&mut self, m: &Message<'_>) {
        let r = self.init.on_welcome(m);
        match (m, r) {
            (Message::Welcome, Ok(e)) => {
                assert_eq!(
                    Some(e),
                    self.init_done,
                    "welcome without a verified challenge"
                );
                assert!(self.same_key());
                assert_eq!(e.peer, self.peer_i);
                assert!((MIN_VERSION..=MAX_VERSION).contains(&e.version));
                assert_eq!(e.caps & !self.caps_i, 0);
                self.established.0 += 1;
            }
            (Message::Welcome, Err(e)) => {
                assert_eq!(self.init_done, None);
                assert_eq!(e, HandshakeError::Unexpected(MsgType::Welcome));
            }
            (m, Err(e)) => check_refusal(m, e),
            (m, Ok(e)) => panic!("on_welcome accepted {m:?} as {e:?}"),
        }
    }
}

/// Most operations per input (each is at least a byte, so inputs stay bounded anyway).
const MAX_STEPS: usize = 256;

fn run(data: &[u8]) -> World {
    let inp = &mut Input::new(data);
    let mut w = World::new(inp);
    for _ in 0..MAX_STEPS {
        if inp.is_empty() {
            break;
        }
        w.step(inp);
    }
    w
}

pub fn check(data: &[u8]) {
    let w = run(data);
    // Every error has a reason to send and a message to log.
    for e in [
        HandshakeError::BadMac,
        HandshakeError::NoKey,
        HandshakeError::UnknownNode(w.local_i),
    ] {
        assert!(!e.to_string().is_empty());
        let _ = e.reason();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many handshakes a seed script completes: (initiator, responder).
    fn outcome(name: &str) -> (u32, u32) {
        let (_, _, data) = crate::seeds::all()
            .into_iter()
            .find(|s| s.0 == "handshake" && s.1 == name)
            .unwrap();
        let w = run(&data);
        w.established
    }

    #[test]
    fn seeds_reach_the_outcomes_they_are_named_for() {
        assert_eq!(outcome("honest"), (1, 1));
        // the old messages fail against the new sessions, a fresh handshake succeeds
        assert_eq!(outcome("replay"), (2, 2));
        for refused in [
            "wrong-key",
            "no-key-initiator",
            "no-key-responder",
            "not-a-member",
            "wrong-peer",
            "same-node",
        ] {
            assert_eq!(outcome(refused), (0, 0), "{refused}");
        }
    }
}
