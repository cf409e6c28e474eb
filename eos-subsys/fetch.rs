// SPDX-License-Identifier: GPL-2.0

//! Fetch: the shell's side of a pull. While a shell runs the process away from home, an empty
//! PTE in it is a page the home owns ([`shell_fault`]): the shell asks the home for it
//! (`Fetch`, answered by `Pages` or "build it"), installs it and confirms it (`Took`), or
//! jumps home instead if the jump policy says so. The home's side, which answers the fetch
//! (relaying a page a third node owns), is in pull.rs (`serve_fetch`), as are the helpers
//! both sides share: what an arrival means (`arrive`) and the confirmation (`took`).

use crate::home;
use crate::node::{peer_warn, Node, Peer};
use crate::ownership::retry;
use crate::policy::FaultCosts;
use crate::proto::{JumpReason, Message, MAX_BATCH, PAGE_SIZE};
use crate::pull::{self, arrive, took, PREFETCH, PULL_TIMEOUT_MS};
use crate::rpc::{self, Answer, CallError};
use crate::shell;
use crate::sys::{
    hooks::FaultReply,
    mm::{self, Vma},
    task::{self, TaskRef},
    time, trace,
};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{prelude::*, sync::Arc};

/// How long after a fetch refused for room (reclaim.rs) the shell counts its budget full.
const FULL_FOR_NS: u64 = 100_000_000;

/// Shell: a fault on an empty PTE while it runs the process. The page belongs to the home
/// node, so fetch it (or jump home if that is cheaper). `Ok`: build the page the ordinary
/// way (it is ours now).
pub(crate) fn shell_fault(vma: Vma<'_>, addr: u64, user: bool) -> FaultReply {
    let (Some(node), Some(shells)) = (crate::node::get(), shell::shells()) else {
        return FaultReply::SigBus;
    };
    let Some(shell) = shells.by_mm(vma.mm_id()) else {
        return FaultReply::Ok;
    };
    if TaskRef::current().pid() != shell.pid || !shell.running() {
        // Somebody else (a /proc reader) touching the shell's memory: those pages are not
        // here, and must not be built here either.
        return FaultReply::SigBus;
    }
    let now = time::now_ns();
    // Unbounded here, it takes pages unless its node is short of memory, or the budget held
    // here is full (the home refused a fetch for room lately); the home's share is unknown,
    // the fault streak alone bounds the saving. With the budget held here (the home said so
    // in its Jump), room lasts only until the budget fills, and the home keeps what is not
    // here: a jump home finds that much, and pushes what it holds past the budget.
    let full = now < shell.full_until.load(Relaxed);
    // The readahead base: the run check, the costs and the fetch's window all use it.
    let base = PREFETCH.load(Relaxed).clamp(1, MAX_BATCH as u64) as u32;
    // Asked only when the policy weighs a jump: the budget and the home's pages are read then.
    let costs = || {
        let budget = shell.budget.load(Relaxed);
        let home_now = shell
            .home_at_arrival
            .load(Relaxed)
            .saturating_add_signed(shell.home_moved.load(Relaxed));
        FaultCosts {
            addr,
            // Bounded here, room lasts only if all of it fits (then no page goes back).
            room_here: if budget == 0 {
                crate::jump::node_has_room() && !full
            } else {
                shell
                    .mm
                    .anon_pages()
                    .saturating_add(home_now)
                    .saturating_add(u64::from(base))
                    <= budget
            },
            owner_pages: if budget == 0 {
                u64::MAX
            } else {
                home_now.min(budget)
            },
            pages_per_pull: if budget == 0 { 1 } else { base },
            reclaim_there: if budget == 0 {
                0
            } else {
                home_now.saturating_sub(budget)
            },
            fault_ns: shell
                .counters
                .fetch_lat
                .percentile_us(50)
                .saturating_mul(1000),
            jump_ns: shell
                .counters
                .jump_lat
                .percentile_us(50)
                .saturating_mul(1000),
        }
    };
    let t = crate::jump::tunables();
    // The same page again after the home asked it to wait for room: the wait goes on, it is
    // no new remote fault for the policy.
    let waiting = shell.room_wait.load(Relaxed) == addr;
    let in_run = shell.readahead.lock().in_run(addr, base);
    if user
        && !waiting
        && shell
            .policy
            .lock()
            .on_remote_fault_costed(&t, now, in_run, costs)
    {
        crate::jump::request_shell_leave(&shell, JumpReason::RemoteFaults, false);
        if matches!(shell.run(), shell::Run::Leaving { .. }) {
            return FaultReply::NoPage;
        }
    }
    let Some(home) = node.find_peer(shell.home) else {
        return FaultReply::SigBus;
    };
    let mut tries = 0;
    loop {
        tries += 1;
        match fetch_once(node, &shell, &vma, &home, addr, base, now) {
            Fetched::Done(reply) => return reply,
            Fetched::Again(err) if retry(tries) && !task::fatal_signal_pending() => {
                peer_warn!(
                    node,
                    "shell of pid {}: fetch of {:#x} from node {} failed ({:?}); asking again\n",
                    shell.home_pid,
                    addr,
                    shell.home,
                    err
                );
            }
            Fetched::Again(err) => {
                // The home still has the page (lent, or never sent): nothing is lost, but
                // the process cannot go on here.
                pr_err!(
                    "shell of pid {}: page {:#x} from node {} did not come ({:?}); ending the process\n",
                    shell.home_pid,
                    addr,
                    shell.home,
                    err
                );
                return FaultReply::SigBus;
            }
        }
    }
}

