// SPDX-License-Identifier: GPL-2.0

//! Pull: a fault on a page owned elsewhere brings it to the faulting node.
//!
//! - Home, marker fault ([`home_fault`]): the PTE holds a marker naming the owner; the home
//!   asks it for a run of pages (`Pull`, answered by `Pages`), installs them and runs on, or
//!   jumps to the data instead if the jump policy says so. [`recall`] pulls a whole range (a
//!   layout change needs its pages home).
//! - Shell, empty-PTE fault: fetch.rs (it uses [`arrive`] and [`took`] from here).
//! - Member, serving: [`serve_pull`] hands the home the pages it asks back; the home serves a
//!   fetch ([`serve_fetch`]), relaying a page a third node owns through itself.

use crate::home::{self, Proc, Pulling};
use crate::lent::{self, KeptRef, LentTo};
use crate::link::Conn;
use crate::node::{peer_warn, Node, Peer};
use crate::ownership::{self, retry, Arrived, Give, Here, Slot};
use crate::policy::{pull_count, Readahead, Watermarks};
use crate::proto::{Message, Pages, MAX_BATCH, PAGES_BUILD, PAGE_SIZE};
use crate::rpc::{self, Answer, CallError};
use crate::shell;
use crate::sys::{
    hooks::{FaultReply, MarkerFault},
    mm::{self, Taken, Vma},
    task::{self, TaskRef},
    time, trace,
};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::{bindings, prelude::*, rbtree::RBTreeNodeReservation, sync::Arc};

/// How long a fault waits for its pages (a pull, a fetch or a relay).
pub(crate) const PULL_TIMEOUT_MS: u32 = 10_000;
/// How long a fault on a page being pushed waits for the push to settle.
const SETTLE_TIMEOUT_MS: u32 = 10_000;

/// Pages fetched per remote fault (1: no prefetch); `/sys/kernel/elastic/prefetch`.
pub(crate) static PREFETCH: AtomicU64 = AtomicU64::new(8);

/// Why pages did not come.
enum PullErr {
    /// The owner did not hand them over (after every try).
    Call(CallError),
    /// Its answer does not fit the request.
    Reply,
    /// The first page could not be installed (after every try); the owner keeps it lent.
    Install(Error),
    /// The page is being moved already (another pull, or a transfer from here not
    /// confirmed yet): wait for that, then fault again.
    Busy,
}

impl PullErr {
    fn errno(&self) -> Error {
        match self {
            Self::Call(c) => c.errno(),
            Self::Reply => EIO,
            Self::Install(e) => *e,
            Self::Busy => EAGAIN,
        }
    }
}

/// Pages settled by a pull.
struct Pulled {
    /// How many pages from the address are settled (0: none; the fault runs again).
    pages: u32,
    /// Whether data came (rather than the owner never having had any, so that the page is
    /// built here).
    data: bool,
}

/// Registers a pull of up to `count` pages from `addr` in `p`'s `pulling`: at most one pull per
/// page at a time, and none of a page lent out from here and not confirmed yet. Returns
/// how many pages it covers (a prefix of the run).
fn begin_pull(p: &Proc, addr: u64, count: u32) -> Result<u32, PullErr> {
    let mut n = 0;
    let mut t = p.transfers();
    while n < count && !t.lent.has(addr + n as u64 * PAGE_SIZE as u64) {
        n += 1;
    }
    let pulling = &mut t.pulling;
    if n == 0 || pulling.iter().any(|e| e.overlaps(addr, 1)) {
        return Err(PullErr::Busy);
    }
    while n > 1 && pulling.iter().any(|e| e.overlaps(addr, n)) {
        n -= 1;
    }
    pulling
        .push(
            Pulling {
                addr,
                count: n,
                superseded: 0,
            },
            GFP_KERNEL,
        )
        .map_err(|_| PullErr::Install(ENOMEM))?;
    Ok(n)
}

/// Ends the pull begun at `addr`.
fn end_pull(p: &Proc, addr: u64) {
    crate::kvec::retain(&mut p.transfers().pulling, |_, e| e.addr != addr);
    p.push_gate().notify_settled();
}

/// Moves up to `count` pages from `addr` that `owner` owns into `p`'s address space. The
/// owner keeps each page lent until `Took` confirms it (lent.rs), so a lost or late answer,
/// or a page that cannot be installed, is asked for again (`TRANSFER_TRIES`), never lost.
/// `clean`: the owner may keep clean copies (the pages may go back to it unchanged soon).
fn transfer(
    p: &Proc,
    vma: &Vma<'_>,
    addr: u64,
    owner: &Peer,
    count: u32,
    clean: bool,
) -> Result<Pulled, PullErr> {
    let count = begin_pull(p, addr, count)?;
    let r = transfer_tries(p, vma, addr, owner, count, clean);
    end_pull(p, addr);
    r
}

