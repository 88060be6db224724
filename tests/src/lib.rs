//! # e2e-tests: the end-to-end harness
//!
//! Tests here drive the real binaries (`virtual-card`, `bank-tools`) through the real pcscd and
//! vsmartcard's vpcd. This library is what they share:
//!
//! - [`require_pcscd`]: fail fast, with what to do, when pcscd or vpcd is not up.
//! - [`bin`]: the path of a workspace binary, built once per test process.
//! - [`Slot`], [`SlotLock`], [`lock_any_slot`]: vpcd's two slots and a cross-process lock per
//!   slot (`$TMPDIR/paysim-vpcd-slot-N.lock`, also taken by `scripts/demo.sh`), so tests that
//!   use the same slot serialize (test binaries run one after another, but the tests inside
//!   one binary run in parallel threads). `lock_any_slot` takes whichever is free.
//! - [`VirtualCard`]: a running `virtual-card` on a locked slot; waits for the readiness line
//!   and for pcscd to see the card (`SCardGetStatusChange`, bounded by [`WAIT`]); `kill`
//!   pulls the card, `restart` powers it up again from its state file, `wait_connected` waits
//!   for the reconnect after `scripts/setup.sh --restart-pcscd`; on drop it kills the process
//!   and waits for the reader to be empty.
//! - [`TestCard`]: a card created and personalized through `bank-tools card create` and
//!   `bank-tools card personalize` (PIN and PUK on standard input), with its token file
//!   (serial and seed) read back as a `paysim_wire::TokenFile` ([`read_token`]);
//!   [`TestCard::factory`] stops before personalization.
//! - [`wait_reader`]: wait until a reader holds a card or is empty (card-link's bounded
//!   `SCardGetStatusChange` waits).
//! - [`scriptor`] and [`opensc_tool`]: third-party PC/SC clients.
//! - [`process`]: line waits on a child's output ([`lines_of`], [`wait_line`]) and the
//!   `bank-server serve` process ([`BankServer`]: plain HTTP on loopback, or HTTPS with
//!   [`BankServer::start_tls`], whose CA from `bank-tools tls init` is [`BankServer::ca`]).
//! - [`relay`]: a loopback relay that loses a transfer's confirmation once ([`Relay`]).
//! - [`faultproxy`]: an HTTP proxy that injects one network fault (drop, duplicate, delay,
//!   reset, bank restart) into the N-th request of a step ([`FaultProxy`]).
//! - [`browser`]: the bank's website by HTTP ([`Browser`], [`hidden`]).
//! - [`bridge`]: `reader-bridge setup` for a test's bridge state directory
//!   ([`setup_bridge_for`], [`setup_bridge`]): the one place the tests' bridges are pinned to
//!   a bank and told what CA to trust.
//! - [`pcscd_shared`] and [`pcscd_exclusive`]: the e2e tests share one pcscd; a test that
//!   restarts it, or must find its card as the only one (the demo), takes it exclusively, so
//!   no other test in the same process uses a card meanwhile.
//!
//! Cards are reached through `card_link` (the workspace's one PC/SC layer):
//!
//! ```no_run
//! use card_applet::host;
//! use card_link::TransportExt;
//! use e2e_tests::{CardSpec, TestCard};
//! let card = TestCard::personalized(&CardSpec::default());
//! let mut link = card.link(); // a card_link::PcscCard on the card's reader
//! let fci = link.exchange(|ex| ex.transmit(&host::select())).unwrap();
//! assert!(host::parse_select(&fci).unwrap().personalized());
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

pub mod bridge;
pub mod browser;
pub mod faultproxy;
pub mod pcscd;
pub mod process;
pub mod relay;
pub mod webdriver;

pub use bridge::{setup_bridge, setup_bridge_for};
pub use browser::{hidden, Browser};
pub use faultproxy::{Fault, FaultProxy, Fired, Plan, Route};
pub use pcscd::{pcscd_exclusive, pcscd_shared, PcscdExclusive, PcscdShared};
pub use process::{lines_of, wait_line, wait_line_containing, BankServer, BankTls};
pub use relay::{Cut, Relay};

