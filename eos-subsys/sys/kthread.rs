// SPDX-License-Identifier: GPL-2.0

//! Kernel threads that own their data and end by returning.
//!
//! Our threads stop themselves (they poll flags between socket timeouts), so nobody keeps a
//! `task_struct` pointer or calls `kthread_stop`: a thread's data is moved in and dropped when
//! its function returns.

use core::ffi::{c_int, c_void};
use core::fmt;
use kernel::{bindings, error::from_err_ptr, prelude::*, str::CString};

struct Start<T> {
    data: T,
    run: fn(T),
}

unsafe extern "C" fn trampoline<T: Send + 'static>(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `KBox<Start<T>>` leaked by `spawn` for this thread alone.
    let start = KBox::into_inner(unsafe { KBox::from_raw(arg.cast::<Start<T>>()) });
    (start.run)(start.data);
    0
}

/// Starts a kernel thread named `name` that runs `run(data)`.
pub(crate) fn spawn<T: Send + 'static>(name: fmt::Arguments<'_>, data: T, run: fn(T)) -> Result {
    let name = CString::try_from_fmt(name)?;
    let start = KBox::into_raw(KBox::new(Start { data, run }, GFP_KERNEL)?);
    // SAFETY: `trampoline::<T>` matches `threadfn`; `start` stays valid until the thread takes
    // it; the format is "%s" with one NUL-terminated string argument.
    let task = unsafe {
        bindings::kthread_create_on_node(
            Some(trampoline::<T>),
            start.cast(),
            bindings::NUMA_NO_NODE,
            c"%s".as_ptr().cast(),
            name.as_char_ptr(),
        )
    };
    match from_err_ptr(task) {
        Ok(task) => {
            // SAFETY: `task` is the new, not yet running kthread; waking it starts it, after
            // which it owns `start`.
            unsafe { bindings::wake_up_process(task) };
            Ok(())
        }
        Err(e) => {
            // SAFETY: the thread was not created, so `start` is still ours.
            drop(unsafe { KBox::from_raw(start) });
            Err(e)
        }
    }
}
