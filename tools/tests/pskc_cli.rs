//! `bank-tools token export` / `token import` against a third-party PSKC implementation:
//! Arthur de Jong's python-pskc (Debian's `python3-pskc`, installed by `scripts/setup.sh`).
//! It must decrypt and MAC-check what we export, notice a MAC we altered, and write files we
//! import; a PAYSIM card's codes then verify at the bank that imported python's file.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{card, Bank, Server};

/// The interpreter Debian's python3-pskc is installed for (a `python3` earlier in PATH, e.g. a
/// pyenv one, would not see it).
const PYTHON: &str = "/usr/bin/python3";

/// Runs `script` with python-pskc, `args` as `sys.argv[1:]`; (success, stdout, stderr).
fn python(script: &str, args: &[&str]) -> (bool, String, String) {
    let check = Command::new(PYTHON).args(["-c", "import pskc"]).output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "python-pskc is not installed: run `sudo bash scripts/setup.sh` (installs Debian's python3-pskc)"
    );
    let out = Command::new(PYTHON).arg("-c").arg(script).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Prints what python-pskc reads from FILE with the PSK in PSK_FILE (hex): one line per key.
const READ: &str = r#"
import sys, binascii, pskc
p = pskc.PSKC(sys.argv[1])
p.encryption.key = binascii.unhexlify(open(sys.argv[2]).read().strip())
for k in p.keys:
    # Reading .secret decrypts it and checks its ValueMAC (pskc.exceptions.DecryptionError).
    print(p.encryption.key_name, k.id, k.serial, k.algorithm, k.algorithm_suite, k.response_length,
          k.counter, k.time_interval, k.key_userid, binascii.hexlify(k.secret).decode())
"#;

/// Writes FILE with one key under the PSK in PSK_FILE: argv ALGORITHM ID USER SUITE
/// SECRET_HEX COUNTER|- TIME_INTERVAL|-.
const WRITE: &str = r#"
import sys, binascii, pskc
path, psk_file, algorithm, id, user, suite, secret, counter, interval = sys.argv[1:]
p = pskc.PSKC()
k = p.add_key(id=id, serial=id, secret=binascii.unhexlify(secret), algorithm=algorithm,
              response_length=8, response_encoding='DECIMAL', algorithm_suite=suite,
              key_userid=user, issuer='python-pskc')
if counter != '-':
    k.counter = int(counter)
if interval != '-':
    k.time_interval = int(interval)
p.encryption.setup_preshared_key(key=binascii.unhexlify(open(psk_file).read().strip()), key_name='from-python')
p.write(path)
"#;

