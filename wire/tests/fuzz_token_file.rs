//! Runs the `token_file` fuzz harness (`fuzz/token_file_harness.rs`) on stable: files written
//! by hand that must reach each of its paths, and random texts under proptest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../fuzz/token_file_harness.rs"]
mod harness;

use proptest::prelude::*;

const GOOD: &str = r#"{"format":"paysim-token-v1","serial":"PSIM-00000001","seed_hex":"3132333435363738393031323334353637383930313233343536373839303132","counter":0}"#;

#[test]
fn written_files_reach_each_path() {
    harness::run(GOOD.as_bytes());
    for bad in [
        GOOD.replace("v1", "v2"),
        GOOD.replace("PSIM-00000001", "psim lower"),
        GOOD.replace("3132", "zz32"),
        GOOD.replace("\"counter\":0", "\"counter\":-1"),
        GOOD.replace(",\"counter\":0", ""),
        "{".to_owned(),
        String::new(),
    ] {
        harness::run(bad.as_bytes());
    }
    harness::run(&[0xFF, 0xFE]);
    // libFuzzer's find against the first version of the harness: an input that is a piece of
    // one of the parser's messages.
    harness::run(b"not valid JSON of the token format (st");
    // A seed-looking run of hex digits in a broken file stays out of the message.
    harness::run(format!("{{\"seed_hex\":\"{}\"", "ab".repeat(32)).as_bytes());
}

fn json_ish() -> impl Strategy<Value = String> {
    // Pieces of the format, shuffled: more of them parse as JSON than random bytes would.
    let piece = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("\"format\":\"paysim-token-v1\"".to_owned()),
        Just("\"serial\":\"PSIM-1\"".to_owned()),
        Just(format!("\"seed_hex\":\"{}\"", "ab".repeat(32))),
        Just("\"counter\":7".to_owned()),
        Just(",".to_owned()),
        "[ -~]{0,8}",
    ];
    proptest::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        harness::run(&data);
    }

    #[test]
    fn pieces_of_the_format(text in json_ish()) {
        harness::run(text.as_bytes());
    }
}
