//! When to push pages away and how many, and how far to prefetch. Pure functions of counts, so
//! the numbers are testable here and tunable without touching the kernel side.

/// Pages a process may be over its budget before its faults wait for the pusher: one push
/// batch, so that the pusher works in whole batches.
pub const BUDGET_SLACK: u64 = crate::proto::MAX_BATCH as u64;
/// Pages a memory cgroup charges at once (`MEMCG_CHARGE_BATCH`): a charge may take this
/// many from the cgroup's counter although the fault needs one page.
const MEMCG_CHARGE_BATCH: i64 = 64;
/// Pages a process in a memory cgroup keeps below the cgroup's limit (`Proc::local_limit`):
/// past that by the slack, its faults wait for the pusher. A charge batch and the slack must
/// fit below memory.high: each pass over it costs the task a reclaim and a sleep of tens of
/// milliseconds for a few pages over (`mem_cgroup_handle_over_high`). With one slack only,
/// a 32 MiB lsearch with memory.high 8 MiB passed it 884 times (step `cgroup-limit`).
pub const MEMCG_MARGIN: i64 = MEMCG_CHARGE_BATCH + 2 * BUDGET_SLACK as i64;

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

/// Pages a member running a process holds past its budget (`budget` 0: none), which the
/// home pulls back (reclaim.rs).
pub fn away_excess(budget: u64, there: u64) -> u64 {
    if budget == 0 {
        0
    } else {
        there.saturating_sub(budget)
    }
}

/// Whether a fetch by that member waits for room: it holds the budget and `slack` pages
/// past it (a batch, so that the home pulls back whole batches).
pub fn away_fetch_waits(budget: u64, there: u64, slack: u64) -> bool {
    budget > 0 && there >= budget.saturating_add(slack)
}

/// Pages fetched per remote fault: the faulting page plus `prefetch - 1` neighbours that the
/// same node owns, capped by the message batch size.
pub fn pull_count(prefetch: u32, run: u32) -> u32 {
    prefetch
        .clamp(1, crate::proto::MAX_BATCH as u32)
        .min(run.max(1))
}

/// Readahead of remote faults, per stream as Linux's file readahead keeps a state per open
/// file: the last [`STREAMS`] pulls are remembered, and a fault where one of them ended
/// continues that stream and doubles its window (up to a message's batch): a scan makes one
/// round trip per 32 pages instead of per 8, and so does each of several scans interleaved
/// (a merge reading k runs). Elsewhere a new stream starts from a base that learns from its
/// hits, as swap readahead does: the pages a pull brings beyond the faulting one start old,
/// and when its slot is taken again (`STREAMS` new streams later, time for a merge's other
/// runs to come back to it) the fault counts how many of them were used
/// ([`Readahead::learn`]). Mostly unused (random access: a heap sort's sift, a graph walk)
/// halves the base, down to the faulting page alone; mostly used, or a fault next to the last
/// pull, doubles it back up to `prefetch`. A base of 1 (prefetch off) stays 1.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Readahead {
    streams: [Stream; STREAMS],
    /// Round-robin cursor: the slot a new stream takes.
    clock: usize,
    /// The stream the current fault continues, or the slot it takes (set by `window`).
    cur: usize,
    /// Where the last pull began (any stream).
    last: u64,
    /// How many times the base is halved.
    shrink: u32,
}

/// One stream of pulls.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Stream {
    /// Where its last pull ended (the address just past its last page; 0: unused slot).
    next: u64,
    /// Its last window, pages.
    window: u32,
    /// The first page its last pull prefetched, and how many of them are still to be judged.
    first: u64,
    unjudged: u32,
}

/// Streams remembered (a merge of up to this many runs keeps its windows).
pub const STREAMS: usize = 8;
/// Pages around the last pull within which a fault counts as a neighbour's.
const NEAR_PAGES: u64 = 8;
/// The most the base is halved: a batch of 32 comes down to 1.
const MAX_SHRINK: u32 = 5;

impl Readahead {
    /// The stream a fault at `addr` continues, if any.
    fn continues(&self, addr: u64) -> Option<usize> {
        self.streams
            .iter()
            .position(|s| s.window > 0 && s.next == addr)
    }

    /// The window for a fault at `addr` (before `pull_count` caps it by the owner's run).
    pub fn window(&mut self, addr: u64, base: u32) -> u32 {
        let max = crate::proto::MAX_BATCH as u32;
        let base = base.clamp(1, max);
        // Halving past 1 page is not remembered: a change of `prefetch` starts from there.
        self.shrink = self.shrink.min(base.ilog2());
        let learned = (base >> self.shrink).max(1);
        match self.continues(addr).filter(|_| base > 1) {
            Some(i) => {
                self.cur = i;
                self.streams[i].window.saturating_mul(2).clamp(learned, max)
            }
            None => {
                self.cur = self.clock % STREAMS;
                learned
            }
        }
    }

    /// The pages a fault at `addr` should judge (first address, count), if any: those the
    /// pull in the slot it is about to take prefetched (none if it continues a stream).
    pub fn to_judge(&self, addr: u64) -> Option<(u64, u32)> {
        if self.continues(addr).is_some() {
            return None;
        }
        let s = &self.streams[self.clock % STREAMS];
        (s.unjudged > 0).then_some((s.first, s.unjudged))
    }

