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

use crate::home::{self, Proc, Where};
use crate::lent::LentTo;
use crate::node::{peer_warn, Node, Peer};
use crate::policy::{FaultCosts, JumpTunables, Watermarks};
use crate::proto::{CpuUsed, Jump, JumpReason, Message, MAX_JUMP_CPU_NS, PAGE_SIZE};
use crate::rpc::{self, CallError};
use crate::shell::{self, Run, Shell};
use crate::stats::Stats;
use crate::sys::{
    arch,
    errno::e,
    global::Global,
    mm::{self, Taken},
    task::{self, TaskRef},
    time, trace, umh,
};
use crate::transit::Arrival;
use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;
use kernel::{
    bindings, new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

/// How long a jump waits for the target to confirm it runs the process.
const JUMP_TIMEOUT_MS: u32 = 5_000;
/// Jumps kept in the node's log.
const LOG_LEN: usize = 64;

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
            tunables <- new_mutex!(JumpTunables::default(), "Jumps::tunables"),
            log <- new_mutex!(Log {
                recs: [Rec::default(); LOG_LEN],
                total: 0,
            }, "Jumps::log"),
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
        writeln!(w, "min_stay_us={}", t.min_stay_ns / 1000)?;
        writeln!(w, "fault_cost_us={}", t.fault_cost_ns / 1000)?;
        writeln!(w, "jump_cost_us={}", t.jump_cost_ns / 1000)?;
        writeln!(w, "bounce_us={}", t.bounce_ns / 1000)?;
        writeln!(w, "bounce_hold_us={}", t.bounce_hold_ns / 1000)
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

static JUMPS: Global<Jumps> = Global::new();

/// The node's jump settings and log, once `init` ran.
pub(crate) fn jumps() -> Option<&'static Jumps> {
    JUMPS.get()
}

/// The jump policy's settings now (the defaults before `init`).
pub(crate) fn tunables() -> JumpTunables {
    jumps().map_or_else(JumpTunables::default, |j| j.tunables())
}

/// Creates the jump settings and log.
pub(crate) fn init() -> Result {
    JUMPS.init(Jumps::new()).map(|_| ())
}

fn record(pid: u32, from: u16, to: u16, reason: JumpReason, lat_ns: u64) {
    trace::jump(pid, from, to, reason as u8, lat_ns);
    if let Some(j) = jumps() {
        j.record(pid, from, to, reason, lat_ns);
    }
}

/// Why a jump did not happen.
enum JumpErr {
    /// The target said no, or the message never left: the sender just runs on.
    Refused(Error),
    /// No confirmation: the target may or may not run the process. It must die.
    Lost(Error),
}

fn send_jump(peer: &Peer, j: Jump<'_>) -> core::result::Result<(), JumpErr> {
    match rpc::call(peer, 0, JUMP_TIMEOUT_MS, |req| {
        Message::Jump(Jump { req, ..j })
    }) {
        Ok(_) => Ok(()),
        Err(CallError::NotSent(err) | CallError::Refused(err)) => Err(JumpErr::Refused(err)),
        Err(CallError::NoAnswer(err)) => Err(JumpErr::Lost(err)),
    }
}

fn ack(node: &Node, to: u16, req: u32, status: i32) {
    if let Some(peer) = node.find_peer(to) {
        // Not sent: there is no connection, or the failed send closed it; the jump's sender
        // fails its wait with the link (`rpc::Pending::fail_conn`) and handles that as a lost
        // jump.
        let _ = peer.send(&Message::JumpAck { req, status });
    }
}

fn kill_current() {
    TaskRef::current().signal(bindings::SIGKILL);
}

// ---- home side -------------------------------------------------------------------------

/// Makes the home task of `p` jump to member node `to` on its way to user mode. Never with a
/// kick (`TaskRef::queue_work`): one running in user mode is interrupted anyway, and one
/// sleeping in a system call (epoll_wait, a timed recv) jumps when the call ends rather than
/// ending it early with a spurious EINTR.
pub(crate) fn request_home_leave(
    p: &Arc<Proc>,
    task: &TaskRef,
    reason: JumpReason,
    to: u16,
) -> Result {
    if p.is_dead() {
        return Ok(());
    }
    // Away: it runs elsewhere; Leaving: a jump is queued already.
    if p.move_place(|w| w == Where::Home, Where::Leaving { to, reason }) != Where::Home {
        return Ok(());
    }
    task.queue_work(p.clone(), home_leave, false)
        .inspect_err(|_| p.set_place(Where::Home))
}

