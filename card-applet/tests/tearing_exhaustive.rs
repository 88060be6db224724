//! Exhaustive tearing: one script that runs every PAYSIM command that writes (admin
//! authentication right and wrong, PERSONALIZE, VERIFY right and wrong, LOGIN and TRANSACTION
//! OTP, CHANGE REFERENCE DATA, RESET RETRY COUNTER right and wrong) is run once cleanly to
//! number its writes, then once for every write `i` and both ways a write can tear:
//!
//! - the power is cut at write `i` (it never lands) or it lands and the store still fails;
//! - the command that made write `i` must answer `6581` with no data;
//! - the state on the disk must be the one before write `i` or the one after it, exactly as
//!   the clean run had them (never a mix, never anything else);
//! - the card then restarts from the disk and the script goes on from the torn step: every
//!   code it emits comes from the step the disk held, and no counter is emitted twice over
//!   the whole run, before and after the tear.
//!
//! The writes are enumerated, not sampled: `tears_at_every_write_point` prints how many.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use card_applet::host::admin::{AdminSession, Personalization};
use card_applet::host::{self};
use card_applet::pin::PinBlock;
use card_applet::state::{CardState, Store};
use card_applet::CardFront;
use common::{front, sw, tx, ADMIN_KEY, PIN, PUK, SEED, SERIAL, VERIFIER};
use paysim_otp::TxFields;

const NEW_PIN: &str = "8642";
const WRONG_KEY: [u8; 32] = [0x0B; 32];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tear {
    Lost,
    Landed,
}

/// What the store has seen: the durable state after every write attempt, and the one
/// failure to inject.
struct TapeInner {
    durable: CardState,
    /// `history[n]`: what was durable after write `n` was attempted.
    history: Vec<CardState>,
    fail: Option<(usize, Tear)>,
    failed: bool,
}

#[derive(Clone)]
struct Tape(Rc<RefCell<TapeInner>>);

#[derive(Debug)]
struct Torn;

impl std::fmt::Display for Torn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("test store: write torn")
    }
}

impl Store for Tape {
    type Error = Torn;

    fn commit(&mut self, state: &CardState) -> Result<(), Torn> {
        let mut t = self.0.borrow_mut();
        let n = t.history.len();
        let outcome = match t.fail {
            Some((at, tear)) if at == n => {
                t.failed = true;
                if tear == Tear::Landed {
                    t.durable = state.clone();
                }
                Err(Torn)
            }
            _ => {
                t.durable = state.clone();
                Ok(())
            }
        };
        let now = t.durable.clone();
        t.history.push(now);
        outcome
    }
}

impl Tape {
    fn new(state: CardState, fail: Option<(usize, Tear)>) -> Self {
        Tape(Rc::new(RefCell::new(TapeInner { durable: state, history: Vec::new(), fail, failed: false })))
    }
    fn durable(&self) -> CardState {
        self.0.borrow().durable.clone()
    }
    fn failed(&self) -> bool {
        self.0.borrow().failed
    }
    fn restart(&self) -> CardFront<Tape> {
        front(self.clone(), self.durable())
    }
}

/// The script's steps. Each begins with SELECT, so it can be run again on a restarted card.
#[derive(Clone, Copy, Debug)]
enum Step {
    WrongAdminKey,
    Personalize,
    WrongPin,
    Login(u8),
    Tx(u8),
    ChangePin,
    WrongPuk,
    Unblock,
}

const SCRIPT: &[Step] = &[
    Step::WrongAdminKey,
    Step::Personalize,
    Step::WrongPin,
    Step::Login(1),
    Step::Tx(2),
    Step::ChangePin,
    Step::Login(3),
    Step::WrongPin,
    Step::WrongPuk,
    Step::Unblock,
    Step::Tx(4),
    Step::Login(5),
];

/// The PIN the card holds now, read from its state (after a tear the host cannot know whether
/// a change of PIN landed; a real host would learn it from the next VERIFY).
fn current_pin(state: &CardState) -> &'static str {
    match &state.personal {
        Some(p) if p.pin == PinBlock::from_pin(NEW_PIN).unwrap() => NEW_PIN,
        _ => PIN,
    }
}

fn tx_fields(n: u8) -> TxFields<'static> {
    const IDS: [&str; 8] = ["T-0", "T-1", "T-2", "T-3", "T-4", "T-5", "T-6", "T-7"];
    TxFields {
        version: paysim_otp::TxVersion::V1,
        source: b"",
        payee_name: b"",
        verifier_id: VERIFIER.as_bytes(),
        transaction_id: IDS[usize::from(n % 8)].as_bytes(),
        amount_minor: 1000 + u64::from(n),
        currency: b"EUR",
        payee: b"DE89370400440532013000",
    }
}

/// What one APDU of a step answered, and whether the write it made was the torn one.
struct Answer {
    resp: Vec<u8>,
    torn_here: bool,
}

