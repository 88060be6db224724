//! `bank-tools` against the database of a running `bank-server` process: every change the
//! operator makes is seen by the server at once (enroll, fund, unlock, revoke), and the audit
//! chain stays whole with both processes writing to it.

mod common;

use common::{Bank, Server};

const SEED: [u8; 32] = [0x5A; 32];

#[test]
fn operator_commands_work_while_the_server_runs() {
    let bank = Bank::new();
    let server = Server::start(&bank.db);

    // Set up a customer through the CLI while the server is up.
    bank.run(&["user", "add", "bob"]).ok();
    let file = bank.token_file("PSIM-00000007", SEED);
    let mut card = common::card(SEED, "PSIM-00000007");
    bank.run(&["token", "enroll", "--user", "alice", "--token-file", file.to_str().unwrap()]).ok();
    bank.run(&["account", "open", "--user", "alice", "--number", "ACC-ALICE", "--currency", "EUR"]).ok();
    let out = bank.run(&["account", "fund", "--account", "ACC-ALICE", "--amount", "250.75", "--currency", "EUR"]);
    assert!(out.ok().contains("balance now 250.75 EUR"));

    // The server logs alice in with the token the CLI enrolled, and shows the CLI's funding.
    let (counter, status, v) = server.login("alice", &mut card);
    assert_eq!((counter, status), (0, 200), "{v}");
    let session = v["token"].as_str().unwrap().to_owned();
    let (status, v) = server.request("GET", "/api/v1/accounts", Some(&session), None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["accounts"][0]["number"], "ACC-ALICE");
    assert_eq!(v["accounts"][0]["balance_minor"], 25075);

    // Funding while the server runs shows up in the next page the customer loads.
    bank.run(&["account", "fund", "--account", "ACC-ALICE", "--amount", "0.25", "--currency", "EUR"]).ok();
    let (_, v) = server.request("GET", "/api/v1/accounts", Some(&session), None);
    assert_eq!(v["accounts"][0]["balance_minor"], 25100);

    // The server counts failures and locks the token; the CLI sees it and lifts the lock.
    for _ in 0..5 {
        assert_eq!(server.wrong_login("alice", 1), 401);
    }
    let list = bank.run(&["token", "list"]).ok().to_owned();
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    // Counter 1 was never accepted: next is still 1; the lock shows with its time left.
    assert_eq!(&row[..5], ["PSIM-00000007", "alice", "active", "paysim", "1"], "{list}");
    assert_eq!(row[6], "locked,", "{list}");
    // The card's code at counter 1 is refused: the token is locked.
    let (counter, status, _) = server.login("alice", &mut card);
    assert_eq!((counter, status), (1, 401), "a locked token must not log in");
    bank.run(&["token", "unlock", "PSIM-00000007"]).ok();
    // The card has moved on to counter 2; the bank's look-ahead window takes it.
    let (counter, status, v) = server.login("alice", &mut card);
    assert_eq!((counter, status), (2, 200), "after unlock: {v}");

    // Revoked while the server runs: the next login fails.
    bank.run(&["token", "revoke", "PSIM-00000007"]).ok();
    assert_eq!(server.login("alice", &mut card).1, 401);

    // Both processes appended to one chain, and it verifies while the server still runs.
    let out = bank.run(&["audit", "verify"]).ok().to_owned();
    let rows: u64 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    let server_rows: i64 =
        bank.sql().query_row("SELECT count(*) FROM audit WHERE actor <> 'operator'", [], |r| r.get(0)).unwrap();
    assert!(server_rows >= 5, "the server wrote {server_rows} audit rows");
    let all: i64 = bank.sql().query_row("SELECT count(*) FROM audit", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, u64::try_from(all).unwrap(), "{out}");
    assert!(bank.run(&["audit", "books"]).ok().contains("books balance"));
}

#[test]
fn concurrent_funding_from_many_cli_processes_while_the_server_runs() {
    let bank = Bank::new();
    let server = Server::start(&bank.db);
    bank.run(&["account", "open", "--user", "alice", "--number", "ACC-1", "--currency", "EUR"]).ok();
    // Eight operators fund at once while the server serves challenges: every funding lands.
    let db = bank.db_str().to_owned();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                common::bank_tools(&[
                    "account",
                    "fund",
                    "--account",
                    "ACC-1",
                    "--amount",
                    "1.01",
                    "--currency",
                    "EUR",
                    "--db",
                    &db,
                    "--master-key-beside-db",
                ])
            })
        })
        .collect();
    for _ in 0..8 {
        server.challenge("alice");
    }
    for w in workers {
        w.join().unwrap().ok();
    }
    assert_eq!(bank.run(&["account", "list", "--user", "alice"]).ok(), "ACC-1  8.08 EUR\n");
    assert!(bank.run(&["audit", "verify"]).ok().starts_with("audit log intact"));
    assert!(bank.run(&["audit", "books"]).ok().contains("books balance"));
}
