//! # paysim-otp: the one implementation of the codes
//!
//! One-time passwords: HOTP (RFC 4226), TOTP (RFC 6238), OCRA (RFC 6287), and the
//! PAYSIM-1 chain algorithm built on OCRA. The card (`card-applet`), the bank (`bank-server`)
//! and the terminal (`reader-bridge`, `bank-tools`) all compute and check codes with this crate,
//! so none of them links another's code for it. It is `#![no_std]` with `alloc`, like the card
//! core that runs it, and does no I/O.
//!
//! PAYSIM-1 (see `docs/protocol.md` for the bytes and the project's own vectors):
//!
//! ```text
//! k_i      = HMAC-SHA256(ck_i, "PAYSIM-1 OTP")
//! ck_{i+1} = HMAC-SHA256(ck_i, "PAYSIM-1 CHAIN")
//! OTP      = OCRA("OCRA-1:HOTP-SHA256-8:C-QH64-S064", k_i, C = i,
//!                 Q = hex(challenge), S = SHA-512(context))
//! context  = label ‖ for each field: u16 BE length ‖ bytes
//! ```
//!
//! Transaction contexts come in two versions ([`TxVersion`]): `PAYSIM-1 TX` binds the
//! verifier id, transaction id, amount, currency and payee account; `PAYSIM-2 TX` adds the
//! source account and the payee's name. Both come from the one [`tx_context`].
//!
//! The chain key is never derived from any output, so a transmitted code says nothing about
//! the next one.

//! ```
//! use paysim_otp::{login_otp, tx_otp, ChainKey, TxFields, TxVersion};
//! let ck0 = ChainKey::from_bytes([7u8; 32]);
//! let login = login_otp(&ck0, 0, &[0xAB; 32], b"https://bank.example:443");
//! assert_eq!(login.as_str().len(), 8);
//! let tx = TxFields {
//!     version: TxVersion::V2,
//!     verifier_id: b"https://bank.example:443",
//!     transaction_id: b"tx-1",
//!     amount_minor: 1234,
//!     currency: b"EUR",
//!     source: b"ACC-ALICE-EUR",
//!     payee: b"ACC-BOB-EUR",
//!     payee_name: "Bob Müller".as_bytes(),
//! };
//! let code = tx_otp(&ck0.next(), 1, &[0xAB; 32], &tx);
//! assert!(!code.matches(login.as_str()));
//! ```

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The OCRA suite every PAYSIM-1 code uses.
pub const PAYSIM_SUITE: &str = "OCRA-1:HOTP-SHA256-8:C-QH64-S064";
/// HMAC message deriving the per-step code key `k_i`.
pub const LABEL_STEP_KEY: &[u8] = b"PAYSIM-1 OTP";
/// HMAC message deriving the next chain key `ck_{i+1}`.
pub const LABEL_CHAIN: &[u8] = b"PAYSIM-1 CHAIN";
/// Context label of a login code.
pub const LABEL_LOGIN: &[u8] = b"PAYSIM-1 LOGIN";
/// Context label of a transaction code of version 1 ([`TxVersion::V1`]).
pub const LABEL_TX: &[u8] = b"PAYSIM-1 TX";
/// Context label of a transaction code of version 2 ([`TxVersion::V2`]): the source account
/// and the payee's name are bound too.
pub const LABEL_TX_V2: &[u8] = b"PAYSIM-2 TX";
/// Shortest challenge the card accepts, in bytes.
pub const CHALLENGE_MIN: usize = 16;
/// Longest challenge the card accepts, in bytes (64 hex digits: the suite's `QH64`).
pub const CHALLENGE_MAX: usize = 32;

/// Hash function of an HMAC-based OTP (RFC 4226 uses SHA-1; RFC 6238 and 6287 add SHA-256/512).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlg {
    /// Parses `SHA1`, `SHA256` or `SHA512` (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Digest length in bytes.
    pub fn len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

impl HashAlg {
    /// A digest is never empty (pairs with [`HashAlg::len`]).
    pub fn is_empty(self) -> bool {
        false
    }
}

/// HMAC over `msg` with the given hash. HMAC accepts keys of any length, so this cannot fail.
pub fn hmac(alg: HashAlg, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        // `KeyInit::new_from_slice` never fails for HMAC; an empty output would only make the
        // OTP comparison fail, never succeed.
        match <M as hmac::digest::KeyInit>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(msg);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    match alg {
        HashAlg::Sha1 => run::<Hmac<Sha1>>(key, msg),
        HashAlg::Sha256 => run::<Hmac<Sha256>>(key, msg),
        HashAlg::Sha512 => run::<Hmac<Sha512>>(key, msg),
    }
}

/// HMAC-SHA256 into a fixed array.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // The MAC is the next chain key or a step key: wipe the temporary copy.
    let v = zeroize::Zeroizing::new(hmac(HashAlg::Sha256, key, msg));
    if let Some(v) = v.get(..32) {
        out.copy_from_slice(v);
    }
    out
}

/// Dynamic truncation (RFC 4226 §5.3) to `digits` decimal digits, zero-padded.
/// `digits` must be 1..=10; other values are clamped into that range.
pub fn truncate(mac: &[u8], digits: u32) -> String {
    let digits = digits.clamp(1, 10);
    let width = usize::try_from(digits).unwrap_or(10);
    let Some(&last) = mac.last() else {
        return "0".repeat(width);
    };
    let off = usize::from(last & 0x0f);
    let Some(b) = mac.get(off..off + 4) else {
        return "0".repeat(width);
    };
    let bin = u64::from(u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]));
    let code = bin % 10u64.pow(digits);
    format!("{code:0width$}")
}

