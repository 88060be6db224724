//! `bank-server`: the bank of the PAYSIM system. One axum process over one SQLite database.
//!
//! Three layers, top to bottom:
//!
//! - [`web`]: HTTP. [`web::api`] is the JSON API (`docs/api.md`), [`web::pages`] the website
//!   (`docs/bank.md`); both share [`web::AppError`], the extractors and the middleware
//!   (security headers, uniform refusals, the request log). Handlers extract typed input,
//!   call one use case and map its result.
//! - [`usecase`]: login, start transfer, confirm transfer, revoke token, and the operator's
//!   queries that need two roles. The only code that joins roles; each use case runs in one
//!   unit of work: a savepoint in a batch of the one writer ([`writer`]), or a read
//!   transaction on a read-only connection when it changes nothing.
//! - The roles, each owning its tables and speaking the wire types of [`paysim_wire`]:
//!   [`auth`] (users, tokens with sealed chain keys, challenges, the OTP check of
//!   `paysim_otp`, lockout), [`ledger`] (accounts, double-entry postings, transfers, funding),
//!   [`session`] (website and API sessions, CSRF tokens) and [`audit`] (the hash-chained log).
//!
//! Underneath: [`db`] (pragmas, migrations, blocking pool, private files, the start's checks
//! for damage and for write access), [`writer`] (the one write connection, its FIFO queue and
//! group commit), [`running`] (the commit mark: a database that lost committed work is
//! refused; one server per database), [`master_key`] (AES-256-GCM sealing of
//! chain keys, and where the key comes from), [`private`] (files created 0600, lax ones
//! refused), [`clock`]. Operators use [`ops`]; each of its functions opens the database itself
//! and works while the server runs.
//!
//! Serving: [`serve`] (plain HTTP, loopback only: [`binding`] checks the listen address and
//! public URL together) and [`serve_tls`] (HTTPS with rustls, [`tls`]); both give handlers the
//! peer's `ConnectInfo<SocketAddr>`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! // Opening and migrating the database is blocking SQLite work: not on an async worker.
//! let state = tokio::task::spawn_blocking(|| {
//!     let db = std::path::Path::new("bank.sqlite3");
//!     bank_server::ops::add_user(db, "alice")?;
//!     bank_server::ops::open_account(db, "alice", "ACC-ALICE-EUR", "EUR", Some("Alice Example"))?;
//!     let state = bank_server::AppState::open(db, "http://127.0.0.1:8080", bank_server::clock::Clock::system())?;
//!     anyhow::Ok(state)
//! })
//! .await??;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! bank_server::serve(listener, state, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod audit;
pub mod auth;
pub mod binding;
pub mod clock;
pub mod db;
pub mod ledger;
pub mod limit;
pub mod master_key;
pub mod ops;
pub mod private;
pub mod running;
pub mod session;
pub mod tls;
pub mod usecase;
pub mod web;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rusqlite::Transaction;

use crate::audit::AuditKeys;
use crate::auth::AuthConfig;
use crate::clock::Clock;
use crate::db::{Db, DbError};
use crate::master_key::{KeySource, MasterKey};
use crate::writer::Writer;

/// Default challenge lifetime (seconds).
pub const CHALLENGE_TTL_S: i64 = 120;
/// Sessions end after this long without a request.
pub const SESSION_IDLE_S: i64 = 5 * 60;
/// Sessions end this long after login whatever happens.
pub const SESSION_MAX_S: i64 = 12 * 3600;

/// Default cap on visitor sessions (see [`Config::max_visitor_sessions`]).
pub const MAX_VISITOR_SESSIONS: i64 = 10_000;
/// Default cap on a user's open pending transfers (see [`Config::max_pending_transfers`]).
pub const MAX_PENDING_TRANSFERS: u32 = 20;
/// Default time a pending transfer counts as open (see [`Config::pending_open_s`]).
pub const PENDING_OPEN_S: i64 = 3600;

