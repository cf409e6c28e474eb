//! The link between two nodes: handshake and heartbeats, reconnection after a reboot, and the
//! loss of a peer that holds pages of a process.

use super::PEER_MEM_MIB;
use crate::cluster::{self, check_clean, peer_field, up, Procs, SECRET};
use crate::vm::{Cluster, Vm};
use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

pub(super) fn handshake(a: &mut Vm, b: &mut Vm) -> Result<String> {
    up(a, 1, &[2], SECRET)?;
    up(b, 2, &[1], SECRET)?;
    cluster::wait_links(a, &[2])?;
    cluster::wait_links(b, &[1])?;
    // A few heartbeats, so round-trip times are measured.
    std::thread::sleep(Duration::from_secs(3));
    let pa = a.sh("cat /sys/kernel/elastic/peers")?;
    let pb = b.sh("cat /sys/kernel/elastic/peers")?;
    let rtt = peer_field(&pa, 2, "srtt_us").unwrap_or(0);
    if rtt == 0 || peer_field(&pb, 1, "rtt_us").unwrap_or(0) == 0 {
        bail!("no round-trip time measured:\n{pa}\n{pb}");
    }
    check_clean(&[a, b])?;
    Ok(format!("both connected, heartbeat srtt {rtt} us"))
}

/// A fresh node 2 (with room for node 1's pages), linked to node 1.
pub(super) fn boot_node2(cluster: &Cluster, a: &mut Vm, tag: &str) -> Result<Vm> {
    a.sh("eosctl wait 2 --state !connected --timeout 30")?;
    let mut b = cluster.boot_with(2, tag, PEER_MEM_MIB, &[])?;
    up(&mut b, 2, &[1], SECRET)?;
    cluster::wait_links(a, &[2])?;
    cluster::wait_links(&mut b, &[1])?;
    Ok(b)
}

pub(super) fn reconnect(cluster: &Cluster, a: &mut Vm, b: Vm) -> Result<(Vm, String)> {
    let t = b.kill();
    if !t.is_empty() {
        bail!("node2 printed kernel trouble: {t:?}");
    }
    let start = Instant::now();
    // Node 2 comes back bigger: later tests need a node with room for another's pages.
    let mut b = cluster.boot_with(2, "reboot", PEER_MEM_MIB, &[])?;
    up(&mut b, 2, &[1], SECRET)?;
    cluster::wait_links(a, &[2])?;
    cluster::wait_links(&mut b, &[1])?;
    let secs = start.elapsed().as_secs_f64();
    let pa = a.sh("cat /sys/kernel/elastic/peers")?;
    let ups = peer_field(&pa, 2, "ups").unwrap_or(0);
    let losses = peer_field(&pa, 2, "losses").unwrap_or(0);
    if ups < 2 || losses < 1 {
        bail!("node1 should count the lost and the new link:\n{pa}");
    }
    check_clean(&[a, &b])?;
    Ok((
        b,
        format!("reconnected {secs:.1} s after reboot started (ups={ups}, losses={losses})"),
    ))
}

