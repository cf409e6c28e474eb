// SPDX-License-Identifier: GPL-2.0

//! Links between nodes over in-kernel TCP: the listener, one dialer per higher-numbered peer,
//! the authenticated handshake and the per-connection session loop. It knows no primitive:
//! replies go to their waiters (`rpc`), every other message and the end of a link go to the
//! [`Handlers`] registered at init (dispatch.rs).
//!
//! Threads: `eos-listen` accepts; each accepted socket gets an `eos-conn` thread that runs the
//! responder handshake and then the session; each peer we dial (lower id dials) has an
//! `eos-dial/<id>` thread that connects, runs the initiator handshake and the session, and
//! retries with backoff. Every blocking socket call is bounded by a timeout, so threads notice
//! a removed peer or a closed connection within [`RX_TIMEOUT_MS`].
//!
//! Nothing a peer sends is trusted: after the handshake every frame must open under the
//! connection's key (record.rs: replayed, reordered, altered or injected frames do not), frames
//! are validated by `proto` before use, a bad or forged frame closes the connection and is
//! counted and logged (rate-limited), and a silent peer is dropped after
//! `peer::DEAD_AFTER_NS`.

use crate::handshake::{Established, HandshakeError, Initiator, Responder};
use crate::link::{Conn, RX_TIMEOUT_MS, TX_TIMEOUT_MS};
use crate::node::{peer_warn, Node, Peer};
use crate::peer::{Backoff, LinkState, Liveness, SlotRefusal, Tick, HANDSHAKE_TIMEOUT_NS};
use crate::proto::{
    caps, FrameReader, Header, Message, MsgType, ProtoError, Reason, MAX_PAYLOAD, TAG_LEN,
};
use crate::record::{Opener, Sealer, KEY_LEN};
use crate::stats::Stats;
use crate::sys::{
    crypto::{self, AesGcm},
    errno::e,
    global::Global,
    inject::{self, FrameFault},
    kthread,
    net::Socket,
    time, trace,
};
use core::net::SocketAddrV4;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use kernel::{bindings, error::code::EAGAIN, fmt, prelude::*, sync::Arc};

/// Why a handler could not take a message.
pub(crate) enum Unhandled {
    /// Sending its answer failed: the connection is gone.
    Io(Error),
    /// Not a message this node accepts from a peer.
    Unexpected,
}

/// What the primitives do with a link's messages.
pub(crate) struct Handlers {
    /// A request or notification from `peer`, answered on `conn`.
    pub(crate) message:
        fn(&'static Node, &Arc<Peer>, &Arc<Conn>, &Message<'_>) -> Result<(), Unhandled>,
    /// The link to node `id` is gone (its last connection ended).
    pub(crate) link_down: fn(&'static Node, u16),
}

static HANDLERS: Global<Handlers> = Global::new();

/// Registers what the links hand their messages to (before any link comes up).
pub(crate) fn set_handlers(h: &'static Handlers) {
    HANDLERS.set(h);
}

/// Whether this node keeps page contents confidential on its links (the default). Off, it
/// offers [`caps::CLEAR`]: a link on which both sides offer it carries payloads in clear,
/// still authenticated (`/sys/kernel/elastic/confidentiality`, for measurements).
pub(crate) static CONFIDENTIAL: AtomicBool = AtomicBool::new(true);

/// The capabilities this node offers in a handshake.
fn local_caps() -> u32 {
    caps::ALL
        | if CONFIDENTIAL.load(Relaxed) {
            0
        } else {
            caps::CLEAR
        }
}

/// Why a connection ended.
#[derive(Clone, Copy)]
enum LinkErr {
    Eof,
    Io(Error),
    Bad(ProtoError),
    Handshake(HandshakeError),
    HandshakeTimeout,
    Dead,
    Bye(Reason),
    Unexpected(MsgType),
    Closed,
    Removed,
    NoMemory,
    /// A frame on a sealed link did not open (record.rs).
    Forged,
    /// A key changed while the handshake was under way (`node::keys_changed`).
    KeyChanged,
}

impl LinkErr {
    fn name(&self) -> &'static str {
        match self {
            Self::Eof => "closed-by-peer",
            Self::Io(_) => "io-error",
            Self::Bad(_) => "bad-frame",
            Self::Handshake(HandshakeError::BadMac) => "bad-auth",
            Self::Handshake(HandshakeError::UnknownNode(_)) => "unknown-node",
            Self::Handshake(HandshakeError::Refused(_)) => "refused",
            Self::Handshake(_) => "handshake-failed",
            Self::HandshakeTimeout => "handshake-timeout",
            Self::Dead => "heartbeat-timeout",
            Self::Bye(_) => "peer-said-bye",
            Self::Unexpected(_) => "unexpected-message",
            Self::Closed => "replaced-or-closed",
            Self::Removed => "removed",
            Self::NoMemory => "no-memory",
            Self::Forged => "forged-frame",
            Self::KeyChanged => "key-changed",
        }
    }
}

