//! The card file: golden files per format version, atomic replace, lock, mode 0600,
//! factory creation, and a file-backed card that keeps its counter across restarts.

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use card_applet::host;
use card_applet::pin::{PinBlock, PukBlock};
use card_applet::state::{
    create_factory, AccessKey, CardState, Credential, FileStore, OathKind, OathState, Personal, Store, StoreError,
};
use card_applet::VirtualCard;
use common::*;
use paysim_otp::{ChainKey, HashAlg};
use zeroize::Zeroizing;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

fn golden_state() -> CardState {
    let admin_key: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
    let ck: [u8; 32] = std::array::from_fn(|i| u8::try_from(i + 32).unwrap());
    CardState {
        admin_key: Zeroizing::new(admin_key),
        admin_tries: 9,
        personal: Some(Personal {
            serial: "PSIM-00000001".into(),
            pin: PinBlock::from_pin("1234").unwrap(),
            pin_tries: 2,
            puk: PukBlock::from_puk("12345678").unwrap(),
            puk_tries: 10,
            chain_key: ChainKey::from_bytes(ck),
            counter: 5,
        }),
        oath: OathState::default(),
    }
}

/// The version-1 golden state with an OATH applet in use: a salt, an access code, an HOTP
/// credential with touch and an only-increasing TOTP SHA-512 credential with a last challenge.
fn golden_state_v2() -> CardState {
    let mut state = golden_state();
    state.oath = OathState {
        salt: Some([0xC9, 0x8C, 0xE5, 0xCD, 0xD2, 0xCE, 0xB5, 0xE0]),
        access: Some(AccessKey { alg: HashAlg::Sha1, key: Zeroizing::new(vec![0x11; 16]) }),
        credentials: vec![
            Credential {
                name: b"rfc4226".to_vec(),
                kind: OathKind::Hotp,
                alg: HashAlg::Sha1,
                digits: 6,
                key: Zeroizing::new(b"12345678901234567890".to_vec()),
                touch: true,
                increasing: false,
                counter: 3,
                last_challenge: None,
            },
            Credential {
                name: b"60/Bank:alice".to_vec(),
                kind: OathKind::Totp,
                alg: HashAlg::Sha512,
                digits: 8,
                key: Zeroizing::new(vec![0x42; 64]),
                touch: false,
                increasing: true,
                counter: 0,
                last_challenge: Some(vec![0x03, 0x91, 0x3A, 0xC6]),
            },
        ],
    };
    state
}

