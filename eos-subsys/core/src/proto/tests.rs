//! Protocol tests: round trips, every rejected field, stream reassembly, and property tests
//! on random input.

use super::*;
use proptest::prelude::*;
use std::vec::Vec;

pub(super) fn samples() -> Vec<Message<'static>> {
    std::vec![
        Message::Hello(Hello {
            min_version: 1,
            max_version: 3,
            node: 7,
            caps: caps::ALL,
            nonce: [9; NONCE_LEN],
        }),
        Message::Challenge(Challenge {
            version: 1,
            node: MAX_NODE_ID,
            caps: caps::ALL,
            nonce: [1; NONCE_LEN],
            mac: [2; MAC_LEN],
        }),
        Message::Auth([3; MAC_LEN]),
        Message::Welcome,
        Message::Error(Reason::BadAuth),
        Message::Ping(u64::MAX),
        Message::Pong(42),
        Message::Bye(Reason::Shutdown),
    ]
}

fn assert_roundtrip(m: &Message<'_>) {
    let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let n = m.encode(77, &mut buf).unwrap();
    let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert_eq!(h.seq, 77);
    assert_eq!(h.len as usize, n - HEADER_LEN);
    assert_eq!(&Message::decode(&h, &buf[HEADER_LEN..n]).unwrap(), m);
}

#[test]
fn every_message_round_trips() {
    for m in samples().iter().chain(page_samples().iter()) {
        assert_roundtrip(m);
    }
}

#[test]
fn header_rejects_each_bad_field() {
    let mut buf = [0u8; 64];
    Message::Ping(5).encode(1, &mut buf).unwrap();
    let good: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().unwrap();
    assert!(Header::decode(&good).is_ok());

    let mut b = good;
    b[0] ^= 1;
    assert!(matches!(Header::decode(&b), Err(ProtoError::BadMagic(_))));
    let mut b = good;
    b[2] = VERSION + 1;
    assert_eq!(Header::decode(&b), Err(ProtoError::BadVersion(VERSION + 1)));
    let mut b = good;
    b[3] = 0x7f;
    assert_eq!(Header::decode(&b), Err(ProtoError::UnknownType(0x7f)));
    for i in 4..8 {
        let mut b = good;
        b[i] = 1;
        assert_eq!(Header::decode(&b), Err(ProtoError::ReservedBits));
    }
    let mut b = good;
    b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Header::decode(&b),
        Err(ProtoError::BadLength { .. })
    ));
    let mut b = good;
    b[8..12].copy_from_slice(&7u32.to_le_bytes());
    assert!(matches!(
        Header::decode(&b),
        Err(ProtoError::BadLength { .. })
    ));
}

#[test]
fn payload_fields_are_validated() {
    let mut buf = [0u8; 256];
    let hello = Message::Hello(Hello {
        min_version: 1,
        max_version: 1,
        node: 1,
        caps: 0,
        nonce: [0; NONCE_LEN],
    });
    let n = hello.encode(0, &mut buf).unwrap();
    let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
    let p = &mut buf[HEADER_LEN..n];
    // node id 0 and above MAX_NODE_ID
    p[4..6].copy_from_slice(&0u16.to_le_bytes());
    assert_eq!(Message::decode(&h, p), Err(ProtoError::BadField("node id")));
    p[4..6].copy_from_slice(&(MAX_NODE_ID + 1).to_le_bytes());
    assert!(Message::decode(&h, p).is_err());
    p[4..6].copy_from_slice(&1u16.to_le_bytes());
    // inverted version range
    p[0..2].copy_from_slice(&5u16.to_le_bytes());
    assert!(Message::decode(&h, p).is_err());
    // payload shorter than the header says
    assert!(Message::decode(&h, &p[..4]).is_err());

    let n = Message::Error(Reason::Busy).encode(0, &mut buf).unwrap();
    let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
    buf[HEADER_LEN] = 200;
    assert_eq!(
        Message::decode(&h, &buf[HEADER_LEN..n]),
        Err(ProtoError::BadField("reason"))
    );
}

#[test]
fn encode_refuses_small_buffer() {
    let mut buf = [0u8; 20];
    assert_eq!(
        Message::Auth([0; MAC_LEN]).encode(0, &mut buf),
        Err(ProtoError::BufferTooSmall)
    );
}

