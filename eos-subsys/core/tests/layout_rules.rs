//! The subsystem's layering rules, checked on its parsed sources (docs/ARCHITECTURE.md,
//! "Layers and lock order"):
//! - every `.rs` file under eos-subsys/ (at any depth; core/ is checked on its own) has a rank
//!   in [`RANKS`]: a file of the top folder by its module name, a file of sys/ by its folder.
//!   A file with no rank, or in a folder with no rank, fails, named;
//! - a file names, through `crate::` (or `super::` up to the crate root), only its own module,
//!   the core/src modules and modules of a strictly lower rank: each line of the doc's table
//!   imports only from lines below it, never from its own line. So sys/ (the unsafe layer)
//!   names only sys/ and core/src;
//! - core/src names only core modules (a file the kernel compiles, only those it compiles);
//! - [`RANKS`] is the doc's table, line for line;
//! - `unsafe` appears nowhere outside sys/.
//!
//! A reference is found wherever it is written: `use` trees of any nesting, renames and
//! `self` (`use crate::{a::{self}, b::{c, d::{e}}}`, `use crate::a as b`), paths in
//! expressions, types, patterns and attributes (`crate::pull::recall` passed as a value), and
//! `crate ::`/`$crate ::`/`super ::` in macro token streams (`pr_err!(.. crate::x ..)`). What
//! would hide a module from this check is refused: naming the crate root itself (`use crate
//! as c`, `use super::*` at a file's top, `extern crate self`), `#[path]` outside the crate
//! root, `include!`, and `#[macro_use]`/`#[macro_export]` (a macro reachable with no path).
//!
//! The checker is a set of functions over (file name -> source) maps, so the tests at the end
//! run it on small made-up trees too.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use syn::visit::{self, Visit};

/// The rank of every file of eos-subsys/, highest first: docs/ARCHITECTURE.md's table ("Layers
/// and lock order"), one rank per line of it. A top-level file is named by its module (file
/// stem), a folder by its path with a trailing `/` (all the files directly in it). The crate
/// root (`elastic`) declares every module and is above all; `core/src/` is the floor.
const RANKS: &[(&str, u32)] = &[
    ("elastic", 15),
    ("kunit", 14),
    ("control", 13),
    ("dispatch", 12),
    ("push", 11),
    ("fetch", 10),
    ("reclaim", 10),
    ("fork", 10),
    ("stretch", 9),
    ("pull", 9),
    ("jump", 8),
    ("mapsync", 7),
    ("home", 6),
    ("shell", 6),
    ("transport", 5),
    ("node", 4),
    ("rpc", 3),
    ("link", 3),
    ("transit", 3),
    ("lent", 3),
    ("kvec", 2),
    ("sys/", 1),
    ("core/src/", 0),
];

/// The crate root: the one file that may include others by `#[path]`.
const ROOT: &str = "elastic";

/// Why naming the crate root is refused.
const ROOT_WHY: &str = "a rename or glob of it reaches every module unseen";

fn rank(name: &str) -> Option<u32> {
    RANKS.iter().find(|(n, _)| *n == name).map(|&(_, r)| r)
}

// ---------------------------------------------------------------------------------------------
// What a file names.

/// What a path names: a module under the crate root (its first segment), or the root itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Module(String),
    Root,
}

/// A reference of a file: its line and what it names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ref {
    line: usize,
    target: Target,
}

/// Collects a file's references and what it does that would hide one.
struct Refs {
    /// Module path of the file (`["sys", "mm"]`; empty for a crate root), then of each inline
    /// `mod` entered: what `self` and `super` start from.
    module: Vec<String>,
    /// The file is the crate root (may use `#[path]`).
    root: bool,
    refs: BTreeSet<Ref>,
    /// (line, what is wrong).
    hidden: BTreeSet<(usize, String)>,
}

