//! A secret (PIN, PUK) read from the controlling terminal without echo.
//!
//! Echo is switched off *before* the prompt is written, so a person who starts typing the
//! moment the prompt appears never sees a digit of it on the screen (or in the scroll-back).
//! The terminal's modes are put back however the read ends. The line is read byte by byte
//! into one wiped buffer: no library buffer keeps a copy.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};

use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions, Termios};
use zeroize::Zeroizing;

/// Longest line taken as a secret; a PIN is 8 digits, a PUK 8.
const SECRET_MAX: usize = 256;

/// Puts the terminal's saved modes back when dropped.
struct Restore<'a> {
    tty: &'a File,
    saved: Termios,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.tty, OptionalActions::Now, &self.saved);
    }
}

/// Writes `prompt` to `/dev/tty` with echo off and reads one line from it (without its line
/// ending).
pub fn read_secret(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    let saved = tcgetattr(&tty)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    // The Enter key still moves to the next line.
    quiet.local_modes.insert(LocalModes::ECHONL);
    // `Now`, not `Flush`: what was typed ahead is kept (it was echoed already anyway).
    tcsetattr(&tty, OptionalActions::Now, &quiet)?;
    let _restore = Restore { tty: &tty, saved };
    (&tty).write_all(prompt.as_bytes())?;
    (&tty).flush()?;
    let mut line = Zeroizing::new(Vec::with_capacity(SECRET_MAX + 1));
    let mut byte = Zeroizing::new([0u8; 1]);
    loop {
        match (&tty).read(byte.as_mut())? {
            0 => break,
            _ if byte[0] == b'\n' => break,
            _ if line.len() >= SECRET_MAX => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the line typed is too long"));
            }
            _ => line.push(byte[0]),
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    let text = std::str::from_utf8(&line)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "the line typed is not UTF-8"))?;
    Ok(Zeroizing::new(text.to_owned()))
}
