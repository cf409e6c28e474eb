//! Peer configuration and connection liveness, independent of sockets and clocks.
//!
//! The kernel feeds these with `ktime` nanoseconds; tests feed them made-up times.

use crate::proto::{check_node, NodeId};
use core::fmt;
use core::net::SocketAddrV4;

/// Interval between pings on an idle connection.
pub const PING_INTERVAL_NS: u64 = 1_000_000_000;
/// A connection that received nothing for this long is declared dead.
pub const DEAD_AFTER_NS: u64 = 5_000_000_000;
/// A handshake that has not completed within this time is abandoned.
pub const HANDSHAKE_TIMEOUT_NS: u64 = 5_000_000_000;
/// First and largest delay between reconnection attempts.
pub const BACKOFF_MIN_MS: u32 = 200;
/// See [`BACKOFF_MIN_MS`].
pub const BACKOFF_MAX_MS: u32 = 3_000;

/// A configuration request that could not be understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// Not one of the known commands.
    UnknownCommand,
    /// A node id that is missing, not a number or out of range.
    BadNodeId,
    /// An address that is not `a.b.c.d:port` with a non-zero port.
    BadAddress,
    /// Extra words after the command.
    TrailingInput,
    /// A secret that is not 32 to 128 hex digits (16 to 64 bytes).
    BadSecret,
    /// An id range that is not `lo-hi` within the regular users' ids.
    BadIds,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownCommand => {
                "expected 'add <id> <ipv4:port>', 'del <id>', 'key <id> <hex>|none' or 'ids <id> <lo>-<hi>|none'"
            }
            Self::BadNodeId => "node id must be 1..=1023",
            Self::BadAddress => "address must be <ipv4>:<port>",
            Self::TrailingInput => "unexpected trailing input",
            Self::BadSecret => "secret must be 32 to 128 hex digits",
            Self::BadIds => "ids must be <lo>-<hi> within 1000-60000",
        })
    }
}

/// Parses a node id as written by a user (decimal, surrounding whitespace allowed).
pub fn parse_node_id(s: &str) -> Result<NodeId, ConfigError> {
    let id: NodeId = s.trim().parse().map_err(|_| ConfigError::BadNodeId)?;
    check_node(id).map_err(|_| ConfigError::BadNodeId)
}

/// Parses `a.b.c.d:port`; port 0 is refused.
pub fn parse_addr(s: &str) -> Result<SocketAddrV4, ConfigError> {
    let a: SocketAddrV4 = s.trim().parse().map_err(|_| ConfigError::BadAddress)?;
    if a.port() == 0 {
        return Err(ConfigError::BadAddress);
    }
    Ok(a)
}

/// Longest cluster secret, in bytes.
pub const SECRET_MAX: usize = 64;
/// Shortest cluster secret, in bytes.
pub const SECRET_MIN: usize = 16;

/// The cluster secret (or a pair's key) as raw bytes. Not `Copy`: each copy is a value of its
/// own, wiped when dropped ([`wipe`]).
#[derive(Clone)]
pub struct Secret {
    bytes: [u8; SECRET_MAX],
    len: usize,
}

impl Secret {
    /// Parses hex text (surrounding whitespace allowed) of 16 to 64 bytes.
    pub fn parse_hex(s: &str) -> Result<Self, ConfigError> {
        let h = s.trim().as_bytes();
        if h.len() & 1 != 0 || h.len() < 2 * SECRET_MIN || h.len() > 2 * SECRET_MAX {
            return Err(ConfigError::BadSecret);
        }
        let mut bytes = [0u8; SECRET_MAX];
        for (i, pair) in h.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char)
                .to_digit(16)
                .ok_or(ConfigError::BadSecret)?;
            let lo = (pair[1] as char)
                .to_digit(16)
                .ok_or(ConfigError::BadSecret)?;
            bytes[i] = (hi * 16 + lo) as u8;
        }
        Ok(Self {
            bytes,
            len: h.len() / 2,
        })
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