impl Refs {
    /// The absolute module a path starting with `crate`, `$crate`, `self` or `super` names;
    /// `None` for any other path (extern crates, locals) or one naming no module. `leaf`: the
    /// path is a whole `use` leaf (a glob, rename or `self`), where the crate root itself can be
    /// named.
    fn resolve(&self, segs: &[String], leaf: bool) -> Option<Target> {
        let (first, rest) = segs.split_first()?;
        let mut abs: Vec<&str> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.module.iter().map(String::as_str).collect(),
            "super" => {
                let mut m: Vec<&str> = self.module.iter().map(String::as_str).collect();
                m.pop()?;
                m
            }
            _ => return None,
        };
        for s in rest {
            match s.as_str() {
                "super" => {
                    abs.pop()?;
                }
                "self" => {}
                s => abs.push(s),
            }
        }
        match abs.first() {
            None | Some(&"*") if leaf => Some(Target::Root),
            None | Some(&"*") => None,
            Some(m) => Some(Target::Module(m.to_string())),
        }
    }

    fn add(&mut self, segs: &[String], leaf: bool, line: usize) {
        if let Some(target) = self.resolve(segs, leaf) {
            self.refs.insert(Ref { line, target });
        }
    }

    /// Every leaf of a `use` tree, below `prefix`.
    fn use_tree(&mut self, tree: &syn::UseTree, prefix: &[String]) {
        let with = |i: &syn::Ident| {
            let mut p = prefix.to_vec();
            p.push(i.to_string());
            (p, i.span().start().line)
        };
        match tree {
            syn::UseTree::Path(p) => {
                let (segs, _) = with(&p.ident);
                self.use_tree(&p.tree, &segs);
            }
            syn::UseTree::Name(n) => {
                let (segs, line) = with(&n.ident);
                self.add(&segs, true, line);
            }
            syn::UseTree::Rename(r) => {
                let (segs, line) = with(&r.ident);
                self.add(&segs, true, line);
            }
            syn::UseTree::Glob(g) => {
                let mut segs = prefix.to_vec();
                segs.push("*".into());
                self.add(&segs, true, g.star_token.spans[0].start().line);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(t, prefix);
                }
            }
        }
    }

    /// `crate :: a`, `$crate :: a`, `super :: a`, `self :: super :: a` and `crate :: { .. }` in
    /// a macro's tokens (which syn does not parse), at any depth of groups.
    fn tokens(&mut self, ts: TokenStream) {
        let tt: Vec<TokenTree> = ts.into_iter().collect();
        let colons = |j: usize| {
            matches!((tt.get(j), tt.get(j + 1)),
                (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                    if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
        };
        let mut i = 0;
        while i < tt.len() {
            let start = match &tt[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                    continue;
                }
                TokenTree::Ident(id) if ["crate", "super", "self"].contains(&&*id.to_string()) => {
                    id
                }
                _ => {
                    i += 1;
                    continue;
                }
            };
            let line = start.span().start().line;
            let mut segs = vec![start.to_string()];
            let mut j = i + 1;
            let mut leaf = false;
            while colons(j) {
                match tt.get(j + 2) {
                    Some(TokenTree::Ident(n)) => {
                        segs.push(n.to_string());
                        j += 3;
                    }
                    Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                        // A `use` group: parse the path and the group as the tree they are.
                        let ts: TokenStream = tt[i..j + 3].iter().cloned().collect();
                        match syn::parse2::<syn::UseTree>(ts) {
                            Ok(tree) => self.use_tree(&tree, &[]),
                            Err(_) => self.tokens(g.stream()),
                        }
                        segs.clear();
                        j += 3;
                        break;
                    }
                    Some(TokenTree::Punct(p)) if p.as_char() == '*' => {
                        segs.push("*".into());
                        leaf = true;
                        j += 3;
                        break;
                    }
                    _ => break,
                }
            }
            if matches!(tt.get(j), Some(TokenTree::Ident(a)) if a == "as") {
                leaf = true;
            }
            // `self` alone is a method's receiver, not a path.
            if segs.len() > 1 || segs.first().is_some_and(|s| s != "self") {
                self.add(&segs, leaf, line);
            }
            i = j.max(i + 1);
        }
    }
}

