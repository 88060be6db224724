//! What the card logs, at every level, during a whole life — personalization, wrong and right
//! PINs, the PUK, OTPs, a failed admin authentication, torn writes — never contains a secret:
//! not the admin key, seed, chain or step keys, session keys, PIN, PUK or any code emitted.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "virtual-card")]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use card_applet::host::admin::{AdminSession, Personalization};
use card_applet::host::{self};
use card_applet::scp::SessionKeys;
use card_applet::state::CardState;
use common::*;
use paysim_otp::ChainKey;

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const MY_PIN: &str = "24681357";
const MY_PUK: &str = "97531864";

#[test]
fn the_card_logs_no_secret() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .without_time()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut codes = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let disk = Disk::new(CardState::factory(&ADMIN_KEY));
        let mut card = disk.restart();
        // A wrong admin key first (logged as a failed authentication), then the right one.
        tx(&mut card, &host::select());
        let mut s = AdminSession::with_host_challenge(&[0x42; 32], [9; 16]);
        let auth = s.external_authenticate(&tx(&mut card, &AdminSession::get_challenge())).unwrap();
        tx(&mut card, &auth);
        personalize_with(&mut card, &ADMIN_KEY, &SEED, MY_PIN, MY_PUK, SERIAL);
        tx(&mut card, &host::select());
        for _ in 0..3 {
            tx(&mut card, &host::verify("0000").unwrap());
        }
        tx(&mut card, &host::reset_retry_counter("00000000", MY_PIN).unwrap());
        tx(&mut card, &host::reset_retry_counter(MY_PUK, MY_PIN).unwrap());
        tx(&mut card, &host::verify(MY_PIN).unwrap());
        for n in 0..3u8 {
            if n == 1 {
                disk.fail_at(Some(disk.writes()), Tear::Lost); // logged as a memory failure
            }
            let resp = tx(&mut card, &login_apdu(&[n; 16]));
            if let Ok((_, code)) = host::parse_otp(&resp) {
                codes.push(code.as_str().to_owned());
            }
        }
        tx(&mut card, &host::change_pin(MY_PIN, "11223344").unwrap());
    });
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    for wanted in ["admin authentication failed", "card personalized", "card memory write failed"] {
        assert!(log.contains(wanted), "the card should log {wanted:?}:\n{log}");
    }
    assert_eq!(codes.len(), 2);

    let ck = ChainKey::from_bytes(SEED);
    let session = SessionKeys::derive(&ADMIN_KEY, &[0x11; 16], &[0; 16]);
    let mut secrets: Vec<String> = vec![MY_PIN.into(), MY_PUK.into(), "11223344".into()];
    for bytes in [
        &ADMIN_KEY[..],
        &SEED[..],
        &ck.next().expose()[..],
        &ck.next().next().expose()[..],
        &ck.step_key()[..],
        &session.card_cryptogram()[..],
    ] {
        secrets.push(hex::encode(&bytes[..6]));
        secrets.push(hex::encode_upper(&bytes[..6]));
        secrets.push(format!("{:?}", &bytes[..4]).trim_matches(['[', ']']).to_owned());
    }
    secrets.extend(codes);
    for s in &secrets {
        assert!(!log.contains(s.as_str()), "secret {s:?} in the log:\n{log}");
    }
}

/// A PERSONALIZE whose write fails answers 6581 and must not log "card personalized": the
/// log would claim a personalization the card does not hold. A later one that lands does.
#[test]
fn a_failed_personalization_is_not_logged_as_done() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .without_time()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let mut after_failure = String::new();
    tracing::subscriber::with_default(subscriber, || {
        let disk = Disk::new(CardState::factory(&ADMIN_KEY));
        let mut card = disk.restart();
        assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
        let mut s = AdminSession::with_host_challenge(&ADMIN_KEY, [0x11; 16]);
        let auth = s.external_authenticate(&tx(&mut card, &AdminSession::get_challenge())).unwrap();
        s.check_authenticated(&tx(&mut card, &auth)).unwrap();
        let cmd = s.personalize(&Personalization { seed: &SEED, pin: MY_PIN, puk: MY_PUK, serial: SERIAL }).unwrap();
        disk.fail_at(Some(disk.writes()), Tear::Lost);
        assert_eq!(sw(&tx(&mut card, &cmd)), 0x6581);
        assert!(disk.failed(), "the personalization write should have been the one that failed");
        after_failure = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();

        disk.fail_at(None, Tear::Lost);
        personalize_with(&mut card, &ADMIN_KEY, &SEED, MY_PIN, MY_PUK, SERIAL);
    });
    assert!(after_failure.contains("card memory write failed"), "{after_failure}");
    assert!(!after_failure.contains("personalized"), "a failed write was logged as done:\n{after_failure}");
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log.matches("card personalized").count(), 1, "{log}");
}
