//! The APDUs the bridge sends and the answers it parses (docs/protocol.md, ISO 7816-4).
//!
//! Builders return complete short APDUs (ISO 7816-4 §5.1, case 3 or 4 with Le = `00`);
//! parsers take the data field of a `9000` answer. Status words are turned into [`Error`]s
//! by [`check`], per command, so that "63C1 to VERIFY" becomes `WrongPin { tries_left: 1 }`.

use crate::error::{Error, Result};
use zeroize::Zeroizing;

/// The PAYSIM applet's AID.
pub const AID: [u8; 8] = [0xF0, 0x50, 0x41, 0x59, 0x53, 0x49, 0x4D, 0x01];
/// The PIN reference in P2 of VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER.
const PIN_REF: u8 = 0x81;

/// SELECT by AID (ISO 7816-4 §11.2.2), first or only occurrence, FCI requested.
pub fn select() -> Vec<u8> {
    case4(0x00, 0xA4, 0x04, 0x00, &AID)
}

/// VERIFY (ISO 7816-4 §11.5.6) with the PIN padded to 8 bytes with `FF`.
pub fn verify(pin: &Pin) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(case3(0x00, 0x20, 0x00, PIN_REF, pin.padded().as_slice()))
}

/// VERIFY with no data: asks for the PIN's state (`63Cx` tries left, `9000` verified).
pub fn verify_status() -> Vec<u8> {
    vec![0x00, 0x20, 0x00, PIN_REF]
}

/// CHANGE REFERENCE DATA (ISO 7816-4 §11.5.7): old PIN ‖ new PIN, each padded to 8 bytes.
pub fn change_pin(old: &Pin, new: &Pin) -> Zeroizing<Vec<u8>> {
    let mut data = Zeroizing::new(Vec::with_capacity(16));
    data.extend_from_slice(old.padded().as_slice());
    data.extend_from_slice(new.padded().as_slice());
    Zeroizing::new(case3(0x00, 0x24, 0x00, PIN_REF, &data))
}

/// RESET RETRY COUNTER (ISO 7816-4 §11.5.10): PUK (8 digits) ‖ new PIN padded to 8 bytes.
pub fn unblock(puk: &Puk, new: &Pin) -> Zeroizing<Vec<u8>> {
    let mut data = Zeroizing::new(Vec::with_capacity(16));
    data.extend_from_slice(puk.0.as_bytes());
    data.extend_from_slice(new.padded().as_slice());
    Zeroizing::new(case3(0x00, 0x2C, 0x00, PIN_REF, &data))
}

/// The data objects of GET DATA (`00 CA DF xx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataObject {
    Serial = 0x01,
    NextCounter = 0x02,
    PinTries = 0x03,
    LifeCycle = 0x04,
    Version = 0x05,
}

/// GET DATA (ISO 7816-4 §11.4.3) for one data object, Le = `00`.
pub fn get_data(obj: DataObject) -> Vec<u8> {
    vec![0x00, 0xCA, 0xDF, obj as u8, 0x00]
}

/// LOGIN OTP: tag 01 challenge, tag 02 verifier id.
pub fn login_otp(challenge: &[u8], verifier_id: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    tlv(&mut data, 0x01, challenge)?;
    tlv(&mut data, 0x02, verifier_id.as_bytes())?;
    Ok(case4(0x80, 0x10, 0x00, 0x00, &data))
}

/// What the card signs for a transfer (the shared contract in the team brief).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxRequest<'a> {
    pub challenge: &'a [u8],
    pub verifier_id: &'a str,
    pub transaction_id: &'a str,
    pub amount_minor: u64,
    pub currency: &'a [u8; 3],
    pub payee: &'a str,
}