/// Pages of the pull begun at `addr` that a jump brought home meanwhile (a bit each): their
/// copies there may have been written since, so this pull's answer for them is dropped.
fn superseded(p: &Proc, addr: u64) -> u32 {
    p.transfers()
        .pulling
        .iter()
        .find(|e| e.addr == addr && e.count > 0)
        .map_or(0, |e| e.superseded)
}

fn transfer_tries(
    p: &Proc,
    vma: &Vma<'_>,
    addr: u64,
    owner: &Peer,
    count: u32,
    clean: bool,
) -> Result<Pulled, PullErr> {
    let marker = mm::marker(owner.id, false);
    let node = crate::node::get().ok_or(PullErr::Reply)?;
    // Shared by the tries of the request and those after a page that could not be installed.
    let mut tries = 0;
    loop {
        let pull = |req| Message::Pull {
            req,
            pid: p.pid() as u32,
            addr,
            count,
        };
        let again = |tries, e| match e {
            CallError::Refused(e) if e == EBUSY && retry(tries) => {
                // Held there for a moment (a GUP user): ask again.
                time::sleep_ms_uninterruptible(1);
                true
            }
            CallError::NoAnswer(e) if retry(tries) && !task::fatal_signal_pending() => {
                peer_warn!(
                    node,
                    "pid {}: pull of {:#x} from node {} got no answer ({:?}); asking again\n",
                    p.pid(),
                    addr,
                    owner.id,
                    e
                );
                true
            }
            _ => false,
        };
        let answer = rpc::call_retrying(
            owner,
            count as usize,
            PULL_TIMEOUT_MS,
            &mut tries,
            pull,
            again,
        )
        .map_err(PullErr::Call)?;
        let dropped = superseded(p, addr);
        match answer {
            Answer::Build if dropped & 1 != 0 => {
                // A jump brought it home meanwhile: that copy stands.
                return Ok(Pulled {
                    pages: 0,
                    data: false,
                });
            }
            Answer::Build => {
                // The owner never had data there: the page is built here the ordinary way.
                // (A marker gone meanwhile: something else settled the page.)
                if vma.clear_marker(addr, marker).is_ok() {
                    p.sub_remote(1);
                }
                return Ok(Pulled {
                    pages: 1,
                    data: false,
                });
            }
            Answer::Pages { addr: at, data } => {
                let n = data.len() / PAGE_SIZE;
                if at != addr || n == 0 || n > count as usize {
                    return Err(PullErr::Reply);
                }
                let mut done = 0;
                let mut failed = None;
                // Installed pages (a bit each): the owner may keep their copies clean.
                let mut installed = 0u32;
                for i in 0..n {
                    let a = addr + (i * PAGE_SIZE) as u64;
                    let page = &data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                    if dropped & (1 << i) != 0 {
                        // Brought home by a jump meanwhile: that copy stands, and this one's
                        // lent original may go.
                        done += 1;
                        continue;
                    }
                    match arrive(home::install_retrying(vma, a, marker, page)) {
                        Ok(true) => {
                            p.sub_remote(1);
                            installed |= 1 << i;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            // Still lent at the owner: a later fault asks for it again.
                            failed = Some(e);
                            break;
                        }
                    }
                    done += 1;
                }
                if done > 0 {
                    let keep = if clean {
                        keep_clean(p, owner.id, addr, &data[..done * PAGE_SIZE], installed)
                    } else {
                        0
                    };
                    took(owner, p.pid() as u32, true, addr, done as u32, keep);
                    // Out of this CPU's LRU batch: a page still there looks held to the
                    // pusher's evict.
                    mm::drain_lru(false);
                }
                match failed {
                    Some(e) if done == 0 => {
                        if retry(tries) && !task::fatal_signal_pending() {
                            continue;
                        }
                        return Err(PullErr::Install(e));
                    }
                    _ => {
                        return Ok(Pulled {
                            pages: done as u32,
                            data: true,
                        })
                    }
                }
            }
            _ => return Err(PullErr::Reply),
        }
    }
}

/// What an install of a page that came means (`ownership::arrived`): `Ok(true)` installed,
/// `Ok(false)` not wanted (a page already mapped there is at least as new, or the range
/// changed meanwhile): either way its lent copy may go; `Err`: not installed, ask again.
pub(crate) fn arrive(r: Result) -> Result<bool> {
    let slot = match r {
        Ok(()) => Slot::Waiting,
        Err(e) if e == EEXIST => Slot::Mapped,
        Err(e) => return Err(e),
    };
    Ok(ownership::arrived(slot) == Arrived::Install)
}

