//! The audit of sessions and refusals, and the abuse limits, through the in-process router
//! (every request from [`CLIENT`], by `MockConnectInfo`).

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use bank_server::audit::Event;
use bank_server::limit::{Rate, Settings};
use bank_server::ops;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::common::*;
use crate::website::web_login;

/// Every audit event, oldest first.
fn events(bank: &TestBank) -> Vec<Event> {
    let mut all = ops::recent_audit(&bank.path, 100_000).unwrap();
    all.reverse();
    all
}

fn of_kind<'a>(all: &'a [Event], kind: &str) -> Vec<&'a Event> {
    all.iter().filter(|e| e.kind == kind).collect()
}

fn detail(e: &Event) -> Value {
    serde_json::from_str(&e.detail).unwrap()
}

fn sql(bank: &TestBank) -> rusqlite::Connection {
    rusqlite::Connection::open(&bank.path).unwrap()
}

fn challenge_rows(bank: &TestBank) -> i64 {
    sql(bank).query_row("SELECT count(*) FROM challenges", [], |r| r.get(0)).unwrap()
}

fn audit_rows(bank: &TestBank) -> i64 {
    sql(bank).query_row("SELECT count(*) FROM audit", [], |r| r.get(0)).unwrap()
}

/// A JSON API call that also returns the answer's headers.
async fn call_h(bank: &TestBank, path: &str, token: Option<&str>, body: Value) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method("POST").uri(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = bank.app.clone().oneshot(req.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn tight(tune: impl FnOnce(&mut Settings)) -> TestBank {
    TestBank::with(|cfg| {
        let mut s = Settings::off();
        tune(&mut s);
        cfg.limits = s;
    })
}

#[tokio::test]
async fn session_events_are_audited_with_kind_and_client_address() {
    let bank = TestBank::with(|cfg| {
        cfg.limits = Settings::off();
        cfg.session_idle = 300;
        cfg.session_max = 600;
    });
    let mut alice = Card::new(seed("alice"));
    let mut tokens = Vec::new();

    // Logout.
    let t = bank.login(&mut alice, "alice").await;
    assert_eq!(bank.call("POST", "/api/v1/logout", Some(&t), None).await.0, StatusCode::NO_CONTENT);
    tokens.push(t);
    // Idle, found when next used.
    let t = bank.login(&mut alice, "alice").await;
    bank.clock.advance(301);
    assert_eq!(bank.call("GET", "/api/v1/session", Some(&t), None).await.0, StatusCode::UNAUTHORIZED);
    // Audited by that refused request itself, before any other session starts.
    assert_eq!(bank.audit_count("session_ended", "\"reason\":\"idle\""), 1);
    tokens.push(t);
    // Past its absolute expiry although used all along.
    let t = bank.login(&mut alice, "alice").await;
    for _ in 0..2 {
        bank.clock.advance(250);
        assert_eq!(bank.call("GET", "/api/v1/session", Some(&t), None).await.0, StatusCode::OK);
    }
    bank.clock.advance(150);
    assert_eq!(bank.call("GET", "/api/v1/session", Some(&t), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(bank.audit_count("session_ended", "\"reason\":\"max_age\""), 1);
    tokens.push(t);
    // Idle, found by the pruning of the next login (never used again).
    let t = bank.login(&mut alice, "alice").await;
    bank.clock.advance(301);
    tokens.push(t);
    let t = bank.login(&mut alice, "alice").await;
    // A website session, and its logout.
    let cookie = web_login(&bank, &mut alice, "counter-otp").await;
    let (_, _, page) = web(&bank.app, "GET", "/welcome", Some(&cookie), None).await;
    let csrf = input(&page, "csrf");
    let (st, _, _) = web(&bank.app, "POST", "/logout", Some(&cookie), Some(&[("csrf", &csrf)])).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    // A website session found idle by its next page (the refusal redirects to the login).
    let idle_cookie = web_login(&bank, &mut alice, "counter-otp").await;
    bank.clock.advance(301);
    let (st, h, _) = web(&bank.app, "GET", "/accounts", Some(&idle_cookie), None).await;
    assert_eq!((st, h[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/login?session=ended"));
    assert_eq!(bank.audit_count("session_ended", "\"kind\":\"web\",\"reason\":\"idle\""), 1);
    // (The API session of before went idle too: the next login's pruning finds it.)
    tokens.push(t);
    let t = bank.login(&mut alice, "alice").await;
    // Revoked by the operator.
    ops::revoke_token(&bank.path, "PSIM-ALICE").unwrap();
    assert_eq!(bank.call("GET", "/api/v1/session", Some(&t), None).await.0, StatusCode::UNAUTHORIZED);
    tokens.push(t);

    let all = events(&bank);
    let started = of_kind(&all, "session_started");
    let kinds: Vec<String> = started.iter().map(|e| detail(e)["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["api", "api", "api", "api", "api", "web", "web", "api"]);
    for e in &started {
        assert_eq!(e.client.as_deref(), Some(CLIENT), "{e:?}");
    }
    assert_eq!(started[0].actor, "user:alice");
    assert_eq!(started[7].actor, "user:alice");

    let ended: Vec<(String, String, Option<String>, Option<String>)> = of_kind(&all, "session_ended")
        .iter()
        .map(|e| {
            let d = detail(e);
            (
                d["reason"].as_str().unwrap().to_owned(),
                d["kind"].as_str().unwrap().to_owned(),
                d["session_client"].as_str().map(str::to_owned),
                e.client.clone(),
            )
        })
        .collect();
    let c = || Some(CLIENT.to_owned());
    assert_eq!(
        ended,
        [
            ("logout".into(), "api".into(), c(), c()),
            ("idle".into(), "api".into(), c(), c()),
            ("max_age".into(), "api".into(), c(), c()),
            ("idle".into(), "api".into(), c(), c()),
            ("logout".into(), "web".into(), c(), c()),
            ("idle".into(), "web".into(), c(), c()),
            ("idle".into(), "api".into(), c(), c()),
            // The operator's revocation comes from no client address.
            ("token_revoked".into(), "api".into(), c(), None),
        ]
    );
    // Each ended session is one that started (by its short reference), and no row holds a token.
    let refs: Vec<&str> = started.iter().map(|e| e.detail.as_str()).collect();
    for e in of_kind(&all, "session_ended") {
        let r = detail(e)["session"].as_str().unwrap().to_owned();
        assert_eq!(r.len(), 8);
        assert!(refs.iter().any(|s| s.contains(&r)), "{r}");
    }
    for e in &all {
        for t in &tokens {
            assert!(!e.detail.contains(t.as_str()), "a session token in the audit log: {e:?}");
        }
        assert!(!e.detail.contains(&cookie), "a session cookie in the audit log: {e:?}");
    }
    assert!(ops::verify_audit(&bank.path).unwrap().is_intact());
}

/// Unknown payee and payee in another currency: the same status and body, each audited with
/// its true reason; nothing stored but the audit row.
#[tokio::test]
async fn an_account_probe_cannot_tell_no_account_from_another_currency() {
    let bank = TestBank::new();
    let mut alice = Card::new(seed("alice"));
    let token = bank.login(&mut alice, "alice").await;
    let before = bank.balances();
    let mut answers = Vec::new();
    for (id, to) in [("probe-1", "ACC-NOBODY"), ("probe-2", "ACC-BOB-USD"), ("probe-3", "ACC-ALICE-USD")] {
        // ACC-BOB-USD does not exist; ACC-ALICE-USD does, in USD; and Bob's EUR account is
        // probed from alice's USD account below.
        let rows = audit_rows(&bank);
        answers.push(bank.create_transfer(&token, id, "ACC-ALICE-EUR", to, 1, "EUR").await);
        assert_eq!(audit_rows(&bank), rows + 1, "one audit row per refusal, no more");
    }
    answers.push(bank.create_transfer(&token, "probe-4", "ACC-ALICE-USD", "ACC-BOB-EUR", 1, "USD").await);
    let (st, body) = &answers[0];
    assert_eq!(*st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "payee_not_accepted", "{body}");
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a, &answers[0], "probe {i} is told apart");
    }
    let all = events(&bank);
    let reasons: Vec<(String, String)> = of_kind(&all, "transfer_refused")
        .iter()
        .map(|e| {
            let d = detail(e);
            (d["transfer"]["transfer_id"].as_str().unwrap().to_owned(), d["reason"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("probe-1".into(), "unknown_payee".into()),
            ("probe-2".into(), "unknown_payee".into()),
            ("probe-3".into(), "payee_currency_differs".into()),
            ("probe-4".into(), "payee_currency_differs".into()),
        ]
    );
    for e in of_kind(&all, "transfer_refused") {
        assert_eq!((e.actor.as_str(), e.client.as_deref()), ("user:alice", Some(CLIENT)));
    }
    // Nothing recorded as a transfer, nothing moved.
    let (_, history) = bank.call("GET", "/api/v1/transfers", Some(&token), None).await;
    assert_eq!(history["transfers"], json!([]));
    assert_eq!(bank.balances(), before);
    // The website says the same for both.
    let cookie = web_login(&bank, &mut alice, "counter-otp").await;
    let mut pages = Vec::new();
    for to in ["ACC-NOBODY", "ACC-BOB-EUR"] {
        let (_, _, form) = web(&bank.app, "GET", "/transfer", Some(&cookie), None).await;
        let (csrf, tid) = (input(&form, "csrf"), input(&form, "transfer_id"));
        let f = [
            ("csrf", csrf.as_str()),
            ("transfer_id", &tid),
            ("from", "ACC-ALICE-USD"),
            ("to", to),
            ("amount", "1"),
            ("payee_name", "Bob Example"),
        ];
        let (st, _, page) = web(&bank.app, "POST", "/transfer", Some(&cookie), Some(&f)).await;
        // The form comes back with what was typed and a fresh transfer id: apart from those,
        // the two pages are the same.
        let fresh = input(&page, "transfer_id");
        pages.push((st, page.replace(&fresh, "TID").replace(to, "TO")));
    }
    assert_eq!(pages[0].0, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(pages[0].1.contains("There is no account TO that takes USD. Check the account number."), "{}", pages[0].1);
    assert_eq!(pages[0], pages[1]);
    // Both refusals of the website are in the audit log too, with their reasons.
    assert_eq!(bank.audit_count("transfer_refused", "\"reason\":\"unknown_payee\""), 3);
    assert_eq!(bank.audit_count("transfer_refused", "\"reason\":\"payee_currency_differs\""), 3);
}

/// Any refusal at creation is audited with its reason; the customer's code is the documented one.
#[tokio::test]
async fn each_refused_transfer_creation_is_audited_with_its_true_reason() {
    let bank = TestBank::new();
    let mut alice = Card::new(seed("alice"));
    let token = bank.login(&mut alice, "alice").await;
    for (id, from, to, amount, cur, code, reason) in [
        ("r1", "ACC-BOB-EUR", "ACC-ALICE-EUR", 1, "EUR", "unknown_account", "unknown_source"),
        ("r2", "ACC-ALICE-EUR", "ACC-ALICE-EUR", 1, "EUR", "same_account", "same_account"),
        ("r3", "ACC-ALICE-EUR", "ACC-BOB-EUR", 1, "USD", "currency_mismatch", "source_currency_differs"),
        ("r4", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100_001, "EUR", "insufficient_funds", "insufficient_funds"),
        ("r5", "ACC-ALICE-EUR", "ACC-BOB-EUR", 0, "EUR", "invalid_amount", "invalid_amount"),
        ("r6", "ACC-ALICE-EUR", "ACC-BOB-EUR", 1, "XAU", "unsupported_currency", "unsupported_currency"),
    ] {
        let (_, v) = bank.create_transfer(&token, id, from, to, amount, cur).await;
        assert_eq!(v["error"], code, "{id}: {v}");
        assert_eq!(bank.audit_count("transfer_refused", &format!("\"reason\":\"{reason}\"")), 1, "{id}");
    }
}

#[tokio::test]
async fn a_burst_of_login_challenges_gets_429_with_retry_after_and_stores_nothing_more() {
    let bank = tight(|s| s.challenges_per_user = Some(Rate::new(3, 60)));
    let before = bank.balances();
    let audit_before = audit_rows(&bank);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let (st, h, v) = call_h(&bank, "/api/v1/login/challenge", None, json!({ "user": "alice" })).await;
        if st == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(v["error"], "rate_limited", "{v}");
            assert_eq!(h[header::RETRY_AFTER], "20");
        }
        statuses.push(st.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429, 429, 429, 429, 429]);
    // Three challenges stored; the refusals wrote one audit row between them, and moved nothing.
    assert_eq!(challenge_rows(&bank), 3);
    assert_eq!(audit_rows(&bank), audit_before + 3 + 1);
    let all = events(&bank);
    let limited = of_kind(&all, "rate_limited");
    assert_eq!(limited.len(), 1);
    assert_eq!(detail(limited[0])["limit"], "challenges_per_user");
    assert_eq!(detail(limited[0])["key"], "alice");
    assert_eq!(limited[0].client.as_deref(), Some(CLIENT));
    assert_eq!(bank.balances(), before);
    // Another name is not held back by alice's bucket.
    assert_eq!(call_h(&bank, "/api/v1/login/challenge", None, json!({ "user": "bob" })).await.0, StatusCode::OK);
    // 20 seconds later one more passes, then the next burst is audited once again.
    bank.clock.advance(20);
    assert_eq!(call_h(&bank, "/api/v1/login/challenge", None, json!({ "user": "alice" })).await.0, StatusCode::OK);
    for _ in 0..3 {
        let st = call_h(&bank, "/api/v1/login/challenge", None, json!({ "user": "alice" })).await.0;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(bank.audit_count("rate_limited", "challenges_per_user"), 2);
    assert_eq!(challenge_rows(&bank), 5);

    // The website's login form counts against the same bucket, and says when to come back.
    let (_, h, html) = web(&bank.app, "GET", "/login", None, None).await;
    let anon = set_cookie(&h).unwrap();
    let csrf = input(&html, "csrf");
    let (st, h, page) =
        web(&bank.app, "POST", "/login", Some(&anon), Some(&[("csrf", &csrf), ("user", "alice")])).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(h[header::RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(challenge_rows(&bank), 5);
}

#[tokio::test]
async fn login_challenges_are_limited_per_client_address_whatever_the_name() {
    let bank = tight(|s| s.challenges_per_address = Some(Rate::new(4, 60)));
    let mut statuses = Vec::new();
    // Names with and without accounts alike: a scan of names is held back by its address.
    for user in ["alice", "bob", "nobody1", "nobody2", "carol", "nobody3"] {
        statuses.push(call_h(&bank, "/api/v1/login/challenge", None, json!({ "user": user })).await.0.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    assert_eq!(challenge_rows(&bank), 2, "alice's and bob's; carol's was refused");
    assert_eq!(bank.audit_count("rate_limited", "203.0.113.7"), 1);
}

#[tokio::test]
async fn code_submissions_per_session_are_limited() {
    let bank = tight(|s| s.codes_per_session = Some(Rate::new(2, 60)));
    let mut alice = Card::new(seed("alice"));
    let token = bank.login(&mut alice, "alice").await;
    let (st, created) = bank.create_transfer(&token, "t1", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100, "EUR").await;
    assert_eq!(st, StatusCode::CREATED);
    let wrong = |c: &Value| c["challenge_id"].clone();
    assert_eq!(bank.confirm(&token, "t1", &wrong(&created), 1, "00000000").await.0, StatusCode::UNAUTHORIZED);
    // Each refused code ended its transfer: the next attempt is a new transfer.
    let (_, created) = bank.create_transfer(&token, "t2", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100, "EUR").await;
    assert_eq!(bank.confirm(&token, "t2", &wrong(&created), 1, "00000000").await.0, StatusCode::UNAUTHORIZED);
    // The third code in a minute is refused before it is looked at, even a right one.
    let (_, created) = bank.create_transfer(&token, "t3", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100, "EUR").await;
    let (counter, otp) = sign_tx(&mut alice, &created);
    let (st, h, v) = call_h(
        &bank,
        "/api/v1/transfers/t3/confirm",
        Some(&token),
        json!({ "challenge_id": created["challenge_id"], "counter": counter, "otp": otp }),
    )
    .await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited")));
    assert_eq!(h[header::RETRY_AFTER], "30");
    let bob = |bank: &TestBank| bank.balances().into_iter().find(|(n, _)| n == "ACC-BOB-EUR").unwrap().1;
    assert_eq!(bob(&bank), 0);
    // The challenge was not spent: half a minute later the same code goes through.
    bank.clock.advance(30);
    let (st, v) = bank.confirm(&token, "t3", &created["challenge_id"], counter, &otp).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(bob(&bank), 100);
    assert_eq!(bank.audit_count("rate_limited", "codes_per_session"), 1);
}

#[tokio::test]
async fn open_pending_transfers_are_capped() {
    let bank = TestBank::with(|cfg| {
        cfg.limits = Settings::off();
        cfg.max_pending_transfers = 2;
        cfg.pending_open_s = 600;
    });
    let mut alice = Card::new(seed("alice"));
    let token = bank.login(&mut alice, "alice").await;
    let ask = |id: &'static str| bank.create_transfer(&token, id, "ACC-ALICE-EUR", "ACC-BOB-EUR", 10, "EUR");
    assert_eq!(ask("p1").await.0, StatusCode::CREATED);
    assert_eq!(ask("p2").await.0, StatusCode::CREATED);
    let (st, v) = ask("p3").await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("too_many_pending_transfers")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("2 transfers are already waiting"), "{v}");
    assert_eq!(bank.audit_count("transfer_refused", "too_many_pending"), 1);
    // Asking again for one already pending is no new transfer: its challenge comes back.
    let (st, p1) = ask("p1").await;
    assert_eq!(st, StatusCode::CREATED);
    // Confirming one frees its place.
    let (counter, otp) = sign_tx(&mut alice, &p1);
    assert_eq!(bank.confirm(&token, "p1", &p1["challenge_id"], counter, &otp).await.0, StatusCode::OK);
    assert_eq!(ask("p3").await.0, StatusCode::CREATED);
    assert_eq!(ask("p4").await.0, StatusCode::CONFLICT);
    // Pending transfers older than `pending_open_s` no longer count.
    bank.clock.advance(601);
    let token = bank.login(&mut alice, "alice").await;
    assert_eq!(
        bank.create_transfer(&token, "p4", "ACC-ALICE-EUR", "ACC-BOB-EUR", 10, "EUR").await.0,
        StatusCode::CREATED
    );
}

/// The website's login code form counts per visitor session, and answers a page with
/// `Retry-After`.
#[tokio::test]
async fn website_login_codes_are_limited_per_session() {
    let bank = tight(|s| s.codes_per_session = Some(Rate::new(1, 60)));
    let (_, h, html) = web(&bank.app, "GET", "/login", None, None).await;
    let anon = set_cookie(&h).unwrap();
    let csrf = input(&html, "csrf");
    let (_, _, page) = web(&bank.app, "POST", "/login", Some(&anon), Some(&[("csrf", &csrf), ("user", "alice")])).await;
    let challenge_id = input(&page, "challenge_id");
    let code = [("csrf", csrf.as_str()), ("challenge_id", challenge_id.as_str()), ("code", "0-00000000")];
    let (st, _, _) = web(&bank.app, "POST", "/login/code", Some(&anon), Some(&code)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let checks = bank.audit_count("otp_check", "login");
    let (st, h, page) = web(&bank.app, "POST", "/login/code", Some(&anon), Some(&code)).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert_eq!(h[header::RETRY_AFTER], "60");
    assert!(page.contains("too many requests"), "{page}");
    // Refused before the code check: no otp_check row, no failure counted.
    assert_eq!(bank.audit_count("otp_check", "login"), checks);
}

/// API login codes come before any session: they are counted per client address, in a bucket
/// of their own (at the per-address challenge rate).
#[tokio::test]
async fn api_login_codes_are_limited_per_client_address() {
    let bank = tight(|s| s.challenges_per_address = Some(Rate::new(3, 60)));
    let code = json!({ "challenge_id": "0".repeat(32), "counter": 1, "otp": "12345678" });
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(call_h(&bank, "/api/v1/login", None, code.clone()).await.0.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    assert_eq!(bank.audit_count("rate_limited", "login_codes_per_address"), 1);
    // The challenge bucket of the same address is its own.
    assert_eq!(call_h(&bank, "/api/v1/login/challenge", None, json!({ "user": "alice" })).await.0, StatusCode::OK);
}
