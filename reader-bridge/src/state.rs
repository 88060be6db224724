//! The bridge's small state directory: the pinned bank from `setup`, the session from
//! `login` and pending transfers.
//!
//! ```text
//! STATE_DIR/                         mode 0700
//!   bank.json                        mode 0600: the pinned bank (address, verifier id, CA copy)
//!   session.json                     mode 0600: bank verifier id, user, session token
//!   users.json                       mode 0600: the users who logged in from here, per bank
//!   pending/<key>.json               mode 0600: one transfer whose outcome is not known yet
//! ```
//!
//! `bank.json` is written only by `reader-bridge setup` (a deliberate act, never implied by
//! `--server`). It keeps a copy of the private CA's PEM text, not its path: a CA file moved or
//! deleted later does not change what the bridge trusts, and replacing the file cannot
//! silently make the bridge trust someone else.
//!
//! A pending transfer is written (atomically: temp file, fsync, rename) BEFORE the transfer
//! is first sent to the bank and removed only when the bank's answer is final. A retry with
//! the same fields finds it and reuses its transfer id; the bank treats a repeated id as the
//! same transfer, so money cannot move twice.

use crate::bank::{BankAddress, CaPem, Trust};
use crate::error::{Error, Result};
use paysim_wire::api::SessionToken;
use paysim_wire::{AccountNumber, Currency, PayeeName, TransferId, UserName};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// The stored session.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The verifier id of the bank this session belongs to.
    pub verifier_id: String,
    pub user: UserName,
    pub token: SessionToken,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("verifier_id", &self.verifier_id)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The version of `bank.json` this build writes and reads.
const PIN_FORMAT: u32 = 1;

/// The bank this bridge is set up for: every command talks to it and the card signs only for
/// its verifier id.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PinnedBank {
    pub format: u32,
    /// The address requests go to, e.g. `https://bank.example`.
    pub url: String,
    /// The origin the card signs for (`scheme://host:port`), derived from `url`.
    pub verifier_id: String,
    /// A private CA trusted instead of the platform's roots: a copy of the PEM file's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Where that copy was read from (shown by `status`; never read again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_source: Option<String>,
    /// When `setup` pinned it, Unix seconds.
    pub pinned_at: i64,
}

impl PinnedBank {
    /// A pin for `address`, trusting `ca` (read from `ca_source`) or the platform's roots.
    pub fn new(address: &BankAddress, ca: Option<(&CaPem, &Path)>, pinned_at: i64) -> PinnedBank {
        PinnedBank {
            format: PIN_FORMAT,
            url: address.url.clone(),
            verifier_id: address.verifier_id.clone(),
            ca_pem: ca.map(|(pem, _)| pem.pem().to_owned()),
            ca_source: ca.map(|(_, path)| path.display().to_string()),
            pinned_at,
        }
    }

    /// What to trust for the bank's certificate.
    pub fn trust(&self) -> std::result::Result<Trust, String> {
        match &self.ca_pem {
            None => Ok(Trust::Platform),
            Some(pem) => CaPem::parse(pem).map(Trust::PrivateCa),
        }
    }

    /// "the platform's roots" or "the private CA SHA-256 AB:CD:..", for messages.
    pub fn trust_text(&self) -> String {
        match self.trust() {
            Ok(Trust::Platform) => "the platform's root certificates".to_owned(),
            Ok(Trust::PrivateCa(ca)) => format!("the private CA with SHA-256 {}", ca.fingerprints().join(", ")),
            Err(e) => format!("a stored CA that cannot be used ({e})"),
        }
    }
}

/// `users.json`: who has logged in from this bridge, at which bank. Only names, no secrets:
/// it lets the bridge notice a mistyped user name before the card spends a code on it (the
/// bank answers every name with a challenge, on purpose, so it cannot tell).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct KnownUsers {
    users: Vec<KnownUser>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct KnownUser {
    verifier_id: String,
    user: UserName,
}

