//! Pages moving between home and peer (pull on fault, push under the budget): verified data
//! while they move, and mlock bringing them home.

use super::stretch::run_stretched;
use crate::cluster::{check_clean, field, host_result};
use crate::vm::Vm;
use anyhow::{bail, Result};
use std::time::Duration;

pub(super) fn elastic_stress(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let (pulls, pushes) = run_stretched(a, "stress", &["24", "7", "30000"], 6)?;
    check_clean(&[a, b])?;
    Ok(format!(
        "24 MiB, 6 MiB local, 30000 verified ops: {pulls} pulls, {pushes} pushes, 0 errors"
    ))
}

/// mlock and mlockall over pages the peer holds bring them home with their data, and the
/// pusher leaves locked pages alone (before, the install refused a VM_LOCKED area: SIGBUS).
pub(super) fn mlock_remote(a: &mut Vm, b: &mut Vm) -> Result<String> {
    let want = host_result("mlock", &["32", "2"])?;
    let (rc, out) = a.run("mlock 32 2", Duration::from_secs(240))?;
    let info = out
        .lines()
        .find(|l| l.starts_with("mlock: "))
        .unwrap_or("")
        .to_string();
    if rc != 0
        || !out.lines().any(|l| l == want)
        || !info.contains("stretched=1 locked=1 locked_all=1")
    {
        bail!("mlock: exit {rc}, host says `{want}`, VM printed:\n{out}");
    }
    let were: u64 = field(&info, "locked_were_remote").unwrap_or(0);
    if were == 0 {
        bail!("mlock: none of the locked pages was on the peer before the lock:\n{info}");
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "32 MiB, 8 MiB budget: mlock brought {were} remote pages home and kept them there; \
         mlockall brought the rest; every page right"
    ))
}
