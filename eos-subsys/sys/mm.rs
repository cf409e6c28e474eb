// SPDX-License-Identifier: GPL-2.0

//! Address spaces: references, the mmap lock, VMAs and the page-table helpers of
//! mm/elastic.c.

use crate::proto::PAGE_SIZE;
use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::{bindings, error::to_result, prelude::*};

/// `PROT_WRITE` in [`Vma::prot`].
pub(crate) const PROT_WRITE: u32 = 2;
/// `PROT_EXEC` in [`Vma::prot`].
pub(crate) const PROT_EXEC: u32 = 4;

/// Identity of an address space, for lookups: compared, never dereferenced (so no raw
/// `mm_struct` pointer travels through safe code). Ordered, to key tables by.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MmId(usize);

impl MmId {
    /// The identity of `mm` (C hooks pass theirs).
    pub(crate) fn of(mm: *mut bindings::mm_struct) -> Self {
        Self(mm as usize)
    }
}

/// A counted reference to an `mm_struct` (`mmgrab`): keeps the structure, not the memory.
pub(crate) struct MmRef(NonNull<bindings::mm_struct>);

// SAFETY: `mmgrab`/`mmdrop` are atomic; the pointer is only compared or used through the
// locking wrappers below.
unsafe impl Send for MmRef {}
// SAFETY: see `Send`.
unsafe impl Sync for MmRef {}

impl MmRef {
    /// Takes a reference to `mm`.
    ///
    /// # Safety
    ///
    /// `mm` must point to a live `mm_struct`.
    pub(crate) unsafe fn grab(mm: *mut bindings::mm_struct) -> Option<Self> {
        let mm = NonNull::new(mm)?;
        // SAFETY: the caller guarantees `mm` is live.
        unsafe { bindings::mmgrab(mm.as_ptr()) };
        Some(Self(mm))
    }

    /// Another reference to the same mm.
    pub(crate) fn grab_again(&self) -> Option<Self> {
        // SAFETY: our reference keeps `mm` live.
        unsafe { Self::grab(self.0.as_ptr()) }
    }

    pub(super) fn as_ptr(&self) -> *mut bindings::mm_struct {
        self.0.as_ptr()
    }

    /// Identity, for lookups.
    pub(crate) fn id(&self) -> MmId {
        MmId(self.0.as_ptr() as usize)
    }

    /// Pins the memory (`mmget_not_zero`) unless the process is already gone.
    pub(crate) fn users(&self) -> Option<MmUsers<'_>> {
        // SAFETY: our `mmgrab` keeps the structure alive.
        unsafe { bindings::mmget_not_zero(self.0.as_ptr()) }.then_some(MmUsers(self))
    }

    /// Why this address space (of `task`) cannot be elastic, if it cannot: a userfaultfd is
    /// registered on it, the task uses io_uring, a protection key guards a mapping, or the task
    /// has a shadow stack (mm/elastic.c). Asked after the mark, which
    /// refuses new ones, and before.
    pub(crate) fn unsupported(&self, task: &super::task::TaskRef) -> Result<Option<&'static str>> {
        // SAFETY: both are referenced; the helper takes the mmap lock for read.
        let r = unsafe { bindings::elastic_mm_unsupported(task.raw(), self.as_ptr()) };
        to_result(r.min(0))?;
        Ok(match r {
            0 => None,
            1 => Some("a userfaultfd is registered on its memory"),
            2 => Some("it uses io_uring"),
            3 => Some("a protection key guards some of its memory"),
            _ => Some("it has a shadow stack"),
        })
    }

    /// Marks the mm as elastic (the fault-path hooks look at this bit) and disables THP for
    /// it, since ownership moves in 4 KiB pages.
    pub(crate) fn mark_elastic(&self) {
        // SAFETY: the mm is live; setting flag bits is atomic.
        unsafe { bindings::elastic_mark_mm(self.0.as_ptr()) };
    }

    /// The program break (`brk`).
    pub(crate) fn brk(&self) -> u64 {
        // SAFETY: the mm is live; a racy read of one word is fine for its only user, the
        // process's own syscall path (which is single-threaded).
        unsafe { (*self.0.as_ptr()).__bindgen_anon_1.brk as u64 }
    }

    /// Number of VMAs (`mm->map_count`).
    pub(crate) fn map_count(&self) -> u64 {
        // SAFETY: the mm is live; a racy read of one int is fine for a heuristic.
        unsafe { (*self.0.as_ptr()).__bindgen_anon_1.map_count as u64 }
    }

    /// Anonymous resident pages.
    pub(crate) fn anon_pages(&self) -> u64 {
        // SAFETY: the mm is live; counters are read atomically.
        unsafe { bindings::get_mm_counter(self.0.as_ptr(), bindings::MM_ANONPAGES as i32) as u64 }
    }

    /// Pages this address space's memory cgroup (and each ancestor) may still be charged
    /// before its memory.high or memory.max, the smallest (negative above one); `None` if no
    /// cgroup limits it (memcg.c).
    pub(crate) fn memcg_room(&self) -> Option<i64> {
        // SAFETY: the mm is live (`self` holds a reference).
        let room = unsafe { elastic_memcg_room(self.0.as_ptr().cast()) };
        (room != core::ffi::c_long::MAX).then_some(room as i64)
    }
}

