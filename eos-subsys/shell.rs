// SPDX-License-Identifier: GPL-2.0

//! The node that holds shells: it creates a shell when a home node stretches a process here,
//! installs pushed pages into the shell's address space and hands pages back on pulls.
//!
//! All of this runs in the receive thread of the link from the home node. A shell is keyed by
//! (home node, home pid); a home node can only touch its own shells.

use crate::node::{peer_warn, Node, Peer};
use crate::proto::{Message, Pages, Push, Stretch, PAGE_SIZE};
use crate::sys::{crypto, file::FileData, mm, umh, time};
use crate::transport::Conn;
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    time::msecs_to_jiffies,
};

/// A shell hosted here.
pub(crate) struct Shell {
    pub(crate) home: u16,
    pub(crate) home_pid: u32,
    pub(crate) pid: i32,
    seed: Arc<umh::Seed>,
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

    fn find(&self, home: u16, pid: u32) -> Option<Arc<Shell>> {
        self.list.lock().iter().find(|s| s.home == home && s.home_pid == pid).cloned()
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
        for s in self.list.lock().iter() {
            writeln!(w, "shell home_node={} home_pid={} pid={}", s.home, s.home_pid, s.pid)?;
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
    let shell = Arc::new(
        Shell {
            home: peer.id,
            home_pid: s.pid,
            pid,
            seed,
        },
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
fn cover(users: &mm::MmUsers<'_>, start: u64, end: u64, prot: u32) -> Result {
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

/// Takes up to `count` pages from `addr`; returns how many (the prefix that was here).
fn pull(node: &Node, peer: &Peer, pid: u32, addr: u64, count: u32, buf: &mut [u8]) -> Result<usize> {
    let (_shell, m) = shell_mm(node, peer, pid)?;
    let users = m.users().ok_or(ESRCH)?;
    let lock = users.read();
    let mut n = 0;
    for i in 0..count as usize {
        let a = addr + (i * PAGE_SIZE) as u64;
        let Some(vma) = lock.vma(a) else { break };
        if vma.take(a, &mut buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]).is_err() {
            break;
        }
        n += 1;
    }
    if n == 0 {
        return Err(ENOENT);
    }
    Ok(n)
}
