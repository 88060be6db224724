//! Child processes the tests wait on by their output: line readers with a deadline, and the
//! `bank-server serve` process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use crate::{bin, WAIT};

/// Reads a child's pipe line by line on a thread, so a test can wait for a line with a
/// deadline.
pub fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line starting with `prefix` within [`WAIT`]; panics naming `what` otherwise.
pub fn wait_line(rx: &mpsc::Receiver<String>, prefix: &str, what: &str) -> String {
    wait_for(rx, |l| l.starts_with(prefix), &format!("starting with {prefix:?}"), what)
}

/// The first line containing `needle` within [`WAIT`]; panics naming `what` otherwise.
pub fn wait_line_containing(rx: &mpsc::Receiver<String>, needle: &str, what: &str) -> String {
    wait_for(rx, |l| l.contains(needle), &format!("containing {needle:?}"), what)
}

fn wait_for(rx: &mpsc::Receiver<String>, want: impl Fn(&str) -> bool, how: &str, what: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if want(&line) => return line,
            Ok(_) => continue,
            Err(e) => panic!("{what}: no line {how} within {WAIT:?} ({e})"),
        }
    }
}

/// A running `bank-server serve` on a SQLite database; killed (`kill -9`) on drop.
pub struct BankServer {
    child: Option<Child>,
    pub db: PathBuf,
    pub port: u16,
    /// `--public-url`, when the bank is reached through a relay (its verifier id).
    pub public_url: Option<String>,
}

impl BankServer {
    /// Starts the bank on `port` (0: a free one) and waits for its readiness line. Its log
    /// goes to the database path with the extension `log`.
    pub fn start(db: &Path, port: u16) -> BankServer {
        Self::start_as(db, port, None)
    }

    /// As [`BankServer::start`], with `--public-url URL` when given.
    pub fn start_as(db: &Path, port: u16, public_url: Option<&str>) -> BankServer {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(db.with_extension("log"))
            .unwrap_or_else(|e| panic!("bank-server log: {e}"));
        let mut cmd = Command::new(bin("bank-server"));
        cmd.args(["serve", "--db"])
            .arg(db)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // The demo's and the tests' choice: the key file beside the database.
            .arg("--master-key-beside-db")
            .env_remove("BANK_DB")
            .env_remove("BANK_MASTER_KEY");
        if let Some(url) = public_url {
            cmd.args(["--public-url", url]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bank-server: {e}"));
        let Some(stdout) = child.stdout.take() else { panic!("bank-server without stdout") };
        let rx = lines_of(stdout);
        let line = wait_line(&rx, "bank-server listening on http://", "bank-server");
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in the readiness line {line:?}"));
        BankServer { child: Some(child), db: db.to_owned(), port, public_url: public_url.map(str::to_owned) }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `kill -9`: whatever was acknowledged must survive.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the bank and starts it again on the same database, port and public URL.
    pub fn restart(&mut self) {
        self.kill();
        let again = BankServer::start_as(&self.db, self.port, self.public_url.as_deref());
        *self = again;
    }
}

impl Drop for BankServer {
    fn drop(&mut self) {
        self.kill();
    }
}
