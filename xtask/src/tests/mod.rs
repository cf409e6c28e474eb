//! `cargo xtask test`: host checks, the KUnit boot and the two-VM scenarios, with a summary.
//!
//! The suite is data: `STEPS` is the one list of steps, in order, each with a short stable
//! id (what `EOS_ONLY` and `--list` use), a title, a tier, a time limit, the steps it needs
//! and the function that runs it on a [`Ctx`]. Each step's body lives in the file of the
//! primitive it tests. The README's test command runs the `Test` tier (a complete regression:
//! every primitive, every refusal, short forms of the loops); `cargo xtask test --full` adds
//! the `Full` tier (the long forms). Every VM step also fails if any VM's console showed
//! kernel trouble (see `vm::TROUBLE`).

mod faults;
mod host;
mod judge;
mod jump;
mod kunit;
mod link;
mod mapsync;
mod onpath;
mod peer_kill;
mod pull_push;
mod security;
mod stretch;
mod three_nodes;
mod workloads;

use crate::vm::{self, Cluster, Vm};
use crate::{bench, cluster, image, kernel};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Jump round trips of the ping-pong test: the test command's form and `--full`'s.
const PING_PONG_ROUNDS: u32 = 2_000;
const PING_PONG_LONG_ROUNDS: u32 = 10_000;
/// Runs per fault point, and peer kills, in `--full` (the test command runs the short forms):
/// `--full` stays within about an hour; the soaks are their own commands (`cargo xtask faults
/// --runs 20`, `peerkill --runs 20`, `sysfuzz --calls 1000000`).
const LONG_RUNS: u32 = 5;
/// Calls per user of the syscall fuzzer in `--full`.
const SYSFUZZ_LONG_CALLS: u64 = 200_000;

/// Memory of node 1 (and of the KUnit VM), MiB.
const MEM_MIB: u32 = 256;
/// Memory of node 2 once it rebooted, and of node 3: room for another node's pages, MiB.
const PEER_MEM_MIB: u32 = 512;

/// Which command runs a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// The README's test command (and CI).
    Test,
    /// Only `cargo xtask test --full`: the long forms of the loops.
    Full,
}

/// One step of the suite.
struct Step {
    /// Short and stable: `EOS_ONLY=stress,jump-entries` names steps by it.
    id: &'static str,
    title: &'static str,
    tier: Tier,
    /// Seconds; every VM command the step runs is cut off there (`vm::limit_to`).
    limit_s: u64,
    /// Steps that set up what this one uses: run first whenever this one runs.
    needs: &'static [&'static str],
    run: fn(&mut Ctx) -> Result<String>,
}

/// The kernel and image built.
const BUILT: &[&str] = &["kernel", "image"];
/// Node 1 and node 2 (256 MiB each) up and linked.
const PAIR: &[&str] = &["pair"];
/// Node 2 rebooted with room for node 1's pages (`PEER_MEM_MIB`): most VM steps.
const ROOMY: &[&str] = &["reboot"];

/// What the steps share: the built kernel and image, the cluster and its two nodes. A step
/// that replaces node 2 (a reboot, a kill) puts the new one back; one that loses it leaves
/// `b` empty, and the steps after it that need it are reported as not run.
#[derive(Default)]
pub struct Ctx {
    bzimage: Option<PathBuf>,
    initrd: Option<PathBuf>,
    cluster: Option<Cluster>,
    a: Option<Vm>,
    b: Option<Vm>,
}

impl Ctx {
    fn cluster(&mut self) -> Result<&Cluster> {
        if self.cluster.is_none() {
            let (k, i) = (self.bzimage.clone(), self.initrd.clone());
            let (k, i) = k.zip(i).context("kernel or image not built")?;
            let mut c = cluster::new(k, i, MEM_MIB)?;
            // As `cargo xtask vm --share`: a host folder in every node.
            let share = crate::util::out_dir().join("share");
            std::fs::create_dir_all(&share)?;
            c.set_share(share);
            eprintln!("VMs: {MEM_MIB} MiB each, accelerator {:?}", c.accel());
            self.cluster = Some(c);
        }
        Ok(self.cluster.as_ref().expect("just set"))
    }

