//! The host side of YKOATH (`docs/protocol.md` section 8): the APDUs a bank tool and the
//! bridge send to a YubiKey, a Nitrokey 3 or the virtual card's OATH applet, and the parsers of
//! their answers. The formats are Yubico's YKOATH protocol as yubikit (ykman) speaks it.
//!
//! The bank uses one credential per user as a challenge-response token (PAYSIM-OATH-1,
//! `docs/protocol.md` section 9): TOTP with HMAC-SHA256 ([`paysim_otp::OATH_KEY_TYPE`]), 8
//! digits, named [`credential_name`], asked with [`calculate`] over the challenge
//! `paysim_otp::oath_challenge` derives.

use alloc::string::String;
use alloc::vec::Vec;

use paysim_otp::{hmac, HashAlg, Otp};
use zeroize::Zeroizing;

use crate::apdu::build;
use crate::oath::{ins, prop, tag, AID, AID_MIN, CHALLENGE_MAX, NAME_MAX};

/// The issuer part of every bank credential's name (`issuer:account`, as ykman shows it).
pub const ISSUER: &str = "PAYSIM Bank";

/// The credential name of `user`'s bank token: `PAYSIM Bank:<user>`.
pub fn credential_name(user: &str) -> String {
    alloc::format!("{ISSUER}:{user}")
}

/// What went wrong talking YKOATH, typed for what the caller does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OathError {
    #[error("the card has no YKOATH (OATH) application")]
    NotOath,
    #[error("no such OATH credential on the card")]
    NoSuchCredential,
    #[error("the OATH application is protected by an access code and it was not given, or a touch was refused")]
    AuthRequired,
    #[error("wrong OATH access code")]
    WrongAccessCode,
    #[error("the card has no room for another OATH credential")]
    NoSpace,
    #[error("the card refused the command's format (6A80)")]
    WrongSyntax,
    #[error("the card could not write its memory (6581)")]
    MemoryFailure,
    #[error("the card answered status {0:04X}")]
    Status(u16),
    #[error("the card's answer is malformed: {0}")]
    Malformed(&'static str),
    #[error("the credential name must be 1 to {NAME_MAX} bytes")]
    Name,
    #[error("the challenge must be 1 to {CHALLENGE_MAX} bytes")]
    Challenge,
}

fn apdu(ins: u8, p1: u8, p2: u8, data: &[u8], ne: Option<usize>) -> Vec<u8> {
    // Every builder here checks its lengths first: data stays under 256 bytes.
    build(0x00, ins, p1, p2, data, ne).unwrap_or_default()
}

fn push_tlv(out: &mut Vec<u8>, t: u8, value: &[u8]) {
    out.push(t);
    // Every value here is under 128 bytes (names 64, keys 64, challenges 64).
    out.push(u8::try_from(value.len()).unwrap_or(0x7F));
    out.extend_from_slice(value);
}

/// Splits `data ‖ SW1 SW2`; `Err` maps a non-`9000` status word.
fn split(resp: &[u8], refused_6984: OathError, refused_6a80: OathError) -> Result<&[u8], OathError> {
    let Some((data, sw)) = resp.split_last_chunk::<2>() else {
        return Err(OathError::Malformed("no status word"));
    };
    match u16::from_be_bytes(*sw) {
        0x9000 => Ok(data),
        0x6982 => Err(OathError::AuthRequired),
        0x6984 => Err(refused_6984),
        0x6A80 => Err(refused_6a80),
        0x6A84 => Err(OathError::NoSpace),
        0x6581 => Err(OathError::MemoryFailure),
        0x6A82 | 0x6D00 => Err(OathError::NotOath),
        other => Err(OathError::Status(other)),
    }
}

/// Reads simple one-byte-length TLVs (`tag len value`, with `81 xx` long lengths).
fn tlvs(mut data: &[u8]) -> Result<Vec<(u8, &[u8])>, OathError> {
    let mut out = Vec::new();
    while let [t, rest @ ..] = data {
        let (len, rest) = match rest {
            [0x81, n, rest @ ..] => (usize::from(*n), rest),
            [n, rest @ ..] if *n < 0x80 => (usize::from(*n), rest),
            _ => return Err(OathError::Malformed("bad TLV length")),
        };
        let value = rest.get(..len).ok_or(OathError::Malformed("TLV longer than the answer"))?;
        out.push((*t, value));
        data = &rest[len..];
    }
    Ok(out)
}

