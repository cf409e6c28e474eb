//! docs/PROTOCOL.md must not drift from the code: its frame table must add up to the header,
//! and its message table must list exactly the types of [`MsgType`], each with its number,
//! name, fixed-field layout and size as the encoders write them.

use super::tests::{page_samples, samples};
use super::*;
use std::collections::BTreeSet;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, println};

const DOC: &str = include_str!("../../../../docs/PROTOCOL.md");

/// The table rows (cells trimmed) of the section titled `title`.
fn table(title: &str) -> Vec<Vec<&'static str>> {
    let start = DOC
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no section {title}"));
    let section = &DOC[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .skip(1) // the column titles
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect()
}

/// Splits at the commas outside parentheses.
fn top_level_items(s: &str) -> Vec<&str> {
    let (mut items, mut depth, mut from) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(s[from..i].trim());
                from = i + 1;
            }
            _ => {}
        }
    }
    items.push(s[from..].trim());
    items
}

/// A documented fixed field: its name, its size, and its note (the parenthesised text).
fn field(row: &str, item: &str) -> (String, usize, String) {
    let (decl, note) = item.split_once('(').unwrap_or((item, ""));
    let words: Vec<&str> = decl.split_whitespace().collect();
    let [name, ty] = words[..] else {
        panic!("{row}: field `{item}` is not `name type`");
    };
    let size = match ty {
        "u8" => 1,
        "u16" => 2,
        "u32" | "i32" => 4,
        "u64" => 8,
        _ => ty
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{row}: field `{item}` has an unknown type")),
    };
    (
        name.to_string(),
        size,
        note.trim_end_matches(')').to_string(),
    )
}

#[test]
fn frame_table_matches_header() {
    let mut at = 0;
    for row in table("Frame") {
        let (offset, size): (usize, usize) = (row[0].parse().unwrap(), row[1].parse().unwrap());
        assert_eq!(
            offset, at,
            "header field {} is not where the previous ends",
            row[2]
        );
        at += size;
        match row[2] {
            "magic" => assert!(
                row[3].contains(&format!("`{MAGIC:#06X}`")),
                "magic: {}",
                row[3]
            ),
            "version" => assert!(
                row[3].contains(&format!("`{VERSION}`")),
                "version: {}",
                row[3]
            ),
            "len" => assert!(row[3].contains(&format!("{} KiB", MAX_PAYLOAD / 1024))),
            _ => {}
        }
    }
    assert_eq!(
        at, HEADER_LEN,
        "the header fields do not add up to HEADER_LEN"
    );
}

#[test]
fn message_table_matches_code() {
    let sent: Vec<Message<'static>> = samples().into_iter().chain(page_samples()).collect();
    let mut documented = BTreeSet::new();
    for row in table("Messages") {
        let (ty, name, payload, size) = (row[0], row[1], row[2], row[3]);
        let v = u8::from_str_radix(ty.trim_start_matches("0x"), 16).unwrap();
        let t = MsgType::from_u8(v).unwrap_or_else(|_| panic!("{ty} {name} is not in MsgType"));
        assert_eq!(
            format!("{t:?}"),
            name,
            "type {ty} has another name in the code"
        );
        assert!(documented.insert(v), "{name} is documented twice");

        // The fixed fields add up to the documented size, which the encoder writes.
        let fixed_part = payload.split(';').next().unwrap();
        let fields: Vec<_> = match fixed_part.trim() {
            "—" => Vec::new(),
            f => top_level_items(f).iter().map(|i| field(name, i)).collect(),
        };
        let (fixed, variable) = match size.split_once(" + ") {
            Some((n, rest)) => (n.parse::<usize>().unwrap(), Some(rest)),
            None => (size.parse().unwrap(), None),
        };
        assert_eq!(
            fields.iter().map(|f| f.1).sum::<usize>(),
            fixed,
            "{name}: fields != size"
        );
        let m = sent.iter().find(|m| m.ty() == t);
        let e = m
            .unwrap_or_else(|| panic!("no sample of {name}"))
            .encode_parts(0)
            .unwrap();
        assert_eq!(
            e.head_len - HEADER_LEN,
            fixed,
            "{name}: the encoder writes another size"
        );

        let (min, max) = t.len_bounds();
        match variable {
            None => {
                assert_eq!(
                    (min, max),
                    (fixed, fixed),
                    "{name} is not fixed-size in the code"
                );
                assert!(
                    !payload.contains(';'),
                    "{name}: a variable part but a fixed size"
                );
            }
            Some(rest) => {
                assert!(
                    min >= fixed && max > min,
                    "{name} is fixed-size in the code"
                );
                if let Some(stride) = rest.strip_prefix("count × ") {
                    let stride: usize = stride.parse().unwrap();
                    assert_eq!(
                        max,
                        fixed + MAX_BATCH * stride,
                        "{name}: other size per page"
                    );
                }
                if let Some(k) = rest.strip_prefix("strings (≤ ") {
                    let kib: usize = k.trim_end_matches(" KiB)").parse().unwrap();
                    assert_eq!(max, fixed + kib * 1024, "{name}: other string limit");
                }
            }
        }

        // The documented limits of count fields are the code's.
        for (fname, _, note) in &fields {
            let want = match (t, fname.as_str()) {
                (MsgType::Push | MsgType::Pull, "count") => format!("1..={MAX_BATCH}"),
                (MsgType::Jump, "nranges") => format!("≤ {MAX_JUMP_RANGES}"),
                _ => continue,
            };
            assert_eq!(note, &want, "{name}.{fname}");
        }
        println!("{ty} {name}: {fixed} bytes fixed, bounds {min}..={max}");
    }
    let in_code: BTreeSet<u8> = (0..=u8::MAX)
        .filter(|&v| MsgType::from_u8(v).is_ok())
        .collect();
    assert_eq!(
        documented, in_code,
        "the message table and MsgType list different types"
    );
}
