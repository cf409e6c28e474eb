// SPDX-License-Identifier: GPL-2.0

//! Push: under memory pressure, or over a process's local budget, cold anonymous pages move
//! to a member node with room.
//!
//! - Home: the pusher thread ([`start`]) wakes every 20 ms, or at once when a throttled
//!   allocation kicks it ([`throttle`]), stretches marked processes that need it and pushes
//!   batches of cold pages ([`push_batch`]: a CLOCK sweep in the page table that leaves an
//!   in-flight marker; `PushAck` settles it into an owner marker, a failure restores the
//!   page). Batches go round robin over the members.
//! - Member: [`serve_push`] installs a batch into the shell's address space.

use crate::home::{self, Proc};
use crate::lent;
use crate::link::Conn;
use crate::node::{peer_warn, Node, Peer};
use crate::ownership::{self, retry, PushGaveUp};
use crate::policy::{pages_to_push, Watermarks};
use crate::proto::{Message, Push, PushRefs, MAX_BATCH, PAGE_SIZE, REF_LEN};
use crate::rpc::{self, Answer, CallError};
use crate::shell;
use crate::sys::{kthread, mm, task, time, trace};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{fmt, prelude::*, rbtree::RBTreeNode};

/// How long a push waits for its acknowledgement.
const PUSH_TIMEOUT_MS: u32 = 10_000;
/// Most pages pushed for one process per pusher round.
const PUSH_ROUND: u64 = 512;
/// Tries (and the pause between them) to put a page of a refused push back, before the
/// last ones of `install_or_poison`.
const RESTORE_ROUNDS: u32 = 25;
const RESTORE_RETRY_MS: u32 = 20;
/// The pusher's period when nobody kicks it.
const PUSH_INTERVAL_MS: u32 = 20;

/// Called before an elastic process (address space `id`) allocates an anonymous page: if it
/// is stretched and over its budget, the pusher makes room first (`Procs::wait_for_budget`);
/// marked and over it, the pusher is woken to stretch it; if memory is short, wake the pusher
/// and wait (bounded) for room, rather than meet the OOM killer.
pub(crate) fn throttle(id: mm::MmId) {
    let Some(procs) = home::procs() else { return };
    match procs.by_mm(id) {
        Some(p) => procs.wait_for_budget(&p),
        None => kick_stretch(procs),
    }
    let (total, avail) = mm::memory_pages();
    let wm = Watermarks::for_total(total);
    if avail >= wm.throttle {
        return;
    }
    procs.kick();
    let deadline = time::now_ns() + 2_000_000_000;
    while time::now_ns() < deadline && !task::fatal_signal_pending() {
        time::sleep_ms_uninterruptible(5);
        if mm::memory_pages().1 >= wm.throttle {
            break;
        }
    }
}

/// The faulting task is marked elastic and has passed its budget or comes near its memory
/// cgroup's limit: the pusher is woken to stretch it now rather than at its next round, and
/// the task waits for that stretch before it runs user code again
/// (`Marks::hold_until_stretched`). The fault itself does not wait: a stretch reads the
/// process's memory and may wait for it, so waiting here could only end by a timeout (tried:
/// a 32 MiB lsearch took 73 s instead of 8).
fn kick_stretch(procs: &home::Procs) {
    let Some(marks) = crate::stretch::marks() else {
        return;
    };
    let me = task::TaskRef::current();
    let Some(budget) = marks.budget_of(&me) else {
        return;
    };
    let over = me.mm().is_some_and(|m| {
        (budget > 0 && m.anon_pages() > budget)
            || m.memcg_room().is_some_and(|r| r < home::MEMCG_MARGIN)
    });
    if over {
        procs.kick();
        marks.hold_until_stretched(&me);
    }
}

/// Pushes up to `want` cold pages of `p` to its peer. Returns how many went.
fn push_some(node: &Node, p: &Proc, want: u64, pages: &mut [u8]) -> u64 {
    let Some(users) = p.mm().users() else {
        return 0;
    };
    let mut pushed = 0;
    while pushed < want && !p.is_dead() {
        // A layout change either sees this batch and waits for it, or this batch sees the
        // change and stays out of its way (`PushGate`).
        let n = if p.push_gate().begin_batch() {
            push_batch(
                node,
                p,
                &users,
                (want - pushed).min(MAX_BATCH as u64) as usize,
                pages,
            )
        } else {
            None
        };
        p.push_gate().finish_batch();
        match n {
            Some(n) => pushed += n,
            None => break,
        }
    }
    pushed
}

