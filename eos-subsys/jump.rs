// SPDX-License-Identifier: GPL-2.0

//! Jump: the execution of a stretched process moves to the node that holds its data.
//!
//! The process's own task never leaves home. Jumping away, it saves its user CPU state, sends
//! it to the shell on the peer and sleeps at home; the shell's task loads the state and runs
//! the process from the same instruction. Coming back is the same in reverse. So:
//! - every syscall of the process runs at home: the shell rewinds to the `syscall`
//!   instruction and jumps home (`elastic_syscall`), so files, pids, clocks, brk/mmap and exit
//!   are exactly the home's, and the exit status reaches the parent at home;
//! - a signal for the process arrives at its home task, which recalls execution; SIGKILL ends
//!   it at once (its exit releases the shell);
//! - pages: in the shell an empty PTE is a page the home owns; touching it fetches it
//!   (`missing`), and the home's PTE becomes a marker naming the shell's node.
//!
//! Each side keeps its own [`JumpPolicy`]: remote faults that come fast move execution to
//! the data instead of the data to execution.

use crate::node::{peer_warn, Node, Peer};
use crate::policy::JumpTunables;
use crate::process::{send, Proc};
use crate::proto::{Jump, JumpReason, Message, PAGES_BUILD, PAGE_SIZE};
use crate::shell::Shell;
use crate::stats::Stats;
use crate::sys::{
    arch,
    errno::e,
    mm::{self, Taken, Vma},
    task::{self, TaskRef},
    time,
};
use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    bindings, new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    time::msecs_to_jiffies,
};

/// How long a jump waits for the target to confirm it runs the process.
const JUMP_TIMEOUT_MS: u32 = 5_000;
/// How long a fault away from home waits for its page.
const FETCH_TIMEOUT_MS: u32 = 10_000;
/// Jumps kept in the node's log.
const LOG_LEN: usize = 64;

/// Execution arriving: what the receive thread hands to the task that will run it.
pub(crate) struct Arrival {
    pub(crate) req: u32,
    pub(crate) from: u16,
    pub(crate) reason: JumpReason,
    pub(crate) state: KVVec<u8>,
    pub(crate) ranges: KVVec<u8>,
    pub(crate) files: KVVec<u8>,
    /// The page under the stack pointer and its address, if it came along.
    pub(crate) stack: Option<(u64, KVVec<u8>)>,
}

impl Arrival {
    /// Copies a received `Jump` out of the receive buffer.
    pub(crate) fn from_msg(from: u16, j: &Jump<'_>) -> Result<Self> {
        fn copy(b: &[u8]) -> Result<KVVec<u8>> {
            let mut v = KVVec::with_capacity(b.len(), GFP_KERNEL)?;
            v.extend_from_slice(b, GFP_KERNEL)?;
            Ok(v)
        }
        let stack = if j.stack.is_empty() { None } else { Some((j.stack_addr, copy(j.stack)?)) };
        Ok(Self {
            stack,
            req: j.req,
            from,
            reason: j.reason,
            state: copy(j.state)?,
            ranges: copy(j.ranges)?,
            files: copy(j.files)?,
        })
    }
}

#[derive(Clone, Copy, Default)]
struct Rec {
    t_ns: u64,
    pid: u32,
    from: u16,
    to: u16,
    reason: u8,
    lat_us: u32,
}

struct Log {
    recs: [Rec; LOG_LEN],
    total: u64,
}

/// Node-wide jump settings and the log of recent jumps.
#[pin_data]
pub(crate) struct Jumps {
    #[pin]
    pub(crate) tunables: Mutex<JumpTunables>,
    #[pin]
    log: Mutex<Log>,
}

