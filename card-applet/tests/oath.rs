//! The YKOATH applet through the frame layer: SELECT in both AID forms, every instruction
//! with its status words, RFC 4226 and RFC 6238 known answers, access-code protection, the
//! touch policy, only-increasing challenges, `61xx` + SEND REMAINING, tear-safety of the HOTP
//! counter, and the switch between the two applets.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use card_applet::oath::{self, tag};
use card_applet::state::{CardState, MemStore};
use card_applet::{host, Applet, CardFront, TouchPolicy};
use common::*;
use paysim_otp::{hmac, HashAlg};
use serde_json::Value;

const RFC_KEY: &[u8] = b"12345678901234567890";

fn tlv(t: u8, v: &[u8]) -> Vec<u8> {
    let mut out = vec![t];
    if v.len() < 0x80 {
        out.push(u8::try_from(v.len()).unwrap());
    } else {
        out.extend_from_slice(&[0x81, u8::try_from(v.len()).unwrap()]);
    }
    out.extend_from_slice(v);
    out
}

fn apdu(ins: u8, p1: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    card_applet::apdu::build(0x00, ins, p1, p2, data, Some(256)).unwrap()
}

fn select_oath() -> Vec<u8> {
    let mut a = vec![0x00, 0xA4, 0x04, 0x00, 0x07];
    a.extend_from_slice(&oath::AID[..7]);
    a
}

fn put(name: &[u8], type_alg: u8, digits: u8, key: &[u8], props: u8) -> Vec<u8> {
    let mut k = vec![type_alg, digits];
    k.extend_from_slice(key);
    let mut data = [tlv(tag::NAME, name), tlv(tag::KEY, &k)].concat();
    if props != 0 {
        data.extend_from_slice(&[tag::PROPERTY, props]);
    }
    apdu(oath::ins::PUT, 0, 0, &data)
}

fn calculate(name: &[u8], challenge: &[u8], truncate: bool) -> Vec<u8> {
    apdu(oath::ins::CALCULATE, 0, u8::from(truncate), &[tlv(tag::NAME, name), tlv(tag::CHALLENGE, challenge)].concat())
}

fn calculate_all(challenge: &[u8]) -> Vec<u8> {
    apdu(oath::ins::CALCULATE_ALL, 0, 1, &tlv(tag::CHALLENGE, challenge))
}

fn list() -> Vec<u8> {
    vec![0x00, oath::ins::LIST, 0x00, 0x00, 0x00]
}

/// Splits a response into its `(tag, value)` pairs (the property tag never occurs in one).
fn tlvs(data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [t, l, tail @ ..] = rest {
        let (len, tail) = if *l == 0x81 { (usize::from(tail[0]), &tail[1..]) } else { (usize::from(*l), tail) };
        out.push((*t, tail[..len].to_vec()));
        rest = &tail[len..];
    }
    out
}

/// The decimal code of a truncated answer `76 05 digits value`.
fn code_of(resp: &[u8]) -> String {
    assert_eq!(sw(resp), 0x9000, "{resp:02X?}");
    let fields = tlvs(data(resp));
    assert_eq!(fields.len(), 1);
    let (t, v) = &fields[0];
    assert_eq!(*t, tag::TRUNCATED);
    let digits = usize::from(v[0]);
    let value = u32::from_be_bytes(v[1..5].try_into().unwrap());
    format!("{value:0digits$}")
}

fn oath_card() -> CardFront<MemStore> {
    let mut card = factory();
    assert_eq!(sw(&tx(&mut card, &select_oath())), 0x9000);
    card
}

