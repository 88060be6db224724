//! The frame layer: 61xx / GET RESPONSE, extended APDUs, reset, and the robustness
//! property that no byte string or sequence panics or wedges the card.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use card_applet::command::DataObject;
use card_applet::host;
use card_applet::CardFront;
use common::*;
use proptest::prelude::*;

#[test]
fn a_short_le_gets_the_answer_in_pieces() {
    let mut c = personalized();
    // FCI of a personalized card: 6F 2A ... = 44 bytes. Ask for 5 at a time.
    let full = tx(&mut c, &host::select());
    assert_eq!(sw(&full), 0x9000);
    let fci = data(&full).to_vec();
    assert_eq!(fci.len(), 44);

    let first = c.process(&hexs("00 A4 04 00 08 F0 50 41 59 53 49 4D 01 05"));
    assert_eq!(&first[..5], &fci[..5]);
    assert_eq!(&first[5..], &[0x61, 39]);
    let mut got = first[..5].to_vec();
    loop {
        let r = c.process(&[0x00, 0xC0, 0x00, 0x00, 0x07]);
        got.extend_from_slice(data(&r));
        if sw(&r) == 0x9000 {
            break;
        }
        assert_eq!(r[r.len() - 2], 0x61);
        assert_eq!(usize::from(r[r.len() - 1]), fci.len() - got.len());
    }
    assert_eq!(got, fci);
    // Nothing is left waiting.
    assert_eq!(c.process(&[0x00, 0xC0, 0x00, 0x00, 0x00]), [0x69, 0x85]);
}

#[test]
fn no_le_means_everything_waits_for_get_response() {
    // A case-3 SELECT on a factory card: the 28-byte FCI waits (as docs/protocol.md says).
    let mut f = factory();
    assert_eq!(f.process(&hexs("00 A4 04 00 08 F0 50 41 59 53 49 4D 01")), [0x61, 0x1C]);
    let r = f.process(&[0x00, 0xC0, 0x00, 0x00, 0x1C]);
    assert_eq!(host::parse_select(&r).unwrap().life_cycle, 0x03);

    let mut c = unlocked();
    // LOGIN OTP as case 3 (no Le): the answer (20 bytes) waits.
    let mut apdu = login_apdu(&[5; 16]);
    apdu.pop();
    let r = c.process(&apdu);
    assert_eq!(r, [0x61, 20]);
    let r = c.process(&[0x00, 0xC0, 0x00, 0x00, 20]);
    assert_eq!(sw(&r), 0x9000);
    let (i, _) = host::parse_otp(&r).unwrap();
    assert_eq!(i, 0);
}

#[test]
fn any_other_command_discards_the_waiting_answer() {
    let mut c = unlocked();
    let mut apdu = login_apdu(&[5; 16]);
    apdu.pop();
    assert_eq!(c.process(&apdu), [0x61, 20]);
    assert_eq!(sw(&c.process(&host::get_data(DataObject::LifeCycle))), 0x9000);
    assert_eq!(c.process(&[0x00, 0xC0, 0x00, 0x00, 0x00]), [0x69, 0x85]);
    // Reset too.
    assert_eq!(c.process(&apdu), [0x61, 20]);
    c.reset();
    assert_eq!(c.process(&[0x00, 0xC0, 0x00, 0x00, 0x00]), [0x69, 0x85]);
    // A malformed GET RESPONSE costs the waiting data as well.
    tx(&mut c, &host::select());
    tx(&mut c, &host::verify(PIN).unwrap());
    assert_eq!(c.process(&apdu), [0x61, 20]);
    assert_eq!(c.process(&[0x00, 0xC0, 0x01, 0x00, 0x00]), [0x6A, 0x86]);
    assert_eq!(c.process(&[0x00, 0xC0, 0x00, 0x00, 0x00]), [0x69, 0x85]);
}

#[test]
fn extended_apdus_work_end_to_end() {
    let mut c = unlocked();
    let short = login_apdu(&[6; 32]);
    // Re-encode as extended: 00 Lc(2) data Le(2).
    let data_len = usize::from(short[4]);
    let mut ext = short[..4].to_vec();
    ext.extend_from_slice(&[0x00, 0x00, u8::try_from(data_len).unwrap()]);
    ext.extend_from_slice(&short[5..5 + data_len]);
    ext.extend_from_slice(&[0x00, 0x00]);
    let r = c.process(&ext);
    assert_eq!(sw(&r), 0x9000);
    assert_eq!(host::parse_otp(&r).unwrap().0, 0);
}

#[test]
fn atr_is_the_documented_one() {
    assert_eq!(
        hex::encode_upper(CardFront::<card_applet::state::MemStore>::atr()),
        "3B8C0180565041595349 4D738000 40F7".replace(' ', "")
    );
}

/// One step of a fuzzed session.
#[derive(Debug, Clone)]
enum Step {
    Raw(Vec<u8>),
    Reset,
    Select,
    VerifyRight,
    VerifyWrong,
    Login(Vec<u8>),
    /// A real command with one byte changed.
    Mutated(u8, usize, u8),
    GetResponse(u8),
}

