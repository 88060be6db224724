//! The commit mark: `<db>.running`, which holds the number of the last batch the server
//! committed, and is held with an exclusive `flock` for as long as a `bank-server` serves the
//! database.
//!
//! Why: in WAL mode a commit is durable once it is in the `-wal` file; it reaches the database
//! file only at a checkpoint. A server that is killed leaves committed transactions in its
//! `-wal`, and SQLite replays them at the next open. If that `-wal` is removed meanwhile (an
//! operator cleaning up "temporary" files, a copy that took only the main file), or an older
//! copy of the database is put in place, SQLite opens what it finds without a word and the
//! acknowledged transfers are gone. The mark makes that loss visible:
//!
//! - every batch of the writer counts itself in the database (`storage_commits.seq`, in the
//!   batch's own transaction), and after its `COMMIT` the writer writes that number into the
//!   mark ([`Recorder`]; no fsync: it is a lower bound, never ahead of the database);
//! - `bank-server serve` ([`Running::start`]) and every operator command
//!   ([`check_for_operator`]) read the mark and the database's count (SQLite has replayed any
//!   `-wal` by then): a database behind its mark has lost acknowledged work, and is refused
//!   with what to do;
//! - a second server on the same database finds the mark locked and is refused.
//!
//! Nothing is needed at a stop, clean or not: the mark stays, and the lock goes with the
//! process. `docs/bank.md` ("Storage faults") says how to recover from each refusal.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

/// Why the database may not be opened now.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "database {}: it ends at commit {found}, but the bank-server that used it last had committed up to \
         {marked} ({}): {lost} committed batches are missing, because its -wal file was removed or an older copy \
         of the database was put in place. Put the -wal file (or the newer copy) back and start again; \
         `bank-server serve --accept-lost-commits` runs on this database anyway, accepting the loss \
         (docs/bank.md, \"Storage faults\")",
        .db.display(),
        .mark.display(),
        lost = .marked - .found
    )]
    LostCommits { db: PathBuf, mark: PathBuf, marked: u64, found: u64 },
    #[error("database {}: another bank-server{} is serving it; stop that one first", .db.display(), .holder.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse { db: PathBuf, holder: Option<String> },
    #[error("commit mark {}: {source}", .mark.display())]
    Io { mark: PathBuf, source: std::io::Error },
    /// The database's files are not private (checked before anything opens them).
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// `<db>.running`.
pub fn mark_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".running");
    PathBuf::from(name)
}

/// The mark's text: the commit number on the first line (fixed width, so each update
/// overwrites the last in place), the pid of the server on the second.
fn text(seq: u64) -> String {
    format!("{seq:020}\n{}\n", std::process::id())
}

fn parse(text: &str) -> Option<u64> {
    text.lines().next()?.trim().parse().ok()
}

enum Lock {
    Ours(File),
    Held(Option<String>),
}

