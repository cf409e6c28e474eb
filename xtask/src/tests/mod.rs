//! `cargo xtask test`: host checks, the KUnit boot and the two-VM scenarios, with a summary.
//!
//! This file holds the step runner (limits, `EOS_ONLY`, the STEP TIMES table, the summary
//! line) and the one list of steps, in order; each step's body lives in the file of the
//! primitive it tests. Every VM step also fails if any VM's console showed kernel trouble
//! (see `vm::TROUBLE`).

mod faults;
mod host;
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

use crate::vm::{self, Cluster};
use crate::{bench, cluster, image, kernel};
use anyhow::{bail, Result};
use jump::{
    jump_home_semantics, jump_lsearch, jump_other_entries, jump_ping_pong, jump_signals,
    many_mappings, tracepoints,
};
use kunit::kunit;
use link::{elastic_peer_death, handshake, reconnect, wire_sealed};
use mapsync::{dynamic_program, file_pages, layout_changes};
use pull_push::{elastic_stress, mlock_remote, threads_refused};
use security::{
    bad_input, elastic_permissions, handshake_flood, pairwise_keys, syscall_fuzz, wrong_key,
    SYSFUZZ_SHORT_CALLS,
};
use std::time::{Duration, Instant};
use stretch::{elastic_beyond_memory, elastic_workloads, foreign_program};
use three_nodes::three_nodes;
use workloads::workloads;

/// Jump round trips of the ping-pong test.
const PING_PONG_ROUNDS: u32 = 10_000;

/// Memory of node 1 (and of the KUnit VM), MiB.
const MEM_MIB: u32 = 256;
/// Memory of node 2 once it rebooted, and of node 3: room for another node's pages, MiB.
const PEER_MEM_MIB: u32 = 512;

/// Results and timings of the steps run so far.
struct Report {
    rows: Vec<Row>,
}

struct Row {
    name: String,
    result: Result<String>,
    /// Time taken; `None` for a step that did not run.
    took: Option<Duration>,
    limit: Duration,
}

/// A step whose slowest run is within this factor of its limit shows a warning in the table:
/// drift shows before it fails.
const MARGIN: u32 = 3;

impl Report {
    /// Runs step `name` within `limit_s` seconds: every VM command it runs is cut off at the
    /// limit (`vm::limit_to`), and a step that still ends late fails.
    fn step(&mut self, name: &str, limit_s: u64, f: impl FnOnce() -> Result<String>) -> bool {
        let limit = Duration::from_secs(limit_s);
        // For development: `EOS_ONLY=jump,layout` runs only the steps whose names contain one
        // of the words (and the steps they all need). Never set in CI.
        if let Ok(only) = std::env::var("EOS_ONLY") {
            const NEEDED: [&str; 5] = [
                "kernel: build",
                "guest image",
                "two-vm: handshake",
                "two-vm: wrong-key",
                "two-vm: peer reboots",
            ];
            if !NEEDED.iter().any(|n| name.starts_with(n))
                && !only.split(',').any(|w| name.contains(w))
            {
                eprintln!("SKIP {name} (EOS_ONLY)");
                return true;
            }
        }
        eprintln!("==> {name} (limit {limit_s} s)");
        let start = Instant::now();
        vm::limit_to(Some(start + limit));
        let mut r = f();
        vm::limit_to(None);
        let took = start.elapsed();
        if r.is_ok() && took > limit {
            r = Err(anyhow::anyhow!(
                "took {:.0} s, over its limit of {limit_s} s",
                took.as_secs_f64()
            ));
        }
        let secs = took.as_secs_f64();
        match &r {
            Ok(note) => eprintln!("PASS {name} ({secs:.0} s) {note}"),
            Err(e) => eprintln!("FAIL {name} ({secs:.0} s): {e:#}"),
        }
        let ok = r.is_ok();
        self.rows.push(Row {
            name: name.to_string(),
            result: r,
            took: Some(took),
            limit,
        });
        ok
    }

