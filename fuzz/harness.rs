//! The APDU-sequence harness shared by the libFuzzer target (`fuzz_targets/apdu_sequence.rs`)
//! and the stable test suite (`card-applet/tests/fuzz_harness.rs`, which runs it under
//! proptest and on hand-written inputs), so the target is compiled and exercised by every
//! `cargo test -p card-applet`. Only `std` and the public API of `card_applet`'s no_std core
//! are used (the fuzz crate depends on it without features).
//!
//! One personalized card runs on a simulated disk that can tear any write. The input is a
//! sequence of records, repeated until the bytes run out:
//!
//! ```text
//! op (1 byte) ‖ len (1 byte) ‖ len bytes
//! op % 12:  0-3  send the bytes as an APDU
//!           4    reset (PIN and admin session forgotten)
//!           5    SELECT
//!           6    VERIFY with the current PIN
//!           7    LOGIN OTP, the bytes as challenge
//!           8    TRANSACTION OTP, challenge and amount from the bytes
//!           9    the next write fails: lost (first byte even) or landed but reported failed
//!           10   power loss: restart the card from what the disk holds
//!           11   admin authentication and PERSONALIZE with a seed from the bytes
//! ```
//!
//! Checked after every step (any failure panics, which both drivers report):
//! - every answer ends in a status word, and an error answer carries no data;
//! - no counter of a chain is emitted twice, and each is above the ones before;
//! - when a code leaves the card, the disk already holds a later step (commit before answer);
//! - codes of LOGIN/TRANSACTION OTP steps are the PAYSIM-1 codes of the chain the card was
//!   personalized with;
//! - after a restart the disk's counter is past every code emitted;
//! - at the end, after a reset, SELECT and GET DATA still answer (the card cannot be wedged).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use card_applet::command::DataObject;
use card_applet::host::admin::{AdminSession, Personalization};
use card_applet::host::{self};
use card_applet::state::{CardState, Store};
use card_applet::{Card, CardFront};
use paysim_otp::{login_otp, tx_otp, ChainKey, TxFields};

const ADMIN_KEY: [u8; 32] = [0xA0; 32];
const PIN: &str = "1234";
const PUK: &str = "87654321";
const VERIFIER: &str = "https://bank.example:443";

/// What one run did, so tests can check that an input reached the paths it was meant to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Codes that left the card (any command).
    pub codes: usize,
    /// Codes checked against the algorithm.
    pub checked_codes: usize,
    /// Writes that failed on purpose.
    pub torn_writes: usize,
    /// Restarts from the disk.
    pub restarts: usize,
    /// Successful (re-)personalizations after the first.
    pub personalizations: usize,
}

struct DiskInner {
    durable: CardState,
    /// `Some(landed)`: the next write fails; if `landed`, it reached the disk anyway.
    fail_next: Option<bool>,
    torn: usize,
}

/// A disk shared between the harness and the card's store.
#[derive(Clone)]
struct Disk(Rc<RefCell<DiskInner>>);

/// The error of a write the input made fail.
struct TornWrite;

impl std::fmt::Display for TornWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fuzz disk: write torn")
    }
}

impl Store for Disk {
    type Error = TornWrite;

    fn commit(&mut self, state: &CardState) -> Result<(), TornWrite> {
        let mut d = self.0.borrow_mut();
        match d.fail_next.take() {
            Some(landed) => {
                d.torn += 1;
                if landed {
                    d.durable = state.clone();
                }
                Err(TornWrite)
            }
            None => {
                d.durable = state.clone();
                Ok(())
            }
        }
    }
}

impl Disk {
    fn counter(&self) -> Option<u64> {
        self.0.borrow().durable.personal.as_ref().map(|p| p.counter)
    }
}

fn counting_random() -> card_applet::card::RandomSource {
    let mut n = 0u8;
    Box::new(move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            *b = n;
            n = n.wrapping_add(1);
        }
        true
    })
}

fn boot(disk: &Disk) -> CardFront<Disk> {
    let state = disk.0.borrow().durable.clone();
    CardFront::new(Card::with_random(disk.clone(), state, counting_random()))
}

