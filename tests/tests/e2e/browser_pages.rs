//! The website in a real browser: headless Chromium (Debian's package) driven over WebDriver
//! logs in, browses, makes a transfer and meets each error page a customer can meet (a wrong
//! code, an unknown payee, too little money, a bad amount, an ended session, a page that does
//! not exist), at a phone's width (360 px) and a desktop's (1280 px). On every page it checks
//! what a person sees (the texts), that nothing is wider than the window, and that the console
//! shows no error; it saves a screenshot of every page under `target/browser-screenshots/` for
//! a person to look at.
//!
//! Three checks guard what customers met before (issue 11), each in a test of its own:
//! - no page is wider than the window: [`looked_at`], on every page of every test;
//! - an error keeps the navigation and what was typed: `error_pages_keep_the_navigation_*`;
//! - a transfer whose code was refused is shown as failed, never pending:
//!   `a_refused_code_ends_the_transfer_*`.
//!
//! The codes are computed in the test with `paysim_otp` from the token's chain key, as the
//! card would: these tests are about the pages, the card is tested elsewhere.

use std::path::Path;

use e2e_tests::webdriver::{screenshot_dir, Chrome};
use e2e_tests::BankServer;
use paysim_otp::{login_otp, tx_otp, ChainKey, TxFields};
use serde_json::json;

const SEED: [u8; 32] = [0x3C; 32];

struct Site {
    _dir: tempfile::TempDir,
    bank: BankServer,
    vid: String,
    counter: u64,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bank.sqlite3");
        bank_server::ops::add_user(&db, "alice").unwrap();
        bank_server::ops::add_user(&db, "bob").unwrap();
        bank_server::ops::enroll_token(&db, "PSIM-WEB-1", &ChainKey::from_bytes(SEED), 0, "alice").unwrap();
        bank_server::ops::open_account(&db, "alice", "ACC-ALICE-EUR", "EUR", Some("Alice Example")).unwrap();
        bank_server::ops::open_account(&db, "bob", "ACC-BOB-EUR", "EUR", Some("Bob Example")).unwrap();
        // Opened without a holder's name: verification of payee answers "unavailable".
        bank_server::ops::open_account(&db, "bob", "ACC-BOB-OLD", "EUR", None).unwrap();
        bank_server::ops::fund(&db, "ACC-ALICE-EUR", 250_000, "opening").unwrap();
        let bank = BankServer::start(&db, 0);
        let vid = paysim_otp::verifier_id(&bank.url()).unwrap();
        Site { _dir: dir, bank, vid, counter: 0 }
    }

    /// The next login code for `challenge_hex`, typed as COUNTER-OTP.
    fn login_code(&mut self, challenge_hex: &str) -> String {
        let ch = hex::decode(challenge_hex.replace(' ', "")).unwrap();
        let ck = ChainKey::from_bytes(SEED).advance(self.counter);
        let otp = login_otp(&ck, self.counter, &ch, self.vid.as_bytes());
        self.counter += 1;
        format!("{}-{}", self.counter - 1, otp.as_str())
    }

    fn tx_code(&mut self, challenge_hex: &str, f: &TxFields<'_>) -> String {
        let ch = hex::decode(challenge_hex.replace(' ', "")).unwrap();
        let ck = ChainKey::from_bytes(SEED).advance(self.counter);
        let otp = tx_otp(&ck, self.counter, &ch, f);
        self.counter += 1;
        format!("{}-{}", self.counter - 1, otp.as_str())
    }
}

/// The text of element `css` on the page.
fn field(b: &Chrome, css: &str) -> String {
    let v = b.script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([css]));
    v.as_str().unwrap_or_else(|| panic!("no {css} on {}: {}", b.url(), b.text())).trim().to_owned()
}

