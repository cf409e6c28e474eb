//! ElasticOS logic that is plain Rust: it is compiled into the kernel subsystem (each module is
//! included by path from `eos-subsys/elastic.rs`) and tested on the host with `cargo test`.
//!
//! Rules for code in this crate, so it builds in both worlds:
//! - `core` only: no `std`, no `alloc`, no external crates;
//! - no `unsafe`;
//! - modules refer to each other as `crate::<module>`, and the kernel crate root declares the
//!   same module names at its root;
//! - nothing panics on input from the network: every decoder returns an error instead.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod abi;
pub mod fmtbuf;
pub mod handshake;
pub mod layout;
pub mod ownership;
pub mod pagehash;
pub mod peer;
pub mod policy;
pub mod proto;
pub mod ratelimit;
pub mod record;
pub mod stats;
