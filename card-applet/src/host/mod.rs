//! The host side of the protocol, sans-I/O: APDU builders and response parsers for the
//! reader bridge and the tools. They shuttle the bytes through PC/SC; everything about the
//! bytes is here.
//!
//! ```
//! # use card_applet::{host, CardFront, Card, state::{CardState, MemStore}};
//! # let mut card = CardFront::new(Card::new(MemStore::default(), CardState::factory(&[1; 32])));
//! # let mut transmit = |apdu: &[u8]| -> Result<Vec<u8>, std::convert::Infallible> { Ok(card.process(apdu)) };
//! let resp = host::transceive(&host::select(), &mut transmit).unwrap();
//! let fci = host::parse_select(&resp).unwrap();
//! assert_eq!(fci.version, [1, 1]);
//! assert_eq!(fci.best_tx_version(), paysim_otp::TxVersion::V2);
//! ```
//!
//! Every parser takes the whole response (data ‖ SW1 SW2) and maps the status word to a
//! [`CardError`] in the context of its command (a `63C1` is a wrong PIN after VERIFY and a
//! wrong PUK after RESET RETRY COUNTER).

pub mod admin;
pub mod oath;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use iso7816_tlv::ber::{Tlv, Value};
use zeroize::Zeroizing;

use crate::apdu::build;
use crate::command::{ins, tag, DataObject, AID, CLA_ISO, CLA_PROPRIETARY, FIELD_MAX, PAYEE_NAME_MAX, PIN_REF};
use crate::pin::{PinBlock, PinFormatError, PukBlock};
use crate::tlv;
use paysim_otp::{Otp, TxFields, TxVersion, CHALLENGE_MAX, CHALLENGE_MIN};

/// An error answer from the card, typed for what the caller does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("wrong PIN: {tries_left} tries left")]
    WrongPin { tries_left: u8 },
    #[error("the PIN is blocked: unblock it with the PUK")]
    PinBlocked,
    #[error("wrong PUK: {tries_left} tries left")]
    WrongPuk { tries_left: u8 },
    #[error("the PUK is blocked: the card must be re-personalized by the bank")]
    PukBlocked,
    #[error("admin authentication failed: {tries_left} tries left before the admin key blocks")]
    AdminAuthFailed { tries_left: u8 },
    #[error("the card's admin key is blocked")]
    AdminBlocked,
    #[error("the card is not personalized")]
    NotPersonalized,
    #[error("the PIN has not been verified (or the admin session is not open)")]
    SecurityNotSatisfied,
    #[error("the card refused the command in its current state (6985)")]
    ConditionsNotSatisfied,
    #[error("the PAYSIM applet is not on this card")]
    AppletNotFound,
    #[error("the card does not hold this data object")]
    DataNotFound,
    #[error("the card could not write its memory; the command had no effect you can rely on")]
    MemoryFailure,
    #[error("the card rejected the protection of the command (wrong MAC)")]
    SecureMessaging,
    #[error("the card rejected the command data (6A80)")]
    BadData,
    #[error("the card reported a wrong length (6700)")]
    WrongLength,
    #[error("the card reported wrong parameters P1/P2 (6A86)")]
    WrongParameters,
    #[error("the card does not support this command ({0:04X})")]
    NotSupported(u16),
    #[error("the card answered status {0:04X}")]
    Status(u16),
    #[error("malformed card response: {0}")]
    Malformed(&'static str),
}

/// Why a request could not be built: the input is wrong before any card sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Pin(#[from] PinFormatError),
    #[error("the challenge must be {CHALLENGE_MIN} to {CHALLENGE_MAX} bytes")]
    Challenge,
    #[error("the verifier id must be 1 to {FIELD_MAX} bytes of UTF-8")]
    VerifierId,
    #[error("the transaction id must be 1 to {FIELD_MAX} bytes")]
    TransactionId,
    #[error("the currency must be 3 upper-case ASCII letters")]
    Currency,
    #[error("the payee must be 1 to {FIELD_MAX} bytes of UTF-8")]
    Payee,
    #[error("the source account must be 1 to {FIELD_MAX} bytes of UTF-8")]
    Source,
    #[error("the payee's name must be 1 to {PAYEE_NAME_MAX} bytes of UTF-8")]
    PayeeName,
    #[error("the card serial must be 1 to 16 characters of A-Z, 0-9 and '-'")]
    Serial,
}