/// Feeds `stream` to a reader in pieces of the given sizes; returns decoded messages or the
/// first error.
/// Decoded messages, re-encoded (they borrow the reader's buffer, which is reused).
fn read_all(stream: &[u8], pieces: &[usize]) -> Result<Vec<Vec<u8>>, ProtoError> {
    let mut r = FrameReader::new();
    let mut payload = std::vec![0u8; MAX_PAYLOAD];
    let mut out = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let want = r.want(&mut payload);
        let step = pieces[i % pieces.len()].max(1);
        i += 1;
        let n = step.min(want.len()).min(stream.len() - pos);
        want[..n].copy_from_slice(&stream[pos..pos + n]);
        pos += n;
        if let Some(h) = r.advance(n)? {
            let m = Message::decode(&h, &payload[..h.len as usize])?;
            let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
            let k = m.encode(0, &mut buf)?;
            buf.truncate(k);
            out.push(buf);
        }
    }
    Ok(out)
}

fn encoded(ms: &[Message<'_>]) -> Vec<Vec<u8>> {
    ms.iter()
        .map(|m| {
            let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
            let n = m.encode(0, &mut buf).unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

#[test]
fn reader_reassembles_byte_by_byte() {
    let all: Vec<Message<'static>> = samples().into_iter().chain(page_samples()).collect();
    let frames = encoded(&all);
    let stream: Vec<u8> = frames.concat();
    assert_eq!(read_all(&stream, &[1]).unwrap(), frames);
    assert_eq!(read_all(&stream, &[3, 17, 1, 64, 5000]).unwrap(), frames);
}

static PAGE_A: [u8; 2 * PAGE_SIZE] = [0xab; 2 * PAGE_SIZE];
static RANGES: [u8; 2 * JUMP_RANGE_LEN] = {
    let mut r = [0u8; 2 * JUMP_RANGE_LEN];
    // (0x1000, 0x3000, 3) and (0x7000_0000, 0x7000_1000, 1), little-endian
    r[1] = 0x10;
    r[9] = 0x30;
    r[16] = 3;
    r[23] = 0x70;
    r[31] = 0x70;
    r[29] = 0x10;
    r[36] = 1;
    r
};
/// One file entry, for range 0 of `RANGES`: /lib/x.so at page 2, 8192 bytes, mtime 7 ns,
/// its hash 0xab then zeros.
static FILES: [u8; 4 + JUMP_FILE_FIXED + 9] = {
    let mut f = [0u8; 4 + JUMP_FILE_FIXED + 9];
    f[0] = 1;
    f[6] = 9;
    f[12] = 2;
    f[21] = 0x20;
    f[28] = 7;
    f[36] = 0xab;
    let path = *b"/lib/x.so";
    let mut i = 0;
    while i < 9 {
        f[4 + JUMP_FILE_FIXED + i] = path[i];
        i += 1;
    }
    f
};
static ADDRS: [u8; 16] = [0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0];

pub(super) fn page_samples() -> Vec<Message<'static>> {
    std::vec![
        Message::Stretch(Stretch {
            req: 1,
            pid: 300,
            exe_hash: [5; 32],
            uid: 1000,
            gid: 100,
            path: b"/bin/hsort",
            argv: b"hsort\x00384\x00",
            env: b"PATH=/bin\0",
        }),
        Message::StretchOk {
            req: 1,
            status: -2,
            shell_pid: 0,
        },
        Message::Push(Push {
            req: 2,
            pid: 300,
            batch: 7,
            vma_start: 0x1000,
            vma_end: 0x40000,
            prot: 3,
            addrs: &ADDRS,
            pages: &PAGE_A,
        }),
        Message::PushAck { req: 2, status: 0 },
        Message::Pull {
            req: 3,
            pid: 300,
            addr: 0x1000,
            count: 2,
        },
        Message::Pages(Pages {
            req: 3,
            status: 0,
            addr: 0x1000,
            pages: &PAGE_A,
        }),
        Message::Pages(Pages {
            req: 4,
            status: -14,
            addr: 0x1000,
            pages: &[],
        }),
        Message::Release { pid: 300 },
        Message::Jump(Jump {
            req: 5,
            pid: 300,
            to_home: true,
            reason: JumpReason::RemoteFaults,
            state: &PAGE_A[..1000],
            ranges: &RANGES,
            files: &FILES,
            stack: &PAGE_A[..PAGE_SIZE],
            stack_addr: 0x7fff_0000,
            cpu: Default::default(),
            budget: 0,
            home_pages: 0,
        }),
        Message::JumpAck {
            req: 5,
            status: -22
        },
        Message::Recall { pid: 300 },
        Message::Gone {
            pid: 300,
            signal: 11,
        },
        Message::Fetch {
            req: 6,
            pid: 300,
            addr: 0x7000,
            count: 8,
        },
        Message::Pages(Pages {
            req: 6,
            status: PAGES_BUILD,
            addr: 0x7000,
            pages: &[],
        }),
        Message::Discard {
            pid: 300,
            start: 0x10000,
            end: 0x30000,
            unmap: true,
        },
        Message::PushRefs(PushRefs {
            req: 8,
            pid: 300,
            batch: 4,
            vma_start: 0x10000,
            vma_end: 0x30000,
            prot: 3,
            refs: &REFS,
        }),
        Message::Took {
            pid: 300,
            from_home: true,
            addr: 0x7000,
            count: 2,
            keep: 9,
        },
        Message::Cold {
            req: 10,
            pid: 300,
            count: 32,
        },
        Message::ColdAddrs(ColdAddrs {
            req: 10,
            status: 0,
            addrs: &COLD,
        }),
        Message::ColdAddrs(ColdAddrs {
            req: 11,
            status: -16,
            addrs: &[],
        }),
    ]
}

/// Two `ColdAddrs` addresses: 0x11000, 0x13000.
const COLD: [u8; 16] = {
    let mut r = [0u8; 16];
    r[1] = 0x10;
    r[2] = 0x01;
    r[9] = 0x30;
    r[10] = 0x01;
    r
};

#[test]
fn cold_messages_and_bad_fields() {
    let s = page_samples();
    let cold = s
        .iter()
        .find(|m| matches!(m, Message::Cold { .. }))
        .unwrap();
    let addrs = s
        .iter()
        .find(|m| matches!(m, Message::ColdAddrs(a) if a.status == 0))
        .unwrap();
    let Message::ColdAddrs(a) = addrs else {
        unreachable!()
    };
    assert_eq!((a.count(), a.addr(0), a.addr(1)), (2, 0x11000, 0x13000));
    let mut buf = [0u8; 16];
    ColdAddrs::put(&mut buf, 0, 0x11000);
    ColdAddrs::put(&mut buf, 1, 0x13000);
    assert_eq!(buf, COLD);
    // cold: count 0, count above a batch, reserved bits
    assert!(decode_corrupted(cold, |_| ()).is_ok());
    assert!(decode_corrupted(cold, |p| p[8] = 0).is_err());
    assert!(decode_corrupted(cold, |p| p[8] = 33).is_err());
    assert!(decode_corrupted(cold, |p| p[12] = 1).is_err());
    // addresses (fixed part 16 bytes: address 0 at 16, 1 at 24): unaligned, in kernel
    // space, not ascending, repeated; a positive status, an error with addresses, a count
    // beyond the payload, reserved bits
    assert!(decode_corrupted(addrs, |_| ()).is_ok());
    assert!(decode_corrupted(addrs, |p| p[16] = 1).is_err());
    assert!(decode_corrupted(addrs, |p| p[31] = 0x80).is_err());
    assert!(decode_corrupted(addrs, |p| p[18] = 0x02).is_err());
    assert!(decode_corrupted(addrs, |p| p[16..24]
        .copy_from_slice(&0x13000u64.to_le_bytes()))
    .is_err());
    assert!(decode_corrupted(addrs, |p| p[4] = 1).is_err());
    assert!(decode_corrupted(addrs, |p| p[4..8].copy_from_slice(&(-16i32).to_le_bytes())).is_err());
    assert!(decode_corrupted(addrs, |p| p[8] = 3).is_err());
    assert!(decode_corrupted(addrs, |p| p[12] = 1).is_err());
    // the encoder refuses what the decoder would
    let unordered = [COLD[8..].to_vec(), COLD[..8].to_vec()].concat();
    let bad = Message::ColdAddrs(ColdAddrs {
        addrs: &unordered,
        ..*a
    });
    assert!(bad.encode(0, &mut [0u8; 256]).is_err());
}

/// Two `PushRefs` entries: 0x11000 tag 5, 0x12000 tag 6.
const REFS: [u8; 32] = {
    let mut r = [0u8; 32];
    r[1] = 0x10;
    r[2] = 0x01;
    r[8] = 5;
    r[17] = 0x20;
    r[18] = 0x01;
    r[24] = 6;
    r
};

#[test]
fn push_refs_entries_and_bad_fields() {
    let s = page_samples();
    let m = s
        .iter()
        .find(|m| matches!(m, Message::PushRefs(_)))
        .unwrap();
    let Message::PushRefs(r) = m else {
        unreachable!()
    };
    assert_eq!(
        (r.count(), r.entry(0), r.entry(1)),
        (2, (0x11000, 5), (0x12000, 6))
    );
    let mut buf = [0u8; 32];
    PushRefs::put(&mut buf, 0, 0x11000, 5);
    PushRefs::put(&mut buf, 1, 0x12000, 6);
    assert_eq!(buf, REFS);
    // fixed part is 40 bytes: entry 0 at 40, entry 1 at 56
    assert!(decode_corrupted(m, |_| ()).is_ok());
    // tag 0, reserved bits, unaligned, outside the VMA, no entries
    assert!(decode_corrupted(m, |p| p[48] = 0).is_err());
    assert!(decode_corrupted(m, |p| p[52] = 1).is_err());
    assert!(decode_corrupted(m, |p| p[40] = 1).is_err());
    assert!(decode_corrupted(m, |p| p[43] = 0x40).is_err());
    assert!(decode_corrupted(m, |p| p[36] = 0).is_err());
}

#[test]
fn jump_messages_reject_bad_fields() {
    let s = page_samples();
    let (jump, ack, recall, fetch, build) = (&s[8], &s[9], &s[10], &s[12], &s[13]);
    assert!(decode_corrupted(&s[11], |p| p[4] = 65).is_err());
    // jump: unknown flag, unknown reason, reserved byte, range count beyond the payload,
    // a range ending before it starts, unaligned, in kernel space, with bad prot bits
    assert!(decode_corrupted(jump, |p| p[8] = 8 | 7).is_err());
    // a stack page claimed absent while its address is set, or in kernel space
    assert!(decode_corrupted(jump, |p| p[8] = 1).is_err());
    assert!(decode_corrupted(jump, |p| p[23] = 0x80).is_err());
    // a stack page at address 0: the encoder refuses it, so the decoder does too (found by
    // the frame fuzzer as a decode/encode asymmetry)
    let Message::Jump(j) = jump else { panic!() };
    let at_0 = Message::Jump(Jump {
        stack_addr: 0,
        ..*j
    });
    assert!(at_0.encode(0, &mut std::vec![0u8; 2 * PAGE_SIZE]).is_err());
    assert_eq!(
        decode_corrupted(jump, |p| p[16..24].fill(0)),
        Err(ProtoError::BadField("stack address"))
    );
    assert!(decode_corrupted(jump, |p| p[12] = 9).is_err());
    assert!(decode_corrupted(jump, |p| p[13] = 1).is_err());
    assert!(decode_corrupted(jump, |p| p[14] = 0xff).is_err());
    assert!(
        decode_corrupted(jump, |p| p[JUMP_FIXED + 8..JUMP_FIXED + 16]
            .copy_from_slice(&0x1000u64.to_le_bytes()))
        .is_err()
    );
    assert!(decode_corrupted(jump, |p| p[JUMP_FIXED] = 1).is_err());
    assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 15] = 0x80).is_err());
    assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 16] = 8).is_err());
    // the anonymous-mapping bit is the one extra bit allowed; ranges must ascend
    assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 20 + 19] = 0x80).is_ok());
    assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 19] = 0x40).is_err());
    assert!(
        decode_corrupted(jump, |p| p[JUMP_FIXED + 20..JUMP_FIXED + 28]
            .copy_from_slice(&0x2000u64.to_le_bytes()))
        .is_err()
    );
    // files: the entry decodes back; it may not name an anonymous range or a range
    // beyond the list, nor carry a relative path, a NUL, reserved bits, or zero entries
    let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let n = jump.encode(0, &mut buf).unwrap();
    let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
    let Ok(Message::Jump(j)) = Message::decode(&h, &buf[HEADER_LEN..n]) else {
        panic!("jump sample does not decode");
    };
    let f: Vec<FileMap<'_>> = j.files().collect();
    assert_eq!(
        f,
        [FileMap {
            range: 0,
            pgoff: 2,
            size: 8192,
            mtime_ns: 7,
            sha256: {
                let mut h = [0u8; 32];
                h[0] = 0xab;
                h
            },
            path: b"/lib/x.so"
        }]
    );
    let fs = JUMP_FIXED + 2 * JUMP_RANGE_LEN;
    assert!(decode_corrupted(jump, |p| p[JUMP_FIXED + 19] = 0x80).is_err());
    assert!(decode_corrupted(jump, |p| p[fs + 4] = 2).is_err());
    assert!(decode_corrupted(jump, |p| p[fs + 4 + JUMP_FILE_FIXED] = b'l').is_err());
    assert!(decode_corrupted(jump, |p| p[fs + 4 + JUMP_FILE_FIXED + 3] = 0).is_err());
    assert!(decode_corrupted(jump, |p| p[fs + 4 + 5] = 1).is_err());
    assert!(decode_corrupted(jump, |p| p[fs] = 0).is_err());
    assert!(decode_corrupted(jump, |p| p[fs + 2] = 1).is_err());
    // a path length that runs past the message
    assert!(decode_corrupted(jump, |p| p[fs + 4 + 3] = 0x40).is_err());
    // ack: positive status; recall: reserved; fetch: unaligned or kernel address
    assert!(decode_corrupted(ack, |p| p[4..8].copy_from_slice(&7i32.to_le_bytes())).is_err());
    assert!(decode_corrupted(recall, |p| p[5] = 1).is_err());
    assert!(decode_corrupted(fetch, |p| p[8] = 8).is_err());
    assert!(decode_corrupted(fetch, |p| p[15] = 0x80).is_err());
    // build status with a page, or a status beyond it
    assert!(decode_corrupted(build, |p| p[4] = 2).is_err());
    // an empty jump state is refused when encoding and decoding
    let empty = Message::Jump(Jump {
        req: 0,
        pid: 0,
        to_home: false,
        reason: JumpReason::Asked,
        state: &[],
        ranges: &[],
        files: &[],
        stack: &[],
        stack_addr: 0,
        cpu: Default::default(),
        budget: 0,
        home_pages: 0,
    });
    assert!(empty.encode(0, &mut [0u8; 64]).is_err());
}

