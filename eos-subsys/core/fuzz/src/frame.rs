//! Target `frame`: the wire decoder ([`Header::decode`], [`FrameReader`], [`Message::decode`]).
//!
//! The input is used three ways:
//! - its first 16 bytes as a header: a header that decodes re-encodes to the same bytes, with
//!   a length within its type's bounds;
//! - its first byte as a message type and the rest as that type's payload (the header's checks
//!   bypassed, so the payload decoders are reached directly);
//! - the whole input as a byte stream, reassembled by a [`FrameReader`] in pseudo-random
//!   pieces (and in pieces as large as it asks for) and compared with a plain parse of the same
//!   bytes: same frames, same payloads, same error at the same offset.
//!
//! Every message that decodes must re-encode (the encoder accepts whatever the decoder
//! accepts), to the very same bytes (the encoding is canonical), and decode again to an equal
//! message; its accessors (pages, ranges, file entries) agree with its validated contents.

use eos_core::proto::{
    files_in, put_file_entry, put_files_header, put_jump_range, ranges_in, FrameReader, Header,
    Message, MsgType, ProtoError, HEADER_LEN, JUMP_FILE_FIXED, JUMP_RANGE_LEN, MAX_PAYLOAD,
    PAGE_SIZE, RANGE_ANON, USER_END,
};
use std::cell::RefCell;

thread_local! {
    /// Reassembly buffer (a connection's receive buffer) and encode buffer, reused per input.
    static BUFS: RefCell<(Vec<u8>, Vec<u8>)> =
        RefCell::new((vec![0; MAX_PAYLOAD], vec![0; HEADER_LEN + MAX_PAYLOAD]));
}

pub fn check(data: &[u8]) {
    BUFS.with(|b| {
        let (payload, out) = &mut *b.borrow_mut();
        if let Some(hdr) = data.first_chunk::<HEADER_LEN>() {
            header(hdr);
        }
        if let Some((&ty, p)) = data.split_first() {
            if let Ok(ty) = MsgType::from_u8(ty) {
                let h = Header {
                    ty,
                    len: p.len() as u32,
                    seq: 0,
                };
                message(&h, p, out);
            }
        }
        stream(data, payload, out);
    });
}

fn header(b: &[u8; HEADER_LEN]) {
    let Ok(h) = Header::decode(b) else { return };
    assert_eq!(
        &h.encode(),
        b,
        "header does not re-encode to its bytes: {h:?}"
    );
    let (min, max) = h.ty.len_bounds();
    let len = h.len as usize;
    assert!(min <= len && len <= max && max <= MAX_PAYLOAD, "{h:?}");
    assert_eq!(MsgType::from_u8(b[3]), Ok(h.ty));
    assert!(!h.ty.name().is_empty());
}

