//! `cargo xtask <command>`: every build, VM and test step of ElasticOS.
//!
//! ```text
//! setup            install what a fresh Debian 12 machine lacks (packages, rust-src, bindgen)
//! kernel           patch the pinned tree and build bzImage incrementally (cache: ~/.cache/elasticos)
//! image            build the guest initramfs (busybox, /init, eosctl, test tools)
//! run [--workload W] [--footprint MiB] [--mem MiB]
//!                  the main job: two VMs, W (default lsearch) at 1.5x node1's memory stretched
//!                  across them, result checked against the host, ElasticOS statistics
//! vm [--nodes N] [--mem MiB] [--peer-mem MiB]   boot N nodes, node1's console is yours
//! test [--host-only]           every test: host, KUnit, two-VM; ends with a summary line
//! faults [--runs N]             the fault-injection loop on its own two nodes
//! sysfuzz [--calls N] [--seed S] the in-VM syscall fuzzer on its own two nodes
//! peerkill [--runs N]           node2 killed at random moments of stretched runs
//! deb              build the installable .deb kernel packages into out/
//! bench [--quick] [--reps N] [--mem MiB] [--local MiB] [--cap SECS] [--write-docs]
//!                                                workloads under every configuration
//! fuzz [--target T] [--runs N | --time S]       libFuzzer on eos-core (docs/FUZZING.md)
//! ```
//!
//! `cargo xtask <command> --help` lists each command's options and defaults.
//!
//! Files: `cluster.rs` boots nodes, joins them and parses what their consoles print (shared
//! by every command below); `vm.rs` drives one QEMU VM; `run.rs` is `run` and `vm`;
//! `tests/` is `test`, one file per primitive; `bench.rs`, `kernel.rs`, `image.rs` the rest.

mod bench;
mod cluster;
mod debian;
mod fuzz;
mod image;
mod kernel;
mod package;
mod run;
mod tests;
mod util;
mod vm;

use anyhow::Result;
use clap::{Parser, Subcommand};

const SETUP_PACKAGES: &str = "linux-source-6.12 qemu-system-x86 busybox-static flex bison bc \
    libelf-dev libssl-dev clang llvm lld libclang-dev cpio debhelper rsync kmod dpkg-dev \
    nbd-server nbd-client gcc libc6-dev pkg-config debootstrap";

/// What a command that builds the kernel or boots VMs needs, and how to tell it is there.
const NEEDED: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "command -v qemu-system-x86_64"),
    ("bindgen", "command -v bindgen"),
    (
        "the kernel source",
        "test -f /usr/src/linux-source-6.12.tar.xz",
    ),
    ("busybox", "command -v busybox"),
    ("nbd-server", "command -v nbd-server"),
    ("clang", "command -v clang"),
    ("debootstrap", "command -v debootstrap"),
    ("pkg-config", "command -v pkg-config"),
    (
        "rust-src",
        "rustup component list --installed 2>/dev/null | grep -q rust-src",
    ),
];

/// The set-up the README's two commands do themselves: if anything is missing, install it
/// (as root), or stop with one line saying what to run.
fn ensure_setup() -> Result<()> {
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(_, check)| util::sh(&format!("{check} >/dev/null 2>&1")).is_err())
        .map(|(what, _)| *what)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        eprintln!(
            "xtask: this machine lacks {}: run `sudo cargo xtask setup` once",
            missing.join(", ")
        );
        std::process::exit(2);
    }
    eprintln!(
        "xtask: setting up this machine first (missing: {}); about 5 minutes",
        missing.join(", ")
    );
    setup()
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn setup() -> Result<()> {
    util::sh(&format!(
        "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q {SETUP_PACKAGES}"
    ))?;
    // The Debian nbd-server package starts a daemon we do not want on the host.
    let _ = util::sh("systemctl disable --now nbd-server >/dev/null 2>&1");
    util::sh("rustup component add rust-src")?;
    if util::sh("bindgen --version >/dev/null 2>&1").is_err() {
        util::sh("cargo install --locked bindgen-cli@0.73.2")?;
    }
    Ok(())
}

