//! The bank in the simulation: the real router and use cases (`bank_server::app`) on a real
//! SQLite file, a hand-driven clock, storage faults injected at the writer's commits, and a
//! network between client and bank that loses, duplicates or cuts messages on command.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, Request};
use axum::Router;
use bank_server::clock::Clock;
use bank_server::db::Db;
use bank_server::master_key::MasterKey;
use bank_server::writer::StorageFault;
use bank_server::{AppState, Config};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The bank's public URL (its verifier id is what the cards sign).
pub const URL: &str = "https://bank.sim.example";

/// What the network does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    Clean,
    /// The request never reaches the bank.
    DropRequest,
    /// The bank runs the request; its answer never reaches the client.
    DropAnswer,
    /// The request reaches the bank twice (a retransmission); the client hears the second answer.
    Duplicate,
}

/// What the client heard.
#[derive(Clone, Debug)]
pub enum Answer {
    Got(u16, Value),
    /// Nothing: the client cannot know whether the bank acted.
    Lost,
}

pub struct SimBank {
    _dir: tempfile::TempDir,
    path: PathBuf,
    rt: tokio::runtime::Runtime,
    app: Option<Router>,
    /// The running bank's state, for what `bank-server serve` does beside the requests.
    state: Option<AppState>,
    pub clock: Clock,
    fault: Arc<Mutex<Option<StorageFault>>>,
    fired: Arc<AtomicBool>,
    /// Times the bank was started again after a power loss.
    pub restarts: u64,
}

impl SimBank {
    /// A fresh database in a temporary directory, migrated, with its master key beside it.
    /// `setup` runs the operator's steps (users, cards, accounts) on the closed database.
    pub fn new(start: i64, setup: impl FnOnce(&Path) -> Result<(), String>) -> Result<SimBank, String> {
        // In memory where the system has a tmpfs: the power losses here are the writer's
        // (`StorageFault`), so a disk's flush would add time and nothing else.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }
            .map_err(|e| format!("temporary directory: {e}"))?;
        let path = dir.path().join("bank.sqlite3");
        setup(&path)?;
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("runtime: {e}"))?;
        let mut bank = SimBank {
            _dir: dir,
            path,
            rt,
            app: None,
            state: None,
            clock: Clock::manual(start),
            fault: Arc::new(Mutex::new(None)),
            fired: Arc::new(AtomicBool::new(false)),
            restarts: 0,
        };
        bank.start()?;
        Ok(bank)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn start(&mut self) -> Result<(), String> {
        let mut cfg = Config::new(URL).map_err(|e| e.to_string())?;
        cfg.limits = bank_server::limit::Settings::off();
        let key = MasterKey::load_or_create(&self.path).map_err(|e| e.to_string())?;
        let db = Db::open(&self.path).map_err(|e| e.to_string())?;
        let (slot, fired) = (self.fault.clone(), self.fired.clone());
        let plan: bank_server::writer::FaultPlan = Arc::new(move || {
            let f = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if f.is_some() {
                fired.store(true, Ordering::SeqCst);
            }
            f
        });
        let state = AppState::with_faults(db, key, cfg, self.clock.clone(), Some(plan)).map_err(|e| e.to_string())?;
        let client: std::net::SocketAddr = "198.51.100.7:41000".parse().map_err(|_| "address".to_owned())?;
        self.state = Some(state.clone());
        self.app = Some(bank_server::app(state).layer(MockConnectInfo(client)));
        Ok(())
    }

    /// The power fails between requests (nothing in flight) and the bank starts again.
    pub fn restart(&mut self) -> Result<(), String> {
        self.app = None;
        self.state = None;
        self.restarts += 1;
        self.start()
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let app = self.app.clone().ok_or("the bank is not running")?;
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .map_err(|e| e.to_string())?;
        self.rt.block_on(async move {
            let res = app.oneshot(req).await.map_err(|e| e.to_string())?;
            let status = res.status().as_u16();
            let bytes = res.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            let value =
                if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
            Ok((status, value))
        })
    }

    /// One round of the housekeeping `bank-server serve` runs while idle (deleting expired
    /// challenges), at a step the scheduler chose rather than on a timer, so a seed replays.
    /// Returns the rows deleted.
    pub fn housekeep(&mut self) -> Result<usize, String> {
        let state = self.state.clone().ok_or("the bank is not running")?;
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.rt.block_on(async move { state.housekeep().await }).map_err(|e| format!("housekeeping: {e}"))
    }

    /// One request through the faulty network, the storage meeting `storage` at the request's
    /// first commit. A power loss stops the bank; it is started again before this returns
    /// (the client heard nothing).
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        net: Net,
        storage: Option<StorageFault>,
    ) -> Result<Answer, String> {
        if net == Net::DropRequest {
            return Ok(Answer::Lost);
        }
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = storage;
        self.fired.store(false, Ordering::SeqCst);
        let mut heard = self.send(method, path, token, body)?;
        if net == Net::Duplicate {
            heard = self.send(method, path, token, body)?;
        }
        // A fault the request did not meet (it committed nothing) is not left for the next one.
        let unused = self.fault.lock().unwrap_or_else(PoisonError::into_inner).take();
        let power_lost =
            matches!(storage, Some(StorageFault::PowerLossBeforeCommit | StorageFault::PowerLossAfterCommit));
        if power_lost {
            let met = self.fired.load(Ordering::SeqCst) && unused.is_none();
            self.restart()?;
            if met {
                return Ok(Answer::Lost);
            }
        }
        if net == Net::DropAnswer {
            return Ok(Answer::Lost);
        }
        Ok(Answer::Got(heard.0, heard.1))
    }

    /// A read-only connection for the invariant checks (a snapshot of the last commit).
    pub fn reader(&self) -> Result<rusqlite::Connection, String> {
        rusqlite::Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("open the database to check it: {e}"))
    }
}
