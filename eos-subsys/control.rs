// SPDX-License-Identifier: GPL-2.0

//! How user space controls ElasticOS: the files in /sys/kernel/elastic, the three syscalls
//! (who may control which process), `/proc/<pid>/elastic`, and the logic behind each C hook
//! (sys/hooks.rs calls through the table that [`init`] registers).

use crate::fmtbuf::FmtBuf;
use crate::home;
use crate::jump;
use crate::mapsync;
use crate::node::{self, peer_warn, Node, Peer};
use crate::peer::{dials, parse_addr, parse_node_id, ConfigError, PeerCmd, Secret};
use crate::proto::{caps, NodeId};
use crate::pull;
use crate::shell;
use crate::stats::Stats;
use crate::stretch;
use crate::sys::{
    arch::{self, SyscallRegs},
    crypto::HmacSha256,
    hooks::{self, Hooks},
    mm::MmId,
    sysfs,
    task::TaskRef,
    time,
};
use crate::transport;
use core::fmt::Write;
use core::sync::atomic::Ordering::Relaxed;
use kernel::{bindings, prelude::*};

fn start_dialers(node: &'static Node, local: NodeId) {
    let peers = node.peers.lock();
    for p in peers.iter() {
        if dials(local, p.id) {
            transport::start_dialer(node, p.clone());
        }
    }
}

fn config_err(e: ConfigError) -> Error {
    pr_info!("rejected configuration: {}\n", e);
    EINVAL
}

fn with_node(f: impl FnOnce(&'static Node) -> Result) -> Result {
    f(node::get().ok_or(ENODEV)?)
}

fn show_with(
    w: &mut FmtBuf<'_>,
    f: impl FnOnce(&'static Node, &mut FmtBuf<'_>) -> core::fmt::Result,
) {
    if let Some(n) = node::get() {
        // A full page cuts the output short; that is all an error here can mean.
        let _ = f(n, w);
    }
}

fn node_id_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| writeln!(w, "{}", n.id()));
}

fn node_id_store(s: &str) -> Result {
    let id = parse_node_id(s).map_err(config_err)?;
    with_node(|n| {
        let mut cfg = n.cfg.lock();
        if cfg.listen.is_some() && cfg.id != id {
            return Err(EBUSY);
        }
        cfg.id = id;
        Ok(())
    })
}

fn listen_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| match n.cfg.lock().listen {
        Some(a) => writeln!(w, "{a}"),
        None => Ok(()),
    });
}

/// Writing the listen address brings the node up: it needs the id and the secret first.
fn listen_store(s: &str) -> Result {
    let addr = parse_addr(s).map_err(config_err)?;
    with_node(|n| {
        let local = {
            let mut cfg = n.cfg.lock();
            if cfg.listen.is_some() {
                return Err(EBUSY);
            }
            let keyed = n.peers.lock().iter().any(|p| p.link.lock().key.is_some());
            if cfg.id == 0 || (cfg.secret.is_none() && !keyed) {
                pr_info!("set node_id and a secret (or a peer's key) before listen\n");
                return Err(EINVAL);
            }
            transport::listen(n, addr)?;
            cfg.listen = Some(addr);
            cfg.id
        };
        pr_info!("node {} listening on {}\n", local, addr);
        start_dialers(n, local);
        Ok(())
    })
}

/// Closes every link that authenticated with the cluster secret (no pair key of its own),
/// each under its link's lock, after the keys' epoch moved: a connection that came up under
/// the old secret either is closed here or, not up yet, is refused by `run_link`'s check.
fn close_cluster_keyed(n: &Node) {
    let mut at = 0;
    loop {
        let p = {
            let peers = n.peers.lock();
            let Some(p) = peers.get(at).cloned() else {
                break;
            };
            p
        };
        at += 1;
        let mut l = p.link.lock();
        if l.key.is_none() {
            if let Some(c) = l.conn.take() {
                c.close();
            }
        }
    }
}

