//! HTTP-level tests of the bank: `oneshot` on the router over a temporary database, plus real
//! servers on port 0 (`real_server`). The card is the real card core in memory
//! (`tests/support/card.rs`).

// clippy.toml lets `#[test]` functions unwrap; the helpers they share (the test bank, the
// card, the HTTP calls) are plain functions and may too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse_and_audit;
mod api_flows;
#[path = "../support/card.rs"]
mod card;
mod common;
mod oath_tokens;
mod payee;
mod properties;
mod real_server;
#[path = "../support/server.rs"]
mod server;
mod transport;
mod website;
