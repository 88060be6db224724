//! Test helper for `tests/e2e/pin_state.rs`: a PC/SC client that verifies the card's PIN
//! inside a transaction and then stops there, the way a bridge would look if it died between
//! VERIFY and the end of its exchange.
//!
//! `pin-holder [--shared] READER`, the PIN on the first line of standard input. It prints
//! `verified` once the card accepted the PIN, then blocks reading standard input, still inside
//! the transaction, until it is killed (or standard input ends). It connects exclusively, as
//! the bridge does; `--shared` connects the way the bridge did before, to measure the window
//! that leaves (see `pin_state.rs`).

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use card_applet::host;
use card_link::{Disposition, PcscCard, TransportExt};

/// What went wrong, as text for standard error.
struct Failed(String);

impl From<card_link::Error> for Failed {
    fn from(e: card_link::Error) -> Self {
        Failed(e.to_string())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (reader, shared) = match args.as_slice() {
        [reader] if !reader.starts_with('-') => (reader.clone(), false),
        [flag, reader] if flag == "--shared" => (reader.clone(), true),
        _ => {
            eprintln!("usage: pin-holder [--shared] READER (the PIN on standard input)");
            return ExitCode::from(2);
        }
    };
    let mut stdin = std::io::stdin().lock();
    let mut pin = String::new();
    if stdin.read_line(&mut pin).is_err() {
        eprintln!("pin-holder: cannot read the PIN from standard input");
        return ExitCode::from(2);
    }
    let connect = if shared { PcscCard::connect_shared } else { PcscCard::connect };
    let mut card = match connect(&reader, Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pin-holder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = card.transaction_ending(Disposition::Leave, |ex| {
        host::parse_select(&ex.transmit(&host::select())?).map_err(|e| Failed(format!("SELECT: {e}")))?;
        let verify = host::verify(pin.trim()).map_err(|e| Failed(format!("PIN: {e}")))?;
        host::parse_verify(&ex.transmit(&verify)?).map_err(|e| Failed(format!("VERIFY: {e}")))?;
        println!("verified");
        let _ = std::io::stdout().flush();
        // Inside the transaction until killed: read until standard input ends.
        let mut rest = Vec::new();
        let _ = stdin.read_to_end(&mut rest);
        Ok::<_, Failed>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(e)) => {
            eprintln!("pin-holder: {e}");
            ExitCode::FAILURE
        }
    }
}
