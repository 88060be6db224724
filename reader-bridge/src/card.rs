//! The PAYSIM operations on a card: status, PIN, PUK, login and transaction codes, and the
//! reader scan. They are written against `card_link::Transport`, so the same code runs over
//! PC/SC ([`PaysimCard::open`]) and against the card core in process
//! (`card_link::MemCard`, in tests).
//!
//! - [`PaysimCard::open`] picks the reader (the one holding our applet, or `--reader`),
//!   waiting with `SCardGetStatusChange` up to a bounded time for a card to be inserted.
//! - [`PaysimCard::exchange`] runs one multi-APDU exchange (SELECT, VERIFY, OTP...) inside one
//!   transaction on an exclusive connection (card-link's default), so no other application
//!   can slip a command in between, nor connect until the bridge has let go of the card (and,
//!   if it died, pcscd has reset it). card-link ends an exchange that touched the PIN with
//!   VERIFY P1 = `FF` (a card reset if the card refuses that), so the verified state does not
//!   outlive it, and follows `61xx` with GET RESPONSE.
//! - The bytes come from `card_applet::host` (builders and parsers of docs/protocol.md).

use crate::apdu::{card_error, request_error, CardOtp, DataObject, Pin, Puk};
use crate::error::{Error, Result};
use card_applet::host;
use card_applet::host::oath;
use card_link::{Exchange, Pcsc, PcscCard, Transport, TransportExt};
use paysim_otp::TxFields;
use std::time::Duration;

/// The serial [`scan`] reports for a PAYSIM applet that is not personalized yet.
pub const NOT_PERSONALIZED: &str = "(not personalized)";

/// What [`scan`] learns about one reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    pub name: String,
    pub card_present: bool,
    /// `Some(serial)` when the card answers SELECT for the PAYSIM applet.
    pub paysim_serial: Option<String>,
    /// `Some(bank credentials)` when the card answers SELECT for the YKOATH application (a
    /// YubiKey, a Nitrokey 3, the virtual card): the names of the `PAYSIM Bank:` credentials
    /// it lists, or `None` inside when an access code keeps the list closed.
    pub oath: Option<Option<Vec<String>>>,
    /// Why the card could not be checked, if it could not.
    pub note: Option<String>,
}

/// Lists every reader, whether it holds a card and whether that card holds our applet (with
/// its serial). Never waits for a card. An observer that never sends the PIN, so it connects
/// shared (card-link's `Sharing`): it does not stop a program that watches the card too.
pub fn scan() -> Result<Vec<ReaderInfo>> {
    let pcsc = Pcsc::establish()?.with_sharing(card_link::Sharing::Shared);
    let mut out = Vec::new();
    for reader in pcsc.readers()? {
        let mut info = ReaderInfo {
            name: reader.name.clone(),
            card_present: reader.card_present,
            paysim_serial: None,
            oath: None,
            note: None,
        };
        if reader.card_present {
            match pcsc.open(Some(&reader.name), &card_applet::AID, Duration::ZERO).map(PaysimCard::new) {
                Ok(mut card) => match card.exchange(|ch| {
                    Ok(ch.fci().and_then(|f| f.serial.clone()).unwrap_or_else(|| NOT_PERSONALIZED.to_owned()))
                }) {
                    Ok(serial) => info.paysim_serial = Some(serial),
                    Err(e) => info.note = Some(e.chain()),
                },
                Err(card_link::Error::NoApplet { .. }) => {}
                Err(e) => info.note = Some(Error::from(e).chain()),
            }
            match pcsc.open(Some(&reader.name), OATH_AID, Duration::ZERO).map(OathCard::new) {
                Ok(mut card) => match card.bank_credentials() {
                    Ok(names) => info.oath = Some(names),
                    Err(e) => info.note = Some(e.chain()),
                },
                Err(card_link::Error::NoApplet { .. }) => {}
                Err(e) => info.note = Some(Error::from(e).chain()),
            }
            if info.paysim_serial.is_none() && info.oath.is_none() && info.note.is_none() {
                info.note = Some("card without the PAYSIM applet or an OATH application".to_owned());
            }
        }
        out.push(info);
    }
    Ok(out)
}

