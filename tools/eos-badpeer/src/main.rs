//! `eos-badpeer IP:PORT [--as ID] [--secret HEX]`: attacks an ElasticOS node's port with
//! every kind of bad input and checks that the kernel closes each connection. One line per
//! case; exit status 0 only if every case was refused.
//!
//! `--root-shell [--hold S]` (with `--secret`): asks for a uid-0 shell and tries to run code
//! of its choosing in it (see `rootshell`).
//!
//! With `--secret`, a last case authenticates as node `--as` and then sends garbage (the
//! node must drop that link; the real node re-establishes its own).

mod rootshell;

use aes_gcm::aead::{AeadInPlace, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use eos_core::handshake::{Initiator, Mac};
use eos_core::peer::Secret;
use eos_core::proto::TAG_LEN;
use eos_core::proto::{
    FrameReader, Header, Hello, Message, MsgType, HEADER_LEN, MAC_LEN, MAGIC, MAX_PAYLOAD,
    NONCE_LEN, VERSION,
};
use eos_core::record::{Aead, Opener, Sealer};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest we wait for the kernel to close a bad connection (handshake timeout is 5 s).
const CLOSE_LIMIT: Duration = Duration::from_secs(12);

/// One attack: what happened, or why it counts as a failure.
type Case = Box<dyn Fn() -> Result<String, String>>;

struct SoftMac(Vec<u8>);

impl Mac for SoftMac {
    fn mac(&self, msg: &[u8]) -> Option<[u8; MAC_LEN]> {
        let mut m = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&self.0).ok()?;
        m.update(msg);
        Some(m.finalize().into_bytes().into())
    }
}

/// AES-256-GCM in software: the record layer's cipher, as the kernel's `gcm(aes)`.
struct Gcm(Aes256Gcm);

impl Gcm {
    fn new(key: &[u8; 32]) -> Self {
        Self(Aes256Gcm::new(key.into()))
    }
}

impl Aead for Gcm {
    fn seal(
        &self,
        nonce: &[u8; 12],
        aad: [&[u8]; 2],
        data: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> bool {
        match self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), &aad.concat(), data)
        {
            Ok(t) => {
                tag.copy_from_slice(&t);
                true
            }
            Err(_) => false,
        }
    }

    fn open(
        &self,
        nonce: &[u8; 12],
        aad: [&[u8]; 2],
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> bool {
        let aad = aad.concat();
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), &aad, data, Tag::from_slice(tag))
            .is_ok()
    }
}

/// An authenticated connection with its record layer: what we send is sealed, what the node
/// sends is opened.
struct Link {
    s: TcpStream,
    tx: Sealer<Gcm>,
    rx: Opener<Gcm>,
    /// The node's sending key (for the reflection attack).
    rx_key: [u8; 32],
}

impl Link {
    /// The wire bytes of a clear frame (as [`frame`] encodes it), sealed as the next frame.
    fn sealed(&mut self, clear: &[u8]) -> Vec<u8> {
        let mut f = clear.to_vec();
        let (h, p) = f.split_at_mut(HEADER_LEN);
        let mut tag = [0; TAG_LEN];
        self.tx.seal(h, p, &mut tag).expect("seals");
        f.extend_from_slice(&tag);
        f
    }

    fn send(&mut self, clear: &[u8]) -> Result<(), String> {
        let f = self.sealed(clear);
        self.s.write_all(&f).map_err(|e| e.to_string())
    }
}

fn header(magic: u16, version: u8, ty: u8, len: u32) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..2].copy_from_slice(&magic.to_le_bytes());
    b[2] = version;
    b[3] = ty;
    b[8..12].copy_from_slice(&len.to_le_bytes());
    b
}

fn frame(m: &Message) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let n = m.encode(0, &mut buf).expect("encodes");
    buf.truncate(n);
    buf
}

fn hello(node: u16, min: u16, max: u16) -> Vec<u8> {
    frame(&Message::Hello(Hello {
        min_version: min,
        max_version: max,
        node,
        caps: 0,
        nonce: [7; NONCE_LEN],
    }))
}

