//! Execution jumping between nodes: register and stack state, system calls and signals away
//! from home, mappings a jump carries, and the jump policy.

use crate::cluster::{self, check_clean, field, host_result, jumplog, stat, Procs};
use crate::image;
use crate::util::{project_root, run};
use crate::vm::{self, Vm};
use anyhow::{bail, Result};
use std::process::Command;
use std::time::{Duration, Instant};

/// Sets the jump policy on both nodes.
pub(super) fn jump_policy(a: &mut Vm, b: &mut Vm, kv: &str) -> Result<()> {
    a.sh(&format!("eosctl jumppolicy {kv}"))?;
    b.sh(&format!("eosctl jumppolicy {kv}"))?;
    Ok(())
}

/// Runs `f` on `a` with the jump policy off on `b` (so a process there comes home only for
/// its system calls or when asked, never in policy ping-pong), then turns it on again.
pub(super) fn with_peer_policy_off(
    a: &mut Vm,
    b: &mut Vm,
    f: impl FnOnce(&mut Vm) -> Result<String>,
) -> Result<String> {
    b.sh("eosctl jumppolicy enabled=0")?;
    let r = f(a);
    // Also after a step that ran out of time; its own failure is the one reported.
    let restored = vm::unlimited(|| b.sh("eosctl jumppolicy enabled=1"));
    let r = r?;
    restored?;
    check_clean(&[a, b])?;
    Ok(r)
}

