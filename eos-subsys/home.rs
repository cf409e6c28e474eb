// SPDX-License-Identifier: GPL-2.0

//! The home side's registry: the processes of this node that are stretched, what each one's
//! state is, and what happens when one exits or a node it uses is lost. The primitives that
//! act on them are stretch.rs, pull.rs, push.rs, jump.rs and mapsync.rs.
//!
//! Invariant that keeps this simple: only the process itself (single-threaded) touches its
//! memory, and only this node changes the ownership of its pages: a pull is started by the
//! process's own fault, a push by our pusher, and the PTE lock orders the two.

use crate::lent::{Kept, Lent};
use crate::node::Peer;
use crate::policy::{JumpPolicy, JumpTunables, Readahead};
use crate::proto::{JumpReason, Message, PAGE_SIZE};
use crate::stats::LatencyHist;
use crate::sys::{
    global::Global,
    mm::{MmId, MmRef, Vma},
    task::{self, TaskRef},
    time,
};
use crate::transit::Arrival;
use core::fmt::Write;
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release, SeqCst},
};
use kernel::{
    bindings, new_condvar, new_mutex, new_spinlock,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{
        lock::{mutex::MutexBackend, spinlock::SpinLockBackend, Guard},
        Arc, CondVar, Mutex, SpinLock,
    },
    time::msecs_to_jiffies,
};

/// Pages a process may be over its budget before its faults wait for the pusher
/// (`policy::BUDGET_SLACK`).
const BUDGET_SLACK: u64 = crate::policy::BUDGET_SLACK;
/// Pages a process in a memory cgroup keeps below the cgroup's limit (`policy::MEMCG_MARGIN`).
pub(crate) const MEMCG_MARGIN: i64 = crate::policy::MEMCG_MARGIN;
/// After a pusher round that could push none of its pages, a process's faults do not wait
/// for its budget for this long.
const BUDGET_BACKOFF_MS: u64 = 1_000;
/// The longest one fault waits for its budget while the pusher makes progress.
const BUDGET_WAIT_MAX_MS: u64 = 1_000;

/// Whether a process's budget holds on the member it runs on too (`budget_away`, reclaim.rs).
pub(crate) static BUDGET_AWAY: AtomicBool = AtomicBool::new(false);
/// Pages the member running a process may hold past its budget before its fetches wait: one
/// batch, as at home.
const AWAY_SLACK: u64 = BUDGET_SLACK;

/// How long a layout change (or a jump) waits for a push batch under way: longer than all
/// its tries (3 of 10 s) and its restore.
const LAYOUT_WAIT_MS: u64 = 40_000;

/// A stretched process, at home.
///
/// # Invariants
///
/// - Its task is single-threaded, so only the process itself touches its memory; only this
///   node changes the ownership of its pages (the process's own faults and the pusher), each
///   change under the PTE lock (mm/elastic.c).
/// - A PTE of `mm` is a present page (owned here), a marker naming a node in `nodes` (owned
///   there), or an in-flight marker (a push batch under way, settled within a push timeout).
/// - `place` is `Away` only from a jump its target confirmed until execution is back; while
///   it is, the task sleeps in `jump::home_leave` and nothing at home runs its code.
/// - `dead` never goes back to false; a dead process is off the registry.
#[pin_data]
pub(crate) struct Proc {
    pid: i32,
    /// Its task, referenced: a signal the subsystem sends goes to this task, never to
    /// whatever process has its pid by then.
    task: TaskRef,
    comm: [u8; 16],
    mm: MmRef,
    /// Its shell's pid on the node it was stretched to first.
    shell_pid: u32,
    /// The nodes it was stretched to (each holds a shell), first one first.
    #[pin]
    nodes: Mutex<KVec<Arc<Peer>>>,
    /// Round robin of push targets.
    push_rr: AtomicU64,
    /// Local memory budget in pages (0: push only under node memory pressure).
    budget: AtomicU64,
    /// Until when (ns) its faults do not wait for its budget (the pusher stalled).
    budget_backoff_until: AtomicU64,
    /// Pusher rounds that wanted to push its pages, and how many of the last ones in a row
    /// pushed none (`Proc::push_round`).
    push_rounds: AtomicU64,
    push_stalls: AtomicU64,
    /// A fork holds its pages home (fork.rs).
    forking: AtomicBool,
    /// Reclaim rounds in a row that brought nothing back (reclaim.rs), and since when (ns)
    /// the member's fetches are refused for room without a break (0: they are not).
    reclaim_stalls: AtomicU64,
    refusing_since: AtomicU64,
    dead: AtomicBool,
    /// The signal it dies with if it died away from home (its shell died, or that node is
    /// gone); 0: none. Its task, waiting at home, ends with it and never runs again here.
    died_away: AtomicU32,
    /// The pusher's CLOCK hand: where its next sweep starts.
    cursor: AtomicU64,
    /// Pages the peer owns.
    remote: AtomicI64,
    /// Where its execution is.
    #[pin]
    place: SpinLock<Where>,
    /// Its remote faults' readahead window (`policy::Readahead`).
    #[pin]
    readahead: SpinLock<Readahead>,
    /// Its task's CPU times (`task::current_cputime`) when it last came home, so that a
    /// jump tells the shell how long it ran here (the shell's jump policy). Only its task
    /// touches it.
    #[pin]
    cpu_at_home: SpinLock<(u64, u64, u64)>,
    /// Pinned here: the policy never moves it.
    sticky: AtomicBool,
    /// Its VMA count when its mappings did not fit in a jump (0: they fit): the policy does
    /// not try again, each try failing the same way, until it has fewer VMAs.
    too_many_maps: AtomicU64,
    /// Execution coming back, handed over by the receive thread.
    #[pin]
    inbox: Mutex<Option<Arrival>>,
    #[pin]
    inbox_cv: CondVar,
    #[pin]
    policy: Mutex<JumpPolicy>,
    /// What it did, for /proc and sysfs.
    counters: ProcCounters,
    /// The pusher's batches against layout changes and jumps, and the "something settled"
    /// event that faults wait on.
    #[pin]
    push_gate: PushGate,
    /// Its pages on their way between nodes: lent and pulled.
    #[pin]
    transfers: Mutex<Transfers>,
    /// The last push batch's number (`Push.batch`).
    push_batch: AtomicU64,
    /// Hashes of the files it maps, for its jumps (a leaf lock, taken under the mmap lock).
    #[pin]
    file_hashes: Mutex<FileHashes>,
}

