//! The JSON API, flow by flow and error by error (docs/api.md).

use axum::http::StatusCode;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn login_browse_transfer_logout() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));

    let c = bank.challenge("alice").await;
    assert_eq!(c["verifier_id"], VID);
    assert_eq!(c["challenge_hex"].as_str().unwrap().len(), 64);
    assert_eq!(c["challenge_id"].as_str().unwrap().len(), 32);
    assert_eq!(c["expires_at"], T0 + 120);
    let (counter, otp) = card.login(c["challenge_hex"].as_str().unwrap(), VID);
    let (st, v) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["user"], "alice");
    assert_eq!(v["expires_at"], T0 + 12 * 3600);
    assert_eq!(v["idle_timeout_s"], 300);
    let token = v["token"].as_str().unwrap().to_owned();

    let (st, s) = bank.call("GET", "/api/v1/session", Some(&token), None).await;
    assert_eq!((st, s["user"].as_str()), (StatusCode::OK, Some("alice")));

    let (st, v) = bank.call("GET", "/api/v1/accounts", Some(&token), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v["accounts"],
        json!([
            { "number": "ACC-ALICE-EUR", "currency": "EUR", "exponent": 2, "balance_minor": 100000 },
            { "number": "ACC-ALICE-USD", "currency": "USD", "exponent": 2, "balance_minor": 5000 },
        ])
    );

    let (st, created) = bank.create_transfer(&token, "t-1", "ACC-ALICE-EUR", "ACC-BOB-EUR", 1234, "EUR").await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["sign"],
        json!({ "verifier_id": VID, "transaction_id": "t-1", "amount_minor": 1234, "currency": "EUR",
                "source": "ACC-ALICE-EUR", "payee": "ACC-BOB-EUR", "payee_name": "Bob Example" })
    );
    assert_eq!(created["payee_check"], json!({ "result": "match" }));
    assert_eq!(created["transfer"]["payee_name"], "Bob Example");
    assert_eq!(created["transfer"]["status"], "pending");
    // Pending: no money moved yet.
    assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, 100_000);

    let (counter, otp) = sign_tx(&mut card, &created);
    let (st, done) = bank.confirm(&token, "t-1", &created["challenge_id"], counter, &otp).await;
    assert_eq!(st, StatusCode::OK, "{done}");
    assert_eq!(done["transfer"]["status"], "executed");
    assert_eq!(done["transfer"]["amount_minor"], 1234);
    assert_eq!(done["transfer"]["executed_at"], T0);
    assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, 100_000 - 1234);

    let (st, one) = bank.call("GET", "/api/v1/transfers/t-1", Some(&token), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one, done["transfer"]);

    let (st, h) = bank.call("GET", "/api/v1/transfers", Some(&token), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h["transfers"].as_array().unwrap().len(), 1);
    assert_eq!(h["transfers"][0]["direction"], "out");

    // Bob sees it as incoming.
    let mut bob = Card::new(seed("bob"));
    let bt = bank.login(&mut bob, "bob").await;
    let (_, h) = bank.call("GET", "/api/v1/transfers", Some(&bt), None).await;
    assert_eq!(h["transfers"][0]["direction"], "in");
    assert_eq!(bank.balance(&bt, "ACC-BOB-EUR").await, 1234);
    // Bob cannot read alice's transfer by id.
    let (st, v) = bank.call("GET", "/api/v1/transfers/t-1", Some(&bt), None).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    let (st, _) = bank.call("POST", "/api/v1/logout", Some(&token), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = bank.call("GET", "/api/v1/accounts", Some(&token), None).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));
    assert!(bank.state.db.path().exists());
    assert!(bank.balances().contains(&("ACC-BOB-EUR".into(), 1234)));
}

