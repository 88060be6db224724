//! Funding: money enters a customer account only from the bank's funding account of its
//! currency (`FUNDING-EUR`, made on first use), which therefore holds minus everything funded.

use crate::db::Cached;
use paysim_wire::{AccountNumber, Currency};
use rusqlite::{params, Transaction};
use serde_json::json;

use super::accounts::{by_number, AccountKind, AccountRow};
use super::{checked_amount, post, LedgerError, FUNDING_PREFIX, MAX_BALANCE};
use crate::audit;

fn funding_account(tx: &Transaction<'_>, now: i64, currency: Currency) -> Result<(i64, i64), LedgerError> {
    let number = format!("{FUNDING_PREFIX}{currency}");
    if let Some(a) = by_number(tx, &number)? {
        return Ok((a.id, a.balance));
    }
    tx.exec(
        "INSERT INTO accounts (number, kind, user_id, currency, balance, created_at) VALUES (?1, ?2, NULL, ?3, 0, ?4)",
        params![number, AccountKind::Funding.as_str(), currency.as_str(), now],
    )?;
    Ok((tx.last_insert_rowid(), 0))
}

/// Puts money into a customer account from the bank's funding account of its currency.
/// Returns the new balance. This is the only way the customers' total changes.
pub fn fund(
    tx: &Transaction<'_>,
    now: i64,
    number: &AccountNumber,
    amount_minor: u64,
    memo: &str,
    actor: &str,
) -> Result<i64, LedgerError> {
    let amount = checked_amount(amount_minor)?;
    let acc = by_number(tx, number.as_str())?
        .filter(AccountRow::is_customer)
        .ok_or_else(|| LedgerError::UnknownAccount(number.clone()))?;
    if acc.balance.checked_add(amount).is_none_or(|b| b > MAX_BALANCE) {
        return Err(LedgerError::BalanceLimit);
    }
    // The funding account holds minus the customers' total of its currency: capping it keeps
    // every balance and every sum within i64 (SQLite would turn an overflowing sum into a float).
    let (source, outstanding) = funding_account(tx, now, acc.currency)?;
    if outstanding.checked_sub(amount).is_none_or(|b| b < -MAX_BALANCE) {
        return Err(LedgerError::BalanceLimit);
    }
    tx.exec(
        "INSERT INTO journal (kind, transfer_id, currency, memo, at) VALUES ('funding', NULL, ?1, ?2, ?3)",
        params![acc.currency.as_str(), memo, now],
    )?;
    let j = tx.last_insert_rowid();
    post(tx, j, source, -amount)?;
    post(tx, j, acc.id, amount)?;
    audit::append(
        tx,
        now,
        "funding",
        actor,
        json!({ "account": number, "amount_minor": amount_minor, "currency": acc.currency, "memo": memo, "journal": j }),
    )?;
    Ok(acc.balance + amount)
}

#[cfg(test)]
mod tests {
    use super::super::open_account;
    use super::super::test_db::*;
    use super::*;

    #[test]
    fn funding_is_capped_per_currency_not_only_per_account() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        open_account(&tx, 0, 2, &n("ACC-B-USD"), "USD".parse().unwrap(), None, "operator").unwrap();
        fund(&tx, 0, &n("ACC-A"), 100, "seed", "operator").unwrap();
        // As if the EUR customers already held all but 50 minor units of the limit, spread
        // over accounts each far below its own limit.
        tx.execute("UPDATE accounts SET balance = ?1 WHERE number = 'FUNDING-EUR'", [-(MAX_BALANCE - 50)]).unwrap();
        let e = fund(&tx, 0, &n("ACC-B"), 51, "too much", "operator").unwrap_err();
        assert!(matches!(e, LedgerError::BalanceLimit), "{e:?}");
        assert_eq!(fund(&tx, 0, &n("ACC-B"), 50, "up to the limit", "operator").unwrap(), 50);
        // Another currency has its own total.
        assert_eq!(fund(&tx, 0, &n("ACC-B-USD"), 51, "usd", "operator").unwrap(), 51);
        assert!(matches!(fund(&tx, 0, &n("FUNDING-EUR"), 1, "x", "operator"), Err(LedgerError::UnknownAccount(_))));
        assert!(matches!(fund(&tx, 0, &n("ACC-A"), 0, "x", "operator"), Err(LedgerError::InvalidAmount)));
    }
}
