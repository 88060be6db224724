//! The APDU-sequence harness shared by the libFuzzer target (`fuzz_targets/apdu_sequence.rs`)
//! and the stable test suite (`card-applet/tests/fuzz_harness.rs`, which runs it under
//! proptest and on hand-written inputs), so the target is compiled and exercised by every
//! `cargo test -p card-applet`. Only `std` and the public API of `card_applet`'s no_std core
//! are used (the fuzz crate depends on it without features).
//!
//! One personalized card runs on a simulated disk that can tear any write. The input is a
//! sequence of records, repeated until the bytes run out:
//!
//! ```text
//! op (1 byte) ‖ len (1 byte) ‖ len bytes
//! op % 16:  0-3  send the bytes as an APDU (to whichever applet is selected)
//!           4    reset (PIN and admin session forgotten)
//!           5    SELECT
//!           6    VERIFY with the current PIN
//!           7    LOGIN OTP, the bytes as challenge
//!           8    TRANSACTION OTP, challenge and amount from the bytes
//!           9    the next write fails: lost (first byte even) or landed but reported failed
//!           10   power loss: restart the card from what the disk holds
//!           11   admin authentication and PERSONALIZE with a seed from the bytes
//!           12   SELECT the YKOATH applet
//!           13   PUT the HOTP credential "h", key from the bytes, touch if the first byte is odd
//!           14   CALCULATE "h" (the bytes as the challenge, which HOTP ignores)
//!           15   by the first byte % 4: SET CODE (key from the bytes), SELECT + VALIDATE with
//!                the card's access key, remove the access code, flip the touch policy
//! ```
//!
//! Checked after every step (any failure panics, which both drivers report):
//! - every answer ends in a status word, and an error answer carries no data;
//! - no counter of a chain is emitted twice, and each is above the ones before;
//! - when a code leaves the card, the disk already holds a later step (commit before answer);
//! - codes of LOGIN/TRANSACTION OTP steps are the PAYSIM-1 codes of the chain the card was
//!   personalized with;
//! - after a restart the disk's counter is past every code emitted;
//! - YKOATH: an HOTP code is RFC 4226's for the card's key and the count just used, that count
//!   is already on the disk when the code leaves, no (key, count) comes out twice, a denied
//!   touch gives `6982` with nothing committed, and VALIDATE with the card's key succeeds;
//! - at the end, after a reset, SELECT and GET DATA still answer (the card cannot be wedged),
//!   and the YKOATH applet selects, refuses LIST while an access code is set, and opens
//!   with VALIDATE.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use card_applet::command::DataObject;
use card_applet::host::admin::{AdminSession, Personalization};
use card_applet::host::{self};
use card_applet::state::{CardState, Store};
use card_applet::{Card, CardFront, TouchPolicy};
use paysim_otp::{hmac, hotp, login_otp, tx_otp, ChainKey, HashAlg, TxFields};

const ADMIN_KEY: [u8; 32] = [0xA0; 32];
const PIN: &str = "1234";
const PUK: &str = "87654321";
const VERIFIER: &str = "https://bank.example:443";

/// What one run did, so tests can check that an input reached the paths it was meant to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Codes that left the card (any command).
    pub codes: usize,
    /// Codes checked against the algorithm.
    pub checked_codes: usize,
    /// Writes that failed on purpose.
    pub torn_writes: usize,
    /// Restarts from the disk.
    pub restarts: usize,
    /// Successful (re-)personalizations after the first.
    pub personalizations: usize,
    /// HOTP codes from the YKOATH applet, each checked against RFC 4226.
    pub oath_codes: usize,
    /// YKOATH CALCULATEs refused because the touch was denied.
    pub denied_touches: usize,
    /// Successful VALIDATEs.
    pub validations: usize,
}

struct DiskInner {
    durable: CardState,
    /// `Some(landed)`: the next write fails; if `landed`, it reached the disk anyway.
    fail_next: Option<bool>,
    torn: usize,
}

/// A disk shared between the harness and the card's store.
#[derive(Clone)]
struct Disk(Rc<RefCell<DiskInner>>);