#[tokio::test]
async fn login_failures_are_one_generic_error() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    // Unknown user: a challenge anyway, which can never succeed.
    let c = bank.challenge("nobody").await;
    let (counter, otp) = card.clone().login(c["challenge_hex"].as_str().unwrap(), VID);
    let (st, v) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("auth_failed")));
    let generic = v["message"].clone();

    // Wrong code, expired challenge, wrong verifier id: the same answer each time.
    let c = bank.challenge("alice").await;
    let (counter, _) = card.clone().login(c["challenge_hex"].as_str().unwrap(), VID);
    let (st, v) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": "00000000" })),
        )
        .await;
    assert_eq!((st, &v["error"], &v["message"]), (StatusCode::UNAUTHORIZED, &json!("auth_failed"), &generic));

    let c = bank.challenge("alice").await;
    let (counter, otp) = card.clone().login(c["challenge_hex"].as_str().unwrap(), "http://evil.test:8080");
    let (st, v) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!((st, &v["message"]), (StatusCode::UNAUTHORIZED, &generic));

    let c = bank.challenge("alice").await;
    bank.clock.advance(120);
    let (counter, otp) = card.clone().login(c["challenge_hex"].as_str().unwrap(), VID);
    let (st, v) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp })),
        )
        .await;
    assert_eq!((st, &v["message"]), (StatusCode::UNAUTHORIZED, &generic));

    // The audit log has the true reasons.
    assert_eq!(bank.audit_count("challenge_refused", "no_active_token_or_unknown_user"), 1);
    assert_eq!(bank.audit_count("otp_check", "\"unknown_challenge\""), 1);
    assert_eq!(bank.audit_count("otp_check", "\"otp_mismatch\""), 2);
    assert_eq!(bank.audit_count("otp_check", "\"challenge_expired\""), 1);

    // The card that was never used still logs in (counter 0: nothing consumed it).
    let token = bank.login(&mut card, "alice").await;
    assert_eq!(token.len(), 48);
}

