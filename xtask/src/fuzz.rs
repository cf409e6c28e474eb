//! `cargo xtask fuzz [--target T] [--runs N | --time S]`: the libFuzzer targets of eos-core
//! (eos-subsys/core/fuzz, docs/FUZZING.md) built with cargo-fuzz on the stable toolchain and
//! run one after the other, one process each; fails on any crash, timeout or out-of-memory.
//!
//! Stable works because nothing here needs a nightly flag: `cargo fuzz build -s none` (no
//! sanitizer: eos-core has no `unsafe`, so ASan would find nothing a panic does not) passes
//! only stable codegen options (`-Cpasses=sancov-module`, `-Cllvm-args=-sanitizer-coverage-*`,
//! `--cfg fuzzing`). libFuzzer itself is clang's prebuilt runtime when the system has one
//! (`libclang_rt.fuzzer`, Debian's libclang-rt-*-dev, which `cargo xtask setup` installs with
//! clang), else libfuzzer-sys compiles its bundled copy (about a minute of C++ on 2 cores).
//! The build goes to `$ELASTICOS_CACHE/fuzz-target`, outside the clone, so it is incremental
//! across clones as the kernel build is. Per-run output: out/fuzz/ (logs, fresh seeds, the corpus
//! a run grows); crashing inputs: eos-subsys/core/fuzz/artifacts/<target>/ (git-ignored, replayed by
//! the fuzz crate's tests).

use crate::util::{cache_dir, out_dir, project_root, run};
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The targets, in the order they run.
pub const TARGETS: [&str; 4] = ["frame", "handshake", "layout", "peer"];

/// Executions per target of the test suite's smoke step.
pub const SMOKE_RUNS: u64 = 25_000;

/// The cargo-fuzz release that `fuzz` installs when there is none.
const CARGO_FUZZ: &str = "cargo-fuzz@0.13.2";

/// Largest input libFuzzer makes: room for a Push or Jump with a page and some ranges.
const MAX_LEN: usize = 16 * 1024;

/// Seconds one input may take before libFuzzer reports a timeout.
const TIMEOUT_S: u32 = 10;

/// What `cargo xtask fuzz` was asked for.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Only this target (frame, handshake, layout, peer); default: all, one after the other
    #[arg(long, value_name = "T")]
    pub target: Option<String>,
    /// Executions per target (libFuzzer -runs) [default: 1000000]
    #[arg(long, value_name = "N", conflicts_with = "time_s")]
    pub runs: Option<u64>,
    /// Seconds per target instead (libFuzzer -max_total_time)
    #[arg(long = "time", value_name = "S")]
    pub time_s: Option<u64>,
    /// Compile libfuzzer-sys's bundled libFuzzer even if clang's prebuilt one is there
    #[arg(long)]
    pub bundled_libfuzzer: bool,
    /// What the test suite runs: fmt, clippy and tests of the fuzz crate, then every target
    /// for SMOKE_RUNS (25000) executions
    #[arg(long, conflicts_with_all = ["target", "runs", "time_s", "bundled_libfuzzer"])]
    pub smoke: bool,
}

/// How long each target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Runs(u64),
    Seconds(u64),
}

/// What one target's run did.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub execs: u64,
    pub exec_per_s: u64,
    pub secs: f64,
    /// Crashes, timeouts and out-of-memory reports (libFuzzer stops at the first one).
    pub crashes: u32,
    /// Coverage (edges) and features at the end.
    pub cov: u64,
    pub ft: u64,
}

pub fn fuzz(o: &Options) -> Result<()> {
    if o.smoke {
        return smoke().map(|note| println!("fuzz smoke: {note}"));
    }
    let targets: Vec<&str> = match &o.target {
        None => TARGETS.to_vec(),
        Some(t) => match TARGETS.iter().find(|x| *x == t) {
            Some(t) => vec![*t],
            None => bail!(
                "unknown fuzz target {t:?} (targets: {})",
                TARGETS.join(", ")
            ),
        },
    };
    let limit = match (o.runs, o.time_s) {
        (_, Some(s)) => Limit::Seconds(s),
        (n, None) => Limit::Runs(n.unwrap_or(1_000_000)),
    };
    let results = run_targets(&targets, limit, o.bundled_libfuzzer)?;
    report(&results)
}