impl Jumps {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            tunables <- new_mutex!(JumpTunables::default()),
            log <- new_mutex!(Log {
                recs: [Rec::default(); LOG_LEN],
                total: 0,
            }),
        })
    }

    fn record(&self, pid: u32, from: u16, to: u16, reason: JumpReason, lat_ns: u64) {
        let mut l = self.log.lock();
        let i = (l.total % LOG_LEN as u64) as usize;
        l.recs[i] = Rec {
            t_ns: time::now_ns(),
            pid,
            from,
            to,
            reason: reason as u8,
            lat_us: (lat_ns / 1000).min(u32::MAX as u64) as u32,
        };
        l.total += 1;
    }

    /// `jumplog`: the most recent jumps, oldest first. `lat_us` is measured by the node that
    /// sent the jump: from saving the state to the target's confirmation that it runs it.
    pub(crate) fn write_log(&self, w: &mut impl Write) -> core::fmt::Result {
        let l = self.log.lock();
        writeln!(w, "total {}", l.total)?;
        let n = l.total.min(LOG_LEN as u64);
        for k in (l.total - n)..l.total {
            let r = &l.recs[(k % LOG_LEN as u64) as usize];
            let reason = JumpReason::from_u8(r.reason).map_or("?", |x| x.name());
            writeln!(
                w,
                "t_ms={} pid={} from={} to={} reason={} lat_us={}",
                r.t_ns / 1_000_000,
                r.pid,
                r.from,
                r.to,
                reason,
                r.lat_us
            )?;
        }
        Ok(())
    }

    /// `jump`: the tunables, one `key=value` per line.
    pub(crate) fn write_tunables(&self, w: &mut impl Write) -> core::fmt::Result {
        let t = *self.tunables.lock();
        writeln!(w, "enabled={}", t.enabled as u8)?;
        writeln!(w, "threshold={}", t.threshold)?;
        writeln!(w, "max_threshold={}", t.max_threshold)?;
        writeln!(w, "min_rate_us={}", t.min_rate_ns / 1000)?;
        writeln!(w, "slack_us={}", t.slack_ns / 1000)?;
        writeln!(w, "min_stay_us={}", t.min_stay_ns / 1000)
    }

    /// Applies `key=value` settings separated by blanks or newlines; all or nothing.
    pub(crate) fn set_tunables(&self, s: &str) -> Result {
        let mut t = *self.tunables.lock();
        for kv in s.split_whitespace() {
            let (k, v) = kv.split_once('=').ok_or(EINVAL)?;
            let v: u64 = v.parse().map_err(|_| EINVAL)?;
            if !t.set(k, v) {
                return Err(EINVAL);
            }
        }
        *self.tunables.lock() = t;
        Ok(())
    }

    fn tunables(&self) -> JumpTunables {
        *self.tunables.lock()
    }
}

/// Why a jump did not happen.
enum JumpErr {
    /// The target said no, or the message never left: the sender just runs on.
    Refused(Error),
    /// No confirmation: the target may or may not run the process. It must die.
    Lost(Error),
}

fn send_jump(node: &Node, peer: &Peer, j: Jump<'_>) -> core::result::Result<(), JumpErr> {
    let w = peer.pending.register(0).map_err(JumpErr::Refused)?;
    let m = Message::Jump(Jump { req: w.req, ..j });
    if let Err(err) = send(peer, node, &m) {
        peer.pending.remove(&w);
        return Err(JumpErr::Refused(err));
    }
    let r = w.wait(JUMP_TIMEOUT_MS);
    peer.pending.remove(&w);
    match r {
        Ok(()) => Ok(()),
        // `value` is set when the target itself answered.
        Err(err) if w.reply.lock().value == 1 => Err(JumpErr::Refused(err)),
        Err(err) => Err(JumpErr::Lost(err)),
    }
}

fn ack(node: &Node, to: u16, req: u32, status: i32) {
    if let Some(peer) = node.find_peer(to) {
        let _ = send(&peer, node, &Message::JumpAck { req, status });
    }
}

fn kill_current() {
    TaskRef::current().signal(bindings::SIGKILL);
}

// ---- home side -------------------------------------------------------------------------