/// Deployment settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The URL people and bridges use (its origin is the verifier id).
    pub public_url: String,
    pub auth: AuthConfig,
    pub session_idle: i64,
    pub session_max: i64,
    /// `Secure` cookies with the `__Host-` prefix: on when the public URL is https.
    pub secure_cookies: bool,
    /// Website sessions of visitors who have not logged in (anyone can start one by opening
    /// `/login`) kept at most; beyond that the oldest go.
    pub max_visitor_sessions: i64,
    /// The token buckets of [`limit`] (login challenges per user name and per client address,
    /// codes per session).
    pub limits: limit::Settings,
    /// Pending transfers a user may have open at once (asked for less than
    /// [`Config::pending_open_s`] ago and not yet confirmed); one more is refused with
    /// `too_many_pending_transfers`.
    pub max_pending_transfers: u32,
    /// Seconds a pending transfer counts against [`Config::max_pending_transfers`].
    pub pending_open_s: i64,
    /// Whether OATH tokens may confirm transfers (`serve --oath-transfers`,
    /// `BANK_OATH_TRANSFERS`); they may always log in.
    pub oath_transfers: OathTransfers,
    /// The customers' local signing service (`reader-bridge serve`) that the login-code and
    /// transfer pages' "Sign with my card" button calls, and the page's CSP `connect-src`
    /// allows; `None` leaves the button out (`docs/bank.md`, "Sign with my card").
    pub signing_service: Option<SigningService>,
}

/// The operator's choice for OATH tokens and transfers (`docs/bank.md`, "Token kinds").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OathTransfers {
    /// An OATH token confirms transfers like a PAYSIM card.
    #[default]
    Allow,
    /// A user whose token is an OATH token gets `token_kind_not_allowed` when asking for a
    /// transfer (and at confirmation, should the setting change in between).
    Deny,
}

impl std::str::FromStr for OathTransfers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "allow" => Ok(OathTransfers::Allow),
            "deny" => Ok(OathTransfers::Deny),
            _ => Err("`allow` or `deny`".to_owned()),
        }
    }
}

/// The loopback origin of the customers' signing service, `http://127.0.0.1:PORT` (or
/// `[::1]`, `localhost`): where a page's script may send a challenge id. Anything else is
/// refused, so a setting cannot let the bank's pages post to another site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningService(String);

impl SigningService {
    /// The default: `reader-bridge serve`'s default address.
    pub fn default_local() -> Self {
        SigningService(format!("http://127.0.0.1:{}", paysim_wire::api::SIGNING_SERVICE_PORT))
    }

    /// `http://127.0.0.1:PORT`, `http://[::1]:PORT` or `http://localhost:PORT`, without a path;
    /// `off` is `None`.
    pub fn parse(text: &str) -> Result<Option<Self>, String> {
        let text = text.trim().trim_end_matches('/');
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let rule = || format!("{text:?} is not http://127.0.0.1:PORT, http://[::1]:PORT, http://localhost:PORT or off");
        let rest = text.strip_prefix("http://").ok_or_else(rule)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(rule)?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(rule)?;
        let host = host.to_ascii_lowercase();
        if !["127.0.0.1", "[::1]", "localhost"].contains(&host.as_str()) {
            return Err(rule());
        }
        Ok(Some(SigningService(format!("http://{host}:{port}"))))
    }

    /// The origin, as the page calls it and the CSP names it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Config {
    pub fn new(public_url: &str) -> Result<Self, paysim_otp::VerifierIdError> {
        let verifier_id = paysim_otp::verifier_id(public_url)?;
        Ok(Config {
            public_url: public_url.trim().trim_end_matches('/').to_owned(),
            secure_cookies: verifier_id.starts_with("https://"),
            auth: AuthConfig { verifier_id, challenge_ttl: CHALLENGE_TTL_S },
            session_idle: SESSION_IDLE_S,
            session_max: SESSION_MAX_S,
            max_visitor_sessions: MAX_VISITOR_SESSIONS,
            limits: limit::Settings::default(),
            max_pending_transfers: MAX_PENDING_TRANSFERS,
            pending_open_s: PENDING_OPEN_S,
            oath_transfers: OathTransfers::Allow,
            signing_service: Some(SigningService::default_local()),
        })
    }

