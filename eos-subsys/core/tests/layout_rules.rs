//! The subsystem's layering rules, checked on its sources (docs/ARCHITECTURE.md, "File map"):
//! - the logic files of eos-subsys/ import each other without cycles;
//! - eos-subsys/sys/ (the unsafe layer over C) names nothing above it: only itself and the
//!   plain-Rust modules of core/src, which import no subsystem code either;
//! - `unsafe` appears nowhere outside sys/.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn subsys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Source without comments (line comments and doc comments), so prose may mention anything.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first path segment of every `crate::...` in `code`, `use crate::{a, b::c}` included.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let r = rest.trim_start();
        if let Some(group) = r.strip_prefix('{') {
            // A grouped import: take every top-level name of the group.
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name = ident(r);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Module names the crate root includes from core/src by `#[path]`.
fn core_modules() -> BTreeSet<String> {
    let root = fs::read_to_string(subsys().join("elastic.rs")).unwrap();
    let mut out = BTreeSet::new();
    let mut lines = root.lines().peekable();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with("#[path = \"core/src/") {
            for m in lines.by_ref() {
                if let Some(rest) = m.trim_start().strip_prefix("mod ") {
                    out.insert(ident(rest));
                    break;
                }
            }
        }
    }
    assert!(out.contains("proto"), "no core module found in elastic.rs");
    out
}

fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    v.sort();
    v
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn has_unsafe(code: &str) -> bool {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == "unsafe")
}

#[test]
fn logic_files_import_without_cycles() {
    let core = core_modules();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in rs_files(&subsys()) {
        let name = stem(&f);
        if name == "elastic" {
            continue;
        }
        let code = code_of(&fs::read_to_string(&f).unwrap());
        let deps = crate_refs(&code)
            .into_iter()
            .filter(|d| d != &name && d != "sys" && !core.contains(d))
            .collect();
        graph.insert(name, deps);
    }
    // Depth-first search for a back edge; report the whole cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let i = stack.iter().position(|s| s == n).unwrap();
                let mut c = stack[i..].to_vec();
                c.push(n.to_string());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if g.contains_key(d) {
                if let Some(c) = visit(d, g, state, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut state, &mut Vec::new()) {
            panic!("import cycle among eos-subsys files: {}", c.join(" -> "));
        }
    }
}

#[test]
fn unsafe_layer_never_calls_up() {
    let core = core_modules();
    for f in rs_files(&subsys().join("sys")) {
        let code = code_of(&fs::read_to_string(&f).unwrap());
        for d in crate_refs(&code) {
            assert!(
                d == "sys" || core.contains(&d),
                "sys/{}.rs names crate::{d}, a module above the unsafe layer",
                stem(&f)
            );
        }
    }
    let mut stack = vec![subsys().join("core/src")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let code = code_of(&fs::read_to_string(&p).unwrap());
            for d in crate_refs(&code) {
                assert!(
                    core.contains(&d) || d == "abi",
                    "{} names crate::{d}, which is not plain Rust",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn no_unsafe_outside_sys() {
    for f in rs_files(&subsys()) {
        let code = code_of(&fs::read_to_string(&f).unwrap());
        assert!(
            !has_unsafe(&code),
            "{} uses unsafe; it belongs in sys/",
            f.display()
        );
    }
}

#[test]
fn the_checker_sees_what_it_looks_for() {
    let refs = crate_refs("use crate::{node::Node, proto};\nfn f() { crate::jump::x(); }");
    assert_eq!(
        refs,
        ["jump", "node", "proto"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert!(has_unsafe("let x = unsafe { y };"));
    assert!(!has_unsafe(&code_of(
        "// unsafe in a comment\nfn unsafe_free() {}"
    )));
}
