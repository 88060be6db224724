//! The token file: what `bank-tools card personalize --out FILE` writes and `bank-tools
//! token enroll --token-file FILE` reads, the card's chain seed on its way from the
//! personalization station to the bank.
//!
//! ```json
//! {"format":"paysim-token-v1","serial":"PSIM-00000001","seed_hex":"<64 hex>","counter":0,"tx_version":2}
//! ```
//!
//! `tx_version` is the newest transaction-context version the card announced at
//! personalization (`DF08`, `docs/protocol.md`); a file without it was written for an
//! applet 1.0 card, which signs version 1 only.
//!
//! It holds a secret: written with mode 0600, shredded after enrollment. The parser keeps the
//! seed's digits in wiped memory and its errors never contain them.

use alloc::string::String;
use core::fmt;

use paysim_otp::{ChainKey, TxVersion};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::ids::CardSerial;

/// The `format` field.
pub const FORMAT: &str = "paysim-token-v1";

/// A parsed token file. `Debug` never shows the seed.
#[derive(Clone)]
pub struct TokenFile {
    pub serial: CardSerial,
    /// The chain seed `ck_0`.
    pub seed: ChainKey,
    /// The card's next counter when the file was written (normally 0).
    pub counter: u64,
    /// The newest transaction-context version the card signs.
    pub tx_version: TxVersion,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("serial", &self.serial)
            .field("seed", &"<secret>")
            .field("counter", &self.counter)
            .field("tx_version", &self.tx_version)
            .finish()
    }
}

/// The fields as written, borrowed from the caller's (wiped) text, so that the seed's hex
/// digits are never copied into memory that is not wiped.
#[derive(Deserialize)]
struct Raw<'a> {
    format: Option<&'a str>,
    serial: Option<&'a str>,
    seed_hex: Option<&'a str>,
    counter: Option<u64>,
    tx_version: Option<u8>,
}

impl TokenFile {
    /// Parses a token file's text; the error says what is wrong, never a secret.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let v: Raw<'_> = serde_json::from_str(text).map_err(|_| {
            "not valid JSON of the token format (strings without escapes, `counter` a non-negative integer)"
        })?;
        if v.format != Some(FORMAT) {
            return Err("`format` must be \"paysim-token-v1\"");
        }
        let serial = v.serial.ok_or("`serial` is missing")?;
        let serial: CardSerial = serial.parse().map_err(|_| "`serial` must be 1-16 characters of A-Z 0-9 -")?;
        let seed_hex = v.seed_hex.ok_or("`seed_hex` is missing")?;
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(seed_hex, seed.as_mut()).map_err(|_| "`seed_hex` must be 64 hex digits")?;
        let counter = v.counter.ok_or("`counter` must be a non-negative integer")?;
        let tx_version = match v.tx_version {
            None => TxVersion::V1,
            Some(n) => TxVersion::from_number(n).ok_or("`tx_version` must be 1 or 2")?,
        };
        Ok(TokenFile { serial, seed: ChainKey::from_bytes(*seed), counter, tx_version })
    }

    /// The file's text (pretty JSON and a newline), in wiped memory.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut seed_hex = Zeroizing::new(String::with_capacity(64));
        for b in self.seed.expose() {
            let _ = fmt::Write::write_fmt(&mut *seed_hex, format_args!("{b:02x}"));
        }
        let mut out = Zeroizing::new(String::with_capacity(160));
        let _ = fmt::Write::write_fmt(
            &mut *out,
            format_args!(
                "{{\n  \"format\": \"{FORMAT}\",\n  \"serial\": \"{}\",\n  \"seed_hex\": \"{}\",\n  \"counter\": {},\n  \"tx_version\": {}\n}}\n",
                self.serial,
                seed_hex.as_str(),
                self.counter,
                self.tx_version.number()
            ),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_and_refuse_garbage() {
        let ok = format!(
            r#"{{"format":"paysim-token-v1","serial":"PSIM-00000001","seed_hex":"{}","counter":0}}"#,
            "ab".repeat(32)
        );
        let t = TokenFile::parse(&ok).unwrap();
        assert_eq!(t.serial, "PSIM-00000001");
        assert_eq!(t.tx_version, TxVersion::V1, "a file without tx_version is an old card's");
        let v2 = TokenFile::parse(&ok.replace("\"counter\":0", "\"counter\":0,\"tx_version\":2")).unwrap();
        assert_eq!(v2.tx_version, TxVersion::V2);
        assert!(TokenFile::parse(&ok.replace("\"counter\":0", "\"counter\":0,\"tx_version\":3")).is_err());
        assert_eq!(t.seed.expose(), &[0xab; 32]);
        assert!(!format!("{t:?}").to_lowercase().contains("abab"));
        for bad in [
            "",
            "{}",
            r#"{"format":"other","serial":"A","seed_hex":"00","counter":0}"#,
            &ok.replace("PSIM-00000001", "psim"),
            &ok.replace(&"ab".repeat(32), "abcd"),
            &ok.replace("\"counter\":0", "\"counter\":-1"),
        ] {
            let e = TokenFile::parse(bad).unwrap_err();
            assert!(!e.contains("abab"), "{e}");
        }
    }

    #[test]
    fn written_text_reads_back_and_has_the_shared_shape() {
        let t = TokenFile {
            serial: "PSIM-00000001".parse().unwrap(),
            seed: ChainKey::from_bytes([0xAB; 32]),
            counter: 5,
            tx_version: TxVersion::V2,
        };
        let text = t.to_text();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["format"], "paysim-token-v1");
        assert_eq!(v["serial"], "PSIM-00000001");
        assert_eq!(v["seed_hex"], "ab".repeat(32));
        assert_eq!(v["counter"], 5);
        assert_eq!(v["tx_version"], 2);
        let back = TokenFile::parse(&text).unwrap();
        assert_eq!((back.serial, back.seed, back.counter, back.tx_version), (t.serial, t.seed, 5, TxVersion::V2));
    }
}