extern "C" {
    /// `mm` is a `struct mm_struct *` (an opaque pointer here: bindgen's type is not
    /// FFI-safe for rustc).
    fn elastic_memcg_room(mm: *mut core::ffi::c_void) -> core::ffi::c_long;
}

impl Drop for MmRef {
    fn drop(&mut self) {
        // SAFETY: balances the `mmgrab` of `grab`.
        unsafe { bindings::mmdrop(self.0.as_ptr()) };
    }
}

/// A user reference (`mmget`): the address space cannot be torn down while it lives.
pub(crate) struct MmUsers<'a>(&'a MmRef);

impl MmUsers<'_> {
    /// Takes the mmap lock for read.
    pub(crate) fn read(&self) -> MmapRead<'_> {
        // SAFETY: the mm is live and has users.
        unsafe { bindings::mmap_read_lock(self.0.as_ptr()) };
        MmapRead {
            mm: self.0.as_ptr(),
            _p: PhantomData,
        }
    }

    /// Runs `f` with this address space adopted by the current kthread (`kthread_use_mm`),
    /// for calls that work on `current->mm`, like `vm_mmap`.
    pub(crate) fn with_mm<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: `current` is valid.
        if unsafe { (*bindings::get_current()).mm } == self.0.as_ptr() {
            // The shell task itself, about to run the process: its own mm already.
            return f();
        }
        // SAFETY: we are a kthread (all other ElasticOS work runs in kthreads); the mm has
        // users.
        unsafe { bindings::kthread_use_mm(self.0.as_ptr()) };
        let r = f();
        // SAFETY: balances `kthread_use_mm` above.
        unsafe { bindings::kthread_unuse_mm(self.0.as_ptr()) };
        r
    }
}

impl Drop for MmUsers<'_> {
    fn drop(&mut self) {
        // SAFETY: balances `mmget_not_zero` of `users`.
        unsafe { bindings::mmput(self.0.as_ptr()) };
    }
}

/// The mmap lock held for read.
pub(crate) struct MmapRead<'a> {
    mm: *mut bindings::mm_struct,
    _p: PhantomData<&'a ()>,
}

impl MmapRead<'_> {
    /// The VMA containing `addr`.
    pub(crate) fn vma(&self, addr: u64) -> Option<Vma<'_>> {
        // SAFETY: we hold the mmap lock.
        let v = unsafe { bindings::vma_lookup(self.mm, addr as _) };
        NonNull::new(v).map(|v| Vma(v, PhantomData))
    }

    /// The first VMA ending above `addr`.
    pub(crate) fn vma_from(&self, addr: u64) -> Option<Vma<'_>> {
        // SAFETY: we hold the mmap lock.
        let v = unsafe { bindings::find_vma(self.mm, addr as _) };
        NonNull::new(v).map(|v| Vma(v, PhantomData))
    }

    /// The VMAs overlapping `[start, end)`, in address order (all of them: `0, u64::MAX`).
    pub(crate) fn vmas_in(&self, start: u64, end: u64) -> impl Iterator<Item = Vma<'_>> + '_ {
        let mut at = start;
        core::iter::from_fn(move || {
            let v = self.vma_from(at).filter(|v| v.start() < end)?;
            at = v.end();
            Some(v)
        })
    }
}

impl Drop for MmapRead<'_> {
    fn drop(&mut self) {
        // SAFETY: balances the lock taken in `MmUsers::read`.
        unsafe { bindings::mmap_read_unlock(self.mm) };
    }
}

