//! libFuzzer entry of the `layout` target; the checks are in src/layout.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eos_core_fuzz::layout::check(data));