#[tokio::test]
async fn every_error_code() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    let t = Some(token.as_str());
    let code = |v: &serde_json::Value| v["error"].as_str().unwrap_or("").to_owned();

    // invalid_request: body and field shapes, each naming the field.
    let (st, v) = bank.call("POST", "/api/v1/login/challenge", None, Some(json!("x"))).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request".into()));
    let (st, v) = bank.call("POST", "/api/v1/login/challenge", None, Some(json!({}))).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request".into()));
    assert!(v["message"].as_str().unwrap().contains("`user`"));
    let (st, v) = bank.call("POST", "/api/v1/login/challenge", None, Some(json!({ "user": "Not Valid" }))).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request".into()));
    let (st, v) =
        bank.call("POST", "/api/v1/login", None, Some(json!({ "challenge_id": "zz", "counter": 1, "otp": "1" }))).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request".into()));
    assert!(v["message"].as_str().unwrap().contains("challenge_id"));
    let (st, v) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": "0".repeat(32), "counter": -1, "otp": "12345678" })),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request".into()));
    assert!(v["message"].as_str().unwrap().contains("counter"));
    // An OTP of the wrong type is refused without echoing it.
    let (st, v) = bank
        .call(
            "POST",
            "/api/v1/login",
            None,
            Some(json!({ "challenge_id": "0".repeat(32), "counter": 1, "otp": 98765432 })),
        )
        .await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request".into()));
    assert!(!v.to_string().contains("98765432"));
    let (st, v) = bank.create_transfer(&token, "bad/id", "ACC-ALICE-EUR", "ACC-BOB-EUR", 1, "EUR").await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request".into()));
    let (st, v) = bank.create_transfer(&token, "t", "ACC-ALICE-EUR", "ACC-BOB-EUR", 1, "eur").await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request".into()));
    let (st, v) = bank.call("GET", "/api/v1/transfers?limit=0", t, None).await;
    assert_eq!((st, code(&v)), (StatusCode::BAD_REQUEST, "invalid_request".into()));

    // unauthenticated
    for (m, p) in [
        ("GET", "/api/v1/accounts"),
        ("GET", "/api/v1/transfers"),
        ("POST", "/api/v1/logout"),
        ("GET", "/api/v1/session"),
    ] {
        let (st, v) = bank.call(m, p, None, None).await;
        assert_eq!((st, code(&v)), (StatusCode::UNAUTHORIZED, "unauthenticated".into()), "{p}");
        let (st, _) = bank.call(m, p, Some(&"0".repeat(32)), None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{p}");
    }

    // not_found and method_not_allowed
    let (st, v) = bank.call("GET", "/api/v1/nothing", t, None).await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found".into()));
    let (st, v) = bank.call("GET", "/api/v1/transfers/never", t, None).await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found".into()));
    let (st, v) = bank.confirm(&token, "never", &json!("0".repeat(32)), 1, "12345678").await;
    assert_eq!((st, code(&v)), (StatusCode::NOT_FOUND, "not_found".into()));
    let (st, v) = bank.call("DELETE", "/api/v1/accounts", t, None).await;
    assert_eq!((st, code(&v)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into()));

    // The ledger's refusals.
    let cases = [
        ("ACC-BOB-EUR", "ACC-ALICE-EUR", 1, "EUR", StatusCode::UNPROCESSABLE_ENTITY, "unknown_account"),
        ("ACC-ALICE-EUR", "ACC-NOBODY", 1, "EUR", StatusCode::UNPROCESSABLE_ENTITY, "payee_not_accepted"),
        ("ACC-ALICE-EUR", "FUNDING-EUR", 1, "EUR", StatusCode::UNPROCESSABLE_ENTITY, "payee_not_accepted"),
        ("ACC-ALICE-EUR", "ACC-ALICE-EUR", 1, "EUR", StatusCode::UNPROCESSABLE_ENTITY, "same_account"),
        ("ACC-ALICE-USD", "ACC-BOB-EUR", 1, "USD", StatusCode::UNPROCESSABLE_ENTITY, "payee_not_accepted"),
        ("ACC-ALICE-EUR", "ACC-BOB-EUR", 1, "USD", StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch"),
        ("ACC-ALICE-EUR", "ACC-BOB-EUR", 1, "XAU", StatusCode::UNPROCESSABLE_ENTITY, "unsupported_currency"),
        ("ACC-ALICE-EUR", "ACC-BOB-EUR", 1, "XYZ", StatusCode::UNPROCESSABLE_ENTITY, "unsupported_currency"),
        ("ACC-ALICE-EUR", "ACC-BOB-EUR", 0, "EUR", StatusCode::UNPROCESSABLE_ENTITY, "invalid_amount"),
        (
            "ACC-ALICE-EUR",
            "ACC-BOB-EUR",
            1_000_000_000_000_001,
            "EUR",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
        ),
        ("ACC-ALICE-EUR", "ACC-BOB-EUR", 100_001, "EUR", StatusCode::CONFLICT, "insufficient_funds"),
    ];
    for (i, (from, to, amount, cur, want_st, want)) in cases.into_iter().enumerate() {
        let (st, v) = bank.create_transfer(&token, &format!("e-{i}"), from, to, amount, cur).await;
        assert_eq!((st, code(&v)), (want_st, want.to_owned()), "case {i}: {v}");
    }

    // transfer_id_conflict
    let (st, _) = bank.create_transfer(&token, "same", "ACC-ALICE-EUR", "ACC-BOB-EUR", 10, "EUR").await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = bank.create_transfer(&token, "same", "ACC-ALICE-EUR", "ACC-BOB-EUR", 11, "EUR").await;
    assert_eq!((st, code(&v)), (StatusCode::CONFLICT, "transfer_id_conflict".into()));

    // Nothing of this moved money.
    let b = bank.balances();
    assert!(b.contains(&("ACC-ALICE-EUR".into(), 100_000)) && b.contains(&("ACC-BOB-EUR".into(), 0)), "{b:?}");
}

#[tokio::test]
async fn insufficient_funds_at_confirmation_is_final() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    // Two pending transfers that together exceed the balance.
    let (_, a) = bank.create_transfer(&token, "a", "ACC-ALICE-EUR", "ACC-BOB-EUR", 70_000, "EUR").await;
    let (_, b) = bank.create_transfer(&token, "b", "ACC-ALICE-EUR", "ACC-BOB-EUR", 40_000, "EUR").await;
    let (c, o) = sign_tx(&mut card, &a);
    let (st, _) = bank.confirm(&token, "a", &a["challenge_id"], c, &o).await;
    assert_eq!(st, StatusCode::OK);
    let (c, o) = sign_tx(&mut card, &b);
    let (st, v) = bank.confirm(&token, "b", &b["challenge_id"], c, &o).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("insufficient_funds")), "{v}");
    assert_eq!(v["transfer"]["status"], "rejected");
    assert_eq!(v["transfer"]["reason"], "insufficient_funds");
    // A retry says the same; nothing moves.
    let (st, v) = bank.create_transfer(&token, "b", "ACC-ALICE-EUR", "ACC-BOB-EUR", 40_000, "EUR").await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::CONFLICT, Some("insufficient_funds")));
    assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, 30_000);
}

