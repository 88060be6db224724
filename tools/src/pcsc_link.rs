//! A PC/SC connection to one reader's card, for operator commands and tests.
//!
//! One [`Link`] is one `SCardConnect`; a multi-APDU exchange runs inside one
//! [`Link::transaction`] so no other process can slip an APDU in between (PC/SC part 5,
//! `SCardBeginTransaction`). [`Exchange::transmit`] follows `61xx` with GET RESPONSE
//! (ISO 7816-4 §5.3.4) and always receives into a buffer large enough for the largest answer,
//! so a state-changing command never fails after the card executed it.

use std::ffi::CString;
use std::time::Duration;

use pcsc::{Context, Disposition, Protocols, ReaderState, Scope, ShareMode, State};

/// Receive buffer size: the largest extended response plus its status word.
pub const RECV_MAX: usize = pcsc::MAX_BUFFER_SIZE_EXTENDED;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot reach pcscd ({0}); is it running? (`sudo bash scripts/setup.sh` starts it)")]
    NoService(#[source] pcsc::Error),
    #[error("no reader named {name:?}; readers present: {}", if .available.is_empty() { "none".to_owned() } else { .available.join(", ") })]
    NoReader { name: String, available: Vec<String> },
    #[error("no card in reader {0:?} (waited {1:?})")]
    NoCard(String, Duration),
    #[error("the card was removed or reset during the exchange; start again")]
    CardGone,
    #[error("PC/SC error: {0}")]
    Pcsc(#[from] pcsc::Error),
    #[error("the card answered with fewer than 2 bytes")]
    ShortResponse,
}

fn map_card_err(e: pcsc::Error) -> LinkError {
    match e {
        pcsc::Error::RemovedCard | pcsc::Error::ResetCard | pcsc::Error::NoSmartcard => LinkError::CardGone,
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => LinkError::NoService(e),
        other => LinkError::Pcsc(other),
    }
}

/// A response APDU split into data and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: u16,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Response data may be an OTP: only its length is shown.
        write!(f, "Response {{ data: <{} bytes>, sw: {:04X} }}", self.data.len(), self.sw)
    }
}

impl Response {
    /// Splits raw response bytes (data ‖ SW1 SW2).
    pub fn from_bytes(raw: &[u8]) -> Result<Self, LinkError> {
        match raw {
            [data @ .., a, b] => Ok(Self { data: data.to_vec(), sw: u16::from_be_bytes([*a, *b]) }),
            _ => Err(LinkError::ShortResponse),
        }
    }

    pub fn is_ok(&self) -> bool {
        self.sw == 0x9000
    }

    /// data ‖ SW, as the card sent it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.extend_from_slice(&self.sw.to_be_bytes());
        out
    }
}

/// Names of the readers pcscd knows.
pub fn readers(ctx: &Context) -> Result<Vec<String>, LinkError> {
    match ctx.list_readers_owned() {
        Ok(list) => Ok(list.iter().map(|r| r.to_string_lossy().into_owned()).collect()),
        Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
        Err(e) => Err(map_card_err(e)),
    }
}

/// Waits (bounded) until reader `name` holds a card, with `SCardGetStatusChange`.
pub fn wait_for_card(ctx: &Context, name: &str, timeout: Duration) -> Result<(), LinkError> {
    let available = readers(ctx)?;
    if !available.iter().any(|r| r == name) {
        return Err(LinkError::NoReader { name: name.to_owned(), available });
    }
    let cname = CString::new(name).map_err(|_| LinkError::NoReader { name: name.to_owned(), available: Vec::new() })?;
    let mut states = [ReaderState::new(cname, State::UNAWARE)];
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match ctx.get_status_change(left, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => return Err(LinkError::NoCard(name.to_owned(), timeout)),
            Err(e) => return Err(map_card_err(e)),
        }
        let ev = states[0].event_state();
        if ev.contains(State::PRESENT) && !ev.contains(State::MUTE) {
            return Ok(());
        }
        if ev.contains(State::UNKNOWN) {
            return Err(LinkError::NoReader { name: name.to_owned(), available: readers(ctx)? });
        }
        if left.is_zero() {
            return Err(LinkError::NoCard(name.to_owned(), timeout));
        }
        states[0].sync_current_state();
    }
}