use card_link::{Pcsc, PcscCard};
use paysim_wire::TokenFile;
use tempfile::TempDir;

/// How long to wait for a card to appear or disappear, or for a readiness line.
pub const WAIT: Duration = Duration::from_secs(20);

/// The workspace's top directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".."))
}

/// The directory holding this profile's binaries: the test executable lives in
/// `<target>/<profile>/deps/`, so its grandparent is right whatever `CARGO_TARGET_DIR` says.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let deps = exe.parent().unwrap_or(Path::new("."));
    if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps).to_path_buf()
    } else {
        // Benches and examples also live in deps/; anything else: the default target dir.
        workspace_root().join("target").join("debug")
    }
}

/// Builds the workspace binaries the tests drive, once per process, with the same profile
/// and target directory as this test; returns that directory.
fn built_bins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = profile_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target = dir.parent().map(Path::to_path_buf).unwrap_or_else(|| workspace_root().join("target"));
        let mut cmd = Command::new(cargo);
        // Cargo gives this test the package's own variables (CARGO_PKG_NAME, CARGO_MANIFEST_DIR,
        // OUT_DIR, ...). Build scripts such as ring's watch some of them with
        // `rerun-if-env-changed`, and cargo compares them against its own environment: passed
        // on, they make this build and the next `cargo test` rebuild ring and all above it in
        // turn, about 80 s each time.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if is_package_variable(&key) {
                cmd.env_remove(&*key);
            }
        }
        cmd.current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "card-applet", "-p", "tools", "-p", "bank-server", "-p", "reader-bridge"])
            .arg("--bins")
            .arg("--target-dir")
            .arg(&target);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("cannot run cargo to build the binaries: {e}"));
        assert!(
            out.status.success(),
            "building the workspace binaries failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// The variables cargo sets for one package's build or test run, as opposed to the user's
/// settings for cargo itself (CARGO_HOME, CARGO_TARGET_DIR, CARGO_BUILD_*, ...).
fn is_package_variable(key: &str) -> bool {
    const PREFIXES: [&str; 5] = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_EXE_", "CARGO_CFG_"];
    const NAMES: [&str; 4] = ["OUT_DIR", "CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "CARGO_BIN_NAME"];
    PREFIXES.iter().any(|p| key.starts_with(p)) || NAMES.contains(&key)
}

/// Path of workspace binary `name` (`virtual-card`, `bank-tools`, `bank-server`,
/// `reader-bridge`), built if needed.
pub fn bin(name: &str) -> PathBuf {
    built_bins().join(name)
}

/// Panics with what to do unless pcscd runs with vpcd's readers.
pub fn require_pcscd() {
    const HINT: &str = "run `sudo bash scripts/setup.sh` (installs and starts pcscd with vsmartcard-vpcd)";
    let _pcscd = pcscd_shared();
    let pcsc = Pcsc::establish().unwrap_or_else(|e| panic!("pcscd is not running ({e}): {HINT}"));
    let readers = pcsc.reader_names().unwrap_or_else(|e| panic!("cannot list readers ({e}): {HINT}"));
    for slot in Slot::ALL {
        assert!(
            readers.contains(&slot.reader()),
            "pcscd runs but has no reader {:?} (readers: {readers:?}): vsmartcard-vpcd is missing or pcscd was started before it was installed; {HINT}",
            slot.reader()
        );
    }
}

/// One of vpcd's slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(pub u8);

impl Slot {
    pub const ALL: [Slot; 2] = [Slot(0), Slot(1)];

    /// The PC/SC reader name: "Virtual PCD 00 00", "Virtual PCD 00 01".
    pub fn reader(self) -> String {
        format!("Virtual PCD 00 {:02}", self.0)
    }

    /// vpcd's TCP address for this slot's card.
    pub fn vpcd_addr(self) -> String {
        format!("127.0.0.1:{}", 35963 + u16::from(self.0))
    }

    fn lock_path(self) -> PathBuf {
        std::env::temp_dir().join(format!("paysim-vpcd-slot-{}.lock", self.0))
    }

    /// Takes the slot, waiting for whoever holds it (another test, another test binary), and
    /// shared use of pcscd before that (see [`pcscd`]).
    pub fn lock(self) -> SlotLock {
        let pcscd = pcscd_shared();
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path())
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.lock_path().display()));
        file.lock().unwrap_or_else(|e| panic!("cannot lock {}: {e}", self.lock_path().display()));
        write_holder(&file);
        SlotLock { slot: self, _file: file, _pcscd: pcscd }
    }

    /// Takes the slot if it is free right now.
    pub fn try_lock(self) -> Option<SlotLock> {
        let pcscd = pcscd::try_pcscd_shared()?;
        let file = File::options().create(true).truncate(false).write(true).open(self.lock_path()).ok()?;
        file.try_lock().ok()?;
        write_holder(&file);
        Some(SlotLock { slot: self, _file: file, _pcscd: pcscd })
    }
}