fn send(card: &mut CardFront<Disk>, apdu: &[u8]) -> Vec<u8> {
    match host::transceive(apdu, &mut |a: &[u8]| Ok::<_, std::convert::Infallible>(card.process(a))) {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

fn sw(resp: &[u8]) -> u16 {
    match resp {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => panic!("an answer without a status word: {resp:02X?}"),
    }
}

/// Runs the admin protocol; `true` if the card is now personalized with `seed`.
fn personalize(card: &mut CardFront<Disk>, seed: &[u8; 32]) -> bool {
    if sw(&send(card, &host::select())) != 0x9000 {
        return false;
    }
    let mut s = AdminSession::with_host_challenge(&ADMIN_KEY, [0x11; 16]);
    let Ok(auth) = s.external_authenticate(&send(card, &AdminSession::get_challenge())) else {
        return false; // admin key blocked by earlier random EXTERNAL AUTHENTICATEs
    };
    if s.check_authenticated(&send(card, &auth)).is_err() {
        return false;
    }
    let p = Personalization { seed, pin: PIN, puk: PUK, serial: "FUZZ-1" };
    let Ok(cmd) = s.personalize(&p) else { return false };
    s.check_personalized(&send(card, &cmd)).is_ok()
}

/// The chain the card runs, as far as the harness knows it.
struct Chain {
    seed: [u8; 32],
    /// Counters emitted from this chain.
    seen: BTreeSet<u64>,
    /// A cursor (i, ck_i) to recompute codes without walking from the seed each time.
    cursor: (u64, ChainKey),
}

impl Chain {
    fn new(seed: [u8; 32]) -> Self {
        Self { seed, seen: BTreeSet::new(), cursor: (0, ChainKey::from_bytes(seed)) }
    }

    /// Records that counter `i` was emitted; returns `ck_i`.
    fn emitted(&mut self, i: u64) -> ChainKey {
        assert!(self.seen.insert(i), "counter {i} emitted twice");
        assert!(self.seen.last() == Some(&i), "counter {i} below one emitted before");
        let (at, ck) = &self.cursor;
        let steps = i.checked_sub(*at).unwrap_or_else(|| panic!("counter {i} before the cursor {at}"));
        let ck = ck.advance(steps);
        self.cursor = (i, ck.clone());
        ck
    }
}

/// Runs one input. Panics on any broken invariant.
pub fn run(data: &[u8]) -> Stats {
    let mut stats = Stats::default();
    let disk =
        Disk(Rc::new(RefCell::new(DiskInner { durable: CardState::factory(&ADMIN_KEY), fail_next: None, torn: 0 })));
    let mut card = boot(&disk);
    let mut chain = Chain::new([0x5E; 32]);
    assert!(personalize(&mut card, &chain.seed), "the first personalization must work");

    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        // Known inputs of an OTP step, to recompute its code: (challenge, fields of a TX).
        let mut known: Option<(Vec<u8>, Option<u64>)> = None;
        let resp = match op % 12 {
            0..=3 => card.process(bytes),
            4 => {
                card.reset();
                continue;
            }
            5 => card.process(&host::select()),
            6 => match host::verify(PIN) {
                Ok(apdu) => card.process(&apdu),
                Err(e) => panic!("{e}"),
            },
            7 => match host::login_otp(bytes, VERIFIER) {
                Ok(apdu) => {
                    known = Some((bytes.to_vec(), None));
                    send(&mut card, &apdu)
                }
                Err(_) => card.process(bytes),
            },
            8 => {
                let mut challenge = bytes.to_vec();
                challenge.resize(challenge.len().clamp(16, 32), 0);
                let amount = bytes.iter().fold(0u64, |a, &b| a.rotate_left(8) ^ u64::from(b));
                let fields = tx_fields(amount);
                match host::tx_otp(&challenge, &fields) {
                    Ok(apdu) => {
                        known = Some((challenge, Some(amount)));
                        send(&mut card, &apdu)
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            9 => {
                disk.0.borrow_mut().fail_next = Some(bytes.first().is_some_and(|b| b % 2 == 1));
                continue;
            }
            10 => {
                disk.0.borrow_mut().fail_next = None;
                card = boot(&disk);
                stats.restarts += 1;
                if let (Some(on_disk), Some(max)) = (disk.counter(), chain.seen.last()) {
                    assert!(on_disk > *max, "restarted at {on_disk}, but {max} was already emitted");
                }
                continue;
            }
            _ => {
                // Personalization is not torn here (the OTP and PIN commands are).
                disk.0.borrow_mut().fail_next = None;
                let mut seed = [0u8; 32];
                for (s, b) in seed.iter_mut().zip(bytes.iter().cycle()) {
                    *s = *b;
                }
                if personalize(&mut card, &seed) {
                    chain = Chain::new(seed);
                    stats.personalizations += 1;
                }
                continue;
            }
        };
        assert!(resp.len() >= 2, "every answer ends in a status word");
        if sw(&resp) != 0x9000 && sw(&resp) >> 8 != 0x61 {
            assert_eq!(resp.len(), 2, "an error answer with data: {resp:02X?}");
        }
        if let Ok((i, code)) = host::parse_otp(&resp) {
            stats.codes += 1;
            let on_disk = disk.counter().unwrap_or(0);
            assert!(on_disk > i, "code {i} left the card while the disk holds step {on_disk}");
            let ck = chain.emitted(i);
            if let Some((challenge, amount)) = known {
                let want = match amount {
                    None => login_otp(&ck, i, &challenge, VERIFIER.as_bytes()),
                    Some(a) => tx_otp(&ck, i, &challenge, &tx_fields(a)),
                };
                assert!(code == want, "code of step {i} is not the PAYSIM-1 code");
                stats.checked_codes += 1;
            }
        }
    }
    stats.torn_writes = disk.0.borrow().torn;

    disk.0.borrow_mut().fail_next = None;
    card.reset();
    assert_eq!(sw(&send(&mut card, &host::select())), 0x9000, "SELECT after reset");
    let counter = host::parse_counter(&send(&mut card, &host::get_data(DataObject::NextCounter)))
        .unwrap_or_else(|e| panic!("GET DATA after reset: {e}"));
    if let Some(max) = chain.seen.last() {
        assert!(counter > *max, "the card's counter {counter} is not past the emitted {max}");
    }
    stats
}

fn tx_fields(amount_minor: u64) -> TxFields<'static> {
    TxFields {
        verifier_id: VERIFIER.as_bytes(),
        transaction_id: b"transfer-1",
        amount_minor,
        currency: b"EUR",
        payee: b"DE89370400440532013000",
    }
}
