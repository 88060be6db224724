//! Runs the cargo-fuzz harness (`fuzz/harness.rs`) on stable: hand-written inputs that must
//! reach each of its paths, and random inputs under proptest. The libFuzzer target calls the
//! same `run`, so this also keeps the fuzz target compiling against the current API.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/harness.rs"]
mod harness;

use proptest::prelude::*;

/// One `op len bytes` record.
fn rec(op: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![op, u8::try_from(bytes.len()).unwrap()];
    v.extend_from_slice(bytes);
    v
}

const SELECT: u8 = 5;
const VERIFY: u8 = 6;
const LOGIN: u8 = 7;
const TX: u8 = 8;
const TEAR: u8 = 9;
const RESTART: u8 = 10;
const PERSONALIZE: u8 = 11;
const OATH_SELECT: u8 = 12;
const OATH_PUT: u8 = 13;
const OATH_CALCULATE: u8 = 14;
const OATH_ACCESS: u8 = 15;

#[test]
fn a_scripted_session_reaches_every_path() {
    let mut input = Vec::new();
    input.extend(rec(SELECT, &[]));
    input.extend(rec(VERIFY, &[]));
    input.extend(rec(LOGIN, &[1; 16]));
    input.extend(rec(TX, &[2; 20]));
    // A write lost, then one landed, each on an OTP command; restart after each.
    for landed in [0u8, 1] {
        input.extend(rec(TEAR, &[landed]));
        input.extend(rec(LOGIN, &[3; 16]));
        input.extend(rec(RESTART, &[]));
        input.extend(rec(SELECT, &[]));
        input.extend(rec(VERIFY, &[]));
        input.extend(rec(LOGIN, &[4; 32]));
    }
    // A torn VERIFY (the PIN is not verified), then a new chain.
    input.extend(rec(TEAR, &[0]));
    input.extend(rec(VERIFY, &[]));
    input.extend(rec(PERSONALIZE, &[9; 7]));
    input.extend(rec(SELECT, &[]));
    input.extend(rec(VERIFY, &[]));
    input.extend(rec(TX, &[5; 40]));
    // A raw LOGIN OTP APDU (op 0) answered in full.
    input.extend(rec(0, &card_applet::host::login_otp(&[6; 16], "v").unwrap()));
    let stats = harness::run(&input);
    assert_eq!(stats.codes, 6, "{stats:?}");
    assert_eq!(stats.checked_codes, 5, "{stats:?}");
    assert_eq!(stats.torn_writes, 3, "{stats:?}");
    assert_eq!((stats.restarts, stats.personalizations), (2, 1), "{stats:?}");
}

#[test]
fn a_scripted_oath_session_reaches_every_path() {
    let mut input = Vec::new();
    input.extend(rec(OATH_SELECT, &[]));
    input.extend(rec(OATH_PUT, b"12345678901234567890"));
    input.extend(rec(OATH_CALCULATE, &[]));
    input.extend(rec(OATH_CALCULATE, &[1; 8]));
    // A lost and a landed write on CALCULATE, a restart after each.
    for landed in [0u8, 1] {
        input.extend(rec(TEAR, &[landed]));
        input.extend(rec(OATH_CALCULATE, &[]));
        input.extend(rec(RESTART, &[]));
        input.extend(rec(OATH_SELECT, &[]));
        input.extend(rec(OATH_CALCULATE, &[]));
    }
    // A touch credential, the touch denied then allowed again.
    input.extend(rec(OATH_PUT, &[0x31; 20]));
    input.extend(rec(OATH_ACCESS, &[3]));
    input.extend(rec(OATH_CALCULATE, &[]));
    input.extend(rec(OATH_ACCESS, &[3]));
    input.extend(rec(OATH_CALCULATE, &[]));
    // An access code: set, then a new session validates and calculates; PAYSIM in between.
    input.extend(rec(OATH_ACCESS, &[0, 9, 9, 9]));
    input.extend(rec(SELECT, &[]));
    input.extend(rec(OATH_SELECT, &[]));
    input.extend(rec(OATH_CALCULATE, &[]));
    input.extend(rec(OATH_ACCESS, &[1]));
    input.extend(rec(OATH_CALCULATE, &[]));
    // Left set: the end-of-run check must need VALIDATE for LIST.
    let stats = harness::run(&input);
    // Two before the tears, one after each restart, one with the touch allowed again, one
    // after VALIDATE (the CALCULATE before it is refused).
    assert_eq!(stats.oath_codes, 6, "{stats:?}");
    assert_eq!(stats.denied_touches, 1, "{stats:?}");
    assert_eq!(stats.validations, 1, "{stats:?}");
    assert_eq!(stats.torn_writes, 2, "{stats:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_keep_every_invariant(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
        harness::run(&data);
    }

    #[test]
    fn random_records_keep_every_invariant(
        records in proptest::collection::vec((0u8..16, proptest::collection::vec(any::<u8>(), 0..48)), 0..60)
    ) {
        let input: Vec<u8> = records.iter().flat_map(|(op, b)| rec(*op, b)).collect();
        harness::run(&input);
    }
}
