//! Table tests: every command with every status word it can answer (docs/protocol.md).

// Helpers outside `#[test]` functions unwrap too (clippy.toml covers the tests themselves).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use card_applet::command::DataObject;
use card_applet::host::{self, CardError, PinStatus};
use card_applet::state::MemStore;
use card_applet::{CardFront, Firmware};
use common::*;
use paysim_otp::{login_otp, tx_otp, ChainKey, TxFields, TxVersion};

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Factory card, nothing selected.
    Fresh,
    /// Factory card, applet selected.
    Factory,
    /// Personalized, selected, PIN not verified.
    Locked,
    /// Personalized, selected, PIN verified.
    Unlocked,
    /// As `Unlocked`, on a card running the emulated applet 1.0 (`Firmware::V1_0`).
    OldUnlocked,
}

fn card(kind: Kind) -> CardFront<MemStore> {
    match kind {
        Kind::Fresh => factory(),
        Kind::Factory => {
            let mut c = factory();
            assert_eq!(sw(&tx(&mut c, &host::select())), 0x9000);
            c
        }
        Kind::Locked => {
            let mut c = personalized();
            assert_eq!(sw(&tx(&mut c, &host::select())), 0x9000);
            c
        }
        Kind::Unlocked => unlocked(),
        Kind::OldUnlocked => {
            let mut c = personalized();
            c.card_mut().set_firmware(Firmware::V1_0);
            assert_eq!(sw(&tx(&mut c, &host::select())), 0x9000);
            assert_eq!(sw(&tx(&mut c, &host::verify(PIN).unwrap())), 0x9000);
            c
        }
    }
}

const SELECT: &str = "00 A4 04 00 08 F0 50 41 59 53 49 4D 01 00";
const PIN_OK: &str = "31 32 33 34 FF FF FF FF";
const PIN_BAD: &str = "39 39 39 39 FF FF FF FF";
const PUK_OK: &str = "38 37 36 35 34 33 32 31";
const CH16: &str = "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F";
const VID: &str = "02 03 61 62 63";

