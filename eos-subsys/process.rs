// SPDX-License-Identifier: GPL-2.0

//! The home side of a stretched process: stretch, the remote-fault path (pull), the pusher
//! that moves cold pages out under memory pressure, and what happens when the process exits
//! or its peer dies.
//!
//! Invariant that keeps this simple: only the process itself (single-threaded) touches its
//! memory, and only this node changes the ownership of its pages: a pull is started by the
//! process's own fault, a push by our pusher, and the PTE lock orders the two.

use crate::node::{peer_warn, Node, Peer};
use crate::peer::LinkState;
use crate::jump::Arrival;
use crate::policy::{pages_to_push, pull_count, JumpPolicy, Watermarks};
use crate::proto::{Message, Push, Stretch, MAX_BATCH, MAX_STRETCH_STRINGS, PAGES_BUILD, PAGE_SIZE};
use crate::stats::LatencyHist;
use crate::sys::{
    crypto,
    errno::e,
    file::FileData,
    kthread,
    mm::{self, MmRef, Vma},
    task::{self, TaskRef},
    time,
};
use core::fmt::Write;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use kernel::{
    bindings, fmt, new_condvar, new_mutex,
    prelude::*,
    sync::{Arc, CondVar, Mutex},
    time::msecs_to_jiffies,
};

/// How long a fault waits for its pages.
const PULL_TIMEOUT_MS: u32 = 10_000;
/// How long a push waits for its acknowledgement.
const PUSH_TIMEOUT_MS: u32 = 10_000;
/// How long the shell's node may take to start a shell.
const STRETCH_TIMEOUT_MS: u32 = 15_000;
/// Most pages pushed for one process per pusher round.
const PUSH_ROUND: u64 = 512;

/// A stretched process, at home.
#[pin_data]
pub(crate) struct Proc {
    pub(crate) pid: i32,
    comm: [u8; 16],
    pub(crate) mm: MmRef,
    /// Its shell's pid on the node it was stretched to first.
    shell_pid: u32,
    /// The nodes it was stretched to (each holds a shell), first one first.
    #[pin]
    nodes: Mutex<KVec<Arc<Peer>>>,
    /// Round robin of push targets.
    push_rr: AtomicU64,
    /// Where it runs while `away`.
    pub(crate) away_at: AtomicU64,
    /// Where a queued jump goes.
    pub(crate) leave_target: AtomicU64,
    /// Local memory budget in pages (0: push only under node memory pressure).
    pub(crate) budget: AtomicU64,
    pub(crate) dead: AtomicBool,
    cursor: AtomicU64,
    /// Pages the peer owns.
    pub(crate) remote: AtomicI64,
    /// Execution is on the peer; the task here sleeps in `jump::home_leave`.
    pub(crate) away: AtomicBool,
    /// A jump is queued on the task.
    pub(crate) leaving: AtomicBool,
    pub(crate) leave_reason: AtomicU64,
    /// Pinned here: the policy never moves it.
    pub(crate) sticky: AtomicBool,
    /// Its VMA count when its mappings did not fit in a jump (0: they fit): the policy does
    /// not try again, each try failing the same way, until it has fewer VMAs.
    pub(crate) too_many_maps: AtomicU64,
    /// Execution coming back, handed over by the receive thread.
    #[pin]
    pub(crate) inbox: Mutex<Option<Arrival>>,
    #[pin]
    pub(crate) inbox_cv: CondVar,
    #[pin]
    pub(crate) policy: Mutex<JumpPolicy>,
    pub(crate) jumps: AtomicU64,
    pub(crate) jump_lat: LatencyHist,
    pub(crate) away_ns: AtomicU64,
    /// Pages the process fetched while away.
    pub(crate) fetched: AtomicU64,
    pulls: AtomicU64,
    pulled: AtomicU64,
    pushes: AtomicU64,
    pushed: AtomicU64,
    fault_lat: LatencyHist,
    /// Push batches begun and finished: a layout change waits for the ones under way.
    push_started: AtomicU64,
    push_done: AtomicU64,
    /// A layout syscall (munmap, mremap, ...) runs: the pusher leaves the process alone.
    layout_busy: AtomicBool,
    /// Layout syscalls that the members followed (discards sent, or pages recalled).
    pub(crate) layout_ops: AtomicU64,
    /// Bumped (and `settled` signalled) when in-flight pages are settled.
    #[pin]
    settle_gen: Mutex<u64>,
    #[pin]
    settled: CondVar,
}

