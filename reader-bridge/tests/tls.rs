//! The bridge over TLS, against a small rustls server in this process: std `TcpListener`,
//! `rustls::ServerConnection` in a `StreamOwned`, a CA and a certificate for `localhost` made
//! with rcgen, and one canned answer per connection (what the bank's API answers to
//! `GET /api/v1/session` without a token). The bank's own TLS is tested in bank-server; this
//! checks the client side: the private CA makes the bank reachable, the platform's roots do
//! not know it, and each refusal reads for a person.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reader_bridge::error::{exit, TlsProblem};
use reader_bridge::flow::{BankFlags, Bridge, CardChoice, SetupOutcome};
use reader_bridge::state::StateDir;
use reader_bridge::Error;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

const CANNED: &str = "{\"error\":\"unauthenticated\",\"message\":\"log in first\"}";

/// A CA, and a server certificate for `localhost` only, signed by it.
struct Pki {
    ca_pem: String,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "PAYSIM test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki { ca_pem: ca.pem(), cert: cert.der().clone(), key: key.serialize_der() }
}

/// The TLS bank: answers every request on every connection with the canned 401 and reports
/// the request line it read. Handshakes the client refuses simply end that connection.
struct TlsBank {
    port: u16,
    requests: mpsc::Receiver<String>,
}

impl TlsBank {
    fn start(pki: &Pki) -> TlsBank {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![pki.cert.clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone())))
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { break };
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                if let Some(line) = answer_one(&mut tls) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        TlsBank { port, requests }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.port)
    }

    /// The next request line the bank read, if one comes within the deadline.
    fn next_request(&self) -> Option<String> {
        self.requests.recv_timeout(Duration::from_secs(20)).ok()
    }
}

/// Reads one HTTP request head and writes the canned answer; `None` when the handshake or
/// the read failed (the client refused the certificate).
fn answer_one(tls: &mut impl ReadWrite) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let answer = format!(
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{CANNED}",
        CANNED.len()
    );
    tls.write_all(answer.as_bytes()).ok()?;
    tls.flush().ok()?;
    String::from_utf8_lossy(&head).lines().next().map(str::to_owned)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn write_ca(dir: &Path, pki: &Pki) -> std::path::PathBuf {
    let path = dir.join("bank-ca.pem");
    std::fs::write(&path, &pki.ca_pem).unwrap();
    path
}

#[test]
fn with_the_private_ca_the_tls_bank_is_reachable_and_without_it_refused_in_words() {
    let pki = pki();
    let bank = TlsBank::start(&pki);
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(dir.path(), &pki);

    // Without --ca: the platform's roots do not know the test CA. Nothing is pinned.
    let state = dir.path().join("no-ca");
    let e = Bridge::setup(&state, &bank.url("localhost"), None, false).unwrap_err();
    assert!(matches!(&e, Error::BankTls { problem: TlsProblem::Untrusted, .. }), "{e:?}");
    assert_eq!(e.exit_code(), exit::BANK_TLS);
    let text = e.to_string();
    assert!(
        text.contains("the bank's certificate is not trusted: pass --ca FILE if the bank uses a private CA"),
        "{text}"
    );
    assert_eq!(StateDir::open(&state).unwrap().pinned_bank().unwrap(), None);

    // With --ca: the handshake succeeds and the bank's answer is read.
    let state = dir.path().join("with-ca");
    let (pin, outcome) = Bridge::setup(&state, &bank.url("localhost"), Some(&ca), false).unwrap();
    assert_eq!(outcome, SetupOutcome::Pinned);
    assert_eq!(bank.next_request().as_deref(), Some("GET /api/v1/session HTTP/1.1"));
    assert_eq!(pin.verifier_id, format!("https://localhost:{}", bank.port));
    assert_eq!(pin.ca_pem.as_deref(), Some(pki.ca_pem.as_str()));

    // The CA copy in the state directory is what the bridge trusts: the file can go.
    std::fs::remove_file(&ca).unwrap();
    let bridge =
        Bridge::open(&state, &BankFlags::default(), CardChoice { reader: None, wait: Duration::ZERO }).unwrap();
    bridge.bank().unwrap().probe().unwrap();
    assert_eq!(bank.next_request().as_deref(), Some("GET /api/v1/session HTTP/1.1"));
}