impl From<Error> for LinkErr {
    fn from(e: Error) -> Self {
        Self::Io(e)
    }
}

/// Receive side of a connection: reassembles frames from the stream and, after the
/// handshake, opens each (record layer).
struct Rx {
    reader: FrameReader,
    buf: VVec<u8>,
    opener: Option<Opener<AesGcm>>,
}

impl Rx {
    fn new() -> Result<Self, LinkErr> {
        Ok(Self {
            reader: FrameReader::new(),
            buf: VVec::from_elem(0u8, MAX_PAYLOAD + TAG_LEN, GFP_KERNEL)
                .map_err(|_| LinkErr::NoMemory)?,
            opener: None,
        })
    }

    /// From the next frame on, every frame must open under `key`. Called at a frame
    /// boundary: right after the handshake's last frame.
    fn seal(&mut self, key: &[u8; KEY_LEN], clear: bool) -> Result<(), LinkErr> {
        let aead = AesGcm::new(key).map_err(|_| LinkErr::NoMemory)?;
        self.opener = Some(if clear {
            Opener::new_clear(aead)
        } else {
            Opener::new(aead)
        });
        self.reader.seal();
        Ok(())
    }

    /// One bounded wait: the header of a complete, validated frame (its payload is in the
    /// buffer until the next poll), or `None` on timeout or a partial frame.
    fn poll(&mut self, node: &Node, conn: &Conn) -> Result<Option<Header>, LinkErr> {
        if conn.closing.load(Relaxed) {
            return Err(LinkErr::Closed);
        }
        let n = match conn.sock.recv(self.reader.want(&mut self.buf)) {
            Ok(0) => return Err(LinkErr::Eof),
            Ok(n) => n,
            Err(e) if e == EAGAIN => return Ok(None),
            Err(_) if conn.closing.load(Relaxed) => return Err(LinkErr::Closed),
            Err(e) => return Err(LinkErr::Io(e)),
        };
        Stats::add(&node.stats.rx_bytes, n as u64);
        let h = self.reader.advance(n).map_err(|e| {
            Stats::inc(&node.stats.rx_bad_frames);
            LinkErr::Bad(e)
        })?;
        if let (Some(h), Some(o)) = (h, self.opener.as_mut()) {
            // Nothing of a frame that does not open is used, and the link closes.
            let header = *self.reader.header_bytes();
            if o.open_frame(&header, &mut self.buf, h.len as usize)
                .is_err()
            {
                Stats::inc(&node.stats.rx_forged);
                return Err(LinkErr::Forged);
            }
        }
        Ok(h)
    }

    /// Decodes the frame `poll` returned.
    fn decode(&self, node: &Node, h: &Header) -> Result<Message<'_>, LinkErr> {
        match Message::decode(h, &self.buf[..h.len as usize]) {
            Ok(m) => {
                Stats::inc(&node.stats.rx_frames);
                Ok(m)
            }
            Err(e) => {
                Stats::inc(&node.stats.rx_bad_frames);
                Err(LinkErr::Bad(e))
            }
        }
    }

    /// Waits for the next message until `deadline` (monotonic ns).
    fn next(&mut self, node: &Node, conn: &Conn, deadline: u64) -> Result<Message<'_>, LinkErr> {
        loop {
            if let Some(h) = self.poll(node, conn)? {
                return self.decode(node, &h);
            }
            if time::now_ns() >= deadline {
                return Err(LinkErr::HandshakeTimeout);
            }
        }
    }
}

