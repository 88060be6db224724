//! The PC/SC side: finding the reader that holds a PAYSIM card, waiting for one, and talking
//! to it in exclusive transactions.
//!
//! - [`Pcsc::open`] picks the reader (the one holding our applet, or `--reader`), waiting with
//!   `SCardGetStatusChange` up to a bounded time for a card to be inserted.
//! - [`CardLink::exchange`] runs one multi-APDU exchange (SELECT, VERIFY, OTP...) inside one
//!   PC/SC transaction, so no other application can slip a command in between. If the PIN was
//!   verified during the exchange the transaction ends by resetting the card, so the verified
//!   state does not outlive it.
//! - Answers are received into a `MAX_BUFFER_SIZE_EXTENDED` buffer (a too-small buffer fails
//!   after the card has already executed the command); `61xx` is followed by GET RESPONSE.
//! - The bytes come from `card_applet::host` (builders and parsers of docs/protocol.md).

use crate::apdu::{card_error, request_error, CardOtp, DataObject, Pin, Puk};
use crate::error::{Error, Result};
use card_applet::host;
use paysim_otp::TxFields;
use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

/// A PC/SC context.
pub struct Pcsc {
    ctx: pcsc::Context,
}

/// What [`Pcsc::scan`] learns about one reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    pub name: String,
    pub card_present: bool,
    /// `Some(serial)` when the card answers SELECT for the PAYSIM applet.
    pub paysim_serial: Option<String>,
    /// Why the card could not be checked, if it could not.
    pub note: Option<String>,
}

