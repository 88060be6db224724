//! The PC/SC implementation of [`Transport`], and the reader side of PC/SC: listing, choice
//! and bounded `SCardGetStatusChange` waits.

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use pcsc::{Context, Protocols, ReaderState, Scope, ShareMode, State};

use crate::{select_aid, Disposition, Error, Frames, Result, Transport, TransportExt};

/// A PC/SC context (one `SCardEstablishContext`) and the sharing its connections ask for.
pub struct Pcsc {
    ctx: Context,
    sharing: Sharing,
}

/// How a connection shares the card with other PC/SC clients (`SCARD_SHARE_*`).
///
/// A client that sends the PIN connects [`Sharing::Exclusive`]: pcsc-lite's `SCardDisconnect`
/// (which pcscd also runs for every handle of a client that died) gives up the handle's
/// transaction lock *before* it resets the card, so a client waiting with a shared handle can
/// begin its transaction in between and find the dead client's PIN still verified (or have
/// the card reset under it half-way). No other handle exists while an exclusive one does, and
/// pcscd ends the exclusivity only after the reset, so nobody can get in before the PIN is
/// gone. `tests/tests/e2e/pin_state.rs` shows it with a killed client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// No other client may connect while this connection lasts (`SCARD_SHARE_EXCLUSIVE`).
    Exclusive,
    /// Other clients may connect too and interleave transactions (`SCARD_SHARE_SHARED`): for
    /// observers (a reader scan, a test looking at the card) that never send the PIN.
    Shared,
}

impl From<Sharing> for ShareMode {
    fn from(s: Sharing) -> Self {
        match s {
            Sharing::Exclusive => ShareMode::Exclusive,
            Sharing::Shared => ShareMode::Shared,
        }
    }
}

/// How long a connection waits, at least, for a card another client holds (a sharing
/// violation) before it reports [`Error::CardBusy`]: long enough for pcscd to clean up after
/// a client that just ended, short enough to tell a person at once that something else holds
/// the card.
pub const BUSY_WAIT: Duration = Duration::from_secs(3);

/// How often a connection looks again while another client holds the card. pcscd does not
/// notify a change of sharing (a handle going away) to `SCardGetStatusChange` waiters, so
/// this wait polls; it is bounded by [`BUSY_WAIT`] or the caller's wait.
const BUSY_POLL: Duration = Duration::from_millis(10);

/// One reader and whether it holds a card that answers (present and not mute).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderStatus {
    pub name: String,
    pub card_present: bool,
}

/// How [`Pcsc::wait_swap`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swap {
    /// The card was taken out and a card is in the reader again.
    Swapped,
    /// The card was still in the reader at the deadline.
    NotRemoved,
    /// The reader was emptied but no card came back before the deadline.
    NotInserted,
}

fn present(ev: State) -> bool {
    // A mute card (no ATR) cannot be used: it counts as no card.
    ev.contains(State::PRESENT) && !ev.contains(State::MUTE)
}

fn cstring(name: &str) -> Result<CString> {
    CString::new(name).map_err(|_| Error::UnknownReader { name: name.to_owned(), available: Vec::new() })
}

fn establish() -> Result<Context> {
    Context::establish(Scope::User).map_err(|e| match e {
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => Error::NoService(e),
        other => Error::from(other),
    })
}

impl Pcsc {
    /// Connects to the PC/SC service (pcscd); its card connections are exclusive.
    pub fn establish() -> Result<Self> {
        Ok(Pcsc { ctx: establish()?, sharing: Sharing::Exclusive })
    }

    /// The same context, connecting to cards with `sharing` from now on.
    pub fn with_sharing(self, sharing: Sharing) -> Self {
        Pcsc { sharing, ..self }
    }

    /// [`connect_card`] with this context and its sharing.
    fn connect_card(&self, reader: &CStr, busy_wait: Duration) -> std::result::Result<pcsc::Card, ConnectError> {
        connect_card(&self.ctx, reader, self.sharing, busy_wait)
    }

