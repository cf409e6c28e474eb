//! How a run of a fault or kill loop is judged, the same way in every loop: a run is right
//! (the host's result, and no line saying a page read back wrong), or stopped by SIGBUS or
//! SIGKILL with a kernel log line that gives the cause *and names this process*; anything
//! else fails the step. A loop whose runs are mostly stopped tests the stop, not the
//! recovery: `at_least_half_right` holds a fault point to its recoveries.

use anyhow::{bail, Result};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Right,
    Stopped,
}

/// What the stress program prints for a page that reads back wrong.
const CORRUPT: &str = "corrupt";

/// The pid a run printed first (`EOSPID N`, from `sh -c 'echo EOSPID $$; exec ...'`).
pub(super) fn pid_of(out: &str) -> Option<u32> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("EOSPID "))
        .and_then(|p| p.trim().parse().ok())
}

/// Whether `line` names process `pid` (the kernel's lines say `pid P ...` or `pid P:`).
fn names(line: &str, pid: u32) -> bool {
    let key = format!("pid {pid}");
    line.match_indices(&key).any(|(i, _)| {
        !line[i + key.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// A log line of `logs` (the consoles' text since the run began) that holds one of `causes`
/// and names `pid`.
pub(super) fn cause_line<'a>(logs: &[&'a str], causes: &[&str], pid: u32) -> Option<&'a str> {
    logs.iter()
        .flat_map(|l| l.lines())
        .find(|l| causes.iter().any(|c| l.contains(c)) && names(l, pid))
}

/// Judges run `what`: exit status `rc`, output `out`, the host's result line `want`.
/// `stop_ok`: whether a stop may be accepted at all (e.g. only after a node was killed).
pub(super) fn judge(
    what: &str,
    rc: i32,
    out: &str,
    want: &str,
    logs: &[&str],
    causes: &[&str],
    stop_ok: bool,
) -> Result<Outcome> {
    if let Some(l) = out.lines().find(|l| l.contains(CORRUPT)) {
        bail!("{what}: a page read back wrong (exit {rc}): `{l}`; VM printed:\n{out}");
    }
    let Some(pid) = pid_of(out) else {
        bail!("{what}: the run printed no EOSPID line (exit {rc}); VM printed:\n{out}");
    };
    match rc {
        0 if out.lines().any(|l| l == want) => Ok(Outcome::Right),
        135 | 137 if stop_ok => match cause_line(logs, causes, pid) {
            Some(_) => Ok(Outcome::Stopped),
            None => bail!(
                "{what}: exit {rc} and no log line gives a cause ({causes:?}) naming pid {pid}; \
                 VM printed:\n{out}"
            ),
        },
        _ => bail!("{what}: exit {rc}, host says `{want}`; VM printed:\n{out}"),
    }
}

/// Fails unless at least half of `runs` runs of `what` ended right.
pub(super) fn at_least_half_right(what: &str, right: u32, runs: u32) -> Result<()> {
    if right * 2 < runs {
        bail!("{what}: only {right} of {runs} runs ended right (at least half must)");
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    const WANT: &str = "RESULT stress checksum=1";

    #[test]
    fn every_run_is_judged() {
        let ok = format!("EOSPID 42\n{WANT}\n");
        let logs = [
            "[ 1.0] eos: pid 42 (stress): page 0x1000 x could not be installed; its data is lost\n",
        ];
        let causes = ["its data is lost"];
        assert_eq!(
            judge("r", 0, &ok, WANT, &[], &causes, false).unwrap(),
            Outcome::Right
        );
        // A stop with this process's cause logged.
        let stop = "EOSPID 42\n";
        assert_eq!(
            judge("r", 135, stop, WANT, &logs, &causes, true).unwrap(),
            Outcome::Stopped
        );
        // ... but not where no stop may be accepted,
        assert!(judge("r", 135, stop, WANT, &logs, &causes, false).is_err());
        // nor with another process's line (pid 4 and pid 420 are not pid 42),
        let other = [
            "eos: pid 420 (stress): its data is lost\n",
            "eos: pid 4: its data is lost\n",
        ];
        assert!(judge("r", 135, stop, WANT, &other, &causes, true).is_err());
        // nor after a wrong value was printed, even if the run then ended "right".
        let corrupt = format!("EOSPID 42\nstress: page 3 version 2 corrupt (holds 1/2)\n{WANT}\n");
        assert!(judge("r", 0, &corrupt, WANT, &[], &causes, true).is_err());
        assert!(judge("r", 135, &corrupt, WANT, &logs, &causes, true).is_err());
        // A wrong result, or no pid, fails.
        assert!(judge(
            "r",
            0,
            "EOSPID 42\nRESULT stress checksum=2\n",
            WANT,
            &[],
            &causes,
            true
        )
        .is_err());
        assert!(judge("r", 0, WANT, WANT, &[], &causes, true).is_err());
        assert!(at_least_half_right("p", 1, 2).is_ok());
        assert!(at_least_half_right("p", 1, 3).is_err());
    }
}
