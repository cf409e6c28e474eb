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
