// SPDX-License-Identifier: GPL-2.0

//! Lent pages: copies of pages that left this node and that the receiver has not confirmed
//! yet (`Took`, or the acknowledgement of the jump that carried them). A request that comes
//! again for such a page (its answer was lost, late or could not be installed) is answered
//! from here instead of as "build it": the only copy is never dropped before the receiver
//! has it (the rules: core/src/ownership.rs).
//!
//! Clean copies (docs/ARCHITECTURE.md, "Clean copies"): when the home confirms pages with a
//! `keep` tag, a member keeps its lent copies as [`Lent`]'s clean copies instead of dropping
//! them, and the home remembers in [`Kept`] which member keeps which page, under which tag,
//! and the keyed hash of the bytes it installed. Evicting such a page unchanged sends only
//! its address and tag (`PushRefs`), as Linux keeps a swap slot for a clean page.

use crate::pagehash::{self, Key};
use crate::proto::PAGE_SIZE;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation};

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

/// Most clean copies this node keeps, for all its shells together (128 MiB). A clean copy
/// is a cache: dropping one costs its home a resend, never data.
pub(crate) const MAX_CLEAN: usize = 32768;
/// Clean copies kept on this node now.
static CLEAN_PAGES: AtomicUsize = AtomicUsize::new(0);

/// Clean copies this node keeps (all shells).
pub(crate) fn clean_pages() -> usize {
    CLEAN_PAGES.load(Relaxed)
}

/// A member's clean copy: the bytes it last gave its home for this page, confirmed by a
/// `Took` with tag `tag`. Nothing maps it; only a `PushRefs` naming the tag installs it.
pub(crate) struct CleanCopy {
    tag: u32,
    data: KVVec<u8>,
}

impl CleanCopy {
    /// The page's bytes.
    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }
}

/// The lent pages of one process on this node (one per address), and its clean copies.
pub(crate) struct Lent {
    pages: KVVec<LentPage>,
    /// Dropped unconfirmed because the table was full.
    pub(crate) dropped: u64,
    /// Clean copies by address (a shell's only).
    clean: RBTree<u64, CleanCopy>,
    clean_len: usize,
}

impl Drop for Lent {
    fn drop(&mut self) {
        CLEAN_PAGES.fetch_sub(self.clean_len, Relaxed);
    }
}