/// The OATH application's AID as every YubiKey and Nitrokey 3 answers it (the 7-byte partial
/// name `A0 00 00 05 27 21 01`, `card_applet::oath::AID_MIN` bytes of `card_applet::oath::AID`).
pub const OATH_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];

/// Opens the token for a login, a transfer or `respond` over PC/SC: a personalized PAYSIM card,
/// else a card or key with the YKOATH application (a YubiKey, a Nitrokey 3, the virtual card
/// without PAYSIM personalization). In reader `wanted` if given, else in the one reader that
/// holds either; waits up to `wait` for one to be inserted.
pub fn open_token(wanted: Option<&str>, wait: Duration) -> Result<Box<dyn crate::flow::Token>> {
    let aids: [&[u8]; 2] = [&card_applet::AID, OATH_AID];
    // open_any waits for an insertion unless a named reader holds a card without either
    // application, and for a card another program holds (at least card-link's BUSY_WAIT).
    let (link, which) = Pcsc::establish()?.open_any(wanted, &aids, wait)?;
    if which == 1 {
        return Ok(Box::new(OathCard::new(link)));
    }
    // A PAYSIM applet that is not personalized (the virtual card carries both applets) gives
    // way to the OATH application of the same card, if it has one.
    // The same (exclusive) connection is asked: a second one would wait for this one.
    let mut card = PaysimCard::new(link);
    let personalized = card.exchange(|ch| Ok(ch.fci().is_some_and(|f| f.personalized())))?;
    if !personalized {
        let mut link = card.link;
        let has_oath = link.exchange(|ex| ex.transmit(&card_link::select_aid(OATH_AID)))?.ends_with(&[0x90, 0x00]);
        if has_oath {
            return Ok(Box::new(OathCard::new(link)));
        }
        card = PaysimCard::new(link);
    }
    Ok(Box::new(card))
}

/// A YKOATH application (YubiKey, Nitrokey 3, the virtual card) holding a bank credential
/// (`PAYSIM Bank:<user>`, TOTP/HMAC-SHA256, 8 digits) that answers PAYSIM-OATH-1 challenges.
pub struct OathCard<T = PcscCard> {
    link: T,
}

impl<T: Transport> OathCard<T> {
    pub fn new(link: T) -> Self {
        OathCard { link }
    }

    /// The reader's name.
    pub fn reader(&self) -> &str {
        self.link.reader()
    }

