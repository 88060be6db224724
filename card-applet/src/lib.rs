//! # card-applet: the PAYSIM payment-SIM applet
//!
//! A sans-I/O smart-card applet plus the pieces the host side shares with it.
//!
//! - [`otp`]: HOTP (RFC 4226), TOTP (RFC 6238), OCRA (RFC 6287) and the PAYSIM-1 chain
//!   algorithm that both the card and the bank run. This is the workspace's one
//!   implementation of the OTP computation.
//!
//! ```
//! use card_applet::otp::{ChainKey, login_otp};
//! let ck0 = ChainKey::from_bytes([7u8; 32]);
//! let code = login_otp(&ck0, 0, &[0xAB; 32], b"https://bank.example:443");
//! assert_eq!(code.as_str().len(), 8);
//! ```

pub mod otp;
#[cfg(feature = "virtual-card")]
pub mod vpcd;
