//! The real binary's transport and storage rules: HTTPS with rustls (checked with reqwest on
//! the same TLS stack, and with curl and openssl as third-party clients), HSTS and `__Host-`
//! cookies on HTTPS only, the listen-address and public-URL rules, private database files and
//! the explicit master-key source.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bank_server::ops;

use crate::server::Server;

/// A local CA and a server certificate for 127.0.0.1, ::1 and localhost signed by it, as
/// `bank-tools tls init` makes them (written here with rcgen, which that command uses too).
struct TestCa {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    fn new() -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.distinguished_name.push(DnType::CommonName, "test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let hosts = vec!["127.0.0.1".to_owned(), "::1".to_owned(), "localhost".to_owned()];
        let mut params = CertificateParams::new(hosts).unwrap();
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let at = |name: &str| dir.path().join(name);
        std::fs::write(at("ca.pem"), ca.pem()).unwrap();
        std::fs::write(at("server.pem"), cert.pem()).unwrap();
        std::fs::write(at("server-key.pem"), key.serialize_pem()).unwrap();
        std::fs::set_permissions(at("server-key.pem"), std::fs::Permissions::from_mode(0o600)).unwrap();
        TestCa { ca: at("ca.pem"), cert: at("server.pem"), key: at("server-key.pem"), _dir: dir }
    }

    fn flags(&self) -> Vec<String> {
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        vec!["--tls-cert".into(), s(&self.cert), "--tls-key".into(), s(&self.key)]
    }

    /// A client that trusts this CA and nothing else.
    fn client(&self) -> reqwest::blocking::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.ca).unwrap()).unwrap();
        reqwest::blocking::Client::builder()
            .add_root_certificate(ca)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }
}

fn bank(dir: &Path) -> PathBuf {
    let db = dir.join("bank.sqlite3");
    ops::add_user(&db, "alice").unwrap();
    db
}

fn https(db: &Path, ca: &TestCa) -> Server {
    let flags = ca.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::spawn(db, &flags, false)
}

/// `bank-server serve ARGS --db DB` that is expected to stop at once: its output.
fn serve_refused(db: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_bank-server"))
        .arg("serve")
        .args(args)
        .arg("--db")
        .arg(db)
        .env_remove("BANK_MASTER_KEY")
        .env_remove("BANK_MASTER_KEY_FILE")
        .env_remove("BANK_TLS_CERT")
        .env_remove("BANK_TLS_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} was accepted");
    assert!(out.stdout.is_empty(), "{args:?}: no readiness line: {}", String::from_utf8_lossy(&out.stdout));
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn port_of(base: &str) -> &str {
    base.rsplit(':').next().unwrap()
}

#[test]
fn https_serves_a_client_that_trusts_the_ca_with_hsts_and_host_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let db = bank(dir.path());
    let ca = TestCa::new();
    let server = https(&db, &ca);
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);
    let http = ca.client();
    let r = http.get(format!("{}/login", server.base)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-bank_session="), "{cookie}");
    assert!(cookie.contains("; Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"), "{cookie}");
    // The API answers over the same connection stack, and its verifier id is the https origin.
    let r = http
        .post(format!("{}/api/v1/login/challenge", server.base))
        .json(&serde_json::json!({ "user": "alice" }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().contains_key("strict-transport-security"));
    let body: serde_json::Value = r.json().unwrap();
    assert_eq!(body["verifier_id"], format!("{}", server.base), "{body}");
    // SIGTERM with a kept-alive connection open: a clean stop, exit status 0.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(server.child.wait().unwrap().success());
}

#[test]
fn curl_and_openssl_accept_the_bank_with_the_ca_and_refuse_it_without() {
    let (Ok(_), Ok(_)) =
        (Command::new("curl").arg("--version").output(), Command::new("openssl").arg("version").output())
    else {
        eprintln!("curl or openssl is not installed: the third-party check is skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = bank(dir.path());
    let ca = TestCa::new();
    let server = https(&db, &ca);
    let url = format!("{}/login", server.base);
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "20"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let out = curl(&["--cacert", ca.ca.to_str().unwrap()]);
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(out.status.success(), "curl: {}", stderr(&out));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("strict-transport-security: max-age=31536000"), "{head}");
    assert!(head.contains("set-cookie: __host-bank_session="), "{head}");
    // Without the CA (the system's roots only) curl refuses the certificate: exit 60.
    let out = curl(&[]);
    assert_eq!(out.status.code(), Some(60), "curl without the CA: {}", stderr(&out));
    // openssl verifies the chain and the name, and negotiates http/1.1.
    let connect = format!("127.0.0.1:{}", port_of(&server.base));
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &connect, "-verify_return_error", "-verify_ip", "127.0.0.1"])
        .args(["-alpn", "http/1.1", "-CAfile", ca.ca.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}\n{}", stderr(&out));
    assert!(text.contains("ALPN protocol: http/1.1"), "{text}");
}

#[test]
fn a_client_that_does_not_trust_the_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = bank(dir.path());
    let ca = TestCa::new();
    let server = https(&db, &ca);
    // Trusting another CA (a look-alike's, or the wrong file): the handshake fails.
    let other = TestCa::new();
    let err = other.client().get(format!("{}/login", server.base)).send().unwrap_err();
    let chain = format!("{:?}", err);
    assert!(err.is_connect() || err.is_request(), "{chain}");
    assert!(chain.contains("InvalidCertificate"), "{chain}");
    // Plain HTTP to the TLS port gets no page.
    let plain =
        reqwest::blocking::Client::new().get(format!("http://127.0.0.1:{}/login", port_of(&server.base))).send();
    assert!(plain.map(|r| r.status().as_u16() != 200).unwrap_or(true), "plain HTTP was served on the TLS port");
    // The bank is still serving whoever trusts its CA.
    assert_eq!(ca.client().get(format!("{}/login", server.base)).send().unwrap().status().as_u16(), 200);
}