/// Confirms `count` pages from `addr` of process `pid` to `to`, which kept them lent (and
/// keeps them as clean copies tagged `keep`, if not 0).
pub(crate) fn took(to: &Peer, pid: u32, from_home: bool, addr: u64, count: u32, keep: u32) {
    // Not sent: there is no connection, or the failed send closed it. That node is lost to
    // us then, and the lent copies it would have let go with it.
    let _ = to.send(&Message::Took {
        pid,
        from_home,
        addr,
        count,
        keep,
    });
}

/// Home: the pages `data` from `addr` came from `owner`'s answer and those whose bit is set
/// in `installed` were installed: records that `owner` keeps a clean copy of each under a new
/// tag, with the hash of the bytes installed, and returns the tag for the `Took` (0: keep
/// none). The other pages of the answer lose their records (their copies there will carry
/// the new tag, which no record names).
fn keep_clean(p: &Proc, owner: u16, addr: u64, data: &[u8], installed: u32) -> u32 {
    let n = data.len() / PAGE_SIZE;
    // Hashed and the entries allocated before the lock: it is a fault's.
    let mut hashes = [0u64; MAX_BATCH];
    let mut nodes: [Option<RBTreeNodeReservation<u64, KeptRef>>; MAX_BATCH] =
        core::array::from_fn(|_| None);
    for i in 0..n {
        if installed & (1 << i) != 0 {
            hashes[i] = lent::page_hash(&data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]);
            nodes[i] = RBTreeNodeReservation::new(GFP_KERNEL).ok();
        }
    }
    let mut t = p.transfers();
    let kept = &mut t.kept;
    let tag = kept.new_tag();
    let mut any = false;
    for (i, node) in nodes.iter_mut().enumerate().take(n) {
        let a = addr + (i * PAGE_SIZE) as u64;
        match node.take() {
            Some(node) if kept.has_room() || kept.get(a).is_some() => {
                let hash = hashes[i];
                kept.record(
                    a,
                    KeptRef {
                        node: owner,
                        tag,
                        hash,
                    },
                    node,
                );
                any = true;
            }
            _ => kept.forget(a),
        }
    }
    if any {
        tag
    } else {
        0
    }
}

/// The fault path's pull: counts it, and says how the fault ends if it failed. `user`: a
/// fault of user code (not a kernel access to user memory such as copy_from_user, nor a
/// recall).
fn pull_pages(
    p: &Proc,
    vma: &Vma<'_>,
    addr: u64,
    owner: &Peer,
    count: u32,
    user: bool,
) -> Result<u32, FaultReply> {
    match transfer(p, vma, addr, owner, count, true) {
        Ok(got) => {
            p.counters().pulls.fetch_add(1, Relaxed);
            if got.data {
                p.counters().pulled.fetch_add(got.pages as u64, Relaxed);
            }
            Ok(got.pages)
        }
        // A fatal signal cut the wait short (or comes during a busy page's wait, which it
        // also cuts short). User code: the fault ends without a page and the process dies of
        // that signal on its way out (a shell sees 128+N), not of SIGBUS. A kernel access
        // (copy_from_user, a recall) must fail instead: retried, it would fault again at
        // once, for ever, since no wait sleeps any more. The owner keeps the page (lent, if it
        // answered), released with the rest at exit.
        Err(_) if task::fatal_signal_pending() => {
            if user {
                Ok(0)
            } else {
                Err(FaultReply::SigBus)
            }
        }
        Err(PullErr::Busy) => {
            // Moving already: wait for that transfer to settle, then fault again. A page
            // lent from here waits for its own confirmation, up to the whole timeout (any
            // other settle wakes the wait too: it used to end it, after ~20 ms); one that
            // does not come in time ends the process.
            let deadline = time::now_ns() + u64::from(SETTLE_TIMEOUT_MS) * 1_000_000;
            let lent_here = || {
                let t = p.transfers();
                t.lent.has(addr) && t.pulling.iter().all(|e| !e.overlaps(addr, 1))
            };
            let mut stuck = true;
            loop {
                let now = time::now_ns();
                if now >= deadline || task::fatal_signal_pending() {
                    break;
                }
                p.push_gate()
                    .wait_settled(((deadline - now) / 1_000_000).max(1) as u32);
                if !lent_here() {
                    stuck = false;
                    break;
                }
            }
            if task::fatal_signal_pending() {
                // Dies of that signal (see above): no SIGBUS, no log line.
                return if user { Ok(0) } else { Err(FaultReply::SigBus) };
            }
            if stuck && lent_here() {
                pr_err!(
                    "pid {} ({}): page {:#x} sent to node {} never came back confirmed; killing it with SIGBUS\n",
                    p.pid(),
                    p.comm(),
                    addr,
                    owner.id
                );
                return Err(stop(p, user));
            }
            Ok(0)
        }
        Err(PullErr::Call(CallError::NotSent(e))) if e == ENOMEM => Err(FaultReply::Oom),

        Err(e) => {
            pr_err!(
                "pid {} ({}): pull of {:#x} from node {} failed ({:?}); killing it with SIGBUS (the page stays there)\n",
                p.pid(),
                p.comm(),
                addr,
                owner.id,
                e.errno()
            );
            Err(stop(p, user))
        }
    }
}