/// Pushes one batch of at most `batch` pages; `None` if none went. The pages the target keeps
/// a clean copy of go first, by reference (`PushRefs`), the others with their data.
fn push_batch(
    node: &Node,
    p: &Proc,
    users: &mm::MmUsers<'_>,
    batch: usize,
    pages: &mut [u8],
) -> Option<u64> {
    let mut addrs = [0u64; MAX_BATCH];
    let target = p.push_target()?;
    let b = evict_batch(p, users, target.id, &mut addrs[..batch], pages)?;
    let mut refs = [0u8; MAX_BATCH * REF_LEN];
    let k = clean_first(p, target.id, &mut addrs[..b.n], pages, &mut refs);
    let mut pushed = None;
    for (range, refs) in [(0..k, Some(&refs[..k * REF_LEN])), (k..b.n, None)] {
        if range.is_empty() {
            continue;
        }
        let part = Batch {
            n: range.len(),
            ..b
        };
        let pages = &pages[range.start * PAGE_SIZE..range.end * PAGE_SIZE];
        if let Some(n) = push_part(node, p, users, &target, &part, &addrs[range], pages, refs) {
            pushed = Some(pushed.unwrap_or(0) + n);
        }
    }
    pushed
}

/// Sends one part of a batch, by reference (`refs`) or with its data, and settles its pages.
#[allow(clippy::too_many_arguments)]
fn push_part(
    node: &Node,
    p: &Proc,
    users: &mm::MmUsers<'_>,
    target: &Peer,
    b: &Batch,
    addrs: &[u64],
    pages: &[u8],
    refs: Option<&[u8]>,
) -> Option<u64> {
    // One number for every try of this part, by reference or with data: a member installs
    // it once.
    let number = p.next_push_batch();
    let mut sent = None;
    if let Some(refs) = refs {
        let r = send_batch(p, target, b, number, Body::Refs(refs));
        // Refused: a copy is gone there (or it refused for another reason, which the data
        // push then meets too); the data goes instead.
        if !matches!(r.0, Pushed::Refused(_)) {
            sent = Some((r, true));
        }
    }
    let ((outcome, tries), by_ref) = sent.unwrap_or_else(|| {
        let r = send_batch(p, target, b, number, Body::Data(addrs, pages));
        (r, false)
    });
    let settled = settle_batch(p, users, target.id, outcome, addrs, pages);
    // A member short of memory (its cgroup for us full) gets no push for a while
    // (`RoomPause`); a whole batch taken ends that.
    match outcome {
        Pushed::Taken => target.room.lock().took(),
        Pushed::Prefix(_) | Pushed::Refused(true) => target.room.lock().refused(time::now_ns()),
        Pushed::Refused(false) | Pushed::Unknown => {}
    }
    let end = outcome.end();
    let taken = (0..b.n).filter(|i| end.taken(*i)).count();
    trace::push(
        p.pid() as u32,
        target.id,
        // The pages it moved, or those it failed to.
        if taken > 0 { taken } else { b.n } as u32,
        match outcome {
            Pushed::Taken | Pushed::Prefix(_) => trace::PushOutcome::Taken,
            Pushed::Refused(_) => trace::PushOutcome::Refused,
            Pushed::Unknown => trace::PushOutcome::Unknown,
        },
    );
    if taken > 0 {
        let mut t = p.transfers();
        for a in &addrs[..taken] {
            t.kept.forget(*a);
        }
        if by_ref {
            p.counters().pushed_clean.fetch_add(taken as u64, Relaxed);
        }
    }
    batch_ended(node, p, target.id, b.n, outcome, tries, settled)
}

/// Moves the pages of the batch that can go by reference to its front (addresses and data
/// alike) and returns how many there are: those `target` keeps a clean copy of (a record in
/// `Kept`) that still hash to what was installed from that copy. Fills their `PushRefs`
/// entries in `refs`.
fn clean_first(
    p: &Proc,
    target: u16,
    addrs: &mut [u64],
    pages: &mut [u8],
    refs: &mut [u8],
) -> usize {
    let mut kept = [None; MAX_BATCH];
    {
        let t = p.transfers();
        for (i, a) in addrs.iter().enumerate() {
            kept[i] = t.kept.get(*a).filter(|r| r.node == target);
        }
    }
    // Hashed without the lock: the pages are this batch's, in flight.
    let mut k = 0;
    for i in 0..addrs.len() {
        let Some(r) = kept[i] else { continue };
        if lent::page_hash(&pages[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]) != r.hash {
            continue;
        }
        if i != k {
            addrs.swap(i, k);
            kept.swap(i, k);
            let (front, back) = pages.split_at_mut(i * PAGE_SIZE);
            front[k * PAGE_SIZE..(k + 1) * PAGE_SIZE].swap_with_slice(&mut back[..PAGE_SIZE]);
        }
        PushRefs::put(refs, k, addrs[k], r.tag);
        k += 1;
    }
    k
}