fn secret_store(s: &str) -> Result {
    let secret = Secret::parse_hex(s).map_err(config_err)?;
    // Fail now, not at the first handshake, if the kernel lacks hmac(sha256).
    HmacSha256::new(secret.as_bytes())?;
    with_node(|n| {
        {
            let mut cfg = n.cfg.lock();
            if cfg.secret.as_ref() == Some(&secret) {
                // The same secret again (`eosctl up` run twice): nothing changes.
                return Ok(());
            }
            cfg.secret = Some(secret);
        }
        // A handshake under way under the old secret does not come up, and a link up under
        // it (one without a pair key of its own) closes: its peer dials again with the new.
        node::keys_changed();
        close_cluster_keyed(n);
        Ok(())
    })
}

/// An `ids` allowlist as `peers` shows it: `lo-hi`, or `none`.
struct IdRange(Option<(u32, u32)>);

impl core::fmt::Display for IdRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some((lo, hi)) => write!(f, "{lo}-{hi}"),
            None => f.write_str("none"),
        }
    }
}

fn peers_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| {
        let now = time::now_ns();
        for p in n.peers.lock().iter() {
            let l = p.link.lock();
            writeln!(
                w,
                "{} {} {} since_ms={} rtt_us={} srtt_us={} ups={} losses={} rx_frames={} tx_frames={} last_error={} key={} ids={} refused_for_room={}",
                p.id,
                l.addr,
                l.state.name(),
                now.saturating_sub(l.since_ns) / 1_000_000,
                l.rtt_ns / 1000,
                l.srtt_ns / 1000,
                l.ups,
                l.losses,
                p.rx_frames.load(Relaxed),
                p.tx_frames.load(Relaxed),
                if l.last_error.is_empty() { "-" } else { l.last_error },
                if l.key.is_some() { "pair" } else { "cluster" },
                IdRange(l.ids),
                p.room.lock().refusals,
            )?;
        }
        Ok(())
    });
}

fn peers_store(s: &str) -> Result {
    let cmd = PeerCmd::parse(s).map_err(config_err)?;
    with_node(|n| {
        let local = n.cfg.lock().id;
        let mut peers = n.peers.lock();
        match cmd {
            PeerCmd::Add(id, addr) => {
                if id == local {
                    return Err(EINVAL);
                }
                if let Some(p) = peers.iter().find(|p| p.id == id) {
                    p.link.lock().addr = addr;
                    return Ok(());
                }
                let p = Peer::new(id, addr)?;
                peers.push(p.clone(), GFP_KERNEL)?;
                drop(peers);
                if local != 0 && n.cfg.lock().listen.is_some() && dials(local, id) {
                    transport::start_dialer(n, p);
                }
                Ok(())
            }
            PeerCmd::Key(id, key) => {
                // Fail now, not at the first handshake, if the kernel lacks hmac(sha256).
                if let Some(k) = &key {
                    HmacSha256::new(k.as_bytes())?;
                }
                let p = peers.iter().find(|p| p.id == id).cloned().ok_or(ENOENT)?;
                drop(peers);
                let mut l = p.link.lock();
                if l.key == key {
                    // The same key again: nothing changes.
                    return Ok(());
                }
                l.key = key;
                // Under the link's lock: a handshake either sees the change before it comes
                // up, or came up before it and its connection is closed below.
                node::keys_changed();
                // A rotated key applies now: the next handshake of this pair uses it.
                if let Some(c) = l.conn.take() {
                    c.close();
                }
                Ok(())
            }
            PeerCmd::Ids(id, ids) => {
                let p = peers.iter().find(|p| p.id == id).cloned().ok_or(ENOENT)?;
                drop(peers);
                // Shells made from now on; those running keep the ids they have.
                p.link.lock().ids = ids;
                Ok(())
            }
            PeerCmd::Del(id) => {
                let p = peers.iter().find(|p| p.id == id).cloned().ok_or(ENOENT)?;
                crate::kvec::retain(&mut peers, |_, q| q.id != id);
                drop(peers);
                p.removed.store(true, Relaxed);
                // A handshake under way under its key does not come up (re-added, the id
                // may have another key).
                node::keys_changed();
                if let Some(c) = p.link.lock().conn.take() {
                    c.close();
                }
                Ok(())
            }
        }
    })
}

