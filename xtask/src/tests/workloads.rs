//! The workloads without ElasticOS: the same result in a VM as on the host, and too big for a
//! VM at 1.5x its memory (the baseline the stretch steps improve on).

use super::MEM_MIB;
use crate::cluster::{check_clean, exit_stats, host_result, last_line};
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
    // An OOM kill starves the node for a moment: its link may have timed out meanwhile
    // (seen: a heartbeat timeout during bsort's OOM). The next steps need it: wait until
    // it is back.
    a.sh("eosctl wait 2 --timeout 120")?;
    b.sh("eosctl wait 1 --timeout 120")?;
    check_clean(&[a, b])?;
    Ok(format!(
        "{} workloads match the host; at {fp} MiB in a {MEM_MIB} MiB VM without ElasticOS: {}",
        image::WORKLOADS.len(),
        fates.join(", ")
    ))
}

/// A program that is not in the image, as a user brings one: compiled on the host into the
/// shared folder (`cargo xtask vm --share`), run from /mnt/host marked elastic with a budget
/// it outgrows; its output must be the host's.
pub(super) fn user_program(a: &mut Vm, b: &mut Vm) -> Result<String> {
    a.sh("eosctl wait 2 --timeout 120")?;
    let dir = crate::util::out_dir().join("share");
    std::fs::create_dir_all(&dir)?;
    let src = dir.join("usersum.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <stdlib.h>\n#include <stdint.h>\n\
         int main(int c, char **v) {\n\
         \tsize_t n = (size_t)atoi(c > 1 ? v[1] : \"24\") << 17; uint64_t *a = malloc(n * 8), s = 1, h = 0;\n\
         \tif (!a) return 1;\n\
         \tfor (size_t i = 0; i < n; i++) a[i] = s = s * 6364136223846793005ULL + 1442695040888963407ULL;\n\
         \tfor (size_t k = 0; k < 2; k++) for (size_t i = 0; i < n; i++) h = (h ^ a[k ? n - 1 - i : i]) * 1099511628211ULL;\n\
         \tprintf(\"usersum %zu words %016llx\\n\", n, (unsigned long long)h);\n\
         \treturn 0;\n}\n",
    )?;
    let bin = dir.join("usersum");
    crate::util::run(
        std::process::Command::new("gcc")
            .args(["-O2", "-static", "-o"])
            .arg(&bin)
            .arg(&src),
    )?;
    let host = std::process::Command::new(&bin).arg("32").output()?;
    let want = String::from_utf8_lossy(&host.stdout).trim().to_string();
    let mark = a.console().len();
    let (rc, out) = a.run(
        "eosctl run --elastic --budget 4 -- /mnt/host/usersum 32",
        Duration::from_secs(240),
    )?;
    if rc != 0 || !out.lines().any(|l| l.trim() == want) {
        bail!("usersum from /mnt/host: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let all = a.console();
    let console = crate::cluster::since(&all, mark);
    let exit = last_line(console, "(usersum) exited:")
        .map(|l| l.split("exited: ").nth(1).unwrap_or("").to_string())
        .ok_or_else(|| anyhow::anyhow!("usersum never stretched (no exit line)"))?;
    // Its pages really went to node2 and came back.
    let pushed = exit_stats(console, "usersum").map_or(0, |m| m.pushed);
    if pushed == 0 {
        bail!("usersum stretched but no page left node1: {exit}");
    }
    let seen = b.sh("ls /mnt/host/usersum")?;
    if !seen.contains("usersum") {
        bail!("node2 does not see the shared folder");
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "usersum (32 MiB, static, built on the host into the shared folder) with 4 MiB local: `{want}` as on the host; {exit}"
    ))
}
