//! `eosctl`: configure and inspect an ElasticOS node.
//!
//! ```text
//! eosctl up --id N --listen IP:PORT (--secret-file PATH | --secret - | --secret HEX) [--peer ID=IP:PORT]...
//! eosctl peer add ID IP:PORT | eosctl peer del ID
//! eosctl peers | stats | info [--json]
//! eosctl wait ID [--state connected|down|connecting|!connected] [--timeout SECS]
//! eosctl genkey
//! eosctl stretch PID NODE          extend PID's address space to NODE (elastic_stretch)
//! eosctl budget PID MIB            local memory budget of a stretched or marked process
//! eosctl run [--elastic] [--budget MIB] -- PROG ARGS...
//!                                  run PROG without address randomisation; --elastic lets
//!                                  it stretch itself when memory runs short (or past MIB)
//! eosctl status [PID] [--json]     per-process ElasticOS statistics (/proc/PID/elastic)
//! eosctl jump PID NODE             move PID's execution to NODE (its peer or its home)
//! eosctl sticky PID on|off         pin PID at home (the jump policy leaves it there)
//! eosctl jumppolicy [KEY=VALUE...] show or set the jump policy (enabled, threshold, ...)
//! eosctl jumplog                   the node's recent jumps
//! eosctl top [--interval S] [--count N]  live view of processes and shells here
//! ```
//! Everything goes through /sys/kernel/elastic (override with `EOS_SYSFS` for tests).

mod json;
mod top;

