//! Helpers shared by the integration tests: cards in every life-cycle state, a disk that
//! fails on command, and short APDU spellings.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use card_applet::host::admin::{AdminSession, Personalization};
use card_applet::host::{self};
use card_applet::state::{CardState, MemStore, Store};
use card_applet::{Card, CardFront};

pub const ADMIN_KEY: [u8; 32] = [0xA0; 32];
pub const SEED: [u8; 32] = [0x5E; 32];
pub const PIN: &str = "1234";
pub const PUK: &str = "87654321";
pub const SERIAL: &str = "PSIM-00000001";
pub const VERIFIER: &str = "https://bank.example:443";

/// A deterministic random source: 0, 1, 2, ... so tests never depend on the OS.
pub fn counting_random() -> card_applet::card::RandomSource {
    let mut n = 0u8;
    Box::new(move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            *b = n;
            n = n.wrapping_add(1);
        }
        true
    })
}

pub fn front<S: Store>(store: S, state: CardState) -> CardFront<S> {
    CardFront::new(Card::with_random(store, state, counting_random()))
}

pub fn factory() -> CardFront<MemStore> {
    front(MemStore::default(), CardState::factory(&ADMIN_KEY))
}

/// Sends `apdu`, following 61xx, and returns data ‖ SW.
pub fn tx<S: Store>(card: &mut CardFront<S>, apdu: &[u8]) -> Vec<u8> {
    host::transceive(apdu, &mut |a: &[u8]| Ok::<_, std::convert::Infallible>(card.process(a))).unwrap()
}

pub fn sw(resp: &[u8]) -> u16 {
    u16::from_be_bytes([resp[resp.len() - 2], resp[resp.len() - 1]])
}

pub fn data(resp: &[u8]) -> &[u8] {
    &resp[..resp.len() - 2]
}

/// Runs the whole admin protocol through `card` with the host session.
pub fn personalize_with<S: Store>(
    card: &mut CardFront<S>,
    key: &[u8; 32],
    seed: &[u8; 32],
    pin: &str,
    puk: &str,
    serial: &str,
) {
    assert_eq!(sw(&tx(card, &host::select())), 0x9000);
    let mut s = AdminSession::with_host_challenge(key, [0x11; 16]);
    let rc = tx(card, &AdminSession::get_challenge());
    let auth = s.external_authenticate(&rc).unwrap();
    s.check_authenticated(&tx(card, &auth)).unwrap();
    let cmd = s.personalize(&Personalization { seed, pin, puk, serial }).unwrap();
    s.check_personalized(&tx(card, &cmd)).unwrap();
}

pub fn personalized() -> CardFront<MemStore> {
    let mut card = factory();
    personalize_with(&mut card, &ADMIN_KEY, &SEED, PIN, PUK, SERIAL);
    card
}

/// Selected and PIN verified.
pub fn unlocked() -> CardFront<MemStore> {
    let mut card = personalized();
    assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
    assert_eq!(sw(&tx(&mut card, &host::verify(PIN).unwrap())), 0x9000);
    card
}

pub fn login_apdu(challenge: &[u8]) -> Vec<u8> {
    host::login_otp(challenge, VERIFIER).unwrap()
}

pub fn hexs(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// How an injected write failure behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// Power is lost before the write reaches the disk: the old state stays.
    Lost,
    /// The write reaches the disk but the store reports an error (e.g. the directory
    /// fsync failed): the new state stays.
    Landed,
}

#[derive(Debug)]
pub struct DiskInner {
    /// What a restart would load.
    pub durable: CardState,
    /// Writes attempted so far.
    pub writes: usize,
    /// Index of the write that fails (0-based), if any.
    pub fail_at: Option<usize>,
    pub tear: Tear,
    pub failed: bool,
}

/// A store whose Nth write fails, shared with the test so it can "restart" the card.
#[derive(Clone, Debug)]
pub struct Disk(pub Rc<RefCell<DiskInner>>);

impl Disk {
    pub fn new(state: CardState) -> Self {
        Disk(Rc::new(RefCell::new(DiskInner {
            durable: state,
            writes: 0,
            fail_at: None,
            tear: Tear::Lost,
            failed: false,
        })))
    }
    pub fn fail_at(&self, n: Option<usize>, tear: Tear) {
        let mut d = self.0.borrow_mut();
        d.fail_at = n;
        d.tear = tear;
        d.failed = false;
    }
    pub fn writes(&self) -> usize {
        self.0.borrow().writes
    }
    pub fn durable(&self) -> CardState {
        self.0.borrow().durable.clone()
    }
    pub fn failed(&self) -> bool {
        self.0.borrow().failed
    }
    /// A restarted card reading what is on the disk.
    pub fn restart(&self) -> CardFront<Disk> {
        front(self.clone(), self.durable())
    }
}

/// The error of a write [`Disk`] was told to fail.
#[derive(Debug)]
pub struct TornWrite(pub Tear);

impl std::fmt::Display for TornWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "test disk: write torn ({:?})", self.0)
    }
}

impl Store for Disk {
    type Error = TornWrite;

    fn commit(&mut self, state: &CardState) -> Result<(), TornWrite> {
        let mut d = self.0.borrow_mut();
        let n = d.writes;
        d.writes += 1;
        if d.fail_at == Some(n) {
            d.failed = true;
            if d.tear == Tear::Landed {
                d.durable = state.clone();
            }
            return Err(TornWrite(d.tear));
        }
        d.durable = state.clone();
        Ok(())
    }
}
