// SPDX-License-Identifier: GPL-2.0

//! Reading a whole file, by path or as the executable of an address space (to hash
//! executables).

use super::mm::MmRef;
use kernel::{bindings, prelude::*};

/// Largest file we read (executables are compared by hash).
const MAX_FILE: usize = 256 << 20;

/// A file's contents in a vmalloc buffer.
pub(crate) struct FileData {
    ptr: *mut u8,
    len: usize,
}

impl FileData {
    /// Reads the file `mm`'s exec mapped (its `exe_file`): what a process actually runs,
    /// whoever may read it by path.
    pub(crate) fn read_exe(mm: &MmRef) -> Result<Self> {
        // SAFETY: `mm` is kept by our reference; `get_mm_exe_file` takes a reference to its
        // file under RCU, or gives NULL once the mm has exited.
        let file = unsafe { bindings::get_mm_exe_file(mm.as_ptr()) };
        if file.is_null() {
            return Err(ENOENT);
        }
        let mut buf: *mut core::ffi::c_void = core::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: `file` is a counted reference, opened for reading by exec; `buf` starts
        // NULL so the kernel allocates it with vmalloc.
        let n = unsafe {
            bindings::kernel_read_file(
                file,
                0,
                &mut buf,
                MAX_FILE,
                &mut size,
                bindings::kernel_read_file_id_READING_UNKNOWN,
            )
        };
        // SAFETY: the reference `get_mm_exe_file` gave us.
        unsafe { bindings::fput(file) };
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
