//! Pages moving between home and peer (pull on fault, push under the budget): verified data
//! while they move, and mlock bringing them home.

use super::stretch::run_stretched;
use crate::cluster::{self, check_clean, field, host_result, Procs};
use crate::vm::{self, Vm};
use anyhow::{bail, Result};
use std::time::Duration;

pub(super) fn elastic_stress(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let (pulls, pushes) = run_stretched(a, "stress", &["24", "7", "30000"], 6.0)?;
    check_clean(&[a, b])?;
    Ok(format!(
        "24 MiB, 6 MiB local, 30000 verified ops: {pulls} pulls, {pushes} pushes, 0 errors"
    ))
}

/// Runs test program `prog` with `args` on `a` (it stretches itself): it must exit 0 with the
/// host's RESULT line, and its "`prog`: ..." line (returned) must contain each of `needs`.
fn run_like_host(a: &mut Vm, prog: &str, args: &[&str], needs: &[&str]) -> Result<String> {
    let want = host_result(prog, args)?;
    let (rc, out) = a.run(
        &format!("{prog} {}", args.join(" ")),
        Duration::from_secs(240),
    )?;
    let prefix = format!("{prog}: ");
    let info = out
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or("")
        .to_string();
    if rc != 0 || !out.lines().any(|l| l == want) || !needs.iter().all(|n| info.contains(n)) {
        bail!("{prog}: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    Ok(info)
}

/// mlock and mlockall over pages the peer holds bring them home with their data, and the
/// pusher leaves locked pages alone (before, the install refused a VM_LOCKED area: SIGBUS).
pub(super) fn mlock_remote(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let info = run_like_host(
        a,
        "mlock",
        &["32", "2", "1"],
        &[
            "stretched=1 locked=1 locked_all=1",
            "locked_missing_after_away=0",
        ],
    )?;
    let were: u64 = field(&info, "locked_were_remote").unwrap_or(0);
    if were == 0 {
        bail!("mlock: none of the locked pages was on the peer before the lock:\n{info}");
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "32 MiB, 8 MiB budget: mlock brought {were} remote pages home and kept them there, \
         also while the process read them from node2; mlockall brought the rest; every page \
         right"
    ))
}

/// With `budget_away` 1, a budget holds on the node the process runs on, not only at home
/// (issue 26: eos-jump's shell had none, so "8 MiB local" was not true away): `away` keeps 24 MiB with an 8 MiB
/// budget, jumps to node2 and rewrites every page there three times. The shell's anonymous
/// pages, sampled on node2 every 20 ms while it runs the process, must come within the budget
/// (the home pulls its cold pages back) and stay within it and two batches (a fetch may take
/// a batch past one batch of slack) from then on; pages must have come back, and every page
/// read back right on both nodes.
pub(super) fn budget_away(a: &mut Vm, b: &mut Vm) -> Result<String> {
    // The policy off on node2: the shell, its budget full, would otherwise go home early.
    a.sh("echo 1 > /sys/kernel/elastic/budget_away")?;
    b.sh("eosctl jumppolicy enabled=0")?;
    let r = away_bounded(a, b);
    // Also after a run that ran out of time; its own failure is the one reported.
    let restored = vm::unlimited(|| {
        a.sh("echo 0 > /sys/kernel/elastic/budget_away")?;
        b.sh("eosctl jumppolicy enabled=1")
    });
    let r = r?;
    restored?;
    Ok(r)
}

fn away_bounded(a: &mut Vm, b: &mut Vm) -> Result<String> {
    const BUDGET: u64 = 8 * 256;
    const LIMIT: u64 = BUDGET + 64;
    b.sh("rm -f /tmp/away.stop; (while [ ! -f /tmp/away.stop ]; do \
         grep '^shell ' /sys/kernel/elastic/procs; usleep 20000; done > /tmp/away.samples \
         2>/dev/null &)")?;
    // The home's view too, while the process runs away: its line reads the members with the
    // process's node list held (a deadlock before).
    a.sh("rm -f /tmp/home.stop; (while [ ! -f /tmp/home.stop ]; do \
         cat /sys/kernel/elastic/procs; usleep 100000; done > /tmp/home.samples \
         2>/dev/null &)")?;
    let r = run_like_host(a, "away", &["24", "2", "3"], &["stretched=1 jumped=1"]);
    let stopped = b.sh("touch /tmp/away.stop; sleep 0.2; cat /tmp/away.samples");
    let home_seen = a.sh("touch /tmp/home.stop; sleep 0.3; grep -c ' away=1 ' /tmp/home.samples");
    let info = r?;
    let home_seen: u64 = home_seen?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap_or(0);
    if home_seen == 0 {
        bail!("node1's procs never showed the process away (read while it ran on node2)");
    }
    let samples: Vec<u64> = stopped?
        .lines()
        .filter(|l| l.contains(" running=1 "))
        .filter_map(|l| field(l, "anon_pages"))
        .collect();
    let reclaimed: u64 = field(&info, "reclaimed").unwrap_or(0);
    let Some(from) = samples.iter().position(|&n| n <= BUDGET) else {
        bail!("the shell never came within the budget ({BUDGET} pages) while it ran the process: {samples:?}");
    };
    let held = &samples[from..];
    let peak = held.iter().copied().max().unwrap_or(0);
    if held.len() < 5 || reclaimed == 0 {
        bail!(
            "away ran too briefly on node2 to judge ({} samples within the budget, {reclaimed} pages pulled back): {info}",
            held.len()
        );
    }
    if peak > LIMIT {
        bail!("the shell held {peak} pages on node2 with a budget of {BUDGET} (at most {LIMIT} may be), in {} samples after it came within it: {samples:?}", held.len());
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "24 MiB, 8 MiB budget, 3 rounds on node2: the shell had {} pages when it began, then at most {peak} in {} samples; {reclaimed} pages pulled back; every page right; node1's procs read {home_seen} times while it was away",
        samples.first().copied().unwrap_or(0),
        held.len()
    ))
}

