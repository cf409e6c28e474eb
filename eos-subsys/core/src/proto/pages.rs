//! The pages family: pages and their ownership move between a home and a shell (Push,
//! PushRefs, PushAck, Pull, Pages, Fetch, Took), a member drops what the home unmapped
//! (Discard) and names the pages its running shell used least lately (Cold, ColdAddrs). Each message's layout, decoder and encoder sit together.

use super::cursor::{Reader, Writer};
use super::{
    bad_len, check_run, check_status, page_aligned, Header, Message, ProtoError, Tails, MAX_BATCH,
    PAGE_SIZE, USER_END,
};

/// `Pages.status` of a page the requester builds itself (zeroes or file data), now its own.
pub const PAGES_BUILD: i32 = 1;
/// Fixed part of a `Push` payload.
pub const PUSH_FIXED: usize = 40;
/// Fixed part of a `Pages` payload.
pub const PAGES_FIXED: usize = 24;
/// Size of one page address in a `Push`.
pub(super) const ADDR_LEN: usize = 8;
/// Payload size of `PushAck`.
pub(super) const PUSH_ACK_LEN: usize = 8;
/// Payload size of `Pull`.
pub(super) const PULL_LEN: usize = 24;
/// Payload size of `Fetch`.
pub(super) const FETCH_LEN: usize = 24;
/// Payload size of `Discard`.
pub(super) const DISCARD_LEN: usize = 24;
/// Payload size of `Took`.
pub(super) const TOOK_LEN: usize = 24;
/// Payload size of `Cold`.
pub(super) const COLD_LEN: usize = 16;
/// Fixed part of a `ColdAddrs` payload.
pub const COLD_ADDRS_FIXED: usize = 16;
/// Size of one entry of a `PushRefs`: address u64, tag u32, reserved u32.
pub const REF_LEN: usize = 16;

/// `PROT_*` bits a VMA may carry.
const PROT_MASK: u32 = 7;
/// `Discard` flag: unmap the range, not only its pages.
const DISCARD_UNMAP: u32 = 1;

/// `Push`: pages of one VMA of process `pid`, with their ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Push<'a> {
    /// Request id, echoed in `PushAck`.
    pub req: u32,
    /// The process at home.
    pub pid: u32,
    /// The batch's number, the same in every try of it and growing from batch to batch: a
    /// member installs a batch only if it is newer than the last one it took.
    pub batch: u64,
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
        self.addrs.len() / ADDR_LEN
    }

    /// Address of page `i`.
    pub fn addr(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.addrs.as_chunks::<ADDR_LEN>().0[i])
    }

    /// Contents of page `i`.
    pub fn page(&self, i: usize) -> &[u8] {
        &self.pages[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]
    }
}

// Push: req u32, pid u32, batch u64, vma_start u64, vma_end u64, prot u32, count u32;
// then count × addr u64, count × page.
pub(super) fn decode_push<'a>(h: &Header, r: &mut Reader<'a>) -> Result<Message<'a>, ProtoError> {
    let (req, pid, batch) = (r.u32()?, r.u32()?, r.u64()?);
    let (vma_start, vma_end) = (r.u64()?, r.u64()?);
    let (prot, count) = (r.u32()?, r.u32()? as usize);
    if count == 0 || count > MAX_BATCH || r.remaining() != count * (ADDR_LEN + PAGE_SIZE) {
        return Err(bad_len(h));
    }
    let m = Push {
        req,
        pid,
        batch,
        vma_start,
        vma_end,
        prot,
        addrs: r.bytes(ADDR_LEN * count)?,
        pages: r.rest(),
    };
    check_vma(vma_start, vma_end, prot)?;
    for i in 0..count {
        let a = m.addr(i);
        if !page_aligned(a) || a < vma_start || a >= vma_end {
            return Err(ProtoError::BadField("address"));
        }
    }
    Ok(Message::Push(m))
}

