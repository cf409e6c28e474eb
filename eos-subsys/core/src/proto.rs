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
/// Page size of every node (x86_64).
pub const PAGE_SIZE: usize = 4096;
/// Most pages in one `Push` or `Pages` message.
pub const MAX_BATCH: usize = 32;
/// Highest user address + 1 on x86_64 with 4-level page tables; no page message may name an
/// address at or above it.
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
/// Most bytes of path, argv and environment in a `Stretch`.
pub const MAX_STRETCH_STRINGS: usize = 16 * 1024;
const _: () = assert!(MsgType::all_fit());

/// Most bytes of CPU state in a `Jump` (registers and the XSAVE image; AMX needs ~11 KiB).
pub const MAX_JUMP_STATE: usize = 16 * 1024;
/// Most memory ranges in a `Jump` (the home's layout, for the shell to match): thousands, as
/// interpreters and JVMs have; a process with more stays home (Linux allows 65,530).
pub const MAX_JUMP_RANGES: usize = 8192;
/// Size of one range in a `Jump`: start, end (u64) and `PROT_*` bits (u32), with
/// [`RANGE_ANON`].
pub const JUMP_RANGE_LEN: usize = 20;
/// Bit of a `Jump` range's prot word: private anonymous memory (the shell maps it); any other
/// mapping is left to the home (touching it there sends execution home).
pub const RANGE_ANON: u32 = 1 << 31;
/// Most file mappings described in a `Jump`.
pub const MAX_JUMP_FILES: usize = 64;
/// Longest path of a file mapping in a `Jump`.
pub const MAX_FILE_PATH: usize = 255;
/// Fixed part of one file entry of a `Jump`: range u16, path_len u16, reserved u32, pgoff,
/// size, mtime (u64 each); the path follows.
pub const JUMP_FILE_FIXED: usize = 32;
/// `Pages.status` of a page the requester builds itself (zeroes or file data), now its own.
pub const PAGES_BUILD: i32 = 1;

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
            _ => return Err(ProtoError::UnknownType(v)),
        })
    }

    /// Smallest and largest payload of this type. Fixed-size types have equal bounds;
    /// `Message::decode` checks the exact size of the variable ones.
    pub const fn len_bounds(self) -> (usize, usize) {
        match self {
            Self::Hello => (HELLO_LEN, HELLO_LEN),
            Self::Challenge => (CHALLENGE_LEN, CHALLENGE_LEN),
            Self::Auth => (MAC_LEN, MAC_LEN),
            Self::Welcome => (0, 0),
            Self::Error | Self::Bye => (4, 4),
            Self::Ping | Self::Pong => (8, 8),
            Self::Stretch => (STRETCH_FIXED, STRETCH_FIXED + MAX_STRETCH_STRINGS),
            Self::StretchOk => (16, 16),
            Self::Push => (
                PUSH_FIXED + 8 + PAGE_SIZE,
                PUSH_FIXED + MAX_BATCH * (8 + PAGE_SIZE),
            ),
            Self::PushAck => (8, 8),
            Self::Pull => (24, 24),
            Self::Pages => (PAGES_FIXED, PAGES_FIXED + MAX_BATCH * PAGE_SIZE),
            Self::Release => (8, 8),
            Self::Jump => (
                JUMP_FIXED,
                JUMP_FIXED
                    + MAX_JUMP_STATE
                    + MAX_JUMP_RANGES * JUMP_RANGE_LEN
                    + 4
                    + MAX_JUMP_FILES * (JUMP_FILE_FIXED + MAX_FILE_PATH)
                    + PAGE_SIZE,
            ),
            Self::JumpAck | Self::Recall | Self::Gone => (8, 8),
            Self::Fetch => (16, 16),
            Self::Discard => (24, 24),
        }
    }

    /// Every type's largest payload fits in a frame (checked at compile time below).
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
        }
    }
}

/// Fixed part of a `Stretch` payload.
pub const STRETCH_FIXED: usize = 56;
/// Fixed part of a `Push` payload.
pub const PUSH_FIXED: usize = 32;
/// Fixed part of a `Pages` payload.
pub const PAGES_FIXED: usize = 24;
/// Fixed part of a `Jump` payload.
pub const JUMP_FIXED: usize = 24;

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
        let (min, max) = ty.len_bounds();
        if (len as usize) < min || len as usize > max || len as usize > MAX_PAYLOAD {
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

/// `Stretch`: create a shell of process `pid` (home's pid) running the same executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch<'a> {
    /// Request id, echoed in `StretchOk`.
    pub req: u32,
    /// The process at home.
    pub pid: u32,
    /// SHA-256 of the executable: the shell's node refuses a different file.
    pub exe_hash: [u8; 32],
    /// Effective user and group id of the process (initial namespace): the shell runs as them.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Absolute path of the executable.
    pub path: &'a [u8],
    /// Arguments, each NUL-terminated (so the shell's initial stack matches).
    pub argv: &'a [u8],
    /// Environment, each entry NUL-terminated.
    pub env: &'a [u8],
}

/// `Push`: pages of one VMA of process `pid`, with their ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Push<'a> {
    /// Request id, echoed in `PushAck`.
    pub req: u32,
    /// The process at home.
    pub pid: u32,
    /// Start of the VMA the pages belong to (the shell makes sure it has one there).
    pub vma_start: u64,
    /// End of that VMA.
    pub vma_end: u64,
    /// `PROT_*` bits of that VMA.
    pub prot: u32,
    /// `count` little-endian page addresses.
    pub addrs: &'a [u8],
    /// `count` pages, in address order of `addrs`.
    pub pages: &'a [u8],
}

impl Push<'_> {
    /// Number of pages.
    pub fn count(&self) -> usize {
        self.addrs.len() / 8
    }

    /// Address of page `i`.
    pub fn addr(&self, i: usize) -> u64 {
        le64(self.addrs, 8 * i)
    }

    /// Contents of page `i`.
    pub fn page(&self, i: usize) -> &[u8] {
        &self.pages[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]
    }
}

