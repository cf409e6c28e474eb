// SPDX-License-Identifier: GPL-2.0

//! The members of a stretched process keep in step with its home's mappings.
//!
//! - Home: a syscall that unmaps, replaces or empties memory (`layout::classify`) runs with
//!   the pusher held off, and each member is then told to discard that range; mremap first
//!   brings the range's pages home, so that the move is local (control.rs has pull.rs do it
//!   between `home_syscall_begin` and `home_syscall_run`).
//! - Member: `Discard` drops the shell's pages of the range, and its mapping if the home
//!   unmapped it.
//! - Home: a private file page copied on write (`home_file_cow`) is discarded on every
//!   member, which may have built the file's bytes there; a shell drops the file pages of a
//!   range that becomes writable (`reconcile`). So every page a shell maps is either one the
//!   home's marker names, or the file's bytes that the home's copy still has.
//! - Shell, before it runs the process (`reconcile`): the jump carries the home's mappings.
//!   The shell maps the private anonymous ones it lacks, gives what it keeps the home's
//!   protection, and unmaps what the home does not have in that form. A mapping the shell
//!   lacks (a file mapped at home after the stretch) is never guessed: touching it sends
//!   execution home (`jump::shell_fault_signal`), where the instruction runs again.

use crate::home::{self, Proc};
use crate::layout;
use crate::node::{Node, Peer};
use crate::policy::shell_prot;
use crate::proto::{
    files_in, put_file_entry, put_files_header, put_jump_range, ranges_in, FileMap, Message,
    JUMP_FILE_FIXED, JUMP_RANGE_LEN, MAX_FILE_PATH, MAX_JUMP_FILES, MAX_JUMP_RANGES, PAGE_SIZE,
    RANGE_ANON,
};
use crate::shell::{self, Shell};
use crate::sys::mm::{PROT_EXEC, PROT_WRITE};
use crate::sys::{arch::SyscallRegs, mm, task};
use core::sync::atomic::Ordering::Relaxed;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Home: a layout change of a process whose mm is elastic, classified and begun
/// ([`home_syscall_begin`]): the pusher is held off (`layout_begin`) until
/// [`home_syscall_run`] ends it, or the caller does with `p.layout_done()` if it gives up.
#[must_use]
pub(crate) struct HomeChange {
    /// The process.
    pub(crate) p: Arc<Proc>,
    l: layout::Layout,
}

impl HomeChange {
    /// The range to bring home before the syscall runs (mremap's, so that the move is local).
    pub(crate) fn recall(&self) -> Option<layout::Range> {
        self.l.recall
    }
}

/// Home: syscall `nr` of the current task. `Some` if its process's mm is elastic and the
/// syscall changes its layout: the change has begun. The caller brings [`HomeChange::recall`]
/// home (pull.rs, which this file does not call: a pull may turn into a jump, which carries
/// the layout this file builds), then runs it with [`home_syscall_run`].
pub(crate) fn home_syscall_begin(regs: &SyscallRegs<'_>, nr: i32) -> Option<HomeChange> {
    let p = home::procs().and_then(|procs| procs.by_mm(task::current_mm()))?;
    let l = layout::classify(nr as u32, regs.args(), p.mm().brk())?;
    p.layout_begin();
    Some(HomeChange { p, l })
}

/// Home: runs the syscall of a begun layout change (its result is in `regs`), tells the
/// members to discard what it emptied, and ends the change. True: it ran here.
pub(crate) fn home_syscall_run(c: HomeChange, regs: &mut SyscallRegs<'_>, nr: i32) -> bool {
    let HomeChange { p, l } = c;
    let remote = remote_in(p.mm(), &l);
    // What the entry code would run.
    let ret = regs.run(nr as u32);
    regs.set_return(ret);
    let mut changed = false;
    for d in l.after(ret) {
        changed = true;
        let m = Message::Discard {
            pid: p.pid() as u32,
            start: d.range.start,
            end: d.range.end,
            unmap: d.unmap,
        };
        for peer in p.members() {
            // A member that cannot hear this is lost anyway, and the process with it.
            let _ = peer.send(&m);
        }
    }
    if changed {
        p.sub_remote(remote as i64);
    } else if let Some(range) = l.emptied_on_error(ret) {
        changed = discard_emptied(&p, range.start, range.end);
        let left = remote_in(p.mm(), &l);
        p.sub_remote(remote.saturating_sub(left) as i64);
    }
    if changed || l.recall.is_some() {
        p.counters().layout_ops.fetch_add(1, Relaxed);
    }
    p.layout_done();
    true
}