/// The landmarks every page has: one `h1`, inside `main`; and with `nav`, the logged-in
/// navigation with `aria-current="page"` on the link `current` (or on none).
fn landmarks(b: &Chrome, name: &str, nav: bool, current: Option<&str>) {
    let v = b.script(
        "return [document.querySelectorAll('h1').length, document.querySelectorAll('main h1').length, \
         !!document.querySelector('header nav[aria-label=Main] a[href=\"/accounts\"]'), \
         Array.from(document.querySelectorAll('nav a[aria-current=page]')).map(a => a.getAttribute('href')), \
         (document.querySelector('meta[name=viewport]') || {}).content || null, \
         Array.from(document.querySelectorAll('h2')).map(h => h.textContent.trim()), \
         (document.querySelector('h1') || {}).textContent];",
        json!([]),
    );
    assert_eq!((v[0].as_u64(), v[1].as_u64()), (Some(1), Some(1)), "{name}: one h1, in main: {}", b.text());
    // Headless desktop Chromium lays out at the window's width whatever the tag says, so the
    // 360 px runs cannot see a missing viewport tag: it is checked here instead.
    assert_eq!(v[4].as_str(), Some("width=device-width, initial-scale=1"), "{name}: the viewport tag");
    let h1 = v[6].as_str().unwrap_or("").trim();
    assert!(!v[5].as_array().unwrap().iter().any(|h| h.as_str() == Some(h1)), "{name}: an h2 repeats the h1 {h1:?}");
    assert_eq!(
        v[2].as_bool(),
        Some(nav),
        "{name}: the navigation {}: {}",
        if nav { "is missing" } else { "is shown" },
        b.text()
    );
    let marked: Vec<&str> = v[3].as_array().unwrap().iter().filter_map(|h| h.as_str()).collect();
    assert_eq!(marked, current.into_iter().collect::<Vec<_>>(), "{name}: the current page's link");
}

/// The value of the form field `css`, and whether it is marked invalid.
fn typed(b: &Chrome, css: &str) -> (String, bool) {
    let v = b.script(
        "const e = document.querySelector(arguments[0]); return e ? [e.value, e.getAttribute('aria-invalid') === 'true'] : null;",
        json!([css]),
    );
    assert!(v.is_array(), "no field {css} on {}: {}", b.url(), b.text());
    (v[0].as_str().unwrap().to_owned(), v[1].as_bool().unwrap())
}

/// What every page must be: no wider than the window, no console error. Saves its screenshot.
fn looked_at(b: &Chrome, width: u32, name: &str) {
    looked_at_refusal(b, width, name, None);
}

/// [`looked_at`] for a page the bank answered with an error status on purpose: Chromium logs
/// that answer itself ("Failed to load resource: ... status of 400"); that one message, for
/// this page's address and `status`, is expected. Any other console error is not.
fn looked_at_refusal(b: &Chrome, width: u32, name: &str, status: Option<u16>) {
    let (scroll, inner) = b.widths();
    // A short code in the text (`17-12345678`, `COUNTER-OTP`) is never split over two lines.
    let split = b.script(
        "return Array.from(document.querySelectorAll('code')).filter(c => c.getClientRects().length > 1).map(c => c.textContent);",
        json!([]),
    );
    assert_eq!(split, json!([]), "{name} at {width} px: codes split over lines");
    let shot = screenshot_dir().join(format!("{name}-{width}.png"));
    b.screenshot(&shot);
    assert!(
        scroll <= inner,
        "{name} at {width} px: the page is {scroll} px wide in a {inner} px window (screenshot {})",
        shot.display()
    );
    let url = b.url();
    let expected =
        status.map(|st| format!("{url} - Failed to load resource: the server responded with a status of {st}"));
    let errors: Vec<_> = b
        .console()
        .into_iter()
        .filter(|(level, message)| level == "SEVERE" && expected.as_deref().is_none_or(|e| !message.starts_with(e)))
        .collect();
    assert!(errors.is_empty(), "{name} at {width} px: console errors {errors:?}");
}