/// TRANSACTION OTP: LOGIN OTP's tags plus 05 transaction id, 06 amount (8 bytes BE),
/// 07 currency, 08 payee.
pub fn tx_otp(tx: &TxRequest<'_>) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    tlv(&mut data, 0x01, tx.challenge)?;
    tlv(&mut data, 0x02, tx.verifier_id.as_bytes())?;
    tlv(&mut data, 0x05, tx.transaction_id.as_bytes())?;
    tlv(&mut data, 0x06, &tx.amount_minor.to_be_bytes())?;
    tlv(&mut data, 0x07, tx.currency)?;
    tlv(&mut data, 0x08, tx.payee.as_bytes())?;
    let apdu = case4(0x80, 0x12, 0x00, 0x00, &data);
    Ok(apdu)
}

/// The card's answer to LOGIN OTP or TRANSACTION OTP.
#[derive(Clone, PartialEq, Eq)]
pub struct CardOtp {
    /// The counter the code was computed at (the bank needs it).
    pub counter: u64,
    /// Eight ASCII digits.
    pub otp: Zeroizing<String>,
}

impl std::fmt::Debug for CardOtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardOtp")
            .field("counter", &self.counter)
            .field("otp", &"<8 digits>")
            .finish()
    }
}

/// Parses the answer to an OTP command: tag 03 counter (8 bytes), tag 04 OTP (8 digits).
pub fn parse_otp(command: &'static str, data: &[u8]) -> Result<CardOtp> {
    let bad = |reason: &str| Error::BadCardResponse {
        command,
        reason: reason.to_owned(),
    };
    let mut counter = None;
    let mut otp = None;
    for (tag, value) in parse_tlvs(data).map_err(|r| bad(&r))? {
        match tag {
            0x03 => {
                let b: [u8; 8] = value
                    .try_into()
                    .map_err(|_| bad("counter is not 8 bytes"))?;
                counter = Some(u64::from_be_bytes(b));
            }
            0x04 => {
                if value.len() != 8 || !value.iter().all(u8::is_ascii_digit) {
                    return Err(bad("code is not 8 digits"));
                }
                otp = Some(Zeroizing::new(String::from_utf8_lossy(value).into_owned()));
            }
            _ => {}
        }
    }
    Ok(CardOtp {
        counter: counter.ok_or_else(|| bad("no counter (tag 03)"))?,
        otp: otp.ok_or_else(|| bad("no code (tag 04)"))?,
    })
}

/// Parses a big-endian unsigned number of 1 to 8 bytes (GET DATA counters and tries).
pub fn parse_uint(command: &'static str, data: &[u8]) -> Result<u64> {
    if data.is_empty() || data.len() > 8 {
        return Err(Error::BadCardResponse {
            command,
            reason: format!("{} bytes where a number was expected", data.len()),
        });
    }
    Ok(data.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Turns a status word into success or the error a person can act on, for `command`.
///
/// `9000` is success. The PIN commands map `63Cx` to wrong PIN/PUK with x tries left and
/// `6983` (or `63C0`) to blocked; `6982` means the PIN is not verified; `6985` on an OTP
/// command means the card is not personalized.
pub fn check(command: &'static str, sw: u16) -> Result<()> {
    let puk = command == "RESET RETRY COUNTER";
    match sw {
        0x9000 => Ok(()),
        0x63C0 | 0x6983 if puk => Err(Error::PukBlocked),
        0x63C0 | 0x6983 => Err(Error::PinBlocked),
        0x63C1..=0x63CF if puk => Err(Error::WrongPuk {
            tries_left: (sw & 0x0F) as u8,
        }),
        0x63C1..=0x63CF => Err(Error::WrongPin {
            tries_left: (sw & 0x0F) as u8,
        }),
        0x6985 if command == "LOGIN OTP" || command == "TRANSACTION OTP" => {
            Err(Error::NotPersonalized)
        }
        _ => Err(Error::CardStatus { command, sw }),
    }
}

/// A PIN: 4 to 8 ASCII digits. Checked before it reaches the card, so a typo in the format
/// never costs a try.
pub struct Pin(Zeroizing<String>);

impl Pin {
    pub fn new(text: &str) -> Result<Self> {
        let t = text.trim_end_matches(['\r', '\n']);
        if !(4..=8).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadInput(
                "a PIN is 4 to 8 digits; nothing was sent to the card".to_owned(),
            ));
        }
        Ok(Pin(Zeroizing::new(t.to_owned())))
    }

    fn padded(&self) -> Zeroizing<[u8; 8]> {
        let mut out = Zeroizing::new([0xFFu8; 8]);
        out[..self.0.len()].copy_from_slice(self.0.as_bytes());
        out
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<hidden>)")
    }
}

