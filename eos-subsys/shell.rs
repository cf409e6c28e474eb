// SPDX-License-Identifier: GPL-2.0

//! The node that holds shells: it creates a shell when a home node stretches a process here,
//! installs pushed pages into the shell's address space and hands pages back on pulls.
//!
//! All of this runs in the receive thread of the link from the home node. A shell is keyed by
//! (home node, home pid); a home node can only touch its own shells.

use crate::jump::request_guest_leave;
use crate::node::{peer_warn, Node, Peer};
use crate::policy::JumpPolicy;
use crate::proto::{JumpReason, Message, Pages, Push, Stretch, PAGES_BUILD, PAGE_SIZE};
use crate::stats::LatencyHist;
use crate::sys::{crypto, file::FileData, mm, umh, time};
use crate::transport::Conn;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    time::msecs_to_jiffies,
};

/// A shell hosted here: a stopped copy of another node's process that holds the pages pushed
/// here, and runs the process when its execution jumps here.
#[pin_data]
pub(crate) struct Shell {
    pub(crate) home: u16,
    pub(crate) home_pid: u32,
    pub(crate) pid: i32,
    pub(crate) seed: Arc<umh::Seed>,
    pub(crate) mm: mm::MmRef,
    /// The shell's task runs the process now.
    pub(crate) running: AtomicBool,
    /// A jump home is queued on its task.
    pub(crate) leaving: AtomicBool,
    pub(crate) leave_reason: AtomicU64,
    #[pin]
    pub(crate) policy: Mutex<JumpPolicy>,
    pub(crate) arrivals: AtomicU64,
    pub(crate) jumps: AtomicU64,
    pub(crate) jump_lat: LatencyHist,
    pub(crate) syscalls: AtomicU64,
    /// Faults sent home (`jump::guest_fault`).
    pub(crate) faults: AtomicU64,
    /// The home's file mappings mapped here too, and those left out (no identical file).
    pub(crate) mapped_files: AtomicU64,
    pub(crate) unmapped_files: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) fetch_lat: LatencyHist,
}

impl Shell {
    /// Whether the shell's task runs the process now.
    pub(crate) fn running(&self) -> bool {
        self.running.load(Relaxed)
    }
}

/// The shells of this node.
#[pin_data]
pub(crate) struct Shells {
    #[pin]
    list: Mutex<KVec<Arc<Shell>>>,
}

impl Shells {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { list <- new_mutex!(KVec::new()) })
    }

    pub(crate) fn find(&self, home: u16, pid: u32) -> Option<Arc<Shell>> {
        self.list.lock().iter().find(|s| s.home == home && s.home_pid == pid).cloned()
    }

    pub(crate) fn by_seed(&self, seed: &umh::Seed) -> Option<Arc<Shell>> {
        self.list.lock().iter().find(|s| core::ptr::eq(&*s.seed, seed)).cloned()
    }

    pub(crate) fn by_mm(&self, mm: *mut kernel::bindings::mm_struct) -> Option<Arc<Shell>> {
        self.list.lock().iter().find(|s| s.mm.as_ptr() == mm).cloned()
    }

    /// The shell whose task is the current one.
    pub(crate) fn by_current(&self) -> Option<Arc<Shell>> {
        let pid = crate::sys::task::TaskRef::current().pid();
        self.list.lock().iter().find(|s| s.pid == pid).cloned()
    }

    fn remove_where(&self, f: impl Fn(&Shell) -> bool) -> KVec<Arc<Shell>> {
        let mut gone = KVec::new();
        let mut list = self.list.lock();
        for s in list.iter().filter(|s| f(s)) {
            if gone.push(s.clone(), GFP_KERNEL).is_err() {
                return KVec::new();
            }
        }
        if crate::kvec::retain(&mut list, |s| !f(s)).is_err() {
            return KVec::new();
        }
        gone
    }

    /// Number of shells, for `info`.
    pub(crate) fn count(&self) -> usize {
        self.list.lock().len()
    }

    /// Writes one line per shell.
    pub(crate) fn write_to(&self, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.write_where(w, |_| true)
    }

    /// The line of the shell whose task is `pid`, if any.
    pub(crate) fn write_pid(&self, pid: i32, w: &mut impl core::fmt::Write) -> core::fmt::Result {
        self.write_where(w, |s| s.pid == pid)
    }

    fn write_where(&self, w: &mut impl core::fmt::Write, f: impl Fn(&Shell) -> bool) -> core::fmt::Result {
        for s in self.list.lock().iter().filter(|s| f(s)) {
            writeln!(
                w,
                "shell home_node={} home_pid={} pid={} running={} arrivals={} jumps_home={} \
                 jump_p50_us={} jump_p99_us={} syscalls={} faults_home={} files_mapped={} files_missing={} fetches={} fetch_p50_us={} fetch_p99_us={}",
                s.home,
                s.home_pid,
                s.pid,
                s.running() as u8,
                s.arrivals.load(Relaxed),
                s.jumps.load(Relaxed),
                s.jump_lat.percentile_us(50),
                s.jump_lat.percentile_us(99),
                s.syscalls.load(Relaxed),
                s.faults.load(Relaxed),
                s.mapped_files.load(Relaxed),
                s.unmapped_files.load(Relaxed),
                s.fetches.load(Relaxed),
                s.fetch_lat.percentile_us(50),
                s.fetch_lat.percentile_us(99),
            )?;
        }
        Ok(())
    }
}