fn a_person_uses_the_site_at(width: u32) {
    let mut site = Site::new();
    let base = site.bank.url();
    let b = Chrome::start(width, 900);

    b.open(&format!("{base}/login"));
    assert!(b.text().contains("User name"), "{}", b.text());
    landmarks(&b, "login", false, None);
    looked_at(&b, width, "login");

    b.fill("input[name=user]", "alice");
    b.submit("form[action='/login'] button");
    let challenge = field(&b, "#challenge");
    assert_eq!(field(&b, "#verifier-id"), site.vid, "the page names the bank the code is bound to");
    assert!(b.text().contains("reader-bridge respond"), "{}", b.text());
    looked_at(&b, width, "login-challenge");

    let code = site.login_code(&challenge);
    b.fill("input[name=code]", &code);
    b.submit("form[action='/login/code'] button");
    assert!(b.url().ends_with("/welcome"), "{}", b.url());
    assert!(b.text().contains("Welcome, alice"), "{}", b.text());
    landmarks(&b, "welcome", true, Some("/welcome"));
    looked_at(&b, width, "welcome");

    b.open(&format!("{base}/accounts"));
    let text = b.text();
    assert!(text.contains("ACC-ALICE-EUR") && text.contains("2500.00"), "{text}");
    assert!(text.contains("No transfers yet."), "{text}");
    landmarks(&b, "accounts", true, Some("/accounts"));
    looked_at(&b, width, "accounts");

    b.open(&format!("{base}/transfer"));
    landmarks(&b, "transfer-form", true, Some("/transfer"));
    looked_at(&b, width, "transfer-form");
    b.fill("input[name=to]", "ACC-BOB-EUR");
    b.fill("input[name=payee_name]", "Bob Example");
    // A decimal comma, as many customers type it.
    b.fill("input[name=amount]", "12,34");
    b.submit("form[action='/transfer'] button");
    let (tid, payee) = (field(&b, "#transfer-id"), field(&b, "#payee"));
    assert_eq!(payee, "ACC-BOB-EUR");
    // Verification of payee and every signed field, before the code box.
    assert!(field(&b, "#payee-check").contains("it matches"), "{}", b.text());
    assert_eq!(field(&b, "#source"), "ACC-ALICE-EUR");
    assert_eq!(field(&b, "#payee-name"), "Bob Example");
    let text = b.text();
    assert!(text.find("Name checked").unwrap() < text.find("Code").unwrap(), "{text}");
    assert_eq!(field(&b, "#amount-minor"), "1234");
    looked_at(&b, width, "transfer-sign");
    let challenge = field(&b, "#challenge");
    let vid = site.vid.clone();
    let code = site.tx_code(
        &challenge,
        &TxFields {
            version: paysim_otp::TxVersion::V2,
            verifier_id: vid.as_bytes(),
            transaction_id: tid.as_bytes(),
            amount_minor: 1234,
            currency: b"EUR",
            source: b"ACC-ALICE-EUR",
            payee: payee.as_bytes(),
            payee_name: b"Bob Example",
        },
    );
    b.fill("input[name=code]", &code);
    b.submit("form[action='/transfer/confirm'] button");
    assert!(b.text().contains("The transfer was executed."), "{}", b.text());
    landmarks(&b, "transfer-done", true, None);
    looked_at(&b, width, "transfer-done");

    // The history: date and time, the counterparty, the amount in the Out column.
    b.open(&format!("{base}/accounts"));
    let row = format!("#history tr[data-transfer-id='{tid}']");
    assert_eq!(field(&b, &format!("{row} td.status")), "Executed", "{}", b.text());
    assert_eq!(field(&b, &format!("{row} td.out")), "12.34 EUR");
    assert_eq!(field(&b, &format!("{row} td[data-label=In]")), "");
    assert!(field(&b, &format!("{row} td[data-label=Counterparty]")).contains("ACC-BOB-EUR (Bob Example)"));
    let when = field(&b, &format!("{row} time"));
    assert!(when.len() == 20 && when.ends_with(" UTC") && when.starts_with("20"), "{when}");
    looked_at(&b, width, "accounts-history");

    // Each answer of verification of payee, on the page before the code box; the second
    // confirmation's box only where it is needed.
    for (to, name, result, title) in [
        ("ACC-BOB-EUR", "Bob Example", "match", "Name checked: it matches"),
        ("ACC-BOB-EUR", "Example Bob", "close_match", "Name checked: close match"),
        ("ACC-BOB-EUR", "Mallory Evil", "no_match", "Name checked: NO MATCH"),
        ("ACC-BOB-OLD", "Bob Example", "unavailable", "Name could not be checked"),
    ] {
        b.open(&format!("{base}/transfer"));
        b.fill("input[name=to]", to);
        b.fill("input[name=payee_name]", name);
        b.fill("input[name=amount]", "1.00");
        b.submit("form[action='/transfer'] button");
        let shown = b.script("return document.querySelector('#payee-check').dataset.result", json!([]));
        assert_eq!(shown, json!(result), "{}", b.text());
        let text = b.text();
        let (at_check, at_code) = (text.find(title), text.find("Code"));
        assert!(at_check.is_some() && at_check < at_code, "{title:?} not before the code box: {text}");
        assert_eq!(field(&b, "#payee-name"), name);
        if result == "close_match" {
            assert_eq!(field(&b, "#account-name"), "Bob Example");
        } else {
            assert!(!text.contains("in the name of"), "{text}");
        }
        let has_box = b.script("return !!document.querySelector('#confirm-unverified-payee')", json!([]));
        assert_eq!(has_box, json!(result == "no_match" || result == "unavailable"), "{result}");
        landmarks(&b, "transfer-sign", true, Some("/transfer"));
        looked_at(&b, width, &format!("transfer-sign-{result}"));
    }

    b.open(&format!("{base}/welcome"));
    b.submit("nav form button");
    // The logout form's answer is a new page: wait for its login field before looking.
    b.wait_for_xpath("//input[@name='user']", std::time::Duration::from_secs(30));
    assert!(b.url().ends_with("/login") || b.url().ends_with('/'), "{}", b.url());
    looked_at(&b, width, "logged-out");
    drop(b);
    assert!(Path::new(&screenshot_dir()).join(format!("transfer-done-{width}.png")).exists());
}