/// A VMA, valid while the mmap (or VMA) lock it was found under is held.
#[derive(Clone, Copy)]
pub(crate) struct Vma<'a>(NonNull<bindings::vm_area_struct>, PhantomData<&'a ()>);

fn pages_ok(data: &[u8]) -> Result {
    if data.len() == PAGE_SIZE {
        Ok(())
    } else {
        Err(EINVAL)
    }
}

impl<'a> Vma<'a> {
    /// The VMA of a fault in progress.
    ///
    /// # Safety
    ///
    /// `vma` must be the VMA passed to the fault handler that is running now.
    pub(crate) unsafe fn from_fault(vma: *mut bindings::vm_area_struct) -> Option<Self> {
        NonNull::new(vma).map(|v| Vma(v, PhantomData))
    }

    fn raw(&self) -> *mut bindings::vm_area_struct {
        self.0.as_ptr()
    }

    /// Its address space.
    pub(crate) fn mm_id(&self) -> MmId {
        // SAFETY: the VMA is valid while its lock is held.
        MmId(unsafe { (*self.raw()).vm_mm } as usize)
    }

    /// Start address.
    pub(crate) fn start(&self) -> u64 {
        // SAFETY: as above; the bounds do not change under the lock.
        unsafe { (*self.raw()).__bindgen_anon_1.__bindgen_anon_1.vm_start as u64 }
    }

