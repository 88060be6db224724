//! `virtual-card`: runs one PAYSIM card, kept in a state file, in a slot of vsmartcard's vpcd.
//!
//! ```text
//! virtual-card --state card.json [--vpcd 127.0.0.1:35963] [--touch allow|deny]
//! ```
//!
//! The card carries the PAYSIM and the YKOATH applet. It has no button: `--touch` says what
//! happens when an OATH credential that requires touch is asked for a code (`allow`, the
//! default: granted at once; `deny`: refused with `6982`, as a YubiKey nobody touches).
//!
//! In one of vpcd's two slots on this computer (ports 35963 and 35964) it first takes that
//! slot's lock, `$TMPDIR/paysim-vpcd-slot-N.lock`, the one the end-to-end tests and
//! `scripts/demo.sh` take, and writes who holds it into the file; a slot someone else holds
//! is refused with the holder's line, so a card started by hand cannot collide with a test.
//! `--slot-locked-by-caller` is for a caller that holds the lock for the card itself.
//!
//! Once connected to vpcd it prints `virtual-card: connected to vpcd at HOST:PORT` on standard
//! output (again after every reconnect), so scripts and tests can wait for that line. Logs go
//! to standard error (`RUST_LOG` filters them, default `info`).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use card_applet::vpcd::{self, Options};
use card_applet::{Firmware, TouchPolicy};
use clap::Parser;

/// What a touch of the virtual card's (missing) button does.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Touch {
    /// Every touch is granted at once.
    Allow,
    /// Every touch is refused: a credential that requires touch gives no code (SW 6982).
    Deny,
}

/// Which applet firmware the card runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum FirmwareArg {
    /// The current applet (1.1): transaction context versions 1 and 2.
    Current,
    /// Emulates applet 1.0, an old card for tests: version 1 only, no `DF08`.
    #[value(name = "1.0")]
    V1_0,
}

#[derive(Parser, Debug)]
#[command(version, about = "Run a PAYSIM virtual card (PAYSIM and YKOATH applets) in a vpcd slot")]
struct Args {
    /// The card's state file (create one with `bank-tools card create --state FILE`).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// vpcd slot to attach to: port 35963 is "Virtual PCD 00 00", 35964 "Virtual PCD 00 01".
    #[arg(long, value_name = "HOST:PORT", default_value = vpcd::DEFAULT_ADDR)]
    vpcd: String,
    /// What a touch of the missing button does, for OATH credentials that require touch.
    #[arg(long, value_enum, default_value = "allow")]
    touch: Touch,
    /// Applet firmware: `current`, or `1.0` to emulate an old card that signs neither the
    /// source account nor the payee's name (for tests; not a state of the card file).
    #[arg(long, value_enum, default_value = "current")]
    firmware: FirmwareArg,
    /// The caller (the e2e harness, scripts/demo.sh) already holds the slot's lock for this
    /// card: do not take it.
    #[arg(long)]
    slot_locked_by_caller: bool,
    /// Do not re-arm TCP_QUICKACK before reads (benchmark only: shows the ~40 ms stall).
    #[arg(long, hide = true)]
    no_quickack: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("virtual-card: error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `outer: cause: ...`, each cause once (some errors already name
/// their cause in their own text).
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Checks that `--vpcd` is `HOST:PORT` with a port number, so a typo is refused at once
/// instead of being retried forever as "cannot reach vpcd". (Whether the host resolves is left
/// to the reconnect loop: vpcd may come up later.)
fn check_vpcd_addr(addr: &str) -> anyhow::Result<()> {
    let ok =
        addr.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
    if ok {
        Ok(())
    } else {
        anyhow::bail!(
            "--vpcd {addr:?} is not HOST:PORT (e.g. {} for \"Virtual PCD 00 00\", 127.0.0.1:35964 for \"Virtual PCD 00 01\")",
            vpcd::DEFAULT_ADDR
        )
    }
}

/// vpcd's slot behind `addr` (its two ports on a loopback host), if it is one.
fn vpcd_slot(addr: &str) -> Option<u8> {
    let (host, port) = addr.rsplit_once(':')?;
    let local = matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1");
    match port {
        "35963" if local => Some(0),
        "35964" if local => Some(1),
        _ => None,
    }
}

/// Takes vpcd slot `slot`'s lock (the e2e harness's and demo.sh's file in `$TMPDIR`) for as
/// long as the returned file is open, and writes who holds it into the file. A slot held by
/// someone else is refused with what the holder wrote.
fn lock_slot(slot: u8, args: &Args) -> anyhow::Result<std::fs::File> {
    use std::io::Read as _;
    let path = std::env::temp_dir().join(format!("paysim-vpcd-slot-{slot}.lock"));
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file of vpcd slot {slot}, {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.lines().next().map(str::trim).filter(|l| !l.is_empty());
            let other = if slot == 0 { "127.0.0.1:35964" } else { "127.0.0.1:35963" };
            anyhow::bail!(
                "vpcd slot {slot} (\"Virtual PCD 00 0{slot}\") is in use, held by {} (lock file {}); \
                 stop that first, or run this card in the other slot with --vpcd {other}",
                holder.unwrap_or("a process that did not write its name"),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    // Who holds it, for the next one who asks (best effort: the lock is what counts).
    let line =
        format!("pid {}: virtual-card --state {} --vpcd {}\n", std::process::id(), args.state.display(), args.vpcd);
    let _ = file.set_len(0).and_then(|()| file.write_all(line.as_bytes()));
    Ok(file)
}

fn run(args: &Args) -> anyhow::Result<()> {
    check_vpcd_addr(&args.vpcd)?;
    let mut card = card_applet::VirtualCard::open(&args.state).with_context(|| {
        format!(
            "cannot open card state {} (create it with `bank-tools card create --state FILE`; \
             only one virtual-card may run a state file at a time)",
            args.state.display()
        )
    })?;
    // Held until the card stops.
    let _slot = match vpcd_slot(&args.vpcd) {
        Some(slot) if !args.slot_locked_by_caller => Some(lock_slot(slot, args)?),
        _ => None,
    };
    card.card_mut().set_touch_policy(match args.touch {
        Touch::Allow => TouchPolicy::Allow,
        Touch::Deny => TouchPolicy::Deny,
    });
    card.card_mut().set_firmware(match args.firmware {
        FirmwareArg::Current => Firmware::Current,
        FirmwareArg::V1_0 => Firmware::V1_0,
    });
    let mut opts = Options::new(args.vpcd.clone());
    opts.quickack = !args.no_quickack;
    tracing::info!(state = %args.state.display(), vpcd = %opts.addr, touch = ?args.touch, firmware = ?args.firmware, "card opened");
    vpcd::serve(&mut card, &opts, |addr| {
        // A closed stdout (the reader went away) must not stop the card.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "virtual-card: connected to vpcd at {addr}");
        let _ = out.flush();
    })
}