/// Runs `step`: each APDU's answer, in order. Stops after the APDU whose write tore.
fn run(card: &mut CardFront<Tape>, tape: &Tape, step: Step) -> Vec<Answer> {
    let mut out = Vec::new();
    let send = |card: &mut CardFront<Tape>, apdu: &[u8], out: &mut Vec<Answer>| -> bool {
        let was = tape.failed();
        let resp = tx(card, apdu);
        let torn_here = !was && tape.failed();
        out.push(Answer { resp, torn_here });
        !torn_here
    };
    if !send(card, &host::select(), &mut out) {
        return out;
    }
    let pin = current_pin(&tape.durable());
    match step {
        Step::WrongAdminKey | Step::Personalize => {
            let key = if matches!(step, Step::Personalize) { &ADMIN_KEY } else { &WRONG_KEY };
            let mut s = AdminSession::with_host_challenge(key, [0x11; 16]);
            if !send(card, &AdminSession::get_challenge(), &mut out) {
                return out;
            }
            let rc = out.last().unwrap().resp.clone();
            let Ok(auth) = s.external_authenticate(&rc) else { return out };
            if !send(card, &auth, &mut out) {
                return out;
            }
            if matches!(step, Step::Personalize) && sw(&out.last().unwrap().resp) == 0x9000 {
                if s.check_authenticated(&out.last().unwrap().resp).is_err() {
                    return out;
                }
                let cmd = s.personalize(&Personalization { seed: &SEED, pin: PIN, puk: PUK, serial: SERIAL }).unwrap();
                send(card, &cmd, &mut out);
            }
        }
        Step::WrongPin => {
            send(card, &host::verify("0000").unwrap(), &mut out);
        }
        Step::Login(n) | Step::Tx(n) => {
            if !send(card, &host::verify(pin).unwrap(), &mut out) {
                return out;
            }
            let apdu = match step {
                Step::Login(_) => host::login_otp(&[n; 16], VERIFIER).unwrap(),
                _ => host::tx_otp(&[n; 16], &tx_fields(n)).unwrap(),
            };
            send(card, &apdu, &mut out);
        }
        Step::ChangePin => {
            let to = if pin == PIN { NEW_PIN } else { PIN };
            send(card, &host::change_pin(pin, to).unwrap(), &mut out);
        }
        Step::WrongPuk => {
            send(card, &host::reset_retry_counter("00000000", PIN).unwrap(), &mut out);
        }
        Step::Unblock => {
            send(card, &host::reset_retry_counter(PUK, PIN).unwrap(), &mut out);
        }
    }
    out
}

/// The counters of the codes among `answers` (the OTP answers that said `9000`).
fn emitted(answers: &[Answer]) -> Vec<u64> {
    answers
        .iter()
        .filter(|a| sw(&a.resp) == 0x9000 && a.resp.len() > 2)
        .filter_map(|a| host::parse_otp(&a.resp).ok().map(|(counter, _)| counter))
        .collect()
}

fn counter(state: &CardState) -> Option<u64> {
    state.personal.as_ref().map(|p| p.counter)
}

#[test]
fn tears_at_every_write_point() {
    let factory = CardState::factory(&ADMIN_KEY);
    // The clean run: how many writes, and the durable state after each.
    let clean = Tape::new(factory.clone(), None);
    let mut card = clean.restart();
    let mut clean_codes = Vec::new();
    for &step in SCRIPT {
        let answers = run(&mut card, &clean, step);
        clean_codes.extend(emitted(&answers));
    }
    let history = clean.0.borrow().history.clone();
    let writes = history.len();
    assert!(writes >= 20, "the script writes {writes} times");
    assert_eq!(clean_codes, vec![0, 1, 2, 3, 4], "the clean run emits one code per OTP step");

    let mut runs = 0;
    for i in 0..writes {
        for tear in [Tear::Lost, Tear::Landed] {
            let tape = Tape::new(factory.clone(), Some((i, tear)));
            let mut card = tape.restart();
            let mut seen = BTreeSet::new();
            let mut torn_at = None;
            for (k, &step) in SCRIPT.iter().enumerate() {
                let answers = run(&mut card, &tape, step);
                for c in emitted(&answers) {
                    assert!(seen.insert(c), "write {i} {tear:?}: counter {c} emitted twice");
                }
                if let Some(a) = answers.iter().find(|a| a.torn_here) {
                    assert_eq!(a.resp, vec![0x65, 0x81], "write {i} {tear:?} in {step:?}: 6581 and no data");
                    torn_at = Some(k);
                    break;
                }
            }
            let k = torn_at.unwrap_or_else(|| panic!("write {i} was never reached"));
            // Old or new, exactly as the clean run had them.
            let before = if i == 0 { &factory } else { &history[i - 1] };
            let expected = if tear == Tear::Lost { before } else { &history[i] };
            assert!(tape.durable() == *expected, "write {i} {tear:?} in {:?}: the disk holds another state", SCRIPT[k]);

            // Restart and go on from the torn step: the codes come from the disk's step, and
            // none repeats one emitted before the tear.
            let mut card = tape.restart();
            for &step in &SCRIPT[k..] {
                let held = counter(&tape.durable());
                let answers = run(&mut card, &tape, step);
                let codes = emitted(&answers);
                if let (Some(&c), Some(held)) = (codes.first(), held) {
                    assert_eq!(c, held, "write {i} {tear:?}: after the restart {step:?} used the step the disk held");
                }
                for c in codes {
                    assert!(seen.insert(c), "write {i} {tear:?}: counter {c} emitted twice (after the restart)");
                }
            }
            let last = counter(&tape.durable()).unwrap();
            assert!(seen.iter().all(|&c| c < last), "write {i} {tear:?}: the disk's next step is past every code");
            runs += 1;
        }
    }
    println!("exhaustive tearing: {writes} write points x 2 tear modes = {runs} torn runs, each restarted and checked");
    assert_eq!(runs, writes * 2);
}