/// A stretched process that forks keeps running right while its child lives (issue 25 item 5):
/// the pages still at home become copy-on-write shared with the child, and the parent's shell
/// must get them when the parent rewrites every page away (before: the home's take answered
/// EBUSY for a shared page, and the shell asked again forever).
pub(super) fn fork_live(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let info = run_like_host(a, "forklive", &["12", "2"], &["stretched=1 jumped=1"])?;
    let remote: u64 = field(&info, "remote_before").unwrap_or(0);
    check_clean(&[a, b])?;
    Ok(format!(
        "12 MiB, 2 MiB budget, {remote} pages on node2 at the fork: with the child alive the \
         parent rewrote every page twice on node2 and once at home, every page right; the \
         child's own mapping right"
    ))
}

/// A stretched process forks while most of its pages are on node2 (issue 28 item 3): the child
/// checks every page (the parent's values at the fork), rewrites and checks them, while the
/// parent writes its own; neither sees the other's writes. Before: every page that was on
/// node2 was a poisoned marker in the child (SIGBUS on its first touch). Reports the fork's
/// time, which includes bringing the remote pages home.
pub(super) fn fork_copy(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let info = run_like_host(a, "forkcopy", &["12", "2"], &["stretched=1"])?;
    let remote: u64 = field(&info, "remote_before").unwrap_or(0);
    let ms: u64 = field(&info, "fork_ms").unwrap_or(0);
    let after: u64 = field(&info, "remote_after").unwrap_or(u64::MAX);
    check_clean(&[a, b])?;
    Ok(format!(
        "12 MiB, 2 MiB budget, {remote} pages on node2 at the fork: fork took {ms} ms (their \
         recall included; {after} remote just after); the child read the parent's values in \
         every page and then its own, the parent its own, before and after the child ended"
    ))
}

