//! The applet's commands and their complete, panic-free parser.
//!
//! Every [`CommandView`] becomes a typed [`Command`] or a status word. Checks are made in
//! this order, so each malformed APDU gets the first applicable answer:
//!
//! 1. CLA: `00` (ISO inter-industry) or `80` (proprietary). The chaining bit on either →
//!    `6884`; an instruction known only in the other class, or any other CLA → `6E00`.
//! 2. INS unknown in its class → `6D00`.
//! 3. P1/P2 → `6A86` (for GET DATA, where P1-P2 is the tag: unknown tag → `6A88`).
//! 4. Lc / data length → `6700`.
//! 5. Data contents (PIN format, TLV structure, field lengths) → `6A80`.
//!
//! Only spec checks live here; whether the card is personalized or the PIN verified is
//! decided by the handlers in [`crate::card`].

use iso7816::Status;

use crate::apdu::CommandView;
use crate::pin::{PinBlock, PukBlock, BLOCK_LEN};
use crate::scp::{CHALLENGE_LEN, MAC_LEN};
use crate::tlv::parse_flat;
use paysim_otp::{TxFields, TxVersion};

/// The applet's AID: `F0 50 41 59 53 49 4D 01` (proprietary RID `F0`, "PAYSIM", version 1).
pub const AID: [u8; 8] = [0xF0, 0x50, 0x41, 0x59, 0x53, 0x49, 0x4D, 0x01];

/// Inter-industry class byte.
pub const CLA_ISO: u8 = 0x00;
/// Proprietary class byte.
pub const CLA_PROPRIETARY: u8 = 0x80;

/// Instruction bytes.
pub mod ins {
    pub const SELECT: u8 = 0xA4;
    pub const VERIFY: u8 = 0x20;
    pub const CHANGE_REFERENCE_DATA: u8 = 0x24;
    pub const RESET_RETRY_COUNTER: u8 = 0x2C;
    pub const GET_DATA: u8 = 0xCA;
    pub const GET_CHALLENGE: u8 = 0x84;
    pub const EXTERNAL_AUTHENTICATE: u8 = 0x82;
    pub const GET_RESPONSE: u8 = 0xC0;
    pub const LOGIN_OTP: u8 = 0x10;
    pub const TRANSACTION_OTP: u8 = 0x12;
    pub const PERSONALIZE: u8 = 0xE2;
}

/// PIN reference in P2 of VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER
/// (ISO/IEC 7816-4 §7.5.1: `81` = specific reference data, number 1).
pub const PIN_REF: u8 = 0x81;

/// TLV tags of the OTP commands' data fields and answers.
pub mod tag {
    pub const CHALLENGE: u8 = 0x01;
    pub const VERIFIER_ID: u8 = 0x02;
    pub const COUNTER: u8 = 0x03;
    pub const OTP: u8 = 0x04;
    pub const TRANSACTION_ID: u8 = 0x05;
    pub const AMOUNT: u8 = 0x06;
    pub const CURRENCY: u8 = 0x07;
    pub const PAYEE: u8 = 0x08;
    /// TRANSACTION OTP, context version 2: the source account.
    pub const SOURCE: u8 = 0x09;
    /// TRANSACTION OTP, context version 2: the payee's name, UTF-8.
    pub const PAYEE_NAME: u8 = 0x0A;
    /// PERSONALIZE plaintext: 32-byte seed `ck_0`.
    pub const SEED: u8 = 0x81;
    /// PERSONALIZE plaintext: PIN block.
    pub const PIN: u8 = 0x82;
    /// PERSONALIZE plaintext: PUK block.
    pub const PUK: u8 = 0x83;
    /// PERSONALIZE plaintext: card serial.
    pub const SERIAL: u8 = 0x84;
}

/// Longest verifier id, transaction id, source and payee, in bytes.
pub const FIELD_MAX: usize = 64;
/// Longest payee name, in bytes: 70 characters (the SEPA limit) of up to 4 bytes of UTF-8.
pub const PAYEE_NAME_MAX: usize = 280;

/// The data objects GET DATA returns (P1-P2 = tag). None of them is key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataObject {
    /// `DF01`: card serial (ASCII).
    Serial,
    /// `DF02`: counter of the next code, 8 bytes big-endian.
    NextCounter,
    /// `DF03`: PIN tries left, 1 byte.
    PinTries,
    /// `DF04`: life-cycle state, 1 byte (ISO/IEC 7816-4 §7.4.10: `03` factory / `05` operational).
    LifeCycle,
    /// `DF05`: applet version, 2 bytes (major, minor).
    AppletVersion,
    /// `DF06`: PUK tries left, 1 byte.
    PukTries,
    /// `DF07`: admin authentication tries left, 1 byte.
    AdminTries,
    /// `DF08`: the transaction-context versions the card signs, one byte each, ascending
    /// (`01 02`). Cards of applet version 1.0 do not have it (`6A88`): they sign version 1 only.
    TxVersions,
}