fn stats_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| {
        n.stats.write_to(w)?;
        writeln!(w, "handshaking {}", n.handshaking.lock().in_use())
    });
}

fn info_show(w: &mut FmtBuf<'_>) {
    show_with(w, |n, w| {
        let cfg = n.cfg.lock();
        writeln!(w, "node_id {}", cfg.id)?;
        writeln!(w, "protocol {}", crate::proto::VERSION)?;
        writeln!(w, "caps {:#x}", caps::ALL)?;
        writeln!(
            w,
            "secret {}",
            if cfg.secret.is_some() { "set" } else { "unset" }
        )?;
        writeln!(w, "peers_connected {}", n.connected_count())?;
        writeln!(w, "shells {}", shell::shells().map_or(0, |s| s.count()))?;
        writeln!(w, "clean_copies {}", crate::lent::clean_pages())
    });
}

fn procs_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| {
        if let Some(p) = home::procs() {
            p.write_to(w)?;
        }
        if let Some(m) = stretch::marks() {
            m.write_to(w)?;
        }
        match shell::shells() {
            Some(s) => s.write_to(w),
            None => Ok(()),
        }
    });
}

fn prefetch_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| {
        writeln!(w, "{}", crate::pull::PREFETCH.load(Relaxed))
    });
}

fn prefetch_store(s: &str) -> Result {
    store_count(s, crate::proto::MAX_BATCH as u64, &crate::pull::PREFETCH)
}

/// A count setting: a number in `1..=max` goes into `value`, anything else is EINVAL.
fn store_count(s: &str, max: u64, value: &core::sync::atomic::AtomicU64) -> Result {
    let v: u64 = s.trim().parse().map_err(|_| EINVAL)?;
    if v == 0 || v > max {
        return Err(EINVAL);
    }
    with_node(|_| {
        value.store(v, Relaxed);
        Ok(())
    })
}

fn shell_ids_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| {
        let caller = stretch::SHELL_IDS_CALLER.load(Relaxed);
        writeln!(w, "{}", if caller { "caller" } else { "home" })
    });
}

/// `home` (the default): every shell here runs as the ids reserved for its home node
/// (`policy::home_ids`); `caller`: as the ids its Stretch names (regular users' only, within
/// the peer's allowlist), for nodes that share their users.
fn shell_ids_store(s: &str) -> Result {
    store_switch(s, ["home", "caller"], &stretch::SHELL_IDS_CALLER)
}

/// A two-word setting: `words[0]` clears `flag`, `words[1]` sets it, anything else is EINVAL.
fn store_switch(s: &str, words: [&str; 2], flag: &core::sync::atomic::AtomicBool) -> Result {
    let on = match s.trim() {
        w if w == words[0] => false,
        w if w == words[1] => true,
        _ => return Err(EINVAL),
    };
    with_node(|_| {
        flag.store(on, Relaxed);
        Ok(())
    })
}

fn confidentiality_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| {
        writeln!(
            w,
            "{}",
            u8::from(crate::transport::CONFIDENTIAL.load(Relaxed))
        )
    });
}

/// 1 (the default): page contents are encrypted on the links; 0: this node lets them cross in
/// clear, authenticated, where its peer lets them too (new connections; for measurements).
fn confidentiality_store(s: &str) -> Result {
    store_switch(s, ["0", "1"], &crate::transport::CONFIDENTIAL)
}

fn require_pair_keys_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| {
        writeln!(w, "{}", u8::from(node::REQUIRE_PAIR_KEYS.load(Relaxed)))
    });
}

/// 1: a peer without its own pair key (`key` in `peers`) is refused at its handshake, rather
/// than authenticated with the cluster secret; 0 (the default): the cluster secret serves.
fn require_pair_keys_store(s: &str) -> Result {
    let was = node::REQUIRE_PAIR_KEYS.load(Relaxed);
    store_switch(s, ["0", "1"], &node::REQUIRE_PAIR_KEYS)?;
    if !was && node::REQUIRE_PAIR_KEYS.load(Relaxed) {
        // From now on the cluster secret admits nobody: not a handshake under way, nor a
        // link that came up under it.
        with_node(|n| {
            node::keys_changed();
            close_cluster_keyed(n);
            Ok(())
        })?;
    }
    Ok(())
}

