// SPDX-License-Identifier: GPL-2.0

//! Lent pages: copies of pages that left this node and that the receiver has not confirmed
//! yet (`Took`, or the acknowledgement of the jump that carried them). A request that comes
//! again for such a page (its answer was lost, late or could not be installed) is answered
//! from here instead of as "build it": the only copy is never dropped before the receiver
//! has it (the rules: core/src/ownership.rs).

use crate::proto::PAGE_SIZE;
use kernel::prelude::*;

/// Most pages kept lent per process. Each normally goes within a round trip; only a lost
/// confirmation leaves one behind, so the oldest is dropped first when this fills up.
const MAX_LENT: usize = 1024;

/// Who a lent page went to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LentTo {
    /// A `Pages` answer to node `0`: it goes on that node's `Took`.
    Answer(u16),
    /// The jump to node `0` carries it: it goes when that jump is acknowledged.
    Jump(u16),
}

struct LentPage {
    addr: u64,
    to: LentTo,
    data: KVVec<u8>,
}

/// The lent pages of one process on this node (one per address).
pub(crate) struct Lent {
    pages: KVVec<LentPage>,
    /// Dropped unconfirmed because the table was full.
    pub(crate) dropped: u64,
}

impl Lent {
    pub(crate) fn new() -> Self {
        Self {
            pages: KVVec::new(),
            dropped: 0,
        }
    }

    fn find(&self, addr: u64) -> Option<usize> {
        self.pages.iter().position(|p| p.addr == addr)
    }

    /// Keeps a copy of the page at `addr` that leaves for `to`.
    pub(crate) fn lend(&mut self, addr: u64, to: LentTo, data: &[u8]) -> Result {
        if let Some(i) = self.find(addr) {
            let p = &mut self.pages[i];
            p.to = to;
            p.data.copy_from_slice(&data[..PAGE_SIZE]);
            return Ok(());
        }
        if self.pages.len() >= MAX_LENT {
            self.retain(|i, _| i != 0);
            self.dropped += 1;
        }
        let mut copy = KVVec::with_capacity(PAGE_SIZE, GFP_KERNEL)?;
        copy.extend_from_slice(&data[..PAGE_SIZE], GFP_KERNEL)?;
        self.pages.push(
            LentPage {
                addr,
                to,
                data: copy,
            },
            GFP_KERNEL,
        )?;
        Ok(())
    }

    /// Keeps the record that the page at `addr` was answered "build it" to `to`, so that the
    /// answer can be given again if it is lost (the PTE here names `to` from then on).
    pub(crate) fn lend_build(&mut self, addr: u64, to: LentTo) -> Result {
        if let Some(i) = self.find(addr) {
            let p = &mut self.pages[i];
            p.to = to;
            p.data = KVVec::new();
            return Ok(());
        }
        if self.pages.len() >= MAX_LENT {
            self.retain(|i, _| i != 0);
            self.dropped += 1;
        }
        self.pages.push(
            LentPage {
                addr,
                to,
                data: KVVec::new(),
            },
            GFP_KERNEL,
        )?;
        Ok(())
    }

    /// Copies the page lent from `addr` to node `to` (either way) into `buf`: `Some(true)`,
    /// or `Some(false)` if it was answered "build it" (`buf` untouched); `None`: none lent.
    pub(crate) fn get(&self, addr: u64, to: u16, buf: &mut [u8]) -> Option<bool> {
        let p = &self.pages[self.find(addr)?];
        if !matches!(p.to, LentTo::Answer(n) | LentTo::Jump(n) if n == to) {
            return None;
        }
        if p.data.is_empty() {
            return Some(false);
        }
        buf[..PAGE_SIZE].copy_from_slice(&p.data);
        Some(true)
    }

    /// Copies the page lent from `addr` to node `to` into `buf`; false if there is no such
    /// copy with data.
    pub(crate) fn copy(&self, addr: u64, to: u16, buf: &mut [u8]) -> bool {
        self.get(addr, to, buf) == Some(true)
    }

    /// Whether a page from `addr` is lent out (to anyone).
    pub(crate) fn has(&self, addr: u64) -> bool {
        self.find(addr).is_some()
    }

    /// Node `from` confirmed `count` pages from `addr` (`Took`): their copies go.
    pub(crate) fn took(&mut self, from: u16, addr: u64, count: u32) {
        let end = addr.saturating_add(count as u64 * PAGE_SIZE as u64);
        self.retain(|_, p| {
            !(p.addr >= addr
                && p.addr < end
                && matches!(p.to, LentTo::Answer(n) | LentTo::Jump(n) if n == from))
        });
    }

    /// The jump to `to` was acknowledged: the page it carried goes.
    pub(crate) fn jump_done(&mut self, to: u16) {
        self.retain(|_, p| p.to != LentTo::Jump(to));
    }

    /// A page was installed here at `addr`: an older lent copy of it is stale.
    pub(crate) fn forget(&mut self, addr: u64) {
        self.retain(|_, p| p.addr != addr);
    }

    /// Keeps the pages for which `keep(index, page)` holds (allocates nothing: a removal
    /// never fails).
    fn retain(&mut self, keep: impl Fn(usize, &LentPage) -> bool) {
        crate::kvec::retain(&mut self.pages, keep);
    }
}