pub(super) fn encode_push<'a>(w: &mut Writer<'_>, m: &Push<'a>) -> Result<Tails<'a>, ProtoError> {
    let n = m.addrs.len() / ADDR_LEN;
    if !m.addrs.len().is_multiple_of(ADDR_LEN)
        || n == 0
        || n > MAX_BATCH
        || m.pages.len() != n * PAGE_SIZE
    {
        return Err(ProtoError::BadField("push batch"));
    }
    w.u32(m.req)?;
    w.u32(m.pid)?;
    w.u64(m.batch)?;
    w.u64(m.vma_start)?;
    w.u64(m.vma_end)?;
    w.u32(m.prot)?;
    w.u32(n as u32)?;
    Ok([m.addrs, m.pages, &[], &[]])
}

/// `PushRefs`: pages of one VMA of process `pid` go back to a member that kept clean copies
/// of them (`Took` with `keep`): each entry names its copy by address and tag, and no page
/// data crosses the link. The member installs all of them or none (`PushAck` status
/// `-ENOENT`: a copy is gone, send the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushRefs<'a> {
    /// Request id, echoed in `PushAck`.
    pub req: u32,
    /// The process at home.
    pub pid: u32,
    /// The batch's number (as in [`Push`]).
    pub batch: u64,
    /// Start of the VMA the pages belong to.
    pub vma_start: u64,
    /// End of that VMA.
    pub vma_end: u64,
    /// `PROT_*` bits of that VMA.
    pub prot: u32,
    /// `count` entries of [`REF_LEN`] bytes.
    pub refs: &'a [u8],
}

impl PushRefs<'_> {
    /// Number of pages.
    pub fn count(&self) -> usize {
        self.refs.len() / REF_LEN
    }

    /// Address and tag of entry `i`.
    pub fn entry(&self, i: usize) -> (u64, u32) {
        let e = &self.refs.as_chunks::<REF_LEN>().0[i];
        let mut a = [0; 8];
        a.copy_from_slice(&e[..8]);
        let mut t = [0; 4];
        t.copy_from_slice(&e[8..12]);
        (u64::from_le_bytes(a), u32::from_le_bytes(t))
    }

    /// Writes entry `i` of a refs buffer.
    pub fn put(buf: &mut [u8], i: usize, addr: u64, tag: u32) {
        let e = &mut buf[i * REF_LEN..(i + 1) * REF_LEN];
        e[..8].copy_from_slice(&addr.to_le_bytes());
        e[8..12].copy_from_slice(&tag.to_le_bytes());
        e[12..].fill(0);
    }
}

/// Checks a batch's VMA fields (`Push`, `PushRefs`).
fn check_vma(vma_start: u64, vma_end: u64, prot: u32) -> Result<(), ProtoError> {
    if vma_start >= vma_end || !page_aligned(vma_end) || prot & !PROT_MASK != 0 {
        return Err(ProtoError::BadField("vma"));
    }
    check_run(vma_start, 0)?;
    if vma_end > USER_END {
        return Err(ProtoError::BadField("vma"));
    }
    Ok(())
}

// PushRefs: req u32, pid u32, batch u64, vma_start u64, vma_end u64, prot u32, count u32;
// then count × (addr u64, tag u32, reserved u32).
pub(super) fn decode_push_refs<'a>(
    h: &Header,
    r: &mut Reader<'a>,
) -> Result<Message<'a>, ProtoError> {
    let (req, pid, batch) = (r.u32()?, r.u32()?, r.u64()?);
    let (vma_start, vma_end) = (r.u64()?, r.u64()?);
    let (prot, count) = (r.u32()?, r.u32()? as usize);
    if count == 0 || count > MAX_BATCH || r.remaining() != count * REF_LEN {
        return Err(bad_len(h));
    }
    let m = PushRefs {
        req,
        pid,
        batch,
        vma_start,
        vma_end,
        prot,
        refs: r.rest(),
    };
    check_vma(vma_start, vma_end, prot)?;
    for i in 0..count {
        let (a, tag) = m.entry(i);
        if !page_aligned(a) || a < vma_start || a >= vma_end {
            return Err(ProtoError::BadField("address"));
        }
        if tag == 0 {
            return Err(ProtoError::BadField("tag"));
        }
        if m.refs[i * REF_LEN + 12..(i + 1) * REF_LEN] != [0; 4] {
            return Err(ProtoError::ReservedBits);
        }
    }
    Ok(Message::PushRefs(m))
}

