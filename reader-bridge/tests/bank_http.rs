//! The bridge against a real bank-server (its library `serve` on 127.0.0.1, port 0, with a
//! fresh SQLite database per test). The card is the applet's core in this process
//! (`card_link::MemCard`, personalized through the real admin protocol) reached through the
//! bridge's own APDU path (`PaysimCard`), so these tests need no pcscd; the same flows through
//! the real card, pcscd and vpcd are in the e2e suite (tests/tests/e2e/flow.rs).

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bank_server::clock::Clock;
use bank_server::ops;
use card_link::MemCard;
use paysim_otp::{self as otp, ChainKey};
use paysim_wire::api::ErrorCode;
use paysim_wire::UserName;
use reader_bridge::apdu::{CardOtp, Pin};
use reader_bridge::card::PaysimCard;
use reader_bridge::error::exit;
use reader_bridge::flow::{BankFlags, Bridge, CardChoice, SecretKind, Token, TransferRequest, Ui};
use reader_bridge::Error;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

const SEED: [u8; 32] = [0x5A; 32];
const PIN: &str = "1234";
const PUK: &str = "12345678";

fn name(user: &str) -> UserName {
    user.parse().unwrap()
}

/// A bank-server on its own thread and runtime.
struct TestBank {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestBank {
    /// Starts the bank on `port` (0: any free port), with public URL http://127.0.0.1:PORT.
    fn start(db: &Path, port: u16) -> TestBank {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let db = db.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
                let addr = listener.local_addr().unwrap();
                let state = bank_server::AppState::open(&db, &format!("http://{addr}"), Clock::system()).unwrap();
                ready_tx.send(addr.port()).unwrap();
                bank_server::serve(listener, state, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let port = ready_rx.recv_timeout(Duration::from_secs(30)).expect("bank did not start");
        TestBank { port, stop: Some(stop_tx), thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the bank and waits until it no longer accepts connections.
    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TestBank {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A user alice with a token (seed SEED, counter 0), ACC-ALICE-EUR with 1000.00 EUR, and bob
/// with ACC-BOB-EUR (empty).
fn setup(db: &Path) {
    ops::add_user(db, "alice").unwrap();
    ops::add_user(db, "bob").unwrap();
    ops::enroll_token(db, "PSIM-00000001", &ChainKey::from_bytes(SEED), 0, "alice").unwrap();
    ops::open_account(db, "alice", "ACC-ALICE-EUR", "EUR", Some("Alice Example")).unwrap();
    ops::open_account(db, "bob", "ACC-BOB-EUR", "EUR", Some("Bob Example")).unwrap();
    ops::fund(db, "ACC-ALICE-EUR", 100_000, "test").unwrap();
}

fn balance(db: &Path, user: &str, number: &str) -> i64 {
    ops::accounts(db, user).unwrap().into_iter().find(|a| a.number == number).unwrap().balance_minor
}

/// What the test token does right before the card computes a transaction code.
type Hook = Box<dyn FnMut() -> Option<Error> + Send>;

/// What a test watches and steers around the card.
#[derive(Default)]
struct Hooks {
    before_tx: Option<Hook>,
    /// Every verifier id the card was asked to sign for.
    signed_for: Vec<String>,
}

/// A PAYSIM card in this process: the applet core behind the bridge's `PaysimCard`, so PIN
/// tries, counters and codes are the card's own. A clone is another connection to the same
/// card (what each bridge command opens), sharing the hooks.
#[derive(Clone)]
struct CardToken {
    card: MemCard,
    hooks: Arc<Mutex<Hooks>>,
}

impl CardToken {
    fn new(seed: [u8; 32]) -> Self {
        let card = MemCard::personalized(&seed, PIN, PUK, "PSIM-00000001").unwrap();
        CardToken { card, hooks: Arc::default() }
    }

    fn signed_for(&self) -> Vec<String> {
        self.hooks.lock().unwrap().signed_for.clone()
    }

    fn on_next_tx(&self, hook: Hook) {
        self.hooks.lock().unwrap().before_tx = Some(hook);
    }

    fn paysim(&self) -> PaysimCard<MemCard> {
        PaysimCard::new(self.card.clone())
    }
}

impl Token for CardToken {
    fn reader(&self) -> &str {
        card_link::Transport::reader(&self.card)
    }

    fn check_ready(&mut self) -> reader_bridge::Result<()> {
        self.paysim().ready().map(|_| ())
    }

    fn login_otp(&mut self, pin: &Pin, challenge: &[u8], verifier_id: &str) -> reader_bridge::Result<CardOtp> {
        self.hooks.lock().unwrap().signed_for.push(verifier_id.to_owned());
        self.paysim().login_otp(pin, challenge, verifier_id)
    }

    fn tx_otp(&mut self, pin: &Pin, challenge: &[u8], tx: &otp::TxFields<'_>) -> reader_bridge::Result<CardOtp> {
        let hook = {
            let mut h = self.hooks.lock().unwrap();
            h.signed_for.push(String::from_utf8_lossy(tx.verifier_id).into_owned());
            h.before_tx.take()
        };
        if let Some(mut hook) = hook {
            if let Some(e) = hook() {
                return Err(e);
            }
        }
        self.paysim().tx_otp(pin, challenge, tx)
    }
}

/// Scripted answers; records what the bridge said.
#[derive(Default)]
struct Script {
    secrets: VecDeque<String>,
    confirms: VecDeque<bool>,
    /// Answers to "which reader?"; `None` plays a script without a terminal.
    choices: VecDeque<Option<usize>>,
    asked_to_choose: Vec<Vec<String>>,
    said: Vec<String>,
    warned: Vec<String>,
    /// How many lines had been said when each secret was asked for.
    said_before_secret: Vec<usize>,
}

impl Ui for Script {
    fn secret(&mut self, _kind: SecretKind, _prompt: &str) -> reader_bridge::Result<Zeroizing<String>> {
        self.said_before_secret.push(self.said.len());
        Ok(Zeroizing::new(self.secrets.pop_front().expect("the bridge asked for an unexpected secret")))
    }
    fn confirm(&mut self, _question: &str) -> reader_bridge::Result<bool> {
        Ok(self.confirms.pop_front().expect("the bridge asked an unexpected question"))
    }
    fn ask(&mut self, _prompt: &str) -> reader_bridge::Result<String> {
        panic!("the bridge asked for text")
    }
    fn say(&mut self, text: &str) {
        self.said.push(text.to_owned());
    }
    fn warn(&mut self, text: &str) {
        self.warned.push(text.to_owned());
    }
    fn choose(&mut self, _prompt: &str, options: &[String]) -> reader_bridge::Result<Option<usize>> {
        self.asked_to_choose.push(options.to_vec());
        Ok(self.choices.pop_front().expect("the bridge asked for a reader unexpectedly"))
    }
}

fn pins(n: usize) -> Script {
    Script { secrets: std::iter::repeat_n(PIN.to_owned(), n).collect(), ..Script::default() }
}

/// A bridge set up (`Bridge::setup`, the one place these tests pin a bank) for the bank at
/// `url`, using the in-process card.
fn bridge(url: &str, state: &Path, token: &CardToken) -> Bridge {
    let token = token.clone();
    Bridge::setup(state, url, None, true).unwrap();
    Bridge::open(state, &BankFlags::default(), CardChoice { reader: None, wait: Duration::ZERO })
        .unwrap()
        .with_token_opener(Box::new(move |_| Ok(Box::new(token.clone()) as Box<dyn Token>)))
}

struct World {
    _dir: tempfile::TempDir,
    db: PathBuf,
    state: PathBuf,
    bank: TestBank,
    token: CardToken,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    let bank = TestBank::start(&db, 0);
    setup(&db);
    let state = dir.path().join("bridge-state");
    World { db, state, bank, token: CardToken::new(SEED), _dir: dir }
}

fn eur_transfer(to: &str, amount_minor: u64) -> TransferRequest {
    TransferRequest {
        from: None,
        to: to.parse().unwrap(),
        amount_minor,
        currency: "EUR".parse().unwrap(),
        payee_name: "Bob Example".parse().unwrap(),
        yes: true,
        confirm_unverified_payee: false,
    }
}

#[test]
fn login_transfer_and_browse() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    assert!(matches!(b.accounts(), Err(Error::NotLoggedIn)));

    let mut ui = pins(1);
    let s = b.login(&name("alice"), &mut ui).unwrap();
    assert_eq!(s.user, "alice");
    assert!(ui.warned.is_empty(), "{:?}", ui.warned);

    let accounts = b.accounts().unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!((accounts[0].number.as_str(), accounts[0].balance_minor), ("ACC-ALICE-EUR", 100_000));

    // Without --from the bridge picks alice's one EUR account; it asks before signing.
    let mut ui = Script { confirms: [true].into(), ..pins(1) };
    let req = TransferRequest { yes: false, ..eur_transfer("ACC-BOB-EUR", 1234) };
    let t = b.transfer(&req, &mut ui).unwrap();
    assert_eq!(t.status, paysim_wire::api::TransferStatus::Executed);
    assert_eq!(w.token.signed_for(), vec![w.bank.url(), w.bank.url()]);
    assert_eq!((t.from.as_str(), t.to.as_str(), t.amount_minor), ("ACC-ALICE-EUR", "ACC-BOB-EUR", 1234));
    let shown = ui.said.join("\n");
    for field in ["ACC-BOB-EUR", "12.34 EUR", t.transfer_id.as_str(), &w.bank.url()] {
        assert!(shown.contains(field), "{field} not shown before signing: {shown}");
    }

    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), 100_000 - 1234);
    assert_eq!(balance(&w.db, "bob", "ACC-BOB-EUR"), 1234);
    let history = b.history(10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].transfer_id, t.transfer_id);
    assert!(b.pending().unwrap().is_empty());
    assert!(ops::check_books(&w.db).unwrap().problems.is_empty());

    // Declining signs nothing and moves nothing. The bank was asked (verification of payee
    // needs it) and keeps the unsigned transfer pending until it lapses.
    let mut ui = Script { confirms: [false].into(), ..Script::default() };
    let e = b.transfer(&TransferRequest { yes: false, ..eur_transfer("ACC-BOB-EUR", 100) }, &mut ui).unwrap_err();
    assert!(matches!(e, Error::Cancelled));
    assert!(ui.said_before_secret.is_empty(), "no PIN asked");
    assert_eq!(w.token.signed_for().len(), 2, "nothing more signed");
    let history = b.history(10).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].status, paysim_wire::api::TransferStatus::Pending);
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), 100_000 - 1234);

    b.logout().unwrap();
    assert!(matches!(b.accounts(), Err(Error::NotLoggedIn)));
}

