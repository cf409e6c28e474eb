// SPDX-License-Identifier: GPL-2.0

//! Execution between nodes: what a `Jump` carries, copied out of the receive buffer, on its
//! way from the receive thread to the task that will run it (the home task, or a shell's).

use crate::proto::{CpuUsed, Jump};
use kernel::prelude::*;

/// Execution arriving: what the receive thread hands to the task that will run it. (The
/// jump's reason is for the sender's log; the receiver has no use for it.)
pub(crate) struct Arrival {
    pub(crate) req: u32,
    pub(crate) from: u16,
    pub(crate) state: KVVec<u8>,
    pub(crate) ranges: KVVec<u8>,
    pub(crate) files: KVVec<u8>,
    /// The page under the stack pointer and its address, if it came along.
    pub(crate) stack: Option<(u64, KVVec<u8>)>,
    /// CPU time the process used at the sender.
    pub(crate) cpu: CpuUsed,
    /// From the home: the budget that holds here and the pages the home kept (`Jump`).
    pub(crate) budget: u32,
    pub(crate) home_pages: u32,
}

impl Arrival {
    /// Copies a received `Jump` out of the receive buffer.
    pub(crate) fn from_msg(from: u16, j: &Jump<'_>) -> Result<Self> {
        fn copy(b: &[u8]) -> Result<KVVec<u8>> {
            let mut v = KVVec::with_capacity(b.len(), GFP_KERNEL)?;
            v.extend_from_slice(b, GFP_KERNEL)?;
            Ok(v)
        }
        let stack = if j.stack.is_empty() {
            None
        } else {
            Some((j.stack_addr, copy(j.stack)?))
        };
        Ok(Self {
            stack,
            req: j.req,
            from,
            state: copy(j.state)?,
            ranges: copy(j.ranges)?,
            files: copy(j.files)?,
            cpu: j.cpu,
            budget: j.budget,
            home_pages: j.home_pages,
        })
    }
}
