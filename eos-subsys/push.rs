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
use crate::link::Conn;
use crate::node::{peer_warn, Node, Peer};
use crate::policy::{pages_to_push, Watermarks};
use crate::proto::{Message, Push, MAX_BATCH, PAGE_SIZE};
use crate::rpc;
use crate::shell;
use crate::sys::{kthread, mm, task, time};
use core::sync::atomic::Ordering::{Relaxed, SeqCst};
use kernel::{fmt, prelude::*};

/// How long a push waits for its acknowledgement.
const PUSH_TIMEOUT_MS: u32 = 10_000;
/// Most pages pushed for one process per pusher round.
const PUSH_ROUND: u64 = 512;
/// The pusher's period when nobody kicks it.
const PUSH_INTERVAL_MS: u32 = 20;

/// Called before an elastic process allocates an anonymous page: if memory is short, wake the
/// pusher and wait (bounded) for room, rather than meet the OOM killer.
pub(crate) fn throttle() {
    let Some(procs) = home::procs() else { return };
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

/// Pushes up to `want` cold pages of `p` to its peer. Returns how many went.
fn push_some(node: &Node, p: &Proc, want: u64, pages: &mut [u8]) -> u64 {
    let Some(users) = p.mm.users() else { return 0 };
    let mut pushed = 0;
    while pushed < want && !p.dead.load(Relaxed) {
        // Begun before looking at `layout_busy`: a layout change either sees this batch and
        // waits for it, or this batch sees the change and stays out of its way.
        p.push_started.fetch_add(1, SeqCst);
        let n = if p.layout_busy.load(SeqCst) {
            None
        } else {
            push_batch(
                node,
                p,
                &users,
                (want - pushed).min(MAX_BATCH as u64) as usize,
                pages,
            )
        };
        p.push_done.fetch_add(1, SeqCst);
        p.notify_settled();
        match n {
            Some(n) => pushed += n,
            None => break,
        }
    }
    pushed
}

/// Pushes one batch of at most `batch` pages; `None` if none went.
fn push_batch(
    node: &Node,
    p: &Proc,
    users: &mm::MmUsers<'_>,
    batch: usize,
    pages: &mut [u8],
) -> Option<u64> {
    let mut addrs = [0u64; MAX_BATCH];
    let mut wire = [0u8; MAX_BATCH * 8];
    let target = p.push_target()?;
    let peer_id = target.id;
    let found = {
        let lock = users.read();
        let mut cur = p.cursor.load(Relaxed);
        let mut wrapped = false;
        let mut scanned = 0u64;
        loop {
            let Some(v) = lock.vma_from(cur) else {
                if wrapped {
                    break None;
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
            let (n, next) = v.evict(from, v.end(), peer_id, &mut addrs[..batch], pages);
            scanned += (next.saturating_sub(from)) / PAGE_SIZE as u64;
            cur = if n == 0 { v.end() } else { next };
            p.cursor.store(cur, Relaxed);
            if n > 0 {
                break Some((n, v.start(), v.end(), v.prot()));
            }
            if scanned > 1 << 18 {
                break None;
            }
        }
    };
    let (n, vs, ve, prot) = found?;
    for (i, a) in addrs[..n].iter().enumerate() {
        wire[i * 8..i * 8 + 8].copy_from_slice(&a.to_le_bytes());
    }
    let ok = rpc::call(&*target, 0, PUSH_TIMEOUT_MS, |req| {
        Message::Push(Push {
            req,
            pid: p.pid as u32,
            vma_start: vs,
            vma_end: ve,
            prot,
            addrs: &wire[..n * 8],
            pages: &pages[..n * PAGE_SIZE],
        })
    })
    .is_ok();
    let mut settled = 0;
    {
        let lock = users.read();
        for (i, a) in addrs[..n].iter().enumerate() {
            if let Some(v) = lock.vma(*a) {
                let r = if ok {
                    v.settle(*a, peer_id)
                } else {
                    // The page comes back over its in-flight marker; if it cannot, its data
                    // may be nowhere else (the peer may not have it).
                    let page = &pages[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                    let marker = mm::marker(peer_id, true);
                    let what = format_args!("of a failed push to node {peer_id}");
                    home::install_or_poison(p, &v, *a, marker, page, what)
                };
                settled += r.is_ok() as i64;
            }
        }
    }
    if !ok {
        peer_warn!(
            node,
            "push of {} pages of pid {} to node {} failed; kept them\n",
            n,
            p.pid,
            peer_id
        );
        return None;
    }
    p.remote.fetch_add(settled, Relaxed);
    p.counters.pushes.fetch_add(1, Relaxed);
    p.counters.pushed.fetch_add(n as u64, Relaxed);
    Some(n as u64)
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
        crate::stretch::auto_stretch(node, avail < wm.low);
        let Ok(all) = procs.snapshot() else { continue };
        let mut any = false;
        for p in all.iter() {
            if p.dead.load(Relaxed) {
                continue;
            }
            let avail = mm::memory_pages().1;
            let want = pages_to_push(
                p.budget.load(Relaxed),
                p.mm.anon_pages(),
                avail,
                &wm,
                episode,
            );
            if want > 0 {
                any = true;
                push_some(node, p, want.min(PUSH_ROUND), &mut pages);
            }
        }
        let avail = mm::memory_pages().1;
        episode = any && avail < wm.high;
    }
}

/// Starts the pusher thread.
pub(crate) fn start(node: &'static Node) -> Result {
    kthread::spawn(fmt!("eos-push"), node, pusher)
}

/// Member: a `Push` from the home; answers `PushAck`.
pub(crate) fn serve_push(node: &Node, peer: &Peer, conn: &Conn, p: &Push<'_>) -> Result {
    let status = match install_batch(peer, p) {
        Ok(()) => 0,
        Err(e) => {
            peer_warn!(
                node,
                "push for pid {} from node {} failed: {:?}\n",
                p.pid,
                peer.id,
                e
            );
            e.to_errno()
        }
    };
    conn.send(&Message::PushAck { req: p.req, status })
}

fn install_batch(peer: &Peer, p: &Push<'_>) -> Result {
    let (_shell, m) = shell::shells().ok_or(ENODEV)?.with_mm(peer.id, p.pid)?;
    let users = m.users().ok_or(ESRCH)?;
    crate::mapsync::cover(&users, p.vma_start, p.vma_end, p.prot)?;
    let lock = users.read();
    for i in 0..p.count() {
        let addr = p.addr(i);
        let r = lock
            .vma(addr)
            .ok_or(EFAULT)
            .and_then(|vma| vma.install(addr, 0, p.page(i), true));
        if let Err(e) = r {
            // The home keeps the batch (its push failed): take back what this batch installed,
            // so that no page is on both nodes (a stale copy a later jump would run on).
            for j in 0..i {
                let a = p.addr(j);
                if let Some(vma) = lock.vma(a) {
                    vma.zap(a, a + PAGE_SIZE as u64);
                }
            }
            return Err(e);
        }
    }
    Ok(())
}
