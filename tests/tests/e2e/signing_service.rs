//! "Sign with my card" end to end: headless Chromium (Debian's package) on the bank's pages
//! over HTTPS, `reader-bridge serve` as the customer's signing service, and the real card
//! (`virtual-card` in a vpcd slot behind pcscd). The test is the person at the service's
//! terminal: it reads the service's prompts on its standard error and types the confirmation
//! and the PIN into its standard input.
//!
//! The relay tests are the "done when" of issue 13: a second origin (a loopback port relaying
//! the real bank's pages byte for byte, `e2e_tests::Relay`) gets a login code from the
//! service that the bank refuses, while the same relay with manual mode (`reader-bridge
//! respond`, the code typed into the relayed page) logs in.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use e2e_tests::webdriver::Chrome;
use e2e_tests::{bin, lines_of, wait_line, BankServer as Bank, CardSpec, Cut, Relay, TestCard, WAIT};
use serde_json::json;

/// A running `reader-bridge serve`: its standard input (the person's keyboard) and its
/// standard error (the person's screen), line by line. Killed on drop.
struct Service {
    child: Child,
    stdin: ChildStdin,
    screen: mpsc::Receiver<String>,
    port: u16,
}

impl Service {
    /// `reader-bridge --state-dir STATE [--reader R] serve --listen 127.0.0.1:PORT`, once it
    /// says it listens.
    fn start(state: &std::path::Path, reader: Option<&str>, port: u16) -> Service {
        let mut cmd = Command::new(bin("reader-bridge"));
        cmd.arg("--state-dir").arg(state).args(["--wait", "5"]);
        if let Some(r) = reader {
            cmd.args(["--reader", r]);
        }
        let mut child = cmd
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env_remove("PAYSIM_SERVER")
            .env_remove("PAYSIM_CA")
            .env_remove("PAYSIM_READER")
            .env_remove("PAYSIM_BRIDGE_STATE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start reader-bridge serve");
        let out = lines_of(child.stdout.take().unwrap());
        let screen = lines_of(child.stderr.take().unwrap());
        let stdin = child.stdin.take().unwrap();
        let line = wait_line(&out, "reader-bridge serve: listening on http://127.0.0.1:", "reader-bridge serve");
        let port = line
            .trim_start_matches("reader-bridge serve: listening on http://127.0.0.1:")
            .split(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Service { child, stdin, screen, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the service shows up to and including the first line containing `needle`.
    fn read_until(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match self.screen.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen.join("\n");
                    }
                }
                Err(e) => panic!(
                    "reader-bridge serve showed no {needle:?} within {WAIT:?} ({e}); it showed:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// The person types `line` and Enter.
    fn type_line(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush()).expect("the service's stdin is closed");
    }

    /// The person confirms the request the service shows (up to its question, returned) and
    /// types the PIN at the prompt.
    fn confirm_with_pin(&mut self, pin: &str) -> String {
        let shown = self.read_until("? [y/N]");
        self.type_line("y");
        self.read_until("PIN for the card in");
        self.type_line(pin);
        shown
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port for the service (the bank's pages must name it before it starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The card, the bank on HTTPS with alice (the card's token, 1000.00 EUR) and bob, whose
/// pages call the signing service on `port`, and a bridge state directory set up for it.
struct World {
    card: TestCard,
    bank: Bank,
    state: std::path::PathBuf,
}

fn world(service_port: u16) -> World {
    let card = TestCard::personalized(&CardSpec::default());
    let db = card.dir.path().join("bank.sqlite3");
    let service = format!("http://127.0.0.1:{service_port}");
    let bank = Bank::start_tls_with(&db, 0, &["--signing-service", &service]);
    let (db, token) = (db.to_str().unwrap(), card.token_path.to_str().unwrap());
    for args in [
        vec!["user", "add", "alice"],
        vec!["user", "add", "bob"],
        vec!["token", "enroll", "--user", "alice", "--token-file", token],
        vec![
            "account",
            "open",
            "--user",
            "alice",
            "--number",
            "ACC-ALICE-EUR",
            "--currency",
            "EUR",
            "--holder",
            "Alice Example",
        ],
        vec![
            "account",
            "open",
            "--user",
            "bob",
            "--number",
            "ACC-BOB-EUR",
            "--currency",
            "EUR",
            "--holder",
            "Bob Example",
        ],
        vec!["account", "fund", "--account", "ACC-ALICE-EUR", "--amount", "1000.00", "--currency", "EUR"],
    ] {
        let out = e2e_tests::bank_tools(&[&args[..], &["--db", db, "--master-key-beside-db"]].concat(), None);
        e2e_tests::assert_success(&format!("bank-tools {args:?}"), &out);
    }
    let state = card.dir.path().join("bridge-state");
    e2e_tests::setup_bridge_for(&state, &bank);
    World { card, bank, state }
}

impl World {
    fn balance(&self, user: &str, number: &str) -> i64 {
        bank_server::ops::accounts(&self.bank.db, user)
            .unwrap()
            .into_iter()
            .find(|a| a.number == number)
            .unwrap()
            .balance_minor
    }

    fn next_counter(&self) -> u64 {
        let out = Command::new(bin("reader-bridge"))
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--reader", &self.card.reader(), "status"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("next counter:"))
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or_else(|| panic!("no counter in {text}"))
    }
}

/// Whether the page's script showed the "Sign with my card" button.
fn sign_button_shown(b: &Chrome) -> bool {
    b.script("const e = document.getElementById('sign-service'); return !!e && !e.hidden;", json!([])) == json!(true)
}

fn text_of(b: &Chrome, css: &str) -> String {
    let v = b.script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([css]));
    v.as_str().unwrap_or_else(|| panic!("no {css} on {}: {}", b.url(), b.text())).trim().to_owned()
}

/// Opens `site`/login and asks for alice's challenge; returns the challenge shown.
fn start_login(b: &Chrome, site: &str) -> String {
    b.open(&format!("{site}/login"));
    b.fill("input[name=user]", "alice");
    b.click("form[action='/login'] button");
    // The click sends the form; the next page is there once its challenge is.
    b.wait_for_xpath("//*[@id='challenge']", WAIT);
    text_of(b, "#challenge")
}

#[test]
fn the_banks_page_logs_in_and_transfers_through_the_signing_service() {
    let port = free_port();
    let w = world(port);
    let mut service = Service::start(&w.state, Some(&w.card.reader()), port);
    assert_eq!(service.port, port);
    let site = w.bank.url();
    let b = Chrome::start_accepting_test_certificates(1280, 900);

    let challenge = start_login(&b, &site);
    assert!(sign_button_shown(&b), "the script did not show the button: {}", b.text());
    // The person says no at the service's terminal: the page says so, nothing is signed, and
    // the button can be used again.
    let before = w.next_counter();
    b.click("#sign-with-card");
    service.read_until("? [y/N]");
    service.type_line("n");
    b.wait_for_xpath("//p[@id='sign-status'][contains(., 'declined at the card')]", WAIT);
    assert!(b.url().ends_with("/login"), "{}", b.url());
    assert_eq!(w.next_counter(), before, "a declined request drew a code");
    // Chromium logs the refusal's status itself; that one message, for the service, is expected.
    let refused =
        format!("{}/v1/sign - Failed to load resource: the server responded with a status of 403", service.url());
    let unexpected: Vec<_> =
        b.console().into_iter().filter(|(level, m)| level == "SEVERE" && !m.starts_with(&refused)).collect();
    assert!(unexpected.is_empty(), "console errors: {unexpected:?}");
    b.click("#sign-with-card");
    // The service names the origin that asked and the user, from the bank, before the PIN.
    let shown = service.confirm_with_pin("1234");
    for needle in [
        format!("page that asked:    {site}"),
        "user:               alice".to_owned(),
        format!("bank (verifier id): {site}"),
        challenge.replace(' ', ""),
        format!("Sign this login for {site}?"),
    ] {
        assert!(shown.contains(&needle), "{needle:?} not shown by the service:\n{shown}");
    }
    assert!(!shown.contains("WARNING"), "{shown}");
    b.wait_for_xpath("//p[contains(., 'Welcome, alice')]", WAIT);
    assert!(b.url().ends_with("/welcome"), "{}", b.url());

    b.open(&format!("{site}/transfer"));
    b.fill("input[name=to]", "ACC-BOB-EUR");
    b.fill("input[name=payee_name]", "Bob Example");
    b.fill("input[name=amount]", "12.34");
    b.click("form[action='/transfer'] button");
    b.wait_for_xpath("//*[@id='transfer-id']", WAIT);
    let tid = text_of(&b, "#transfer-id");
    assert!(sign_button_shown(&b), "{}", b.text());
    b.click("#sign-with-card");
    let shown = service.confirm_with_pin("1234");
    for needle in [
        format!("page that asked:    {site}"),
        format!("bank (verifier id): {site}"),
        format!("transfer id:        {tid}"),
        "from account:       ACC-ALICE-EUR".to_owned(),
        "payee account:      ACC-BOB-EUR".to_owned(),
        "payee's name:       Bob Example".to_owned(),
        "amount:             12.34 EUR (1234 minor units)".to_owned(),
        format!("Sign this transfer for {site}?"),
    ] {
        assert!(shown.contains(&needle), "{needle:?} not shown by the service:\n{shown}");
    }
    b.wait_for_xpath("//b[contains(., 'The transfer was executed.')]", WAIT);
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 1234);
    assert_eq!(w.balance("bob", "ACC-BOB-EUR"), 1234);
    let console: Vec<_> = b.console().into_iter().filter(|(level, _)| level == "SEVERE").collect();
    assert!(console.is_empty(), "console errors: {console:?}");
}

#[test]
fn a_relay_that_logs_in_through_manual_mode_gets_only_a_refused_code_from_the_signing_service() {
    let port = free_port();
    let w = world(port);
    let mut service = Service::start(&w.state, Some(&w.card.reader()), port);
    // A second origin: another loopback port serving the bank's own pages, relayed to the real
    // bank, challenge and all (the perfect look-alike).
    let relay = Relay::start(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), w.bank.port, Cut::Nothing);
    let lookalike = format!("https://127.0.0.1:{}", relay.port);
    let real = w.bank.url();

    // Through the signing service: the code is bound to the look-alike's origin.
    let b = Chrome::start_accepting_test_certificates(1280, 900);
    start_login(&b, &lookalike);
    assert!(sign_button_shown(&b), "{}", b.text());
    let before = w.next_counter();
    b.click("#sign-with-card");
    // A careless person confirms despite the warning.
    let shown = service.confirm_with_pin("1234");
    assert!(shown.contains(&format!("page that asked:    {lookalike}")), "{shown}");
    assert!(shown.contains(&format!("bank (verifier id): {lookalike}")), "{shown}");
    assert!(
        shown.contains(&format!("WARNING: this page is not the bank this bridge is set up for ({real})")),
        "{shown}"
    );
    let signed = service.read_until("signed: code with counter");
    assert!(signed.contains(&format!("handed to the page at {lookalike}")), "{signed}");
    // The relayed page submitted it to the real bank, which refused it.
    b.wait_for_xpath("//p[contains(., 'The code was not accepted')]", WAIT);
    assert!(!b.url().ends_with("/welcome"), "{}", b.url());
    assert_eq!(w.next_counter(), before + 1, "the card did sign (for the look-alike)");
    drop(b);

    // For comparison, the same relay with manual mode: the person copies the challenge from
    // the relayed page into `reader-bridge respond`, which signs for the pinned (real) bank,
    // and types the code back into the relayed page; the bank accepts it.
    let b = Chrome::start_accepting_test_certificates(1280, 900);
    let challenge = start_login(&b, &lookalike);
    let mut respond = Command::new(bin("reader-bridge"))
        .arg("--state-dir")
        .arg(&w.state)
        .args(["--reader", &w.card.reader(), "--pin-stdin", "respond", "--yes", "--challenge", &challenge])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    respond.stdin.take().unwrap().write_all(b"1234\n").unwrap();
    let out = respond.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "respond failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let code = stdout.lines().find_map(|l| l.strip_prefix("type into the page: ")).unwrap().to_owned();
    b.fill("input[name=code]", &code);
    b.click("form[action='/login/code'] button");
    b.wait_for_xpath("//p[contains(., 'Welcome, alice')]", WAIT);
    assert!(b.url().starts_with(&lookalike), "logged in through the relay: {}", b.url());
}

/// `curl -s -i ARGS URL`: (status, headers and body as text).
fn curl(args: &[&str], url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn curl_without_origin_or_with_a_rebinding_host_is_refused() {
    // No card needed: these are refused before anything is fetched or asked.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    let bank = Bank::start_tls(&db, 0);
    let state = dir.path().join("bridge-state");
    e2e_tests::setup_bridge_for(&state, &bank);
    let service = Service::start(&state, None, 0);
    let url = format!("{}/v1/sign", service.url());
    let body = format!(r#"{{"challenge_id":"{}"}}"#, "0".repeat(32));
    let json = ["-X", "POST", "-H", "Content-Type: application/json", "--data", &body];

    let (st, text) = curl(&json, &url);
    assert_eq!(st, 403, "{text}");
    assert!(text.contains(r#""error":"origin_required""#), "{text}");
    assert!(!text.to_ascii_lowercase().contains("access-control-allow-origin"), "{text}");

    let rebound = format!("Host: rebind.example:{}", service.port);
    let origin = format!("Origin: http://rebind.example:{}", service.port);
    let (st, text) = curl(&[&json[..], &["-H", &rebound, "-H", &origin]].concat(), &url);
    assert_eq!(st, 421, "{text}");
    assert!(text.contains(r#""error":"host_not_allowed""#), "{text}");

    // A preflight as Chromium sends it for a page on the internet asking a loopback service.
    let (st, text) = curl(
        &[
            "-X",
            "OPTIONS",
            "-H",
            "Origin: https://bank.example",
            "-H",
            "Access-Control-Request-Method: POST",
            "-H",
            "Access-Control-Request-Headers: content-type",
            "-H",
            "Access-Control-Request-Private-Network: true",
        ],
        &url,
    );
    assert_eq!(st, 204, "{text}");
    let lower = text.to_ascii_lowercase();
    for h in [
        "access-control-allow-origin: https://bank.example",
        "access-control-allow-methods: post",
        "access-control-allow-headers: content-type",
        "access-control-allow-private-network: true",
        "vary: origin",
    ] {
        assert!(lower.contains(h), "{h} missing in\n{text}");
    }
    drop(bank);
}
