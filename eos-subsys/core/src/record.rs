//! The record layer. Once the handshake is done, every frame is sealed with an AEAD under a
//! key of its direction, derived from the handshake (the kernel: link.rs seals, transport.rs
//! opens, sys/crypto.rs is the cipher). The nonce is an implicit sequence number that both ends count. A frame
//! that was replayed, reordered, dropped from the middle, altered, reflected back to its
//! sender or injected then fails to open, and the link closes: nothing that fails is ever
//! handed on.
//!
//! - The AEAD is the caller's [`Aead`]: in the kernel the AEAD API (`gcm(aes)`), in host tests
//!   a software one.
//! - The key derivation is the caller's [`Mac`]: HMAC-SHA256 under the link's secret.
//! - Each direction's key is the MAC of a label naming that direction, followed by the whole
//!   handshake. The whole handshake means both nonces, both node ids, the versions and
//!   capabilities, and the responder's MAC.
//! - The two directions never share a key, and no two connections share one: every handshake
//!   has fresh nonces.

use crate::handshake::Mac;
use crate::proto::{Challenge, Hello, Message, HEADER_LEN, MAC_LEN};

/// AEAD key size (AES-256-GCM, ChaCha20-Poly1305).
pub const KEY_LEN: usize = 32;
/// AEAD nonce size.
pub const NONCE_LEN: usize = 12;
/// Authentication tag size, appended to every sealed frame.
pub use crate::proto::TAG_LEN;

const LABEL_I2R: &[u8; 12] = b"EOS3-KEY-I2R";
const LABEL_R2I: &[u8; 12] = b"EOS3-KEY-R2I";

/// An AEAD cipher under one key. The associated data comes in two parts, authenticated as
/// one (their concatenation): the frame header, and the payload when it goes in clear.
pub trait Aead {
    /// Encrypts `data` in place and writes its tag; `aad` is authenticated, not encrypted.
    /// False: the cipher failed (allocation, ...); nothing may be sent.
    fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: [&[u8]; 2],
        data: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> bool;
    /// Checks `tag` and decrypts `data` in place. False: forged, altered or under another
    /// key or nonce; `data` must then be thrown away.
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: [&[u8]; 2],
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool;
}

/// The keys of one connection, by direction.
#[derive(Clone)]
pub struct Keys {
    /// Initiator to responder.
    pub i2r: [u8; KEY_LEN],
    /// Responder to initiator.
    pub r2i: [u8; KEY_LEN],
}

impl Drop for Keys {
    fn drop(&mut self) {
        crate::peer::wipe(&mut self.i2r);
        crate::peer::wipe(&mut self.r2i);
    }
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Keys { .. }")
    }
}

impl Keys {
    /// (sending, receiving) keys of the side that initiated (`initiator`) or responded.
    pub fn for_side(&self, initiator: bool) -> (&[u8; KEY_LEN], &[u8; KEY_LEN]) {
        if initiator {
            (&self.i2r, &self.r2i)
        } else {
            (&self.r2i, &self.i2r)
        }
    }
}

/// Size of the handshake transcript the keys are derived from: a label, the Hello payload
/// and the whole Challenge payload (its MAC included).
const TRANSCRIPT_LEN: usize = 12 + crate::proto::HELLO_LEN + crate::proto::CHALLENGE_LEN;

