//! The peer's shell following the home's address space: layout changes, the executable's
//! written file pages and a dynamically linked program's libraries.

use crate::cluster::{check_clean, host_result, jumplog, stat};
use crate::vm::Vm;
use anyhow::{bail, Result};
use std::time::Duration;

/// munmap, madvise, brk, mremap and mprotect over pages the peer holds, a file mapped after
/// the stretch and an invalid instruction, checked on the peer and at home: the same as the
/// host.
pub(super) fn layout_changes(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let want = host_result("layout", &["1", "2"])?;
    let mark = b.console().len();
    let (rc, out) = a.run("layout 1 2", Duration::from_secs(600))?;
    if rc != 0 || !out.lines().any(|l| l == want) || !out.contains("stretched=1") {
        bail!("layout: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    // Every page the shell asked for came (a huge page at home once made the fetch fail, and
    // the read went home instead: right, but not where it should run).
    let peer_log = b.console();
    if let Some(l) = peer_log
        .get(mark..)
        .unwrap_or("")
        .lines()
        .find(|l| l.contains("fetch of") && l.contains("failed"))
    {
        bail!("layout: node2 could not fetch a page: {l}");
    }
    let log = b.sh("eosctl jumplog")?;
    let faults = log.matches("reason=fault ").count();
    if faults < 5 {
        bail!(
            "layout: {faults} faults sent home from node2 (mprotect, file, sigill and the two \
             jit calls make 5):\n{log}"
        );
    }
    check_clean(&[a, b])?;
    let checks: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("layout: "))
        .filter(|l| l.ends_with(" ok"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    Ok(format!(
        "{} right on the peer and at home ({}); {faults} faults on node2 retried at home; {}",
        checks.len(),
        checks.join(", "),
        out.lines()
            .find(|l| l.contains("(layout) exited:"))
            .and_then(|l| l.split("exited: ").nth(1))
            .unwrap_or("")
    ))
}

/// The executable's written file-backed pages (.data, the ifunc slots of a static glibc) read
/// back on the peer what the home wrote, and the other way round: the shell's page cache
/// holds the file's pristine bytes, which must never stand in for them.
pub(super) fn file_pages(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let want = host_result("relro", &["1", "2"])?;
    let (j0, _, _) = jumplog(a)?;
    let (rc, out) = a.run("relro 1 2", Duration::from_secs(120))?;
    if rc != 0 || !out.lines().any(|l| l == want) || !out.contains("stretched=1 jumped=1") {
        bail!("relro: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    let (j1, _, _) = jumplog(a)?;
    if j1 == j0 {
        bail!("relro never ran on node2 (no jump out in node1's jump log)");
    }
    check_clean(&[a, b])?;
    Ok("256 .data pages and the ifunc slots right on the peer and back at home".into())
}

/// A read-only private file page the shell built from its own page cache (the home keeps no
/// marker for it) is never read there after the home changed its copy: mprotect and a write,
/// mprotect back, a write through /proc/PID/mem (FOLL_FORCE: the mapping stays read-only),
/// each with the page untouched or read at home first; and a write the peer makes after the
/// home made the page writable reaches home (`stale`).
pub(super) fn stale_file_page(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let want = host_result("stale", &["1", "2"])?;
    let (j0, _, _) = jumplog(a)?;
    let faults0 = b.sh("eosctl jumplog")?.matches("reason=fault ").count();
    let (rc, out) = a.run("stale 1 2", Duration::from_secs(120))?;
    if rc != 0 || !out.lines().any(|l| l == want) || !out.contains("stretched=1 jumped=1") {
        bail!("stale: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    let (j1, _, _) = jumplog(a)?;
    if j1 < j0 + 2 {
        bail!(
            "stale did not run on node2 twice ({} jumps out in node1's jump log)",
            j1 - j0
        );
    }
    // The pages were read on the peer, from the shell's own mapping of the executable: a
    // fault sent home would have read them there, and proven nothing.
    let log = b.sh("eosctl jumplog")?;
    let faults = log.matches("reason=fault ").count();
    if faults != faults0 {
        bail!(
            "stale: {} faults on node2 went home (the shell lacks the mapping?):\n{log}",
            faults - faults0
        );
    }
    // Another process writes the page through /proc/PID/mem while the program runs on the
    // peer, after the shell built it there: the program must see the new byte there.
    let (_, away) = a.run(
        "stale 1 2 away > /tmp/stale-away 2>&1 & P=$!; i=0; \
         while ! grep -q '^away ' /tmp/stale-away && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done; \
         sleep 2; set -- $(grep '^away ' /tmp/stale-away); \
         printf \"\\\\$3\" | dd of=/proc/$P/mem bs=1 seek=$2 conv=notrunc 2>/dev/null; \
         wait $P; echo \"away rc=$?\"; cat /tmp/stale-away",
        Duration::from_secs(120),
    )?;
    if !away.contains("away rc=0")
        || !away.contains("RESULT stale away")
        || !away.contains("away: first=file seen=1 jumped=1")
    {
        bail!(
            "stale away: the byte another process wrote at home was not read on the peer \
             (first=file: the shell built the page first; seen=1: the new byte was read \
             there):\n{away}"
        );
    }
    check_clean(&[a, b])?;
    let cases: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("stale: "))
        .filter_map(|l| l.strip_suffix(" ok"))
        .collect();
    Ok(format!(
        "new bytes read on the peer: {}; and one another process wrote through /proc/PID/mem \
         while the program ran there",
        cases.join(", ")
    ))
}

/// A dynamically linked program (shared libc): its shell is started with the executable and
/// ld.so only, and maps the libraries the home has mapped (same files on both nodes) before
/// it runs the process. Pages and results are right.
pub(super) fn dynamic_program(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let (fp, budget) = (32u32, 8u32);
    let want = host_result("lsearch", &[&fp.to_string()])?;
    let (j0, _, _) = jumplog(a)?;
    let (rc, out) = a.run(
        &format!("eosctl run --elastic --budget {budget} -- lsearch-dyn {fp}"),
        Duration::from_secs(1200),
    )?;
    if rc != 0 || !out.lines().any(|l| l == want) {
        bail!("lsearch-dyn: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    let (j1, _, _) = jumplog(a)?;
    let want = host_result("layout", &["1", "2"])?;
    let (rc, out) = a.run("layout-dyn 1 2", Duration::from_secs(600))?;
    if rc != 0 || !out.lines().any(|l| l == want) || !out.contains("stretched=1") {
        bail!("layout-dyn: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    let log = b.sh("eosctl jumplog")?;
    let stats = b.sh("eosctl stats")?;
    let (mapped, missing) = (
        stat(&stats, "shell_files_mapped"),
        stat(&stats, "shell_files_missing"),
    );
    if mapped == 0 {
        bail!("node2's shells mapped none of the home's libraries:\n{stats}");
    }
    check_clean(&[a, b])?;
    let checks = out
        .lines()
        .filter_map(|l| l.strip_prefix("layout: "))
        .filter(|l| l.ends_with(" ok"))
        .count();
    Ok(format!(
        "lsearch-dyn {fp} MiB with {budget} MiB local: right, {} jumps out; layout-dyn: all \
         {checks} checks right; node2's shells mapped {mapped} library mappings ({missing} left \
         out); {} faults retried at home",
        j1 - j0,
        log.matches("reason=fault ").count()
    ))
}
