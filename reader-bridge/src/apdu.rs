//! The bridge's view of the card protocol: validated PIN/PUK values, the OTP answer, and the
//! mapping of the card's typed errors onto [`Error`].
//!
//! The bytes themselves (APDU builders, response parsers, status-word meanings) live in
//! `card_applet::host`, the workspace's one host-side implementation of docs/protocol.md.

use crate::error::{Error, Result};
use card_applet::host::{CardError, RequestError};
use paysim_otp::Otp;
use zeroize::Zeroizing;

pub use card_applet::command::DataObject;
pub use card_applet::AID;

/// The card's answer to LOGIN OTP or TRANSACTION OTP. `Debug` hides the code.
#[derive(Clone, PartialEq, Eq)]
pub struct CardOtp {
    /// The counter the code was computed at (the bank needs it).
    pub counter: u64,
    /// Eight ASCII digits (zeroized on drop).
    pub otp: Otp,
}

impl std::fmt::Debug for CardOtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardOtp").field("counter", &self.counter).field("otp", &"<8 digits>").finish()
    }
}

/// A PIN: 4 to 8 ASCII digits. Checked before it reaches the card, so a typo in the format
/// never costs a try.
pub struct Pin(Zeroizing<String>);

impl Pin {
    pub fn new(text: &str) -> Result<Self> {
        let t = text.trim_end_matches(['\r', '\n']);
        if !(4..=8).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadInput("a PIN is 4 to 8 digits; nothing was sent to the card".to_owned()));
        }
        Ok(Pin(Zeroizing::new(t.to_owned())))
    }

    /// The digits, for the host APDU builders.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<hidden>)")
    }
}

/// A PUK: exactly 8 ASCII digits.
pub struct Puk(Zeroizing<String>);

impl Puk {
    pub fn new(text: &str) -> Result<Self> {
        let t = text.trim_end_matches(['\r', '\n']);
        if t.len() != 8 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadInput("a PUK is 8 digits; nothing was sent to the card".to_owned()));
        }
        Ok(Puk(Zeroizing::new(t.to_owned())))
    }

    /// The digits, for the host APDU builders.
    pub fn digits(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Puk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Puk(<hidden>)")
    }
}

/// Maps the card's answer to `command` onto the bridge's error: the variants a person acts on
/// (wrong PIN with tries left, blocked, not personalized, applet missing) get their own; the
/// rest keep the card's error as the cause.
pub fn card_error(command: &'static str, e: CardError) -> Error {
    match e {
        CardError::WrongPin { tries_left: 0 } | CardError::PinBlocked => Error::PinBlocked,
        CardError::WrongPin { tries_left } => Error::WrongPin { tries_left },
        CardError::WrongPuk { tries_left: 0 } | CardError::PukBlocked => Error::PukBlocked,
        CardError::WrongPuk { tries_left } => Error::WrongPuk { tries_left },
        CardError::NotPersonalized => Error::NotPersonalized,
        other => Error::Card { command, source: other },
    }
}

/// A request the host builders refused: the input was wrong before any card saw it.
pub fn request_error(e: RequestError) -> Error {
    Error::BadInput(format!("{e}; nothing was sent to the card"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_and_puk_formats_are_checked_before_the_card() {
        for bad in ["123", "123456789", "12a4", "", "12 34", "١٢٣٤"] {
            assert!(matches!(Pin::new(bad), Err(Error::BadInput(_))), "{bad}");
        }
        assert_eq!(Pin::new("1234\n").unwrap().digits(), "1234");
        assert!(Puk::new("1234567").is_err());
        assert!(Puk::new("1234567a").is_err());
        assert_eq!(Puk::new("12345678").unwrap().digits(), "12345678");
        assert_eq!(format!("{:?}", Pin::new("1234").unwrap()), "Pin(<hidden>)");
        assert_eq!(format!("{:?}", Puk::new("12345678").unwrap()), "Puk(<hidden>)");
    }

    #[test]
    fn card_errors_map_to_what_a_person_acts_on() {
        assert!(matches!(
            card_error("VERIFY", CardError::WrongPin { tries_left: 2 }),
            Error::WrongPin { tries_left: 2 }
        ));
        assert!(matches!(card_error("VERIFY", CardError::WrongPin { tries_left: 0 }), Error::PinBlocked));
        assert!(matches!(card_error("VERIFY", CardError::PinBlocked), Error::PinBlocked));
        assert!(matches!(
            card_error("RESET RETRY COUNTER", CardError::WrongPuk { tries_left: 9 }),
            Error::WrongPuk { tries_left: 9 }
        ));
        assert!(matches!(card_error("RESET RETRY COUNTER", CardError::PukBlocked), Error::PukBlocked));
        assert!(matches!(card_error("LOGIN OTP", CardError::NotPersonalized), Error::NotPersonalized));
        let other = card_error("LOGIN OTP", CardError::SecurityNotSatisfied);
        assert!(matches!(other, Error::Card { command: "LOGIN OTP", .. }));
        assert!(other.to_string().contains("LOGIN OTP"), "{other}");
    }

    #[test]
    fn otp_answers_hide_the_code_in_debug() {
        let otp = CardOtp { counter: 7, otp: Otp::from_digits("01234567").unwrap() };
        let dbg = format!("{otp:?}");
        assert!(dbg.contains('7') && !dbg.contains("0123"), "{dbg}");
    }
}
