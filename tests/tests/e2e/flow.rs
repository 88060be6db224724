//! The whole system end to end, through the real binaries: `virtual-card` in a vpcd slot
//! behind the real pcscd, `bank-server serve` on 127.0.0.1 with a fresh SQLite database, and
//! `reader-bridge`. Each test has its own card state, database and bridge state directory.
//!
//! The operator sets the bank up with `bank-tools` (user add, token enroll from the card's
//! personalization output, account open and fund) against the database while the server
//! runs. Processes are waited on by their readiness lines, by pcscd's reader events, and by
//! their exit: never by sleeping.

use e2e_tests::{
    bin, hidden, lines_of, wait_line, wait_line_containing, BankServer as Bank, Browser, CardSpec, Cut, Relay, Slot,
    TestCard, WAIT,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

// ---------------------------------------------------------------------------------------
// One test's world
// ---------------------------------------------------------------------------------------

/// One test's world: a personalized card in a vpcd slot, the bank with alice (enrolled with
/// the card's token file, ACC-ALICE-EUR holding 1000.00 EUR) and bob (ACC-BOB-EUR, empty),
/// and a bridge state directory.
pub(crate) struct World {
    pub(crate) card: TestCard,
    pub(crate) bank: Bank,
    pub(crate) state_dir: PathBuf,
    /// The bridge's `--server`: the bank's public URL.
    pub(crate) server: String,
}

/// The usual world: the bank serves HTTPS with a CA of its own, which the bridge trusts.
fn world() -> World {
    world_with(|db| Bank::start_tls(db, 0))
}

/// A world whose bank is started by `start` (given the database path), with the bridge set
/// up for it.
fn world_with(start: impl FnOnce(&Path) -> Bank) -> World {
    let w = world_unpinned(start);
    w.set_up();
    w
}

/// As [`world_with`], without `reader-bridge setup` yet (a test with a relay in front of the
/// bank sets the bridge up once the relay answers: `setup` checks that the bank does).
pub(crate) fn world_unpinned(start: impl FnOnce(&Path) -> Bank) -> World {
    let card = TestCard::personalized(&CardSpec::default());
    let db = card.dir.path().join("bank.sqlite3");
    let bank = start(&db);
    // The operator sets the bank up with `bank-tools` while the server runs.
    let db_arg = db.to_str().unwrap();
    let token_arg = card.token_path.to_str().unwrap();
    for (args, says) in [
        (vec!["user", "add", "alice"], "added user alice".to_owned()),
        (vec!["user", "add", "bob"], "added user bob".to_owned()),
        (
            vec!["token", "enroll", "--user", "alice", "--token-file", token_arg],
            format!(
                "enrolled token {} for user alice (next counter 0, transaction context version 2)",
                card.token.serial
            ),
        ),
        (
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
            "opened account ACC-ALICE-EUR (EUR) for user alice, in the name of Alice Example".to_owned(),
        ),
        (
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
            "opened account ACC-BOB-EUR (EUR) for user bob, in the name of Bob Example".to_owned(),
        ),
        (
            vec!["account", "fund", "--account", "ACC-ALICE-EUR", "--amount", "1000.00", "--currency", "EUR"],
            "funded account ACC-ALICE-EUR with 1000.00 EUR; balance now 1000.00 EUR".to_owned(),
        ),
    ] {
        let out = e2e_tests::bank_tools(&[&args[..], &["--db", db_arg, "--master-key-beside-db"]].concat(), None);
        e2e_tests::assert_success(&format!("bank-tools {args:?}"), &out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&says), "bank-tools {args:?} said {stdout:?}, not {says:?}");
    }
    let state_dir = card.dir.path().join("bridge-state");
    let server = e2e_tests::bridge::bank_address(&bank);
    World { card, bank, state_dir, server }
}

impl World {
    /// `reader-bridge setup` for this world's bank (the harness's one place for it).
    pub(crate) fn set_up(&self) {
        let server = e2e_tests::setup_bridge_for(&self.state_dir, &self.bank);
        assert_eq!(server, self.server);
    }

    /// The bridge on this world's state directory (set up for the bank by `world_with`),
    /// with the pinned address given as --server too, as a person's shell alias would.
    pub(crate) fn bridge_cmd(&self, args: &[&str]) -> Command {
        self.bridge_cmd_at(Some(&self.server), args)
    }

