//! Challenges: 32 random bytes the card signs, single use, for one [`ChallengePurpose`], bound
//! to the session they were issued in, expiring after [`AuthConfig::challenge_ttl`].

use paysim_wire::{Challenge, ChallengeId, UserName};
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;

use super::{AuthConfig, AuthError, ChallengePurpose, TokenStatus, MAX_LOGIN_CHALLENGES, MAX_TRANSFER_CHALLENGES};
use crate::audit;
use crate::db::{parse_column, Cached};
use crate::master_key::{random_bytes, KeyError};

/// Expired challenges deleted by one housekeeping unit ([`prune_expired`]): a bounded amount
/// of work, small enough that a request arriving meanwhile waits a few milliseconds at most.
pub const PRUNE_BATCH: i64 = 128;

/// Deletes up to `?2` challenges expired at `?1`, walking `challenges_expiry`.
const PRUNE_EXPIRED: &str = "DELETE FROM challenges WHERE rowid IN
   (SELECT rowid FROM challenges WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)";
/// Keeps the newest `?3` challenges of token `?1` and kind `?2`, walking `challenges_token`
/// (a token holds at most the cap plus one).
const CAP_PER_TOKEN: &str = "DELETE FROM challenges WHERE token_id = ?1 AND kind = ?2 AND rowid NOT IN
   (SELECT rowid FROM challenges WHERE token_id = ?1 AND kind = ?2 ORDER BY rowid DESC LIMIT ?3)";

/// A challenge handed to a client.
#[derive(Clone, Debug)]
pub struct IssuedChallenge {
    pub id: ChallengeId,
    pub challenge: Challenge,
    pub expires_at: i64,
}

/// A stored challenge, as the check reads it.
pub(super) struct ChallengeRow {
    pub token_id: i64,
    pub purpose: ChallengePurpose,
    pub binding: Option<String>,
    pub challenge: Vec<u8>,
    pub expires_at: i64,
}

/// A new challenge id: 32 hex digits, the issue time (seconds, big-endian `u32`) and then 12
/// random bytes. Ids that start with the time make each new row land at the edge of the id
/// index, where the last batches' rows are, so issuing one costs the same few page writes
/// with 100,000 challenges stored as with none. 96 random bits keep ids unguessable: an id is
/// no secret (the card's answer is what counts), but nobody can answer, and so spend, a
/// challenge they were not given.
fn new_id(now: i64) -> Result<ChallengeId, AuthError> {
    let issued = u32::try_from(now).unwrap_or(u32::MAX).to_be_bytes();
    let text = format!("{}{}", hex::encode(issued), hex::encode(random_bytes::<12>()?));
    Ok(ChallengeId::try_from(text).map_err(|_| KeyError::Random)?)
}

fn fresh(now: i64, cfg: &AuthConfig) -> Result<IssuedChallenge, AuthError> {
    let id = new_id(now)?;
    let challenge = Challenge::from_bytes(&random_bytes::<32>()?).map_err(|_| KeyError::Random)?;
    Ok(IssuedChallenge { id, challenge, expires_at: now + cfg.challenge_ttl })
}

/// The challenge in the audit log: 8 of its random digits (the first 8 are the time). The
/// issue and every check of a challenge name it so.
pub(super) fn short(id: &ChallengeId) -> &str {
    &id.as_str()[8..16]
}

/// Stores a new challenge for the token, dropping the oldest of the same kind beyond the cap.
/// Expired ones are not deleted here but by [`prune_expired`] when the bank is idle: in a
/// large table each deletion dirties a page of its own (the ids are random), and a request
/// that paid for four of them ran at half the rate it runs at on a small table.
fn store_new(
    tx: &Transaction<'_>,
    now: i64,
    cfg: &AuthConfig,
    token_id: i64,
    purpose: &ChallengePurpose,
    binding: Option<&str>,
) -> Result<IssuedChallenge, AuthError> {
    let c = fresh(now, cfg)?;
    tx.exec(
        "INSERT INTO challenges (id, token_id, kind, transfer_id, binding, challenge, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            c.id.as_str(),
            token_id,
            purpose.kind(),
            purpose.transfer_id(),
            binding,
            c.challenge.as_bytes(),
            c.expires_at
        ],
    )?;
    // Login and transfer challenges are capped apart, so a flood of login challenges from
    // anyone who knows the user name never pushes out a logged-in user's transfer challenge.
    let cap = match purpose {
        ChallengePurpose::Login => MAX_LOGIN_CHALLENGES,
        ChallengePurpose::Transfer(_) => MAX_TRANSFER_CHALLENGES,
    };
    tx.prepare_cached(CAP_PER_TOKEN)?.execute(params![token_id, purpose.kind(), cap])?;
    Ok(c)
}

