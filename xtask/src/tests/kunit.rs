//! The KUnit boot: one VM runs the in-kernel suites during boot; its console's KTAP decides.

use crate::cluster::check_clean;
use crate::vm::Cluster;
use anyhow::{bail, Result};

/// Strips the printk timestamp.
fn strip_time(line: &str) -> &str {
    match (line.starts_with('['), line.find("] ")) {
        (true, Some(i)) => &line[i + 2..],
        _ => line,
    }
}

/// KUnit results from a console log.
#[derive(Debug, Default, PartialEq)]
pub struct Ktap {
    /// (suite, ok) for each top-level suite.
    pub suites: Vec<(String, bool)>,
    /// Test cases passed, failed, skipped (first nesting level).
    pub pass: usize,
    /// See `pass`.
    pub fail: usize,
    /// See `pass`.
    pub skip: usize,
}

/// Parses KTAP as printed on the console: suites at column 0, their cases indented 4.
pub fn parse_ktap(console: &str) -> Ktap {
    let mut k = Ktap::default();
    for raw in console.lines() {
        let l = strip_time(raw);
        let (indent, rest) = (l.len() - l.trim_start().len(), l.trim_start());
        let (ok, tail) = if let Some(t) = rest.strip_prefix("not ok ") {
            (false, t)
        } else if let Some(t) = rest.strip_prefix("ok ") {
            (true, t)
        } else {
            continue;
        };
        let mut words = tail.splitn(2, ' ');
        if words.next().and_then(|n| n.parse::<u32>().ok()).is_none() {
            continue;
        }
        let name = words.next().unwrap_or("").to_string();
        match indent {
            0 => k
                .suites
                .push((name.split(" #").next().unwrap_or("").to_string(), ok)),
            4 if name.contains("# SKIP") => k.skip += 1,
            4 if ok => k.pass += 1,
            4 => k.fail += 1,
            _ => {}
        }
    }
    k
}

pub(super) fn kunit(cluster: &Cluster) -> Result<String> {
    let vm = cluster.boot(1, "kunit", true)?;
    let k = parse_ktap(&vm.console());
    check_clean(&[&vm])?;
    let ours = k.suites.iter().find(|(n, _)| n == "elasticos");
    match ours {
        None => bail!(
            "suite elasticos did not run (log: {})",
            vm.log_path.display()
        ),
        Some((_, false)) => bail!("suite elasticos failed (log: {})", vm.log_path.display()),
        _ => {}
    }
    if k.fail > 0 || k.suites.iter().any(|(_, ok)| !ok) || k.pass == 0 {
        bail!(
            "KUnit: {} failed: {:?} (log: {})",
            k.fail,
            k.suites,
            vm.log_path.display()
        );
    }
    vm.poweroff();
    Ok(format!(
        "{} suites, {} passed, {} skipped, 0 failed",
        k.suites.len(),
        k.pass,
        k.skip
    ))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn ktap_counts_suites_and_cases() {
        let log = "[    1.0] KTAP version 1\n[    1.0] 1..2\n[    1.1]     # Subtest: elasticos\n\
                   [    1.1]     ok 1 a\n[    1.1]     not ok 2 b\n[    1.1]     ok 3 c # SKIP no\n\
                   [    1.2] not ok 1 elasticos\n[    1.3]         ok 1 nested\n[    1.4] ok 2 other\n";
        let k = parse_ktap(log);
        assert_eq!(
            k.suites,
            vec![("elasticos".into(), false), ("other".into(), true)]
        );
        assert_eq!((k.pass, k.fail, k.skip), (1, 1, 1));
    }
}
