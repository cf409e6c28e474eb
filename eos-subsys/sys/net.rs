// SPDX-License-Identifier: GPL-2.0

//! In-kernel IPv4 TCP sockets.

use core::ffi::c_void;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::ptr::{addr_of_mut, NonNull};
use kernel::{
    bindings,
    error::{to_result, Error},
    prelude::*,
    time::msecs_to_jiffies,
};

/// An owned kernel TCP socket, released on drop.
pub(crate) struct Socket(NonNull<bindings::socket>);

// SAFETY: the socket layer serialises operations on a socket with its own lock; sending from
// one thread while another receives or shuts it down is how the stack is meant to be used.
// The pointer is released exactly once, in `Drop`, when no reference remains.
unsafe impl Send for Socket {}
// SAFETY: see `Send`.
unsafe impl Sync for Socket {}

fn to_sockaddr(a: SocketAddrV4) -> bindings::sockaddr_in {
    // SAFETY: all-zero is a valid `sockaddr_in`.
    let mut sa: bindings::sockaddr_in = unsafe { core::mem::zeroed() };
    sa.sin_family = bindings::AF_INET as _;
    sa.sin_port = a.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
    sa
}

fn errno(ret: i32) -> Result<usize> {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(ret as usize)
    }
}

impl Socket {
    /// A new TCP socket in the initial network namespace.
    pub(crate) fn tcp() -> Result<Self> {
        let mut s: *mut bindings::socket = core::ptr::null_mut();
        // SAFETY: `init_net` lives forever; `s` is a valid out-pointer.
        to_result(unsafe {
            bindings::sock_create_kern(
                addr_of_mut!(bindings::init_net),
                bindings::AF_INET as _,
                bindings::sock_type_SOCK_STREAM as _,
                bindings::IPPROTO_TCP as _,
                &mut s,
            )
        })?;
        Ok(Self(NonNull::new(s).ok_or(ENOMEM)?))
    }

    fn sk(&self) -> *mut bindings::sock {
        // SAFETY: `self.0` is a live socket; `sk` is set for its whole life.
        unsafe { (*self.0.as_ptr()).sk }
    }

    /// Bounds every blocking receive (and accept) and send (and connect) on this socket, so
    /// threads blocked in it come back to check their stop flags.
    pub(crate) fn set_timeouts(&self, rcv_ms: u32, snd_ms: u32) {
        let sk = self.sk();
        // SAFETY: `sk` is live. The timeouts are plain words the stack reads with READ_ONCE;
        // `sock_setsockopt` writes them the same way.
        unsafe {
            (*sk).sk_rcvtimeo = msecs_to_jiffies(rcv_ms) as _;
            (*sk).sk_sndtimeo = msecs_to_jiffies(snd_ms) as _;
        }
    }

    /// Disables Nagle: our frames are small request/response messages.
    pub(crate) fn set_nodelay(&self) {
        // SAFETY: `sk` is a live TCP sock; the function takes the socket lock itself.
        unsafe { bindings::tcp_sock_set_nodelay(self.sk()) };
    }

    /// Allows re-binding the listen port right after a restart.
    pub(crate) fn set_reuseaddr(&self) {
        // SAFETY: `sk` is live; the function takes the socket lock itself.
        unsafe { bindings::sock_set_reuseaddr(self.sk()) };
    }

    /// Binds to a local address.
    pub(crate) fn bind(&self, a: SocketAddrV4) -> Result {
        let mut sa = to_sockaddr(a);
        // SAFETY: `sa` is a valid `sockaddr_in` of the given length.
        to_result(unsafe {
            bindings::kernel_bind(
                self.0.as_ptr(),
                addr_of_mut!(sa).cast(),
                core::mem::size_of::<bindings::sockaddr_in>() as _,
            )
        })
    }

    /// Starts listening.
    pub(crate) fn listen(&self, backlog: i32) -> Result {
        // SAFETY: `self.0` is a live, bound socket.
        to_result(unsafe { bindings::kernel_listen(self.0.as_ptr(), backlog) })
    }

