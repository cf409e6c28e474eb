//! The jump family: execution moves between a home and a shell (Jump with its range and file
//! sections, JumpAck), is called back (Recall), or is lost with the shell (Gone). Each
//! message's layout, decoder and encoder sit together.

use super::cursor::{fill, Reader, Writer};
use super::{
    bad_len, check_run, check_status, page_aligned, Header, Message, ProtoError, Tails, PAGE_SIZE,
    USER_END,
};

/// Most CPU time one `Jump` may report (a day: more is a broken or hostile sender).
pub const MAX_JUMP_CPU_NS: u64 = 86_400 * 1_000_000_000;
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
/// size, mtime (u64 each), the SHA-256 of the file's contents; the path follows.
pub const JUMP_FILE_FIXED: usize = 64;
/// Fixed part of a `Jump` payload.
pub const JUMP_FIXED: usize = 48;
/// Size of the header of a `Jump`'s file section: nfiles u16, reserved u16.
pub(super) const FILES_HEADER_LEN: usize = 4;
/// Payload size of `JumpAck`.
pub(super) const JUMP_ACK_LEN: usize = 8;
/// Payload size of `Recall`.
pub(super) const RECALL_LEN: usize = 8;
/// Payload size of `Gone`.
pub(super) const GONE_LEN: usize = 8;

/// `Jump` flags: execution goes back to its home node.
const TO_HOME: u32 = 1 << 0;
/// `Jump` flags: the stack page follows the file section.
const HAS_STACK: u32 = 1 << 1;
/// `Jump` flags: a file section follows the ranges.
const HAS_FILES: u32 = 1 << 2;
/// `PROT_*` bits a range may carry besides [`RANGE_ANON`].
const PROT_MASK: u32 = 7;
/// Highest signal number a `Gone` may carry.
const MAX_SIGNAL: u32 = 64;

/// Why execution moved, for the jump log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum JumpReason {
    /// `elastic_jump()` asked for it.
    Asked = 1,
    /// The policy: remote faults came fast.
    RemoteFaults = 2,
    /// A syscall, which runs at home.
    Syscall = 3,
    /// Home recalled it (a signal is pending there).
    Recall = 4,
    /// A fault the shell cannot resolve (a mapping it lacks, a signal): the home retries.
    FaultSignal = 5,
}

impl JumpReason {
    /// Parses a reason byte.
    pub fn from_u8(v: u8) -> Result<Self, ProtoError> {
        Ok(match v {
            1 => Self::Asked,
            2 => Self::RemoteFaults,
            3 => Self::Syscall,
            4 => Self::Recall,
            5 => Self::FaultSignal,
            _ => return Err(ProtoError::BadField("jump reason")),
        })
    }

    /// Name for logs and stats.
    pub fn name(self) -> &'static str {
        match self {
            Self::Asked => "asked",
            Self::RemoteFaults => "faults",
            Self::Syscall => "syscall",
            Self::Recall => "recall",
            Self::FaultSignal => "fault",
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
    /// CPU time the process used on the sender since it arrived there: its home accounts
    /// it; from the home, the shell's jump policy reads it (a visit that ran on did not
    /// bounce).
    pub cpu: CpuUsed,
    /// From the home: pages the process may hold on the receiving node while it runs there
    /// (its budget held away, reclaim.rs), 0 for no limit there; zero to the home.
    pub budget: u32,
    /// From the home: pages of the process the home holds as it leaves, for the shell's
    /// jump policy (what a jump back home would find there); zero to the home.
    pub home_pages: u32,
}

/// CPU time used away from home, in nanoseconds, split as the sender's scheduler saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuUsed {
    /// In user mode.
    pub user_ns: u64,
    /// In the kernel (its faults).
    pub sys_ns: u64,
}

impl CpuUsed {
    /// At most `away_ns` in all, the time the process was really away: a peer reports the
    /// time, and the home charges it to the process's limits (RLIMIT_CPU, cpu.max). Over it,
    /// both parts shrink in their ratio.
    pub fn bounded_by(self, away_ns: u64) -> Self {
        let total = self.user_ns.saturating_add(self.sys_ns);
        if total <= away_ns {
            return self;
        }
        let s = Self::split(away_ns, self.user_ns, self.sys_ns);
        debug_assert!(s.user_ns + s.sys_ns == away_ns);
        s
    }

