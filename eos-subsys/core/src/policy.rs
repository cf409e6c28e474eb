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

/// Run-time tunables of the jump policy (sysfs `jump`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JumpTunables {
    /// The policy may jump at all (explicit jumps work either way).
    pub enabled: bool,
    /// Starting threshold of the fault counter (the original's 5).
    pub threshold: u32,
    /// Ceiling of the adaptive threshold.
    pub max_threshold: u32,
    /// Initial "fast" inter-arrival time (the original's 10 ms).
    pub min_rate_ns: u64,
    /// Slack over the fastest inter-arrival seen that still counts as fast (the original's 50 us).
    pub slack_ns: u64,
    /// After arriving, no policy jump for this long (hysteresis against ping-pong).
    pub min_stay_ns: u64,
}

impl Default for JumpTunables {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: 5,
            max_threshold: 64,
            min_rate_ns: 10_000_000,
            slack_ns: 50_000,
            min_stay_ns: 5_000_000,
        }
    }
}

impl JumpTunables {
    /// Applies one `key=value` setting; false if the key or value is not valid.
    pub fn set(&mut self, key: &str, value: u64) -> bool {
        match key {
            "enabled" if value <= 1 => self.enabled = value == 1,
            "threshold" if (1..=1000).contains(&value) => self.threshold = value as u32,
            "max_threshold" if (1..=10_000).contains(&value) => self.max_threshold = value as u32,
            "min_rate_us" if value <= 10_000_000 => self.min_rate_ns = value * 1000,
            "slack_us" if value <= 10_000_000 => self.slack_ns = value * 1000,
            "min_stay_us" if value <= 60_000_000 => self.min_stay_ns = value * 1000,
            _ => return false,
        }
        true
    }
}

/// The jump decision for one process on one node (each node of a process keeps its own).
///
/// On every remote fault: `iat` is the time since the previous one; the fastest `iat` seen is
/// `min_rate`; a fault that comes faster than the previous one, or within `slack` of
/// `min_rate`, raises the counter, any other lowers it; over the threshold, execution moves to
/// the data. A short stay before leaving again (ping-pong) doubles this node's threshold; a
/// long one lets it decay back towards the starting value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JumpPolicy {
    count: u32,
    threshold: u32,
    last_fault_ns: u64,
    last_iat_ns: u64,
    min_rate_ns: u64,
    arrived_ns: u64,
}

impl JumpPolicy {
    /// A process that has just started running here at `now`.
    pub fn new(t: &JumpTunables, now: u64) -> Self {
        Self {
            count: 0,
            threshold: t.threshold,
            last_fault_ns: 0,
            last_iat_ns: u64::MAX,
            min_rate_ns: t.min_rate_ns,
            arrived_ns: now,
        }
    }

    /// The current threshold.
    #[cfg(test)]
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// A remote fault at `now`: true if execution should move to the page's owner instead.
    pub fn on_remote_fault(&mut self, t: &JumpTunables, now: u64) -> bool {
        let iat = if self.last_fault_ns == 0 {
            u64::MAX
        } else {
            now.saturating_sub(self.last_fault_ns)
        };
        self.last_fault_ns = now;
        self.min_rate_ns = self.min_rate_ns.min(iat);
        if iat < self.last_iat_ns || iat < self.min_rate_ns.saturating_add(t.slack_ns) {
            self.count = self.count.saturating_add(1);
        } else {
            self.count = self.count.saturating_sub(1);
        }
        self.last_iat_ns = iat;
        t.enabled
            && self.count > self.threshold
            && now.saturating_sub(self.arrived_ns) >= t.min_stay_ns
    }

    /// Execution leaves this node at `now` (for any reason): adapt the threshold to how long it
    /// stayed, and start counting afresh for its next visit.
    pub fn on_departure(&mut self, t: &JumpTunables, now: u64) {
        let stay = now.saturating_sub(self.arrived_ns);
        if stay < t.min_stay_ns.saturating_mul(4) {
            self.threshold = self
                .threshold
                .saturating_mul(2)
                .min(t.max_threshold.max(t.threshold));
        } else if self.threshold > t.threshold {
            self.threshold -= 1;
        }
        self.count = 0;
        self.last_fault_ns = 0;
        self.last_iat_ns = u64::MAX;
    }

    /// Execution arrives here at `now`.
    pub fn on_arrival(&mut self, now: u64) {
        self.arrived_ns = now;
        self.count = 0;
        self.last_fault_ns = 0;
        self.last_iat_ns = u64::MAX;
    }
}

/// Whose identity a shell on this node takes: the receiving node's administrator chooses
/// (`/sys/kernel/elastic/shell_ids`), never the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellIds {
    /// Every shell runs as `nobody`/`nogroup` (the default): a peer cannot reach any user's
    /// files here through what its shells map.
    Nobody,
    /// The ids the Stretch names, as a hint (root excepted), so a shell can map the program's
    /// files with its user's permissions: for a cluster whose nodes share their users.
    Caller,
}

/// The kernel's overflow uid/gid (`nobody`/`nogroup` on Debian).
pub const NOBODY: u32 = 65534;

