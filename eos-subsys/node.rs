// SPDX-License-Identifier: GPL-2.0

//! This node: identity, cluster secret, the peer table and the node's counters. Its files in
//! /sys/kernel/elastic are control.rs's.
//!
//! Lock order: `cfg`, then `peers`, then a peer's `link`. No lock is held across network I/O.

use crate::link::Conn;
use crate::peer::{LinkState, RoomPause, Secret, Slots};
use crate::proto::{Message, NodeId};
use crate::ratelimit::RateLimit;
use crate::rpc::{Channel, Pending};
use crate::stats::Stats;
use crate::sys::{crypto::HmacSha256, errno::e, global::Global, time};
use core::net::SocketAddrV4;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use kernel::{
    new_mutex, new_spinlock,
    prelude::*,
    sync::{Arc, Mutex, SpinLock},
};

/// Whether a peer without a pair key of its own is refused instead of authenticated with the
/// cluster secret, which only proves membership, not which member
/// (`/sys/kernel/elastic/require_pair_keys`; off by default).
pub(crate) static REQUIRE_PAIR_KEYS: AtomicBool = AtomicBool::new(false);

/// Grows on every change of a key (the cluster secret, a pair's key): a handshake that began
/// under an older one is not let up (issue 27 item 8: a rotation did not stop a handshake
/// already under way with the old key, which then came up).
static KEY_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The keys' epoch now ([`KEY_EPOCH`]).
pub(crate) fn key_epoch() -> u64 {
    KEY_EPOCH.load(SeqCst)
}

/// A key changed: handshakes under way end without a link.
pub(crate) fn keys_changed() {
    KEY_EPOCH.fetch_add(1, SeqCst);
}

/// Peer-caused log lines: a burst of 10, then one per second.
const LOG_INTERVAL_NS: u64 = 1_000_000_000;
const LOG_BURST: u32 = 10;

/// Static configuration, written by user space.
pub(crate) struct Config {
    pub(crate) id: NodeId,
    pub(crate) listen: Option<SocketAddrV4>,
    pub(crate) secret: Option<Secret>,
}

/// Connection state of one peer, as shown in sysfs.
pub(crate) struct Link {
    pub(crate) addr: SocketAddrV4,
    pub(crate) state: LinkState,
    pub(crate) conn: Option<Arc<Conn>>,
    pub(crate) rtt_ns: u64,
    pub(crate) srtt_ns: u64,
    pub(crate) ups: u64,
    pub(crate) losses: u64,
    pub(crate) since_ns: u64,
    pub(crate) last_error: &'static str,
    /// The key this node shares with this peer alone (`key` in `peers`): its handshakes use
    /// it, never the cluster secret.
    pub(crate) key: Option<Secret>,
    /// The user and group ids its Stretch may name for a shell here with `shell_ids` caller
    /// (`ids` in `peers`; `None`: none, its shells run as nobody).
    pub(crate) ids: Option<(u32, u32)>,
}

/// A cluster member.
#[pin_data]
pub(crate) struct Peer {
    pub(crate) id: NodeId,
    #[pin]
    pub(crate) link: Mutex<Link>,
    /// Set when the peer is deleted; its threads notice and end.
    pub(crate) removed: AtomicBool,
    /// A dialer thread runs for this peer.
    pub(crate) dialing: AtomicBool,
    pub(crate) rx_frames: AtomicU64,
    pub(crate) tx_frames: AtomicU64,
    /// Stretch requests of this peer being served (each by its own thread; see stretch.rs).
    pub(crate) stretches: AtomicU32,
    /// Fetches of this peer relayed from a third node (each by its own thread; see pull.rs).
    pub(crate) relays: AtomicU32,
    /// Requests to this peer waiting for their reply.
    #[pin]
    pub(crate) pending: Pending,
    /// Whether it has room for our pushes (push.rs): a refusal for memory pauses them.
    #[pin]
    pub(crate) room: SpinLock<RoomPause>,
}

impl Peer {
    /// A peer at `addr`, not connected.
    pub(crate) fn new(id: NodeId, addr: SocketAddrV4) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                id,
                link <- new_mutex!(Link {
                    addr,
                    state: LinkState::Down,
                    conn: None,
                    rtt_ns: 0,
                    srtt_ns: 0,
                    ups: 0,
                    losses: 0,
                    since_ns: time::now_ns(),
                    last_error: "",
                    key: None,
                    ids: None,
                }, "Peer::link"),
                removed: AtomicBool::new(false),
                dialing: AtomicBool::new(false),
                rx_frames: AtomicU64::new(0),
                tx_frames: AtomicU64::new(0),
                stretches: AtomicU32::new(0),
                relays: AtomicU32::new(0),
                pending <- Pending::new(),
                room <- new_spinlock!(RoomPause::default(), "Peer::room"),
            }),
            GFP_KERNEL,
        )
    }

    /// Sends `m` on the current connection.
    pub(crate) fn send(&self, m: &Message<'_>) -> Result {
        self.send_tracked(m).map(|_| ())
    }

    /// Sends `m` on the current connection; returns its generation (`Link::ups` when it came
    /// up), by which requests sent on it fail when it ends (`Pending::fail_conn`).
    pub(crate) fn send_tracked(&self, m: &Message<'_>) -> Result<u64> {
        let (conn, gen) = {
            let l = self.link.lock();
            (l.conn.clone().ok_or(e(kernel::bindings::ENOTCONN))?, l.ups)
        };
        conn.send(m).map(|()| gen)
    }

    /// Whether a push may go to it now (it refused none for memory lately).
    pub(crate) fn has_room(&self) -> bool {
        self.room.lock().open(time::now_ns())
    }

    /// Whether a connection is up now.
    pub(crate) fn connected(&self) -> bool {
        self.link.lock().conn.is_some()
    }

    /// Records a state change that is not tied to a live connection.
    pub(crate) fn set_state(&self, state: LinkState, error: Option<&'static str>) {
        let mut l = self.link.lock();
        if l.state != state {
            l.since_ns = time::now_ns();
        }
        l.state = state;
        if let Some(e) = error {
            l.last_error = e;
        }
    }
}

