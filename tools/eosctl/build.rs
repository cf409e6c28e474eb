//! Reads the ElasticOS ABI numbers from their one source (see `eos_core::abi`) into
//! `$OUT_DIR/abi.rs`.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let header = root.join("eos-subsys/include/uapi/linux/elastic.h");
    let patch = root.join("linux/patches/0003-mm-elasticos-page-ownership-markers-and-hooks.patch");
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let (header_text, patch_text) = (read(&header), read(&patch));
    let mut out = String::new();
    for (name, value) in eos_core::abi::defines(&header_text) {
        if let Some(op) = name.strip_prefix("ELASTIC_") {
            writeln!(out, "pub const {op}: libc::c_long = {value};").unwrap();
        }
    }
    for (name, nr) in eos_core::abi::added_syscalls(&patch_text) {
        writeln!(
            out,
            "pub const SYS_{}: libc::c_long = {nr};",
            name.to_uppercase()
        )
        .unwrap();
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("abi.rs");
    std::fs::write(dest, out).unwrap();
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-changed={}", patch.display());
}
