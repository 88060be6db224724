//! The README's main command, `scripts/demo.sh`, run as a user would: the whole system on its
//! defaults (bank on a free port, a fresh work directory), checked by what it prints and by
//! the bank's database afterwards.
//!
//! The demo takes vpcd slot 0's lock itself (`scripts/lib.sh`, `lock_slot`, the same file as
//! [`e2e_tests::Slot::lock`]), so these tests must NOT hold it: they would deadlock with the
//! script. Two demos in this binary (parallel threads) queue on that lock inside the script.
//! Processes are waited on by their output lines and exit, never by sleeping.

use e2e_tests::hidden;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bounds one demo run: a cold build of the four binaries on a busy 2-core machine included.
const DEMO_WAIT: Duration = Duration::from_secs(900);

/// `target/` of this test, handed to the demo so the tests and the demo share one build.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    assert!(deps.ends_with("deps"), "unexpected test location {}", exe.display());
    deps.parent().unwrap().parent().unwrap().to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `bash scripts/demo.sh`; its output lines arrive on `lines` (stdout and stderr).
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    port: u16,
    work: PathBuf,
    _dir: tempfile::TempDir,
    /// The page's `reader-bridge respond` has no `--reader`: it must find the demo's card as
    /// the only one, so no other test of this binary holds a slot (or restarts pcscd)
    /// while the demo runs.
    _alone: e2e_tests::PcscdExclusive,
}

