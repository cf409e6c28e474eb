//! Bringing a cluster of ElasticOS nodes up and reading what its consoles say, shared by
//! `run`, `vm`, `test` and `bench` so that each boots, joins and parses the same way.
//!
//! `vm.rs` drives one QEMU VM; this module knows ElasticOS: how nodes join (`eosctl up`,
//! `eosctl wait`), the `key=value` words of result, peers, procs and stats lines, the
//! kernel's exit line of a stretched process and the jump log.

use crate::util::{out_dir, project_root};
use crate::vm::{self, Cluster, Vm};
use crate::{image, kernel};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Cluster secret of the test VMs (a test key, not a real one).
pub const SECRET: &str = "5eb1c0a7e1a57c05000000000000000000000000000000000000000000000042";

/// A cluster of `bzimage` and `initrd` whose console logs go to out/logs; node 1 (and
/// `Cluster::boot`) gets `mem_mib`.
pub fn new(bzimage: PathBuf, initrd: PathBuf, mem_mib: u32) -> Result<Cluster> {
    // The kernel is built in the shared cache; a copy in this clone's out/ keeps a long loop
    // (which reboots nodes) on the kernel it started with while another build runs.
    let boot = out_dir().join("boot");
    std::fs::create_dir_all(&boot)?;
    let own = boot.join("bzImage");
    std::fs::copy(&bzimage, &own)?;
    Cluster::new(own, initrd, out_dir().join("logs"), mem_mib)
}

/// Builds the kernel and the guest image, then a cluster of them: what `run`, `vm` and
/// `bench` need before their first boot. The tree is returned for its version.
pub fn build(mem_mib: u32) -> Result<(kernel::Tree, Cluster)> {
    let t = kernel::build()?;
    let img = image::build()?;
    let cluster = new(t.bzimage(), img, mem_mib)?;
    Ok((t, cluster))
}

/// Brings node `id` of a VM up with `peers` (ids; addresses follow from them).
pub fn up(v: &mut Vm, id: usize, peers: &[usize], secret: &str) -> Result<()> {
    let peer_args: String = peers
        .iter()
        .map(|p| format!(" --peer {p}={}:{}", vm::ip(*p), vm::PORT))
        .collect();
    // The secret on standard input: on the command line every local user could read it.
    v.sh(&format!(
        "echo {secret} | eosctl up --id {id} --listen {}:{} --secret -{peer_args}",
        vm::ip(id),
        vm::PORT
    ))?;
    Ok(())
}

/// Boots node `id` with `mem_mib` and brings it up with `peers` under the test secret.
pub fn boot_node(
    cluster: &Cluster,
    id: usize,
    tag: &str,
    mem_mib: u32,
    peers: &[usize],
) -> Result<Vm> {
    let mut v = cluster.boot_with(id, tag, mem_mib, &[])?;
    up(&mut v, id, peers, SECRET)?;
    Ok(v)
}

/// Boots every `(id, log tag, MiB)` node in order, then brings each up with all the others
/// as peers. All boot before any dials, so no first dial goes to a VM still booting.
pub fn boot_mesh(cluster: &Cluster, nodes: &[(usize, &str, u32)]) -> Result<Vec<Vm>> {
    let mut vms = Vec::new();
    for (id, tag, mem) in nodes {
        vms.push(cluster.boot_with(*id, tag, *mem, &[])?);
    }
    for (v, (id, _, _)) in vms.iter_mut().zip(nodes) {
        up(v, *id, &others(*id, nodes.iter().map(|n| n.0)), SECRET)?;
    }
    Ok(vms)
}

/// The ids of `ids` other than `id`: a node's peers in a full mesh.
pub fn others(id: usize, ids: impl IntoIterator<Item = usize>) -> Vec<usize> {
    ids.into_iter().filter(|p| *p != id).collect()
}

/// Waits (60 s each) until `v`'s link to each of `peers` is connected.
pub fn wait_links(v: &mut Vm, peers: &[usize]) -> Result<()> {
    for p in peers {
        v.sh(&format!("eosctl wait {p} --timeout 60"))?;
    }
    Ok(())
}

/// Powers every VM off in order; the kernel trouble they printed.
pub fn poweroff_all(vms: impl IntoIterator<Item = Vm>) -> Vec<String> {
    vms.into_iter().flat_map(Vm::poweroff).collect()
}

/// Fails if any of `vms` printed kernel trouble.
pub fn check_clean(vms: &[&Vm]) -> Result<()> {
    for v in vms {
        let t = v.trouble();
        if !t.is_empty() {
            bail!(
                "{} printed kernel trouble: {:?} (log: {})",
                v.name,
                t,
                v.log_path.display()
            );
        }
    }
    Ok(())
}