/// Derives the connection's keys from its handshake; `None` when the MAC is unavailable.
pub fn derive_keys(mac: &impl Mac, hello: &Hello, challenge: &Challenge) -> Option<Keys> {
    let mut t = [0u8; TRANSCRIPT_LEN];
    let mut buf = [0u8; HEADER_LEN + crate::proto::CHALLENGE_LEN];
    let h = 12;
    let c = h + crate::proto::HELLO_LEN;
    // Encoding into a buffer of the right size cannot fail.
    let _ = Message::Hello(*hello).encode(0, &mut buf);
    t[h..c].copy_from_slice(&buf[HEADER_LEN..HEADER_LEN + crate::proto::HELLO_LEN]);
    let _ = Message::Challenge(*challenge).encode(0, &mut buf);
    t[c..].copy_from_slice(&buf[HEADER_LEN..HEADER_LEN + crate::proto::CHALLENGE_LEN]);
    let mut one = |label: &[u8; 12]| -> Option<[u8; KEY_LEN]> {
        t[..12].copy_from_slice(label);
        let k: [u8; MAC_LEN] = mac.mac(&t)?;
        Some(k)
    };
    Some(Keys {
        i2r: one(LABEL_I2R)?,
        r2i: one(LABEL_R2I)?,
    })
}

/// Why a frame was not sealed or opened. Any of them ends the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// It does not open: replayed, reordered, altered, injected or after a lost frame.
    Forged,
    /// The cipher failed.
    Cipher,
    /// 2^64 - 1 frames went one way: the connection must be made anew.
    Exhausted,
    /// An earlier frame failed: nothing more is opened on this connection.
    Closed,
}

/// The nonce of frame number `seq`: 4 zero bytes, then `seq` big-endian.
fn nonce(seq: u64) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

/// The sending half: seals frames in order.
pub struct Sealer<A: Aead> {
    aead: A,
    seq: u64,
    clear: bool,
}

impl<A: Aead> Sealer<A> {
    /// The sending half under `aead` (keyed with this side's sending key).
    pub fn new(aead: A) -> Self {
        Self {
            aead,
            seq: 0,
            clear: false,
        }
    }

    /// The same, leaving payloads in clear (authenticated only): a link on which both sides
    /// offered [`crate::proto::caps::CLEAR`].
    pub fn new_clear(aead: A) -> Self {
        Self {
            clear: true,
            ..Self::new(aead)
        }
    }

    /// Seals the next frame: `header` (the frame header, authenticated in clear) and
    /// `payload` (encrypted in place); writes the tag to send after it.
    pub fn seal(
        &mut self,
        header: &[u8],
        payload: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), RecordError> {
        if self.seq == u64::MAX {
            return Err(RecordError::Exhausted);
        }
        let ok = if self.clear {
            self.aead
                .seal(&nonce(self.seq), [header, payload], &mut [], tag)
        } else {
            self.aead
                .seal(&nonce(self.seq), [header, &[]], payload, tag)
        };
        if !ok {
            return Err(RecordError::Cipher);
        }
        self.seq += 1;
        Ok(())
    }
}

/// The receiving half: opens frames in order, and nothing after the first that fails.
pub struct Opener<A: Aead> {
    aead: A,
    seq: u64,
    closed: bool,
    clear: bool,
}

impl<A: Aead> Opener<A> {
    /// The receiving half under `aead` (keyed with this side's receiving key).
    pub fn new(aead: A) -> Self {
        Self {
            aead,
            seq: 0,
            closed: false,
            clear: false,
        }
    }

    /// The same, for payloads in clear (see [`Sealer::new_clear`]).
    pub fn new_clear(aead: A) -> Self {
        Self {
            clear: true,
            ..Self::new(aead)
        }
    }

    /// Opens, in place, the frame a sealed [`crate::proto::FrameReader`] just completed:
    /// `header` as received, its payload and tag in `body[..len + TAG_LEN]`.
    pub fn open_frame(
        &mut self,
        header: &[u8; HEADER_LEN],
        body: &mut [u8],
        len: usize,
    ) -> Result<(), RecordError> {
        let mut tag = [0u8; TAG_LEN];
        match body.get(len..len + TAG_LEN) {
            Some(t) => tag.copy_from_slice(t),
            None => {
                self.closed = true;
                return Err(RecordError::Forged);
            }
        }
        self.open(header, &mut body[..len], &tag)
    }

