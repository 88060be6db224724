//! Currencies and amounts. Money is an integer count of minor units (cents for EUR, yen for
//! JPY, fils for KWD); text like `12.34` is converted by exact decimal arithmetic on the
//! digits, never through floating point. The number of decimals is the currency's ISO 4217
//! minor-unit exponent.

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest amount of one transfer or one funding, in minor units (10^15; the ledger also caps
/// balances so that every sum stays inside a 64-bit integer).
pub const MAX_AMOUNT: u64 = 1_000_000_000_000_000;

/// ISO 4217 codes in use (list one, 2025) with their minor-unit exponent. The standard gives
/// the metals, fund and testing codes (`XAU`, `XDR`, `XTS`, ...) no minor unit ("N.A."): they
/// are listed with 0, so they are codes the bank can name and refuse, not malformed text.
#[rustfmt::skip]
const ISO_4217: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2), ("AUD", 2),
    ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2), ("BHD", 3), ("BIF", 0),
    ("BMD", 2), ("BND", 2), ("BOB", 2), ("BOV", 2), ("BRL", 2), ("BSD", 2), ("BTN", 2), ("BWP", 2),
    ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2), ("CHE", 2), ("CHF", 2), ("CHW", 2), ("CLF", 4),
    ("CLP", 0), ("CNY", 2), ("COP", 2), ("COU", 2), ("CRC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2),
    ("DJF", 0), ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2), ("EUR", 2),
    ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2), ("GMD", 2), ("GNF", 0),
    ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HTG", 2), ("HUF", 2), ("IDR", 2), ("ILS", 2),
    ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0), ("JMD", 2), ("JOD", 3), ("JPY", 0), ("KES", 2),
    ("KGS", 2), ("KHR", 2), ("KMF", 0), ("KPW", 2), ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2),
    ("LAK", 2), ("LBP", 2), ("LKR", 2), ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2),
    ("MGA", 2), ("MKD", 2), ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2),
    ("MWK", 2), ("MXN", 2), ("MXV", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2), ("NIO", 2),
    ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2), ("PGK", 2), ("PHP", 2),
    ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2), ("RSD", 2), ("RUB", 2), ("RWF", 0),
    ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2), ("SEK", 2), ("SGD", 2), ("SHP", 2), ("SLE", 2),
    ("SOS", 2), ("SRD", 2), ("SSP", 2), ("STN", 2), ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2),
    ("TJS", 2), ("TMT", 2), ("TND", 3), ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2),
    ("UAH", 2), ("UGX", 0), ("USD", 2), ("USN", 2), ("UYI", 0), ("UYU", 2), ("UYW", 4), ("UZS", 2),
    ("VED", 2), ("VES", 2), ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0), ("XAG", 0), ("XAU", 0),
    ("XBA", 0), ("XBB", 0), ("XBC", 0), ("XBD", 0), ("XCD", 2), ("XCG", 2), ("XDR", 0), ("XOF", 0),
    ("XPD", 0), ("XPF", 0), ("XPT", 0), ("XSU", 0), ("XTS", 0), ("XUA", 0), ("XXX", 0), ("YER", 2),
    ("ZAR", 2), ("ZMW", 2), ("ZWG", 2),
];

/// The currencies the bank keeps accounts in.
pub const KEPT_BY_BANK: &[&str] = &["EUR", "USD", "GBP", "CHF", "JPY"];

/// A currency: an ISO 4217 code from the table, as the card signs it (three upper-case ASCII
/// letters).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// Why a currency code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("a currency is a three-letter ISO 4217 code such as EUR")]
    Malformed,
    #[error("{0} is not an ISO 4217 currency code")]
    Unknown(String),
    #[error("currency {0:?} is not one the bank keeps ({list})", list = KEPT_BY_BANK.join(", "))]
    NotKept(String),
}