/// `00 A4 04 00 07 A0 00 00 05 27 21 01`: SELECT of the OATH application by the 7-byte AID
/// every YubiKey and Nitrokey 3 answers (ykman sends exactly this).
pub fn select() -> Vec<u8> {
    apdu(crate::command::ins::SELECT, 0x04, 0x00, &AID[..AID_MIN], Some(256))
}

/// What SELECT of the OATH application answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OathSelect {
    pub version: [u8; 3],
    /// The salt of the access code's key (tag `71`).
    pub salt: Vec<u8>,
    /// The card's challenge for VALIDATE, present only while an access code is set.
    pub challenge: Option<Vec<u8>>,
}

impl OathSelect {
    /// Whether an access code protects the application.
    pub fn protected(&self) -> bool {
        self.challenge.is_some()
    }
}

/// Parses the answer to [`select`].
pub fn parse_select(resp: &[u8]) -> Result<OathSelect, OathError> {
    let data = split(resp, OathError::NotOath, OathError::NotOath)?;
    let mut version = None;
    let mut salt = None;
    let mut challenge = None;
    for (t, v) in tlvs(data)? {
        match t {
            tag::VERSION => version = v.try_into().ok(),
            tag::NAME => salt = Some(v.to_vec()),
            tag::CHALLENGE => challenge = Some(v.to_vec()),
            _ => {}
        }
    }
    Ok(OathSelect {
        version: version.ok_or(OathError::Malformed("SELECT without a version (tag 79)"))?,
        salt: salt.ok_or(OathError::Malformed("SELECT without a salt (tag 71)"))?,
        challenge,
    })
}

/// The access code's key as ykman derives it: PBKDF2-HMAC-SHA1(code, salt, 1000 iterations,
/// 16 bytes) (RFC 8018 §5.2; one block, since 16 bytes < SHA-1's 20).
pub fn access_key(code: &[u8], salt: &[u8]) -> Zeroizing<[u8; 16]> {
    let mut block = Zeroizing::new(salt.to_vec());
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = Zeroizing::new(hmac(HashAlg::Sha1, code, &block));
    let mut t = Zeroizing::new(u.clone());
    for _ in 1..1000 {
        u = Zeroizing::new(hmac(HashAlg::Sha1, code, &u));
        for (a, b) in t.iter_mut().zip(u.iter()) {
            *a ^= b;
        }
    }
    let mut out = Zeroizing::new([0u8; 16]);
    for (o, b) in out.iter_mut().zip(t.iter()) {
        *o = *b;
    }
    out
}

/// VALIDATE: `75 HMAC-SHA1(key, card challenge)` `74 host challenge`.
pub fn validate(key: &[u8; 16], card_challenge: &[u8], host_challenge: &[u8; 8]) -> Vec<u8> {
    let mut data = Vec::new();
    push_tlv(&mut data, tag::RESPONSE, &hmac(HashAlg::Sha1, key, card_challenge));
    push_tlv(&mut data, tag::CHALLENGE, host_challenge);
    apdu(ins::VALIDATE, 0x00, 0x00, &data, Some(256))
}

/// Checks the answer to [`validate`]: the card proves it knows the key too.
pub fn parse_validate(resp: &[u8], key: &[u8; 16], host_challenge: &[u8; 8]) -> Result<(), OathError> {
    let data = split(resp, OathError::WrongAccessCode, OathError::WrongAccessCode)?;
    let want = hmac(HashAlg::Sha1, key, host_challenge);
    let ok = tlvs(data)?.into_iter().any(|(t, v)| {
        use subtle::ConstantTimeEq;
        t == tag::RESPONSE && bool::from(v.ct_eq(&want))
    });
    if ok {
        Ok(())
    } else {
        Err(OathError::Malformed("VALIDATE: the card's answer does not prove the access code"))
    }
}