/// The value of `key=` among the words of `line`.
pub fn field<T: std::str::FromStr>(line: &str, key: &str) -> Option<T> {
    let key = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&key))
        .and_then(|v| v.parse().ok())
}

/// Value of `key=` for peer `id` in a peers file.
pub fn peer_field(peers: &str, id: usize, key: &str) -> Option<u64> {
    let line = peers
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&id.to_string()))?;
    field(line, key)
}

/// Counter `key` of an `eosctl stats` listing (`key value` lines); 0 if absent.
pub fn stat(stats: &str, key: &str) -> u64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `remote_pages=` of a procs line; 0 if absent.
pub fn remote_pages(line: &str) -> i64 {
    field(line, "remote_pages").unwrap_or(0)
}

/// Calls `check` every `every` until it returns `Some` (its value is returned) or `timeout`
/// has passed (an error naming `what`, with the last error `check` returned, if any). The one
/// wait-until loop of the test steps.
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let end = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if Instant::now() >= end {
            return Err(match last {
                Some(e) => e.context(format!("{what}: not within {} s", timeout.as_secs())),
                None => anyhow::anyhow!("{what}: not within {} s", timeout.as_secs()),
            });
        }
        std::thread::sleep(every);
    }
}

/// What a line of `/sys/kernel/elastic/procs` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcKind {
    /// A stretched process at its home (`pid=... comm=... remote_pages=... away=...`).
    Home,
    /// A shell holding another node's process (`shell home_node=... home_pid=...`).
    Shell,
    /// A process marked elastic, not stretched yet (`pid=N marked budget_pages=...`).
    Marked,
}

/// One line of `/sys/kernel/elastic/procs`, typed: its kind and its `key=value` words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    pub kind: ProcKind,
    fields: Vec<(String, String)>,
}

impl ProcEntry {
    /// Parses one line; `None` for a line that is none of the three kinds.
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace().peekable();
        let kind = if words.peek() == Some(&"shell") {
            words.next();
            ProcKind::Shell
        } else if line.split_whitespace().nth(1) == Some("marked") {
            ProcKind::Marked
        } else {
            ProcKind::Home
        };
        let fields: Vec<_> = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        fields
            .iter()
            .any(|(k, _)| k == "pid")
            .then_some(Self { kind, fields })
    }

    /// The value of `key`, parsed; `None` if absent or of another type.
    pub fn get<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// `pid=` (the local pid: the process at home, the shell's own pid for a shell).
    pub fn pid(&self) -> u32 {
        self.get("pid").unwrap_or(0)
    }

    /// `comm=` of a process at home ("" for others).
    pub fn comm(&self) -> String {
        self.get("comm").unwrap_or_default()
    }

    /// `remote_pages=` (0 if absent).
    pub fn remote_pages(&self) -> i64 {
        self.get("remote_pages").unwrap_or(0)
    }

    /// A process at home that runs on another node right now.
    pub fn away(&self) -> bool {
        self.get::<u8>("away") == Some(1)
    }

    /// A shell that runs its process right now.
    pub fn running(&self) -> bool {
        self.get::<u8>("running") == Some(1)
    }
}

/// All of a node's `/sys/kernel/elastic/procs`, typed.
#[derive(Debug, Clone, Default)]
pub struct Procs(pub Vec<ProcEntry>);

impl Procs {
    /// Parses a whole listing; lines of no known kind are skipped.
    pub fn parse(text: &str) -> Self {
        Self(text.lines().filter_map(ProcEntry::parse).collect())
    }

    /// Reads `v`'s listing.
    pub fn read(v: &mut Vm) -> Result<Self> {
        Ok(Self::parse(&v.sh("cat /sys/kernel/elastic/procs")?))
    }

    /// The stretched process named `comm` at home (the first one).
    pub fn home(&self, comm: &str) -> Option<&ProcEntry> {
        self.0
            .iter()
            .find(|e| e.kind == ProcKind::Home && e.comm() == comm)
    }

    /// The stretched process with local pid `pid` at home.
    pub fn home_pid(&self, pid: u32) -> Option<&ProcEntry> {
        self.0
            .iter()
            .find(|e| e.kind == ProcKind::Home && e.pid() == pid)
    }

    /// The shells here, of any home.
    pub fn shells(&self) -> impl Iterator<Item = &ProcEntry> {
        self.0.iter().filter(|e| e.kind == ProcKind::Shell)
    }

    /// The shell here of process `home_pid` of node `home_node`.
    pub fn shell_of(&self, home_node: usize, home_pid: u32) -> Option<&ProcEntry> {
        self.shells().find(|e| {
            e.get::<usize>("home_node") == Some(home_node)
                && e.get::<u32>("home_pid") == Some(home_pid)
        })
    }

