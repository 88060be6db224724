//! PIN, PUK and admin-key try counters, admin authentication and personalization.

mod common;

use card_applet::command::DataObject;
use card_applet::host::admin::{AdminError, AdminSession, Personalization};
use card_applet::host::{self, CardError, PinStatus};
use common::*;
use paysim_otp::{login_otp, ChainKey};

#[test]
fn pin_tries_count_down_block_and_reset_on_success() {
    let mut c = personalized();
    tx(&mut c, &host::select());
    let wrong = host::verify("9999").unwrap();
    assert_eq!(sw(&tx(&mut c, &wrong)), 0x63C2);
    // A right PIN before blocking restores all three tries.
    assert_eq!(sw(&tx(&mut c, &host::verify(PIN).unwrap())), 0x9000);
    assert_eq!(c.card().state().personal.as_ref().unwrap().pin_tries, 3);
    let answers: Vec<u16> = (0..5).map(|_| sw(&tx(&mut c, &wrong))).collect();
    assert_eq!(answers, [0x63C2, 0x63C1, 0x63C0, 0x6983, 0x6983]);
    // A wrong PIN also drops an earlier verification.
    assert!(!c.card().pin_verified());
    // Blocked: even the right PIN is refused and nothing is spent.
    assert_eq!(sw(&tx(&mut c, &host::verify(PIN).unwrap())), 0x6983);
    assert_eq!(host::parse_pin_status(&tx(&mut c, &host::verify_status())).unwrap(), PinStatus::Blocked);
    assert_eq!(host::parse_byte(&tx(&mut c, &host::get_data(DataObject::PinTries))).unwrap(), 0);
    assert_eq!(sw(&tx(&mut c, &login_apdu(&[1; 16]))), 0x6982);
    assert_eq!(sw(&tx(&mut c, &host::change_pin(PIN, "5555").unwrap())), 0x6983);
}

#[test]
fn puk_unblocks_the_pin_and_has_ten_tries() {
    let mut c = personalized();
    tx(&mut c, &host::select());
    for _ in 0..3 {
        tx(&mut c, &host::verify("9999").unwrap());
    }
    assert_eq!(sw(&tx(&mut c, &host::verify(PIN).unwrap())), 0x6983);
    // Wrong PUK: 63C9 .. then right PUK resets everything.
    assert_eq!(sw(&tx(&mut c, &host::reset_retry_counter("00000000", "4321").unwrap())), 0x63C9);
    assert_eq!(sw(&tx(&mut c, &host::reset_retry_counter(PUK, "4321").unwrap())), 0x9000);
    let p = c.card().state().personal.as_ref().unwrap();
    assert_eq!((p.pin_tries, p.puk_tries), (3, 10));
    assert!(!c.card().pin_verified(), "RESET RETRY COUNTER does not verify the PIN");
    assert_eq!(sw(&tx(&mut c, &host::verify(PIN).unwrap())), 0x63C2);
    assert_eq!(sw(&tx(&mut c, &host::verify("4321").unwrap())), 0x9000);

    // Ten wrong PUKs: 63C9 .. 63C0, then 6983 even for the right one.
    let answers: Vec<u16> =
        (0..11).map(|_| sw(&tx(&mut c, &host::reset_retry_counter("11111111", "4321").unwrap()))).collect();
    let want: Vec<u16> = (0..10).rev().map(|n| 0x63C0 | n).chain([0x6983]).collect();
    assert_eq!(answers, want);
    assert_eq!(sw(&tx(&mut c, &host::reset_retry_counter(PUK, "4321").unwrap())), 0x6983);
    assert_eq!(
        host::parse_reset_retry_counter(&tx(&mut c, &host::reset_retry_counter(PUK, "4321").unwrap())),
        Err(CardError::PukBlocked)
    );
}

