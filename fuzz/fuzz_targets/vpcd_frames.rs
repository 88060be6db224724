//! libFuzzer target: arbitrary byte streams from "vpcd" through the card's frame loop. The
//! harness and its invariants are in `../vpcd_harness.rs` (shared with the stable test
//! `card-applet/tests/fuzz_vpcd.rs`).
#![no_main]

#[path = "../vpcd_harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
