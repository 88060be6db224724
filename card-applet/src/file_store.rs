//! The virtual card's memory: one JSON state file ([`crate::state`] has the format),
//! written atomically and locked while a card runs it. Needs the `std` feature; the items
//! are reached as `state::FileStore`, `state::StoreError` and `state::create_factory`.
//!
//! - Secrecy: the file holds the card's secrets in the clear. It is created with mode
//!   `0600`, and [`FileStore::open`] refuses a file that group or others may read, or one
//!   with a second hard link.
//! - Atomicity: the new state goes to `FILE.tmp`, which is fsynced, renamed over `FILE`,
//!   and the directory is fsynced. A crash leaves either the old or the new state.
//! - Exclusion: `FILE.lock` is held with an exclusive `flock` for as long as a
//!   [`FileStore`] lives, so two processes never run the same card.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::state::{CardState, FORMAT_VERSION};
use crate::store::Store;

/// Largest state file [`FileStore::open`] reads; one without OATH credentials is under
/// 1 KiB, one with the most and largest credentials the applet holds under 32 KiB.
pub const STATE_FILE_MAX: usize = 64 * 1024;

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
    #[error("card state {path} has format version {version}; this build reads versions 1 to {FORMAT_VERSION}")]
    UnsupportedVersion { path: PathBuf, version: u64 },
    #[error("card state {path} has mode {mode:04o} and holds card secrets; run `chmod 600 {}`", path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("card state {path} has {links} hard links; a card file must have exactly one name (copy it instead of linking, then remove the other names)")]
    Linked { path: PathBuf, links: u64 },
}

impl StoreError {
    fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> StoreError + 'p {
        move |source| StoreError::Io { op, path: path.to_owned(), source }
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
            return Err(StoreError::Format { path: path.to_owned(), reason: "larger than any card state (64 KiB)" });
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
    type Error = StoreError;

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