#[test]
fn jump_carries_thousands_of_ranges() {
    // MAX_JUMP_RANGES one-page ranges with gaps (a JVM-like layout) decode back in order;
    // one more is refused when encoding.
    let mut ranges = std::vec![0u8; (MAX_JUMP_RANGES + 1) * JUMP_RANGE_LEN];
    for (i, r) in ranges.chunks_mut(JUMP_RANGE_LEN).enumerate() {
        let start = 0x1000_0000 + i as u64 * 0x2000;
        put_jump_range(r, start, start + 0x1000, 3 | RANGE_ANON);
    }
    let state = [1u8; 64];
    let jump = |ranges| {
        Message::Jump(Jump {
            req: 1,
            pid: 2,
            to_home: false,
            reason: JumpReason::Asked,
            state: &state,
            ranges,
            files: &[],
            stack: &[],
            stack_addr: 0,
            cpu: Default::default(),
            budget: 0,
            home_pages: 0,
        })
    };
    let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let full = &ranges[..MAX_JUMP_RANGES * JUMP_RANGE_LEN];
    let n = jump(full).encode(0, &mut buf).unwrap();
    let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
    let Ok(Message::Jump(j)) = Message::decode(&h, &buf[HEADER_LEN..n]) else {
        panic!("a jump with {MAX_JUMP_RANGES} ranges does not decode");
    };
    assert_eq!(j.ranges, full);
    assert!(jump(&ranges).encode(0, &mut buf).is_err());
}