    fn skip(&mut self, name: &str, why: &str) {
        eprintln!("FAIL {name}: not run ({why})");
        self.rows.push(Row {
            name: name.to_string(),
            result: Err(anyhow::anyhow!("not run: {why}")),
            took: None,
            limit: Duration::ZERO,
        });
    }

    /// Every step's time next to its limit; `!` where the margin is below `MARGIN`.
    fn times(&self) -> String {
        let mut t = format!("STEP TIMES (time / limit; ! = less than {MARGIN}x margin):\n");
        for r in &self.rows {
            let Some(took) = r.took else {
                t.push_str(&format!("     -   /      -   {} (not run)\n", r.name));
                continue;
            };
            let tight = took * MARGIN > r.limit;
            t.push_str(&format!(
                "{} {:5.0} s / {:5} s  {}{}\n",
                if tight { "!" } else { " " },
                took.as_secs_f64(),
                r.limit.as_secs(),
                r.name,
                if r.result.is_err() { " (FAILED)" } else { "" }
            ));
        }
        t
    }
}

fn vm_tests(report: &mut Report, cluster: &Cluster) {
    report.step("kunit: in-kernel suites", 600, || kunit(cluster));
    let mut a = match cluster.boot(1, "pair", false) {
        Ok(v) => v,
        Err(e) => return report.skip("two-vm", &format!("{e:#}")),
    };
    let b = match cluster.boot(2, "pair", false) {
        Ok(v) => v,
        Err(e) => return report.skip("two-vm", &format!("{e:#}")),
    };
    let mut b = Some(b);
    let ok = report.step("two-vm: handshake, both connected", 300, || {
        handshake(&mut a, b.as_mut().unwrap())
    });
    if !ok {
        return report.skip("two-vm: later steps", "no link");
    }
    report.step("two-vm: bad input from user space", 600, || {
        bad_input(&mut a, b.as_mut().unwrap())
    });
    report.step(
        "two-vm: a peer with a key asks for a root shell and runs its own registers: the shell is nobody, its syscall goes home",
        300,
        || security::root_shell(&mut a, b.as_mut().unwrap()),
    );
    report.step(
        "two-vm: pairwise keys: a member cannot pass for another node",
        300,
        || pairwise_keys(&mut a, b.as_mut().unwrap()),
    );
    report.step(
        "two-vm: a half-open handshake flood from one source does not delay a real peer's reconnect",
        300,
        || handshake_flood(&mut a, b.as_mut().unwrap()),
    );
    let mut next = None;
    report.step("two-vm: wrong-key peer refused and logged", 300, || {
        next = Some(wrong_key(cluster, &mut a, b.take().unwrap())?);
        Ok(String::new())
    });
    let Some(bb) = next else {
        return report.skip("two-vm: reboot", "no node2");
    };
    let mut last = None;
    report.step("two-vm: peer reboots, pair reconnects", 300, || {
        let (b, note) = reconnect(cluster, &mut a, bb)?;
        last = Some(b);
        Ok(note)
    });
    if let Some(b) = last.take() {
        let mut next = None;
        let mut held = Some(b);
        report.step(
            "two-vm: the link is sealed: pages with a marker cross it, the marker never shows",
            300,
            || {
                let (b, note) = wire_sealed(cluster, &mut a, held.take().expect("node2"))?;
                next = Some(b);
                Ok(note)
            },
        );
        last = next.or(held);
    }
    if let Some(b) = last.as_mut() {
        report.step(
            "two-vm: forged and replayed frames injected into the live TCP stream close the link",
            300,
            || onpath::on_path(cluster, &mut a, b),
        );
    }
    if let Some(b) = last.as_mut() {
        report.step(
            "workloads: same result as on the host; OOM at 1.5x memory",
            600,
            || workloads(&mut a, b),
        );
        report.step(
            "share: a program of the user's in the host folder (/mnt/host) runs stretched, its output the host's",
            300,
            || workloads::user_program(&mut a, b),
        );
        report.step(
            "elastic: five workloads stretched over two nodes, results match",
            900,
            || elastic_workloads(&mut a, b),
        );
        report.step(
            "elastic: stress, pages verified while moving back and forth",
            600,
            || elastic_stress(&mut a, b),
        );
        report.step(
            "faults: injected page-install failures: every page right, or a signal and the lost page logged",
            900,
            || faults::install_failures(&mut a, b, faults::SHORT_RUNS),
        );
        report.step(
            "faults: page and jump frames dropped, duplicated, delayed: every page right, or a signal and the cause logged",
            900,
            || faults::frame_faults(&mut a, b, faults::FRAME_SHORT_RUNS),
        );
        report.step(
            "faults: slab allocations of the subsystem's threads fail (failslab): every page right, or a signal and the cause logged",
            600,
            || faults::alloc_failures(&mut a, b, faults::FRAME_SHORT_RUNS),
        );
        report.step(
            "jump: ping-pong with registers, FPU/AVX and stack checked",
            900,
            || jump_ping_pong(&mut a, b, PING_PONG_ROUNDS),
        );
        report.step(
            "jump: syscalls away from home behave as at home",
            300,
            || jump_home_semantics(&mut a, b),
        );
        report.step(
            "jump: int $0x80, the vsyscall page, int3 and CPU time away from home are the home's",
            300,
            || jump_other_entries(&mut a, b),
        );
        report.step(
            "jump: kill -INT / -9 at home stops it on the peer",
            300,
            || jump_signals(&mut a, b),
        );
        report.step(
            "elastic: layout changes and faults while pages are on the peer",
            600,
            || layout_changes(&mut a, b),
        );
        report.step(
            "elastic: written .data and ifunc slots of the executable read back on the peer",
            120,
            || file_pages(&mut a, b),
        );
        report.step(
            "elastic: mlock over remote pages brings them home, data intact",
            300,
            || mlock_remote(&mut a, b),
        );
        report.step(
            "elastic: a thread, userfaultfd or io_uring of a stretched process is refused cleanly; vfork children, popen and system work",
            300,
            || threads_refused(&mut a, b),
        );
        report.step(
            "elastic: busybox sort stretched at three budgets, jump policy on and off: same output as unstretched",
            900,
            || foreign_program(&mut a, b),
        );
        report.step(
            "elastic: thousands of mappings jump; more than a jump carries stay home, no retry storm",
            600,
            || many_mappings(&mut a, b),
        );
        report.step(
            "elastic: a dynamically linked program, its libraries mapped in the shell",
            600,
            || dynamic_program(&mut a, b),
        );
        report.step("jump: lsearch policy jumps to the data", 600, || {
            jump_lsearch(&mut a, b)
        });
        report.step(
            "trace: elastic:* tracepoints record pulls, pushes, fetches and jumps",
            600,
            || tracepoints(&mut a, b),
        );
        report.step(
            "jump: three nodes, pages on all, execution visits each",
            600,
            || three_nodes(cluster, &mut a, b),
        );
        report.step("elastic: only the owner or root may stretch", 300, || {
            elastic_permissions(&mut a, b)
        });
        report.step(
            &format!(
                "fuzz: elastic syscalls, sysfs and /proc from root and a user, stretched victims running ({SYSFUZZ_SHORT_CALLS} calls each)"
            ),
            900,
            || syscall_fuzz(&mut a, b, SYSFUZZ_SHORT_CALLS, 1),
        );
        report.step(
            "elastic: 1.5x node memory runs to the right result",
            900,
            || elastic_beyond_memory(&mut a, b),
        );
    }
    if let Some(b) = last.take() {
        let mut next = None;
        // Still here if the step is skipped (EOS_ONLY); gone if it ran and failed.
        let mut held = Some(b);
        report.step(
            &format!(
                "elastic: node2 killed at random moments of a stretched run ({} times): right or a logged signal",
                peer_kill::SHORT_RUNS
            ),
            900,
            || {
                let b = held.take().expect("node2");
                let (b, note) = peer_kill::peer_kills(cluster, &mut a, b, peer_kill::SHORT_RUNS)?;
                next = Some(b);
                Ok(note)
            },
        );
        last = next.or(held);
    }
    if let Some(b) = last.take() {
        report.step(
            "elastic: peer dies holding pages: SIGBUS, node survives",
            300,
            || elastic_peer_death(&mut a, b),
        );
    }
    report.step("two-vm: clean shutdown, no kernel trouble", 120, || {
        let mut t = a.poweroff();
        if let Some(b) = last {
            t.extend(b.poweroff());
        }
        if !t.is_empty() {
            bail!("kernel trouble: {t:?}");
        }
        Ok(String::new())
    });
}

