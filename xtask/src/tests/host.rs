//! Host steps: formatting, lints and unit tests of the whole workspace, and the C programs
//! (libelastic and the workloads) compiling warning-free. No kernel, no VM.

use crate::cluster::host_result;
use crate::image;
use crate::util::{project_root, run};
use anyhow::Result;
use std::process::Command;

fn cargo(args: &[&str]) -> Result<String> {
    run(Command::new(env!("CARGO"))
        .args(args)
        .current_dir(project_root()))?;
    Ok(String::new())
}

/// `cargo fmt --check` over the workspace, and rustfmt over the kernel crate (its root
/// reaches every file of eos-subsys/, which is not a cargo package).
pub fn fmt() -> Result<String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    run(Command::new("rustfmt")
        .args(["--edition", "2021", "--check"])
        .arg(project_root().join("eos-subsys/elastic.rs")))?;
    Ok(String::new())
}

/// Clippy over the workspace, every target, warnings denied.
pub fn clippy() -> Result<String> {
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ])
}

/// The workspace's unit tests.
pub fn unit_tests() -> Result<String> {
    cargo(&["test", "--workspace", "--quiet"])
}

/// libelastic and every workload compile with -Werror (and give a result line on the host).
pub fn c_programs() -> Result<String> {
    let out = project_root().join("target/libelastic.o");
    run(Command::new("gcc")
        .args(["-c", "-O2", "-Wall", "-Wextra", "-Werror"])
        .args(image::c_abi_flags()?)
        .arg("-o")
        .arg(&out)
        .arg(project_root().join("tools/libelastic/elastic.c")))?;
    for w in image::WORKLOADS {
        host_result(w, &["4"])?;
    }
    Ok(String::new())
}