/// PUT of a credential: `71 name` `73 [type|alg] digits key` `[78 02]` (touch).
pub fn put(name: &str, key_type: u8, digits: u8, key: &[u8], touch: bool) -> Result<Zeroizing<Vec<u8>>, OathError> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(OathError::Name);
    }
    let mut data = Zeroizing::new(Vec::new());
    push_tlv(&mut data, tag::NAME, name.as_bytes());
    let mut k = Zeroizing::new(Vec::with_capacity(2 + key.len()));
    k.push(key_type);
    k.push(digits);
    k.extend_from_slice(key);
    push_tlv(&mut data, tag::KEY, &k);
    if touch {
        data.extend_from_slice(&[tag::PROPERTY, prop::TOUCH]);
    }
    Ok(Zeroizing::new(apdu(ins::PUT, 0x00, 0x00, &data, None)))
}

/// Checks the answer to [`put`].
pub fn parse_put(resp: &[u8]) -> Result<(), OathError> {
    split(resp, OathError::WrongSyntax, OathError::WrongSyntax).map(|_| ())
}

/// DELETE of a credential.
pub fn delete(name: &str) -> Result<Vec<u8>, OathError> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(OathError::Name);
    }
    let mut data = Vec::new();
    push_tlv(&mut data, tag::NAME, name.as_bytes());
    Ok(apdu(ins::DELETE, 0x00, 0x00, &data, None))
}

/// Checks the answer to [`delete`].
pub fn parse_delete(resp: &[u8]) -> Result<(), OathError> {
    split(resp, OathError::NoSuchCredential, OathError::WrongSyntax).map(|_| ())
}

/// LIST, sent as ykman 4 sends it (`00 A1 00 00 00`).
pub fn list() -> Vec<u8> {
    apdu(ins::LIST, 0x00, 0x00, &[], Some(256))
}

/// One entry of LIST: the key-type byte and the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key_type: u8,
    pub name: String,
}

/// Parses the answer to [`list`] (names that are not UTF-8 are shown lossily).
pub fn parse_list(resp: &[u8]) -> Result<Vec<Listed>, OathError> {
    let data = split(resp, OathError::WrongSyntax, OathError::WrongSyntax)?;
    tlvs(data)?
        .into_iter()
        .filter(|(t, _)| *t == tag::NAME_LIST)
        .map(|(_, v)| match v {
            [key_type, name @ ..] => {
                Ok(Listed { key_type: *key_type, name: String::from_utf8_lossy(name).into_owned() })
            }
            [] => Err(OathError::Malformed("empty LIST entry")),
        })
        .collect()
}

/// CALCULATE of one credential over `challenge`, asking for the truncated answer (`P2 = 01`).
pub fn calculate(name: &str, challenge: &[u8]) -> Result<Vec<u8>, OathError> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(OathError::Name);
    }
    if challenge.is_empty() || challenge.len() > CHALLENGE_MAX {
        return Err(OathError::Challenge);
    }
    let mut data = Vec::new();
    push_tlv(&mut data, tag::NAME, name.as_bytes());
    push_tlv(&mut data, tag::CHALLENGE, challenge);
    Ok(apdu(ins::CALCULATE, 0x00, 0x01, &data, Some(256)))
}