    /// Splits `runtime_ns` (the scheduler's exact run time) in the ratio of the tick-sampled
    /// user and system times, as `cputime_adjust()` does; all user time if neither ticked.
    /// No 128-bit arithmetic: the kernel has none.
    pub fn split(runtime_ns: u64, utime_ns: u64, stime_ns: u64) -> Self {
        // The ratio's terms shrink to 31 bits, so every product below fits in 64.
        let (mut ut, mut st) = (utime_ns, stime_ns);
        while ut.saturating_add(st) >= 1 << 31 {
            ut >>= 1;
            st >>= 1;
        }
        let total = ut + st;
        if total == 0 {
            return Self {
                user_ns: runtime_ns,
                sys_ns: 0,
            };
        }
        // runtime * st / total, exactly, as (q * total + r) * st / total.
        let sys = (runtime_ns / total) * st + (runtime_ns % total) * st / total;
        Self {
            user_ns: runtime_ns - sys,
            sys_ns: sys,
        }
    }
}

impl<'a> Jump<'a> {
    /// The file mappings (the section was validated when decoded).
    #[cfg(test)]
    pub fn files(&self) -> impl Iterator<Item = FileMap<'a>> + 'a {
        files_in(self.files)
    }
}

// Jump: req u32, pid u32, flags u32, reason u8, reserved u8, nranges u16, stack_addr u64,
// user_ns u64, sys_ns u64, budget u32, home_pages u32; then nranges × range, the file section if HAS_FILES, the stack page if HAS_STACK, and the
// CPU state (the rest, at least one byte).
pub(super) fn decode_jump<'a>(h: &Header, r: &mut Reader<'a>) -> Result<Message<'a>, ProtoError> {
    let (req, pid, flags) = (r.u32()?, r.u32()?, r.u32()?);
    let (reason, reserved, nranges, stack_addr) = (r.u8()?, r.u8()?, r.u16()?, r.u64()?);
    let cpu = CpuUsed {
        user_ns: r.u64()?,
        sys_ns: r.u64()?,
    };
    let (budget, home_pages) = (r.u32()?, r.u32()?);
    if cpu.user_ns > MAX_JUMP_CPU_NS || cpu.sys_ns > MAX_JUMP_CPU_NS {
        return Err(ProtoError::BadField("jump cpu time"));
    }
    if flags & !(TO_HOME | HAS_STACK | HAS_FILES) != 0 || reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    // Only the home says where its budget holds and what it keeps.
    if flags & TO_HOME != 0 && (budget | home_pages) != 0 {
        return Err(ProtoError::BadField("jump budget"));
    }
    let nranges = usize::from(nranges);
    let rlen = nranges * JUMP_RANGE_LEN;
    if nranges > MAX_JUMP_RANGES || r.remaining() < rlen {
        return Err(bad_len(h));
    }
    let ranges = r.bytes(rlen)?;
    let files = if flags & HAS_FILES != 0 {
        let flen = check_files(r.unread(), ranges)?;
        r.bytes(flen)?
    } else {
        &[]
    };
    let slen = if flags & HAS_STACK != 0 { PAGE_SIZE } else { 0 };
    if r.remaining() < slen + 1 {
        return Err(bad_len(h));
    }
    // A stack page has a non-zero address and only a stack page has one, as the encoder
    // requires (found by fuzzing: a page at 0 decoded, and could not be sent back).
    if (slen == 0) != (stack_addr == 0) {
        return Err(ProtoError::BadField("stack address"));
    }
    if slen != 0 {
        check_run(stack_addr, 1)?;
    }
    let stack = r.bytes(slen)?;
    let state = r.rest();
    if state.len() > MAX_JUMP_STATE {
        return Err(bad_len(h));
    }
    let reason = JumpReason::from_u8(reason)?;
    let mut prev_end = 0;
    for (start, end, prot) in ranges_in(ranges) {
        if start >= end || !page_aligned(start) || !page_aligned(end) || end > USER_END {
            return Err(ProtoError::BadField("range"));
        }
        if prot & !(PROT_MASK | RANGE_ANON) != 0 {
            return Err(ProtoError::BadField("range prot"));
        }
        if prev_end > start {
            return Err(ProtoError::BadField("range order"));
        }
        prev_end = end;
    }
    Ok(Message::Jump(Jump {
        req,
        pid,
        to_home: flags & TO_HOME != 0,
        reason,
        state,
        ranges,
        files,
        stack,
        stack_addr,
        cpu,
        budget,
        home_pages,
    }))
}

