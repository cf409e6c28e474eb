// SPDX-License-Identifier: GPL-2.0

//! The CPU state a jump carries: registers, FS/GS base and the XSAVE image of the current
//! task, as an opaque byte image (arch/x86/kernel/fpu/elastic.c builds and checks it).

use core::marker::PhantomData;
use core::ptr::NonNull;
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

/// The user instruction pointer in a state image (`struct elastic_cpu`: after the sixteen
/// registers).
pub(crate) fn instruction_pointer(image: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(image.get(128..136)?.try_into().ok()?))
}

/// Takes a pending fault signal (SEGV, BUS, ILL, FPE) of the current task; 0 if none.
pub(crate) fn take_fault_signal() -> u32 {
    // SAFETY: works on `current` under its signal lock.
    unsafe { bindings::elastic_take_fault_signal() }.max(0) as u32
}

/// The current task's user registers as saved at syscall entry, borrowed for the duration of
/// an entry hook.
pub(crate) struct SyscallRegs<'a>(NonNull<bindings::pt_regs>, PhantomData<&'a mut ()>);

impl SyscallRegs<'_> {
    /// # Safety
    ///
    /// `regs` must be the current task's user registers saved at syscall entry, and nothing
    /// else may use them while the result lives (only this task does, until it returns to
    /// user mode).
    pub(crate) unsafe fn from_entry(regs: *mut bindings::pt_regs) -> Option<Self> {
        NonNull::new(regs).map(|r| Self(r, PhantomData))
    }

    /// The six syscall arguments (di, si, dx, r10, r8, r9).
    pub(crate) fn args(&self) -> [u64; 6] {
        // SAFETY: the registers are ours for `'a` (see `from_entry`).
        let r = unsafe { self.0.as_ref() };
        [r.di, r.si, r.dx, r.r10, r.r8, r.r9].map(|x| x as u64)
    }

    /// Sets the value the syscall returns to user mode.
    pub(crate) fn set_return(&mut self, v: i64) {
        // SAFETY: as in `args`.
        unsafe { self.0.as_mut().ax = v as usize };
    }

    /// Runs syscall `nr` with these registers, as the entry code would; returns its result
    /// (not yet stored: see [`Self::set_return`]).
    pub(crate) fn run(&mut self, nr: u32) -> i64 {
        // SAFETY: the registers are the current task's, saved at syscall entry (see
        // `from_entry`); the table entry checks `nr`.
        unsafe { bindings::x64_sys_call(self.0.as_ptr(), nr) as i64 }
    }

    /// Rewinds to the 2-byte `syscall` instruction with the syscall number back in `ax`, so
    /// that returning to user mode issues the same syscall again.
    pub(crate) fn rewind(&mut self) {
        // SAFETY: as in `args`.
        let r = unsafe { self.0.as_mut() };
        r.ip -= 2;
        r.ax = r.orig_ax;
    }
}