#[test]
fn discard_rejects_bad_fields() {
    let s = page_samples();
    let d = s
        .iter()
        .find(|m| matches!(m, Message::Discard { .. }))
        .unwrap();
    assert!(decode_corrupted(d, |_| ()).is_ok());
    // unknown flag; empty, reversed, unaligned or kernel-space range
    assert!(decode_corrupted(d, |p| p[4] = 2).is_err());
    assert!(decode_corrupted(d, |p| p[16..24].copy_from_slice(&0x10000u64.to_le_bytes())).is_err());
    assert!(decode_corrupted(d, |p| p[16..24].copy_from_slice(&0x8000u64.to_le_bytes())).is_err());
    assert!(decode_corrupted(d, |p| p[8] = 1).is_err());
    assert!(decode_corrupted(d, |p| p[23] = 0x80).is_err());
}

#[test]
fn took_rejects_bad_fields() {
    let s = page_samples();
    let t = s
        .iter()
        .find(|m| matches!(m, Message::Took { .. }))
        .unwrap();
    // no pages, more than a batch, unaligned, beyond user space, reserved, keep from a shell
    assert!(decode_corrupted(t, |p| p[20] = 1).is_err());
    assert!(decode_corrupted(t, |p| p[4] = 0).is_err());
    assert!(decode_corrupted(t, |p| p[6] = 0).is_err());
    assert!(decode_corrupted(t, |p| p[6] = 33).is_err());
    assert!(decode_corrupted(t, |p| p[4] = 2).is_err());
    assert!(decode_corrupted(t, |p| p[8] = 1).is_err());
    assert!(decode_corrupted(t, |p| p[15] = 0x80).is_err());
}

