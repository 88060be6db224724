//! The YKOATH applet: Yubico's OATH protocol (HOTP and TOTP credentials, an optional access
//! code), as Debian's ykman, Yubico Authenticator and the YubiKey and Nitrokey 3 speak it.
//!
//! It sits on the card beside the PAYSIM applet and is selected by its AID
//! ([`AID`], `A0 00 00 05 27 21 01 01`; the 7-byte form ykman sends selects it too). The
//! wire format of every instruction, the status words and the touch policy of the virtual
//! card are in `docs/protocol.md`, section "The YKOATH applet".
//!
//! - [`command::Command`]: a parsed YKOATH command, from `TryFrom<CommandView>` with
//!   `Error = Status`, complete and panic-free like the PAYSIM parser.
//! - [`OathState`], [`Credential`]: what the applet keeps in the card's state (the state
//!   file's `"oath"` object, format version 2).
//! - The handlers live in `card::oath` (they are methods of [`crate::Card`], which commits the
//!   state through its store before any answer that depends on it).
//! - [`TouchPolicy`]: what stands in for the button of a real key.

use alloc::vec::Vec;

use paysim_otp::HashAlg;
use zeroize::Zeroizing;

pub mod command;

/// The applet's full DF name, `A0 00 00 05 27 21 01 01` (Yubico's RID `A0 00 00 05 27`,
/// OATH `21 01`, instance `01`). A SELECT with the first [`AID_MIN`] bytes or more of it
/// selects the applet (ISO/IEC 7816-4 §11.2.2.2, partial DF name): ykman sends 7 bytes, the
/// Android Yubico Authenticator all 8.
pub const AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01, 0x01];
/// The shortest partial name that selects the applet: `A0 00 00 05 27 21 01`.
pub const AID_MIN: usize = 7;

/// Whether a SELECT's DF name selects this applet.
pub fn selects(name: &[u8]) -> bool {
    name.len() >= AID_MIN && AID.starts_with(name)
}

/// The version the applet reports in SELECT (tag `79`): 5.4.3, a YubiKey 5 firmware. ykman
/// gates features on it: touch needs 4.2.6, SHA-512 4.3.1, RENAME 5.3.1.
pub const VERSION: [u8; 3] = [5, 4, 3];

/// Most credentials the applet holds (a YubiKey 5 before 5.7 holds 32).
pub const MAX_CREDENTIALS: usize = 32;
/// Longest credential name in bytes.
pub const NAME_MAX: usize = 64;
/// Length of the salt (SELECT's tag `71`) and of the card's VALIDATE challenge.
pub const SALT_LEN: usize = 8;
/// Length of the challenge the card sends in SELECT when an access code is set.
pub const CHALLENGE_LEN: usize = 8;
/// Longest challenge CALCULATE, CALCULATE ALL and VALIDATE accept.
pub const CHALLENGE_MAX: usize = 64;

/// Instruction bytes (all in class `00`).
pub mod ins {
    pub const PUT: u8 = 0x01;
    pub const DELETE: u8 = 0x02;
    pub const SET_CODE: u8 = 0x03;
    pub const RESET: u8 = 0x04;
    pub const RENAME: u8 = 0x05;
    pub const LIST: u8 = 0xA1;
    pub const CALCULATE: u8 = 0xA2;
    pub const VALIDATE: u8 = 0xA3;
    pub const CALCULATE_ALL: u8 = 0xA4;
    pub const SEND_REMAINING: u8 = 0xA5;
}

/// TLV tags.
pub mod tag {
    pub const NAME: u8 = 0x71;
    pub const NAME_LIST: u8 = 0x72;
    pub const KEY: u8 = 0x73;
    pub const CHALLENGE: u8 = 0x74;
    pub const RESPONSE: u8 = 0x75;
    pub const TRUNCATED: u8 = 0x76;
    pub const HOTP: u8 = 0x77;
    /// Followed by one value byte, without a length byte.
    pub const PROPERTY: u8 = 0x78;
    pub const VERSION: u8 = 0x79;
    pub const IMF: u8 = 0x7A;
    pub const ALGORITHM: u8 = 0x7B;
    pub const TOUCH: u8 = 0x7C;
}

/// Property bits (tag `78`).
pub mod prop {
    /// A challenge must not be lower than the last one used with the credential.
    pub const INCREASING: u8 = 0x01;
    /// A code needs a touch (see [`super::TouchPolicy`]).
    pub const TOUCH: u8 = 0x02;
}

/// HOTP or TOTP: the high nibble of the key-type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `10`: the card's counter is the message, and moves on with each code.
    Hotp,
    /// `20`: the host's challenge (for TOTP, the 8-byte time step) is the message.
    Totp,
}

impl Kind {
    /// The nibble as it is sent (`0x10`, `0x20`).
    pub fn nibble(self) -> u8 {
        match self {
            Self::Hotp => 0x10,
            Self::Totp => 0x20,
        }
    }