/// `Pages`: the answer to a pull: `count` consecutive pages from `addr`, or an error status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pages<'a> {
    /// The pull's request id.
    pub req: u32,
    /// 0, or a negative errno: the pages are not there (the process must die).
    pub status: i32,
    /// First page's address.
    pub addr: u64,
    /// The pages.
    pub pages: &'a [u8],
}

/// Why execution moved, for the jump log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JumpReason {
    /// `elastic_jump()` asked for it.
    Asked = 1,
    /// The policy: remote faults came fast.
    Faults = 2,
    /// A syscall, which runs at home.
    Syscall = 3,
    /// Home recalled it (a signal is pending there).
    Recall = 4,
    /// A fault the shell cannot resolve (a mapping it lacks, a signal): the home retries.
    Fault = 5,
}

impl JumpReason {
    /// Parses a reason byte.
    pub fn from_u8(v: u8) -> Result<Self, ProtoError> {
        Ok(match v {
            1 => Self::Asked,
            2 => Self::Faults,
            3 => Self::Syscall,
            4 => Self::Recall,
            5 => Self::Fault,
            _ => return Err(ProtoError::BadField("jump reason")),
        })
    }

    /// Name for logs and stats.
    pub fn name(self) -> &'static str {
        match self {
            Self::Asked => "asked",
            Self::Faults => "faults",
            Self::Syscall => "syscall",
            Self::Recall => "recall",
            Self::Fault => "fault",
        }
    }
}

/// `Jump`: the CPU state of process `pid`; the receiver continues it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump<'a> {
    /// Request id, echoed in `JumpAck`.
    pub req: u32,
    /// The process at home.
    pub pid: u32,
    /// Back to its home node (else to the shell of a process whose home is the sender).
    pub to_home: bool,
    /// Why.
    pub reason: JumpReason,
    /// Architecture state (opaque here; the kernel's loader validates it).
    pub state: &'a [u8],
    /// The home's mappings, `JUMP_RANGE_LEN` bytes each, validated, ascending and disjoint:
    /// the shell matches them before running the process.
    pub ranges: &'a [u8],
    /// Files behind the home's private file mappings (see [`Jump::files`]), encoded with
    /// [`put_files_header`] and [`put_file_entry`], or empty.
    pub files: &'a [u8],
    /// The page under the stack pointer, which moves with execution (its owner changes), or
    /// empty.
    pub stack: &'a [u8],
    /// Its address (0 without a page).
    pub stack_addr: u64,
}

impl Jump<'_> {
    /// Number of ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len() / JUMP_RANGE_LEN
    }

    /// Range `i` as (start, end, prot).
    pub fn range(&self, i: usize) -> (u64, u64, u32) {
        range_at(self.ranges, i * JUMP_RANGE_LEN)
    }
}

fn range_at(r: &[u8], at: usize) -> (u64, u64, u32) {
    (le64(r, at), le64(r, at + 8), le32(r, at + 16))
}

/// The ranges of a validated range section (a copy of `Jump::ranges`), as (start, end, prot).
pub fn ranges_in(r: &[u8]) -> impl Iterator<Item = (u64, u64, u32)> + '_ {
    (0..r.len() / JUMP_RANGE_LEN).map(move |i| range_at(r, i * JUMP_RANGE_LEN))
}

/// One private file mapping of the home, as a `Jump` describes it: the shell maps the same
/// file there if it has an identical one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMap<'a> {
    /// Index of its range in `Jump::ranges`.
    pub range: u16,
    /// File offset of the range's start, in pages.
    pub pgoff: u64,
    /// File size at home, bytes.
    pub size: u64,
    /// Modification time at home, ns since the epoch.
    pub mtime_ns: u64,
    /// Absolute path at home.
    pub path: &'a [u8],
}

impl<'a> Jump<'a> {
    /// The file mappings (the section was validated when decoded).
    pub fn files(&self) -> impl Iterator<Item = FileMap<'a>> + 'a {
        files_in(self.files)
    }
}

/// The entries of a file section that was validated (a copy of `Jump::files`).
pub fn files_in(f: &[u8]) -> impl Iterator<Item = FileMap<'_>> {
    let n = if f.len() >= 4 { le16(f, 0) as usize } else { 0 };
    let mut at = 4;
    (0..n).map_while(move |_| {
        let e = file_entry(f, at)?;
        at += JUMP_FILE_FIXED + e.path.len();
        Some(e)
    })
}

fn file_entry(f: &[u8], at: usize) -> Option<FileMap<'_>> {
    let fixed = f.get(at..at + JUMP_FILE_FIXED)?;
    let plen = le16(fixed, 2) as usize;
    Some(FileMap {
        range: le16(fixed, 0),
        pgoff: le64(fixed, 8),
        size: le64(fixed, 16),
        mtime_ns: le64(fixed, 24),
        path: f.get(at + JUMP_FILE_FIXED..at + JUMP_FILE_FIXED + plen)?,
    })
}

/// Writes the 4-byte header of a `Jump`'s file section for `n` entries.
pub fn put_files_header(out: &mut [u8], n: u16) {
    out[0..2].copy_from_slice(&n.to_le_bytes());
    out[2..4].fill(0);
}

/// Writes one file entry into `out` (`JUMP_FILE_FIXED + m.path.len()` bytes).
pub fn put_file_entry(out: &mut [u8], m: &FileMap<'_>) {
    out[0..2].copy_from_slice(&m.range.to_le_bytes());
    out[2..4].copy_from_slice(&(m.path.len() as u16).to_le_bytes());
    out[4..8].fill(0);
    out[8..16].copy_from_slice(&m.pgoff.to_le_bytes());
    out[16..24].copy_from_slice(&m.size.to_le_bytes());
    out[24..32].copy_from_slice(&m.mtime_ns.to_le_bytes());
    out[32..32 + m.path.len()].copy_from_slice(m.path);
}

