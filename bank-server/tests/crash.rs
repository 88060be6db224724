//! The crash campaign: the real `bank-server` binary under concurrent login and transfer
//! flows over HTTP, crashed again and again on one database, checked after every crash.
//!
//! Each cycle starts the server on the database the previous cycles left, runs clients until
//! the server dies, and checks what the clients were told against what is on the disk. The
//! server dies in one of three ways, chosen by the cycle's seed:
//!
//! - `kill -9` after a random number of acknowledged answers;
//! - `BANK_CRASH_AT=before-commit:N`: the writer aborts the process when its `N`-th batch has
//!   run all its statements but not committed (the batch must vanish whole);
//! - `BANK_CRASH_AT=after-commit:N`: it aborts right after that batch's `COMMIT` returned and
//!   before any of its units was answered (the batch must be there whole, though nobody heard).
//!
//! After each crash: every acknowledged transfer is there exactly once and executed; every
//! acknowledged login's counter step is there; the books balance (balanced postings, balances
//! equal to their postings, nothing half-posted), the total per currency is what was funded,
//! no balance is negative; `PRAGMA integrity_check` says `ok`; the audit chain verifies.
//!
//! `CRASH_CYCLES` (default 20, the CI run) and `CRASH_SEED` (default: from the clock, printed)
//! choose the campaign; `bash scripts/crash-campaign.sh` runs 200 cycles and prints the figure.
//! A failing run prints its seed: `CRASH_SEED=<seed> cargo test -p bank-server --test crash`
//! replays the same choices (the moments of the kills depend on the machine too).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/card.rs"]
mod card;
#[path = "support/client.rs"]
mod client;
#[path = "support/server.rs"]
mod server;

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;

use bank_server::ops;
use card::Card;
use client::{Http, HOLDER};
use paysim_otp::ChainKey;
use server::Server;

const LOGIN_CLIENTS: usize = 3;
const PAYERS: usize = 4;
const FUNDING: i64 = 1_000_000;

/// SplitMix64: the campaign's choices from one printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed_of(user: &str) -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in user.bytes().enumerate() {
        s[i % 32] ^= b;
    }
    s[31] = 0xC5;
    s
}

