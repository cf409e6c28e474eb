//! QEMU VMs of our kernel, joined on one private L2 network, driven over their serial console.
//!
//! Every VM's console goes to a log file and is scanned for kernel trouble ("BUG:", "Oops",
//! "WARNING:", "panic", hung tasks, lockups); a test fails if any VM printed one. The guest's
//! /init (qemu/init) gives the harness a shell on the console, so a test runs commands in a VM
//! and reads their output and exit status.

use anyhow::{bail, Context, Result};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

thread_local! {
    /// End of the running test step's time limit: no command waits past it (see `limit_to`).
    static STEP_DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Caps every VM command of this thread at `deadline` (a test step's limit), or lifts the cap.
pub fn limit_to(deadline: Option<Instant>) {
    STEP_DEADLINE.with(|d| d.set(deadline));
}

/// Runs `f` without the step deadline: for clean-up and diagnosis after a step ran out of
/// time, which must still get their own timeouts.
pub fn unlimited<T>(f: impl FnOnce() -> T) -> T {
    let saved = STEP_DEADLINE.with(|d| d.replace(None));
    let r = f();
    limit_to(saved);
    r
}

/// `timeout`, cut short by the step deadline; `true` if the deadline is what decides.
fn capped(timeout: Duration) -> (Duration, bool) {
    match STEP_DEADLINE.with(Cell::get) {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left < timeout {
                (left, true)
            } else {
                (timeout, false)
            }
        }
        None => (timeout, false),
    }
}

/// Lines of each console shown when a command times out.
const TAIL_LINES: usize = 40;

/// ElasticOS port in the guests.
pub const PORT: u16 = 7077;

/// Guest address of node `id` (1-based).
pub fn ip(id: usize) -> String {
    format!("10.0.2.{}", 10 + id)
}

/// Lines that mean the kernel is in trouble.
const TROUBLE: &[&str] = &[
    "BUG:",
    "Oops",
    "WARNING:",
    "panic",
    "blocked for more than",
    "soft lockup",
    "hard LOCKUP",
    "rcu_sched self-detected stall",
    "RCU Stall",
    "general protection fault",
    // qemu/init: the console shell died (the harness's commands would go nowhere).
    "EOS-SHELL-RESTART status",
    // The initramfs did not fit in the VM's memory: a file left half-written (its program
    // refused by exec with ETXTBSY, as the bench's `dfs` was on VMs of 128 MiB).
    "Initramfs unpacking failed",
];

/// How the VMs run: KVM where it works, else QEMU's software emulation (TCG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl Accel {
    /// `ELASTICOS_ACCEL=kvm|tcg`, else KVM when /dev/kvm is a VMX/SVM KVM (not, e.g., the
    /// paravirtual kvm_pvm of nested sandboxes, which cannot run a stock kernel).
    pub fn detect() -> Self {
        match std::env::var("ELASTICOS_ACCEL").as_deref() {
            Ok("kvm") => return Self::Kvm,
            Ok("tcg") => return Self::Tcg,
            _ => {}
        }
        let kvm_dev = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        let real = Path::new("/sys/module/kvm_intel").exists()
            || Path::new("/sys/module/kvm_amd").exists();
        let pvm = Path::new("/sys/module/kvm_pvm").exists();
        if kvm_dev && real && !pvm {
            Self::Kvm
        } else {
            Self::Tcg
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Self::Kvm => &["-enable-kvm", "-cpu", "host"],
            Self::Tcg => &["-accel", "tcg", "-cpu", "max"],
        }
    }
}

/// How a node boots: kernel, initrd, command line, and the console line that says it is up.
#[derive(Clone, Copy)]
pub struct Boot<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub append: &'a str,
    pub ready: &'a str,
    pub timeout_s: u64,
}

/// What the VMs of one run share: kernel, image, network and log folder.
#[derive(Clone)]
pub struct Cluster {
    kernel: PathBuf,
    initrd: PathBuf,
    logdir: PathBuf,
    net_port: u16,
    accel: Accel,
    /// Memory of each VM in MiB.
    pub mem_mib: u32,
    /// Consoles of the VMs booted so far, so that a timeout can show all of them.
    consoles: Consoles,
    /// A host folder every node of ours mounts at /mnt/host (virtio-9p), if set.
    share: Option<PathBuf>,
}