#[test]
fn golden_files_of_format_version_2() {
    let factory = CardState::factory(&std::array::from_fn(|i| u8::try_from(i).unwrap()));
    for (name, state) in [("state-v2.json", &golden_state_v2()), ("state-v2-factory.json", &factory)] {
        let path = testdata(name);
        let bytes = std::fs::read(&path).unwrap();
        // Reads as the state, and the state writes byte for byte as the file.
        assert_eq!(&CardState::from_file_bytes(&bytes, &path).unwrap(), state, "{name}");
        assert_eq!(
            String::from_utf8(state.to_file_bytes().to_vec()).unwrap(),
            String::from_utf8(bytes).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn golden_files_of_format_version_1_still_read() {
    let want = golden_state();
    let factory = CardState::factory(&std::array::from_fn(|i| u8::try_from(i).unwrap()));
    for (name, state) in [("state-v1.json", &want), ("state-v1-factory.json", &factory)] {
        let path = testdata(name);
        let bytes = std::fs::read(&path).unwrap();
        // A version-1 card reads with an empty OATH applet (no salt yet, no credentials) ...
        let read = CardState::from_file_bytes(&bytes, &path).unwrap();
        assert_eq!(&read, state, "{name}");
        assert_eq!(read.oath, OathState::default());
        // ... and is written back as version 2.
        let text = String::from_utf8(read.to_file_bytes().to_vec()).unwrap();
        assert!(text.contains("\"version\": 2") && text.contains("\"oath\""), "{text}");
        assert_eq!(&CardState::from_file_bytes(text.as_bytes(), &path).unwrap(), state);
    }
}

#[test]
fn bad_version_2_oath_objects_are_refused_with_a_reason() {
    let p = Path::new("x.json");
    let text = std::fs::read_to_string(testdata("state-v2.json")).unwrap();
    let cases = [
        (text.replace("\"digits\": 6", "\"digits\": 5"), "digits"),
        (text.replace("\"HOTP\"", "\"HMAC\""), "kind"),
        (text.replace("\"SHA512\"", "\"MD5\""), "alg"),
        (text.replace("c98ce5cdd2ceb5e0", "c98c"), "salt"),
        (text.replace("\"03913ac6\"", "\"0003913ac6\""), "canonical"),
        (text.replace("36302f42616e6b3a616c696365", "72666334323236"), "repeated"),
        (text.replace("\"touch\": true,", "\"touch\": true, \"extra\": 1,"), "malformed"),
    ];
    for (bytes, why) in cases {
        let err = CardState::from_file_bytes(bytes.as_bytes(), p).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(why), "{msg} (wanted {why})");
        assert!(!msg.contains("3132333435") && !msg.contains("4242"), "{msg}");
    }
}

#[test]
fn bad_files_are_refused_with_a_reason() {
    let p = Path::new("x.json");
    let text = std::fs::read_to_string(testdata("state-v1.json")).unwrap();
    let cases = [
        (text.replace("\"version\": 1", "\"version\": 3"), "format version 3"),
        (text.replace("paysim-card-state", "something-else"), "wrong \"format\""),
        (text.replace("\"pin_tries\": 2", "\"pin_tries\": 4"), "out of range"),
        (text.replace("\"admin_tries\": 9", "\"admin_tries\": 11"), "out of range"),
        (text.replace("PSIM-00000001", "psim"), "serial"),
        (text.replace("31323334ffffffff", "31ffffffffffffff"), "PIN block"),
        (text.replace("\"counter\": 5", "\"counter\": 5, \"extra\": 1"), "malformed"),
        (text[..text.len() / 2].to_owned(), "bad JSON"),
        (String::new(), "bad JSON"),
    ];
    for (bytes, why) in cases {
        let err = CardState::from_file_bytes(bytes.as_bytes(), p).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(why), "{msg} (wanted {why})");
        // Error messages never quote the file's secrets.
        assert!(!msg.contains("0001020304") && !msg.contains("2021222324"), "{msg}");
    }
    let v3 = text.replace("\"version\": 1", "\"version\": 3");
    assert!(matches!(
        CardState::from_file_bytes(v3.as_bytes(), p),
        Err(StoreError::UnsupportedVersion { version: 3, .. })
    ));
    // A version-2 file without its "oath" object is malformed, not a version-1 file.
    let v2 = text.replace("\"version\": 1", "\"version\": 2");
    assert!(CardState::from_file_bytes(v2.as_bytes(), p).unwrap_err().to_string().contains("malformed version-2"));
}

#[test]
fn create_factory_writes_0600_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    create_factory(&path, &ADMIN_KEY).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (_, state) = FileStore::open(&path).unwrap();
    assert_eq!(state, CardState::factory(&ADMIN_KEY));
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(create_factory(&path, &[1; 32]), Err(StoreError::Exists { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // No temp file is left behind.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn a_card_file_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    create_factory(&path, &ADMIN_KEY).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Permissions { mode: 0o644, .. }), "{err}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn two_openers_of_one_card_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    create_factory(&path, &ADMIN_KEY).unwrap();
    let first = VirtualCard::open(&path).unwrap();
    let err = VirtualCard::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(err.to_string().contains(&format!("pid {}", std::process::id())), "{err}");
    // Creating over a running card is refused too.
    assert!(create_factory(&path, &ADMIN_KEY).is_err());
    drop(first);
    // Released on drop.
    VirtualCard::open(&path).unwrap();
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = VirtualCard::open(&dir.path().join("nope.json")).err().unwrap();
    assert!(err.to_string().contains("nope.json"), "{err}");
}

#[test]
fn commits_replace_the_file_atomically_and_keep_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    create_factory(&path, &ADMIN_KEY).unwrap();
    let (mut store, _) = FileStore::open(&path).unwrap();
    let state = golden_state();
    store.commit(&state).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), state.to_file_bytes().as_slice());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    // A stale world-readable temp file is replaced, not written through.
    let tmp = dir.path().join("card.json.tmp");
    std::fs::write(&tmp, b"stale").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    store.commit(&state).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    drop(store);
    // A crash between writing the temp file and renaming it leaves a stale temp file:
    // the card opens with the old state and removes it.
    std::fs::write(dir.path().join("card.json.tmp"), b"{ torn").unwrap();
    let (_, back) = FileStore::open(&path).unwrap();
    assert_eq!(back, state);
    assert!(!dir.path().join("card.json.tmp").exists());
}

#[test]
fn a_file_backed_card_keeps_its_counter_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    create_factory(&path, &ADMIN_KEY).unwrap();
    let mut card = VirtualCard::open(&path).unwrap();
    personalize_with(&mut card, &ADMIN_KEY, &SEED, PIN, PUK, SERIAL);
    tx(&mut card, &host::select());
    tx(&mut card, &host::verify(PIN).unwrap());
    for want in 0..3 {
        assert_eq!(host::parse_otp(&tx(&mut card, &login_apdu(&[1; 16]))).unwrap().0, want);
    }
    tx(&mut card, &host::verify("0000").unwrap());
    drop(card);

    let mut card = VirtualCard::open(&path).unwrap();
    tx(&mut card, &host::select());
    assert_eq!(
        host::parse_verify(&tx(&mut card, &host::verify("0000").unwrap())),
        Err(host::CardError::WrongPin { tries_left: 1 })
    );
    tx(&mut card, &host::verify(PIN).unwrap());
    assert_eq!(host::parse_otp(&tx(&mut card, &login_apdu(&[1; 16]))).unwrap().0, 3);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"counter\": 4"), "{text}");
}

