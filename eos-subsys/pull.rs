// SPDX-License-Identifier: GPL-2.0

//! Pull: a fault on a page owned elsewhere brings it to the faulting node.
//!
//! - Home, marker fault ([`home_fault`]): the PTE holds a marker naming the owner; the home
//!   asks it for a run of pages (`Pull`, answered by `Pages`), installs them and runs on, or
//!   jumps to the data instead if the jump policy says so. [`recall`] pulls a whole range (a
//!   layout change needs its pages home).
//! - Shell, empty-PTE fault ([`shell_fault`]): while the shell runs the process an empty PTE
//!   is a page the home owns; the shell fetches it (`Fetch`), or jumps home.
//! - Member, serving: [`serve_pull`] hands the home the pages it asks back; the home serves a
//!   fetch ([`serve_fetch`]), relaying a page a third node owns through itself.

use crate::home::{self, Proc};
use crate::link::Conn;
use crate::node::{peer_warn, Node, Peer};
use crate::policy::pull_count;
use crate::proto::{JumpReason, Message, Pages, MAX_BATCH, PAGES_BUILD, PAGE_SIZE};
use crate::rpc::{self, Answer, CallError};
use crate::shell;
use crate::sys::{
    hooks::{FaultReply, MarkerFault},
    mm::{self, Taken, Vma},
    task::TaskRef,
    time,
};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::{prelude::*, sync::Arc};

/// How long a fault waits for its pages (a pull, a fetch or a relay).
const PULL_TIMEOUT_MS: u32 = 10_000;
/// How long a fault on a page being pushed waits for the push to settle.
const SETTLE_TIMEOUT_MS: u32 = 10_000;

/// Pages fetched per remote fault (1: no prefetch); `/sys/kernel/elastic/prefetch`.
pub(crate) static PREFETCH: AtomicU64 = AtomicU64::new(8);

/// Why pages did not come.
enum PullErr {
    /// The owner did not hand them over.
    Call(CallError),
    /// Its answer does not fit the request.
    Reply,
    /// The first page could not be installed (or its marker cleared).
    Install(Error),
}

impl PullErr {
    fn errno(&self) -> Error {
        match self {
            Self::Call(c) => c.errno(),
            Self::Reply => EIO,
            Self::Install(e) => *e,
        }
    }
}

/// Pages settled by a pull.
struct Pulled {
    /// How many pages from the address are settled (at least one).
    pages: u32,
    /// Whether data came (rather than the owner never having had any, so that the page is
    /// built here).
    data: bool,
}

/// Moves up to `count` pages from `addr` that `owner` owns into `p`'s address space.
fn transfer(
    p: &Proc,
    vma: &Vma<'_>,
    addr: u64,
    owner: &Peer,
    count: u32,
) -> Result<Pulled, PullErr> {
    let answer = rpc::call(owner, count as usize, PULL_TIMEOUT_MS, |req| {
        Message::Pull {
            req,
            pid: p.pid as u32,
            addr,
            count,
        }
    })
    .map_err(PullErr::Call)?;
    let marker = mm::marker(owner.id, false);
    match answer {
        Answer::Build => {
            // The owner never had data there: the page is built here the ordinary way.
            vma.clear_marker(addr, marker).map_err(PullErr::Install)?;
            p.remote.fetch_sub(1, Relaxed);
            Ok(Pulled {
                pages: 1,
                data: false,
            })
        }
        Answer::Pages { addr: at, data } => {
            let n = data.len() / PAGE_SIZE;
            if at != addr || n == 0 || n > count as usize {
                return Err(PullErr::Reply);
            }
            let mut first = Ok(());
            for i in 0..n {
                let a = addr + (i * PAGE_SIZE) as u64;
                let page = &data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                let r = home::install_or_poison(
                    p,
                    vma,
                    a,
                    marker,
                    page,
                    format_args!("from node {}", owner.id),
                );
                if i == 0 {
                    first = r;
                }
            }
            // Lost pages left the owner too: they are nobody's now.
            p.remote.fetch_sub(n as i64, Relaxed);
            first.map_err(PullErr::Install)?;
            Ok(Pulled {
                pages: n as u32,
                data: true,
            })
        }
        _ => Err(PullErr::Reply),
    }
}