    /// Learns from a fault at `addr`, before its window: `used` of the pages
    /// [`Readahead::to_judge`] named were used (`None`: not known, e.g. another mapping's).
    pub fn learn(&mut self, addr: u64, used: Option<u32>) {
        if self.continues(addr).is_some() {
            return;
        }
        let slot = self.clock % STREAMS;
        let unjudged = self.streams[slot].unjudged;
        let near = self.streams.iter().any(|s| s.window > 0)
            && addr.abs_diff(self.last) <= NEAR_PAGES * crate::proto::PAGE_SIZE as u64;
        match used {
            Some(u) if unjudged > 0 && u.saturating_mul(4) < unjudged => {
                self.shrink = (self.shrink + 1).min(MAX_SHRINK)
            }
            Some(u) if unjudged > 0 && u.saturating_mul(2) >= unjudged => {
                self.shrink = self.shrink.saturating_sub(1)
            }
            _ if near => self.shrink = self.shrink.saturating_sub(1),
            _ => {}
        }
        self.streams[slot].unjudged = 0;
    }

    /// Whether a fault at `addr` continues a scan: it is where a stream's last pull ended,
    /// and that pull had continued the one before (the window grew). Such a scan is expected
    /// to go on through the pages the owner holds (the jump policy's trend).
    pub fn in_run(&self, addr: u64, base: u32) -> bool {
        let base = base.min(crate::proto::MAX_BATCH as u32);
        base > 1
            && self
                .streams
                .iter()
                .any(|s| s.next == addr && s.window > base)
    }

    /// A pull from `addr` in the window [`Readahead::window`] gave (`window`) brought `pages`
    /// pages (none: the fault runs again; nothing moves). Returns how many of them after the
    /// first to make old for [`Readahead::learn`] (none when it continues a stream: a scan's
    /// pages are used in turn).
    pub fn pulled(&mut self, addr: u64, window: u32, pages: u32) -> u32 {
        if pages == 0 {
            return 0;
        }
        let page = crate::proto::PAGE_SIZE as u64;
        let next = addr.saturating_add(u64::from(pages) * page);
        self.last = addr;
        let cur = self.cur % STREAMS;
        let s = &mut self.streams[cur];
        if s.window > 0 && s.next == addr {
            s.next = next;
            s.window = window;
            s.unjudged = 0;
            return 0;
        }
        *s = Stream {
            next,
            window,
            first: addr + page,
            unjudged: pages - 1,
        };
        self.clock = self.clock.wrapping_add(1);
        pages - 1
    }
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
    /// Cost of a remote fault and of a jump before either was measured, ns.
    pub fault_cost_ns: u64,
    pub jump_cost_ns: u64,
    /// Execution back on this node within this long of leaving it bounced: the address
    /// range whose faults sent it away does not trigger a jump for `bounce_hold_ns`.
    pub bounce_ns: u64,
    pub bounce_hold_ns: u64,
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
            fault_cost_ns: 3_000_000,
            jump_cost_ns: 2_500_000,
            bounce_ns: 50_000_000,
            bounce_hold_ns: 2_000_000_000,
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
            "fault_cost_us" if (1..=10_000_000).contains(&value) => {
                self.fault_cost_ns = value * 1000
            }
            "jump_cost_us" if (1..=10_000_000).contains(&value) => self.jump_cost_ns = value * 1000,
            "bounce_us" if value <= 60_000_000 => self.bounce_ns = value * 1000,
            "bounce_hold_us" if value <= 600_000_000 => self.bounce_hold_ns = value * 1000,
            _ => return false,
        }
        true
    }
}

/// What a remote fault's path knows besides the time, for the jump policy's cost check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultCosts {
    /// The faulting address (ranges that bounced are remembered).
    pub addr: u64,
    /// This node can simply take the pages: under its budget (or none) and under no memory
    /// pressure. Pulling then costs one fault per pull and nothing later; no jump.
    pub room_here: bool,
    /// Pages of the process the faulting page's owner holds: the most the run ahead can
    /// fault on there.
    pub owner_pages: u64,
    /// Pages one pull brings (the prefetch).
    pub pages_per_pull: u32,
    /// Pages the owner would have to send back at once if execution went there: what it
    /// holds past the process's budget, when that budget holds there too (`budget_away`). A
    /// jump pays for them as for pulls.
    pub reclaim_there: u64,
    /// Measured medians of a remote fault and of a jump from this node, ns (0: none yet).
    pub fault_ns: u64,
    pub jump_ns: u64,
}

/// Ranges of `1 << BOUNCE_SHIFT` bytes (2 MiB) are what bouncing is remembered for.
const BOUNCE_SHIFT: u32 = 21;
/// Ranges remembered per node of a process.
const BOUNCE_SLOTS: usize = 8;

