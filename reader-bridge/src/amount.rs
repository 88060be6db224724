//! Money as the person types it ("12.34 EUR") and as the card signs it (1234, minor units).
//!
//! Parsing is exact decimal arithmetic on the digits: no floating point anywhere. The number
//! of decimals comes from the currency's ISO 4217 exponent.

use crate::error::{Error, Result};

/// A currency code: three ASCII upper-case letters, as the card signs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a currency code. Lower case is accepted and upper-cased (what is shown for
    /// confirmation is the upper-case code, which is what the card signs).
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let bytes: [u8; 3] = t.as_bytes().try_into().map_err(|_| bad_currency(text))?;
        if !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(bad_currency(text));
        }
        Ok(Currency(bytes.map(|b| b.to_ascii_uppercase())))
    }

    /// The three bytes the card signs.
    pub fn bytes(&self) -> &[u8; 3] {
        &self.0
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Number of decimals (ISO 4217 minor-unit exponent). Currencies not in the short lists of
    /// exceptions below use 2, which is ISO 4217's value for almost all of them.
    pub fn exponent(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
            | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn bad_currency(text: &str) -> Error {
    Error::BadInput(format!("bad currency {text:?}: give a three-letter ISO 4217 code such as EUR"))
}

/// Parses a decimal amount such as `12.34` into minor units of `currency` (1234 for EUR).
///
/// Accepted: digits, optionally a `.` followed by 1 up to `exponent` digits. Refused, each
/// with a message saying what to type instead: empty input, signs, spaces inside, commas,
/// exponents, more decimals than the currency has, zero, and amounts beyond `u64`.
pub fn parse_amount(text: &str, currency: Currency) -> Result<u64> {
    let t = text.trim();
    let exp = currency.exponent();
    let example = example(exp);
    let bad = |why: &str| Error::BadInput(format!("bad amount {text:?}: {why}; write it like {example}"));
    if t.is_empty() {
        return Err(bad("it is empty"));
    }
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (t, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("use only digits and one decimal point"));
    }
    let frac = match frac {
        None => "",
        Some("") => return Err(bad("digits must follow the decimal point")),
        Some(f) if !f.bytes().all(|b| b.is_ascii_digit()) => return Err(bad("use only digits and one decimal point")),
        Some(_) if exp == 0 => return Err(bad(&format!("{currency} has no decimals"))),
        Some(f) if f.len() > exp as usize => {
            return Err(bad(&format!("{currency} has only {exp} decimals")));
        }
        Some(f) => f,
    };
    let too_big = || bad("it is too large");
    let scale = 10u64.checked_pow(exp).ok_or_else(too_big)?;
    let whole: u64 = whole.parse().map_err(|_| too_big())?;
    let mut frac_minor: u64 = 0;
    for i in 0..exp as usize {
        let d = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
        frac_minor = frac_minor * 10 + d;
    }
    let minor = whole.checked_mul(scale).and_then(|w| w.checked_add(frac_minor)).ok_or_else(too_big)?;
    if minor == 0 {
        return Err(bad("it must be more than zero"));
    }
    Ok(minor)
}

/// Formats minor units for a person: `1234` EUR is `12.34`.
pub fn format_minor(minor: u64, currency: Currency) -> String {
    format_minor_exp(i128::from(minor), currency.exponent())
}

/// Formats a signed amount of minor units with `exp` decimals (`-1234`, 2 is `-12.34`).
pub fn format_minor_exp(minor: i128, exp: u32) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if exp == 0 {
        return format!("{sign}{abs}");
    }
    // The exponent may come from the bank's answer (`accounts`): one beyond what u128 can
    // scale (no currency has more than 4) is shown as it is instead of overflowing.
    let Some(scale) = 10u128.checked_pow(exp) else {
        return format!("{sign}{abs} minor units (exponent {exp})");
    };
    format!("{sign}{}.{:0width$}", abs / scale, abs % scale, width = exp as usize)
}

