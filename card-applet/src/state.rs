//! The card's persistent memory: what survives power-off, the [`Store`] trait the core
//! commits through, an in-memory store, and the file store of the virtual card.
//!
//! The state file *is* the card's secure memory (the EEPROM of a real card): it holds the
//! admin key, the PIN, the PUK and the current chain key in the clear. It is created with
//! mode `0600`, and [`FileStore::open`] refuses a file that group or others may read.
//!
//! Writes are atomic: the new state goes to `FILE.tmp`, which is fsynced, renamed over
//! `FILE`, and the directory is fsynced. A crash leaves either the old or the new state.
//! `FILE.lock` is held with an exclusive `flock` for as long as a [`FileStore`] lives, so
//! two processes never run the same card.
//!
//! Format (version 1, see `docs/protocol.md` and `testdata/state-v1.json`):
//!
//! ```json
//! {
//!   "format": "paysim-card-state",
//!   "version": 1,
//!   "admin_key_hex": "<64 hex>",
//!   "admin_tries": 10,
//!   "personal": null | {
//!     "serial": "PSIM-00000001",
//!     "pin_hex": "<16 hex: padded PIN block>", "pin_tries": 3,
//!     "puk_hex": "<16 hex>", "puk_tries": 10,
//!     "chain_key_hex": "<64 hex: ck_i>", "counter": i
//!   }
//! }
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::pin::{PinBlock, PukBlock};
use paysim_otp::ChainKey;
use paysim_wire::CardSerial;

/// PIN tries after personalization or a successful VERIFY.
pub const PIN_TRIES: u8 = 3;
/// PUK tries after personalization or a successful RESET RETRY COUNTER.
pub const PUK_TRIES: u8 = 10;
/// Admin authentication tries; the admin key blocks when they reach 0.
pub const ADMIN_TRIES: u8 = 10;
/// The `format` field of every state file.
pub const FORMAT_NAME: &str = "paysim-card-state";
/// The state-file format version this code writes.
pub const FORMAT_VERSION: u64 = 1;
/// Largest state file [`FileStore::open`] reads; a real one is under 1 KiB.
pub const STATE_FILE_MAX: usize = 16 * 1024;
/// Buffer reserved for serializing a state (more than the largest one needs).
const STATE_FILE_CAPACITY: usize = 2048;

/// Everything the card remembers across power cycles.
#[derive(Clone, PartialEq, Eq)]
pub struct CardState {
    /// The 32-byte admin (transport) key, set at creation, never changed, never output.
    pub admin_key: Zeroizing<[u8; 32]>,
    /// Admin authentication tries left (0 = blocked).
    pub admin_tries: u8,
    /// Present once the card has been personalized.
    pub personal: Option<Personal>,
}

/// The part of the state PERSONALIZE writes.
#[derive(Clone, PartialEq, Eq)]
pub struct Personal {
    pub serial: String,
    pub pin: PinBlock,
    pub pin_tries: u8,
    pub puk: PukBlock,
    pub puk_tries: u8,
    /// `ck_i`, the chain key of the next code.
    pub chain_key: ChainKey,
    /// `i`, the counter of the next code.
    pub counter: u64,
}

impl std::fmt::Debug for CardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardState")
            .field("admin_key", &"<secret>")
            .field("admin_tries", &self.admin_tries)
            .field("personal", &self.personal)
            .finish()
    }
}

impl std::fmt::Debug for Personal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Personal")
            .field("serial", &self.serial)
            .field("pin", &"<secret>")
            .field("pin_tries", &self.pin_tries)
            .field("puk", &"<secret>")
            .field("puk_tries", &self.puk_tries)
            .field("chain_key", &"<secret>")
            .field("counter", &self.counter)
            .finish()
    }
}

impl CardState {
    /// A factory-fresh card: admin key set, nothing personalized.
    pub fn factory(admin_key: &[u8; 32]) -> Self {
        Self { admin_key: Zeroizing::new(*admin_key), admin_tries: ADMIN_TRIES, personal: None }
    }

