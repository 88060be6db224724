//! The website by HTTP, as a browser without JavaScript would use it.

use axum::http::{header, StatusCode};
use paysim_otp::TxFields;

use crate::common::*;

/// Logs in through the pages; returns the logged-in session cookie.
pub(crate) async fn web_login(bank: &TestBank, card: &mut Card, code_style: &str) -> String {
    let (st, h, html) = web(&bank.app, "GET", "/login", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let set = h[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set.starts_with("bank_session=")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && !set.contains("Secure"),
        "{set}"
    );
    let anon = set_cookie(&h).unwrap();
    let csrf = input(&html, "csrf");

    let (st, _, page) =
        web(&bank.app, "POST", "/login", Some(&anon), Some(&[("csrf", &csrf), ("user", "alice")])).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert_eq!(cell(&page, "Bank (verifier id)"), VID);
    let challenge = cell(&page, "Challenge");
    // The command to run never names the bank: the bridge signs for the one it was set up for.
    assert!(page.contains(&format!("reader-bridge respond --challenge {challenge}</pre>")), "{page}");
    assert!(!page.contains("--server"), "{page}");
    let challenge_id = input(&page, "challenge_id");
    let (counter, otp) = card.login(&challenge, VID);
    let code = match code_style {
        "counter-otp" => format!("{counter}-{otp}"),
        _ => otp,
    };
    let (st, h, _) = web(
        &bank.app,
        "POST",
        "/login/code",
        Some(&anon),
        Some(&[("csrf", &csrf), ("challenge_id", &challenge_id), ("code", &code)]),
    )
    .await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/welcome");
    let session = set_cookie(&h).unwrap();
    assert_ne!(session, anon, "a new session id at login");
    // The visitor's id is dead.
    let (st, h, _) = web(&bank.app, "GET", "/welcome", Some(&anon), None).await;
    // It ended: the login page says so.
    assert_eq!(
        (st, &h[header::LOCATION]),
        (StatusCode::SEE_OTHER, &"/login?session=ended".parse::<header::HeaderValue>().unwrap())
    );
    session
}

#[tokio::test]
async fn a_person_logs_in_looks_transfers_and_logs_out() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let s = web_login(&bank, &mut card, "counter-otp").await;

    let (st, h, html) = web(&bank.app, "GET", "/welcome", Some(&s), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(html.contains("Welcome, <b>alice</b>"));
    assert!(h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("default-src 'none'"));
    assert!(!html.contains("<script"));

    let (_, _, html) = web(&bank.app, "GET", "/accounts", Some(&s), None).await;
    assert!(html.contains("ACC-ALICE-EUR") && html.contains("1000.00"), "{html}");

    let (_, _, form) = web(&bank.app, "GET", "/transfer", Some(&s), None).await;
    let csrf = input(&form, "csrf");
    let tid = input(&form, "transfer_id");
    let fields = [
        ("csrf", csrf.as_str()),
        ("transfer_id", tid.as_str()),
        ("from", "ACC-ALICE-EUR"),
        ("to", "ACC-BOB-EUR"),
        ("amount", "12.34"),
        ("payee_name", "Bob Example"),
    ];
    let (st, _, confirm) = web(&bank.app, "POST", "/transfer", Some(&s), Some(&fields)).await;
    assert_eq!(st, StatusCode::OK, "{confirm}");
    // The confirmation page shows exactly what the card signs.
    assert_eq!(cell(&confirm, "Bank (verifier id)"), VID);
    assert_eq!(cell(&confirm, "Transfer id"), tid);
    assert_eq!(cell(&confirm, "Currency"), "EUR");
    assert_eq!(cell(&confirm, "Payee"), "ACC-BOB-EUR");
    assert_eq!(cell(&confirm, "From"), "ACC-ALICE-EUR");
    assert_eq!(cell(&confirm, "Payee's name"), "Bob Example");
    assert!(confirm.contains(r#"<div id="payee-check" class="ok" data-result="match">"#), "{confirm}");
    assert!(!confirm.contains("confirm_unverified_payee"), "no second confirmation for a match");
    assert!(cell(&confirm, "Amount").starts_with("12.34 EUR"));
    assert!(confirm.contains("<span id=\"amount-minor\">1234</span> minor units"));
    let challenge = cell(&confirm, "Challenge");
    let command = format!(
        "reader-bridge respond --challenge {challenge} --transfer-id {tid} --amount-minor 1234 --currency EUR --source ACC-ALICE-EUR --payee ACC-BOB-EUR --payee-name 'Bob Example'</pre>"
    );
    assert!(confirm.contains(&command) && !confirm.contains("--server"), "{confirm}");
    let (counter, otp) = card.tx(
        &challenge,
        &TxFields {
            version: paysim_otp::TxVersion::V2,
            verifier_id: VID.as_bytes(),
            transaction_id: tid.as_bytes(),
            amount_minor: 1234,
            currency: b"EUR",
            source: b"ACC-ALICE-EUR",
            payee: b"ACC-BOB-EUR",
            payee_name: b"Bob Example",
        },
    );
    let code = format!("{counter}-{otp}");
    let cfields = [
        ("csrf", csrf.as_str()),
        ("transfer_id", tid.as_str()),
        ("challenge_id", &input(&confirm, "challenge_id")),
        ("code", &code),
    ];
    let (st, _, result) = web(&bank.app, "POST", "/transfer/confirm", Some(&s), Some(&cfields)).await;
    assert_eq!(st, StatusCode::OK, "{result}");
    assert!(result.contains("The transfer was executed."), "{result}");
    // Sending the same form again shows the same result and moves nothing.
    let (_, _, again) = web(&bank.app, "POST", "/transfer/confirm", Some(&s), Some(&cfields)).await;
    assert!(again.contains("The transfer was executed."));
    let (_, _, again) = web(&bank.app, "POST", "/transfer", Some(&s), Some(&fields)).await;
    assert!(again.contains("The transfer was executed."));
    assert!(bank.balances().contains(&("ACC-ALICE-EUR".into(), 100_000 - 1234)));

    let (_, _, html) = web(&bank.app, "GET", "/accounts", Some(&s), None).await;
    assert!(html.contains(&tid) && html.contains("12.34 EUR") && html.contains("Executed"), "{html}");

    // Logout needs the CSRF token too.
    let (st, _, _) = web(&bank.app, "POST", "/logout", Some(&s), Some(&[("csrf", "wrong")])).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, h, _) = web(&bank.app, "POST", "/logout", Some(&s), Some(&[("csrf", &csrf)])).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    assert!(h[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let (st, _, _) = web(&bank.app, "GET", "/accounts", Some(&s), None).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_eight_digits_alone_work_within_the_window() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    card.skip(7);
    let s = web_login(&bank, &mut card, "digits-only").await;
    let (st, _, _) = web(&bank.app, "GET", "/welcome", Some(&s), None).await;
    assert_eq!(st, StatusCode::OK);
    // The bank's chain followed: the API login with the next counter works.
    let _ = bank.login(&mut card, "alice").await;
}

#[tokio::test]
async fn forms_without_the_csrf_token_and_wrong_codes_are_refused() {
    let bank = TestBank::new();
    let card = Card::new(seed("alice"));
    let (_, h, html) = web(&bank.app, "GET", "/login", None, None).await;
    let anon = set_cookie(&h).unwrap();
    let csrf = input(&html, "csrf");
    let (st, _, page) = web(&bank.app, "POST", "/login", Some(&anon), Some(&[("csrf", "0"), ("user", "alice")])).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{page}");
    let (st, _, _) = web(&bank.app, "POST", "/login", None, Some(&[("csrf", &csrf), ("user", "alice")])).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, page) =
        web(&bank.app, "POST", "/login", Some(&anon), Some(&[("csrf", &csrf), ("user", "Bad Name!")])).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(page.contains("A user name is"));

    let (_, _, page) = web(&bank.app, "POST", "/login", Some(&anon), Some(&[("csrf", &csrf), ("user", "alice")])).await;
    let cid = input(&page, "challenge_id");
    let (counter, otp) = card.clone().login(&cell(&page, "Challenge"), VID);
    let wrong = format!("{counter}-{}", if otp == "00000000" { "00000001" } else { "00000000" });
    let (st, _, page) = web(
        &bank.app,
        "POST",
        "/login/code",
        Some(&anon),
        Some(&[("csrf", &csrf), ("challenge_id", &cid), ("code", &wrong)]),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(page.contains("not accepted"));
    // The wrong code counted and used the challenge up: the right code on it fails too.
    assert_eq!(bank.audit_count("otp_check", "\"otp_mismatch\""), 1);
    let right = format!("{counter}-{otp}");
    let (st, _, _) = web(
        &bank.app,
        "POST",
        "/login/code",
        Some(&anon),
        Some(&[("csrf", &csrf), ("challenge_id", &cid), ("code", &right)]),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, page) = web(
        &bank.app,
        "POST",
        "/login/code",
        Some(&anon),
        Some(&[("csrf", &csrf), ("challenge_id", &cid), ("code", "12")]),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(page.contains("COUNTER-OTP"));

    // An API login challenge cannot be used by the website (it is bound to no session).
    let c = bank.challenge("alice").await;
    let (counter, otp) = card.clone().login(c["challenge_hex"].as_str().unwrap(), VID);
    let (st, _, _) = web(
        &bank.app,
        "POST",
        "/login/code",
        Some(&anon),
        Some(&[
            ("csrf", &csrf),
            ("challenge_id", c["challenge_id"].as_str().unwrap()),
            ("code", &format!("{counter}-{otp}")),
        ]),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn pages_need_a_session_and_it_ends_when_idle() {
    let bank = TestBank::new();
    for path in ["/welcome", "/accounts", "/transfer", "/"] {
        let (st, h, _) = web(&bank.app, "GET", path, None, None).await;
        assert_eq!(st, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(h[header::LOCATION], "/login");
    }
    let (st, _, html) = web(&bank.app, "GET", "/nothing", None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(html.contains("no such page"));

    let mut card = Card::new(seed("alice"));
    let s = web_login(&bank, &mut card, "counter-otp").await;
    bank.clock.advance(299);
    assert_eq!(web(&bank.app, "GET", "/welcome", Some(&s), None).await.0, StatusCode::OK);
    bank.clock.advance(300);
    assert_eq!(web(&bank.app, "GET", "/welcome", Some(&s), None).await.0, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_bad_transfer_form_gets_an_error_page() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let s = web_login(&bank, &mut card, "counter-otp").await;
    let (_, _, form) = web(&bank.app, "GET", "/transfer", Some(&s), None).await;
    let csrf = input(&form, "csrf");
    let tid = input(&form, "transfer_id");
    for (to, amount, want, text) in [
        ("ACC-BOB-EUR", "12.345", StatusCode::BAD_REQUEST, "EUR has 2 decimals: you typed 3 decimals."),
        ("ACC-BOB-EUR", "1.234,5", StatusCode::BAD_REQUEST, "one decimal sign, like 12.34 or 12,34"),
        ("ACC-BOB-EUR", "-1", StatusCode::BAD_REQUEST, "without a sign"),
        ("ACC-NOBODY", "1", StatusCode::UNPROCESSABLE_ENTITY, "There is no account ACC-NOBODY that takes EUR."),
        ("acc-alice-eur", "1", StatusCode::UNPROCESSABLE_ENTITY, "This is the account the money comes from."),
        ("ACC-BOB-EUR", "5000", StatusCode::CONFLICT, "There is not enough money in ACC-ALICE-EUR"),
        ("ACC BOB", "1", StatusCode::BAD_REQUEST, "An account number is up to 34 letters"),
    ] {
        let f = [
            ("csrf", csrf.as_str()),
            ("transfer_id", tid.as_str()),
            ("from", "ACC-ALICE-EUR"),
            ("to", to),
            ("amount", amount),
            ("payee_name", "Bob Example"),
        ];
        let (st, _, page) = web(&bank.app, "POST", "/transfer", Some(&s), Some(&f)).await;
        assert_eq!(st, want, "{to} {amount}: {page}");
        assert!(page.contains(text), "{page}");
        // The form again: navigation, the typed values, the field marked, the sentence beside it.
        assert!(page.contains("<nav aria-label=\"Main\">") && page.contains("aria-current=\"page\""), "{page}");
        assert!(page.contains(&format!("name=\"amount\" value=\"{amount}\"")), "{page}");
        assert!(page.contains(&format!("name=\"to\" value=\"{to}\"")), "{page}");
        assert!(page.contains("aria-invalid=\"true\""), "{page}");
        assert!(!page.contains("Something went wrong"), "{page}");
        assert_ne!(input(&page, "transfer_id"), tid, "a fresh transfer id for the form sent again");
    }
    // A decimal comma is read as the decimal sign: 12,34 EUR is 1234 cents.
    let f = [
        ("csrf", csrf.as_str()),
        ("transfer_id", tid.as_str()),
        ("from", "ACC-ALICE-EUR"),
        ("to", "ACC-BOB-EUR"),
        ("amount", "12,34"),
        ("payee_name", "Bob Example"),
    ];
    let (st, _, page) = web(&bank.app, "POST", "/transfer", Some(&s), Some(&f)).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    assert!(page.contains("<span id=\"amount-minor\">1234</span>"), "{page}");
    // Someone else's account as the source.
    let f = [
        ("csrf", csrf.as_str()),
        ("transfer_id", tid.as_str()),
        ("from", "ACC-BOB-EUR"),
        ("to", "ACC-ALICE-EUR"),
        ("amount", "1"),
        ("payee_name", "Bob Example"),
    ];
    let (st, _, page) = web(&bank.app, "POST", "/transfer", Some(&s), Some(&f)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("Choose one of your accounts."), "{page}");
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_and_host_prefixed() {
    let bank = TestBank::new();
    let state = bank_server::AppState::open(&bank.path, "https://bank.example", bank.clock.clone()).unwrap();
    assert_eq!(state.cfg.auth.verifier_id, "https://bank.example:443");
    let app = bank_server::app(state);
    let (st, h, _) = web(&app, "GET", "/login", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let set = h[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("__Host-bank_session="), "{set}");
    for attr in ["; Path=/", "; HttpOnly", "; SameSite=Strict", "; Secure"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(!set.contains("Domain="));
}

/// Every browser that opens /login without a cookie gets a visitor session (it carries the
/// CSRF token and, later, the login challenge). Those rows are capped: the oldest visitor
/// sessions go, the newest still work, and logged-in sessions are never touched.
#[tokio::test]
async fn visitor_sessions_are_capped() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let api_token = bank.login(&mut card, "alice").await;
    let logged_in = web_login(&bank, &mut card, "counter-otp").await;

    let mut cfg = bank_server::Config::new(URL).unwrap();
    cfg.max_visitor_sessions = 5;
    let key = bank_server::master_key::MasterKey::load_or_create(&bank.path).unwrap();
    let db = bank_server::db::Db::open(&bank.path).unwrap();
    let app = bank_server::app(bank_server::AppState::with(db, key, cfg, bank.clock.clone()).unwrap());
    let mut visitors = Vec::new();
    for _ in 0..40 {
        let (st, h, html) = web(&app, "GET", "/login", None, None).await;
        assert_eq!(st, StatusCode::OK);
        visitors.push((set_cookie(&h).unwrap(), input(&html, "csrf")));
    }
    let c = rusqlite::Connection::open(&bank.path).unwrap();
    let anonymous: i64 = c.query_row("SELECT count(*) FROM sessions WHERE user_id IS NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(anonymous, 5, "visitor sessions kept");

    // The newest visitor goes on to the challenge page; the oldest must start again.
    let (cookie, csrf) = visitors.last().unwrap();
    let f = [("csrf", csrf.as_str()), ("user", "alice")];
    let (st, _, page) = web(&app, "POST", "/login", Some(cookie), Some(&f)).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    let (cookie, csrf) = &visitors[0];
    let f = [("csrf", csrf.as_str()), ("user", "alice")];
    assert_eq!(web(&app, "POST", "/login", Some(cookie), Some(&f)).await.0, StatusCode::FORBIDDEN);

    // Logged-in sessions, website and API, are untouched.
    assert_eq!(web(&app, "GET", "/welcome", Some(&logged_in), None).await.0, StatusCode::OK);
    assert_eq!(bank.call("GET", "/api/v1/session", Some(&api_token), None).await.0, StatusCode::OK);
}

/// What a person types comes back into pages only escaped: a payee, an amount, a user name or
/// a transfer id full of markup never becomes markup.
#[tokio::test]
async fn typed_markup_is_escaped_in_every_page() {
    let bank = TestBank::new();
    let evil = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";
    // The login form with a user name that is not one.
    let (_, h, html) = web(&bank.app, "GET", "/login", None, None).await;
    let visitor = set_cookie(&h).unwrap();
    let csrf = input(&html, "csrf");
    let (st, _, page) =
        web(&bank.app, "POST", "/login", Some(&visitor), Some(&[("csrf", &csrf), ("user", evil)])).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(!page.contains("<script") && !page.contains("<img"), "{page}");

    let mut card = Card::new(seed("alice"));
    let s = web_login(&bank, &mut card, "counter-otp").await;
    let (_, _, form) = web(&bank.app, "GET", "/transfer", Some(&s), None).await;
    let csrf = input(&form, "csrf");
    let tid = input(&form, "transfer_id");
    for (tid, from, to, amount) in [
        (tid.as_str(), "ACC-ALICE-EUR", evil, "1"),
        (tid.as_str(), "ACC-ALICE-EUR", "ACC-BOB-EUR", evil),
        (tid.as_str(), evil, "ACC-BOB-EUR", "1"),
        (evil, "ACC-ALICE-EUR", "ACC-BOB-EUR", "1"),
    ] {
        let f = [
            ("csrf", csrf.as_str()),
            ("transfer_id", tid),
            ("from", from),
            ("to", to),
            ("amount", amount),
            ("payee_name", "Bob Example"),
        ];
        let (st, _, page) = web(&bank.app, "POST", "/transfer", Some(&s), Some(&f)).await;
        assert!(st.is_client_error(), "{st}");
        assert!(!page.contains("<script") && !page.contains("<img"), "{page}");
        if to == evil {
            assert!(page.contains("&lt;script&gt;"), "the payee is shown, escaped: {page}");
        }
    }
    // The code form of a confirmation.
    let f = [("csrf", csrf.as_str()), ("transfer_id", evil), ("challenge_id", evil), ("code", evil)];
    let (st, _, page) = web(&bank.app, "POST", "/transfer/confirm", Some(&s), Some(&f)).await;
    assert!(st.is_client_error(), "{st}");
    assert!(!page.contains("<script") && !page.contains("<img"), "{page}");
}

/// Every form of every page carries the session's CSRF token, and every POST refuses a wrong
/// one with 403 before doing anything.
#[tokio::test]
async fn every_form_carries_the_csrf_token_and_every_post_checks_it() {
    fn forms_carry(page: &str, csrf: &str, what: &str) -> usize {
        let forms: Vec<&str> = page.split("<form").skip(1).map(|f| f.split("</form>").next().unwrap()).collect();
        for f in &forms {
            assert!(f.contains(&format!("name=\"csrf\" value=\"{csrf}\"")), "{what}: a form without the token: {f}");
        }
        forms.len()
    }
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let (_, h, login) = web(&bank.app, "GET", "/login", None, None).await;
    let visitor = set_cookie(&h).unwrap();
    let vcsrf = input(&login, "csrf");
    assert_eq!(forms_carry(&login, &vcsrf, "login"), 1);
    let (_, _, challenge) =
        web(&bank.app, "POST", "/login", Some(&visitor), Some(&[("csrf", &vcsrf), ("user", "alice")])).await;
    assert_eq!(forms_carry(&challenge, &vcsrf, "challenge"), 1);
    for path in ["/login", "/login/code", "/transfer", "/transfer/confirm", "/logout"] {
        let (st, _, _) = web(&bank.app, "POST", path, Some(&visitor), Some(&[("csrf", "0".repeat(32).as_str())])).await;
        assert!(st == StatusCode::FORBIDDEN || st.is_client_error(), "{path}: {st}");
    }

    let s = web_login(&bank, &mut card, "counter-otp").await;
    let (_, _, welcome) = web(&bank.app, "GET", "/welcome", Some(&s), None).await;
    let csrf = input(&welcome, "csrf");
    assert_ne!(csrf, vcsrf);
    assert_eq!(forms_carry(&welcome, &csrf, "welcome"), 1, "the logout button");
    let (_, _, accounts) = web(&bank.app, "GET", "/accounts", Some(&s), None).await;
    forms_carry(&accounts, &csrf, "accounts");
    let (_, _, form) = web(&bank.app, "GET", "/transfer", Some(&s), None).await;
    assert_eq!(forms_carry(&form, &csrf, "transfer form"), 2);
    let tid = input(&form, "transfer_id");
    let fields = [
        ("csrf", csrf.as_str()),
        ("transfer_id", tid.as_str()),
        ("from", "ACC-ALICE-EUR"),
        ("to", "ACC-BOB-EUR"),
        ("amount", "1"),
        ("payee_name", "Bob Example"),
    ];
    let (_, _, confirm) = web(&bank.app, "POST", "/transfer", Some(&s), Some(&fields)).await;
    assert_eq!(forms_carry(&confirm, &csrf, "confirmation"), 2);

    // With the logged-in session, a wrong token is refused on every POST and changes nothing.
    let wrong = "0".repeat(32);
    let posts: [(&str, Vec<(&str, &str)>); 4] = [
        ("/transfer", fields.iter().map(|(k, v)| if *k == "csrf" { (*k, wrong.as_str()) } else { (*k, *v) }).collect()),
        (
            "/transfer/confirm",
            vec![("csrf", &wrong), ("transfer_id", &tid), ("challenge_id", &wrong), ("code", "0-12345678")],
        ),
        ("/logout", vec![("csrf", &wrong)]),
        ("/login", vec![("csrf", &wrong), ("user", "alice")]),
    ];
    for (path, f) in posts {
        let (st, _, page) = web(&bank.app, "POST", path, Some(&s), Some(&f)).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {page}");
    }
    assert_eq!(web(&bank.app, "GET", "/welcome", Some(&s), None).await.0, StatusCode::OK, "still logged in");
    assert_eq!(bank.audit_count("otp_check", "\"otp_mismatch\""), 0, "no code was checked");
}

/// A copy of the database file holds no CSRF token that could be put into a forged form: the
/// token is derived from the session id, of which the table keeps only a hash.
#[tokio::test]
async fn the_database_file_holds_no_csrf_token() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let (_, h, html) = web(&bank.app, "GET", "/login", None, None).await;
    let visitor = set_cookie(&h).unwrap();
    let visitor_csrf = input(&html, "csrf");
    let s = web_login(&bank, &mut card, "counter-otp").await;
    let (st, _, html) = web(&bank.app, "GET", "/welcome", Some(&s), None).await;
    assert_eq!(st, StatusCode::OK);
    let csrf = input(&html, "csrf");
    assert_eq!(csrf.len(), 32, "{csrf}");
    // The visitor session still works with its token; the tokens differ per session.
    let (_, _, again) = web(&bank.app, "GET", "/login", Some(&visitor), None).await;
    assert_eq!(input(&again, "csrf"), visitor_csrf);
    assert_ne!(csrf, visitor_csrf);
    bank.state
        .db
        .run_blocking(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").map_err(bank_server::db::DbError::from))
        .unwrap();
    let mut bytes = std::fs::read(&bank.path).unwrap();
    bytes.extend(std::fs::read(bank.path.with_extension("sqlite3-wal")).unwrap_or_default());
    for token in [&csrf, &visitor_csrf] {
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "a CSRF token is in the database file");
    }
    // And the logged-in session's token still passes: logging out with it works.
    let (st, h, _) = web(&bank.app, "POST", "/logout", Some(&s), Some(&[("csrf", &csrf)])).await;
    assert_eq!((st, &h[header::LOCATION]), (StatusCode::SEE_OTHER, &"/login".parse::<header::HeaderValue>().unwrap()));
}

/// What the log holds, for the test below.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A page that fails inside the bank answers a generic 500 page and logs the cause for the
/// operator (before, the log said only "internal error").
#[tokio::test]
async fn a_failing_page_logs_its_cause_and_shows_none_of_it() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let s = web_login(&bank, &mut card, "counter-otp").await;
    // The accounts table goes away under the running server.
    let c = rusqlite::Connection::open(&bank.path).unwrap();
    c.execute_batch("ALTER TABLE accounts RENAME TO accounts_gone").unwrap();
    let log = LogBuf::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let (st, _, html) = web(&bank.app, "GET", "/welcome", Some(&s), None).await;
    drop(guard);
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!html.contains("no such table"), "{html}");
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("no such table: accounts"), "the cause is not in the log: {log}");
}

#[tokio::test]
async fn pages_that_only_read_stay_off_the_writer_until_the_session_is_due_a_touch() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let s = web_login(&bank, &mut card, "counter-otp").await;
    let before = bank.state.writer.committed();
    for path in ["/welcome", "/accounts", "/welcome", "/accounts"] {
        let (st, _, html) = web(&bank.app, "GET", path, Some(&s), None).await;
        assert_eq!(st, StatusCode::OK, "{path}: {html}");
        assert!(html.contains("alice"), "{path}");
    }
    assert_eq!(bank.state.writer.committed(), before, "no page above wrote anything");
    // Once `last_seen` is due, the next page writes it down, through the writer.
    bank.clock.advance(bank_server::session::TOUCH_EVERY_S);
    let (st, _, _) = web(&bank.app, "GET", "/accounts", Some(&s), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(bank.state.writer.committed().1, before.1 + 1, "one unit: the touch and the page");
    // An unknown cookie is nobody: sent to the login page, still without a write.
    let (st, h, _) = web(&bank.app, "GET", "/accounts", Some("nope"), None).await;
    assert_eq!(
        (st, &h[header::LOCATION]),
        (StatusCode::SEE_OTHER, &"/login?session=ended".parse::<header::HeaderValue>().unwrap())
    );
    assert_eq!(bank.state.writer.committed().1, before.1 + 1);
}

/// The "Sign with my card" button: on the two pages that show a challenge, hidden until the
/// bank's own script shows it, with a CSP that allows that script and requests to the signing
/// service only; without a signing service set, neither button nor `connect-src`.
#[tokio::test]
async fn the_sign_with_my_card_button_is_the_banks_script_and_calls_only_the_signing_service() {
    let bank = TestBank::new();
    let (_, h, html) = web(&bank.app, "GET", "/login", None, None).await;
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self';") && csp.contains("connect-src http://127.0.0.1:7480;"), "{csp}");
    assert!(!csp.contains("script-src 'self' 'unsafe-inline'") && !csp.contains("unsafe-eval"), "{csp}");
    assert!(!html.contains("<script"), "no script on a page without a challenge: {html}");
    let anon = set_cookie(&h).unwrap();
    let csrf = input(&html, "csrf");
    let (_, _, page) = web(&bank.app, "POST", "/login", Some(&anon), Some(&[("csrf", &csrf), ("user", "alice")])).await;
    assert!(page.contains(r#"<div id="sign-service" hidden>"#), "{page}");
    assert!(page.contains(r#"data-service="http://127.0.0.1:7480""#), "{page}");
    assert!(page.contains(r#"<script src="/static/sign.js" defer></script>"#), "{page}");
    // One script, from a file: no inline script and no inline handler anywhere.
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    for handler in ["onclick", "onload", "onsubmit", "javascript:"] {
        assert!(!page.contains(handler), "{handler} in {page}");
    }
    // The copy-and-paste way stays.
    assert!(page.contains("reader-bridge respond --challenge"), "{page}");

    let (st, h, js) = web(&bank.app, "GET", "/static/sign.js", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(js.contains("/v1/sign") && js.contains("challenge_id"), "{js}");

    let off = TestBank::with(|cfg| {
        cfg.limits = bank_server::limit::Settings::off();
        cfg.signing_service = None;
    });
    let (_, h, html) = web(&off.app, "GET", "/login", None, None).await;
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert!(!csp.contains("connect-src"), "{csp}");
    let anon = set_cookie(&h).unwrap();
    let csrf = input(&html, "csrf");
    let (_, _, page) = web(&off.app, "POST", "/login", Some(&anon), Some(&[("csrf", &csrf), ("user", "alice")])).await;
    assert!(!page.contains("sign-with-card") && !page.contains("<script"), "{page}");
}

/// Starts a transfer of 1.00 EUR to bob through the form; the confirmation page.
async fn start_web_transfer(bank: &TestBank, s: &str) -> (String, String, String) {
    let (_, _, form) = web(&bank.app, "GET", "/transfer", Some(s), None).await;
    let csrf = input(&form, "csrf");
    let tid = input(&form, "transfer_id");
    let fields = [
        ("csrf", csrf.as_str()),
        ("transfer_id", tid.as_str()),
        ("from", "ACC-ALICE-EUR"),
        ("to", "ACC-BOB-EUR"),
        ("amount", "1,00"),
        ("payee_name", "Bob Example"),
    ];
    let (st, _, confirm) = web(&bank.app, "POST", "/transfer", Some(s), Some(&fields)).await;
    assert_eq!(st, StatusCode::OK, "{confirm}");
    (csrf, tid, confirm)
}

/// A transfer whose code was refused ends as failed, one whose challenge expired as expired:
/// on the result page, in the history and in the API, never pending. A code typed in the
/// wrong form is shown beside the field, on the same confirmation page, and ends nothing.
#[tokio::test]
async fn a_refused_code_or_an_expired_challenge_ends_the_transfer_everywhere() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let s = web_login(&bank, &mut card, "counter-otp").await;
    let api = bank.login(&mut card, "alice").await;

    let (csrf, tid, confirm) = start_web_transfer(&bank, &s).await;
    let cid = input(&confirm, "challenge_id");
    let send = |code: &str, tid: String, cid: String, csrf: String| {
        let app = bank.app.clone();
        let s = s.clone();
        let code = code.to_owned();
        async move {
            let f = [
                ("csrf", csrf.as_str()),
                ("transfer_id", tid.as_str()),
                ("challenge_id", cid.as_str()),
                ("code", code.as_str()),
            ];
            web(&app, "POST", "/transfer/confirm", Some(&s), Some(&f)).await
        }
    };
    // A code in the wrong form: the same page, the rule beside the code field.
    let (st, _, page) = send("17-123", tid.clone(), cid.clone(), csrf.clone()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("id=\"code-error\"") && page.contains("aria-invalid=\"true\""), "{page}");
    assert_eq!(input(&page, "challenge_id"), cid);
    assert!(page.contains("<nav aria-label=\"Main\">"), "{page}");
    // A wrong code: the transfer has failed, and says so.
    let (st, _, page) = send("0-00000000", tid.clone(), cid.clone(), csrf.clone()).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{page}");
    assert!(page.contains("data-status=\"failed\"") && page.contains("Nothing was transferred"), "{page}");
    assert!(page.contains("<nav aria-label=\"Main\">") && page.contains("Start this transfer again"), "{page}");
    let (_, _, history) = web(&bank.app, "GET", "/accounts", Some(&s), None).await;
    assert!(history.contains(&format!("data-transfer-id=\"{tid}\" data-status=\"failed\"")), "{history}");
    assert!(!history.contains("Pending"), "{history}");
    let (_, t) = bank.call("GET", &format!("/api/v1/transfers/{tid}"), Some(&api), None).await;
    assert_eq!((t["status"].as_str(), t["reason"].as_str()), (Some("failed"), Some("code_refused")), "{t}");
    // Sending the form again changes nothing: it has ended.
    let (st, _, page) = send("0-00000001", tid.clone(), cid.clone(), csrf.clone()).await;
    assert_eq!(st, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("data-status=\"failed\""), "{page}");

    // A challenge that expires: the transfer reads as expired at once, in pages and API.
    let (csrf, tid, confirm) = start_web_transfer(&bank, &s).await;
    let cid = input(&confirm, "challenge_id");
    bank.clock.advance(bank.state.cfg.auth.challenge_ttl);
    let (_, t) = bank.call("GET", &format!("/api/v1/transfers/{tid}"), Some(&api), None).await;
    assert_eq!((t["status"].as_str(), t["reason"].as_str()), (Some("expired"), Some("challenge_expired")), "{t}");
    let (_, _, history) = web(&bank.app, "GET", "/accounts", Some(&s), None).await;
    assert!(history.contains(&format!("data-transfer-id=\"{tid}\" data-status=\"expired\"")), "{history}");
    // The right code, too late: expired, not failed, nothing moved.
    let (counter, otp) = card.clone().tx(
        &cell(&confirm, "Challenge"),
        &TxFields {
            version: paysim_otp::TxVersion::V2,
            verifier_id: VID.as_bytes(),
            transaction_id: tid.as_bytes(),
            amount_minor: 100,
            currency: b"EUR",
            source: b"ACC-ALICE-EUR",
            payee: b"ACC-BOB-EUR",
            payee_name: b"Bob Example",
        },
    );
    let (st, _, page) = send(&format!("{counter}-{otp}"), tid.clone(), cid, csrf).await;
    assert_eq!(st, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("data-status=\"expired\"") && page.contains("The time for the code ran out"), "{page}");
    assert!(bank.balances().contains(&("ACC-ALICE-EUR".into(), 100_000)));
    assert_eq!(bank.audit_count("transfer_expired", &tid), 1);
}

/// The error pages a logged-in person can meet keep the navigation.
#[tokio::test]
async fn error_pages_keep_the_navigation() {
    let bank = TestBank::new();
    let mut card = Card::new(seed("alice"));
    let s = web_login(&bank, &mut card, "counter-otp").await;
    let (st, _, page) = web(&bank.app, "GET", "/no-such-page", Some(&s), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(page.contains("<nav aria-label=\"Main\">") && page.contains("There is no such page"), "{page}");
    assert!(page.contains("<main><h1>Page not found</h1>"), "{page}");
    // A form without this session's CSRF token.
    let f = [
        ("csrf", "x"),
        ("transfer_id", "t"),
        ("from", "ACC-ALICE-EUR"),
        ("to", "ACC-BOB-EUR"),
        ("amount", "1"),
        ("payee_name", "B"),
    ];
    let (st, _, page) = web(&bank.app, "POST", "/transfer", Some(&s), Some(&f)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert!(page.contains("<nav aria-label=\"Main\">") && page.contains("out of date"), "{page}");
    // Without a session, no navigation.
    let (_, _, page) = web(&bank.app, "GET", "/no-such-page", None, None).await;
    assert!(!page.contains("<nav"), "{page}");
}