    /// Runs `f` in one exclusive transaction that starts with SELECT of the OATH application.
    fn exchange<R>(&mut self, f: impl FnOnce(&mut Exchange<'_>, &oath::OathSelect) -> Result<R>) -> Result<R> {
        self.link.exchange(|ex| {
            let resp = ex.transmit(&oath::select())?;
            let sel = oath::parse_select(&resp).map_err(|source| Error::Oath { command: "SELECT", source })?;
            f(ex, &sel)
        })
    }

    /// Whether an access code protects the application (then it must be given before a code).
    pub fn protected(&mut self) -> Result<bool> {
        self.exchange(|_, sel| Ok(sel.protected()))
    }

    /// The names of the bank credentials the application lists; `None` while an access code
    /// keeps the list closed.
    pub fn bank_credentials(&mut self) -> Result<Option<Vec<String>>> {
        self.exchange(|ex, sel| {
            if sel.protected() {
                return Ok(None);
            }
            Ok(Some(list_bank(ex)?))
        })
    }

    /// The 8-digit answer to the PAYSIM-OATH-1 challenge `q`: VALIDATE with `access_code` if the
    /// application is protected, find the credential (`PAYSIM Bank:<user>`, or the only bank
    /// credential when the user is not known), CALCULATE.
    pub fn code(&mut self, access_code: Option<&str>, user: Option<&str>, q: &[u8; 32]) -> Result<CardOtp> {
        let self_reader = self.reader().to_owned();
        self.exchange(|ex, sel| {
            if let Some(card_challenge) = &sel.challenge {
                let code = access_code.ok_or(Error::Oath {
                    command: "CALCULATE",
                    source: oath::OathError::AuthRequired,
                })?;
                let key = oath::access_key(code.as_bytes(), &sel.salt);
                let mut host_challenge = [0u8; 8];
                getrandom::getrandom(&mut host_challenge)
                    .map_err(|e| Error::BadInput(format!("no randomness for the OATH access check: {e}")))?;
                let resp = ex.transmit(&oath::validate(&key, card_challenge, &host_challenge))?;
                oath::parse_validate(&resp, &key, &host_challenge)
                    .map_err(|source| Error::Oath { command: "VALIDATE", source })?;
            }
            let reader = self_reader.clone();
            let name = match user {
                Some(u) => oath::credential_name(u),
                None => {
                    let mut names = list_bank(ex)?;
                    match names.len() {
                        1 => names.remove(0),
                        0 => {
                            return Err(Error::NoOathCredential(format!(
                                "the OATH key in {:?} holds no {:?} credential; the bank enrolls one with `bank-tools oath enroll`",
                                reader,
                                oath::ISSUER
                            )))
                        }
                        _ => {
                            return Err(Error::NoOathCredential(format!(
                                "the OATH key holds several bank credentials ({}); log in with the bridge (`reader-bridge login --user NAME`) instead",
                                names.join(", ")
                            )))
                        }
                    }
                }
            };
            let apdu = oath::calculate(&name, q).map_err(|source| Error::Oath { command: "CALCULATE", source })?;
            let resp = ex.transmit(&apdu)?;
            let otp = oath::parse_calculate(&resp).map_err(|source| match source {
                oath::OathError::NoSuchCredential => Error::NoOathCredential(format!(
                    "the OATH key holds no credential {name:?}; the bank enrolls it with `bank-tools oath enroll`"
                )),
                source => Error::Oath { command: "CALCULATE", source },
            })?;
            Ok(CardOtp { counter: 0, otp })
        })
    }
}

/// LIST, keeping the names of bank credentials.
fn list_bank(ex: &mut Exchange<'_>) -> Result<Vec<String>> {
    let resp = ex.transmit(&oath::list())?;
    let listed = oath::parse_list(&resp).map_err(|source| Error::Oath { command: "LIST", source })?;
    let prefix = format!("{}:", oath::ISSUER);
    Ok(listed.into_iter().filter(|l| l.name.starts_with(&prefix)).map(|l| l.name).collect())
}

/// A PAYSIM card over a card-link transport: PC/SC by default, the in-process card in tests.
pub struct PaysimCard<T = PcscCard> {
    link: T,
}

impl PaysimCard<PcscCard> {
    /// Opens the card to use over PC/SC: in reader `wanted` if given, else in the one reader
    /// holding a PAYSIM card. Waits up to `wait` for a card to be inserted.
    ///
    /// Errors: [`Error::NoReader`], [`Error::UnknownReader`], [`Error::SeveralCards`] (choose
    /// with `--reader`), [`Error::NoApplet`] (the chosen reader's card is not ours),
    /// [`Error::CardBusy`] (another program held it for the wait, at least 3 s),
    /// [`Error::NoCard`] after the wait.
    pub fn open(wanted: Option<&str>, wait: Duration) -> Result<Self> {
        // card-link says (under `-v`) when it starts waiting for a card, or for a card another
        // program holds.
        let pcsc = Pcsc::establish()?;
        Ok(PaysimCard::new(pcsc.open(wanted, &card_applet::AID, wait)?))
    }
}

impl<T: Transport> PaysimCard<T> {
    /// The PAYSIM operations over `link`.
    pub fn new(link: T) -> Self {
        PaysimCard { link }
    }

    /// The reader's name.
    pub fn reader(&self) -> &str {
        self.link.reader()
    }

    /// The transport, e.g. to reach the in-process card in a test.
    pub fn link_mut(&mut self) -> &mut T {
        &mut self.link
    }

    /// Runs `f` inside one exclusive transaction that starts with SELECT of the PAYSIM applet.
    /// If `f` touched the PIN, the transaction ends with VERIFY P1 = `FF`, or a card reset
    /// when the card refuses it (card-link's PIN-state rule), so the verified state cannot be
    /// used by anyone after us.
    pub fn exchange<R>(&mut self, f: impl FnOnce(&mut Channel<'_, '_>) -> Result<R>) -> Result<R> {
        self.link.exchange(|ex| {
            let mut ch = Channel { ex, fci: None };
            ch.select()?;
            f(&mut ch)
        })
    }