/// Home: a page of a private file mapping of process `vma`'s was just copied on write at
/// `addr` (`wp_page_copy`, `do_cow_fault`): a write, or a FOLL_FORCE write (/proc/PID/mem,
/// ptrace) into a read-only mapping. A member may map the file's bytes there, built from its
/// own page cache with no marker here (a read-only file page is answered "build it"), and
/// would read them in place of this copy: each member drops its page there. No member owns
/// the page (the home's entry was empty or the file's page, not a marker naming one), so
/// nothing is lost; the Discard goes on the connection ahead of any later Jump.
pub(crate) fn home_file_cow(vma: mm::Vma<'_>, addr: u64) {
    let Some(p) = home::procs().and_then(|procs| procs.by_mm(vma.mm_id())) else {
        return;
    };
    let m = Message::Discard {
        pid: p.pid() as u32,
        start: addr,
        end: addr + PAGE_SIZE as u64,
        unmap: false,
    };
    for peer in p.members() {
        // As in `home_syscall_run`: a member that cannot hear this is lost anyway (a failed
        // send closes its connection), and the process with it.
        let _ = peer.send(&m);
    }
}

/// Runs of pages a failed madvise is checked for at most; past them the process is ended.
const MAX_EMPTIED_RUNS: usize = 4096;

/// Home, after a madvise that failed but may have emptied part of `[start, end)`: members
/// drop their copies wherever the home holds no page of theirs now (a member has data only
/// where the home's entry names it, so a copy elsewhere is stale and would be read away from
/// home instead of the zeros the home has). True if a Discard was sent.
fn discard_emptied(p: &Proc, start: u64, end: u64) -> bool {
    let mut runs: KVec<(u64, u64)> = KVec::new();
    let mut complete = true;
    if let Some(users) = p.mm().users() {
        let lock = users.read();
        'vmas: for v in lock.vmas_in(start, end) {
            let (s, e) = (v.start().max(start), v.end().min(end));
            let mut run: Option<u64> = None;
            let mut a = s;
            while a <= e {
                let free = a < e && v.remote_count(a, a + PAGE_SIZE as u64) == 0;
                match (free, run) {
                    (true, None) => run = Some(a),
                    (false, Some(r)) => {
                        if runs.len() >= MAX_EMPTIED_RUNS || runs.push((r, a), GFP_KERNEL).is_err()
                        {
                            complete = false;
                            break 'vmas;
                        }
                        run = None;
                    }
                    _ => {}
                }
                a += PAGE_SIZE as u64;
            }
        }
    }
    // Sent with no lock held.
    for &(s, e) in runs.iter() {
        let m = Message::Discard {
            pid: p.pid() as u32,
            start: s,
            end: e,
            unmap: false,
        };
        for peer in p.members() {
            // As in `home_syscall_run`: a member that cannot hear this is lost anyway (a
            // failed send closes its connection), and the process with it.
            let _ = peer.send(&m);
        }
    }
    if !complete {
        pr_err!(
            "pid {}: a failed madvise left more than {} runs of pages to drop on its other nodes; \
             their copies could be read in place of its own: killing it\n",
            p.pid(),
            MAX_EMPTIED_RUNS
        );
        crate::sys::task::TaskRef::current().signal(kernel::bindings::SIGKILL);
    }
    !runs.is_empty()
}