    /// End address.
    pub(crate) fn end(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.raw()).__bindgen_anon_1.__bindgen_anon_1.vm_end as u64 }
    }

    /// `PROT_READ|PROT_WRITE|PROT_EXEC` bits of the VMA.
    pub(crate) fn prot(&self) -> u32 {
        // SAFETY: as above.
        let f = unsafe { (*self.raw()).__bindgen_anon_2.vm_flags } as u64;
        (f & 7) as u32
    }

    /// Installs `data` as a new anonymous page at `addr` over the marker `expect` (0: over an
    /// empty PTE; `replace`: dropping whatever page is there first).
    pub(crate) fn install(&self, addr: u64, expect: u64, data: &[u8], replace: bool) -> Result {
        pages_ok(data)?;
        // SAFETY: the VMA is locked; `data` holds a page.
        to_result(unsafe {
            bindings::elastic_install_page(
                self.raw(),
                addr as _,
                expect as _,
                data.as_ptr().cast(),
                replace,
            )
        })
    }

    /// Hands the page at `addr` to another node: `Data` (copied to `buf` and unmapped) or
    /// `Build` (nothing mapped here: the requester makes it from its own mapping). With
    /// `marker` non-zero the PTE then names the new owner. `EAGAIN`: a marker is there.
    pub(crate) fn take(&self, addr: u64, buf: &mut [u8], marker: u64) -> Result<Taken> {
        pages_ok(buf)?;
        // SAFETY: the VMA is locked; `buf` has room for a page.
        let r = unsafe {
            bindings::elastic_take_page(self.raw(), addr as _, buf.as_mut_ptr().cast(), marker as _)
        };
        to_result(r.min(0))?;
        Ok(if r == 0 { Taken::Data } else { Taken::Build })
    }

    /// The page at `addr` (PTE: the marker `expect`) lost its data: every later access gets
    /// SIGBUS (a poisoned marker), never a page built anew.
    pub(crate) fn poison(&self, addr: u64, expect: u64) -> Result {
        // SAFETY: the VMA is locked.
        to_result(unsafe { bindings::elastic_poison_page(self.raw(), addr as _, expect as _) })
    }

    /// Removes the marker `expect` at `addr`: the page is built here the ordinary way.
    pub(crate) fn clear_marker(&self, addr: u64, expect: u64) -> Result {
        // SAFETY: the VMA is locked; a NULL page means "clear the marker".
        to_result(unsafe {
            bindings::elastic_install_page(
                self.raw(),
                addr as _,
                expect as _,
                core::ptr::null(),
                false,
            )
        })
    }

    /// Drops every page of the VMA if it is private and writable (a new shell's pages that
    /// exec wrote: its initial stack, the zeroed tail of its data). Returns whether it did.
    pub(crate) fn drop_private_pages(&self) -> bool {
        // SAFETY: as above.
        let f = unsafe { (*self.raw()).__bindgen_anon_2.vm_flags } as u64;
        if f & bindings::VM_WRITE as u64 == 0 || f & bindings::VM_SHARED as u64 != 0 {
            return false;
        }
        // SAFETY: the VMA is locked (mmap lock held for read, as zapping requires); the range
        // is the VMA's own.
        unsafe {
            bindings::zap_page_range_single(
                self.raw(),
                self.start() as _,
                (self.end() - self.start()) as _,
                core::ptr::null_mut(),
            )
        };
        true
    }

    /// Drops the pages of `[start, end)` (clipped to the VMA) if it is private: they are not
    /// this node's any more.
    pub(crate) fn zap(&self, start: u64, end: u64) {
        // SAFETY: as above.
        let f = unsafe { (*self.raw()).__bindgen_anon_2.vm_flags } as u64;
        let (s, e) = (start.max(self.start()), end.min(self.end()));
        if s >= e || f & bindings::VM_SHARED as u64 != 0 {
            return;
        }
        // SAFETY: the VMA is locked (mmap lock held for read, as zapping requires); the range
        // lies inside it.
        unsafe {
            bindings::zap_page_range_single(self.raw(), s as _, (e - s) as _, core::ptr::null_mut())
        };
    }

    /// Drops the page-cache pages of `[start, end)` (clipped to the VMA) if it is a private
    /// file mapping; its anonymous pages stay. A shell built those from its own file, and the
    /// home keeps no marker for them.
    pub(crate) fn drop_file_pages(&self, start: u64, end: u64) {
        // SAFETY: the VMA is locked (mmap lock held for read, as zapping requires);
        // `elastic_drop_file_pages` clips the range to it.
        unsafe { bindings::elastic_drop_file_pages(self.raw(), start as _, end as _) };
    }

    /// Settled remote markers in `[start, end)` (clipped to the VMA).
    pub(crate) fn remote_count(&self, start: u64, end: u64) -> u64 {
        self.remote_count_on(start, end, None)
    }

    /// Settled markers naming `node` (any node: `None`) in `[start, end)`.
    pub(crate) fn remote_count_on(&self, start: u64, end: u64, node: Option<u16>) -> u64 {
        let node = node.map_or(-1, i32::from);
        // SAFETY: the VMA is locked.
        unsafe { bindings::elastic_remote_count(self.raw(), start as _, end as _, node) }.max(0)
            as u64
    }

    /// File offset of its start, in pages.
    pub(crate) fn pgoff(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.raw()).vm_pgoff as u64 }
    }

    /// The SHA-256 of the contents of the file behind a private file mapping (one
    /// [`Vma::file`] names). `EFBIG` past 64 MiB.
    pub(crate) fn file_sha256(&self) -> Result<[u8; 32]> {
        let mut out = [0u8; 32];
        // SAFETY: the VMA is locked; `out` is writable for 32 bytes.
        to_result(unsafe { bindings::elastic_vma_file_sha256(self.raw(), out.as_mut_ptr()) })?;
        Ok(out)
    }

    /// The device and inode of the file behind a private file mapping (one [`Vma::file`]
    /// names).
    pub(crate) fn file_id(&self) -> (u64, u64) {
        let (mut dev, mut ino) = (0, 0);
        // SAFETY: the VMA is locked and has a file (the caller checked with `file`).
        unsafe { bindings::elastic_vma_file_id(self.raw(), &mut dev, &mut ino) };
        (dev, ino)
    }

    /// The file behind a private file mapping: its path (NUL-terminated in `buf`) length,
    /// size and modification time (ns). `None` for any other mapping, or a longer path.
    pub(crate) fn file(&self, buf: &mut [u8]) -> Option<(usize, u64, u64)> {
        let (mut size, mut mtime) = (0, 0);
        // SAFETY: the VMA is locked; `buf` is writable for its length.
        let n = unsafe {
            bindings::elastic_vma_file(
                self.raw(),
                buf.as_mut_ptr().cast(),
                buf.len() as i32,
                &mut size,
                &mut mtime,
            )
        };
        (n > 0).then_some((n as usize, size, mtime))
    }

    /// Private anonymous memory (what a shell must have mapped to run the process).
    /// Some page of the VMA was copied on write (it has an `anon_vma`): in a file mapping,
    /// bytes that are no longer the file's.
    pub(crate) fn has_anon_pages(&self) -> bool {
        // SAFETY: as above.
        !unsafe { (*self.raw()).anon_vma }.is_null()
    }

    /// Locked in memory (`VM_LOCKED`: mlock, mlockall): its pages never leave this node.
    pub(crate) fn locked(&self) -> bool {
        // SAFETY: as above.
        let f = unsafe { (*self.raw()).__bindgen_anon_2.vm_flags };
        f as u64 & bindings::VM_LOCKED as u64 != 0
    }

    /// Executable (`VM_EXEC`).
    pub(crate) fn executable(&self) -> bool {
        self.prot() & PROT_EXEC != 0
    }

    pub(crate) fn anon_private(&self) -> bool {
        // SAFETY: as above.
        let (ops, f) = unsafe {
            (
                (*self.raw()).vm_ops,
                (*self.raw()).__bindgen_anon_2.vm_flags,
            )
        };
        ops.is_null() && (f as u64 & bindings::VM_SHARED as u64) == 0
    }

    /// Fills `addrs` with the pages of `[start, end)` here that were not used since the last
    /// scan (a shell's private anonymous memory; the scan clears the accessed bits it
    /// finds). Returns how many, and where the scan stopped.
    pub(crate) fn cold_pages(&self, start: u64, end: u64, addrs: &mut [u64]) -> (usize, u64) {
        let max = addrs.len().min(i32::MAX as usize) as i32;
        let mut next: usize = 0;
        // SAFETY: the VMA is locked; `addrs` has `max` slots.
        let n = unsafe {
            bindings::elastic_cold_pages(
                self.raw(),
                start as _,
                end as _,
                addrs.as_mut_ptr().cast(),
                max,
                &mut next,
            )
        };
        (n.max(0) as usize, next as u64)
    }

    /// Evicts up to `addrs.len()` cold pages of `[start, end)` towards `node` (in-flight
    /// markers), copying them into consecutive pages of `pages`. Returns how many, and where
    /// the scan stopped.
    pub(crate) fn evict(
        &self,
        start: u64,
        end: u64,
        node: u16,
        addrs: &mut [u64],
        pages: &mut [u8],
    ) -> (usize, u64) {
        const MAX: usize = 32;
        let max = addrs.len().min(pages.len() / PAGE_SIZE).min(MAX);
        let mut ptrs = [core::ptr::null_mut::<u8>(); MAX];
        for (i, p) in ptrs.iter_mut().enumerate().take(max) {
            *p = pages[i * PAGE_SIZE..].as_mut_ptr();
        }
        let mut next: usize = 0;
        // SAFETY: the VMA is locked; `addrs` has `max` slots and each of the first `max`
        // pointers is a distinct writable page inside `pages`.
        let n = unsafe {
            bindings::elastic_evict(
                self.raw(),
                start as _,
                end as _,
                node as _,
                addrs.as_mut_ptr().cast(),
                ptrs.as_mut_ptr().cast(),
                max as i32,
                &mut next,
            )
        };
        (n.max(0) as usize, next as u64)
    }

    /// Ends the acknowledged push of `addr`: its in-flight marker becomes `node`'s marker. (A
    /// failed push puts the page back with `install` over the in-flight marker.)
    pub(crate) fn settle(&self, addr: u64, node: u16) -> Result {
        // SAFETY: the VMA is locked; a NULL page means "settle to the remote marker".
        to_result(unsafe {
            bindings::elastic_settle(self.raw(), addr as _, node as _, core::ptr::null())
        })
    }

    /// How many of the `n` pages from `addr` are mapped and were accessed since they came or
    /// were last looked at; `clear` clears the accessed bits found (the pages then count as
    /// unused until touched again).
    pub(crate) fn young_pages(&self, addr: u64, n: u32, clear: bool) -> u32 {
        // SAFETY: the VMA is locked.
        unsafe {
            bindings::elastic_young_pages(
                self.raw(),
                addr as _,
                n.min(i32::MAX as u32) as i32,
                clear,
            )
        }
        .max(0) as u32
    }

    /// How many pages from `addr` on `node` owns (at most `max`).
    pub(crate) fn remote_run(&self, addr: u64, node: u16, max: u32) -> u32 {
        // SAFETY: the VMA is locked.
        unsafe { bindings::elastic_remote_run(self.raw(), addr as _, node as _, max as i32) }.max(0)
            as u32
    }
}

