// SPDX-License-Identifier: GPL-2.0

//! Stretch: a process's address space extends to another node, held there by a parked shell.
//!
//! - Home: [`stretch`] reads the executable's hash, argv and environment, asks the peer for a
//!   shell (`Stretch`, answered by `StretchOk`) and registers the process (home.rs). Marked
//!   processes ([`Marks`]) are stretched by the pusher when memory runs short or they exceed
//!   their budget ([`auto_stretch`]).
//! - Member: [`serve_stretch`] starts the shell from the same executable (byte for byte) and
//!   waits until it parks; [`serve_release`] lets it die when its process exits.

use crate::home::{self, Proc};
use crate::link::Conn;
use crate::node::{peer_warn, Node, Peer};
use crate::peer::LinkState;
use crate::proto::{Message, Stretch, MAX_STRETCH_STRINGS};
use crate::rpc::{self, Answer};
use crate::shell::{self, Shell};
use crate::sys::{
    errno::e,
    file,
    global::Global,
    mm::{self, MmId},
    task::{self, TaskId, TaskRef},
    time, umh,
};
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use kernel::{
    bindings, new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{Arc, Mutex},
    time::msecs_to_jiffies,
};

/// How long the shell's node may take to start a shell.
const STRETCH_TIMEOUT_MS: u32 = 15_000;
/// How long a shell may take to park after its exec.
const PARK_TIMEOUT_NS: u64 = 10_000_000_000;

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

/// Home: creates a shell of `task` on `peer` and registers the process (or adds `peer` to
/// its members if it is stretched already).
pub(crate) fn stretch(task: &TaskRef, peer: Arc<Peer>, budget: u64) -> Result {
    let procs = home::procs().ok_or(ENODEV)?;
    if peer.link.lock().state != LinkState::Up {
        return Err(e(bindings::ENOTCONN));
    }
    if task.threads() != 1 {
        // One thread: only the process touches its memory (see home.rs).
        return Err(EINVAL);
    }
    let pid = task.pid();
    let mm = task.mm().ok_or(EINVAL)?;
    // One stretch of a process at a time: from the check below to its registration.
    let _claim = InFlight::claim(&marks().ok_or(ENODEV)?.stretching, mm.id())?;
    // By address space, not pid: an entry of an exited process may linger under a reused pid.
    let existing = procs.by_mm(mm.id());
    if let Some(p) = &existing {
        if p.member(peer.id).is_some() {
            return Err(e(bindings::EALREADY));
        }
    }
    // From here no task may join it, and it has none besides itself (counted under the
    // lock copy_process() takes: a thread created meanwhile is counted or refused). Lifted
    // again unless the process ends up registered.
    let mut solo = Solo {
        mm: task.mm().ok_or(ESRCH)?,
        keep: existing.is_some(),
    };
    task.solo_begin(&mm)?;
    refuse_unsupported(task, &mm)?;
    let mut pathbuf = KVec::from_elem(0u8, 512, GFP_KERNEL)?;
    let path = task.exe_path(&mut pathbuf)?;
    // The file it runs (its path may name another by now).
    let exe_hash = file::exe_sha256(&mm)?;
    let (args, env) = task.arg_env_ranges().ok_or(EINVAL)?;
    let room = MAX_STRETCH_STRINGS - path.len();
    let mut strings = KVec::new();
    read_strings(task, args, &mut strings, room / 2)?;
    let argv_len = strings.len();
    read_strings(task, env, &mut strings, room - argv_len)?;

    let (uid, gid) = task.ids();
    let answer = rpc::call(&*peer, 0, STRETCH_TIMEOUT_MS, |req| {
        Message::Stretch(Stretch {
            req,
            pid: pid as u32,
            exe_hash,
            uid,
            gid,
            path,
            argv: &strings[..argv_len],
            env: &strings[argv_len..],
        })
    })?;
    let Answer::Shell(shell_pid) = answer else {
        return Err(e(bindings::EPROTO));
    };
    if let Some(p) = existing {
        p.add_member(peer.clone())?;
        pr_info!(
            "pid {} ({}) stretched to node {} too (shell pid {})\n",
            pid,
            p.comm(),
            peer.id,
            shell_pid
        );
        procs.kick();
        return Ok(());
    }
    let tunables = crate::jump::tunables();
    let proc = Proc::new(task, mm, peer.clone(), shell_pid, budget, &tunables)?;
    proc.mm().mark_elastic();
    procs.add(proc.clone())?;
    if proc.mm().users().is_none() {
        // It exited while its shell was being made, maybe before it was on the list: its
        // exit hook may have missed it.
        home::exit(&proc);
        return Err(ESRCH);
    }
    // Asked again now that the mark refuses new ones: one may have come in meanwhile.
    if let Err(err) = refuse_unsupported(task, proc.mm()) {
        home::exit(&proc);
        return Err(err);
    }
    solo.keep = true;
    pr_info!(
        "pid {} ({}) stretched to node {} (shell pid {})\n",
        pid,
        proc.comm(),
        peer.id,
        shell_pid
    );
    procs.kick();
    Ok(())
}

