//! libFuzzer entry of the `handshake` target; the checks are in src/handshake.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eos_core_fuzz::handshake::check(data));