pub(super) fn encode_push_refs<'a>(
    w: &mut Writer<'_>,
    m: &PushRefs<'a>,
) -> Result<Tails<'a>, ProtoError> {
    let n = m.refs.len() / REF_LEN;
    if !m.refs.len().is_multiple_of(REF_LEN) || n == 0 || n > MAX_BATCH {
        return Err(ProtoError::BadField("push refs"));
    }
    w.u32(m.req)?;
    w.u32(m.pid)?;
    w.u64(m.batch)?;
    w.u64(m.vma_start)?;
    w.u64(m.vma_end)?;
    w.u32(m.prot)?;
    w.u32(n as u32)?;
    Ok([m.refs, &[], &[], &[]])
}

// PushAck: req u32, status i32.
pub(super) fn decode_push_ack(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (req, status) = (r.u32()?, r.i32()?);
    Ok(Message::PushAck {
        req,
        status: check_push_status(status)?,
    })
}

pub(super) fn encode_push_ack(w: &mut Writer<'_>, req: u32, status: i32) -> Result<(), ProtoError> {
    w.u32(req)?;
    w.i32(check_push_status(status)?)
}

/// A `PushAck` status: 0 (all installed), an error (none), or how many pages from the first
/// were installed when the rest could not be (1 to `MAX_BATCH - 1`: a member never takes back
/// pages the process may already have written there).
fn check_push_status(status: i32) -> Result<i32, ProtoError> {
    if status >= MAX_BATCH as i32 {
        return Err(ProtoError::BadField("push status"));
    }
    Ok(status)
}

