// SPDX-License-Identifier: GPL-2.0

//! The registry of shells this node holds for other nodes' processes. A shell is a parked
//! copy of a process (sys/umh.rs) that holds the pages pushed here and runs the process when
//! its execution jumps here. It is keyed by (home node, home pid); a home node can only touch
//! its own shells. The primitives that act on shells are in stretch.rs, pull.rs, fetch.rs,
//! push.rs, jump.rs and mapsync.rs.

use crate::lent::Lent;
use crate::policy::{JumpPolicy, Readahead};
use crate::proto::JumpReason;
use crate::stats::LatencyHist;
use crate::sys::{
    global::Global,
    mm::{MmId, MmRef},
    task::TaskRef,
    umh,
};
use crate::transit::Arrival;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};
use kernel::{
    new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{Arc, Mutex, SpinLock},
};

/// A shell hosted here: a stopped copy of another node's process that holds the pages pushed
/// here, and runs the process when its execution jumps here.
///
/// # Invariants
///
/// - Only its home node acts on it: it is found by `(home, home_pid)` of the link a message
///   came on.
/// - While its task runs the process (`run` is not `Parked`), an empty PTE in a private
///   mapping of `mm` is a page the home owns; a PTE is filled only by a fault on that very
///   address (no fault-around) or by a page the home sent.
/// - While it is `Parked` its task sleeps in the kernel and runs no user code.
#[pin_data]
pub(crate) struct Shell {
    pub(crate) home: u16,
    pub(crate) home_pid: u32,
    /// The uid its Stretch named (the process's at home, by that node's word): what
    /// `max_shells_per_uid` counts.
    pub(crate) home_uid: u32,
    pub(crate) pid: i32,
    pub(crate) seed: Arc<umh::Seed>,
    pub(crate) mm: MmRef,
    /// Whether its task runs the process.
    #[pin]
    pub(crate) run: SpinLock<Run>,
    #[pin]
    pub(crate) policy: Mutex<JumpPolicy>,
    /// What it did, for /proc and sysfs.
    pub(crate) counters: ShellCounters,
    /// Execution arriving from the home, handed over by the receive thread.
    #[pin]
    pub(crate) inbox: Mutex<Option<Arrival>>,
    /// Its task's CPU times (`task::current_cputime`) when the process last arrived, so the
    /// jump home reports what the process used here. Only its task touches it.
    #[pin]
    pub(crate) cpu_at_arrival: SpinLock<(u64, u64, u64)>,
    /// Pages that left for the home, kept until it confirms (lent.rs).
    #[pin]
    pub(crate) lent: Mutex<Lent>,
    /// Its fetches' readahead window (`policy::Readahead`; a leaf lock).
    #[pin]
    pub(crate) readahead: SpinLock<Readahead>,
    /// The newest push batch installed: an older or repeated one is acknowledged only.
    pub(crate) push_batch: AtomicU64,
    /// Its `PushAck` status (`ownership::PushEnd`): a repeat of it gets the same answer.
    pub(crate) push_status: AtomicI32,
    /// Where the next scan for cold pages starts (reclaim.rs).
    pub(crate) cold_hand: AtomicU64,
    /// The page whose fetch the home last refused for want of room (reclaim.rs): faulting
    /// on it again is a wait, not another remote fault for the jump policy. 0: none.
    pub(crate) room_wait: AtomicU64,
    /// Until when (ns) the budget held here counts as full for the jump policy.
    pub(crate) full_until: AtomicU64,
    /// Pages the process may hold here while it runs here (its budget held away, reclaim.rs;
    /// 0: no limit), as the home said in its last `Jump`.
    pub(crate) budget: AtomicU64,
    /// The pages the home held when the process last arrived, and how many it gained since
    /// (pulled from here) less those fetched: what a jump home finds there (the jump
    /// policy's view).
    pub(crate) home_at_arrival: AtomicU64,
    pub(crate) home_moved: core::sync::atomic::AtomicI64,
    /// Where file pages go before the process runs here again (the union of the ranges):
    /// pages the home copied on write while the process ran here, whose Discard may have
    /// been handled before a fetch of theirs mapped the file's bytes (`mapsync::discard`).
    #[pin]
    pub(crate) file_drops: SpinLock<Option<(u64, u64)>>,
}

/// What a shell did, for /proc and sysfs. Counters only: no decision reads them.
pub(crate) struct ShellCounters {
    pub(crate) arrivals: AtomicU64,
    pub(crate) jumps: AtomicU64,
    pub(crate) jump_lat: LatencyHist,
    pub(crate) syscalls: AtomicU64,
    /// Faults sent home (`jump::shell_fault_signal`).
    pub(crate) faults: AtomicU64,
    /// The home's file mappings mapped here too, and those left out (no identical file).
    pub(crate) mapped_files: AtomicU64,
    pub(crate) unmapped_files: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) fetch_lat: LatencyHist,
}

