//! Target `layout`: `eos_core::layout` ([`classify`], [`Layout::after`], [`Range::of`]) on
//! arbitrary syscall numbers, arguments, breaks and return values.
//!
//! Input: a syscall selector byte (mostly one of the five mm syscalls), six arguments, the
//! current break, then any number of return values. Checked against the module's docs:
//! - `Range::of` is `[addr, addr + len rounded up to pages)`, and `None` exactly when the
//!   kernel would refuse the range (unaligned, empty, wrapping, at or above `USER_END`);
//! - `classify` gives something only for munmap, `MAP_FIXED` (not `MAP_FIXED_NOREPLACE`) mmap,
//!   brk shrinking by at least a page, madvise dropping pages (DONTNEED, FREE, REMOVE,
//!   DONTNEED_LOCKED) and mremap, each with exactly the prescribed recall and discards, every
//!   range valid; brk never discards the page holding the new break; only madvise keeps the
//!   mapping (`unmap == false`); only mremap recalls, and it recalls its old range;
//! - `after(ret)` gives nothing for a negative errno, nothing for a brk that did not return
//!   the asked break, not the old range of an mremap that stayed in place, and otherwise all
//!   the discards;
//! - every discard goes on the wire as a `Discard` message that decodes to the same range, and
//!   a recall is a run of valid `Pull`s.

use crate::Input;
use eos_core::layout::{
    classify, Discard, Layout, Range, NR_BRK, NR_MADVISE, NR_MMAP, NR_MREMAP, NR_MUNMAP,
};
use eos_core::proto::{Header, Message, HEADER_LEN, MAX_BATCH, PAGE_SIZE, USER_END};

const PAGE: u64 = PAGE_SIZE as u64;
const MAP_FIXED: u64 = 0x10;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_FIXED: u64 = 2;
/// MADV_DONTNEED, MADV_REMOVE, MADV_DONTNEED_LOCKED (not MADV_FREE: members keep those pages).
const DROPPING: [u64; 3] = [4, 9, 24];

/// The reference `[addr, addr + round_up(len))`, from `Range::of`'s doc.
fn spec_range(addr: u64, len: u64) -> Option<(u64, u64)> {
    let len = len.checked_next_multiple_of(PAGE)?;
    let end = addr.checked_add(len)?;
    (addr.is_multiple_of(PAGE) && len > 0 && end <= USER_END).then_some((addr, end))
}

fn of(r: Option<Range>) -> Option<(u64, u64)> {
    r.map(|r| (r.start, r.end))
}

fn valid(r: &Range) {
    assert!(
        r.start.is_multiple_of(PAGE)
            && r.end.is_multiple_of(PAGE)
            && r.start < r.end
            && r.end <= USER_END,
        "invalid range {r:?}"
    );
}

fn discard(d: Option<Discard>) -> Option<(u64, u64, bool)> {
    d.map(|d| (d.range.start, d.range.end, d.unmap))
}

/// The syscall selector: mostly the five classified ones.
fn nr(b: u8) -> u32 {
    const NRS: [u32; 5] = [NR_MMAP, NR_MUNMAP, NR_BRK, NR_MREMAP, NR_MADVISE];
    // Others: read, lseek, mprotect, rt_sigaction, exit, exit_group (not layout changes).
    const OTHERS: [u32; 6] = [0, 8, 10, 13, 60, 231];
    match b.checked_sub(250) {
        Some(i) => OTHERS[usize::from(i)],
        None => NRS[usize::from(b) % 5],
    }
}

/// What `classify` must give: (recall, discard[0], discard[1]) or nothing.
type Expected = Option<(
    Option<(u64, u64)>,
    Option<(u64, u64, bool)>,
    Option<(u64, u64, bool)>,
)>;

fn expected(nr: u32, a: [u64; 6], brk: u64) -> Expected {
    let unmap = |r: Option<(u64, u64)>| r.map(|(s, e)| (s, e, true));
    let l = match nr {
        NR_MUNMAP => (None, unmap(spec_range(a[0], a[1])), None),
        NR_MMAP if a[3] & MAP_FIXED != 0 && a[3] & MAP_FIXED_NOREPLACE == 0 => {
            (None, unmap(spec_range(a[0], a[1])), None)
        }
        NR_BRK if a[0] != 0 && a[0] < brk => {
            // The pages wholly above the new break, up to the page holding the old one.
            let start = a[0].checked_next_multiple_of(PAGE)?;
            let end = brk.checked_next_multiple_of(PAGE)?;
            let r = (start < end)
                .then(|| spec_range(start, end - start))
                .flatten();
            (None, unmap(r), None)
        }
        NR_MADVISE if DROPPING.contains(&a[2]) => (
            None,
            spec_range(a[0], a[1]).map(|(s, e)| (s, e, false)),
            None,
        ),
        NR_MREMAP => {
            let old = spec_range(a[0], a[1]);
            let new = if a[3] & MREMAP_FIXED != 0 {
                spec_range(a[4], a[2])
            } else {
                None
            };
            (old, unmap(old), unmap(new))
        }
        _ => return None,
    };
    (l.0.is_some() || l.1.is_some() || l.2.is_some()).then_some(l)
}

