//! Checking a submitted code: find the challenge, check it is used where it was meant, use it
//! up, refuse an expired challenge or a revoked or locked token, find the counter of the
//! window whose code matches, then advance the chain or count the failure.
//!
//! An OATH token has no window and no chain: its one code for the challenge
//! (PAYSIM-OATH-1, `paysim_otp::oath_code`) matches or not, and the counter of the submission
//! is ignored. Single use, the purpose and session binding, expiry and lockout are the same.

use paysim_otp::{self as otp, ChainKey, TxFields, TxVersion};
use paysim_wire::{AccountNumber, CardSerial, ChallengeId, Currency, PayeeName, TransferId, UserName};
use rusqlite::Transaction;
use serde_json::json;

use super::challenges::{self, ChallengeRow};
use super::lockout::{self, LockState};
use super::tokens::{kind_column, load_chain, load_oath_key, status_column, store_chain};
use super::{AuthConfig, AuthError, ChallengePurpose, Failure, TokenKind, TokenStatus, WINDOW};
use crate::audit;
use crate::db::{parse_column, Cached};
use crate::master_key::{KeyError, MasterKey, Sealed};

/// What the card signed besides the challenge. A transfer is always checked as transaction
/// context version 2, over the fields *the bank stored*: a code over any other source or
/// payee name does not match.
#[derive(Clone, Copy, Debug)]
pub enum Signed<'a> {
    Login,
    Tx {
        transaction_id: &'a TransferId,
        amount_minor: u64,
        currency: Currency,
        source: &'a AccountNumber,
        payee: &'a AccountNumber,
        payee_name: &'a PayeeName,
    },
}

/// A client's answer. `counter: None` (a person typed only the 8 digits) makes the check try
/// every counter of the window.
#[derive(Clone, Copy)]
pub struct Submission<'a> {
    pub challenge_id: &'a ChallengeId,
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
    pub purpose: &'a ChallengePurpose,
    /// The session the challenge must have been issued to (`None`: issued outside a session).
    pub binding: Option<&'a str>,
    /// The user that must own the token (a logged-in session's user).
    pub user_id: Option<i64>,
}

/// A successful check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user_id: i64,
    pub user: UserName,
    pub serial: CardSerial,
    pub kind: TokenKind,
    /// The PAYSIM counter the code was made at; 0 for an OATH token.
    pub counter: u64,
}

/// The token behind a challenge, as the check needs it.
struct TokenState {
    id: i64,
    user_id: i64,
    user: UserName,
    serial: CardSerial,
    status: TokenStatus,
    kind: TokenKind,
    next: u64,
    sealed: Sealed,
    lock: LockState,
}

fn load_token(tx: &Transaction<'_>, token_id: i64) -> Result<TokenState, AuthError> {
    Ok(tx.row(
        "SELECT t.id, t.user_id, u.name, t.serial, t.status, t.next_counter, t.ck_nonce, t.ck_sealed,
                t.failures, t.lock_count, t.locked_until, t.kind
         FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
        [token_id],
        |r| {
            Ok(TokenState {
                id: r.get(0)?,
                user_id: r.get(1)?,
                user: parse_column(r, 2, "user name", |t| t.parse().ok())?,
                serial: parse_column(r, 3, "card serial", |t| t.parse().ok())?,
                status: status_column(r, 4)?,
                kind: kind_column(r, 11)?,
                next: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                sealed: Sealed { nonce: r.get(6)?, ciphertext: r.get(7)? },
                lock: LockState { failures: r.get(8)?, lock_count: r.get(9)?, locked_until: r.get(10)? },
            })
        },
    )?)
}

/// The `otp_check` audit event of one submission.
struct CheckLog<'a> {
    tx: &'a Transaction<'a>,
    now: i64,
    actor: String,
    serial: &'a CardSerial,
    purpose: serde_json::Value,
    challenge: &'a str,
}

impl CheckLog<'_> {
    fn write(&self, result: &str, counter: Option<u64>) -> Result<(), AuthError> {
        audit::append(
            self.tx,
            self.now,
            "otp_check",
            &self.actor,
            json!({ "serial": self.serial, "purpose": self.purpose, "challenge": self.challenge, "counter": counter, "result": result }),
        )?;
        Ok(())
    }
}

