//! The whole flow per second and its latency, as a ratio to the sum of its parts measured in
//! the same run.
//!
//! ```text
//! sudo bash scripts/setup.sh                  # pcscd + vpcd up
//! cargo bench -p reader-bridge --bench flow   # BENCH_N=100 for more rounds (default 30)
//! ```
//!
//! One round of the whole flow is what a customer does: `Bridge::login` (login challenge from
//! the bank, card over pcscd: SELECT + VERIFY + LOGIN OTP, bank verifies, session stored) and
//! `Bridge::transfer` (transfer created at the bank, card: SELECT + VERIFY + TRANSACTION OTP,
//! bank verifies and moves the money in one SQLite transaction, pending record written and
//! removed). Its parts, each timed on its own in the same run:
//!
//! - card: the same two card exchanges through the same PC/SC connection path;
//! - bank: the same four HTTP requests for a second user whose codes come from the card core
//!   in this process (`card_link::MemCard`: no pcscd, microseconds per code).
//!
//! The ratio whole / (card + bank) shows what the glue costs: opening the card per operation,
//! the state files (fsync), the session lookups.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bank_server::clock::Clock;
use bank_server::ops;
use card_link::MemCard;
use e2e_tests::{require_pcscd, CardSpec, TestCard};
use paysim_otp::{self as otp, ChainKey};
use paysim_wire::api::{NewTransfer, TransferStatus};
use reader_bridge::apdu::Pin;
use reader_bridge::bank::{Bank, Created, Trust};
use reader_bridge::card::PaysimCard;
use reader_bridge::flow::{BankFlags, Bridge, CardChoice, SecretKind, TransferRequest, Ui};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

struct Always;

impl Ui for Always {
    fn secret(&mut self, _: SecretKind, _: &str) -> reader_bridge::Result<Zeroizing<String>> {
        Ok(Zeroizing::new("1234".to_owned()))
    }
    fn confirm(&mut self, _: &str) -> reader_bridge::Result<bool> {
        Ok(true)
    }
    fn ask(&mut self, _: &str) -> reader_bridge::Result<String> {
        unreachable!("the bench never asks for text")
    }
    fn say(&mut self, _: &str) {}
    fn warn(&mut self, text: &str) {
        eprintln!("{text}");
    }
}

