//! The values `docs/protocol.md` publishes are checked here against the implementation, read
//! straight from the document: if someone edits a vector, an APDU or the ATR in the docs (or
//! changes the code so that it no longer produces them), this test fails. The JSON copy of the
//! vectors (`testdata/paysim-vectors.json`) is checked separately by `tests/vectors.rs`; this
//! test also makes sure the document and the JSON agree.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use card_applet::host;
use card_applet::host::admin::{AdminSession, Personalization};
use card_applet::scp::{kdf, SessionKeys};
use card_applet::state::{CardState, MemStore};
use card_applet::{Card, CardFront};
use common::{sw, tx};
use paysim_otp::{login_context, login_otp, tx_context, tx_otp, ChainKey, TxFields, TxVersion};
use serde_json::Value;

fn doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md")).unwrap()
}

fn json() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/paysim-vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The text between the heading line `from` and the next heading `to`.
fn section<'a>(doc: &'a str, from: &str, to: &str) -> &'a str {
    let start = doc.find(from).unwrap_or_else(|| panic!("no {from:?} in protocol.md"));
    let rest = &doc[start + from.len()..];
    &rest[..rest.find(to).unwrap_or(rest.len())]
}

/// The cells of the table row whose first cell starts with `key`.
fn row<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let line = text
        .lines()
        .find(|l| l.strip_prefix("| ").is_some_and(|l| l.starts_with(key)))
        .unwrap_or_else(|| panic!("no table row {key:?}"));
    line.trim().trim_matches('|').split(" | ").map(str::trim).collect()
}

/// The backticked tokens of a piece of text, in order.
fn ticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The first backticked token of the second cell of row `key`.
fn value<'a>(text: &'a str, key: &str) -> &'a str {
    ticked(row(text, key)[1])[0]
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap_or_else(|_| panic!("not hex: {s:?}"))
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().unwrap()
}

/// The line after the one containing `label`, without backticks.
fn line_after<'a>(text: &'a str, label: &str) -> &'a str {
    let mut lines = text.lines().skip_while(|l| !l.contains(label));
    lines.next().unwrap_or_else(|| panic!("no {label:?}"));
    lines.next().unwrap().trim().trim_matches('`')
}

#[test]
fn atr_and_factory_fci_as_published() {
    let d = doc();
    let atr = unhex(value(&d, "ATR"));
    assert_eq!(atr, CardFront::<MemStore>::atr());
    let fci_line = d.lines().find(|l| l.starts_with("Factory card:")).unwrap();
    let want = unhex(ticked(fci_line)[0]);
    let mut card = common::factory();
    assert_eq!(tx(&mut card, &host::select()), want);
}

