//! libFuzzer target: arbitrary bytes through the PSKC file parser of `bank-tools token
//! import`. The harness and its invariants are in `../pskc_harness.rs` (shared with the
//! stable test `tools/tests/fuzz_pskc.rs`).
#![no_main]

#[path = "../pskc_harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