/// Build, VM and test driver for ElasticOS. Environment: ELASTICOS_CACHE (kernel build cache,
/// default ~/.cache/elasticos), ELASTICOS_ACCEL=kvm|tcg, ELASTICOS_CMD_TIMEOUT (vm),
/// EOS_ONLY (test).
#[derive(Parser, Debug)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug, PartialEq, Eq)]
enum Cmd {
    /// Install what a fresh Debian 12 machine lacks (packages, rust-src, bindgen)
    Setup,
    /// Patch the pinned tree and build bzImage incrementally (cache: $ELASTICOS_CACHE)
    Kernel,
    /// Build the guest initramfs (busybox, /init, eosctl, test tools); prints its path
    Image,
    /// The main job: two VMs, a workload at 1.5x node1's memory stretched across them, its
    /// result checked against the host, ElasticOS statistics
    Run {
        /// Workload to run (a program in workloads/)
        #[arg(long, default_value = "lsearch", value_name = "W")]
        workload: String,
        /// Its footprint, MiB (node2 gets twice that plus 256)
        #[arg(long, default_value_t = 384, value_name = "MiB")]
        footprint: u32,
        /// Memory of node1, MiB
        #[arg(long, default_value_t = 256, value_name = "MiB")]
        mem: u32,
        /// Run this program of yours instead of a workload (its folder is shared into the
        /// nodes); the arguments after it are its own. Its output must match the host's.
        #[arg(long, value_name = "PATH", num_args = 1.., allow_hyphen_values = true)]
        program: Option<Vec<String>>,
        /// With --program: its local memory budget on node1, MiB
        #[arg(long, value_name = "MiB")]
        budget: Option<u32>,
    },
    /// Boot N configured nodes; your stdin goes to node1's shell (each command bounded by
    /// $ELASTICOS_CMD_TIMEOUT seconds, default 3600)
    Vm {
        /// Number of nodes
        #[arg(long, default_value_t = 2, value_name = "N")]
        nodes: usize,
        /// Memory of node1, MiB
        #[arg(long, default_value_t = 256, value_name = "MiB")]
        mem: u32,
        /// Memory of every other node, MiB
        #[arg(long, default_value_t = 512, value_name = "MiB")]
        peer_mem: u32,
        /// A host folder every node mounts at /mnt/host (your own programs and data)
        #[arg(long, value_name = "DIR")]
        share: Option<std::path::PathBuf>,
    },
    /// Every test of the test tier: host, KUnit, two-VM, bench --quick, the Debian guest; ends
    /// with the time table and a summary line ($EOS_ONLY=id,... runs only those steps and the
    /// steps they need, for development; `--list` shows the ids)
    Test {
        /// Only the host steps: no kernel build, no VM
        #[arg(long)]
        host_only: bool,
        /// Also the long forms (fault loops, peer kills, sysfuzz, ping-pong, the whole Debian
        /// test): hours, not minutes
        #[arg(long)]
        full: bool,
        /// Print the steps (id, tier, limit, title) and run nothing
        #[arg(long)]
        list: bool,
    },
    /// The fault-injection loop on its own pair of nodes: the stress program stretched under
    /// injected page-install failures (the test command runs 3 runs)
    Faults {
        /// Number of runs
        #[arg(long, default_value_t = 20, value_name = "N")]
        runs: u32,
    },
    /// The peer-kill loop on its own pair of nodes: node2 killed at a random moment of each
    /// stretched stress run on node1 (the test command runs 2 runs)
    Peerkill {
        /// Number of runs
        #[arg(long, default_value_t = 20, value_name = "N")]
        runs: u32,
    },
    /// The in-VM syscall fuzzer on its own pair of nodes: root and an unprivileged user each
    /// make N random elastic syscalls, sysfs writes and /proc reads while their victims run
    /// stretched (the test command runs 50,000 each)
    Sysfuzz {
        /// Calls per fuzzer
        #[arg(long, default_value_t = 1_000_000, value_name = "N")]
        calls: u64,
        /// Seed of the first fuzzer (the second uses SEED+1)
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Build the installable .deb packages into out/: the kernel's and elasticos-tools
    Deb,
    /// A real Debian 12 guest: our packages installed with dpkg into a debootstrap root, two
    /// VMs booted through them, nodes up by systemd, unmodified Debian programs stretched
    /// (python3, sort, perl, sqlite3) and checked against one node (the test command runs
    /// --small)
    Debian {
        /// One program (python3) and the manual pages
        #[arg(long)]
        small: bool,
    },
    /// The workloads under every configuration (limit, swap, zram, NBD, ElasticOS), plus
    /// micro-benchmarks
    Bench(bench::Options),
    /// The table and plots of a bench run again, from its rows (out/bench/results.csv or a
    /// copy): writes out/bench/time.svg and out/bench/speedup.svg, prints the table
    BenchPlots {
        /// The rows (a bench's results.csv)
        #[arg(value_name = "CSV")]
        csv: std::path::PathBuf,
    },
    /// Coverage-guided fuzzing of eos-core (cargo-fuzz, stable toolchain): each target for N
    /// executions; fails on any crash or timeout
    Fuzz(fuzz::Options),
}

fn main() -> Result<()> {
    let cmd = Cli::parse().cmd;
    if !matches!(
        cmd,
        Cmd::Setup
            | Cmd::Fuzz(_)
            | Cmd::BenchPlots { .. }
            | Cmd::Test {
                host_only: true,
                ..
            }
            | Cmd::Test { list: true, .. }
    ) {
        ensure_setup()?;
    }
    match cmd {
        Cmd::Setup => setup(),
        Cmd::Kernel => kernel::build().map(|_| ()),
        Cmd::Image => image::build().map(|p| println!("{}", p.display())),
        Cmd::Run {
            mem,
            program: Some(p),
            budget,
            ..
        } => run::user_program(mem, budget, std::path::Path::new(&p[0]), &p[1..]),
        Cmd::Run {
            workload,
            footprint,
            mem,
            ..
        } => run::main_job(mem, &workload, footprint),
        Cmd::Vm {
            nodes,
            mem,
            peer_mem,
            share,
        } => run::interactive(nodes, mem, peer_mem, share),
        Cmd::Test { list: true, .. } => {
            tests::list();
            Ok(())
        }
        Cmd::Test {
            host_only, full, ..
        } => tests::all(&tests::Selection {
            full,
            host_only,
            only: std::env::var("EOS_ONLY")
                .ok()
                .map(|v| v.split(',').map(|w| w.trim().to_string()).collect()),
        }),
        Cmd::Faults { runs } => tests::faults(runs),
        Cmd::Sysfuzz { calls, seed } => tests::sysfuzz(calls, seed),
        Cmd::Peerkill { runs } => tests::peerkill(runs),
        Cmd::Deb => kernel::deb(),
        Cmd::Debian { small } => {
            println!("DEBIAN: {}", debian::run_all(small)?);
            Ok(())
        }
        Cmd::Bench(opts) => bench::bench(&opts),
        Cmd::BenchPlots { csv } => bench::plots_from(&csv),
        Cmd::Fuzz(opts) => fuzz::fuzz(&opts),
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cmd {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .cmd
    }

    #[test]
    fn every_documented_invocation_parses() {
        assert_eq!(parse(&["setup"]), Cmd::Setup);
        assert_eq!(parse(&["kernel"]), Cmd::Kernel);
        assert_eq!(parse(&["image"]), Cmd::Image);
        assert_eq!(parse(&["deb"]), Cmd::Deb);
        let test = |host_only, full, list| Cmd::Test {
            host_only,
            full,
            list,
        };
        assert_eq!(parse(&["test"]), test(false, false, false));
        assert_eq!(parse(&["test", "--host-only"]), test(true, false, false));
        assert_eq!(parse(&["test", "--full"]), test(false, true, false));
        assert_eq!(parse(&["test", "--list"]), test(false, false, true));
        let run = |workload: &str, footprint, mem| Cmd::Run {
            workload: workload.into(),
            footprint,
            mem,
            program: None,
            budget: None,
        };
        assert_eq!(parse(&["run"]), run("lsearch", 384, 256));
        assert_eq!(
            parse(&["run", "--workload", "bsort"]),
            run("bsort", 384, 256)
        );
        assert_eq!(
            parse(&[
                "run",
                "--workload",
                "dfs",
                "--footprint",
                "48",
                "--mem",
                "128"
            ]),
            run("dfs", 48, 128)
        );
        let vm = |nodes, mem, peer_mem| Cmd::Vm {
            nodes,
            mem,
            peer_mem,
            share: None,
        };
        assert_eq!(parse(&["vm"]), vm(2, 256, 512));
        assert_eq!(
            parse(&["vm", "--nodes", "2", "--mem", "256", "--peer-mem", "512"]),
            vm(2, 256, 512)
        );
        assert_eq!(parse(&["vm", "--nodes", "3"]), vm(3, 256, 512));
        assert_eq!(
            parse(&["vm", "--share", "/tmp/x"]),
            Cmd::Vm {
                nodes: 2,
                mem: 256,
                peer_mem: 512,
                share: Some("/tmp/x".into()),
            }
        );
        assert_eq!(
            parse(&["run", "--budget", "8", "--program", "/tmp/p", "-n", "3"]),
            Cmd::Run {
                workload: "lsearch".into(),
                footprint: 384,
                mem: 256,
                program: Some(vec!["/tmp/p".into(), "-n".into(), "3".into()]),
                budget: Some(8),
            }
        );
    }

    #[test]
    fn bench_flags_fill_the_options() {
        let defaults = bench::Options {
            quick: false,
            reps: 3,
            mem: 192,
            local: None,
            cap_s: 240,
            write_docs: false,
            micro: false,
            only: None,
            configs: None,
            footprint: None,
        };
        assert_eq!(parse(&["bench"]), Cmd::Bench(defaults));
        assert_eq!(
            parse(&["bench", "--only", "bsort,lsearch"]),
            Cmd::Bench(bench::Options {
                only: Some(bench::WorkloadSet(0b1010)),
                ..defaults
            })
        );
        assert_eq!(
            parse(&["bench", "--configs", "eos-jump,nbd-swap"]),
            Cmd::Bench(bench::Options {
                configs: Some(bench::ConfigSet(0b10_1001)),
                ..defaults
            })
        );
        assert_eq!(
            parse(&["bench", "--micro"]),
            Cmd::Bench(bench::Options {
                micro: true,
                ..defaults
            })
        );
        assert_eq!(
            parse(&["bench", "--quick"]),
            Cmd::Bench(bench::Options {
                quick: true,
                ..defaults
            })
        );
        assert_eq!(
            parse(&[
                "bench",
                "--reps",
                "1",
                "--mem",
                "128",
                "--local",
                "8",
                "--cap",
                "60",
                "--write-docs"
            ]),
            Cmd::Bench(bench::Options {
                reps: 1,
                mem: 128,
                local: Some(8),
                cap_s: 60,
                write_docs: true,
                ..defaults
            })
        );
    }

    #[test]
    fn bad_numbers_and_unknown_commands_are_refused() {
        for args in [
            &["vm", "--mem"][..],
            &["vm", "--mem", "lots"],
            &["bench", "--reps", "-1"],
            &["frobnicate"],
        ] {
            assert!(
                Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).is_err(),
                "{args:?}"
            );
        }
        Cli::command().debug_assert();
    }
}