/// A process's pages on their way between nodes, under one lock (`Proc::transfers`): a
/// fault's pull looks at both at once (is the page lent out? is it being pulled?).
pub(crate) struct Transfers {
    /// Pages that left for a member (a fetch's answer, a jump's stack page), kept until it
    /// confirms (lent.rs).
    pub(crate) lent: Lent,
    /// Pulls under way, one per page at a time (`pull::transfer`).
    pub(crate) pulling: KVec<Pulling>,
    /// Pages here whose clean copy a member keeps (lent.rs).
    pub(crate) kept: Kept,
}

/// A pull under way: the pages `[addr, addr + count pages)`. Bit `i` of `superseded` is set
/// once another transfer (a jump bringing it home) installed page `i`: the pull's answer for
/// that page is dropped. `count` is at least 1.
#[derive(Clone, Copy)]
pub(crate) struct Pulling {
    pub(crate) addr: u64,
    pub(crate) count: u32,
    pub(crate) superseded: u32,
}

impl Pulling {
    pub(crate) fn overlaps(&self, addr: u64, count: u32) -> bool {
        let end = self.addr + self.count as u64 * PAGE_SIZE as u64;
        addr < end && self.addr < addr + count as u64 * PAGE_SIZE as u64
    }
}

/// What a stretched process did, for /proc and sysfs. Counters only: no decision reads them.
pub(crate) struct ProcCounters {
    pub(crate) pulls: AtomicU64,
    pub(crate) pulled: AtomicU64,
    pub(crate) pushes: AtomicU64,
    pub(crate) pushed: AtomicU64,
    /// Of `pushed`, pages sent by reference to a member's clean copy (no data).
    pub(crate) pushed_clean: AtomicU64,
    /// Remote-fault latency at home.
    pub(crate) fault_lat: LatencyHist,
    pub(crate) jumps: AtomicU64,
    pub(crate) jump_lat: LatencyHist,
    pub(crate) away_ns: AtomicU64,
    /// Pages the process fetched while away.
    pub(crate) fetched: AtomicU64,
    /// Layout syscalls that the members followed (discards sent, or pages recalled).
    pub(crate) layout_ops: AtomicU64,
    /// Pages whose data was lost in a transfer (poisoned: SIGBUS on access).
    pub(crate) lost: AtomicU64,
    /// Faults that waited for the pusher to bring the process under its local limit, the
    /// time they waited, and the waits given up (no progress, or too long).
    pub(crate) budget_waits: AtomicU64,
    pub(crate) budget_wait_ns: AtomicU64,
    pub(crate) budget_backoffs: AtomicU64,
    /// Pages pulled back from the member it ran on, to hold its budget there, and the
    /// fetches there refused meanwhile for want of room (reclaim.rs).
    pub(crate) reclaimed: AtomicU64,
    pub(crate) room_waits: AtomicU64,
}

impl ProcCounters {
    fn new() -> Self {
        Self {
            pulls: AtomicU64::new(0),
            pulled: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            pushed_clean: AtomicU64::new(0),
            fault_lat: LatencyHist::new(),
            jumps: AtomicU64::new(0),
            jump_lat: LatencyHist::new(),
            away_ns: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            layout_ops: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            budget_waits: AtomicU64::new(0),
            budget_wait_ns: AtomicU64::new(0),
            budget_backoffs: AtomicU64::new(0),
            reclaimed: AtomicU64::new(0),
            room_waits: AtomicU64::new(0),
        }
    }
}

/// The push/settle protocol of one process. The pusher brackets each batch with
/// [`PushGate::begin_batch`] and [`PushGate::finish_batch`]; a layout change or a jump brackets
/// itself with [`PushGate::layout_begin`] and [`PushGate::layout_done`], and no batch runs in
/// between (`core::ownership`, rule 6). Whatever settles pages (a batch, a pull, a `Took`, a
/// jump's acknowledgement) calls [`PushGate::notify_settled`]; a fault waiting for one of them
/// sleeps in [`PushGate::wait_settled`].
///
/// A layout change either sees the batch begun before it (and waits for it), or that batch
/// sees the change (and stays out of its way): both sides write their flag or counter before
/// reading the other's, all `SeqCst`.
#[pin_data]
pub(crate) struct PushGate {
    /// Batches begun and finished: a layout change waits for the ones under way.
    started: AtomicU64,
    done: AtomicU64,
    /// A layout syscall (munmap, mremap, ...) or a jump runs: the pusher leaves the process
    /// alone.
    layout_busy: AtomicBool,
    /// Bumped (and `settled` signalled) when pages are settled.
    #[pin]
    settle_gen: Mutex<u64>,
    #[pin]
    settled: CondVar,
}

