//! `eosctl top`: a live view of this node's stretched processes and the shells it holds,
//! refreshed in place (from /sys/kernel/elastic/procs).

use std::collections::HashMap;
use std::fmt::Write;

/// One `key=value ...` line.
type Fields<'a> = HashMap<&'a str, &'a str>;

fn fields(line: &str) -> Fields<'_> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .collect()
}

fn num(f: &Fields<'_>, k: &str) -> u64 {
    f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Counters of one process at the last sample, for its rates.
#[derive(Clone, Copy, Default)]
pub struct Sample {
    pulls: u64,
    pushes: u64,
    jumps: u64,
}

/// Renders one refresh of `procs`; `before` holds each pid's counters `secs` ago and is
/// updated for the next refresh.
pub fn render(procs: &str, before: &mut HashMap<String, Sample>, secs: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7} {:<15} {:<5} {:>9} {:>9} {:<7} {:>8} {:>8} {:>7} {:>9}",
        "PID",
        "COMM",
        "WHERE",
        "LOCAL",
        "REMOTE",
        "NODES",
        "PULLS/s",
        "PUSHES/s",
        "JUMPS",
        "FAULT_us"
    );
    let mut now = HashMap::new();
    let mut shells = Vec::new();
    for line in procs.lines() {
        if line.starts_with("shell ") {
            shells.push(line);
            continue;
        }
        let f = fields(line);
        let Some(pid) = f.get("pid") else { continue };
        let s = Sample {
            pulls: num(&f, "pulls"),
            pushes: num(&f, "pushes"),
            jumps: num(&f, "jumps"),
        };
        let b = before.get(*pid).copied().unwrap_or(s);
        let rate = |n: u64, o: u64| {
            if secs > 0.0 {
                n.saturating_sub(o) as f64 / secs
            } else {
                0.0
            }
        };
        let _ = writeln!(
            out,
            "{:>7} {:<15} {:<5} {:>9} {:>9} {:<7} {:>8.1} {:>8.1} {:>7} {:>9}",
            pid,
            f.get("comm").unwrap_or(&"?"),
            if num(&f, "away") == 1 { "away" } else { "home" },
            num(&f, "local_pages"),
            num(&f, "remote_pages"),
            f.get("node").unwrap_or(&"-"),
            rate(s.pulls, b.pulls),
            rate(s.pushes, b.pushes),
            s.jumps,
            num(&f, "fault_p50_us"),
        );
        now.insert(pid.to_string(), s);
    }
    if !shells.is_empty() {
        let _ = writeln!(
            out,
            "\n{:>7} {:>9} {:>9} {:<8} {:>8} {:>10} {:>8}",
            "SHELL", "HOME", "HOME_PID", "RUNNING", "ARRIVALS", "SYSCALLS", "FETCHES"
        );
        for line in shells {
            let f = fields(line);
            let _ = writeln!(
                out,
                "{:>7} {:>9} {:>9} {:<8} {:>8} {:>10} {:>8}",
                num(&f, "pid"),
                num(&f, "home_node"),
                num(&f, "home_pid"),
                if num(&f, "running") == 1 { "yes" } else { "no" },
                num(&f, "arrivals"),
                num(&f, "syscalls"),
                num(&f, "fetches"),
            );
        }
    }
    *before = now;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "pid=87 comm=stress node=2 shell_pid=83 local_pages=1500 remote_pages=2596 \
        pulls=100 pushes=10 fault_p50_us=1791 away=0 jumps=3\n\
        shell home_node=1 home_pid=42 pid=90 running=1 arrivals=5 syscalls=7 fetches=11\n";
    const TWO: &str = "pid=87 comm=stress node=2 shell_pid=83 local_pages=1400 remote_pages=2696 \
        pulls=300 pushes=30 fault_p50_us=1800 away=1 jumps=4\n";

    #[test]
    fn rows_and_rates() {
        let mut before = HashMap::new();
        let first = render(ONE, &mut before, 1.0);
        let row = first.lines().nth(1).unwrap();
        assert!(
            row.contains("stress") && row.contains("home") && row.contains("2596"),
            "{row}"
        );
        assert!(
            row.contains("     0.0"),
            "no rate on the first sample: {row}"
        );
        assert!(first.contains("SHELL") && first.lines().last().unwrap().contains("yes"));
        let second = render(TWO, &mut before, 2.0);
        let row = second.lines().nth(1).unwrap();
        assert!(
            row.contains("away") && row.contains("100.0") && row.contains("10.0"),
            "{row}"
        );
        assert!(!second.contains("SHELL"));
    }
}