fn vectors(name: &str) -> Vec<Value> {
    let path = format!("{}/../otp/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["vectors"].as_array().unwrap().clone()
}

#[test]
fn select_answers_version_and_salt_in_both_aid_forms_with_and_without_le() {
    let mut card = factory();
    let first = card.process(&select_oath());
    assert_eq!(sw(&first), 0x9000);
    let fields = tlvs(data(&first));
    assert_eq!(fields[0], (tag::VERSION, vec![5, 4, 3]));
    assert_eq!(fields[1].0, tag::NAME);
    assert_eq!(fields.len(), 2, "no challenge without an access code");
    // The salt was drawn once and committed: the same on every SELECT and after a restart.
    let salt = fields[1].1.clone();
    assert_eq!(card.card().store().committed.as_ref().unwrap().oath.salt.unwrap().to_vec(), salt);
    let mut long = vec![0x00, 0xA4, 0x04, 0x00, 0x08];
    long.extend_from_slice(&oath::AID);
    long.push(0x00);
    assert_eq!(card.process(&long), first, "8-byte AID with Le");
    assert_eq!(card.card().selected(), Applet::Oath);
    // P2 = 0C: selected, no data.
    let mut quiet = select_oath();
    quiet[3] = 0x0C;
    assert_eq!(card.process(&quiet), vec![0x90, 0x00]);
    // A 6-byte prefix and other AIDs are not OATH: 6A82, selection unchanged.
    for other in [&oath::AID[..6], &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17][..]] {
        let mut a = vec![0x00, 0xA4, 0x04, 0x00, u8::try_from(other.len()).unwrap()];
        a.extend_from_slice(other);
        assert_eq!(card.process(&a), vec![0x6A, 0x82]);
    }
    assert_eq!(card.card().selected(), Applet::Oath);
    assert_eq!(sw(&card.process(&list())), 0x9000);
}

#[test]
fn hotp_codes_are_rfc_4226s_and_each_counter_is_committed_before_its_code() {
    let mut card = oath_card();
    assert_eq!(card.process(&put(b"rfc4226", 0x11, 6, RFC_KEY, 0)), vec![0x90, 0x00]);
    for (i, v) in vectors("hotp-rfc4226.json").iter().enumerate() {
        let resp = card.process(&calculate(b"rfc4226", &[], true));
        assert_eq!(code_of(&resp), v["otp"].as_str().unwrap(), "count {i}");
        let committed = card.card().store().committed.as_ref().unwrap();
        assert_eq!(committed.oath.credentials[0].counter, u32::try_from(i + 1).unwrap());
    }
    // A challenge is ignored for HOTP; the full answer is digits ‖ HMAC-SHA-1(counter 10).
    let resp = card.process(&calculate(b"rfc4226", &[0xFF; 8], false));
    let fields = tlvs(data(&resp));
    let mut want = vec![6];
    want.extend_from_slice(&hmac(HashAlg::Sha1, RFC_KEY, &10u64.to_be_bytes()));
    assert_eq!(fields, vec![(tag::RESPONSE, want)]);
}

#[test]
fn totp_codes_are_rfc_6238s_for_sha1_sha256_and_sha512() {
    let mut card = oath_card();
    for v in vectors("totp-rfc6238.json") {
        let key = hex::decode(v["key_hex"].as_str().unwrap()).unwrap();
        let alg = v["hash"].as_str().unwrap();
        let nibble = match alg {
            "SHA1" => 0x21,
            "SHA256" => 0x22,
            _ => 0x23,
        };
        let name = format!("rfc6238-{alg}");
        assert_eq!(sw(&card.process(&put(name.as_bytes(), nibble, 8, &key, 0))), 0x9000);
        let t = v["unix_time"].as_u64().unwrap() / v["step"].as_u64().unwrap();
        let resp = card.process(&calculate(name.as_bytes(), &t.to_be_bytes(), true));
        assert_eq!(code_of(&resp), v["otp"].as_str().unwrap(), "{v}");
    }
    // CALCULATE ALL at T = 1 (unix time 59): one truncated answer per credential.
    let resp = card.process(&calculate_all(&1u64.to_be_bytes()));
    let fields = tlvs(data(&resp));
    let got: Vec<(Vec<u8>, u8)> = fields.chunks(2).map(|p| (p[0].1.clone(), p[1].0)).collect();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|(_, t)| *t == tag::TRUNCATED));
    assert_eq!(u32::from_be_bytes(fields[1].1[1..5].try_into().unwrap()), 94_287_082);
    assert_eq!(u32::from_be_bytes(fields[3].1[1..5].try_into().unwrap()), 46_119_246);
    assert_eq!(u32::from_be_bytes(fields[5].1[1..5].try_into().unwrap()), 90_693_936);
}

