//! HTTP-level tests of the bank: `oneshot` on the router over a temporary database, plus real
//! servers on port 0 (`real_server`). The card is the real card core in memory
//! (`tests/support/card.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_flows;
#[path = "../support/card.rs"]
mod card;
mod common;
mod properties;
mod real_server;
mod website;