    /// The cluster and both nodes.
    fn nodes(&mut self) -> Result<(&Cluster, &mut Vm, &mut Vm)> {
        let c = self.cluster.as_ref().context("no cluster")?;
        let a = self.a.as_mut().context("node1 is not up")?;
        let b = self.b.as_mut().context("node2 is not up")?;
        Ok((c, a, b))
    }

    /// Both nodes.
    fn pair(&mut self) -> Result<(&mut Vm, &mut Vm)> {
        let (_, a, b) = self.nodes()?;
        Ok((a, b))
    }

    /// Runs `f` on node 2 taken out of the context; the node it returns is put back. If `f`
    /// fails, node 2 is gone (`f` killed or lost it).
    fn replace_b(
        &mut self,
        f: impl FnOnce(&Cluster, &mut Vm, Vm) -> Result<(Vm, String)>,
    ) -> Result<String> {
        let b = self.b.take().context("node2 is not up")?;
        let c = self.cluster.as_ref().context("no cluster")?;
        let a = self.a.as_mut().context("node1 is not up")?;
        let (b, note) = f(c, a, b)?;
        self.b = Some(b);
        Ok(note)
    }
}

/// Every step, in order.
#[rustfmt::skip]
const STEPS: &[Step] = &[
    Step { id: "fmt", title: "host: cargo fmt --check", tier: Tier::Test, limit_s: 300, needs: &[],
        run: |_| host::fmt() },
    Step { id: "clippy", title: "host: clippy -D warnings", tier: Tier::Test, limit_s: 1800, needs: &[],
        run: |_| host::clippy() },
    Step { id: "unit", title: "host: cargo test", tier: Tier::Test, limit_s: 1800, needs: &[],
        run: |_| host::unit_tests() },
    Step { id: "c-programs", title: "host: libelastic and workloads compile warning-free", tier: Tier::Test, limit_s: 300, needs: &[],
        run: |_| host::c_programs() },
    Step { id: "package", title: "package: elasticos-tools holds eosctl, libelastic (.so, header, pkg-config), man pages and the node service; a program links against it", tier: Tier::Test, limit_s: 600, needs: &[],
        run: |_| {
            let deb = crate::package::tools_deb(&crate::package::maintainer())?;
            crate::package::check(&deb)
        } },
    Step { id: "fuzz-smoke", title: "fuzz: host fuzzers smoke (each target a fixed number of executions)", tier: Tier::Test, limit_s: 300, needs: &[],
        run: |_| crate::fuzz::smoke() },
    Step { id: "kernel", title: "kernel: build with ElasticOS", tier: Tier::Test, limit_s: 3600, needs: &[],
        run: |c| {
            let t = kernel::build()?;
            c.bzimage = Some(t.bzimage());
            Ok(format!("linux {}", t.version))
        } },
    Step { id: "image", title: "guest image", tier: Tier::Test, limit_s: 900, needs: &[],
        run: |c| {
            c.initrd = Some(image::build()?);
            Ok(String::new())
        } },
    Step { id: "kunit", title: "kunit: in-kernel suites", tier: Tier::Test, limit_s: 600, needs: BUILT,
        run: |c| kunit::kunit(c.cluster()?) },
    Step { id: "pair", title: "two-vm: handshake, both connected", tier: Tier::Test, limit_s: 300, needs: BUILT,
        run: |c| {
            let cl = c.cluster()?;
            let a = cl.boot(1, "pair", false)?;
            let b = cl.boot(2, "pair", false)?;
            c.a = Some(a);
            c.b = Some(b);
            let (a, b) = c.pair()?;
            link::handshake(a, b)
        } },
    Step { id: "bad-input", title: "two-vm: bad input from user space", tier: Tier::Test, limit_s: 600, needs: PAIR,
        run: |c| { let (a, b) = c.pair()?; security::bad_input(a, b) } },
    Step { id: "root-shell", title: "two-vm: a peer with a key asks for a root shell and runs its own registers: the shell runs as node 1's reserved ids without privilege, its syscall goes home", tier: Tier::Test, limit_s: 300, needs: PAIR,
        run: |c| { let (a, b) = c.pair()?; security::root_shell(a, b) } },
    Step { id: "shell-cap", title: "two-vm: a peer may hold only max_shells_per_peer shells on a node, and one of its users max_shells_per_uid: more are refused (EMFILE)", tier: Tier::Test, limit_s: 300, needs: PAIR,
        run: |c| { let (a, b) = c.pair()?; security::shell_cap(a, b) } },
    Step { id: "pairwise-keys", title: "two-vm: pairwise keys: a member cannot pass for another node", tier: Tier::Test, limit_s: 300, needs: PAIR,
        run: |c| { let (a, b) = c.pair()?; security::pairwise_keys(a, b) } },
    Step { id: "handshake-flood", title: "two-vm: a half-open handshake flood from four sources does not delay a real peer's reconnect", tier: Tier::Test, limit_s: 300, needs: PAIR,
        run: |c| { let (a, b) = c.pair()?; security::handshake_flood(a, b) } },
    Step { id: "wrong-key", title: "two-vm: wrong-key peer refused and logged", tier: Tier::Test, limit_s: 300, needs: PAIR,
        run: |c| c.replace_b(|cl, a, b| Ok((security::wrong_key(cl, a, b)?, String::new()))) },
    Step { id: "reboot", title: "two-vm: peer reboots, pair reconnects", tier: Tier::Test, limit_s: 300, needs: PAIR,
        run: |c| c.replace_b(link::reconnect) },
    Step { id: "sealed", title: "two-vm: the link is sealed: pages with a marker cross it, the marker never shows", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| c.replace_b(link::wire_sealed) },
    Step { id: "replaced", title: "two-vm: a link replaced by a new connection from the same node counts as its loss on both sides: no shell outlives its process", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; link::replaced(a, b) } },
    Step { id: "on-path", title: "two-vm: forged and replayed frames injected into the live TCP stream close the link", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (cl, a, b) = c.nodes()?; onpath::on_path(cl, a, b) } },
    Step { id: "workloads", title: "workloads: same result as on the host; OOM at 1.5x memory", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; workloads::workloads(a, b) } },
    Step { id: "share", title: "share: a program of the user's in the host folder (/mnt/host) runs stretched, its output the host's", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; workloads::user_program(a, b) } },
    Step { id: "stretched-workloads", title: "elastic: five workloads stretched over two nodes, results match", tier: Tier::Test, limit_s: 900, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; stretch::elastic_workloads(a, b) } },
    Step { id: "stress", title: "elastic: stress, pages verified while moving back and forth", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::elastic_stress(a, b) } },
    Step { id: "faults-install", title: "faults: injected page-install failures: every page right, or a signal and the lost page logged (short form)", tier: Tier::Test, limit_s: 900, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; faults::install_failures(a, b, faults::SHORT_RUNS) } },
    Step { id: "push-partial", title: "faults: a push install failing on the member while the process runs there keeps what it installed: no write lost", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; faults::push_install_partial(a, b, 6) } },
    Step { id: "faults-frames", title: "faults: page and jump frames dropped, duplicated, delayed: every page right, or a signal and the cause logged (short form)", tier: Tier::Test, limit_s: 900, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; faults::frame_faults(a, b, faults::FRAME_POINT_SHORT_RUNS) } },
    Step { id: "failslab", title: "faults: slab allocations of the subsystem's threads fail (failslab): every page right, or a signal and the cause logged (short form)", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; faults::alloc_failures(a, b, faults::FRAME_SHORT_RUNS) } },
    Step { id: "lost-page-kernel", title: "faults: a kernel access (write(2)) to a page that cannot come home ends the process with SIGBUS and a log line, never EFAULT", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; faults::lost_page_kernel_access(a, b) } },
    Step { id: "ping-pong", title: "jump: ping-pong with registers, FPU/AVX and stack checked (short form)", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::jump_ping_pong(a, b, PING_PONG_ROUNDS) } },
    Step { id: "jump-syscalls", title: "jump: syscalls away from home behave as at home", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::jump_home_semantics(a, b) } },
    Step { id: "jump-entries", title: "jump: int $0x80, the vsyscall page, int3 and CPU time away from home are the home's", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::jump_other_entries(a, b) } },
    Step { id: "jump-signals", title: "jump: kill -INT / -9 at home stops it on the peer", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::jump_signals(a, b) } },
    Step { id: "jump-no-eintr", title: "jump: a jump asked for while the process sleeps in epoll_wait at home waits for the call to end; no spurious EINTR", tier: Tier::Test, limit_s: 120, needs: ROOMY,
        run: |c| { let (a, _) = c.pair()?; jump::jump_without_eintr(a) } },
    Step { id: "layout", title: "elastic: layout changes and faults while pages are on the peer", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; mapsync::layout_changes(a, b) } },
    Step { id: "file-pages", title: "elastic: written .data and ifunc slots of the executable read back on the peer", tier: Tier::Test, limit_s: 120, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; mapsync::file_pages(a, b) } },
    Step { id: "stale-file-page", title: "elastic: a read-only file page the shell built is dropped when the home changes it (mprotect+write, /proc/PID/mem)", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; mapsync::stale_file_page(a, b) } },
    Step { id: "budget", title: "elastic: a budget holds at allocation time: local pages, sampled while it runs stretched, within the budget and one push batch", tier: Tier::Test, limit_s: 400, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::budget_holds(a, b) } },
    Step { id: "compaction", title: "elastic: pages moved by compaction on either node are waited for, never lost: stress stretched while both compact in a loop", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::compaction(a, b) } },
    Step { id: "thread-race", title: "elastic: a thread created while a stretch is under way is counted or refused: never stretched with two threads", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::thread_race(a, b) } },
    Step { id: "cgroup-limit", title: "elastic: a stretched process in a memory cgroup pushes before memory.high would throttle it", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::cgroup_limit(a, b) } },
    Step { id: "clean-copies", title: "elastic: a page pulled and not written since goes back by reference: a read-only scan's last round sends no page data", tier: Tier::Test, limit_s: 400, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::clean_copies(a, b) } },
    Step { id: "pull-signal", title: "elastic: a fatal signal while a fault waits for a pull ends the process with that signal, never SIGBUS", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::signal_during_pulls(a, b) } },
    Step { id: "budget-away", title: "elastic: with budget_away, a budget holds on the node the process runs on: the home pulls cold pages back (sampled shell, every page right)", tier: Tier::Test, limit_s: 400, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::budget_away(a, b) } },
    Step { id: "mlock", title: "elastic: mlock over remote pages brings them home, data intact", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::mlock_remote(a, b) } },
    Step { id: "overcommit", title: "elastic: a marked process commits at most its reach (RAM and swap per reachable node) in the heuristic mode, and strict accounting stays strict", tier: Tier::Test, limit_s: 120, needs: ROOMY,
        run: |c| { let (a, _) = c.pair()?; security::overcommit(a) } },
    Step { id: "shell-cgroup", title: "elastic: a node's shells for a peer run in the memory cgroup its administrator made for that peer: their pages are charged there and its memory.max bounds them", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; security::shell_cgroup(a, b) } },
    Step { id: "fork-live", title: "elastic: a stretched process forks; with the child alive it rewrites every page away and at home, the pages shared with the child handed over right", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::fork_live(a, b) } },
    Step { id: "fork-copy", title: "elastic: a stretched process forks with most pages on node2: the child gets its own copy of every page, and the parent keeps its own", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::fork_copy(a, b) } },
    Step { id: "exec-release", title: "elastic: exec of a stretched process releases its pages and its shell on the member; the new image runs stretched nowhere", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::exec_release(a, b) } },
    Step { id: "threads", title: "elastic: a thread, userfaultfd or io_uring of a stretched process is refused cleanly; vfork children, popen and system work", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; pull_push::threads_refused(a, b) } },
    Step { id: "sort", title: "elastic: busybox sort stretched at 1 and 2 MiB local, jump policy on, at home only and off: same output as unstretched, pages moved", tier: Tier::Test, limit_s: 900, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; stretch::foreign_program(a, b) } },
    Step { id: "mappings", title: "elastic: thousands of mappings jump; more than a jump carries stay home, no retry storm", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::many_mappings(a, b) } },
    Step { id: "hugetlb", title: "elastic: a private hugetlbfs mapping reads the home's bytes away from home, never the member's file of the same name", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::hugetlb_private(a, b) } },
    Step { id: "file-identity", title: "elastic: a shell maps a home's file only with the same contents, owned by root or itself: a planted file of the same path, size and mtime is refused", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::file_identity(a, b) } },
    Step { id: "dynamic", title: "elastic: a dynamically linked program, its libraries mapped in the shell", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; mapsync::dynamic_program(a, b) } },
    Step { id: "jump-policy", title: "jump: lsearch policy jumps to the data", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::jump_lsearch(a, b) } },
    Step { id: "trace", title: "trace: elastic:* tracepoints record pulls, pushes, fetches and jumps", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::tracepoints(a, b) } },
    Step { id: "three-nodes", title: "jump: three nodes, pages on all, execution visits each", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (cl, a, b) = c.nodes()?; three_nodes::three_nodes(cl, a, b) } },
    Step { id: "permissions", title: "elastic: only the owner or root may stretch", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; security::elastic_permissions(a, b) } },
    Step { id: "sysfuzz", title: "fuzz: elastic syscalls, sysfs and /proc from root and a user, stretched victims running (short form)", tier: Tier::Test, limit_s: 900, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; security::syscall_fuzz(a, b, security::SYSFUZZ_SHORT_CALLS, 1) } },
    Step { id: "beyond-memory", title: "elastic: 1.5x node memory runs to the right result (lsearch)", tier: Tier::Test, limit_s: 600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; stretch::elastic_beyond_memory(a, b, &["lsearch"]) } },
    Step { id: "peer-kill", title: "elastic: node2 killed at random moments of a stretched run: right or a logged signal (short form)", tier: Tier::Test, limit_s: 900, needs: ROOMY,
        run: |c| c.replace_b(|cl, a, b| peer_kill::peer_kills(cl, a, b, peer_kill::SHORT_RUNS)) },
    Step { id: "peer-death", title: "elastic: peer dies holding pages: SIGBUS, node survives", tier: Tier::Test, limit_s: 300, needs: ROOMY,
        run: |c| {
            // Node 2 dies here; a fresh one takes its place for the steps after.
            c.replace_b(|cl, a, b| {
                let note = link::elastic_peer_death(a, b)?;
                Ok((link::boot_node2(cl, a, "afterdeath")?, note))
            })
        } },
    Step { id: "bench-quick", title: "bench --quick: harness and checksums", tier: Tier::Test, limit_s: 1800, needs: BUILT,
        run: |_| {
            bench::bench(&bench::Options {
                quick: true,
                reps: 1,
                mem: 192,
                local: None,
                cap_s: 240,
                write_docs: false,
                micro: false,
                only: None,
                configs: None,
                footprint: None,
            })?;
            Ok("limit ran every workload, every other configuration one of them in turn, each with the right checksum".into())
        } },
    Step { id: "debian-small", title: "debian: a Debian 12 guest from our .debs, nodes up by systemd, an unmodified python3 stretched, man pages (cargo xtask debian --small)", tier: Tier::Test, limit_s: 1800, needs: BUILT,
        run: |_| crate::debian::run_all(true) },
    Step { id: "beyond-memory-long", title: "elastic: 1.5x node memory runs to the right result (lsearch and bsort)", tier: Tier::Full, limit_s: 1800, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; stretch::elastic_beyond_memory(a, b, &["lsearch", "bsort"]) } },
    Step { id: "ping-pong-long", title: "jump: ping-pong with registers, FPU/AVX and stack checked (long form)", tier: Tier::Full, limit_s: 1800, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; jump::jump_ping_pong(a, b, PING_PONG_LONG_ROUNDS) } },
    Step { id: "faults-install-long", title: "faults: injected page-install failures (long form)", tier: Tier::Full, limit_s: 3600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; faults::install_failures(a, b, LONG_RUNS) } },
    Step { id: "faults-frames-long", title: "faults: page and jump frames dropped, duplicated, delayed (long form)", tier: Tier::Full, limit_s: 5400, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; faults::frame_faults(a, b, LONG_RUNS) } },
    Step { id: "failslab-long", title: "faults: failslab (long form)", tier: Tier::Full, limit_s: 3600, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; faults::alloc_failures(a, b, LONG_RUNS) } },
    Step { id: "sysfuzz-long", title: "fuzz: elastic syscalls, sysfs and /proc (long form)", tier: Tier::Full, limit_s: 5400, needs: ROOMY,
        run: |c| { let (a, b) = c.pair()?; security::syscall_fuzz(a, b, SYSFUZZ_LONG_CALLS, 2) } },
    Step { id: "peer-kill-long", title: "elastic: node2 killed at random moments of a stretched run (long form)", tier: Tier::Full, limit_s: 5400, needs: ROOMY,
        run: |c| c.replace_b(|cl, a, b| peer_kill::peer_kills(cl, a, b, LONG_RUNS)) },
    Step { id: "debian", title: "debian: the Debian 12 guest with python3, sort, perl and sqlite3 stretched (cargo xtask debian)", tier: Tier::Full, limit_s: 3600, needs: BUILT,
        run: |_| crate::debian::run_all(false) },
    Step { id: "shutdown", title: "two-vm: clean shutdown, no kernel trouble", tier: Tier::Test, limit_s: 120, needs: PAIR,
        run: |c| {
            let mut t = c.a.take().map(Vm::poweroff).unwrap_or_default();
            t.extend(c.b.take().map(Vm::poweroff).unwrap_or_default());
            if !t.is_empty() {
                bail!("kernel trouble: {t:?}");
            }
            Ok(String::new())
        } },
];