#[test]
fn paysim1_vectors_as_published() {
    let d = doc();
    let s = section(&d, "### PAYSIM-1", "### PAYSIM-2");
    let seed: [u8; 32] = arr(value(s, "seed"));
    let challenge = unhex(value(s, "challenge"));
    let vid = value(s, "verifier id").as_bytes();
    let tx_id = value(s, "transaction id").as_bytes();
    let amount_cell = row(s, "amount")[1];
    let amount: u64 = amount_cell.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(unhex(ticked(amount_cell)[0]), amount.to_be_bytes());
    let currency: [u8; 3] = value(s, "currency").as_bytes().try_into().unwrap();
    let payee = value(s, "payee").as_bytes();
    let fields = TxFields {
        version: TxVersion::V1,
        verifier_id: vid,
        transaction_id: tx_id,
        amount_minor: amount,
        currency: &currency,
        source: b"",
        payee,
        payee_name: b"",
    };

    // The document's inputs are the JSON's inputs.
    let j = &json()["paysim1"];
    assert_eq!(hex::encode(seed), j["seed_hex"].as_str().unwrap());
    assert_eq!(hex::encode(&challenge), j["challenge_hex"].as_str().unwrap().to_lowercase());
    assert_eq!(vid, j["verifier_id"].as_str().unwrap().as_bytes());
    assert_eq!(tx_id, j["transaction"]["transaction_id"].as_str().unwrap().as_bytes());
    assert_eq!(amount, j["transaction"]["amount_minor"].as_u64().unwrap());
    assert_eq!(payee, j["transaction"]["payee"].as_str().unwrap().as_bytes());

    assert_eq!(unhex(line_after(s, "Login context")), login_context(vid));
    assert_eq!(unhex(line_after(s, "Transaction context")), tx_context(&fields));

    let steps: Vec<Vec<&str>> = s
        .lines()
        .filter(|l| l.strip_prefix("| ").and_then(|l| l.chars().next()).is_some_and(|c| c.is_ascii_digit()))
        .map(|l| l.trim().trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    assert!(steps.len() >= 5, "the step table is missing or short");
    let ck0 = ChainKey::from_bytes(seed);
    for (i, cells) in steps.iter().enumerate() {
        let i = u64::try_from(i).unwrap();
        assert_eq!(cells[0], i.to_string(), "rows in order");
        let ck = ck0.advance(i);
        let ck_hex = hex::encode(ck.expose());
        // Row 0 abbreviates the seed as `head…tail`.
        match ticked(cells[1])[0].split_once('…') {
            Some((head, tail)) => assert!(ck_hex.starts_with(head) && ck_hex.ends_with(tail), "ck_{i}"),
            None => assert_eq!(ticked(cells[1])[0], ck_hex, "ck_{i}"),
        }
        assert_eq!(ticked(cells[2])[0], hex::encode(*ck.step_key()), "k_{i}");
        assert_eq!(ticked(cells[3])[0], login_otp(&ck, i, &challenge, vid).as_str(), "login OTP {i}");
        assert_eq!(ticked(cells[4])[0], tx_otp(&ck, i, &challenge, &fields).as_str(), "tx OTP {i}");
    }

    // The APDU exchange with a card personalized with this seed.
    let exchange: Vec<&str> =
        s.lines().skip_while(|l| !l.starts_with("```")).skip(1).take_while(|l| !l.starts_with("```")).collect();
    // → lines and their continuations, ← lines.
    let mut commands: Vec<String> = Vec::new();
    let mut answers: Vec<&str> = Vec::new();
    for l in &exchange {
        if let Some(c) = l.strip_prefix("→") {
            commands.push(c.trim().to_owned());
        } else if let Some(a) = l.strip_prefix("←") {
            answers.push(a.trim());
        } else if let Some(last) = commands.last_mut() {
            last.push(' ');
            last.push_str(l.trim());
        }
    }
    assert_eq!((commands.len(), answers.len()), (2, 2), "{exchange:?}");
    let login_apdu = unhex(&commands[0]);
    assert_eq!(login_apdu, host::login_otp(&challenge, std::str::from_utf8(vid).unwrap()).unwrap());
    let tx_apdu =
        commands[1].replace("<challenge>", &hex::encode(&challenge)).replace("<verifier id>", &hex::encode(vid));
    assert_eq!(unhex(&tx_apdu), host::tx_otp(&challenge, &fields).unwrap());

    let mut card = common::factory();
    common::personalize_with(&mut card, &common::ADMIN_KEY, &seed, common::PIN, common::PUK, common::SERIAL);
    assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
    assert_eq!(sw(&tx(&mut card, &host::verify(common::PIN).unwrap())), 0x9000);
    let login_answer = answers[0].split("   ").next().unwrap();
    assert_eq!(tx(&mut card, &login_apdu), unhex(login_answer));
    let (counter, code) = host::parse_otp(&tx(&mut card, &unhex(&tx_apdu))).unwrap();
    let code_shown = answers[1].split('"').nth(1).unwrap();
    assert_eq!(code.as_str(), code_shown);
    assert!(answers[1].starts_with(&format!("03 08 {} 04 08", hex::encode_upper(counter.to_be_bytes()))));
    assert!(answers[1].contains(&format!("(counter {counter})")));
}

#[test]
fn paysim2_vectors_as_published() {
    let d = doc();
    let p1 = section(&d, "### PAYSIM-1", "### PAYSIM-2");
    let s = section(&d, "### PAYSIM-2", "### Admin protocol");
    let seed: [u8; 32] = arr(value(p1, "seed"));
    let challenge = unhex(value(p1, "challenge"));
    let vid = value(p1, "verifier id").as_bytes();
    let amount: u64 = row(s, "amount")[1].split_whitespace().next().unwrap().parse().unwrap();
    let currency: [u8; 3] = value(s, "currency").as_bytes().try_into().unwrap();
    let name_cell = row(s, "payee name")[1];
    let name = ticked(name_cell)[0];
    assert_eq!(unhex(ticked(name_cell)[1]), name.as_bytes(), "the name's UTF-8 bytes as printed");
    let fields = TxFields {
        version: TxVersion::V2,
        verifier_id: vid,
        transaction_id: value(s, "transaction id").as_bytes(),
        amount_minor: amount,
        currency: &currency,
        source: value(s, "source").as_bytes(),
        payee: value(s, "payee").as_bytes(),
        payee_name: name.as_bytes(),
    };
    // The document's inputs are the JSON's inputs.
    let j = &json()["paysim2"];
    for (k, got) in [("source", fields.source), ("payee", fields.payee), ("payee_name", fields.payee_name)] {
        assert_eq!(j["transaction"][k].as_str().unwrap().as_bytes(), got, "{k}");
    }
    assert_eq!(unhex(line_after(s, "Transaction context v2")), tx_context(&fields));
    let steps: Vec<Vec<&str>> = s
        .lines()
        .filter(|l| l.strip_prefix("| ").and_then(|l| l.chars().next()).is_some_and(|c| c.is_ascii_digit()))
        .map(|l| l.trim().trim_matches('|').split(" | ").map(str::trim).collect())
        .collect();
    assert!(steps.len() >= 5, "the step table is missing or short");
    let ck0 = ChainKey::from_bytes(seed);
    for (i, cells) in steps.iter().enumerate() {
        let i = u64::try_from(i).unwrap();
        assert_eq!(cells[0], i.to_string(), "rows in order");
        assert_eq!(ticked(cells[1])[0], tx_otp(&ck0.advance(i), i, &challenge, &fields).as_str(), "v2 OTP {i}");
    }
    // The APDU: built by the host, answered by a card at counter 1.
    let exchange: Vec<&str> =
        s.lines().skip_while(|l| !l.starts_with("```")).skip(1).take_while(|l| !l.starts_with("```")).collect();
    let command: String = exchange
        .iter()
        .take_while(|l| !l.starts_with('←'))
        .map(|l| l.trim_start_matches('→').trim())
        .collect::<Vec<_>>()
        .join(" ");
    let apdu =
        unhex(&command.replace("<challenge>", &hex::encode(&challenge)).replace("<verifier id>", &hex::encode(vid)));
    assert_eq!(apdu, host::tx_otp(&challenge, &fields).unwrap());
    let answer = exchange.iter().find(|l| l.starts_with('←')).unwrap();
    let mut card = common::factory();
    common::personalize_with(&mut card, &common::ADMIN_KEY, &seed, common::PIN, common::PUK, common::SERIAL);
    assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
    assert_eq!(sw(&tx(&mut card, &host::verify(common::PIN).unwrap())), 0x9000);
    assert_eq!(sw(&tx(&mut card, &host::login_otp(&challenge, std::str::from_utf8(vid).unwrap()).unwrap())), 0x9000);
    let (counter, code) = host::parse_otp(&tx(&mut card, &apdu)).unwrap();
    assert_eq!((counter, code.as_str()), (1, answer.split('"').nth(1).unwrap()));
}

#[test]
fn admin_vectors_as_published() {
    let d = doc();
    let s = section(&d, "### Admin protocol", "\n## ");
    let key: [u8; 32] = arr(value(s, "admin key"));
    let rh: [u8; 16] = arr(value(s, "host challenge RH"));
    let rc: [u8; 16] = arr(value(s, "card challenge RC"));
    let mut ctx = rh.to_vec();
    ctx.extend_from_slice(&rc);
    for (c, name) in [(0x04, "S-ENC"), (0x06, "S-MAC"), (0x07, "S-RMAC")] {
        let mut out = [0u8; 32];
        kdf(&key, c, &ctx, &mut out);
        assert_eq!(value(s, name), hex::encode(out), "{name}");
    }
    let keys = SessionKeys::derive(&key, &rh, &rc);
    assert_eq!(value(s, "host cryptogram"), hex::encode(keys.host_cryptogram()));
    assert_eq!(value(s, "card cryptogram"), hex::encode(keys.card_cryptogram()));

    // The PERSONALIZE row names its inputs: the seed of the PAYSIM-1 section, PIN, PUK, serial.
    let p_row = row(s, "PERSONALIZE");
    let [pin, puk, serial] = <[&str; 3]>::try_from(ticked(p_row[0])).unwrap();
    let seed: [u8; 32] = arr(value(section(&d, "### PAYSIM-1", "### PAYSIM-2"), "seed"));

    // A card whose challenge is RC, driven by a host session whose challenge is RH, exchanges
    // exactly the published bytes.
    let mut card = CardFront::new(Card::with_random(
        MemStore::default(),
        CardState::factory(&key),
        Box::new(move |buf: &mut [u8]| {
            for (b, r) in buf.iter_mut().zip(rc.iter().cycle()) {
                *b = *r;
            }
            true
        }),
    ));
    assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
    let mut session = AdminSession::with_host_challenge(&key, rh);
    let auth = session.external_authenticate(&tx(&mut card, &AdminSession::get_challenge())).unwrap();
    assert_eq!(unhex(value(s, "EXTERNAL AUTHENTICATE")), auth);
    session.check_authenticated(&tx(&mut card, &auth)).unwrap();
    let cmd = session.personalize(&Personalization { seed: &seed, pin, puk, serial }).unwrap();
    assert_eq!(unhex(ticked(p_row[1])[0]), cmd.as_slice());
    let resp = tx(&mut card, &cmd);
    assert_eq!(value(s, "R-MAC"), hex::encode(&resp[..16]));
    session.check_personalized(&resp).unwrap();
}

/// The README's two commands for a fresh Debian machine, as root: `.ci/run` runs exactly the
/// test command, and neither needs `sudo`, which a fresh Debian (and this project's CI, root
/// in a container) does not have.
#[test]
fn readme_commands_run_as_root_and_ci_runs_the_test_command() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let block = section(&readme, "## Two commands", "## ");
    let block = section(block, "```sh\n", "```");
    let commands: Vec<&str> =
        block.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).collect();
    assert_eq!(commands, ["bash scripts/demo.sh", "bash scripts/test.sh"], "README:\n{block}");
    let ci = std::fs::read_to_string(format!("{root}/.ci/run")).unwrap();
    let ci_commands: Vec<&str> = ci.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(ci_commands, ["exec bash scripts/test.sh"], ".ci/run runs the README's test command and nothing else");
}

