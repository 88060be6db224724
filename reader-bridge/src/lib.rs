//! # reader-bridge: the customer's terminal
//!
//! Finds the PAYSIM card over PC/SC, asks it for one-time codes, and talks to the bank's JSON
//! API. The CLI (`reader-bridge`) is a thin layer over this library.
//!
//! - [`card`]: the PAYSIM operations over any `card_link` transport (PC/SC, or the card core
//!   in process for tests): pick the reader, wait for a card, one transaction per exchange.
//! - [`apdu`]: the APDUs and their answers (docs/protocol.md).
//! - [`input`]: what a person types (amounts, currencies, accounts, ids, challenges) parsed
//!   into the bank's vocabulary (`paysim_wire`), with messages that say what to type.
//! - [`bank`]: the bank's JSON API (docs/api.md) over rustls: the bank's address rules
//!   (`https://`, or `http://` to this computer only), what to trust (platform roots or a
//!   private CA) and TLS failures a person can act on.
//! - [`flow`]: the operations (login, transfer, respond...) joining card, bank and state.
//! - [`serve`]: the local signing service the bank's pages call (`reader-bridge serve`): the
//!   code is bound to the page's `Origin` as the browser sent it.
//! - [`tty`]: a PIN or PUK read from the terminal with echo off before the prompt shows.
//! - [`state`]: the state directory: the pinned bank, session token and pending transfers.
//! - [`error`]: the one error type and its exit codes.
//!
//! ```no_run
//! use reader_bridge::flow::{BankFlags, Bridge, CardChoice};
//! use std::time::Duration;
//! # fn demo(ui: &mut dyn reader_bridge::flow::Ui) -> reader_bridge::Result<()> {
//! // Once: pin the bank (a private CA's PEM file as the third argument, if it has one).
//! Bridge::setup("/tmp/bridge-state", "https://bank.example", None, false)?;
//! // Every command: the pinned bank; the card signs only for its verifier id.
//! let card = CardChoice { reader: None, wait: Duration::from_secs(10) };
//! let bridge = Bridge::open("/tmp/bridge-state", &BankFlags::default(), card)?;
//! bridge.login(&reader_bridge::input::user("alice")?, ui)?; // PIN through `ui`, code from the card, session stored
//! for a in bridge.accounts()? {
//!     println!("{} {} {}", a.number, a.balance_minor, a.currency);
//! }
//! # Ok(()) }
//! ```
//!
//! Errors are one [`Error`] enum; [`Error::exit_code`] gives the CLI's exit code per class.

pub mod apdu;
pub mod bank;
pub mod card;
pub mod error;
pub mod flow;
pub mod input;
pub mod report;
pub mod serve;
pub mod state;
pub mod tty;

pub use error::{Error, Result};