#[tokio::test]
async fn sessions_end_when_idle_or_old() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    bank.clock.advance(299);
    let (st, _) = bank.call("GET", "/api/v1/accounts", Some(&token), None).await;
    assert_eq!(st, StatusCode::OK);
    bank.clock.advance(300);
    let (st, v) = bank.call("GET", "/api/v1/accounts", Some(&token), None).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));

    // Absolute: active every 4 minutes, still over after 12 hours.
    let token = bank.login(&mut card, "alice").await;
    let mut elapsed = 0;
    while elapsed + 240 < 12 * 3600 {
        bank.clock.advance(240);
        elapsed += 240;
        let (st, _) = bank.call("GET", "/api/v1/session", Some(&token), None).await;
        assert_eq!(st, StatusCode::OK, "after {elapsed} s");
    }
    bank.clock.advance(12 * 3600 - elapsed);
    let (st, _) = bank.call("GET", "/api/v1/session", Some(&token), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_transfer_challenge_is_bound_to_its_transfer_and_session() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    let other = bank.login(&mut card, "alice").await;
    let (_, a) = bank.create_transfer(&token, "a", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100, "EUR").await;
    let (_, b) = bank.create_transfer(&token, "b", "ACC-ALICE-EUR", "ACC-BOB-EUR", 100, "EUR").await;
    // A code for "a" does not confirm "b", even with a's challenge.
    let (c, o) = sign_tx(&mut card.clone(), &a);
    let (st, _) = bank.confirm(&token, "b", &a["challenge_id"], c, &o).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // Another session of the same user cannot use this session's challenge.
    let (st, _) = bank.confirm(&other, "a", &a["challenge_id"], c, &o).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // A login challenge does not confirm a transfer.
    let lc = bank.challenge("alice").await;
    let (c2, o2) = card.clone().login(lc["challenge_hex"].as_str().unwrap(), VID);
    let (st, _) = bank.confirm(&token, "a", &lc["challenge_id"], c2, &o2).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // The mismatches did not use the challenges up: the right ones still work.
    let (c, o) = sign_tx(&mut card, &a);
    let (st, _) = bank.confirm(&token, "a", &a["challenge_id"], c, &o).await;
    assert_eq!(st, StatusCode::OK);
    let (c, o) = sign_tx(&mut card, &b);
    let (st, _) = bank.confirm(&token, "b", &b["challenge_id"], c, &o).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bank.balance(&token, "ACC-ALICE-EUR").await, 100_000 - 200);
}

