//! The guest image: a busybox initramfs with our /init, eosctl, the test tools and the
//! workloads (static), plus the NBD server and client for the network-swap baseline.

use crate::util::{out_dir, project_root, run, sh};
use anyhow::{bail, Result};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// User-space programs that go into the guest, built as static binaries.
const TOOLS: &[&str] = &["eosctl", "eos-badpeer"];

/// Builds the guest tools with static glibc (no musl target needed).
pub(crate) fn build_tools() -> Result<PathBuf> {
    let target_dir = project_root().join("target/guest");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--release", "--target", "x86_64-unknown-linux-gnu"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(project_root());
    for t in TOOLS {
        cmd.args(["-p", t]);
    }
    run(&mut cmd)?;
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release"))
}

/// The workloads (C, one file each in workloads/), compiled static into the image.
pub const WORKLOADS: &[&str] = &["dfs", "lsearch", "hsort", "bsort", "dijkstra"];

/// Test programs (also C, in workloads/) that are not benchmark workloads.
const TEST_PROGRAMS: &[&str] = &[
    "stress",
    "pingpong",
    "homesem",
    "spin",
    "hold",
    "tour",
    "layout",
    "relro",
    "maps",
    "mlock",
    "away",
    "entries",
    "threads",
    "sysfuzz",
    "cpumax",
    "stale",
    "cleanscan",
    "threadrace",
    "intruder",
    "forklive",
    "forkcopy",
    "execrel",
    "lostread",
    "hugetlb",
    "epollwait",
    "fileid",
    "overcommit",
];

/// Programs also built dynamically linked, as `NAME-dyn` (most programs are: their shell has
/// the executable and ld.so mapped, but not the shared libraries).
pub const DYNAMIC_PROGRAMS: &[&str] = &["lsearch", "layout"];

/// Dynamically linked programs copied into the image with their libraries (the network-swap
/// baseline needs a real NBD server and client).
const HOST_PROGRAMS: &[&str] = &["/usr/bin/nbd-server", "/usr/sbin/nbd-client"];

/// Compiler flags that give a C program libelastic and the ElasticOS ABI: the uapi header from
/// eos-subsys/include, and the syscall numbers. Those come from the installed
/// `<asm/unistd_64.h>` on an ElasticOS machine; a build host with Debian's headers gets them
/// from their source, the syscall table lines of our patch series (`eos_core::abi`).
pub fn c_abi_flags() -> Result<Vec<std::ffi::OsString>> {
    let root = project_root();
    let mut f: Vec<std::ffi::OsString> = vec![
        "-I".into(),
        root.join("tools/libelastic").into(),
        "-I".into(),
        root.join("eos-subsys/include/uapi").into(),
    ];
    let installed = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
        .unwrap_or_default();
    if !installed.contains("__NR_elastic_stretch") {
        let patch = std::fs::read_to_string(
            root.join("linux/patches/0003-mm-elasticos-page-ownership-markers-and-hooks.patch"),
        )?;
        for (name, nr) in eos_core::abi::added_syscalls(&patch) {
            f.push(format!("-D__NR_{name}={nr}").into());
        }
    }
    Ok(f)
}

/// Compiles a workload with the host's gcc; `static` for the guest.
pub fn compile_workload(name: &str, out: &std::path::Path, static_: bool) -> Result<()> {
    let mut cmd = Command::new("gcc");
    cmd.args(["-O2", "-Wall", "-Wextra", "-Werror"]);
    if static_ {
        // Stripped: the guest's initramfs is unpacked into the RAM of VMs of 128 MiB (bench),
        // and at 43 MiB unpacked its last files no longer fit there (the first run of `dfs`
        // was refused with ETXTBSY: its unpacking had stopped half-written).
        cmd.args(["-static", "-s"]);
    }
    // Every program may call ElasticOS through libelastic.
    let lib = project_root().join("tools/libelastic");
    cmd.args(c_abi_flags()?)
        .arg("-o")
        .arg(out)
        .arg(project_root().join("workloads").join(format!("{name}.c")))
        .arg(lib.join("elastic.c"));
    run(&mut cmd)
}

/// Copies `prog` and the shared libraries `ldd` lists into `root`.
fn copy_with_libs(prog: &str, root: &std::path::Path) -> Result<()> {
    copy_libs(prog, root, true)
}

/// Copies the shared libraries `ldd` lists for `prog` (and `prog` itself if `with_prog`) into
/// `root`, at their host paths.
fn copy_libs(prog: &str, root: &std::path::Path, with_prog: bool) -> Result<()> {
    let out = Command::new("ldd").arg(prog).output()?;
    if !out.status.success() {
        bail!("{prog} is missing (cargo xtask setup installs it)");
    }
    let mut files = if with_prog {
        vec![prog.to_string()]
    } else {
        Vec::new()
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push(p.to_string());
        }
    }
    for f in files {
        let dst = root.join(f.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap())?;
        fs::copy(&f, &dst)?;
    }
    Ok(())
}

/// Builds out/initramfs.cpio.gz and returns its path.
pub fn build() -> Result<PathBuf> {
    let bins = build_tools()?;
    let root = out_dir().join("initramfs");
    let _ = fs::remove_dir_all(&root);
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "root",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(busybox) = busybox else {
        bail!("busybox-static is not installed (cargo xtask setup)");
    };
    fs::copy(busybox, root.join("bin/busybox"))?;
    fs::copy(project_root().join("qemu/init"), root.join("init"))?;
    // Two unprivileged users for the permission tests.
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/tmp:/bin/sh\nbob:x:2000:2000::/tmp:/bin/sh\n",
    )?;
    fs::write(
        root.join("etc/group"),
        "root:x:0:\nalice:x:1000:\nbob:x:2000:\n",
    )?;
    for t in TOOLS {
        fs::copy(bins.join(t), root.join("bin").join(t))?;
    }
    for w in WORKLOADS.iter().chain(TEST_PROGRAMS) {
        compile_workload(w, &root.join("bin").join(w), true)?;
    }
    for p in HOST_PROGRAMS {
        copy_with_libs(p, &root)?;
    }
    for w in DYNAMIC_PROGRAMS {
        let exe = root.join("bin").join(format!("{w}-dyn"));
        compile_workload(w, &exe, false)?;
        copy_libs(&exe.to_string_lossy(), &root, false)?;
    }
    let image = out_dir().join("initramfs.cpio.gz");
    sh(&format!(
        "cd '{}' && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet | gzip -1 > '{}'",
        root.display(),
        image.display()
    ))?;
    Ok(image)
}
