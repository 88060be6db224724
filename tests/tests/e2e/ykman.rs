//! The card's YKOATH applet against a third-party client: Debian's `ykman` (yubikey-manager
//! 4.0.9, installed by `scripts/setup.sh`) drives a `virtual-card` in a vpcd slot through the
//! real pcscd, as a tester would with `ykman --reader "Virtual PCD 00 0N" ...`. Every test
//! compares ykman's whole output with what it must print.
//!
//! TOTP codes are checked against paysim-otp at the time ykman ran: the test notes the time
//! before and after the call; when both fall in the same 30-second window only that window's
//! codes are accepted, and only when the call straddled a boundary is the next window's
//! output accepted too (ykman computes all codes of one call at one timestamp).
//!
//! Secrets and passwords go to ykman on standard input (its prompts read a line from a
//! pipe), never on its command line; its settings (remembered keys) live in a temporary HOME.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use e2e_tests::{lock_any_slot, require_pcscd, VirtualCard};
use paysim_otp::{hotp, totp, HashAlg};

/// `12345678901234567890`, RFC 4226's secret and RFC 6238's SHA-1 seed.
const RFC_SHA1: &[u8] = b"12345678901234567890";
/// RFC 6238's SHA-256 seed (32 bytes) and SHA-512 seed (64 bytes).
const RFC_SHA256: &[u8] = b"12345678901234567890123456789012";
const RFC_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// Base32 (RFC 4648, no padding), the form `ykman oath accounts add` takes secrets in.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::try_from((acc >> bits) & 31).unwrap()]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[usize::try_from((acc << (5 - bits)) & 31).unwrap()]));
    }
    out
}

/// A factory card (created as `bank-tools card create` would: the card library's
/// `create_factory`) running in a free slot, with a private HOME for ykman.
struct OathCard {
    dir: tempfile::TempDir,
    state: PathBuf,
    card: Option<VirtualCard>,
}

impl OathCard {
    fn start(extra: &[&str]) -> OathCard {
        require_pcscd();
        assert!(
            Command::new("ykman").arg("--version").output().is_ok_and(|o| o.status.success()),
            "ykman is not installed: run `sudo bash scripts/setup.sh` (installs Debian's yubikey-manager)"
        );
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("card.state");
        card_applet::state::create_factory(&state, &[0x3C; 32]).unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let mut me = OathCard { dir, state, card: None };
        me.insert(extra);
        me
    }

    /// Starts the card process on the state file (in whichever slot is free).
    fn insert(&mut self, extra: &[&str]) {
        let log = self.dir.path().join("virtual-card.log");
        self.card = Some(VirtualCard::spawn_with(lock_any_slot(), &self.state, &log, extra).unwrap());
    }

    /// Pulls the card and puts it back with other `virtual-card` flags.
    fn reinsert(&mut self, extra: &[&str]) {
        drop(self.card.take());
        self.insert(extra);
    }

    fn reader(&self) -> String {
        self.card.as_ref().unwrap().reader()
    }

    /// `ykman --reader READER ARGS`, with `stdin` fed, bounded by `timeout`.
    fn ykman_in(&self, args: &[&str], stdin: &str) -> Output {
        let home: &Path = &self.dir.path().join("home");
        let mut child = Command::new("timeout")
            .args(["60", "ykman", "--reader", &self.reader()])
            .args(args)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run ykman: {e}"));
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(stdin.as_bytes()).unwrap();
        drop(pipe);
        child.wait_with_output().unwrap()
    }

    fn ykman(&self, args: &[&str]) -> Output {
        self.ykman_in(args, "")
    }