/// Decodes the frame of `n` bytes an encode left in `buf`.
fn decode_frame(buf: &[u8], n: usize) -> Result<Message<'_>, ProtoError> {
    let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap())?;
    Message::decode(&h, &buf[HEADER_LEN..n])
}

/// A jump with `state` and nothing else: no ranges, files, stack, CPU time or budget.
fn bare_jump(state: &[u8], to_home: bool) -> Jump<'_> {
    Jump {
        req: 1,
        pid: 2,
        to_home,
        reason: if to_home {
            JumpReason::Syscall
        } else {
            JumpReason::RemoteFaults
        },
        state,
        ranges: &[],
        files: &[],
        stack: &[],
        stack_addr: 0,
        cpu: Default::default(),
        budget: 0,
        home_pages: 0,
    }
}

/// Encodes `m`, lets `corrupt` change the payload, and decodes again.
fn decode_corrupted(m: &Message<'_>, corrupt: impl Fn(&mut [u8])) -> Result<(), ProtoError> {
    let mut buf = std::vec![0u8; HEADER_LEN + MAX_PAYLOAD];
    let n = m.encode(0, &mut buf).unwrap();
    let h = Header::decode(buf[..HEADER_LEN].try_into().unwrap())?;
    corrupt(&mut buf[HEADER_LEN..n]);
    Message::decode(&h, &buf[HEADER_LEN..n]).map(|_| ())
}

