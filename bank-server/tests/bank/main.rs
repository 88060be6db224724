//! HTTP-level tests of the bank: `oneshot` on the router over a temporary database, plus real
//! servers on port 0 (`real_server`). The card is simulated with `paysim_otp`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_flows;
mod common;
mod properties;
mod real_server;
mod website;