fn example(exp: u32) -> String {
    match exp {
        0 => "1234".to_owned(),
        e => format!("12.{}", &"3456"[..e.min(4) as usize]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cur(c: &str) -> Currency {
        Currency::parse(c).unwrap()
    }

    #[test]
    fn parses_exactly_by_exponent() {
        let table: &[(&str, &str, u64)] = &[
            ("12.34", "EUR", 1234),
            ("12.3", "EUR", 1230),
            ("12", "EUR", 1200),
            ("0.01", "EUR", 1),
            (" 7.05 ", "EUR", 705),
            ("0.1", "EUR", 10),
            ("1234", "JPY", 1234),
            ("1.234", "KWD", 1234),
            ("1.2", "KWD", 1200),
            ("184467440737095516.15", "EUR", u64::MAX),
            // 0.29 * 100 is 28.999999999999996 in binary floating point: exact here.
            ("0.29", "EUR", 29),
            ("1.1", "USD", 110),
        ];
        for (text, c, want) in table {
            assert_eq!(parse_amount(text, cur(c)).unwrap(), *want, "{text} {c}");
        }
    }

    #[test]
    fn refuses_bad_amounts_with_a_message() {
        let table: &[(&str, &str, &str)] = &[
            ("", "EUR", "empty"),
            ("-1", "EUR", "only digits"),
            ("+1", "EUR", "only digits"),
            ("1,50", "EUR", "only digits"),
            ("1e3", "EUR", "only digits"),
            ("1.2.3", "EUR", "only digits"),
            (".5", "EUR", "only digits"),
            ("5.", "EUR", "digits must follow"),
            ("1 000", "EUR", "only digits"),
            ("12.345", "EUR", "only 2 decimals"),
            ("1.5", "JPY", "no decimals"),
            ("0", "EUR", "more than zero"),
            ("0.00", "EUR", "more than zero"),
            ("184467440737095516.16", "EUR", "too large"),
            ("99999999999999999999999", "EUR", "too large"),
            ("١٢", "EUR", "only digits"),
        ];
        for (text, c, why) in table {
            let err = parse_amount(text, cur(c)).unwrap_err();
            assert!(matches!(err, Error::BadInput(_)), "{text}");
            let msg = err.to_string();
            assert!(msg.contains(why), "{text}: {msg}");
            assert!(msg.contains("write it like"), "{text}: {msg}");
        }
    }

    #[test]
    fn currency_codes() {
        assert_eq!(cur("eur").as_str(), "EUR");
        assert_eq!(cur("EUR").bytes(), b"EUR");
        for bad in ["EU", "EURO", "E1R", "", "€UR"] {
            assert!(matches!(Currency::parse(bad), Err(Error::BadInput(_))), "{bad}");
        }
        assert_eq!(cur("JPY").exponent(), 0);
        assert_eq!(cur("BHD").exponent(), 3);
        assert_eq!(cur("CHF").exponent(), 2);
    }

    #[test]
    fn formats_round_trip() {
        for (text, c) in [("12.34", "EUR"), ("0.05", "EUR"), ("1234", "JPY"), ("1.234", "KWD"), ("1.000", "KWD")] {
            let minor = parse_amount(text, cur(c)).unwrap();
            assert_eq!(format_minor(minor, cur(c)), text);
        }
        assert_eq!(format_minor_exp(-1234, 2), "-12.34");
        assert_eq!(format_minor_exp(-5, 2), "-0.05");
        assert_eq!(format_minor_exp(0, 0), "0");
    }

    #[test]
    fn an_absurd_exponent_from_the_bank_is_shown_not_a_panic() {
        // The exponent of `accounts` comes from the bank's answer: 10^39 does not fit in u128.
        assert_eq!(
            format_minor_exp(i128::from(i64::MIN), 38),
            format!("-0.{:038}", i128::from(i64::MIN).unsigned_abs())
        );
        for exp in [39, 100, u32::MAX] {
            let text = format_minor_exp(-1234, exp);
            assert_eq!(text, format!("-1234 minor units (exponent {exp})"));
        }
    }
}
