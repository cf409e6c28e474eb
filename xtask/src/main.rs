//! `cargo xtask <command>`: every build, VM and test step of ElasticOS.
//!
//! ```text
//! setup            install what a fresh Debian 12 machine lacks (packages, rust-src, bindgen)
//! kernel           patch the pinned tree and build bzImage incrementally (cache: ~/.cache/elasticos)
//! image            build the guest initramfs (busybox, /init, eosctl, test tools)
//! run [--workload W] [--footprint MiB] [--mem MiB]
//!                  the main job: two VMs, W (default lsearch) at 1.5x node1's memory stretched
//!                  across them, result checked against the host, ElasticOS statistics
//! vm [--nodes N] [--mem MiB] [--peer-mem MiB]   boot N nodes, node1's console is yours
//! test [--host-only]           every test: host, KUnit, two-VM; ends with a summary line
//! deb              build the installable .deb kernel packages into out/
//! bench [--quick] [--reps N] [--mem MiB] [--local MiB] [--cap SECS] [--write-docs]
//!                                                workloads under every configuration
//! ```

mod bench;
mod image;
mod kernel;
mod tests;
mod util;
mod vm;

use anyhow::{bail, Result};
use std::time::Duration;

const SETUP_PACKAGES: &str = "linux-source-6.12 qemu-system-x86 busybox-static flex bison bc \
    libelf-dev libssl-dev clang llvm lld libclang-dev cpio debhelper rsync kmod dpkg-dev \
    nbd-server nbd-client gcc libc6-dev";

fn setup() -> Result<()> {
    util::sh(&format!(
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q {SETUP_PACKAGES}"
    ))?;
    // The Debian nbd-server package starts a daemon we do not want on the host.
    let _ = util::sh("systemctl disable --now nbd-server >/dev/null 2>&1");
    util::sh("rustup component add rust-src")?;
    if util::sh("bindgen --version >/dev/null 2>&1").is_err() {
        util::sh("cargo install --locked bindgen-cli@0.73.2")?;
    }
    Ok(())
}

fn flag(args: &[String], name: &str, default: u32) -> Result<u32> {
    match args.iter().position(|a| a == name) {
        Some(i) => match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(v) => Ok(v),
            None => bail!("{name} needs a number"),
        },
        None => Ok(default),
    }
}

/// The main job: two nodes (node 1 with `mem` MiB, node 2 with room), a workload of
/// `footprint` MiB marked elastic on node 1 (it does not fit there), its result checked
/// against a native run on the host, and what ElasticOS reports.
fn main_job(mem: u32, workload: &str, footprint: u32) -> Result<()> {
    let t = kernel::build()?;
    let img = image::build()?;
    let want = tests::host_result(workload, &[&footprint.to_string()])?;
    let cluster = vm::Cluster::new(t.bzimage(), img, util::out_dir().join("logs"), mem)?;
    let peer_mem = footprint * 2 + 256;
    println!(
        "booting node1 ({mem} MiB) and node2 ({peer_mem} MiB) under {:?}",
        cluster.accel()
    );
    let mut nodes = vec![
        cluster.boot_with(1, "run", mem, &[])?,
        cluster.boot_with(2, "run", peer_mem, &[])?,
    ];
    for (i, n) in nodes.iter_mut().enumerate() {
        tests::up(n, i + 1, &[2 - i], tests::SECRET)?;
    }
    nodes[0].sh("eosctl wait 2 --timeout 60")?;
    nodes[1].sh("eosctl wait 1 --timeout 60")?;
    println!("node1: {}", nodes[0].sh("free -m | sed -n 2p")?.trim());
    println!("running `eosctl run --elastic -- {workload} {footprint}` on node1 ...");
    let start = std::time::Instant::now();
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
    if let Some(l) = nodes[0]
        .console()
        .lines()
        .rev()
        .find(|l| l.contains(") exited:"))
    {
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
    let mut trouble = Vec::new();
    for n in nodes {
        trouble.extend(n.poweroff());
    }
    if !trouble.is_empty() {
        bail!("kernel trouble in the logs: {trouble:?}");
    }
    if !ok {
        bail!("{workload} exited {rc} or gave a different result");
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = &args[args.len().min(1)..];
    match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("kernel") => kernel::build().map(|_| ()),
        Some("image") => image::build().map(|p| println!("{}", p.display())),
        Some("run") => {
            let w = rest
                .iter()
                .position(|a| a == "--workload")
                .and_then(|i| rest.get(i + 1))
                .map_or("lsearch", String::as_str);
            main_job(
                flag(rest, "--mem", 256)?,
                w,
                flag(rest, "--footprint", 384)?,
            )
        }
        Some("vm") => tests::interactive(
            flag(rest, "--nodes", 2)? as usize,
            flag(rest, "--mem", 256)?,
            flag(rest, "--peer-mem", 512)?,
        ),
        Some("test") => tests::all(rest.iter().any(|a| a == "--host-only")),
        Some("deb") => kernel::deb(),
        Some("bench") => bench::bench(
            rest.iter().any(|a| a == "--quick"),
            flag(rest, "--reps", 3)?,
            flag(rest, "--mem", 128)?,
            match flag(rest, "--local", 0)? {
                0 => None,
                l => Some(l),
            },
            flag(rest, "--cap", 240)?,
            rest.iter().any(|a| a == "--write-docs"),
        ),
        _ => {
            eprintln!(
                "usage: cargo xtask setup|kernel|image|run|vm|test|deb|bench (see xtask/src/main.rs)"
            );
            std::process::exit(2);
        }
    }
}
