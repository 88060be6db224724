//! Tearing: a write fails (power lost before it lands, or it lands and the store still
//! reports an error) at every persistent write of the OTP and PIN commands. After the
//! failure the card "restarts" from what is on the disk. The state is always the old or
//! the new one, no counter is ever emitted twice, and no PIN is compared without a spent
//! try on the disk.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use card_applet::host;
use card_applet::state::{CardState, MemStore};
use card_applet::CardFront;
use common::*;
use paysim_otp::{login_otp, tx_otp, ChainKey, TxFields};

fn personalized_state() -> CardState {
    let c: CardFront<MemStore> = personalized();
    c.card().store().committed.clone().unwrap()
}

fn tx_fields(n: u8) -> ([u8; 8], TxFields<'static>) {
    let id = [b'T', b'-', b'0' + n % 10, 0, 0, 0, 0, 0];
    (
        id,
        TxFields {
            version: paysim_otp::TxVersion::V1,
            source: b"",
            payee_name: b"",
            verifier_id: VERIFIER.as_bytes(),
            transaction_id: b"placeholder",
            amount_minor: 100 + u64::from(n),
            currency: b"EUR",
            payee: b"DE89370400440532013000",
        },
    )
}

/// The APDU of the `n`-th OTP command of a scenario: logins and transactions alternate.
fn otp_command(n: u8) -> Vec<u8> {
    let challenge = [n; 16];
    if n.is_multiple_of(2) {
        login_apdu(&challenge)
    } else {
        let (id, f) = tx_fields(n);
        host::tx_otp(&challenge, &TxFields { transaction_id: &id[..3], ..f }).unwrap()
    }
}

fn expected_code(n: u8, counter: u64) -> paysim_otp::Otp {
    let ck = ChainKey::from_bytes(SEED).advance(counter);
    let challenge = [n; 16];
    if n.is_multiple_of(2) {
        login_otp(&ck, counter, &challenge, VERIFIER.as_bytes())
    } else {
        let (id, f) = tx_fields(n);
        tx_otp(&ck, counter, &challenge, &TxFields { transaction_id: &id[..3], ..f })
    }
}

fn counter_of(s: &CardState) -> u64 {
    s.personal.as_ref().unwrap().counter
}

/// Brings a restarted card to "selected, PIN verified" without injected failures.
fn unlock(card: &mut CardFront<Disk>) {
    assert_eq!(sw(&tx(card, &host::select())), 0x9000);
    assert_eq!(sw(&tx(card, &host::verify(PIN).unwrap())), 0x9000);
}

#[test]
fn otp_commands_torn_at_every_write() {
    // Each step is VERIFY (two writes: spend a try, restore) then an OTP command (one
    // write). Fail every one of those writes in turn, in both tear modes.
    const STEPS: u8 = 6;
    for tear in [Tear::Lost, Tear::Landed] {
        for fail_at in 0..usize::from(STEPS) * 3 {
            let disk = Disk::new(personalized_state());
            let mut card = disk.restart();
            assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
            disk.fail_at(Some(disk.writes() + fail_at), tear);
            let mut emitted = BTreeSet::new();
            let mut torn = 0;
            for n in 0..STEPS {
                let tries_before = disk.durable().personal.as_ref().unwrap().pin_tries;
                let v = sw(&tx(&mut card, &host::verify(PIN).unwrap()));
                if v == 0x6581 {
                    assert!(disk.failed());
                    torn += 1;
                    let tries = disk.durable().personal.as_ref().unwrap().pin_tries;
                    assert!(tries == tries_before || tries + 1 == tries_before || tries == 3, "{tear:?} @{fail_at}");
                    disk.fail_at(None, tear);
                    card = disk.restart();
                    unlock(&mut card);
                } else {
                    assert_eq!(v, 0x9000, "{tear:?} @{fail_at} step {n}");
                }
                let before = counter_of(&disk.durable());
                let resp = tx(&mut card, &otp_command(n));
                let after = counter_of(&disk.durable());
                if sw(&resp) == 0x6581 {
                    // Torn: no code, and the disk holds the old or the new step.
                    assert!(disk.failed());
                    torn += 1;
                    assert_eq!(resp.len(), 2, "a failed write must not emit a code");
                    assert_eq!(after, if tear == Tear::Landed { before + 1 } else { before }, "{tear:?} @{fail_at}");
                    disk.fail_at(None, tear);
                    card = disk.restart();
                    assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
                    continue;
                }
                assert_eq!(sw(&resp), 0x9000, "{tear:?} @{fail_at} step {n}");
                let (counter, code) = host::parse_otp(&resp).unwrap();
                assert!(emitted.insert(counter), "counter {counter} emitted twice ({tear:?} @{fail_at})");
                assert_eq!(counter, before, "the code is from the step the disk held");
                assert_eq!(after, before + 1, "the next step is on the disk before the answer");
                assert_eq!(code, expected_code(n, counter));
            }
            assert_eq!(torn, 1, "exactly the injected write failed ({tear:?} @{fail_at})");
            assert_eq!(emitted.len(), usize::from(STEPS) - usize::from(fail_at % 3 == 2), "{tear:?} @{fail_at}");
        }
    }
}

