// SPDX-License-Identifier: GPL-2.0

//! The CPU state a jump carries: registers, FS/GS base and the XSAVE image of the current
//! task, as an opaque byte image (arch/x86/kernel/fpu/elastic.c builds and checks it).

use kernel::{bindings, error::to_result, prelude::*};

/// Bytes of a state image on this node.
pub(crate) fn state_size() -> usize {
    // SAFETY: no preconditions.
    unsafe { bindings::elastic_arch_state_size() }.max(0) as usize
}

/// Saves the current task's user CPU state into `buf`; returns the image length.
pub(crate) fn save(buf: &mut [u8]) -> Result<usize> {
    // SAFETY: `buf` is writable for its length; the callee checks it is large enough.
    let n = unsafe { bindings::elastic_arch_save(buf.as_mut_ptr().cast(), buf.len() as u32) };
    to_result(n.min(0))?;
    Ok(n as usize)
}

/// Makes `image` (from the network) the current task's user CPU state for its return to user
/// mode. The callee validates every field; on error nothing changed.
pub(crate) fn load(image: &[u8]) -> Result {
    // SAFETY: `image` is readable for its length.
    to_result(unsafe { bindings::elastic_arch_load(image.as_ptr().cast(), image.len() as u32) })
}

/// The user stack pointer in a state image (`struct elastic_cpu`: rsp is the eighth register).
pub(crate) fn stack_pointer(image: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(image.get(56..64)?.try_into().ok()?))
}

/// Takes a pending fault signal (SEGV, BUS, ILL, FPE) of the current task; 0 if none.
pub(crate) fn take_fault_signal() -> u32 {
    // SAFETY: works on `current` under its signal lock.
    unsafe { bindings::elastic_take_fault_signal() }.max(0) as u32
}

/// Runs syscall `nr` of the current task with its saved user registers `regs`, as the entry
/// code would; returns its result.
///
/// # Safety
///
/// `regs` must be the current task's user registers saved at syscall entry.
pub(crate) unsafe fn run_syscall(regs: *mut bindings::pt_regs, nr: u32) -> i64 {
    // SAFETY: the caller's guarantee; the table entry checks `nr`.
    unsafe { bindings::x64_sys_call(regs, nr) as i64 }
}