#[test]
fn page_messages_reject_bad_fields() {
    let s = page_samples();
    let (stretch, push, pull, pages_ok, pages_err) = (&s[0], &s[2], &s[4], &s[5], &s[6]);
    // stretch: relative path, NUL in path, unterminated argv, lengths not adding up
    assert!(decode_corrupted(stretch, |p| p[STRETCH_FIXED] = b'x').is_err());
    // an invalid uid or gid (-1)
    assert!(decode_corrupted(stretch, |p| p[48..52].copy_from_slice(&[0xff; 4])).is_err());
    assert!(decode_corrupted(stretch, |p| p[52..56].copy_from_slice(&[0xff; 4])).is_err());
    assert!(decode_corrupted(stretch, |p| p[STRETCH_FIXED + 3] = 0).is_err());
    assert!(decode_corrupted(stretch, |p| {
        let at = STRETCH_FIXED + 10 + 9;
        p[at] = b'x'
    })
    .is_err());
    assert!(decode_corrupted(stretch, |p| p[40] += 1).is_err());
    // push: address outside its VMA, unaligned, count mismatch, kernel-space VMA, prot bits
    assert!(decode_corrupted(push, |p| p[PUSH_FIXED + 2] = 0x50).is_err());
    assert!(decode_corrupted(push, |p| p[PUSH_FIXED] = 1).is_err());
    assert!(decode_corrupted(push, |p| p[36] = 3).is_err());
    assert!(decode_corrupted(push, |p| p[31] = 0xff).is_err());
    assert!(decode_corrupted(push, |p| p[32] = 8).is_err());
    assert!(decode_corrupted(push, |p| p[16..24]
        .copy_from_slice(&0x40000u64.to_le_bytes()))
    .is_err());
    // pull: zero or too many pages, unaligned, beyond user space
    assert!(decode_corrupted(pull, |p| p[16] = 0).is_err());
    assert!(decode_corrupted(pull, |p| p[16] = MAX_BATCH as u8 + 1).is_err());
    assert!(decode_corrupted(pull, |p| p[8] = 1).is_err());
    assert!(decode_corrupted(pull, |p| p[8..16]
        .copy_from_slice(&(USER_END - 4096).to_le_bytes()))
    .is_err());
    assert!(decode_corrupted(pull, |p| p[8..16].copy_from_slice(&u64::MAX.to_le_bytes())).is_err());
    // pages: error with pages, success without, positive status, count mismatch
    assert!(decode_corrupted(pages_ok, |p| p[4..8]
        .copy_from_slice(&(-5i32).to_le_bytes()))
    .is_err());
    assert!(decode_corrupted(pages_ok, |p| p[4] = 1).is_err());
    assert!(decode_corrupted(pages_ok, |p| p[16] = 1).is_err());
    assert!(decode_corrupted(pages_err, |p| p[16] = 1).is_err());
    // every sample itself is fine
    for m in &s {
        assert!(decode_corrupted(m, |_| {}).is_ok());
    }
}