    /// The names of the readers PC/SC lists (possibly none).
    pub fn reader_names(&self) -> Result<Vec<String>> {
        match self.ctx.list_readers_owned() {
            Ok(v) => Ok(v.iter().map(|n| n.to_string_lossy().into_owned()).collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every reader and whether it holds a usable card. Never waits.
    pub fn readers(&self) -> Result<Vec<ReaderStatus>> {
        let names = self.reader_names()?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut states =
            names.iter().map(|n| Ok(ReaderState::new(cstring(n)?, State::UNAWARE))).collect::<Result<Vec<_>>>()?;
        self.ctx.get_status_change(Duration::ZERO, &mut states)?;
        Ok(names
            .into_iter()
            .zip(states)
            .map(|(name, s)| ReaderStatus { name, card_present: present(s.event_state()) })
            .collect())
    }

    fn unknown(&self, name: &str) -> Error {
        Error::UnknownReader { name: name.to_owned(), available: self.reader_names().unwrap_or_default() }
    }

    /// Waits until `reader`'s state satisfies `done`, at most `timeout`; `Ok(false)` when the
    /// deadline passed first.
    fn wait_until(&self, reader: &str, timeout: Duration, done: impl Fn(State) -> bool) -> Result<bool> {
        if !self.reader_names()?.iter().any(|r| r == reader) {
            return Err(self.unknown(reader));
        }
        let mut states = [ReaderState::new(cstring(reader)?, State::UNAWARE)];
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.ctx.get_status_change(left, &mut states) {
                // On a timeout the state is looked at once more; the deadline then decides.
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(pcsc::Error::UnknownReader) => return Err(self.unknown(reader)),
                Err(e) => return Err(e.into()),
            }
            let ev = states[0].event_state();
            if ev.contains(State::UNKNOWN) {
                return Err(self.unknown(reader));
            }
            if done(ev) {
                return Ok(true);
            }
            if left.is_zero() {
                return Ok(false);
            }
            states[0].sync_current_state();
        }
    }

    /// Waits (bounded) until `reader` holds a card that answers (present, not mute).
    pub fn wait_present(&self, reader: &str, timeout: Duration) -> Result<bool> {
        self.wait_until(reader, timeout, present)
    }

    /// Waits (bounded) until `reader` is empty: pcscd has seen the card go (a mute card is
    /// not gone).
    pub fn wait_empty(&self, reader: &str, timeout: Duration) -> Result<bool> {
        self.wait_until(reader, timeout, |ev| !ev.contains(State::PRESENT))
    }

    /// Waits until the card in `reader` is taken out and then a card is put in, within
    /// `timeout` overall.
    pub fn wait_swap(&self, reader: &str, timeout: Duration) -> Result<Swap> {
        let deadline = Instant::now() + timeout;
        if !self.wait_empty(reader, timeout)? {
            return Ok(Swap::NotRemoved);
        }
        if !self.wait_present(reader, deadline.saturating_duration_since(Instant::now()))? {
            return Ok(Swap::NotInserted);
        }
        Ok(Swap::Swapped)
    }

    /// Connects to the card in `reader`, waiting up to `wait` for one to be inserted.
    ///
    /// Errors: [`Error::UnknownReader`] (with the readers present), [`Error::NoCard`].
    pub fn connect(&self, reader: &str, wait: Duration) -> Result<PcscCard> {
        if !self.wait_present(reader, wait)? {
            return Err(Error::NoCard { reader: Some(reader.to_owned()), waited: wait });
        }
        let name = cstring(reader)?;
        let card = self.connect_card(&name, wait.max(BUSY_WAIT)).map_err(|e| match e {
            ConnectError::Busy(waited) => Error::CardBusy { reader: reader.to_owned(), waited },
            ConnectError::Pcsc(pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard) => {
                Error::NoCard { reader: Some(reader.to_owned()), waited: wait }
            }
            ConnectError::Pcsc(pcsc::Error::UnknownReader) => self.unknown(reader),
            ConnectError::Pcsc(other) => other.into(),
        })?;
        Ok(PcscCard::new(self.ctx.clone(), card, name, self.sharing))
    }

    /// Connects to the card in `reader` and checks that it answers SELECT with `9000` for one of
    /// `aids`, tried in order; returns the link and the index of the AID that answered.
    /// [`Error::NoApplet`] when none does.
    /// Waits up to `busy_wait` while another program holds the card ([`Error::CardBusy`]).
    fn connect_selecting(&self, reader: &CStr, aids: &[&[u8]], busy_wait: Duration) -> Result<(PcscCard, usize)> {
        let name = reader.to_string_lossy().into_owned();
        let card = match self.connect_card(reader, busy_wait) {
            Ok(c) => c,
            Err(ConnectError::Pcsc(pcsc::Error::UnresponsiveCard | pcsc::Error::UnsupportedCard)) => {
                return Err(Error::NoApplet { reader: name })
            }
            Err(ConnectError::Busy(waited)) => return Err(Error::CardBusy { reader: name, waited }),
            Err(ConnectError::Pcsc(e)) => return Err(e.into()),
        };
        let mut link = PcscCard::new(self.ctx.clone(), card, reader.to_owned(), self.sharing);
        for (i, aid) in aids.iter().enumerate() {
            let resp = link.exchange(|ex| ex.transmit(&select_aid(aid)))?;
            if resp.ends_with(&[0x90, 0x00]) {
                return Ok((link, i));
            }
        }
        Err(Error::NoApplet { reader: name })
    }

    /// Opens the card to use: in reader `wanted` if given, else in the one reader whose card
    /// answers SELECT for `aid`. Waits up to `wait` for such a card (`SCardGetStatusChange`
    /// on the candidates and on PnP notifications, so a reader plugged in meanwhile counts).
    ///
    /// A card another program holds is waited for only when no other reader has the card
    /// wanted: for the rest of `wait`, at least [`BUSY_WAIT`].
    ///
    /// Errors: [`Error::NoReader`], [`Error::UnknownReader`], [`Error::SeveralCards`],
    /// [`Error::NoApplet`] (the named reader's card, or the only card, is another
    /// application's), [`Error::CardBusy`] (still held after that wait), [`Error::NoCard`]
    /// after the wait.
    pub fn open(&self, wanted: Option<&str>, aid: &[u8], wait: Duration) -> Result<PcscCard> {
        self.open_any(wanted, &[aid], wait).map(|(link, _)| link)
    }

    /// [`Pcsc::open`] for a card that answers SELECT for any of `aids` (tried in order on each
    /// card); also returns the index of the AID the card answered. The bridge opens "a PAYSIM
    /// card or an OATH key" this way, so either kind inserted during the wait is found.
    pub fn open_any(&self, wanted: Option<&str>, aids: &[&[u8]], wait: Duration) -> Result<(PcscCard, usize)> {
        let deadline = Instant::now() + wait;
        loop {
            let names = self.reader_names()?;
            if names.is_empty() {
                return Err(Error::NoReader);
            }
            let candidates: Vec<String> = match wanted {
                None => names.clone(),
                Some(w) if names.iter().any(|n| n == w) => vec![w.to_owned()],
                Some(w) => return Err(Error::UnknownReader { name: w.to_owned(), available: names }),
            };
            let mut states = candidates
                .iter()
                .map(|n| Ok(ReaderState::new(cstring(n)?, State::UNAWARE)))
                .collect::<Result<Vec<_>>>()?;
            states.push(ReaderState::new(pcsc::PNP_NOTIFICATION(), State::UNAWARE));
            self.ctx.get_status_change(Duration::ZERO, &mut states)?;

            let mut found = Vec::new();
            let mut not_ours = Vec::new();
            let mut busy = Vec::new();
            for st in &states[..candidates.len()] {
                if !present(st.event_state()) {
                    continue;
                }
                match self.connect_selecting(st.name(), aids, Duration::ZERO) {
                    Ok(link) => found.push(link),
                    Err(Error::NoApplet { reader }) => not_ours.push(reader),
                    // Held by another program: another reader may hold the card we want, so
                    // look at all of them before waiting for this one.
                    Err(Error::CardBusy { .. }) => busy.push(st.name().to_owned()),
                    // The card went away (or was reset) between the status and the connect.
                    Err(Error::CardRemoved) => {}
                    Err(e) => return Err(e),
                }
            }
            match found.len() {
                1 => return Ok(found.remove(0)),
                0 => {}
                _ => {
                    return Err(Error::SeveralCards { readers: found.iter().map(|(l, _)| l.reader.clone()).collect() })
                }
            }
            if let (Some(_), Some(reader)) = (wanted, not_ours.first()) {
                return Err(Error::NoApplet { reader: reader.clone() });
            }
            if let Some(reader) = busy.first() {
                // Nothing else answered: wait for the (first) card another program holds, for
                // what is left of `wait` but at least BUSY_WAIT.
                let left = deadline.saturating_duration_since(Instant::now()).max(BUSY_WAIT);
                match self.connect_selecting(reader, aids, left) {
                    Ok(link) => return Ok(link),
                    // Freed, but not ours (or gone): go on looking while the wait lasts.
                    Err(Error::NoApplet { .. } | Error::CardRemoved)
                        if wanted.is_none() && Instant::now() < deadline =>
                    {
                        continue
                    }
                    Err(e) => return Err(e),
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(match (wanted, not_ours.as_slice()) {
                    (None, [reader]) => Error::NoApplet { reader: reader.clone() },
                    _ => Error::NoCard { reader: wanted.map(str::to_owned), waited: wait },
                });
            }
            tracing::info!("waiting up to {} ms for a card", remaining.as_millis());
            for st in &mut states {
                st.sync_current_state();
            }
            match self.ctx.get_status_change(remaining, &mut states) {
                // One more look: the deadline is now past, so the next round decides.
                Ok(()) | Err(pcsc::Error::Timeout) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// `SCardConnect` to `reader` with `sharing`. While another client holds the card (a sharing
/// violation: an exclusive handle, or handles of others when we want one), looks again every
/// 10 ms for `busy_wait` (zero: one try), then gives up.
fn connect_card(
    ctx: &Context,
    reader: &CStr,
    sharing: Sharing,
    busy_wait: Duration,
) -> std::result::Result<pcsc::Card, ConnectError> {
    let deadline = Instant::now() + busy_wait;
    let mut said = false;
    loop {
        match ctx.connect(reader, sharing.into(), Protocols::ANY) {
            Err(pcsc::Error::SharingViolation) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ConnectError::Busy(busy_wait));
                }
                if !said {
                    said = true;
                    tracing::info!(
                        "the card in {reader:?} is in use by another program; waiting up to {} ms",
                        left.as_millis()
                    );
                }
                // A poll, bounded by the deadline: see BUSY_POLL.
                std::thread::sleep(BUSY_POLL.min(left));
            }
            other => return other.map_err(ConnectError::Pcsc),
        }
    }
}

/// Why `SCardConnect` did not give a handle.
enum ConnectError {
    /// Another client held the card for the whole wait.
    Busy(Duration),
    Pcsc(pcsc::Error),
}

/// One PC/SC connection (`SCardConnect`, exclusive or shared, T=0 or T=1) to the card in a
/// reader.
pub struct PcscCard {
    ctx: Context,
    card: pcsc::Card,
    name: CString,
    reader: String,
    sharing: Sharing,
    buf: Vec<u8>,
}

impl PcscCard {
    fn new(ctx: Context, card: pcsc::Card, name: CString, sharing: Sharing) -> Self {
        let reader = name.to_string_lossy().into_owned();
        PcscCard { ctx, card, name, reader, sharing, buf: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED] }
    }

    /// Connects (exclusively) to the card in `reader` with a context of its own, waiting up to
    /// `wait` for a card (see [`Pcsc::connect`]).
    pub fn connect(reader: &str, wait: Duration) -> Result<Self> {
        Pcsc::establish()?.connect(reader, wait)
    }

    /// [`PcscCard::connect`] with a shared connection, for an observer that never sends the
    /// PIN (see [`Sharing`]).
    pub fn connect_shared(reader: &str, wait: Duration) -> Result<Self> {
        Pcsc::establish()?.with_sharing(Sharing::Shared).connect(reader, wait)
    }

    /// How this connection shares the card.
    pub fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// Gets the connection back after `cause`: a reset by someone else (reconnect the
    /// handle) or a restarted pcscd (new context, new connection to the same reader).
    fn recover(&mut self, cause: pcsc::Error) -> Result<()> {
        match cause {
            pcsc::Error::ResetCard => {
                self.card.reconnect(self.sharing.into(), Protocols::ANY, pcsc::Disposition::LeaveCard)?;
            }
            _ => {
                tracing::info!("PC/SC handle lost ({cause}); connecting to {:?} again", self.reader);
                self.ctx = establish()?;
                self.card = connect_card(&self.ctx, &self.name, self.sharing, BUSY_WAIT).map_err(|e| match e {
                    ConnectError::Busy(waited) => Error::CardBusy { reader: self.reader.clone(), waited },
                    ConnectError::Pcsc(e) => e.into(),
                })?;
            }
        }
        Ok(())
    }
}

fn recoverable(e: pcsc::Error) -> bool {
    use pcsc::Error as P;
    matches!(e, P::ResetCard | P::InvalidHandle | P::NoService | P::ServiceStopped | P::CommError)
}

impl From<Disposition> for pcsc::Disposition {
    fn from(d: Disposition) -> Self {
        match d {
            Disposition::Leave => pcsc::Disposition::LeaveCard,
            Disposition::Reset => pcsc::Disposition::ResetCard,
            Disposition::Unpower => pcsc::Disposition::UnpowerCard,
        }
    }
}

struct PcscFrames<'a, 'tx> {
    tx: &'a pcsc::Transaction<'tx>,
    buf: &'a mut [u8],
}

impl Frames for PcscFrames<'_, '_> {
    fn frame(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        Ok(self.tx.transmit(apdu, self.buf)?.to_vec())
    }
}

impl Transport for PcscCard {
    fn reader(&self) -> &str {
        &self.reader
    }

    /// `SCardBeginTransaction`, then `body`, then `SCardEndTransaction` with its disposition.
    /// When the transaction cannot begin because the card was reset or pcscd restarted, the
    /// connection is made again once and the transaction retried.
    fn transaction(&mut self, body: &mut dyn FnMut(&mut dyn Frames) -> Disposition) -> Result<()> {
        let mut recovered = false;
        loop {
            let err = match self.card.transaction() {
                Ok(tx) => {
                    let disposition = body(&mut PcscFrames { tx: &tx, buf: &mut self.buf });
                    if let Err((_, e)) = tx.end(disposition.into()) {
                        // Ending fails when the card left; what `body` saw says more then.
                        tracing::debug!("ending the PC/SC transaction failed: {e}");
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            if recovered || !recoverable(err) {
                return Err(err.into());
            }
            recovered = true;
            self.recover(err)?;
        }
    }

    fn reset(&mut self, how: Disposition) -> Result<()> {
        self.card.reconnect(self.sharing.into(), Protocols::ANY, how.into())?;
        Ok(())
    }
}
