//! The operator's side of the bank: what `bank-tools user|token|account|audit` need on top of
//! [`bank_server::ops`], which does the work (each call opens the database, runs one
//! `BEGIN IMMEDIATE` transaction and writes the audit log, so it is safe while the server runs).
//!
//! - [`check_db`]: refuse a database path that does not exist (a typo would otherwise create
//!   a second, empty bank with its own master key).
//! - [`parse_amount`]: a decimal amount typed by a person ("12.34") to exact minor units by the
//!   currency's ISO 4217 exponent, with an error that says what is wrong. No floats.
//! - [`account_currency`]: the currency an account is kept in, so `account fund` can check the
//!   currency the operator typed before any money moves.

use std::path::Path;

use paysim_wire::money::KEPT_BY_BANK;
use paysim_wire::{Currency, MAX_AMOUNT};

/// Why an amount typed on the command line is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("currency {0:?} is not one the bank keeps ({list})", list = currency_list())]
    UnknownCurrency(String),
    #[error("amount {0:?} is negative; amounts are positive (money only enters by funding)")]
    Negative(String),
    #[error("amount {0:?} is zero; it must be more than zero")]
    Zero(String),
    #[error("amount {text:?} has {got} decimals, but {currency} has {max} (its minor unit is 1/{unit})")]
    TooManyDecimals { text: String, currency: String, got: usize, max: u32, unit: u64 },
    #[error(
        "amount {0:?} is not a decimal number like 12.34 (digits, at most one '.', no sign, no thousands separator)"
    )]
    NotANumber(String),
    #[error("amount {0:?} is too large (at most {max} minor units)", max = MAX_AMOUNT)]
    TooLarge(String),
}

fn currency_list() -> String {
    KEPT_BY_BANK.join(", ")
}

/// A currency code as typed ("eur", " EUR ") made canonical, if the bank keeps it.
pub fn currency(text: &str) -> Result<String, AmountError> {
    kept(text).map(|c| c.as_str().to_owned())
}

fn kept(text: &str) -> Result<Currency, AmountError> {
    Currency::parse_kept(text).map_err(|_| AmountError::UnknownCurrency(text.to_owned()))
}

/// Converts `text` in major units ("12.34", "12", "0.5") to minor units of `currency`
/// exactly: EUR "12.34" is 1234, JPY "500" is 500, EUR "12.345" and JPY "1.5" are refused.
/// The conversion itself is [`Currency::parse_amount`]; this adds the reason.
pub fn parse_amount(text: &str, currency: &str) -> Result<u64, AmountError> {
    let cur = kept(currency)?;
    let code = cur.as_str().to_owned();
    let max = cur.exponent();
    let t = text.trim();
    if t.starts_with('-') {
        return Err(AmountError::Negative(text.to_owned()));
    }
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (t.contains('.') && frac.is_empty()) {
        return Err(AmountError::NotANumber(text.to_owned()));
    }
    if frac.len() > max as usize {
        return Err(AmountError::TooManyDecimals {
            text: text.to_owned(),
            currency: code,
            got: frac.len(),
            max,
            unit: 10u64.pow(max),
        });
    }
    if int.bytes().chain(frac.bytes()).all(|b| b == b'0') {
        return Err(AmountError::Zero(text.to_owned()));
    }
    cur.parse_amount(t).ok().filter(|v| *v <= MAX_AMOUNT).ok_or_else(|| AmountError::TooLarge(text.to_owned()))
}

/// `minor` units of `currency` written in major units, with the code: "12.34 EUR".
pub fn show_amount(minor: i64, currency: &str) -> String {
    let shown = currency.parse::<Currency>().map_or_else(|_| minor.to_string(), |c| c.format_minor(minor));
    format!("{shown} {currency}")
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
pub fn account_currency(db: &Path, number: &str) -> Result<Option<String>, bank_server::ops::OpsError> {
    Ok(bank_server::ops::account(db, number)?.map(|(account, _owner)| account.currency.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn amounts_convert_exactly_by_exponent() {
        for (text, cur, minor) in [
            ("12.34", "EUR", 1234),
            ("12.3", "EUR", 1230),
            ("12", "EUR", 1200),
            ("0.01", "EUR", 1),
            (" 7.50 ", "usd", 750),
            ("500", "JPY", 500),
            ("0.10", "CHF", 10),
            ("1000000.00", "GBP", 100_000_000),
        ] {
            assert_eq!(parse_amount(text, cur), Ok(minor), "{text} {cur}");
        }
    }

    #[test]
    fn bad_amounts_say_why() {
        use AmountError::*;
        type Check = fn(&AmountError) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("12.345", "EUR", |e| matches!(e, TooManyDecimals { got: 3, max: 2, .. })),
            ("1.5", "JPY", |e| matches!(e, TooManyDecimals { got: 1, max: 0, .. })),
            ("-5", "EUR", |e| matches!(e, Negative(_))),
            ("-0.01", "EUR", |e| matches!(e, Negative(_))),
            ("0", "EUR", |e| matches!(e, Zero(_))),
            ("0.00", "EUR", |e| matches!(e, Zero(_))),
            ("", "EUR", |e| matches!(e, NotANumber(_))),
            ("12.", "EUR", |e| matches!(e, NotANumber(_))),
            (".5", "EUR", |e| matches!(e, NotANumber(_))),
            ("1,000", "EUR", |e| matches!(e, NotANumber(_))),
            ("1e3", "EUR", |e| matches!(e, NotANumber(_))),
            ("+5", "EUR", |e| matches!(e, NotANumber(_))),
            ("1.2.3", "EUR", |e| matches!(e, NotANumber(_))),
            ("99999999999999999999", "EUR", |e| matches!(e, TooLarge(_))),
            ("5", "XYZ", |e| matches!(e, UnknownCurrency(_))),
            ("5", "EURO", |e| matches!(e, UnknownCurrency(_))),
        ];
        for (text, cur, want) in cases {
            let e = parse_amount(text, cur).unwrap_err();
            assert!(want(&e), "{text:?} {cur}: {e:?}");
        }
        let msg = parse_amount("12.345", "EUR").unwrap_err().to_string();
        assert!(msg.contains("3 decimals") && msg.contains("EUR has 2"), "{msg}");
        let msg = parse_amount("5", "XYZ").unwrap_err().to_string();
        assert!(msg.contains("EUR, USD, GBP, CHF, JPY"), "{msg}");
    }

    #[test]
    fn amounts_show_in_major_units() {
        assert_eq!(show_amount(1234, "EUR"), "12.34 EUR");
        assert_eq!(show_amount(5, "JPY"), "5 JPY");
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
