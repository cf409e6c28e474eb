//! The two commands that hand a cluster to a person rather than to the test suite:
//! `cargo xtask run` (the main job, with its result checked) and `cargo xtask vm`
//! (an interactive shell on node1).

use crate::cluster::{self, boot_mesh, boot_node, host_result, last_line, wait_links};
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The main job: two nodes (node 1 with `mem` MiB, node 2 with room), a workload of
/// `footprint` MiB marked elastic on node 1 (it does not fit there), its result checked
/// against a native run on the host, and what ElasticOS reports.
pub fn main_job(mem: u32, workload: &str, footprint: u32) -> Result<()> {
    let (_, cluster) = cluster::build(mem)?;
    let want = host_result(workload, &[&footprint.to_string()])?;
    let peer_mem = footprint * 2 + 256;
    println!(
        "booting node1 ({mem} MiB) and node2 ({peer_mem} MiB) under {:?}",
        cluster.accel()
    );
    let mut nodes = boot_mesh(&cluster, &[(1, "run", mem), (2, "run", peer_mem)])?;
    wait_links(&mut nodes[0], &[2])?;
    wait_links(&mut nodes[1], &[1])?;
    println!("node1: {}", nodes[0].sh("free -m | sed -n 2p")?.trim());
    println!("running `eosctl run --elastic -- {workload} {footprint}` on node1 ...");
    let start = Instant::now();
    let (rc, out) = nodes[0].run(
        &format!("eosctl run --elastic -- {workload} {footprint}"),
        Duration::from_secs(3 * 3600),
    )?;
    let secs = start.elapsed().as_secs_f64();
    print!("{out}");
    let ok = rc == 0 && out.lines().any(|l| l == want);
    println!(
        "{} in {secs:.1} s (host reference: {want})",
        if ok {
            "RESULT MATCHES"
        } else {
            "RESULT DIFFERS"
        }
    );
    std::thread::sleep(Duration::from_millis(500));
    if let Some(l) = last_line(&nodes[0].console(), ") exited:") {
        println!("node1 kernel: {}", l.trim());
    }
    for n in nodes.iter_mut() {
        println!("== {} ==", n.name);
        print!(
            "{}",
            n.sh("echo '-- peers'; eosctl peers; echo '-- stats'; eosctl stats; \
                  echo '-- jumps (last 5)'; eosctl jumplog | sed -n 1p; eosctl jumplog | sed 1d | tail -5")?
        );
    }
    let trouble = cluster::poweroff_all(nodes);
    if !trouble.is_empty() {
        bail!("kernel trouble in the logs: {trouble:?}");
    }
    if !ok {
        bail!("{workload} exited {rc} or gave a different result");
    }
    Ok(())
}

/// `cargo xtask run --program PATH [ARGS...]`: the main job with a program of the user's:
/// its folder is shared into both nodes, it runs marked elastic on node 1 (which has `mem`
/// MiB; it stretches when it outgrows that or `budget`), and its output must be what the
/// same program prints on the host.
pub fn user_program(mem: u32, budget: Option<u32>, program: &Path, args: &[String]) -> Result<()> {
    let program = std::fs::canonicalize(program).with_context(|| program.display().to_string())?;
    let dir = program
        .parent()
        .context("the program's folder")?
        .to_path_buf();
    let name = program
        .file_name()
        .context("the program's name")?
        .to_string_lossy()
        .to_string();
    let host = std::process::Command::new(&program)
        .args(args)
        .output()
        .with_context(|| format!("running {} on the host", program.display()))?;
    let want = String::from_utf8_lossy(&host.stdout).to_string();
    let (_, mut cluster) = cluster::build(mem)?;
    cluster.set_share(dir);
    let peer_mem = 1024;
    let mut nodes = boot_mesh(&cluster, &[(1, "run", mem), (2, "run", peer_mem)])?;
    wait_links(&mut nodes[0], &[2])?;
    wait_links(&mut nodes[1], &[1])?;
    let quoted: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let budget = budget.map_or(String::new(), |b| format!("--budget {b} "));
    let cmd = format!(
        "eosctl run --elastic {budget}-- /mnt/host/{name} {} > /tmp/user.out; echo EXIT=$?",
        quoted.join(" ")
    );
    println!("running `{cmd}` on node1 ...");
    let start = Instant::now();
    let (_, out) = nodes[0].run(&cmd, Duration::from_secs(3 * 3600))?;
    let secs = start.elapsed().as_secs_f64();
    let got = nodes[0].sh("cat /tmp/user.out")?;
    let rc: i32 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("EXIT="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    std::thread::sleep(Duration::from_millis(500));
    let exit = last_line(
        &nodes[0].console(),
        &format!("({}) exited:", &name[..name.len().min(15)]),
    )
    .unwrap_or("(it never stretched)")
    .trim()
    .to_string();
    let same = got == want && rc == host.status.code().unwrap_or(-1);
    println!(
        "{} in {secs:.1} s, exit {rc}; node1 kernel: {exit}",
        if same {
            "OUTPUT MATCHES THE HOST'S"
        } else {
            "OUTPUT DIFFERS FROM THE HOST'S"
        }
    );
    let trouble = cluster::poweroff_all(nodes);
    if !trouble.is_empty() {
        bail!("kernel trouble in the logs: {trouble:?}");
    }
    if !same {
        bail!(
            "{name}: node1 printed {} bytes (exit {rc}), the host {} bytes",
            got.len(),
            want.len()
        );
    }
    Ok(())
}

/// `cargo xtask vm`: boots a configured cluster and relays your commands to node1. Node 1
/// gets `mem` MiB, the others `peer_mem`.
/// `share`: a host folder every node mounts at /mnt/host.
pub fn interactive(nodes: usize, mem: u32, peer_mem: u32, share: Option<PathBuf>) -> Result<()> {
    let (_, mut cluster) = cluster::build(mem)?;
    if let Some(dir) = share {
        cluster.set_share(std::fs::canonicalize(&dir).with_context(|| dir.display().to_string())?);
        println!("every node mounts {} at /mnt/host", dir.display());
    }
    let mut vms = Vec::new();
    // Each node is brought up as soon as it has booted (the lower id dials and retries).
    for id in 1..=nodes {
        let m = if id == 1 { mem } else { peer_mem };
        let peers = cluster::others(id, 1..=nodes);
        vms.push(boot_node(&cluster, id, "vm", m, &peers)?);
    }
    // Each command's timeout (`ELASTICOS_CMD_TIMEOUT` seconds, default an hour): what a
    // timed-out test step reports can be seen by hand this way.
    let limit = Duration::from_secs(
        std::env::var("ELASTICOS_CMD_TIMEOUT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3600),
    );
    println!("{nodes} nodes up (logs in out/logs). Commands go to node1; Ctrl-D powers off.");
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.context("stdin")?;
        let (rc, out) = vms[0].run(&line, limit)?;
        print!("{out}");
        if rc != 0 {
            println!("(exit {rc})");
        }
    }
    cluster::poweroff_all(vms);
    Ok(())
}