fn garbage(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect()
}

/// Reads frames until the kernel closes the connection; returns what it said. On an
/// authenticated connection (`opener`) every frame must open.
fn read_until_close(
    s: &mut TcpStream,
    limit: Duration,
    mut opener: Option<&mut Opener<Gcm>>,
) -> Result<(Duration, Vec<String>), String> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    let mut reader = FrameReader::new();
    if opener.is_some() {
        reader.seal();
    }
    let mut payload = vec![0u8; MAX_PAYLOAD + TAG_LEN];
    let mut said = Vec::new();
    loop {
        if start.elapsed() > limit {
            return Err(format!("still open after {} s", limit.as_secs()));
        }
        let want = reader.want(&mut payload);
        match s.read(want) {
            Ok(0) => return Ok((start.elapsed(), said)),
            Ok(n) => match reader.advance(n) {
                Ok(Some(h)) => {
                    if let Some(o) = opener.as_deref_mut() {
                        let hdr = *reader.header_bytes();
                        if o.open_frame(&hdr, &mut payload, h.len as usize).is_err() {
                            return Err("the node sent a frame that does not open".into());
                        }
                    }
                    if let Ok(m) = Message::decode(&h, &payload[..h.len as usize]) {
                        let what = match m {
                            Message::Error(r) => format!("error({})", r.name()),
                            other => other.ty().name().to_string(),
                        };
                        said.push(what);
                    }
                }
                Ok(None) => {}
                Err(e) => return Err(format!("kernel sent a bad frame: {e}")),
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Ok((start.elapsed(), said)), // reset by the kernel
        }
    }
}

fn connect(target: SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect_timeout(&target, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))
}

/// Sends `bytes` (optionally half-closing) and expects the kernel to close.
fn send_expect_close(target: SocketAddr, bytes: &[u8], half_close: bool) -> Result<String, String> {
    let mut s = connect(target)?;
    // The kernel may close before everything is written; that is a pass too.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let (t, said) = read_until_close(&mut s, CLOSE_LIMIT, None)?;
    Ok(format!(
        "closed after {} ms, kernel said {:?}",
        t.as_millis(),
        said
    ))
}

/// Sends a `Hello` for `hs` and reads the node's `Challenge`.
fn open_handshake(target: SocketAddr, hs: &Initiator) -> Result<(TcpStream, Vec<u8>), String> {
    let mut s = connect(target)?;
    s.write_all(&frame(&hs.hello()))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; HEADER_LEN + eos_core::proto::CHALLENGE_LEN];
    s.read_exact(&mut buf)
        .map_err(|e| format!("no challenge: {e}"))?;
    Header::decode(buf[..HEADER_LEN].try_into().unwrap()).map_err(|e| e.to_string())?;
    Ok((s, buf))
}

fn challenge(buf: &[u8]) -> Result<Message<'_>, String> {
    let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).map_err(|e| e.to_string())?;
    Message::decode(&h, &buf[HEADER_LEN..]).map_err(|e| e.to_string())
}

fn wrong_key(target: SocketAddr, as_id: u16) -> Result<String, String> {
    let mac = SoftMac(b"not-the-cluster-secret-at-all".to_vec());
    let mut hs = Initiator::new(as_id, 0, 0, [3; NONCE_LEN]);
    let (mut s, buf) = open_handshake(target, &hs)?;
    // Our MAC check of the node's challenge must fail: we do not hold its key.
    if hs.on_challenge(&challenge(&buf)?, &mac).is_ok() {
        return Err("a wrong key verified the node's challenge".into());
    }
    s.write_all(&frame(&Message::Auth([0x5a; MAC_LEN])))
        .map_err(|e| e.to_string())?;
    let (t, said) = read_until_close(&mut s, CLOSE_LIMIT, None)?;
    Ok(format!(
        "closed after {} ms, kernel said {:?}",
        t.as_millis(),
        said
    ))
}

