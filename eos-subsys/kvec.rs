// SPDX-License-Identifier: GPL-2.0

//! `retain` for the 6.12 `KVec`, which cannot remove elements in place.

use kernel::prelude::*;

/// Keeps the elements for which `keep` is true, in order (rebuilds the vector). On allocation
/// failure nothing changes.
pub(crate) fn retain<T: Clone>(v: &mut KVec<T>, mut keep: impl FnMut(&T) -> bool) -> Result {
    let mut out = KVec::with_capacity(v.len(), GFP_KERNEL)?;
    for x in v.iter() {
        if keep(x) {
            out.push(x.clone(), GFP_KERNEL)?;
        }
    }
    *v = out;
    Ok(())
}
