//! Throughput of the bank, each figure as a ratio to a ceiling measured in the same run:
//!
//! - OTP checks per second (unseal the chain key, compute and compare the code, seal the next
//!   key: the crypto of one verification) against raw HMAC-SHA256 per second;
//! - durable logins and durable transfers per second through the router (JSON in, JSON out,
//!   every commit fsynced: `synchronous=FULL`) against raw `write + fdatasync` per second of
//!   the disk holding the database.
//!
//! Run: `cargo bench -p bank-server` (set `BENCH_DIR` to measure another disk).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bank_server::clock::Clock;
use bank_server::master_key::MasterKey;
use bank_server::{ops, AppState};
use http_body_util::BodyExt;
use paysim_otp::{self as otp, ChainKey, TxFields};
use serde_json::{json, Value};
use tower::ServiceExt;

#[path = "../tests/support/card.rs"]
mod card;
use card::Card;

const URL: &str = "http://bank.bench:8080";
const RUN: Duration = Duration::from_secs(2);

/// Calls `f` until `RUN` has passed; returns calls per second.
fn rate(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn hmac_ceiling() -> f64 {
    let mut key = [7u8; 32];
    rate(|| {
        key = otp::hmac_sha256(&key, b"PAYSIM-1 CHAIN");
    })
}

fn fsync_ceiling(dir: &Path) -> f64 {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).unwrap();
    let page = [0x5au8; 4096];
    let r = rate(|| {
        f.write_all(&page).unwrap();
        f.sync_data().unwrap();
    });
    std::fs::remove_file(path).unwrap();
    r
}

/// The crypto of one server-side verification, without SQL: unseal `ck`, compute and compare
/// the code, seal `ck_{c+1}`. The card's codes are computed before the clock starts.
fn otp_checks() -> f64 {
    const N: usize = 40_000;
    let key = MasterKey::from_bytes([3; 32]);
    let ad = b"token 1";
    let challenge = hex::encode([0x42u8; 32]);
    let mut client = Card::new([9; 32]);
    let codes: Vec<String> = (0..N).map(|_| client.login(&challenge, URL).1).collect();
    let challenge = [0x42u8; 32];
    let mut sealed = key.seal(ad, &[9; 32]).unwrap();
    let start = Instant::now();
    for (counter, code) in codes.iter().enumerate() {
        let plain = key.open(ad, &sealed).unwrap();
        let ck = ChainKey::from_bytes(plain.as_slice().try_into().unwrap());
        let expected = otp::login_otp(&ck, counter as u64, &challenge, URL.as_bytes());
        assert!(expected.matches(code));
        sealed = key.seal(ad, ck.next().expose()).unwrap();
    }
    N as f64 / start.elapsed().as_secs_f64()
}

async fn call(app: &axum::Router, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut req = Request::builder().method("POST").uri(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app.clone().oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let st = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (st, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn login(app: &axum::Router, card: &mut Card) -> String {
    let (_, c) = call(app, "/api/v1/login/challenge", None, json!({ "user": "alice" })).await;
    let (counter, otp) = card.login(c["challenge_hex"].as_str().unwrap(), URL);
    let (st, v) =
        call(app, "/api/v1/login", None, json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp }))
            .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

async fn transfer(app: &axum::Router, token: &str, card: &mut Card, id: &str) {
    let body = json!({ "transfer_id": id, "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR", "amount_minor": 1, "currency": "EUR", "payee_name": "bob" });
    let (st, c) = call(app, "/api/v1/transfers", Some(token), body).await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    let fields = TxFields {
        version: paysim_otp::TxVersion::V2,
        verifier_id: URL.as_bytes(),
        transaction_id: id.as_bytes(),
        amount_minor: 1,
        currency: b"EUR",
        source: b"ACC-ALICE-EUR",
        payee: b"ACC-BOB-EUR",
        payee_name: b"bob",
    };
    let (counter, otp) = card.tx(c["challenge_hex"].as_str().unwrap(), &fields);
    let body = json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp });
    let (st, v) = call(app, &format!("/api/v1/transfers/{id}/confirm"), Some(token), body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

fn main() {
    let base = std::env::var_os("BENCH_DIR").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).unwrap();
    let db = dir.path().join("bench.sqlite3");
    for user in ["alice", "bob"] {
        ops::add_user(&db, user).unwrap();
        ops::open_account(&db, user, &format!("ACC-{}-EUR", user.to_uppercase()), "EUR", Some(user)).unwrap();
    }
    ops::enroll_token(&db, "PSIM-BENCH", &ChainKey::from_bytes([1; 32]), 0, "alice").unwrap();
    ops::fund(&db, "ACC-ALICE-EUR", 1_000_000_000, "bench").unwrap();
    let state = AppState::open(&db, URL, Clock::system()).unwrap();
    let app = bank_server::app(state);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let hmac = hmac_ceiling();
    let checks = otp_checks();
    let fsync = fsync_ceiling(dir.path());
    let mut card = Card::new([1; 32]);
    let (logins, transfers) = rt.block_on(async {
        let mut logins = 0u64;
        let start = Instant::now();
        while start.elapsed() < RUN {
            login(&app, &mut card).await;
            logins += 1;
        }
        let logins = logins as f64 / start.elapsed().as_secs_f64();
        let token = login(&app, &mut card).await;
        let mut n = 0u64;
        let start = Instant::now();
        while start.elapsed() < RUN {
            transfer(&app, &token, &mut card, &format!("bench-{n}")).await;
            n += 1;
        }
        (logins, n as f64 / start.elapsed().as_secs_f64())
    });
    let books = ops::check_books(&db).unwrap();
    assert!(books.problems.is_empty(), "{:?}", books.problems);

    println!("bank-server throughput (database in {})", base.display());
    println!("  ceiling: raw HMAC-SHA256           {hmac:>12.0} /s");
    println!("  ceiling: raw 4 KiB write+fdatasync {fsync:>12.0} /s");
    println!("  OTP checks (crypto of one verify)  {checks:>12.0} /s  = {:.3} x HMAC", checks / hmac);
    println!("  durable logins (2 commits each)    {logins:>12.1} /s  = {:.3} x fsync", logins / fsync);
    println!("  durable transfers (2 commits each) {transfers:>12.1} /s  = {:.3} x fsync", transfers / fsync);
}
