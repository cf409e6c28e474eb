//! Wire protocol v1: framing, message types and their validation.
//!
//! A frame is a fixed 16-byte little-endian [`Header`] followed by `len` payload bytes. Nothing
//! that arrives from the network is trusted: [`Header::decode`] and [`Message::decode`] check
//! every field (magic, version, type, flags, reserved bits, exact or maximum length) before any
//! other code sees it, and return a [`ProtoError`] instead of panicking on any input.
//!
//! Layout: `frame` holds the header and stream reassembly; each message family (`link`,
//! `stretch`, `pages`, `jump`) holds its messages' types, limits, and each message's decoder
//! next to its encoder, written with the `cursor` reader and writer. This file keeps what all
//! share, and [`Message::decode`] and [`Message::encode_parts`] only dispatch by type.
//! docs/PROTOCOL.md is the human-readable form; a test checks its message table against this
//! code.

use core::fmt;

mod cursor;
mod frame;
mod jump;
mod link;
mod pages;
mod stretch;

#[cfg(test)]
mod doc_sync;
#[cfg(test)]
mod tests;

use cursor::{Reader, Writer};

// The kernel crate includes this module privately and uses only some of these names; an unused
// re-export must not warn there.
#[allow(unused_imports)]
pub use frame::{FrameReader, Header, TAG_LEN};
#[allow(unused_imports)]
pub use jump::{
    files_in, put_file_entry, put_files_header, put_jump_range, ranges_in, CpuUsed, FileMap, Jump,
    JumpReason, JUMP_FILE_FIXED, JUMP_FIXED, JUMP_RANGE_LEN, MAX_FILE_PATH, MAX_JUMP_CPU_NS,
    MAX_JUMP_FILES, MAX_JUMP_RANGES, MAX_JUMP_STATE, RANGE_ANON,
};
#[allow(unused_imports)]
pub use link::{Challenge, Hello, Reason, CHALLENGE_LEN, HELLO_LEN};
#[allow(unused_imports)]
pub use pages::{
    ColdAddrs, Pages, Push, PushRefs, COLD_ADDRS_FIXED, PAGES_BUILD, PAGES_FIXED, PUSH_FIXED,
    REF_LEN,
};
#[allow(unused_imports)]
pub use stretch::{Stretch, MAX_STRETCH_STRINGS, STRETCH_FIXED};

