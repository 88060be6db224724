//! An OATH credential as the bank token, end to end: `bank-tools oath enroll` writes the
//! credential to the virtual card's YKOATH application through pcscd (PUT), the bank seals
//! its key, and `reader-bridge` logs in and signs transfers with CALCULATE over the
//! PAYSIM-OATH-1 challenge (`docs/protocol.md` section 9). The virtual card is not
//! personalized for PAYSIM, so the bridge picks its OATH application, as it would a YubiKey's.
//!
//! ykman, a third-party client, checks the credential bank-tools wrote.

use e2e_tests::{bin, BankServer as Bank, TestCard, VirtualCard};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

struct World {
    dir: tempfile::TempDir,
    card: VirtualCard,
    bank: Bank,
    state_dir: PathBuf,
}

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tools_ok(w: &World, args: &[&str], says: &str) -> String {
    tools_ok_in(w, args, None, says)
}

fn tools_ok_in(w: &World, args: &[&str], stdin: Option<&str>, says: &str) -> String {
    let db = w.bank.db.to_str().unwrap().to_owned();
    let out = e2e_tests::bank_tools(&[args, &["--db", &db, "--master-key-beside-db"]].concat(), stdin);
    e2e_tests::assert_success(&format!("bank-tools {args:?}"), &out);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains(says), "bank-tools {args:?} said {stdout:?}, not {says:?}");
    stdout
}

/// A factory virtual card, the bank (started with `serve_flags`) with dave, whose token is
/// the OATH credential `bank-tools oath enroll` writes to the card, and bob; a bridge set up.
fn world(serve_flags: &[&str]) -> World {
    world_with(serve_flags, None)
}

/// As [`world`]; with `access_code`, ykman protects the card's OATH application with it first,
/// and `bank-tools oath enroll` gets it on standard input.
fn world_with(serve_flags: &[&str], access_code: Option<&str>) -> World {
    let (dir, _state, _admin, card) = TestCard::factory(None);
    let db = dir.path().join("bank.sqlite3");
    let bank = Bank::start_tls_with(&db, 0, serve_flags);
    let state_dir = dir.path().join("bridge-state");
    let w = World { dir, card, bank, state_dir };
    tools_ok(&w, &["user", "add", "dave"], "added user dave");
    tools_ok(&w, &["user", "add", "bob"], "added user bob");
    let reader = w.card.reader();
    let mut enroll = vec!["oath", "enroll", "--reader", &reader, "--user", "dave", "--serial", "OATH-DAVE"];
    let stdin = access_code.map(|code| {
        assert_eq!(w.ykman_in(&["oath", "access", "change"], &format!("{code}\n{code}\n")), "Password updated.\n");
        enroll.push("--access-code-stdin");
        format!("{code}\n")
    });
    let said = tools_ok_in(
        &w,
        &enroll,
        stdin.as_deref(),
        "enrolled OATH token OATH-DAVE for user dave: credential \"PAYSIM Bank:dave\"",
    );
    assert!(!said.to_ascii_lowercase().contains("key:"), "the key is never printed: {said}");
    for (user, number, holder) in [("dave", "ACC-DAVE-EUR", "Dave Example"), ("bob", "ACC-BOB-EUR", "Bob Example")] {
        tools_ok(
            &w,
            &["account", "open", "--user", user, "--number", number, "--currency", "EUR", "--holder", holder],
            &format!("opened account {number}"),
        );
    }
    tools_ok(
        &w,
        &["account", "fund", "--account", "ACC-DAVE-EUR", "--amount", "100.00", "--currency", "EUR"],
        "funded",
    );
    e2e_tests::setup_bridge_for(&w.state_dir, &w.bank);
    w
}

