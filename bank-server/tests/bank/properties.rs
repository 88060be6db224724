//! The money and authentication properties of issue 3, as tests.

use std::sync::Arc;

use axum::http::StatusCode;
use paysim_otp::TxFields;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_used_login_code_replayed_1000_times_in_a_row_succeeds_once() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let c = bank.challenge("alice").await;
    let (counter, otp) = card.login(c["challenge_hex"].as_str().unwrap(), VID);
    let body = json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp });
    let mut ok = 0;
    for _ in 0..1000 {
        let (st, _) = bank.call("POST", "/api/v1/login", None, Some(body.clone())).await;
        match st {
            StatusCode::OK => ok += 1,
            StatusCode::UNAUTHORIZED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
    // The same (counter, code) under a fresh challenge is a replay, recorded as such.
    let c2 = bank.challenge("alice").await;
    let (st, _) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": c2["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(bank.audit_count("otp_check", "counter_replay_or_clone"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_code_sent_100_times_at_once_succeeds_once() {
    let bank = Arc::new(TestBank::new());
    let mut card = Card::new(seed("alice"));
    let c = bank.challenge("alice").await;
    let (counter, otp) = card.login(c["challenge_hex"].as_str().unwrap(), VID);
    let body = json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp });
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (bank, body) = (bank.clone(), body.clone());
        tasks.push(tokio::spawn(async move { bank.call("POST", "/api/v1/login", None, Some(body)).await.0 }));
    }
    let mut ok = 0;
    for t in tasks {
        let st = t.await.unwrap();
        assert!(st == StatusCode::OK || st == StatusCode::UNAUTHORIZED, "{st}");
        ok += usize::from(st == StatusCode::OK);
    }
    assert_eq!(ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_code_sent_100_times_at_once_moves_money_once() {
    let bank = Arc::new(TestBank::new());
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    let (_, created) = bank.create_transfer(&token, "once", "ACC-ALICE-EUR", "ACC-BOB-EUR", 700, "EUR").await;
    let (counter, otp) = sign_tx(&mut card, &created);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (bank, token, cid, otp) = (bank.clone(), token.clone(), created["challenge_id"].clone(), otp.clone());
        tasks.push(tokio::spawn(async move { bank.confirm(&token, "once", &cid, counter, &otp).await }));
    }
    for t in tasks {
        // Every answer is the one result: the first executes it, the others see it executed.
        let (st, v) = t.await.unwrap();
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["transfer"]["status"], "executed");
    }
    assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, 100_000 - 700);
    assert_eq!(bank.audit_count("transfer_executed", "\"once\""), 1);
    assert_eq!(bank.audit_count("otp_check", "\"ok\""), 2, "login + this transfer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_wrong_codes_lock_after_exactly_five() {
    let bank = Arc::new(TestBank::new());
    let mut card = Card::new(seed("alice"));
    let mut challenges = Vec::new();
    for _ in 0..50 {
        challenges.push(bank.challenge("alice").await);
    }
    let mut tasks = Vec::new();
    for (i, c) in challenges.into_iter().enumerate() {
        let bank = bank.clone();
        let wrong = format!("{:08}", 10_000_000 + i);
        tasks.push(tokio::spawn(async move {
            let body = json!({ "challenge_id": c["challenge_id"], "counter": 0, "otp": wrong });
            bank.call("POST", "/api/v1/login", None, Some(body)).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(bank.audit_count("otp_check", "\"otp_mismatch\""), 5, "exactly five codes were evaluated");
    assert_eq!(bank.audit_count("otp_check", "\"token_locked\""), 45);
    assert_eq!(bank.audit_count("token_locked", "PSIM-ALICE"), 1);

    // The right code is refused while locked...
    let c = bank.challenge("alice").await;
    let (counter, otp) = card.clone().login(c["challenge_hex"].as_str().unwrap(), VID);
    let (st, _) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let tokens = bank_server::ops::list_tokens(&bank.path).unwrap();
    let alice = tokens.iter().find(|t| t.serial == "PSIM-ALICE").unwrap();
    assert_eq!((alice.status.as_str(), alice.failures), ("active", 0), "the failure count restarts with each lock");

    // ...and accepted once the first lock's minute is over.
    bank.clock.advance(60);
    let token = bank.login(&mut card, "alice").await;
    assert_eq!(token.len(), 48);
}

#[tokio::test]
async fn locks_escalate_and_an_operator_can_unlock() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let fail5 = || async {
        for _ in 0..5 {
            let c = bank.challenge("alice").await;
            let body = json!({ "challenge_id": c["challenge_id"], "counter": 0, "otp": "00000000" });
            assert_eq!(bank.call("POST", "/api/v1/login", None, Some(body)).await.0, StatusCode::UNAUTHORIZED);
        }
    };
    let try_login = |card: &mut Card| {
        let mut probe = card.clone();
        let bank = &bank;
        async move {
            let c = bank.challenge("alice").await;
            let (counter, otp) = probe.login(c["challenge_hex"].as_str().unwrap(), VID);
            let body = json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp });
            (bank.call("POST", "/api/v1/login", None, Some(body)).await.0 == StatusCode::OK, probe)
        }
    };
    fail5().await;
    bank.clock.advance(59);
    assert!(!try_login(&mut card).await.0, "still locked after 59 s");
    bank.clock.advance(1);
    fail5().await; // second lock: 120 s
    bank.clock.advance(119);
    assert!(!try_login(&mut card).await.0);
    bank.clock.advance(1);
    let (ok, probe) = try_login(&mut card).await;
    assert!(ok);
    card = probe;

    // The owner's success does not reset the escalation: the third lock is 240 s.
    fail5().await;
    bank.clock.advance(239);
    assert!(!try_login(&mut card).await.0);
    bank.clock.advance(1);
    let (ok, probe) = try_login(&mut card).await;
    assert!(ok);
    card = probe;

    // Within a week the escalation goes on (480 s); a week after a lock ended it starts again.
    bank.clock.advance(6 * 24 * 3600);
    fail5().await;
    bank.clock.advance(479);
    assert!(!try_login(&mut card).await.0);
    bank.clock.advance(1 + 7 * 24 * 3600 + 1);
    fail5().await;
    bank.clock.advance(60);
    let (ok, probe) = try_login(&mut card).await;
    assert!(ok);
    card = probe;

    // An operator unlock ends a lock at once.
    fail5().await;
    assert!(!try_login(&mut card).await.0);
    bank_server::ops::unlock_token(&bank.path, "PSIM-ALICE").unwrap();
    let (ok, _) = try_login(&mut card).await;
    assert!(ok);
    assert_eq!(bank.audit_count("token_unlocked", "PSIM-ALICE"), 1);
    assert_eq!(bank.audit_count("token_locked", "PSIM-ALICE"), 6);

    // A revoked token never logs in again.
    bank_server::ops::revoke_token(&bank.path, "PSIM-ALICE").unwrap();
    assert!(!try_login(&mut card).await.0);
}

/// Each single-field change between what the bank asked to sign and what the card signed is
/// refused and moves nothing; the honest code then moves the money exactly once.
#[tokio::test]
async fn each_single_field_change_is_refused_and_moves_nothing() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    let mut expected = 100_000i64;
    for (i, field) in
        ["amount", "currency", "payee", "transfer id", "challenge", "verifier id", "source", "payee name", "version 1"]
            .into_iter()
            .enumerate()
    {
        let id = format!("f-{i}");
        let (st, created) = bank.create_transfer(&token, &id, "ACC-ALICE-EUR", "ACC-BOB-EUR", 500, "EUR").await;
        assert_eq!(st, StatusCode::CREATED);
        let other_challenge = "11".repeat(32);
        let challenge =
            if field == "challenge" { other_challenge.as_str() } else { created["challenge_hex"].as_str().unwrap() };
        let vid = if field == "verifier id" { "http://localhost:8081" } else { VID };
        let tid = if field == "transfer id" { format!("{id}x") } else { id.clone() };
        let amount = if field == "amount" { 501 } else { 500 };
        let cur = if field == "currency" { b"USD" } else { b"EUR" };
        let payee = if field == "payee" { "ACC-CAROL-EUR" } else { "ACC-BOB-EUR" };
        // A changed source account (another of alice's accounts) or payee's name, as a
        // tampering terminal or page would sign it, is refused: the bank checks its own.
        let source = if field == "source" { "ACC-ALICE-USD" } else { "ACC-ALICE-EUR" };
        let name = if field == "payee name" { "Mallory Example" } else { "Bob Example" };
        let version = if field == "version 1" { paysim_otp::TxVersion::V1 } else { paysim_otp::TxVersion::V2 };
        let (counter, otp) = card.tx(
            challenge,
            &TxFields {
                version,
                verifier_id: vid.as_bytes(),
                transaction_id: tid.as_bytes(),
                amount_minor: amount,
                currency: cur,
                source: source.as_bytes(),
                payee: payee.as_bytes(),
                payee_name: name.as_bytes(),
            },
        );
        let (st, v) = bank.confirm(&token, &id, &created["challenge_id"], counter, &otp).await;
        assert_eq!((st, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("auth_failed")), "{field}");
        assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, expected, "{field}");
        // The refused code used the challenge up: the transfer has failed, for good.
        assert_eq!(v["transfer"]["status"], "failed", "{field}");
        let (_, t) = bank.call("GET", &format!("/api/v1/transfers/{id}"), Some(&token), None).await;
        assert_eq!((t["status"].as_str(), t["reason"].as_str()), (Some("failed"), Some("code_refused")), "{field}");
        let (st, v) = bank.create_transfer(&token, &id, "ACC-ALICE-EUR", "ACC-BOB-EUR", 500, "EUR").await;
        assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("transfer_ended")), "{field}");

        // The honest signature of a new transfer executes it, once.
        let id = format!("{id}-again");
        let (st, again) = bank.create_transfer(&token, &id, "ACC-ALICE-EUR", "ACC-BOB-EUR", 500, "EUR").await;
        assert_eq!(st, StatusCode::CREATED);
        let (counter, otp) = sign_tx(&mut card, &again);
        let (st, _) = bank.confirm(&token, &id, &again["challenge_id"], counter, &otp).await;
        assert_eq!(st, StatusCode::OK, "{field}");
        expected -= 500;
        assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, expected);
    }
    assert_eq!(bank.audit_count("otp_check", "\"otp_mismatch\""), 9);
}

