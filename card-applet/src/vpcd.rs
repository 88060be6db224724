//! The vpcd transport: puts a [`VSmartCard`] into a slot of vsmartcard's `vpcd` reader driver.
//!
//! `vpcd` (loaded by pcscd) listens on TCP, one port per slot (35963 for "Virtual PCD 00 00",
//! 35964 for "Virtual PCD 00 01"); the card connects to it. Every message in either direction is
//! a frame: a 2-byte big-endian length, then that many bytes. From vpcd to the card a 1-byte
//! body is a control command (`0` power off, `1` power on, `2` reset, `4` send the ATR) and a
//! longer body is a command APDU; the card answers the ATR request and each APDU with one frame.
//!
//! Why our own frame loop instead of `vpicc::Connection`: Debian's vpcd (vsmartcard 3.3) writes
//! a frame's length and its body with two separate `send` calls. With delayed ACKs on the card's
//! socket, the second small segment waits for the ACK of the first (Nagle on vpcd's side), and
//! every APDU stalls for ~40 ms. Linux turns `TCP_QUICKACK` off again by itself after a while,
//! so it must be re-armed before every read; the stock connection cannot do that. With it the
//! round trip through pcscd stays well under a millisecond.
//!
//! ```no_run
//! use card_applet::vpcd::{serve, Options};
//! struct Card;
//! impl vpicc::VSmartCard for Card {
//!     fn execute(&mut self, _apdu: &[u8]) -> Vec<u8> { vec![0x90, 0x00] }
//! }
//! let opts = Options::new("127.0.0.1:35963");
//! serve(&mut Card, &opts, |addr| eprintln!("connected to {addr}"));
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use socket2::SockRef;
use tracing::{debug, info, warn};

pub use vpicc::VSmartCard;

/// The port of vpcd's first slot, "Virtual PCD 00 00".
pub const DEFAULT_PORT: u16 = 35963;
/// The default vpcd address, the first slot on loopback.
pub const DEFAULT_ADDR: &str = "127.0.0.1:35963";

// vpcd's control commands: a frame with a 1-byte body (vsmartcard's virtualsmartcard API).
const CTRL_POWER_OFF: u8 = 0;
const CTRL_POWER_ON: u8 = 1;
const CTRL_RESET: u8 = 2;
const CTRL_GET_ATR: u8 = 4;

/// How to reach vpcd and how to behave on the socket.
#[derive(Clone, Debug)]
pub struct Options {
    /// `HOST:PORT` of the vpcd slot.
    pub addr: String,
    /// Re-arm `TCP_QUICKACK` before every read. Only the benchmark turns this off, to show
    /// what it costs.
    pub quickack: bool,
    /// First wait before reconnecting; doubles on each failure up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest wait between two connection attempts.
    pub max_backoff: Duration,
}

