//! A token moved from one bank to another in a PSKC file (RFC 6030, pre-shared key), through
//! pcscd: `bank-tools token export` at bank A, `token import` at a fresh bank B (its own
//! master key, its own address), and the same card then logs in at bank B through
//! `reader-bridge`. Once for an OATH credential on the virtual card's YKOATH application, once
//! for a PAYSIM card whose chain has already moved on. A file whose MAC was altered is refused
//! with the element named, and nothing is enrolled.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use e2e_tests::{bin, BankServer, CardSpec, TestCard};

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A bank in `dir/name` (HTTPS, key file beside the database) and its bridge state directory,
/// set up for it.
struct Bank {
    server: BankServer,
    state_dir: PathBuf,
}

impl Bank {
    fn start(dir: &Path, name: &str) -> Bank {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).unwrap();
        let server = BankServer::start_tls(&home.join("bank.sqlite3"), 0);
        let state_dir = home.join("bridge-state");
        e2e_tests::setup_bridge_for(&state_dir, &server);
        Bank { server, state_dir }
    }

    fn tools(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let db = self.server.db.to_str().unwrap().to_owned();
        e2e_tests::bank_tools(&[args, &["--db", &db, "--master-key-beside-db"]].concat(), stdin)
    }

    fn tools_ok(&self, args: &[&str], stdin: Option<&str>, says: &str) -> String {
        let out = self.tools(args, stdin);
        e2e_tests::assert_success(&format!("bank-tools {args:?}"), &out);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stdout.contains(says), "bank-tools {args:?} said {stdout:?}, not {says:?}");
        stdout
    }

    /// `reader-bridge login --user USER` on `reader` against this bank, `stdin` its PIN line.
    fn login(&self, reader: &str, user: &str, stdin: &str) -> Output {
        let mut child = Command::new(bin("reader-bridge"))
            .arg("--reader")
            .arg(reader)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args(["--wait", "5", "--pin-stdin", "login", "--user", user])
            .env_remove("PAYSIM_SERVER")
            .env_remove("PAYSIM_CA")
            .env_remove("PAYSIM_READER")
            .env_remove("PAYSIM_BRIDGE_STATE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start reader-bridge");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn login_ok(&self, reader: &str, user: &str, stdin: &str) {
        let out = self.login(reader, user, stdin);
        assert!(out.status.success(), "login as {user}: {}", describe(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("logged in as {user}")), "{}", describe(&out));
    }

    fn tokens(&self) -> Vec<bank_server::auth::TokenInfo> {
        bank_server::ops::list_tokens(&self.server.db).unwrap()
    }
}

/// A random pre-shared key file (32 hex digits, mode 0600), as an operator makes one.
fn psk_file(dir: &Path) -> PathBuf {
    let mut key = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut key).unwrap();
    let path = dir.join("transfer.psk");
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
    writeln!(f, "{}", hex::encode(key)).unwrap();
    path
}

