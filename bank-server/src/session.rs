//! Sessions: of the website (a cookie) and of the JSON API (a bearer token). This role owns the
//! `sessions` table; a session names its user by auth's user id and never reads auth's tables.
//!
//! A session token is its start time (8 bytes) and 128 random bits, shown to the client once
//! as 48 hex digits; the table keeps only a key made of the start time and 24 bytes of the
//! token's SHA-256 (`key_of`: the time first, so new rows land where the last ones did).
//! Tokens of the earlier form, 32 hex digits of secret keyed by their whole SHA-256, are still
//! read. Sessions end after `idle` seconds without a request or at their
//! absolute expiry, whichever comes first. Each has its own CSRF token for forms, derived from
//! the session token (`SHA-256("PAYSIM-BANK-CSRF-1" ‖ token)`, first 16 bytes, hex) and never
//! stored: a copy of the database holds neither, so it cannot be used to forge a form. (The
//! `csrf` column of migration 0004 is left empty.)
//!
//! The audit log sees every session of a user (never a visitor's): `session_started` at login,
//! `session_ended` with its reason (`logout`, `idle`, `max_age`, `token_revoked`) when it
//! ends, each with the session's kind, a short reference (the last 8 hex digits of its key,
//! digest bytes that reveal nothing of the token) and the client address it was started from. An
//! idle or expired session is found ended when it is next used or when a session start
//! prunes a bounded batch: that is when its end is audited.

use rusqlite::{params, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};

use paysim_wire::api::SessionToken;
use paysim_wire::UserName;

use crate::audit;
use crate::db::{parse_column, Cached};
use crate::master_key::{random_bytes, KeyError};

/// `last_seen` is written at most this often, so browsing is not a disk write per click.
pub const TOUCH_EVERY_S: i64 = 10;

/// Ended sessions deleted per session started, of each way of ending (a bounded amount of work
/// per request that still outpaces the one row each start adds).
const ENDED_BATCH: i64 = 4;

/// The two prunes of [`prune_ended`]: each walks one index (`sessions_expiry`,
/// `sessions_last_seen`) for at most [`ENDED_BATCH`] rows. Kept apart because one `OR` of both
/// conditions makes SQLite scan the table.
const PRUNE_EXPIRED: &str = "SELECT rowid, id_hash, kind, user_id, client, expires_at, last_seen FROM sessions
   WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2";
const PRUNE_IDLE: &str = "SELECT rowid, id_hash, kind, user_id, client, expires_at, last_seen FROM sessions
   WHERE last_seen <= ?1 ORDER BY last_seen LIMIT ?2";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Key(#[from] KeyError),
}

/// Where a session lives: a browser's cookie or an API client's bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Web,
    Api,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Web => "web",
            Kind::Api => "api",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        [Kind::Web, Kind::Api].into_iter().find(|k| k.as_str() == text)
    }
}

/// How long sessions live, and how many visitor sessions are kept.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Seconds without a request after which a session ends.
    pub idle: i64,
    /// Seconds after its start at which a session ends whatever happens.
    pub max_age: i64,
    /// Visitor sessions (before login) kept at most; beyond that the oldest go.
    pub max_visitors: i64,
}

#[derive(Clone)]
pub struct Session {
    id_hash: [u8; 32],
    pub kind: Kind,
    /// `None` for a website visitor who has not logged in yet.
    pub user_id: Option<i64>,
    pub csrf: String,
    pub expires_at: i64,
    /// The address the session was started from, if known.
    pub client: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// What challenges issued in this session are bound to (digest bytes of its key: the
    /// key's first 8 bytes are its start time, see [`key_of`]).
    pub fn binding(&self) -> String {
        format!("session:{}", hex::encode(&self.id_hash[16..]))
    }

    /// The session in the audit log: the last 8 hex digits of its key (digest bytes).
    pub fn audit_ref(&self) -> String {
        audit_ref(&self.id_hash)
    }

    /// Constant-time check of a form's CSRF token.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.csrf.len() == submitted.len() && bool::from(self.csrf.as_bytes().ct_eq(submitted.as_bytes()))
    }
}

fn audit_ref(id_hash: &[u8]) -> String {
    hex::encode(&id_hash[id_hash.len().saturating_sub(4)..])
}

fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Hex digits of a token's start time (a big-endian `u64` of seconds).
const TIME_DIGITS: usize = 16;
/// Hex digits of a token's secret (16 random bytes).
const SECRET_DIGITS: usize = 32;

/// A new session token: its start time, then 16 random bytes, in lower-case hex (48 digits).
fn new_token(now: i64) -> Result<String, KeyError> {
    let start = u64::try_from(now).unwrap_or(0).to_be_bytes();
    Ok(format!("{}{}", hex::encode(start), hex::encode(random_bytes::<16>()?)))
}

/// The `sessions` key of a token: its 8 bytes of start time, then the first 24 bytes of
/// SHA-256 of the whole token. The table holds no token, only this; a dump cannot be used to
/// take over a session. Keys that start with the time make each new row land at the edge of
/// the index, where the rows of the last batches are, so a start costs the same few page
/// writes with 100,000 live sessions as with none (a key that is all digest put each new row
/// on a page of its own). A token of the earlier form (32 digits, all secret) keeps its key:
/// the whole digest.
fn key_of(token: &str) -> [u8; 32] {
    let digest = hash_token(token);
    if token.len() != TIME_DIGITS + SECRET_DIGITS {
        return digest;
    }
    let mut key = [0u8; 32];
    // `well_formed` has checked the digits.
    if hex::decode_to_slice(&token[..TIME_DIGITS], &mut key[..8]).is_err() {
        return digest;
    }
    key[8..].copy_from_slice(&digest[..24]);
    key
}

/// The CSRF token of the session whose token is `token`.
fn csrf_for(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"PAYSIM-BANK-CSRF-1");
    h.update(token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Whether `s` looks like a token we issue (48 lower-case hex digits: start time and secret;
/// or 32, all secret, as tokens were issued before).
fn well_formed(s: &str) -> bool {
    (s.len() == TIME_DIGITS + SECRET_DIGITS || s.len() == SECRET_DIGITS)
        && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Anyone can start a visitor session (a website session before login) by opening `/login`:
/// keeps the newest `max` of them and deletes the older ones. Logged-in sessions are not
/// touched.
fn cap_visitors(tx: &Transaction<'_>, max: i64) -> Result<(), SessionError> {
    let n: i64 = tx.row("SELECT count(*) FROM sessions WHERE user_id IS NULL", [], |r| r.get(0))?;
    if n > max {
        tx.exec(
            "DELETE FROM sessions WHERE rowid IN
               (SELECT rowid FROM sessions WHERE user_id IS NULL ORDER BY created_at, rowid LIMIT ?1)",
            [n - max],
        )?;
    }
    Ok(())
}

/// Why a session ended, as the audit log says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Logout,
    Idle,
    MaxAge,
    TokenRevoked,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Logout => "logout",
            Ended::Idle => "idle",
            Ended::MaxAge => "max_age",
            Ended::TokenRevoked => "token_revoked",
        }
    }
}

/// What the audit row of a session's end needs of it.
struct Ending<'a> {
    id_hash: &'a [u8],
    kind: Kind,
    user_id: Option<i64>,
    client: Option<&'a str>,
}

/// Audits the end of a user's session (a visitor's goes unrecorded, as it started).
fn audit_end(tx: &Transaction<'_>, now: i64, e: &Ending<'_>, why: Ended, actor: &str) -> Result<(), SessionError> {
    let Some(user_id) = e.user_id else {
        return Ok(());
    };
    let reference = audit_ref(e.id_hash);
    audit::append(
        tx,
        now,
        "session_ended",
        actor,
        serde_json::json!({ "session": reference, "kind": e.kind.as_str(), "user_id": user_id, "reason": why.as_str(), "session_client": e.client }),
    )?;
    Ok(())
}

