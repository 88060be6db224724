//! The project's own known-answer vectors (testdata/paysim-vectors.json, also printed in
//! docs/protocol.md): the otp module, the card and the admin protocol must reproduce them,
//! and one step is recomputed here by hand from the definition with hmac/sha2 alone.
//! (testdata/paysim-crosscheck.py recomputes all of them in Python.)

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use card_applet::host::admin::{AdminSession, Personalization};
use card_applet::host::{self};
use card_applet::scp::{kdf, SessionKeys};
use card_applet::state::{CardState, MemStore};
use card_applet::{Card, CardFront};
use common::{sw, tx};
use hmac::{Hmac, Mac};
use paysim_otp::{login_context, login_otp, tx_context, tx_otp, ChainKey, TxFields, TxVersion};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/paysim-vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn arr<const N: usize>(v: &Value) -> [u8; N] {
    h(v).try_into().unwrap()
}

struct Tx {
    id: Vec<u8>,
    amount: u64,
    currency: [u8; 3],
    payee: Vec<u8>,
}

fn tx_of(p: &Value) -> Tx {
    let t = &p["transaction"];
    Tx {
        id: t["transaction_id"].as_str().unwrap().as_bytes().to_vec(),
        amount: t["amount_minor"].as_u64().unwrap(),
        currency: t["currency"].as_str().unwrap().as_bytes().try_into().unwrap(),
        payee: t["payee"].as_str().unwrap().as_bytes().to_vec(),
    }
}

#[test]
fn paysim1_vectors_from_the_otp_module() {
    let v = vectors();
    let p = &v["paysim1"];
    let seed: [u8; 32] = arr(&p["seed_hex"]);
    let challenge = h(&p["challenge_hex"]);
    let vid = p["verifier_id"].as_str().unwrap().as_bytes();
    let t = tx_of(p);
    let fields = TxFields {
        version: paysim_otp::TxVersion::V1,
        source: b"",
        payee_name: b"",
        verifier_id: vid,
        transaction_id: &t.id,
        amount_minor: t.amount,
        currency: &t.currency,
        payee: &t.payee,
    };
    assert_eq!(login_context(vid), h(&p["login_context_hex"]));
    assert_eq!(tx_context(&fields), h(&p["tx_context_hex"]));
    let steps = p["steps"].as_array().unwrap();
    assert!(steps.len() >= 5);
    let ck0 = ChainKey::from_bytes(seed);
    for (i, s) in steps.iter().enumerate() {
        let i = u64::try_from(i).unwrap();
        assert_eq!(s["counter"].as_u64().unwrap(), i);
        let ck = ck0.advance(i);
        assert_eq!(ck.expose().to_vec(), h(&s["chain_key_hex"]), "ck_{i}");
        assert_eq!(ck.step_key().to_vec(), h(&s["step_key_hex"]), "k_{i}");
        assert_eq!(login_otp(&ck, i, &challenge, vid).as_str(), s["login_otp"].as_str().unwrap(), "login {i}");
        assert_eq!(tx_otp(&ck, i, &challenge, &fields).as_str(), s["tx_otp"].as_str().unwrap(), "tx {i}");
    }
}

