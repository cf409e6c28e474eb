// SPDX-License-Identifier: GPL-2.0

//! Request/response over a peer link: [`call`] registers a waiter under a fresh request id,
//! sends the request and sleeps until the link's receive thread hands it the reply
//! ([`on_reply`]), the link drops (every waiter of that peer fails at once, so nobody waits
//! for a dead node longer than the heartbeat timeout), the timeout passes or a fatal signal
//! comes. The answer is typed by the reply that came.

use crate::proto::{Message, PAGES_BUILD, PAGE_SIZE};
use crate::sys::{errno::e, task, time};
use core::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{Relaxed, SeqCst},
};
use kernel::{
    bindings, new_condvar, new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{Arc, CondVar, Mutex},
    time::msecs_to_jiffies,
};

/// What a peer answered.
pub(crate) enum Answer {
    /// Done (`PushAck`, `JumpAck`).
    Done,
    /// The first pages of a push batch were installed, the rest could not be (`PushAck`
    /// with a positive status: their number).
    Installed(u32),
    /// A shell holds the process now (`StretchOk`): its pid.
    Shell(u32),
    /// The peer had no data there: the page is built where it is needed (`Pages`, status
    /// `PAGES_BUILD`).
    Build,
    /// Page data from `addr` (`Pages`).
    Pages { addr: u64, data: KVVec<u8> },
    /// Page addresses, little-endian, strictly ascending (`ColdAddrs`, validated).
    Addrs(KVVec<u8>),
}

/// Why a call has no answer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CallError {
    /// The request never left (no connection, no memory): the peer did nothing.
    NotSent(Error),
    /// The peer answered with this error.
    Refused(Error),
    /// No answer (timeout, link lost, fatal signal): the peer may or may not have acted.
    NoAnswer(Error),
}

impl CallError {
    /// The error number behind it.
    pub(crate) fn errno(self) -> Error {
        match self {
            Self::NotSent(e) | Self::Refused(e) | Self::NoAnswer(e) => e,
        }
    }
}

impl From<CallError> for Error {
    fn from(c: CallError) -> Self {
        c.errno()
    }
}

/// Where requests go: a peer's current connection and its table of waiters.
pub(crate) trait Channel {
    /// The table of requests waiting for this peer's replies.
    fn pending(&self) -> &Pending;
    /// Sends `m` on the current connection; returns that connection's generation (see
    /// [`Pending::fail_conn`]).
    fn send(&self, m: &Message<'_>) -> Result<u64>;
}

/// Sends the request `msg(req)` to `ch` and waits up to `timeout_ms` for its answer; `pages`
/// is the most page data the answer may carry (its buffer is allocated before sending).
pub(crate) fn call<'a>(
    ch: &impl Channel,
    pages: usize,
    timeout_ms: u32,
    msg: impl FnOnce(u32) -> Message<'a>,
) -> Result<Answer, CallError> {
    let pending = ch.pending();
    let w = pending.register(pages).map_err(CallError::NotSent)?;
    let sent = ch.send(&msg(w.req));
    if let Ok(gen) = sent {
        pending.sent_on(&w, gen);
    }
    let sent = sent.map(|_| ());
    let r = match sent {
        Ok(()) => w.wait(timeout_ms),
        Err(err) => Err(err),
    };
    pending.remove(&w);
    let mut slot = w.slot.lock();
    match (sent, r) {
        (Err(err), _) => Err(CallError::NotSent(err)),
        (Ok(()), Err(err)) => Err(CallError::NoAnswer(err)),
        (Ok(()), Ok(())) => match slot.state.take() {
            Some(Ok(a)) => Ok(a),
            Some(Err(errno)) => Err(CallError::Refused(Error::from_errno(errno))),
            None => Err(CallError::NoAnswer(e(bindings::ECONNRESET))),
        },
    }
}