/// A batch taken out of the page table: `n` pages of the VMA `[start, end)` with protection
/// `prot`, their addresses and data in the caller's buffers, each left in flight.
#[derive(Clone, Copy)]
struct Batch {
    n: usize,
    start: u64,
    end: u64,
    prot: u32,
}

/// Step 1 of a batch: the CLOCK sweep from the process's clock hand over its private
/// anonymous VMAs, evicting up to `addrs.len()` cold pages of one VMA for `peer_id` (each
/// left as an in-flight marker, its data in `pages`). `None`: nothing cold in a full turn
/// (or in 1 GiB scanned).
fn evict_batch(
    p: &Proc,
    users: &mm::MmUsers<'_>,
    peer_id: u16,
    addrs: &mut [u64],
    pages: &mut [u8],
) -> Option<Batch> {
    let lock = users.read();
    let mut cur = p.clock_hand();
    let mut wrapped = false;
    let mut scanned = 0u64;
    loop {
        let Some(v) = lock.vma_from(cur) else {
            if wrapped {
                return None;
            }
            wrapped = true;
            cur = 0;
            continue;
        };
        if !v.anon_private() {
            // Only anonymous memory moves: a shell mirrors it exactly, while a file
            // mapping (a library's data) may not exist there at all.
            cur = v.end();
            continue;
        }
        let from = cur.max(v.start());
        let (n, next) = v.evict(from, v.end(), peer_id, addrs, pages);
        scanned += (next.saturating_sub(from)) / PAGE_SIZE as u64;
        cur = if n == 0 { v.end() } else { next };
        p.set_clock_hand(cur);
        if n > 0 {
            return Some(Batch {
                n,
                start: v.start(),
                end: v.end(),
                prot: v.prot(),
            });
        }
        if scanned > 1 << 18 {
            return None;
        }
    }
}

/// What a batch carries: its pages' data, or references to clean copies at the member.
#[derive(Clone, Copy)]
enum Body<'a> {
    Data(&'a [u64], &'a [u8]),
    Refs(&'a [u8]),
}

/// Step 2: sends the batch (`Push` or `PushRefs`, number `number` in every try) until the
/// member answers or the tries run out. Returns how it ended and after how many tries.
fn send_batch(p: &Proc, target: &Peer, b: &Batch, number: u64, body: Body<'_>) -> (Pushed, u32) {
    let mut wire = [0u8; MAX_BATCH * 8];
    let n = b.n;
    if let Body::Data(addrs, _) = body {
        for (i, a) in addrs.iter().enumerate() {
            wire[i * 8..i * 8 + 8].copy_from_slice(&a.to_le_bytes());
        }
    }
    let push = |req| match body {
        Body::Data(_, pages) => Message::Push(Push {
            req,
            pid: p.pid() as u32,
            batch: number,
            vma_start: b.start,
            vma_end: b.end,
            prot: b.prot,
            addrs: &wire[..n * 8],
            pages: &pages[..n * PAGE_SIZE],
        }),
        Body::Refs(refs) => Message::PushRefs(PushRefs {
            req,
            pid: p.pid() as u32,
            batch: number,
            vma_start: b.start,
            vma_end: b.end,
            prot: b.prot,
            refs,
        }),
    };
    // Once a try went unanswered the member may have the batch: a later try that cannot
    // even be sent proves nothing.
    let mut unanswered = false;
    let again = |tries, e| match e {
        // The member took nothing (it takes back what it installed before refusing). A
        // refusal of a repeat means it did not take this try; an earlier one it may have
        // taken would have been acknowledged instead (a repeat is never installed twice).
        CallError::Refused(_) => false,
        CallError::NotSent(_) if !unanswered => false,
        CallError::NotSent(_) | CallError::NoAnswer(_) if retry(tries) && !p.is_dead() => {
            unanswered = true;
            time::sleep_ms(10);
            true
        }
        _ => false,
    };
    let mut tries = 0;
    let r = rpc::call_retrying(target, 0, PUSH_TIMEOUT_MS, &mut tries, push, again);
    let outcome = match r {
        Ok(Answer::Installed(k)) => Pushed::Prefix(k),
        Ok(_) => Pushed::Taken,
        Err(CallError::Refused(e)) => Pushed::Refused(e == ENOMEM),
        Err(CallError::NotSent(_)) if !unanswered => Pushed::Refused(false),
        Err(_) => Pushed::Unknown,
    };
    (outcome, tries)
}

