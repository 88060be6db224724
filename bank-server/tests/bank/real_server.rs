//! The real binary on port 0: readiness line, a whole flow over TCP, and `kill -9` in the
//! middle of a load.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use bank_server::ops;
use paysim_otp::ChainKey;
use serde_json::{json, Value};

use crate::common::{seed, sign_tx, Card, VID};
use crate::server::Server;

struct Api {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl Api {
    fn post(&self, path: &str, body: Value) -> reqwest::Result<(u16, Value)> {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send()?;
        Ok((r.status().as_u16(), r.json().unwrap_or(Value::Null)))
    }

    fn get(&self, path: &str) -> reqwest::Result<(u16, Value)> {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send()?;
        Ok((r.status().as_u16(), r.json().unwrap_or(Value::Null)))
    }

    fn login(base: &str, card: &mut Card, user: &str) -> Api {
        let mut api = Api { http: reqwest::blocking::Client::new(), base: base.to_owned(), token: String::new() };
        let (st, c) = api.post("/api/v1/login/challenge", json!({ "user": user })).unwrap();
        assert_eq!(st, 200, "{c}");
        let (counter, otp) = card.login(c["challenge_hex"].as_str().unwrap(), VID);
        let (st, v) = api
            .post("/api/v1/login", json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp }))
            .unwrap();
        assert_eq!(st, 200, "{v}");
        api.token = v["token"].as_str().unwrap().to_owned();
        api
    }

    /// Create, sign, confirm. `Err` when the server went away.
    fn pay(&self, card: &mut Card, id: &str, amount: u64) -> reqwest::Result<(u16, Value)> {
        let body = json!({ "transfer_id": id, "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR", "amount_minor": amount, "currency": "EUR", "payee_name": "bob" });
        let (st, created) = self.post("/api/v1/transfers", body)?;
        if st != 201 {
            return Ok((st, created));
        }
        let (counter, otp) = sign_tx(card, &created);
        self.post(
            &format!("/api/v1/transfers/{id}/confirm"),
            json!({ "challenge_id": created["challenge_id"], "counter": counter, "otp": otp }),
        )
    }
}

fn setup(db: &Path) {
    for user in ["alice", "bob"] {
        ops::add_user(db, user).unwrap();
        ops::enroll_token(db, &format!("PSIM-{}", user.to_uppercase()), &ChainKey::from_bytes(seed(user)), 0, user)
            .unwrap();
        ops::open_account(db, user, &format!("ACC-{}-EUR", user.to_uppercase()), "EUR", Some(user)).unwrap();
    }
    ops::fund(db, "ACC-ALICE-EUR", 1_000_000, "opening").unwrap();
}

#[test]
fn the_binary_serves_a_whole_flow_on_port_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    setup(&db);
    let server = Server::spawn(&db, &["--public-url", VID], false);
    let mut card = Card::new(seed("alice"));
    let api = Api::login(&server.base, &mut card, "alice");
    let (st, v) = api.pay(&mut card, "real-1", 4200).unwrap();
    assert_eq!((st, &v["transfer"]["status"]), (200, &json!("executed")), "{v}");
    let (st, v) = api.get("/api/v1/accounts").unwrap();
    assert_eq!(st, 200);
    assert_eq!(v["accounts"][0]["balance_minor"], 1_000_000 - 4200);
    // Operator functions work on the database while the server runs.
    assert_eq!(ops::fund(&db, "ACC-ALICE-EUR", 800, "while serving").unwrap(), 1_000_000 - 4200 + 800);
    assert_eq!(ops::list_tokens(&db).unwrap().len(), 2);
    let (_, v) = api.get("/api/v1/accounts").unwrap();
    assert_eq!(v["accounts"][0]["balance_minor"], 1_000_000 - 4200 + 800);
    // The website answers on the same port.
    let page = api.http.get(format!("{}/login", server.base)).send().unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    // The audit log has the login with the address the connection came from (the serve loop's
    // connect info), and the operator's funding with none.
    let events = ops::recent_audit(&db, 1000).unwrap();
    let login = events.iter().find(|e| e.kind == "session_started").unwrap();
    assert!(login.client.as_deref().is_some_and(|c| c.starts_with("127.0.0.1:")), "{login:?}");
    let funding = events.iter().find(|e| e.kind == "funding").unwrap();
    assert_eq!(funding.client, None);
    assert!(ops::verify_audit(&db).unwrap().is_intact());
    // SIGTERM: a clean stop with exit status 0.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(server.child.wait().unwrap().success());
}

