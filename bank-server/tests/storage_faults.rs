//! Storage faults under the real `bank-server` binary: a full disk while it serves, a damaged
//! database, a database it cannot write, the `-wal` removed while it was stopped, and a
//! second server on the same database. Each is refused with an error that says what happened
//! and what to do; nothing half-done is left and nothing acknowledged is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/card.rs"]
mod card;
#[path = "support/client.rs"]
mod client;
#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};

use bank_server::ops;
use card::Card;
use client::{Http, HOLDER};
use paysim_otp::ChainKey;
use serde_json::json;
use server::Server;

const FUNDING: i64 = 1_000_000;
const USERS: [&str; 2] = ["alice", "bob"];

fn seed_of(user: &str) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in user.bytes().cycle().take(32).enumerate() {
        s[i] = b ^ (i as u8);
    }
    s
}

fn account(user: &str) -> String {
    format!("ACC-{}-EUR", user.to_uppercase())
}

fn serial(user: &str) -> String {
    format!("PSIM-{}", user.to_uppercase())
}

/// A database with two funded customers, written by the operator functions (so closed clean:
/// no `-wal` left).
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    for u in USERS {
        ops::add_user(&db, u).unwrap();
        ops::enroll_token(&db, &serial(u), &ChainKey::from_bytes(seed_of(u)), 0, u).unwrap();
        ops::open_account(&db, u, &account(u), "EUR", Some(HOLDER)).unwrap();
        ops::fund(&db, &account(u), FUNDING as u64, "opening").unwrap();
    }
    (dir, db)
}

