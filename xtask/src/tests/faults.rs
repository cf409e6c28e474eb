//! Fault injection with the kernel's own framework (CONFIG_FAULT_INJECTION, debugfs): the
//! versioned-page stress program runs stretched while page installs fail on both nodes
//! (`fail_elastic_install`, mm/elastic.c). Every run must either complete with every page
//! right, or be stopped by a signal with a kernel log line naming the lost page; never a
//! wrong value, an oops or a hang, and the node keeps working afterwards.
//!
//! The same rule holds with page and jump frames dropped, duplicated or delayed on receipt
//! (`fail_elastic_frame_{drop,dup,delay}`, eos-subsys/faults.c).
//!
//! The test command runs a short form (`SHORT_RUNS`); `cargo xtask faults --runs N` the long.

use super::judge::{at_least_half_right, judge, Outcome};
use super::stretch::run_stretched;
use crate::cluster::{self, check_clean, host_result};
use crate::vm::Vm;
use anyhow::{bail, Result};
use std::time::Duration;

/// Runs in the test command.
pub(super) const SHORT_RUNS: u32 = 3;
/// Runs per frame fault point in the test command.
pub(super) const FRAME_SHORT_RUNS: u32 = 2;
/// Runs per frame fault point in the test command (each point's run is about 45 s under
/// emulation; `--full` runs 20 of each).
pub(super) const FRAME_POINT_SHORT_RUNS: u32 = 1;

/// Probability (percent) of each install failing, by run (cycled): each failure is retried,
/// so only a few runs lose a page at the lower ones, and most at the highest.
const PERCENT: [u32; 3] = [5, 15, 30];

/// What the kernel logs when a page's data is lost (pull.rs, push.rs).
const LOST: &str = "its data is lost";

const STRESS: [&str; 3] = ["16", "11", "20000"];

/// Failures the attribute may still inject (`times` counts down from this).
const BUDGET: u64 = 1_000_000;

/// Makes each page install on `v` fail with `percent` probability (0: none); returns how many
/// failures were injected since the last call.
fn inject(v: &mut Vm, percent: u32) -> Result<u64> {
    let left = set_fault(v, "fail_elastic_install", percent, 1, BUDGET)?;
    Ok(BUDGET.saturating_sub(left.unwrap_or(BUDGET as i64).max(0) as u64))
}

/// Sets the fault attribute `name` (debugfs, mounted if need be) to fail `percent` of every
/// `interval`-th call, `times` times at most. Returns what was left of its last setting's
/// `times` (`None` if it could not be read).
fn set_fault(
    v: &mut Vm,
    name: &str,
    percent: u32,
    interval: u32,
    times: u64,
) -> Result<Option<i64>> {
    let out = v.sh(&format!(
        "[ -d /sys/kernel/debug/{name} ] || mount -t debugfs none /sys/kernel/debug; \
         d=/sys/kernel/debug/{name}; echo left=$(cat $d/times); \
         echo 0 > $d/verbose && echo {interval} > $d/interval && echo {times} > $d/times && \
         echo {percent} > $d/probability"
    ))?;
    Ok(out
        .lines()
        .find_map(|l| l.trim().strip_prefix("left="))
        .and_then(|x| x.parse().ok()))
}

/// What the kernel logs when it stops a process because a transfer failed for good: a page
/// lost, a transfer not confirmed, a jump not confirmed (pull.rs, push.rs, jump.rs).
const STOPPED: [&str; 5] = [
    LOST,
    "killing it",
    "ending the process",
    "ending it here",
    "not confirmed",
];

/// What jump.rs logs when a jump is not confirmed (from home, from a shell).
const JUMP_LOST: [&str; 2] = ["not confirmed", "did not take its execution back"];

/// The frame fault points, each with how often it fires (every `interval`-th page or jump
/// frame received) and how many times at most per run.
const FRAME_POINTS: [(&str, u32, u32); 3] = [
    ("fail_elastic_frame_drop", 97, 4),
    ("fail_elastic_frame_dup", 31, 50),
    ("fail_elastic_frame_delay", 53, 12),
];