/// The test suite's step: the fuzz crate formatted, lint-free and its tests passing (they
/// replay the corpus through the checks), then `SMOKE_RUNS` executions per target.
pub fn smoke() -> Result<String> {
    let start = Instant::now();
    let env = Env::new(false)?;
    env.cargo_fuzz_crate(&["fmt", "--all", "--", "--check"])?;
    env.cargo_fuzz_crate(&["clippy", "--all-targets", "--quiet", "--", "-D", "warnings"])?;
    let results = run_with(&env, &TARGETS, Limit::Runs(SMOKE_RUNS), true)?;
    report(&results)?;
    Ok(format!(
        "{}; {:.0} s with the build ({})",
        results
            .iter()
            .map(|(t, o)| format!("{t} {} exec/s", o.exec_per_s))
            .collect::<Vec<_>>()
            .join(", "),
        start.elapsed().as_secs_f64(),
        env.libfuzzer_name()
    ))
}

fn report(results: &[(&str, Outcome)]) -> Result<()> {
    println!("FUZZ RESULTS (target: executions, exec/s, seconds, coverage, crashes):");
    for (t, o) in results {
        println!(
            "  {t:10} {:>12} {:>8}/s {:>7.1} s  cov {} ft {}  crashes {}",
            o.execs, o.exec_per_s, o.secs, o.cov, o.ft, o.crashes
        );
    }
    let bad: Vec<&str> = results
        .iter()
        .filter(|(_, o)| o.crashes > 0)
        .map(|(t, _)| *t)
        .collect();
    if !bad.is_empty() {
        bail!(
            "crash in {} (input in eos-subsys/core/fuzz/artifacts/, log in out/fuzz/)",
            bad.join(", ")
        );
    }
    Ok(())
}

fn run_targets<'t>(
    targets: &[&'t str],
    limit: Limit,
    bundled: bool,
) -> Result<Vec<(&'t str, Outcome)>> {
    run_with(&Env::new(bundled)?, targets, limit, false)
}

/// The build environment: where cargo-fuzz builds, which libFuzzer it links.
struct Env {
    fuzz_dir: PathBuf,
    target_dir: PathBuf,
    libfuzzer: Option<PathBuf>,
}

