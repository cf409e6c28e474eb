// SPDX-License-Identifier: GPL-2.0

//! Monotonic clock and sleeping.

use kernel::bindings;

/// Monotonic time in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: `ktime_get_ns` has no preconditions.
    unsafe { bindings::ktime_get_ns() }
}

/// Sleeps for about `ms` milliseconds. Only for kthreads and process context.
pub(crate) fn sleep_ms(ms: u32) {
    // SAFETY: called from process context (our kthreads, sysfs writers), where sleeping is
    // allowed; kthreads get no signals, so the sleep is not cut short.
    unsafe { bindings::msleep_interruptible(ms) };
}

/// Sleeps `ms` milliseconds even if a signal is pending (for short polls in user context).
pub(crate) fn sleep_ms_uninterruptible(ms: u32) {
    // SAFETY: process context.
    unsafe { bindings::msleep(ms) };
}