/// Counts, logs and answers a failed handshake or a bad frame before the connection closes.
fn report(node: &Node, conn: &Conn, who: Option<SocketAddrV4>, role: &str, e: LinkErr) {
    let reason = match e {
        LinkErr::Handshake(h) => {
            Stats::inc(&node.stats.handshakes_failed);
            peer_warn!(node, "{} handshake with {:?} refused: {}\n", role, who, h);
            // A peer that refused us already closes; everyone else hears why.
            (!matches!(h, HandshakeError::Refused(_))).then(|| h.reason())
        }
        LinkErr::HandshakeTimeout => {
            Stats::inc(&node.stats.handshake_timeouts);
            peer_warn!(node, "{} handshake with {:?} timed out\n", role, who);
            None
        }
        LinkErr::Bad(p) => {
            peer_warn!(
                node,
                "bad frame from {:?} ({}): {}; closing\n",
                who,
                role,
                p
            );
            Some(Reason::Malformed)
        }
        LinkErr::Forged => {
            peer_warn!(
                node,
                "frame from {:?} ({}) failed authentication (replayed, altered, injected or under another key); closing\n",
                who,
                role
            );
            None
        }
        LinkErr::KeyChanged => {
            Stats::inc(&node.stats.handshakes_failed);
            peer_warn!(
                node,
                "{} handshake with {:?} began under a key since changed: closed\n",
                role,
                who
            );
            None
        }
        LinkErr::Unexpected(t) => {
            Stats::inc(&node.stats.rx_unexpected);
            peer_warn!(
                node,
                "unexpected {} message from {:?}; closing\n",
                t.name(),
                who
            );
            Some(Reason::Unexpected)
        }
        _ => None,
    };
    if let Some(r) = reason {
        // A courtesy before the connection closes; a failed send closes it too.
        let _ = conn.send(&Message::Error(r));
    }
}

/// Counts a reply nobody waited for (it came after its request timed out).
fn late(node: &Node, matched: bool) {
    if !matched {
        Stats::inc(&node.stats.rx_unexpected);
    }
}

/// Starts listening on `addr` (the node is being brought up).
pub(crate) fn listen(node: &'static Node, addr: SocketAddrV4) -> Result {
    let sock = Socket::tcp()?;
    sock.set_reuseaddr();
    sock.set_timeouts(RX_TIMEOUT_MS, TX_TIMEOUT_MS);
    sock.bind(addr)?;
    sock.listen(16)?;
    kthread::spawn(fmt!("eos-listen"), (node, sock), accept_loop)
}

fn accept_loop((node, listener): (&'static Node, Socket)) {
    loop {
        let sock = match listener.accept() {
            Ok(s) => s,
            Err(e) if e == EAGAIN => continue,
            Err(e) => {
                peer_warn!(node, "accept failed: {:?}\n", e);
                time::sleep_ms(100);
                continue;
            }
        };
        Stats::inc(&node.stats.accepted);
        let who = sock.peer_addr();
        let src = who.map_or(0, |a| u32::from(*a.ip()));
        // A configured peer's address has handshake slots of its own: a flood from any
        // number of other addresses cannot keep it from reconnecting.
        let configured = node
            .peers
            .lock()
            .iter()
            .any(|p| u32::from(*p.link.lock().addr.ip()) == src);
        if let Err(why) = node.handshaking.lock().take(src, configured) {
            Stats::inc(&node.stats.busy_refusals);
            peer_warn!(
                node,
                "{}; refusing {:?}\n",
                match why {
                    SlotRefusal::Full => "too many handshakes in progress",
                    SlotRefusal::SourceBusy => "that source has its handshakes in progress already",
                },
                who
            );
            continue;
        }
        let slot = HandshakeSlot(node, src);
        // On failure the closure's arguments drop here: the slot goes back, the socket closes.
        let _ = kthread::spawn(fmt!("eos-conn"), (slot, sock), serve);
    }
}

/// A handshake slot of `Node::handshaking`, given back on every exit path of a responder
/// handshake.
struct HandshakeSlot(&'static Node, u32);

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.handshaking.lock().give_back(self.1);
    }
}

/// Responder side of an accepted connection.
fn serve((slot, sock): (HandshakeSlot, Socket)) {
    let node = slot.0;
    let who = sock.peer_addr();
    let Ok(conn) = Conn::new(sock, &node.stats) else {
        return;
    };
    let mut rx = match Rx::new() {
        Ok(rx) => rx,
        Err(_) => return,
    };
    let accepted = respond(node, &conn, &mut rx);
    drop(slot);
    match accepted {
        Ok((peer, est, epoch)) => {
            // How the link ended is logged and counted by `run_link`; the responder's thread
            // ends either way (only a dialer backs off on it).
            let _ = run_link(node, &peer, conn, rx, est, epoch);
        }
        Err(e) => {
            report(node, &conn, who, "responder", e);
            conn.close();
        }
    }
}