/// What [`Vma::take`] handed over.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The page's data.
    Data,
    /// Nothing: the requester builds the page from its mapping.
    Build,
}

/// Drains the per-CPU LRU batches (`all`: every CPU's; sleeps, so no mmap lock may be held).
/// A page just added to a batch is referenced by it, and looks held by a GUP user to
/// mm/elastic.c (`elastic_only_mapped`), which then refuses to move it (EBUSY).
pub(crate) fn drain_lru(all: bool) {
    // SAFETY: both only move pages from per-CPU batches to the LRU lists; the caller is in
    // process context (kthread or task), and for `all` holds no lock that the drain work
    // could need.
    unsafe {
        if all {
            bindings::lru_add_drain_all()
        } else {
            bindings::lru_add_drain()
        }
    }
}

/// Marks `mm` as a shell's: an empty PTE there is asked of the home node once its task runs.
pub(crate) fn mark_shell(mm: &MmRef) {
    // SAFETY: the mm is live (`MmRef`); setting flag bits is atomic.
    unsafe { bindings::elastic_mark_guest(mm.0.as_ptr()) };
}

/// The PTE marker value meaning "owned by `node`" (`in_flight`: push not acknowledged).
pub(crate) fn marker(node: u16, in_flight: bool) -> u64 {
    // SAFETY: a pure computation (swapops.h's `make_elastic_marker`).
    unsafe { bindings::make_elastic_marker(node as u32, in_flight) as u64 }
}

