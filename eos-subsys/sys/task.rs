// SPDX-License-Identifier: GPL-2.0

//! Tasks by pid: permissions, identity, memory, signals.

use crate::sys::{
    errno::e,
    mm::{MmId, MmRef},
};
use core::ptr::NonNull;
use kernel::{bindings, prelude::*};

/// A counted reference to a task.
pub(crate) struct TaskRef(NonNull<bindings::task_struct>);

/// Identity of a task, to key tables by: compared, never dereferenced (as `MmId`). It names
/// one task for as long as a [`TaskRef`] to that task is held.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TaskId(usize);

// SAFETY: task references are atomic counts; we only call thread-safe functions on it.
unsafe impl Send for TaskRef {}
// SAFETY: see `Send`.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// The task with `pid` in the caller's pid namespace.
    pub(crate) fn by_pid(pid: i32) -> Option<Self> {
        // SAFETY: no preconditions; returns a referenced task or NULL.
        NonNull::new(unsafe { bindings::find_get_task_by_vpid(pid) }).map(Self)
    }

    /// The current task.
    pub(crate) fn current() -> Self {
        // SAFETY: `current` is always valid; we take our own reference.
        let t = unsafe { bindings::get_current() };
        // SAFETY: `t` is live.
        unsafe { bindings::get_task_struct(t) };
        // SAFETY: `current` is never NULL.
        Self(unsafe { NonNull::new_unchecked(t) })
    }

    pub(super) fn raw(&self) -> *mut bindings::task_struct {
        self.0.as_ptr()
    }

    /// Global pid.
    pub(crate) fn pid(&self) -> i32 {
        // SAFETY: the task is referenced; `pid` never changes.
        unsafe { (*self.raw()).pid }
    }

    /// Whether the caller may control this task (stretch it, set its budget, mark it, move
    /// it): exactly what `ptrace` attach needs (same uid and dumpable, or CAP_SYS_PTRACE, and
    /// the LSMs' say), since control lets the caller move the task's memory off this node.
    /// Kernel threads are refused, as `ptrace_attach` refuses them.
    pub(crate) fn caller_may_control(&self) -> bool {
        // SAFETY: the task is referenced; `flags` is read racily, and PF_KTHREAD never
        // changes after the task started.
        if unsafe { (*self.raw()).flags } & bindings::PF_KTHREAD != 0 {
            return false;
        }
        // SAFETY: the task is referenced; `ptrace_may_access` takes its own locks.
        unsafe { bindings::ptrace_may_access(self.raw(), bindings::PTRACE_MODE_ATTACH_REALCREDS) }
    }

    /// Its identity (see [`TaskId`]): equal for the same task only, not merely the same pid
    /// (a pid can be reused once its task is gone, a referenced task cannot).
    pub(crate) fn id(&self) -> TaskId {
        TaskId(self.0.as_ptr() as usize)
    }

    /// Whether the task has exited (it is a zombie or gone, and will never run again).
    pub(crate) fn exited(&self) -> bool {
        // SAFETY: the task is referenced; `exit_state` is set once, read racily by design.
        unsafe { (*self.raw()).exit_state != 0 }
    }

    /// Its effective user and group id (initial user namespace).
    pub(crate) fn ids(&self) -> (u32, u32) {
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: the task is referenced; the helper reads its credentials under RCU.
        unsafe { bindings::elastic_task_ids(self.raw(), &mut uid, &mut gid) };
        (uid, gid)
    }

    /// Number of threads in its thread group.
    pub(crate) fn threads(&self) -> i32 {
        // SAFETY: the task is referenced.
        unsafe { bindings::get_nr_threads(self.raw()) }
    }

    /// Sets the one-task rule on its address space `mm` (solo.c): from now on no task may
    /// join `mm`. `EINVAL` if it has other threads, `EBUSY` if another task shares or holds
    /// `mm` at this moment, `ESRCH` if it is exiting; the rule stays set either way.
    pub(crate) fn solo_begin(&self, mm: &MmRef) -> Result {
        // SAFETY: the task is referenced and `mm` is live (`MmRef` holds a reference).
        let r = unsafe { elastic_solo_begin(self.raw().cast(), mm.as_ptr().cast()) };
        kernel::error::to_result(r)
    }

    /// Its address space, if it has one (kernel threads and zombies do not).
    pub(crate) fn mm(&self) -> Option<MmRef> {
        // SAFETY: the task is referenced; `get_task_mm` takes a user reference or returns NULL.
        let mm = unsafe { bindings::get_task_mm(self.raw()) };
        if mm.is_null() {
            return None;
        }
        // SAFETY: `mm` is live (we hold a user reference until the `mmput` below).
        let r = unsafe { MmRef::grab(mm) };
        // SAFETY: balances `get_task_mm`.
        unsafe { bindings::mmput(mm) };
        r
    }

    /// Its command name, for logs.
    pub(crate) fn comm(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: the task is referenced; `comm` is a NUL-terminated array read racily by
        // design (as `get_task_comm` does).
        let comm = unsafe { &(*self.raw()).comm };
        for (o, c) in out.iter_mut().zip(comm.iter()) {
            *o = *c as u8;
        }
        out
    }

    /// Sends `sig` (from the kernel).
    pub(crate) fn signal(&self, sig: u32) {
        // SAFETY: the task is referenced; `priv = 1` marks a kernel-originated signal.
        unsafe { bindings::send_sig(sig as i32, self.raw(), 1) };
    }

    /// Reads `buf.len()` bytes at `addr` of its memory (e.g. its argv). Returns bytes read.
    pub(crate) fn read_mem(&self, addr: u64, buf: &mut [u8]) -> usize {
        // SAFETY: the task is referenced; `buf` is writable for its length.
        let n = unsafe {
            bindings::access_process_vm(
                self.raw(),
                addr as _,
                buf.as_mut_ptr().cast(),
                buf.len() as i32,
                0,
            )
        };
        n.max(0) as usize
    }

    /// Arguments and environment ranges from its mm.
    pub(crate) fn arg_env_ranges(&self) -> Option<((u64, u64), (u64, u64))> {
        // SAFETY: the task is referenced; `get_task_mm` returns a user reference or NULL.
        let mm = unsafe { bindings::get_task_mm(self.raw()) };
        if mm.is_null() {
            return None;
        }
        // SAFETY: `mm` is live; these fields are set at exec and read racily by /proc too.
        let r = unsafe {
            (
                (
                    (*mm).__bindgen_anon_1.arg_start as u64,
                    (*mm).__bindgen_anon_1.arg_end as u64,
                ),
                (
                    (*mm).__bindgen_anon_1.env_start as u64,
                    (*mm).__bindgen_anon_1.env_end as u64,
                ),
            )
        };
        // SAFETY: balances `get_task_mm`.
        unsafe { bindings::mmput(mm) };
        Some(r)
    }

    /// Path of its executable, written into `buf`; returns the slice used.
    pub(crate) fn exe_path<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        // SAFETY: the task is referenced; `get_task_mm` returns a user reference or NULL.
        let mm = unsafe { bindings::get_task_mm(self.raw()) };
        if mm.is_null() {
            return Err(ESRCH);
        }
        // SAFETY: `mm` is live; returns a referenced file or NULL.
        let file = unsafe { bindings::get_mm_exe_file(mm) };
        // SAFETY: balances `get_task_mm`.
        unsafe { bindings::mmput(mm) };
        if file.is_null() {
            return Err(ENOENT);
        }
        // SAFETY: `file` is referenced; `buf` is writable for its length.
        let p =
            unsafe { bindings::d_path(&(*file).f_path, buf.as_mut_ptr().cast(), buf.len() as i32) };
        // SAFETY: balances `get_mm_exe_file`.
        unsafe { bindings::fput(file) };
        if (p as isize) < 0 && (p as isize) > -4096 {
            return Err(e(bindings::ENAMETOOLONG));
        }
        let start = (p as usize).wrapping_sub(buf.as_ptr() as usize);
        if start >= buf.len() {
            return Err(EINVAL);
        }
        let tail = &buf[start..];
        let len = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
        Ok(&buf[start..start + len])
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> Self {
        // SAFETY: the task is referenced, so taking another reference is valid.
        unsafe { bindings::get_task_struct(self.raw()) };
        Self(self.0)
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        // SAFETY: balances the reference taken at construction.
        unsafe { bindings::put_task_struct(self.raw()) };
    }
}