#[test]
fn a_wrong_code_is_rejected_and_no_session_is_stored() {
    let w = world();
    let wrong = CardToken::new([0x11; 32]);
    let b = bridge(&w.bank.url(), &w.state, &wrong);
    let e = b.login(&name("alice"), &mut pins(1)).unwrap_err();
    assert!(matches!(e, Error::OtpRejected), "{e:?}");
    assert_eq!(e.exit_code(), exit::OTP_REJECTED);
    assert!(matches!(b.accounts(), Err(Error::NotLoggedIn)));
}

#[test]
fn codes_signed_for_a_look_alike_address_are_useless_at_the_bank() {
    let w = world();
    // Same server, reached under another name: the bridge signs for ITS address, warns that
    // the server states another verifier id, and the bank refuses the code.
    let lookalike = format!("http://localhost:{}", w.bank.port);
    let b = bridge(&lookalike, &w.state, &w.token);
    let mut ui = pins(1);
    let e = b.login(&name("alice"), &mut ui).unwrap_err();
    assert!(matches!(e, Error::OtpRejected), "{e:?}");
    let warned = ui.warned.join("\n");
    assert!(warned.contains(&format!("http://localhost:{}", w.bank.port)), "{warned}");
    assert!(warned.contains(&w.bank.url()), "{warned}");
    // The card was asked to sign for the configured address, not the one the server stated.
    assert_eq!(w.token.signed_for(), vec![lookalike.clone()]);
    // The real address works (the card's counter moved on; the bank's window absorbs it).
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();
}

