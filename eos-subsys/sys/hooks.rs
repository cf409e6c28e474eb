// SPDX-License-Identifier: GPL-2.0

//! Entry points called from C: the mm hooks (include/linux/elastic.h), the entry-code hooks
//! and the syscalls (syscalls.c). Each turns its raw arguments into safe types and calls the
//! logic through the [`Hooks`] table that `control::init` registers, so this layer never
//! names the code above it. Before registration every hook does nothing (or says ENODEV).
//!
//! An entry point that takes a pointer is an `unsafe extern "C" fn`: its `# Safety` section
//! states what its C caller (linux/patches/*.patch, syscalls.c, the declarations in
//! include/linux/elastic.h) guarantees about that pointer.

use crate::fmtbuf::FmtBuf;
use crate::sys::{
    arch::SyscallRegs,
    global::Global,
    mm::{MmId, Vma},
};
use kernel::{bindings, error::code::ENODEV, prelude::*};

/// How a fault handled by ElasticOS ends.
pub(crate) enum FaultReply {
    /// Go on as usual: the page is present, or the fault is simply retried (a marker
    /// fault), or the page is built the ordinary way (a fault on an empty PTE).
    Ok,
    /// The page is here now (or a jump is queued): `VM_FAULT_NOPAGE`.
    NoPage,
    /// The process cannot have its page.
    SigBus,
    /// No memory for the page.
    Oom,
}

impl FaultReply {
    fn code(self) -> bindings::vm_fault_t {
        match self {
            Self::Ok => 0,
            Self::NoPage => bindings::vm_fault_reason_VM_FAULT_NOPAGE,
            Self::SigBus => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
            Self::Oom => bindings::vm_fault_reason_VM_FAULT_OOM,
        }
    }
}

/// A fault on an ElasticOS PTE marker.
pub(crate) struct MarkerFault {
    /// Page-aligned address.
    pub(crate) addr: u64,
    /// The node the marker names.
    pub(crate) owner: u16,
    /// The page is being pushed (not acknowledged yet).
    pub(crate) in_flight: bool,
    /// Raised by user code (not a kernel access such as GUP).
    pub(crate) user: bool,
}