impl<'ast> Visit<'ast> for Refs {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        for a in &u.attrs {
            self.visit_attribute(a);
        }
        self.use_tree(&u.tree, &[]);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.add(&segs, false, p.segments[0].ident.span().start().line);
        visit::visit_path(self, p);
    }

    /// `pub(super)`, `pub(in crate::a)`: what may see an item, not what it uses (and only an
    /// ancestor may be named there).
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        let line = m.path.segments[0].ident.span().start().line;
        if m.path.is_ident("include") {
            self.hidden.insert((
                line,
                "`include!` pulls in code this check cannot see".into(),
            ));
        }
        self.tokens(m.tokens.clone());
        visit::visit_macro(self, m);
    }

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        let line = a.pound_token.spans[0].start().line;
        for (name, why) in [
            (
                "macro_use",
                "`#[macro_use]` makes macros reachable with no path",
            ),
            (
                "macro_export",
                "`#[macro_export]` puts a macro at the crate root",
            ),
        ] {
            if a.path().is_ident(name) {
                self.hidden
                    .insert((line, format!("{why}; export a macro with `pub(crate) use`")));
            }
        }
        if a.path().is_ident("path") && !self.root {
            self.hidden.insert((
                line,
                "`#[path]` outside the crate root includes a file this check does not rank".into(),
            ));
        }
        match &a.meta {
            syn::Meta::Path(p) => self.visit_path(p),
            syn::Meta::List(l) => {
                self.visit_path(&l.path);
                self.tokens(l.tokens.clone());
            }
            syn::Meta::NameValue(nv) => {
                self.visit_path(&nv.path);
                self.visit_expr(&nv.value);
            }
        }
    }

    fn visit_item_extern_crate(&mut self, e: &'ast syn::ItemExternCrate) {
        if e.ident == "self" {
            self.hidden.insert((
                e.ident.span().start().line,
                "`extern crate self` names the crate root everywhere: every module unseen".into(),
            ));
        }
        visit::visit_item_extern_crate(self, e);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        for a in &m.attrs {
            self.visit_attribute(a);
        }
        if let Some((_, items)) = &m.content {
            self.module.push(m.ident.to_string());
            for i in items {
                self.visit_item(i);
            }
            self.module.pop();
        }
    }
}

/// The references of a file whose module path is `module`, and what in it hides one.
fn refs_of(src: &str, module: &[String], root: bool) -> Result<Refs, String> {
    let file = syn::parse_file(src).map_err(|e| format!("does not parse: {e}"))?;
    let mut v = Refs {
        module: module.to_vec(),
        root,
        refs: BTreeSet::new(),
        hidden: BTreeSet::new(),
    };
    v.visit_file(&file);
    Ok(v)
}

/// The modules a crate root includes from core/src by `#[path = "core/src/.."]`.
fn core_modules(root_src: &str) -> BTreeSet<String> {
    let file = syn::parse_file(root_src).expect("the crate root parses");
    file.items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Mod(m) => Some(m),
            _ => None,
        })
        .filter(|m| {
            m.attrs.iter().any(|a| match &a.meta {
                syn::Meta::NameValue(nv) if nv.path.is_ident("path") => {
                    matches!(&nv.value, syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. })
                        if s.value().starts_with("core/src/"))
                }
                _ => false,
            })
        })
        .map(|m| m.ident.to_string())
        .collect()
}