    /// The bridge given `--server SERVER` (or none: the pinned bank only).
    fn bridge_cmd_at(&self, server: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("reader-bridge"));
        if let Some(server) = server {
            cmd.arg("--server").arg(server);
        }
        cmd.arg("--reader")
            .arg(self.card.reader())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--wait", "5", "--pin-stdin"])
            .args(args)
            .env_remove("PAYSIM_SERVER")
            .env_remove("PAYSIM_CA")
            .env_remove("PAYSIM_READER")
            .env_remove("PAYSIM_BRIDGE_STATE_DIR");
        cmd
    }

    /// Runs the bridge with `stdin` and returns its output.
    pub(crate) fn bridge(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .bridge_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start reader-bridge");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub(crate) fn bridge_ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.bridge(args, stdin);
        assert!(out.status.success(), "reader-bridge {args:?} failed: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn login(&self) {
        let out = self.bridge_ok(&["login", "--user", "alice"], "1234\n");
        assert!(out.contains("logged in as alice"), "{out}");
    }

    pub(crate) fn balance(&self, user: &str, number: &str) -> i64 {
        bank_server::ops::accounts(&self.bank.db, user)
            .unwrap()
            .into_iter()
            .find(|a| a.number == number)
            .unwrap()
            .balance_minor
    }

    /// The session token the bridge stored at login.
    pub(crate) fn session_token(&self) -> String {
        let text = std::fs::read_to_string(self.state_dir.join("session.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["token"].as_str().unwrap().to_owned()
    }

    /// `reader-bridge respond ... --yes`: the counter and code it prints.
    fn respond(&self, args: &[&str], pin: &str) -> (u64, String) {
        let mut all = vec!["respond", "--yes"];
        all.extend_from_slice(args);
        let out = self.bridge_ok(&all, &format!("{pin}\n"));
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix("type into the page: "))
            .unwrap_or_else(|| panic!("no code in {out}"));
        let (counter, otp) = line.split_once('-').unwrap();
        (counter.parse().unwrap(), otp.to_owned())
    }

    pub(crate) fn books_ok(&self) {
        let books = bank_server::ops::check_books(&self.bank.db).unwrap();
        assert!(books.problems.is_empty(), "{:?}", books.problems);
    }
}

pub(crate) fn describe(out: &Output) -> String {
    format!(
        "{} \nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

// ---------------------------------------------------------------------------------------
// The bank's JSON API, for what the bridge does not do (replays, crossing codes)
// ---------------------------------------------------------------------------------------

pub(crate) fn api(
    w: &World,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let url = format!("{}/api/v1{path}", w.bank.url());
    let mut req = match method {
        "GET" => w.bank.client().get(url),
        _ => w.bank.client().post(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

// ---------------------------------------------------------------------------------------
// The flows
// ---------------------------------------------------------------------------------------

#[test]
fn a_bridge_without_the_banks_ca_refuses_the_bank() {
    let w = world();
    let state = w.card.dir.path().join("state-without-ca");
    let out = Command::new(bin("reader-bridge"))
        .arg("--state-dir")
        .arg(&state)
        .args(["setup", "--server", &w.server])
        .env_remove("PAYSIM_SERVER")
        .env_remove("PAYSIM_CA")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 36, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not trusted") && err.contains("--ca"), "{err}");
    assert!(!state.join("bank.json").exists(), "nothing was pinned");
    // The same bank with its CA: set up, and a login works over TLS.
    w.login();
}

#[test]
fn a_card_another_program_holds_is_refused_with_exit_14_and_listed_as_busy() {
    let w = world();
    // Another program holding the card the way the bridge does: an exclusive connection.
    let holder = card_link::PcscCard::connect(&w.card.reader(), std::time::Duration::from_secs(5)).unwrap();
    assert_eq!(holder.sharing(), card_link::Sharing::Exclusive);
    let started = std::time::Instant::now();
    let out = w.bridge(&["status"], "");
    assert_eq!(code(&out), 14, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another program") && err.contains(&w.card.reader()), "{err}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(5), "the bridge waited its --wait 5 first");
    // `readers` only looks (shared): it names the card as busy and still lists the reader.
    let out = w.bridge(&["readers"], "");
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains(&w.card.reader())).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("in use by another program"), "{text}");
    // Once the other program lets go, the bridge gets the card at once.
    drop(holder);
    let status = w.bridge_ok(&["status"], "");
    assert!(status.contains(w.card.token.serial.as_str()), "{status}");
}

#[test]
fn personalize_enroll_login_transfer_then_balances_and_history_are_right() {
    let w = world();
    assert!(w.server.starts_with("https://127.0.0.1:"), "the whole flow runs over TLS: {}", w.server);
    let status = w.bridge_ok(&["status"], "");
    assert!(status.contains(w.card.token.serial.as_str()), "{status}");
    assert!(status.contains("next counter:    0"), "{status}");

    // `readers` names the card in its reader (the other slot may hold another test's card).
    let readers = w.bridge_ok(&["readers"], "");
    let ours = format!("{}: PAYSIM card {}", w.card.reader(), w.card.token.serial);
    assert!(readers.lines().any(|l| l == ours), "{readers}");
    // A reader that does not exist: exit 10, and the message lists the readers there are.
    let out = w.bridge_cmd(&["status"]).arg("--reader").arg("No Such Reader").output().unwrap();
    assert_eq!(code(&out), 10, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&w.card.reader()), "{}", describe(&out));

    // Before login the bank refuses the browse pages.
    let out = w.bridge(&["accounts"], "");
    assert_eq!(code(&out), 33, "{}", describe(&out));

    w.login();
    let accounts = w.bridge_ok(&["accounts"], "");
    assert!(accounts.contains("ACC-ALICE-EUR") && accounts.contains("1000.00"), "{accounts}");

    let out = w.bridge_ok(
        &[
            "transfer",
            "--to",
            "ACC-BOB-EUR",
            "--amount",
            "12.34",
            "--currency",
            "EUR",
            "--payee-name",
            "Bob Example",
            "--yes",
        ],
        "1234\n",
    );
    assert!(out.contains("The card will sign this transfer"), "{out}");
    assert!(out.contains("12.34 EUR (1234 minor units)"), "{out}");
    assert!(out.contains(&format!("bank (verifier id): {}", w.bank.url())), "{out}");
    assert!(out.contains("executed: 12.34 EUR from ACC-ALICE-EUR to ACC-BOB-EUR"), "{out}");

    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 1234);
    assert_eq!(w.balance("bob", "ACC-BOB-EUR"), 1234);
    let accounts = w.bridge_ok(&["accounts"], "");
    assert!(accounts.contains("987.66"), "{accounts}");
    let history = w.bridge_ok(&["history"], "");
    assert!(history.contains("ACC-ALICE-EUR -> ACC-BOB-EUR") && history.contains("executed"), "{history}");
    assert_eq!(w.bridge_ok(&["pending"], "").trim(), "no pending transfers");
    // Two codes were used: the login's (counter 0) and the transfer's (counter 1).
    assert!(w.bridge_ok(&["status"], "").contains("next counter:    2"));

    // More than alice holds: exit 32, the reason in words, nothing moved, nothing pending.
    let out = w.bridge(
        &[
            "transfer",
            "--to",
            "ACC-BOB-EUR",
            "--amount",
            "5000.00",
            "--currency",
            "EUR",
            "--payee-name",
            "Bob Example",
            "--yes",
        ],
        "1234\n",
    );
    assert_eq!(code(&out), 32, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("insufficient funds"), "{}", describe(&out));
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 1234);
    assert_eq!(w.balance("bob", "ACC-BOB-EUR"), 1234);
    assert_eq!(w.bridge_ok(&["pending"], "").trim(), "no pending transfers");
    w.books_ok();
}

#[test]
fn wrong_pin_three_times_blocks_and_the_puk_unblocks() {
    let w = world();
    let out = w.bridge(&["login", "--user", "alice"], "0000\n");
    assert_eq!(code(&out), 20, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 tries left"), "{}", describe(&out));
    let out = w.bridge(&["login", "--user", "alice"], "0000\n");
    assert_eq!(code(&out), 20, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 try left"), "{}", describe(&out));
    let out = w.bridge(&["login", "--user", "alice"], "0000\n");
    assert_eq!(code(&out), 21, "{}", describe(&out));
    // Blocked: even the right PIN is not tried.
    let out = w.bridge(&["login", "--user", "alice"], "1234\n");
    assert_eq!(code(&out), 21, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PIN is blocked"), "{}", describe(&out));
    assert!(w.bridge_ok(&["status"], "").contains("PIN tries left:  0"));

    // A wrong PUK costs a PUK try; the right one unblocks and sets the new PIN.
    let out = w.bridge(&["unblock"], "00000000\n4321\n4321\n");
    assert_eq!(code(&out), 20, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong PUK: 9 tries left"), "{}", describe(&out));
    w.bridge_ok(&["unblock"], "12345678\n4321\n4321\n");
    assert!(w.bridge_ok(&["status"], "").contains("PIN tries left:  3"));
    let out = w.bridge(&["login", "--user", "alice"], "1234\n");
    assert_eq!(code(&out), 20, "the old PIN is gone: {}", describe(&out));
    w.bridge_ok(&["login", "--user", "alice"], "4321\n");

    // The person changes the PIN; mistyped confirmations are refused before the card.
    let out = w.bridge(&["change-pin"], "4321\n5678\n5679\n");
    assert_eq!(code(&out), 2, "{}", describe(&out));
    w.bridge_ok(&["change-pin"], "4321\n5678\n5678\n");
    let out = w.bridge(&["login", "--user", "alice"], "4321\n");
    assert_eq!(code(&out), 20, "{}", describe(&out));
    w.bridge_ok(&["login", "--user", "alice"], "5678\n");

    // At a terminal (a pseudo-terminal from util-linux `script`, without --pin-stdin) the PIN
    // prompt does not echo: what the person types after the prompt is not on the screen.
    // (Typed before the prompt, any terminal echoes it: so the test types when it sees it.)
    w.bridge_ok(&["change-pin"], "5678\n90817263\n90817263\n");
    let line = format!(
        "{} --server {} --reader '{}' --state-dir {} --wait 5 login --user alice",
        bin("reader-bridge").display(),
        w.server,
        w.card.reader(),
        w.state_dir.display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run `script` (util-linux)");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut pty_out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = std::io::Read::read(&mut pty_out, &mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(&screen).contains("PIN for the card in") {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(chunk) => screen.extend_from_slice(&chunk),
            Err(e) => panic!("no PIN prompt on the terminal ({e}): {}", String::from_utf8_lossy(&screen)),
        }
    }
    let mut keyboard = child.stdin.take().unwrap();
    keyboard.write_all(b"90817263\n").unwrap();
    drop(keyboard);
    let status = child.wait().unwrap();
    screen.extend(rx.iter().flatten());
    let screen = String::from_utf8_lossy(&screen);
    assert!(status.success(), "{screen}");
    assert!(screen.contains("logged in as alice"), "{screen}");
    assert!(!screen.contains("90817263"), "the PIN was echoed: {screen}");
}

#[test]
fn a_replayed_login_code_is_refused() {
    let w = world();
    let (s, ch) = api(&w, "POST", "/login/challenge", None, Some(serde_json::json!({"user": "alice"})));
    assert_eq!(s, 200, "{ch}");
    let (counter, otp) = w.respond(&["--challenge", ch["challenge_hex"].as_str().unwrap()], "1234");
    let submit = |cid: &str| {
        api(&w, "POST", "/login", None, Some(serde_json::json!({"challenge_id": cid, "counter": counter, "otp": otp})))
    };
    let (s, body) = submit(ch["challenge_id"].as_str().unwrap());
    assert_eq!(s, 200, "{body}");
    // The same answer again: the challenge is used up.
    let (s, body) = submit(ch["challenge_id"].as_str().unwrap());
    assert_eq!((s, body["error"].as_str()), (401, Some("auth_failed")));
    // The same counter and code on a fresh challenge: a replay.
    let (_, ch2) = api(&w, "POST", "/login/challenge", None, Some(serde_json::json!({"user": "alice"})));
    let (s, body) = submit(ch2["challenge_id"].as_str().unwrap());
    assert_eq!((s, body["error"].as_str()), (401, Some("auth_failed")));
}

#[test]
fn a_code_for_one_transfer_does_not_confirm_another() {
    let w = world();
    w.login();
    let token = w.session_token();
    let create = |id: &str, amount: u64| {
        let (s, body) = api(
            &w,
            "POST",
            "/transfers",
            Some(&token),
            Some(
                serde_json::json!({"transfer_id": id, "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR", "amount_minor": amount, "currency": "EUR", "payee_name": "Bob Example"}),
            ),
        );
        assert_eq!(s, 201, "{body}");
        body
    };
    let a = create("t-a", 100);
    let b = create("t-b", 90_000);
    // The card signs transfer A (its challenge and fields) ...
    let (counter, otp) = w.respond(
        &[
            "--challenge",
            a["challenge_hex"].as_str().unwrap(),
            "--transaction-id",
            "t-a",
            "--amount-minor",
            "100",
            "--currency",
            "EUR",
            "--source",
            "ACC-ALICE-EUR",
            "--payee",
            "ACC-BOB-EUR",
            "--payee-name",
            "Bob Example",
        ],
        "1234",
    );
    // ... and that code cannot confirm B, with A's challenge or with B's (B's last: a refused
    // code for a transfer's own challenge ends that transfer, one for another's does not).
    for cid in [&a["challenge_id"], &b["challenge_id"]] {
        let (s, body) = api(
            &w,
            "POST",
            "/transfers/t-b/confirm",
            Some(&token),
            Some(serde_json::json!({"challenge_id": cid, "counter": counter, "otp": otp})),
        );
        assert_eq!((s, body["error"].as_str()), (401, Some("auth_failed")), "{body}");
    }
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000);
    // It confirms A.
    let (s, body) = api(
        &w,
        "POST",
        "/transfers/t-a/confirm",
        Some(&token),
        Some(serde_json::json!({"challenge_id": a["challenge_id"], "counter": counter, "otp": otp})),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["transfer"]["status"], "executed");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 100);
    w.books_ok();
}

#[test]
fn desync_codes_never_sent_are_absorbed_but_not_twenty() {
    let w = world();
    let challenge = "00".repeat(32);
    // Five codes that never reach the bank.
    for _ in 0..5 {
        w.respond(&["--challenge", &challenge], "1234");
    }
    w.login();
    assert!(w.bridge_ok(&["status"], "").contains("next counter:    6"));
    // Twenty more: the next code is outside the bank's window of 20.
    for _ in 0..20 {
        w.respond(&["--challenge", &challenge], "1234");
    }
    let out = w.bridge(&["login", "--user", "alice"], "1234\n");
    assert_eq!(code(&out), 31, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the bank refused the one-time code"), "{}", describe(&out));
}

/// Starts `reader-bridge transfer` and waits until it asks for the PIN (the card is open, no
/// request has gone to the bank yet); returns the running child.
fn transfer_until_pin_prompt(w: &World, amount: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = w
        .bridge_cmd(&[
            "transfer",
            "--to",
            "ACC-BOB-EUR",
            "--amount",
            amount,
            "--currency",
            "EUR",
            "--payee-name",
            "Bob Example",
            "--yes",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    wait_line(&stderr, "PIN for the card", "reader-bridge transfer");
    (child, stderr)
}

fn finish(mut child: Child, stderr: mpsc::Receiver<String>, stdin: &str) -> (i32, String, String) {
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err: Vec<String> = stderr.try_iter().collect();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), err.join("\n"))
}

#[test]
fn card_removed_mid_transfer_and_bank_restarted_then_retry_moves_money_exactly_once() {
    let mut w = world();
    w.login();

    // The card is pulled while the bridge waits for the PIN: the bridge then records the
    // transfer id, creates the transfer at the bank, and fails at the card.
    let (child, stderr) = transfer_until_pin_prompt(&w, "25.00");
    w.card.process().kill();
    let (status, stdout, err) = finish(child, stderr, "1234\n");
    assert_eq!(status, 12, "stdout: {stdout}\nstderr: {err}");
    assert!(err.contains("run the same transfer command again"), "{err}");
    let pending = w.bridge_ok(&["pending"], "");
    let id = pending.split_whitespace().next().unwrap().to_owned();
    assert!(id.starts_with("tx-"), "{pending}");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000);

    // The bank dies hard and comes back; the card comes back.
    w.bank.restart();
    w.card.process().restart().unwrap();

    let out = w.bridge_ok(
        &[
            "transfer",
            "--to",
            "ACC-BOB-EUR",
            "--amount",
            "25.00",
            "--currency",
            "EUR",
            "--payee-name",
            "Bob Example",
            "--yes",
        ],
        "1234\n",
    );
    assert!(out.contains(&format!("resuming transfer {id}")), "{out}");
    assert!(out.contains(&format!("transfer {id} executed")), "{out}");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 2500);
    assert_eq!(w.balance("bob", "ACC-BOB-EUR"), 2500);
    let token = w.session_token();
    let (_, history) = api(&w, "GET", "/transfers", Some(&token), None);
    let transfers = history["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 1, "{history}");
    assert_eq!(transfers[0]["transfer_id"], id.as_str());
    w.books_ok();
}

#[test]
fn bank_killed_mid_transfer_then_retry_moves_money_exactly_once() {
    let mut w = world();
    w.login();
    let (child, stderr) = transfer_until_pin_prompt(&w, "7.50");
    w.bank.kill();
    let (status, stdout, err) = finish(child, stderr, "1234\n");
    assert_eq!(status, 30, "stdout: {stdout}\nstderr: {err}");
    assert!(err.contains("unreachable"), "{err}");
    assert!(w.bridge_ok(&["pending"], "").starts_with("tx-"));

    w.bank.restart();
    let out = w.bridge_ok(
        &[
            "transfer",
            "--to",
            "ACC-BOB-EUR",
            "--amount",
            "7.50",
            "--currency",
            "EUR",
            "--payee-name",
            "Bob Example",
            "--yes",
        ],
        "1234\n",
    );
    assert!(out.contains("resuming transfer"), "{out}");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 750);
    // Running the same command once more is a new, second payment (the first one is known).
    w.bridge_ok(
        &[
            "transfer",
            "--to",
            "ACC-BOB-EUR",
            "--amount",
            "7.50",
            "--currency",
            "EUR",
            "--payee-name",
            "Bob Example",
            "--yes",
        ],
        "1234\n",
    );
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 1500);
    w.books_ok();
}

