//! The seed corpus, generated: for `frame`, every message type encoded by the encoder (as a
//! frame and as a raw type byte + payload), a stream of many frames, and hand-made edge cases;
//! for the others, scripts of the targets' little input languages. Written to
//! corpus/<target>/seed-<name> (committed) by
//! `cargo test --manifest-path eos-subsys/core/fuzz/Cargo.toml -- --ignored write_seeds`, and
//! afresh to out/fuzz/seeds/ by every `cargo xtask fuzz`.

use crate::Script;
use eos_core::layout::{NR_BRK, NR_MADVISE, NR_MMAP, NR_MREMAP, NR_MUNMAP};
use eos_core::proto::{
    caps, put_file_entry, put_files_header, put_jump_range, Challenge, ColdAddrs, FileMap, Header,
    Hello, Message, MsgType, Pages, Push, PushRefs, Reason, Stretch, HEADER_LEN, JUMP_FILE_FIXED,
    JUMP_FIXED, JUMP_RANGE_LEN, MAC_LEN, MAX_NODE_ID, MAX_PAYLOAD, NONCE_LEN, PAGES_BUILD,
    PAGE_SIZE, RANGE_ANON,
};

/// One seed: target, file name (without the `seed-` prefix), contents.
pub type Seed = (&'static str, String, Vec<u8>);

pub fn all() -> Vec<Seed> {
    let mut v = frame();
    v.extend(handshake());
    v.extend(layout());
    v.extend(peer());
    v
}

fn encode(m: &Message<'_>, seq: u32) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let n = m.encode(seq, &mut buf).expect("seed message encodes");
    buf.truncate(n);
    buf
}

/// A message of every type but `Jump`, each as the kernel would build it.
fn messages(page: &[u8]) -> Vec<(&'static str, Message<'_>)> {
    let push_addrs: &'static [u8] = &[0x00, 0x30, 0x40, 0, 0, 0, 0, 0]; // 0x403000

    // One reference: 0x403000, tag 7, reserved 0.
    // 0x403000, 0x405000
    let cold_addrs: &'static [u8] = &[
        0x00, 0x30, 0x40, 0, 0, 0, 0, 0, 0x00, 0x50, 0x40, 0, 0, 0, 0, 0,
    ];
    let refs: &'static [u8] = &[0x00, 0x30, 0x40, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0];
    vec![
        (
            "hello",
            Message::Hello(Hello {
                min_version: 1,
                max_version: 1,
                node: 1,
                caps: caps::ALL,
                nonce: [0x11; NONCE_LEN],
            }),
        ),
        (
            "challenge",
            Message::Challenge(Challenge {
                version: 1,
                node: MAX_NODE_ID,
                caps: caps::ALL,
                nonce: [0x22; NONCE_LEN],
                mac: [0x33; MAC_LEN],
            }),
        ),
        ("auth", Message::Auth([0x44; MAC_LEN])),
        ("welcome", Message::Welcome),
        ("error", Message::Error(Reason::BadAuth)),
        ("ping", Message::Ping(1_000_000_007)),
        ("pong", Message::Pong(u64::MAX)),
        ("bye", Message::Bye(Reason::Shutdown)),
        (
            "stretch",
            Message::Stretch(Stretch {
                req: 5,
                pid: 1234,
                exe_hash: [0x55; 32],
                uid: 1000,
                gid: 1000,
                path: b"/bin/lsearch",
                argv: b"lsearch\x00384\x00",
                env: b"PATH=/bin\x00",
            }),
        ),
        (
            "stretch-ok",
            Message::StretchOk {
                req: 5,
                status: 0,
                shell_pid: 77,
            },
        ),
        (
            "push",
            Message::Push(Push {
                req: 6,
                pid: 1234,
                batch: 3,
                vma_start: 0x40_0000,
                vma_end: 0x50_0000,
                prot: 3,
                addrs: push_addrs,
                pages: page,
            }),
        ),
        (
            "push-refs",
            Message::PushRefs(PushRefs {
                req: 7,
                pid: 1234,
                batch: 4,
                vma_start: 0x40_0000,
                vma_end: 0x50_0000,
                prot: 3,
                refs,
            }),
        ),
        (
            "cold",
            Message::Cold {
                req: 9,
                pid: 1234,
                count: 32,
            },
        ),
        (
            "cold-addrs",
            Message::ColdAddrs(ColdAddrs {
                req: 9,
                status: 0,
                addrs: cold_addrs,
            }),
        ),
        (
            "push-ack",
            Message::PushAck {
                req: 6,
                status: -12,
            },
        ),
        (
            "pull",
            Message::Pull {
                req: 7,
                pid: 1234,
                addr: 0x40_3000,
                count: 32,
            },
        ),
        (
            "pages",
            Message::Pages(Pages {
                req: 7,
                status: 0,
                addr: 0x40_3000,
                pages: page,
            }),
        ),
        (
            "pages-build",
            Message::Pages(Pages {
                req: 8,
                status: PAGES_BUILD,
                addr: 0x40_4000,
                pages: &[],
            }),
        ),
        ("release", Message::Release { pid: 1234 }),
        ("jump-ack", Message::JumpAck { req: 9, status: 0 }),
        ("recall", Message::Recall { pid: 1234 }),
        (
            "fetch",
            Message::Fetch {
                req: 11,
                pid: 1234,
                addr: 0x7ffd_0000_1000,
                count: 4,
            },
        ),
        (
            "gone",
            Message::Gone {
                pid: 1234,
                signal: 11,
            },
        ),
        (
            "discard",
            Message::Discard {
                pid: 1234,
                start: 0x40_0000,
                end: 0x40_8000,
                unmap: true,
            },
        ),
        (
            "took",
            Message::Took {
                pid: 1234,
                from_home: false,
                addr: 0x40_2000,
                count: 4,
                keep: 0,
            },
        ),
    ]
}

