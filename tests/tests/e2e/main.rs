//! The end-to-end suites in one test binary, through the real pcscd and vsmartcard's vpcd
//! (`sudo bash scripts/setup.sh`): one build and one link instead of four.
//!
//! The tests run in parallel threads. Those that need a vpcd slot take its cross-process lock
//! (`e2e_tests::Slot::lock`), which also holds shared use of pcscd; the demo tests (whose
//! bridge runs without `--reader`) take pcscd exclusively (`e2e_tests::pcscd_exclusive`), so
//! they run while no other test of this binary uses a card. The pcscd restart test is a binary
//! of its own (`tests/pcscd_restart.rs`).

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser_pages;
mod card;
mod demo;
mod flow;
mod net_faults;
mod oath_token;
mod pin_state;
mod pskc;
mod signing_service;
mod vpcd_exposure;
mod ykman;