use eos_core::peer::{parse_addr, parse_node_id, ConfigError, Secret};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("usage: {0}")]
    Usage(&'static str),
    #[error("{0}: {1}")]
    Config(String, ConfigError),
    #[error("config line `{0}`: {1}")]
    ConfigLine(String, &'static str),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("node {0} did not reach state {1} within {2} s")]
    Timeout(u16, String, u64),
    #[error("{0}: {1}")]
    Sys(&'static str, std::io::Error),
    #[error("no ElasticOS process with pid {0}")]
    NoProcess(i32),
}

/// The ABI's numbers: syscalls (`SYS_ELASTIC_*`, from the patched syscall table) and
/// `elastic_ctl` operations (`CTL_*`, from include/uapi/linux/elastic.h); see build.rs.
mod abi {
    include!(concat!(env!("OUT_DIR"), "/abi.rs"));
}
use abi::{
    CTL_BUDGET, CTL_MARK, CTL_STICKY, SYS_ELASTIC_CTL, SYS_ELASTIC_JUMP, SYS_ELASTIC_STRETCH,
};
const PAGES_PER_MIB: u64 = 256;

fn check(what: &'static str, r: libc::c_long) -> Result<(), Error> {
    if r < 0 {
        Err(Error::Sys(what, std::io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

fn stretch(pid: i32, node: i32) -> Result<(), Error> {
    // SAFETY: a plain syscall with integer arguments.
    check("elastic_stretch", unsafe {
        libc::syscall(SYS_ELASTIC_STRETCH, pid, node)
    })
}

fn jump(pid: i32, node: i32) -> Result<(), Error> {
    // SAFETY: a plain syscall with integer arguments.
    check("elastic_jump", unsafe {
        libc::syscall(SYS_ELASTIC_JUMP, pid, node)
    })
}

fn ctl(op: libc::c_long, pid: i32, arg: u64) -> Result<(), Error> {
    // SAFETY: a plain syscall with integer arguments.
    check("elastic_ctl", unsafe {
        libc::syscall(SYS_ELASTIC_CTL, op, pid, arg)
    })
}

fn num<T: std::str::FromStr>(s: Option<&String>) -> Result<T, Error> {
    s.and_then(|v| v.parse().ok()).ok_or(Error::Usage(USAGE))
}

/// A size in MiB, fractions allowed (`3.5`), as pages (rounded to the nearest page).
fn mib_pages(s: Option<&String>) -> Result<u64, Error> {
    let mib: f64 = num(s)?;
    // Up to 2^40 MiB: far past any machine, and exact in f64 once multiplied.
    if !(0.0..=(1u64 << 40) as f64).contains(&mib) {
        return Err(Error::Usage(USAGE));
    }
    Ok((mib * PAGES_PER_MIB as f64).round() as u64)
}

/// `eosctl run`: no ASLR (so a shell on another node gets the same layout), optionally marked
/// elastic, then exec.
fn run(args: &[String]) -> Result<(), Error> {
    let mut elastic = false;
    let mut budget = 0u64;
    let mut i = 0;
    while i < args.len() && args[i] != "--" {
        match args[i].as_str() {
            "--elastic" => elastic = true,
            "--budget" => {
                budget = mib_pages(args.get(i + 1))?;
                i += 1;
            }
            _ => return Err(Error::Usage(USAGE)),
        }
        i += 1;
    }
    let prog = args.get(i + 1).ok_or(Error::Usage(USAGE))?;
    // SAFETY: personality only changes flags of this process.
    check(
        "personality",
        unsafe { libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong) } as libc::c_long,
    )?;
    if elastic {
        ctl(CTL_MARK, 0, budget)?;
    }
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new(prog).args(&args[i + 2..]).exec();
    Err(Error::Sys("exec", e))
}

fn status(fs: &Sysfs, pid: Option<&String>, as_json: bool) -> Result<(), Error> {
    let procs = fs.read("procs")?;
    match pid {
        None if as_json => println!("{}", json::key_value_lines(&procs)),
        None => print!("{procs}"),
        Some(p) => {
            let pid: i32 = num(Some(p))?;
            // /proc/<pid>/elastic, or the sysfs list where there is no such file.
            let own = std::fs::read_to_string(format!("/proc/{pid}/elastic")).unwrap_or_default();
            let line = own
                .lines()
                .next()
                .map(str::to_string)
                .or_else(|| {
                    procs
                        .lines()
                        .find(|l| l.starts_with(&format!("pid={pid} ")))
                        .map(str::to_string)
                })
                .ok_or(Error::NoProcess(pid))?;
            if as_json {
                println!("{}", json::key_value_line(&line));
                return Ok(());
            }
            for field in line.split_whitespace() {
                println!("{}", field.replacen('=', ": ", 1));
            }
        }
    }
    Ok(())
}

const USAGE: &str =
    "eosctl up --id N --listen IP:PORT [--secret-file PATH | --secret - | --secret HEX] \
[--keys FILE] [--peer ID=IP:PORT]... | peer add ID IP:PORT | peer del ID | \
peers|stats|info [--json] | wait ID [--state S] [--timeout SECS] | \
genkey [--nodes ID,ID,... [--out DIR]] | stretch PID NODE | budget PID MIB | \
run [--elastic] [--budget MIB] -- PROG ARGS... | status [PID] [--json] | jump PID NODE | \
sticky PID on|off | jumppolicy [KEY=VALUE...] | jumplog | top [--interval SECS] [--count N]";

/// Each subcommand's synopsis and what it does (`eosctl CMD --help`, `eosctl help`).
const HELP: &[(&str, &str, &str)] = &[
    (
        "up",
        "up [--config FILE] --id N --listen IP:PORT [--secret-file PATH | --secret - | --secret HEX] [--keys FILE] [--peer ID=IP:PORT]...",
        "bring this node up: its id, its keys (one per peer from --keys, else the cluster secret), its peers, then the listen address",
    ),
    (
        "peer",
        "peer add ID IP:PORT | peer del ID",
        "add or remove a peer",
    ),
    (
        "peers",
        "peers [--json]",
        "the links: state, round-trip time, frames, last error",
    ),
    ("stats", "stats [--json]", "the node's counters"),
    ("info", "info [--json]", "the node's configuration"),
    (
        "wait",
        "wait ID [--state connected|down|connecting|!connected] [--timeout SECS]",
        "wait until the link to node ID is in that state (default connected, 30 s)",
    ),
    (
        "genkey",
        "genkey [--nodes ID,ID,... [--out DIR]]",
        "print a new random cluster key (64 hex digits); with --nodes, write a key file per node (DIR/nodeN.keys) with a key of its own for every pair",
    ),
    (
        "stretch",
        "stretch PID NODE",
        "extend PID's address space to NODE (elastic_stretch)",
    ),
    (
        "budget",
        "budget PID MIB",
        "local memory budget of a stretched or marked process",
    ),
    (
        "run",
        "run [--elastic] [--budget MIB] -- PROG ARGS...",
        "run PROG without address randomisation; --elastic lets it stretch itself when memory \
      runs short (or past MIB)",
    ),
    (
        "status",
        "status [PID] [--json]",
        "per-process statistics (/proc/PID/elastic)",
    ),
    (
        "jump",
        "jump PID NODE",
        "move PID's execution to NODE (its peer or its home)",
    ),
    (
        "sticky",
        "sticky PID on|off",
        "pin PID at home (the jump policy leaves it there)",
    ),
    (
        "jumppolicy",
        "jumppolicy [KEY=VALUE...]",
        "show or set the jump policy",
    ),
    ("jumplog", "jumplog", "the node's recent jumps"),
    ("man", "man", "print this program's manual page (roff: `eosctl man | man -l -`)"),
    (
        "top",
        "top [--interval SECS] [--count N]",
        "live view of the stretched processes and the shells here, refreshed in place (every \
      SECS, default 1; N refreshes, default until interrupted)",
    ),
];

/// The help of `cmd`, or of every command.
fn help(cmd: Option<&str>) -> Option<String> {
    let line =
        |(_, synopsis, what): &(&str, &str, &str)| format!("eosctl {synopsis}\n    {what}\n");
    match cmd {
        None => Some(HELP.iter().map(line).collect()),
        Some(c) => HELP.iter().find(|h| h.0 == c).map(line),
    }
}

/// The eosctl(8) manual page, in roff, made from [`HELP`] (so the two never disagree).
fn man_page() -> String {
    let esc = |t: &str| t.replace('\\', "\\\\").replace('-', "\\-");
    let mut m = String::from(
        ".\\\" SPDX-License-Identifier: GPL-2.0\n\
         .\\\" Generated by `eosctl man` from its own help; do not edit.\n\
         .TH EOSCTL 8 2026-12-04 \"ElasticOS\" \"System Administration\"\n\
         .SH NAME\neosctl \\- control an ElasticOS node and its stretched processes\n\
         .SH SYNOPSIS\n.B eosctl\n.I command\n.RI [ options ]\n\
         .SH DESCRIPTION\n\
         .B eosctl\nconfigures this machine as a node of an ElasticOS cluster through\n\
         .IR /sys/kernel/elastic ,\nand starts, stretches, moves and watches elastic processes. \
         Every command takes\n.BR \\-\\-help .\n.SH COMMANDS\n",
    );
    for (_, synopsis, what) in HELP {
        m.push_str(&format!(
            ".TP\n.B eosctl {}\n{}\n",
            esc(synopsis),
            esc(what)
        ));
    }
    m.push_str(
        ".SH FILES\n.TP\n.I /etc/elasticos/node.conf\n\
         The node's configuration for\n.BR \"eosctl up \\-\\-config\" :\n\
         one\n.I NAME VALUE\nper line, NAME an option of\n.B up\nwithout its dashes\n\
         .RI ( \"id 1\" \", \" \"listen 10.0.0.1:7077\" \", \" \"keys /etc/elasticos/node1.keys\" \", \" \"peer 2=10.0.0.2:7077\" );\n\
         .B elasticos\\-node.service\nbrings the node up from it at boot.\n\
         .TP\n.I /sys/kernel/elastic/\nThe kernel's interface.\n\
         .SH SEE ALSO\n.BR elastic_stretch (2),\n.BR elastic_jump (2),\n.BR elastic_ctl (2)\n",
    );
    m
}

struct Sysfs(PathBuf);

impl Sysfs {
    fn from_env() -> Self {
        Self(
            std::env::var_os("EOS_SYSFS")
                .map_or_else(|| PathBuf::from("/sys/kernel/elastic"), PathBuf::from),
        )
    }

    fn write(&self, file: &str, value: &str) -> Result<(), Error> {
        let path = self.0.join(file);
        std::fs::write(&path, value).map_err(|source| Error::Io { path, source })
    }

    fn read(&self, file: &str) -> Result<String, Error> {
        let path = self.0.join(file);
        std::fs::read_to_string(&path).map_err(|source| Error::Io { path, source })
    }
}

/// Settings of `eosctl up`.
#[derive(Debug, Default, PartialEq)]
struct Up {
    id: Option<u16>,
    listen: Option<String>,
    secret: Option<String>,
    peers: Vec<(u16, String)>,
    /// Pairwise keys (`--keys FILE`): this node's key with each peer.
    keys: Vec<(u16, String)>,
}

/// Parses a key file (`eosctl genkey --nodes`): `PEER_ID HEX` per line, `#` comments.
fn parse_keys(text: &str) -> Result<Vec<(u16, String)>, Error> {
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, hex) = line
            .split_once(char::is_whitespace)
            .ok_or(Error::Usage(USAGE))?;
        let id = parse_node_id(id).map_err(|e| Error::Config(line.to_string(), e))?;
        let hex = hex.trim();
        Secret::parse_hex(hex).map_err(|e| Error::Config(format!("key of node {id}"), e))?;
        keys.push((id, hex.to_string()));
    }
    Ok(keys)
}

fn read_file(path: &Path) -> Result<String, Error> {
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(s)
}

/// The flags of a node config file (`--config FILE`, e.g. /etc/elasticos/node.conf): one
/// `NAME VALUE` per line, NAME an `up` flag without its dashes (`id 1`, `listen IP:PORT`,
/// `keys PATH`, `secret-file PATH`, `peer ID=IP:PORT`); `#` starts a comment.
fn config_flags(text: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
    {
        if line.is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| Error::ConfigLine(line.to_string(), "expected NAME VALUE"))?;
        if k == "config" {
            return Err(Error::ConfigLine(
                line.to_string(),
                "a config file cannot name another",
            ));
        }
        out.push(format!("--{k}"));
        out.push(v.trim().to_string());
    }
    Ok(out)
}

fn parse_up(args: &[String]) -> Result<Up, Error> {
    let mut up = Up::default();
    let mut expanded = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            let path = it.next().ok_or(Error::Usage(USAGE))?;
            expanded.extend(config_flags(&read_file(Path::new(path))?)?);
        } else {
            expanded.push(a.clone());
        }
    }
    let mut it = expanded.iter();
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(Error::Usage(USAGE))?;
        match flag.as_str() {
            "--id" => up.id = Some(parse_node_id(val).map_err(|e| Error::Config(val.clone(), e))?),
            "--listen" => {
                parse_addr(val).map_err(|e| Error::Config(val.clone(), e))?;
                up.listen = Some(val.clone());
            }
            // `-`: from standard input. A key on the command line is in every local user's
            // process list (/proc/PID/cmdline) while eosctl runs: allowed, with a warning.
            "--secret" if val == "-" => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|source| Error::Io {
                        path: PathBuf::from("-"),
                        source,
                    })?;
                up.secret = Some(line.trim().to_string());
            }
            "--secret" => {
                eprintln!(
                    "eosctl: warning: a key given with --secret is visible to every local user \
                     while eosctl runs; use --secret-file PATH or --secret - (standard input)"
                );
                up.secret = Some(val.clone());
            }
            "--secret-file" => up.secret = Some(read_file(Path::new(val))?.trim().to_string()),
            "--keys" => up.keys = parse_keys(&read_file(Path::new(val))?)?,
            "--peer" => {
                let (id, addr) = val.split_once('=').ok_or(Error::Usage(USAGE))?;
                let id = parse_node_id(id).map_err(|e| Error::Config(val.clone(), e))?;
                parse_addr(addr).map_err(|e| Error::Config(val.clone(), e))?;
                up.peers.push((id, addr.to_string()));
            }
            _ => return Err(Error::Usage(USAGE)),
        }
    }
    if let Some(s) = &up.secret {
        Secret::parse_hex(s).map_err(|e| Error::Config("secret".into(), e))?;
    }
    Ok(up)
}

