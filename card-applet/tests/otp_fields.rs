//! LOGIN OTP and TRANSACTION OTP data fields at and beyond every boundary of docs/protocol.md:
//! lengths, alphabets, missing, repeated and unknown tags. A refused command answers `6A80`
//! and leaves the counter where it was; an accepted one answers the code of exactly the
//! fields sent.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use card_applet::apdu::build;
use card_applet::command::DataObject;
use card_applet::host;
use card_applet::state::MemStore;
use card_applet::CardFront;
use common::*;
use paysim_otp::{login_otp, tx_otp, ChainKey, TxFields};

type Fields = Vec<(u8, Vec<u8>)>;

/// BER-TLV by hand (one-byte tag, short or `81`/`82` length), so that the test can also write
/// tags the library's encoder would refuse.
fn encode(fields: &Fields) -> Vec<u8> {
    let mut out = Vec::new();
    for (t, v) in fields {
        out.push(*t);
        match u8::try_from(v.len()) {
            Ok(n) if n < 0x80 => out.push(n),
            Ok(n) => out.extend_from_slice(&[0x81, n]),
            Err(_) => {
                out.push(0x82);
                out.extend_from_slice(&u16::try_from(v.len()).unwrap().to_be_bytes());
            }
        }
        out.extend_from_slice(v);
    }
    out
}

fn login_fields() -> Fields {
    vec![(0x01, vec![0xC1; 16]), (0x02, VERIFIER.as_bytes().to_vec())]
}

fn tx_fields() -> Fields {
    vec![
        (0x01, vec![0xC2; 16]),
        (0x02, VERIFIER.as_bytes().to_vec()),
        (0x05, b"transfer-1".to_vec()),
        (0x06, 12_345u64.to_be_bytes().to_vec()),
        (0x07, b"EUR".to_vec()),
        (0x08, b"DE89370400440532013000".to_vec()),
    ]
}

fn with(mut f: Fields, tag: u8, value: &[u8]) -> Fields {
    for (t, v) in f.iter_mut() {
        if *t == tag {
            *v = value.to_vec();
        }
    }
    f
}

fn without(f: Fields, tag: u8) -> Fields {
    f.into_iter().filter(|(t, _)| *t != tag).collect()
}

fn plus(mut f: Fields, tag: u8, value: &[u8]) -> Fields {
    f.push((tag, value.to_vec()));
    f
}

fn counter(c: &mut CardFront<MemStore>) -> u64 {
    host::parse_counter(&tx(c, &host::get_data(DataObject::NextCounter))).unwrap()
}

fn get(f: &Fields, tag: u8) -> &[u8] {
    &f.iter().find(|(t, _)| *t == tag).unwrap().1
}

/// Sends INS with `fields` (extended encoding when it does not fit a short APDU) and checks
/// the status word; on success also the code, recomputed from the fields.
fn check(ins: u8, fields: &Fields, want: u16, what: &str) {
    let mut c = unlocked();
    let before = counter(&mut c);
    let apdu = build(0x80, ins, 0, 0, &encode(fields), Some(256)).unwrap();
    let resp = tx(&mut c, &apdu);
    assert_eq!(sw(&resp), want, "{what}");
    if want != 0x9000 {
        assert_eq!(resp.len(), 2, "{what}");
        assert_eq!(counter(&mut c), before, "{what}: a refused command must not move the chain");
        return;
    }
    let (i, code) = host::parse_otp(&resp).unwrap();
    assert_eq!(i, before, "{what}");
    let ck = ChainKey::from_bytes(SEED).advance(i);
    let want_code = if ins == 0x10 {
        login_otp(&ck, i, get(fields, 0x01), get(fields, 0x02))
    } else {
        let currency: [u8; 3] = get(fields, 0x07).try_into().unwrap();
        let tx = TxFields {
            version: paysim_otp::TxVersion::V1,
            source: b"",
            payee_name: b"",
            verifier_id: get(fields, 0x02),
            transaction_id: get(fields, 0x05),
            amount_minor: u64::from_be_bytes(get(fields, 0x06).try_into().unwrap()),
            currency: &currency,
            payee: get(fields, 0x08),
        };
        tx_otp(&ck, i, get(fields, 0x01), &tx)
    };
    assert_eq!(code, want_code, "{what}");
}

const OK: u16 = 0x9000;
const BAD: u16 = 0x6A80;

#[test]
fn challenge_and_verifier_id_boundaries_for_both_commands() {
    for (ins, base) in [(0x10, login_fields()), (0x12, tx_fields())] {
        for (len, want) in [(0, BAD), (15, BAD), (16, OK), (31, OK), (32, OK), (33, BAD), (64, BAD)] {
            check(ins, &with(base.clone(), 0x01, &vec![0x5A; len]), want, &format!("{ins:02X} challenge {len}"));
        }
        for (len, want) in [(0, BAD), (1, OK), (64, OK), (65, BAD), (200, BAD)] {
            check(ins, &with(base.clone(), 0x02, &vec![b'v'; len]), want, &format!("{ins:02X} verifier id {len}"));
        }
        // UTF-8 is counted in bytes: 32 two-byte characters fit, 33 do not.
        check(ins, &with(base.clone(), 0x02, "é".repeat(32).as_bytes()), OK, "verifier id 64 bytes of UTF-8");
        check(ins, &with(base.clone(), 0x02, "é".repeat(33).as_bytes()), BAD, "verifier id 66 bytes of UTF-8");
        for bad in [&b"\xFF"[..], b"bank\xC3", b"\xED\xA0\x80"] {
            check(ins, &with(base.clone(), 0x02, bad), BAD, &format!("verifier id {bad:02X?}"));
        }
    }
}