    /// Reads serial, next counter, PIN tries, life-cycle state and version (no PIN needed).
    pub fn status(&mut self) -> Result<CardStatus> {
        let reader = self.reader().to_owned();
        self.exchange(|ch| {
            let fci = ch.fci.clone().ok_or(Error::NoApplet { reader: reader.clone() })?;
            let serial = if fci.personalized() { ch.serial()? } else { String::new() };
            let next_counter = if fci.personalized() {
                let resp = ch.transmit(&host::get_data(DataObject::NextCounter))?;
                Some(host::parse_counter(&resp).map_err(|e| card_error("GET DATA", e))?)
            } else {
                None
            };
            let pin_tries_left = ch.pin_tries()?;
            let life_cycle = if fci.personalized() {
                "personalized (operational)".to_owned()
            } else if fci.life_cycle == card_applet::card::LCS_FACTORY {
                "factory (not personalized)".to_owned()
            } else {
                format!("state {:#04x}", fci.life_cycle)
            };
            let version = format!("{}.{}", fci.version[0], fci.version[1]);
            Ok(CardStatus { reader, serial, next_counter, pin_tries_left, life_cycle, version })
        })
    }

    /// What is checked before the PIN is asked for: the card is personalized and its PIN is
    /// not blocked. Reads the PIN try counter with VERIFY without data (ISO 7816-4 §11.5.6),
    /// which spends no try; returns the tries left.
    pub fn ready(&mut self) -> Result<u8> {
        self.exchange(|ch| {
            if !ch.fci.as_ref().is_some_and(host::Fci::personalized) {
                return Err(Error::NotPersonalized);
            }
            match ch.pin_tries()? {
                0 => Err(Error::PinBlocked),
                n => Ok(n),
            }
        })
    }

    /// PIN, then LOGIN OTP, in one exchange.
    pub fn login_otp(&mut self, pin: &Pin, challenge: &[u8], verifier_id: &str) -> Result<CardOtp> {
        self.exchange(|ch| {
            ch.verify_pin(pin)?;
            ch.login_otp(challenge, verifier_id)
        })
    }

    /// PIN, then TRANSACTION OTP, in one exchange.
    pub fn tx_otp(&mut self, pin: &Pin, challenge: &[u8], tx: &TxFields<'_>) -> Result<CardOtp> {
        self.exchange(|ch| {
            ch.verify_pin(pin)?;
            ch.tx_otp(challenge, tx)
        })
    }

    /// PUK and a new PIN (RESET RETRY COUNTER), in one exchange.
    pub fn unblock(&mut self, puk: &Puk, new: &Pin) -> Result<()> {
        self.exchange(|ch| ch.unblock(puk, new))
    }

    /// Old PIN and a new one (CHANGE REFERENCE DATA), in one exchange; refuses to try when
    /// the PIN is blocked.
    pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<()> {
        self.exchange(|ch| {
            if ch.pin_tries()? == 0 {
                return Err(Error::PinBlocked);
            }
            ch.change_pin(old, new)
        })
    }
}

/// The card inside one exchange, after SELECT.
pub struct Channel<'e, 'a> {
    ex: &'e mut Exchange<'a>,
    fci: Option<host::Fci>,
}

impl Channel<'_, '_> {
    /// Sends one APDU and returns the whole answer (data ‖ SW1 SW2); card-link follows `61xx`
    /// with GET RESPONSE (ISO 7816-4 §5.3.4).
    pub fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        Ok(self.ex.transmit(apdu)?)
    }

    fn select(&mut self) -> Result<()> {
        let resp = self.transmit(&host::select())?;
        self.fci = Some(host::parse_select(&resp).map_err(|e| card_error("SELECT", e))?);
        Ok(())
    }

    /// What SELECT answered at the start of this exchange.
    pub fn fci(&self) -> Option<&host::Fci> {
        self.fci.as_ref()
    }

    /// The card's serial.
    pub fn serial(&mut self) -> Result<String> {
        if let Some(serial) = self.fci.as_ref().and_then(|f| f.serial.clone()) {
            return Ok(serial);
        }
        let resp = self.transmit(&host::get_data(DataObject::Serial))?;
        host::parse_serial(&resp).map_err(|e| card_error("GET DATA", e))
    }