/// Logs alice in through the pages (the login itself is checked in [`a_person_uses_the_site_at`]).
fn logged_in(site: &mut Site, width: u32) -> Chrome {
    let b = Chrome::start(width, 900);
    b.open(&format!("{}/login", site.bank.url()));
    b.fill("input[name=user]", "alice");
    b.submit("form[action='/login'] button");
    let code = site.login_code(&field(&b, "#challenge"));
    b.fill("input[name=code]", &code);
    b.submit("form[action='/login/code'] button");
    // The code's answer is a redirect: wait for the page it leads to before looking.
    b.wait_for_xpath("//p[contains(., 'Welcome, alice')]", std::time::Duration::from_secs(30));
    assert!(b.url().ends_with("/welcome"), "{}: {}", b.url(), b.text());
    b
}

/// Fills the transfer form in and sends it.
fn send_transfer_form(b: &Chrome, base: &str, to: &str, name: &str, amount: &str) {
    b.open(&format!("{base}/transfer"));
    b.fill("input[name=to]", to);
    b.fill("input[name=payee_name]", name);
    b.fill("input[name=amount]", amount);
    b.submit("form[action='/transfer'] button");
}

/// Each error page a customer can meet: the sentence beside the field that caused it, what
/// they typed still in the form, the navigation still there; the page that does not exist
/// keeps the navigation too; an ended session leads to the login page, which says so.
fn error_pages_keep_the_navigation_at(width: u32) {
    let mut site = Site::new();
    let base = site.bank.url();
    let b = logged_in(&mut site, width);

    for (case, to, amount, field_css, status, sentence) in [
        (
            "unknown-payee",
            "ACC-NOBODY",
            "5.00",
            "#to",
            422,
            "There is no account ACC-NOBODY that takes EUR. Check the account number.",
        ),
        (
            "too-little-money",
            "ACC-BOB-EUR",
            "999999",
            "#amount",
            409,
            "There is not enough money in ACC-ALICE-EUR for this amount: its balance is 2500.00 EUR.",
        ),
        ("bad-amount", "ACC-BOB-EUR", "12.345", "#amount", 400, "EUR has 2 decimals: you typed 3 decimals."),
        ("bad-number", "ACC-BOB-EUR", "1.234,56", "#amount", 400, "like 12.34 or 12,34 (no thousands separator)"),
    ] {
        send_transfer_form(&b, &base, to, "Bob Example", amount);
        let name = format!("error-{case}");
        let text = b.text();
        assert!(text.contains(sentence), "{case}: {text}");
        assert!(!text.contains("Something went wrong"), "{case}: {text}");
        // Beside the field: its sentence is the one the field names.
        let described = b.script(
            "const f = document.querySelector(arguments[0]); const d = document.getElementById(f.getAttribute('aria-describedby')); return d ? d.textContent : null;",
            json!([field_css]),
        );
        assert!(described.as_str().is_some_and(|d| d.contains(sentence)), "{case}: {described}");
        assert!(typed(&b, field_css).1, "{case}: the field is marked");
        assert_eq!(typed(&b, "#to"), (to.to_owned(), field_css == "#to"), "{case}");
        assert_eq!(typed(&b, "#amount"), (amount.to_owned(), field_css == "#amount"), "{case}");
        assert_eq!(typed(&b, "#payee_name").0, "Bob Example", "{case}");
        landmarks(&b, &name, true, Some("/transfer"));
        looked_at_refusal(&b, width, &name, Some(status));
    }

    // Corrected, the same form goes on to the confirmation page.
    b.fill("input[name=amount]", "12,50");
    b.submit("form[action='/transfer'] button");
    assert_eq!(field(&b, "#amount-minor"), "1250", "{}", b.text());

    b.open(&format!("{base}/no-such-page"));
    assert!(b.text().contains("There is no such page."), "{}", b.text());
    landmarks(&b, "error-404", true, None);
    looked_at_refusal(&b, width, "error-404", Some(404));

    // The session ends (the bank no longer knows the browser's cookie, as after 5 idle
    // minutes): the next page is the login page, which says why.
    b.replace_cookie("bank_session", &"0".repeat(32));
    b.open(&format!("{base}/accounts"));
    assert!(b.url().ends_with("/login?session=ended"), "{}", b.url());
    assert!(b.text().contains("Your session has ended"), "{}", b.text());
    landmarks(&b, "error-session-ended", false, None);
    looked_at(&b, width, "error-session-ended");
}