/// Remote pages in the ranges the syscall may discard (they are gone when it succeeds).
fn remote_in(mm: &mm::MmRef, l: &layout::Layout) -> u64 {
    let Some(users) = mm.users() else { return 0 };
    let lock = users.read();
    let mut n = 0;
    for r in l.discard.iter().flatten().map(|d| d.range) {
        n += lock
            .vmas_in(r.start, r.end)
            .map(|v| v.remote_count(r.start, r.end))
            .sum::<u64>();
    }
    n
}

/// Member: the home discarded `[start, end)` of process `pid` (`unmap`: unmapped it).
pub(crate) fn discard(peer: &Peer, pid: u32, start: u64, end: u64, unmap: bool) -> Result {
    let shell = shell::shells()
        .and_then(|s| s.find(peer.id, pid))
        .ok_or(ESRCH)?;
    // Whatever the home has there now, clean copies of what it had are no use.
    shell.lent.lock().drop_clean(start, end);
    let users = shell.mm.users().ok_or(ESRCH)?;
    if shell.running() {
        if unmap {
            // The process runs here, so its home cannot be in a syscall.
            return Err(EBUSY);
        }
        // A page copied on write at home by someone else (a /proc/PID/mem writer) while
        // the process runs here: only the file's bytes built here go, never data the home
        // gave (which its markers name). A fetch of it answered "build it" just before may
        // map them after this, so they go again before the process runs here next.
        shell.add_file_drop(start, end);
        let lock = users.read();
        for v in lock.vmas_in(start, end) {
            v.drop_file_pages(start, end);
        }
        return Ok(());
    }
    let unmapped = if unmap {
        users.with_mm(|| mm::unmap(start, end - start))
    } else {
        Ok(())
    };
    // Without the unmap (or if it failed: no memory to split a VMA), the pages still go; an
    // empty PTE in the mapping left means "the home's", which is right.
    if !unmap || unmapped.is_err() {
        let lock = users.read();
        for v in lock.vmas_in(start, end) {
            v.zap(start, end);
        }
    }
    unmapped
}

/// One mapping: where, `PROT_*` bits, and whether it is private anonymous memory.
#[derive(Clone, Copy)]
struct Map {
    start: u64,
    end: u64,
    prot: u32,
    anon: bool,
}

/// What a jump carries of the home's mappings: the ranges and the file section.
pub(crate) struct HomeMaps {
    pub(crate) ranges: KVVec<u8>,
    pub(crate) files: KVVec<u8>,
}