fn max_shells_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| {
        writeln!(w, "{}", stretch::MAX_SHELLS_PER_PEER.load(Relaxed))
    });
}

/// Most shells one peer may hold here, 1..=65536 (256 by default).
fn max_shells_store(s: &str) -> Result {
    store_count(s, 65_536, &stretch::MAX_SHELLS_PER_PEER)
}

fn max_shells_uid_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| {
        writeln!(w, "{}", stretch::MAX_SHELLS_PER_UID.load(Relaxed))
    });
}

/// Most shells one user of one peer may hold here, 1..=65536 (64 by default).
fn max_shells_uid_store(s: &str) -> Result {
    store_count(s, 65_536, &stretch::MAX_SHELLS_PER_UID)
}

fn budget_away_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| {
        writeln!(w, "{}", u8::from(crate::home::BUDGET_AWAY.load(Relaxed)))
    });
}

/// 1: a process's budget holds on the member it runs on too (reclaim.rs); 0 (the default):
/// only at home (a running shell takes what its node has, the memory ElasticOS is for).
fn budget_away_store(s: &str) -> Result {
    store_switch(s, ["0", "1"], &crate::home::BUDGET_AWAY)
}

fn jump_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| {
        jump::jumps().map_or(Ok(()), |j| j.write_tunables(w))
    });
}

fn jump_store(s: &str) -> Result {
    jump::jumps().ok_or(ENODEV)?.set_tunables(s)
}

fn jumplog_show(w: &mut FmtBuf<'_>) {
    show_with(w, |_, w| jump::jumps().map_or(Ok(()), |j| j.write_log(w)));
}

static ATTRS: [sysfs::Attr; 16] = [
    sysfs::Attr {
        name: c"jump",
        mode: 0o644,
        show: Some(jump_show),
        store: Some(jump_store),
    },
    sysfs::Attr {
        name: c"jumplog",
        // Pids and their fault patterns of every user: root only (a user reads their own
        // processes' /proc/<pid>/elastic).
        mode: 0o400,
        show: Some(jumplog_show),
        store: None,
    },
    sysfs::Attr {
        name: c"procs",
        mode: 0o400,
        show: Some(procs_show),
        store: None,
    },
    sysfs::Attr {
        name: c"prefetch",
        mode: 0o644,
        show: Some(prefetch_show),
        store: Some(prefetch_store),
    },
    sysfs::Attr {
        name: c"max_shells_per_peer",
        mode: 0o644,
        show: Some(max_shells_show),
        store: Some(max_shells_store),
    },
    sysfs::Attr {
        name: c"max_shells_per_uid",
        mode: 0o644,
        show: Some(max_shells_uid_show),
        store: Some(max_shells_uid_store),
    },
    sysfs::Attr {
        name: c"budget_away",
        mode: 0o644,
        show: Some(budget_away_show),
        store: Some(budget_away_store),
    },
    sysfs::Attr {
        name: c"shell_ids",
        mode: 0o644,
        show: Some(shell_ids_show),
        store: Some(shell_ids_store),
    },
    sysfs::Attr {
        name: c"confidentiality",
        mode: 0o644,
        show: Some(confidentiality_show),
        store: Some(confidentiality_store),
    },
    sysfs::Attr {
        name: c"require_pair_keys",
        mode: 0o644,
        show: Some(require_pair_keys_show),
        store: Some(require_pair_keys_store),
    },
    sysfs::Attr {
        name: c"node_id",
        mode: 0o644,
        show: Some(node_id_show),
        store: Some(node_id_store),
    },
    sysfs::Attr {
        name: c"listen",
        mode: 0o644,
        show: Some(listen_show),
        store: Some(listen_store),
    },
    sysfs::Attr {
        name: c"secret",
        mode: 0o200,
        show: None,
        store: Some(secret_store),
    },
    sysfs::Attr {
        name: c"peers",
        mode: 0o644,
        show: Some(peers_show),
        store: Some(peers_store),
    },
    sysfs::Attr {
        name: c"stats",
        mode: 0o444,
        show: Some(stats_show),
        store: None,
    },
    sysfs::Attr {
        name: c"info",
        mode: 0o444,
        show: Some(info_show),
        store: None,
    },
];