/// Overwrites key material with zeroes before its memory is reused. `black_box` keeps the
/// compiler from dropping the stores as dead (as the kernel's `memzero_explicit` does with a
/// barrier); copies a move left behind on the stack are not reached.
pub fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    core::hint::black_box(bytes);
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// Equal keys (for configuration checks and tests; handshakes compare MACs in constant time).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Secret {}

/// A write to the `peers` control file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCmd {
    /// Add a cluster member (or change its address).
    Add(NodeId, SocketAddrV4),
    /// Remove a cluster member and close its connection.
    Del(NodeId),
    /// Set (or rotate) the key this node shares with that member alone: its handshakes use it
    /// instead of the cluster secret, so no other member can pass for it. `None` (`none`):
    /// back to the cluster secret.
    Key(NodeId, Option<Secret>),
    /// The user and group ids that member's Stretch may name for its shells here when
    /// `shell_ids` is `caller` (`ids <id> <lo>-<hi>|none`): an explicit allowlist per peer,
    /// within the regular users' range (`policy::CALLER_IDS`). `None`: nobody's (the default).
    Ids(NodeId, Option<(u32, u32)>),
}

impl PeerCmd {
    /// Parses `add <id> <ipv4:port>`, `del <id>`, `key <id> <hex>|none` or
    /// `ids <id> <lo>-<hi>|none`.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let mut w = s.split_ascii_whitespace();
        let cmd = match (w.next(), w.next()) {
            (Some("add"), Some(id)) => {
                let id = parse_node_id(id)?;
                let addr = parse_addr(w.next().ok_or(ConfigError::BadAddress)?)?;
                Self::Add(id, addr)
            }
            (Some("del"), Some(id)) => Self::Del(parse_node_id(id)?),
            (Some("key"), Some(id)) => {
                let id = parse_node_id(id)?;
                match w.next().ok_or(ConfigError::BadSecret)? {
                    "none" => Self::Key(id, None),
                    hex => Self::Key(id, Some(Secret::parse_hex(hex)?)),
                }
            }
            (Some("ids"), Some(id)) => {
                let id = parse_node_id(id)?;
                match w.next().ok_or(ConfigError::BadIds)? {
                    "none" => Self::Ids(id, None),
                    r => Self::Ids(id, Some(parse_id_range(r)?)),
                }
            }
            (Some("add" | "del" | "key" | "ids"), None) => return Err(ConfigError::BadNodeId),
            _ => return Err(ConfigError::UnknownCommand),
        };
        if w.next().is_some() {
            return Err(ConfigError::TrailingInput);
        }
        Ok(cmd)
    }
}

/// `lo-hi` (or one id): a range of regular users' ids ([`crate::policy::CALLER_IDS`]), `lo <= hi`.
fn parse_id_range(r: &str) -> Result<(u32, u32), ConfigError> {
    let (lo, hi) = r.split_once('-').unwrap_or((r, r));
    let lo: u32 = lo.parse().map_err(|_| ConfigError::BadIds)?;
    let hi: u32 = hi.parse().map_err(|_| ConfigError::BadIds)?;
    let ok = crate::policy::CALLER_IDS;
    if lo > hi || !ok.contains(&lo) || !ok.contains(&hi) {
        return Err(ConfigError::BadIds);
    }
    Ok((lo, hi))
}

/// Accepted connections allowed in their handshake at once; more are closed at once.
pub const MAX_HANDSHAKING: usize = 8;
/// Of those, how many one source address may hold: a flood from one source cannot take every
/// slot and keep a real peer from reconnecting.
pub const MAX_HANDSHAKING_PER_SOURCE: u8 = 2;

/// Why an accepted connection got no handshake slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    /// Every slot is taken.
    Full,
    /// Its source holds its share already.
    SourceBusy,
}

/// Configured peer addresses with handshake slots of their own at once (beyond
/// [`MAX_HANDSHAKING`]): a flood from other addresses, however many, cannot keep a configured
/// peer from reconnecting.
pub const MAX_PEER_SOURCES: usize = 16;

/// The handshake slots of the listener, by source address.
#[derive(Debug, Default, Clone)]
pub struct Slots {
    /// (source, connections in their handshake); a count of 0 is a free entry. Any source.
    held: [(u32, u8); MAX_HANDSHAKING],
    /// The same, for the addresses of configured peers only.
    peers: [(u32, u8); MAX_PEER_SOURCES],
}

