//! cargo-fuzz target: see `stockade_fuzz::decide_sequence`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stockade_fuzz::decide_sequence(data));