/// Takes the page under the stack pointer of `image` from `mm` for the jump, leaving
/// `marker` (0 in a shell: an empty PTE there already means "at home"). Returns its address
/// if it had data; a page with nothing to move stays as it was.
fn take_stack(mm: &mm::MmRef, image: &[u8], marker: u64, page: &mut [u8]) -> u64 {
    let Some(sp) = arch::stack_pointer(image) else {
        return 0;
    };
    let addr = sp & !(PAGE_SIZE as u64 - 1);
    // This task just used the page: its reference from this CPU's LRU batch goes first.
    mm::drain_lru(false);
    let Some(users) = mm.users() else { return 0 };
    let lock = users.read();
    let Some(vma) = lock.vma(addr) else { return 0 };
    match vma.take(addr, page, marker) {
        Ok(Taken::Data) => addr,
        Ok(Taken::Build) => {
            if marker != 0 {
                // Nothing to carry: leave it to be built where it is touched first. A marker
                // gone meanwhile means something else settled the page: nothing to clear.
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
    home::install_retrying(&vma, addr, expect, page)
}

/// Task work of the home task: jump to the peer, then sleep until execution comes back.
fn home_leave(p: Arc<Proc>) {
    let Where::Leaving { to, reason } =
        p.move_place(|w| matches!(w, Where::Leaving { .. }), Where::Home)
    else {
        return;
    };
    let Some(node) = crate::node::get() else {
        return;
    };
    if p.is_dead() || task::signal_pending() {
        // A signal first (it would recall the process at once).
        return;
    }
    let Some(target) = p.member(to) else { return };
    let t0 = time::now_ns();
    let Some(mut d) = prepare_departure(node, &p) else {
        return;
    };
    if !depart(node, &p, &target, reason, &mut d) {
        return;
    }
    let left = time::now_ns();
    let lat = left - t0;
    p.counters().jumps.fetch_add(1, Relaxed);
    p.counters().jump_lat.record_ns(lat);
    record(p.pid() as u32, node.id(), target.id, reason, lat);
    p.policy().on_departure(&d.tun, left);
    wait_away(node, &p, &target, left);
}

/// What a jump from home carries, gathered before anything changes.
struct Departure {
    /// The saved CPU state: `state[..n]`.
    state: KVVec<u8>,
    n: usize,
    /// The jump policy's settings at departure.
    tun: JumpTunables,
    maps: crate::mapsync::HomeMaps,
    /// Room for the page under the stack pointer.
    page: KVVec<u8>,
}

/// Step 1 of a jump from home: saves the CPU state and gathers the mappings. `None`: it
/// stays here (logged; mappings that do not fit make the policy stop trying).
fn prepare_departure(node: &Node, p: &Proc) -> Option<Departure> {
    let Ok(mut state) = KVVec::from_elem(0u8, arch::state_size(), GFP_KERNEL) else {
        return None;
    };
    let n = match arch::save(&mut state) {
        Ok(n) => n,
        Err(err) => {
            pr_warn!(
                "pid {}: cannot save its CPU state ({:?}); it stays here\n",
                p.pid(),
                err
            );
            return None;
        }
    };
    let tun = tunables();
    let maps = match crate::mapsync::home_ranges(p.mm(), p.file_hashes()) {
        Ok(r) => r,
        Err(err) => {
            // Every try would fail the same way until the layout changes: the policy stops
            // trying (the faults that asked for this jump pull their pages instead).
            if err == E2BIG {
                p.set_too_many_maps(p.mm().map_count());
                Stats::inc(&node.stats.jumps_too_many_maps);
            }
            p.policy().on_departure(&tun, time::now_ns());
            peer_warn!(
                node,
                "pid {}: its mappings do not fit in a jump ({:?}); it stays here\n",
                p.pid(),
                err
            );
            return None;
        }
    };
    let Ok(page) = KVVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL) else {
        return None;
    };
    Some(Departure {
        state,
        n,
        tun,
        maps,
        page,
    })
}

/// The CPU time the current task used since its times were `(rt0, ut0, st0)`
/// (`task::current_cputime`), as a `Jump` carries it.
fn cpu_since((rt0, ut0, st0): (u64, u64, u64)) -> CpuUsed {
    let (rt, ut, st) = task::current_cputime();
    let mut cpu = CpuUsed::split(
        rt.saturating_sub(rt0),
        ut.saturating_sub(ut0),
        st.saturating_sub(st0),
    );
    cpu.user_ns = cpu.user_ns.min(MAX_JUMP_CPU_NS);
    cpu.sys_ns = cpu.sys_ns.min(MAX_JUMP_CPU_NS);
    cpu
}

/// Step 2: with the pusher held off, takes the stack page (lent until the jump is
/// confirmed), marks the process away and sends the jump. True: `target` runs it now; false:
/// it runs on here (refused: the stack page is put back), or it was killed (not confirmed).
fn depart(node: &Node, p: &Proc, target: &Peer, reason: JumpReason, d: &mut Departure) -> bool {
    let marker = mm::marker(target.id, false);
    // No push batch is in flight while the process leaves (core::ownership, rule 6): one
    // under way settles first, and the pusher leaves the process alone until the jump is
    // confirmed or refused.
    p.layout_begin();
    let stack_addr = take_stack(p.mm(), &d.state[..d.n], marker, &mut d.page);
    if stack_addr != 0 {
        // Lent to the jump until its acknowledgement: a fault here on it meanwhile waits.
        let mut t = p.transfers();
        let lent = &mut t.lent;
        if lent
            .lend(stack_addr, LentTo::Jump(target.id), &d.page)
            .is_err()
        {
            // No memory for the copy: it goes unguarded, as a lost answer would lose it.
            // Counted (as in `pull::take_pages`).
            lent.dropped += 1;
        }
    }
    // Before sending: once there, the process may fetch pages from us at once.
    p.set_place(Where::Away {
        at: target.id,
        since_ns: time::now_ns(),
    });
    // Copied out first: the lock is a leaf, not held while the jump is put together.
    let came_home = *p.cpu_at_home();
    let j = Jump {
        req: 0,
        pid: p.pid() as u32,
        to_home: false,
        reason,
        state: &d.state[..d.n],
        ranges: &d.maps.ranges,
        files: &d.maps.files,
        stack: if stack_addr != 0 { &d.page } else { &[] },
        stack_addr,
        // The time it ran here since it came home: the shell's jump policy weighs its jump
        // away by it (a visit that ran on is no bounce).
        cpu: cpu_since(came_home),
        // Where its budget holds too, the shell's policy weighs a jump back by what the home
        // keeps (fetch.rs).
        budget: if p.budget_holds_away() {
            p.budget().min(u64::from(u32::MAX)) as u32
        } else {
            0
        },
        home_pages: p.mm().anon_pages().min(u64::from(u32::MAX)) as u32,
    };
    let sent = send_jump(target, j);
    p.layout_done();
    if stack_addr != 0 {
        p.transfers().lent.jump_done(target.id);
        p.push_gate().notify_settled();
    }
    match sent {
        Ok(()) => {}
        Err(JumpErr::Refused(err)) => {
            p.set_place(Where::Home);
            // Back off: each refusal doubles this node's threshold.
            p.policy().on_departure(&d.tun, time::now_ns());
            if stack_addr != 0 && install_stack(p.mm(), stack_addr, &d.page, marker).is_err() {
                pr_err!(
                    "pid {}: cannot put its stack page back; its data is lost: killing it\n",
                    p.pid()
                );
                kill_current();
            }
            peer_warn!(
                node,
                "pid {}: jump to node {} refused ({:?}); it runs on here\n",
                p.pid(),
                target.id,
                err
            );
            return false;
        }
        Err(JumpErr::Lost(err)) => {
            pr_err!(
                "pid {}: jump to node {} not confirmed ({:?}); killing it, it may run there\n",
                p.pid(),
                target.id,
                err
            );
            kill_current();
            return false;
        }
    }
    if stack_addr != 0 {
        p.add_remote(1);
    }
    true
}

/// Step 3: the home task sleeps until execution comes back (and runs on from there), the
/// process dies (a fatal signal: its execution is recalled first, or it died away), or a
/// signal comes (the process is recalled once, and the wait goes on). `left`: when it left.
fn wait_away(node: &Node, p: &Proc, target: &Peer, left: u64) {
    let mut recalled = false;
    loop {
        let mut inbox = p.inbox();
        if let Some(a) = inbox.take() {
            drop(inbox);
            p.counters()
                .away_ns
                .fetch_add(time::now_ns() - left, Relaxed);
            home_arrive(node, p, a);
            return;
        }
        if task::fatal_signal_pending() || p.is_dead() {
            // The process dies here; its exit releases the shell that runs it.
            drop(inbox);
            if !p.is_dead() {
                take_back_to_die(node, p, target, recalled, left);
            } else {
                // It died where it ran, or that node is gone: its state there is lost.
                task::force_exit(p.died_away());
            }
            return;
        }
        if !recalled && task::signal_pending() {
            drop(inbox);
            recalled = true;
            // Not sent: there is no connection, or the failed send closed it; the link's loss
            // then wakes this wait (`home::peer_lost`) and the process ends there.
            let _ = target.send(&Message::Recall {
                pid: p.pid() as u32,
            });
            continue;
        }
        if let kernel::sync::CondVarTimeoutResult::Signal { .. } = p.wait_inbox(&mut inbox, 100) {
            // A signal that cannot be delivered before execution is back: poll.
            drop(inbox);
            time::sleep_ms_uninterruptible(1);
        }
    }
}

/// How long a process that dies while away waits for its execution to come back.
const DYING_WAIT_MS: u32 = 500;

/// A process dies while it runs on `target`: recall it once more and wait a little (its
/// node may be gone), so that the time it used there is counted here before it exits (its
/// rusage, `time`, the parent's counts, cgroup usage).
fn take_back_to_die(node: &Node, p: &Proc, target: &Peer, recalled: bool, left: u64) {
    if !recalled
        && target
            .send(&Message::Recall {
                pid: p.pid() as u32,
            })
            .is_err()
    {
        return;
    }
    // A fatal signal is pending: only an uninterruptible sleep waits.
    for _ in 0..DYING_WAIT_MS {
        if let Some(a) = p.inbox().take() {
            p.counters()
                .away_ns
                .fetch_add(time::now_ns() - left, Relaxed);
            home_arrive(node, p, a);
            return;
        }
        if p.is_dead() {
            return;
        }
        time::sleep_ms_uninterruptible(1);
    }
}

fn home_arrive(node: &Node, p: &Proc, a: Arrival) {
    if let Some((addr, page)) = &a.stack {
        // Over the marker for the node it comes from, or over an in-flight one (a push of
        // that page to it, superseded). Something else there (a pull brought the page
        // meanwhile, from this same copy, and it may have been written since) wins.
        let mut owned = true;
        let installed = match install_stack(p.mm(), *addr, page, mm::marker(a.from, false)) {
            Err(e) if e == EEXIST => {
                owned = false;
                install_stack(p.mm(), *addr, page, mm::marker(a.from, true))
            }
            r => r,
        };
        match installed {
            Ok(()) => {
                p.supersede_pulls(*addr);
                if owned {
                    p.sub_remote(1);
                }
            }
            Err(e) if e == EEXIST => {}
            Err(err) => {
                ack(node, a.from, a.req, err.to_errno());
                pr_err!(
                "pid {}: its stack page from node {} could not be installed ({:?}); killing it\n",
                p.pid(),
                a.from,
                err
            );
                kill_current();
                return;
            }
        }
    }
    match arch::load(&a.state) {
        Ok(()) => {
            ack(node, a.from, a.req, 0);
            // The time it ran there is its own: times(), getrusage(), RLIMIT_CPU, timers; but
            // never more than it was away (a peer reports it).
            let away_ns = match p.place() {
                Where::Away { since_ns, .. } => time::now_ns().saturating_sub(since_ns),
                _ => 0,
            };
            let cpu = a.cpu.bounded_by(away_ns);
            TaskRef::current().account_remote_cpu(cpu.user_ns, cpu.sys_ns);
            *p.cpu_at_home() = task::current_cputime();
            p.set_place(Where::Home);
            // Tunables first: the policy lock is a leaf.
            let t = tunables();
            let c = p.counters();
            let costs = (
                c.fault_lat.percentile_us(50).saturating_mul(1000),
                c.jump_lat.percentile_us(50).saturating_mul(1000),
            );
            p.policy()
                .on_arrival_after(&t, time::now_ns(), cpu.user_ns + cpu.sys_ns, costs);
        }
        Err(err) => {
            ack(node, a.from, a.req, err.to_errno());
            pr_err!(
                "pid {}: CPU state from node {} refused ({:?}); killing it\n",
                p.pid(),
                a.from,
                err
            );
            kill_current();
        }
    }
}

/// Receive thread: execution of our process `pid` comes back from `peer`.
pub(crate) fn home_receive(node: &Node, peer: &Peer, j: &Jump<'_>) {
    let status = match home::procs().and_then(|procs| procs.by_pid(j.pid as i32)) {
        Some(p) if p.away_at() == Some(peer.id) => match Arrival::from_msg(peer.id, j) {
            Ok(a) => {
                p.deliver(a);
                return;
            }
            Err(err) => err.to_errno(),
        },
        _ => {
            peer_warn!(
                node,
                "node {} sent back pid {}, which is not away there\n",
                peer.id,
                j.pid
            );
            EPERM.to_errno()
        }
    };
    ack(node, peer.id, j.req, status);
}

/// Receive thread: the shell running our process `pid` died there.
pub(crate) fn home_gone(peer: &Peer, pid: u32, signal: u32) {
    let Some(p) = home::procs().and_then(|procs| procs.by_pid(pid as i32)) else {
        return;
    };
    if p.away_at() != Some(peer.id) {
        return;
    }
    let sig = if (1..32).contains(&signal) {
        signal
    } else {
        bindings::SIGKILL
    };
    pr_err!(
        "pid {}: died on node {} while running there (signal {}); ending it here with signal {}\n",
        pid,
        peer.id,
        signal,
        sig
    );
    // Its task waits at home for its execution: it wakes and ends with that signal, never
    // to run on with the registers it left with.
    p.died_away_with(sig);
}

// ---- shell side ------------------------------------------------------------------------

/// In the parked shell's task (the seed's arrival callback): run the process that arrived.
/// False if it cannot (the home was told) or nothing arrived.
pub(crate) fn shell_arrival(seed: &umh::Seed) -> bool {
    match shell::shells().and_then(|s| s.by_seed(seed)) {
        Some(shell) => shell_arrive(&shell),
        None => false,
    }
}

/// In the shell's task: run the process from what arrived. False if it cannot (the home was
/// told).
fn shell_arrive(shell: &Shell) -> bool {
    let Some(node) = crate::node::get() else {
        return false;
    };
    let Some(a) = shell.inbox.lock().take() else {
        return false;
    };
    if let Err(err) = crate::mapsync::reconcile(node, shell, &a.ranges, &a.files) {
        peer_warn!(
            node,
            "shell of pid {}: cannot match its home's layout ({:?})\n",
            shell.home_pid,
            err
        );
        ack(node, a.from, a.req, err.to_errno());
        return false;
    }
    // Execution starts only in code this shell may run (`policy::shell_prot`): anything else
    // would fault at its first instruction and go home, so it stays home now.
    let ip = arch::instruction_pointer(&a.state).unwrap_or(0);
    if !shell_may_execute(shell, ip) {
        peer_warn!(
            node,
            "shell of pid {}: node {} asked it to run at {:#x}, outside the code it may run; refused\n",
            shell.home_pid,
            a.from,
            ip
        );
        ack(node, a.from, a.req, EFAULT.to_errno());
        return false;
    }
    if let Some((addr, page)) = &a.stack {
        shell.lent.lock().forget(*addr);
        // A page mapped there already (EEXIST) is the same or newer: it stays. It is data:
        // never into code (`policy::shell_prot`).
        let r = if shell_may_execute(shell, *addr) {
            Err(EACCES)
        } else {
            install_stack(&shell.mm, *addr, page, 0)
        };
        let r = r.or_else(|e| if e == EEXIST { Ok(()) } else { Err(e) });
        if let Err(err) = r {
            peer_warn!(
                node,
                "shell of pid {}: stack page {:#x} does not fit ({:?})\n",
                shell.home_pid,
                addr,
                err
            );
            ack(node, a.from, a.req, err.to_errno());
            return false;
        }
    }
    if let Err(err) = arch::load(&a.state) {
        peer_warn!(
            node,
            "shell of pid {}: CPU state from node {} refused ({:?})\n",
            shell.home_pid,
            a.from,
            err
        );
        ack(node, a.from, a.req, err.to_errno());
        return false;
    }
    *shell.cpu_at_arrival.lock() = task::current_cputime();
    shell.budget.store(u64::from(a.budget), Relaxed);
    shell
        .home_at_arrival
        .store(u64::from(a.home_pages), Relaxed);
    shell.home_moved.store(0, Relaxed);
    shell.move_run(|_| true, Run::Running);
    let t = tunables();
    let c = &shell.counters;
    let costs = (
        c.fetch_lat.percentile_us(50).saturating_mul(1000),
        c.jump_lat.percentile_us(50).saturating_mul(1000),
    );
    shell.policy.lock().on_arrival_after(
        &t,
        time::now_ns(),
        a.cpu.user_ns.saturating_add(a.cpu.sys_ns),
        costs,
    );
    shell.counters.arrivals.fetch_add(1, Relaxed);
    ack(node, a.from, a.req, 0);
    true
}

/// True if `ip` lies in an executable mapping of the shell (after `mapsync::reconcile`: one
/// of its own files, never anonymous or writable memory), or is a vsyscall entry above user
/// space (the state loader admits those alone there; they run at home).
fn shell_may_execute(shell: &Shell, ip: u64) -> bool {
    const VSYSCALL_PAGE: u64 = 0xffff_ffff_ff60_0000;
    if ip >= VSYSCALL_PAGE {
        return true;
    }
    shell.mm.users().is_some_and(|users| {
        users
            .read()
            .vma(ip)
            .is_some_and(|v| v.prot() & mm::PROT_EXEC != 0)
    })
}

/// In the shell's task, its user state in its registers: send execution home and wait there
/// until it comes back. False: the task must die (it is told to).
pub(crate) fn shell_leave(shell: &Arc<Shell>, reason: JumpReason) -> bool {
    // A jump home that was queued is this one.
    if shell.move_run(|r| matches!(r, Run::Leaving { .. }), Run::Running) == Run::Parked {
        return true;
    }
    let Some(node) = crate::node::get() else {
        return false;
    };
    let Some(home) = node.find_peer(shell.home) else {
        return false;
    };
    let t0 = time::now_ns();
    let Ok(mut state) = KVVec::from_elem(0u8, arch::state_size(), GFP_KERNEL) else {
        return false;
    };
    let n = match arch::save(&mut state) {
        Ok(n) => n,
        Err(err) => {
            pr_err!(
                "shell of pid {}: cannot save its CPU state ({:?})\n",
                shell.home_pid,
                err
            );
            return false;
        }
    };
    let Ok(mut page) = KVVec::from_elem(0u8, PAGE_SIZE, GFP_KERNEL) else {
        return false;
    };
    let stack_addr = take_stack(&shell.mm, &state[..n], 0, &mut page);
    if stack_addr != 0 {
        // Lent to the jump until the home acknowledges it: a pull of that page meanwhile
        // (a /proc reader at home) gets this copy, never "build it".
        let mut lent = shell.lent.lock();
        if lent
            .lend(stack_addr, LentTo::Jump(shell.home), &page)
            .is_err()
        {
            // No memory for the copy: it goes unguarded, as a lost answer would lose it.
            // Counted (as in `pull::take_pages`).
            lent.dropped += 1;
        }
    }
    let arrived = *shell.cpu_at_arrival.lock();
    let cpu = cpu_since(arrived);
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
        cpu,
        budget: 0,
        home_pages: 0,
    };
    shell.move_run(|_| true, Run::Parked);
    let sent = send_jump(&home, j);
    shell.lent.lock().jump_done(shell.home);
    if let Err(JumpErr::Refused(err) | JumpErr::Lost(err)) = sent {
        pr_err!(
            "shell of pid {}: node {} did not take its execution back ({:?}); ending it here\n",
            shell.home_pid,
            shell.home,
            err
        );
        return false;
    }
    let now = time::now_ns();
    shell.counters.jumps.fetch_add(1, Relaxed);
    shell.counters.jump_lat.record_ns(now - t0);
    record(shell.home_pid, node.id(), shell.home, reason, now - t0);
    let t = tunables();
    shell.policy.lock().on_departure(&t, now);
    while shell.seed.wait_arrival() {
        if shell_arrive(shell) {
            return true;
        }
    }
    false
}

fn shell_leave_work(shell: Arc<Shell>) {
    let reason = match shell.run() {
        Run::Leaving { reason } => reason,
        _ => JumpReason::RemoteFaults,
    };
    if !shell_leave(&shell, reason) {
        kill_current();
    }
}

/// Queues a jump home on the shell's task (`kick`: interrupt its user code now).
pub(crate) fn request_shell_leave(shell: &Arc<Shell>, reason: JumpReason, kick: bool) {
    // Parked: nothing to bring home; Leaving: a jump home is queued already.
    if shell.move_run(|r| r == Run::Running, Run::Leaving { reason }) != Run::Running {
        return;
    }
    let undo = || {
        shell.move_run(|r| matches!(r, Run::Leaving { .. }), Run::Running);
    };
    // The shell's own task, referenced (its pid could name another task by now).
    let task = shell.seed.state.lock().task.clone();
    let Some(t) = task else {
        undo();
        return;
    };
    if t.queue_work(shell.clone(), shell_leave_work, kick).is_err() {
        undo();
    }
}

/// The `syscall` hook: a shell's task running a process away from home made a syscall. The
/// caller rewound its registers to the `syscall` instruction; run it at home.
pub(crate) fn shell_syscall(shell: &Arc<Shell>) -> bool {
    shell.counters.syscalls.fetch_add(1, Relaxed);
    if !shell_leave(shell, JumpReason::Syscall) {
        kill_current();
    }
    true
}

/// The shell's task took a fault signal (`sig`) running the process: a mapping it lacks, or a
/// fault of the program's own. Either way the home runs the instruction again, with the
/// home's mappings and signal handlers.
pub(crate) fn shell_fault_signal(shell: &Arc<Shell>, sig: u32) -> bool {
    shell.counters.faults.fetch_add(1, Relaxed);
    pr_debug!(
        "shell of pid {}: signal {} while running it; the home retries\n",
        shell.home_pid,
        sig
    );
    if !shell_leave(shell, JumpReason::FaultSignal) {
        kill_current();
    }
    true
}

/// The shell's address space is going away (`__mmput`). If it was running the process,
/// the process died here: tell its home, which ends it there with the same signal.
pub(crate) fn shell_exit(node: &Node, shell: &Shell) {
    if shell.move_run(|_| true, Run::Parked) == Run::Parked {
        return;
    }
    let signal = shell
        .seed
        .state
        .lock()
        .task
        .as_ref()
        .map_or(0, |t| t.exit_signal());
    pr_warn!(
        "shell pid {} of process {} of node {} died running it (signal {})\n",
        shell.pid,
        shell.home_pid,
        shell.home,
        signal
    );
    if let Some(home) = node.find_peer(shell.home) {
        // Not sent: there is no connection, or the failed send closed it; the home loses
        // its link to us then and ends the process as it ends one that ran on a lost node.
        let _ = home.send(&Message::Gone {
            pid: shell.home_pid,
            signal,
        });
    }
}

/// Receive thread at the shell's node: execution of `pid` arrives from its home.
pub(crate) fn shell_receive(node: &Node, peer: &Peer, j: &Jump<'_>) {
    let status = match shell::shells().and_then(|s| s.find(peer.id, j.pid)) {
        Some(s) if !s.running() => match Arrival::from_msg(peer.id, j) {
            Ok(a) => {
                *s.inbox.lock() = Some(a);
                s.seed.arrive();
                return;
            }
            Err(err) => err.to_errno(),
        },
        Some(_) => EBUSY.to_errno(),
        None => ESRCH.to_errno(),
    };
    peer_warn!(
        node,
        "jump of pid {} from node {} refused: {}\n",
        j.pid,
        peer.id,
        status
    );
    ack(node, peer.id, j.req, status);
}

/// `elastic_jump`: move the execution of `task`'s process to `to` (its home or a member).
pub(crate) fn jump_to(node: &Node, task: &TaskRef, to: u16) -> Result {
    // By address space, not pid: the entry of an exited process may linger under a reused
    // pid, and must never be taken for the new process's.
    let mm = task.mm().ok_or(ESRCH)?;
    let p = home::procs()
        .and_then(|procs| procs.by_mm(mm.id()))
        .ok_or(ESRCH)?;
    if to == node.id() {
        if let Some(at) = p.away_at() {
            if let Some(at) = p.member(at) {
                at.send(&Message::Recall {
                    pid: p.pid() as u32,
                })?;
            }
        }
        return Ok(());
    }
    let target = p.member(to).ok_or(ENOENT)?;
    if p.away_at().is_some() {
        // It runs elsewhere; it comes home first (its next syscall, or a recall).
        return Err(EBUSY);
    }
    if !target.connected() {
        return Err(e(bindings::ENOTCONN));
    }
    request_home_leave(&p, task, JumpReason::Asked, to)
}

/// Member: the home wants its process `pid` back.
pub(crate) fn serve_recall(peer: &Peer, pid: u32) {
    if let Some(s) = shell::shells().and_then(|s| s.find(peer.id, pid)) {
        request_shell_leave(&s, JumpReason::Recall, true);
    }
}

/// Whether this node can simply take a process's pages instead of going to them: under its
/// budget (or its cgroup's limit) by more than a pull, or with neither and no memory pressure.
fn home_has_room(p: &Proc, prefetch: u32) -> bool {
    let budget = p.local_limit();
    if budget > 0 {
        return p.mm().anon_pages().saturating_add(u64::from(prefetch)) < budget;
    }
    node_has_room()
}

/// This node is above its high watermark: pulled pages need no push to make room.
pub(crate) fn node_has_room() -> bool {
    let (total, avail) = mm::memory_pages();
    avail > Watermarks::for_total(total).high
}

/// The home fault path asks: jump to the page's owner instead of pulling (a fault at `addr`,
/// `prefetch` pages a pull)? Queues the jump if so.
pub(crate) fn home_fault_jumps(
    p: &Arc<Proc>,
    user: bool,
    owner: u16,
    addr: u64,
    prefetch: u32,
) -> bool {
    if !user || p.sticky() || !p.maps_may_fit() {
        return false;
    }
    let current = TaskRef::current();
    if current.pid() != p.pid() {
        // A vfork child borrowing the address space (popen, system, posix_spawn): its faults
        // pull, but only the process itself is ever moved.
        return false;
    }
    let t = tunables();
    let remote = p.remote().max(0) as u64;
    // With its budget held there too (reclaim.rs), it may use no more than its budget there,
    // and the owner sends back what it holds past it on arrival.
    let held_there = p.budget_holds_away();
    let costs = || FaultCosts {
        addr,
        // Where the budget holds on both nodes, room here is only until the budget fills
        // (each page pulled into it is one to push later), unless all of it fits here.
        room_here: home_has_room(p, prefetch)
            && (!held_there
                || p.mm()
                    .anon_pages()
                    .saturating_add(remote)
                    .saturating_add(u64::from(prefetch))
                    <= p.budget()),
        // Every page of the process on another node; with one member, the owner's.
        owner_pages: if held_there {
            remote.min(p.budget())
        } else {
            remote
        },
        pages_per_pull: prefetch,
        reclaim_there: if held_there {
            remote.saturating_sub(p.budget())
        } else {
            0
        },
        fault_ns: p
            .counters()
            .fault_lat
            .percentile_us(50)
            .saturating_mul(1000),
        jump_ns: p.counters().jump_lat.percentile_us(50).saturating_mul(1000),
    };
    let in_run = p.readahead().in_run(addr, prefetch);
    if !p
        .policy()
        .on_remote_fault_costed(&t, time::now_ns(), in_run, costs)
    {
        return false;
    }
    request_home_leave(p, &current, JumpReason::RemoteFaults, owner).is_ok()
        && matches!(p.place(), Where::Leaving { .. })
}