impl Currency {
    /// A code exactly as the API and the card write it: three upper-case letters, in the table.
    fn from_code(code: &str) -> Result<Self, CurrencyError> {
        let bytes: [u8; 3] = code.as_bytes().try_into().map_err(|_| CurrencyError::Malformed)?;
        if !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(CurrencyError::Malformed);
        }
        ISO_4217
            .iter()
            .find(|(c, _)| c.as_bytes() == bytes)
            .map(|(_, e)| Currency { code: bytes, exponent: *e })
            .ok_or_else(|| CurrencyError::Unknown(code.into()))
    }

    /// A code as a person types it: surrounding spaces and lower case are accepted (what is
    /// shown back, and signed, is the upper-case code).
    pub fn parse_typed(text: &str) -> Result<Self, CurrencyError> {
        let t = text.trim();
        if t.len() != 3 || !t.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(CurrencyError::Malformed);
        }
        Self::from_code(&t.to_ascii_uppercase())
    }

    /// [`Currency::parse_typed`], and the bank must keep it.
    pub fn parse_kept(text: &str) -> Result<Self, CurrencyError> {
        let c = Self::parse_typed(text).map_err(|_| CurrencyError::NotKept(text.into()))?;
        if c.kept_by_bank() {
            Ok(c)
        } else {
            Err(CurrencyError::NotKept(text.into()))
        }
    }

    /// The three letters.
    pub fn as_str(&self) -> &str {
        // Only upper-case ASCII letters are ever stored.
        core::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// The three bytes the card signs.
    pub fn as_bytes(&self) -> &[u8; 3] {
        &self.code
    }

    /// Number of decimals (the ISO 4217 minor-unit exponent).
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }

    /// Whether the bank keeps accounts in this currency.
    pub fn kept_by_bank(&self) -> bool {
        KEPT_BY_BANK.contains(&self.as_str())
    }

    /// Parses a decimal amount in major units (`12.34`, `12`, `0.5`) into minor units:
    /// digits, optionally one `.` followed by 1 to [`Currency::exponent`] digits, more than
    /// zero, at most `u64::MAX` minor units. Spaces around it are ignored.
    pub fn parse_amount(&self, text: &str) -> Result<u64, AmountError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(AmountError::Empty);
        }
        if t.starts_with('-') {
            return Err(AmountError::Negative);
        }
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (t, None),
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) {
            return Err(AmountError::NotANumber { currency: *self });
        }
        let frac = match frac {
            None => "",
            Some("") => return Err(AmountError::NoDigitsAfterPoint),
            Some(f) if !digits(f) => return Err(AmountError::NotANumber { currency: *self }),
            Some(f) => f,
        };
        let exp = self.exponent();
        if frac.len() > exp as usize {
            return Err(AmountError::TooManyDecimals { currency: *self, got: frac.len() });
        }
        let scale = 10u64.pow(exp);
        let whole: u64 = whole.parse().map_err(|_| AmountError::TooLarge)?;
        let mut frac_minor: u64 = 0;
        for i in 0..exp as usize {
            let d = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
            frac_minor = frac_minor * 10 + d;
        }
        let minor = whole.checked_mul(scale).and_then(|w| w.checked_add(frac_minor)).ok_or(AmountError::TooLarge)?;
        if minor == 0 {
            return Err(AmountError::Zero);
        }
        Ok(minor)
    }

    /// Writes minor units in major units: `1234` EUR is `12.34`, `-5` EUR is `-0.05`.
    pub fn format_minor(&self, minor: impl Into<i128>) -> String {
        let minor: i128 = minor.into();
        let sign = if minor < 0 { "-" } else { "" };
        let abs = minor.unsigned_abs();
        let exp = self.exponent();
        if exp == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10u128.pow(exp);
        format!("{sign}{}.{:0width$}", abs / scale, abs % scale, width = exp as usize)
    }

    /// An example amount with this currency's decimals, for messages (`12.34`, `1234`).
    pub fn example(&self) -> &'static str {
        match self.exponent {
            0 => "1234",
            1 => "12.3",
            2 => "12.34",
            3 => "12.345",
            _ => "12.3456",
        }
    }
}

impl FromStr for Currency {
    type Err = CurrencyError;
    /// Exactly three upper-case letters of a code in the table (the API's form).
    fn from_str(text: &str) -> Result<Self, CurrencyError> {
        Self::from_code(text)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|_| serde::de::Error::custom("currency must be 3 upper-case letters of an ISO 4217 code"))
    }
}

/// Why an amount was refused. Each message reads after the amount itself (`amount "-5" is
/// negative: ...`) and says what to type instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("is empty")]
    Empty,
    #[error("is negative: use only digits and one decimal point (amounts have no sign; money only enters an account by funding)")]
    Negative,
    #[error("is not a decimal number like {}: use only digits and one decimal point (no sign, no thousands separator)", .currency.example())]
    NotANumber { currency: Currency },
    #[error("ends in a decimal point: digits must follow the decimal point")]
    NoDigitsAfterPoint,
    #[error("{}", decimals_message(*currency, *got))]
    TooManyDecimals { currency: Currency, got: usize },
    #[error("is zero: it must be more than zero")]
    Zero,
    #[error("is too large")]
    TooLarge,
}

