//! libFuzzer entry of the `peer` target; the checks are in src/peer.rs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| eos_core_fuzz::peer::check(data));
