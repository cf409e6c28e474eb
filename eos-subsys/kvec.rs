// SPDX-License-Identifier: GPL-2.0

//! `retain` for the 6.12 `Vec` (`KVec`, `KVVec`), which cannot remove elements in place, done
//! without allocating: a removal never fails.

use kernel::alloc::Allocator;
use kernel::prelude::*;

/// Keeps the elements for which `keep(index, element)` is true, in their order, and drops the
/// others. Allocates nothing, so it cannot fail: the kept elements are moved (stably) behind
/// the dropped ones, which the vector's own iterator then drops from the front; its `collect`
/// reuses the buffer (its shrink, which allocates nothing, may fail and keep the larger one).
/// `keep` is called once per element, last first.
pub(crate) fn retain<T, A: Allocator>(v: &mut Vec<T, A>, mut keep: impl FnMut(usize, &T) -> bool) {
    // Invariant, going down: `[w, len)` holds the kept elements in order, `[i + 1, w)` the
    // dropped ones.
    let mut w = v.len();
    for i in (0..v.len()).rev() {
        if keep(i, &v[i]) {
            w -= 1;
            v.swap(w, i);
        }
    }
    if w == 0 {
        return;
    }
    let mut it = core::mem::replace(v, Vec::new()).into_iter();
    for _ in 0..w {
        drop(it.next());
    }
    // GFP_NOWAIT: the shrink may fail rather than sleep (the caller may hold a lock).
    *v = it.collect(GFP_NOWAIT);
}
