//! The harness of the `token_file` target: any text through `paysim_wire::token_file::TokenFile::parse`,
//! the parser of the personalization output that `bank-tools token enroll` reads.
//!
//! Checks: it never panics; a refusal is one of its fixed messages (which name a field, never
//! echo the text: a seed in a file must not reach a log through an error; the first version of
//! this check, "the message does not contain the input", was refuted by libFuzzer with an input
//! that was a piece of a message); what it accepts
//! writes back (`to_text`) to a text that parses to the same serial, seed and counter.
//!
//! Shared with the stable test `wire/tests/fuzz_token_file.rs`.

use paysim_wire::token_file::TokenFile;

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match TokenFile::parse(text) {
        Ok(t) => {
            let again = TokenFile::parse(&t.to_text()).expect("a token file's own text must parse");
            assert_eq!(again.serial, t.serial);
            assert_eq!(again.seed.expose(), t.seed.expose());
            assert_eq!(again.counter, t.counter);
        }
        Err(message) => {
            // Fixed messages only: none longer than the longest of them, and none repeating a
            // run of hex digits from the input (a seed would be one). An input may of course
            // repeat the words of a message: that is no leak.
            assert!(message.len() < 120, "{message}");
            for run in text.split(|c: char| !c.is_ascii_hexdigit()).filter(|r| r.len() >= 16) {
                assert!(!message.contains(run), "the error repeats hex digits of the input");
            }
        }
    }
}