impl Proc {
    /// The member node `id` (a node holding a shell of this process).
    pub(crate) fn member(&self, id: u16) -> Option<Arc<Peer>> {
        self.nodes.lock().iter().find(|p| p.id == id).cloned()
    }

    /// Every member node.
    pub(crate) fn members(&self) -> KVec<Arc<Peer>> {
        let mut v = KVec::new();
        for p in self.nodes.lock().iter() {
            let _ = v.push(p.clone(), GFP_KERNEL);
        }
        v
    }

    /// The node the next push batch goes to (round robin over the members).
    fn push_target(&self) -> Option<Arc<Peer>> {
        let nodes = self.nodes.lock();
        let n = nodes.len().max(1);
        nodes.get(self.push_rr.fetch_add(1, Relaxed) as usize % n).cloned()
    }

    /// Forgets member `id` (lost while it held none of the process's pages).
    fn drop_member(&self, id: u16) {
        let _ = crate::kvec::retain(&mut self.nodes.lock(), |p| p.id != id);
    }

    /// Pages of the process that node `id` owns, counted in its page table.
    fn pages_on(&self, id: u16) -> u64 {
        let Some(users) = self.mm.users() else { return 0 };
        let lock = users.read();
        lock.vmas_in(0, u64::MAX).map(|v| v.remote_count_on(v.start(), v.end(), Some(id))).sum()
    }

    fn notify_settled(&self) {
        *self.settle_gen.lock() += 1;
        self.settled.notify_all();
    }

    fn wait_settled(&self, ms: u32) {
        let mut g = self.settle_gen.lock();
        let start = *g;
        let deadline = time::now_ns() + ms as u64 * 1_000_000;
        while *g == start && time::now_ns() < deadline && !task::fatal_signal_pending() {
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } =
                self.settled.wait_interruptible_timeout(&mut g, msecs_to_jiffies(20))
            {
                drop(g);
                time::sleep_ms_uninterruptible(1);
                g = self.settle_gen.lock();
            }
        }
    }

    /// Stops the pusher for a layout change, and waits for the batch under way (its pages
    /// are settled afterwards: markers, or back here). Undone by [`Proc::layout_done`].
    pub(crate) fn layout_begin(&self) {
        self.layout_busy.store(true, SeqCst);
        let target = self.push_started.load(SeqCst);
        let deadline = time::now_ns() + 2 * PUSH_TIMEOUT_MS as u64 * 1_000_000;
        while self.push_done.load(SeqCst) < target && time::now_ns() < deadline && !self.dead.load(Relaxed) {
            self.wait_settled(20);
        }
    }

    /// See [`Proc::layout_begin`].
    pub(crate) fn layout_done(&self) {
        self.layout_busy.store(false, SeqCst);
    }

    /// The policy may try a jump: it has fewer VMAs than when its mappings last did not fit.
    pub(crate) fn maps_may_fit(&self) -> bool {
        let at = self.too_many_maps.load(Relaxed);
        at == 0 || self.mm.map_count() < at
    }

    /// Brings every page of `[start, end)` that a member owns back home.
    pub(crate) fn recall(&self, node: &Node, start: u64, end: u64) -> Result {
        let members = self.members();
        let users = self.mm.users().ok_or(ESRCH)?;
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
                let n = pull_pages(node, self, &v, a, m, run).map_err(|_| EIO)?;
                a += n as u64 * PAGE_SIZE as u64;
            }
        }
        Ok(())
    }

    fn comm(&self) -> &str {
        let n = self.comm.iter().position(|&c| c == 0).unwrap_or(16);
        core::str::from_utf8(&self.comm[..n]).unwrap_or("?")
    }

    /// One line of `/sys/kernel/elastic/procs`.
    pub(crate) fn write_to(&self, w: &mut impl Write) -> core::fmt::Result {
        writeln!(
            w,
            "pid={} comm={} node={} shell_pid={} local_pages={} remote_pages={} budget_pages={} \
             pulls={} pulled_pages={} pushes={} pushed_pages={} bytes_in={} bytes_out={} \
             fault_p50_us={} fault_p99_us={} away={} sticky={} jumps={} jump_p50_us={} \
             jump_p99_us={} away_ms={} fetched_pages={} layout_syscalls={}",
            self.pid,
            self.comm(),
            Nodes(&self.nodes.lock()),
            self.shell_pid,
            self.mm.anon_pages(),
            self.remote.load(Relaxed),
            self.budget.load(Relaxed),
            self.pulls.load(Relaxed),
            self.pulled.load(Relaxed),
            self.pushes.load(Relaxed),
            self.pushed.load(Relaxed),
            self.pulled.load(Relaxed) * PAGE_SIZE as u64,
            self.pushed.load(Relaxed) * PAGE_SIZE as u64,
            self.fault_lat.percentile_us(50),
            self.fault_lat.percentile_us(99),
            self.away.load(Relaxed) as u8,
            self.sticky.load(Relaxed) as u8,
            self.jumps.load(Relaxed),
            self.jump_lat.percentile_us(50),
            self.jump_lat.percentile_us(99),
            self.away_ns.load(Relaxed) / 1_000_000,
            self.fetched.load(Relaxed),
            self.layout_ops.load(Relaxed),
        )
    }
}