/// The jump decision for one process on one node (each node of a process keeps its own).
///
/// On every remote fault: `iat` is the time since the previous one; the fastest `iat` seen is
/// `min_rate`; a fault that comes faster than the previous one, or within `slack` of
/// `min_rate`, raises the counter, any other lowers it; over the threshold, execution moves to
/// the data. The counter misses a scan whose pulls grow (readahead): the run between two
/// faults grows with each pull's pages. So a process that, over more than the threshold's
/// faults here, waits for pages longer than it runs between them is paging-bound and moves
/// too. A short stay before leaving again (ping-pong) doubles this node's threshold; a
/// long one lets it decay back towards the starting value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JumpPolicy {
    count: u32,
    threshold: u32,
    last_fault_ns: u64,
    last_iat_ns: u64,
    min_rate_ns: u64,
    arrived_ns: u64,
    /// A fault counted by [`JumpPolicy::on_remote_fault`] is being served: its end is what the
    /// next inter-arrival time counts from ([`JumpPolicy::fault_served`]).
    serving: bool,
    /// The range of the fault that decided a policy jump not yet under way.
    trigger: Option<u64>,
    /// The range that sent execution away by a policy jump, when it left, and how long it
    /// ran between remote faults here then (`run_avg_ns`).
    left: Option<(u64, u64, u64)>,
    /// Ranges that bounced, each with the time its hold ends.
    bounced: [Option<(u64, u64)>; BOUNCE_SLOTS],
    /// When the fault being served began, and when the last one served ended.
    fault_start_ns: u64,
    served_ns: u64,
    /// Moving averages (the newest weighs 1/8) of how long a remote fault took to serve and
    /// of how long the process ran between two: waiting longer than running is paging-bound.
    wait_avg_ns: u64,
    run_avg_ns: u64,
    /// Remote faults served since it arrived.
    served: u32,
}

/// The newest sample weighs `1 / (1 << AVG_SHIFT)` in [`JumpPolicy`]'s moving averages.
const AVG_SHIFT: u32 = 3;

