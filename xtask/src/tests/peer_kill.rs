//! Killing the peer at random moments while a process runs stretched over it (its pages
//! pushed there under a budget, its execution jumping there and back): every run ends with
//! the native result, or with the process killed by a signal and a log line naming the lost
//! node; node1 never prints kernel trouble and keeps working (each run starts on a rebooted
//! peer, and a last run with no kill must be right).
//!
//! The test command runs `SHORT_RUNS`; `cargo xtask peerkill --runs N` the long form.

use super::PEER_MEM_MIB;
use crate::cluster::{self, check_clean, host_result, up, SECRET};
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
    delays_ms: Vec<u64>,
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
    for run in 0..=runs {
        let before: usize = LOST.iter().map(|l| a.console().matches(l).count()).sum();
        a.sh(&format!(
            "eosctl run --elastic --budget 4 -- stress {} > /tmp/pk.out 2>&1 & echo $! > /tmp/pk.pid",
            STRESS.join(" ")
        ))?;
        // The last run is not killed: the node must still work.
        let kill = run < runs;
        if kill {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let delay = 500 + (seed >> 33) % 6000;
            t.delays_ms.push(delay);
            std::thread::sleep(Duration::from_millis(delay));
            let trouble = b.take().expect("node2 is up").kill();
            if !trouble.is_empty() {
                bail!("run {run}: node2 printed kernel trouble before it was killed: {trouble:?}");
            }
        }
        let (_, out) = a.run(
            "wait $(cat /tmp/pk.pid); echo status=$?; cat /tmp/pk.out",
            Duration::from_secs(900),
        )?;
        let status: i32 = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("status="))
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        let after: usize = LOST.iter().map(|l| a.console().matches(l).count()).sum();
        let logged = after > before;
        match status {
            0 if out.lines().any(|l| l == want) => t.right += 1,
            // SIGBUS (pages or execution lost with the node), SIGKILL (a jump it cannot
            // know the end of): only with the reason logged.
            135 | 137 if kill && logged => t.stopped += 1,
            _ => bail!(
                "run {run}{}: exit {status}, host says `{want}`, loss logged: {logged}; VM printed:\n{out}",
                if kill { " (node2 killed)" } else { "" }
            ),
        }
        check_clean(&[a])?;
        a.sh("eosctl stats > /dev/null")?;
        if kill {
            a.sh("eosctl wait 2 --state !connected --timeout 30")?;
            let mut v = cluster.boot_with(2, "peerkill", PEER_MEM_MIB, &[])?;
            up(&mut v, 2, &[1], SECRET)?;
            b = Some(v);
            a.sh("eosctl wait 2 --timeout 60")?;
        }
    }
    let b = b.expect("node2 is up after the last run");
    check_clean(&[a, &b])?;
    Ok((
        b,
        format!(
            "{runs} runs with node2 killed after {:?} ms: {} right, {} stopped by a signal \
             with the loss logged, 0 wrong; a run after them is right",
            t.delays_ms,
            t.right.saturating_sub(1),
            t.stopped
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