/// A connection to the card in one reader.
pub struct Link {
    card: pcsc::Card,
    reader: String,
    // Kept last so it is released after the card.
    _ctx: Context,
}

impl Link {
    /// Connects to the card in reader `name` (shared mode, T=0 or T=1), waiting up to
    /// `wait` for a card to be inserted.
    pub fn connect(name: &str, wait: Duration) -> Result<Self, LinkError> {
        let ctx = Context::establish(Scope::User).map_err(LinkError::NoService)?;
        wait_for_card(&ctx, name, wait)?;
        let cname =
            CString::new(name).map_err(|_| LinkError::NoReader { name: name.to_owned(), available: Vec::new() })?;
        let card = ctx.connect(&cname, ShareMode::Shared, Protocols::ANY).map_err(|e| match e {
            pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard => LinkError::NoCard(name.to_owned(), wait),
            pcsc::Error::UnknownReader => LinkError::NoReader { name: name.to_owned(), available: Vec::new() },
            other => map_card_err(other),
        })?;
        Ok(Self { card, reader: name.to_owned(), _ctx: ctx })
    }

    pub fn reader(&self) -> &str {
        &self.reader
    }

    /// Starts an exclusive transaction; it ends (leaving the card as is) when dropped.
    pub fn transaction(&mut self) -> Result<Exchange<'_>, LinkError> {
        Ok(Exchange { tx: self.card.transaction().map_err(map_card_err)? })
    }

    /// Resets the card (warm reset through pcscd): the card's volatile state, such as a
    /// verified PIN, is cleared.
    pub fn reset(&mut self) -> Result<(), LinkError> {
        self.card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::ResetCard).map_err(map_card_err)
    }

    /// Powers the card off and on again (cold reset).
    pub fn power_cycle(&mut self) -> Result<(), LinkError> {
        self.card.reconnect(ShareMode::Shared, Protocols::ANY, Disposition::UnpowerCard).map_err(map_card_err)
    }

    /// Sends one APDU outside a transaction (each call is then its own exchange).
    pub fn transmit(&self, apdu: &[u8]) -> Result<Response, LinkError> {
        transmit_following(|cmd| recv(|c, b| self.card.transmit(c, b).map(|r| r.len()), cmd), apdu)
    }
}

/// An exclusive PC/SC transaction on a [`Link`].
pub struct Exchange<'a> {
    tx: pcsc::Transaction<'a>,
}

impl Exchange<'_> {
    /// Sends one APDU; `61xx` answers are completed with GET RESPONSE.
    pub fn transmit(&self, apdu: &[u8]) -> Result<Response, LinkError> {
        transmit_following(|cmd| recv(|c, b| self.tx.transmit(c, b).map(|r| r.len()), cmd), apdu)
    }
}

fn transmit_following(
    mut send: impl FnMut(&[u8]) -> Result<Vec<u8>, pcsc::Error>,
    apdu: &[u8],
) -> Result<Response, LinkError> {
    let mut out = Vec::new();
    let mut cmd = apdu.to_vec();
    // Bounded: the card cannot keep us in a 61xx loop forever.
    for _ in 0..256 {
        let resp = Response::from_bytes(&send(&cmd).map_err(map_card_err)?)?;
        out.extend_from_slice(&resp.data);
        let [sw1, sw2] = resp.sw.to_be_bytes();
        if sw1 != 0x61 {
            return Ok(Response { data: out, sw: resp.sw });
        }
        // GET RESPONSE on the command's logical channel.
        cmd = vec![apdu.first().copied().unwrap_or(0) & 0x03, 0xC0, 0x00, 0x00, sw2];
    }
    Err(LinkError::ShortResponse)
}

fn recv(f: impl FnOnce(&[u8], &mut [u8]) -> Result<usize, pcsc::Error>, cmd: &[u8]) -> Result<Vec<u8>, pcsc::Error> {
    let mut buf = vec![0u8; RECV_MAX];
    let n = f(cmd, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}