#[tokio::test]
async fn retries_of_a_transfer_id_move_money_once_even_across_a_restart() {
    let mut bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    let (st, created) = bank.create_transfer(&token, "idem-1", "ACC-ALICE-EUR", "ACC-BOB-EUR", 2500, "EUR").await;
    assert_eq!(st, StatusCode::CREATED);
    // A retry while pending: a new challenge for the same transfer; the first stays valid.
    let (st, created2) = bank.create_transfer(&token, "idem-1", "ACC-ALICE-EUR", "ACC-BOB-EUR", 2500, "EUR").await;
    assert_eq!(st, StatusCode::CREATED);
    assert_ne!(created["challenge_id"], created2["challenge_id"]);
    let (counter, otp) = sign_tx(&mut card, &created);
    let (st, first) = bank.confirm(&token, "idem-1", &created["challenge_id"], counter, &otp).await;
    assert_eq!(st, StatusCode::OK);

    for round in 0..2 {
        let (st, v) = bank.create_transfer(&token, "idem-1", "ACC-ALICE-EUR", "ACC-BOB-EUR", 2500, "EUR").await;
        assert_eq!(st, StatusCode::OK, "round {round}");
        assert_eq!(v["transfer"], first["transfer"]);
        assert!(v.get("challenge_id").is_none());
        let (st, v) = bank.confirm(&token, "idem-1", &created["challenge_id"], counter, &otp).await;
        assert_eq!((st, &v["transfer"]), (StatusCode::OK, &first["transfer"]));
        let (st, v) = bank.create_transfer(&token, "idem-1", "ACC-ALICE-EUR", "ACC-CAROL-EUR", 2500, "EUR").await;
        assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("transfer_id_conflict")));
        assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, 100_000 - 2500);
        bank = bank.restart();
    }
    assert_eq!(bank.audit_count("transfer_executed", "idem-1"), 1);
}