/// An authenticated connection, welcomed by the node, with its record layer on.
fn authenticated(
    target: SocketAddr,
    as_id: u16,
    secret: &Secret,
    responder: u16,
) -> Result<Link, String> {
    let mac = SoftMac(secret.as_bytes().to_vec());
    let mut hs = Initiator::new(as_id, responder, eos_core::proto::caps::ALL, [9; NONCE_LEN]);
    let (mut s, buf) = open_handshake(target, &hs)?;
    let auth = hs
        .on_challenge(&challenge(&buf)?, &mac)
        .map_err(|e| format!("challenge: {e}"))?;
    s.write_all(&frame(&auth)).map_err(|e| e.to_string())?;
    let mut w = [0u8; HEADER_LEN];
    s.read_exact(&mut w)
        .map_err(|e| format!("no welcome: {e}"))?;
    if Header::decode(&w).map(|h| h.ty) != Ok(MsgType::Welcome) {
        return Err("not welcomed with the right key".into());
    }
    let keys = hs.keys().ok_or("no keys after the handshake")?;
    let (tx, rx) = keys.for_side(true);
    Ok(Link {
        s,
        tx: Sealer::new(Gcm::new(tx)),
        rx: Opener::new(Gcm::new(rx)),
        rx_key: *rx,
    })
}

fn auth_then_garbage(
    target: SocketAddr,
    as_id: u16,
    secret: &Secret,
    responder: u16,
) -> Result<String, String> {
    let mut l = authenticated(target, as_id, secret, responder)?;
    let _ = l.s.write_all(&garbage(512));
    let (t, said) = read_until_close(&mut l.s, CLOSE_LIMIT, Some(&mut l.rx))?;
    Ok(format!(
        "authenticated, then closed {} ms after garbage, kernel said {:?}",
        t.as_millis(),
        said
    ))
}

/// Reads and opens one frame (5 s at most); `what` names the awaited message in the error.
fn read_frame(l: &mut Link, what: &str) -> Result<(Header, Vec<u8>), String> {
    l.s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut hb = [0u8; HEADER_LEN];
    l.s.read_exact(&mut hb)
        .map_err(|e| format!("no {what}: {e}"))?;
    let h = Header::decode(&hb).map_err(|e| e.to_string())?;
    let mut p = vec![0u8; h.len as usize + TAG_LEN];
    l.s.read_exact(&mut p).map_err(|e| e.to_string())?;
    l.rx.open_frame(&hb, &mut p, h.len as usize)
        .map_err(|e| format!("the node's {what} does not open: {e:?}"))?;
    p.truncate(h.len as usize);
    Ok((h, p))
}

/// Reads frames until one of type `want` arrives (heartbeats are skipped); returns its
/// status field (bytes 4..8 of the payload).
fn reply_status(s: &mut Link, want: MsgType) -> Result<i32, String> {
    loop {
        let (h, p) = read_frame(s, &format!("{want:?}"))?;
        if h.ty == want {
            return Ok(i32::from_le_bytes(p[4..8].try_into().unwrap()));
        }
        if h.ty != MsgType::Ping && h.ty != MsgType::Pong {
            return Err(format!("unexpected {:?}", h.ty));
        }
    }
}

/// Waits for the Pong that echoes `t` (the node's own pings are skipped).
fn expect_pong(s: &mut Link, t: u64) -> Result<(), String> {
    loop {
        let (h, p) = read_frame(s, "pong (link closed?)")?;
        match h.ty {
            MsgType::Pong if p[..8] == t.to_le_bytes() => return Ok(()),
            MsgType::Ping | MsgType::Pong => {}
            other => return Err(format!("unexpected {other:?} instead of a pong")),
        }
    }
}

