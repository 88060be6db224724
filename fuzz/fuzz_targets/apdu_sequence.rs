//! libFuzzer target: sequences of APDUs, resets, torn writes, power losses and
//! re-personalizations against one card. The harness and its invariants are in
//! `../harness.rs` (shared with the stable test `card-applet/tests/fuzz_harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