/// Junk bodies never reach a 5xx: every endpoint answers a clear 4xx.
#[tokio::test]
async fn junk_bodies_get_4xx_never_5xx() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    let bodies = [
        json!(null),
        json!([]),
        json!({ "user": 5 }),
        json!({ "user": "a".repeat(33) }),
        json!({ "challenge_id": "A".repeat(32), "counter": 1, "otp": "12345678" }),
        json!({ "challenge_id": "0".repeat(32), "counter": 1.5, "otp": "1" }),
        json!({ "challenge_id": "0".repeat(32), "counter": u64::MAX, "otp": "12345678" }),
        json!({ "challenge_id": "0".repeat(32), "counter": 0, "otp": "x".repeat(17) }),
        json!({ "transfer_id": "", "from": "A", "to": "B", "amount_minor": 1, "currency": "EUR" }),
        json!({ "transfer_id": "x", "from": "", "to": "B", "amount_minor": 1, "currency": "EUR" }),
        json!({ "transfer_id": "x", "from": "A", "to": "B", "amount_minor": -1, "currency": "EUR" }),
        json!({ "transfer_id": "x", "from": "A", "to": "B", "amount_minor": 1, "currency": "EURO" }),
        json!({ "transfer_id": "x", "from": "A".repeat(65), "to": "B", "amount_minor": 1, "currency": "EUR" }),
    ];
    let paths = [
        "/api/v1/login/challenge",
        "/api/v1/login",
        "/api/v1/transfers",
        "/api/v1/transfers/x/confirm",
        "/api/v1/logout",
    ];
    for path in paths {
        for body in &bodies {
            let (st, v) = bank.call("POST", path, Some(&token), Some(body.clone())).await;
            assert!(st.is_client_error() || st.is_success(), "{path} {body}: {st} {v}");
            if st.is_client_error() {
                assert!(v["error"].is_string(), "{path} {body}: {v}");
            }
        }
    }
    // Not JSON at all.
    let req = axum::http::Request::post("/api/v1/login").body(axum::body::Body::from("\u{0}\u{ff}garbage")).unwrap();
    let res = tower::ServiceExt::oneshot(bank.app.clone(), req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

/// Input the extractors refuse (a body over the limit, a path or query that is not UTF-8, a
/// form with missing fields or the wrong type) still gets a clear 4xx in the API's JSON error
/// shape, or the website's error page: never axum's bare text, never a 5xx.
#[tokio::test]
async fn refused_input_gets_the_documented_error_shape() {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let token = bank.login(&mut card, "alice").await;
    let huge = format!("{{\"user\":\"{}\"}}", "a".repeat(200 * 1024));
    let api = [
        Request::post("/api/v1/login/challenge")
            .header("content-type", "application/json")
            .body(Body::from(huge.clone())),
        Request::post("/api/v1/transfers")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(huge.clone())),
        Request::get("/api/v1/transfers/%FF%FE").header("authorization", format!("Bearer {token}")).body(Body::empty()),
        Request::get("/api/v1/transfers?limit=%FF")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty()),
        Request::get("/api/v1/transfers?limit=1&limit=2")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty()),
    ];
    for req in api {
        let req = req.unwrap();
        let what = format!("{} {}", req.method(), req.uri());
        let res = tower::ServiceExt::oneshot(bank.app.clone(), req).await.unwrap();
        let st = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert!(st.is_client_error(), "{what}: {st}");
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| panic!("{what}: {st} not JSON: {}", String::from_utf8_lossy(&body)));
        assert!(v["error"].is_string() && v["message"].is_string(), "{what}: {v}");
    }
    let pages = [
        Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("user=alice")),
        Request::post("/login").header("content-type", "text/plain").body(Body::from("csrf=x&user=alice")),
        Request::post("/transfer")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={}", "a".repeat(200 * 1024)))),
        Request::post("/transfer/confirm")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("csrf=x&code=%FF%FE")),
    ];
    for req in pages {
        let req = req.unwrap();
        let what = format!("{} {}", req.method(), req.uri());
        let res = tower::ServiceExt::oneshot(bank.app.clone(), req).await.unwrap();
        let st = res.status();
        let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let body = String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned();
        assert!(st.is_client_error(), "{what}: {st} {body}");
        assert!(ct.starts_with("text/html") && body.contains("Something went wrong"), "{what}: {st} {ct} {body}");
    }
}

