//! Opening the SQLite database: pragmas checked, migrations applied, and a small connection
//! pool whose work runs on blocking threads, never on an async worker. The server writes only
//! through [`crate::writer`]; its pool here is read-only ([`Db::readers`]). Operator functions
//! use a read-write pool of their own process.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::Semaphore;

/// The migrations, in order. Version `i + 1` is `MIGRATIONS[i]`; `PRAGMA user_version` says
/// which have been applied.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_audit.sql", include_str!("../migrations/0001_audit.sql")),
    ("0002_auth.sql", include_str!("../migrations/0002_auth.sql")),
    ("0003_ledger.sql", include_str!("../migrations/0003_ledger.sql")),
    ("0004_website.sql", include_str!("../migrations/0004_website.sql")),
    ("0005_auth_challenge_index.sql", include_str!("../migrations/0005_auth_challenge_index.sql")),
    ("0006_website_visitors.sql", include_str!("../migrations/0006_website_visitors.sql")),
    ("0007_website_csrf_derived.sql", include_str!("../migrations/0007_website_csrf_derived.sql")),
    ("0008_auth_challenge_purpose.sql", include_str!("../migrations/0008_auth_challenge_purpose.sql")),
    ("0009_website_session_pruning.sql", include_str!("../migrations/0009_website_session_pruning.sql")),
    ("0010_audit_keyed.sql", include_str!("../migrations/0010_audit_keyed.sql")),
    ("0011_payee_and_context_v2.sql", include_str!("../migrations/0011_payee_and_context_v2.sql")),
    ("0012_auth_token_kind.sql", include_str!("../migrations/0012_auth_token_kind.sql")),
    ("0015_storage_commits.sql", include_str!("../migrations/0015_storage_commits.sql")),
    ("0016_ledger_transfer_endings.sql", include_str!("../migrations/0016_ledger_transfer_endings.sql")),
];

/// The schema version this build expects.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// How long a writer waits for another connection's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections a pool keeps.
const POOL_SIZE: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database {path}: PRAGMA {pragma} is {got:?}, the bank needs {want:?}; refusing to run")]
    Pragma { path: String, pragma: &'static str, got: String, want: &'static str },
    #[error(
        "database {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; use a newer bank-server"
    )]
    TooNew { path: String, found: u32 },
    #[error("migration {name} failed: {source}")]
    Migration { name: &'static str, source: rusqlite::Error },
    #[error("the database worker thread stopped")]
    Worker,
    /// The batch of the writer this unit ran in did not commit (its effects are gone).
    #[error("the batch did not commit: {0}")]
    Batch(String),
    /// The same, because the storage failed (disk full, an I/O error, a read-only file or
    /// file system: [`is_storage_fault`]); nothing of the batch happened.
    #[error("the database cannot be written: {0}")]
    Storage(String),
    /// SQLite found the database damaged (at open, or by `PRAGMA quick_check`): the bank
    /// refuses to run on it.
    #[error(
        "database {path} is damaged ({detail}); the bank will not run on it: restore it from a backup \
         (docs/bank.md, \"Storage faults\")"
    )]
    Corrupt { path: String, detail: String },
    /// The database cannot be written at start (a read-only file, directory or file system).
    #[error(
        "database {path} cannot be written ({detail}); the bank needs to write it: check the owner and mode of \
         the file, of its -wal and -shm, and of its directory, and that the file system is mounted read-write"
    )]
    ReadOnly { path: String, detail: String },
    /// The database, its `-wal` or its `-shm` can be read by group or others (the message
    /// gives the `chmod` to run), or could not be created private.
    #[error(transparent)]
    Private(#[from] crate::private::PrivateFileError),
}