    /// Runs ykman and returns its standard output, failing unless it succeeded.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, "")
    }

    fn ok_in(&self, args: &[&str], stdin: &str) -> String {
        let out = self.ykman_in(args, stdin);
        assert!(
            out.status.success(),
            "ykman {args:?} failed ({}):\nstdout: {}\nstderr: {}\ncard log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.card.as_ref().map(VirtualCard::log).unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn oath_json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.state).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["oath"].clone()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The timestamps whose output ykman may have printed for a call between `t0` and `t1`:
/// one, or two when the call straddled a 30-second boundary.
fn candidate_times(t0: u64, t1: u64) -> Vec<u64> {
    assert!(t1 - t0 < 30, "one ykman call took {} s", t1 - t0);
    if t0 / 30 == t1 / 30 {
        vec![t0]
    } else {
        vec![t0, t1]
    }
}

/// ykman's table of `accounts code`: names left-aligned, codes right-aligned, two spaces.
fn table(rows: &[(&str, String)]) -> String {
    let wn = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let wc = rows.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    rows.iter().map(|(n, c)| format!("{n:<wn$}  {c:>wc$}\n")).collect()
}

#[test]
fn ykman_info_and_oath_info_on_a_fresh_card() {
    let card = OathCard::start(&[]);
    // No Management or OTP applet: ykman 4.0.9 falls back to a synthesized "YubiKey NEO" with
    // firmware 3.0.0, over NFC (the ATR is not a YubiKey's), and finds the OATH applet.
    let info = card.ok(&["info"]);
    assert_eq!(
        info,
        "Device type: YubiKey NEO\n\
         Firmware version: 3.0.0\n\
         NFC transport is enabled.\n\
         \n\
         Applications\tUSB          \tNFC          \n\
         FIDO2       \tNot available\tNot available\t\n\
         OTP         \tNot available\tNot available\t\n\
         FIDO U2F    \tNot available\tNot available\t\n\
         OATH        \tDisabled     \tEnabled      \t\n\
         YubiHSM Auth\tNot available\tNot available\t\n\
         OpenPGP     \tNot available\tNot available\t\n\
         PIV         \tNot available\tNot available\t\n"
    );
    assert_eq!(card.ok(&["oath", "info"]), "OATH version: 5.4.3\nPassword protection: disabled\n");
    assert_eq!(card.ok(&["oath", "accounts", "list"]), "");
    // The first SELECT drew the salt and committed it to the card file.
    assert_eq!(card.oath_json()["salt_hex"].as_str().map(str::len), Some(16));
    // A reader name that matches both vpcd readers is refused by name, whatever they hold.
    let out = Command::new("timeout")
        .args(["60", "ykman", "--reader", "Virtual PCD", "oath", "info"])
        .env("HOME", card.dir.path().join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: Multiple YubiKeys on external readers detected.\n");
}

#[test]
fn ykman_adds_lists_and_codes_hotp_and_totp_accounts() {
    let card = OathCard::start(&[]);
    let add = |args: &[&str], secret: &[u8]| {
        let mut all = vec!["oath", "accounts", "add"];
        all.extend_from_slice(args);
        assert_eq!(card.ok_in(&all, &format!("{}\n", base32(secret))), "");
    };
    add(&["-o", "HOTP", "-d", "6", "rfc4226"], RFC_SHA1);
    add(&["-o", "HOTP", "-a", "SHA256", "-d", "8", "hotp-sha256-8"], RFC_SHA256);
    add(&["-o", "TOTP", "-d", "6", "-i", "Bank", "totp-sha1-6"], RFC_SHA1);
    add(&["-o", "TOTP", "-a", "SHA256", "-d", "8", "totp-sha256-8"], RFC_SHA256);
    add(&["-o", "TOTP", "-a", "SHA512", "-d", "8", "totp-sha512-8"], RFC_SHA512);
    add(&["-o", "TOTP", "-a", "SHA512", "-d", "6", "-P", "60", "totp-sha512-60s"], RFC_SHA512);
    add(&["-o", "TOTP", "-d", "6", "--touch", "touchy"], RFC_SHA1);
    // An initial counter (PUT's tag 7A): the first code is RFC 4226's for count 5.
    add(&["-o", "HOTP", "-c", "5", "from-five"], RFC_SHA1);

    // Sorted by issuer or name; an account with another period than 30 s is `60/...`.
    assert_eq!(
        card.ok(&["oath", "accounts", "list"]),
        "Bank:totp-sha1-6\nfrom-five\nhotp-sha256-8\nrfc4226\ntotp-sha256-8\n60/totp-sha512-60s\ntotp-sha512-8\ntouchy\n"
    );
    assert_eq!(
        card.ok(&["oath", "accounts", "list", "-o"]),
        "Bank:totp-sha1-6, TOTP\nfrom-five, HOTP\nhotp-sha256-8, HOTP\nrfc4226, HOTP\ntotp-sha256-8, TOTP\n60/totp-sha512-60s, TOTP\n\
         totp-sha512-8, TOTP\ntouchy, TOTP\n"
    );
    // The card stored what ykman sent: the kinds, hashes, digits and the touch property.
    let creds = card.oath_json()["credentials"].clone();
    let sha256_8 = creds.as_array().unwrap().iter().find(|c| c["name_hex"] == hex::encode("hotp-sha256-8")).unwrap();
    assert_eq!(
        (sha256_8["kind"].as_str(), sha256_8["alg"].as_str(), sha256_8["digits"].as_u64()),
        (Some("HOTP"), Some("SHA256"), Some(8))
    );
    let touchy = creds.as_array().unwrap().iter().find(|c| c["name_hex"] == hex::encode("touchy")).unwrap();
    assert_eq!(touchy["touch"], true);

    // All codes at once: TOTP codes at ykman's time, markers for HOTP and touch.
    let t0 = now();
    let out = card.ok(&["oath", "accounts", "code"]);
    let t1 = now();
    let render = |t: u64| {
        let code = |alg, key, step, digits| totp(alg, key, t, 0, step, digits).unwrap();
        table(&[
            ("Bank:totp-sha1-6", code(HashAlg::Sha1, RFC_SHA1, 30, 6)),
            ("from-five", "[HOTP Account]".into()),
            ("hotp-sha256-8", "[HOTP Account]".into()),
            ("rfc4226", "[HOTP Account]".into()),
            ("totp-sha256-8", code(HashAlg::Sha256, RFC_SHA256, 30, 8)),
            ("60/totp-sha512-60s", code(HashAlg::Sha512, RFC_SHA512, 60, 6)),
            ("totp-sha512-8", code(HashAlg::Sha512, RFC_SHA512, 30, 8)),
            ("touchy", "[Requires Touch]".into()),
        ])
    };
    let wanted: Vec<String> = candidate_times(t0, t1).into_iter().map(render).collect();
    assert!(wanted.contains(&out), "ykman printed\n{out}\nwanted one of\n{}", wanted.join("\n"));

    // HOTP: RFC 4226's codes for counts 0, 1, 2, one per call (the card's counter moves on).
    for want in ["755224", "287082", "359152"] {
        assert_eq!(card.ok(&["oath", "accounts", "code", "-s", "rfc4226"]), format!("{want}\n"));
    }
    assert_eq!(card.oath_json()["credentials"][0]["counter"], 3);
    assert_eq!(card.ok(&["oath", "accounts", "code", "-s", "from-five"]), "254676\n");
    for count in 0..2 {
        let want = hotp(HashAlg::Sha256, RFC_SHA256, count, 8);
        assert_eq!(card.ok(&["oath", "accounts", "code", "-s", "hotp-sha256"]), format!("{want}\n"));
    }
    // A single TOTP account, in the table form.
    let t0 = now();
    let out = card.ok(&["oath", "accounts", "code", "totp-sha512-8"]);
    let t1 = now();
    let wanted: Vec<String> = candidate_times(t0, t1)
        .into_iter()
        .map(|t| table(&[("totp-sha512-8", totp(HashAlg::Sha512, RFC_SHA512, t, 0, 30, 8).unwrap())]))
        .collect();
    assert!(wanted.contains(&out), "ykman printed {out:?}, wanted one of {wanted:?}");
    // No match: ykman says so.
    let out = card.ykman(&["oath", "accounts", "code", "-s", "nothing-like-this"]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Error: No matching account found.\n");

    // The card logged the exchanges but no key and no code.
    let log = card.card.as_ref().unwrap().log();
    assert!(log.contains("ins=A2") && log.contains("sw=9000"), "the card logs INS and SW:\n{log}");
    for secret in [hex::encode(RFC_SHA1), hex::encode(RFC_SHA512), "755224".into(), "287082".into(), "254676".into()] {
        assert!(!log.contains(&secret), "the card's log holds a secret ({} chars)", secret.len());
    }
}

#[test]
fn ykman_touch_accounts_follow_the_virtual_cards_touch_policy() {
    let mut card = OathCard::start(&["--touch", "deny"]);
    let secret = format!("{}\n", base32(RFC_SHA1));
    assert_eq!(card.ok_in(&["oath", "accounts", "add", "-o", "TOTP", "--touch", "totp-touch"], &secret), "");
    assert_eq!(card.ok_in(&["oath", "accounts", "add", "-o", "HOTP", "--touch", "hotp-touch"], &secret), "");
    // Nobody touches the card: the card refuses (6982), ykman reports a timeout. For TOTP it
    // knows about the touch (CALCULATE ALL marks it) and asks first; for HOTP it cannot know
    // and asks only if the card takes longer than 500 ms, which a refusal does not.
    for (name, prompt) in [("totp-touch", true), ("hotp-touch", false)] {
        let out = card.ykman(&["oath", "accounts", "code", "-s", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{name}: no code");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let timed_out = "Error: Touch account timed out!\n";
        let asked = format!("Touch your YubiKey...\n{timed_out}");
        assert!(stderr == asked || (!prompt && stderr == timed_out), "{name}: {stderr:?}");
    }
    assert!(card.card.as_ref().unwrap().log().contains("denied by the virtual card's touch policy"));
    // The denied HOTP code used no count: with touches allowed, count 0's code comes out.
    card.reinsert(&["--touch", "allow"]);
    let out = card.ykman(&["oath", "accounts", "code", "-s", "hotp-touch"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "755224\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty() || stderr == "Touch your YubiKey...\n", "{stderr:?}");
    let t0 = now();
    let out = card.ok(&["oath", "accounts", "code", "-s", "totp-touch"]);
    let t1 = now();
    let wanted: Vec<String> = candidate_times(t0, t1)
        .into_iter()
        .map(|t| format!("{}\n", totp(HashAlg::Sha1, RFC_SHA1, t, 0, 30, 6).unwrap()))
        .collect();
    assert!(wanted.contains(&out), "ykman printed {out:?}, wanted one of {wanted:?}");
}

#[test]
fn ykman_renames_deletes_sets_and_clears_a_password_and_resets() {
    let card = OathCard::start(&[]);
    let secret = format!("{}\n", base32(RFC_SHA1));
    card.ok_in(&["oath", "accounts", "add", "-o", "HOTP", "rfc4226"], &secret);
    card.ok_in(&["oath", "accounts", "add", "-i", "Bank", "alice"], &secret);
    assert_eq!(
        card.ok(&["oath", "accounts", "rename", "-f", "rfc4226", "Example:rfc"]),
        "Renamed rfc4226 to Example:rfc.\n"
    );
    assert_eq!(card.ok(&["oath", "accounts", "list"]), "Bank:alice\nExample:rfc\n");
    assert_eq!(card.ok(&["oath", "accounts", "code", "-s", "Example"]), "755224\n");

    // Set a password (typed twice on stdin): the card now wants VALIDATE.
    assert_eq!(
        card.ok_in(&["oath", "access", "change"], "hunter2-not-argv\nhunter2-not-argv\n"),
        "Password updated.\n"
    );
    assert_eq!(card.ok(&["oath", "info"]), "OATH version: 5.4.3\nPassword protection: enabled\n");
    assert!(card.oath_json()["access"]["key_hex"].as_str().is_some_and(|k| k.len() == 32), "a 16-byte PBKDF2 key");
    // Without the password nothing is listed; with a wrong one ykman's VALIDATE fails.
    let out = card.ykman(&["oath", "accounts", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let out = card.ykman_in(&["oath", "accounts", "list"], "wrong-password\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .ends_with("Error: Authentication to the YubiKey failed. Wrong password?\n"),
        "{out:?}"
    );
    // With it, everything works (ykman derives the same key from the card's salt).
    assert_eq!(card.ok_in(&["oath", "accounts", "list"], "hunter2-not-argv\n"), "Bank:alice\nExample:rfc\n");
    assert_eq!(card.ok_in(&["oath", "accounts", "code", "-s", "Example"], "hunter2-not-argv\n"), "287082\n");
    assert_eq!(
        card.ok_in(&["oath", "accounts", "delete", "-f", "Example:rfc"], "hunter2-not-argv\n"),
        "Deleted Example:rfc.\n"
    );
    assert_eq!(card.ok_in(&["oath", "accounts", "list"], "hunter2-not-argv\n"), "Bank:alice\n");
    // Clear the password: open again.
    assert_eq!(
        card.ok_in(&["oath", "access", "change", "-c"], "hunter2-not-argv\n"),
        "Password cleared from YubiKey.\n"
    );
    assert_eq!(card.ok(&["oath", "info"]), "OATH version: 5.4.3\nPassword protection: disabled\n");
    assert_eq!(card.ok(&["oath", "accounts", "list"]), "Bank:alice\n");

    // Set one again and forget it: RESET needs no password, empties the applet and draws a
    // new salt (a new device id for ykman).
    card.ok_in(&["oath", "access", "change"], "forgotten\nforgotten\n");
    let salt = card.oath_json()["salt_hex"].clone();
    assert_eq!(
        card.ok(&["oath", "reset", "-f"]),
        "Resetting OATH data...\nSuccess! All OATH accounts have been deleted from the YubiKey.\n"
    );
    assert_eq!(card.ok(&["oath", "info"]), "OATH version: 5.4.3\nPassword protection: disabled\n");
    assert_eq!(card.ok(&["oath", "accounts", "list"]), "");
    let after = card.oath_json();
    assert_ne!(after["salt_hex"], salt);
    assert_eq!(after["access"], serde_json::Value::Null);
    assert_eq!(after["credentials"], serde_json::json!([]));
}
