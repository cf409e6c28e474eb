// SPDX-License-Identifier: GPL-2.0

//! ElasticOS: a process whose memory outgrows one machine keeps running across several.
//!
//! This crate is the in-kernel subsystem. Its plain-Rust logic (protocol, handshake, liveness,
//! policies) lives in `core/src` and is compiled here as modules of this crate, so the same
//! code is unit-tested on the host. `sys` is the thin layer over C; everything else is safe.
//! The core modules keep their `pub` API (the host crate's), hence `allow(unreachable_pub)`;
//! anything in them the kernel does not use is host-test-only (`cfg(test)`) or gone.

#![recursion_limit = "512"]

use kernel::prelude::*;

#[path = "core/src/fmtbuf.rs"]
#[allow(unreachable_pub)]
mod fmtbuf;
#[path = "core/src/handshake.rs"]
#[allow(unreachable_pub)]
mod handshake;
#[path = "core/src/layout.rs"]
#[allow(unreachable_pub)]
mod layout;
#[path = "core/src/ownership.rs"]
#[allow(unreachable_pub)]
mod ownership;
#[path = "core/src/pagehash.rs"]
#[allow(unreachable_pub)]
mod pagehash;
#[path = "core/src/peer.rs"]
#[allow(unreachable_pub)]
mod peer;
#[path = "core/src/policy.rs"]
#[allow(unreachable_pub)]
mod policy;
#[path = "core/src/proto/mod.rs"]
#[allow(unreachable_pub)]
mod proto;
#[path = "core/src/ratelimit.rs"]
#[allow(unreachable_pub)]
mod ratelimit;
#[path = "core/src/record.rs"]
#[allow(unreachable_pub)]
mod record;
#[path = "core/src/stats.rs"]
#[allow(unreachable_pub)]
mod stats;

#[cfg(CONFIG_ELASTICOS_KUNIT_TEST)]
mod kunit;
mod kvec;
mod sys;

// The node and its links (lowest first): link, rpc, node, transport, dispatch.
mod dispatch;
mod link;
mod node;
mod rpc;
mod transport;

// The registries of processes (home side) and of shells (member side), and what a jump
// carries between them.
mod home;
mod lent;
mod shell;
mod transit;

// The primitives, one file each, and the layout they keep in step.
mod fetch;
mod fork;
mod jump;
mod mapsync;
mod pull;
mod push;
mod reclaim;
mod stretch;

// What user space sees: sysfs, syscalls, /proc, the C hooks' logic.
mod control;

module! {
    type: ElasticOs,
    name: "elastic",
    author: "ElasticOS developers",
    description: "ElasticOS node layer: identity, authenticated peer links, sysfs control",
    license: "GPL",
}

struct ElasticOs;

impl kernel::Module for ElasticOs {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        control::init()?;
        pr_info!(
            "ElasticOS protocol {} ready; configure /sys/kernel/elastic\n",
            proto::VERSION
        );
        Ok(ElasticOs)
    }
}
