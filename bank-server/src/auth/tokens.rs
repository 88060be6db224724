//! Tokens: one card each. The chain key `ck_{next_counter}` is stored only sealed under the
//! master key, with associated data binding it to (token id, serial, next counter), so rows
//! cannot be swapped and the counter cannot be moved without the key.
//!
//! An OATH token ([`TokenKind::Oath`]) keeps its static HMAC key in the same sealed columns,
//! with associated data of its own label, token id and serial, and no counter.

use paysim_otp::{ChainKey, OathKey, TxVersion, OATH_KEY_LEN};
use paysim_wire::{CardSerial, UserName};
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;

use super::{AuthError, TokenKind, TokenStatus, MAX_ENROLL_COUNTER};
use crate::audit;
use crate::db::{parse_column, Cached};
use crate::master_key::{KeyError, MasterKey, Sealed};

const CK_AD_LABEL: &[u8] = b"paysim-bank-ck-v1";
const OATH_AD_LABEL: &[u8] = b"paysim-bank-oath-v1";
const KEY_CHECK_AD: &[u8] = b"paysim-bank-key-check-v1";

/// A token as the operator sees it (no key material).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub serial: CardSerial,
    pub user: UserName,
    pub status: TokenStatus,
    pub kind: TokenKind,
    /// Always 0 for an OATH token (it has no counter).
    pub next_counter: u64,
    /// The transaction-context version the card signs (1 or 2), as announced at enrollment.
    pub tx_version: u8,
    pub failures: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

/// A token to enroll: `ck0` is the chain seed (`ck_0`) from the personalization output and
/// `counter` the card's next counter then (normally 0).
#[derive(Debug)]
pub struct Enrollment<'a> {
    pub user: &'a UserName,
    pub serial: &'a CardSerial,
    pub ck0: &'a ChainKey,
    pub counter: u64,
    /// The newest transaction-context version the card announced (`DF08`; 1 for a card
    /// without it), from the token file.
    pub tx_version: TxVersion,
}

/// The transaction-context version of the user's active token; `None` without one.
pub fn active_tx_version(tx: &Transaction<'_>, user_id: i64) -> Result<Option<TxVersion>, AuthError> {
    Ok(tx
        .row(
            "SELECT tx_version FROM tokens WHERE user_id = ?1 AND status = ?2",
            params![user_id, TokenStatus::Active.as_str()],
            |r| {
                let n: i64 = r.get(0)?;
                u8::try_from(n).ok().and_then(TxVersion::from_number).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Integer,
                        "unknown transaction-context version".into(),
                    )
                })
            },
        )
        .optional()?)
}

/// An OATH token to enroll: its key was written to the credential on the card (`bank-tools
/// oath enroll`); `serial` names the token at the bank.
#[derive(Debug)]
pub struct OathEnrollment<'a> {
    pub user: &'a UserName,
    pub serial: &'a CardSerial,
    pub key: &'a OathKey,
}