#[test]
fn insufficient_funds_and_refusals_are_final() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();

    // Each refusal comes before the PIN prompt: a `Script` without secrets panics if asked.
    let e = b.transfer(&eur_transfer("ACC-BOB-EUR", 100_001), &mut Script::default()).unwrap_err();
    assert!(matches!(e, Error::InsufficientFunds), "{e:?}");
    assert_eq!(e.exit_code(), exit::INSUFFICIENT_FUNDS);

    // An unknown payee gets the same answer as a payee in another currency (no probing).
    let e = b.transfer(&eur_transfer("ACC-NOBODY", 100), &mut Script::default()).unwrap_err();
    assert!(matches!(e, Error::TransferRefused { ref code, .. } if *code == ErrorCode::PayeeNotAccepted), "{e:?}");

    let e = b.transfer(&eur_transfer("ACC-ALICE-EUR", 100), &mut Script::default()).unwrap_err();
    assert!(matches!(e, Error::TransferRefused { ref code, .. } if *code == ErrorCode::SameAccount), "{e:?}");

    let usd = TransferRequest { currency: "USD".parse().unwrap(), ..eur_transfer("ACC-BOB-EUR", 100) };
    let e = b.transfer(&usd, &mut Script::default()).unwrap_err();
    assert!(matches!(e, Error::BadInput(ref m) if m.contains("no USD account")), "{e:?}");

    assert!(b.pending().unwrap().is_empty(), "final answers leave nothing pending");
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), 100_000);
    assert_eq!(w.token.signed_for(), vec![w.bank.url()], "only the login was signed");
}

