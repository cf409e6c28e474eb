//! Target `peer`: what users write to the control files (`eos_core::peer`: `PeerCmd::parse`,
//! `parse_node_id`, `parse_addr`, `Secret::parse_hex`), and the connection timers (`Liveness`,
//! `Backoff`) under arbitrary clocks.
//!
//! The whole input, as text (lossily if it is not UTF-8), goes to every parser. Whatever
//! parses is in range (ids 1..=1023, non-zero ports, 16 to 64 secret bytes that are exactly
//! the hex digits written) and parses again, to the same value, from its canonical spelling; a
//! secret's `Debug` never shows key bytes. The same bytes, as operations with times (forward,
//! backward, far), drive a `Liveness` and a `Backoff`: a tick says dead exactly when nothing
//! arrived for `DEAD_AFTER_NS`, ping exactly when the last ping is `PING_INTERVAL_NS` old; an
//! echo from the future is ignored; the smoothed RTT stays between the smallest and the
//! largest accepted sample; the backoff doubles from its minimum up to its maximum and a reset
//! starts it over.

use crate::Input;
use eos_core::peer::{
    parse_addr, parse_node_id, Backoff, ConfigError, Liveness, PeerCmd, Secret, Tick,
    BACKOFF_MAX_MS, BACKOFF_MIN_MS, DEAD_AFTER_NS, PING_INTERVAL_NS, SECRET_MAX, SECRET_MIN,
};
use eos_core::proto::MAX_NODE_ID;
use std::fmt::Write;

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    parsers(&text);
    // Each line (and each word) on its own too, as a shell `echo` would write them.
    for line in text.lines().take(8) {
        parsers(line);
        for word in line.split_ascii_whitespace().take(4) {
            parsers(word);
        }
    }
    timers(data);
}

fn parsers(s: &str) {
    if let Ok(id) = parse_node_id(s) {
        assert!((1..=MAX_NODE_ID).contains(&id), "node id {id} from {s:?}");
        assert_eq!(parse_node_id(&id.to_string()), Ok(id));
    }
    if let Ok(a) = parse_addr(s) {
        assert_ne!(a.port(), 0, "port 0 from {s:?}");
        assert_eq!(parse_addr(&a.to_string()), Ok(a));
    }
    match Secret::parse_hex(s) {
        Ok(k) => {
            let b = k.as_bytes();
            assert!((SECRET_MIN..=SECRET_MAX).contains(&b.len()));
            let mut hex = String::new();
            for x in b {
                write!(hex, "{x:02x}").unwrap();
            }
            assert_eq!(hex, s.trim().to_ascii_lowercase(), "secret from {s:?}");
            assert_eq!(format!("{k:?}"), format!("Secret({} bytes)", b.len()));
        }
        Err(e) => assert_eq!(e, ConfigError::BadSecret),
    }
    match PeerCmd::parse(s) {
        Ok(c) => {
            let words: Vec<&str> = s.split_ascii_whitespace().collect();
            let canonical = match c.clone() {
                PeerCmd::Add(id, addr) => {
                    assert_eq!((words[0], words.len()), ("add", 3));
                    format!("add {id} {addr}")
                }
                PeerCmd::Del(id) => {
                    assert_eq!((words[0], words.len()), ("del", 2));
                    format!("del {id}")
                }
                PeerCmd::Key(id, k) => {
                    assert_eq!((words[0], words.len()), ("key", 3));
                    let hex: String = k.map_or("none".into(), |k| {
                        k.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
                    });
                    format!("key {id} {hex}")
                }
                PeerCmd::Ids(id, r) => {
                    assert_eq!((words[0], words.len()), ("ids", 3));
                    match r {
                        Some((lo, hi)) => {
                            assert!(lo <= hi && lo >= 1000 && hi <= 60000, "{s:?}");
                            format!("ids {id} {lo}-{hi}")
                        }
                        None => format!("ids {id} none"),
                    }
                }
            };
            assert_eq!(PeerCmd::parse(&canonical), Ok(c), "{s:?}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A clock step: mostly forward by a little or a lot, sometimes backward or anywhere.
fn advance(now: u64, inp: &mut Input<'_>) -> u64 {
    let b = inp.u8();
    match b % 8 {
        0..=3 => now.saturating_add(u64::from(inp.u32()) * 4),
        4 | 5 => now.saturating_add(u64::from(inp.u32()) << 8),
        6 => now.saturating_sub(u64::from(inp.u32())),
        _ => inp.u64(),
    }
}

fn timers(data: &[u8]) {
    let inp = &mut Input::new(data);
    let mut now = inp.u64();
    let mut l = Liveness::new(now);
    let (mut last_rx, mut last_ping) = (now, now);
    let (mut lo, mut hi) = (u64::MAX, 0);
    let mut b = Backoff::default();
    let mut delay = BACKOFF_MIN_MS;
    for _ in 0..64 {
        if inp.is_empty() {
            break;
        }
        now = advance(now, inp);
        match inp.u8() % 5 {
            0 => {
                l.on_rx(now);
                last_rx = now;
            }
            1 => {
                let sent = match inp.u8() % 3 {
                    0 => now.saturating_sub(u64::from(inp.u32())),
                    1 => now.saturating_add(1 + u64::from(inp.u8())),
                    _ => inp.u64(),
                };
                let before = (l.rtt_ns, l.srtt_ns);
                l.on_pong(now, sent);
                let stale = sent < last_rx.saturating_sub(DEAD_AFTER_NS * 2);
                if sent > now || stale {
                    assert_eq!((l.rtt_ns, l.srtt_ns), before, "echo from the future used");
                } else {
                    assert_eq!(l.rtt_ns, now - sent);
                    lo = lo.min(l.rtt_ns);
                    hi = hi.max(l.rtt_ns);
                    assert!(
                        (lo..=hi).contains(&l.srtt_ns),
                        "srtt {} outside {lo}..={hi}",
                        l.srtt_ns
                    );
                }
            }
            2 => {
                let want = if now.saturating_sub(last_rx) >= DEAD_AFTER_NS {
                    Tick::Dead
                } else if now.saturating_sub(last_ping) >= PING_INTERVAL_NS {
                    last_ping = now;
                    Tick::Ping
                } else {
                    Tick::Idle
                };
                assert_eq!(l.tick(now), want, "tick at {now}");
            }
            3 => {
                let d = b.next_delay_ms();
                assert_eq!(d, delay);
                assert!((BACKOFF_MIN_MS..=BACKOFF_MAX_MS).contains(&d));
                delay = (delay * 2).min(BACKOFF_MAX_MS);
            }
            _ => {
                b.reset();
                delay = BACKOFF_MIN_MS;
            }
        }
    }
}