/// Makes the home task of `p` jump to member node `to` on its way to user mode (`kick`:
/// interrupt it if it runs in user mode now).
pub(crate) fn request_home_leave(
    p: &Arc<Proc>,
    task: &TaskRef,
    reason: JumpReason,
    kick: bool,
    to: u16,
) -> Result {
    if p.away.load(Relaxed) || p.dead.load(Relaxed) {
        return Ok(());
    }
    if p.leaving.swap(true, Relaxed) {
        return Ok(());
    }
    p.leave_reason.store(reason as u64, Relaxed);
    p.leave_target.store(to as u64, Relaxed);
    task.queue_work(p.clone(), home_leave, kick).inspect_err(|_| p.leaving.store(false, Relaxed))
}

/// Takes the page under the stack pointer of `image` from `mm` for the jump, leaving
/// `marker` (0 in a shell: an empty PTE there already means "at home"). Returns its address
/// if it had data; a page with nothing to move stays as it was.
fn take_stack(mm: &mm::MmRef, image: &[u8], marker: u64, page: &mut [u8]) -> u64 {
    let Some(sp) = arch::stack_pointer(image) else { return 0 };
    let addr = sp & !(PAGE_SIZE as u64 - 1);
    let Some(users) = mm.users() else { return 0 };
    let lock = users.read();
    let Some(vma) = lock.vma(addr) else { return 0 };
    match vma.take(addr, page, marker) {
        Ok(Taken::Data) => addr,
        Ok(Taken::Build) => {
            if marker != 0 {
                // Nothing to carry: leave it to be built where it is touched first.
                let _ = vma.clear_marker(addr, marker);
            }
            0
        }
        Err(_) => 0,
    }
}

/// Installs a page that came with a jump, over `expect` (0: an empty PTE).
fn install_stack(mm: &mm::MmRef, addr: u64, page: &[u8], expect: u64) -> Result {
    let users = mm.users().ok_or(ESRCH)?;
    let lock = users.read();
    let vma = lock.vma(addr).ok_or(EFAULT)?;
    vma.install(addr, expect, page, false)
}