#[test]
fn a_card_restarted_after_every_possible_tear_never_repeats_a_counter() {
    // Crash after *every* command, failing its write, alternating the tear mode: the
    // counters seen by the bank keep increasing.
    let disk = Disk::new(personalized_state());
    let mut emitted = Vec::new();
    for n in 0..20u8 {
        let mut card = disk.restart();
        unlock(&mut card);
        let tear = if n % 3 == 0 { Tear::Landed } else { Tear::Lost };
        // Odd rounds fail the OTP write; even rounds succeed.
        disk.fail_at(if n % 2 == 1 { Some(disk.writes()) } else { None }, tear);
        let resp = tx(&mut card, &otp_command(n));
        if sw(&resp) == 0x9000 {
            emitted.push(host::parse_otp(&resp).unwrap().0);
        } else {
            assert_eq!(sw(&resp), 0x6581);
        }
        disk.fail_at(None, tear);
    }
    assert!(emitted.windows(2).all(|w| w[0] < w[1]), "{emitted:?}");
    assert_eq!(emitted.len(), 10);
}

#[test]
fn after_a_failed_write_the_running_card_does_not_reuse_the_step_either() {
    // No restart: the write fails (lost), the card keeps running. Its next code must not
    // reuse the step it could not commit, even though the disk still holds it; after a
    // later restart the disk's step was never emitted.
    let disk = Disk::new(personalized_state());
    let mut card = disk.restart();
    unlock(&mut card);
    disk.fail_at(Some(disk.writes()), Tear::Lost);
    assert_eq!(sw(&tx(&mut card, &otp_command(0))), 0x6581);
    disk.fail_at(None, Tear::Lost);
    let (i, _) = host::parse_otp(&tx(&mut card, &otp_command(2))).unwrap();
    assert_eq!(i, 1);
    assert_eq!(counter_of(&disk.durable()), 2);
}

#[test]
fn pin_tries_are_on_disk_before_the_comparison() {
    // An attacker who cuts power at every write gets no more than three comparisons.
    for tear in [Tear::Lost, Tear::Landed] {
        let disk = Disk::new(personalized_state());
        let (mut compared, mut landed) = (0u32, 0u32);
        for round in 0..12 {
            let mut card = disk.restart();
            assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
            // Fail the first write of this VERIFY on even rounds.
            disk.fail_at((round % 2 == 0).then(|| disk.writes()), tear);
            let resp = sw(&tx(&mut card, &host::verify("0000").unwrap()));
            match resp {
                0x63C0..=0x63C2 => compared += 1,
                0x6581 if tear == Tear::Landed => landed += 1,
                0x6581 | 0x6983 => {}
                other => panic!("{other:04X}"),
            }
            // Every comparison, and every try whose write landed, is on the disk.
            let tries = disk.durable().personal.as_ref().unwrap().pin_tries;
            assert_eq!(u32::from(tries) + compared + landed, 3, "{tear:?} round {round}");
        }
        assert_eq!(compared + landed, 3, "{tear:?}");
        assert!(compared >= 1);
        assert_eq!(disk.durable().personal.as_ref().unwrap().pin_tries, 0);
    }
}

#[test]
fn a_right_pin_whose_restore_write_fails_is_not_accepted() {
    let disk = Disk::new(personalized_state());
    let mut card = disk.restart();
    tx(&mut card, &host::select());
    // Write 0 (spend a try) succeeds; write 1 (restore to 3) fails.
    disk.fail_at(Some(disk.writes() + 1), Tear::Lost);
    assert_eq!(sw(&tx(&mut card, &host::verify(PIN).unwrap())), 0x6581);
    assert!(!card.card().pin_verified());
    assert_eq!(sw(&tx(&mut card, &login_apdu(&[1; 16]))), 0x6982);
    // On the disk the try stays spent: old or new, never more tries than before.
    assert_eq!(disk.durable().personal.as_ref().unwrap().pin_tries, 2);
}

