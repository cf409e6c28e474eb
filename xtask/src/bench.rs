//! `cargo xtask bench [--quick] [--reps N] [--mem MiB] [--local MiB]`: the five workloads at
//! about 1.5x and 3x the memory they may use locally, under each configuration, interleaved
//! so machine noise cancels in the ratios. Every run's checksum must match the `limit` run of
//! the same input, else the row is marked failed. Results: out/bench/results.csv,
//! docs/BENCHMARKS.md (with `--write-docs`) and SVG plots in docs/bench/.
//!
//! Local memory is either the VM's (`--mem`, the default) or, with `--local L`, a limit on the
//! process in a VM of `--mem` MiB: a cgroup v2 `memory.high` of L MiB for the swap
//! configurations (reclaim to swap above it; `memory.max` would OOM-kill the process when
//! swap-out cannot keep up, which is not the comparison we want), an ElasticOS budget of L MiB
//! for the ElasticOS ones, which also run in the same `memory.high` cgroup: a stretched
//! process keeps `policy::MEMCG_MARGIN` pages below the cgroup's limit (so that the cgroup
//! never throttles it), whatever still passes the limit is throttled as the baselines' excess
//! is, and the baselines pass the soft limit where ElasticOS stays under it. Each run's cgroup
//! memory is sampled every 0.2 s and its mean reported beside its time: what each
//! configuration really had; a ratio of an ElasticOS run to a baseline it had more memory
//! than says so. Away from home the budget holds on the node the
//! process runs on (reclaim.rs), except in `eos-jump-unbounded`. Under emulation a remote
//! fault costs milliseconds, so `--local` is what keeps a full run bounded.
//!
//! Each configuration's VMs have a network hub of their own, so one pair's frames never
//! reach another configuration's VMs. A run of an ElasticOS configuration that moved no
//! page never left its node: it is reported as such, with no ratio.
//!
//! Configurations (each in its own VM(s) of our kernel, all booted once per bench):
//! - `limit`: one VM with memory for the whole footprint (the physical best case);
//! - `local-swap`: swap on a local virtio disk;
//! - `zram`: compressed RAM swap;
//! - `nbd-swap`: swap on an NBD device exported by a peer VM (nbd-server, over the same
//!   virtual network), the original ElasticOS paper's baseline;
//! - `eos-pull`: ElasticOS with the jump policy off (pull/push only);
//! - `eos-jump`: ElasticOS with the default jump policy; the budget holds on the node the
//!   process runs on (`budget_away`: a member running it keeps no more than the home may);
//! - `eos-jump-unbounded`: the same with `budget_away` 0: a shell running the process takes
//!   what its node has, as the 2018 ElasticOS used its peer's memory (not like-for-like
//!   with the baselines' local memory: reported beside, never as the fair ratio);
//! - `eos-pull-clear`: eos-pull on a link that authenticates its frames but does not encrypt
//!   them (`confidentiality` 0 on both nodes), as NBD's carries pages in clear: what the
//!   cipher costs (under emulation the guest's AES-NI is software).

use crate::cluster::{
    self, boot_mesh, exit_stats, field, last_line, p50_p99, result_line, wait_links, JumpLog,
};
use crate::image;
use crate::util::{out_dir, project_root};
use crate::vm::{self, Cluster, Vm};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// What `cargo xtask bench` was asked for (its flags; the test suite fills it for `--quick`).
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Harness check: one 16 MiB footprint (it fits: a 32 MiB bsort did not, and thrashed for 46 s), one repetition
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of each run (the largest footprint gets one)
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub reps: u32,
    /// Memory of each VM, MiB (at 128 the guest's 40 MiB initramfs no longer unpacks whole
    /// in every VM: "Initramfs unpacking failed: write error", a program refused with ETXTBSY)
    #[arg(long, default_value_t = 192, value_name = "MiB")]
    pub mem: u32,
    /// Memory each run may use locally, MiB (cgroup memory.high or ElasticOS budget; 0 or
    /// absent: the VM's)
    #[arg(long, value_name = "MiB")]
    pub local: Option<u32>,
    /// Seconds after which a run is stopped and counted as a timeout
    #[arg(long = "cap", default_value_t = 240, value_name = "SECS")]
    pub cap_s: u32,
    /// Also write docs/BENCHMARKS.md and docs/bench/*.svg
    #[arg(long)]
    pub write_docs: bool,
    /// Only the micro-benchmarks (link, remote fault, jump, push) on one ElasticOS pair,
    /// encrypted and then integrity-only, printed
    #[arg(long)]
    pub micro: bool,
    /// Only these workloads (comma-separated names, e.g. `lsearch,bsort`); default: all five
    #[arg(long, value_name = "NAMES", value_parser = parse_workloads)]
    pub only: Option<WorkloadSet>,
    /// Only these configurations (comma-separated, e.g. `nbd-swap,eos-jump`); `limit`, the
    /// checksums' truth, always runs. Default: all. The micro-benchmarks need `eos-jump`.
    #[arg(long, value_name = "NAMES", value_parser = parse_configs)]
    pub configs: Option<ConfigSet>,
    /// Only this footprint, MiB, instead of 1.5x and 3x the local memory
    #[arg(long, value_name = "MiB")]
    pub footprint: Option<u32>,
}

/// A subset of [`CONFIGS`], one bit per configuration in its order (`limit` always in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigSet(pub u8);

impl ConfigSet {
    fn has(self, name: &str) -> bool {
        CONFIGS
            .iter()
            .position(|c| *c == name)
            .is_some_and(|i| i == 0 || self.0 & (1 << i) != 0)
    }
}

fn parse_configs(s: &str) -> std::result::Result<ConfigSet, String> {
    let mut set = 1u8;
    for name in s.split(',').filter(|n| !n.is_empty()) {
        let i = CONFIGS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("no configuration `{name}` (there are {CONFIGS:?})"))?;
        set |= 1 << i;
    }
    Ok(ConfigSet(set))
}

/// A subset of [`image::WORKLOADS`], one bit per workload in its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadSet(pub u8);

