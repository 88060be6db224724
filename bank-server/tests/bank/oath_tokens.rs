//! OATH tokens (PAYSIM-OATH-1): a YKOATH credential answers the bank's challenges with a static
//! key. The "card" is the real card core's OATH applet in memory, driven with the host APDUs
//! the bridge sends, so the bank's check is tested against the card's arithmetic, not its own.

use axum::http::StatusCode;
use bank_server::master_key::KeySource;
use bank_server::{ops, OathTransfers};
use card_applet::host::oath;
use card_applet::state::{CardState, MemStore};
use card_applet::{Card as Core, CardFront};
use paysim_otp::{OathKey, TxFields};
use serde_json::{json, Value};

use crate::common::*;

const KEY: [u8; 32] = [0x4B; 32];

/// A YKOATH card holding dave's bank credential.
struct OathCard {
    front: CardFront<MemStore>,
}

impl OathCard {
    fn new(key: &[u8; 32]) -> Self {
        let mut front = CardFront::new(Core::new(MemStore::default(), CardState::factory(&[1; 32])));
        oath::parse_select(&front.process(&oath::select())).unwrap();
        let put = oath::put(&oath::credential_name("dave"), paysim_otp::OATH_KEY_TYPE, 8, key, false).unwrap();
        oath::parse_put(&front.process(&put)).unwrap();
        OathCard { front }
    }

    fn code(&mut self, q: &[u8; 32]) -> String {
        oath::parse_select(&self.front.process(&oath::select())).unwrap();
        let resp = self.front.process(&oath::calculate(&oath::credential_name("dave"), q).unwrap());
        oath::parse_calculate(&resp).unwrap().as_str().to_owned()
    }

    fn login(&mut self, challenge_hex: &str) -> String {
        self.code(&paysim_otp::oath_login_challenge(&hex::decode(challenge_hex).unwrap(), VID.as_bytes()))
    }

    fn tx(&mut self, created: &Value, amount_minor: u64) -> String {
        let s = &created["sign"];
        let cur: [u8; 3] = s["currency"].as_str().unwrap().as_bytes().try_into().unwrap();
        let fields = TxFields {
            version: paysim_otp::TxVersion::V2,
            verifier_id: VID.as_bytes(),
            transaction_id: s["transaction_id"].as_str().unwrap().as_bytes(),
            amount_minor,
            currency: &cur,
            source: s["source"].as_str().unwrap().as_bytes(),
            payee: s["payee"].as_str().unwrap().as_bytes(),
            payee_name: s["payee_name"].as_str().unwrap().as_bytes(),
        };
        let ch = hex::decode(created["challenge_hex"].as_str().unwrap()).unwrap();
        self.code(&paysim_otp::oath_tx_challenge(&ch, &fields))
    }
}

/// The test bank with dave, whose token is an OATH credential, and his funded account.
fn bank_with_dave(policy: OathTransfers) -> TestBank {
    let bank = TestBank::with(|cfg| {
        cfg.limits = bank_server::limit::Settings::off();
        cfg.oath_transfers = policy;
    });
    ops::add_user(&bank.path, "dave").unwrap();
    let key = OathKey::from_bytes(KEY);
    ops::enroll_oath_token_with_key(&bank.path, &KeySource::env_or_beside_db(), "OATH-DAVE", &key, "dave").unwrap();
    ops::open_account(&bank.path, "dave", "ACC-DAVE-EUR", "EUR", Some("Dave Example")).unwrap();
    ops::fund(&bank.path, "ACC-DAVE-EUR", 10_000, "opening").unwrap();
    bank
}

async fn submit_login(bank: &TestBank, c: &Value, otp: &str) -> (StatusCode, Value) {
    bank.call(
        "POST",
        "/api/v1/login",
        None,
        Some(json!({ "challenge_id": c["challenge_id"], "counter": 0, "otp": otp })),
    )
    .await
}

async fn login(bank: &TestBank, card: &mut OathCard) -> String {
    let c = bank.challenge("dave").await;
    let otp = card.login(c["challenge_hex"].as_str().unwrap());
    let (st, v) = submit_login(bank, &c, &otp).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_oath_token_logs_in_once_per_challenge_and_its_kind_is_recorded() {
    let bank = bank_with_dave(OathTransfers::Allow);
    let mut card = OathCard::new(&KEY);
    let c = bank.challenge("dave").await;
    let otp = card.login(c["challenge_hex"].as_str().unwrap());
    let (st, v) = submit_login(&bank, &c, &otp).await;
    assert_eq!((st, v["user"].as_str()), (StatusCode::OK, Some("dave")), "{v}");
    // The same answer again: the challenge is used up.
    let (st, v) = submit_login(&bank, &c, &otp).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("auth_failed")), "{v}");
    // A card with another key is refused.
    let c = bank.challenge("dave").await;
    let otp = OathCard::new(&[0x4C; 32]).login(c["challenge_hex"].as_str().unwrap());
    let (st, _) = submit_login(&bank, &c, &otp).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let dave = ops::list_tokens(&bank.path).unwrap().into_iter().find(|t| t.serial.as_str() == "OATH-DAVE").unwrap();
    assert_eq!((dave.kind, dave.next_counter, dave.failures), (bank_server::auth::TokenKind::Oath, 0, 1));
    let alice = ops::list_tokens(&bank.path).unwrap().into_iter().find(|t| t.serial.as_str() == "PSIM-ALICE").unwrap();
    assert_eq!(alice.kind, bank_server::auth::TokenKind::Paysim);
}

