//! Secrets on `bank-tools`' command line: `--pin`, `--puk` and `--otp` are refused unless
//! `--insecure-secret-args` is given, with a message that says to use standard input and
//! never holds the value; with the flag, or on standard input, the value is used.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn bank_tools(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bank-tools"))
        .args(args)
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

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A token file (seed 0x42.., counter 0) and the right login code for counter 3 of it.
fn token_and_code(dir: &std::path::Path) -> (String, String, String) {
    let seed = paysim_otp::ChainKey::from_bytes([0x42; 32]);
    let path = dir.join("token.json");
    let token = paysim_wire::TokenFile {
        serial: "PSIM-7".parse().unwrap(),
        seed: seed.clone(),
        counter: 0,
        tx_version: paysim_otp::TxVersion::V2,
    };
    tools::card::write_token_file(&path, &token).unwrap();
    let challenge = [0x11u8; 32];
    let code = paysim_otp::login_otp(&seed.advance(3), 3, &challenge, b"https://bank.example:443");
    (path.to_str().unwrap().to_owned(), hex::encode(challenge), code.as_str().to_owned())
}

#[test]
fn check_otp_takes_the_code_on_stdin_or_with_the_insecure_flag_only() {
    let dir = tempfile::tempdir().unwrap();
    let (token, challenge, code) = token_and_code(dir.path());
    let base = [
        "card",
        "check-otp",
        "--token",
        &token,
        "--counter",
        "3",
        "--challenge",
        &challenge,
        "--verifier-id",
        "https://bank.example:443",
    ];

    let out = bank_tools(&[&base[..], &["--otp", &code]].concat(), "");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--otp puts the one-time code on the command line") && err.contains("--otp-stdin"), "{err}");
    assert!(!err.contains(&code) && out.stdout.is_empty(), "{}", describe(&out));

    let out = bank_tools(&[&base[..], &["--otp", &code, "--insecure-secret-args"]].concat(), "");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: --otp is on the command line"));

    let out = bank_tools(&[&base[..], &["--otp-stdin"]].concat(), &format!("{code}\n"));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OTP matches"), "{}", describe(&out));
    // The check is real: another code on stdin does not match.
    let out = bank_tools(&[&base[..], &["--otp-stdin"]].concat(), "00000000\n");
    assert!(!out.status.success(), "{}", describe(&out));
}

#[test]
fn personalize_refuses_pin_and_puk_in_argv_before_touching_a_card() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("token.json");
    let base = [
        "card",
        "personalize",
        "--reader",
        "No Such Reader",
        "--admin-key",
        "/nonexistent/card.admin",
        "--serial",
        "PSIM-1",
        "--out",
        out_file.to_str().unwrap(),
    ];
    for (extra, flag, stdin_flag) in [
        (&["--pin", "86420", "--puk-stdin"][..], "--pin", "--pin-stdin"),
        (&["--pin-stdin", "--puk", "97531864"][..], "--puk", "--puk-stdin"),
    ] {
        let out = bank_tools(&[&base[..], extra].concat(), "86420\n97531864\n");
        assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{flag} puts the")) && err.contains(stdin_flag), "{err}");
        assert!(!err.contains("86420") && !err.contains("97531864"), "{err}");
        assert!(!err.contains("admin key"), "refused before reading anything else: {err}");
    }
    // With the flag the values pass the check and the command goes on (to the admin key,
    // which does not exist here).
    let out = bank_tools(&[&base[..], &["--pin", "86420", "--puk", "97531864", "--insecure-secret-args"]].concat(), "");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("admin key") && !err.contains("puts the"), "{err}");
    // Neither flag nor stdin: says to use stdin, not to put it in argv.
    let out = bank_tools(&base, "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--pin-stdin") && !err.contains("--pin <PIN>"), "{err}");
    assert!(!out_file.exists());
}