/// Which command a status word answers, for the error mapping.
#[derive(Clone, Copy)]
enum Context {
    Pin,
    Puk,
    Admin,
    Otp,
    Other,
}

/// Splits a response into data and status word.
pub fn split(resp: &[u8]) -> Result<(&[u8], u16), CardError> {
    match resp.split_last_chunk::<2>() {
        Some((data, sw)) => Ok((data, u16::from_be_bytes(*sw))),
        None => Err(CardError::Malformed("shorter than a status word")),
    }
}

fn error_for(sw: u16, ctx: Context) -> CardError {
    let tries = u8::try_from(sw & 0x0F).unwrap_or(0);
    match (sw, ctx) {
        (0x63C0..=0x63CF, Context::Pin) => CardError::WrongPin { tries_left: tries },
        (0x63C0..=0x63CF, Context::Puk) => CardError::WrongPuk { tries_left: tries },
        (0x63C0..=0x63CF, Context::Admin) => CardError::AdminAuthFailed { tries_left: tries },
        (0x6983, Context::Pin) => CardError::PinBlocked,
        (0x6983, Context::Puk) => CardError::PukBlocked,
        (0x6983, Context::Admin) => CardError::AdminBlocked,
        (0x6985, Context::Pin | Context::Puk | Context::Otp) => CardError::NotPersonalized,
        (0x6985, _) => CardError::ConditionsNotSatisfied,
        (0x6982, _) => CardError::SecurityNotSatisfied,
        (0x6A82, _) => CardError::AppletNotFound,
        (0x6A88, _) => CardError::DataNotFound,
        (0x6581, _) => CardError::MemoryFailure,
        (0x6988, _) => CardError::SecureMessaging,
        (0x6A80, _) => CardError::BadData,
        (0x6700, _) => CardError::WrongLength,
        (0x6A86, _) => CardError::WrongParameters,
        (0x6D00 | 0x6E00 | 0x6884, _) => CardError::NotSupported(sw),
        _ => CardError::Status(sw),
    }
}

fn expect_ok(resp: &[u8], ctx: Context) -> Result<&[u8], CardError> {
    let (data, sw) = split(resp)?;
    if sw == 0x9000 {
        Ok(data)
    } else {
        Err(error_for(sw, ctx))
    }
}

/// Sends `apdu` with `transmit` and follows `61xx` with GET RESPONSE until the whole
/// answer is in; returns data ‖ final SW. Stops after 64 KiB of chained data, or when a
/// GET RESPONSE brings no data but asks for another, returning what arrived (whose `61xx`
/// SW then fails any parser): a card cannot keep the host in the loop.
pub fn transceive<E>(apdu: &[u8], transmit: &mut impl FnMut(&[u8]) -> Result<Vec<u8>, E>) -> Result<Vec<u8>, E> {
    let mut resp = transmit(apdu)?;
    let mut data = Vec::new();
    let mut first = true;
    loop {
        let Some((chunk, sw)) = resp.split_last_chunk::<2>() else {
            return Ok(resp);
        };
        // The first answer may be `61xx` alone (no Le in the command); an answer to
        // GET RESPONSE `Le = xx` that carries nothing makes no progress.
        let stalled = !first && chunk.is_empty();
        if sw[0] != 0x61 || stalled || data.len() > crate::apdu::EXTENDED_NE_MAX {
            data.extend_from_slice(chunk);
            data.extend_from_slice(sw);
            return Ok(data);
        }
        first = false;
        data.extend_from_slice(chunk);
        resp = transmit(&get_response(sw[1]))?;
    }
}

fn apdu(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8], ne: Option<usize>) -> Vec<u8> {
    // Every caller passes data under 256 bytes and Ne of 256: always encodable.
    build(cla, ins, p1, p2, data, ne).unwrap_or_default()
}

/// `00 C0 00 00 xx`: fetch up to `xx` waiting bytes (`00` = 256).
pub fn get_response(xx: u8) -> Vec<u8> {
    vec![CLA_ISO, ins::GET_RESPONSE, 0, 0, xx]
}