#[test]
fn encode_refuses_inconsistent_batches() {
    let bad = Message::Push(Push {
        req: 0,
        pid: 0,
        batch: 0,
        vma_start: 0,
        vma_end: 0x1000,
        prot: 0,
        addrs: &ADDRS,
        pages: &PAGE_A[..PAGE_SIZE],
    });
    assert!(bad.encode_parts(0).is_err());
}

#[test]
fn reader_stops_at_garbage() {
    let garbage = [0x41u8; 64];
    assert!(read_all(&garbage, &[5]).is_err());
}

proptest! {
    #[test]
    fn random_headers_never_panic(b in proptest::array::uniform16(any::<u8>())) {
        if let Ok(h) = Header::decode(&b) {
            let (min, max) = h.ty.len_bounds();
            prop_assert!((h.len as usize) >= min && (h.len as usize) <= max);
            prop_assert_eq!(h.encode(), b);
        }
    }

    #[test]
    fn random_payloads_never_panic(ty in any::<u8>(), p in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(t) = MsgType::from_u8(ty) {
            let h = Header { ty: t, len: p.len() as u32, seq: 0 };
            if let Ok(m) = Message::decode(&h, &p) {
                // whatever decodes must re-encode to the same bytes
                let mut buf = [0u8; 256];
                let n = m.encode(0, &mut buf).unwrap();
                prop_assert_eq!(&buf[HEADER_LEN..n], &p[..]);
            }
        }
    }

    #[test]
    fn random_streams_never_panic(s in proptest::collection::vec(any::<u8>(), 0..512),
                                  pieces in proptest::collection::vec(1usize..40, 1..8)) {
        let _ = read_all(&s, &pieces);
    }

    #[test]
    fn valid_streams_survive_any_split(pieces in proptest::collection::vec(1usize..9000, 1..8)) {
        let all: Vec<Message<'static>> = samples().into_iter().chain(page_samples()).collect();
        let frames = encoded(&all);
        prop_assert_eq!(read_all(&frames.concat(), &pieces).unwrap(), frames);
    }
}

#[test]
fn jump_cpu_time_round_trips_and_is_bounded() {
    let state = [7u8; 64];
    let mut j = Jump {
        cpu: CpuUsed {
            user_ns: 1_500_000_000,
            sys_ns: 20_000,
        },
        ..bare_jump(&state, true)
    };
    let mut buf = [0u8; 4096];
    let n = Message::Jump(j).encode(1, &mut buf).unwrap();
    assert_eq!(decode_frame(&buf, n), Ok(Message::Jump(j)));
    // A sender cannot claim more than a day in one jump, nor encode it.
    j.cpu.user_ns = MAX_JUMP_CPU_NS + 1;
    assert!(Message::Jump(j).encode(1, &mut buf).is_err());
    j.cpu.user_ns = 0;
    let n = Message::Jump(j).encode(1, &mut buf).unwrap();
    // user_ns sits after the 24 bytes of fixed fields.
    buf[HEADER_LEN + 24..HEADER_LEN + 32].copy_from_slice(&(MAX_JUMP_CPU_NS + 1).to_le_bytes());
    assert_eq!(
        decode_frame(&buf, n),
        Err(ProtoError::BadField("jump cpu time"))
    );
}

