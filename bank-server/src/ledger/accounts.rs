//! Customer accounts: one currency each, owned by one user (auth's user id; its table is not
//! read here, the foreign key refuses an id that names no user).

use paysim_wire::api::Account;
use paysim_wire::{AccountNumber, Currency, PayeeName};
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::json;

use super::{LedgerError, FUNDING_PREFIX};
use crate::audit;
use crate::db::{parse_column, Cached};

/// What an account is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AccountKind {
    Customer,
    /// The bank's source of money in one currency (the only kind that goes below zero).
    Funding,
}

impl AccountKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AccountKind::Customer => "customer",
            AccountKind::Funding => "funding",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        [AccountKind::Customer, AccountKind::Funding].into_iter().find(|k| k.as_str() == text)
    }
}

pub(super) struct AccountRow {
    pub id: i64,
    pub user_id: Option<i64>,
    pub kind: AccountKind,
    pub currency: Currency,
    pub balance: i64,
    /// The holder's name, for verification of payee; `None` for accounts opened before
    /// accounts carried one.
    pub holder_name: Option<PayeeName>,
}

impl AccountRow {
    pub fn is_customer(&self) -> bool {
        self.kind == AccountKind::Customer
    }
}

pub(super) fn by_number(tx: &Transaction<'_>, number: &str) -> Result<Option<AccountRow>, LedgerError> {
    Ok(tx
        .row(
            "SELECT id, user_id, kind, currency, balance, holder_name FROM accounts WHERE number = ?1",
            [number],
            |r| {
                let holder: Option<String> = r.get(5)?;
                Ok(AccountRow {
                    id: r.get(0)?,
                    user_id: r.get(1)?,
                    kind: parse_column(r, 2, "account kind", AccountKind::from_stored)?,
                    currency: parse_column(r, 3, "currency", |t| t.parse().ok())?,
                    balance: r.get(4)?,
                    holder_name: match holder {
                        None => None,
                        Some(_) => Some(parse_column(r, 5, "holder name", |t| t.parse().ok())?),
                    },
                })
            },
        )
        .optional()?)
}

fn view(number: AccountNumber, currency: Currency, balance_minor: i64) -> Account {
    Account { number, exponent: currency.exponent(), currency, balance_minor }
}

/// Opens a customer account for `user_id` in a currency the bank keeps, in the name of
/// `holder` (the name verification of payee compares with; `None` answers `unavailable`).
pub fn open_account(
    tx: &Transaction<'_>,
    now: i64,
    user_id: i64,
    number: &AccountNumber,
    currency: Currency,
    holder: Option<&PayeeName>,
    actor: &str,
) -> Result<(), LedgerError> {
    if number.as_str().starts_with(FUNDING_PREFIX) {
        return Err(LedgerError::InvalidAccountNumber);
    }
    if !currency.kept_by_bank() {
        return Err(LedgerError::UnsupportedCurrency(currency));
    }
    if by_number(tx, number.as_str())?.is_some() {
        return Err(LedgerError::AccountExists(number.clone()));
    }
    tx.exec(
        "INSERT INTO accounts (number, kind, user_id, currency, balance, created_at, holder_name)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)",
        params![
            number.as_str(),
            AccountKind::Customer.as_str(),
            user_id,
            currency.as_str(),
            now,
            holder.map(PayeeName::as_str)
        ],
    )
    .map_err(|e| match e.sqlite_error().map(|f| f.extended_code) {
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => LedgerError::UnknownUser(user_id),
        _ => LedgerError::Sql(e),
    })?;
    audit::append(
        tx,
        now,
        "account_opened",
        actor,
        json!({ "account": number, "currency": currency, "user_id": user_id, "holder_name": holder }),
    )?;
    Ok(())
}

/// A customer account by number, with its owner's user id.
pub fn account(tx: &Transaction<'_>, number: &AccountNumber) -> Result<Option<(Account, i64)>, LedgerError> {
    Ok(by_number(tx, number.as_str())?.filter(AccountRow::is_customer).and_then(|a| {
        let owner = a.user_id?;
        Some((view(number.clone(), a.currency, a.balance), owner))
    }))
}

/// The user's accounts, by number.
pub fn accounts_of(tx: &Transaction<'_>, user_id: i64) -> Result<Vec<Account>, LedgerError> {
    let mut stmt =
        tx.prepare("SELECT number, currency, balance FROM accounts WHERE user_id = ?1 AND kind = ?2 ORDER BY number")?;
    let rows = stmt.query_map(params![user_id, AccountKind::Customer.as_str()], |r| {
        Ok(view(
            parse_column(r, 0, "account number", |t| t.parse().ok())?,
            parse_column(r, 1, "currency", |t| t.parse().ok())?,
            r.get(2)?,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::super::test_db::*;
    use super::*;

    #[test]
    fn an_account_for_an_unknown_user_id_is_refused() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        let e = open_account(&tx, 0, 42, &n("ACC-X"), eur(), None, "operator").unwrap_err();
        assert!(matches!(e, LedgerError::UnknownUser(42)), "{e:?}");
        let count: i64 = tx.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 0);
    }

    #[test]
    fn only_the_kept_currencies_and_never_a_funding_number() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        let xau: Currency = "XAU".parse().unwrap();
        assert!(matches!(
            open_account(&tx, 0, 1, &n("ACC-G"), xau, None, "op"),
            Err(LedgerError::UnsupportedCurrency(_))
        ));
        assert!(matches!(
            open_account(&tx, 0, 1, &n("FUNDING-EUR"), eur(), None, "op"),
            Err(LedgerError::InvalidAccountNumber)
        ));
        assert!(matches!(open_account(&tx, 0, 1, &n("ACC-A"), eur(), None, "op"), Err(LedgerError::AccountExists(_))));
    }

    #[test]
    fn an_unknown_stored_kind_is_an_error_not_a_guess() {
        let (_dir, mut c) = migrated_db();
        let tx = c.transaction().unwrap();
        alice_and_bob_in_eur(&tx);
        tx.execute_batch(
            "PRAGMA ignore_check_constraints = ON; UPDATE accounts SET kind = 'vault' WHERE number = 'ACC-A';",
        )
        .unwrap();
        assert!(matches!(by_number(&tx, "ACC-A"), Err(LedgerError::Sql(_))));
    }
}
