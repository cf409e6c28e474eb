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
    /// Frames that failed authentication on a sealed link (replayed, reordered, altered,
    /// injected, or under another key): each closes the link.
    rx_forged,
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
    /// Home file mappings a shell here mapped too (an identical file was here).
    shell_files_mapped,
    /// Home file mappings a shell here left out (no identical file, or no permission).
    shell_files_missing,
    /// Jumps not made because the process had more mappings than a jump carries.
    jumps_too_many_maps,
    /// Syscalls (and vsyscalls) entered by a shell's task whose shell was no longer
    /// registered (released, its home lost): refused and the task killed, never run here.
    guest_orphan_entries,
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
        assert_eq!(out.lines().count(), 19);
    }
}

/// Latency histogram with quarter-octave buckets (about 19% resolution) from 1 µs to ~1 h:
/// lock-free to record, good enough for p50/p99 of remote faults.
#[derive(Debug)]
pub struct LatencyHist {
    buckets: [AtomicU64; 128],
}

impl Default for LatencyHist {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHist {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; 128],
        }
    }

    fn bucket(us: u64) -> usize {
        if us < 4 {
            return us as usize;
        }
        let log2 = 63 - us.leading_zeros() as usize;
        // the two bits below the leading one select the quarter octave
        let frac = ((us >> (log2 - 2)) & 3) as usize;
        (log2 * 4 + frac).min(127)
    }

    /// Largest value (µs) that falls into bucket `b`.
    fn upper(b: usize) -> u64 {
        if b < 4 {
            return b as u64;
        }
        let (log2, frac) = (b / 4, (b % 4) as u64);
        ((5 + frac) << (log2 - 2)) - 1
    }

    /// Records one sample in nanoseconds.
    pub fn record_ns(&self, ns: u64) {
        self.buckets[Self::bucket(ns / 1000)].fetch_add(1, Relaxed);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The `pct`-th percentile in µs (upper bound of its bucket); 0 without samples.
    pub fn percentile_us(&self, pct: u64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = (total * pct).div_ceil(100).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                return Self::upper(i);
            }
        }
        Self::upper(127)
    }
}

#[cfg(test)]
mod hist_tests {
    use super::*;

    #[test]
    fn percentiles_are_within_a_bucket() {
        let h = LatencyHist::new();
        assert_eq!(h.percentile_us(50), 0);
        for us in 1..=1000u64 {
            h.record_ns(us * 1000);
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.percentile_us(50);
        let p99 = h.percentile_us(99);
        assert!((500..=600).contains(&p50), "p50 {p50}");
        assert!((990..=1200).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn buckets_are_monotonic() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = LatencyHist::bucket(us);
            assert!(b >= last);
            assert!(LatencyHist::upper(b) >= us, "{us} above its bucket {b}");
            if us < 1 << 30 {
                assert!(
                    LatencyHist::upper(b) <= us + us / 4 + 1,
                    "{us}: bucket {b} too wide"
                );
            }
            last = b;
        }
    }
}