/// The 31-bit value of dynamic truncation (RFC 4226 §5.3, `DT` followed by the mask of the
/// top bit), before it is reduced to decimal digits; `None` for a MAC shorter than 20 bytes
/// (no HMAC of SHA-1, SHA-256 or SHA-512 is).
///
/// A YKOATH card answers a truncated CALCULATE with this value already reduced modulo
/// `10^digits`, as a YubiKey 5 does; [`truncate`] is the decimal form.
pub fn dynamic_truncation(mac: &[u8]) -> Option<u32> {
    if mac.len() < 20 {
        return None;
    }
    let off = usize::from(mac.last()? & 0x0f);
    let b = mac.get(off..off + 4)?;
    Some(u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]))
}

/// HOTP (RFC 4226 §5.3), generalised to SHA-256/512 as RFC 6238 does.
pub fn hotp(alg: HashAlg, key: &[u8], counter: u64, digits: u32) -> String {
    truncate(&hmac(alg, key, &counter.to_be_bytes()), digits)
}

/// TOTP (RFC 6238 §4): HOTP over `T = (unix_time - t0) / step`.
/// Returns `None` when `step` is 0 or `unix_time < t0`.
pub fn totp(alg: HashAlg, key: &[u8], unix_time: u64, t0: u64, step: u64, digits: u32) -> Option<String> {
    if step == 0 {
        return None;
    }
    let t = unix_time.checked_sub(t0)? / step;
    Some(hotp(alg, key, t, digits))
}

/// How an OCRA challenge question is written (RFC 6287 §6.3 `QFxx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuestionFormat {
    /// `A`: alphanumeric; the ASCII bytes are used.
    Alpha,
    /// `N`: decimal; the number is converted to hexadecimal, as in the RFC's reference code.
    Numeric,
    /// `H`: hexadecimal digits, used as they are.
    Hex,
}

/// A parsed OCRA suite (RFC 6287 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcraSuite {
    text: String,
    pub hash: HashAlg,
    pub digits: u32,
    pub counter: bool,
    pub question: (QuestionFormat, usize),
    pub password: Option<HashAlg>,
    pub session_len: Option<usize>,
    pub timestamp_step: Option<u64>,
}

/// Why an OCRA computation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OcraError {
    #[error("malformed OCRA suite")]
    Suite,
    #[error("the suite needs a counter")]
    MissingCounter,
    #[error("question does not fit the suite's format or length")]
    Question,
    #[error("password hash missing or of the wrong length")]
    Password,
    #[error("session information missing or longer than the suite allows")]
    Session,
    #[error("the suite needs a timestamp")]
    MissingTimestamp,
}

impl OcraSuite {
    /// Parses `OCRA-1:HOTP-<hash>-<digits>:<DataInput>`.
    pub fn parse(text: &str) -> Result<Self, OcraError> {
        let mut parts = text.split(':');
        let (Some(version), Some(crypto), Some(data), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OcraError::Suite);
        };
        if version != "OCRA-1" {
            return Err(OcraError::Suite);
        }
        let mut c = crypto.split('-');
        let (Some("HOTP"), Some(h), Some(d), None) = (c.next(), c.next(), c.next(), c.next()) else {
            return Err(OcraError::Suite);
        };
        let hash = HashAlg::parse(h).ok_or(OcraError::Suite)?;
        let digits: u32 = d.parse().map_err(|_| OcraError::Suite)?;
        if !(digits == 0 || (4..=10).contains(&digits)) {
            return Err(OcraError::Suite);
        }
        let mut suite = OcraSuite {
            text: text.to_owned(),
            hash,
            digits,
            counter: false,
            question: (QuestionFormat::Numeric, 0),
            password: None,
            session_len: None,
            timestamp_step: None,
        };
        let mut have_q = false;
        for item in data.split('-') {
            let mut chars = item.chars();
            match chars.next() {
                Some('C') if item == "C" => suite.counter = true,
                Some('Q') => {
                    let fmt = match chars.next() {
                        Some('A') => QuestionFormat::Alpha,
                        Some('N') => QuestionFormat::Numeric,
                        Some('H') => QuestionFormat::Hex,
                        _ => return Err(OcraError::Suite),
                    };
                    let len: usize = chars.as_str().parse().map_err(|_| OcraError::Suite)?;
                    if !(4..=64).contains(&len) {
                        return Err(OcraError::Suite);
                    }
                    suite.question = (fmt, len);
                    have_q = true;
                }
                Some('P') => suite.password = Some(HashAlg::parse(chars.as_str()).ok_or(OcraError::Suite)?),
                Some('S') => {
                    let len: usize = chars.as_str().parse().map_err(|_| OcraError::Suite)?;
                    if len > 512 {
                        return Err(OcraError::Suite);
                    }
                    suite.session_len = Some(len);
                }
                Some('T') => {
                    let spec = chars.as_str();
                    let (num, unit) = spec.split_at(spec.len().saturating_sub(1));
                    let n: u64 = num.parse().map_err(|_| OcraError::Suite)?;
                    let unit = match unit {
                        "S" => 1,
                        "M" => 60,
                        "H" => 3600,
                        _ => return Err(OcraError::Suite),
                    };
                    suite.timestamp_step = Some(n.checked_mul(unit).ok_or(OcraError::Suite)?);
                }
                _ => return Err(OcraError::Suite),
            }
        }
        if !have_q {
            return Err(OcraError::Suite);
        }
        Ok(suite)
    }

    /// The suite text as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The inputs of one OCRA computation (RFC 6287 §5.1). Fields the suite does not use are ignored.