#[test]
fn reset_and_power_off_forget_the_pin_but_not_the_counters() {
    let mut c = unlocked();
    tx(&mut c, &host::verify("0000").unwrap());
    assert_eq!(sw(&tx(&mut c, &host::verify(PIN).unwrap())), 0x9000);
    c.reset();
    // After reset nothing is selected.
    assert_eq!(sw(&c.process(&login_apdu(&[1; 16]))), 0x6985);
    tx(&mut c, &host::select());
    assert_eq!(sw(&tx(&mut c, &login_apdu(&[1; 16]))), 0x6982);
    tx(&mut c, &host::verify("0000").unwrap());
    c.power_off();
    tx(&mut c, &host::select());
    assert_eq!(
        host::parse_pin_status(&tx(&mut c, &host::verify_status())).unwrap(),
        PinStatus::NotVerified { tries_left: 2 }
    );
}

#[test]
fn admin_key_blocks_after_ten_failures() {
    let mut c = factory();
    tx(&mut c, &host::select());
    for left in (0..10u8).rev() {
        let mut s = AdminSession::with_host_challenge(&[0xBB; 32], [1; 16]);
        let auth = s.external_authenticate(&tx(&mut c, &AdminSession::get_challenge())).unwrap();
        match s.check_authenticated(&tx(&mut c, &auth)) {
            Err(AdminError::Card(CardError::AdminAuthFailed { tries_left })) => assert_eq!(tries_left, left),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(c.card().state().admin_tries, 0);
    // Blocked: not even a challenge, and the right key no longer helps.
    assert_eq!(sw(&tx(&mut c, &AdminSession::get_challenge())), 0x6983);
    let mut s = AdminSession::with_host_challenge(&ADMIN_KEY, [1; 16]);
    assert!(matches!(
        s.external_authenticate(&tx(&mut c, &AdminSession::get_challenge())),
        Err(AdminError::Card(CardError::AdminBlocked))
    ));
}

#[test]
fn a_right_admin_authentication_restores_the_tries() {
    let mut c = factory();
    tx(&mut c, &host::select());
    let mut s = AdminSession::with_host_challenge(&[0xBB; 32], [1; 16]);
    let auth = s.external_authenticate(&tx(&mut c, &AdminSession::get_challenge())).unwrap();
    assert_eq!(sw(&tx(&mut c, &auth)), 0x63C9);
    personalize_with(&mut c, &ADMIN_KEY, &SEED, PIN, PUK, SERIAL);
    assert_eq!(c.card().state().admin_tries, 10);
}

/// EXTERNAL AUTHENTICATE without a GET CHALLENGE just before spends no try (6985); once the
/// key is blocked it answers 6983 before even looking for a challenge. Neither writes.
#[test]
fn an_unchallenged_external_authenticate_costs_nothing() {
    let mut c = factory();
    tx(&mut c, &host::select());
    let unchallenged = card_applet::apdu::build(0x00, 0x82, 0, 0, &[0x11; 32], Some(256)).unwrap();
    let writes = c.card().store().writes;
    assert_eq!(sw(&tx(&mut c, &unchallenged)), 0x6985);
    assert_eq!((c.card().state().admin_tries, c.card().store().writes), (10, writes));
    for _ in 0..10 {
        tx(&mut c, &AdminSession::get_challenge());
        assert_eq!(sw(&tx(&mut c, &unchallenged)) & 0xFFF0, 0x63C0);
    }
    let writes = c.card().store().writes;
    assert_eq!(sw(&tx(&mut c, &unchallenged)), 0x6983);
    assert_eq!((c.card().state().admin_tries, c.card().store().writes), (0, writes));
}

#[test]
fn challenges_are_single_use() {
    let mut c = factory();
    tx(&mut c, &host::select());
    let rc = tx(&mut c, &AdminSession::get_challenge());
    let mut s = AdminSession::with_host_challenge(&ADMIN_KEY, [1; 16]);
    let auth = s.external_authenticate(&rc).unwrap();
    assert_eq!(sw(&tx(&mut c, &auth)), 0x9000);
    // Replaying the same EXTERNAL AUTHENTICATE: no challenge is pending any more.
    assert_eq!(sw(&tx(&mut c, &auth)), 0x6985);
    // A replay after a new GET CHALLENGE fails the cryptogram and costs a try.
    tx(&mut c, &AdminSession::get_challenge());
    assert_eq!(sw(&tx(&mut c, &auth)), 0x63C9);
}

#[test]
fn the_host_rejects_a_card_without_the_admin_key() {
    // A card created with another admin key: the host's cryptogram fails on the card, and a
    // fake card answering 9000 with junk fails on the host.
    let mut s = AdminSession::with_host_challenge(&ADMIN_KEY, [1; 16]);
    let mut rc = vec![7u8; 16];
    rc.extend_from_slice(&[0x90, 0x00]);
    s.external_authenticate(&rc).unwrap();
    let mut fake = vec![0u8; 16];
    fake.extend_from_slice(&[0x90, 0x00]);
    assert!(matches!(s.check_authenticated(&fake), Err(AdminError::CardCryptogram)));
    // Steps out of order are refused.
    let p = Personalization { seed: &SEED, pin: PIN, puk: PUK, serial: SERIAL };
    assert!(matches!(s.personalize(&p), Err(AdminError::OutOfOrder(_))));
}

#[test]
fn personalize_needs_a_valid_mac_and_closes_the_session() {
    let mut c = factory();
    tx(&mut c, &host::select());
    let mut s = AdminSession::with_host_challenge(&ADMIN_KEY, [1; 16]);
    let auth = s.external_authenticate(&tx(&mut c, &AdminSession::get_challenge())).unwrap();
    s.check_authenticated(&tx(&mut c, &auth)).unwrap();
    let mut cmd = s.personalize(&Personalization { seed: &SEED, pin: PIN, puk: PUK, serial: SERIAL }).unwrap().to_vec();
    cmd[6] ^= 0x01; // flip a ciphertext bit
    assert_eq!(sw(&tx(&mut c, &cmd)), 0x6988);
    assert!(c.card().state().personal.is_none());
    // The session is gone: the untampered command is refused too.
    cmd[6] ^= 0x01;
    assert_eq!(sw(&tx(&mut c, &cmd)), 0x6982);
    assert!(c.card().state().personal.is_none());
}

#[test]
fn personalize_is_checked_by_the_host_before_sending() {
    let mut s = AdminSession::with_host_challenge(&ADMIN_KEY, [1; 16]);
    for (pin, puk, serial) in [("12", PUK, SERIAL), (PIN, "1234", SERIAL), (PIN, PUK, "psim-1"), (PIN, PUK, "")] {
        let p = Personalization { seed: &SEED, pin, puk, serial };
        assert!(matches!(s.personalize(&p), Err(AdminError::Request(_))), "{pin} {puk} {serial}");
    }
}

#[test]
fn re_personalization_wipes_the_chain_and_resets_everything() {
    let mut c = unlocked();
    for _ in 0..3 {
        host::parse_otp(&tx(&mut c, &login_apdu(&[1; 16]))).unwrap();
    }
    tx(&mut c, &host::verify("0000").unwrap());
    let new_seed = [0x77; 32];
    personalize_with(&mut c, &ADMIN_KEY, &new_seed, "86420", "11223344", "PSIM-00000002");
    let p = c.card().state().personal.as_ref().unwrap();
    assert_eq!((p.counter, p.pin_tries, p.puk_tries, p.serial.as_str()), (0, 3, 10, "PSIM-00000002"));
    assert_eq!(p.chain_key, ChainKey::from_bytes(new_seed));
    assert!(!c.card().pin_verified());
    tx(&mut c, &host::select());
    assert_eq!(sw(&tx(&mut c, &host::verify(PIN).unwrap())), 0x63C2);
    tx(&mut c, &host::verify("86420").unwrap());
    let (i, code) = host::parse_otp(&tx(&mut c, &login_apdu(&[9; 16]))).unwrap();
    assert_eq!((i, code), (0, login_otp(&ChainKey::from_bytes(new_seed), 0, &[9; 16], VERIFIER.as_bytes())));
}

#[test]
fn no_answer_ever_contains_a_secret() {
    // Drive every command on a personalized card and look for the secrets in the answers.
    let mut c = unlocked();
    let mut answers = Vec::new();
    answers.push(tx(&mut c, &host::select()));
    for o in [
        DataObject::Serial,
        DataObject::NextCounter,
        DataObject::PinTries,
        DataObject::LifeCycle,
        DataObject::AppletVersion,
        DataObject::PukTries,
        DataObject::AdminTries,
    ] {
        answers.push(tx(&mut c, &host::get_data(o)));
    }
    tx(&mut c, &host::verify(PIN).unwrap());
    answers.push(tx(&mut c, &login_apdu(&[1; 16])));
    answers.push(tx(&mut c, &AdminSession::get_challenge()));
    let ck = ChainKey::from_bytes(SEED);
    let secrets: Vec<Vec<u8>> = vec![
        SEED[..8].to_vec(),
        ck.next().expose()[..8].to_vec(),
        ck.step_key()[..8].to_vec(),
        ADMIN_KEY[..8].to_vec(),
        PUK.as_bytes().to_vec(),
        b"1234\xFF".to_vec(),
    ];
    for a in &answers {
        for s in &secrets {
            assert!(!a.windows(s.len()).any(|w| w == s.as_slice()), "secret in {a:02X?}");
        }
    }
    // Debug output of the card hides them as well.
    let dbg = format!("{:?}", c.card());
    assert!(!dbg.contains("5e5e") && !dbg.contains("94, 94") && !dbg.contains(PUK), "{dbg}");
}

#[test]
fn the_counter_never_wraps_at_the_end_of_the_chain() {
    // A card one step before the end: it emits step u64::MAX - 1, commits u64::MAX, and from
    // then on refuses (6985) without writing anything, without moving the chain, without a code.
    use card_applet::state::MemStore;
    let mut state = personalized().card().state().clone();
    let last = u64::MAX - 1;
    let ck = ChainKey::from_bytes([0x3C; 32]);
    if let Some(p) = state.personal.as_mut() {
        p.counter = last;
        p.chain_key = ck.clone();
    }
    let mut c = front(MemStore::default(), state);
    tx(&mut c, &host::select());
    tx(&mut c, &host::verify(PIN).unwrap());
    let writes = c.card().store().writes;
    let (i, code) = host::parse_otp(&tx(&mut c, &login_apdu(&[4; 16]))).unwrap();
    assert_eq!((i, code), (last, login_otp(&ck, last, &[4; 16], VERIFIER.as_bytes())));
    let committed = c.card().store().committed.clone().unwrap();
    assert_eq!(committed.personal.as_ref().unwrap().counter, u64::MAX);
    assert_eq!(committed.personal.as_ref().unwrap().chain_key, ck.next());
    assert_eq!(c.card().store().writes, writes + 1);

    for apdu in [
        login_apdu(&[5; 16]),
        host::tx_otp(
            &[5; 16],
            &paysim_otp::TxFields {
                version: paysim_otp::TxVersion::V1,
                source: b"",
                payee_name: b"",
                verifier_id: VERIFIER.as_bytes(),
                transaction_id: b"t",
                amount_minor: 1,
                currency: b"EUR",
                payee: b"p",
            },
        )
        .unwrap(),
    ] {
        let resp = tx(&mut c, &apdu);
        assert_eq!(resp, [0x69, 0x85], "no code after the last step");
    }
    assert_eq!(c.card().store().writes, writes + 1, "nothing written");
    let p = c.card().state().personal.as_ref().unwrap();
    assert_eq!((p.counter, &p.chain_key), (u64::MAX, &ck.next()));
    assert_eq!(host::parse_counter(&tx(&mut c, &host::get_data(DataObject::NextCounter))).unwrap(), u64::MAX);
    // The PIN still works and the card can be re-personalized onto a fresh chain.
    assert_eq!(sw(&tx(&mut c, &host::verify_status())), 0x9000);
    personalize_with(&mut c, &ADMIN_KEY, &SEED, PIN, PUK, SERIAL);
    tx(&mut c, &host::select());
    tx(&mut c, &host::verify(PIN).unwrap());
    assert_eq!(host::parse_otp(&tx(&mut c, &login_apdu(&[6; 16]))).unwrap().0, 0);
}

#[test]
fn a_state_file_at_the_end_of_the_chain_loads_and_stays_there() {
    let mut state = personalized().card().state().clone();
    if let Some(p) = state.personal.as_mut() {
        p.counter = u64::MAX;
    }
    let bytes = state.to_file_bytes();
    assert!(String::from_utf8_lossy(&bytes).contains("\"counter\": 18446744073709551615"));
    let back = card_applet::state::CardState::from_file_bytes(&bytes, std::path::Path::new("x")).unwrap();
    assert_eq!(back, state);
}
