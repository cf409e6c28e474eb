//! Layout changes of a stretched process: which syscalls change what its members hold.
//!
//! The home runs every syscall of the process. Before one that moves pages (mremap) it brings
//! the range's remote pages home, so the move is purely local; after one that unmaps or
//! empties a range (munmap, `MAP_FIXED`, brk shrinking, madvise `DONTNEED`; not `FREE`) it
//! tells each member to discard what it holds there. Protection changes need nothing here: a
//! jump carries the home's mappings, and the shell matches them before it runs the process.

use crate::proto::{PAGE_SIZE, USER_END};

/// x86_64 syscall numbers.
pub const NR_MMAP: u32 = 9;
/// See [`NR_MMAP`].
pub const NR_MUNMAP: u32 = 11;
/// See [`NR_MMAP`].
pub const NR_BRK: u32 = 12;
/// See [`NR_MMAP`].
pub const NR_MREMAP: u32 = 25;
/// See [`NR_MMAP`].
pub const NR_MADVISE: u32 = 28;

const MAP_FIXED: u64 = 0x10;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_FIXED: u64 = 2;
const MADV_DONTNEED: u64 = 4;
const MADV_REMOVE: u64 = 9;
const MADV_DONTNEED_LOCKED: u64 = 24;

/// A page-aligned range `[start, end)`, not empty, below [`USER_END`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Range {
    /// `[addr, addr + len)` with `len` rounded up to pages, as the mm syscalls take it;
    /// `None` if the kernel would refuse it anyway (unaligned, empty, wrapping, kernel space).
    pub fn of(addr: u64, len: u64) -> Option<Self> {
        let len = len.checked_add(PAGE_SIZE as u64 - 1)? & !(PAGE_SIZE as u64 - 1);
        let end = addr.checked_add(len)?;
        (addr & (PAGE_SIZE as u64 - 1) == 0 && len > 0 && end <= USER_END)
            .then_some(Self { start: addr, end })
    }
}

/// Members drop their pages of `range` (`unmap`: the mapping too) once the syscall succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discard {
    /// Where.
    pub range: Range,
    /// The home unmapped it.
    pub unmap: bool,
}

/// What one syscall of a stretched process asks of its members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// Bring these pages home before the syscall.
    pub recall: Option<Range>,
    /// Discard these after it, if it succeeded.
    pub discard: [Option<Discard>; 2],
    /// mremap: the old range is discarded only if the mapping moved.
    moves_from: Option<u64>,
    /// brk: it succeeded only if it returns the break asked for (else the old one).
    wants_ret: Option<u64>,
    /// madvise: a failed call may have emptied part of the range (see `emptied_on_error`).
    partial: bool,
}

impl Layout {
    /// The range a failed call may still have emptied in part, to be checked page by page:
    /// madvise skips holes (and then fails with `ENOMEM`) and stops at a mapping it refuses
    /// (`EINVAL`), having emptied the mappings before it. `None` after a success (`after`
    /// covers it) or for a call that changes nothing when it fails.
    pub fn emptied_on_error(&self, ret: i64) -> Option<Range> {
        if self.partial && (-4095..0).contains(&ret) {
            self.discard[0].map(|d| d.range)
        } else {
            None
        }
    }

    /// The discards due after the syscall returned `ret` (a negative errno: none).
    pub fn after(&self, ret: i64) -> impl Iterator<Item = Discard> + '_ {
        let ok = !(-4095..0).contains(&ret) && self.wants_ret.is_none_or(|w| w == ret as u64);
        let stayed = self.moves_from == Some(ret as u64);
        self.discard
            .iter()
            .enumerate()
            .filter_map(move |(i, d)| d.filter(|_| ok && !(i == 0 && stayed)))
    }
}