/// `file` with its (first) ValueMAC's first base64 character changed.
fn with_broken_mac(file: &Path, out: &Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let at = text.find("<ValueMAC>").unwrap() + "<ValueMAC>".len();
    let old = text.as_bytes()[at];
    let new = if old == b'A' { 'B' } else { 'A' };
    std::fs::write(out, format!("{}{new}{}", &text[..at], &text[at + 1..])).unwrap();
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn an_oath_credential_moves_to_a_fresh_bank_in_a_pskc_file_and_logs_in_there() {
    let (dir, _state, _admin, card) = TestCard::factory(None);
    let reader = card.reader();
    let a = Bank::start(dir.path(), "bank-a");
    a.tools_ok(&["user", "add", "dave"], None, "added user dave");
    a.tools_ok(
        &["oath", "enroll", "--reader", &reader, "--user", "dave", "--serial", "OATH-DAVE"],
        None,
        "enrolled OATH token OATH-DAVE",
    );
    a.login_ok(&reader, "dave", "");

    let psk = psk_file(dir.path());
    let file = dir.path().join("dave.pskc");
    let said = a.tools_ok(
        &["token", "export", "--user", "dave", "--pskc-out", p(&file), "--psk-file", p(&psk)],
        None,
        "exported token OATH-DAVE of user dave (OATH credential",
    );
    assert!(said.contains("whoever holds this file and the key holds the token"), "{said}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("Algorithm=\"urn:ietf:params:xml:ns:keyprov:pskc:totp\""), "{text}");

    let b = Bank::start(dir.path(), "bank-b");
    b.tools_ok(&["user", "add", "dave"], None, "added user dave");
    // Bank B does not know the card yet: the same card's answer is refused there.
    let out = b.login(&reader, "dave", "");
    assert!(!out.status.success(), "bank B let an unknown token in: {}", describe(&out));

    // A file whose MAC was altered is refused, naming the element; nothing is enrolled.
    let broken = dir.path().join("broken.pskc");
    with_broken_mac(&file, &broken);
    let out = b.tools(&["token", "import", "--pskc", p(&broken), "--psk-file", p(&psk)], None);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KeyPackage 1 / Data/Secret: ValueMAC does not match"), "{err}");
    assert!(b.tokens().is_empty());

    b.tools_ok(
        &["token", "import", "--pskc", p(&file), "--psk-file", p(&psk)],
        None,
        "imported token OATH-DAVE for user dave (OATH credential)",
    );
    let tokens = b.tokens();
    assert_eq!(tokens.len(), 1);
    assert_eq!((tokens[0].serial.as_str(), tokens[0].kind), ("OATH-DAVE", bank_server::auth::TokenKind::Oath));
    // The card's codes verify at bank B now, and still at bank A (both hold the key).
    b.login_ok(&reader, "dave", "");
    a.login_ok(&reader, "dave", "");
}

#[test]
fn a_paysim_card_moves_to_a_fresh_bank_at_its_counter_and_logs_in_there() {
    let card = TestCard::personalized(&CardSpec::default());
    let reader = card.reader();
    let a = Bank::start(card.dir.path(), "bank-a");
    a.tools_ok(&["user", "add", "alice"], None, "added user alice");
    a.tools_ok(
        &["token", "enroll", "--user", "alice", "--token-file", p(&card.token_path)],
        None,
        "enrolled token PSIM-00000001",
    );
    // Two logins at bank A: its chain is at counter 2, and ck_0 and ck_1 are gone there.
    a.login_ok(&reader, "alice", "1234\n");
    a.login_ok(&reader, "alice", "1234\n");
    assert_eq!(a.tokens()[0].next_counter, 2);

    let psk = psk_file(card.dir.path());
    let file = card.dir.path().join("alice.pskc");
    a.tools_ok(
        &["token", "export", "--user", "alice", "--pskc-out", p(&file), "--psk-file", p(&psk), "--psk-name", "a-to-b"],
        None,
        "exported token PSIM-00000001 of user alice (PAYSIM card, its chain key at counter 2)",
    );
    // Never overwritten.
    let out = a.tools(&["token", "export", "--user", "alice", "--pskc-out", p(&file), "--psk-file", p(&psk)], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"), "{}", describe(&out));

    let b = Bank::start(card.dir.path(), "bank-b");
    b.tools_ok(&["user", "add", "carol"], None, "added user carol");
    // The user comes from the file's UserId unless --user names another.
    b.tools_ok(
        &["token", "import", "--pskc", p(&file), "--psk-file", p(&psk), "--user", "carol"],
        None,
        "imported token PSIM-00000001 for user carol (PAYSIM card, next counter 2, transaction context version 2)",
    );
    assert_eq!(b.tokens()[0].next_counter, 2);
    b.login_ok(&reader, "carol", "1234\n");
    assert_eq!(b.tokens()[0].next_counter, 3, "bank B stepped the chain on from the exported counter");
    // A second import of the same file is refused: the serial is taken.
    let out = b.tools(&["token", "import", "--pskc", p(&file), "--psk-file", p(&psk), "--user", "carol"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already enrolled"), "{}", describe(&out));
}