// Pull: req u32, pid u32, addr u64, count u32, reserved u32.
pub(super) fn decode_pull(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (req, pid, addr, count, reserved) = (r.u32()?, r.u32()?, r.u64()?, r.u32()?, r.u32()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    if count == 0 || count as usize > MAX_BATCH {
        return Err(ProtoError::BadField("count"));
    }
    check_run(addr, u64::from(count))?;
    Ok(Message::Pull {
        req,
        pid,
        addr,
        count,
    })
}

pub(super) fn encode_pull(
    w: &mut Writer<'_>,
    req: u32,
    pid: u32,
    addr: u64,
    count: u32,
) -> Result<(), ProtoError> {
    w.u32(req)?;
    w.u32(pid)?;
    w.u64(addr)?;
    w.u32(count)?;
    w.u32(0) // reserved
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

// Pages: req u32, status i32, addr u64, count u32, reserved u32; then count × page.
pub(super) fn decode_pages<'a>(h: &Header, r: &mut Reader<'a>) -> Result<Message<'a>, ProtoError> {
    let (req, status, addr) = (r.u32()?, r.i32()?, r.u64()?);
    let (count, reserved) = (r.u32()? as usize, r.u32()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    if status > PAGES_BUILD || (status != 0 && count != 0) || (status == 0 && count == 0) {
        return Err(ProtoError::BadField("status"));
    }
    if count > MAX_BATCH || r.remaining() != count * PAGE_SIZE {
        return Err(bad_len(h));
    }
    check_run(addr, count as u64)?;
    Ok(Message::Pages(Pages {
        req,
        status,
        addr,
        pages: r.rest(),
    }))
}

pub(super) fn encode_pages<'a>(w: &mut Writer<'_>, m: &Pages<'a>) -> Result<Tails<'a>, ProtoError> {
    if m.pages.len() & (PAGE_SIZE - 1) != 0 || m.pages.len() > MAX_BATCH * PAGE_SIZE {
        return Err(ProtoError::BadField("pages"));
    }
    w.u32(m.req)?;
    w.i32(m.status)?;
    w.u64(m.addr)?;
    w.u32((m.pages.len() / PAGE_SIZE) as u32)?;
    w.u32(0)?; // reserved
    Ok([m.pages, &[], &[], &[]])
}

// Fetch: req u32, pid u32, addr u64, count u32, reserved u32.
pub(super) fn decode_fetch(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (req, pid, addr) = (r.u32()?, r.u32()?, r.u64()?);
    let (count, reserved) = (r.u32()?, r.u32()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    if count == 0 || count as usize > MAX_BATCH {
        return Err(ProtoError::BadField("count"));
    }
    check_run(addr, u64::from(count))?;
    Ok(Message::Fetch {
        req,
        pid,
        addr,
        count,
    })
}

pub(super) fn encode_fetch(
    w: &mut Writer<'_>,
    req: u32,
    pid: u32,
    addr: u64,
    count: u32,
) -> Result<(), ProtoError> {
    w.u32(req)?;
    w.u32(pid)?;
    w.u64(addr)?;
    w.u32(count)?;
    w.u32(0) // reserved
}

// Discard: pid u32, flags u32, start u64, end u64.
pub(super) fn decode_discard(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (pid, flags, start, end) = (r.u32()?, r.u32()?, r.u64()?, r.u64()?);
    if flags & !DISCARD_UNMAP != 0 {
        return Err(ProtoError::ReservedBits);
    }
    if start >= end || !page_aligned(start) || !page_aligned(end) || end > USER_END {
        return Err(ProtoError::BadField("range"));
    }
    Ok(Message::Discard {
        pid,
        start,
        end,
        unmap: flags & DISCARD_UNMAP != 0,
    })
}

pub(super) fn encode_discard(
    w: &mut Writer<'_>,
    pid: u32,
    start: u64,
    end: u64,
    unmap: bool,
) -> Result<(), ProtoError> {
    w.u32(pid)?;
    w.u32(if unmap { DISCARD_UNMAP } else { 0 })?;
    w.u64(start)?;
    w.u64(end)
}

/// `Took` flag: the sender is the process's home (the receiver holds its shell).
const TOOK_FROM_HOME: u16 = 1;

// Took: pid u32, flags u16, count u16, addr u64, keep u32, reserved u32.
pub(super) fn decode_took(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (pid, flags, count, addr) = (r.u32()?, r.u16()?, r.u16()?, r.u64()?);
    let (keep, reserved) = (r.u32()?, r.u32()?);
    if flags & !TOOK_FROM_HOME != 0 || reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    if count == 0 || count as usize > MAX_BATCH {
        return Err(ProtoError::BadField("count"));
    }
    // Only a home hands pages back by reference: a shell has no clean copies to keep.
    if keep != 0 && flags & TOOK_FROM_HOME == 0 {
        return Err(ProtoError::BadField("keep"));
    }
    check_run(addr, count as u64)?;
    Ok(Message::Took {
        pid,
        from_home: flags & TOOK_FROM_HOME != 0,
        addr,
        count: count as u32,
        keep,
    })
}

pub(super) fn encode_took(
    w: &mut Writer<'_>,
    pid: u32,
    from_home: bool,
    addr: u64,
    count: u32,
    keep: u32,
) -> Result<(), ProtoError> {
    if count == 0 || count as usize > MAX_BATCH || (keep != 0 && !from_home) {
        return Err(ProtoError::BadField("count"));
    }
    w.u32(pid)?;
    w.u16(if from_home { TOOK_FROM_HOME } else { 0 })?;
    w.u16(count as u16)?;
    w.u64(addr)?;
    w.u32(keep)?;
    w.u32(0) // reserved
}

// Cold: req u32, pid u32, count u32, reserved u32.
pub(super) fn decode_cold(r: &mut Reader<'_>) -> Result<Message<'static>, ProtoError> {
    let (req, pid, count, reserved) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    if count == 0 || count as usize > MAX_BATCH {
        return Err(ProtoError::BadField("count"));
    }
    Ok(Message::Cold { req, pid, count })
}

pub(super) fn encode_cold(
    w: &mut Writer<'_>,
    req: u32,
    pid: u32,
    count: u32,
) -> Result<(), ProtoError> {
    if count == 0 || count as usize > MAX_BATCH {
        return Err(ProtoError::BadField("count"));
    }
    w.u32(req)?;
    w.u32(pid)?;
    w.u32(count)?;
    w.u32(0) // reserved
}

/// `ColdAddrs`: the answer to `Cold`: pages of the shell that its process has not used
/// lately, in ascending order, which the home may pull back; or an error status and none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdAddrs<'a> {
    /// The request's id.
    pub req: u32,
    /// 0, or a negative errno.
    pub status: i32,
    /// `count` little-endian page addresses, strictly ascending.
    pub addrs: &'a [u8],
}

impl ColdAddrs<'_> {
    /// Number of addresses.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.addrs.len() / ADDR_LEN
    }

    /// Address `i`.
    #[cfg(test)]
    pub fn addr(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.addrs.as_chunks::<ADDR_LEN>().0[i])
    }

    /// Writes address `i` of an addresses buffer.
    pub fn put(buf: &mut [u8], i: usize, addr: u64) {
        buf[i * ADDR_LEN..(i + 1) * ADDR_LEN].copy_from_slice(&addr.to_le_bytes());
    }
}