/// The modules a crate root declares (`mod x;` or `mod x { .. }`).
fn declared_modules(root_src: &str) -> BTreeSet<String> {
    let file = syn::parse_file(root_src).expect("the crate root parses");
    file.items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Mod(m) => Some(m.ident.to_string()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The checks, on (path relative to the checked folder -> source) maps.

/// Where a file of eos-subsys/ sits: its module path, its own module (first segment; empty for
/// the crate root) and its rank; or why it has none.
fn place(path: &str) -> Result<(Vec<String>, String, u32), String> {
    let parts: Vec<&str> = path.split('/').collect();
    let (dirs, file) = parts.split_at(parts.len() - 1);
    let stem = file[0].strip_suffix(".rs").unwrap_or(file[0]);
    let fix = "give it a rank in RANKS (core/tests/layout_rules.rs) and a line in \
               docs/ARCHITECTURE.md's table (\"Layers and lock order\")";
    if dirs.is_empty() {
        let r = rank(stem).ok_or_else(|| format!("{path}: a file with no rank: {fix}"))?;
        if stem == ROOT {
            return Ok((Vec::new(), String::new(), r));
        }
        return Ok((vec![stem.to_string()], stem.to_string(), r));
    }
    let folder = format!("{}/", dirs.join("/"));
    match rank(&folder) {
        Some(r) if dirs.len() == 1 => {
            let mut m = vec![dirs[0].to_string()];
            if stem != "mod" {
                m.push(stem.to_string());
            }
            Ok((m, dirs[0].to_string(), r))
        }
        _ => Err(format!(
            "{path}: a file in {folder}, a folder with no rank (only sys/ has one): {fix}"
        )),
    }
}

/// The layering of eos-subsys/ (core/ apart): every file ranked, every reference strictly
/// down. `core` are the modules the crate root compiles from core/src. The problems found,
/// each naming its file (and line).
fn check_subsys(files: &BTreeMap<String, String>, core: &BTreeSet<String>) -> Vec<String> {
    let mut errors = Vec::new();
    for (path, src) in files {
        let (module, own, r) = match place(path) {
            Ok(p) => p,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let Refs { refs, hidden, .. } = match refs_of(src, &module, own.is_empty()) {
            Ok(x) => x,
            Err(e) => {
                errors.push(format!("{path}: {e}"));
                continue;
            }
        };
        for (line, why) in hidden {
            errors.push(format!("{path}:{line}: {why}"));
        }
        let who = if own.is_empty() { ROOT } else { &own };
        for Ref { line, target } in refs {
            let Target::Module(m) = target else {
                errors.push(format!(
                    "{path}:{line}: {who} (rank {r}) names the crate root itself: {ROOT_WHY}"
                ));
                continue;
            };
            let to = if m == own {
                continue;
            } else if core.contains(&m) {
                rank("core/src/")
            } else if m == ROOT {
                None
            } else {
                rank(&format!("{m}/")).or(rank(&m))
            };
            match to {
                Some(t) if t < r => {}
                Some(t) => errors.push(format!(
                    "{path}:{line}: {who} (rank {r}) names crate::{m} (rank {t}), which is not \
                     below it: a file imports only from lines below its own"
                )),
                None => errors.push(format!(
                    "{path}:{line}: {who} (rank {r}) names crate::{m}, which is no ranked module"
                )),
            }
        }
    }
    errors
}

/// core/src names only core modules: `lib` are those its lib.rs declares, `kernel` those the
/// kernel compiles (a file of one of these may name only these). Paths relative to core/src.
fn check_core(
    files: &BTreeMap<String, String>,
    lib: &BTreeSet<String>,
    kernel: &BTreeSet<String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    for (path, src) in files {
        let mut module: Vec<String> = path
            .strip_suffix(".rs")
            .unwrap_or(path)
            .split('/')
            .map(String::from)
            .collect();
        if module.last().is_some_and(|m| m == "mod") || path == "lib.rs" {
            module.pop();
        }
        let (allowed, which) = match module.first() {
            Some(m) if kernel.contains(m) => (kernel, "a core module the kernel compiles"),
            _ => (lib, "a core module (core/src/lib.rs)"),
        };
        let Refs { refs, hidden, .. } = match refs_of(src, &module, path == "lib.rs") {
            Ok(x) => x,
            Err(e) => {
                errors.push(format!("core/src/{path}: {e}"));
                continue;
            }
        };
        for (line, why) in hidden {
            errors.push(format!("core/src/{path}:{line}: {why}"));
        }
        for Ref { line, target } in refs {
            match &target {
                Target::Module(m) if allowed.contains(m) => {}
                Target::Module(m) => errors.push(format!(
                    "core/src/{path}:{line}: names crate::{m}, not {which}"
                )),
                Target::Root => errors.push(format!(
                    "core/src/{path}:{line}: names the crate root itself: {ROOT_WHY}"
                )),
            }
        }
    }
    errors
}

/// The lines of code with `unsafe` (comments and strings do not count: tokens do).
fn unsafe_lines(src: &str) -> Vec<usize> {
    fn scan(ts: TokenStream, out: &mut Vec<usize>) {
        for t in ts {
            match t {
                TokenTree::Ident(i) if i == "unsafe" => out.push(i.span().start().line),
                TokenTree::Group(g) => scan(g.stream(), out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    scan(src.parse().expect("the file lexes"), &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// The real tree.

fn subsys() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every `.rs` file under `dir`, at any depth, by its path relative to `dir` ('/'-separated),
/// except in folders `skip` (relative paths) and in any `target` or hidden folder.
fn rs_files(dir: &Path, skip: &[&str]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(dir.join(&rel)).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type().unwrap().is_dir() {
                if !(name == "target" || name.starts_with('.') || skip.contains(&path.as_str())) {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.insert(path, fs::read_to_string(e.path()).unwrap());
            }
        }
    }
    out
}

fn real_core_modules() -> BTreeSet<String> {
    let m = core_modules(&fs::read_to_string(subsys().join("elastic.rs")).unwrap());
    assert!(m.contains("proto"), "no core module found in elastic.rs");
    m
}

fn report(errors: Vec<String>) {
    assert!(errors.is_empty(), "layering broken:\n{}", errors.join("\n"));
}

#[test]
fn the_subsystem_follows_its_layers() {
    let files = rs_files(subsys(), &["core"]);
    assert!(files.contains_key("control.rs") && files.contains_key("sys/mm.rs"));
    report(check_subsys(&files, &real_core_modules()));
    // No rank is left for a file that is gone.
    for (name, _) in RANKS {
        let there = match name.strip_suffix('/') {
            Some(dir) => subsys().join(dir).is_dir(),
            None => files.contains_key(&format!("{name}.rs")),
        };
        assert!(there, "RANKS names {name}, which eos-subsys/ does not have");
    }
}

#[test]
fn core_names_only_core() {
    let src = subsys().join("core/src");
    let files = rs_files(&src, &[]);
    let lib = declared_modules(&files["lib.rs"]);
    let kernel = real_core_modules();
    assert!(
        kernel.is_subset(&lib),
        "elastic.rs compiles a core module lib.rs lacks"
    );
    report(check_core(&files, &lib, &kernel));
}

#[test]
fn ranks_are_the_docs_table() {
    let doc = fs::read_to_string(subsys().join("../docs/ARCHITECTURE.md")).unwrap();
    let section = doc
        .split("## Layers and lock order")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has \"Layers and lock order\"");
    let table = section
        .split("```")
        .nth(1)
        .expect("the section has a table");
    // The left column (names up to two spaces), top line first.
    let doc_lines: Vec<BTreeSet<&str>> = table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().split("  ").next().unwrap().split(", ").collect())
        .collect();
    let mut ranks: Vec<u32> = RANKS.iter().map(|&(_, r)| r).collect();
    ranks.dedup();
    assert!(
        ranks.windows(2).all(|w| w[0] > w[1]),
        "RANKS is not listed highest first, one run per rank"
    );
    let code_lines: Vec<BTreeSet<&str>> = ranks
        .iter()
        .map(|&r| {
            RANKS
                .iter()
                .filter(|&&(_, x)| x == r)
                .map(|&(n, _)| n)
                .collect()
        })
        .collect();
    assert_eq!(
        doc_lines, code_lines,
        "docs/ARCHITECTURE.md's table (left) and RANKS (right) differ"
    );
}

#[test]
fn no_unsafe_outside_sys() {
    let files = rs_files(subsys(), &["sys", "core/fuzz"]);
    assert!(files.contains_key("control.rs") && files.contains_key("core/src/lib.rs"));
    let found: Vec<String> = files
        .iter()
        .flat_map(|(path, src)| {
            unsafe_lines(src)
                .into_iter()
                .map(move |l| format!("{path}:{l}"))
        })
        .collect();
    assert!(
        found.is_empty(),
        "unsafe outside sys/ (it belongs there): {}",
        found.join(", ")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker on made-up trees: it sees what it looks for.

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|&(p, s)| (p.to_string(), s.to_string()))
        .collect()
}

fn made_up_core() -> BTreeSet<String> {
    ["proto", "layout"].iter().map(|s| s.to_string()).collect()
}

/// Checks a made-up tree; shows its messages (`cargo test -- --nocapture`).
fn check_made_up(files: &[(&str, &str)]) -> Vec<String> {
    let errors = check_subsys(&tree(files), &made_up_core());
    for e in &errors {
        eprintln!("{e}");
    }
    errors
}

#[test]
fn a_clean_tree_passes() {
    let errors = check_made_up(&[
        (
            "elastic.rs",
            "#[path = \"core/src/proto/mod.rs\"] mod proto; mod control; mod sys;",
        ),
        (
            "control.rs",
            "use crate::{pull, home::{self, Proc}};\nfn f() { crate::pull::recall(); }",
        ),
        ("pull.rs", "use super::jump::x; use crate::proto::Message;"),
        ("sys/mod.rs", "pub(crate) mod mm;"),
        (
            "sys/mm.rs",
            "use super::task; use crate::proto; use crate::sys::arch;",
        ),
        ("home.rs", "mod tests { use super::*; use crate::sys::mm; }"),
    ]);
    assert_eq!(errors, Vec::<String>::new());
}

#[test]
fn refuses_an_upward_import() {
    // mapsync calls pull through a value, not a `use`: still an edge up.
    let errors = check_made_up(&[(
        "mapsync.rs",
        "use crate::home::Proc;\nfn f(p: &Proc) {\n    let recall = crate::pull::recall;\n}",
    )]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("mapsync.rs:3: mapsync (rank 7) names crate::pull (rank 9)"));
}

#[test]
fn refuses_a_module_hidden_in_nested_use_groups() {
    let errors = check_made_up(&[(
        "transport.rs",
        "use crate::{node::{self}, home::{x, y::{z}}};",
    )]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("transport (rank 5) names crate::home (rank 6)"));
}

#[test]
fn refuses_a_file_in_a_new_subfolder() {
    let errors = check_made_up(&[("fetch/mod.rs", "use crate::proto;")]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("fetch/mod.rs: a file in fetch/, a folder with no rank"));
    // Nor may sys/ grow one.
    let errors = check_made_up(&[("sys/net/tcp.rs", "")]);
    assert!(errors[0].starts_with("sys/net/tcp.rs: a file in sys/net/"));
}

#[test]
fn refuses_a_file_with_no_rank() {
    let errors = check_made_up(&[("relay.rs", "use crate::proto;")]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("relay.rs: a file with no rank"));
}

#[test]
fn refuses_an_import_from_its_own_line() {
    let errors = check_made_up(&[("stretch.rs", "use crate::pull::{recall as r};")]);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("stretch (rank 9) names crate::pull (rank 9)"));
}

#[test]
fn sees_paths_in_macros_attributes_and_through_super() {
    let errors = check_made_up(&[
        (
            "node.rs",
            "fn f() { pr_err!(\"{}\", crate::jump::X); }\n\
             macro_rules! m { () => { $crate::push::y() } }\n\
             #[cfg_attr(test, doc = crate::dispatch::D)] fn g() {}\n\
             fn h() { super::home::Proc::get(); }\n\
             mod a { mod b { fn k() { super::super::super::shell::z(); } } }\n\
             fn q() { m!(use crate::{proto, control}; ); }\n\
             fn t() -> <crate::stretch::S as T>::U {}",
        ),
        ("sys/task.rs", "fn f() { super::super::pull::recall(); }"),
    ]);
    for (line, m) in [
        (1, "jump"),
        (2, "push"),
        (3, "dispatch"),
        (4, "home"),
        (5, "shell"),
        (6, "control"),
        (7, "stretch"),
    ] {
        let hit = format!("node.rs:{line}: node (rank 4) names crate::{m}");
        assert!(errors.iter().any(|e| e.starts_with(&hit)), "missed {hit}");
    }
    assert!(errors
        .iter()
        .any(|e| e.starts_with("sys/task.rs:1: sys (rank 1) names crate::pull")));
    assert_eq!(errors.len(), 8);
}

#[test]
fn refuses_what_hides_a_module() {
    let errors = check_made_up(&[
        ("jump.rs", "use super::*;\nfn f() { pull::recall(); }"),
        (
            "home.rs",
            "use crate as root;\nfn f() { root::pull::recall(); }",
        ),
        ("shell.rs", "use crate::{self as root};"),
        ("rpc.rs", "#[path = \"pull.rs\"]\nmod p;"),
        ("link.rs", "include!(\"pull.rs\");"),
        ("kvec.rs", "#[macro_export]\nmacro_rules! m { () => {} }"),
        ("lent.rs", "fn f() { crate::recall(); }"),
        ("transit.rs", "extern crate self as root;"),
    ]);
    for hit in [
        "jump.rs:1: jump (rank 8) names the crate root itself",
        "home.rs:1: home (rank 6) names the crate root itself",
        "shell.rs:1: shell (rank 6) names the crate root itself",
        "rpc.rs:1: `#[path]` outside the crate root",
        "link.rs:1: `include!`",
        "kvec.rs:1: `#[macro_export]`",
        "lent.rs:1: lent (rank 3) names crate::recall, which is no ranked module",
        "transit.rs:1: `extern crate self`",
    ] {
        assert!(errors.iter().any(|e| e.starts_with(hit)), "missed {hit}");
    }
}

#[test]
fn core_may_name_only_core() {
    let lib: BTreeSet<String> = ["proto", "layout", "abi"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let files = tree(&[
        ("layout.rs", "use crate::proto::X; use crate::abi::Y;"),
        ("proto/mod.rs", "mod frame;"),
        (
            "proto/frame.rs",
            "use super::cursor; fn f() { crate::sys::mm::x(); }",
        ),
        ("abi.rs", "use crate::layout;"),
    ]);
    let errors = check_core(&files, &lib, &made_up_core());
    assert_eq!(
        errors,
        [
            "core/src/layout.rs:1: names crate::abi, not a core module the kernel compiles",
            "core/src/proto/frame.rs:1: names crate::sys, not a core module the kernel compiles",
        ]
    );
}

#[test]
fn sees_unsafe_in_code_only() {
    assert_eq!(unsafe_lines("fn f() {\n    let x = unsafe { y };\n}"), [2]);
    assert_eq!(
        unsafe_lines("// unsafe in a comment\n/// and a doc\nfn unsafe_free() { \"unsafe\"; }"),
        Vec::<usize>::new()
    );
    assert_eq!(unsafe_lines("m!(unsafe { x });"), [1]);
}
