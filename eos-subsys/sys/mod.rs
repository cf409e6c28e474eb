// SPDX-License-Identifier: GPL-2.0

//! Thin safe wrappers over the C kernel APIs ElasticOS uses.
//!
//! Every `unsafe` block of the subsystem lives under this module, each with its `SAFETY:`
//! argument. Code outside `sys` is safe Rust.

pub(crate) mod crypto;
pub(crate) mod kthread;
pub(crate) mod net;
pub(crate) mod sysfs;
pub(crate) mod time;
pub(crate) mod global;
#[cfg(CONFIG_ELASTICOS_KUNIT_TEST)]
pub(crate) mod kunit;
