//! Authentication: users, tokens (their sealed chain keys and counters), challenges, the OTP
//! check, lockout, and the audit events of all of these.
//!
//! The OTP itself is `paysim_otp` (the one implementation in the workspace). Every
//! function here takes a `&Transaction`, so the caller can put a verification, the challenge's
//! consumption, the chain's advance and a ledger posting into one `BEGIN IMMEDIATE`
//! transaction. A failed check is a value ([`Failure`]), not an error, so the caller commits
//! the failure count too.

use paysim_otp::{self as otp, ChainKey, TxFields};
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;

use crate::audit;
use crate::master_key::{random_bytes, KeyError, MasterKey, Sealed};

/// Counters accepted ahead of the stored one: `next <= c < next + WINDOW`.
pub const WINDOW: u64 = 20;
/// Consecutive failures that lock a token.
pub const MAX_FAILURES: i64 = 5;
/// First lock delay; each further lock (without a success between) doubles it.
pub const LOCK_BASE_S: i64 = 60;
/// Longest lock delay.
pub const LOCK_MAX_S: i64 = 24 * 3600;
/// A lock more than this long after the previous one ended starts the escalation again.
pub const LOCK_DECAY_S: i64 = 7 * 24 * 3600;
/// Login challenges a token keeps open; issuing one more drops its oldest login challenge.
/// Login challenges are handed to anyone who names the user, so this bounds what an
/// unauthenticated client can make the bank store.
pub const MAX_LOGIN_CHALLENGES: i64 = 64;
/// Transfer challenges a token keeps open (only logged-in sessions ask for them).
pub const MAX_TRANSFER_CHALLENGES: i64 = 32;
/// Expired challenges deleted per issued challenge (a bounded amount of work per request).
const EXPIRED_BATCH: i64 = 64;
/// Largest counter accepted at enrollment (the chain is stepped that far once).
pub const MAX_ENROLL_COUNTER: u64 = 1_000_000;

const CK_AD_LABEL: &[u8] = b"paysim-bank-ck-v1";
const KEY_CHECK_AD: &[u8] = b"paysim-bank-key-check-v1";

/// What the auth role needs to know about the deployment.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `otp::verifier_id(public URL)`: the origin every code is bound to.
    pub verifier_id: String,
    /// Challenge lifetime in seconds (default 120).
    pub challenge_ttl: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("the master key does not match this database (it sealed the chain keys with another key); use the right key file or BANK_MASTER_KEY")]
    MasterKeyMismatch,
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("user name must be 1-32 characters of a-z 0-9 . _ -")]
    InvalidUserName,
    #[error("card serial must be 1-16 characters of A-Z 0-9 -")]
    InvalidSerial,
    #[error("a token with serial {0:?} is already enrolled")]
    DuplicateSerial(String),
    #[error("no token with serial {0:?}")]
    UnknownToken(String),
    #[error("user {user:?} already has the active token {serial:?}; revoke it first")]
    ActiveTokenExists { user: String, serial: String },
    #[error("token {0:?} is revoked")]
    TokenRevoked(String),
    #[error("the user has no active token")]
    NoActiveToken,
    #[error("counter {0} is too large to enroll (at most {MAX_ENROLL_COUNTER})")]
    CounterTooLarge(u64),
}

/// Why a submission was refused. Only the audit log and the operator see this; the client
/// gets one generic answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    UnknownChallenge,
    ChallengeMismatch,
    ChallengeExpired,
    TokenRevoked,
    TokenLocked,
    CounterReplay,
    CounterOutOfWindow,
    OtpMismatch,
    /// The stored chain key does not open under the master key with its row's associated data:
    /// the row was altered (or copied from another token), or the key is not this database's.
    ChainKeyUnreadable,
}

impl Failure {
    /// The reason as written in the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::UnknownChallenge => "unknown_challenge",
            Failure::ChallengeMismatch => "challenge_mismatch",
            Failure::ChallengeExpired => "challenge_expired",
            Failure::TokenRevoked => "token_revoked",
            Failure::TokenLocked => "token_locked",
            Failure::CounterReplay => "counter_replay_or_clone",
            Failure::CounterOutOfWindow => "counter_out_of_window",
            Failure::OtpMismatch => "otp_mismatch",
            Failure::ChainKeyUnreadable => "chain_key_unreadable",
        }
    }

    /// Whether the token's consecutive-failure count goes up: only for an evaluated code.
    fn counts(self) -> bool {
        matches!(self, Failure::CounterReplay | Failure::CounterOutOfWindow | Failure::OtpMismatch)
    }
}