/// exec of a stretched process releases everything on the member: the new image runs
/// stretched nowhere and node2 keeps no shell of the old one (its pages went with its mm).
pub(super) fn exec_release(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let args = ["8", "2"];
    let want = host_result("execrel", &args)?;
    let (rc, out) = a.run(
        &format!("execrel {}", args.join(" ")),
        Duration::from_secs(240),
    )?;
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or("")
            .to_string()
    };
    let (before, after) = (line("execrel: stretched="), line("execrel: after_exec"));
    let remote: u64 = field(&before, "remote_before").unwrap_or(0);
    if rc != 0
        || !out.lines().any(|l| l == want)
        || !before.contains("stretched=1")
        || remote < 1024
        || !after.contains("remote=-1 ")
    {
        bail!(
            "execrel: exit {rc}, host says `{want}`; the old image must have had pages on node2 \
             and the new one be stretched nowhere (remote=-1); VM printed:\n{out}"
        );
    }
    let shells = cluster::poll(
        "node2 dropping the old image's shell",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            let none = Procs::read(b)?.shells().next().is_none();
            Ok(none.then_some(()))
        },
    );
    if shells.is_err() {
        bail!(
            "node2 kept a shell after its process exec'd:\n{}",
            b.sh("cat /sys/kernel/elastic/procs")?
        );
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "8 MiB, {remote} pages on node2 before the exec: the new image ran stretched nowhere, \
         its own pages right, and node2 dropped the old image's shell"
    ))
}

/// A stretched process stays single-threaded: pthread_create fails with EOPNOTSUPP (before,
/// the thread ran and the process died of SIGBUS, or read pages the pusher had moved), while
/// a CLONE_VM|CLONE_VFORK child reads every page right and popen and system work.
pub(super) fn threads_refused(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let (j0, _, _) = cluster::jumplog(a)?;
    let info = run_like_host(
        a,
        "threads",
        &["16", "2"],
        &[
            "stretched=1",
            "thread=refused errno=95 vfork_sum_ok=1 popen_ok=1 system_ok=1",
            "uffd_errno=95 uring_errno=95 pre_uffd=95 pre_uring=95 bad=0",
            "away_popen_ok=1 away_system_ok=1",
        ],
    )?;
    // popen and system after a jump out: the jump went (their system calls then ran home).
    let (j1, _, _) = cluster::jumplog(a)?;
    if j1 == j0 {
        bail!("threads: the jump before popen and system away never went");
    }
    let log = a
        .run(
            "dmesg | grep -c 'new thread of a stretched process refused'",
            Duration::from_secs(20),
        )?
        .1;
    if log.trim().parse::<u32>().unwrap_or(0) == 0 {
        bail!("threads: no kernel log line names the refused thread");
    }
    // Protection keys where the CPU has them (QEMU's TCG `-cpu max` does): refused likewise.
    let pku = info.contains("pku=1");
    if pku && !info.contains("pkey_errno=95 pre_pkey=95") {
        bail!("threads: a protection key was not refused in a stretched process:\n{info}");
    }
    let log = a
        .run(
            "dmesg | grep -c 'not stretched: .*(EOPNOTSUPP)'",
            Duration::from_secs(20),
        )?
        .1;
    if log.trim().parse::<u32>().unwrap_or(0) < 2 + u32::from(pku) {
        bail!("threads: no kernel log lines name the refused stretches (userfaultfd, io_uring, pkeys)");
    }
    let remote: u64 = field(&info, "remote_before").unwrap_or(0);
    check_clean(&[a, b])?;
    Ok(format!(
        "16 MiB, {remote} pages on the peer: pthread_create, a userfaultfd registration and \
         io_uring_setup refused with EOPNOTSUPP, and the stretch of a process that had either \
         refused and logged; {}; a vfork child summed every page right; popen and system work, \
         at home and after a jump to node2",
        if pku {
            "pkey_alloc and the stretch of a process with a keyed mapping refused likewise"
        } else {
            "no protection keys on this CPU (not tried)"
        }
    ))
}

/// The pid in `pidfile` once that process is stretched at home and has made more than
/// `pulls` pulls (60 s at most).
fn pulling_pid(a: &mut Vm, pidfile: &str, pulls: u64) -> Result<u32> {
    cluster::poll(
        &format!("the process of {pidfile} stretched, pulling"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let pid: u32 = a
                .sh(&format!("cat {pidfile} 2>/dev/null; true"))?
                .trim()
                .parse()
                .unwrap_or(0);
            let pulling = Procs::read(a)?
                .home_pid(pid)
                .is_some_and(|e| e.get::<u64>("pulls").unwrap_or(0) > pulls);
            Ok((pid > 0 && pulling).then_some(pid))
        },
    )
}

