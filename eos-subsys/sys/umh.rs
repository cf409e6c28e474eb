// SPDX-License-Identifier: GPL-2.0

//! Starting a shell: a user process of a given executable that parks inside the kernel before
//! it runs a single user instruction.
//!
//! `call_usermodehelper` starts the process; its `init` callback (in the new task, before
//! exec) gives it the user and group id `policy::shell_ids` chose (never root), no capabilities,
//! an empty bounding set and no_new_privs, so it can gain no privilege at exec;
//! turns off address-space randomisation, blocks every signal but SIGKILL/SIGSTOP and queues
//! a task work. After exec, on its way to user mode, the task runs that work
//! (`park`): it publishes its task and mm in the [`Seed`] and sleeps there until released.
//! It never returns to user mode while parked; it leaves the loop only to run the process
//! whose execution jumped here (the seed's `on_arrival` callback, which the logic above gives
//! it, loaded its registers), or to die. This layer never names the code above it.

use crate::sys::{mm::MmRef, task::TaskRef};
use core::ffi::{c_int, c_void};
use kernel::{
    bindings, new_condvar, new_mutex,
    prelude::*,
    sync::{Arc, ArcBorrow, CondVar, Mutex},
    types::Opaque,
};

/// Where a shell is in its life. The legal moves (each made by one method of [`Seed`] or the
/// task work, under `state`):
///
/// ```text
/// Starting --park--> Parked --arrive--> Arrived --wait_arrival takes it--> Parked
///    |                  |                  |
///    +--exiting--> Failed                  |
///    +------------------+------release-----+--> Released (final)
/// ```
///
/// `Failed` and `Released` are final: a released shell that parks later (its Stretch gave up
/// waiting) stays `Released` and kills itself at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Started; not in the park loop yet.
    Starting,
    /// In the park loop, waiting for execution.
    Parked,
    /// Execution of the process arrived and the parked task has not taken it yet (the
    /// arrival itself waits in the layer above).
    Arrived,
    /// It died before parking.
    Failed,
    /// Told to leave the park loop and die.
    Released,
}

/// What the shell publishes once parked, and where it is in its life.
pub(crate) struct SeedState {
    /// The shell task (set when it parks, whatever its phase then).
    pub(crate) task: Option<TaskRef>,
    /// Its address space (set when it parks).
    pub(crate) mm: Option<MmRef>,
    /// User and group id the shell runs as: the process's.
    pub(crate) ids: (u32, u32),
    phase: Phase,
}

impl SeedState {
    fn new() -> Self {
        Self {
            task: None,
            mm: None,
            ids: (0, 0),
            phase: Phase::Starting,
        }
    }

    /// It reached the park loop (it may have been released since): its task is published.
    pub(crate) fn parked(&self) -> bool {
        self.task.is_some()
    }

    /// It died before parking.
    pub(crate) fn failed(&self) -> bool {
        self.phase == Phase::Failed
    }
}

/// Rendezvous between the code that creates a shell and the shell task itself.
#[repr(C)]
#[pin_data]
pub(crate) struct Seed {
    // Must stay the first field: the task work's callback casts its pointer back to `Seed`.
    work: Opaque<bindings::callback_head>,
    /// Shared state; `cv` signals changes.
    #[pin]
    pub(crate) state: Mutex<SeedState>,
    /// Signalled on every change of `state`.
    #[pin]
    pub(crate) cv: CondVar,
    /// Called in the parked task when execution arrived; true: run it (its registers are
    /// loaded), false: park again.
    on_arrival: fn(&Seed) -> bool,
}

// SAFETY: `work` is only touched by `queue_park` (before queueing) and by the task-work
// machinery of the shell task while queued; everything else is behind `state`'s mutex.
unsafe impl Send for Seed {}
// SAFETY: see `Send`.
unsafe impl Sync for Seed {}

