//! # paysim-wire: the words the card, the bank and the terminal share
//!
//! Every value that crosses a crate or a network boundary is defined here once, as a type
//! that cannot hold an invalid value; each side parses into it at its edge and never checks
//! it again. No I/O, `#![no_std]` with `alloc` (the card core uses [`CardSerial`]).
//!
//! - [`ids`]: [`UserName`], [`CardSerial`], [`AccountNumber`], [`TransferId`],
//!   [`ChallengeId`], [`Challenge`]: newtypes with `FromStr`, `Display` and serde.
//! - [`money`]: [`Currency`] (the ISO 4217 table with exponents, and the five the bank
//!   keeps) and exact decimal amounts in minor units.
//! - [`names`]: [`PayeeName`], an account holder's or payee's name (verification of payee).
//! - [`api`]: the JSON API's requests, answers and [`api::ErrorCode`] (`docs/api.md`); the
//!   server answers and the bridge reads these very types.
//! - [`token_file`]: the personalization output `bank-tools card personalize` writes and
//!   `token enroll` reads.
//!
//! ```
//! use paysim_wire::{AccountNumber, Currency, TransferId};
//! let eur: Currency = "EUR".parse().unwrap();
//! assert_eq!(eur.parse_amount("12.34"), Ok(1234));
//! assert_eq!(eur.format_minor(1234), "12.34");
//! assert!(eur.kept_by_bank());
//! assert!("ACC-BOB-EUR".parse::<AccountNumber>().is_ok());
//! assert!("a/b".parse::<TransferId>().is_err());
//! ```

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod api;
pub mod ids;
pub mod money;
pub mod names;
pub mod time;
pub mod token_file;

pub use ids::{AccountNumber, CardSerial, Challenge, ChallengeId, IdError, TransferId, UserName};
pub use money::{AmountError, Currency, CurrencyError, MAX_AMOUNT};
pub use names::PayeeName;
pub use token_file::TokenFile;
