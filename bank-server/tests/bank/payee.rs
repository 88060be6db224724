//! Verification of payee and transaction context version 2 at the bank: every answer in the
//! transfer's challenge answer, the second confirmation of a payee whose name does not match
//! (refused without it, audited with it), and old cards refused for transfers.

use axum::http::StatusCode;
use bank_server::ops;
use paysim_otp::{ChainKey, TxVersion};
use serde_json::{json, Value};

use crate::common::*;

/// Creates a transfer of 1.00 EUR from alice to `to` with the payee's name `name`.
async fn start(bank: &TestBank, token: &str, id: &str, to: &str, name: &str) -> Value {
    let (st, created) = bank.transfer_named(token, id, "ACC-ALICE-EUR", to, 100, "EUR", name).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    created
}

async fn confirm_with(bank: &TestBank, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
    bank.call("POST", &format!("/api/v1/transfers/{id}/confirm"), Some(token), Some(body)).await
}

#[tokio::test]
async fn each_payee_check_answer_comes_with_the_challenge() {
    let bank = TestBank::new();
    // An account opened before accounts carried a holder's name.
    ops::open_account(&bank.path, "carol", "ACC-CAROL-OLD", "EUR", None).unwrap();
    let mut alice = Card::new(seed("alice"));
    let token = bank.login(&mut alice, "alice").await;

    let m = start(&bank, &token, "vop-1", "ACC-BOB-EUR", "bob  EXAMPLE").await;
    assert_eq!(m["payee_check"], json!({ "result": "match" }));
    // What the card signs is the name as given (trimmed), not the account's.
    assert_eq!(m["sign"]["payee_name"], "bob  EXAMPLE");

    let c = start(&bank, &token, "vop-2", "ACC-BOB-EUR", "Example Bob").await;
    assert_eq!(c["payee_check"], json!({ "result": "close_match", "account_name": "Bob Example" }));

    let n = start(&bank, &token, "vop-3", "ACC-BOB-EUR", "Mallory Evil").await;
    assert_eq!(n["payee_check"], json!({ "result": "no_match" }));
    // A no match reveals no name: the account holder's name is nowhere in the answer.
    assert!(!n.to_string().contains("Bob Example"), "{n}");

    let u = start(&bank, &token, "vop-4", "ACC-CAROL-OLD", "Carol Example").await;
    assert_eq!(u["payee_check"], json!({ "result": "unavailable" }));

    // A retry of the same request answers the same check; the same id with another name is
    // another request.
    let again = start(&bank, &token, "vop-2", "ACC-BOB-EUR", "Example Bob").await;
    assert_eq!(again["payee_check"], c["payee_check"]);
    let (st, v) = bank.transfer_named(&token, "vop-2", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100, "EUR", "Bob Example").await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("transfer_id_conflict")));
    // The audit log has each answer.
    for word in ["match", "close_match", "no_match", "unavailable"] {
        assert!(bank.audit_count("transfer_created", &format!("\"payee_check\":\"{word}\"")) >= 1, "{word}");
    }
}

