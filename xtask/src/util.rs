//! Paths and process helpers shared by the xtask commands.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
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
