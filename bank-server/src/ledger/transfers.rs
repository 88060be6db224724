//! Transfers: asked for (pending), then executed or rejected once the card's code is checked.
//! The client's transfer id is unique per user, so asking again with the same id and fields
//! returns the first answer instead of paying twice.

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
    view: Transfer,
}

const TRANSFER_SELECT: &str =
    "SELECT t.id, t.client_id, fa.number, ta.number, t.amount, t.currency, t.status, t.reason,
        t.created_at, t.executed_at, t.user_id, t.from_account, t.to_account,
        t.payee_name, t.payee_check, ta.holder_name
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

fn from_row(r: &rusqlite::Row<'_>, viewer: i64) -> rusqlite::Result<TransferRow> {
    let owner: i64 = r.get(10)?;
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
        view: Transfer {
            transfer_id: parse_column(r, 1, "transfer id", |t| t.parse().ok())?,
            from: parse_column(r, 2, "account number", |t| t.parse().ok())?,
            to: parse_column(r, 3, "account number", |t| t.parse().ok())?,
            amount_minor: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
            currency: parse_column(r, 5, "currency", |t| t.parse().ok())?,
            status: parse_column(r, 6, "transfer status", status_from_text)?,
            reason: r.get(7)?,
            direction: if owner == viewer { Direction::Out } else { Direction::In },
            payee_name: match payee_name {
                None => None,
                Some(_) => Some(parse_column(r, 13, "payee name", |t| t.parse().ok())?),
            },
            created_at: r.get(8)?,
            executed_at: r.get(9)?,
        },
    })
}

fn row(tx: &Transaction<'_>, user_id: i64, transfer_id: &TransferId) -> Result<Option<TransferRow>, LedgerError> {
    let sql = format!("{TRANSFER_SELECT} WHERE t.user_id = ?1 AND t.client_id = ?2");
    Ok(tx.row(&sql, params![user_id, transfer_id.as_str()], |r| from_row(r, user_id)).optional()?)
}

/// The transfer `transfer_id` created by `user_id`, if any.
pub fn transfer(tx: &Transaction<'_>, user_id: i64, transfer_id: &TransferId) -> Result<Option<Transfer>, LedgerError> {
    Ok(row(tx, user_id, transfer_id)?.map(|t| t.view))
}

/// Verification of payee of the transfer `transfer_id` created by `user_id`, as answered
/// when it was asked for; `None` for no such transfer or one made before the check existed.
pub fn payee_check(
    tx: &Transaction<'_>,
    user_id: i64,
    transfer_id: &TransferId,
) -> Result<Option<PayeeCheck>, LedgerError> {
    Ok(row(tx, user_id, transfer_id)?.and_then(|t| t.payee_check))
}

/// The user's history, newest first: everything they created, and executed transfers into
/// their accounts.
pub fn history(tx: &Transaction<'_>, user_id: i64, limit: u32) -> Result<Vec<Transfer>, LedgerError> {
    let sql = format!(
        "{TRANSFER_SELECT} WHERE t.user_id = ?1 OR (t.status = 'executed' AND ta.user_id = ?1)
         ORDER BY t.id DESC LIMIT ?2"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map(params![user_id, limit], |r| from_row(r, user_id).map(|t| t.view))?;
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
const OPEN_PENDING: &str =
    "SELECT count(*) FROM transfers WHERE user_id = ?1 AND status = 'pending' AND created_at > ?2";

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
    let open: i64 = tx.row(OPEN_PENDING, params![user_id, now - cap.open_s], |r| r.get(0))?;
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
/// A refusal is the inner `Err`: it is audited (`transfer_refused`, with its true reason) and
/// its unit of work must commit so the audit row stays. The outer `Err` is a failure.
pub fn create_transfer(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    req: &NewTransfer,
    cap: PendingCap,
    actor: &str,
) -> Result<Result<Transfer, LedgerError>, LedgerError> {
    let checked = match transfer(tx, user_id, &req.transfer_id)? {
        Some(t) if same_fields(&t, req) => return Ok(Ok(t)),
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
                                payee_name, payee_check)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
            check.as_str()
        ],
    )?;
    detail["payee_check"] = json!(check.as_str());
    audit::append(tx, now, "transfer_created", actor, detail)?;
    let t = transfer(tx, user_id, &req.transfer_id)?
        .ok_or_else(|| LedgerError::UnknownTransfer(req.transfer_id.clone()))?;
    Ok(Ok(t))
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
    let t = row(tx, user_id, transfer_id)?.ok_or_else(unknown)?;
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
    transfer(tx, user_id, transfer_id)?.ok_or_else(unknown)
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
            create_transfer(&tx, 0, 1, &t1(300), CAP, "user:alice").unwrap().unwrap().status,
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
            create_transfer(&tx, 3, 1, &t1(300), CAP, "user:alice").unwrap().unwrap().status,
            TransferStatus::Executed
        );
        assert!(matches!(
            create_transfer(&tx, 3, 1, &t1(301), CAP, "user:alice"),
            Ok(Err(LedgerError::TransferIdConflict))
        ));
        // Bob sees it coming in.
        assert_eq!(history(&tx, 2, 10).unwrap()[0].direction, Direction::In);
        assert_eq!(history(&tx, 1, 10).unwrap()[0].direction, Direction::Out);
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
            let t = create_transfer(&tx, 0, 1, &req, CAP, "user:alice").unwrap().unwrap();
            assert_eq!(t.payee_name.as_ref().map(PayeeName::as_str), Some(*name));
            assert_eq!(payee_check(&tx, 1, &t.transfer_id).unwrap().as_ref(), Some(want), "{name}");
            // The same id with another name is another request.
            let other = NewTransfer { payee_name: "Someone Else".parse().unwrap(), ..req.clone() };
            assert!(matches!(
                create_transfer(&tx, 0, 1, &other, CAP, "user:alice"),
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
        create_transfer(&tx, 0, 1, &req, CAP, "user:alice").unwrap().unwrap();
        assert_eq!(payee_check(&tx, 1, &"t4".parse().unwrap()).unwrap(), Some(PayeeCheck::Unavailable));
    }

    #[test]
    fn an_unknown_stored_status_is_an_error_not_pending() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        fund(&tx, 0, &n("ACC-A"), 1000, "opening", "operator").unwrap();
        create_transfer(&tx, 0, 1, &t1(300), CAP, "user:alice").unwrap().unwrap();
        tx.execute_batch(
            "DROP TRIGGER transfers_status_only; PRAGMA ignore_check_constraints = ON;
             UPDATE transfers SET status = 'lost';",
        )
        .unwrap();
        assert!(matches!(transfer(&tx, 1, &"t1".parse().unwrap()), Err(LedgerError::Sql(_))));
    }
}
