//! A fault-injecting HTTP proxy between the bridge and the bank, for the network-fault matrix
//! (`tests/tests/e2e/net_faults.rs`, `docs/reliability.md`).
//!
//! The proxy listens on loopback and relays plain HTTP/1.1 to the bank, one whole message at a
//! time: it reads a request (head and body, by `Content-Length` or chunked), forwards it, reads
//! the whole answer and passes it back. Because it sees whole messages it can act on one
//! exchange: the `nth` request whose method and path match a [`Route`] gets the [`Fault`],
//! once; every other request is relayed untouched. It speaks plain HTTP only (a proxy in
//! front of TLS would have to terminate it), so the bank under test serves `http://` on
//! loopback with `--public-url` set to the proxy's address, its verifier id.
//!
//! Each fault is what a real network or a real bank does at the worst moment:
//!
//! | fault | the bank | the bridge |
//! | --- | --- | --- |
//! | [`Fault::DropRequest`] | never sees the request | its connection closes after sending |
//! | [`Fault::DropAnswer`] | answered (it committed: the proxy read the whole answer) | its connection closes without an answer |
//! | [`Fault::Duplicate`] | gets the request twice: a copy on a second connection, answered and thrown away, then the original | gets the answer to the original (the bank's second sight of it) |
//! | [`Fault::DelayAnswer`] | answered | gets nothing until it gives up (its own timeout) and closes |
//! | [`Fault::ResetRequest`] | gets the head and part of the body, then a reset (RST) | gets a reset |
//! | [`Fault::ResetAnswer`] | answered | gets the answer's head and part of its body, then a reset |
//! | [`Fault::RestartBank`] | is restarted by the test while the proxy holds the request, then gets it on a new connection | waits, then gets the new bank's answer |
//!
//! The proxy reports on [`FaultProxy::fired`] when it has injected its fault (for
//! [`Fault::RestartBank`], when it holds the request: the test restarts the bank and calls
//! [`FaultProxy::resume`]). [`FaultProxy::seen`] lists every request it relayed, in order, so
//! a test can check that the step it faults is one the bridge really makes.

// Test support: a panic is how a broken proxy reports, as in the tests that use it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// The requests of one step: a method and a path whose `*` segments match any one segment
/// (`/api/v1/transfers/*/confirm`); the query is ignored and the path must match whole, so
/// `/api/v1/login` is not `/api/v1/login/challenge`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
}

impl Route {
    pub const fn new(method: &'static str, path: &'static str) -> Route {
        Route { method, path }
    }

    /// Whether a request line's method and target are this route's.
    pub fn matches(&self, method: &str, target: &str) -> bool {
        let path = target.split(['?', '#']).next().unwrap_or("");
        let (want, got): (Vec<&str>, Vec<&str>) = (self.path.split('/').collect(), path.split('/').collect());
        method == self.method && want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| *w == "*" || w == g)
    }
}

/// What the proxy does to the one exchange it acts on (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    DropRequest,
    DropAnswer,
    Duplicate,
    DelayAnswer,
    ResetRequest,
    ResetAnswer,
    RestartBank,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::DropRequest,
        Fault::DropAnswer,
        Fault::Duplicate,
        Fault::DelayAnswer,
        Fault::ResetRequest,
        Fault::ResetAnswer,
        Fault::RestartBank,
    ];

    /// Whether the bank has processed the request when the bridge sees the fault (for a
    /// restart, the new bank processes it and the bridge hears the answer).
    pub fn bank_processed(self) -> bool {
        !matches!(self, Fault::DropRequest | Fault::ResetRequest)
    }
}

/// What the proxy did, sent on [`FaultProxy::fired`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    pub fault: Fault,
    /// The request line it acted on (`POST /api/v1/transfers/tx-.../confirm`).
    pub request: String,
    /// The status line of the bank's answer, when the bank answered before the fault.
    pub answer: Option<String>,
}

/// Where and how often to act: the `nth` (from 1) request matching `route` gets `fault`.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub route: Route,
    pub nth: usize,
    pub fault: Fault,
}

pub struct FaultProxy {
    pub port: u16,
    /// One message when the fault was injected (for [`Fault::RestartBank`]: when the request
    /// is held).
    pub fired: mpsc::Receiver<Fired>,
    resume: mpsc::Sender<()>,
    seen: Arc<Mutex<Vec<String>>>,
}

/// How long a held or delayed exchange waits for the test or the client at most, so that a
/// broken test ends instead of hanging.
const HOLD: Duration = Duration::from_secs(120);