fn open_and_lock(mark: &Path) -> Result<Lock, RunError> {
    let io = |source| RunError::Io { mark: mark.to_owned(), source };
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(mark).map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(Lock::Ours(file)),
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = text.lines().nth(1).map(str::trim).filter(|p| !p.is_empty() && p.len() < 16);
            Ok(Lock::Held(pid.map(str::to_owned)))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// The database's commit count (after SQLite replayed any `-wal`): `None` when it cannot tell
/// (no database yet, a schema from before the count, a file SQLite cannot read: opening it
/// properly then says what is wrong).
fn counted(db_path: &Path) -> Option<u64> {
    if !db_path.exists() {
        return None;
    }
    // A read-write open, so that SQLite replays a `-wal` it finds (a read-only one may not).
    let conn = Connection::open(db_path).ok()?;
    let seq: Option<i64> =
        conn.query_row("SELECT seq FROM storage_commits WHERE id = 1", [], |r| r.get(0)).optional().ok()?;
    seq.and_then(|s| u64::try_from(s).ok())
}

/// Compares the mark with the database: `Err` when the database is behind it.
fn compare(db_path: &Path, mark: &Path, file: &mut File) -> Result<Option<u64>, RunError> {
    // Opening the database may make or remove its -wal and -shm: their modes are checked first,
    // as the open proper checks them.
    if db_path.exists() {
        crate::db::check_private(db_path)?;
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|source| RunError::Io { mark: mark.to_owned(), source })?;
    let found = counted(db_path);
    match (parse(&text), found) {
        (Some(marked), Some(found)) if marked > found => {
            Err(RunError::LostCommits { db: db_path.to_owned(), mark: mark.to_owned(), marked, found })
        }
        _ => Ok(found),
    }
}

/// The mark of a serving `bank-server`, locked until the process ends.
#[derive(Debug)]
pub struct Running {
    _file: File,
}

impl Running {
    /// Takes the mark of the database at `db_path`: refused when another server holds it, or
    /// when the database is behind it (unless `accept_lost_commits`, which the log records;
    /// the mark then starts again from the database's count).
    pub fn start(db_path: &Path, accept_lost_commits: bool) -> Result<Running, RunError> {
        let mark = mark_path(db_path);
        let mut file = match open_and_lock(&mark)? {
            Lock::Ours(f) => f,
            Lock::Held(holder) => return Err(RunError::InUse { db: db_path.to_owned(), holder }),
        };
        let found = match compare(db_path, &mark, &mut file) {
            Ok(found) => found,
            Err(RunError::LostCommits { marked, found, .. }) if accept_lost_commits => {
                tracing::warn!(
                    db = %db_path.display(),
                    marked,
                    found,
                    "the database is behind its commit mark; starting anyway (--accept-lost-commits): \
                     the committed batches after {found} are lost"
                );
                Some(found)
            }
            Err(e) => return Err(e),
        };
        let io = |source| RunError::Io { mark: mark.clone(), source };
        file.set_len(0).map_err(io)?;
        file.write_all(text(found.unwrap_or(0)).as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Running { _file: file })
    }
}

/// For an operator command about to open the database: refused, as [`Running::start`] is,
/// when the database is behind its mark. Nothing to check when there is no mark or a server
/// holds it (it checked at its start).
pub fn check_for_operator(db_path: &Path) -> Result<(), RunError> {
    let mark = mark_path(db_path);
    if !mark.exists() {
        return Ok(());
    }
    match open_and_lock(&mark)? {
        Lock::Ours(mut file) => compare(db_path, &mark, &mut file).map(|_| ()),
        Lock::Held(_) => Ok(()),
    }
}

/// The writer's side: after each committed batch, its number goes into the mark (when the
/// server took one: tests that build the state directly have none).
#[derive(Debug)]
pub struct Recorder {
    file: File,
}

impl Recorder {
    /// Opens the mark of the database at `db_path` for the writer, if there is one.
    pub fn open(db_path: &Path) -> Option<Recorder> {
        let file = OpenOptions::new().write(true).open(mark_path(db_path)).ok()?;
        Some(Recorder { file })
    }

    /// Writes `seq` over the mark's first line (the page cache has it at once, so a killed
    /// server's mark is current; after a power loss it may be older, never newer).
    pub fn record(&self, seq: u64) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            if let Err(e) = self.file.write_all_at(text(seq).as_bytes(), 0) {
                tracing::warn!(error = %e, "could not update the commit mark");
            }
        }
        #[cfg(not(unix))]
        let _ = seq;
    }
}

/// Whether the database has the count each batch increments (a writer on a scratch database
/// in a unit test has none).
pub fn has_count(conn: &Connection) -> bool {
    conn.query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'storage_commits'", [], |_| Ok(()))
        .optional()
        .ok()
        .flatten()
        .is_some()
}

/// Counts the batch in `tx`: its number.
pub fn count(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<u64> {
    let seq: i64 = tx
        .prepare_cached("UPDATE storage_commits SET seq = seq + 1 WHERE id = 1 RETURNING seq")?
        .query_row([], |r| r.get(0))?;
    Ok(u64::try_from(seq).unwrap_or(0))
}