impl PushGate {
    fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            started: AtomicU64::new(0),
            done: AtomicU64::new(0),
            layout_busy: AtomicBool::new(false),
            settle_gen <- new_mutex!(0, "PushGate::settle_gen"),
            settled <- new_condvar!("PushGate::settled"),
        })
    }

    /// No layout change stops the pusher now (a hint: one may begin right after).
    pub(crate) fn may_push(&self) -> bool {
        !self.layout_busy.load(SeqCst)
    }

    /// Pusher: a batch begins. False: a layout change runs, so the batch must push nothing.
    /// Either way [`PushGate::finish_batch`] ends it.
    pub(crate) fn begin_batch(&self) -> bool {
        // Counted before `layout_busy` is read: see the type's doc.
        self.started.fetch_add(1, SeqCst);
        !self.layout_busy.load(SeqCst)
    }

    /// Pusher: the batch begun last is over (its pages are settled); a layout change waiting
    /// for it wakes.
    pub(crate) fn finish_batch(&self) {
        self.done.fetch_add(1, SeqCst);
        self.notify_settled();
    }

    /// Stops the pusher and waits for the batch under way, for at most `LAYOUT_WAIT_MS`, or
    /// until `give_up` says so (the process died). Undone by [`PushGate::layout_done`].
    pub(crate) fn layout_begin(&self, give_up: impl Fn() -> bool) {
        self.layout_busy.store(true, SeqCst);
        let target = self.started.load(SeqCst);
        let deadline = time::now_ns() + LAYOUT_WAIT_MS * 1_000_000;
        while self.done.load(SeqCst) < target && time::now_ns() < deadline && !give_up() {
            self.wait_settled(20);
        }
    }

    /// See [`PushGate::layout_begin`].
    pub(crate) fn layout_done(&self) {
        self.layout_busy.store(false, SeqCst);
    }

    /// Pages were settled (or a transfer ended): every waiter in
    /// [`PushGate::wait_settled`] wakes.
    pub(crate) fn notify_settled(&self) {
        *self.settle_gen.lock() += 1;
        self.settled.notify_all();
    }

    /// Sleeps until the next [`PushGate::notify_settled`], `ms` at most, or a fatal signal.
    // TODO(issue 25): this wakes on *any* settle of the process (another page's pull ending,
    // a `Took`, a push batch), so a caller's documented wait (a fault on an in-flight or lent
    // page: 10 s) can end after ~20 ms, when the pusher's next batch finishes; the callers
    // then fault again or judge the page. Waiting for the page's own settle needs a
    // per-address condition.
    pub(crate) fn wait_settled(&self, ms: u32) {
        let mut g = self.settle_gen.lock();
        let start = *g;
        let deadline = time::now_ns() + ms as u64 * 1_000_000;
        while *g == start && time::now_ns() < deadline && !task::fatal_signal_pending() {
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } = self
                .settled
                .wait_interruptible_timeout(&mut g, msecs_to_jiffies(20))
            {
                drop(g);
                time::sleep_ms_uninterruptible(1);
                g = self.settle_gen.lock();
            }
        }
    }
}

/// Where the execution of a stretched process is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Where {
    /// At home: its task runs here.
    Home,
    /// At home, with a jump to member `to` queued on its task (`jump::request_home_leave`).
    Leaving { to: u16, reason: JumpReason },
    /// On member `at` since `since_ns` (the clock of `time::now_ns`); its task here sleeps in
    /// `jump::home_leave` until execution is back.
    Away { at: u16, since_ns: u64 },
}

impl Proc {
    /// Its pid (global).
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Its address space.
    pub(crate) fn mm(&self) -> &MmRef {
        &self.mm
    }

    /// What it did, for /proc and sysfs.
    pub(crate) fn counters(&self) -> &ProcCounters {
        &self.counters
    }

    /// The pusher wanted to push its pages and pushed `pushed`; rounds that push none in a row
    /// end its faults' waits for their budget (`Procs::wait_for_budget`).
    pub(crate) fn push_round(&self, pushed: u64) {
        if pushed == 0 {
            self.push_stalls.fetch_add(1, Relaxed);
        } else {
            self.push_stalls.store(0, Relaxed);
        }
        self.push_rounds.fetch_add(1, Release);
    }

    /// Marks that a fork holds its pages home (`true`), or ends that; returns whether it was
    /// marked before.
    pub(crate) fn set_forking(&self, on: bool) -> bool {
        self.forking.swap(on, Relaxed)
    }

    /// The member whose node holds its budget now: the one it runs on, if its budget holds
    /// away (`budget_away`, a budget set, one member; reclaim.rs). `None`: it binds at home.
    pub(crate) fn budget_held_at(&self) -> Option<u16> {
        let at = self.away_at()?;
        (self.budget_holds_away() && self.member(at).is_some()).then_some(at)
    }

    /// Whether its budget holds on its member when it runs there: `budget_away`, a budget
    /// set, and one member (the home counts its members' pages together).
    pub(crate) fn budget_holds_away(&self) -> bool {
        if !BUDGET_AWAY.load(Relaxed) || self.budget() == 0 {
            return false;
        }
        let mut members = self.members();
        members.next().is_some() && members.next().is_none()
    }

    /// Pages its member holds past the budget (0 unless [`Proc::budget_held_at`]), for the
    /// pusher to pull back.
    pub(crate) fn budget_excess_away(&self) -> u64 {
        if self.budget_held_at().is_none() {
            return 0;
        }
        crate::policy::away_excess(self.budget(), self.remote().max(0) as u64)
    }

    /// A reclaim round brought `got` pages back (reclaim.rs). Two in a row that brought
    /// none stop the member's waits for room for a while.
    pub(crate) fn reclaim_round(&self, got: u64) {
        if got > 0 {
            self.reclaim_stalls.store(0, Relaxed);
            return;
        }
        let now = time::now_ns();
        if self.reclaim_stalls.fetch_add(1, Relaxed) + 1 >= 2 && !self.budget_backed_off(now) {
            self.back_off_budget(now);
            self.reclaim_stalls.store(0, Relaxed);
        }
    }

    /// Its faults (and fetches, away) do not wait for its budget for a while: the pusher
    /// cannot help now.
    pub(crate) fn back_off_budget(&self, now: u64) {
        self.budget_backoff_until
            .store(now.saturating_add(BUDGET_BACKOFF_MS * 1_000_000), Relaxed);
        self.counters.budget_backoffs.fetch_add(1, Relaxed);
    }

    /// Whether its waits for its budget are off now ([`Proc::back_off_budget`]).
    pub(crate) fn budget_backed_off(&self, now: u64) -> bool {
        now < self.budget_backoff_until.load(Relaxed)
    }

    /// Its push/settle protocol.
    pub(crate) fn push_gate(&self) -> &PushGate {
        &self.push_gate
    }

