//! Three nodes: a process spread over two peers, and the loss of one that holds none of its
//! pages.

use super::PEER_MEM_MIB;
use crate::cluster::{self, check_clean, host_result, jumplog, remote_pages, up, Procs, SECRET};
use crate::vm::{self, Cluster, Vm};
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// Three nodes: a process stretched to node2 and node3, its pages pushed to both, jumps to
/// each; every page checked at every stop.
pub(super) fn three_nodes(cluster: &Cluster, a: &mut Vm, b: &mut Vm) -> Result<String> {
    let mut c = cluster.boot_with(3, "trio", PEER_MEM_MIB, &[])?;
    up(&mut c, 3, &[1], SECRET)?;
    a.sh(&format!("eosctl peer add 3 {}:{}", vm::ip(3), vm::PORT))?;
    cluster::wait_links(a, &[3])?;
    // 12 MiB with a 4 MiB budget: 2,048 pages on the two members (24 MiB took 99 s of the
    // test command for the same paths).
    const MIB: &str = "12";
    let want = host_result("tour", &[MIB, "1", "2", "3"])?;
    let (j0, _, _) = jumplog(a)?;
    let (rc, out) = a.run(&format!("tour {MIB} 1 2 3"), Duration::from_secs(900))?;
    if rc != 0 || !out.lines().any(|l| l == want) {
        bail!("tour: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    let spread = out
        .lines()
        .find(|l| l.starts_with("tour: stretched:"))
        .unwrap_or("")
        .to_string();
    let remote = remote_pages(&spread);
    if !spread.contains("node=2,3") || remote == 0 {
        bail!("tour was not spread over nodes 2 and 3: {spread:?}");
    }
    let log = a.sh("eosctl jumplog")?;
    let (j1, _, _) = jumplog(a)?;
    for to in ["to=2 ", "to=3 "] {
        if !log.contains(to) {
            bail!("no jump {to}in node1's log:\n{log}");
        }
    }
    // Losing a member that holds none of a process's pages: the process runs on with the
    // other one. Its pages go to node2 first; node3 joins afterwards and gets none.
    a.sh(
        "eosctl run -- hold 8 600 > /tmp/hold.out & echo $! > /tmp/hold.pid; \
         for i in $(seq 100); do grep -q ready /tmp/hold.out && break; sleep 0.1; done; \
         eosctl stretch $(cat /tmp/hold.pid) 2 && eosctl budget $(cat /tmp/hold.pid) 2",
    )?;
    // Until the pusher is done (the count holds still): a batch still under way when node3
    // joins may go there, and then the process rightly dies with node3.
    let mut listing = String::new();
    let mut last = -1;
    let settled = cluster::poll(
        "hold's pages settling on node2",
        Duration::from_secs(50),
        Duration::from_millis(500),
        || {
            listing = a.sh("cat /sys/kernel/elastic/procs")?;
            let now = Procs::parse(&listing)
                .home("hold")
                .map_or(0, |h| h.remote_pages());
            let done = now > 1000 && now == last;
            last = now;
            Ok(done.then_some(now))
        },
    )
    .with_context(|| format!("hold's pages did not settle on node2 ({last}):\n{listing}"))?;
    a.sh("eosctl stretch $(cat /tmp/hold.pid) 3")?;
    // And one that holds its pages on node3 and is stretched to node2 as well: it dies with
    // node3, and node2 drops its shell (the home tells it; nothing is left behind). It runs in
    // a session of its own: as a job of this console shell, its death took the shell with it
    // (an open finding, see docs/ARCHITECTURE.md, "Known limits").
    a.sh(
        "(setsid eosctl run -- hold 4 600 > /tmp/hold3.out 2>&1 & echo $! > /tmp/hold3.pid); \
         for i in $(seq 100); do grep -q ready /tmp/hold3.out && break; sleep 0.1; done; \
         eosctl stretch $(cat /tmp/hold3.pid) 3 && eosctl budget $(cat /tmp/hold3.pid) 2",
    )?;
    let hold3 = cluster::pid_in(a, "/tmp/hold3.pid")?;
    let mut on3 = 0;
    cluster::poll(
        "the second hold's pages on node3",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            on3 = Procs::read(a)?
                .home_pid(hold3)
                .map_or(0, |h| h.remote_pages());
            Ok((on3 > 500).then_some(()))
        },
    )
    .with_context(|| format!("the second hold's pages did not go to node3 ({on3})"))?;
    a.sh("eosctl stretch $(cat /tmp/hold3.pid) 2")?;
    let shell_of_hold3 =
        |b: &mut Vm| -> Result<bool> { Ok(Procs::read(b)?.shell_of(1, hold3).is_some()) };
    if !shell_of_hold3(b)? {
        bail!("no shell of pid {hold3} on node2");
    }
    let t = c.poweroff();
    if !t.is_empty() {
        bail!("node3 printed kernel trouble: {t:?}");
    }
    // Not judged until the process's own end is known, below: a timeout counts as not survived.
    let survived = cluster::poll(
        "node1 logging the loss of node3",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            Ok(a.console()
                .contains("node 3 lost: pid")
                .then(|| a.console().contains("runs on with its other nodes")))
        },
    )
    .unwrap_or(false);
    let (_, out) = a.run(
        "kill -USR1 $(cat /tmp/hold.pid); wait $(cat /tmp/hold.pid); echo status=$?; cat /tmp/hold.out",
        Duration::from_secs(120),
    )?;
    if !survived || !out.contains("status=0") || !out.contains("hold: 0 bad pages") {
        bail!("a process with no pages on node3 did not survive its loss:\n{out}");
    }
    // Not a child of this shell (its own session): gone, with the reason logged.
    let (_, out3) = a.run(
        "for i in $(seq 50); do [ -d /proc/$(cat /tmp/hold3.pid) ] || break; sleep 0.2; done; \
         [ -d /proc/$(cat /tmp/hold3.pid) ] && echo alive || echo gone",
        Duration::from_secs(60),
    )?;
    if !out3.contains("gone")
        || !a
            .console()
            .contains(&format!("killing pid {hold3} (hold) with SIGBUS"))
    {
        bail!("a process with its pages on node3 did not die of SIGBUS with it:\n{out3}");
    }
    cluster::poll(
        "node2 dropping the shell of the second hold",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || Ok((!shell_of_hold3(b)?).then_some(())),
    )
    .with_context(|| format!("node2 kept the shell of pid {hold3}, which died with node3"))?;
    a.sh("eosctl peer del 3")?;
    check_clean(&[a, b])?;
    Ok(format!(
        "{MIB} MiB over 3 nodes ({}), {} jumps from node1, every page right at every stop; node3 \
         lost while a process had {} pages on node2 and none there: it ran on, every page right; \
         one with {on3} pages there died of SIGBUS and node2 dropped its shell",
        spread.trim_start_matches("tour: stretched: "),
        j1 - j0,
        settled
    ))
}