/// Maps anonymous memory at exactly `[addr, addr + len)` in the current (adopted) mm, failing
/// rather than replacing anything there.
pub(crate) fn map_fixed_anon(addr: u64, len: u64, prot: u32) -> Result {
    let flags = bindings::MAP_PRIVATE | bindings::MAP_ANONYMOUS | bindings::MAP_FIXED_NOREPLACE;
    // SAFETY: no file; the current mm is the adopted one (see `MmUsers::with_mm`).
    let r = unsafe {
        bindings::vm_mmap(
            core::ptr::null_mut(),
            addr as _,
            len as _,
            (prot | 3) as _,
            flags as _,
            0,
        )
    };
    if r as u64 == addr {
        Ok(())
    } else if (r as i64) < 0 && (r as i64) > -4096 {
        Err(Error::from_errno(r as i64 as i32))
    } else {
        Err(EEXIST)
    }
}

/// Pages of RAM and pages available now (`MemAvailable`).
pub(crate) fn memory_pages() -> (u64, u64) {
    // SAFETY: no preconditions.
    let total = unsafe { bindings::totalram_pages() } as u64;
    // SAFETY: no preconditions.
    let avail = unsafe { bindings::si_mem_available() }.max(0) as u64;
    (total, avail)
}

/// Unmaps `[addr, addr + len)` of the current (adopted) mm.
pub(crate) fn unmap(addr: u64, len: u64) -> Result {
    // SAFETY: plain syscall semantics on the current mm, which the caller adopted.
    to_result(unsafe { bindings::vm_munmap(addr as _, len as _) })
}

/// Sets the protection of `[addr, addr + len)` of the current mm (as `mprotect`).
pub(crate) fn protect(addr: u64, len: u64, prot: u32) -> Result {
    // SAFETY: as `mprotect` on the current mm; the caller is the shell's own task.
    to_result(unsafe { bindings::elastic_mprotect(addr as _, len as _, prot as _) })
}

/// Maps `path` (NUL-terminated) privately at `[addr, addr + len)` of the current task's mm,
/// from page `pgoff`, if it is the file the home has (same size, mtime and contents:
/// `sha256`) and no other local user can change it; never replaces.
#[allow(clippy::too_many_arguments)]
pub(crate) fn map_file(
    path: &[u8],
    size: u64,
    mtime_ns: u64,
    sha256: &[u8; 32],
    addr: u64,
    len: u64,
    prot: u32,
    pgoff: u64,
) -> Result {
    if path.last() != Some(&0) {
        return Err(EINVAL);
    }
    // SAFETY: `path` is NUL-terminated and `sha256` 32 bytes; the callee opens the path with
    // the current credentials.
    to_result(unsafe {
        bindings::elastic_map_file(
            path.as_ptr().cast(),
            size,
            mtime_ns,
            sha256.as_ptr(),
            addr as _,
            len as _,
            prot as _,
            pgoff,
        )
    })
}

/// How many nodes an elastic process here can reach, this one included: the heuristic
/// overcommit check lets one request be that many times this node's RAM and swap (mm/util.c).
pub(crate) fn set_reach(nodes: u32) {
    // SAFETY: no pointers; the helper stores one atomic.
    unsafe { bindings::elastic_set_reach(nodes) };
}
