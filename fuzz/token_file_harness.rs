//! The harness of the `token_file` target: any text through `paysim_wire::token_file::TokenFile::parse`,
//! the parser of the personalization output that `bank-tools token enroll` reads.
//!
//! Checks: it never panics; a refusal is one of its fixed messages (which name a field, never
//! echo the text: a seed in a file must not reach a log through an error); what it accepts
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
            // Fixed messages only: none longer than the longest of them, none holding the input.
            assert!(message.len() < 120, "{message}");
            if text.len() >= 8 {
                assert!(!message.contains(text), "the error repeats the input");
            }
        }
    }
}