#[test]
fn list_and_calculate_all_mark_hotp_and_touch_credentials() {
    let mut card = oath_card();
    tx(&mut card, &put(b"h", 0x11, 6, RFC_KEY, 0));
    tx(&mut card, &put(b"t", 0x22, 8, RFC_KEY, 0));
    tx(&mut card, &put(b"touchy", 0x21, 7, RFC_KEY, oath::prop::TOUCH));
    let resp = tx(&mut card, &list());
    assert_eq!(
        tlvs(data(&resp)),
        vec![
            (tag::NAME_LIST, [&[0x11][..], b"h"].concat()),
            (tag::NAME_LIST, [&[0x22][..], b"t"].concat()),
            (tag::NAME_LIST, [&[0x21][..], b"touchy"].concat()),
        ]
    );
    let resp = tx(&mut card, &calculate_all(&[0, 0, 0, 0, 0, 0, 0, 1]));
    let fields = tlvs(data(&resp));
    assert_eq!(fields[0], (tag::NAME, b"h".to_vec()));
    assert_eq!(fields[1], (tag::HOTP, vec![6]));
    assert_eq!(fields[3].0, tag::TRUNCATED);
    assert_eq!(fields[5], (tag::TOUCH, vec![7]));
    // CALCULATE ALL consumed no HOTP counter.
    assert_eq!(card.card().state().oath.credentials[0].counter, 0);
}

#[test]
fn a_denied_touch_gives_6982_and_consumes_nothing() {
    let mut card = oath_card();
    tx(&mut card, &put(b"hotp-touch", 0x11, 6, RFC_KEY, oath::prop::TOUCH));
    tx(&mut card, &put(b"totp-touch", 0x21, 6, RFC_KEY, oath::prop::TOUCH));
    card.card_mut().set_touch_policy(TouchPolicy::Deny);
    let writes = card.card().store().writes;
    for name in [&b"hotp-touch"[..], b"totp-touch"] {
        assert_eq!(card.process(&calculate(name, &[0; 8], true)), vec![0x69, 0x82]);
    }
    assert_eq!(card.card().store().writes, writes, "nothing committed");
    assert_eq!(card.card().state().oath.credentials[0].counter, 0);
    card.card_mut().set_touch_policy(TouchPolicy::Allow);
    assert_eq!(code_of(&card.process(&calculate(b"hotp-touch", &[], true))), "755224");
}

