//! # reader-bridge: the customer's terminal
//!
//! Finds the PAYSIM card over PC/SC, asks it for one-time codes, and talks to the bank's JSON
//! API. The CLI (`reader-bridge`) is a thin layer over this library.
//!
//! - [`card`]: PC/SC: pick the reader, wait for a card, one transaction per exchange.
//! - [`apdu`]: the APDUs and their answers (docs/protocol.md).
//! - [`amount`]: "12.34" EUR to 1234 minor units, exactly.
//! - [`bank`]: the bank's JSON API (docs/api.md).
//! - [`flow`]: the operations (login, transfer, respond...) joining card, bank and state.
//! - [`state`]: the state directory: session token and pending transfers.
//! - [`error`]: the one error type and its exit codes.

pub mod amount;
pub mod apdu;
pub mod bank;
pub mod card;
pub mod error;
pub mod flow;
pub mod state;

pub use error::{Error, Result};