/// How a fault ends whose page is lost to the process: with SIGBUS, as logged. A fault of user
/// code gets it from the fault path; a kernel access (copy_from_user, rseq's update on the way
/// to user mode, a recall) would only fail with EFAULT (or, for rseq, SIGSEGV) and the process
/// would go on, so the process (not the task that asked: a debugger's read of its memory) is
/// sent SIGBUS here. Synchronous signals are taken lowest first: SIGBUS before SIGSEGV.
fn stop(p: &Proc, user: bool) -> FaultReply {
    if !user {
        p.signal(bindings::SIGBUS);
    }
    FaultReply::SigBus
}

/// Home: a fault on a page owned by another node (or on its way there).
pub(crate) fn home_fault(vma: Vma<'_>, f: MarkerFault) -> FaultReply {
    let (addr, owner) = (f.addr, f.owner);
    let reply = fault_at_home(vma, f);
    if matches!(reply, FaultReply::SigBus) && task::current_dumping() {
        // The core dump would write zeros for this page (a hole) and go on as if it were
        // whole: it ends here instead, cut short where the lost page is, and says so.
        pr_err!(
            "pid {}: core dump cut short at {:#x}: that page was on node {} and cannot be brought home\n",
            TaskRef::current().pid(),
            addr,
            owner
        );
        TaskRef::current().signal(bindings::SIGKILL);
    }
    reply
}

fn fault_at_home(vma: Vma<'_>, f: MarkerFault) -> FaultReply {
    let (Some(node), Some(procs)) = (crate::node::get(), home::procs()) else {
        return FaultReply::SigBus;
    };
    let addr = f.addr;
    let Some(proc) = procs.by_mm(vma.mm_id()) else {
        peer_warn!(
            node,
            "fault on a remote page at {:#x} of an unknown process\n",
            addr
        );
        return FaultReply::SigBus;
    };
    if f.in_flight {
        // The pusher is moving this page; it settles within one round trip or a timeout.
        proc.push_gate().wait_settled(SETTLE_TIMEOUT_MS);
        return FaultReply::Ok;
    }
    let Some(owner) = proc.member(f.owner) else {
        peer_warn!(
            node,
            "pid {}: page {:#x} owned by unexpected node {}\n",
            proc.pid(),
            addr,
            f.owner
        );
        return FaultReply::SigBus;
    };
    let prefetch = PREFETCH.load(Relaxed) as u32;
    if crate::jump::home_fault_jumps(&proc, f.user, f.owner, addr, prefetch) {
        // Execution goes to the page instead; the instruction runs again over there.
        return FaultReply::Ok;
    }
    // The pages come in only once the budget has room for them (the pusher makes it).
    procs.wait_for_budget(&proc);
    let t0 = time::now_ns();
    let run = vma.remote_run(addr, f.owner, MAX_BATCH as u32);
    if run == 0 {
        return FaultReply::Ok;
    }
    let window = learned_window(|| proc.readahead(), &vma, addr, prefetch);
    let count = pull_count(window, run);
    match pull_pages(&proc, &vma, addr, &owner, count, f.user) {
        Ok(pages) => {
            pulled_window(|| proc.readahead(), &vma, addr, window, pages);
            proc.policy().fault_served(time::now_ns());
            let lat = time::now_ns() - t0;
            proc.counters().fault_lat.record_ns(lat);
            trace::pull(proc.pid() as u32, owner.id, addr, pages, lat);
            FaultReply::Ok
        }
        Err(f) => f,
    }
}

/// The readahead window for a remote fault at `addr` in `vma` (a home's pull, a shell's
/// fetch): `r` first learns how many of the pages prefetched by the pull whose slot this
/// fault takes were used, from their accessed bits (known only if they are in this mapping).
pub(crate) fn learned_window<G: core::ops::DerefMut<Target = Readahead>>(
    r: impl Fn() -> G,
    vma: &Vma<'_>,
    addr: u64,
    base: u32,
) -> u32 {
    let judge = r().to_judge(addr);
    let used = judge
        .filter(|(first, n)| {
            *first >= vma.start() && first + u64::from(*n) * PAGE_SIZE as u64 <= vma.end()
        })
        .map(|(first, n)| vma.young_pages(first, n, false));
    let mut r = r();
    r.learn(addr, used);
    r.window(addr, base)
}