impl WorkloadSet {
    fn has(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    /// The names, comma-separated, in the workloads' order.
    fn names(self) -> String {
        image::WORKLOADS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.has(*i))
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn parse_workloads(s: &str) -> std::result::Result<WorkloadSet, String> {
    let mut set = 0u8;
    for name in s.split(',').filter(|n| !n.is_empty()) {
        let i = image::WORKLOADS
            .iter()
            .position(|w| *w == name)
            .ok_or_else(|| format!("no workload `{name}` (there are {:?})", image::WORKLOADS))?;
        set |= 1 << i;
    }
    if set == 0 {
        return Err("no workload named".to_string());
    }
    Ok(WorkloadSet(set))
}

/// How a configuration runs a workload.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// As is (in the local-memory cgroup with `--local`).
    Plain,
    /// Marked elastic (with a budget with `--local`).
    Elastic,
}

/// One configuration's VM(s).
struct Config {
    name: &'static str,
    kind: Kind,
    vm: Vm,
    /// The NBD server VM, kept alive while the client runs.
    _server: Option<Vm>,
}

/// One measured run.
#[derive(Clone)]
struct Row {
    rep: u32,
    workload: String,
    footprint_mib: u32,
    config: String,
    wall_s: f64,
    /// The workload's own time after it built its input (its `TIME compute_s`): wall time
    /// less this is start-up, building the input and, for eos-*, the stretch.
    compute_s: f64,
    /// Stopped at `RUN_CAP_S`: no result, and not counted as a failure.
    timed_out: bool,
    checksum: String,
    ok: bool,
    swap_in_pages: u64,
    swap_out_pages: u64,
    net_bytes: u64,
    peak_rss_kib: u64,
    pulls: u64,
    pushes: u64,
    jumps: u64,
    /// Pages whose data crossed: pulled, plus pushed less those pushed by reference (the
    /// counterpart of pages swapped in and out: Linux writes no clean page to swap again).
    moved_pages: u64,
    /// An ElasticOS run that moved at least one page (false for other configurations).
    stretched: bool,
    /// The run's cgroup (`--local`) memory use, sampled every 0.2 s, mean: the local
    /// memory it really had (`memory.high` is a soft limit). 0: not sampled.
    mean_local_kib: u64,
}

fn counters(v: &mut Vm) -> Result<(u64, u64, u64)> {
    let out = v.sh(
        "grep -E '^pswp(in|out) ' /proc/vmstat; cat /sys/class/net/eth0/statistics/rx_bytes \
         /sys/class/net/eth0/statistics/tx_bytes",
    )?;
    let mut pin = 0;
    let mut pout = 0;
    let mut net = 0;
    for l in out.lines() {
        let mut w = l.split_whitespace();
        match (w.next(), w.next()) {
            (Some("pswpin"), Some(n)) => pin = n.parse().unwrap_or(0),
            (Some("pswpout"), Some(n)) => pout = n.parse().unwrap_or(0),
            (Some(n), None) => net += n.parse::<u64>().unwrap_or(0),
            _ => {}
        }
    }
    Ok((pin, pout, net))
}

/// A run longer than this many seconds is stopped and reported as a timeout, so a full bench
/// stays bounded (`--cap`).
static RUN_CAP_S: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(240);

fn run_cap() -> u32 {
    RUN_CAP_S.load(std::sync::atomic::Ordering::Relaxed)
}

/// The cgroup a swap configuration runs workloads in with `--local`.
const CGROUP: &str = "/sys/fs/cgroup/bench";

fn boot_configs(
    cluster: &Cluster,
    mem: u32,
    max_fp: u32,
    local: Option<u32>,
    want: ConfigSet,
) -> Result<Vec<Config>> {
    let swap_mib = 2 * max_fp + 64;
    let dir = out_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let mut configs = Vec::new();
    // The same `memory.high` for every configuration. (An ElasticOS process keeps
    // `policy::MEMCG_MARGIN` pages below it, so its budget of L gives it less than L; given L
    // plus that margin, it had 0.1-0.4 MiB more mean memory than nbd-swap in a run: never
    // more than its baseline, so the margin stays its loss. The mean each run had is in its
    // cell.)
    let limit_cg = |v: &mut Vm| -> Result<()> {
        if let Some(l) = local {
            v.sh(&format!(
                "mkdir -p /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && \
                 echo +memory > /sys/fs/cgroup/cgroup.subtree_control && mkdir {CGROUP} && \
                 echo {l}M > {CGROUP}/memory.high"
            ))?;
        }
        Ok(())
    };

    let limit = cluster
        .on_hub(1)
        .boot_with(3, "bench-limit", max_fp + 256, &[])?;
    configs.push(Config {
        name: "limit",
        kind: Kind::Plain,
        vm: limit,
        _server: None,
    });

    if want.has("local-swap") {
        let disk = dir.join("swap.img");
        let _ = std::fs::remove_file(&disk);
        // A sparse raw image: the guest sees a disk of `swap_mib`, the host stores what is written.
        std::fs::File::create(&disk)?.set_len((swap_mib as u64) << 20)?;
        let drive = format!(
            "file={},format=raw,if=virtio,cache=none,aio=threads",
            disk.display()
        );
        let mut local_vm =
            cluster
                .on_hub(2)
                .boot_with(4, "bench-localswap", mem, &["-drive", &drive])?;
        local_vm.sh("mkswap /dev/vda >/dev/null && swapon /dev/vda")?;
        limit_cg(&mut local_vm)?;
        configs.push(Config {
            name: "local-swap",
            kind: Kind::Plain,
            vm: local_vm,
            _server: None,
        });
    }

    if want.has("zram") {
        let mut z = cluster.on_hub(3).boot_with(5, "bench-zram", mem, &[])?;
        z.sh(&format!(
            "echo {swap_mib}M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0"
        ))?;
        limit_cg(&mut z)?;
        configs.push(Config {
            name: "zram",
            kind: Kind::Plain,
            vm: z,
            _server: None,
        });
    }

    if want.has("nbd-swap") {
        let nbd_hub = cluster.on_hub(4);
        let mut server = nbd_hub.boot_with(2, "bench-nbdserver", swap_mib + 192, &[])?;
        server.sh(&format!(
            "dd if=/dev/zero of=/tmp/swap.img bs=1M count=0 seek={swap_mib} 2>/dev/null && \
             nbd-server 10809 /tmp/swap.img -C /dev/null >/dev/null 2>&1"
        ))?;
        let mut client = nbd_hub.boot_with(1, "bench-nbdclient", mem, &[])?;
        client.sh(&format!(
            "nbd-client {} 10809 /dev/nbd0 -N '' >/dev/null 2>&1 || nbd-client {} 10809 /dev/nbd0 >/dev/null; \
             mkswap /dev/nbd0 >/dev/null && swapon /dev/nbd0",
            vm::ip(2),
            vm::ip(2)
        ))?;
        limit_cg(&mut client)?;
        configs.push(Config {
            name: "nbd-swap",
            kind: Kind::Plain,
            vm: client,
            _server: Some(server),
        });
    }

    // ElasticOS: the home node runs the workload marked elastic with the same local memory,
    // its peer has room for the rest. One pair with the jump policy off, one with it on.
    // `eos-pull-clear` is eos-pull on a link that authenticates but does not encrypt (as the
    // NBD link carries pages in clear): what the cipher costs under the same workload.
    for (name, home_id, peer_id, policy, hub, budget_away) in [
        ("eos-pull", 6, 7, "enabled=0", 5, true),
        ("eos-jump", 8, 9, "enabled=1", 6, true),
        ("eos-jump-unbounded", 10, 11, "enabled=1", 7, false),
        ("eos-pull-clear", 12, 13, "enabled=0", 8, true),
    ] {
        if !want.has(name) {
            continue;
        }
        let mut c = eos_pair(
            &cluster.on_hub(hub),
            name,
            (home_id, mem),
            (peer_id, swap_mib + 192),
            policy,
        )?;
        c.vm.sh(&format!(
            "echo {} > /sys/kernel/elastic/budget_away",
            u8::from(budget_away)
        ))?;
        if name == "eos-pull-clear" {
            relink(&mut c, peer_id, true)?;
        }
        limit_cg(&mut c.vm)?;
        configs.push(c);
    }

    for c in configs.iter_mut() {
        let s = c.vm.sh("free -m | sed -n 2,3p")?;
        eprintln!(
            "bench: {} ready: {}",
            c.name,
            s.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
    Ok(configs)
}

/// An ElasticOS pair as a configuration: `home` (id, MiB) runs the workloads, `peer` has
/// room for the rest; `policy` for `eosctl jumppolicy` on both.
fn eos_pair(
    cluster: &Cluster,
    name: &'static str,
    home: (usize, u32),
    peer: (usize, u32),
    policy: &str,
) -> Result<Config> {
    let (peer_tag, home_tag) = (format!("bench-{name}-peer"), format!("bench-{name}-home"));
    let mut pair = boot_mesh(
        cluster,
        &[(peer.0, &peer_tag, peer.1), (home.0, &home_tag, home.1)],
    )?;
    let mut home_vm = pair.pop().context("no home VM")?;
    let mut peer_vm = pair.pop().context("no peer VM")?;
    wait_links(&mut home_vm, &[peer.0])?;
    home_vm.sh(&format!("eosctl jumppolicy {policy}"))?;
    peer_vm.sh(&format!("eosctl jumppolicy {policy}"))?;
    Ok(Config {
        name,
        kind: Kind::Elastic,
        vm: home_vm,
        _server: Some(peer_vm),
    })
}

/// `--micro`: only the micro-benchmarks, full size, on one ElasticOS pair: encrypted, then
/// integrity only, in the same run. Prints them with the configuration.
fn micro_only(mem: u32) -> Result<()> {
    let (t, cluster) = cluster::build(mem)?;
    let start = Instant::now();
    let mut c = eos_pair(
        &cluster,
        "eos-jump",
        (8, mem),
        (9, 2 * mem + 256),
        "enabled=1",
    )?;
    let r = micro_both(&mut c, 9, false);
    let trouble = cluster::poweroff_all(std::iter::once(c.vm).chain(c._server));
    let md = r?;
    if !trouble.is_empty() {
        bail!("kernel trouble during the micro-benchmarks: {trouble:?}");
    }
    println!(
        "Micro-benchmarks (`cargo xtask bench --micro`): Linux {} with ElasticOS, VMs under {:?},          1 vCPU each, home {mem} MiB, peer {} MiB, QEMU socket multicast hub; {:.0} min\n\n{md}",
        t.version,
        cluster.accel(),
        2 * mem + 256,
        start.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// Total jumps in a node's jump log.
fn jumps_total(v: &mut Vm) -> Result<u64> {
    Ok(JumpLog::parse(&v.sh("eosctl jumplog | head -1")?).total)
}

fn run_one(c: &mut Config, workload: &str, fp: u32, rep: u32, local: Option<u32>) -> Result<Row> {
    let (i0, o0, n0) = counters(&mut c.vm)?;
    let j0 = if c.kind == Kind::Elastic {
        jumps_total(&mut c.vm)?
    } else {
        0
    };
    // `EOS_BENCH_TRACE=1`: the elastic tracepoints of both nodes go into the run's log.
    let trace = c.kind == Kind::Elastic && std::env::var("EOS_BENCH_TRACE").is_ok_and(|v| v == "1");
    if trace {
        // Best effort: a run without its trace is still a run.
        let on = "echo 4096 > /sys/kernel/tracing/buffer_size_kb; \
                  echo > /sys/kernel/tracing/trace; \
                  echo 1 > /sys/kernel/tracing/events/elastic/enable";
        let _ = c.vm.sh(on);
        if let Some(v) = c._server.as_mut() {
            let _ = v.sh(on);
        }
    }
    let mark = c.vm.console().len();
    let peer_mark = c._server.as_ref().map_or(0, |v| v.console().len());
    let start = Instant::now();
    let cap = format!("timeout {}", run_cap());
    // The cgroup's memory use, sampled from outside it (the sampler is forked before the
    // shell joins the cgroup) until the run ends: what each configuration really had locally.
    let sampled = local.is_some() && c.name != "limit";
    let sampler = format!(
        "rm -f /tmp/bench-stop; (while [ ! -e /tmp/bench-stop ]; do cat {CGROUP}/memory.current; \
         sleep 0.2; done > /tmp/bench-memcur 2>/dev/null &); "
    );
    let cmd = match (c.kind, local, c.name) {
        (Kind::Elastic, Some(l), _) => format!(
            "sh -c '{sampler}echo $$ > {CGROUP}/cgroup.procs && exec {cap} eosctl run --elastic --budget {l} -- {workload} {fp}'"
        ),
        (Kind::Elastic, None, _) => format!("{cap} eosctl run --elastic -- {workload} {fp}"),
        (Kind::Plain, Some(_), n) if n != "limit" => {
            format!("sh -c '{sampler}echo $$ > {CGROUP}/cgroup.procs && exec {cap} {workload} {fp}'")
        }
        _ => format!("{cap} {workload} {fp}"),
    };
    let (rc, out) = c.vm.run(&cmd, Duration::from_secs(3600))?;
    let wall_s = start.elapsed().as_secs_f64();
    let mean_local_kib = if sampled {
        let m = c.vm.sh(
            "touch /tmp/bench-stop; sleep 0.3; \
             awk '{ s += $1; n++ } END { if (n) printf \"mean=%d\\n\", s / n / 1024 }' /tmp/bench-memcur; \
             rm -f /tmp/bench-memcur",
        )?;
        field(&m, "mean").unwrap_or(0)
    } else {
        0
    };
    let timed_out = rc == 124 || rc == 143;
    let (i1, o1, n1) = counters(&mut c.vm)?;
    let (mut pulls, mut pushes, mut jumps, mut moved_pages) = (0, 0, 0, 0);
    if c.kind == Kind::Elastic {
        std::thread::sleep(Duration::from_millis(300));
        if let Some(m) = exit_stats(cluster::since(&c.vm.console(), mark), workload) {
            (pulls, pushes, moved_pages) = (m.pulls, m.pushes, m.pages());
        }
        jumps = jumps_total(&mut c.vm)?.saturating_sub(j0);
        // Both nodes' kernel lines of the run and jump logs, to see where its time went.
        let jumps_home = c.vm.sh("eosctl jumplog | tail -40").unwrap_or_default();
        let jumps_peer = c
            ._server
            .as_mut()
            .map(|v| v.sh("eosctl jumplog | tail -40").unwrap_or_default())
            .unwrap_or_default();
        let dump = |v: &mut Vm| {
            if !trace {
                return String::new();
            }
            let t = v
                .sh("echo 0 > /sys/kernel/tracing/events/elastic/enable; grep -v '^#' /sys/kernel/tracing/trace")
                .unwrap_or_default();
            format!("== trace\n{t}")
        };
        let trace_home = dump(&mut c.vm);
        let trace_peer = c._server.as_mut().map(dump).unwrap_or_default();
        let peer = c._server.as_ref().map_or(String::new(), |v| v.console());
        let log = out_dir().join(format!("bench/logs/{}-{workload}-{fp}-{rep}.log", c.name));
        let _ = std::fs::create_dir_all(out_dir().join("bench/logs"));
        let _ = std::fs::write(
            log,
            format!(
                "== home\n{}\n== peer\n{}\n== home jumps\n{jumps_home}\n== peer jumps\n{jumps_peer}\n== home {trace_home}\n== peer {trace_peer}",
                cluster::since(&c.vm.console(), mark),
                cluster::since(&peer, peer_mark)
            ),
        );
    }
    let result = result_line(&out);
    let checksum = result
        .and_then(|l| field(l, "checksum"))
        .unwrap_or_else(|| "-".to_string());
    let time_line = out.lines().find(|l| l.starts_with("TIME "));
    let peak = time_line
        .and_then(|l| field(l, "peak_rss_kib"))
        .unwrap_or(0);
    let compute_s = time_line.and_then(|l| field(l, "compute_s")).unwrap_or(0.0);
    Ok(Row {
        rep,
        workload: workload.to_string(),
        footprint_mib: fp,
        config: c.name.to_string(),
        wall_s,
        compute_s,
        timed_out,
        ok: rc == 0 && result.is_some(),
        checksum,
        swap_in_pages: i1.saturating_sub(i0),
        swap_out_pages: o1.saturating_sub(o0),
        net_bytes: n1.saturating_sub(n0),
        peak_rss_kib: peak,
        pulls,
        pushes,
        jumps,
        moved_pages,
        stretched: c.kind == Kind::Elastic && moved_pages > 0,
        mean_local_kib,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Marks rows whose checksum differs from the limit run of the same input.
fn verify(rows: &mut [Row]) {
    let truth: BTreeMap<(String, u32), String> = rows
        .iter()
        .filter(|r| r.config == "limit" && r.ok)
        .map(|r| ((r.workload.clone(), r.footprint_mib), r.checksum.clone()))
        .collect();
    for r in rows.iter_mut().filter(|r| !r.timed_out) {
        let want = truth.get(&(r.workload.clone(), r.footprint_mib));
        if want != Some(&r.checksum) {
            r.ok = false;
        }
    }
}

/// The configurations, in the order of the table's columns.
const CONFIGS: [&str; 8] = [
    "limit",
    "local-swap",
    "zram",
    "nbd-swap",
    "eos-pull",
    "eos-jump",
    "eos-jump-unbounded",
    "eos-pull-clear",
];

/// The columns of results.csv, in order (`timed_out` and `stretched` last: older files lack
/// them).
const CSV_HEAD: &str = "rep,workload,footprint_mib,config,wall_s,compute_s,checksum,ok,swap_in_pages,swap_out_pages,net_bytes,peak_rss_kib,pulls,pushes,jumps,moved_pages,timed_out,stretched,mean_local_kib";

fn csv(rows: &[Row]) -> String {
    let mut s = format!("{CSV_HEAD}\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{:.3},{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.rep,
            r.workload,
            r.footprint_mib,
            r.config,
            r.wall_s,
            r.compute_s,
            r.checksum,
            r.ok,
            r.swap_in_pages,
            r.swap_out_pages,
            r.net_bytes,
            r.peak_rss_kib,
            r.pulls,
            r.pushes,
            r.jumps,
            r.moved_pages,
            r.timed_out,
            r.stretched,
            r.mean_local_kib
        );
    }
    s
}

/// Rows back from [`csv`]'s text. A file without the last two columns (written before they
/// were) reads a run as stopped if it has no checksum and is not ok, and an ElasticOS run as
/// stretched if it moved a page.
fn rows_from_csv(text: &str) -> Result<Vec<Row>> {
    let mut lines = text.lines();
    let head = lines.next().context("an empty file")?;
    if !CSV_HEAD.starts_with(head) || head.split(',').count() < 16 {
        bail!("not a bench results file (header `{head}`)");
    }
    let mut rows = Vec::new();
    for (n, l) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split(',').collect();
        if f.len() < 16 {
            bail!("line {}: {} fields", n + 2, f.len());
        }
        let num = |i: usize| -> Result<u64> {
            f[i].parse()
                .with_context(|| format!("line {}: field {} `{}`", n + 2, i + 1, f[i]))
        };
        let real = |i: usize| -> Result<f64> {
            f[i].parse()
                .with_context(|| format!("line {}: field {} `{}`", n + 2, i + 1, f[i]))
        };
        let ok = f[7] == "true";
        let moved_pages = num(15)?;
        rows.push(Row {
            rep: num(0)? as u32,
            workload: f[1].to_string(),
            footprint_mib: num(2)? as u32,
            config: f[3].to_string(),
            wall_s: real(4)?,
            compute_s: real(5)?,
            checksum: f[6].to_string(),
            ok,
            swap_in_pages: num(8)?,
            swap_out_pages: num(9)?,
            net_bytes: num(10)?,
            peak_rss_kib: num(11)?,
            pulls: num(12)?,
            pushes: num(13)?,
            jumps: num(14)?,
            moved_pages,
            timed_out: f.get(16).map_or(!ok && f[6] == "-", |v| *v == "true"),
            stretched: f
                .get(17)
                .map_or(f[3].starts_with("eos") && moved_pages > 0, |v| *v == "true"),
            mean_local_kib: f.get(18).and_then(|v| v.parse().ok()).unwrap_or(0),
        });
    }
    Ok(rows)
}

/// `cargo xtask bench-plots CSV`: the table and plots of a finished run, from its rows.
pub fn plots_from(path: &std::path::Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows = rows_from_csv(&text)?;
    let names: Vec<&str> = CONFIGS
        .into_iter()
        .filter(|c| rows.iter().any(|r| r.config == *c))
        .collect();
    let phys = Physical {
        local_mib: None,
        link_mib_s: None,
    };
    let (doc, time_svg, speed_svg) = markdown(
        &rows,
        &format!("- rows: {}", path.display()),
        &format!("cargo xtask bench-plots {}", path.display()),
        &names,
        "",
        phys,
    );
    let dir = out_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("time.svg"), time_svg)?;
    std::fs::write(dir.join("speedup.svg"), speed_svg)?;
    println!("{doc}");
    Ok(())
}

type Key = (String, u32, String);

/// Medians over the repetitions of one (workload, footprint, configuration).
struct Summary {
    med: f64,
    min: f64,
    max: f64,
    ok: bool,
    timeouts: usize,
    runs: usize,
    swap_pages: u64,
    net_mib: f64,
    pulls: u64,
    jumps: u64,
    moved_pages: u64,
    /// Median of the runs' mean cgroup memory (0: not sampled).
    local_mib: f64,
    /// An ElasticOS configuration none of whose finished runs moved a page.
    never_left: bool,
}

fn summarize(rows: &[Row]) -> BTreeMap<Key, Summary> {
    let mut groups: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.workload.clone(), r.footprint_mib, r.config.clone()))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|(k, rs)| {
            let mut t: Vec<f64> = rs.iter().map(|r| r.wall_s).collect();
            let (min, max) = t
                .iter()
                .fold((f64::MAX, 0f64), |(a, b), x| (a.min(*x), b.max(*x)));
            let med_of = |f: &dyn Fn(&Row) -> f64| {
                let mut v: Vec<f64> = rs.iter().map(|r| f(r)).collect();
                median(&mut v)
            };
            let swap_pages = med_of(&|r| (r.swap_in_pages + r.swap_out_pages) as f64) as u64;
            let net_mib = med_of(&|r| r.net_bytes as f64 / 1048576.0);
            let pulls = med_of(&|r| r.pulls as f64) as u64;
            let jumps = med_of(&|r| r.jumps as f64) as u64;
            let moved_pages = med_of(&|r| r.moved_pages as f64) as u64;
            let local_mib = med_of(&|r| r.mean_local_kib as f64 / 1024.0);
            let never_left = k.2.starts_with("eos")
                && rs.iter().all(|r| r.timed_out || !r.stretched)
                && rs.iter().any(|r| !r.timed_out);
            (
                k,
                Summary {
                    med: median(&mut t),
                    min,
                    max,
                    ok: rs.iter().all(|r| r.ok || r.timed_out),
                    timeouts: rs.iter().filter(|r| r.timed_out).count(),
                    runs: rs.len(),
                    swap_pages,
                    net_mib,
                    pulls,
                    jumps,
                    moved_pages,
                    local_mib,
                    never_left,
                },
            )
        })
        .collect()
}

fn svg_bars(title: &str, groups: &[(String, Vec<(String, f64)>)], unit: &str) -> String {
    let colors = [
        "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
    ];
    let max = groups
        .iter()
        .flat_map(|(_, b)| b.iter().map(|(_, v)| *v))
        .fold(0f64, f64::max)
        .max(1e-9);
    let bar_w = 14.0;
    let group_w = groups.first().map_or(1, |g| g.1.len()) as f64 * bar_w + 20.0;
    let width = 80.0 + group_w * groups.len() as f64 + 160.0;
    let height = 320.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <text x=\"10\" y=\"18\" font-size=\"14\">{title}</text>\n\
         <line x1=\"60\" y1=\"260\" x2=\"{:.0}\" y2=\"260\" stroke=\"black\"/>\n\
         <text x=\"10\" y=\"40\">{max:.1} {unit}</text>\n",
        width - 160.0
    );
    let mut legend: Vec<String> = Vec::new();
    for (gi, (label, bars)) in groups.iter().enumerate() {
        let x0 = 70.0 + gi as f64 * group_w;
        for (bi, (name, v)) in bars.iter().enumerate() {
            if !legend.contains(name) {
                legend.push(name.clone());
            }
            let ci = legend.iter().position(|n| n == name).unwrap_or(0) % colors.len();
            let h = 220.0 * v / max;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{name}: {v:.2} {unit}</title></rect>",
                x0 + bi as f64 * bar_w,
                260.0 - h,
                bar_w - 2.0,
                colors[ci]
            );
        }
        let _ = writeln!(s, "<text x=\"{x0:.1}\" y=\"278\">{label}</text>");
    }
    for (i, name) in legend.iter().enumerate() {
        let y = 50.0 + i as f64 * 16.0;
        let x = width - 150.0;
        let _ = writeln!(
            s,
            "<rect x=\"{x:.0}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{y:.0}\">{name}</text>",
            y - 9.0,
            colors[i % colors.len()],
            x + 14.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// What bounds every run from below: the `limit` run's time plus the bytes that must cross
/// the link at least once (the footprint beyond local memory) at the link's measured
/// bandwidth. `None` without a bandwidth or a limit run.
#[derive(Clone, Copy)]
struct Physical {
    /// Local memory of every run, MiB (`None`: the VM's, the footprint's excess unknown).
    local_mib: Option<u32>,
    /// User-space TCP bandwidth between two VMs, MiB/s, measured in the same run.
    link_mib_s: Option<f64>,
}

impl Physical {
    fn floor_s(&self, limit_s: f64, footprint_mib: u32) -> Option<f64> {
        let (l, bw) = (self.local_mib?, self.link_mib_s?);
        (bw > 0.0).then(|| limit_s + footprint_mib.saturating_sub(l) as f64 / bw)
    }
}

fn markdown(
    rows: &[Row],
    env: &str,
    cmd: &str,
    configs: &[&str],
    micro: &str,
    phys: Physical,
) -> (String, String, String) {
    let sum = summarize(rows);
    let mut keys: Vec<(String, u32)> = sum.keys().map(|(w, f, _)| (w.clone(), *f)).collect();
    keys.dedup();
    let ratios = [
        ("eos-jump", "nbd-swap"),
        ("eos-pull", "nbd-swap"),
        ("eos-jump-unbounded", "nbd-swap"),
        ("eos-pull-clear", "nbd-swap"),
        ("eos-jump", "eos-pull"),
        ("eos-jump", "limit"),
        ("nbd-swap", "limit"),
    ];
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| workload | footprint | {} | physical limit | {} |",
        configs.join(" | "),
        ratios.map(|(a, b)| format!("{a} / {b}")).join(" | ")
    );
    let _ = writeln!(
        md,
        "|---|---|{}---|{}",
        "---|".repeat(configs.len()),
        "---|".repeat(ratios.len())
    );
    let mut time_groups = Vec::new();
    let mut speed_groups = Vec::new();
    for (w, f) in &keys {
        let mut cells = Vec::new();
        let mut bars = Vec::new();
        let get = |c: &str| sum.get(&(w.clone(), *f, c.to_string()));
        for c in configs {
            match get(c) {
                Some(x) if x.timeouts > 0 => {
                    cells.push(format!(
                        "> {} s ({} of {} runs stopped)",
                        run_cap(),
                        x.timeouts,
                        x.runs
                    ));
                    bars.push((c.to_string(), run_cap() as f64));
                }
                Some(x) => {
                    let mut cell = format!("{:.1} s ({:.1}–{:.1})", x.med, x.min, x.max);
                    // Pages that crossed per page of the footprint: how often each moved.
                    let per_page = |n: u64| n as f64 / (*f as f64 * 256.0);
                    if x.swap_pages > 0 {
                        let _ = write!(
                            cell,
                            ", {} pages swapped ({:.1} per footprint page)",
                            x.swap_pages,
                            per_page(x.swap_pages)
                        );
                    }
                    if x.local_mib > 0.0 {
                        let _ = write!(cell, ", {:.1} MiB local (mean)", x.local_mib);
                    }
                    if *c == "nbd-swap" || c.starts_with("eos") {
                        let _ = write!(cell, ", {:.0} MiB on wire", x.net_mib);
                    }
                    if x.never_left {
                        cell.push_str(", **never left its node** (0 pages moved)");
                    } else if c.starts_with("eos") {
                        let _ = write!(
                            cell,
                            ", {} pages moved ({:.1} per footprint page), {} pulls, {} jumps",
                            x.moved_pages,
                            per_page(x.moved_pages),
                            x.pulls,
                            x.jumps
                        );
                    }
                    if !x.ok {
                        cell.push_str(" **FAILED checksum/exit**");
                    }
                    cells.push(cell);
                    bars.push((c.to_string(), x.med));
                }
                None => cells.push("–".into()),
            }
        }
        let floor = get("limit")
            .filter(|l| l.timeouts == 0)
            .and_then(|l| phys.floor_s(l.med, *f));
        let floor_cell = floor.map_or("–".to_string(), |t| format!("{t:.1} s"));
        let ratio = |a: &str, b: &str| match (get(a), get(b)) {
            (Some(x), Some(y)) if x.never_left || y.never_left => "n/a: never left its node".into(),
            (Some(x), Some(y)) if x.timeouts > 0 && y.timeouts == 0 => {
                format!("> {:.2}", run_cap() as f64 / y.med)
            }
            (Some(x), Some(y)) if y.timeouts > 0 && x.timeouts == 0 => {
                format!("< {:.2}", x.med / run_cap() as f64)
            }
            (Some(x), Some(y)) if y.med > 0.0 && x.timeouts == 0 => {
                // ElasticOS measured against a baseline it had more local memory than: said.
                let more = a.starts_with("eos")
                    && !b.starts_with("eos")
                    && y.local_mib > 0.0
                    && x.local_mib > y.local_mib;
                format!(
                    "{:.2}{}",
                    x.med / y.med,
                    if more {
                        " (**more local memory than the baseline**)"
                    } else {
                        ""
                    }
                )
            }
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {w} | {f} MiB | {} | {floor_cell} | {} |",
            cells.join(" | "),
            ratios.map(|(a, b)| ratio(a, b)).join(" | ")
        );
        time_groups.push((format!("{w} {f}M"), bars.clone()));
        if let Some(n) = get("nbd-swap") {
            // A run that never left its node is no speedup: no bar.
            let speed: Vec<(String, f64)> = bars
                .iter()
                .map(|(c, t)| {
                    let real = get(c).is_some_and(|x| !x.never_left) && *t > 0.0;
                    (c.clone(), if real { n.med / t } else { 0.0 })
                })
                .collect();
            speed_groups.push((format!("{w} {f}M"), speed));
        }
    }
    let doc = format!(
        "# Benchmarks\n\nMeasured by `{cmd}`; every figure below was run, none is estimated. \
         Regenerate with the same command (it rewrites this file, `docs/bench/*.svg` and \
         `out/bench/results.csv`).\n\n## Configuration\n\n{env}\n\n## Wall time per run \
         (median, min–max over repetitions)\n\nA run is one workload process, from start to \
         exit (building its input included). Each row's checksum is compared with the `limit` \
         run of the same input; a mismatch or a crash is marked FAILED. Ratios are of medians; \
         below 1 the first configuration is faster. An ElasticOS run that moved no page never \
         left its node and gets no ratio. The physical limit is the `limit` run's time plus \
         the footprint beyond local memory sent once at the link's measured bandwidth: no \
         configuration that keeps only the local memory can beat it.\n\n{md}\n\
         ![time per workload](bench/time.svg)\n\n![speedup over network swap](bench/speedup.svg)\n\n\
         ## Micro-benchmarks\n\n{micro}\n"
    );
    (
        doc,
        svg_bars("Wall time per run (median)", &time_groups, "s"),
        svg_bars(
            "Speedup over network swap (nbd-swap time / config time)",
            &speed_groups,
            "x",
        ),
    )
}

/// `lat_us` values of a node's jump log.
fn jump_lats(v: &mut Vm) -> Result<Vec<u64>> {
    Ok(JumpLog::parse(&v.sh("eosctl jumplog")?).lat_us)
}

/// Micro-benchmarks on an ElasticOS pair (`home` runs, its peer is `peer_id`): link round
/// trip and bandwidth, remote fault latency, jump latency, push throughput.
fn micro(c: &mut Config, peer_id: usize, quick: bool) -> Result<String> {
    let home = &mut c.vm;
    let peer = c._server.as_mut().context("no peer VM")?;
    let mut out = String::new();
    // A link just made (the integrity-only relink) has no heartbeat RTT yet (0): wait for
    // its first, up to 10 s.
    let mut srtt = "?".to_string();
    for _ in 0..20 {
        match field::<u64>(&home.sh("eosctl peers")?, "srtt_us") {
            Some(v) if v > 0 => {
                srtt = v.to_string();
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
    // Link bandwidth: 32 MiB from user space through TCP (busybox nc exits at end of input).
    peer.sh("nc -l -p 5001 > /dev/null 2>&1 & sleep 0.5")?;
    let start = Instant::now();
    home.sh(&format!(
        "dd if=/dev/zero bs=64k count=512 2>/dev/null | nc {} 5001",
        vm::ip(peer_id)
    ))?;
    let secs = start.elapsed().as_secs_f64();
    let _ = writeln!(
        out,
        "- link: heartbeat smoothed RTT {srtt} us; TCP between user spaces (dd | nc, 32 MiB): \
         {:.1} MiB/s ({secs:.1} s)",
        32.0 / secs
    );

    // Remote fault latency: linear search with most of its array on the peer, jumps off.
    home.sh("eosctl jumppolicy enabled=0")?;
    peer.sh("eosctl jumppolicy enabled=0")?;
    let fp = if quick { 16 } else { 48 };
    // This run's exit line only: a second call (the integrity-only link) would otherwise
    // read the first one's.
    let mark = home.console().len();
    home.sh(&format!(
        "eosctl run --elastic --budget 8 -- lsearch {fp} > /dev/null"
    ))?;
    std::thread::sleep(Duration::from_millis(300));
    let console = home.console();
    let line = last_line(cluster::since(&console, mark), "(lsearch) exited:")
        .unwrap_or("")
        .to_string();
    let fault = line
        .find("fault p50")
        .map_or("?", |i| &line[i..])
        .trim()
        .to_string();
    let _ = writeln!(
        out,
        "- remote 4 KiB fault (lsearch {fp} MiB, 8 MiB local, prefetch on): `{fault}`"
    );

    // Jump latency: forced jumps back and forth.
    home.sh("eosctl jumppolicy enabled=1")?;
    peer.sh("eosctl jumppolicy enabled=1")?;
    let rounds = if quick { 50 } else { 1000 };
    let start = Instant::now();
    let home_id = c_id(home)?;
    home.sh(&format!(
        "pingpong {rounds} {home_id} {peer_id} | grep -q ' 0 errors'"
    ))?;
    let per_round = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    let (a50, a99) = p50_p99(&mut jump_lats(home)?);
    let (b50, b99) = p50_p99(&mut jump_lats(peer)?);
    let _ = writeln!(
        out,
        "- jump (save state, send, target loads it and confirms; the last 64 jumps of each \
         node): home->peer p50 {a50} us p99 {a99} us; peer->home p50 {b50} us p99 {b99} us; \
         {rounds} user-level round trips (2 jumps each, the way back by a syscall) took \
         {per_round:.2} ms each"
    );

    // Push throughput: a process holding memory gets a small budget; time until its pages left.
    // Not marked elastic: it must fit here first (an elastic one may stretch itself early).
    let mib = if quick { 16 } else { 32 };
    home.sh(&format!(
        "eosctl run -- hold {mib} 600 > /tmp/hold.out & echo $! > /tmp/hold.pid; \
         for i in $(seq 100); do grep -q ready /tmp/hold.out && break; sleep 0.1; done"
    ))?;
    home.sh(&format!("eosctl stretch $(cat /tmp/hold.pid) {peer_id}"))?;
    let target = (mib as u64 - 4) * 256 * 9 / 10;
    let start = Instant::now();
    home.sh("eosctl budget $(cat /tmp/hold.pid) 4")?;
    let mut pushed = 0u64;
    while start.elapsed() < Duration::from_secs(300) {
        let p = home.sh("cat /sys/kernel/elastic/procs")?;
        // The line of `hold` (other processes may be listed too).
        pushed = field(
            p.lines().find(|l| l.contains(" comm=hold ")).unwrap_or(""),
            "pushed_pages",
        )
        .unwrap_or(0);
        if pushed >= target {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let secs = start.elapsed().as_secs_f64();
    home.sh("kill $(cat /tmp/hold.pid); wait $(cat /tmp/hold.pid) 2>/dev/null; true")?;
    let _ = writeln!(
        out,
        "- push: {pushed} pages ({:.1} MiB) pushed in {secs:.1} s = {:.1} MiB/s (budget cut \
         from {mib} MiB to 4 MiB, polled every 0.1 s through the console)",
        pushed as f64 / 256.0,
        pushed as f64 / 256.0 / secs
    );
    Ok(out)
}

/// Reconnects the pair (the home drops and re-adds its peer) and checks the new link's
/// capabilities: `clear`, payloads authenticated only (both sides offer it), or encrypted.
fn relink(c: &mut Config, peer_id: usize, clear: bool) -> Result<()> {
    let on = if clear { 0 } else { 1 };
    let peer = c._server.as_mut().context("no peer VM")?;
    peer.sh(&format!("echo {on} > /sys/kernel/elastic/confidentiality"))?;
    let home = &mut c.vm;
    home.sh(&format!("echo {on} > /sys/kernel/elastic/confidentiality"))?;
    let mark = home.console().len();
    home.sh(&format!(
        "echo 'del {peer_id}' > /sys/kernel/elastic/peers; \
         echo 'add {peer_id} {}:{}' > /sys/kernel/elastic/peers",
        vm::ip(peer_id),
        vm::PORT
    ))?;
    home.sh(&format!("eosctl wait {peer_id} --timeout 60"))?;
    let console = home.console();
    let up = console
        .get(mark..)
        .unwrap_or("")
        .lines()
        .find(|l| l.contains(&format!("link to node {peer_id} up")))
        .unwrap_or("")
        .to_string();
    let want = if clear { "caps 0x3" } else { "caps 0x1" };
    if !up.contains(want) {
        bail!("the new link should have {want}: `{up}`");
    }
    Ok(())
}

/// The micro-benchmarks twice in one run: links encrypted (the default), then integrity
/// only (payloads in clear, still authenticated): what confidentiality costs.
fn micro_both(c: &mut Config, peer_id: usize, quick: bool) -> Result<String> {
    let sealed = micro(c, peer_id, quick)?;
    relink(c, peer_id, true)?;
    // `--quick` checks the harness: the integrity-only link must carry a stretched run's
    // pages; the second set of measurements is the full run's.
    let clear = if quick {
        c.vm.sh("eosctl run --elastic --budget 4 -- lsearch 16 > /dev/null")
            .map(|_| "- (quick: an lsearch of 16 MiB with 4 MiB local ran over it)\n".to_string())
    } else {
        micro(c, peer_id, quick)
    };
    relink(c, peer_id, false)?;
    Ok(format!(
        "Links encrypted and authenticated (AES-256-GCM, `gcm(aes)`; the default):\n\n{sealed}\n\
         The same pair, integrity only (`confidentiality` 0 on both nodes: payloads in clear, \
         every frame still authenticated by GCM):\n\n{}",
        clear?
    ))
}

/// The node id a bench VM was booted with (from its sysfs).
fn c_id(v: &mut Vm) -> Result<usize> {
    Ok(v.sh("cat /sys/kernel/elastic/node_id")?.trim().parse()?)
}

/// TCP bandwidth between user spaces of the NBD pair (client to server, `mib` MiB through
/// busybox nc), MiB/s: what the physical limit of a row is computed with.
fn link_bandwidth(configs: &mut [Config], mib: u32) -> Result<f64> {
    let c = configs
        .iter_mut()
        .find(|c| c.name == "nbd-swap")
        .context("no nbd-swap configuration")?;
    let server = c._server.as_mut().context("no NBD server VM")?;
    server.sh("nc -l -p 5001 > /dev/null 2>&1 & sleep 0.5")?;
    let start = Instant::now();
    c.vm.sh(&format!(
        "dd if=/dev/zero bs=64k count={} 2>/dev/null | nc {} 5001",
        mib * 16,
        vm::ip(2)
    ))?;
    Ok(mib as f64 / start.elapsed().as_secs_f64())
}

/// Runs the benchmark. `quick`: one small footprint (16 MiB, it fits in memory), one
/// repetition, no docs: the test suite runs this so the harness cannot rot. `local`: the
/// memory each run may use locally (see the module comment); `None` or 0 for the VM's memory.
pub fn bench(opts: &Options) -> Result<()> {
    let Options {
        quick,
        reps,
        mem,
        local,
        cap_s,
        write_docs,
        micro,
        only,
        configs: want,
        footprint,
    } = *opts;
    if (want.is_some() || footprint.is_some()) && write_docs {
        // The document's table is of every configuration, side by side.
        bail!("--configs and --footprint run a subset: they do not write docs/BENCHMARKS.md");
    }
    let want = want.unwrap_or(ConfigSet(u8::MAX));
    let chosen = |wi: usize| only.is_none_or(|o| o.has(wi));
    if micro {
        return micro_only(mem);
    }
    // `--local 0` has always meant the VM's memory.
    let local = local.filter(|l| *l != 0);
    RUN_CAP_S.store(cap_s, std::sync::atomic::Ordering::Relaxed);
    let (t, cluster) = cluster::build(mem)?;
    let base = local.unwrap_or(mem);
    let footprints: Vec<u32> = if quick {
        // Harness check only: small enough to fit, so every configuration runs in seconds.
        vec![16]
    } else if let Some(f) = footprint {
        vec![f]
    } else {
        vec![base * 3 / 2, base * 3]
    };
    let reps = if quick { 1 } else { reps };
    let max_fp = *footprints.iter().max().unwrap();
    let start = Instant::now();
    let mut configs = boot_configs(&cluster, mem, max_fp, local, want)?;
    let link_mib_s = link_bandwidth(&mut configs, if quick { 8 } else { 32 })
        .map_err(|e| eprintln!("bench: link bandwidth not measured: {e:#}"))
        .ok();
    let _ = std::fs::remove_file(out_dir().join("bench/results-partial.csv"));
    let mut rows = Vec::new();
    let reps_for = |_: u32| reps;
    // `--quick` checks the harness, not speed: `limit` (the checksums' truth) runs every
    // workload, and each other configuration one of them in turn, so every configuration and
    // every workload runs and is checked at a third of the cost.
    let nconf = configs.len();
    let runs = |ci: usize, wi: usize| {
        chosen(wi) && (!quick || ci == 0 || (ci - 1) % image::WORKLOADS.len() == wi)
    };
    let per_input = (0..image::WORKLOADS.len())
        .map(|wi| (0..nconf).filter(|ci| runs(*ci, wi)).count())
        .sum::<usize>();
    let total = per_input
        * footprints
            .iter()
            .map(|f| reps_for(*f) as usize)
            .sum::<usize>();
    for rep in 1..=reps {
        for (wi, w) in image::WORKLOADS.iter().enumerate() {
            for fp in footprints.iter().filter(|f| rep <= reps_for(**f)) {
                // Interleave the configurations for each input so drift hits all of them.
                for (_, c) in configs
                    .iter_mut()
                    .enumerate()
                    .filter(|(ci, _)| runs(*ci, wi))
                {
                    let row = run_one(c, w, *fp, rep, local)
                        .with_context(|| format!("{w} {fp} MiB on {}", c.name))?;
                    eprintln!(
                        "bench [{}/{total}] rep {rep}/{reps} {w} {fp} MiB {:<10} {:>8.1} s {} (elapsed {:.0} min)",
                        rows.len() + 1,
                        c.name,
                        row.wall_s,
                        if row.ok {
                            "ok"
                        } else if row.timed_out {
                            "TIMEOUT"
                        } else {
                            "FAILED"
                        },
                        start.elapsed().as_secs_f64() / 60.0
                    );
                    // Kept as it goes, so an aborted bench still leaves its measurements.
                    let line = csv(std::slice::from_ref(&row));
                    let partial = out_dir().join("bench/results-partial.csv");
                    let body = line
                        .lines()
                        .skip(usize::from(!rows.is_empty()))
                        .collect::<Vec<_>>()
                        .join("\n");
                    use std::io::Write as _;
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&partial)
                    {
                        let _ = writeln!(f, "{body}");
                    }
                    rows.push(row);
                }
            }
        }
    }
    eprintln!("bench: micro-benchmarks");
    // The tables are worth keeping even if a micro-benchmark fails.
    let micro_md = match configs.iter_mut().find(|c| c.name == "eos-jump") {
        Some(jump_cfg) => micro_both(jump_cfg, 9, quick).unwrap_or_else(|e| {
            eprintln!("bench: micro-benchmarks failed: {e:#}");
            format!("- the micro-benchmarks failed in this run: {e:#}\n")
        }),
        None => "- not run (`--configs` left out eos-jump)\n".to_string(),
    };
    let trouble = cluster::poweroff_all(
        configs
            .into_iter()
            .flat_map(|c| std::iter::once(c.vm).chain(c._server)),
    );
    verify(&mut rows);
    let dir = out_dir().join("bench");
    std::fs::write(dir.join("results.csv"), csv(&rows))?;
    let names: Vec<&str> = CONFIGS.into_iter().filter(|c| want.has(c)).collect();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_string))
        })
        .unwrap_or_default();
    let local_txt = match local {
        Some(l) => format!(
            "each run may use {l} MiB locally: cgroup v2 `memory.high` of {l} MiB for every \
             configuration (swap ones reclaim to swap above it; the limit is soft) and, for \
             eos-*, an ElasticOS budget of {l} MiB as well (a stretched process keeps {} KiB \
             below its cgroup's limit, so that the cgroup never throttles it: less than the \
             baselines, which pass the limit); each run's mean cgroup memory is in its cell \
             (\"MiB local (mean)\"); in eos-pull and eos-jump the budget also holds on \
             the peer while the process runs there (the home pulls its cold pages back), in \
             eos-jump-unbounded the shell running it is not limited; VMs have {mem} MiB",
            eos_core::policy::MEMCG_MARGIN * 4
        ),
        None => format!("local memory is the VM's: {mem} MiB"),
    };
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(project_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let link_txt = link_mib_s.map_or("not measured".to_string(), |b| format!("{b:.1} MiB/s"));
    let env = format!(
        "- host: {cpu}, {} cores; VMs under {:?}, 1 vCPU each, run one at a time\n- kernel: \
         Linux {} with ElasticOS, commit {commit}; guest image: busybox initramfs; links \
         encrypted (AES-256-GCM, the default)\n- {local_txt}; \
         `limit` VM {} MiB (no limit); swap devices {} MiB; ElasticOS peers {} MiB\n- network: \
         QEMU socket multicast hub per configuration (its own VMs only), virtio-net; TCP \
         between user spaces of two VMs: {link_txt}\n- footprints: {:?} MiB; \
         repetitions: {reps}; a run is stopped after {cap_s} s; total bench time {:.0} min",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cluster.accel(),
        t.version,
        max_fp + 256,
        2 * max_fp + 64,
        2 * max_fp + 64 + 192,
        footprints,
        start.elapsed().as_secs_f64() / 60.0
    );
    let cmd = if quick {
        "cargo xtask bench --quick".to_string()
    } else {
        let l = local.map_or(String::new(), |l| format!(" --local {l}"));
        let o = only.map_or(String::new(), |o| format!(" --only {}", o.names()));
        let c = opts
            .configs
            .map_or(String::new(), |_| format!(" --configs {}", names.join(",")));
        format!("cargo xtask bench --reps {reps} --mem {mem}{l} --cap {cap_s}{o}{c} --write-docs")
    };
    let phys = Physical {
        local_mib: local,
        link_mib_s,
    };
    let (doc, time_svg, speed_svg) = markdown(&rows, &env, &cmd, &names, &micro_md, phys);
    std::fs::write(dir.join("BENCHMARKS.md"), &doc)?;
    if write_docs {
        let docs = project_root().join("docs");
        std::fs::create_dir_all(docs.join("bench"))?;
        std::fs::write(docs.join("BENCHMARKS.md"), &doc)?;
        std::fs::write(docs.join("bench/time.svg"), time_svg)?;
        std::fs::write(docs.join("bench/speedup.svg"), speed_svg)?;
    }
    println!("{doc}");
    let failed = rows.iter().filter(|r| !r.ok && !r.timed_out).count();
    if !trouble.is_empty() {
        bail!("kernel trouble during the bench: {trouble:?}");
    }
    if failed > 0 {
        bail!(
            "{failed} of {} runs failed their checksum or crashed (out/bench/results.csv)",
            rows.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn row(w: &str, c: &str, t: f64, sum: &str) -> Row {
        Row {
            rep: 1,
            workload: w.into(),
            footprint_mib: 10,
            config: c.into(),
            wall_s: t,
            compute_s: 0.0,
            timed_out: false,
            checksum: sum.into(),
            ok: true,
            swap_in_pages: 0,
            swap_out_pages: 0,
            net_bytes: 0,
            peak_rss_kib: 0,
            pulls: 0,
            pushes: 0,
            jumps: 0,
            moved_pages: 0,
            stretched: false,
            mean_local_kib: 0,
        }
    }

    #[test]
    fn results_csv_reads_back() {
        let mut a = row("dfs", "eos-jump", 1.5, "aa");
        a.moved_pages = 7;
        a.stretched = true;
        let mut b = row("dfs", "nbd-swap", 60.0, "-");
        b.timed_out = true;
        b.ok = false;
        let back = rows_from_csv(&csv(&[a.clone(), b.clone()])).unwrap();
        assert_eq!(back.len(), 2);
        for (x, y) in back.iter().zip([a, b].iter()) {
            assert_eq!(
                (
                    &x.config,
                    x.wall_s,
                    x.ok,
                    x.timed_out,
                    x.stretched,
                    x.moved_pages
                ),
                (
                    &y.config,
                    y.wall_s,
                    y.ok,
                    y.timed_out,
                    y.stretched,
                    y.moved_pages
                )
            );
        }
        // A file of before the last two columns.
        let old = "rep,workload,footprint_mib,config,wall_s,compute_s,checksum,ok,swap_in_pages,swap_out_pages,net_bytes,peak_rss_kib,pulls,pushes,jumps,moved_pages\n1,dfs,6,eos-pull,2.000,1.000,ab,true,0,0,10,5,3,4,0,9\n";
        let r = &rows_from_csv(old).unwrap()[0];
        assert!(r.stretched && !r.timed_out && r.ok);
        assert!(rows_from_csv("a,b\n").is_err());
    }

    #[test]
    fn checksum_mismatch_fails_the_row() {
        let mut rows = vec![
            row("dfs", "limit", 1.0, "aa"),
            row("dfs", "zram", 2.0, "aa"),
            row("dfs", "nbd-swap", 3.0, "bb"),
        ];
        verify(&mut rows);
        assert!(rows[0].ok && rows[1].ok && !rows[2].ok);
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        let rows = vec![
            row("dfs", "limit", 1.0, "a"),
            row("dfs", "nbd-swap", 10.0, "a"),
        ];
        let phys = Physical {
            local_mib: Some(8),
            link_mib_s: Some(4.0),
        };
        let (md, _, svg) = markdown(&rows, "env", "cmd", &["limit", "nbd-swap"], "micro", phys);
        assert!(
            md.contains(
                "| dfs | 10 MiB | 1.0 s (1.0–1.0) | 10.0 s (10.0–10.0), 0 MiB on wire | 1.5 s | – | – | – | – | – | – | 10.00 |"
            ),
            "{md}"
        );
        assert!(svg.contains("<svg"));
    }

    #[test]
    fn a_ratio_with_more_local_memory_says_so() {
        let mut rows = vec![
            row("dfs", "limit", 1.0, "a"),
            row("dfs", "nbd-swap", 10.0, "a"),
            row("dfs", "eos-pull", 5.0, "a"),
        ];
        rows[1].mean_local_kib = 3000;
        rows[2].mean_local_kib = 3100;
        rows[2].moved_pages = 10;
        rows[2].stretched = true;
        let phys = Physical {
            local_mib: Some(2),
            link_mib_s: None,
        };
        let names = ["limit", "nbd-swap", "eos-pull"];
        let (md, _, _) = markdown(&rows, "env", "cmd", &names, "micro", phys);
        assert!(
            md.contains("0.50 (**more local memory than the baseline**)"),
            "{md}"
        );
        assert!(md.contains("2.9 MiB local (mean)"), "{md}");
        rows[2].mean_local_kib = 2900;
        let (md, _, _) = markdown(&rows, "env", "cmd", &names, "micro", phys);
        assert!(
            md.contains("| 0.50 |") && !md.contains("more local memory"),
            "{md}"
        );
    }

    #[test]
    fn a_run_that_never_left_its_node_gets_no_ratio() {
        let mut moved = row("lsearch", "eos-pull", 2.0, "a");
        moved.moved_pages = 100;
        moved.stretched = true;
        let rows = vec![
            row("lsearch", "limit", 1.0, "a"),
            row("lsearch", "nbd-swap", 10.0, "a"),
            row("lsearch", "eos-jump", 0.1, "a"),
            moved,
        ];
        let phys = Physical {
            local_mib: None,
            link_mib_s: None,
        };
        let names = ["limit", "nbd-swap", "eos-pull", "eos-jump"];
        let (md, _, speed) = markdown(&rows, "env", "cmd", &names, "micro", phys);
        let line = md.lines().find(|l| l.starts_with("| lsearch")).unwrap();
        assert!(line.contains("0.1 s (0.1–0.1), 0 MiB on wire, **never left its node**"));
        // eos-jump / nbd-swap and eos-jump / eos-pull are not ratios; eos-pull / nbd-swap is.
        assert_eq!(
            line.matches("n/a: never left its node").count(),
            3,
            "{line}"
        );
        assert!(line.contains("| 0.20 |"), "{line}");
        assert!(line.contains("100 pages moved (0.0 per footprint page)"));
        assert!(!speed.contains("eos-jump: 100.00"));
    }
}
