// SPDX-License-Identifier: GPL-2.0

//! Hashing the executable of an address space, streamed (what a stretch compares).

use super::mm::MmRef;
use kernel::{bindings, error::to_result, prelude::*};

/// The SHA-256 of the file `mm`'s exec mapped (its `exe_file`): what a process actually
/// runs, whoever may read it by path. Read 64 KiB at a time, never whole (at most 256 MiB,
/// else `EFBIG`); `ENOENT` once the mm has exited.
pub(crate) fn exe_sha256(mm: &MmRef) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    // SAFETY: `mm` is kept by our reference; the helper takes its own reference to the file
    // (`get_mm_exe_file`); `out` is writable for 32 bytes.
    to_result(unsafe { bindings::elastic_mm_exe_sha256(mm.as_ptr(), out.as_mut_ptr()) })?;
    Ok(out)
}