/// Whether SQLite's error is the storage failing under it rather than a mistake of the bank's:
/// the disk is full (or a file hit its size limit), a read or write failed, the file or its
/// file system is read-only, or a file could not be opened. Requests that meet one are refused
/// with `storage_unavailable` (`503`), and nothing of them happened.
pub fn is_storage_fault(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(C::DiskFull | C::SystemIoFailure | C::ReadOnly | C::CannotOpen | C::DatabaseCorrupt | C::NotADatabase)
    )
}

/// Copies every committed page of the WAL into the database file and truncates the WAL
/// (`wal_checkpoint(TRUNCATE)`), at a clean stop; `Err` when SQLite could not get them all
/// (another connection was still reading or writing).
pub fn checkpoint_all(path: &Path) -> Result<(), DbError> {
    let conn = open_connection(path)?;
    let (busy, log, done): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if busy != 0 || log != done {
        return Err(DbError::Batch(format!("checkpoint incomplete: {done} of {log} WAL frames copied")));
    }
    Ok(())
}

/// A storage fault met while opening, named for the operator: damage or a read-only database
/// get their own errors (with what to do); anything else stays as it was.
fn classify(path: &Path, e: DbError) -> DbError {
    use rusqlite::ErrorCode as C;
    let code = match &e {
        DbError::Sql(s) | DbError::Migration { source: s, .. } => s.sqlite_error_code(),
        _ => None,
    };
    let detail = match &e {
        DbError::Sql(s) | DbError::Migration { source: s, .. } => s.to_string(),
        other => other.to_string(),
    };
    let path = path.display().to_string();
    match code {
        Some(C::DatabaseCorrupt | C::NotADatabase) => DbError::Corrupt { path, detail },
        Some(C::ReadOnly) => DbError::ReadOnly { path, detail },
        _ => e,
    }
}

/// Makes sure the database can be written, now rather than at the first request: SQLite opens
/// a file it may only read without a word, and a transaction that writes nothing succeeds on
/// it. The probe writes one row and rolls back.
fn write_probe(conn: &mut Connection) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("UPDATE storage_commits SET seq = seq WHERE id = 1", [])?;
    tx.rollback()?;
    Ok(())
}

/// `PRAGMA quick_check`: every page of every table and index is read and checked for
/// structure (not index contents against their tables: that is `integrity_check`, which the
/// crash campaign runs). It reads the whole file once; the server does it at start.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), DbError> {
    let corrupt = |detail: String| DbError::Corrupt { path: path.display().to_string(), detail };
    let mut stmt = conn.prepare("PRAGMA quick_check(5)").map_err(|e| corrupt(e.to_string()))?;
    let found: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| corrupt(e.to_string()))?;
    if found.len() == 1 && found[0] == "ok" {
        return Ok(());
    }
    Err(corrupt(format!("quick_check: {}", found.join("; "))))
}

/// The files SQLite keeps beside a database in WAL mode.
const SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Makes sure the database at `path` is private before SQLite opens it: created empty with mode
/// 0600 when missing (SQLite gives the `-wal` and `-shm` it creates the main file's mode), and
/// refused, with the `chmod` to run, when it or a `-wal`/`-shm` left beside it can be read by
/// group or others.
fn ensure_private(path: &Path) -> Result<(), DbError> {
    if path.as_os_str() == ":memory:" {
        // No file (and no WAL: `open_connection` refuses it).
        return Ok(());
    }
    if crate::private::create_if_missing("database", path)? {
        tracing::info!(path = %path.display(), "created a new database file (mode 0600)");
    }
    check_private(path)
}

/// The database and whichever of its `-wal` and `-shm` exist are private.
pub fn check_private(path: &Path) -> Result<(), DbError> {
    crate::private::check("database", path)?;
    for suffix in SIDE_FILES {
        crate::private::check_if_exists("database file", &side_file(path, suffix))?;
    }
    Ok(())
}