/// What a challenge may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Login,
    /// A transfer, by the ledger's row id.
    Transfer(i64),
}

impl Purpose {
    fn encode(self) -> String {
        match self {
            Purpose::Login => "login".to_owned(),
            Purpose::Transfer(id) => format!("transfer:{id}"),
        }
    }
}

/// A challenge handed to a client.
#[derive(Clone, Debug)]
pub struct Challenge {
    pub id: String,
    pub bytes: [u8; 32],
    pub expires_at: i64,
}

/// What the card signed besides the challenge.
#[derive(Clone, Copy, Debug)]
pub enum Signed<'a> {
    Login,
    Tx { transaction_id: &'a str, amount_minor: u64, currency: &'a [u8; 3], payee: &'a str },
}

/// A client's answer. `counter: None` (a person typed only the 8 digits) makes the check try
/// every counter of the window.
#[derive(Clone, Copy)]
pub struct Submission<'a> {
    pub challenge_id: &'a str,
    pub counter: Option<u64>,
    pub otp: &'a str,
}

impl std::fmt::Debug for Submission<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission").field("counter", &self.counter).finish_non_exhaustive()
    }
}

/// What the checker requires of the challenge besides the code.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    pub purpose: Purpose,
    /// The session the challenge must have been issued to (`None`: issued outside a session).
    pub binding: Option<&'a str>,
    /// The user that must own the token (a logged-in session's user).
    pub user_id: Option<i64>,
}

/// A successful check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user_id: i64,
    pub user: String,
    pub serial: String,
    pub counter: u64,
}

/// A token as the operator sees it (no key material).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub serial: String,
    pub user: String,
    pub status: String,
    pub next_counter: u64,
    pub failures: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

pub fn valid_user_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

pub fn valid_serial(serial: &str) -> bool {
    (1..=16).contains(&serial.len())
        && serial.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

fn ck_ad(token_id: i64, serial: &str, next_counter: u64) -> Vec<u8> {
    let mut ad = CK_AD_LABEL.to_vec();
    ad.extend_from_slice(&token_id.to_be_bytes());
    ad.extend_from_slice(&u32::try_from(serial.len()).unwrap_or(u32::MAX).to_be_bytes());
    ad.extend_from_slice(serial.as_bytes());
    ad.extend_from_slice(&next_counter.to_be_bytes());
    ad
}

fn store_chain(
    tx: &Transaction<'_>,
    key: &MasterKey,
    token_id: i64,
    serial: &str,
    next: u64,
    ck: &ChainKey,
) -> Result<(), AuthError> {
    let sealed = key.seal(&ck_ad(token_id, serial, next), ck.expose())?;
    let next_i = i64::try_from(next).map_err(|_| AuthError::CounterTooLarge(next))?;
    tx.execute(
        "UPDATE tokens SET ck_nonce = ?1, ck_sealed = ?2, next_counter = ?3 WHERE id = ?4",
        params![sealed.nonce, sealed.ciphertext, next_i, token_id],
    )?;
    Ok(())
}

fn load_chain(key: &MasterKey, token_id: i64, serial: &str, next: u64, sealed: &Sealed) -> Result<ChainKey, AuthError> {
    let plain = key.open(&ck_ad(token_id, serial, next), sealed)?;
    let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| KeyError::Open)?;
    Ok(ChainKey::from_bytes(bytes))
}

/// Makes sure `key` is the key this database was set up with; stores a check value the first
/// time. Starting with another key is refused here instead of failing every login later.
pub fn check_master_key(tx: &Transaction<'_>, key: &MasterKey) -> Result<(), AuthError> {
    let stored: Option<Vec<u8>> =
        tx.query_row("SELECT value FROM auth_meta WHERE name = 'key_check'", [], |r| r.get(0)).optional()?;
    match stored {
        Some(v) if v.len() > 12 => {
            let sealed = Sealed { nonce: v[..12].to_vec(), ciphertext: v[12..].to_vec() };
            key.open(KEY_CHECK_AD, &sealed).map(|_| ()).map_err(|_| AuthError::MasterKeyMismatch)
        }
        Some(_) => Err(AuthError::MasterKeyMismatch),
        None => {
            let sealed = key.seal(KEY_CHECK_AD, b"paysim bank master key")?;
            let mut v = sealed.nonce;
            v.extend_from_slice(&sealed.ciphertext);
            tx.execute("INSERT INTO auth_meta (name, value) VALUES ('key_check', ?1)", [v])?;
            Ok(())
        }
    }
}

