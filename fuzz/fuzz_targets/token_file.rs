//! libFuzzer target: arbitrary text through the token-file parser. The harness and its
//! invariants are in `../token_file_harness.rs` (shared with the stable test
//! `wire/tests/fuzz_token_file.rs`).
#![no_main]

#[path = "../token_file_harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
