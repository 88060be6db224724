//! The one writer: every write transaction of the server runs on one thread, fed by a FIFO
//! queue, with group commit.
//!
//! SQLite lets one connection write at a time. With a pool of writers, the losers of the lock
//! slept in SQLite's busy handler (1 ms backing off to 100 ms) while the lock sat idle. Here
//! the one writer thread owns the one write connection and never waits for a lock of its own
//! server (only for an operator's `bank-tools` process, through the busy timeout).
//!
//! A batch:
//!
//! ```text
//! BEGIN IMMEDIATE
//!   SAVEPOINT unit; <unit 1>; RELEASE unit            -- Ok: kept
//!   SAVEPOINT unit; <unit 2>; ROLLBACK TO unit; RELEASE unit   -- Err: undone alone
//!   ...                                             -- while units are queued, within
//!                                                   -- Bounds (count and time)
//! COMMIT                                            -- one fsync for the whole batch
//! answers leave, each caller its own result
//! ```
//!
//! The writer takes only what is already queued: a lone request commits at once, and a batch
//! grows only by the requests that arrived while the writer was busy. No answer leaves before
//! its batch's `COMMIT` returned; if the batch cannot commit, every unit that had succeeded in
//! it is answered with [`DbError::Batch`] (its effects are gone with the batch). Units run one
//! after another and each sees the ones before it, so the auth rules (single use, lockout after
//! exactly five failures) hold as they did with one `BEGIN IMMEDIATE` per unit.
//!
//! Copying the WAL back into the database file (a checkpoint, with its own fsyncs) is done by
//! a second thread on its own connection, nudged every few batches, so the writer does not
//! stop for it; the writer's automatic checkpoint stays as a backstop at a larger WAL size.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use crate::db::{self, DbError};
use crate::running;

/// How big a batch may grow.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Units of work committed together at most.
    pub units: usize,
    /// A batch stops taking queued units this long after its `BEGIN`, so the first caller of
    /// a batch never waits behind an unbounded queue.
    pub time: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds { units: 128, time: Duration::from_millis(10) }
    }
}

/// A storage fault a simulation makes the writer meet at a batch's `COMMIT` (the seeded
/// simulation, `sim/`). No server installs one: [`crate::AppState::with_faults`] is for
/// processes that embed the bank to test it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// The `COMMIT` fails as on an I/O error or a full disk: the batch is rolled back and
    /// every unit of it is answered with [`DbError::Storage`]. The writer goes on.
    IoError,
    /// The power fails before the `COMMIT`: the batch is rolled back, no unit of it is
    /// answered ([`DbError::Worker`]) and the writer stops; the database is as the last
    /// commit left it, to be opened again.
    PowerLossBeforeCommit,
    /// The power fails after the `COMMIT` returned, before any answer: the batch is durable,
    /// no unit of it is answered and the writer stops.
    PowerLossAfterCommit,
}

/// Asked once per batch, just before its `COMMIT`, for the fault that batch meets.
pub type FaultPlan = Arc<dyn Fn() -> Option<StorageFault> + Send + Sync>;

/// Committed batches between two nudges of the checkpointer.
const CHECKPOINT_EVERY: u64 = 32;
/// The writer's own checkpoint, a backstop should the checkpointer fall behind: WAL pages.
const BACKSTOP_CHECKPOINT_PAGES: i64 = 16_384;

/// What the writer has done so far (for benchmarks and tests).
#[derive(Debug, Default)]
struct Counts {
    batches: AtomicU64,
    units: AtomicU64,
}

/// One unit of work as the writer sees it.
trait Unit: Send {
    /// Runs the unit inside its savepoint; `true` when it succeeded and is to be kept.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Answers the caller once its batch ended: its own result, or `failed` (the batch did
    /// not commit) for a unit that had succeeded.
    fn answer(self: Box<Self>, failed: Option<&Failed>);
}