/// First two bytes of every frame.
pub const MAGIC: u16 = 0xE05E;
/// Framing and message-set version carried in every header.
pub const VERSION: u8 = 8;
/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 16;
/// Size of the random nonces exchanged in the handshake.
pub const NONCE_LEN: usize = 32;
/// Size of an HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Largest payload any frame may carry; the receive buffer of a connection has this size.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Page size of every node (x86_64).
pub const PAGE_SIZE: usize = 4096;
/// Most pages in one `Push` or `Pages` message.
pub const MAX_BATCH: usize = 32;
/// Highest user address + 1 on x86_64 with 4-level page tables; no page message may name an
/// address at or above it.
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
const _: () = assert!(MsgType::all_fit());

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
    /// Home asks a node to create a shell of a process.
    Stretch = 0x20,
    /// Answer to `Stretch`.
    StretchOk = 0x21,
    /// Home hands pages (and their ownership) to the shell's node.
    Push = 0x22,
    /// Answer to `Push`: the pages are installed in the shell.
    PushAck = 0x23,
    /// Home asks for pages (and their ownership) back.
    Pull = 0x24,
    /// Answer to `Pull`.
    Pages = 0x25,
    /// The process ended at home: drop its shell.
    Release = 0x26,
    /// Execution moves to the receiver.
    Jump = 0x28,
    /// Answer to a jump: the receiver runs the process now (or refused).
    JumpAck = 0x29,
    /// Home asks the node running its process to send execution back.
    Recall = 0x2A,
    /// A process away from home asks its home for one page.
    Fetch = 0x2B,
    /// The shell running a process died (a fault there, or it was killed).
    Gone = 0x2C,
    /// Home changed its layout (munmap and the like): a member drops what it holds there.
    Discard = 0x2D,
    /// The sender installed pages it was given: the giver drops the copies it kept.
    Took = 0x2E,
    /// Home hands back pages the member kept clean copies of: no page data on the wire.
    PushRefs = 0x2F,
    /// Home asks the member running its process which pages it used least lately.
    Cold = 0x30,
    /// Answer to `Cold`: those pages' addresses.
    ColdAddrs = 0x31,
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
            0x20 => Self::Stretch,
            0x21 => Self::StretchOk,
            0x22 => Self::Push,
            0x23 => Self::PushAck,
            0x24 => Self::Pull,
            0x25 => Self::Pages,
            0x26 => Self::Release,
            0x28 => Self::Jump,
            0x29 => Self::JumpAck,
            0x2A => Self::Recall,
            0x2B => Self::Fetch,
            0x2C => Self::Gone,
            0x2D => Self::Discard,
            0x2E => Self::Took,
            0x2F => Self::PushRefs,
            0x30 => Self::Cold,
            0x31 => Self::ColdAddrs,
            _ => return Err(ProtoError::UnknownType(v)),
        })
    }

    /// Smallest and largest payload of this type. Fixed-size types have equal bounds;
    /// `Message::decode` checks the exact size of the variable ones.
    pub const fn len_bounds(self) -> (usize, usize) {
        const fn fixed(n: usize) -> (usize, usize) {
            (n, n)
        }
        match self {
            Self::Hello => fixed(HELLO_LEN),
            Self::Challenge => fixed(CHALLENGE_LEN),
            Self::Auth => fixed(link::AUTH_LEN),
            Self::Welcome => fixed(0),
            Self::Error | Self::Bye => fixed(link::REASON_LEN),
            Self::Ping | Self::Pong => fixed(link::CLOCK_LEN),
            Self::Stretch => (STRETCH_FIXED, STRETCH_FIXED + MAX_STRETCH_STRINGS),
            Self::StretchOk => fixed(stretch::STRETCH_OK_LEN),
            Self::Release => fixed(stretch::RELEASE_LEN),
            Self::Push => (
                PUSH_FIXED + pages::ADDR_LEN + PAGE_SIZE,
                PUSH_FIXED + MAX_BATCH * (pages::ADDR_LEN + PAGE_SIZE),
            ),
            Self::PushRefs => (
                PUSH_FIXED + pages::REF_LEN,
                PUSH_FIXED + MAX_BATCH * pages::REF_LEN,
            ),
            Self::PushAck => fixed(pages::PUSH_ACK_LEN),
            Self::Pull => fixed(pages::PULL_LEN),
            Self::Pages => (PAGES_FIXED, PAGES_FIXED + MAX_BATCH * PAGE_SIZE),
            Self::Fetch => fixed(pages::FETCH_LEN),
            Self::Discard => fixed(pages::DISCARD_LEN),
            Self::Took => fixed(pages::TOOK_LEN),
            Self::Cold => fixed(pages::COLD_LEN),
            Self::ColdAddrs => (
                COLD_ADDRS_FIXED,
                COLD_ADDRS_FIXED + MAX_BATCH * pages::ADDR_LEN,
            ),
            Self::Jump => (
                JUMP_FIXED,
                JUMP_FIXED
                    + MAX_JUMP_STATE
                    + MAX_JUMP_RANGES * JUMP_RANGE_LEN
                    + jump::FILES_HEADER_LEN
                    + MAX_JUMP_FILES * (JUMP_FILE_FIXED + MAX_FILE_PATH)
                    + PAGE_SIZE,
            ),
            Self::JumpAck => fixed(jump::JUMP_ACK_LEN),
            Self::Recall => fixed(jump::RECALL_LEN),
            Self::Gone => fixed(jump::GONE_LEN),
        }
    }

    /// Every type's largest payload fits in a frame (checked at compile time above).
    const fn all_fit() -> bool {
        let (_, jump) = Self::Jump.len_bounds();
        let (_, push) = Self::Push.len_bounds();
        jump <= MAX_PAYLOAD && push <= MAX_PAYLOAD
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
            Self::Stretch => "stretch",
            Self::StretchOk => "stretch-ok",
            Self::Push => "push",
            Self::PushAck => "push-ack",
            Self::Pull => "pull",
            Self::Pages => "pages",
            Self::Release => "release",
            Self::Jump => "jump",
            Self::JumpAck => "jump-ack",
            Self::Recall => "recall",
            Self::Fetch => "fetch",
            Self::Gone => "gone",
            Self::Discard => "discard",
            Self::Took => "took",
            Self::PushRefs => "push-refs",
            Self::Cold => "cold",
            Self::ColdAddrs => "cold-addrs",
        }
    }
}

/// Capability bits announced in the handshake.
pub mod caps {
    /// Ping/pong liveness.
    pub const HEARTBEAT: u32 = 1 << 0;
    /// This side lets frames carry their payload in clear (authenticated, not encrypted). A
    /// link does so only if both sides offer it (capabilities are intersected); off by
    /// default (`/sys/kernel/elastic/confidentiality`).
    pub const CLEAR: u32 = 1 << 1;
    /// Everything this build supports, confidentiality kept.
    pub const ALL: u32 = HEARTBEAT;
}