/// A message for a panic message: its `Debug` form, cut short (pages are long).
fn brief(m: &Message<'_>) -> String {
    let mut s = format!("{m:?}");
    if s.len() > 400 {
        let cut = (0..=400)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Decodes one payload; if it is a message, checks the round trip and its accessors.
fn message(h: &Header, p: &[u8], out: &mut [u8]) {
    let m = match Message::decode(h, p) {
        Ok(m) => m,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert_eq!(m.ty(), h.ty);
    assert_eq!(p.len(), h.len as usize);
    // A header whose length does not match the payload is refused.
    let wrong = Header {
        len: h.len.wrapping_add(1),
        ..*h
    };
    assert!(Message::decode(&wrong, p).is_err());
    let parts = m.encode_parts(h.seq).unwrap_or_else(|e| {
        panic!(
            "asymmetry: the decoder accepts a message the encoder refuses ({e}): {}",
            brief(&m)
        )
    });
    let n = m.encode(h.seq, out).expect("encode after encode_parts");
    assert_eq!(n, parts.frame_len());
    assert_eq!(
        &out[..HEADER_LEN],
        &h.encode(),
        "re-encoded header differs: {}",
        brief(&m)
    );
    assert!(
        &out[HEADER_LEN..n] == p,
        "re-encoded payload differs: {}",
        brief(&m)
    );
    let h2 = Header::decode(out[..HEADER_LEN].try_into().unwrap()).expect("own header");
    assert_eq!(&h2, h);
    let m2 = Message::decode(&h2, &out[HEADER_LEN..n]).expect("own encoding decodes");
    assert!(m2 == m, "decode(encode(m)) != m: {}", brief(&m));
    accessors(&m);
}

/// What the kernel reads out of a decoded message agrees with what the decoder validated.
fn accessors(m: &Message<'_>) {
    let aligned = |a: u64| a.is_multiple_of(PAGE_SIZE as u64);
    match m {
        Message::Push(p) => {
            assert!(p.count() >= 1);
            assert_eq!(p.pages.len(), p.count() * PAGE_SIZE);
            for i in 0..p.count() {
                let a = p.addr(i);
                assert!(aligned(a) && a >= p.vma_start && a < p.vma_end && p.vma_end <= USER_END);
                assert_eq!(p.page(i).len(), PAGE_SIZE);
            }
        }
        Message::Pages(p) => {
            assert_eq!(p.pages.len() % PAGE_SIZE, 0);
            assert!(aligned(p.addr) && p.addr + p.pages.len() as u64 <= USER_END);
        }
        Message::Pull { addr, count, .. } => {
            assert!(aligned(*addr) && addr + u64::from(*count) * PAGE_SIZE as u64 <= USER_END);
        }
        Message::Fetch { addr, .. } => assert!(aligned(*addr) && *addr < USER_END),
        Message::Discard { start, end, .. } => {
            assert!(aligned(*start) && aligned(*end) && start < end && *end <= USER_END)
        }
        Message::Stretch(s) => {
            assert_eq!(s.path.first(), Some(&b'/'));
            assert!(!s.path.contains(&0));
        }
        Message::Jump(j) => jump(j),
        Message::Cold { count, .. } => assert!((1..=32).contains(count)),
        Message::ColdAddrs(c) => {
            assert_eq!(c.addrs.len() % 8, 0);
            assert!(c.addrs.len() <= 32 * 8 && (c.status == 0 || c.addrs.is_empty()));
            let addrs: Vec<u64> = c
                .addrs
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
                .collect();
            assert!(addrs.iter().all(|&a| aligned(a) && a < USER_END));
            assert!(addrs.windows(2).all(|w| w[0] < w[1]), "not ascending");
        }
        _ => {}
    }
}

fn jump(j: &eos_core::proto::Jump<'_>) {
    assert!(!j.state.is_empty());
    assert!(j.stack.is_empty() || j.stack.len() == PAGE_SIZE);
    assert_eq!(
        j.stack.is_empty(),
        j.stack_addr == 0,
        "stack page vs address"
    );
    assert_eq!(j.ranges.len() % JUMP_RANGE_LEN, 0);
    let ranges: Vec<_> = ranges_in(j.ranges).collect();
    assert_eq!(ranges.len(), j.ranges.len() / JUMP_RANGE_LEN);
    let mut rec = [0u8; JUMP_RANGE_LEN];
    let mut prev_end = 0;
    for (i, &(start, end, prot)) in ranges.iter().enumerate() {
        assert!(prev_end <= start && start < end && end <= USER_END);
        prev_end = end;
        put_jump_range(&mut rec, start, end, prot);
        assert_eq!(
            &rec[..],
            &j.ranges[i * JUMP_RANGE_LEN..(i + 1) * JUMP_RANGE_LEN]
        );
    }
    if j.files.is_empty() {
        return;
    }
    // The file section re-encodes from its entries to the same bytes.
    let n = u16::from_le_bytes([j.files[0], j.files[1]]);
    let mut again = vec![0u8; 4];
    put_files_header(&mut again, n);
    let mut count = 0;
    for f in files_in(j.files) {
        count += 1;
        let (_, _, prot) = ranges[usize::from(f.range)];
        assert_eq!(prot & RANGE_ANON, 0, "file entry on an anonymous range");
        assert_eq!(f.path.first(), Some(&b'/'));
        let at = again.len();
        again.resize(at + JUMP_FILE_FIXED + f.path.len(), 0);
        put_file_entry(&mut again[at..], &f);
    }
    assert_eq!(count, usize::from(n));
    assert_eq!(again, j.files);
}

/// Small deterministic generator for the piece sizes of a stream.
struct Rng(u64);

impl Rng {
    fn of(data: &[u8]) -> Self {
        // FNV-1a of the input: the same input splits the same way every run.
        Self(
            data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            }) | 1,
        )
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Mostly short reads, sometimes long ones, sometimes none at all.
    fn piece(&mut self) -> usize {
        match self.next() % 8 {
            0 => 0,
            1..=5 => 1 + (self.next() % 24) as usize,
            _ => 1 + (self.next() % 9000) as usize,
        }
    }
}

/// The plain parse: every complete frame (its header and payload offset), then how the stream
/// ends: cleanly or mid-frame (`Ok`), or at a bad header (the error and the offset just past
/// it, where a reader sees it).
type Parsed = (Vec<(Header, usize)>, Result<(), (usize, ProtoError)>);

fn parse(data: &[u8]) -> Parsed {
    let mut frames = Vec::new();
    let mut at = 0;
    while let Some(hdr) = data[at..].first_chunk::<HEADER_LEN>() {
        let h = match Header::decode(hdr) {
            Ok(h) => h,
            Err(e) => return (frames, Err((at + HEADER_LEN, e))),
        };
        let start = at + HEADER_LEN;
        if data.len() - start < h.len as usize {
            break;
        }
        frames.push((h, start));
        at = start + h.len as usize;
    }
    (frames, Ok(()))
}

fn stream(data: &[u8], payload: &mut [u8], out: &mut [u8]) {
    let (frames, end) = parse(data);
    let mut rng = Rng::of(data);
    for random in [false, true] {
        let mut r = FrameReader::new();
        let (mut pos, mut k) = (0, 0);
        let mut failed = None;
        while pos < data.len() {
            let want = r.want(payload);
            assert!(!want.is_empty(), "reader wants nothing");
            let n = if random {
                rng.piece().min(want.len())
            } else {
                want.len()
            }
            .min(data.len() - pos);
            want[..n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
            match r.advance(n) {
                Ok(None) => {}
                Ok(Some(h)) => {
                    let (want_h, start) = frames.get(k).copied().unwrap_or_else(|| {
                        panic!("reader produced frame {k} ({h:?}) the parse does not have")
                    });
                    assert_eq!(h, want_h, "frame {k}");
                    let len = h.len as usize;
                    assert_eq!(pos, start + len, "frame {k} ends elsewhere");
                    assert_eq!(&payload[..len], &data[start..start + len], "payload {k}");
                    if !random {
                        message(&h, &payload[..len], out);
                    }
                    k += 1;
                }
                Err(e) => {
                    failed = Some((pos, e));
                    break;
                }
            }
        }
        assert_eq!(k, frames.len(), "frames missed by the reader");
        assert_eq!(failed, end.err(), "how the stream ends");
    }
}