/// A PUK: exactly 8 ASCII digits.
pub struct Puk(Zeroizing<String>);

impl Puk {
    pub fn new(text: &str) -> Result<Self> {
        let t = text.trim_end_matches(['\r', '\n']);
        if t.len() != 8 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::BadInput(
                "a PUK is 8 digits; nothing was sent to the card".to_owned(),
            ));
        }
        Ok(Puk(Zeroizing::new(t.to_owned())))
    }
}

impl std::fmt::Debug for Puk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Puk(<hidden>)")
    }
}

fn case3(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![cla, ins, p1, p2, data.len() as u8];
    v.extend_from_slice(data);
    v
}

fn case4(cla: u8, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    let mut v = case3(cla, ins, p1, p2, data);
    v.push(0x00);
    v
}

/// Appends one BER-TLV with a one-byte tag (ISO 7816-4 §5.2.2; lengths up to 255).
fn tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<()> {
    let n = u8::try_from(value.len()).map_err(|_| {
        Error::BadInput(format!(
            "a field of {} bytes is too long for the card",
            value.len()
        ))
    })?;
    out.push(tag);
    if n < 0x80 {
        out.push(n);
    } else {
        out.extend_from_slice(&[0x81, n]);
    }
    out.extend_from_slice(value);
    Ok(())
}

