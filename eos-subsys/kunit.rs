// SPDX-License-Identifier: GPL-2.0

//! In-kernel tests (KUnit suite `elasticos`): the parts that only exist in the kernel, run
//! against real kernel services. The pure logic has its own host tests in core/.

use crate::handshake::{HandshakeError, Initiator, Responder};
use crate::peer::{PeerCmd, Secret};
use crate::proto::{FrameReader, Message, MAX_PAYLOAD};
use crate::ratelimit::RateLimit;
use crate::sys::{crypto::HmacSha256, kunit::Outcome, time};
use kernel::prelude::*;

fn check(ok: bool, msg: &'static str) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(msg)
    }
}

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let b = s.as_bytes();
    for (i, o) in out.iter_mut().enumerate() {
        let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        *o = d(b[2 * i]) << 4 | d(b[2 * i + 1]);
    }
    out
}

/// Kernel `hmac(sha256)` reproduces RFC 4231 test cases 1 and 2.
fn hmac_sha256_rfc4231() -> Outcome {
    let m = HmacSha256::new(&[0x0b; 20]).map_err(|_| "alloc/setkey failed")?;
    let t = m.digest(b"Hi There").map_err(|_| "digest failed")?;
    check(
        t == hex32("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        "RFC 4231 case 1 mismatch",
    )?;
    let m = HmacSha256::new(b"Jefe").map_err(|_| "alloc/setkey failed")?;
    let t = m
        .digest(b"what do ya want for nothing?")
        .map_err(|_| "digest failed")?;
    check(
        t == hex32("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        "RFC 4231 case 2 mismatch",
    )
}

/// The handshake state machines agree with kernel crypto, and refuse a different key.
fn handshake_with_kernel_crypto() -> Outcome {
    let key = Secret::parse_hex("000102030405060708090a0b0c0d0e0f").map_err(|_| "secret")?;
    let a = HmacSha256::new(key.as_bytes()).map_err(|_| "crypto")?;
    let b = HmacSha256::new(b"another-key-entirely").map_err(|_| "crypto")?;
    let mut i = Initiator::new(1, 2, 1, crate::sys::crypto::random_bytes());
    let mut r = Responder::new(2, 1, crate::sys::crypto::random_bytes());
    let ch = r
        .on_hello(&i.hello(), |n| n == 1, &a)
        .map_err(|_| "hello refused")?;
    let auth = i.on_challenge(&ch, &a).map_err(|_| "challenge refused")?;
    let est = r.on_auth(&auth, &a).map_err(|_| "auth refused")?;
    check(est.peer == 1, "responder saw wrong peer")?;
    check(
        i.on_welcome(&Message::Welcome).map(|e| e.peer) == Ok(2),
        "initiator not established",
    )?;

    let mut i = Initiator::new(1, 2, 1, crate::sys::crypto::random_bytes());
    let mut r = Responder::new(2, 1, crate::sys::crypto::random_bytes());
    let ch = r
        .on_hello(&i.hello(), |_| true, &b)
        .map_err(|_| "hello refused")?;
    check(
        i.on_challenge(&ch, &a) == Err(HandshakeError::BadMac),
        "wrong key accepted",
    )
}

/// Frames survive the kernel-side buffer handling; garbage is rejected without harm.
fn frame_reader_in_kernel() -> Outcome {
    let mut payload = VVec::from_elem(0u8, MAX_PAYLOAD, GFP_KERNEL).map_err(|_| "no memory")?;
    let mut wire = [0u8; 64];
    let n = Message::Ping(0x1122_3344)
        .encode(9, &mut wire)
        .map_err(|_| "encode")?;
    let mut r = FrameReader::new();
    let mut got = false;
    for byte in &wire[..n] {
        let want = r.want(&mut payload);
        want[0] = *byte;
        if let Some(h) = r.advance(1).map_err(|_| "valid frame rejected")? {
            got = Message::decode(&h, &payload[..h.len as usize]) == Ok(Message::Ping(0x1122_3344));
        }
    }
    check(got, "frame lost")?;
    let mut r = FrameReader::new();
    let want = r.want(&mut payload);
    let k = want.len();
    want.fill(0xff);
    check(r.advance(k).is_err(), "garbage header accepted")
}

/// The log limiter works with the kernel clock.
fn ratelimit_with_kernel_clock() -> Outcome {
    let mut rl = RateLimit::new(1_000_000_000, 3);
    let now = time::now_ns();
    let allowed = (0..10).filter(|_| rl.allow(now).is_some()).count();
    check(allowed == 3, "burst not enforced")
}

/// Configuration commands parse in the kernel build (core::net is available).
fn peer_commands_in_kernel() -> Outcome {
    check(
        matches!(PeerCmd::parse("add 2 10.0.2.16:7077"), Ok(PeerCmd::Add(2, a)) if a.port() == 7077),
        "add not parsed",
    )?;
    check(
        PeerCmd::parse("add 2 nowhere").is_err(),
        "bad address accepted",
    )
}

/// Nonces come from the CSPRNG and differ.
fn random_nonces_differ() -> Outcome {
    let a: [u8; 32] = crate::sys::crypto::random_bytes();
    let b: [u8; 32] = crate::sys::crypto::random_bytes();
    check(a != b, "two nonces are equal")
}

/// `kvec::retain` keeps what it should, in order, and drops each removed element once.
fn kvec_retain_in_place() -> Outcome {
    use core::sync::atomic::{AtomicU32, Ordering::Relaxed};
    static DROPS: AtomicU32 = AtomicU32::new(0);
    struct Counted(u32);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Relaxed);
        }
    }
    let fill = |n: u32| -> Result<KVVec<Counted>, &'static str> {
        let mut v = KVVec::new();
        for i in 0..n {
            v.push(Counted(i), GFP_KERNEL).map_err(|_| "no memory")?;
        }
        Ok(v)
    };
    let values = |v: &KVVec<Counted>| v.iter().map(|c| c.0).fold(0u64, |a, x| a * 16 + x as u64);

    let mut v = fill(10)?;
    DROPS.store(0, Relaxed);
    crate::kvec::retain(&mut v, |_, c| c.0 % 3 != 0);
    check(v.len() == 6, "wrong count kept")?;
    check(values(&v) == 0x124578, "kept out of order")?;
    check(
        DROPS.load(Relaxed) == 4,
        "removed elements not dropped once each",
    )?;

    crate::kvec::retain(&mut v, |i, _| i != 0);
    check(values(&v) == 0x24578, "index-based removal")?;
    crate::kvec::retain(&mut v, |_, _| true);
    check(
        values(&v) == 0x24578 && DROPS.load(Relaxed) == 5,
        "kept all",
    )?;
    crate::kvec::retain(&mut v, |_, _| false);
    check(v.is_empty() && DROPS.load(Relaxed) == 10, "removed all")?;
    v.push(Counted(7), GFP_KERNEL).map_err(|_| "no memory")?;
    check(values(&v) == 7, "unusable after removing all")?;
    drop(v);

    let mut k: KVec<u32> = KVec::new();
    for i in 0..5 {
        k.push(i, GFP_KERNEL).map_err(|_| "no memory")?;
    }
    crate::kvec::retain(&mut k, |_, x| *x != 4 && *x != 0);
    check(k.as_slice() == [1, 2, 3], "KVec")
}