/// Classifies syscall `nr` with arguments `a`; `brk` is the process's current break. `None`:
/// nothing for the members to do.
pub fn classify(nr: u32, a: [u64; 6], brk: u64) -> Option<Layout> {
    let unmap = |r: Option<Range>| r.map(|range| Discard { range, unmap: true });
    let l = match nr {
        NR_MUNMAP => Layout {
            discard: [unmap(Range::of(a[0], a[1])), None],
            ..Layout::default()
        },
        // Only `MAP_FIXED` replaces what was there; `MAP_FIXED_NOREPLACE` fails instead.
        NR_MMAP if a[3] & MAP_FIXED != 0 && a[3] & MAP_FIXED_NOREPLACE == 0 => Layout {
            discard: [unmap(Range::of(a[0], a[1])), None],
            ..Layout::default()
        },
        NR_BRK if a[0] != 0 && a[0] < brk => {
            let page = PAGE_SIZE as u64 - 1;
            let start = a[0].checked_add(page)? & !page;
            let end = brk.checked_add(page)? & !page;
            if start >= end {
                return None;
            }
            Layout {
                discard: [unmap(Range::of(start, end - start)), None],
                wants_ret: Some(a[0]),
                ..Layout::default()
            }
        }
        // Not MADV_FREE: its pages may keep their data until the kernel needs the memory,
        // and the home's kernel keeps ElasticOS markers through it (it frees only present
        // pages and swap entries), so members keep what those markers name. Dropping the
        // members' copies left markers naming copies that no longer were: a fetch of one
        // spun on EAGAIN (50 s for 1,073 pages) and the remote-page count drifted.
        NR_MADVISE if matches!(a[2], MADV_DONTNEED | MADV_REMOVE | MADV_DONTNEED_LOCKED) => {
            Layout {
                discard: [
                    Range::of(a[0], a[1]).map(|range| Discard {
                        range,
                        unmap: false,
                    }),
                    None,
                ],
                partial: true,
                ..Layout::default()
            }
        }
        NR_MREMAP => {
            let old = Range::of(a[0], a[1]);
            let new = if a[3] & MREMAP_FIXED != 0 {
                Range::of(a[4], a[2])
            } else {
                None
            };
            Layout {
                recall: old,
                discard: [unmap(old), unmap(new)],
                moves_from: Some(a[0]),
                wants_ret: None,
                partial: false,
            }
        }
        _ => return None,
    };
    (l.recall.is_some() || l.discard.iter().any(Option::is_some)).then_some(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    fn discards(l: &Layout, ret: i64) -> Vec<(u64, u64, bool)> {
        l.after(ret)
            .map(|d| (d.range.start, d.range.end, d.unmap))
            .collect()
    }

    #[test]
    fn failed_madvise_is_checked_page_by_page() {
        let l = classify(NR_MADVISE, [0x10000, 0x3000, MADV_DONTNEED, 0, 0, 0], 0).unwrap();
        assert!(discards(&l, -12).is_empty());
        assert_eq!(l.emptied_on_error(-12), Some(r(0x10000, 0x13000)));
        assert_eq!(l.emptied_on_error(-22), Some(r(0x10000, 0x13000)));
        assert_eq!(l.emptied_on_error(0), None);
        // Other calls change nothing when they fail.
        let u = classify(NR_MUNMAP, [0x10000, 0x1000, 0, 0, 0, 0], 0).unwrap();
        assert_eq!(u.emptied_on_error(-12), None);
    }

    #[test]
    fn munmap_discards_whole_pages_after_success() {
        let l = classify(NR_MUNMAP, [0x10000, 0x1001, 0, 0, 0, 0], 0).unwrap();
        assert_eq!(l.recall, None);
        assert_eq!(discards(&l, 0), [(0x10000, 0x12000, true)]);
        assert!(discards(&l, -22).is_empty());
        // refused by the kernel anyway: unaligned, empty, kernel space, wrapping
        assert_eq!(classify(NR_MUNMAP, [0x10001, 0x1000, 0, 0, 0, 0], 0), None);
        assert_eq!(classify(NR_MUNMAP, [0x10000, 0, 0, 0, 0, 0], 0), None);
        assert_eq!(classify(NR_MUNMAP, [USER_END, 0x1000, 0, 0, 0, 0], 0), None);
        assert_eq!(
            classify(NR_MUNMAP, [0x10000, u64::MAX, 0, 0, 0, 0], 0),
            None
        );
    }

    #[test]
    fn mmap_only_when_it_replaces() {
        assert_eq!(
            classify(NR_MMAP, [0, 0x4000, 3, 0x22, u64::MAX, 0], 0),
            None
        );
        assert_eq!(
            classify(
                NR_MMAP,
                [0x40000, 0x4000, 3, 0x22 | MAP_FIXED_NOREPLACE, 0, 0],
                0
            ),
            None
        );
        let l = classify(NR_MMAP, [0x40000, 0x4000, 3, 0x32, 0, 0], 0).unwrap();
        assert_eq!(discards(&l, 0x40000), [(0x40000, 0x44000, true)]);
        assert!(discards(&l, -12).is_empty());
    }

    #[test]
    fn brk_only_when_it_shrinks() {
        assert_eq!(classify(NR_BRK, [0, 0, 0, 0, 0, 0], 0x60_0000), None);
        assert_eq!(
            classify(NR_BRK, [0x70_0000, 0, 0, 0, 0, 0], 0x60_0000),
            None
        );
        // shrinking within one page frees nothing
        assert_eq!(
            classify(NR_BRK, [0x60_0800, 0, 0, 0, 0, 0], 0x60_0f00),
            None
        );
        let l = classify(NR_BRK, [0x50_0800, 0, 0, 0, 0, 0], 0x60_0100).unwrap();
        assert_eq!(discards(&l, 0x50_0800), [(0x50_1000, 0x60_1000, true)]);
        // a failed brk returns the old break, not an error
        assert!(discards(&l, 0x60_0100).is_empty());
    }

    #[test]
    fn madvise_only_for_advice_that_drops_pages() {
        assert_eq!(classify(NR_MADVISE, [0x10000, 0x2000, 0, 0, 0, 0], 0), None);
        assert_eq!(
            classify(NR_MADVISE, [0x10000, 0x2000, 14, 0, 0, 0], 0),
            None
        );
        // Lazily freed pages keep their data on the members as at home.
        const MADV_FREE: u64 = 8;
        assert_eq!(
            classify(NR_MADVISE, [0x10000, 0x2000, MADV_FREE, 0, 0, 0], 0),
            None
        );
        for adv in [MADV_DONTNEED, MADV_REMOVE, MADV_DONTNEED_LOCKED] {
            let l = classify(NR_MADVISE, [0x10000, 0x2000, adv, 0, 0, 0], 0).unwrap();
            assert_eq!(discards(&l, 0), [(0x10000, 0x12000, false)]);
        }
    }

    #[test]
    fn mremap_recalls_first_and_discards_what_moved() {
        let l = classify(NR_MREMAP, [0x10000, 0x4000, 0x8000, 1, 0, 0], 0).unwrap();
        assert_eq!(l.recall, Some(r(0x10000, 0x14000)));
        // grown in place: nothing to discard; moved: the old range
        assert!(discards(&l, 0x10000).is_empty());
        assert_eq!(discards(&l, 0x90000), [(0x10000, 0x14000, true)]);
        assert!(discards(&l, -12).is_empty());
        // to a fixed place: what was there goes too
        let l = classify(NR_MREMAP, [0x10000, 0x4000, 0x8000, 3, 0x80000, 0], 0).unwrap();
        assert_eq!(
            discards(&l, 0x80000),
            [(0x10000, 0x14000, true), (0x80000, 0x88000, true)]
        );
    }

    #[test]
    fn other_syscalls_are_not_layout_changes() {
        for nr in [0, 1, 10, 60, 231] {
            assert_eq!(
                classify(nr, [0x10000, 0x1000, 4, 0x10, 0, 0], 0x60_0000),
                None
            );
        }
    }
}