/// What to run: a tier, and `EOS_ONLY`'s ids (for development; never set in CI).
pub struct Selection {
    pub full: bool,
    pub host_only: bool,
    pub only: Option<Vec<String>>,
}

impl Selection {
    /// The ids of the steps to run, in table order: the tier's steps (those `only` names, if
    /// set), every step they need, and the clean shutdown whenever the pair is booted.
    fn ids(&self) -> Result<BTreeSet<&'static str>> {
        let by_id = |id: &str| STEPS.iter().find(|s| s.id == id);
        if let Some(only) = &self.only {
            if let Some(bad) = only.iter().find(|w| by_id(w).is_none()) {
                bail!("EOS_ONLY names no step {bad:?} (see cargo xtask test --list)");
            }
        }
        let mut want: BTreeSet<&'static str> = STEPS
            .iter()
            .filter(|s| self.full || s.tier == Tier::Test)
            .filter(|s| !self.host_only || s.needs.is_empty() && !BUILT.contains(&s.id))
            .filter(|s| match &self.only {
                Some(only) => only.iter().any(|w| w == s.id),
                None => true,
            })
            .map(|s| s.id)
            .collect();
        let mut todo: Vec<&'static str> = want.iter().copied().collect();
        while let Some(id) = todo.pop() {
            for n in by_id(id).map(|s| s.needs).unwrap_or_default() {
                if want.insert(n) {
                    todo.push(n);
                }
            }
        }
        if want.contains("pair") {
            want.insert("shutdown");
        }
        Ok(want)
    }
}

