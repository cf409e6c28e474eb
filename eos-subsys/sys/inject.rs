// SPDX-License-Identifier: GPL-2.0

//! The link's fault injection points (eos-subsys/faults.c, the kernel's fault-injection
//! framework under debugfs).

/// What the injector does with a received frame.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameFault {
    /// Nothing: it is handled.
    None,
    /// It is lost.
    Drop,
    /// It is handled twice.
    Dup,
    /// It is handled after a delay.
    Delay,
}

extern "C" {
    fn elastic_frame_fault() -> core::ffi::c_int;
}

/// Asks the injector about one received frame (`fail_elastic_frame_{drop,dup,delay}`).
pub(crate) fn frame_fault() -> FrameFault {
    // SAFETY: a plain C function without arguments or preconditions (faults.c).
    match unsafe { elastic_frame_fault() } {
        1 => FrameFault::Drop,
        2 => FrameFault::Dup,
        3 => FrameFault::Delay,
        _ => FrameFault::None,
    }
}
