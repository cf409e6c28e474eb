// SPDX-License-Identifier: GPL-2.0

//! A directory of text attributes under /sys/kernel.

use crate::fmtbuf::FmtBuf;
use core::ffi::CStr;
use kernel::ffi::c_char;
use kernel::{bindings, prelude::*};

/// One attribute: a file whose reads and writes go to plain Rust functions.
pub(crate) struct Attr {
    /// File name.
    pub(crate) name: &'static CStr,
    /// Permission bits (e.g. 0o644).
    pub(crate) mode: u16,
    /// Formats the file's contents (at most one page).
    pub(crate) show: Option<fn(&mut FmtBuf<'_>)>,
    /// Handles a write of UTF-8 text.
    pub(crate) store: Option<fn(&str) -> Result>,
}

#[repr(C)]
struct Entry {
    // Must stay first: the C callbacks get a pointer to it and we cast back to `Entry`.
    kattr: bindings::kobj_attribute,
    ops: &'static Attr,
}

unsafe extern "C" fn show(
    _kobj: *mut bindings::kobject,
    attr: *mut bindings::kobj_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: sysfs calls us only with the `kattr` of an `Entry` registered by `create`
    // (`repr(C)`, first field), and those are never freed.
    let e = unsafe { &*attr.cast::<Entry>() };
    // SAFETY: sysfs hands `show` a zeroed buffer of PAGE_SIZE bytes. A show must return less
    // than PAGE_SIZE (sysfs logs "returned bad count" otherwise), so a long list (procs,
    // jumplog) is cut one byte short of the page.
    let out = unsafe {
        core::slice::from_raw_parts_mut(buf.cast::<u8>(), bindings::PAGE_SIZE as usize - 1)
    };
    let mut w = FmtBuf::new(out);
    if let Some(f) = e.ops.show {
        f(&mut w);
    }
    w.written() as isize
}

unsafe extern "C" fn store(
    _kobj: *mut bindings::kobject,
    attr: *mut bindings::kobj_attribute,
    buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: as in `show`.
    let e = unsafe { &*attr.cast::<Entry>() };
    // SAFETY: sysfs passes `count` readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    let r = match (core::str::from_utf8(bytes), e.ops.store) {
        (Ok(s), Some(f)) => f(s),
        (Err(_), _) => Err(EINVAL),
        (_, None) => Err(EPERM),
    };
    match r {
        Ok(()) => count as isize,
        Err(err) => err.to_errno() as isize,
    }
}

/// Gives up ownership of a vector's elements for good.
fn leak<T>(v: KVec<T>) -> &'static mut [T] {
    let (ptr, len, _cap) = v.into_raw_parts();
    // SAFETY: `into_raw_parts` hands over `len` initialised elements at `ptr`; nothing frees
    // them, so they live for the rest of the kernel's life.
    unsafe { core::slice::from_raw_parts_mut(ptr, len) }
}

/// Creates /sys/kernel/`name` holding `attrs`. The directory lives as long as the kernel
/// (ElasticOS is built in), so its C structures are allocated once and never freed.
pub(crate) fn create(name: &'static CStr, attrs: &'static [Attr]) -> Result {
    let mut entries = KVec::with_capacity(attrs.len(), GFP_KERNEL)?;
    for a in attrs {
        // SAFETY: all-zero is a valid `kobj_attribute` (no callbacks, no name).
        let mut kattr: bindings::kobj_attribute = unsafe { core::mem::zeroed() };
        kattr.attr.name = a.name.as_ptr().cast();
        kattr.attr.mode = a.mode;
        kattr.show = a.show.map(|_| show as _);
        kattr.store = a.store.map(|_| store as _);
        entries.push(Entry { kattr, ops: a }, GFP_KERNEL)?;
    }
    let entries: &'static mut [Entry] = leak(entries);
    let mut ptrs = KVec::with_capacity(attrs.len() + 1, GFP_KERNEL)?;
    for e in entries.iter_mut() {
        ptrs.push(core::ptr::addr_of_mut!(e.kattr.attr), GFP_KERNEL)?;
    }
    ptrs.push(core::ptr::null_mut(), GFP_KERNEL)?;
    let ptrs: &'static mut [*mut bindings::attribute] = leak(ptrs);
    // SAFETY: all-zero is a valid `attribute_group`.
    let mut group: bindings::attribute_group = unsafe { core::mem::zeroed() };
    group.attrs = ptrs.as_mut_ptr();
    let group = KBox::leak(KBox::new(group, GFP_KERNEL)?);

    // SAFETY: `kernel_kobj` is initialised before any initcall of ours runs; the name is a
    // NUL-terminated static string.
    let kobj =
        unsafe { bindings::kobject_create_and_add(name.as_ptr().cast(), bindings::kernel_kobj) };
    if kobj.is_null() {
        return Err(ENOMEM);
    }
    // SAFETY: `kobj` is live; `group` and everything it points to is leaked, so 'static.
    let r = unsafe { bindings::sysfs_create_group(kobj, group) };
    if r != 0 {
        // SAFETY: `kobj` came from `kobject_create_and_add` and is not used after this.
        unsafe { bindings::kobject_put(kobj) };
        return Err(Error::from_errno(r));
    }
    Ok(())
}