    /// Waits (up to the receive timeout) for a connection; `EAGAIN` when none came.
    pub(crate) fn accept(&self) -> Result<Socket> {
        let mut s: *mut bindings::socket = core::ptr::null_mut();
        // SAFETY: `self.0` is a live listening socket; `s` is a valid out-pointer.
        to_result(unsafe { bindings::kernel_accept(self.0.as_ptr(), &mut s, 0) })?;
        Ok(Self(NonNull::new(s).ok_or(ENOMEM)?))
    }

    /// Connects, waiting at most the send timeout.
    pub(crate) fn connect(&self, a: SocketAddrV4) -> Result {
        let mut sa = to_sockaddr(a);
        // SAFETY: `sa` is a valid `sockaddr_in` of the given length.
        to_result(unsafe {
            bindings::kernel_connect(
                self.0.as_ptr(),
                addr_of_mut!(sa).cast(),
                core::mem::size_of::<bindings::sockaddr_in>() as _,
                0,
            )
        })
    }

    /// Sends the concatenation of `parts` (at most 4) without copying them. An error leaves
    /// the stream in an unknown state: close it.
    pub(crate) fn send_parts(&self, parts: &[&[u8]]) -> Result {
        let mut idx = 0;
        let mut off = 0;
        loop {
            while idx < parts.len() && off == parts[idx].len() {
                idx += 1;
                off = 0;
            }
            if idx == parts.len() {
                return Ok(());
            }
            let mut vecs = [bindings::kvec {
                iov_base: core::ptr::null_mut(),
                iov_len: 0,
            }; 4];
            let mut n = 0;
            let mut total = 0;
            for (i, p) in parts[idx..].iter().enumerate().take(4) {
                let rest = if i == 0 { &p[off..] } else { &p[..] };
                vecs[n] = bindings::kvec {
                    iov_base: rest.as_ptr() as *mut c_void,
                    iov_len: rest.len(),
                };
                total += rest.len();
                n += 1;
            }
            // SAFETY: all-zero is a valid `msghdr` (no address, no control data).
            let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
            msg.msg_flags = bindings::MSG_NOSIGNAL as _;
            // SAFETY: each of the `n` kvecs describes readable memory of `parts`.
            let mut sent = errno(unsafe {
                bindings::kernel_sendmsg(self.0.as_ptr(), &mut msg, vecs.as_mut_ptr(), n, total)
            })?;
            if sent == 0 {
                return Err(EPIPE);
            }
            // Advance over what went out.
            while sent > 0 && idx < parts.len() {
                let left = parts[idx].len() - off;
                if sent >= left {
                    sent -= left;
                    idx += 1;
                    off = 0;
                } else {
                    off += sent;
                    sent = 0;
                }
            }
        }
    }

    /// Receives up to `buf.len()` bytes: `Ok(0)` at end of stream, `EAGAIN` on timeout.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        let mut v = bindings::kvec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid `msghdr`.
        let mut msg: bindings::msghdr = unsafe { core::mem::zeroed() };
        // SAFETY: `v` describes `buf`, which is valid for writing `buf.len()` bytes.
        let n = errno(unsafe {
            bindings::kernel_recvmsg(self.0.as_ptr(), &mut msg, &mut v, 1, buf.len(), 0)
        })?;
        Ok(n.min(buf.len()))
    }

    /// Shuts both directions down, waking any thread blocked on the socket.
    pub(crate) fn shutdown(&self) {
        // SAFETY: `self.0` is live; shutdown may race with send/recv by design.
        unsafe {
            bindings::kernel_sock_shutdown(self.0.as_ptr(), bindings::sock_shutdown_cmd_SHUT_RDWR)
        };
    }

    /// The remote address, for logs.
    pub(crate) fn peer_addr(&self) -> Option<SocketAddrV4> {
        // SAFETY: all-zero is a valid `sockaddr_in`.
        let mut sa: bindings::sockaddr_in = unsafe { core::mem::zeroed() };
        // SAFETY: `sa` has room for an IPv4 address, the only family this socket can have.
        let r = unsafe { bindings::kernel_getpeername(self.0.as_ptr(), addr_of_mut!(sa).cast()) };
        if r < 0 {
            return None;
        }
        Some(SocketAddrV4::new(
            Ipv4Addr::from(sa.sin_addr.s_addr.to_ne_bytes()),
            u16::from_be(sa.sin_port),
        ))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: we own the socket and nobody else references it any more.
        unsafe { bindings::sock_release(self.0.as_ptr()) };
    }
}