/// Arms (`times` > 0) or disarms the point `name` on `v`; returns how many faults it
/// injected since it was armed.
fn arm(v: &mut Vm, name: &str, interval: u32, times: u32) -> Result<u64> {
    let percent = if times > 0 { 100 } else { 0 };
    let left = set_fault(v, name, percent, interval, u64::from(times))?;
    Ok(left.unwrap_or(0).max(0) as u64)
}

/// `runs` stretched stress runs per frame fault point, the point armed on both nodes; then
/// one run without, which must be right.
pub(super) fn frame_faults(a: &mut Vm, b: &mut Vm, runs: u32) -> Result<String> {
    let want = host_result("stress", &STRESS)?;
    let mut notes = Vec::new();
    for (name, interval, times) in FRAME_POINTS.into_iter().filter(|p| wanted(p.0)) {
        let mut t = Tally::default();
        for run in 0..runs {
            wait_room_pause();
            let marks = (a.console().len(), b.console().len());
            arm(a, name, interval, times)?;
            arm(b, name, interval, times)?;
            let (rc, out) = run_stress(a)?;
            let left = arm(a, name, interval, 0)? + arm(b, name, interval, 0)?;
            t.injected += (2 * times as u64).saturating_sub(left);
            // A duplicate or a delay costs nothing but time, and a dropped page frame one more
            // try: only a dropped jump frame may stop the process (the jump is not
            // confirmed, so it may run on either side), and the line saying so must name it.
            let (ca, cb) = (a.console(), b.console());
            let logs = [since(&ca, marks.0), since(&cb, marks.1)];
            t.count(judge(
                &format!("{name} run {run}"),
                rc,
                &out,
                &want,
                &logs,
                &JUMP_LOST,
                true,
            )?);
            check_clean(&[a, b])?;
        }
        at_least_half_right(name, t.right, runs)?;
        if t.injected == 0 {
            bail!("{name}: nothing was injected: the test proved nothing");
        }
        notes.push(format!(
            "{name}: {runs} runs, {} injected, {} right, {} stopped with the cause logged",
            t.injected, t.right, t.stopped
        ));
    }
    // The run after them must move pages: not inside a pause for room they left.
    wait_room_pause();
    run_stretched(a, "stress", &STRESS, 4.0)?;
    check_clean(&[a, b])?;
    Ok(format!(
        "{}; 0 wrong; a run after them is right",
        notes.join("; ")
    ))
}