#[test]
fn transaction_field_boundaries() {
    let base = tx_fields();
    for (len, want) in [(0, BAD), (1, OK), (64, OK), (65, BAD)] {
        check(0x12, &with(base.clone(), 0x05, &vec![b't'; len]), want, &format!("transaction id {len}"));
        check(0x12, &with(base.clone(), 0x08, &vec![b'p'; len]), want, &format!("payee {len}"));
    }
    // The transaction id is opaque bytes (docs/protocol.md); the payee must be UTF-8.
    check(0x12, &with(base.clone(), 0x05, b"\xFF\x00\x01"), OK, "binary transaction id");
    check(0x12, &with(base.clone(), 0x08, b"DE89\xFF"), BAD, "payee not UTF-8");
    check(0x12, &with(base.clone(), 0x08, "Müller GmbH".as_bytes()), OK, "UTF-8 payee");
    for (amount, want) in [(&[0u8; 7][..], BAD), (&[0; 8], OK), (&[0xFF; 8], OK), (&[0; 9], BAD), (&[], BAD)] {
        check(0x12, &with(base.clone(), 0x06, amount), want, &format!("amount {amount:02X?}"));
    }
    // Currency: exactly 3 upper-case ASCII letters (ISO 4217 alphabetic codes are upper case;
    // the bank and the bridge send them so, and a code must not be valid for two spellings).
    for (cur, want) in [
        (&b"EUR"[..], OK),
        (b"XAU", OK),
        (b"eur", BAD),
        (b"Eur", BAD),
        (b"E1R", BAD),
        (b"EU ", BAD),
        (b"EU", BAD),
        (b"EURO", BAD),
        (b"\xC3\x89UR", BAD),
        (b"", BAD),
    ] {
        check(0x12, &with(base.clone(), 0x07, cur), want, &format!("currency {cur:02X?}"));
    }
}

#[test]
fn missing_repeated_unknown_and_misplaced_tags() {
    for (ins, base) in [(0x10, login_fields()), (0x12, tx_fields())] {
        for (tag, value) in base.clone() {
            check(ins, &without(base.clone(), tag), BAD, &format!("{ins:02X} without {tag:02X}"));
            check(ins, &plus(base.clone(), tag, &value), BAD, &format!("{ins:02X} {tag:02X} twice"));
        }
        // Answer tags, the other command's tags, PERSONALIZE's tags, tag 00: all unknown here.
        for tag in [0x00, 0x03, 0x04, 0x09, 0x81, 0x84, 0x1E] {
            check(ins, &plus(base.clone(), tag, b"x"), BAD, &format!("{ins:02X} extra tag {tag:02X}"));
        }
        // Any order is fine.
        let mut reversed = base.clone();
        reversed.reverse();
        check(ins, &reversed, OK, &format!("{ins:02X} reversed"));
    }
    // A login's fields are not a transaction.
    check(0x12, &login_fields(), BAD, "TX with login fields");
    // The transaction tags are unknown to LOGIN OTP.
    check(0x10, &plus(login_fields(), 0x05, b"t"), BAD, "LOGIN with a transaction id");
}

#[test]
fn malformed_tlv_encodings_are_bad_data() {
    let good = encode(&login_fields());
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("trailing byte".into(), [&good[..], &[0x01]].concat()),
        ("truncated value".into(), good[..good.len() - 1].to_vec()),
        ("length beyond data".into(), [&good[..], &[0x09, 0x7F, 0x00]].concat()),
        ("long length, no bytes".into(), [&good[..], &[0x09, 0x82, 0x01]].concat()),
        ("5-byte length".into(), [&good[..], &[0x09, 0x85, 0, 0, 0, 0, 1, 0]].concat()),
        ("constructed".into(), [&[0x21, 0x02, 0x01, 0x00][..], &good].concat()),
        ("two-byte tag".into(), [&[0x1F, 0x01, 0x01, 0x00][..], &good].concat()),
        ("padding 00 00".into(), [&good[..], &[0x00, 0x00]].concat()),
        ("padding FF".into(), [&good[..], &[0xFF]].concat()),
    ];
    cases.push(("only zeros".into(), vec![0; 40]));
    for (what, data) in cases {
        let mut c = unlocked();
        let apdu = build(0x80, 0x10, 0, 0, &data, Some(256)).unwrap();
        assert_eq!(sw(&tx(&mut c, &apdu)), 0x6A80, "{what}");
        assert_eq!(counter(&mut c), 0, "{what}");
    }
}
