//! What a person types on the command line or at a prompt, parsed into the bank's vocabulary
//! (`paysim_wire`). Each refusal is an [`Error::BadInput`] that says what was wrong and what
//! to type instead; nothing has reached the card or the bank yet.

use crate::error::{Error, Result};
use paysim_wire::{AccountNumber, Challenge, Currency, CurrencyError, IdError, PayeeName, TransferId, UserName};
use std::str::FromStr;

fn id<T: FromStr<Err = IdError>>(text: &str) -> Result<T> {
    let t = text.trim();
    t.parse().map_err(|e: IdError| Error::BadInput(format!("bad {} {t:?}: use {}", e.what, e.rule)))
}

/// A user name (`a-z 0-9 . _ -`, 1-32 characters).
pub fn user(text: &str) -> Result<UserName> {
    id(text)
}

/// An account number (`A-Z 0-9 -`, 1-34 characters).
pub fn account(text: &str) -> Result<AccountNumber> {
    id(text)
}

/// The payee's name (trimmed, 1-70 characters, no control characters), as the bank checks
/// it against the account and the card signs it.
pub fn payee_name(text: &str) -> Result<PayeeName> {
    text.parse().map_err(|e: IdError| {
        Error::BadInput(format!("bad payee name: use {} (the name the payee's account is in)", e.rule))
    })
}

/// A transfer (transaction) id (`A-Z a-z 0-9 . _ ~ -`, 1-64 characters).
pub fn transfer_id(text: &str) -> Result<TransferId> {
    id(text)
}

/// A currency code; lower case is accepted and shown back upper-cased (which is what the card
/// signs).
pub fn currency(text: &str) -> Result<Currency> {
    Currency::parse_typed(text).map_err(|e| match e {
        CurrencyError::Unknown(code) => {
            Error::BadInput(format!("bad currency {text:?}: {code} is not an ISO 4217 code; give one such as EUR"))
        }
        _ => Error::BadInput(format!("bad currency {text:?}: give a three-letter ISO 4217 code such as EUR")),
    })
}

/// A decimal amount (`12.34`) in minor units of `currency`, exactly.
pub fn amount(text: &str, currency: Currency) -> Result<u64> {
    currency
        .parse_amount(text)
        .map_err(|e| Error::BadInput(format!("amount {text:?} {e}; write it like {}", currency.example())))
}

/// A challenge copied from the bank's page (hex, spaces and `-`/`:` allowed between digits).
pub fn challenge(text: &str) -> Result<Challenge> {
    Challenge::parse_typed(text).map_err(|e| Error::BadInput(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_says_what_to_type() {
        let eur = currency("eur").unwrap();
        assert_eq!(eur.as_str(), "EUR");
        for (text, why) in [
            ("", "empty"),
            ("-1", "only digits"),
            ("1,50", "only digits"),
            ("5.", "digits must follow"),
            ("12.345", "only 2 decimals"),
            ("0", "more than zero"),
            ("99999999999999999999999", "too large"),
        ] {
            let msg = amount(text, eur).unwrap_err().to_string();
            assert!(msg.contains(why) && msg.contains("write it like 12.34"), "{text}: {msg}");
        }
        let msg = amount("1.5", currency("JPY").unwrap()).unwrap_err().to_string();
        assert!(msg.contains("no decimals") && msg.contains("write it like 1234"), "{msg}");
        for bad in ["EU", "EURO", "E1R", "", "€UR", "ABC"] {
            assert!(matches!(currency(bad), Err(Error::BadInput(_))), "{bad}");
        }
        let msg = account("acc bob").unwrap_err().to_string();
        assert_eq!(msg, "bad account number \"acc bob\": use 1-34 characters of A-Z 0-9 -");
        assert!(transfer_id("a/b").unwrap_err().to_string().contains("1-64 characters of A-Z a-z 0-9 . _ ~ -"));
        assert!(user("Alice").is_err());
        assert!(challenge(&"ab".repeat(15)).unwrap_err().to_string().contains("32 to 64 hex digits"));
        assert_eq!(transfer_id(" tx-1 ").unwrap(), "tx-1");
    }
}