/// Authenticated, well-formed jump-layer requests for things that do not exist: each is
/// refused with an error status and the link stays up; then a jump with a range that ends
/// before it starts closes the link.
fn auth_then_bogus_jump(
    target: SocketAddr,
    as_id: u16,
    secret: &Secret,
    responder: u16,
) -> Result<String, String> {
    use eos_core::proto::{Jump, JumpReason, JUMP_RANGE_LEN};
    let mut s = authenticated(target, as_id, secret, responder)?;
    let state = [0x5a_u8; 900];
    let jump = |to_home, ranges: &[u8]| {
        let m = Message::Jump(Jump {
            req: 77,
            pid: 424_242,
            to_home,
            reason: JumpReason::RemoteFaults,
            state: &state,
            ranges,
            files: &[],
            stack: &[],
            stack_addr: 0,
            cpu: Default::default(),
            budget: 0,
            home_pages: 0,
        });
        let mut b = vec![0u8; HEADER_LEN + 2048];
        let n = m.encode(1, &mut b).unwrap_or(0);
        b.truncate(n);
        b
    };
    let mut said = Vec::new();
    for to_home in [false, true] {
        s.send(&jump(to_home, &[]))?;
        let st = reply_status(&mut s, MsgType::JumpAck)?;
        if st >= 0 {
            return Err(format!(
                "jump (to_home {to_home}) to nothing accepted: {st}"
            ));
        }
        said.push(st);
    }
    s.send(&frame(&Message::Fetch {
        req: 78,
        pid: 424_242,
        addr: 0x10000,
        count: 1,
    }))?;
    let st = reply_status(&mut s, MsgType::Pages)?;
    if st >= 0 {
        return Err(format!("fetch for nothing answered {st}"));
    }
    said.push(st);
    s.send(&frame(&Message::Recall { pid: 424_242 }))?;
    s.send(&frame(&Message::Gone {
        pid: 424_242,
        signal: 11,
    }))?;
    s.send(&frame(&Message::Discard {
        pid: 424_242,
        start: 0x10000,
        end: 0x7fff_0000_0000,
        unmap: true,
    }))?;
    // Still up: a ping is answered after the ignored messages.
    s.send(&frame(&Message::Ping(99)))?;
    expect_pong(&mut s, 99)?;
    let mut bad = [0u8; JUMP_RANGE_LEN];
    eos_core::proto::put_jump_range(&mut bad, 0x20000, 0x10000, 3);
    let mut f = jump(false, &[0u8; JUMP_RANGE_LEN]);
    // Patch the valid range into a bad one after encoding (encode does not check ranges).
    f[HEADER_LEN + eos_core::proto::JUMP_FIXED
        ..HEADER_LEN + eos_core::proto::JUMP_FIXED + JUMP_RANGE_LEN]
        .copy_from_slice(&bad);
    s.send(&f)?;
    let (t, closed_with) = read_until_close(&mut s.s, CLOSE_LIMIT, Some(&mut s.rx))?;
    Ok(format!(
        "jump/fetch to nothing refused with {said:?}, recall/gone/discard ignored (pong after them), bad range closed the link in {} ms ({closed_with:?})",
        t.as_millis()
    ))
}

/// The record layer's attacks, each on a fresh authenticated connection: a frame in clear, a
/// sealed frame sent again (replay), a sealed frame with one payload bit changed, two sealed
/// frames in the wrong order, and one sealed under the other direction's key (reflection).
/// Each must close the link, with nothing more from the node.
fn auth_then_forged(
    target: SocketAddr,
    as_id: u16,
    secret: &Secret,
    responder: u16,
    how: &str,
) -> Result<String, String> {
    let mut l = authenticated(target, as_id, secret, responder)?;
    let ping = |t| frame(&Message::Ping(t));
    match how {
        "clear" => {
            // Twice: the second's header stands where the first one's tag should be.
            l.s.write_all(&[ping(1), ping(2)].concat())
                .map_err(|e| e.to_string())?;
        }
        "replay" => {
            let f = l.sealed(&ping(5));
            l.s.write_all(&f).map_err(|e| e.to_string())?;
            expect_pong(&mut l, 5)?;
            l.s.write_all(&f).map_err(|e| e.to_string())?;
        }
        "altered" => {
            let mut f = l.sealed(&ping(6));
            f[HEADER_LEN] ^= 1;
            l.s.write_all(&f).map_err(|e| e.to_string())?;
        }
        "reordered" => {
            let (a, b) = (l.sealed(&ping(7)), l.sealed(&ping(8)));
            l.s.write_all(&[b, a].concat()).map_err(|e| e.to_string())?;
        }
        _ => {
            // Reflected: sealed under the node's own sending key, as its frames to us are.
            let mut tag = [0; TAG_LEN];
            let mut f = ping(9);
            let (h, p) = f.split_at_mut(HEADER_LEN);
            Sealer::new(Gcm::new(&l.rx_key))
                .seal(h, p, &mut tag)
                .map_err(|e| format!("{e:?}"))?;
            f.extend_from_slice(&tag);
            l.s.write_all(&f).map_err(|e| e.to_string())?;
        }
    }
    let (t, said) = read_until_close(&mut l.s, CLOSE_LIMIT, Some(&mut l.rx))?;
    Ok(format!(
        "{how} frame: closed after {} ms, kernel said {said:?}",
        t.as_millis()
    ))
}