/// (what, card, apdu, expected SW)
const TABLE: &[(&str, Kind, &str, u16)] = &[
    // Framing and class/instruction checks, in any state.
    ("empty", Kind::Fresh, "", 0x6700),
    ("3 bytes", Kind::Fresh, "00 A4 04", 0x6700),
    ("Lc disagrees", Kind::Fresh, "00 A4 04 00 09 F0 50 41 59 53 49 4D 01", 0x6700),
    ("extended Lc 0", Kind::Fresh, "00 A4 04 00 00 00 00 00 00", 0x6700),
    ("chaining bit", Kind::Fresh, "10 A4 04 00 08 F0 50 41 59 53 49 4D 01", 0x6884),
    ("CLA A0", Kind::Fresh, "A0 A4 04 00 08 F0 50 41 59 53 49 4D 01", 0x6E00),
    ("CLA 84", Kind::Unlocked, "84 10 00 00 00", 0x6E00),
    ("SELECT under CLA 80", Kind::Fresh, "80 A4 04 00 08 F0 50 41 59 53 49 4D 01", 0x6E00),
    ("LOGIN under CLA 00", Kind::Unlocked, "00 10 00 00 00", 0x6E00),
    ("unknown INS", Kind::Factory, "00 B0 00 00 00", 0x6D00),
    ("unknown proprietary INS", Kind::Factory, "80 B0 00 00 00", 0x6D00),
    // SELECT.
    ("SELECT", Kind::Fresh, SELECT, 0x9000),
    ("SELECT case 3", Kind::Fresh, "00 A4 04 00 08 F0 50 41 59 53 49 4D 01", 0x9000),
    ("SELECT P2 0C", Kind::Fresh, "00 A4 04 0C 08 F0 50 41 59 53 49 4D 01", 0x9000),
    ("SELECT extended", Kind::Fresh, "00 A4 04 00 00 00 08 F0 50 41 59 53 49 4D 01 00 00", 0x9000),
    ("SELECT other AID", Kind::Fresh, "00 A4 04 00 08 F0 50 41 59 53 49 4D 02 00", 0x6A82),
    ("SELECT prefix AID", Kind::Fresh, "00 A4 04 00 07 F0 50 41 59 53 49 4D 00", 0x6A82),
    ("SELECT by FID", Kind::Fresh, "00 A4 00 00 02 3F 00", 0x6A86),
    ("SELECT P2 02", Kind::Fresh, "00 A4 04 02 08 F0 50 41 59 53 49 4D 01", 0x6A86),
    ("SELECT no data", Kind::Fresh, "00 A4 04 00 00", 0x6700),
    ("SELECT AID > 16", Kind::Fresh, "00 A4 04 00 11 F0 50 41 59 53 49 4D 01 01 01 01 01 01 01 01 01", 0x6700),
    // Anything but SELECT before SELECT.
    ("GET DATA unselected", Kind::Fresh, "00 CA DF 05 00", 0x6985),
    ("VERIFY unselected", Kind::Fresh, "00 20 00 81", 0x6985),
    ("GET CHALLENGE unselected", Kind::Fresh, "00 84 00 00 10", 0x6985),
    ("spec errors come first", Kind::Fresh, "00 CA DF 05 01 00", 0x6700),
    // GET RESPONSE without anything waiting.
    ("GET RESPONSE nothing", Kind::Factory, "00 C0 00 00 00", 0x6985),
    ("GET RESPONSE P1", Kind::Factory, "00 C0 01 00 00", 0x6A86),
    ("GET RESPONSE no Le", Kind::Factory, "00 C0 00 00", 0x6700),
    // VERIFY.
    ("VERIFY factory", Kind::Factory, "00 20 00 81 08 31 32 33 34 FF FF FF FF", 0x6985),
    ("VERIFY status factory", Kind::Factory, "00 20 00 81", 0x6985),
    ("VERIFY status", Kind::Locked, "00 20 00 81", 0x63C3),
    ("VERIFY status verified", Kind::Unlocked, "00 20 00 81", 0x9000),
    ("VERIFY right", Kind::Locked, "00 20 00 81 08 31 32 33 34 FF FF FF FF", 0x9000),
    ("VERIFY wrong", Kind::Locked, "00 20 00 81 08 39 39 39 39 FF FF FF FF", 0x63C2),
    ("VERIFY reset", Kind::Unlocked, "00 20 FF 81", 0x9000),
    ("VERIFY reset with data", Kind::Unlocked, "00 20 FF 81 08 31 32 33 34 FF FF FF FF", 0x6700),
    ("VERIFY P2 80", Kind::Locked, "00 20 00 80 08 31 32 33 34 FF FF FF FF", 0x6A86),
    ("VERIFY P1 01", Kind::Locked, "00 20 01 81", 0x6A86),
    ("VERIFY 4 bytes", Kind::Locked, "00 20 00 81 04 31 32 33 34", 0x6700),
    ("VERIFY 3 digits", Kind::Locked, "00 20 00 81 08 31 32 33 FF FF FF FF FF", 0x6A80),
    ("VERIFY digit after FF", Kind::Locked, "00 20 00 81 08 31 32 33 34 FF 35 FF FF", 0x6A80),
    ("VERIFY not digits", Kind::Locked, "00 20 00 81 08 41 42 43 44 FF FF FF FF", 0x6A80),
    // CHANGE REFERENCE DATA.
    ("CHANGE factory", Kind::Factory, "00 24 00 81 10 31 32 33 34 FF FF FF FF 35 36 37 38 FF FF FF FF", 0x6985),
    ("CHANGE right", Kind::Locked, "00 24 00 81 10 31 32 33 34 FF FF FF FF 35 36 37 38 FF FF FF FF", 0x9000),
    ("CHANGE wrong old", Kind::Locked, "00 24 00 81 10 39 39 39 39 FF FF FF FF 35 36 37 38 FF FF FF FF", 0x63C2),
    ("CHANGE 8 bytes", Kind::Locked, "00 24 00 81 08 31 32 33 34 FF FF FF FF", 0x6700),
    ("CHANGE bad new", Kind::Locked, "00 24 00 81 10 31 32 33 34 FF FF FF FF 35 36 37 FF FF FF FF FF", 0x6A80),
    ("CHANGE P1", Kind::Locked, "00 24 01 81 10 31 32 33 34 FF FF FF FF 35 36 37 38 FF FF FF FF", 0x6A86),
    // RESET RETRY COUNTER.
    ("RRC factory", Kind::Factory, "00 2C 00 81 10 38 37 36 35 34 33 32 31 35 36 37 38 FF FF FF FF", 0x6985),
    ("RRC right", Kind::Locked, "00 2C 00 81 10 38 37 36 35 34 33 32 31 35 36 37 38 FF FF FF FF", 0x9000),
    ("RRC wrong PUK", Kind::Locked, "00 2C 00 81 10 30 30 30 30 30 30 30 30 35 36 37 38 FF FF FF FF", 0x63C9),
    ("RRC short PUK", Kind::Locked, "00 2C 00 81 10 38 37 36 35 34 33 32 FF 35 36 37 38 FF FF FF FF", 0x6A80),
    ("RRC bad PIN", Kind::Locked, "00 2C 00 81 10 38 37 36 35 34 33 32 31 35 36 FF FF FF FF FF FF", 0x6A80),
    ("RRC length", Kind::Locked, "00 2C 00 81 08 38 37 36 35 34 33 32 31", 0x6700),
    ("RRC P2", Kind::Locked, "00 2C 00 80 10 38 37 36 35 34 33 32 31 35 36 37 38 FF FF FF FF", 0x6A86),
    // GET DATA.
    ("GET DATA serial factory", Kind::Factory, "00 CA DF 01 00", 0x6A88),
    ("GET DATA PIN tries factory", Kind::Factory, "00 CA DF 03 00", 0x6A88),
    ("GET DATA PUK tries factory", Kind::Factory, "00 CA DF 06 00", 0x6A88),
    ("GET DATA counter factory", Kind::Factory, "00 CA DF 02 00", 0x9000),
    ("GET DATA serial", Kind::Locked, "00 CA DF 01 00", 0x9000),
    ("GET DATA DF08", Kind::Locked, "00 CA DF 08 00", 0x9000),
    ("GET DATA DF08 on applet 1.0", Kind::OldUnlocked, "00 CA DF 08 00", 0x6A88),
    ("GET DATA DF09", Kind::Locked, "00 CA DF 09 00", 0x6A88),
    ("GET DATA 0001", Kind::Locked, "00 CA 00 01 00", 0x6A88),
    ("GET DATA with data", Kind::Locked, "00 CA DF 01 01 00 00", 0x6700),
    ("GET DATA case 1", Kind::Locked, "00 CA DF 01", 0x9000),
    ("GET DATA case 2E", Kind::Locked, "00 CA DF 01 00 00 00", 0x9000),
    ("GET DATA case 2E Le 0100", Kind::Locked, "00 CA DF 02 00 01 00", 0x9000),
    ("GET DATA case 4E", Kind::Locked, "00 CA DF 01 00 00 01 00 00 00", 0x6700),
    ("VERIFY case 3E", Kind::Locked, "00 20 00 81 00 00 08 31 32 33 34 FF FF FF FF", 0x9000),
    ("VERIFY case 4E", Kind::Locked, "00 20 00 81 00 00 08 31 32 33 34 FF FF FF FF 00 00", 0x9000),
    ("VERIFY status case 2E", Kind::Locked, "00 20 00 81 00 00 00", 0x63C3),
    ("CHANGE case 3E", Kind::Locked, "00 24 00 81 00 00 10 31 32 33 34 FF FF FF FF 35 36 37 38 FF FF FF FF", 0x9000),
    // LOGIN OTP (CH16 + VID = 23 bytes).
    (
        "LOGIN factory",
        Kind::Factory,
        concat!("80 10 00 00 17 ", "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F", " 02 03 61 62 63 00"),
        0x6985,
    ),
    (
        "LOGIN locked",
        Kind::Locked,
        concat!("80 10 00 00 17 ", "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F", " 02 03 61 62 63 00"),
        0x6982,
    ),
    (
        "LOGIN",
        Kind::Unlocked,
        concat!("80 10 00 00 17 ", "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F", " 02 03 61 62 63 00"),
        0x9000,
    ),
    (
        "LOGIN tags reversed",
        Kind::Unlocked,
        concat!("80 10 00 00 17 02 03 61 62 63 ", "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F", " 00"),
        0x9000,
    ),
    (
        "LOGIN P1",
        Kind::Unlocked,
        concat!("80 10 01 00 17 ", "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F", " 02 03 61 62 63 00"),
        0x6A86,
    ),
    ("LOGIN no data", Kind::Unlocked, "80 10 00 00 00", 0x6700),
    (
        "LOGIN no verifier",
        Kind::Unlocked,
        concat!("80 10 00 00 12 ", "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F", " 00"),
        0x6A80,
    ),
    (
        "LOGIN challenge 15",
        Kind::Unlocked,
        "80 10 00 00 16 01 0F 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 02 03 61 62 63 00",
        0x6A80,
    ),
    (
        "LOGIN empty verifier",
        Kind::Unlocked,
        concat!("80 10 00 00 14 ", "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F", " 02 00 00"),
        0x6A80,
    ),
    (
        "LOGIN verifier not UTF-8",
        Kind::Unlocked,
        concat!("80 10 00 00 17 ", "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F", " 02 03 61 FF 63 00"),
        0x6A80,
    ),
    (
        "LOGIN unknown tag",
        Kind::Unlocked,
        concat!(
            "80 10 00 00 1A ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 09 01 00 00"
        ),
        0x6A80,
    ),
    (
        "LOGIN repeated tag",
        Kind::Unlocked,
        concat!(
            "80 10 00 00 1C ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 02 03 61 62 63 00"
        ),
        0x6A80,
    ),
    (
        "LOGIN truncated TLV",
        Kind::Unlocked,
        concat!("80 10 00 00 17 ", "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F", " 02 05 61 62 63 00"),
        0x6A80,
    ),
    ("LOGIN constructed", Kind::Unlocked, "80 10 00 00 04 21 02 01 00 00", 0x6A80),
    // TRANSACTION OTP: CH16 VID 05 02 "T1" 06 08 amount 07 03 "EUR" 08 01 "P".
    (
        "TX",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 2D ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 00"
        ),
        0x9000,
    ),
    (
        "TX v2",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 35 ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 09 01 53 0A 03 42 6F 62 00"
        ),
        0x9000,
    ),
    (
        "TX v2 on applet 1.0",
        Kind::OldUnlocked,
        concat!(
            "80 12 00 00 35 ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 09 01 53 0A 03 42 6F 62 00"
        ),
        0x6A80,
    ),
    (
        "TX v1 on applet 1.0",
        Kind::OldUnlocked,
        concat!(
            "80 12 00 00 2D ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 00"
        ),
        0x9000,
    ),
    (
        "TX source without name",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 30 ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 09 01 53 00"
        ),
        0x6A80,
    ),
    (
        "TX name without source",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 32 ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 0A 03 42 6F 62 00"
        ),
        0x6A80,
    ),
    (
        "TX v2 empty name",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 32 ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 09 01 53 0A 00 00"
        ),
        0x6A80,
    ),
    (
        "TX v2 empty source",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 34 ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 09 00 0A 03 42 6F 62 00"
        ),
        0x6A80,
    ),
    (
        "TX v2 name not UTF-8",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 34 ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 09 01 53 0A 02 C3 28 00"
        ),
        0x6A80,
    ),
    (
        "TX v2 repeated name",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 3A ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 09 01 53 0A 03 42 6F 62 0A 03 42 6F 62 00"
        ),
        0x6A80,
    ),
    (
        "TX v2 locked",
        Kind::Locked,
        concat!(
            "80 12 00 00 35 ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 09 01 53 0A 03 42 6F 62 00"
        ),
        0x6982,
    ),
    (
        "TX locked",
        Kind::Locked,
        concat!(
            "80 12 00 00 2D ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 00"
        ),
        0x6982,
    ),
    (
        "TX factory",
        Kind::Factory,
        concat!(
            "80 12 00 00 2D ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 00"
        ),
        0x6985,
    ),
    (
        "TX lower-case currency",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 2D ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 65 75 72 08 01 50 00"
        ),
        0x6A80,
    ),
    (
        "TX amount 7 bytes",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 2C ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 07 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 00"
        ),
        0x6A80,
    ),
    (
        "TX no payee",
        Kind::Unlocked,
        concat!(
            "80 12 00 00 2A ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 00"
        ),
        0x6A80,
    ),
    (
        "TX P2",
        Kind::Unlocked,
        concat!(
            "80 12 00 01 2D ",
            "01 10 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F",
            " 02 03 61 62 63 05 02 54 31 06 08 00 00 00 00 00 00 30 39 07 03 45 55 52 08 01 50 00"
        ),
        0x6A86,
    ),
    // Admin.
    ("GET CHALLENGE", Kind::Factory, "00 84 00 00 10", 0x9000),
    ("GET CHALLENGE P1", Kind::Factory, "00 84 01 00 10", 0x6A86),
    ("GET CHALLENGE data", Kind::Factory, "00 84 00 00 01 00 10", 0x6700),
    (
        "EXTERNAL AUTH without challenge",
        Kind::Factory,
        concat!(
            "00 82 00 00 20 ",
            "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        ),
        0x6985,
    ),
    ("EXTERNAL AUTH 16 bytes", Kind::Factory, "00 82 00 00 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00", 0x6700),
    (
        "EXTERNAL AUTH P2",
        Kind::Factory,
        concat!(
            "00 82 00 01 20 ",
            "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        ),
        0x6A86,
    ),
    (
        "PERSONALIZE unauthenticated",
        Kind::Factory,
        concat!(
            "80 E2 00 00 20 ",
            "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
        ),
        0x6982,
    ),
    (
        "PERSONALIZE 17 bytes",
        Kind::Factory,
        "80 E2 00 00 11 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
        0x6700,
    ),
    ("PERSONALIZE under CLA 00", Kind::Factory, "00 E2 00 00 01 00", 0x6E00),
];

#[test]
fn every_row_of_the_status_word_table() {
    let _ = (CH16, VID, PIN_OK, PIN_BAD, PUK_OK);
    let mut failures = Vec::new();
    for (what, kind, apdu, want) in TABLE {
        let mut c = card(*kind);
        let resp = c.process(&hexs(apdu));
        // 61xx means data is waiting: the SW that counts is the final one.
        let resp = if resp.len() >= 2 && resp[resp.len() - 2] == 0x61 {
            let mut all = data(&resp).to_vec();
            all.extend(tx(&mut c, &host::get_response(resp[resp.len() - 1])));
            all
        } else {
            resp
        };
        if sw(&resp) != *want {
            failures.push(format!("{what} ({kind:?}): got {:04X}, want {want:04X}", sw(&resp)));
        }
        // No error answer carries data.
        if sw(&resp) != 0x9000 {
            assert_eq!(resp.len(), 2, "{what}: error with data");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn select_answers_the_fci() {
    let mut c = factory();
    let resp = tx(&mut c, &hexs(SELECT));
    assert_eq!(
        hex::encode_upper(&resp),
        "6F1A".to_owned() + "8408F050415953494D01" + "A50EDF05020101DF040103DF080201029000"
    );
    let fci = host::parse_select(&resp).unwrap();
    assert_eq!((fci.version, fci.life_cycle, fci.serial.as_deref()), ([1, 1], 0x03, None));
    assert_eq!(fci.tx_versions, [TxVersion::V1, TxVersion::V2]);
    assert!(!fci.personalized());

    let mut c = personalized();
    let fci = host::parse_select(&tx(&mut c, &host::select())).unwrap();
    assert_eq!((fci.life_cycle, fci.serial.as_deref()), (0x05, Some(SERIAL)));
    assert!(fci.personalized());

    // P2 0C: selected, no FCI.
    let resp = c.process(&hexs("00 A4 04 0C 08 F0 50 41 59 53 49 4D 01"));
    assert_eq!(resp, [0x90, 0x00]);
}

#[test]
fn selecting_another_aid_keeps_the_applet_selected_and_reselecting_clears_the_pin() {
    let mut c = unlocked();
    assert_eq!(sw(&c.process(&hexs("00 A4 04 00 08 F0 50 41 59 53 49 4D 02"))), 0x6A82);
    assert_eq!(host::parse_pin_status(&tx(&mut c, &host::verify_status())).unwrap(), PinStatus::Verified);
    tx(&mut c, &host::select());
    assert_eq!(
        host::parse_pin_status(&tx(&mut c, &host::verify_status())).unwrap(),
        PinStatus::NotVerified { tries_left: 3 }
    );
}

#[test]
fn get_data_values() {
    let mut c = factory();
    tx(&mut c, &host::select());
    assert_eq!(host::parse_byte(&tx(&mut c, &host::get_data(DataObject::LifeCycle))).unwrap(), 0x03);
    assert_eq!(host::parse_counter(&tx(&mut c, &host::get_data(DataObject::NextCounter))).unwrap(), 0);
    assert_eq!(host::parse_byte(&tx(&mut c, &host::get_data(DataObject::AdminTries))).unwrap(), 10);
    assert_eq!(host::parse_get_data(&tx(&mut c, &host::get_data(DataObject::Serial))), Err(CardError::DataNotFound));

    let mut c = unlocked();
    let get = |c: &mut CardFront<MemStore>, o| tx(c, &host::get_data(o));
    assert_eq!(host::parse_serial(&get(&mut c, DataObject::Serial)).unwrap(), SERIAL);
    assert_eq!(host::parse_byte(&get(&mut c, DataObject::PinTries)).unwrap(), 3);
    assert_eq!(host::parse_byte(&get(&mut c, DataObject::PukTries)).unwrap(), 10);
    assert_eq!(host::parse_byte(&get(&mut c, DataObject::LifeCycle)).unwrap(), 0x05);
    assert_eq!(host::parse_get_data(&get(&mut c, DataObject::AppletVersion)).unwrap(), [1, 1]);
    assert_eq!(host::parse_get_tx_versions(&get(&mut c, DataObject::TxVersions)).unwrap(), TxVersion::ALL);
    tx(&mut c, &login_apdu(&[1; 16]));
    tx(&mut c, &login_apdu(&[1; 16]));
    assert_eq!(host::parse_counter(&get(&mut c, DataObject::NextCounter)).unwrap(), 2);
}

#[test]
fn otp_answers_match_the_algorithm_and_the_counter_moves() {
    let mut c = unlocked();
    let ck0 = ChainKey::from_bytes(SEED);
    let challenge = [0x42u8; 32];
    let (i, code) = host::parse_otp(&tx(&mut c, &login_apdu(&challenge))).unwrap();
    assert_eq!(i, 0);
    assert_eq!(code, login_otp(&ck0, 0, &challenge, VERIFIER.as_bytes()));

    let fields = TxFields {
        version: paysim_otp::TxVersion::V1,
        source: b"",
        payee_name: b"",
        verifier_id: VERIFIER.as_bytes(),
        transaction_id: b"transfer-77",
        amount_minor: 12_345,
        currency: b"EUR",
        payee: b"DE89370400440532013000",
    };
    let resp = tx(&mut c, &host::tx_otp(&challenge, &fields).unwrap());
    // 03 08 counter 04 08 digits 90 00
    assert_eq!(&resp[..10], &[0x03, 0x08, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(&resp[10..12], &[0x04, 0x08]);
    let (i, code) = host::parse_otp(&resp).unwrap();
    assert_eq!(i, 1);
    assert_eq!(code, tx_otp(&ck0.next(), 1, &challenge, &fields));
    assert_eq!(c.card().state().personal.as_ref().unwrap().counter, 2);
    assert_eq!(c.card().state().personal.as_ref().unwrap().chain_key, ck0.advance(2));
}

#[test]
fn host_errors_are_typed() {
    let mut c = personalized();
    tx(&mut c, &host::select());
    assert_eq!(host::parse_otp(&tx(&mut c, &login_apdu(&[1; 16]))).unwrap_err(), CardError::SecurityNotSatisfied);
    assert_eq!(
        host::parse_verify(&tx(&mut c, &host::verify("0000").unwrap())),
        Err(CardError::WrongPin { tries_left: 2 })
    );
    assert_eq!(
        host::parse_reset_retry_counter(&tx(&mut c, &host::reset_retry_counter("00000000", "1111").unwrap())),
        Err(CardError::WrongPuk { tries_left: 9 })
    );
    let mut f = factory();
    tx(&mut f, &host::select());
    assert_eq!(host::parse_otp(&tx(&mut f, &login_apdu(&[1; 16]))).unwrap_err(), CardError::NotPersonalized);
    assert_eq!(host::parse_verify(&tx(&mut f, &host::verify("1234").unwrap())), Err(CardError::NotPersonalized));
    assert_eq!(host::parse_select(&[0x6A, 0x82]), Err(CardError::AppletNotFound));
    assert!(matches!(host::parse_otp(&[0x90]), Err(CardError::Malformed(_))));
    assert!(matches!(host::parse_otp(&[0x03, 0x01, 0x00, 0x90, 0x00]), Err(CardError::Malformed(_))));
    // Request checks happen before any card sees the command.
    assert!(host::login_otp(&[0; 15], VERIFIER).is_err());
    assert!(host::login_otp(&[0; 33], VERIFIER).is_err());
    assert!(host::login_otp(&[0; 16], "").is_err());
    assert!(host::verify("12a4").is_err());
    assert!(host::reset_retry_counter("1234567", "1234").is_err());
}

#[test]
fn change_pin_then_the_old_one_is_wrong() {
    let mut c = personalized();
    tx(&mut c, &host::select());
    host::parse_change_pin(&tx(&mut c, &host::change_pin(PIN, "24680135").unwrap())).unwrap();
    // The change proves the PIN: OTPs work straight away.
    assert!(host::parse_otp(&tx(&mut c, &login_apdu(&[3; 16]))).is_ok());
    tx(&mut c, &host::select());
    assert_eq!(
        host::parse_verify(&tx(&mut c, &host::verify(PIN).unwrap())),
        Err(CardError::WrongPin { tries_left: 2 })
    );
    host::parse_verify(&tx(&mut c, &host::verify("24680135").unwrap())).unwrap();
    assert_eq!(c.card().state().personal.as_ref().unwrap().pin_tries, 3);
}

#[test]
fn apdu_builders_spell_the_documented_bytes() {
    assert_eq!(hex::encode_upper(host::select()), "00A4040008F050415953494D0100");
    assert_eq!(hex::encode_upper(host::verify("1234").unwrap().as_slice()), "002000810831323334FFFFFFFF");
    assert_eq!(hex::encode_upper(host::verify_status()), "00200081");
    assert_eq!(hex::encode_upper(host::get_data(DataObject::NextCounter)), "00CADF0200");
    assert_eq!(
        hex::encode_upper(host::login_otp(&[0xAB; 16], "v").unwrap()),
        "8010000015".to_owned() + "0110" + &"AB".repeat(16) + "020176" + "00"
    );
}

#[test]
fn transceive_stops_on_a_card_that_never_stops_chaining() {
    let mut calls = 0;
    let mut endless = |_: &[u8]| {
        calls += 1;
        let mut r = vec![0xAA; 256];
        r.extend_from_slice(&[0x61, 0x00]);
        Ok::<_, std::convert::Infallible>(r)
    };
    let resp = host::transceive(&host::select(), &mut endless).unwrap();
    assert!(calls <= 300, "{calls} calls");
    assert!(matches!(host::parse_select(&resp), Err(CardError::Status(0x6100))));
}

/// An emulated applet 1.0: reports 1.0, announces nothing (so hosts read "version 1 only"),
/// still signs version 1, and refuses version 2.
#[test]
fn an_old_card_announces_version_1_only_and_refuses_version_2() {
    let mut c = personalized();
    c.card_mut().set_firmware(Firmware::V1_0);
    let fci = host::parse_select(&tx(&mut c, &host::select())).unwrap();
    assert_eq!((fci.version, fci.tx_versions.as_slice()), ([1, 0], &[TxVersion::V1][..]));
    assert_eq!(fci.best_tx_version(), TxVersion::V1);
    assert_eq!(
        host::parse_get_tx_versions(&tx(&mut c, &host::get_data(DataObject::TxVersions))).unwrap(),
        [TxVersion::V1]
    );
    assert_eq!(host::parse_get_data(&tx(&mut c, &host::get_data(DataObject::AppletVersion))).unwrap(), [1, 0]);
    assert_eq!(sw(&tx(&mut c, &host::verify(PIN).unwrap())), 0x9000);
    let v2 = TxFields {
        version: TxVersion::V2,
        verifier_id: VERIFIER.as_bytes(),
        transaction_id: b"t-1",
        amount_minor: 5,
        currency: b"EUR",
        source: b"ACC-A",
        payee: b"ACC-B",
        payee_name: "Zoë".as_bytes(),
    };
    let resp = tx(&mut c, &host::tx_otp(&[7; 16], &v2).unwrap());
    assert_eq!(host::parse_otp(&resp).unwrap_err(), CardError::BadData);
    // Refused before the chain moved: the next code is still step 0, and v1 still works.
    let v1 = TxFields { version: TxVersion::V1, ..v2.clone() };
    let (i, code) = host::parse_otp(&tx(&mut c, &host::tx_otp(&[7; 16], &v1).unwrap())).unwrap();
    assert_eq!(i, 0);
    assert_eq!(code, tx_otp(&ChainKey::from_bytes(SEED), 0, &[7; 16], &v1));
}

/// The longest name (70 four-byte characters, 280 bytes) goes in an extended APDU and is
/// signed; one byte more is refused by the host builder and by the card.
#[test]
fn a_payee_name_of_280_bytes_is_signed_and_281_refused() {
    let mut c = unlocked();
    let long = "\u{1F600}".repeat(70);
    assert_eq!(long.len(), 280);
    let f = TxFields {
        version: TxVersion::V2,
        verifier_id: VERIFIER.as_bytes(),
        transaction_id: b"t-1",
        amount_minor: 5,
        currency: b"EUR",
        source: b"ACC-A",
        payee: b"ACC-B",
        payee_name: long.as_bytes(),
    };
    let apdu = host::tx_otp(&[7; 16], &f).unwrap();
    assert_eq!(apdu[4], 0x00, "extended Lc");
    let (i, code) = host::parse_otp(&tx(&mut c, &apdu)).unwrap();
    assert_eq!(code, tx_otp(&ChainKey::from_bytes(SEED), i, &[7; 16], &f));
    let longer = format!("{long}a");
    let g = TxFields { payee_name: longer.as_bytes(), ..f.clone() };
    assert_eq!(host::tx_otp(&[7; 16], &g), Err(host::RequestError::PayeeName));
    // Built by hand, the card refuses it too.
    let mut data = apdu[7..apdu.len() - 2].to_vec();
    let name_at = data.len() - 280 - 4;
    data.truncate(name_at);
    data.extend_from_slice(&[0x0A, 0x82, 0x01, 0x19]);
    data.extend_from_slice(longer.as_bytes());
    let built = card_applet::apdu::build(0x80, 0x12, 0, 0, &data, Some(256)).unwrap();
    assert_eq!(sw(&c.process(&built)), 0x6A80);
}