/// Task work of the home task: jump to the peer, then sleep until execution comes back.
fn home_leave(p: Arc<Proc>) {
    p.leaving.store(false, Relaxed);
    let Some(node) = crate::node::get() else { return };
    if p.dead.load(Relaxed) || p.away.load(Relaxed) || task::signal_pending() {
        // A signal first (it would recall the process at once).
        return;
    }
    let reason = JumpReason::from_u8(p.leave_reason.load(Relaxed) as u8).unwrap_or(JumpReason::Asked);
    let Some(target) = p.member(p.leave_target.load(Relaxed) as u16) else { return };
    let t0 = time::now_ns();
    let Ok(mut state) = KVVec::from_elem(0u8, arch::state_size(), GFP_KERNEL) else { return };
    let n = match arch::save(&mut state) {
        Ok(n) => n,
        Err(err) => {
            pr_warn!("pid {}: cannot save its CPU state ({:?}); it stays here\n", p.pid, err);
            return;
        }
    };
    let maps = match crate::mapsync::home_ranges(&p.mm) {
        Ok(r) => r,
        Err(err) => {
            // Every try would fail the same way until the layout changes: the policy stops
            // trying (the faults that asked for this jump pull their pages instead).
            if err == E2BIG {
                p.too_many_maps.store(p.mm.map_count(), Relaxed);
                Stats::inc(&node.stats.jumps_too_many_maps);
            }
            p.policy.lock().on_departure(&node.jumps.tunables(), time::now_ns());
            peer_warn!(node, "pid {}: its mappings do not fit in a jump ({:?}); it stays here\n", p.pid, err);
            return;
        }
    };
    let Ok(mut page) = KVVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL) else { return };
    let marker = mm::marker(target.id, false);
    let stack_addr = take_stack(&p.mm, &state[..n], marker, &mut page);
    // Before sending: once there, the process may fetch pages from us at once.
    p.away_at.store(target.id as u64, Relaxed);
    p.away.store(true, Relaxed);
    let j = Jump {
        req: 0,
        pid: p.pid as u32,
        to_home: false,
        reason,
        state: &state[..n],
        ranges: &maps.ranges,
        files: &maps.files,
        stack: if stack_addr != 0 { &page } else { &[] },
        stack_addr,
    };
    match send_jump(node, &target, j) {
        Ok(()) => {}
        Err(JumpErr::Refused(err)) => {
            p.away.store(false, Relaxed);
            // Back off: each refusal doubles this node's threshold.
            p.policy.lock().on_departure(&node.jumps.tunables(), time::now_ns());
            if stack_addr != 0 && install_stack(&p.mm, stack_addr, &page, marker).is_err() {
                pr_err!("pid {}: cannot put its stack page back; killing it\n", p.pid);
                kill_current();
            }
            peer_warn!(node, "pid {}: jump to node {} refused ({:?}); it runs on here\n", p.pid, target.id, err);
            return;
        }
        Err(JumpErr::Lost(err)) => {
            pr_err!(
                "pid {}: jump to node {} not confirmed ({:?}); killing it, it may run there\n",
                p.pid,
                target.id,
                err
            );
            kill_current();
            return;
        }
    }
    if stack_addr != 0 {
        p.remote.fetch_add(1, Relaxed);
    }
    let left = time::now_ns();
    let lat = left - t0;
    p.jumps.fetch_add(1, Relaxed);
    p.jump_lat.record_ns(lat);
    node.jumps.record(p.pid as u32, node.id(), target.id, reason, lat);
    p.policy.lock().on_departure(&node.jumps.tunables(), left);

    let mut recalled = false;
    loop {
        let mut inbox = p.inbox.lock();
        if let Some(a) = inbox.take() {
            drop(inbox);
            p.away_ns.fetch_add(time::now_ns() - left, Relaxed);
            home_arrive(node, &p, a);
            return;
        }
        if task::fatal_signal_pending() || p.dead.load(Relaxed) {
            // The process dies here; its exit releases the shell that runs it.
            return;
        }
        if !recalled && task::signal_pending() {
            drop(inbox);
            recalled = true;
            let _ = send(&target, node, &Message::Recall { pid: p.pid as u32 });
            continue;
        }
        if let kernel::sync::CondVarTimeoutResult::Signal { .. } =
            p.inbox_cv.wait_interruptible_timeout(&mut inbox, msecs_to_jiffies(100))
        {
            // A signal that cannot be delivered before execution is back: poll.
            drop(inbox);
            time::sleep_ms_uninterruptible(1);
        }
    }
}

fn home_arrive(node: &Node, p: &Proc, a: Arrival) {
    if let Some((addr, page)) = &a.stack {
        if let Err(err) = install_stack(&p.mm, *addr, page, mm::marker(a.from, false)) {
            ack(node, a.from, a.req, err.to_errno());
            pr_err!("pid {}: its stack page from node {} does not fit ({:?}); killing it\n", p.pid, a.from, err);
            kill_current();
            return;
        }
        p.remote.fetch_sub(1, Relaxed);
    }
    match arch::load(&a.state) {
        Ok(()) => {
            ack(node, a.from, a.req, 0);
            p.away.store(false, Relaxed);
            p.policy.lock().on_arrival(time::now_ns());
        }
        Err(err) => {
            ack(node, a.from, a.req, err.to_errno());
            pr_err!(
                "pid {}: CPU state from node {} refused ({:?}); killing it\n",
                p.pid,
                a.from,
                err
            );
            kill_current();
        }
    }
}

/// Receive thread: execution of our process `pid` comes back from `peer`.
pub(crate) fn home_receive(node: &Node, peer: &Peer, j: &Jump<'_>) {
    let status = match node.procs.by_pid(j.pid as i32) {
        Some(p) if p.away_at.load(Relaxed) == peer.id as u64 && p.away.load(Relaxed) => match Arrival::from_msg(peer.id, j) {
            Ok(a) => {
                *p.inbox.lock() = Some(a);
                p.inbox_cv.notify_all();
                return;
            }
            Err(err) => err.to_errno(),
        },
        _ => {
            peer_warn!(node, "node {} sent back pid {}, which is not away there\n", peer.id, j.pid);
            EPERM.to_errno()
        }
    };
    ack(node, peer.id, j.req, status);
}