pub(super) fn kind_column(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<TokenKind> {
    parse_column(r, index, "token kind", TokenKind::from_stored)
}

pub(super) fn status_column(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<TokenStatus> {
    parse_column(r, index, "token status", TokenStatus::from_stored)
}

fn ck_ad(token_id: i64, serial: &CardSerial, next_counter: u64) -> Vec<u8> {
    let serial = serial.as_str();
    let mut ad = CK_AD_LABEL.to_vec();
    ad.extend_from_slice(&token_id.to_be_bytes());
    ad.extend_from_slice(&u32::try_from(serial.len()).unwrap_or(u32::MAX).to_be_bytes());
    ad.extend_from_slice(serial.as_bytes());
    ad.extend_from_slice(&next_counter.to_be_bytes());
    ad
}

fn oath_ad(token_id: i64, serial: &CardSerial) -> Vec<u8> {
    let serial = serial.as_str();
    let mut ad = OATH_AD_LABEL.to_vec();
    ad.extend_from_slice(&token_id.to_be_bytes());
    ad.extend_from_slice(&u32::try_from(serial.len()).unwrap_or(u32::MAX).to_be_bytes());
    ad.extend_from_slice(serial.as_bytes());
    ad
}

/// Opens the stored key of an OATH token; `KeyError::Open` if the row or the master key is not
/// the one sealed.
pub(super) fn load_oath_key(
    key: &MasterKey,
    token_id: i64,
    serial: &CardSerial,
    sealed: &Sealed,
) -> Result<OathKey, AuthError> {
    let plain = key.open(&oath_ad(token_id, serial), sealed)?;
    let bytes: [u8; OATH_KEY_LEN] = plain.as_slice().try_into().map_err(|_| KeyError::Open)?;
    Ok(OathKey::from_bytes(bytes))
}

/// Seals `ck` as the key of counter `next` and stores both.
/// Seals an OATH token's key under the master key into its row (no counter: the key is static).
fn store_oath_key(
    tx: &Transaction<'_>,
    key: &MasterKey,
    token_id: i64,
    serial: &CardSerial,
    oath_key: &OathKey,
) -> Result<(), AuthError> {
    let sealed = key.seal(&oath_ad(token_id, serial), oath_key.expose())?;
    tx.exec(
        "UPDATE tokens SET ck_nonce = ?1, ck_sealed = ?2 WHERE id = ?3",
        params![sealed.nonce, sealed.ciphertext, token_id],
    )?;
    Ok(())
}

pub(super) fn store_chain(
    tx: &Transaction<'_>,
    key: &MasterKey,
    token_id: i64,
    serial: &CardSerial,
    next: u64,
    ck: &ChainKey,
) -> Result<(), AuthError> {
    let sealed = key.seal(&ck_ad(token_id, serial, next), ck.expose())?;
    let next_i = i64::try_from(next).map_err(|_| AuthError::CounterTooLarge(next))?;
    tx.exec(
        "UPDATE tokens SET ck_nonce = ?1, ck_sealed = ?2, next_counter = ?3 WHERE id = ?4",
        params![sealed.nonce, sealed.ciphertext, next_i, token_id],
    )?;
    Ok(())
}

/// Opens the stored chain key; `KeyError::Open` if the row or the key is not the one sealed.
pub(super) fn load_chain(
    key: &MasterKey,
    token_id: i64,
    serial: &CardSerial,
    next: u64,
    sealed: &Sealed,
) -> Result<ChainKey, AuthError> {
    let plain = key.open(&ck_ad(token_id, serial, next), sealed)?;
    let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| KeyError::Open)?;
    Ok(ChainKey::from_bytes(bytes))
}

/// Makes sure `key` is the key this database was set up with; stores a check value the first
/// time. Starting with another key is refused here instead of failing every login later.
pub fn check_master_key(tx: &Transaction<'_>, key: &MasterKey) -> Result<(), AuthError> {
    let stored: Option<Vec<u8>> =
        tx.row("SELECT value FROM auth_meta WHERE name = 'key_check'", [], |r| r.get(0)).optional()?;
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
            tx.exec("INSERT INTO auth_meta (name, value) VALUES ('key_check', ?1)", [v])?;
            Ok(())
        }
    }
}

/// Checks that `user` exists, the serial is new and the user has no active token, then
/// inserts the token row (with empty sealed columns); returns its id.
fn insert_token(
    tx: &Transaction<'_>,
    now: i64,
    user: &UserName,
    serial: &CardSerial,
    kind: TokenKind,
    tx_version: TxVersion,
) -> Result<i64, AuthError> {
    let uid = super::user_id(tx, user)?.ok_or_else(|| AuthError::UnknownUser(user.clone()))?;
    let exists: Option<i64> =
        tx.row("SELECT id FROM tokens WHERE serial = ?1", [serial.as_str()], |r| r.get(0)).optional()?;
    if exists.is_some() {
        return Err(AuthError::DuplicateSerial(serial.clone()));
    }
    let active: Option<CardSerial> = tx
        .row(
            "SELECT serial FROM tokens WHERE user_id = ?1 AND status = ?2",
            params![uid, TokenStatus::Active.as_str()],
            |r| parse_column(r, 0, "card serial", |t| t.parse().ok()),
        )
        .optional()?;
    if let Some(serial) = active {
        return Err(AuthError::ActiveTokenExists { user: user.clone(), serial });
    }
    tx.exec(
        "INSERT INTO tokens (serial, user_id, status, kind, next_counter, ck_nonce, ck_sealed, created_at, tx_version)
         VALUES (?1, ?2, ?3, ?4, 0, x'', x'', ?5, ?6)",
        params![serial.as_str(), uid, TokenStatus::Active.as_str(), kind.as_str(), now, tx_version.number()],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Enrolls a PAYSIM token for an existing user; the bank stores `ck_counter`, sealed.
pub fn enroll_token(
    tx: &Transaction<'_>,
    now: i64,
    key: &MasterKey,
    e: &Enrollment<'_>,
    actor: &str,
) -> Result<(), AuthError> {
    let Enrollment { user, serial, ck0, counter, tx_version } = *e;
    if counter > MAX_ENROLL_COUNTER {
        return Err(AuthError::CounterTooLarge(counter));
    }
    check_master_key(tx, key)?;
    let token_id = insert_token(tx, now, user, serial, TokenKind::Paysim, tx_version)?;
    store_chain(tx, key, token_id, serial, counter, &ck0.advance(counter))?;
    audit::append(
        tx,
        now,
        "token_enrolled",
        actor,
        json!({ "serial": serial, "user": user, "kind": TokenKind::Paysim, "counter": counter, "tx_version": tx_version.number() }),
    )?;
    Ok(())
}

/// Enrolls an OATH token for an existing user; the bank stores its key, sealed.
pub fn enroll_oath_token(
    tx: &Transaction<'_>,
    now: i64,
    key: &MasterKey,
    e: &OathEnrollment<'_>,
    actor: &str,
) -> Result<(), AuthError> {
    check_master_key(tx, key)?;
    // An OATH key answers for whatever context it is given: the bridge sends version 2's.
    let token_id = insert_token(tx, now, e.user, e.serial, TokenKind::Oath, TxVersion::V2)?;
    store_oath_key(tx, key, token_id, e.serial, e.key)?;
    audit::append(
        tx,
        now,
        "token_enrolled",
        actor,
        json!({ "serial": e.serial, "user": e.user, "kind": TokenKind::Oath }),
    )?;
    Ok(())
}

/// A token's secret as an export carries it: what the bank holds, never more.
pub enum TokenSecret {
    /// A PAYSIM card: the bank's current chain key `ck_next` and the counter it belongs to (the
    /// bank no longer has `ck_0` or any key before `ck_next`), with the context version.
    Paysim { ck: ChainKey, next_counter: u64, tx_version: TxVersion },
    /// An OATH credential's static HMAC-SHA256 key.
    Oath { key: OathKey },
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSecret::Paysim { next_counter, tx_version, .. } => f
                .debug_struct("Paysim")
                .field("next_counter", next_counter)
                .field("tx_version", tx_version)
                .finish_non_exhaustive(),
            TokenSecret::Oath { .. } => f.debug_struct("Oath").finish_non_exhaustive(),
        }
    }
}