/// The process `pid` names (0: the caller), if the caller may control it.
fn controlled(pid: i32) -> Result<TaskRef> {
    let task = if pid == 0 {
        TaskRef::current()
    } else {
        TaskRef::by_pid(pid).ok_or(ESRCH)?
    };
    if !task.caller_may_control() {
        return Err(EPERM);
    }
    Ok(task)
}

/// `elastic_stretch(pid, node)`.
fn sys_stretch(pid: i32, to: i32) -> Result<i64> {
    let node = node::get().ok_or(ENODEV)?;
    let task = controlled(pid)?;
    let to = u16::try_from(to).map_err(|_| EINVAL)?;
    let peer = node.find_peer(to).ok_or(ENOENT)?;
    stretch::stretch(&task, peer, 0)?;
    Ok(0)
}

/// `elastic_ctl(op, pid, arg)`: 1 = set the local budget (pages) of a stretched or marked
/// process, 2 = mark a process elastic (it stretches itself under memory pressure or when it
/// exceeds `arg` pages, if non-zero), 3 = pin a stretched process at home (`arg` 1, "sticky":
/// the jump policy never moves it) or unpin it (`arg` 0).
fn sys_ctl(op: i32, pid: i32, arg: u64) -> Result<i64> {
    let node = node::get().ok_or(ENODEV)?;
    let procs = home::procs().ok_or(ENODEV)?;
    let marks = stretch::marks().ok_or(ENODEV)?;
    let task = controlled(pid)?;
    // By address space, not pid: the entry of an exited process may linger under a reused
    // pid, and must never be taken for the new process's.
    let mm = task.mm().ok_or(ESRCH)?;
    let stretched = procs.by_mm(mm.id());
    // The operations come from include/uapi/linux/elastic.h, through bindgen.
    let op = u32::try_from(op).map_err(|_| EINVAL)?;
    match op {
        bindings::ELASTIC_CTL_BUDGET => {
            if let Some(p) = stretched {
                p.set_budget(arg);
                procs.kick();
                return Ok(0);
            }
            marks.set_budget(&task, arg)?;
            Ok(0)
        }
        bindings::ELASTIC_CTL_MARK => {
            if stretched.is_some() {
                return Err(crate::sys::errno::e(bindings::EALREADY));
            }
            // A mark lets the process map more than this node holds; only a node that has
            // somewhere to put the rest may allow that.
            if node.first_connected_peer().is_none() {
                return Err(crate::sys::errno::e(bindings::ENOTCONN));
            }
            marks.mark(&task, arg)?;
            // The throttle and the elastic overcommit rule apply from now on.
            mm.mark_elastic();
            Ok(0)
        }
        bindings::ELASTIC_CTL_STICKY => {
            let p = stretched.ok_or(ESRCH)?;
            if arg > 1 {
                return Err(EINVAL);
            }
            p.set_sticky(arg == 1);
            Ok(0)
        }
        _ => Err(EINVAL),
    }
}

/// `elastic_jump(pid, node)`: move the process's execution to `to` (its home or its peer).
fn sys_jump(pid: i32, to: i32) -> Result<i64> {
    let node = node::get().ok_or(ENODEV)?;
    let task = controlled(pid)?;
    let to = u16::try_from(to).map_err(|_| EINVAL)?;
    jump::jump_to(node, &task, to)?;
    Ok(0)
}