/// Serves one request from `peer` (the home node). Errors are answered, not fatal, unless
/// sending the answer fails.
pub(crate) fn serve(node: &'static Node, peer: &Peer, conn: &Conn, m: &Message<'_>) -> Result {
    match m {
        Message::Stretch(s) => {
            let (status, pid) = match stretch(node, peer, s) {
                Ok(pid) => (0, pid as u32),
                Err(e) => {
                    peer_warn!(node, "stretch of pid {} from node {} refused: {:?}\n", s.pid, peer.id, e);
                    (e.to_errno(), 0)
                }
            };
            conn.send(
                node,
                &Message::StretchOk {
                    req: s.req,
                    status,
                    shell_pid: pid,
                },
            )
        }
        Message::Push(p) => {
            let status = match push(node, peer, p) {
                Ok(()) => 0,
                Err(e) => {
                    peer_warn!(node, "push for pid {} from node {} failed: {:?}\n", p.pid, peer.id, e);
                    e.to_errno()
                }
            };
            conn.send(node, &Message::PushAck { req: p.req, status })
        }
        Message::Pull { req, pid, addr, count } => {
            let mut buf = KVVec::from_elem(0u8, *count as usize * PAGE_SIZE, GFP_KERNEL)?;
            let (status, n) = match pull(node, peer, *pid, *addr, *count, &mut buf) {
                Ok(0) => (PAGES_BUILD, 0),
                Ok(n) => (0, n),
                Err(e) => {
                    peer_warn!(node, "pull {:#x} for pid {} from node {} failed: {:?}\n", addr, pid, peer.id, e);
                    (e.to_errno(), 0)
                }
            };
            conn.send(
                node,
                &Message::Pages(Pages {
                    req: *req,
                    status,
                    addr: *addr,
                    pages: &buf[..n * PAGE_SIZE],
                }),
            )
        }
        Message::Jump(j) => {
            crate::jump::shell_receive(node, peer, j);
            Ok(())
        }
        Message::Recall { pid } => {
            if let Some(s) = node.shells.find(peer.id, *pid) {
                request_guest_leave(&s, JumpReason::Recall, true);
            }
            Ok(())
        }
        Message::Discard { pid, start, end, unmap } => {
            if let Err(e) = crate::mapsync::discard(node, peer, *pid, *start, *end, *unmap) {
                peer_warn!(node, "discard of {:#x}..{:#x} of pid {} from node {} failed: {:?}\n", start, end, pid, peer.id, e);
            }
            Ok(())
        }
        Message::Release { pid } => {
            for s in node.shells.remove_where(|s| s.home == peer.id && s.home_pid == *pid).iter() {
                s.seed.release();
            }
            Ok(())
        }
        _ => Err(EINVAL),
    }
}

/// Kills every shell of a home node that is gone.
pub(crate) fn home_lost(node: &Node, home: u16) {
    let gone = node.shells.remove_where(|s| s.home == home);
    for s in gone.iter() {
        pr_warn!(
            "node {} lost: killing shell pid {} of its process {}\n",
            home,
            s.pid,
            s.home_pid
        );
        s.seed.release();
    }
}

