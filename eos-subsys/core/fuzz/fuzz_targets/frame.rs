//! libFuzzer entry of the `frame` target; the checks are in src/frame.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eos_core_fuzz::frame::check(data));
