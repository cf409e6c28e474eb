// SPDX-License-Identifier: GPL-2.0

//! Fork of a stretched process: its child gets its own copy of every page, wherever the page
//! lives.
//!
//! Before `copy_mm` copies the address space (fork, or clone without `CLONE_VM`), the pages
//! that members own come home (a recall, as before an mremap) and the pusher leaves the
//! process alone until the copy is made (`Proc::layout_begin`): no page is remote or in
//! flight while the page tables are copied, so the child shares every page copy-on-write
//! with its parent, as after any fork, and is an ordinary process of this node. Afterwards
//! the parent's budget pushes its pages out again; a take of a page still shared with the
//! child copies it (patch 0012), so the child keeps its own. A vfork child borrows the
//! address space and needs none of this (jump.rs).
//!
//! The cost is a recall of the process's remote pages per fork (measured by `forkcopy`), and
//! room here for them: a fork that cannot bring them all home fails with ENOMEM, as a fork
//! does without memory. The member-side fork of issue 28 (each member forks its shell, so the
//! child is stretched too, at no copy cost) is not built.

use crate::home::{self, Proc};
use crate::proto::USER_END;
use crate::sys::mm::MmId;
use kernel::{prelude::*, sync::Arc};

/// The stretched process whose address space `mm` is, if any.
fn proc_of(mm: MmId) -> Option<Arc<Proc>> {
    home::procs().and_then(|procs| procs.by_mm(mm))
}

/// `copy_mm` is about to copy `mm`: its pages come home and stay until [`end`].
pub(crate) fn begin(mm: MmId) -> Result {
    let Some(p) = proc_of(mm) else {
        return Ok(());
    };
    p.layout_begin();
    if let Err(e) = crate::pull::recall(&p, 0, USER_END) {
        p.layout_done();
        pr_warn!(
            "pid {} ({}): fork refused (ENOMEM): its pages on other nodes could not all come home ({:?})\n",
            p.pid(),
            p.comm(),
            e
        );
        return Err(ENOMEM);
    }
    // `end` ends the hold only if this began it (the process may be stretched meanwhile).
    p.set_forking(true);
    Ok(())
}

/// The copy [`begin`] prepared is made, or failed: the pusher may go on.
pub(crate) fn end(mm: MmId) {
    if let Some(p) = proc_of(mm).filter(|p| p.set_forking(false)) {
        p.layout_done();
    }
}
