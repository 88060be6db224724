//! APDU round trip through pcscd and vpcd, as a ratio to a raw TCP loopback round trip of the
//! same sizes measured in the same run; then the card with `TCP_QUICKACK` re-arming turned off,
//! to show what the re-arming buys.
//!
//! ```text
//! sudo bash scripts/setup.sh          # pcscd + vpcd up
//! cargo bench -p e2e-tests --bench apdu_rtt
//! ```
//!
//! The APDU is GET DATA `DF05` (applet version) inside one PC/SC transaction: the client goes
//! to pcscd over its UNIX socket, pcscd's vpcd driver to the card over TCP (2-byte length
//! frames), and back. The baseline is a client and an echo thread exchanging frames of the
//! command's and the response's sizes over loopback TCP with `TCP_NODELAY`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use card_applet::command::DataObject;
use card_applet::host;
use card_link::{PcscCard, TransportExt};
use e2e_tests::{lock_any_slot, require_pcscd, VirtualCard};

const N_FAST: usize = 3000;
const N_SLOW: usize = 25;
const WARMUP: usize = 100;

struct Stats {
    median: Duration,
    p99: Duration,
    n: usize,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let n = samples.len();
    Stats { median: samples[n / 2], p99: samples[(n * 99 / 100).min(n - 1)], n }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print(label: &str, s: &Stats) {
    println!("apdu_rtt: {label:<44} median {:>9.1} µs   p99 {:>9.1} µs   (n = {})", us(s.median), us(s.p99), s.n);
}

/// Runs a card on a free slot (QUICKACK re-arming on or off) and times GET DATA through pcscd.
fn card_rtt(state: &std::path::Path, log: &std::path::Path, quickack: bool, n: usize) -> (Stats, usize, usize) {
    let extra: &[&str] = if quickack { &[] } else { &["--no-quickack"] };
    let card = VirtualCard::spawn_with(lock_any_slot(), state, log, extra).unwrap_or_else(|e| panic!("{e}"));
    let mut link = PcscCard::connect(&card.reader(), e2e_tests::WAIT).unwrap();
    let apdu = host::get_data(DataObject::AppletVersion);
    let (samples, resp_len) = link
        .exchange(|ex| {
            let selected = ex.transmit(&host::select())?;
            assert!(selected.ends_with(&[0x90, 0x00]), "SELECT failed");
            let first = ex.transmit(&apdu)?;
            assert!(first.ends_with(&[0x90, 0x00]), "GET DATA DF05 answered {first:02X?}");
            let resp_len = first.len();
            for _ in 0..WARMUP.min(n) {
                ex.transmit(&apdu)?;
            }
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let r = ex.transmit(&apdu)?;
                samples.push(t.elapsed());
                assert!(r.ends_with(&[0x90, 0x00]));
            }
            Ok::<_, card_link::Error>((samples, resp_len))
        })
        .unwrap();
    (stats(samples), apdu.len(), resp_len)
}

fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut len = [0u8; 2];
    if s.read_exact(&mut len).is_err() {
        return false;
    }
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    s.read_exact(buf).is_ok()
}

/// A framed echo over loopback: the client sends `cmd_len` bytes, the server answers
/// `resp_len` bytes, both 2-byte-length framed, both sockets with TCP_NODELAY and the server
/// re-arming QUICKACK like the card does.
fn raw_rtt(cmd_len: usize, resp_len: usize, n: usize) -> Stats {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut buf = Vec::new();
        let mut out = u16::try_from(resp_len).unwrap().to_be_bytes().to_vec();
        out.resize(2 + resp_len, 0x90);
        loop {
            socket2::SockRef::from(&s).set_tcp_quickack(true).unwrap();
            if !read_frame(&mut s, &mut buf) {
                break;
            }
            s.write_all(&out).unwrap();
        }
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let mut frame = u16::try_from(cmd_len).unwrap().to_be_bytes().to_vec();
    frame.resize(2 + cmd_len, 0x00);
    let mut buf = Vec::new();
    let round = |c: &mut TcpStream, buf: &mut Vec<u8>| {
        c.write_all(&frame).unwrap();
        assert!(read_frame(c, buf));
    };
    for _ in 0..WARMUP {
        round(&mut c, &mut buf);
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        round(&mut c, &mut buf);
        samples.push(t.elapsed());
    }
    drop(c);
    server.join().unwrap();
    stats(samples)
}

fn main() {
    // `cargo bench` passes --bench; a plain `cargo test` of benches passes nothing: run anyway.
    require_pcscd();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("bench.state");
    card_applet::state::create_factory(&state, &[0x5A; 32]).unwrap();
    let log = dir.path().join("virtual-card.log");

    let (on, cmd_len, resp_len) = card_rtt(&state, &log, true, N_FAST);
    let raw = raw_rtt(cmd_len, resp_len, N_FAST);
    let (off, _, _) = card_rtt(&state, &log, false, N_SLOW);

    println!("apdu_rtt: GET DATA DF05, {cmd_len}-byte command, {resp_len}-byte response");
    print("raw TCP loopback framed echo (baseline)", &raw);
    print("APDU through pcscd + vpcd, QUICKACK re-armed", &on);
    print("APDU through pcscd + vpcd, QUICKACK off", &off);
    println!(
        "apdu_rtt: ratio pcscd/raw (median) = {:.1}x, p99 = {:.1}x",
        us(on.median) / us(raw.median),
        us(on.p99) / us(raw.p99)
    );
    println!(
        "apdu_rtt: ratio QUICKACK off/on (median) = {:.0}x; round trip with re-arming {} 1 ms",
        us(off.median) / us(on.median),
        if on.median < Duration::from_millis(1) { "stays under" } else { "EXCEEDS" }
    );
}
