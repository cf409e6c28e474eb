// SPDX-License-Identifier: GPL-2.0

//! This node: identity, cluster secret, peer table, counters, and their files in
//! /sys/kernel/elastic (see docs/ARCHITECTURE.md for the interface).
//!
//! Lock order: `cfg`, then `peers`, then a peer's `link`. No lock is held across network I/O.

use crate::fmtbuf::FmtBuf;
use crate::peer::{dials, parse_addr, parse_node_id, ConfigError, LinkState, PeerCmd, Secret};
use crate::proto::{caps, NodeId};
use crate::ratelimit::RateLimit;
use crate::stats::Stats;
use crate::sys::{crypto::HmacSha256, global, global::Global, sysfs, time};
use crate::process::Procs;
use crate::rpc::Pending;
use crate::shell::Shells;
use crate::transport::{self, Conn};
use core::fmt::Write;
use core::net::SocketAddrV4;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use kernel::{
    new_mutex, new_spinlock,
    prelude::*,
    sync::{Arc, Mutex, SpinLock},
};

/// Peer-caused log lines: a burst of 10, then one per second.
const LOG_INTERVAL_NS: u64 = 1_000_000_000;
const LOG_BURST: u32 = 10;

/// Static configuration, written by user space.
pub(crate) struct Config {
    pub(crate) id: NodeId,
    pub(crate) listen: Option<SocketAddrV4>,
    secret: Option<Secret>,
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
    /// Requests to this peer waiting for their reply.
    #[pin]
    pub(crate) pending: Pending,
}

impl Peer {
    fn new(id: NodeId, addr: SocketAddrV4) -> Result<Arc<Self>> {
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
                }),
                removed: AtomicBool::new(false),
                dialing: AtomicBool::new(false),
                rx_frames: AtomicU64::new(0),
                tx_frames: AtomicU64::new(0),
                pending <- Pending::new(),
            }),
            GFP_KERNEL,
        )
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
    cfg: Mutex<Config>,
    #[pin]
    peers: Mutex<KVec<Arc<Peer>>>,
    #[pin]
    log: SpinLock<RateLimit>,
    pub(crate) stats: Stats,
    /// Accepted connections still in their handshake.
    pub(crate) handshaking: AtomicU32,
    /// Processes of this node that are stretched (home side).
    #[pin]
    pub(crate) procs: Procs,
    /// Shells this node holds for other nodes' processes.
    #[pin]
    pub(crate) shells: Shells,
    /// Jump policy settings and log.
    #[pin]
    pub(crate) jumps: crate::jump::Jumps,
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

    /// The configured peer with this id.
    pub(crate) fn find_peer(&self, id: NodeId) -> Option<Arc<Peer>> {
        self.peers.lock().iter().find(|p| p.id == id).cloned()
    }

    /// A MAC keyed with the current cluster secret (a fresh transform per handshake, so a
    /// secret change applies to the next handshake without locking).
    pub(crate) fn mac(&self) -> Result<HmacSha256> {
        let secret = self.cfg.lock().secret.ok_or(Error::from_errno(-(kernel::bindings::ENOKEY as i32)))?;
        HmacSha256::new(secret.as_bytes())
    }

    /// Whether a log line caused by a peer may be printed now; also reports how many were
    /// suppressed before it.
    pub(crate) fn log_allowed(&self) -> Option<u64> {
        self.log.lock().allow(time::now_ns())
    }

    /// One line about process `pid` (home side or shell), for `/proc/<pid>/elastic`.
    pub(crate) fn write_proc(&self, pid: i32, w: &mut impl Write) -> core::fmt::Result {
        if let Some(p) = self.procs.by_pid(pid) {
            return p.write_to(w);
        }
        self.shells.write_pid(pid, w)
    }

    fn start_dialers(&'static self, local: NodeId) {
        let peers = self.peers.lock();
        for p in peers.iter() {
            if dials(local, p.id) {
                transport::start_dialer(self, p.clone());
            }
        }
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

fn config_err(e: ConfigError) -> Error {
    pr_info!("rejected configuration: {}\n", e);
    EINVAL
}

fn with_node(f: impl FnOnce(&'static Node) -> Result) -> Result {
    f(get().ok_or(ENODEV)?)
}

fn show_with(w: &mut FmtBuf<'_>, f: impl FnOnce(&'static Node, &mut FmtBuf<'_>) -> core::fmt::Result) {
    if let Some(n) = get() {
        // A full page cuts the output short; that is all an error here can mean.
        let _ = f(n, w);
    }
}

fn node_id_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| writeln!(w, "{}", n.id()));
}