impl Demo {
    fn start(exit_after_automated_part: bool) -> Demo {
        let alone = e2e_tests::pcscd_exclusive();
        e2e_tests::require_pcscd();
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("demo");
        let port = free_port();
        let mut cmd = Command::new("bash");
        cmd.arg(e2e_tests::workspace_root().join("scripts/demo.sh"))
            .env("PAYSIM_PORT", port.to_string())
            .env("PAYSIM_DEMO_DIR", &work)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("PAYSIM_SLOT_WAIT", "600")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if exit_after_automated_part {
            cmd.env("PAYSIM_DEMO_EXIT", "1");
        } else {
            cmd.env_remove("PAYSIM_DEMO_EXIT");
        }
        let mut child = cmd.spawn().expect("cannot run bash scripts/demo.sh");
        let (tx, rx) = mpsc::channel();
        for pipe in
            [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Demo { child, lines: rx, seen: Vec::new(), port, work, _dir: dir, _alone: alone }
    }

    /// Collects output until a line contains `needle` (returned), or both pipes close (None).
    fn wait_for(&mut self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + DEMO_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.terminate();
                    panic!("demo.sh: no {needle:?} within {DEMO_WAIT:?}; output so far:\n{}", self.output());
                }
            }
        }
    }

    /// Reads the rest of the output and the exit status.
    fn finish(&mut self) -> ExitStatus {
        let _ = self.wait_for("\u{0}never printed\u{0}");
        self.child.wait().unwrap()
    }

    /// SIGTERM: the script's trap stops the card and the bank and releases the slot.
    fn terminate(&self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
    }

    fn output(&self) -> String {
        self.seen.join("\n")
    }

    fn db(&self) -> PathBuf {
        self.work.join("bank.sqlite3")
    }

    /// The bank's address: the demo serves HTTPS by default.
    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// An HTTP client trusting the demo's CA (`bank-tools tls init` in its work directory).
    fn client(&self) -> reqwest::blocking::Client {
        let pem = std::fs::read(self.work.join("tls").join("ca.pem")).unwrap();
        reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    }

    fn assert_line(&self, needle: &str) {
        assert!(
            self.seen.iter().any(|l| l.contains(needle)),
            "no line with {needle:?} in the demo's output:\n{}",
            self.output()
        );
    }

    /// The automated part's key results, in the output and in the database.
    fn assert_automated_part(&self) {
        let url = self.url();
        self.assert_line(&format!("demo: bank-server is up at {url} (pid "));
        self.assert_line("personalized card PSIM-00000001 in \"Virtual PCD 00 00\"");
        self.assert_line("enrolled token PSIM-00000001 for user alice");
        self.assert_line(&format!("set up for the bank at {url}; the card will sign only for {url}"));
        self.assert_line(&format!("bank:            {url} (the card signs for {url})"));
        self.assert_line(&format!("logged in as alice at {url}"));
        self.assert_line(&format!("bank (verifier id): {url}"));
        self.assert_line("amount:             12.34 EUR (1234 minor units)");
        self.assert_line("executed: 12.34 EUR from ACC-ALICE-EUR to ACC-BOB-EUR");
        self.assert_line(
            "demo: balances moved by exactly 12.34 EUR: ACC-ALICE-EUR 1000.00 -> 987.66, ACC-BOB-EUR 0.00 -> 12.34",
        );
        // The bridge's own `accounts` after the transfer, and its history.
        assert!(
            self.seen.iter().any(|l| l.starts_with("ACC-ALICE-EUR") && l.contains(" 987.66 ") && l.ends_with("EUR")),
            "{}",
            self.output()
        );
        self.assert_line("ACC-ALICE-EUR -> ACC-BOB-EUR  executed");
        self.assert_line("audit log intact: ");
        self.assert_line("books balance");

        // The database says the same, independently of what the script printed.
        let db = self.db();
        let balance = |user: &str, number: &str| {
            bank_server::ops::accounts(&db, user)
                .unwrap()
                .into_iter()
                .find(|a| a.number == number)
                .unwrap()
                .balance_minor
        };
        assert_eq!(balance("alice", "ACC-ALICE-EUR"), 100_000 - 1234);
        assert_eq!(balance("bob", "ACC-BOB-EUR"), 1234);
        let audit = bank_server::ops::verify_audit(&db).unwrap();
        assert!(
            audit.first_bad.is_none() && audit.rows > 0,
            "audit log: {} rows, broken: {}",
            audit.rows,
            audit.first_bad.is_some()
        );
        assert!(bank_server::ops::check_books(&db).unwrap().problems.is_empty());

        // No secret in the output: the card's admin key, the bank's master key, the PUK; the
        // token file (the seed) is gone once enrolled.
        let out = self.output();
        for secret_file in [self.work.join("card.admin"), self.work.join("bank.sqlite3.master-key")] {
            let secret = std::fs::read_to_string(&secret_file).unwrap();
            let secret = secret.trim();
            assert!(secret.len() >= 32, "{}", secret_file.display());
            assert!(!out.to_lowercase().contains(&secret.to_lowercase()), "{} leaked", secret_file.display());
        }
        assert!(!out.contains("12345678"), "the PUK leaked");
        assert!(!self.work.join("token.json").exists(), "the token file (the seed) was left behind");
    }

    /// Everything the demo started is gone: the port is free again.
    fn assert_stopped(&self) {
        TcpListener::bind(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("port {} still taken after the demo ended: {e}\n{}", self.port, self.output()));
        let bank_pid = self
            .seen
            .iter()
            .filter(|l| l.starts_with("demo: bank-server is up at "))
            .find_map(|l| l.split("(pid ").nth(1).and_then(|r| r.split(',').next()).map(str::to_owned))
            .unwrap_or_else(|| panic!("no bank pid in\n{}", self.output()));
        assert!(!Path::new("/proc").join(&bank_pid).exists(), "bank-server (pid {bank_pid}) still runs");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.terminate();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn demo_runs_the_whole_system_and_exits_when_asked() {
    let mut demo = Demo::start(true);
    let status = demo.finish();
    assert!(status.success(), "demo.sh failed ({status}):\n{}", demo.output());
    demo.assert_automated_part();
    demo.assert_line("demo: done");
    demo.assert_stopped();
}

/// Without PAYSIM_DEMO_EXIT the demo keeps the bank and card running; logging in by hand as
/// it says (the page's `reader-bridge respond` command, from the build it names) works, and
/// SIGTERM (like Ctrl-C) stops everything.
#[test]
fn demo_keeps_the_bank_running_for_a_login_by_hand_until_stopped() {
    let mut demo = Demo::start(false);
    if demo.wait_for("Ctrl-C stops the card and the bank.").is_none() {
        let status = demo.child.wait().unwrap();
        panic!("demo.sh ended ({status}) before waiting:\n{}", demo.output());
    }
    demo.assert_automated_part();
    demo.assert_line(&format!("website:   {}", demo.url()));
    demo.assert_line("user:      alice");
    demo.assert_line("PIN:       1234");
    let bin_dir = demo
        .seen
        .iter()
        .find_map(|l| {
            l.trim().strip_prefix("export PATH=\"").and_then(|r| r.strip_suffix(":$PATH\"")).map(PathBuf::from)
        })
        .unwrap_or_else(|| panic!("no PATH line in\n{}", demo.output()));
    // The demo's bridge state, set up for its bank by the demo's `reader-bridge setup`.
    let bridge_state = demo
        .seen
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("export PAYSIM_BRIDGE_STATE_DIR=\"")
                .and_then(|r| r.strip_suffix('"'))
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| panic!("no PAYSIM_BRIDGE_STATE_DIR line in\n{}", demo.output()));
    // The demo's port is not 8080, so the banner says which PAYSIM_SERVER to export; the
    // second terminal below uses it (a wrong one would be refused against the pinned bank).
    let server_export = demo
        .seen
        .iter()
        .find_map(|l| {
            l.trim().strip_prefix("export PAYSIM_SERVER=\"").and_then(|r| r.split('"').next()).map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no export PAYSIM_SERVER line in\n{}", demo.output()));
    assert_eq!(server_export, demo.url());

    // The browser's part, by HTTP; the second terminal's part with the page's command.
    let http = demo.client();
    let resp = http.get(format!("{}/login", demo.url())).send().unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = resp.text().unwrap();
    let csrf = hidden(&page, "csrf");
    let page = http
        .post(format!("{}/login", demo.url()))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("user", "alice")])
        .send()
        .unwrap()
        .text()
        .unwrap();
    let start = page.find("reader-bridge respond").unwrap_or_else(|| panic!("no respond command in {page}"));
    let command: Vec<&str> = page[start..].split('<').next().unwrap().split_whitespace().collect();
    // The page never names the bank; the second terminal was told it, as the demo says.
    assert!(!command.iter().any(|a| *a == "--server" || a.contains("127.0.0.1")), "{command:?}");
    let out = Command::new(bin_dir.join(command[0]))
        .args(&command[1..])
        .args(["--pin-stdin", "--yes"])
        .env("PAYSIM_BRIDGE_STATE_DIR", &bridge_state)
        .env("PAYSIM_SERVER", &server_export)
        .env_remove("PAYSIM_CA")
        .env_remove("PAYSIM_READER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"1234\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{command:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let code =
        stdout.lines().find_map(|l| l.strip_prefix("type into the page: ")).unwrap_or_else(|| panic!("{stdout}"));
    let resp = http
        .post(format!("{}/login/code", demo.url()))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("challenge_id", hidden(&page, "challenge_id").as_str()), ("code", code)])
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    assert_eq!(resp.headers()["location"].to_str().unwrap(), "/welcome");

    demo.terminate();
    let status = demo.finish();
    assert_eq!(status.code(), Some(143), "demo.sh on SIGTERM:\n{}", demo.output());
    demo.assert_line("demo: stopping the virtual card and the bank");
    demo.assert_stopped();
}