#[test]
fn access_code_set_validate_use_and_remove() {
    let mut card = oath_card();
    tx(&mut card, &put(b"h", 0x11, 6, RFC_KEY, 0));
    let key = [0x5A; 16];
    let host_ch = [0x01; 8];
    let set = apdu(
        oath::ins::SET_CODE,
        0,
        0,
        &[
            tlv(tag::KEY, &[&[0x21][..], &key].concat()),
            tlv(tag::CHALLENGE, &host_ch),
            tlv(tag::RESPONSE, &hmac(HashAlg::Sha1, &key, &host_ch)),
        ]
        .concat(),
    );
    // A response that does not match the key is refused (6984) and nothing is set.
    let mut wrong = set.clone();
    let n = wrong.len();
    wrong[n - 2] ^= 1;
    assert_eq!(card.process(&wrong), vec![0x69, 0x84]);
    assert!(card.card().state().oath.access.is_none());
    assert_eq!(card.process(&set), vec![0x90, 0x00]);
    assert!(card.card().store().committed.as_ref().unwrap().oath.access.is_some());

    // A new session: SELECT carries a challenge and the algorithm; everything needs VALIDATE.
    let resp = card.process(&select_oath());
    let fields = tlvs(data(&resp));
    assert_eq!(fields.len(), 4);
    assert_eq!(fields[3], (tag::ALGORITHM, vec![0x01]));
    let card_ch = fields[2].1.clone();
    for cmd in [list(), calculate(b"h", &[], true), calculate_all(&[0; 8]), put(b"x", 0x11, 6, RFC_KEY, 0)] {
        assert_eq!(card.process(&cmd), vec![0x69, 0x82], "{cmd:02X?}");
    }
    let validate = |resp: &[u8], ch: &[u8]| {
        apdu(oath::ins::VALIDATE, 0, 0, &[tlv(tag::RESPONSE, resp), tlv(tag::CHALLENGE, ch)].concat())
    };
    // A wrong answer: 6A80, and the challenge is used up (the right answer now fails too).
    assert_eq!(card.process(&validate(&[0; 20], &host_ch)), vec![0x6A, 0x80]);
    let right = hmac(HashAlg::Sha1, &key, &card_ch);
    assert_eq!(card.process(&validate(&right, &host_ch)), vec![0x69, 0x85]);
    // After a new SELECT, the right answer opens the session and the card proves the key.
    let card_ch = tlvs(data(&card.process(&select_oath())))[2].1.clone();
    let resp = card.process(&validate(&hmac(HashAlg::Sha1, &key, &card_ch), &[7; 8]));
    assert_eq!(tlvs(data(&resp)), vec![(tag::RESPONSE, hmac(HashAlg::Sha1, &key, &[7; 8]))]);
    assert_eq!(sw(&card.process(&list())), 0x9000);
    assert_eq!(code_of(&card.process(&calculate(b"h", &[], true))), "755224");

    // Selecting PAYSIM ends the OATH session; back on OATH, it must validate again.
    tx(&mut card, &host::select());
    card.process(&select_oath());
    assert_eq!(card.process(&list()), vec![0x69, 0x82]);
    // Remove the code (73 00) once validated: then SELECT has no challenge and all is open.
    let card_ch = tlvs(data(&card.process(&select_oath())))[2].1.clone();
    card.process(&validate(&hmac(HashAlg::Sha1, &key, &card_ch), &[7; 8]));
    assert_eq!(card.process(&[0x00, 0x03, 0x00, 0x00, 0x02, 0x73, 0x00]), vec![0x90, 0x00]);
    assert_eq!(tlvs(data(&card.process(&select_oath()))).len(), 2);
    assert_eq!(sw(&card.process(&list())), 0x9000);
    // VALIDATE without a code: 6984.
    assert_eq!(card.process(&validate(&[0; 20], &[1; 8])), vec![0x69, 0x84]);
}

#[test]
fn only_increasing_challenges_must_not_go_down() {
    let mut card = oath_card();
    tx(&mut card, &put(b"inc", 0x21, 6, RFC_KEY, oath::prop::INCREASING));
    let code5 = code_of(&card.process(&calculate(b"inc", &5u64.to_be_bytes(), true)));
    let committed = card.card().store().committed.clone().unwrap();
    assert_eq!(committed.oath.credentials[0].last_challenge.as_deref(), Some(&[5u8][..]));
    // The same challenge again is allowed (as in ykneo-oath), and commits nothing new.
    let writes = card.card().store().writes;
    assert_eq!(code_of(&card.process(&calculate(b"inc", &5u64.to_be_bytes(), true))), code5);
    assert_eq!(card.card().store().writes, writes);
    // A lower one is refused with 6982, ykneo-oath's status word.
    assert_eq!(card.process(&calculate(b"inc", &[4], true)), vec![0x69, 0x82]);
    // CALCULATE ALL leaves it out when the challenge is lower, computes it otherwise.
    assert_eq!(card.process(&calculate_all(&4u64.to_be_bytes())), vec![0x90, 0x00]);
    assert_eq!(tlvs(data(&card.process(&calculate_all(&5u64.to_be_bytes())))).len(), 2);
    let fields = tlvs(data(&card.process(&calculate_all(&6u64.to_be_bytes()))));
    assert_eq!(fields[0], (tag::NAME, b"inc".to_vec()));
    assert_eq!(
        card.card().store().committed.as_ref().unwrap().oath.credentials[0].last_challenge.as_deref(),
        Some(&[6u8][..])
    );
    assert_eq!(sw(&card.process(&calculate(b"inc", &[0, 7], true))), 0x9000);
    // A TOTP credential needs a challenge (ykneo-oath: 1-64 bytes); so does CALCULATE ALL.
    assert_eq!(card.process(&calculate(b"inc", &[], true)), vec![0x6A, 0x80]);
    assert_eq!(card.process(&calculate_all(&[])), vec![0x6A, 0x80]);
}

