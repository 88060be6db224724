//! `bank-tools card personalize --batch` with real virtual cards through pcscd and vpcd:
//! two slots, and one slot used twice, where the operator swaps the card when asked (here:
//! the test stops one `virtual-card` and starts the next in the same slot). Every card then
//! answers a login OTP that matches its token file, under the PIN from the CSV file, and the
//! token files enroll at the bank. Needs pcscd with vsmartcard's vpcd (scripts/setup.sh).

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use card_applet::host;
use card_link::TransportExt;
use e2e_tests::{require_pcscd, Slot, VirtualCard};
use paysim_otp as otp;

const VERIFIER: &str = "https://bank.example:443";

/// The card in `reader` answers a login OTP under `pin` that matches the token file.
fn check_card(reader: &str, serial: &str, pin: &str, token: &Path) {
    let t = tools::card::read_token_file(token).unwrap();
    assert_eq!(t.serial, serial);
    let challenge = [0x33; 32];
    let mut link = card_link::PcscCard::connect(reader, Duration::from_secs(20)).unwrap();
    let (fci, counter, code) = link
        .exchange(|ex| {
            let fci = host::parse_select(&ex.transmit(&host::select())?).unwrap();
            host::parse_verify(&ex.transmit(&host::verify(pin).unwrap())?).unwrap();
            let (counter, code) =
                host::parse_otp(&ex.transmit(&host::login_otp(&challenge, VERIFIER).unwrap())?).unwrap();
            Ok::<_, card_link::Error>((fci, counter, code))
        })
        .unwrap();
    assert_eq!(fci.serial.as_deref(), Some(serial), "card in {reader}");
    let ck = t.seed.advance(counter);
    assert!(otp::login_otp(&ck, counter, &challenge, VERIFIER.as_bytes()).matches(code.as_str()), "{serial}");
}

#[test]
fn a_batch_over_two_slots_with_a_card_swap() {
    require_pcscd();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tools_bin = env!("CARGO_BIN_EXE_bank-tools");
    for n in ["a", "b", "c"] {
        let out = Command::new(tools_bin)
            .args(["card", "create", "--state"])
            .arg(d.join(format!("{n}.state")))
            .arg("--admin-key-out")
            .arg(d.join(format!("{n}.admin")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Slot 0 runs whatever state file sits at slot0.state: card A first, card C after the swap.
    std::fs::rename(d.join("a.state"), d.join("slot0.state")).unwrap();
    let mut slot0 = VirtualCard::spawn(Slot(0).lock(), &d.join("slot0.state"), &d.join("slot0.log")).unwrap();
    let slot1 = VirtualCard::spawn(Slot(1).lock(), &d.join("b.state"), &d.join("slot1.log")).unwrap();
    let (r0, r1) = (slot0.reader(), slot1.reader());

    let csv = d.join("cards.csv");
    let text = format!(
        "# three cards, two readers: {r0} is used twice\n\
         reader,serial,admin_key,pin,puk,out,user_id\n\
         {r0},PSIM-0000000A,a.admin,1111,11111111,tokens-a.json,alice\n\
         \"{r1}\",PSIM-0000000B,b.admin,222222,22222222,tokens-b.json,bob\n\
         {r0},PSIM-0000000C,c.admin,33333333,33333333,tokens-c.json,\n"
    );
    tools::secret_file::write_new(&csv, text.as_bytes()).unwrap();

    let mut child = Command::new(tools_bin)
        .args(["card", "personalize", "--swap-wait", "60", "--batch"])
        .arg(&csv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader_thread = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    // The operator's side: wait for the prompt, then swap card A for card C in slot 0.
    let prompt = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("no swap prompt from bank-tools");
        if line.contains("take the card") {
            break line;
        }
    };
    assert!(
        prompt.contains(&format!(
            "take the card of line 3 out of \"{r0}\" and put in the card for PSIM-0000000C (line 5)"
        )),
        "{prompt}"
    );
    slot0.kill();
    std::fs::rename(d.join("slot0.state"), d.join("a.done")).unwrap();
    std::fs::rename(d.join("c.state"), d.join("slot0.state")).unwrap();
    slot0.restart().unwrap();

    let out = child.wait_with_output().unwrap();
    let stderr = reader_thread.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    for (i, (serial, reader, file)) in [
        ("PSIM-0000000A", &r0, "tokens-a.json"),
        ("PSIM-0000000B", &r1, "tokens-b.json"),
        ("PSIM-0000000C", &r0, "tokens-c.json"),
    ]
    .into_iter()
    .enumerate()
    {
        let want = format!("[{}/3] ok    {serial} in {reader:?} -> {}", i + 1, d.join(file).display());
        assert_eq!(lines[i], want);
    }
    assert!(lines[3].ends_with("all 3 cards personalized"), "{stdout}");
    for secret in ["1111", "222222", "33333333", "22222222"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "{secret} leaked");
    }

    // Each card works under its own PIN and matches its own token file.
    check_card(&r1, "PSIM-0000000B", "222222", &d.join("tokens-b.json"));
    check_card(&r0, "PSIM-0000000C", "33333333", &d.join("tokens-c.json"));
    slot0.kill();
    std::fs::rename(d.join("slot0.state"), d.join("c.done")).unwrap();
    std::fs::rename(d.join("a.done"), d.join("slot0.state")).unwrap();
    slot0.restart().unwrap();
    check_card(&r0, "PSIM-0000000A", "1111", &d.join("tokens-a.json"));

    // And the bank takes all three token files.
    let db = d.join("bank.sqlite3");
    let run = |args: &[&str]| {
        let out = Command::new(tools_bin)
            .args(args)
            .arg("--db")
            .arg(&db)
            .arg("--create-db")
            .arg("--master-key-beside-db")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    for (user, file) in [("alice", "tokens-a.json"), ("bob", "tokens-b.json"), ("carol", "tokens-c.json")] {
        run(&["user", "add", user]);
        let file = d.join(file);
        run(&["token", "enroll", "--user", user, "--token-file", file.to_str().unwrap()]);
    }
}