    /// Its pages on their way: lent, and pulled.
    pub(crate) fn transfers(&self) -> Guard<'_, Transfers, MutexBackend> {
        self.transfers.lock()
    }

    /// Its jump policy.
    pub(crate) fn policy(&self) -> Guard<'_, JumpPolicy, MutexBackend> {
        self.policy.lock()
    }

    /// Its local memory budget in pages (0: none).
    pub(crate) fn budget(&self) -> u64 {
        self.budget.load(Relaxed)
    }

    /// The pages this process may hold here: its budget (0: none), and no more than its
    /// memory cgroup lets it grow, less a margin, so that the cgroup never throttles or
    /// reclaims it (`memory.high`, `memory.max`, an ancestor's): over either, it pushes, as
    /// swap would reclaim. 0: no limit.
    /// Away with its budget held where it runs (reclaim.rs), the home keeps the rest of its
    /// pages, as a swap server would: only the memory cgroup limits it here then.
    pub(crate) fn local_limit(&self) -> u64 {
        let budget = if self.budget_held_at().is_some() {
            0
        } else {
            self.budget()
        };
        let Some(room) = self.mm.memcg_room() else {
            return budget;
        };
        let anon = self.mm.anon_pages() as i64;
        let by_cgroup = (anon.saturating_add(room) - MEMCG_MARGIN).max(1) as u64;
        match budget {
            0 => by_cgroup,
            b => b.min(by_cgroup),
        }
    }

    pub(crate) fn set_budget(&self, pages: u64) {
        self.budget.store(pages, Relaxed);
    }

    /// Pinned at home: the policy never moves it.
    pub(crate) fn sticky(&self) -> bool {
        self.sticky.load(Relaxed)
    }

    pub(crate) fn set_sticky(&self, on: bool) {
        self.sticky.store(on, Relaxed);
    }

    /// Retired (exited, or lost with a node); never goes back.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Relaxed)
    }

    /// It died away from home with signal `sig` (its shell died there): its task, waiting at
    /// home, wakes and ends with `sig`.
    pub(crate) fn died_away_with(&self, sig: u32) {
        self.died_away.store(sig, Relaxed);
        self.dead.store(true, Relaxed);
        self.inbox_cv.notify_all();
    }

    /// The signal it died with away from home (0: none).
    pub(crate) fn died_away(&self) -> u32 {
        self.died_away.load(Relaxed)
    }

    /// `n` more pages are owned by members (fewer, for a negative `n`).
    pub(crate) fn add_remote(&self, n: i64) {
        self.remote.fetch_add(n, Relaxed);
    }

    /// `n` fewer pages are owned by members.
    pub(crate) fn sub_remote(&self, n: i64) {
        self.remote.fetch_sub(n, Relaxed);
    }

    /// Pages owned by members (a count kept as they move; may lag a transfer under way).
    pub(crate) fn remote(&self) -> i64 {
        self.remote.load(Relaxed)
    }

    /// Where the pusher's CLOCK sweep goes on.
    pub(crate) fn clock_hand(&self) -> u64 {
        self.cursor.load(Relaxed)
    }

    pub(crate) fn set_clock_hand(&self, addr: u64) {
        self.cursor.store(addr, Relaxed);
    }

    /// The number of a new push batch (`Push.batch`): every try of the batch carries it.
    pub(crate) fn next_push_batch(&self) -> u64 {
        self.push_batch.fetch_add(1, Relaxed) + 1
    }

    /// Its mappings did not fit in a jump with `maps` VMAs: the policy waits until it has
    /// fewer ([`Proc::maps_may_fit`]).
    pub(crate) fn set_too_many_maps(&self, maps: u64) {
        self.too_many_maps.store(maps, Relaxed);
    }

    /// Hands it the execution that came back (receive thread); its task wakes.
    pub(crate) fn deliver(&self, a: Arrival) {
        *self.inbox.lock() = Some(a);
        self.inbox_cv.notify_all();
    }

    /// The execution that came back, for its task to take (or `None`).
    pub(crate) fn inbox(&self) -> Guard<'_, Option<Arrival>, MutexBackend> {
        self.inbox.lock()
    }

    /// Its task sleeps on `inbox` (from [`Proc::inbox`]) until execution comes back, it is
    /// woken, a signal comes or `ms` pass.
    pub(crate) fn wait_inbox(
        &self,
        inbox: &mut Guard<'_, Option<Arrival>, MutexBackend>,
        ms: u32,
    ) -> kernel::sync::CondVarTimeoutResult {
        self.inbox_cv
            .wait_interruptible_timeout(inbox, msecs_to_jiffies(ms))
    }

    /// Its task's CPU times when it last came home (a leaf lock; its task only).
    pub(crate) fn cpu_at_home(&self) -> Guard<'_, (u64, u64, u64), SpinLockBackend> {
        self.cpu_at_home.lock()
    }

    /// Its remote faults' readahead window (a leaf lock).
    pub(crate) fn readahead(&self) -> Guard<'_, Readahead, SpinLockBackend> {
        self.readahead.lock()
    }

    /// Where its execution is now.
    pub(crate) fn place(&self) -> Where {
        *self.place.lock()
    }

    /// Moves it to `w` (the jump code's transitions).
    pub(crate) fn set_place(&self, w: Where) {
        *self.place.lock() = w;
    }

    /// Moves it from `from` to `to` if it is at `from` (a check and a move in one step).
    pub(crate) fn move_place(&self, from: impl Fn(Where) -> bool, to: Where) -> Where {
        let mut p = self.place.lock();
        let was = *p;
        if from(was) {
            *p = to;
        }
        was
    }

    /// The member it runs on, if it is away.
    pub(crate) fn away_at(&self) -> Option<u16> {
        match self.place() {
            Where::Away { at, .. } => Some(at),
            _ => None,
        }
    }

    /// The member node `id` (a node holding a shell of this process).
    pub(crate) fn member(&self, id: u16) -> Option<Arc<Peer>> {
        self.nodes.lock().iter().find(|p| p.id == id).cloned()
    }

    /// Every member node, in id order, each looked up under `nodes` and used without it: no
    /// allocation, so no member is ever left out for want of memory. A member added or
    /// dropped meanwhile may or may not be seen; every other one is seen once.
    pub(crate) fn members(&self) -> Members<'_> {
        Members {
            nodes: &self.nodes,
            after: None,
        }
    }

    /// Whether any member node is left.
    pub(crate) fn has_members(&self) -> bool {
        !self.nodes.lock().is_empty()
    }

    /// The node the next push batch goes to (round robin over the members).
    pub(crate) fn push_target(&self) -> Option<Arc<Peer>> {
        let nodes = self.nodes.lock();
        let n = nodes.len();
        let first = self.push_rr.fetch_add(1, Relaxed) as usize;
        // Round robin over the members that have room; none: nothing goes this round.
        (0..n)
            .map(|i| &nodes[(first + i) % n])
            .find(|p| p.has_room())
            .cloned()
    }

    /// Forgets member `id` (lost while it held none of the process's pages).
    pub(crate) fn drop_member(&self, id: u16) {
        crate::kvec::retain(&mut self.nodes.lock(), |_, p| p.id != id);
    }

    /// Pages of the process that node `id` owns, counted in its page table.
    pub(crate) fn pages_on(&self, id: u16) -> u64 {
        let Some(users) = self.mm.users() else {
            return 0;
        };
        let lock = users.read();
        lock.vmas_in(0, u64::MAX)
            .map(|v| v.remote_count_on(v.start(), v.end(), Some(id)))
            .sum()
    }

    /// A transfer other than a pull (a jump bringing it home) installed the page at `addr`:
    /// a pull of it still under way must drop its answer (`pull::transfer`).
    pub(crate) fn supersede_pulls(&self, addr: u64) {
        for e in self.transfers.lock().pulling.iter_mut() {
            if e.overlaps(addr, 1) {
                e.superseded |= 1 << ((addr - e.addr) / PAGE_SIZE as u64);
            }
        }
    }

    /// Stops the pusher for a layout change (or a jump), and waits for the batch under way
    /// (its pages are settled afterwards: markers, or back here), unless the process dies
    /// meanwhile. Undone by [`Proc::layout_done`].
    pub(crate) fn layout_begin(&self) {
        self.push_gate.layout_begin(|| self.dead.load(Relaxed));
    }

    /// See [`Proc::layout_begin`].
    pub(crate) fn layout_done(&self) {
        self.push_gate.layout_done();
    }

    /// The policy may try a jump: it has fewer VMAs than when its mappings last did not fit.
    pub(crate) fn maps_may_fit(&self) -> bool {
        let at = self.too_many_maps.load(Relaxed);
        at == 0 || self.mm.map_count() < at
    }

    pub(crate) fn comm(&self) -> &str {
        let n = self.comm.iter().position(|&c| c == 0).unwrap_or(16);
        core::str::from_utf8(&self.comm[..n]).unwrap_or("?")
    }

    /// One line of `/sys/kernel/elastic/procs`.
    pub(crate) fn write_to(&self, w: &mut impl Write) -> core::fmt::Result {
        // Before the line takes `nodes` (held while it is written): the limit looks at the
        // members too (with `budget_away`), and the lock is not recursive.
        let limit = self.local_limit();
        writeln!(
            w,
            "pid={} comm={} node={} shell_pid={} local_pages={} remote_pages={} budget_pages={} \
             pulls={} pulled_pages={} pushes={} pushed_pages={} bytes_in={} bytes_out={} \
             fault_p50_us={} fault_p99_us={} away={} sticky={} jumps={} jump_p50_us={} \
             jump_p99_us={} away_ms={} fetched_pages={} layout_syscalls={} lost_pages={} \
             pushed_clean_pages={} limit_pages={} budget_waits={} budget_wait_ms={} \
             budget_backoffs={} reclaimed_pages={} room_waits={}",
            self.pid,
            self.comm(),
            Nodes(&self.nodes.lock()),
            self.shell_pid,
            self.mm.anon_pages(),
            self.remote.load(Relaxed),
            self.budget.load(Relaxed),
            self.counters.pulls.load(Relaxed),
            self.counters.pulled.load(Relaxed),
            self.counters.pushes.load(Relaxed),
            self.counters.pushed.load(Relaxed),
            self.counters.pulled.load(Relaxed) * PAGE_SIZE as u64,
            (self.counters.pushed.load(Relaxed) - self.counters.pushed_clean.load(Relaxed))
                * PAGE_SIZE as u64,
            self.counters.fault_lat.percentile_us(50),
            self.counters.fault_lat.percentile_us(99),
            self.away_at().is_some() as u8,
            self.sticky.load(Relaxed) as u8,
            self.counters.jumps.load(Relaxed),
            self.counters.jump_lat.percentile_us(50),
            self.counters.jump_lat.percentile_us(99),
            self.counters.away_ns.load(Relaxed) / 1_000_000,
            self.counters.fetched.load(Relaxed),
            self.counters.layout_ops.load(Relaxed),
            self.counters.lost.load(Relaxed),
            self.counters.pushed_clean.load(Relaxed),
            limit,
            self.counters.budget_waits.load(Relaxed),
            self.counters.budget_wait_ns.load(Relaxed) / 1_000_000,
            self.counters.budget_backoffs.load(Relaxed),
            self.counters.reclaimed.load(Relaxed),
            self.counters.room_waits.load(Relaxed),
        )
    }
}