/// The further member nodes, as `,3,4` after the first.
struct Nodes<'a>(&'a KVec<Arc<Peer>>);

impl core::fmt::Display for Nodes<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            write!(f, "{}{}", if i == 0 { "" } else { "," }, p.id)?;
        }
        Ok(())
    }
}

/// A process marked elastic that is not stretched yet.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    pid: i32,
    budget: u64,
}

/// Home-side registry of the node.
#[pin_data]
pub(crate) struct Procs {
    #[pin]
    list: Mutex<KVec<Arc<Proc>>>,
    #[pin]
    marks: Mutex<KVec<Mark>>,
    /// Wakes the pusher early (memory is short).
    #[pin]
    kick: Mutex<bool>,
    #[pin]
    kick_cv: CondVar,
    /// Pages fetched per remote fault (1: no prefetch).
    pub(crate) prefetch: AtomicU64,
    /// Number of marks, so the overcommit hook costs nothing when there are none.
    marked: AtomicU64,
}

impl Procs {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_mutex!(KVec::new()),
            marks <- new_mutex!(KVec::new()),
            kick <- new_mutex!(false),
            kick_cv <- new_condvar!(),
            prefetch: AtomicU64::new(8),
            marked: AtomicU64::new(0),
        })
    }

    pub(crate) fn by_mm(&self, mm: *mut bindings::mm_struct) -> Option<Arc<Proc>> {
        self.list.lock().iter().find(|p| p.mm.as_ptr() == mm).cloned()
    }

    pub(crate) fn by_pid(&self, pid: i32) -> Option<Arc<Proc>> {
        self.list.lock().iter().find(|p| p.pid == pid).cloned()
    }

    fn snapshot(&self) -> Result<KVec<Arc<Proc>>> {
        let list = self.list.lock();
        let mut v = KVec::with_capacity(list.len(), GFP_KERNEL)?;
        for p in list.iter() {
            v.push(p.clone(), GFP_KERNEL)?;
        }
        Ok(v)
    }

    /// The process is no longer stretched (it exited, or lost its nodes): off the list, and
    /// whoever waits on its pushes wakes up to see it dead.
    fn retire(&self, proc: &Arc<Proc>) {
        proc.dead.store(true, Relaxed);
        let _ = crate::kvec::retain(&mut self.list.lock(), |p| !Arc::ptr_eq(p, proc));
        proc.notify_settled();
    }

    fn kick(&self) {
        *self.kick.lock() = true;
        self.kick_cv.notify_all();
    }

    /// Lines for `/sys/kernel/elastic/procs`.
    pub(crate) fn write_to(&self, w: &mut impl Write) -> core::fmt::Result {
        for p in self.list.lock().iter() {
            p.write_to(w)?;
        }
        for m in self.marks.lock().iter() {
            writeln!(w, "pid={} marked budget_pages={}", m.pid, m.budget)?;
        }
        Ok(())
    }
}