impl Seed {
    /// A fresh seed whose parked task calls `on_arrival` when execution arrives.
    pub(crate) fn new(on_arrival: fn(&Seed) -> bool) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                work: Opaque::uninit(),
                state <- new_mutex!(SeedState::new(), "Seed::state"),
                cv <- new_condvar!("Seed::cv"),
                on_arrival,
            }),
            GFP_KERNEL,
        )
    }

    /// Tells the parked task that execution arrived.
    pub(crate) fn arrive(&self) {
        let mut st = self.state.lock();
        // Only a parked shell is registered, so reachable by a jump: an arrival finds it
        // `Parked`, or `Arrived` already, or `Released` (it dies; the arrival is dropped).
        if st.phase == Phase::Parked {
            st.phase = Phase::Arrived;
        }
        drop(st);
        self.cv.notify_all();
    }

    /// Sleeps until execution arrives (true) or the shell must die (false).
    pub(crate) fn wait_arrival(&self) -> bool {
        loop {
            let mut st = self.state.lock();
            if st.phase == Phase::Released || crate::sys::task::fatal_signal_pending() {
                return false;
            }
            if st.phase == Phase::Arrived {
                st.phase = Phase::Parked;
                return true;
            }
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } = self
                .cv
                .wait_interruptible_timeout(&mut st, kernel::time::msecs_to_jiffies(100))
            {
                // Only SIGSTOP gets here (the rest is blocked); it waits for user mode. Poll.
                drop(st);
                crate::sys::time::sleep_ms_uninterruptible(1);
            }
        }
    }

    /// Tells a parked shell to die (it kills itself with SIGKILL).
    pub(crate) fn release(&self) {
        let mut st = self.state.lock();
        st.phase = Phase::Released;
        if let Some(t) = &st.task {
            t.signal(bindings::SIGKILL);
        }
        drop(st);
        self.cv.notify_all();
    }
}

fn queue_park(seed: Arc<Seed>) -> c_int {
    let raw = Arc::into_raw(seed);
    // SAFETY: `work` is the first field of the `repr(C)` seed; we own one reference for it.
    let head = unsafe { Opaque::raw_get(core::ptr::addr_of!((*raw).work)) };
    // SAFETY: `head` is valid and not queued anywhere; `park` matches the callback type.
    let r = unsafe {
        (*head).next = core::ptr::null_mut();
        (*head).func = Some(park);
        bindings::task_work_add(
            bindings::get_current(),
            head,
            bindings::task_work_notify_mode_TWA_RESUME,
        )
    };
    if r != 0 {
        // SAFETY: not queued, so the reference is still ours.
        drop(unsafe { Arc::from_raw(raw) });
    }
    r
}

unsafe extern "C" fn park(head: *mut bindings::callback_head) {
    // SAFETY: `head` is the `work` field at offset 0 of a `Seed` whose reference `queue_park`
    // leaked for this work.
    let seed = unsafe { Arc::from_raw(head.cast::<Seed>().cast_const()) };
    // SAFETY: `current` is valid.
    let exiting = unsafe { (*bindings::get_current()).flags } & bindings::PF_EXITING != 0;
    if exiting {
        let mut st = seed.state.lock();
        if st.phase == Phase::Starting {
            st.phase = Phase::Failed;
        }
        drop(st);
        seed.cv.notify_all();
        return;
    }
    // SAFETY: called by the shell task itself, after its exec.
    if unsafe { elastic_shell_seal() } != 0 {
        // Traced before it was sealed: whoever traces it could steer it. It dies unparked.
        let mut st = seed.state.lock();
        if st.phase == Phase::Starting {
            st.phase = Phase::Failed;
        }
        drop(st);
        seed.cv.notify_all();
        TaskRef::current().signal(bindings::SIGKILL);
        return;
    }
    {
        let mut st = seed.state.lock();
        if st.task.is_none() {
            if st.phase == Phase::Starting {
                st.phase = Phase::Parked;
            }
            st.task = Some(TaskRef::current());
            // SAFETY: `current->mm` is the shell's new address space after exec.
            st.mm = unsafe { MmRef::grab((*bindings::get_current()).mm) };
        }
    }
    seed.cv.notify_all();
    // Parked until the process's execution jumps here; then on to user mode, running it.
    while seed.wait_arrival() {
        if (seed.on_arrival)(&seed) {
            return;
        }
    }
    if !crate::sys::task::fatal_signal_pending() {
        TaskRef::current().signal(bindings::SIGKILL);
    }
}