#[test]
fn bank_executes_but_the_answer_is_lost_then_bank_restarts_and_the_retry_pays_once() {
    // The bridge talks to the bank through the relay; the bank's public URL (its verifier id)
    // is the relay's, so the codes the card signs are the ones the bank expects.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_url = format!("http://{}", listener.local_addr().unwrap());
    let mut w = world_unpinned(|db| Bank::start_as(db, 0, Some(&relay_url)));
    let relay = Relay::start(listener, w.bank.port, Cut::Answer);
    w.set_up();
    assert_eq!(relay.url(), w.server);
    w.login();

    let transfer = [
        "transfer",
        "--to",
        "ACC-BOB-EUR",
        "--amount",
        "42.00",
        "--currency",
        "EUR",
        "--payee-name",
        "Bob Example",
        "--yes",
    ];
    let out = w.bridge(&transfer, "1234\n");
    relay.eaten.recv_timeout(WAIT).expect("the relay never saw the confirmation");
    // The bank executed the transfer; the bridge only saw the connection drop after sending
    // the confirmation, so it cannot know (exit 37, not "unreachable").
    assert_eq!(code(&out), 37, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is unknown") && err.contains("run the same transfer command again"), "{err}");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 4200, "the bank did execute it");
    let pending = w.bridge_ok(&["pending"], "");
    let id = pending.split_whitespace().next().unwrap().to_owned();
    assert!(id.starts_with("tx-"), "{pending}");

    // The bank dies hard and comes back on the same address; the person runs the command again.
    w.bank.restart();
    let out = w.bridge_ok(&transfer, "1234\n");
    assert!(out.contains(&format!("resuming transfer {id}")), "{out}");
    assert!(out.contains(&format!("the bank had already executed transfer {id}; nothing moved again")), "{out}");
    assert!(out.contains(&format!("transfer {id} executed")), "{out}");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 4200);
    assert_eq!(w.balance("bob", "ACC-BOB-EUR"), 4200);
    assert_eq!(w.bridge_ok(&["pending"], "").trim(), "no pending transfers");
    let (_, history) = api(&w, "GET", "/transfers", Some(&w.session_token()), None);
    let transfers = history["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 1, "{history}");
    assert_eq!(transfers[0]["transfer_id"], id.as_str());
    w.books_ok();
}

#[test]
fn one_bridge_command_uses_one_http_connection() {
    // A transfer without --from makes three requests (accounts, create, confirm): one reused
    // HTTP client keeps them on one kept-alive connection; a client per request would open three.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_url = format!("http://{}", listener.local_addr().unwrap());
    let w = world_unpinned(|db| Bank::start_as(db, 0, Some(&relay_url)));
    let relay = Relay::start(listener, w.bank.port, Cut::Nothing);
    w.set_up();
    w.login();
    let before = relay.accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(before >= 1, "the login went through the relay");
    let out = w.bridge_ok(
        &[
            "transfer",
            "--to",
            "ACC-BOB-EUR",
            "--amount",
            "1.00",
            "--currency",
            "EUR",
            "--payee-name",
            "Bob Example",
            "--yes",
        ],
        "1234\n",
    );
    assert!(out.contains("executed"), "{out}");
    assert_eq!(relay.accepted.load(std::sync::atomic::Ordering::SeqCst) - before, 1, "connections for one transfer");
    assert_eq!(w.balance("bob", "ACC-BOB-EUR"), 100);
}

#[test]
fn bank_restarts_between_challenge_and_confirmation_then_the_retry_pays_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_url = format!("http://{}", listener.local_addr().unwrap());
    let mut w = world_unpinned(|db| Bank::start_as(db, 0, Some(&relay_url)));
    let relay = Relay::start(listener, w.bank.port, Cut::Request);
    w.set_up();
    w.login();

    // The bank handed out the transfer's challenge; the card signed; the confirmation is lost.
    let transfer = [
        "transfer",
        "--to",
        "ACC-BOB-EUR",
        "--amount",
        "3.21",
        "--currency",
        "EUR",
        "--payee-name",
        "Bob Example",
        "--yes",
    ];
    let out = w.bridge(&transfer, "1234\n");
    relay.eaten.recv_timeout(WAIT).expect("the relay never saw the confirmation");
    // Lost after it left the bridge: for all the bridge knows, the bank may have executed it.
    assert_eq!(code(&out), 37, "{}", describe(&out));
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000, "the bank never saw the confirmation");
    let id = w.bridge_ok(&["pending"], "").split_whitespace().next().unwrap().to_owned();
    assert!(id.starts_with("tx-"), "{id}");

    // The bank dies hard with the transfer pending and comes back; the retry signs a fresh
    // challenge for the same transfer id, and the money moves once.
    w.bank.restart();
    let out = w.bridge_ok(&transfer, "1234\n");
    assert!(out.contains(&format!("resuming transfer {id}")), "{out}");
    assert!(out.contains(&format!("transfer {id} executed")), "{out}");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 321);
    assert_eq!(w.balance("bob", "ACC-BOB-EUR"), 321);
    assert_eq!(w.bridge_ok(&["pending"], "").trim(), "no pending transfers");
    let (_, history) = api(&w, "GET", "/transfers", Some(&w.session_token()), None);
    assert_eq!(history["transfers"].as_array().unwrap().len(), 1, "{history}");
    // Codes used: login 0, the lost confirmation 1, the retry 2.
    assert!(w.bridge_ok(&["status"], "").contains("next counter:    3"));
    w.books_ok();
}