impl Proc {
    /// A process stretched to `peer` (shell `shell_pid` there), not registered yet.
    pub(crate) fn new(
        task: &TaskRef,
        mm: MmRef,
        peer: Arc<Peer>,
        shell_pid: u32,
        budget: u64,
        tunables: &JumpTunables,
    ) -> Result<Arc<Self>> {
        let mut nodes = KVec::new();
        nodes.push(peer, GFP_KERNEL)?;
        Arc::pin_init(
            pin_init!(Proc {
                pid: task.pid(),
                task: task.clone(),
                comm: task.comm(),
                mm,
                shell_pid,
                nodes <- new_mutex!(nodes, "Proc::nodes"),
                push_rr: AtomicU64::new(0),
                budget: AtomicU64::new(budget),
                budget_backoff_until: AtomicU64::new(0),
                push_rounds: AtomicU64::new(0),
                push_stalls: AtomicU64::new(0),
                forking: AtomicBool::new(false),
                reclaim_stalls: AtomicU64::new(0),
                refusing_since: AtomicU64::new(0),
                dead: AtomicBool::new(false),
                died_away: AtomicU32::new(0),
                cursor: AtomicU64::new(0),
                remote: AtomicI64::new(0),
                place <- new_spinlock!(Where::Home, "Proc::place"),
                readahead <- new_spinlock!(Readahead::default(), "Proc::readahead"),
                cpu_at_home <- new_spinlock!((0, 0, 0), "Proc::cpu_at_home"),
                counters: ProcCounters::new(),
                sticky: AtomicBool::new(false),
                too_many_maps: AtomicU64::new(0),
                inbox <- new_mutex!(None, "Proc::inbox"),
                inbox_cv <- new_condvar!("Proc::inbox_cv"),
                policy <- new_mutex!(JumpPolicy::new(tunables, time::now_ns()), "Proc::policy"),
                push_gate <- PushGate::new(),
                transfers <- new_mutex!(
                    Transfers {
                        lent: Lent::new(),
                        pulling: KVec::new(),
                        kept: Kept::new(),
                    },
                    "Proc::transfers"
                ),
                push_batch: AtomicU64::new(0),
                file_hashes <- new_mutex!(FileHashes(KVec::new()), "Proc::file_hashes"),
            }),
            GFP_KERNEL,
        )
    }