/// The one-task rule a stretch set on an address space (`TaskRef::solo_begin`): lifted when
/// the stretch ends without the process registered (`keep` false), kept for as long as the
/// address space lives otherwise.
struct Solo {
    mm: mm::MmRef,
    keep: bool,
}

impl Drop for Solo {
    fn drop(&mut self) {
        if !self.keep {
            crate::sys::task::solo_end(&self.mm);
        }
    }
}

/// A process marked elastic that is not stretched yet. Held by task reference, never by
/// pid: a pid is reused once its process is gone, a task reference names only that task.
#[derive(Clone)]
struct Mark {
    task: TaskRef,
    budget: u64,
    /// A wait for its stretch is queued on its task ([`Marks::hold_until_stretched`]).
    holding: bool,
    /// Until when (ns) it is not held again: a hold that timed out (no stretch came).
    calm_until: u64,
}

/// How long a marked process over its budget waits for its stretch, at its return to user
/// mode; and how long after a wait that timed out it is not held again.
const STRETCH_HOLD_MS: u64 = 3_000;
const STRETCH_CALM_MS: u64 = 5_000;

/// The payload of the hold's task work (it needs none).
struct Hold;

/// Processes marked elastic (`elastic_ctl` op 2), waiting for their stretch.
///
/// # Invariants
///
/// A marked process's current mm has `MMF_ELASTIC` (its overcommit and OOM path are the
/// elastic ones: an O(1) flag test, no lookup here). A mark is set only while a peer is
/// connected, is kept across an ordinary exec (the new mm gets the flag) and is dropped at
/// an exec that raises privilege (setuid, setgid, file capabilities), as ptrace access is.
#[pin_data]
pub(crate) struct Marks {
    /// By task. Removal cannot fail; an insertion's node is allocated before the lock.
    #[pin]
    list: Mutex<RBTree<TaskId, Mark>>,
    /// Number of marks, so the exec hook costs nothing when there are none.
    count: AtomicU64,
    /// Home: address spaces being stretched now (a second stretch of one is EBUSY: both
    /// would make a shell and register the process).
    #[pin]
    stretching: Mutex<RBTree<MmId, ()>>,
    /// Member: shells being made now, by home node and pid.
    #[pin]
    making: Mutex<RBTree<(u16, u32), ()>>,
}

/// A key in one of the in-flight sets of `Marks`, taken out again when dropped. Taking it out
/// cannot fail: a key left behind would make every later stretch of it EBUSY.
struct InFlight<'a, T: Ord + Copy> {
    set: &'a Mutex<RBTree<T, ()>>,
    key: T,
}

impl<'a, T: Ord + Copy> InFlight<'a, T> {
    /// Puts `key` in `set`; EBUSY if it is there already.
    fn claim(set: &'a Mutex<RBTree<T, ()>>, key: T) -> Result<Self> {
        // Allocated before the lock.
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut s = set.lock();
        if s.get(&key).is_some() {
            return Err(EBUSY);
        }
        s.insert(node.into_node(key, ()));
        Ok(Self { set, key })
    }
}

impl<T: Ord + Copy> Drop for InFlight<'_, T> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.key);
    }
}

static MARKS: Global<Marks> = Global::new();

/// The marks, once `init` ran.
pub(crate) fn marks() -> Option<&'static Marks> {
    MARKS.get()
}