fn account(user: &str) -> String {
    format!("ACC-{}-EUR", user.to_uppercase())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Crash {
    Kill,
    BeforeCommit,
    AfterCommit,
}

/// What a client was told: a login at this counter, or this transfer executed.
enum Ack {
    Login { user: usize, counter: u64 },
    Transfer { id: String },
}

/// Everything the clients were told so far, over all cycles.
#[derive(Default)]
struct Told {
    /// Per login client: the highest acknowledged counter.
    logins: HashMap<usize, u64>,
    transfers: Vec<String>,
}

fn setup(db: &Path, users: &[String]) {
    for u in users {
        ops::add_user(db, u).unwrap();
        ops::enroll_token(db, &format!("PSIM-{}", u.to_uppercase()), &ChainKey::from_bytes(seed_of(u)), 0, u).unwrap();
        ops::open_account(db, u, &account(u), "EUR", Some(HOLDER)).unwrap();
        ops::fund(db, &account(u), FUNDING as u64, "opening").unwrap();
    }
}

/// One cycle: clients against a server that dies as `crash` says; returns what was told.
fn cycle(
    db: &Path,
    cycle: u64,
    crash: Crash,
    at: u64,
    users: &[String],
    cards: &mut [Card],
    rng: &mut Rng,
) -> Vec<Ack> {
    let at_text = at.to_string();
    let env: Vec<(&str, String)> = match crash {
        Crash::Kill => Vec::new(),
        Crash::BeforeCommit => vec![("BANK_CRASH_AT", format!("before-commit:{at_text}"))],
        Crash::AfterCommit => vec![("BANK_CRASH_AT", format!("after-commit:{at_text}"))],
    };
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::spawn_with_env(db, &[], &env_refs, false);
    let (ack_tx, ack_rx) = mpsc::channel::<Ack>();
    let mut threads = Vec::new();
    for (i, card) in cards.iter().enumerate() {
        let (base, user, ack, mut card) = (server.base.clone(), users[i].clone(), ack_tx.clone(), card.clone());
        // Each payer pays the others in turn, amounts from the seed.
        let payees: Vec<String> = users.iter().filter(|u| **u != user).map(|u| account(u)).collect();
        let amounts: Vec<u64> = (0..64).map(|_| 1 + rng.below(500)).collect();
        threads.push(std::thread::spawn(move || {
            let mut http = Http::new(&base);
            if i < LOGIN_CLIENTS {
                loop {
                    match http.login(&mut card, &user) {
                        Ok(Some(counter)) => {
                            if ack.send(Ack::Login { user: i, counter }).is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
                return card;
            }
            if !matches!(http.login(&mut card, &user), Ok(Some(_))) {
                return card;
            }
            for n in 0usize.. {
                let id = format!("{user}-c{cycle}-{n}");
                let to = &payees[n % payees.len()];
                match http.pay(&mut card, &id, &account(&user), to, amounts[n % amounts.len()]) {
                    Ok(true) => {
                        if ack.send(Ack::Transfer { id }).is_err() {
                            break;
                        }
                    }
                    Ok(false) => {}
                    Err(_) => break,
                }
            }
            card
        }));
    }
    drop(ack_tx);
    let mut acks = Vec::new();
    if crash == Crash::Kill {
        // The kill lands after `at` acknowledged answers, mid-load.
        while (acks.len() as u64) < at {
            match ack_rx.recv() {
                Ok(a) => acks.push(a),
                Err(_) => break,
            }
        }
        server.child.kill().unwrap();
    }
    let status = server.child.wait().unwrap();
    if crash != Crash::Kill {
        assert!(!status.success(), "cycle {cycle}: the server was to abort at {crash:?}:{at} and ended {status}");
    }
    for (i, t) in threads.into_iter().enumerate() {
        cards[i] = t.join().unwrap();
    }
    acks.extend(ack_rx.iter());
    acks
}

fn check(db: &Path, cycle: u64, users: &[String], told: &Told) {
    let c = rusqlite::Connection::open(db).unwrap();
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok", "cycle {cycle}: integrity_check");
    for (&i, &counter) in &told.logins {
        let next: i64 = c
            .query_row(
                "SELECT next_counter FROM tokens WHERE serial = ?1",
                [format!("PSIM-{}", users[i].to_uppercase())],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            u64::try_from(next).unwrap() > counter,
            "cycle {cycle}: {}: the acknowledged login at counter {counter} is lost (next_counter {next})",
            users[i]
        );
    }
    for id in &told.transfers {
        let rows: Vec<String> = c
            .prepare("SELECT status FROM transfers WHERE client_id = ?1")
            .unwrap()
            .query_map([id], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows, vec!["executed".to_owned()], "cycle {cycle}: acknowledged transfer {id}");
    }
    let negative: i64 =
        c.query_row("SELECT count(*) FROM accounts WHERE kind = 'customer' AND balance < 0", [], |r| r.get(0)).unwrap();
    assert_eq!(negative, 0, "cycle {cycle}: a customer account below zero");
    let books = ops::check_books(db).unwrap();
    assert!(books.problems.is_empty(), "cycle {cycle}: {:?}", books.problems);
    assert_eq!(
        books.customer_totals,
        vec![("EUR".to_owned(), FUNDING * users.len() as i64)],
        "cycle {cycle}: the total is not conserved"
    );
    let audit = ops::verify_audit(db).unwrap();
    assert!(audit.is_intact(), "cycle {cycle}: audit chain: {:?}", audit.first_bad);
}

#[test]
fn crashes_under_load_lose_nothing_acknowledged_and_half_do_nothing() {
    let cycles: u64 = std::env::var("CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    println!("crash campaign: CRASH_SEED={seed} CRASH_CYCLES={cycles}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    let users: Vec<String> = (0..LOGIN_CLIENTS + PAYERS).map(|i| format!("crash{i}")).collect();
    setup(&db, &users);
    let mut cards: Vec<Card> = users.iter().map(|u| Card::new(seed_of(u))).collect();
    let mut told = Told::default();
    let mut crashes: HashMap<Crash, u64> = HashMap::new();
    for n in 0..cycles {
        let crash = [Crash::Kill, Crash::BeforeCommit, Crash::AfterCommit][rng.below(3) as usize];
        let at = 1 + rng.below(60);
        for ack in cycle(&db, n, crash, at, &users, &mut cards, &mut rng) {
            match ack {
                Ack::Login { user, counter } => {
                    let e = told.logins.entry(user).or_insert(counter);
                    *e = (*e).max(counter);
                }
                Ack::Transfer { id } => told.transfers.push(id),
            }
        }
        check(&db, n, &users, &told);
        *crashes.entry(crash).or_default() += 1;
    }
    let logins: u64 = told.logins.len() as u64;
    println!(
        "crash campaign: {cycles} cycles (kill -9 {}, abort before COMMIT {}, abort after COMMIT {}), \
         {} acknowledged transfers and the last acknowledged login of {logins} clients checked after every crash, 0 violations",
        crashes.get(&Crash::Kill).copied().unwrap_or(0),
        crashes.get(&Crash::BeforeCommit).copied().unwrap_or(0),
        crashes.get(&Crash::AfterCommit).copied().unwrap_or(0),
        told.transfers.len(),
    );
    assert!(!told.transfers.is_empty() && logins > 0, "the campaign acknowledged nothing: it checked nothing");
}