/// Prints the table: id, tier, limit, title (`cargo xtask test --list`).
pub fn list() {
    for s in STEPS {
        let tier = match s.tier {
            Tier::Test => "test",
            Tier::Full => "full",
        };
        println!("{:<20} {tier} {:>5} s  {}", s.id, s.limit_s, s.title);
    }
}

/// Results and timings of the steps run so far.
struct Report {
    rows: Vec<Row>,
}

struct Row {
    id: &'static str,
    result: Result<String>,
    /// Time taken; `None` for a step that did not run.
    took: Option<Duration>,
    limit: Duration,
}

/// A step whose slowest run is within this factor of its limit shows a warning in the table:
/// drift shows before it fails.
const MARGIN: u32 = 3;

impl Report {
    /// Runs `step` within its limit: every VM command it runs is cut off at the limit
    /// (`vm::limit_to`), and a step that still ends late fails.
    fn run(&mut self, step: &Step, ctx: &mut Ctx) {
        let limit = Duration::from_secs(step.limit_s);
        eprintln!(
            "==> [{}] {} (limit {} s)",
            step.id, step.title, step.limit_s
        );
        let start = Instant::now();
        vm::limit_to(Some(start + limit));
        let mut r = (step.run)(ctx);
        vm::limit_to(None);
        let took = start.elapsed();
        if r.is_ok() && took > limit {
            r = Err(anyhow!(
                "took {:.0} s, over its limit of {} s",
                took.as_secs_f64(),
                step.limit_s
            ));
        }
        let secs = took.as_secs_f64();
        match &r {
            Ok(note) => eprintln!("PASS [{}] ({secs:.0} s) {note}", step.id),
            Err(e) => eprintln!(
                "FAIL [{}] ({secs:.0} s): {e:#}\n     (disk: {})",
                step.id,
                crate::util::disk_note()
            ),
        }
        self.rows.push(Row {
            id: step.id,
            result: r,
            took: Some(took),
            limit,
        });
    }