type Shared = Arc<(Mutex<Console>, Condvar)>;
type Consoles = Arc<Mutex<Vec<(String, Weak<(Mutex<Console>, Condvar)>)>>>;

impl Cluster {
    /// A cluster whose console logs go to `logdir`.
    pub fn new(kernel: PathBuf, initrd: PathBuf, logdir: PathBuf, mem_mib: u32) -> Result<Self> {
        std::fs::create_dir_all(&logdir)?;
        // One multicast group per run (a hub all VMs join), so concurrent runs do not mix.
        let net_port = 20000 + (std::process::id() % 20000) as u16;
        let accel = Accel::detect();
        Ok(Self {
            kernel,
            initrd,
            logdir,
            net_port,
            accel,
            mem_mib,
            consoles: Consoles::default(),
            share: None,
        })
    }

    /// Every node booted from now on mounts host folder `dir` at /mnt/host (read-write,
    /// virtio-9p), so that a user's own programs and data can run there.
    pub fn set_share(&mut self, dir: PathBuf) {
        self.share = Some(dir);
    }

    /// The accelerator in use.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The same cluster on a network hub of its own (`k` > 0: one per configuration of a
    /// benchmark, so one pair's traffic does not reach the others' VMs); consoles stay shared.
    pub fn on_hub(&self, k: u16) -> Cluster {
        let mut c = self.clone();
        c.net_port = self.net_port.wrapping_add(20_000 + k);
        c
    }

    /// UDP port of the VMs' shared network (a multicast hub on 230.0.0.1 over loopback).
    pub fn net_port(&self) -> u16 {
        self.net_port
    }

    /// Boots node `id` (1-based) and waits for its console shell. `kunit` runs the built-in
    /// KUnit suites during boot; `tag` names the log file.
    pub fn boot(&self, id: usize, tag: &str, kunit: bool) -> Result<Vm> {
        self.start(id, tag, kunit, self.mem_mib, &[])
    }

    /// Boots node `id` with `mem_mib` of memory and extra QEMU arguments (e.g. a disk).
    pub fn boot_with(&self, id: usize, tag: &str, mem_mib: u32, extra: &[&str]) -> Result<Vm> {
        self.start(id, tag, false, mem_mib, extra)
    }

