//! The YKOATH commands and their complete, panic-free parser.
//!
//! Every [`CommandView`] reaching the applet (SELECT is the card's, SEND REMAINING the frame
//! layer's) becomes a typed [`Command`] or a status word, checked in this order:
//!
//! 1. CLA `00`; the chaining bit → `6884`, anything else → `6E00`.
//! 2. INS unknown → `6D00`.
//! 3. P1/P2 → `6B00` (as ykneo-oath and the YubiKey answer; PAYSIM uses `6A86`).
//! 4. A data field where none belongs → `6700`.
//! 5. Data contents (TLV structure, a field missing, repeated or out of range) → `6A80`.
//!
//! The data field is a list of YKOATH TLVs: a one-byte tag, a BER length (`00`-`7F`,
//! `81 xx`, `82 xx xx`) and the value; except the property tag `78`, which is followed by
//! its one value byte and no length (yubikit writes it `struct.pack(">BB", 0x78, prop)`).
//!
//! Whether an access code must be validated first is policy, decided by the handlers in
//! `card::oath`.

use iso7816::Status;
use paysim_otp::HashAlg;

use super::{alg_from_nibble, block_len, ins, prop, tag, Kind, CHALLENGE_MAX, NAME_MAX};
use crate::apdu::CommandView;

/// Data of PUT, borrowed from the APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Put<'a> {
    pub name: &'a [u8],
    pub kind: Kind,
    pub alg: HashAlg,
    pub digits: u8,
    pub key: &'a [u8],
    pub touch: bool,
    pub increasing: bool,
    /// Tag `7A`, the initial moving factor: the HOTP counter to start at (ignored for TOTP).
    pub counter: Option<u32>,
}

impl core::fmt::Debug for Put<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Put")
            .field("name_len", &self.name.len())
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .field("digits", &self.digits)
            .field("key", &"<secret>")
            .field("touch", &self.touch)
            .field("increasing", &self.increasing)
            .field("counter", &self.counter)
            .finish()
    }
}

/// Data of SET CODE with a new key.
#[derive(Clone, PartialEq, Eq)]
pub struct SetCode<'a> {
    pub alg: HashAlg,
    pub key: &'a [u8],
    /// The host's challenge and `HMAC(key, challenge)`: the card checks that the key
    /// arrived intact before it stores it.
    pub challenge: &'a [u8],
    pub response: &'a [u8],
}

impl core::fmt::Debug for SetCode<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SetCode").field("alg", &self.alg).field("key", &"<secret>").finish_non_exhaustive()
    }
}

/// A parsed YKOATH command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `00 01 00 00`: `71 name`, `73 [type|alg] digits key`, `[78 prop]`, `[7A counter]`.
    Put(Put<'a>),
    /// `00 02 00 00`: `71 name`.
    Delete { name: &'a [u8] },
    /// `00 03 00 00`: `73 alg‖key`, `74 challenge`, `75 response`; `None` for `73 00`
    /// (remove the access code).
    SetCode(Option<SetCode<'a>>),
    /// `00 04 DE AD`.
    Reset,
    /// `00 05 00 00`: `71 old`, `71 new`.
    Rename { from: &'a [u8], to: &'a [u8] },
    /// `00 A1 00 00`.
    List,
    /// `00 A2 00 P2`: `71 name`, `[74 challenge]`; P2 `01` truncated, `00` full.
    Calculate { name: &'a [u8], challenge: &'a [u8], truncate: bool },
    /// `00 A3 00 00`: `75 response`, `74 challenge`.
    Validate { response: &'a [u8], challenge: &'a [u8] },
    /// `00 A4 00 P2`: `74 challenge` (1-64 bytes); P2 as CALCULATE.
    CalculateAll { challenge: &'a [u8], truncate: bool },
}

#[derive(Clone, Copy)]
enum Instruction {
    Put,
    Delete,
    SetCode,
    Reset,
    Rename,
    List,
    Calculate,
    Validate,
    CalculateAll,
}

impl Instruction {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            ins::PUT => Self::Put,
            ins::DELETE => Self::Delete,
            ins::SET_CODE => Self::SetCode,
            ins::RESET => Self::Reset,
            ins::RENAME => Self::Rename,
            ins::LIST => Self::List,
            ins::CALCULATE => Self::Calculate,
            ins::VALIDATE => Self::Validate,
            ins::CALCULATE_ALL => Self::CalculateAll,
            _ => return None,
        })
    }
}