/// A pull (or fetch) from `addr` in `vma` of a `window` brought `pages`: the readahead
/// records it, and the pages beyond the first that it will judge start old (installed young,
/// they are unused until the process touches them).
pub(crate) fn pulled_window<G: core::ops::DerefMut<Target = Readahead>>(
    r: impl Fn() -> G,
    vma: &Vma<'_>,
    addr: u64,
    window: u32,
    pages: u32,
) {
    let prefetched = r().pulled(addr, window, pages);
    if prefetched > 0 {
        vma.young_pages(addr + PAGE_SIZE as u64, prefetched, true);
    }
}

/// Home: brings every page of `[start, end)` that a member owns back.
pub(crate) fn recall(p: &Proc, start: u64, end: u64) -> Result {
    let users = p.mm().users().ok_or(ESRCH)?;
    let lock = users.read();
    for v in lock.vmas_in(start, end) {
        let (mut a, stop) = (start.max(v.start()), v.end().min(end));
        if v.remote_count(a, stop) == 0 {
            continue;
        }
        while a < stop {
            // A dying process recalls nothing (its pages go with it); a pull would not wait.
            if task::fatal_signal_pending() {
                return Err(EINTR);
            }
            // A page has one owner: the order the members are asked in does not matter.
            let owner = p.members().find_map(|m| {
                let run = v.remote_run(a, m.id, MAX_BATCH as u32);
                (run > 0).then_some((m, run))
            });
            let Some((m, run)) = owner else {
                a += PAGE_SIZE as u64;
                continue;
            };
            let n = pull_pages(p, &v, a, &m, run, false).map_err(|_| EIO)?;
            a += n as u64 * PAGE_SIZE as u64;
        }
    }
    Ok(())
}

/// Home: pulls back the pages at `addrs` (little-endian, ascending: a member's
/// `ColdAddrs`) that `member` still owns, a run at a time, while the budget still holds there
/// (the process may come home meanwhile) and until `deadline` (ns). The others are left as
/// they are (come back meanwhile, in flight, held there). Each run takes the mmap lock on
/// its own and goes as a push batch does (`PushGate`: a layout change waits for it or stops
/// it). The member keeps no clean copies of them: while the process runs there they would
/// only hold its memory. Returns how many pages came.
pub(crate) fn pull_back(p: &Proc, member: &Peer, addrs: &[u8], deadline: u64) -> u64 {
    let Some(users) = p.mm().users() else {
        return 0;
    };
    let list = addrs.as_chunks::<8>().0;
    let at = |i: usize| u64::from_le_bytes(list[i]);
    let (mut i, mut got) = (0, 0u64);
    while i < list.len() {
        let a = at(i);
        let mut run = 1;
        while i + run < list.len() && at(i + run) == a + (run * PAGE_SIZE) as u64 {
            run += 1;
        }
        i += run;
        if p.is_dead() || p.budget_held_at() != Some(member.id) || time::now_ns() >= deadline {
            break;
        }
        if !p.push_gate().begin_batch() {
            p.push_gate().finish_batch();
            break;
        }
        let r = {
            let lock = users.read();
            match lock.vma(a) {
                Some(vma) => match vma.remote_run(a, member.id, run as u32) {
                    0 => Ok(None),
                    owned => transfer(p, &vma, a, member, owned, false).map(Some),
                },
                None => Ok(None),
            }
        };
        p.push_gate().finish_batch();
        match r {
            Ok(Some(pulled)) => got += u64::from(pulled.pages),
            Ok(None) => {}
            // The member did not answer: not now.
            Err(PullErr::Call(CallError::NoAnswer(_) | CallError::NotSent(_))) => break,
            // Lent from here, held there, not installable: the next run may go.
            Err(_) => {}
        }
    }
    got
}