/// How one fetch went.
enum Fetched {
    /// The fault ends so.
    Done(FaultReply),
    /// No answer, or the page could not be installed: ask again.
    Again(Error),
}

fn fetch_once(
    node: &Node,
    shell: &Arc<shell::Shell>,
    vma: &Vma<'_>,
    home: &Peer,
    addr: u64,
    base: u32,
    t0: u64,
) -> Fetched {
    // The faulting page and, of the following ones in this mapping, the run the home still
    // holds (prefetch, as a pull's; the home stops at the first it does not have).
    let left = (vma.end().saturating_sub(addr) / PAGE_SIZE as u64).max(1);
    let window = pull::learned_window(|| shell.readahead.lock(), vma, addr, base);
    let count = u64::from(window).min(left) as u32;
    let r = rpc::call(home, count as usize, PULL_TIMEOUT_MS, |req| {
        Message::Fetch {
            req,
            pid: shell.home_pid,
            addr,
            count,
        }
    });
    let answer = match r {
        Ok(a) => a,
        Err(CallError::NotSent(e)) if e == ENOMEM => return Fetched::Done(FaultReply::Oom),
        Err(CallError::NoAnswer(e)) => return Fetched::Again(e),
        Err(c) => {
            let err = c.errno();
            if err == ENOSPC {
                // This node holds the process's budget: wait while the home pulls pages
                // back (reclaim.rs), then fault again.
                shell.room_wait.store(addr, Relaxed);
                shell
                    .full_until
                    .store(time::now_ns() + FULL_FOR_NS, Relaxed);
                time::sleep_ms_uninterruptible(1);
                return Fetched::Done(FaultReply::NoPage);
            }
            if err == EAGAIN || err == EBUSY {
                // On its way here (a push), or back to the home (a pull), or held at home
                // for a moment (a GUP user there): wait for it.
                time::sleep_ms_uninterruptible(1);
                return Fetched::Done(FaultReply::NoPage);
            }
            if err == EINVAL || err == EFAULT {
                // Not a page the home hands over (the vDSO, whose clock must be the home's;
                // an address the home does not map): the fault goes home and runs there.
                return Fetched::Done(FaultReply::SigBus);
            }
            peer_warn!(
                node,
                "shell of pid {}: fetch of {:#x} from node {} failed ({:?})\n",
                shell.home_pid,
                addr,
                shell.home,
                err
            );
            return Fetched::Done(FaultReply::SigBus);
        }
    };
    shell.room_wait.store(0, Relaxed);
    shell.counters.fetches.fetch_add(1, Relaxed);
    let lat = time::now_ns() - t0;
    shell.counters.fetch_lat.record_ns(lat);
    trace::fetch(
        shell.home_pid,
        shell.home,
        addr,
        matches!(answer, Answer::Build),
        lat,
    );
    match answer {
        Answer::Build => {
            // Its own from now on, built here: an older lent copy of it is stale, and the
            // home's record of this answer may go.
            shell.lent.lock().forget(addr);
            took(home, shell.home_pid, false, addr, 1, 0);
            Fetched::Done(FaultReply::Ok)
        }
        Answer::Pages { addr: at, .. } if vma.executable() => {
            // Code from a peer is never run here: the home runs it (an honest home never
            // sends it: see `pull::take_for_fetch`).
            peer_warn!(
                node,
                "shell of pid {}: node {} sent data for the code page {:#x}; refused, it runs there\n",
                shell.home_pid,
                shell.home,
                at
            );
            Fetched::Done(FaultReply::SigBus)
        }
        Answer::Pages { addr: at, data }
            if at == addr
                && !data.is_empty()
                && data.len() <= count as usize * PAGE_SIZE
                && data.len() % PAGE_SIZE == 0 =>
        {
            // Each page installed is ours; the first that cannot be stays lent at home (the
            // next fault on it asks again), and so do the ones after it.
            let mut done = 0;
            let mut failed = None;
            for (i, page) in data.chunks_exact(PAGE_SIZE).enumerate() {
                let a = addr + (i * PAGE_SIZE) as u64;
                match arrive(home::install_retrying(vma, a, 0, page)) {
                    Ok(_) => {
                        shell.lent.lock().forget(a);
                        shell.home_moved.fetch_sub(1, Relaxed);
                        done += 1;
                    }
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                }
            }
            pull::pulled_window(|| shell.readahead.lock(), vma, addr, window, done);
            shell.policy.lock().fault_served(time::now_ns());
            if done > 0 {
                took(home, shell.home_pid, false, addr, done, 0);
                // See `pull::transfer_tries`: a pull of it from here must not find it held.
                mm::drain_lru(false);
            }
            match failed {
                // The home keeps it lent: the next try gets it again.
                Some(err) if done == 0 => Fetched::Again(err),
                _ => Fetched::Done(FaultReply::NoPage),
            }
        }
        _ => Fetched::Done(FaultReply::SigBus),
    }
}