    /// The kind of a key-type byte's high nibble.
    pub fn from_nibble(b: u8) -> Option<Self> {
        match b & 0xF0 {
            0x10 => Some(Self::Hotp),
            0x20 => Some(Self::Totp),
            _ => None,
        }
    }
}

/// The hash of a key-type byte's low nibble: `1` SHA-1, `2` SHA-256, `3` SHA-512.
pub fn alg_from_nibble(b: u8) -> Option<HashAlg> {
    match b & 0x0F {
        0x01 => Some(HashAlg::Sha1),
        0x02 => Some(HashAlg::Sha256),
        0x03 => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// The low nibble of `alg`.
pub fn alg_nibble(alg: HashAlg) -> u8 {
    match alg {
        HashAlg::Sha1 => 0x01,
        HashAlg::Sha256 => 0x02,
        HashAlg::Sha512 => 0x03,
    }
}

/// Block size of the hash: the longest key PUT accepts (ykman hashes longer ones first).
pub fn block_len(alg: HashAlg) -> usize {
    match alg {
        HashAlg::Sha1 | HashAlg::Sha256 => 64,
        HashAlg::Sha512 => 128,
    }
}

/// What the virtual card does when a credential needs a touch. It has no button: the policy
/// is the virtual card's setting (`virtual-card --touch allow|deny`), and a denied touch
/// answers `6982`, which is what a YubiKey answers when nobody touches it in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TouchPolicy {
    /// Every touch is granted at once (the default).
    #[default]
    Allow,
    /// Every touch is refused.
    Deny,
}

/// One OATH credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// 1-64 bytes (ykman: `[period/][issuer:]account`, UTF-8, but the card takes any bytes).
    pub name: Vec<u8>,
    pub kind: Kind,
    pub alg: HashAlg,
    /// 6, 7 or 8.
    pub digits: u8,
    /// 1 up to the hash's block size.
    pub key: Zeroizing<Vec<u8>>,
    pub touch: bool,
    /// Only-increasing: no challenge may be lower than [`Credential::last_challenge`].
    pub increasing: bool,
    /// HOTP: the counter of the next code.
    pub counter: u32,
    /// The highest challenge used so far, kept for only-increasing credentials (big-endian,
    /// leading zero bytes removed).
    pub last_challenge: Option<Vec<u8>>,
}

impl core::fmt::Debug for Credential {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credential")
            .field("name_len", &self.name.len())
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .field("digits", &self.digits)
            .field("key", &"<secret>")
            .field("touch", &self.touch)
            .field("increasing", &self.increasing)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// The access code's key: `PBKDF2-HMAC-SHA1(password, salt, 1000, 16)` as ykman derives it;
/// the card only ever sees the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub alg: HashAlg,
    pub key: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AccessKey").field("alg", &self.alg).field("key", &"<secret>").finish()
    }
}

/// What the YKOATH applet remembers across power cycles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OathState {
    /// The salt SELECT reports (tag `71`, from which ykman derives the device id and the
    /// access key). Drawn and committed at the first SELECT (a card from a version-1 state
    /// file or a factory card has none yet), drawn again by RESET.
    pub salt: Option<[u8; SALT_LEN]>,
    /// Set by SET CODE; `None` when there is no access code.
    pub access: Option<AccessKey>,
    /// In the order they were added (LIST and CALCULATE ALL answer in this order).
    pub credentials: Vec<Credential>,
}

impl OathState {
    /// The credential called `name`.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        self.credentials.iter().position(|c| c.name == name)
    }
}

/// `a > b` for big-endian unsigned numbers of any length.
pub fn higher(a: &[u8], b: &[u8]) -> bool {
    let a = strip(a);
    let b = strip(b);
    a.len() > b.len() || (a.len() == b.len() && a > b)
}

/// Removes leading zero bytes (the canonical form of [`Credential::last_challenge`]).
pub fn strip(x: &[u8]) -> &[u8] {
    let start = x.iter().position(|&b| b != 0).unwrap_or(x.len());
    &x[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aid_matching_takes_the_7_and_8_byte_forms_only() {
        assert!(selects(&AID));
        assert!(selects(&AID[..7]));
        assert!(!selects(&AID[..6]));
        assert!(!selects(&[0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01, 0x02]));
        assert!(!selects(&[0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01, 0x01, 0x00]));
    }

    #[test]
    fn challenges_compare_as_numbers() {
        assert!(higher(&[0, 0, 2], &[1]));
        assert!(!higher(&[1], &[0, 0, 1]));
        assert!(higher(&[1, 0], &[0xFF]));
        assert!(!higher(&[], &[]));
        assert!(higher(&[1], &[]));
        assert_eq!(strip(&[0, 0]), &[] as &[u8]);
    }
}
