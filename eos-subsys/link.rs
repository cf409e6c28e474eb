// SPDX-License-Identifier: GPL-2.0

//! One authenticated TCP connection to a peer: whole frames out, in order, from any number of
//! senders. It knows no message's meaning (transport.rs runs the connection, dispatch.rs
//! gives messages to the primitives).

use crate::proto::Message;
use crate::stats::Stats;
use crate::sys::net::Socket;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
};

/// Longest a thread blocks in a receive (or accept) before checking its flags.
pub(crate) const RX_TIMEOUT_MS: u32 = 200;
/// Longest a send (or connect) may block before the connection is given up.
pub(crate) const TX_TIMEOUT_MS: u32 = 2000;
/// One authenticated (or authenticating) TCP connection.
#[pin_data]
pub(crate) struct Conn {
    pub(crate) sock: Socket,
    /// Serialises whole frames from several senders; holds the next sequence number.
    #[pin]
    tx: Mutex<u32>,
    pub(crate) closing: AtomicBool,
    /// The node's counters (frames and bytes sent).
    stats: &'static Stats,
}

impl Conn {
    /// Wraps a connected socket; `stats` counts what it sends.
    pub(crate) fn new(sock: Socket, stats: &'static Stats) -> Result<Arc<Self>> {
        sock.set_timeouts(RX_TIMEOUT_MS, TX_TIMEOUT_MS);
        sock.set_nodelay();
        Arc::pin_init(
            pin_init!(Self {
                sock,
                tx <- new_mutex!(0),
                closing: AtomicBool::new(false),
                stats,
            }),
            GFP_KERNEL,
        )
    }

    /// Sends one message; a failed send closes the connection.
    pub(crate) fn send(&self, m: &Message<'_>) -> Result {
        let mut e = m.encode_parts(0).map_err(|_| EINVAL)?;
        let n = e.frame_len();
        let mut seq = self.tx.lock();
        e.head[12..16].copy_from_slice(&seq.to_le_bytes());
        *seq = seq.wrapping_add(1);
        let r = self.sock.send_parts(&[
            &e.head[..e.head_len],
            e.tails[0],
            e.tails[1],
            e.tails[2],
            e.tails[3],
        ]);
        drop(seq);
        match r {
            Ok(()) => {
                Stats::inc(&self.stats.tx_frames);
                Stats::add(&self.stats.tx_bytes, n as u64);
            }
            Err(_) => self.close(),
        }
        r
    }

    /// Closes the connection; threads using it see an error or `Closed` promptly.
    pub(crate) fn close(&self) {
        if !self.closing.swap(true, Relaxed) {
            self.sock.shutdown();
        }
    }
}