pub use faults::long as faults;
pub use peer_kill::long as peerkill;
pub use security::long_sysfuzz as sysfuzz;

/// Every test. `host_only` skips kernel and VMs (for quick iterations).
pub fn all(host_only: bool) -> Result<()> {
    let start = Instant::now();
    let mut report = Report { rows: Vec::new() };
    report.step("host: cargo fmt --check", 300, host::fmt);
    report.step("host: clippy -D warnings", 1800, host::clippy);
    report.step("host: cargo test", 1800, host::unit_tests);
    report.step(
        "host: libelastic and workloads compile warning-free",
        300,
        host::c_programs,
    );
    report.step(
        "package: elasticos-tools holds eosctl, libelastic (.so, header, pkg-config), man pages and the node service; a program links against it",
        600,
        || {
            let deb = crate::package::tools_deb(&crate::package::maintainer())?;
            crate::package::check(&deb)
        },
    );
    report.step(
        &format!(
            "fuzz: host fuzzers smoke ({} executions per target)",
            crate::fuzz::SMOKE_RUNS
        ),
        300,
        crate::fuzz::smoke,
    );
    if !host_only {
        let mut kernel_image = None;
        let built = report.step("kernel: build with ElasticOS", 3600, || {
            let t = kernel::build()?;
            kernel_image = Some(t.bzimage());
            Ok(format!("linux {}", t.version))
        });
        let mut initrd = None;
        let imaged = report.step("guest image", 900, || {
            initrd = Some(image::build()?);
            Ok(String::new())
        });
        if built && imaged {
            match cluster::new(kernel_image.unwrap(), initrd.unwrap(), MEM_MIB) {
                Ok(mut c) => {
                    // As `cargo xtask vm --share`: a host folder in every node.
                    let share = crate::util::out_dir().join("share");
                    let _ = std::fs::create_dir_all(&share);
                    c.set_share(share);
                    eprintln!("VMs: {MEM_MIB} MiB each, accelerator {:?}", c.accel());
                    vm_tests(&mut report, &c);
                    report.step("bench --quick: harness and checksums", 1800, || {
                        bench::bench(&bench::Options {
                            quick: true,
                            reps: 1,
                            mem: 128,
                            local: None,
                            cap_s: 240,
                            write_docs: false,
                            micro: false,
                        })?;
                        Ok("limit ran every workload, every other configuration one of them in turn, each with the right checksum".into())
                    });
                    report.step(
                        "debian: a Debian 12 guest from our .debs, nodes up by systemd, an unmodified python3 stretched, man pages (cargo xtask debian --small)",
                        1800,
                        || crate::debian::run_all(true),
                    );
                }
                Err(e) => report.skip("vm tests", &format!("{e:#}")),
            }
        } else {
            report.skip("vm tests", "kernel or image did not build");
        }
    }
    let failed: Vec<&str> = report
        .rows
        .iter()
        .filter(|r| r.result.is_err())
        .map(|r| r.name.as_str())
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
            format!(": {}", failed.join("; "))
        }
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
