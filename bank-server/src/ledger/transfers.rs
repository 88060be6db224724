//! Transfers: asked for (pending), then executed or rejected once the card's code is checked,
//! or ended without moving money: `failed` when a code was refused (a challenge is single
//! use), `expired` when the last challenge issued for it expired first.
//! The client's transfer id is unique per user, so asking again with the same id and fields
//! returns the first answer instead of paying twice.
//!
//! A pending transfer past its `expires_at` reads as `expired` at once, everywhere; the row is
//! written so by the next request that meets it ([`create_transfer`], [`end_transfer`]) or by
//! [`create_transfer`]'s pruner, a small batch per new transfer walking `transfers_expiry`.

use paysim_wire::api::{Direction, NewTransfer, PayeeCheck, Transfer, TransferStatus};
use paysim_wire::{PayeeName, TransferId};
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;

use super::accounts::{by_number, AccountRow};
use super::vop::{self, Comparison};
use super::{checked_amount, post, status_from_text, LedgerError};
use crate::audit;
use crate::db::{parse_column, Cached};

/// A stored transfer: what the user sees, plus the ledger's own keys.
struct TransferRow {
    row_id: i64,
    from_account: i64,
    to_account: i64,
    /// Verification of payee as answered when the transfer was asked for (`None` before it).
    payee_check: Option<PayeeCheck>,
    /// Stored as pending but past its expiry: shown as expired, not yet written so.
    lapsed: bool,
    view: Transfer,
}

const TRANSFER_SELECT: &str =
    "SELECT t.id, t.client_id, fa.number, ta.number, t.amount, t.currency, t.status, t.reason,
        t.created_at, t.executed_at, t.user_id, t.from_account, t.to_account,
        t.payee_name, t.payee_check, ta.holder_name, t.expires_at
 FROM transfers t JOIN accounts fa ON fa.id = t.from_account JOIN accounts ta ON ta.id = t.to_account";

/// The answer of verification of payee: its stored word, with the holder's name for a close
/// match. `None` for anything else (a row the bank did not write).
fn check_from_stored(word: &str, holder: Option<&str>) -> Option<PayeeCheck> {
    match word {
        "match" => Some(PayeeCheck::Match),
        "close_match" => Some(PayeeCheck::CloseMatch { account_name: holder?.parse().ok()? }),
        "no_match" => Some(PayeeCheck::NoMatch),
        "unavailable" => Some(PayeeCheck::Unavailable),
        _ => None,
    }
}

/// Verification of payee: `given` against the holder's name on the payee's account.
fn check_payee(given: &PayeeName, holder: Option<&PayeeName>) -> PayeeCheck {
    let Some(holder) = holder else {
        return PayeeCheck::Unavailable;
    };
    match vop::compare(given.as_str(), holder.as_str()) {
        Comparison::Match => PayeeCheck::Match,
        Comparison::Close => PayeeCheck::CloseMatch { account_name: holder.clone() },
        Comparison::NoMatch => PayeeCheck::NoMatch,
    }
}

/// Why a transfer ended without moving money, as its `reason` column and the API say it.
pub const CODE_REFUSED: &str = "code_refused";
/// See [`CODE_REFUSED`].
pub const CHALLENGE_EXPIRED: &str = "challenge_expired";

fn from_row(r: &rusqlite::Row<'_>, viewer: i64, now: i64) -> rusqlite::Result<TransferRow> {
    let owner: i64 = r.get(10)?;
    let expires_at: Option<i64> = r.get(16)?;
    let stored: TransferStatus = parse_column(r, 6, "transfer status", status_from_text)?;
    let lapsed = stored == TransferStatus::Pending && expires_at.is_some_and(|e| e <= now);
    let (status, reason, executed_at) = if lapsed {
        (TransferStatus::Expired, Some(CHALLENGE_EXPIRED.to_owned()), expires_at)
    } else {
        (stored, r.get(7)?, r.get(9)?)
    };
    let payee_name: Option<String> = r.get(13)?;
    let check: Option<String> = r.get(14)?;
    let holder: Option<String> = r.get(15)?;
    let payee_check = match check {
        None => None,
        Some(_) => Some(parse_column(r, 14, "payee check", |w| check_from_stored(w, holder.as_deref()))?),
    };
    Ok(TransferRow {
        row_id: r.get(0)?,
        from_account: r.get(11)?,
        to_account: r.get(12)?,
        payee_check,
        lapsed,
        view: Transfer {
            transfer_id: parse_column(r, 1, "transfer id", |t| t.parse().ok())?,
            from: parse_column(r, 2, "account number", |t| t.parse().ok())?,
            to: parse_column(r, 3, "account number", |t| t.parse().ok())?,
            amount_minor: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
            currency: parse_column(r, 5, "currency", |t| t.parse().ok())?,
            status,
            reason,
            direction: if owner == viewer { Direction::Out } else { Direction::In },
            payee_name: match payee_name {
                None => None,
                Some(_) => Some(parse_column(r, 13, "payee name", |t| t.parse().ok())?),
            },
            created_at: r.get(8)?,
            executed_at,
        },
    })
}