fn decimals_message(currency: Currency, got: usize) -> String {
    let plural = if got == 1 { "" } else { "s" };
    match currency.exponent() {
        0 => format!("has {got} decimal{plural}, but {currency} has no decimals (its amounts are whole numbers)"),
        max => format!(
            "has {got} decimal{plural}, but {currency} has {max}: only {max} decimals (its minor unit is 1/{})",
            10u64.pow(max)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(c: &str) -> Currency {
        Currency::parse_typed(c).unwrap()
    }

    #[test]
    fn the_table_is_sorted_unique_and_upper_case() {
        for w in ISO_4217.windows(2) {
            assert!(w[0].0 < w[1].0, "{} then {}", w[0].0, w[1].0);
        }
        for (c, e) in ISO_4217 {
            assert!(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) && *e <= 4, "{c}");
        }
        for c in KEPT_BY_BANK {
            assert!(c.parse::<Currency>().unwrap().kept_by_bank());
        }
    }

    #[test]
    fn exponents_follow_iso_4217() {
        for (c, e) in [("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3), ("CLF", 4), ("CHF", 2), ("ISK", 0)] {
            assert_eq!(cur(c).exponent(), e, "{c}");
        }
    }

    #[test]
    fn codes_as_typed_and_as_sent() {
        assert_eq!(cur(" eur ").as_str(), "EUR");
        assert_eq!(cur("EUR").as_bytes(), b"EUR");
        for bad in ["EU", "EURO", "E1R", "", "€UR"] {
            assert_eq!(Currency::parse_typed(bad), Err(CurrencyError::Malformed), "{bad}");
        }
        assert_eq!(Currency::parse_typed("XYZ"), Err(CurrencyError::Unknown("XYZ".into())));
        assert!("eur".parse::<Currency>().is_err(), "the API's form is upper case only");
        let e = Currency::parse_kept("XYZ").unwrap_err().to_string();
        assert!(e.contains("EUR, USD, GBP, CHF, JPY"), "{e}");
        assert!(Currency::parse_kept("KWD").is_err());
        assert!(Currency::parse_kept("usd").is_ok());
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
            ("0.10", "CHF", 10),
            ("1000000.00", "GBP", 100_000_000),
            ("1234", "JPY", 1234),
            ("1.234", "KWD", 1234),
            ("1.2", "KWD", 1200),
            ("184467440737095516.15", "EUR", u64::MAX),
            // 0.29 * 100 is 28.999999999999996 in binary floating point: exact here.
            ("0.29", "EUR", 29),
            ("1.1", "USD", 110),
        ];
        for (text, c, want) in table {
            assert_eq!(cur(c).parse_amount(text), Ok(*want), "{text} {c}");
        }
    }

    #[test]
    fn refuses_bad_amounts_with_the_reason() {
        use AmountError::*;
        let eur = cur("EUR");
        let jpy = cur("JPY");
        let table: &[(&str, Currency, AmountError)] = &[
            ("", eur, Empty),
            ("-1", eur, Negative),
            ("-0.01", eur, Negative),
            ("+1", eur, NotANumber { currency: eur }),
            ("1,50", eur, NotANumber { currency: eur }),
            ("1e3", eur, NotANumber { currency: eur }),
            ("1.2.3", eur, NotANumber { currency: eur }),
            (".5", eur, NotANumber { currency: eur }),
            ("1 000", eur, NotANumber { currency: eur }),
            ("١٢", eur, NotANumber { currency: eur }),
            ("1.5x", jpy, NotANumber { currency: jpy }),
            ("5.", eur, NoDigitsAfterPoint),
            ("12.345", eur, TooManyDecimals { currency: eur, got: 3 }),
            ("1.5", jpy, TooManyDecimals { currency: jpy, got: 1 }),
            ("0", eur, Zero),
            ("0.00", eur, Zero),
            ("184467440737095516.16", eur, TooLarge),
            ("99999999999999999999999", eur, TooLarge),
        ];
        for (text, c, want) in table {
            assert_eq!(c.parse_amount(text).as_ref(), Err(want), "{text} {c}");
        }
        let msg = eur.parse_amount("12.345").unwrap_err().to_string();
        assert!(msg.contains("3 decimals") && msg.contains("EUR has 2") && msg.contains("only 2 decimals"), "{msg}");
        assert!(jpy.parse_amount("1.5").unwrap_err().to_string().contains("no decimals"));
        assert!(Negative.to_string().contains("only digits"));
        assert!(eur.parse_amount("1,50").unwrap_err().to_string().contains("is not a decimal number like 12.34"));
        assert!(jpy.parse_amount("x").unwrap_err().to_string().contains("like 1234"));
    }

    #[test]
    fn formats_round_trip() {
        for (text, c) in [("12.34", "EUR"), ("0.05", "EUR"), ("1234", "JPY"), ("1.234", "KWD"), ("1.000", "KWD")] {
            let minor = cur(c).parse_amount(text).unwrap();
            assert_eq!(cur(c).format_minor(minor), text);
        }
        assert_eq!(cur("EUR").format_minor(-1234i64), "-12.34");
        assert_eq!(cur("EUR").format_minor(-5i64), "-0.05");
        assert_eq!(cur("JPY").format_minor(0u64), "0");
        assert_eq!(cur("EUR").format_minor(u64::MAX), "184467440737095516.15");
    }

    #[test]
    fn examples_have_the_currency_s_decimals() {
        for c in ["EUR", "JPY", "KWD", "CLF"] {
            let c = cur(c);
            assert!(c.parse_amount(c.example()).is_ok(), "{c}");
        }
    }
}