/// The 8-digit bank code of the answer to [`calculate`]: tag `76` (digits, then the
/// truncated value, reduced or not) or tag `75` (digits, then the whole HMAC, truncated here).
/// An answer with other than 8 digits is refused: it is not a bank credential.
pub fn parse_calculate(resp: &[u8]) -> Result<Otp, OathError> {
    let data = split(resp, OathError::NoSuchCredential, OathError::WrongSyntax)?;
    let entries = tlvs(data)?;
    let Some((t, v)) = entries.first() else {
        return Err(OathError::Malformed("CALCULATE without a response"));
    };
    let (digits, rest) = v.split_first().ok_or(OathError::Malformed("empty response"))?;
    if u32::from(*digits) != u32::from(paysim_otp::OATH_DIGITS) {
        return Err(OathError::Malformed("the credential does not give 8 digits"));
    }
    match *t {
        tag::TRUNCATED => {
            let b: [u8; 4] = rest.try_into().map_err(|_| OathError::Malformed("truncated response not 4 bytes"))?;
            Ok(paysim_otp::oath_code_from_value(u32::from_be_bytes(b)))
        }
        tag::RESPONSE => paysim_otp::oath_code_from_mac(rest).ok_or(OathError::Malformed("full response too short")),
        _ => Err(OathError::Malformed("CALCULATE answered neither tag 75 nor 76")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CardState, MemStore};
    use crate::{Card, CardFront};

    fn card() -> CardFront<MemStore> {
        let random = alloc::boxed::Box::new(|b: &mut [u8]| {
            b.fill(0x33);
            true
        });
        CardFront::new(Card::with_random(MemStore::default(), CardState::factory(&[1; 32]), random))
    }

    #[test]
    fn pbkdf2_matches_rfc6070() {
        // RFC 6070 test 1 (c = 1) is U1 = HMAC-SHA1(P, S ‖ INT(1)).
        let u1 = hmac(HashAlg::Sha1, b"password", b"salt\x00\x00\x00\x01");
        assert_eq!(hex::encode(u1), "0c60c80f961f0e71f3a9b524af6012062fe037a6");
        // ykman's derivation as computed by Python's hashlib.pbkdf2_hmac("sha1", b"password",
        // bytes(8 * [0x33]), 1000, 16).
        let k = access_key(b"password", &[0x33; 8]);
        assert_eq!(hex::encode(*k), "32d02bdd9ffca39496fb2dbfd2841789");
    }

    #[test]
    fn put_list_calculate_and_validate_against_the_card_core() {
        let mut c = card();
        let sel = parse_select(&c.process(&select())).unwrap();
        assert!(!sel.protected());
        let name = credential_name("alice");
        let key = [0x5Au8; 32];
        parse_put(&c.process(&put(&name, paysim_otp::OATH_KEY_TYPE, 8, &key, false).unwrap())).unwrap();
        let listed = parse_list(&c.process(&list())).unwrap();
        assert_eq!(listed, [Listed { key_type: 0x22, name: name.clone() }]);
        let q = paysim_otp::oath_login_challenge(&[9; 32], b"https://bank.example:443");
        let code = parse_calculate(&c.process(&calculate(&name, &q).unwrap())).unwrap();
        assert!(paysim_otp::oath_code(&key, &q).matches(code.as_str()));
        assert_eq!(
            parse_calculate(&c.process(&calculate("PAYSIM Bank:bob", &q).unwrap())),
            Err(OathError::NoSuchCredential)
        );
        parse_delete(&c.process(&delete(&name).unwrap())).unwrap();
        assert_eq!(parse_list(&c.process(&list())).unwrap(), []);
    }

    #[test]
    fn both_answer_forms_give_the_code() {
        let key = [7u8; 32];
        let q = [3u8; 32];
        let mac = hmac(HashAlg::Sha256, &key, &q);
        let want = paysim_otp::oath_code(&key, &q);
        let mut full = alloc::vec![tag::RESPONSE, 33, 8];
        full.extend_from_slice(&mac);
        full.extend_from_slice(&[0x90, 0x00]);
        assert!(want.matches(parse_calculate(&full).unwrap().as_str()));
        let v = paysim_otp::dynamic_truncation(&mac).unwrap();
        for value in [v, v % 100_000_000] {
            let mut short = alloc::vec![tag::TRUNCATED, 5, 8];
            short.extend_from_slice(&value.to_be_bytes());
            short.extend_from_slice(&[0x90, 0x00]);
            assert!(want.matches(parse_calculate(&short).unwrap().as_str()));
        }
        // 6 digits: not a bank credential.
        let six = [tag::TRUNCATED, 5, 6, 0, 0, 0, 1, 0x90, 0x00];
        assert!(matches!(parse_calculate(&six), Err(OathError::Malformed(_))));
        assert_eq!(parse_select(&[0x6A, 0x82]), Err(OathError::NotOath));
    }
}