fn row(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    transfer_id: &TransferId,
) -> Result<Option<TransferRow>, LedgerError> {
    let sql = format!("{TRANSFER_SELECT} WHERE t.user_id = ?1 AND t.client_id = ?2");
    Ok(tx.row(&sql, params![user_id, transfer_id.as_str()], |r| from_row(r, user_id, now)).optional()?)
}

/// The transfer `transfer_id` created by `user_id`, if any, as it stands at `now` (a pending
/// one past its expiry is `expired`).
pub fn transfer(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    transfer_id: &TransferId,
) -> Result<Option<Transfer>, LedgerError> {
    Ok(row(tx, now, user_id, transfer_id)?.map(|t| t.view))
}

/// Verification of payee of the transfer `transfer_id` created by `user_id`, as answered
/// when it was asked for; `None` for no such transfer or one made before the check existed.
pub fn payee_check(
    tx: &Transaction<'_>,
    user_id: i64,
    transfer_id: &TransferId,
) -> Result<Option<PayeeCheck>, LedgerError> {
    // The check never changes, so any time reads it.
    Ok(row(tx, 0, user_id, transfer_id)?.and_then(|t| t.payee_check))
}

/// The user's history at `now`, newest first: everything they created, and executed
/// transfers into their accounts.
pub fn history(tx: &Transaction<'_>, now: i64, user_id: i64, limit: u32) -> Result<Vec<Transfer>, LedgerError> {
    let sql = format!(
        "{TRANSFER_SELECT} WHERE t.user_id = ?1 OR (t.status = 'executed' AND ta.user_id = ?1)
         ORDER BY t.id DESC LIMIT ?2"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map(params![user_id, limit], |r| from_row(r, user_id, now).map(|t| t.view))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn same_fields(t: &Transfer, req: &NewTransfer) -> bool {
    t.from == req.from
        && t.to == req.to
        && t.amount_minor == req.amount_minor
        && t.currency == req.currency
        && t.payee_name.as_ref() == Some(&req.payee_name)
}

/// How many pending transfers a user may have open: at most `max` asked for in the last
/// `open_s` seconds and not yet confirmed.
#[derive(Clone, Copy, Debug)]
pub struct PendingCap {
    pub max: u32,
    pub open_s: i64,
}

/// Counts the user's open pending transfers (walks `transfers_pending`, the partial index of
/// pending rows, for this user only).
const OPEN_PENDING: &str = "SELECT count(*) FROM transfers
   WHERE user_id = ?1 AND status = 'pending' AND created_at > ?2 AND expires_at > ?3";

/// Pending transfers past their expiry written as expired per new transfer (a bounded amount
/// of work per request).
const EXPIRED_BATCH: i64 = 4;

/// Up to `?2` pending transfers whose expiry is at or before `?1`, walking `transfers_expiry`.
const DUE_TO_EXPIRE: &str = "SELECT user_id, client_id FROM transfers
   WHERE status = 'pending' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2";

/// A refusal: what the customer is told, and the true reason the audit keeps.
struct Refusal {
    answer: LedgerError,
    reason: &'static str,
}

fn refuse(answer: LedgerError, reason: &'static str) -> Refusal {
    Refusal { answer, reason }
}

/// What a new transfer may be recorded with: its accounts, amount and the payee check.
struct Accepted {
    from: AccountRow,
    to: AccountRow,
    amount: i64,
    check: PayeeCheck,
}

/// The checks of a new transfer, in order; the accounts if it may be recorded.
fn check_new(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    req: &NewTransfer,
    cap: PendingCap,
) -> Result<Result<Accepted, Refusal>, LedgerError> {
    if !req.currency.kept_by_bank() {
        return Ok(Err(refuse(LedgerError::UnsupportedCurrency(req.currency), "unsupported_currency")));
    }
    let Ok(amount) = checked_amount(req.amount_minor) else {
        return Ok(Err(refuse(LedgerError::InvalidAmount, "invalid_amount")));
    };
    // The source is the user's own: what is said about it tells nothing about others.
    let Some(from) = by_number(tx, req.from.as_str())?.filter(|a| a.is_customer() && a.user_id == Some(user_id)) else {
        return Ok(Err(refuse(LedgerError::UnknownAccount(req.from.clone()), "unknown_source")));
    };
    if from.currency != req.currency {
        return Ok(Err(refuse(LedgerError::CurrencyMismatch, "source_currency_differs")));
    }
    // The payee may be anyone's: "none" and "another currency" are answered alike, after the
    // same one lookup.
    let to = by_number(tx, req.to.as_str())?.filter(AccountRow::is_customer);
    let Some(to) = to else {
        return Ok(Err(refuse(LedgerError::PayeeNotAccepted, "unknown_payee")));
    };
    if to.currency != req.currency {
        return Ok(Err(refuse(LedgerError::PayeeNotAccepted, "payee_currency_differs")));
    }
    if from.id == to.id {
        return Ok(Err(refuse(LedgerError::SameAccount, "same_account")));
    }
    let open: i64 = tx.row(OPEN_PENDING, params![user_id, now - cap.open_s, now], |r| r.get(0))?;
    if open >= i64::from(cap.max) {
        return Ok(Err(refuse(LedgerError::TooManyPending(cap.max), "too_many_pending")));
    }
    if from.balance < amount {
        return Ok(Err(refuse(LedgerError::InsufficientFunds, "insufficient_funds")));
    }
    // Last, once every other check passed: a refused request learns nothing about the name.
    let check = check_payee(&req.payee_name, to.holder_name.as_ref());
    Ok(Ok(Accepted { from, to, amount, check }))
}

/// Records a transfer request as pending, after checking it; or, for a transfer id the user
/// already used, returns that transfer as it stands (same fields) or refuses (different
/// fields). The caller tells a new request from a settled one by its status.
///
/// A new transfer is pending until `expires_at` (that of the challenge the caller issues for
/// it; [`extend_pending`] moves it for a later one). First, a batch of pending transfers past
/// their expiry is written as expired.
///
/// A refusal is the inner `Err`: it is audited (`transfer_refused`, with its true reason) and
/// its unit of work must commit so the audit row stays. The outer `Err` is a failure.
pub fn create_transfer(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    req: &NewTransfer,
    cap: PendingCap,
    expires_at: i64,
    actor: &str,
) -> Result<Result<Transfer, LedgerError>, LedgerError> {
    expire_due(tx, now)?;
    let checked = match row(tx, now, user_id, &req.transfer_id)? {
        Some(t) if same_fields(&t.view, req) => {
            if t.lapsed {
                return Ok(Ok(end_transfer(tx, now, user_id, &req.transfer_id, Ending::Expired, actor)?));
            }
            return Ok(Ok(t.view));
        }
        Some(_) => Err(refuse(LedgerError::TransferIdConflict, "transfer_id_conflict")),
        None => check_new(tx, now, user_id, req, cap)?,
    };
    let mut detail = json!({ "transfer_id": req.transfer_id, "from": req.from, "to": req.to, "amount_minor": req.amount_minor, "currency": req.currency, "payee_name": req.payee_name });
    let Accepted { from, to, amount, check } = match checked {
        Ok(ok) => ok,
        Err(r) => {
            audit::append(tx, now, "transfer_refused", actor, json!({ "transfer": detail, "reason": r.reason }))?;
            return Ok(Err(r.answer));
        }
    };
    tx.exec(
        "INSERT INTO transfers (user_id, client_id, from_account, to_account, amount, currency, status, created_at,
                                payee_name, payee_check, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            user_id,
            req.transfer_id.as_str(),
            from.id,
            to.id,
            amount,
            req.currency.as_str(),
            TransferStatus::Pending.as_str(),
            now,
            req.payee_name.as_str(),
            check.as_str(),
            expires_at
        ],
    )?;
    detail["payee_check"] = json!(check.as_str());
    audit::append(tx, now, "transfer_created", actor, detail)?;
    let t = transfer(tx, now, user_id, &req.transfer_id)?
        .ok_or_else(|| LedgerError::UnknownTransfer(req.transfer_id.clone()))?;
    Ok(Ok(t))
}

