//! cargo-fuzz target: see `stockade_fuzz::decode_event`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    stockade_fuzz::decode_event(data);
});
