//! People's names: the name of an account's holder, as the bank keeps it, and the payee's
//! name a payer types when starting a transfer. Both are a [`PayeeName`]: one rule for both
//! sides of verification of payee.
//!
//! The rule (`docs/bank.md`, "Verification of payee"):
//!
//! - leading and trailing white space is removed (`" Bob "` is `"Bob"`); what remains is what
//!   the bank stores and the card signs, byte for byte (UTF-8);
//! - 1 to 70 characters (Unicode scalar values). 70 is the SEPA limit for a party's name: the
//!   `Nm` element of ISO 20022 `pacs.008`/`pain.001` under the EPC's SEPA Credit Transfer
//!   implementation guidelines (`Max70Text`);
//! - no control characters (Unicode `Cc`: C0, DEL, C1) and no bidirectional formatting
//!   characters (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), which would let a name
//!   display as something other than its bytes (the "Trojan Source" trick, CVE-2021-42574).

use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::IdError;

/// A holder's or payee's name: trimmed, 1-70 characters, no control or bidi characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PayeeName(String);

impl PayeeName {
    /// Longest name, in characters.
    pub const MAX_CHARS: usize = 70;
    /// Longest name in bytes of UTF-8 (70 characters of 4 bytes).
    pub const MAX_BYTES: usize = 4 * Self::MAX_CHARS;
    /// What the type is called in messages.
    pub const WHAT: &'static str = "payee name";
    /// The rule, as messages state it.
    pub const RULE: &'static str = "1-70 characters, without control characters";

    /// Whether `text`, once trimmed, follows the rule.
    pub fn is_valid(text: &str) -> bool {
        let t = text.trim();
        let n = t.chars().count();
        (1..=Self::MAX_CHARS).contains(&n) && !t.chars().any(forbidden)
    }

    /// The name as stored and signed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn error() -> IdError {
        IdError { what: Self::WHAT, rule: Self::RULE }
    }
}

fn forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl FromStr for PayeeName {
    type Err = IdError;
    fn from_str(text: &str) -> Result<Self, IdError> {
        if Self::is_valid(text) {
            Ok(Self(text.trim().into()))
        } else {
            Err(Self::error())
        }
    }
}

impl fmt::Display for PayeeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PayeeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for PayeeName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PayeeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(" Bob  Müller ".parse::<PayeeName>().unwrap().as_str(), "Bob  Müller");
        assert!(PayeeName::is_valid(&"é".repeat(70)));
        assert_eq!("é".repeat(70).parse::<PayeeName>().unwrap().as_str().len(), 140);
        for bad in ["", "   ", "a\nb", "a\u{7f}", "a\u{85}b", "evil\u{202E}txt", "x\u{2066}", &"a".repeat(71)] {
            assert!(bad.parse::<PayeeName>().is_err(), "{bad:?}");
        }
        let e = "a\tb".parse::<PayeeName>().unwrap_err().to_string();
        assert!(e.contains("1-70 characters") && !e.contains("a\tb"), "{e}");
        assert!(serde_json::from_str::<PayeeName>("\"\"").is_err());
        assert_eq!(serde_json::from_str::<PayeeName>("\" Ana \"").unwrap().as_str(), "Ana");
    }
}
