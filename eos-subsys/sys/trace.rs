// SPDX-License-Identifier: GPL-2.0

//! The `elastic:*` tracepoints (trace.c, elastic_trace.h): pull, push, fetch, jump, link.
//! Seen by ftrace, perf and bpftrace; off, each call costs a static-key test in C.

extern "C" {
    fn elastic_trace_pull(pid: u32, node: u16, addr: u64, pages: u32, lat_ns: u64);
    fn elastic_trace_push(pid: u32, node: u16, pages: u32, outcome: u8);
    fn elastic_trace_fetch(pid: u32, home: u16, addr: u64, built: bool, lat_ns: u64);
    fn elastic_trace_jump(pid: u32, from: u16, to: u16, reason: u8, lat_ns: u64);
    fn elastic_trace_link(node: u16, up: bool, caps: u32);
}

/// How a push batch ended, as `elastic_push` shows it.
#[derive(Clone, Copy)]
#[repr(u8)]
pub(crate) enum PushOutcome {
    Taken = 0,
    Refused = 1,
    Unknown = 2,
}

/// Home: a fault pulled `pages` pages at `addr` from `node` in `lat_ns`.
pub(crate) fn pull(pid: u32, node: u16, addr: u64, pages: u32, lat_ns: u64) {
    // SAFETY: plain values; the callee only records them.
    unsafe { elastic_trace_pull(pid, node, addr, pages, lat_ns) }
}

/// Home: a push batch of `pages` pages to `node` ended.
pub(crate) fn push(pid: u32, node: u16, pages: u32, outcome: PushOutcome) {
    // SAFETY: as in `pull`.
    unsafe { elastic_trace_push(pid, node, pages, outcome as u8) }
}

/// Shell: a fault fetched `addr` from `home` (`built`: the shell makes the page).
pub(crate) fn fetch(pid: u32, home: u16, addr: u64, built: bool, lat_ns: u64) {
    // SAFETY: as in `pull`.
    unsafe { elastic_trace_fetch(pid, home, addr, built, lat_ns) }
}

/// Execution of `pid` (its pid at home) left `from` for `to` (`reason`: the wire's byte).
pub(crate) fn jump(pid: u32, from: u16, to: u16, reason: u8, lat_ns: u64) {
    // SAFETY: as in `pull`.
    unsafe { elastic_trace_jump(pid, from, to, reason, lat_ns) }
}

/// The link to `node` came up with `caps`, or went down.
pub(crate) fn link(node: u16, up: bool, caps: u32) {
    // SAFETY: as in `pull`.
    unsafe { elastic_trace_link(node, up, caps) }
}
