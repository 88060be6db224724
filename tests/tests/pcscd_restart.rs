//! The virtual card survives a pcscd restart: it reconnects to vpcd by itself and keeps its
//! state. Needs root, like scripts/setup.sh.
//!
//! A test binary of its own, so no other test shares the process that lived through the
//! restart: when it was a module of the `e2e` binary, the test that ran after it in that
//! process (`pin_state`, a PC/SC client killed inside its exchange) failed 4 times in 10 paired
//! runs, with `SCARD_E_PROTO_MISMATCH` on a second transaction or, once, a card that pcscd had
//! not reset after its client died. Not understood, and not only this: `pin_state` has since
//! failed once in a run with no restart in its process. The test holds both slot locks against other processes
//! and pcscd exclusively (`e2e_tests::pcscd_exclusive`) against threads of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use card_applet::host;
use card_link::TransportExt;
use e2e_tests::{workspace_root, CardSpec, Slot, TestCard};
use paysim_otp as otp;

const VERIFIER: &str = "https://bank.example:443";

fn otp_at(card: &TestCard, challenge: &[u8]) -> u64 {
    otp_over(card, &mut card.link(), challenge)
}

/// A login OTP over `link`, checked against the token file; returns its counter.
fn otp_over(card: &TestCard, link: &mut card_link::PcscCard, challenge: &[u8]) -> u64 {
    let (counter, code) = link
        .exchange(|ex| {
            host::parse_select(&ex.transmit(&host::select())?).unwrap();
            host::parse_verify(&ex.transmit(&host::verify("1234").unwrap())?).unwrap();
            Ok::<_, card_link::Error>(
                host::parse_otp(&ex.transmit(&host::login_otp(challenge, VERIFIER).unwrap())?).unwrap(),
            )
        })
        .unwrap();
    let ck = card.token.seed.advance(counter);
    assert!(otp::login_otp(&ck, counter, challenge, VERIFIER.as_bytes()).matches(code.as_str()));
    counter
}

#[test]
fn virtual_card_reconnects_after_pcscd_restarts() {
    let _alone = e2e_tests::pcscd_exclusive();
    let mut card = TestCard::personalized(&CardSpec { slot: Some(Slot(0)), ..CardSpec::default() });
    let _other_slot = Slot(1).lock();
    assert_eq!(otp_at(&card, &[1; 32]), 0);
    // A connection made before the restart: card-link connects it again by itself.
    let mut before = card.link();

    let restart =
        Command::new("bash").arg(workspace_root().join("scripts/setup.sh")).arg("--restart-pcscd").output().unwrap();
    assert!(
        restart.status.success(),
        "restarting pcscd failed (run the tests as root: sudo bash scripts/test.sh): {}",
        String::from_utf8_lossy(&restart.stderr)
    );

    card.process().wait_connected().unwrap();
    assert_eq!(otp_at(&card, &[2; 32]), 1, "the card kept its counter across the restart");
    assert_eq!(otp_over(&card, &mut before, &[3; 32]), 2, "a connection from before the restart works again");
    let log = card.log();
    assert!(log.matches("connected to vpcd").count() >= 2, "the card reconnected:\n{log}");
}