/// `--auth-only`: a handshake as node `as_id` with `secret`, its Auth sent whatever the
/// node's challenge proves (a member holding a key of its own, claiming another id, does just
/// that). Accepted: welcomed, and a sealed ping is answered. Refused: what the node said.
fn auth_only(
    target: SocketAddr,
    as_id: u16,
    secret: &Secret,
    responder: u16,
    hold: u64,
    pause_ms: u64,
) -> Result<String, String> {
    let mac = SoftMac(secret.as_bytes().to_vec());
    let mut hs = Initiator::new(
        as_id,
        responder,
        eos_core::proto::caps::ALL,
        [11; NONCE_LEN],
    );
    let (mut s, buf) = open_handshake(target, &hs)?;
    let Message::Challenge(ch) = challenge(&buf)? else {
        return Err("no challenge".into());
    };
    let Message::Hello(hello) = hs.hello() else {
        unreachable!("hello() is a Hello")
    };
    let tag = eos_core::handshake::initiator_mac(&mac, &hello, &ch).ok_or("no MAC")?;
    if pause_ms > 0 {
        println!("badpeer auth as {as_id}: challenge received, pausing {pause_ms} ms");
    }
    // `--pause-before-auth MS`: the handshake stays half done meanwhile (the node may change
    // its key in between: it must not then let this one up).
    std::thread::sleep(Duration::from_millis(pause_ms));
    s.write_all(&frame(&Message::Auth(tag)))
        .map_err(|e| e.to_string())?;
    // Our own check of the node's proof, as a real initiator makes it.
    if hs.on_challenge(&Message::Challenge(ch), &mac).is_err() {
        let (_, said) = read_until_close(&mut s, CLOSE_LIMIT, None)?;
        return Err(format!("refused, the node said {said:?}"));
    }
    let mut w = [0u8; HEADER_LEN];
    s.read_exact(&mut w)
        .map_err(|e| format!("refused, no welcome: {e}"))?;
    if Header::decode(&w).map(|h| h.ty) != Ok(MsgType::Welcome) {
        return Err("refused: not welcomed".into());
    }
    let keys = hs.keys().ok_or("no keys")?;
    let (tx, rx) = keys.for_side(true);
    let mut l = Link {
        s,
        tx: Sealer::new(Gcm::new(tx)),
        rx: Opener::new(Gcm::new(rx)),
        rx_key: *rx,
    };
    l.send(&frame(&Message::Ping(31)))?;
    expect_pong(&mut l, 31)?;
    // `--hold S`: the connection stays open (silent) for S seconds before it closes, so the
    // node's own peer may come back meanwhile and replace it in turn.
    std::thread::sleep(Duration::from_secs(hold));
    Ok(format!(
        "accepted: welcomed, a sealed ping answered{}",
        if hold > 0 {
            format!(", held {hold} s")
        } else {
            String::new()
        }
    ))
}