pub(super) fn encode_jump<'a>(w: &mut Writer<'_>, m: &Jump<'a>) -> Result<Tails<'a>, ProtoError> {
    if m.state.is_empty() || m.state.len() > MAX_JUMP_STATE {
        return Err(ProtoError::BadField("jump state"));
    }
    let n = m.ranges.len() / JUMP_RANGE_LEN;
    if !m.ranges.len().is_multiple_of(JUMP_RANGE_LEN) || n > MAX_JUMP_RANGES {
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
    let flags = (if m.to_home { TO_HOME } else { 0 })
        | (if m.stack.is_empty() { 0 } else { HAS_STACK })
        | (if m.files.is_empty() { 0 } else { HAS_FILES });
    w.u32(m.req)?;
    w.u32(m.pid)?;
    w.u32(flags)?;
    w.u8(m.reason as u8)?;
    w.u8(0)?; // reserved
    w.u16(n as u16)?;
    w.u64(m.stack_addr)?;
    if m.cpu.user_ns > MAX_JUMP_CPU_NS || m.cpu.sys_ns > MAX_JUMP_CPU_NS {
        return Err(ProtoError::BadField("jump cpu time"));
    }
    w.u64(m.cpu.user_ns)?;
    w.u64(m.cpu.sys_ns)?;
    if m.to_home && (m.budget | m.home_pages) != 0 {
        return Err(ProtoError::BadField("jump budget"));
    }
    w.u32(m.budget)?;
    w.u32(m.home_pages)?;
    Ok([m.ranges, m.files, m.stack, m.state])
}

// Range: start u64, end u64, prot u32 (PROT_* | RANGE_ANON).
fn read_range(r: &mut Reader<'_>) -> Result<(u64, u64, u32), ProtoError> {
    Ok((r.u64()?, r.u64()?, r.u32()?))
}

fn range_of(rec: &[u8; JUMP_RANGE_LEN]) -> (u64, u64, u32) {
    // A record holds exactly the three fields, so the read cannot fall back.
    read_range(&mut Reader::new(rec)).unwrap_or_default()
}

/// The ranges of a validated range section (a copy of `Jump::ranges`), as (start, end, prot).
pub fn ranges_in(r: &[u8]) -> impl Iterator<Item = (u64, u64, u32)> + '_ {
    r.as_chunks::<JUMP_RANGE_LEN>().0.iter().map(range_of)
}

/// Encodes one range of a `Jump` into `out` (exactly `JUMP_RANGE_LEN` bytes).
pub fn put_jump_range(out: &mut [u8], start: u64, end: u64, prot: u32) {
    fill(out, JUMP_RANGE_LEN, |w| {
        w.u64(start)?;
        w.u64(end)?;
        w.u32(prot)
    });
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
    /// SHA-256 of the file's contents at home: a shell maps its own file of that path only if
    /// its contents hash the same (path, size and mtime can be planted by a local user).
    pub sha256: [u8; 32],
    /// Absolute path at home.
    pub path: &'a [u8],
}

// File section: nfiles u16, reserved u16; then per file: range u16, path_len u16,
// reserved u32, pgoff u64, size u64, mtime_ns u64, sha256 [32], path.

/// One file entry and its reserved word (only [`check_files`] looks at it).
fn read_file_entry<'a>(r: &mut Reader<'a>) -> Result<(FileMap<'a>, u32), ProtoError> {
    let (range, plen, reserved) = (r.u16()?, r.u16()?, r.u32()?);
    let (pgoff, size, mtime_ns) = (r.u64()?, r.u64()?, r.u64()?);
    let sha256 = r.array::<32>()?;
    let path = r.bytes(usize::from(plen))?;
    let e = FileMap {
        range,
        pgoff,
        size,
        mtime_ns,
        sha256,
        path,
    };
    Ok((e, reserved))
}

