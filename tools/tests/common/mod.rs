//! What the `bank-tools` tests share: running the real binary against a temp database,
//! token files, and a real `bank-server` process on the same database (the e2e harness's
//! `BankServer`, with a small HTTP client for the API calls these tests make).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use card_applet::host;
use card_link::{MemCard, TransportExt};
use e2e_tests::BankServer;

/// The PIN of the cards [`card`] makes.
pub const CARD_PIN: &str = "1234";

/// A customer's card in this process, personalized with `seed` (next counter 0), whose codes
/// [`Server::login`] sends.
pub fn card(seed: [u8; 32], serial: &str) -> MemCard {
    MemCard::personalized(&seed, CARD_PIN, "12345678", serial).unwrap()
}

use tempfile::TempDir;

/// What one `bank-tools` run did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics unless the command succeeded; returns its standard output.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Panics unless the command failed with exit code 1 and printed a `bank-tools: error:`
    /// line; returns its standard error.
    #[track_caller]
    pub fn refused(&self) -> &str {
        assert_eq!(self.code, Some(1), "expected a refusal\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert!(self.stderr.lines().any(|l| l.starts_with("bank-tools: error: ")), "{}", self.stderr);
        &self.stderr
    }
}

/// Runs `bank-tools ARGS` with a clean environment (no BANK_DB, no BANK_MASTER_KEY).
pub fn bank_tools(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_bank-tools"))
        .args(args)
        .env_remove("BANK_DB")
        .env_remove("BANK_MASTER_KEY")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run bank-tools");
    Run::from(out)
}

/// A temp directory with a bank database made by `user add --create-db`.
pub struct Bank {
    pub dir: TempDir,
    pub db: PathBuf,
}

impl Bank {
    /// A fresh database holding user `alice`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bank.sqlite3");
        let b = Bank { dir, db };
        b.run(&["user", "add", "alice", "--create-db"]).ok();
        b
    }

    pub fn db_str(&self) -> &str {
        self.db.to_str().unwrap()
    }

    /// `bank-tools ARGS --db <this database> --master-key-beside-db` (every command on the
    /// database takes the master key's source: writes chain their audit rows under it).
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["--db", self.db_str(), "--master-key-beside-db"]);
        bank_tools(&all)
    }

    /// Writes a personalization output file (mode 0600) for `serial` with `seed`.
    pub fn token_file(&self, serial: &str, seed: [u8; 32]) -> PathBuf {
        let p = self.dir.path().join(format!("{serial}.json"));
        let token = paysim_wire::TokenFile {
            serial: serial.parse().unwrap(),
            seed: paysim_otp::ChainKey::from_bytes(seed),
            counter: 0,
            tx_version: paysim_otp::TxVersion::V2,
        };
        tools::card::write_token_file(&p, &token).unwrap();
        p
    }

    /// A direct connection to the database, for checks and tampering.
    pub fn sql(&self) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(&self.db).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }
}

/// A running `bank-server serve` on a port of its choosing; killed on drop.
pub struct Server {
    _bank: BankServer,
    pub addr: SocketAddr,
    pub url: String,
}

impl Server {
    /// Starts the server on `db` and waits for its readiness line.
    pub fn start(db: &Path) -> Self {
        let bank = BankServer::start(db, 0);
        let url = bank.url();
        let addr = SocketAddr::from(([127, 0, 0, 1], bank.port));
        Server { _bank: bank, addr, url }
    }

    /// One HTTP/1.1 request (connection closed after it); returns status and JSON body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n", self.addr);
        if let Some(t) = bearer {
            req.push_str(&format!("authorization: Bearer {t}\r\n"));
        }
        if !body.is_empty() {
            req.push_str("content-type: application/json\r\n");
        }
        req.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// A login challenge for `user`: (challenge id, challenge bytes).
    pub fn challenge(&self, user: &str) -> (String, Vec<u8>) {
        let (status, v) =
            self.request("POST", "/api/v1/login/challenge", None, Some(&serde_json::json!({ "user": user })));
        assert_eq!(status, 200, "{v}");
        (v["challenge_id"].as_str().unwrap().to_owned(), hex::decode(v["challenge_hex"].as_str().unwrap()).unwrap())
    }

    /// Logs `user` in with the next login code of `card` (the card core in this process, as
    /// the customer's card would answer); returns the code's counter, the HTTP status and body.
    pub fn login(&self, user: &str, card: &mut MemCard) -> (u64, u16, serde_json::Value) {
        let (id, challenge) = self.challenge(user);
        let vid = paysim_otp::verifier_id(&self.url).unwrap();
        let (counter, otp) = card
            .exchange(|ex| {
                host::parse_select(&ex.transmit(&host::select())?).unwrap();
                host::parse_verify(&ex.transmit(&host::verify(CARD_PIN).unwrap())?).unwrap();
                let resp = ex.transmit(&host::login_otp(&challenge, &vid).unwrap())?;
                Ok::<_, card_link::Error>(host::parse_otp(&resp).unwrap())
            })
            .unwrap();
        let body = serde_json::json!({ "challenge_id": id, "counter": counter, "otp": otp.as_str() });
        let (status, v) = self.request("POST", "/api/v1/login", None, Some(&body));
        (counter, status, v)
    }

    /// A wrong code for `user` (uses up one challenge).
    pub fn wrong_login(&self, user: &str, counter: u64) -> u16 {
        let (id, _) = self.challenge(user);
        let body = serde_json::json!({ "challenge_id": id, "counter": counter, "otp": "00000000" });
        self.request("POST", "/api/v1/login", None, Some(&body)).0
    }
}