/// [`call`], tried again while `again(tries, error)` says so (it may log or pause first; a
/// try that fails for good is its error). `tries` counts every try, this call's and those
/// before it (a caller that also retries for a reason of its own shares the count); it is
/// one more on each try, before the request goes. `msg` builds each try's request.
pub(crate) fn call_retrying<'a>(
    ch: &impl Channel,
    pages: usize,
    timeout_ms: u32,
    tries: &mut u32,
    mut msg: impl FnMut(u32) -> Message<'a>,
    mut again: impl FnMut(u32, CallError) -> bool,
) -> Result<Answer, CallError> {
    loop {
        *tries += 1;
        match call(ch, pages, timeout_ms, &mut msg) {
            Ok(a) => return Ok(a),
            Err(e) if again(*tries, e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// One outstanding request's slot.
struct Slot {
    /// `None` while waiting; the peer's answer or its (negative) error number.
    state: Option<core::result::Result<Answer, i32>>,
    /// Our own failure (link lost): no answer will come.
    failed: Option<Error>,
    /// Room for page data, allocated before the request left.
    buf: KVVec<u8>,
}

impl Slot {
    fn done(&self) -> bool {
        self.state.is_some() || self.failed.is_some()
    }
}

/// One outstanding request.
#[pin_data]
pub(crate) struct Waiter {
    req: u32,
    /// The generation of the connection it went on (0: not sent yet).
    gen: AtomicU64,
    #[pin]
    slot: Mutex<Slot>,
    #[pin]
    cv: CondVar,
}

impl Waiter {
    /// Waits for the reply up to `timeout_ms`; gives up early on a fatal signal.
    fn wait(&self, timeout_ms: u32) -> Result {
        let deadline = time::now_ns() + timeout_ms as u64 * 1_000_000;
        let mut s = self.slot.lock();
        while !s.done() {
            if task::fatal_signal_pending() {
                return Err(EINTR);
            }
            if time::now_ns() >= deadline {
                return Err(e(bindings::ETIMEDOUT));
            }
            if let kernel::sync::CondVarTimeoutResult::Signal { .. } = self
                .cv
                .wait_interruptible_timeout(&mut s, msecs_to_jiffies(50))
            {
                // A non-fatal signal cannot be delivered before we return; poll instead.
                drop(s);
                time::sleep_ms_uninterruptible(1);
                s = self.slot.lock();
            }
        }
        match s.failed {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// The outstanding requests of one peer.
#[pin_data]
pub(crate) struct Pending {
    /// By request id. Removal cannot fail; an insertion's node is allocated before the lock.
    #[pin]
    list: Mutex<RBTree<u32, Arc<Waiter>>>,
    next: AtomicU32,
    /// The newest connection generation that ended: a request sent on it or an older one
    /// gets no answer.
    ended: AtomicU64,
}

impl Pending {
    /// An empty table.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_mutex!(RBTree::new(), "Pending::list"),
            next: AtomicU32::new(1),
            ended: AtomicU64::new(0),
        })
    }

    /// Registers a waiter whose reply may carry up to `pages` pages.
    fn register(&self, pages: usize) -> Result<Arc<Waiter>> {
        let node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let list = self.list.lock();
        // A fresh id; one still waiting after the counter wrapped around is skipped.
        let mut req = self.next.fetch_add(1, Relaxed);
        while list.get(&req).is_some() {
            req = self.next.fetch_add(1, Relaxed);
        }
        drop(list);
        let buf = KVVec::with_capacity(pages * PAGE_SIZE, GFP_KERNEL)?;
        let w = Arc::pin_init(
            pin_init!(Waiter {
                req,
                gen: AtomicU64::new(0),
                slot <- new_mutex!(Slot {
                    state: None,
                    failed: None,
                    buf,
                }, "Waiter::slot"),
                cv <- new_condvar!("Waiter::cv"),
            }),
            GFP_KERNEL,
        )?;
        self.list.lock().insert(node.into_node(req, w.clone()));
        Ok(w)
    }

    /// Forgets a waiter (after its reply or its timeout). Cannot fail.
    fn remove(&self, w: &Arc<Waiter>) {
        self.list.lock().remove(&w.req);
    }

    /// Hands a reply to the waiter of `req`; false if nobody waits for it (late or bogus).
    fn complete(
        &self,
        req: u32,
        fill: impl FnOnce(&mut KVVec<u8>) -> core::result::Result<Answer, i32>,
    ) -> bool {
        let w = self.list.lock().get(&req).cloned();
        let Some(w) = w else { return false };
        let mut s = w.slot.lock();
        if s.done() {
            return false;
        }
        let answer = fill(&mut s.buf);
        s.state = Some(answer);
        drop(s);
        w.cv.notify_all();
        true
    }

    /// `w` went on the connection of generation `gen`. If that connection has ended
    /// meanwhile ([`Pending::fail_conn`] ran before this), `w` fails at once.
    fn sent_on(&self, w: &Waiter, gen: u64) {
        w.gen.store(gen, SeqCst);
        if gen <= self.ended.load(SeqCst) {
            let mut s = w.slot.lock();
            if !s.done() {
                s.failed = Some(e(bindings::ECONNRESET));
            }
            drop(s);
            w.cv.notify_all();
        }
    }

    /// The connection of generation `gen` ended: every request sent on it fails with
    /// `errno`, and so does one whose sending is just being recorded (`sent_on`). Requests
    /// on a newer connection (one that replaced it) wait on.
    pub(crate) fn fail_conn(&self, gen: u64, errno: Error) {
        self.ended.fetch_max(gen, SeqCst);
        let list = self.list.lock();
        for w in list.values() {
            let g = w.gen.load(SeqCst);
            if g == 0 || g > gen {
                continue;
            }
            let mut s = w.slot.lock();
            if !s.done() {
                s.failed = Some(errno);
            }
            drop(s);
            w.cv.notify_all();
        }
    }
}

/// `Ok(a)` for a status of 0 (or positive), the error number otherwise (one the protocol
/// uses: `proto::peer_status`).
fn status(status: i32, a: Answer) -> core::result::Result<Answer, i32> {
    let status = crate::proto::peer_status(status);
    if status < 0 {
        Err(status)
    } else {
        Ok(a)
    }
}

/// Receive thread: if `m` is a reply, hands it to its waiter in `pending` and returns whether
/// somebody waited for it; `None` if `m` is not a reply.
pub(crate) fn on_reply(pending: &Pending, m: &Message<'_>) -> Option<bool> {
    let matched = match m {
        Message::StretchOk {
            req,
            status: st,
            shell_pid,
        } => pending.complete(*req, |_| status(*st, Answer::Shell(*shell_pid))),
        Message::PushAck { req, status: st } => pending.complete(*req, |_| {
            match crate::ownership::PushEnd::from_status(*st) {
                crate::ownership::PushEnd::Prefix(k) => Ok(Answer::Installed(k)),
                _ => status(*st, Answer::Done),
            }
        }),
        Message::JumpAck { req, status: st } => {
            pending.complete(*req, |_| status(*st, Answer::Done))
        }
        Message::Pages(p) => pending.complete(p.req, |buf| {
            if p.status == PAGES_BUILD {
                return Ok(Answer::Build);
            }
            if p.status < 0 {
                return Err(crate::proto::peer_status(p.status));
            }
            buf.extend_from_slice(p.pages, GFP_KERNEL)
                .map_err(|_| ENOMEM.to_errno())?;
            let data = core::mem::replace(buf, KVVec::new());
            Ok(Answer::Pages { addr: p.addr, data })
        }),
        Message::ColdAddrs(c) => pending.complete(c.req, |buf| {
            if c.status < 0 {
                return Err(crate::proto::peer_status(c.status));
            }
            buf.extend_from_slice(c.addrs, GFP_KERNEL)
                .map_err(|_| ENOMEM.to_errno())?;
            Ok(Answer::Addrs(core::mem::replace(buf, KVVec::new())))
        }),
        _ => return None,
    };
    Some(matched)
}