#[test]
fn put_overwrite_rename_delete_reset_and_the_credential_limit() {
    let mut card = oath_card();
    tx(&mut card, &put(b"a", 0x11, 6, b"first key.....", 0));
    tx(&mut card, &put(b"a", 0x11, 8, RFC_KEY, 0));
    assert_eq!(card.card().state().oath.credentials.len(), 1);
    assert_eq!(card.card().state().oath.credentials[0].digits, 8);
    let rename =
        |from: &[u8], to: &[u8]| apdu(oath::ins::RENAME, 0, 0, &[tlv(tag::NAME, from), tlv(tag::NAME, to)].concat());
    tx(&mut card, &put(b"b", 0x21, 6, RFC_KEY, 0));
    assert_eq!(card.process(&rename(b"a", b"b")), vec![0x6A, 0x89]);
    assert_eq!(card.process(&rename(b"zz", b"c")), vec![0x69, 0x84]);
    assert_eq!(card.process(&rename(b"a", b"Issuer:a")), vec![0x90, 0x00]);
    assert_eq!(card.card().state().oath.credentials[0].name, b"Issuer:a");
    let delete = |name: &[u8]| apdu(oath::ins::DELETE, 0, 0, &tlv(tag::NAME, name));
    assert_eq!(card.process(&delete(b"a")), vec![0x69, 0x84]);
    assert_eq!(card.process(&delete(b"Issuer:a")), vec![0x90, 0x00]);
    assert_eq!(card.card().state().oath.credentials.len(), 1);
    for i in 1..oath::MAX_CREDENTIALS {
        assert_eq!(sw(&card.process(&put(format!("c{i}").as_bytes(), 0x11, 6, RFC_KEY, 0))), 0x9000);
    }
    assert_eq!(card.process(&put(b"one too many", 0x11, 6, RFC_KEY, 0)), vec![0x6A, 0x84]);
    // RESET: all gone, and a new salt.
    let salt = card.card().state().oath.salt;
    assert_eq!(card.process(&[0x00, 0x04, 0xDE, 0xAD]), vec![0x90, 0x00]);
    let after = card.card().store().committed.clone().unwrap().oath;
    assert!(after.credentials.is_empty() && after.access.is_none());
    assert_ne!(after.salt, salt);
    assert_eq!(card.card().state().oath.credentials.len(), 0);
    assert_eq!(card.card().state().oath.salt, after.salt);
}