#[test]
fn without_reader_the_bridge_uses_the_one_paysim_card_and_never_guesses_between_two() {
    let a = TestCard::personalized(&CardSpec { serial: "PSIM-A".into(), slot: Some(Slot(0)), ..CardSpec::default() });
    let mut b =
        TestCard::personalized(&CardSpec { serial: "PSIM-B".into(), slot: Some(Slot(1)), ..CardSpec::default() });
    let state = a.dir.path().join("bridge-state");
    let status = || {
        Command::new(bin("reader-bridge"))
            .arg("--state-dir")
            .arg(&state)
            .args(["--wait", "2", "status"])
            .env_remove("PAYSIM_READER")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Two PAYSIM cards, no --reader and no terminal to ask at: exit 13, both listed.
    let out = status();
    assert_eq!(code(&out), 13, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&a.reader()) && err.contains(&b.reader()) && err.contains("--reader"), "{err}");

    // At a terminal (a pseudo-terminal from util-linux `script`) the bridge asks instead; the
    // person answers 2 and gets the second reader's card.
    let line = format!("{} --state-dir {} --wait 2 status", bin("reader-bridge").display(), state.display());
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("PAYSIM_READER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run `script` (util-linux)");
    child.stdin.take().unwrap().write_all(b"2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Several readers hold a PAYSIM card. Which one?"), "{text}");
    assert!(text.contains(&format!("2) {}", b.reader())), "{text}");
    assert!(text.contains(&format!("reader:          {}", b.reader())) && text.contains("PSIM-B"), "{text}");

    // One card left: that is the one, without --reader.
    b.process().kill();
    let out = status();
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("reader:          {}", a.reader())) && text.contains("PSIM-A"), "{text}");
}