impl Options {
    /// Defaults for a card at `addr`: QUICKACK on, backoff 50 ms doubling to 2 s.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            quickack: true,
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// One connection to vpcd.
#[derive(Debug)]
pub struct Session {
    stream: TcpStream,
    quickack: bool,
    peer: SocketAddr,
}

impl Session {
    /// Connects to the first address of `addr` that accepts, with `TCP_NODELAY` set.
    pub fn connect(addr: &str, quickack: bool) -> io::Result<Self> {
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: no address"));
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect(sa) {
                Ok(stream) => return Self::from_stream(stream, quickack),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Wraps an already connected stream (tests use a loopback listener as a fake vpcd).
    pub fn from_stream(stream: TcpStream, quickack: bool) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        Ok(Self { stream, quickack, peer })
    }

    /// The vpcd address this session is connected to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Serves `card` until vpcd closes the connection (`Ok`) or the socket fails (`Err`).
    /// When the connection ends, the card is powered off: pcscd is gone, so is the power.
    pub fn run<V: VSmartCard>(&mut self, card: &mut V) -> io::Result<()> {
        let result = self.serve_frames(card);
        card.power_off();
        result
    }

    fn serve_frames<V: VSmartCard>(&mut self, card: &mut V) -> io::Result<()> {
        let (stream, quickack, peer) = (&self.stream, self.quickack, self.peer);
        let arm = || {
            if quickack {
                SockRef::from(stream).set_tcp_quickack(true)?;
            }
            Ok(())
        };
        let ended = serve_frames(&mut &*stream, &mut &*stream, card, arm);
        if ended.is_ok() {
            info!(vpcd = %peer, "vpcd closed the connection");
        }
        ended
    }
}

/// The frame loop over any byte stream: reads frames from `r` (calling `arm` before every
/// read), hands control commands and APDUs to `card`, writes each answer to `w` as one frame.
/// `Ok` when the stream ends cleanly between frames; `Err` for a torn frame, an empty frame, or
/// a failed read or write. The fuzz target `vpcd_frames` feeds it arbitrary streams.
pub fn serve_frames<R: Read, W: Write, V: VSmartCard>(
    r: &mut R,
    w: &mut W,
    card: &mut V,
    mut arm: impl FnMut() -> io::Result<()>,
) -> io::Result<()> {
    loop {
        let Some(frame) = read_frame_from(r, &mut arm)? else {
            return Ok(());
        };
        match frame.as_slice() {
            [] => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "vpcd sent an empty frame"));
            }
            [CTRL_POWER_OFF] => {
                debug!("power off");
                card.power_off();
            }
            [CTRL_POWER_ON] => {
                debug!("power on");
                card.power_on();
            }
            [CTRL_RESET] => {
                debug!("reset");
                card.reset();
            }
            [CTRL_GET_ATR] => {
                let atr = card.atr().to_vec();
                debug!(len = atr.len(), "ATR requested");
                write_frame_to(w, &atr)?;
            }
            [other] => warn!(command = other, "unknown vpcd control command ignored"),
            apdu => {
                let response = card.execute(apdu);
                log_exchange(apdu, &response);
                write_frame_to(w, &response)?;
            }
        }
    }
}

/// Writes one frame with a single `write_all`, so length and body leave together
/// (`write_all` itself retries a write interrupted by a signal). An answer longer than a frame
/// can carry becomes `6F00`.
fn write_frame_to<W: Write>(w: &mut W, body: &[u8]) -> io::Result<()> {
    let body = match u16::try_from(body.len()) {
        Ok(_) => body,
        Err(_) => {
            warn!(len = body.len(), "response longer than a vpcd frame, answering 6F00");
            &[0x6F, 0x00]
        }
    };
    let len = u16::try_from(body.len()).unwrap_or(2).to_be_bytes();
    let mut frame = Vec::with_capacity(2 + body.len());
    frame.extend_from_slice(&len);
    frame.extend_from_slice(body);
    w.write_all(&frame)
}

/// Reads one frame from `r`, calling `arm` before every read (to re-arm `TCP_QUICKACK`);
/// `None` on a clean end of stream before a frame started.
fn read_frame_from<R: Read>(r: &mut R, arm: &mut impl FnMut() -> io::Result<()>) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    // The first byte decides between a clean close and a torn frame.
    if read_some(r, &mut len[..1], arm)? == 0 {
        return Ok(None);
    }
    fill(r, &mut len[1..], arm)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    fill(r, &mut body, arm)?;
    Ok(Some(body))
}

/// Fills `buf`; an end of stream before it is full is `UnexpectedEof` (a torn frame).
fn fill<R: Read>(r: &mut R, buf: &mut [u8], arm: &mut impl FnMut() -> io::Result<()>) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match read_some(r, &mut buf[filled..], arm)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(())
}