/// An active token with its opened secret (`bank-tools token export`).
#[derive(Debug)]
pub struct ExportedToken {
    pub serial: CardSerial,
    pub user: UserName,
    pub secret: TokenSecret,
}

/// Opens the secret of `user`'s active token for an export and audits `token_exported` (the
/// export is a copy of the token: the log says who could hold one).
pub fn export_token(
    tx: &Transaction<'_>,
    now: i64,
    key: &MasterKey,
    user: &UserName,
    actor: &str,
) -> Result<ExportedToken, AuthError> {
    check_master_key(tx, key)?;
    let uid = super::user_id(tx, user)?.ok_or_else(|| AuthError::UnknownUser(user.clone()))?;
    let row = tx
        .row(
            "SELECT id, serial, kind, next_counter, tx_version, ck_nonce, ck_sealed FROM tokens
             WHERE user_id = ?1 AND status = ?2",
            params![uid, TokenStatus::Active.as_str()],
            |r| {
                let serial: CardSerial = parse_column(r, 1, "card serial", |t| t.parse().ok())?;
                let n: i64 = r.get(4)?;
                let tx_version = u8::try_from(n).ok().and_then(TxVersion::from_number).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        4,
                        rusqlite::types::Type::Integer,
                        "unknown transaction-context version".into(),
                    )
                })?;
                let sealed = Sealed { nonce: r.get(5)?, ciphertext: r.get(6)? };
                Ok((r.get::<_, i64>(0)?, serial, kind_column(r, 2)?, r.get::<_, i64>(3)?, tx_version, sealed))
            },
        )
        .optional()?;
    let (id, serial, kind, next, tx_version, sealed) = row.ok_or(AuthError::NoActiveToken)?;
    let secret = match kind {
        TokenKind::Paysim => {
            let next_counter = u64::try_from(next).map_err(|_| KeyError::Open)?;
            let ck = load_chain(key, id, &serial, next_counter, &sealed)?;
            TokenSecret::Paysim { ck, next_counter, tx_version }
        }
        TokenKind::Oath => TokenSecret::Oath { key: load_oath_key(key, id, &serial, &sealed)? },
    };
    audit::append(
        tx,
        now,
        "token_exported",
        actor,
        json!({ "serial": serial, "user": user, "kind": kind, "next_counter": next }),
    )?;
    Ok(ExportedToken { serial, user: user.clone(), secret })
}