/// Receive thread: the process `pid`, away on `peer`, needs its page at `addr`.
pub(crate) fn serve_fetch(node: &Node, peer: &Peer, pid: u32, addr: u64, buf: &mut [u8]) -> Result<Taken> {
    let p = node.procs.by_pid(pid as i32).filter(|p| p.member(peer.id).is_some()).ok_or(ESRCH)?;
    if !p.away.load(Relaxed) || p.away_at.load(Relaxed) != peer.id as u64 {
        peer_warn!(node, "node {} fetched a page of pid {}, which does not run there\n", peer.id, pid);
        return Err(EPERM);
    }
    let users = p.mm.users().ok_or(ESRCH)?;
    let lock = users.read();
    let vma = lock.vma(addr).ok_or(EFAULT)?;
    let t = match vma.take(addr, buf, mm::marker(peer.id, false)) {
        Err(err) if err == EAGAIN => {
            // Owned by a third node: bring it here first, then hand it on.
            let Some(owner) = p.members().into_iter().find(|m| m.id != peer.id && vma.remote_run(addr, m.id, 1) == 1)
            else {
                return Err(EAGAIN);
            };
            pull_one(node, &p, &vma, addr, &owner)?;
            vma.take(addr, buf, mm::marker(peer.id, false))?
        }
        r => r?,
    };
    p.remote.fetch_add(1, Relaxed);
    p.fetched.fetch_add(1, Relaxed);
    Ok(t)
}

/// Receive thread: answers a `Fetch` with the page, a build status or an error.
pub(crate) fn serve_fetch_reply(
    node: &Node,
    peer: &Peer,
    conn: &crate::transport::Conn,
    req: u32,
    pid: u32,
    addr: u64,
) -> Result {
    let mut buf = KVVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL)?;
    let (status, n) = match serve_fetch(node, peer, pid, addr, &mut buf) {
        Ok(Taken::Data) => (0, PAGE_SIZE),
        Ok(Taken::Build) => (PAGES_BUILD, 0),
        Err(err) => (err.to_errno(), 0),
    };
    conn.send(
        node,
        &Message::Pages(crate::proto::Pages {
            req,
            status,
            addr,
            pages: &buf[..n],
        }),
    )
}

/// Receive thread: the shell running our process `pid` died there.
pub(crate) fn home_gone(node: &Node, peer: &Peer, pid: u32, signal: u32) {
    let Some(p) = node.procs.by_pid(pid as i32) else { return };
    if !p.away.load(Relaxed) || p.away_at.load(Relaxed) != peer.id as u64 {
        return;
    }
    let sig = if (1..32).contains(&signal) { signal } else { bindings::SIGKILL };
    pr_err!(
        "pid {}: died on node {} while running there (signal {}); ending it here with signal {}\n",
        pid,
        peer.id,
        signal,
        sig
    );
    p.dead.store(true, Relaxed);
    if let Some(t) = TaskRef::by_pid(p.pid) {
        t.signal(sig);
    }
    p.inbox_cv.notify_all();
}

/// Moves page `addr` of `p` from member `owner` back into the home's address space (for a
/// process away on another member: the home hands pages between its members).
fn pull_one(node: &Node, p: &Proc, vma: &Vma<'_>, addr: u64, owner: &Peer) -> Result {
    let w = owner.pending.register(1)?;
    let m = Message::Pull {
        req: w.req,
        pid: p.pid as u32,
        addr,
        count: 1,
    };
    let r = send(owner, node, &m).and_then(|()| w.wait(FETCH_TIMEOUT_MS));
    owner.pending.remove(&w);
    r?;
    let reply = w.reply.lock();
    let marker = mm::marker(owner.id, false);
    if reply.status == PAGES_BUILD {
        vma.clear_marker(addr, marker)?;
    } else {
        if reply.addr != addr || reply.data.len() != PAGE_SIZE {
            return Err(EIO);
        }
        vma.install(addr, marker, &reply.data, false)?;
    }
    p.remote.fetch_sub(1, Relaxed);
    Ok(())
}