    fn start(&self, id: usize, tag: &str, kunit: bool, mem_mib: u32, extra: &[&str]) -> Result<Vm> {
        let name = format!("node{id}");
        let mut append = format!(
            // no_timer_check: under emulation on a loaded host the early IO-APIC timer check
            // can fail and panic the boot ("IO-APIC + timer doesn't work"), as seen in a loop.
            "console=ttyS0 panic=-1 no_timer_check eos.ip={}/24 eos.name={name}",
            ip(id)
        );
        if !kunit {
            append.push_str(" kunit.enable=0");
        }
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(dir) = &self.share {
            append.push_str(" eos.share=eoshost");
            extra.push("-virtfs".into());
            extra.push(format!(
                "local,path={},mount_tag=eoshost,security_model=none,id=eoshost",
                // QEMU's option syntax: a comma in a value is written twice.
                dir.display().to_string().replace(',', ",,")
            ));
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let boot = Boot {
            kernel: &self.kernel,
            initrd: &self.initrd,
            append: &append,
            ready: "EOS-READY",
            timeout_s: if kunit { 300 } else { 120 },
        };
        self.boot_guest(id, tag, mem_mib, &extra, &boot)
    }

    /// Boots node `id` of any system (`boot`: its kernel, initrd, command line and the line
    /// that says it is ready), with `extra` QEMU arguments (its root disk). The network, the
    /// console protocol (`Vm::run`) and the logs are those of our own image's nodes.
    pub fn boot_guest(
        &self,
        id: usize,
        tag: &str,
        mem_mib: u32,
        extra: &[&str],
        boot: &Boot<'_>,
    ) -> Result<Vm> {
        let Boot {
            kernel,
            initrd,
            append,
            ready,
            timeout_s,
        } = *boot;
        let name = format!("node{id}");
        let log_path = self.logdir.join(format!("{tag}-{name}.log"));
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(self.accel.args())
            .args(["-m", &mem_mib.to_string(), "-smp", "1"])
            .args(extra)
            .args([
                "-nodefaults",
                "-no-reboot",
                "-display",
                "none",
                "-serial",
                "stdio",
            ])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", append])
            .args([
                "-netdev",
                &format!(
                    "socket,id=n0,mcast=230.0.0.1:{},localaddr=127.0.0.1",
                    self.net_port
                ),
                "-device",
                &format!("virtio-net-pci,netdev=n0,mac=52:54:00:00:00:{id:02x}"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .context("cannot start qemu-system-x86_64 (cargo xtask setup)")?;
        let stdin = child.stdin.take().unwrap();
        let out: Shared = Arc::new((Mutex::new(Console::default()), Condvar::new()));
        {
            let mut all = self.consoles.lock().unwrap();
            all.retain(|(_, w)| w.strong_count() > 0);
            all.push((name.clone(), Arc::downgrade(&out)));
        }
        let log = std::fs::File::create(&log_path)?;
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            let mut log = log.try_clone()?;
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let line = line.replace('\r', "");
                    let _ = writeln!(log, "{line}");
                    let (m, cv) = &*out;
                    let mut c = m.lock().unwrap();
                    if TROUBLE.iter().any(|t| line.contains(t))
                        && !line.to_ascii_lowercase().contains("command line:")
                    {
                        c.trouble.push(line.clone());
                    }
                    c.text.push_str(&line);
                    c.text.push('\n');
                    cv.notify_all();
                }
                let (m, cv) = &*out;
                m.lock().unwrap().exited = true;
                cv.notify_all();
            });
        }
        let mut vm = Vm {
            name,
            child,
            stdin,
            out,
            cursor: 0,
            seq: 0,
            log_path,
            consoles: self.consoles.clone(),
            lost: None,
        };
        vm.wait_for(ready, Duration::from_secs(timeout_s))?;
        Ok(vm)
    }
}

#[derive(Default)]
struct Console {
    text: String,
    trouble: Vec<String>,
    exited: bool,
}

/// One running VM.
pub struct Vm {
    /// node<id>
    pub name: String,
    child: Child,
    stdin: ChildStdin,
    out: Shared,
    cursor: usize,
    seq: u32,
    /// Console log file.
    pub log_path: PathBuf,
    consoles: Consoles,
    /// Set once a command timed out and the shell could not be brought back: later commands
    /// fail at once instead of each waiting out its timeout.
    lost: Option<String>,
}