/// `/proc/<pid>/elastic`: one line about process `pid` (home side or shell). procfs has
/// checked that the reader may read the process's statistics (ptrace read access).
fn proc_show(pid: i32, w: &mut FmtBuf<'_>) {
    let Some(mm) = TaskRef::by_pid(pid).and_then(|t| t.mm()) else {
        return;
    };
    // A full buffer cuts the line short; that is all an error here can mean.
    if let Some(p) = home::procs().and_then(|procs| procs.by_mm(mm.id())) {
        let _ = p.write_to(w);
        return;
    }
    if let Some(s) = shell::shells() {
        let _ = s.write_pid(pid, w);
    }
}

/// A syscall of a shell's task (it runs at home), or of a stretched process at home (its
/// members follow a layout change).
fn syscall(regs: &mut SyscallRegs<'_>, nr: i32) -> bool {
    let Some(shell) = shell::shells().and_then(|s| s.by_current()) else {
        if orphan_entry("syscall", nr) {
            regs.set_return(EIO.to_errno() as i64);
            return true;
        }
        return home_syscall(regs, nr);
    };
    if !shell.running() {
        parked_entry(&shell, "syscall", nr);
        regs.set_return(EIO.to_errno() as i64);
        return true;
    }
    // Back to the `syscall` instruction: the process issues the same syscall again, at home.
    regs.rewind();
    jump::shell_syscall(&shell)
}

/// A syscall of a stretched process at home: if it changes the layout, it runs here with the
/// pusher held off and the members follow (mapsync.rs). True if it ran here (its result is in
/// `regs`); false to let the entry code run it as usual. An mremap first brings its range's
/// pages home, so that the move is local: here, not in mapsync.rs, since a pull may turn into
/// a jump, which carries the layout mapsync.rs builds.
fn home_syscall(regs: &mut SyscallRegs<'_>, nr: i32) -> bool {
    let Some(change) = mapsync::home_syscall_begin(regs, nr) else {
        return false;
    };
    if let Some(range) = change.recall() {
        let p = &change.p;
        if let Err(err) = pull::recall(p, range.start, range.end) {
            p.layout_done();
            pr_err!(
                "pid {}: cannot bring {:#x}..{:#x} home to remap it ({:?})\n",
                p.pid(),
                range.start,
                range.end,
                err
            );
            regs.set_return(ENOMEM.to_errno() as i64);
            return true;
        }
    }
    mapsync::home_syscall_run(change, regs, nr)
}

/// The current task's address space is a shell's but no registered shell is this task (it
/// was released, or its home lost, and is being killed): fail closed, never run the entry
/// here with the shell's identity. True if so (the task is killed).
fn orphan_entry(what: &str, nr: i32) -> bool {
    if !crate::sys::task::current_is_guest() {
        return false;
    }
    if let Some(node) = node::get() {
        Stats::inc(&node.stats.guest_orphan_entries);
    }
    pr_warn!(
        "pid {}: {} {} of a shell no longer registered; killing it\n",
        TaskRef::current().pid(),
        what,
        nr
    );
    TaskRef::current().signal(kernel::bindings::SIGKILL);
    true
}

/// A shell's task that is parked runs no user code (shell.rs): an entry from it means that
/// broke. Fail closed: nothing may run here with the shell's identity.
fn parked_entry(shell: &shell::Shell, what: &str, nr: i32) {
    pr_err!(
        "shell pid {} of process {}: {} {} while parked; killing it\n",
        shell.pid,
        shell.home_pid,
        what,
        nr
    );
    TaskRef::current().signal(kernel::bindings::SIGKILL);
}