/// Users pay each other at random, all at once; the books stay balanced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_random_transfers_conserve_money() {
    let bank = Arc::new(TestBank::new());
    let before = bank.balances();
    let total = |b: &[(String, i64)]| b.iter().filter(|(n, _)| n.ends_with("-EUR")).map(|(_, v)| v).sum::<i64>();
    let accounts = ["ACC-ALICE-EUR", "ACC-BOB-EUR", "ACC-CAROL-EUR"];
    let mut tasks = Vec::new();
    for (ui, user) in ["alice", "bob", "carol"].into_iter().enumerate() {
        let bank = bank.clone();
        tasks.push(tokio::spawn(async move {
            let mut card = Card::new(seed(user));
            let token = bank.login(&mut card, user).await;
            let mut x: u64 = 0x9E37_79B9 ^ ui as u64;
            let mut executed = 0;
            for i in 0..25 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let to = accounts[(ui + 1 + (x % 2) as usize) % 3];
                let amount = 1 + x % 40_000;
                let (st, v) =
                    bank.pay(&token, &mut card, &format!("{user}-{i}"), accounts[ui], to, amount, "EUR").await;
                match st {
                    StatusCode::OK => executed += 1,
                    StatusCode::CONFLICT => assert_eq!(v["error"], "insufficient_funds"),
                    other => panic!("{other}: {v}"),
                }
            }
            executed
        }));
    }
    let mut executed = 0;
    for t in tasks {
        executed += t.await.unwrap();
    }
    assert!(executed > 10, "too few transfers executed ({executed}) to say anything");
    let after = bank.balances();
    assert_eq!(total(&before), total(&after));
    assert!(after.iter().all(|(_, v)| *v >= 0), "{after:?}");
    assert_ne!(before, after);
}

