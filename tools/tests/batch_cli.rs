//! `bank-tools card personalize --batch FILE.csv` through the real binary, without cards:
//! a bad file is refused as a whole with every problem listed and nothing touched; cards that
//! fail (no such reader) do not stop the batch, each gets its result line, and the exit is
//! non-zero at the end. PINs and PUKs never appear in any output.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::bank_tools;

const PINS: [&str; 4] = ["314159", "27182818", "16180339", "14142135"];

/// A directory with two factory cards' admin keys (1.admin, 2.admin).
fn dir_with_keys() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for n in ["1", "2"] {
        let state = dir.path().join(format!("{n}.state"));
        let admin = dir.path().join(format!("{n}.admin"));
        bank_tools(&["card", "create", "--state", state.to_str().unwrap(), "--admin-key-out", admin.to_str().unwrap()])
            .ok();
    }
    dir
}

fn write_csv(dir: &Path, text: &str) -> String {
    let p = dir.join("cards.csv");
    tools::secret_file::write_new(&p, text.as_bytes()).unwrap();
    p.to_str().unwrap().to_owned()
}

fn assert_no_secrets(run: &common::Run) {
    for s in PINS {
        assert!(!run.stdout.contains(s) && !run.stderr.contains(s), "{s} leaked:\n{}\n{}", run.stdout, run.stderr);
    }
}

#[test]
fn a_bad_file_is_refused_whole_with_every_problem_and_no_card_touched() {
    let dir = dir_with_keys();
    let csv = write_csv(
        dir.path(),
        &format!(
            "reader,serial,admin_key,pin,puk,out\n\
             No Such Reader 0,PSIM-1,1.admin,{},{},t1.json\n\
             No Such Reader 0,PSIM-1,2.admin,{},123,t2.json\n\
             No Such Reader 1,PSIM-3,missing.admin,12ab,{},t1.json\n",
            PINS[0], PINS[1], PINS[2], PINS[3]
        ),
    );
    let run = bank_tools(&["card", "personalize", "--batch", &csv]);
    let err = run.refused();
    assert!(err.contains("cards.csv: 5 problem(s), no card was touched"), "{err}");
    for want in [
        "line 3: serial PSIM-1 is already on line 2",
        "line 3: puk: a PUK is exactly 8 digits",
        "line 4: pin: a PIN is 4 to 8 digits",
        "line 4: out ",
        "line 4: admin_key:",
    ] {
        assert!(err.contains(want), "missing {want:?}:\n{err}");
    }
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_no_secrets(&run);
    assert!(!dir.path().join("t1.json").exists());
}

#[test]
fn a_file_others_can_read_is_refused() {
    let dir = dir_with_keys();
    let csv = write_csv(dir.path(), "reader,serial,admin_key,pin,puk,out\nR,PSIM-1,1.admin,1234,12345678,t.json\n");
    std::fs::set_permissions(&csv, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = bank_tools(&["card", "personalize", "--batch", &csv]).refused().to_owned();
    assert!(err.contains("can be read by other users") && err.contains("chmod 600"), "{err}");
}

#[test]
fn single_card_flags_do_not_mix_with_batch() {
    let run = bank_tools(&["card", "personalize", "--batch", "x.csv", "--serial", "PSIM-1"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    let run = bank_tools(&["card", "personalize", "--swap-wait", "5", "--reader", "R"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
}

#[test]
fn failed_cards_do_not_stop_the_batch_and_the_exit_says_which() {
    let dir = dir_with_keys();
    // Readers that do not exist: each card fails on its own (whether pcscd runs or not), the
    // second row of a reader first waits for a card swap, which fails the same way.
    let csv = write_csv(
        dir.path(),
        &format!(
            "reader,serial,admin_key,pin,puk,out,user_id\n\
             No Such Reader 0,PSIM-00000001,1.admin,{},{},t1.json,alice\n\
             No Such Reader 1,PSIM-00000002,2.admin,{},{},t2.json,\n\
             No Such Reader 0,PSIM-00000003,2.admin,1234,12345678,t3.json,\n",
            PINS[0], PINS[1], PINS[2], PINS[3]
        ),
    );
    let run = bank_tools(&["card", "personalize", "--batch", &csv, "--swap-wait", "2"]);
    let err = run.refused().to_owned();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(lines[0].starts_with("[1/3] FAIL  PSIM-00000001 in \"No Such Reader 0\" (line 2): "), "{}", lines[0]);
    assert!(lines[1].starts_with("[2/3] FAIL  PSIM-00000002 in \"No Such Reader 1\" (line 3): "), "{}", lines[1]);
    assert!(lines[2].starts_with("[3/3] FAIL  PSIM-00000003 in \"No Such Reader 0\" (line 4): "), "{}", lines[2]);
    for l in &lines[..3] {
        assert!(l.contains("No Such Reader") && (l.contains("pcscd") || l.contains("no reader named")), "{l}");
    }
    assert!(lines[3].contains(": 0 of 3 cards personalized, 3 failed"), "{}", lines[3]);
    assert!(
        err.contains("take the card of line 2 out of \"No Such Reader 0\" and put in the card for PSIM-00000003"),
        "{err}"
    );
    assert!(
        err.contains("3 of 3 cards failed: PSIM-00000001 (line 2), PSIM-00000002 (line 3), PSIM-00000003 (line 4)"),
        "{err}"
    );
    assert_no_secrets(&run);
    for t in ["t1.json", "t2.json", "t3.json"] {
        assert!(!dir.path().join(t).exists(), "{t}");
    }
}
