//! The operator's side of the bank: what `bank-tools user|token|account|audit` need on top of
//! [`bank_server::ops`], which does the work (each call opens the database, runs one
//! `BEGIN IMMEDIATE` transaction and writes the audit log, so it is safe while the server runs).
//!
//! - [`check_db`]: refuse a database path that does not exist (a typo would otherwise create
//!   a second, empty bank with its own master key).
//! - [`parse_amount`]: a decimal amount typed by a person ("12.34") to exact minor units by the
//!   currency's ISO 4217 exponent (`paysim_wire::Currency::parse_amount`), within the bank's
//!   limit for one funding.
//! - [`account_currency`]: the currency an account is kept in, so `account fund` can check the
//!   currency the operator typed before any money moves.

use std::path::Path;

use paysim_wire::{AmountError, Currency, MAX_AMOUNT};

/// Converts `text` in major units ("12.34", "12", "0.5") to minor units of `currency`
/// exactly: EUR "12.34" is 1234, JPY "500" is 500, EUR "12.345" and JPY "1.5" are refused, and
/// so is anything above [`MAX_AMOUNT`] minor units.
pub fn parse_amount(text: &str, currency: Currency) -> Result<u64, AmountError> {
    let minor = currency.parse_amount(text)?;
    if minor > MAX_AMOUNT {
        return Err(AmountError::TooLarge);
    }
    Ok(minor)
}

/// `minor` units of `currency` written in major units, with the code: "12.34 EUR".
pub fn show_amount(minor: i64, currency: Currency) -> String {
    format!("{} {currency}", currency.format_minor(minor))
}

/// Problems with the database path.
#[derive(Debug, thiserror::Error)]
pub enum DbPathError {
    #[error(
        "database {} does not exist; start `bank-server serve --db {}` once to create it, \
         or pass --create-db if you mean to make a new bank",
        .0.display(),
        .0.display()
    )]
    Missing(std::path::PathBuf),
    #[error("database {}: {source}", .path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// Refuses a database that does not exist unless `create` is set (the bank's operator
/// functions would otherwise create an empty one, with a new master key, at a mistyped path).
pub fn check_db(path: &Path, create: bool) -> Result<(), DbPathError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if create {
                Ok(())
            } else {
                Err(DbPathError::Missing(path.to_owned()))
            }
        }
        Err(source) => Err(DbPathError::Io { path: path.to_owned(), source }),
    }
}

/// The currency customer account `number` is kept in, or `None` if there is no such account.
/// Asks the ledger through `bank_server::ops::account`: the ledger's tables stay its own.
pub fn account_currency(db: &Path, number: &str) -> Result<Option<Currency>, bank_server::ops::OpsError> {
    Ok(bank_server::ops::account(db, number)?.map(|(account, _owner)| account.currency))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        Currency::parse_kept(code).unwrap()
    }

    #[test]
    fn amounts_convert_exactly_by_exponent() {
        for (text, c, minor) in [
            ("12.34", "EUR", 1234),
            ("12.3", "EUR", 1230),
            ("12", "EUR", 1200),
            ("0.01", "EUR", 1),
            (" 7.50 ", "usd", 750),
            ("500", "JPY", 500),
            ("0.10", "CHF", 10),
            ("1000000.00", "GBP", 100_000_000),
        ] {
            assert_eq!(parse_amount(text, cur(c)), Ok(minor), "{text} {c}");
        }
    }

    #[test]
    fn bad_amounts_say_why() {
        use AmountError::*;
        type Check = fn(&AmountError) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("12.345", "EUR", |e| matches!(e, TooManyDecimals { got: 3, .. })),
            ("1.5", "JPY", |e| matches!(e, TooManyDecimals { got: 1, .. })),
            ("-5", "EUR", |e| matches!(e, Negative)),
            ("-0.01", "EUR", |e| matches!(e, Negative)),
            ("0", "EUR", |e| matches!(e, Zero)),
            ("0.00", "EUR", |e| matches!(e, Zero)),
            ("", "EUR", |e| matches!(e, Empty)),
            ("12.", "EUR", |e| matches!(e, NoDigitsAfterPoint)),
            (".5", "EUR", |e| matches!(e, NotANumber { .. })),
            ("1,000", "EUR", |e| matches!(e, NotANumber { .. })),
            ("1e3", "EUR", |e| matches!(e, NotANumber { .. })),
            ("+5", "EUR", |e| matches!(e, NotANumber { .. })),
            ("1.2.3", "EUR", |e| matches!(e, NotANumber { .. })),
            ("99999999999999999999", "EUR", |e| matches!(e, TooLarge)),
            // Above the bank's limit for one funding, though it fits in 64 bits.
            ("10000000000000.01", "EUR", |e| matches!(e, TooLarge)),
        ];
        for (text, c, want) in cases {
            let e = parse_amount(text, cur(c)).unwrap_err();
            assert!(want(&e), "{text:?} {c}: {e:?}");
        }
        let msg = parse_amount("12.345", cur("EUR")).unwrap_err().to_string();
        assert!(msg.contains("3 decimals") && msg.contains("EUR has 2"), "{msg}");
        for code in ["XYZ", "EURO", "SEK"] {
            let msg = Currency::parse_kept(code).unwrap_err().to_string();
            assert!(msg.contains("EUR, USD, GBP, CHF, JPY"), "{msg}");
        }
        assert_eq!(parse_amount("10000000000000.00", cur("EUR")), Ok(MAX_AMOUNT));
    }

    #[test]
    fn amounts_show_in_major_units() {
        assert_eq!(show_amount(1234, cur("EUR")), "12.34 EUR");
        assert_eq!(show_amount(5, cur("JPY")), "5 JPY");
    }

    #[test]
    fn a_missing_database_is_refused_unless_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope.sqlite3");
        let e = check_db(&p, false).unwrap_err().to_string();
        assert!(e.contains("does not exist") && e.contains("--create-db"), "{e}");
        check_db(&p, true).unwrap();
        std::fs::write(&p, b"").unwrap();
        check_db(&p, false).unwrap();
    }
}