/// The fault path's pull: counts it, and says how the fault ends if it failed.
fn pull_pages(
    p: &Proc,
    vma: &Vma<'_>,
    addr: u64,
    owner: &Peer,
    count: u32,
) -> Result<u32, FaultReply> {
    match transfer(p, vma, addr, owner, count) {
        Ok(got) => {
            p.counters.pulls.fetch_add(1, Relaxed);
            if got.data {
                p.counters.pulled.fetch_add(got.pages as u64, Relaxed);
            }
            Ok(got.pages)
        }
        Err(PullErr::Call(CallError::NotSent(e))) if e == ENOMEM => Err(FaultReply::Oom),
        Err(PullErr::Call(c)) => {
            pr_err!(
                "pid {} ({}): pull of {:#x} from node {} failed ({:?}); killing it with SIGBUS\n",
                p.pid,
                p.comm(),
                addr,
                owner.id,
                c.errno()
            );
            Err(FaultReply::SigBus)
        }
        Err(_) => Err(FaultReply::SigBus),
    }
}

/// Home: a fault on a page owned by another node (or on its way there).
pub(crate) fn home_fault(vma: Vma<'_>, f: MarkerFault) -> FaultReply {
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
        proc.wait_settled(SETTLE_TIMEOUT_MS);
        return FaultReply::Ok;
    }
    let Some(owner) = proc.member(f.owner) else {
        peer_warn!(
            node,
            "pid {}: page {:#x} owned by unexpected node {}\n",
            proc.pid,
            addr,
            f.owner
        );
        return FaultReply::SigBus;
    };
    if crate::jump::home_fault_jumps(&proc, f.user, f.owner) {
        // Execution goes to the page instead; the instruction runs again over there.
        return FaultReply::Ok;
    }
    let t0 = time::now_ns();
    let run = vma.remote_run(addr, f.owner, MAX_BATCH as u32);
    if run == 0 {
        return FaultReply::Ok;
    }
    let count = pull_count(PREFETCH.load(Relaxed) as u32, run);
    match pull_pages(&proc, &vma, addr, &owner, count) {
        Ok(_) => {
            proc.counters.fault_lat.record_ns(time::now_ns() - t0);
            FaultReply::Ok
        }
        Err(f) => f,
    }
}

/// Home: brings every page of `[start, end)` that a member owns back.
pub(crate) fn recall(p: &Proc, start: u64, end: u64) -> Result {
    let members = p.members();
    let users = p.mm.users().ok_or(ESRCH)?;
    let lock = users.read();
    for v in lock.vmas_in(start, end) {
        let (mut a, stop) = (start.max(v.start()), v.end().min(end));
        if v.remote_count(a, stop) == 0 {
            continue;
        }
        while a < stop {
            let owner = members.iter().find_map(|m| {
                let run = v.remote_run(a, m.id, MAX_BATCH as u32);
                (run > 0).then_some((m, run))
            });
            let Some((m, run)) = owner else {
                a += PAGE_SIZE as u64;
                continue;
            };
            let n = pull_pages(p, &v, a, m, run).map_err(|_| EIO)?;
            a += n as u64 * PAGE_SIZE as u64;
        }
    }
    Ok(())
}

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
    if user
        && shell
            .policy
            .lock()
            .on_remote_fault(&crate::jump::tunables(), now)
    {
        crate::jump::request_shell_leave(&shell, JumpReason::RemoteFaults, false);
        if matches!(shell.run(), shell::Run::Leaving { .. }) {
            return FaultReply::NoPage;
        }
    }
    let Some(home) = node.find_peer(shell.home) else {
        return FaultReply::SigBus;
    };
    let r = rpc::call(&*home, 1, PULL_TIMEOUT_MS, |req| Message::Fetch {
        req,
        pid: shell.home_pid,
        addr,
    });
    let answer = match r {
        Ok(a) => a,
        Err(CallError::NotSent(e)) if e == ENOMEM => return FaultReply::Oom,
        Err(c) => {
            let err = c.errno();
            if err == EAGAIN {
                // On its way here (a push): wait for it.
                time::sleep_ms_uninterruptible(1);
                return FaultReply::NoPage;
            }
            if err == EINVAL || err == EFAULT {
                // Not a page the home hands over (the vDSO, whose clock must be the home's;
                // an address the home does not map): the fault goes home and runs there.
                return FaultReply::SigBus;
            }
            peer_warn!(
                node,
                "shell of pid {}: fetch of {:#x} from node {} failed ({:?})\n",
                shell.home_pid,
                addr,
                shell.home,
                err
            );
            return FaultReply::SigBus;
        }
    };
    shell.counters.fetches.fetch_add(1, Relaxed);
    shell.counters.fetch_lat.record_ns(time::now_ns() - now);
    match answer {
        Answer::Build => FaultReply::Ok,
        Answer::Pages { addr: at, data } if at == addr && data.len() == PAGE_SIZE => {
            match home::install_retrying(&vma, addr, 0, &data) {
                Ok(()) => FaultReply::NoPage,
                Err(err) => {
                    // The home gave the page up (its PTE names this node now): without it
                    // here its data is lost. The process ends (the shell's death reaches
                    // the home as `Gone`), never to read the page built anew as zeros.
                    pr_err!(
                        "shell of pid {}: page {:#x} from node {} could not be installed ({:?}); its data is lost: ending the process\n",
                        shell.home_pid,
                        addr,
                        shell.home,
                        err
                    );
                    TaskRef::current().signal(kernel::bindings::SIGKILL);
                    FaultReply::SigBus
                }
            }
        }
        _ => FaultReply::SigBus,
    }
}