#[test]
fn kill_9_in_the_middle_of_a_load_loses_no_acknowledged_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    setup(&db);
    let mut server = Server::spawn(&db, &["--public-url", VID], false);
    let base = server.base.clone();
    let (ack_tx, ack_rx) = mpsc::channel::<String>();
    let loader = std::thread::spawn(move || {
        let mut card = Card::new(seed("alice"));
        let api = Api::login(&base, &mut card, "alice");
        let mut sent = Vec::new();
        for i in 0.. {
            let id = format!("load-{i}");
            sent.push(id.clone());
            match api.pay(&mut card, &id, 100) {
                Ok((200, _)) => {
                    if ack_tx.send(id).is_err() {
                        break;
                    }
                }
                Ok((st, v)) => panic!("{st}: {v}"),
                Err(_) => break, // the server is gone
            }
        }
        (card, sent)
    });
    let mut acked = Vec::new();
    while acked.len() < 15 {
        acked.push(ack_rx.recv().unwrap());
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    drop(ack_rx);
    let (mut card, sent) = loader.join().unwrap();

    // Every acknowledged transfer is there; the books balance.
    let books = ops::check_books(&db).unwrap();
    assert!(books.problems.is_empty(), "{:?}", books.problems);
    assert_eq!(books.customer_totals, vec![("EUR".to_owned(), 1_000_000)]);
    let c = rusqlite::Connection::open(&db).unwrap();
    for id in &acked {
        let status: String =
            c.query_row("SELECT status FROM transfers WHERE client_id = ?1", [id], |r| r.get(0)).unwrap();
        assert_eq!(status, "executed", "{id}");
    }
    let executed: i64 =
        c.query_row("SELECT count(*) FROM transfers WHERE status = 'executed'", [], |r| r.get(0)).unwrap();
    let bob: i64 = c.query_row("SELECT balance FROM accounts WHERE number = 'ACC-BOB-EUR'", [], |r| r.get(0)).unwrap();
    assert_eq!(bob, executed * 100);
    assert!(executed as usize >= acked.len());
    assert!(ops::verify_audit(&db).unwrap().is_intact());

    // Restarted, the bridge retries the transfer that was in flight: it moves exactly once.
    let server = Server::spawn(&db, &["--public-url", VID], false);
    let api = Api::login(&server.base, &mut card, "alice");
    let last = sent.last().unwrap();
    let (st, v) = api.pay(&mut card, last, 100).unwrap();
    assert!(st == 200 && v["transfer"]["status"] == "executed", "{st} {v}");
    let (_, v) = api.pay(&mut card, last, 100).unwrap();
    assert_eq!(v["transfer"]["status"], "executed");
    let bob_after: i64 =
        c.query_row("SELECT balance FROM accounts WHERE number = 'ACC-BOB-EUR'", [], |r| r.get(0)).unwrap();
    let executed_after: i64 =
        c.query_row("SELECT count(*) FROM transfers WHERE status = 'executed'", [], |r| r.get(0)).unwrap();
    assert_eq!(bob_after, executed_after * 100);
    assert!(executed_after == executed || executed_after == executed + 1);
}

/// One flow of a client under load, on its own connection pool: a login (answers the card's
/// counter it used) or a transfer of 1 cent (answers its id). `Err` when the server is gone.
fn login_once(http: &reqwest::blocking::Client, base: &str, card: &mut Card, user: &str) -> reqwest::Result<String> {
    let api = Api { http: http.clone(), base: base.to_owned(), token: String::new() };
    let (st, c) = api.post("/api/v1/login/challenge", json!({ "user": user }))?;
    assert_eq!(st, 200, "{c}");
    let (counter, otp) = card.login(c["challenge_hex"].as_str().unwrap(), VID);
    let (st, v) =
        api.post("/api/v1/login", json!({ "challenge_id": c["challenge_id"], "counter": counter, "otp": otp }))?;
    assert_eq!(st, 200, "{v}");
    Ok(format!("{counter} {}", v["token"].as_str().unwrap()))
}