#[test]
fn a_certificate_for_another_name_is_refused_even_from_the_trusted_ca() {
    let pki = pki();
    let bank = TlsBank::start(&pki);
    let dir = tempfile::tempdir().unwrap();
    let ca = write_ca(dir.path(), &pki);
    // The certificate is for localhost; 127.0.0.1 is the same server under another name.
    let e = Bridge::setup(dir.path().join("s"), &bank.url("127.0.0.1"), Some(&ca), false).unwrap_err();
    assert!(matches!(&e, Error::BankTls { problem: TlsProblem::WrongName, .. }), "{e:?}");
    assert!(e.to_string().contains("not valid for the name"), "{e}");
}

#[test]
fn a_ca_file_that_is_not_a_certificate_is_refused_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("key.pem");
    std::fs::write(&bad, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let e = Bridge::setup(dir.path().join("s"), "https://localhost:1", Some(&bad), false).unwrap_err();
    assert!(matches!(&e, Error::BadCa { .. }), "{e:?}");
    assert!(e.to_string().contains("give only the CA's certificate"), "{e}");
}

fn bridge_cli(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reader-bridge"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env_remove("PAYSIM_SERVER")
        .env_remove("PAYSIM_CA")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_cli_says_what_to_do_about_an_untrusted_bank_and_shows_the_library_chain_only_with_v() {
    let pki = pki();
    let bank = TlsBank::start(&pki);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let url = bank.url("localhost");

    let out = bridge_cli(&state, &["setup", "--server", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(exit::BANK_TLS)), "{err}");
    assert!(err.contains("pass --ca FILE if the bank uses a private CA"), "{err}");
    assert!(!err.to_lowercase().contains("unknownissuer") && !err.contains("invalid peer certificate"), "{err}");
    let out = bridge_cli(&state, &["-v", "setup", "--server", &url]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid peer certificate") || err.contains("UnknownIssuer"), "-v shows the chain: {err}");

    let ca = write_ca(dir.path(), &pki);
    let out = bridge_cli(&state, &["setup", "--server", &url, "--ca", ca.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("set up for the bank at {url}")), "{stdout}");
    // `status` shows the pin (and the CA's fingerprint) before it looks for the card.
    let out = bridge_cli(&state, &["--reader", "No Such Reader", "--wait", "0", "status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("bank:            {url} (the card signs for {url})")), "{stdout}");
    assert!(stdout.contains("the private CA with SHA-256 ") && stdout.contains("bank-ca.pem"), "{stdout}");
}

/// `-v` logs each step of a command as it happens; without it only the outcome shows. (This
/// test's bank refuses the login challenge: the first step and the outcome are what shows.)
#[test]
fn v_logs_each_step_and_without_it_only_the_outcome_shows() {
    let pki = pki();
    let bank = TlsBank::start(&pki);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let url = bank.url("localhost");
    let ca = write_ca(dir.path(), &pki);
    assert!(bridge_cli(&state, &["setup", "--server", &url, "--ca", ca.to_str().unwrap()]).status.success());
    let login = ["--reader", "No Such Reader", "--wait", "0", "login", "--user", "alice", "--pin-stdin"];
    let quiet = bridge_cli(&state, &login);
    let loud = bridge_cli(&state, &[&["-v"], &login[..]].concat());
    let (quiet, loud) = (String::from_utf8_lossy(&quiet.stderr), String::from_utf8_lossy(&loud.stderr));
    assert!(quiet.contains("error: "), "{quiet}");
    assert!(!quiet.contains("INFO"), "without -v no step is logged: {quiet}");
    assert!(loud.contains("INFO") && loud.contains("asking the bank for a login challenge"), "{loud}");
    // The outcome is the same line either way.
    let last = |s: &str| s.lines().rfind(|l| l.starts_with("error: ")).map(str::to_owned);
    assert_eq!(last(&quiet), last(&loud));
}