/// A 32-bit syscall. Of a shell running a process: through `int $0x80` it goes home like a
/// 64-bit one (the instruction is two bytes too, and the home runs it as a 32-bit syscall);
/// sysenter and the 32-bit `syscall` come only from 32-bit code, whose state cannot jump:
/// the process is stopped, never served here. Of a stretched process at home: a 32-bit
/// layout change cannot be followed by its other nodes, so it is refused.
fn syscall32(regs: &mut SyscallRegs<'_>, nr: i32, int80: bool) -> bool {
    let Some(shell) = shell::shells().and_then(|s| s.by_current()) else {
        if orphan_entry("32-bit syscall", nr) {
            regs.set_return(EIO.to_errno() as i64);
            return true;
        }
        let stretched = home::procs().and_then(|p| p.by_mm(crate::sys::task::current_mm()));
        let Some(p) = stretched else { return false };
        if let Some(node) = node::get() {
            peer_warn!(
                node,
                "pid {}: 32-bit layout syscall {} of a stretched process refused (ENOSYS)\n",
                p.pid(),
                nr
            );
        }
        regs.set_return(-i64::from(bindings::ENOSYS));
        return true;
    };
    if !shell.running() {
        parked_entry(&shell, "32-bit syscall", nr);
        regs.set_return(EIO.to_errno() as i64);
        return true;
    }
    if !int80 {
        pr_err!(
            "shell of pid {}: 32-bit fast syscall {} away from home: 32-bit code cannot go home; killing the process\n",
            shell.home_pid,
            nr
        );
        TaskRef::current().signal(kernel::bindings::SIGKILL);
        regs.set_return(EIO.to_errno() as i64);
        return true;
    }
    regs.rewind();
    jump::shell_syscall(&shell)
}

/// A legacy vsyscall of a shell's task: it runs at home (the home's clock), with the
/// registers as they are (the home calls the vsyscall entry again).
fn vsyscall() -> bool {
    let Some(shell) = shell::shells().and_then(|s| s.by_current()) else {
        return orphan_entry("vsyscall", 0);
    };
    if !shell.running() {
        parked_entry(&shell, "vsyscall", 0);
        return true;
    }
    jump::shell_syscall(&shell)
}

/// A shell's task has a signal pending: a fault while it runs the process goes home.
fn signal() -> bool {
    let Some(shell) = shell::shells().and_then(|s| s.by_current()) else {
        return false;
    };
    if !shell.running() {
        return false;
    }
    match arch::take_fault_signal() {
        0 => false,
        sig => jump::shell_fault_signal(&shell, sig),
    }
}

/// An elastic address space is being torn down: a shell's (its process may have died
/// running here) or a stretched process's.
fn mm_exit(mm: MmId) {
    let Some(node) = node::get() else { return };
    if let Some(s) = shell::shells().and_then(|s| s.by_mm(mm)) {
        jump::shell_exit(node, &s);
        return;
    }
    if let Some(p) = home::procs().and_then(|procs| procs.by_mm(mm)) {
        home::exit(&p);
    }
}

/// A stretched process (or a shell) stays single-threaded: its pages move on the premise that
/// only the process itself touches its memory. A marked process that is not stretched yet
/// may have threads (it is then not stretched).
fn may_share_mm(mm: MmId) -> bool {
    let stretched = home::procs().and_then(|p| p.by_mm(mm));
    let shell = shell::shells().and_then(|s| s.by_mm(mm));
    if stretched.is_none() && shell.is_none() {
        return true;
    }
    if let Some(node) = node::get() {
        let pid = TaskRef::current().pid();
        peer_warn!(node, "pid {}: a new thread of a stretched process refused (EOPNOTSUPP): ElasticOS runs single-threaded processes\n", pid);
    }
    false
}

static HOOKS: Hooks = Hooks {
    marker_fault: crate::pull::home_fault,
    empty_fault: crate::fetch::shell_fault,
    syscall,
    syscall32,
    vsyscall,
    signal,
    throttle: crate::push::throttle,
    file_cow: crate::mapsync::home_file_cow,
    exec: stretch::on_exec,
    mm_exit,
    may_share_mm,
    fork_begin: crate::fork::begin,
    fork_end: crate::fork::end,
    stretch: sys_stretch,
    ctl: sys_ctl,
    jump: sys_jump,
    proc_show,
};

/// Brings the subsystem up: the node and the registries, then the pusher, then the C hooks
/// and the links' handlers, and last the sysfs directory through which user space starts it.
pub(crate) fn init() -> Result {
    crate::lent::init_key();
    let node = node::init()?;
    home::init()?;
    shell::init()?;
    stretch::init()?;
    jump::init()?;
    transport::set_handlers(&crate::dispatch::HANDLERS);
    crate::push::start(node)?;
    hooks::register(&HOOKS);
    sysfs::create(c"elastic", &ATTRS)
}