/// `avg` moved towards `x` (the first sample, `n == 0`, is taken as is).
fn moving_avg(avg: u64, x: u64, n: u32) -> u64 {
    if n == 0 {
        x
    } else {
        avg - (avg >> AVG_SHIFT) + (x >> AVG_SHIFT)
    }
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
            serving: false,
            trigger: None,
            left: None,
            bounced: [None; BOUNCE_SLOTS],
            fault_start_ns: 0,
            served_ns: 0,
            wait_avg_ns: 0,
            run_avg_ns: 0,
            served: 0,
        }
    }

    /// A remote fault at `now` with what it costs: true if execution should move to the
    /// page's owner. Either the fault counter says the faults come fast (as
    /// [`JumpPolicy::on_remote_fault`]), or the fault continues a scan (`in_run`,
    /// [`Readahead::in_run`]); then a jump must pay: not when this node has room
    /// for the pages, not for a range that bounced, and only when the faults it saves cost
    /// more than a jump there and one back (and what the owner would send back). A scan is
    /// expected to read on through the owner's pages; otherwise the streak so far (faults
    /// counted or served here) is what the run ahead is taken to be, at most as many pulls as
    /// the owner's pages make.
    /// `costs` is asked only when the counter or a scan says jump (rarely), so it may take a
    /// look around.
    pub fn on_remote_fault_costed(
        &mut self,
        t: &JumpTunables,
        now: u64,
        in_run: bool,
        costs: impl FnOnce() -> FaultCosts,
    ) -> bool {
        let counted = self.on_remote_fault(t, now);
        // The stay a scan waits for grows as the threshold does (short stays doubled it):
        // scans that keep meeting each other's pages slow down as a counter would.
        let stay = t
            .min_stay_ns
            .saturating_mul(u64::from(self.threshold / t.threshold.max(1)).max(1));
        let scan = in_run && t.enabled && now.saturating_sub(self.arrived_ns) >= stay;
        if !counted && !scan {
            return false;
        }
        let c = costs();
        let range = c.addr >> BOUNCE_SHIFT;
        if c.room_here || self.bounced_range(range, now) {
            return false;
        }
        let fault = if c.fault_ns > 0 {
            c.fault_ns
        } else {
            t.fault_cost_ns
        };
        let jump = if c.jump_ns > 0 {
            c.jump_ns
        } else {
            t.jump_cost_ns
        };
        let per_pull = c.pages_per_pull.max(1) as u64;
        let pulls_there = c.owner_pages.div_ceil(per_pull);
        let streak = if scan {
            pulls_there
        } else {
            u64::from(self.count.max(self.served)).min(pulls_there)
        };
        let saved = streak.saturating_mul(fault);
        let reclaim = c.reclaim_there.div_ceil(per_pull).saturating_mul(fault);
        if saved <= jump.saturating_mul(2).saturating_add(reclaim) {
            return false;
        }
        self.trigger = Some(range);
        true
    }

    /// Whether faults in `range` may not trigger a jump (it bounced lately).
    fn bounced_range(&self, range: u64, now: u64) -> bool {
        self.bounced
            .iter()
            .flatten()
            .any(|&(r, until)| r == range && now < until)
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
        self.serving = true;
        self.min_rate_ns = self.min_rate_ns.min(iat);
        if iat < self.last_iat_ns || iat < self.min_rate_ns.saturating_add(t.slack_ns) {
            self.count = self.count.saturating_add(1);
        } else {
            self.count = self.count.saturating_sub(1);
        }
        self.last_iat_ns = iat;
        if self.served_ns != 0 {
            let run = now.saturating_sub(self.served_ns);
            self.run_avg_ns = moving_avg(self.run_avg_ns, run, self.served.saturating_sub(1));
        }
        self.fault_start_ns = now;
        let paging_bound = self.served > self.threshold && self.wait_avg_ns > self.run_avg_ns;
        t.enabled
            && (self.count > self.threshold || paging_bound)
            && now.saturating_sub(self.arrived_ns) >= t.min_stay_ns
    }

    /// The remote fault counted last was served at `now` (its pages are in): the next
    /// fault's inter-arrival time counts from here, so it is the process's own time between
    /// faults, not the service time, which grows with the readahead window and would make a
    /// scan look slower as its pulls grow.
    /// Only a fault the counter saw moves it (not a kernel access, a vfork child's, ...).
    pub fn fault_served(&mut self, now: u64) {
        if core::mem::take(&mut self.serving) && self.last_fault_ns != 0 {
            self.last_fault_ns = self.last_fault_ns.max(now);
            let wait = now.saturating_sub(self.fault_start_ns);
            self.wait_avg_ns = moving_avg(self.wait_avg_ns, wait, self.served);
            self.served = self.served.saturating_add(1);
            self.served_ns = now;
        }
    }

    /// Execution leaves this node at `now` (for any reason): adapt the threshold to how long it
    /// stayed, and start counting afresh for its next visit.
    pub fn on_departure(&mut self, t: &JumpTunables, now: u64) {
        let run = self.run_avg_ns;
        self.left = self.trigger.take().map(|r| (r, now, run));
        let stay = now.saturating_sub(self.arrived_ns);
        if stay < t.min_stay_ns.saturating_mul(4) {
            self.threshold = self
                .threshold
                .saturating_mul(2)
                .min(t.max_threshold.max(t.threshold));
        } else if self.threshold > t.threshold {
            self.threshold -= 1;
        }
        self.forget_faults();
    }

    /// Starts counting afresh (execution left or arrived).
    fn forget_faults(&mut self) {
        self.count = 0;
        self.last_fault_ns = 0;
        self.last_iat_ns = u64::MAX;
        self.serving = false;
        self.served = 0;
        self.served_ns = 0;
        self.fault_start_ns = 0;
    }

    /// Execution arrives here at `now`, having run `ran_ns` where it was (the `Jump`'s CPU
    /// time, user and system: a short visit's ticks may all have landed in either). Back
    /// within `bounce_ns` of a policy jump away, and the visit saved less than its two jumps
    /// cost: that jump's range bounced, and triggers none for `bounce_hold_ns`. What a visit
    /// saved is the remote faults this node would have taken meanwhile: `ran_ns` over the
    /// run between two of them when it left, each at `fault_ns` (`costs`: the measured fault
    /// and jump, or the tunables'). A short visit that ran on (a scan through the pages
    /// there) paid for itself, however soon it came back; one that faulted at once did not.
    pub fn on_arrival_after(&mut self, t: &JumpTunables, now: u64, ran_ns: u64, costs: (u64, u64)) {
        let fault = if costs.0 > 0 {
            costs.0
        } else {
            t.fault_cost_ns
        };
        let jump = if costs.1 > 0 { costs.1 } else { t.jump_cost_ns };
        if let Some((range, at, run)) = self.left.take() {
            // Nothing measured here (no fault served): the time alone decides, as it did.
            // No more than it was away (a peer reports its CPU time).
            let saved = ran_ns
                .min(now.saturating_sub(at))
                .checked_div(run)
                .unwrap_or(0)
                .saturating_mul(fault);
            if now.saturating_sub(at) < t.bounce_ns && saved < jump.saturating_mul(2) {
                // A free, expired or same-range slot; else the one whose hold ends first.
                let slot = self
                    .bounced
                    .iter()
                    .position(|b| b.is_none_or(|(r, until)| until <= now || r == range))
                    .unwrap_or_else(|| {
                        (0..BOUNCE_SLOTS)
                            .min_by_key(|&i| self.bounced[i].map_or(0, |(_, u)| u))
                            .unwrap_or(0)
                    });
                self.bounced[slot] = Some((range, now.saturating_add(t.bounce_hold_ns)));
            }
        }
        self.on_arrival(now);
    }

    /// Execution arrives here at `now`.
    pub fn on_arrival(&mut self, now: u64) {
        self.trigger = None;
        self.arrived_ns = now;
        self.forget_faults();
    }
}

/// Whose identity a shell on this node takes: the receiving node's administrator chooses
/// (`/sys/kernel/elastic/shell_ids`), never the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellIds {
    /// Every shell for home node N runs as uid and gid [`home_ids`]`(N)` (the default): ids no
    /// account and no other process here uses, so no local process can trace, signal or write
    /// a shell by sharing its identity, and a peer cannot reach any user's files here through
    /// what its shells map (only what anyone may read).
    Home,
    /// The ids the Stretch names, as a hint, so a shell can map the program's files with its
    /// user's permissions: for a cluster whose nodes share their users. Only ids of regular
    /// users and groups ([`CALLER_IDS`]) pass; any other (root, a system group such as shadow,
    /// 42 on Debian) becomes the home's ids.
    Caller,
}