    fn skip(&mut self, step: &Step, why: &str) {
        eprintln!("FAIL [{}] {}: not run ({why})", step.id, step.title);
        self.rows.push(Row {
            id: step.id,
            result: Err(anyhow!("not run: {why}")),
            took: None,
            limit: Duration::from_secs(step.limit_s),
        });
    }

    fn failed(&self, id: &str) -> bool {
        self.rows.iter().any(|r| r.id == id && r.result.is_err())
    }

    /// Every step's time next to its limit; `!` where the margin is below `MARGIN`.
    fn times(&self) -> String {
        let mut t = format!("STEP TIMES (time / limit; ! = less than {MARGIN}x margin):\n");
        for r in &self.rows {
            let Some(took) = r.took else {
                t.push_str(&format!(
                    "     -   / {:5} s  {} (not run)\n",
                    r.limit.as_secs(),
                    r.id
                ));
                continue;
            };
            let tight = took * MARGIN > r.limit;
            t.push_str(&format!(
                "{} {:5.0} s / {:5} s  {}{}\n",
                if tight { "!" } else { " " },
                took.as_secs_f64(),
                r.limit.as_secs(),
                r.id,
                if r.result.is_err() { " (FAILED)" } else { "" }
            ));
        }
        t
    }
}

/// A step of node 2 cannot run once an earlier step lost it.
fn uses_node2(step: &Step) -> bool {
    step.needs == PAIR || step.needs == ROOMY
}