/// Clean copies on a member (lent.rs): a `Took` with a tag keeps the answered copies under
/// it; only that tag takes one out; a put-back, a Discard's range, an install and the
/// table's end keep the node's count right.
fn clean_copies_in_lent() -> Outcome {
    use crate::lent::{clean_pages, Lent, LentTo};
    const P: u64 = 4096;
    let page = |b: u8| [b; 4096];
    let before = clean_pages();
    let mut l = Lent::new();
    for i in 0..4u64 {
        l.lend(0x10000 + i * P, LentTo::Answer(2), &page(i as u8))
            .map_err(|_| "no memory")?;
    }
    l.lend(0x20000, LentTo::Answer(3), &page(9))
        .map_err(|_| "no memory")?;
    // Pages 0..2 confirmed by node 2 with tag 7; page 3 confirmed without a tag.
    l.took(2, 0x10000, 3, 7, true);
    l.took(2, 0x10000 + 3 * P, 1, 0, true);
    check(clean_pages() == before + 3, "three copies kept")?;
    check(
        !l.has(0x10000) && l.has(0x20000),
        "lent copies dropped or kept wrongly",
    )?;
    check(
        l.take_clean(0x10000, 8).is_none(),
        "a wrong tag took a copy",
    )?;
    check(
        l.take_clean(0x10000 + 3 * P, 7).is_none(),
        "an untagged confirmation kept a copy",
    )?;
    let n = l.take_clean(0x10000, 7).ok_or("the right tag took none")?;
    check(clean_pages() == before + 2, "count after a take")?;
    let (addr, copy) = n.to_key_value();
    check(
        addr == 0x10000 && copy.data() == &page(0)[..],
        "the copy's bytes",
    )?;
    l.took(2, 0x10000, 1, 7, true);
    check(
        clean_pages() == before + 2,
        "a repeated Took kept a copy it no longer had",
    )?;
    let n = l.take_clean(0x10000 + P, 7).ok_or("second copy")?;
    l.put_back_clean(n);
    check(clean_pages() == before + 2, "count after a put-back")?;
    l.forget(0x10000 + P);
    check(
        clean_pages() == before + 1,
        "an install kept the stale copy",
    )?;
    l.drop_clean(0x10000, 0x10000 + 2 * P);
    check(
        clean_pages() == before + 1,
        "a range without the page dropped it",
    )?;
    l.drop_clean(0x10000, 0x20000);
    check(clean_pages() == before, "a range dropped none")?;
    l.took(3, 0x20000, 1, 5, true);
    check(clean_pages() == before + 1, "node 3's copy")?;
    drop(l);
    check(
        clean_pages() == before,
        "the table's end left copies counted",
    )
}

crate::sys::kunit::kunit_suite!(
    "elasticos",
    [
        hmac_sha256_rfc4231,
        handshake_with_kernel_crypto,
        frame_reader_in_kernel,
        ratelimit_with_kernel_clock,
        peer_commands_in_kernel,
        random_nonces_differ,
        kvec_retain_in_place,
        clean_copies_in_lent,
    ]
);
