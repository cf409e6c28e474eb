// SPDX-License-Identifier: GPL-2.0

//! Thin safe wrappers over the C kernel APIs ElasticOS uses.
//!
//! Every `unsafe` block of the subsystem lives under this module, each with its `SAFETY:`
//! argument. Code outside `sys` is safe Rust.

pub(crate) mod arch;
pub(crate) mod crypto;
pub(crate) mod errno;
pub(crate) mod file;
pub(crate) mod global;
pub(crate) mod hooks;
pub(crate) mod inject;
pub(crate) mod kthread;
#[cfg(CONFIG_ELASTICOS_KUNIT_TEST)]
pub(crate) mod kunit;
pub(crate) mod mm;
pub(crate) mod net;
pub(crate) mod sysfs;
pub(crate) mod task;
pub(crate) mod time;
pub(crate) mod trace;
pub(crate) mod umh;