impl Vm {
    /// Waits until `needle` appears in console output after the cursor; returns the text up to
    /// and including it, and moves the cursor past it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.out;
        let mut c = m.lock().unwrap();
        loop {
            if let Some(pos) = c.text[self.cursor..].find(needle) {
                let end = self.cursor + pos + needle.len();
                let text = c.text[self.cursor..end].to_string();
                self.cursor = end;
                return Ok(text);
            }
            if c.exited {
                bail!(
                    "{} exited while waiting for {needle:?} (log: {})",
                    self.name,
                    self.log_path.display()
                );
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "{}: timed out waiting for {needle:?} (log: {})",
                    self.name,
                    self.log_path.display()
                );
            }
            c = cv.wait_timeout(c, deadline - now).unwrap().0;
        }
    }

    /// Runs a shell command in the guest; returns its exit status and output.
    ///
    /// The wait is cut short by the running step's limit (`limit_to`). On a timeout the
    /// command is interrupted (^C on the console), and the error names the command, says what
    /// it waited for, and carries the tail of every VM's console and this node's ElasticOS
    /// statistics, so that a CI log alone explains the failure.
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<(i32, String)> {
        if let Some(why) = &self.lost {
            bail!(
                "{}: not running `{cmd}`: the console is unresponsive since {why}",
                self.name
            );
        }
        let (timeout, by_step) = capped(timeout);
        self.seq += 1;
        let tag = format!("EOS-RC{}=", self.seq);
        // The marker is split in the command text so an echoed command never matches it.
        let line = format!("{cmd}; echo \"EOS-RC{}\"=$?\n", self.seq);
        self.stdin.write_all(line.as_bytes())?;
        self.stdin.flush()?;
        let start = Instant::now();
        let text = match self.wait_for(&tag, timeout) {
            Ok(t) => t,
            Err(e) if self.exited() => return Err(e),
            Err(_) => return Err(self.timed_out(cmd, &tag, start.elapsed(), by_step)),
        };
        let rest = self.wait_for("\n", Duration::from_secs(10))?;
        // The status is the digits right after the marker (a kernel message may follow them
        // on the same console line).
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let rc = digits.parse().unwrap_or(-1);
        Ok((rc, text[..text.len() - tag.len()].to_string()))
    }

    fn exited(&self) -> bool {
        self.out.0.lock().unwrap().exited
    }

    /// Interrupts a command that ran out of time and builds the error that explains it.
    fn timed_out(
        &mut self,
        cmd: &str,
        tag: &str,
        waited: Duration,
        by_step: bool,
    ) -> anyhow::Error {
        let limit = if by_step {
            "the step's time limit"
        } else {
            "its timeout"
        };
        let mut msg = format!(
            "{}: `{cmd}` did not finish: waited {:.0} s ({limit}) for its exit marker {tag:?}",
            self.name,
            waited.as_secs_f64()
        );
        // ^C on the console: SIGINT to the command (the shell has the console as its
        // controlling terminal); an elastic process's exit line then gives its statistics.
        // The shell drops the rest of that command line (ash re-raises SIGINT on itself), so
        // its marker never comes: a fresh marker tells when the shell is back.
        let _ = self.stdin.write_all(b"\x03");
        let _ = self.stdin.flush();
        std::thread::sleep(Duration::from_millis(500));
        let sync = format!("EOS-SYNC{}", self.seq);
        let _ = writeln!(self.stdin, "echo \"EOS-SY\"\"NC{}\"", self.seq);
        let _ = self.stdin.flush();
        if self.wait_for(&sync, Duration::from_secs(15)).is_ok() {
            std::thread::sleep(Duration::from_millis(500));
            let stats = unlimited(|| {
                self.run(
                    "eosctl stats; cat /sys/kernel/elastic/procs",
                    Duration::from_secs(20),
                )
            });
            if let Ok((_, stats)) = stats {
                msg.push_str(&format!(
                    "\n--- {} ElasticOS statistics after ^C ---\n{stats}",
                    self.name
                ));
            }
        } else {
            self.lost = Some(format!("`{cmd}` timed out"));
            msg.push_str(
                "\n(^C did not bring the shell back; later commands on this VM fail at once)",
            );
        }
        for (name, console) in self.consoles.lock().unwrap().iter() {
            let Some(c) = console.upgrade() else { continue };
            let text = c.0.lock().unwrap().text.clone();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
            msg.push_str(&format!(
                "\n--- {name} console, last {} lines ---\n{}",
                tail.len(),
                tail.join("\n")
            ));
        }
        anyhow::anyhow!(msg)
    }

    /// Runs a command that must succeed; returns its output.
    pub fn sh(&mut self, cmd: &str) -> Result<String> {
        let (rc, out) = self.run(cmd, Duration::from_secs(120))?;
        if rc != 0 {
            bail!("{}: `{cmd}` exited with {rc}:\n{out}", self.name);
        }
        Ok(out)
    }

    /// Kernel trouble lines seen so far.
    pub fn trouble(&self) -> Vec<String> {
        self.out.0.lock().unwrap().trouble.clone()
    }

    /// All console output so far.
    pub fn console(&self) -> String {
        self.out.0.lock().unwrap().text.clone()
    }

    /// Pulls the plug (no clean shutdown: what a dying peer looks like).
    pub fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.trouble()
    }

    /// Powers off cleanly.
    pub fn poweroff(mut self) -> Vec<String> {
        let _ = self.stdin.write_all(b"poweroff -f\n");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