/// With the bank down, neither login nor transfer asks for the PIN, and nothing is left
/// pending: the bank is asked first.
#[test]
fn with_the_bank_down_nothing_asks_for_the_pin() {
    let mut w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();
    w.bank.stop();
    for e in [
        b.login(&name("alice"), &mut Script::default()).unwrap_err(),
        b.transfer(&eur_transfer("ACC-BOB-EUR", 100), &mut Script::default()).unwrap_err(),
    ] {
        assert!(matches!(e, Error::BankUnreachable { .. }), "{e:?}");
        assert_eq!(e.exit_code(), exit::BANK_UNREACHABLE);
    }
    assert!(b.pending().unwrap().is_empty(), "nothing reached the bank, nothing is pending");
    assert_eq!(w.token.signed_for().len(), 1, "the card signed only the first login");
}

/// A blocked PIN is found by reading the try counter (no try spent): no PIN prompt for
/// login or transfer, and the bank never gets a transfer.
#[test]
fn a_blocked_pin_is_found_before_the_prompt() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();
    let mut card = w.token.paysim();
    for left in [2, 1, 0] {
        let e = card.login_otp(&Pin::new("9999").unwrap(), &[0; 32], "x").unwrap_err();
        assert!(matches!(e, Error::WrongPin { tries_left } if tries_left == left) || left == 0, "{e:?}");
    }
    assert_eq!(card.ready().unwrap_err().exit_code(), exit::PIN_BLOCKED);
    let e = b.login(&name("alice"), &mut Script::default()).unwrap_err();
    assert!(matches!(e, Error::PinBlocked), "{e:?}");
    let e = b.transfer(&eur_transfer("ACC-BOB-EUR", 100), &mut Script::default()).unwrap_err();
    assert!(matches!(e, Error::PinBlocked), "{e:?}");
    assert!(b.history(10).unwrap().is_empty(), "the bank never got the transfer");
    assert!(b.pending().unwrap().is_empty());
}

/// A name that has not logged in from this bridge while another has is taken for a typo:
/// refused before the card computes anything. `new_user` lets it through.
#[test]
fn an_unknown_user_costs_no_card_step() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();
    let counter = || w.token.paysim().status().unwrap().next_counter;
    let before = counter();
    let e = b.login(&name("alcie"), &mut Script::default()).unwrap_err();
    assert!(matches!(e, Error::UnknownUser { .. }), "{e:?}");
    assert_eq!(e.exit_code(), exit::USAGE);
    let text = e.to_string();
    assert!(text.contains("\"alcie\" has never logged in from this bridge (users here: alice)"), "{text}");
    assert!(text.contains("--new-user"), "{text}");
    assert_eq!(counter(), before, "no chain step spent");
    assert_eq!(w.token.signed_for().len(), 1);
    // bob exists at the bank but has no token: with --new-user the card signs and the bank
    // refuses, as before the profile existed.
    let e = b.login_as(&name("bob"), true, &mut pins(1)).unwrap_err();
    assert!(matches!(e, Error::OtpRejected), "{e:?}");
    // alice is still known, and logs in without the flag.
    b.login(&name("alice"), &mut pins(1)).unwrap();
}