/// Takes one of `table`'s slots for `src`: at most [`MAX_HANDSHAKING_PER_SOURCE`] each,
/// `total` in all.
fn take_in(table: &mut [(u32, u8)], src: u32, total: usize) -> Result<(), SlotRefusal> {
    if table.iter().map(|e| e.1 as usize).sum::<usize>() >= total {
        return Err(SlotRefusal::Full);
    }
    if let Some(e) = table.iter_mut().find(|e| e.1 > 0 && e.0 == src) {
        if e.1 >= MAX_HANDSHAKING_PER_SOURCE {
            return Err(SlotRefusal::SourceBusy);
        }
        e.1 += 1;
        return Ok(());
    }
    let e = table
        .iter_mut()
        .find(|e| e.1 == 0)
        .ok_or(SlotRefusal::Full)?;
    *e = (src, 1);
    Ok(())
}

/// Gives back one of `table`'s slots of `src`; false if it holds none.
fn give_back_in(table: &mut [(u32, u8)], src: u32) -> bool {
    match table.iter_mut().find(|e| e.1 > 0 && e.0 == src) {
        Some(e) => {
            e.1 -= 1;
            true
        }
        None => false,
    }
}

impl Slots {
    /// No slot taken.
    pub const fn new() -> Self {
        Self {
            held: [(0, 0); MAX_HANDSHAKING],
            peers: [(0, 0); MAX_PEER_SOURCES],
        }
    }

    /// Takes a slot for a connection from `src` (an IPv4 address); `peer`: `src` is the
    /// address of a configured peer, which then takes one of the peers' own slots first.
    pub fn take(&mut self, src: u32, peer: bool) -> Result<(), SlotRefusal> {
        if peer && take_in(&mut self.peers, src, MAX_PEER_SOURCES).is_ok() {
            return Ok(());
        }
        take_in(&mut self.held, src, MAX_HANDSHAKING)
    }

    /// Gives back a slot `take` gave for `src`.
    pub fn give_back(&mut self, src: u32) {
        if !give_back_in(&mut self.peers, src) {
            give_back_in(&mut self.held, src);
        }
    }

    /// Connections in their handshake.
    pub fn in_use(&self) -> usize {
        self.held
            .iter()
            .chain(self.peers.iter())
            .map(|e| e.1 as usize)
            .sum()
    }
}

/// Which side opens the TCP connection between two nodes: the lower id dials, the higher id
/// accepts. One rule on both sides means exactly one connection per pair, with no races.
pub fn dials(local: NodeId, peer: NodeId) -> bool {
    local < peer
}

/// Connection state shown to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected; the dialling side is waiting to retry.
    Down,
    /// TCP connect or handshake in progress.
    Connecting,
    /// Authenticated and alive.
    Up,
}

impl LinkState {
    /// Name shown in sysfs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Down => "down",
            Self::Connecting => "connecting",
            Self::Up => "connected",
        }
    }
}

/// What the session loop must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Nothing is due.
    Idle,
    /// Send a ping.
    Ping,
    /// Nothing arrived for [`DEAD_AFTER_NS`]: drop the connection.
    Dead,
}

/// Ping scheduling and death detection for one connection.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    last_rx: u64,
    last_ping: u64,
    /// Last measured round-trip time in ns (0 until the first pong).
    pub rtt_ns: u64,
    /// Smoothed round-trip time in ns (EWMA, 1/8 weight as TCP's SRTT).
    pub srtt_ns: u64,
}

impl Liveness {
    /// A connection that came up at `now`.
    pub fn new(now: u64) -> Self {
        Self {
            last_rx: now,
            last_ping: now,
            rtt_ns: 0,
            srtt_ns: 0,
        }
    }

    /// Any valid frame arrived.
    pub fn on_rx(&mut self, now: u64) {
        self.last_rx = now;
    }