/// A pending transfer stays pending at least until `until` (a new challenge was issued for
/// it). Nothing for a transfer that is not pending.
pub fn extend_pending(
    tx: &Transaction<'_>,
    user_id: i64,
    transfer_id: &TransferId,
    until: i64,
) -> Result<(), LedgerError> {
    tx.exec(
        "UPDATE transfers SET expires_at = max(expires_at, ?3)
         WHERE user_id = ?1 AND client_id = ?2 AND status = 'pending'",
        params![user_id, transfer_id.as_str(), until],
    )?;
    Ok(())
}

/// How a pending transfer ends without moving money.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A code for it was refused: `failed`, reason `code_refused`.
    CodeRefused,
    /// Its challenge expired: `expired`, reason `challenge_expired`.
    Expired,
}

impl Ending {
    fn status(self) -> TransferStatus {
        match self {
            Ending::CodeRefused => TransferStatus::Failed,
            Ending::Expired => TransferStatus::Expired,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Ending::CodeRefused => CODE_REFUSED,
            Ending::Expired => CHALLENGE_EXPIRED,
        }
    }
}

/// Ends the pending transfer `transfer_id` without moving money (audited `transfer_failed` or
/// `transfer_expired`) and returns it. A transfer already final is returned as it is; one
/// past its expiry ends as expired whatever `how` says (it had ended before the code came).
pub fn end_transfer(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    transfer_id: &TransferId,
    how: Ending,
    actor: &str,
) -> Result<Transfer, LedgerError> {
    let unknown = || LedgerError::UnknownTransfer(transfer_id.clone());
    let t = row(tx, now, user_id, transfer_id)?.ok_or_else(unknown)?;
    if !t.lapsed && t.view.status != TransferStatus::Pending {
        return Ok(t.view);
    }
    let (how, at) = if t.lapsed { (Ending::Expired, t.view.executed_at.unwrap_or(now)) } else { (how, now) };
    tx.exec(
        "UPDATE transfers SET status = ?1, reason = ?2, executed_at = ?3 WHERE id = ?4",
        params![how.status().as_str(), how.reason(), at, t.row_id],
    )?;
    let v = &t.view;
    let kind = match how {
        Ending::CodeRefused => "transfer_failed",
        Ending::Expired => "transfer_expired",
    };
    let detail = json!({ "transfer_id": v.transfer_id, "from": v.from, "to": v.to, "amount_minor": v.amount_minor, "currency": v.currency, "payee_name": v.payee_name });
    audit::append(tx, now, kind, actor, json!({ "transfer": detail, "reason": how.reason() }))?;
    transfer(tx, now, user_id, transfer_id)?.ok_or_else(unknown)
}

