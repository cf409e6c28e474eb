//! When to push pages away and how many, and how far to prefetch. Pure functions of counts, so
//! the numbers are testable here and tunable without touching the kernel side.

/// Memory thresholds of a node, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// Below this much available memory, elastic processes are stretched and pushed from.
    pub low: u64,
    /// Pushing continues until this much is available again.
    pub high: u64,
    /// Below this, an elastic process's new anonymous faults wait for pushes to make room.
    pub throttle: u64,
}

impl Watermarks {
    /// Thresholds for a node with `total` pages of RAM: low = 1/8 of RAM (at least 16 MiB),
    /// high = low + 1/16 of RAM, throttle = low / 2.
    pub fn for_total(total: u64) -> Self {
        let mib = 256; // pages per MiB
        let low = (total / 8).max(16 * mib);
        Self {
            low,
            high: low + (total / 16).max(8 * mib),
            throttle: low / 2,
        }
    }
}

/// Pages one elastic process should push now: down to its budget when it has one (a non-zero
/// `budget`), else as many as bring the node from `available` back to the high watermark once
/// it fell below the low one (`pushing` remembers that we are in such an episode).
pub fn pages_to_push(
    budget: u64,
    local: u64,
    available: u64,
    wm: &Watermarks,
    pushing: bool,
) -> u64 {
    let by_budget = if budget > 0 {
        local.saturating_sub(budget)
    } else {
        0
    };
    let by_pressure = if available < wm.low || (pushing && available < wm.high) {
        wm.high - available.min(wm.high)
    } else {
        0
    };
    by_budget.max(by_pressure).min(local)
}

/// Pages fetched per remote fault: the faulting page plus `prefetch - 1` neighbours that the
/// same node owns, capped by the message batch size.
pub fn pull_count(prefetch: u32, run: u32) -> u32 {
    prefetch
        .clamp(1, crate::proto::MAX_BATCH as u32)
        .min(run.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_scale_with_ram() {
        let small = Watermarks::for_total(64 * 256);
        assert_eq!(small.low, 16 * 256);
        let vm = Watermarks::for_total(256 * 256);
        assert_eq!(
            (vm.low, vm.high, vm.throttle),
            (32 * 256, 48 * 256, 16 * 256)
        );
        assert!(vm.throttle < vm.low && vm.low < vm.high);
    }

    #[test]
    fn push_amounts() {
        let wm = Watermarks::for_total(256 * 256);
        // plenty of memory, no budget: nothing
        assert_eq!(pages_to_push(0, 1000, 100 * 256, &wm, false), 0);
        // budget exceeded
        assert_eq!(pages_to_push(600, 1000, 100 * 256, &wm, false), 400);
        // below low: refill to high
        assert_eq!(pages_to_push(0, 100_000, 30 * 256, &wm, false), 18 * 256);
        // between low and high: only while an episode is on (hysteresis)
        assert_eq!(pages_to_push(0, 100_000, 40 * 256, &wm, false), 0);
        assert_eq!(pages_to_push(0, 100_000, 40 * 256, &wm, true), 8 * 256);
        // never more than the process has
        assert_eq!(pages_to_push(1, 10, 0, &wm, true), 10);
    }

    #[test]
    fn pull_counts() {
        assert_eq!(pull_count(8, 100), 8);
        assert_eq!(pull_count(8, 3), 3);
        assert_eq!(pull_count(0, 0), 1);
        assert_eq!(pull_count(1000, 1000), crate::proto::MAX_BATCH as u32);
    }
}