fn stats(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let n = samples.len();
    let total: Duration = samples.iter().sum();
    let mean = total / u32::try_from(n).unwrap();
    println!(
        "flow: {label:<34} {:>8.1} /s   mean {:>8.2} ms   median {:>8.2} ms   p99 {:>8.2} ms   (n = {n})",
        1.0 / mean.as_secs_f64(),
        ms(mean),
        ms(samples[n / 2]),
        ms(samples[(n * 99 / 100).min(n - 1)]),
    );
    mean
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let n: usize = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    require_pcscd();
    let card = TestCard::personalized(&CardSpec::default());
    let db = card.dir.path().join("bank.sqlite3");

    // The bank, in this process on its own runtime, on a free loopback port.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let db_for_bank = db.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // The abuse limits would refuse a bench's logins after a few rounds: off here.
            let mut cfg = bank_server::Config::new(&format!("http://{addr}")).unwrap();
            cfg.limits = bank_server::limit::Settings::off();
            let state = bank_server::AppState::open_with(&db_for_bank, cfg, Clock::system()).unwrap();
            ready_tx.send(addr.port()).unwrap();
            bank_server::serve(listener, state, std::future::pending()).await.unwrap();
        });
    });
    let port = ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let url = format!("http://127.0.0.1:{port}");

    for user in ["alice", "bob", "carol"] {
        ops::add_user(&db, user).unwrap();
    }
    ops::enroll_token_file(&db, &card.token_path, "alice").unwrap();
    let soft_seed = [0x33; 32];
    ops::enroll_token(&db, "SOFT-1", &ChainKey::from_bytes(soft_seed), 0, "bob").unwrap();
    ops::open_account(&db, "alice", "ACC-ALICE-EUR", "EUR", Some("Alice Example")).unwrap();
    ops::open_account(&db, "bob", "ACC-BOB-EUR", "EUR", Some("Bob Example")).unwrap();
    ops::open_account(&db, "carol", "ACC-CAROL-EUR", "EUR", Some("Carol Example")).unwrap();
    ops::fund(&db, "ACC-ALICE-EUR", 1_000_000_000, "bench").unwrap();
    ops::fund(&db, "ACC-BOB-EUR", 1_000_000_000, "bench").unwrap();

    // Whole flow: the bridge as the CLI runs it, with the real card.
    let choice = CardChoice { reader: Some(card.reader()), wait: Duration::from_secs(5) };
    let state = card.dir.path().join("bridge-state");
    Bridge::setup(&state, &url, None, false).unwrap();
    let bridge = Bridge::open(&state, &BankFlags::default(), choice).unwrap();
    let transfer = TransferRequest {
        from: Some("ACC-ALICE-EUR".parse().unwrap()),
        to: "ACC-CAROL-EUR".parse().unwrap(),
        amount_minor: 1,
        currency: "EUR".parse().unwrap(),
        payee_name: "Carol Example".parse().unwrap(),
        yes: true,
        confirm_unverified_payee: false,
    };
    let round = || {
        bridge.login(&"alice".parse().unwrap(), &mut Always).unwrap();
        let t = bridge.transfer(&transfer, &mut Always).unwrap();
        assert_eq!(t.status, TransferStatus::Executed);
    };
    round(); // warm-up
    let whole: Vec<Duration> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            round();
            t0.elapsed()
        })
        .collect();

    // Part 1, the card: LOGIN OTP and TRANSACTION OTP exchanges, each with SELECT + VERIFY in
    // one PC/SC transaction, over one connection.
    let pin = Pin::new("1234").unwrap();
    let mut link = PaysimCard::open(Some(&card.reader()), Duration::from_secs(5)).unwrap();
    let vid = bridge.bank().unwrap().verifier_id().to_owned();
    let challenge = [0x5Au8; 32];
    let tx = otp::TxFields {
        version: paysim_otp::TxVersion::V2,
        verifier_id: vid.as_bytes(),
        transaction_id: b"tx-bench",
        amount_minor: 1,
        currency: b"EUR",
        source: b"ACC-ALICE-EUR",
        payee: b"ACC-CAROL-EUR",
        payee_name: b"Carol Example",
    };
    let card_part: Vec<Duration> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            link.login_otp(&pin, &challenge, &vid).unwrap();
            link.tx_otp(&pin, &challenge, &tx).unwrap();
            t0.elapsed()
        })
        .collect();

    // Part 2, the bank: the same four requests, bob's codes from an in-process card.
    let bank = Bank::new(&url, &Trust::Platform).unwrap();
    let mut bobs_card = PaysimCard::new(MemCard::personalized(&soft_seed, "1234", "12345678", "SOFT-1").unwrap());
    let mut bank_round = |i: usize| {
        let ch = bank.login_challenge(&"bob".parse().unwrap()).unwrap();
        let code = bobs_card.login_otp(&pin, ch.challenge.as_bytes(), &vid).unwrap();
        let session = bank.login(&ch.challenge_id, code.counter, &code.otp).unwrap();
        let id: paysim_wire::TransferId = format!("tx-bank-{i}").parse().unwrap();
        let new = NewTransfer {
            transfer_id: id.clone(),
            from: "ACC-BOB-EUR".parse().unwrap(),
            to: "ACC-CAROL-EUR".parse().unwrap(),
            amount_minor: 1,
            currency: "EUR".parse().unwrap(),
            payee_name: "Carol Example".parse().unwrap(),
        };
        let Created::Challenge(tc) = bank.create_transfer(&session.token, &new).unwrap() else {
            panic!("a new transfer id must get a challenge")
        };
        let fields = otp::TxFields {
            version: paysim_otp::TxVersion::V2,
            verifier_id: vid.as_bytes(),
            transaction_id: id.as_str().as_bytes(),
            amount_minor: 1,
            currency: b"EUR",
            source: b"ACC-BOB-EUR",
            payee: b"ACC-CAROL-EUR",
            payee_name: b"Carol Example",
        };
        let code = bobs_card.tx_otp(&pin, tc.challenge.as_bytes(), &fields).unwrap();
        let t = bank.confirm_transfer(&session.token, &id, &tc.challenge_id, code.counter, &code.otp, false).unwrap();
        assert_eq!(t.status, TransferStatus::Executed);
    };
    bank_round(usize::MAX); // warm-up
    let bank_part: Vec<Duration> = (0..n)
        .map(|i| {
            let t0 = Instant::now();
            bank_round(i);
            t0.elapsed()
        })
        .collect();

    println!("flow: login + transfer, {n} rounds each, bank at {url}, card in {:?}", card.reader());
    let whole = stats("whole flow (bridge, real card)", whole);
    let card_mean = stats("part: card (2 exchanges via pcscd)", card_part);
    let bank_mean = stats("part: bank (4 HTTP requests)", bank_part);
    let parts = card_mean + bank_mean;
    println!(
        "flow: whole / (card + bank) = {:.2}   ({:.2} ms vs {:.2} ms + {:.2} ms)",
        whole.as_secs_f64() / parts.as_secs_f64(),
        ms(whole),
        ms(card_mean),
        ms(bank_mean)
    );
    let books = ops::check_books(&db).unwrap();
    assert!(books.problems.is_empty(), "{:?}", books.problems);
}