    /// The limits as the environment sets them (`docs/bank.md`, "Abuse limits"):
    /// `BANK_LIMIT_CHALLENGES_PER_USER`, `BANK_LIMIT_CHALLENGES_PER_ADDRESS`,
    /// `BANK_LIMIT_CODES_PER_SESSION` (each `N/S` or `off`), `BANK_MAX_PENDING_TRANSFERS` and
    /// `BANK_SIGNING_SERVICE` (a loopback URL or `off`, [`SigningService`]).
    pub fn with_env(mut self) -> Result<Self, StartError> {
        let rate = |name: &'static str, into: &mut Option<limit::Rate>| -> Result<(), StartError> {
            if let Ok(v) = std::env::var(name) {
                *into = limit::parse_rate(&v).map_err(|e| StartError::Setting { name, problem: e.to_string() })?;
            }
            Ok(())
        };
        rate("BANK_LIMIT_CHALLENGES_PER_USER", &mut self.limits.challenges_per_user)?;
        rate("BANK_LIMIT_CHALLENGES_PER_ADDRESS", &mut self.limits.challenges_per_address)?;
        rate("BANK_LIMIT_CODES_PER_SESSION", &mut self.limits.codes_per_session)?;
        if let Ok(v) = std::env::var("BANK_OATH_TRANSFERS") {
            self.oath_transfers =
                v.parse().map_err(|problem| StartError::Setting { name: "BANK_OATH_TRANSFERS", problem })?;
        }
        if let Ok(v) = std::env::var("BANK_SIGNING_SERVICE") {
            self.signing_service = SigningService::parse(&v)
                .map_err(|problem| StartError::Setting { name: "BANK_SIGNING_SERVICE", problem })?;
        }
        if let Ok(v) = std::env::var("BANK_MAX_PENDING_TRANSFERS") {
            self.max_pending_transfers = v.trim().parse().map_err(|_| StartError::Setting {
                name: "BANK_MAX_PENDING_TRANSFERS",
                problem: "a whole number of transfers".into(),
            })?;
        }
        Ok(self)
    }

    /// What the sessions role needs of these settings.
    pub fn session_limits(&self) -> session::Limits {
        session::Limits { idle: self.session_idle, max_age: self.session_max, max_visitors: self.max_visitor_sessions }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Key(#[from] master_key::KeyError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("public URL: {0}")]
    Url(#[from] paysim_otp::VerifierIdError),
    #[error("{name}: {problem}")]
    Setting { name: &'static str, problem: String },
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Read-only connections for units of work that change nothing.
    pub db: Db,
    /// The one writer all other units of work go through.
    pub writer: Writer,
    pub key: Arc<MasterKey>,
    pub cfg: Arc<Config>,
    pub clock: Clock,
    /// The audit log's keys, derived from the master key.
    pub audit: Arc<AuditKeys>,
    /// The abuse limits' buckets (this process's memory).
    pub limits: Arc<limit::Limiters>,
}

impl AppState {
    /// Opens the database (creating it 0600 and migrating it), loads the master key from
    /// `source` (creating its file on first run) and checks that the key belongs to this
    /// database. The settings are the defaults with the environment's overrides
    /// ([`Config::with_env`]).
    pub fn open_with_key(
        db_path: &Path,
        source: &KeySource,
        public_url: &str,
        clock: Clock,
    ) -> Result<Self, StartError> {
        Self::open_with_key_and(db_path, source, Config::new(public_url)?.with_env()?, clock)
    }

    /// [`AppState::open_with_key`] with the settings given.
    pub fn open_with_key_and(
        db_path: &Path,
        source: &KeySource,
        cfg: Config,
        clock: Clock,
    ) -> Result<Self, StartError> {
        let key = MasterKey::load(source, db_path)?;
        Self::with(Db::open(db_path)?, key, cfg, clock)
    }

    /// [`AppState::open_with_key`] with the key as tests and embedders get it
    /// ([`MasterKey::load_or_create`]: `BANK_MASTER_KEY`, else the file beside the database).
    /// `bank-server serve` never uses it: its operator says where the key is.
    pub fn open(db_path: &Path, public_url: &str, clock: Clock) -> Result<Self, StartError> {
        Self::open_with_key(db_path, &KeySource::env_or_beside_db(), public_url, clock)
    }

    /// [`AppState::open`] with the settings given (tests choose tight limits this way).
    pub fn open_with(db_path: &Path, cfg: Config, clock: Clock) -> Result<Self, StartError> {
        Self::open_with_key_and(db_path, &KeySource::env_or_beside_db(), cfg, clock)
    }

    /// Builds the state from parts (tests choose the key and settings).
    pub fn with(db: Db, key: MasterKey, cfg: Config, clock: Clock) -> Result<Self, StartError> {
        Self::with_faults(db, key, cfg, clock, None)
    }

    /// [`AppState::with`] with storage faults injected at the writer's commits as `faults`
    /// says: for the seeded simulation (`sim/`), which embeds the bank. No server uses it.
    pub fn with_faults(
        db: Db,
        key: MasterKey,
        cfg: Config,
        clock: Clock,
        faults: Option<writer::FaultPlan>,
    ) -> Result<Self, StartError> {
        db.run_blocking(|c| db::immediate(c, |tx| auth::check_master_key(tx, &key).map_err(StartError::from)))?;
        let writer = Writer::with_faults(db.path(), writer::Bounds::default(), faults)?;
        let audit = Arc::new(AuditKeys::derive(&key));
        let limits = Arc::new(limit::Limiters::new(&cfg.limits));
        Ok(AppState { db: db.readers(), writer, key: Arc::new(key), cfg: Arc::new(cfg), clock, audit, limits })
    }

    /// Runs `f` as one unit of work through the [`writer`]: inside its own savepoint of the
    /// writer's current `BEGIN IMMEDIATE` batch, answered once that batch has committed. An
    /// `Err` undoes `f` alone. `f` gets the time read when it starts, with the write lock held,
    /// so waiting in the queue cannot let a challenge or a session outlive its expiry.
    ///
    /// `f` runs in an [`audit::Scope`] with the audit keys and the address of the client whose
    /// request this is ([`web::extract::client`]), so every audit row it writes records both.
    pub async fn tx<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>, i64) -> Result<T, E> + Send + 'static,
    {
        let clock = self.clock.clone();
        let scope = audit::Scope::new(self.audit.clone(), web::extract::client().map(|a| a.to_string()));
        self.writer
            .run(move |tx| {
                let _scope = scope.enter();
                f(tx, clock.now())
            })
            .await
    }

    /// Runs `f`, which changes nothing, in a read transaction on a read-only connection (a
    /// consistent snapshot of the last commit, on a blocking thread, never the write lock).
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + From<rusqlite::Error> + Send + 'static,
        F: FnOnce(&Transaction<'_>, i64) -> Result<T, E> + Send + 'static,
    {
        let clock = self.clock.clone();
        self.db.run(move |conn| db::read(conn, |tx| f(tx, clock.now()))).await
    }
}

/// How often the [`AppState::housekeeper`] looks whether the bank is idle.
pub const HOUSEKEEPING_TICK: std::time::Duration = std::time::Duration::from_millis(100);
/// The housekeeper works at least this often even when the bank never goes idle, so the
/// tables cannot grow without end under a load that never stops (one bounded unit each time).
pub const HOUSEKEEPING_AT_LEAST: std::time::Duration = std::time::Duration::from_secs(10);

/// What can stop one round of housekeeping ([`AppState::housekeep`]; the housekeeper logs it
/// and tries again when idle).
#[derive(Debug, thiserror::Error)]
pub enum HousekeepingError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    UseCase(#[from] usecase::UseCaseError),
}

impl AppState {
    /// One round of housekeeping: a read looks whether [`usecase::housekeeping`] has work (an
    /// idle bank does not write to find out); if so, one bounded unit of it goes through the
    /// writer like any request. Returns the rows deleted.
    pub async fn housekeep(&self) -> Result<usize, HousekeepingError> {
        if !self.read(|tx, now| Ok::<_, HousekeepingError>(usecase::housekeeping_due(tx, now)?)).await? {
            return Ok(0);
        }
        self.tx(|tx, now| Ok::<_, HousekeepingError>(usecase::housekeeping(tx, now)?)).await
    }

    /// Tidies the database ([`usecase::housekeeping`]) while the bank is idle: every
    /// [`HOUSEKEEPING_TICK`], if the writer committed no batch since the last look (or
    /// [`HOUSEKEEPING_AT_LEAST`] went by) and a read finds something to do, one bounded unit
    /// goes through the writer like any request. Runs until its task is dropped; `bank-server
    /// serve` spawns it. Requests never pay for it: under load the writer is never idle.
    pub async fn housekeeper(self) {
        let mut tick = tokio::time::interval(HOUSEKEEPING_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = self.writer.committed().0;
        let mut worked = std::time::Instant::now();
        loop {
            tick.tick().await;
            let idle = self.writer.committed().0 == seen;
            if idle || worked.elapsed() >= HOUSEKEEPING_AT_LEAST {
                worked = std::time::Instant::now();
                match self.housekeep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "housekeeping: expired challenges deleted"),
                    Err(e) => tracing::warn!(error = %e, "housekeeping failed; it is tried again when idle"),
                }
            }
            seen = self.writer.committed().0;
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("db", &self.db).field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// The router with all routes (for `oneshot` tests and [`serve`]).
pub fn app(state: AppState) -> axum::Router {
    web::app(state)
}

/// Serves plain HTTP until `shutdown` completes, then finishes the requests in flight.
/// Handlers get the peer's address as `ConnectInfo<SocketAddr>`. The binary serves plain HTTP
/// only on a loopback address ([`binding`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_plain(listener, app(state), shutdown).await
}

/// [`serve`] for any router (the tests of [`tls`] check both paths with the same handler).
pub(crate) async fn serve_plain(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves HTTPS with `tls` ([`tls::server_config`]) until `shutdown` completes, then finishes
/// the requests in flight. Answers carry `Strict-Transport-Security`; handlers get the peer's
/// address as `ConnectInfo<SocketAddr>`, as with [`serve`].
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tls::serve(listener, tls, web::https(app(state)), shutdown).await
}

#[cfg(test)]
mod signing_service_tests {
    use super::SigningService;

    #[test]
    fn the_signing_service_is_a_loopback_origin_or_off() {
        assert_eq!(SigningService::default_local().as_str(), "http://127.0.0.1:7480");
        for (text, origin) in [
            ("http://127.0.0.1:7480", "http://127.0.0.1:7480"),
            ("http://LocalHost:9/", "http://localhost:9"),
            ("http://[::1]:7480", "http://[::1]:7480"),
        ] {
            assert_eq!(SigningService::parse(text).unwrap().unwrap().as_str(), origin, "{text}");
        }
        assert_eq!(SigningService::parse("off"), Ok(None));
        for bad in [
            "https://127.0.0.1:7480",
            "http://127.0.0.1",
            "http://127.0.0.1:0",
            "http://10.0.0.1:7480",
            "http://evil.example:7480",
            "http://127.0.0.1:7480/v1",
            "http://127.0.0.1:7480; script-src *",
            "",
        ] {
            assert!(SigningService::parse(bad).is_err(), "{bad}");
        }
    }
}

/// The role boundaries of the crate guide, checked on the source: each role's SQL names only
/// its own tables, the roles never reach up into the use cases or the web layer, and neither
/// the use cases nor the web layer nor the operator functions have SQL of their own.
#[cfg(test)]
mod boundaries {
    const AUDIT: &[&str] = &["audit"];
    const AUTH: &[&str] = &["users", "tokens", "challenges", "auth_meta"];
    const LEDGER: &[&str] = &["accounts", "transfers", "journal", "postings"];
    const SESSIONS: &[&str] = &["sessions"];

    /// A source file: its path under `src/` and its text.
    type Source = (&'static str, &'static str);

    /// Each role: its name, its tables, its files.
    const ROLES: &[(&str, &[&str], &[Source])] = &[
        ("audit", AUDIT, &[("audit.rs", include_str!("audit.rs"))]),
        (
            "auth",
            AUTH,
            &[
                ("auth/mod.rs", include_str!("auth/mod.rs")),
                ("auth/users.rs", include_str!("auth/users.rs")),
                ("auth/tokens.rs", include_str!("auth/tokens.rs")),
                ("auth/challenges.rs", include_str!("auth/challenges.rs")),
                ("auth/verify.rs", include_str!("auth/verify.rs")),
                ("auth/lockout.rs", include_str!("auth/lockout.rs")),
            ],
        ),
        (
            "ledger",
            LEDGER,
            &[
                ("ledger/mod.rs", include_str!("ledger/mod.rs")),
                ("ledger/accounts.rs", include_str!("ledger/accounts.rs")),
                ("ledger/funding.rs", include_str!("ledger/funding.rs")),
                ("ledger/transfers.rs", include_str!("ledger/transfers.rs")),
                ("ledger/books.rs", include_str!("ledger/books.rs")),
            ],
        ),
        ("session", SESSIONS, &[("session.rs", include_str!("session.rs"))]),
    ];

    /// Files with no SQL at all: they compose the roles.
    const COMPOSERS: &[Source] = &[
        ("usecase.rs", include_str!("usecase.rs")),
        ("ops.rs", include_str!("ops.rs")),
        ("web/mod.rs", include_str!("web/mod.rs")),
        ("web/api.rs", include_str!("web/api.rs")),
        ("web/pages.rs", include_str!("web/pages.rs")),
        ("web/extract.rs", include_str!("web/extract.rs")),
        ("limit.rs", include_str!("limit.rs")),
    ];

    /// The tables named right after an SQL keyword (`FROM`, `JOIN`, `INTO`, `UPDATE`, `TABLE`)
    /// in a source file.
    fn tables_in(src: &str) -> Vec<&str> {
        let words: Vec<&str> =
            src.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
        let all: Vec<&str> = [AUDIT, AUTH, LEDGER, SESSIONS].concat();
        words
            .windows(2)
            .filter(|w| ["FROM", "JOIN", "INTO", "UPDATE", "TABLE"].contains(&w[0]))
            .map(|w| w[1])
            .filter(|t| all.contains(t))
            .collect()
    }

    /// The source without its test module (tests may set up other roles' state).
    fn non_test(src: &str) -> &str {
        src.split("#[cfg(test)]").next().unwrap_or(src)
    }

    fn check(file: &str, src: &str, own: &[&str]) {
        for t in tables_in(non_test(src)) {
            assert!(own.contains(&t), "{file} has SQL on table `{t}`, which another role owns");
        }
    }

    #[test]
    fn each_role_touches_only_its_own_tables() {
        for (_, own, files) in ROLES {
            for (file, src) in *files {
                check(file, src, own);
            }
        }
        for (file, src) in COMPOSERS {
            check(file, src, &[]);
        }
        // Nor has the writer: it runs the roles' units of work, it names no table.
        check("writer.rs", include_str!("writer.rs"), &[]);
        // The checker itself sees what it should.
        assert_eq!(tables_in("SELECT a FROM users u JOIN tokens t"), ["users", "tokens"]);
    }

    #[test]
    fn roles_never_call_each_other_or_the_layers_above() {
        for (role, _, files) in ROLES {
            for (file, src) in *files {
                let src = non_test(src);
                for (other, _, _) in ROLES {
                    // Every role may write the audit log.
                    if other != role && *other != "audit" {
                        assert!(!src.contains(&format!("crate::{other}")), "{file} reaches into the {other} role");
                    }
                }
                for layer in ["crate::usecase", "crate::web", "crate::ops"] {
                    assert!(!src.contains(layer), "{file} reaches up into {layer}");
                }
            }
        }
        // Nor does what lies underneath the roles.
        for (file, src) in [
            ("db.rs", include_str!("db.rs")),
            ("writer.rs", include_str!("writer.rs")),
            ("master_key.rs", include_str!("master_key.rs")),
            ("private.rs", include_str!("private.rs")),
            ("tls.rs", include_str!("tls.rs")),
            ("binding.rs", include_str!("binding.rs")),
        ] {
            for above in ["crate::auth", "crate::ledger", "crate::session", "crate::usecase", "crate::web"] {
                assert!(!non_test(src).contains(above), "{file} reaches up into {above}");
            }
        }
        // The web layer joins roles only through the use cases: it names no role function
        // that needs another role's data.
        for (file, src) in COMPOSERS.iter().filter(|(f, _)| f.starts_with("web/")) {
            for joined in ["auth::verify", "ledger::create_transfer", "ledger::execute_transfer", "end_all_for_user"] {
                assert!(!non_test(src).contains(joined), "{file} calls {joined} itself instead of a use case");
            }
        }
        assert!(non_test(include_str!("auth/mod.rs")).contains("crate::master_key"), "the checker reads the source");
    }
}