/// `--flood-from IP --seconds N`: keeps 20 silent connections to the node open from source
/// address `from` for `secs` seconds, opening a new one whenever the node closes one (a
/// half-open handshake flood from one source).
fn flood_from(target: SocketAddr, from: std::net::IpAddr, secs: u64) -> Result<String, String> {
    use socket2::{Domain, Socket, Type};
    let open = || -> Result<TcpStream, String> {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
        s.bind(&SocketAddr::new(from, 0).into())
            .map_err(|e| format!("bind {from}: {e}"))?;
        s.connect_timeout(&target.into(), Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        let s: TcpStream = s.into();
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(s)
    };
    let end = Instant::now() + Duration::from_secs(secs);
    let mut conns: Vec<TcpStream> = Vec::new();
    let (mut opened, mut closed) = (0u64, 0u64);
    while Instant::now() < end {
        // Drop the ones the node closed (read gives 0 or an error other than "nothing yet").
        let before = conns.len();
        conns.retain_mut(|c| {
            let mut b = [0u8; 64];
            match c.read(&mut b) {
                Ok(0) => false,
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            }
        });
        closed += (before - conns.len()) as u64;
        while conns.len() < 20 {
            conns.push(open()?);
            opened += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(format!(
        "{opened} connections opened from {from} in {secs} s, {closed} closed by the node"
    ))
}

fn flood(target: SocketAddr, n: usize) -> Result<String, String> {
    // Many silent connections at once: the node refuses the excess and times out the rest.
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(connect(target)?);
    }
    let start = Instant::now();
    let handles: Vec<_> = conns
        .into_iter()
        .map(|mut s| std::thread::spawn(move || read_until_close(&mut s, CLOSE_LIMIT, None)))
        .collect();
    let mut closed = 0;
    for h in handles {
        if h.join().map_err(|_| "thread panicked")?.is_ok() {
            closed += 1;
        }
    }
    if closed != n {
        return Err(format!("only {closed}/{n} connections were closed"));
    }
    Ok(format!(
        "all {n} closed within {} ms",
        start.elapsed().as_millis()
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.first().and_then(|a| a.parse::<SocketAddr>().ok()) else {
        eprintln!("usage: eos-badpeer IP:PORT [--as ID] [--responder ID] [--secret HEX]");
        std::process::exit(2);
    };
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let as_id: u16 = opt("--as").and_then(|v| v.parse().ok()).unwrap_or(1);
    let responder: u16 = opt("--responder").and_then(|v| v.parse().ok()).unwrap_or(2);
    let secret = opt("--secret").and_then(|s| Secret::parse_hex(s).ok());

    if let Some(from) = opt("--flood-from").and_then(|a| a.parse().ok()) {
        let secs = opt("--seconds").and_then(|v| v.parse().ok()).unwrap_or(20);
        match flood_from(target, from, secs) {
            Ok(what) => println!("badpeer flood: {what}"),
            Err(why) => {
                println!("badpeer flood: FAIL ({why})");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Some(n) = opt("--shells").and_then(|v| v.parse().ok()) {
        let Some(s) = secret else {
            eprintln!("--shells needs --secret");
            std::process::exit(2);
        };
        let parallel = args.iter().any(|a| a == "--parallel");
        // The first this many name uid 1000, the others uid 1001 (default: all 1000).
        let split = opt("--uid-split").and_then(|v| v.parse().ok()).unwrap_or(n);
        match rootshell::many_shells(target, as_id, &s, responder, n, parallel, split) {
            Ok(what) => println!("badpeer shells: {what}"),
            Err(why) => {
                println!("badpeer shells: FAIL ({why})");
                std::process::exit(1);
            }
        }
        return;
    }
    if args.iter().any(|a| a == "--root-shell") {
        let Some(s) = secret else {
            eprintln!("--root-shell needs --secret");
            std::process::exit(2);
        };
        let hold = opt("--hold").and_then(|v| v.parse().ok()).unwrap_or(10);
        if let Err(why) = rootshell::run(target, as_id, &s, responder, hold) {
            println!("badpeer rootshell: FAIL ({why})");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "--auth-only") {
        let Some(s) = secret else {
            eprintln!("--auth-only needs --secret");
            std::process::exit(2);
        };
        let hold = opt("--hold").and_then(|v| v.parse().ok()).unwrap_or(0);
        let pause = opt("--pause-before-auth")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        match auth_only(target, as_id, &s, responder, hold, pause) {
            Ok(what) => {
                println!("badpeer auth as {as_id}: {what}");
                std::process::exit(0);
            }
            Err(why) => {
                println!("badpeer auth as {as_id}: {why}");
                std::process::exit(3);
            }
        }
    }
    let valid = hello(as_id, 1, 1);
    let mut cases: Vec<(&str, Case)> = vec![
        (
            "garbage",
            Box::new(move || send_expect_close(target, &garbage(4096), false)),
        ),
        (
            "bad-magic",
            Box::new(move || send_expect_close(target, &header(0xBEEF, VERSION, 1, 44), false)),
        ),
        (
            "bad-version",
            Box::new(move || send_expect_close(target, &header(MAGIC, 9, 1, 44), false)),
        ),
        (
            "unknown-type",
            Box::new(move || send_expect_close(target, &header(MAGIC, VERSION, 0x7f, 0), false)),
        ),
        (
            "oversized-length",
            Box::new(move || {
                send_expect_close(target, &header(MAGIC, VERSION, 1, 0xFFFF_FFF0), false)
            }),
        ),
        (
            "reserved-bits",
            Box::new(move || {
                let mut h = header(MAGIC, VERSION, 1, 44);
                h[5] = 0x80;
                send_expect_close(target, &h, false)
            }),
        ),
        (
            "truncated-then-eof",
            Box::new({
                let v = valid.clone();
                move || send_expect_close(target, &v[..8], true)
            }),
        ),
        (
            "truncated-then-stall",
            Box::new({
                let v = valid.clone();
                move || send_expect_close(target, &v[..20], false)
            }),
        ),
        (
            "silent",
            Box::new(move || send_expect_close(target, &[], false)),
        ),
        (
            "version-mismatch",
            Box::new(move || send_expect_close(target, &hello(as_id, 5, 9), false)),
        ),
        (
            "unknown-node",
            Box::new(move || send_expect_close(target, &hello(999, 1, 1), false)),
        ),
        (
            "ping-before-handshake",
            Box::new(move || send_expect_close(target, &frame(&Message::Ping(1)), false)),
        ),
        (
            "stretch-before-handshake",
            Box::new(move || {
                let m = Message::Stretch(eos_core::proto::Stretch {
                    req: 1,
                    pid: 1,
                    exe_hash: [0; 32],
                    uid: 0,
                    gid: 0,
                    path: b"/bin/busybox",
                    argv: b"sh\0",
                    env: b"",
                });
                send_expect_close(target, &frame(&m), false)
            }),
        ),
        ("wrong-key", Box::new(move || wrong_key(target, as_id))),
        ("flood", Box::new(move || flood(target, 20))),
    ];
    if let Some(s) = secret {
        cases.push((
            "auth-then-garbage",
            Box::new({
                let s = s.clone();
                move || auth_then_garbage(target, as_id, &s, responder)
            }),
        ));
        for how in ["clear", "replay", "altered", "reordered", "reflected"] {
            cases.push((
                match how {
                    "clear" => "auth-then-clear-frame",
                    "replay" => "auth-then-replayed-frame",
                    "altered" => "auth-then-altered-frame",
                    "reordered" => "auth-then-reordered-frames",
                    _ => "auth-then-reflected-frame",
                },
                Box::new({
                    let s = s.clone();
                    move || auth_then_forged(target, as_id, &s, responder, how)
                }),
            ));
        }
        cases.push((
            "auth-then-bogus-jump",
            Box::new(move || auth_then_bogus_jump(target, as_id, &s, responder)),
        ));
    }
    let mut failed = 0;
    for (name, case) in &cases {
        match case() {
            Ok(what) => println!("badpeer case {name}: PASS ({what})"),
            Err(why) => {
                failed += 1;
                println!("badpeer case {name}: FAIL ({why})");
            }
        }
    }
    println!(
        "badpeer summary: {} passed, {failed} failed",
        cases.len() - failed
    );
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