fn respond(
    node: &Node,
    conn: &Conn,
    rx: &mut Rx,
) -> Result<(Arc<Peer>, Established, u64), LinkErr> {
    let deadline = time::now_ns() + HANDSHAKE_TIMEOUT_NS;
    // The keys this handshake is under: a change before it ends refuses it.
    let epoch = crate::node::key_epoch();
    let mut hs = Responder::new(node.id(), local_caps(), crypto::random_bytes());
    let hello = rx.next(node, conn, deadline)?;
    // The key of the node the Hello names (its pair's own, or the cluster secret).
    let claimed = match &hello {
        Message::Hello(h) => h.node,
        _ => 0,
    };
    let mac = node.mac_for(claimed)?;
    let ch = hs
        .on_hello(&hello, |id| node.find_peer(id).is_some(), &mac)
        .map_err(LinkErr::Handshake)?;
    conn.send(&ch)?;
    let auth = rx.next(node, conn, deadline)?;
    let est = hs.on_auth(&auth, &mac).map_err(LinkErr::Handshake)?;
    if crate::node::key_epoch() != epoch {
        return Err(LinkErr::KeyChanged);
    }
    // The peer may have been deleted meanwhile.
    let peer = node
        .find_peer(est.peer)
        .ok_or(LinkErr::Handshake(HandshakeError::UnknownNode(est.peer)))?;
    conn.send(&Message::Welcome)?;
    // From here on both ways are sealed: the initiator seals after it reads the Welcome.
    let keys = hs.keys().ok_or(LinkErr::NoMemory)?;
    let (tx, rxk) = keys.for_side(false);
    seal(conn, rx, tx, rxk, est.caps & caps::CLEAR != 0)?;
    Ok((peer, est, epoch))
}

/// Starts the record layer of a connection whose handshake just ended; `clear`: payloads
/// are authenticated only (both sides offered it).
fn seal(
    conn: &Conn,
    rx: &mut Rx,
    tx_key: &[u8; KEY_LEN],
    rx_key: &[u8; KEY_LEN],
    clear: bool,
) -> Result<(), LinkErr> {
    let aead = AesGcm::new(tx_key).map_err(|_| LinkErr::NoMemory)?;
    let sealer = if clear {
        Sealer::new_clear(aead)
    } else {
        Sealer::new(aead)
    };
    conn.seal(sealer).map_err(|_| LinkErr::NoMemory)?;
    rx.seal(rx_key, clear)
}

/// Starts the dialer of `peer` unless one runs already.
pub(crate) fn start_dialer(node: &'static Node, peer: Arc<Peer>) {
    if peer.dialing.swap(true, Relaxed) {
        return;
    }
    let id = peer.id;
    if let Err(e) = kthread::spawn(fmt!("eos-dial/{}", id), (node, peer.clone()), dial_loop) {
        peer.dialing.store(false, Relaxed);
        pr_err!("cannot start dialer for node {}: {:?}\n", id, e);
    }
}