fn node_id_store(s: &str) -> Result {
    let id = parse_node_id(s).map_err(config_err)?;
    with_node(|n| {
        let mut cfg = n.cfg.lock();
        if cfg.listen.is_some() && cfg.id != id {
            return Err(EBUSY);
        }
        cfg.id = id;
        Ok(())
    })
}

fn listen_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| match n.cfg.lock().listen {
        Some(a) => writeln!(w, "{a}"),
        None => Ok(()),
    });
}

/// Writing the listen address brings the node up: it needs the id and the secret first.
fn listen_store(s: &str) -> Result {
    let addr = parse_addr(s).map_err(config_err)?;
    with_node(|n| {
        let local = {
            let mut cfg = n.cfg.lock();
            if cfg.listen.is_some() {
                return Err(EBUSY);
            }
            if cfg.id == 0 || cfg.secret.is_none() {
                pr_info!("set node_id and secret before listen\n");
                return Err(EINVAL);
            }
            transport::listen(n, addr)?;
            cfg.listen = Some(addr);
            cfg.id
        };
        pr_info!("node {} listening on {}\n", local, addr);
        n.start_dialers(local);
        Ok(())
    })
}

fn secret_store(s: &str) -> Result {
    let secret = Secret::parse_hex(s).map_err(config_err)?;
    // Fail now, not at the first handshake, if the kernel lacks hmac(sha256).
    HmacSha256::new(secret.as_bytes())?;
    with_node(|n| {
        n.cfg.lock().secret = Some(secret);
        Ok(())
    })
}

fn peers_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| {
        let now = time::now_ns();
        for p in n.peers.lock().iter() {
            let l = p.link.lock();
            writeln!(
                w,
                "{} {} {} since_ms={} rtt_us={} srtt_us={} ups={} losses={} rx_frames={} tx_frames={} last_error={}",
                p.id,
                l.addr,
                l.state.name(),
                now.saturating_sub(l.since_ns) / 1_000_000,
                l.rtt_ns / 1000,
                l.srtt_ns / 1000,
                l.ups,
                l.losses,
                p.rx_frames.load(Relaxed),
                p.tx_frames.load(Relaxed),
                if l.last_error.is_empty() { "-" } else { l.last_error },
            )?;
        }
        Ok(())
    });
}

fn peers_store(s: &str) -> Result {
    let cmd = PeerCmd::parse(s).map_err(config_err)?;
    with_node(|n| {
        let local = n.cfg.lock().id;
        let mut peers = n.peers.lock();
        match cmd {
            PeerCmd::Add(id, addr) => {
                if id == local {
                    return Err(EINVAL);
                }
                if let Some(p) = peers.iter().find(|p| p.id == id) {
                    p.link.lock().addr = addr;
                    return Ok(());
                }
                let p = Peer::new(id, addr)?;
                peers.push(p.clone(), GFP_KERNEL)?;
                drop(peers);
                if local != 0 && n.cfg.lock().listen.is_some() && dials(local, id) {
                    transport::start_dialer(n, p);
                }
                Ok(())
            }
            PeerCmd::Del(id) => {
                let p = peers.iter().find(|p| p.id == id).cloned().ok_or(ENOENT)?;
                crate::kvec::retain(&mut peers, |q| q.id != id)?;
                drop(peers);
                p.removed.store(true, Relaxed);
                if let Some(c) = p.link.lock().conn.take() {
                    c.close();
                }
                Ok(())
            }
        }
    })
}