/// One `read`, armed first. A read interrupted by a signal (`ErrorKind::Interrupted`) has
/// read nothing and is retried: it is no reason to drop the connection to vpcd.
fn read_some<R: Read>(r: &mut R, buf: &mut [u8], arm: &mut impl FnMut() -> io::Result<()>) -> io::Result<usize> {
    loop {
        arm()?;
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Logs an APDU exchange: header bytes, lengths and status word; never command data (PINs,
/// personalization) nor response data (OTPs).
fn log_exchange(apdu: &[u8], response: &[u8]) {
    let ins = apdu.get(1).copied().unwrap_or(0);
    let cla = apdu.first().copied().unwrap_or(0);
    let sw = match response {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    debug!(
        cla = format_args!("{cla:02X}"),
        ins = format_args!("{ins:02X}"),
        apdu_len = apdu.len(),
        response_len = response.len(),
        sw = format_args!("{sw:04X}"),
        "apdu"
    );
}

/// The applet as vpcd sees it: power on, power off and reset all clear the volatile state
/// (verified PIN, admin session, selection, pending GET RESPONSE data).
impl<S: crate::Store> VSmartCard for crate::CardFront<S> {
    fn atr(&self) -> &[u8] {
        crate::CardFront::<S>::atr()
    }
    fn power_on(&mut self) {
        crate::CardFront::reset(self);
    }
    fn power_off(&mut self) {
        crate::CardFront::power_off(self);
    }
    fn reset(&mut self) {
        crate::CardFront::reset(self);
    }
    fn execute(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.process(apdu)
    }
}

/// Serves `card` forever: connects to vpcd, serves until the connection ends, powers the card
/// off, and reconnects with a backoff that doubles from `min_backoff` up to `max_backoff`
/// (pcscd restarts, vpcd not up yet). `on_connect` runs after every successful connection.
pub fn serve<V: VSmartCard>(card: &mut V, opts: &Options, mut on_connect: impl FnMut(SocketAddr)) -> ! {
    let mut backoff = opts.min_backoff;
    loop {
        match Session::connect(&opts.addr, opts.quickack) {
            Ok(mut session) => {
                backoff = opts.min_backoff;
                info!(vpcd = %session.peer(), quickack = opts.quickack, "connected to vpcd");
                on_connect(session.peer());
                if let Err(e) = session.run(card) {
                    warn!(error = %e, "vpcd connection lost");
                }
            }
            Err(e) => {
                warn!(vpcd = %opts.addr, error = %e, retry_in_ms = backoff.as_millis(), "cannot reach vpcd");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(opts.max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use std::net::TcpListener;

    /// Records what the transport asked of it and answers APDUs with `INS ‖ 9000`.
    #[derive(Default)]
    struct Probe {
        events: Vec<String>,
    }

    impl VSmartCard for Probe {
        fn atr(&self) -> &[u8] {
            &[0x3B, 0x80, 0x80, 0x01, 0x01]
        }
        fn power_on(&mut self) {
            self.events.push("on".into());
        }
        fn power_off(&mut self) {
            self.events.push("off".into());
        }
        fn reset(&mut self) {
            self.events.push("reset".into());
        }
        fn execute(&mut self, apdu: &[u8]) -> Vec<u8> {
            self.events.push(format!("apdu {}", apdu.len()));
            vec![apdu[1], 0x90, 0x00]
        }
    }

    fn read_reply(s: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut body).unwrap();
        body
    }

    /// A fake vpcd that, like Debian's, sends length and body in separate writes.
    #[test]
    fn frames_control_commands_and_apdus_like_vpcd() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let card = std::thread::spawn(move || {
            let mut probe = Probe::default();
            let mut session = Session::connect(&addr.to_string(), true).unwrap();
            session.run(&mut probe).unwrap();
            probe.events
        });
        let (mut vpcd, _) = listener.accept().unwrap();
        vpcd.set_nodelay(true).unwrap();
        let send = |s: &mut TcpStream, body: &[u8]| {
            s.write_all(&u16::try_from(body.len()).unwrap().to_be_bytes()).unwrap();
            s.flush().unwrap();
            s.write_all(body).unwrap();
        };
        send(&mut vpcd, &[CTRL_POWER_ON]);
        send(&mut vpcd, &[CTRL_GET_ATR]);
        assert_eq!(read_reply(&mut vpcd), vec![0x3B, 0x80, 0x80, 0x01, 0x01]);
        send(&mut vpcd, &[0x00, 0xA4, 0x04, 0x00, 0x01, 0xF0]);
        assert_eq!(read_reply(&mut vpcd), vec![0xA4, 0x90, 0x00]);
        send(&mut vpcd, &[CTRL_RESET]);
        send(&mut vpcd, &[9]); // unknown control byte: ignored, the session goes on
        let long = vec![0x80, 0xCA, 0xDF, 0x01, 0x00, 0x01, 0x00];
        send(&mut vpcd, &long);
        assert_eq!(read_reply(&mut vpcd), vec![0xCA, 0x90, 0x00]);
        send(&mut vpcd, &[CTRL_POWER_OFF]);
        drop(vpcd);
        let events = card.join().unwrap();
        // The final "off" is the transport powering the card down when vpcd goes away.
        assert_eq!(events, ["on", "apdu 6", "reset", "apdu 7", "off", "off"]);
    }

    /// Accepts one connection, failing (instead of hanging) when none comes in time.
    fn accept_within(listener: &TcpListener, limit: Duration) -> TcpStream {
        let deadline = std::time::Instant::now() + limit;
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    return s;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "the card did not connect within {limit:?}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// vpcd going away (pcscd restart): the card is powered off and `serve` connects again.
    #[test]
    fn serve_reconnects_after_vpcd_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (connected, connects) = std::sync::mpsc::channel();
        let (events_tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            struct Reporting(std::sync::mpsc::Sender<&'static str>);
            impl VSmartCard for Reporting {
                fn power_off(&mut self) {
                    let _ = self.0.send("off");
                }
                fn execute(&mut self, _apdu: &[u8]) -> Vec<u8> {
                    vec![0x90, 0x00]
                }
            }
            let mut opts = Options::new(addr.to_string());
            opts.min_backoff = Duration::from_millis(1);
            serve(&mut Reporting(events_tx), &opts, move |peer| {
                let _ = connected.send(peer);
            })
        });
        listener.set_nonblocking(true).unwrap();
        for round in 0..2 {
            let mut vpcd = accept_within(&listener, Duration::from_secs(10));
            assert_eq!(connects.recv_timeout(Duration::from_secs(10)).unwrap(), addr, "connection {round}");
            vpcd.write_all(&[0x00, 0x01, CTRL_GET_ATR]).unwrap();
            assert_eq!(read_reply(&mut vpcd), vpicc::DEFAULT_ATR);
            drop(vpcd);
            assert_eq!(events.recv_timeout(Duration::from_secs(10)).unwrap(), "off");
        }
        // The serving thread keeps retrying against the closed listener until the test ends.
    }

    #[test]
    fn torn_frame_is_an_error_and_powers_the_card_off() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let card = std::thread::spawn(move || {
            let mut probe = Probe::default();
            let mut session = Session::connect(&addr.to_string(), true).unwrap();
            let result = session.run(&mut probe);
            (result.map_err(|e| e.kind()), probe.events)
        });
        let (mut vpcd, _) = listener.accept().unwrap();
        vpcd.write_all(&[0x00, 0x05, 0x00, 0xA4]).unwrap();
        drop(vpcd);
        let (result, events) = card.join().unwrap();
        assert_eq!(result, Err(io::ErrorKind::UnexpectedEof));
        assert_eq!(events, ["off"]);
    }

    #[test]
    fn empty_frame_is_a_protocol_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let card = std::thread::spawn(move || {
            let mut probe = Probe::default();
            let mut session = Session::connect(&addr.to_string(), false).unwrap();
            session.run(&mut probe).map_err(|e| e.kind())
        });
        let (mut vpcd, _) = listener.accept().unwrap();
        vpcd.write_all(&[0x00, 0x00]).unwrap();
        assert_eq!(card.join().unwrap(), Err(io::ErrorKind::InvalidData));
    }

    /// Hands out `data` a few bytes at a time, failing with `Interrupted` before every piece,
    /// as a read hit by a signal does.
    struct Interrupting {
        data: Vec<u8>,
        pos: usize,
        interrupted: bool,
    }

    impl Read for Interrupting {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.interrupted = false;
            let n = buf.len().min(3).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn interrupted_reads_are_retried_not_fatal() {
        let apdu = [0x00, 0xA4, 0x04, 0x00, 0x02, 0xAB, 0xCD];
        let mut data = vec![0x00, u8::try_from(apdu.len()).unwrap()];
        data.extend_from_slice(&apdu);
        let mut r = Interrupting { data, pos: 0, interrupted: false };
        let mut arms = 0;
        let frame = read_frame_from(&mut r, &mut || {
            arms += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(frame.as_deref(), Some(&apdu[..]));
        assert_eq!(arms, 10, "re-armed before each of the 5 reads and 5 retries");
        // Then the stream ends cleanly between frames.
        assert_eq!(read_frame_from(&mut r, &mut || Ok(())).unwrap(), None);
    }
}