impl DataObject {
    /// The GET DATA tag (P1-P2).
    pub fn tag(self) -> u16 {
        match self {
            Self::Serial => 0xDF01,
            Self::NextCounter => 0xDF02,
            Self::PinTries => 0xDF03,
            Self::LifeCycle => 0xDF04,
            Self::AppletVersion => 0xDF05,
            Self::PukTries => 0xDF06,
            Self::AdminTries => 0xDF07,
            Self::TxVersions => 0xDF08,
        }
    }

    /// The object with this tag.
    pub fn from_tag(tag: u16) -> Option<Self> {
        Some(match tag {
            0xDF01 => Self::Serial,
            0xDF02 => Self::NextCounter,
            0xDF03 => Self::PinTries,
            0xDF04 => Self::LifeCycle,
            0xDF05 => Self::AppletVersion,
            0xDF06 => Self::PukTries,
            0xDF07 => Self::AdminTries,
            0xDF08 => Self::TxVersions,
            _ => return None,
        })
    }
}

/// What a VERIFY asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// `00 20 00 81` without data: report the verification status.
    Status,
    /// `00 20 00 81 08 <PIN block>`: check the PIN.
    Check(PinBlock),
    /// `00 20 FF 81` without data: forget a verified PIN (ISO/IEC 7816-4 §7.5.6).
    Reset,
}

/// Data of LOGIN OTP, borrowed from the APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest<'a> {
    pub challenge: &'a [u8],
    pub verifier_id: &'a [u8],
}

/// Data of TRANSACTION OTP, borrowed from the APDU: the challenge and the fields the code
/// binds, as the one [`TxFields`] type the bank and the terminal use too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRequest<'a> {
    pub challenge: &'a [u8],
    pub fields: TxFields<'a>,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `00 A4 04 P2 Lc AID`; `fci` is false for P2 = `0C` (no response data).
    Select {
        aid: &'a [u8],
        fci: bool,
    },
    Verify(Verify),
    ChangeReferenceData {
        old: PinBlock,
        new: PinBlock,
    },
    ResetRetryCounter {
        puk: PukBlock,
        new_pin: PinBlock,
    },
    GetData(DataObject),
    LoginOtp(LoginRequest<'a>),
    TransactionOtp(TxRequest<'a>),
    GetChallenge,
    ExternalAuthenticate {
        host_challenge: [u8; CHALLENGE_LEN],
        host_cryptogram: [u8; MAC_LEN],
    },
    /// `80 E2 00 00 Lc ciphertext ‖ C-MAC`.
    Personalize {
        header: [u8; 4],
        protected: &'a [u8],
    },
}

fn require(ok: bool, sw: Status) -> Result<(), Status> {
    if ok {
        Ok(())
    } else {
        Err(sw)
    }
}

fn p1p2(v: &CommandView<'_>, p1: u8, p2: u8) -> Result<(), Status> {
    require(v.p1 == p1 && v.p2 == p2, Status::IncorrectP1OrP2Parameter)
}

fn no_data(v: &CommandView<'_>) -> Result<(), Status> {
    require(v.data.is_empty(), Status::WrongLength)
}

fn bad_data() -> Status {
    Status::IncorrectDataParameter
}

fn utf8_field(value: &[u8]) -> Result<&[u8], Status> {
    require((1..=FIELD_MAX).contains(&value.len()) && core::str::from_utf8(value).is_ok(), bad_data())?;
    Ok(value)
}

fn challenge_field(value: &[u8]) -> Result<&[u8], Status> {
    require((paysim_otp::CHALLENGE_MIN..=paysim_otp::CHALLENGE_MAX).contains(&value.len()), bad_data())?;
    Ok(value)
}

/// The class a command is sent in (ISO/IEC 7816-4 §5.4.1).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Iso,
    Proprietary,
}

/// The instructions the applet knows, each in one class. GET RESPONSE is answered by the
/// frame layer ([`crate::front`]) and never reaches this parser.
#[derive(Clone, Copy)]
enum Instruction {
    Select,
    Verify,
    ChangeReferenceData,
    ResetRetryCounter,
    GetData,
    GetChallenge,
    ExternalAuthenticate,
    LoginOtp,
    TransactionOtp,
    Personalize,
}