/// Writes who holds a slot's lock into its file, for `virtual-card` and `scripts/demo.sh` to
/// name when they find the slot taken. Best effort: the lock is what counts.
fn write_holder(mut file: &File) {
    use std::io::Write as _;
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
    let line = format!("pid {}: e2e tests ({exe})\n", std::process::id());
    let _ = file.set_len(0).and_then(|()| file.write_all(line.as_bytes()));
}

/// Takes whichever slot is free first, so independent tests run two at a time.
pub fn lock_any_slot() -> SlotLock {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    // A free slot whose reader is empty: a card started by hand outside the tests may sit in
    // a slot nobody locked.
    for slot in Slot::ALL {
        if let Some(lock) = slot.try_lock() {
            if reader_is_empty(slot) {
                return lock;
            }
        }
    }
    // All busy: queue on the slots without a foreign card, in turn, so waiting tests spread.
    let usable: Vec<Slot> = Slot::ALL.into_iter().filter(|s| s.try_lock().is_none() || reader_is_empty(*s)).collect();
    let pool = if usable.is_empty() { Slot::ALL.to_vec() } else { usable };
    let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % pool.len();
    pool[i].lock()
}

fn reader_is_empty(slot: Slot) -> bool {
    wait_reader(&slot.reader(), false, Duration::ZERO).is_ok()
}

/// Exclusive use of one vpcd slot; released on drop.
#[derive(Debug)]
pub struct SlotLock {
    slot: Slot,
    _file: File,
    // Dropped after the file lock: no pcscd restart until the slot is free.
    _pcscd: PcscdShared,
}

impl SlotLock {
    pub fn slot(&self) -> Slot {
        self.slot
    }
}

/// Waits (bounded) until `reader` holds a card (`present`) or is empty (`!present`).
///
/// A card counts as present only when it answers (not MUTE); the reader counts as empty only
/// when pcscd has seen the card go (no PRESENT at all). A mute card is neither: a new card
/// connected before pcscd noticed the old one leave can stay mute, so the slot is handed on
/// only after a real removal.
pub fn wait_reader(reader: &str, present: bool, timeout: Duration) -> Result<(), String> {
    let pcsc = Pcsc::establish().map_err(|e| format!("pcscd: {e}"))?;
    let done = if present { pcsc.wait_present(reader, timeout) } else { pcsc.wait_empty(reader, timeout) };
    match done {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "{reader}: still {} after {timeout:?}",
            if present { "without a card" } else { "holding a card" }
        )),
        Err(e) => Err(format!("{reader}: {e}")),
    }
}

/// A running `virtual-card` process on a locked slot. Dropping it kills the process and waits
/// until pcscd sees the reader empty, so the next user of the slot starts clean.
pub struct VirtualCard {
    child: Option<Child>,
    state: PathBuf,
    log: PathBuf,
    extra: Vec<String>,
    lines: Option<mpsc::Receiver<String>>,
    lock: SlotLock,
}