/// Applies `up` in the order the kernel needs: identity and key, peers, then listen (which
/// brings the node up and starts dialling).
fn apply_up(fs: &Sysfs, up: &Up) -> Result<(), Error> {
    let (Some(id), Some(listen)) = (up.id, &up.listen) else {
        return Err(Error::Usage(USAGE));
    };
    // Every peer needs a key: its own (pairwise), or the cluster secret.
    let key_of = |p: u16| up.keys.iter().find(|(k, _)| *k == p).map(|(_, h)| h);
    if up.secret.is_none() && up.peers.iter().any(|(p, _)| key_of(*p).is_none()) {
        return Err(Error::Usage(USAGE));
    }
    fs.write("node_id", &id.to_string())?;
    if let Some(secret) = &up.secret {
        fs.write("secret", secret)?;
    }
    for (pid, addr) in &up.peers {
        fs.write("peers", &format!("add {pid} {addr}"))?;
        if let Some(k) = key_of(*pid) {
            fs.write("peers", &format!("key {pid} {k}"))?;
        }
    }
    fs.write("listen", listen)
}

/// `genkey --nodes 1,2,3 [--out DIR]`: a fresh key for every pair of those nodes, written as
/// one key file per node (`DIR/nodeN.keys`, mode 0600) holding its keys to every other.
fn genkey_files(args: &[String]) -> Result<(), Error> {
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let nodes: Vec<u16> = opt("--nodes")
        .ok_or(Error::Usage(USAGE))?
        .split(',')
        .map(|n| parse_node_id(n.trim()).map_err(|e| Error::Config(n.to_string(), e)))
        .collect::<Result<_, _>>()?;
    let dir = PathBuf::from(opt("--out").map_or(".", |s| s.as_str()));
    let mut files: Vec<String> = nodes
        .iter()
        .map(|n| format!("# ElasticOS keys of node {n}: PEER_ID KEY (eosctl up --keys)\n"))
        .collect();
    for (i, a) in nodes.iter().enumerate() {
        for (j, b) in nodes.iter().enumerate().skip(i + 1) {
            if a == b {
                return Err(Error::Usage(USAGE));
            }
            let k = genkey()?;
            files[i].push_str(&format!("{b} {k}\n"));
            files[j].push_str(&format!("{a} {k}\n"));
        }
    }
    // The folder is made if it is missing, for its owner only (it holds keys).
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
    }
    for (n, text) in nodes.iter().zip(files) {
        let path = dir.join(format!("node{n}.keys"));
        write_key_file(&dir, &path, text.as_bytes())?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Writes a key file so that nobody else ever reads it and nothing planted at `path` is
/// followed: a new file (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, ours) next to it, written and
/// synced, then renamed over `path` (which replaces a symlink or an older file itself, with
/// its owner and mode, rather than writing through it), and the folder synced.
fn write_key_file(dir: &Path, path: &Path, text: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("keys");
    let tmp = dir.join(format!(".{name}.{}.new", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(text)?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp); // Ours if it exists: created just now.
        return Err(io(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp); // Ours: never renamed.
        io(path)(e)
    })?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// The state of peer `id` in the `peers` file.
fn peer_state(peers: &str, id: u16) -> Option<String> {
    peers.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == id.to_string()).then(|| {
            w.next();
            w.next().map(str::to_string)
        })?
    })
}