/// `runs` stretched stress runs while slab allocations of the subsystem's kernel threads
/// fail (failslab, task-filtered: the links' receive threads, the pusher, the dialers and the
/// listener of both nodes, every `INTERVAL`-th allocation, sleeping ones included, at most
/// `TIMES` per node and run). Every run must be right, or stopped with the cause logged (an
/// allocation that a link needs fails: the link closes, which is the loss of that node);
/// then, the links back, a run without must be right.
pub(super) fn alloc_failures(a: &mut Vm, b: &mut Vm, runs: u32) -> Result<String> {
    const INTERVAL: u32 = 40;
    const TIMES: u64 = 8;
    let want = host_result("stress", &STRESS)?;
    let mut t = Tally::default();
    let mut not_started = 0;
    // failslab's own switches and the threads it fails first (before `set_fault` arms it: no
    // moment armed without the task filter), then the attribute's common settings.
    let arm = |v: &mut Vm, times: u64| -> Result<u64> {
        v.sh(
            "[ -d /sys/kernel/debug/failslab ] || mount -t debugfs none /sys/kernel/debug; \
             d=/sys/kernel/debug/failslab; echo Y > $d/task-filter; echo N > $d/ignore-gfp-wait; \
             for p in $(ps -o pid,comm | awk '$2 ~ /^eos-/ {print $1}'); do \
               echo 1 > /proc/$p/make-it-fail; done",
        )?;
        let left = set_fault(v, "failslab", 100, INTERVAL, times)?;
        Ok(left.unwrap_or(0).max(0) as u64)
    };
    for run in 0..runs {
        wait_room_pause();
        let marks = (a.console().len(), b.console().len());
        arm(a, TIMES)?;
        arm(b, TIMES)?;
        let (rc, out) = run_stress(a)?;
        let left = arm(a, 0)? + arm(b, 0)?;
        t.injected += (2 * TIMES).saturating_sub(left);
        // The links come back before anything else is judged (the next steps need them).
        a.sh("eosctl wait 2 --timeout 120")?;
        b.sh("eosctl wait 1 --timeout 120")?;
        // A link that loses an allocation it needs closes: the loss of that node, whose
        // processes are stopped with that cause, named (home.rs: "node N lost: killing pid").
        let (ca, cb) = (a.console(), b.console());
        let logs = [since(&ca, marks.0), since(&cb, marks.1)];
        // The link closed before the process was even marked (an allocation it needed failed
        // at once): eosctl says so and nothing ran, so nothing can be wrong; logged on node1.
        if rc != 0
            && out.contains("elastic_ctl: Transport endpoint is not connected")
            && !out.contains("RESULT ")
            && logs[0].contains("link to node 2 down")
        {
            not_started += 1;
            check_clean(&[a, b])?;
            continue;
        }
        t.count(judge(
            &format!("failslab run {run}"),
            rc,
            &out,
            &want,
            &logs,
            &FAILSLAB_STOPS,
            true,
        )?);
        check_clean(&[a, b])?;
    }
    if t.injected == 0 {
        bail!("failslab: nothing was injected: the test proved nothing");
    }
    // The run after them must move pages: not inside a pause for room they left.
    wait_room_pause();
    run_stretched(a, "stress", &STRESS, 4.0)?;
    check_clean(&[a, b])?;
    if not_started > runs / 2 {
        bail!("failslab: {not_started} of {runs} runs never started (the link was down at once): the test proved too little");
    }
    Ok(format!(
        "failslab: {runs} runs, {} slab allocations of the subsystem's threads failed, {} right, \
         {} stopped with the cause logged, {not_started} not started (the link closed before \
         the mark); 0 wrong; a run after them is right",
        t.injected, t.right, t.stopped
    ))
}

/// Waits out a pause of pushes for room: injected install failures (this step's or an earlier
/// one's) look to the home like a member without room, and pause its pushes there for up to
/// 2 s (`peer::RoomPause`), so a run started inside one could end before it pushed anything.
/// Called before a run's fault point is armed (an armed failslab would fail the links' idle
/// allocations meanwhile), and before the run after them (a fresh-clone run's
/// `faults-install` failed so: "stress: no pages moved").
fn wait_room_pause() {
    std::thread::sleep(Duration::from_millis(
        u64::from(eos_core::peer::ROOM_PAUSE_MAX_MS) + 300,
    ));
}

/// One stretched stress run on `a` (4 MiB budget): its exit status and output, which starts
/// with its pid (`EOSPID N`: eosctl execs the program in the same process).
fn run_stress(a: &mut Vm) -> Result<(i32, String)> {
    a.run(
        &format!(
            "sh -c 'echo EOSPID $$; exec eosctl run --elastic --budget 4 -- stress {}'",
            STRESS.join(" ")
        ),
        Duration::from_secs(600),
    )
}

/// A console's text from byte `mark` on.
fn since(console: &str, mark: usize) -> &str {
    console.get(mark..).unwrap_or("")
}

/// What stops a run under failslab: any transfer failure (`STOPPED`), or the loss of the
/// node whose link lost an allocation it needed (home.rs: "node N lost: killing pid P").
const FAILSLAB_STOPS: [&str; 6] = [
    STOPPED[0],
    STOPPED[1],
    STOPPED[2],
    STOPPED[3],
    STOPPED[4],
    " lost: killing pid ",
];

/// Outcomes of the runs.
#[derive(Default)]
struct Tally {
    right: u32,
    stopped: u32,
    injected: u64,
}

impl Tally {
    fn count(&mut self, o: Outcome) {
        match o {
            Outcome::Right => self.right += 1,
            Outcome::Stopped => self.stopped += 1,
        }
    }
}