struct Shared {
    bank_port: u16,
    plan: Plan,
    matched: AtomicUsize,
    armed: AtomicBool,
    fired: Mutex<mpsc::Sender<Fired>>,
    resume: Mutex<mpsc::Receiver<()>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Relays connections accepted on `listener` to the bank on 127.0.0.1:`bank_port`,
    /// injecting `plan` once.
    pub fn start(listener: TcpListener, bank_port: u16, plan: Plan) -> FaultProxy {
        let port = listener.local_addr().unwrap().port();
        let (fired_tx, fired) = mpsc::channel();
        let (resume, resume_rx) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            bank_port,
            plan,
            matched: AtomicUsize::new(0),
            armed: AtomicBool::new(true),
            fired: Mutex::new(fired_tx),
            resume: Mutex::new(resume_rx),
            seen: seen.clone(),
        });
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let shared = shared.clone();
                std::thread::spawn(move || relay(client, &shared));
            }
        });
        FaultProxy { port, fired, resume, seen }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Lets a request held by [`Fault::RestartBank`] go on, to the bank now listening.
    pub fn resume(&self) {
        self.resume.send(()).unwrap();
    }

    /// The request lines relayed so far (`METHOD PATH`), in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// One bridge connection: request after request until it closes or a fault ends it.
fn relay(client: TcpStream, shared: &Shared) {
    let mut client = Conn::new(client);
    let mut bank: Option<Conn> = None;
    while let Some(req) = client.read_message(None) {
        let line = req.start_line();
        let (method, target) = {
            let mut parts = line.split(' ');
            (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned())
        };
        shared.seen.lock().unwrap().push(format!("{method} {target}"));
        let hit = shared.plan.route.matches(&method, &target)
            && shared.matched.fetch_add(1, Ordering::SeqCst) + 1 == shared.plan.nth
            && shared.armed.swap(false, Ordering::SeqCst);
        if !hit {
            if !forward(&mut bank, shared.bank_port, &req, &method, &mut client) {
                return;
            }
            continue;
        }
        let fault = shared.plan.fault;
        let report = |answer: Option<&Message>| {
            let fired = Fired { fault, request: line.clone(), answer: answer.map(Message::start_line) };
            let _ = shared.fired.lock().unwrap().send(fired);
        };
        match fault {
            Fault::DropRequest => {
                client.close();
                report(None);
                return;
            }
            Fault::DropAnswer => {
                let answer = exchange(&mut bank, shared.bank_port, &req, &method);
                client.close();
                report(answer.as_ref());
                return;
            }
            Fault::Duplicate => {
                // The copy first, on its own connection, answered in full: the original then
                // reaches a bank that has already processed it.
                let mut copy = None;
                let answer = exchange(&mut copy, shared.bank_port, &req, &method);
                report(answer.as_ref());
                if !forward(&mut bank, shared.bank_port, &req, &method, &mut client) {
                    return;
                }
            }
            Fault::DelayAnswer => {
                let answer = exchange(&mut bank, shared.bank_port, &req, &method);
                // Held until the bridge gives up and closes (or HOLD passes).
                client.wait_closed(HOLD);
                client.close();
                report(answer.as_ref());
                return;
            }
            Fault::ResetRequest => {
                if connected(&mut bank, shared.bank_port).is_some() {
                    if let Some(mut b) = bank.take() {
                        let _ = b.stream.write_all(req.part());
                        b.reset();
                    }
                }
                client.reset();
                report(None);
                return;
            }
            Fault::ResetAnswer => {
                let answer = exchange(&mut bank, shared.bank_port, &req, &method);
                if let Some(a) = &answer {
                    let _ = client.stream.write_all(a.part());
                }
                client.reset();
                report(answer.as_ref());
                return;
            }
            Fault::RestartBank => {
                report(None);
                // The test restarts the bank now; the old connection to it is dead.
                let _ = shared.resume.lock().unwrap().recv_timeout(HOLD);
                if let Some(old) = bank.take() {
                    old.close();
                }
                if !forward(&mut bank, shared.bank_port, &req, &method, &mut client) {
                    return;
                }
            }
        }
    }
    client.close();
    if let Some(b) = bank {
        b.close();
    }
}

/// The connection to the bank, opened if needed; `None` when the bank does not answer.
fn connected(bank: &mut Option<Conn>, port: u16) -> Option<&mut Conn> {
    if bank.is_none() {
        *bank = TcpStream::connect(("127.0.0.1", port)).ok().map(Conn::new);
    }
    bank.as_mut()
}

/// Sends `req` to the bank and reads its whole answer; `None` (and the connection dropped)
/// when the bank is not there or closes first.
fn exchange(bank: &mut Option<Conn>, port: u16, req: &Message, method: &str) -> Option<Message> {
    let b = connected(bank, port)?;
    let answer = b.stream.write_all(&req.bytes).ok().and_then(|()| b.read_message(Some(method)));
    if answer.is_none() {
        *bank = None;
    }
    answer
}

/// Relays one exchange; `false` when it failed and the bridge's connection was closed (as a
/// dead bank's would be).
fn forward(bank: &mut Option<Conn>, port: u16, req: &Message, method: &str, client: &mut Conn) -> bool {
    match exchange(bank, port, req, method) {
        Some(answer) if client.stream.write_all(&answer.bytes).is_ok() => true,
        _ => {
            client.close();
            false
        }
    }
}