/// Checks a list of page addresses: each a user page, strictly ascending.
fn check_ascending(addrs: &[u8]) -> Result<(), ProtoError> {
    let mut prev = None;
    for a in addrs.as_chunks::<ADDR_LEN>().0 {
        let a = u64::from_le_bytes(*a);
        check_run(a, 1)?;
        if prev.is_some_and(|p| p >= a) {
            return Err(ProtoError::BadField("address order"));
        }
        prev = Some(a);
    }
    Ok(())
}

// ColdAddrs: req u32, status i32, count u32, reserved u32; then count × addr u64.
pub(super) fn decode_cold_addrs<'a>(
    h: &Header,
    r: &mut Reader<'a>,
) -> Result<Message<'a>, ProtoError> {
    let (req, status, count, reserved) = (r.u32()?, r.i32()?, r.u32()? as usize, r.u32()?);
    if reserved != 0 {
        return Err(ProtoError::ReservedBits);
    }
    let status = check_status(status)?;
    if status != 0 && count != 0 {
        return Err(ProtoError::BadField("status"));
    }
    if count > MAX_BATCH || r.remaining() != count * ADDR_LEN {
        return Err(bad_len(h));
    }
    let addrs = r.rest();
    check_ascending(addrs)?;
    Ok(Message::ColdAddrs(ColdAddrs { req, status, addrs }))
}

pub(super) fn encode_cold_addrs<'a>(
    w: &mut Writer<'_>,
    m: &ColdAddrs<'a>,
) -> Result<Tails<'a>, ProtoError> {
    let n = m.addrs.len() / ADDR_LEN;
    if !m.addrs.len().is_multiple_of(ADDR_LEN) || n > MAX_BATCH || (m.status != 0 && n != 0) {
        return Err(ProtoError::BadField("addrs"));
    }
    check_status(m.status)?;
    check_ascending(m.addrs)?;
    w.u32(m.req)?;
    w.i32(m.status)?;
    w.u32(n as u32)?;
    w.u32(0)?; // reserved
    Ok([m.addrs, &[], &[], &[]])
}
