//! The harness of the `pskc` target: any bytes through `tools::pskc::read` (the PSKC file
//! parser of `bank-tools token import`), with RFC 6030's example pre-shared key, so the RFC's
//! Figure 6 and files written under that key are valid seeds.
//!
//! Checks: it never panics; a refusal names a place and is short, and never repeats the text
//! of an element of the input (the secrets, the MAC key and the MACs are element text; only
//! attribute values such as algorithm URIs are ever shown, cut to 80 characters, and text
//! that is also in an attribute value somewhere in the input is not counted); what it
//! accepts writes back (`tools::pskc::write`) to a file that reads to the same key packages,
//! and mapping each package to a bank token ends in a token or a refusal naming that package.
//!
//! Shared with the stable test `tools/tests/fuzz_pskc.rs`.

use tools::pskc::{self, Problem, Psk};

/// RFC 6030 section 6.1's pre-shared key.
pub const PSK: [u8; 16] =
    [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12];

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(psk) = Psk::from_bytes(&PSK) else {
        unreachable!("a 16-byte key");
    };
    match pskc::read(data, &psk) {
        Ok(packages) => {
            let text = pskc::write(&psk, "fuzz", &packages).expect("randomness for the IVs");
            let again = pskc::read(text.as_bytes(), &psk).expect("our own file must read back");
            assert_eq!(again, packages, "a written file reads back to other packages");
            for (i, p) in packages.iter().enumerate() {
                if let Err(e) = pskc::import_token(p, i + 1, None) {
                    assert_eq!(e.place.package, Some(i + 1), "{e}");
                }
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.len() < 400, "{message}");
            match &e.problem {
                // Refused before any element was read: the message is a fixed text (and the
                // input may well contain a piece of it).
                Problem::NotUtf8 => assert!(std::str::from_utf8(data).is_err(), "{message}"),
                Problem::Xml(at) => {
                    let numbers: Vec<&str> = at.strip_prefix("at line ").unwrap_or("").split(", column ").collect();
                    let fixed = numbers.len() == 2
                        && numbers.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                    assert!(fixed, "the XML error is not just where it stopped: {message}");
                }
                _ => {
                    for piece in element_texts(data) {
                        assert!(!message.contains(&piece), "the error repeats element text of the input: {message}");
                    }
                }
            }
        }
    }
}

/// The element texts of the input of 12 characters or more that are not also (part of) an
/// attribute value: those are shown on purpose. Called for refusals made after the file was
/// parsed, so it parses the same way as `pskc::read` (a `>` inside an attribute value is
/// attribute text, not the start of an element's text).
fn element_texts(data: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(data).expect("read() took it for UTF-8");
    let opt = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: pskc::MAX_NODES };
    let doc = roxmltree::Document::parse_with_options(text, opt).expect("read() parsed it");
    let attributes: Vec<&str> =
        doc.descendants().flat_map(|n| n.attributes().map(|a| a.value()).collect::<Vec<_>>()).collect();
    doc.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .map(str::trim)
        .filter(|t| t.len() >= 12 && !attributes.iter().any(|a| a.contains(t)))
        .map(str::to_owned)
        .collect()
}