impl Instruction {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            ins::SELECT => Self::Select,
            ins::VERIFY => Self::Verify,
            ins::CHANGE_REFERENCE_DATA => Self::ChangeReferenceData,
            ins::RESET_RETRY_COUNTER => Self::ResetRetryCounter,
            ins::GET_DATA => Self::GetData,
            ins::GET_CHALLENGE => Self::GetChallenge,
            ins::EXTERNAL_AUTHENTICATE => Self::ExternalAuthenticate,
            ins::LOGIN_OTP => Self::LoginOtp,
            ins::TRANSACTION_OTP => Self::TransactionOtp,
            ins::PERSONALIZE => Self::Personalize,
            _ => return None,
        })
    }

    fn class(self) -> Class {
        match self {
            Self::Select
            | Self::Verify
            | Self::ChangeReferenceData
            | Self::ResetRetryCounter
            | Self::GetData
            | Self::GetChallenge
            | Self::ExternalAuthenticate => Class::Iso,
            Self::LoginOtp | Self::TransactionOtp | Self::Personalize => Class::Proprietary,
        }
    }
}

/// Step 1 of the check order: the class byte. Command chaining (bit 5) is refused.
fn class_of(cla: u8) -> Result<Class, Status> {
    match cla {
        CLA_ISO => Ok(Class::Iso),
        CLA_PROPRIETARY => Ok(Class::Proprietary),
        c if c & 0x10 != 0 && matches!(c & !0x10, CLA_ISO | CLA_PROPRIETARY) => {
            Err(Status::CommandChainingNotSupported)
        }
        _ => Err(Status::ClassNotSupported),
    }
}

impl<'a> TryFrom<CommandView<'a>> for Command<'a> {
    type Error = Status;

    fn try_from(v: CommandView<'a>) -> Result<Self, Status> {
        let class = class_of(v.cla)?;
        let instruction = Instruction::from_byte(v.ins).ok_or(Status::InstructionNotSupportedOrInvalid)?;
        require(instruction.class() == class, Status::ClassNotSupported)?;
        match instruction {
            Instruction::Select => select(v),
            Instruction::Verify => verify(v),
            Instruction::ChangeReferenceData => change_reference_data(v),
            Instruction::ResetRetryCounter => reset_retry_counter(v),
            Instruction::GetData => get_data(v),
            Instruction::GetChallenge => get_challenge(v),
            Instruction::ExternalAuthenticate => external_authenticate(v),
            Instruction::LoginOtp => login_otp(v),
            Instruction::TransactionOtp => transaction_otp(v),
            Instruction::Personalize => personalize(v),
        }
    }
}

/// SELECT `00 A4 04 00|0C Lc DF-name`: `6A86` other P1/P2, `6700` name not 1-16 bytes.
fn select(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    require(v.p1 == 0x04 && matches!(v.p2, 0x00 | 0x0C), Status::IncorrectP1OrP2Parameter)?;
    require((1..=16).contains(&v.data.len()), Status::WrongLength)?;
    Ok(Command::Select { aid: v.data, fci: v.p2 == 0x00 })
}

/// VERIFY `00 20 00|FF 81 [08 PIN block]`: `6A86` other P1/P2, `6700` a data field of
/// another length (or any data with P1 = `FF`), `6A80` not a PIN block.
fn verify(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    require(v.p2 == PIN_REF, Status::IncorrectP1OrP2Parameter)?;
    match (v.p1, v.data.len()) {
        (0x00, 0) => Ok(Command::Verify(Verify::Status)),
        (0x00, BLOCK_LEN) => Ok(Command::Verify(Verify::Check(PinBlock::from_block(v.data).map_err(|_| bad_data())?))),
        (0xFF, 0) => Ok(Command::Verify(Verify::Reset)),
        (0x00 | 0xFF, _) => Err(Status::WrongLength),
        _ => Err(Status::IncorrectP1OrP2Parameter),
    }
}

/// CHANGE REFERENCE DATA `00 24 00 81 10 old ‖ new`: `6A86`, `6700`, `6A80`.
fn change_reference_data(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    p1p2(&v, 0x00, PIN_REF)?;
    require(v.data.len() == 2 * BLOCK_LEN, Status::WrongLength)?;
    let (old, new) = v.data.split_at(BLOCK_LEN);
    Ok(Command::ChangeReferenceData {
        old: PinBlock::from_block(old).map_err(|_| bad_data())?,
        new: PinBlock::from_block(new).map_err(|_| bad_data())?,
    })
}

/// RESET RETRY COUNTER `00 2C 00 81 10 PUK ‖ new PIN`: `6A86`, `6700`, `6A80`.
fn reset_retry_counter(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    p1p2(&v, 0x00, PIN_REF)?;
    require(v.data.len() == 2 * BLOCK_LEN, Status::WrongLength)?;
    let (puk, pin) = v.data.split_at(BLOCK_LEN);
    Ok(Command::ResetRetryCounter {
        puk: PukBlock::from_block(puk).map_err(|_| bad_data())?,
        new_pin: PinBlock::from_block(pin).map_err(|_| bad_data())?,
    })
}