fn require(ok: bool, sw: Status) -> Result<(), Status> {
    if ok {
        Ok(())
    } else {
        Err(sw)
    }
}

fn bad() -> Status {
    Status::IncorrectDataParameter
}

fn p1p2(v: &CommandView<'_>, p1: u8, p2: u8) -> Result<(), Status> {
    require(v.p1 == p1 && v.p2 == p2, Status::WrongParameters)
}

/// P1 `00`, P2 `00` (full response) or `01` (truncated); returns whether truncated.
fn truncation(v: &CommandView<'_>) -> Result<bool, Status> {
    match (v.p1, v.p2) {
        (0x00, 0x00) => Ok(false),
        (0x00, 0x01) => Ok(true),
        _ => Err(Status::WrongParameters),
    }
}

/// One field: tag and value.
type Field<'a> = (u8, &'a [u8]);

/// Splits the first field off `data`: `6A80` for a truncated or overlong length.
fn split_field(data: &[u8]) -> Result<(Field<'_>, &[u8]), Status> {
    let (&t, after) = data.split_first().ok_or_else(bad)?;
    if t == tag::PROPERTY {
        let (value, after) = after.split_at_checked(1).ok_or_else(bad)?;
        return Ok(((t, value), after));
    }
    let (&l0, after) = after.split_first().ok_or_else(bad)?;
    let (len, after) = match l0 {
        0x00..=0x7F => (usize::from(l0), after),
        0x81 => {
            let (&l, after) = after.split_first().ok_or_else(bad)?;
            (usize::from(l), after)
        }
        0x82 => {
            let (l, after) = after.split_first_chunk::<2>().ok_or_else(bad)?;
            (usize::from(u16::from_be_bytes(*l)), after)
        }
        _ => return Err(bad()),
    };
    let (value, after) = after.split_at_checked(len).ok_or_else(bad)?;
    Ok(((t, value), after))
}

/// The fields of a YKOATH data field in order; an error ends the list.
fn fields(data: &[u8]) -> impl Iterator<Item = Result<Field<'_>, Status>> {
    let mut rest = data;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        Some(match split_field(rest) {
            Ok((field, after)) => {
                rest = after;
                Ok(field)
            }
            Err(sw) => {
                rest = &[];
                Err(sw)
            }
        })
    })
}

/// Each of the tags in `allowed` at most once, any order; anything else is `6A80`.
fn flat<const N: usize>(data: &[u8], allowed: [u8; N]) -> Result<[Option<&[u8]>; N], Status> {
    let mut out = [None; N];
    for field in fields(data) {
        let (t, value) = field?;
        let slot = out.get_mut(allowed.iter().position(|&a| a == t).ok_or_else(bad)?).ok_or_else(bad)?;
        require(slot.replace(value).is_none(), bad())?;
    }
    Ok(out)
}

fn name(value: Option<&[u8]>) -> Result<&[u8], Status> {
    let name = value.ok_or_else(bad)?;
    require((1..=NAME_MAX).contains(&name.len()), bad())?;
    Ok(name)
}

fn challenge(value: Option<&[u8]>) -> Result<&[u8], Status> {
    let challenge = value.ok_or_else(bad)?;
    require(challenge.len() <= CHALLENGE_MAX, bad())?;
    Ok(challenge)
}