    /// Hashes of the files it maps (`mapsync::home_ranges`).
    pub(crate) fn file_hashes(&self) -> &Mutex<FileHashes> {
        &self.file_hashes
    }

    /// Sends `sig` to the process's own task (nothing if it has exited).
    pub(crate) fn signal(&self, sig: u32) {
        self.task.signal(sig);
    }

    /// Adds member node `peer` (one more node for a stretched process).
    pub(crate) fn add_member(&self, peer: Arc<Peer>) -> Result {
        self.nodes.lock().push(peer, GFP_KERNEL)?;
        Ok(())
    }
}

/// The SHA-256 of the files a process maps privately, as its jumps name them
/// (`mapsync::home_ranges`), keyed by device, inode, size and mtime: a file is hashed once,
/// not at every jump. A file whose key changed is hashed again.
pub(crate) struct FileHashes(KVec<((u64, u64, u64, u64), [u8; 32])>);

impl FileHashes {
    /// Most files remembered (twice what a jump names): the oldest goes first.
    const MAX: usize = 2 * crate::proto::MAX_JUMP_FILES;

    /// The hash of the file with `key`, if known.
    pub(crate) fn get(&self, key: (u64, u64, u64, u64)) -> Option<[u8; 32]> {
        self.0.iter().find(|e| e.0 == key).map(|e| e.1)
    }

    /// Remembers `sha` for `key` (nothing if there is no memory for it).
    pub(crate) fn put(&mut self, key: (u64, u64, u64, u64), sha: [u8; 32]) {
        if self.0.len() >= Self::MAX {
            crate::kvec::retain(&mut self.0, |i, _| i != 0);
        }
        let _ = self.0.push((key, sha), GFP_KERNEL); // a miss next time costs a hash
    }
}

/// The member nodes of a process, in id order ([`Proc::members`]).
pub(crate) struct Members<'a> {
    nodes: &'a Mutex<KVec<Arc<Peer>>>,
    /// The id of the member returned last.
    after: Option<u16>,
}