/// `00 A4 04 00 08 F0 50 41 59 53 49 4D 01 00`.
pub fn select() -> Vec<u8> {
    apdu(CLA_ISO, ins::SELECT, 0x04, 0x00, &AID, Some(256))
}

/// VERIFY with a PIN (4-8 digits).
pub fn verify(pin: &str) -> Result<Zeroizing<Vec<u8>>, RequestError> {
    let block = PinBlock::from_pin(pin)?;
    Ok(Zeroizing::new(apdu(CLA_ISO, ins::VERIFY, 0x00, PIN_REF, block.as_bytes(), None)))
}

/// VERIFY without data: asks whether the PIN is verified and how many tries are left.
pub fn verify_status() -> Vec<u8> {
    apdu(CLA_ISO, ins::VERIFY, 0x00, PIN_REF, &[], None)
}

/// VERIFY with P1 = `FF` and no data: the card forgets a verified PIN (ISO/IEC 7816-4
/// §11.5.6). The host sends it at the end of every exchange that touched the PIN.
pub fn verify_reset() -> Vec<u8> {
    apdu(CLA_ISO, ins::VERIFY, 0xFF, PIN_REF, &[], None)
}

/// CHANGE REFERENCE DATA: old PIN ‖ new PIN.
pub fn change_pin(old: &str, new: &str) -> Result<Zeroizing<Vec<u8>>, RequestError> {
    let mut data = Zeroizing::new(PinBlock::from_pin(old)?.as_bytes().to_vec());
    data.extend_from_slice(PinBlock::from_pin(new)?.as_bytes());
    Ok(Zeroizing::new(apdu(CLA_ISO, ins::CHANGE_REFERENCE_DATA, 0x00, PIN_REF, &data, None)))
}

/// RESET RETRY COUNTER: PUK (8 digits) ‖ new PIN.
pub fn reset_retry_counter(puk: &str, new_pin: &str) -> Result<Zeroizing<Vec<u8>>, RequestError> {
    let mut data = Zeroizing::new(PukBlock::from_puk(puk)?.as_bytes().to_vec());
    data.extend_from_slice(PinBlock::from_pin(new_pin)?.as_bytes());
    Ok(Zeroizing::new(apdu(CLA_ISO, ins::RESET_RETRY_COUNTER, 0x00, PIN_REF, &data, None)))
}

/// GET DATA `00 CA DF xx 00`.
pub fn get_data(obj: DataObject) -> Vec<u8> {
    let [p1, p2] = obj.tag().to_be_bytes();
    apdu(CLA_ISO, ins::GET_DATA, p1, p2, &[], Some(256))
}

fn check_challenge(challenge: &[u8]) -> Result<(), RequestError> {
    if (CHALLENGE_MIN..=CHALLENGE_MAX).contains(&challenge.len()) {
        Ok(())
    } else {
        Err(RequestError::Challenge)
    }
}

fn check_utf8(field: &[u8], err: RequestError) -> Result<(), RequestError> {
    if (1..=FIELD_MAX).contains(&field.len()) && core::str::from_utf8(field).is_ok() {
        Ok(())
    } else {
        Err(err)
    }
}

/// LOGIN OTP `80 10 00 00 Lc {01 challenge, 02 verifier id} 00`.
pub fn login_otp(challenge: &[u8], verifier_id: &str) -> Result<Vec<u8>, RequestError> {
    check_challenge(challenge)?;
    check_utf8(verifier_id.as_bytes(), RequestError::VerifierId)?;
    let data = tlv::encode_primitives(&[
        (u16::from(tag::CHALLENGE), challenge),
        (u16::from(tag::VERIFIER_ID), verifier_id.as_bytes()),
    ])
    .ok_or(RequestError::Challenge)?;
    Ok(apdu(CLA_PROPRIETARY, ins::LOGIN_OTP, 0, 0, &data, Some(256)))
}