    /// Opens the next frame in place. On any error the payload must not be used, and the
    /// connection is closed (every later call fails too).
    pub fn open(
        &mut self,
        header: &[u8],
        payload: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), RecordError> {
        if self.closed {
            return Err(RecordError::Closed);
        }
        if self.seq == u64::MAX {
            self.closed = true;
            return Err(RecordError::Exhausted);
        }
        let ok = if self.clear {
            self.aead
                .open(&nonce(self.seq), [header, payload], &mut [], tag)
        } else {
            self.aead
                .open(&nonce(self.seq), [header, &[]], payload, tag)
        };
        if !ok {
            self.closed = true;
            return Err(RecordError::Forged);
        }
        self.seq += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac as _};
    use sha2::Sha256;
    use std::format;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    type H = Hmac<Sha256>;

    /// A software AEAD for the tests: an HMAC-SHA256 keystream and an HMAC-SHA256 tag
    /// (encrypt-then-MAC). Not for use outside tests; the kernel uses its AEAD API.
    struct TestAead([u8; KEY_LEN]);

    impl TestAead {
        fn stream(&self, nonce: &[u8; NONCE_LEN], data: &mut [u8]) {
            for (i, chunk) in data.chunks_mut(32).enumerate() {
                let mut m = H::new_from_slice(&self.0).unwrap();
                m.update(b"stream");
                m.update(nonce);
                m.update(&(i as u64).to_le_bytes());
                let ks = m.finalize().into_bytes();
                for (b, k) in chunk.iter_mut().zip(ks.iter()) {
                    *b ^= k;
                }
            }
        }

        fn tag(&self, nonce: &[u8; NONCE_LEN], aad: [&[u8]; 2], data: &[u8]) -> [u8; TAG_LEN] {
            let mut m = H::new_from_slice(&self.0).unwrap();
            m.update(b"tag");
            m.update(nonce);
            m.update(&((aad[0].len() + aad[1].len()) as u64).to_le_bytes());
            m.update(aad[0]);
            m.update(aad[1]);
            m.update(data);
            m.finalize().into_bytes()[..TAG_LEN].try_into().unwrap()
        }
    }

    impl Aead for TestAead {
        fn seal(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: [&[u8]; 2],
            data: &mut [u8],
            tag: &mut [u8; TAG_LEN],
        ) -> bool {
            self.stream(nonce, data);
            *tag = self.tag(nonce, aad, data);
            true
        }

        fn open(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: [&[u8]; 2],
            data: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> bool {
            if self.tag(nonce, aad, data) != *tag {
                return false;
            }
            self.stream(nonce, data);
            true
        }
    }