/// Creates the (empty) list of marks.
pub(crate) fn init() -> Result {
    let m = pin_init!(Marks {
        list <- new_mutex!(RBTree::new(), "Marks::list"),
        count: AtomicU64::new(0),
        stretching <- new_mutex!(RBTree::new(), "Marks::stretching"),
        making <- new_mutex!(RBTree::new(), "Marks::making"),
    });
    MARKS.init(m).map(|_| ())
}

impl Marks {
    /// Marks `task` (or updates its budget).
    pub(crate) fn mark(&self, task: &TaskRef, budget: u64) -> Result {
        // Allocated before the lock (and dropped unused if `task` is marked already).
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let mut marks = self.list.lock();
        match marks.get_mut(&task.id()) {
            Some(m) => m.budget = budget,
            None => {
                let mark = Mark {
                    task: task.clone(),
                    budget,
                    holding: false,
                    calm_until: 0,
                };
                marks.insert(node.into_node(task.id(), mark));
                self.count.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }

    /// The budget of `task` if it is marked (not stretched yet), in pages.
    pub(crate) fn budget_of(&self, task: &TaskRef) -> Option<u64> {
        self.list.lock().get(&task.id()).map(|m| m.budget)
    }

    /// Marked `task` (the current one) has passed its budget and its stretch was asked for:
    /// before it next runs user code it waits for the stretch, up to `STRETCH_HOLD_MS`, so
    /// that it does not grow far past its budget meanwhile (the budget holds at allocation
    /// time). The wait is task work, run with no lock held: a fault cannot wait for a stretch,
    /// which reads the process's memory and may wait for its mmap lock. Queued once at a time,
    /// and not again for `STRETCH_CALM_MS` after one that timed out.
    pub(crate) fn hold_until_stretched(&self, task: &TaskRef) {
        // Not where no stretch can come: no peer up, or a second thread (`stretch` refuses).
        let can = crate::node::get().is_some_and(|n| n.first_connected_peer().is_some());
        if !can || task.threads() != 1 {
            return;
        }
        let now = time::now_ns();
        {
            let mut marks = self.list.lock();
            let Some(m) = marks.get_mut(&task.id()) else {
                return;
            };
            if m.holding || now < m.calm_until {
                return;
            }
            m.holding = true;
        }
        let queued = Arc::new(Hold, GFP_KERNEL)
            .map_err(Error::from)
            .and_then(|h| task.queue_work(h, held, false));
        if queued.is_err() {
            if let Some(m) = self.list.lock().get_mut(&task.id()) {
                m.holding = false;
            }
        }
    }

    /// Whether `task` is still marked (its stretch not done, or not given up).
    fn marked(&self, task: &TaskRef) -> bool {
        self.list.lock().get(&task.id()).is_some()
    }

    /// Sets the budget of marked `task`; `ESRCH` if it is not marked.
    pub(crate) fn set_budget(&self, task: &TaskRef, budget: u64) -> Result {
        let mut marks = self.list.lock();
        let m = marks.get_mut(&task.id()).ok_or(ESRCH)?;
        m.budget = budget;
        Ok(())
    }

    /// Drops the mark of `task`, and those of tasks that exited.
    fn forget(&self, task: &TaskRef) {
        let mut marks = self.list.lock();
        let mut gone = marks.remove(&task.id()).is_some() as u64;
        // The exited ones, walked with a cursor that removes as it goes.
        let mut cur = marks.cursor_front();
        while let Some(c) = cur {
            cur = if c.current().1.task.exited() {
                gone += 1;
                c.remove_current().0
            } else {
                c.move_next()
            };
        }
        self.count.fetch_sub(gone, Relaxed);
    }

    /// Whether `task` is marked.
    fn has(&self, task: &TaskRef) -> bool {
        self.count.load(Relaxed) != 0 && self.list.lock().get(&task.id()).is_some()
    }

    /// The first mark whose key comes after `after` (the first of all: `None`), and its key.
    fn next_after(&self, after: Option<TaskId>) -> Option<(TaskId, Mark)> {
        let mut marks = self.list.lock();
        let mut c = match after {
            Some(k) => marks.cursor_lower_bound(&k)?,
            None => marks.cursor_front()?,
        };
        if Some(*c.current().0) == after {
            c = c.move_next()?;
        }
        let (k, m) = c.current();
        Some((*k, m.clone()))
    }

    /// Lines for `/sys/kernel/elastic/procs`.
    pub(crate) fn write_to(&self, w: &mut impl Write) -> core::fmt::Result {
        for m in self.list.lock().values().filter(|m| !m.task.exited()) {
            writeln!(w, "pid={} marked budget_pages={}", m.task.pid(), m.budget)?;
        }
        Ok(())
    }
}

/// A process whose memory something else also manages (a userfaultfd) or shares (io_uring's
/// workers) is not stretched: EOPNOTSUPP, and a log line naming why.
fn refuse_unsupported(task: &TaskRef, mm: &mm::MmRef) -> Result {
    match mm.unsupported(task)? {
        None => Ok(()),
        Some(why) => {
            pr_warn!(
                "pid {}: not stretched: {}, which ElasticOS does not support (EOPNOTSUPP)\n",
                task.pid(),
                why
            );
            Err(e(bindings::EOPNOTSUPP))
        }
    }
}

/// The exec hook (the current task has its new mm; `privileged`: the program raises
/// privilege, or is not dumpable). A marked process keeps its mark into an ordinary program,
/// whose mm is then elastic too; a privileged program drops it, as it drops ptrace access:
/// nobody but root may move a setuid program's memory off this node.
pub(crate) fn on_exec(privileged: bool) {
    let Some(marks) = marks() else { return };
    if marks.count.load(Relaxed) == 0 {
        return;
    }
    let me = TaskRef::current();
    if !marks.has(&me) {
        return;
    }
    if privileged {
        marks.forget(&me);
        pr_info!(
            "pid {}: exec of a privileged program (setuid, setgid or capabilities) ends its elastic mark\n",
            me.pid()
        );
        return;
    }
    if let Some(mm) = me.mm() {
        mm.mark_elastic();
    }
}

/// Pusher: stretches the marked processes that need it (`avail_low`: the node's memory is
/// short; otherwise only those over their budget).
pub(crate) fn auto_stretch(node: &'static Node, avail_low: bool) {
    let Some(marks) = marks() else { return };
    // One mark at a time, each used without the lock (a stretch takes many): nothing to
    // allocate, so none is skipped for want of memory. A mark made or dropped meanwhile may
    // or may not be seen.
    let mut after = None;
    while let Some((key, m)) = marks.next_after(after) {
        after = Some(key);
        let task = &m.task;
        let Some(mm) = task.mm().filter(|_| !task.exited()) else {
            marks.forget(task);
            continue;
        };
        let over_budget = m.budget > 0 && mm.anon_pages() > m.budget;
        // Near its memory cgroup's limit, where the cgroup would throttle or reclaim it.
        let over_cgroup = mm
            .memcg_room()
            .is_some_and(|r| r < crate::home::MEMCG_MARGIN);
        drop(mm);
        if !avail_low && !over_budget && !over_cgroup {
            continue;
        }
        let Some(peer) = node.first_connected_peer() else {
            continue;
        };
        match stretch(task, peer, m.budget) {
            // Stretched: by us, or by someone else meanwhile.
            Ok(()) => marks.forget(task),
            Err(err) if err == e(bindings::EALREADY) => marks.forget(task),
            // It never can be (logged by the stretch).
            Err(err) if err == e(bindings::EOPNOTSUPP) => marks.forget(task),
            // Another stretch of it is under way: try again next time.
            Err(err) if err == EBUSY => {}
            Err(err) => peer_warn!(
                node,
                "automatic stretch of pid {} failed: {:?}\n",
                task.pid(),
                err
            ),
        }
    }
}

/// Task work of a marked process held for its stretch (`Marks::hold_until_stretched`): waits
/// until its mark is gone (stretched, or it never can be), a fatal signal, or the time is up.
fn held(_: Arc<Hold>) {
    let Some(marks) = marks() else { return };
    let me = TaskRef::current();
    let deadline = time::now_ns() + STRETCH_HOLD_MS * 1_000_000;
    let mut timed_out = false;
    while marks.marked(&me) && !task::fatal_signal_pending() {
        if time::now_ns() >= deadline {
            timed_out = true;
            break;
        }
        time::sleep_ms_uninterruptible(5);
    }
    if let Some(m) = marks.list.lock().get_mut(&me.id()) {
        m.holding = false;
        if timed_out {
            m.calm_until = time::now_ns() + STRETCH_CALM_MS * 1_000_000;
        }
    }
}

/// Most shells one peer may hold on this node (`/sys/kernel/elastic/max_shells_per_peer`).
pub(crate) static MAX_SHELLS_PER_PEER: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(256);

/// Most shells here for the processes of one user of one peer
/// (`/sys/kernel/elastic/max_shells_per_uid`; the uid the peer's Stretch names): one user's
/// processes cannot take all of `max_shells_per_peer` from the others of that node.
pub(crate) static MAX_SHELLS_PER_UID: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(64);

/// Whether shells here take the uid/gid a Stretch names (root excepted) instead of the ids
/// reserved for their home (`/sys/kernel/elastic/shell_ids`: `home`, the default, or
/// `caller`; `policy::shell_ids`).
pub(crate) static SHELL_IDS_CALLER: core::sync::atomic::AtomicBool =
    core::sync::atomic::AtomicBool::new(false);

/// Stretch requests of one peer served at once; more are refused with EBUSY (each reads and
/// hashes an executable and starts a process).
const MAX_STRETCHES_IN_FLIGHT: u32 = 4;

/// A Stretch request, owned, for the thread that serves it.
struct StretchJob {
    node: &'static Node,
    peer: Arc<Peer>,
    /// The connection the Stretch came on: if it ends before the shell is ready, the home's
    /// request ended with it, and the shell would be nobody's.
    conn: Arc<Conn>,
    req: u32,
    pid: u32,
    exe_hash: [u8; 32],
    uid: u32,
    gid: u32,
    path: KVec<u8>,
    argv: KVec<u8>,
    env: KVec<u8>,
}

impl StretchJob {
    fn copy(
        node: &'static Node,
        peer: &Arc<Peer>,
        conn: &Arc<Conn>,
        s: &Stretch<'_>,
    ) -> Result<Self> {
        let own = |b: &[u8]| -> Result<KVec<u8>> {
            let mut v = KVec::with_capacity(b.len(), GFP_KERNEL)?;
            v.extend_from_slice(b, GFP_KERNEL)?;
            Ok(v)
        };
        Ok(Self {
            node,
            peer: peer.clone(),
            conn: conn.clone(),
            req: s.req,
            pid: s.pid,
            exe_hash: s.exe_hash,
            uid: s.uid,
            gid: s.gid,
            path: own(s.path)?,
            argv: own(s.argv)?,
            env: own(s.env)?,
        })
    }

    fn msg(&self) -> Stretch<'_> {
        Stretch {
            req: self.req,
            pid: self.pid,
            exe_hash: self.exe_hash,
            uid: self.uid,
            gid: self.gid,
            path: &self.path,
            argv: &self.argv,
            env: &self.env,
        }
    }
}

/// Member, receive thread: a peer asks for a shell of its process. Making one reads and
/// hashes the executable and waits for the new process to park (seconds, under load), so it
/// is done by a thread of its own: the receive thread goes on serving the link (heartbeats,
/// pages) meanwhile.
pub(crate) fn serve_stretch(
    node: &'static Node,
    peer: &Arc<Peer>,
    conn: &Arc<Conn>,
    s: &Stretch<'_>,
) -> Result {
    let refuse = |err: Error| {
        conn.send(&Message::StretchOk {
            req: s.req,
            status: err.to_errno(),
            shell_pid: 0,
        })
    };
    if peer.stretches.fetch_add(1, Relaxed) >= MAX_STRETCHES_IN_FLIGHT {
        peer.stretches.fetch_sub(1, Relaxed);
        return refuse(EBUSY);
    }
    let spawned = StretchJob::copy(node, peer, conn, s).and_then(|job| {
        crate::sys::kthread::spawn(kernel::fmt!("eos-stretch/{}", peer.id), job, run_stretch)
    });
    if let Err(err) = spawned {
        peer.stretches.fetch_sub(1, Relaxed);
        return refuse(err);
    }
    Ok(())
}

fn run_stretch(job: StretchJob) {
    let s = job.msg();
    let (status, pid) = match make_shell(job.node, &job.peer, &s) {
        Ok(pid) => (0, pid as u32),
        Err(e) => {
            peer_warn!(
                job.node,
                "stretch of pid {} from node {} refused: {:?}\n",
                s.pid,
                job.peer.id,
                e
            );
            (e.to_errno(), 0)
        }
    };
    // The connection it came on ended meanwhile (lost, or replaced by a newer one): the
    // home's request failed with it, and the peer's shells were released with it (a
    // replaced link counts as lost): this one would be nobody's. Else the answer goes on
    // that connection; if it cannot, likewise.
    let sent = if job.conn.closing.load(Relaxed) {
        Err(e(bindings::ENOTCONN))
    } else {
        job.conn.send(&Message::StretchOk {
            req: s.req,
            status,
            shell_pid: pid,
        })
    };
    if sent.is_err() && status == 0 {
        serve_release(&job.peer, s.pid);
    }
    job.peer.stretches.fetch_sub(1, Relaxed);
}

/// A shell started for a Stretch and not registered yet: dropped on an error path, it is
/// killed.
struct Unregistered(Option<Arc<umh::Seed>>);

impl Drop for Unregistered {
    fn drop(&mut self) {
        if let Some(seed) = &self.0 {
            seed.release();
        }
    }
}

/// Member: makes the shell a `Stretch` from `peer` asks for; returns its pid.
fn make_shell(node: &Node, peer: &Peer, s: &Stretch<'_>) -> Result<i32> {
    let shells = shell::shells().ok_or(ENODEV)?;
    // One shell of a process at a time, from the check below to its registration.
    let _claim = InFlight::claim(&marks().ok_or(ENODEV)?.making, (peer.id, s.pid))?;
    if shells.find(peer.id, s.pid).is_some() {
        return Err(EEXIST);
    }
    // Each shell is a process here (its task, page tables, the pages it is given): a peer
    // may hold only so many (issue 27 item 6). Those being made count too: each stretch
    // counts after its own claim, so of two at once the later sees the earlier (up to
    // `MAX_STRETCHES_IN_FLIGHT` run together). A shell registered and still claimed counts
    // twice for a moment: more refused, never fewer.
    let making =
        shell::count_home(&mut marks().ok_or(ENODEV)?.making.lock(), peer.id).saturating_sub(1);
    if (shells.count_of(peer.id) + making) as u64 >= MAX_SHELLS_PER_PEER.load(Relaxed) {
        peer_warn!(
            node,
            "stretch of pid {} from node {} refused: it holds {} shells here already (max_shells_per_peer)\n",
            s.pid,
            peer.id,
            MAX_SHELLS_PER_PEER.load(Relaxed)
        );
        return Err(EMFILE);
    }
    // The same for the user the Stretch names (counted with every shell being made for
    // that peer: more refused, never fewer).
    if (shells.count_of_uid(peer.id, s.uid) + making) as u64 >= MAX_SHELLS_PER_UID.load(Relaxed) {
        peer_warn!(
            node,
            "stretch of pid {} (uid {}) from node {} refused: that user holds {} shells here already (max_shells_per_uid)\n",
            s.pid,
            s.uid,
            peer.id,
            MAX_SHELLS_PER_UID.load(Relaxed)
        );
        return Err(EMFILE);
    }
    let seed = umh::Seed::new(crate::jump::shell_arrival)?;
    let policy = if SHELL_IDS_CALLER.load(Relaxed) {
        crate::policy::ShellIds::Caller
    } else {
        crate::policy::ShellIds::Home
    };
    let allowed = peer.link.lock().ids;
    seed.state.lock().ids = crate::policy::shell_ids(policy, peer.id, s.uid, s.gid, allowed);
    umh::spawn(s.path, s.argv, s.env, &seed)?;
    // From here on every error path kills the shell: none is left parked, no one's.
    let mut unregistered = Unregistered(Some(seed.clone()));
    // Wait for the shell to park (it does so on its first way to user mode).
    let deadline = time::now_ns() + PARK_TIMEOUT_NS;
    let pid = {
        let mut st = seed.state.lock();
        loop {
            if st.parked() {
                break st.task.as_ref().map_or(0, |t| t.pid());
            }
            if st.failed() || time::now_ns() >= deadline {
                return Err(ECHILD);
            }
            // Woken, timed out or interrupted: the loop looks again either way.
            let _ = seed
                .cv
                .wait_interruptible_timeout(&mut st, msecs_to_jiffies(100));
        }
    };
    let shell_mm = seed
        .state
        .lock()
        .mm
        .as_ref()
        .and_then(|m| m.grab_again())
        .ok_or(ECHILD)?;
    // Same executable, byte for byte, or no shell: the layouts could not match otherwise.
    // The file hashed is the one the shell runs, opened by its exec under the shell's own
    // identity: a peer learns nothing of files that identity cannot execute (hashing a path
    // as the kernel would tell a peer whether it guessed a root-only file's contents).
    let same = file::exe_sha256(&shell_mm).map(|h| h == s.exe_hash);
    if same != Ok(true) {
        peer_warn!(
            node,
            "stretch of pid {} from node {} refused: its executable differs here ({:?})\n",
            s.pid,
            peer.id,
            same.err()
        );
        return Err(ENOEXEC);
    }
    // Charged to the cgroup this node gives that peer's shells, if it has one (before any
    // page of the process lands here).
    if let Err(err) = umh::join_home_cgroup(peer.id, pid) {
        peer_warn!(
            node,
            "stretch of pid {} from node {} refused: its shell cannot join /sys/fs/cgroup/elastic/node{} ({:?})\n",
            s.pid,
            peer.id,
            peer.id,
            err
        );
        return Err(err);
    }
    // From now on an empty PTE there is the home's page (when the shell runs the process).
    // Exec wrote some pages of the shell (its initial stack, the tail of its data): they are
    // not the process's, whose pages all live at home until moved. Drop them, so that an
    // empty PTE in a writable mapping means "the home has it".
    if let Some(users) = shell_mm.users() {
        let lock = users.read();
        for v in lock.vmas_in(0, u64::MAX) {
            v.drop_private_pages();
        }
    }
    mm::mark_shell(&shell_mm);
    // Its exit is reported (the mm-exit hook) in case it dies running the process.
    shell_mm.mark_elastic();
    let tunables = crate::jump::tunables();
    let shell = Arc::pin_init(
        pin_init!(Shell {
            home: peer.id,
            home_pid: s.pid,
            home_uid: s.uid,
            pid,
            seed,
            mm: shell_mm,
            run <- kernel::new_spinlock!(shell::Run::Parked, "Shell::run"),
            policy <- new_mutex!(crate::policy::JumpPolicy::new(&tunables, time::now_ns()), "Shell::policy"),
            inbox <- new_mutex!(None, "Shell::inbox"),
            cpu_at_arrival <- kernel::new_spinlock!((0, 0, 0), "Shell::cpu_at_arrival"),
            counters: shell::ShellCounters::new(),
            lent <- new_mutex!(crate::lent::Lent::new(), "Shell::lent"),
            readahead <- kernel::new_spinlock!(Default::default(), "Shell::readahead"),
            push_batch: core::sync::atomic::AtomicU64::new(0),
            push_status: core::sync::atomic::AtomicI32::new(0),
            cold_hand: core::sync::atomic::AtomicU64::new(0),
            room_wait: core::sync::atomic::AtomicU64::new(0),
            full_until: core::sync::atomic::AtomicU64::new(0),
            budget: core::sync::atomic::AtomicU64::new(0),
            home_at_arrival: core::sync::atomic::AtomicU64::new(0),
            home_moved: core::sync::atomic::AtomicI64::new(0),
            file_drops <- kernel::new_spinlock!(None, "Shell::file_drops"),
        }),
        GFP_KERNEL,
    )?;
    shells.add(shell)?;
    unregistered.0 = None;
    pr_info!(
        "shell pid {} holds process {} of node {}\n",
        pid,
        s.pid,
        peer.id
    );
    Ok(pid)
}

/// Member: the home's process `pid` exited; its shell dies.
pub(crate) fn serve_release(peer: &Peer, pid: u32) {
    let Some(shells) = shell::shells() else {
        return;
    };
    // Killed before it leaves the registry: until then its syscalls still go home (an
    // unregistered shell's would be refused too, control.rs `orphan_entry`).
    if let Some(s) = shells.find(peer.id, pid) {
        s.seed.release();
        shells.remove(peer.id, pid);
    }
}