impl Env {
    fn new(bundled: bool) -> Result<Self> {
        let have = Command::new(cargo())
            .args(["fuzz", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(have, Ok(s) if s.success()) {
            eprintln!("fuzz: installing {CARGO_FUZZ}");
            run(Command::new(cargo()).args(["install", "--locked", CARGO_FUZZ]))?;
        }
        Ok(Self {
            fuzz_dir: project_root().join("eos-subsys/core/fuzz"),
            target_dir: cache_dir().join("fuzz-target"),
            libfuzzer: if bundled { None } else { system_libfuzzer() },
        })
    }

    fn libfuzzer_name(&self) -> String {
        match &self.libfuzzer {
            Some(p) => format!("libFuzzer {}", p.display()),
            None => "libfuzzer-sys's bundled libFuzzer".into(),
        }
    }

    fn command(&self) -> Command {
        let mut c = Command::new(cargo());
        c.current_dir(project_root());
        match &self.libfuzzer {
            Some(p) => c.env("CUSTOM_LIBFUZZER_PATH", p),
            None => c.env_remove("CUSTOM_LIBFUZZER_PATH"),
        };
        c
    }

    /// `cargo <args>` in the fuzz crate (its own workspace), sharing the build directory.
    fn cargo_fuzz_crate(&self, args: &[&str]) -> Result<()> {
        let mut c = self.command();
        c.arg(args[0])
            .arg("--manifest-path")
            .arg(self.fuzz_dir.join("Cargo.toml"));
        if args[0] != "fmt" {
            c.arg("--target-dir").arg(&self.target_dir);
        }
        run(c.args(&args[1..]))
    }

    /// `cargo fuzz <sub> ...` with the options every call shares (the build must be the same
    /// for `build` and `run`, or `run` rebuilds).
    fn cargo_fuzz(&self, sub: &str) -> Command {
        let mut c = self.command();
        c.args(["fuzz", sub, "--sanitizer", "none", "--fuzz-dir"])
            .arg(&self.fuzz_dir)
            .arg("--target-dir")
            .arg(&self.target_dir);
        c
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// clang's prebuilt libFuzzer (`libclang_rt.fuzzer-x86_64.a`), the newest if several.
fn system_libfuzzer() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
        .flat_map(|llvm| {
            fs::read_dir(llvm.path().join("lib/clang"))
                .into_iter()
                .flatten()
        })
        .flatten()
        .map(|v| v.path().join("lib/linux/libclang_rt.fuzzer-x86_64.a"))
        .filter(|p| p.is_file())
        .collect();
    found.sort_by_key(|p| version_key(p));
    found.pop()
}

/// Numeric sort key of a path's version parts (llvm-9 < llvm-14).
fn version_key(p: &Path) -> Vec<u64> {
    p.to_string_lossy()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Builds, writes fresh seeds (running every test of the fuzz crate with `all_tests`), runs.
fn run_with<'t>(
    env: &Env,
    targets: &[&'t str],
    limit: Limit,
    all_tests: bool,
) -> Result<Vec<(&'t str, Outcome)>> {
    let start = Instant::now();
    let seeds = out_dir().join("fuzz/seeds");
    let mut test = env.command();
    test.args(["test", "--quiet", "--manifest-path"])
        .arg(env.fuzz_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&env.target_dir)
        .env("EOS_FUZZ_SEED_DIR", &seeds);
    if all_tests {
        test.args(["--", "--include-ignored"]);
    } else {
        test.args([
            "--test",
            "corpus",
            "--",
            "--ignored",
            "--exact",
            "write_seeds",
        ]);
    }
    run(&mut test).context("the fuzz crate's tests")?;
    // cargo-fuzz builds one target, or all of them.
    let mut build = env.cargo_fuzz("build");
    if let [t] = targets {
        build.arg(t);
    }
    run(&mut build).context("building the fuzz targets")?;
    eprintln!(
        "fuzz: built in {:.0} s with {}",
        start.elapsed().as_secs_f64(),
        env.libfuzzer_name()
    );
    let mut results = Vec::new();
    for &t in targets {
        results.push((t, run_one(env, t, limit)?));
    }
    Ok(results)
}

fn run_one(env: &Env, target: &str, limit: Limit) -> Result<Outcome> {
    let out = out_dir().join("fuzz");
    // A fresh corpus per run, from fresh seeds and the committed corpus; what it grows is not
    // kept.
    let grown = out.join("corpus").join(target);
    let _ = fs::remove_dir_all(&grown);
    fs::create_dir_all(&grown)?;
    let artifacts = env.fuzz_dir.join("artifacts").join(target);
    fs::create_dir_all(&artifacts)?;
    let log_path = out.join(format!("{target}.log"));
    let mut log = fs::File::create(&log_path)?;
    let limit_arg = match limit {
        Limit::Runs(n) => format!("-runs={n}"),
        Limit::Seconds(s) => format!("-max_total_time={s}"),
    };
    let mut c = env.cargo_fuzz("run");
    c.arg(target)
        .arg(&grown)
        .arg(out.join("seeds").join(target))
        .arg(env.fuzz_dir.join("corpus").join(target))
        .arg("--")
        .arg(limit_arg)
        .arg(format!("-max_len={MAX_LEN}"))
        .arg(format!("-timeout={TIMEOUT_S}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("fuzz: {target} ({limit:?}), log {}", log_path.display());
    let start = Instant::now();
    let mut child = c.spawn().context("cannot start cargo fuzz run")?;
    // libFuzzer writes to stderr; stdout carries cargo-fuzz's own notes. Both go to the log,
    // and the lines that matter to the terminal.
    let stdout = child.stdout.take().unwrap();
    let copier = std::thread::spawn(move || -> Vec<String> {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect()
    });
    let mut o = Outcome::default();
    let mut after_panic = false;
    for line in BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        writeln!(log, "{line}")?;
        if shows(&line) || after_panic {
            // The panic's message is on the line after "panicked at"; pages make it long.
            let cut = (0..=300.min(line.len()))
                .rev()
                .find(|&i| line.is_char_boundary(i))
                .unwrap_or(0);
            eprintln!("  {target}: {}", &line[..cut]);
        }
        after_panic = line.contains("panicked at");
        parse_line(&line, &mut o);
    }
    let status = child.wait()?;
    for line in copier.join().unwrap_or_default() {
        writeln!(log, "{line}")?;
        parse_line(&line, &mut o);
    }
    o.secs = start.elapsed().as_secs_f64();
    if o.exec_per_s == 0 || o.secs < 30.0 {
        // libFuzzer divides by whole seconds of its own: too coarse for a short run.
        o.exec_per_s = (o.execs as f64 / o.secs.max(0.001)) as u64;
    }
    if !status.success() && o.crashes == 0 {
        // Any other failure (the build, libFuzzer refusing an option) is an error as such.
        bail!(
            "fuzz target {target} failed ({status}) without a crash report: see {}",
            log_path.display()
        );
    }
    if let Limit::Runs(n) = limit {
        if o.crashes == 0 && o.execs < n {
            bail!(
                "fuzz target {target} stopped after {} of {n} executions",
                o.execs
            );
        }
    }
    Ok(o)
}

/// libFuzzer lines worth showing as they come: progress pulses, the end, any failure.
fn shows(line: &str) -> bool {
    [
        "pulse",
        "DONE",
        "ERROR",
        "SUMMARY",
        "ALARM",
        "panicked",
        "Test unit written",
        "error:",
        "error[",
    ]
    .iter()
    .any(|k| line.contains(k))
}

/// Accumulates what a libFuzzer output line tells.
fn parse_line(line: &str, o: &mut Outcome) {
    let num = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    if let Some(n) = num("stat::number_of_executed_units:") {
        o.execs = n;
    } else if let Some(n) = num("stat::average_exec_per_sec:") {
        o.exec_per_s = n;
    } else if line.starts_with('#') {
        // "#1048576 pulse  cov: 530 ft: 861 corp: ..."
        if let (Some(c), Some(f)) = (num(" cov:"), num(" ft:")) {
            (o.cov, o.ft) = (c, f);
        }
    }
    // "==PID== ERROR: libFuzzer: deadly signal" (a panic), "... timeout after 10 seconds",
    // "... out-of-memory (used: ...)": libFuzzer's one report of each failure.
    if line.starts_with("==") && line.contains("ERROR: libFuzzer") {
        o.crashes += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Cmd};
    use clap::Parser;

    fn parse(args: &[&str]) -> Options {
        match Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())) {
            Ok(Cli { cmd: Cmd::Fuzz(o) }) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn flags_fill_the_options() {
        let none = Options {
            target: None,
            runs: None,
            time_s: None,
            bundled_libfuzzer: false,
            smoke: false,
        };
        assert_eq!(parse(&["fuzz"]), none);
        assert_eq!(
            parse(&["fuzz", "--target", "frame", "--runs", "10000000"]),
            Options {
                target: Some("frame".into()),
                runs: Some(10_000_000),
                ..none.clone()
            }
        );
        assert_eq!(
            parse(&["fuzz", "--time", "60", "--bundled-libfuzzer"]),
            Options {
                time_s: Some(60),
                bundled_libfuzzer: true,
                ..none
            }
        );
        assert!(parse(&["fuzz", "--smoke"]).smoke);
        for bad in [
            &["fuzz", "--runs", "1", "--time", "1"][..],
            &["fuzz", "--smoke", "--runs", "1"],
            &["fuzz", "--runs", "many"],
        ] {
            assert!(
                Cli::try_parse_from(std::iter::once("xtask").chain(bad.iter().copied())).is_err()
            );
        }
    }

    #[test]
    fn libfuzzer_output_is_counted() {
        let mut o = Outcome::default();
        for l in [
            "#1048576\tpulse  cov: 530 ft: 861 corp: 190/60Kb lim: 4096 exec/s: 209715 rss: 28Mb",
            "#2000000\tDONE   cov: 534 ft: 866 corp: 193/62Kb lim: 7813 exec/s: 250000 rss: 28Mb",
            "stat::number_of_executed_units: 2000000",
            "stat::average_exec_per_sec:     250000",
        ] {
            parse_line(l, &mut o);
        }
        assert_eq!(
            (o.execs, o.exec_per_s, o.cov, o.ft, o.crashes),
            (2_000_000, 250_000, 534, 866, 0)
        );
        for l in [
            "==1234== ERROR: libFuzzer: deadly signal",
            "ALARM: working on the last Unit for 10 seconds",
            "==1234== ERROR: libFuzzer: timeout after 10 seconds",
        ] {
            parse_line(l, &mut o);
        }
        assert_eq!(o.crashes, 2);
    }

    #[test]
    fn versions_sort_numerically() {
        let mut v = [
            PathBuf::from("/usr/lib/llvm-14/lib/clang/14.0.6/x"),
            PathBuf::from("/usr/lib/llvm-9/lib/clang/9.0.1/x"),
        ];
        v.sort_by_key(|p| version_key(p));
        assert!(v[1].to_string_lossy().contains("llvm-14"));
    }
}
