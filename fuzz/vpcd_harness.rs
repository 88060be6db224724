//! The harness of the `vpcd_frames` target: what vpcd may send the card, as one byte stream,
//! through the card's frame loop (`card_applet::vpcd::serve_frames`) to a factory-fresh card.
//!
//! Input: the first byte sets how many bytes each `read` returns at most (1-16, so frames
//! arrive split as TCP may split them); the rest is the stream from vpcd. The harness walks the
//! stream as vpcd frames itself and checks that the loop:
//!
//! - answers exactly the frames that need an answer (an ATR request, every APDU), each as one
//!   well-formed frame: the ATR request with the card's ATR, an APDU with a body that ends in a
//!   status word;
//! - ends `Ok` when the stream ends between frames, and `Err` for a torn frame (the stream ends
//!   inside one) or an empty frame, answering nothing after it;
//! - never panics, whatever the stream.
//!
//! Shared with the stable test `card-applet/tests/fuzz_vpcd.rs`.

use std::io::{self, Read};

use card_applet::state::{CardState, MemStore};
use card_applet::vpcd::serve_frames;
use card_applet::{Card, CardFront};

/// A reader that hands out at most `chunk` bytes per `read`.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What the frame loop must do with a stream: the answers it owes, in order (`true` for an ATR
/// request, answered with the ATR; `false` for an APDU, whose answer ends in a status word), and
/// whether the stream ends cleanly.
fn expected(mut rest: &[u8]) -> (Vec<bool>, bool) {
    let mut atr_requests = Vec::new();
    loop {
        if rest.is_empty() {
            return (atr_requests, true);
        }
        if rest.len() < 2 {
            return (atr_requests, false);
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            return (atr_requests, false);
        }
        let body = &rest[2..2 + len];
        match body {
            [] => return (atr_requests, false),
            [4] => atr_requests.push(true),
            [_] => {}
            _ => atr_requests.push(false),
        }
        rest = &rest[2 + len..];
    }
}

/// Runs one input (see the module comment).
pub fn run(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 16) + 1;
    let mut card = CardFront::new(Card::new(MemStore::default(), CardState::factory(&[0x42; 32])));
    let mut out = Vec::new();
    let mut arms = 0usize;
    let ended = serve_frames(&mut Chunked { data: stream, chunk }, &mut out, &mut card, || {
        arms += 1;
        Ok(())
    });
    let (owed, clean) = expected(stream);
    assert_eq!(
        ended.is_ok(),
        clean,
        "the loop ended {ended:?}; the stream {} cleanly",
        if clean { "ends" } else { "does not end" }
    );
    if !stream.is_empty() {
        assert!(arms > 0, "no read was armed");
    }
    let mut rest = out.as_slice();
    for (i, atr) in owed.iter().enumerate() {
        assert!(rest.len() >= 2, "answer {i} is missing");
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        assert!(rest.len() >= 2 + len, "answer {i} is torn");
        let body = &rest[2..2 + len];
        if *atr {
            assert_eq!(body, CardFront::<MemStore>::atr(), "answer {i}: not the ATR");
        } else {
            assert!(body.len() >= 2, "answer {i}: no status word");
        }
        rest = &rest[2 + len..];
    }
    assert!(rest.is_empty(), "{} bytes written beyond the answers owed", rest.len());
}