/// Adds a user. Returns its id.
pub fn add_user(tx: &Transaction<'_>, now: i64, name: &str, actor: &str) -> Result<i64, AuthError> {
    if !valid_user_name(name) {
        return Err(AuthError::InvalidUserName);
    }
    if user_id(tx, name)?.is_some() {
        return Err(AuthError::UserExists(name.to_owned()));
    }
    tx.execute("INSERT INTO users (name, created_at) VALUES (?1, ?2)", params![name, now])?;
    let id = tx.last_insert_rowid();
    audit::append(tx, now, "user_added", actor, json!({ "user": name }))?;
    Ok(id)
}

pub fn user_id(tx: &Transaction<'_>, name: &str) -> Result<Option<i64>, AuthError> {
    Ok(tx.query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0)).optional()?)
}

pub fn user_name(tx: &Transaction<'_>, id: i64) -> Result<Option<String>, AuthError> {
    Ok(tx.query_row("SELECT name FROM users WHERE id = ?1", [id], |r| r.get(0)).optional()?)
}

/// A token to enroll: `ck0` is the chain seed (`ck_0`) from the personalization output and
/// `counter` the card's next counter then (normally 0).
#[derive(Debug)]
pub struct Enrollment<'a> {
    pub user: &'a str,
    pub serial: &'a str,
    pub ck0: &'a ChainKey,
    pub counter: u64,
}

/// Enrolls a token for an existing user; the bank stores `ck_counter`, sealed.
pub fn enroll_token(
    tx: &Transaction<'_>,
    now: i64,
    key: &MasterKey,
    e: &Enrollment<'_>,
    actor: &str,
) -> Result<(), AuthError> {
    let Enrollment { user, serial, ck0, counter } = *e;
    if !valid_serial(serial) {
        return Err(AuthError::InvalidSerial);
    }
    if counter > MAX_ENROLL_COUNTER {
        return Err(AuthError::CounterTooLarge(counter));
    }
    check_master_key(tx, key)?;
    let uid = user_id(tx, user)?.ok_or_else(|| AuthError::UnknownUser(user.to_owned()))?;
    let exists: Option<i64> =
        tx.query_row("SELECT id FROM tokens WHERE serial = ?1", [serial], |r| r.get(0)).optional()?;
    if exists.is_some() {
        return Err(AuthError::DuplicateSerial(serial.to_owned()));
    }
    let active: Option<String> = tx
        .query_row("SELECT serial FROM tokens WHERE user_id = ?1 AND status = 'active'", [uid], |r| r.get(0))
        .optional()?;
    if let Some(serial) = active {
        return Err(AuthError::ActiveTokenExists { user: user.to_owned(), serial });
    }
    tx.execute(
        "INSERT INTO tokens (serial, user_id, status, next_counter, ck_nonce, ck_sealed, created_at)
         VALUES (?1, ?2, 'active', 0, x'', x'', ?3)",
        params![serial, uid, now],
    )?;
    let token_id = tx.last_insert_rowid();
    store_chain(tx, key, token_id, serial, counter, &ck0.advance(counter))?;
    audit::append(tx, now, "token_enrolled", actor, json!({ "serial": serial, "user": user, "counter": counter }))?;
    Ok(())
}

fn token_row(tx: &Transaction<'_>, serial: &str) -> Result<(i64, String), AuthError> {
    tx.query_row("SELECT id, status FROM tokens WHERE serial = ?1", [serial], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| AuthError::UnknownToken(serial.to_owned()))
}

/// Clears a lock and the failure counts (operator).
pub fn unlock_token(tx: &Transaction<'_>, now: i64, serial: &str, actor: &str) -> Result<(), AuthError> {
    let (id, status) = token_row(tx, serial)?;
    if status != "active" {
        return Err(AuthError::TokenRevoked(serial.to_owned()));
    }
    tx.execute("UPDATE tokens SET failures = 0, lock_count = 0, locked_until = 0 WHERE id = ?1", [id])?;
    audit::append(tx, now, "token_unlocked", actor, json!({ "serial": serial }))?;
    Ok(())
}