/// Opens one connection with the bank's settings and checks that SQLite really applied them.
pub fn open_connection(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // SQLite is built with STAT4, which re-prepares a cached statement whenever a new value is
    // bound to a range (`expires_at <= ?1`): the prunes were parsed again on every request. The
    // planner's stability guarantee keeps each statement's plan (the plan tests check it).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    let shown = path.display().to_string();
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Pragma { path: shown, pragma: "journal_mode", got: mode, want: "wal" });
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    // Room for the tables' hot pages (SQLite's default is 2 MiB): with 100,000 sessions the
    // random-keyed indexes no longer fit, and every insert read its pages back from the file.
    conn.execute_batch(&format!("PRAGMA cache_size = -{};", PAGE_CACHE_KIB))?;
    // The writer's savepoints keep a sub-journal of the pages each unit changes: in memory,
    // never a temporary file (nothing of it needs to survive a crash; the WAL does).
    conn.execute_batch("PRAGMA temp_store = MEMORY;")?;
    let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    if sync != 2 {
        return Err(DbError::Pragma { path: shown, pragma: "synchronous", got: sync.to_string(), want: "2 (FULL)" });
    }
    let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    if fk != 1 {
        return Err(DbError::Pragma { path: shown, pragma: "foreign_keys", got: fk.to_string(), want: "1 (ON)" });
    }
    Ok(conn)
}

/// `execute` and `query_row` through the connection's statement cache, so the statements of
/// every request are parsed once per connection rather than once per call. A `Transaction`
/// has them too (it derefs to its connection).
pub trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// The page cache of each connection, KiB (allocated as used).
const PAGE_CACHE_KIB: u32 = 32 * 1024;

/// Statements each connection keeps parsed (all of a request's fit, with room).
const STATEMENT_CACHE: usize = 128;

/// Opens a connection that can only read ([`open_connection`] plus `PRAGMA query_only`).
pub fn open_reader(path: &Path) -> Result<Connection, DbError> {
    let conn = open_connection(path)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    Ok(conn)
}

/// A stored text that names no value of its type (a state, a kind, an identifier): reading it is
/// an error, never a guess.
#[derive(Debug, thiserror::Error)]
#[error("stored {column} is not a value this build knows")]
pub struct UnknownValue {
    pub column: &'static str,
}

/// Converts a stored text column with `parse`, turning a refusal into a conversion error of
/// column `index` (so a row with an unknown value fails to load instead of being guessed).
pub fn parse_column<T>(
    row: &rusqlite::Row<'_>,
    index: usize,
    column: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(UnknownValue { column }))
    })
}

/// Applies the migrations this database has not seen yet, all in one `BEGIN IMMEDIATE`
/// transaction: a failure leaves the database at its old version.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<u32, DbError> {
    migrate_to(conn, path, SCHEMA_VERSION)
}

/// [`migrate`] up to version `target` only (tests put data in an old schema this way).
fn migrate_to(conn: &mut Connection, path: &Path, target: u32) -> Result<u32, DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(DbError::TooNew { path: path.display().to_string(), found: current });
    }
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = i as u32 + 1;
        if version <= current || version > target {
            continue;
        }
        tx.execute_batch(sql).map_err(|source| DbError::Migration { name, source })?;
        tx.pragma_update(None, "user_version", version).map_err(|source| DbError::Migration { name, source })?;
        tracing::info!(migration = name, version, "applied migration");
    }
    tx.commit()?;
    Ok(target.max(current))
}

