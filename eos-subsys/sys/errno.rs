// SPDX-License-Identifier: GPL-2.0

//! Error codes the 6.12 kernel crate does not name.

use kernel::error::Error;

/// The kernel error for the positive errno `code` (a `bindings::E*` constant).
pub(crate) fn e(code: u32) -> Error {
    Error::from_errno(-(code as i32))
}