    /// PIN tries left, from VERIFY without data (`9000` means verified: 3 tries).
    pub fn pin_tries(&mut self) -> Result<u8> {
        let resp = self.transmit(&host::verify_status())?;
        match host::parse_pin_status(&resp) {
            Ok(host::PinStatus::Verified) => Ok(3),
            Ok(host::PinStatus::NotVerified { tries_left }) => Ok(tries_left),
            Ok(host::PinStatus::Blocked) => Ok(0),
            Err(e) => Err(card_error("VERIFY", e)),
        }
    }

    /// VERIFY the PIN. Refuses to try when the PIN is already blocked.
    pub fn verify_pin(&mut self, pin: &Pin) -> Result<()> {
        if self.pin_tries()? == 0 {
            return Err(Error::PinBlocked);
        }
        let apdu = host::verify(pin.digits()).map_err(request_error)?;
        let resp = self.transmit(&apdu)?;
        host::parse_verify(&resp).map_err(|e| card_error("VERIFY", e))
    }

    /// CHANGE REFERENCE DATA for the PIN.
    pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<()> {
        let apdu = host::change_pin(old.digits(), new.digits()).map_err(request_error)?;
        let resp = self.transmit(&apdu)?;
        host::parse_change_pin(&resp).map_err(|e| card_error("CHANGE REFERENCE DATA", e))
    }

    /// RESET RETRY COUNTER with the PUK and a new PIN.
    pub fn unblock(&mut self, puk: &Puk, new: &Pin) -> Result<()> {
        let apdu = host::reset_retry_counter(puk.digits(), new.digits()).map_err(request_error)?;
        let resp = self.transmit(&apdu)?;
        host::parse_reset_retry_counter(&resp).map_err(|e| card_error("RESET RETRY COUNTER", e))
    }

    /// LOGIN OTP (needs the PIN verified in this exchange).
    pub fn login_otp(&mut self, challenge: &[u8], verifier_id: &str) -> Result<CardOtp> {
        let apdu = host::login_otp(challenge, verifier_id).map_err(request_error)?;
        let resp = self.transmit(&apdu)?;
        let (counter, otp) = host::parse_otp(&resp).map_err(|e| card_error("LOGIN OTP", e))?;
        Ok(CardOtp { counter, otp })
    }

    /// TRANSACTION OTP (needs the PIN verified in this exchange).
    pub fn tx_otp(&mut self, challenge: &[u8], tx: &TxFields<'_>) -> Result<CardOtp> {
        let apdu = host::tx_otp(challenge, tx).map_err(request_error)?;
        let resp = self.transmit(&apdu)?;
        let (counter, otp) = host::parse_otp(&resp).map_err(|e| card_error("TRANSACTION OTP", e))?;
        Ok(CardOtp { counter, otp })
    }
}