fn dial_loop((node, peer): (&'static Node, Arc<Peer>)) {
    let mut backoff = Backoff::default();
    while !peer.removed.load(Relaxed) {
        peer.set_state(LinkState::Connecting, None);
        let addr = peer.link.lock().addr;
        match dial_once(node, &peer, addr) {
            Ok(()) => backoff.reset(),
            Err(e) => peer.set_state(LinkState::Down, Some(e.name())),
        }
        let mut wait = backoff.next_delay_ms();
        while wait > 0 && !peer.removed.load(Relaxed) {
            let step = wait.min(100);
            time::sleep_ms(step);
            wait -= step;
        }
    }
    peer.set_state(LinkState::Down, Some(LinkErr::Removed.name()));
    peer.dialing.store(false, Relaxed);
}

fn dial_once(node: &'static Node, peer: &Arc<Peer>, addr: SocketAddrV4) -> Result<(), LinkErr> {
    Stats::inc(&node.stats.dials);
    let sock = Socket::tcp()?;
    sock.set_timeouts(RX_TIMEOUT_MS, TX_TIMEOUT_MS);
    sock.connect(addr)?;
    let conn = Conn::new(sock, &node.stats)?;
    let mut rx = Rx::new()?;
    match initiate(node, peer, &conn, &mut rx) {
        Ok((est, epoch)) => run_link(node, peer, conn, rx, est, epoch),
        Err(e) => {
            report(node, &conn, Some(addr), "initiator", e);
            conn.close();
            Err(e)
        }
    }
}

fn initiate(
    node: &Node,
    peer: &Peer,
    conn: &Conn,
    rx: &mut Rx,
) -> Result<(Established, u64), LinkErr> {
    let deadline = time::now_ns() + HANDSHAKE_TIMEOUT_NS;
    let epoch = crate::node::key_epoch();
    let mac = node.mac_for(peer.id)?;
    let mut hs = Initiator::new(node.id(), peer.id, local_caps(), crypto::random_bytes());
    conn.send(&hs.hello())?;
    let ch = rx.next(node, conn, deadline)?;
    let auth = hs.on_challenge(&ch, &mac).map_err(LinkErr::Handshake)?;
    // Not under a key changed meanwhile: the responder would bring the link up for nothing.
    if crate::node::key_epoch() != epoch {
        return Err(LinkErr::KeyChanged);
    }
    conn.send(&auth)?;
    let welcome = rx.next(node, conn, deadline)?;
    let est = hs.on_welcome(&welcome).map_err(LinkErr::Handshake)?;
    let keys = hs.keys().ok_or(LinkErr::NoMemory)?;
    let (tx, rxk) = keys.for_side(true);
    seal(conn, rx, tx, rxk, est.caps & caps::CLEAR != 0)?;
    Ok((est, epoch))
}

/// Runs an established connection until it ends: answers pings, pings when idle, drops a
/// silent or misbehaving peer. The newest authenticated connection of a peer wins.
/// How long an injected delay holds a frame (`fail_elastic_frame_delay`).
const INJECTED_DELAY_MS: u32 = 300;

/// What the fault injector does with `m`: the requests and answers the ownership rules
/// cover (core/src/ownership.rs and its model). Page frames may be dropped, duplicated or
/// delayed; jump frames dropped or delayed; `Took` only delayed or duplicated. The others
/// (and a lost `Took`) rely on the connection itself, which loses nothing while it lives.
fn injected(m: &Message<'_>) -> FrameFault {
    use crate::proto::MsgType as T;
    let ty = m.ty();
    let page = matches!(
        ty,
        T::Pull | T::Pages | T::Push | T::PushRefs | T::PushAck | T::Fetch
    );
    let jump = matches!(ty, T::Jump | T::JumpAck);
    if !page && !jump && ty != T::Took {
        return FrameFault::None;
    }
    match inject::frame_fault() {
        FrameFault::Dup if jump => FrameFault::None,
        FrameFault::Drop if ty == T::Took => FrameFault::None,
        f => f,
    }
}

/// Hands a received frame to the waiting request or to its handler.
fn deliver(
    node: &'static Node,
    peer: &Arc<Peer>,
    conn: &Arc<Conn>,
    m: &Message<'_>,
) -> Result<(), LinkErr> {
    if let Some(matched) = crate::rpc::on_reply(&peer.pending, m) {
        late(node, matched);
        return Ok(());
    }
    let Some(h) = HANDLERS.get() else {
        return Err(LinkErr::Unexpected(m.ty()));
    };
    match (h.message)(node, peer, conn, m) {
        Ok(()) => Ok(()),
        Err(Unhandled::Io(e)) => Err(LinkErr::Io(e)),
        Err(Unhandled::Unexpected) => Err(LinkErr::Unexpected(m.ty())),
    }
}

fn run_link(
    node: &'static Node,
    peer: &Arc<Peer>,
    conn: Arc<Conn>,
    mut rx: Rx,
    est: Established,
    epoch: u64,
) -> Result<(), LinkErr> {
    let (old, gen) = {
        let mut l = peer.link.lock();
        // A key changed since the handshake began (a rotation takes this lock to change it):
        // this connection is under the old one and never comes up.
        if crate::node::key_epoch() != epoch {
            drop(l);
            Stats::inc(&node.stats.handshakes_failed);
            peer_warn!(
                node,
                "handshake with node {} began under a key since changed: closed\n",
                peer.id
            );
            conn.close();
            return Err(LinkErr::KeyChanged);
        }
        Stats::inc(&node.stats.handshakes_ok);
        let old = l.conn.replace(conn.clone());
        l.state = LinkState::Up;
        l.ups += 1;
        l.since_ns = time::now_ns();
        l.last_error = "";
        (old, l.ups)
    };
    // One more node to reach (the overcommit check), counted without the link lock.
    node.update_reach();
    if let Some(old) = old {
        // The peer came back on a new connection while the old one looked up here: it lost
        // the old one (and what was in flight on it), or restarted. Either way it is the
        // loss of the old link, here as on the peer, which ran (or will run) its own
        // `link_down`: the processes with pages there and the peer's shells here end now,
        // before the new connection carries anything (a Stretch on it must not meet a stale
        // shell, nor be killed with the old ones). Its requests fail; the new one's do not.
        Stats::inc(&node.stats.links_replaced);
        old.close();
        peer.pending.fail_conn(gen - 1, e(bindings::ECONNRESET));
        pr_info!(
            "link to node {} replaced by a new connection: the old one counts as lost\n",
            peer.id
        );
        if let Some(h) = HANDLERS.get() {
            (h.link_down)(node, peer.id);
        }
    }
    pr_info!(
        "link to node {} up (protocol {}, caps {:#x})\n",
        est.peer,
        est.version,
        est.caps
    );
    trace::link(est.peer, true, est.caps as u32);

    let mut live = Liveness::new(time::now_ns());
    let end = loop {
        if peer.removed.load(Relaxed) {
            // A courtesy: the peer's link ends either way, when this connection closes.
            let _ = conn.send(&Message::Bye(Reason::Shutdown));
            break LinkErr::Removed;
        }
        match live.tick(time::now_ns()) {
            Tick::Dead => break LinkErr::Dead,
            Tick::Ping => {
                if let Err(e) = conn.send(&Message::Ping(time::now_ns())) {
                    break LinkErr::Io(e);
                }
                peer.tx_frames.fetch_add(1, Relaxed);
            }
            Tick::Idle => {}
        }
        let h = match rx.poll(node, &conn) {
            Ok(Some(h)) => h,
            Ok(None) => continue,
            Err(e) => break e,
        };
        let m = match rx.decode(node, &h) {
            Ok(m) => m,
            Err(e) => break e,
        };
        let now = time::now_ns();
        live.on_rx(now);
        peer.rx_frames.fetch_add(1, Relaxed);
        match m {
            Message::Ping(t) => {
                if let Err(e) = conn.send(&Message::Pong(t)) {
                    break LinkErr::Io(e);
                }
                peer.tx_frames.fetch_add(1, Relaxed);
            }
            Message::Pong(t) => {
                live.on_pong(now, t);
                let mut l = peer.link.lock();
                l.rtt_ns = live.rtt_ns;
                l.srtt_ns = live.srtt_ns;
            }
            Message::Bye(r) | Message::Error(r) => break LinkErr::Bye(r),
            m => {
                let times = match injected(&m) {
                    FrameFault::Drop => 0,
                    FrameFault::Dup => 2,
                    FrameFault::Delay => {
                        time::sleep_ms(INJECTED_DELAY_MS);
                        1
                    }
                    FrameFault::None => 1,
                };
                let mut failed = None;
                for _ in 0..times {
                    if let Err(e) = deliver(node, peer, &conn, &m) {
                        failed = Some(e);
                        break;
                    }
                }
                if let Some(e) = failed {
                    break e;
                }
            }
        }
    };
    // Requests sent on this connection get no answer any more (those on a newer one may).
    peer.pending.fail_conn(gen, e(bindings::ECONNRESET));
    report(node, &conn, None, "link", end);
    conn.close();

    let mut l = peer.link.lock();
    // Still this node's link to the peer: it is the current connection, or it was taken off
    // (a key change, the peer's deletion) and none came after it. A connection replaced by a
    // newer one was handled as a loss when it was replaced.
    let current = l.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn))
        || (l.conn.is_none() && l.ups == gen);
    if current {
        l.conn = None;
        l.state = LinkState::Down;
        l.since_ns = time::now_ns();
        l.losses += 1;
        l.last_error = end.name();
        drop(l);
        node.update_reach();
        Stats::inc(&node.stats.links_lost);
        trace::link(peer.id, false, 0);
        if let Some(h) = HANDLERS.get() {
            (h.link_down)(node, peer.id);
        }
        match end {
            LinkErr::Io(e) => pr_info!("link to node {} down: {} ({:?})\n", peer.id, end.name(), e),
            LinkErr::Bye(r) => pr_info!(
                "link to node {} down: {} ({})\n",
                peer.id,
                end.name(),
                r.name()
            ),
            _ => pr_info!("link to node {} down: {}\n", peer.id, end.name()),
        }
    }
    match end {
        LinkErr::Closed | LinkErr::Removed => Ok(()),
        e => Err(e),
    }
}
