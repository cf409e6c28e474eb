// SPDX-License-Identifier: GPL-2.0

//! One authenticated TCP connection to a peer: whole frames out, in order, from any number of
//! senders. It knows no message's meaning (transport.rs runs the connection, dispatch.rs
//! gives messages to the primitives).

use crate::proto::{Message, HEADER_LEN, MAX_PAYLOAD, TAG_LEN};
use crate::record::Sealer;
use crate::stats::Stats;
use crate::sys::{crypto::AesGcm, net::Socket};
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
/// What the senders of a connection share.
struct Tx {
    /// The next header sequence number.
    seq: u32,
    /// After the handshake: the record layer's sealer, and the buffer each frame's payload is
    /// copied to and encrypted in.
    seal: Option<(Sealer<AesGcm>, KVVec<u8>)>,
}

/// One authenticated (or authenticating) TCP connection.
#[pin_data]
pub(crate) struct Conn {
    pub(crate) sock: Socket,
    /// Serialises whole frames from several senders.
    #[pin]
    tx: Mutex<Tx>,
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
                tx <- new_mutex!(Tx { seq: 0, seal: None }, "Conn::tx"),
                closing: AtomicBool::new(false),
                stats,
            }),
            GFP_KERNEL,
        )
    }

    /// From the next frame on, every frame is sealed (the handshake is done). Called by the
    /// handshake's thread before anyone else sends.
    pub(crate) fn seal(&self, sealer: Sealer<AesGcm>) -> Result {
        let buf = KVVec::from_elem(0u8, MAX_PAYLOAD, GFP_KERNEL)?;
        self.tx.lock().seal = Some((sealer, buf));
        Ok(())
    }

    /// Sends one message; a failed send closes the connection.
    pub(crate) fn send(&self, m: &Message<'_>) -> Result {
        let mut e = m.encode_parts(0).map_err(|_| EINVAL)?;
        let n = e.frame_len();
        let mut tx = self.tx.lock();
        e.head[12..16].copy_from_slice(&tx.seq.to_le_bytes());
        tx.seq = tx.seq.wrapping_add(1);
        let parts = [
            &e.head[HEADER_LEN..e.head_len],
            e.tails[0],
            e.tails[1],
            e.tails[2],
            e.tails[3],
        ];
        let r = match &mut tx.seal {
            None => self.sock.send_parts(&[
                &e.head[..HEADER_LEN],
                parts[0],
                parts[1],
                parts[2],
                parts[3],
                parts[4],
            ]),
            Some((sealer, buf)) => {
                // The payload, gathered and encrypted in place; the header is authenticated
                // in clear, the tag follows.
                let mut at = 0;
                for p in parts {
                    buf[at..at + p.len()].copy_from_slice(p);
                    at += p.len();
                }
                let mut tag = [0u8; TAG_LEN];
                match sealer.seal(&e.head[..HEADER_LEN], &mut buf[..at], &mut tag) {
                    Ok(()) => self
                        .sock
                        .send_parts(&[&e.head[..HEADER_LEN], &buf[..at], &tag]),
                    Err(_) => Err(EIO),
                }
            }
        };
        drop(tx);
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
