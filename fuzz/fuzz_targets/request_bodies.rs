//! cargo-fuzz target: see `stockade_fuzz::request_bodies`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stockade_fuzz::request_bodies(data));
