//! `--root-shell`: a peer holding a valid key asks the node for a shell of uid 0 and then
//! tries to run code of its choosing in it: a Jump that starts execution in an RWX anonymous
//! range, then one whose registers make the shell issue `exit_group(77)` at a `syscall`
//! instruction of busybox. The node must start the shell unprivileged, refuse the first jump,
//! and send the syscall home (to us) instead of running it. We then hold the link open for
//! `hold` seconds so the test can look at the shell on the node.

use crate::{authenticated, frame, read_frame, Link};
use eos_core::peer::Secret;
use eos_core::proto::{
    put_jump_range, Header, Jump, JumpReason, Message, MsgType, Pages, Stretch, HEADER_LEN,
    JUMP_RANGE_LEN, PAGES_BUILD, PAGE_SIZE, RANGE_ANON, USER_END,
};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The process id we claim at home.
const PID: u32 = 31_337;
/// A file only root may read on the node, and its contents (the test writes it there).
pub(crate) const PROBE: (&[u8], &[u8]) = (b"/root/eos-probe", b"eos-probe-secret\n");
/// Where the RWX anonymous range goes (empty in a static busybox).
const RWX: u64 = 0x1000_0000;
/// `struct elastic_cpu`: 16 registers, ip, flags, fsbase, gsbase, xstate_size u32, reserved.
const CPU_LEN: usize = 168;

/// A state image as the kernel's loader takes it: the registers, then an XSAVE image in the
/// standard format with every component in its initial state (header all zero).
fn state(gpr: [u64; 16], ip: u64) -> Vec<u8> {
    // CPUID leaf 0xD: the XSAVE size of the features enabled (the node requires XSAVE).
    let xs = std::arch::x86_64::__cpuid_count(0xd, 0).ebx as usize;
    let mut b = vec![0u8; CPU_LEN + xs];
    for (i, r) in gpr.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&r.to_le_bytes());
    }
    b[128..136].copy_from_slice(&ip.to_le_bytes());
    b[136..144].copy_from_slice(&0x202u64.to_le_bytes());
    b[160..164].copy_from_slice(&(xs as u32).to_le_bytes());
    // MXCSR at its reset value (its mask is checked even when SSE is in its initial state).
    b[CPU_LEN + 24..CPU_LEN + 28].copy_from_slice(&0x1f80u32.to_le_bytes());
    b
}

/// The address of the first `syscall` (0f 05) in an executable segment of the static ELF
/// `elf`, and the page-aligned bounds of all its loadable segments.
fn syscall_site(elf: &[u8]) -> Result<u64, String> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 {
        return Err("not a 64-bit ELF".into());
    }
    let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54) as usize, u16_at(56));
    for i in 0..usize::from(phnum) {
        let ph = phoff + i * phentsize;
        // PT_LOAD with PF_X.
        if u32_at(ph) != 1 || u32_at(ph + 4) & 1 == 0 {
            continue;
        }
        let (off, vaddr, filesz) = (
            u64_at(ph + 8) as usize,
            u64_at(ph + 16),
            u64_at(ph + 32) as usize,
        );
        let seg = elf.get(off..off + filesz).ok_or("segment past the file")?;
        if let Some(at) = seg.windows(2).position(|w| w == [0x0f, 0x05]) {
            return Ok(vaddr + at as u64);
        }
    }
    Err("no syscall instruction in an executable segment".into())
}

/// A Jump frame to the shell of [`PID`] with `ranges`, CPU state `st`, request `req`.
fn jump(req: u32, st: &[u8], ranges: &[u8]) -> Vec<u8> {
    let m = Message::Jump(Jump {
        req,
        pid: PID,
        to_home: false,
        reason: JumpReason::Asked,
        state: st,
        ranges,
        files: &[],
        stack: &[],
        stack_addr: 0,
        cpu: Default::default(),
        budget: 0,
        home_pages: 0,
    });
    let mut b = vec![0u8; HEADER_LEN + 64 * 1024];
    let n = m.encode(0, &mut b).expect("encodes");
    b.truncate(n);
    b
}

