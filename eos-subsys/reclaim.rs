// SPDX-License-Identifier: GPL-2.0

//! Reclaim: a process's budget holds on the node it runs on, away from home too.
//!
//! "N MiB local" means the node executing the process holds at most N MiB of it, as network
//! swap leaves a machine N MiB and keeps the rest on its server. At home the pusher holds it
//! (push.rs, `Procs::wait_for_budget`). While the process runs on a member, the roles swap:
//! the home keeps the rest of its pages, as a swap server would (its own budget does not
//! bind then, `Proc::local_limit`), and:
//!
//! - the home's pusher asks the member for the pages the process used least lately (`Cold`,
//!   answered by `ColdAddrs`: a CLOCK over the shell's accessed bits, [`serve_cold`]) and
//!   pulls them back with the ordinary pull (pull.rs: lent until `Took`, never lost), until
//!   the member holds no more than the budget ([`reclaim_some`]);
//! - a fetch that would take the member past the budget by a batch waits while the pusher
//!   makes room: the home answers it `ENOSPC` (`Procs::fetch_must_wait`) and the shell asks
//!   again (fetch.rs). As at home, the refusals stop when the pusher cannot help (two
//!   reclaim rounds in a row that brought nothing back) or after `BUDGET_WAIT_MAX_MS` of
//!   refusals in a row, and fetches go on for `BUDGET_BACKOFF_MS`.
//!
//! While the budget holds on the member, the home pushes nothing there (it would only come
//! back), and a reclaim round holds the pusher for `ROUND_MS` at most, each run of pages
//! with the mmap lock on its own, bracketed as a push batch (`PushGate`).
//!
//! Where the budget binds is the home's to say (`Proc::budget_held_at`):
//! `/sys/kernel/elastic/budget_away` 1 holds it so; 0, the default, leaves a running shell
//! unbounded: the member's memory is what a stretch is for, and the budget says how much of
//! the home's the process may use (the benchmark runs both: the bounded one is the fair
//! comparison with network swap). Only with one member: the home counts the
//! pages its members own together (`Proc::remote`), so with two or more the budget binds at
//! home only (a known limit).

use crate::home::Proc;
use crate::node::{peer_warn, Node, Peer};
use crate::proto::{ColdAddrs, Message, MAX_BATCH, PAGE_SIZE};
use crate::rpc::{self, Answer};
use crate::shell;
use crate::sys::{mm::MmRef, time};
use core::sync::atomic::Ordering::Relaxed;
use kernel::{prelude::*, sync::Arc};

/// How long the home waits for a member's `ColdAddrs`.
const COLD_TIMEOUT_MS: u32 = 5_000;

/// Longest one process's reclaim holds the pusher in a round: the other processes' pushes
/// wait meanwhile.
const ROUND_MS: u64 = 100;

/// Home, pusher: pulls back up to `want` of the pages `p` used least lately from `member`,
/// where it runs, for at most `ROUND_MS`. Returns how many came.
pub(crate) fn reclaim_some(node: &Node, p: &Proc, member: &Arc<Peer>, want: u64) -> u64 {
    let deadline = time::now_ns() + ROUND_MS * 1_000_000;
    let mut got = 0;
    while got < want && !p.is_dead() && p.budget_held_at() == Some(member.id) {
        if time::now_ns() >= deadline {
            break;
        }
        let count = (want - got).min(MAX_BATCH as u64) as u32;
        let r = rpc::call(&**member, 1, COLD_TIMEOUT_MS, |req| Message::Cold {
            req,
            pid: p.pid() as u32,
            count,
        });
        let addrs = match r {
            Ok(Answer::Addrs(a)) => a,
            Ok(_) => break,
            Err(e) => {
                peer_warn!(
                    node,
                    "pid {}: node {} named no cold pages ({:?})\n",
                    p.pid(),
                    member.id,
                    e.errno()
                );
                break;
            }
        };
        let n = crate::pull::pull_back(p, member, &addrs, deadline);
        if n == 0 {
            break;
        }
        p.counters().reclaimed.fetch_add(n, Relaxed);
        got += n;
    }
    got
}

/// Member, receive thread: a `Cold` from the home; answers `ColdAddrs`.
pub(crate) fn serve_cold(
    node: &Node,
    peer: &Peer,
    conn: &crate::link::Conn,
    req: u32,
    pid: u32,
    count: u32,
) -> Result {
    let mut addrs = [0u64; MAX_BATCH];
    let want = (count as usize).min(MAX_BATCH);
    let (status, n) = match shell::shells()
        .ok_or(ENODEV)
        .and_then(|s| s.with_mm(peer.id, pid))
        .map(|(shell, m)| cold_pages(&shell, &m, &mut addrs[..want]))
    {
        Ok(n) => (0, n),
        Err(e) => {
            peer_warn!(
                node,
                "cold pages of pid {} for node {}: {:?}\n",
                pid,
                peer.id,
                e
            );
            (e.to_errno(), 0)
        }
    };
    let mut wire = [0u8; MAX_BATCH * 8];
    for (i, &a) in addrs[..n].iter().enumerate() {
        ColdAddrs::put(&mut wire, i, a);
    }
    conn.send(&Message::ColdAddrs(ColdAddrs {
        req,
        status,
        addrs: &wire[..n * 8],
    }))
}

/// Most pages one `Cold` scans before it answers with what it found.
const SCAN_MAX_PAGES: u64 = 1 << 16;

/// The shell's CLOCK over its private memory, from where the last scan stopped,
/// once around at most: fills `out` with pages not used since the last scan, in ascending
/// order (each found once). Returns how many.
fn cold_pages(shell: &shell::Shell, m: &MmRef, out: &mut [u64]) -> usize {
    let Some(users) = m.users() else { return 0 };
    let lock = users.read();
    let from = shell.cold_hand.load(Relaxed);
    let (mut cur, mut wrapped, mut scanned, mut n) = (from, false, 0u64, 0);
    while n < out.len() && scanned < SCAN_MAX_PAGES {
        // Once around: after the wrap, up to where this scan began.
        let stop = if wrapped { from } else { u64::MAX };
        let vma = lock.vma_from(cur).filter(|v| v.start() < stop);
        let Some(v) = vma else {
            if wrapped {
                break;
            }
            (wrapped, cur) = (true, 0);
            continue;
        };
        // Any private mapping: the helper takes what a take can hand over (anonymous pages,
        // those a private file mapping copied on write too) and skips shared ones.
        let start = cur.max(v.start());
        let end = v.end().min(stop);
        let (k, next) = v.cold_pages(start, end, &mut out[n..]);
        n += k;
        scanned += next.saturating_sub(start) / PAGE_SIZE as u64;
        cur = if next > start { next } else { v.end() };
        if cur >= stop {
            break;
        }
    }
    shell.cold_hand.store(cur, Relaxed);
    let found = &mut out[..n];
    found.sort_unstable();
    // Sorted and distinct (a page is visited once a scan), as the protocol requires.
    let mut k = 0;
    for i in 0..found.len() {
        if k == 0 || found[i] != found[k - 1] {
            found[k] = found[i];
            k += 1;
        }
    }
    k
}