/// Runs `f` inside a `BEGIN IMMEDIATE` transaction and commits when it returns `Ok`.
/// Immediate: the write lock is taken at the start, so two verifications never interleave.
pub fn immediate<T, E>(conn: &mut Connection, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E>
where
    E: From<rusqlite::Error>,
{
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}

/// Runs `f` inside a read transaction (a consistent snapshot).
pub fn read<T, E>(conn: &mut Connection, f: impl FnOnce(&Transaction<'_>) -> Result<T, E>) -> Result<T, E>
where
    E: From<rusqlite::Error>,
{
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let out = f(&tx)?;
    tx.finish()?;
    Ok(out)
}

/// The server's handle on its database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    /// Connections of this pool refuse to write (`PRAGMA query_only`).
    read_only: bool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.inner.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path`, checks its pragmas and migrates it.
    /// The files are private: see [`check_private`].
    pub fn open(path: &Path) -> Result<Db, DbError> {
        ensure_private(path)?;
        let mut conn = open_connection(path).map_err(|e| classify(path, e))?;
        quick_check(&conn, path)?;
        migrate(&mut conn, path).map_err(|e| classify(path, e))?;
        write_probe(&mut conn).map_err(|e| classify(path, e))?;
        // The `-wal` and `-shm` SQLite has just made took the main file's mode: check anyway.
        if path.as_os_str() != ":memory:" {
            check_private(path)?;
        }
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                idle: Mutex::new(vec![conn]),
                permits: Arc::new(Semaphore::new(POOL_SIZE)),
                read_only: false,
            }),
        })
    }

    /// A pool of read-only connections to the same database (the server's reads: under WAL
    /// they see the last commit and never take the write lock).
    pub fn readers(&self) -> Db {
        Db {
            inner: Arc::new(Inner {
                path: self.inner.path.clone(),
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(POOL_SIZE)),
                read_only: true,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs blocking database work on a blocking thread with a pooled connection.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let permit = self.inner.permits.clone().acquire_owned().await.map_err(|_| DbError::Worker)?;
        let inner = self.inner.clone();
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = inner.take()?;
            let out = f(&mut conn);
            inner.give_back(conn);
            out
        });
        job.await.map_err(|_| DbError::Worker)?
    }

    /// The same, for synchronous callers (operator functions, tests).
    pub fn run_blocking<T, E>(&self, f: impl FnOnce(&mut Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut conn = self.inner.take()?;
        let out = f(&mut conn);
        self.inner.give_back(conn);
        out
    }
}

impl Inner {
    fn take(&self) -> Result<Connection, DbError> {
        let pooled = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        match pooled {
            Some(c) => Ok(c),
            None if self.read_only => open_reader(&self.path),
            None => open_connection(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        // A connection left inside a transaction (a panic mid-way) is dropped, not reused.
        if !conn.is_autocommit() {
            return;
        }
        if let Ok(mut v) = self.idle.lock() {
            if v.len() < POOL_SIZE {
                v.push(conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_to_an_empty_database_and_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.sqlite3");
        let db = Db::open(&path).unwrap();
        let v: u32 =
            db.run_blocking(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(DbError::from)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        drop(db);
        // Opening again applies nothing and keeps the version.
        let mut c = open_connection(&path).unwrap();
        assert_eq!(migrate(&mut c, &path).unwrap(), SCHEMA_VERSION);
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
                 ('audit','users','tokens','challenges','accounts','transfers','journal','postings','sessions')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 9);
    }

    #[test]
    fn migration_8_splits_the_challenge_purpose_and_keeps_open_challenges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.sqlite3");
        let mut c = open_connection(&path).unwrap();
        assert_eq!(migrate_to(&mut c, &path, 7).unwrap(), 7);
        c.execute_batch(
            "INSERT INTO users (id, name, created_at) VALUES (1, 'alice', 0), (2, 'bob', 0);
             INSERT INTO tokens (id, serial, user_id, status, next_counter, ck_nonce, ck_sealed, created_at)
               VALUES (1, 'PSIM-A', 1, 'active', 0, x'', x'', 0);
             INSERT INTO accounts (id, number, kind, user_id, currency, balance, created_at)
               VALUES (1, 'ACC-A', 'customer', 1, 'EUR', 0, 0), (2, 'ACC-B', 'customer', 2, 'EUR', 0, 0);
             INSERT INTO transfers (id, user_id, client_id, from_account, to_account, amount, currency, status, created_at)
               VALUES (7, 1, 'pay-7', 1, 2, 100, 'EUR', 'pending', 0);",
        )
        .unwrap();
        let blob = [0u8; 32];
        for (id, purpose) in [("a", "login"), ("b", "transfer:7"), ("c", "transfer:99")] {
            c.execute(
                "INSERT INTO challenges (id, token_id, purpose, binding, challenge, expires_at)
                 VALUES (?1, 1, ?2, 'session:x', ?3, 120)",
                rusqlite::params![id, purpose, blob.as_slice()],
            )
            .unwrap();
        }
        assert_eq!(migrate(&mut c, &path).unwrap(), SCHEMA_VERSION);
        let rows: Vec<(String, String, Option<String>, Option<String>)> = c
            .prepare("SELECT id, kind, transfer_id, binding FROM challenges ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let x = Some("session:x".to_owned());
        assert_eq!(
            rows,
            [("a".into(), "login".into(), None, x.clone()), ("b".into(), "transfer".into(), Some("pay-7".into()), x),],
            "the login challenge and the transfer one kept; the one naming no transfer dropped"
        );
        // The new constraints hold.
        let e = c.execute(
            "INSERT INTO challenges (id, token_id, kind, transfer_id, challenge, expires_at) VALUES ('d', 1, 'transfer', NULL, ?1, 1)",
            [blob.as_slice()],
        );
        assert!(e.is_err(), "a transfer challenge without its transfer");
        let e = c.execute(
            "INSERT INTO challenges (id, token_id, kind, challenge, expires_at) VALUES ('e', 1, 'other', ?1, 1)",
            [blob.as_slice()],
        );
        assert!(e.is_err(), "an unknown kind");
    }

    #[cfg(unix)]
    #[test]
    fn the_database_and_its_wal_and_shm_are_private_and_lax_ones_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.sqlite3");
        let db = Db::open(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for p in [path.clone(), side_file(&path, "-wal"), side_file(&path, "-shm")] {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        drop(db);
        for lax in [path.clone(), side_file(&path, "-wal")] {
            if !lax.exists() {
                std::fs::write(&lax, b"").unwrap();
            }
            std::fs::set_permissions(&lax, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Db::open(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("run `chmod 600 {}`", lax.display())), "{e}");
            std::fs::set_permissions(&lax, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Db::open(&path).unwrap();
    }

    #[test]
    fn pragmas_are_the_durable_ones() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_connection(&dir.path().join("x.sqlite3")).unwrap();
        let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 2);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sqlite3");
        let mut c = open_connection(&path).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(migrate(&mut c, &path), Err(DbError::TooNew { .. })));
    }

    #[test]
    fn an_in_memory_database_is_refused_for_lack_of_wal() {
        // ":memory:" cannot use WAL: the check must refuse it rather than run undurably.
        let err = open_connection(Path::new(":memory:")).unwrap_err();
        assert!(matches!(err, DbError::Pragma { pragma: "journal_mode", .. }), "{err}");
    }
}

/// Test help: the lines of `EXPLAIN QUERY PLAN` for `sql`, and a check that every step on
/// `table` is an index search, never a scan.
#[cfg(test)]
pub(crate) mod plan {
    use rusqlite::Connection;

    pub fn of(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let params: Vec<i64> = vec![0; n];
        stmt.query_map(rusqlite::params_from_iter(params), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Asserts that `sql` reaches `table` only through an index search.
    pub fn searches_only(conn: &Connection, sql: &str, table: &str) {
        let plan = of(conn, sql);
        let on_table: Vec<&String> = plan.iter().filter(|l| l.split(' ').nth(1) == Some(table)).collect();
        assert!(!on_table.is_empty(), "the plan never names {table}: {plan:?}\n{sql}");
        for line in on_table {
            assert!(line.starts_with("SEARCH "), "{table} is scanned: {plan:?}\n{sql}");
        }
    }
}