/// GET DATA `00 CA tag`: `6A88` unknown tag, `6700` data present.
fn get_data(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    let obj = DataObject::from_tag(u16::from_be_bytes([v.p1, v.p2])).ok_or(Status::KeyReferenceNotFound)?;
    no_data(&v)?;
    Ok(Command::GetData(obj))
}

/// GET CHALLENGE `00 84 00 00`: `6A86`, `6700` data present.
fn get_challenge(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    p1p2(&v, 0x00, 0x00)?;
    no_data(&v)?;
    Ok(Command::GetChallenge)
}

/// EXTERNAL AUTHENTICATE `00 82 00 00 20 host challenge ‖ host cryptogram`: `6A86`, `6700`.
fn external_authenticate(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    p1p2(&v, 0x00, 0x00)?;
    let Some((host_challenge, host_cryptogram)) = v.data.split_first_chunk::<CHALLENGE_LEN>() else {
        return Err(Status::WrongLength);
    };
    let host_cryptogram: [u8; MAC_LEN] = host_cryptogram.try_into().map_err(|_| Status::WrongLength)?;
    Ok(Command::ExternalAuthenticate { host_challenge: *host_challenge, host_cryptogram })
}

/// LOGIN OTP `80 10 00 00 Lc {01 challenge, 02 verifier id}`: `6A86`, `6700` no data,
/// `6A80` a field missing, repeated, unknown or out of range.
fn login_otp(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    p1p2(&v, 0x00, 0x00)?;
    require(!v.data.is_empty(), Status::WrongLength)?;
    let [challenge, verifier_id] = parse_flat(v.data, [tag::CHALLENGE, tag::VERIFIER_ID]).ok_or_else(bad_data)?;
    Ok(Command::LoginOtp(LoginRequest {
        challenge: challenge_field(challenge.ok_or_else(bad_data)?)?,
        verifier_id: utf8_field(verifier_id.ok_or_else(bad_data)?)?,
    }))
}

/// TRANSACTION OTP `80 12 00 00 Lc {01, 02, 05, 06, 07, 08, [09, 0A]}`: as LOGIN OTP; the
/// amount is 8 bytes, the currency 3 upper-case ASCII letters. With both `09` (source, 1-64
/// bytes of UTF-8) and `0A` (payee name, 1-280 bytes of UTF-8) the card signs context
/// version 2; with neither, version 1; with only one of them `6A80`.
fn transaction_otp(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    p1p2(&v, 0x00, 0x00)?;
    require(!v.data.is_empty(), Status::WrongLength)?;
    let [challenge, verifier_id, tx_id, amount, currency, payee, source, payee_name] = parse_flat(
        v.data,
        [
            tag::CHALLENGE,
            tag::VERIFIER_ID,
            tag::TRANSACTION_ID,
            tag::AMOUNT,
            tag::CURRENCY,
            tag::PAYEE,
            tag::SOURCE,
            tag::PAYEE_NAME,
        ],
    )
    .ok_or_else(bad_data)?;
    let (version, source, payee_name) = match (source, payee_name) {
        (None, None) => (TxVersion::V1, &[][..], &[][..]),
        (Some(source), Some(name)) => {
            require((1..=PAYEE_NAME_MAX).contains(&name.len()) && core::str::from_utf8(name).is_ok(), bad_data())?;
            (TxVersion::V2, utf8_field(source)?, name)
        }
        _ => return Err(bad_data()),
    };
    let tx_id = tx_id.ok_or_else(bad_data)?;
    require((1..=FIELD_MAX).contains(&tx_id.len()), bad_data())?;
    let amount: [u8; 8] = amount.ok_or_else(bad_data)?.try_into().map_err(|_| bad_data())?;
    let currency: &[u8; 3] = currency.ok_or_else(bad_data)?.try_into().map_err(|_| bad_data())?;
    require(currency.iter().all(u8::is_ascii_uppercase), bad_data())?;
    Ok(Command::TransactionOtp(TxRequest {
        challenge: challenge_field(challenge.ok_or_else(bad_data)?)?,
        fields: TxFields {
            version,
            verifier_id: utf8_field(verifier_id.ok_or_else(bad_data)?)?,
            transaction_id: tx_id,
            amount_minor: u64::from_be_bytes(amount),
            currency,
            source,
            payee: utf8_field(payee.ok_or_else(bad_data)?)?,
            payee_name,
        },
    }))
}

/// PERSONALIZE `80 E2 00 00 Lc ciphertext ‖ C-MAC`: `6A86`; `6700` unless at least one
/// cipher block plus the C-MAC, in whole blocks.
fn personalize(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    p1p2(&v, 0x00, 0x00)?;
    require(v.data.len() >= 32 && v.data.len().is_multiple_of(16), Status::WrongLength)?;
    Ok(Command::Personalize { header: [v.cla, v.ins, v.p1, v.p2], protected: v.data })
}
