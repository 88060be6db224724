//! The pinned bank through the CLI: `setup` pins, `status` shows the pin, a differing
//! `--server` is refused naming both, `--replace` re-pins, `respond` never pins and refuses a
//! page-printed `--server` for another bank, plain http to another computer is refused, and
//! secrets on the command line need `--insecure-secret-args`.
//!
//! The "banks" are loopback listeners that answer every request like the bank's API answers
//! one without a session (401 `unauthenticated`), which is all `setup` asks; the whole flow
//! with a real bank and card is in the e2e suite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reader_bridge::error::exit;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A loopback "bank" answering every request with the API's 401; returns its URL.
fn fake_bank() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { break };
            let mut reader = BufReader::new(tcp.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let body = r#"{"error":"unauthenticated","message":"log in first"}"#;
            let _ = write!(
                tcp,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn bridge(state: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reader-bridge"))
        .arg("--state-dir")
        .arg(state)
        .args(["--reader", "No Such Reader", "--wait", "0"])
        .args(args)
        .env_remove("PAYSIM_SERVER")
        .env_remove("PAYSIM_CA")
        .env_remove("PAYSIM_READER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command refused before it reads standard input may be gone already: a broken pipe
    // here is that, not a failure (its exit status and output are what the tests check).
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn setup_pins_status_shows_it_another_server_is_refused_and_replace_repins() {
    let (a, b) = (fake_bank(), fake_bank());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    let out = bridge(&state, &["status"], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("bank:            not set up"), "{}", text(&out));

    let out = bridge(&state, &["setup", "--server", &a], "");
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("set up for the bank at {a}")), "{}", text(&out));
    let out = bridge(&state, &["status"], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("bank:            {a} (the card signs for {a})")), "{}", text(&out));
    assert!(stdout.contains("the platform's root certificates"), "{}", text(&out));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(state.join("bank.json")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);

    // The same setup again changes nothing; the pinned address with --server is fine.
    let out = bridge(&state, &["setup", "--server", &format!("{a}/")], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("already set up"), "{}", text(&out));
    let out = bridge(&state, &["--server", &a, "pending"], "");
    assert!(out.status.success(), "{}", text(&out));

    // Another bank: refused, naming both, saying how to re-pin on purpose.
    let out = bridge(&state, &["--server", &b, "accounts"], "");
    assert_eq!(out.status.code(), Some(i32::from(exit::OTHER_BANK)), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains(&a) && err.contains(&b), "{err}");
    assert!(err.contains(&format!("reader-bridge setup --server {b} --replace")), "{err}");
    // PAYSIM_SERVER is the same flag.
    let out = Command::new(env!("CARGO_BIN_EXE_reader-bridge"))
        .arg("--state-dir")
        .arg(&state)
        .arg("accounts")
        .env("PAYSIM_SERVER", &b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(i32::from(exit::OTHER_BANK)), "{}", text(&out));
    // setup for another bank without --replace changes nothing.
    let out = bridge(&state, &["setup", "--server", &b], "");
    assert_eq!(out.status.code(), Some(i32::from(exit::OTHER_BANK)), "{}", text(&out));
    assert!(stderr(&out).contains("--replace"), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&bridge(&state, &["status"], "").stdout).contains(&format!("bank:            {a} "))
    );

    // --replace re-pins.
    let out = bridge(&state, &["setup", "--server", &b, "--replace"], "");
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("instead of {a}")), "{}", text(&out));
    let out = bridge(&state, &["status"], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("bank:            {b} ")), "{}", text(&out));
    let out = bridge(&state, &["--server", &a, "accounts"], "");
    assert_eq!(out.status.code(), Some(i32::from(exit::OTHER_BANK)), "{}", text(&out));
}

#[test]
fn respond_never_pins_and_refuses_a_page_printed_server_for_another_bank() {
    let (mine, phisher) = (fake_bank(), fake_bank());
    let dir = tempfile::tempdir().unwrap();
    let challenge = "ab".repeat(32);

    // Not set up: respond says to run setup, even with --server, and pins nothing.
    let fresh = dir.path().join("fresh");
    let out = bridge(&fresh, &["--server", &mine, "respond", "--challenge", &challenge, "--yes"], "1234\n");
    assert_eq!(out.status.code(), Some(i32::from(exit::NOT_SET_UP)), "{}", text(&out));
    assert!(stderr(&out).contains("reader-bridge setup --server"), "{}", text(&out));
    assert!(!fresh.join("bank.json").exists(), "respond pinned a bank");
    assert!(String::from_utf8_lossy(&bridge(&fresh, &["status"], "").stdout).contains("not set up"));

    // Set up for my bank: a look-alike page's command line with its own --server is refused
    // before the card is asked for anything (the PIN on standard input is never read).
    let state = dir.path().join("state");
    assert!(bridge(&state, &["setup", "--server", &mine], "").status.success());
    let out =
        bridge(&state, &["--pin-stdin", "respond", "--server", &phisher, "--challenge", &challenge, "--yes"], "1234\n");
    assert_eq!(out.status.code(), Some(i32::from(exit::OTHER_BANK)), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains(&mine) && err.contains(&phisher) && err.contains("nothing was signed"), "{err}");
    assert!(!err.contains("PIN for the card"), "{err}");
}

#[test]
fn plain_http_to_another_computer_is_refused_with_use_https() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for server in ["http://192.0.2.10:8080", "http://bank.example"] {
        let out = bridge(&state, &["setup", "--server", server], "");
        assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)), "{}", text(&out));
        let err = stderr(&out);
        assert!(err.contains("refusing plain http") && err.contains("use https://"), "{err}");
        assert!(!state.join("bank.json").exists());
        // Any command: the same refusal.
        let out = bridge(&state, &["--server", server, "accounts"], "");
        assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)), "{}", text(&out));
    }
}

#[test]
fn secrets_on_the_command_line_are_refused_without_the_insecure_flag() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for (args, flag) in [
        (&["login", "--user", "alice", "--pin", "13579"][..], "--pin"),
        (&["unblock", "--puk", "97531864"][..], "--puk"),
        (&["change-pin", "--new-pin", "24680"][..], "--new-pin"),
    ] {
        let out = bridge(&state, args, "");
        assert_eq!(out.status.code(), Some(i32::from(exit::USAGE)), "{}", text(&out));
        let err = stderr(&out);
        assert!(err.contains(flag) && err.contains("--pin-stdin") && err.contains("prompt"), "{err}");
        assert!(!err.contains("13579") && !err.contains("97531864") && !err.contains("24680"), "{err}");
    }
    // With the flag the value is taken (and warned about): `change-pin` gets past the
    // argument check to the card, which is missing here (exit 10, not 2).
    let out = bridge(&state, &["--insecure-secret-args", "change-pin", "--pin", "13579", "--new-pin", "24680"], "");
    assert_eq!(out.status.code(), Some(i32::from(exit::NO_READER)), "{}", text(&out));
    assert!(stderr(&out).contains("warning: --pin is on the command line"), "{}", text(&out));
}
