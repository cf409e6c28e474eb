// SPDX-License-Identifier: GPL-2.0

//! Entry points called from C: the mm hooks (include/linux/elastic.h) and the syscalls
//! (syscalls.c). They turn raw arguments into safe types and call the logic.

use crate::jump::Missing;
use crate::process::{self, Fault};
use crate::sys::mm::Vma;
use kernel::bindings;

/// `handle_pte_marker()` found an ElasticOS marker.
#[no_mangle]
pub(crate) extern "C" fn elastic_fault(
    vma: *mut bindings::vm_area_struct,
    address: core::ffi::c_ulong,
    flags: core::ffi::c_uint,
    node: core::ffi::c_uint,
    in_flight: bool,
) -> bindings::vm_fault_t {
    // SAFETY: the fault handler passes the VMA of the running fault, locked for its duration.
    let Some(vma) = (unsafe { Vma::from_fault(vma) }) else {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    };
    let addr = address as u64 & !(crate::proto::PAGE_SIZE as u64 - 1);
    let user = flags & bindings::fault_flag_FAULT_FLAG_USER != 0;
    match process::fault(vma, addr, node as u16, in_flight, user) {
        Fault::Done => 0,
        Fault::SigBus => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
        Fault::Oom => bindings::vm_fault_reason_VM_FAULT_OOM,
    }
}

/// A shell's task, running a process away from home, touched an empty PTE. 0: build the
/// page the ordinary way.
#[no_mangle]
pub(crate) extern "C" fn elastic_missing(
    vma: *mut bindings::vm_area_struct,
    address: core::ffi::c_ulong,
    flags: core::ffi::c_uint,
) -> bindings::vm_fault_t {
    // SAFETY: the fault handler passes the VMA of the running fault, locked for its duration.
    let Some(vma) = (unsafe { Vma::from_fault(vma) }) else {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    };
    let addr = address as u64 & !(crate::proto::PAGE_SIZE as u64 - 1);
    let user = flags & bindings::fault_flag_FAULT_FLAG_USER != 0;
    match crate::jump::missing(vma, addr, user) {
        Missing::Build => 0,
        Missing::Retry => bindings::vm_fault_reason_VM_FAULT_NOPAGE,
        Missing::SigBus => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
        Missing::Oom => bindings::vm_fault_reason_VM_FAULT_OOM,
    }
}

/// A syscall of a shell's task, or a layout syscall of a stretched process at home. True: it
/// was handled (run at home, or run here with the members following).
#[no_mangle]
pub(crate) extern "C" fn elastic_syscall(regs: *mut bindings::pt_regs, nr: core::ffi::c_int) -> bool {
    let Some(node) = crate::node::get() else { return false };
    let Some(shell) = node.shells.by_current() else {
        // A stretched process at home changing its layout.
        return crate::mapsync::home_syscall(node, regs, nr);
    };
    if !shell.running() {
        return false;
    }
    // SAFETY: `regs` are the current task's user registers, saved at syscall entry. Rewinding
    // to the 2-byte `syscall` instruction with the syscall number back in `ax` makes the
    // process issue the same syscall again, at home.
    unsafe {
        (*regs).ip -= 2;
        (*regs).ax = (*regs).orig_ax;
    }
    crate::jump::guest_syscall(&shell)
}

/// A shell's task has a signal pending on its way to user mode. True: it was a fault while
/// running the process, and execution went home (and came back) instead.
#[no_mangle]
pub(crate) extern "C" fn elastic_guest_fault(_regs: *mut bindings::pt_regs) -> bool {
    let Some(node) = crate::node::get() else { return false };
    let Some(shell) = node.shells.by_current() else { return false };
    if !shell.running() {
        return false;
    }
    match crate::sys::arch::take_fault_signal() {
        0 => false,
        sig => crate::jump::guest_fault(&shell, sig),
    }
}

/// An elastic process is about to allocate an anonymous page.
#[no_mangle]
pub(crate) extern "C" fn elastic_throttle(mm: *mut bindings::mm_struct) {
    process::throttle(mm);
}

/// The overcommit check asks whether `mm` may map more than this node holds: yes if its
/// process was marked elastic (the mark then moves onto the mm).
#[no_mangle]
pub(crate) extern "C" fn elastic_may_overcommit(mm: *mut bindings::mm_struct) -> bool {
    if !process::current_is_marked() {
        return false;
    }
    // SAFETY: the overcommit check runs for the live `mm` of the caller.
    if let Some(m) = unsafe { crate::sys::mm::MmRef::grab(mm) } {
        m.mark_elastic();
    }
    true
}

/// An elastic process's mm is being torn down.
#[no_mangle]
pub(crate) extern "C" fn elastic_mm_exit(mm: *mut bindings::mm_struct) {
    process::mm_exit(mm);
}

fn ret(r: kernel::error::Result<i64>) -> core::ffi::c_long {
    match r {
        Ok(v) => v as core::ffi::c_long,
        Err(e) => e.to_errno() as core::ffi::c_long,
    }
}

/// `elastic_stretch(pid, node)`.
#[no_mangle]
pub(crate) extern "C" fn elastic_sys_stretch(pid: i32, node: i32) -> core::ffi::c_long {
    let Some(n) = crate::node::get() else {
        return kernel::error::code::ENODEV.to_errno() as core::ffi::c_long;
    };
    ret(process::sys_stretch(n, pid, node))
}

/// `elastic_ctl(op, pid, arg)`.
#[no_mangle]
pub(crate) extern "C" fn elastic_sys_ctl(op: i32, pid: i32, arg: core::ffi::c_ulong) -> core::ffi::c_long {
    let Some(n) = crate::node::get() else {
        return kernel::error::code::ENODEV.to_errno() as core::ffi::c_long;
    };
    ret(process::sys_ctl(n, op, pid, arg as u64))
}

/// `elastic_jump(pid, node)`.
#[no_mangle]
pub(crate) extern "C" fn elastic_sys_jump(pid: i32, node: i32) -> core::ffi::c_long {
    let Some(n) = crate::node::get() else {
        return kernel::error::code::ENODEV.to_errno() as core::ffi::c_long;
    };
    ret(crate::jump::sys_jump(n, pid, node))
}

/// `/proc/<pid>/elastic`: formats what ElasticOS knows of process `pid` into `buf`; returns
/// the length (0: nothing).
#[no_mangle]
pub(crate) extern "C" fn elastic_proc_show(pid: i32, buf: *mut u8, len: usize) -> core::ffi::c_long {
    let Some(node) = crate::node::get() else { return 0 };
    if buf.is_null() {
        return 0;
    }
    // SAFETY: procfs passes a buffer of `len` writable bytes that nothing else uses meanwhile.
    let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
    let mut w = crate::fmtbuf::FmtBuf::new(out);
    // A full buffer cuts the line short; that is all an error here can mean.
    let _ = node.write_proc(pid, &mut w);
    w.len() as core::ffi::c_long
}