impl World {
    /// `ykman --reader READER ARGS` with `stdin`, in a private HOME; its standard output.
    fn ykman_in(&self, args: &[&str], stdin: &str) -> String {
        let home = self.dir.path().join("ykman-home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = Command::new("timeout")
            .args(["60", "ykman", "--reader", &self.card.reader()])
            .args(args)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ykman (sudo bash scripts/setup.sh installs it): {e}"));
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ykman {args:?}: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn bridge(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(bin("reader-bridge"))
            .arg("--reader")
            .arg(self.card.reader())
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--wait", "5", "--pin-stdin"])
            .args(args)
            .env_remove("PAYSIM_SERVER")
            .env_remove("PAYSIM_CA")
            .env_remove("PAYSIM_READER")
            .env_remove("PAYSIM_BRIDGE_STATE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start reader-bridge");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn bridge_ok(&self, args: &[&str]) -> String {
        let out = self.bridge(args, "");
        assert!(out.status.success(), "reader-bridge {args:?} failed: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn balance(&self, user: &str, number: &str) -> i64 {
        bank_server::ops::accounts(&self.bank.db, user)
            .unwrap()
            .into_iter()
            .find(|a| a.number == number)
            .unwrap()
            .balance_minor
    }

    fn api(&self, path: &str, token: Option<&str>, body: serde_json::Value) -> (u16, serde_json::Value) {
        let mut req = self.bank.client().post(format!("{}/api/v1{path}", self.bank.url())).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, serde_json::from_str(&resp.text().unwrap()).unwrap_or(serde_json::Value::Null))
    }

    /// `reader-bridge respond --yes ARGS` (no secret: the application has no access code):
    /// the code it prints.
    fn respond(&self, args: &[&str]) -> String {
        let out = self.bridge_ok(&[&["respond", "--yes"], args].concat());
        let line = out
            .lines()
            .find_map(|l| l.strip_prefix("type into the page: "))
            .unwrap_or_else(|| panic!("no code in {out}"));
        let (counter, otp) = line.split_once('-').unwrap();
        assert_eq!(counter, "0", "an OATH token has no counter: {line}");
        otp.to_owned()
    }
}

#[test]
fn an_oath_credential_logs_in_and_signs_transfers_through_pcscd() {
    let w = world(&[]);
    // `readers` names the kind the bridge will use.
    let readers = w.bridge_ok(&["readers"]);
    let line = format!("{}: OATH key with PAYSIM Bank:dave", w.card.reader());
    assert!(readers.lines().any(|l| l == line), "{readers}");

    // No PIN and no access code: nothing is asked, nothing is read from standard input.
    let out = w.bridge(&["login", "--user", "dave"], "");
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("logged in as dave"), "{stdout}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("PIN"), "{}", describe(&out));

    let out = w.bridge_ok(&[
        "transfer",
        "--to",
        "ACC-BOB-EUR",
        "--payee-name",
        "Bob Example",
        "--amount",
        "12.34",
        "--currency",
        "EUR",
        "--yes",
    ]);
    assert!(out.contains("executed"), "{out}");
    assert_eq!((w.balance("dave", "ACC-DAVE-EUR"), w.balance("bob", "ACC-BOB-EUR")), (10_000 - 1234, 1234));
    let tokens = String::from_utf8_lossy(
        &e2e_tests::bank_tools(&["token", "list", "--db", w.bank.db.to_str().unwrap(), "--master-key-beside-db"], None)
            .stdout,
    )
    .into_owned();
    assert!(tokens.lines().any(|l| l.starts_with("OATH-DAVE") && l.contains(" oath ")), "{tokens}");
}

#[test]
fn a_changed_amount_and_a_replayed_answer_are_refused() {
    let w = world(&[]);
    // A login code from `respond` (the website's manual mode) is good once.
    let (st, ch) = w.api("/login/challenge", None, serde_json::json!({ "user": "dave" }));
    assert_eq!(st, 200, "{ch}");
    let otp = w.respond(&["--challenge", ch["challenge_hex"].as_str().unwrap()]);
    let body = serde_json::json!({ "challenge_id": ch["challenge_id"], "counter": 0, "otp": otp });
    let (st, ok) = w.api("/login", None, body.clone());
    assert_eq!(st, 200, "{ok}");
    let (st, again) = w.api("/login", None, body);
    assert_eq!((st, again["error"].as_str()), (401, Some("auth_failed")), "a replayed answer: {again}");

    // A transfer signed for another amount than the bank asked is refused; nothing moves.
    let token = ok["token"].as_str().unwrap();
    let (st, created) = w.api(
        "/transfers",
        Some(token),
        serde_json::json!({ "transfer_id": "t-oath-1", "from": "ACC-DAVE-EUR", "to": "ACC-BOB-EUR", "amount_minor": 500, "currency": "EUR", "payee_name": "Bob Example" }),
    );
    assert_eq!(st, 201, "{created}");
    let signed = |amount: &str| {
        w.respond(&[
            "--challenge",
            created["challenge_hex"].as_str().unwrap(),
            "--transfer-id",
            "t-oath-1",
            "--source",
            "ACC-DAVE-EUR",
            "--payee",
            "ACC-BOB-EUR",
            "--payee-name",
            "Bob Example",
            "--amount",
            amount,
            "--currency",
            "EUR",
        ])
    };
    let (wrong, right) = (signed("50.00"), signed("5.00"));
    assert_ne!(wrong, right);
    let confirm = |otp: &str| {
        w.api(
            "/transfers/t-oath-1/confirm",
            Some(token),
            serde_json::json!({ "challenge_id": created["challenge_id"], "counter": 0, "otp": otp }),
        )
    };
    let (st, v) = confirm(&wrong);
    assert_eq!((st, v["error"].as_str()), (401, Some("auth_failed")), "{v}");
    // The refused code ended the transfer: even the right code for its challenge is refused now.
    let (st, v) = confirm(&right);
    assert_eq!((st, v["error"].as_str()), (409, Some("transfer_ended")), "{v}");
    assert_eq!(w.balance("dave", "ACC-DAVE-EUR"), 10_000);
    let _ = &w.dir;
}

#[test]
fn a_bank_that_keeps_oath_tokens_from_transfers_says_so() {
    let w = world(&["--oath-transfers", "deny"]);
    let out = w.bridge(&["login", "--user", "dave"], "");
    assert!(out.status.success(), "an OATH token still logs in: {}", describe(&out));
    let out = w.bridge(
        &[
            "transfer",
            "--to",
            "ACC-BOB-EUR",
            "--payee-name",
            "Bob Example",
            "--amount",
            "1.00",
            "--currency",
            "EUR",
            "--yes",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(34), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not let an OATH key") && err.contains("token_kind_not_allowed"),
        "the refusal says why: {err}"
    );
    assert_eq!(w.balance("dave", "ACC-DAVE-EUR"), 10_000);
}

#[test]
fn ykman_lists_the_credential_bank_tools_wrote_and_agrees_on_its_codes() {
    if Command::new("ykman").arg("--version").output().is_err() {
        panic!("ykman is not installed: run `sudo bash scripts/setup.sh` (installs Debian's yubikey-manager)");
    }
    let w = world(&[]);
    let ykman = |args: &[&str]| w.ykman_in(args, "");
    assert_eq!(ykman(&["oath", "accounts", "list", "-o"]), "PAYSIM Bank:dave, TOTP\n");
    // ykman's TOTP code is CALCULATE over the 8-byte time step; the same CALCULATE through the
    // bridge's parser (card_applet::host::oath) must give the same 8 digits.
    use card_link::TransportExt;
    let mut link = card_link::PcscCard::connect_shared(&w.card.reader(), std::time::Duration::from_secs(5)).unwrap();
    let calc = |link: &mut card_link::PcscCard, step: u64| -> String {
        link.exchange(|ex| -> card_link::Result<Vec<u8>> {
            ex.transmit(&card_applet::host::oath::select())?;
            ex.transmit(&card_applet::host::oath::calculate("PAYSIM Bank:dave", &step.to_be_bytes()).unwrap())
        })
        .map(|resp| card_applet::host::oath::parse_calculate(&resp).unwrap().as_str().to_owned())
        .unwrap()
    };
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 30;
    let before = now();
    let out = ykman(&["oath", "accounts", "code", "PAYSIM Bank:dave"]);
    let after = now();
    let code = out.split_whitespace().last().unwrap().to_owned();
    assert_eq!(code.len(), 8, "{out}");
    let ours: Vec<String> = (before..=after).map(|s| calc(&mut link, s)).collect();
    assert!(ours.contains(&code), "ykman said {out:?}, the card through our parser {ours:?}");
}

#[test]
fn a_key_with_an_access_code_asks_for_it_instead_of_a_pin() {
    let w = world_with(&[], Some("open-sesame"));
    // The access code set by ykman opens the application for bank-tools (done) and the bridge;
    // ykman itself lists the credential with it.
    assert_eq!(w.ykman_in(&["oath", "accounts", "list"], "open-sesame\n"), "PAYSIM Bank:dave\n");
    let readers = w.bridge_ok(&["readers"]);
    assert!(readers.contains("OATH key, protected by an access code"), "{readers}");
    let out = w.bridge(&["login", "--user", "dave"], "not-the-code\n");
    assert_eq!(out.status.code(), Some(20), "a wrong access code: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong OATH access code"), "{}", describe(&out));
    let out = w.bridge(&["login", "--user", "dave"], "open-sesame\n");
    assert!(out.status.success(), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OATH access code of the key in") && !err.contains("PIN"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("logged in as dave"), "{}", describe(&out));
}