/// TRANSACTION OTP `80 12 00 00 Lc {01, 02, 05, 06, 07, 08} 00` for context version 1, and
/// `{01, 02, 05, 06, 07, 08, 09, 0A}` for version 2 (extended Lc when over 255 bytes).
pub fn tx_otp(challenge: &[u8], tx: &TxFields<'_>) -> Result<Vec<u8>, RequestError> {
    check_challenge(challenge)?;
    check_utf8(tx.verifier_id, RequestError::VerifierId)?;
    if !(1..=FIELD_MAX).contains(&tx.transaction_id.len()) {
        return Err(RequestError::TransactionId);
    }
    if !tx.currency.iter().all(u8::is_ascii_uppercase) {
        return Err(RequestError::Currency);
    }
    check_utf8(tx.payee, RequestError::Payee)?;
    let amount = tx.amount_minor.to_be_bytes();
    let mut items = vec![
        (u16::from(tag::CHALLENGE), challenge),
        (u16::from(tag::VERIFIER_ID), tx.verifier_id),
        (u16::from(tag::TRANSACTION_ID), tx.transaction_id),
        (u16::from(tag::AMOUNT), &amount[..]),
        (u16::from(tag::CURRENCY), &tx.currency[..]),
        (u16::from(tag::PAYEE), tx.payee),
    ];
    if tx.version == TxVersion::V2 {
        check_utf8(tx.source, RequestError::Source)?;
        if !(1..=PAYEE_NAME_MAX).contains(&tx.payee_name.len()) || core::str::from_utf8(tx.payee_name).is_err() {
            return Err(RequestError::PayeeName);
        }
        items.push((u16::from(tag::SOURCE), tx.source));
        items.push((u16::from(tag::PAYEE_NAME), tx.payee_name));
    }
    let data = tlv::encode_primitives(&items).ok_or(RequestError::Challenge)?;
    // Under 65536 bytes by the checks above, so `build` always encodes it (short or extended).
    Ok(build(CLA_PROPRIETARY, ins::TRANSACTION_OTP, 0, 0, &data, Some(256)).unwrap_or_default())
}

/// What SELECT's FCI says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fci {
    /// Applet version (major, minor).
    pub version: [u8; 2],
    /// Life-cycle byte: `03` factory, `05` personalized.
    pub life_cycle: u8,
    /// The card serial, once personalized.
    pub serial: Option<String>,
    /// The transaction-context versions the card announces (`DF08`); a card without `DF08`
    /// (applet 1.0) signs version 1 only.
    pub tx_versions: Vec<TxVersion>,
}

impl Fci {
    /// Whether the card has been personalized.
    pub fn personalized(&self) -> bool {
        self.life_cycle == crate::card::LCS_OPERATIONAL
    }

    /// The newest transaction-context version the card signs.
    pub fn best_tx_version(&self) -> TxVersion {
        self.tx_versions.iter().copied().max().unwrap_or(TxVersion::V1)
    }
}

/// Reads `DF08`'s value: version numbers, each known to this build; unknown numbers (a newer
/// card) are skipped, an empty list is malformed.
pub fn parse_tx_versions(value: &[u8]) -> Result<Vec<TxVersion>, CardError> {
    let versions: Vec<TxVersion> = value.iter().filter_map(|&n| TxVersion::from_number(n)).collect();
    if versions.is_empty() {
        return Err(CardError::Malformed("DF08 names no transaction-context version this build knows"));
    }
    Ok(versions)
}

/// GET DATA `DF08`'s answer: the versions, or `[V1]` for a card without the object (`6A88`,
/// applet 1.0).
pub fn parse_get_tx_versions(resp: &[u8]) -> Result<Vec<TxVersion>, CardError> {
    match parse_get_data(resp) {
        Ok(v) => parse_tx_versions(&v),
        Err(CardError::DataNotFound) => Ok(vec![TxVersion::V1]),
        Err(e) => Err(e),
    }
}