#[test]
fn kill_9_under_concurrent_logins_and_transfers_loses_no_acknowledged_answer() {
    const LOGINS: usize = 4;
    const PAYERS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    ops::add_user(&db, "sink").unwrap();
    ops::open_account(&db, "sink", "ACC-SINK-EUR", "EUR", Some("sink")).unwrap();
    let users: Vec<String> = (0..LOGINS + PAYERS).map(|i| format!("load{i}")).collect();
    for u in &users {
        ops::add_user(&db, u).unwrap();
        ops::enroll_token(&db, &format!("PSIM-{}", u.to_uppercase()), &ChainKey::from_bytes(seed(u)), 0, u).unwrap();
        ops::open_account(&db, u, &format!("ACC-{}-EUR", u.to_uppercase()), "EUR", Some(u)).unwrap();
        ops::fund(&db, &format!("ACC-{}-EUR", u.to_uppercase()), 1_000_000, "opening").unwrap();
    }
    let server = Server::spawn(&db, &["--public-url", VID], false);
    // Each client tells what was acknowledged to it: (user, counter) for a login, (user, id)
    // for a transfer.
    let (ack_tx, ack_rx) = mpsc::channel::<(usize, String)>();
    let clients: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let (base, user, ack) = (server.base.clone(), user.clone(), ack_tx.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut card = Card::new(seed(&user));
                if i < LOGINS {
                    while let Ok(counter_and_token) = login_once(&http, &base, &mut card, &user) {
                        let counter = counter_and_token.split(' ').next().unwrap().to_owned();
                        if ack.send((i, counter)).is_err() {
                            break;
                        }
                    }
                    return;
                }
                let Ok(session) = login_once(&http, &base, &mut card, &user) else { return };
                let token = session.split(' ').nth(1).unwrap().to_owned();
                let api = Api { http, base, token };
                let from = format!("ACC-{}-EUR", user.to_uppercase());
                for n in 0.. {
                    let id = format!("{user}-{n}");
                    let body = json!({ "transfer_id": id, "from": from, "to": "ACC-SINK-EUR", "amount_minor": 1, "currency": "EUR", "payee_name": "sink" });
                    let Ok((st, created)) = api.post("/api/v1/transfers", body) else { return };
                    assert_eq!(st, 201, "{created}");
                    let (counter, otp) = sign_tx(&mut card, &created);
                    let confirm = json!({ "challenge_id": created["challenge_id"], "counter": counter, "otp": otp });
                    match api.post(&format!("/api/v1/transfers/{id}/confirm"), confirm) {
                        Ok((200, _)) => {
                            if ack.send((i, id)).is_err() {
                                return;
                            }
                        }
                        Ok((st, v)) => panic!("{st}: {v}"),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    drop(ack_tx);
    // Kill once every client has had at least three answers: all of them are mid-load.
    let mut acked: Vec<Vec<String>> = vec![Vec::new(); users.len()];
    while acked.iter().any(|a| a.len() < 3) {
        let (i, what) = ack_rx.recv().unwrap();
        acked[i].push(what);
    }
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    // Every client ends on the dead connection; what it was answered before counts too.
    for c in clients {
        c.join().unwrap();
    }
    for (i, what) in ack_rx.iter() {
        acked[i].push(what);
    }

    let c = rusqlite::Connection::open(&db).unwrap();
    for (i, user) in users.iter().enumerate().take(LOGINS) {
        let next: i64 = c
            .query_row(
                "SELECT next_counter FROM tokens WHERE serial = ?1",
                [format!("PSIM-{}", user.to_uppercase())],
                |r| r.get(0),
            )
            .unwrap();
        let last: i64 = acked[i].iter().map(|c| c.parse::<i64>().unwrap()).max().unwrap();
        assert!(next > last, "{user}: the acknowledged login at counter {last} is lost (next_counter {next})");
    }
    let mut moved = 0;
    for (i, user) in users.iter().enumerate().skip(LOGINS) {
        for id in &acked[i] {
            let status: String =
                c.query_row("SELECT status FROM transfers WHERE client_id = ?1", [id], |r| r.get(0)).unwrap();
            assert_eq!(status, "executed", "{user}: {id}");
        }
        moved += acked[i].len() as i64;
    }
    let sink: i64 =
        c.query_row("SELECT balance FROM accounts WHERE number = 'ACC-SINK-EUR'", [], |r| r.get(0)).unwrap();
    let executed: i64 =
        c.query_row("SELECT count(*) FROM transfers WHERE status = 'executed'", [], |r| r.get(0)).unwrap();
    assert_eq!(sink, executed, "one cent per executed transfer");
    assert!(executed >= moved);
    let books = ops::check_books(&db).unwrap();
    assert!(books.problems.is_empty(), "{:?}", books.problems);
    assert_eq!(books.customer_totals, vec![("EUR".to_owned(), 1_000_000 * users.len() as i64)]);
    assert!(ops::verify_audit(&db).unwrap().is_intact());
}

#[test]
fn the_binary_refuses_a_key_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    setup(&db);
    let key = bank_server::master_key::key_path(&db);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bank-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--master-key-beside-db", "--db"])
        .arg(&db)
        .env_remove("BANK_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no readiness line");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("run `chmod 600 {}`", key.display())), "{err}");
}