#[derive(Clone, Copy, Debug, Default)]
pub struct OcraInput<'a> {
    pub counter: Option<u64>,
    /// The question as written in the suite's format (digits, hex digits or text).
    pub question: &'a str,
    /// The hash of the PIN/password, already computed with the suite's `P` hash.
    pub password_hash: Option<&'a [u8]>,
    pub session: Option<&'a [u8]>,
    /// Time steps (already divided by the suite's step), as in the RFC's vectors.
    pub timestamp: Option<u64>,
}

/// Converts a decimal string to its big-endian hexadecimal digits (no leading zeros, "0" for 0).
fn decimal_to_hex(dec: &str) -> Option<String> {
    let mut bytes: Vec<u8> = vec![0];
    for ch in dec.chars() {
        let d = ch.to_digit(10)?;
        let mut carry = d;
        for b in bytes.iter_mut().rev() {
            let v = u32::from(*b) * 10 + carry;
            *b = v.to_le_bytes()[0];
            carry = v >> 8;
        }
        while carry > 0 {
            bytes.insert(0, carry.to_le_bytes()[0]);
            carry >>= 8;
        }
    }
    let hex = hex::encode_upper(&bytes);
    let trimmed = hex.trim_start_matches('0');
    Some(if trimmed.is_empty() { "0".into() } else { trimmed.into() })
}

/// Builds the OCRA DataInput (RFC 6287 §5.1), with the byte layout of its Appendix A code.
pub fn ocra_data_input(suite: &OcraSuite, input: &OcraInput<'_>) -> Result<Vec<u8>, OcraError> {
    let mut msg = Vec::with_capacity(suite.text.len() + 1 + 8 + 128 + 64 + 512 + 8);
    msg.extend_from_slice(suite.text.as_bytes());
    msg.push(0);
    if suite.counter {
        msg.extend_from_slice(&input.counter.ok_or(OcraError::MissingCounter)?.to_be_bytes());
    }
    // Q: the question as hexadecimal digits, left-aligned and zero-filled to 128 bytes.
    // The suite's `xx` is nominal: RFC 6287's own vectors send 16 characters under `QA08`, so
    // only the 128-byte field bounds the question, as in the reference code.
    let (fmt, _nominal) = suite.question;
    let q = input.question;
    if q.is_empty() {
        return Err(OcraError::Question);
    }
    let mut q_hex = match fmt {
        QuestionFormat::Alpha => {
            if !q.is_ascii() {
                return Err(OcraError::Question);
            }
            hex::encode(q.as_bytes())
        }
        QuestionFormat::Numeric => decimal_to_hex(q).ok_or(OcraError::Question)?,
        QuestionFormat::Hex => {
            if !q.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(OcraError::Question);
            }
            q.to_owned()
        }
    };
    if q_hex.len() > 256 {
        return Err(OcraError::Question);
    }
    while q_hex.len() < 256 {
        q_hex.push('0');
    }
    msg.extend_from_slice(&hex::decode(&q_hex).map_err(|_| OcraError::Question)?);
    if let Some(alg) = suite.password {
        let p = input.password_hash.ok_or(OcraError::Password)?;
        if p.len() != alg.len() {
            return Err(OcraError::Password);
        }
        msg.extend_from_slice(p);
    }
    if let Some(len) = suite.session_len {
        // Right-aligned and zero-filled on the left, as the reference code pads the hex string.
        let s = input.session.ok_or(OcraError::Session)?;
        if s.len() > len {
            return Err(OcraError::Session);
        }
        msg.extend(core::iter::repeat_n(0u8, len - s.len()));
        msg.extend_from_slice(s);
    }
    if suite.timestamp_step.is_some() {
        msg.extend_from_slice(&input.timestamp.ok_or(OcraError::MissingTimestamp)?.to_be_bytes());
    }
    Ok(msg)
}

/// OCRA (RFC 6287 §5.2): HOTP-style truncation of HMAC(key, DataInput).
pub fn ocra(suite: &OcraSuite, key: &[u8], input: &OcraInput<'_>) -> Result<String, OcraError> {
    let msg = ocra_data_input(suite, input)?;
    let mac = hmac(suite.hash, key, &msg);
    if suite.digits == 0 {
        return Ok(hex::encode(mac));
    }
    Ok(truncate(&mac, suite.digits))
}

/// A 32-byte PAYSIM-1 chain key `ck_i`. Zeroized on drop; `Debug` never shows it; `==` is
/// constant-time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChainKey([u8; 32]);

impl PartialEq for ChainKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for ChainKey {}

impl core::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChainKey(<secret>)")
    }
}

impl ChainKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw key, for encryption at rest or the card's state file. Handle with care.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// `k_i = HMAC-SHA256(ck_i, "PAYSIM-1 OTP")`.
    pub fn step_key(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(hmac_sha256(&self.0, LABEL_STEP_KEY))
    }

    /// `ck_{i+1} = HMAC-SHA256(ck_i, "PAYSIM-1 CHAIN")`.
    pub fn next(&self) -> ChainKey {
        ChainKey(hmac_sha256(&self.0, LABEL_CHAIN))
    }

    /// Moves the chain `steps` steps forward.
    pub fn advance(&self, steps: u64) -> ChainKey {
        let mut ck = self.clone();
        for _ in 0..steps {
            ck = ck.next();
        }
        ck
    }
}