fn side(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn executed(db: &Path, id: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut stmt = c.prepare("SELECT status FROM transfers WHERE client_id = ?1").unwrap();
    let rows = stmt.query_map([id], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    rows
}

/// The books balance, the total is what was funded, nothing is below zero, SQLite and the
/// audit chain say the files are whole.
fn books_are_whole(db: &Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    let negative: i64 =
        c.query_row("SELECT count(*) FROM accounts WHERE kind = 'customer' AND balance < 0", [], |r| r.get(0)).unwrap();
    assert_eq!(negative, 0);
    drop(c);
    let books = ops::check_books(db).unwrap();
    assert!(books.problems.is_empty(), "{:?}", books.problems);
    assert_eq!(books.customer_totals, vec![("EUR".to_owned(), FUNDING * USERS.len() as i64)]);
    let audit = ops::verify_audit(db).unwrap();
    assert!(audit.is_intact(), "audit chain: {:?}", audit.first_bad);
}

/// Logs `user` in, trying again while the bank refuses for its storage (bounded).
fn log_in(http: &mut Http, card: &mut Card, user: &str) {
    for _ in 0..50 {
        if http.login(card, user).unwrap().is_some() {
            return;
        }
    }
    panic!("{user} could not log in 50 times in a row");
}

#[test]
fn a_full_disk_refuses_requests_clearly_and_loses_nothing_acknowledged() {
    let (_dir, db) = setup();
    let size = std::fs::metadata(&db).unwrap().len();
    // Every file of the server may grow to the database's size and 256 KiB more: the WAL hits
    // that after a few transfers (EFBIG, as a full disk gives ENOSPC). The shell ignores
    // SIGXFSZ first (an ignored signal stays ignored across exec), so the write fails instead
    // of killing the process.
    let limit = format!("--fsize={}", size + 256 * 1024);
    let prefix = ["sh", "-c", "trap '' XFSZ; exec \"$@\"", "sh", "prlimit", limit.as_str()];
    let server = Server::try_spawn(&prefix, &db, &[], &[]).unwrap();
    let (mut alice, to) = (Card::new(seed_of("alice")), account("bob"));
    let mut http = Http::new(&server.base);
    log_in(&mut http, &mut alice, "alice");
    let (mut done, mut refused) = (Vec::new(), Vec::new());
    for n in 0..120 {
        let id = format!("full-{n}");
        match http.pay_or_refusal(&mut alice, &id, &account("alice"), &to, 100 + n).unwrap() {
            Ok(()) => done.push(id),
            Err((503, body)) => {
                assert_eq!(body["error"], "storage_unavailable", "{body}");
                assert!(body["message"].as_str().unwrap().contains("nothing was done"), "{body}");
                refused.push(id);
            }
            Err((401, _)) => {
                // A refusal for storage can have ended the session's last write: log in again.
                log_in(&mut http, &mut alice, "alice");
            }
            Err((status, body)) => panic!("transfer {id}: {status} {body}: not a storage refusal"),
        }
    }
    drop(server);
    assert!(!refused.is_empty(), "the file size limit never bit: the fault was not injected");
    assert!(!done.is_empty(), "no transfer got through before or between the refusals");
    let log = std::fs::read_to_string(Server::log_path(&db)).unwrap();
    assert!(log.contains("storage fault: request refused"), "the log does not name the fault:\n{log}");
    // Restarted with room: every acknowledged transfer is there once, no refused one moved money.
    let server = Server::try_spawn(&[], &db, &[], &[]).unwrap();
    for id in &done {
        assert_eq!(executed(&db, id), ["executed"], "acknowledged transfer {id}");
    }
    for id in &refused {
        assert!(!executed(&db, id).contains(&"executed".to_owned()), "refused transfer {id} moved money");
    }
    let mut http = Http::new(&server.base);
    log_in(&mut http, &mut alice, "alice");
    assert!(http.pay(&mut alice, "after-room", &account("alice"), &to, 5).unwrap(), "the bank did not recover");
    drop(server);
    books_are_whole(&db);
    println!("disk full: {} transfers executed, {} refused with storage_unavailable", done.len(), refused.len());
}

#[test]
fn a_damaged_database_is_refused_at_start_with_what_to_do() {
    let (_dir, db) = setup();
    let root: i64 = {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("SELECT rootpage FROM sqlite_master WHERE name = 'transfers'", [], |r| r.get(0)).unwrap()
    };
    // The page's b-tree header starts with its type (2, 5, 10 or 13): 0x77 is none of them.
    let mut bytes = std::fs::read(&db).unwrap();
    let at = (root as usize - 1) * 4096;
    bytes[at] = 0x77;
    std::fs::write(&db, &bytes).unwrap();
    let refused = Server::try_spawn(&[], &db, &[], &[]).err().expect("the server started on a damaged database");
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("is damaged"), "{}", refused.stderr);
    assert!(refused.stderr.contains("restore it from a backup"), "{}", refused.stderr);
    let again = Server::try_spawn(&[], &db, &[], &[]).err().expect("second start");
    assert!(again.stderr.contains("is damaged"), "{}", again.stderr);

    // A file that is no database at all says so too.
    bytes[..16].copy_from_slice(b"not a database!!");
    std::fs::write(&db, &bytes).unwrap();
    let refused = Server::try_spawn(&[], &db, &[], &[]).err().expect("the server started on a file of garbage");
    assert!(refused.stderr.contains("is damaged"), "{}", refused.stderr);
}

#[test]
fn a_database_that_cannot_be_written_is_refused_at_start() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let (dir, db) = setup();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
    // root writes whatever the mode says: as root, the server runs as nobody, who owns the files.
    let root = running_as_root();
    let prefix: &[&str] = if root {
        let nobody = Some(65534);
        for p in [dir.path().to_owned(), db.clone(), side(&db, ".master-key")] {
            chown(&p, nobody, nobody).unwrap();
        }
        &["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    } else {
        &[]
    };
    let refused = Server::try_spawn(prefix, &db, &[], &[]).err().expect("the server started on a read-only database");
    assert!(!refused.status.success());
    assert!(refused.stderr.contains("cannot be written"), "{}", refused.stderr);
    assert!(refused.stderr.contains("mounted read-write"), "{}", refused.stderr);
    // SQLite gave the -wal and -shm it made the database's mode: the fix is for all three.
    for p in [db.clone(), side(&db, "-wal"), side(&db, "-shm")] {
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let server = Server::try_spawn(prefix, &db, &[], &[]).unwrap();
    drop(server);
}

/// Whether this process runs as root (uid 0), read from `/proc/self/status`.
fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
    uid.split_whitespace().next() == Some("0")
}

/// A write the server acknowledges: a login challenge (a row in the database).
fn acknowledged_write(base: &str) -> String {
    let http = Http::new(base);
    let (st, c) = http.post("/login/challenge", &json!({ "user": "alice" })).unwrap();
    assert_eq!(st, 200, "{c}");
    c["challenge_id"].as_str().unwrap().to_owned()
}

fn challenge_is_there(db: &Path, id: &str) -> bool {
    let c = rusqlite::Connection::open(db).unwrap();
    let n: i64 = c.query_row("SELECT count(*) FROM challenges WHERE id = ?1", [id], |r| r.get(0)).unwrap();
    n == 1
}

#[test]
fn a_database_behind_its_commit_mark_is_refused_and_a_clean_stop_needs_no_wal() {
    let (_dir, db) = setup();
    let (wal, shm, mark) = (side(&db, "-wal"), side(&db, "-shm"), side(&db, ".running"));
    let lose_wal = || {
        std::fs::remove_file(&wal).unwrap();
        let _ = std::fs::remove_file(&shm);
    };

    // A crash: the acknowledged write is only in the -wal; without it the start is refused.
    let mut server = Server::try_spawn(&[], &db, &[], &[]).unwrap();
    let lost = acknowledged_write(&server.base);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(mark.exists() && wal.exists());
    let kept_wal = std::fs::read(&wal).unwrap();
    lose_wal();
    let refused = Server::try_spawn(&[], &db, &[], &[]).err().expect("the server started without its -wal");
    assert!(refused.stderr.contains("committed batches are missing"), "{}", refused.stderr);
    assert!(refused.stderr.contains("Put the -wal file (or the newer copy) back"), "{}", refused.stderr);
    // The operator's tools refuse it too, with the same words.
    let e = ops::check_books(&db).expect_err("bank-tools ran without the -wal").to_string();
    assert!(e.contains("committed batches are missing"), "{e}");

    // Put back, the start replays it and the acknowledged write is there.
    std::fs::write(&wal, &kept_wal).unwrap();
    std::fs::set_permissions(&wal, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let server = Server::try_spawn(&[], &db, &[], &[]).unwrap();
    assert!(challenge_is_there(&db, &lost), "the acknowledged write is gone");

    // A second server on the same database is refused while this one runs.
    let second = Server::try_spawn(&[], &db, &[], &[]).err().expect("two servers on one database");
    assert!(second.stderr.contains("another bank-server"), "{}", second.stderr);

    // A clean stop (SIGTERM) copies the WAL into the database file: removing the -wal
    // afterwards loses nothing, and the next start agrees.
    let kept = acknowledged_write(&server.base);
    stop_cleanly(server);
    if wal.exists() {
        lose_wal();
    }
    let server = Server::try_spawn(&[], &db, &[], &[]).unwrap();
    assert!(challenge_is_there(&db, &kept), "a clean stop left a write only in the -wal");

    // After a crash, an operator command replays the -wal and its close deletes it (SQLite's
    // last connection does): no loss, and the next start agrees.
    let after = acknowledged_write(&server.base);
    drop(server);
    ops::check_books(&db).unwrap();
    let server = Server::try_spawn(&[], &db, &[], &[]).unwrap();
    assert!(challenge_is_there(&db, &after));

    // --accept-lost-commits runs anyway, says what it lost, and marks afresh from there.
    acknowledged_write(&server.base);
    drop(server);
    lose_wal();
    let server = Server::try_spawn(&[], &db, &["--accept-lost-commits"], &[]).unwrap();
    let log = std::fs::read_to_string(Server::log_path(&db)).unwrap();
    assert!(log.contains("--accept-lost-commits"), "{log}");
    stop_cleanly(server);
    let server = Server::try_spawn(&[], &db, &[], &[]).unwrap();
    drop(server);
}

/// SIGTERM, and the wait for a successful exit.
fn stop_cleanly(mut server: Server) {
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "the server did not stop cleanly: {status}");
}