fn stretch(node: &Node, peer: &Peer, s: &Stretch<'_>) -> Result<i32> {
    if node.shells.find(peer.id, s.pid).is_some() {
        return Err(EEXIST);
    }
    // Same executable, byte for byte, or no shell: the layouts could not match otherwise.
    let mut path = KVec::with_capacity(s.path.len() + 1, GFP_KERNEL)?;
    path.extend_from_slice(s.path, GFP_KERNEL)?;
    path.push(0, GFP_KERNEL)?;
    let cpath = core::ffi::CStr::from_bytes_with_nul(&path).map_err(|_| EINVAL)?;
    let exe = FileData::read(cpath)?;
    if crypto::sha256(exe.bytes())? != s.exe_hash {
        pr_warn!("stretch refused: {:?} differs from the home node's executable\n", cpath);
        return Err(ENOEXEC);
    }
    drop(exe);
    let seed = umh::Seed::new()?;
    seed.state.lock().ids = crate::policy::shell_ids(s.uid, s.gid);
    umh::spawn(s.path, s.argv, s.env, &seed)?;
    // Wait for the shell to park (it does so on its first way to user mode).
    let deadline = time::now_ns() + 10_000_000_000;
    let pid = {
        let mut st = seed.state.lock();
        loop {
            if st.parked {
                break st.task.as_ref().map_or(0, |t| t.pid());
            }
            if st.failed || time::now_ns() >= deadline {
                return Err(ECHILD);
            }
            let _ = seed.cv.wait_interruptible_timeout(&mut st, msecs_to_jiffies(100));
        }
    };
    let shell_mm = seed.state.lock().mm.as_ref().and_then(|m| m.grab_again()).ok_or(ECHILD)?;
    // From now on an empty PTE there is the home's page (when the shell runs the process).
    // Exec wrote some pages of the shell (its initial stack, the tail of its data): they are
    // not the process's, whose pages all live at home until moved. Drop them, so that an
    // empty PTE in a writable mapping means "the home has it".
    if let Some(users) = shell_mm.users() {
        let lock = users.read();
        for v in lock.vmas_in(0, u64::MAX) {
            v.drop_private_pages();
        }
    }
    mm::mark_guest(&shell_mm);
    // Its exit is reported (`process::mm_exit`) in case it dies running the process.
    shell_mm.mark_elastic();
    let shell = Arc::pin_init(
        pin_init!(Shell {
            home: peer.id,
            home_pid: s.pid,
            pid,
            seed,
            mm: shell_mm,
            running: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            leave_reason: AtomicU64::new(0),
            policy <- new_mutex!(JumpPolicy::new(&node.jumps.tunables.lock(), time::now_ns())),
            arrivals: AtomicU64::new(0),
            jumps: AtomicU64::new(0),
            jump_lat: LatencyHist::new(),
            syscalls: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            mapped_files: AtomicU64::new(0),
            unmapped_files: AtomicU64::new(0),
            fetches: AtomicU64::new(0),
            fetch_lat: LatencyHist::new(),
        }),
        GFP_KERNEL,
    )?;
    node.shells.list.lock().push(shell, GFP_KERNEL)?;
    pr_info!("shell pid {} holds process {} of node {}\n", pid, s.pid, peer.id);
    Ok(pid)
}

fn shell_mm(node: &Node, peer: &Peer, pid: u32) -> Result<(Arc<Shell>, mm::MmRef)> {
    let shell = node.shells.find(peer.id, pid).ok_or(ESRCH)?;
    let st = shell.seed.state.lock();
    let t = st.task.as_ref().ok_or(ESRCH)?;
    let m = t.mm().ok_or(ESRCH)?;
    drop(st);
    Ok((shell, m))
}

/// Makes sure `[start, end)` is covered by VMAs in the shell, mapping anonymous memory into
/// the gaps (the home process grew its heap or mapped more since the stretch).
pub(crate) fn cover(users: &mm::MmUsers<'_>, start: u64, end: u64, prot: u32) -> Result {
    let mut gaps = [(0u64, 0u64); 8];
    let mut n = 0;
    {
        let lock = users.read();
        let mut at = start;
        while at < end && n < gaps.len() {
            match lock.vma_from(at) {
                Some(v) if v.start() <= at => at = v.end(),
                Some(v) => {
                    let stop = v.start().min(end);
                    gaps[n] = (at, stop);
                    n += 1;
                    at = stop;
                }
                None => {
                    gaps[n] = (at, end);
                    n += 1;
                    at = end;
                }
            }
        }
    }
    for &(a, b) in &gaps[..n] {
        users.with_mm(|| mm::map_fixed_anon(a, b - a, prot))?;
    }
    Ok(())
}

fn push(node: &Node, peer: &Peer, p: &Push<'_>) -> Result {
    let (_shell, m) = shell_mm(node, peer, p.pid)?;
    let users = m.users().ok_or(ESRCH)?;
    cover(&users, p.vma_start, p.vma_end, p.prot)?;
    let lock = users.read();
    for i in 0..p.count() {
        let addr = p.addr(i);
        let vma = lock.vma(addr).ok_or(EFAULT)?;
        vma.install(addr, 0, p.page(i), true)?;
    }
    Ok(())
}

/// Takes up to `count` pages from `addr`; returns how many (the prefix that was here). 0:
/// the first page has no data here (never written while the process ran here): the home
/// builds it itself.
fn pull(node: &Node, peer: &Peer, pid: u32, addr: u64, count: u32, buf: &mut [u8]) -> Result<usize> {
    let (_shell, m) = shell_mm(node, peer, pid)?;
    let users = m.users().ok_or(ESRCH)?;
    let lock = users.read();
    let mut n = 0;
    for i in 0..count as usize {
        let a = addr + (i * PAGE_SIZE) as u64;
        let Some(vma) = lock.vma(a) else { break };
        match vma.take(a, &mut buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE], 0) {
            Ok(mm::Taken::Data) => n += 1,
            Ok(mm::Taken::Build) if i == 0 => return Ok(0),
            Ok(mm::Taken::Build) => break,
            Err(e) if i == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(n)
}