#[test]
fn only_the_home_sends_a_budget() {
    let state = [7u8; 32];
    let mut j = Jump {
        budget: 1024,
        home_pages: 1500,
        ..bare_jump(&state, false)
    };
    let mut buf = [0u8; 4096];
    let n = Message::Jump(j).encode(1, &mut buf).unwrap();
    assert_eq!(decode_frame(&buf, n), Ok(Message::Jump(j)));
    // A shell cannot tell its home where the budget holds: not encoded, and not decoded.
    j.to_home = true;
    assert!(Message::Jump(j).encode(1, &mut buf).is_err());
    j.to_home = false;
    let n = Message::Jump(j).encode(1, &mut buf).unwrap();
    // flags sit after req and pid; bit 0 is "to home".
    buf[HEADER_LEN + 8] |= 1;
    assert_eq!(
        decode_frame(&buf, n),
        Err(ProtoError::BadField("jump budget"))
    );
}

#[test]
fn cpu_split_follows_the_tick_ratio() {
    assert_eq!(
        CpuUsed::split(1000, 0, 0),
        CpuUsed {
            user_ns: 1000,
            sys_ns: 0
        }
    );
    assert_eq!(
        CpuUsed::split(1000, 3, 1),
        CpuUsed {
            user_ns: 750,
            sys_ns: 250
        }
    );
    let s = CpuUsed::split(u64::MAX, u64::MAX, u64::MAX);
    assert_eq!(s.user_ns + s.sys_ns, u64::MAX);
}

/// A peer reporting a day of CPU for a jump away of one second is charged one second.
#[test]
fn cpu_is_bounded_by_the_time_away() {
    let day = 86_400_000_000_000u64;
    let c = CpuUsed {
        user_ns: day,
        sys_ns: day,
    };
    let b = c.bounded_by(1_000_000_000);
    assert_eq!(b.user_ns + b.sys_ns, 1_000_000_000);
    assert_eq!(b.user_ns, b.sys_ns);
    let honest = CpuUsed {
        user_ns: 300,
        sys_ns: 100,
    };
    assert_eq!(honest.bounded_by(1000), honest);
    assert_eq!(honest.bounded_by(0), CpuUsed::default());
}

/// A peer's status reaches this node's code only as 0, a message's own positive code, or an
/// error number the protocol uses: never below -4095 nor a kernel restart code.
#[test]
fn peer_statuses_are_validated() {
    use super::peer_status;
    assert_eq!(peer_status(0), 0);
    assert_eq!(peer_status(super::PAGES_BUILD), super::PAGES_BUILD);
    for ok in [-11, -16, -2, -12, -7, -71] {
        assert_eq!(peer_status(ok), ok);
    }
    for bad in [
        -512,
        -513,
        -514,
        -516,
        -4096,
        -100_000,
        i32::MIN,
        -133,
        -4095,
    ] {
        assert_eq!(peer_status(bad), -71, "{bad}");
    }
}

#[test]
fn push_ack_carries_an_installed_prefix() {
    let mut buf = [0u8; 64];
    for status in [0, -12, 1, MAX_BATCH as i32 - 1] {
        let m = Message::PushAck { req: 9, status };
        let n = m.encode(1, &mut buf).unwrap();
        assert_eq!(decode_frame(&buf, n), Ok(m), "{status}");
    }
    // A whole batch is status 0: a prefix of MAX_BATCH pages or more is no prefix.
    let m = Message::PushAck {
        req: 9,
        status: MAX_BATCH as i32,
    };
    assert!(m.encode(1, &mut buf).is_err());
    let n = Message::PushAck { req: 9, status: 1 }
        .encode(1, &mut buf)
        .unwrap();
    buf[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&(MAX_BATCH as i32).to_le_bytes());
    assert_eq!(
        decode_frame(&buf, n),
        Err(ProtoError::BadField("push status"))
    );
}
