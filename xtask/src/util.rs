//! Paths and process helpers shared by the xtask commands.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (parent of xtask/).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// Build cache outside the clone: `$ELASTICOS_CACHE`, else `~/.cache/elasticos`.
pub fn cache_dir() -> PathBuf {
    let dir = std::env::var_os("ELASTICOS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home =
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
            home.join(".cache/elasticos")
        });
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Per-run output (logs, images): out/ in the clone, git-ignored.
pub fn out_dir() -> PathBuf {
    let d = project_root().join("out");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Runs a command, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Runs a shell snippet.
pub fn sh(script: &str) -> Result<()> {
    run(Command::new("sh").arg("-c").arg(script))
}

/// Moves file `from` to `to`: a rename, or a copy and a removal when they are on different
/// filesystems (the kernel cache may live on another disk: `ELASTICOS_CACHE`).
pub fn move_file(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(18) => {
            std::fs::copy(from, to)?;
            std::fs::remove_file(from)
        }
        r => r,
    }
}

/// MiB free (for an unprivileged user) on the file system holding `path`, by `df`.
pub fn free_mib(path: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// One line on the free space where the tests write (the work tree's `out/`, the kernel
/// cache and the temporary directory): a step that fails for want of disk says so.
pub fn disk_note() -> String {
    let tmp = std::env::temp_dir();
    [("out", out_dir()), ("cache", cache_dir()), ("tmp", tmp)]
        .iter()
        .map(|(name, p)| match free_mib(p) {
            Some(m) => format!("{name} {m} MiB free"),
            None => format!("{name} ?"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