/// The logic behind each C entry point.
pub(crate) struct Hooks {
    /// `handle_pte_marker()` found an ElasticOS marker.
    pub(crate) marker_fault: fn(Vma<'_>, MarkerFault) -> FaultReply,
    /// A shell's task touched an empty PTE at `addr` (`user`: from user code).
    pub(crate) empty_fault: fn(Vma<'_>, u64, bool) -> FaultReply,
    /// A syscall of a shell's task, or a layout syscall of a stretched process at home. True:
    /// handled (its result, if any, is in the registers).
    pub(crate) syscall: fn(&mut SyscallRegs<'_>, i32) -> bool,
    /// A 32-bit syscall of a shell's task (`int80`: through `int $0x80`), or a 32-bit
    /// layout syscall of a stretched process at home. True: handled.
    pub(crate) syscall32: fn(&mut SyscallRegs<'_>, i32, bool) -> bool,
    /// A legacy vsyscall of a shell's task. True: handled.
    pub(crate) vsyscall: fn() -> bool,
    /// A shell's task has a signal pending on its way to user mode. True: handled.
    pub(crate) signal: fn() -> bool,
    /// An elastic process (address space) is about to allocate an anonymous page.
    pub(crate) throttle: fn(MmId),
    /// A page of a private file mapping at `addr` of an elastic address space (not a shell's)
    /// was just replaced by its anonymous copy.
    pub(crate) file_cow: fn(Vma<'_>, u64),
    /// The current task execs (it has its new mm); `privileged`: the program raises
    /// privilege or is not dumpable.
    pub(crate) exec: fn(bool),
    /// An elastic address space is being torn down.
    pub(crate) mm_exit: fn(MmId),
    /// May another task share this elastic address space (a thread)?
    pub(crate) may_share_mm: fn(MmId) -> bool,
    /// A fork copies this elastic address space: its pages come home and stay until
    /// `fork_end`. An error fails the fork.
    pub(crate) fork_begin: fn(MmId) -> Result,
    /// The copy `fork_begin` prepared is made (or failed).
    pub(crate) fork_end: fn(MmId),
    /// `elastic_stretch(pid, node)`.
    pub(crate) stretch: fn(i32, i32) -> Result<i64>,
    /// `elastic_ctl(op, pid, arg)`.
    pub(crate) ctl: fn(i32, i32, u64) -> Result<i64>,
    /// `elastic_jump(pid, node)`.
    pub(crate) jump: fn(i32, i32) -> Result<i64>,
    /// `/proc/<pid>/elastic`.
    pub(crate) proc_show: fn(i32, &mut FmtBuf<'_>),
}

static HOOKS: Global<Hooks> = Global::new();

/// Connects the C entry points to the logic.
pub(crate) fn register(h: &'static Hooks) {
    HOOKS.set(h);
}

fn page(address: core::ffi::c_ulong) -> u64 {
    address as u64 & !(crate::proto::PAGE_SIZE as u64 - 1)
}

fn user(flags: core::ffi::c_uint) -> bool {
    flags & bindings::fault_flag_FAULT_FLAG_USER != 0
}

/// `handle_pte_marker()` found an ElasticOS marker.
///
/// # Safety
///
/// `vma` is null or the VMA of the fault being handled by the current task, valid and locked
/// (mmap lock or per-VMA lock) until this returns.
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_fault(
    vma: *mut bindings::vm_area_struct,
    address: core::ffi::c_ulong,
    flags: core::ffi::c_uint,
    node: core::ffi::c_uint,
    in_flight: bool,
) -> bindings::vm_fault_t {
    // SAFETY: the caller passes the VMA of the running fault, locked for its duration (see
    // `# Safety`), which is how long the `Vma` lives.
    let (Some(h), Some(vma)) = (HOOKS.get(), unsafe { Vma::from_fault(vma) }) else {
        return FaultReply::SigBus.code();
    };
    let f = MarkerFault {
        addr: page(address),
        owner: node as u16,
        in_flight,
        user: user(flags),
    };
    (h.marker_fault)(vma, f).code()
}

/// A shell's task, running a process away from home, touched an empty PTE. 0: build the
/// page the ordinary way.
///
/// # Safety
///
/// As [`elastic_fault`]: `vma` is null or the current fault's VMA, valid and locked until this
/// returns.
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_missing(
    vma: *mut bindings::vm_area_struct,
    address: core::ffi::c_ulong,
    flags: core::ffi::c_uint,
) -> bindings::vm_fault_t {
    // SAFETY: the caller passes the VMA of the running fault, locked for its duration (see
    // `# Safety`), which is how long the `Vma` lives.
    let (Some(h), Some(vma)) = (HOOKS.get(), unsafe { Vma::from_fault(vma) }) else {
        return FaultReply::SigBus.code();
    };
    (h.empty_fault)(vma, page(address), user(flags)).code()
}

/// A syscall of a shell's task, or a layout syscall of a stretched process at home. True: it
/// was handled (run at home, or run here with the members following).
///
/// # Safety
///
/// `regs` is null or the current task's user registers saved at syscall entry
/// (`do_syscall_64`), which nothing but this task touches until it returns to user mode.
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_syscall(
    regs: *mut bindings::pt_regs,
    nr: core::ffi::c_int,
) -> bool {
    let Some(h) = HOOKS.get() else { return false };
    // SAFETY: the caller passes the current task's user registers saved at syscall entry
    // (see `# Safety`); only this task uses them until it returns to user mode, after this.
    let Some(mut regs) = (unsafe { SyscallRegs::from_entry(regs) }) else {
        return false;
    };
    (h.syscall)(&mut regs, nr)
}

/// A shell's task has a signal pending on its way to user mode. True: it was a fault while
/// running the process, and execution went home (and came back) instead.
///
/// # Safety
///
/// `_regs` is the current task's saved user registers (`arch_do_signal_or_restart`); it is
/// not read here (the logic reaches the registers through the current task).
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_guest_fault(_regs: *mut bindings::pt_regs) -> bool {
    HOOKS.get().is_some_and(|h| (h.signal)())
}

/// An elastic process is about to allocate an anonymous page.
///
/// # Safety
///
/// `mm` is the faulting task's mm (`do_anonymous_page`). Only its address is used here:
/// [`MmId`] is an identity that is never dereferenced.
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_throttle(mm: *mut bindings::mm_struct) {
    if let Some(h) = HOOKS.get() {
        (h.throttle)(MmId::of(mm));
    }
}

/// A page of a private file mapping of an elastic address space (not a shell's) was just
/// copied on write (`wp_page_copy`, `do_cow_fault`): the home's copy is no longer the file's.
///
/// # Safety
///
/// As [`elastic_fault`]: `vma` is null or the VMA of the fault being handled (by the current
/// task, or for a GUP user such as a /proc/PID/mem writer), valid and locked until this
/// returns.
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_file_cow(
    vma: *mut bindings::vm_area_struct,
    address: core::ffi::c_ulong,
) {
    // SAFETY: the caller passes the VMA of the running fault, locked for its duration (see
    // `# Safety`), which is how long the `Vma` lives.
    if let (Some(h), Some(vma)) = (HOOKS.get(), unsafe { Vma::from_fault(vma) }) {
        (h.file_cow)(vma, page(address));
    }
}

/// `begin_new_exec()`: the current task has its new mm and credentials.
#[no_mangle]
pub(crate) extern "C" fn elastic_exec(privileged: bool) {
    if let Some(h) = HOOKS.get() {
        (h.exec)(privileged);
    }
}

/// A 32-bit syscall of a shell's task (`int80`: through `int $0x80`, else sysenter or the
/// 32-bit `syscall`), or a 32-bit layout syscall of a stretched process at home. True: it
/// was handled (run at home, or refused).
///
/// # Safety
///
/// As [`elastic_syscall`]: `regs` is null or the current task's user registers saved at
/// syscall entry (`do_syscall_32_irqs_on`), only this task's until it
/// returns to user mode.
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_syscall32(
    regs: *mut bindings::pt_regs,
    nr: core::ffi::c_int,
    int80: bool,
) -> bool {
    let Some(h) = HOOKS.get() else { return false };
    // SAFETY: the caller passes the current task's user registers saved at syscall entry
    // (see `# Safety`); only this task uses them until it returns to user mode, after this.
    let Some(mut regs) = (unsafe { SyscallRegs::from_entry(regs) }) else {
        return false;
    };
    (h.syscall32)(&mut regs, nr, int80)
}

/// A legacy vsyscall of a shell's task (`emulate_vsyscall()`, registers untouched). True:
/// handled (execution went home, or the task dies).
///
/// # Safety
///
/// `_regs` is the current task's saved user registers (`emulate_vsyscall`); it is not read
/// here (the logic reaches the registers through the current task).
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_vsyscall(_regs: *mut bindings::pt_regs) -> bool {
    HOOKS.get().is_some_and(|h| (h.vsyscall)())
}

/// An elastic process's mm is being torn down.
///
/// # Safety
///
/// `mm` is the address space `__mmput` is tearing down (its last user is gone; the structure
/// itself is still allocated). Only its address is used here: [`MmId`] is an identity that
/// is compared, never dereferenced.
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_mm_exit(mm: *mut bindings::mm_struct) {
    if let Some(h) = HOOKS.get() {
        (h.mm_exit)(MmId::of(mm));
    }
}

/// `copy_process()` asks whether a task may be created that shares `mm` (CLONE_VM without
/// CLONE_VFORK) while `mm` is elastic.
///
/// # Safety
///
/// `mm` is the current task's mm (`copy_process`). Only its address is used here: [`MmId`] is
/// an identity that is compared, never dereferenced.
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_may_share_mm(mm: *mut bindings::mm_struct) -> bool {
    HOOKS.get().is_none_or(|h| (h.may_share_mm)(MmId::of(mm)))
}

/// `copy_mm()` is about to copy the elastic address space `mm` for a child (fork: no
/// CLONE_VM). Non-zero: the fork fails (ENOMEM).
///
/// # Safety
///
/// `mm` is the current task's mm (`copy_mm`). Only its address is used here: [`MmId`] is an
/// identity that is compared, never dereferenced.
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_fork_begin(
    mm: *mut bindings::mm_struct,
) -> core::ffi::c_int {
    match HOOKS.get().map(|h| (h.fork_begin)(MmId::of(mm))) {
        Some(Err(e)) => e.to_errno(),
        _ => 0,
    }
}

/// `copy_mm()` copied `mm` (or failed to) after [`elastic_fork_begin`] succeeded.
///
/// # Safety
///
/// As for [`elastic_fork_begin`].
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_fork_end(mm: *mut bindings::mm_struct) {
    if let Some(h) = HOOKS.get() {
        (h.fork_end)(MmId::of(mm));
    }
}

fn ret(r: Result<i64>) -> core::ffi::c_long {
    match r {
        Ok(v) => v as core::ffi::c_long,
        Err(e) => e.to_errno() as core::ffi::c_long,
    }
}

fn syscall(f: impl FnOnce(&'static Hooks) -> Result<i64>) -> core::ffi::c_long {
    ret(HOOKS.get().ok_or(ENODEV).and_then(f))
}

/// `elastic_stretch(pid, node)`.
#[no_mangle]
pub(crate) extern "C" fn elastic_sys_stretch(pid: i32, node: i32) -> core::ffi::c_long {
    syscall(|h| (h.stretch)(pid, node))
}

/// `elastic_ctl(op, pid, arg)`.
#[no_mangle]
pub(crate) extern "C" fn elastic_sys_ctl(
    op: i32,
    pid: i32,
    arg: core::ffi::c_ulong,
) -> core::ffi::c_long {
    syscall(|h| (h.ctl)(op, pid, arg as u64))
}

/// `elastic_jump(pid, node)`.
#[no_mangle]
pub(crate) extern "C" fn elastic_sys_jump(pid: i32, node: i32) -> core::ffi::c_long {
    syscall(|h| (h.jump)(pid, node))
}

/// `/proc/<pid>/elastic`: formats what ElasticOS knows of process `pid` into `buf`; returns
/// the length (0: nothing).
///
/// # Safety
///
/// `buf` is null or valid for writes of `len` bytes, and nothing else reads or writes it
/// until this returns (procfs passes its page-sized buffer).
#[no_mangle]
pub(crate) unsafe extern "C" fn elastic_proc_show(
    pid: i32,
    buf: *mut u8,
    len: usize,
) -> core::ffi::c_long {
    let Some(h) = HOOKS.get() else { return 0 };
    if buf.is_null() {
        return 0;
    }
    // SAFETY: `buf` is not null, so it is valid for writes of `len` bytes and ours alone
    // until this returns (see `# Safety`), which is how long `out` lives.
    let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
    let mut w = FmtBuf::new(out);
    (h.proc_show)(pid, &mut w);
    w.written() as core::ffi::c_long
}
