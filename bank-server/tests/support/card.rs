//! The card the tests and the benchmark use: the real card core (`card_applet`) in memory,
//! personalized through the admin protocol with the test's seed, asked for codes with the
//! same APDUs the reader-bridge sends. Shared by `tests/bank` and `benches/throughput.rs`
//! (each uses a part of it).
#![allow(dead_code)]

use std::convert::Infallible;

use card_applet::host::{self, admin::AdminSession, admin::Personalization};
use card_applet::state::{CardState, MemStore};
use card_applet::{Card as Core, CardFront};
use paysim_otp::TxFields;

const ADMIN_KEY: [u8; 32] = [0x42; 32];
const PIN: &str = "1234";
const PUK: &str = "12345678";
const SERIAL: &str = "PSIM-TEST";

/// A personalized card in memory.
pub struct Card {
    front: CardFront<MemStore>,
}

/// A copy of the card in its current state (the same next counter and chain key): codes it
/// computes do not move the original on.
impl Clone for Card {
    fn clone(&self) -> Self {
        let state = self.front.card().state().clone();
        Card { front: CardFront::new(Core::new(MemStore::default(), state)) }
    }
}

impl Card {
    /// A factory-fresh card personalized with `seed` as its chain seed `ck_0`.
    pub fn new(seed: [u8; 32]) -> Self {
        let mut card = Card { front: CardFront::new(Core::new(MemStore::default(), CardState::factory(&ADMIN_KEY))) };
        host::parse_select(&card.send(&host::select())).unwrap();
        let mut session = AdminSession::new(&ADMIN_KEY).unwrap();
        let challenge = card.send(&AdminSession::get_challenge());
        let auth = session.external_authenticate(&challenge).unwrap();
        session.check_authenticated(&card.send(&auth)).unwrap();
        let p = Personalization { seed: &seed, pin: PIN, puk: PUK, serial: SERIAL };
        let cmd = session.personalize(&p).unwrap();
        session.check_personalized(&card.send(&cmd)).unwrap();
        card
    }

    /// One command, with GET RESPONSE as a reader would do it.
    fn send(&mut self, apdu: &[u8]) -> Vec<u8> {
        let front = &mut self.front;
        host::transceive(apdu, &mut |a: &[u8]| Ok::<_, Infallible>(front.process(a))).unwrap()
    }

    /// SELECT and VERIFY PIN, as the bridge does before each code.
    fn unlock(&mut self) {
        host::parse_select(&self.send(&host::select())).unwrap();
        let verify = host::verify(PIN).unwrap();
        host::parse_verify(&self.send(&verify)).unwrap();
    }

    fn code(&mut self, apdu: &[u8]) -> (u64, String) {
        let (counter, otp) = host::parse_otp(&self.send(apdu)).unwrap();
        (counter, otp.as_str().to_owned())
    }

    /// LOGIN OTP over (challenge, verifier id); the card's counter moves on.
    pub fn login(&mut self, challenge_hex: &str, vid: &str) -> (u64, String) {
        let ch = hex::decode(challenge_hex).unwrap();
        self.unlock();
        self.code(&host::login_otp(&ch, vid).unwrap())
    }

    /// TRANSACTION OTP over (challenge, fields).
    pub fn tx(&mut self, challenge_hex: &str, f: &TxFields<'_>) -> (u64, String) {
        let ch = hex::decode(challenge_hex).unwrap();
        self.unlock();
        self.code(&host::tx_otp(&ch, f).unwrap())
    }

    /// Codes computed and never sent.
    pub fn skip(&mut self, n: u64) {
        for _ in 0..n {
            self.login(&"00".repeat(32), "http://unused.test");
        }
    }
}