/// The user and group id a shell on this node runs as, given those the Stretch asked for.
///
/// A Stretch comes from a peer, and nothing a peer sends may raise privilege here: a shell
/// never needs any (every syscall of its process runs at home), so it runs as `nobody` unless
/// this node's administrator lets Stretch ids through ([`ShellIds::Caller`]), and even then root
/// (uid or gid 0) becomes `nobody`/`nogroup`. Every shell also loses all capabilities, its
/// bounding set, and the right to gain privilege at exec (no_new_privs: see
/// `elastic_cred_set_ids`).
pub fn shell_ids(policy: ShellIds, uid: u32, gid: u32) -> (u32, u32) {
    match policy {
        ShellIds::Nobody => (NOBODY, NOBODY),
        ShellIds::Caller => (
            if uid == 0 { NOBODY } else { uid },
            if gid == 0 { NOBODY } else { gid },
        ),
    }
}

/// The protection a shell gives a range whose home protection is `prot` (`PROT_*` bits).
///
/// A shell runs only code it mapped itself, from files it opened under its own identity
/// (the program and its libraries), and never code that is writable: anonymous memory and
/// any writable range lose `PROT_EXEC`. A peer then cannot make a node execute code it
/// sent, whatever a Jump says about its ranges. The home loses nothing: an instruction
/// fetched from such a range faults in the shell, and the home runs it (as it runs any
/// instruction a shell cannot).
pub fn shell_prot(anon: bool, prot: u32) -> u32 {
    const WRITE: u32 = 2;
    const EXEC: u32 = 4;
    if anon || prot & WRITE != 0 {
        prot & !EXEC
    } else {
        prot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells_never_execute_anonymous_or_writable_memory() {
        // r, rw, rx, rwx
        for (anon, prot, want) in [
            (true, 1, 1),
            (true, 3, 3),
            (true, 5, 1),
            (true, 7, 3),
            (false, 1, 1),
            (false, 3, 3),
            (false, 5, 5),
            (false, 7, 3),
            (false, 6, 2),
        ] {
            assert_eq!(shell_prot(anon, prot), want, "anon {anon} prot {prot}");
        }
    }

    #[test]
    fn root_never_runs_a_shell_and_ids_are_the_receivers_choice() {
        for (u, g) in [(0, 0), (0, 1000), (1000, 0), (1000, 1000)] {
            assert_eq!(shell_ids(ShellIds::Nobody, u, g), (65534, 65534));
        }
        assert_eq!(shell_ids(ShellIds::Caller, 0, 0), (65534, 65534));
        assert_eq!(shell_ids(ShellIds::Caller, 0, 1000), (65534, 1000));
        assert_eq!(shell_ids(ShellIds::Caller, 1000, 0), (1000, 65534));
        assert_eq!(shell_ids(ShellIds::Caller, 1000, 1000), (1000, 1000));
    }

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

    #[test]
    fn fast_faults_jump_after_threshold() {
        let t = JumpTunables::default();
        let mut p = JumpPolicy::new(&t, 0);
        let mut now = 100_000_000;
        let mut jumped_at = None;
        for i in 0..20 {
            now += 1_500_000; // 1.5 ms apart, steady
            if p.on_remote_fault(&t, now) {
                jumped_at = Some(i);
                break;
            }
        }
        // the first fault has no inter-arrival time; the counter must then exceed 5
        assert_eq!(jumped_at, Some(6));
    }

    #[test]
    fn slow_faults_never_jump_and_disabled_never_jumps() {
        let t = JumpTunables::default();
        let mut p = JumpPolicy::new(&t, 0);
        let mut now = 0;
        for i in 0..200u64 {
            // alternating slow and slower gaps, all far above min_rate
            now += 50_000_000 + (i % 2) * 30_000_000;
            assert!(!p.on_remote_fault(&t, now));
        }
        let off = JumpTunables {
            enabled: false,
            ..t
        };
        let mut q = JumpPolicy::new(&off, 0);
        for i in 0..100 {
            assert!(!q.on_remote_fault(&off, 10_000_000 + i * 1000));
        }
    }

    #[test]
    fn no_jump_right_after_arrival_and_ping_pong_raises_threshold() {
        let t = JumpTunables::default();
        let mut p = JumpPolicy::new(&t, 1_000_000_000);
        // a burst within min_stay of arriving does not jump
        for i in 1..=20 {
            assert!(!p.on_remote_fault(&t, 1_000_000_000 + i * 100_000));
        }
        // leaving soon after arriving doubles the threshold, up to the ceiling
        p.on_departure(&t, 1_003_000_000);
        assert_eq!(p.threshold(), 10);
        for k in 0..10 {
            p.on_arrival(2_000_000_000 + k);
            p.on_departure(&t, 2_000_000_000 + k);
        }
        assert_eq!(p.threshold(), t.max_threshold);
        // long stays decay it back, never below the start
        for k in 0..100u64 {
            p.on_arrival(k * 1_000_000_000);
            p.on_departure(&t, k * 1_000_000_000 + 500_000_000);
        }
        assert_eq!(p.threshold(), t.threshold);
    }

    #[test]
    fn tunables_parse_and_refuse() {
        let mut t = JumpTunables::default();
        assert!(t.set("threshold", 9) && t.threshold == 9);
        assert!(t.set("enabled", 0) && !t.enabled);
        assert!(t.set("min_stay_us", 200) && t.min_stay_ns == 200_000);
        assert!(!t.set("threshold", 0));
        assert!(!t.set("enabled", 2));
        assert!(!t.set("bogus", 1));
    }
}