/// Reads frames until one of type `want` (answering the node's pings); its header and payload.
fn await_frame(l: &mut Link, want: MsgType, limit: Duration) -> Result<(Header, Vec<u8>), String> {
    await_frame_sending(l, want, limit, false)
}

/// [`await_frame`]; `code`: answer the shell's fetches with a page of our own code (`jmp .`,
/// which would spin there for ever) instead of "build it".
fn await_frame_sending(
    l: &mut Link,
    want: MsgType,
    limit: Duration,
    code: bool,
) -> Result<(Header, Vec<u8>), String> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        let (h, p) = match read_frame(l, &format!("{want:?}")) {
            Ok(f) => f,
            Err(e) if timed_out(&e) => continue,
            Err(e) => return Err(e),
        };
        if h.ty == want {
            return Ok((h, p));
        }
        match h.ty {
            MsgType::Ping => {
                let t = u64::from_le_bytes(p[..8].try_into().unwrap());
                l.send(&frame(&Message::Pong(t)))?;
            }
            // Pongs, and the shell's word that it made a page itself.
            MsgType::Pong | MsgType::Took => {}
            MsgType::Fetch => {
                // A page of "the process" (its code, here): we have no copy of our own, so
                // the shell builds it from its file, as with an honest home.
                let (req, addr) = match Message::decode(&h, &p) {
                    Ok(Message::Fetch { req, addr, .. }) => (req, addr),
                    other => return Err(format!("undecodable fetch: {other:?}")),
                };
                if code {
                    println!("badpeer rootshell: the shell fetched {addr:#x}; sent our code");
                    let page = [0xeb_u8, 0xfe].repeat(PAGE_SIZE / 2);
                    let m = Message::Pages(Pages {
                        req,
                        status: 0,
                        addr,
                        pages: &page,
                    });
                    let mut b = vec![0u8; HEADER_LEN + 2 * PAGE_SIZE];
                    let n = m.encode(0, &mut b).map_err(|e| format!("{e:?}"))?;
                    b.truncate(n);
                    l.send(&b)?;
                } else {
                    println!("badpeer rootshell: the shell fetched {addr:#x}; told to build it");
                    l.send(&frame(&Message::Pages(Pages {
                        req,
                        status: PAGES_BUILD,
                        addr,
                        pages: &[],
                    })))?;
                }
            }
            other => return Err(format!("unexpected {other:?} while waiting for {want:?}")),
        }
    }
    Err(format!("no {want:?} in {} s", limit.as_secs()))
}

/// A read that found nothing yet (the socket's read timeout), as `read_frame` words it.
fn timed_out(e: &str) -> bool {
    e.contains("os error 11") || e.contains("timed out")
}

fn status(p: &[u8]) -> i32 {
    i32::from_le_bytes(p[4..8].try_into().unwrap())
}

