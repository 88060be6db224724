//! What a person types into the website's forms, read into types, and the sentences that say
//! what to type instead. The pages ([`super::pages`]) show each sentence beside its field.
//!
//! - [`TypedAmount`]: an amount with `.` or `,` as the decimal sign (`12,34` is 1234 cents), in
//!   the currency's decimals; a wrong number of decimals is explained with the currency's
//!   ISO 4217 exponent ("EUR has 2 decimals").
//! - [`utc_time`]: a Unix time as the date and time a customer reads (`2026-12-02 06:31 UTC`).

use paysim_wire::{AmountError, Currency, MAX_AMOUNT};

/// An amount of money in minor units, as typed on a form: more than zero, at most
/// [`MAX_AMOUNT`], in the decimals of its currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypedAmount {
    pub minor: u64,
    pub currency: Currency,
}

impl TypedAmount {
    /// Reads `text` in `currency`: digits with at most one decimal sign, `.` or `,`; spaces
    /// around it are ignored. No sign, no thousands separator.
    pub fn parse(text: &str, currency: Currency) -> Result<TypedAmount, AmountProblem> {
        let t = text.trim();
        let points = t.matches('.').count();
        let commas = t.matches(',').count();
        // One comma and no point is the decimal comma; anything else with a comma is not a
        // number this form reads (a thousands separator, or two signs).
        let normal = match (points, commas) {
            (_, 0) => t.to_owned(),
            (0, 1) => t.replace(',', "."),
            _ => return Err(AmountProblem::NotANumber),
        };
        let minor = currency.parse_amount(&normal).map_err(|e| match e {
            AmountError::Empty => AmountProblem::Empty,
            AmountError::Negative => AmountProblem::Negative,
            AmountError::NotANumber { .. } => AmountProblem::NotANumber,
            AmountError::NoDigitsAfterPoint => AmountProblem::NoDigitsAfterSign,
            AmountError::TooManyDecimals { got, .. } => AmountProblem::TooManyDecimals { got },
            AmountError::Zero => AmountProblem::Zero,
            AmountError::TooLarge => AmountProblem::TooLarge,
        })?;
        if minor > MAX_AMOUNT {
            return Err(AmountProblem::TooLarge);
        }
        Ok(TypedAmount { minor, currency })
    }
}

/// Why a typed amount was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountProblem {
    Empty,
    Negative,
    NotANumber,
    NoDigitsAfterSign,
    TooManyDecimals { got: usize },
    Zero,
    TooLarge,
}

impl AmountProblem {
    /// The sentence beside the amount field, for an amount in `currency`.
    pub fn message(self, currency: Currency) -> String {
        let example = currency.example();
        let comma = example.replace('.', ",");
        match self {
            AmountProblem::Empty => format!("Type the amount, like {example}."),
            AmountProblem::Negative => format!("Type the amount without a sign, like {example}."),
            AmountProblem::NotANumber if currency.exponent() == 0 => {
                format!("Type the amount in digits, like {example} (no thousands separator).")
            }
            AmountProblem::NotANumber => format!(
                "Type the amount in digits with one decimal sign, like {example} or {comma} (no thousands separator)."
            ),
            AmountProblem::NoDigitsAfterSign => format!("Digits must follow the decimal sign, like {example}."),
            AmountProblem::TooManyDecimals { got } => decimals(currency, got),
            AmountProblem::Zero => "The amount must be more than zero.".to_owned(),
            AmountProblem::TooLarge => format!(
                "That is more than the bank moves in one transfer (at most {} {currency}).",
                currency.format_minor(MAX_AMOUNT)
            ),
        }
    }
}

fn decimals(currency: Currency, got: usize) -> String {
    let typed = if got == 1 { "1 decimal".to_owned() } else { format!("{got} decimals") };
    match currency.exponent() {
        0 => {
            format!("{currency} has no decimals: type a whole number, like {} (you typed {typed}).", currency.example())
        }
        1 => format!("{currency} has 1 decimal: you typed {typed}. Type it like {}.", currency.example()),
        n => format!("{currency} has {n} decimals: you typed {typed}. Type it like {}.", currency.example()),
    }
}

