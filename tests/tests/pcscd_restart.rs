//! The virtual card survives a pcscd restart: it reconnects to vpcd by itself and keeps its
//! state. Its own test binary, because restarting the shared pcscd would disturb any other
//! test running beside it (cargo runs test binaries one after another); it also holds both
//! slot locks. Needs root, like scripts/setup.sh.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use card_applet::host;
use e2e_tests::{workspace_root, CardSpec, Slot, TestCard};
use paysim_otp::{self as otp, ChainKey};

const VERIFIER: &str = "https://bank.example:443";

fn otp_at(card: &TestCard, challenge: &[u8]) -> u64 {
    let mut link = card.link();
    let tx = link.transaction().unwrap();
    let send = |a: &[u8]| tx.transmit(a).unwrap().to_bytes();
    host::parse_select(&send(&host::select())).unwrap();
    host::parse_verify(&send(&host::verify("1234").unwrap())).unwrap();
    let (counter, code) = host::parse_otp(&send(&host::login_otp(challenge, VERIFIER).unwrap())).unwrap();
    let ck = ChainKey::from_bytes(card.token.seed).advance(counter);
    assert!(otp::login_otp(&ck, counter, challenge, VERIFIER.as_bytes()).matches(code.as_str()));
    counter
}

#[test]
fn virtual_card_reconnects_after_pcscd_restarts() {
    let mut card = TestCard::personalized(&CardSpec { slot: Some(Slot(0)), ..CardSpec::default() });
    let _other_slot = Slot(1).lock();
    assert_eq!(otp_at(&card, &[1; 32]), 0);

    let restart =
        Command::new("bash").arg(workspace_root().join("scripts/setup.sh")).arg("--restart-pcscd").output().unwrap();
    assert!(
        restart.status.success(),
        "restarting pcscd failed (run the tests as root: sudo bash scripts/test.sh): {}",
        String::from_utf8_lossy(&restart.stderr)
    );

    card.process().wait_connected().unwrap();
    assert_eq!(otp_at(&card, &[2; 32]), 1, "the card kept its counter across the restart");
    let log = card.log();
    assert!(log.matches("connected to vpcd").count() >= 2, "the card reconnected:\n{log}");
}