/// Whether the current task has a fatal signal pending (waits give up then).
pub(crate) fn fatal_signal_pending() -> bool {
    // SAFETY: `current` is valid.
    unsafe { bindings::fatal_signal_pending(bindings::get_current()) }
}

/// Whether the current task has any signal pending.
pub(crate) fn signal_pending() -> bool {
    // SAFETY: `current` is valid.
    unsafe { bindings::signal_pending(bindings::get_current()) != 0 }
}

/// A callback queued on a task, run by that task on its way back to user mode.
#[repr(C)]
struct Work<T: Send + Sync> {
    // Must stay first: the callback casts the `callback_head` pointer back to `Work<T>`.
    head: bindings::callback_head,
    data: kernel::sync::Arc<T>,
    f: fn(kernel::sync::Arc<T>),
}

unsafe extern "C" fn run_work<T: Send + Sync>(head: *mut bindings::callback_head) {
    // SAFETY: `head` is the first field of a `Work<T>` that `queue_work` leaked for this call.
    let w = unsafe { KBox::from_raw(head.cast::<Work<T>>()) };
    let Work { data, f, .. } = KBox::into_inner(w);
    f(data);
}

impl TaskRef {
    /// Queues `f(data)` to run in this task before it next returns to user mode. A task
    /// running in user mode on another CPU is interrupted for it either way (TWA_RESUME sends
    /// it an IPI); with `kick` (TWA_SIGNAL) a task sleeping interruptibly in the kernel is woken
    /// too, as for a signal, and its system call may end with EINTR: only for tasks whose
    /// waits are ours (a shell).
    pub(crate) fn queue_work<T: Send + Sync>(
        &self,
        data: kernel::sync::Arc<T>,
        f: fn(kernel::sync::Arc<T>),
        kick: bool,
    ) -> Result {
        let w = KBox::new(
            Work {
                // SAFETY: an all-zero `callback_head` is a valid unqueued one.
                head: unsafe { core::mem::zeroed() },
                data,
                f,
            },
            GFP_KERNEL,
        )?;
        let raw = KBox::into_raw(w);
        let mode = if kick {
            bindings::task_work_notify_mode_TWA_SIGNAL
        } else {
            bindings::task_work_notify_mode_TWA_RESUME
        };
        // SAFETY: `raw` is a live, unqueued work item; `run_work::<T>` matches its type. The
        // task is referenced.
        let r = unsafe {
            (*raw).head.func = Some(run_work::<T>);
            bindings::task_work_add(self.raw(), core::ptr::addr_of_mut!((*raw).head), mode)
        };
        if r != 0 {
            // SAFETY: not queued (the task is exiting), so the box is still ours.
            drop(unsafe { KBox::from_raw(raw) });
            return Err(e(bindings::ESRCH));
        }
        Ok(())
    }