impl<'a> TryFrom<CommandView<'a>> for Command<'a> {
    type Error = Status;

    fn try_from(v: CommandView<'a>) -> Result<Self, Status> {
        match v.cla {
            0x00 => {}
            0x10 => return Err(Status::CommandChainingNotSupported),
            _ => return Err(Status::ClassNotSupported),
        }
        let instruction = Instruction::from_byte(v.ins).ok_or(Status::InstructionNotSupportedOrInvalid)?;
        match instruction {
            Instruction::Put => put(v),
            Instruction::Delete => {
                p1p2(&v, 0, 0)?;
                let [n] = flat(v.data, [tag::NAME])?;
                Ok(Command::Delete { name: name(n)? })
            }
            Instruction::SetCode => set_code(v),
            Instruction::Reset => {
                p1p2(&v, 0xDE, 0xAD)?;
                require(v.data.is_empty(), Status::WrongLength)?;
                Ok(Command::Reset)
            }
            Instruction::Rename => {
                p1p2(&v, 0, 0)?;
                let mut names = fields(v.data);
                let mut next = || match names.next() {
                    Some(Ok((tag::NAME, value))) => name(Some(value)),
                    _ => Err(bad()),
                };
                let (from, to) = (next()?, next()?);
                require(names.next().is_none(), bad())?;
                Ok(Command::Rename { from, to })
            }
            Instruction::List => {
                p1p2(&v, 0, 0)?;
                require(v.data.is_empty(), Status::WrongLength)?;
                Ok(Command::List)
            }
            Instruction::Calculate => {
                let truncate = truncation(&v)?;
                let [n, c] = flat(v.data, [tag::NAME, tag::CHALLENGE])?;
                Ok(Command::Calculate { name: name(n)?, challenge: challenge(Some(c.unwrap_or_default()))?, truncate })
            }
            Instruction::Validate => {
                p1p2(&v, 0, 0)?;
                let [r, c] = flat(v.data, [tag::RESPONSE, tag::CHALLENGE])?;
                let (response, challenge) = (r.ok_or_else(bad)?, challenge(c)?);
                require(!response.is_empty() && !challenge.is_empty(), bad())?;
                Ok(Command::Validate { response, challenge })
            }
            Instruction::CalculateAll => {
                let truncate = truncation(&v)?;
                let [c] = flat(v.data, [tag::CHALLENGE])?;
                let challenge = challenge(c)?;
                require(!challenge.is_empty(), bad())?;
                Ok(Command::CalculateAll { challenge, truncate })
            }
        }
    }
}

/// PUT: `6B00` P1-P2 not `0000`; `6A80` a field missing, repeated, unknown or out of range
/// (name 1-64 bytes; type HOTP/TOTP; SHA-1/256/512; 6-8 digits; key 1 byte up to the hash's
/// block size; property bits other than `01`/`02`; a counter not 4 bytes).
fn put(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    p1p2(&v, 0, 0)?;
    let [n, k, p, imf] = flat(v.data, [tag::NAME, tag::KEY, tag::PROPERTY, tag::IMF])?;
    let name = name(n)?;
    let (&[type_alg, digits], key) = k.ok_or_else(bad)?.split_first_chunk::<2>().ok_or_else(bad)?;
    let kind = Kind::from_nibble(type_alg).ok_or_else(bad)?;
    let alg = alg_from_nibble(type_alg).ok_or_else(bad)?;
    require((6..=8).contains(&digits), bad())?;
    require((1..=block_len(alg)).contains(&key.len()), bad())?;
    let props = p.map_or(0, |p| p.first().copied().unwrap_or(0));
    require(props & !(prop::TOUCH | prop::INCREASING) == 0, bad())?;
    let counter = match imf {
        None => None,
        Some(b) => Some(u32::from_be_bytes(b.try_into().map_err(|_| bad())?)),
    };
    Ok(Command::Put(Put {
        name,
        kind,
        alg,
        digits,
        key,
        touch: props & prop::TOUCH != 0,
        increasing: props & prop::INCREASING != 0,
        counter,
    }))
}