#[tokio::test]
async fn a_no_match_needs_a_second_confirmation_which_the_audit_records() {
    let bank = TestBank::new();
    let mut alice = Card::new(seed("alice"));
    let token = bank.login(&mut alice, "alice").await;
    let created = start(&bank, &token, "nm-1", "ACC-BOB-EUR", "Mallory Evil").await;
    let (counter, otp) = sign_tx(&mut alice, &created);
    let body = json!({ "challenge_id": created["challenge_id"], "counter": counter, "otp": otp });

    // Without the second confirmation: refused before the code is looked at, nothing moves.
    let (st, v) = confirm_with(&bank, &token, "nm-1", body.clone()).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("payee_not_confirmed")), "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("does not match") && msg.contains("confirm_unverified_payee"), "{msg}");
    let mut explicit_no = body.clone();
    explicit_no["confirm_unverified_payee"] = json!(false);
    assert_eq!(confirm_with(&bank, &token, "nm-1", explicit_no).await.0, StatusCode::CONFLICT);
    assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, 100_000);
    assert_eq!(bank.audit_count("payee_unverified_confirmed", "nm-1"), 0);

    // With it: the same code (the challenge was not used up) moves the money, once, audited.
    let mut yes = body;
    yes["confirm_unverified_payee"] = json!(true);
    let (st, v) = confirm_with(&bank, &token, "nm-1", yes).await;
    assert_eq!((st, v["transfer"]["status"].as_str()), (StatusCode::OK, Some("executed")), "{v}");
    assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, 99_900);
    assert_eq!(bank.audit_count("payee_unverified_confirmed", "\"payee_check\":\"no_match\""), 1);
    assert_eq!(bank.audit_count("payee_unverified_confirmed", "\"payee_name\":\"Mallory Evil\""), 1);

    // A match needs no second confirmation, and writes no such event.
    let (st, v) = bank.pay(&token, &mut alice, "m-1", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100, "EUR").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(bank.audit_count("payee_unverified_confirmed", "\"m-1\""), 0);
}

#[tokio::test]
async fn an_unavailable_check_needs_the_second_confirmation_too() {
    let bank = TestBank::new();
    ops::open_account(&bank.path, "carol", "ACC-CAROL-OLD", "EUR", None).unwrap();
    let mut alice = Card::new(seed("alice"));
    let token = bank.login(&mut alice, "alice").await;
    let created = start(&bank, &token, "un-1", "ACC-CAROL-OLD", "Carol Example").await;
    let (counter, otp) = sign_tx(&mut alice, &created);
    let body = json!({ "challenge_id": created["challenge_id"], "counter": counter, "otp": otp });
    let (st, v) = confirm_with(&bank, &token, "un-1", body.clone()).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("payee_not_confirmed")));
    assert!(v["message"].as_str().unwrap().contains("could not check"), "{v}");
    let mut yes = body;
    yes["confirm_unverified_payee"] = json!(true);
    assert_eq!(confirm_with(&bank, &token, "un-1", yes).await.0, StatusCode::OK);
    assert_eq!(bank.audit_count("payee_unverified_confirmed", "\"payee_check\":\"unavailable\""), 1);
}

#[tokio::test]
async fn a_version_1_card_logs_in_but_its_transfers_are_refused_with_the_reason() {
    let bank = TestBank::new();
    ops::add_user(&bank.path, "dave").unwrap();
    ops::enroll_token_version(&bank.path, "PSIM-DAVE", &ChainKey::from_bytes(seed("dave")), 0, TxVersion::V1, "dave")
        .unwrap();
    ops::open_account(&bank.path, "dave", "ACC-DAVE-EUR", "EUR", Some("Dave Example")).unwrap();
    ops::fund(&bank.path, "ACC-DAVE-EUR", 1_000, "opening").unwrap();
    let listed = ops::list_tokens(&bank.path).unwrap();
    let dave = listed.iter().find(|t| t.serial == "PSIM-DAVE").unwrap();
    let alice = listed.iter().find(|t| t.serial == "PSIM-ALICE").unwrap();
    assert_eq!((dave.tx_version, alice.tx_version), (1, 2));

    let mut card = Card::new(seed("dave"));
    let token = bank.login(&mut card, "dave").await;
    let (st, v) = bank.transfer_named(&token, "old-1", "ACC-DAVE-EUR", "ACC-BOB-EUR", 100, "EUR", "Bob Example").await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("card_too_old")), "{v}");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("neither the source account nor the payee's name") && msg.contains("ask the bank for a new card"),
        "{msg}"
    );
    // Nothing is pending; the refusal is audited with its reason.
    let (_, history) = bank.call("GET", "/api/v1/transfers", Some(&token), None).await;
    assert_eq!(history["transfers"], json!([]));
    assert_eq!(bank.audit_count("transfer_refused", "\"reason\":\"card_too_old\""), 1);
    // Logging in again still works.
    bank.login(&mut card, "dave").await;
}