#[test]
fn without_pcscd_the_bridge_says_to_start_it() {
    // libpcsclite finds pcscd through this socket path: point it at nothing.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("reader-bridge"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["--wait", "0", "status"])
        .env("PCSCLITE_CSOCK_NAME", dir.path().join("no-pcscd.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&out), 10, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the PC/SC service is not available") && err.contains("start pcscd"), "{err}");
    assert_eq!(err.matches("not available").count(), 1, "the cause is printed once: {err}");
}

// ---------------------------------------------------------------------------------------
// The website by HTTP, with codes from `reader-bridge respond`
// ---------------------------------------------------------------------------------------

/// The `reader-bridge respond ...` command line the page prints, as arguments after `respond`.
fn respond_args(html: &str) -> Vec<String> {
    let start = html.find("reader-bridge respond").unwrap_or_else(|| panic!("no respond command in {html}"));
    let line = html[start..].split('<').next().unwrap();
    let line = line.replace("&amp;", "&").replace("&#x2F;", "/").replace("&#47;", "/").replace("&#39;", "'");
    shell_words(&line).into_iter().skip(2).collect()
}

/// Splits a command line as a POSIX shell would for the quoting the page uses: words apart at
/// blanks, `'...'` taken literally, `\x` as `x`.
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn website_login_and_transfer_with_codes_from_respond() {
    let w = world();
    let mut b = Browser::for_bank(&w.bank);

    let (s, page, _) = b.get("/login");
    assert_eq!(s, 200);
    let csrf = hidden(&page, "csrf");
    let (s, page, _) = b.post("/login", &[("csrf", &csrf), ("user", "alice")]);
    assert_eq!(s, 200, "{page}");
    assert!(page.contains(&w.bank.url()), "the page shows the bank's verifier id");
    let args = respond_args(&page);
    // The page never tells the bridge which bank to sign for: no `--server` in its command.
    assert!(!args.iter().any(|a| a == "--server" || a.contains(&w.bank.url())), "{args:?}");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (counter, otp) = w.respond(&args, "1234");
    let (s, _, location) = b.post(
        "/login/code",
        &[("csrf", &csrf), ("challenge_id", &hidden(&page, "challenge_id")), ("code", &format!("{counter}-{otp}"))],
    );
    assert_eq!((s, location.as_deref()), (303, Some("/welcome")));

    let (s, page, _) = b.get("/transfer");
    assert_eq!(s, 200, "{page}");
    let csrf = hidden(&page, "csrf");
    let (s, page, _) = b.post(
        "/transfer",
        &[
            ("csrf", &csrf),
            ("transfer_id", &hidden(&page, "transfer_id")),
            ("from", "ACC-ALICE-EUR"),
            ("to", "ACC-BOB-EUR"),
            ("payee_name", "Bob Example"),
            ("amount", "12.34"),
        ],
    );
    assert_eq!(s, 200, "{page}");
    let args = respond_args(&page);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for expected in
        ["--transfer-id", "--amount-minor", "1234", "--source", "ACC-ALICE-EUR", "ACC-BOB-EUR", "--payee-name", "EUR"]
    {
        assert!(args.contains(&expected), "{expected} missing in {args:?}");
    }
    let (counter, otp) = w.respond(&args, "1234");
    let (s, result, _) = b.post(
        "/transfer/confirm",
        &[
            ("csrf", &csrf),
            ("challenge_id", &hidden(&page, "challenge_id")),
            ("transfer_id", &hidden(&page, "transfer_id")),
            ("code", &format!("{counter}-{otp}")),
        ],
    );
    assert_eq!(s, 200, "{result}");
    assert!(result.contains("The transfer was executed."), "{result}");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 1234);
    assert_eq!(w.balance("bob", "ACC-BOB-EUR"), 1234);
    w.books_ok();
}

