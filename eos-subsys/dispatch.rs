// SPDX-License-Identifier: GPL-2.0

//! The one place where a message from a peer meets its handler, and where the loss of a link
//! reaches every primitive that kept state for that node. Replies to our own requests never
//! get here (rpc.rs takes them).

use crate::link::Conn;
use crate::node::{peer_warn, Node, Peer};
use crate::proto::Message;
use crate::transport::{Handlers, Unhandled};
use kernel::{prelude::*, sync::Arc};

/// What transport.rs hands messages and link losses to.
pub(crate) static HANDLERS: Handlers = Handlers { message, link_down };

fn message(
    node: &'static Node,
    peer: &Arc<Peer>,
    conn: &Arc<Conn>,
    m: &Message<'_>,
) -> Result<(), Unhandled> {
    let sent = match m {
        // Home side: our processes' execution and pages.
        Message::Jump(j) if j.to_home => {
            crate::jump::home_receive(node, peer, j);
            Ok(())
        }
        Message::Gone { pid, signal } => {
            crate::jump::home_gone(peer, *pid, *signal);
            Ok(())
        }
        Message::Fetch {
            req,
            pid,
            addr,
            count,
        } => crate::pull::serve_fetch(node, peer, conn, *req, *pid, *addr, *count),
        // Member side: the shells we hold for the peer.
        Message::Stretch(s) => crate::stretch::serve_stretch(node, peer, conn, s),
        Message::Release { pid } => {
            crate::stretch::serve_release(peer, *pid);
            Ok(())
        }
        Message::Push(p) => crate::push::serve_push(node, peer, conn, p),
        Message::PushRefs(p) => crate::push::serve_push_refs(node, peer, conn, p),
        Message::Cold { req, pid, count } => {
            crate::reclaim::serve_cold(node, peer, conn, *req, *pid, *count)
        }
        Message::Pull {
            req,
            pid,
            addr,
            count,
        } => crate::pull::serve_pull(node, peer, conn, *req, *pid, *addr, *count),
        Message::Jump(j) => {
            crate::jump::shell_receive(node, peer, j);
            Ok(())
        }
        Message::Recall { pid } => {
            crate::jump::serve_recall(peer, *pid);
            Ok(())
        }
        Message::Discard {
            pid,
            start,
            end,
            unmap,
        } => {
            if let Err(e) = crate::mapsync::discard(peer, *pid, *start, *end, *unmap) {
                peer_warn!(
                    node,
                    "discard of {:#x}..{:#x} of pid {} from node {} failed: {:?}\n",
                    start,
                    end,
                    pid,
                    peer.id,
                    e
                );
            }
            Ok(())
        }
        Message::Took {
            pid,
            from_home,
            addr,
            count,
            keep,
        } => {
            crate::pull::serve_took(peer, *pid, *from_home, *addr, *count, *keep);
            Ok(())
        }
        _ => return Err(Unhandled::Unexpected),
    };
    sent.map_err(Unhandled::Io)
}

/// The link to node `id` is gone: its processes here and its shells here.
fn link_down(_node: &'static Node, id: u16) {
    crate::home::peer_lost(id);
    crate::shell::home_lost(id);
}
