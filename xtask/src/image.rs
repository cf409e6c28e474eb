//! The guest image: a busybox initramfs with our /init, eosctl and the test tools, all static.

use crate::util::{out_dir, project_root, run, sh};
use anyhow::{bail, Result};
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// User-space programs that go into the guest, built as static binaries.
const TOOLS: &[&str] = &["eosctl", "eos-badpeer"];

/// Builds the guest tools with static glibc (no musl target needed).
fn build_tools() -> Result<PathBuf> {
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
    for t in TOOLS {
        fs::copy(bins.join(t), root.join("bin").join(t))?;
    }
    let image = out_dir().join("initramfs.cpio.gz");
    sh(&format!(
        "cd '{}' && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet | gzip -1 > '{}'",
        root.display(),
        image.display()
    ))?;
    Ok(image)
}