/// Runs `cmd` with `stdin`, returning its output.
fn run_with(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A bridge that refuses before reading standard input may be gone already (broken pipe).
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn a_bridge_pointed_at_another_address_is_refused_or_gets_codes_the_bank_refuses() {
    let w = world();
    // Same bank, reached under another name (as a look-alike relay would present itself).
    let lookalike = format!("https://localhost:{}", w.bank.port);
    // The bridge is set up for the real address: another --server is refused before the card
    // signs anything, naming both addresses.
    let out = run_with(w.bridge_cmd_at(Some(&lookalike), &["login", "--user", "alice"]), "1234\n");
    assert_eq!(code(&out), 43, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&lookalike) && err.contains(&w.server) && err.contains("--replace"), "{err}");
    assert!(w.bridge_ok(&["status"], "").contains("next counter:    0"), "no code was drawn");

    // A bridge set up for the look-alike address signs for it, and the bank refuses the code.
    let other_state = w.card.dir.path().join("lookalike-state");
    e2e_tests::setup_bridge(&other_state, &lookalike, w.bank.ca());
    let mut cmd = w.bridge_cmd_at(None, &["login", "--user", "alice"]);
    cmd.arg("--state-dir").arg(&other_state);
    let out = run_with(cmd, "1234\n");
    assert_eq!(code(&out), 31, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: the server says its verifier id is"), "{err}");
    // The same card at the real address still logs in (the refused code fell in the window).
    w.login();
}

#[test]
fn respond_signs_for_the_pinned_bank_and_refuses_a_page_printed_server_for_another() {
    let w = world();
    let challenge = "5a".repeat(32);
    // A page-printed command for another bank: refused, nothing signed.
    let phisher = "http://127.0.0.1:9";
    let out = run_with(
        w.bridge_cmd_at(None, &["respond", "--yes", "--challenge", &challenge, "--server", phisher]),
        "1234\n",
    );
    assert_eq!(code(&out), 43, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(phisher), "{}", describe(&out));
    assert!(w.bridge_ok(&["status"], "").contains("next counter:    0"), "no code was drawn");

    // Without --server: the card signs for the pinned origin, and says so before the PIN.
    let out = run_with(w.bridge_cmd_at(None, &["respond", "--yes", "--challenge", &challenge]), "1234\n");
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Sign a login for {} (the bank this bridge is set up for)", w.server)),
        "{stdout}"
    );
    let line = stdout.lines().find_map(|l| l.strip_prefix("type into the page: ")).unwrap();
    let (counter, otp) = line.split_once('-').unwrap();
    let counter: u64 = counter.parse().unwrap();
    let verifier_id = paysim_otp::verifier_id(&w.server).unwrap();
    let seed = &w.card.token.seed;
    let ch = hex::decode(&challenge).unwrap();
    assert!(paysim_otp::login_otp(&seed.advance(counter), counter, &ch, verifier_id.as_bytes()).matches(otp));
    let elsewhere = paysim_otp::verifier_id(phisher).unwrap();
    assert!(!paysim_otp::login_otp(&seed.advance(counter), counter, &ch, elsewhere.as_bytes()).matches(otp));
}