// ---- shell side ------------------------------------------------------------------------

/// In the shell's task: run the process from `a`. False if it cannot (the home was told).
pub(crate) fn guest_arrive(seed: &crate::sys::umh::Seed, a: Arrival) -> bool {
    let Some(node) = crate::node::get() else { return false };
    let Some(shell) = node.shells.by_seed(seed) else {
        ack(node, a.from, a.req, ESRCH.to_errno());
        return false;
    };
    if let Err(err) = crate::mapsync::reconcile(node, &shell, &a.ranges, &a.files) {
        pr_warn!("shell of pid {}: cannot match its home's layout ({:?})\n", shell.home_pid, err);
        ack(node, a.from, a.req, err.to_errno());
        return false;
    }
    if let Some((addr, page)) = &a.stack {
        if let Err(err) = install_stack(&shell.mm, *addr, page, 0) {
            pr_warn!("shell of pid {}: stack page {:#x} does not fit ({:?})\n", shell.home_pid, addr, err);
            ack(node, a.from, a.req, err.to_errno());
            return false;
        }
    }
    if let Err(err) = arch::load(&a.state) {
        peer_warn!(node, "shell of pid {}: CPU state from node {} refused ({:?})\n", shell.home_pid, a.from, err);
        ack(node, a.from, a.req, err.to_errno());
        return false;
    }
    shell.running.store(true, Relaxed);
    shell.policy.lock().on_arrival(time::now_ns());
    shell.arrivals.fetch_add(1, Relaxed);
    ack(node, a.from, a.req, 0);
    let _ = a.reason;
    true
}

/// In the shell's task, its user state in its registers: send execution home and wait there
/// until it comes back. False: the task must die (it is told to).
pub(crate) fn guest_leave(shell: &Arc<Shell>, reason: JumpReason) -> bool {
    shell.leaving.store(false, Relaxed);
    let Some(node) = crate::node::get() else { return false };
    if !shell.running.load(Relaxed) {
        return true;
    }
    let Some(home) = node.find_peer(shell.home) else { return false };
    let t0 = time::now_ns();
    let Ok(mut state) = KVVec::from_elem(0u8, arch::state_size(), GFP_KERNEL) else { return false };
    let n = match arch::save(&mut state) {
        Ok(n) => n,
        Err(err) => {
            pr_err!("shell of pid {}: cannot save its CPU state ({:?})\n", shell.home_pid, err);
            return false;
        }
    };
    let Ok(mut page) = KVVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL) else { return false };
    let stack_addr = take_stack(&shell.mm, &state[..n], 0, &mut page);
    let j = Jump {
        req: 0,
        pid: shell.home_pid,
        to_home: true,
        reason,
        state: &state[..n],
        ranges: &[],
        files: &[],
        stack: if stack_addr != 0 { &page } else { &[] },
        stack_addr,
    };
    shell.running.store(false, Relaxed);
    if let Err(JumpErr::Refused(err) | JumpErr::Lost(err)) = send_jump(node, &home, j) {
        pr_err!(
            "shell of pid {}: node {} did not take its execution back ({:?}); ending it here\n",
            shell.home_pid,
            shell.home,
            err
        );
        return false;
    }
    let now = time::now_ns();
    shell.jumps.fetch_add(1, Relaxed);
    shell.jump_lat.record_ns(now - t0);
    node.jumps.record(shell.home_pid, node.id(), shell.home, reason, now - t0);
    shell.policy.lock().on_departure(&node.jumps.tunables(), now);
    while let Some(a) = shell.seed.wait_arrival() {
        if guest_arrive(&shell.seed, a) {
            return true;
        }
    }
    false
}

fn guest_leave_work(shell: Arc<Shell>) {
    let reason = JumpReason::from_u8(shell.leave_reason.load(Relaxed) as u8).unwrap_or(JumpReason::Faults);
    if !guest_leave(&shell, reason) {
        kill_current();
    }
}