/// Kills node2 while it holds pages of a process of node1.
pub(super) fn elastic_peer_death(a: &mut Vm, b: Vm) -> Result<String> {
    a.sh("eosctl run --elastic --budget 4 -- stress 16 1 100000000 > /tmp/stress.out 2>&1 & echo $! > /tmp/stress.pid")?;
    let remote = cluster::poll(
        "stress's pages on node2",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            // What node1's processes have on node2: stress's pages (nothing else runs stretched).
            let remote = Procs::read(a)?.remote_pages();
            Ok((remote > 100).then_some(remote))
        },
    )
    .context("the process never had pages on node2")?;
    // And one that runs on node2 and catches SIGBUS: it dies of SIGBUS, its handler never
    // runs (at home it would run on the registers the process left with).
    a.sh("spin 2 bushandler > /tmp/spinbus.out 2>&1 & echo $! > /tmp/spinbus.pid")?;
    cluster::poll(
        "spin away on node2",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let away = Procs::read(a)?.home("spin").is_some_and(|p| p.away());
            Ok(away.then_some(()))
        },
    )
    .context("spin never ran on node2")?;
    let t = b.kill();
    if !t.is_empty() {
        bail!("node2 printed kernel trouble before it died: {t:?}");
    }
    // Both waits in one command: once ash has reported a job done, `wait` on it says 127.
    let (_, out) = a.run(
        "wait $(cat /tmp/stress.pid); echo status=$?; wait $(cat /tmp/spinbus.pid); \
         echo spin_status=$?; cat /tmp/spinbus.out",
        Duration::from_secs(60),
    )?;
    if !out.lines().any(|l| l.trim() == "status=135") {
        bail!("the process should die of SIGBUS (status 135):\n{out}");
    }
    if !out.contains("spin_status=135") || out.contains("caught SIGBUS") {
        bail!("a process running on the lost node should die of SIGBUS, handler or not:\n{out}");
    }
    if !a.console().contains("lost: killing pid") {
        bail!("node1 did not log why the process was killed");
    }
    a.sh("eosctl stats >/dev/null")?;
    check_clean(&[a])?;
    Ok(format!(
        "node2 died holding {remote} pages: the process got SIGBUS; one running there with a \
         SIGBUS handler died of SIGBUS without running it; node1 runs on"
    ))
}

/// What a process's pages hold, in every page, for the capture below.
const WIRE_MARKER: &str = "EOS-WIRE-MARKER-c0ffee-4242";

/// The link is sealed: a capture of node2's network (QEMU's filter-dump) while node1 pushes
/// pages that each hold a marker string there and pulls them back shows that the pages went
/// over the wire (the capture is at least their size), never the marker.
pub(super) fn wire_sealed(cluster: &Cluster, a: &mut Vm, b: Vm) -> Result<(Vm, String)> {
    let t = b.kill();
    if !t.is_empty() {
        bail!("node2 printed kernel trouble: {t:?}");
    }
    a.sh("eosctl wait 2 --state !connected --timeout 30")?;
    let pcap = crate::util::out_dir().join("logs/wire-node2.pcap");
    let _ = std::fs::remove_file(&pcap);
    let dump = format!("filter-dump,id=cap0,netdev=n0,file={}", pcap.display());
    let mut b = cluster.boot_with(2, "wire", PEER_MEM_MIB, &["-object", &dump])?;
    up(&mut b, 2, &[1], SECRET)?;
    cluster::wait_links(a, &[2])?;
    a.sh(&format!(
        "eosctl run --elastic --budget 2 -- hold 8 120 {WIRE_MARKER} > /tmp/wire.out 2>&1 & \
         echo $! > /tmp/wire.pid"
    ))?;
    let remote = hold_pages_on_node2(a, 1200)?;
    a.sh("kill -USR1 $(cat /tmp/wire.pid)")?;
    let (_, out) = a.run(
        "wait $(cat /tmp/wire.pid); echo status=$?; cat /tmp/wire.out",
        Duration::from_secs(180),
    )?;
    if !out.lines().any(|l| l.trim() == "status=0") || !out.contains("hold: 0 bad pages") {
        bail!("hold did not read back its pages:\n{out}");
    }
    let cap = std::fs::read(&pcap)?;
    let pages = remote as usize * 4096;
    if cap.len() < pages {
        bail!(
            "the capture holds {} bytes, less than the {pages} of pages that went over it",
            cap.len()
        );
    }
    let m = WIRE_MARKER.as_bytes();
    let seen = cap.windows(m.len()).filter(|w| *w == m).count();
    if seen > 0 {
        bail!(
            "the marker is on the wire in clear, {seen} times ({})",
            pcap.display()
        );
    }
    check_clean(&[a, &b])?;
    // Which implementation the crypto layer picked for the links.
    let drv = a.sh("grep -A1 '^name *: gcm(aes)$' /proc/crypto | grep -m1 driver")?;
    Ok((
        b,
        format!(
            "{remote} pages holding a marker pushed to node2 and pulled back: {} bytes captured \
             on node2's network, the marker 0 times ({})",
            cap.len(),
            drv.lines()
                .find(|l| l.contains("driver"))
                .unwrap_or("driver unknown")
                .trim()
        ),
    ))
}