#[test]
fn secrets_on_the_command_line_need_the_insecure_flag() {
    let w = world();
    let out = w.bridge(&["login", "--user", "alice", "--pin", "1234"], "");
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--pin puts the PIN on the command line") && err.contains("--pin-stdin"), "{err}");
    assert!(!err.contains("1234"), "{err}");
    assert!(w.bridge_ok(&["status"], "").contains("next counter:    0"), "the card was not used");
    // With the flag, the PIN from the command line logs in (standard input is empty).
    let out = w.bridge_ok(&["login", "--user", "alice", "--insecure-secret-args", "--pin", "1234"], "");
    assert!(out.contains("logged in as alice"), "{out}");
}

#[test]
fn the_bridge_waits_for_a_card_inserted_after_it_started() {
    let mut w = world();
    w.card.process().kill();
    // No card: a short wait ends with exit 11 and says what to do.
    let out = w.bridge_cmd(&["status"]).arg("--wait").arg("0").output().unwrap();
    assert_eq!(code(&out), 11, "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("insert the card"), "{}", describe(&out));

    // A long wait: once the bridge says it is waiting (SCardGetStatusChange), insert the card.
    let mut child = w
        .bridge_cmd(&["-v", "status"])
        .arg("--wait")
        .arg("60")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines_of(child.stderr.take().unwrap());
    wait_line_containing(&stderr, "waiting up to", "reader-bridge status --wait 60");
    w.card.process().restart().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(w.card.token.serial.as_str()));
}