/// A unit made of a use case's closure and the channel its answer goes back on.
struct Job<T, E, F> {
    f: Option<F>,
    out: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> Unit for Job<T, E, F>
where
    T: Send,
    E: From<DbError> + Send,
    F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send,
{
    fn run(&mut self, tx: &Transaction<'_>) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        // A panicking unit is rolled back like a failed one; its caller hears of a stopped
        // worker (the reply is dropped with no result) and the writer goes on.
        match catch_unwind(AssertUnwindSafe(|| f(tx))) {
            Ok(out) => {
                let ok = out.is_ok();
                self.out = Some(out);
                ok
            }
            Err(_) => false,
        }
    }

    fn answer(self: Box<Self>, failed: Option<&Failed>) {
        let out = match (self.out, failed) {
            (Some(Ok(_)) | None, Some(why)) => Err(E::from(why.to_error())),
            (Some(out), _) => out,
            // It panicked: dropping the reply tells the caller the worker failed.
            (None, None) => return,
        };
        // A caller that went away (its client hung up) no longer needs the answer.
        let _ = self.reply.send(out);
    }
}

/// The commit mark the writer keeps ([`running`]).
struct Mark {
    /// The database has `storage_commits` (every migrated one does).
    counted: bool,
    /// The server's `<db>.running`, when it took one.
    recorder: Option<running::Recorder>,
    /// Storage faults to inject (simulations only; `None` in every server).
    faults: Option<FaultPlan>,
}

/// Why a batch did not commit: SQLite's error, and whether it was the storage's fault (disk
/// full, an I/O error, a read-only file) rather than the bank's.
#[derive(Debug)]
struct Failed {
    detail: String,
    storage: bool,
}

impl Failed {
    fn of(e: &rusqlite::Error) -> Failed {
        Failed { detail: e.to_string(), storage: db::is_storage_fault(e) }
    }

    fn to_error(&self) -> DbError {
        if self.storage {
            DbError::Storage(self.detail.clone())
        } else {
            DbError::Batch(self.detail.clone())
        }
    }
}

/// The handle on the writer thread: cheap to clone. The thread ends when the last handle is
/// dropped, after it has answered every unit queued before.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Box<dyn Unit>>,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Opens the write connection (pragmas checked) and starts the writer thread.
    pub fn start(path: &Path) -> Result<Writer, DbError> {
        Self::with_bounds(path, Bounds::default())
    }

    /// [`Writer::start`] with other bounds on a batch.
    pub fn with_bounds(path: &Path, bounds: Bounds) -> Result<Writer, DbError> {
        Self::with_faults(path, bounds, None)
    }

    /// [`Writer::with_bounds`] with storage faults injected as `faults` says (simulations).
    pub fn with_faults(path: &Path, bounds: Bounds, faults: Option<FaultPlan>) -> Result<Writer, DbError> {
        let conn = db::open_connection(path)?;
        conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_CHECKPOINT_PAGES)?;
        let mark = Mark { counted: running::has_count(&conn), recorder: running::Recorder::open(path), faults };
        let checkpointer = db::open_connection(path)?;
        let (nudge, nudges) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("bank-checkpoint".to_owned())
            .spawn(move || checkpoints(&checkpointer, &nudges))
            .map_err(|_| DbError::Worker)?;
        let (queue, units) = mpsc::channel();
        let counts = Arc::new(Counts::default());
        let seen = counts.clone();
        std::thread::Builder::new()
            .name("bank-writer".to_owned())
            .spawn(move || serve(conn, &units, bounds, &seen, &nudge, &mark))
            .map_err(|_| DbError::Worker)?;
        Ok(Writer { queue, counts })
    }

    /// Batches that committed, and the units of work they held, since the start.
    pub fn committed(&self) -> (u64, u64) {
        (self.counts.batches.load(Ordering::Relaxed), self.counts.units.load(Ordering::Relaxed))
    }

    /// Queues `f` as one unit of work at once (in call order), and returns the wait for its
    /// answer, which comes once the batch it ran in has committed. An `Err` of `f` undoes `f`
    /// alone.
    pub fn run<T, E, F>(&self, f: F) -> impl std::future::Future<Output = Result<T, E>> + Send + 'static
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let queued = self.queue.send(Box::new(Job { f: Some(f), out: None, reply }));
        async move {
            queued.map_err(|_| DbError::Worker)?;
            answer.await.map_err(|_| DbError::Worker)?
        }
    }
}

