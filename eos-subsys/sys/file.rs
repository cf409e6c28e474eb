// SPDX-License-Identifier: GPL-2.0

//! Reading a whole file by path (to hash executables).

use kernel::{bindings, prelude::*};

/// Largest file we read (executables are compared by hash).
const MAX_FILE: usize = 256 << 20;

/// A file's contents in a vmalloc buffer.
pub(crate) struct FileData {
    ptr: *mut u8,
    len: usize,
}

impl FileData {
    /// Reads the file at `path` (NUL-terminated).
    pub(crate) fn read(path: &core::ffi::CStr) -> Result<Self> {
        let mut buf: *mut core::ffi::c_void = core::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: `path` is NUL-terminated; `buf` starts NULL so the kernel allocates it with
        // vmalloc; `size` receives the file size.
        let n = unsafe {
            bindings::kernel_read_file_from_path(
                path.as_ptr().cast(),
                0,
                &mut buf,
                MAX_FILE,
                &mut size,
                bindings::kernel_read_file_id_READING_UNKNOWN,
            )
        };
        if n < 0 {
            return Err(Error::from_errno(n as i32));
        }
        Ok(Self {
            ptr: buf.cast(),
            len: n as usize,
        })
    }

    /// The contents.
    pub(crate) fn bytes(&self) -> &[u8] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: the kernel filled `len` bytes at `ptr`, which we own until drop.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for FileData {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from vmalloc in `kernel_read_file_from_path` (or is NULL).
        unsafe { bindings::vfree(self.ptr.cast()) };
    }
}
