//! Names and identifiers. Each is text with a rule; a value of the type always follows it.
//!
//! | type | rule | who makes it |
//! |---|---|---|
//! | [`UserName`] | 1-32 of `a-z 0-9 . _ -` | the operator (`user add`) |
//! | [`CardSerial`] | 1-16 of `A-Z 0-9 -` | the issuer, at personalization |
//! | [`AccountNumber`] | 1-34 of `A-Z 0-9 -` (34: the longest IBAN) | the operator |
//! | [`TransferId`] | 1-64 of `A-Z a-z 0-9 . _ ~ -` (URL-safe, RFC 3986 unreserved) | the client |
//! | [`ChallengeId`] | 32 lower-case hex digits | the bank |

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a text is not a valid identifier: names the kind and its rule, never echoes the text
/// (an identifier field may hold a code a person typed in the wrong place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {rule}")]
pub struct IdError {
    pub what: &'static str,
    pub rule: &'static str,
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// What the type is called in messages.
            pub const WHAT: &'static str = $what;
            /// The rule, as messages state it.
            pub const RULE: &'static str = $rule;

            /// Whether `text` follows the rule.
            pub fn is_valid(text: &str) -> bool {
                let ok: fn(&str) -> bool = $ok;
                ok(text)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            fn error() -> IdError {
                IdError { what: $what, rule: $rule }
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                if Self::is_valid(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(Self::error())
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(text: String) -> Result<Self, IdError> {
                if Self::is_valid(&text) {
                    Ok(Self(text))
                } else {
                    Err(Self::error())
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::try_from(text).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn chars(text: &str, len: core::ops::RangeInclusive<usize>, ok: impl Fn(u8) -> bool) -> bool {
    len.contains(&text.len()) && text.bytes().all(ok)
}

text_id!(
    /// A user's login name.
    UserName,
    "user name",
    "1-32 characters of a-z 0-9 . _ -",
    |t| chars(t, 1..=32, |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
);

text_id!(
    /// A card's serial, written at personalization and enrolled at the bank.
    CardSerial,
    "card serial",
    "1-16 characters of A-Z 0-9 -",
    |t| chars(t, 1..=CardSerial::MAX_LEN, |b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
);

text_id!(
    /// A customer account's number (what a payee is named by).
    AccountNumber,
    "account number",
    "1-34 characters of A-Z 0-9 -",
    |t| chars(t, 1..=34, |b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
);

text_id!(
    /// A transfer's id, chosen by the client so that a retry cannot pay twice. It goes into
    /// URL paths and into what the card signs.
    TransferId,
    "transfer id",
    "1-64 characters of A-Z a-z 0-9 . _ ~ -",
    |t| chars(t, 1..=64, |b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
);

text_id!(
    /// A challenge's id as the bank hands it out (128 random bits).
    ChallengeId,
    "challenge id",
    "32 lower-case hex digits",
    |t| chars(t, 32..=32, |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
);

impl CardSerial {
    /// Longest serial, in bytes.
    pub const MAX_LEN: usize = 16;
}

/// The bank's challenge: 16 to 32 random bytes (`paysim_otp::CHALLENGE_MIN..=CHALLENGE_MAX`),
/// written as upper-case hex on the wire and on pages.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge(Vec<u8>);

/// Why a challenge was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the challenge must be hexadecimal digits")]
    NotHex,
    #[error(
        "the challenge must be {min} to {max} bytes ({lo} to {hi} hex digits); got {got} hex digits",
        got = .0,
        lo = 2 * paysim_otp::CHALLENGE_MIN,
        hi = 2 * paysim_otp::CHALLENGE_MAX,
        min = paysim_otp::CHALLENGE_MIN,
        max = paysim_otp::CHALLENGE_MAX
    )]
    Length(usize),
}

impl Challenge {
    /// A challenge of 16 to 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ChallengeError> {
        if (paysim_otp::CHALLENGE_MIN..=paysim_otp::CHALLENGE_MAX).contains(&bytes.len()) {
            Ok(Self(bytes.to_vec()))
        } else {
            Err(ChallengeError::Length(2 * bytes.len()))
        }
    }

    /// A challenge as a person copies it from a page: hex digits, in either case, with any
    /// spaces, `-` or `:` between them.
    pub fn parse_typed(text: &str) -> Result<Self, ChallengeError> {
        let cleaned: String = text.chars().filter(|c| !c.is_whitespace() && *c != '-' && *c != ':').collect();
        let bytes = hex::decode(&cleaned).map_err(|_| ChallengeError::NotHex)?;
        Self::from_bytes(&bytes).map_err(|_| ChallengeError::Length(cleaned.len()))
    }

    /// The bytes the card signs.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Upper-case hex, as pages and the API show it.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(&self.0)
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Challenge({})", self.to_hex())
    }
}

impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Challenge {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Challenge {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(|_| serde::de::Error::custom(ChallengeError::NotHex))?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_accepts_and_refuses() {
        assert!(UserName::is_valid("alice.b_c-1"));
        for bad in ["", "Alice", "a b", &"a".repeat(33), "ä"] {
            assert!(bad.parse::<UserName>().is_err(), "{bad}");
        }
        assert!(CardSerial::is_valid("PSIM-00000001"));
        for bad in ["", "psim", "PSIM 1", &"A".repeat(17)] {
            assert!(bad.parse::<CardSerial>().is_err(), "{bad}");
        }
        assert!(AccountNumber::is_valid("ACC-BOB-EUR"));
        for bad in ["", "acc", "ACC BOB", &"A".repeat(35)] {
            assert!(bad.parse::<AccountNumber>().is_err(), "{bad}");
        }
        assert!(TransferId::is_valid("tx-0123abcd"));
        assert!(TransferId::is_valid("a.b_c~d-E"));
        for bad in ["", "a/b", "a b", "ä", &"x".repeat(65), "..%2f"] {
            assert!(bad.parse::<TransferId>().is_err(), "{bad}");
        }
        assert!(ChallengeId::is_valid(&"0a".repeat(16)));
        for bad in ["zz", &"0A".repeat(16), &"0".repeat(31), &"0".repeat(33)] {
            assert!(bad.parse::<ChallengeId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_rule_not_the_text() {
        let e = "Secret 1234".parse::<UserName>().unwrap_err().to_string();
        assert_eq!(e, "user name must be 1-32 characters of a-z 0-9 . _ -");
        let e = "x/y".parse::<TransferId>().unwrap_err().to_string();
        assert_eq!(e, "transfer id must be 1-64 characters of A-Z a-z 0-9 . _ ~ -");
    }

    #[test]
    fn serde_refuses_what_the_parser_refuses() {
        let ok: AccountNumber = serde_json::from_str("\"ACC-1\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"ACC-1\"");
        assert!(serde_json::from_str::<AccountNumber>("\"acc\"").is_err());
        assert!(serde_json::from_str::<UserName>("17").is_err());
    }

    #[test]
    fn challenges_are_checked() {
        assert_eq!(Challenge::parse_typed(&"ab".repeat(32)).unwrap().as_bytes(), &[0xAB; 32][..]);
        assert_eq!(Challenge::parse_typed("0011 2233 4455 6677 8899 aabb ccdd eeff").unwrap().as_bytes().len(), 16);
        assert_eq!(Challenge::parse_typed("zz"), Err(ChallengeError::NotHex));
        let e = Challenge::parse_typed(&"ab".repeat(15)).unwrap_err().to_string();
        assert!(e.contains("32 to 64 hex digits"), "{e}");
        assert!(Challenge::parse_typed(&"ab".repeat(33)).is_err());
        let c: Challenge = serde_json::from_str(&format!("\"{}\"", "AB".repeat(16))).unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", "AB".repeat(16)));
        assert!(serde_json::from_str::<Challenge>("\"AB\"").is_err());
    }
}