    /// Serializes to the current file format (version 1), deterministic byte for byte.
    pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let file = FileV1 {
            format: FORMAT_NAME.to_owned(),
            version: FORMAT_VERSION,
            admin_key_hex: hex::encode(self.admin_key.as_slice()),
            admin_tries: self.admin_tries,
            personal: self.personal.as_ref().map(|p| PersonalV1 {
                serial: p.serial.clone(),
                pin_hex: hex::encode(p.pin.as_bytes()),
                pin_tries: p.pin_tries,
                puk_hex: hex::encode(p.puk.as_bytes()),
                puk_tries: p.puk_tries,
                chain_key_hex: hex::encode(p.chain_key.expose()),
                counter: p.counter,
            }),
        };
        // Room for the whole file up front: a growing Vec would leave copies of the secrets
        // in the buffers it frees. Serializing these plain structs cannot fail; if it ever
        // did, the empty result is refused by every writer (see `checked`).
        let mut text = Zeroizing::new(Vec::with_capacity(STATE_FILE_CAPACITY));
        if serde_json::to_writer_pretty(&mut *text, &file).is_err() {
            text.clear();
            return text;
        }
        text.push(b'\n');
        text
    }

    /// Parses a state file of any supported version. `what` names the file in errors.
    pub fn from_file_bytes(bytes: &[u8], what: &Path) -> Result<Self, StoreError> {
        let bad = |reason: &'static str| StoreError::Format { path: what.to_owned(), reason };
        let head: Head = serde_json::from_slice(bytes).map_err(|_| bad("not a card state file (bad JSON)"))?;
        if head.format != FORMAT_NAME {
            return Err(bad("not a card state file (wrong \"format\")"));
        }
        match head.version {
            1 => {
                let f: FileV1 = serde_json::from_slice(bytes).map_err(|_| bad("malformed version-1 fields"))?;
                f.into_state().map_err(bad)
            }
            v => Err(StoreError::UnsupportedVersion { path: what.to_owned(), version: v }),
        }
    }
}

#[derive(Deserialize)]
struct Head {
    format: String,
    version: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: String,
    version: u64,
    admin_key_hex: String,
    admin_tries: u8,
    personal: Option<PersonalV1>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonalV1 {
    serial: String,
    pin_hex: String,
    pin_tries: u8,
    puk_hex: String,
    puk_tries: u8,
    chain_key_hex: String,
    counter: u64,
}

impl Drop for FileV1 {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.admin_key_hex.zeroize();
    }
}

impl Drop for PersonalV1 {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.pin_hex.zeroize();
        self.puk_hex.zeroize();
        self.chain_key_hex.zeroize();
    }
}

fn hex_array<const N: usize>(text: &str, reason: &'static str) -> Result<Zeroizing<[u8; N]>, &'static str> {
    let mut out = Zeroizing::new([0u8; N]);
    hex::decode_to_slice(text, out.as_mut_slice()).map_err(|_| reason)?;
    Ok(out)
}

impl FileV1 {
    fn into_state(self) -> Result<CardState, &'static str> {
        let admin_key = hex_array::<32>(&self.admin_key_hex, "admin_key_hex is not 64 hex digits")?;
        if self.admin_tries > ADMIN_TRIES {
            return Err("admin_tries out of range");
        }
        let personal = match &self.personal {
            None => None,
            Some(p) => {
                if !CardSerial::is_valid(&p.serial) {
                    return Err("serial is not 1-16 of [A-Z0-9-]");
                }
                let pin = hex_array::<8>(&p.pin_hex, "pin_hex is not 16 hex digits")?;
                let pin = PinBlock::from_block(pin.as_slice()).map_err(|_| "pin_hex is not a PIN block")?;
                let puk = hex_array::<8>(&p.puk_hex, "puk_hex is not 16 hex digits")?;
                let puk = PukBlock::from_block(puk.as_slice()).map_err(|_| "puk_hex is not a PUK block")?;
                let ck = hex_array::<32>(&p.chain_key_hex, "chain_key_hex is not 64 hex digits")?;
                if p.pin_tries > PIN_TRIES || p.puk_tries > PUK_TRIES {
                    return Err("pin_tries or puk_tries out of range");
                }
                Some(Personal {
                    serial: p.serial.clone(),
                    pin,
                    pin_tries: p.pin_tries,
                    puk,
                    puk_tries: p.puk_tries,
                    chain_key: ChainKey::from_bytes(*ck),
                    counter: p.counter,
                })
            }
        };
        Ok(CardState { admin_key, admin_tries: self.admin_tries, personal })
    }
}