impl ShellCounters {
    /// All zero.
    pub(crate) fn new() -> Self {
        Self {
            arrivals: AtomicU64::new(0),
            jumps: AtomicU64::new(0),
            jump_lat: LatencyHist::new(),
            syscalls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            mapped_files: AtomicU64::new(0),
            unmapped_files: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            fetch_lat: LatencyHist::new(),
        }
    }
}

/// What a shell's task does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// Parked in the kernel (sys/umh.rs): the process runs elsewhere.
    Parked,
    /// Runs the process.
    Running,
    /// Runs the process, with a jump home queued on its task (`jump::request_shell_leave`).
    Leaving { reason: JumpReason },
}

impl Shell {
    /// What its task does now.
    pub(crate) fn run(&self) -> Run {
        *self.run.lock()
    }

    /// Moves it from a state `from` accepts to `to`; returns the state it was in.
    pub(crate) fn move_run(&self, from: impl Fn(Run) -> bool, to: Run) -> Run {
        let mut r = self.run.lock();
        let was = *r;
        if from(was) {
            *r = to;
        }
        was
    }

    /// Whether its task runs the process now (a jump home may be queued).
    pub(crate) fn running(&self) -> bool {
        self.run() != Run::Parked
    }

    /// Adds `[start, end)` to the file pages to drop before the process runs here again.
    pub(crate) fn add_file_drop(&self, start: u64, end: u64) {
        let mut d = self.file_drops.lock();
        *d = Some(match *d {
            Some((s, e)) => (s.min(start), e.max(end)),
            None => (start, end),
        });
    }

    /// Takes the range of file pages to drop ([`Shell::add_file_drop`]).
    pub(crate) fn take_file_drops(&self) -> Option<(u64, u64)> {
        self.file_drops.lock().take()
    }
}

/// The shells of this node.
#[pin_data]
pub(crate) struct Shells {
    /// By (home node, home pid): one shell per process (`stretch::make_shell` checks). Removal
    /// cannot fail; an insertion's node is allocated before the lock is taken.
    #[pin]
    list: Mutex<RBTree<(u16, u32), Arc<Shell>>>,
}