/// One savepoint statement, parsed once per connection.
fn step(tx: &Transaction<'_>, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The writer thread: one batch after another until every handle is gone.
fn serve(
    mut conn: Connection,
    units: &mpsc::Receiver<Box<dyn Unit>>,
    bounds: Bounds,
    counts: &Counts,
    nudge: &mpsc::SyncSender<()>,
    mark: &Mark,
) {
    let mut pending = VecDeque::new();
    loop {
        if pending.is_empty() {
            match units.recv() {
                Ok(u) => pending.push_back(u),
                Err(mpsc::RecvError) => return,
            }
        }
        if batch(&mut conn, units, &mut pending, bounds, counts, mark) == Outcome::PowerLost {
            // Every handle now hears `DbError::Worker`, as callers of a dead process would
            // hear nothing.
            return;
        }
        if counts.batches.load(Ordering::Relaxed).is_multiple_of(CHECKPOINT_EVERY) {
            // Busy with the last one: this nudge is not needed.
            let _ = nudge.try_send(());
        }
    }
}

/// The checkpointer thread: copies committed WAL pages into the database file when nudged,
/// beside the writer (a `PASSIVE` checkpoint takes no lock the writer needs), so the writer
/// never stalls for it. It ends with the writer.
fn checkpoints(conn: &Connection, nudges: &mpsc::Receiver<()>) {
    while nudges.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "checkpoint failed; the writer's own checkpoint is the backstop");
        }
    }
}

/// Whether the writer lives on after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    /// An injected power loss ([`StorageFault`]): the writer stops without answering.
    PowerLost,
}

/// Runs one batch: the units in `pending`, then those queued meanwhile, within the bounds;
/// commits; answers. Units not taken stay in `pending` for the next batch.
fn batch(
    conn: &mut Connection,
    units: &mpsc::Receiver<Box<dyn Unit>>,
    pending: &mut VecDeque<Box<dyn Unit>>,
    bounds: Bounds,
    counts: &Counts,
    mark: &Mark,
) -> Outcome {
    let begun = Instant::now();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            // Not even begun (an operator held the lock past the busy timeout): the oldest
            // unit hears of it, the others get their turn.
            tracing::error!(error = %e, "the writer could not begin a transaction");
            if let Some(u) = pending.pop_front() {
                u.answer(Some(&Failed::of(&e)));
            }
            return Outcome::Done;
        }
    };
    let mut done: Vec<Box<dyn Unit>> = Vec::new();
    let mut broken = None;
    while done.len() < bounds.units {
        let next = match pending.pop_front() {
            Some(u) => u,
            None if begun.elapsed() < bounds.time => match units.try_recv() {
                Ok(u) => u,
                Err(_) => break,
            },
            None => break,
        };
        let mut u = next;
        if let Err(e) = step(&tx, "SAVEPOINT unit") {
            broken = Some(Failed::of(&e));
            pending.push_front(u);
            break;
        }
        let closed = if u.run(&tx) {
            step(&tx, "RELEASE unit")
        } else {
            step(&tx, "ROLLBACK TO unit").and_then(|()| step(&tx, "RELEASE unit"))
        };
        done.push(u);
        if let Err(e) = closed {
            // SQLite rolled the whole transaction back (disk full, I/O error): the batch is lost.
            broken = Some(Failed::of(&e));
            break;
        }
    }
    // The batch counts itself, in its own transaction (`running`: the commit mark).
    let seq = match broken {
        None if mark.counted => match running::count(&tx) {
            Ok(seq) => Some(seq),
            Err(e) => {
                broken = Some(Failed::of(&e));
                None
            }
        },
        _ => None,
    };
    let failed = match broken {
        Some(why) => {
            drop(tx);
            Some(why)
        }
        None => {
            crash_point::reached(crash_point::Point::BeforeCommit);
            let injected = mark.faults.as_ref().and_then(|plan| plan());
            match injected {
                Some(StorageFault::PowerLossBeforeCommit) => {
                    drop(tx);
                    pending.clear();
                    return Outcome::PowerLost;
                }
                Some(StorageFault::IoError) => {
                    drop(tx);
                    let why = Failed { detail: "injected I/O error at COMMIT".to_owned(), storage: true };
                    for u in done {
                        u.answer(Some(&why));
                    }
                    return Outcome::Done;
                }
                Some(StorageFault::PowerLossAfterCommit) | None => {}
            }
            let failed = tx.commit().err().map(|e| Failed::of(&e));
            crash_point::reached(crash_point::Point::AfterCommit);
            if injected == Some(StorageFault::PowerLossAfterCommit) && failed.is_none() {
                pending.clear();
                return Outcome::PowerLost;
            }
            if let (None, Some(seq), Some(recorder)) = (&failed, seq, &mark.recorder) {
                recorder.record(seq);
            }
            failed
        }
    };
    match &failed {
        Some(why) => tracing::error!(
            error = %why.detail,
            storage_fault = why.storage,
            units = done.len(),
            "a batch of the writer did not commit"
        ),
        None => {
            counts.batches.fetch_add(1, Ordering::Relaxed);
            counts.units.fetch_add(done.len() as u64, Ordering::Relaxed);
        }
    }
    for u in done {
        u.answer(failed.as_ref());
    }
    Outcome::Done
}