/// `runs` stretched stress runs under injected install failures; then one without, which
/// must be right (the node keeps working).
pub(super) fn install_failures(a: &mut Vm, b: &mut Vm, runs: u32) -> Result<String> {
    let want = host_result("stress", &STRESS)?;
    let mut t = Tally::default();
    for run in 0..runs {
        let percent = PERCENT[run as usize % PERCENT.len()];
        wait_room_pause();
        let marks = (a.console().len(), b.console().len());
        inject(a, percent)?;
        inject(b, percent)?;
        let (rc, out) = run_stress(a)?;
        t.injected += inject(a, 0)? + inject(b, 0)?;
        // 135: SIGBUS (a poisoned page touched at home); 137: SIGKILL (a page lost in the
        // shell ends the process there, and the home ends it the same way); either with the
        // lost page logged for this process.
        let (ca, cb) = (a.console(), b.console());
        let logs = [since(&ca, marks.0), since(&cb, marks.1)];
        t.count(judge(
            &format!("run {run} at {percent}%"),
            rc,
            &out,
            &want,
            &logs,
            &[LOST],
            true,
        )?);
        check_clean(&[a, b])?;
    }
    at_least_half_right("fail_elastic_install", t.right, runs)?;
    if t.injected == 0 {
        bail!("no install failure was injected: the test proved nothing");
    }
    // The run after them must move pages: not inside a pause for room they left.
    wait_room_pause();
    run_stretched(a, "stress", &STRESS, 4.0)?;
    check_clean(&[a, b])?;
    Ok(format!(
        "{runs} runs, {} install failures injected ({PERCENT:?}% per install): {} right, {} \
         stopped by a signal with the lost page logged, 0 wrong; a run after them is right",
        t.injected, t.right, t.stopped
    ))
}

/// `cargo xtask faults --runs N`: the long form, on its own pair of nodes.
/// `EOS_FAULT_POINTS` (a comma-separated list of point names, `install` for the page-install
/// failures) limits a long run to those points; unset, all of them run.
fn wanted(point: &str) -> bool {
    std::env::var("EOS_FAULT_POINTS").map_or(true, |v| v.split(',').any(|p| p.trim() == point))
}

pub fn long(runs: u32) -> Result<()> {
    let (_tree, c) = cluster::build(super::MEM_MIB)?;
    let mut vms = cluster::boot_mesh(
        &c,
        &[
            (1, "faults", super::MEM_MIB),
            (2, "faults", super::PEER_MEM_MIB),
        ],
    )?;
    let mut b = vms.pop().expect("two nodes");
    let mut a = vms.pop().expect("two nodes");
    cluster::wait_links(&mut a, &[2])?;
    let installs = if wanted("install") {
        install_failures(&mut a, &mut b, runs)
    } else {
        Ok("install: not asked for (EOS_FAULT_POINTS)".to_string())
    };
    let r = installs.and_then(|installs| {
        let allocs = if wanted("failslab") {
            alloc_failures(&mut a, &mut b, runs)?
        } else {
            "failslab: not asked for (EOS_FAULT_POINTS)".to_string()
        };
        Ok(format!(
            "{installs}\nFRAMES: {}\nALLOCS: {allocs}",
            frame_faults(&mut a, &mut b, runs)?
        ))
    });
    let trouble = cluster::poweroff_all([a, b]);
    let note = r?;
    if !trouble.is_empty() {
        bail!("kernel trouble: {trouble:?}");
    }
    println!("FAULTS: {note}");
    Ok(())
}