/// A Unix time in UTC as a customer reads it (`2026-12-02 06:31 UTC`), and the same instant for
/// a `<time datetime>` attribute (`2026-12-02T06:31:20Z`).
pub fn utc_time(unix: i64) -> (String, String) {
    let (y, m, d, hh, mm, ss) = paysim_wire::time::utc_parts(unix);
    (format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC"), format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(c: &str) -> Currency {
        c.parse().unwrap()
    }

    #[test]
    fn amounts_with_a_decimal_point_or_comma() {
        for (text, c, minor) in [
            ("12.34", "EUR", 1234),
            ("12,34", "EUR", 1234),
            (" 12,3 ", "EUR", 1230),
            ("12", "EUR", 1200),
            ("0,01", "EUR", 1),
            ("1234", "JPY", 1234),
            ("1,234", "KWD", 1234),
            ("1.5", "CHF", 150),
            ("10000000000000.00", "EUR", MAX_AMOUNT),
        ] {
            assert_eq!(TypedAmount::parse(text, cur(c)), Ok(TypedAmount { minor, currency: cur(c) }), "{text} {c}");
        }
    }

    #[test]
    fn each_refusal_says_what_to_type() {
        use AmountProblem::*;
        let eur = cur("EUR");
        for (text, c, want) in [
            ("", "EUR", Empty),
            ("  ", "EUR", Empty),
            ("-1", "EUR", Negative),
            ("1.234,56", "EUR", NotANumber),
            ("1,234.56", "EUR", NotANumber),
            ("1,2,3", "EUR", NotANumber),
            ("1 000", "EUR", NotANumber),
            ("twelve", "EUR", NotANumber),
            ("1e3", "EUR", NotANumber),
            ("5,", "EUR", NoDigitsAfterSign),
            ("1,234", "EUR", TooManyDecimals { got: 3 }),
            ("12.345", "EUR", TooManyDecimals { got: 3 }),
            ("1,5", "JPY", TooManyDecimals { got: 1 }),
            ("0", "EUR", Zero),
            ("0,00", "EUR", Zero),
            ("10000000000000.01", "EUR", TooLarge),
            ("99999999999999999999999", "EUR", TooLarge),
        ] {
            assert_eq!(TypedAmount::parse(text, cur(c)), Err(want), "{text:?} {c}");
        }
        assert_eq!(
            TooManyDecimals { got: 3 }.message(eur),
            "EUR has 2 decimals: you typed 3 decimals. Type it like 12.34."
        );
        assert_eq!(
            TooManyDecimals { got: 1 }.message(cur("JPY")),
            "JPY has no decimals: type a whole number, like 1234 (you typed 1 decimal)."
        );
        assert!(TooManyDecimals { got: 4 }.message(cur("KWD")).starts_with("KWD has 3 decimals"));
        assert!(NotANumber.message(eur).contains("like 12.34 or 12,34"), "{}", NotANumber.message(eur));
        assert!(!NotANumber.message(cur("JPY")).contains("decimal sign"));
        assert!(TooLarge.message(eur).contains("10000000000000.00 EUR"));
    }

    #[test]
    fn no_typed_amount_panics() {
        for text in ["", ",", ".", ",,", "..", "١٢,٣", "9".repeat(400).as_str(), "1,٣", "\u{0}"] {
            let _ = TypedAmount::parse(text, cur("EUR"));
        }
    }

    #[test]
    fn times_read_in_utc() {
        assert_eq!(utc_time(0), ("1970-01-01 00:00 UTC".into(), "1970-01-01T00:00:00Z".into()));
        // 2026-12-02 06:31:20 UTC.
        assert_eq!(utc_time(1_796_193_080), ("2026-12-02 06:31 UTC".into(), "2026-12-02T06:31:20Z".into()));
        // The leap day of a year divisible by 400, and the day after it.
        assert_eq!(utc_time(951_782_400).0, "2000-02-29 00:00 UTC");
        assert_eq!(utc_time(951_868_799).0, "2000-02-29 23:59 UTC");
        assert_eq!(utc_time(-1).1, "1969-12-31T23:59:59Z");
    }
}