/// Why the card's memory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("card state {path} is in use by another process{}; stop it before starting another", holder.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, holder: Option<String> },
    #[error("card state {path} already exists; refusing to overwrite a card (delete it first if you really mean to)")]
    Exists { path: PathBuf },
    #[error("card state {path}: {reason}")]
    Format { path: PathBuf, reason: &'static str },
    #[error("card state {path} has format version {version}; this build reads version {FORMAT_VERSION}")]
    UnsupportedVersion { path: PathBuf, version: u64 },
    #[error("card state {path} has mode {mode:04o} and holds card secrets; run `chmod 600 {}`", path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("card state {path} has {links} hard links; a card file must have exactly one name (copy it instead of linking, then remove the other names)")]
    Linked { path: PathBuf, links: u64 },
    #[error("injected storage failure (test)")]
    Injected,
}

impl StoreError {
    fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StoreError + 'p {
        move |source| StoreError::Io { op, path: path.to_owned(), source }
    }
}

/// Where the card commits its state. The core calls [`Store::commit`] and only answers once
/// it returned `Ok`; an `Err` makes the command answer `6581` (memory failure).
pub trait Store {
    /// Makes `state` durable: after `Ok`, a power loss keeps it; after `Err`, either the old
    /// or the new state survives, never a mix.
    fn commit(&mut self, state: &CardState) -> Result<(), StoreError>;
}

/// A store that keeps the last committed state in memory (tests, fuzzing, simulations).
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    /// The last committed state, if any.
    pub committed: Option<CardState>,
    /// How many commits succeeded.
    pub writes: usize,
}

impl Store for MemStore {
    fn commit(&mut self, state: &CardState) -> Result<(), StoreError> {
        self.committed = Some(state.clone());
        self.writes += 1;
        Ok(())
    }
}

impl<S: Store + ?Sized> Store for &mut S {
    fn commit(&mut self, state: &CardState) -> Result<(), StoreError> {
        (**self).commit(state)
    }
}

/// The virtual card's memory: one state file, locked while open.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    /// Holds the exclusive lock for as long as the store lives.
    _lock: File,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

// `File::try_lock` (stable since Rust 1.89, the workspace's `rust-version`) is flock through
// std, which keeps the crate free of `unsafe`.
/// Takes the exclusive lock on `FILE.lock`, recording our pid in it for the error message
/// another process would see.
fn lock(path: &Path) -> Result<File, StoreError> {
    let lock_path = sibling(path, ".lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(StoreError::io("open lock file", &lock_path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StoreError::Locked {
                path: path.to_owned(),
                holder: (!holder.is_empty() && holder.len() < 32).then(|| holder.to_owned()),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io("lock", &lock_path)(e)),
    }
    // The pid is advisory text for humans; failing to write it does not matter.
    let _ = file.set_len(0);
    let _ = file.write_all(format!("{}\n", std::process::id()).as_bytes());
    Ok(file)
}