/// Member: takes up to `count` pages from `addr`; returns how many (the prefix that was
/// here). 0: the first page has no data here (never written while the process ran here):
/// the home builds it itself.
fn take_pages(peer: &Peer, pid: u32, addr: u64, count: u32, buf: &mut [u8]) -> Result<usize> {
    let (_shell, m) = shell::shells().ok_or(ENODEV)?.with_mm(peer.id, pid)?;
    let users = m.users().ok_or(ESRCH)?;
    let lock = users.read();
    let mut n = 0;
    for i in 0..count as usize {
        let a = addr + (i * PAGE_SIZE) as u64;
        let Some(vma) = lock.vma(a) else { break };
        match vma.take(a, &mut buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE], 0) {
            Ok(Taken::Data) => n += 1,
            Ok(Taken::Build) if i == 0 => return Ok(0),
            Ok(Taken::Build) => break,
            Err(e) if i == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(n)
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
    let (status, n) = match take_pages(peer, pid, addr, count, &mut buf) {
        Ok(0) => (PAGES_BUILD, 0),
        Ok(n) => (0, n),
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
    let users = p.mm.users().ok_or(ESRCH)?;
    let lock = users.read();
    let vma = lock.vma(addr).ok_or(EFAULT)?;
    let t = match vma.take(addr, buf, mm::marker(peer.id, false)) {
        Err(err) if err == EAGAIN && relay => {
            // Owned by a third node: bring it here first, then hand it on.
            let Some(owner) = p
                .members()
                .into_iter()
                .find(|m| m.id != peer.id && vma.remote_run(addr, m.id, 1) == 1)
            else {
                return Err(EAGAIN);
            };
            transfer(&p, &vma, addr, &owner, 1).map_err(|e| e.errno())?;
            vma.take(addr, buf, mm::marker(peer.id, false))?
        }
        r => r?,
    };
    p.remote.fetch_add(1, Relaxed);
    p.counters.fetched.fetch_add(1, Relaxed);
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
) -> Result {
    let mut buf = KVVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
    let r = take_for_fetch(node, peer, pid, addr, &mut buf, false);
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
    send_fetched(|m| conn.send(m), req, addr, r, &buf)
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
        Ok(Taken::Data) => (0, PAGE_SIZE),
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
    let r = take_for_fetch(job.node, &job.peer, job.pid, job.addr, &mut job.buf, true);
    let _ = send_fetched(|m| job.peer.send(m), job.req, job.addr, r, &job.buf);
    job.peer.relays.fetch_sub(1, Relaxed);
}