#[test]
fn long_answers_come_in_pieces_through_send_remaining_and_get_response() {
    let mut card = oath_card();
    for i in 0..oath::MAX_CREDENTIALS {
        let name = format!("{i:02}-{}", "n".repeat(61));
        assert_eq!(sw(&card.process(&put(name.as_bytes(), 0x21, 6, RFC_KEY, 0))), 0x9000);
    }
    // LIST as ykman sends it (Le = 00): 256 bytes and 61xx, then SEND REMAINING until 9000.
    let mut first = card.process(&list());
    assert_eq!(first.len(), 258);
    assert_eq!(first[256], 0x61);
    let mut all = first.drain(..256).collect::<Vec<u8>>();
    loop {
        let next = card.process(&[0x00, 0xA5, 0x00, 0x00]);
        let s = sw(&next);
        all.extend_from_slice(data(&next));
        if s == 0x9000 {
            break;
        }
        assert_eq!(s >> 8, 0x61);
    }
    assert_eq!(tlvs(&all).len(), oath::MAX_CREDENTIALS);
    // CALCULATE ALL without Le (as ykman sends it) answers data at once too; GET RESPONSE
    // continues it just as well.
    let mut apdu_no_le = vec![0x00, 0xA4, 0x00, 0x01, 0x0A, 0x74, 0x08];
    apdu_no_le.extend_from_slice(&1u64.to_be_bytes());
    let resp = tx(&mut card, &apdu_no_le);
    assert_eq!(sw(&resp), 0x9000);
    assert_eq!(tlvs(data(&resp)).len(), 2 * oath::MAX_CREDENTIALS);
    // SEND REMAINING with nothing waiting: 6985; while PAYSIM is selected it is unknown.
    assert_eq!(card.process(&[0x00, 0xA5, 0x00, 0x00]), vec![0x69, 0x85]);
    tx(&mut card, &host::select());
    assert_eq!(card.process(&[0x00, 0xA5, 0x00, 0x00]), vec![0x6D, 0x00]);
}

#[test]
fn a_torn_hotp_commit_gives_no_code_and_the_counter_is_never_reused() {
    for tear in [Tear::Lost, Tear::Landed] {
        let disk = Disk::new(CardState::factory(&ADMIN_KEY));
        let mut card = front(disk.clone(), disk.durable());
        tx(&mut card, &select_oath());
        tx(&mut card, &put(b"h", 0x11, 6, RFC_KEY, 0));
        disk.fail_at(Some(disk.writes()), tear);
        assert_eq!(card.process(&calculate(b"h", &[], true)), vec![0x65, 0x81], "{tear:?}");
        // Count 0 is burnt either way (the card runs on with the counter it tried to commit):
        // the next code is count 1's, committed as 2 before it left; a card restarted from
        // the disk goes on with count 2.
        assert_eq!(code_of(&card.process(&calculate(b"h", &[], true))), "287082", "{tear:?}");
        let mut restarted = disk.restart();
        tx(&mut restarted, &select_oath());
        assert_eq!(code_of(&restarted.process(&calculate(b"h", &[], true))), "359152", "{tear:?}");
    }
}

#[test]
fn selecting_oath_ends_the_paysim_pin_session() {
    let mut card = unlocked();
    assert!(card.card().pin_verified());
    tx(&mut card, &select_oath());
    assert!(!card.card().pin_verified());
    assert_eq!(card.card().selected(), Applet::Oath);
    // PAYSIM's instructions are unknown to the OATH applet, and the reverse.
    assert_eq!(card.process(&host::login_otp(&[1; 16], VERIFIER).unwrap()), vec![0x6E, 0x00]);
    tx(&mut card, &host::select());
    assert_eq!(card.process(&list()), vec![0x6D, 0x00]);
    assert_eq!(host::parse_otp(&tx(&mut card, &login_apdu(&[1; 16]))), Err(host::CardError::SecurityNotSatisfied));
    // Nothing selected (after reset): the PAYSIM parser answers, so LIST is unknown and
    // CALCULATE ALL (INS A4 with P1 00) reads as a SELECT with a wrong P1.
    card.reset();
    assert_eq!(card.process(&list()), vec![0x6D, 0x00]);
    assert_eq!(card.process(&calculate_all(&[0; 8])), vec![0x6A, 0x86]);
}

#[test]
fn codes_and_keys_stay_out_of_debug_output() {
    let mut card = oath_card();
    tx(&mut card, &put(b"h", 0x11, 6, RFC_KEY, 0));
    let text = format!("{:?}", card.card());
    assert!(!text.contains("3132333435") && !text.contains("49, 50, 51"), "{text}");
}