#[test]
fn paysim2_vectors_from_the_otp_module_and_the_card() {
    let v = vectors();
    let p1 = &v["paysim1"];
    let p = &v["paysim2"];
    let t = &p["transaction"];
    let s = |k: &str| t[k].as_str().unwrap().as_bytes();
    let currency: [u8; 3] = s("currency").try_into().unwrap();
    let fields = TxFields {
        version: TxVersion::V2,
        verifier_id: p1["verifier_id"].as_str().unwrap().as_bytes(),
        transaction_id: s("transaction_id"),
        amount_minor: t["amount_minor"].as_u64().unwrap(),
        currency: &currency,
        source: s("source"),
        payee: s("payee"),
        payee_name: s("payee_name"),
    };
    // The name has letters outside ASCII, signed as their UTF-8 bytes.
    assert!(!t["payee_name"].as_str().unwrap().is_ascii());
    assert_eq!(tx_context(&fields), h(&p["tx_context_hex"]));
    assert!(h(&p["tx_context_hex"]).starts_with(b"PAYSIM-2 TX"));
    let challenge = h(&p1["challenge_hex"]);
    let ck0 = ChainKey::from_bytes(arr(&p1["seed_hex"]));
    let steps = p["steps"].as_array().unwrap();
    assert!(steps.len() >= 5);
    for (i, st) in steps.iter().enumerate() {
        let i = u64::try_from(i).unwrap();
        assert_eq!(st["counter"].as_u64().unwrap(), i);
        assert_eq!(
            tx_otp(&ck0.advance(i), i, &challenge, &fields).as_str(),
            st["tx_otp"].as_str().unwrap(),
            "v2 tx {i}"
        );
        // Version 1 of the same transfer gives another code: the versions cannot be confused.
        let v1 = TxFields { version: TxVersion::V1, ..fields.clone() };
        assert_ne!(tx_otp(&ck0.advance(i), i, &challenge, &v1).as_str(), st["tx_otp"].as_str().unwrap());
    }
    // The host builds the documented APDU, and a card at counter 1 answers the documented bytes.
    let c = &p["card"];
    assert_eq!(hex::encode_upper(host::tx_otp(&challenge, &fields).unwrap()), c["tx_otp_apdu_hex"].as_str().unwrap());
    let mut card = common::factory();
    let seed: [u8; 32] = arr(&p1["seed_hex"]);
    common::personalize_with(&mut card, &common::ADMIN_KEY, &seed, common::PIN, common::PUK, common::SERIAL);
    assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
    assert_eq!(sw(&tx(&mut card, &host::verify(common::PIN).unwrap())), 0x9000);
    assert_eq!(sw(&tx(&mut card, &h(&p1["card"]["login_otp_apdu_hex"]))), 0x9000);
    let resp = tx(&mut card, &h(&c["tx_otp_apdu_hex"]));
    assert_eq!(hex::encode_upper(&resp), c["tx_otp_response_hex"].as_str().unwrap());
}

/// RFC 4226 §5.3 dynamic truncation to 8 digits.
fn truncate8(mac: &[u8]) -> String {
    let off = usize::from(mac[mac.len() - 1] & 0x0F);
    let bin = u32::from_be_bytes([mac[off] & 0x7F, mac[off + 1], mac[off + 2], mac[off + 3]]);
    format!("{:08}", bin % 100_000_000)
}

fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

#[test]
fn step_one_recomputed_by_hand_from_the_definition() {
    // Independent of the otp module: the chain, the context, and the OCRA DataInput of
    // RFC 6287 §5.1 written out byte by byte.
    let v = vectors();
    let p = &v["paysim1"];
    let seed = h(&p["seed_hex"]);
    let challenge = h(&p["challenge_hex"]);
    let vid = p["verifier_id"].as_str().unwrap().as_bytes();
    let t = tx_of(p);
    let ck1 = hmac256(&seed, b"PAYSIM-1 CHAIN");
    let k1 = hmac256(&ck1, b"PAYSIM-1 OTP");

    let mut ctx = b"PAYSIM-1 TX".to_vec();
    for f in [vid, &t.id, &t.amount.to_be_bytes(), &t.currency, &t.payee] {
        ctx.extend_from_slice(&u16::try_from(f.len()).unwrap().to_be_bytes());
        ctx.extend_from_slice(f);
    }
    let mut data_input = b"OCRA-1:HOTP-SHA256-8:C-QH64-S064".to_vec();
    data_input.push(0x00);
    data_input.extend_from_slice(&1u64.to_be_bytes()); // C = 1
    let mut q = [0u8; 128]; // Q: the challenge's hex digits, as bytes, zero-filled to 128
    q[..challenge.len()].copy_from_slice(&challenge);
    data_input.extend_from_slice(&q);
    data_input.extend_from_slice(&Sha512::digest(&ctx)); // S064 = SHA-512(context)
    assert_eq!(data_input.len(), 33 + 8 + 128 + 64);
    let code = truncate8(&hmac256(&k1, &data_input));
    assert_eq!(code, p["steps"][1]["tx_otp"].as_str().unwrap());

    let mut login_ctx = b"PAYSIM-1 LOGIN".to_vec();
    login_ctx.extend_from_slice(&u16::try_from(vid.len()).unwrap().to_be_bytes());
    login_ctx.extend_from_slice(vid);
    data_input.truncate(33 + 8 + 128);
    data_input.extend_from_slice(&Sha512::digest(&login_ctx));
    assert_eq!(truncate8(&hmac256(&k1, &data_input)), p["steps"][1]["login_otp"].as_str().unwrap());
}