/// Ping-pong: thousands of jumps inside a computation that checks its own registers, vector
/// registers, MXCSR and stack after each one.
pub(super) fn jump_ping_pong(a: &mut Vm, b: &mut Vm, rounds: u32) -> Result<String> {
    let r = rounds.to_string();
    let want = host_result("pingpong", &[&r, "1", "2"])?;
    let (ja0, _, _) = jumplog(a)?;
    let (jb0, _, _) = jumplog(b)?;
    let start = Instant::now();
    let (rc, out) = a.run(&format!("pingpong {r} 1 2"), Duration::from_secs(1800))?;
    let secs = start.elapsed().as_secs_f64();
    if rc != 0 || !out.lines().any(|l| l == want) || !out.contains(" 0 refused, 0 errors") {
        bail!("pingpong: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    let (ja, la50, la99) = jumplog(a)?;
    let (jb, lb50, lb99) = jumplog(b)?;
    let (out_jumps, back_jumps) = (ja - ja0, jb - jb0);
    if out_jumps < rounds as u64 || back_jumps < rounds as u64 {
        bail!("pingpong: only {out_jumps} jumps out and {back_jumps} back for {rounds} rounds");
    }
    check_clean(&[a, b])?;
    let kind = out
        .lines()
        .find(|l| l.starts_with("pingpong: "))
        .unwrap_or("")
        .to_string();
    Ok(format!(
        "{rounds} round trips ({out_jumps} jumps out, {back_jumps} back) in {secs:.0} s, \
         {:.1} ms per round trip; jump latency node1->2 p50 {la50} us p99 {la99} us, \
         node2->1 p50 {lb50} us p99 {lb99} us; {kind}",
        secs * 1000.0 / rounds as f64
    ))
}

/// A program that prints, does file I/O, brk and mmap after jumping away: byte-identical
/// output and exit status to the host's run.
pub(super) fn jump_home_semantics(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let dir = project_root().join("target/workloads");
    std::fs::create_dir_all(&dir)?;
    let exe = dir.join("homesem");
    image::compile_workload("homesem", &exe, false)?;
    // Output goes to a file on both sides (the guest console also carries kernel messages);
    // the files must be byte-identical.
    let host_out = dir.join("homesem.out");
    run(Command::new("sh").arg("-c").arg(format!(
        "'{}' 1 2 > '{}' 2>&1; echo status=$? >> '{}'",
        exe.display(),
        host_out.display(),
        host_out.display()
    )))?;
    let want = std::fs::read_to_string(&host_out)?;
    let md5 = Command::new("md5sum").arg(&host_out).output()?;
    let want_md5 = String::from_utf8_lossy(&md5.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let (jb0, _, _) = jumplog(b)?;
    a.sh("homesem 1 2 > /tmp/homesem.out 2>&1; echo status=$? >> /tmp/homesem.out")?;
    let got_md5 = a.sh("md5sum /tmp/homesem.out")?;
    if !got_md5.contains(&want_md5) {
        let got = a.sh("cat /tmp/homesem.out")?;
        bail!("homesem output differs from the host's.\nhost:\n{want}\nVM:\n{got}");
    }
    let (jb, _, _) = jumplog(b)?;
    if jb - jb0 < 10 {
        bail!(
            "homesem: only {} jumps home from node2; it did not run away",
            jb - jb0
        );
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "output ({} lines, md5 {want_md5}) identical to the host's, exit status 7; {} jumps home \
         for syscalls",
        want.lines().count(),
        jb - jb0
    ))
}

/// The other ways into the kernel, each right after a jump away: `int $0x80` (getppid,
/// getpid, write), the legacy vsyscall page, and CPU time used away from home as getrusage
/// at home reports it. The output must equal a run that never left home (same node).
pub(super) fn jump_other_entries(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let want = a.sh("entries 1 2 plain > /tmp/entries.plain 2>&1; echo status=$? >> /tmp/entries.plain; cat /tmp/entries.plain")?;
    let (jb0, _, _) = jumplog(b)?;
    a.sh("entries 1 2 > /tmp/entries.out 2>&1; echo status=$? >> /tmp/entries.out")?;
    let (jb, _, _) = jumplog(b)?;
    let same = a.run(
        "cmp /tmp/entries.plain /tmp/entries.out",
        Duration::from_secs(30),
    )?;
    if same.0 != 0 {
        let got = a.sh("cat /tmp/entries.out")?;
        bail!(
            "entries away from home differs from its run at home.\nat home:\n{want}\naway:\n{got}"
        );
    }
    for line in [
        "int80 getppid is the home's: 1",
        "a line written through int $0x80",
        "vsyscall time is the home's: 1",
        "int3 trapped once, at home: 1",
        "cpu time away from home counted: 1",
        "status=0",
    ] {
        if !want.contains(line) {
            bail!("entries at home lacks {line:?}:\n{want}");
        }
    }
    // Four entries, the int3 and the CPU work each came home from node2.
    if jb - jb0 < 6 {
        bail!(
            "entries: only {} jumps home from node2; it did not run away",
            jb - jb0
        );
    }
    let cpumax = cpu_max_charged(a)?;
    check_clean(&[a, b])?;
    Ok(format!(
        "int $0x80 getppid/getpid/write, vsyscall time, an int3 and getrusage after work away: output identical to the run at home; {} jumps home; {cpumax}",
        jb - jb0
    ))
}

/// Time used away from home counts against the cgroup's cpu.max at home: after 2 s of work
/// on node2 in a group with a 50% quota, the group is throttled at home while it pays that
/// time back (without the charge it would not be throttled at all: it used almost no CPU
/// here), and its usage includes the time away.
fn cpu_max_charged(a: &mut Vm) -> Result<String> {
    a.sh(
        "grep -q cgroup2 /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup; \
         echo +cpu > /sys/fs/cgroup/cgroup.subtree_control; mkdir -p /sys/fs/cgroup/eos; \
         echo '50000 100000' > /sys/fs/cgroup/eos/cpu.max",
    )?;
    let stat = |a: &mut Vm| -> Result<(f64, f64)> {
        let s = a.sh("cat /sys/fs/cgroup/eos/cpu.stat")?;
        let get = |k: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map_or(-1.0, |us| us / 1e6)
        };
        Ok((get("usage_usec "), get("throttled_usec ")))
    };
    let (u0, t0) = stat(a)?;
    let out = a.sh("sh -c 'echo $$ > /sys/fs/cgroup/eos/cgroup.procs; exec cpumax 1 2 2'")?;
    let (u1, t1) = stat(a)?;
    let line = out
        .lines()
        .find(|l| l.starts_with("cpumax "))
        .ok_or_else(|| anyhow::anyhow!("cpumax printed no result: {out}"))?;
    let away = field::<f64>(line, "away_s").unwrap_or(-1.0);
    let cpu = field::<f64>(line, "cpu_s").unwrap_or(-1.0);
    let (used, throttled) = (u1 - u0, t1 - t0);
    if away < 1.5 || used < 0.5 * away || throttled < 0.25 * away || cpu < 0.5 * away {
        bail!(
            "cpu.max did not see the time away: {away} s away, the group used {used:.2} s and \
             was throttled {throttled:.2} s, getrusage says {cpu} s\n{line}"
        );
    }
    Ok(format!(
        "cpu.max 50%: {away:.1} s away, the group's usage grew {used:.1} s and it was throttled \
         {throttled:.1} s at home"
    ))
}

/// Signals sent at home reach a process that runs on the peer.
pub(super) fn jump_signals(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let mut notes = Vec::new();
    for (sig, args, want_status, want_out) in [
        ("INT", "2", 130, ""),
        ("INT", "2 handler", 3, "caught SIGINT"),
        ("KILL", "2", 137, ""),
    ] {
        a.sh(&format!(
            "spin {args} > /tmp/spin.out 2>&1 & echo $! > /tmp/spin.pid"
        ))?;
        let ran_away = cluster::poll(
            "spin away on node2",
            Duration::from_secs(20),
            Duration::from_millis(200),
            || {
                let away = Procs::read(a)?.home("spin").is_some_and(|p| p.away());
                Ok(away.then_some(()))
            },
        );
        if let Err(e) = ran_away {
            let seen = a.sh("cat /sys/kernel/elastic/procs; cat /tmp/spin.out")?;
            return Err(e.context(format!("spin never ran on node2:\n{seen}")));
        }
        let own = a.sh("cat /proc/$(cat /tmp/spin.pid)/elastic")?;
        if !own.contains(" away=1 ") || !own.contains(" jumps=1 ") {
            bail!("/proc/<pid>/elastic does not show it away after one jump:\n{own}");
        }
        let shells = b.sh("cat /sys/kernel/elastic/procs")?;
        if !Procs::parse(&shells).shells().any(|s| s.running()) {
            bail!("node2's shell does not show the process running:\n{shells}");
        }
        // The shell's children's CPU ticks (/proc/PID/stat cutime + cstime, USER_HZ 100)
        // grow by the time spin ran away once it is reaped, however it died.
        let ticks = "awk '{print $16 + $17}' /proc/$$/stat";
        let t0 = a.sh(ticks)?;
        std::thread::sleep(Duration::from_secs(2));
        let (_, out) = a.run(
            &format!("kill -{sig} $(cat /tmp/spin.pid); wait $(cat /tmp/spin.pid); echo status=$?; cat /tmp/spin.out"),
            Duration::from_secs(60),
        )?;
        if !out.contains(&format!("status={want_status}")) || !out.contains(want_out) {
            bail!("kill -{sig} of spin {args}: want status {want_status} and `{want_out}`, got:\n{out}");
        }
        let t1 = a.sh(ticks)?;
        let num = |s: &str| {
            s.lines()
                .find_map(|l| l.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let used = num(&t1).saturating_sub(num(&t0));
        if used < 100 {
            bail!("spin ran away for 2 s but its parent counts {used} ticks of its CPU time after SIG{sig}");
        }
        notes.push(format!(
            "SIG{sig}{}: status {want_status}, {used} CPU ticks counted",
            if args.contains("handler") {
                " (handler ran)"
            } else {
                ""
            }
        ));
    }
    std::thread::sleep(Duration::from_millis(500));
    let shells = b.sh("cat /sys/kernel/elastic/procs")?;
    if Procs::parse(&shells).shells().next().is_some() {
        bail!("shells left on node2:\n{shells}");
    }
    check_clean(&[a, b])?;
    Ok(notes.join(", "))
}

/// A process with thousands of mappings jumps (each one-page, with holes between); one with
/// more than a jump carries stays home and runs on with its pages pulled, and its refused jump
/// is not retried in a storm. Node2's policy is off, so the process comes home only when asked.
pub(super) fn many_mappings(a: &mut Vm, b: &mut Vm) -> Result<String> {
    with_peer_policy_off(a, b, |a| {
        let mut notes = Vec::new();
        for n in [4096u32, 9000] {
            let want = host_result("maps", &["1", "2", &n.to_string()])?;
            let refusals = |a: &mut Vm| -> Result<u64> {
                Ok(stat(&a.sh("eosctl stats")?, "jumps_too_many_maps"))
            };
            let (r0, (j0, _, _)) = (refusals(a)?, jumplog(a)?);
            let start = Instant::now();
            // A hang guard, not a speed goal: 9,000 one-page mappings staying home under a
            // 1 MiB budget took 239 s once on a loaded host (its pages moved ~8 times each;
            // maps now drops its budget before the jump, so they come back once).
            let (rc, out) = a.run(&format!("maps 1 2 {n}"), Duration::from_secs(500))?;
            let secs = start.elapsed().as_secs_f64();
            let (r1, (j1, _, _)) = (refusals(a)?, jumplog(a)?);
            if rc != 0 || !out.lines().any(|l| l == want) || !out.contains("stretched=1") {
                bail!("maps {n}: exit {rc}, host says `{want}`, VM printed:\n{out}");
            }
            let remote: i64 = out
                .split("remote_before=")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if remote < i64::from(n / 2) {
                bail!("maps {n}: only {remote} pages were on node2 before the jump:\n{out}");
            }
            match n {
                4096 if j1 == j0 || r1 > r0 => {
                    bail!(
                        "maps {n}: the jump did not go ({} jumps, {} refusals)",
                        j1 - j0,
                        r1 - r0
                    )
                }
                9000 if r1 == r0 || r1 - r0 > 10 => {
                    bail!(
                        "maps {n}: {} refusals logged, want 1 to 10 (no retry storm)",
                        r1 - r0
                    )
                }
                _ => {}
            }
            notes.push(format!(
                "{n} mappings: right in {secs:.0} s, {} jumps out, {} refused",
                j1 - j0,
                r1 - r0
            ));
        }
        Ok(notes.join("; "))
    })
}

/// Linear search over an array mostly pushed to the peer: with the policy on it jumps to
/// the data (and the result is right); with jumps off it pulls. Both times are reported.
pub(super) fn jump_lsearch(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let (fp, budget) = (32u32, 8u32);
    let want = host_result("lsearch", &[&fp.to_string()])?;
    let mut times = Vec::new();
    for enabled in [0, 1] {
        jump_policy(a, b, &format!("enabled={enabled}"))?;
        let (j0, _, _) = jumplog(a)?;
        let start = Instant::now();
        let (rc, out) = a.run(
            &format!("eosctl run --elastic --budget {budget} -- lsearch {fp}"),
            Duration::from_secs(1200),
        )?;
        let secs = start.elapsed().as_secs_f64();
        if rc != 0 || !out.lines().any(|l| l == want) {
            bail!("lsearch (jumps {enabled}): exit {rc}, host says `{want}`, VM printed:\n{out}");
        }
        let (j1, _, _) = jumplog(a)?;
        let jumps = j1 - j0;
        if enabled == 1 && jumps == 0 {
            bail!("the policy never jumped to the data");
        }
        if enabled == 0 && jumps != 0 {
            bail!("{jumps} jumps with the policy off");
        }
        times.push((secs, jumps));
    }
    jump_policy(a, b, "enabled=1")?;
    check_clean(&[a, b])?;
    Ok(format!(
        "lsearch {fp} MiB with {budget} MiB local: pull only {:.1} s; policy on {:.1} s with {} jumps",
        times[0].0, times[1].0, times[1].1
    ))
}

/// The `elastic:*` tracepoints: the tracefs events directory lists the five events, and a
/// stretched lsearch with the jump policy on records pulls, pushes and jumps at home, and
/// fetches and jumps home on the peer, through them.
pub(super) fn tracepoints(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let on = "grep -q tracefs /proc/mounts || mount -t tracefs nodev /sys/kernel/tracing; \
              echo > /sys/kernel/tracing/trace; echo 1 > /sys/kernel/tracing/events/elastic/enable";
    let mut listed = String::new();
    for v in [&mut *a, &mut *b] {
        v.sh(on)?;
        listed = v.sh("ls /sys/kernel/tracing/events/elastic")?;
    }
    for e in [
        "elastic_pull",
        "elastic_push",
        "elastic_fetch",
        "elastic_jump",
        "elastic_link",
    ] {
        if !listed.split_whitespace().any(|w| w == e) {
            bail!("tracefs lacks {e}:\n{listed}");
        }
    }
    let want = host_result("lsearch", &["16"])?;
    // Once with the jump policy off (the faults pull at home), once on (it jumps, and the
    // shell fetches): with it on alone, a run may jump before its first pull.
    for policy in ["enabled=0", "enabled=1"] {
        jump_policy(a, b, policy)?;
        let (rc, out) = a.run(
            "eosctl run --elastic --budget 4 -- lsearch 16",
            Duration::from_secs(600),
        )?;
        if rc != 0 || !out.lines().any(|l| l == want) {
            bail!("lsearch ({policy}): exit {rc}, host says `{want}`, VM printed:\n{out}");
        }
    }
    jump_policy(a, b, "enabled=1")?;
    let off = "echo 0 > /sys/kernel/tracing/events/elastic/enable";
    a.sh(off)?;
    b.sh(off)?;
    let count = |v: &mut Vm, e: &str| -> Result<usize> {
        Ok(
            v.sh(&format!("grep -c ' {e}: ' /sys/kernel/tracing/trace; true"))?
                .trim()
                .parse()
                .unwrap_or(0),
        )
    };
    let (pulls, pushes, jumps_out) = (
        count(a, "elastic_pull")?,
        count(a, "elastic_push")?,
        count(a, "elastic_jump")?,
    );
    let (fetches, jumps_home) = (count(b, "elastic_fetch")?, count(b, "elastic_jump")?);
    let sample = a.sh("grep -m1 ' elastic_jump: ' /sys/kernel/tracing/trace; true")?;
    if pulls == 0 || pushes == 0 || jumps_out == 0 || jumps_home == 0 {
        bail!(
            "events missing: node1 {pulls} pulls, {pushes} pushes, {jumps_out} jumps; node2 \
             {fetches} fetches, {jumps_home} jumps\n{sample}"
        );
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "tracefs lists the five elastic events; lsearch 16 MiB, 4 MiB local, jump policy off \
         then on: node1 traced {pulls} pulls, {pushes} pushes, {jumps_out} jumps out, node2 {fetches} fetches and \
         {jumps_home} jumps home (e.g. `{}`)",
        sample.trim()
    ))
}

/// A private mapping of a hugetlbfs file reads the home's bytes wherever the process runs
/// (issue 25 item 10). Both nodes have a file of the same path, size and mtime; the process
/// writes its private copy at home, then reads it on node2. hugetlb faults bypass the
/// markers, so a shell that mapped its own file read the member's bytes: the range must stay
/// the home's (touching it away brings execution home).
pub(super) fn hugetlb_private(a: &mut Vm, b: &mut Vm) -> Result<String> {
    const PATH: &str = "/mnt/huge/eos-hugetlb";
    let setup = format!(
        "echo 4 > /proc/sys/vm/nr_hugepages && mkdir -p /mnt/huge && \
         (mountpoint -q /mnt/huge || mount -t hugetlbfs none /mnt/huge) && hugetlb make {PATH}"
    );
    let cleanup = format!("rm -f {PATH}; umount /mnt/huge; echo 0 > /proc/sys/vm/nr_hugepages");
    a.sh(&setup)?;
    b.sh(&setup)?;
    let r = a.run(&format!("hugetlb run {PATH} 2"), Duration::from_secs(120));
    let cleaned = vm::unlimited(|| a.sh(&cleanup).and(b.sh(&cleanup)));
    let (rc, out) = r?;
    cleaned?;
    let info = out
        .lines()
        .find(|l| l.starts_with("hugetlb: "))
        .unwrap_or("");
    if rc != 0
        || !out.lines().any(|l| l == "RESULT hugetlb bad=0")
        || !info.contains("stretched=1 jumped=1")
    {
        bail!("hugetlb: exit {rc}, want `RESULT hugetlb bad=0` after a jump to node2:\n{out}");
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "a private 2 MiB hugetlbfs mapping written at home, the same file on node2: every \
         4 KiB step read the home's bytes on node2 and at home ({info})"
    ))
}

/// A jump asked for from outside (`eosctl jump PID 2`) while the process sleeps in
/// `epoll_wait` at home (issue 27 item 9): the call runs to its timeout (0), never ends early
/// with a spurious EINTR (the request's kick woke interruptible sleeps as a signal does), and
/// the jump runs on the way back to user mode.
pub(super) fn jump_without_eintr(a: &mut Vm) -> Result<String> {
    let out = a.sh(
        "rm -f /tmp/ep.out; epollwait 2 3000 > /tmp/ep.out 2>&1 & pid=$!; \
         for i in $(seq 100); do grep -q ready /tmp/ep.out && break; sleep 0.1; done; \
         sleep 0.5; eosctl jump $pid 2; echo jump-rc=$?; \
         while kill -0 $pid 2>/dev/null; do sleep 0.1; done; cat /tmp/ep.out",
    )?;
    let info = out
        .lines()
        .find(|l| l.starts_with("epollwait: stretched="))
        .unwrap_or("");
    let waited: u64 = field(info, "waited_ms").unwrap_or(0);
    if !out.contains("jump-rc=0") || !info.contains("stretched=1 rc=0 errno=0") || waited < 2900 {
        bail!(
            "a jump asked for during epoll_wait interrupted it (want rc=0 after 3000 ms):\n{out}"
        );
    }
    let jumps: u64 = field(info, "jumps").unwrap_or(0);
    if jumps == 0 {
        bail!("the jump asked for never ran after the wait:\n{out}");
    }
    Ok(format!(
        "epoll_wait of 3000 ms ran to its timeout ({waited} ms, rc 0) with `eosctl jump` asked \
         0.5 s into it; then it jumped ({jumps} jumps)"
    ))
}

/// A shell maps a home's file only if its own file of that path has the same contents, and
/// no other local user can change it (issue 27 item 4). node2 has a file of the same path,
/// size and mtime as node1's: with other contents (what a local user who controls the path
/// can plant), refused; with the same contents but owned by another user, refused; with the
/// same contents, owned by root, mapped. Every byte the process reads on node2 is the home
/// file's either way (a refused file stays home: touching it brings execution home).
pub(super) fn file_identity(a: &mut Vm, b: &mut Vm) -> Result<String> {
    const PATH: &str = "/tmp/eos-fileid.dat";
    a.sh(&format!("fileid make {PATH} A"))?;
    let stats = |b: &mut Vm| -> Result<(u64, u64)> {
        let s = b.sh("cat /sys/kernel/elastic/stats")?;
        Ok((
            stat(&s, "shell_files_mapped"),
            stat(&s, "shell_files_missing"),
        ))
    };
    let mut notes = Vec::new();
    for (what, setup, mapped_wanted) in [
        ("other contents", format!("fileid make {PATH} B"), false),
        (
            "the same contents, owned by alice",
            format!("fileid make {PATH} A && chown alice {PATH}"),
            false,
        ),
        (
            "the same contents, owned by root",
            format!("fileid make {PATH} A"),
            true,
        ),
    ] {
        b.sh(&format!("rm -f {PATH}; {setup}"))?;
        let before = stats(b)?;
        let (rc, out) = a.run(&format!("fileid run {PATH} 2"), Duration::from_secs(60))?;
        let after = stats(b)?;
        let info = out
            .lines()
            .find(|l| l.starts_with("fileid: "))
            .unwrap_or("");
        if rc != 0 || !out.lines().any(|l| l == "RESULT fileid bad=0") || !info.contains("jumped=1")
        {
            bail!("file-identity ({what} on node2): exit {rc}, want `RESULT fileid bad=0` after a jump:\n{out}");
        }
        let mapped = after.0 > before.0;
        let missing = after.1 > before.1;
        if mapped != mapped_wanted || missing == mapped_wanted {
            bail!(
                "file-identity ({what} on node2): the shell {} the file (mapped {}→{}, missing {}→{})",
                if mapped { "mapped" } else { "did not map" },
                before.0,
                after.0,
                before.1,
                after.1
            );
        }
        notes.push(format!(
            "{what}: {}",
            if mapped { "mapped" } else { "refused" }
        ));
    }
    a.sh(&format!("rm -f {PATH}"))?;
    b.sh(&format!("rm -f {PATH}"))?;
    check_clean(&[a, b])?;
    Ok(format!(
        "node1's file and node2's of the same path, size and mtime: {}; every byte read on node2 was node1's",
        notes.join("; ")
    ))
}