/// An 8-digit PAYSIM-1 code. `Debug` hides it so that it cannot reach a log by accident;
/// `==` is constant-time, like [`Otp::matches`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Otp(String);

impl PartialEq for Otp {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for Otp {}

impl core::fmt::Debug for Otp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Otp(<secret>)")
    }
}

impl Otp {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a submitted code. A code whose computation failed is
    /// empty and matches nothing, not even an empty submission.
    pub fn matches(&self, submitted: &str) -> bool {
        use subtle::ConstantTimeEq;
        !self.0.is_empty()
            && self.0.len() == submitted.len()
            && bool::from(self.0.as_bytes().ct_eq(submitted.as_bytes()))
    }
}

impl Otp {
    /// An 8-digit code received from a card or typed by a person; `None` unless it is
    /// exactly 8 ASCII digits.
    pub fn from_digits(code: &str) -> Option<Otp> {
        (code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit())).then(|| Otp(code.to_owned()))
    }
}

/// `label ‖ for each field: u16 BE length ‖ bytes`. Fields longer than 65535 bytes are
/// cut to that length by no caller: the card and the bank limit every field to 64 bytes, and
/// the payee's name to 280 (70 characters).
pub fn context(label: &[u8], fields: &[&[u8]]) -> Vec<u8> {
    let mut out = label.to_vec();
    for f in fields {
        let len = u16::try_from(f.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&f[..usize::from(len)]);
    }
    out
}

/// Context of a login code: `"PAYSIM-1 LOGIN" ‖ [verifier id]`.
pub fn login_context(verifier_id: &[u8]) -> Vec<u8> {
    context(LABEL_LOGIN, &[verifier_id])
}

/// The version of the transaction context a code binds. A card announces the versions it
/// signs (`docs/protocol.md`, GET DATA `DF08`); the bank records, per token, the one it
/// accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxVersion {
    /// `"PAYSIM-1 TX"`: verifier id, transaction id, amount, currency, payee account.
    /// Cards of applet version 1.0 sign only this one.
    V1,
    /// `"PAYSIM-2 TX"`: version 1's fields plus the source account and the payee's name.
    V2,
}

impl TxVersion {
    /// Every version, oldest first.
    pub const ALL: [TxVersion; 2] = [TxVersion::V1, TxVersion::V2];

    /// The version's number as cards announce it and the bank stores it (`1`, `2`).
    pub fn number(self) -> u8 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    /// The version with this number; `None` for a number no build knows.
    pub fn from_number(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.number() == n)
    }

    /// The context label of this version.
    pub fn label(self) -> &'static [u8] {
        match self {
            Self::V1 => LABEL_TX,
            Self::V2 => LABEL_TX_V2,
        }
    }
}

/// The fields a transaction code binds. `source` and `payee_name` belong to version 2 only:
/// a [`TxVersion::V1`] context leaves them out (set them empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxFields<'a> {
    pub version: TxVersion,
    pub verifier_id: &'a [u8],
    pub transaction_id: &'a [u8],
    pub amount_minor: u64,
    pub currency: &'a [u8; 3],
    /// The account the money leaves (version 2).
    pub source: &'a [u8],
    pub payee: &'a [u8],
    /// The payee's name as the customer typed it and the bank stores it, UTF-8 (version 2).
    pub payee_name: &'a [u8],
}

/// Context of a transaction code, one function for every version:
///
/// - V1: `"PAYSIM-1 TX" ‖ [verifier id, transaction id, amount (8 bytes BE), currency, payee]`
/// - V2: `"PAYSIM-2 TX" ‖ [verifier id, transaction id, amount (8 bytes BE), currency,
///   source account, payee account, payee name]`
pub fn tx_context(tx: &TxFields<'_>) -> Vec<u8> {
    let amount = tx.amount_minor.to_be_bytes();
    match tx.version {
        TxVersion::V1 => context(LABEL_TX, &[tx.verifier_id, tx.transaction_id, &amount, tx.currency, tx.payee]),
        TxVersion::V2 => context(
            LABEL_TX_V2,
            &[tx.verifier_id, tx.transaction_id, &amount, tx.currency, tx.source, tx.payee, tx.payee_name],
        ),
    }
}

/// The PAYSIM-1 code at step `counter` with chain key `ck` (which must be `ck_counter`).
pub fn paysim_otp(ck: &ChainKey, counter: u64, challenge: &[u8], context: &[u8]) -> Otp {
    let k = ck.step_key();
    let q = hex::encode_upper(challenge);
    let s = Sha512::digest(context);
    let input = OcraInput { counter: Some(counter), question: &q, session: Some(&s), ..Default::default() };
    // The suite is a constant that parses; a challenge outside 1..=32 bytes cannot reach here
    // from the card or the bank, and would yield a code that matches nothing.
    let code = OcraSuite::parse(PAYSIM_SUITE).and_then(|suite| ocra(&suite, k.as_ref(), &input)).unwrap_or_default();
    Otp(code)
}

/// Login code at step `counter`.
pub fn login_otp(ck: &ChainKey, counter: u64, challenge: &[u8], verifier_id: &[u8]) -> Otp {
    paysim_otp(ck, counter, challenge, &login_context(verifier_id))
}