impl VirtualCard {
    /// Starts `virtual-card --state STATE --vpcd <slot>`, waits for its readiness line and for
    /// pcscd to report the card present. Logs go to `log` (see [`VirtualCard::log`]).
    pub fn spawn(lock: SlotLock, state: &Path, log: &Path) -> Result<Self, String> {
        Self::spawn_with(lock, state, log, &[])
    }

    /// As [`VirtualCard::spawn`] with extra flags (e.g. `--no-quickack`).
    pub fn spawn_with(lock: SlotLock, state: &Path, log: &Path, extra: &[&str]) -> Result<Self, String> {
        let mut card = Self {
            child: None,
            state: state.to_owned(),
            log: log.to_owned(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            lines: None,
            lock,
        };
        card.start()?;
        Ok(card)
    }

    fn start(&mut self) -> Result<(), String> {
        // Rarely (twice in this project's many full runs) pcscd begins powering a newly connected
        // virtual card (power off, ATR) and never finishes: the reader then reports no usable
        // card until the card is removed. That is pcscd's and vpcd's state, not the
        // card's, and a person would pull and re-insert the card; so does the harness, at
        // most twice, saying so on stderr. A card that never answers still fails the test.
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            self.spawn_process()?;
            let last = attempt == ATTEMPTS;
            match self.wait_connected_within(if last { WAIT } else { WAIT / 2 }) {
                Err(e) if !last => {
                    eprintln!("harness: the card in {} is not usable ({e}); re-inserting it", self.reader());
                    self.kill();
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    /// Starts the `virtual-card` process (the reader must be empty) and collects its stdout.
    fn spawn_process(&mut self) -> Result<(), String> {
        // We hold the slot's lock, so a card already in the reader was started by hand.
        wait_reader(&self.reader(), false, WAIT).map_err(|e| {
            format!("{e}: a card not started by these tests sits in the slot (a virtual-card run by hand?); stop it")
        })?;
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let mut child = Command::new(bin("virtual-card"))
            .arg("--state")
            .arg(&self.state)
            .arg("--vpcd")
            .arg(self.slot().vpcd_addr())
            // This process holds the slot's lock for the card.
            .arg("--slot-locked-by-caller")
            .args(&self.extra)
            // Every exchange in the log (the card logs frames at debug level), so tests can
            // check what was sent and that no secret is among it.
            .env("RUST_LOG", "info,card_applet::vpcd=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start virtual-card: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        self.child = Some(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.lines = Some(rx);
        Ok(())
    }

    /// Waits for the next readiness line (`virtual-card: connected to vpcd ...`) and then
    /// for pcscd to see the card. After a pcscd restart this is how to wait for the card
    /// to be back.
    pub fn wait_connected(&mut self) -> Result<(), String> {
        self.wait_connected_within(WAIT)
    }

    fn wait_connected_within(&mut self, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        loop {
            let got = match &self.lines {
                Some(rx) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok(),
                None => None,
            };
            match got {
                Some(line) if line.starts_with("virtual-card: connected to vpcd") => break,
                Some(_) => continue,
                None => {
                    let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                    return Err(format!(
                        "virtual-card did not connect to vpcd within {wait:?} (exit status: {status:?}); its log:\n{}",
                        self.log()
                    ));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        wait_reader(&self.reader(), true, left).map_err(|e| format!("{e}; virtual-card log:\n{}", self.log()))
    }

    pub fn slot(&self) -> Slot {
        self.lock.slot()
    }

    /// The PC/SC reader this card sits in.
    pub fn reader(&self) -> String {
        self.slot().reader()
    }

    /// What the card process logged so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the card process (a pulled card) and waits until pcscd sees the reader empty.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = wait_reader(&self.reader(), false, WAIT);
        }
    }

    /// Kills the process and starts it again on the same slot and state file (what a card
    /// keeps across power loss is then what its file holds).
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.start()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `bank-tools ARGS`, feeding `stdin` if given.
pub fn bank_tools(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(bin("bank-tools"))
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start bank-tools: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input.as_bytes());
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("bank-tools: {e}"))
}

/// Panics with bank-tools' output unless it succeeded.
pub fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The personalization output, read back from the `--out` file (mode 0600, the shared
/// token-file format).
pub fn read_token(path: &Path) -> TokenFile {
    tools::card::read_token_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What to personalize a [`TestCard`] with.
#[derive(Clone, Debug)]
pub struct CardSpec {
    pub serial: String,
    pub pin: String,
    pub puk: String,
    /// `(flag, value)` pairs of identity materials, e.g. `("--user-id", "alice")`.
    pub materials: Vec<(String, String)>,
    /// A specific slot, or `None` for whichever is free.
    pub slot: Option<Slot>,
}

impl Default for CardSpec {
    fn default() -> Self {
        Self {
            serial: "PSIM-00000001".into(),
            pin: "1234".into(),
            puk: "12345678".into(),
            materials: vec![("--user-id".into(), "alice".into())],
            slot: None,
        }
    }
}

/// A virtual card made the way an operator makes one: `bank-tools card create`, started in
/// a vpcd slot, then `bank-tools card personalize` over PC/SC.
pub struct TestCard {
    pub dir: TempDir,
    pub state: PathBuf,
    pub admin_key: PathBuf,
    pub token_path: PathBuf,
    pub token: TokenFile,
    pub spec: CardSpec,
    card: VirtualCard,
}

impl TestCard {
    /// Creates a factory card in a fresh temp dir and starts it on a slot (not personalized).
    pub fn factory(slot: Option<Slot>) -> (TempDir, PathBuf, PathBuf, VirtualCard) {
        require_pcscd();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let state = dir.path().join("card.state");
        let admin_key = dir.path().join("card.admin");
        let out =
            bank_tools(&["card", "create", "--state", path_str(&state), "--admin-key-out", path_str(&admin_key)], None);
        assert_success("bank-tools card create", &out);
        let lock = match slot {
            Some(s) => s.lock(),
            None => lock_any_slot(),
        };
        let card =
            VirtualCard::spawn(lock, &state, &dir.path().join("virtual-card.log")).unwrap_or_else(|e| panic!("{e}"));
        (dir, state, admin_key, card)
    }

    /// A created, started and personalized card.
    pub fn personalized(spec: &CardSpec) -> TestCard {
        let (dir, state, admin_key, card) = Self::factory(spec.slot);
        let token_path = dir.path().join("token.json");
        let reader = card.reader();
        let mut args: Vec<&str> = vec![
            "card",
            "personalize",
            "--reader",
            &reader,
            "--admin-key",
            path_str(&admin_key),
            "--serial",
            &spec.serial,
            "--pin-stdin",
            "--puk-stdin",
            "--out",
            path_str(&token_path),
        ];
        for (flag, value) in &spec.materials {
            args.push(flag);
            args.push(value);
        }
        let out = bank_tools(&args, Some(&format!("{}\n{}\n", spec.pin, spec.puk)));
        assert_success("bank-tools card personalize", &out);
        let token = read_token(&token_path);
        assert_eq!(token.serial.as_str(), spec.serial);
        TestCard { dir, state, admin_key, token_path, token, spec: spec.clone(), card }
    }

    pub fn reader(&self) -> String {
        self.card.reader()
    }

    /// A shared PC/SC connection to the card (card-link), as an observer. The bridge and the
    /// tools connect exclusively, so they wait while one is held: drop it before running them.
    pub fn link(&self) -> PcscCard {
        PcscCard::connect_shared(&self.reader(), WAIT).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn process(&mut self) -> &mut VirtualCard {
        &mut self.card
    }

    /// What the card process logged so far.
    pub fn log(&self) -> String {
        self.card.log()
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 temp path {}", p.display()))
}

/// One response as a third-party tool printed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolResponse {
    pub data: Vec<u8>,
    pub sw: u16,
}

/// Sends `apdus` (hex) in one connection with pcsc-tools' `scriptor` and parses its answers.
pub fn scriptor(reader: &str, apdus: &[String]) -> Result<Vec<ToolResponse>, String> {
    let mut child = Command::new("scriptor")
        .args(["-r", reader])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run scriptor (pcsc-tools; run scripts/setup.sh): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        for a in apdus {
            writeln!(stdin, "{a}").map_err(|e| e.to_string())?;
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let answers = parse_scriptor(&text)?;
    if answers.len() != apdus.len() {
        return Err(format!(
            "scriptor answered {} of {} APDUs:\n{text}\n{}",
            answers.len(),
            apdus.len(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(answers)
}

/// scriptor prints each answer as "< 6F 25 .. " wrapped over several lines, ending with
/// "90 00 : Normal processing." (the status word's meaning after the colon).
fn parse_scriptor(text: &str) -> Result<Vec<ToolResponse>, String> {
    let mut answers = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("< ") {
            current = Some(String::new());
            push_scriptor_line(&mut current, &mut answers, rest)?;
        } else if current.is_some() {
            push_scriptor_line(&mut current, &mut answers, line)?;
        }
    }
    Ok(answers)
}

fn push_scriptor_line(current: &mut Option<String>, answers: &mut Vec<ToolResponse>, line: &str) -> Result<(), String> {
    let Some(acc) = current.as_mut() else {
        return Ok(());
    };
    match line.split_once(':') {
        Some((hex_part, _meaning)) => {
            acc.push_str(hex_part);
            answers.push(parse_tool_hex(acc)?);
            *current = None;
        }
        None => {
            acc.push(' ');
            acc.push_str(line);
        }
    }
    Ok(())
}

/// Sends `apdus` (hex) in one connection with OpenSC's `opensc-tool --send-apdu`.
pub fn opensc_tool(reader: &str, apdus: &[String]) -> Result<Vec<ToolResponse>, String> {
    let mut cmd = Command::new("opensc-tool");
    cmd.args(["--reader", reader]);
    for a in apdus {
        cmd.args(["--send-apdu", a]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run opensc-tool (opensc; run scripts/setup.sh): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_opensc(&text).map_err(|e| format!("{e}\nopensc-tool said:\n{text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// opensc-tool prints, per APDU, "Sending: ..", "Received (SW1=0x90, SW2=0x00)" and, when
/// there is data, hex dump lines "6F 1A 84 ..  ascii".
fn parse_opensc(text: &str) -> Result<Vec<ToolResponse>, String> {
    let mut answers: Vec<ToolResponse> = Vec::new();
    let mut in_answer = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Received (SW1=0x") {
            let sw1 =
                u8::from_str_radix(rest.get(0..2).unwrap_or(""), 16).map_err(|e| format!("SW1 in {line:?}: {e}"))?;
            let sw2 = rest
                .split("SW2=0x")
                .nth(1)
                .and_then(|s| s.get(0..2))
                .ok_or_else(|| format!("no SW2 in {line:?}"))
                .and_then(|s| u8::from_str_radix(s, 16).map_err(|e| format!("SW2 in {line:?}: {e}")))?;
            answers.push(ToolResponse { data: Vec::new(), sw: u16::from_be_bytes([sw1, sw2]) });
            in_answer = true;
        } else if line.starts_with("Sending:") {
            in_answer = false;
        } else if in_answer {
            let bytes = parse_hexdump_line(line).ok_or_else(|| format!("unexpected opensc-tool line {line:?}"))?;
            if let Some(last) = answers.last_mut() {
                last.data.extend_from_slice(&bytes);
            }
        }
    }
    Ok(answers)
}

/// One line of OpenSC's hex dump: n (≤ 16) hex bytes "XX " then padding, then exactly n
/// characters of ASCII (non-printable as '.'). The ASCII tail is checked against the bytes,
/// so ASCII that looks like hex cannot be taken for data.
fn parse_hexdump_line(line: &str) -> Option<Vec<u8>> {
    let b = line.as_bytes();
    (1..=16usize).rev().find_map(|n| {
        if b.len() < 3 * n - 1 + n {
            return None;
        }
        let bytes = (0..n)
            .map(|k| {
                let tok = line.get(3 * k..3 * k + 2)?;
                let sep_ok = b.get(3 * k + 2).is_none_or(|c| *c == b' ');
                if sep_ok {
                    u8::from_str_radix(tok, 16).ok()
                } else {
                    None
                }
            })
            .collect::<Option<Vec<u8>>>()?;
        let ascii: String = bytes.iter().map(|c| if (0x20..0x7F).contains(c) { char::from(*c) } else { '.' }).collect();
        line.ends_with(&ascii).then_some(bytes)
    })
}

fn parse_tool_hex(s: &str) -> Result<ToolResponse, String> {
    let bytes = s
        .split_whitespace()
        .map(|t| u8::from_str_radix(t, 16).map_err(|e| format!("{t:?}: {e}")))
        .collect::<Result<Vec<u8>, _>>()?;
    match bytes.as_slice() {
        [data @ .., a, b] => Ok(ToolResponse { data: data.to_vec(), sw: u16::from_be_bytes([*a, *b]) }),
        _ => Err(format!("short answer {s:?}")),
    }
}

/// Hex of bytes, upper case, no spaces (the form both tools accept).
pub fn hex_upper(bytes: &[u8]) -> String {
    hex::encode_upper(bytes)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn the_inner_build_drops_the_package_variables_only() {
        for key in ["CARGO_PKG_NAME", "CARGO_MANIFEST_DIR", "CARGO_CRATE_NAME", "OUT_DIR", "CARGO_BIN_EXE_pin-holder"] {
            assert!(is_package_variable(key), "{key} belongs to the test's package");
        }
        for key in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "CARGO_BUILD_JOBS", "RUSTFLAGS", "PATH"] {
            assert!(!is_package_variable(key), "{key} is the user's setting and must reach the build");
        }
    }

    #[test]
    fn parses_opensc_tool_output() {
        let text = "Using reader with a card: Virtual PCD 00 00\n\
                    Sending: 00 A4 04 00 08 F0 50 41 59 53 49 4D 01 \n\
                    Received (SW1=0x90, SW2=0x00):\n\
                    6F 05 84 03 41 42 43 o...ABC\n\
                    Sending: 00 20 00 81 \n\
                    Received (SW1=0x63, SW2=0xC2)\n";
        let got = parse_opensc(text).unwrap();
        assert_eq!(
            got,
            vec![
                ToolResponse { data: vec![0x6F, 0x05, 0x84, 0x03, 0x41, 0x42, 0x43], sw: 0x9000 },
                ToolResponse { data: vec![], sw: 0x63C2 },
            ]
        );
    }

    #[test]
    fn parses_hexdump_lines_whose_ascii_looks_like_hex() {
        // Bytes "AB" print as ASCII "AB": the tail must not be read as a third byte.
        assert_eq!(parse_hexdump_line("41 42 AB"), Some(vec![0x41, 0x42]));
        let full = "6F 25 84 08 F0 50 41 59 53 49 4D 01 A5 19 DF 05 o%...PAYSIM.....";
        assert_eq!(parse_hexdump_line(full).map(|v| v.len()), Some(16));
        let last = "30 30 31                                        001";
        assert_eq!(parse_hexdump_line(last), Some(vec![0x30, 0x30, 0x31]));
        assert_eq!(parse_hexdump_line("Sending: 00"), None);
    }

    #[test]
    fn parses_wrapped_scriptor_answers() {
        let text = "Using T=1 protocol\n> 00 A4 04 00 \n< 6F 25 84 08 F0 50 41 59 53 49 4D 01 A5 19 DF 05 \n\
                    02 01 00 90 00 : Normal processing.\n> 00 20 00 81\n< 63 C2 : Verification failed.\n";
        let got = parse_scriptor(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data.len(), 19);
        assert_eq!(got[0].sw, 0x9000);
        assert_eq!(got[1], ToolResponse { data: vec![], sw: 0x63C2 });
    }

    #[test]
    fn parses_scriptor_answer_lines() {
        assert_eq!(
            parse_tool_hex("6F 01 AA 90 00 ").unwrap(),
            ToolResponse { data: vec![0x6F, 0x01, 0xAA], sw: 0x9000 }
        );
        assert!(parse_tool_hex("90").is_err());
    }
}