#[test]
fn error_pages_keep_the_navigation_at_a_phones_width() {
    error_pages_keep_the_navigation_at(360);
}

#[test]
fn error_pages_keep_the_navigation_at_a_desktops_width() {
    error_pages_keep_the_navigation_at(1280);
}

/// A wrong code ends the transfer: the result page says it failed and nothing moved, and the
/// history shows it as failed, never as pending. A login with a wrong code says so on the
/// login form, the name kept.
fn a_refused_code_ends_the_transfer_at(width: u32) {
    let mut site = Site::new();
    let base = site.bank.url();

    let b = Chrome::start(width, 900);
    b.open(&format!("{base}/login"));
    b.fill("input[name=user]", "alice");
    b.submit("form[action='/login'] button");
    b.fill("input[name=code]", "0-00000000");
    b.submit("form[action='/login/code'] button");
    assert!(b.text().contains("The code was not accepted, and you are not logged in."), "{}", b.text());
    assert_eq!(typed(&b, "#user").0, "alice");
    landmarks(&b, "error-login-code", false, None);
    looked_at_refusal(&b, width, "error-login-code", Some(401));
    drop(b);
    // The refused login used a challenge but no counter: the chain is where it was.
    let b = logged_in(&mut site, width);

    send_transfer_form(&b, &base, "ACC-BOB-EUR", "Bob Example", "3.00");
    let tid = field(&b, "#transfer-id");
    // A code in the wrong form first: the same page, the rule beside the field.
    b.fill("input[name=code]", "17-123");
    b.submit("form[action='/transfer/confirm'] button");
    assert!(b.text().contains("COUNTER-OTP, like 17-12345678"), "{}", b.text());
    assert_eq!(field(&b, "#transfer-id"), tid);
    assert!(typed(&b, "#code").1);
    landmarks(&b, "error-code-form", true, Some("/transfer"));
    looked_at_refusal(&b, width, "error-code-form", Some(400));
    // A wrong code: failed, and it says so.
    b.fill("input[name=code]", "0-00000000");
    b.submit("form[action='/transfer/confirm'] button");
    let text = b.text();
    assert!(
        text.contains("The code was not accepted, so this transfer has failed. Nothing was transferred."),
        "{text}"
    );
    assert_eq!(field(&b, "#status"), "Failed: the code was not accepted");
    assert!(!text.contains("Pending") && !text.contains("waiting"), "{text}");
    landmarks(&b, "error-wrong-code", true, None);
    looked_at_refusal(&b, width, "error-wrong-code", Some(401));

    // In the history: failed, not pending; the balance untouched.
    b.submit("nav a[href='/accounts']");
    b.wait_for_xpath("//table[@id='history']", std::time::Duration::from_secs(30));
    let row = format!("#history tr[data-transfer-id='{tid}']");
    assert_eq!(field(&b, &format!("{row} td.status")), "Failed: the code was not accepted", "{}", b.text());
    let text = b.text();
    assert!(!text.contains("Pending"), "a refused transfer shown as pending: {text}");
    assert!(text.contains("2500.00"), "{text}");
    looked_at(&b, width, "history-failed");

    // "Start this transfer again" fills the form in with its details.
    b.open(&format!("{base}/transfer?from=ACC-ALICE-EUR&to=ACC-BOB-EUR&payee_name=Bob%20Example&amount=3.00"));
    assert_eq!(typed(&b, "#to").0, "ACC-BOB-EUR");
    assert_eq!(typed(&b, "#amount").0, "3.00");
}

#[test]
fn a_refused_code_ends_the_transfer_at_a_phones_width() {
    a_refused_code_ends_the_transfer_at(360);
}

#[test]
fn a_refused_code_ends_the_transfer_at_a_desktops_width() {
    a_refused_code_ends_the_transfer_at(1280);
}

#[test]
fn the_site_in_chromium_at_a_phones_width() {
    a_person_uses_the_site_at(360);
}

#[test]
fn the_site_in_chromium_at_a_desktops_width() {
    a_person_uses_the_site_at(1280);
}