#[test]
fn bank_down_mid_transfer_then_retry_moves_money_exactly_once() {
    let mut w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();

    // The bank goes away after it handed out the challenge, before the code arrives.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (stopped_tx, stopped_rx) = std::sync::mpsc::channel::<()>();
    w.token.on_next_tx(Box::new(move || {
        stop_tx.send(()).unwrap();
        stopped_rx.recv().unwrap();
        None
    }));
    let port = w.bank.port;
    let bank = &mut w.bank;
    std::thread::scope(|scope| {
        let stopper = scope.spawn(move || {
            stop_rx.recv().unwrap();
            bank.stop();
            stopped_tx.send(()).unwrap();
        });
        let mut ui = pins(1);
        let e = b.transfer(&eur_transfer("ACC-BOB-EUR", 2500), &mut ui).unwrap_err();
        assert!(matches!(e, Error::BankUnreachable { .. }), "{e:?}");
        assert_eq!(e.exit_code(), exit::BANK_UNREACHABLE);
        assert!(ui.warned.join("\n").contains("run the same transfer command again"), "{:?}", ui.warned);
        stopper.join().unwrap();
    });
    let pending = b.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), 100_000);

    // The bank comes back on the same address; the same command resumes the same id.
    w.bank = TestBank::start(&w.db, port);
    let mut ui = pins(1);
    let t = b.transfer(&eur_transfer("ACC-BOB-EUR", 2500), &mut ui).unwrap();
    assert_eq!(t.transfer_id, pending[0].transfer_id);
    assert!(ui.said.join("\n").contains("resuming transfer"), "{:?}", ui.said);
    assert!(b.pending().unwrap().is_empty());
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), 100_000 - 2500);
    assert_eq!(balance(&w.db, "bob", "ACC-BOB-EUR"), 2500);
    assert!(ops::check_books(&w.db).unwrap().problems.is_empty());
}

/// Each verification-of-payee answer is shown, with every signed field, before the PIN is
/// asked; a no match needs the second yes (or `--confirm-unverified-payee`), and without it
/// nothing is signed or sent.
#[test]
fn each_payee_check_is_shown_before_the_pin() {
    let w = world();
    ops::open_account(&w.db, "bob", "ACC-BOB-OLD", "EUR", None).unwrap();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();
    let ask = |to: &str, name: &str| TransferRequest {
        to: to.parse().unwrap(),
        payee_name: name.parse().unwrap(),
        yes: false,
        ..eur_transfer(to, 100)
    };
    let cases: [(&str, &str, &str, Vec<bool>); 4] = [
        ("ACC-BOB-EUR", "Bob Example", "Verification of payee: the name matches", vec![true]),
        ("ACC-BOB-EUR", "Example Bob", "CLOSE MATCH: the account is in the name of \"Bob Example\"", vec![true]),
        ("ACC-BOB-EUR", "Mallory Evil", "NO MATCH: the name is not the name on the account", vec![true, true]),
        ("ACC-BOB-OLD", "Bob Example", "UNAVAILABLE: the bank cannot check", vec![true, true]),
    ];
    let mut expected = 100_000;
    for (to, name, shown, confirms) in cases {
        let mut ui = Script { confirms: confirms.into(), ..pins(1) };
        let t = b.transfer(&ask(to, name), &mut ui).unwrap();
        assert_eq!(t.status, paysim_wire::api::TransferStatus::Executed, "{name}");
        expected -= 100;
        let before_pin = ui.said[..ui.said_before_secret[0]].join("\n");
        for needle in [shown, name, to, "from account:       ACC-ALICE-EUR", "1.00 EUR"] {
            assert!(before_pin.contains(needle), "{needle:?} not shown before the PIN: {before_pin}");
        }
        assert!(ui.confirms.is_empty(), "{name}: a question was not asked");
    }
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), expected);

    // A no match answered "no" the second time: no PIN asked, nothing signed, nothing moved.
    let mut ui = Script { confirms: [true, false].into(), ..pins(1) };
    let e = b.transfer(&ask("ACC-BOB-EUR", "Mallory Evil"), &mut ui).unwrap_err();
    assert!(e.to_string().contains("does not match") && e.to_string().contains("nothing was signed"), "{e}");
    assert!(ui.said_before_secret.is_empty(), "the PIN was asked");
    // --yes does not answer the second question; --confirm-unverified-payee does.
    let mut ui = Script { confirms: [false].into(), ..pins(1) };
    let yes_only = TransferRequest { yes: true, ..ask("ACC-BOB-EUR", "Mallory Evil") };
    assert!(b.transfer(&yes_only, &mut ui).is_err());
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), expected);
    let mut ui = pins(1);
    let scripted = TransferRequest { yes: true, confirm_unverified_payee: true, ..ask("ACC-BOB-EUR", "Mallory Evil") };
    assert_eq!(b.transfer(&scripted, &mut ui).unwrap().status, paysim_wire::api::TransferStatus::Executed);
    assert!(ui.warned.join("\n").contains("does not match"), "{:?}", ui.warned);
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), expected - 100);
    // The bank recorded each second confirmation (two no matches, one unavailable).
    let audit = ops::recent_audit(&w.db, 200).unwrap();
    assert_eq!(audit.iter().filter(|e| e.kind == "payee_unverified_confirmed").count(), 3);
}