/// The README says what a tester needs before running the tests (how long, root, the pcscd
/// restart, the slot queue) and its demo values are the demo's: the PUK it documents is the
/// one `scripts/demo.sh` personalizes, and every quick subset names a workspace package.
#[test]
fn readme_test_section_and_demo_values_match_the_scripts() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let demo = std::fs::read_to_string(format!("{root}/scripts/demo.sh")).unwrap();
    let demo_value = |name: &str| -> String {
        let line = demo
            .lines()
            .find(|l| l.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in demo.sh"));
        line[name.len() + 1..].split_whitespace().next().unwrap().to_owned()
    };
    let puk = demo_value("PUK");
    assert!(readme.contains(&format!("The demo card's PUK is `{puk}`")), "README does not give the demo PUK {puk}");
    let pin = demo_value("PIN");
    assert!(readme.contains(&format!("PIN:       {pin}")), "README's banner does not show the demo PIN {pin}");

    let tests = section(&readme, "### Running the tests", "### ");
    for needed in ["minutes", "root", "restarts pcscd", "demo", "Quicker subsets need no pcscd"] {
        assert!(tests.contains(needed), "README's test section does not say {needed:?}");
    }
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let subsets = section(tests, "```sh\n", "```");
    for line in subsets.lines().filter(|l| l.starts_with("cargo test")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2).filter(|w| w[0] == "-p") {
            let package = pair[1];
            let members = section(&manifest, "members = [", "]");
            let found = members.split('"').skip(1).step_by(2).any(|member| {
                let toml = std::fs::read_to_string(format!("{root}/{member}/Cargo.toml")).unwrap_or_default();
                toml.contains(&format!("name = \"{package}\""))
            });
            assert!(found, "README's quick subset names no workspace package {package:?}: {line}");
        }
    }
}