fn psk(dir: &Path) -> String {
    let path = dir.join("transfer.psk");
    tools::secret_file::write_new(&path, b"000102030405060708090a0b0c0d0e0f\n").unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn python_pskc_decrypts_our_export_and_notices_an_altered_mac() {
    let bank = Bank::new();
    let seed: [u8; 32] = core::array::from_fn(|i| 0x40 + i as u8);
    let token_file = bank.token_file("PSIM-00000042", seed);
    bank.run(&["token", "enroll", "--user", "alice", "--token-file", token_file.to_str().unwrap()]).ok();
    let psk = psk(bank.dir.path());
    let file = bank.dir.path().join("alice.pskc");
    let f = file.to_str().unwrap();
    let out = bank.run(&["token", "export", "--user", "alice", "--pskc-out", f, "--psk-file", &psk]);
    assert!(out.ok().contains("exported token PSIM-00000042 of user alice"), "{}", out.stdout);
    assert!(!out.stdout.contains(&hex::encode(seed)) && !out.stderr.contains(&hex::encode(seed)));

    let (ok, stdout, stderr) = python(READ, &[f, &psk]);
    assert!(ok, "python-pskc refused our export: {stderr}");
    assert_eq!(
        stdout.trim(),
        format!(
            "transfer.psk PSIM-00000042 PSIM-00000042 {} tx-context-v2 8 0 None alice {}",
            tools::pskc::PAYSIM_ALGORITHM,
            hex::encode(seed)
        )
    );

    // One character of the ValueMAC changed: python-pskc refuses the secret, and so do we.
    let text = std::fs::read_to_string(&file).unwrap();
    let at = text.find("<ValueMAC>").unwrap() + "<ValueMAC>".len();
    let new = if text.as_bytes()[at] == b'A' { "B" } else { "A" };
    let broken = bank.dir.path().join("broken.pskc");
    std::fs::write(&broken, format!("{}{new}{}", &text[..at], &text[at + 1..])).unwrap();
    let b = broken.to_str().unwrap();
    let (ok, _, stderr) = python(READ, &[b, &psk]);
    assert!(!ok && stderr.contains("MAC"), "python-pskc accepted an altered MAC: {stderr}");
    let other = Bank::new();
    let err = other.run(&["token", "import", "--pskc", b, "--psk-file", &psk]).refused().to_owned();
    assert!(err.contains("KeyPackage 1 / Data/Secret: ValueMAC does not match"), "{err}");
}

#[test]
fn files_python_pskc_wrote_import_and_the_cards_codes_verify() {
    let bank = Bank::new();
    bank.run(&["user", "add", "dave"]).ok();
    let psk = psk(bank.dir.path());
    let seed: [u8; 32] = core::array::from_fn(|i| 0x90 ^ i as u8);
    let paysim = bank.dir.path().join("paysim.pskc");
    let paysim = paysim.to_str().unwrap();
    let (ok, _, stderr) = python(
        WRITE,
        &[
            paysim,
            &psk,
            tools::pskc::PAYSIM_ALGORITHM,
            "PSIM-PY-1",
            "alice",
            "tx-context-v2",
            &hex::encode(seed),
            "0",
            "-",
        ],
    );
    assert!(ok, "{stderr}");
    let out = bank.run(&["token", "import", "--pskc", paysim, "--psk-file", &psk]);
    assert!(
        out.ok().contains("imported token PSIM-PY-1 for user alice (PAYSIM card, next counter 0"),
        "{}",
        out.stdout
    );
    // The card holding that seed logs in at the bank.
    let server = Server::start(&bank.db);
    let mut alice_card = card(seed, "PSIM-PY-1");
    let (counter, status, body) = server.login("alice", &mut alice_card);
    assert_eq!((counter, status), (0, 200), "{body}");

    // An OATH credential as python-pskc writes TOTP: lands as the bank's OATH token, and an
    // export of it gives python the same key back.
    let key: [u8; 32] = core::array::from_fn(|i| 7 * i as u8 + 1);
    let oath = bank.dir.path().join("oath.pskc");
    let oath = oath.to_str().unwrap();
    let totp = tools::pskc::TOTP_ALGORITHM;
    let (ok, _, stderr) =
        python(WRITE, &[oath, &psk, totp, "OATH-PY-1", "dave", "HMAC-SHA256", &hex::encode(key), "-", "30"]);
    assert!(ok, "{stderr}");
    bank.run(&["token", "import", "--pskc", oath, "--psk-file", &psk]).ok();
    let back = bank.dir.path().join("back.pskc");
    let back = back.to_str().unwrap();
    bank.run(&["token", "export", "--user", "dave", "--pskc-out", back, "--psk-file", &psk]).ok();
    let (ok, stdout, stderr) = python(READ, &[back, &psk]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("transfer.psk OATH-PY-1 OATH-PY-1 {totp} HMAC-SHA256 8 None 30 dave {}", hex::encode(key))
    );

    // What the bank cannot use is refused at its element: an HOTP key, a SHA-1 TOTP key.
    bank.run(&["user", "add", "erin"]).ok();
    for (algorithm, suite, element) in [
        (tools::pskc::HOTP_ALGORITHM, "HMAC-SHA1", "KeyPackage 1 / Key@Algorithm"),
        (totp, "HMAC-SHA1", "KeyPackage 1 / AlgorithmParameters/Suite"),
    ] {
        let path = bank.dir.path().join("refused.pskc");
        let _ = std::fs::remove_file(&path);
        let path = path.to_str().unwrap();
        let (ok, _, stderr) =
            python(WRITE, &[path, &psk, algorithm, "OATH-PY-2", "erin", suite, &hex::encode(key), "0", "-"]);
        assert!(ok, "{stderr}");
        let err = bank.run(&["token", "import", "--pskc", path, "--psk-file", &psk]).refused().to_owned();
        assert!(err.contains(element), "{algorithm} {suite}: {err}");
    }
    // Nothing of the refused files was enrolled.
    let listed = bank.run(&["token", "list"]).ok().to_owned();
    assert!(!listed.contains("OATH-PY-2"), "{listed}");
}