impl Shells {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { list <- new_mutex!(RBTree::new(), "Shells::list") })
    }

    pub(crate) fn find(&self, home: u16, pid: u32) -> Option<Arc<Shell>> {
        self.list.lock().get(&(home, pid)).cloned()
    }

    pub(crate) fn by_seed(&self, seed: &umh::Seed) -> Option<Arc<Shell>> {
        self.list
            .lock()
            .values()
            .find(|s| core::ptr::eq(&*s.seed, seed))
            .cloned()
    }

    pub(crate) fn by_mm(&self, mm: MmId) -> Option<Arc<Shell>> {
        self.list.lock().values().find(|s| s.mm.id() == mm).cloned()
    }

    /// The shell whose task is the current one.
    pub(crate) fn by_current(&self) -> Option<Arc<Shell>> {
        let pid = TaskRef::current().pid();
        self.list.lock().values().find(|s| s.pid == pid).cloned()
    }

    /// Takes the shell of process `pid` of node `home` off the registry.
    pub(crate) fn remove(&self, home: u16, pid: u32) -> Option<Arc<Shell>> {
        self.list.lock().remove(&(home, pid))
    }

    /// How many shells node `home` has here.
    pub(crate) fn count_of(&self, home: u16) -> usize {
        count_home(&mut self.list.lock(), home)
    }

    /// Shells of node `home` whose Stretch named user `uid`.
    pub(crate) fn count_of_uid(&self, home: u16, uid: u32) -> usize {
        count_home_where(&mut self.list.lock(), home, |s| s.home_uid == uid)
    }

    /// Some shell of node `home`, still in the registry.
    fn any_of(&self, home: u16) -> Option<Arc<Shell>> {
        let mut list = self.list.lock();
        let c = list.cursor_lower_bound(&(home, 0))?;
        let (key, s) = c.current();
        (key.0 == home).then(|| s.clone())
    }

    /// Adds a new shell; `EEXIST` if its process has one (never replaced).
    pub(crate) fn add(&self, s: Arc<Shell>) -> Result {
        // Allocated before the lock.
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let key = (s.home, s.home_pid);
        let mut list = self.list.lock();
        if list.get(&key).is_some() {
            return Err(EEXIST);
        }
        list.insert(node.into_node(key, s));
        Ok(())
    }

    /// Shell of process `pid` of node `home`, and its task's address space (while it lives).
    pub(crate) fn with_mm(&self, home: u16, pid: u32) -> Result<(Arc<Shell>, MmRef)> {
        let shell = self.find(home, pid).ok_or(ESRCH)?;
        // Not under `seed.state`: `mm()` drops a user reference, and if that is the last one
        // (the shell exits meanwhile) `__mmput` runs the exit hook, which takes that lock.
        let t = shell.seed.state.lock().task.clone().ok_or(ESRCH)?;
        let m = t.mm().ok_or(ESRCH)?;
        Ok((shell, m))
    }

    /// Drops every shell's clean copies (memory is short here), one shell at a time without
    /// the registry's lock.
    pub(crate) fn clear_clean(&self) {
        let mut after = None;
        while let Some((key, s)) = self.next_after(after) {
            after = Some(key);
            s.lent.lock().clear_clean();
        }
    }

    /// Number of shells, for `info`.
    pub(crate) fn count(&self) -> usize {
        self.list.lock().iter().count()
    }

    /// Writes one line per shell.
    pub(crate) fn write_to(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.write_where(w, |_| true)
    }

    /// The line of the shell whose task is `pid`, if any.
    pub(crate) fn write_pid(&self, pid: i32, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.write_where(w, |s| s.pid == pid)
    }

    /// The first shell whose key comes after `after` (the first of all: `None`), and its key.
    fn next_after(&self, after: Option<(u16, u32)>) -> Option<((u16, u32), Arc<Shell>)> {
        let mut list = self.list.lock();
        let mut c = match after {
            Some(k) => list.cursor_lower_bound(&k)?,
            None => list.cursor_front()?,
        };
        if Some(*c.current().0) == after {
            c = c.move_next()?;
        }
        let (k, s) = c.current();
        Some((*k, s.clone()))
    }

    /// Writes the line of each shell `f` accepts, each without the registry's lock (a line
    /// takes the shell's own `run` lock).
    fn write_where(
        &self,
        w: &mut impl core::fmt::Write,
        f: impl Fn(&Shell) -> bool,
    ) -> core::fmt::Result {
        let mut after = None;
        while let Some((key, s)) = self.next_after(after) {
            after = Some(key);
            if !f(&s) {
                continue;
            }
            writeln!(
                w,
                "shell home_node={} home_pid={} pid={} running={} arrivals={} jumps_home={} \
                 jump_p50_us={} jump_p99_us={} syscalls={} faults_home={} files_mapped={} files_missing={} fetches={} fetch_p50_us={} fetch_p99_us={} \
                 anon_pages={}",
                s.home,
                s.home_pid,
                s.pid,
                s.running() as u8,
                s.counters.arrivals.load(Relaxed),
                s.counters.jumps.load(Relaxed),
                s.counters.jump_lat.percentile_us(50),
                s.counters.jump_lat.percentile_us(99),
                s.counters.syscalls.load(Relaxed),
                s.counters.faults.load(Relaxed),
                s.counters.mapped_files.load(Relaxed),
                s.counters.unmapped_files.load(Relaxed),
                s.counters.fetches.load(Relaxed),
                s.counters.fetch_lat.percentile_us(50),
                s.counters.fetch_lat.percentile_us(99),
                s.mm.anon_pages(),
            )?;
        }
        Ok(())
    }
}

/// Entries of node `home` in a tree keyed by (home node, home pid).
pub(crate) fn count_home<V>(tree: &mut RBTree<(u16, u32), V>, home: u16) -> usize {
    count_home_where(tree, home, |_| true)
}

/// Entries of node `home` in a tree keyed by (home node, home pid) whose value passes `keep`.
fn count_home_where<V>(
    tree: &mut RBTree<(u16, u32), V>,
    home: u16,
    keep: impl Fn(&V) -> bool,
) -> usize {
    let mut n = 0;
    let mut c = tree.cursor_lower_bound(&(home, 0));
    while let Some(cur) = c {
        let (key, v) = cur.current();
        if key.0 != home {
            break;
        }
        n += usize::from(keep(v));
        c = cur.move_next();
    }
    n
}

/// Kills every shell of a home node that is gone.
pub(crate) fn home_lost(home: u16) {
    let Some(shells) = shells() else { return };
    // One at a time, each released without the registry's lock: nothing to allocate, so
    // none is left behind.
    while let Some(s) = shells.any_of(home) {
        pr_warn!(
            "node {} lost: killing shell pid {} of its process {}\n",
            home,
            s.pid,
            s.home_pid
        );
        // Killed before it leaves the registry (see `stretch::serve_release`).
        s.seed.release();
        shells.remove(home, s.home_pid);
    }
}

static SHELLS: Global<Shells> = Global::new();

/// The registry, once `init` ran.
pub(crate) fn shells() -> Option<&'static Shells> {
    SHELLS.get()
}

/// Creates the registry.
pub(crate) fn init() -> Result {
    SHELLS.init(Shells::new()).map(|_| ())
}