    /// A pong echoing `sent` arrived. Echoes from the future are ignored (a peer can send any
    /// value).
    pub fn on_pong(&mut self, now: u64, sent: u64) {
        if sent > now || sent < self.last_rx.saturating_sub(DEAD_AFTER_NS * 2) {
            return;
        }
        let rtt = now - sent;
        self.rtt_ns = rtt;
        self.srtt_ns = if self.srtt_ns == 0 {
            rtt
        } else {
            self.srtt_ns - self.srtt_ns / 8 + rtt / 8
        };
    }

    /// Decides what is due at `now`; `Ping` also records that the ping is being sent.
    pub fn tick(&mut self, now: u64) -> Tick {
        if now.saturating_sub(self.last_rx) >= DEAD_AFTER_NS {
            Tick::Dead
        } else if now.saturating_sub(self.last_ping) >= PING_INTERVAL_NS {
            self.last_ping = now;
            Tick::Ping
        } else {
            Tick::Idle
        }
    }
}

/// Exponential reconnection delay, reset by a successful connection.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    next_ms: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next_ms: BACKOFF_MIN_MS,
        }
    }
}

impl Backoff {
    /// The delay before the next attempt; doubles up to [`BACKOFF_MAX_MS`].
    pub fn next_delay_ms(&mut self) -> u32 {
        let d = self.next_ms;
        self.next_ms = (self.next_ms * 2).min(BACKOFF_MAX_MS);
        d
    }

    /// Call after a connection came up.
    pub fn reset(&mut self) {
        self.next_ms = BACKOFF_MIN_MS;
    }
}

/// First pause of pushes to a member that refused one for want of memory.
pub const ROOM_PAUSE_MIN_MS: u32 = 50;
/// See [`ROOM_PAUSE_MIN_MS`].
pub const ROOM_PAUSE_MAX_MS: u32 = 2_000;

/// Whether a member has room for our pushes. A member that refused a batch for want of
/// memory (its memory cgroup for our shells full, or the node short) gets none for a pause:
/// asking again at once would only cost it failing charges and us a round trip each. The
/// pause doubles while the refusals go on and ends with the first batch it takes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoomPause {
    until_ns: u64,
    next_ms: u32,
    /// Refusals for memory so far.
    pub refusals: u64,
}

impl RoomPause {
    /// The member refused a batch (or took only its first pages) for want of memory at
    /// `now_ns`: no push to it for the next pause.
    pub fn refused(&mut self, now_ns: u64) {
        let ms = self.next_ms.clamp(ROOM_PAUSE_MIN_MS, ROOM_PAUSE_MAX_MS);
        self.until_ns = now_ns.saturating_add(u64::from(ms) * 1_000_000);
        self.next_ms = ms.saturating_mul(2).min(ROOM_PAUSE_MAX_MS);
        self.refusals += 1;
    }

    /// The member took a whole batch: it has room again.
    pub fn took(&mut self) {
        self.until_ns = 0;
        self.next_ms = 0;
    }