/// The node.
#[pin_data]
pub(crate) struct Node {
    #[pin]
    pub(crate) cfg: Mutex<Config>,
    #[pin]
    pub(crate) peers: Mutex<KVec<Arc<Peer>>>,
    #[pin]
    log: SpinLock<RateLimit>,
    pub(crate) stats: Stats,
    /// Accepted connections still in their handshake, by source.
    #[pin]
    pub(crate) handshaking: Mutex<Slots>,
}

static NODE: Global<Node> = Global::new();

/// The node, once `init` ran.
pub(crate) fn get() -> Option<&'static Node> {
    NODE.get()
}

impl Node {
    /// Our node id (0 while unset).
    pub(crate) fn id(&self) -> NodeId {
        self.cfg.lock().id
    }

    /// The connected peer with the lowest id (where automatic stretches go).
    pub(crate) fn first_connected_peer(&self) -> Option<Arc<Peer>> {
        self.peers
            .lock()
            .iter()
            .filter(|p| p.link.lock().state == LinkState::Up)
            .min_by_key(|p| p.id)
            .cloned()
    }

    /// Tells the overcommit check how many nodes an elastic process here can reach (this
    /// one and the peers connected now): call with no link lock held.
    pub(crate) fn update_reach(&self) {
        crate::sys::mm::set_reach(1 + self.connected_count() as u32);
    }

    /// How many peers have their link up now.
    pub(crate) fn connected_count(&self) -> usize {
        self.peers
            .lock()
            .iter()
            .filter(|p| p.link.lock().state == LinkState::Up)
            .count()
    }

    /// The configured peer with this id.
    pub(crate) fn find_peer(&self, id: NodeId) -> Option<Arc<Peer>> {
        self.peers.lock().iter().find(|p| p.id == id).cloned()
    }

    /// The MAC a handshake with node `id` uses: keyed with the key of that pair if it has
    /// one (so only that node can pass for it), else with the cluster secret, unless
    /// [`REQUIRE_PAIR_KEYS`] is set. With neither (or an unknown node) a random key, which no
    /// peer holds: the handshake then fails the way it fails for any wrong key.
    pub(crate) fn mac_for(&self, id: NodeId) -> Result<HmacSha256> {
        let pair = self.find_peer(id).and_then(|p| p.link.lock().key.clone());
        if let Some(k) = pair {
            return HmacSha256::new(k.as_bytes());
        }
        let secret = self.cfg.lock().secret.clone();
        match secret {
            Some(_) if REQUIRE_PAIR_KEYS.load(core::sync::atomic::Ordering::Relaxed) => {
                // As `peer_warn!` (defined below): rate-limited, a peer may call for it.
                if self.log_allowed().is_some() {
                    pr_warn!(
                        "node {}: no pair key, and require_pair_keys is set: handshake refused\n",
                        id
                    );
                }
                HmacSha256::new(&crate::sys::crypto::random_bytes::<32>())
            }
            Some(s) => HmacSha256::new(s.as_bytes()),
            None => HmacSha256::new(&crate::sys::crypto::random_bytes::<32>()),
        }
    }

    /// Whether a log line caused by a peer may be printed now; also reports how many were
    /// suppressed before it.
    pub(crate) fn log_allowed(&self) -> Option<u64> {
        self.log.lock().allow(time::now_ns())
    }
}

impl Channel for Peer {
    fn pending(&self) -> &Pending {
        &self.pending
    }

    fn send(&self, m: &Message<'_>) -> Result<u64> {
        Peer::send_tracked(self, m)
    }
}

/// Logs a warning caused by a peer, rate-limited so a hostile peer cannot flood the log.
macro_rules! peer_warn {
    ($node:expr, $($arg:tt)*) => {
        if let Some(suppressed) = $node.log_allowed() {
            if suppressed > 0 {
                pr_warn!("{} similar messages suppressed\n", suppressed);
            }
            pr_warn!($($arg)*);
        }
    };
}
pub(crate) use peer_warn;

/// Creates the node. It is idle until user space configures it.
pub(crate) fn init() -> Result<&'static Node> {
    NODE.init(pin_init!(Node {
        cfg <- new_mutex!(Config { id: 0, listen: None, secret: None }, "Node::cfg"),
        peers <- new_mutex!(KVec::new(), "Node::peers"),
        log <- new_spinlock!(RateLimit::new(LOG_INTERVAL_NS, LOG_BURST), "Node::log"),
        stats: Stats::new(),
        handshaking <- new_mutex!(Slots::new(), "Node::handshaking"),
    }))
}