/// Two processes: a running `virtual-card` holds the card file, so a second `virtual-card`
/// on the same file exits with a clear error naming the holder, and so does this process's
/// own attempt to open it. Once the first process is gone the file opens again.
#[test]
fn an_oversized_card_file_is_refused_and_the_largest_state_fits_its_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    create_factory(&path, &ADMIN_KEY).unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&" ".repeat(card_applet::state::STATE_FILE_MAX));
    std::fs::write(&path, text).unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(err.to_string().contains("larger than any card state"), "{err}");

    // The largest possible state serializes well inside the reserved buffer (2 KiB), so the
    // serializer never reallocates (and never leaves a copy of the secrets behind).
    let mut big = golden_state();
    if let Some(p) = big.personal.as_mut() {
        p.serial = "PSIM-00000000000".into();
        p.counter = u64::MAX;
        p.pin = PinBlock::from_pin("12345678").unwrap();
    }
    let bytes = big.to_file_bytes();
    assert!(bytes.len() < 1024, "{}", bytes.len());
    assert_eq!(CardState::from_file_bytes(&bytes, &path).unwrap(), big);

    // The most and largest OATH credentials stay under 32 KiB (the buffer is 40 KiB) and
    // under the 64 KiB a card file may have.
    big.oath = OathState {
        salt: Some([0xFF; 8]),
        access: Some(AccessKey { alg: HashAlg::Sha512, key: Zeroizing::new(vec![0xFF; 128]) }),
        credentials: (0..card_applet::oath::MAX_CREDENTIALS)
            .map(|i| Credential {
                name: format!("{i:02}{}", "n".repeat(62)).into_bytes(),
                kind: OathKind::Totp,
                alg: HashAlg::Sha512,
                digits: 8,
                key: Zeroizing::new(vec![0xFF; 128]),
                touch: true,
                increasing: true,
                counter: u32::MAX,
                last_challenge: Some(vec![0xFF; 64]),
            })
            .collect(),
    };
    let bytes = big.to_file_bytes();
    assert!(bytes.len() < 32 * 1024, "{}", bytes.len());
    assert!(bytes.len() < card_applet::state::STATE_FILE_MAX);
    assert_eq!(CardState::from_file_bytes(&bytes, &path).unwrap(), big);
}

#[test]
fn a_version_1_card_file_becomes_version_2_at_the_first_oath_select() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.json");
    std::fs::write(&path, std::fs::read(testdata("state-v1.json")).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut card = VirtualCard::open(&path).unwrap();
    // PAYSIM works as before and the file stays what it was until something is committed.
    assert_eq!(sw(&tx(&mut card, &host::select())), 0x9000);
    assert!(std::fs::read_to_string(&path).unwrap().contains("\"version\": 1"));
    let mut select = vec![0x00, 0xA4, 0x04, 0x00, 0x07];
    select.extend_from_slice(&card_applet::oath::AID[..7]);
    let resp = tx(&mut card, &select);
    assert_eq!(sw(&resp), 0x9000);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"version\": 2"), "{text}");
    let salt = hex::encode(&data(&resp)[7..15]);
    assert!(text.contains(&format!("\"salt_hex\": \"{salt}\"")), "{text}");
    // The PAYSIM part is what it was.
    let (_, state) = {
        drop(card);
        FileStore::open(&path).unwrap()
    };
    assert_eq!(state.personal, golden_state().personal);
}

#[test]
fn another_name_for_a_running_card_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("cards");
    std::fs::create_dir(&real_dir).unwrap();
    let path = real_dir.join("card.json");
    create_factory(&path, &ADMIN_KEY).unwrap();
    let card = VirtualCard::open(&path).unwrap();

    // A symlink to the file, and a symlinked directory: same card, same lock.
    let file_link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&path, &file_link).unwrap();
    let dir_link = dir.path().join("alias");
    std::os::unix::fs::symlink(&real_dir, &dir_link).unwrap();
    for other in [&file_link, &dir_link.join("card.json")] {
        let err = VirtualCard::open(other).err().unwrap();
        assert!(matches!(err, StoreError::Locked { .. }), "{}: {err}", other.display());
    }
    assert!(matches!(create_factory(&dir_link.join("card.json"), &ADMIN_KEY), Err(StoreError::Locked { .. })));
    drop(card);

    // Opened through the symlink, the card writes the real file and the link stays a link.
    let mut card = VirtualCard::open(&file_link).unwrap();
    personalize_with(&mut card, &ADMIN_KEY, &SEED, PIN, PUK, SERIAL);
    drop(card);
    assert!(std::fs::symlink_metadata(&file_link).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&path).unwrap().contains(SERIAL));

    // A hard link is refused under either name: the rename would cut one name off.
    let hard = dir.path().join("hard.json");
    std::fs::hard_link(&path, &hard).unwrap();
    for name in [&path, &hard] {
        let err = VirtualCard::open(name).err().unwrap();
        assert!(matches!(err, StoreError::Linked { links: 2, .. }), "{err}");
        assert!(err.to_string().contains("exactly one name"), "{err}");
    }
    std::fs::remove_file(&hard).unwrap();
    VirtualCard::open(&path).unwrap();
}
