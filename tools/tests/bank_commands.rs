//! `bank-tools` user, token, account and audit commands, through the real binary against a
//! temp database: what each prints when it works, and the exact refusal for bad input.

mod common;

use common::{bank_tools, Bank};

#[test]
fn a_missing_database_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.sqlite3");
    let db = db.to_str().unwrap();
    for args in [
        vec!["user", "add", "alice", "--db", db],
        vec!["token", "list", "--db", db],
        vec!["audit", "verify", "--db", db],
        vec!["account", "list", "--user", "alice", "--db", db],
    ] {
        let err = bank_tools(&args).refused().to_owned();
        assert!(err.contains("does not exist") && err.contains("--create-db"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a file was created");
}

#[test]
fn the_db_comes_from_bank_db_when_no_flag_is_given() {
    let bank = Bank::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bank-tools"))
        .args(["user", "add", "bob", "--master-key-beside-db"])
        .env("BANK_DB", &bank.db)
        .env_remove("BANK_MASTER_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("added user bob"));
    assert!(bank.run(&["user", "add", "bob"]).refused().contains("user \"bob\" already exists"));
}

#[test]
fn users_are_added_once_with_valid_names() {
    let bank = Bank::new();
    let out = bank.run(&["user", "add", "bob.smith-2"]);
    assert_eq!(out.ok().trim(), format!("added user bob.smith-2 to {}", bank.db.display()));
    assert!(bank.run(&["user", "add", "alice"]).refused().contains("user \"alice\" already exists"));
    for bad in ["Bob", "", "a b", &"x".repeat(33)] {
        let err = bank.run(&["user", "add", bad]).refused().to_owned();
        assert!(err.contains("user name must be 1-32 characters of a-z 0-9 . _ -"), "{bad:?}: {err}");
    }
}

#[test]
fn accounts_open_and_fund_in_exact_minor_units() {
    let bank = Bank::new();
    assert_eq!(
        bank.run(&[
            "account",
            "open",
            "--user",
            "alice",
            "--number",
            "ACC-A-EUR",
            "--currency",
            "eur",
            "--holder",
            " Alice Ö "
        ])
        .ok()
        .trim(),
        "opened account ACC-A-EUR (EUR) for user alice, in the name of Alice Ö"
    );
    let out = bank.run(&["account", "open", "--user", "alice", "--number", "ACC-A-JPY", "--currency", "JPY"]);
    assert!(out.ok().contains("without a holder's name"), "the operator is told what that means");
    // A holder's name outside the rule is refused with the rule, before the database is touched.
    let e = bank.run(&[
        "account",
        "open",
        "--user",
        "alice",
        "--number",
        "ACC-A-X",
        "--currency",
        "EUR",
        "--holder",
        "a\tb",
    ]);
    assert!(e.refused().contains("1-70 characters"), "{}", e.refused());
    assert_eq!(bank_server::ops::accounts(&bank.db, "alice").unwrap().len(), 2);
    let out = bank.run(&["account", "fund", "--account", "ACC-A-EUR", "--amount", "12.34", "--currency", "EUR"]);
    assert_eq!(out.ok().trim(), "funded account ACC-A-EUR with 12.34 EUR; balance now 12.34 EUR");
    let out = bank.run(&[
        "account",
        "fund",
        "--account",
        "ACC-A-EUR",
        "--amount",
        "0.5",
        "--currency",
        "EUR",
        "--memo",
        "top-up",
    ]);
    assert_eq!(out.ok().trim(), "funded account ACC-A-EUR with 0.50 EUR; balance now 12.84 EUR");
    bank.run(&["account", "fund", "--account", "ACC-A-JPY", "--amount", "500", "--currency", "JPY"]).ok();
    assert_eq!(bank.run(&["account", "list", "--user", "alice"]).ok(), "ACC-A-EUR  12.84 EUR\nACC-A-JPY  500 JPY\n");
    // What the ledger holds, in minor units, straight from the database.
    let minor: i64 =
        bank.sql().query_row("SELECT balance FROM accounts WHERE number = 'ACC-A-EUR'", [], |r| r.get(0)).unwrap();
    assert_eq!(minor, 1284);
    assert!(bank.run(&["audit", "books"]).ok().contains("EUR: customers hold 12.84 EUR, funded 12.84 EUR"));
}

#[test]
fn bad_accounts_and_amounts_are_refused_and_move_nothing() {
    let bank = Bank::new();
    bank.run(&["account", "open", "--user", "alice", "--number", "ACC-1", "--currency", "EUR"]).ok();
    bank.run(&["account", "fund", "--account", "ACC-1", "--amount", "10", "--currency", "EUR"]).ok();
    let open = |user: &str, number: &str, cur: &str| {
        bank.run(&["account", "open", "--user", user, "--number", number, "--currency", cur]).refused().to_owned()
    };
    assert!(open("carol", "ACC-2", "EUR").contains("unknown user \"carol\""));
    assert!(
        open("alice", "ACC-2", "XYZ").contains("currency \"XYZ\" is not one the bank keeps (EUR, USD, GBP, CHF, JPY)")
    );
    assert!(open("alice", "ACC-1", "EUR").contains("account \"ACC-1\" already exists"));
    assert!(open("alice", "acc 2", "EUR").contains("account number must be 1-34 characters of A-Z 0-9 -"));

    let fund = |account: &str, amount: &str, cur: &str| {
        bank.run(&["account", "fund", "--account", account, "--amount", amount, "--currency", cur]).refused().to_owned()
    };
    for (amount, cur, want) in [
        ("-5", "EUR", "amount \"-5\" is negative"),
        ("-0.01", "EUR", "is negative"),
        ("0", "EUR", "amount \"0\" is zero"),
        ("12.345", "EUR", "amount \"12.345\" has 3 decimals, but EUR has 2"),
        ("1,50", "EUR", "is not a decimal number like 12.34"),
        ("1e3", "EUR", "is not a decimal number"),
        ("abc", "EUR", "is not a decimal number"),
        ("5", "EURO", "currency \"EURO\" is not one the bank keeps"),
        ("5", "USD", "it is kept in EUR, not USD; nothing was moved"),
        ("99999999999999999999", "EUR", "is too large"),
    ] {
        let err = fund("ACC-1", amount, cur);
        assert!(err.contains(want), "{amount} {cur}: {err}");
    }
    assert!(fund("ACC-404", "5", "EUR").contains("unknown account \"ACC-404\""));
    assert!(fund("FUNDING-EUR", "5", "EUR").contains("unknown account \"FUNDING-EUR\""));
    assert_eq!(bank.run(&["account", "list", "--user", "alice"]).ok(), "ACC-1  10.00 EUR\n");
    assert!(bank.run(&["account", "list", "--user", "carol"]).refused().contains("unknown user \"carol\""));
    assert!(bank.run(&["audit", "books"]).ok().contains("books balance"));
}

#[test]
fn tokens_enroll_list_unlock_and_revoke() {
    let bank = Bank::new();
    assert_eq!(bank.run(&["token", "list"]).ok().trim(), format!("no tokens enrolled in {}", bank.db.display()));
    let file = bank.token_file("PSIM-00000001", [0x42; 32]);
    let out = bank.run(&["token", "enroll", "--user", "alice", "--token-file", file.to_str().unwrap()]);
    assert_eq!(
        out.ok().trim(),
        "enrolled token PSIM-00000001 for user alice (next counter 0, transaction context version 2)"
    );
    let list = bank.run(&["token", "list"]).ok().to_owned();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("SERIAL") && lines[0].contains("STATUS"), "{list}");
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cells, ["PSIM-00000001", "alice", "active", "paysim", "0", "0", "-"], "{list}");
    // Secrets stay out of every output, and out of the database in plain form.
    let json = bank.run(&["token", "list", "--json"]).ok().to_owned();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["serial"], "PSIM-00000001");
    assert_eq!(v[0]["status"], "active");
    assert_eq!(v[0]["kind"], "paysim");
    assert!(!json.contains(&"42".repeat(8)) && !list.contains(&"42".repeat(8)));
    let dump = std::fs::read(&bank.db).unwrap();
    assert!(!dump.windows(32).any(|w| w == [0x42; 32]), "the seed is in the database in plain form");

    // A locked token: failures recorded by the bank, then cleared by the operator.
    bank.sql()
        .execute(
            "UPDATE tokens SET failures = 5, locked_until = strftime('%s','now') + 600 WHERE serial = 'PSIM-00000001'",
            [],
        )
        .unwrap();
    let list = bank.run(&["token", "list"]).ok().to_owned();
    assert!(list.contains("locked,") && list.contains(" 5 "), "{list}");
    assert_eq!(
        bank.run(&["token", "unlock", "PSIM-00000001"]).ok().trim(),
        "unlocked token PSIM-00000001: failure count cleared, lock lifted"
    );
    let list = bank.run(&["token", "list"]).ok().to_owned();
    assert_eq!(list.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>()[5..], ["0", "-"], "{list}");

    assert_eq!(
        bank.run(&["token", "revoke", "PSIM-00000001"]).ok().trim(),
        "revoked token PSIM-00000001: it will never authenticate again"
    );
    assert!(bank.run(&["token", "list"]).ok().contains("revoked"));
    assert!(bank.run(&["token", "revoke", "PSIM-00000001"]).refused().contains("token \"PSIM-00000001\" is revoked"));
    assert!(bank.run(&["token", "unlock", "PSIM-00000001"]).refused().contains("token \"PSIM-00000001\" is revoked"));
}