/// A login challenge for `user`. An unknown user, or one without an active token, gets a
/// challenge that is stored nowhere and so can never succeed: the answer does not tell who
/// has an account. Both cases are audited with the truth.
pub fn issue_login_challenge(
    tx: &Transaction<'_>,
    now: i64,
    cfg: &AuthConfig,
    user: &UserName,
    binding: Option<&str>,
) -> Result<IssuedChallenge, AuthError> {
    let token: Option<(i64, String)> = tx
        .row(
            "SELECT t.id, t.serial FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE u.name = ?1 AND t.status = ?2",
            params![user.as_str(), TokenStatus::Active.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let actor = audit::user_actor(user.as_str());
    match token {
        Some((token_id, serial)) => {
            let c = store_new(tx, now, cfg, token_id, &ChallengePurpose::Login, binding)?;
            audit::append(
                tx,
                now,
                "challenge_issued",
                &actor,
                json!({ "purpose": "login", "serial": serial, "challenge": short(&c.id) }),
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
            fresh(now, cfg)
        }
    }
}

/// A challenge for `purpose` for a logged-in user's active token.
pub fn issue_challenge(
    tx: &Transaction<'_>,
    now: i64,
    cfg: &AuthConfig,
    user_id: i64,
    purpose: &ChallengePurpose,
    binding: Option<&str>,
) -> Result<IssuedChallenge, AuthError> {
    let (token_id, serial, user): (i64, String, String) = tx
        .row(
            "SELECT t.id, t.serial, u.name FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE u.id = ?1 AND t.status = ?2",
            params![user_id, TokenStatus::Active.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .ok_or(AuthError::NoActiveToken)?;
    let c = store_new(tx, now, cfg, token_id, purpose, binding)?;
    audit::append(
        tx,
        now,
        "challenge_issued",
        &audit::user_actor(&user),
        json!({ "purpose": purpose.audit(), "serial": serial, "challenge": short(&c.id) }),
    )?;
    Ok(c)
}

/// An open challenge as a signing client is shown it: whose it is, what for, until when.
#[derive(Clone, Debug)]
pub struct OpenChallenge {
    pub user_id: i64,
    pub user: UserName,
    pub purpose: ChallengePurpose,
    pub challenge: Challenge,
    pub expires_at: i64,
}

/// The challenge `id` while it can still be answered: stored, not expired at `now`, of an
/// active token. Anything else is `None` (the caller answers "not found" for all of them).
pub fn open_challenge(tx: &Transaction<'_>, now: i64, id: &ChallengeId) -> Result<Option<OpenChallenge>, AuthError> {
    let row = tx
        .row(
            "SELECT c.kind, c.transfer_id, c.challenge, c.expires_at, t.user_id, u.name
             FROM challenges c JOIN tokens t ON t.id = c.token_id JOIN users u ON u.id = t.user_id
             WHERE c.id = ?1 AND c.expires_at > ?2 AND t.status = ?3",
            params![id.as_str(), now, TokenStatus::Active.as_str()],
            |r| {
                let transfer_id: Option<String> = r.get(1)?;
                let bytes: Vec<u8> = r.get(2)?;
                Ok(OpenChallenge {
                    purpose: parse_column(r, 0, "challenge kind", |k| {
                        ChallengePurpose::from_stored(k, transfer_id.as_deref())
                    })?,
                    challenge: Challenge::from_bytes(&bytes).map_err(|_| {
                        rusqlite::Error::FromSqlConversionFailure(
                            2,
                            rusqlite::types::Type::Blob,
                            "challenge length".into(),
                        )
                    })?,
                    expires_at: r.get(3)?,
                    user_id: r.get(4)?,
                    user: parse_column(r, 5, "user name", |n| n.parse().ok())?,
                })
            },
        )
        .optional()?;
    Ok(row)
}

/// The stored challenge `id`, if any.
pub(super) fn load(tx: &Transaction<'_>, id: &ChallengeId) -> Result<Option<ChallengeRow>, AuthError> {
    Ok(tx
        .row(
            "SELECT token_id, kind, transfer_id, binding, challenge, expires_at FROM challenges WHERE id = ?1",
            [id.as_str()],
            |r| {
                let transfer_id: Option<String> = r.get(2)?;
                Ok(ChallengeRow {
                    token_id: r.get(0)?,
                    purpose: parse_column(r, 1, "challenge kind", |k| {
                        ChallengePurpose::from_stored(k, transfer_id.as_deref())
                    })?,
                    binding: r.get(3)?,
                    challenge: r.get(4)?,
                    expires_at: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// Deletes up to [`PRUNE_BATCH`] challenges expired at `now` (the bank's housekeeping, which
/// runs it while idle); returns how many. An expired challenge is refused whether
/// or not its row is still there ([`open_challenge`], [`load`]'s callers compare `expires_at`),
/// so when the rows go changes nothing but the file's size, and the table stays bounded
/// without it by the cap per token.
pub fn prune_expired(tx: &Transaction<'_>, now: i64) -> Result<usize, AuthError> {
    Ok(tx.prepare_cached(PRUNE_EXPIRED)?.execute(params![now, PRUNE_BATCH])?)
}

/// Whether a challenge expired at `now` is still stored (one step down `challenges_expiry`).
pub fn any_expired(tx: &Transaction<'_>, now: i64) -> Result<bool, AuthError> {
    Ok(tx.row("SELECT 1 FROM challenges WHERE expires_at <= ?1 LIMIT 1", [now], |_| Ok(())).optional()?.is_some())
}

/// Uses the challenge up.
pub(super) fn consume(tx: &Transaction<'_>, id: &ChallengeId) -> Result<(), AuthError> {
    tx.exec("DELETE FROM challenges WHERE id = ?1", [id.as_str()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{plan, Db, DbError};

    #[test]
    fn pruning_and_capping_challenges_search_indexes_and_never_scan() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("bank.sqlite3")).unwrap();
        db.run_blocking(|c| {
            for sql in [
                PRUNE_EXPIRED,
                CAP_PER_TOKEN,
                "SELECT token_id FROM challenges WHERE id = ?1",
                "SELECT 1 FROM challenges WHERE expires_at <= ?1 LIMIT 1",
            ] {
                plan::searches_only(c, sql, "challenges");
            }
            Ok::<_, DbError>(())
        })
        .unwrap();
    }

    #[test]
    fn challenge_ids_start_with_the_issue_time() {
        let a = new_id(0x6a00_0000).unwrap();
        let b = new_id(0x6a00_0000).unwrap();
        let c = new_id(0x6a00_0001).unwrap();
        assert_eq!(&a.as_str()[..8], "6a000000");
        assert_ne!(a.as_str(), b.as_str(), "96 random bits after the time");
        assert!(a.as_str() < c.as_str() && b.as_str() < c.as_str(), "later ids sort after");
        assert_ne!(short(&a), short(&b), "the audit's short form is taken from the random digits");
    }

    #[test]
    fn housekeeping_prunes_expired_challenges_a_batch_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.sqlite3");
        crate::ops::add_user(&path, "alice").unwrap();
        crate::ops::enroll_token(&path, "PSIM-1", &paysim_otp::ChainKey::from_bytes([7; 32]), 0, "alice").unwrap();
        let db = Db::open(&path).unwrap();
        db.run_blocking(|c| {
            crate::db::immediate(c, |tx| {
                let token: i64 = tx.query_row("SELECT id FROM tokens", [], |r| r.get(0))?;
                // Two batches and 3 past their expiry at 1,000; 5 still open.
                for i in 0..2 * PRUNE_BATCH + 8 {
                    let expires_at = if i < 2 * PRUNE_BATCH + 3 { 900 + i % 100 } else { 1_001 };
                    tx.execute(
                        "INSERT INTO challenges (id, token_id, kind, challenge, expires_at)
                         VALUES (?1, ?2, 'login', zeroblob(32), ?3)",
                        params![format!("{i:032x}"), token, expires_at],
                    )?;
                }
                let count = |tx: &Transaction<'_>| -> i64 {
                    tx.query_row("SELECT count(*) FROM challenges", [], |r| r.get(0)).unwrap()
                };
                assert_eq!(prune_expired(tx, 1_000).unwrap(), PRUNE_BATCH as usize);
                assert_eq!(prune_expired(tx, 1_000).unwrap(), PRUNE_BATCH as usize);
                assert_eq!(prune_expired(tx, 1_000).unwrap(), 3);
                assert_eq!(prune_expired(tx, 1_000).unwrap(), 0);
                assert_eq!(count(tx), 5, "the open ones stay");
                Ok::<_, DbError>(())
            })
        })
        .unwrap();
    }
}