unsafe extern "C" fn init(info: *mut bindings::subprocess_info, new: *mut bindings::cred) -> c_int {
    // SAFETY: `data` is the reference `spawn` leaked; borrowing it does not consume it.
    let seed: ArcBorrow<'_, Seed> = unsafe { ArcBorrow::from_raw((*info).data.cast::<Seed>()) };
    let (uid, gid) = seed.state.lock().ids;
    // SAFETY: `new` are the credentials the usermode helper commits for this task before exec;
    // they are not shared yet.
    let r = unsafe { bindings::elastic_cred_set_ids(new, uid, gid) };
    if r != 0 {
        return r;
    }
    // SAFETY: we run in the new task, before exec; nothing else touches these fields now.
    unsafe {
        let cur = bindings::get_current();
        (*cur).personality |= bindings::ADDR_NO_RANDOMIZE;
        let mut all: bindings::sigset_t = core::mem::zeroed();
        all.sig[0] = !0;
        bindings::set_current_blocked(&mut all);
    }
    queue_park(seed.into())
}

unsafe extern "C" fn cleanup(info: *mut bindings::subprocess_info) {
    // SAFETY: balances the reference `spawn` leaked into `data`.
    drop(unsafe { Arc::from_raw((*info).data.cast::<Seed>().cast_const()) });
}

fn c_list(list: &[u8], out: &mut KVec<*mut u8>) -> Result {
    let base = list.as_ptr() as *mut u8;
    let mut start = 0;
    for (i, &c) in list.iter().enumerate() {
        if c == 0 {
            // SAFETY: `start` is inside `list`.
            out.push(unsafe { base.add(start) }, GFP_KERNEL)?;
            start = i + 1;
        }
    }
    out.push(core::ptr::null_mut(), GFP_KERNEL)?;
    Ok(())
}

/// Starts `path` with `argv` and `env` (NUL-terminated strings, each list back to back) as a
/// shell and waits until exec is done. The caller then waits on `seed` for `parked`.
pub(crate) fn spawn(path: &[u8], argv: &[u8], env: &[u8], seed: &Arc<Seed>) -> Result {
    let mut p = KVec::with_capacity(path.len() + 1, GFP_KERNEL)?;
    p.extend_from_slice(path, GFP_KERNEL)?;
    p.push(0, GFP_KERNEL)?;
    let mut a = KVec::new();
    c_list(argv, &mut a)?;
    let mut e = KVec::new();
    c_list(env, &mut e)?;
    let data = Arc::into_raw(seed.clone()) as *mut c_void;
    // SAFETY: `p`, `a`, `e` and the strings they point to live until
    // `call_usermodehelper_exec(UMH_WAIT_EXEC)` returns, i.e. after exec copied them.
    let info = unsafe {
        bindings::call_usermodehelper_setup(
            p.as_ptr().cast(),
            a.as_mut_ptr().cast(),
            e.as_mut_ptr().cast(),
            bindings::GFP_KERNEL,
            Some(init),
            Some(cleanup),
            data,
        )
    };
    if info.is_null() {
        // SAFETY: the info was not created, so `data` is still our reference.
        drop(unsafe { Arc::from_raw(data.cast::<Seed>().cast_const()) });
        return Err(ENOMEM);
    }
    // SAFETY: `info` is fresh; exec consumes and frees it (running `cleanup`).
    let r = unsafe { bindings::call_usermodehelper_exec(info, bindings::UMH_WAIT_EXEC as i32) };
    if r != 0 {
        return Err(Error::from_errno(r));
    }
    Ok(())
}

extern "C" {
    /// Makes the current task's mm not dumpable; non-zero if it is traced (solo.c).
    fn elastic_shell_seal() -> c_int;
    /// Writes `pid` into the cgroup of node `home`'s shells, if there is one (memcg.c).
    fn elastic_shell_cgroup(home: core::ffi::c_uint, pid: i32) -> c_int;
}

/// Puts shell `pid`, which runs a process of node `home`, into the memory cgroup this node's
/// administrator made for that node's shells (`/sys/fs/cgroup/elastic/node<home>`), if there
/// is one (memcg.c): its pages, and those pushed to it, are charged there.
pub(crate) fn join_home_cgroup(home: u16, pid: i32) -> Result {
    // SAFETY: no pointers; the helper opens the cgroup's file with the caller's credentials.
    kernel::error::to_result(unsafe { elastic_shell_cgroup(u32::from(home), pid) })
}
