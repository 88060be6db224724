//! Lockout: consecutive evaluated failures lock a token, each lock longer than the last.
//!
//! [`MAX_FAILURES`] failures in a row lock the token for [`LOCK_BASE_S`], doubling with each
//! further lock up to [`LOCK_MAX_S`]. A success ends the run of failures but not the
//! escalation, so a guesser gains nothing from the owner's own logins; only a week
//! ([`LOCK_DECAY_S`]) after the last lock ended does it start again from the base delay.

use crate::db::Cached;
use rusqlite::{params, Transaction};
use serde_json::json;

use super::{AuthError, LOCK_BASE_S, LOCK_DECAY_S, LOCK_MAX_S, MAX_FAILURES};
use crate::audit;

/// A token's failure and lock counters, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LockState {
    pub failures: i64,
    pub lock_count: i64,
    pub locked_until: i64,
}

impl LockState {
    pub fn locked_at(&self, now: i64) -> bool {
        self.locked_until > now
    }

    /// The counters after one more evaluated failure at `now`; `true` if it locks the token.
    fn after_failure(self, now: i64) -> (LockState, bool) {
        let mut s = self;
        s.failures += 1;
        if s.failures < MAX_FAILURES {
            return (s, false);
        }
        if now - s.locked_until > LOCK_DECAY_S {
            s.lock_count = 0;
        }
        s.lock_count += 1;
        let shift = u32::try_from(s.lock_count - 1).unwrap_or(u32::MAX).min(20);
        s.locked_until = now + LOCK_BASE_S.saturating_mul(1i64 << shift).min(LOCK_MAX_S);
        s.failures = 0;
        (s, true)
    }
}

/// Counts an evaluated failure for the token, locking it (and auditing the lock) when that
/// makes [`MAX_FAILURES`] in a row.
pub(super) fn record_failure(
    tx: &Transaction<'_>,
    now: i64,
    token_id: i64,
    state: LockState,
    serial: &str,
    actor: &str,
) -> Result<(), AuthError> {
    let (s, locked) = state.after_failure(now);
    if locked {
        audit::append(
            tx,
            now,
            "token_locked",
            actor,
            json!({ "serial": serial, "lock": s.lock_count, "until": s.locked_until }),
        )?;
    }
    tx.exec(
        "UPDATE tokens SET failures = ?1, lock_count = ?2, locked_until = ?3 WHERE id = ?4",
        params![s.failures, s.lock_count, s.locked_until, token_id],
    )?;
    Ok(())
}

/// A success ends the run of failures (the escalation stays).
pub(super) fn record_success(tx: &Transaction<'_>, token_id: i64) -> Result<(), AuthError> {
    tx.exec("UPDATE tokens SET failures = 0 WHERE id = ?1", [token_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_escalate_and_decay_after_a_week() {
        let mut s = LockState { failures: 0, lock_count: 0, locked_until: 0 };
        let now = 10 * LOCK_DECAY_S;
        for i in 1..MAX_FAILURES {
            let (next, locked) = s.after_failure(now);
            assert!(!locked && next.failures == i);
            s = next;
        }
        let (first, locked) = s.after_failure(now);
        assert!(locked);
        assert_eq!(first, LockState { failures: 0, lock_count: 1, locked_until: now + LOCK_BASE_S });
        let second = LockState { failures: MAX_FAILURES - 1, ..first }.after_failure(first.locked_until + 1).0;
        assert_eq!(second.locked_until - (first.locked_until + 1), 2 * LOCK_BASE_S);
        let late = second.locked_until + LOCK_DECAY_S + 1;
        let fresh = LockState { failures: MAX_FAILURES - 1, ..second }.after_failure(late).0;
        assert_eq!((fresh.lock_count, fresh.locked_until), (1, late + LOCK_BASE_S));
        let capped = LockState { failures: MAX_FAILURES - 1, lock_count: 60, locked_until: now }.after_failure(now).0;
        assert_eq!(capped.locked_until, now + LOCK_MAX_S);
    }
}
