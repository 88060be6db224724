//! # card-applet: the PAYSIM payment-SIM applet
//!
//! A sans-I/O smart-card applet plus the pieces the host side shares with it. The wire
//! protocol, every status word and the state-file format are in `docs/protocol.md`.
//!
//! Card side:
//! - [`apdu`]: ISO/IEC 7816-4 APDU framing (short/extended, cases 1-4).
//! - [`command`]: the typed [`Command`] and its panic-free parser
//!   (`TryFrom<CommandView> for Command`, `Error = iso7816::Status`).
//! - [`card`]: the core, [`Card::handle`]`(apdu) -> Response`, committing through a [`Store`].
//! - [`front`]: `61xx`/GET RESPONSE, reset and power, the ATR; [`VirtualCard`] is the
//!   file-backed card the `virtual-card` binary runs.
//! - [`state`]: persistent state, the [`Store`] trait, [`state::MemStore`], the atomic, locked
//!   [`state::FileStore`] and [`state::create_factory`].
//! - [`scp`]: the admin secure channel (SCP03-like key derivation, cryptograms, PERSONALIZE
//!   wrapping).
//!
//! The codes themselves (PAYSIM-1 over OCRA, RFC 6287) are computed by the `paysim-otp` crate,
//! which the bank and the terminal use too.
//!
//! Host side (bridge and tools): [`host`] builds APDUs and parses answers into typed errors;
//! [`host::admin::AdminSession`] runs admin authentication and PERSONALIZE.
//!
//! ```
//! use card_applet::{host, CardFront, Card, state::{CardState, MemStore}};
//! let mut card = CardFront::new(Card::new(MemStore::default(), CardState::factory(&[1; 32])));
//! let fci = host::parse_select(&card.process(&host::select())).unwrap();
//! assert!(fci.serial.is_none()); // a factory card has no serial yet
//!
//! use paysim_otp::{ChainKey, login_otp};
//! let ck0 = ChainKey::from_bytes([7u8; 32]);
//! let code = login_otp(&ck0, 0, &[0xAB; 32], b"https://bank.example:443");
//! assert_eq!(code.as_str().len(), 8);
//! ```
//!
//! The virtual card (see `src/bin/virtual-card.rs`):
//!
//! ```no_run
//! # fn main() -> Result<(), card_applet::state::StoreError> {
//! use card_applet::VirtualCard;
//! let path = std::path::Path::new("card.json");
//! card_applet::state::create_factory(path, &[0x42; 32])?; // once, mode 0600, never overwrites
//! let mut card = VirtualCard::open(path)?; // exclusive: a second process gets StoreError::Locked
//! let _atr = VirtualCard::atr();
//! let _resp = card.process(&[0x00, 0xA4, 0x04, 0x00, 0x08, 0xF0, 0x50, 0x41, 0x59, 0x53, 0x49, 0x4D, 0x01, 0x00]);
//! card.reset(); // or card.power_off()
//! # Ok(()) }
//! ```

#![cfg_attr(not(any(test, feature = "std")), no_std)]

extern crate alloc;

pub mod apdu;
pub mod card;
pub mod command;
#[cfg(feature = "std")]
mod file_store;
pub mod front;
pub mod host;
pub mod pin;
pub mod scp;
pub mod state;
mod store;
pub mod tlv;
#[cfg(feature = "virtual-card")]
pub mod vpcd;

pub use card::{Card, Response};
pub use command::{Command, AID};
#[cfg(feature = "std")]
pub use front::VirtualCard;
pub use front::{CardFront, ATR};
#[cfg(feature = "std")]
pub use state::StoreError;
pub use state::{CardState, Store};