/// A connection replaced by a newer one from the same node (issue 25 item 8): a peer holding
/// node 1's key (here eos-badpeer, claiming node 1 with the cluster secret) authenticates to
/// node2 while node1's link is up and holds its connection for 3 s. node2 closes node1's
/// connection, node1 counts it as lost (its process with pages there ends) and dials again
/// within a second, replacing the badpeer's, which then ends without being current.
/// node2 must treat each replaced connection as the loss it is: before, it ran no
/// `link_down` for them, so the shell of node1's dead process stayed on node2 for good.
pub(super) fn replaced(a: &mut Vm, b: &mut Vm) -> Result<String> {
    a.sh(
        "eosctl run --elastic --budget 4 -- hold 16 300 > /tmp/repl.out 2>&1 & \
         echo $! > /tmp/repl.pid",
    )?;
    let remote = hold_pages_on_node2(a, 1000)?;
    if Procs::read(b)?.shells().count() == 0 {
        bail!("node2 holds no shell for node1's process");
    }
    let mark_b = b.console().len();
    let (rc, out) = a.run(
        &format!(
            "eos-badpeer {}:{} --as 1 --responder 2 --secret {SECRET} --auth-only --hold 3",
            crate::vm::ip(2),
            crate::vm::PORT
        ),
        Duration::from_secs(60),
    )?;
    if rc != 0 {
        bail!("the second connection as node 1 was not accepted (exit {rc}):\n{out}");
    }
    // node1 sees its link closed, ends its process, and dials again.
    cluster::poll(
        "node1's process ended",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let alive = a.sh("kill -0 $(cat /tmp/repl.pid) 2>/dev/null && echo alive; true")?;
            Ok((!alive.contains("alive")).then_some(()))
        },
    )?;
    let status = a.sh("dmesg | grep '(hold)' | tail -1")?.trim().to_string();
    a.sh("eosctl wait 2 --timeout 60")?;
    cluster::wait_links(b, &[1])?;
    let mut left = Vec::new();
    cluster::poll(
        "node2's shells of node1 gone",
        Duration::from_secs(20),
        Duration::from_millis(500),
        || {
            left = Procs::read(b)?
                .shells()
                .map(|s| s.pid())
                .collect::<Vec<_>>();
            Ok(left.is_empty().then_some(()))
        },
    )
    .with_context(|| {
        format!(
            "node2 still holds shell(s) {left:?} of node1's process, which ended when its link \
             was replaced ({})",
            status.trim()
        )
    })?;
    let replaced = cluster::since(&b.console(), mark_b)
        .lines()
        .filter(|l| l.contains("replaced by a new connection"))
        .count();
    if replaced == 0 {
        bail!("node2 logged no replaced connection");
    }
    // The new link works: a stretched run on it.
    let want = cluster::host_result("lsearch", &["16"])?;
    let (rc, out) = a.run(
        "eosctl run --elastic --budget 4 -- lsearch 16",
        Duration::from_secs(120),
    )?;
    if rc != 0 || !out.lines().any(|l| l == want) {
        bail!("lsearch on the new link: exit {rc}, host says `{want}`:\n{out}");
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "node2 logged {replaced} replaced connection(s) and dropped the shell of node1's \
         process ({remote} pages there; node1: `{}`); a stretched lsearch ran right on the new \
         link",
        status.trim()
    ))
}

/// Waits (up to 60 s) until the process `hold` on node1 has at least `min` pages on node2;
/// returns how many it has.
fn hold_pages_on_node2(a: &mut Vm, min: i64) -> Result<i64> {
    let mut remote = 0;
    cluster::poll(
        "hold's pages on node2",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            remote = Procs::read(a)?.home("hold").map_or(0, |p| p.remote_pages());
            Ok((remote >= min).then_some(()))
        },
    )
    .with_context(|| format!("only {remote} pages of hold went to node2"))?;
    Ok(remote)
}