/// Member: takes up to `count` pages from `addr`; returns how many (the prefix that was
/// here). Each page that leaves stays lent until the home confirms it; a page asked for
/// again after it left is sent from that copy. 0: the first page has no data here (never
/// written while the process ran here): the home builds it itself.
fn take_pages(
    peer: &Peer,
    pid: u32,
    addr: u64,
    count: u32,
    buf: &mut [u8],
) -> Result<(usize, bool)> {
    let (shell, m) = shell::shells().ok_or(ENODEV)?.with_mm(peer.id, pid)?;
    let users = m.users().ok_or(ESRCH)?;
    let lock = users.read();
    let mut n = 0;
    for i in 0..count as usize {
        let a = addr + (i * PAGE_SIZE) as u64;
        let page = &mut buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
        let Some(vma) = lock.vma(a) else { break };
        let here = match vma.take(a, page, 0) {
            Ok(Taken::Data) => Here::Mapped,
            Ok(Taken::Build) => Here::Empty,
            Err(e) if e == EBUSY => return Ok((n, true)),
            Err(e) if i == 0 => return Err(e),
            Err(_) => break,
        };
        let mut lent = shell.lent.lock();
        // A lent copy is looked up (and copied over `page`) only when nothing is mapped: a
        // mapped page is the newest.
        let again = here != Here::Mapped && lent.copy(a, peer.id, page);
        match ownership::give(here, again) {
            Give::Lend => {
                if lent.lend(a, LentTo::Answer(peer.id), page).is_err() {
                    // No memory for the copy: it goes unguarded, as a lost answer would
                    // lose it. Counted.
                    lent.dropped += 1;
                }
                n += 1;
            }
            Give::Again => n += 1,
            Give::Build | Give::Elsewhere if i == 0 => return Ok((0, false)),
            Give::Build | Give::Elsewhere => break,
        }
    }
    // The home holds these now (its shell's jump policy counts what a jump home finds).
    shell.home_moved.fetch_add(n as i64, Relaxed);
    Ok((n, false))
}

/// Member: a `Pull` from the home; answers `Pages`.
pub(crate) fn serve_pull(
    node: &Node,
    peer: &Peer,
    conn: &Conn,
    req: u32,
    pid: u32,
    addr: u64,
    count: u32,
) -> Result {
    let mut buf = KVVec::from_elem(0u8, count as usize * PAGE_SIZE, GFP_KERNEL)?;
    mm::drain_lru(false);
    let taken = match take_pages(peer, pid, addr, count, &mut buf) {
        // A page held by someone: a GUP user writing it, or only a per-CPU LRU batch. Drain
        // those (no mmap lock held here) and take once more (the pages taken already come
        // from their lent copies); the home asks again if the first is still held.
        Ok((_, true)) => {
            mm::drain_lru(true);
            take_pages(peer, pid, addr, count, &mut buf)
        }
        r => r,
    };
    let (status, n) = match taken {
        Ok((0, true)) => (EBUSY.to_errno(), 0),
        Ok((0, false)) => (PAGES_BUILD, 0),
        Ok((n, _)) => (0, n),
        Err(e) => {
            peer_warn!(
                node,
                "pull {:#x} for pid {} from node {} failed: {:?}\n",
                addr,
                pid,
                peer.id,
                e
            );
            (e.to_errno(), 0)
        }
    };
    conn.send(&Message::Pages(Pages {
        req,
        status,
        addr,
        pages: &buf[..n * PAGE_SIZE],
    }))
}

/// Home: the process `pid`, away on `peer`, needs its page at `addr`.
/// `relay`: a page a third node owns is brought here first (a round trip to that node);
/// without, that case is `Err(EAGAIN)` and nothing is changed.
fn take_for_fetch(
    node: &Node,
    peer: &Peer,
    pid: u32,
    addr: u64,
    buf: &mut [u8],
    relay: bool,
) -> Result<Taken> {
    let procs = home::procs().ok_or(ENODEV)?;
    let p = procs
        .by_pid(pid as i32)
        .filter(|p| p.member(peer.id).is_some())
        .ok_or(ESRCH)?;
    if p.away_at() != Some(peer.id) {
        peer_warn!(
            node,
            "node {} fetched a page of pid {}, which does not run there\n",
            peer.id,
            pid
        );
        return Err(EPERM);
    }
    let users = p.mm().users().ok_or(ESRCH)?;
    let lock = users.read();
    let vma = lock.vma(addr).ok_or(EFAULT)?;
    // A shell runs no code it was sent (`policy::shell_prot`): code that is no longer the
    // file's (a debugger's breakpoint, a text relocation) runs here. The shell builds the
    // rest of its code from its own file.
    if vma.executable() && vma.has_anon_pages() {
        return Err(EFAULT);
    }
    // A locked page stays resident here (mlock), as the pusher leaves it: the access runs
    // here instead, as for code.
    if vma.locked() {
        return Err(EFAULT);
    }
    if vma.remote_run(addr, peer.id, 1) == 1 {
        // Marked as the fetcher's already: the answer that took it there was lost or is
        // late; send the lent copy again. Without one, the page is on its way back here
        // (a pull): the shell asks again.
        let kept = p.transfers().lent.get(addr, peer.id, buf);
        return match (
            ownership::give(Here::Marker { to_requester: true }, kept.is_some()),
            kept,
        ) {
            (Give::Again, Some(true)) => Ok(Taken::Data),
            (Give::Again, _) => Ok(Taken::Build),
            // On its way back here, pulled for the budget held there (reclaim.rs): a wait
            // for room, not a page of a third node (no relay).
            _ if p.transfers().pulling.iter().any(|e| e.overlaps(addr, 1)) => Err(ENOSPC),
            _ => Err(EAGAIN),
        };
    }
    // The process's budget holds there too (reclaim.rs): this fetch waits while the pusher
    // makes room (the shell asks again).
    if procs.fetch_must_wait(&p) {
        return Err(ENOSPC);
    }
    let t = match vma.take(addr, buf, mm::marker(peer.id, false)) {
        Err(err) if err == EAGAIN && relay => {
            // Owned by a third node: bring it here first, then hand it on.
            let Some(owner) = p
                .members()
                .find(|m| m.id != peer.id && vma.remote_run(addr, m.id, 1) == 1)
            else {
                return Err(EAGAIN);
            };
            transfer(&p, &vma, addr, &owner, 1, true).map_err(|e| e.errno())?;
            vma.take(addr, buf, mm::marker(peer.id, false))?
        }
        r => r?,
    };
    // Lent until the shell confirms it (`Took`), a "build it" answer too: if the answer is
    // lost, a fetch asked again is answered the same.
    let mut transfers = p.transfers();
    let lent = &mut transfers.lent;
    let kept = match t {
        Taken::Data => lent.lend(addr, LentTo::Answer(peer.id), buf),
        Taken::Build => lent.lend_build(addr, LentTo::Answer(peer.id)),
    };
    if kept.is_err() {
        // Nothing to answer again with: counted, as a lost answer would lose the page.
        lent.dropped += 1;
    }
    drop(transfers);
    // Owned there now only if a marker says so: a read-only file page stays shared, and the
    // member builds it from its own file (it never comes back).
    if vma.remote_run(addr, peer.id, 1) == 1 {
        p.add_remote(1);
    }
    p.counters().fetched.fetch_add(1, Relaxed);
    Ok(t)
}