/// A decoded, validated message. Page and string payloads borrow the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
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
    /// See [`Stretch`].
    Stretch(Stretch<'a>),
    /// Answer to a stretch: 0 and the shell's local pid, or a negative errno.
    StretchOk {
        /// Request id.
        req: u32,
        /// 0 or a negative errno.
        status: i32,
        /// The shell's pid on its node.
        shell_pid: u32,
    },
    /// See [`Push`].
    Push(Push<'a>),
    /// See [`PushRefs`].
    PushRefs(PushRefs<'a>),
    /// Answer to a push.
    PushAck {
        /// Request id.
        req: u32,
        /// 0 (all installed) or a negative errno (none kept).
        status: i32,
    },
    /// Ask for `count` consecutive pages from `addr` of process `pid`.
    Pull {
        /// Request id.
        req: u32,
        /// The process at home.
        pid: u32,
        /// First page.
        addr: u64,
        /// Number of pages (1..=MAX_BATCH).
        count: u32,
    },
    /// See [`Pages`].
    Pages(Pages<'a>),
    /// The process `pid` ended at home.
    Release {
        /// The process at home.
        pid: u32,
    },
    /// See [`Jump`].
    Jump(Jump<'a>),
    /// Answer to a jump.
    JumpAck {
        /// Request id.
        req: u32,
        /// 0 (running there now) or a negative errno (refused: the sender keeps running).
        status: i32,
    },
    /// Send process `pid` home (its home node sends this).
    Recall {
        /// The process at home.
        pid: u32,
    },
    /// The shell of process `pid` died while it ran the process.
    Gone {
        /// The process at home.
        pid: u32,
        /// The signal the shell died of (0 if it was not a signal).
        signal: u32,
    },
    /// Home's mappings of `[start, end)` changed (unmapped, replaced, emptied): the member
    /// drops the pages it holds there (`unmap`: the mapping too).
    Discard {
        /// The process at home.
        pid: u32,
        /// First byte (page aligned).
        start: u64,
        /// End (page aligned, above `start`).
        end: u64,
        /// Unmap the range, not only its pages.
        unmap: bool,
    },
    /// The sender installed the `count` pages from `addr` of process `pid` that came from the
    /// receiver (a `Pages` answer or a jump's stack page): the receiver drops the copies it
    /// kept of them until now.
    Took {
        /// The process at home.
        pid: u32,
        /// Sent by the home (pages a shell gave it), else by a shell (pages from its home).
        from_home: bool,
        /// First page.
        addr: u64,
        /// Number of pages (1..=MAX_BATCH).
        count: u32,
        /// From the home only: 0, or the member keeps its copies of these pages as clean
        /// copies under this tag (a later `PushRefs` names them by it) instead of dropping
        /// them.
        keep: u32,
    },
    /// A process running away from home asks for its page at `addr`; the answer is `Pages`
    /// with that page and up to `count - 1` following ones, or status [`PAGES_BUILD`] and
    /// none.
    Fetch {
        /// Request id.
        req: u32,
        /// The process at home.
        pid: u32,
        /// The page.
        addr: u64,
        /// Pages wanted from `addr` (1..=MAX_BATCH): the first, and as many of the following
        /// ones as the home holds with data (prefetch).
        count: u32,
    },
    /// The home asks the member running process `pid` for up to `count` pages of it that
    /// were not used lately (`ColdAddrs`), to pull back: the process's budget holds there.
    Cold {
        /// Request id.
        req: u32,
        /// The process at home.
        pid: u32,
        /// Most addresses wanted (1..=MAX_BATCH).
        count: u32,
    },
    /// See [`ColdAddrs`].
    ColdAddrs(ColdAddrs<'a>),
}

/// A reply status: 0 or a negative errno; anything positive is invalid.
fn check_status(status: i32) -> Result<i32, ProtoError> {
    if status > 0 {
        return Err(ProtoError::BadField("status"));
    }
    Ok(status)
}

fn page_aligned(a: u64) -> bool {
    a & (PAGE_SIZE as u64 - 1) == 0
}

/// Checks a run of `count` pages from `addr` lies in user space.
fn check_run(addr: u64, count: u64) -> Result<(), ProtoError> {
    let end = addr.checked_add(count * PAGE_SIZE as u64);
    if !page_aligned(addr) || end.is_none_or(|e| e > USER_END) {
        return Err(ProtoError::BadField("address"));
    }
    Ok(())
}

/// The error of a variable payload whose parts do not add up to its length.
fn bad_len(h: &Header) -> ProtoError {
    ProtoError::BadLength {
        ty: h.ty as u8,
        len: h.len,
    }
}

/// Most bytes of fixed fields a message has before its borrowed tails.
pub const HEAD_MAX: usize = HEADER_LEN + CHALLENGE_LEN;

/// The variable parts of a message, in wire order, as [`Encoded::tails`] carries them.
type Tails<'a> = [&'a [u8]; 4];

/// An encoded message as a head (header + fixed fields) and up to four borrowed tails, to be
/// sent back to back without copying pages.
pub struct Encoded<'a> {
    /// Header and fixed fields.
    pub head: [u8; HEAD_MAX],
    /// Bytes of `head` in use.
    pub head_len: usize,
    /// Variable parts, in order (empty slices for unused ones).
    pub tails: [&'a [u8]; 4],
}

impl Encoded<'_> {
    /// Total frame length.
    pub fn frame_len(&self) -> usize {
        self.head_len + self.tails.iter().map(|t| t.len()).sum::<usize>()
    }
}

impl<'a> Message<'a> {
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
            Self::Stretch(_) => MsgType::Stretch,
            Self::StretchOk { .. } => MsgType::StretchOk,
            Self::Push(_) => MsgType::Push,
            Self::PushRefs(_) => MsgType::PushRefs,
            Self::PushAck { .. } => MsgType::PushAck,
            Self::Pull { .. } => MsgType::Pull,
            Self::Pages(_) => MsgType::Pages,
            Self::Release { .. } => MsgType::Release,
            Self::Jump(_) => MsgType::Jump,
            Self::JumpAck { .. } => MsgType::JumpAck,
            Self::Recall { .. } => MsgType::Recall,
            Self::Fetch { .. } => MsgType::Fetch,
            Self::Discard { .. } => MsgType::Discard,
            Self::Took { .. } => MsgType::Took,
            Self::Gone { .. } => MsgType::Gone,
            Self::Cold { .. } => MsgType::Cold,
            Self::ColdAddrs(_) => MsgType::ColdAddrs,
        }
    }

    /// Decodes the payload of a frame whose header was validated by [`Header::decode`].
    pub fn decode(h: &Header, p: &'a [u8]) -> Result<Self, ProtoError> {
        let (min, max) = h.ty.len_bounds();
        if p.len() != h.len as usize || p.len() < min || p.len() > max {
            return Err(ProtoError::BadLength {
                ty: h.ty as u8,
                len: p.len() as u32,
            });
        }
        let r = &mut Reader::new(p);
        match h.ty {
            MsgType::Hello => link::decode_hello(r),
            MsgType::Challenge => link::decode_challenge(r),
            MsgType::Auth => link::decode_auth(r),
            MsgType::Welcome => Ok(Self::Welcome),
            MsgType::Error => link::decode_error(r),
            MsgType::Ping => link::decode_ping(r),
            MsgType::Pong => link::decode_pong(r),
            MsgType::Bye => link::decode_bye(r),
            MsgType::Stretch => stretch::decode_stretch(h, r),
            MsgType::StretchOk => stretch::decode_stretch_ok(r),
            MsgType::Release => stretch::decode_release(r),
            MsgType::Push => pages::decode_push(h, r),
            MsgType::PushRefs => pages::decode_push_refs(h, r),
            MsgType::PushAck => pages::decode_push_ack(r),
            MsgType::Pull => pages::decode_pull(r),
            MsgType::Pages => pages::decode_pages(h, r),
            MsgType::Fetch => pages::decode_fetch(r),
            MsgType::Discard => pages::decode_discard(r),
            MsgType::Took => pages::decode_took(r),
            MsgType::Jump => jump::decode_jump(h, r),
            MsgType::JumpAck => jump::decode_jump_ack(r),
            MsgType::Recall => jump::decode_recall(r),
            MsgType::Gone => jump::decode_gone(r),
            MsgType::Cold => pages::decode_cold(r),
            MsgType::ColdAddrs => pages::decode_cold_addrs(h, r),
        }
    }

    /// Encodes the message as a head plus borrowed tails (no page is copied).
    pub fn encode_parts(&self, seq: u32) -> Result<Encoded<'a>, ProtoError> {
        let mut head = [0; HEAD_MAX];
        let (hdr, body) = head.split_at_mut(HEADER_LEN);
        let w = &mut Writer::new(body);
        let mut tails: Tails<'a> = [&[]; 4];
        match *self {
            Self::Hello(ref m) => link::encode_hello(w, m)?,
            Self::Challenge(ref m) => link::encode_challenge(w, m)?,
            Self::Auth(ref mac) => link::encode_auth(w, mac)?,
            Self::Welcome => {}
            Self::Error(reason) | Self::Bye(reason) => link::encode_reason(w, reason)?,
            Self::Ping(clock) | Self::Pong(clock) => link::encode_clock(w, clock)?,
            Self::Stretch(ref m) => tails = stretch::encode_stretch(w, m)?,
            Self::StretchOk {
                req,
                status,
                shell_pid,
            } => stretch::encode_stretch_ok(w, req, status, shell_pid)?,
            Self::Release { pid } => stretch::encode_release(w, pid)?,
            Self::Push(ref m) => tails = pages::encode_push(w, m)?,
            Self::PushRefs(ref m) => tails = pages::encode_push_refs(w, m)?,
            Self::PushAck { req, status } => pages::encode_push_ack(w, req, status)?,
            Self::Pull {
                req,
                pid,
                addr,
                count,
            } => pages::encode_pull(w, req, pid, addr, count)?,
            Self::Pages(ref m) => tails = pages::encode_pages(w, m)?,
            Self::Fetch {
                req,
                pid,
                addr,
                count,
            } => pages::encode_fetch(w, req, pid, addr, count)?,
            Self::Discard {
                pid,
                start,
                end,
                unmap,
            } => pages::encode_discard(w, pid, start, end, unmap)?,
            Self::Took {
                pid,
                from_home,
                addr,
                count,
                keep,
            } => pages::encode_took(w, pid, from_home, addr, count, keep)?,
            Self::Jump(ref m) => tails = jump::encode_jump(w, m)?,
            Self::JumpAck { req, status } => jump::encode_jump_ack(w, req, status)?,
            Self::Recall { pid } => jump::encode_recall(w, pid)?,
            Self::Gone { pid, signal } => jump::encode_gone(w, pid, signal)?,
            Self::Cold { req, pid, count } => pages::encode_cold(w, req, pid, count)?,
            Self::ColdAddrs(ref m) => tails = pages::encode_cold_addrs(w, m)?,
        }
        let fixed = w.written();
        let len = fixed + tails.iter().map(|t| t.len()).sum::<usize>();
        let hdr_bytes = Header {
            ty: self.ty(),
            len: len as u32,
            seq,
        }
        .encode();
        hdr.copy_from_slice(&hdr_bytes);
        Ok(Encoded {
            head,
            head_len: HEADER_LEN + fixed,
            tails,
        })
    }

    /// Encodes header and payload into `out`, returning the frame length.
    pub fn encode(&self, seq: u32, out: &mut [u8]) -> Result<usize, ProtoError> {
        let e = self.encode_parts(seq)?;
        if out.len() < e.frame_len() {
            return Err(ProtoError::BufferTooSmall);
        }
        let w = &mut Writer::new(out);
        w.bytes(&e.head[..e.head_len])?;
        for t in e.tails {
            w.bytes(t)?;
        }
        Ok(w.written())
    }
}