/// A signal that arrives while a fault waits for a pull ends the process with that signal (a
/// shell's status 128+N), never with SIGBUS: Ctrl-C on a stretched program once logged "pull
/// ... failed (EINTR); killing it with SIGBUS". The stress program runs with 2 MiB local and the
/// jump policy off on both nodes, so it spends its time at home waiting for pulls; SIGTERM and
/// SIGUSR1 (both fatal by default; a background job of a non-interactive shell ignores SIGINT,
/// so Ctrl-C's own signal cannot be sent to one) are each sent `ROUNDS` times at a random
/// moment after it stretched.
pub(super) fn signal_during_pulls(a: &mut Vm, b: &mut Vm) -> Result<String> {
    const ROUNDS: u32 = 3;
    a.sh("eosctl jumppolicy enabled=0")?;
    b.sh("eosctl jumppolicy enabled=0")?;
    let r = (|| -> Result<Vec<String>> {
        let mut notes = Vec::new();
        let mut seed = 0x5eed_u64;
        for (sig, num) in [("TERM", 15), ("USR1", 10)] {
            for round in 0..ROUNDS {
                let mark = a.console().len();
                a.sh(
                    "rm -f /tmp/sg.status /tmp/sg.pid; (sh -c 'eosctl run --elastic --budget 2 -- stress 24 50 \
                     10000000 & echo $! > /tmp/sg.pid; wait $!; echo status=$? > /tmp/sg.status' \
                     > /tmp/sg.out 2>&1 &)",
                )?;
                let pid = pulling_pid(a, "/tmp/sg.pid", 50)?;
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                std::thread::sleep(Duration::from_millis(50 + (seed >> 33) % 500));
                a.sh(&format!("kill -{sig} {pid}"))?;
                let out =
                    a.sh("while [ ! -s /tmp/sg.status ]; do sleep 0.2; done; cat /tmp/sg.status")?;
                let status: i32 = out
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("status="))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(-1);
                let log = a.console().get(mark..).unwrap_or("").to_string();
                let sigbus_line = log
                    .lines()
                    .find(|l| l.contains(&format!("pid {pid} (stress): pull of")))
                    .map(str::to_string);
                if status != 128 + num || sigbus_line.is_some() {
                    bail!(
                        "SIG{sig} during pulls (round {round}): exit {status}, want {}; a pull \
                         failure blamed for it: {sigbus_line:?}; output:\n{}",
                        128 + num,
                        a.sh("cat /tmp/sg.out")?
                    );
                }
                notes.push(format!("SIG{sig}: {status}"));
            }
        }
        Ok(notes)
    })();
    let restored = vm::unlimited(|| {
        a.sh("eosctl jumppolicy enabled=1")?;
        b.sh("eosctl jumppolicy enabled=1")
    });
    let mut notes = r?;
    restored?;
    // The kernel's own accesses fault too: dd's read() from /dev/zero fills a 16 MiB buffer
    // whose pages are on node2 (copy_to_user faults in kernel mode). SIGKILL must end it at
    // once: such a fault that returned "no page" for a dying task faulted again for ever.
    for round in 0..2 {
        a.sh(
            "rm -f /tmp/dd.status /tmp/dd.pid; (sh -c 'eosctl run --elastic --budget 2 -- dd if=/dev/zero \
             of=/dev/null bs=16M count=100000 & echo $! > /tmp/dd.pid; wait $!; \
             echo status=$? > /tmp/dd.status' > /tmp/dd.out 2>&1 &)",
        )?;
        let pid = pulling_pid(a, "/tmp/dd.pid", 20)?;
        a.sh(&format!("kill -KILL {pid}"))?;
        let status = cluster::poll(
            "dd killed while its kernel accesses pull",
            Duration::from_secs(20),
            Duration::from_millis(200),
            || {
                Ok(a.sh("cat /tmp/dd.status 2>/dev/null; true")?
                    .trim()
                    .strip_prefix("status=")
                    .map(str::to_string))
            },
        )?;
        if status != "137" {
            bail!("dd killed during kernel-mode pulls (round {round}): exit {status}, want 137");
        }
        notes.push("SIGKILL in read(): 137".to_string());
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "stress pulling at home (2 MiB local, policy off), and dd whose read() pulls in kernel mode, killed {} times mid-run: every exit was its signal's ({})",
        notes.len(),
        notes.join(", ")
    ))
}