/// A transfer that was (or is about to be) sent and whose outcome is not known yet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingTransfer {
    pub verifier_id: String,
    pub user: UserName,
    pub transfer_id: TransferId,
    pub from: Option<AccountNumber>,
    pub to: AccountNumber,
    pub amount_minor: u64,
    pub currency: Currency,
    /// The payee's name given (signed in context version 2); `None` in records written
    /// before the bridge asked for it.
    #[serde(default)]
    pub payee_name: Option<PayeeName>,
}

impl PendingTransfer {
    /// The file name: the fields that make two attempts "the same transfer".
    fn key(&self) -> String {
        use std::hash::{Hash, Hasher};
        // Not a security boundary: only groups retries of the same fields. A stable,
        // readable key beats a cryptographic one here; collisions are checked on load.
        let mut h = Fnv64::default();
        // Hashed as the text the files have always been keyed by.
        let from = self.from.as_ref().map(AccountNumber::as_str);
        (
            self.verifier_id.as_str(),
            self.user.as_str(),
            from,
            self.to.as_str(),
            self.amount_minor,
            self.currency.as_str(),
        )
            .hash(&mut h);
        format!("{:016x}", h.finish())
    }

    fn same_fields(&self, other: &PendingTransfer) -> bool {
        self.verifier_id == other.verifier_id
            && self.user == other.user
            && self.from == other.from
            && self.to == other.to
            && self.amount_minor == other.amount_minor
            && self.currency == other.currency
            && self.payee_name == other.payee_name
    }
}

/// FNV-1a, 64 bit: a hasher whose output does not change between Rust releases.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The state directory.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The default location: `$XDG_STATE_HOME/paysim-bridge`, else
    /// `$HOME/.local/state/paysim-bridge`, else `./.paysim-bridge`.
    pub fn default_path() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(x).join("paysim-bridge");
        }
        if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(h).join(".local/state/paysim-bridge");
        }
        PathBuf::from(".paysim-bridge")
    }

    /// Opens (creating with mode 0700 if needed) the state directory at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        create_private_dir(&root)?;
        create_private_dir(&root.join("pending"))?;
        Ok(StateDir { root })
    }

    /// Where this directory is.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Takes this directory's transfer lock (`transfer.lock`, an OS file lock released when the
    /// returned file is dropped or the process dies). Two transfer commands with the same fields
    /// started at once would otherwise both miss the other's pending record, draw two transfer
    /// ids and both pay; with the lock the second is refused until the first has finished.
    pub fn lock_transfers(&self) -> Result<std::fs::File> {
        let path = self.root.join("transfer.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| Error::State { path: path.clone(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::TransferBusy { path: self.root.clone() }),
            Err(std::fs::TryLockError::Error(source)) => Err(Error::State { path, source }),
        }
    }

    fn pin_path(&self) -> PathBuf {
        self.root.join("bank.json")
    }

    /// The pinned bank, if `setup` ran. A file of another format is refused, not guessed at.
    pub fn pinned_bank(&self) -> Result<Option<PinnedBank>> {
        let path = self.pin_path();
        let pin = read_json::<PinnedBank>(&path)?;
        if let Some(p) = &pin {
            if p.format != PIN_FORMAT {
                return Err(Error::State {
                    path,
                    source: std::io::Error::other(format!(
                        "format {} is not the {PIN_FORMAT} this bridge reads; run `reader-bridge setup --server URL --replace`",
                        p.format
                    )),
                });
            }
        }
        Ok(pin)
    }

    /// Pins the bank (mode 0600, atomically).
    pub fn save_pinned_bank(&self, pin: &PinnedBank) -> Result<()> {
        write_json(&self.pin_path(), pin)
    }

    fn session_path(&self) -> PathBuf {
        self.root.join("session.json")
    }

    /// The stored session, if any and if it belongs to the bank with `verifier_id`.
    pub fn session(&self, verifier_id: &str) -> Result<Option<Session>> {
        let path = self.session_path();
        let Some(s) = read_json::<Session>(&path)? else {
            return Ok(None);
        };
        Ok((s.verifier_id == verifier_id).then_some(s))
    }

    /// Stores the session (mode 0600, atomically).
    pub fn save_session(&self, s: &Session) -> Result<()> {
        write_json(&self.session_path(), s)
    }

    /// Forgets the session.
    pub fn clear_session(&self) -> Result<()> {
        remove(&self.session_path())
    }

    fn users_path(&self) -> PathBuf {
        self.root.join("users.json")
    }

    /// The users who have logged in from this state directory at the bank with `verifier_id`
    /// (the bridge's profile), in the order of their first login.
    pub fn known_users(&self, verifier_id: &str) -> Result<Vec<UserName>> {
        let known = read_json::<KnownUsers>(&self.users_path())?.unwrap_or_default();
        Ok(known.users.into_iter().filter(|u| u.verifier_id == verifier_id).map(|u| u.user).collect())
    }

    /// Adds `user` to the profile for the bank with `verifier_id` (after a login succeeded).
    pub fn remember_user(&self, verifier_id: &str, user: &UserName) -> Result<()> {
        let mut known = read_json::<KnownUsers>(&self.users_path())?.unwrap_or_default();
        if known.users.iter().any(|u| u.verifier_id == verifier_id && &u.user == user) {
            return Ok(());
        }
        known.users.push(KnownUser { verifier_id: verifier_id.to_owned(), user: user.clone() });
        write_json(&self.users_path(), &known)
    }

    fn pending_path(&self, p: &PendingTransfer) -> PathBuf {
        self.root.join("pending").join(format!("{}.json", p.key()))
    }

    /// The pending transfer with the same fields as `wanted`, if a previous attempt left one.
    pub fn find_pending(&self, wanted: &PendingTransfer) -> Result<Option<PendingTransfer>> {
        let path = self.pending_path(wanted);
        Ok(read_json::<PendingTransfer>(&path)?.filter(|p| p.same_fields(wanted)))
    }

    /// Every pending transfer.
    pub fn all_pending(&self) -> Result<Vec<PendingTransfer>> {
        let dir = self.root.join("pending");
        let entries = std::fs::read_dir(&dir).map_err(|source| Error::State { path: dir.clone(), source })?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::State { path: dir.clone(), source })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                if let Some(p) = read_json::<PendingTransfer>(&path)? {
                    out.push(p);
                }
            }
        }
        out.sort_by(|a, b| a.transfer_id.cmp(&b.transfer_id));
        Ok(out)
    }

    /// Records `p` durably before it is sent.
    pub fn save_pending(&self, p: &PendingTransfer) -> Result<()> {
        write_json(&self.pending_path(p), p)
    }

    /// Removes `p` once the bank's answer is final.
    pub fn remove_pending(&self, p: &PendingTransfer) -> Result<()> {
        remove(&self.pending_path(p))
    }
}