/// Writes up to [`EXPIRED_BATCH`] pending transfers past their expiry as expired.
fn expire_due(tx: &Transaction<'_>, now: i64) -> Result<(), LedgerError> {
    let due: Vec<(i64, TransferId)> = {
        let mut stmt = tx.prepare_cached(DUE_TO_EXPIRE)?;
        let rows = stmt.query_map(params![now, EXPIRED_BATCH], |r| {
            Ok((r.get(0)?, parse_column(r, 1, "transfer id", |t| t.parse().ok())?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    for (user_id, id) in due {
        end_transfer(tx, now, user_id, &id, Ending::Expired, "system")?;
    }
    Ok(())
}

/// Executes a pending transfer whose code was just verified (same transaction): balanced
/// postings, or `rejected` for lack of funds. An already final transfer is returned as it is.
pub fn execute_transfer(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    transfer_id: &TransferId,
    actor: &str,
) -> Result<Transfer, LedgerError> {
    let unknown = || LedgerError::UnknownTransfer(transfer_id.clone());
    let t = row(tx, now, user_id, transfer_id)?.ok_or_else(unknown)?;
    if t.view.status != TransferStatus::Pending {
        return Ok(t.view);
    }
    let amount = checked_amount(t.view.amount_minor)?;
    let balance: i64 = tx.row("SELECT balance FROM accounts WHERE id = ?1", [t.from_account], |r| r.get(0))?;
    let v = &t.view;
    let detail = json!({ "transfer_id": v.transfer_id, "from": v.from, "to": v.to, "amount_minor": v.amount_minor, "currency": v.currency, "payee_name": v.payee_name });
    if balance < amount {
        tx.exec(
            "UPDATE transfers SET status = ?1, reason = 'insufficient_funds', executed_at = ?2 WHERE id = ?3",
            params![TransferStatus::Rejected.as_str(), now, t.row_id],
        )?;
        audit::append(
            tx,
            now,
            "transfer_rejected",
            actor,
            json!({ "transfer": detail, "reason": "insufficient_funds" }),
        )?;
    } else {
        tx.exec(
            "INSERT INTO journal (kind, transfer_id, currency, memo, at) VALUES ('transfer', ?1, ?2, '', ?3)",
            params![t.row_id, v.currency.as_str(), now],
        )?;
        let j = tx.last_insert_rowid();
        post(tx, j, t.from_account, -amount)?;
        post(tx, j, t.to_account, amount)?;
        tx.exec(
            "UPDATE transfers SET status = ?1, executed_at = ?2 WHERE id = ?3",
            params![TransferStatus::Executed.as_str(), now, t.row_id],
        )?;
        audit::append(tx, now, "transfer_executed", actor, json!({ "transfer": detail, "journal": j }))?;
    }
    transfer(tx, now, user_id, transfer_id)?.ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use super::super::test_db::*;
    use super::super::{check_books, fund};
    use super::*;

    const CAP: PendingCap = PendingCap { max: 20, open_s: 3600 };

    fn t1(amount_minor: u64) -> NewTransfer {
        NewTransfer {
            transfer_id: "t1".parse().unwrap(),
            from: n("ACC-A"),
            to: n("ACC-B"),
            amount_minor,
            currency: eur(),
            payee_name: "Bob Example".parse().unwrap(),
        }
    }

    #[test]
    fn history_is_append_only() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        fund(&tx, 0, &n("ACC-A"), 1000, "opening", "operator").unwrap();
        let id: TransferId = "t1".parse().unwrap();
        assert_eq!(
            create_transfer(&tx, 0, 1, &t1(300), CAP, 10_000, "user:alice").unwrap().unwrap().status,
            TransferStatus::Pending
        );
        assert_eq!(execute_transfer(&tx, 1, 1, &id, "user:alice").unwrap().status, TransferStatus::Executed);
        tx.commit().unwrap();
        for sql in [
            "UPDATE postings SET amount = amount * 2",
            "DELETE FROM postings",
            "UPDATE journal SET memo = 'x'",
            "DELETE FROM journal",
            "DELETE FROM transfers",
            "UPDATE transfers SET status = 'pending'",
            "UPDATE transfers SET amount = 1",
        ] {
            let e = c.execute(sql, []).unwrap_err().to_string();
            assert!(e.contains("append-only") || e.contains("only moves from pending"), "{sql}: {e}");
        }
        // A second execution of the same transfer moves nothing.
        let tx = c.transaction().unwrap();
        assert_eq!(execute_transfer(&tx, 2, 1, &id, "user:alice").unwrap().status, TransferStatus::Executed);
        let books = check_books(&tx).unwrap();
        assert!(books.problems.is_empty(), "{:?}", books.problems);
        let b: i64 = tx.query_row("SELECT balance FROM accounts WHERE number = 'ACC-B'", [], |r| r.get(0)).unwrap();
        assert_eq!(b, 300);
        // The same id again: the executed transfer; other fields: a conflict.
        assert_eq!(
            create_transfer(&tx, 3, 1, &t1(300), CAP, 10_000, "user:alice").unwrap().unwrap().status,
            TransferStatus::Executed
        );
        assert!(matches!(
            create_transfer(&tx, 3, 1, &t1(301), CAP, 10_000, "user:alice"),
            Ok(Err(LedgerError::TransferIdConflict))
        ));
        // Bob sees it coming in.
        assert_eq!(history(&tx, 0, 2, 10).unwrap()[0].direction, Direction::In);
        assert_eq!(history(&tx, 0, 1, 10).unwrap()[0].direction, Direction::Out);
    }

    #[test]
    fn the_payee_check_is_stored_with_the_transfer_and_part_of_its_fields() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        fund(&tx, 0, &n("ACC-A"), 1000, "opening", "operator").unwrap();
        let cases = [
            ("t1", "Bob Example", PayeeCheck::Match),
            ("t2", "Example Bob", PayeeCheck::CloseMatch { account_name: "Bob Example".parse().unwrap() }),
            ("t3", "Mallory", PayeeCheck::NoMatch),
        ];
        for (id, name, want) in &cases {
            let req = NewTransfer { transfer_id: id.parse().unwrap(), payee_name: name.parse().unwrap(), ..t1(10) };
            let t = create_transfer(&tx, 0, 1, &req, CAP, 10_000, "user:alice").unwrap().unwrap();
            assert_eq!(t.payee_name.as_ref().map(PayeeName::as_str), Some(*name));
            assert_eq!(payee_check(&tx, 1, &t.transfer_id).unwrap().as_ref(), Some(want), "{name}");
            // The same id with another name is another request.
            let other = NewTransfer { payee_name: "Someone Else".parse().unwrap(), ..req.clone() };
            assert!(matches!(
                create_transfer(&tx, 0, 1, &other, CAP, 10_000, "user:alice"),
                Ok(Err(LedgerError::TransferIdConflict))
            ));
        }
        // Neither the name nor the answer can be changed afterwards.
        for sql in ["UPDATE transfers SET payee_name = 'Bob Example'", "UPDATE transfers SET payee_check = 'match'"] {
            let e = tx.execute(sql, []).unwrap_err().to_string();
            assert!(e.contains("only moves from pending"), "{sql}: {e}");
        }
        let e = tx.execute("UPDATE accounts SET holder_name = 'Mallory' WHERE number = 'ACC-B'", []).unwrap_err();
        assert!(e.to_string().contains("set when it is opened"), "{e}");
        // An account without a holder's name: unavailable.
        crate::ledger::open_account(&tx, 0, 2, &n("ACC-B2"), eur(), None, "operator").unwrap();
        let req = NewTransfer { transfer_id: "t4".parse().unwrap(), to: n("ACC-B2"), ..t1(10) };
        create_transfer(&tx, 0, 1, &req, CAP, 10_000, "user:alice").unwrap().unwrap();
        assert_eq!(payee_check(&tx, 1, &"t4".parse().unwrap()).unwrap(), Some(PayeeCheck::Unavailable));
    }

    #[test]
    fn an_unknown_stored_status_is_an_error_not_pending() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        fund(&tx, 0, &n("ACC-A"), 1000, "opening", "operator").unwrap();
        create_transfer(&tx, 0, 1, &t1(300), CAP, 10_000, "user:alice").unwrap().unwrap();
        tx.execute_batch(
            "DROP TRIGGER transfers_status_only; PRAGMA ignore_check_constraints = ON;
             UPDATE transfers SET status = 'lost';",
        )
        .unwrap();
        assert!(matches!(transfer(&tx, 0, 1, &"t1".parse().unwrap()), Err(LedgerError::Sql(_))));
    }

    #[test]
    fn a_transfer_ends_failed_or_expired_without_moving_money() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        fund(&tx, 0, &n("ACC-A"), 1000, "opening", "operator").unwrap();
        let req = |id: &str| NewTransfer { transfer_id: id.parse().unwrap(), ..t1(300) };
        // Pending until 100; a later challenge keeps it open until 150.
        create_transfer(&tx, 0, 1, &req("f"), CAP, 100, "user:alice").unwrap().unwrap();
        create_transfer(&tx, 0, 1, &req("e"), CAP, 100, "user:alice").unwrap().unwrap();
        extend_pending(&tx, 1, &"e".parse().unwrap(), 150).unwrap();
        extend_pending(&tx, 1, &"e".parse().unwrap(), 120).unwrap();
        let f = end_transfer(&tx, 50, 1, &"f".parse().unwrap(), Ending::CodeRefused, "user:alice").unwrap();
        assert_eq!(
            (f.status, f.reason.as_deref(), f.executed_at),
            (TransferStatus::Failed, Some(CODE_REFUSED), Some(50))
        );
        // Final: neither a second ending nor an execution changes it.
        let again = end_transfer(&tx, 60, 1, &"f".parse().unwrap(), Ending::Expired, "user:alice").unwrap();
        assert_eq!(again, f);
        assert_eq!(execute_transfer(&tx, 61, 1, &"f".parse().unwrap(), "user:alice").unwrap(), f);
        // Past its expiry it reads as expired at once, before anything is written.
        let id: TransferId = "e".parse().unwrap();
        assert_eq!(transfer(&tx, 149, 1, &id).unwrap().unwrap().status, TransferStatus::Pending);
        let seen = transfer(&tx, 150, 1, &id).unwrap().unwrap();
        assert_eq!((seen.status, seen.reason.as_deref()), (TransferStatus::Expired, Some(CHALLENGE_EXPIRED)));
        assert_eq!(history(&tx, 150, 1, 10).unwrap()[0].status, TransferStatus::Expired);
        let stored: String =
            tx.query_row("SELECT status FROM transfers WHERE client_id = 'e'", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, "pending");
        // A code that comes too late ends it as expired (at its expiry), not failed.
        let e = end_transfer(&tx, 200, 1, &id, Ending::CodeRefused, "user:alice").unwrap();
        assert_eq!((e.status, e.executed_at), (TransferStatus::Expired, Some(150)));
        assert_eq!(e, seen);
        let stored: String =
            tx.query_row("SELECT status FROM transfers WHERE client_id = 'e'", [], |r| r.get(0)).unwrap();
        assert_eq!(stored, "expired");
        // Asking again with the same id and fields answers the ended transfer, no new one.
        assert_eq!(create_transfer(&tx, 300, 1, &req("f"), CAP, 400, "user:alice").unwrap().unwrap(), f);
        // No money moved, and the books hold.
        let a: i64 = tx.query_row("SELECT balance FROM accounts WHERE number = 'ACC-A'", [], |r| r.get(0)).unwrap();
        assert_eq!(a, 1000);
        assert!(check_books(&tx).unwrap().problems.is_empty());
        // An ended transfer cannot be moved back, nor its expiry changed.
        for sql in [
            "UPDATE transfers SET status = 'pending' WHERE client_id = 'f'",
            "UPDATE transfers SET expires_at = 1 WHERE client_id = 'e'",
        ] {
            let e = tx.execute(sql, []).unwrap_err().to_string();
            assert!(e.contains("only moves from pending"), "{sql}: {e}");
        }
    }

    #[test]
    fn new_transfers_prune_expired_ones_in_batches_by_index() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        fund(&tx, 0, &n("ACC-A"), 1000, "opening", "operator").unwrap();
        for i in 0..6 {
            let req = NewTransfer { transfer_id: format!("old-{i}").parse().unwrap(), ..t1(1) };
            create_transfer(&tx, 0, 1, &req, CAP, 10, "user:alice").unwrap().unwrap();
        }
        let pending = |tx: &Transaction<'_>| -> i64 {
            tx.query_row("SELECT count(*) FROM transfers WHERE status = 'pending'", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(pending(&tx), 6);
        let req = NewTransfer { transfer_id: "new".parse().unwrap(), ..t1(1) };
        create_transfer(&tx, 20, 1, &req, CAP, 30, "user:alice").unwrap().unwrap();
        // One batch written as expired; the new one is pending.
        assert_eq!(pending(&tx), 6 + 1 - EXPIRED_BATCH);
        let expired: i64 =
            tx.query_row("SELECT count(*) FROM transfers WHERE status = 'expired'", [], |r| r.get(0)).unwrap();
        assert_eq!(expired, EXPIRED_BATCH);
        assert_eq!(crate::audit::count(&tx, "transfer_expired", "challenge_expired").unwrap(), 4);
        // The pruner and the cap walk indexes of pending rows only.
        for sql in [DUE_TO_EXPIRE, OPEN_PENDING] {
            crate::db::plan::searches_only(&tx, sql, "transfers");
        }
    }
}