/// Checks a `Jump`'s file section (`p` starts at it) against its `nranges` ranges; returns
/// its length.
fn check_files(p: &[u8], ranges: &[u8]) -> Result<usize, ProtoError> {
    if p.len() < 4 {
        return Err(ProtoError::BadField("jump files"));
    }
    let n = le16(p, 0) as usize;
    if n == 0 || n > MAX_JUMP_FILES || le16(p, 2) != 0 {
        return Err(ProtoError::BadField("jump files"));
    }
    let mut at = 4;
    for _ in 0..n {
        let e = file_entry(p, at).ok_or(ProtoError::BadField("jump file entry"))?;
        let r = e.range as usize;
        let anon = ranges
            .get(r * JUMP_RANGE_LEN..(r + 1) * JUMP_RANGE_LEN)
            .map(|x| le32(x, 16) & RANGE_ANON != 0);
        if anon != Some(false)
            || le32(p, at + 4) != 0
            || e.path.len() > MAX_FILE_PATH
            || e.path.first() != Some(&b'/')
            || e.path.contains(&0)
            || e.pgoff > u64::MAX >> 12
        {
            return Err(ProtoError::BadField("jump file entry"));
        }
        at += JUMP_FILE_FIXED + e.path.len();
    }
    Ok(at)
}

