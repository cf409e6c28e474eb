// SPDX-License-Identifier: GPL-2.0

//! Request/response over a peer link. A requester registers a [`Waiter`] under a fresh request
//! id, sends its message and sleeps; the link's receive thread hands the reply to the waiter.
//! When the link drops, every waiter of that peer fails at once, so nobody waits for a dead
//! node longer than the heartbeat timeout.

use crate::sys::{errno::e, task, time};
use kernel::bindings;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
use kernel::{
    new_condvar, new_mutex,
    prelude::*,
    sync::{Arc, CondVar, Mutex},
    time::msecs_to_jiffies,
};

/// What came back.
pub(crate) struct Reply {
    pub(crate) done: bool,
    /// 0 or a negative errno (from the peer, or ours: link lost, timeout).
    pub(crate) status: i32,
    /// A small result (the shell's pid of a stretch).
    pub(crate) value: u32,
    /// First page address of a `Pages` reply.
    pub(crate) addr: u64,
    /// Page data of a `Pages` reply.
    pub(crate) data: KVVec<u8>,
}

/// One outstanding request.
#[pin_data]
pub(crate) struct Waiter {
    pub(crate) req: u32,
    #[pin]
    pub(crate) reply: Mutex<Reply>,
    #[pin]
    cv: CondVar,
}

impl Waiter {
    /// Waits for the reply up to `timeout_ms`; gives up early on a fatal signal.
    pub(crate) fn wait(&self, timeout_ms: u32) -> Result {
        let deadline = time::now_ns() + timeout_ms as u64 * 1_000_000;
        let mut r = self.reply.lock();
        while !r.done {
            if task::fatal_signal_pending() {
                return Err(EINTR);
            }
            if time::now_ns() >= deadline {
                return Err(e(bindings::ETIMEDOUT));
            }
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } =
                self.cv.wait_interruptible_timeout(&mut r, msecs_to_jiffies(50))
            {
                // A non-fatal signal cannot be delivered before we return; poll instead.
                drop(r);
                time::sleep_ms_uninterruptible(1);
                r = self.reply.lock();
            }
        }
        if r.status < 0 {
            return Err(Error::from_errno(r.status));
        }
        Ok(())
    }
}

/// The outstanding requests of one peer.
#[pin_data]
pub(crate) struct Pending {
    #[pin]
    list: Mutex<KVec<Arc<Waiter>>>,
    next: AtomicU32,
}

impl Pending {
    /// An empty table.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_mutex!(KVec::new()),
            next: AtomicU32::new(1),
        })
    }

    /// Registers a waiter whose reply may carry up to `pages` pages.
    pub(crate) fn register(&self, pages: usize) -> Result<Arc<Waiter>> {
        let req = self.next.fetch_add(1, Relaxed);
        let data = KVVec::with_capacity(pages * crate::proto::PAGE_SIZE, GFP_KERNEL)?;
        let w = Arc::pin_init(
            pin_init!(Waiter {
                req,
                reply <- new_mutex!(Reply {
                    done: false,
                    status: 0,
                    value: 0,
                    addr: 0,
                    data,
                }),
                cv <- new_condvar!(),
            }),
            GFP_KERNEL,
        )?;
        self.list.lock().push(w.clone(), GFP_KERNEL)?;
        Ok(w)
    }

    /// Forgets a waiter (after its reply or its timeout).
    pub(crate) fn remove(&self, w: &Arc<Waiter>) {
        // Without memory the finished waiter just stays listed, which is harmless.
        let _ = crate::kvec::retain(&mut self.list.lock(), |x| !Arc::ptr_eq(x, w));
    }

    /// Hands a reply to the waiter of `req`; false if nobody waits for it (late or bogus).
    pub(crate) fn complete(&self, req: u32, fill: impl FnOnce(&mut Reply)) -> bool {
        let w = self.list.lock().iter().find(|w| w.req == req).cloned();
        let Some(w) = w else { return false };
        let mut r = w.reply.lock();
        if r.done {
            return false;
        }
        fill(&mut r);
        r.done = true;
        drop(r);
        w.cv.notify_all();
        true
    }

    /// Fails every outstanding request with `errno` (the link is gone).
    pub(crate) fn fail_all(&self, errno: Error) {
        let list = self.list.lock();
        for w in list.iter() {
            let mut r = w.reply.lock();
            if !r.done {
                r.done = true;
                r.status = errno.to_errno();
            }
            drop(r);
            w.cv.notify_all();
        }
    }
}