/// The user and group ids [`ShellIds::Caller`] lets through: Debian's range for regular users
/// and their groups (`UID_MIN`..=`UID_MAX` and `GID_MIN`..=`GID_MAX` in /etc/login.defs).
/// System ids below it own system files (shadow, disk, adm...), and ids above it are
/// `nobody`'s and the ranges of containers.
pub const CALLER_IDS: core::ops::RangeInclusive<u32> = 1000..=60000;

/// The ids reserved for shells: home node N's shells run as `SHELL_ID_BASE + N`
/// (2,128,609,281 to 2,128,610,303). Above Debian's users, `nobody` (65534) and the
/// subordinate id ranges `useradd` hands out from 100,000 on (65,536 per user: 32,000 users
/// before they reach it), below `(uid_t)-1`.
pub const SHELL_ID_BASE: u32 = 0x7EE0_0000;

/// The uid and gid of home node `home`'s shells here.
pub fn home_ids(home: crate::proto::NodeId) -> (u32, u32) {
    let id = SHELL_ID_BASE + u32::from(home);
    (id, id)
}

/// The user and group id a shell on this node for home node `home` runs as, given those the
/// Stretch asked for.
///
/// A Stretch comes from a peer, and nothing a peer sends may raise privilege here: a shell
/// never needs any (every syscall of its process runs at home), so it runs as its home's ids
/// ([`home_ids`]) unless this node's administrator lets Stretch ids through
/// ([`ShellIds::Caller`]), and even then only regular users' ids ([`CALLER_IDS`]): root or a
/// system id becomes the home's. A shell has no supplementary groups (its credentials derive
/// from the kernel's, whose group list is empty). Every shell also loses all capabilities,
/// its bounding set, and the right to gain privilege at exec (no_new_privs: see
/// `elastic_cred_set_ids`).
///
/// With [`ShellIds::Caller`], the ids must also lie in `allowed`, the range this node's
/// administrator allows that peer (`ids` in `peers`; `None`: none): a peer cannot name any
/// regular user's ids, only those of the users the two nodes share.
pub fn shell_ids(
    policy: ShellIds,
    home: crate::proto::NodeId,
    uid: u32,
    gid: u32,
    allowed: Option<(u32, u32)>,
) -> (u32, u32) {
    let pass = |id: u32| {
        CALLER_IDS.contains(&id) && allowed.is_some_and(|(lo, hi)| (lo..=hi).contains(&id))
    };
    let (own_uid, own_gid) = home_ids(home);
    match policy {
        ShellIds::Home => (own_uid, own_gid),
        ShellIds::Caller => (
            if pass(uid) { uid } else { own_uid },
            if pass(gid) { gid } else { own_gid },
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
    /// Away, the member holds the budget: what is past it comes back, and fetches wait only
    /// a batch past it; no budget, no limit.
    #[test]
    fn budget_away_bounds() {
        assert_eq!(super::away_excess(0, 10_000), 0);
        assert_eq!(super::away_excess(2048, 2000), 0);
        assert_eq!(super::away_excess(2048, 3000), 952);
        assert!(!super::away_fetch_waits(0, 10_000, 32));
        assert!(!super::away_fetch_waits(2048, 2079, 32));
        assert!(super::away_fetch_waits(2048, 2080, 32));
        assert!(!super::away_fetch_waits(u64::MAX, u64::MAX - 1, 32));
    }

    /// A scan whose pulls grow (readahead) and so take longer each: counted from the end of
    /// each pull, its faults come as fast as before and it still jumps.
    #[test]
    fn growing_pulls_do_not_hide_a_fast_scan() {
        let t = super::JumpTunables::default();
        let mut p = super::JumpPolicy::new(&t, 0);
        let mut now = 100_000_000u64;
        let mut jumped = None;
        for i in 0..20u64 {
            if p.on_remote_fault(&t, now) {
                jumped = Some(i);
                break;
            }
            // Each pull takes longer (8, 16, 32 pages...), the scan between them 20 us.
            now += 3_000_000 * (i + 1);
            p.fault_served(now);
            now += 20_000;
        }
        assert!(
            jumped.is_some(),
            "a fast scan with growing pulls never jumped"
        );
        // A fault the counter did not see (a kernel access) does not move its clock.
        let mut q = super::JumpPolicy::new(&t, 0);
        assert!(!q.on_remote_fault(&t, 1_000));
        q.fault_served(2_000);
        let before = q;
        q.fault_served(9_000_000);
        assert_eq!(q, before);
    }

    /// A scan whose pulls and runs both grow with the readahead window (each run scans the
    /// pages the last pull brought): the counter sees slower and slower faults, but the
    /// process waits longer than it runs, so it moves. One that runs longer than it waits
    /// never does.
    #[test]
    fn paging_bound_runs_jump_and_compute_bound_ones_do_not() {
        let t = super::JumpTunables::default();
        let mut p = super::JumpPolicy::new(&t, 0);
        let mut now = 100_000_000u64;
        let mut jumped = None;
        for i in 0..40u64 {
            if p.on_remote_fault(&t, now) {
                jumped = Some(i);
                break;
            }
            let pages = (8u64 << i.min(3)).min(64);
            now += 2_000_000 + pages * 50_000;
            p.fault_served(now);
            now += pages * 20_000 + i * 1_000;
        }
        assert!(
            jumped.is_some_and(|i| i > u64::from(t.threshold)),
            "{jumped:?}"
        );
        let mut q = super::JumpPolicy::new(&t, 0);
        let mut now = 100_000_000u64;
        for i in 0..200u64 {
            assert!(!q.on_remote_fault(&t, now), "compute-bound jumped at {i}");
            now += 2_000_000;
            q.fault_served(now);
            // Runs longer than it waits, and longer each time (never "faster").
            now += 3_000_000 + i * 10_000;
        }
    }

    /// One fault through the readahead as the fault path drives it: judge (with `used` of
    /// the named pages used), learn, window, and a pull of the whole window.
    fn fault(r: &mut super::Readahead, addr: u64, used: impl Fn(u32) -> u32) -> u32 {
        let judged = r.to_judge(addr).map(|(_, n)| used(n));
        r.learn(addr, judged);
        let w = r.window(addr, 8);
        r.pulled(addr, w, w);
        w
    }

    #[test]
    fn readahead_learns_from_its_hits() {
        let page = crate::proto::PAGE_SIZE as u64;
        let far = |i: u64| 0x100_0000 + i * 0x10_0000;
        // Random faults whose neighbours go unused: judged when their slot comes round
        // again (STREAMS faults later), the base halves down to the faulting page alone.
        let mut r = super::Readahead::default();
        let seen: std::vec::Vec<u32> = (0..12).map(|i| fault(&mut r, far(i), |_| 0)).collect();
        assert_eq!(seen, [8, 8, 8, 8, 8, 8, 8, 8, 4, 2, 1, 1]);
        // A fault next to the last pull (locality again) doubles the base back, once the
        // slots' old pulls are judged.
        for i in 12..20 {
            assert_eq!(fault(&mut r, far(i), |_| 0), 1);
        }
        assert_eq!(r.shrink, 3);
        assert_eq!(fault(&mut r, far(19) + 2 * page, |_| 0), 2);
        // Used neighbours double it too, up to the prefetch setting.
        let mut r = super::Readahead {
            shrink: 2,
            ..Default::default()
        };
        let seen: std::vec::Vec<u32> = (0..11).map(|i| fault(&mut r, far(i), |n| n)).collect();
        assert_eq!(seen, [2, 2, 2, 2, 2, 2, 2, 2, 4, 8, 8]);
        // A scan ramps up from a learned base of 1, and its pages are never judged.
        let mut r = super::Readahead {
            shrink: 3,
            ..Default::default()
        };
        let mut addr = 0x10_0000;
        let mut seen = std::vec::Vec::new();
        for _ in 0..7 {
            let w = fault(&mut r, addr, |_| 0);
            seen.push(w);
            addr += u64::from(w) * page;
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 32]);
        assert_eq!(r.to_judge(addr), None);
        assert_eq!(r.shrink, 3);
        // Four scans interleaved (a merge of four runs) each keep their growing window, and
        // their first pulls' neighbours, used in turn, are not held against the base.
        let mut r = super::Readahead::default();
        let mut at = [0x100_0000u64, 0x200_0000, 0x300_0000, 0x400_0000];
        let mut last = [0u32; 4];
        for _ in 0..5 {
            for (k, a) in at.iter_mut().enumerate() {
                last[k] = fault(&mut r, *a, |n| n);
                *a += u64::from(last[k]) * page;
            }
        }
        assert_eq!(last, [32; 4]);
        assert_eq!(r.shrink, 0);
        // More streams than slots: the oldest is forgotten and starts again from the base.
        let mut r = super::Readahead::default();
        let mut at: std::vec::Vec<u64> = (0..super::STREAMS as u64 + 1).map(far).collect();
        for a in at.iter_mut() {
            *a += u64::from(fault(&mut r, *a, |n| n)) * page;
        }
        assert_eq!(fault(&mut r, at[0], |n| n), 8);
        assert_eq!(fault(&mut r, at[super::STREAMS], |n| n), 16);
    }

    #[test]
    fn readahead_ramps_up_on_a_scan_and_resets_elsewhere() {
        let page = crate::proto::PAGE_SIZE as u64;
        let mut r = super::Readahead::default();
        let mut addr = 0x10_0000;
        let mut seen = std::vec::Vec::new();
        for _ in 0..4 {
            let w = r.window(addr, 8);
            seen.push(w);
            r.pulled(addr, w, w);
            addr += u64::from(w) * page;
        }
        assert_eq!(seen, [8, 16, 32, 32]);
        // A fault elsewhere starts from the base again.
        assert_eq!(r.window(0x90_0000, 8), 8);
        // A short pull (the owner's run ended) is followed from where it ended.
        r.pulled(0x90_0000, 8, 3);
        assert_eq!(r.window(0x90_0000 + 3 * page, 8), 16);
        // Prefetch off stays off.
        let mut off = super::Readahead::default();
        off.window(0, 1);
        off.pulled(0, 1, 1);
        assert_eq!(off.window(page, 1), 1);
    }

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
        const ALL: Option<(u32, u32)> = Some((1000, 60000));
        const H: u32 = SHELL_ID_BASE + 3;
        let ids = |p, u, g, a| shell_ids(p, 3, u, g, a);
        for (u, g) in [(0, 0), (0, 1000), (1000, 0), (1000, 1000)] {
            assert_eq!(ids(ShellIds::Home, u, g, ALL), (H, H));
        }
        assert_eq!(ids(ShellIds::Caller, 0, 0, ALL), (H, H));
        assert_eq!(ids(ShellIds::Caller, 0, 1000, ALL), (H, 1000));
        assert_eq!(ids(ShellIds::Caller, 1000, 0, ALL), (1000, H));
        assert_eq!(ids(ShellIds::Caller, 1000, 1000, ALL), (1000, 1000));
        // System ids never pass: shadow's group (42), a daemon's uid (1), ids past the range.
        assert_eq!(ids(ShellIds::Caller, 1000, 42, ALL), (1000, H));
        assert_eq!(ids(ShellIds::Caller, 1, 1000, ALL), (H, 1000));
        assert_eq!(ids(ShellIds::Caller, 999, 999, ALL), (H, H));
        assert_eq!(ids(ShellIds::Caller, 60001, 100_000, ALL), (H, H));
        assert_eq!(ids(ShellIds::Caller, 60000, 60000, ALL), (60000, 60000));
        // Nor a peer's guess of another home's reserved ids.
        assert_eq!(ids(ShellIds::Caller, H + 1, H + 1, ALL), (H, H));
        // Only the ids this node allows that peer: none by default, else its range.
        assert_eq!(ids(ShellIds::Caller, 1000, 1000, None), (H, H));
        let some = Some((1000, 1009));
        assert_eq!(ids(ShellIds::Caller, 1005, 1009, some), (1005, 1009));
        assert_eq!(ids(ShellIds::Caller, 1010, 1000, some), (H, 1000));
    }

    #[test]
    fn home_ids_are_distinct_reserved_and_valid() {
        let (lo, _) = home_ids(1);
        let (hi, _) = home_ids(crate::proto::MAX_NODE_ID);
        assert!(lo > 65534 && lo > *CALLER_IDS.end());
        assert!(hi < u32::MAX - 1, "(uid_t)-1 and -2 are not ids");
        assert_ne!(home_ids(1), home_ids(2));
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

    /// Fast faults every 1.5 ms (each served in 1 ms, then 0.5 ms of running) until the
    /// policy answers; the fault index it jumped at.
    fn burst(p: &mut JumpPolicy, t: &JumpTunables, now: &mut u64, c: &FaultCosts) -> Option<u32> {
        (0..40).find(|_| {
            *now += 500_000;
            let jump = p.on_remote_fault_costed(t, *now, false, || *c);
            *now += 1_000_000;
            if !jump {
                p.fault_served(*now);
            }
            jump
        })
    }

    /// A scan (each fault where the last pull ended) goes on through the owner's pages: the
    /// first fault of it after the stay jumps, if the owner's pages pay for the jumps and
    /// this node has no lasting room; the counter is not waited for.
    #[test]
    fn a_scan_jumps_at_once_when_the_owner_holds_its_run() {
        let t = JumpTunables::default();
        let scan = |c: &FaultCosts, arrived: u64, now: u64| {
            let mut p = JumpPolicy::new(&t, arrived);
            p.on_remote_fault_costed(&t, now, true, || *c)
        };
        assert!(scan(&COSTS, 0, 100_000_000));
        // Not within the stay after arriving, nor with room here, nor for one pull's worth
        // there, nor when arriving would send 4,096 pages back, nor with the policy off.
        assert!(!scan(&COSTS, 99_000_000, 100_000_000));
        let room = FaultCosts {
            room_here: true,
            ..COSTS
        };
        assert!(!scan(&room, 0, 100_000_000));
        let little = FaultCosts {
            owner_pages: 8,
            ..COSTS
        };
        assert!(!scan(&little, 0, 100_000_000));
        let full = FaultCosts {
            reclaim_there: 4096,
            ..COSTS
        };
        assert!(!scan(&full, 0, 100_000_000));
        let off = JumpTunables {
            enabled: false,
            ..t
        };
        let mut p = JumpPolicy::new(&off, 0);
        assert!(!p.on_remote_fault_costed(&off, 100_000_000, true, || COSTS));
        // After a short stay (the threshold doubled) a scan waits twice the stay.
        let mut p = JumpPolicy::new(&t, 0);
        p.on_departure(&t, 1_000_000);
        p.on_arrival(10_000_000);
        let at = 10_000_000 + t.min_stay_ns;
        assert!(!p.on_remote_fault_costed(&t, at, true, || COSTS));
        assert!(p.on_remote_fault_costed(&t, at + t.min_stay_ns, true, || COSTS));
        // What the readahead calls a scan: the third fault of a run, not the second.
        let mut r = Readahead::default();
        assert_eq!(r.window(0x10_0000, 8), 8);
        r.pulled(0x10_0000, 8, 8);
        assert!(!r.in_run(0x10_8000, 8));
        assert_eq!(r.window(0x10_8000, 8), 16);
        r.pulled(0x10_8000, 16, 16);
        assert!(r.in_run(0x11_8000, 8));
        assert!(!r.in_run(0x11_9000, 8));
        assert!(!r.in_run(0x11_8000, 1));
    }

    const COSTS: FaultCosts = FaultCosts {
        addr: 0x4000_0000,
        room_here: false,
        owner_pages: 4096,
        pages_per_pull: 8,
        reclaim_there: 0,
        fault_ns: 3_000_000,
        jump_ns: 2_500_000,
    };

    #[test]
    fn a_jump_must_pay_for_itself() {
        let t = JumpTunables::default();
        let mut now = 100_000_000;
        // Much data there, faults dearer than jumps: as the counter alone.
        let mut p = JumpPolicy::new(&t, 0);
        assert_eq!(burst(&mut p, &t, &mut now, &COSTS), Some(6));
        // Room here: the pages are pulled and stay, never a jump.
        let mut p = JumpPolicy::new(&t, 0);
        let room = FaultCosts {
            room_here: true,
            ..COSTS
        };
        assert_eq!(burst(&mut p, &t, &mut now, &room), None);
        // The owner holds one pull's worth: one fault saved cannot pay two jumps.
        let mut p = JumpPolicy::new(&t, 0);
        let little = FaultCosts {
            owner_pages: 8,
            ..COSTS
        };
        assert_eq!(burst(&mut p, &t, &mut now, &little), None);
        // Jumps dear (measured 20 ms): only a long streak pays (count > 2 * 20 / 3).
        let mut p = JumpPolicy::new(&t, 0);
        let dear = FaultCosts {
            jump_ns: 20_000_000,
            ..COSTS
        };
        assert_eq!(burst(&mut p, &t, &mut now, &dear), Some(14));
        // Not measured yet: the tunables' defaults stand in.
        let mut p = JumpPolicy::new(&t, 0);
        let unmeasured = FaultCosts {
            fault_ns: 0,
            jump_ns: 0,
            ..COSTS
        };
        assert_eq!(burst(&mut p, &t, &mut now, &unmeasured), Some(6));
        // The budget holds there too and the owner holds 4,096 pages past it: arriving
        // would send them back (512 pulls' worth), which no streak of this burst pays.
        let mut p = JumpPolicy::new(&t, 0);
        let full = FaultCosts {
            reclaim_there: 4096,
            ..COSTS
        };
        assert_eq!(burst(&mut p, &t, &mut now, &full), None);
        // A little past it (two pulls): the first streak over the threshold saves 18 ms,
        // more than two jumps and two pulls (11 ms).
        let mut p = JumpPolicy::new(&t, 0);
        let near = FaultCosts {
            reclaim_there: 16,
            ..COSTS
        };
        assert_eq!(burst(&mut p, &t, &mut now, &near), Some(6));
    }

    #[test]
    fn a_range_that_bounced_stops_jumping_for_a_while() {
        let t = JumpTunables::default();
        let mut now = 100_000_000;
        let mut p = JumpPolicy::new(&t, 0);
        assert!(burst(&mut p, &t, &mut now, &COSTS).is_some());
        p.on_departure(&t, now);
        // Back 10 ms later, having run there as long as between two faults here (0.5 ms,
        // one fault saved, 3 ms against two jumps' 5): it bounced.
        now += 10_000_000;
        let mut s = p;
        p.on_arrival_after(&t, now, 500_000, (3_000_000, 2_500_000));
        now += t.min_stay_ns;
        assert_eq!(
            burst(&mut p, &t, &mut now, &COSTS),
            None,
            "same range jumps again"
        );
        // Another range still may.
        let other = FaultCosts {
            addr: 0x8000_0000,
            ..COSTS
        };
        let mut q = p;
        assert!(burst(&mut q, &t, &mut now, &other).is_some());
        // Back as soon, having run 8 ms there (a scan through the pages there: 16 faults
        // saved, 48 ms against 5): no bounce.
        s.on_arrival_after(&t, now, 8_000_000, (3_000_000, 2_500_000));
        let mut s_now = now + t.min_stay_ns;
        assert!(burst(&mut s, &t, &mut s_now, &COSTS).is_some());
        // The hold ends.
        now += t.bounce_hold_ns;
        assert!(burst(&mut p, &t, &mut now, &COSTS).is_some());
        // A long stay away is no bounce.
        p.on_departure(&t, now);
        now += t.bounce_ns;
        p.on_arrival_after(&t, now, 0, (0, 0));
        now += t.min_stay_ns;
        assert!(burst(&mut p, &t, &mut now, &COSTS).is_some());
        // Nor is a departure that was not a policy jump (a syscall going home).
        let mut r = JumpPolicy::new(&t, 0);
        r.on_departure(&t, now);
        r.on_arrival_after(&t, now + 1, 0, (0, 0));
        now += t.min_stay_ns;
        assert!(burst(&mut r, &t, &mut now, &COSTS).is_some());
    }

    #[test]
    fn tunables_parse_and_refuse() {
        let mut t = JumpTunables::default();
        assert!(t.set("threshold", 9) && t.threshold == 9);
        assert!(t.set("enabled", 0) && !t.enabled);
        assert!(t.set("min_stay_us", 200) && t.min_stay_ns == 200_000);
        assert!(t.set("fault_cost_us", 900) && t.fault_cost_ns == 900_000);
        assert!(t.set("bounce_hold_us", 5) && t.bounce_hold_ns == 5_000);
        assert!(!t.set("jump_cost_us", 0));
        assert!(!t.set("threshold", 0));
        assert!(!t.set("enabled", 2));
        assert!(!t.set("bogus", 1));
    }
}