    /// The signal it is exiting with (0: none), valid from `do_exit` on.
    pub(crate) fn exit_signal(&self) -> u32 {
        // SAFETY: the task is referenced; `exit_code` is a plain int set by `do_exit`.
        (unsafe { (*self.raw()).exit_code } & 0x7f) as u32
    }

    /// Charges CPU time the task used on another node (it ran there as a shell) to it here:
    /// its user and system time, its run time (what `times`, `getrusage`, CPU clocks,
    /// RLIMIT_CPU and CPU timers read), its cgroup's usage and bandwidth quota.
    pub(crate) fn account_remote_cpu(&self, user_ns: u64, sys_ns: u64) {
        // SAFETY: the task is referenced; the helper takes its run-queue lock.
        unsafe { bindings::elastic_account_remote(self.raw(), user_ns, sys_ns) };
    }
}

/// CPU time of the current task so far, in nanoseconds: (exact run time, tick-sampled user
/// time, tick-sampled system time).
pub(crate) fn current_cputime() -> (u64, u64, u64) {
    let (mut rt, mut ut, mut st) = (0, 0, 0);
    // SAFETY: `current` is valid; the helper reads its own times.
    unsafe { bindings::elastic_cputime(&mut rt, &mut ut, &mut st) };
    (rt, ut, st)
}

/// Whether the current task is writing its process's core dump (`do_coredump`).
pub(crate) fn current_dumping() -> bool {
    // SAFETY: `current` is always valid; it reads its own flags.
    unsafe { (*bindings::get_current()).flags & bindings::PF_DUMPCORE != 0 }
}

/// The current task's mm (NULL for a kthread), for lookups by identity.
pub(crate) fn current_mm() -> MmId {
    // SAFETY: `current` is always valid; its `mm` only changes under its own feet.
    MmId::of(unsafe { (*bindings::get_current()).mm })
}

/// Ends the current task's process with `sig` on its way to user mode: the signal cannot be
/// caught or blocked (its handler is reset), so no user code of the process runs again. A
/// signal whose default action is not to end the process is taken as SIGKILL.
pub(crate) fn force_exit(sig: u32) {
    let ends = (1..32).contains(&sig)
        && ![
            bindings::SIGCHLD,
            bindings::SIGCONT,
            bindings::SIGSTOP,
            bindings::SIGTSTP,
            bindings::SIGTTIN,
            bindings::SIGTTOU,
            bindings::SIGURG,
            bindings::SIGWINCH,
        ]
        .contains(&sig);
    let sig = if ends { sig } else { bindings::SIGKILL };
    // SAFETY: acts on `current`, under its own locks.
    unsafe { bindings::force_exit_sig(sig as i32) };
}

extern "C" {
    /// `t` is a `struct task_struct *`, `mm` a `struct mm_struct *` (opaque here: bindgen's
    /// types are not FFI-safe for rustc).
    fn elastic_solo_begin(
        t: *mut core::ffi::c_void,
        mm: *mut core::ffi::c_void,
    ) -> core::ffi::c_int;
    fn elastic_solo_end(mm: *mut core::ffi::c_void);
    fn elastic_current_guest() -> bool;
}

/// Whether the current task's address space is a shell's (`MMF_ELASTIC_GUEST`, solo.c): it
/// stays so until the task exits or execs, whether or not the shell is still registered.
pub(crate) fn current_is_guest() -> bool {
    // SAFETY: a plain C function on `current`, no preconditions.
    unsafe { elastic_current_guest() }
}

/// Lifts the one-task rule on `mm` (a stretch that did not register its process).
pub(crate) fn solo_end(mm: &MmRef) {
    // SAFETY: `mm` is live (`MmRef` holds a reference).
    unsafe { elastic_solo_end(mm.as_ptr().cast()) }
}