/// Runs `f` with the fields the bank checks a transfer code over (context version 2: with the
/// source account and the payee's name, as stored); `None` for a login.
fn with_tx_fields<R>(verifier_id: &[u8], signed: Signed<'_>, f: impl FnOnce(Option<&TxFields<'_>>) -> R) -> R {
    match signed {
        Signed::Login => f(None),
        Signed::Tx { transaction_id, amount_minor, currency, source, payee, payee_name } => f(Some(&TxFields {
            version: TxVersion::V2,
            verifier_id,
            transaction_id: transaction_id.as_str().as_bytes(),
            amount_minor,
            currency: currency.as_bytes(),
            source: source.as_str().as_bytes(),
            payee: payee.as_str().as_bytes(),
            payee_name: payee_name.as_str().as_bytes(),
        })),
    }
}

/// The PAYSIM-OATH-1 challenge of what is signed: the bytes a YKOATH card's CALCULATE hashes.
fn oath_q(challenge: &[u8], verifier_id: &[u8], signed: Signed<'_>) -> [u8; 32] {
    with_tx_fields(verifier_id, signed, |tx| match tx {
        None => otp::oath_login_challenge(challenge, verifier_id),
        Some(tx) => otp::oath_tx_challenge(challenge, tx),
    })
}

fn code_at(ck: &ChainKey, counter: u64, challenge: &[u8], verifier_id: &[u8], signed: Signed<'_>) -> otp::Otp {
    with_tx_fields(verifier_id, signed, |tx| match tx {
        None => otp::login_otp(ck, counter, challenge, verifier_id),
        Some(tx) => otp::tx_otp(ck, counter, challenge, tx),
    })
}

/// Whether the challenge is used where it was issued: same purpose, same session, and (for a
/// logged-in session) a token of that user. A mismatch does not use the challenge up.
fn where_it_belongs(ch: &ChallengeRow, tok: &TokenState, expect: &Expect<'_>) -> bool {
    ch.purpose == *expect.purpose
        && ch.binding.as_deref() == expect.binding
        && expect.user_id.is_none_or(|u| u == tok.user_id)
}

/// Refusals that need no code evaluated.
fn refused_before_the_code(ch: &ChallengeRow, tok: &TokenState, now: i64) -> Option<Failure> {
    if ch.expires_at <= now {
        Some(Failure::ChallengeExpired)
    } else if tok.status != TokenStatus::Active {
        Some(Failure::TokenRevoked)
    } else if tok.lock.locked_at(now) {
        Some(Failure::TokenLocked)
    } else {
        None
    }
}