#[test]
fn a_lost_answer_is_retried_without_paying_twice() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();
    let t = b.transfer(&eur_transfer("ACC-BOB-EUR", 700), &mut pins(1)).unwrap();
    // As if the bridge died after the bank executed but before it removed the record.
    b.state
        .save_pending(&reader_bridge::state::PendingTransfer {
            verifier_id: b.bank().unwrap().verifier_id().to_owned(),
            user: "alice".parse().unwrap(),
            transfer_id: t.transfer_id.clone(),
            from: Some("ACC-ALICE-EUR".parse().unwrap()),
            to: "ACC-BOB-EUR".parse().unwrap(),
            amount_minor: 700,
            currency: "EUR".parse().unwrap(),
            payee_name: Some("Bob Example".parse().unwrap()),
        })
        .unwrap();
    let mut ui = pins(1);
    let again = b.transfer(&eur_transfer("ACC-BOB-EUR", 700), &mut ui).unwrap();
    assert_eq!(again.transfer_id, t.transfer_id);
    assert!(ui.said.join("\n").contains("already executed"), "{:?}", ui.said);
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), 100_000 - 700);
    assert!(b.pending().unwrap().is_empty());

    // With the record gone, the same fields are a NEW transfer (a second, wanted payment).
    b.transfer(&eur_transfer("ACC-BOB-EUR", 700), &mut pins(1)).unwrap();
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), 100_000 - 1400);
}

#[test]
fn card_removed_before_signing_then_retry_moves_money_once() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();
    w.token.on_next_tx(Box::new(|| Some(Error::CardRemoved)));
    let e = b.transfer(&eur_transfer("ACC-BOB-EUR", 300), &mut pins(1)).unwrap_err();
    assert!(matches!(e, Error::CardRemoved));
    assert_eq!(e.exit_code(), exit::CARD_REMOVED);
    let pending = b.pending().unwrap();
    assert_eq!(pending.len(), 1);

    let t = b.transfer(&eur_transfer("ACC-BOB-EUR", 300), &mut pins(1)).unwrap();
    assert_eq!(t.transfer_id, pending[0].transfer_id);
    assert_eq!(balance(&w.db, "alice", "ACC-ALICE-EUR"), 100_000 - 300);
    let ours: Vec<_> = b.history(50).unwrap().into_iter().filter(|h| h.transfer_id == t.transfer_id).collect();
    assert_eq!(ours.len(), 1);
}

#[test]
fn a_wrong_pin_never_reaches_the_bank() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    let mut ui = Script { secrets: ["9999".to_owned()].into(), ..Script::default() };
    let e = b.login(&name("alice"), &mut ui).unwrap_err();
    assert!(matches!(e, Error::WrongPin { tries_left: 2 }), "{e:?}");
    assert_eq!(e.exit_code(), exit::WRONG_PIN);
    let mut ui = Script { secrets: ["12a4".to_owned()].into(), ..Script::default() };
    assert!(matches!(b.login(&name("alice"), &mut ui), Err(Error::BadInput(_))));
}

#[test]
fn an_expired_session_is_forgotten() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();
    // The bank ends the session (logout from elsewhere): the bridge sees `unauthenticated`.
    let token = b.state.session(b.bank().unwrap().verifier_id()).unwrap().unwrap().token;
    b.bank().unwrap().logout(&token).unwrap();
    let e = b.accounts().unwrap_err();
    assert!(matches!(e, Error::NotLoggedIn), "{e:?}");
    assert_eq!(e.exit_code(), exit::NOT_LOGGED_IN);
    assert!(b.state.session(b.bank().unwrap().verifier_id()).unwrap().is_none());
}