impl FileStore {
    /// Opens a card file: takes the lock, checks the mode and reads the state.
    ///
    /// Errors: [`StoreError::Locked`] if another process runs this card,
    /// [`StoreError::Permissions`] if group/others may access it, I/O and format errors.
    pub fn open(path: &Path) -> Result<(Self, CardState), StoreError> {
        // The lock file sits next to the real file: a symlink (to the file or to a directory
        // on the way) must not lead a second process to a second lock for the same card.
        let real = std::fs::canonicalize(path).map_err(StoreError::io("open card state", path))?;
        let path = real.as_path();
        let lock = lock(path)?;
        let mut file = File::open(path).map_err(StoreError::io("open card state", path))?;
        let meta = file.metadata().map_err(StoreError::io("stat card state", path))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Permissions { path: path.to_owned(), mode });
        }
        // A second hard link is a second name with a second lock file, and the atomic rename
        // would silently cut it off from every later state.
        if meta.nlink() > 1 {
            return Err(StoreError::Linked { path: path.to_owned(), links: meta.nlink() });
        }
        // Read into one buffer of fixed capacity (no reallocation leaving secrets behind), and
        // refuse anything far larger than a card state could be.
        let mut bytes = Zeroizing::new(Vec::with_capacity(STATE_FILE_MAX + 1));
        let limit = u64::try_from(STATE_FILE_MAX + 1).unwrap_or(u64::MAX);
        (&mut file).take(limit).read_to_end(&mut bytes).map_err(StoreError::io("read card state", path))?;
        if bytes.len() > STATE_FILE_MAX {
            return Err(StoreError::Format { path: path.to_owned(), reason: "larger than any card state (16 KiB)" });
        }
        let state = CardState::from_file_bytes(&bytes, path)?;
        // A temp file left by a crash between write and rename is stale: the rename did not
        // happen, so the old state is the current one.
        let tmp = sibling(path, ".tmp");
        let _ = std::fs::remove_file(&tmp);
        Ok((Self { path: path.to_owned(), tmp, dir: parent_dir(path), _lock: lock }, state))
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes `bytes` to a new `tmp` (mode 0600) and fsyncs it. Whatever was at `tmp` before
/// (a stale file of another mode, a symlink) is removed, never written through.
fn write_tmp(tmp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    match std::fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("remove stale", tmp)(e)),
    }
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp).map_err(StoreError::io("create", tmp))?;
    f.write_all(bytes).map_err(StoreError::io("write", tmp))?;
    f.sync_all().map_err(StoreError::io("fsync", tmp))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io("fsync directory", dir))
}

impl Store for FileStore {
    fn commit(&mut self, state: &CardState) -> Result<(), StoreError> {
        write_tmp(&self.tmp, &checked(state.to_file_bytes(), &self.path)?)?;
        std::fs::rename(&self.tmp, &self.path).map_err(StoreError::io("rename", &self.path))?;
        sync_dir(&self.dir)
    }
}

/// Refuses to write an empty serialization over a card (it would lose the card's secrets).
fn checked(bytes: Zeroizing<Vec<u8>>, path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    if bytes.is_empty() {
        return Err(StoreError::Format { path: path.to_owned(), reason: "the state could not be serialized" });
    }
    Ok(bytes)
}

/// Creates a factory-fresh card file at `path` (mode 0600) with the given admin key.
/// Refuses to overwrite an existing file ([`StoreError::Exists`]), also against a racing
/// creator: the file appears atomically through a hard link that fails if it exists.
pub fn create_factory(path: &Path, admin_key: &[u8; 32]) -> Result<(), StoreError> {
    // Lock next to the real location, as `FileStore::open` does (the directory may be reached
    // through a symlink).
    let dir = std::fs::canonicalize(parent_dir(path)).map_err(StoreError::io("open directory", path))?;
    let name = path
        .file_name()
        .ok_or_else(|| StoreError::io("create card state", path)(std::io::ErrorKind::InvalidInput.into()))?;
    let real = dir.join(name);
    let path = real.as_path();
    let _lock = lock(path)?;
    if path.symlink_metadata().is_ok() {
        return Err(StoreError::Exists { path: path.to_owned() });
    }
    let tmp = sibling(path, ".tmp");
    write_tmp(&tmp, &checked(CardState::factory(admin_key).to_file_bytes(), path)?)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_dir(&parent_dir(path)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(StoreError::Exists { path: path.to_owned() }),
        Err(e) => Err(StoreError::io("create card state", path)(e)),
    }
}