/// Splits a sequence of one-byte-tag BER-TLVs.
fn parse_tlvs(mut data: &[u8]) -> std::result::Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        let (len, rest) = match rest {
            [n, rest @ ..] if *n < 0x80 => (usize::from(*n), rest),
            [0x81, n, rest @ ..] => (usize::from(*n), rest),
            [0x82, a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => return Err(format!("bad length after tag {tag:02X}")),
        };
        if rest.len() < len {
            return Err(format!("tag {tag:02X} runs past the end"));
        }
        out.push((tag, &rest[..len]));
        data = &rest[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn select_is_the_documented_bytes() {
        assert_eq!(hex::encode_upper(select()), "00A4040008F050415953494D0100");
    }

    #[test]
    fn verify_pads_with_ff() {
        let pin = Pin::new("1234").unwrap();
        assert_eq!(
            hex::encode_upper(verify(&pin).as_slice()),
            "002000810831323334FFFFFFFF"
        );
        let pin = Pin::new("12345678").unwrap();
        assert_eq!(
            hex::encode_upper(verify(&pin).as_slice()),
            "00200081083132333435363738"
        );
    }

    #[test]
    fn pin_and_puk_formats_are_checked() {
        for bad in ["123", "123456789", "12a4", "", "12 34"] {
            assert!(matches!(Pin::new(bad), Err(Error::BadInput(_))), "{bad}");
        }
        assert!(Pin::new("1234\n").is_ok());
        assert!(Puk::new("1234567").is_err());
        assert!(Puk::new("12345678").is_ok());
        assert_eq!(format!("{:?}", Pin::new("1234").unwrap()), "Pin(<hidden>)");
    }

    #[test]
    fn unblock_is_puk_then_padded_pin() {
        let apdu = unblock(&Puk::new("87654321").unwrap(), &Pin::new("4321").unwrap());
        assert_eq!(
            hex::encode_upper(apdu.as_slice()),
            "002C0081103837363534333231".to_owned() + "34333231FFFFFFFF"
        );
    }

    #[test]
    fn login_otp_tlv_layout() {
        let apdu = login_otp(&[0xAB; 32], "http://127.0.0.1:8080").unwrap();
        assert_eq!(&apdu[..4], &[0x80, 0x10, 0x00, 0x00]);
        assert_eq!(usize::from(apdu[4]), apdu.len() - 6);
        assert_eq!(&apdu[5..7], &[0x01, 32]);
        assert_eq!(&apdu[39..41], &[0x02, 21]);
        assert_eq!(&apdu[41..62], b"http://127.0.0.1:8080");
        assert_eq!(apdu.last(), Some(&0x00));
    }

    #[test]
    fn tx_otp_tlv_layout() {
        let apdu = tx_otp(&TxRequest {
            challenge: &[1; 16],
            verifier_id: "https://b:443",
            transaction_id: "t1",
            amount_minor: 0x0102,
            currency: b"EUR",
            payee: "DE01",
        })
        .unwrap();
        let body = &apdu[5..apdu.len() - 1];
        let tlvs = parse_tlvs(body).unwrap();
        let tags: Vec<u8> = tlvs.iter().map(|t| t.0).collect();
        assert_eq!(tags, [1, 2, 5, 6, 7, 8]);
        assert_eq!(tlvs[3].1, &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(tlvs[5].1, b"DE01");
    }

    #[test]
    fn long_fields_use_two_byte_lengths() {
        let mut out = Vec::new();
        tlv(&mut out, 0x08, &[b'x'; 200]).unwrap();
        assert_eq!(&out[..3], &[0x08, 0x81, 200]);
        assert!(tlv(&mut out, 0x08, &[0; 256]).is_err());
        assert_eq!(parse_tlvs(&out).unwrap()[0].1.len(), 200);
    }

    #[test]
    fn parses_otp_answers() {
        let mut data = vec![0x03, 8, 0, 0, 0, 0, 0, 0, 0, 42, 0x04, 8];
        data.extend_from_slice(b"01234567");
        let otp = parse_otp("LOGIN OTP", &data).unwrap();
        assert_eq!(otp.counter, 42);
        assert_eq!(otp.otp.as_str(), "01234567");
        assert!(!format!("{otp:?}").contains("0123"));

        for bad in [
            &data[..10],                                                    // no code
            &[0x04, 8, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8'][..], // no counter
            &[0x03, 7, 0, 0, 0, 0, 0, 0, 1][..],                            // short counter
            &[0x03, 9][..],                                                 // runs past the end
            &[
                0x04, 8, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'x', 0x03, 8, 0, 0, 0, 0, 0, 0,
                0, 1,
            ][..],
        ] {
            assert!(
                matches!(
                    parse_otp("LOGIN OTP", bad),
                    Err(Error::BadCardResponse { .. })
                ),
                "{bad:02X?}"
            );
        }
    }

    #[test]
    fn status_words_map_to_errors() {
        assert!(check("VERIFY", 0x9000).is_ok());
        assert!(matches!(
            check("VERIFY", 0x63C2),
            Err(Error::WrongPin { tries_left: 2 })
        ));
        assert!(matches!(check("VERIFY", 0x63C0), Err(Error::PinBlocked)));
        assert!(matches!(check("VERIFY", 0x6983), Err(Error::PinBlocked)));
        assert!(matches!(
            check("RESET RETRY COUNTER", 0x63C9),
            Err(Error::WrongPuk { tries_left: 9 })
        ));
        assert!(matches!(
            check("RESET RETRY COUNTER", 0x6983),
            Err(Error::PukBlocked)
        ));
        assert!(matches!(
            check("LOGIN OTP", 0x6985),
            Err(Error::NotPersonalized)
        ));
        assert!(matches!(
            check("LOGIN OTP", 0x6982),
            Err(Error::CardStatus { sw: 0x6982, .. })
        ));
        assert!(matches!(
            check("SELECT", 0x6A82),
            Err(Error::CardStatus { sw: 0x6A82, .. })
        ));
    }

    #[test]
    fn numbers_from_get_data() {
        assert_eq!(
            parse_uint("GET DATA", &[0, 0, 0, 0, 0, 0, 1, 0]).unwrap(),
            256
        );
        assert_eq!(parse_uint("GET DATA", &[3]).unwrap(), 3);
        assert!(parse_uint("GET DATA", &[]).is_err());
        assert!(parse_uint("GET DATA", &[0; 9]).is_err());
    }
}