/// Run with every log level on, through a whole API and website flow: nothing secret reaches
/// the log (session tokens, CSRF tokens, codes, the master key, the card's seed).
#[test]
fn the_log_at_trace_level_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    setup(&db);
    let log_path = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bank-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--master-key-beside-db", "--public-url", VID, "--db"])
        .arg(&db)
        .env_remove("BANK_MASTER_KEY")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().strip_prefix("bank-server listening on ").unwrap().to_owned();
    let mut server = Server { child, base };

    let mut secrets: Vec<String> = Vec::new();
    let mut card = Card::new(seed("alice"));
    secrets.push(hex::encode(seed("alice")));
    secrets.push(std::fs::read_to_string(bank_server::master_key::key_path(&db)).unwrap().trim().to_owned());
    let api = Api::login(&server.base, &mut card, "alice");
    secrets.push(api.token.clone());
    let body = json!({ "transfer_id": "log-1", "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR", "amount_minor": 5, "currency": "EUR", "payee_name": "bob" });
    let (_, created) = api.post("/api/v1/transfers", body).unwrap();
    let (counter, otp) = sign_tx(&mut card, &created);
    secrets.push(otp.clone());
    // A wrong code first (it is logged as a failure, never as the code), then the right one.
    let wrong = if otp == "00000000" { "11111111" } else { "00000000" };
    let (st, _) = api
        .post(
            "/api/v1/transfers/log-1/confirm",
            json!({ "challenge_id": created["challenge_id"], "counter": counter, "otp": wrong }),
        )
        .unwrap();
    assert_eq!(st, 401);
    // The refused code ended log-1 (failed); a new transfer id for the right one.
    let (_, created) = api
        .post("/api/v1/transfers", json!({ "transfer_id": "log-2", "from": "ACC-ALICE-EUR", "to": "ACC-BOB-EUR", "amount_minor": 5, "currency": "EUR", "payee_name": "bob" }))
        .unwrap();
    let (counter, otp) = sign_tx(&mut card, &created);
    secrets.push(otp.clone());
    let (st, v) = api
        .post(
            "/api/v1/transfers/log-2/confirm",
            json!({ "challenge_id": created["challenge_id"], "counter": counter, "otp": otp }),
        )
        .unwrap();
    assert_eq!(st, 200, "{v}");

    // The website: visitor cookie, CSRF token, the typed code, the new session cookie.
    let http = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookie_of = |r: &reqwest::blocking::Response| -> String {
        let v = r.headers()["set-cookie"].to_str().unwrap();
        v.split(';').next().unwrap().split_once('=').unwrap().1.to_owned()
    };
    let r = http.get(format!("{}/login", server.base)).send().unwrap();
    let visitor = cookie_of(&r);
    let html = r.text().unwrap();
    let csrf = crate::common::input(&html, "csrf");
    let r = http
        .post(format!("{}/login", server.base))
        .header("cookie", format!("bank_session={visitor}"))
        .form(&[("csrf", csrf.as_str()), ("user", "alice")])
        .send()
        .unwrap();
    let html = r.text().unwrap();
    let challenge = crate::common::cell(&html, "Challenge");
    let cid = crate::common::input(&html, "challenge_id");
    let (counter, otp) = card.login(&challenge, VID);
    let code = format!("{counter}-{otp}");
    let r = http
        .post(format!("{}/login/code", server.base))
        .header("cookie", format!("bank_session={visitor}"))
        .form(&[("csrf", csrf.as_str()), ("challenge_id", cid.as_str()), ("code", code.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let logged_in = cookie_of(&r);
    secrets.extend([visitor, csrf, otp, logged_in]);

    // A clean stop flushes the log.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(server.child.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("request"), "the log was written: {log}");
    for s in &secrets {
        assert!(!log.to_lowercase().contains(&s.to_lowercase()), "a secret ({} chars) is in the log", s.len());
    }
}

/// The master key may come from `BANK_MASTER_KEY` instead of a file: then no key file is
/// written, another key is refused at start, and a malformed one gets a message saying what
/// is wrong (never the value).
#[test]
fn the_master_key_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    let run = |key: Option<&str>| -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bank-server"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--db"]).arg(&db).stdin(Stdio::null());
        match key {
            Some(k) => cmd.env("BANK_MASTER_KEY", k),
            None => cmd.env_remove("BANK_MASTER_KEY"),
        };
        cmd.output().unwrap()
    };
    let good = "a1".repeat(32);
    // Started with the key from the environment: it serves (readiness line), writes no key file.
    let mut child = Command::new(env!("CARGO_BIN_EXE_bank-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env("BANK_MASTER_KEY", &good)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("bank-server listening on http://127.0.0.1:"), "{line:?}");
    let _ = child.kill();
    let _ = child.wait();
    assert!(!bank_server::master_key::key_path(&db).exists(), "no key file when the key comes from the environment");

    let other = "b2".repeat(32);
    for (key, says) in [
        (Some(other.as_str()), "master key does not match"),
        (Some("not-hex"), "BANK_MASTER_KEY must be 64 hex digits"),
        // No key at all: the key file beside the database is not taken without the flag.
        (None, "no master key given"),
    ] {
        let out = run(key);
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "no readiness line");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{key:?}: {err}");
        assert!(!err.contains(&other) && !err.contains("not-hex"), "the key's value is never shown: {err}");
    }
}