pub fn check(data: &[u8]) {
    let inp = &mut Input::new(data);
    let nr = nr(inp.u8());
    let a: [u64; 6] = std::array::from_fn(|_| inp.u64());
    let brk = inp.u64();

    for (addr, len) in [(a[0], a[1]), (a[4], a[2]), (brk, a[5])] {
        let r = Range::of(addr, len);
        assert_eq!(
            of(r),
            spec_range(addr, len),
            "Range::of({addr:#x}, {len:#x})"
        );
        if let Some(r) = r {
            valid(&r);
            assert!(r.end - r.start >= len && r.end - r.start < len + PAGE);
        }
    }

    let l = classify(nr, a, brk);
    let got = l.map(|l| (of(l.recall), discard(l.discard[0]), discard(l.discard[1])));
    assert_eq!(
        got,
        expected(nr, a, brk),
        "classify({nr}, {a:#x?}, brk {brk:#x})"
    );
    let Some(l) = l else { return };
    for r in l
        .recall
        .iter()
        .chain(l.discard.iter().flatten().map(|d| &d.range))
    {
        valid(r);
    }
    if nr == NR_BRK {
        let d = l.discard[0].unwrap();
        assert!(d.range.start >= a[0], "brk discards below the new break");
        assert!(d.range.end >= brk && d.range.end - brk < PAGE);
    }
    if let Some(r) = l.recall {
        recall_pulls(&r);
    }

    let mut rets = vec![0, -1, -4095, -4096, a[0] as i64, brk as i64, a[4] as i64];
    while !inp.is_empty() && rets.len() < 16 {
        rets.push(inp.u64() as i64);
    }
    for ret in rets {
        after(nr, a, &l, ret);
    }
}

fn after(nr: u32, a: [u64; 6], l: &Layout, ret: i64) {
    let got: Vec<Discard> = l.after(ret).collect();
    let errno = (-4095..=-1).contains(&ret);
    let want: Vec<Discard> = l
        .discard
        .iter()
        .enumerate()
        .filter(|&(i, _)| {
            !errno
                && (nr != NR_BRK || ret as u64 == a[0])
                && !(nr == NR_MREMAP && i == 0 && ret as u64 == a[0])
        })
        .filter_map(|(_, d)| *d)
        .collect();
    assert_eq!(got, want, "after({ret:#x}) of syscall {nr}");
    for d in got {
        on_the_wire(&d);
    }
}

/// The home tells each member with a `Discard` message: it must decode to the same range.
fn on_the_wire(d: &Discard) {
    let m = Message::Discard {
        pid: 42,
        start: d.range.start,
        end: d.range.end,
        unmap: d.unmap,
    };
    assert_eq!(
        roundtrip(&m),
        Some(m),
        "discard {d:?} does not survive the wire"
    );
}

/// Bringing a range home is a run of `Pull`s of at most `MAX_BATCH` pages: the first and the
/// last must be valid messages.
fn recall_pulls(r: &Range) {
    let pages = (r.end - r.start) / PAGE;
    let batch = MAX_BATCH as u64;
    let last = (pages - 1) / batch * batch;
    for first in [0, last] {
        let m = Message::Pull {
            req: 1,
            pid: 42,
            addr: r.start + first * PAGE,
            count: (pages - first).min(batch) as u32,
        };
        assert_eq!(roundtrip(&m), Some(m), "recall {r:?} as pulls");
    }
}

fn roundtrip(m: &Message<'static>) -> Option<Message<'static>> {
    let mut buf = [0u8; 64];
    let n = m.encode(0, &mut buf).ok()?;
    let h = Header::decode(buf[..HEADER_LEN].try_into().ok()?).ok()?;
    match Message::decode(&h, &buf[HEADER_LEN..n]).ok()? {
        Message::Discard {
            pid,
            start,
            end,
            unmap,
        } => Some(Message::Discard {
            pid,
            start,
            end,
            unmap,
        }),
        Message::Pull {
            req,
            pid,
            addr,
            count,
        } => Some(Message::Pull {
            req,
            pid,
            addr,
            count,
        }),
        _ => None,
    }
}