/// Home: its mappings for a jump (adjacent anonymous ones of the same protection merged),
/// and the files behind its private file mappings (at most `MAX_JUMP_FILES`; the shell
/// leaves the others out, and touching them brings execution home). `E2BIG` if the ranges
/// do not fit in a jump (the process then stays home).
pub(crate) fn home_ranges(
    mm: &mm::MmRef,
    hashes: &Mutex<crate::home::FileHashes>,
) -> Result<HomeMaps> {
    let users = mm.users().ok_or(ESRCH)?;
    let lock = users.read();
    let mut out = HomeMaps {
        ranges: KVVec::new(),
        files: KVVec::from_elem(0u8, 4, GFP_KERNEL)?,
    };
    let mut last: Option<Map> = None;
    let mut nfiles = 0u16;
    fn flush(m: Map, out: &mut KVVec<u8>) -> Result {
        if out.len() / JUMP_RANGE_LEN == MAX_JUMP_RANGES {
            return Err(E2BIG);
        }
        let mut r = [0u8; JUMP_RANGE_LEN];
        let kind = if m.anon { RANGE_ANON } else { 0 };
        put_jump_range(&mut r, m.start, m.end, m.prot | kind);
        out.extend_from_slice(&r, GFP_KERNEL)?;
        Ok(())
    }
    let mut path = [0u8; MAX_FILE_PATH + 1];
    for v in lock.vmas_in(0, u64::MAX) {
        let m = Map {
            start: v.start(),
            end: v.end(),
            prot: v.prot(),
            anon: v.anon_private(),
        };
        match &mut last {
            Some(l) if m.anon && l.anon && l.end == m.start && l.prot == m.prot => {
                l.end = m.end;
                continue;
            }
            _ => {
                if let Some(l) = last.replace(m) {
                    flush(l, &mut out.ranges)?;
                }
            }
        }
        if m.anon || usize::from(nfiles) == MAX_JUMP_FILES {
            continue;
        }
        // This range is flushed next: its number is the count of those flushed before.
        let Some((len, size, mtime_ns)) = v.file(&mut path) else {
            continue;
        };
        // Its contents, by which the shell knows its own file is this one (a path, size and
        // mtime can be planted there). Hashed once per file and version; one that cannot be
        // (past 64 MiB) is not named, and stays home.
        let (dev, ino) = v.file_id();
        let key = (dev, ino, size, mtime_ns);
        let known = hashes.lock().get(key);
        let sha256 = match known {
            Some(h) => h,
            None => match v.file_sha256() {
                Ok(h) => {
                    hashes.lock().put(key, h);
                    h
                }
                Err(_) => continue,
            },
        };
        let e = FileMap {
            range: (out.ranges.len() / JUMP_RANGE_LEN) as u16,
            pgoff: v.pgoff(),
            size,
            mtime_ns,
            sha256,
            path: &path[..len],
        };
        let at = out.files.len();
        out.files.extend_from_slice(
            &[0u8; JUMP_FILE_FIXED + MAX_FILE_PATH][..JUMP_FILE_FIXED + len],
            GFP_KERNEL,
        )?;
        put_file_entry(&mut out.files[at..], &e);
        nfiles += 1;
    }
    if let Some(l) = last {
        flush(l, &mut out.ranges)?;
    }
    if nfiles == 0 {
        out.files = KVVec::new();
    } else {
        put_files_header(&mut out.files, nfiles);
    }
    Ok(out)
}

// Thousands of mappings: vmalloc-backed (`KVVec`), never one large kmalloc.
fn parse(ranges: &[u8]) -> Result<KVVec<Map>> {
    let mut v = KVVec::with_capacity(ranges.len() / JUMP_RANGE_LEN, GFP_KERNEL)?;
    for (start, end, prot) in ranges_in(ranges) {
        let anon = prot & RANGE_ANON != 0;
        v.push(
            Map {
                start,
                end,
                prot: prot & 7,
                anon,
            },
            GFP_KERNEL,
        )?;
    }
    Ok(v)
}

/// The shell's own mappings.
fn shell_maps(users: &mm::MmUsers<'_>) -> Result<KVVec<Map>> {
    let lock = users.read();
    let mut v = KVVec::new();
    for x in lock.vmas_in(0, u64::MAX) {
        v.push(
            Map {
                start: x.start(),
                end: x.end(),
                prot: x.prot(),
                anon: x.anon_private(),
            },
            GFP_KERNEL,
        )?;
    }
    Ok(v)
}

/// Calls `f` for each piece of `s` with the home mapping over it (`None`: the home has
/// nothing there). `home` is ascending and disjoint (the decoder checked), so the first
/// overlap is found by binary search: a reconcile stays O(n log n) with thousands of ranges.
fn pieces(s: &Map, home: &[Map], mut f: impl FnMut(u64, u64, Option<&Map>) -> Result) -> Result {
    let mut at = s.start;
    let first = home.partition_point(|h| h.end <= s.start);
    for h in home[first..].iter().take_while(|h| h.start < s.end) {
        if h.start > at {
            f(at, h.start, None)?;
        }
        let (a, b) = (at.max(h.start), s.end.min(h.end));
        f(a, b, Some(h))?;
        at = b;
    }
    if at < s.end {
        f(at, s.end, None)?;
    }
    Ok(())
}

