//! The card end to end: `bank-tools` creates and personalizes a `virtual-card` through the real
//! pcscd and vpcd; the `pcsc` crate and third-party PC/SC clients then talk to it.

use card_applet::command::DataObject;
use card_applet::host::{self, CardError, PinStatus};
use card_link::{Disposition, Exchange, PcscCard, Transport, TransportExt};
use e2e_tests::{bank_tools, hex_upper, opensc_tool, require_pcscd, scriptor, CardSpec, Slot, TestCard};
use paysim_otp::{self as otp, TxFields};
use std::path::Path;

const VERIFIER: &str = "https://bank.example:443";

fn send(ex: &mut Exchange<'_>, apdu: &[u8]) -> Vec<u8> {
    ex.transmit(apdu).unwrap()
}

/// Runs `f` in one card-link exchange (which ends with a card reset if `f` touched the PIN).
fn exchange<R>(link: &mut PcscCard, f: impl FnOnce(&mut Exchange<'_>) -> R) -> R {
    link.exchange(|ex| Ok::<_, card_link::Error>(f(ex))).unwrap()
}

fn sw(resp: &[u8]) -> u16 {
    host::split(resp).unwrap().1
}

fn challenge(n: u8) -> [u8; 32] {
    std::array::from_fn(|i| n.wrapping_mul(31).wrapping_add(u8::try_from(i).unwrap()))
}

#[test]
fn pcsc_finds_both_vpcd_readers() {
    require_pcscd();
    let readers = card_link::Pcsc::establish().unwrap().reader_names().unwrap();
    assert!(readers.contains(&"Virtual PCD 00 00".to_owned()), "{readers:?}");
    assert!(readers.contains(&"Virtual PCD 00 01".to_owned()), "{readers:?}");
}

#[test]
fn personalized_card_selects_verifies_and_gives_otps_matching_the_algorithm() {
    let spec = CardSpec { slot: Some(Slot(0)), ..CardSpec::default() };
    let card = TestCard::personalized(&spec);
    assert_eq!(card.reader(), "Virtual PCD 00 00");
    let mut link = card.link();
    let codes = exchange(&mut link, |tx| {
        let fci = host::parse_select(&send(tx, &host::select())).unwrap();
        assert!(fci.personalized());
        assert_eq!(fci.serial.as_deref(), Some("PSIM-00000001"));
        assert_eq!(host::parse_serial(&send(tx, &host::get_data(DataObject::Serial))).unwrap(), "PSIM-00000001");
        assert_eq!(host::parse_counter(&send(tx, &host::get_data(DataObject::NextCounter))).unwrap(), 0);

        // No OTP before the PIN.
        let early = send(tx, &host::login_otp(&challenge(0), VERIFIER).unwrap());
        assert_eq!(host::parse_otp(&early).unwrap_err(), CardError::SecurityNotSatisfied);

        host::parse_verify(&send(tx, &host::verify("1234").unwrap())).unwrap();
        assert_eq!(host::parse_pin_status(&send(tx, &host::verify_status())).unwrap(), PinStatus::Verified);

        let ck0 = card.token.seed.clone();
        assert_eq!(card.token.counter, 0);
        let mut codes = Vec::new();
        for i in 0..3u64 {
            let ch = challenge(u8::try_from(i).unwrap());
            let (counter, code) = host::parse_otp(&send(tx, &host::login_otp(&ch, VERIFIER).unwrap())).unwrap();
            assert_eq!(counter, i);
            let expected = otp::login_otp(&ck0.advance(i), i, &ch, VERIFIER.as_bytes());
            assert!(expected.matches(code.as_str()), "login OTP at counter {i} does not match the algorithm");
            codes.push(code.as_str().to_owned());
        }

        let txf = TxFields {
            version: paysim_otp::TxVersion::V1,
            source: b"",
            payee_name: b"",
            verifier_id: VERIFIER.as_bytes(),
            transaction_id: b"t-0001",
            amount_minor: 12_34,
            currency: b"EUR",
            payee: b"DE00 1234",
        };
        let ch = challenge(9);
        let (counter, code) = host::parse_otp(&send(tx, &host::tx_otp(&ch, &txf).unwrap())).unwrap();
        assert_eq!(counter, 3);
        assert!(otp::tx_otp(&ck0.advance(3), 3, &ch, &txf).matches(code.as_str()));
        // The login code at the same step differs: the transaction fields are bound in.
        assert!(!otp::login_otp(&ck0.advance(3), 3, &ch, VERIFIER.as_bytes()).matches(code.as_str()));
        assert_eq!(host::parse_counter(&send(tx, &host::get_data(DataObject::NextCounter))).unwrap(), 4);
        codes.push(code.as_str().to_owned());
        codes
    });

    // The card logged the exchanges, and no secret: not the seed, the PIN block or a code.
    let log = card.log();
    assert!(log.contains("ins=10") && log.contains("sw=9000"), "the card logs INS and SW:\n{log}");
    let seed_hex = hex::encode(card.token.seed.expose());
    for secret in [seed_hex.as_str(), &seed_hex.to_uppercase(), "31323334", "31 32 33 34"]
        .into_iter()
        .chain(codes.iter().map(String::as_str))
    {
        assert!(!log.contains(secret), "the card's log holds a secret ({} chars)", secret.len());
    }
}

#[test]
fn wrong_pin_counts_down_blocks_and_the_puk_unblocks() {
    let mut card = TestCard::personalized(&CardSpec::default());
    let mut link = card.link();
    exchange(&mut link, |tx| {
        host::parse_select(&send(tx, &host::select())).unwrap();
        assert_eq!(sw(&send(tx, &host::verify("9999").unwrap())), 0x63C2);
        assert_eq!(sw(&send(tx, &host::verify("9998").unwrap())), 0x63C1);
        assert_eq!(
            host::parse_pin_status(&send(tx, &host::verify_status())).unwrap(),
            PinStatus::NotVerified { tries_left: 1 }
        );
        assert_eq!(sw(&send(tx, &host::verify("9997").unwrap())), 0x63C0);
        // Blocked: even the right PIN is refused.
        assert_eq!(sw(&send(tx, &host::verify("1234").unwrap())), 0x6983);
        assert_eq!(host::parse_byte(&send(tx, &host::get_data(DataObject::PinTries))).unwrap(), 0);
    });
    // Counters survive a reset and a restart of the card process.
    link.reset(Disposition::Reset).unwrap();
    drop(link);
    card.process().restart().unwrap();
    let mut link = card.link();
    exchange(&mut link, |tx| {
        host::parse_select(&send(tx, &host::select())).unwrap();
        assert_eq!(host::parse_pin_status(&send(tx, &host::verify_status())).unwrap(), PinStatus::Blocked);
        assert_eq!(
            host::parse_reset_retry_counter(&send(tx, &host::reset_retry_counter("87654321", "4321").unwrap())),
            Err(CardError::WrongPuk { tries_left: 9 })
        );
        host::parse_reset_retry_counter(&send(tx, &host::reset_retry_counter("12345678", "4321").unwrap())).unwrap();
        assert_eq!(sw(&send(tx, &host::verify("1234").unwrap())), 0x63C2);
        host::parse_verify(&send(tx, &host::verify("4321").unwrap())).unwrap();
        assert_eq!(host::parse_byte(&send(tx, &host::get_data(DataObject::PinTries))).unwrap(), 3);
    });
}

#[test]
fn reset_and_power_cycle_clear_the_verified_pin() {
    let card = TestCard::personalized(&CardSpec::default());
    let mut link = card.link();
    for (what, disposition) in [("warm reset", false), ("power cycle", true)] {
        // Leave the card as it is at the end, so that the reset below is what clears the PIN
        // (an ordinary exchange would reset the card itself: card-link's PIN-state rule).
        link.transaction_ending(Disposition::Leave, |tx| {
            host::parse_select(&send(tx, &host::select())).unwrap();
            host::parse_verify(&send(tx, &host::verify("1234").unwrap())).unwrap();
            host::parse_otp(&send(tx, &host::login_otp(&challenge(1), VERIFIER).unwrap())).unwrap();
            // Still verified without a new SELECT while the card was left alone.
            assert_eq!(host::parse_pin_status(&send(tx, &host::verify_status())).unwrap(), PinStatus::Verified);
            Ok::<_, card_link::Error>(())
        })
        .unwrap();
        link.reset(if disposition { Disposition::Unpower } else { Disposition::Reset }).unwrap();
        exchange(&mut link, |tx| {
            host::parse_select(&send(tx, &host::select())).unwrap();
            assert_eq!(
                host::parse_pin_status(&send(tx, &host::verify_status())).unwrap(),
                PinStatus::NotVerified { tries_left: 3 },
                "after a {what}"
            );
            let resp = send(tx, &host::login_otp(&challenge(2), VERIFIER).unwrap());
            assert_eq!(host::parse_otp(&resp).unwrap_err(), CardError::SecurityNotSatisfied, "after a {what}");
        });
    }
    assert!(card.log().contains("reset"), "the card logs resets:\n{}", card.log());
}

#[test]
fn third_party_clients_get_the_same_answers() {
    let card = TestCard::personalized(&CardSpec { serial: "PSIM-3RD-PARTY".into(), ..CardSpec::default() });
    let reader = card.reader();
    let (fci_pcsc, tries_pcsc) = {
        let mut link = card.link();
        exchange(&mut link, |tx| (send(tx, &host::select()), send(tx, &host::get_data(DataObject::PinTries))))
    };
    assert_eq!(sw(&fci_pcsc), 0x9000);

    // scriptor (pcsc-tools): one connection for SELECT, VERIFY, LOGIN OTP, GET DATA.
    let ch = challenge(7);
    let apdus = [
        host::select(),
        host::get_data(DataObject::PinTries),
        host::verify("1234").unwrap().to_vec(),
        host::login_otp(&ch, VERIFIER).unwrap(),
        host::get_data(DataObject::NextCounter),
    ]
    .map(|a| hex_upper(&a));
    let answers = scriptor(&reader, &apdus).unwrap();
    assert_eq!(answers[0].data, fci_pcsc[..fci_pcsc.len() - 2], "scriptor sees the same FCI");
    assert_eq!(answers[0].sw, 0x9000);
    assert_eq!([answers[1].data.clone(), answers[1].sw.to_be_bytes().to_vec()].concat(), tries_pcsc);
    assert_eq!(answers[2].sw, 0x9000);
    let mut otp_resp = answers[3].data.clone();
    otp_resp.extend_from_slice(&answers[3].sw.to_be_bytes());
    let (counter, code) = host::parse_otp(&otp_resp).unwrap();
    let ck = card.token.seed.clone().advance(counter);
    assert!(otp::login_otp(&ck, counter, &ch, VERIFIER.as_bytes()).matches(code.as_str()));
    assert_eq!(answers[4].data, (counter + 1).to_be_bytes());

    // opensc-tool: SELECT and GET DATA serial, and a wrong PIN counts as it does for pcsc.
    let apdus = [host::select(), host::get_data(DataObject::Serial), host::verify("0000").unwrap().to_vec()]
        .map(|a| hex_upper(&a));
    let answers = opensc_tool(&reader, &apdus).unwrap();
    assert_eq!(answers.len(), 3, "{answers:?}");
    assert_eq!(answers[0].data, fci_pcsc[..fci_pcsc.len() - 2], "opensc-tool sees the same FCI");
    assert_eq!(answers[1].data, b"PSIM-3RD-PARTY");
    assert_eq!(answers[2].sw, 0x63C2);

    // pcsc_scan (pcsc-tools) as the README's tester notes give it: one snapshot, no ATR lookup
    // (`-n`: it does not try to download its ATR list), the card's ATR as it is.
    let out = std::process::Command::new("timeout").args(["30", "pcsc_scan", "-c", "-n"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pcsc_scan -c -n: {}{}", text, String::from_utf8_lossy(&out.stderr));
    let ours = text.split(" Reader ").find(|r| r.contains(&reader)).unwrap_or_else(|| panic!("{reader} not in {text}"));
    let atr: Vec<String> = card_applet::ATR.iter().map(|b| format!("{b:02X}")).collect();
    assert!(ours.contains(&format!("ATR: {}", atr.join(" "))), "pcsc_scan shows another ATR: {ours}");
    let mut link = card.link();
    exchange(&mut link, |tx| {
        host::parse_select(&send(tx, &host::select())).unwrap();
        assert_eq!(
            host::parse_pin_status(&send(tx, &host::verify_status())).unwrap(),
            PinStatus::NotVerified { tries_left: 2 }
        );
    });
}

#[test]
fn virtual_card_refuses_a_missing_or_busy_state_file() {
    let (dir, state, _admin, card) = TestCard::factory(None);
    let second = std::process::Command::new(e2e_tests::bin("virtual-card"))
        .arg("--state")
        .arg(&state)
        .arg("--vpcd")
        .arg(card.slot().vpcd_addr())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by another process"), "{err}");

    let missing = std::process::Command::new(e2e_tests::bin("virtual-card"))
        .arg("--state")
        .arg(dir.path().join("nope.state"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("bank-tools card create"), "{err}");

    // A --vpcd that is not HOST:PORT is refused at once (not retried forever).
    let free = dir.path().join("free.state");
    let made = bank_tools(&["card", "create", "--state", free.to_str().unwrap()], None);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    for bad in ["127.0.0.1", "127.0.0.1:notaport", ":35963", "127.0.0.1:0"] {
        let mut child = std::process::Command::new(e2e_tests::bin("virtual-card"))
            .arg("--state")
            .arg(&free)
            .args(["--vpcd", bad])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
            let _ = done_tx.send(text);
        });
        let Ok(text) = done.recv_timeout(e2e_tests::WAIT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("virtual-card --vpcd {bad:?} did not give up");
        };
        assert!(!child.wait().unwrap().success(), "{bad}");
        assert!(text.contains("is not HOST:PORT"), "{bad}: {text}");
    }
    assert_eq!(err.matches("No such file or directory").count(), 1, "the cause is printed once: {err}");
}

#[test]
fn personalize_refuses_bad_input_before_touching_the_card() {
    let (dir, _state, admin, card) = TestCard::factory(None);
    let reader = card.reader();
    let out = dir.path().join("token.json");
    let base = |serial: &str| {
        vec![
            "card".to_owned(),
            "personalize".into(),
            "--reader".into(),
            reader.clone(),
            "--admin-key".into(),
            admin.to_str().unwrap().into(),
            "--serial".into(),
            serial.into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ]
    };
    let run = |args: Vec<String>, stdin: Option<&str>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        bank_tools(&refs, stdin)
    };
    // PIN and PUK on standard input (argv secrets are refused, see tools/tests/secret_args.rs).
    let stdin_flags = || vec!["--pin-stdin".to_owned(), "--puk-stdin".to_owned()];
    for (args, stdin, needle) in [
        ([base("psim lower"), stdin_flags()].concat(), "1234\n12345678\n", "serial"),
        ([base("PSIM-1"), stdin_flags()].concat(), "12\n12345678\n", "PIN"),
        ([base("PSIM-1"), stdin_flags()].concat(), "1234\n123\n", "PUK"),
        (
            [base("PSIM-1"), stdin_flags(), vec!["--cert-sha256".into(), "xyz".into()]].concat(),
            "1234\n12345678\n",
            "SHA-256",
        ),
    ] {
        let out_proc = run(args, Some(stdin));
        assert!(!out_proc.status.success());
        let err = String::from_utf8_lossy(&out_proc.stderr);
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
        assert!(!err.contains("1234"), "a PIN reached an error message: {err}");
    }
    assert!(!out.exists());
    // The card is still factory-fresh.
    let mut link = card_link(&reader);
    assert!(!exchange(&mut link, |tx| host::parse_select(&send(tx, &host::select())).unwrap().personalized()));
}

fn card_link(reader: &str) -> PcscCard {
    PcscCard::connect(reader, e2e_tests::WAIT).unwrap()
}

#[test]
fn a_wrong_admin_key_is_refused_and_counted() {
    let (dir, _state, _admin, card) = TestCard::factory(None);
    let wrong = dir.path().join("wrong.admin");
    tools::secret_file::write_new(&wrong, format!("{}\n", "5a".repeat(32)).as_bytes()).unwrap();
    let out = dir.path().join("token.json");
    let reader = card.reader();
    let res = bank_tools(
        &[
            "card",
            "personalize",
            "--reader",
            &reader,
            "--admin-key",
            wrong.to_str().unwrap(),
            "--serial",
            "PSIM-2",
            "--pin-stdin",
            "--puk-stdin",
            "--out",
            out.to_str().unwrap(),
        ],
        Some("1234\n12345678\n"),
    );
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("admin authentication failed: 9 tries left"), "{err}");
    assert!(!out.exists());
}

