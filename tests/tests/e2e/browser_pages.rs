//! The website in a real browser: headless Chromium (Debian's package) driven over WebDriver
//! logs in, browses, makes a transfer and meets a refusal, at a phone's width (360 px) and a
//! desktop's (1280 px). On every page it checks what a person sees (the texts), that nothing is
//! wider than the window, and that the console shows no error; it saves a screenshot of every
//! page under `target/browser-screenshots/` for a person to look at.
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

/// What every page must be: no wider than the window, no console error. Saves its screenshot.
fn looked_at(b: &Chrome, width: u32, name: &str) {
    looked_at_refusal(b, width, name, None);
}

/// [`looked_at`] for a page the bank answered with an error status on purpose: Chromium logs
/// that answer itself ("Failed to load resource: ... status of 400"); that one message, for
/// this page's address and `status`, is expected. Any other console error is not.
fn looked_at_refusal(b: &Chrome, width: u32, name: &str, status: Option<u16>) {
    let (scroll, inner) = b.widths();
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
    looked_at(&b, width, "login");

    b.fill("input[name=user]", "alice");
    b.click("form[action='/login'] button");
    let challenge = field(&b, "#challenge");
    assert_eq!(field(&b, "#verifier-id"), site.vid, "the page names the bank the code is bound to");
    assert!(b.text().contains("reader-bridge respond"), "{}", b.text());
    looked_at(&b, width, "login-challenge");

    let code = site.login_code(&challenge);
    b.fill("input[name=code]", &code);
    b.click("form[action='/login/code'] button");
    assert!(b.url().ends_with("/welcome"), "{}", b.url());
    assert!(b.text().contains("Welcome, alice"), "{}", b.text());
    looked_at(&b, width, "welcome");

    b.open(&format!("{base}/accounts"));
    let text = b.text();
    assert!(text.contains("ACC-ALICE-EUR") && text.contains("2,500.00") || text.contains("2500.00"), "{text}");
    looked_at(&b, width, "accounts");

    b.open(&format!("{base}/transfer"));
    looked_at(&b, width, "transfer-form");
    b.fill("input[name=to]", "ACC-BOB-EUR");
    b.fill("input[name=payee_name]", "Bob Example");
    b.fill("input[name=amount]", "12.34");
    b.click("form[action='/transfer'] button");
    let (tid, payee) = (field(&b, "#transaction-id"), field(&b, "#payee"));
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
    b.click("form[action='/transfer/confirm'] button");
    assert!(b.text().to_lowercase().contains("executed"), "{}", b.text());
    looked_at(&b, width, "transfer-done");

    // A refusal: an amount with too many decimals.
    b.open(&format!("{base}/transfer"));
    b.fill("input[name=to]", "ACC-BOB-EUR");
    b.fill("input[name=payee_name]", "Bob Example");
    b.fill("input[name=amount]", "1.234");
    b.click("form[action='/transfer'] button");
    assert!(!b.text().contains("executed"), "{}", b.text());
    looked_at_refusal(&b, width, "transfer-refused", Some(400));

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
        b.click("form[action='/transfer'] button");
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
        looked_at(&b, width, &format!("transfer-sign-{result}"));
    }

    b.open(&format!("{base}/welcome"));
    b.click("nav form button");
    // The logout form's answer is a new page: wait for its login field before looking.
    b.wait_for_xpath("//input[@name='user']", std::time::Duration::from_secs(30));
    assert!(b.url().ends_with("/login") || b.url().ends_with('/'), "{}", b.url());
    looked_at(&b, width, "logged-out");
    drop(b);
    assert!(Path::new(&screenshot_dir()).join(format!("transfer-done-{width}.png")).exists());
}

#[test]
fn the_site_in_chromium_at_a_phones_width() {
    a_person_uses_the_site_at(360);
}

#[test]
fn the_site_in_chromium_at_a_desktops_width() {
    a_person_uses_the_site_at(1280);
}