/// Queues a jump home on the shell's task (`kick`: interrupt its user code now).
pub(crate) fn request_guest_leave(shell: &Arc<Shell>, reason: JumpReason, kick: bool) {
    if !shell.running.load(Relaxed) || shell.leaving.swap(true, Relaxed) {
        return;
    }
    shell.leave_reason.store(reason as u64, Relaxed);
    let task = shell.seed.state.lock().task.as_ref().map(|t| t.pid());
    let Some(t) = task.and_then(TaskRef::by_pid) else {
        shell.leaving.store(false, Relaxed);
        return;
    };
    if t.queue_work(shell.clone(), guest_leave_work, kick).is_err() {
        shell.leaving.store(false, Relaxed);
    }
}

/// The `syscall` hook: a shell's task running a process away from home made a syscall. The
/// caller rewound its registers to the `syscall` instruction; run it at home.
pub(crate) fn guest_syscall(shell: &Arc<Shell>) -> bool {
    shell.syscalls.fetch_add(1, Relaxed);
    if !guest_leave(shell, JumpReason::Syscall) {
        kill_current();
    }
    true
}

/// The shell's task took a fault signal (`sig`) running the process: a mapping it lacks, or a
/// fault of the program's own. Either way the home runs the instruction again, with the
/// home's mappings and signal handlers.
pub(crate) fn guest_fault(shell: &Arc<Shell>, sig: u32) -> bool {
    shell.faults.fetch_add(1, Relaxed);
    pr_debug!("shell of pid {}: signal {} while running it; the home retries\n", shell.home_pid, sig);
    if !guest_leave(shell, JumpReason::Fault) {
        kill_current();
    }
    true
}

/// What a fault on an empty PTE of a shell ends in.
pub(crate) enum Missing {
    /// Build the page the ordinary way (zeroes or file data): it is ours now.
    Build,
    /// The page is here now, or the fault is retried (after a jump, say).
    Retry,
    /// SIGBUS.
    SigBus,
    /// No memory.
    Oom,
}

/// A fault on an empty PTE in a shell: the page belongs to the home node, so fetch it (or
/// jump home if that is cheaper).
pub(crate) fn missing(vma: Vma<'_>, addr: u64, user: bool) -> Missing {
    let Some(node) = crate::node::get() else { return Missing::SigBus };
    let Some(shell) = node.shells.by_mm(vma.mm()) else { return Missing::Build };
    if TaskRef::current().pid() != shell.pid || !shell.running.load(Relaxed) {
        // Somebody else (a /proc reader) touching the shell's memory: those pages are not
        // here, and must not be built here either.
        return Missing::SigBus;
    }
    let now = time::now_ns();
    if user && shell.policy.lock().on_remote_fault(&node.jumps.tunables(), now) {
        request_guest_leave(&shell, JumpReason::Faults, false);
        if shell.leaving.load(Relaxed) {
            return Missing::Retry;
        }
    }
    let Some(home) = node.find_peer(shell.home) else { return Missing::SigBus };
    let w = match home.pending.register(1) {
        Ok(w) => w,
        Err(_) => return Missing::Oom,
    };
    let m = Message::Fetch {
        req: w.req,
        pid: shell.home_pid,
        addr,
    };
    let r = send(&home, node, &m).and_then(|()| w.wait(FETCH_TIMEOUT_MS));
    home.pending.remove(&w);
    if let Err(err) = r {
        if err == EAGAIN {
            // On its way here (a push): wait for it.
            time::sleep_ms_uninterruptible(1);
            return Missing::Retry;
        }
        if err == EINVAL || err == EFAULT {
            // Not a page the home hands over (the vDSO, whose clock must be the home's; an
            // address the home does not map): the fault goes home and runs there.
            return Missing::SigBus;
        }
        pr_err!(
            "shell of pid {}: fetch of {:#x} from node {} failed ({:?})\n",
            shell.home_pid,
            addr,
            shell.home,
            err
        );
        return Missing::SigBus;
    }
    let reply = w.reply.lock();
    shell.fetches.fetch_add(1, Relaxed);
    shell.fetch_lat.record_ns(time::now_ns() - now);
    if reply.status == PAGES_BUILD {
        return Missing::Build;
    }
    if reply.addr != addr || reply.data.len() != PAGE_SIZE {
        return Missing::SigBus;
    }
    match vma.install(addr, 0, &reply.data, false) {
        Ok(()) => Missing::Retry,
        Err(err) if err == ENOMEM => Missing::Oom,
        Err(_) => Missing::SigBus,
    }
}