    struct Secret(&'static [u8]);

    impl Mac for Secret {
        fn mac(&self, msg: &[u8]) -> Option<[u8; MAC_LEN]> {
            let mut m = H::new_from_slice(self.0).ok()?;
            m.update(msg);
            Some(m.finalize().into_bytes().into())
        }
    }

    fn handshake(n_i: u8, n_r: u8) -> (Hello, Challenge) {
        let hello = Hello {
            min_version: 4,
            max_version: 4,
            node: 1,
            caps: 1,
            nonce: [n_i; 32],
        };
        let ch = Challenge {
            version: 4,
            node: 2,
            caps: 1,
            nonce: [n_r; 32],
            mac: [9; 32],
        };
        (hello, ch)
    }

    /// A sealed frame as it goes on the wire: header, payload, tag.
    type Wire = (Vec<u8>, Vec<u8>, [u8; TAG_LEN]);

    fn pair(
        n_i: u8,
        n_r: u8,
    ) -> (
        Sealer<TestAead>,
        Opener<TestAead>,
        Sealer<TestAead>,
        Opener<TestAead>,
    ) {
        let (h, c) = handshake(n_i, n_r);
        let k = derive_keys(&Secret(b"cluster"), &h, &c).unwrap();
        let ((it, ir), (rt, rr)) = (k.for_side(true), k.for_side(false));
        (
            Sealer::new(TestAead(*it)),
            Opener::new(TestAead(*ir)),
            Sealer::new(TestAead(*rt)),
            Opener::new(TestAead(*rr)),
        )
    }

    fn seal(s: &mut Sealer<TestAead>, header: &[u8], payload: &[u8]) -> Wire {
        let mut p = payload.to_vec();
        let mut tag = [0; TAG_LEN];
        s.seal(header, &mut p, &mut tag).unwrap();
        (header.to_vec(), p, tag)
    }

    fn open(o: &mut Opener<TestAead>, w: &Wire) -> Result<Vec<u8>, RecordError> {
        let mut p = w.1.clone();
        o.open(&w.0, &mut p, &w.2).map(|()| p)
    }

    #[test]
    fn frames_open_in_order_and_hide_their_payload() {
        let (mut i_tx, _, _, mut r_rx) = pair(1, 2);
        let marker = b"SECRET-MARKER-SECRET-MARKER";
        let a = seal(&mut i_tx, b"hdr1", marker);
        let b = seal(&mut i_tx, b"hdr2", marker);
        assert!(!a.1.windows(6).any(|w| w == b"SECRET"), "payload in clear");
        assert_ne!(a.1, b.1, "the same payload twice encrypts differently");
        assert_eq!(open(&mut r_rx, &a).unwrap(), marker);
        assert_eq!(open(&mut r_rx, &b).unwrap(), marker);
    }

    #[test]
    fn replay_reorder_loss_and_alteration_close_the_link() {
        // replay
        let (mut tx, _, _, mut rx) = pair(1, 2);
        let a = seal(&mut tx, b"h", b"one");
        open(&mut rx, &a).unwrap();
        assert_eq!(open(&mut rx, &a), Err(RecordError::Forged));
        assert_eq!(
            open(&mut rx, &seal(&mut tx, b"h", b"two")),
            Err(RecordError::Closed)
        );
        // reorder, or a frame dropped from the middle
        let (mut tx, _, _, mut rx) = pair(1, 2);
        let (a, b) = (seal(&mut tx, b"h", b"one"), seal(&mut tx, b"h", b"two"));
        assert_eq!(open(&mut rx, &b), Err(RecordError::Forged));
        assert_eq!(open(&mut rx, &a), Err(RecordError::Closed));
        // a changed payload byte, header byte or tag byte
        for what in 0..3 {
            let (mut tx, _, _, mut rx) = pair(1, 2);
            let mut w = seal(&mut tx, b"header", b"payload");
            match what {
                0 => w.1[0] ^= 1,
                1 => w.0[0] ^= 1,
                _ => w.2[0] ^= 1,
            }
            assert_eq!(open(&mut rx, &w), Err(RecordError::Forged));
        }
    }

    #[test]
    fn a_frame_sent_back_to_its_sender_or_into_another_connection_does_not_open() {
        let (mut i_tx, mut i_rx, _, _) = pair(1, 2);
        let w = seal(&mut i_tx, b"h", b"reflected");
        assert_eq!(open(&mut i_rx, &w), Err(RecordError::Forged));
        // the same nodes, a new handshake (fresh nonces): other keys
        let (mut tx1, _, _, _) = pair(1, 2);
        let (_, _, _, mut rx2) = pair(3, 2);
        assert_eq!(
            open(&mut rx2, &seal(&mut tx1, b"h", b"x")),
            Err(RecordError::Forged)
        );
    }

    #[test]
    fn keys_depend_on_the_secret_and_on_every_handshake_field() {
        let (h, c) = handshake(1, 2);
        let base = derive_keys(&Secret(b"cluster"), &h, &c).unwrap();
        assert_ne!(base.i2r, base.r2i);
        let other = derive_keys(&Secret(b"another"), &h, &c).unwrap();
        assert_ne!(base.i2r, other.i2r);
        let mut c2 = c;
        c2.mac[31] ^= 1;
        assert_ne!(
            base.i2r,
            derive_keys(&Secret(b"cluster"), &h, &c2).unwrap().i2r
        );
        let mut h2 = h;
        h2.node = 3;
        assert_ne!(
            base.i2r,
            derive_keys(&Secret(b"cluster"), &h2, &c).unwrap().i2r
        );
    }

    /// Whole frames sealed on one side, sent as a byte stream cut in odd pieces, reassembled
    /// by a sealed FrameReader and opened on the other: the messages come out as they went in.
    #[test]
    fn sealed_frames_through_the_stream_reader() {
        use crate::proto::FrameReader;
        let (mut tx, _, _, mut rx) = pair(1, 2);
        let msgs = [
            Message::Ping(7),
            Message::Welcome,
            Message::Release { pid: 42 },
        ];
        let mut stream = Vec::new();
        for m in &msgs {
            let mut b = vec![0u8; 256];
            let n = m.encode(0, &mut b).unwrap();
            let (h, p) = b[..n].split_at_mut(HEADER_LEN);
            let mut tag = [0; TAG_LEN];
            tx.seal(h, p, &mut tag).unwrap();
            stream.extend_from_slice(&b[..n]);
            stream.extend_from_slice(&tag);
        }
        let mut r = FrameReader::new();
        r.seal();
        let mut body = vec![0u8; crate::proto::MAX_PAYLOAD + TAG_LEN];
        let mut got = Vec::new();
        let mut at = 0;
        while at < stream.len() {
            let want = r.want(&mut body);
            let n = want.len().min(3).min(stream.len() - at);
            want[..n].copy_from_slice(&stream[at..at + n]);
            at += n;
            if let Some(h) = r.advance(n).unwrap() {
                let hdr = *r.header_bytes();
                rx.open_frame(&hdr, &mut body, h.len as usize).unwrap();
                let m = Message::decode(&h, &body[..h.len as usize]).unwrap();
                got.push(format!("{m:?}"));
            }
        }
        let want: Vec<String> = msgs.iter().map(|m| format!("{m:?}")).collect();
        assert_eq!(got, want);
    }

    /// Integrity only: the payload crosses in clear, yet a changed byte of it (or of the
    /// header), a replay or a frame sealed for confidentiality does not open.
    #[test]
    fn clear_payloads_are_still_authenticated() {
        let (h, c) = handshake(1, 2);
        let k = derive_keys(&Secret(b"cluster"), &h, &c).unwrap();
        // The initiator's sending key is the responder's receiving key.
        let ((t, _), (_, r)) = (k.for_side(true), k.for_side(false));
        let mut tx = Sealer::new_clear(TestAead(*t));
        let mut rx = Opener::new_clear(TestAead(*r));
        let w = seal(&mut tx, b"hdr", b"visible");
        assert_eq!(w.1, b"visible");
        assert_eq!(open(&mut rx, &w).unwrap(), b"visible");
        assert_eq!(open(&mut rx, &w), Err(RecordError::Forged));
        for what in 0..2 {
            let mut tx = Sealer::new_clear(TestAead(*t));
            let mut rx = Opener::new_clear(TestAead(*r));
            let mut w = seal(&mut tx, b"hdr", b"visible");
            if what == 0 {
                w.1[0] ^= 1;
            } else {
                w.0[0] ^= 1;
            }
            assert_eq!(open(&mut rx, &w), Err(RecordError::Forged));
        }
        let mut enc = Sealer::new(TestAead(*t));
        let mut rx = Opener::new_clear(TestAead(*r));
        assert_eq!(
            open(&mut rx, &seal(&mut enc, b"hdr", b"x")),
            Err(RecordError::Forged)
        );
    }

    #[test]
    fn the_sequence_never_wraps() {
        let mut s = Sealer::new(TestAead([0; KEY_LEN]));
        s.seq = u64::MAX;
        let mut tag = [0; TAG_LEN];
        assert_eq!(
            s.seal(b"h", &mut [0u8; 4], &mut tag),
            Err(RecordError::Exhausted)
        );
    }
}