pub(crate) fn run(
    target: SocketAddr,
    as_id: u16,
    secret: &Secret,
    responder: u16,
    hold: u64,
) -> Result<String, String> {
    let exe = std::fs::read("/bin/busybox").map_err(|e| format!("/bin/busybox: {e}"))?;
    let site = syscall_site(&exe)?;
    let mut l = authenticated(target, as_id, secret, responder)?;
    // A root-only file on the node ([`PROBE`], put there by the test): a stretch naming it
    // must be refused the same way whether or not we guessed its contents.
    let mut said = Vec::new();
    for (req, hash) in [(10, Sha256::digest(PROBE.1).into()), (11, [0u8; 32])] {
        l.send(&frame(&Message::Stretch(Stretch {
            req,
            pid: PID + req,
            exe_hash: hash,
            uid: 0,
            gid: 0,
            path: PROBE.0,
            argv: b"x\0",
            env: b"",
        })))?;
        let (_, p) = await_frame(&mut l, MsgType::StretchOk, Duration::from_secs(30))?;
        said.push(status(&p));
    }
    if said[0] >= 0 || said[0] != said[1] {
        return Err(format!(
            "a stretch naming the root-only {:?} answered {} with its true hash and {} with a wrong one: an oracle on its contents",
            String::from_utf8_lossy(PROBE.0),
            said[0],
            said[1]
        ));
    }
    println!("badpeer rootshell: probe of a root-only file refused alike ({said:?})");
    let hash: [u8; 32] = Sha256::digest(&exe).into();
    l.send(&frame(&Message::Stretch(Stretch {
        req: 1,
        pid: PID,
        exe_hash: hash,
        uid: 0,
        gid: 0,
        path: b"/bin/busybox",
        argv: b"sh\0",
        env: b"",
    })))?;
    let (_, p) = await_frame(&mut l, MsgType::StretchOk, Duration::from_secs(30))?;
    if status(&p) != 0 {
        return Err(format!(
            "stretch refused ({}): nothing to attack",
            status(&p)
        ));
    }
    let shell_pid = u32::from_le_bytes(p[8..12].try_into().unwrap());
    println!("badpeer rootshell: shell pid {shell_pid}");
    // The shell's own file mappings stay (non-anonymous, r-x); between them an anonymous RWX
    // range.
    let mut ranges = vec![0u8; 3 * JUMP_RANGE_LEN];
    put_jump_range(&mut ranges, 0x1000, RWX, 5);
    put_jump_range(
        &mut ranges[JUMP_RANGE_LEN..],
        RWX,
        RWX + 0x1000,
        7 | RANGE_ANON,
    );
    put_jump_range(&mut ranges[2 * JUMP_RANGE_LEN..], RWX + 0x1000, USER_END, 5);
    // 1: execution starts in the RWX range.
    l.send(&jump(2, &state([0x4141_4141; 16], RWX), &ranges))?;
    let (_, p) = await_frame(&mut l, MsgType::JumpAck, Duration::from_secs(30))?;
    let refused = status(&p);
    if refused >= 0 {
        return Err(format!(
            "a jump into an RWX anonymous range was accepted ({refused})"
        ));
    }
    // Busybox's own code, registers of our choosing: exit_group(77).
    let mut gpr = [0x4242_4242_4242_4242u64; 16];
    gpr[0] = 231;
    gpr[5] = 77;
    // A stack pointer in no mapping: the way home carries no stack page (none to fetch).
    gpr[7] = 0x800;
    // 2: the shell fetches the code page there from us (its home): we send our own code
    // (`jmp .`). It must not run it (it would spin there): the fault comes home instead.
    l.send(&jump(4, &state(gpr, site), &ranges))?;
    let (_, p) = await_frame(&mut l, MsgType::JumpAck, Duration::from_secs(30))?;
    if status(&p) != 0 {
        return Err(format!(
            "a jump into busybox's code was refused ({})",
            status(&p)
        ));
    }
    let (h, p) = await_frame_sending(&mut l, MsgType::Jump, Duration::from_secs(20), true)
        .map_err(|e| {
            format!("the shell did not come home after we sent it code (it runs it?): {e}")
        })?;
    let (req, reason) = match Message::decode(&h, &p) {
        Ok(Message::Jump(j)) if j.to_home => (j.req, j.reason),
        other => return Err(format!("not a jump home: {other:?}")),
    };
    if reason != JumpReason::FaultSignal {
        return Err(format!(
            "after our code page the shell came home for {reason:?}, not its fault"
        ));
    }
    l.send(&frame(&Message::JumpAck { req, status: 0 }))?;
    println!("badpeer rootshell: our code page was refused; the fault came home");
    // 3: the same with its own code page (we say "build it").
    l.send(&jump(3, &state(gpr, site), &ranges))?;
    let (_, p) = await_frame(&mut l, MsgType::JumpAck, Duration::from_secs(30))?;
    if status(&p) != 0 {
        return Err(format!(
            "a jump into busybox's code at {site:#x} was refused ({}): the syscall was not tried",
            status(&p)
        ));
    }
    // Its syscall must come home to us, not run there.
    let (h, p) = await_frame(&mut l, MsgType::Jump, Duration::from_secs(30))
        .map_err(|e| format!("the shell's syscall did not come home: {e}"))?;
    let (req, reason, to_home) = match Message::decode(&h, &p) {
        Ok(Message::Jump(j)) => (j.req, j.reason, j.to_home),
        other => return Err(format!("undecodable jump home: {other:?}")),
    };
    if !to_home || reason != JumpReason::Syscall {
        return Err(format!(
            "jump back to_home {to_home}, reason {reason:?}: not the syscall"
        ));
    }
    l.send(&frame(&Message::JumpAck { req, status: 0 }))?;
    println!(
        "badpeer rootshell: PASS (shell {shell_pid} asked as uid 0; jump into RWX refused with {refused}; our code sent for its text page refused, the fault came home; exit_group at {site:#x} came home as a syscall); holding {hold} s"
    );
    let end = Instant::now() + Duration::from_secs(hold);
    while Instant::now() < end {
        match read_frame(&mut l, "anything") {
            Ok((h, p)) if h.ty == MsgType::Ping => {
                let t = u64::from_le_bytes(p[..8].try_into().unwrap());
                l.send(&frame(&Message::Pong(t)))?;
            }
            Ok(_) => {}
            Err(e) if timed_out(&e) => {}
            Err(e) => {
                println!("badpeer rootshell: the node closed the link while held: {e}");
                break;
            }
        }
    }
    println!("badpeer rootshell: done");
    Ok(String::new())
}