fn wait(fs: &Sysfs, args: &[String]) -> Result<(), Error> {
    let id = parse_node_id(args.first().ok_or(Error::Usage(USAGE))?)
        .map_err(|e| Error::Config(args[0].clone(), e))?;
    let mut state = "connected".to_string();
    let mut timeout = 30u64;
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(Error::Usage(USAGE))?;
        match flag.as_str() {
            "--state" => state = v.clone(),
            "--timeout" => timeout = v.parse().map_err(|_| Error::Usage(USAGE))?,
            _ => return Err(Error::Usage(USAGE)),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let now = peer_state(&fs.read("peers")?, id);
        let reached = match state.strip_prefix('!') {
            Some(not) => now.is_some_and(|s| s != not),
            None => now.as_deref() == Some(&state),
        };
        if reached {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout(id, state, timeout));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `eosctl top`: refreshes in place until interrupted, or `--count` times.
fn top(fs: &Sysfs, args: &[String]) -> Result<(), Error> {
    let (mut interval, mut count) = (1.0f64, u64::MAX);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(Error::Usage(USAGE))?;
        match flag.as_str() {
            "--interval" => interval = v.parse().map_err(|_| Error::Usage(USAGE))?,
            "--count" => count = v.parse().map_err(|_| Error::Usage(USAGE))?,
            _ => return Err(Error::Usage(USAGE)),
        }
    }
    if !(0.1..=3600.0).contains(&interval) {
        return Err(Error::Usage(USAGE));
    }
    let mut before = std::collections::HashMap::new();
    let mut last = Instant::now();
    for i in 0..count {
        if i > 0 {
            std::thread::sleep(Duration::from_secs_f64(interval));
        }
        let procs = fs.read("procs")?;
        let secs = last.elapsed().as_secs_f64();
        last = Instant::now();
        // Home the cursor and clear the screen, as top(1) does.
        print!("\x1b[H\x1b[2J{}", top::render(&procs, &mut before, secs));
    }
    Ok(())
}

fn genkey() -> Result<String, Error> {
    let mut b = [0u8; 32];
    let path = PathBuf::from("/dev/urandom");
    std::fs::File::open(&path)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|source| Error::Io { path, source })?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn main_with(args: &[String]) -> Result<(), Error> {
    let fs = Sysfs::from_env();
    // `eosctl help`, `eosctl --help`, `eosctl CMD --help` (or -h).
    let wants_help = |a: &String| a == "--help" || a == "-h";
    if args.is_empty() || args[0] == "help" || wants_help(&args[0]) {
        print!(
            "{}",
            help(args.get(1).map(String::as_str)).ok_or(Error::Usage(USAGE))?
        );
        return Ok(());
    }
    if args.first().is_some_and(|a| a == "man") {
        print!("{}", man_page());
        return Ok(());
    }
    if args.iter().take_while(|a| *a != "--").any(wants_help) {
        print!("{}", help(Some(&args[0])).ok_or(Error::Usage(USAGE))?);
        return Ok(());
    }
    // `--json` (peers, stats, info, status): the same data for scripts.
    let as_json = args.len() > 1 && args.last().is_some_and(|a| a == "--json");
    let args = if as_json {
        &args[..args.len() - 1]
    } else {
        args
    };
    if as_json && !matches!(args[0].as_str(), "peers" | "stats" | "info" | "status") {
        return Err(Error::Usage(USAGE));
    }
    match args.first().map(String::as_str) {
        Some("up") => apply_up(&fs, &parse_up(&args[1..])?),
        Some("peer") => match (args.get(1).map(String::as_str), args.len()) {
            (Some("add"), 4) => fs.write("peers", &format!("add {} {}", args[2], args[3])),
            (Some("del"), 3) => fs.write("peers", &format!("del {}", args[2])),
            _ => Err(Error::Usage(USAGE)),
        },
        Some(f @ ("peers" | "stats" | "info")) if args.len() == 1 => {
            let text = fs.read(f)?;
            match (as_json, f) {
                (false, _) => print!("{text}"),
                (true, "peers") => println!("{}", json::peers(&text)),
                (true, _) => println!("{}", json::name_value(&text)),
            }
            Ok(())
        }
        Some("wait") => wait(&fs, &args[1..]),
        Some("stretch") => stretch(num(args.get(1))?, num(args.get(2))?),
        Some("budget") => ctl(CTL_BUDGET, num(args.get(1))?, mib_pages(args.get(2))?),
        Some("run") => run(&args[1..]),
        Some("jump") => jump(num(args.get(1))?, num(args.get(2))?),
        Some("sticky") => match args.get(2).map(String::as_str) {
            Some("on") => ctl(CTL_STICKY, num(args.get(1))?, 1),
            Some("off") => ctl(CTL_STICKY, num(args.get(1))?, 0),
            _ => Err(Error::Usage(USAGE)),
        },
        Some("jumppolicy") if args.len() == 1 => {
            print!("{}", fs.read("jump")?);
            Ok(())
        }
        Some("jumppolicy") => fs.write("jump", &args[1..].join(" ")),
        Some("jumplog") => {
            print!("{}", fs.read("jumplog")?);
            Ok(())
        }
        Some("status") if args.len() <= 2 => status(&fs, args.get(1), as_json),
        Some("top") => top(&fs, &args[1..]),
        Some("genkey") if args.len() > 1 => genkey_files(&args[1..]),
        Some("genkey") => {
            println!("{}", genkey()?);
            Ok(())
        }
        _ => Err(Error::Usage(USAGE)),
    }
}

fn main() {
    // A reader that stops early (`eosctl status PID | grep -q shell_pid`) ends eosctl as it
    // ends any Unix tool, by SIGPIPE: Rust ignores SIGPIPE, and print! panics on EPIPE.
    // SAFETY: setting a signal's disposition to its default before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = main_with(&args) {
        eprintln!("eosctl: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn budgets_take_fractions_of_a_mib() {
        let pages = |v: &str| mib_pages(Some(&v.to_string())).ok();
        assert_eq!(pages("8"), Some(2048));
        assert_eq!(pages("3.5"), Some(896));
        assert_eq!(pages("0"), Some(0));
        for bad in ["-1", "x", "NaN", "inf", "1e300"] {
            assert_eq!(pages(bad), None, "{bad}");
        }
    }

    #[test]
    fn up_writes_in_kernel_order() {
        let dir = std::env::temp_dir().join(format!("eosctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fs = Sysfs(dir.clone());
        let up = parse_up(&strings(&[
            "--id",
            "1",
            "--listen",
            "10.0.2.11:7077",
            "--secret",
            &"ab".repeat(32),
            "--peer",
            "2=10.0.2.12:7077",
        ]))
        .unwrap();
        apply_up(&fs, &up).unwrap();
        assert_eq!(fs.read("node_id").unwrap(), "1");
        assert_eq!(fs.read("peers").unwrap(), "add 2 10.0.2.12:7077");
        assert_eq!(fs.read("listen").unwrap(), "10.0.2.11:7077");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_config_file_is_the_same_flags() {
        let dir = std::env::temp_dir().join(format!("eosctl-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("node.conf");
        let keys = dir.join("node1.keys");
        std::fs::write(&keys, format!("2 {}\n", "cd".repeat(32))).unwrap();
        std::fs::write(
            &conf,
            format!(
                "# node 1\nid 1\nlisten 10.0.2.11:7077\nkeys {}\npeer 2=10.0.2.12:7077 # its peer\n",
                keys.display()
            ),
        )
        .unwrap();
        let up = parse_up(&strings(&["--config", conf.to_str().unwrap()])).unwrap();
        assert_eq!(up.id, Some(1));
        assert_eq!(up.listen.as_deref(), Some("10.0.2.11:7077"));
        assert_eq!(up.peers, vec![(2, "10.0.2.12:7077".to_string())]);
        assert_eq!(up.keys, vec![(2, "cd".repeat(32))]);
        std::fs::write(&conf, "id\n").unwrap();
        assert!(parse_up(&strings(&["--config", conf.to_str().unwrap()])).is_err());
        std::fs::write(&conf, format!("config {}\n", conf.display())).unwrap();
        assert!(parse_up(&strings(&["--config", conf.to_str().unwrap()])).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A key file planted as a symlink (to a file of someone else's) or left with a loose
    /// mode is replaced, never written through: the target keeps its bytes, the key file is
    /// a new regular file of mode 0600.
    #[test]
    fn genkey_never_writes_through_a_planted_file() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let dir = std::env::temp_dir().join(format!("eosctl-genkey-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "victim\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("node1.keys")).unwrap();
        std::fs::write(dir.join("node2.keys"), "old\n").unwrap();
        std::fs::set_permissions(
            dir.join("node2.keys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        genkey_files(&strings(&[
            "--nodes",
            "1,2",
            "--out",
            dir.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
        for n in [1, 2] {
            let p = dir.join(format!("node{n}.keys"));
            let m = std::fs::symlink_metadata(&p).unwrap();
            assert!(
                m.file_type().is_file(),
                "node{n}.keys is not a regular file"
            );
            assert_eq!(m.mode() & 0o777, 0o600, "node{n}.keys mode");
            assert!(std::fs::read_to_string(&p)
                .unwrap()
                .contains(&format!("{} ", 3 - n)));
        }
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn up_rejects_bad_input_before_touching_the_kernel() {
        assert!(parse_up(&strings(&["--id", "0"])).is_err());
        assert!(parse_up(&strings(&["--secret", "xyz"])).is_err());
        assert!(parse_up(&strings(&["--peer", "2@10.0.2.12:7077"])).is_err());
        assert!(parse_up(&strings(&["--listen"])).is_err());
        let fs = Sysfs(PathBuf::from("/nonexistent"));
        assert!(matches!(
            apply_up(&fs, &Up::default()),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn every_subcommand_has_help() {
        for cmd in [
            "up",
            "peer",
            "peers",
            "stats",
            "info",
            "wait",
            "genkey",
            "stretch",
            "budget",
            "run",
            "status",
            "jump",
            "sticky",
            "jumppolicy",
            "jumplog",
        ] {
            let h = help(Some(cmd)).unwrap_or_else(|| panic!("no help for {cmd}"));
            assert!(h.starts_with(&format!("eosctl {cmd}")), "{h}");
            assert!(USAGE.contains(cmd), "{cmd} missing from the usage line");
        }
        assert!(help(Some("nonsense")).is_none());
        assert_eq!(help(None).unwrap().lines().count(), 2 * HELP.len());
        // `--help` after `--` belongs to the program `run` starts.
        assert!(main_with(&strings(&["stats", "--help"])).is_ok());
    }

    #[test]
    fn finds_peer_state() {
        let peers =
            "2 10.0.2.12:7077 connected since_ms=5 rtt_us=1\n3 10.0.2.13:7077 down since_ms=1\n";
        assert_eq!(peer_state(peers, 2).as_deref(), Some("connected"));
        assert_eq!(peer_state(peers, 3).as_deref(), Some("down"));
        assert_eq!(peer_state(peers, 4), None);
    }
}