/// Expired challenges are deleted by the housekeeper while the bank is idle, in bounded
/// units, and open ones stay; the requests themselves no longer delete any.
#[test]
fn an_idle_bank_deletes_expired_challenges_and_keeps_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    setup(&db);
    let expired = 3 * bank_server::auth::challenges::PRUNE_BATCH + 7;
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        let token: i64 = c.query_row("SELECT id FROM tokens WHERE serial = 'PSIM-ALICE'", [], |r| r.get(0)).unwrap();
        c.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO challenges (id, token_id, kind, challenge, expires_at)
             SELECT lower(hex(randomblob(16))), ?2, 'login', zeroblob(32), 1000 + i FROM n",
            rusqlite::params![expired, token],
        )
        .unwrap();
        c.execute(
            "INSERT INTO challenges (id, token_id, kind, challenge, expires_at)
             VALUES ('00000000000000000000000000000001', ?1, 'login', zeroblob(32), 9999999999)",
            [token],
        )
        .unwrap();
    }
    let server = Server::spawn(&db, &["--public-url", VID], false);
    let c = rusqlite::Connection::open(&db).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    // The housekeeper works on a timer by design (it acts when nothing happened), so there is
    // no event to wait for: the test looks at the database once per housekeeper tick until
    // the rows are gone, with a generous bound for a loaded CI machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count("SELECT count(*) FROM challenges WHERE expires_at < 9999999999") > 0 {
        assert!(std::time::Instant::now() < deadline, "expired challenges left after 60 s of idling");
        std::thread::sleep(bank_server::HOUSEKEEPING_TICK);
    }
    assert_eq!(count("SELECT count(*) FROM challenges"), 1, "the open challenge stays");
    // The bank still works, and a login leaves its own (consumed) challenge nowhere.
    let mut card = Card::new(seed("alice"));
    let api = Api::login(&server.base, &mut card, "alice");
    let (st, _) = api.get("/api/v1/accounts").unwrap();
    assert_eq!(st, 200);
    assert_eq!(count("SELECT count(*) FROM challenges"), 1);
}