#[tokio::test]
async fn the_counter_window_is_next_to_next_plus_19() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    for skipped in 1..=19 {
        card.skip(skipped);
        let _ = bank.login(&mut card, "alice").await;
    }
    // An older counter (a cloned card's state) never works.
    let old = card.clone();
    let _ = bank.login(&mut card, "alice").await;
    let mut clone = old;
    let c = bank.challenge("alice").await;
    let (counter, otp) = clone.login(c["challenge_hex"].as_str().unwrap(), VID);
    let (st, _) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(bank.audit_count("otp_check", "counter_replay_or_clone"), 1);

    // 20 codes lost: too far ahead.
    card.skip(20);
    let c = bank.challenge("alice").await;
    let (counter, otp) = card.login(c["challenge_hex"].as_str().unwrap(), VID);
    let (st, _) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(bank.audit_count("otp_check", "counter_out_of_window"), 1);
}

#[tokio::test]
async fn audit_verify_names_the_first_tampered_row() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    let (st, _) = bank.pay(&token, &mut card, "aud-1", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100, "EUR").await;
    assert_eq!(st, StatusCode::OK);
    let report = bank_server::ops::verify_audit(&bank.path).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert!(report.rows > 10);
    // Someone with the file edits the transfer's audit row.
    let c = rusqlite::Connection::open(&bank.path).unwrap();
    let id: i64 = c.query_row("SELECT id FROM audit WHERE kind = 'transfer_executed'", [], |r| r.get(0)).unwrap();
    c.execute_batch("DROP TRIGGER audit_no_update").unwrap();
    c.execute("UPDATE audit SET detail = replace(detail, '100', '1') WHERE id = ?1", [id]).unwrap();
    let report = bank_server::ops::verify_audit(&bank.path).unwrap();
    assert_eq!(report.first_bad.map(|b| b.id), Some(id));
}