fn real_commands() -> Vec<Vec<u8>> {
    vec![
        host::select(),
        host::verify(PIN).unwrap().to_vec(),
        host::verify_status(),
        host::change_pin(PIN, PIN).unwrap().to_vec(),
        host::reset_retry_counter(PUK, PIN).unwrap().to_vec(),
        host::get_data(DataObject::NextCounter),
        login_apdu(&[1; 16]),
        host::tx_otp(
            &[2; 32],
            &paysim_otp::TxFields {
                version: paysim_otp::TxVersion::V1,
                source: b"",
                payee_name: b"",
                verifier_id: b"v",
                transaction_id: b"t",
                amount_minor: 1,
                currency: b"EUR",
                payee: b"p",
            },
        )
        .unwrap(),
        card_applet::host::admin::AdminSession::get_challenge(),
        hexs("00 82 00 00 20 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
        hexs("80 E2 00 00 20 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Step::Raw),
        // Header-shaped random APDUs reach the parser's inner branches more often.
        (
            prop_oneof![Just(0x00u8), Just(0x80u8), any::<u8>()],
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(cla, ins, p1, p2, rest)| {
                let mut v = vec![cla, ins, p1, p2];
                v.extend(rest);
                Step::Raw(v)
            }),
        Just(Step::Reset),
        Just(Step::Select),
        Just(Step::VerifyRight),
        Just(Step::VerifyWrong),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Step::Login),
        (any::<u8>(), any::<usize>(), any::<u8>()).prop_map(|(i, at, b)| Step::Mutated(i, at, b)),
        any::<u8>().prop_map(Step::GetResponse),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_input_panics_or_wedges_the_card(steps in proptest::collection::vec(step(), 0..40)) {
        let mut c = personalized();
        let commands = real_commands();
        let mut counters = BTreeSet::new();
        for s in &steps {
            let resp = match s {
                Step::Raw(b) => c.process(b),
                Step::Reset => { c.reset(); continue; }
                Step::Select => c.process(&host::select()),
                Step::VerifyRight => c.process(&host::verify(PIN).unwrap()),
                Step::VerifyWrong => c.process(&host::verify("0000").unwrap()),
                Step::Login(ch) => match host::login_otp(ch, VERIFIER) {
                    Ok(a) => c.process(&a),
                    Err(_) => c.process(ch),
                },
                Step::Mutated(i, at, b) => {
                    let mut a = commands[usize::from(*i) % commands.len()].clone();
                    let at = at % a.len();
                    a[at] = *b;
                    c.process(&a)
                }
                Step::GetResponse(le) => c.process(&[0x00, 0xC0, 0x00, 0x00, *le]),
            };
            prop_assert!(resp.len() >= 2);
            // Whatever came back as an OTP answer carries a counter never seen before.
            if let Ok((i, _)) = host::parse_otp(&resp) {
                prop_assert!(counters.insert(i), "counter {} twice", i);
            }
        }
        // Not wedged: after a reset, SELECT and GET DATA answer.
        c.reset();
        prop_assert_eq!(sw(&tx(&mut c, &host::select())), 0x9000);
        let counter = host::parse_counter(&tx(&mut c, &host::get_data(DataObject::NextCounter)));
        prop_assert!(counter.is_ok());
        // And the counter on the card is past every code it emitted.
        if let Some(max) = counters.iter().max() {
            prop_assert!(counter.unwrap() > *max);
        }
    }

    #[test]
    fn the_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..70_000)) {
        let mut c = factory();
        let r = c.process(&bytes);
        prop_assert!(r.len() >= 2);
        let _ = card_applet::apdu::CommandView::parse(&bytes);
    }
}

#[test]
fn le_00_means_256_and_an_exact_le_needs_no_get_response() {
    // The personalized FCI is 44 bytes. Le 00 (= 256, short) and 0000 (= 65536, extended)
    // take it whole in one answer; Le 44 exactly too; Le 43 leaves one byte waiting.
    let mut c = personalized();
    let select = hexs("00 A4 04 00 08 F0 50 41 59 53 49 4D 01");
    for (le, want_sw, want_len) in [
        (&[0x00][..], [0x90, 0x00], 44),
        (&[0x00, 0x00], [0x90, 0x00], 44), // extended: 00 Lc(2) ... Le(2), built below
        (&[44], [0x90, 0x00], 44),
        (&[45], [0x90, 0x00], 44),
        (&[43], [0x61, 0x01], 43),
    ] {
        let apdu = if le.len() == 2 {
            let mut a = select[..4].to_vec();
            a.extend_from_slice(&[0x00, 0x00, 0x08]);
            a.extend_from_slice(&select[5..]);
            a.extend_from_slice(le);
            a
        } else {
            [&select[..], le].concat()
        };
        let r = c.process(&apdu);
        assert_eq!(&r[r.len() - 2..], &want_sw, "Le {le:02X?}");
        assert_eq!(r.len() - 2, want_len, "Le {le:02X?}");
    }
    // Case 2 GET DATA with Le 00: the 13-byte serial, whole.
    tx(&mut c, &host::select());
    assert_eq!(c.process(&hexs("00 CA DF 01 00")), [SERIAL.as_bytes(), &[0x90, 0x00]].concat());
    // A short Le of 5 on the serial: 5 bytes and 61 08, then GET RESPONSE 00 gets the rest.
    let r = c.process(&hexs("00 CA DF 01 05"));
    assert_eq!(r, [&SERIAL.as_bytes()[..5], &[0x61, 0x08]].concat());
    assert_eq!(c.process(&hexs("00 C0 00 00 00")), [&SERIAL.as_bytes()[5..], &[0x90, 0x00]].concat());
}
