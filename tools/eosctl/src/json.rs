//! `--json`: the node's text files (/sys/kernel/elastic, /proc/PID/elastic) as JSON, for
//! scripts. Numbers that are plain decimal integers become JSON numbers; everything else a
//! string.

use std::fmt::Write;

/// A JSON string literal of `s`.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value: a JSON number if `v` is a decimal integer (without a leading zero), else a string.
fn value(v: &str) -> String {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let number = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && digits.len() <= 18;
    if number {
        v.to_string()
    } else {
        string(v)
    }
}

/// An object of `(key, value)` pairs, in order.
fn object<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let fields: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{}:{}", string(k), value(v)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// `name value` lines (`stats`, `info`) as one object.
pub fn name_value(text: &str) -> String {
    object(text.lines().filter_map(|l| l.trim().split_once(' ')))
}

/// `peers` lines (`ID ADDR STATE key=value...`) as an array of objects.
pub fn peers(text: &str) -> String {
    let rows: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace();
            let head = [("id", w.next()), ("addr", w.next()), ("state", w.next())];
            let head = head.into_iter().filter_map(|(k, v)| Some((k, v?)));
            object(head.chain(w.filter_map(|f| f.split_once('='))))
        })
        .collect();
    format!("[{}]", rows.join(","))
}

/// One `key=value ...` line (`procs`, /proc/PID/elastic) as an object; a leading word without
/// `=` (`shell`) becomes `"kind"`.
pub fn key_value_line(line: &str) -> String {
    let mut w = line.split_whitespace().peekable();
    let kind = match w.peek() {
        Some(f) if !f.contains('=') => w.next(),
        _ => None,
    };
    let kind = kind.map(|k| ("kind", k)).into_iter();
    object(kind.chain(w.filter_map(|f| f.split_once('='))))
}

/// `procs` (one line per process or shell) as an array of objects.
pub fn key_value_lines(text: &str) -> String {
    let rows: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(key_value_line)
        .collect();
    format!("[{}]", rows.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_value_files() {
        assert_eq!(
            name_value("node_id 1\nprotocol 3\ncaps 0x1\nsecret set\n"),
            r#"{"node_id":1,"protocol":3,"caps":"0x1","secret":"set"}"#
        );
    }

    #[test]
    fn peer_lines() {
        let text = "2 10.0.2.12:7077 connected since_ms=68 rtt_us=2547 last_error=-\n";
        assert_eq!(
            peers(text),
            r#"[{"id":2,"addr":"10.0.2.12:7077","state":"connected","since_ms":68,"rtt_us":2547,"last_error":"-"}]"#
        );
        assert_eq!(peers(""), "[]");
    }

    #[test]
    fn process_and_shell_lines() {
        let text =
            "pid=87 comm=stress node=2 remote_pages=5\nshell home_node=1 home_pid=87 running=0\n";
        assert_eq!(
            key_value_lines(text),
            r#"[{"pid":87,"comm":"stress","node":2,"remote_pages":5},{"kind":"shell","home_node":1,"home_pid":87,"running":0}]"#
        );
    }

    #[test]
    fn strings_are_escaped_and_odd_numbers_stay_strings() {
        assert_eq!(
            key_value_line("comm=a\"b\\c x=007 y=-3 z=1.5 w=99999999999999999999"),
            r#"{"comm":"a\"b\\c","x":"007","y":-3,"z":"1.5","w":"99999999999999999999"}"#
        );
        assert_eq!(string("\u{1}"), "\"\\u0001\"");
    }
}