/// Encodes one range of a `Jump` into `out` (exactly `JUMP_RANGE_LEN` bytes).
pub fn put_jump_range(out: &mut [u8], start: u64, end: u64, prot: u32) {
    out[0..8].copy_from_slice(&start.to_le_bytes());
    out[8..16].copy_from_slice(&end.to_le_bytes());
    out[16..20].copy_from_slice(&prot.to_le_bytes());
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
    /// A process running away from home asks for its page at `addr`; the answer is `Pages`
    /// with one page, or status [`PAGES_BUILD`] and none.
    Fetch {
        /// Request id.
        req: u32,
        /// The process at home.
        pid: u32,
        /// The page.
        addr: u64,
    },
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

/// A reply status: 0 or a negative errno; anything positive is invalid.
fn status_at(p: &[u8], at: usize) -> Result<i32, ProtoError> {
    let status = le32(p, at) as i32;
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

fn bad_len(h: &Header) -> ProtoError {
    ProtoError::BadLength {
        ty: h.ty as u8,
        len: h.len,
    }
}

/// Most bytes of fixed fields a message has before its borrowed tails.
pub const HEAD_MAX: usize = HEADER_LEN + CHALLENGE_LEN;

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
    pub fn len(&self) -> usize {
        self.head_len + self.tails.iter().map(|t| t.len()).sum::<usize>()
    }

    /// True for an empty frame (never: every frame has a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            Self::PushAck { .. } => MsgType::PushAck,
            Self::Pull { .. } => MsgType::Pull,
            Self::Pages(_) => MsgType::Pages,
            Self::Release { .. } => MsgType::Release,
            Self::Jump(_) => MsgType::Jump,
            Self::JumpAck { .. } => MsgType::JumpAck,
            Self::Recall { .. } => MsgType::Recall,
            Self::Fetch { .. } => MsgType::Fetch,
            Self::Discard { .. } => MsgType::Discard,
            Self::Gone { .. } => MsgType::Gone,
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
            MsgType::Stretch => {
                let (pl, al, el) = (
                    le16(p, 40) as usize,
                    le16(p, 42) as usize,
                    le16(p, 44) as usize,
                );
                if le16(p, 46) != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                if STRETCH_FIXED + pl + al + el != p.len() {
                    return Err(bad_len(h));
                }
                let path = &p[STRETCH_FIXED..STRETCH_FIXED + pl];
                let argv = &p[STRETCH_FIXED + pl..STRETCH_FIXED + pl + al];
                let env = &p[STRETCH_FIXED + pl + al..];
                if path.first() != Some(&b'/') || path.contains(&0) {
                    return Err(ProtoError::BadField("path"));
                }
                for list in [argv, env] {
                    if list.last().is_some_and(|&b| b != 0) {
                        return Err(ProtoError::BadField("string list"));
                    }
                }
                let (uid, gid) = (le32(p, 48), le32(p, 52));
                if uid == u32::MAX || gid == u32::MAX {
                    return Err(ProtoError::BadField("uid/gid"));
                }
                Self::Stretch(Stretch {
                    req: le32(p, 0),
                    pid: le32(p, 4),
                    exe_hash: arr(p, 8),
                    uid,
                    gid,
                    path,
                    argv,
                    env,
                })
            }
            MsgType::StretchOk => {
                if le32(p, 12) != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                let status = status_at(p, 4)?;
                Self::StretchOk {
                    req: le32(p, 0),
                    status,
                    shell_pid: le32(p, 8),
                }
            }
            MsgType::Push => {
                let count = le32(p, 28) as usize;
                if count == 0
                    || count > MAX_BATCH
                    || p.len() != PUSH_FIXED + count * (8 + PAGE_SIZE)
                {
                    return Err(bad_len(h));
                }
                let m = Push {
                    req: le32(p, 0),
                    pid: le32(p, 4),
                    vma_start: le64(p, 8),
                    vma_end: le64(p, 16),
                    prot: le32(p, 24),
                    addrs: &p[PUSH_FIXED..PUSH_FIXED + 8 * count],
                    pages: &p[PUSH_FIXED + 8 * count..],
                };
                if m.vma_start >= m.vma_end || !page_aligned(m.vma_end) || m.prot & !7 != 0 {
                    return Err(ProtoError::BadField("vma"));
                }
                check_run(m.vma_start, 0)?;
                if m.vma_end > USER_END {
                    return Err(ProtoError::BadField("vma"));
                }
                for i in 0..count {
                    let a = m.addr(i);
                    if !page_aligned(a) || a < m.vma_start || a >= m.vma_end {
                        return Err(ProtoError::BadField("address"));
                    }
                }
                Self::Push(m)
            }
            MsgType::PushAck => {
                let status = status_at(p, 4)?;
                Self::PushAck {
                    req: le32(p, 0),
                    status,
                }
            }
            MsgType::Pull => {
                if le32(p, 20) != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                let (addr, count) = (le64(p, 8), le32(p, 16));
                if count == 0 || count as usize > MAX_BATCH {
                    return Err(ProtoError::BadField("count"));
                }
                check_run(addr, count as u64)?;
                Self::Pull {
                    req: le32(p, 0),
                    pid: le32(p, 4),
                    addr,
                    count,
                }
            }
            MsgType::Pages => {
                if le32(p, 20) != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                let status = le32(p, 4) as i32;
                let (addr, count) = (le64(p, 8), le32(p, 16) as usize);
                if status > PAGES_BUILD
                    || (status != 0 && count != 0)
                    || (status == 0 && count == 0)
                {
                    return Err(ProtoError::BadField("status"));
                }
                if count > MAX_BATCH || p.len() != PAGES_FIXED + count * PAGE_SIZE {
                    return Err(bad_len(h));
                }
                check_run(addr, count as u64)?;
                Self::Pages(Pages {
                    req: le32(p, 0),
                    status,
                    addr,
                    pages: &p[PAGES_FIXED..],
                })
            }
            MsgType::Release => {
                if le32(p, 4) != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                Self::Release { pid: le32(p, 0) }
            }
            MsgType::Jump => {
                let flags = le32(p, 8);
                if flags & !7 != 0 || p[13] != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                let nranges = le16(p, 14) as usize;
                let rlen = nranges * JUMP_RANGE_LEN;
                if nranges > MAX_JUMP_RANGES || p.len() < JUMP_FIXED + rlen {
                    return Err(bad_len(h));
                }
                let ranges = &p[JUMP_FIXED..JUMP_FIXED + rlen];
                let flen = if flags & 4 != 0 {
                    check_files(&p[JUMP_FIXED + rlen..], ranges)?
                } else {
                    0
                };
                let files = &p[JUMP_FIXED + rlen..JUMP_FIXED + rlen + flen];
                let rlen = rlen + flen;
                let slen = if flags & 2 != 0 { PAGE_SIZE } else { 0 };
                if p.len() < JUMP_FIXED + rlen + slen + 1 {
                    return Err(bad_len(h));
                }
                let stack_addr = le64(p, 16);
                if slen == 0 && stack_addr != 0 {
                    return Err(ProtoError::BadField("stack address"));
                }
                if slen != 0 {
                    check_run(stack_addr, 1)?;
                }
                let stack = &p[JUMP_FIXED + rlen..JUMP_FIXED + rlen + slen];
                let state = &p[JUMP_FIXED + rlen + slen..];
                if state.len() > MAX_JUMP_STATE {
                    return Err(bad_len(h));
                }
                let m = Jump {
                    req: le32(p, 0),
                    pid: le32(p, 4),
                    to_home: flags & 1 != 0,
                    reason: JumpReason::from_u8(p[12])?,
                    state,
                    ranges,
                    files,
                    stack,
                    stack_addr,
                };
                for i in 0..nranges {
                    let (start, end, prot) = m.range(i);
                    if start >= end || !page_aligned(start) || !page_aligned(end) || end > USER_END
                    {
                        return Err(ProtoError::BadField("range"));
                    }
                    if prot & !(7 | RANGE_ANON) != 0 {
                        return Err(ProtoError::BadField("range prot"));
                    }
                    if i > 0 && m.range(i - 1).1 > start {
                        return Err(ProtoError::BadField("range order"));
                    }
                }
                Self::Jump(m)
            }
            MsgType::JumpAck => Self::JumpAck {
                req: le32(p, 0),
                status: status_at(p, 4)?,
            },
            MsgType::Recall => {
                if le32(p, 4) != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                Self::Recall { pid: le32(p, 0) }
            }
            MsgType::Gone => {
                let signal = le32(p, 4);
                if signal > 64 {
                    return Err(ProtoError::BadField("signal"));
                }
                Self::Gone {
                    pid: le32(p, 0),
                    signal,
                }
            }
            MsgType::Discard => {
                let flags = le32(p, 4);
                let (start, end) = (le64(p, 8), le64(p, 16));
                if flags & !1 != 0 {
                    return Err(ProtoError::ReservedBits);
                }
                if start >= end || !page_aligned(start) || !page_aligned(end) || end > USER_END {
                    return Err(ProtoError::BadField("range"));
                }
                Self::Discard {
                    pid: le32(p, 0),
                    start,
                    end,
                    unmap: flags & 1 != 0,
                }
            }
            MsgType::Fetch => {
                let addr = le64(p, 8);
                check_run(addr, 1)?;
                Self::Fetch {
                    req: le32(p, 0),
                    pid: le32(p, 4),
                    addr,
                }
            }
        })
    }

    /// Encodes the message as a head plus borrowed tails (no page is copied).
    pub fn encode_parts(&self, seq: u32) -> Result<Encoded<'a>, ProtoError> {
        let mut e = Encoded {
            head: [0; HEAD_MAX],
            head_len: 0,
            tails: [&[], &[], &[], &[]],
        };
        let h = &mut e.head[HEADER_LEN..];
        let fixed = match self {
            Self::Hello(m) => {
                h[0..2].copy_from_slice(&m.min_version.to_le_bytes());
                h[2..4].copy_from_slice(&m.max_version.to_le_bytes());
                h[4..6].copy_from_slice(&m.node.to_le_bytes());
                h[8..12].copy_from_slice(&m.caps.to_le_bytes());
                h[12..12 + NONCE_LEN].copy_from_slice(&m.nonce);
                HELLO_LEN
            }
            Self::Challenge(m) => {
                h[0..2].copy_from_slice(&m.version.to_le_bytes());
                h[2..4].copy_from_slice(&m.node.to_le_bytes());
                h[4..8].copy_from_slice(&m.caps.to_le_bytes());
                h[8..8 + NONCE_LEN].copy_from_slice(&m.nonce);
                h[8 + NONCE_LEN..CHALLENGE_LEN].copy_from_slice(&m.mac);
                CHALLENGE_LEN
            }
            Self::Auth(mac) => {
                h[..MAC_LEN].copy_from_slice(mac);
                MAC_LEN
            }
            Self::Welcome => 0,
            Self::Error(r) | Self::Bye(r) => {
                h[0..2].copy_from_slice(&(*r as u16).to_le_bytes());
                4
            }
            Self::Ping(t) | Self::Pong(t) => {
                h[0..8].copy_from_slice(&t.to_le_bytes());
                8
            }
            Self::Stretch(m) => {
                let lens = [m.path.len(), m.argv.len(), m.env.len()];
                if lens.iter().sum::<usize>() > MAX_STRETCH_STRINGS {
                    return Err(ProtoError::BadField("stretch strings"));
                }
                h[0..4].copy_from_slice(&m.req.to_le_bytes());
                h[4..8].copy_from_slice(&m.pid.to_le_bytes());
                h[8..40].copy_from_slice(&m.exe_hash);
                for (i, l) in lens.iter().enumerate() {
                    h[40 + 2 * i..42 + 2 * i].copy_from_slice(&(*l as u16).to_le_bytes());
                }
                h[48..52].copy_from_slice(&m.uid.to_le_bytes());
                h[52..56].copy_from_slice(&m.gid.to_le_bytes());
                e.tails = [m.path, m.argv, m.env, &[]];
                STRETCH_FIXED
            }
            Self::StretchOk {
                req,
                status,
                shell_pid,
            } => {
                h[0..4].copy_from_slice(&req.to_le_bytes());
                h[4..8].copy_from_slice(&status.to_le_bytes());
                h[8..12].copy_from_slice(&shell_pid.to_le_bytes());
                16
            }
            Self::Push(m) => {
                let n = m.addrs.len() / 8;
                if m.addrs.len() & 7 != 0
                    || n == 0
                    || n > MAX_BATCH
                    || m.pages.len() != n * PAGE_SIZE
                {
                    return Err(ProtoError::BadField("push batch"));
                }
                h[0..4].copy_from_slice(&m.req.to_le_bytes());
                h[4..8].copy_from_slice(&m.pid.to_le_bytes());
                h[8..16].copy_from_slice(&m.vma_start.to_le_bytes());
                h[16..24].copy_from_slice(&m.vma_end.to_le_bytes());
                h[24..28].copy_from_slice(&m.prot.to_le_bytes());
                h[28..32].copy_from_slice(&(n as u32).to_le_bytes());
                e.tails = [m.addrs, m.pages, &[], &[]];
                PUSH_FIXED
            }
            Self::PushAck { req, status } => {
                h[0..4].copy_from_slice(&req.to_le_bytes());
                h[4..8].copy_from_slice(&status.to_le_bytes());
                8
            }
            Self::Pull {
                req,
                pid,
                addr,
                count,
            } => {
                h[0..4].copy_from_slice(&req.to_le_bytes());
                h[4..8].copy_from_slice(&pid.to_le_bytes());
                h[8..16].copy_from_slice(&addr.to_le_bytes());
                h[16..20].copy_from_slice(&count.to_le_bytes());
                24
            }
            Self::Pages(m) => {
                if m.pages.len() & (PAGE_SIZE - 1) != 0 || m.pages.len() > MAX_BATCH * PAGE_SIZE {
                    return Err(ProtoError::BadField("pages"));
                }
                h[0..4].copy_from_slice(&m.req.to_le_bytes());
                h[4..8].copy_from_slice(&m.status.to_le_bytes());
                h[8..16].copy_from_slice(&m.addr.to_le_bytes());
                h[16..20].copy_from_slice(&((m.pages.len() / PAGE_SIZE) as u32).to_le_bytes());
                e.tails = [m.pages, &[], &[], &[]];
                PAGES_FIXED
            }
            Self::Release { pid } | Self::Recall { pid } => {
                h[0..4].copy_from_slice(&pid.to_le_bytes());
                8
            }
            Self::Jump(m) => {
                if m.state.is_empty() || m.state.len() > MAX_JUMP_STATE {
                    return Err(ProtoError::BadField("jump state"));
                }
                let n = m.ranges.len() / JUMP_RANGE_LEN;
                if m.ranges.len() % JUMP_RANGE_LEN != 0 || n > MAX_JUMP_RANGES {
                    return Err(ProtoError::BadField("jump ranges"));
                }
                if !(m.stack.is_empty() || m.stack.len() == PAGE_SIZE)
                    || m.stack.is_empty() != (m.stack_addr == 0)
                {
                    return Err(ProtoError::BadField("jump stack page"));
                }
                if !m.files.is_empty() && check_files(m.files, m.ranges) != Ok(m.files.len()) {
                    return Err(ProtoError::BadField("jump files"));
                }
                let flags = m.to_home as u32
                    | (!m.stack.is_empty() as u32) << 1
                    | (!m.files.is_empty() as u32) << 2;
                h[0..4].copy_from_slice(&m.req.to_le_bytes());
                h[4..8].copy_from_slice(&m.pid.to_le_bytes());
                h[8..12].copy_from_slice(&flags.to_le_bytes());
                h[12] = m.reason as u8;
                h[14..16].copy_from_slice(&(n as u16).to_le_bytes());
                h[16..24].copy_from_slice(&m.stack_addr.to_le_bytes());
                e.tails = [m.ranges, m.files, m.stack, m.state];
                JUMP_FIXED
            }
            Self::JumpAck { req, status } => {
                h[0..4].copy_from_slice(&req.to_le_bytes());
                h[4..8].copy_from_slice(&status.to_le_bytes());
                8
            }
            Self::Gone { pid, signal } => {
                h[0..4].copy_from_slice(&pid.to_le_bytes());
                h[4..8].copy_from_slice(&signal.to_le_bytes());
                8
            }
            Self::Discard {
                pid,
                start,
                end,
                unmap,
            } => {
                h[0..4].copy_from_slice(&pid.to_le_bytes());
                h[4..8].copy_from_slice(&(*unmap as u32).to_le_bytes());
                h[8..16].copy_from_slice(&start.to_le_bytes());
                h[16..24].copy_from_slice(&end.to_le_bytes());
                24
            }
            Self::Fetch { req, pid, addr } => {
                h[0..4].copy_from_slice(&req.to_le_bytes());
                h[4..8].copy_from_slice(&pid.to_le_bytes());
                h[8..16].copy_from_slice(&addr.to_le_bytes());
                16
            }
        };
        let len = fixed + e.tails.iter().map(|t| t.len()).sum::<usize>();
        let hdr = Header {
            ty: self.ty(),
            len: len as u32,
            seq,
        };
        e.head[..HEADER_LEN].copy_from_slice(&hdr.encode());
        e.head_len = HEADER_LEN + fixed;
        Ok(e)
    }

    /// Encodes header and payload into `out`, returning the frame length.
    pub fn encode(&self, seq: u32, out: &mut [u8]) -> Result<usize, ProtoError> {
        let e = self.encode_parts(seq)?;
        if out.len() < e.len() {
            return Err(ProtoError::BufferTooSmall);
        }
        out[..e.head_len].copy_from_slice(&e.head[..e.head_len]);
        let mut at = e.head_len;
        for t in e.tails {
            out[at..at + t.len()].copy_from_slice(t);
            at += t.len();
        }
        Ok(at)
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

    fn samples() -> Vec<Message<'static>> {
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

    fn assert_roundtrip(m: &Message<'_>) {
        let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
        let n = m.encode(77, &mut buf).unwrap();
        let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(h.seq, 77);
        assert_eq!(h.len as usize, n - HEADER_LEN);
        assert_eq!(&Message::decode(&h, &buf[HEADER_LEN..n]).unwrap(), m);
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples().iter().chain(page_samples().iter()) {
            assert_roundtrip(m);
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
    /// Decoded messages, re-encoded (they borrow the reader's buffer, which is reused).
    fn read_all(stream: &[u8], pieces: &[usize]) -> Result<Vec<Vec<u8>>, ProtoError> {
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
                let m = Message::decode(&h, &payload[..h.len as usize])?;
                let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
                let k = m.encode(0, &mut buf)?;
                buf.truncate(k);
                out.push(buf);
            }
        }
        Ok(out)
    }

    fn encoded(ms: &[Message<'_>]) -> Vec<Vec<u8>> {
        ms.iter()
            .map(|m| {
                let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
                let n = m.encode(0, &mut buf).unwrap();
                buf.truncate(n);
                buf
            })
            .collect()
    }

    #[test]
    fn reader_reassembles_byte_by_byte() {
        let all: Vec<Message<'static>> = samples().into_iter().chain(page_samples()).collect();
        let frames = encoded(&all);
        let stream: Vec<u8> = frames.concat();
        assert_eq!(read_all(&stream, &[1]).unwrap(), frames);
        assert_eq!(read_all(&stream, &[3, 17, 1, 64, 5000]).unwrap(), frames);
    }

    static PAGE_A: [u8; 2 * PAGE_SIZE] = [0xab; 2 * PAGE_SIZE];
    static RANGES: [u8; 2 * JUMP_RANGE_LEN] = {
        let mut r = [0u8; 2 * JUMP_RANGE_LEN];
        // (0x1000, 0x3000, 3) and (0x7000_0000, 0x7000_1000, 1), little-endian
        r[1] = 0x10;
        r[9] = 0x30;
        r[16] = 3;
        r[23] = 0x70;
        r[31] = 0x70;
        r[29] = 0x10;
        r[36] = 1;
        r
    };
    /// One file entry, for range 0 of `RANGES`: /lib/x.so at page 2, 8192 bytes, mtime 7 ns.
    static FILES: [u8; 4 + JUMP_FILE_FIXED + 9] = {
        let mut f = [0u8; 4 + JUMP_FILE_FIXED + 9];
        f[0] = 1;
        f[6] = 9;
        f[12] = 2;
        f[21] = 0x20;
        f[28] = 7;
        let path = *b"/lib/x.so";
        let mut i = 0;
        while i < 9 {
            f[4 + JUMP_FILE_FIXED + i] = path[i];
            i += 1;
        }
        f
    };
    static ADDRS: [u8; 16] = [0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0];

    fn page_samples() -> Vec<Message<'static>> {
        std::vec![
            Message::Stretch(Stretch {
                req: 1,
                pid: 300,
                exe_hash: [5; 32],
                uid: 1000,
                gid: 100,
                path: b"/bin/hsort",
                argv: b"hsort\x00384\x00",
                env: b"PATH=/bin\0",
            }),
            Message::StretchOk {
                req: 1,
                status: -2,
                shell_pid: 0,
            },
            Message::Push(Push {
                req: 2,
                pid: 300,
                vma_start: 0x1000,
                vma_end: 0x40000,
                prot: 3,
                addrs: &ADDRS,
                pages: &PAGE_A,
            }),
            Message::PushAck { req: 2, status: 0 },
            Message::Pull {
                req: 3,
                pid: 300,
                addr: 0x1000,
                count: 2,
            },
            Message::Pages(Pages {
                req: 3,
                status: 0,
                addr: 0x1000,
                pages: &PAGE_A,
            }),
            Message::Pages(Pages {
                req: 4,
                status: -14,
                addr: 0x1000,
                pages: &[],
            }),
            Message::Release { pid: 300 },
            Message::Jump(Jump {
                req: 5,
                pid: 300,
                to_home: true,
                reason: JumpReason::Faults,
                state: &PAGE_A[..1000],
                ranges: &RANGES,
                files: &FILES,
                stack: &PAGE_A[..PAGE_SIZE],
                stack_addr: 0x7fff_0000,
            }),
            Message::JumpAck {
                req: 5,
                status: -22
            },
            Message::Recall { pid: 300 },
            Message::Gone {
                pid: 300,
                signal: 11,
            },
            Message::Fetch {
                req: 6,
                pid: 300,
                addr: 0x7000,
            },
            Message::Pages(Pages {
                req: 6,
                status: PAGES_BUILD,
                addr: 0x7000,
                pages: &[],
            }),
            Message::Discard {
                pid: 300,
                start: 0x10000,
                end: 0x30000,
                unmap: true,
            },
        ]
    }

    #[test]
    fn jump_messages_reject_bad_fields() {
        let s = page_samples();
        let (jump, ack, recall, fetch, build) = (&s[8], &s[9], &s[10], &s[12], &s[13]);
        assert!(decode_corrupted(&s[11], |p| p[4] = 65).is_err());
        // jump: unknown flag, unknown reason, reserved byte, range count beyond the payload,
        // a range ending before it starts, unaligned, in kernel space, with bad prot bits
        assert!(decode_corrupted(jump, |p| p[8] = 8 | 7).is_err());
        // a stack page claimed absent while its address is set, or in kernel space
        assert!(decode_corrupted(jump, |p| p[8] = 1).is_err());
        assert!(decode_corrupted(jump, |p| p[23] = 0x80).is_err());
        assert!(decode_corrupted(jump, |p| p[12] = 9).is_err());
        assert!(decode_corrupted(jump, |p| p[13] = 1).is_err());
        assert!(decode_corrupted(jump, |p| p[14] = 0xff).is_err());
        assert!(
            decode_corrupted(jump, |p| p[JUMP_FIXED + 8..JUMP_FIXED + 16]
                .copy_from_slice(&0x1000u64.to_le_bytes()))
            .is_err()
        );
        assert!(decode_corrupted(jump, |p| p[JUMP_FIXED] = 1).is_err());
        assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 15] = 0x80).is_err());
        assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 16] = 8).is_err());
        // the anonymous-mapping bit is the one extra bit allowed; ranges must ascend
        assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 20 + 19] = 0x80).is_ok());
        assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 19] = 0x40).is_err());
        assert!(
            decode_corrupted(jump, |p| p[JUMP_FIXED + 20..JUMP_FIXED + 28]
                .copy_from_slice(&0x2000u64.to_le_bytes()))
            .is_err()
        );
        // files: the entry decodes back; it may not name an anonymous range or a range
        // beyond the list, nor carry a relative path, a NUL, reserved bits, or zero entries
        let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
        let n = jump.encode(0, &mut buf).unwrap();
        let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
        let Ok(Message::Jump(j)) = Message::decode(&h, &buf[HEADER_LEN..n]) else {
            panic!("jump sample does not decode");
        };
        let f: Vec<FileMap<'_>> = j.files().collect();
        assert_eq!(
            f,
            [FileMap {
                range: 0,
                pgoff: 2,
                size: 8192,
                mtime_ns: 7,
                path: b"/lib/x.so"
            }]
        );
        let fs = JUMP_FIXED + 2 * JUMP_RANGE_LEN;
        assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 19] = 0x80).is_err());
        assert!(decode_corrupted(jump, |p| p[fs + 4] = 2).is_err());
        assert!(decode_corrupted(jump, |p| p[fs + 4 + JUMP_FILE_FIXED] = b'l').is_err());
        assert!(decode_corrupted(jump, |p| p[fs + 4 + JUMP_FILE_FIXED + 3] = 0).is_err());
        assert!(decode_corrupted(jump, |p| p[fs + 4 + 5] = 1).is_err());
        assert!(decode_corrupted(jump, |p| p[fs] = 0).is_err());
        assert!(decode_corrupted(jump, |p| p[fs + 2] = 1).is_err());
        // a path length that runs past the message
        assert!(decode_corrupted(jump, |p| p[fs + 4 + 3] = 0x40).is_err());
        // ack: positive status; recall: reserved; fetch: unaligned or kernel address
        assert!(decode_corrupted(ack, |p| p[4..8].copy_from_slice(&7i32.to_le_bytes())).is_err());
        assert!(decode_corrupted(recall, |p| p[5] = 1).is_err());
        assert!(decode_corrupted(fetch, |p| p[8] = 8).is_err());
        assert!(decode_corrupted(fetch, |p| p[15] = 0x80).is_err());
        // build status with a page, or a status beyond it
        assert!(decode_corrupted(build, |p| p[4] = 2).is_err());
        // an empty jump state is refused when encoding and decoding
        let empty = Message::Jump(Jump {
            req: 0,
            pid: 0,
            to_home: false,
            reason: JumpReason::Asked,
            state: &[],
            ranges: &[],
            files: &[],
            stack: &[],
            stack_addr: 0,
        });
        assert!(empty.encode(0, &mut [0u8; 64]).is_err());
    }

    #[test]
    fn jump_carries_thousands_of_ranges() {
        // MAX_JUMP_RANGES one-page ranges with gaps (a JVM-like layout) decode back in order;
        // one more is refused when encoding.
        let mut ranges = std::vec![0u8; (MAX_JUMP_RANGES + 1) * JUMP_RANGE_LEN];
        for (i, r) in ranges.chunks_mut(JUMP_RANGE_LEN).enumerate() {
            let start = 0x1000_0000 + i as u64 * 0x2000;
            put_jump_range(r, start, start + 0x1000, 3 | RANGE_ANON);
        }
        let state = [1u8; 64];
        let jump = |ranges| {
            Message::Jump(Jump {
                req: 1,
                pid: 2,
                to_home: false,
                reason: JumpReason::Asked,
                state: &state,
                ranges,
                files: &[],
                stack: &[],
                stack_addr: 0,
            })
        };
        let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
        let full = &ranges[..MAX_JUMP_RANGES * JUMP_RANGE_LEN];
        let n = jump(full).encode(0, &mut buf).unwrap();
        let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
        let Ok(Message::Jump(j)) = Message::decode(&h, &buf[HEADER_LEN..n]) else {
            panic!("a jump with {MAX_JUMP_RANGES} ranges does not decode");
        };
        assert_eq!(j.ranges, full);
        assert!(jump(&ranges).encode(0, &mut buf).is_err());
    }

    #[test]
    fn discard_rejects_bad_fields() {
        let s = page_samples();
        let d = s.last().unwrap();
        assert!(decode_corrupted(d, |_| ()).is_ok());
        // unknown flag; empty, reversed, unaligned or kernel-space range
        assert!(decode_corrupted(d, |p| p[4] = 2).is_err());
        assert!(
            decode_corrupted(d, |p| p[16..24].copy_from_slice(&0x10000u64.to_le_bytes())).is_err()
        );
        assert!(
            decode_corrupted(d, |p| p[16..24].copy_from_slice(&0x8000u64.to_le_bytes())).is_err()
        );
        assert!(decode_corrupted(d, |p| p[8] = 1).is_err());
        assert!(decode_corrupted(d, |p| p[23] = 0x80).is_err());
    }

    /// Encodes `m`, lets `corrupt` change the payload, and decodes again.
    fn decode_corrupted(m: &Message<'_>, corrupt: impl Fn(&mut [u8])) -> Result<(), ProtoError> {
        let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
        let n = m.encode(0, &mut buf).unwrap();
        let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap())?;
        corrupt(&mut buf[HEADER_LEN..n]);
        Message::decode(&h, &buf[HEADER_LEN..n]).map(|_| ())
    }

    #[test]
    fn page_messages_reject_bad_fields() {
        let s = page_samples();
        let (stretch, push, pull, pages_ok, pages_err) = (&s[0], &s[2], &s[4], &s[5], &s[6]);
        // stretch: relative path, NUL in path, unterminated argv, lengths not adding up
        assert!(decode_corrupted(stretch, |p| p[STRETCH_FIXED] = b'x').is_err());
        // an invalid uid or gid (-1)
        assert!(decode_corrupted(stretch, |p| p[48..52].copy_from_slice(&[0xff; 4])).is_err());
        assert!(decode_corrupted(stretch, |p| p[52..56].copy_from_slice(&[0xff; 4])).is_err());
        assert!(decode_corrupted(stretch, |p| p[STRETCH_FIXED + 3] = 0).is_err());
        assert!(decode_corrupted(stretch, |p| {
            let at = STRETCH_FIXED + 10 + 9;
            p[at] = b'x'
        })
        .is_err());
        assert!(decode_corrupted(stretch, |p| p[40] += 1).is_err());
        // push: address outside its VMA, unaligned, count mismatch, kernel-space VMA, prot bits
        assert!(decode_corrupted(push, |p| p[PUSH_FIXED + 2] = 0x50).is_err());
        assert!(decode_corrupted(push, |p| p[PUSH_FIXED] = 1).is_err());
        assert!(decode_corrupted(push, |p| p[28] = 3).is_err());
        assert!(decode_corrupted(push, |p| p[23] = 0xff).is_err());
        assert!(decode_corrupted(push, |p| p[24] = 8).is_err());
        assert!(decode_corrupted(push, |p| p[8..16]
            .copy_from_slice(&0x40000u64.to_le_bytes()))
        .is_err());
        // pull: zero or too many pages, unaligned, beyond user space
        assert!(decode_corrupted(pull, |p| p[16] = 0).is_err());
        assert!(decode_corrupted(pull, |p| p[16] = MAX_BATCH as u8 + 1).is_err());
        assert!(decode_corrupted(pull, |p| p[8] = 1).is_err());
        assert!(decode_corrupted(pull, |p| p[8..16]
            .copy_from_slice(&(USER_END - 4096).to_le_bytes()))
        .is_err());
        assert!(
            decode_corrupted(pull, |p| p[8..16].copy_from_slice(&u64::MAX.to_le_bytes())).is_err()
        );
        // pages: error with pages, success without, positive status, count mismatch
        assert!(decode_corrupted(pages_ok, |p| p[4..8]
            .copy_from_slice(&(-5i32).to_le_bytes()))
        .is_err());
        assert!(decode_corrupted(pages_ok, |p| p[4] = 1).is_err());
        assert!(decode_corrupted(pages_ok, |p| p[16] = 1).is_err());
        assert!(decode_corrupted(pages_err, |p| p[16] = 1).is_err());
        // every sample itself is fine
        for m in &s {
            assert!(decode_corrupted(m, |_| {}).is_ok());
        }
    }

    #[test]
    fn encode_refuses_inconsistent_batches() {
        let bad = Message::Push(Push {
            req: 0,
            pid: 0,
            vma_start: 0,
            vma_end: 0x1000,
            prot: 0,
            addrs: &ADDRS,
            pages: &PAGE_A[..PAGE_SIZE],
        });
        assert!(bad.encode_parts(0).is_err());
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
                let (min, max) = h.ty.len_bounds();
                prop_assert!((h.len as usize) >= min && (h.len as usize) <= max);
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
        fn valid_streams_survive_any_split(pieces in proptest::collection::vec(1usize..9000, 1..8)) {
            let all: Vec<Message<'static>> = samples().into_iter().chain(page_samples()).collect();
            let frames = encoded(&all);
            prop_assert_eq!(read_all(&frames.concat(), &pieces).unwrap(), frames);
        }
    }
}