#[tokio::test]
async fn a_database_dump_holds_no_usable_key() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let _ = bank.login(&mut card, "alice").await;
    // Checkpoint so everything is in the main file, then look for any chain key in the bytes.
    bank.state
        .db
        .run_blocking(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").map_err(bank_server::db::DbError::from))
        .unwrap();
    let bytes = std::fs::read(&bank.path).unwrap();
    let seed = paysim_otp::ChainKey::from_bytes(seed("alice"));
    for i in 0..4 {
        let ck = seed.advance(i);
        assert!(!bytes.windows(32).any(|w| w == ck.expose()), "ck_{i} in the database file");
    }
    // And with another master key the server refuses to start instead of failing every login.
    let other = bank_server::master_key::MasterKey::from_bytes([1; 32]);
    let cfg = bank_server::Config::new(URL).unwrap();
    let db = bank_server::db::Db::open(&bank.path).unwrap();
    let err = bank_server::AppState::with(db, other, cfg, bank_server::clock::Clock::system()).unwrap_err();
    assert!(err.to_string().contains("master key does not match"), "{err}");
}

/// Open challenges in the database, per purpose class, for one token.
fn open_challenges(bank: &TestBank, serial: &str) -> (i64, i64) {
    let c = rusqlite::Connection::open(&bank.path).unwrap();
    let q = |kind: &str| -> i64 {
        c.query_row(
            "SELECT count(*) FROM challenges WHERE kind = ?2
             AND token_id = (SELECT id FROM tokens WHERE serial = ?1)",
            [serial, kind],
            |r| r.get(0),
        )
        .unwrap()
    };
    (q("login"), q("transfer"))
}

/// Anyone who knows a user name can ask for login challenges without logging in: the rows they
/// leave are capped per token, the newest ones work, and a flood of login challenges does not
/// push out a logged-in user's transfer challenge.
#[tokio::test]
async fn challenge_rows_are_capped_per_token() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    let (st, created) = bank.create_transfer(&token, "capped", "ACC-ALICE-EUR", "ACC-BOB-EUR", 300, "EUR").await;
    assert_eq!(st, StatusCode::CREATED, "{created}");

    let mut issued = Vec::new();
    for _ in 0..150 {
        issued.push(bank.challenge("alice").await);
    }
    let (logins, transfers) = open_challenges(&bank, "PSIM-ALICE");
    assert_eq!(logins, bank_server::auth::MAX_LOGIN_CHALLENGES, "login challenges kept for one token");
    assert_eq!(transfers, 1);

    // The oldest were dropped (refused, and not counted as a failure); the newest works.
    let first = &issued[0];
    let (counter, otp) = card.login(first["challenge_hex"].as_str().unwrap(), VID);
    let (st, _) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": first["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let last = issued.last().unwrap();
    let (counter, otp) = card.login(last["challenge_hex"].as_str().unwrap(), VID);
    let (st, v) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": last["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // Retrying a pending transfer issues a challenge each time: capped too.
    for _ in 0..60 {
        let (st, _) = bank.create_transfer(&token, "capped", "ACC-ALICE-EUR", "ACC-BOB-EUR", 300, "EUR").await;
        assert_eq!(st, StatusCode::CREATED);
    }
    let (_, transfers) = open_challenges(&bank, "PSIM-ALICE");
    assert_eq!(transfers, bank_server::auth::MAX_TRANSFER_CHALLENGES, "transfer challenges kept for one token");
    // The transfer challenge is still usable after all that (the newest one).
    let (_, created) = bank.create_transfer(&token, "capped", "ACC-ALICE-EUR", "ACC-BOB-EUR", 300, "EUR").await;
    for _ in 0..100 {
        bank.challenge("alice").await;
    }
    let (counter, otp) = sign_tx(&mut card, &created);
    let (st, v) = bank.confirm(&token, "capped", &created["challenge_id"], counter, &otp).await;
    assert_eq!((st, &v["transfer"]["status"]), (StatusCode::OK, &json!("executed")), "{v}");
}