/// One whole HTTP/1.1 message as it came off the wire.
struct Message {
    bytes: Vec<u8>,
    /// Where the body starts.
    body_at: usize,
}

impl Message {
    fn start_line(&self) -> String {
        let end = self.bytes.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
        String::from_utf8_lossy(&self.bytes[..end]).into_owned()
    }

    /// What a reset mid-body lets through: the head and half the body, or half the head of a
    /// message without a body.
    fn part(&self) -> &[u8] {
        let body = self.bytes.len() - self.body_at;
        let end = if body > 0 { self.body_at + body / 2 } else { self.body_at / 2 };
        &self.bytes[..end]
    }
}

/// A TCP stream with what was read past the last whole message.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn { stream, buf: Vec::new() }
    }

    /// More bytes into the buffer; `false` at the end of the stream or on an error.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next whole message: a request (`answer_to: None`) or the answer to a request with
    /// that method. `None` if the stream ends first.
    fn read_message(&mut self, answer_to: Option<&str>) -> Option<Message> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                (n.trim() == name).then(|| v.trim().to_owned())
            })
        };
        let no_body = match answer_to {
            None => false,
            Some(method) => {
                let status = head.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
                method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304
            }
        };
        let end = if no_body {
            head_end
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.chunked_end(head_end)?
        } else if let Some(len) = header("content-length") {
            let len: usize = len.parse().ok()?;
            while self.buf.len() < head_end + len {
                if !self.fill() {
                    return None;
                }
            }
            head_end + len
        } else if answer_to.is_some() {
            // An answer without a length ends with the connection.
            while self.fill() {}
            self.buf.len()
        } else {
            head_end
        };
        let bytes: Vec<u8> = self.buf.drain(..end).collect();
        Some(Message { bytes, body_at: head_end })
    }

    /// Where a chunked body that starts at `at` ends (after its last chunk and trailers).
    fn chunked_end(&mut self, mut at: usize) -> Option<usize> {
        loop {
            let line_end = loop {
                if let Some(i) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                    break at + i;
                }
                if !self.fill() {
                    return None;
                }
            };
            let size_text = String::from_utf8_lossy(&self.buf[at..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                // Trailers, then an empty line.
                loop {
                    let end = loop {
                        if let Some(i) = self.buf[at..].windows(2).position(|w| w == b"\r\n") {
                            break at + i;
                        }
                        if !self.fill() {
                            return None;
                        }
                    };
                    let empty = end == at;
                    at = end + 2;
                    if empty {
                        return Some(at);
                    }
                }
            }
            while self.buf.len() < at + size + 2 {
                if !self.fill() {
                    return None;
                }
            }
            at += size + 2;
        }
    }

    /// Waits until the other side closes (or `limit` passes).
    fn wait_closed(&mut self, limit: Duration) {
        let _ = self.stream.set_read_timeout(Some(limit));
        while self.fill() {}
    }

    fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Closes with a reset (RST) instead of a FIN: `SO_LINGER` of zero, then close (this is
    /// the socket's only descriptor).
    fn reset(self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        drop(self.stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_whole_paths_with_wildcard_segments() {
        let confirm = Route::new("POST", "/api/v1/transfers/*/confirm");
        assert!(confirm.matches("POST", "/api/v1/transfers/tx-1/confirm"));
        assert!(!confirm.matches("GET", "/api/v1/transfers/tx-1/confirm"));
        assert!(!confirm.matches("POST", "/api/v1/transfers/tx-1"));
        let login = Route::new("POST", "/api/v1/login");
        assert!(login.matches("POST", "/api/v1/login"));
        assert!(login.matches("POST", "/api/v1/login?x=1"));
        assert!(!login.matches("POST", "/api/v1/login/challenge"));
    }

    #[test]
    fn messages_are_read_whole_by_length_or_chunks() {
        let (a, b) = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            (a, l.accept().unwrap().0)
        };
        let mut w = a;
        w.write_all(b"POST /x HTTP/1.1\r\ncontent-length: 4\r\n\r\nabcdGET /y HTTP/1.1\r\n\r\n").unwrap();
        w.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n").unwrap();
        let mut r = Conn::new(b);
        let first = r.read_message(None).unwrap();
        assert_eq!(first.start_line(), "POST /x HTTP/1.1");
        assert!(first.bytes.ends_with(b"abcd"));
        assert_eq!(first.part().len(), first.body_at + 2);
        let second = r.read_message(None).unwrap();
        assert_eq!(second.start_line(), "GET /y HTTP/1.1");
        assert_eq!(second.part().len(), second.body_at / 2);
        let third = r.read_message(Some("GET")).unwrap();
        assert!(third.bytes.ends_with(b"0\r\n\r\n"), "{:?}", String::from_utf8_lossy(&third.bytes));
        drop(w);
        assert!(r.read_message(None).is_none());
    }
}