/// Fetches of one peer relayed at once (each waits for a third node); more are refused
/// with EBUSY. A process makes one at a time.
const MAX_RELAYS_IN_FLIGHT: u32 = 64;

/// Home, receive thread: answers a `Fetch` with the page, a build status or an error. A page
/// a third node owns is relayed by a thread of its own: the receive thread does not wait
/// for another link.
pub(crate) fn serve_fetch(
    node: &'static Node,
    peer: &Arc<Peer>,
    conn: &Conn,
    req: u32,
    pid: u32,
    addr: u64,
    count: u32,
) -> Result {
    let mut buf = KVVec::from_elem(0u8, count as usize * PAGE_SIZE, GFP_KERNEL)?;
    let first = &mut buf[..PAGE_SIZE];
    let r = match take_for_fetch(node, peer, pid, addr, first, false) {
        // See `serve_pull`.
        Err(e) if e == EBUSY => {
            mm::drain_lru(true);
            take_for_fetch(node, peer, pid, addr, first, false)
        }
        r => r,
    };
    if matches!(&r, Err(err) if *err == EAGAIN) {
        let relayed = if peer.relays.fetch_add(1, Relaxed) < MAX_RELAYS_IN_FLIGHT {
            let job = Relay {
                node,
                peer: peer.clone(),
                req,
                pid,
                addr,
                buf,
            };
            crate::sys::kthread::spawn(kernel::fmt!("eos-relay/{}", peer.id), job, relay)
        } else {
            Err(EBUSY)
        };
        return match relayed {
            Ok(()) => Ok(()),
            Err(err) => {
                peer.relays.fetch_sub(1, Relaxed);
                send_fetched(|m| conn.send(m), req, addr, Err(err), &[])
            }
        };
    }
    let n = match r {
        Ok(Taken::Data) if count > 1 => take_more(peer, pid, addr, count, &mut buf),
        _ => 1,
    };
    send_fetched(|m| conn.send(m), req, addr, r, &buf[..n * PAGE_SIZE])
}

