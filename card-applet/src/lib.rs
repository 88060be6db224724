//! # card-applet: the PAYSIM payment-SIM applet (and a YKOATH applet beside it)
//!
//! A smart-card applet that holds a customer's PIN, PUK and PAYSIM-1 chain and answers
//! ISO/IEC 7816-4 APDUs with one-time codes for logins and transfers; plus the host side
//! that builds those APDUs and reads the answers, and the `virtual-card` that runs the applet
//! in a vpcd reader slot. The same card carries a second applet, YKOATH ([`oath`]: Yubico's
//! OATH protocol, HOTP/TOTP credentials, as ykman and YubiKeys speak it); the card routes
//! SELECT by AID ([`Applet`]). The wire protocol, every status word and the state-file format
//! are in `docs/protocol.md`; the codes themselves (PAYSIM-1 over OCRA, RFC 6287; HOTP and
//! TOTP) come from the `paysim-otp` crate.
//!
//! ## Main types
//!
//! - [`apdu::CommandView`]: ISO/IEC 7816-4 §5.1 framing, short and extended, cases 1-4.
//! - [`Command`]: a parsed command, from `TryFrom<CommandView>` with `Error = iso7816::Status`;
//!   the parser is complete and panic-free ([`command`] lists its check order).
//! - [`Card`]: the sans-I/O core, [`Card::handle`]`(apdu) -> `[`Response`]. It commits its
//!   [`CardState`] through a [`Store`] before any answer that depends on it leaves the card,
//!   and answers `6581` when a commit fails. [`state::MemStore`] keeps the state in memory.
//! - [`CardFront`]: the frame layer around the core: `61xx`/GET RESPONSE (and YKOATH's SEND
//!   REMAINING), reset and power, the [`ATR`].
//! - [`oath::command::Command`]: a parsed YKOATH command, same shape as [`Command`];
//!   [`TouchPolicy`] says what the virtual card does for a credential that needs a touch.
//! - [`scp::SessionKeys`]: the admin secure channel (SCP03-like derivation, cryptograms,
//!   PERSONALIZE wrapping).
//! - [`host`]: APDU builders and response parsers with typed errors ([`host::CardError`]) for
//!   the reader bridge and the tools; [`host::admin::AdminSession`] runs admin
//!   authentication and PERSONALIZE.
//! - With `std`: `state::FileStore` (the atomic, locked JSON state file),
//!   `state::create_factory`, `state::StoreError`, and `VirtualCard`, the file-backed card
//!   the `virtual-card` binary serves through `vpcd`.
//!
//! ## Example
//!
//! A card in memory, with the randomness injected as a core without an operating system
//! would do it, driven through the host builders:
//!
//! ```
//! use card_applet::{host, state::{CardState, MemStore}, Card, CardFront};
//! let random = Box::new(|buf: &mut [u8]| { buf.fill(0x5A); true });
//! let mut card = CardFront::new(Card::with_random(MemStore::default(), CardState::factory(&[1; 32]), random));
//! let fci = host::parse_select(&card.process(&host::select())).unwrap();
//! assert!(!fci.personalized()); // a factory card has no serial and no PIN yet
//! assert_eq!(host::parse_verify(&card.process(&host::verify("1234").unwrap())), Err(host::CardError::NotPersonalized));
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
//!
//! ## Features
//!
//! - none: the `#![no_std]` + `alloc` core, everything above but the `std` items. The core
//!   takes its randomness from the caller ([`Card::with_random`],
//!   [`host::admin::AdminSession::with_host_challenge`]) and logs through `tracing` without
//!   std.
//! - `std`: the JSON state file and `FileStore`/`VirtualCard`, OS randomness (`Card::new`,
//!   `AdminSession::new`), and the std features of `thiserror`, `serde_json` and `tracing`.
//! - `virtual-card` (default, implies `std`): the vpcd transport (`vpcd`) and the
//!   `virtual-card` binary.
//!
//! Only the host target (x86_64-unknown-linux-gnu) is installed where this is built, so the
//! no_std promise is checked there: `scripts/test.sh` builds the core with
//! `cargo build -p card-applet --no-default-features --lib` (the attribute makes any use of
//! std a compile error) and fails if `cargo tree` shows a `std` feature switched on for any
//! crate of that build. A build for an embedded target has not been tried.

#![cfg_attr(not(any(test, feature = "std")), no_std)]

extern crate alloc;

pub mod apdu;
pub mod card;
pub mod command;
#[cfg(feature = "std")]
mod file_store;
pub mod front;
pub mod host;
pub mod oath;
pub mod pin;
pub mod scp;
pub mod state;
mod store;
pub mod tlv;
#[cfg(feature = "virtual-card")]
pub mod vpcd;

pub use card::{Applet, Card, Firmware, Response, TouchPolicy};
pub use command::{Command, AID};
#[cfg(feature = "std")]
pub use front::VirtualCard;
pub use front::{CardFront, ATR};
#[cfg(feature = "std")]
pub use state::StoreError;
pub use state::{CardState, Store};