/// SET CODE: `6B00`; `6A80` unless `73 00` alone (remove) or a key of 1 byte up to the
/// block size with a challenge (1-64 bytes) and a response as long as the hash.
fn set_code(v: CommandView<'_>) -> Result<Command<'_>, Status> {
    p1p2(&v, 0, 0)?;
    let [k, c, r] = flat(v.data, [tag::KEY, tag::CHALLENGE, tag::RESPONSE])?;
    let k = k.ok_or_else(bad)?;
    let Some((&alg, key)) = k.split_first() else {
        require(c.is_none() && r.is_none(), bad())?;
        return Ok(Command::SetCode(None));
    };
    let alg = alg_from_nibble(alg).ok_or_else(bad)?;
    require((1..=block_len(alg)).contains(&key.len()), bad())?;
    let challenge = challenge(c)?;
    require(!challenge.is_empty(), bad())?;
    let response = r.ok_or_else(bad)?;
    require(response.len() == alg.len(), bad())?;
    Ok(Command::SetCode(Some(SetCode { alg, key, challenge, response })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(apdu: &[u8]) -> Result<Command<'_>, Status> {
        Command::try_from(CommandView::parse(apdu)?)
    }

    #[test]
    fn what_ykman_sends_parses() {
        // From ykman 4.0.9's probe log (../shared/ykoath.md §2.5).
        assert_eq!(parse(&[0x00, 0xA1, 0x00, 0x00, 0x00]), Ok(Command::List));
        let mut put = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x71, 0x07];
        put.extend_from_slice(b"rfc4226");
        put.extend_from_slice(&[0x73, 0x16, 0x11, 0x06]);
        put.extend_from_slice(b"12345678901234567890");
        let Ok(Command::Put(p)) = parse(&put) else { panic!("{:?}", parse(&put)) };
        assert_eq!(
            (p.name, p.kind, p.alg, p.digits, p.key),
            (&b"rfc4226"[..], Kind::Hotp, HashAlg::Sha1, 6, &b"12345678901234567890"[..])
        );
        assert!(!p.touch && !p.increasing && p.counter.is_none());
        assert!(!format!("{p:?}").contains("3132"));
        let all = [0x00, 0xA4, 0x00, 0x01, 0x0A, 0x74, 0x08, 0, 0, 0, 0, 0x03, 0x91, 0x3A, 0xC6];
        assert_eq!(
            parse(&all),
            Ok(Command::CalculateAll { challenge: &[0, 0, 0, 0, 0x03, 0x91, 0x3A, 0xC6], truncate: true })
        );
        let calc = [0x00, 0xA2, 0x00, 0x01, 0x0B, 0x71, 0x07, b'r', b'f', b'c', b'4', b'2', b'2', b'6', 0x74, 0x00];
        assert_eq!(parse(&calc), Ok(Command::Calculate { name: b"rfc4226", challenge: &[], truncate: true }));
        assert_eq!(parse(&[0x00, 0x04, 0xDE, 0xAD]), Ok(Command::Reset));
        assert_eq!(parse(&[0x00, 0x03, 0x00, 0x00, 0x02, 0x73, 0x00]), Ok(Command::SetCode(None)));
    }

    #[test]
    fn property_has_no_length_byte_and_long_lengths_work() {
        let mut put = vec![0x00, 0x01, 0x00, 0x00, 0x00];
        let mut data = vec![0x71, 0x01, b'x', 0x73, 0x81, 0x82, 0x23, 0x08];
        data.extend_from_slice(&[0x42; 128]);
        data.extend_from_slice(&[0x78, 0x03, 0x7A, 0x04, 0, 0, 1, 0]);
        put[4] = u8::try_from(data.len()).unwrap();
        put.extend_from_slice(&data);
        let Ok(Command::Put(p)) = parse(&put) else { panic!("{:?}", parse(&put)) };
        assert_eq!((p.kind, p.alg, p.digits, p.key.len()), (Kind::Totp, HashAlg::Sha512, 8, 128));
        assert!(p.touch && p.increasing);
        assert_eq!(p.counter, Some(256));
    }

    #[test]
    fn malformed_commands_get_the_first_applicable_status() {
        let cases: &[(&[u8], u16)] = &[
            (&[0x80, 0xA1, 0x00, 0x00], 0x6E00),
            (&[0x10, 0xA1, 0x00, 0x00], 0x6884),
            (&[0x00, 0xFF, 0x00, 0x00], 0x6D00),
            (&[0x00, 0xA1, 0x01, 0x00], 0x6B00),
            (&[0x00, 0x04, 0xDE, 0xAE], 0x6B00),
            (&[0x00, 0xA2, 0x00, 0x02, 0x03, 0x71, 0x01, 0x61], 0x6B00),
            (&[0x00, 0xA1, 0x00, 0x00, 0x01, 0x00], 0x6700),
            (&[0x00, 0x04, 0xDE, 0xAD, 0x01, 0x00], 0x6700),
            // A name missing, empty, too long; a TLV cut short; an unknown or repeated tag.
            (&[0x00, 0x02, 0x00, 0x00, 0x02, 0x74, 0x00], 0x6A80),
            (&[0x00, 0x02, 0x00, 0x00, 0x02, 0x71, 0x00], 0x6A80),
            (&[0x00, 0x02, 0x00, 0x00, 0x02, 0x71, 0x05], 0x6A80),
            (&[0x00, 0x02, 0x00, 0x00, 0x03, 0x71, 0x83, 0x00], 0x6A80),
            (&[0x00, 0x02, 0x00, 0x00, 0x06, 0x71, 0x01, 0x61, 0x71, 0x01, 0x61], 0x6A80),
            // PUT: bad type, bad hash, 5 and 9 digits, empty key, unknown property bit.
            (&[0x00, 0x01, 0x00, 0x00, 0x08, 0x71, 0x01, 0x61, 0x73, 0x03, 0x31, 0x06, 0x01], 0x6A80),
            (&[0x00, 0x01, 0x00, 0x00, 0x08, 0x71, 0x01, 0x61, 0x73, 0x03, 0x14, 0x06, 0x01], 0x6A80),
            (&[0x00, 0x01, 0x00, 0x00, 0x08, 0x71, 0x01, 0x61, 0x73, 0x03, 0x11, 0x05, 0x01], 0x6A80),
            (&[0x00, 0x01, 0x00, 0x00, 0x08, 0x71, 0x01, 0x61, 0x73, 0x03, 0x11, 0x09, 0x01], 0x6A80),
            (&[0x00, 0x01, 0x00, 0x00, 0x07, 0x71, 0x01, 0x61, 0x73, 0x02, 0x11, 0x06], 0x6A80),
            (&[0x00, 0x01, 0x00, 0x00, 0x0A, 0x71, 0x01, 0x61, 0x73, 0x03, 0x11, 0x06, 0x01, 0x78, 0x04], 0x6A80),
            (&[0x00, 0x01, 0x00, 0x00, 0x09, 0x71, 0x01, 0x61, 0x73, 0x03, 0x11, 0x06, 0x01, 0x78], 0x6A80),
            // SET CODE: a response of the wrong length; removal with extra fields.
            (&[0x00, 0x03, 0x00, 0x00, 0x0C, 0x73, 0x02, 0x21, 0x01, 0x74, 0x01, 0x01, 0x75, 0x03, 1, 2, 3], 0x6A80),
            (&[0x00, 0x03, 0x00, 0x00, 0x05, 0x73, 0x00, 0x74, 0x01, 0x01], 0x6A80),
            // RENAME with one name, VALIDATE without a challenge, a 65-byte challenge.
            (&[0x00, 0x05, 0x00, 0x00, 0x03, 0x71, 0x01, 0x61], 0x6A80),
            (&[0x00, 0xA3, 0x00, 0x00, 0x03, 0x75, 0x01, 0x61], 0x6A80),
        ];
        for (apdu, want) in cases {
            assert_eq!(parse(apdu).map(|_| ()).map_err(u16::from), Err(*want), "{apdu:02X?}");
        }
        let mut long = vec![0x00, 0xA4, 0x00, 0x01, 67, 0x74, 65];
        long.extend_from_slice(&[1; 65]);
        assert_eq!(parse(&long).map(|_| ()).map_err(u16::from), Err(0x6A80));
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(apdu in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Ok(v) = CommandView::parse(&apdu) {
                let _ = Command::try_from(v);
            }
        }

        #[test]
        fn no_data_field_panics(ins in proptest::sample::select(vec![0x01u8, 0x02, 0x03, 0x05, 0xA2, 0xA3, 0xA4]), p2 in 0u8..2, data in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..255)) {
            let mut apdu = vec![0x00, ins, 0x00, p2, u8::try_from(data.len()).unwrap()];
            apdu.extend_from_slice(&data);
            let _ = parse(&apdu);
        }
    }
}