/// The budget holds at allocation time: a stretched process with a budget of B MiB has at
/// most B MiB and one push batch (32 pages) of anonymous memory here, because a fault that
/// would take it further waits for the pusher (before, only the pusher held it, every 20 ms).
/// Its `local_pages` in /sys/kernel/elastic/procs is sampled every 20 ms from its stretch to
/// its end and must stay within that from the first sample within it on (a sample, not every
/// fault: a short overshoot between two samples can hide; the workloads' own VmHWM cannot
/// serve, since pushing pages out never updates it). Before its stretch a marked process
/// past its budget waits for the stretch before it runs user code again, so the first sample
/// is within that too, and one more batch (before that hold: lsearch 3,232 pages at the first
/// sample with 2,048 budgeted; and a short `stress` could end before its stretch came).
pub(super) fn budget_holds(a: &mut Vm, b: &mut Vm) -> Result<String> {
    const BUDGET_MIB: u64 = 8;
    const SLACK_PAGES: u64 = 32;
    let limit = BUDGET_MIB * 256 + SLACK_PAGES;
    let mut notes = Vec::new();
    for (w, args) in [
        ("lsearch", &["32"][..]),
        ("bsort", &["24"][..]),
        ("stress", &["24", "3", "20000"][..]),
    ] {
        let want = host_result(w, args)?;
        let (rc, out) = a.run(
            &format!(
                "(eosctl run --elastic --budget {BUDGET_MIB} -- {w} {} > /tmp/bud.out & p=$!; \
                 while kill -0 $p 2>/dev/null; do grep \"^pid=$p \" /sys/kernel/elastic/procs; \
                 usleep 20000; done > /tmp/bud.samples; wait $p; rc=$?; cat /tmp/bud.out; \
                 cat /tmp/bud.samples; exit $rc)",
                args.join(" ")
            ),
            Duration::from_secs(300),
        )?;
        if rc != 0 || !out.lines().any(|l| l == want) {
            bail!("{w} {args:?} with {BUDGET_MIB} MiB local: exit {rc}, host says `{want}`, VM printed:\n{out}");
        }
        let samples: Vec<u64> = Procs::parse(&out)
            .0
            .iter()
            .filter_map(|e| e.get::<u64>("local_pages"))
            .collect();
        // Marked and past its budget, it waits for its stretch; from the first sample within
        // the budget on, it must stay.
        let first = samples.first().copied().unwrap_or(0);
        if first > limit + SLACK_PAGES {
            bail!("{w} {args:?}: {first} pages at its first sample as a stretched process with a {BUDGET_MIB} MiB budget (at most {} may be: the process waits for its stretch): {samples:?}", limit + SLACK_PAGES);
        }
        let Some(held_from) = samples.iter().position(|&n| n <= limit) else {
            bail!("{w} {args:?} never came within its budget ({limit} pages): {samples:?}");
        };
        let held = &samples[held_from..];
        let peak = held.iter().copied().max().unwrap_or(0);
        if held.len() < 5 {
            bail!(
                "{w}: only {} samples of it within its budget; VM printed:\n{out}",
                held.len()
            );
        }
        if peak > limit {
            bail!(
                "{w} {args:?} had {peak} pages here with a {BUDGET_MIB} MiB budget (at most {limit} may be), in {} samples after it came within it",
                held.len()
            );
        }
        notes.push(format!(
            "{w}: {first} pages when stretched, then at most {peak} in {} samples",
            held.len()
        ));
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "{BUDGET_MIB} MiB budget ({} pages) held within one push batch: {}",
        BUDGET_MIB * 256,
        notes.join("; ")
    ))
}

