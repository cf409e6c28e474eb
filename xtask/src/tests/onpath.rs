//! An attacker on the nodes' network. The VMs share one virtual network, a QEMU multicast hub
//! on the host's loopback: anything that joins it sees every Ethernet frame and can put its own
//! on the wire, as a machine on a shared hub or one that won an ARP spoof could. This joins it,
//! follows the live link's TCP stream from node1 to node2, and injects segments with the right
//! sequence numbers (and the stream's own TCP options) that carry a forged frame, then a frame
//! captured from the link earlier: the record layer must refuse both.

use crate::cluster::{self, check_clean, stat, Procs};
use crate::vm::{self, Vm};
use anyhow::{bail, Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

const GROUP: Ipv4Addr = Ipv4Addr::new(230, 0, 0, 1);

/// The hub, joined.
pub(super) struct Hub {
    sock: UdpSocket,
    to: SocketAddrV4,
}

/// One TCP segment seen on the hub: the whole Ethernet frame and where its parts are.
#[derive(Clone)]
pub(super) struct Seg {
    frame: Vec<u8>,
    ip: usize,
    tcp: usize,
    data: usize,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// One's-complement sum of `parts` as 16-bit words (the IP and TCP checksums).
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in *p {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Seg {
    /// A TCP segment from `src` to `dst`:`dport` in this Ethernet frame.
    fn parse(frame: &[u8], src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> Option<Self> {
        if frame.len() < 54 || frame[12..14] != [0x08, 0x00] {
            return None;
        }
        let ip = 14;
        let ihl = usize::from(frame[ip] & 0xf) * 4;
        let total = usize::from(be16(&frame[ip + 2..]));
        if frame[ip + 9] != 6
            || frame[ip + 12..ip + 16] != src.octets()
            || frame[ip + 16..ip + 20] != dst.octets()
            || ip + total > frame.len()
        {
            return None;
        }
        let tcp = ip + ihl;
        if be16(&frame[tcp + 2..]) != dport {
            return None;
        }
        let data = tcp + usize::from(frame[tcp + 12] >> 4) * 4;
        Some(Self {
            frame: frame[..ip + total].to_vec(),
            ip,
            tcp,
            data,
        })
    }

    fn seq(&self) -> u32 {
        be32(&self.frame[self.tcp + 4..])
    }

    /// Its TCP payload.
    pub(super) fn payload(&self) -> &[u8] {
        &self.frame[self.data..]
    }

    /// The same segment (addresses, ports, ack, window, TCP options) carrying `payload` at
    /// sequence number `seq`, checksums made anew.
    fn with(&self, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = self.frame[..self.data].to_vec();
        f.extend_from_slice(payload);
        let (ip, tcp) = (self.ip, self.tcp);
        let total = (f.len() - ip) as u16;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        let id = be16(&f[ip + 4..]).wrapping_add(7);
        f[ip + 4..ip + 6].copy_from_slice(&id.to_be_bytes());
        f[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let c = checksum(&[&f[ip..tcp]]);
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        f[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
        f[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
        let tcp_len = (f.len() - tcp) as u16;
        let mut pseudo = Vec::with_capacity(12);
        pseudo.extend_from_slice(&f[ip + 12..ip + 20]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&tcp_len.to_be_bytes());
        let c = checksum(&[&pseudo, &f[tcp..]]);
        f[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
        f
    }
}

impl Hub {
    /// Joins the hub of the cluster whose network is on UDP port `port`.
    pub(super) fn join(port: u16) -> Result<Self> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.bind(&SocketAddrV4::new(GROUP, port).into())
            .context("bind to the VMs' hub")?;
        s.join_multicast_v4(&GROUP, &Ipv4Addr::LOCALHOST)?;
        s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST)?;
        s.set_multicast_loop_v4(true)?;
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(Self {
            sock: s.into(),
            to: SocketAddrV4::new(GROUP, port),
        })
    }

    /// The next segment from `src` to `dst`:`dport` with exactly `len` payload bytes, within
    /// `limit`.
    pub(super) fn next(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        dport: u16,
        len: usize,
        limit: Duration,
    ) -> Result<Seg> {
        let end = Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        // Only what comes from now on: frames queued since the last call carry stale
        // sequence numbers (or belong to a connection that is gone).
        self.sock.set_nonblocking(true)?;
        while self.sock.recv(&mut buf).is_ok() {}
        self.sock.set_nonblocking(false)?;
        while Instant::now() < end {
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            if let Some(s) = Seg::parse(&buf[..n], src, dst, dport) {
                if s.payload().len() == len {
                    return Ok(s);
                }
            }
        }
        bail!("no {len}-byte segment from {src} to {dst}:{dport} in {limit:?}")
    }

    /// Puts `payload` on the wire as the next bytes of the stream `after` belongs to.
    pub(super) fn inject_after(&self, after: &Seg, payload: &[u8]) -> Result<()> {
        let seq = after.seq().wrapping_add(after.payload().len() as u32);
        self.sock.send_to(&after.with(seq, payload), self.to)?;
        Ok(())
    }
}

/// The step: a forged frame, then a replayed one, injected into the live link from node1 to
/// node2 with the right TCP sequence numbers while a process with pages on node2 runs. Each
/// time node2 counts a forged frame, logs it and closes the link, which comes back; the process
/// reads back every page (or is ended with its reason logged, never fed forged data).
pub(super) fn on_path(cluster: &crate::vm::Cluster, a: &mut Vm, b: &mut Vm) -> Result<String> {
    let hub = Hub::join(cluster.net_port())?;
    let (n1, n2): (Ipv4Addr, Ipv4Addr) = (vm::ip(1).parse()?, vm::ip(2).parse()?);
    let port = vm::PORT;
    // Its status is written by a subshell: the console shell may report the job before a
    // `wait` could.
    a.sh(
        "rm -f /tmp/op.status; (eosctl run --elastic --budget 2 -- hold 8 120 > /tmp/op.out 2>&1; \
         echo status=$? > /tmp/op.status) & true",
    )?;
    let mut remote = 0;
    let pid = cluster::poll(
        "hold's pages on node2",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let procs = Procs::read(a)?;
            let hold = procs.home("hold");
            remote = hold.map_or(0, |h| h.remote_pages());
            let pid = hold.map_or(0, |h| h.pid());
            Ok((remote >= 1200 && pid != 0).then_some(pid))
        },
    )
    .with_context(|| format!("only {remote} pages of hold went to node2"))?;
    let forged = |b: &mut Vm| -> Result<u64> {
        Ok(stat(&b.sh("cat /sys/kernel/elastic/stats")?, "rx_forged"))
    };
    // A sealed 8-byte message (Ping or Pong): 16 bytes of header, 8 of payload, 16 of tag.
    let frame_len = 40;
    let mut captured = None;
    let mut tries = Vec::new();
    for what in ["forged", "replayed"] {
        let before = forged(b)?;
        let mut done = false;
        for attempt in 1..=5 {
            let seg = hub.next(n1, n2, port, frame_len, Duration::from_secs(10))?;
            let bytes = match (what, &captured) {
                ("replayed", Some(c)) => Vec::clone(c),
                _ => {
                    captured = Some(seg.payload().to_vec());
                    // The header as sent, another payload, a tag of our own.
                    let mut f = seg.payload().to_vec();
                    f[16..].fill(0x5a);
                    f
                }
            };
            hub.inject_after(&seg, &bytes)?;
            std::thread::sleep(Duration::from_millis(1500));
            if forged(b)? > before {
                tries.push(format!("{what} after {attempt} tries"));
                done = true;
                break;
            }
        }
        if !done {
            bail!("node2 never refused the {what} frame (it may have lost the race with the real stream 5 times)");
        }
        cluster::wait_links(a, &[2])?;
    }
    if !b.console().contains("failed authentication") {
        bail!("node2 did not log the forged frames");
    }
    // Ended already if the link's loss counted as node2's (its pages are there): then its
    // reason is in the log.
    a.sh(&format!("kill -USR1 {pid} 2>/dev/null; true"))?;
    let (_, out) = a.run(
        "while [ ! -s /tmp/op.status ]; do sleep 0.2; done; cat /tmp/op.status /tmp/op.out",
        Duration::from_secs(180),
    )?;
    let right = out.lines().any(|l| l.trim() == "status=0") && out.contains("hold: 0 bad pages");
    let stopped = (out.contains("status=135") || out.contains("status=137"))
        && a.console().contains("lost: killing pid");
    if !right && !stopped {
        bail!("the process was neither right nor stopped with a reason:\n{out}");
    }
    check_clean(&[a, b])?;
    Ok(format!(
        "segments with the link's own TCP sequence numbers: {}; node2 counted each as forged, \
         logged it and closed the link, which came back; the process with {remote} pages on node2 {}",
        tries.join(", "),
        if right { "read back every page" } else { "was stopped with its reason logged" }
    ))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn checksums_are_the_internets() {
        // RFC 1071's example words sum to 0xddf2; the checksum is its complement.
        let words = [0x00u8, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&[&words]), !0xddf2);
        // Split anywhere, the same.
        assert_eq!(checksum(&[&words[..3], &words[3..]]), !0xddf2);
    }
}
