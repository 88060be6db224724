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

/// A running `bank-server serve` on a SQLite database; killed (`kill -9`) on drop. Plain HTTP
/// on 127.0.0.1 ([`BankServer::start`]) or HTTPS with a local CA ([`BankServer::start_tls`]).
/// Its master key is the file beside the database (`--master-key-beside-db`).
pub struct BankServer {
    child: Option<Child>,
    pub db: PathBuf,
    pub port: u16,
    /// `--public-url`, when the bank is reached through a relay (its verifier id).
    pub public_url: Option<String>,
    /// The TLS files when the bank serves HTTPS.
    pub tls: Option<BankTls>,
    /// More `bank-server serve` flags ([`BankServer::start_tls_with`]), kept for a restart.
    extra: Vec<String>,
}

/// What `bank-tools tls init` made for a [`BankServer`] on HTTPS.
#[derive(Clone, Debug)]
pub struct BankTls {
    /// The CA certificate clients must trust (the bridge's `--ca`, curl's `--cacert`).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl BankTls {
    /// The files in `dir`, made by `bank-tools tls init --dir DIR` unless they are there
    /// already (a restart keeps its CA).
    pub fn in_dir(dir: &Path) -> BankTls {
        let tls = BankTls { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server-key.pem") };
        if !tls.ca.exists() {
            let dir = dir.to_str().unwrap_or_else(|| panic!("TLS directory {} is not UTF-8", dir.display()));
            let out = crate::bank_tools(&["tls", "init", "--dir", dir], None);
            crate::assert_success("bank-tools tls init", &out);
        }
        tls
    }
}

impl BankServer {
    /// Starts the bank on `port` (0: a free one) and waits for its readiness line. Its log
    /// goes to the database path with the extension `log`.
    pub fn start(db: &Path, port: u16) -> BankServer {
        Self::start_as(db, port, None)
    }

    /// As [`BankServer::start`], with `--public-url URL` when given.
    pub fn start_as(db: &Path, port: u16, public_url: Option<&str>) -> BankServer {
        Self::spawn(db, port, public_url, None, &[])
    }

    /// The bank on HTTPS (`https://127.0.0.1:PORT`), with a CA and server certificate made by
    /// `bank-tools tls init` in the directory `tls` beside the database; [`BankServer::ca`]
    /// is the CA's certificate.
    pub fn start_tls(db: &Path, port: u16) -> BankServer {
        Self::start_tls_as(db, port, None)
    }

    /// As [`BankServer::start_tls`], with `--public-url URL` when given (an https URL).
    pub fn start_tls_as(db: &Path, port: u16, public_url: Option<&str>) -> BankServer {
        let dir = db.parent().map_or_else(|| PathBuf::from("tls"), |d| d.join("tls"));
        Self::spawn(db, port, public_url, Some(BankTls::in_dir(&dir)), &[])
    }

    /// As [`BankServer::start_tls`], with more `serve` flags (`--oath-transfers deny`).
    pub fn start_tls_with(db: &Path, port: u16, extra: &[&str]) -> BankServer {
        let dir = db.parent().map_or_else(|| PathBuf::from("tls"), |d| d.join("tls"));
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        Self::spawn(db, port, None, Some(BankTls::in_dir(&dir)), &extra)
    }

    fn spawn(db: &Path, port: u16, public_url: Option<&str>, tls: Option<BankTls>, extra: &[String]) -> BankServer {
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
            .env_remove("BANK_MASTER_KEY")
            .env_remove("BANK_MASTER_KEY_FILE")
            .env_remove("BANK_TLS_CERT")
            .env_remove("BANK_TLS_KEY")
            .env_remove("BANK_OATH_TRANSFERS")
            .env_remove("BANK_SIGNING_SERVICE")
            .args(extra);
        if let Some(url) = public_url {
            cmd.args(["--public-url", url]);
        }
        if let Some(t) = &tls {
            cmd.arg("--tls-cert").arg(&t.cert).arg("--tls-key").arg(&t.key);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bank-server: {e}"));
        let Some(stdout) = child.stdout.take() else { panic!("bank-server without stdout") };
        let rx = lines_of(stdout);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let line = wait_line(&rx, &format!("bank-server listening on {scheme}://"), "bank-server");
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in the readiness line {line:?}"));
        BankServer {
            child: Some(child),
            db: db.to_owned(),
            port,
            public_url: public_url.map(str::to_owned),
            tls,
            extra: extra.to_vec(),
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` on TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// An HTTP client for this bank that follows no redirects and, when the bank serves
    /// HTTPS, trusts its CA (and only what the platform trusts besides).
    pub fn client(&self) -> reqwest::blocking::Client {
        let mut b = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = self.ca() {
            let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("CA {}: {e}", ca.display()));
            let cert = reqwest::Certificate::from_pem(&pem).unwrap_or_else(|e| panic!("CA {}: {e}", ca.display()));
            b = b.add_root_certificate(cert);
        }
        b.build().unwrap_or_else(|e| panic!("HTTP client: {e}"))
    }

    /// The CA certificate to trust, when the bank serves HTTPS.
    pub fn ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    /// `kill -9`: whatever was acknowledged must survive.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the bank and starts it again on the same database, port, public URL and TLS files.
    pub fn restart(&mut self) {
        self.kill();
        let again = BankServer::spawn(&self.db, self.port, self.public_url.as_deref(), self.tls.clone(), &self.extra);
        *self = again;
    }
}

impl Drop for BankServer {
    fn drop(&mut self) {
        self.kill();
    }
}
