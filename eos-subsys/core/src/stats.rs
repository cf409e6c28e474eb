//! Node-wide counters, readable by user space as `name value` lines.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counters of one node. Each only ever increases.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Stats {
            /// All counters at zero.
            pub const fn new() -> Self {
                Self { $($name: AtomicU64::new(0),)* }
            }

            /// Writes one `name value` line per counter.
            pub fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
                $(writeln!(w, "{} {}", stringify!($name), self.$name.load(Relaxed))?;)*
                Ok(())
            }
        }
    };
}

counters! {
    /// Connections accepted on the listening socket.
    accepted,
    /// Outgoing connection attempts.
    dials,
    /// Handshakes completed (either side).
    handshakes_ok,
    /// Handshakes refused: wrong key, unknown node, bad version, unexpected message.
    handshakes_failed,
    /// Handshakes abandoned because the peer went silent.
    handshake_timeouts,
    /// Connections refused because too many handshakes were already in progress.
    busy_refusals,
    /// Frames received that failed validation (bad magic, version, type, length, field).
    rx_bad_frames,
    /// Well-formed messages that were not valid in the connection's state.
    rx_unexpected,
    /// Valid frames received.
    rx_frames,
    /// Frames sent.
    tx_frames,
    /// Bytes received.
    rx_bytes,
    /// Bytes sent.
    tx_bytes,
    /// Established connections lost (heartbeat timeout, reset, error).
    links_lost,
    /// Established connections replaced by a newer authenticated one from the same node.
    links_replaced,
}

impl Stats {
    /// Adds one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_counter() {
        let s = Stats::new();
        Stats::inc(&s.rx_bad_frames);
        Stats::add(&s.rx_bytes, 10);
        let mut out = std::string::String::new();
        s.write_to(&mut out).unwrap();
        assert!(out.contains("rx_bad_frames 1\n"));
        assert!(out.contains("rx_bytes 10\n"));
        assert_eq!(out.lines().count(), 14);
    }
}