pub use faults::long as faults;
pub use peer_kill::long as peerkill;
pub use security::long_sysfuzz as sysfuzz;

/// Runs the selected steps in table order, prints the time table and the summary line, and
/// exits non-zero if any step failed.
pub fn all(sel: &Selection) -> Result<()> {
    let start = Instant::now();
    let ids = sel.ids()?;
    let mut report = Report { rows: Vec::new() };
    let mut ctx = Ctx::default();
    eprintln!("xtask test: disk: {}", crate::util::disk_note());
    for step in STEPS.iter().filter(|s| ids.contains(s.id)) {
        if let Some(n) = step.needs.iter().find(|n| report.failed(n)) {
            report.skip(step, &format!("it needs step {n}, which failed"));
            continue;
        }
        if step.id != "shutdown" && uses_node2(step) && ctx.b.is_none() {
            report.skip(step, "node2 was lost by an earlier step");
            continue;
        }
        report.run(step, &mut ctx);
    }
    // A VM left running by a failed step is powered off (its trouble was already judged).
    for v in [ctx.a.take(), ctx.b.take()].into_iter().flatten() {
        let _ = v.poweroff();
    }
    let failed: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| r.result.is_err())
        .map(|r| r.id)
        .collect();
    eprint!("{}", report.times());
    println!(
        "SUMMARY: {} passed, {} failed ({:.0} s){}",
        report.rows.len() - failed.len(),
        failed.len(),
        start.elapsed().as_secs_f64(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {}", failed.join(", "))
        }
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn sel(full: bool, only: Option<&[&str]>) -> Selection {
        Selection {
            full,
            host_only: false,
            only: only.map(|o| o.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn ids_are_unique_short_and_needs_come_first() {
        let mut seen = BTreeSet::new();
        for (i, s) in STEPS.iter().enumerate() {
            assert!(seen.insert(s.id), "step id {} twice", s.id);
            assert!(
                s.id.len() <= 20
                    && s.id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "step id {:?} is not a short kebab-case id",
                s.id
            );
            for n in s.needs {
                let at = STEPS.iter().position(|t| t.id == *n);
                assert!(
                    at.is_some_and(|at| at < i),
                    "{} needs {n}, which is not before it",
                    s.id
                );
            }
        }
    }

    #[test]
    fn tiers_and_only_select_with_their_needs() {
        let test = sel(false, None).ids().unwrap();
        let full = sel(true, None).ids().unwrap();
        assert!(test.is_subset(&full));
        assert!(test.contains("stress") && !test.contains("peer-kill-long"));
        assert!(full.contains("peer-kill-long") && full.contains("debian"));
        let only = sel(false, Some(&["stress"])).ids().unwrap();
        let want: BTreeSet<_> = ["kernel", "image", "pair", "reboot", "stress", "shutdown"].into();
        assert_eq!(only, want);
        assert!(sel(false, Some(&["no-such-step"])).ids().is_err());
        let host = Selection {
            full: false,
            host_only: true,
            only: None,
        }
        .ids()
        .unwrap();
        assert!(host.contains("clippy") && !host.contains("kernel") && !host.contains("pair"));
    }
}