/// A fresh transfer id: 128 random bits from the OS, hex.
pub fn new_transfer_id() -> Result<TransferId> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| Error::State {
        path: PathBuf::from("<os random source>"),
        source: std::io::Error::other(e.to_string()),
    })?;
    format!("tx-{}", hex::encode(b)).parse().map_err(|e: paysim_wire::IdError| Error::State {
        path: PathBuf::from("<new transfer id>"),
        source: std::io::Error::other(e),
    })
}

fn create_private_dir(path: &Path) -> Result<()> {
    let err = |source| Error::State { path: path.to_owned(), source };
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(err)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::State { path: path.to_owned(), source: std::io::Error::other(e) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::State { path: path.to_owned(), source }),
    }
}

/// Writes JSON atomically with mode 0600: temp file, fsync, rename, fsync of the directory.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let err = |source| Error::State { path: path.to_owned(), source };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    #[cfg(unix)]
    {
        // An existing temp file keeps its old mode: force 0600.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    f.write_all(&bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all().map_err(err)?;
        }
    }
    Ok(())
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::State { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(amount: u64) -> PendingTransfer {
        PendingTransfer {
            verifier_id: "http://127.0.0.1:8080".into(),
            user: "alice".parse().unwrap(),
            transfer_id: new_transfer_id().unwrap(),
            from: None,
            to: "ACC-2".parse().unwrap(),
            amount_minor: amount,
            currency: "EUR".parse().unwrap(),
            payee_name: Some("Bob Example".parse().unwrap()),
        }
    }

    #[test]
    fn pending_transfer_is_found_by_its_fields_only() {
        let dir = tempfile::tempdir().unwrap();
        let st = StateDir::open(dir.path().join("s")).unwrap();
        let p = pending(1234);
        assert_eq!(st.find_pending(&p).unwrap(), None);
        st.save_pending(&p).unwrap();
        // A new attempt has a fresh id but the same fields: it finds the old id.
        let retry = PendingTransfer { transfer_id: new_transfer_id().unwrap(), ..p.clone() };
        assert_ne!(retry.transfer_id, p.transfer_id);
        assert_eq!(st.find_pending(&retry).unwrap().unwrap().transfer_id, p.transfer_id);
        // Different amount: a different transfer.
        assert_eq!(st.find_pending(&pending(1235)).unwrap(), None);
        assert_eq!(st.all_pending().unwrap(), vec![p.clone()]);
        st.remove_pending(&p).unwrap();
        assert_eq!(st.find_pending(&retry).unwrap(), None);
        st.remove_pending(&p).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let st = StateDir::open(dir.path().join("s")).unwrap();
        let s = Session {
            verifier_id: "http://a:1".into(),
            user: "u".parse().unwrap(),
            token: SessionToken::new("secret".into()),
        };
        st.save_session(&s).unwrap();
        let mode = std::fs::metadata(st.path().join("session.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(st.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(st.session("http://a:1").unwrap(), Some(s.clone()));
        // A session for another bank is not used.
        assert_eq!(st.session("http://b:1").unwrap(), None);
        assert!(!format!("{s:?}").contains("secret"));
        st.clear_session().unwrap();
        assert_eq!(st.session("http://a:1").unwrap(), None);
    }

    #[test]
    fn the_pinned_bank_is_kept_private_with_its_ca_copy() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let st = StateDir::open(dir.path().join("s")).unwrap();
        assert_eq!(st.pinned_bank().unwrap(), None);
        let address = BankAddress::parse("https://bank.example").unwrap();
        let pin = PinnedBank::new(&address, None, 1_700_000_000);
        st.save_pinned_bank(&pin).unwrap();
        assert_eq!(st.pinned_bank().unwrap(), Some(pin.clone()));
        assert_eq!(pin.verifier_id, "https://bank.example:443");
        assert_eq!(pin.trust().unwrap(), Trust::Platform);
        let mode = std::fs::metadata(st.path().join("bank.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A format this build does not know is refused with what to do.
        let text =
            std::fs::read_to_string(st.path().join("bank.json")).unwrap().replace("\"format\": 1", "\"format\": 9");
        std::fs::write(st.path().join("bank.json"), text).unwrap();
        let e = st.pinned_bank().unwrap_err();
        assert!(e.chain().contains("--replace"), "{}", e.chain());
    }

    #[test]
    fn one_transfer_at_a_time_per_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("s")).unwrap();
        let held = state.lock_transfers().unwrap();
        // A second bridge process on the same directory (a second open file, as another
        // process would have) is refused while the first holds the lock...
        let other = StateDir::open(dir.path().join("s")).unwrap();
        let err = other.lock_transfers().unwrap_err();
        assert!(matches!(err, Error::TransferBusy { .. }), "{err:?}");
        assert_eq!(err.exit_code(), crate::error::exit::BUSY);
        assert!(err.to_string().contains("another transfer is running"), "{err}");
        // ...and gets it once the first is done.
        drop(held);
        let _again = other.lock_transfers().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("s/transfer.lock")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_profile_remembers_users_per_bank() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path().join("st")).unwrap();
        let alice: UserName = "alice".parse().unwrap();
        assert!(s.known_users("https://a.example").unwrap().is_empty());
        s.remember_user("https://a.example", &alice).unwrap();
        s.remember_user("https://a.example", &alice).unwrap();
        assert_eq!(s.known_users("https://a.example").unwrap(), vec![alice.clone()]);
        assert!(s.known_users("https://b.example").unwrap().is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("st/users.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn transfer_ids_are_fresh() {
        let a = new_transfer_id().unwrap();
        let b = new_transfer_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 35);
        assert!(a.as_str().len() <= 64);
    }
}