/// Transaction code at step `counter`.
pub fn tx_otp(ck: &ChainKey, counter: u64, challenge: &[u8], tx: &TxFields<'_>) -> Otp {
    paysim_otp(ck, counter, challenge, &tx_context(tx))
}

/// Label of the OATH challenge of a login (`docs/protocol.md`, section 9).
pub const OATH_LABEL_LOGIN: &[u8] = b"PAYSIM-OATH-1 LOGIN";
/// Label of the OATH challenge of a transaction.
pub const OATH_LABEL_TX: &[u8] = b"PAYSIM-OATH-1 TX";
/// Digits of an OATH bank code (the credential is written with 8 digits).
pub const OATH_DIGITS: u8 = 8;
/// Length of an OATH bank key in bytes (HMAC-SHA256's block is 64, so a YKOATH card keeps it
/// as it is; YubiKey and Nitrokey 3 take keys up to 64 bytes).
pub const OATH_KEY_LEN: usize = 32;
/// The YKOATH key-type byte of an OATH bank credential: TOTP (`0x20`) with HMAC-SHA256
/// (`0x02`). The TOTP type is used as plain challenge-response: CALCULATE hashes whatever
/// challenge the host sends.
pub const OATH_KEY_TYPE: u8 = 0x22;

/// The static HMAC-SHA256 key of an OATH bank credential ([`OATH_KEY_LEN`] bytes). Zeroized on
/// drop; `Debug` never shows it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct OathKey([u8; OATH_KEY_LEN]);

impl OathKey {
    pub fn from_bytes(bytes: [u8; OATH_KEY_LEN]) -> Self {
        OathKey(bytes)
    }

    /// The key, for sealing it or writing it to a card.
    pub fn expose(&self) -> &[u8; OATH_KEY_LEN] {
        &self.0
    }
}

impl core::fmt::Debug for OathKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("OathKey(<secret>)")
    }
}

/// The CALCULATE challenge an OATH token answers for a bank challenge and a context:
///
/// ```text
/// q = SHA-256(label ‖ u16 BE 32 ‖ bank challenge ‖ u16 BE 64 ‖ SHA-512(context))
/// ```
///
/// with `label` [`OATH_LABEL_LOGIN`] or [`OATH_LABEL_TX`] and `context` the bytes of
/// [`login_context`] or [`tx_context`], so the OATH code binds exactly what a PAYSIM code binds.
/// The length prefixes are those of [`context`].
pub fn oath_challenge(label: &[u8], bank_challenge: &[u8], context_bytes: &[u8]) -> [u8; 32] {
    let s = Sha512::digest(context_bytes);
    let msg = context(label, &[bank_challenge, s.as_slice()]);
    Sha256::digest(msg).into()
}

/// [`oath_challenge`] of a login.
pub fn oath_login_challenge(bank_challenge: &[u8], verifier_id: &[u8]) -> [u8; 32] {
    oath_challenge(OATH_LABEL_LOGIN, bank_challenge, &login_context(verifier_id))
}

/// [`oath_challenge`] of a transaction.
pub fn oath_tx_challenge(bank_challenge: &[u8], tx: &TxFields<'_>) -> [u8; 32] {
    oath_challenge(OATH_LABEL_TX, bank_challenge, &tx_context(tx))
}

/// The code as a YKOATH card's truncated answer gives it: the 31-bit value (a YubiKey 5
/// already reduced it modulo `10^digits`, ykneo-oath did not) reduced modulo `10^8`,
/// 8 digits zero-padded (ykman's `(value & 0x7FFFFFFF) % 10**digits`).
pub fn oath_code_from_value(value: u32) -> Otp {
    let code = (value & 0x7FFF_FFFF) % 100_000_000;
    Otp(format!("{code:08}"))
}

/// The code from a card's full answer (the HMAC itself): dynamic truncation to 8 digits;
/// `None` for an answer shorter than an HMAC.
pub fn oath_code_from_mac(mac: &[u8]) -> Option<Otp> {
    dynamic_truncation(mac).map(oath_code_from_value)
}

/// The code an OATH bank credential with `key` answers to `q` (an [`oath_challenge`]):
/// HMAC-SHA256, dynamic truncation, 8 digits. The bank computes it to check a submission.
pub fn oath_code(key: &[u8], q: &[u8; 32]) -> Otp {
    let mac = zeroize::Zeroizing::new(hmac(HashAlg::Sha256, key, q));
    oath_code_from_mac(&mac).unwrap_or_else(|| Otp(String::new()))
}

/// Why a URL cannot give a verifier id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifierIdError {
    #[error("the bank URL must start with http:// or https://")]
    Scheme,
    #[error("the bank URL has no host")]
    Host,
    #[error("the bank URL has a bad port")]
    Port,
}

