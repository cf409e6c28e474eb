//! The workloads without ElasticOS: the same result in a VM as on the host, and too big for a
//! VM at 1.5x its memory (the baseline the stretch steps improve on).

use super::MEM_MIB;
use crate::cluster::{check_clean, host_result};
use crate::image;
use crate::vm::Vm;
use anyhow::{bail, Result};
use std::time::Duration;

/// The workloads give the same result line in a VM as natively on the host, and at 1.5x a
/// VM's memory they do not fit without ElasticOS (the OOM killer ends them).
pub(super) fn workloads(a: &mut Vm, b: &mut Vm) -> Result<String> {
    for w in image::WORKLOADS {
        let want = host_result(w, &["8"])?;
        let got = a.sh(&format!("{w} 8"))?;
        if !got.lines().any(|l| l == want) {
            bail!("{w}: host says `{want}`, VM says:\n{got}");
        }
    }
    let fp = MEM_MIB * 3 / 2;
    let mut fates = Vec::new();
    for w in image::WORKLOADS {
        // On node 1 (MEM_MIB; node 2 came back bigger), as a plain process: not marked elastic.
        let ooms = a.console().matches("Out of memory: Killed process").count();
        let (rc, out) = a.run(&format!("{w} {fp}"), Duration::from_secs(600))?;
        // Either the kernel refuses the mapping (overcommit check: exit 3) or the OOM killer
        // ends the process (SIGKILL: 137).
        let refused = rc == 3 && out.contains("cannot allocate");
        let killed =
            rc == 137 && a.console().matches("Out of memory: Killed process").count() > ooms;
        if !refused && !killed {
            bail!("{w} {fp} in a {MEM_MIB} MiB VM should not fit, got exit {rc}:\n{out}");
        }
        fates.push(format!(
            "{w} {}",
            if killed { "OOM-killed" } else { "refused" }
        ));
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "{} workloads match the host; at {fp} MiB in a {MEM_MIB} MiB VM without ElasticOS: {}",
        image::WORKLOADS.len(),
        fates.join(", ")
    ))
}