/// Parses SELECT's answer: `6F { 84 AID, A5 { DF05, DF04, [DF01], [DF08] } }` + `9000`.
pub fn parse_select(resp: &[u8]) -> Result<Fci, CardError> {
    let data = expect_ok(resp, Context::Other)?;
    let bad = CardError::Malformed("FCI");
    if !tlv::depth_ok(data, 2) {
        return Err(bad);
    }
    let fci = Tlv::from_bytes(data).map_err(|_| bad.clone())?;
    if tlv::tag_number(fci.tag()) != 0x6F {
        return Err(bad);
    }
    let Value::Constructed(items) = fci.value() else {
        return Err(bad);
    };
    let mut aid_ok = false;
    let (mut version, mut life_cycle, mut serial, mut tx_versions) = (None, None, None, None);
    for item in items {
        match (tlv::tag_number(item.tag()), item.value()) {
            (0x84, Value::Primitive(v)) => aid_ok = v.as_slice() == AID,
            (0xA5, Value::Constructed(props)) => {
                for p in props {
                    match (tlv::tag_number(p.tag()), p.value()) {
                        (0xDF05, Value::Primitive(v)) => version = <[u8; 2]>::try_from(v.as_slice()).ok(),
                        (0xDF04, Value::Primitive(v)) if v.len() == 1 => life_cycle = v.first().copied(),
                        (0xDF01, Value::Primitive(v)) => serial = String::from_utf8(v.clone()).ok(),
                        (0xDF08, Value::Primitive(v)) => tx_versions = Some(parse_tx_versions(v)?),
                        // Objects a later applet version may add are skipped.
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if !aid_ok {
        return Err(CardError::Malformed("FCI names another application"));
    }
    Ok(Fci {
        version: version.ok_or(CardError::Malformed("FCI without version"))?,
        life_cycle: life_cycle.ok_or(CardError::Malformed("FCI without life-cycle state"))?,
        serial,
        tx_versions: tx_versions.unwrap_or_else(|| vec![TxVersion::V1]),
    })
}

/// Parses VERIFY, CHANGE REFERENCE DATA: `Ok` when the PIN was right.
/// `WrongPin{tries_left}`, `PinBlocked`, `NotPersonalized`, `MemoryFailure`, ...
pub fn parse_verify(resp: &[u8]) -> Result<(), CardError> {
    expect_ok(resp, Context::Pin).map(|_| ())
}

/// Where the PIN stands, from a VERIFY without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    Verified,
    NotVerified { tries_left: u8 },
    Blocked,
}

/// Parses the answer to [`verify_status`].
pub fn parse_pin_status(resp: &[u8]) -> Result<PinStatus, CardError> {
    match expect_ok(resp, Context::Pin) {
        Ok(_) => Ok(PinStatus::Verified),
        Err(CardError::WrongPin { tries_left }) => Ok(PinStatus::NotVerified { tries_left }),
        Err(CardError::PinBlocked) => Ok(PinStatus::Blocked),
        Err(e) => Err(e),
    }
}

/// Parses CHANGE REFERENCE DATA (same errors as VERIFY).
pub fn parse_change_pin(resp: &[u8]) -> Result<(), CardError> {
    parse_verify(resp)
}

/// Parses RESET RETRY COUNTER: `WrongPuk{tries_left}`, `PukBlocked`, ...
pub fn parse_reset_retry_counter(resp: &[u8]) -> Result<(), CardError> {
    expect_ok(resp, Context::Puk).map(|_| ())
}

/// Parses GET DATA: the object's value. `DataNotFound` when the card has no such object yet.
pub fn parse_get_data(resp: &[u8]) -> Result<Vec<u8>, CardError> {
    expect_ok(resp, Context::Other).map(<[u8]>::to_vec)
}

/// Parses GET DATA `DF02` (next counter).
pub fn parse_counter(resp: &[u8]) -> Result<u64, CardError> {
    let v = expect_ok(resp, Context::Other)?;
    let b: [u8; 8] = v.try_into().map_err(|_| CardError::Malformed("counter is not 8 bytes"))?;
    Ok(u64::from_be_bytes(b))
}

/// Parses GET DATA `DF01` (serial).
pub fn parse_serial(resp: &[u8]) -> Result<String, CardError> {
    let v = expect_ok(resp, Context::Other)?;
    String::from_utf8(v.to_vec()).map_err(|_| CardError::Malformed("serial is not UTF-8"))
}

/// Parses a one-byte GET DATA answer (`DF03`, `DF04`, `DF06`, `DF07`).
pub fn parse_byte(resp: &[u8]) -> Result<u8, CardError> {
    match expect_ok(resp, Context::Other)? {
        [b] => Ok(*b),
        _ => Err(CardError::Malformed("expected one byte")),
    }
}

/// Parses LOGIN OTP / TRANSACTION OTP: `03 08 counter ‖ 04 08 code` → (counter, code).
/// `SecurityNotSatisfied` (PIN not verified), `NotPersonalized`, `MemoryFailure`, ...
pub fn parse_otp(resp: &[u8]) -> Result<(u64, Otp), CardError> {
    let data = expect_ok(resp, Context::Otp)?;
    let [counter, otp] =
        tlv::parse_flat(data, [tag::COUNTER, tag::OTP]).ok_or(CardError::Malformed("OTP answer TLV"))?;
    let counter: [u8; 8] = counter
        .ok_or(CardError::Malformed("OTP answer without counter"))?
        .try_into()
        .map_err(|_| CardError::Malformed("counter is not 8 bytes"))?;
    let otp = otp.ok_or(CardError::Malformed("OTP answer without code"))?;
    let otp = core::str::from_utf8(otp)
        .ok()
        .and_then(Otp::from_digits)
        .ok_or(CardError::Malformed("code is not 8 digits"))?;
    Ok((u64::from_be_bytes(counter), otp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A card (or something pretending to be one) answers the bridge: whatever it sends, the
    /// host parsers return a value or an error, never a panic.
    fn parse_everything(resp: &[u8]) {
        let _ = split(resp);
        let _ = parse_select(resp);
        let _ = parse_verify(resp);
        let _ = parse_pin_status(resp);
        let _ = parse_reset_retry_counter(resp);
        let _ = parse_get_data(resp);
        let _ = parse_counter(resp);
        let _ = parse_serial(resp);
        let _ = parse_byte(resp);
        let _ = parse_otp(resp);
        let mut s = admin::AdminSession::with_host_challenge(&[1; 32], [2; 16]);
        let _ = s.external_authenticate(resp);
        let _ = s.check_authenticated(resp);
    }

    #[test]
    fn hostile_answers_are_errors() {
        // 6F with 2000 nested constructed objects: refused before the recursive parser.
        let mut deep = Vec::new();
        for _ in 0..2000 {
            deep.extend_from_slice(&[0x6F, 0x80]);
        }
        deep.extend_from_slice(&[0x90, 0x00]);
        assert_eq!(parse_select(&deep), Err(CardError::Malformed("FCI")));
        parse_everything(&deep);
        for resp in [&[][..], &[0x90], &[0x90, 0x00], &[0x6F, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x90, 0x00]] {
            parse_everything(resp);
        }
        let truncated = [0x03, 0x08, 0, 0, 0, 0, 0, 0, 0, 1, 0x04, 0x08, b'1', 0x90, 0x00];
        assert_eq!(parse_otp(&truncated).unwrap_err(), CardError::Malformed("OTP answer TLV"));
        assert!(matches!(parse_otp(&[0x90, 0x00]), Err(CardError::Malformed(_))));
    }

    /// A card that answers every GET RESPONSE with `61 00` and no data: `transceive`
    /// returns (with the `61xx` a parser then refuses) instead of asking forever.
    #[test]
    fn a_card_that_never_delivers_cannot_keep_the_host_looping() {
        let mut calls = 0usize;
        let mut transmit = |_: &[u8]| -> Result<Vec<u8>, usize> {
            calls += 1;
            if calls > 1000 {
                return Err(calls);
            }
            Ok(vec![0x61, 0x00])
        };
        let resp = transceive(&select(), &mut transmit).expect("transceive kept asking");
        assert_eq!(resp, [0x61, 0x00]);
        assert_eq!(calls, 2, "the command, then one GET RESPONSE");
        assert_eq!(parse_select(&resp), Err(CardError::Status(0x6100)));
        // A real chained answer still arrives whole: 61xx alone first, then the data.
        let mut parts = vec![vec![0x61, 0x03], vec![1, 2, 0x61, 0x01], vec![3, 0x90, 0x00]].into_iter();
        let mut transmit = |_: &[u8]| -> Result<Vec<u8>, ()> { parts.next().ok_or(()) };
        assert_eq!(transceive(&select(), &mut transmit), Ok(vec![1, 2, 3, 0x90, 0x00]));
    }

    proptest! {
        #[test]
        fn random_answers_never_panic_the_host(resp in proptest::collection::vec(any::<u8>(), 0..400)) {
            parse_everything(&resp);
            let mut with_ok = resp.clone();
            with_ok.extend_from_slice(&[0x90, 0x00]);
            parse_everything(&with_ok);
        }
    }
}