/// The counter whose code matches, and its chain key. With the counter given, only that one
/// (and it must lie in the window); without, every counter of the window is computed and
/// compared, and the first match wins.
fn find_counter(
    ck_next: &ChainKey,
    next: u64,
    counter: Option<u64>,
    matches: impl Fn(&ChainKey, u64) -> bool,
) -> Result<(u64, ChainKey), Failure> {
    match counter {
        Some(c) if c < next => Err(Failure::CounterReplay),
        Some(c) if c - next >= WINDOW => Err(Failure::CounterOutOfWindow),
        Some(c) => {
            let ck = ck_next.advance(c - next);
            if matches(&ck, c) {
                Ok((c, ck))
            } else {
                Err(Failure::OtpMismatch)
            }
        }
        None => {
            let mut found: Option<(u64, ChainKey)> = None;
            let mut ck = ck_next.clone();
            for c in next..next + WINDOW {
                if matches(&ck, c) && found.is_none() {
                    found = Some((c, ck.clone()));
                }
                ck = ck.next();
            }
            found.ok_or(Failure::OtpMismatch)
        }
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
    let Some(ch) = challenges::load(tx, sub.challenge_id)? else {
        let f = Failure::UnknownChallenge;
        audit::append(
            tx,
            now,
            "otp_check",
            "system",
            json!({ "purpose": expect.purpose.audit(), "result": f.reason() }),
        )?;
        return Ok(Err(f));
    };
    let tok = load_token(tx, ch.token_id)?;
    let log = CheckLog {
        tx,
        now,
        actor: audit::user_actor(tok.user.as_str()),
        serial: &tok.serial,
        purpose: expect.purpose.audit(),
        challenge: challenges::short(sub.challenge_id),
    };
    if !where_it_belongs(&ch, &tok, expect) {
        log.write(Failure::ChallengeMismatch.reason(), sub.counter)?;
        return Ok(Err(Failure::ChallengeMismatch));
    }
    // From here the challenge is used up, whatever the outcome.
    challenges::consume(tx, sub.challenge_id)?;
    if let Some(f) = refused_before_the_code(&ch, &tok, now) {
        log.write(f.reason(), sub.counter)?;
        return Ok(Err(f));
    }
    if tok.kind == TokenKind::Oath {
        return verify_oath(&log, key, &tok, &ch, cfg.verifier_id.as_bytes(), sub, signed);
    }
    let ck_next = match load_chain(key, tok.id, &tok.serial, tok.next, &tok.sealed) {
        Ok(ck) => ck,
        Err(AuthError::Key(KeyError::Open)) => {
            // Not the client's fault and not a guess: no failure is counted. The operator
            // learns of it from the error log and the audit log; the client gets the usual
            // generic refusal.
            tracing::error!(serial = %tok.serial, "a stored chain key does not open: altered token row or wrong master key");
            log.write(Failure::ChainKeyUnreadable.reason(), sub.counter)?;
            return Ok(Err(Failure::ChainKeyUnreadable));
        }
        Err(e) => return Err(e),
    };
    let vid = cfg.verifier_id.as_bytes();
    let found = find_counter(&ck_next, tok.next, sub.counter, |ck, c| {
        code_at(ck, c, &ch.challenge, vid, signed).matches(sub.otp)
    });
    match found {
        Ok((c, ck)) => {
            let Some(next) = c.checked_add(1).filter(|n| i64::try_from(*n).is_ok()) else {
                log.write(Failure::CounterOutOfWindow.reason(), Some(c))?;
                return Ok(Err(Failure::CounterOutOfWindow));
            };
            store_chain(tx, key, tok.id, &tok.serial, next, &ck.next())?;
            lockout::record_success(tx, tok.id)?;
            log.write("ok", Some(c))?;
            Ok(Ok(Verified {
                user_id: tok.user_id,
                user: tok.user.clone(),
                serial: tok.serial.clone(),
                kind: TokenKind::Paysim,
                counter: c,
            }))
        }
        Err(f) => {
            log.write(f.reason(), sub.counter)?;
            if f.counts() {
                lockout::record_failure(tx, now, tok.id, tok.lock, tok.serial.as_str(), &log.actor)?;
            }
            Ok(Err(f))
        }
    }
}

/// The OATH half of [`verify`], after the challenge was used up and the token found active
/// and unlocked: one code, no counter (the submission's is ignored and not logged).
fn verify_oath(
    log: &CheckLog<'_>,
    key: &MasterKey,
    tok: &TokenState,
    ch: &ChallengeRow,
    verifier_id: &[u8],
    sub: &Submission<'_>,
    signed: Signed<'_>,
) -> Result<Result<Verified, Failure>, AuthError> {
    let oath_key = match load_oath_key(key, tok.id, &tok.serial, &tok.sealed) {
        Ok(k) => k,
        Err(AuthError::Key(KeyError::Open)) => {
            tracing::error!(serial = %tok.serial, "a stored OATH key does not open: altered token row or wrong master key");
            log.write(Failure::ChainKeyUnreadable.reason(), None)?;
            return Ok(Err(Failure::ChainKeyUnreadable));
        }
        Err(e) => return Err(e),
    };
    let q = oath_q(&ch.challenge, verifier_id, signed);
    if otp::oath_code(oath_key.expose(), &q).matches(sub.otp) {
        lockout::record_success(log.tx, tok.id)?;
        log.write("ok", None)?;
        Ok(Ok(Verified {
            user_id: tok.user_id,
            user: tok.user.clone(),
            serial: tok.serial.clone(),
            kind: TokenKind::Oath,
            counter: 0,
        }))
    } else {
        let f = Failure::OtpMismatch;
        log.write(f.reason(), None)?;
        lockout::record_failure(log.tx, log.now, tok.id, tok.lock, tok.serial.as_str(), &log.actor)?;
        Ok(Err(f))
    }
}