    /// Whether pid `pid` is marked elastic (and not stretched yet).
    pub fn marked(&self, pid: u32) -> bool {
        self.0
            .iter()
            .any(|e| e.kind == ProcKind::Marked && e.pid() == pid)
    }

    /// The sum of `remote_pages=` over the processes at home.
    pub fn remote_pages(&self) -> i64 {
        self.0
            .iter()
            .filter(|e| e.kind == ProcKind::Home)
            .map(ProcEntry::remote_pages)
            .sum()
    }
}

/// The first `RESULT ...` line a workload printed.
pub fn result_line(out: &str) -> Option<&str> {
    out.lines().find(|l| l.starts_with("RESULT "))
}

/// The last console line containing `needle`.
pub fn last_line<'a>(console: &'a str, needle: &str) -> Option<&'a str> {
    console.lines().rev().find(|l| l.contains(needle))
}

/// Host reference result line of a C program, built natively.
pub fn host_result(prog: &str, args: &[&str]) -> Result<String> {
    let dir = project_root().join("target/workloads");
    std::fs::create_dir_all(&dir)?;
    let exe = dir.join(prog);
    image::compile_workload(prog, &exe, false)?;
    let out = Command::new(&exe).args(args).output()?;
    result_line(&String::from_utf8_lossy(&out.stdout))
        .map(str::to_string)
        .with_context(|| format!("{prog} printed no result on the host"))
}

/// What the kernel's exit line says a stretched process moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Pull requests (each brings one or more pages).
    pub pulls: u64,
    /// Pages pulled.
    pub pulled: u64,
    /// Push batches.
    pub pushes: u64,
    /// Pages pushed.
    pub pushed: u64,
    /// Of those, pages pushed by reference (no data: the member kept a clean copy).
    pub by_ref: u64,
}

impl Moved {
    /// Pages whose data crossed the network either way (what Linux swap counts as pswpin +
    /// pswpout: a clean page that keeps its swap slot is dropped without a write, as a page
    /// pushed by reference goes without its data).
    pub fn pages(&self) -> u64 {
        self.pulled + self.pushed.saturating_sub(self.by_ref)
    }
}

/// A console's text from byte `mark` on (`mark`: its length before a run): what that run,
/// and nothing earlier, logged.
pub fn since(console: &str, mark: usize) -> &str {
    console.get(mark..).unwrap_or("")
}

