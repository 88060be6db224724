//! libFuzzer target: arbitrary requests to the bank's router, in process, against one bank on
//! a temporary database. The harness and its invariants are in `../http_harness.rs` (shared
//! with the stable test `bank-server/tests/fuzz_http.rs`).
#![no_main]

#[path = "../http_harness.rs"]
mod harness;

use std::sync::OnceLock;

static BANK: OnceLock<harness::Bank> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    BANK.get_or_init(harness::Bank::new).run(data);
});