/// The entries of a file section that was validated (a copy of `Jump::files`).
pub fn files_in(f: &[u8]) -> impl Iterator<Item = FileMap<'_>> {
    let mut r = Reader::new(f);
    let n = match (r.u16(), r.u16()) {
        (Ok(n), Ok(_)) => n,
        _ => 0,
    };
    (0..n).map_while(move |_| read_file_entry(&mut r).ok().map(|(e, _)| e))
}

/// Writes the 4-byte header of a `Jump`'s file section for `n` entries.
pub fn put_files_header(out: &mut [u8], n: u16) {
    fill(out, FILES_HEADER_LEN, |w| {
        w.u16(n)?;
        w.u16(0) // reserved
    });
}

/// Writes one file entry into `out` (`JUMP_FILE_FIXED + m.path.len()` bytes).
pub fn put_file_entry(out: &mut [u8], m: &FileMap<'_>) {
    fill(out, JUMP_FILE_FIXED + m.path.len(), |w| {
        w.u16(m.range)?;
        w.u16(m.path.len() as u16)?;
        w.u32(0)?; // reserved
        w.u64(m.pgoff)?;
        w.u64(m.size)?;
        w.u64(m.mtime_ns)?;
        w.bytes(&m.sha256)?;
        w.bytes(m.path)
    });
}

/// Checks a `Jump`'s file section (`p` starts at it) against its ranges; returns its length.
/// Both sides run it: the decoder on what arrived, the encoder on what the caller built.
fn check_files(p: &[u8], ranges: &[u8]) -> Result<usize, ProtoError> {
    let r = &mut Reader::new(p);
    let section = ProtoError::BadField("jump files");
    let (n, reserved) = (r.u16().map_err(|_| section)?, r.u16().map_err(|_| section)?);
    let n = usize::from(n);
    if n == 0 || n > MAX_JUMP_FILES || reserved != 0 {
        return Err(section);
    }
    let entry = ProtoError::BadField("jump file entry");
    let records = ranges.as_chunks::<JUMP_RANGE_LEN>().0;
    for _ in 0..n {
        let (e, reserved) = read_file_entry(r).map_err(|_| entry)?;
        let anon = records
            .get(usize::from(e.range))
            .map(|rec| range_of(rec).2 & RANGE_ANON != 0);
        if anon != Some(false)
            || reserved != 0
            || e.path.len() > MAX_FILE_PATH
            || e.path.first() != Some(&b'/')
            || e.path.contains(&0)
            || e.pgoff > u64::MAX >> 12
        {
            return Err(entry);
        }
    }
    Ok(p.len() - r.remaining())
}

// JumpAck: req u32, status i32.
pub(super) fn decode_jump_ack(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (req, status) = (r.u32()?, r.i32()?);
    Ok(Message::JumpAck {
        req,
        status: check_status(status)?,
    })
}

pub(super) fn encode_jump_ack(w: &mut Writer<'_>, req: u32, status: i32) -> Result<(), ProtoError> {
    w.u32(req)?;
    w.i32(status)
}

// Recall: pid u32, reserved u32.
pub(super) fn decode_recall(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (pid, reserved) = (r.u32()?, r.u32()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    Ok(Message::Recall { pid })
}

pub(super) fn encode_recall(w: &mut Writer<'_>, pid: u32) -> Result<(), ProtoError> {
    w.u32(pid)?;
    w.u32(0) // reserved
}

// Gone: pid u32, signal u32.
pub(super) fn decode_gone(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (pid, signal) = (r.u32()?, r.u32()?);
    if signal > MAX_SIGNAL {
        return Err(ProtoError::BadField("signal"));
    }
    Ok(Message::Gone { pid, signal })
}

pub(super) fn encode_gone(w: &mut Writer<'_>, pid: u32, signal: u32) -> Result<(), ProtoError> {
    w.u32(pid)?;
    w.u32(signal)
}