#[tokio::test]
async fn an_oath_transfer_binds_its_amount_and_is_single_use() {
    let bank = bank_with_dave(OathTransfers::Allow);
    let mut card = OathCard::new(&KEY);
    let token = login(&bank, &mut card).await;
    let (st, created) = bank.create_transfer(&token, "t-1", "ACC-DAVE-EUR", "ACC-BOB-EUR", 1234, "EUR").await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    // Signed for another amount than the bank asked: refused, and the transfer has failed (its
    // challenge was single use).
    let wrong = card.tx(&created, 9999);
    let (st, v) = bank.confirm(&token, "t-1", &created["challenge_id"], 0, &wrong).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("auth_failed")), "{v}");
    assert_eq!(v["transfer"]["status"], "failed", "{v}");
    assert_eq!(bank.balance(&token, "ACC-DAVE-EUR").await, 10_000);
    // The right code for that transfer is refused too: it has ended. So is asking again.
    let right = card.tx(&created, 1234);
    let (st, v) = bank.confirm(&token, "t-1", &created["challenge_id"], 0, &right).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("transfer_ended")), "{v}");
    let (st, v) = bank.create_transfer(&token, "t-1", "ACC-DAVE-EUR", "ACC-BOB-EUR", 1234, "EUR").await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("transfer_ended")), "{v}");
    // A new transfer id gets a new challenge, and that works.
    let (st, again) = bank.create_transfer(&token, "t-1b", "ACC-DAVE-EUR", "ACC-BOB-EUR", 1234, "EUR").await;
    assert_eq!(st, StatusCode::CREATED, "{again}");
    let right = card.tx(&again, 1234);
    let (st, done) = bank.confirm(&token, "t-1b", &again["challenge_id"], 0, &right).await;
    assert_eq!((st, done["transfer"]["status"].as_str()), (StatusCode::OK, Some("executed")), "{done}");
    assert_eq!(bank.balance(&token, "ACC-DAVE-EUR").await, 10_000 - 1234);
    // Replaying the accepted answer moves nothing again.
    let (_, t2) = bank.create_transfer(&token, "t-2", "ACC-DAVE-EUR", "ACC-BOB-EUR", 1234, "EUR").await;
    let (st, _) = bank.confirm(&token, "t-2", &t2["challenge_id"], 0, &right).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(bank.balance(&token, "ACC-DAVE-EUR").await, 10_000 - 1234);
}

#[tokio::test]
async fn an_oath_token_locks_after_five_wrong_codes_like_a_card() {
    let bank = bank_with_dave(OathTransfers::Allow);
    let mut card = OathCard::new(&KEY);
    for _ in 0..bank_server::auth::MAX_FAILURES {
        let c = bank.challenge("dave").await;
        let (st, _) = submit_login(&bank, &c, "00000000").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let c = bank.challenge("dave").await;
    let otp = card.login(c["challenge_hex"].as_str().unwrap());
    let (st, _) = submit_login(&bank, &c, &otp).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "a locked token is refused even with the right code");
    let dave = ops::list_tokens(&bank.path).unwrap().into_iter().find(|t| t.serial.as_str() == "OATH-DAVE").unwrap();
    assert!(dave.locked_until.is_some());
}

#[tokio::test]
async fn the_policy_keeps_oath_tokens_from_transfers_with_its_own_code() {
    let bank = bank_with_dave(OathTransfers::Deny);
    let mut card = OathCard::new(&KEY);
    let token = login(&bank, &mut card).await;
    let (st, v) = bank.create_transfer(&token, "t-1", "ACC-DAVE-EUR", "ACC-BOB-EUR", 100, "EUR").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "token_kind_not_allowed");
    assert!(v["message"].as_str().unwrap().contains("OATH"), "{v}");
    assert_eq!(bank.audit_count("refused_by_policy", "oath"), 1);
    // Nothing was recorded: no transfer t-1 exists.
    let (st, _) = bank.call("GET", "/api/v1/transfers/t-1", Some(&token), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A PAYSIM card's user is not affected.
    let mut alice = Card::new(seed("alice"));
    let t = bank.login(&mut alice, "alice").await;
    let (st, v) = bank.pay(&t, &mut alice, "t-a", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100, "EUR").await;
    assert_eq!(st, StatusCode::OK, "{v}");
}