/// Revokes a token for good: it never authenticates again and its challenges are dropped.
/// Returns the id of the user it belonged to.
pub fn revoke_token(tx: &Transaction<'_>, now: i64, serial: &str, actor: &str) -> Result<i64, AuthError> {
    let (id, status) = token_row(tx, serial)?;
    if status == "revoked" {
        return Err(AuthError::TokenRevoked(serial.to_owned()));
    }
    tx.execute("UPDATE tokens SET status = 'revoked' WHERE id = ?1", [id])?;
    tx.execute("DELETE FROM challenges WHERE token_id = ?1", [id])?;
    audit::append(tx, now, "token_revoked", actor, json!({ "serial": serial }))?;
    let user_id: i64 = tx.query_row("SELECT user_id FROM tokens WHERE id = ?1", [id], |r| r.get(0))?;
    Ok(user_id)
}

pub fn list_tokens(tx: &Transaction<'_>, now: i64) -> Result<Vec<TokenInfo>, AuthError> {
    let mut stmt = tx.prepare(
        "SELECT t.serial, u.name, t.status, t.next_counter, t.failures, t.locked_until, t.created_at
         FROM tokens t JOIN users u ON u.id = t.user_id ORDER BY t.serial",
    )?;
    let rows = stmt.query_map([], |r| {
        let locked_until: i64 = r.get(5)?;
        Ok(TokenInfo {
            serial: r.get(0)?,
            user: r.get(1)?,
            status: r.get(2)?,
            next_counter: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            failures: r.get(4)?,
            locked_until: (locked_until > now).then_some(locked_until),
            created_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn new_challenge(
    tx: &Transaction<'_>,
    now: i64,
    cfg: &AuthConfig,
    token_id: i64,
    purpose: Purpose,
    binding: Option<&str>,
) -> Result<Challenge, AuthError> {
    // Expired challenges are dropped as new ones are made, a bounded batch each time.
    tx.execute(
        "DELETE FROM challenges WHERE rowid IN
           (SELECT rowid FROM challenges WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
        params![now, EXPIRED_BATCH],
    )?;
    let id = hex::encode(random_bytes::<16>()?);
    let bytes = random_bytes::<32>()?;
    let expires_at = now + cfg.challenge_ttl;
    tx.execute(
        "INSERT INTO challenges (id, token_id, purpose, binding, challenge, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, token_id, purpose.encode(), binding, bytes.as_slice(), expires_at],
    )?;
    // The cap per token and kind: the newest stay, older ones of the same kind go. Login and
    // transfer challenges are counted apart, so a flood of login challenges from anyone who
    // knows the user name never pushes out a logged-in user's transfer challenge.
    let (like, cap) = match purpose {
        Purpose::Login => ("login", MAX_LOGIN_CHALLENGES),
        Purpose::Transfer(_) => ("transfer:%", MAX_TRANSFER_CHALLENGES),
    };
    tx.execute(
        "DELETE FROM challenges WHERE token_id = ?1 AND purpose LIKE ?2 AND rowid NOT IN
           (SELECT rowid FROM challenges WHERE token_id = ?1 AND purpose LIKE ?2 ORDER BY rowid DESC LIMIT ?3)",
        params![token_id, like, cap],
    )?;
    Ok(Challenge { id, bytes, expires_at })
}

/// A login challenge for `user`. An unknown user, or one without an active token, gets a
/// challenge that is stored nowhere and so can never succeed: the answer does not tell who
/// has an account. Both cases are audited with the truth.
pub fn issue_login_challenge(
    tx: &Transaction<'_>,
    now: i64,
    cfg: &AuthConfig,
    user: &str,
    binding: Option<&str>,
) -> Result<Challenge, AuthError> {
    let token: Option<(i64, String)> = tx
        .query_row(
            "SELECT t.id, t.serial FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE u.name = ?1 AND t.status = 'active'",
            [user],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let actor = audit::user_actor(user);
    match token {
        Some((token_id, serial)) => {
            let c = new_challenge(tx, now, cfg, token_id, Purpose::Login, binding)?;
            audit::append(
                tx,
                now,
                "challenge_issued",
                &actor,
                json!({ "purpose": "login", "serial": serial, "challenge": &c.id[..8] }),
            )?;
            Ok(c)
        }
        None => {
            audit::append(
                tx,
                now,
                "challenge_refused",
                &actor,
                json!({ "purpose": "login", "reason": "no_active_token_or_unknown_user" }),
            )?;
            Ok(Challenge {
                id: hex::encode(random_bytes::<16>()?),
                bytes: random_bytes::<32>()?,
                expires_at: now + cfg.challenge_ttl,
            })
        }
    }
}

/// A challenge for `purpose` for a logged-in user's active token.
pub fn issue_challenge(
    tx: &Transaction<'_>,
    now: i64,
    cfg: &AuthConfig,
    user_id: i64,
    purpose: Purpose,
    binding: Option<&str>,
) -> Result<Challenge, AuthError> {
    let (token_id, serial, user): (i64, String, String) = tx
        .query_row(
            "SELECT t.id, t.serial, u.name FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE u.id = ?1 AND t.status = 'active'",
            [user_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .ok_or(AuthError::NoActiveToken)?;
    let c = new_challenge(tx, now, cfg, token_id, purpose, binding)?;
    audit::append(
        tx,
        now,
        "challenge_issued",
        &audit::user_actor(&user),
        json!({ "purpose": purpose.encode(), "serial": serial, "challenge": &c.id[..8] }),
    )?;
    Ok(c)
}

struct ChallengeRow {
    token_id: i64,
    purpose: String,
    binding: Option<String>,
    challenge: Vec<u8>,
    expires_at: i64,
}

struct TokenState {
    id: i64,
    user_id: i64,
    user: String,
    serial: String,
    status: String,
    next: u64,
    sealed: Sealed,
    failures: i64,
    lock_count: i64,
    locked_until: i64,
}

fn load_token(tx: &Transaction<'_>, token_id: i64) -> Result<TokenState, AuthError> {
    Ok(tx.query_row(
        "SELECT t.id, t.user_id, u.name, t.serial, t.status, t.next_counter, t.ck_nonce, t.ck_sealed,
                t.failures, t.lock_count, t.locked_until
         FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
        [token_id],
        |r| {
            Ok(TokenState {
                id: r.get(0)?,
                user_id: r.get(1)?,
                user: r.get(2)?,
                serial: r.get(3)?,
                status: r.get(4)?,
                next: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                sealed: Sealed { nonce: r.get(6)?, ciphertext: r.get(7)? },
                failures: r.get(8)?,
                lock_count: r.get(9)?,
                locked_until: r.get(10)?,
            })
        },
    )?)
}

fn code_at(ck: &ChainKey, counter: u64, challenge: &[u8], verifier_id: &[u8], signed: Signed<'_>) -> otp::Otp {
    match signed {
        Signed::Login => otp::login_otp(ck, counter, challenge, verifier_id),
        Signed::Tx { transaction_id, amount_minor, currency, payee } => otp::tx_otp(
            ck,
            counter,
            challenge,
            &TxFields {
                verifier_id,
                transaction_id: transaction_id.as_bytes(),
                amount_minor,
                currency,
                payee: payee.as_bytes(),
            },
        ),
    }
}

/// Checks a submitted code. On success the challenge is gone and the token's chain stands at
/// `counter + 1`; on a counted failure the failure count went up (and the token may now be
/// locked). Either way the caller must commit the transaction; an `Err` means a fault, roll
/// back.
pub fn verify(
    tx: &Transaction<'_>,
    now: i64,
    cfg: &AuthConfig,
    key: &MasterKey,
    sub: &Submission<'_>,
    expect: &Expect<'_>,
    signed: Signed<'_>,
) -> Result<Result<Verified, Failure>, AuthError> {
    let purpose = expect.purpose.encode();
    let row = tx
        .query_row(
            "SELECT token_id, purpose, binding, challenge, expires_at FROM challenges WHERE id = ?1",
            [sub.challenge_id],
            |r| {
                Ok(ChallengeRow {
                    token_id: r.get(0)?,
                    purpose: r.get(1)?,
                    binding: r.get(2)?,
                    challenge: r.get(3)?,
                    expires_at: r.get(4)?,
                })
            },
        )
        .optional()?;
    let Some(ChallengeRow { token_id, purpose: c_purpose, binding: c_binding, challenge, expires_at }) = row else {
        audit::append(
            tx,
            now,
            "otp_check",
            "system",
            json!({ "purpose": purpose, "result": Failure::UnknownChallenge.reason() }),
        )?;
        return Ok(Err(Failure::UnknownChallenge));
    };
    let mut tok = load_token(tx, token_id)?;
    let actor = audit::user_actor(&tok.user);
    let cid = &sub.challenge_id[..sub.challenge_id.len().min(8)];
    let log = |result: &str, counter: Option<u64>| {
        audit::append(
            tx,
            now,
            "otp_check",
            &actor,
            json!({ "serial": tok.serial, "purpose": purpose, "challenge": cid, "counter": counter, "result": result }),
        )
    };
    // A challenge used in the wrong place is not consumed: its owner may still use it.
    if c_purpose != purpose
        || c_binding.as_deref() != expect.binding
        || expect.user_id.is_some_and(|u| u != tok.user_id)
    {
        log(Failure::ChallengeMismatch.reason(), sub.counter)?;
        return Ok(Err(Failure::ChallengeMismatch));
    }
    // From here the challenge is used up, whatever the outcome.
    tx.execute("DELETE FROM challenges WHERE id = ?1", [sub.challenge_id])?;
    let early = if expires_at <= now {
        Some(Failure::ChallengeExpired)
    } else if tok.status != "active" {
        Some(Failure::TokenRevoked)
    } else if tok.locked_until > now {
        Some(Failure::TokenLocked)
    } else {
        None
    };
    if let Some(f) = early {
        log(f.reason(), sub.counter)?;
        return Ok(Err(f));
    }

    let ck_next = match load_chain(key, tok.id, &tok.serial, tok.next, &tok.sealed) {
        Ok(ck) => ck,
        Err(AuthError::Key(KeyError::Open)) => {
            // Not the client's fault and not a guess: no failure is counted. The operator
            // learns of it from the error log and the audit log; the client gets the usual
            // generic refusal.
            tracing::error!(serial = %tok.serial, "a stored chain key does not open: altered token row or wrong master key");
            log(Failure::ChainKeyUnreadable.reason(), sub.counter)?;
            return Ok(Err(Failure::ChainKeyUnreadable));
        }
        Err(e) => return Err(e),
    };
    let vid = cfg.verifier_id.as_bytes();
    let outcome: Result<(u64, ChainKey), Failure> = match sub.counter {
        Some(c) if c < tok.next => Err(Failure::CounterReplay),
        Some(c) if c - tok.next >= WINDOW => Err(Failure::CounterOutOfWindow),
        Some(c) => {
            let ck = ck_next.advance(c - tok.next);
            if code_at(&ck, c, &challenge, vid, signed).matches(sub.otp) {
                Ok((c, ck))
            } else {
                Err(Failure::OtpMismatch)
            }
        }
        None => {
            // Every counter of the window is computed and compared; the first match wins.
            let mut found: Option<(u64, ChainKey)> = None;
            let mut ck = ck_next.clone();
            for i in 0..WINDOW {
                let c = tok.next + i;
                let hit = code_at(&ck, c, &challenge, vid, signed).matches(sub.otp);
                if hit && found.is_none() {
                    found = Some((c, ck.clone()));
                }
                ck = ck.next();
            }
            found.ok_or(Failure::OtpMismatch)
        }
    };

    match outcome {
        Ok((c, ck)) => {
            let Some(next) = c.checked_add(1).filter(|n| i64::try_from(*n).is_ok()) else {
                log(Failure::CounterOutOfWindow.reason(), Some(c))?;
                return Ok(Err(Failure::CounterOutOfWindow));
            };
            store_chain(tx, key, tok.id, &tok.serial, next, &ck.next())?;
            // A success ends the run of failures; the lock escalation is kept (see below).
            tx.execute("UPDATE tokens SET failures = 0 WHERE id = ?1", [tok.id])?;
            log("ok", Some(c))?;
            Ok(Ok(Verified { user_id: tok.user_id, user: tok.user.clone(), serial: tok.serial.clone(), counter: c }))
        }
        Err(f) => {
            log(f.reason(), sub.counter)?;
            if f.counts() {
                tok.failures += 1;
                if tok.failures >= MAX_FAILURES {
                    // Escalation: each lock doubles the delay, unless the last lock ended more
                    // than LOCK_DECAY_S (a week) ago. A success in between does not reset it, so a
                    // guesser gains nothing from the owner's own logins.
                    if now - tok.locked_until > LOCK_DECAY_S {
                        tok.lock_count = 0;
                    }
                    tok.lock_count += 1;
                    let shift = u32::try_from(tok.lock_count - 1).unwrap_or(u32::MAX).min(20);
                    let delay = LOCK_BASE_S.saturating_mul(1i64 << shift).min(LOCK_MAX_S);
                    tok.locked_until = now + delay;
                    tok.failures = 0;
                    audit::append(
                        tx,
                        now,
                        "token_locked",
                        &actor,
                        json!({ "serial": tok.serial, "lock": tok.lock_count, "until": tok.locked_until }),
                    )?;
                }
                tx.execute(
                    "UPDATE tokens SET failures = ?1, lock_count = ?2, locked_until = ?3 WHERE id = ?4",
                    params![tok.failures, tok.lock_count, tok.locked_until, tok.id],
                )?;
            }
            Ok(Err(f))
        }
    }
}