fn card_with_random(state: CardState, bytes: Vec<u8>) -> CardFront<MemStore> {
    let mut pos = 0;
    let random = Box::new(move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            *b = bytes[pos % bytes.len()];
            pos += 1;
        }
        true
    });
    CardFront::new(Card::with_random(MemStore::default(), state, random))
}

#[test]
fn admin_and_card_vectors_byte_for_byte() {
    let v = vectors();
    let a = &v["admin"];
    let key: [u8; 32] = arr(&a["admin_key_hex"]);
    let rh: [u8; 16] = arr(&a["host_challenge_hex"]);
    let rc: [u8; 16] = arr(&a["card_challenge_hex"]);
    let mut ctx = rh.to_vec();
    ctx.extend_from_slice(&rc);
    for (c, name) in [(0x04, "s_enc_hex"), (0x06, "s_mac_hex"), (0x07, "s_rmac_hex")] {
        let mut out = [0u8; 32];
        kdf(&key, c, &ctx, &mut out);
        assert_eq!(out.to_vec(), h(&a[name]), "{name}");
    }
    let keys = SessionKeys::derive(&key, &rh, &rc);
    assert_eq!(keys.host_cryptogram().to_vec(), h(&a["host_cryptogram_hex"]));
    assert_eq!(keys.card_cryptogram().to_vec(), h(&a["card_cryptogram_hex"]));

    // A card whose random source yields the vector's card challenge, driven by the host
    // session with the vector's host challenge, exchanges exactly the documented bytes.
    let mut card = card_with_random(CardState::factory(&key), rc.to_vec());
    assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
    let mut s = AdminSession::with_host_challenge(&key, rh);
    let got_rc = tx(&mut card, &AdminSession::get_challenge());
    assert_eq!(&got_rc[..16], &rc);
    let auth = s.external_authenticate(&got_rc).unwrap();
    assert_eq!(hex::encode_upper(&auth), a["external_authenticate_apdu_hex"].as_str().unwrap());
    let resp = tx(&mut card, &auth);
    assert_eq!(&resp[..16], &keys.card_cryptogram());
    s.check_authenticated(&resp).unwrap();
    let pz = &a["personalize"];
    let seed: [u8; 32] = arr(&pz["seed_hex"]);
    let cmd = s
        .personalize(&Personalization {
            seed: &seed,
            pin: pz["pin"].as_str().unwrap(),
            puk: pz["puk"].as_str().unwrap(),
            serial: pz["serial"].as_str().unwrap(),
        })
        .unwrap();
    assert_eq!(hex::encode_upper(cmd.as_slice()), a["personalize_apdu_hex"].as_str().unwrap());
    let resp = tx(&mut card, &cmd);
    assert_eq!(hex::encode(&resp[..16]), a["r_mac_hex"].as_str().unwrap());
    s.check_personalized(&resp).unwrap();

    // The personalized card answers the documented LOGIN OTP APDU with the documented bytes.
    let c = &v["paysim1"]["card"];
    assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
    assert_eq!(sw(&tx(&mut card, &host::verify(pz["pin"].as_str().unwrap()).unwrap())), 0x9000);
    let resp = tx(&mut card, &h(&c["login_otp_apdu_hex"]));
    assert_eq!(hex::encode_upper(&resp), c["login_otp_response_hex"].as_str().unwrap());
    let resp = tx(&mut card, &h(&c["tx_otp_apdu_hex"]));
    let (i, code) = host::parse_otp(&resp).unwrap();
    assert_eq!((i, code.as_str()), (1, v["paysim1"]["steps"][1]["tx_otp"].as_str().unwrap()));
}