#[test]
fn bad_enrollments_are_refused() {
    let bank = Bank::new();
    bank.run(&["user", "add", "bob"]).ok();
    let file = bank.token_file("PSIM-00000001", [1; 32]);
    let f = file.to_str().unwrap();
    let enroll = |user: &str, f: &str| bank.run(&["token", "enroll", "--user", user, "--token-file", f]);
    assert!(enroll("carol", f).refused().contains("unknown user \"carol\""));
    enroll("alice", f).ok();
    // The same card again, for anyone: duplicate serial.
    assert!(enroll("bob", f).refused().contains("a token with serial \"PSIM-00000001\" is already enrolled"));
    // A second card for a user who has an active one.
    let second = bank.token_file("PSIM-00000002", [2; 32]);
    assert!(enroll("alice", second.to_str().unwrap()).refused().contains("already has the active token"));

    // Files: missing, readable by others, not a token file.
    let dir = bank.dir.path();
    let missing = enroll("bob", dir.join("none.json").to_str().unwrap()).refused().to_owned();
    assert!(missing.contains("none.json"), "{missing}");
    assert_eq!(missing.matches("No such file or directory").count(), 1, "the cause is printed once: {missing}");
    let loose = bank.token_file("PSIM-00000003", [3; 32]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(enroll("bob", loose.to_str().unwrap()).refused().contains("chmod 600"));
    for (name, text, want) in [
        ("garbage.json", "not json".to_owned(), "not valid JSON"),
        (
            "format.json",
            format!(r#"{{"format":"other","serial":"PSIM-4","seed_hex":"{}","counter":0}}"#, "ab".repeat(32)),
            "`format` must be",
        ),
        (
            "seed.json",
            r#"{"format":"paysim-token-v1","serial":"PSIM-4","seed_hex":"abcd","counter":0}"#.to_owned(),
            "`seed_hex` must be 64 hex digits",
        ),
    ] {
        let p = dir.join(name);
        tools::secret_file::write_new(&p, text.as_bytes()).unwrap();
        let err = enroll("bob", p.to_str().unwrap()).refused().to_owned();
        assert!(err.contains(want), "{name}: {err}");
    }
    // Nothing of the refused enrollments reached the bank.
    let list = bank.run(&["token", "list", "--json"]).ok().to_owned();
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn unknown_and_malformed_serials_are_refused() {
    let bank = Bank::new();
    for cmd in ["unlock", "revoke"] {
        let err = bank.run(&["token", cmd, "PSIM-404"]).refused().to_owned();
        assert!(err.contains("no token with serial \"PSIM-404\""), "{cmd}: {err}");
        let err = bank.run(&["token", cmd, "psim 1"]).refused().to_owned();
        assert!(err.contains("is not a card serial"), "{cmd}: {err}");
    }
}

#[test]
fn audit_verify_names_the_first_tampered_row() {
    let bank = Bank::new();
    bank.run(&["account", "open", "--user", "alice", "--number", "ACC-1", "--currency", "EUR"]).ok();
    bank.run(&["account", "fund", "--account", "ACC-1", "--amount", "100", "--currency", "EUR"]).ok();
    bank.run(&["account", "fund", "--account", "ACC-1", "--amount", "5", "--currency", "EUR"]).ok();
    let rows: i64 = bank.sql().query_row("SELECT count(*) FROM audit", [], |r| r.get(0)).unwrap();
    assert!(rows >= 4, "{rows}");
    let out = bank.run(&["audit", "verify"]).ok().to_owned();
    assert!(out.starts_with(&format!("audit log intact: {rows} rows, head hash ")), "{out}");
    let head = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(head.len(), 64);
    let json = bank.run(&["audit", "verify", "--json"]).ok().to_owned();
    assert_eq!(json.lines().count(), 1, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"intact": true, "rows": rows, "head": head, "keyed": true, "first_bad": null, "checkpoint": null})
    );

    // Someone rewrites the first funding (row 3) to a larger amount.
    let (id, detail): (i64, String) = bank
        .sql()
        .query_row("SELECT id, detail FROM audit WHERE kind = 'funding' ORDER BY id LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let forged = detail.replace("10000", "99999");
    assert_ne!(forged, detail);
    // The table's triggers refuse edits; someone with the database file drops them first.
    let edit = "UPDATE audit SET detail = ?1 WHERE id = ?2";
    let refused = bank.sql().execute(edit, rusqlite::params![forged, id]).unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    bank.sql().execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;").unwrap();
    bank.sql().execute("UPDATE audit SET detail = ?1 WHERE id = ?2", rusqlite::params![forged, id]).unwrap();
    let err = bank.run(&["audit", "verify"]).refused().to_owned();
    assert!(err.contains(&format!("audit log BROKEN at row {id}: the row's content does not match its MAC")), "{err}");
    // The same finding for scripts: one JSON object, and still a failing exit code.
    let run = bank.run(&["audit", "verify", "--json"]);
    run.refused();
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["first_bad"]["row"], id, "{v}");
    assert!(v["first_bad"]["problem"].as_str().unwrap().starts_with("the row's content does not match its MAC"), "{v}");
    assert_eq!(v["rows"], id - 1, "{v}");
    assert!(err.contains(&format!("{} rows before it are intact", id - 1)), "{err}");

    // Put it back: intact again, with the same head. Then delete a row in the middle.
    bank.sql().execute("UPDATE audit SET detail = ?1 WHERE id = ?2", rusqlite::params![detail, id]).unwrap();
    assert!(bank.run(&["audit", "verify"]).ok().contains(&head));
    bank.sql().execute("DELETE FROM audit WHERE id = 2", []).unwrap();
    let err = bank.run(&["audit", "verify"]).refused().to_owned();
    assert!(err.contains("BROKEN at row 3: rows are missing before this one"), "{err}");
}

/// A checkpoint pins the row count and head: cutting the tail (which leaves a chain that
/// verifies on its own) is found, an altered checkpoint and another bank's are refused, and
/// the log may grow past it.
#[test]
fn audit_checkpoint_finds_a_cut_tail_and_refuses_another_banks() {
    let bank = Bank::new();
    bank.run(&["account", "open", "--user", "alice", "--number", "ACC-1", "--currency", "EUR"]).ok();
    bank.run(&["account", "fund", "--account", "ACC-1", "--amount", "100", "--currency", "EUR"]).ok();
    let cp = bank.dir.path().join("head.json");
    let cp_s = cp.to_str().unwrap();
    let out = bank.run(&["audit", "checkpoint", "--out", cp_s]).ok().to_owned();
    let rows: i64 = bank.sql().query_row("SELECT count(*) FROM audit", [], |r| r.get(0)).unwrap();
    assert!(out.contains(&format!("{rows} rows")), "{out}");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    assert_eq!((saved["format"].as_str(), saved["rows"].as_i64()), (Some("paysim-audit-checkpoint-1"), Some(rows)));
    // Never overwritten.
    assert!(bank.run(&["audit", "checkpoint", "--out", cp_s]).refused().contains("never overwritten"));

    // More events: the checkpoint still fits.
    bank.run(&["account", "fund", "--account", "ACC-1", "--amount", "5", "--currency", "EUR"]).ok();
    let out = bank.run(&["audit", "verify", "--checkpoint", cp_s]).ok().to_owned();
    assert!(out.contains(&format!("checkpoint fits: row {rows} still has head")), "{out}");

    // An edited checkpoint (a smaller row count, to hide a later cut) is refused by its MAC.
    let mut edited = saved.clone();
    edited["rows"] = serde_json::json!(rows - 1);
    let edited_path = bank.dir.path().join("edited.json");
    std::fs::write(&edited_path, edited.to_string()).unwrap();
    let err = bank.run(&["audit", "verify", "--checkpoint", edited_path.to_str().unwrap()]).refused().to_owned();
    assert!(err.contains("MAC does not match"), "{err}");

    // Another bank's checkpoint is refused by its key id.
    let other = Bank::new();
    let other_cp = other.dir.path().join("other.json");
    other.run(&["audit", "checkpoint", "--out", other_cp.to_str().unwrap()]).ok();
    let err = bank.run(&["audit", "verify", "--checkpoint", other_cp.to_str().unwrap()]).refused().to_owned();
    assert!(err.contains("made by another bank or under another master key"), "{err}");

    // The tail is cut back to before the checkpoint: the chain alone verifies, the checkpoint
    // does not.
    bank.sql().execute_batch("DROP TRIGGER audit_no_delete;").unwrap();
    bank.sql().execute("DELETE FROM audit WHERE id >= ?1", [rows - 1]).unwrap();
    assert!(bank.run(&["audit", "verify"]).ok().contains(&format!("intact: {} rows", rows - 2)));
    let err = bank.run(&["audit", "verify", "--checkpoint", cp_s]).refused().to_owned();
    assert!(err.contains(&format!("{} intact rows, fewer than the {rows} the checkpoint saw", rows - 2)), "{err}");
}

#[test]
fn audit_books_fails_when_a_balance_is_forged() {
    let bank = Bank::new();
    bank.run(&["account", "open", "--user", "alice", "--number", "ACC-1", "--currency", "EUR"]).ok();
    bank.run(&["account", "fund", "--account", "ACC-1", "--amount", "100", "--currency", "EUR"]).ok();
    bank.sql().execute("UPDATE accounts SET balance = balance + 1 WHERE number = 'ACC-1'", []).unwrap();
    let run = bank.run(&["audit", "books"]);
    assert!(run.refused().contains("the books do NOT balance"), "{}", run.stderr);
    assert!(run.stdout.contains("problem: "), "{}", run.stdout);
    let run = bank.run(&["audit", "books", "--json"]);
    assert!(run.refused().contains("the books do NOT balance"), "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["balanced"], false, "{v}");
    assert!(!v["problems"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(
        v["currencies"],
        serde_json::json!([{"currency": "EUR", "customers_minor": 10001, "funded_minor": 10000}])
    );
}

#[test]
fn token_enroll_needs_the_master_key_source_named() {
    // A bank whose key file is kept apart from the database (as an operator should).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    let bank = Bank { dir, db };
    let key = bank.dir.path().join("keys.d").join("bank.key");
    std::fs::create_dir(key.parent().unwrap()).unwrap();
    let k = key.to_str().unwrap();
    bank_tools(&["user", "add", "alice", "--create-db", "--db", bank.db_str(), "--master-key", k]).ok();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "created 0600 where named");
    let file = bank.token_file("PSIM-00000001", [1; 32]);
    let f = file.to_str().unwrap();
    // Without a source (the file beside the database is not taken unasked).
    let err = bank_tools(&["token", "enroll", "--user", "alice", "--token-file", f, "--db", bank.db_str()])
        .refused()
        .to_owned();
    assert!(err.contains("no master key given") && err.contains("--master-key FILE"), "{err}");
    assert!(!bank_server::master_key::key_path(&bank.db).exists(), "no key file was made beside the database");
    let args = ["token", "enroll", "--user", "alice", "--token-file", f, "--db", bank.db_str(), "--master-key", k];
    bank_tools(&args).ok();
    assert!(!bank_server::master_key::key_path(&bank.db).exists());
    // Both at once: refused.
    let err = bank_tools(&[&args[..], &["--master-key-beside-db"]].concat()).refused().to_owned();
    assert!(err.contains("more than one master key given"), "{err}");
    // Writes other than enrolling need it too: their audit rows are chained under it.
    let err = bank_tools(&["user", "add", "bob", "--db", bank.db_str()]).refused().to_owned();
    assert!(err.contains("no master key given"), "{err}");
}

#[test]
fn enrolling_under_another_master_key_is_refused() {
    let bank = Bank::new();
    bank.run(&["user", "add", "bob"]).ok();
    let first = bank.token_file("PSIM-00000001", [1; 32]);
    // The first enrollment creates the key file beside the database.
    bank.run(&["token", "enroll", "--user", "alice", "--token-file", first.to_str().unwrap()]).ok();
    let key_file = bank_server::master_key::key_path(&bank.db);
    assert!(key_file.exists(), "{}", key_file.display());
    let second = bank.token_file("PSIM-00000002", [2; 32]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bank-tools"))
        .args(["token", "enroll", "--user", "bob", "--token-file", second.to_str().unwrap(), "--db", bank.db_str()])
        .env_remove("BANK_DB")
        .env("BANK_MASTER_KEY", "77".repeat(32))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the master key does not match this database"), "{err}");
    assert!(!err.contains(&"77".repeat(32)), "the key leaked: {err}");
    let list = bank.run(&["token", "list", "--json"]).ok().to_owned();
    assert!(!list.contains("PSIM-00000002"), "{list}");
}

/// Scripts read `account list --json`, and the database flags go before the command as well
/// as after it.
#[test]
fn account_list_json_and_global_db_flags() {
    let bank = Bank::new();
    let db = bank.db_str();
    let before = |args: &[&str]| {
        let mut all = vec!["--db", db, "--master-key-beside-db"];
        all.extend(args);
        bank_tools(&all)
    };
    before(&["account", "open", "--user", "alice", "--number", "ACC-1", "--currency", "EUR"]).ok();
    before(&["account", "fund", "--account", "ACC-1", "--amount", "12.5", "--currency", "EUR"]).ok();
    before(&["account", "open", "--user", "alice", "--number", "ACC-2", "--currency", "JPY"]).ok();
    let json = before(&["account", "list", "--user", "alice", "--json"]).ok().to_owned();
    assert_eq!(json.lines().count(), 1, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v,
        serde_json::json!([
            {"number": "ACC-1", "currency": "EUR", "balance_minor": 1250, "balance": "12.50"},
            {"number": "ACC-2", "currency": "JPY", "balance_minor": 0, "balance": "0"},
        ])
    );
    // A user without accounts is an empty array, not a sentence.
    before(&["user", "add", "bob"]).ok();
    assert_eq!(before(&["account", "list", "--user", "bob", "--json"]).ok().trim(), "[]");
    let books = before(&["audit", "books", "--json"]).ok().to_owned();
    let v: serde_json::Value = serde_json::from_str(&books).unwrap();
    assert_eq!(v["balanced"], true, "{v}");
}