/// Through the real bridge and card: each answer of verification of payee is shown, with the
/// source account and the payee's name, before the PIN (a "no" at the first question leaves
/// the card untouched); a no match needs the second "yes" (or `--confirm-unverified-payee`).
#[test]
fn the_bridge_shows_each_payee_check_before_the_pin() {
    let w = world();
    bank_server::ops::open_account(&w.bank.db, "bob", "ACC-BOB-OLD", "EUR", None).unwrap();
    w.login();
    let cases = [
        ("ACC-BOB-EUR", "Bob Example", "Verification of payee: the name matches"),
        ("ACC-BOB-EUR", "Example Bob", "CLOSE MATCH: the account is in the name of \"Bob Example\""),
        ("ACC-BOB-EUR", "Mallory Evil", "NO MATCH: the name is not the name on the account"),
        ("ACC-BOB-OLD", "Bob Example", "UNAVAILABLE: the bank cannot check the name"),
    ];
    let args = |to: &'static str, name: &'static str| {
        vec!["transfer", "--to", to, "--amount", "1.00", "--currency", "EUR", "--payee-name", name]
    };
    for (to, name, shown) in cases {
        let out = w.bridge(&args(to, name), "n\n");
        assert!(!out.status.success(), "declined, yet: {}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        for needle in [shown, name, to, "from account:       ACC-ALICE-EUR", "1.00 EUR"] {
            assert!(stdout.contains(needle), "{needle:?} not shown: {}", describe(&out));
        }
    }
    // None of them reached the card: the login's code is still the last one.
    assert!(w.bridge_ok(&["status"], "").contains("next counter:    1"));

    w.bridge_ok(&args("ACC-BOB-EUR", "Bob Example"), "y\n1234\n");
    w.bridge_ok(&args("ACC-BOB-EUR", "Example Bob"), "y\n1234\n");
    let out = w.bridge(&args("ACC-BOB-EUR", "Mallory Evil"), "y\nn\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was signed"), "{}", describe(&out));
    w.bridge_ok(&args("ACC-BOB-EUR", "Mallory Evil"), "y\ny\n1234\n");
    let mut scripted = args("ACC-BOB-OLD", "Bob Example");
    scripted.extend(["--yes", "--confirm-unverified-payee"]);
    w.bridge_ok(&scripted, "1234\n");
    assert_eq!(w.balance("alice", "ACC-ALICE-EUR"), 100_000 - 400);
    assert!(w.bridge_ok(&["status"], "").contains("next counter:    5"));
}