/// What `status` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardStatus {
    pub reader: String,
    /// Empty before personalization.
    pub serial: String,
    /// `None` before personalization.
    pub next_counter: Option<u64>,
    pub pin_tries_left: u8,
    pub life_cycle: String,
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use card_link::MemCard;

    #[test]
    fn the_oath_aid_is_the_applets_partial_name() {
        assert_eq!(OATH_AID, &card_applet::oath::AID[..card_applet::oath::AID_MIN]);
    }

    #[test]
    fn an_oath_card_answers_with_its_bank_credential() {
        let mut card = OathCard::new(MemCard::factory(&[1; 32]));
        let q = paysim_otp::oath_login_challenge(&[4; 32], b"v");
        // No credential yet: the error says how the bank writes one.
        let e = card.code(None, None, &q).unwrap_err();
        assert!(e.to_string().contains("bank-tools oath enroll"), "{e}");
        let key = [0x21u8; 32];
        card.link
            .exchange(|ex| {
                ex.transmit(&oath::select())?;
                let put = oath::put(&oath::credential_name("dave"), paysim_otp::OATH_KEY_TYPE, 8, &key, false).unwrap();
                oath::parse_put(&ex.transmit(&put)?).unwrap();
                Ok::<_, Error>(())
            })
            .unwrap();
        assert!(!card.protected().unwrap());
        assert_eq!(card.bank_credentials().unwrap(), Some(vec!["PAYSIM Bank:dave".to_owned()]));
        let want = paysim_otp::oath_code(&key, &q);
        // By the user's name, and (the user unknown, as in `respond`) as the only bank credential.
        for user in [Some("dave"), None] {
            let got = card.code(None, user, &q).unwrap();
            assert_eq!(got.counter, 0);
            assert!(want.matches(got.otp.as_str()));
        }
        let e = card.code(None, Some("erin"), &q).unwrap_err();
        assert!(matches!(e, Error::NoOathCredential(_)), "{e:?}");
    }

    const SEED: [u8; 32] = [0x5A; 32];

    fn card() -> PaysimCard<MemCard> {
        PaysimCard::new(MemCard::personalized(&SEED, "1234", "12345678", "PSIM-00000042").unwrap())
    }

    fn pin(p: &str) -> Pin {
        Pin::new(p).unwrap()
    }

    #[test]
    fn status_reads_what_the_card_holds_without_a_pin() {
        let mut card = card();
        let s = card.status().unwrap();
        assert_eq!(s.serial, "PSIM-00000042");
        assert_eq!(s.next_counter, Some(0));
        assert_eq!(s.pin_tries_left, 3);
        assert_eq!(s.life_cycle, "personalized (operational)");
        assert_eq!(s.reader, MemCard::READER);
        // A factory card has no PIN yet: its PIN status answers 6985, which `status` reports.
        let factory = PaysimCard::new(MemCard::factory(&[1; 32])).status();
        assert!(matches!(factory, Err(Error::NotPersonalized)), "{factory:?}");
    }

    #[test]
    fn codes_follow_the_chain_and_each_exchange_needs_the_pin_again() {
        let mut card = card();
        let tx = TxFields {
            version: paysim_otp::TxVersion::V2,
            verifier_id: b"v",
            transaction_id: b"t-1",
            amount_minor: 5,
            currency: b"EUR",
            source: b"S",
            payee: b"P",
            payee_name: "Zoë".as_bytes(),
        };
        let a = card.login_otp(&pin("1234"), &[1; 32], "v").unwrap();
        let b = card.tx_otp(&pin("1234"), &[2; 32], &tx).unwrap();
        assert_eq!((a.counter, b.counter), (0, 1));
        let ck = paysim_otp::ChainKey::from_bytes(SEED);
        assert!(paysim_otp::login_otp(&ck, 0, &[1; 32], b"v").matches(a.otp.as_str()));
        assert!(paysim_otp::tx_otp(&ck.advance(1), 1, &[2; 32], &tx).matches(b.otp.as_str()));
        // The PIN-state rule: an OTP without VERIFY in its own exchange is refused.
        let e = card.exchange(|ch| ch.login_otp(&[3; 32], "v")).unwrap_err();
        assert!(matches!(e, Error::Card { command: "LOGIN OTP", .. }), "{e:?}");
    }

    #[test]
    fn wrong_pins_block_then_verify_refuses_and_the_puk_unblocks() {
        let mut card = card();
        for left in [2, 1] {
            let e = card.login_otp(&pin("9999"), &[1; 32], "v").unwrap_err();
            assert!(matches!(e, Error::WrongPin { tries_left } if tries_left == left), "{e:?}");
        }
        assert!(matches!(card.login_otp(&pin("9999"), &[1; 32], "v"), Err(Error::PinBlocked)));
        // Blocked: not even the right PIN is sent, and change-pin refuses too.
        assert!(matches!(card.login_otp(&pin("1234"), &[1; 32], "v"), Err(Error::PinBlocked)));
        assert!(matches!(card.change_pin(&pin("1234"), &pin("4321")), Err(Error::PinBlocked)));
        let e = card.unblock(&Puk::new("87654321").unwrap(), &pin("4321")).unwrap_err();
        assert!(matches!(e, Error::WrongPuk { tries_left: 9 }), "{e:?}");
        card.unblock(&Puk::new("12345678").unwrap(), &pin("4321")).unwrap();
        assert_eq!(card.status().unwrap().pin_tries_left, 3);
        card.change_pin(&pin("4321"), &pin("5678")).unwrap();
        assert_eq!(card.login_otp(&pin("5678"), &[1; 32], "v").unwrap().counter, 0);
    }
}