/// What the kernel's exit line of the last process named `comm` says it moved. Give it the
/// console `since` the run began: an earlier run's line must not stand in for a run that
/// printed none (a process that never stretched prints none).
pub fn exit_stats(console: &str, comm: &str) -> Option<Moved> {
    let line = last_line(console, &format!("({comm}) exited:"))?;
    let tail = &line[line.find("exited:")?..];
    let nums: Vec<u64> = tail
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // pulls, pulled pages, pushes, pushed pages, p50, p99
    let by_ref = tail
        .split(", ")
        .find_map(|f| f.strip_suffix(" pages pushed by reference"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    (nums.len() >= 4).then(|| Moved {
        pulls: nums[0],
        pulled: nums[1],
        pushes: nums[2],
        pushed: nums[3],
        by_ref,
    })
}

/// The pid written in `file` of `v` (the console may carry kernel lines around it).
pub fn pid_in(v: &mut Vm, file: &str) -> Result<u32> {
    let out = v.sh(&format!("cat {file}"))?;
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
        .find_map(|l| l.parse().ok())
        .with_context(|| format!("no pid in {file}: {out}"))
}

/// A node's jump log (`eosctl jumplog`): a `total N` line, then one line per recent jump.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JumpLog {
    /// Jumps this node sent since boot.
    pub total: u64,
    /// `lat_us=` of each recent jump, in log order.
    pub lat_us: Vec<u64>,
}

impl JumpLog {
    /// Parses the log; what is missing counts as 0 or empty.
    pub fn parse(log: &str) -> Self {
        Self {
            total: log
                .lines()
                .find_map(|l| l.strip_prefix("total "))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0),
            lat_us: log
                .split_whitespace()
                .filter_map(|w| w.strip_prefix("lat_us="))
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }
}

/// Median and 99th percentile of `v` (sorted here); 0 for an empty `v`.
pub fn p50_p99(v: &mut [u64]) -> (u64, u64) {
    v.sort_unstable();
    let at = |q: usize| {
        v.get((v.len() * q / 100).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    (at(50), at(99))
}

/// `(total jumps, median lat_us, p99 lat_us)` from a node's jump log.
pub fn jumplog(v: &mut Vm) -> Result<(u64, u64, u64)> {
    let mut log = JumpLog::parse(&v.sh("eosctl jumplog")?);
    let (p50, p99) = p50_p99(&mut log.lat_us);
    Ok((log.total, p50, p99))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn peer_fields_and_stats() {
        let p = "2 10.0.2.12:7077 connected since_ms=1 rtt_us=1500 srtt_us=1400 ups=2 losses=1\n";
        assert_eq!(peer_field(p, 2, "rtt_us"), Some(1500));
        assert_eq!(peer_field(p, 2, "ups"), Some(2));
        assert_eq!(peer_field(p, 3, "ups"), None);
        assert_eq!(stat("accepted 3\nrx_bad_frames 7\n", "rx_bad_frames"), 7);
    }

    #[test]
    fn fields_results_and_exit_lines() {
        let out = "noise\nRESULT dfs checksum=00ab n=3\nTIME wall_ms=5 peak_rss_kib=812\n";
        let r = result_line(out).unwrap();
        assert_eq!(r, "RESULT dfs checksum=00ab n=3");
        assert_eq!(field::<String>(r, "checksum").as_deref(), Some("00ab"));
        assert_eq!(field::<u64>(r, "n"), Some(3));
        assert_eq!(field::<u64>(r, "checksum"), None);
        assert_eq!(field::<u64>(out, "peak_rss_kib"), Some(812));
        assert_eq!(remote_pages("comm=hold remote_pages=1200 away=0"), 1200);
        assert_eq!(remote_pages("comm=hold"), 0);
        assert_eq!(others(2, [1, 2, 3]), vec![1, 3]);
        let console = "[ 1.0] eos: pid 7 (lsearch) exited: 10 pulls (40 pages), 3 pushes (90 pages)\n\
                       [ 2.0] eos: pid 9 (lsearch) exited: 11 pulls (41 pages), 4 pushes (91 pages), fault p50 5 us p99 9 us, 30 pages pushed by reference, 0 pulled back from away\n";
        assert!(last_line(console, "(lsearch) exited:")
            .unwrap()
            .starts_with("[ 2.0]"));
        let m = exit_stats(console, "lsearch").unwrap();
        assert_eq!((m.pulls, m.pulled, m.pushes, m.pushed), (11, 41, 4, 91));
        assert_eq!(m.pages(), 102, "pages pushed by reference carry no data");
        assert_eq!(exit_stats(console, "dfs"), None);
    }

    #[test]
    fn procs_lines_typed_and_polled() {
        let text =
            "pid=7 comm=hold node=2 shell_pid=40 local_pages=5 remote_pages=1200 away=1 sticky=0\n\
                    shell home_node=1 home_pid=7 pid=40 running=0 arrivals=2\n\
                    pid=9 marked budget_pages=2048\n\
                    garbage line\n";
        let p = Procs::parse(text);
        assert_eq!(p.0.len(), 3);
        let h = p.home("hold").unwrap();
        assert_eq!((h.pid(), h.remote_pages(), h.away()), (7, 1200, true));
        assert_eq!(p.home_pid(7).unwrap().comm(), "hold");
        assert!(p.home("spin").is_none());
        let s = p.shell_of(1, 7).unwrap();
        assert_eq!((s.pid(), s.running(), s.kind), (40, false, ProcKind::Shell));
        assert!(p.shell_of(2, 7).is_none());
        assert!(p.marked(9) && !p.marked(7));
        assert_eq!(p.remote_pages(), 1200);
        let mut n = 0;
        let v = poll("three", Duration::from_secs(5), Duration::ZERO, || {
            n += 1;
            Ok((n == 3).then_some(n))
        })
        .unwrap();
        assert_eq!(v, 3);
        let e = poll(
            "never",
            Duration::ZERO,
            Duration::ZERO,
            || -> Result<Option<()>> { bail!("still down") },
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("never: not within 0 s: still down"));
    }

    #[test]
    fn jump_log_totals_and_percentiles() {
        let log = "total 42\nt_ms=1 pid=3 from=1 to=2 reason=policy lat_us=300\n\
                   t_ms=2 pid=3 from=1 to=2 reason=fault lat_us=100\n\
                   t_ms=3 pid=3 from=1 to=2 reason=fault lat_us=200\n";
        let mut j = JumpLog::parse(log);
        assert_eq!(j.total, 42);
        assert_eq!(j.lat_us, vec![300, 100, 200]);
        assert_eq!(p50_p99(&mut j.lat_us), (200, 300));
        assert_eq!(JumpLog::parse("total 0\n"), JumpLog::default());
        assert_eq!(p50_p99(&mut []), (0, 0));
    }
}