#[test]
fn a_stalled_handshake_does_not_hold_up_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let db = bank(dir.path());
    let ca = TestCa::new();
    let server = https(&db, &ca);
    let addr = format!("127.0.0.1:{}", port_of(&server.base));
    // Connections that never send a ClientHello, and one that sends half of a record.
    let mut stalled: Vec<std::net::TcpStream> = (0..4).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    stalled[0].write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let start = Instant::now();
    let r = ca.client().get(format!("{}/login", server.base)).timeout(Duration::from_secs(5)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        start.elapsed() < bank_server::tls::HANDSHAKE_TIMEOUT,
        "served only after the stalled handshakes timed out"
    );
    // The stalled ones are still open (no answer yet): the bank is waiting for them, not for us.
    stalled[1].set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut b = [0u8; 1];
    let waiting = stalled[1].read(&mut b);
    assert!(waiting.is_err(), "{waiting:?}");
}

#[test]
fn plain_http_on_loopback_keeps_the_plain_cookie_and_sends_no_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let db = bank(dir.path());
    let server = Server::spawn(&db, &[], false);
    assert!(server.base.starts_with("http://127.0.0.1:"));
    let r = reqwest::blocking::get(format!("{}/login", server.base)).unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(!r.headers().contains_key("strict-transport-security"));
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("bank_session=") && !cookie.contains("Secure"), "{cookie}");
}