/// Enrolls a token imported from another bank's export: a PAYSIM card from its chain key at
/// `next_counter` (stored as it is, no steps), an OATH credential from its key. Audited as
/// `token_enrolled` with `"imported": true`.
pub fn import_token(
    tx: &Transaction<'_>,
    now: i64,
    key: &MasterKey,
    user: &UserName,
    serial: &CardSerial,
    secret: &TokenSecret,
    actor: &str,
) -> Result<(), AuthError> {
    check_master_key(tx, key)?;
    match secret {
        TokenSecret::Paysim { ck, next_counter, tx_version } => {
            let token_id = insert_token(tx, now, user, serial, TokenKind::Paysim, *tx_version)?;
            store_chain(tx, key, token_id, serial, *next_counter, ck)?;
            audit::append(
                tx,
                now,
                "token_enrolled",
                actor,
                json!({ "serial": serial, "user": user, "kind": TokenKind::Paysim, "counter": next_counter,
                        "tx_version": tx_version.number(), "imported": true }),
            )?;
        }
        TokenSecret::Oath { key: oath_key } => {
            let token_id = insert_token(tx, now, user, serial, TokenKind::Oath, TxVersion::V2)?;
            store_oath_key(tx, key, token_id, serial, oath_key)?;
            audit::append(
                tx,
                now,
                "token_enrolled",
                actor,
                json!({ "serial": serial, "user": user, "kind": TokenKind::Oath, "imported": true }),
            )?;
        }
    }
    Ok(())
}

/// Audits that the bank's policy refused `what` (e.g. `"transfer"`) to a token of `kind`.
pub fn audit_kind_refusal(
    tx: &Transaction<'_>,
    now: i64,
    actor: &str,
    kind: TokenKind,
    what: &str,
) -> Result<(), AuthError> {
    audit::append(tx, now, "refused_by_policy", actor, json!({ "what": what, "token_kind": kind }))?;
    Ok(())
}

/// The kind of the user's active token, if the user has one.
pub fn active_token_kind(tx: &Transaction<'_>, user_id: i64) -> Result<Option<TokenKind>, AuthError> {
    Ok(tx
        .row(
            "SELECT kind FROM tokens WHERE user_id = ?1 AND status = ?2",
            params![user_id, TokenStatus::Active.as_str()],
            |r| kind_column(r, 0),
        )
        .optional()?)
}

/// The token's id, status and user id.
fn token_row(tx: &Transaction<'_>, serial: &CardSerial) -> Result<(i64, TokenStatus, i64), AuthError> {
    tx.row("SELECT id, status, user_id FROM tokens WHERE serial = ?1", [serial.as_str()], |r| {
        Ok((r.get(0)?, status_column(r, 1)?, r.get(2)?))
    })
    .optional()?
    .ok_or_else(|| AuthError::UnknownToken(serial.clone()))
}

/// Clears a lock and the failure counts (operator).
pub fn unlock_token(tx: &Transaction<'_>, now: i64, serial: &CardSerial, actor: &str) -> Result<(), AuthError> {
    let (id, status, _) = token_row(tx, serial)?;
    if status != TokenStatus::Active {
        return Err(AuthError::TokenRevoked(serial.clone()));
    }
    tx.exec("UPDATE tokens SET failures = 0, lock_count = 0, locked_until = 0 WHERE id = ?1", [id])?;
    audit::append(tx, now, "token_unlocked", actor, json!({ "serial": serial }))?;
    Ok(())
}

/// Revokes a token for good: it never authenticates again and its challenges are dropped.
/// Returns the id of the user it belonged to.
pub fn revoke_token(tx: &Transaction<'_>, now: i64, serial: &CardSerial, actor: &str) -> Result<i64, AuthError> {
    let (id, status, user_id) = token_row(tx, serial)?;
    if status == TokenStatus::Revoked {
        return Err(AuthError::TokenRevoked(serial.clone()));
    }
    tx.exec("UPDATE tokens SET status = ?1 WHERE id = ?2", params![TokenStatus::Revoked.as_str(), id])?;
    tx.exec("DELETE FROM challenges WHERE token_id = ?1", [id])?;
    audit::append(tx, now, "token_revoked", actor, json!({ "serial": serial }))?;
    Ok(user_id)
}

pub fn list_tokens(tx: &Transaction<'_>, now: i64) -> Result<Vec<TokenInfo>, AuthError> {
    let mut stmt = tx.prepare(
        "SELECT t.serial, u.name, t.status, t.next_counter, t.failures, t.locked_until, t.created_at, t.kind, t.tx_version
         FROM tokens t JOIN users u ON u.id = t.user_id ORDER BY t.serial",
    )?;
    let rows = stmt.query_map([], |r| {
        let locked_until: i64 = r.get(5)?;
        Ok(TokenInfo {
            serial: parse_column(r, 0, "card serial", |t| t.parse().ok())?,
            user: parse_column(r, 1, "user name", |t| t.parse().ok())?,
            status: status_column(r, 2)?,
            kind: kind_column(r, 7)?,
            next_counter: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            tx_version: r.get(8)?,
            failures: r.get(4)?,
            locked_until: (locked_until > now).then_some(locked_until),
            created_at: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