/// A push install that fails on the member while the process runs there (issue 25 item 3):
/// the member keeps the pages it installed before the failure, which the process may have
/// written already, and the home settles them as the member's (a `PushAck` for part of the
/// batch); before, the member took them back and a write made there in between was lost.
/// `away` rewrites 24 MiB on node2 for `rounds` rounds while node1 lowers its budget to
/// 1 MiB (so the home pushes what it holds to node2 under the running process) and node2
/// fails 20% of its page installs. Every page must read back right.
pub(super) fn push_install_partial(a: &mut Vm, b: &mut Vm, rounds: u32) -> Result<String> {
    let marks = (a.console().len(), b.console().len());
    // Away first (its pages pushed without failures), then the failures on node2.
    let started = a.sh(&format!(
        "away 24 2 {rounds} > /tmp/partial.out 2>&1 & echo $! > /tmp/partial.pid; \
         for i in $(seq 300); do grep -q ' away=1 ' /proc/$!/elastic 2>/dev/null && echo away-now && break; \
         sleep 0.1; done"
    ))?;
    if !started.contains("away-now") {
        let out = a.sh("sleep 1; cat /tmp/partial.out")?;
        bail!("push-partial: the process never ran on node2:\n{out}");
    }
    inject(b, 20)?;
    let out = a.sh("pid=$(cat /tmp/partial.pid); eosctl budget $pid 1; \
         while kill -0 $pid 2>/dev/null; do sleep 0.2; done; cat /tmp/partial.out");
    let injected = inject(b, 0)?;
    let out = out?;
    let (ca, cb) = (a.console(), b.console());
    let (la, lb) = (since(&ca, marks.0), since(&cb, marks.1));
    let partial = lb.matches("pages installed, the rest refused").count();
    let kept = la.matches("it installed the first").count();
    if !out.lines().any(|l| l == "RESULT away bad=0") || !out.contains("jumped=1") {
        bail!("push-partial: a page read back wrong, or the process did not run on node2 ({injected} install failures injected on node2):\n{out}");
    }
    if partial == 0 || kept == 0 {
        bail!(
            "push-partial: no push was installed in part ({injected} install failures injected, \
             {partial} partial installs on node2, {kept} settled at home): the test proved nothing:\n{out}"
        );
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "24 MiB rewritten {rounds} times on node2 while node1 pushed under a 1 MiB budget and \
         node2 failed {injected} page installs: {partial} batches installed in part and settled \
         so at home, every page right"
    ))
}

/// A kernel access to a page that cannot come home stops the process with SIGBUS and a log
/// line naming it. (A CI run of `failslab` saw rseq's SIGSEGV instead: the kernel's read of
/// the lost page only failed with EFAULT, and a write(2) from such a page would have returned
/// EFAULT and let the process run on.) `lostread` waits with most pages on node2 while every
/// page frame node1 receives is dropped, then writes its buffer to a file: the pull of the
/// first remote page the write reads gets no answer after every try.
pub(super) fn lost_page_kernel_access(a: &mut Vm, b: &mut Vm) -> Result<String> {
    const POINT: &str = "fail_elastic_frame_drop";
    const TIMES: u32 = 100_000;
    a.sh(
        "rm -f /tmp/lostread.go /tmp/lostread.sink; lostread 8 2 > /tmp/lostread.out 2>&1 & \
         echo $! > /tmp/lostread.pid",
    )?;
    let ready = cluster::poll(
        "lostread's pages on node2",
        Duration::from_secs(90),
        Duration::from_millis(300),
        || {
            let out = a.sh("cat /tmp/lostread.out")?;
            Ok(out.contains("lostread: ready").then_some(out))
        },
    )?;
    let pid = cluster::pid_in(a, "/tmp/lostread.pid")?;
    let mark = a.console().len();
    arm(a, POINT, 1, TIMES)?;
    let run = a.run(
        "touch /tmp/lostread.go; wait $(cat /tmp/lostread.pid); echo status=$?; \
         cat /tmp/lostread.out; rm -f /tmp/lostread.sink",
        Duration::from_secs(200),
    );
    // Disarmed whatever happened: the steps after need their page frames.
    let left = arm(a, POINT, 1, 0)?;
    let (_, out) = run?;
    let injected = u64::from(TIMES).saturating_sub(left);
    let console = a.console();
    let logs = [since(&console, mark)];
    // The pull's line (a push not acknowledged says "killing it" too, and is not this path).
    let cause = super::judge::cause_line(
        &logs,
        &["killing it with SIGBUS (the page stays there)"],
        pid,
    );
    if !out.contains("status=135") || out.contains("survived") || cause.is_none() {
        bail!(
            "a write(2) from a page that cannot come home must end the process with SIGBUS \
             and a log line naming pid {pid} ({injected} page frames dropped); it printed:\n{out}"
        );
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "{} pages on node2; with every page frame to node1 dropped ({injected} dropped), \
         write(2) of the buffer to a file ended the process with SIGBUS: `{}`",
        cluster::field::<u64>(&ready, "remote").unwrap_or(0),
        cause.unwrap_or("").trim()
    ))
}