impl Lent {
    pub(crate) fn new() -> Self {
        Self {
            pages: KVVec::new(),
            dropped: 0,
            clean: RBTree::new(),
            clean_len: 0,
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

    /// Node `from` confirmed `count` pages from `addr` (`Took`): their copies go, or, with a
    /// `keep` tag and `room`, the copies of data it answered stay as clean copies.
    pub(crate) fn took(&mut self, from: u16, addr: u64, count: u32, keep: u32, room: bool) {
        let end = addr.saturating_add(count as u64 * PAGE_SIZE as u64);
        if keep != 0 && room {
            for i in 0..self.pages.len() {
                let p = &mut self.pages[i];
                if p.addr < addr || p.addr >= end || p.to != LentTo::Answer(from) {
                    continue;
                }
                if p.data.is_empty() || clean_pages() >= MAX_CLEAN {
                    continue;
                }
                let (a, data) = (p.addr, core::mem::replace(&mut p.data, KVVec::new()));
                self.keep_clean(a, keep, data);
            }
        }
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

    /// A page was installed here at `addr`: an older lent or clean copy of it is stale.
    pub(crate) fn forget(&mut self, addr: u64) {
        self.retain(|_, p| p.addr != addr);
        self.drop_clean(addr, addr + PAGE_SIZE as u64);
    }

    /// Keeps `data` as the clean copy of `addr` under `tag` (replacing an older one); without
    /// memory for the entry it is dropped.
    fn keep_clean(&mut self, addr: u64, tag: u32, data: KVVec<u8>) {
        let Ok(node) = RBTreeNodeReservation::new(GFP_KERNEL) else {
            return;
        };
        if self
            .clean
            .insert(node.into_node(addr, CleanCopy { tag, data }))
            .is_none()
        {
            self.clean_len += 1;
            CLEAN_PAGES.fetch_add(1, Relaxed);
        }
    }

    /// Takes out the clean copy of `addr` if its tag is `tag` (a `PushRefs` installs it).
    pub(crate) fn take_clean(&mut self, addr: u64, tag: u32) -> Option<RBTreeNode<u64, CleanCopy>> {
        if self.clean.get(&addr)?.tag != tag {
            return None;
        }
        let n = self.clean.remove_node(&addr)?;
        self.clean_len -= 1;
        CLEAN_PAGES.fetch_sub(1, Relaxed);
        Some(n)
    }

    /// Puts back a copy [`Lent::take_clean`] took out (allocates nothing).
    pub(crate) fn put_back_clean(&mut self, n: RBTreeNode<u64, CleanCopy>) {
        if self.clean.insert(n).is_none() {
            self.clean_len += 1;
            CLEAN_PAGES.fetch_add(1, Relaxed);
        }
    }

    /// Drops the clean copies in `[start, end)` (allocates nothing).
    pub(crate) fn drop_clean(&mut self, start: u64, end: u64) {
        while let Some(c) = self.clean.cursor_lower_bound(&start) {
            if *c.current().0 >= end {
                break;
            }
            drop(c.remove_current());
            self.clean_len -= 1;
            CLEAN_PAGES.fetch_sub(1, Relaxed);
        }
    }

    /// Drops every clean copy (memory is short here).
    pub(crate) fn clear_clean(&mut self) {
        self.drop_clean(0, u64::MAX);
    }

    /// Keeps the pages for which `keep(index, page)` holds (allocates nothing: a removal
    /// never fails).
    fn retain(&mut self, keep: impl Fn(usize, &LentPage) -> bool) {
        crate::kvec::retain(&mut self.pages, keep);
    }
}

/// What the home knows of a clean copy a member keeps of one of its pages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeptRef {
    /// The member.
    pub(crate) node: u16,
    /// The tag of the `Took` that confirmed it.
    pub(crate) tag: u32,
    /// Keyed hash of the bytes installed here from that member's answer.
    pub(crate) hash: u64,
}

/// Most pages a process remembers clean copies of (256 MiB of its memory).
const MAX_KEPT: usize = 65536;

/// The home's side of clean copies, for one process: by page address, the member that keeps
/// a clean copy of it (`KeptRef`). A record may outlive its copy (the member dropped it) or
/// the page here (it changed, was unmapped): it is used only when the page's hash still
/// matches, and the member still checks the tag, so a stale record costs a resend, never data.
pub(crate) struct Kept {
    refs: RBTree<u64, KeptRef>,
    len: usize,
    next_tag: u32,
}

impl Kept {
    pub(crate) fn new() -> Self {
        Self {
            refs: RBTree::new(),
            len: 0,
            next_tag: 0,
        }
    }

    /// A tag for the next `Took` that asks its receiver to keep copies (never 0).
    pub(crate) fn new_tag(&mut self) -> u32 {
        self.next_tag = self.next_tag.wrapping_add(1).max(1);
        self.next_tag
    }

    /// Whether another record fits.
    pub(crate) fn has_room(&self) -> bool {
        self.len < MAX_KEPT
    }

    /// Records that `r.node` keeps a clean copy of `addr`, given a node for the entry
    /// (allocated before the caller's lock).
    pub(crate) fn record(
        &mut self,
        addr: u64,
        r: KeptRef,
        node: RBTreeNodeReservation<u64, KeptRef>,
    ) {
        if self.refs.insert(node.into_node(addr, r)).is_none() {
            self.len += 1;
        }
    }

    /// The record of `addr`, if any.
    pub(crate) fn get(&self, addr: u64) -> Option<KeptRef> {
        self.refs.get(&addr).copied()
    }

    /// Forgets `addr` (allocates nothing).
    pub(crate) fn forget(&mut self, addr: u64) {
        if self.refs.remove(&addr).is_some() {
            self.len -= 1;
        }
    }
}

/// This boot's key for page hashes (`pagehash`), drawn once at start-up.
static KEY: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Draws the page-hash key (module start, before any link is up).
pub(crate) fn init_key() {
    let b = crate::sys::crypto::random_bytes::<16>();
    let mut k = [0u8; 8];
    k.copy_from_slice(&b[..8]);
    KEY[0].store(u64::from_le_bytes(k), Relaxed);
    k.copy_from_slice(&b[8..]);
    KEY[1].store(u64::from_le_bytes(k), Relaxed);
}

/// The keyed hash of one page.
pub(crate) fn page_hash(page: &[u8]) -> u64 {
    let key = Key([KEY[0].load(Relaxed), KEY[1].load(Relaxed)]);
    pagehash::page_hash(&key, &page[..PAGE_SIZE])
}
