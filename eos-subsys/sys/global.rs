// SPDX-License-Identifier: GPL-2.0

//! Process-wide state that is created once at boot and never freed.

use core::pin::Pin;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;

/// A slot holding a `&'static T`, set once at init and read from callbacks that have no
/// context argument (sysfs, thread entry points).
pub(crate) struct Global<T: Sync + 'static>(AtomicPtr<T>);

impl<T: Sync + 'static> Global<T> {
    /// An empty slot.
    pub(crate) const fn new() -> Self {
        Self(AtomicPtr::new(null_mut()))
    }

    /// Fills the slot.
    pub(crate) fn set(&self, v: &'static T) {
        self.0.store(v as *const T as *mut T, Ordering::Release);
    }

    /// Allocates the value from `init`, pinned for the rest of the kernel's life, and fills
    /// the slot with it.
    pub(crate) fn init<E>(&self, init: impl PinInit<T, E>) -> Result<&'static T>
    where
        Error: From<E>,
    {
        let v = leak_pinned(KBox::pin_init(init, GFP_KERNEL)?);
        self.set(v);
        Ok(v)
    }

    /// The value, once set.
    pub(crate) fn get(&self) -> Option<&'static T> {
        let p = self.0.load(Ordering::Acquire);
        // SAFETY: only `set` stores into the slot, and only `&'static T` references, which
        // stay valid and are only ever shared (`T: Sync`).
        (!p.is_null()).then(|| unsafe { &*p })
    }
}

/// Turns a pinned allocation into a reference for the rest of the kernel's life.
fn leak_pinned<T>(b: Pin<KBox<T>>) -> &'static T {
    // SAFETY: the value is never moved (we only hand out shared references) and never freed,
    // so the pinning guarantee holds forever.
    let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(b) });
    // SAFETY: `raw` is a valid, leaked allocation.
    unsafe { &*raw }
}