/// Runs `scripts/demo.sh` on `port` with its slot locks in `tmp` and its work directory at
/// `work`, for a demo that must refuse to run; returns what it printed.
fn refused_demo(tmp: &Path, port: u16, work: &Path) -> String {
    let out = Command::new("bash")
        .arg(e2e_tests::workspace_root().join("scripts/demo.sh"))
        .env("TMPDIR", tmp)
        .env("PAYSIM_PORT", port.to_string())
        .env("PAYSIM_DEMO_DIR", work)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("PAYSIM_DEMO_EXIT", "1")
        .env_remove("PAYSIM_SLOT_WAIT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    text
}

/// A demo that finds slot 0 held waits at most 30 s (the default), names the holder from the
/// lock file, and gives up without leaving a work directory behind. The slot's lock is taken in
/// a `TMPDIR` of this test's own, so the real slots (and other tests) are not touched.
#[test]
fn a_demo_gives_up_on_a_held_slot_within_30_s_naming_the_holder() {
    use std::io::Write;
    e2e_tests::require_pcscd();
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut held = std::fs::File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(tmp.join("paysim-vpcd-slot-0.lock"))
        .unwrap();
    held.lock().unwrap();
    writeln!(held, "pid 4242: a stand-in holder").unwrap();
    let work = dir.path().join("demo");
    let started = Instant::now();
    let text = refused_demo(&tmp, free_port(), &work);
    assert!(text.contains("vpcd slot 0 is held by pid 4242: a stand-in holder"), "{text}");
    assert!(text.contains("waiting up to 30 s"), "{text}");
    assert!(text.contains("vpcd slot 0 is still held after 30 s by pid 4242: a stand-in holder"), "{text}");
    assert!(!work.exists(), "the demo left {} behind:\n{text}", work.display());
    // The wait is bounded: setup, an up-to-date build and 30 s, not the old 300 s.
    assert!(started.elapsed() < DEMO_WAIT, "{:?}", started.elapsed());
}

/// A demo whose port is taken says so and which port to try instead, before it waits for a
/// slot or makes anything: no work directory is left behind.
#[test]
fn a_demo_refuses_a_taken_port_before_anything_else() {
    e2e_tests::require_pcscd();
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let work = dir.path().join("demo");
    let text = refused_demo(&tmp, port, &work);
    drop(taken);
    assert!(text.contains(&format!("port {port} is taken")), "{text}");
    assert!(text.contains(&format!("PAYSIM_PORT={}", port + 1)), "{text}");
    assert!(!text.contains("slot 0 is ours"), "the demo went on to the slot: {text}");
    assert!(!work.exists(), "the demo left {} behind:\n{text}", work.display());
}