impl Iterator for Members<'_> {
    type Item = Arc<Peer>;

    fn next(&mut self) -> Option<Arc<Peer>> {
        let next = self
            .nodes
            .lock()
            .iter()
            .filter(|p| self.after.is_none_or(|a| p.id > a))
            .min_by_key(|p| p.id)
            .cloned()?;
        self.after = Some(next.id);
        Some(next)
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

/// The key of a process in [`Procs`]: its pid, then the number of its registration (an entry
/// of an exited process may linger under a pid that is reused meanwhile; the older one comes
/// first).
type ProcKey = (i32, u64);

/// The registry of this node's stretched processes.
#[pin_data]
pub(crate) struct Procs {
    /// By pid (then age). Removal cannot fail; an insertion's node is allocated before the
    /// lock is taken.
    #[pin]
    list: Mutex<RBTree<ProcKey, Arc<Proc>>>,
    /// Registrations so far: the second half of the next key.
    added: AtomicU64,
    /// Wakes the pusher early (memory is short).
    #[pin]
    kick: Mutex<bool>,
    #[pin]
    kick_cv: CondVar,
}

impl Procs {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_mutex!(RBTree::new(), "Procs::list"),
            added: AtomicU64::new(0),
            kick <- new_mutex!(false, "Procs::kick"),
            kick_cv <- new_condvar!("Procs::kick_cv"),
        })
    }

    /// The process whose address space is `mm`.
    pub(crate) fn by_mm(&self, mm: MmId) -> Option<Arc<Proc>> {
        self.list.lock().values().find(|p| p.mm.id() == mm).cloned()
    }

    /// The process with this (global) pid (the oldest entry, if one lingers).
    pub(crate) fn by_pid(&self, pid: i32) -> Option<Arc<Proc>> {
        let mut list = self.list.lock();
        let c = list.cursor_lower_bound(&(pid, 0))?;
        let (k, p) = c.current();
        (k.0 == pid).then(|| p.clone())
    }

    /// The first process whose key is `from` or later, and the key after its own.
    fn next_from(&self, from: ProcKey) -> Option<(Arc<Proc>, ProcKey)> {
        let mut list = self.list.lock();
        let c = list.cursor_lower_bound(&from)?;
        let (k, p) = c.current();
        Some((p.clone(), (k.0, k.1 + 1)))
    }

    /// Every process, in pid order, each used without the registry's lock (so `f` may take
    /// any lock, or send). No allocation: none is ever skipped for want of memory. A process
    /// added or retired meanwhile may or may not be seen.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<Proc>)) {
        let mut from = (i32::MIN, 0);
        while let Some((p, next)) = self.next_from(from) {
            f(&p);
            from = next;
        }
    }

    /// The process is no longer stretched (it exited, or lost its nodes): off the list, and
    /// whoever waits on its pushes wakes up to see it dead. Cannot fail.
    pub(crate) fn retire(&self, proc: &Arc<Proc>) {
        proc.dead.store(true, Relaxed);
        {
            let mut list = self.list.lock();
            let key = list
                .iter()
                .find(|(_, p)| Arc::ptr_eq(p, proc))
                .map(|(k, _)| *k);
            if let Some(k) = key {
                list.remove(&k);
            }
        }
        proc.push_gate.notify_settled();
    }

    /// Holds process `p`'s budget at allocation time (issue 26: the pusher alone let a
    /// process run over its budget between its rounds, so "N MiB local" was more): before a
    /// fault adds a page (a new anonymous page, a pull) to a process at or over its budget by a
    /// push batch, the pusher is woken and the fault waits while it makes room. The wait ends
    /// when the pusher says it cannot help (two rounds that wanted to push the process's pages
    /// pushed none: locked memory, a link down, a layout change), then faults do not wait for
    /// `BUDGET_BACKOFF_MS`; and after `BUDGET_WAIT_MAX_MS` in any case: bounded, never a
    /// deadlock. Slow progress is waited for: the push rate is what a budget costs, as the swap
    /// rate is for memory.high. (A stall judged by time, 50 ms without a page pushed, ended
    /// most waits on a loaded host, and the process then met memory.high's throttling: CI saw
    /// 296 high events.)
    pub(crate) fn wait_for_budget(&self, p: &Proc) {
        // Any budget a user may set, up to u64::MAX pages (the syscall fuzzer's), is fine.
        let budget = p.local_limit();
        if budget == 0 || p.mm.anon_pages() < budget.saturating_add(BUDGET_SLACK) || p.is_dead() {
            return;
        }
        // The limit is read again at each look, as the pusher reads it: one that follows a
        // memory cgroup moves by up to a charge batch as the cgroup's per-CPU stock fills and
        // drains, and a wait for a limit the pusher no longer sees would never end.
        let under = || p.local_limit().saturating_add(BUDGET_SLACK / 2);
        // Nor while a layout change stops the pusher for this process (it could not help).
        let start = time::now_ns();
        if p.budget_backed_off(start) || !p.push_gate.may_push() {
            return;
        }
        let rounds = p.push_rounds.load(Acquire);
        let c = &p.counters;
        c.budget_waits.fetch_add(1, Relaxed);
        let waited = || time::now_ns().saturating_sub(start);
        self.kick();
        while !task::fatal_signal_pending() && !p.is_dead() {
            time::sleep_ms_uninterruptible(1);
            // No limit any more (the budget cleared, no memory cgroup): nothing to wait for.
            if p.local_limit() == 0 || p.mm.anon_pages() < under() {
                break;
            }
            let now = time::now_ns();
            // Two rounds: one sweep of the CLOCK may find every page recently used, and
            // only clear their accessed bits.
            if p.push_rounds.load(Acquire) != rounds && p.push_stalls.load(Relaxed) >= 2 {
                p.back_off_budget(now);
                break;
            }
            // The next fault waits again.
            if now.saturating_sub(start) > BUDGET_WAIT_MAX_MS * 1_000_000 {
                break;
            }
            self.kick();
        }
        c.budget_wait_ns.fetch_add(waited(), Relaxed);
    }

    /// Home, receive thread: whether a fetch by `p`'s member must wait for room, its budget
    /// holding there (reclaim.rs); the pusher is woken to make it. Never while the pusher could
    /// not help lately.
    pub(crate) fn fetch_must_wait(&self, p: &Proc) -> bool {
        let now = time::now_ns();
        if p.budget_held_at().is_none()
            || !crate::policy::away_fetch_waits(p.budget(), p.remote().max(0) as u64, AWAY_SLACK)
            || p.budget_backed_off(now)
        {
            p.refusing_since.store(0, Relaxed);
            return false;
        }
        // Refused for a second in a row: the pusher is not keeping up (busy elsewhere, a
        // slow member); go on for a while, as a fault at home stops waiting.
        let since = match p.refusing_since.load(Relaxed) {
            0 => {
                p.refusing_since.store(now, Relaxed);
                now
            }
            t => t,
        };
        if now.saturating_sub(since) > BUDGET_WAIT_MAX_MS * 1_000_000 {
            p.back_off_budget(now);
            p.refusing_since.store(0, Relaxed);
            return false;
        }
        p.counters.room_waits.fetch_add(1, Relaxed);
        self.kick();
        true
    }

    /// Wakes the pusher now.
    pub(crate) fn kick(&self) {
        *self.kick.lock() = true;
        self.kick_cv.notify_all();
    }

    /// The pusher sleeps here until kicked, or `ms` at most.
    pub(crate) fn wait_kick(&self, ms: u32) {
        let mut k = self.kick.lock();
        if !*k {
            // Woken, timed out or signalled (a kthread is not): the pusher runs its round
            // either way.
            let _ = self
                .kick_cv
                .wait_interruptible_timeout(&mut k, msecs_to_jiffies(ms));
        }
        *k = false;
    }

    /// Adds a newly stretched process.
    pub(crate) fn add(&self, p: Arc<Proc>) -> Result {
        // Allocated before the lock; the key is new, so nothing is replaced.
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let key = (p.pid, self.added.fetch_add(1, Relaxed));
        self.list.lock().insert(node.into_node(key, p));
        Ok(())
    }

    /// Lines for `/sys/kernel/elastic/procs`, each written without the registry's lock (a
    /// line takes the process's own locks).
    pub(crate) fn write_to(&self, w: &mut impl Write) -> core::fmt::Result {
        let mut r = Ok(());
        self.for_each(|p| {
            if r.is_ok() {
                r = p.write_to(w);
            }
        });
        r
    }
}