/// Sends `m` on the current connection to `peer`.
pub(crate) fn send(peer: &Peer, node: &Node, m: &Message<'_>) -> Result {
    let conn = peer.link.lock().conn.clone().ok_or(e(bindings::ENOTCONN))?;
    conn.send(node, m)
}

/// `elastic_stretch(pid, node)`.
pub(crate) fn sys_stretch(node: &'static Node, pid: i32, to: i32) -> Result<i64> {
    let task = if pid == 0 { TaskRef::current() } else { TaskRef::by_pid(pid).ok_or(ESRCH)? };
    if !task.caller_may_control() {
        return Err(EPERM);
    }
    let to = u16::try_from(to).map_err(|_| EINVAL)?;
    let peer = node.find_peer(to).ok_or(ENOENT)?;
    stretch(node, &task, peer, 0)?;
    Ok(0)
}

/// `elastic_ctl(op, pid, arg)`: 1 = set the local budget (pages) of a stretched or marked
/// process, 2 = mark a process elastic (it stretches itself under memory pressure or when it
/// exceeds `arg` pages, if non-zero), 3 = pin a stretched process at home (`arg` 1, "sticky":
/// the jump policy never moves it) or unpin it (`arg` 0).
pub(crate) fn sys_ctl(node: &'static Node, op: i32, pid: i32, arg: u64) -> Result<i64> {
    let task = if pid == 0 { TaskRef::current() } else { TaskRef::by_pid(pid).ok_or(ESRCH)? };
    if !task.caller_may_control() {
        return Err(EPERM);
    }
    let pid = task.pid();
    match op {
        1 => {
            if let Some(p) = node.procs.by_pid(pid) {
                p.budget.store(arg, Relaxed);
                node.procs.kick();
                return Ok(0);
            }
            let mut marks = node.procs.marks.lock();
            let m = marks.iter_mut().find(|m| m.pid == pid).ok_or(ESRCH)?;
            m.budget = arg;
            Ok(0)
        }
        2 => {
            if node.procs.by_pid(pid).is_some() {
                return Err(e(bindings::EALREADY));
            }
            if let Some(mm) = task.mm() {
                // The throttle applies from now on, so the process waits instead of OOM.
                mm.mark_elastic();
            }
            let mut marks = node.procs.marks.lock();
            match marks.iter_mut().find(|m| m.pid == pid) {
                Some(m) => m.budget = arg,
                None => {
                    marks.push(Mark { pid, budget: arg }, GFP_KERNEL)?;
                    node.procs.marked.fetch_add(1, Relaxed);
                }
            }
            Ok(0)
        }
        3 => {
            let p = node.procs.by_pid(pid).ok_or(ESRCH)?;
            if arg > 1 {
                return Err(EINVAL);
            }
            p.sticky.store(arg == 1, Relaxed);
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

fn read_strings(task: &TaskRef, range: (u64, u64), out: &mut KVec<u8>, room: usize) -> Result {
    let len = (range.1.saturating_sub(range.0) as usize).min(room);
    let start = out.len();
    out.extend_with(len, 0, GFP_KERNEL)?;
    let got = task.read_mem(range.0, &mut out[start..]);
    if got != len {
        return Err(EFAULT);
    }
    if len > 0 && out[out.len() - 1] != 0 {
        // Truncated by `room`: end the last string so the list stays well formed.
        let last = out.len() - 1;
        out[last] = 0;
    }
    Ok(())
}

/// Creates the shell on `peer` and registers the process.
fn stretch(node: &'static Node, task: &TaskRef, peer: Arc<Peer>, budget: u64) -> Result {
    if peer.link.lock().state != LinkState::Up {
        return Err(e(bindings::ENOTCONN));
    }
    if task.threads() != 1 {
        // One thread: only the process touches its memory (see the module comment).
        return Err(EINVAL);
    }
    let pid = task.pid();
    let existing = node.procs.by_pid(pid);
    if let Some(p) = &existing {
        if p.member(peer.id).is_some() {
            return Err(e(bindings::EALREADY));
        }
    }
    let mm = task.mm().ok_or(EINVAL)?;
    let mut pathbuf = KVec::from_elem(0u8, 512, GFP_KERNEL)?;
    let path = task.exe_path(&mut pathbuf)?;
    let mut cpath = KVec::with_capacity(path.len() + 1, GFP_KERNEL)?;
    cpath.extend_from_slice(path, GFP_KERNEL)?;
    cpath.push(0, GFP_KERNEL)?;
    let exe = FileData::read(core::ffi::CStr::from_bytes_with_nul(&cpath).map_err(|_| EINVAL)?)?;
    let exe_hash = crypto::sha256(exe.bytes())?;
    drop(exe);
    let (args, env) = task.arg_env_ranges().ok_or(EINVAL)?;
    let room = MAX_STRETCH_STRINGS - path.len();
    let mut strings = KVec::new();
    read_strings(task, args, &mut strings, room / 2)?;
    let argv_len = strings.len();
    read_strings(task, env, &mut strings, room - argv_len)?;

    let w = peer.pending.register(0)?;
    let msg = Message::Stretch(Stretch {
        req: w.req,
        pid: pid as u32,
        exe_hash,
        uid: task.ids().0,
        gid: task.ids().1,
        path,
        argv: &strings[..argv_len],
        env: &strings[argv_len..],
    });
    let r = send(&peer, node, &msg).and_then(|()| w.wait(STRETCH_TIMEOUT_MS));
    peer.pending.remove(&w);
    r?;
    let shell_pid = w.reply.lock().value;
    if let Some(p) = existing {
        // One more node for a stretched process.
        p.nodes.lock().push(peer.clone(), GFP_KERNEL)?;
        pr_info!("pid {} ({}) stretched to node {} too (shell pid {})\n", pid, p.comm(), peer.id, shell_pid);
        node.procs.kick();
        return Ok(());
    }
    let mut nodes = KVec::new();
    nodes.push(peer.clone(), GFP_KERNEL)?;
    let proc = Arc::pin_init(
        pin_init!(Proc {
            pid,
            comm: task.comm(),
            mm,
            shell_pid,
            nodes <- new_mutex!(nodes),
            push_rr: AtomicU64::new(0),
            away_at: AtomicU64::new(0),
            leave_target: AtomicU64::new(0),
            budget: AtomicU64::new(budget),
            dead: AtomicBool::new(false),
            cursor: AtomicU64::new(0),
            remote: AtomicI64::new(0),
            pulls: AtomicU64::new(0),
            pulled: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            fault_lat: LatencyHist::new(),
            away: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            leave_reason: AtomicU64::new(0),
            sticky: AtomicBool::new(false),
            too_many_maps: AtomicU64::new(0),
            inbox <- new_mutex!(None),
            inbox_cv <- new_condvar!(),
            policy <- new_mutex!(JumpPolicy::new(&node.jumps.tunables.lock(), time::now_ns())),
            jumps: AtomicU64::new(0),
            jump_lat: LatencyHist::new(),
            away_ns: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            push_started: AtomicU64::new(0),
            push_done: AtomicU64::new(0),
            layout_busy: AtomicBool::new(false),
            layout_ops: AtomicU64::new(0),
            settle_gen <- new_mutex!(0),
            settled <- new_condvar!(),
        }),
        GFP_KERNEL,
    )?;
    proc.mm.mark_elastic();
    node.procs.list.lock().push(proc.clone(), GFP_KERNEL)?;
    if proc.mm.users().is_none() {
        // It exited while its shell was being made, maybe before it was on the list: its
        // exit hook may have missed it.
        mm_exit(proc.mm.as_ptr());
        return Err(ESRCH);
    }
    pr_info!(
        "pid {} ({}) stretched to node {} (shell pid {})\n",
        pid,
        proc.comm(),
        peer.id,
        shell_pid
    );
    node.procs.kick();
    Ok(())
}

/// What a remote fault ends in.
pub(crate) enum Fault {
    /// The page is present (or the fault must simply be retried).
    Done,
    /// The process cannot get its page: SIGBUS.
    SigBus,
    /// No memory for the page.
    Oom,
}

/// A fault on a page owned by `owner` (or on its way there); `user`: by user code.
pub(crate) fn fault(vma: Vma<'_>, addr: u64, owner: u16, in_flight: bool, user: bool) -> Fault {
    let Some(node) = crate::node::get() else { return Fault::SigBus };
    let Some(proc) = node.procs.by_mm(vma.mm()) else {
        peer_warn!(node, "fault on a remote page at {:#x} of an unknown process\n", addr);
        return Fault::SigBus;
    };
    if in_flight {
        // The pusher is moving this page; it settles within one round trip or a timeout.
        proc.wait_settled(PUSH_TIMEOUT_MS);
        return Fault::Done;
    }
    let Some(owner_peer) = proc.member(owner) else {
        peer_warn!(node, "pid {}: page {:#x} owned by unexpected node {}\n", proc.pid, addr, owner);
        return Fault::SigBus;
    };
    if crate::jump::home_fault_jumps(node, &proc, user, owner) {
        // Execution goes to the page instead; the instruction runs again over there.
        return Fault::Done;
    }
    let t0 = time::now_ns();
    let run = vma.remote_run(addr, owner, MAX_BATCH as u32);
    if run == 0 {
        return Fault::Done;
    }
    let count = pull_count(node.procs.prefetch.load(Relaxed) as u32, run);
    match pull_pages(node, &proc, &vma, addr, &owner_peer, count) {
        Ok(_) => {
            proc.fault_lat.record_ns(time::now_ns() - t0);
            Fault::Done
        }
        Err(f) => f,
    }
}

/// Pulls the `count` pages from `addr` that `owner_peer` owns back here. Returns how many
/// pages from `addr` are settled (at least one: data came, or the owner never had any and
/// the page is built here).
fn pull_pages(
    node: &Node,
    proc: &Proc,
    vma: &Vma<'_>,
    addr: u64,
    owner_peer: &Peer,
    count: u32,
) -> core::result::Result<u32, Fault> {
    let owner = owner_peer.id;
    let w = match owner_peer.pending.register(count as usize) {
        Ok(w) => w,
        Err(_) => return Err(Fault::Oom),
    };
    let msg = Message::Pull {
        req: w.req,
        pid: proc.pid as u32,
        addr,
        count,
    };
    let r = send(owner_peer, node, &msg).and_then(|()| w.wait(PULL_TIMEOUT_MS));
    owner_peer.pending.remove(&w);
    if let Err(e) = r {
        pr_err!(
            "pid {} ({}): pull of {:#x} from node {} failed ({:?}); killing it with SIGBUS\n",
            proc.pid,
            proc.comm(),
            addr,
            owner,
            e
        );
        return Err(Fault::SigBus);
    }
    let reply = w.reply.lock();
    let marker = mm::marker(owner, false);
    if reply.status == PAGES_BUILD {
        // The peer never had data there: the page is built here the ordinary way.
        if vma.clear_marker(addr, marker).is_err() {
            return Err(Fault::SigBus);
        }
        proc.remote.fetch_sub(1, Relaxed);
        proc.pulls.fetch_add(1, Relaxed);
        return Ok(1);
    }
    let n = reply.data.len() / PAGE_SIZE;
    if reply.addr != addr || n == 0 || n > count as usize {
        return Err(Fault::SigBus);
    }
    for i in 0..n {
        let a = addr + (i * PAGE_SIZE) as u64;
        let r = vma.install(a, marker, &reply.data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE], false);
        if i == 0 {
            match r {
                Ok(()) => {}
                Err(e) if e == ENOMEM => return Err(Fault::Oom),
                Err(_) => return Err(Fault::SigBus),
            }
        }
    }
    proc.remote.fetch_sub(n as i64, Relaxed);
    proc.pulls.fetch_add(1, Relaxed);
    proc.pulled.fetch_add(n as u64, Relaxed);
    Ok(n as u32)
}

/// Called before an elastic process allocates an anonymous page: if memory is short, wake the
/// pusher and wait (bounded) for room, rather than meet the OOM killer.
pub(crate) fn throttle(mm: *mut bindings::mm_struct) {
    let Some(node) = crate::node::get() else { return };
    let (total, avail) = mm::memory_pages();
    let wm = Watermarks::for_total(total);
    if avail >= wm.throttle {
        return;
    }
    let _ = mm;
    node.procs.kick();
    let deadline = time::now_ns() + 2_000_000_000;
    while time::now_ns() < deadline && !task::fatal_signal_pending() {
        time::sleep_ms_uninterruptible(5);
        if mm::memory_pages().1 >= wm.throttle {
            break;
        }
    }
}

/// The process's address space is going away.
pub(crate) fn mm_exit(mm: *mut bindings::mm_struct) {
    let Some(node) = crate::node::get() else { return };
    if let Some(s) = node.shells.by_mm(mm) {
        crate::jump::shell_exit(node, &s);
        return;
    }
    if let Some(p) = node.procs.by_mm(mm) {
        node.procs.retire(&p);
        for m in p.members().iter() {
            let _ = send(m, node, &Message::Release { pid: p.pid as u32 });
        }
        pr_info!(
            "pid {} ({}) exited: {} pulls ({} pages), {} pushes ({} pages), fault p50 {} us p99 {} us\n",
            p.pid,
            p.comm(),
            p.pulls.load(Relaxed),
            p.pulled.load(Relaxed),
            p.pushes.load(Relaxed),
            p.pushed.load(Relaxed),
            p.fault_lat.percentile_us(50),
            p.fault_lat.percentile_us(99)
        );
    }
}

/// The link to `peer` is gone: a process that ran there or had pages there dies with SIGBUS
/// (that memory is lost); one with none there forgets that node and runs on.
pub(crate) fn peer_lost(node: &Node, peer: u16) {
    let Ok(all) = node.procs.snapshot() else { return };
    for p in all.iter().filter(|p| p.member(peer).is_some()) {
        let ran_there = p.away.load(Relaxed) && p.away_at.load(Relaxed) == peer as u64;
        // Its page table is only walked when that decides.
        let held = if ran_there { 0 } else { p.pages_on(peer) };
        if ran_there || held > 0 {
            node.procs.retire(p);
            if ran_there {
                pr_err!("node {} lost: killing pid {} ({}) with SIGBUS, it was running there\n", peer, p.pid, p.comm());
            } else {
                pr_err!(
                    "node {} lost: killing pid {} ({}) with SIGBUS, {} of its pages were there\n",
                    peer,
                    p.pid,
                    p.comm(),
                    held
                );
            }
            if let Some(t) = TaskRef::by_pid(p.pid) {
                t.signal(bindings::SIGBUS);
            }
            continue;
        }
        p.drop_member(peer);
        if p.members().is_empty() {
            node.procs.retire(p);
            pr_warn!("node {} lost: pid {} ({}) had no pages there and runs on\n", peer, p.pid, p.comm());
        } else {
            pr_warn!(
                "node {} lost: pid {} ({}) had no pages there and runs on with its other nodes\n",
                peer,
                p.pid,
                p.comm()
            );
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
            push_batch(node, p, &users, (want - pushed).min(MAX_BATCH as u64) as usize, pages)
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
fn push_batch(node: &Node, p: &Proc, users: &mm::MmUsers<'_>, batch: usize, pages: &mut [u8]) -> Option<u64> {
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
    let ok = match target.pending.register(0) {
        Ok(w) => {
            let msg = Message::Push(Push {
                req: w.req,
                pid: p.pid as u32,
                vma_start: vs,
                vma_end: ve,
                prot,
                addrs: &wire[..n * 8],
                pages: &pages[..n * PAGE_SIZE],
            });
            let r = send(&target, node, &msg).and_then(|()| w.wait(PUSH_TIMEOUT_MS));
            target.pending.remove(&w);
            r.is_ok()
        }
        Err(_) => false,
    };
    let mut settled = 0;
    {
        let lock = users.read();
        for (i, a) in addrs[..n].iter().enumerate() {
            if let Some(v) = lock.vma(*a) {
                let restore = (!ok).then(|| &pages[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]);
                settled += v.settle(*a, peer_id, restore).is_ok() as i64;
            }
        }
    }
    if !ok {
        peer_warn!(node, "push of {} pages of pid {} to node {} failed; kept them\n", n, p.pid, peer_id);
        return None;
    }
    p.remote.fetch_add(settled, Relaxed);
    p.pushes.fetch_add(1, Relaxed);
    p.pushed.fetch_add(n as u64, Relaxed);
    Some(n as u64)
}



fn auto_stretch(node: &'static Node, avail_low: bool) {
    let marks: KVec<Mark> = {
        let m = node.procs.marks.lock();
        let mut v = KVec::new();
        for x in m.iter() {
            let _ = v.push(*x, GFP_KERNEL);
        }
        v
    };
    for m in marks.iter() {
        let Some(task) = TaskRef::by_pid(m.pid) else {
            forget_mark(node, m.pid);
            continue;
        };
        let over_budget = m.budget > 0 && task.mm().is_some_and(|mm| mm.anon_pages() > m.budget);
        if !avail_low && !over_budget {
            continue;
        }
        let Some(peer) = node.first_connected_peer() else { continue };
        match stretch(node, &task, peer, m.budget) {
            Ok(()) => forget_mark(node, m.pid),
            Err(e) => peer_warn!(node, "automatic stretch of pid {} failed: {:?}\n", m.pid, e),
        }
    }
}

fn forget_mark(node: &Node, pid: i32) {
    let mut marks = node.procs.marks.lock();
    let _ = crate::kvec::retain(&mut marks, |m| m.pid != pid);
    node.procs.marked.store(marks.len() as u64, Relaxed);
}

/// Whether the current process was marked elastic (and may therefore overcommit).
pub(crate) fn current_is_marked() -> bool {
    let Some(node) = crate::node::get() else { return false };
    if node.procs.marked.load(Relaxed) == 0 {
        return false;
    }
    let pid = TaskRef::current().pid();
    node.procs.marks.lock().iter().any(|m| m.pid == pid)
}

/// The pusher: every 20 ms, or at once when a throttled fault kicks it, stretches marked
/// processes that need it and pushes cold pages of stretched ones.
fn pusher(node: &'static Node) {
    let Ok(mut pages) = KVVec::from_elem(0u8, MAX_BATCH * PAGE_SIZE, GFP_KERNEL) else {
        pr_err!("pusher: no memory for its buffer; pushing disabled\n");
        return;
    };
    let mut episode = false;
    loop {
        {
            let mut k = node.procs.kick.lock();
            if !*k {
                let _ = node.procs.kick_cv.wait_interruptible_timeout(&mut k, msecs_to_jiffies(20));
            }
            *k = false;
        }
        let (total, avail) = mm::memory_pages();
        let wm = Watermarks::for_total(total);
        auto_stretch(node, avail < wm.low);
        let Ok(all) = node.procs.snapshot() else { continue };
        let mut any = false;
        for p in all.iter() {
            if p.dead.load(Relaxed) {
                continue;
            }
            let avail = mm::memory_pages().1;
            let want = pages_to_push(p.budget.load(Relaxed), p.mm.anon_pages(), avail, &wm, episode);
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