/// Deletes a bounded batch of sessions that have ended (past their expiry, or idle for `idle`
/// seconds), auditing each user session's end. A lookup refuses such a session whether or
/// not its row is still there.
fn prune_ended(tx: &Transaction<'_>, now: i64, idle: i64) -> Result<(), SessionError> {
    for (sql, bound) in [(PRUNE_EXPIRED, now), (PRUNE_IDLE, now - idle)] {
        type Pruned = (i64, Vec<u8>, Kind, Option<i64>, Option<String>, i64, i64);
        let rows: Vec<Pruned> = tx
            .prepare_cached(sql)?
            .query_map(params![bound, ENDED_BATCH], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    parse_column(r, 2, "session kind", Kind::from_stored)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        for (rowid, id_hash, kind, user_id, client, expires_at, _last_seen) in rows {
            tx.prepare_cached("DELETE FROM sessions WHERE rowid = ?1")?.execute([rowid])?;
            let why = if now >= expires_at { Ended::MaxAge } else { Ended::Idle };
            let e = Ending { id_hash: &id_hash, kind, user_id, client: client.as_deref() };
            audit_end(tx, now, &e, why, "system")?;
        }
    }
    Ok(())
}

/// Starts a session; returns the token to hand to the client and the session. A visitor
/// session (`user_id` `None`) may push out the oldest visitor sessions beyond
/// [`Limits::max_visitors`].
pub fn create(
    tx: &Transaction<'_>,
    now: i64,
    kind: Kind,
    user_id: Option<i64>,
    limits: Limits,
) -> Result<(SessionToken, Session), SessionError> {
    prune_ended(tx, now, limits.idle)?;
    let token = new_token(now)?;
    let csrf = csrf_for(&token);
    let id_hash = key_of(&token);
    let expires_at = now + limits.max_age;
    let client = audit::client();
    tx.exec(
        "INSERT INTO sessions (id_hash, kind, user_id, csrf, created_at, last_seen, expires_at, client)
         VALUES (?1, ?2, ?3, '', ?4, ?4, ?5, ?6)",
        params![id_hash.as_slice(), kind.as_str(), user_id, now, expires_at, client],
    )?;
    if user_id.is_none() {
        cap_visitors(tx, limits.max_visitors)?;
    }
    Ok((SessionToken::new(token), Session { id_hash, kind, user_id, csrf, expires_at, client }))
}

/// Starts a session of the user `user_id` named `user` (a login) and audits it
/// (`session_started`, with the kind and the client address).
pub fn start(
    tx: &Transaction<'_>,
    now: i64,
    kind: Kind,
    user_id: i64,
    user: &UserName,
    limits: Limits,
) -> Result<(SessionToken, Session), SessionError> {
    let (token, s) = create(tx, now, kind, Some(user_id), limits)?;
    audit::append(
        tx,
        now,
        "session_started",
        &audit::user_actor(user.as_str()),
        serde_json::json!({ "session": s.audit_ref(), "kind": kind.as_str(), "user": user }),
    )?;
    Ok((token, s))
}

/// A stored session as a lookup reads it.
struct Row {
    id_hash: [u8; 32],
    user_id: Option<i64>,
    last_seen: i64,
    expires_at: i64,
    client: Option<String>,
}

/// The row of `token` if it is a session of `kind`.
fn find(tx: &Transaction<'_>, token: &str, kind: Kind) -> Result<Option<Row>, SessionError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let id_hash = key_of(token);
    let row: Option<(Kind, Row)> = tx
        .prepare_cached("SELECT kind, user_id, last_seen, expires_at, client FROM sessions WHERE id_hash = ?1")?
        .query_row([id_hash.as_slice()], |r| {
            Ok((
                parse_column(r, 0, "session kind", Kind::from_stored)?,
                Row { id_hash, user_id: r.get(1)?, last_seen: r.get(2)?, expires_at: r.get(3)?, client: r.get(4)? },
            ))
        })
        .optional()?;
    Ok(row.filter(|(k, _)| *k == kind).map(|(_, row)| row))
}

impl Row {
    fn ended(&self, now: i64, idle: i64) -> bool {
        now >= self.expires_at || now - self.last_seen >= idle
    }

    fn touch_due(&self, now: i64) -> bool {
        now - self.last_seen >= TOUCH_EVERY_S
    }

    fn session(self, token: &str, kind: Kind) -> Session {
        Session {
            id_hash: self.id_hash,
            kind,
            user_id: self.user_id,
            csrf: csrf_for(token),
            expires_at: self.expires_at,
            client: self.client,
        }
    }
}

/// The live session for `token`, touched; `None` if unknown, of another kind, idle too long
/// or past its absolute expiry (such a row is deleted).
pub fn lookup(
    tx: &Transaction<'_>,
    now: i64,
    token: &str,
    kind: Kind,
    idle: i64,
) -> Result<Option<Session>, SessionError> {
    let Some(row) = find(tx, token, kind)? else {
        return Ok(None);
    };
    if row.ended(now, idle) {
        tx.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?.execute([row.id_hash.as_slice()])?;
        let why = if now >= row.expires_at { Ended::MaxAge } else { Ended::Idle };
        let e = Ending { id_hash: &row.id_hash, kind, user_id: row.user_id, client: row.client.as_deref() };
        audit_end(tx, now, &e, why, "system")?;
        return Ok(None);
    }
    if row.touch_due(now) {
        tx.prepare_cached("UPDATE sessions SET last_seen = ?1 WHERE id_hash = ?2")?
            .execute(params![now, row.id_hash.as_slice()])?;
    }
    Ok(Some(row.session(token, kind)))
}

/// What [`peek`] found.
#[derive(Debug)]
pub enum Peek {
    /// Live, and its `last_seen` is recent enough that this request need not be written down.
    Live(Session),
    /// Unknown, or of another kind: nothing to write either.
    Unknown,
    /// It ended (its row must go) or its `last_seen` is due: only [`lookup`] may answer.
    NeedsWrite,
}

/// [`lookup`] for a transaction that may not write: the same answer whenever [`lookup`] would
/// change nothing, [`Peek::NeedsWrite`] otherwise.
pub fn peek(tx: &Transaction<'_>, now: i64, token: &str, kind: Kind, idle: i64) -> Result<Peek, SessionError> {
    let Some(row) = find(tx, token, kind)? else {
        return Ok(Peek::Unknown);
    };
    if row.ended(now, idle) || row.touch_due(now) {
        return Ok(Peek::NeedsWrite);
    }
    Ok(Peek::Live(row.session(token, kind)))
}

/// Deletes a session without a word to the audit log: a visitor's (replaced at login, or
/// leaving). A user's session ends with [`end`].
pub fn delete(tx: &Transaction<'_>, session: &Session) -> Result<(), SessionError> {
    tx.exec("DELETE FROM sessions WHERE id_hash = ?1", [session.id_hash.as_slice()])?;
    Ok(())
}

/// Ends a session (a user's logout, say) and audits it with `why`.
pub fn end(tx: &Transaction<'_>, now: i64, session: &Session, why: Ended, actor: &str) -> Result<(), SessionError> {
    delete(tx, session)?;
    let e = Ending {
        id_hash: &session.id_hash,
        kind: session.kind,
        user_id: session.user_id,
        client: session.client.as_deref(),
    };
    audit_end(tx, now, &e, why, actor)
}

/// Ends every session of a user (API and website), e.g. when their token is revoked; audits
/// how many. Returns that number.
pub fn end_all_for_user(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    user: &UserName,
    reason: &str,
    actor: &str,
) -> Result<usize, SessionError> {
    type Live = (Vec<u8>, Kind, Option<String>);
    let ended: Vec<Live> = tx
        .prepare_cached("SELECT id_hash, kind, client FROM sessions WHERE user_id = ?1")?
        .query_map([user_id], |r| Ok((r.get(0)?, parse_column(r, 1, "session kind", Kind::from_stored)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let n = tx.exec("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
    for (id_hash, kind, client) in &ended {
        let e = Ending { id_hash, kind: *kind, user_id: Some(user_id), client: client.as_deref() };
        audit_end(tx, now, &e, Ended::TokenRevoked, actor)?;
    }
    audit::append(tx, now, "sessions_ended", actor, serde_json::json!({ "user": user, "count": n, "reason": reason }))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{plan, Db, DbError};

    #[test]
    fn keys_start_with_the_time_and_tokens_of_the_earlier_form_still_work() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("bank.sqlite3")).unwrap();
        db.run_blocking(|c| {
            crate::db::immediate(c, |tx| {
                let limits = Limits { idle: 300, max_age: 3600, max_visitors: 10 };
                let (a, sa) = create(tx, 1_000, Kind::Api, None, limits).unwrap();
                let (b, sb) = create(tx, 1_000, Kind::Api, None, limits).unwrap();
                let (c2, sc) = create(tx, 1_001, Kind::Api, None, limits).unwrap();
                for t in [&a, &b, &c2] {
                    assert_eq!(t.as_str().len(), 48);
                    assert!(well_formed(t.as_str()));
                }
                assert_eq!(&a.as_str()[..16], "00000000000003e8", "the token starts with its time");
                assert_eq!(&sa.id_hash[..8], &1_000u64.to_be_bytes(), "so does the key");
                assert_eq!(&sa.id_hash[8..], &hash_token(a.as_str())[..24]);
                assert!(sa.id_hash < sc.id_hash && sb.id_hash < sc.id_hash, "later sessions sort after");
                // Two sessions of the same second share no binding or audit reference.
                assert_ne!(sa.binding(), sb.binding());
                assert_ne!(sa.audit_ref(), sb.audit_ref());
                assert!(lookup(tx, 1_002, a.as_str(), Kind::Api, limits.idle).unwrap().is_some());
                // A token of the earlier form: 32 digits, keyed by its whole digest.
                let old = "0123456789abcdef0123456789abcdef";
                tx.execute(
                    "INSERT INTO sessions (id_hash, kind, user_id, csrf, created_at, last_seen, expires_at)
                     VALUES (?1, 'api', NULL, '', 1000, 1000, 9999)",
                    [hash_token(old).as_slice()],
                )?;
                assert!(lookup(tx, 1_002, old, Kind::Api, limits.idle).unwrap().is_some());
                // A 48-digit token nobody issued is simply unknown.
                let forged = format!("{}{}", &a.as_str()[..16], "0".repeat(32));
                assert!(lookup(tx, 1_002, &forged, Kind::Api, limits.idle).unwrap().is_none());
                Ok::<_, DbError>(())
            })
        })
        .unwrap();
    }

    #[test]
    fn pruning_ended_sessions_searches_indexes_and_never_scans() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("bank.sqlite3")).unwrap();
        db.run_blocking(|c| {
            for sql in [PRUNE_EXPIRED, PRUNE_IDLE] {
                plan::searches_only(c, sql, "sessions");
            }
            // The visitor count, ending a user's sessions, a lookup.
            plan::searches_only(c, "SELECT count(*) FROM sessions WHERE user_id IS NULL", "sessions");
            plan::searches_only(c, "DELETE FROM sessions WHERE user_id = ?1", "sessions");
            plan::searches_only(c, "SELECT kind FROM sessions WHERE id_hash = ?1", "sessions");
            // The check sees a scan when there is one.
            let scan = plan::of(c, "SELECT id_hash FROM sessions WHERE csrf = ?1");
            assert!(scan.iter().any(|l| l.starts_with("SCAN sessions")), "{scan:?}");
            Ok::<_, DbError>(())
        })
        .unwrap();
    }

    #[test]
    fn pruning_takes_a_bounded_batch_of_each_ending() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("bank.sqlite3")).unwrap();
        db.run_blocking(|c| {
            crate::db::immediate(c, |tx| {
                let limits = Limits { idle: 300, max_age: 3600, max_visitors: 1_000_000 };
                // 2 batches' worth past their expiry (but seen lately), 2 idle too long, 10 live.
                let b = ENDED_BATCH;
                for i in 0..4 * b + 10 {
                    let (last_seen, expires_at) = match i {
                        i if i < 2 * b => (1_900, 1_500),
                        i if i < 4 * b => (1_000, 9_999),
                        _ => (1_900, 9_999),
                    };
                    tx.execute(
                        "INSERT INTO sessions (id_hash, kind, user_id, csrf, created_at, last_seen, expires_at)
                         VALUES (?1, 'api', NULL, '', 0, ?2, ?3)",
                        params![hash_token(&i.to_string()).as_slice(), last_seen, expires_at],
                    )?;
                }
                let count = |tx: &Transaction<'_>| -> i64 {
                    tx.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)).unwrap()
                };
                prune_ended(tx, 2_000, limits.idle).unwrap();
                assert_eq!(count(tx), 2 * b + 10, "one batch of each ending");
                prune_ended(tx, 2_000, limits.idle).unwrap();
                assert_eq!(count(tx), 10, "only the live ones are left");
                prune_ended(tx, 2_000, limits.idle).unwrap();
                assert_eq!(count(tx), 10);
                Ok::<_, DbError>(())
            })
        })
        .unwrap();
    }
}