/// Revoking a token (a lost or stolen card) also ends its user's sessions, API and website:
/// whoever logged in with the card cannot go on browsing for the rest of the 12 hours.
#[tokio::test]
async fn revoking_a_token_ends_its_users_sessions() {
    let bank = TestBank::new();
    let mut alice = Card::new(seed("alice"));
    let mut bob = Card::new(seed("bob"));
    let token = bank.login(&mut alice, "alice").await;
    let bob_token = bank.login(&mut bob, "bob").await;
    let (_, h, html) = crate::common::web(&bank.app, "GET", "/login", None, None).await;
    let cookie = crate::common::set_cookie(&h).unwrap();
    let csrf = crate::common::input(&html, "csrf");
    let (_, _, page) =
        crate::common::web(&bank.app, "POST", "/login", Some(&cookie), Some(&[("csrf", &csrf), ("user", "alice")]))
            .await;
    let (counter, otp) = alice.login(&crate::common::cell(&page, "Challenge"), VID);
    let code = format!("{counter}-{otp}");
    let cid = crate::common::input(&page, "challenge_id");
    let (st, h, _) = crate::common::web(
        &bank.app,
        "POST",
        "/login/code",
        Some(&cookie),
        Some(&[("csrf", &csrf), ("challenge_id", &cid), ("code", &code)]),
    )
    .await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let web_session = crate::common::set_cookie(&h).unwrap();
    assert_eq!(crate::common::web(&bank.app, "GET", "/accounts", Some(&web_session), None).await.0, StatusCode::OK);

    bank_server::ops::revoke_token(&bank.path, "PSIM-ALICE").unwrap();
    let (st, v) = bank.call("GET", "/api/v1/accounts", Some(&token), None).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));
    let (st, h, _) = crate::common::web(&bank.app, "GET", "/accounts", Some(&web_session), None).await;
    assert_eq!(
        (st, h[axum::http::header::LOCATION].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/login?session=ended")
    );
    // Other users are not touched.
    assert_eq!(bank.call("GET", "/api/v1/accounts", Some(&bob_token), None).await.0, StatusCode::OK);
    assert_eq!(bank.audit_count("sessions_ended", "\"count\":2"), 1);
}

/// `GET /challenges/{id}`: what a signing service shows before the card signs, read from the
/// bank and not from the page; gone once used, expired, or for an unknown user.
#[tokio::test]
async fn an_open_challenge_tells_a_signing_service_what_the_card_signs() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let lc = bank.challenge("alice").await;
    let path = |v: &serde_json::Value| format!("/api/v1/challenges/{}", v["challenge_id"].as_str().unwrap());
    let (st, v) = bank.call("GET", &path(&lc), None, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({ "challenge_id": lc["challenge_id"], "user": "alice", "challenge_hex": lc["challenge_hex"],
                "expires_at": lc["expires_at"], "kind": "login" })
    );

    let (counter, otp) = card.login(lc["challenge_hex"].as_str().unwrap(), VID);
    let body = json!({ "challenge_id": lc["challenge_id"], "counter": counter, "otp": otp });
    let (st, v) = bank.call("POST", "/api/v1/login", None, Some(body)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    // The login used its challenge up: no longer there.
    let (st, v) = bank.call("GET", &path(&lc), None, None).await;
    assert_eq!((st, v["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{v}");

    let (_, t) = bank.create_transfer(&token, "tx-7", "ACC-ALICE-EUR", "ACC-BOB-EUR", 1234, "EUR").await;
    let (st, v) = bank.call("GET", &path(&t), None, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["kind"], "transfer");
    assert_eq!(v["user"], "alice");
    // Exactly the fields `POST /transfers` asked the card to sign.
    assert_eq!(v["sign"], t["sign"]);
    assert_eq!(v["challenge_hex"], t["challenge_hex"]);

    // Expired: gone, though still stored.
    bank.clock.advance(bank_server::CHALLENGE_TTL_S);
    let (st, _) = bank.call("GET", &path(&t), None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // An unknown user's challenge is stored nowhere; a malformed id is just not found.
    let ghost = bank.challenge("nobody").await;
    for p in [path(&ghost), "/api/v1/challenges/xyz".to_owned(), format!("/api/v1/challenges/{}", "0".repeat(32))] {
        let (st, v) = bank.call("GET", &p, None, None).await;
        assert_eq!((st, v["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{p}: {v}");
    }
}
