//! Killing the peer at random moments while a process runs stretched over it (its pages
//! pushed there under a budget, its execution jumping there and back): every run ends with
//! the native result, or with the process killed by a signal and a log line naming the lost
//! node; node1 never prints kernel trouble and keeps working (each run starts on a rebooted
//! peer, and a last run with no kill must be right).
//!
//! The test command runs `SHORT_RUNS`; `cargo xtask peerkill --runs N` the long form.

use super::judge::{judge, Outcome};
use super::PEER_MEM_MIB;
use crate::cluster::{self, check_clean, host_result, up, Procs, SECRET};
use crate::vm::{Cluster, Vm};
use anyhow::{bail, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Runs in the test command.
pub(super) const SHORT_RUNS: u32 = 2;

/// The versioned-page stress program: 16 MiB, checked page by page; long enough (tens of
/// seconds under TCG) that a kill lands in the middle.
const STRESS: [&str; 3] = ["16", "7", "20000"];

/// What node1 logs when it ends a process because a node is lost (home.rs, jump.rs).
const LOST: [&str; 3] = ["lost: killing pid", "not confirmed", "died on node"];

/// Outcomes of the runs.
#[derive(Default)]
struct Tally {
    right: u32,
    stopped: u32,
    dumps_cut: u32,
    delays_ms: Vec<u64>,
}

/// Pages node1 says it lost with node2, from its "lost: killing pid P (...) with SIGBUS, K
/// of its pages were there" line (0 if it said none, or said the process ran there).
fn lost_pages(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("lost: killing pid"))
        .filter_map(|l| l.split("SIGBUS, ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `runs` kills of node2 at random moments of a stretched stress run on node1; returns the
/// rebooted node2 and a summary.
pub(super) fn peer_kills(cluster: &Cluster, a: &mut Vm, b: Vm, runs: u32) -> Result<(Vm, String)> {
    let mut b = Some(b);
    let want = host_result("stress", &STRESS)?;
    let mut t = Tally::default();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    // A process killed for a lost node dumps core: the dump must stop where a lost page is
    // (and say so), never write zeros for it as if the dump were whole.
    a.sh("echo /tmp/core.%p > /proc/sys/kernel/core_pattern")?;
    for run in 0..=runs {
        let mark = a.console().len();
        // A grandchild of the console shell, which writes its own status: the shell gets no
        // SIGCHLD at its end (busybox ash has taken one at its prompt for an end of input and
        // forgotten the job, so `wait` said 127).
        // Its pid first (eosctl execs stress in the same process), so that the loss line
        // that stops it must name it.
        a.sh(&format!(
            "rm -f /tmp/pk.status; (sh -c 'ulimit -c unlimited; eosctl run --elastic --budget 4 \
             -- stress {} & echo EOSPID $!; wait $!; echo status=$? > /tmp/pk.status' \
             > /tmp/pk.out 2>&1 &)",
            STRESS.join(" ")
        ))?;
        // The last run is not killed: the node must still work.
        let kill = run < runs;
        if kill {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // From its stretch on (it fills its memory locally first), so that the kill
            // lands while its pages are on node2. Past the wait it is killed all the same.
            let _ = cluster::poll(
                "stress stretched or ended",
                Duration::from_secs(10),
                Duration::from_millis(100),
                || {
                    // The listing and the status file in one command; the status line is
                    // no procs line, so the parser skips it.
                    let out = a.sh(
                        "cat /sys/kernel/elastic/procs; cat /tmp/pk.status 2>/dev/null; true",
                    )?;
                    let stretched = Procs::parse(&out).home("stress").is_some();
                    Ok((stretched || out.contains("status=")).then_some(()))
                },
            );
            let delay = 200 + (seed >> 33) % 3000;
            t.delays_ms.push(delay);
            std::thread::sleep(Duration::from_millis(delay));
            let trouble = b.take().expect("node2 is up").kill();
            if !trouble.is_empty() {
                bail!("run {run}: node2 printed kernel trouble before it was killed: {trouble:?}");
            }
        }
        let (_, out) = a.run(
            "while [ ! -s /tmp/pk.status ]; do sleep 0.2; done; cat /tmp/pk.status /tmp/pk.out",
            Duration::from_secs(900),
        )?;
        let status: i32 = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("status="))
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        let console = a.console();
        let log = console.get(mark..).unwrap_or("");
        if status == 135 && lost_pages(log) > 0 && !log.contains("core dump cut short") {
            bail!("run {run}: its core dump went on over pages lost with node2 (no 'core dump cut short' line):\n{log}");
        }
        t.dumps_cut += u32::from(log.contains("core dump cut short"));
        a.sh("rm -f /tmp/core.*")?;
        // SIGBUS (pages or execution lost with the node), SIGKILL (a jump it cannot know the
        // end of): only after a kill, with the reason logged for this process.
        let what = format!("run {run}{}", if kill { " (node2 killed)" } else { "" });
        match judge(&what, status, &out, &want, &[log], &LOST, kill)? {
            Outcome::Right => t.right += 1,
            Outcome::Stopped => t.stopped += 1,
        }
        check_clean(&[a])?;
        a.sh("eosctl stats > /dev/null")?;
        if kill {
            a.sh("eosctl wait 2 --state !connected --timeout 30")?;
            let mut v = cluster.boot_with(2, "peerkill", PEER_MEM_MIB, &[])?;
            up(&mut v, 2, &[1], SECRET)?;
            b = Some(v);
            cluster::wait_links(a, &[2])?;
        }
    }
    let b = b.expect("node2 is up after the last run");
    check_clean(&[a, &b])?;
    Ok((
        b,
        format!(
            "{runs} runs with node2 killed {:?} ms after the process stretched: {} right, {} stopped by a signal \
             with the loss logged ({} core dumps cut short at a lost page), 0 wrong; a run after \
             them is right",
            t.delays_ms,
            t.right.saturating_sub(1),
            t.stopped,
            t.dumps_cut
        ),
    ))
}

/// `cargo xtask peerkill --runs N`: the long form, on its own pair of nodes.
pub fn long(runs: u32) -> Result<()> {
    let (_tree, c) = cluster::build(super::MEM_MIB)?;
    let mut vms = cluster::boot_mesh(
        &c,
        &[
            (1, "peerkill", super::MEM_MIB),
            (2, "peerkill", PEER_MEM_MIB),
        ],
    )?;
    let b = vms.pop().expect("two nodes");
    let mut a = vms.pop().expect("two nodes");
    cluster::wait_links(&mut a, &[2])?;
    let r = peer_kills(&c, &mut a, b, runs);
    let (b, note) = match r {
        Ok(v) => v,
        Err(e) => {
            let _ = cluster::poweroff_all([a]);
            return Err(e);
        }
    };
    let trouble = cluster::poweroff_all([a, b]);
    if !trouble.is_empty() {
        bail!("kernel trouble: {trouble:?}");
    }
    println!("PEERKILL: {note}");
    Ok(())
}