fn frame() -> Vec<Seed> {
    let page: Vec<u8> = (0..PAGE_SIZE).map(|i| (i * 7) as u8).collect();
    // Three ranges: a file mapping (with its file entry), an anonymous one, the stack.
    let mut ranges = vec![0u8; 3 * JUMP_RANGE_LEN];
    put_jump_range(&mut ranges[..JUMP_RANGE_LEN], 0x40_0000, 0x40_2000, 5);
    put_jump_range(
        &mut ranges[JUMP_RANGE_LEN..2 * JUMP_RANGE_LEN],
        0x60_0000,
        0x70_0000,
        3 | RANGE_ANON,
    );
    put_jump_range(
        &mut ranges[2 * JUMP_RANGE_LEN..],
        0x7ffc_ffff_0000,
        0x7ffd_0001_0000,
        3 | RANGE_ANON,
    );
    let file = FileMap {
        range: 0,
        pgoff: 0,
        size: 8000,
        mtime_ns: 1_700_000_000_000_000_000,
        sha256: [0x5a; 32],
        path: b"/bin/lsearch",
    };
    let mut files = vec![0u8; 4 + JUMP_FILE_FIXED + file.path.len()];
    put_files_header(&mut files, 1);
    put_file_entry(&mut files[4..], &file);

    let mut seeds = Vec::new();
    let mut stream = Vec::new();
    // Jumps are built as payloads and decoded, so that this file names none of the fields a
    // protocol revision adds (new fixed fields follow stack_addr; zero is valid for them).
    let jumps = [
        (
            "jump",
            jump_payload(
                9,
                HAS_STACK | HAS_FILES,
                2,
                0x7ffd_0000_0000,
                &ranges,
                &files,
                &page,
                &page[..512],
            ),
        ),
        (
            "jump-home",
            jump_payload(10, TO_HOME, 3, 0, &[], &[], &[], b"regs"),
        ),
    ];
    let mut all = messages(&page);
    for (name, p) in &jumps {
        let h = Header {
            ty: MsgType::Jump,
            len: p.len() as u32,
            seq: 0,
        };
        all.push((*name, Message::decode(&h, p).expect("seed jump decodes")));
    }
    for (i, (name, m)) in all.iter().enumerate() {
        let f = encode(m, i as u32);
        let mut raw = vec![f[3]];
        raw.extend_from_slice(&f[HEADER_LEN..]);
        if f.len() < 1024 {
            stream.extend_from_slice(&f);
        }
        seeds.push(("frame", name.to_string(), f));
        seeds.push(("frame", format!("raw-{name}"), raw));
    }
    // Edge cases: all small frames back to back; that stream cut mid-header and mid-payload;
    // a bad magic after good frames; a jump whose stack page is at address 0 (the encoder
    // refuses it, so the decoder must too).
    seeds.push(("frame", "stream".into(), stream.clone()));
    seeds.push((
        "frame",
        "stream-cut-header".into(),
        stream[..HEADER_LEN * 3 / 2].to_vec(),
    ));
    seeds.push((
        "frame",
        "stream-cut-payload".into(),
        stream[..HEADER_LEN + 20].to_vec(),
    ));
    let mut bad = stream[..200].to_vec();
    bad.extend_from_slice(&[0x5e, 0xe1, 1, 0x10, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
    seeds.push(("frame", "stream-bad-magic".into(), bad));
    let mut j = Message::Welcome.encode_parts(0).unwrap().head[..HEADER_LEN].to_vec();
    j.extend(jump_payload(
        1,
        TO_HOME | HAS_STACK,
        1,
        0,
        &[],
        &[],
        &page,
        b"s",
    ));
    j[3] = MsgType::Jump as u8;
    let len = (j.len() - HEADER_LEN) as u32;
    j[8..12].copy_from_slice(&len.to_le_bytes());
    seeds.push(("frame", "jump-stack-at-0".into(), j));
    seeds
}

/// `Jump` flags (docs/PROTOCOL.md).
const TO_HOME: u32 = 1;
const HAS_STACK: u32 = 2;
const HAS_FILES: u32 = 4;

/// A `Jump` payload: the fixed fields up to `stack_addr`, zeroes up to `JUMP_FIXED`, then the
/// ranges, the file section, the stack page and the CPU state.
#[allow(clippy::too_many_arguments)]
fn jump_payload(
    req: u32,
    flags: u32,
    reason: u8,
    stack_addr: u64,
    ranges: &[u8],
    files: &[u8],
    stack: &[u8],
    state: &[u8],
) -> Vec<u8> {
    let mut p = Script::default()
        .u32(req)
        .u32(1234)
        .u32(flags)
        .u8(reason)
        .u8(0)
        .bytes(&((ranges.len() / JUMP_RANGE_LEN) as u16).to_le_bytes())
        .u64(stack_addr)
        .0;
    p.resize(JUMP_FIXED, 0);
    for part in [ranges, files, stack, state] {
        p.extend_from_slice(part);
    }
    p
}

/// The head of a handshake script: key modes (initiator, responder), key, ids (initiator,
/// dialled peer, responder), capabilities, nonces and the membership mode.
fn scene(ki: u8, kr: u8, ids: [u8; 3], members: u8) -> Script {
    Script::default()
        .u8(ki | kr << 2)
        .bytes(&[0x5a; 32])
        .bytes(&ids)
        .u32(1)
        .u32(3)
        .u8(0xa1)
        .u8(0xb2)
        .u8(members)
}

/// Hello, Challenge, Auth, Welcome delivered in order (log indexes 0, 1, 2, 3).
fn honest(s: Script) -> Script {
    s.bytes(&[0, 1, 0, 2, 1, 3, 2, 4, 3])
}

fn handshake() -> Vec<Seed> {
    let ok = || scene(0, 0, [0, 1, 1], 2);
    let seeds = [
        ("honest", honest(ok())),
        ("wrong-key", honest(scene(0, 1, [0, 1, 1], 2))),
        ("no-key-initiator", honest(scene(2, 0, [0, 1, 1], 0))),
        ("no-key-responder", honest(scene(0, 2, [0, 1, 1], 0))),
        ("not-a-member", honest(scene(0, 0, [0, 1, 1], 1))),
        ("wrong-peer", honest(scene(0, 0, [0, 2, 1], 0))),
        ("same-node", honest(scene(0, 0, [1, 1, 1], 0))),
        // a finished handshake replayed to new sessions of both sides
        (
            "replay",
            honest(ok()).bytes(&[
                9, 0x77, 10, 0x66, 0, 2, 1, 1, 4, 3, 2, 1, 4, 2, 8, 3, 9, 4, 10,
            ]),
        ),
        // the challenge's MAC reflected as an Auth; Auth before Hello; Welcome first
        (
            "reflect",
            ok().bytes(&[4, 0, 3, 0, 0, 1, 0, 8, 1, 3, 2, 2, 1, 4, 3]),
        ),
        // a flipped byte in each message, a forged field, a crafted Error
        (
            "tamper",
            ok().bytes(&[0, 6, 0, 40, 1, 1, 1, 1, 0, 6, 2, 50, 4, 2, 3])
                .bytes(&[7, 2, 1, 0, 0, 0, 2, 4, 5, 0x05, 4, 3, 0, 0, 0, 4, 6]),
        ),
        ("ct-eq", ok().u8(11).bytes(&[1; 64])),
    ];
    seeds
        .into_iter()
        .map(|(n, s)| ("handshake", n.to_string(), s.0))
        .collect()
}

/// A layout input: the selector byte of `nr`, six arguments, the break, return values.
fn syscall(sel: u8, a: [u64; 6], brk: u64, rets: &[i64]) -> Vec<u8> {
    let mut s = Script::default().u8(sel);
    for x in a {
        s = s.u64(x);
    }
    s = s.u64(brk);
    for &r in rets {
        s = s.u64(r as u64);
    }
    s.0
}

fn layout() -> Vec<Seed> {
    // Selector bytes: 0 mmap, 1 munmap, 2 brk, 3 mremap, 4 madvise (see layout::nr).
    let sel = |nr| {
        [NR_MMAP, NR_MUNMAP, NR_BRK, NR_MREMAP, NR_MADVISE]
            .iter()
            .position(|&n| n == nr)
            .unwrap() as u8
    };
    let seeds = [
        (
            "munmap",
            syscall(sel(NR_MUNMAP), [0x10000, 0x1001, 0, 0, 0, 0], 0, &[0, -22]),
        ),
        (
            "munmap-kernel",
            syscall(
                sel(NR_MUNMAP),
                [0x7fff_ffff_f000, 0x1000, 0, 0, 0, 0],
                0,
                &[0],
            ),
        ),
        (
            "mmap-fixed",
            syscall(
                sel(NR_MMAP),
                [0x40000, 0x4000, 3, 0x32, u64::MAX, 0],
                0,
                &[0x40000, -12],
            ),
        ),
        (
            "mmap-noreplace",
            syscall(
                sel(NR_MMAP),
                [0x40000, 0x4000, 3, 0x10_0032, 0, 0],
                0,
                &[0x40000],
            ),
        ),
        (
            "brk-shrink",
            syscall(
                sel(NR_BRK),
                [0x50_0800, 0, 0, 0, 0, 0],
                0x60_0100,
                &[0x50_0800, 0x60_0100],
            ),
        ),
        (
            "brk-same-page",
            syscall(
                sel(NR_BRK),
                [0x60_0800, 0, 0, 0, 0, 0],
                0x60_0f00,
                &[0x60_0800],
            ),
        ),
        (
            "madvise-dontneed",
            syscall(sel(NR_MADVISE), [0x10000, 0x2000, 4, 0, 0, 0], 0, &[0]),
        ),
        (
            "madvise-free",
            syscall(sel(NR_MADVISE), [0x10000, 0x2000, 8, 0, 0, 0], 0, &[0]),
        ),
        (
            "mremap-move",
            syscall(
                sel(NR_MREMAP),
                [0x10000, 0x4000, 0x8000, 1, 0, 0],
                0,
                &[0x10000, 0x90000, -12],
            ),
        ),
        (
            "mremap-fixed",
            syscall(
                sel(NR_MREMAP),
                [0x10000, 0x4000, 0x8000, 3, 0x80000, 0],
                0,
                &[0x80000],
            ),
        ),
        (
            "other",
            syscall(252, [0x10000, 0x1000, 4, 0x10, 0, 0], 0x60_0000, &[0]),
        ),
    ];
    seeds
        .into_iter()
        .map(|(n, d)| ("layout", n.to_string(), d))
        .collect()
}

fn peer() -> Vec<Seed> {
    let seeds: [(&str, &[u8]); 9] = [
        ("add", b"add 2 10.0.2.16:7077\n"),
        ("del", b"  del   9 "),
        ("add-bad", b"add 1024 1.2.3.4:0\nadd 2 1.2.3:80\ndel 2 x\nrm 2\n"),
        ("secret", b"00112233445566778899aabbccddeeFF\n"),
        (
            "secret-long",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        ("node-id", b"+1023"),
        ("addr", b"255.255.255.255:65535"),
        // timer scripts: rx, pong, tick, backoff, reset with clock steps
        (
            "timers",
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 1, 1, 0, 0x10, 0, 0, 0, 2, 0, 0, 0x40, 0, 0],
        ),
        (
            "timers-backoff",
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0, 0, 0, 4],
        ),
    ];
    seeds
        .into_iter()
        .map(|(n, d)| ("peer", n.to_string(), d.to_vec()))
        .collect()
}