/// A crash on purpose, for the crash campaign (`bank-server/tests/crash.rs`): with
/// `BANK_CRASH_AT=before-commit:N` the process aborts when its writer's `N`-th batch has run
/// every statement but not yet committed; with `after-commit:N`, when that batch's `COMMIT`
/// returned but no unit of it has been answered. Unset (always, outside those tests) it costs
/// one load of a `OnceLock` per batch. Aborting needs no privilege an operator does not already
/// have over the process, so the hook is in every build.
mod crash_point {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(super) enum Point {
        BeforeCommit,
        AfterCommit,
    }

    fn parse(text: &str) -> Option<(Point, u64)> {
        let (point, n) = text.split_once(':')?;
        let point = match point {
            "before-commit" => Point::BeforeCommit,
            "after-commit" => Point::AfterCommit,
            _ => return None,
        };
        Some((point, n.parse().ok().filter(|n| *n > 0)?))
    }

    fn armed() -> Option<(Point, u64)> {
        static ARMED: OnceLock<Option<(Point, u64)>> = OnceLock::new();
        *ARMED.get_or_init(|| {
            let text = std::env::var("BANK_CRASH_AT").ok()?;
            let armed = parse(&text);
            if armed.is_none() {
                tracing::warn!(value = %text, "BANK_CRASH_AT is not before-commit:N or after-commit:N; ignored");
            }
            armed
        })
    }

    pub(super) fn reached(here: Point) {
        static SEEN: AtomicU64 = AtomicU64::new(0);
        let Some((point, n)) = armed() else { return };
        if point == here && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == n {
            std::process::abort();
        }
    }

