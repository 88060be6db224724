//! Feeds a sequence of APDUs (and resets) to one personalized card with in-memory storage,
//! so the card's state is fuzzed along with its parser. Checks after every input:
//! nothing panicked, no OTP counter came out twice, and the card still answers SELECT and
//! GET DATA after a reset (it cannot be wedged).
//!
//! Input encoding, repeated until the bytes run out:
//!   op (1 byte) ‖ len (1 byte) ‖ len bytes
//! op % 8: 0-3 send the bytes as an APDU; 4 reset; 5 SELECT; 6 VERIFY with the right PIN;
//!         7 LOGIN OTP with the bytes as challenge.
#![no_main]

use std::collections::BTreeSet;

use card_applet::host::admin::{AdminSession, Personalization};
use card_applet::host::{self};
use card_applet::state::{CardState, MemStore};
use card_applet::{Card, CardFront};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [0xA0; 32];
const PIN: &str = "1234";

fn send(card: &mut CardFront<MemStore>, apdu: &[u8]) -> Vec<u8> {
    host::transceive(apdu, &mut |a: &[u8]| Ok::<_, std::convert::Infallible>(card.process(a))).unwrap_or_default()
}

fn personalized_card() -> CardFront<MemStore> {
    let mut n = 0u8;
    let random = Box::new(move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            *b = n;
            n = n.wrapping_add(1);
        }
        true
    });
    let mut card = CardFront::new(Card::with_random(MemStore::default(), CardState::factory(&KEY), random));
    send(&mut card, &host::select());
    let mut s = AdminSession::with_host_challenge(&KEY, [1; 16]);
    let rc = send(&mut card, &AdminSession::get_challenge());
    let auth = s.external_authenticate(&rc).expect("challenge");
    s.check_authenticated(&send(&mut card, &auth)).expect("authenticated");
    let p = Personalization { seed: &[0x5E; 32], pin: PIN, puk: "87654321", serial: "FUZZ-1" };
    let cmd = s.personalize(&p).expect("personalize");
    s.check_personalized(&send(&mut card, &cmd)).expect("personalized");
    card
}

fuzz_target!(|data: &[u8]| {
    let mut card = personalized_card();
    let mut seen = BTreeSet::new();
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        let resp = match op % 8 {
            0..=3 => card.process(bytes),
            4 => {
                card.reset();
                continue;
            }
            5 => card.process(&host::select()),
            6 => card.process(host::verify(PIN).expect("pin").as_slice()),
            _ => match host::login_otp(bytes, "https://bank.example:443") {
                Ok(apdu) => card.process(&apdu),
                Err(_) => card.process(bytes),
            },
        };
        assert!(resp.len() >= 2, "every answer ends in a status word");
        if let Ok((counter, _)) = host::parse_otp(&resp) {
            assert!(seen.insert(counter), "counter {counter} emitted twice");
        }
    }
    card.reset();
    let select = send(&mut card, &host::select());
    assert_eq!(select[select.len() - 2..], [0x90, 0x00], "SELECT after reset");
    let counter = host::parse_counter(&send(&mut card, &host::get_data(card_applet::command::DataObject::NextCounter)))
        .expect("GET DATA after reset");
    assert!(seen.iter().all(|&c| c < counter), "the card's counter is past every emitted code");
});