#[test]
fn puk_and_admin_tries_are_on_disk_before_the_comparison() {
    let disk = Disk::new(personalized_state());
    let mut card = disk.restart();
    tx(&mut card, &host::select());
    disk.fail_at(Some(disk.writes()), Tear::Lost);
    assert_eq!(sw(&tx(&mut card, &host::reset_retry_counter("00000000", "1111").unwrap())), 0x6581);
    assert_eq!(disk.durable().personal.as_ref().unwrap().puk_tries, 10);
    disk.fail_at(None, Tear::Lost);
    assert_eq!(sw(&tx(&mut card, &host::reset_retry_counter("00000000", "1111").unwrap())), 0x63C8);
    assert_eq!(disk.durable().personal.as_ref().unwrap().puk_tries, 8);

    let mut s = card_applet::host::admin::AdminSession::with_host_challenge(&[0xEE; 32], [1; 16]);
    let auth =
        s.external_authenticate(&tx(&mut card, &card_applet::host::admin::AdminSession::get_challenge())).unwrap();
    disk.fail_at(Some(disk.writes()), Tear::Lost);
    assert_eq!(sw(&tx(&mut card, &auth)), 0x6581);
    assert_eq!(disk.durable().admin_tries, 10);
}

#[test]
fn change_reference_data_torn_at_every_write() {
    // Two writes: the spent try, then the new PIN with 3 tries. Whatever fails, the disk holds
    // the old PIN (with the try spent, or untouched if that first write was lost) or the new
    // PIN with 3 tries; the card answers 6581 and does not count the PIN as verified.
    let new_pin = "97531";
    for tear in [Tear::Lost, Tear::Landed] {
        for w in 0..2 {
            let disk = Disk::new(personalized_state());
            let mut card = disk.restart();
            assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
            disk.fail_at(Some(disk.writes() + w), tear);
            assert_eq!(sw(&tx(&mut card, &host::change_pin(PIN, new_pin).unwrap())), 0x6581, "{tear:?} @{w}");
            assert!(!card.card().pin_verified());
            assert_eq!(sw(&tx(&mut card, &login_apdu(&[1; 16]))), 0x6982);
            let on_disk = disk.durable().personal.unwrap();
            let is_new = on_disk.pin == card_applet::pin::PinBlock::from_pin(new_pin).unwrap();
            let want = match (w, tear) {
                (0, Tear::Lost) => (false, 3),
                (0, Tear::Landed) | (1, Tear::Lost) => (false, 2),
                _ => (true, 3),
            };
            assert_eq!((is_new, on_disk.pin_tries), want, "{tear:?} @{w}");
            disk.fail_at(None, tear);
            let mut card = disk.restart();
            assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
            let works = if is_new { new_pin } else { PIN };
            assert_eq!(sw(&tx(&mut card, &host::verify(works).unwrap())), 0x9000, "{tear:?} @{w}");
        }
    }
    // Without failures: exactly two writes, and the new PIN is the one on the disk.
    let disk = Disk::new(personalized_state());
    let mut card = disk.restart();
    tx(&mut card, &host::select());
    let before = disk.writes();
    assert_eq!(sw(&tx(&mut card, &host::change_pin(PIN, new_pin).unwrap())), 0x9000);
    assert_eq!(disk.writes(), before + 2);
    assert!(disk.durable().personal.unwrap().pin == card_applet::pin::PinBlock::from_pin(new_pin).unwrap());
}

#[test]
fn a_wrong_old_pin_is_compared_only_after_its_try_is_on_disk() {
    for tear in [Tear::Lost, Tear::Landed] {
        let disk = Disk::new(personalized_state());
        let mut card = disk.restart();
        tx(&mut card, &host::select());
        disk.fail_at(Some(disk.writes()), tear);
        // The write of the spent try fails: nothing is compared (no 63Cx).
        assert_eq!(sw(&tx(&mut card, &host::change_pin("0000", "1111").unwrap())), 0x6581);
        let tries = disk.durable().personal.unwrap().pin_tries;
        assert_eq!(tries, if tear == Tear::Landed { 2 } else { 3 });
        // The running card keeps the try spent.
        assert_eq!(card.card().state().personal.as_ref().unwrap().pin_tries, 2);
    }
}