/// Home: the first page of a fetch went as data; the following ones of the same private
/// anonymous mapping that the home holds with data go with it (prefetch), up to `count`
/// pages in all, each taken and lent like the first. A page with no data here ends the run
/// and stays the home's. Returns the pages in `buf`.
fn take_more(peer: &Peer, pid: u32, addr: u64, count: u32, buf: &mut [u8]) -> usize {
    let Some(p) = home::procs()
        .and_then(|procs| procs.by_pid(pid as i32))
        .filter(|p| p.member(peer.id).is_some() && p.away_at() == Some(peer.id))
    else {
        return 1;
    };
    let Some(users) = p.mm().users() else {
        return 1;
    };
    let lock = users.read();
    // Private anonymous memory only: there the shell's PTE of a page the home holds is empty.
    // In a file mapping it may hold the shell's own file page, which an install does not
    // replace: the page would stay lent here, unconfirmed, and the home's own fault on it
    // would wait for a confirmation that never comes (seen: stress's .data, SIGBUS).
    let Some(vma) = lock
        .vma(addr)
        .filter(|v| v.anon_private() && !v.executable())
    else {
        return 1;
    };
    let mut n = 1;
    while n < count as usize {
        let a = addr + (n * PAGE_SIZE) as u64;
        // Past the mapping, or the fetcher's already (an answer lost: it asks for that one).
        if a >= vma.end() || vma.remote_run(a, peer.id, 1) == 1 {
            break;
        }
        let page = &mut buf[n * PAGE_SIZE..(n + 1) * PAGE_SIZE];
        let marker = mm::marker(peer.id, false);
        // Another node's, in flight, or held by someone (EAGAIN, EBUSY): the run ends.
        let Ok(t) = vma.take(a, page, marker) else {
            break;
        };
        if matches!(t, Taken::Build) {
            // Nothing here to send: the page stays the home's, as it was. (Marked for the
            // fetcher, it would wait lent for a confirmation the fetcher never sends, since
            // it was never told: the home's own fault on it would end in SIGBUS.)
            if vma.clear_marker(a, marker).is_err() {
                // Not ours to undo (cannot happen under the mmap lock): it is the fetcher's
                // to build, as a lost answer's would be.
                let mut transfers = p.transfers();
                if transfers
                    .lent
                    .lend_build(a, LentTo::Answer(peer.id))
                    .is_err()
                {
                    transfers.lent.dropped += 1;
                }
                drop(transfers);
                p.add_remote(1);
            }
            break;
        }
        let mut transfers = p.transfers();
        let lent = &mut transfers.lent;
        if lent.lend(a, LentTo::Answer(peer.id), page).is_err() {
            lent.dropped += 1;
        }
        drop(transfers);
        p.add_remote(1);
        p.counters().fetched.fetch_add(1, Relaxed);
        n += 1;
    }
    n
}

/// Sends (through `send`) the answer to a `Fetch`: the page, a build status or an error.
fn send_fetched(
    send: impl FnOnce(&Message<'_>) -> Result,
    req: u32,
    addr: u64,
    r: Result<Taken>,
    page: &[u8],
) -> Result {
    let (status, n) = match r {
        Ok(Taken::Data) => (0, page.len()),
        Ok(Taken::Build) => (PAGES_BUILD, 0),
        Err(err) => (err.to_errno(), 0),
    };
    send(&Message::Pages(Pages {
        req,
        status,
        addr,
        pages: &page[..n],
    }))
}

/// A fetch of a page a third node owns, for its own thread.
struct Relay {
    node: &'static Node,
    peer: Arc<Peer>,
    req: u32,
    pid: u32,
    addr: u64,
    buf: KVVec<u8>,
}

fn relay(mut job: Relay) {
    let r = take_for_fetch(
        job.node,
        &job.peer,
        job.pid,
        job.addr,
        &mut job.buf[..PAGE_SIZE],
        true,
    );
    // Not sent: the fetcher's connection is gone (or the failed send closed it), and with it
    // the fetch, which fails there; a page taken for it stays lent here.
    let _ = send_fetched(
        |m| job.peer.send(m),
        job.req,
        job.addr,
        r,
        &job.buf[..PAGE_SIZE],
    );
    job.peer.relays.fetch_sub(1, Relaxed);
}

/// Either side: `peer` confirms pages it installed; the copies kept lent here go. From the
/// home: pages our shell of its process `pid` gave it; from a member: pages our process
/// `pid` lent to it (a fetch answer), for which faults here may be waiting.
/// With `keep` (from the home), the copies of data it answered stay as clean copies while
/// this node has room for them.
pub(crate) fn serve_took(peer: &Peer, pid: u32, from_home: bool, addr: u64, count: u32, keep: u32) {
    if from_home {
        if let Some(s) = shell::shells().and_then(|s| s.find(peer.id, pid)) {
            let room = keep != 0 && clean_room();
            s.lent.lock().took(peer.id, addr, count, keep, room);
        }
    } else if let Some(p) = home::procs()
        .and_then(|procs| procs.by_pid(pid as i32))
        .filter(|p| p.member(peer.id).is_some())
    {
        p.transfers().lent.took(peer.id, addr, count, 0, false);
        p.push_gate().notify_settled();
    }
}

/// Member: whether this node keeps more clean copies: under their cap, and while memory is
/// not short (the pusher drops them all when it is).
fn clean_room() -> bool {
    let (total, avail) = mm::memory_pages();
    lent::clean_pages() < lent::MAX_CLEAN && avail >= Watermarks::for_total(total).high
}