/// `--shells N [--parallel] [--uid-split K]`: a peer holding a valid key asks the node for `n`
/// shells (busybox, one pid each; the first `split` for uid 1000, the others for uid 1001) on
/// one link, one after the other or (`parallel`) all at once; prints what each stretch was
/// answered, in request order, then closes the link (the node drops them with it).
pub(crate) fn many_shells(
    target: SocketAddr,
    as_id: u16,
    secret: &Secret,
    responder: u16,
    n: u32,
    parallel: bool,
    split: u32,
) -> Result<String, String> {
    let exe = std::fs::read("/bin/busybox").map_err(|e| format!("/bin/busybox: {e}"))?;
    let hash: [u8; 32] = Sha256::digest(&exe).into();
    let mut l = authenticated(target, as_id, secret, responder)?;
    let stretch = |i: u32| {
        frame(&Message::Stretch(Stretch {
            req: 100 + i,
            pid: PID + 100 + i,
            exe_hash: hash,
            uid: if i < split { 1000 } else { 1001 },
            gid: 1000,
            path: b"/bin/busybox",
            argv: b"sh\0",
            env: b"",
        }))
    };
    // One after the other: each answered before the next goes. At once: all sent, then the
    // answers, in whatever order they come, put back in request order.
    let at_once = if parallel { n } else { 1 };
    let mut said = vec![None; n as usize];
    let mut sent = 0;
    while sent < n {
        let batch = at_once.min(n - sent);
        for i in sent..sent + batch {
            l.send(&stretch(i))?;
        }
        for _ in 0..batch {
            let (_, p) = await_frame(&mut l, MsgType::StretchOk, Duration::from_secs(30))?;
            let req = u32::from_le_bytes(p[0..4].try_into().unwrap());
            let slot = said
                .get_mut(req.wrapping_sub(100) as usize)
                .ok_or(format!("an answer to request {req}, which we never sent"))?;
            *slot = Some(status(&p));
        }
        sent += batch;
    }
    let said: Vec<i32> = said.into_iter().map(|s| s.unwrap_or(1)).collect();
    let ok = said.iter().filter(|&&s| s == 0).count();
    Ok(format!("ok={ok} statuses={said:?}"))
}