/// The shell's address space is going away (`__mmput`). If it was running the process,
/// the process died here: tell its home, which ends it there with the same signal.
pub(crate) fn shell_exit(node: &Node, shell: &Shell) {
    if !shell.running.swap(false, Relaxed) {
        return;
    }
    let signal = shell.seed.state.lock().task.as_ref().map_or(0, |t| t.exit_signal());
    pr_warn!(
        "shell pid {} of process {} of node {} died running it (signal {})\n",
        shell.pid,
        shell.home_pid,
        shell.home,
        signal
    );
    if let Some(home) = node.find_peer(shell.home) {
        let _ = send(
            &home,
            node,
            &Message::Gone {
                pid: shell.home_pid,
                signal,
            },
        );
    }
}

/// Receive thread at the shell's node: execution of `pid` arrives from its home.
pub(crate) fn shell_receive(node: &Node, peer: &Peer, j: &Jump<'_>) {
    let status = match node.shells.find(peer.id, j.pid) {
        Some(s) if !s.running.load(Relaxed) => match Arrival::from_msg(peer.id, j) {
            Ok(a) => {
                s.seed.state.lock().arrival = Some(a);
                s.seed.cv.notify_all();
                return;
            }
            Err(err) => err.to_errno(),
        },
        Some(_) => EBUSY.to_errno(),
        None => ESRCH.to_errno(),
    };
    peer_warn!(node, "jump of pid {} from node {} refused: {}\n", j.pid, peer.id, status);
    ack(node, peer.id, j.req, status);
}

/// `elastic_jump(pid, node)`: move the process's execution to `to` (its home or its peer).
pub(crate) fn sys_jump(node: &'static Node, pid: i32, to: i32) -> Result<i64> {
    let task = if pid == 0 { TaskRef::current() } else { TaskRef::by_pid(pid).ok_or(ESRCH)? };
    if !task.caller_may_control() {
        return Err(EPERM);
    }
    let p = node.procs.by_pid(task.pid()).ok_or(ESRCH)?;
    let to = u16::try_from(to).map_err(|_| EINVAL)?;
    if to == node.id() {
        if p.away.load(Relaxed) {
            if let Some(at) = p.member(p.away_at.load(Relaxed) as u16) {
                send(&at, node, &Message::Recall { pid: p.pid as u32 })?;
            }
        }
        return Ok(0);
    }
    let target = p.member(to).ok_or(ENOENT)?;
    if p.away.load(Relaxed) {
        // It runs elsewhere; it comes home first (its next syscall, or a recall).
        return Err(EBUSY);
    }
    if target.link.lock().conn.is_none() {
        return Err(e(bindings::ENOTCONN));
    }
    request_home_leave(&p, &task, JumpReason::Asked, !task.is_current(), to)?;
    Ok(0)
}

/// The home fault path asks: jump to the page's owner instead of pulling? Queues the jump
/// if so.
pub(crate) fn home_fault_jumps(node: &Node, p: &Arc<Proc>, user: bool, owner: u16) -> bool {
    if !user || p.sticky.load(Relaxed) || !p.maps_may_fit() {
        return false;
    }
    let t = node.jumps.tunables();
    if !p.policy.lock().on_remote_fault(&t, time::now_ns()) {
        return false;
    }
    request_home_leave(p, &TaskRef::current(), JumpReason::Faults, false, owner).is_ok()
        && p.leaving.load(Relaxed)
}