    #[cfg(test)]
    #[test]
    fn the_setting_is_parsed_strictly() {
        assert_eq!(parse("before-commit:3"), Some((Point::BeforeCommit, 3)));
        assert_eq!(parse("after-commit:1"), Some((Point::AfterCommit, 1)));
        for bad in ["before-commit", "before-commit:0", "commit:2", "after-commit:x", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer on a scratch database with tables `t` and `c` (whose foreign key is checked
    /// only at COMMIT), batches bounded by count only, and a gate: the first unit waits on it,
    /// so what is queued meanwhile lands in its batch.
    fn scratch() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sqlite3");
        db::open_connection(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE t (v INTEGER NOT NULL);
                 CREATE TABLE p (id INTEGER PRIMARY KEY);
                 CREATE TABLE c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);",
            )
            .unwrap();
        let w = Writer::with_bounds(&path, Bounds { units: 1000, time: Duration::from_secs(3600) }).unwrap();
        (dir, w)
    }

    fn insert(v: i64) -> impl FnOnce(&Transaction<'_>) -> Result<i64, DbError> + Send + 'static {
        move |tx| {
            tx.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
            Ok(v)
        }
    }

    fn values(dir: &tempfile::TempDir) -> Vec<i64> {
        let c = db::open_reader(&dir.path().join("w.sqlite3")).unwrap();
        let mut s = c.prepare("SELECT v FROM t ORDER BY v").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    /// Queues a unit that holds the writer until `open` is sent to.
    fn gate(
        w: &Writer,
        rt: &tokio::runtime::Runtime,
    ) -> (mpsc::Sender<()>, tokio::task::JoinHandle<Result<i64, DbError>>) {
        let (open, wait) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let held = rt.spawn(w.run(move |tx| {
            started.send(()).unwrap();
            wait.recv().unwrap();
            insert(0)(tx)
        }));
        running.recv().unwrap();
        (open, held)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    #[test]
    fn a_failing_unit_is_undone_alone_and_its_batch_commits_once() {
        let (dir, w) = scratch();
        let rt = rt();
        let (open, held) = gate(&w, &rt);
        let queued: Vec<_> = (1..=4)
            .map(|v| {
                w.run(move |tx| {
                    let v = insert(v)(tx)?;
                    if v == 3 {
                        return Err(DbError::Worker);
                    }
                    Ok(v)
                })
            })
            .collect();
        open.send(()).unwrap();
        assert_eq!(rt.block_on(held).unwrap().unwrap(), 0);
        let answers: Vec<_> = queued.into_iter().map(|a| rt.block_on(a)).collect();
        assert_eq!(answers[0].as_ref().unwrap(), &1);
        assert_eq!(answers[1].as_ref().unwrap(), &2);
        assert!(matches!(answers[2], Err(DbError::Worker)), "{:?}", answers[2]);
        assert_eq!(answers[3].as_ref().unwrap(), &4);
        assert_eq!(values(&dir), [0, 1, 2, 4], "unit 3 is undone, the others kept");
        assert_eq!(w.committed(), (1, 5), "five units, one COMMIT");
    }

    #[test]
    fn when_the_commit_fails_every_unit_of_the_batch_gets_an_error() {
        let (dir, w) = scratch();
        let rt = rt();
        let (open, held) = gate(&w, &rt);
        // A row whose foreign key fails only at COMMIT.
        let orphan = w.run(|tx| {
            tx.execute("INSERT INTO c (p) VALUES (99)", [])?;
            Ok::<_, DbError>(())
        });
        open.send(()).unwrap();
        assert!(matches!(rt.block_on(held).unwrap(), Err(DbError::Batch(_))));
        assert!(matches!(rt.block_on(orphan), Err(DbError::Batch(_))));
        assert_eq!(values(&dir), Vec::<i64>::new(), "nothing of the batch is kept");
        assert_eq!(w.committed(), (0, 0));
        // The writer goes on: a lone unit commits at once.
        assert_eq!(rt.block_on(w.run(insert(7))).unwrap(), 7);
        assert_eq!(values(&dir), [7]);
        assert_eq!(w.committed(), (1, 1));
    }

    #[test]
    fn a_panicking_unit_is_undone_and_the_writer_goes_on() {
        let (dir, w) = scratch();
        let rt = rt();
        let r = rt.block_on(w.run(|tx| -> Result<(), DbError> {
            insert(1)(tx)?;
            panic!("a bug in a unit of work");
        }));
        assert!(matches!(r, Err(DbError::Worker)), "{r:?}");
        assert_eq!(rt.block_on(w.run(insert(2))).unwrap(), 2);
        assert_eq!(values(&dir), [2]);
    }
}