#[test]
fn the_network_needs_tls_and_a_public_https_url() {
    let dir = tempfile::tempdir().unwrap();
    let db = bank(dir.path());
    let ca = TestCa::new();
    let tls = ca.flags();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let key = ["--master-key-beside-db"];
    for (args, says) in [
        (vec!["--listen", "0.0.0.0:0"], "plain HTTP is served only on a loopback address"),
        (vec!["--listen", "[::]:0"], "plain HTTP is served only on a loopback address"),
        (
            vec!["--listen", "0.0.0.0:0", "--public-url", "https://bank.example"],
            "pass --tls-cert FILE and --tls-key FILE",
        ),
        ([&["--listen", "0.0.0.0:0"], &tls[..]].concat(), "needs --public-url https://"),
        ([&["--listen", "[::]:0"], &tls[..]].concat(), "needs --public-url https://"),
        (
            [&["--listen", "0.0.0.0:0", "--public-url", "https://0.0.0.0:8443"], &tls[..]].concat(),
            "a wildcard address, which is never a verifier id",
        ),
        (
            [&["--listen", "0.0.0.0:0", "--public-url", "http://bank.example"], &tls[..]].concat(),
            "--public-url must be https://",
        ),
        (vec!["--listen", "127.0.0.1:0", "--public-url", "http://bank.example"], "use https://"),
        (vec!["--listen", "127.0.0.1:0", "--public-url", "http://0.0.0.0:8080"], "never a verifier id"),
    ] {
        let out = serve_refused(&db, &[&key[..], &args[..]].concat());
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // The certificate flags go together.
    let out = serve_refused(&db, &["--master-key-beside-db", "--listen", "127.0.0.1:0", "--tls-cert", tls[1]]);
    assert!(stderr(&out).contains("--tls-key"), "{}", stderr(&out));
}

#[test]
fn the_database_wal_and_shm_are_0600_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bank.sqlite3");
    let key = dir.path().join("keys").join("bank.key");
    std::fs::create_dir(key.parent().unwrap()).unwrap();
    // umask 000 would make every file SQLite creates 0666 (0644 under the usual 022).
    let mut child = Command::new("sh")
        .args(["-c", "umask 000; exec \"$0\" serve --listen 127.0.0.1:0 --db \"$1\" --master-key \"$2\""])
        .arg(env!("CARGO_BIN_EXE_bank-server"))
        .arg(&db)
        .arg(&key)
        .env_remove("BANK_MASTER_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let base = line.trim().strip_prefix("bank-server listening on ").unwrap().to_owned();
    let server = Server { child, base };
    // One request, so the WAL has been written to.
    assert_eq!(reqwest::blocking::get(format!("{}/login", server.base)).unwrap().status().as_u16(), 200);
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    assert_eq!(mode(&key), 0o600);
    assert!(!bank_server::master_key::key_path(&db).exists(), "no key file beside the database");
}

#[test]
fn a_database_or_key_that_others_can_read_is_refused_with_the_chmod() {
    let dir = tempfile::tempdir().unwrap();
    let db = bank(dir.path());
    let ca = TestCa::new();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = serve_refused(&db, &["--listen", "127.0.0.1:0", "--master-key-beside-db"]);
    assert!(stderr(&out).contains(&format!("run `chmod 600 {}`", db.display())), "{}", stderr(&out));
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A -wal left world-readable beside it (by an older build) is refused too.
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    std::fs::write(&wal, b"").unwrap();
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = serve_refused(&db, &["--listen", "127.0.0.1:0", "--master-key-beside-db"]);
    assert!(stderr(&out).contains(&format!("run `chmod 600 {}`", wal.display())), "{}", stderr(&out));
    std::fs::remove_file(&wal).unwrap();
    // A master key file given by --master-key.
    let key = dir.path().join("bank.key");
    std::fs::write(&key, format!("{}\n", "c3".repeat(32))).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = serve_refused(&db, &["--listen", "127.0.0.1:0", "--master-key", key.to_str().unwrap()]);
    assert!(stderr(&out).contains(&format!("run `chmod 600 {}`", key.display())), "{}", stderr(&out));
    // The TLS private key.
    std::fs::set_permissions(&ca.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let tls = ca.flags();
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let out = serve_refused(&db, &[&["--listen", "127.0.0.1:0", "--master-key-beside-db"], &tls[..]].concat());
    assert!(stderr(&out).contains(&format!("run `chmod 600 {}`", ca.key.display())), "{}", stderr(&out));
}

#[test]
fn the_key_beside_the_database_is_read_only_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    // `ops` (the library's test default) puts the key beside the database.
    let db = dir.path().join("bank.sqlite3");
    ops::add_user(&db, "alice").unwrap();
    ops::enroll_token(&db, "PSIM-A", &paysim_otp::ChainKey::from_bytes([4; 32]), 0, "alice").unwrap();
    let beside = bank_server::master_key::key_path(&db);
    let before = std::fs::read(&beside).unwrap();
    let out = serve_refused(&db, &["--listen", "127.0.0.1:0"]);
    let err = stderr(&out);
    assert!(err.contains("no master key given") && err.contains("--master-key-beside-db"), "{err}");
    // The same key moved elsewhere and named: served.
    let moved = dir.path().join("elsewhere.key");
    std::fs::rename(&beside, &moved).unwrap();
    let server = Server::spawn(&db, &["--master-key", moved.to_str().unwrap()], false);
    assert_eq!(reqwest::blocking::get(format!("{}/login", server.base)).unwrap().status().as_u16(), 200);
    drop(server);
    assert!(!beside.exists(), "nothing was written beside the database");
    assert_eq!(std::fs::read(&moved).unwrap(), before);
    // Two sources at once are refused rather than one picked.
    let out = serve_refused(
        &db,
        &["--listen", "127.0.0.1:0", "--master-key", moved.to_str().unwrap(), "--master-key-beside-db"],
    );
    assert!(stderr(&out).contains("more than one master key given"), "{}", stderr(&out));
}
