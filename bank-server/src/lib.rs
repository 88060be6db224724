//! `bank-server`: the bank of the PAYSIM system. One axum process over one SQLite database,
//! with three roles a reader can see:
//!
//! - [`website`]: the HTML pages and the JSON API (`docs/api.md`); sessions and CSRF. It only
//!   calls the public functions of the other two.
//! - [`auth`]: users, tokens (sealed chain keys, counters), challenges, the OTP check
//!   (`paysim_otp`, the workspace's one implementation), lockout.
//! - [`ledger`]: accounts, double-entry postings, transfers, funding.
//!
//! Shared underneath: [`db`] (pragmas, migrations, blocking pool), [`audit`] (hash-chained
//! log), [`master_key`] (AES-256-GCM sealing of chain keys). Operators use [`ops`]; each of its
//! functions opens the database itself and works while the server runs.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! // Opening and migrating the database is blocking SQLite work: not on an async worker.
//! let state = tokio::task::spawn_blocking(|| {
//!     bank_server::AppState::open(
//!         std::path::Path::new("bank.sqlite3"),
//!         "http://127.0.0.1:8080",
//!         bank_server::clock::Clock::system(),
//!     )
//! })
//! .await??;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! bank_server::serve(listener, state, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod audit;
pub mod auth;
pub mod clock;
pub mod db;
pub mod ledger;
pub mod master_key;
pub mod ops;
pub mod website;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use crate::auth::AuthConfig;
use crate::clock::Clock;
use crate::db::Db;
use crate::master_key::MasterKey;

/// Default challenge lifetime (seconds).
pub const CHALLENGE_TTL_S: i64 = 120;
/// Sessions end after this long without a request.
pub const SESSION_IDLE_S: i64 = 5 * 60;
/// Sessions end this long after login whatever happens.
pub const SESSION_MAX_S: i64 = 12 * 3600;

/// Default cap on visitor sessions (see [`Config::max_visitor_sessions`]).
pub const MAX_VISITOR_SESSIONS: i64 = 10_000;

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
        })
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
}

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub key: Arc<MasterKey>,
    pub cfg: Arc<Config>,
    pub clock: Clock,
}

impl AppState {
    /// Opens the database (creating and migrating it), loads the master key (creating its file
    /// on first run) and checks that the key belongs to this database.
    pub fn open(db_path: &Path, public_url: &str, clock: Clock) -> Result<Self, StartError> {
        let cfg = Config::new(public_url)?;
        let key = MasterKey::load_or_create(db_path)?;
        Self::with(Db::open(db_path)?, key, cfg, clock)
    }

    /// Builds the state from parts (tests choose the key and settings).
    pub fn with(db: Db, key: MasterKey, cfg: Config, clock: Clock) -> Result<Self, StartError> {
        db.run_blocking(|c| db::immediate(c, |tx| auth::check_master_key(tx, &key).map_err(StartError::from)))?;
        Ok(AppState { db, key: Arc::new(key), cfg: Arc::new(cfg), clock })
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("db", &self.db).field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// The router with all routes (for `oneshot` tests and [`serve`]).
pub fn app(state: AppState) -> axum::Router {
    website::app(state)
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await
}

/// The role boundaries of the crate guide, checked on the source: each role's SQL names only
/// its own tables, and auth and ledger never reach into the website.
#[cfg(test)]
mod boundaries {
    const AUDIT: &[&str] = &["audit"];
    const AUTH: &[&str] = &["users", "tokens", "challenges", "auth_meta"];
    const LEDGER: &[&str] = &["accounts", "transfers", "journal", "postings"];
    const WEBSITE: &[&str] = &["sessions"];

    /// The tables named right after an SQL keyword (`FROM`, `JOIN`, `INTO`, `UPDATE`, `TABLE`)
    /// in a source file.
    fn tables_in(src: &str) -> Vec<&str> {
        let words: Vec<&str> =
            src.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
        let all: Vec<&str> = [AUDIT, AUTH, LEDGER, WEBSITE].concat();
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
        check("audit.rs", include_str!("audit.rs"), AUDIT);
        check("auth/mod.rs", include_str!("auth/mod.rs"), AUTH);
        check("ledger/mod.rs", include_str!("ledger/mod.rs"), LEDGER);
        for (file, src) in [
            ("website/mod.rs", include_str!("website/mod.rs")),
            ("website/api.rs", include_str!("website/api.rs")),
            ("website/pages.rs", include_str!("website/pages.rs")),
            ("website/session.rs", include_str!("website/session.rs")),
        ] {
            check(file, src, WEBSITE);
        }
        // The operator functions are a facade over the roles: no SQL of their own.
        check("ops.rs", include_str!("ops.rs"), &[]);
        // The checker itself sees what it should.
        assert_eq!(tables_in("SELECT a FROM users u JOIN tokens t"), ["users", "tokens"]);
    }

    #[test]
    fn auth_and_ledger_never_import_the_website() {
        for (file, src) in [
            ("audit.rs", include_str!("audit.rs")),
            ("auth/mod.rs", include_str!("auth/mod.rs")),
            ("ledger/mod.rs", include_str!("ledger/mod.rs")),
            ("db.rs", include_str!("db.rs")),
            ("master_key.rs", include_str!("master_key.rs")),
        ] {
            let src = non_test(src);
            assert!(
                !src.contains("crate::website") && !src.contains("website::"),
                "{file} reaches into the website role"
            );
        }
        // Auth and ledger are peers: neither calls the other (the website composes them).
        assert!(!non_test(include_str!("auth/mod.rs")).contains("crate::ledger"), "auth reaches into the ledger");
        assert!(!non_test(include_str!("ledger/mod.rs")).contains("crate::auth"), "the ledger reaches into auth");
    }
}