#[test]
fn with_several_cards_the_bridge_asks_which_reader_or_says_to_use_reader() {
    let w = world();
    // Two readers hold a PAYSIM card and no --reader was given: the opener (standing in for
    // PC/SC) answers SeveralCards unless a reader is named, and records what it was asked.
    let readers = vec!["Virtual PCD 00 00".to_owned(), "Virtual PCD 00 01".to_owned()];
    let opened = Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let (token, seen, listed) = (w.token.clone(), opened.clone(), readers.clone());
    Bridge::setup(&w.state, &w.bank.url(), None, false).unwrap();
    let b = Bridge::open(&w.state, &BankFlags::default(), CardChoice { reader: None, wait: Duration::ZERO })
        .unwrap()
        .with_token_opener(Box::new(move |c: &CardChoice| {
            seen.lock().unwrap().push(c.reader.clone());
            match &c.reader {
                None => Err(Error::SeveralCards { readers: listed.clone() }),
                Some(_) => Ok(Box::new(token.clone()) as Box<dyn Token>),
            }
        }));

    // A person at a terminal picks the second reader; the login goes on with it.
    let mut ui = Script { choices: [Some(1)].into(), ..pins(1) };
    b.login(&name("alice"), &mut ui).unwrap();
    assert_eq!(ui.asked_to_choose, vec![readers.clone()]);
    assert_eq!(*opened.lock().unwrap(), vec![None, Some("Virtual PCD 00 01".to_owned())]);

    // A script (nobody to ask): the error lists the readers and says to use --reader.
    let mut ui = Script { choices: [None].into(), ..Script::default() };
    let e = b.login(&name("alice"), &mut ui).unwrap_err();
    assert!(matches!(e, Error::SeveralCards { .. }), "{e:?}");
    assert_eq!(e.exit_code(), exit::SEVERAL_CARDS);
    let text = e.to_string();
    assert!(text.contains("Virtual PCD 00 01") && text.contains("--reader"), "{text}");
}

#[test]
fn a_second_transfer_command_waits_its_turn_and_moves_nothing() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    b.login(&name("alice"), &mut pins(1)).unwrap();
    // Another bridge process in the middle of a transfer from the same state directory.
    let other = reader_bridge::state::StateDir::open(&w.state).unwrap();
    let held = other.lock_transfers().unwrap();
    let e = b.transfer(&eur_transfer("ACC-BOB-EUR", 500), &mut pins(1)).unwrap_err();
    assert!(matches!(e, Error::TransferBusy { .. }), "{e:?}");
    assert_eq!(e.exit_code(), exit::BUSY);
    assert_eq!(balance(&w.db, "bob", "ACC-BOB-EUR"), 0);
    assert!(b.history(10).unwrap().is_empty());
    drop(held);
    let t = b.transfer(&eur_transfer("ACC-BOB-EUR", 500), &mut pins(1)).unwrap();
    assert_eq!(t.status, paysim_wire::api::TransferStatus::Executed);
    assert_eq!(balance(&w.db, "bob", "ACC-BOB-EUR"), 500);
}

#[test]
fn respond_shows_the_pinned_bank_and_its_code_logs_in_there() {
    let w = world();
    let b = bridge(&w.bank.url(), &w.state, &w.token);
    // The challenge comes from the bank, as the website would show it.
    let ch = b.bank().unwrap().login_challenge(&name("alice")).unwrap();
    let mut ui = Script { confirms: [true].into(), ..pins(1) };
    let otp = b.respond(&ch.challenge, &reader_bridge::flow::RespondFields::Login, false, &mut ui).unwrap();
    let said = ui.said.join("\n");
    assert!(
        said.contains(&format!("Sign a login for {} (the bank this bridge is set up for)", w.bank.url())),
        "{said}"
    );
    assert_eq!(w.token.signed_for(), vec![w.bank.url()]);
    // The code is good at the pinned bank.
    b.bank().unwrap().login(&ch.challenge_id, otp.counter, &otp.otp).unwrap();

    // Declining signs nothing.
    let mut ui = Script { confirms: [false].into(), ..Script::default() };
    let e = b.respond(&ch.challenge, &reader_bridge::flow::RespondFields::Login, false, &mut ui).unwrap_err();
    assert!(matches!(e, Error::Cancelled), "{e:?}");
    assert_eq!(w.token.signed_for().len(), 1);
}