/// The address space of stretched process `p` is going away: its shells go too.
pub(crate) fn exit(p: &Arc<Proc>) {
    if let Some(procs) = procs() {
        procs.retire(p);
        release_shells(p);
        pr_info!(
            "pid {} ({}) exited: {} pulls ({} pages), {} pushes ({} pages), fault p50 {} us p99 {} us, {} pages pushed by reference, {} pulled back from away, {} fetches waited for room\n",
            p.pid,
            p.comm(),
            p.counters.pulls.load(Relaxed),
            p.counters.pulled.load(Relaxed),
            p.counters.pushes.load(Relaxed),
            p.counters.pushed.load(Relaxed),
            p.counters.fault_lat.percentile_us(50),
            p.counters.fault_lat.percentile_us(99),
            p.counters.pushed_clean.load(Relaxed),
            p.counters.reclaimed.load(Relaxed),
            p.counters.room_waits.load(Relaxed)
        );
    }
}

/// The link to `peer` is gone: a process that ran there or had pages there dies with SIGBUS
/// (that memory is lost); one with none there forgets that node and runs on.
pub(crate) fn peer_lost(peer: u16) {
    let Some(procs) = procs() else { return };
    procs.for_each(|p| {
        if p.member(peer).is_none() {
            return;
        }
        let ran_there = p.away_at() == Some(peer);
        // Its page table is only walked when that decides.
        let held = if ran_there { 0 } else { p.pages_on(peer) };
        if ran_there || held > 0 {
            if ran_there {
                // Its task waits here for its execution: it wakes and ends with SIGBUS.
                p.died_away.store(bindings::SIGBUS, Relaxed);
            }
            procs.retire(p);
            // Retired, its exit will not be seen here: its other members drop its shells
            // and pages now.
            p.drop_member(peer);
            release_shells(p);
            if ran_there {
                pr_err!(
                    "node {} lost: killing pid {} ({}) with SIGBUS, it was running there\n",
                    peer,
                    p.pid,
                    p.comm()
                );
            } else {
                pr_err!(
                    "node {} lost: killing pid {} ({}) with SIGBUS, {} of its pages were there\n",
                    peer,
                    p.pid,
                    p.comm(),
                    held
                );
            }
            if ran_there {
                p.inbox_cv.notify_all();
            } else {
                p.signal(bindings::SIGBUS);
            }
            return;
        }
        p.drop_member(peer);
        if !p.has_members() {
            procs.retire(p);
            pr_warn!(
                "node {} lost: pid {} ({}) had no pages there and runs on\n",
                peer,
                p.pid,
                p.comm()
            );
        } else {
            pr_warn!(
                "node {} lost: pid {} ({}) had no pages there and runs on with its other nodes\n",
                peer,
                p.pid,
                p.comm()
            );
        }
    });
}

/// Tells every member of retired process `p` to drop its shell (`Release`).
fn release_shells(p: &Proc) {
    for m in p.members() {
        // Not sent: there is no connection, or the failed send closed it; either way that
        // member loses its link to us and kills our shells itself (`shell::home_lost`).
        let _ = m.send(&Message::Release { pid: p.pid as u32 });
    }
}

/// How often, and how long apart, a page that came is tried again when its install fails
/// for want of memory (the pusher is kicked meanwhile).
pub(crate) const INSTALL_TRIES: u32 = 4;
pub(crate) const INSTALL_RETRY_MS: u32 = 20;

/// Installs `data` at `addr` over `expect` (see `Vma::install`), retrying a refusal for want
/// of memory a few times while the pusher makes room: the page's data may be nowhere else.
pub(crate) fn install_retrying(vma: &Vma<'_>, addr: u64, expect: u64, data: &[u8]) -> Result {
    let mut tries = 0;
    loop {
        match vma.install(addr, expect, data, false) {
            Err(e) if e == ENOMEM && tries + 1 < INSTALL_TRIES => {
                tries += 1;
                if let Some(procs) = procs() {
                    procs.kick();
                }
                time::sleep_ms_uninterruptible(INSTALL_RETRY_MS);
            }
            r => return r,
        }
    }
}

/// Installs a page of `p` whose data has left its owner (`what` says where it came from, for
/// the log) over its marker, with [`install_retrying`]'s retries. If it still cannot be
/// installed its data is lost: the page is poisoned (every access gets SIGBUS) and the loss
/// logged and counted, never left to be built anew as zeros or waited for in flight.
pub(crate) fn install_or_poison(
    p: &Proc,
    vma: &Vma<'_>,
    addr: u64,
    marker: u64,
    data: &[u8],
    what: core::fmt::Arguments<'_>,
) -> Result {
    let Err(err) = install_retrying(vma, addr, marker, data) else {
        return Ok(());
    };
    let poisoned = vma.poison(addr, marker);
    p.counters.lost.fetch_add(1, Relaxed);
    pr_err!(
        "pid {} ({}): page {:#x} {} could not be installed ({:?}); its data is lost: {}\n",
        p.pid,
        p.comm(),
        addr,
        what,
        err,
        if poisoned.is_ok() {
            "SIGBUS on access"
        } else {
            "it was changed meanwhile"
        }
    );
    Err(err)
}

static PROCS: Global<Procs> = Global::new();

/// The registry, once `init` ran.
pub(crate) fn procs() -> Option<&'static Procs> {
    PROCS.get()
}

/// Creates the registry.
pub(crate) fn init() -> Result {
    PROCS.init(Procs::new()).map(|_| ())
}