/// The error of a write the input made fail.
struct TornWrite;

impl std::fmt::Display for TornWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fuzz disk: write torn")
    }
}

impl Store for Disk {
    type Error = TornWrite;

    fn commit(&mut self, state: &CardState) -> Result<(), TornWrite> {
        let mut d = self.0.borrow_mut();
        match d.fail_next.take() {
            Some(landed) => {
                d.torn += 1;
                if landed {
                    d.durable = state.clone();
                }
                Err(TornWrite)
            }
            None => {
                d.durable = state.clone();
                Ok(())
            }
        }
    }
}

impl Disk {
    fn counter(&self) -> Option<u64> {
        self.0.borrow().durable.personal.as_ref().map(|p| p.counter)
    }
}

fn counting_random() -> card_applet::card::RandomSource {
    let mut n = 0u8;
    Box::new(move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            *b = n;
            n = n.wrapping_add(1);
        }
        true
    })
}

fn boot(disk: &Disk) -> CardFront<Disk> {
    let state = disk.0.borrow().durable.clone();
    CardFront::new(Card::with_random(disk.clone(), state, counting_random()))
}

fn send(card: &mut CardFront<Disk>, apdu: &[u8]) -> Vec<u8> {
    match host::transceive(apdu, &mut |a: &[u8]| Ok::<_, std::convert::Infallible>(card.process(a))) {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

fn sw(resp: &[u8]) -> u16 {
    match resp {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => panic!("an answer without a status word: {resp:02X?}"),
    }
}

/// Runs the admin protocol; `true` if the card is now personalized with `seed`.
fn personalize(card: &mut CardFront<Disk>, seed: &[u8; 32]) -> bool {
    if sw(&send(card, &host::select())) != 0x9000 {
        return false;
    }
    let mut s = AdminSession::with_host_challenge(&ADMIN_KEY, [0x11; 16]);
    let Ok(auth) = s.external_authenticate(&send(card, &AdminSession::get_challenge())) else {
        return false; // admin key blocked by earlier random EXTERNAL AUTHENTICATEs
    };
    if s.check_authenticated(&send(card, &auth)).is_err() {
        return false;
    }
    let p = Personalization { seed, pin: PIN, puk: PUK, serial: "FUZZ-1" };
    let Ok(cmd) = s.personalize(&p) else { return false };
    s.check_personalized(&send(card, &cmd)).is_ok()
}

/// The chain the card runs, as far as the harness knows it.
struct Chain {
    seed: [u8; 32],
    /// Counters emitted from this chain.
    seen: BTreeSet<u64>,
    /// A cursor (i, ck_i) to recompute codes without walking from the seed each time.
    cursor: (u64, ChainKey),
}

impl Chain {
    fn new(seed: [u8; 32]) -> Self {
        Self { seed, seen: BTreeSet::new(), cursor: (0, ChainKey::from_bytes(seed)) }
    }

    /// Records that counter `i` was emitted; returns `ck_i`.
    fn emitted(&mut self, i: u64) -> ChainKey {
        assert!(self.seen.insert(i), "counter {i} emitted twice");
        assert!(self.seen.last() == Some(&i), "counter {i} below one emitted before");
        let (at, ck) = &self.cursor;
        let steps = i.checked_sub(*at).unwrap_or_else(|| panic!("counter {i} before the cursor {at}"));
        let ck = ck.advance(steps);
        self.cursor = (i, ck.clone());
        ck
    }
}

/// Runs one input. Panics on any broken invariant.
pub fn run(data: &[u8]) -> Stats {
    let mut stats = Stats::default();
    let disk =
        Disk(Rc::new(RefCell::new(DiskInner { durable: CardState::factory(&ADMIN_KEY), fail_next: None, torn: 0 })));
    let mut card = boot(&disk);
    let mut chain = Chain::new([0x5E; 32]);
    let mut emitted: BTreeSet<(Vec<u8>, u32)> = BTreeSet::new();
    assert!(personalize(&mut card, &chain.seed), "the first personalization must work");

    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        // Known inputs of an OTP step, to recompute its code: (challenge, fields of a TX).
        let mut known: Option<(Vec<u8>, Option<u64>)> = None;
        let resp = match op % 16 {
            0..=3 => {
                // A raw PUT or RESET may replace the credential: its counts start again.
                if matches!(bytes.get(1), Some(0x01 | 0x04)) {
                    emitted.clear();
                }
                card.process(bytes)
            }
            4 => {
                card.reset();
                continue;
            }
            5 => card.process(&host::select()),
            6 => match host::verify(PIN) {
                Ok(apdu) => card.process(&apdu),
                Err(e) => panic!("{e}"),
            },
            7 => match host::login_otp(bytes, VERIFIER) {
                Ok(apdu) => {
                    known = Some((bytes.to_vec(), None));
                    send(&mut card, &apdu)
                }
                Err(_) => card.process(bytes),
            },
            8 => {
                let mut challenge = bytes.to_vec();
                challenge.resize(challenge.len().clamp(16, 32), 0);
                let amount = bytes.iter().fold(0u64, |a, &b| a.rotate_left(8) ^ u64::from(b));
                let fields = tx_fields(amount);
                match host::tx_otp(&challenge, &fields) {
                    Ok(apdu) => {
                        known = Some((challenge, Some(amount)));
                        send(&mut card, &apdu)
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            9 => {
                disk.0.borrow_mut().fail_next = Some(bytes.first().is_some_and(|b| b % 2 == 1));
                continue;
            }
            10 => {
                disk.0.borrow_mut().fail_next = None;
                card = boot(&disk);
                stats.restarts += 1;
                if let (Some(on_disk), Some(max)) = (disk.counter(), chain.seen.last()) {
                    assert!(on_disk > *max, "restarted at {on_disk}, but {max} was already emitted");
                }
                if let Some((key, next, _)) = hotp_cred(&card) {
                    let max = emitted.iter().filter(|(k, _)| *k == key).map(|(_, c)| *c).max();
                    assert!(max.is_none_or(|m| next > m), "HOTP restarted at {next}, but {max:?} was emitted");
                }
                continue;
            }
            op @ 12..=15 => match oath_step(op, bytes, &mut card, &disk, &mut emitted, &mut stats) {
                Some(resp) => resp,
                None => continue,
            },
            _ => {
                // Personalization is not torn here (the OTP and PIN commands are).
                disk.0.borrow_mut().fail_next = None;
                let mut seed = [0u8; 32];
                for (s, b) in seed.iter_mut().zip(bytes.iter().cycle()) {
                    *s = *b;
                }
                if personalize(&mut card, &seed) {
                    chain = Chain::new(seed);
                    stats.personalizations += 1;
                }
                continue;
            }
        };
        assert!(resp.len() >= 2, "every answer ends in a status word");
        if sw(&resp) != 0x9000 && sw(&resp) >> 8 != 0x61 {
            assert_eq!(resp.len(), 2, "an error answer with data: {resp:02X?}");
        }
        if let Ok((i, code)) = host::parse_otp(&resp) {
            stats.codes += 1;
            let on_disk = disk.counter().unwrap_or(0);
            assert!(on_disk > i, "code {i} left the card while the disk holds step {on_disk}");
            let ck = chain.emitted(i);
            if let Some((challenge, amount)) = known {
                let want = match amount {
                    None => login_otp(&ck, i, &challenge, VERIFIER.as_bytes()),
                    Some(a) => tx_otp(&ck, i, &challenge, &tx_fields(a)),
                };
                assert!(code == want, "code of step {i} is not the PAYSIM-1 code");
                stats.checked_codes += 1;
            }
        }
    }
    stats.torn_writes = disk.0.borrow().torn;

    disk.0.borrow_mut().fail_next = None;
    card.reset();
    assert_eq!(sw(&send(&mut card, &host::select())), 0x9000, "SELECT after reset");
    let counter = host::parse_counter(&send(&mut card, &host::get_data(DataObject::NextCounter)))
        .unwrap_or_else(|e| panic!("GET DATA after reset: {e}"));
    if let Some(max) = chain.seen.last() {
        assert!(counter > *max, "the card's counter {counter} is not past the emitted {max}");
    }
    card.reset();
    oath_still_answers(&mut card);
    stats
}

/// SELECT of the YKOATH applet with the 7-byte AID, as ykman sends it (no Le).
fn select_oath() -> Vec<u8> {
    let mut a = vec![0x00, 0xA4, 0x04, 0x00, 0x07];
    a.extend_from_slice(&card_applet::oath::AID[..7]);
    a
}

fn oath_apdu(ins: u8, p2: u8, data: &[u8]) -> Vec<u8> {
    card_applet::apdu::build(0x00, ins, 0x00, p2, data, Some(256)).unwrap_or_default()
}

fn tlv(t: u8, v: &[u8]) -> Vec<u8> {
    let mut out = vec![t, u8::try_from(v.len()).unwrap_or(0)];
    out.extend_from_slice(v);
    out
}

/// The value of the first `tag` in a flat YKOATH answer.
fn find_tlv(data: &[u8], tag: u8) -> Option<Vec<u8>> {
    let mut rest = data;
    while let [t, l, tail @ ..] = rest {
        let len = usize::from(*l);
        let value = tail.get(..len)?;
        if *t == tag {
            return Some(value.to_vec());
        }
        rest = &tail[len..];
    }
    None
}

/// The credential "h" as the card holds it in memory: (key, next count, touch).
fn hotp_cred(card: &CardFront<Disk>) -> Option<(Vec<u8>, u32, bool)> {
    let oath = &card.card().state().oath;
    oath.find(b"h").map(|i| {
        let c = &oath.credentials[i];
        (c.key.to_vec(), c.counter, c.touch)
    })
}

fn durable_count(disk: &Disk) -> Option<u32> {
    let d = disk.0.borrow();
    d.durable.oath.find(b"h").map(|i| d.durable.oath.credentials[i].counter)
}

/// One YKOATH step of the input (ops 12-15); returns the answer to check, if any.
fn oath_step(
    op: u8,
    bytes: &[u8],
    card: &mut CardFront<Disk>,
    disk: &Disk,
    emitted: &mut BTreeSet<(Vec<u8>, u32)>,
    stats: &mut Stats,
) -> Option<Vec<u8>> {
    match op {
        12 => Some(card.process(&select_oath())),
        13 => {
            let key: Vec<u8> = if bytes.is_empty() { vec![0x55] } else { bytes.iter().copied().take(64).collect() };
            let touch = bytes.first().is_some_and(|b| b % 2 == 1);
            let mut k = vec![0x11, 6];
            k.extend_from_slice(&key);
            let mut data = [tlv(0x71, b"h"), tlv(0x73, &k)].concat();
            if touch {
                data.extend_from_slice(&[0x78, 0x02]);
            }
            // A new credential starts its counts again.
            emitted.clear();
            Some(card.process(&oath_apdu(0x01, 0, &data)))
        }
        14 => {
            let before = hotp_cred(card);
            let durable_before = durable_count(disk);
            let challenge = &bytes[..bytes.len().min(64)];
            let resp = send(card, &oath_apdu(0xA2, 1, &[tlv(0x71, b"h"), tlv(0x74, challenge)].concat()));
            let denied = before.as_ref().is_some_and(|(_, _, touch)| *touch)
                && card.card().touch_policy() == TouchPolicy::Deny
                && card.card().selected() == card_applet::Applet::Oath;
            match sw(&resp) {
                0x9000 => {
                    assert!(!denied, "a code came out with the touch denied");
                    let (key, next, _) = hotp_cred(card).unwrap_or_else(|| panic!("a code for a missing credential"));
                    let used = next.checked_sub(1).unwrap_or_else(|| panic!("a code without a count used"));
                    let on_disk = durable_count(disk).unwrap_or(0);
                    assert!(on_disk > used, "HOTP count {used} left the card while the disk holds {on_disk}");
                    let value = find_tlv(&resp[..resp.len() - 2], 0x76).unwrap_or_else(|| panic!("no 76: {resp:02X?}"));
                    let code = format!("{:06}", u32::from_be_bytes(value[1..5].try_into().unwrap_or_default()));
                    assert_eq!(code, hotp(HashAlg::Sha1, &key, u64::from(used), 6), "HOTP count {used}");
                    assert!(emitted.insert((key, used)), "HOTP count {used} emitted twice");
                    stats.oath_codes += 1;
                }
                0x6982 if denied => {
                    assert_eq!(hotp_cred(card), before, "a denied touch changed the credential");
                    assert_eq!(durable_count(disk), durable_before, "a denied touch committed a count");
                    stats.denied_touches += 1;
                }
                _ => {}
            }
            Some(resp)
        }
        _ => match bytes.first().map_or(0, |b| b % 4) {
            0 => {
                let key: Vec<u8> = bytes.iter().copied().skip(1).take(16).chain([0x01]).collect();
                let mut k = vec![0x21];
                k.extend_from_slice(&key);
                let ch = [0x0C; 8];
                let data = [tlv(0x73, &k), tlv(0x74, &ch), tlv(0x75, &hmac(HashAlg::Sha1, &key, &ch))].concat();
                Some(card.process(&oath_apdu(0x03, 0, &data)))
            }
            1 => {
                let select = card.process(&select_oath());
                let access = card.card().state().oath.access.clone();
                let (Some(access), Some(challenge)) = (access, find_tlv(&select, 0x74)) else {
                    return Some(select);
                };
                let response = hmac(access.alg, &access.key, &challenge);
                let host = [0x0D; 8];
                let resp = card.process(&oath_apdu(0xA3, 0, &[tlv(0x75, &response), tlv(0x74, &host)].concat()));
                assert_eq!(sw(&resp), 0x9000, "VALIDATE with the card's own key failed");
                assert_eq!(find_tlv(&resp, 0x75), Some(hmac(access.alg, &access.key, &host)));
                stats.validations += 1;
                Some(resp)
            }
            2 => Some(card.process(&[0x00, 0x03, 0x00, 0x00, 0x02, 0x73, 0x00])),
            _ => {
                let flipped = match card.card().touch_policy() {
                    TouchPolicy::Allow => TouchPolicy::Deny,
                    TouchPolicy::Deny => TouchPolicy::Allow,
                };
                card.card_mut().set_touch_policy(flipped);
                None
            }
        },
    }
}

/// The end of a run: the YKOATH applet still selects; while the card holds an access code,
/// LIST needs VALIDATE, and VALIDATE with that key opens it.
fn oath_still_answers(card: &mut CardFront<Disk>) {
    let select = card.process(&select_oath());
    assert_eq!(sw(&select), 0x9000, "YKOATH SELECT after reset");
    assert_eq!(select.first(), Some(&0x79), "SELECT answers the version first");
    let access = card.card().state().oath.access.clone();
    let list = [0x00, 0xA1, 0x00, 0x00, 0x00];
    if let Some(access) = access {
        assert_eq!(card.process(&list), vec![0x69, 0x82], "LIST without VALIDATE");
        let challenge = find_tlv(&select, 0x74).unwrap_or_else(|| panic!("no challenge with an access code"));
        let response = hmac(access.alg, &access.key, &challenge);
        let resp = card.process(&oath_apdu(0xA3, 0, &[tlv(0x75, &response), tlv(0x74, &[1; 8])].concat()));
        assert_eq!(sw(&resp), 0x9000, "VALIDATE after restart");
    }
    assert_eq!(sw(&send(card, &list)), 0x9000, "LIST");
}

fn tx_fields(amount_minor: u64) -> TxFields<'static> {
    TxFields {
        version: paysim_otp::TxVersion::V1,
        source: b"",
        payee_name: b"",
        verifier_id: VERIFIER.as_bytes(),
        transaction_id: b"transfer-1",
        amount_minor,
        currency: b"EUR",
        payee: b"DE89370400440532013000",
    }
}