/// The error numbers a peer's negative status may carry (as `-errno`): those the protocol's
/// answers use. Anything else, such as a value below -4095 (which the kernel's `Error`
/// refuses, with a log line per frame) or a kernel-internal restart code (-512..-516, which
/// must never reach user space), is read as `-EPROTO`.
const PEER_ERRNOS: [i32; 27] = [
    1,   // EPERM
    2,   // ENOENT
    3,   // ESRCH
    4,   // EINTR
    5,   // EIO
    6,   // ENXIO
    7,   // E2BIG
    9,   // EBADF
    11,  // EAGAIN
    12,  // ENOMEM
    13,  // EACCES
    14,  // EFAULT
    16,  // EBUSY
    17,  // EEXIST
    19,  // ENODEV
    22,  // EINVAL
    24,  // EMFILE
    28,  // ENOSPC
    34,  // ERANGE
    38,  // ENOSYS
    71,  // EPROTO
    75,  // EOVERFLOW
    95,  // EOPNOTSUPP
    104, // ECONNRESET
    107, // ENOTCONN
    110, // ETIMEDOUT
    125, // ECANCELED
];

/// A peer's status as this node may use it: 0 and positive values (success, or a message's
/// own code such as [`PAGES_BUILD`]) as they are, a listed `-errno` as it is, any other
/// negative value `-EPROTO`.
pub fn peer_status(status: i32) -> i32 {
    if status >= 0 || PEER_ERRNOS.contains(&status.wrapping_neg()) {
        status
    } else {
        -71
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