/// Shell, in its own task before it runs the process: match the home's mappings `ranges`
/// and `files` (as carried by a jump).
pub(crate) fn reconcile(node: &Node, shell: &Shell, ranges: &[u8], files: &[u8]) -> Result {
    let home = parse(ranges)?;
    let users = shell.mm.users().ok_or(ESRCH)?;
    // File pages the home copied on write while the process last ran here (`discard`).
    if let Some((start, end)) = shell.take_file_drops() {
        let lock = users.read();
        for v in lock.vmas_in(start, end) {
            v.drop_file_pages(start, end);
        }
    }
    // What the home does not have in the same form goes.
    let mine = shell_maps(&users)?;
    for s in mine.iter() {
        pieces(s, &home, |a, b, h| match h {
            Some(h) if h.anon == s.anon => Ok(()),
            _ => users.with_mm(|| mm::unmap(a, b - a)),
        })?;
    }
    // The home's private file mappings the shell lacks: the same file (by the shell's own
    // permissions), or nothing.
    let mut path = [0u8; MAX_FILE_PATH + 1];
    for f in files_in(files) {
        let Some(h) = home.get(usize::from(f.range)) else {
            continue;
        };
        if mine.iter().any(|s| s.start < h.end && s.end > h.start) {
            continue;
        }
        path[..f.path.len()].copy_from_slice(f.path);
        path[f.path.len()] = 0;
        let p = &path[..=f.path.len()];
        let r = users.with_mm(|| {
            mm::map_file(
                p,
                f.size,
                f.mtime_ns,
                &f.sha256,
                h.start,
                h.end - h.start,
                shell_prot(false, h.prot),
                f.pgoff,
            )
        });
        let (mine, node_wide) = match r {
            Ok(()) => (&shell.counters.mapped_files, &node.stats.shell_files_mapped),
            Err(_) => (
                &shell.counters.unmapped_files,
                &node.stats.shell_files_missing,
            ),
        };
        mine.fetch_add(1, Relaxed);
        crate::stats::Stats::inc(node_wide);
    }
    for h in home.iter().filter(|h| h.anon) {
        cover(&users, h.start, h.end, h.prot)?;
    }
    // What stays takes the home's protection, as far as a shell may have it, and never
    // gains PROT_EXEC: a mapping that was writable may hold pages a peer sent.
    for s in shell_maps(&users)?.iter() {
        let want = |h: &Map| shell_prot(s.anon, h.prot) & (s.prot | !PROT_EXEC);
        pieces(s, &home, |a, b, h| match h {
            Some(h) if want(h) != s.prot => {
                if !s.anon && s.prot & PROT_WRITE == 0 && want(h) & PROT_WRITE != 0 {
                    // A private file range becoming writable: the file's pages built here
                    // while it was read-only (no marker at home) go first, or a write here
                    // would copy one with nobody at home knowing (the write lost at the
                    // next jump). Faults then ask the home, which marks what it gives.
                    let lock = users.read();
                    for v in lock.vmas_in(a, b) {
                        v.drop_file_pages(a, b);
                    }
                }
                let r = users.with_mm(|| mm::protect(a, b - a, want(h)));
                // Special mappings (the vDSO) may refuse; private memory must not.
                if s.anon {
                    r
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        })?;
    }
    Ok(())
}

/// Makes sure `[start, end)` is covered by VMAs in the shell, mapping anonymous memory into
/// the gaps (the home process grew its heap or mapped more since the stretch), never
/// executable (`policy::shell_prot`).
pub(crate) fn cover(users: &mm::MmUsers<'_>, start: u64, end: u64, prot: u32) -> Result {
    let prot = shell_prot(true, prot);
    let mut gaps = [(0u64, 0u64); 8];
    let mut n = 0;
    {
        let lock = users.read();
        let mut at = start;
        while at < end && n < gaps.len() {
            match lock.vma_from(at) {
                Some(v) if v.start() <= at => at = v.end(),
                Some(v) => {
                    let stop = v.start().min(end);
                    gaps[n] = (at, stop);
                    n += 1;
                    at = stop;
                }
                None => {
                    gaps[n] = (at, end);
                    n += 1;
                    at = end;
                }
            }
        }
    }
    for &(a, b) in &gaps[..n] {
        users.with_mm(|| mm::map_fixed_anon(a, b - a, prot))?;
    }
    Ok(())
}