    /// Whether a push may go to the member at `now_ns`.
    pub fn open(&self, now_ns: u64) -> bool {
        now_ns >= self.until_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_pause_doubles_while_refused_and_ends_when_taken() {
        let mut r = RoomPause::default();
        assert!(r.open(0));
        r.refused(1_000);
        assert!(!r.open(1_000));
        assert!(r.open(1_000 + 50_000_000));
        let mut now = 1_000 + 50_000_000;
        r.refused(now);
        assert!(!r.open(now + 99_999_999));
        assert!(r.open(now + 100_000_000));
        for _ in 0..20 {
            now += 1;
            r.refused(now);
        }
        assert!(!r.open(now + u64::from(ROOM_PAUSE_MAX_MS) * 1_000_000 - 1));
        assert!(r.open(now + u64::from(ROOM_PAUSE_MAX_MS) * 1_000_000));
        assert_eq!(r.refusals, 22);
        r.took();
        assert!(r.open(now));
        r.refused(now);
        assert!(r.open(now + u64::from(ROOM_PAUSE_MIN_MS) * 1_000_000));
        // A clock near its end saturates rather than wraps into "open".
        r.refused(u64::MAX - 5);
        assert!(!r.open(u64::MAX - 1));
    }

    #[test]
    fn key_material_is_wiped() {
        let mut k = [0xa5u8; 64];
        wipe(&mut k);
        assert_eq!(k, [0; 64]);
        // A secret's copy is a value of its own: dropping it leaves the original whole.
        let s = Secret::parse_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        let copy = s.clone();
        drop(copy);
        assert_eq!(s.as_bytes()[15], 0x0f);
    }
    use core::net::Ipv4Addr;
    use std::format;

    /// Four flooding addresses (two slots each) fill every general slot; a configured peer's
    /// address still gets a slot of its own (issue 27 item 7: before, it could not relink).
    #[test]
    fn configured_peers_have_slots_a_flood_cannot_take() {
        let mut s = Slots::new();
        for flood in 1..=4u32 {
            assert_eq!(s.take(flood, false), Ok(()));
            assert_eq!(s.take(flood, false), Ok(()));
        }
        assert_eq!(s.take(5, false), Err(SlotRefusal::Full));
        let peer = 0x0a00_020b;
        assert_eq!(
            s.take(peer, true),
            Ok(()),
            "a configured peer still gets a slot"
        );
        assert_eq!(s.take(peer, true), Ok(()));
        // Its own share holds there too; past it, the general slots (all full here).
        assert_eq!(s.take(peer, true), Err(SlotRefusal::Full));
        // A flood claiming to be a peer (it is not configured) is not let in.
        assert_eq!(s.take(6, false), Err(SlotRefusal::Full));
        s.give_back(peer);
        s.give_back(peer);
        for flood in 1..=4u32 {
            s.give_back(flood);
            s.give_back(flood);
        }
        assert_eq!(s.in_use(), 0);
    }

    #[test]
    fn one_source_holds_its_share_of_the_handshake_slots_only() {
        let mut s = Slots::new();
        let (flood, peer) = (0x0a00_0263, 0x0a00_020b);
        assert_eq!(s.take(flood, false), Ok(()));
        assert_eq!(s.take(flood, false), Ok(()));
        for _ in 0..10 {
            assert_eq!(s.take(flood, false), Err(SlotRefusal::SourceBusy));
        }
        assert_eq!(s.take(peer, false), Ok(()), "a real peer still gets a slot");
        // Other sources fill the rest; then everything is full.
        for src in 1..=5 {
            assert_eq!(s.take(src, false), Ok(()));
        }
        assert_eq!(s.in_use(), MAX_HANDSHAKING);
        assert_eq!(s.take(99, false), Err(SlotRefusal::Full));
        s.give_back(flood);
        assert_eq!(s.take(99, false), Ok(()));
        // Giving back what was never taken changes nothing.
        s.give_back(12345);
        assert_eq!(s.in_use(), MAX_HANDSHAKING);
        for src in [flood, peer, 1, 2, 3, 4, 5, 99] {
            s.give_back(src);
        }
        assert_eq!(s.in_use(), 0);
    }

    #[test]
    fn peer_commands() {
        assert_eq!(
            PeerCmd::parse("add 2 10.0.2.16:7077\n"),
            Ok(PeerCmd::Add(
                2,
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 16), 7077)
            ))
        );
        assert_eq!(PeerCmd::parse("  del   9 "), Ok(PeerCmd::Del(9)));
        assert_eq!(
            PeerCmd::parse("add 0 1.2.3.4:5"),
            Err(ConfigError::BadNodeId)
        );
        assert_eq!(
            PeerCmd::parse("add 1024 1.2.3.4:5"),
            Err(ConfigError::BadNodeId)
        );
        assert_eq!(
            PeerCmd::parse("add 2 1.2.3.4:0"),
            Err(ConfigError::BadAddress)
        );
        assert_eq!(
            PeerCmd::parse("add 2 1.2.3:80"),
            Err(ConfigError::BadAddress)
        );
        assert_eq!(PeerCmd::parse("add 2"), Err(ConfigError::BadAddress));
        assert_eq!(PeerCmd::parse("del"), Err(ConfigError::BadNodeId));
        assert_eq!(PeerCmd::parse("del 2 x"), Err(ConfigError::TrailingInput));
        assert_eq!(PeerCmd::parse(""), Err(ConfigError::UnknownCommand));
        assert_eq!(PeerCmd::parse("rm 2"), Err(ConfigError::UnknownCommand));
        let k = "00112233445566778899aabbccddeeff";
        assert_eq!(
            PeerCmd::parse(&format!("key 3 {k}")),
            Ok(PeerCmd::Key(3, Some(Secret::parse_hex(k).unwrap())))
        );
        assert_eq!(PeerCmd::parse("key 3 none"), Ok(PeerCmd::Key(3, None)));
        assert_eq!(
            PeerCmd::parse("ids 3 1000-1999"),
            Ok(PeerCmd::Ids(3, Some((1000, 1999))))
        );
        assert_eq!(
            PeerCmd::parse("ids 3 1001"),
            Ok(PeerCmd::Ids(3, Some((1001, 1001))))
        );
        assert_eq!(PeerCmd::parse("ids 3 none"), Ok(PeerCmd::Ids(3, None)));
        // root, system ids, nobody's and reversed ranges are never allowed
        for bad in [
            "0-1000",
            "42",
            "1000-65534",
            "2000-1000",
            "x",
            "1000-",
            "-5",
        ] {
            assert_eq!(
                PeerCmd::parse(&format!("ids 3 {bad}")),
                Err(ConfigError::BadIds),
                "{bad}"
            );
        }
        assert_eq!(PeerCmd::parse("ids 3"), Err(ConfigError::BadIds));
        assert_eq!(PeerCmd::parse("key 3"), Err(ConfigError::BadSecret));
        assert_eq!(PeerCmd::parse("key 3 abc"), Err(ConfigError::BadSecret));
        assert_eq!(
            PeerCmd::parse(&format!("key 3 {k} x")),
            Err(ConfigError::TrailingInput)
        );
    }

    #[test]
    fn secrets() {
        let s = Secret::parse_hex("00112233445566778899aabbccddeeFF\n").unwrap();
        assert_eq!(s.as_bytes().len(), 16);
        assert_eq!(s.as_bytes()[15], 0xff);
        assert_eq!(std::format!("{s:?}"), "Secret(16 bytes)");
        assert!(Secret::parse_hex("0011").is_err());
        assert!(Secret::parse_hex(&"a".repeat(33)).is_err());
        assert!(Secret::parse_hex(&"g".repeat(32)).is_err());
        assert!(Secret::parse_hex(&"a".repeat(130)).is_err());
        assert_eq!(
            Secret::parse_hex(&"a".repeat(128))
                .unwrap()
                .as_bytes()
                .len(),
            64
        );
    }

    #[test]
    fn exactly_one_side_dials() {
        for a in 1..20 {
            for b in 1..20 {
                if a != b {
                    assert_ne!(dials(a, b), dials(b, a));
                }
            }
        }
    }

    #[test]
    fn liveness_pings_then_declares_death() {
        let s = 1_000_000_000u64;
        let mut l = Liveness::new(0);
        assert_eq!(l.tick(s / 2), Tick::Idle);
        assert_eq!(l.tick(s), Tick::Ping);
        assert_eq!(l.tick(s + 1), Tick::Idle);
        l.on_rx(3 * s);
        assert_eq!(l.tick(7 * s), Tick::Ping);
        assert_eq!(l.tick(8 * s - 1), Tick::Idle);
        assert_eq!(l.tick(8 * s), Tick::Dead);
    }

    #[test]
    fn rtt_ignores_echoes_from_the_future() {
        let mut l = Liveness::new(0);
        l.on_pong(1000, 5000);
        assert_eq!(l.rtt_ns, 0);
        l.on_pong(3000, 1000);
        assert_eq!((l.rtt_ns, l.srtt_ns), (2000, 2000));
        l.on_pong(5000, 4000);
        assert_eq!(l.rtt_ns, 1000);
        assert_eq!(l.srtt_ns, 2000 - 250 + 125);
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let mut b = Backoff::default();
        let d: std::vec::Vec<u32> = (0..6).map(|_| b.next_delay_ms()).collect();
        assert_eq!(d, [200, 400, 800, 1600, 3000, 3000]);
        b.reset();
        assert_eq!(b.next_delay_ms(), 200);
    }
}
