//! # tools: the operator's library behind `bank-tools`
//!
//! Everything the `bank-tools` binary does lives here, so tests can call it directly.
//!
//! - [`card`]: create a factory card state ([`card::create`]) and personalize a card over
//!   PC/SC ([`card::personalize`]) or any `card_link` transport ([`card::personalize_over`]);
//!   the result is a token file (`paysim_wire::TokenFile`, [`card::write_token_file`]) the
//!   bank enrolls.
//! - [`bank`]: what the bank commands add to `bank_server::ops`: exact amount parsing,
//!   the database-path check, an account's currency.
//! - [`batch`]: many cards from one CSV file (`card personalize --batch`).
//! - [`seed`]: the PAYSIM-1 seed derivation (HKDF-SHA256 over a random secret and the
//!   identity materials).
//! - [`pskc`]: PSKC (RFC 6030) files of token secrets under a pre-shared key, read and written
//!   (`token export`, `token import`).
//! - [`secret_file`]: files holding secrets, created 0600 and never overwritten.
//! - [`tls`]: a local CA and a server certificate for the bank (`tls init`).
//!
//! ```no_run
//! use std::path::Path;
//! tools::card::create(Path::new("card.state"), Path::new("card.state.admin"))?;
//! # Ok::<(), tools::card::CardToolError>(())
//! ```

pub mod bank;
pub mod batch;
pub mod card;
pub mod oath;
pub mod pskc;
pub mod secret_file;
pub mod seed;
pub mod tls;