/// `bank-tools card personalize` through the binary: the seed is HKDF-SHA256 over the
/// `--secret-file` secret and the materials in tag order (the vector in tools/README.md, flags
/// given out of order), the token file is mode 0600 and never overwritten, a weak or exposed
/// secret file is refused, and without `--secret-file` the secret is fresh random bytes.
#[test]
fn personalize_derives_the_documented_seed_and_guards_its_files() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _state, admin, card) = TestCard::factory(None);
    let reader = card.reader();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let secret = path("secret.hex");
    tools::secret_file::write_new(
        Path::new(&secret),
        format!("{}\n", hex::encode((0u8..32).collect::<Vec<_>>())).as_bytes(),
    )
    .unwrap();
    let materials = [
        "--imei",
        "490154203237518",
        "--cert-sha256",
        "8466704473f5d2d54a42710d1ebd5d25981daff3e701bbd254ffca8a816a51a4",
        "--user-id",
        "alice",
    ];
    let personalize = |serial: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "card",
            "personalize",
            "--reader",
            &reader,
            "--admin-key",
            admin.to_str().unwrap(),
            "--serial",
            serial,
            "--pin-stdin",
            "--puk-stdin",
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        bank_tools(&args, Some("1234\n12345678\n"))
    };
    let selected_serial = || {
        let mut link = card_link(&reader);
        exchange(&mut link, |tx| host::parse_select(&send(tx, &host::select())).unwrap().serial)
    };

    let out = path("kat.json");
    let run = personalize("PSIM-KAT", &out, &[&["--secret-file", secret.as_str()][..], &materials[..]].concat());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("personalized card PSIM-KAT"), "it says what it did");
    let token = e2e_tests::read_token(Path::new(&out));
    assert_eq!(hex::encode(token.seed.expose()), "bd3790c882c240375142f620b70aa215703dcfcbc4d6105c5763e1440f887001");
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    let printed = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(!printed.contains("bd3790c8") && !printed.contains("000102030405"), "a secret was printed: {printed}");
    // The card runs that seed: its first login code is the algorithm's at counter 0.
    {
        let mut link = card_link(&reader);
        let (counter, code) = exchange(&mut link, |tx| {
            host::parse_select(&send(tx, &host::select())).unwrap();
            host::parse_verify(&send(tx, &host::verify("1234").unwrap())).unwrap();
            host::parse_otp(&send(tx, &host::login_otp(&challenge(3), VERIFIER).unwrap())).unwrap()
        });
        assert_eq!(counter, 0);
        let ck = token.seed.advance(token.counter);
        assert!(otp::login_otp(&ck, 0, &challenge(3), VERIFIER.as_bytes()).matches(code.as_str()));
    }

    // The same --out again: refused before the card is touched; file and card unchanged.
    let before = std::fs::read(&out).unwrap();
    let run = personalize("PSIM-OTHER", &out, &materials);
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("refusing to overwrite"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    assert_eq!(selected_serial().as_deref(), Some("PSIM-KAT"));

    // A secret file others can read, or one byte repeated, is refused.
    let loose = path("loose.hex");
    tools::secret_file::write_new(Path::new(&loose), "ab".repeat(32).as_bytes()).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = personalize("PSIM-OTHER", &path("loose.json"), &["--secret-file", &loose, "--user-id", "alice"]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("chmod 600"), "{}", String::from_utf8_lossy(&run.stderr));
    let zero = path("zero.hex");
    tools::secret_file::write_new(Path::new(&zero), "00".repeat(32).as_bytes()).unwrap();
    let run = personalize("PSIM-OTHER", &path("zero.json"), &["--secret-file", &zero, "--user-id", "alice"]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("not random"), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(selected_serial().as_deref(), Some("PSIM-KAT"));

    // No --secret-file: the same materials give another seed (32 fresh random bytes).
    let fresh = path("fresh.json");
    let run = personalize("PSIM-FRESH", &fresh, &materials);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let fresh = e2e_tests::read_token(Path::new(&fresh));
    assert_ne!(fresh.seed.expose(), token.seed.expose());
    assert_eq!(selected_serial().as_deref(), Some("PSIM-FRESH"));
}