/// Step 3: settles each page of the batch by how it ended: its owner marker (taken), the
/// page back over its in-flight marker (refused), or poison (unknown); a batch the member
/// installed in part, the first pages as taken and the rest as refused. Returns how many
/// pages were settled as taken (a page whose VMA changed meanwhile is not).
fn settle_batch(
    p: &Proc,
    users: &mm::MmUsers<'_>,
    peer_id: u16,
    outcome: Pushed,
    addrs: &[u64],
    pages: &[u8],
) -> i64 {
    let mut settled = 0;
    let lock = users.read();
    for (i, a) in addrs.iter().enumerate() {
        if let Some(v) = lock.vma(*a) {
            let marker = mm::marker(peer_id, true);
            let taken = outcome.end().taken(i);
            let r = match outcome {
                _ if taken => v.settle(*a, peer_id),
                // Neither copy can be trusted to be the newest (ownership::push_gave_up).
                Pushed::Unknown => v.poison(*a, marker),
                _ => {
                    // The page comes back over its in-flight marker. This buffer is its
                    // only copy: a failing install is tried for longer than a fault
                    // would (the pusher may wait), and only then is the page poisoned.
                    let page = &pages[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                    let mut r = v.install(*a, marker, page, false);
                    for _ in 0..RESTORE_ROUNDS {
                        if !matches!(r, Err(e) if e == ENOMEM) {
                            break;
                        }
                        time::sleep_ms(RESTORE_RETRY_MS);
                        r = v.install(*a, marker, page, false);
                    }
                    match r {
                        Ok(()) => Ok(()),
                        Err(_) => {
                            let what = format_args!("of a failed push to node {peer_id}");
                            home::install_or_poison(p, &v, *a, marker, page, what)
                        }
                    }
                }
            };
            settled += (taken && r.is_ok()) as i64;
        }
    }
    settled
}

/// Step 4: what the batch's end means for the process: counted (taken), logged (refused),
/// or the process stopped with SIGBUS (unknown: its data may be lost). The number of pages
/// pushed, or `None`.
fn batch_ended(
    node: &Node,
    p: &Proc,
    peer_id: u16,
    n: usize,
    outcome: Pushed,
    tries: u32,
    settled: i64,
) -> Option<u64> {
    let n = match outcome {
        Pushed::Taken => n,
        Pushed::Prefix(k) => {
            peer_warn!(
                node,
                "push of {} pages of pid {} to node {}: it installed the first {}; kept the rest\n",
                n,
                p.pid(),
                peer_id,
                k
            );
            // A peer's count, at most the batch (more would be all of it).
            (k as usize).min(n)
        }
        Pushed::Refused(_) => {
            peer_warn!(
                node,
                "push of {} pages of pid {} to node {} failed; kept them\n",
                n,
                p.pid(),
                peer_id
            );
            return None;
        }
        Pushed::Unknown => {
            let PushGaveUp::Kill = ownership::push_gave_up();
            p.counters().lost.fetch_add(n as u64, Relaxed);
            pr_err!(
                "pid {} ({}): push of {} pages to node {} not acknowledged after {} tries; killing it with SIGBUS\n",
                p.pid(),
                p.comm(),
                n,
                peer_id,
                tries
            );
            p.signal(kernel::bindings::SIGBUS);
            return None;
        }
    };
    p.add_remote(settled);
    p.counters().pushes.fetch_add(1, Relaxed);
    p.counters().pushed.fetch_add(n as u64, Relaxed);
    Some(n as u64)
}

/// How a push batch ended.
#[derive(Clone, Copy)]
enum Pushed {
    /// The member has it.
    Taken,
    /// The member has its first pages (this many); the rest could not be installed there.
    Prefix(u32),
    /// The member refused it (and kept none), or it never left; `true`: for want of memory.
    Refused(bool),
    /// No answer after every try: the member may have it.
    Unknown,
}

impl Pushed {
    /// Which pages are the member's now.
    fn end(self) -> ownership::PushEnd {
        match self {
            Self::Taken => ownership::PushEnd::All,
            Self::Prefix(k) => ownership::PushEnd::Prefix(k),
            Self::Refused(_) | Self::Unknown => ownership::PushEnd::None,
        }
    }
}

/// The pusher: every 20 ms, or at once when a throttled fault kicks it, stretches marked
/// processes that need it and pushes cold pages of stretched ones.
fn pusher(node: &'static Node) {
    let Some(procs) = home::procs() else { return };
    let Ok(mut pages) = KVVec::from_elem(0u8, MAX_BATCH * PAGE_SIZE, GFP_KERNEL) else {
        pr_err!("pusher: no memory for its buffer; pushing disabled\n");
        return;
    };
    let mut episode = false;
    loop {
        procs.wait_kick(PUSH_INTERVAL_MS);
        let (total, avail) = mm::memory_pages();
        let wm = Watermarks::for_total(total);
        if avail < wm.low && crate::lent::clean_pages() > 0 {
            // Clean copies are a cache for our peers' processes: the first memory to give.
            if let Some(s) = shell::shells() {
                s.clear_clean();
            }
        }
        crate::stretch::auto_stretch(node, avail < wm.low);
        let mut any = false;
        procs.for_each(|p| {
            if p.is_dead() {
                return;
            }
            // Away with its budget held where it runs (reclaim.rs), pages past it come back
            // here, and none go there: they would only come back.
            if let Some(m) = p.budget_held_at().and_then(|at| p.member(at)) {
                let excess = p.budget_excess_away();
                if excess > 0 {
                    p.reclaim_round(crate::reclaim::reclaim_some(
                        node,
                        p,
                        &m,
                        excess.min(PUSH_ROUND),
                    ));
                }
                return;
            }
            let avail = mm::memory_pages().1;
            let want = pages_to_push(p.local_limit(), p.mm().anon_pages(), avail, &wm, episode);
            if want > 0 {
                any = true;
                p.push_round(push_some(node, p, want.min(PUSH_ROUND), &mut pages));
            }
        });
        let avail = mm::memory_pages().1;
        episode = any && avail < wm.high;
    }
}

/// Starts the pusher thread.
pub(crate) fn start(node: &'static Node) -> Result {
    kthread::spawn(fmt!("eos-push"), node, pusher)
}

/// Member: a `Push` from the home; answers `PushAck`. A batch is installed once: a repeat
/// (its acknowledgement was late) or an older batch is acknowledged only, since the process
/// may have run here on those pages and given them away since.
pub(crate) fn serve_push(node: &Node, peer: &Peer, conn: &Conn, p: &Push<'_>) -> Result {
    let status = ack_status(node, peer, p.pid, p.count(), "", install_batch(peer, p));
    conn.send(&Message::PushAck { req: p.req, status })
}

/// The `PushAck` status of an install of `count` pages (`what`: how they came), logged
/// unless it installed them all; a `PushRefs` whose copy is gone (`ENOENT`) is not logged
/// (the home sends the data).
fn ack_status(node: &Node, peer: &Peer, pid: u32, count: usize, what: &str, r: Result<i32>) -> i32 {
    match r {
        Ok(0) => 0,
        Ok(k) => {
            peer_warn!(
                node,
                "push{} for pid {} from node {}: the first {} of {} pages installed, the rest refused\n",
                what,
                pid,
                peer.id,
                k,
                count
            );
            k
        }
        Err(e) if e == ENOENT && !what.is_empty() => e.to_errno(),
        Err(e) => {
            peer_warn!(
                node,
                "push{} for pid {} from node {} failed: {:?}\n",
                what,
                pid,
                peer.id,
                e
            );
            e.to_errno()
        }
    }
}

fn install_batch(peer: &Peer, p: &Push<'_>) -> Result<i32> {
    let b = Incoming {
        pid: p.pid,
        batch: p.batch,
        vma_start: p.vma_start,
        vma_end: p.vma_end,
        prot: p.prot,
        count: p.count(),
    };
    install_pages(peer, &b, |i| (p.addr(i), p.page(i)))
}

/// A batch as it arrived (`Push` or `PushRefs`), without its pages.
struct Incoming {
    pid: u32,
    batch: u64,
    vma_start: u64,
    vma_end: u64,
    prot: u32,
    count: usize,
}

/// Installs the `b.count` pages that `page(i)` gives (address, data) into the shell's address
/// space, from the first until one cannot be: returns the `PushAck` status (`PushEnd`: 0 all,
/// else how many), or the error if none was installed.
fn install_pages<'a>(
    peer: &Peer,
    b: &Incoming,
    page: impl Fn(usize) -> (u64, &'a [u8]),
) -> Result<i32> {
    let (shell, m) = shell::shells().ok_or(ENODEV)?.with_mm(peer.id, b.pid)?;
    let newest = shell.push_batch.load(Relaxed);
    if !ownership::push_is_new(newest, b.batch) {
        // A repeat gets the answer the batch got; an older batch's answer went long ago.
        return Ok(if b.batch == newest {
            shell.push_status.load(Relaxed)
        } else {
            0
        });
    }
    let users = m.users().ok_or(ESRCH)?;
    crate::mapsync::cover(&users, b.vma_start, b.vma_end, b.prot)?;
    let lock = users.read();
    let mut installed = 0;
    let mut failed = None;
    for i in 0..b.count {
        let (addr, data) = page(i);
        // Pages are data: never into code (`policy::shell_prot`).
        let r = lock
            .vma(addr)
            .filter(|vma| !vma.executable())
            .ok_or(EFAULT)
            .and_then(|vma| vma.install(addr, 0, data, true));
        if let Err(e) = r {
            // The pages before it stay: the process may run here and have written them
            // already (taking them back would lose that). The home settles them as ours
            // and keeps the rest (`PushEnd::Prefix`).
            failed = Some(e);
            break;
        }
        installed += 1;
    }
    drop(lock);
    let Some(status) = ownership::PushEnd::status(installed, b.count) else {
        return Err(failed.unwrap_or(EINVAL));
    };
    // Out of this CPU's LRU batch at once: a page still there looks held to a take.
    mm::drain_lru(false);
    let mut lent = shell.lent.lock();
    for i in 0..installed {
        lent.forget(page(i).0);
    }
    drop(lent);
    shell.push_status.store(status, Relaxed);
    shell.push_batch.fetch_max(b.batch, Relaxed);
    Ok(status)
}

/// Member: a `PushRefs` from the home: installs the clean copies it names (all, or none and
/// `-ENOENT` if one is gone, or the first of them: `ack_status`); answers `PushAck`.
pub(crate) fn serve_push_refs(node: &Node, peer: &Peer, conn: &Conn, p: &PushRefs<'_>) -> Result {
    let r = install_refs(peer, p);
    let status = ack_status(node, peer, p.pid, p.count(), " by reference", r);
    conn.send(&Message::PushAck { req: p.req, status })
}

fn install_refs(peer: &Peer, p: &PushRefs<'_>) -> Result<i32> {
    let shell = shell::shells()
        .and_then(|s| s.find(peer.id, p.pid))
        .ok_or(ESRCH)?;
    let newest = shell.push_batch.load(Relaxed);
    if !ownership::push_is_new(newest, p.batch) {
        // A repeat whose acknowledgement was late: its copies were installed already (as
        // many as its answer said).
        return Ok(if p.batch == newest {
            shell.push_status.load(Relaxed)
        } else {
            0
        });
    }
    // Every named copy comes out, or none does (a copy is taken once: a repeated address
    // finds none the second time).
    let mut copies: [Option<RBTreeNode<u64, lent::CleanCopy>>; MAX_BATCH] =
        core::array::from_fn(|_| None);
    {
        let mut l = shell.lent.lock();
        for (i, c) in copies.iter_mut().enumerate().take(p.count()) {
            let (addr, tag) = p.entry(i);
            *c = l.take_clean(addr, tag);
            if c.is_none() {
                for c in copies.iter_mut().filter_map(Option::take) {
                    l.put_back_clean(c);
                }
                return Err(ENOENT);
            }
        }
    }
    // All there: out of their tree nodes (which go).
    let copies = copies.map(|c| c.map(|n| n.to_key_value().1));
    let mut data: [&[u8]; MAX_BATCH] = [&[]; MAX_BATCH];
    for (d, c) in data.iter_mut().zip(copies.iter()).take(p.count()) {
        *d = c.as_ref().ok_or(ENOENT)?.data();
    }
    let b = Incoming {
        pid: p.pid,
        batch: p.batch,
        vma_start: p.vma_start,
        vma_end: p.vma_end,
        prot: p.prot,
        count: p.count(),
    };
    // The copies not installed go with `copies`: the home keeps those pages and their
    // records.
    install_pages(peer, &b, |i| (p.entry(i).0, data[i]))
}