fn stats_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| {
        n.stats.write_to(w)?;
        writeln!(w, "handshaking {}", n.handshaking.load(Relaxed))
    });
}

fn info_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| {
        let cfg = n.cfg.lock();
        writeln!(w, "node_id {}", cfg.id)?;
        writeln!(w, "protocol {}", crate::proto::VERSION)?;
        writeln!(w, "caps {:#x}", caps::ALL)?;
        writeln!(w, "secret {}", if cfg.secret.is_some() { "set" } else { "unset" })?;
        let up = n.peers.lock().iter().filter(|p| p.link.lock().state == LinkState::Up).count();
        writeln!(w, "peers_connected {up}")?;
        writeln!(w, "shells {}", n.shells.count())
    });
}

fn procs_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| {
        n.procs.write_to(w)?;
        n.shells.write_to(w)
    });
}

fn prefetch_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| writeln!(w, "{}", n.procs.prefetch.load(Relaxed)));
}

fn prefetch_store(s: &str) -> Result {
    let v: u64 = s.trim().parse().map_err(|_| EINVAL)?;
    if v == 0 || v > crate::proto::MAX_BATCH as u64 {
        return Err(EINVAL);
    }
    with_node(|n| {
        n.procs.prefetch.store(v, Relaxed);
        Ok(())
    })
}

fn jump_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| n.jumps.write_tunables(w));
}

fn jump_store(s: &str) -> Result {
    with_node(|n| n.jumps.set_tunables(s))
}

fn jumplog_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| n.jumps.write_log(w));
}

static ATTRS: [sysfs::Attr; 10] = [
    sysfs::Attr {
        name: c"jump",
        mode: 0o644,
        show: Some(jump_show),
        store: Some(jump_store),
    },
    sysfs::Attr {
        name: c"jumplog",
        mode: 0o444,
        show: Some(jumplog_show),
        store: None,
    },
    sysfs::Attr {
        name: c"procs",
        mode: 0o444,
        show: Some(procs_show),
        store: None,
    },
    sysfs::Attr {
        name: c"prefetch",
        mode: 0o644,
        show: Some(prefetch_show),
        store: Some(prefetch_store),
    },
    sysfs::Attr {
        name: c"node_id",
        mode: 0o644,
        show: Some(node_id_show),
        store: Some(node_id_store),
    },
    sysfs::Attr {
        name: c"listen",
        mode: 0o644,
        show: Some(listen_show),
        store: Some(listen_store),
    },
    sysfs::Attr {
        name: c"secret",
        mode: 0o200,
        show: None,
        store: Some(secret_store),
    },
    sysfs::Attr {
        name: c"peers",
        mode: 0o644,
        show: Some(peers_show),
        store: Some(peers_store),
    },
    sysfs::Attr {
        name: c"stats",
        mode: 0o444,
        show: Some(stats_show),
        store: None,
    },
    sysfs::Attr {
        name: c"info",
        mode: 0o444,
        show: Some(info_show),
        store: None,
    },
];

/// Creates the node and its sysfs directory. The node is idle until user space configures it.
pub(crate) fn init() -> Result {
    let node = KBox::pin_init(
        pin_init!(Node {
            cfg <- new_mutex!(Config { id: 0, listen: None, secret: None }),
            peers <- new_mutex!(KVec::new()),
            log <- new_spinlock!(RateLimit::new(LOG_INTERVAL_NS, LOG_BURST)),
            stats: Stats::new(),
            handshaking: AtomicU32::new(0),
            procs <- Procs::new(),
            shells <- Shells::new(),
            jumps <- crate::jump::Jumps::new(),
        }),
        GFP_KERNEL,
    )?;
    let node = global::leak_pinned(node);
    NODE.set(node);
    crate::process::start(node)?;
    sysfs::create(c"elastic", &ATTRS)
}