impl Pcsc {
    /// Connects to the PC/SC service (pcscd).
    pub fn establish() -> Result<Self> {
        let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| match e {
            pcsc::Error::NoService | pcsc::Error::ServiceStopped => Error::NoService(e),
            other => Error::from(other),
        })?;
        Ok(Pcsc { ctx })
    }

    /// The names of all readers PC/SC lists (possibly none).
    pub fn reader_names(&self) -> Result<Vec<CString>> {
        match self.ctx.list_readers_owned() {
            Ok(v) => Ok(v),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Lists every reader, whether it holds a card and whether that card holds our applet
    /// (with its serial). Never waits for a card.
    pub fn scan(&self) -> Result<Vec<ReaderInfo>> {
        let names = self.reader_names()?;
        let states = self.current_states(&names)?;
        let mut out = Vec::new();
        for (name, state) in names.iter().zip(states) {
            let text = name.to_string_lossy().into_owned();
            let present = state.contains(pcsc::State::PRESENT) && !state.contains(pcsc::State::MUTE);
            let mut info = ReaderInfo { name: text, card_present: present, paysim_serial: None, note: None };
            if present {
                match self.connect_paysim(name) {
                    Ok(mut link) => match link.exchange(|ch| {
                        Ok(ch.fci().and_then(|f| f.serial.clone()).unwrap_or_else(|| "(not personalized)".to_owned()))
                    }) {
                        Ok(serial) => info.paysim_serial = Some(serial),
                        Err(e) => info.note = Some(e.chain()),
                    },
                    Err(Error::NoApplet { .. }) => info.note = Some("card without the PAYSIM applet".to_owned()),
                    Err(e) => info.note = Some(e.chain()),
                }
            }
            out.push(info);
        }
        Ok(out)
    }

    /// Opens the card to use: in reader `wanted` if given, else in the one reader holding a
    /// PAYSIM card. Waits up to `wait` for a card to be inserted (`SCardGetStatusChange`).
    ///
    /// Errors: [`Error::NoReader`], [`Error::UnknownReader`], [`Error::SeveralCards`] (choose
    /// with `--reader`), [`Error::NoApplet`] (the chosen reader's card is not ours),
    /// [`Error::NoCard`] after the wait.
    pub fn open(&self, wanted: Option<&str>, wait: Duration) -> Result<CardLink> {
        let deadline = Instant::now() + wait;
        loop {
            let names = self.reader_names()?;
            if names.is_empty() {
                return Err(Error::NoReader);
            }
            let candidates: Vec<CString> = match wanted {
                None => names.clone(),
                Some(w) => {
                    let hit: Vec<CString> = names.iter().filter(|n| n.to_string_lossy() == w).cloned().collect();
                    if hit.is_empty() {
                        return Err(Error::UnknownReader {
                            name: w.to_owned(),
                            available: names.iter().map(|n| n.to_string_lossy().into_owned()).collect(),
                        });
                    }
                    hit
                }
            };
            let mut states: Vec<pcsc::ReaderState> =
                candidates.iter().map(|n| pcsc::ReaderState::new(n.clone(), pcsc::State::UNAWARE)).collect();
            states.push(pcsc::ReaderState::new(pcsc::PNP_NOTIFICATION(), pcsc::State::UNAWARE));
            self.ctx.get_status_change(Duration::ZERO, &mut states).map_err(Error::from)?;

            let mut found = Vec::new();
            let mut not_ours = Vec::new();
            for st in &states[..candidates.len()] {
                let ev = st.event_state();
                if !ev.contains(pcsc::State::PRESENT) || ev.contains(pcsc::State::MUTE) {
                    continue;
                }
                match self.connect_paysim(st.name()) {
                    Ok(link) => found.push(link),
                    Err(Error::NoApplet { reader }) => not_ours.push(reader),
                    // The card went away (or was reset) between the status and the connect.
                    Err(Error::CardRemoved) => {}
                    Err(e) => return Err(e),
                }
            }
            match found.len() {
                1 => return Ok(found.remove(0)),
                0 => {}
                _ => return Err(Error::SeveralCards { readers: found.iter().map(|l| l.reader.clone()).collect() }),
            }
            if let (Some(_), Some(reader)) = (wanted, not_ours.first()) {
                return Err(Error::NoApplet { reader: reader.clone() });
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(match (wanted, not_ours.first()) {
                    (None, Some(reader)) if not_ours.len() == 1 => Error::NoApplet { reader: reader.clone() },
                    _ => Error::NoCard { seconds: wait.as_secs() },
                });
            }
            tracing::info!("waiting up to {} ms for a PAYSIM card", remaining.as_millis());
            for st in &mut states {
                st.sync_current_state();
            }
            match self.ctx.get_status_change(remaining, &mut states) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => {
                    // One more look: the deadline is now past, so the next round decides.
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn current_states(&self, names: &[CString]) -> Result<Vec<pcsc::State>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut states: Vec<pcsc::ReaderState> =
            names.iter().map(|n| pcsc::ReaderState::new(n.clone(), pcsc::State::UNAWARE)).collect();
        self.ctx.get_status_change(Duration::ZERO, &mut states)?;
        Ok(states.iter().map(|s| s.event_state()).collect())
    }

    /// Connects to the card in `reader` and checks that it answers SELECT for our applet.
    fn connect_paysim(&self, reader: &CStr) -> Result<CardLink> {
        let name = reader.to_string_lossy().into_owned();
        let card = match self.ctx.connect(reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
            Ok(c) => c,
            Err(pcsc::Error::UnresponsiveCard | pcsc::Error::UnsupportedCard) => {
                return Err(Error::NoApplet { reader: name })
            }
            Err(e) => return Err(e.into()),
        };
        let mut link = CardLink { card, reader: name, buf: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED] };
        match link.exchange(|_| Ok(())) {
            Ok(()) => Ok(link),
            Err(Error::Card { command: "SELECT", .. }) => Err(Error::NoApplet { reader: link.reader }),
            Err(e) => Err(e),
        }
    }
}

/// One connection to a PAYSIM card.
pub struct CardLink {
    card: pcsc::Card,
    reader: String,
    buf: Vec<u8>,
}

impl CardLink {
    /// The reader's name.
    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// Runs `f` inside one PC/SC transaction that starts with SELECT of the PAYSIM applet.
    /// If `f` verified the PIN, the transaction ends with a card reset so that the verified
    /// state cannot be used by anyone after us.
    pub fn exchange<T>(&mut self, f: impl FnOnce(&mut Channel<'_>) -> Result<T>) -> Result<T> {
        let tx = match self.card.transaction2() {
            Ok(tx) => tx,
            // Somebody (possibly our own last exchange) reset the card: reconnect once.
            Err((card, pcsc::Error::ResetCard)) => {
                card.reconnect(pcsc::ShareMode::Shared, pcsc::Protocols::ANY, pcsc::Disposition::LeaveCard)?;
                card.transaction()?
            }
            Err((_, e)) => return Err(e.into()),
        };
        let mut ch = Channel { tx, buf: &mut self.buf, pin_touched: false, fci: None };
        let result = ch.select().and_then(|_| f(&mut ch));
        let disposition = if ch.pin_touched { pcsc::Disposition::ResetCard } else { pcsc::Disposition::LeaveCard };
        if let Err((_, e)) = ch.tx.end(disposition) {
            // Ending fails when the card left; the result of `f` says more in that case.
            tracing::debug!("ending the PC/SC transaction failed: {e}");
        }
        result
    }

    /// Reads serial, next counter, PIN tries, life-cycle state and version (no PIN needed).
    pub fn status(&mut self) -> Result<CardStatus> {
        let reader = self.reader.clone();
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

    /// PIN, then LOGIN OTP, in one transaction.
    pub fn login_otp(&mut self, pin: &Pin, challenge: &[u8], verifier_id: &str) -> Result<CardOtp> {
        self.exchange(|ch| {
            ch.verify_pin(pin)?;
            ch.login_otp(challenge, verifier_id)
        })
    }

    /// PIN, then TRANSACTION OTP, in one transaction.
    pub fn tx_otp(&mut self, pin: &Pin, challenge: &[u8], tx: &TxFields<'_>) -> Result<CardOtp> {
        self.exchange(|ch| {
            ch.verify_pin(pin)?;
            ch.tx_otp(challenge, tx)
        })
    }
}

/// The card inside one PC/SC transaction.
pub struct Channel<'a> {
    tx: pcsc::Transaction<'a>,
    buf: &'a mut Vec<u8>,
    /// Set once a PIN command was sent: the exchange then ends with a card reset.
    pin_touched: bool,
    fci: Option<host::Fci>,
}

impl Channel<'_> {
    /// Sends one APDU and returns the whole answer (data ‖ SW1 SW2), following `61xx` with
    /// GET RESPONSE (ISO 7816-4 §5.3.4). The receive buffer is `MAX_BUFFER_SIZE_EXTENDED`.
    pub fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        let tx = &self.tx;
        let buf = &mut *self.buf;
        host::transceive(apdu, &mut |a: &[u8]| tx.transmit(a, buf).map(<[u8]>::to_vec)).map_err(Error::from)
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
        self.pin_touched = true;
        let resp = self.transmit(&apdu)?;
        host::parse_verify(&resp).map_err(|e| card_error("VERIFY", e))
    }

    /// CHANGE REFERENCE DATA for the PIN.
    pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<()> {
        let apdu = host::change_pin(old.digits(), new.digits()).map_err(request_error)?;
        self.pin_touched = true;
        let resp = self.transmit(&apdu)?;
        host::parse_change_pin(&resp).map_err(|e| card_error("CHANGE REFERENCE DATA", e))
    }

    /// RESET RETRY COUNTER with the PUK and a new PIN.
    pub fn unblock(&mut self, puk: &Puk, new: &Pin) -> Result<()> {
        let apdu = host::reset_retry_counter(puk.digits(), new.digits()).map_err(request_error)?;
        self.pin_touched = true;
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