/// Expired challenges are left alone by the requests (a new challenge costs no deletions)
/// and removed by the bank's housekeeping, which finds them with a read first.
#[tokio::test]
async fn expired_challenges_are_cleaned_up_by_housekeeping() {
    let bank = TestBank::new();
    for user in ["alice", "bob", "carol"] {
        for _ in 0..5 {
            bank.challenge(user).await;
        }
    }
    bank.clock.advance(bank_server::CHALLENGE_TTL_S + 1);
    let c = rusqlite::Connection::open(&bank.path).unwrap();
    let now = bank.clock.now();
    let expired = || -> i64 {
        c.query_row("SELECT count(*) FROM challenges WHERE expires_at <= ?1", [now], |r| r.get(0)).unwrap()
    };
    assert_eq!(expired(), 15);
    bank.challenge("bob").await;
    assert_eq!(expired(), 15, "issuing a challenge deletes no expired ones");
    let batches = bank.state.writer.committed().0;
    assert_eq!(bank.state.housekeep().await.unwrap(), 15);
    assert_eq!(expired(), 0);
    assert_eq!(bank.state.writer.committed().0, batches + 1, "one unit through the writer");
    assert_eq!(bank.state.housekeep().await.unwrap(), 0);
    assert_eq!(bank.state.writer.committed().0, batches + 1, "nothing to do: nothing written");
    let n: i64 = c.query_row("SELECT count(*) FROM challenges", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1, "only the fresh challenge is left");
}

/// Someone who can write the database cannot move a sealed chain key to another token's row,
/// nor pair it with another counter: the associated data (token id, serial, counter) no
/// longer matches, the key does not open and nobody logs in with it.
#[tokio::test]
async fn a_sealed_chain_key_is_bound_to_its_row_and_counter() {
    let bank = TestBank::new();
    let alice = Card::new(seed("alice"));
    let c = rusqlite::Connection::open(&bank.path).unwrap();
    // Bob's sealed key copied into alice's row: alice's own card no longer verifies, nor bob's.
    c.execute(
        "UPDATE tokens SET (ck_nonce, ck_sealed) = (SELECT ck_nonce, ck_sealed FROM tokens WHERE serial = 'PSIM-BOB')
         WHERE serial = 'PSIM-ALICE'",
        [],
    )
    .unwrap();
    for card in [&mut alice.clone(), &mut Card::new(seed("bob"))] {
        let ch = bank.challenge("alice").await;
        let (counter, otp) = card.login(ch["challenge_hex"].as_str().unwrap(), VID);
        let (st, _) = bank
            .call(
                "POST",
                "/api/v1/login",
                None,
                Some(json!({ "challenge_id": ch["challenge_id"], "counter": counter, "otp": otp })),
            )
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "one generic refusal, not a server error");
    }
    // Carol's row with its counter moved on by 3 (her card skipped 3 codes): refused too,
    // although the counter is inside the window.
    c.execute("UPDATE tokens SET next_counter = 3 WHERE serial = 'PSIM-CAROL'", []).unwrap();
    let mut carol = Card::new(seed("carol"));
    carol.skip(3);
    let ch = bank.challenge("carol").await;
    let (counter, otp) = carol.login(ch["challenge_hex"].as_str().unwrap(), VID);
    let (st, _) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": ch["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(bank.audit_count("otp_check", "\"ok\""), 0, "no code verified with a moved key");
    // The audit log has the true reason for each of the three.
    assert_eq!(bank.audit_count("otp_check", "\"chain_key_unreadable\""), 3);
}