/// The verifier id that codes are bound to: the origin of the bank's URL, written
/// `scheme://host:port` with scheme and host in lower case and the port always explicit
/// (`https://bank.example:443`, `http://127.0.0.1:8080`). The bank derives it from its public
/// URL and the bridge from the URL it is configured with, never from what a server says.
pub fn verifier_id(url: &str) -> Result<String, VerifierIdError> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or(VerifierIdError::Scheme)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80u16,
        "https" => 443,
        _ => return Err(VerifierIdError::Scheme),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(VerifierIdError::Host);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(VerifierIdError::Host)?;
        (format!("[{}]", h.to_ascii_lowercase()), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(VerifierIdError::Host);
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().map_err(|_| VerifierIdError::Port)?,
    };
    if port == 0 {
        return Err(VerifierIdError::Port);
    }
    Ok(format!("{scheme}://{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn load(name: &str) -> Vec<Value> {
        let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["vectors"].as_array().unwrap().clone()
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let vs = load("hotp-rfc4226.json");
        assert_eq!(vs.len(), 10, "all of RFC 4226 Appendix D");
        for v in vs {
            let key = hex::decode(v["key_hex"].as_str().unwrap()).unwrap();
            let alg = HashAlg::parse(v["hash"].as_str().unwrap()).unwrap();
            let got = hotp(alg, &key, v["counter"].as_u64().unwrap(), v["digits"].as_u64().unwrap() as u32);
            assert_eq!(got, v["otp"].as_str().unwrap(), "{v}");
        }
    }

    #[test]
    fn dynamic_truncation_is_the_value_before_the_digits() {
        // RFC 4226 §5.4: the worked example's MAC and its truncated value 0x50ef7f19.
        let mac = hex::decode("1f8698690e02ca16618550ef7f19da8e945b555a").unwrap();
        assert_eq!(dynamic_truncation(&mac), Some(0x50ef_7f19));
        assert_eq!(truncate(&mac, 6), "872921");
        // Every RFC 4226 vector: the value modulo 10^6 is the published code.
        for v in load("hotp-rfc4226.json") {
            let key = hex::decode(v["key_hex"].as_str().unwrap()).unwrap();
            let mac = hmac(HashAlg::Sha1, &key, &v["counter"].as_u64().unwrap().to_be_bytes());
            let value = dynamic_truncation(&mac).unwrap();
            assert_eq!(format!("{:06}", value % 1_000_000), v["otp"].as_str().unwrap(), "{v}");
        }
        // And every RFC 6238 vector, with SHA-1, SHA-256 and SHA-512 MACs.
        for v in load("totp-rfc6238.json") {
            let key = hex::decode(v["key_hex"].as_str().unwrap()).unwrap();
            let alg = HashAlg::parse(v["hash"].as_str().unwrap()).unwrap();
            let t = v["unix_time"].as_u64().unwrap() / v["step"].as_u64().unwrap();
            let value = dynamic_truncation(&hmac(alg, &key, &t.to_be_bytes())).unwrap();
            assert_eq!(format!("{:08}", value % 100_000_000), v["otp"].as_str().unwrap(), "{v}");
        }
        assert_eq!(dynamic_truncation(&[0; 19]), None);
    }

    #[test]
    fn rfc6238_totp_vectors() {
        let vs = load("totp-rfc6238.json");
        assert_eq!(vs.len(), 18, "all of RFC 6238 Appendix B");
        for v in vs {
            let key = hex::decode(v["key_hex"].as_str().unwrap()).unwrap();
            let alg = HashAlg::parse(v["hash"].as_str().unwrap()).unwrap();
            let got = totp(
                alg,
                &key,
                v["unix_time"].as_u64().unwrap(),
                v["t0"].as_u64().unwrap(),
                v["step"].as_u64().unwrap(),
                v["digits"].as_u64().unwrap() as u32,
            )
            .unwrap();
            assert_eq!(got, v["otp"].as_str().unwrap(), "{v}");
        }
    }

    #[test]
    fn rfc6287_ocra_vectors() {
        let vs = load("ocra-rfc6287.json");
        assert_eq!(vs.len(), 70, "all of RFC 6287 Appendix C");
        for v in vs {
            let suite = OcraSuite::parse(v["suite"].as_str().unwrap()).unwrap();
            let key = hex::decode(v["key_hex"].as_str().unwrap()).unwrap();
            let pin = v.get("pin_sha1_hex").map(|p| hex::decode(p.as_str().unwrap()).unwrap());
            let input = OcraInput {
                counter: v.get("counter").and_then(Value::as_u64),
                question: v["question"].as_str().unwrap(),
                password_hash: pin.as_deref(),
                session: None,
                timestamp: v.get("timestamp").and_then(Value::as_u64),
            };
            assert_eq!(ocra(&suite, &key, &input).unwrap(), v["otp"].as_str().unwrap(), "{v}");
        }
    }

    #[test]
    fn suite_parser_refuses_garbage() {
        for bad in [
            "",
            "OCRA-2:HOTP-SHA1-6:QN08",
            "OCRA-1:HOTP-MD5-6:QN08",
            "OCRA-1:HOTP-SHA1-3:QN08",
            "OCRA-1:HOTP-SHA1-6:C",
            "OCRA-1:HOTP-SHA1-6:QX08",
            "OCRA-1:HOTP-SHA1-6:QN08-T1X",
            "OCRA-1:HOTP-SHA1-6:QN08:extra",
            "OCRA-1:HOTP-SHA1-6:QN08-T99999999999999999H",
        ] {
            assert_eq!(OcraSuite::parse(bad), Err(OcraError::Suite), "{bad}");
        }
        let s = OcraSuite::parse(PAYSIM_SUITE).unwrap();
        assert_eq!(s.hash, HashAlg::Sha256);
        assert_eq!(s.digits, 8);
        assert!(s.counter);
        assert_eq!(s.question, (QuestionFormat::Hex, 64));
        assert_eq!(s.session_len, Some(64));
    }

    #[test]
    fn ocra_refuses_inputs_outside_the_suite() {
        let s = OcraSuite::parse(PAYSIM_SUITE).unwrap();
        let ok = OcraInput { counter: Some(1), question: "AB", session: Some(&[0; 64]), ..Default::default() };
        assert!(ocra(&s, b"k", &ok).is_ok());
        assert_eq!(ocra(&s, b"k", &OcraInput { counter: None, ..ok }), Err(OcraError::MissingCounter));
        assert_eq!(ocra(&s, b"k", &OcraInput { question: "XYZ", ..ok }), Err(OcraError::Question));
        let long = "A".repeat(257);
        assert_eq!(ocra(&s, b"k", &OcraInput { question: &long, ..ok }), Err(OcraError::Question));
        assert_eq!(ocra(&s, b"k", &OcraInput { session: Some(&[0; 65]), ..ok }), Err(OcraError::Session));
    }

    #[test]
    fn chain_follows_the_definition() {
        let ck0 = ChainKey::from_bytes([0x42; 32]);
        let ck1 = ck0.next();
        assert_eq!(ck1.expose(), &hmac_sha256(&[0x42; 32], b"PAYSIM-1 CHAIN"));
        assert_eq!(ck0.advance(3), ck1.next().next());
        assert_eq!(*ck0.step_key(), hmac_sha256(&[0x42; 32], b"PAYSIM-1 OTP"));
        // The step key and the next chain key differ: outputs never feed the chain.
        assert_ne!(&*ck0.step_key(), ck1.expose());
    }

    #[test]
    fn paysim_oath_1_vectors() {
        for v in load("paysim-oath-1.json") {
            let hexf = |k: &str| hex::decode(v[k].as_str().unwrap()).unwrap();
            let label = v["label"].as_str().unwrap().as_bytes();
            let q = oath_challenge(label, &hexf("bank_challenge_hex"), &hexf("context_hex"));
            assert_eq!(q.to_vec(), hexf("q_hex"));
            // A transfer vector names its fields: its context is `tx_context` of them, for
            // the version it gives, and the challenge `oath_tx_challenge` of them.
            if let Some(t) = v.get("tx") {
                let text = |k: &str| t[k].as_str().unwrap_or("").as_bytes();
                let currency: &[u8; 3] = text("currency").try_into().unwrap();
                let version = TxVersion::from_number(u8::try_from(t["version"].as_u64().unwrap()).unwrap()).unwrap();
                let fields = TxFields {
                    version,
                    verifier_id: text("verifier_id"),
                    transaction_id: text("transaction_id"),
                    amount_minor: t["amount_minor"].as_u64().unwrap(),
                    currency,
                    source: text("source"),
                    payee: text("payee"),
                    payee_name: text("payee_name"),
                };
                assert_eq!(tx_context(&fields), hexf("context_hex"), "context v{}", version.number());
                assert_eq!(oath_tx_challenge(&hexf("bank_challenge_hex"), &fields).to_vec(), hexf("q_hex"));
            }
            let mac = hmac(HashAlg::Sha256, &hexf("key_hex"), &q);
            assert_eq!(mac, hexf("mac_hex"));
            let otp = v["otp"].as_str().unwrap();
            assert!(oath_code(&hexf("key_hex"), &q).matches(otp));
            // The card's two answer forms give the same code: the full HMAC, the 31-bit value
            // (ykneo-oath) and the value already reduced to 8 digits (YubiKey 5).
            assert!(oath_code_from_mac(&mac).unwrap().matches(otp));
            let value = dynamic_truncation(&mac).unwrap();
            assert!(oath_code_from_value(value).matches(otp));
            assert!(oath_code_from_value(value % 100_000_000).matches(otp));
            assert!(oath_code_from_value(value | 0x8000_0000).matches(otp));
        }
    }

    #[test]
    fn the_oath_challenge_binds_the_paysim_context_and_every_field() {
        let vid = b"https://bank.example:443";
        let ch = [7u8; 32];
        assert_eq!(oath_login_challenge(&ch, vid), oath_challenge(OATH_LABEL_LOGIN, &ch, &login_context(vid)));
        let tx = TxFields {
            version: TxVersion::V2,
            verifier_id: vid,
            transaction_id: b"tx-1",
            amount_minor: 1234,
            currency: b"EUR",
            source: b"ACC-ALICE-EUR",
            payee: b"ACC-BOB-EUR",
            payee_name: b"Bob Example",
        };
        let base = oath_tx_challenge(&ch, &tx);
        assert_eq!(base, oath_challenge(OATH_LABEL_TX, &ch, &tx_context(&tx)));
        // The same context under the other label, another challenge, and each field changed.
        assert_ne!(base, oath_challenge(OATH_LABEL_LOGIN, &ch, &tx_context(&tx)));
        assert_ne!(base, oath_tx_challenge(&[8u8; 32], &tx));
        for changed in [
            TxFields { amount_minor: 1235, ..tx.clone() },
            TxFields { payee: b"ACC-EVE-EUR", ..tx.clone() },
            TxFields { currency: b"USD", ..tx.clone() },
            TxFields { transaction_id: b"tx-2", ..tx.clone() },
            TxFields { verifier_id: b"https://evil.example:443", ..tx.clone() },
            TxFields { source: b"ACC-ALICE-EUR-2", ..tx.clone() },
            TxFields { payee_name: b"Bob Exemple", ..tx.clone() },
            TxFields { version: TxVersion::V1, ..tx.clone() },
        ] {
            assert_ne!(base, oath_tx_challenge(&ch, &changed), "{changed:?}");
        }
        assert!(!oath_code(&[1; 32], &base).matches(oath_code(&[2; 32], &base).as_str()));
    }

    #[test]
    fn context_encoding_is_length_prefixed() {
        assert_eq!(login_context(b"ab"), b"PAYSIM-1 LOGIN\x00\x02ab".to_vec());
        let tx = TxFields {
            version: TxVersion::V1,
            verifier_id: b"v",
            transaction_id: b"t1",
            amount_minor: 0x0102,
            currency: b"EUR",
            source: b"ignored in v1",
            payee: b"P",
            payee_name: b"ignored in v1",
        };
        let mut want = b"PAYSIM-1 TX".to_vec();
        want.extend_from_slice(b"\x00\x01v\x00\x02t1\x00\x08\x00\x00\x00\x00\x00\x00\x01\x02\x00\x03EUR\x00\x01P");
        assert_eq!(tx_context(&tx), want);
        let v2 = TxFields { version: TxVersion::V2, source: b"S", payee_name: "Jos\u{e9}".as_bytes(), ..tx };
        let mut want = b"PAYSIM-2 TX".to_vec();
        want.extend_from_slice(b"\x00\x01v\x00\x02t1\x00\x08\x00\x00\x00\x00\x00\x00\x01\x02\x00\x03EUR");
        want.extend_from_slice(b"\x00\x01S\x00\x01P\x00\x05Jos\xc3\xa9");
        assert_eq!(tx_context(&v2), want);
    }

    #[test]
    fn every_bound_field_changes_the_code() {
        let ck = ChainKey::from_bytes([9; 32]);
        let ch = [0x11u8; 32];
        let base = TxFields {
            version: TxVersion::V2,
            verifier_id: b"https://bank.example",
            transaction_id: b"tx-1",
            amount_minor: 1234,
            currency: b"EUR",
            source: b"DE00 9999",
            payee: b"DE00 1234",
            payee_name: b"Bob",
        };
        let code = tx_otp(&ck, 5, &ch, &base);
        let variants = [
            TxFields { verifier_id: b"https://bank.examp1e", ..base.clone() },
            TxFields { transaction_id: b"tx-2", ..base.clone() },
            TxFields { amount_minor: 1235, ..base.clone() },
            TxFields { currency: b"USD", ..base.clone() },
            TxFields { payee: b"DE00 1235", ..base.clone() },
            TxFields { source: b"DE00 9998", ..base.clone() },
            TxFields { payee_name: b"Rob", ..base.clone() },
            TxFields { version: TxVersion::V1, ..base.clone() },
        ];
        for v in &variants {
            assert_ne!(tx_otp(&ck, 5, &ch, v), code, "{v:?}");
        }
        assert_ne!(tx_otp(&ck, 6, &ch, &base), code);
        assert_ne!(tx_otp(&ck, 5, &[0x12; 32], &base), code);
        assert!(code.matches(code.as_str()));
        assert!(!code.matches("00000000") || code.as_str() == "00000000");
    }

    #[test]
    fn versions_have_their_numbers_and_labels() {
        for v in TxVersion::ALL {
            assert_eq!(TxVersion::from_number(v.number()), Some(v));
        }
        assert_eq!(TxVersion::from_number(0), None);
        assert_eq!(TxVersion::from_number(3), None);
        assert_eq!(TxVersion::V2.label(), b"PAYSIM-2 TX");
        // A v1 context ignores the v2 fields: old cards keep their codes.
        let a = TxFields {
            version: TxVersion::V1,
            verifier_id: b"v",
            transaction_id: b"t",
            amount_minor: 1,
            currency: b"EUR",
            source: b"",
            payee: b"P",
            payee_name: b"",
        };
        let b = TxFields { source: b"S", payee_name: b"N", ..a.clone() };
        assert_eq!(tx_context(&a), tx_context(&b));
    }

    #[test]
    fn verifier_id_is_the_normalised_origin() {
        assert_eq!(verifier_id("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(verifier_id("HTTPS://Bank.Example/login?x=1").unwrap(), "https://bank.example:443");
        assert_eq!(verifier_id("http://bank.example").unwrap(), "http://bank.example:80");
        assert_eq!(verifier_id("http://[::1]:9/").unwrap(), "http://[::1]:9");
        assert_eq!(verifier_id("ftp://x"), Err(VerifierIdError::Scheme));
        assert_eq!(verifier_id("bank.example"), Err(VerifierIdError::Scheme));
        assert_eq!(verifier_id("http://"), Err(VerifierIdError::Host));
        assert_eq!(verifier_id("http://user@evil:1"), Err(VerifierIdError::Host));
        assert_eq!(verifier_id("http://h:99999"), Err(VerifierIdError::Port));
        assert_eq!(verifier_id("http://h:0"), Err(VerifierIdError::Port));
    }

    #[test]
    fn a_code_that_could_not_be_computed_matches_nothing() {
        // A challenge outside what the suite takes (empty, or over 128 bytes) fails inside
        // OCRA; the empty result must not accept an empty submission.
        let ck = ChainKey::from_bytes([3; 32]);
        for challenge in [&[][..], &[0xAB; 129][..]] {
            let code = login_otp(&ck, 0, challenge, b"v");
            assert!(!code.matches(""), "challenge of {} bytes", challenge.len());
            assert!(!code.matches(code.as_str()));
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let ck = ChainKey::from_bytes([0xAA; 32]);
        assert!(!format!("{ck:?}").to_lowercase().contains("aa"));
        let code = login_otp(&ck, 0, &[1; 16], b"v");
        assert!(!format!("{code:?}").contains(code.as_str()));
    }
}