/// Clean remote copies: a read-only scan of 32 MiB with 8 MiB local, three times. A page
/// pulled and not written since goes back by reference to the member's clean copy, so the
/// last scan's evictions send no data of the array: every page of it goes by reference, and
/// only the few stack pages the program writes between rounds go with data (pushed pages
/// counted by the process's own counters, phase by phase). The result must match the
/// host's, and the member keeps no clean copy once the process is gone. The jump policy is
/// off: the process stays home, and every round moves its pages.
pub(super) fn clean_copies(a: &mut Vm, b: &mut Vm) -> Result<String> {
    super::jump::jump_policy(a, b, "enabled=0")?;
    let r = clean_scan(a, b);
    // Also after a run that ran out of time; its own failure is the one reported.
    let restored = vm::unlimited(|| super::jump::jump_policy(a, b, "enabled=1"));
    let r = r?;
    restored?;
    Ok(r)
}

fn clean_scan(a: &mut Vm, b: &mut Vm) -> Result<String> {
    const BUDGET_MIB: u64 = 8;
    const STACK_PAGES: u64 = 3;
    let args = ["32"];
    let want = host_result("cleanscan", &args)?;
    let (rc, out) = a.run(
        &format!(
            "eosctl run --elastic --budget {BUDGET_MIB} -- cleanscan {}",
            args.join(" ")
        ),
        Duration::from_secs(400),
    )?;
    if rc != 0 || !out.lines().any(|l| l == want) {
        bail!("cleanscan {args:?} with {BUDGET_MIB} MiB local: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    // PHASE name pushed=N clean=M, cumulative.
    let phases: Vec<(String, u64, u64)> = out
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("PHASE ")?;
            let name = rest.split_whitespace().next()?.to_string();
            Some((name, field(l, "pushed")?, field(l, "clean")?))
        })
        .collect();
    let names: Vec<&str> = phases.iter().map(|p| p.0.as_str()).collect();
    if names != ["fill", "scan1", "scan2", "scan3"] {
        bail!("cleanscan printed phases {names:?}, not fill, scan1..scan3 (was it stretched?):\n{out}");
    }
    let mut rounds = Vec::new();
    for w in phases.windows(2) {
        let (pushed, clean) = (w[1].1 - w[0].1, w[1].2 - w[0].2);
        rounds.push((w[1].0.clone(), pushed, clean, pushed - clean));
    }
    let fmt = rounds
        .iter()
        .map(|(n, p, c, d)| format!("{n}: {p} pushed, {c} by reference, {d} with data"))
        .collect::<Vec<_>>()
        .join("; ");
    let (_, last_pushed, _, last_data) = rounds[rounds.len() - 1];
    // The scan evicts about 24 MiB (6,144 pages) each round.
    if last_pushed < 4096 {
        bail!("the last scan pushed only {last_pushed} pages with {BUDGET_MIB} MiB local: {fmt}");
    }
    // The array is only read; between rounds the program writes its stack (phase() reads
    // its counters into a 2 KiB buffer there), whose pages rightly go with their data.
    if last_data > STACK_PAGES {
        bail!("the last read-only scan sent {last_data} pages with data ({} KiB; at most {STACK_PAGES} stack pages may): {fmt}", last_data * 4);
    }
    let left = b.sh("cat /sys/kernel/elastic/info")?;
    let kept = left
        .lines()
        .find_map(|l| l.strip_prefix("clean_copies "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    if kept != Some(0) {
        bail!("node2 keeps clean copies after the process ended:\n{left}");
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "32 MiB, {BUDGET_MIB} MiB local, result as on the host; {fmt}"
    ))
}

/// A stretched process in a memory cgroup pushes before the cgroup's `memory.high` would
/// throttle it, as swap would reclaim: lsearch of 32 MiB, marked elastic with no budget of
/// its own, in a cgroup limited to 8 MiB. It is stretched near the limit, then its local pages
/// stay under it (sampled) and its local limit (`limit_pages`) follows the cgroup's; its result
/// matches the host's. The cgroup's `high` events (reclaim at the limit: the pusher fell
/// behind) are reported, not judged.
pub(super) fn cgroup_limit(a: &mut Vm, b: &mut Vm) -> Result<String> {
    const HIGH_MIB: u64 = 8;
    const MAX_HIGH_EVENTS: u64 = 50;
    const CG: &str = "/sys/fs/cgroup/eos-limit";
    let (w, args) = ("lsearch", ["32"]);
    let want = host_result(w, &args)?;
    a.sh(&format!(
        "grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || {{ mkdir -p /sys/fs/cgroup && \
         mount -t cgroup2 none /sys/fs/cgroup; }}; \
         echo +memory > /sys/fs/cgroup/cgroup.subtree_control; mkdir -p {CG} && \
         echo {HIGH_MIB}M > {CG}/memory.high"
    ))?;
    let (rc, out) = a.run(
        &format!(
            "(sh -c 'echo $$ > {CG}/cgroup.procs && exec eosctl run --elastic -- {w} {}' \
             > /tmp/cg.out & p=$!; \
             while kill -0 $p 2>/dev/null; do grep \"^pid=$p \" /sys/kernel/elastic/procs; \
             usleep 20000; done > /tmp/cg.samples; wait $p; rc=$?; cat /tmp/cg.out; \
             cat /tmp/cg.samples; grep -E '^(high|max|oom) ' {CG}/memory.events; exit $rc)",
            args.join(" ")
        ),
        Duration::from_secs(300),
    )?;
    let removed = a.sh(&format!("rmdir {CG}"));
    if rc != 0 || !out.lines().any(|l| l == want) {
        bail!("{w} {args:?} in a cgroup with memory.high {HIGH_MIB} MiB: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    removed?;
    let entries = Procs::parse(&out).0;
    let samples: Vec<u64> = entries
        .iter()
        .filter_map(|e| e.get::<u64>("local_pages"))
        .collect();
    let moved: u64 = entries
        .iter()
        .filter_map(|e| e.get::<u64>("pushed_pages"))
        .max()
        .unwrap_or(0);
    if samples.len() < 5 || moved == 0 {
        bail!("{w} was not stretched in a cgroup of {HIGH_MIB} MiB (no page pushed, {} samples):\n{out}", samples.len());
    }
    // Anonymous pages only: the cgroup also holds the program's text and page tables.
    let limit = HIGH_MIB * 256;
    let Some(held_from) = samples.iter().position(|&n| n <= limit) else {
        bail!("{w} never came under its cgroup's limit ({limit} pages): {samples:?}");
    };
    let peak = samples[held_from..].iter().copied().max().unwrap_or(0);
    // Within one push batch, as the budget step allows: the limit read at a fault moves by a
    // memcg charge batch as the cgroup's per-CPU stock fills and drains.
    if peak > limit + 32 {
        bail!(
            "{w} had {peak} anonymous pages here in a cgroup of {HIGH_MIB} MiB after it came under it: {samples:?}"
        );
    }
    if out.lines().any(|l| l.starts_with("oom ") && l != "oom 0") {
        bail!(
            "the cgroup of {HIGH_MIB} MiB saw the OOM killer:
{out}"
        );
    }
    let limits: Vec<u64> = entries
        .iter()
        .filter_map(|e| e.get::<u64>("limit_pages"))
        .collect();
    // The limit follows the cgroup: under its memory.high, less the program's other pages.
    if limits.is_empty() || limits.iter().any(|&l| l == 0 || l > limit) {
        bail!("{w}'s local limit did not follow its cgroup's {limit} pages: {limits:?}");
    }
    let events: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("high ") || l.starts_with("max ") || l.starts_with("oom "))
        .collect();
    // Each time the cgroup passes memory.high its task reclaims and sleeps (up to 2 s a
    // time, tens of ms for a few pages over): a stretched process pushes before that. A
    // handful may come at the stretch, while the process grows before its first push.
    let high = events
        .iter()
        .find_map(|l| l.strip_prefix("high "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    if high > MAX_HIGH_EVENTS {
        bail!(
            "{w} passed its cgroup's memory.high {high} times (at most {MAX_HIGH_EVENTS} may): {}; last sample: {:?}; samples (local, limit): {:?}",
            events.join(", "),
            out.lines().rev().find(|l| l.starts_with("pid=")),
            entries
                .iter()
                .map(|e| (e.get::<u64>("local_pages"), e.get::<u64>("limit_pages")))
                .collect::<Vec<_>>()
        );
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "memory.high {HIGH_MIB} MiB, no budget: stretched, {} pages when first under it, then at most {peak} in {} samples, {moved} pages pushed; cgroup events: {}",
        samples[held_from],
        samples.len() - held_from,
        events.join(", ")
    ))
}

/// Threads created while a process is being stretched (issue 25, item 2): a marked process
/// with a 4 MiB budget grows to 16 MiB while it creates a thread every millisecond (each lives
/// 2 ms). Its automatic stretch must never leave it stretched with a live thread (each thread
/// looks at `/proc/self/elastic` at its start and end: `bad`), every thread after the stretch
/// is refused, and its memory reads back as on the host. Three runs.
pub(super) fn thread_race(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let args = ["16", "42", "4"];
    let want = host_result("threadrace", &args)?;
    let mut notes = Vec::new();
    for run in 1..=3 {
        let (rc, out) = a.run(
            &format!(
                "eosctl run --elastic --budget 4 -- threadrace {}",
                args.join(" ")
            ),
            Duration::from_secs(120),
        )?;
        if rc != 0 || !out.lines().any(|l| l == want) {
            bail!("run {run}: exit {rc}, host says `{want}`, VM printed:\n{out}");
        }
        let line = out
            .lines()
            .find(|l| l.starts_with("threadrace: "))
            .unwrap_or_default();
        let get = |k: &str| field::<u64>(line, k);
        let (Some(stretched), Some(created), Some(refused), Some(bad)) =
            (get("stretched"), get("created"), get("refused"), get("bad"))
        else {
            bail!("run {run}: no counts in:\n{out}");
        };
        if bad != 0 {
            bail!("run {run}: a thread was alive while the process was stretched ({bad} checks saw it):\n{out}");
        }
        if stretched != 1 || created == 0 || refused == 0 {
            bail!("run {run}: not the race wanted (stretched={stretched}, {created} threads created, {refused} refused):\n{out}");
        }
        notes.push(format!("{created} created, {refused} refused"));
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "3 runs, 0 threads alive while stretched, results as on the host: {}",
        notes.join("; ")
    ))
}

/// Pages that compaction is moving (issue 25, item 6): the stretched stress program (24 MiB,
/// 6 MiB local, 30,000 verified operations) three times while both nodes compact their memory
/// in a loop. A take that meets a page under migration waits for it (it answered ENOENT,
/// and the process died of SIGBUS); every run must end right.
pub(super) fn compaction(a: &mut Vm, b: &mut Vm) -> Result<String> {
    const LOOP: &str =
        "(while [ ! -e /tmp/compact.stop ]; do echo 1 > /proc/sys/vm/compact_memory; done) \
                        > /dev/null 2>&1 & echo started";
    for v in [&mut *a, &mut *b] {
        v.sh("rm -f /tmp/compact.stop; test -w /proc/sys/vm/compact_memory")?;
        v.sh(LOOP)?;
    }
    let mut moved = Vec::new();
    let r = (|| -> Result<()> {
        for _ in 0..3 {
            moved.push(run_stretched(a, "stress", &["24", "7", "30000"], 6.0)?);
        }
        Ok(())
    })();
    let stopped: Vec<Result<String>> = [&mut *a, &mut *b]
        .into_iter()
        .map(|v| vm::unlimited(|| v.sh("touch /tmp/compact.stop; sleep 1; grep -E '^compact_(migrate_scanned|isolated) ' /proc/vmstat")))
        .collect();
    r?;
    let mut stats = Vec::new();
    for s in stopped {
        let s = s?;
        let get = |k: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        stats.push(format!(
            "{} pages scanned, {} isolated for migration",
            get("compact_migrate_scanned "),
            get("compact_isolated ")
        ));
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "3 runs right while both nodes compacted in a loop; (pulls, pushes) {moved:?}; node1 {}; node2 {}",
        stats[0], stats[1]
    ))
}
